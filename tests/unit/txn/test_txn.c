/*
 * test_txn.c: Percolator transactions through the kvrpcpb methods, on stor_kv_local over
 * eng_mem and eng_rocks: every action and its TiKV error fields, lock resolution, pessimistic
 * locks with waiting and deadlock detection, MVCC reads (older snapshots, reverse scans,
 * resolved and committed locks, long values), and GC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/keys.h"
#include "storage/gc/gc.h"
#include "storage/txn/txn_int.h"
#include "txn_fixture.h"

static bool g_rocks;

static int setup(void **state)
{
    *state = fx_open(g_rocks);
    return 0;
}

static int teardown(void **state)
{
    fx_close(*state);
    return 0;
}

/* Timestamps with a physical part, for TTL tests. */
static uint64_t ts_ms(uint64_t ms)
{
    return txn_ts_compose(ms, 0);
}

/* ---- prewrite and commit ------------------------------------------------------------------ */

static void test_commit_makes_value_visible_at_and_after_commit_ts_only(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "k", "v1", "k", 10);
    fx_must_get(f, "k", 9, NULL);
    fx_must_get(f, "k", 10, NULL); /* min_commit_ts 11 > 10: the lock cannot hide a version */
    fx_must_get_locked(f, "k", 11, 10);
    fx_must_commit(f, "k", 10, 20);
    fx_must_get(f, "k", 19, NULL);
    fx_must_get(f, "k", 20, "v1");
    fx_must_prewrite_put(f, "k", "v2", "k", 30);
    fx_must_commit(f, "k", 30, 40);
    /* Snapshot reads at older timestamps keep seeing the older versions. */
    fx_must_get(f, "k", 25, "v1");
    fx_must_get(f, "k", 39, "v1");
    fx_must_get(f, "k", 40, "v2");
    fx_must_get(f, "k", UINT64_MAX, "v2");
    /* Delete hides the key from then on. */
    Kvrpcpb__PrewriteResponse *p = fx_prewrite(f, "k", NULL, KVRPCPB__OP__Del, "k", 50);
    assert_int_equal(p->n_errors, 0);
    fx_free(p);
    fx_must_commit(f, "k", 50, 60);
    fx_must_get(f, "k", 59, "v2");
    fx_must_get(f, "k", 60, NULL);
}

static void test_prewrite_reports_write_conflict_with_tikv_fields(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "k", "a", "p1", 10);
    fx_must_commit(f, "k", 10, 20);
    Kvrpcpb__PrewriteResponse *r = fx_prewrite(f, "k", "b", KVRPCPB__OP__Put, "p2", 15);
    assert_int_equal(r->n_errors, 1);
    Kvrpcpb__WriteConflict *wc = r->errors[0]->conflict;
    assert_non_null(wc);
    assert_int_equal(wc->start_ts, 15);
    assert_int_equal(wc->conflict_ts, 10);
    assert_int_equal(wc->conflict_commit_ts, 20);
    assert_true(fx_bin_eq(wc->key, "k"));
    assert_true(fx_bin_eq(wc->primary, "p2"));
    assert_int_equal(wc->reason, KVRPCPB__WRITE_CONFLICT__REASON__Optimistic);
    assert_non_null(r->errors[0]->retryable);
    assert_true(strlen(r->errors[0]->retryable) > 0);
    fx_free(r);
    /* Nothing was written: a later transaction sees no lock. */
    fx_must_get(f, "k", 30, "a");
}

static void test_prewrite_meets_other_lock_and_own_lock(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "k", "a", "k", 10);
    Kvrpcpb__PrewriteResponse *r = fx_prewrite(f, "k", "b", KVRPCPB__OP__Put, "k2", 11);
    assert_int_equal(r->n_errors, 1);
    Kvrpcpb__LockInfo *li = r->errors[0]->locked;
    assert_non_null(li);
    assert_int_equal(li->lock_version, 10);
    assert_true(fx_bin_eq(li->primary_lock, "k"));
    assert_true(fx_bin_eq(li->key, "k"));
    assert_int_equal(li->lock_ttl, 3000);
    assert_int_equal(li->lock_type, KVRPCPB__OP__Put);
    assert_int_equal(li->min_commit_ts, 11);
    fx_free(r);
    /* The same prewrite again is a no-op success. */
    fx_must_prewrite_put(f, "k", "a", "k", 10);
    fx_must_commit(f, "k", 10, 12);
    fx_must_get(f, "k", 12, "a");
}

static void test_prewrite_reports_all_locked_keys_and_writes_nothing(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "a", "1", "a", 10);
    fx_must_prewrite_put(f, "c", "1", "a", 10);
    Kvrpcpb__Mutation m[3];
    Kvrpcpb__Mutation *mp[3];
    const char *keys[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        kvrpcpb__mutation__init(&m[i]);
        m[i].key = fx_bin(keys[i]);
        m[i].value = fx_bin("2");
        mp[i] = &m[i];
    }
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    req.n_mutations = 3;
    req.mutations = mp;
    req.primary_lock = fx_bin("b");
    req.start_version = 20;
    req.lock_ttl = 100;
    Kvrpcpb__PrewriteResponse *r = fx_call(f, "KvPrewrite", &req.base);
    assert_int_equal(r->n_errors, 2);
    assert_true(fx_bin_eq(r->errors[0]->locked->key, "a"));
    assert_true(fx_bin_eq(r->errors[1]->locked->key, "c"));
    fx_free(r);
    fx_must_get(f, "b", 30, NULL); /* b holds no lock of txn 20 */
}

static void test_insert_on_existing_key_is_already_exist(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "k", "a", "k", 10);
    fx_must_commit(f, "k", 10, 11);
    Kvrpcpb__PrewriteResponse *r = fx_prewrite(f, "k", "b", KVRPCPB__OP__Insert, "k", 20);
    assert_int_equal(r->n_errors, 1);
    assert_non_null(r->errors[0]->already_exist);
    assert_true(fx_bin_eq(r->errors[0]->already_exist->key, "k"));
    fx_free(r);
    /* Below a Lock record the Put still counts; after a Delete the insert is fine. */
    r = fx_prewrite(f, "k", NULL, KVRPCPB__OP__Lock, "k", 30);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
    fx_must_commit(f, "k", 30, 31);
    r = fx_prewrite(f, "k", NULL, KVRPCPB__OP__CheckNotExists, "k", 40);
    assert_int_equal(r->n_errors, 1);
    assert_non_null(r->errors[0]->already_exist);
    fx_free(r);
    r = fx_prewrite(f, "k", NULL, KVRPCPB__OP__Del, "k", 50);
    fx_free(r);
    fx_must_commit(f, "k", 50, 51);
    r = fx_prewrite(f, "k", "c", KVRPCPB__OP__Insert, "k", 60);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
    fx_must_commit(f, "k", 60, 61);
    fx_must_get(f, "k", 61, "c");
}

static void test_commit_retried_after_success_succeeds(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "k", "v", "k", 10);
    fx_must_commit(f, "k", 10, 20);
    fx_must_commit(f, "k", 10, 20);
    /* A retried prewrite of the committed transaction is answered with success too. */
    fx_must_prewrite_put(f, "k", "v", "k", 10);
    fx_must_get(f, "k", 25, "v");
}

static void test_commit_without_lock_or_record_is_txn_lock_not_found(void **state)
{
    txn_fx *f = *state;
    Kvrpcpb__CommitResponse *r = fx_commit(f, "k", 10, 20);
    assert_non_null(r->error);
    assert_non_null(r->error->retryable);
    assert_non_null(strstr(r->error->retryable, "TxnLockNotFound"));
    fx_free(r);
    /* commit_version must be above start_version. */
    fx_must_prewrite_put(f, "k", "v", "k", 10);
    r = fx_commit(f, "k", 10, 10);
    assert_non_null(r->error);
    assert_non_null(r->error->abort);
    fx_free(r);
}

static void test_commit_below_min_commit_ts_is_commit_ts_expired(void **state)
{
    txn_fx *f = *state;
    /* min_commit_ts is start_ts + 1 in fx_prewrite; push it with check_txn_status. */
    fx_must_prewrite_put(f, "k", "v", "k", ts_ms(1000));
    Kvrpcpb__CheckTxnStatusRequest req = KVRPCPB__CHECK_TXN_STATUS_REQUEST__INIT;
    req.primary_key = fx_bin("k");
    req.lock_ts = ts_ms(1000);
    req.caller_start_ts = ts_ms(1500);
    req.current_ts = ts_ms(1500);
    Kvrpcpb__CheckTxnStatusResponse *s = fx_call(f, "KvCheckTxnStatus", &req.base);
    assert_null(s->error);
    assert_int_equal(s->lock_ttl, 3000);
    assert_int_equal(s->action, KVRPCPB__ACTION__MinCommitTSPushed);
    assert_non_null(s->lock_info);
    assert_int_equal(s->lock_info->min_commit_ts, ts_ms(1500) + 1);
    fx_free(s);
    /* The pushed lock no longer blocks the reader. */
    fx_must_get(f, "k", ts_ms(1500), NULL);
    Kvrpcpb__CommitResponse *c = fx_commit(f, "k", ts_ms(1000), ts_ms(1200));
    assert_non_null(c->error);
    Kvrpcpb__CommitTsExpired *e = c->error->commit_ts_expired;
    assert_non_null(e);
    assert_int_equal(e->start_ts, ts_ms(1000));
    assert_int_equal(e->attempted_commit_ts, ts_ms(1200));
    assert_int_equal(e->min_commit_ts, ts_ms(1500) + 1);
    assert_true(fx_bin_eq(e->key, "k"));
    fx_free(c);
    fx_must_commit(f, "k", ts_ms(1000), ts_ms(1600));
}

/* ---- rollback ----------------------------------------------------------------------------- */

static void test_prewrite_after_rollback_is_refused(void **state)
{
    txn_fx *f = *state;
    /* The rollback arrives first (the prewrite was delayed on the network). */
    Kvrpcpb__BatchRollbackResponse *rb = fx_rollback(f, "k", 10);
    assert_null(rb->error);
    fx_free(rb);
    Kvrpcpb__PrewriteResponse *r = fx_prewrite(f, "k", "v", KVRPCPB__OP__Put, "k", 10);
    assert_int_equal(r->n_errors, 1);
    assert_non_null(r->errors[0]->conflict);
    assert_int_equal(r->errors[0]->conflict->reason,
                     KVRPCPB__WRITE_CONFLICT__REASON__SelfRolledBack);
    assert_int_equal(r->errors[0]->conflict->conflict_commit_ts, 10);
    fx_free(r);
    fx_must_get(f, "k", 100, NULL);
    /* And a commit of the rolled-back transaction fails. */
    Kvrpcpb__CommitResponse *c = fx_commit(f, "k", 10, 20);
    assert_non_null(c->error);
    fx_free(c);
}

static void test_rollback_removes_lock_and_long_value(void **state)
{
    txn_fx *f = *state;
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    fx_must_prewrite_put(f, "k", big, "k", 10);
    /* A long value lives in the default CF at key + start_ts. */
    uint64_t n;
    assert_int_equal(
        eng_approx_keys(f->db, ENG_CF_DEFAULT, tkv_slice_of(NULL, 0), tkv_slice_of(NULL, 0), &n),
        0);
    if (!f->rocks)
        assert_int_equal(n, 1);
    Kvrpcpb__BatchRollbackResponse *rb = fx_rollback(f, "k", 10);
    assert_null(rb->error);
    fx_free(rb);
    fx_must_get(f, "k", 100, NULL);
    if (!f->rocks) {
        assert_int_equal(eng_approx_keys(f->db, ENG_CF_DEFAULT, tkv_slice_of(NULL, 0),
                                         tkv_slice_of(NULL, 0), &n),
                         0);
        assert_int_equal(n, 0);
    }
    /* Rolling back a committed transaction is refused. */
    fx_must_prewrite_put(f, "k", "v", "k", 20);
    fx_must_commit(f, "k", 20, 30);
    rb = fx_rollback(f, "k", 20);
    assert_non_null(rb->error);
    assert_non_null(rb->error->abort);
    fx_free(rb);
}

static void test_long_values_round_trip_through_default_cf(void **state)
{
    txn_fx *f = *state;
    char big[4096];
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = (char)('a' + i % 26);
    big[sizeof(big) - 1] = 0;
    char edge[256];
    memset(edge, 'e', 255);
    edge[255] = 0; /* exactly the short-value limit: stays inline */
    fx_must_prewrite_put(f, "big", big, "big", 10);
    fx_must_prewrite_put(f, "edge", edge, "big", 10);
    fx_must_commit(f, "big", 10, 11);
    fx_must_commit(f, "edge", 10, 11);
    fx_must_get(f, "big", 11, big);
    fx_must_get(f, "edge", 11, edge);
    uint64_t n = 0;
    if (!f->rocks) {
        assert_int_equal(eng_approx_keys(f->db, ENG_CF_DEFAULT, tkv_slice_of(NULL, 0),
                                         tkv_slice_of(NULL, 0), &n),
                         0);
        assert_int_equal(n, 1);
    }
}

/* ---- lock resolution ---------------------------------------------------------------------- */

static void test_crashed_transaction_is_resolved_by_reader_after_ttl(void **state)
{
    txn_fx *f = *state;
    uint64_t t0 = ts_ms(10000);
    fx_must_prewrite_put(f, "a", "old", "a", t0 - 10);
    fx_must_commit(f, "a", t0 - 10, t0 - 5);
    /* The crashed transaction: primary "a", secondary "b", TTL 100 ms, never committed. */
    Kvrpcpb__Mutation ma = KVRPCPB__MUTATION__INIT, mb = KVRPCPB__MUTATION__INIT;
    ma.key = fx_bin("a");
    ma.value = fx_bin("new");
    mb.key = fx_bin("b");
    mb.value = fx_bin("new");
    Kvrpcpb__Mutation *ms[2] = {&ma, &mb};
    Kvrpcpb__PrewriteRequest pw = KVRPCPB__PREWRITE_REQUEST__INIT;
    pw.n_mutations = 2;
    pw.mutations = ms;
    pw.primary_lock = fx_bin("a");
    pw.start_version = t0;
    pw.lock_ttl = 100;
    Kvrpcpb__PrewriteResponse *pr = fx_call(f, "KvPrewrite", &pw.base);
    assert_int_equal(pr->n_errors, 0);
    fx_free(pr);
    /* A reader at t0 + 50 ms meets the lock on b. */
    uint64_t rts = ts_ms(10050);
    Kvrpcpb__GetResponse *g = fx_get(f, "b", rts);
    assert_non_null(g->error);
    Kvrpcpb__LockInfo *li = g->error->locked;
    assert_int_equal(li->lock_version, t0);
    assert_true(fx_bin_eq(li->primary_lock, "a"));
    fx_free(g);
    /* It asks the primary: still alive (TTL has not run out). */
    Kvrpcpb__CheckTxnStatusRequest cs = KVRPCPB__CHECK_TXN_STATUS_REQUEST__INIT;
    cs.primary_key = fx_bin("a");
    cs.lock_ts = t0;
    cs.caller_start_ts = rts;
    cs.current_ts = rts;
    cs.rollback_if_not_exist = true;
    Kvrpcpb__CheckTxnStatusResponse *st = fx_call(f, "KvCheckTxnStatus", &cs.base);
    assert_null(st->error);
    assert_int_equal(st->lock_ttl, 100);
    assert_int_equal(st->commit_version, 0);
    fx_free(st);
    /* Later, past the TTL: the primary is rolled back. */
    cs.current_ts = cs.caller_start_ts = ts_ms(10200);
    st = fx_call(f, "KvCheckTxnStatus", &cs.base);
    assert_null(st->error);
    assert_int_equal(st->lock_ttl, 0);
    assert_int_equal(st->commit_version, 0);
    assert_int_equal(st->action, KVRPCPB__ACTION__TTLExpireRollback);
    fx_free(st);
    /* Asking again finds the rollback record. */
    st = fx_call(f, "KvCheckTxnStatus", &cs.base);
    assert_int_equal(st->action, KVRPCPB__ACTION__NoAction);
    assert_int_equal(st->lock_ttl, 0);
    assert_int_equal(st->commit_version, 0);
    fx_free(st);
    /* The reader resolves the secondary (rollback) and reads the old value. */
    ProtobufCBinaryData kb = fx_bin("b");
    Kvrpcpb__ResolveLockRequest rl = KVRPCPB__RESOLVE_LOCK_REQUEST__INIT;
    rl.start_version = t0;
    rl.commit_version = 0;
    rl.n_keys = 1;
    rl.keys = &kb;
    Kvrpcpb__ResolveLockResponse *rr = fx_call(f, "KvResolveLock", &rl.base);
    assert_null(rr->error);
    fx_free(rr);
    fx_must_get(f, "b", ts_ms(10200), NULL);
    fx_must_get(f, "a", ts_ms(10200), "old");
    /* The crashed client's late commit now fails. */
    Kvrpcpb__CommitResponse *c = fx_commit(f, "a", t0, ts_ms(10300));
    assert_non_null(c->error);
    fx_free(c);
}

static void test_check_txn_status_reports_committed_and_missing(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "k", "v", "k", 10);
    fx_must_commit(f, "k", 10, 15);
    Kvrpcpb__CheckTxnStatusRequest cs = KVRPCPB__CHECK_TXN_STATUS_REQUEST__INIT;
    cs.primary_key = fx_bin("k");
    cs.lock_ts = 10;
    cs.current_ts = 100;
    Kvrpcpb__CheckTxnStatusResponse *st = fx_call(f, "KvCheckTxnStatus", &cs.base);
    assert_int_equal(st->commit_version, 15);
    assert_null(st->error);
    fx_free(st);
    /* A transaction that left nothing: txn_not_found unless rollback_if_not_exist. */
    cs.lock_ts = 20;
    st = fx_call(f, "KvCheckTxnStatus", &cs.base);
    assert_non_null(st->error);
    assert_non_null(st->error->txn_not_found);
    assert_int_equal(st->error->txn_not_found->start_ts, 20);
    assert_true(fx_bin_eq(st->error->txn_not_found->primary_key, "k"));
    fx_free(st);
    cs.rollback_if_not_exist = true;
    st = fx_call(f, "KvCheckTxnStatus", &cs.base);
    assert_null(st->error);
    assert_int_equal(st->action, KVRPCPB__ACTION__LockNotExistRollback);
    fx_free(st);
    /* The protected rollback record stops that transaction's prewrite. */
    Kvrpcpb__PrewriteResponse *r = fx_prewrite(f, "k", "x", KVRPCPB__OP__Put, "k", 20);
    assert_int_equal(r->n_errors, 1);
    assert_non_null(r->errors[0]->conflict);
    fx_free(r);
}

static void test_cleanup_answers_commit_version_or_rolls_back(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "k", "v", "k", 10);
    fx_must_commit(f, "k", 10, 15);
    Kvrpcpb__CleanupRequest req = KVRPCPB__CLEANUP_REQUEST__INIT;
    req.key = fx_bin("k");
    req.start_version = 10;
    Kvrpcpb__CleanupResponse *r = fx_call(f, "KvCleanup", &req.base);
    assert_null(r->error);
    assert_int_equal(r->commit_version, 15);
    fx_free(r);
    /* A live lock (current_ts within its TTL) is reported, an expired one rolled back. */
    fx_must_prewrite_put(f, "k", "w", "k", ts_ms(5000));
    req.start_version = ts_ms(5000);
    req.current_ts = ts_ms(5001);
    r = fx_call(f, "KvCleanup", &req.base);
    assert_non_null(r->error);
    assert_non_null(r->error->locked);
    fx_free(r);
    req.current_ts = ts_ms(9000);
    r = fx_call(f, "KvCleanup", &req.base);
    assert_null(r->error);
    assert_int_equal(r->commit_version, 0);
    fx_free(r);
    fx_must_get(f, "k", ts_ms(9000), "v");
}

static void test_heart_beat_extends_ttl_of_live_primary(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "k", "v", "k", 10);
    Kvrpcpb__TxnHeartBeatRequest req = KVRPCPB__TXN_HEART_BEAT_REQUEST__INIT;
    req.primary_lock = fx_bin("k");
    req.start_version = 10;
    req.advise_lock_ttl = 10000;
    Kvrpcpb__TxnHeartBeatResponse *r = fx_call(f, "KvTxnHeartBeat", &req.base);
    assert_null(r->error);
    assert_int_equal(r->lock_ttl, 10000);
    fx_free(r);
    req.advise_lock_ttl = 5;
    r = fx_call(f, "KvTxnHeartBeat", &req.base);
    assert_int_equal(r->lock_ttl, 10000);
    fx_free(r);
    req.start_version = 11;
    r = fx_call(f, "KvTxnHeartBeat", &req.base);
    assert_non_null(r->error);
    assert_non_null(r->error->txn_not_found);
    fx_free(r);
}

static void test_scan_lock_and_region_wide_batch_resolve(void **state)
{
    txn_fx *f = *state;
    char key[16];
    /* 300 locks of txn 10 (more than one resolve batch) and 5 of txn 20. */
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "k%03d", i);
        fx_must_prewrite_put(f, key, "v", "k000", 10);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "m%03d", i);
        fx_must_prewrite_put(f, key, "v", "m000", 20);
    }
    Kvrpcpb__ScanLockRequest sl = KVRPCPB__SCAN_LOCK_REQUEST__INIT;
    sl.max_version = 15;
    sl.limit = 1000;
    Kvrpcpb__ScanLockResponse *s = fx_call(f, "KvScanLock", &sl.base);
    assert_int_equal(s->n_locks, 300);
    assert_true(fx_bin_eq(s->locks[0]->key, "k000"));
    assert_int_equal(s->locks[0]->lock_version, 10);
    fx_free(s);
    sl.max_version = 100;
    sl.limit = 7;
    sl.start_key = fx_bin("k295");
    s = fx_call(f, "KvScanLock", &sl.base);
    assert_int_equal(s->n_locks, 7);
    assert_true(fx_bin_eq(s->locks[5]->key, "m000"));
    fx_free(s);
    /* Batch mode: commit txn 10, roll back txn 20, over the whole region. */
    Kvrpcpb__TxnInfo ti[2] = {KVRPCPB__TXN_INFO__INIT, KVRPCPB__TXN_INFO__INIT};
    ti[0].txn = 10;
    ti[0].status = 12;
    ti[1].txn = 20;
    ti[1].status = 0;
    Kvrpcpb__TxnInfo *tip[2] = {&ti[0], &ti[1]};
    Kvrpcpb__ResolveLockRequest rl = KVRPCPB__RESOLVE_LOCK_REQUEST__INIT;
    rl.n_txn_infos = 2;
    rl.txn_infos = tip;
    Kvrpcpb__ResolveLockResponse *rr = fx_call(f, "KvResolveLock", &rl.base);
    assert_null(rr->error);
    assert_null(rr->region_error);
    fx_free(rr);
    sl.start_key = fx_bin("");
    sl.limit = 0;
    s = fx_call(f, "KvScanLock", &sl.base);
    assert_int_equal(s->n_locks, 0);
    fx_free(s);
    fx_must_get(f, "k299", 12, "v");
    fx_must_get(f, "k000", 11, NULL);
    fx_must_get(f, "m004", 100, NULL);
}

static void test_check_secondary_locks_reports_locks_or_commit(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "a", "1", "a", 10);
    fx_must_prewrite_put(f, "b", "1", "a", 10);
    ProtobufCBinaryData keys[2] = {fx_bin("a"), fx_bin("b")};
    Kvrpcpb__CheckSecondaryLocksRequest req = KVRPCPB__CHECK_SECONDARY_LOCKS_REQUEST__INIT;
    req.n_keys = 2;
    req.keys = keys;
    req.start_version = 10;
    Kvrpcpb__CheckSecondaryLocksResponse *r = fx_call(f, "KvCheckSecondaryLocks", &req.base);
    assert_int_equal(r->n_locks, 2);
    assert_int_equal(r->commit_ts, 0);
    fx_free(r);
    fx_must_commit(f, "a", 10, 11);
    r = fx_call(f, "KvCheckSecondaryLocks", &req.base);
    assert_int_equal(r->commit_ts, 11);
    fx_free(r);
    /* A key without lock or record is rolled back for good. */
    req.start_version = 30;
    r = fx_call(f, "KvCheckSecondaryLocks", &req.base);
    assert_int_equal(r->n_locks, 0);
    assert_int_equal(r->commit_ts, 0);
    fx_free(r);
    Kvrpcpb__PrewriteResponse *p = fx_prewrite(f, "a", "x", KVRPCPB__OP__Put, "a", 30);
    assert_int_equal(p->n_errors, 1);
    fx_free(p);
}

/* ---- reads -------------------------------------------------------------------------------- */

static void put_committed(txn_fx *f, const char *k, const char *v, uint64_t s, uint64_t c)
{
    fx_must_prewrite_put(f, k, v, k, s);
    fx_must_commit(f, k, s, c);
}

static Kvrpcpb__ScanResponse *scan(txn_fx *f, const char *start, const char *end, uint32_t limit,
                                   uint64_t ts, bool reverse, bool key_only)
{
    Kvrpcpb__ScanRequest req = KVRPCPB__SCAN_REQUEST__INIT;
    req.start_key = fx_bin(start);
    req.end_key = fx_bin(end);
    req.limit = limit;
    req.version = ts;
    req.reverse = reverse;
    req.key_only = key_only;
    return fx_call(f, "KvScan", &req.base);
}

static void test_scan_forward_reverse_limit_and_key_only(void **state)
{
    txn_fx *f = *state;
    put_committed(f, "a", "1", 10, 11);
    put_committed(f, "b", "2", 10, 11);
    put_committed(f, "c", "3", 10, 11);
    put_committed(f, "d", "4", 10, 11);
    put_committed(f, "b", "2b", 20, 21);
    Kvrpcpb__PrewriteResponse *p = fx_prewrite(f, "c", NULL, KVRPCPB__OP__Del, "c", 30);
    fx_free(p);
    fx_must_commit(f, "c", 30, 31);
    Kvrpcpb__ScanResponse *r = scan(f, "", "", 10, 25, false, false);
    assert_int_equal(r->n_pairs, 4);
    assert_true(fx_bin_eq(r->pairs[1]->key, "b"));
    assert_true(fx_bin_eq(r->pairs[1]->value, "2b"));
    fx_free(r);
    r = scan(f, "", "", 10, 40, false, false);
    assert_int_equal(r->n_pairs, 3); /* c deleted */
    fx_free(r);
    /* limit is exact; [start, end) forward */
    r = scan(f, "b", "d", 10, 40, false, false);
    assert_int_equal(r->n_pairs, 1);
    assert_true(fx_bin_eq(r->pairs[0]->key, "b"));
    fx_free(r);
    r = scan(f, "a", "", 2, 25, false, false);
    assert_int_equal(r->n_pairs, 2);
    fx_free(r);
    /* Reverse: [end, start) from the top. */
    r = scan(f, "d", "", 10, 25, true, false);
    assert_int_equal(r->n_pairs, 3);
    assert_true(fx_bin_eq(r->pairs[0]->key, "c"));
    assert_true(fx_bin_eq(r->pairs[2]->key, "a"));
    fx_free(r);
    r = scan(f, "", "b", 10, 25, true, false);
    assert_int_equal(r->n_pairs, 3);
    assert_true(fx_bin_eq(r->pairs[0]->key, "d"));
    assert_true(fx_bin_eq(r->pairs[2]->key, "b"));
    fx_free(r);
    r = scan(f, "", "", 2, 15, true, true);
    assert_int_equal(r->n_pairs, 2);
    assert_true(fx_bin_eq(r->pairs[0]->key, "d"));
    assert_int_equal(r->pairs[0]->value.len, 0);
    fx_free(r);
    /* A locked key in range is a pair with its error. */
    fx_must_prewrite_put(f, "bb", "x", "bb", 50);
    r = scan(f, "", "", 10, 60, false, false);
    assert_int_equal(r->n_pairs, 4);
    assert_non_null(r->pairs[2]->error);
    assert_non_null(r->pairs[2]->error->locked);
    fx_free(r);
    r = scan(f, "", "", 10, 60, true, false);
    assert_int_equal(r->n_pairs, 4);
    assert_non_null(r->pairs[1]->error);
    fx_free(r);
}

static void test_batch_get_omits_missing_and_reports_locks(void **state)
{
    txn_fx *f = *state;
    put_committed(f, "a", "1", 10, 11);
    fx_must_prewrite_put(f, "b", "2", "b", 12);
    ProtobufCBinaryData keys[3] = {fx_bin("a"), fx_bin("b"), fx_bin("c")};
    Kvrpcpb__BatchGetRequest req = KVRPCPB__BATCH_GET_REQUEST__INIT;
    req.n_keys = 3;
    req.keys = keys;
    req.version = 20;
    Kvrpcpb__BatchGetResponse *r = fx_call(f, "KvBatchGet", &req.base);
    assert_int_equal(r->n_pairs, 2);
    assert_true(fx_bin_eq(r->pairs[0]->value, "1"));
    assert_non_null(r->pairs[1]->error->locked);
    fx_free(r);
}

static void test_reads_honour_resolved_and_committed_locks(void **state)
{
    txn_fx *f = *state;
    put_committed(f, "k", "old", 10, 11);
    fx_must_prewrite_put(f, "k", "new", "k", 20);
    fx_must_get_locked(f, "k", 30, 20);
    Kvrpcpb__Context ctx = f->ctx;
    uint64_t txns[1] = {20};
    Kvrpcpb__GetRequest req = KVRPCPB__GET_REQUEST__INIT;
    req.context = &ctx;
    req.key = fx_bin("k");
    req.version = 30;
    /* resolved_locks: the lock is known rolled back (or committed later): skip it. */
    ctx.n_resolved_locks = 1;
    ctx.resolved_locks = txns;
    Kvrpcpb__GetResponse *r = fx_call(f, "KvGet", &req.base);
    assert_null(r->error);
    assert_true(fx_bin_eq(r->value, "old"));
    fx_free(r);
    /* committed_locks: known committed below the read ts: read the locked value. */
    ctx.n_resolved_locks = 0;
    ctx.n_committed_locks = 1;
    ctx.committed_locks = txns;
    r = fx_call(f, "KvGet", &req.base);
    assert_null(r->error);
    assert_true(fx_bin_eq(r->value, "new"));
    fx_free(r);
    /* RC isolation ignores locks. */
    ctx.n_committed_locks = 0;
    ctx.isolation_level = KVRPCPB__ISOLATION_LEVEL__RC;
    r = fx_call(f, "KvGet", &req.base);
    assert_null(r->error);
    assert_true(fx_bin_eq(r->value, "old"));
    fx_free(r);
    /* Lock-type locks never block readers. */
    fx_must_commit(f, "k", 20, 21);
    Kvrpcpb__PrewriteResponse *p = fx_prewrite(f, "k", NULL, KVRPCPB__OP__Lock, "k", 40);
    fx_free(p);
    fx_must_get(f, "k", 50, "new");
}

static void test_keys_outside_region_get_region_error(void **state)
{
    txn_fx *f = *state;
    f->ctx.region_id = 99;
    Kvrpcpb__GetResponse *r = fx_get(f, "k", 10);
    assert_non_null(r->region_error);
    assert_non_null(r->region_error->region_not_found);
    fx_free(r);
    f->ctx.region_id = 1;
}

/* ---- pessimistic transactions ------------------------------------------------------------- */

static fx_pending *plock_start(txn_fx *f, Kvrpcpb__PessimisticLockRequest *req,
                               Kvrpcpb__Mutation *m, Kvrpcpb__Mutation **mp, const char *key,
                               uint64_t start_ts, int64_t wait_timeout)
{
    kvrpcpb__mutation__init(m);
    m->op = KVRPCPB__OP__PessimisticLock;
    m->key = fx_bin(key);
    *mp = m;
    kvrpcpb__pessimistic_lock_request__init(req);
    req->n_mutations = 1;
    req->mutations = mp;
    req->primary_lock = fx_bin(key);
    req->start_version = start_ts;
    req->for_update_ts = start_ts;
    req->lock_ttl = 3000;
    req->wait_timeout = wait_timeout;
    return fx_start(f, "KvPessimisticLock", &req->base);
}

static void pessimistic_prewrite_commit(txn_fx *f, const char *key, const char *value,
                                        uint64_t start_ts, uint64_t for_update_ts,
                                        uint64_t commit_ts)
{
    Kvrpcpb__Mutation m = KVRPCPB__MUTATION__INIT;
    m.key = fx_bin(key);
    m.value = fx_bin(value);
    Kvrpcpb__Mutation *mp = &m;
    Kvrpcpb__PrewriteRequest__PessimisticAction act =
        KVRPCPB__PREWRITE_REQUEST__PESSIMISTIC_ACTION__DO_PESSIMISTIC_CHECK;
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    req.n_mutations = 1;
    req.mutations = &mp;
    req.primary_lock = fx_bin(key);
    req.start_version = start_ts;
    req.for_update_ts = for_update_ts;
    req.lock_ttl = 3000;
    req.n_pessimistic_actions = 1;
    req.pessimistic_actions = &act;
    Kvrpcpb__PrewriteResponse *r = fx_call(f, "KvPrewrite", &req.base);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
    fx_must_commit(f, key, start_ts, commit_ts);
}

static void test_pessimistic_lock_then_optimistic_prewrite_by_other_txn(void **state)
{
    txn_fx *f = *state;
    put_committed(f, "k", "v0", 5, 6);
    Kvrpcpb__PessimisticLockResponse *r = fx_plock(f, "k", "k", 10, 10, -1, true);
    assert_int_equal(r->n_errors, 0);
    assert_int_equal(r->n_values, 1);
    assert_true(fx_bin_eq(r->values[0], "v0"));
    assert_int_equal(r->n_not_founds, 1);
    assert_false(r->not_founds[0]);
    fx_free(r);
    /* The pessimistic lock does not block readers. */
    fx_must_get(f, "k", 20, "v0");
    /* Another (optimistic) transaction's prewrite meets it. */
    Kvrpcpb__PrewriteResponse *p = fx_prewrite(f, "k", "x", KVRPCPB__OP__Put, "k", 20);
    assert_int_equal(p->n_errors, 1);
    assert_non_null(p->errors[0]->locked);
    assert_int_equal(p->errors[0]->locked->lock_version, 10);
    assert_int_equal(p->errors[0]->locked->lock_type, KVRPCPB__OP__PessimisticLock);
    assert_int_equal(p->errors[0]->locked->lock_for_update_ts, 10);
    fx_free(p);
    /* The lock's owner turns it into a prewrite lock and commits. */
    pessimistic_prewrite_commit(f, "k", "v1", 10, 10, 25);
    fx_must_get(f, "k", 25, "v1");
    /* A pessimistic lock below a newer commit must retry: PessimisticRetry conflict. */
    r = fx_plock(f, "k", "k", 15, 15, -1, false);
    assert_int_equal(r->n_errors, 1);
    assert_non_null(r->errors[0]->conflict);
    assert_int_equal(r->errors[0]->conflict->reason,
                     KVRPCPB__WRITE_CONFLICT__REASON__PessimisticRetry);
    assert_int_equal(r->errors[0]->conflict->conflict_commit_ts, 25);
    fx_free(r);
    /* A missing key: not_found. */
    r = fx_plock(f, "nokey", "nokey", 30, 30, -1, true);
    assert_int_equal(r->n_errors, 0);
    assert_true(r->not_founds[0]);
    fx_free(r);
    /* Pessimistic rollback removes it without a rollback record. */
    ProtobufCBinaryData kb = fx_bin("nokey");
    Kvrpcpb__PessimisticRollbackRequest pr = KVRPCPB__PESSIMISTIC_ROLLBACK_REQUEST__INIT;
    pr.start_version = 30;
    pr.for_update_ts = 30;
    pr.n_keys = 1;
    pr.keys = &kb;
    Kvrpcpb__PessimisticRollbackResponse *prr = fx_call(f, "KVPessimisticRollback", &pr.base);
    assert_int_equal(prr->n_errors, 0);
    fx_free(prr);
    fx_must_prewrite_put(f, "nokey", "z", "nokey", 40);
}

/* Waits (bounded) until @n lock waits are registered: the condition, not a sleep, decides. */
static void wait_for_waiters(txn_fx *f, size_t n)
{
    uint64_t t0 = tkv_clock_mono_ms();
    while (txn_lock_mgr_waiter_count(f->s->txn->lm) < n) {
        if (tkv_clock_mono_ms() - t0 > 10000)
            fail_msg("no lock waiter registered within 10 s");
        tkv_sleep_ms(1);
    }
}

static void test_pessimistic_lock_waits_and_wakes_on_release(void **state)
{
    txn_fx *f = *state;
    Kvrpcpb__PessimisticLockResponse *r = fx_plock(f, "k", "k", 10, 10, -1, false);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
    Kvrpcpb__PessimisticLockRequest req;
    Kvrpcpb__Mutation m, *mp;
    fx_pending *p = plock_start(f, &req, &m, &mp, "k", 20, 10000);
    /* The holder commits; the waiter is told to retry (TiKV's normal wake-up mode). */
    wait_for_waiters(f, 1);
    pessimistic_prewrite_commit(f, "k", "v", 10, 10, 15);
    Kvrpcpb__PessimisticLockResponse *w = fx_wait(p);
    assert_int_equal(w->n_errors, 1);
    Kvrpcpb__WriteConflict *wc = w->errors[0]->conflict;
    assert_non_null(wc);
    assert_int_equal(wc->reason, KVRPCPB__WRITE_CONFLICT__REASON__PessimisticRetry);
    assert_int_equal(wc->conflict_commit_ts, 15);
    fx_free(w);
    /* Retrying with a newer for_update_ts succeeds. */
    r = fx_plock(f, "k", "k", 20, 16, -1, false);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
    /* No wait (negative timeout): the lock comes back at once. */
    r = fx_plock(f, "k", "k", 30, 30, -1, false);
    assert_int_equal(r->n_errors, 1);
    assert_non_null(r->errors[0]->locked);
    assert_int_equal(r->errors[0]->locked->lock_version, 20);
    fx_free(r);
    /* A short wait ends with the lock error at its deadline. */
    uint64_t t0 = tkv_clock_mono_ms();
    r = fx_plock(f, "k", "k", 30, 30, 50, false);
    assert_true(tkv_clock_mono_ms() - t0 >= 45);
    assert_int_equal(r->n_errors, 1);
    assert_non_null(r->errors[0]->locked);
    fx_free(r);
}

static void test_deadlock_between_two_transactions_is_detected(void **state)
{
    txn_fx *f = *state;
    Kvrpcpb__PessimisticLockResponse *r = fx_plock(f, "k1", "k1", 10, 10, -1, false);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
    r = fx_plock(f, "k2", "k2", 20, 20, -1, false);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
    /* txn 10 waits for k2 (held by 20)... */
    Kvrpcpb__PessimisticLockRequest req;
    Kvrpcpb__Mutation m, *mp;
    fx_pending *p = plock_start(f, &req, &m, &mp, "k2", 10, 10000);
    wait_for_waiters(f, 1);
    /* ...and txn 20 asks for k1 (held by 10): a cycle. txn 20 is told so. */
    r = fx_plock(f, "k1", "k2", 20, 20, 10000, false);
    assert_int_equal(r->n_errors, 1);
    Kvrpcpb__Deadlock *dl = r->errors[0]->deadlock;
    assert_non_null(dl);
    assert_int_equal(dl->lock_ts, 10);
    assert_true(fx_bin_eq(dl->lock_key, "k1"));
    assert_int_not_equal(dl->deadlock_key_hash, 0);
    fx_free(r);
    /* txn 20 gives up its lock; txn 10 is woken. */
    ProtobufCBinaryData kb = fx_bin("k2");
    Kvrpcpb__PessimisticRollbackRequest pr = KVRPCPB__PESSIMISTIC_ROLLBACK_REQUEST__INIT;
    pr.start_version = 20;
    pr.for_update_ts = 20;
    pr.n_keys = 1;
    pr.keys = &kb;
    Kvrpcpb__PessimisticRollbackResponse *prr = fx_call(f, "KVPessimisticRollback", &pr.base);
    fx_free(prr);
    Kvrpcpb__PessimisticLockResponse *w = fx_wait(p);
    assert_int_equal(w->n_errors, 1);
    assert_non_null(w->errors[0]->conflict);
    fx_free(w);
    r = fx_plock(f, "k2", "k1", 10, 10, -1, false);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
}

/* ---- delete range and GC ------------------------------------------------------------------ */

static void test_delete_range_removes_all_versions_and_locks(void **state)
{
    txn_fx *f = *state;
    put_committed(f, "a", "1", 10, 11);
    put_committed(f, "b", "1", 10, 11);
    fx_must_prewrite_put(f, "c", "1", "c", 12);
    put_committed(f, "d", "1", 10, 11);
    Kvrpcpb__DeleteRangeRequest req = KVRPCPB__DELETE_RANGE_REQUEST__INIT;
    req.start_key = fx_bin("b");
    req.end_key = fx_bin("d");
    req.notify_only = true;
    Kvrpcpb__DeleteRangeResponse *r = fx_call(f, "KvDeleteRange", &req.base);
    fx_free(r);
    fx_must_get(f, "b", 20, "1");
    req.notify_only = false;
    r = fx_call(f, "KvDeleteRange", &req.base);
    assert_null(r->region_error);
    fx_free(r);
    fx_must_get(f, "a", 20, "1");
    fx_must_get(f, "b", 20, NULL);
    fx_must_get(f, "c", 20, NULL);
    fx_must_get(f, "d", 20, "1");
    Kvrpcpb__UnsafeDestroyRangeRequest ud = KVRPCPB__UNSAFE_DESTROY_RANGE_REQUEST__INIT;
    ud.start_key = fx_bin("");
    ud.end_key = fx_bin("");
    Kvrpcpb__UnsafeDestroyRangeResponse *u = fx_call(f, "UnsafeDestroyRange", &ud.base);
    fx_free(u);
    fx_must_get(f, "a", 20, NULL);
}

static int failing_destroy(void *arg, tkv_slice start, tkv_slice end, char errmsg[TKV_ERRMSG_LEN])
{
    (void)arg;
    (void)start;
    (void)end;
    snprintf(errmsg, TKV_ERRMSG_LEN, "disk on fire");
    return TKV_EENGINE;
}

static void test_unsafe_destroy_range_acts_store_wide_through_the_hook(void **state)
{
    txn_fx *f = *state;
    char long_value[300];
    memset(long_value, 'v', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = 0;
    put_committed(f, "a", "1", 10, 11);
    put_committed(f, "b", long_value, 10, 11); /* in the default CF */
    fx_must_prewrite_put(f, "c", "1", "c", 12);
    put_committed(f, "d", "1", 10, 11);
    stor_set_destroy_range(f->s, stor_destroy_range_engine, f->db);
    /* Clients send it without a region: no region is checked. */
    f->ctx.region_id = 999;
    Kvrpcpb__UnsafeDestroyRangeRequest ud = KVRPCPB__UNSAFE_DESTROY_RANGE_REQUEST__INIT;
    ud.start_key = fx_bin("b");
    ud.end_key = fx_bin("d");
    Kvrpcpb__UnsafeDestroyRangeResponse *u = fx_call(f, "UnsafeDestroyRange", &ud.base);
    assert_null(u->region_error);
    assert_true(u->error == NULL || u->error[0] == 0);
    fx_free(u);
    f->ctx.region_id = 1;
    fx_must_get(f, "a", 20, "1");
    fx_must_get(f, "b", 20, NULL);
    fx_must_get(f, "c", 20, NULL); /* the lock went too */
    fx_must_get(f, "d", 20, "1");
    tkv_buf dkey;
    tkv_buf_init(&dkey);
    assert_int_equal(txn_key_encode(&dkey, tkv_slice_str("b")), 0);
    assert_int_equal(txn_key_versioned(&dkey, tkv_buf_slice(&dkey), 10), 0);
    tkv_buf zkey, val;
    tkv_buf_init(&zkey);
    tkv_buf_init(&val);
    assert_int_equal(tkv_keys_data_key(&zkey, tkv_buf_slice(&dkey)), 0);
    bool found = true;
    assert_int_equal(eng_get(f->db, ENG_CF_DEFAULT, tkv_buf_slice(&zkey), &val, &found), 0);
    assert_false(found);
    tkv_buf_deinit(&dkey);
    tkv_buf_deinit(&zkey);
    tkv_buf_deinit(&val);
    /* An empty end key destroys to the end of the key space. */
    ud.start_key = fx_bin("a");
    ud.end_key = fx_bin("");
    u = fx_call(f, "UnsafeDestroyRange", &ud.base);
    fx_free(u);
    fx_must_get(f, "a", 20, NULL);
    fx_must_get(f, "d", 20, NULL);
    /* A failure is reported in the response's error string, as TiKV does. */
    stor_set_destroy_range(f->s, failing_destroy, NULL);
    u = fx_call(f, "UnsafeDestroyRange", &ud.base);
    assert_non_null(u->error);
    assert_non_null(strstr(u->error, "disk on fire"));
    fx_free(u);
}

static void test_reverse_scan_without_start_key_reads_from_region_end(void **state)
{
    txn_fx *f = *state;
    const char *keys[] = {"a", "b", "c", "d"};
    for (size_t i = 0; i < TKV_ARRAY_LEN(keys); i++)
        put_committed(f, keys[i], keys[i], 10, 11);
    tkv_buf lo, hi;
    tkv_buf_init(&lo);
    tkv_buf_init(&hi);
    assert_int_equal(txn_key_encode(&lo, tkv_slice_str("b")), 0);
    assert_int_equal(txn_key_encode(&hi, tkv_slice_str("d")), 0);
    assert_int_equal(stor_kv_local_set_range(f->kv, tkv_buf_slice(&lo), tkv_buf_slice(&hi)), 0);
    /* start_key empty: from the region's end [b, d) down, as client-go sends it. */
    Kvrpcpb__ScanResponse *r = scan(f, "", "", 10, 20, true, false);
    assert_null(r->region_error);
    assert_int_equal(r->n_pairs, 2);
    assert_true(fx_bin_eq(r->pairs[0]->key, "c"));
    assert_true(fx_bin_eq(r->pairs[1]->key, "b"));
    fx_free(r);
    /* With a lower bound inside the region. */
    r = scan(f, "", "c", 10, 20, true, false);
    assert_int_equal(r->n_pairs, 1);
    assert_true(fx_bin_eq(r->pairs[0]->key, "c"));
    fx_free(r);
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
}

static uint64_t write_versions(txn_fx *f, const char *key)
{
    tkv_buf enc;
    tkv_buf_init(&enc);
    assert_int_equal(txn_key_encode(&enc, tkv_slice_str(key)), 0);
    tkv_buf lo, hi;
    tkv_buf_init(&lo);
    tkv_buf_init(&hi);
    assert_int_equal(tkv_buf_append_u8(&lo, 'z'), 0);
    assert_int_equal(tkv_buf_append(&lo, enc.data, enc.len), 0);
    assert_int_equal(tkv_buf_append(&hi, lo.data, lo.len), 0);
    for (int i = 0; i < 9; i++)
        assert_int_equal(tkv_buf_append_u8(&hi, 0xff), 0);
    eng_iter *it;
    assert_int_equal(eng_iter_new(f->db, ENG_CF_WRITE, tkv_buf_slice(&lo), tkv_buf_slice(&hi), &it),
                     0);
    uint64_t n = 0;
    for (bool ok = eng_iter_seek_to_first(it); ok; ok = eng_iter_next(it))
        n++;
    eng_iter_free(it);
    tkv_buf_deinit(&enc);
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
    return n;
}

static uint64_t gc_safe_point;

static uint64_t sp_cb(void *ud)
{
    (void)ud;
    return gc_safe_point;
}

static size_t regions_cb(void *ud, stor_ctx *out, size_t cap)
{
    (void)ud;
    if (cap >= 1)
        out[0] = (stor_ctx){.region_id = 1};
    return 1;
}

static void test_gc_keeps_newest_version_at_safe_point(void **state)
{
    txn_fx *f = *state;
    char big[400];
    memset(big, 'B', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    put_committed(f, "k", "v10", 10, 11);
    put_committed(f, "k", big, 20, 21);
    Kvrpcpb__PrewriteResponse *p = fx_prewrite(f, "k", NULL, KVRPCPB__OP__Lock, "k", 30);
    fx_free(p);
    fx_must_commit(f, "k", 30, 31);
    Kvrpcpb__BatchRollbackResponse *rb = fx_rollback(f, "k", 35);
    fx_free(rb);
    put_committed(f, "k", "v40", 40, 41);
    /* "d": deleted below the safe point: everything goes. */
    put_committed(f, "d", "x", 10, 11);
    p = fx_prewrite(f, "d", NULL, KVRPCPB__OP__Del, "d", 20);
    fx_free(p);
    fx_must_commit(f, "d", 20, 21);
    assert_int_equal(write_versions(f, "k"), 5);
    assert_int_equal(write_versions(f, "d"), 2);
    gc_safe_point = 36;
    stor_gc_opts o = {.safe_point = sp_cb, .regions = regions_cb, .interval_ms = 3600000};
    stor_gc_worker *w;
    assert_int_equal(stor_gc_worker_new(f->s, &o, &w), 0);
    uint64_t done;
    assert_int_equal(stor_gc_run_once(w, &done), 0);
    assert_true(done == 36 || stor_gc_worker_done_safe_point(w) == 36);
    /* k keeps 41 (above) and 21 (newest Put at or below 36); 11, the Lock at 31 and the
     * Rollback at 35 go. */
    assert_int_equal(write_versions(f, "k"), 2);
    assert_int_equal(write_versions(f, "d"), 0);
    fx_must_get(f, "k", 36, big);
    fx_must_get(f, "k", 40, big);
    fx_must_get(f, "k", 41, "v40");
    fx_must_get(f, "d", 36, NULL);
    /* The same safe point again does nothing. */
    assert_int_equal(stor_gc_run_once(w, &done), 0);
    assert_int_equal(done, 0);
    stor_gc_worker_free(w);
    /* KvGC through the method table works the same way. */
    Kvrpcpb__GCRequest g = KVRPCPB__GCREQUEST__INIT;
    g.safe_point = 100;
    Kvrpcpb__GCResponse *gr = fx_call(f, "KvGC", &g.base);
    assert_null(gr->region_error);
    fx_free(gr);
    assert_int_equal(write_versions(f, "k"), 1);
    fx_must_get(f, "k", 100, "v40");
}

/* ---- allocation failures ------------------------------------------------------------------ */

static size_t count_locks(txn_fx *f)
{
    Kvrpcpb__ScanLockRequest sl = KVRPCPB__SCAN_LOCK_REQUEST__INIT;
    sl.max_version = UINT64_MAX;
    Kvrpcpb__ScanLockResponse *r = fx_call(f, "KvScanLock", &sl.base);
    size_t n = r->n_locks;
    fx_free(r);
    return n;
}

static void test_prewrite_under_allocation_failures_is_all_or_nothing(void **state)
{
    txn_fx *f = *state;
    char big[700];
    memset(big, 'L', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    const char *keys[3] = {"a", "b", "c"};
    const char *vals[3] = {"1", big, "3"};
    bool completed_clean = false;
    for (long n = 0; n < 400 && !completed_clean; n++) {
        uint64_t start_ts = 100 + (uint64_t)n * 10;
        Kvrpcpb__Mutation m[3];
        Kvrpcpb__Mutation *mp[3];
        for (int i = 0; i < 3; i++) {
            kvrpcpb__mutation__init(&m[i]);
            m[i].key = fx_bin(keys[i]);
            m[i].value = fx_bin(vals[i]);
            mp[i] = &m[i];
        }
        Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
        req.context = &f->ctx;
        req.n_mutations = 3;
        req.mutations = mp;
        req.primary_lock = fx_bin("a");
        req.start_version = start_ts;
        req.lock_ttl = 100;
        const stor_method *meth = stor_method_find("KvPrewrite");
        tkv_alloc_fail_after(n);
        fx_pending *p = NULL;
        int rc = fx_try_start(f, meth, &req.base, &p);
        void *resp = rc == 0 ? fx_wait(p) : NULL;
        long faults = tkv_alloc_fault_count();
        tkv_alloc_fault_clear();
        completed_clean = faults == 0;
        fx_free(resp);
        /* Either every key is locked by this prewrite or none is. */
        size_t locks = count_locks(f);
        assert_true(locks == 0 || locks == 3);
        if (locks == 3) {
            for (int i = 0; i < 3; i++) {
                Kvrpcpb__BatchRollbackResponse *rb = fx_rollback(f, keys[i], start_ts);
                assert_null(rb->error);
                fx_free(rb);
            }
        }
        assert_int_equal(count_locks(f), 0);
    }
    assert_true(completed_clean);
}

/* ---- more edges ---------------------------------------------------------------------------- */

typedef struct dl_seen {
    int calls;
    txn_wait_outcome o;
    uint64_t hash;
} dl_seen;

static void dl_cb(void *ud, txn_wait_outcome o, uint64_t commit_ts, uint64_t hash)
{
    (void)commit_ts;
    dl_seen *d = ud;
    d->calls++;
    d->o = o;
    d->hash = hash;
}

static uint64_t fake_now(void *arg)
{
    return *(uint64_t *)arg;
}

static void test_wait_graph_edges_expire_after_ttl(void **state)
{
    (void)state;
    uint64_t now = 1000;
    txn_wait_graph *g;
    assert_int_equal(txn_wait_graph_new(100, fake_now, &now, &g), 0);
    uint64_t dl = 0;
    assert_false(txn_wait_graph_detect(g, 1, 2, 11, &dl));
    now = 1050;
    assert_false(txn_wait_graph_detect(g, 3, 4, 33, &dl));
    txn_wait_edge e[4];
    assert_int_equal(txn_wait_graph_edges(g, e, 4), 2);
    assert_int_equal(e[0].txn_ts, 1);
    assert_int_equal(e[0].since_ms, 1000);
    /* Within the TTL the edge 1 -> 2 closes the cycle 2 -> 1. */
    assert_true(txn_wait_graph_detect(g, 2, 1, 22, &dl));
    assert_int_equal(dl, 11);
    /* A store that crashed never cleans up: its edge ends with the TTL. */
    now = 1101;
    assert_false(txn_wait_graph_detect(g, 2, 1, 22, &dl));
    assert_int_equal(txn_wait_graph_edges(g, e, 4), 2); /* 3 -> 4 and 2 -> 1 */
    /* Refreshing an edge keeps it alive. */
    now = 1140;
    assert_false(txn_wait_graph_detect(g, 3, 4, 33, &dl));
    now = 1200;
    assert_int_equal(txn_wait_graph_edges(g, e, 4), 2);
    txn_wait_graph_clear(g);
    assert_int_equal(txn_wait_graph_edges(g, e, 4), 0);
    txn_wait_graph_free(g);
}

static void test_detector_finds_three_party_cycle_and_forgets_ended_waits(void **state)
{
    (void)state;
    txn_lock_mgr *lm;
    assert_int_equal(txn_lock_mgr_new(NULL, 0, &lm), 0);
    assert_int_equal(txn_lock_mgr_wait_ms(lm, -1), 0);
    assert_int_equal(txn_lock_mgr_wait_ms(lm, 0), TXN_DEFAULT_WAIT_TIMEOUT_MS);
    assert_int_equal(txn_lock_mgr_wait_ms(lm, 5), 5);
    assert_int_equal(txn_lock_mgr_wait_ms(lm, INT64_MAX), TXN_DEFAULT_WAIT_TIMEOUT_MS);
    dl_seen a = {0}, b = {0}, c = {0}, c2 = {0};
    /* 1 waits for 2 (key 11), 2 waits for 3 (key 22). */
    assert_int_equal(txn_lock_mgr_wait_for(lm, 1, 2, 11, 60000, dl_cb, &a), 0);
    assert_int_equal(txn_lock_mgr_wait_for(lm, 2, 3, 22, 60000, dl_cb, &b), 0);
    assert_int_equal(txn_lock_mgr_waiter_count(lm), 2);
    /* 3 waiting for 1 closes the cycle: 3 is told at once, with the hash of the wait that
     * points back at it (2 -> 3 on key 22). */
    assert_int_equal(txn_lock_mgr_wait_for(lm, 3, 1, 33, 60000, dl_cb, &c), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.o, TXN_WAIT_DEADLOCK);
    assert_int_equal(c.hash, 22);
    assert_int_equal(txn_lock_mgr_waiter_count(lm), 2);
    /* Txn 3 releases key 22: 2 is woken and its edge goes, so 3 may now wait for 1. */
    uint64_t h = 22;
    txn_lock_mgr_wake_up(lm, 3, &h, 1, 77, true);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.o, TXN_WAIT_WOKEN);
    assert_int_equal(txn_lock_mgr_wait_for(lm, 3, 1, 33, 60000, dl_cb, &c2), 0);
    assert_int_equal(c2.calls, 0);
    assert_int_equal(txn_lock_mgr_waiter_count(lm), 2);
    /* Freeing the manager ends the remaining waits with a timeout. */
    txn_lock_mgr_free(lm);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.o, TXN_WAIT_TIMEOUT);
    assert_int_equal(c2.calls, 1);
}

static void test_rc_check_ts_reads_answer_write_conflict_on_locks(void **state)
{
    txn_fx *f = *state;
    put_committed(f, "k", "v", 10, 11);
    fx_must_prewrite_put(f, "k", "w", "k", 20);
    Kvrpcpb__Context ctx = f->ctx;
    ctx.isolation_level = KVRPCPB__ISOLATION_LEVEL__RCCheckTS;
    Kvrpcpb__GetRequest req = KVRPCPB__GET_REQUEST__INIT;
    req.context = &ctx;
    req.key = fx_bin("k");
    req.version = 15; /* even a lock newer than the read */
    Kvrpcpb__GetResponse *r = fx_call(f, "KvGet", &req.base);
    assert_non_null(r->error);
    assert_non_null(r->error->conflict);
    assert_int_equal(r->error->conflict->reason, KVRPCPB__WRITE_CONFLICT__REASON__RcCheckTs);
    assert_int_equal(r->error->conflict->conflict_ts, 20);
    fx_free(r);
}

static void test_pessimistic_prewrite_without_lock_is_amended_or_refused(void **state)
{
    txn_fx *f = *state;
    /* No pessimistic lock, nothing committed since start: TiKV amends the lock. */
    pessimistic_prewrite_commit(f, "k", "v", 10, 12, 15);
    fx_must_get(f, "k", 15, "v");
    /* No lock and a commit newer than our start: PessimisticLockNotFound (abort). */
    Kvrpcpb__Mutation m = KVRPCPB__MUTATION__INIT;
    m.key = fx_bin("k");
    m.value = fx_bin("x");
    Kvrpcpb__Mutation *mp = &m;
    Kvrpcpb__PrewriteRequest__PessimisticAction act =
        KVRPCPB__PREWRITE_REQUEST__PESSIMISTIC_ACTION__DO_PESSIMISTIC_CHECK;
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    req.n_mutations = 1;
    req.mutations = &mp;
    req.primary_lock = fx_bin("k");
    req.start_version = 12;
    req.for_update_ts = 20;
    req.lock_ttl = 100;
    req.n_pessimistic_actions = 1;
    req.pessimistic_actions = &act;
    Kvrpcpb__PrewriteResponse *r = fx_call(f, "KvPrewrite", &req.base);
    assert_int_equal(r->n_errors, 1);
    assert_non_null(r->errors[0]->abort);
    assert_non_null(strstr(r->errors[0]->abort, "PessimisticLockNotFound"));
    fx_free(r);
    /* A pessimistic lock of another txn on a key we hold pessimistically? Lock type
     * mismatch: an optimistic prewrite meeting its own pessimistic lock. */
    Kvrpcpb__PessimisticLockResponse *pl = fx_plock(f, "p", "p", 30, 30, -1, false);
    fx_free(pl);
    Kvrpcpb__PrewriteResponse *p2 = fx_prewrite(f, "p", "v", KVRPCPB__OP__Put, "p", 30);
    assert_int_equal(p2->n_errors, 1);
    assert_non_null(p2->errors[0]->abort);
    fx_free(p2);
}

static void test_lock_only_if_exists_and_resolving_pessimistic_locks(void **state)
{
    txn_fx *f = *state;
    Kvrpcpb__Mutation m = KVRPCPB__MUTATION__INIT;
    m.op = KVRPCPB__OP__PessimisticLock;
    m.key = fx_bin("absent");
    Kvrpcpb__Mutation *mp = &m;
    Kvrpcpb__PessimisticLockRequest req = KVRPCPB__PESSIMISTIC_LOCK_REQUEST__INIT;
    req.n_mutations = 1;
    req.mutations = &mp;
    req.primary_lock = fx_bin("absent");
    req.start_version = 10;
    req.for_update_ts = 10;
    req.lock_ttl = 1;
    req.wait_timeout = -1;
    req.return_values = true;
    req.lock_only_if_exists = true;
    Kvrpcpb__PessimisticLockResponse *r = fx_call(f, "KvPessimisticLock", &req.base);
    assert_int_equal(r->n_errors, 0);
    assert_true(r->not_founds[0]);
    fx_free(r);
    assert_int_equal(count_locks(f), 0); /* nothing to lock */
    /* An expired pessimistic primary met by a pessimistic resolver is just unlocked. */
    m.key = fx_bin("pk");
    req.primary_lock = fx_bin("pk");
    req.lock_only_if_exists = false;
    req.start_version = ts_ms(100);
    req.for_update_ts = ts_ms(100);
    r = fx_call(f, "KvPessimisticLock", &req.base);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
    Kvrpcpb__CheckTxnStatusRequest cs = KVRPCPB__CHECK_TXN_STATUS_REQUEST__INIT;
    cs.primary_key = fx_bin("pk");
    cs.lock_ts = ts_ms(100);
    cs.current_ts = ts_ms(200);
    cs.resolving_pessimistic_lock = true;
    Kvrpcpb__CheckTxnStatusResponse *st = fx_call(f, "KvCheckTxnStatus", &cs.base);
    assert_int_equal(st->action, KVRPCPB__ACTION__TTLExpirePessimisticRollback);
    fx_free(st);
    assert_int_equal(count_locks(f), 0);
    /* Nothing left and still resolving pessimistic locks: LockNotExistDoNothing. */
    cs.rollback_if_not_exist = true;
    st = fx_call(f, "KvCheckTxnStatus", &cs.base);
    assert_int_equal(st->action, KVRPCPB__ACTION__LockNotExistDoNothing);
    fx_free(st);
}

static void test_gc_worker_collects_in_background(void **state)
{
    txn_fx *f = *state;
    put_committed(f, "k", "1", 10, 11);
    put_committed(f, "k", "2", 20, 21);
    put_committed(f, "k", "3", 30, 31);
    gc_safe_point = 25;
    stor_gc_opts o = {.safe_point = sp_cb, .regions = regions_cb, .interval_ms = 5};
    stor_gc_worker *w;
    assert_int_equal(stor_gc_worker_new(f->s, &o, &w), 0);
    uint64_t t0 = tkv_clock_mono_ms();
    while (stor_gc_worker_done_safe_point(w) != 25) {
        if (tkv_clock_mono_ms() - t0 > 10000)
            fail_msg("GC worker did not collect within 10 s");
        tkv_sleep_ms(1);
    }
    stor_gc_worker_free(w);
    assert_int_equal(write_versions(f, "k"), 2);
    fx_must_get(f, "k", 25, "2");
    fx_must_get(f, "k", 31, "3");
}

static void test_assertions_are_checked_when_asked(void **state)
{
    txn_fx *f = *state;
    put_committed(f, "k", "v", 10, 11);
    Kvrpcpb__Mutation m = KVRPCPB__MUTATION__INIT;
    m.key = fx_bin("k");
    m.value = fx_bin("w");
    m.assertion = KVRPCPB__ASSERTION__NotExist;
    Kvrpcpb__Mutation *mp = &m;
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    req.n_mutations = 1;
    req.mutations = &mp;
    req.primary_lock = fx_bin("k");
    req.start_version = 20;
    req.lock_ttl = 100;
    /* Assertion level Off: not checked. */
    Kvrpcpb__PrewriteResponse *r = fx_call(f, "KvPrewrite", &req.base);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
    Kvrpcpb__BatchRollbackResponse *rb = fx_rollback(f, "k", 20);
    fx_free(rb);
    req.start_version = 30;
    req.assertion_level = KVRPCPB__ASSERTION_LEVEL__Strict;
    r = fx_call(f, "KvPrewrite", &req.base);
    assert_int_equal(r->n_errors, 1);
    Kvrpcpb__AssertionFailed *af = r->errors[0]->assertion_failed;
    assert_non_null(af);
    assert_int_equal(af->start_ts, 30);
    assert_int_equal(af->assertion, KVRPCPB__ASSERTION__NotExist);
    assert_int_equal(af->existing_start_ts, 10);
    assert_int_equal(af->existing_commit_ts, 11);
    assert_true(fx_bin_eq(af->key, "k"));
    fx_free(r);
    m.assertion = KVRPCPB__ASSERTION__Exist;
    req.start_version = 40;
    r = fx_call(f, "KvPrewrite", &req.base);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
}

/* A seam over the fixture's whose snapshots say a leader of term 7 served them, and which
 * records the term each write asks for. */
typedef struct term_kv {
    stor_kv *inner;
    uint64_t write_term;
    int writes;
} term_kv;

typedef struct term_snap_call {
    stor_snap_cb cb;
    void *ud;
} term_snap_call;

static void term_on_snap(void *ud, int rc, Errorpb__Error *rerr, stor_snap *snap)
{
    term_snap_call c = *(term_snap_call *)ud;
    free(ud);
    if (snap != NULL)
        snap->term = 7;
    c.cb(c.ud, rc, rerr, snap);
}

static int term_snapshot(void *impl, const stor_ctx *ctx, stor_snap_cb cb, void *ud)
{
    term_kv *t = impl;
    term_snap_call *c = malloc(sizeof(*c));
    assert_non_null(c);
    c->cb = cb;
    c->ud = ud;
    int rc = stor_kv_snapshot(t->inner, ctx, term_on_snap, c);
    if (rc != 0)
        free(c);
    return rc;
}

static int term_write(void *impl, const stor_ctx *ctx, const stor_modify *mods, size_t n,
                      stor_write_cb cb, void *ud)
{
    term_kv *t = impl;
    t->write_term = ctx->term; /* commands run one at a time in this test */
    t->writes++;
    return stor_kv_write(t->inner, ctx, mods, n, cb, ud);
}

static const stor_kv_ops term_ops = {.write = term_write, .snapshot = term_snapshot};

/* TiKV puts the term of the leader that served a command's snapshot into its write, so that a
 * leader of a later term refuses a write computed on an older leadership's view. */
static void test_writes_carry_the_term_of_their_snapshot(void **state)
{
    txn_fx *f = *state;
    term_kv tk = {.inner = f->kv};
    stor_kv wrapped = {.ops = &term_ops, .impl = &tk};
    stor_free(f->s);
    stor_opts o;
    stor_opts_init(&o);
    assert_int_equal(stor_new(&wrapped, &o, &f->s), 0);
    f->ctx.term = 5; /* what the client believed: the snapshot's term wins */
    fx_must_prewrite_put(f, "k", "v", "k", 10);
    assert_int_equal(tk.writes, 1);
    assert_int_equal(tk.write_term, 7);
    fx_must_commit(f, "k", 10, 11);
    assert_int_equal(tk.writes, 2);
    assert_int_equal(tk.write_term, 7);
    fx_must_get(f, "k", 12, "v");
    stor_free(f->s); /* before the wrapper goes out of scope */
    f->s = NULL;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_commit_makes_value_visible_at_and_after_commit_ts_only),
        T(test_prewrite_reports_write_conflict_with_tikv_fields),
        T(test_prewrite_meets_other_lock_and_own_lock),
        T(test_prewrite_reports_all_locked_keys_and_writes_nothing),
        T(test_insert_on_existing_key_is_already_exist),
        T(test_commit_retried_after_success_succeeds),
        T(test_commit_without_lock_or_record_is_txn_lock_not_found),
        T(test_commit_below_min_commit_ts_is_commit_ts_expired),
        T(test_prewrite_after_rollback_is_refused),
        T(test_rollback_removes_lock_and_long_value),
        T(test_long_values_round_trip_through_default_cf),
        T(test_crashed_transaction_is_resolved_by_reader_after_ttl),
        T(test_check_txn_status_reports_committed_and_missing),
        T(test_cleanup_answers_commit_version_or_rolls_back),
        T(test_heart_beat_extends_ttl_of_live_primary),
        T(test_scan_lock_and_region_wide_batch_resolve),
        T(test_check_secondary_locks_reports_locks_or_commit),
        T(test_scan_forward_reverse_limit_and_key_only),
        T(test_batch_get_omits_missing_and_reports_locks),
        T(test_reads_honour_resolved_and_committed_locks),
        T(test_keys_outside_region_get_region_error),
        T(test_pessimistic_lock_then_optimistic_prewrite_by_other_txn),
        T(test_pessimistic_lock_waits_and_wakes_on_release),
        T(test_deadlock_between_two_transactions_is_detected),
        T(test_delete_range_removes_all_versions_and_locks),
        T(test_unsafe_destroy_range_acts_store_wide_through_the_hook),
        T(test_reverse_scan_without_start_key_reads_from_region_end),
        T(test_gc_keeps_newest_version_at_safe_point),
        T(test_prewrite_under_allocation_failures_is_all_or_nothing),
        cmocka_unit_test(test_detector_finds_three_party_cycle_and_forgets_ended_waits),
        cmocka_unit_test(test_wait_graph_edges_expire_after_ttl),
        T(test_rc_check_ts_reads_answer_write_conflict_on_locks),
        T(test_pessimistic_prewrite_without_lock_is_amended_or_refused),
        T(test_lock_only_if_exists_and_resolving_pessimistic_locks),
        T(test_gc_worker_collects_in_background),
        T(test_assertions_are_checked_when_asked),
        T(test_writes_carry_the_term_of_their_snapshot),
    };
    g_rocks = false;
    int rc = cmocka_run_group_tests_name("txn on eng_mem", tests, NULL, NULL);
    g_rocks = true;
    rc += cmocka_run_group_tests_name("txn on eng_rocks", tests, NULL, NULL);
    return rc;
}
