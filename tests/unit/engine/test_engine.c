/*
 * test_engine.c: behaviour of the storage engine, run against eng_rocks and eng_mem alike
 * (tests that only make sense for one engine say so in their names).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <rocksdb/c.h>

#include "unit/engine/eng_testutil.h"

#define S eng_test_s

static uint64_t test_seed(void)
{
    const char *s = getenv("TKV_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : 20261127;
    printf("# TKV_SEED=%" PRIu64 "\n", seed);
    return seed;
}

static eng_fx *FX(void **state)
{
    return *state;
}

static eng_batch *batch_new(eng_db *db)
{
    eng_batch *b = NULL;
    assert_int_equal(eng_batch_new(db, &b), 0);
    return b;
}

static void write_batch(eng_db *db, eng_batch *b, bool sync)
{
    int rc = eng_write(db, b, sync);
    if (rc != 0)
        fail_msg("eng_write: %s (%s)", tkv_strerror(rc), eng_errmsg(db));
}

static void delete_range(eng_db *db, eng_cf cf, const char *begin, const char *end)
{
    eng_batch *b = batch_new(db);
    assert_int_equal(eng_batch_delete_range(b, cf, S(begin), S(end)), 0);
    write_batch(db, b, true);
    eng_batch_free(b);
}

static eng_iter *iter_new(eng_db *db, eng_cf cf, const char *lower, const char *upper)
{
    eng_iter *it = NULL;
    assert_int_equal(eng_iter_new(db, cf, S(lower), S(upper), &it), 0);
    return it;
}

static eng_snap *snap_open(eng_db *db)
{
    eng_snap *s = NULL;
    assert_int_equal(eng_snap_open(db, &s), 0);
    return s;
}

/* Asserts that the iterator is valid at key @want, or invalid when @want is NULL. */
static void expect_at(eng_iter *it, bool valid, const char *want)
{
    assert_int_equal(eng_iter_status(it), 0);
    if (want == NULL) {
        assert_false(valid);
        assert_false(eng_iter_valid(it));
        return;
    }
    if (!valid)
        fail_msg("iterator invalid, expected %s", want);
    assert_true(eng_iter_valid(it));
    tkv_slice k = eng_iter_key(it);
    if (!tkv_slice_eq(k, S(want)))
        fail_msg("iterator at %.*s, expected %s", (int)k.len, (const char *)k.data, want);
}

static void expect_scan(eng_iter *it, const char *fwd, const char *rev)
{
    char buf[1024];
    assert_string_equal(eng_test_scan(it, false, buf, sizeof(buf)), fwd);
    assert_string_equal(eng_test_scan(it, true, buf, sizeof(buf)), rev);
}

static void put_letters(eng_db *db, eng_cf cf, const char *letters)
{
    eng_batch *b = batch_new(db);
    for (const char *p = letters; *p; p++) {
        char k[2] = {*p, 0};
        assert_int_equal(eng_batch_put(b, cf, S(k), S(k)), 0);
    }
    write_batch(db, b, true);
    eng_batch_free(b);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- basic reads and writes ------------------------------------------------------------- */

static void test_put_get_delete_per_column_family(void **state)
{
    eng_db *db = FX(state)->db;
    assert_string_equal(eng_cf_name(ENG_CF_DEFAULT), "default");
    assert_string_equal(eng_cf_name(ENG_CF_LOCK), "lock");
    assert_string_equal(eng_cf_name(ENG_CF_WRITE), "write");
    assert_string_equal(eng_cf_name(ENG_CF_RAFT), "raft");
    assert_null(eng_cf_name((eng_cf)ENG_CF_COUNT));

    eng_test_put(db, ENG_CF_DEFAULT, "k", "d");
    eng_test_put(db, ENG_CF_LOCK, "k", "l");
    eng_test_put(db, ENG_CF_WRITE, "k", "w");
    eng_test_put(db, ENG_CF_RAFT, "k", "r");
    eng_test_expect(db, ENG_CF_DEFAULT, "k", "d");
    eng_test_expect(db, ENG_CF_LOCK, "k", "l");
    eng_test_expect(db, ENG_CF_WRITE, "k", "w");
    eng_test_expect(db, ENG_CF_RAFT, "k", "r");

    eng_test_del(db, ENG_CF_LOCK, "k");
    eng_test_expect(db, ENG_CF_LOCK, "k", NULL);
    eng_test_expect(db, ENG_CF_DEFAULT, "k", "d");
    eng_test_put(db, ENG_CF_DEFAULT, "k", "d2");
    eng_test_expect(db, ENG_CF_DEFAULT, "k", "d2");
    eng_test_expect(db, ENG_CF_DEFAULT, "missing", NULL);

    /* The empty key and the empty value are ordinary bytes. */
    eng_test_put(db, ENG_CF_DEFAULT, "", "");
    eng_test_expect(db, ENG_CF_DEFAULT, "", "");
    eng_test_put(db, ENG_CF_DEFAULT, "bin", "x");
    uint8_t key[3] = {0, 0xff, 0};
    uint8_t val[4] = {0, 1, 0, 2};
    eng_batch *b = batch_new(db);
    assert_int_equal(eng_batch_put(b, ENG_CF_RAFT, tkv_slice_of(key, 3), tkv_slice_of(val, 4)), 0);
    write_batch(db, b, false);
    eng_batch_free(b);
    tkv_buf v;
    tkv_buf_init(&v);
    bool found = false;
    assert_int_equal(eng_get(db, ENG_CF_RAFT, tkv_slice_of(key, 3), &v, &found), 0);
    assert_true(found);
    assert_int_equal(v.len, 4);
    assert_memory_equal(v.data, val, 4);
    /* Absent keys empty the buffer. */
    assert_int_equal(eng_get(db, ENG_CF_RAFT, tkv_slice_of(key, 2), &v, &found), 0);
    assert_false(found);
    assert_int_equal(v.len, 0);

    assert_int_equal(eng_get(db, (eng_cf)7, S("k"), &v, &found), -EINVAL);
    assert_non_null(strstr(eng_errmsg(db), "column family"));
    b = batch_new(db);
    assert_int_equal(eng_batch_put(b, (eng_cf)-1, S("k"), S("v")), -EINVAL);
    eng_batch_free(b);
    tkv_buf_deinit(&v);
}

static void test_pinned_get_returns_value_without_copy_buffer(void **state)
{
    eng_db *db = FX(state)->db;
    eng_test_put(db, ENG_CF_WRITE, "k", "value");
    eng_pinned *p = NULL;
    assert_int_equal(eng_get_pinned(db, ENG_CF_WRITE, S("k"), &p), 0);
    assert_non_null(p);
    assert_true(tkv_slice_eq(eng_pinned_value(p), S("value")));
    eng_snap *s = snap_open(db);
    eng_test_put(db, ENG_CF_WRITE, "k", "newer");
    /* The pinned value stays as read. */
    assert_true(tkv_slice_eq(eng_pinned_value(p), S("value")));
    eng_pinned_free(p);
    assert_int_equal(eng_snap_get_pinned(s, ENG_CF_WRITE, S("k"), &p), 0);
    assert_true(tkv_slice_eq(eng_pinned_value(p), S("value")));
    eng_pinned_free(p);
    assert_int_equal(eng_get_pinned(db, ENG_CF_WRITE, S("k"), &p), 0);
    assert_true(tkv_slice_eq(eng_pinned_value(p), S("newer")));
    eng_pinned_free(p);
    assert_int_equal(eng_get_pinned(db, ENG_CF_WRITE, S("absent"), &p), 0);
    assert_null(p);
    eng_pinned_free(NULL);
    eng_snap_close(s);
}

static void test_rocks_writes_survive_close_and_reopen(void **state)
{
    eng_fx *fx = FX(state);
    assert_string_equal(eng_kind(fx->db), "rocksdb");
    eng_batch *b = batch_new(fx->db);
    char k[16], v[16];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "key%03d", i);
        snprintf(v, sizeof(v), "val%03d", i);
        for (int cf = 0; cf < ENG_CF_COUNT; cf++)
            assert_int_equal(eng_batch_put(b, (eng_cf)cf, S(k), S(v)), 0);
    }
    write_batch(fx->db, b, true);
    eng_batch_free(b);
    eng_test_del(fx->db, ENG_CF_LOCK, "key007");
    delete_range(fx->db, ENG_CF_RAFT, "key010", "key020");

    eng_fx_reopen(fx);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "key%03d", i);
        snprintf(v, sizeof(v), "val%03d", i);
        eng_test_expect(fx->db, ENG_CF_DEFAULT, k, v);
        eng_test_expect(fx->db, ENG_CF_WRITE, k, v);
        eng_test_expect(fx->db, ENG_CF_LOCK, k, i == 7 ? NULL : v);
        eng_test_expect(fx->db, ENG_CF_RAFT, k, i >= 10 && i < 20 ? NULL : v);
    }
    /* A flushed engine reopens too (data in SST files rather than the WAL). */
    assert_int_equal(eng_flush(fx->db, true), 0);
    eng_test_put(fx->db, ENG_CF_DEFAULT, "after-flush", "1");
    eng_fx_reopen(fx);
    eng_test_expect(fx->db, ENG_CF_DEFAULT, "key099", "val099");
    eng_test_expect(fx->db, ENG_CF_DEFAULT, "after-flush", "1");
}

/* ---- snapshots -------------------------------------------------------------------------- */

static void test_snapshot_does_not_see_later_writes(void **state)
{
    eng_db *db = FX(state)->db;
    put_letters(db, ENG_CF_DEFAULT, "abc");
    eng_test_put(db, ENG_CF_LOCK, "x", "1");
    eng_snap *s1 = snap_open(db);
    assert_ptr_equal(eng_snap_db(s1), db);

    eng_test_put(db, ENG_CF_DEFAULT, "a", "2");
    eng_test_del(db, ENG_CF_DEFAULT, "b");
    delete_range(db, ENG_CF_DEFAULT, "c", "d");
    eng_test_put(db, ENG_CF_DEFAULT, "d", "new");
    eng_test_put(db, ENG_CF_LOCK, "x", "2");

    eng_test_expect_snap(s1, ENG_CF_DEFAULT, "a", "a");
    eng_test_expect_snap(s1, ENG_CF_DEFAULT, "b", "b");
    eng_test_expect_snap(s1, ENG_CF_DEFAULT, "c", "c");
    eng_test_expect_snap(s1, ENG_CF_DEFAULT, "d", NULL);
    eng_test_expect_snap(s1, ENG_CF_LOCK, "x", "1");
    eng_test_expect(db, ENG_CF_DEFAULT, "a", "2");
    eng_test_expect(db, ENG_CF_DEFAULT, "b", NULL);
    eng_test_expect(db, ENG_CF_DEFAULT, "c", NULL);
    eng_test_expect(db, ENG_CF_DEFAULT, "d", "new");
    eng_test_expect(db, ENG_CF_LOCK, "x", "2");

    eng_iter *it = NULL;
    assert_int_equal(eng_snap_iter_new(s1, ENG_CF_DEFAULT, S(NULL), S(NULL), &it), 0);
    expect_scan(it, "a,b,c", "c,b,a");
    assert_true(eng_iter_seek(it, S("a")));
    assert_true(tkv_slice_eq(eng_iter_value(it), S("a")));
    eng_iter_free(it);

    /* A second snapshot sees its own moment; closing the first does not disturb it. */
    eng_snap *s2 = snap_open(db);
    eng_test_put(db, ENG_CF_DEFAULT, "a", "3");
    eng_test_expect_snap(s2, ENG_CF_DEFAULT, "a", "2");
    eng_test_expect_snap(s1, ENG_CF_DEFAULT, "a", "a");
    eng_snap_close(s1);
    eng_test_put(db, ENG_CF_DEFAULT, "a", "4");
    assert_int_equal(eng_compact_range(db, ENG_CF_DEFAULT, S(NULL), S(NULL)), 0);
    eng_test_expect_snap(s2, ENG_CF_DEFAULT, "a", "2");
    eng_test_expect_snap(s2, ENG_CF_DEFAULT, "b", NULL);
    assert_int_equal(eng_snap_iter_new(s2, ENG_CF_DEFAULT, S(NULL), S(NULL), &it), 0);
    expect_scan(it, "a,d", "d,a");
    eng_iter_free(it);
    eng_test_expect(db, ENG_CF_DEFAULT, "a", "4");
    eng_snap_close(s2);
    eng_snap_close(NULL);
}

static void test_iterator_reads_the_state_at_its_creation(void **state)
{
    eng_db *db = FX(state)->db;
    put_letters(db, ENG_CF_WRITE, "abc");
    eng_iter *it = iter_new(db, ENG_CF_WRITE, NULL, NULL);
    eng_test_put(db, ENG_CF_WRITE, "d", "d");
    eng_test_del(db, ENG_CF_WRITE, "a");
    eng_test_put(db, ENG_CF_WRITE, "b", "changed");
    assert_int_equal(eng_compact_range(db, ENG_CF_WRITE, S(NULL), S(NULL)), 0);
    expect_scan(it, "a,b,c", "c,b,a");
    assert_true(eng_iter_seek(it, S("b")));
    assert_true(tkv_slice_eq(eng_iter_value(it), S("b")));
    eng_iter_free(it);
    it = iter_new(db, ENG_CF_WRITE, NULL, NULL);
    expect_scan(it, "b,c,d", "d,c,b");
    eng_iter_free(it);
}

/* ---- bounded iteration ------------------------------------------------------------------ */

static void test_bounded_iteration_in_both_directions(void **state)
{
    eng_db *db = FX(state)->db;
    put_letters(db, ENG_CF_WRITE, "abcdefghij");
    put_letters(db, ENG_CF_DEFAULT, "bdfk"); /* other column families stay out of the way */
    put_letters(db, ENG_CF_LOCK, "cz");

    eng_iter *it = iter_new(db, ENG_CF_WRITE, "c", "g");
    expect_scan(it, "c,d,e,f", "f,e,d,c");
    expect_at(it, eng_iter_seek(it, S("a")), "c");
    expect_at(it, eng_iter_seek(it, S("")), "c");
    expect_at(it, eng_iter_seek(it, S("c")), "c");
    expect_at(it, eng_iter_seek(it, S("cc")), "d");
    expect_at(it, eng_iter_seek(it, S("f")), "f");
    expect_at(it, eng_iter_seek(it, S("fz")), NULL);
    expect_at(it, eng_iter_seek(it, S("g")), NULL);
    expect_at(it, eng_iter_seek(it, S("z")), NULL);
    expect_at(it, eng_iter_seek_for_prev(it, S("z")), "f");
    expect_at(it, eng_iter_seek_for_prev(it, S("g")), "f");
    expect_at(it, eng_iter_seek_for_prev(it, S("ff")), "f");
    expect_at(it, eng_iter_seek_for_prev(it, S("dd")), "d");
    expect_at(it, eng_iter_seek_for_prev(it, S("c")), "c");
    expect_at(it, eng_iter_seek_for_prev(it, S("bb")), NULL);
    expect_at(it, eng_iter_seek_for_prev(it, S("")), NULL);
    /* Stepping past either bound ends the scan; an invalid iterator stays invalid. */
    expect_at(it, eng_iter_seek_to_first(it), "c");
    expect_at(it, eng_iter_prev(it), NULL);
    expect_at(it, eng_iter_next(it), NULL);
    expect_at(it, eng_iter_seek_to_last(it), "f");
    expect_at(it, eng_iter_next(it), NULL);
    expect_at(it, eng_iter_prev(it), NULL);
    /* Changing direction mid-scan. */
    expect_at(it, eng_iter_seek(it, S("e")), "e");
    expect_at(it, eng_iter_prev(it), "d");
    expect_at(it, eng_iter_next(it), "e");
    expect_at(it, eng_iter_next(it), "f");
    expect_at(it, eng_iter_prev(it), "e");
    eng_iter_free(it);

    /* Bounds that are not keys themselves. */
    it = iter_new(db, ENG_CF_WRITE, "bb", "ff");
    expect_scan(it, "c,d,e,f", "f,e,d,c");
    expect_at(it, eng_iter_seek_for_prev(it, S("fa")), "f");
    eng_iter_free(it);
    /* Only a lower bound, only an upper bound, neither. */
    it = iter_new(db, ENG_CF_WRITE, "h", NULL);
    expect_scan(it, "h,i,j", "j,i,h");
    expect_at(it, eng_iter_seek_for_prev(it, S("zzz")), "j");
    expect_at(it, eng_iter_seek(it, S("a")), "h");
    eng_iter_free(it);
    it = iter_new(db, ENG_CF_WRITE, NULL, "c");
    expect_scan(it, "a,b", "b,a");
    expect_at(it, eng_iter_seek(it, S("c")), NULL);
    expect_at(it, eng_iter_seek_for_prev(it, S("c")), "b");
    eng_iter_free(it);
    it = iter_new(db, ENG_CF_WRITE, NULL, NULL);
    expect_scan(it, "a,b,c,d,e,f,g,h,i,j", "j,i,h,g,f,e,d,c,b,a");
    eng_iter_free(it);
    it = iter_new(db, ENG_CF_DEFAULT, "c", NULL);
    expect_scan(it, "d,f,k", "k,f,d");
    eng_iter_free(it);

    /* The iterator owns copies of its bounds. */
    char lower[8] = "d", upper[8] = "f";
    assert_int_equal(eng_iter_new(db, ENG_CF_WRITE, S(lower), S(upper), &it), 0);
    strcpy(lower, "a");
    strcpy(upper, "z");
    expect_scan(it, "d,e", "e,d");
    eng_iter_free(it);
    eng_iter_free(NULL);
    assert_int_equal(eng_iter_new(db, (eng_cf)9, S(NULL), S(NULL), &it), -EINVAL);
}

static void test_empty_ranges_iterate_nothing(void **state)
{
    eng_db *db = FX(state)->db;
    put_letters(db, ENG_CF_WRITE, "acegi");
    const char *ranges[][2] = {{"c", "c"}, {"e", "c"}, {"ca", "cz"}, {"j", "z"}, {"", "a"}};
    for (size_t i = 0; i < TKV_ARRAY_LEN(ranges); i++) {
        eng_iter *it = iter_new(db, ENG_CF_WRITE, ranges[i][0], ranges[i][1]);
        expect_scan(it, "", "");
        expect_at(it, eng_iter_seek(it, S(ranges[i][0])), NULL);
        expect_at(it, eng_iter_seek(it, S("")), NULL);
        expect_at(it, eng_iter_seek_for_prev(it, S(ranges[i][1])), NULL);
        expect_at(it, eng_iter_seek_for_prev(it, S("zz")), NULL);
        expect_at(it, eng_iter_next(it), NULL);
        expect_at(it, eng_iter_prev(it), NULL);
        eng_iter_free(it);
    }
    /* An empty column family. */
    eng_iter *it = iter_new(db, ENG_CF_RAFT, NULL, NULL);
    expect_scan(it, "", "");
    expect_at(it, eng_iter_seek(it, S("a")), NULL);
    expect_at(it, eng_iter_seek_for_prev(it, S("a")), NULL);
    assert_string_equal(eng_iter_errmsg(it), "");
    eng_iter_free(it);
}

static void test_iteration_skips_deleted_and_overwritten_versions(void **state)
{
    eng_db *db = FX(state)->db;
    put_letters(db, ENG_CF_DEFAULT, "abcdef");
    eng_snap *keep = snap_open(db); /* old versions must stay readable, and stay invisible */
    eng_test_del(db, ENG_CF_DEFAULT, "b");
    eng_test_del(db, ENG_CF_DEFAULT, "e");
    eng_test_put(db, ENG_CF_DEFAULT, "c", "c2");
    eng_test_put(db, ENG_CF_DEFAULT, "c", "c3");
    eng_test_del(db, ENG_CF_DEFAULT, "f");
    eng_iter *it = iter_new(db, ENG_CF_DEFAULT, NULL, NULL);
    expect_scan(it, "a,c,d", "d,c,a");
    expect_at(it, eng_iter_seek(it, S("b")), "c");
    assert_true(tkv_slice_eq(eng_iter_value(it), S("c3")));
    expect_at(it, eng_iter_seek_for_prev(it, S("e")), "d");
    expect_at(it, eng_iter_seek_for_prev(it, S("f")), "d");
    expect_at(it, eng_iter_seek_for_prev(it, S("bz")), "a");
    expect_at(it, eng_iter_seek(it, S("d")), "d");
    expect_at(it, eng_iter_prev(it), "c");
    expect_at(it, eng_iter_prev(it), "a");
    eng_iter_free(it);
    delete_range(db, ENG_CF_DEFAULT, "a", "d");
    it = iter_new(db, ENG_CF_DEFAULT, NULL, NULL);
    expect_scan(it, "d", "d");
    eng_iter_free(it);
    assert_int_equal(eng_snap_iter_new(keep, ENG_CF_DEFAULT, S(NULL), S(NULL), &it), 0);
    expect_scan(it, "a,b,c,d,e,f", "f,e,d,c,b,a");
    eng_iter_free(it);
    eng_snap_close(keep);
}

/* ---- write batches ---------------------------------------------------------------------- */

static void test_write_batch_is_atomic_across_column_families(void **state)
{
    eng_db *db = FX(state)->db;
    eng_test_put(db, ENG_CF_LOCK, "old", "1");
    eng_batch *b = batch_new(db);
    assert_int_equal(eng_batch_put(b, ENG_CF_DEFAULT, S("k"), S("d")), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_LOCK, S("k"), S("l")), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("k"), S("w")), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_RAFT, S("k"), S("r")), 0);
    assert_int_equal(eng_batch_delete(b, ENG_CF_LOCK, S("old")), 0);
    assert_int_equal(eng_batch_count(b), 5);
    /* Nothing is visible before the write. */
    eng_test_expect(db, ENG_CF_DEFAULT, "k", NULL);
    eng_test_expect(db, ENG_CF_LOCK, "old", "1");
    eng_snap *before = snap_open(db);
    eng_iter *it = iter_new(db, ENG_CF_LOCK, NULL, NULL);
    write_batch(db, b, true);
    eng_test_expect(db, ENG_CF_DEFAULT, "k", "d");
    eng_test_expect(db, ENG_CF_LOCK, "k", "l");
    eng_test_expect(db, ENG_CF_WRITE, "k", "w");
    eng_test_expect(db, ENG_CF_RAFT, "k", "r");
    eng_test_expect(db, ENG_CF_LOCK, "old", NULL);
    for (int cf = 0; cf < ENG_CF_COUNT; cf++)
        eng_test_expect_snap(before, (eng_cf)cf, "k", NULL);
    eng_test_expect_snap(before, ENG_CF_LOCK, "old", "1");
    expect_scan(it, "old", "old");
    eng_iter_free(it);
    eng_snap_close(before);
    /* The batch is unchanged by the write and can be written again. */
    assert_int_equal(eng_batch_count(b), 5);
    eng_batch_free(b);

    /* Later operations in a batch win over earlier ones on the same key. */
    b = batch_new(db);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("x"), S("1")), 0);
    assert_int_equal(eng_batch_delete(b, ENG_CF_WRITE, S("x")), 0);
    assert_int_equal(eng_batch_delete(b, ENG_CF_WRITE, S("y")), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("y"), S("2")), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("z"), S("3")), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("z"), S("4")), 0);
    write_batch(db, b, false);
    eng_batch_free(b);
    eng_test_expect(db, ENG_CF_WRITE, "x", NULL);
    eng_test_expect(db, ENG_CF_WRITE, "y", "2");
    eng_test_expect(db, ENG_CF_WRITE, "z", "4");

    /* A batch belongs to its engine. */
    eng_db *other = NULL;
    assert_int_equal(eng_mem_open(NULL, &other), 0);
    b = batch_new(other);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("x"), S("1")), 0);
    assert_int_equal(eng_write(db, b, false), -EINVAL);
    assert_non_null(strstr(eng_errmsg(db), "another engine"));
    eng_batch_free(b);
    eng_close(other);
    eng_test_expect(db, ENG_CF_WRITE, "x", NULL);
}

static void test_batch_count_size_clear_and_save_points(void **state)
{
    eng_db *db = FX(state)->db;
    eng_batch *b = batch_new(db);
    assert_int_equal(eng_batch_count(b), 0);
    /* RocksDB's representation: a 12-byte header, then per record a tag, the column family
     * id, and length-prefixed key and value. eng_mem encodes the same way. */
    assert_int_equal(eng_batch_data_size(b), 12);
    write_batch(db, b, true); /* an empty batch is a valid write */
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("a"), S("1")), 0);
    assert_int_equal(eng_batch_count(b), 1);
    assert_int_equal(eng_batch_data_size(b), 12 + 6);
    size_t one = eng_batch_data_size(b);
    assert_int_equal(eng_batch_set_save_point(b), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("b"), S("2")), 0);
    assert_int_equal(eng_batch_delete(b, ENG_CF_WRITE, S("a")), 0);
    assert_int_equal(eng_batch_data_size(b), one + 6 + 4);
    assert_int_equal(eng_batch_delete_range(b, ENG_CF_WRITE, S("a"), S("z")), 0);
    assert_int_equal(eng_batch_data_size(b), one + 6 + 4 + 6);
    assert_int_equal(eng_batch_count(b), 4);
    assert_int_equal(eng_batch_rollback_to_save_point(b), 0);
    assert_int_equal(eng_batch_count(b), 1);
    assert_int_equal(eng_batch_data_size(b), one);
    assert_int_equal(eng_batch_rollback_to_save_point(b), TKV_ENOTFOUND);
    assert_int_equal(eng_batch_pop_save_point(b), TKV_ENOTFOUND);
    /* Nested save points; popping keeps the operations. */
    assert_int_equal(eng_batch_set_save_point(b), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("d"), S("4")), 0);
    assert_int_equal(eng_batch_set_save_point(b), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("e"), S("5")), 0);
    assert_int_equal(eng_batch_pop_save_point(b), 0);
    assert_int_equal(eng_batch_count(b), 3);
    assert_int_equal(eng_batch_rollback_to_save_point(b), 0);
    assert_int_equal(eng_batch_count(b), 1);
    assert_int_equal(eng_batch_set_save_point(b), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("f"), S("6")), 0);
    assert_int_equal(eng_batch_pop_save_point(b), 0);
    write_batch(db, b, true);
    eng_iter *it = iter_new(db, ENG_CF_WRITE, NULL, NULL);
    expect_scan(it, "a,f", "f,a");
    eng_iter_free(it);
    /* Clear drops operations and save points. */
    assert_int_equal(eng_batch_set_save_point(b), 0);
    eng_batch_clear(b);
    assert_int_equal(eng_batch_count(b), 0);
    assert_int_equal(eng_batch_data_size(b), 12);
    assert_int_equal(eng_batch_rollback_to_save_point(b), TKV_ENOTFOUND);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, S("g"), S("7")), 0);
    write_batch(db, b, false);
    eng_test_expect(db, ENG_CF_WRITE, "g", "7");
    eng_batch_free(b);
    eng_batch_free(NULL);
}

static void test_delete_range_removes_exactly_the_range(void **state)
{
    eng_db *db = FX(state)->db;
    put_letters(db, ENG_CF_DEFAULT, "abcdefgh");
    put_letters(db, ENG_CF_WRITE, "abcdefgh");
    eng_test_put(db, ENG_CF_DEFAULT, "cz", "cz");
    eng_snap *s = snap_open(db);
    delete_range(db, ENG_CF_DEFAULT, "c", "f");
    eng_iter *it = iter_new(db, ENG_CF_DEFAULT, NULL, NULL);
    expect_scan(it, "a,b,f,g,h", "h,g,f,b,a");
    eng_iter_free(it);
    it = iter_new(db, ENG_CF_WRITE, NULL, NULL);
    expect_scan(it, "a,b,c,d,e,f,g,h", "h,g,f,e,d,c,b,a");
    eng_iter_free(it);
    eng_test_expect_snap(s, ENG_CF_DEFAULT, "cz", "cz");
    eng_snap_close(s);

    eng_batch *b = batch_new(db);
    assert_int_equal(eng_batch_delete_range(b, ENG_CF_DEFAULT, S("g"), S("b")), -EINVAL);
    assert_int_equal(eng_batch_delete_range(b, ENG_CF_DEFAULT, S("g"), S("g")), 0);
    assert_int_equal(eng_batch_count(b), 0);
    /* Order inside one batch: the range deletes the earlier put, not the later one. */
    assert_int_equal(eng_batch_put(b, ENG_CF_DEFAULT, S("bb"), S("x")), 0);
    assert_int_equal(eng_batch_delete_range(b, ENG_CF_DEFAULT, S("a"), S("g")), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_DEFAULT, S("b"), S("again")), 0);
    write_batch(db, b, true);
    eng_batch_free(b);
    it = iter_new(db, ENG_CF_DEFAULT, NULL, NULL);
    expect_scan(it, "b,g,h", "h,g,b");
    eng_iter_free(it);
    eng_test_expect(db, ENG_CF_DEFAULT, "b", "again");
    /* A range with nothing in it, and a range covering everything. */
    delete_range(db, ENG_CF_DEFAULT, "c", "f");
    delete_range(db, ENG_CF_WRITE, "", "zzz");
    it = iter_new(db, ENG_CF_WRITE, NULL, NULL);
    expect_scan(it, "", "");
    eng_iter_free(it);
    /* Keys written after a range deletion are visible. */
    eng_test_put(db, ENG_CF_WRITE, "c", "new");
    eng_test_expect(db, ENG_CF_WRITE, "c", "new");
}

/* ---- SST files -------------------------------------------------------------------------- */

static void sst_path(const eng_fx *fx, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", fx->dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

/* Writes an SST file of "k=v" pairs (v "-" means a deletion) and returns its size. */
static uint64_t write_sst(eng_db *db, const char *path, const char *const *kv, size_t n)
{
    eng_sst_writer *w = NULL;
    int rc = eng_sst_writer_new(db, path, &w);
    if (rc != 0)
        fail_msg("eng_sst_writer_new: %s", eng_errmsg(db));
    for (size_t i = 0; i < n; i += 2) {
        if (strcmp(kv[i + 1], "-") == 0)
            rc = eng_sst_writer_delete(w, S(kv[i]));
        else
            rc = eng_sst_writer_put(w, S(kv[i]), S(kv[i + 1]));
        if (rc != 0)
            fail_msg("sst add: %s", eng_sst_writer_errmsg(w));
    }
    assert_int_equal(eng_sst_writer_count(w), n / 2);
    uint64_t bytes = 0;
    rc = eng_sst_writer_finish(w, &bytes);
    if (rc != 0)
        fail_msg("sst finish: %s", eng_sst_writer_errmsg(w));
    eng_sst_writer_free(w);
    assert_true(bytes > 0);
    assert_true(file_exists(path));
    return bytes;
}

static void ingest(eng_db *db, eng_cf cf, const char *const *paths, size_t n)
{
    int rc = eng_ingest(db, cf, paths, n);
    if (rc != 0)
        fail_msg("eng_ingest: %s (%s)", tkv_strerror(rc), eng_errmsg(db));
}

static void test_sst_write_and_ingest_replaces_keys(void **state)
{
    eng_fx *fx = FX(state);
    eng_db *db = fx->db;
    eng_test_put(db, ENG_CF_WRITE, "k1", "old");
    eng_test_put(db, ENG_CF_WRITE, "k4", "kept");
    eng_test_put(db, ENG_CF_WRITE, "k5", "old");
    eng_test_put(db, ENG_CF_WRITE, "k9", "outside");
    eng_test_put(db, ENG_CF_DEFAULT, "k2", "other-cf");
    eng_snap *before = snap_open(db);

    char p1[160];
    sst_path(fx, "one.sst", p1, sizeof(p1));
    const char *kv[] = {"k1", "new", "k2", "v2", "k3", "v3", "k5", "-"};
    write_sst(db, p1, kv, TKV_ARRAY_LEN(kv));
    const char *paths[] = {p1};
    ingest(db, ENG_CF_WRITE, paths, 1);
    assert_false(file_exists(p1)); /* moved into the engine */

    eng_test_expect(db, ENG_CF_WRITE, "k1", "new");
    eng_test_expect(db, ENG_CF_WRITE, "k2", "v2");
    eng_test_expect(db, ENG_CF_WRITE, "k3", "v3");
    eng_test_expect(db, ENG_CF_WRITE, "k4", "kept"); /* not in the file: untouched */
    eng_test_expect(db, ENG_CF_WRITE, "k5", NULL);
    eng_test_expect(db, ENG_CF_WRITE, "k9", "outside");
    eng_test_expect(db, ENG_CF_DEFAULT, "k2", "other-cf");
    eng_iter *it = iter_new(db, ENG_CF_WRITE, NULL, NULL);
    expect_scan(it, "k1,k2,k3,k4,k9", "k9,k4,k3,k2,k1");
    eng_iter_free(it);
    /* A snapshot taken before the ingest does not see it. */
    eng_test_expect_snap(before, ENG_CF_WRITE, "k1", "old");
    eng_test_expect_snap(before, ENG_CF_WRITE, "k2", NULL);
    eng_test_expect_snap(before, ENG_CF_WRITE, "k5", "old");
    eng_snap_close(before);

    /* Replacing a whole range, as applying a raft snapshot does: delete it, then ingest two
     * files at once. */
    char p2[160], p3[160];
    sst_path(fx, "two.sst", p2, sizeof(p2));
    sst_path(fx, "three.sst", p3, sizeof(p3));
    const char *kv2[] = {"k2b", "x"};
    const char *kv3[] = {"k6", "y", "k7", "z"};
    write_sst(db, p2, kv2, TKV_ARRAY_LEN(kv2));
    write_sst(db, p3, kv3, TKV_ARRAY_LEN(kv3));
    delete_range(db, ENG_CF_WRITE, "k0", "k8");
    const char *paths2[] = {p2, p3};
    ingest(db, ENG_CF_WRITE, paths2, 2);
    it = iter_new(db, ENG_CF_WRITE, NULL, NULL);
    expect_scan(it, "k2b,k6,k7,k9", "k9,k7,k6,k2b");
    eng_iter_free(it);
    /* Ingested data survive a flush and compaction. */
    assert_int_equal(eng_flush(db, true), 0);
    assert_int_equal(eng_compact_range(db, ENG_CF_WRITE, S(NULL), S(NULL)), 0);
    eng_test_expect(db, ENG_CF_WRITE, "k6", "y");
}

static void test_sst_writer_rejects_keys_out_of_order(void **state)
{
    eng_fx *fx = FX(state);
    char p[160];
    sst_path(fx, "bad.sst", p, sizeof(p));
    eng_sst_writer *w = NULL;
    assert_int_equal(eng_sst_writer_new(fx->db, p, &w), 0);
    assert_int_equal(eng_sst_writer_finish(w, NULL), -EINVAL); /* no entries */
    assert_non_null(strstr(eng_sst_writer_errmsg(w), "no entries"));
    assert_int_equal(eng_sst_writer_put(w, S("b"), S("1")), 0);
    assert_int_equal(eng_sst_writer_put(w, S("a"), S("1")), -EINVAL);
    assert_non_null(strstr(eng_sst_writer_errmsg(w), "increasing"));
    assert_int_equal(eng_sst_writer_put(w, S("b"), S("2")), -EINVAL);
    assert_int_equal(eng_sst_writer_delete(w, S("b")), -EINVAL);
    /* The writer is still usable after a rejected key. */
    assert_int_equal(eng_sst_writer_put(w, S("c"), S("3")), 0);
    assert_int_equal(eng_sst_writer_count(w), 2);
    /* Freed unfinished, the file goes away. */
    assert_true(file_exists(p));
    eng_sst_writer_free(w);
    assert_false(file_exists(p));

    assert_int_equal(eng_sst_writer_new(fx->db, p, &w), 0);
    assert_int_equal(eng_sst_writer_put(w, S("a"), S("1")), 0);
    assert_int_equal(eng_sst_writer_finish(w, NULL), 0);
    assert_int_equal(eng_sst_writer_put(w, S("b"), S("1")), -EINVAL);
    assert_int_equal(eng_sst_writer_finish(w, NULL), -EINVAL);
    eng_sst_writer_free(w);
    assert_true(file_exists(p));
    eng_sst_writer_free(NULL);

    /* A file in a missing directory cannot be created. */
    char missing[200];
    snprintf(missing, sizeof(missing), "%s/no/such/dir.sst", fx->dir);
    int rc = eng_sst_writer_new(fx->db, missing, &w);
    assert_true(rc == TKV_EENGINE || rc == -ENOENT);
    assert_non_null(strstr(eng_errmsg(fx->db), "no/such/dir.sst"));
}

static void truncate_file(const char *path, long keep)
{
    assert_int_equal(truncate(path, keep), 0);
}

static void test_ingest_rejects_missing_and_damaged_files(void **state)
{
    eng_fx *fx = FX(state);
    eng_db *db = fx->db;
    eng_test_put(db, ENG_CF_WRITE, "a", "1");
    char p[160];
    sst_path(fx, "missing.sst", p, sizeof(p));
    const char *paths[] = {p};
    int rc = eng_ingest(db, ENG_CF_WRITE, paths, 1);
    assert_true(rc == TKV_EENGINE || rc == -ENOENT);
    assert_non_null(strstr(eng_errmsg(db), "missing.sst"));
    if (fx->rocks) /* RocksDB's own words */
        assert_non_null(strstr(eng_errmsg(db), "IO error"));
    assert_int_equal(eng_ingest(db, ENG_CF_WRITE, paths, 0), -EINVAL);
    assert_int_equal(eng_ingest(db, (eng_cf)5, paths, 1), -EINVAL);

    /* A truncated file. */
    const char *kv[] = {"a", "2", "b", "2", "c", "2"};
    uint64_t size = write_sst(db, p, kv, TKV_ARRAY_LEN(kv));
    truncate_file(p, (long)size / 2);
    rc = eng_ingest(db, ENG_CF_WRITE, paths, 1);
    assert_int_equal(rc, TKV_ECORRUPT);
    assert_non_null(strstr(eng_errmsg(db), "ingest"));
    if (fx->rocks)
        assert_non_null(strstr(eng_errmsg(db), "Corruption"));
    /* Text that is not an SST file at all. */
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs("this is not an sst file, not even close to one........................", f);
    fclose(f);
    rc = eng_ingest(db, ENG_CF_WRITE, paths, 1);
    assert_true(rc == TKV_ECORRUPT || rc == TKV_EENGINE);
    assert_true(strlen(eng_errmsg(db)) > 0);
    /* Nothing was ingested. */
    eng_test_expect(db, ENG_CF_WRITE, "a", "1");
    eng_test_expect(db, ENG_CF_WRITE, "b", NULL);
}

static void test_mem_ingest_detects_flipped_bytes(void **state)
{
    eng_fx *fx = FX(state);
    char p[160];
    sst_path(fx, "flip.sst", p, sizeof(p));
    const char *kv[] = {"a", "value-a", "b", "value-b"};
    uint64_t size = write_sst(fx->db, p, kv, TKV_ARRAY_LEN(kv));
    const char *paths[] = {p};
    for (uint64_t off = 0; off < size; off++) {
        FILE *f = fopen(p, "r+b");
        assert_non_null(f);
        assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
        int c = fgetc(f);
        assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
        fputc(c ^ 0x20, f);
        fclose(f);
        assert_int_equal(eng_ingest(fx->db, ENG_CF_DEFAULT, paths, 1), TKV_ECORRUPT);
        f = fopen(p, "r+b");
        assert_non_null(f);
        assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
        fputc(c, f);
        fclose(f);
    }
    eng_test_expect(fx->db, ENG_CF_DEFAULT, "a", NULL);
    ingest(fx->db, ENG_CF_DEFAULT, paths, 1);
    eng_test_expect(fx->db, ENG_CF_DEFAULT, "a", "value-a");
}

/* ---- sizes, properties, maintenance ----------------------------------------------------- */

static void fill_random(eng_db *db, eng_cf cf, int from, int to, tkv_rng *rng)
{
    eng_batch *b = batch_new(db);
    char k[16];
    uint8_t v[200];
    for (int i = from; i < to; i++) {
        snprintf(k, sizeof(k), "key%05d", i);
        for (size_t j = 0; j < sizeof(v); j++)
            v[j] = (uint8_t)tkv_rng_next(rng); /* incompressible */
        assert_int_equal(eng_batch_put(b, cf, S(k), tkv_slice_of(v, sizeof(v))), 0);
        if (eng_batch_count(b) == 100) {
            write_batch(db, b, false);
            eng_batch_clear(b);
        }
    }
    write_batch(db, b, false);
    eng_batch_free(b);
}

static uint64_t approx_size(eng_db *db, eng_cf cf, const char *start, const char *end)
{
    uint64_t bytes = 0;
    int rc = eng_approx_size(db, cf, S(start), S(end), &bytes);
    if (rc != 0)
        fail_msg("eng_approx_size: %s", eng_errmsg(db));
    return bytes;
}

static uint64_t approx_keys(eng_db *db, eng_cf cf, const char *start, const char *end)
{
    uint64_t keys = 0;
    assert_int_equal(eng_approx_keys(db, cf, S(start), S(end), &keys), 0);
    return keys;
}

static uint64_t prop(eng_db *db, eng_cf cf, const char *name)
{
    uint64_t v = 0;
    int rc = eng_property_u64(db, cf, name, &v);
    if (rc != 0)
        fail_msg("property %s: %s", name, eng_errmsg(db));
    return v;
}

static void test_approximate_size_grows_with_data(void **state)
{
    eng_fx *fx = FX(state);
    eng_db *db = fx->db;
    tkv_rng rng;
    tkv_rng_seed(&rng, test_seed());
    assert_int_equal(approx_size(db, ENG_CF_WRITE, "key", "kez"), 0);
    assert_int_equal(approx_size(db, ENG_CF_WRITE, NULL, NULL), 0);

    fill_random(db, ENG_CF_WRITE, 0, 2000, &rng);
    assert_int_equal(eng_flush(db, true), 0);
    uint64_t all = approx_size(db, ENG_CF_WRITE, "key", "kez");
    uint64_t half = approx_size(db, ENG_CF_WRITE, "key", "key01000");
    printf("# %s: 2000 keys: all %" PRIu64 " bytes, first half %" PRIu64 "\n", eng_kind(db), all,
           half);
    assert_true(all >= 2000 * 200);
    assert_true(all <= 2000 * 300);
    assert_true(half > all / 4 && half < all * 3 / 4);
    assert_int_equal(approx_size(db, ENG_CF_WRITE, NULL, NULL), all);
    assert_int_equal(approx_size(db, ENG_CF_WRITE, "kez", "kf"), 0);
    assert_int_equal(approx_size(db, ENG_CF_WRITE, "key01000", "key"), 0); /* inverted */
    assert_int_equal(approx_size(db, ENG_CF_DEFAULT, NULL, NULL), 0);

    uint64_t keys = approx_keys(db, ENG_CF_WRITE, "key", "kez");
    uint64_t half_keys = approx_keys(db, ENG_CF_WRITE, "key", "key01000");
    assert_true(keys >= 1500 && keys <= 2000);
    assert_true(half_keys >= 500 && half_keys <= 1500);
    assert_int_equal(prop(db, ENG_CF_WRITE, ENG_PROP_ESTIMATE_NUM_KEYS), 2000);
    if (fx->rocks) {
        assert_true(prop(db, ENG_CF_WRITE, ENG_PROP_TOTAL_SST_FILES_SIZE) >= all);
    } else {
        assert_int_equal(keys, 2000);
        assert_int_equal(half_keys, 1000);
        assert_true(prop(db, ENG_CF_WRITE, ENG_PROP_CUR_SIZE_ALL_MEM_TABLES) >= all);
        assert_int_equal(prop(db, ENG_CF_WRITE, ENG_PROP_ESTIMATE_LIVE_DATA_SIZE),
                         2000 * (8 + 200));
    }

    fill_random(db, ENG_CF_WRITE, 2000, 4000, &rng);
    assert_int_equal(eng_flush(db, true), 0);
    uint64_t more = approx_size(db, ENG_CF_WRITE, "key", "kez");
    assert_true(more > all + all / 2);
    assert_int_equal(approx_size(db, ENG_CF_WRITE, "key", "key02000") > all / 2, true);

    uint64_t v;
    assert_int_equal(eng_property_u64(db, ENG_CF_WRITE, "rocksdb.no-such-property", &v),
                     TKV_ENOTFOUND);
    assert_non_null(strstr(eng_errmsg(db), "rocksdb.no-such-property"));
    assert_int_equal(eng_approx_size(db, (eng_cf)4, S(NULL), S(NULL), &v), -EINVAL);
}

static void test_compaction_drops_deleted_data_but_not_snapshot_data(void **state)
{
    eng_fx *fx = FX(state);
    eng_db *db = fx->db;
    tkv_rng rng;
    tkv_rng_seed(&rng, 7);
    fill_random(db, ENG_CF_DEFAULT, 0, 1000, &rng);
    assert_int_equal(eng_flush(db, true), 0);
    assert_true(approx_size(db, ENG_CF_DEFAULT, NULL, NULL) > 100000);
    /* A snapshot pins the value of one key through deletion and compaction. */
    eng_snap *s = snap_open(db);
    delete_range(db, ENG_CF_DEFAULT, "key", "kez");
    assert_int_equal(eng_flush(db, true), 0);
    assert_int_equal(eng_compact_range(db, ENG_CF_DEFAULT, S(NULL), S(NULL)), 0);
    eng_pinned *p = NULL;
    assert_int_equal(eng_snap_get_pinned(s, ENG_CF_DEFAULT, S("key00500"), &p), 0);
    assert_non_null(p);
    assert_int_equal(eng_pinned_value(p).len, 200);
    eng_pinned_free(p);
    eng_test_expect(db, ENG_CF_DEFAULT, "key00500", NULL);
    eng_snap_close(s);
    /* Without snapshots, compaction frees the space. */
    assert_int_equal(eng_compact_range(db, ENG_CF_DEFAULT, S(NULL), S(NULL)), 0);
    assert_int_equal(approx_size(db, ENG_CF_DEFAULT, NULL, NULL), 0);
    if (fx->rocks)
        assert_int_equal(prop(db, ENG_CF_DEFAULT, ENG_PROP_TOTAL_SST_FILES_SIZE), 0);
    else
        assert_int_equal(prop(db, ENG_CF_DEFAULT, ENG_PROP_CUR_SIZE_ALL_MEM_TABLES), 0);
    assert_int_equal(eng_flush_cf(db, ENG_CF_DEFAULT, false), 0);
    assert_int_equal(eng_flush_cf(db, (eng_cf)8, true), -EINVAL);
}

static void test_mem_drops_versions_no_view_can_see(void **state)
{
    eng_db *db = FX(state)->db;
    char v[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(v, sizeof(v), "v%d", i);
        eng_test_put(db, ENG_CF_RAFT, "k", v);
    }
    /* Without snapshots only the newest version stays. */
    uint64_t one = prop(db, ENG_CF_RAFT, ENG_PROP_CUR_SIZE_ALL_MEM_TABLES);
    assert_true(one > 0 && one < 256);
    eng_snap *s = snap_open(db);
    for (int i = 0; i < 1000; i++) {
        snprintf(v, sizeof(v), "w%d", i);
        eng_test_put(db, ENG_CF_RAFT, "k", v);
    }
    /* The snapshot keeps its version (and, conservatively, the ones after it). */
    assert_true(prop(db, ENG_CF_RAFT, ENG_PROP_CUR_SIZE_ALL_MEM_TABLES) > 1000 * 40);
    eng_test_expect_snap(s, ENG_CF_RAFT, "k", "v999");
    eng_snap_close(s);
    eng_test_put(db, ENG_CF_RAFT, "k", "last");
    assert_true(prop(db, ENG_CF_RAFT, ENG_PROP_CUR_SIZE_ALL_MEM_TABLES) <= one + 8);
    /* Deleting everything frees everything, tombstones included. */
    eng_test_del(db, ENG_CF_RAFT, "k");
    assert_int_equal(prop(db, ENG_CF_RAFT, ENG_PROP_CUR_SIZE_ALL_MEM_TABLES), 0);
    put_letters(db, ENG_CF_RAFT, "abcdefgh");
    delete_range(db, ENG_CF_RAFT, "a", "z");
    assert_int_equal(prop(db, ENG_CF_RAFT, ENG_PROP_CUR_SIZE_ALL_MEM_TABLES), 0);
    assert_int_equal(prop(db, ENG_CF_RAFT, ENG_PROP_ESTIMATE_NUM_KEYS), 0);
}

/* Runs @fn in a child process and returns whether it died of SIGABRT. */
static bool aborts(void (*fn)(eng_db *), eng_db *db)
{
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child shares the engine's memory image; it must not report the parent's leaks. */
        close(STDERR_FILENO);
        fn(db);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void close_snapshot_under_iterator(eng_db *db)
{
    eng_snap *s = NULL;
    eng_iter *it = NULL;
    if (eng_snap_open(db, &s) != 0 || eng_snap_iter_new(s, ENG_CF_DEFAULT, S(NULL), S(NULL), &it))
        _exit(1);
    eng_snap_close(s);
}

static void close_engine_under_snapshot(eng_db *db)
{
    eng_snap *s = NULL;
    if (eng_snap_open(db, &s) != 0)
        _exit(1);
    eng_close(db);
}

static void close_engine_under_batch(eng_db *db)
{
    eng_batch *b = NULL;
    if (eng_batch_new(db, &b) != 0)
        _exit(1);
    eng_close(db);
}

static void test_closing_under_live_objects_aborts(void **state)
{
    eng_db *db = FX(state)->db;
    assert_true(aborts(close_snapshot_under_iterator, db));
    assert_true(aborts(close_engine_under_snapshot, db));
    assert_true(aborts(close_engine_under_batch, db));
}

/* ---- errors ----------------------------------------------------------------------------- */

static void test_rocks_errors_carry_rocksdb_message(void **state)
{
    eng_fx *fx = FX(state);
    char err[TKV_ERRMSG_LEN];
    eng_db *db = NULL;
    eng_options o;
    eng_options_init(&o);
    o.name = "kv";

    /* The database is locked by the fixture's open handle. */
    int rc = eng_rocks_open(fx->path, &o, &db, err);
    assert_int_equal(rc, TKV_EENGINE);
    assert_null(db);
    printf("# locked: %s\n", err);
    assert_non_null(strstr(err, "open kv engine at"));
    assert_non_null(strstr(err, "LOCK"));
    assert_non_null(strstr(err, "IO error"));

    /* A path that is a regular file. */
    char file[160];
    snprintf(file, sizeof(file), "%s/plain-file", fx->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    rc = eng_rocks_open(file, &o, &db, err);
    assert_int_equal(rc, TKV_EENGINE);
    printf("# file: %s\n", err);
    assert_non_null(strstr(err, file));
    assert_non_null(strstr(err, "IO error"));

    /* A missing database without create_if_missing. */
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing", fx->dir);
    o.create_if_missing = false;
    rc = eng_rocks_open(missing, &o, &db, err);
    printf("# missing: %s\n", err);
    assert_int_equal(rc, TKV_EENGINE);
    assert_non_null(strstr(err, "does not exist"));
    assert_int_equal(eng_rocks_open(NULL, &o, &db, err), -EINVAL);
    assert_int_equal(eng_rocks_open(missing, NULL, &db, NULL), 0); /* defaults create it */
    eng_close(db);
    assert_int_equal(eng_rocks_destroy(missing, NULL, err), 0);
    assert_false(file_exists(missing));

    /* Handle errors are per thread and name the engine and the operation. */
    assert_string_equal(eng_errmsg(fx->db), "");
    assert_string_equal(eng_errmsg(NULL), "");
}

static void test_rocks_recycled_wal_files_recover_every_synced_write(void **state)
{
    eng_fx *fx = FX(state);
    char dir[200], err[TKV_ERRMSG_LEN], k[32], v[32];
    snprintf(dir, sizeof(dir), "%s/recycled", fx->dir);
    eng_options o;
    eng_options_init(&o);
    o.name = "raft";
    o.recycle_wal_files = 2;
    o.write_buffer_bytes = 64u << 10;
    eng_db *db = NULL;
    /* Several generations: each flush retires a WAL file that a later one reuses, so the
     * reopen must stop at the end of the current records, not at old ones behind them. */
    for (int gen = 0; gen < 4; gen++) {
        assert_int_equal(eng_rocks_open(dir, &o, &db, err), 0);
        for (int i = 0; i < 300; i++) {
            snprintf(k, sizeof(k), "k%d-%03d", gen, i);
            snprintf(v, sizeof(v), "v%d-%03d", gen, i);
            eng_batch *b = batch_new(db);
            assert_int_equal(eng_batch_put(b, ENG_CF_DEFAULT, S(k), S(v)), 0);
            write_batch(db, b, true);
            eng_batch_free(b);
            if (i == 150)
                assert_int_equal(eng_flush(db, true), 0);
        }
        eng_close(db);
    }
    assert_int_equal(eng_rocks_open(dir, &o, &db, err), 0);
    for (int gen = 0; gen < 4; gen++)
        for (int i = 0; i < 300; i++) {
            snprintf(k, sizeof(k), "k%d-%03d", gen, i);
            snprintf(v, sizeof(v), "v%d-%03d", gen, i);
            eng_test_expect(db, ENG_CF_DEFAULT, k, v);
        }
    eng_close(db);

    /* Reuse and an encrypting environment do not mix: refused before anything is opened. */
    o.rocksdb_env = &o; /* never dereferenced: the pair is refused first */
    assert_int_equal(eng_rocks_open(dir, &o, &db, err), -EINVAL);
    assert_non_null(strstr(err, "recycled WAL"));
    assert_int_equal(eng_rocks_destroy(dir, NULL, err), 0);
}

static void test_headroom_counts_every_memtable_and_compaction_output(void **state)
{
    (void)state;
    eng_options o;
    eng_options_init(&o);
    o.write_buffer_bytes = 10u << 20;
    o.max_background_jobs = 3;
    /* 4 CFs x 10 MiB + 3 jobs x 8 MiB = 64 MiB, plus 10%. */
    uint64_t want = (uint64_t)64 << 20;
    assert_true(eng_headroom_bytes(&o) == want + want / 10);
    eng_options_init(&o); /* RocksDB's defaults: 64 MiB memtables, 2 jobs */
    want = (uint64_t)(4 * 64 + 2 * 8) << 20;
    assert_true(eng_headroom_bytes(&o) == want + want / 10);
}

static void test_rocks_opens_database_with_extra_column_families(void **state)
{
    eng_fx *fx = FX(state);
    eng_close(fx->db);
    fx->db = NULL;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(eng_rocks_destroy(fx->path, NULL, err), 0);

    /* A database made elsewhere (an older layout) with a column family we do not use. */
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    const char *names[2] = {"default", "legacy"};
    const rocksdb_options_t *cf_opts[2] = {o, o};
    rocksdb_column_family_handle_t *cf[2];
    char *rerr = NULL;
    rocksdb_t *raw = rocksdb_open_column_families(o, fx->path, 2, names, cf_opts, cf, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put_cf(raw, wo, cf[1], "x", 1, "y", 1, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_column_family_handle_destroy(cf[0]);
    rocksdb_column_family_handle_destroy(cf[1]);
    rocksdb_close(raw);

    /* Our open adds our column families and keeps the other one. */
    eng_fx_reopen(fx);
    eng_test_put(fx->db, ENG_CF_RAFT, "r", "1");
    eng_fx_reopen(fx);
    eng_test_expect(fx->db, ENG_CF_RAFT, "r", "1");
    eng_close(fx->db);
    fx->db = NULL;
    size_t n = 0;
    char **list = rocksdb_list_column_families(o, fx->path, &n, &rerr);
    assert_null(rerr);
    assert_int_equal(n, 2 + ENG_CF_COUNT - 1);
    bool legacy = false, raft = false;
    for (size_t i = 0; i < n; i++) {
        legacy = legacy || strcmp(list[i], "legacy") == 0;
        raft = raft || strcmp(list[i], "raft") == 0;
    }
    assert_true(legacy && raft);
    rocksdb_list_column_families_destroy(list, n);
    rocksdb_options_destroy(o);
    eng_fx_reopen(fx);
    eng_test_expect(fx->db, ENG_CF_RAFT, "r", "1");
}

/* ---- eng_mem allocation failures -------------------------------------------------------- */

/* Runs @step with the allocator failing after 0, 1, 2... allocations until it succeeds;
 * every failure must be -ENOMEM and @check must hold after it. */
#define FAULT_LOOP(step, ...)                                                                      \
    do {                                                                                           \
        int rc_;                                                                                   \
        for (long n_ = 0;; n_++) {                                                                 \
            tkv_alloc_fail_after(n_);                                                              \
            rc_ = (step);                                                                          \
            tkv_alloc_fault_clear();                                                               \
            if (rc_ == 0)                                                                          \
                break;                                                                             \
            assert_int_equal(rc_, -ENOMEM);                                                        \
            __VA_ARGS__;                                                                           \
            assert_true(n_ < 10000);                                                               \
        }                                                                                          \
    } while (0)

static void expect_state(eng_db *db, const char *keys)
{
    eng_iter *it = iter_new(db, ENG_CF_DEFAULT, NULL, NULL);
    char buf[256];
    assert_string_equal(eng_test_scan(it, false, buf, sizeof(buf)), keys);
    eng_iter_free(it);
}

static void test_mem_allocation_failures_return_enomem(void **state)
{
    (void)state;
    eng_db *db = NULL;
    FAULT_LOOP(eng_mem_open(NULL, &db), assert_null(db));
    assert_string_equal(eng_kind(db), "memory");
    put_letters(db, ENG_CF_DEFAULT, "abcde");

    eng_batch *b = NULL;
    FAULT_LOOP(eng_batch_new(db, &b), assert_null(b));
    /* A long value makes the batch grow. */
    char big[1000];
    memset(big, 'v', sizeof(big));
    FAULT_LOOP(eng_batch_put(b, ENG_CF_DEFAULT, S("x"), tkv_slice_of(big, sizeof(big))),
               assert_int_equal(eng_batch_count(b), 0));
    assert_int_equal(eng_batch_delete(b, ENG_CF_DEFAULT, S("a")), 0);
    FAULT_LOOP(eng_batch_set_save_point(b), (void)0);
    assert_int_equal(eng_batch_delete_range(b, ENG_CF_DEFAULT, S("c"), S("e")), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_LOCK, S("l"), S("1")), 0);
    /* A failed write applies nothing, in any column family. */
    FAULT_LOOP(eng_write(db, b, true), {
        expect_state(db, "a,b,c,d,e");
        eng_test_expect(db, ENG_CF_LOCK, "l", NULL);
    });
    expect_state(db, "b,e,x");
    eng_test_expect(db, ENG_CF_LOCK, "l", "1");
    eng_batch_free(b);

    eng_snap *s = NULL;
    FAULT_LOOP(eng_snap_open(db, &s), assert_null(s));
    eng_iter *it = NULL;
    FAULT_LOOP(eng_snap_iter_new(s, ENG_CF_DEFAULT, S("a"), S("z"), &it), assert_null(it));
    eng_iter_free(it);
    it = NULL;
    FAULT_LOOP(eng_iter_new(db, ENG_CF_DEFAULT, S(NULL), S(NULL), &it), assert_null(it));
    eng_iter_free(it);

    tkv_buf v;
    tkv_buf_init(&v);
    bool found = false;
    FAULT_LOOP(eng_snap_get(s, ENG_CF_DEFAULT, S("x"), &v, &found), assert_int_equal(v.len, 0));
    assert_true(found);
    assert_int_equal(v.len, sizeof(big));
    tkv_buf_deinit(&v);
    eng_pinned *p = NULL;
    FAULT_LOOP(eng_get_pinned(db, ENG_CF_DEFAULT, S("x"), &p), assert_null(p));
    assert_int_equal(eng_pinned_value(p).len, sizeof(big));
    eng_pinned_free(p);
    eng_snap_close(s);

    /* SST writer and ingest. */
    char dir[] = "/tmp/tkv-engine-oom-XXXXXX";
    assert_int_equal(eng_test_mkdtemp(dir), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/f.sst", dir);
    eng_sst_writer *w = NULL;
    FAULT_LOOP(eng_sst_writer_new(db, path, &w), assert_null(w));
    FAULT_LOOP(eng_sst_writer_put(w, S("m"), S("1")), assert_int_equal(eng_sst_writer_count(w), 0));
    assert_int_equal(eng_sst_writer_put(w, S("n"), S("2")), 0);
    assert_int_equal(eng_sst_writer_finish(w, NULL), 0);
    eng_sst_writer_free(w);
    const char *paths[] = {path};
    FAULT_LOOP(eng_ingest(db, ENG_CF_DEFAULT, paths, 1), {
        expect_state(db, "b,e,x");
        assert_true(file_exists(path));
    });
    expect_state(db, "b,e,m,n,x");
    assert_int_equal(eng_test_rmtree(dir), 0);
    eng_close(db);
}

/* ---- randomized comparison with a model ------------------------------------------------- */

#define MODEL_KEYS  24
#define MODEL_CFS   2
#define MODEL_SNAPS 3

typedef struct model {
    bool present[MODEL_CFS][MODEL_KEYS];
    char value[MODEL_CFS][MODEL_KEYS][12];
} model;

static const eng_cf model_cf[MODEL_CFS] = {ENG_CF_DEFAULT, ENG_CF_WRITE};

static void model_key(int i, char out[8])
{
    snprintf(out, 8, "k%02d", i);
}

/* A seek target: a key, a string between two keys, or beyond every key. */
static void random_target(tkv_rng *rng, char out[8])
{
    int i = (int)tkv_rng_below(rng, MODEL_KEYS + 2) - 1;
    if (i < 0)
        snprintf(out, 8, "%s", tkv_rng_chance(rng, 1, 2) ? "" : "a");
    else if (i >= MODEL_KEYS)
        snprintf(out, 8, "z");
    else
        snprintf(out, 8, "k%02d%s", i, tkv_rng_chance(rng, 1, 3) ? "5" : "");
}

/* Returns the model's index of the first key >= @t (MODEL_KEYS if none). */
static int model_ge(const char *t)
{
    char k[8];
    for (int i = 0; i < MODEL_KEYS; i++) {
        model_key(i, k);
        if (strcmp(k, t) >= 0)
            return i;
    }
    return MODEL_KEYS;
}

typedef struct view {
    model m;
    eng_snap *snap; /* NULL: the latest state */
} view;

/* Compares an iterator over [@lo, @hi) with the model through seeks and a random walk. */
static void check_iter(eng_iter *it, const model *m, int cfi, const char *lo, const char *hi,
                       tkv_rng *rng)
{
    /* Visible model keys inside the bounds. */
    int keys[MODEL_KEYS], n = 0;
    int from = model_ge(lo), to = hi[0] ? model_ge(hi) : MODEL_KEYS;
    for (int i = from; i < to; i++)
        if (m->present[cfi][i])
            keys[n++] = i;
    for (int round = 0; round < 6; round++) {
        int pos; /* index into keys[], -1 or n: invalid */
        bool ok;
        char t[8];
        switch (tkv_rng_below(rng, 4)) {
        case 0:
            ok = eng_iter_seek_to_first(it);
            pos = 0;
            break;
        case 1:
            ok = eng_iter_seek_to_last(it);
            pos = n - 1;
            break;
        case 2: {
            random_target(rng, t);
            ok = eng_iter_seek(it, S(t));
            int g = model_ge(t);
            pos = 0;
            while (pos < n && keys[pos] < g)
                pos++;
            break;
        }
        default: {
            random_target(rng, t);
            ok = eng_iter_seek_for_prev(it, S(t));
            /* last key <= t */
            char k[8];
            pos = -1;
            for (int j = 0; j < n; j++) {
                model_key(keys[j], k);
                if (strcmp(k, t) <= 0)
                    pos = j;
            }
            break;
        }
        }
        for (int step = 0; step < 8; step++) {
            bool want = pos >= 0 && pos < n;
            if (want) {
                char k[8];
                model_key(keys[pos], k);
                expect_at(it, ok, k);
                assert_true(tkv_slice_eq(eng_iter_value(it), S(m->value[cfi][keys[pos]])));
            } else {
                expect_at(it, ok, NULL);
                break;
            }
            if (tkv_rng_chance(rng, 1, 2)) {
                ok = eng_iter_next(it);
                pos++;
            } else {
                ok = eng_iter_prev(it);
                pos--;
            }
        }
    }
}

static void test_random_operations_match_a_model(void **state)
{
    eng_db *db = FX(state)->db;
    tkv_rng rng;
    tkv_rng_seed(&rng, test_seed());
    model cur;
    memset(&cur, 0, sizeof(cur));
    view views[MODEL_SNAPS];
    memset(views, 0, sizeof(views));
    char k[8], k2[8];
    for (int stepno = 0; stepno < 700; stepno++) {
        uint64_t r = tkv_rng_below(&rng, 100);
        if (r < 40) { /* a batch of 1-5 operations */
            eng_batch *b = batch_new(db);
            int ops = 1 + (int)tkv_rng_below(&rng, 5);
            for (int i = 0; i < ops; i++) {
                int cfi = (int)tkv_rng_below(&rng, MODEL_CFS);
                int key = (int)tkv_rng_below(&rng, MODEL_KEYS);
                model_key(key, k);
                uint64_t kind = tkv_rng_below(&rng, 10);
                if (kind < 6) {
                    char *v = cur.value[cfi][key];
                    snprintf(v, 12, "v%d", stepno * 10 + i);
                    cur.present[cfi][key] = true;
                    assert_int_equal(eng_batch_put(b, model_cf[cfi], S(k), S(v)), 0);
                } else if (kind < 9) {
                    cur.present[cfi][key] = false;
                    assert_int_equal(eng_batch_delete(b, model_cf[cfi], S(k)), 0);
                } else {
                    int end = key + (int)tkv_rng_below(&rng, 6);
                    model_key(end, k2);
                    if (end >= MODEL_KEYS)
                        snprintf(k2, sizeof(k2), "z");
                    for (int j = key; j < end && j < MODEL_KEYS; j++)
                        cur.present[cfi][j] = false;
                    assert_int_equal(eng_batch_delete_range(b, model_cf[cfi], S(k), S(k2)), 0);
                }
            }
            write_batch(db, b, false);
            eng_batch_free(b);
        } else if (r < 50) { /* take or drop a snapshot */
            view *v = &views[tkv_rng_below(&rng, MODEL_SNAPS)];
            if (v->snap != NULL) {
                eng_snap_close(v->snap);
                v->snap = NULL;
            } else {
                v->snap = snap_open(db);
                v->m = cur;
            }
        } else if (r < 55) {
            model_key((int)tkv_rng_below(&rng, MODEL_KEYS), k);
            assert_int_equal(
                eng_compact_range(db, model_cf[tkv_rng_below(&rng, MODEL_CFS)], S(k), S(NULL)), 0);
        } else if (r < 80) { /* point reads, latest or at a snapshot */
            view *v = &views[tkv_rng_below(&rng, MODEL_SNAPS)];
            int cfi = (int)tkv_rng_below(&rng, MODEL_CFS);
            int key = (int)tkv_rng_below(&rng, MODEL_KEYS);
            model_key(key, k);
            if (v->snap != NULL)
                eng_test_expect_snap(v->snap, model_cf[cfi], k,
                                     v->m.present[cfi][key] ? v->m.value[cfi][key] : NULL);
            else
                eng_test_expect(db, model_cf[cfi], k,
                                cur.present[cfi][key] ? cur.value[cfi][key] : NULL);
        } else { /* iteration with random bounds */
            view *v = &views[tkv_rng_below(&rng, MODEL_SNAPS)];
            int cfi = (int)tkv_rng_below(&rng, MODEL_CFS);
            char lo[8], hi[8];
            random_target(&rng, lo);
            random_target(&rng, hi);
            if (tkv_rng_chance(&rng, 1, 4))
                hi[0] = '\0'; /* unbounded */
            eng_iter *it = NULL;
            if (v->snap != NULL)
                assert_int_equal(eng_snap_iter_new(v->snap, model_cf[cfi], S(lo), S(hi), &it), 0);
            else
                it = iter_new(db, model_cf[cfi], lo, hi);
            /* Writes after the iterator's creation stay invisible to it. */
            eng_test_put(db, model_cf[cfi], "k05", "late");
            eng_test_del(db, model_cf[cfi], "k06");
            const model *m = v->snap != NULL ? &v->m : &cur;
            bool empty = hi[0] && strcmp(lo, hi) >= 0;
            if (empty) {
                expect_at(it, eng_iter_seek_to_first(it), NULL);
                expect_at(it, eng_iter_seek_to_last(it), NULL);
            } else {
                check_iter(it, m, cfi, lo, hi, &rng);
            }
            eng_iter_free(it);
            snprintf(cur.value[cfi][5], 12, "late");
            cur.present[cfi][5] = true;
            cur.present[cfi][6] = false;
        }
    }
    for (int i = 0; i < MODEL_SNAPS; i++)
        eng_snap_close(views[i].snap);
}

#define ROCKS(t)                                                                                   \
    {                                                                                              \
        "rocks: " #t, t, eng_fx_setup_rocks, eng_fx_teardown, NULL                                 \
    }
#define MEM(t)                                                                                     \
    {                                                                                              \
        "mem: " #t, t, eng_fx_setup_mem, eng_fx_teardown, NULL                                     \
    }
#define BOTH(t) ROCKS(t), MEM(t)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_put_get_delete_per_column_family),
        BOTH(test_pinned_get_returns_value_without_copy_buffer),
        ROCKS(test_rocks_writes_survive_close_and_reopen),
        BOTH(test_snapshot_does_not_see_later_writes),
        BOTH(test_iterator_reads_the_state_at_its_creation),
        BOTH(test_bounded_iteration_in_both_directions),
        BOTH(test_empty_ranges_iterate_nothing),
        BOTH(test_iteration_skips_deleted_and_overwritten_versions),
        BOTH(test_write_batch_is_atomic_across_column_families),
        BOTH(test_batch_count_size_clear_and_save_points),
        BOTH(test_delete_range_removes_exactly_the_range),
        BOTH(test_sst_write_and_ingest_replaces_keys),
        BOTH(test_sst_writer_rejects_keys_out_of_order),
        BOTH(test_ingest_rejects_missing_and_damaged_files),
        MEM(test_mem_ingest_detects_flipped_bytes),
        BOTH(test_approximate_size_grows_with_data),
        BOTH(test_compaction_drops_deleted_data_but_not_snapshot_data),
        MEM(test_mem_drops_versions_no_view_can_see),
        MEM(test_closing_under_live_objects_aborts),
        ROCKS(test_rocks_errors_carry_rocksdb_message),
        ROCKS(test_rocks_opens_database_with_extra_column_families),
        ROCKS(test_rocks_recycled_wal_files_recover_every_synced_write),
        cmocka_unit_test(test_headroom_counts_every_memtable_and_compaction_output),
        cmocka_unit_test(test_mem_allocation_failures_return_enomem),
        BOTH(test_random_operations_match_a_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
