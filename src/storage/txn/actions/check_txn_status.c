/*
 * check_txn_status.c: deciding the fate of a transaction through its primary lock (TiKV's
 * actions/check_txn_status.rs).
 */
#include "storage/txn/actions/actions.h"

void txn_status_init(txn_status *s)
{
    memset(s, 0, sizeof(*s));
    txn_lock_holder_init(&s->lock);
}

void txn_status_deinit(txn_status *s)
{
    txn_lock_holder_deinit(&s->lock);
}

/* Pushes another transaction's async-commit lock past our rollback (TiKV marks the lock so
 * its calculated commit_ts cannot overwrite the rollback record). Only async-commit locks
 * need it, and only for protected rollbacks. */
static int mark_rollback_on_mismatching_lock(mvcc_txn *t, tkv_slice enc_key, const txn_lock *l,
                                             bool is_protected)
{
    uint64_t start_ts = mvcc_txn_start_ts(t);
    if (!is_protected || start_ts < l->min_commit_ts || !l->use_async_commit)
        return 0;
    txn_lock copy = *l;
    uint64_t *ts = tkv_malloc((l->n_rollback_ts + 1) * sizeof(uint64_t));
    if (ts == NULL)
        return -ENOMEM;
    if (l->n_rollback_ts)
        memcpy(ts, l->rollback_ts, l->n_rollback_ts * sizeof(uint64_t));
    ts[l->n_rollback_ts] = start_ts;
    copy.rollback_ts = ts;
    copy.n_rollback_ts = l->n_rollback_ts + 1;
    int rc = mvcc_txn_put_lock(t, enc_key, &copy);
    tkv_free(ts);
    return rc;
}

int txn_check_txn_status_missing_lock(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key,
                                      const txn_lock *mismatch, txn_missing_lock_action action,
                                      bool resolving_pessimistic_lock, txn_status *st, mvcc_err *e)
{
    uint64_t start_ts = mvcc_txn_start_ts(t);
    mvcc_commit_record c;
    mvcc_commit_record_init(&c);
    int rc = mvcc_get_txn_commit_record(r, enc_key, start_ts, &c);
    if (rc != 0)
        goto out;
    if (c.kind == MVCC_COMMIT_SINGLE) {
        if (c.write.type == TXN_WRITE_ROLLBACK) {
            st->kind = TXN_STATUS_ROLLED_BACK;
        } else {
            st->kind = TXN_STATUS_COMMITTED;
            st->commit_ts = c.commit_ts;
        }
        goto out;
    }
    if (c.kind == MVCC_COMMIT_OVERLAPPED_ROLLBACK) {
        st->kind = TXN_STATUS_ROLLED_BACK;
        goto out;
    }
    if (action == TXN_MISSING_RETURN_ERROR) {
        tkv_buf raw;
        tkv_buf_init(&raw);
        rc = txn_key_decode(enc_key, &raw);
        if (rc == 0)
            rc =
                mvcc_err_set(e, MVCC_E_TXN_NOT_FOUND, enc_key, tkv_buf_slice(&raw), start_ts, 0, 0);
        tkv_buf_deinit(&raw);
        goto out;
    }
    if (resolving_pessimistic_lock) {
        st->kind = TXN_STATUS_LOCK_NOT_EXIST_DO_NOTHING;
        goto out;
    }
    bool protect = action == TXN_MISSING_PROTECTED_ROLLBACK;
    if (!protect)
        rc = txn_collapse_prev_rollback(t, r, enc_key);
    if (rc == 0 && mismatch != NULL && !c.has_overlapped)
        rc = mark_rollback_on_mismatching_lock(t, enc_key, mismatch, protect);
    /* The rollback record stops a prewrite of this transaction that is still on its way. */
    if (rc == 0)
        rc = txn_put_rollback(t, enc_key, protect, &c);
    st->kind = TXN_STATUS_LOCK_NOT_EXIST;
out:
    mvcc_commit_record_deinit(&c);
    return rc;
}

static int lock_exists(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key, txn_lock *lock,
                       uint64_t caller_start_ts, uint64_t current_ts, bool force_sync_commit,
                       bool resolving_pessimistic_lock, txn_status *st)
{
    uint64_t start_ts = mvcc_txn_start_ts(t);
    /* Async-commit locks are never rolled back or pushed here (ResolveLock does that). */
    bool async = lock->use_async_commit && !force_sync_commit;
    bool pessimistic_txn = txn_lock_is_pessimistic_txn(lock);
    if (!async && txn_ts_physical(lock->start_ts) + lock->ttl < txn_ts_physical(current_ts)) {
        if (resolving_pessimistic_lock && lock->type == TXN_LOCK_PESSIMISTIC) {
            st->kind = TXN_STATUS_PESSIMISTIC_ROLLBACK;
            return mvcc_txn_unlock_key(t, enc_key, start_ts, pessimistic_txn);
        }
        st->kind = TXN_STATUS_TTL_EXPIRE;
        return txn_rollback_lock(t, r, enc_key, lock, pessimistic_txn, true);
    }
    /* Push min_commit_ts past the reader so the lock stops blocking it (large transactions
     * set min_commit_ts; 0 means an old client that cannot be pushed). Pessimistic locks are
     * not pushed: their prewrite recomputes min_commit_ts. */
    if (!async && lock->min_commit_ts != 0 && caller_start_ts != TXN_TS_MAX &&
        caller_start_ts >= lock->min_commit_ts && lock->type != TXN_LOCK_PESSIMISTIC) {
        lock->min_commit_ts = TKV_MAX(caller_start_ts + 1, current_ts);
        int rc = mvcc_txn_put_lock(t, enc_key, lock);
        if (rc != 0)
            return rc;
    }
    st->kind = TXN_STATUS_UNCOMMITTED;
    /* Readers may skip the transaction's locks once min_commit_ts is past them; a point get
     * at ts max skips them anyway (TiKV). Async-commit locks are reported as they are. */
    st->min_commit_ts_pushed =
        !async && ((caller_start_ts != 0 && lock->min_commit_ts > caller_start_ts) ||
                   caller_start_ts == TXN_TS_MAX);
    tkv_buf enc;
    tkv_buf_init(&enc);
    int rc = txn_lock_encode(lock, &enc);
    if (rc == 0)
        rc = txn_lock_holder_set(&st->lock, tkv_buf_slice(&enc));
    tkv_buf_deinit(&enc);
    return rc;
}

int txn_check_txn_status(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key, uint64_t caller_start_ts,
                         uint64_t current_ts, txn_missing_lock_action missing,
                         bool force_sync_commit, bool resolving_pessimistic_lock, txn_status *st,
                         mvcc_err *e)
{
    txn_lock_holder h;
    txn_lock_holder_init(&h);
    bool has_lock;
    int rc = mvcc_load_lock(r, enc_key, &h, &has_lock);
    if (rc == 0 && has_lock && h.lock.start_ts == mvcc_txn_start_ts(t))
        rc = lock_exists(t, r, enc_key, &h.lock, caller_start_ts, current_ts, force_sync_commit,
                         resolving_pessimistic_lock, st);
    else if (rc == 0)
        rc = txn_check_txn_status_missing_lock(t, r, enc_key, has_lock ? &h.lock : NULL, missing,
                                               resolving_pessimistic_lock, st, e);
    txn_lock_holder_deinit(&h);
    return rc;
}
