/*
 * test_pd_tso.c: the timestamp oracle and the ID allocator: strictly increasing timestamps
 * under 16 concurrent streams, across restarts, across a clock that steps back, logical
 * overflow; ids unique across restarts.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pd_testutil.h"

static uint64_t ts_of(int64_t p, int64_t l)
{
    return pd__tso_compose(p, l);
}

static pd_tso_opts fake_opts(uint64_t *clock, bool thread)
{
    pd_tso_opts o;
    pd__tso_opts_init(&o);
    o.clock_ms = pdt_clock_read;
    o.clock_ud = clock;
    o.start_thread = thread;
    return o;
}

static void test_tso_batches_are_strictly_increasing_and_logical_stays_below_2_18(void **state)
{
    (void)state;
    pd_storage *st;
    assert_int_equal(pd__storage_open(NULL, &st, NULL), 0);
    uint64_t clock = 1700000000000ull;
    pd_tso_opts o = fake_opts(&clock, false);
    pd_tso *t;
    assert_int_equal(pd__tso_open(st, &o, &t), 0);
    uint64_t last = 0;
    /* The clock stands still: 2^17-sized batches exhaust the logical space of each
     * millisecond, so physical must move ahead on its own. */
    for (int i = 0; i < 40; i++) {
        uint32_t count = (i % 3 == 0) ? 1 : (1u << 17);
        int64_t p, l;
        assert_int_equal(pd__tso_get(t, count, &p, &l), 0);
        assert_true(l < PD_TSO_MAX_LOGICAL);
        assert_true(l - (int64_t)count + 1 >= 0);
        uint64_t first = ts_of(p, l - (int64_t)count + 1);
        assert_true(first > last);
        last = ts_of(p, l);
    }
    int64_t p, l;
    assert_int_equal(pd__tso_get(t, 0, &p, &l), -EINVAL);
    assert_int_equal(pd__tso_get(t, PD_TSO_MAX_LOGICAL + 1, &p, &l), -EINVAL);
    pd__tso_close(t);
    pd__storage_close(st);
}

static void test_tso_follows_the_clock_in_milliseconds(void **state)
{
    (void)state;
    pd_storage *st;
    assert_int_equal(pd__storage_open(NULL, &st, NULL), 0);
    uint64_t clock = 1700000000000ull;
    pd_tso_opts o = fake_opts(&clock, false);
    pd_tso *t;
    assert_int_equal(pd__tso_open(st, &o, &t), 0);
    int64_t p, l;
    assert_int_equal(pd__tso_get(t, 10, &p, &l), 0);
    assert_int_equal(p, (int64_t)clock);
    assert_int_equal(l, 9);
    clock += 5;
    assert_int_equal(pd__tso_get(t, 1, &p, &l), 0);
    assert_int_equal(p, (int64_t)clock);
    assert_int_equal(l, 0);
    pd__tso_close(t);
    pd__storage_close(st);
}

static void test_tso_never_goes_back_when_the_clock_steps_back(void **state)
{
    (void)state;
    pd_storage *st;
    assert_int_equal(pd__storage_open(NULL, &st, NULL), 0);
    uint64_t clock = 1700000000000ull;
    pd_tso_opts o = fake_opts(&clock, false);
    pd_tso *t;
    assert_int_equal(pd__tso_open(st, &o, &t), 0);
    int64_t p, l;
    assert_int_equal(pd__tso_get(t, 100, &p, &l), 0);
    uint64_t last = ts_of(p, l);
    clock -= 10000; /* NTP steps the clock back 10 s */
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(pd__tso_get(t, 1 + (uint32_t)(i % 7), &p, &l), 0);
        uint64_t first = ts_of(p, l - (i % 7));
        assert_true(first > last);
        last = ts_of(p, l);
        if (i % 100 == 0)
            clock += 1;
    }
    /* The clock comes back beyond the old time: physical follows it again. */
    clock += 20000;
    assert_int_equal(pd__tso_get(t, 1, &p, &l), 0);
    assert_int_equal(p, (int64_t)clock);
    assert_true(ts_of(p, l) > last);
    pd__tso_close(t);
    pd__storage_close(st);
}

static void test_tso_is_above_every_earlier_timestamp_after_restart_with_clock_back(void **state)
{
    (void)state;
    char dir[] = "/tmp/pd-tso-XXXXXX";
    pdt_mkdtemp(dir);
    uint64_t clock = 1700000000000ull;
    uint64_t last = 0;
    for (int round = 0; round < 4; round++) {
        pd_storage *st;
        char err[TKV_ERRMSG_LEN];
        assert_int_equal(pd__storage_open(dir, &st, err), 0);
        pd_tso_opts o = fake_opts(&clock, false);
        pd_tso *t;
        assert_int_equal(pd__tso_open(st, &o, &t), 0);
        int64_t p, l;
        for (int i = 0; i < 50; i++) {
            assert_int_equal(pd__tso_get(t, 1000, &p, &l), 0);
            assert_true(ts_of(p, l - 999) > last);
            last = ts_of(p, l);
            clock += 20; /* 1 s over the round: about a third of the window */
        }
        assert_true((uint64_t)p < pd__tso_limit(t));
        pd__tso_close(t);
        pd__storage_close(st);
        /* Rounds 1 and 3 restart with the clock far behind (a machine with a wrong clock). */
        clock = (round % 2 == 0) ? clock - 3600 * 1000 : clock + 7200 * 1000;
    }
    pdt_rmtree(dir);
}

static void test_tso_raises_its_bound_when_the_clock_jumps_forward(void **state)
{
    (void)state;
    pd_storage *st;
    assert_int_equal(pd__storage_open(NULL, &st, NULL), 0);
    uint64_t clock = 1700000000000ull;
    pd_tso_opts o = fake_opts(&clock, false);
    pd_tso *t;
    assert_int_equal(pd__tso_open(st, &o, &t), 0);
    clock += 3600 * 1000; /* far past the persisted bound */
    int64_t p, l;
    assert_int_equal(pd__tso_get(t, 1, &p, &l), 0);
    assert_int_equal(p, (int64_t)clock);
    bool found;
    uint64_t saved = 0;
    assert_int_equal(pd__storage_get_u64(st, PD_KEY_TSO, &saved, &found), 0);
    assert_true(found);
    assert_true(saved > (uint64_t)p);
    /* The updater step persists ahead of time once the bound gets close. */
    clock = saved - 100;
    assert_int_equal(pd__tso_tick(t), 0);
    uint64_t saved2 = 0;
    assert_int_equal(pd__storage_get_u64(st, PD_KEY_TSO, &saved2, &found), 0);
    assert_true(saved2 >= clock + 2000);
    pd__tso_close(t);
    pd__storage_close(st);
}

/* ---- 16 concurrent streams ----------------------------------------------------------- */

#define STREAMS    16
#define PER_STREAM 2000

typedef struct stream_ctx {
    pd_tso *t;
    uint64_t first[PER_STREAM];
    uint64_t last[PER_STREAM];
    int bad;
    unsigned seed;
} stream_ctx;

static void *stream_main(void *arg)
{
    stream_ctx *s = arg;
    tkv_rng rng;
    tkv_rng_seed(&rng, s->seed);
    uint64_t prev = 0;
    for (int i = 0; i < PER_STREAM; i++) {
        uint32_t count = (uint32_t)(1 + tkv_rng_below(&rng, 100));
        int64_t p, l;
        if (pd__tso_get(s->t, count, &p, &l) != 0 || l >= PD_TSO_MAX_LOGICAL) {
            s->bad++;
            continue;
        }
        s->first[i] = ts_of(p, l - (int64_t)count + 1);
        s->last[i] = ts_of(p, l);
        if (s->first[i] <= prev)
            s->bad++;
        prev = s->last[i];
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_tso_16_concurrent_streams_get_disjoint_increasing_batches(void **state)
{
    (void)state;
    uint64_t seed = pdt_seed();
    char dir[] = "/tmp/pd-tso16-XXXXXX";
    pdt_mkdtemp(dir);
    pd_storage *st;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(pd__storage_open(dir, &st, err), 0);
    pd_tso_opts o;
    pd__tso_opts_init(&o); /* the real clock and the updater thread */
    pd_tso *t;
    assert_int_equal(pd__tso_open(st, &o, &t), 0);
    stream_ctx *ctx = tkv_calloc(STREAMS, sizeof(*ctx));
    assert_non_null(ctx);
    pthread_t th[STREAMS];
    for (int i = 0; i < STREAMS; i++) {
        ctx[i].t = t;
        ctx[i].seed = (unsigned)(seed + (uint64_t)i);
        assert_int_equal(pthread_create(&th[i], NULL, stream_main, &ctx[i]), 0);
    }
    for (int i = 0; i < STREAMS; i++)
        pthread_join(th[i], NULL);
    /* Each batch is an interval [first, last]; together they must not overlap. */
    size_t n = (size_t)STREAMS * PER_STREAM;
    uint64_t *pairs = tkv_calloc(n * 2, sizeof(uint64_t));
    assert_non_null(pairs);
    for (int i = 0; i < STREAMS; i++) {
        assert_int_equal(ctx[i].bad, 0);
        for (int j = 0; j < PER_STREAM; j++) {
            /* Sort by first, keeping last next to it: pack first in the high position. */
            pairs[2 * ((size_t)i * PER_STREAM + (size_t)j)] = ctx[i].first[j];
            pairs[2 * ((size_t)i * PER_STREAM + (size_t)j) + 1] = ctx[i].last[j];
        }
    }
    qsort(pairs, n, 2 * sizeof(uint64_t), cmp_u64);
    for (size_t k = 1; k < n; k++)
        assert_true(pairs[2 * k] > pairs[2 * (k - 1) + 1]);
    tkv_free(pairs);
    tkv_free(ctx);
    pd__tso_close(t);
    pd__storage_close(st);
    pdt_rmtree(dir);
}

/* ---- ID allocator -------------------------------------------------------------------- */

static void test_ids_are_unique_and_increasing_across_restarts(void **state)
{
    (void)state;
    char dir[] = "/tmp/pd-id-XXXXXX";
    pdt_mkdtemp(dir);
    uint64_t last = 0;
    for (int round = 0; round < 3; round++) {
        pd_storage *st;
        char err[TKV_ERRMSG_LEN];
        assert_int_equal(pd__storage_open(dir, &st, err), 0);
        pd_id_alloc a;
        assert_int_equal(pd__id_init(&a, st, 10), 0);
        for (int i = 0; i < 25; i++) {
            uint64_t id;
            assert_int_equal(pd__id_alloc(&a, &id), 0);
            assert_true(id > last);
            last = id;
        }
        uint64_t many[7];
        assert_int_equal(pd__id_alloc_n(&a, 7, many), 0);
        for (int i = 0; i < 7; i++) {
            assert_true(many[i] > last);
            last = many[i];
        }
        pd__id_deinit(&a);
        pd__storage_close(st);
    }
    pdt_rmtree(dir);
}

static void test_id_allocation_reports_storage_failure_without_handing_out(void **state)
{
    (void)state;
    pd_storage *st;
    assert_int_equal(pd__storage_open(NULL, &st, NULL), 0);
    pd_id_alloc a;
    assert_int_equal(pd__id_init(&a, st, 4), 0);
    uint64_t id;
    assert_int_equal(pd__id_alloc(&a, &id), 0);
    assert_int_equal(id, 1);
    /* The next batch needs a write; make every allocation fail. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(pd__id_alloc(&a, &id), 0);
    tkv_alloc_fail_after(0);
    int rc = pd__id_alloc(&a, &id);
    tkv_alloc_fault_clear();
    assert_int_equal(rc, -ENOMEM);
    assert_int_equal(pd__id_current(&a), 4);
    assert_int_equal(pd__id_alloc(&a, &id), 0);
    assert_int_equal(id, 5);
    pd__id_deinit(&a);
    pd__storage_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tso_batches_are_strictly_increasing_and_logical_stays_below_2_18),
        cmocka_unit_test(test_tso_follows_the_clock_in_milliseconds),
        cmocka_unit_test(test_tso_never_goes_back_when_the_clock_steps_back),
        cmocka_unit_test(test_tso_is_above_every_earlier_timestamp_after_restart_with_clock_back),
        cmocka_unit_test(test_tso_raises_its_bound_when_the_clock_jumps_forward),
        cmocka_unit_test(test_tso_16_concurrent_streams_get_disjoint_increasing_batches),
        cmocka_unit_test(test_ids_are_unique_and_increasing_across_restarts),
        cmocka_unit_test(test_id_allocation_reports_storage_failure_without_handing_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
