/*
 * test_onepc.c: one-phase commit (PrewriteRequest.try_one_pc) and the concurrency manager
 * behind it: the commit_ts is above every snapshot read's ts (so a repeated read never
 * changes), readers wait for 1PC writes that may commit below them, and 1PC falls back to
 * 2PC when max_commit_ts is too small, after a leader change until a PD timestamp has
 * synced max_ts, and for a retried request that already wrote locks.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "storage/txn/concurrency.h"
#include "txn_fixture.h"

static int setup(void **state)
{
    *state = fx_open(false);
    return 0;
}

static int teardown(void **state)
{
    fx_close(*state);
    return 0;
}

/* A 1PC (or, with !one_pc, 2PC) prewrite of Puts of @keys[i] = @vals[i]. */
typedef struct pw_opts {
    bool one_pc;
    uint64_t max_commit_ts;
    uint64_t for_update_ts; /* != 0: pessimistic, every key DoPessimisticCheck */
} pw_opts;

static Kvrpcpb__PrewriteResponse *prewrite(txn_fx *f, const char *const *keys,
                                           const char *const *vals, size_t n, uint64_t start_ts,
                                           const pw_opts *o)
{
    Kvrpcpb__Mutation m[8];
    Kvrpcpb__Mutation *mp[8];
    Kvrpcpb__PrewriteRequest__PessimisticAction pa[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        kvrpcpb__mutation__init(&m[i]);
        m[i].op = KVRPCPB__OP__Put;
        m[i].key = fx_bin(keys[i]);
        m[i].value = fx_bin(vals[i]);
        mp[i] = &m[i];
        pa[i] = KVRPCPB__PREWRITE_REQUEST__PESSIMISTIC_ACTION__DO_PESSIMISTIC_CHECK;
    }
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    req.n_mutations = n;
    req.mutations = mp;
    req.primary_lock = fx_bin(keys[0]);
    req.start_version = start_ts;
    req.lock_ttl = 3000;
    req.txn_size = n;
    req.try_one_pc = o->one_pc;
    req.max_commit_ts = o->max_commit_ts;
    if (o->for_update_ts != 0) {
        req.for_update_ts = o->for_update_ts;
        req.n_pessimistic_actions = n;
        req.pessimistic_actions = pa;
    }
    return fx_call(f, "KvPrewrite", &req.base);
}

/* A successful 1PC prewrite of one key; returns one_pc_commit_ts (0: fell back). */
static uint64_t one_pc_put(txn_fx *f, const char *key, const char *val, uint64_t start_ts,
                           uint64_t max_commit_ts)
{
    pw_opts o = {.one_pc = true, .max_commit_ts = max_commit_ts};
    Kvrpcpb__PrewriteResponse *r = prewrite(f, &key, &val, 1, start_ts, &o);
    assert_null(r->region_error);
    assert_int_equal(r->n_errors, 0);
    assert_int_equal(r->min_commit_ts, 0);
    uint64_t ts = r->one_pc_commit_ts;
    fx_free(r);
    return ts;
}

static void test_one_pc_commits_every_key_in_one_write(void **state)
{
    txn_fx *f = *state;
    const char *keys[] = {"a", "b", "c"};
    const char *vals[] = {"1", "2", "3"};
    pw_opts o = {.one_pc = true};
    Kvrpcpb__PrewriteResponse *r = prewrite(f, keys, vals, 3, 10, &o);
    assert_int_equal(r->n_errors, 0);
    /* max_ts is 0: commit_ts = start_ts + 1. */
    assert_int_equal(r->one_pc_commit_ts, 11);
    fx_free(r);
    /* Committed, no locks left: readers above see the values, readers below do not. */
    for (size_t i = 0; i < 3; i++) {
        fx_must_get(f, keys[i], 11, vals[i]);
        fx_must_get(f, keys[i], 100, vals[i]);
        fx_must_get(f, keys[i], 10, NULL);
    }
    /* A conflicting transaction that started before the commit is refused. */
    pw_opts two = {.one_pc = false};
    r = prewrite(f, keys, vals, 1, 10 - 1, &two);
    assert_int_equal(r->n_errors, 1);
    assert_non_null(r->errors[0]->conflict);
    assert_int_equal(r->errors[0]->conflict->conflict_commit_ts, 11);
    fx_free(r);
}

static void test_one_pc_commit_ts_is_above_an_earlier_read(void **state)
{
    txn_fx *f = *state;
    fx_must_prewrite_put(f, "k", "old", "k", 5);
    fx_must_commit(f, "k", 5, 6);
    /* A reader at 50 sees "old"; a 1PC transaction that started at 20 then writes k: its
     * commit_ts must be above 50, so the reader's repeated read does not change. */
    fx_must_get(f, "k", 50, "old");
    uint64_t commit_ts = one_pc_put(f, "k", "new", 20, 0);
    assert_int_equal(commit_ts, 51);
    fx_must_get(f, "k", 50, "old");
    fx_must_get(f, "k", 51, "new");
}

static void test_scans_and_batch_gets_raise_max_ts_too(void **state)
{
    txn_fx *f = *state;
    Kvrpcpb__ScanRequest sreq = KVRPCPB__SCAN_REQUEST__INIT;
    sreq.start_key = fx_bin("a");
    sreq.limit = 10;
    sreq.version = 70;
    fx_free(fx_call(f, "KvScan", &sreq.base));
    assert_int_equal(one_pc_put(f, "s", "1", 30, 0), 71);

    ProtobufCBinaryData keys[2] = {fx_bin("x"), fx_bin("y")};
    Kvrpcpb__BatchGetRequest breq = KVRPCPB__BATCH_GET_REQUEST__INIT;
    breq.keys = keys;
    breq.n_keys = 2;
    breq.version = 90;
    fx_free(fx_call(f, "KvBatchGet", &breq.base));
    assert_int_equal(one_pc_put(f, "x", "1", 40, 0), 91);
}

static void test_an_insert_lock_raises_max_ts_to_its_for_update_ts(void **state)
{
    txn_fx *f = *state;
    Kvrpcpb__Mutation m = KVRPCPB__MUTATION__INIT;
    m.op = KVRPCPB__OP__PessimisticLock;
    m.key = fx_bin("new");
    m.assertion = KVRPCPB__ASSERTION__NotExist;
    Kvrpcpb__Mutation *mp = &m;
    Kvrpcpb__PessimisticLockRequest req = KVRPCPB__PESSIMISTIC_LOCK_REQUEST__INIT;
    req.n_mutations = 1;
    req.mutations = &mp;
    req.primary_lock = fx_bin("new");
    req.start_version = 60;
    req.for_update_ts = 80;
    req.lock_ttl = 3000;
    Kvrpcpb__PessimisticLockResponse *r = fx_call(f, "KvPessimisticLock", &req.base);
    assert_int_equal(r->n_errors, 0);
    fx_free(r);
    assert_int_equal(one_pc_put(f, "other", "v", 30, 0), 81);
}

static void test_read_committed_reads_do_not_raise_max_ts(void **state)
{
    txn_fx *f = *state;
    f->ctx.isolation_level = KVRPCPB__ISOLATION_LEVEL__RC;
    fx_must_get(f, "k", 500, NULL);
    f->ctx.isolation_level = KVRPCPB__ISOLATION_LEVEL__SI;
    assert_int_equal(one_pc_put(f, "k", "v", 20, 0), 21);
}

static void test_one_pc_falls_back_when_max_commit_ts_is_too_small(void **state)
{
    txn_fx *f = *state;
    fx_must_get(f, "k", 50, NULL);
    /* commit_ts would be 51 > 30: locks are written instead and the client commits. */
    assert_int_equal(one_pc_put(f, "k", "v", 20, 30), 0);
    fx_must_get_locked(f, "k", 100, 20);
    fx_must_commit(f, "k", 20, 60);
    fx_must_get(f, "k", 60, "v");
    /* max_ts is 100 now (the locked read): a bound at or above 101 is fine. */
    assert_int_equal(one_pc_put(f, "j", "v", 20, 100), 0);
    fx_must_commit(f, "j", 20, 110);
    assert_int_equal(one_pc_put(f, "i", "v", 20, 101), 101);
}

static void test_retried_one_pc_prewrite_answers_the_same_commit_ts(void **state)
{
    txn_fx *f = *state;
    uint64_t ts = one_pc_put(f, "k", "v", 20, 0);
    assert_int_equal(ts, 21);
    fx_must_get(f, "k", 200, "v"); /* max_ts is 200 now */
    /* The answer was lost and the client sends the request again. */
    assert_int_equal(one_pc_put(f, "k", "v", 20, 0), 21);
    fx_must_get(f, "k", 200, "v");
}

static void test_one_pc_falls_back_over_its_own_earlier_locks(void **state)
{
    txn_fx *f = *state;
    const char *keys[] = {"p", "q"};
    const char *vals[] = {"1", "2"};
    /* The first attempt wrote locks for p only (as a 2PC prewrite would); a retry of the
     * whole transaction with try_one_pc must not commit q while p stays locked. */
    fx_must_prewrite_put(f, "p", "1", "p", 20);
    pw_opts o = {.one_pc = true};
    Kvrpcpb__PrewriteResponse *r = prewrite(f, keys, vals, 2, 20, &o);
    assert_int_equal(r->n_errors, 0);
    assert_int_equal(r->one_pc_commit_ts, 0);
    fx_free(r);
    fx_must_get_locked(f, "p", 100, 20);
    fx_must_get_locked(f, "q", 100, 20);
    fx_must_commit(f, "p", 20, 30);
    fx_must_commit(f, "q", 20, 30);
    fx_must_get(f, "q", 30, "2");
}

static void test_one_pc_flags_a_rollback_at_its_commit_ts(void **state)
{
    txn_fx *f = *state;
    /* Pessimistic transaction 20 holds k; transaction 51 is rolled back on k meanwhile (a
     * Rollback record at k@51). A 1PC commit of 20 that lands on 51 must keep that
     * rollback's effect: a late prewrite of 51 is refused. */
    Kvrpcpb__PessimisticLockResponse *pl = fx_plock(f, "k", "k", 20, 20, -1, false);
    assert_int_equal(pl->n_errors, 0);
    fx_free(pl);
    Kvrpcpb__BatchRollbackResponse *rb = fx_rollback(f, "k", 51);
    assert_null(rb->error);
    fx_free(rb);
    fx_must_get(f, "k", 50, NULL);
    const char *key = "k", *val = "v";
    pw_opts o = {.one_pc = true, .for_update_ts = 20};
    Kvrpcpb__PrewriteResponse *r = prewrite(f, &key, &val, 1, 20, &o);
    assert_int_equal(r->n_errors, 0);
    assert_int_equal(r->one_pc_commit_ts, 51);
    fx_free(r);
    fx_must_get(f, "k", 51, "v");
    r = fx_prewrite(f, "k", "late", KVRPCPB__OP__Put, "k", 51);
    assert_int_equal(r->n_errors, 1);
    assert_non_null(r->errors[0]->conflict);
    assert_int_equal(r->errors[0]->conflict->reason,
                     KVRPCPB__WRITE_CONFLICT__REASON__SelfRolledBack);
    fx_free(r);
}

static void test_pessimistic_one_pc_commits_and_removes_the_pessimistic_locks(void **state)
{
    txn_fx *f = *state;
    const char *keys[] = {"a", "b"};
    const char *vals[] = {"1", "2"};
    for (size_t i = 0; i < 2; i++) {
        Kvrpcpb__PessimisticLockResponse *pr = fx_plock(f, keys[i], "a", 40, 45, -1, false);
        assert_int_equal(pr->n_errors, 0);
        fx_free(pr);
    }
    pw_opts o = {.one_pc = true, .for_update_ts = 45};
    Kvrpcpb__PrewriteResponse *r = prewrite(f, keys, vals, 2, 40, &o);
    assert_int_equal(r->n_errors, 0);
    /* max(max_ts 0, start_ts 40, for_update_ts 45) + 1 */
    assert_int_equal(r->one_pc_commit_ts, 46);
    fx_free(r);
    fx_must_get(f, "a", 46, "1");
    fx_must_get(f, "b", 100, "2");
    fx_must_get(f, "b", 45, NULL);
}

/* ---- leader change: max_ts must be synced from a TSO first ----------------------------- */

typedef struct fake_tso {
    int calls;
    void (*cb)(void *ud, int rc, uint64_t ts);
    void *ud;
} fake_tso;

static int fake_tso_fn(void *arg, void (*cb)(void *ud, int rc, uint64_t ts), void *ud)
{
    fake_tso *t = arg;
    t->calls++;
    t->cb = cb;
    t->ud = ud;
    return 0;
}

static void fake_tso_answer(fake_tso *t, uint64_t ts)
{
    assert_non_null(t->cb);
    void (*cb)(void *, int, uint64_t) = t->cb;
    t->cb = NULL;
    if (cb != NULL) /* always, once the assertion passed; the analyzer cannot see that */
        cb(t->ud, 0, ts);
}

static void test_one_pc_falls_back_after_a_leader_change_until_max_ts_is_synced(void **state)
{
    txn_fx *f = *state;
    fake_tso tso = {0};
    stor_set_tso(f->s, fake_tso_fn, &tso);
    /* This store became leader in term 7: reads served by the old leader raised its max_ts,
     * not ours, so 1PC waits for a timestamp from PD. */
    stor_kv_local_set_term(f->kv, 7);
    assert_int_equal(one_pc_put(f, "a", "1", 20, 0), 0);
    fx_must_get_locked(f, "a", 100, 20);
    assert_int_equal(tso.calls, 1);
    /* One fetch at a time. */
    assert_int_equal(one_pc_put(f, "b", "1", 21, 0), 0);
    assert_int_equal(tso.calls, 1);
    /* PD answers 1000 (above every ts the old leader can have read at). */
    fake_tso_answer(&tso, 1000);
    assert_int_equal(one_pc_put(f, "c", "1", 30, 0), 1001);
    fx_must_get(f, "c", 1001, "1");
    /* Another leader change: again not synced until a new timestamp arrives. */
    stor_kv_local_set_term(f->kv, 8);
    assert_int_equal(one_pc_put(f, "d", "1", 40, 0), 0);
    assert_int_equal(tso.calls, 2);
    fake_tso_answer(&tso, 2000);
    assert_int_equal(one_pc_put(f, "e", "1", 50, 0), 2001);
    /* A split (epoch version change) also asks again. */
    stor_kv_local_set_epoch(f->kv, 1, 2);
    f->ctx.region_epoch = NULL;
    assert_int_equal(one_pc_put(f, "g", "1", 60, 0), 0);
    assert_int_equal(tso.calls, 3);
    fake_tso_answer(&tso, 3000);
    assert_int_equal(one_pc_put(f, "h", "1", 70, 0), 3001);
}

static void test_without_a_tso_source_only_local_regions_do_one_pc(void **state)
{
    txn_fx *f = *state;
    stor_kv_local_set_term(f->kv, 3);
    assert_int_equal(one_pc_put(f, "a", "1", 20, 0), 0);
    fx_must_get_locked(f, "a", 100, 20);
    stor_kv_local_set_term(f->kv, 0);
    assert_int_equal(one_pc_put(f, "b", "1", 20, 0), 101);
}

/* ---- the concurrency manager alone ------------------------------------------------------- */

static void count_retry(void *arg)
{
    (*(int *)arg)++;
}

static void test_readers_wait_for_one_pc_writes_that_may_commit_below_them(void **state)
{
    (void)state;
    txn_cm *cm;
    assert_int_equal(txn_cm_new(&cm), 0);
    txn_cm_update_max_ts(cm, 50);
    tkv_slice keys[2] = {tkv_slice_str("k1"), tkv_slice_str("k3")};
    uint64_t commit_ts;
    txn_cm_guard *g;
    assert_int_equal(txn_cm_lock_1pc(cm, keys, 2, 20, 0, 0, 0, &commit_ts, &g), 0);
    assert_non_null(g);
    assert_int_equal(commit_ts, 51);

    int retried = 0;
    bool queued;
    tkv_slice k1 = tkv_slice_str("k1"), k2 = tkv_slice_str("k2");
    /* Below the commit_ts: the write is invisible to it either way. */
    txn_cm_read r = {.ts = 50, .keys = &k1, .n_keys = 1};
    assert_int_equal(txn_cm_begin_read(cm, &r, count_retry, &retried, &queued), 0);
    assert_false(queued);
    /* Another key. */
    r = (txn_cm_read){.ts = 60, .keys = &k2, .n_keys = 1};
    assert_int_equal(txn_cm_begin_read(cm, &r, count_retry, &retried, &queued), 0);
    assert_false(queued);
    /* The reader's transaction may pass this one's locks. */
    uint64_t bypass = 20;
    r = (txn_cm_read){.ts = 60, .keys = &k1, .n_keys = 1, .bypass = &bypass, .n_bypass = 1};
    assert_int_equal(txn_cm_begin_read(cm, &r, count_retry, &retried, &queued), 0);
    assert_false(queued);
    /* At or above the commit_ts, covering k1: waits. */
    r = (txn_cm_read){.ts = 51, .keys = &k1, .n_keys = 1};
    assert_int_equal(txn_cm_begin_read(cm, &r, count_retry, &retried, &queued), 0);
    assert_true(queued);
    /* A range covering k3 (inclusive bounds) waits; one ending before k1 does not. */
    r = (txn_cm_read){.ts = 70, .range = true, .lower = k2, .upper = tkv_slice_str("k3")};
    assert_int_equal(txn_cm_begin_read(cm, &r, count_retry, &retried, &queued), 0);
    assert_true(queued);
    r = (txn_cm_read){
        .ts = 70, .range = true, .lower = tkv_slice_str("a"), .upper = tkv_slice_str("k0")};
    assert_int_equal(txn_cm_begin_read(cm, &r, count_retry, &retried, &queued), 0);
    assert_false(queued);
    /* An unbounded range waits. */
    r = (txn_cm_read){.ts = 70, .range = true};
    assert_int_equal(txn_cm_begin_read(cm, &r, count_retry, &retried, &queued), 0);
    assert_true(queued);
    assert_int_equal(retried, 0);
    /* Every read raised max_ts: the next 1PC commits above 70. */
    assert_int_equal(txn_cm_max_ts(cm), 70);
    txn_cm_release(cm, g);
    assert_int_equal(retried, 3);
    assert_int_equal(txn_cm_lock_1pc(cm, keys, 1, 20, 0, 0, 0, &commit_ts, &g), 0);
    assert_int_equal(commit_ts, 71);
    /* max_commit_ts below it: no guard, the caller falls back. */
    txn_cm_guard *g2;
    assert_int_equal(txn_cm_lock_1pc(cm, keys + 1, 1, 20, 0, 0, 71, &commit_ts, &g2), 0);
    assert_non_null(g2);
    txn_cm_release(cm, g2);
    assert_int_equal(txn_cm_lock_1pc(cm, keys + 1, 1, 20, 0, 0, 70, &commit_ts, &g2), 0);
    assert_null(g2);
    /* for_update_ts and min_commit_ts raise it too; "read the newest" reads do not. */
    txn_cm_release(cm, g);
    assert_int_equal(txn_cm_lock_1pc(cm, keys, 1, 20, 90, 0, 0, &commit_ts, &g), 0);
    assert_int_equal(commit_ts, 91);
    txn_cm_release(cm, g);
    assert_int_equal(txn_cm_lock_1pc(cm, keys, 1, 20, 0, 500, 0, &commit_ts, &g), 0);
    assert_int_equal(commit_ts, 500);
    txn_cm_release(cm, g);
    txn_cm_update_max_ts(cm, UINT64_MAX);
    assert_int_equal(txn_cm_max_ts(cm), 70);
    txn_cm_free(cm);
}

/* ---- concurrent writers and readers ------------------------------------------------------ */

typedef struct race {
    txn_fx *f;
    pthread_mutex_t mu;
    uint64_t next_ts; /* the fake TSO */
    int rounds;
    int commits;
} race;

static uint64_t race_tso(race *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t ts = ++r->next_ts;
    pthread_mutex_unlock(&r->mu);
    return ts;
}

static long read_counter(txn_fx *f, uint64_t ts)
{
    Kvrpcpb__GetResponse *g = fx_get(f, "ctr", ts);
    assert_null(g->region_error);
    assert_null(g->error);
    long v = 0;
    if (!g->not_found) {
        char buf[32];
        assert_true(g->value.len < sizeof(buf));
        memcpy(buf, g->value.data, g->value.len);
        buf[g->value.len] = 0;
        v = strtol(buf, NULL, 10);
    }
    fx_free(g);
    return v;
}

/* Increments the counter in 1PC transactions (retrying conflicts). */
static void *race_writer(void *arg)
{
    race *r = arg;
    for (int i = 0; i < r->rounds; i++) {
        for (;;) {
            uint64_t start_ts = race_tso(r);
            long v = read_counter(r->f, start_ts);
            char val[32];
            snprintf(val, sizeof(val), "%ld", v + 1);
            const char *key = "ctr", *vp = val;
            pw_opts o = {.one_pc = true};
            Kvrpcpb__PrewriteResponse *p = prewrite(r->f, &key, &vp, 1, start_ts, &o);
            bool ok = p->n_errors == 0 && p->one_pc_commit_ts > start_ts;
            if (p->n_errors > 0)
                assert_non_null(p->errors[0]->conflict);
            fx_free(p);
            if (ok) {
                pthread_mutex_lock(&r->mu);
                r->commits++;
                pthread_mutex_unlock(&r->mu);
                break;
            }
        }
    }
    return NULL;
}

/* Reads the counter twice at one fresh ts: snapshot isolation says both reads agree. */
static void *race_reader(void *arg)
{
    race *r = arg;
    for (int i = 0; i < r->rounds * 4; i++) {
        uint64_t ts = race_tso(r);
        long a = read_counter(r->f, ts);
        long b = read_counter(r->f, ts);
        if (a != b)
            fail_msg("reads at %llu disagree: %ld then %ld", (unsigned long long)ts, a, b);
    }
    return NULL;
}

static void test_concurrent_one_pc_writers_keep_reads_repeatable(void **state)
{
    race r = {.f = *state, .rounds = 150};
    pthread_mutex_init(&r.mu, NULL);
    pthread_t th[4];
    assert_int_equal(pthread_create(&th[0], NULL, race_writer, &r), 0);
    assert_int_equal(pthread_create(&th[1], NULL, race_writer, &r), 0);
    assert_int_equal(pthread_create(&th[2], NULL, race_reader, &r), 0);
    assert_int_equal(pthread_create(&th[3], NULL, race_reader, &r), 0);
    for (size_t i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    /* No increment was lost. */
    assert_int_equal(r.commits, 2 * r.rounds);
    assert_int_equal(read_counter(r.f, race_tso(&r)), 2 * r.rounds);
    pthread_mutex_destroy(&r.mu);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_one_pc_commits_every_key_in_one_write),
        T(test_one_pc_commit_ts_is_above_an_earlier_read),
        T(test_scans_and_batch_gets_raise_max_ts_too),
        T(test_an_insert_lock_raises_max_ts_to_its_for_update_ts),
        T(test_read_committed_reads_do_not_raise_max_ts),
        T(test_one_pc_falls_back_when_max_commit_ts_is_too_small),
        T(test_retried_one_pc_prewrite_answers_the_same_commit_ts),
        T(test_one_pc_falls_back_over_its_own_earlier_locks),
        T(test_one_pc_flags_a_rollback_at_its_commit_ts),
        T(test_pessimistic_one_pc_commits_and_removes_the_pessimistic_locks),
        T(test_one_pc_falls_back_after_a_leader_change_until_max_ts_is_synced),
        T(test_without_a_tso_source_only_local_regions_do_one_pc),
        cmocka_unit_test(test_readers_wait_for_one_pc_writes_that_may_commit_below_them),
        T(test_concurrent_one_pc_writers_keep_reads_repeatable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
