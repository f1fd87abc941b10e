/*
 * test_txn_model.c: many transactions interleaved at the request level against a simple
 * model of snapshot isolation, checking every read.
 *
 * A seeded driver (TKV_SEED, or a printed random seed) runs up to ACTIVE transactions at
 * once over a handful of keys. Each transaction reads at its start_ts (point gets, batch
 * gets, forward and reverse scans), then prewrites its buffered writes in one request,
 * takes a commit_ts from a logical TSO and commits the primary (the commit point) and then
 * the secondaries one request at a time. Some transactions roll back, and some "crash"
 * (stop forever) after prewriting or after committing the primary; their locks carry a short
 * TTL so readers resolve them: CheckTxnStatus on the primary, then ResolveLock. The model
 * keeps every committed version; each read must return exactly the newest version at or
 * below its timestamp, or be blocked by a lock of a transaction that is not decided at that
 * timestamp. Committed transactions must obey first-committer-wins. At the end every lock is
 * resolved, the whole key space is compared forward and reverse, GC runs at a safe point and
 * every read at or above the safe point still matches the model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/clock.h"
#include "storage/gc/gc.h"
#include "txn_fixture.h"

#define NKEYS    10
#define ACTIVE   5
#define MAXW     4
#define MAXVERS  512
#define LONG_TTL (1ULL << 30)

/* ---- the model ------------------------------------------------------------------------- */

typedef struct version {
    uint64_t commit_ts;
    bool deleted;
    char value[32];
} version;

typedef struct model {
    version vers[NKEYS][MAXVERS];
    size_t n[NKEYS];
} model;

static const char *key_name(int k)
{
    static const char *names[NKEYS] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    return names[k];
}

/* Returns the value visible at @ts, or NULL. */
static const char *model_get(const model *m, int k, uint64_t ts)
{
    const version *best = NULL;
    for (size_t i = 0; i < m->n[k]; i++) {
        if (m->vers[k][i].commit_ts <= ts &&
            (best == NULL || m->vers[k][i].commit_ts > best->commit_ts))
            best = &m->vers[k][i];
    }
    return best == NULL || best->deleted ? NULL : best->value;
}

/* ---- the driver ------------------------------------------------------------------------ */

typedef enum phase { P_READ, P_PREWRITE, P_COMMIT_PRIMARY, P_COMMIT_SECONDARY, P_DONE } phase;

typedef struct txn {
    uint64_t start_ts, commit_ts;
    phase ph;
    int reads_left;
    int nw;
    int wkey[MAXW];
    bool wdel[MAXW];
    char wval[MAXW][32];
    int next_secondary;
    int crash_at; /* -1: never; else the phase it stops before */
} txn;

typedef struct driver {
    txn_fx *f;
    tkv_rng rng;
    model m;
    uint64_t tso_ms;
    size_t reads_checked, blocked, committed, aborted, crashed, resolved;
} driver;

static uint64_t tso(driver *d)
{
    return txn_ts_compose(++d->tso_ms, 0);
}

/* Resolves the lock @li met by a read at @read_ts the way a client does. */
static void resolve(driver *d, const Kvrpcpb__LockInfo *li, uint64_t read_ts)
{
    Kvrpcpb__CheckTxnStatusRequest cs = KVRPCPB__CHECK_TXN_STATUS_REQUEST__INIT;
    cs.primary_key = li->primary_lock;
    cs.lock_ts = li->lock_version;
    cs.caller_start_ts = read_ts;
    cs.current_ts = tso(d);
    cs.rollback_if_not_exist = true;
    Kvrpcpb__CheckTxnStatusResponse *st = fx_call(d->f, "KvCheckTxnStatus", &cs.base);
    assert_null(st->region_error);
    assert_null(st->error);
    if (st->lock_ttl == 0) {
        ProtobufCBinaryData key = li->key;
        Kvrpcpb__ResolveLockRequest rl = KVRPCPB__RESOLVE_LOCK_REQUEST__INIT;
        rl.start_version = li->lock_version;
        rl.commit_version = st->commit_version;
        rl.n_keys = 1;
        rl.keys = &key;
        Kvrpcpb__ResolveLockResponse *rr = fx_call(d->f, "KvResolveLock", &rl.base);
        assert_null(rr->error);
        fx_free(rr);
        d->resolved++;
    }
    fx_free(st);
}

static void check_value(driver *d, int k, uint64_t ts, bool found, ProtobufCBinaryData v)
{
    const char *want = model_get(&d->m, k, ts);
    if (want == NULL && found)
        fail_msg("read %s at %llu: got %.*s, model has nothing", key_name(k),
                 (unsigned long long)ts, (int)v.len, (const char *)v.data);
    if (want != NULL && (!found || !fx_bin_eq(v, want)))
        fail_msg("read %s at %llu: got %s%.*s, model has %s", key_name(k), (unsigned long long)ts,
                 found ? "" : "(nothing)", (int)v.len, found ? (const char *)v.data : "", want);
    d->reads_checked++;
}

static void do_get(driver *d, int k, uint64_t ts)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        Kvrpcpb__GetResponse *r = fx_get(d->f, key_name(k), ts);
        assert_null(r->region_error);
        if (r->error != NULL) {
            assert_non_null(r->error->locked);
            resolve(d, r->error->locked, ts);
            fx_free(r);
            continue;
        }
        check_value(d, k, ts, !r->not_found, r->value);
        fx_free(r);
        return;
    }
    d->blocked++;
}

static int key_index(ProtobufCBinaryData k)
{
    for (int i = 0; i < NKEYS; i++) {
        if (fx_bin_eq(k, key_name(i)))
            return i;
    }
    fail_msg("unknown key %.*s", (int)k.len, (const char *)k.data);
    return -1;
}

/* Scans everything at @ts; checks every unlocked row and that no visible key is missing. */
static void do_scan(driver *d, uint64_t ts, bool reverse, bool resolve_locks)
{
    Kvrpcpb__ScanRequest req = KVRPCPB__SCAN_REQUEST__INIT;
    req.limit = 100;
    req.version = ts;
    req.reverse = reverse;
    Kvrpcpb__ScanResponse *r = fx_call(d->f, "KvScan", &req.base);
    assert_null(r->region_error);
    assert_null(r->error);
    bool seen[NKEYS] = {false}, locked_any = false;
    int prev = reverse ? NKEYS : -1;
    for (size_t i = 0; i < r->n_pairs; i++) {
        if (r->pairs[i]->error != NULL) {
            assert_non_null(r->pairs[i]->error->locked);
            int k = key_index(r->pairs[i]->error->locked->key);
            seen[k] = true;
            locked_any = true;
            if (resolve_locks)
                resolve(d, r->pairs[i]->error->locked, ts);
            continue;
        }
        int k = key_index(r->pairs[i]->key);
        assert_true(reverse ? k < prev : k > prev);
        prev = k;
        seen[k] = true;
        check_value(d, k, ts, true, r->pairs[i]->value);
    }
    for (int k = 0; k < NKEYS; k++) {
        if (!seen[k] && model_get(&d->m, k, ts) != NULL)
            fail_msg("scan at %llu misses %s", (unsigned long long)ts, key_name(k));
    }
    if (locked_any)
        d->blocked++;
    fx_free(r);
}

static void do_batch_get(driver *d, uint64_t ts)
{
    ProtobufCBinaryData keys[3];
    int idx[3];
    for (int i = 0; i < 3; i++) {
        idx[i] = (int)tkv_rng_below(&d->rng, NKEYS);
        keys[i] = fx_bin(key_name(idx[i]));
    }
    Kvrpcpb__BatchGetRequest req = KVRPCPB__BATCH_GET_REQUEST__INIT;
    req.n_keys = 3;
    req.keys = keys;
    req.version = ts;
    Kvrpcpb__BatchGetResponse *r = fx_call(d->f, "KvBatchGet", &req.base);
    assert_null(r->region_error);
    bool got[3] = {false, false, false}, locked[3] = {false, false, false};
    for (size_t i = 0; i < r->n_pairs; i++) {
        int k = r->pairs[i]->error ? key_index(r->pairs[i]->error->locked->key)
                                   : key_index(r->pairs[i]->key);
        for (int j = 0; j < 3; j++) {
            if (idx[j] != k)
                continue;
            if (r->pairs[i]->error)
                locked[j] = true;
            else {
                got[j] = true;
                check_value(d, k, ts, true, r->pairs[i]->value);
            }
        }
    }
    for (int j = 0; j < 3; j++) {
        if (!got[j] && !locked[j] && model_get(&d->m, idx[j], ts) != NULL)
            fail_msg("batch get at %llu misses %s", (unsigned long long)ts, key_name(idx[j]));
    }
    fx_free(r);
}

static void rollback_all(driver *d, txn *t)
{
    ProtobufCBinaryData keys[MAXW];
    for (int i = 0; i < t->nw; i++)
        keys[i] = fx_bin(key_name(t->wkey[i]));
    Kvrpcpb__BatchRollbackRequest req = KVRPCPB__BATCH_ROLLBACK_REQUEST__INIT;
    req.start_version = t->start_ts;
    req.n_keys = (size_t)t->nw;
    req.keys = keys;
    Kvrpcpb__BatchRollbackResponse *r = fx_call(d->f, "KvBatchRollback", &req.base);
    assert_null(r->error);
    fx_free(r);
    t->ph = P_DONE;
    d->aborted++;
}

static void start_txn(driver *d, txn *t)
{
    memset(t, 0, sizeof(*t));
    t->ph = P_READ;
    t->start_ts = tso(d);
    t->reads_left = (int)tkv_rng_below(&d->rng, 4);
    t->nw = 1 + (int)tkv_rng_below(&d->rng, MAXW);
    for (int i = 0; i < t->nw; i++) {
        int k;
        bool dup;
        do {
            k = (int)tkv_rng_below(&d->rng, NKEYS);
            dup = false;
            for (int j = 0; j < i; j++)
                dup |= t->wkey[j] == k;
        } while (dup);
        t->wkey[i] = k;
        t->wdel[i] = tkv_rng_chance(&d->rng, 1, 6);
        snprintf(t->wval[i], sizeof(t->wval[i]), "%s@%llu", key_name(k),
                 (unsigned long long)t->start_ts);
    }
    t->crash_at = tkv_rng_chance(&d->rng, 1, 8)
                      ? (tkv_rng_chance(&d->rng, 1, 2) ? P_COMMIT_PRIMARY : P_COMMIT_SECONDARY)
                      : -1;
}

static void prewrite(driver *d, txn *t)
{
    Kvrpcpb__Mutation m[MAXW];
    Kvrpcpb__Mutation *mp[MAXW];
    for (int i = 0; i < t->nw; i++) {
        kvrpcpb__mutation__init(&m[i]);
        m[i].op = t->wdel[i] ? KVRPCPB__OP__Del : KVRPCPB__OP__Put;
        m[i].key = fx_bin(key_name(t->wkey[i]));
        if (!t->wdel[i])
            m[i].value = fx_bin(t->wval[i]);
        mp[i] = &m[i];
    }
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    req.n_mutations = (size_t)t->nw;
    req.mutations = mp;
    req.primary_lock = fx_bin(key_name(t->wkey[0]));
    req.start_version = t->start_ts;
    req.lock_ttl = t->crash_at >= 0 ? 3 : LONG_TTL;
    req.min_commit_ts = t->start_ts + 1;
    Kvrpcpb__PrewriteResponse *r = fx_call(d->f, "KvPrewrite", &req.base);
    assert_null(r->region_error);
    size_t n_errors = r->n_errors;
    for (size_t i = 0; i < r->n_errors; i++) {
        /* Only conflicts and locks are expected refusals. */
        assert_true(r->errors[i]->conflict != NULL || r->errors[i]->locked != NULL);
    }
    fx_free(r);
    if (n_errors > 0) {
        rollback_all(d, t);
        return;
    }
    t->ph = P_COMMIT_PRIMARY;
}

static bool commit_key(driver *d, txn *t, int i)
{
    ProtobufCBinaryData k = fx_bin(key_name(t->wkey[i]));
    for (;;) {
        Kvrpcpb__CommitRequest req = KVRPCPB__COMMIT_REQUEST__INIT;
        req.start_version = t->start_ts;
        req.commit_version = t->commit_ts;
        req.n_keys = 1;
        req.keys = &k;
        Kvrpcpb__CommitResponse *r = fx_call(d->f, "KvCommit", &req.base);
        assert_null(r->region_error);
        if (r->error != NULL && r->error->commit_ts_expired != NULL && i == 0) {
            t->commit_ts = tso(d); /* pushed by a reader: take a newer commit_ts */
            fx_free(r);
            continue;
        }
        bool ok = r->error == NULL;
        fx_free(r);
        return ok;
    }
}

/* The model's first-committer-wins check and the commit point. */
static void record_commit(driver *d, txn *t)
{
    for (int i = 0; i < t->nw; i++) {
        int k = t->wkey[i];
        for (size_t j = 0; j < d->m.n[k]; j++) {
            uint64_t c = d->m.vers[k][j].commit_ts;
            if (c > t->start_ts && c < t->commit_ts)
                fail_msg("lost update on %s: txn %llu commits at %llu over a commit at %llu",
                         key_name(k), (unsigned long long)t->start_ts,
                         (unsigned long long)t->commit_ts, (unsigned long long)c);
        }
        assert_true(d->m.n[k] < MAXVERS);
        version *v = &d->m.vers[k][d->m.n[k]++];
        v->commit_ts = t->commit_ts;
        v->deleted = t->wdel[i];
        memcpy(v->value, t->wval[i], sizeof(v->value));
    }
    d->committed++;
}

static void step(driver *d, txn *t)
{
    if ((int)t->ph == t->crash_at) {
        d->crashed++;
        t->ph = P_DONE; /* the client is gone; its locks stay */
        return;
    }
    switch (t->ph) {
    case P_READ:
        if (t->reads_left-- > 0) {
            uint64_t kind = tkv_rng_below(&d->rng, 4);
            if (kind == 0)
                do_scan(d, t->start_ts, tkv_rng_chance(&d->rng, 1, 2), true);
            else if (kind == 1)
                do_batch_get(d, t->start_ts);
            else
                do_get(d, (int)tkv_rng_below(&d->rng, NKEYS), t->start_ts);
            return;
        }
        if (tkv_rng_chance(&d->rng, 1, 10)) {
            /* Gives up before writing anything. */
            t->ph = P_DONE;
            d->aborted++;
            return;
        }
        t->ph = P_PREWRITE;
        return;
    case P_PREWRITE:
        prewrite(d, t);
        return;
    case P_COMMIT_PRIMARY:
        t->commit_ts = tso(d);
        if (!commit_key(d, t, 0)) {
            /* A reader rolled the primary back (it looked expired): abort. */
            rollback_all(d, t);
            return;
        }
        record_commit(d, t);
        t->next_secondary = 1;
        t->ph = P_COMMIT_SECONDARY;
        return;
    case P_COMMIT_SECONDARY:
        if (t->next_secondary >= t->nw) {
            t->ph = P_DONE;
            return;
        }
        /* Once the primary is committed, secondaries always commit (a reader may have done
         * it already: the retry is a success). */
        assert_true(commit_key(d, t, t->next_secondary));
        t->next_secondary++;
        return;
    case P_DONE:
        return;
    }
}

static void resolve_everything(driver *d)
{
    for (int round = 0; round < 10; round++) {
        Kvrpcpb__ScanLockRequest sl = KVRPCPB__SCAN_LOCK_REQUEST__INIT;
        sl.max_version = UINT64_MAX;
        Kvrpcpb__ScanLockResponse *r = fx_call(d->f, "KvScanLock", &sl.base);
        size_t n = r->n_locks;
        for (size_t i = 0; i < r->n_locks; i++)
            resolve(d, r->locks[i], tso(d));
        fx_free(r);
        if (n == 0)
            return;
        d->tso_ms += LONG_TTL; /* let even long TTLs run out */
    }
    fail_msg("locks left after resolving");
}

static uint64_t g_sp;

static uint64_t sp_cb(void *ud)
{
    (void)ud;
    return g_sp;
}

static size_t one_region(void *ud, stor_ctx *out, size_t cap)
{
    (void)ud;
    if (cap > 0)
        out[0] = (stor_ctx){.region_id = 1};
    return 1;
}

static void run_model(bool rocks, size_t n_txns)
{
    const char *env = getenv("TKV_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (tkv_clock_real_ms() ^ tkv_clock_mono_ns());
    printf("test_txn_model: TKV_SEED=%llu (%s)\n", (unsigned long long)seed,
           rocks ? "eng_rocks" : "eng_mem");
    driver *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->f = fx_open(rocks);
    d->tso_ms = 1000;
    tkv_rng_seed(&d->rng, seed);
    txn active[ACTIVE];
    size_t started = 0;
    for (int i = 0; i < ACTIVE; i++) {
        start_txn(d, &active[i]);
        started++;
    }
    while (true) {
        int i = (int)tkv_rng_below(&d->rng, ACTIVE);
        if (active[i].ph == P_DONE) {
            if (started < n_txns) {
                start_txn(d, &active[i]);
                started++;
            } else {
                bool all = true;
                for (int j = 0; j < ACTIVE; j++)
                    all &= active[j].ph == P_DONE;
                if (all)
                    break;
            }
            continue;
        }
        step(d, &active[i]);
    }
    resolve_everything(d);
    uint64_t end = tso(d);
    do_scan(d, end, false, false);
    do_scan(d, end, true, false);
    for (int k = 0; k < NKEYS; k++)
        do_get(d, k, end);
    /* GC at a safe point in the middle of history: reads at or above it are unchanged. */
    g_sp = txn_ts_compose(1000 + (d->tso_ms - 1000) / 2, 0);
    if (g_sp > end)
        g_sp = end;
    stor_gc_opts o = {.safe_point = sp_cb, .regions = one_region, .interval_ms = 3600000};
    stor_gc_worker *w;
    assert_int_equal(stor_gc_worker_new(d->f->s, &o, &w), 0);
    assert_int_equal(stor_gc_run_once(w, NULL), 0);
    assert_int_equal(stor_gc_worker_done_safe_point(w), g_sp);
    stor_gc_worker_free(w);
    for (uint64_t ts = g_sp; ts <= end; ts += txn_ts_compose(1 + (end - g_sp) / (20ULL << 18), 0)) {
        for (int k = 0; k < NKEYS; k++)
            do_get(d, k, ts);
        do_scan(d, ts, false, false);
    }
    printf("test_txn_model: %zu committed, %zu aborted, %zu crashed, %zu reads checked, %zu "
           "blocked, %zu locks resolved\n",
           d->committed, d->aborted, d->crashed, d->reads_checked, d->blocked, d->resolved);
    assert_true(d->committed > n_txns / 4);
    assert_true(d->crashed > 0);
    fx_close(d->f);
    free(d);
}

static void test_interleaved_transactions_match_snapshot_isolation_model_on_mem(void **state)
{
    (void)state;
    run_model(false, 400);
}

static void test_interleaved_transactions_match_snapshot_isolation_model_on_rocks(void **state)
{
    (void)state;
    run_model(true, 150);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interleaved_transactions_match_snapshot_isolation_model_on_mem),
        cmocka_unit_test(test_interleaved_transactions_match_snapshot_isolation_model_on_rocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
