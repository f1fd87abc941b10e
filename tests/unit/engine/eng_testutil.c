/*
 * eng_testutil.c: temporary directories, the two-engine fixture, string helpers.
 */
#include "unit/engine/eng_testutil.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/eng_int.h" /* the live-object count, for teardown after a failure */

int eng_test_mkdtemp(char *tmpl)
{
    return mkdtemp(tmpl) != NULL ? 0 : -errno;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    return rc != 0 ? -errno : 0;
}

int eng_test_rmtree(const char *path)
{
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void fx_open(eng_fx *fx)
{
    eng_options o;
    eng_options_init(&o);
    o.name = "test";
    o.block_cache_bytes = 8 << 20;
    if (fx->rocks) {
        char err[TKV_ERRMSG_LEN];
        int rc = eng_rocks_open(fx->path, &o, &fx->db, err);
        if (rc != 0)
            fail_msg("eng_rocks_open: %s", err);
    } else {
        assert_int_equal(eng_mem_open(&o, &fx->db), 0);
    }
}

static int fx_setup(void **state, bool rocks)
{
    eng_fx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->rocks = rocks;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/tkv-engine-XXXXXX");
    assert_int_equal(eng_test_mkdtemp(fx->dir), 0);
    snprintf(fx->path, sizeof(fx->path), "%s/db", fx->dir);
    fx_open(fx);
    *state = fx;
    return 0;
}

int eng_fx_setup_rocks(void **state)
{
    return fx_setup(state, true);
}

int eng_fx_setup_mem(void **state)
{
    return fx_setup(state, false);
}

int eng_fx_teardown(void **state)
{
    eng_fx *fx = *state;
    /* A test that failed half-way leaves snapshots or iterators open; closing would trip the
     * engine's assertion and hide cmocka's report, so leak the engine instead. */
    if (fx->db != NULL && atomic_load(&fx->db->live) != 0)
        fprintf(stderr, "teardown: %ld engine objects still open (test failed?)\n",
                atomic_load(&fx->db->live));
    else
        eng_close(fx->db);
    int rc = eng_test_rmtree(fx->dir);
    free(fx);
    return rc;
}

void eng_fx_reopen(eng_fx *fx)
{
    eng_close(fx->db);
    fx->db = NULL;
    fx_open(fx);
}

tkv_slice eng_test_s(const char *s)
{
    return s != NULL ? tkv_slice_str(s) : tkv_slice_of(NULL, 0);
}

static void write_one(eng_db *db, eng_cf cf, const char *k, const char *v)
{
    eng_batch *b;
    assert_int_equal(eng_batch_new(db, &b), 0);
    if (v != NULL)
        assert_int_equal(eng_batch_put(b, cf, eng_test_s(k), eng_test_s(v)), 0);
    else
        assert_int_equal(eng_batch_delete(b, cf, eng_test_s(k)), 0);
    int rc = eng_write(db, b, true);
    if (rc != 0)
        fail_msg("eng_write: %s", eng_errmsg(db));
    eng_batch_free(b);
}

void eng_test_put(eng_db *db, eng_cf cf, const char *k, const char *v)
{
    write_one(db, cf, k, v);
}

void eng_test_del(eng_db *db, eng_cf cf, const char *k)
{
    write_one(db, cf, k, NULL);
}

static void check_read(int rc, bool found, tkv_buf *val, const char *k, const char *want)
{
    assert_int_equal(rc, 0);
    if (want == NULL) {
        if (found)
            fail_msg("key %s: expected absent, read %.*s", k, (int)val->len, (char *)val->data);
    } else {
        if (!found)
            fail_msg("key %s: expected %s, found nothing", k, want);
        if (!tkv_slice_eq(tkv_buf_slice(val), eng_test_s(want)))
            fail_msg("key %s: expected %s, read %.*s", k, want, (int)val->len, (char *)val->data);
    }
    tkv_buf_deinit(val);
}

void eng_test_expect(eng_db *db, eng_cf cf, const char *k, const char *want)
{
    tkv_buf val;
    tkv_buf_init(&val);
    bool found = false;
    int rc = eng_get(db, cf, eng_test_s(k), &val, &found);
    check_read(rc, found, &val, k, want);
}

void eng_test_expect_snap(const eng_snap *snap, eng_cf cf, const char *k, const char *want)
{
    tkv_buf val;
    tkv_buf_init(&val);
    bool found = false;
    int rc = eng_snap_get(snap, cf, eng_test_s(k), &val, &found);
    check_read(rc, found, &val, k, want);
}

const char *eng_test_scan(eng_iter *it, bool reverse, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    bool ok = reverse ? eng_iter_seek_to_last(it) : eng_iter_seek_to_first(it);
    for (; ok; ok = reverse ? eng_iter_prev(it) : eng_iter_next(it)) {
        tkv_slice k = eng_iter_key(it);
        int n = snprintf(out + len, cap - len, "%s%.*s", len ? "," : "", (int)k.len,
                         (const char *)k.data);
        assert_true(n > 0 && (size_t)n < cap - len);
        len += (size_t)n;
    }
    assert_int_equal(eng_iter_status(it), 0);
    return out;
}
