/*
 * test_client_txn.c: libtikvc's transactions against fake PD and fake stores with
 * memcomparable-encoded region boundaries: two-phase commit order (prewrite per region,
 * primary committed before the secondaries), conflicts reported and rolled back, reads at
 * the start timestamp with the transaction's own writes merged in (get, batch get, scans and
 * iterators both ways), and resolution of locks left by crashed transactions.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/codec.h"
#include "unit/client/client_fixture.h"

static const char *const splits3[] = {"g", "p"};

static void start(fx *f)
{
    fx_start(f, 3, true, splits3, 2, NULL);
}

static tikvc_txn *begin(fx *f)
{
    tikvc_txn *t = NULL;
    assert_int_equal(tikvc_txn_begin(f->c, &t), TIKVC_OK);
    assert_true(tikvc_txn_start_ts(t) > 0);
    return t;
}

static void set(tikvc_txn *t, const char *k, const char *v)
{
    assert_int_equal(tikvc_txn_set(t, k, strlen(k), v, strlen(v)), TIKVC_OK);
}

static void commit(tikvc_txn *t)
{
    int rc = tikvc_txn_commit(t);
    if (rc != 0)
        printf("# commit: %s\n", tikvc_errmsg());
    assert_int_equal(rc, TIKVC_OK);
}

/* Asserts that @t reads @k as @v (NULL: absent). */
static void expect(tikvc_txn *t, const char *k, const char *v)
{
    tikvc_buf b = {0};
    bool found = !v;
    int rc = tikvc_txn_get(t, k, strlen(k), &b, &found);
    fx_check_read(rc, &b, found, k, v);
}

/* Reads @k in a fresh transaction. */
static void expect_fresh(fx *f, const char *k, const char *v)
{
    tikvc_txn *t = begin(f);
    expect(t, k, v);
    tikvc_txn_free(t);
}

/* Commits @k = @v in a transaction of its own. */
static void put(fx *f, const char *k, const char *v)
{
    tikvc_txn *t = begin(f);
    set(t, k, v);
    commit(t);
    tikvc_txn_free(t);
}

/* Returns a timestamp @ago_ms in the past. */
static uint64_t ts_ago(fx *f, uint64_t ago_ms)
{
    uint64_t now;
    assert_int_equal(tikvc_pd_tso(f->c, &now), TIKVC_OK);
    return now - (ago_ms << 18);
}

static bool logged(fx *f, const char *method, size_t *at)
{
    for (size_t i = *at; i < f->fc.n_log; i++) {
        if (strcmp(f->fc.log[i].method, method) == 0) {
            *at = i;
            return true;
        }
    }
    return false;
}

/* ---- two-phase commit ------------------------------------------------------------------- */

static void test_commit_prewrites_every_region_then_commits_the_primary_first(void **state)
{
    (void)state;
    fx f;
    start(&f);
    tikvc_txn *t = begin(&f);
    set(t, "z", "3");
    set(t, "h", "2");
    set(t, "a", "1");
    set(t, "b", "x");
    assert_int_equal(tikvc_txn_delete(t, "b", 1), TIKVC_OK);
    commit(t);
    uint64_t start_ts = tikvc_txn_start_ts(t), commit_ts = tikvc_txn_commit_ts(t);
    assert_true(commit_ts > start_ts);
    assert_int_equal(tikvc_txn_commit(t), TIKVC_ECLOSED);
    tikvc_txn_free(t);

    pthread_mutex_lock(&f.pd.mu);
    size_t prewrites = 0, prewrite_keys = 0, first_commit = SIZE_MAX, commit_keys = 0;
    for (size_t i = 0; i < f.fc.n_log; i++) {
        fs_log *l = &f.fc.log[i];
        assert_int_equal(l->start_ts, start_ts);
        if (strcmp(l->method, "KvPrewrite") == 0) {
            /* Every prewrite comes before every commit. */
            assert_int_equal(first_commit, SIZE_MAX);
            prewrites++;
            prewrite_keys += l->n_keys;
        } else if (strcmp(l->method, "KvCommit") == 0) {
            assert_int_equal(l->commit_ts, commit_ts);
            if (first_commit == SIZE_MAX) {
                /* The primary (the smallest key) alone, first. */
                first_commit = i;
                assert_string_equal(l->key, "a");
                assert_int_equal(l->n_keys, 1);
            }
            commit_keys += l->n_keys;
        }
    }
    assert_int_equal(prewrites, 3); /* one per region */
    assert_int_equal(prewrite_keys, 4);
    assert_int_equal(commit_keys, 4);
    /* PD was asked with memcomparable-encoded keys (8 bytes + marker for a short key). */
    assert_int_equal(f.pd.last_region_key_len, 9);
    pthread_mutex_unlock(&f.pd.mu);

    expect_fresh(&f, "a", "1");
    expect_fresh(&f, "h", "2");
    expect_fresh(&f, "z", "3");
    expect_fresh(&f, "b", NULL);
    assert_false(fake_cluster_has_lock(&f.fc, tkv_slice_str("a")));
    assert_false(fake_cluster_has_lock(&f.fc, tkv_slice_str("z")));
    fx_stop(&f);
}

static void test_read_only_and_rolled_back_transactions_write_nothing(void **state)
{
    (void)state;
    fx f;
    start(&f);
    tikvc_txn *t = begin(&f);
    expect(t, "a", NULL);
    commit(t);
    tikvc_txn_free(t);
    t = begin(&f);
    set(t, "a", "1");
    assert_int_equal(tikvc_txn_rollback(t), TIKVC_OK);
    assert_int_equal(tikvc_txn_set(t, "b", 1, "2", 1), TIKVC_ECLOSED);
    assert_int_equal(tikvc_txn_commit(t), TIKVC_ECLOSED);
    tikvc_txn_free(t);
    /* An unfinished transaction is discarded by free. */
    t = begin(&f);
    set(t, "c", "1");
    tikvc_txn_free(t);
    assert_int_equal(f.fc.n_log, 0);
    expect_fresh(&f, "a", NULL);
    fx_stop(&f);
}

static void test_write_conflict_is_reported_and_rolled_back(void **state)
{
    (void)state;
    fx f;
    start(&f);
    tikvc_txn *t1 = begin(&f);
    tikvc_txn *t2 = begin(&f);
    set(t2, "x", "from t2");
    commit(t2);
    set(t1, "h", "from t1");
    set(t1, "x", "from t1");
    assert_int_equal(tikvc_txn_commit(t1), TIKVC_ECONFLICT);
    assert_non_null(strstr(tikvc_errmsg(), "conflict"));
    assert_int_equal(tikvc_txn_commit_ts(t1), 0);
    /* Nothing of t1 stays locked, its rollback was sent, and t2's value stands. */
    assert_false(fake_cluster_has_lock(&f.fc, tkv_slice_str("h")));
    assert_false(fake_cluster_has_lock(&f.fc, tkv_slice_str("x")));
    size_t at = 0;
    assert_true(logged(&f, "KvBatchRollback", &at));
    expect_fresh(&f, "x", "from t2");
    expect_fresh(&f, "h", NULL);
    tikvc_txn_free(t1);
    tikvc_txn_free(t2);
    fx_stop(&f);
}

static void test_lost_answer_to_the_primary_commit_is_undetermined(void **state)
{
    (void)state;
    fx f;
    tikvc_opts o;
    fx_start(&f, 3, true, splits3, 2, NULL);
    fx_opts(&f, &o);
    o.rpc_timeout_ms = 200;
    o.max_backoff_ms = 300;
    fx_reopen(&f, &o);
    tikvc_txn *t = begin(&f);
    set(t, "a", "1");
    set(t, "z", "2");
    /* Region [, g) leads on store 1: its commits are never answered. */
    pthread_mutex_lock(&f.pd.mu);
    fake_cluster_store(&f.fc, 1)->inj.drop = 1000;
    snprintf(fake_cluster_store(&f.fc, 1)->inj.drop_method, 32, "KvCommit");
    pthread_mutex_unlock(&f.pd.mu);
    assert_int_equal(tikvc_txn_commit(t), TIKVC_EUNDETERMINED);
    assert_non_null(strstr(tikvc_errmsg(), "may or may not"));
    /* The secondary was never committed. */
    size_t at = 0;
    assert_false(logged(&f, "KvCommit", &at));
    assert_true(fake_cluster_has_lock(&f.fc, tkv_slice_str("z")));
    tikvc_txn_free(t);
    fx_stop(&f);
}

/* ---- reads ------------------------------------------------------------------------------ */

static void test_reads_see_the_snapshot_and_their_own_writes(void **state)
{
    (void)state;
    fx f;
    start(&f);
    tikvc_txn *w = begin(&f);
    char k[8];
    for (int c = 'a'; c <= 'z'; c += 3) {
        snprintf(k, sizeof(k), "%c", c);
        set(w, k, k);
    }
    commit(w); /* a d g j m p s v y */
    tikvc_txn_free(w);

    tikvc_txn *t = begin(&f);
    put(&f, "m", "newer"); /* committed after t started: invisible to t */
    expect(t, "m", "m");
    set(t, "b", "mine");
    assert_int_equal(tikvc_txn_delete(t, "d", 1), TIKVC_OK);
    set(t, "g", "over");
    expect(t, "b", "mine");
    expect(t, "d", NULL);

    tikvc_kvs out = {0};
    assert_int_equal(tikvc_txn_scan(t, "", 0, "", 0, 100, 0, &out), TIKVC_OK);
    const char *want[] = {"a", "b", "g", "j", "m", "p", "s", "v", "y"};
    assert_int_equal(out.len, 9);
    for (size_t i = 0; i < out.len; i++)
        assert_memory_equal(out.items[i].key.data, want[i], 1);
    assert_memory_equal(out.items[1].value.data, "mine", 4);
    assert_memory_equal(out.items[2].value.data, "over", 4);
    assert_memory_equal(out.items[4].value.data, "m", 1);
    /* Reverse over [b, s), limited. */
    assert_int_equal(tikvc_txn_scan(t, "b", 1, "s", 1, 4, TIKVC_SCAN_REVERSE, &out), TIKVC_OK);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.items[0].key.data, "p", 1);
    assert_memory_equal(out.items[3].key.data, "g", 1);
    tikvc_kvs_free(&out);

    /* An iterator walks the merge lazily. */
    tikvc_iter *it = NULL;
    assert_int_equal(tikvc_txn_iter(t, "c", 1, "n", 1, 0, &it), TIKVC_OK);
    const char *iw[] = {"g", "j", "m"};
    for (int i = 0; i < 3; i++) {
        assert_true(tikvc_iter_valid(it));
        assert_memory_equal(tikvc_iter_key(it).data, iw[i], 1);
        assert_int_equal(tikvc_iter_next(it), TIKVC_OK);
    }
    assert_false(tikvc_iter_valid(it));
    tikvc_iter_free(it);

    tikvc_slice keys[] = {{"a", 1}, {"b", 1}, {"d", 1}, {"e", 1}, {"m", 1}};
    assert_int_equal(tikvc_txn_batch_get(t, keys, 5, &out), TIKVC_OK);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.items[1].key.data, "b", 1);
    assert_memory_equal(out.items[1].value.data, "mine", 4);
    assert_memory_equal(out.items[2].value.data, "m", 1);
    tikvc_kvs_free(&out);
    commit(t);
    tikvc_txn_free(t);
    expect_fresh(&f, "d", NULL);
    expect_fresh(&f, "m", "newer");
    fx_stop(&f);
}

static void test_iterators_cross_regions_in_batches_both_ways(void **state)
{
    (void)state;
    fx f;
    start(&f);
    enum { N = 700 }; /* more than one 256-pair batch per region */
    tikvc_txn *w = begin(&f);
    char k[16];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "%c%04d", "ahr"[i % 3], i);
        set(w, k, k);
    }
    commit(w);
    tikvc_txn_free(w);
    tikvc_txn *t = begin(&f);
    for (int dir = 0; dir < 2; dir++) {
        tikvc_iter *it = NULL;
        assert_int_equal(tikvc_txn_iter(t, "", 0, "", 0, dir ? TIKVC_SCAN_REVERSE : 0, &it),
                         TIKVC_OK);
        int n = 0;
        char prev[16] = "";
        while (tikvc_iter_valid(it)) {
            tikvc_slice key = tikvc_iter_key(it);
            assert_int_equal(key.len, 5);
            if (n > 0) {
                int c = memcmp(prev, key.data, 5);
                assert_true(dir ? c > 0 : c < 0);
            }
            memcpy(prev, key.data, 5);
            n++;
            assert_int_equal(tikvc_iter_next(it), TIKVC_OK);
        }
        assert_int_equal(n, N);
        tikvc_iter_free(it);
    }
    tikvc_txn_free(t);
    fx_stop(&f);
}

/* ---- lock resolution -------------------------------------------------------------------- */

static void test_locks_of_a_crashed_transaction_are_rolled_back_by_readers(void **state)
{
    (void)state;
    fx f;
    start(&f);
    put(&f, "s", "old");
    uint64_t ts = ts_ago(&f, 10000);
    /* Prewritten 10 s ago with a 100 ms TTL, never committed. */
    fake_cluster_put_lock(&f.fc, tkv_slice_str("p"), tkv_slice_str("p"), ts, 100,
                          tkv_slice_str("lost"));
    fake_cluster_put_lock(&f.fc, tkv_slice_str("s"), tkv_slice_str("p"), ts, 100,
                          tkv_slice_str("lost"));
    size_t mark = f.fc.n_log;
    expect_fresh(&f, "s", "old");
    expect_fresh(&f, "p", NULL);
    assert_false(fake_cluster_has_lock(&f.fc, tkv_slice_str("s")));
    assert_false(fake_cluster_has_lock(&f.fc, tkv_slice_str("p")));
    size_t at = mark;
    assert_true(logged(&f, "KvCheckTxnStatus", &at));
    assert_string_equal(f.fc.log[at].key, "p");
    assert_true(logged(&f, "KvResolveLock", &at));
    assert_string_equal(f.fc.log[at].key, "s");
    assert_int_equal(f.fc.log[at].commit_ts, 0);
    fx_stop(&f);
}

static void test_locks_of_a_committed_primary_are_committed_by_readers(void **state)
{
    (void)state;
    fx f;
    start(&f);
    uint64_t ts = ts_ago(&f, 5000);
    fake_cluster_put_lock(&f.fc, tkv_slice_str("a"), tkv_slice_str("a"), ts, 3000,
                          tkv_slice_str("A"));
    fake_cluster_put_lock(&f.fc, tkv_slice_str("z"), tkv_slice_str("a"), ts, 3000,
                          tkv_slice_str("Z"));
    /* The owner committed its primary, then crashed before the secondary. */
    fake_cluster_commit_key(&f.fc, tkv_slice_str("a"), ts, ts + 1);
    expect_fresh(&f, "z", "Z");
    expect_fresh(&f, "a", "A");
    assert_false(fake_cluster_has_lock(&f.fc, tkv_slice_str("z")));
    size_t at = 0;
    assert_true(logged(&f, "KvResolveLock", &at));
    assert_int_equal(f.fc.log[at].commit_ts, ts + 1);
    fx_stop(&f);
}

static void test_a_secondary_without_its_primary_lock_is_rolled_back_once_expired(void **state)
{
    (void)state;
    fx f;
    start(&f);
    uint64_t ts = ts_ago(&f, 10000);
    /* The primary "b" never got prewritten. */
    fake_cluster_put_lock(&f.fc, tkv_slice_str("q"), tkv_slice_str("b"), ts, 100,
                          tkv_slice_str("Q"));
    expect_fresh(&f, "q", NULL);
    assert_false(fake_cluster_has_lock(&f.fc, tkv_slice_str("q")));
    fx_stop(&f);
}

static void test_a_live_lock_is_waited_for_within_the_budget(void **state)
{
    (void)state;
    fx f;
    tikvc_opts o;
    fx_start(&f, 3, true, splits3, 2, NULL);
    fx_opts(&f, &o);
    o.max_backoff_ms = 400;
    fx_reopen(&f, &o);
    uint64_t ts = ts_ago(&f, 0);
    fake_cluster_put_lock(&f.fc, tkv_slice_str("k"), tkv_slice_str("k"), ts, 60000,
                          tkv_slice_str("V"));
    tikvc_txn *t = begin(&f);
    tikvc_buf b = {0};
    bool found;
    uint64_t t0 = tkv_clock_mono_ms();
    assert_int_equal(tikvc_txn_get(t, "k", 1, &b, &found), TIKVC_ELOCKED);
    assert_true(tkv_clock_mono_ms() - t0 < 5000);
    assert_non_null(strstr(tikvc_errmsg(), "lock"));
    assert_true(fake_cluster_has_lock(&f.fc, tkv_slice_str("k")));
    tikvc_txn_free(t);

    /* A lock whose TTL runs out while the reader waits is then rolled back. */
    o.max_backoff_ms = 10000;
    fx_reopen(&f, &o);
    ts = ts_ago(&f, 0);
    fake_cluster_put_lock(&f.fc, tkv_slice_str("w"), tkv_slice_str("w"), ts, 300,
                          tkv_slice_str("W"));
    t0 = tkv_clock_mono_ms();
    expect_fresh(&f, "w", NULL);
    assert_true(tkv_clock_mono_ms() - t0 >= 100);
    assert_false(fake_cluster_has_lock(&f.fc, tkv_slice_str("w")));
    fx_stop(&f);
}

static void test_prewrite_resolves_a_crashed_lock_and_commits(void **state)
{
    (void)state;
    fx f;
    start(&f);
    uint64_t ts = ts_ago(&f, 10000);
    fake_cluster_put_lock(&f.fc, tkv_slice_str("w"), tkv_slice_str("w"), ts, 100,
                          tkv_slice_str("lost"));
    put(&f, "w", "mine");
    expect_fresh(&f, "w", "mine");
    fx_stop(&f);
}

/* A store that finds one key of a prewrite locked writes none of the request's keys: after
 * resolving the lock, the keys that had no error must be prewritten again too (a client that
 * retried only the locked key lost the primary's lock and failed its commit). */
static void test_prewrite_retries_the_whole_request_after_resolving_a_lock(void **state)
{
    (void)state;
    fx f;
    start(&f);
    uint64_t ts = ts_ago(&f, 10000);
    fake_cluster_put_lock(&f.fc, tkv_slice_str("x"), tkv_slice_str("x"), ts, 100,
                          tkv_slice_str("lost"));
    tikvc_txn *t = begin(&f);
    set(t, "w", "primary"); /* the primary, in the same region as x */
    set(t, "x", "secondary");
    commit(t);
    tikvc_txn_free(t);
    expect_fresh(&f, "w", "primary");
    expect_fresh(&f, "x", "secondary");
    fx_stop(&f);
}

static void test_scans_resolve_locks_on_the_way(void **state)
{
    (void)state;
    fx f;
    start(&f);
    tikvc_txn *w = begin(&f);
    char k[16];
    for (int i = 0; i < 30; i++) {
        snprintf(k, sizeof(k), "%c%02d", "ahr"[i % 3], i);
        set(w, k, "v");
    }
    commit(w);
    tikvc_txn_free(w);
    uint64_t ts = ts_ago(&f, 10000);
    fake_cluster_put_lock(&f.fc, tkv_slice_str("h10"), tkv_slice_str("h10"), ts, 100,
                          tkv_slice_str("lost"));
    fake_cluster_put_lock(&f.fc, tkv_slice_str("r11"), tkv_slice_str("h10"), ts, 100,
                          tkv_slice_str("lost"));
    tikvc_txn *t = begin(&f);
    tikvc_kvs out = {0};
    for (int dir = 0; dir < 2; dir++) {
        assert_int_equal(tikvc_txn_scan(t, "", 0, "", 0, 100, dir ? TIKVC_SCAN_REVERSE : 0, &out),
                         TIKVC_OK);
        assert_int_equal(out.len, 30);
        for (size_t i = 0; i < out.len; i++)
            assert_memory_equal(out.items[i].value.data, "v", 1);
    }
    tikvc_kvs_free(&out);
    tikvc_txn_free(t);
    assert_false(fake_cluster_has_lock(&f.fc, tkv_slice_str("r11")));
    fx_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_prewrites_every_region_then_commits_the_primary_first),
        cmocka_unit_test(test_read_only_and_rolled_back_transactions_write_nothing),
        cmocka_unit_test(test_write_conflict_is_reported_and_rolled_back),
        cmocka_unit_test(test_lost_answer_to_the_primary_commit_is_undetermined),
        cmocka_unit_test(test_reads_see_the_snapshot_and_their_own_writes),
        cmocka_unit_test(test_iterators_cross_regions_in_batches_both_ways),
        cmocka_unit_test(test_locks_of_a_crashed_transaction_are_rolled_back_by_readers),
        cmocka_unit_test(test_locks_of_a_committed_primary_are_committed_by_readers),
        cmocka_unit_test(test_a_secondary_without_its_primary_lock_is_rolled_back_once_expired),
        cmocka_unit_test(test_a_live_lock_is_waited_for_within_the_budget),
        cmocka_unit_test(test_prewrite_resolves_a_crashed_lock_and_commits),
        cmocka_unit_test(test_prewrite_retries_the_whole_request_after_resolving_a_lock),
        cmocka_unit_test(test_scans_resolve_locks_on_the_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
