/*
 * tc_2pc.c: Percolator two-phase commit of a transaction's buffered writes (client-go's
 * twoPhaseCommitter without async commit), with one-phase commit when it fits:
 *
 *   1. Prewrite every mutation, grouped per region (all groups in parallel); the smallest
 *      key is the primary. A key locked by another transaction is resolved (tc_lock.c) and
 *      its prewrite retried; a write conflict (someone committed the key after our start)
 *      ends the transaction: every prewritten key is rolled back, TIKVC_ECONFLICT.
 *   2. Take the commit timestamp from PD.
 *   3. Commit the primary alone. This is the commit point: once it succeeds the transaction
 *      is committed. If it fails with a key error (our locks were rolled back by a resolver,
 *      after our TTL ran out) the transaction is aborted; if its answer never came the
 *      outcome is unknown (TIKVC_EUNDETERMINED).
 *   4. Commit the secondaries (failures are logged only: readers finish the job through the
 *      primary's commit record).
 * 1PC (tikvc_opts.txn_one_pc, on by default): when every mutation goes in one prewrite
 * request (one region, within one request's size), that request asks for 1PC; a store that
 * commits it answers one_pc_commit_ts, the transaction's commit_ts, and steps 2-4 are
 * skipped. An answer of 0 means the store fell back to 2PC (locks written): go on with step
 * 2. A 1PC prewrite that fails without a store's verdict (timeouts, region errors past the
 * backoff) may have committed: TIKVC_EUNDETERMINED.
 */
#include <inttypes.h>
#include <stdio.h>

#include "base/log.h"
#include "client/tc_int.h"
#include "client/tc_txn.h"

/* Sets up a key-set op over the mutations @idx[0..n) of @t. */
static int mut_op(tikvc_txn *t, const tc_kop_cmd *kc, const size_t *idx, size_t n, tc_kop **out)
{
    int rc = tikvc__kop_new(t->c, kc, &t->c->txn_cache, n, out);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        tc_mut *m = &t->muts[idx[i]];
        rc = tikvc__kop_set(*out, i, tkv_buf_slice(&m->key), tkv_buf_slice(&m->value), false);
        (*out)->items[i].op = m->del ? KVRPCPB__OP__Del : KVRPCPB__OP__Put;
    }
    if (rc == 0) {
        (*out)->start_ts = t->start_ts;
        (*out)->primary = tkv_buf_slice(&t->muts[0].key);
        (*out)->lock_ttl_ms = (uint64_t)t->c->opts.txn_lock_ttl_ms;
        (*out)->txn_size = t->n_muts;
    }
    return rc;
}

/* Rolls back every mutation (best effort: a failure leaves locks that readers resolve). */
static void rollback_all(tikvc_txn *t, size_t *idx)
{
    tc_kop *k = NULL;
    char keep[TKV_ERRMSG_LEN];
    snprintf(keep, sizeof(keep), "%s", tikvc_errmsg());
    int rc = mut_op(t, &tc_kc_kv_rollback, idx, t->n_muts, &k);
    if (rc == 0)
        rc = tikvc__kop_run(k);
    if (rc != 0)
        TKV_LOG_WARN("transaction rollback failed; readers will resolve its locks",
                     TKV_LF_U64("start_ts", t->start_ts), TKV_LF_STR("cause", tikvc_errmsg()));
    tikvc__kop_free(k);
    tikvc__set_errmsg("%s", keep);
}

/* Prewrites all mutations, resolving other transactions' locks in the way. A store that
 * finds a key of a request locked writes none of the request's keys (TiKV skips the write
 * stage), so after resolving, every key is prewritten again, as client-go retries the whole
 * batch (keys already prewritten answer success: a prewrite over one's own lock is
 * idempotent). */
static int prewrite(tikvc_txn *t, size_t *idx, bool *tried_1pc, uint64_t *one_pc_commit_ts)
{
    *tried_1pc = false;
    *one_pc_commit_ts = 0;
    tc_backoff bo;
    tikvc__bo_init(&bo, t->c);
    size_t n = t->n_muts;
    int rc = 0;
    for (bool again = true; again;) {
        again = false;
        tc_kop *k = NULL;
        rc = mut_op(t, &tc_kc_kv_prewrite, idx, n, &k);
        if (rc == 0) {
            k->try_one_pc = t->c->opts.txn_one_pc != 0;
            *tried_1pc |= k->try_one_pc;
            rc = tikvc__kop_run(k);
        }
        if (rc == 0)
            *one_pc_commit_ts = k->one_pc_commit_ts;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            Kvrpcpb__KeyError *e = k->items[i].err;
            if (e == NULL)
                continue;
            if (e->locked == NULL) {
                rc = tikvc__key_error(e, "prewrite");
                break;
            }
            again = true;
            if (e->locked->lock_version == t->start_ts)
                continue; /* our own lock from an earlier attempt */
            uint64_t ttl_left;
            bool bypass;
            rc = tikvc__resolve_lock(t->c, &bo, &t->known, e->locked, t->start_ts, &ttl_left,
                                     &bypass);
            if (rc == 0 && ttl_left > 0)
                rc = tikvc__bo_sleep(t->c, &bo, TC_BO_TXN_LOCK,
                                     "prewrite waits for a live transaction's lock");
        }
        tikvc__kop_free(k);
        if (rc != 0)
            break;
    }
    return rc;
}

/* Returns whether prewrite failure @rc is a store's answer (nothing committed) rather than
 * a missing one. */
static bool verdict(int rc)
{
    return rc == TIKVC_ECONFLICT || rc == TIKVC_EABORTED || rc == TIKVC_ELOCKED ||
           rc == TIKVC_ESERVER || rc == TIKVC_ETOOLARGE || rc == TIKVC_EINVAL;
}

int tikvc__txn_commit(tikvc_txn *t)
{
    if (t->n_muts == 0) {
        t->commit_ts = t->start_ts;
        t->state = TXN_COMMITTED;
        return 0;
    }
    size_t *idx = tkv_calloc(t->n_muts, sizeof(*idx));
    if (idx == NULL)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    for (size_t i = 0; i < t->n_muts; i++)
        idx[i] = i;

    bool tried_1pc;
    uint64_t one_pc_commit_ts;
    int rc = prewrite(t, idx, &tried_1pc, &one_pc_commit_ts);
    if (rc != 0) {
        rollback_all(t, idx);
        t->state = TXN_FAILED;
        tkv_free(idx);
        if (tried_1pc && !verdict(rc))
            return tikvc__fail(TIKVC_EUNDETERMINED,
                               "one-phase commit got no answer; the transaction may or may not "
                               "be committed (%s)",
                               tikvc_errmsg());
        return rc;
    }
    if (one_pc_commit_ts != 0) {
        t->commit_ts = one_pc_commit_ts;
        t->state = TXN_COMMITTED;
        tkv_free(idx);
        return 0;
    }
    if (pdc_tso(t->c->pd, 0, &t->commit_ts) != 0) {
        rc = tikvc__fail(TIKVC_EUNAVAILABLE, "commit: no timestamp from PD: %s", pdc_errmsg(NULL));
        rollback_all(t, idx);
        t->state = TXN_FAILED;
        tkv_free(idx);
        return rc;
    }

    /* The primary first: its commit decides the transaction. */
    tc_kop *k = NULL;
    rc = mut_op(t, &tc_kc_kv_commit, idx, 1, &k);
    if (rc == 0) {
        k->commit_ts = t->commit_ts;
        rc = tikvc__kop_run(k);
    }
    tikvc__kop_free(k);
    if (rc != 0) {
        t->state = TXN_FAILED;
        tkv_free(idx);
        if (rc == TIKVC_EABORTED || rc == TIKVC_ECONFLICT)
            return rc;
        if (rc == TIKVC_ENOMEM || rc == TIKVC_ECLOSED)
            return rc;
        return tikvc__fail(TIKVC_EUNDETERMINED,
                           "commit of the primary key got no answer; the transaction may or "
                           "may not be committed (%s)",
                           tikvc_errmsg());
    }
    t->state = TXN_COMMITTED;

    if (t->n_muts > 1) {
        rc = mut_op(t, &tc_kc_kv_commit, idx + 1, t->n_muts - 1, &k);
        if (rc == 0) {
            k->commit_ts = t->commit_ts;
            rc = tikvc__kop_run(k);
        }
        if (rc != 0)
            TKV_LOG_WARN("committing secondary keys failed; readers will resolve their locks",
                         TKV_LF_U64("start_ts", t->start_ts), TKV_LF_STR("cause", tikvc_errmsg()));
        tikvc__kop_free(k);
    }
    tkv_free(idx);
    return 0;
}
