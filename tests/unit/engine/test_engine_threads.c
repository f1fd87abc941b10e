/*
 * test_engine_threads.c: the db handle under concurrent writers and readers, on eng_rocks and
 * eng_mem: every reader must see each write batch whole or not at all, snapshots must stay
 * fixed while shared between threads, and iterators must see one consistent state.
 *
 * Reader threads do not call cmocka (its failures jump on the test thread's stack); they count
 * violations, and the test thread asserts the counts are zero.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/clock.h"
#include "unit/engine/eng_testutil.h"

#define WRITERS      2
#define READERS      2
#define KEYS_PER_GEN 5
#define ROUNDS_MEM   3000
#define ROUNDS_ROCKS 1500

typedef struct shared {
    eng_db *db;
    eng_snap *fixed; /* one snapshot read by every reader at once */
    int rounds;
    atomic_int writers_left;
    atomic_long violations;
    atomic_long errors;
    atomic_long reads;
} shared;

typedef struct worker {
    shared *sh;
    int id;
} worker;

/* Writer @writer (a single digit) owns the keys in ["w<writer>/", "w<writer>0"). */
static void prefix_of(int writer, char lo[4], char hi[4])
{
    lo[0] = hi[0] = 'w';
    lo[1] = hi[1] = (char)('0' + writer % 10);
    lo[2] = '/';
    hi[2] = '0'; /* the byte after '/' */
    lo[3] = hi[3] = '\0';
}

/* One batch: the same counter value in all four column families, and a new generation of the
 * writer's keys: keys 0..KEYS_PER_GEN-1 always, key KEYS_PER_GEN only in even generations, all
 * holding the generation's value. Every 32nd batch first deletes the whole range. */
static void *writer_main(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    eng_batch *b = NULL;
    if (eng_batch_new(sh->db, &b) != 0) {
        atomic_fetch_add(&sh->errors, 1);
        atomic_fetch_sub(&sh->writers_left, 1);
        return NULL;
    }
    char lo[4], hi[4], key[32], val[32];
    prefix_of(w->id, lo, hi);
    for (int i = 0; i < sh->rounds; i++) {
        eng_batch_clear(b);
        snprintf(val, sizeof(val), "w%d-%d", w->id, i);
        int rc = 0;
        for (int cf = 0; cf < ENG_CF_COUNT && rc == 0; cf++)
            rc = eng_batch_put(b, (eng_cf)cf, tkv_slice_str("ctr"), tkv_slice_str(val));
        if (rc == 0 && i % 32 == 0)
            rc = eng_batch_delete_range(b, ENG_CF_DEFAULT, tkv_slice_str(lo), tkv_slice_str(hi));
        for (int j = 0; j <= KEYS_PER_GEN && rc == 0; j++) {
            snprintf(key, sizeof(key), "%s%d", lo, j);
            if (j < KEYS_PER_GEN || i % 2 == 0)
                rc = eng_batch_put(b, ENG_CF_DEFAULT, tkv_slice_str(key), tkv_slice_str(val));
            else
                rc = eng_batch_delete(b, ENG_CF_DEFAULT, tkv_slice_str(key));
        }
        if (rc == 0)
            rc = eng_write(sh->db, b, false);
        if (rc != 0)
            atomic_fetch_add(&sh->errors, 1);
    }
    eng_batch_free(b);
    atomic_fetch_sub(&sh->writers_left, 1);
    return NULL;
}

/* Returns the generation number in a value "w<writer>-<generation>", or -1. */
static long generation_of(tkv_slice v)
{
    const uint8_t *dash = memchr(v.data, '-', v.len);
    if (dash == NULL || dash + 1 == v.data + v.len)
        return -1;
    long g = 0;
    for (const uint8_t *p = dash + 1; p < v.data + v.len; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        g = g * 10 + (*p - '0');
    }
    return g;
}

/* Checks one read view: the counter equal in every column family and each writer's range
 * holding exactly one whole generation (or nothing yet). */
static bool view_consistent(shared *sh, const eng_snap *snap)
{
    tkv_buf first, v;
    tkv_buf_init(&first);
    tkv_buf_init(&v);
    bool ok = true, found0 = false;
    for (int cf = 0; cf < ENG_CF_COUNT && ok; cf++) {
        bool found = false;
        tkv_buf *dst = cf == 0 ? &first : &v;
        int rc = snap != NULL ? eng_snap_get(snap, (eng_cf)cf, tkv_slice_str("ctr"), dst, &found)
                              : eng_get(sh->db, (eng_cf)cf, tkv_slice_str("ctr"), dst, &found);
        if (rc != 0) {
            atomic_fetch_add(&sh->errors, 1);
            ok = false;
        } else if (cf == 0) {
            found0 = found;
        } else if (snap != NULL &&
                   (found != found0 || !tkv_slice_eq(tkv_buf_slice(&v), tkv_buf_slice(&first)))) {
            ok = false; /* a batch seen in part */
        }
    }
    for (int wr = 0; wr < WRITERS && ok; wr++) {
        char lo[4], hi[4];
        prefix_of(wr, lo, hi);
        eng_iter *it = NULL;
        int rc =
            snap != NULL
                ? eng_snap_iter_new(snap, ENG_CF_DEFAULT, tkv_slice_str(lo), tkv_slice_str(hi), &it)
                : eng_iter_new(sh->db, ENG_CF_DEFAULT, tkv_slice_str(lo), tkv_slice_str(hi), &it);
        if (rc != 0) {
            atomic_fetch_add(&sh->errors, 1);
            ok = false;
            break;
        }
        int n = 0;
        tkv_buf gen;
        tkv_buf_init(&gen);
        bool reverse = (wr & 1) != 0;
        for (bool more = reverse ? eng_iter_seek_to_last(it) : eng_iter_seek_to_first(it); more;
             more = reverse ? eng_iter_prev(it) : eng_iter_next(it)) {
            tkv_slice value = eng_iter_value(it);
            if (n == 0 && tkv_buf_set(&gen, value.data, value.len) != 0)
                atomic_fetch_add(&sh->errors, 1);
            else if (n > 0 && !tkv_slice_eq(value, tkv_buf_slice(&gen)))
                ok = false; /* keys of two generations at once */
            n++;
        }
        if (eng_iter_status(it) != 0)
            atomic_fetch_add(&sh->errors, 1);
        /* Nothing yet, or one whole generation: KEYS_PER_GEN + 1 keys when it is even. */
        if (n != 0) {
            long g = generation_of(tkv_buf_slice(&gen));
            if (g < 0 || n != KEYS_PER_GEN + (g % 2 == 0 ? 1 : 0))
                ok = false;
        }
        tkv_buf_deinit(&gen);
        eng_iter_free(it);
    }
    tkv_buf_deinit(&first);
    tkv_buf_deinit(&v);
    return ok;
}

static void *reader_main(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    while (atomic_load(&sh->writers_left) > 0) {
        eng_snap *s = NULL;
        if (eng_snap_open(sh->db, &s) != 0) {
            atomic_fetch_add(&sh->errors, 1);
            break;
        }
        if (!view_consistent(sh, s))
            atomic_fetch_add(&sh->violations, 1);
        eng_snap_close(s);
        /* Iterators without a snapshot read a fixed state too. */
        if (!view_consistent(sh, NULL))
            atomic_fetch_add(&sh->violations, 1);
        /* The shared snapshot never moves. */
        tkv_buf v;
        tkv_buf_init(&v);
        bool found = true;
        if (eng_snap_get(sh->fixed, ENG_CF_LOCK, tkv_slice_str("ctr"), &v, &found) != 0)
            atomic_fetch_add(&sh->errors, 1);
        else if (found)
            atomic_fetch_add(&sh->violations, 1);
        tkv_buf_deinit(&v);
        atomic_fetch_add(&sh->reads, 1);
    }
    return NULL;
}

static void test_concurrent_readers_see_whole_batches(void **state)
{
    eng_fx *fx = *state;
    shared sh;
    memset(&sh, 0, sizeof(sh));
    sh.db = fx->db;
    sh.rounds = fx->rocks ? ROUNDS_ROCKS : ROUNDS_MEM;
    atomic_init(&sh.writers_left, WRITERS);
    assert_int_equal(eng_snap_open(fx->db, &sh.fixed), 0);

    uint64_t t0 = tkv_clock_mono_ms();
    pthread_t th[WRITERS + READERS];
    worker wk[WRITERS + READERS];
    for (int i = 0; i < WRITERS + READERS; i++) {
        wk[i].sh = &sh;
        wk[i].id = i < WRITERS ? i : i - WRITERS;
        assert_int_equal(
            pthread_create(&th[i], NULL, i < WRITERS ? writer_main : reader_main, &wk[i]), 0);
    }
    for (int i = 0; i < WRITERS + READERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    printf("# %s: %d batches per writer, %ld reader rounds, %" PRIu64 " ms\n", eng_kind(fx->db),
           sh.rounds, atomic_load(&sh.reads), tkv_clock_mono_ms() - t0);
    assert_int_equal(atomic_load(&sh.errors), 0);
    assert_int_equal(atomic_load(&sh.violations), 0);
    eng_snap_close(sh.fixed);

    /* The end state: each writer's last generation, and the last counter everywhere. */
    assert_true(view_consistent(&sh, NULL));
    for (int wr = 0; wr < WRITERS; wr++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "w%d/0", wr);
        snprintf(val, sizeof(val), "w%d-%d", wr, sh.rounds - 1);
        eng_test_expect(fx->db, ENG_CF_DEFAULT, key, val);
    }
}

typedef struct err_probe {
    eng_db *db;
    int rc;
    char seen_before[TKV_ERRMSG_LEN];
    char seen_after[TKV_ERRMSG_LEN];
} err_probe;

static void *failing_thread(void *arg)
{
    err_probe *p = arg;
    snprintf(p->seen_before, sizeof(p->seen_before), "%s", eng_errmsg(p->db));
    tkv_buf v;
    tkv_buf_init(&v);
    bool found;
    p->rc = eng_get(p->db, (eng_cf)42, tkv_slice_str("k"), &v, &found);
    snprintf(p->seen_after, sizeof(p->seen_after), "%s", eng_errmsg(p->db));
    tkv_buf_deinit(&v);
    return NULL;
}

static void test_error_messages_are_per_thread(void **state)
{
    eng_fx *fx = *state;
    /* This thread fails first... */
    const char *paths[] = {"/nonexistent/dir/file.sst"};
    assert_true(eng_ingest(fx->db, ENG_CF_DEFAULT, paths, 1) != 0);
    char mine[TKV_ERRMSG_LEN];
    snprintf(mine, sizeof(mine), "%s", eng_errmsg(fx->db));
    assert_non_null(strstr(mine, "test engine: ingest"));
    /* ...another thread does not see that message, and its own failure does not replace it. */
    err_probe p = {.db = fx->db};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, failing_thread, &p), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(p.rc, -EINVAL);
    assert_string_equal(p.seen_before, "");
    assert_non_null(strstr(p.seen_after, "bad column family"));
    assert_string_equal(eng_errmsg(fx->db), mine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        {"rocks: test_concurrent_readers_see_whole_batches",
         test_concurrent_readers_see_whole_batches, eng_fx_setup_rocks, eng_fx_teardown, NULL},
        {"mem: test_concurrent_readers_see_whole_batches",
         test_concurrent_readers_see_whole_batches, eng_fx_setup_mem, eng_fx_teardown, NULL},
        {"rocks: test_error_messages_are_per_thread", test_error_messages_are_per_thread,
         eng_fx_setup_rocks, eng_fx_teardown, NULL},
        {"mem: test_error_messages_are_per_thread", test_error_messages_are_per_thread,
         eng_fx_setup_mem, eng_fx_teardown, NULL},
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
