/*
 * cleanup.c: rolling a transaction back on one key (TiKV's actions/cleanup.rs and the
 * rollback helpers of check_txn_status.rs).
 *
 * A rollback leaves a Rollback record at key + start_ts in the write CF, so a prewrite of
 * the same transaction that arrives late is refused. Records of the primary key of a
 * pessimistic transaction are protected: a later rollback never collapses them. When
 * another transaction already committed at exactly our start_ts, its record stays and, for
 * a protected rollback, gets the overlapped-rollback flag and a GC fence instead.
 */
#include "storage/txn/actions/actions.h"

static const tkv_slice none = {NULL, 0};

int txn_collapse_prev_rollback(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key)
{
    txn_write w;
    tkv_buf wbuf;
    tkv_buf_init(&wbuf);
    uint64_t commit_ts;
    bool found;
    int rc = mvcc_seek_write(r, enc_key, mvcc_txn_start_ts(t), &commit_ts, &w, &wbuf, &found);
    if (rc == 0 && found && w.type == TXN_WRITE_ROLLBACK && !txn_write_is_protected(&w))
        rc = mvcc_txn_delete_write(t, enc_key, commit_ts);
    tkv_buf_deinit(&wbuf);
    return rc;
}

int txn_put_rollback(mvcc_txn *t, tkv_slice enc_key, bool protected_rollback,
                     const mvcc_commit_record *c)
{
    uint64_t start_ts = mvcc_txn_start_ts(t);
    if (c != NULL && c->has_overlapped) {
        /* Another txn committed at our start_ts; an unprotected rollback may simply be
         * lost, a protected one marks that record. */
        if (!protected_rollback)
            return 0;
        txn_write w = c->overlapped;
        w.has_overlapped_rollback = true;
        w.has_gc_fence = true;
        w.gc_fence = c->overlapped_gc_fence;
        return mvcc_txn_put_write(t, enc_key, start_ts, &w);
    }
    txn_write w;
    txn_write_init_rollback(&w, start_ts, protected_rollback);
    return mvcc_txn_put_write(t, enc_key, start_ts, &w);
}

int txn_rollback_lock(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key, const txn_lock *lock,
                      bool is_pessimistic_txn, bool collapse_rollback)
{
    uint64_t start_ts = mvcc_txn_start_ts(t);
    mvcc_commit_record c;
    mvcc_commit_record_init(&c);
    int rc = mvcc_get_txn_commit_record(r, enc_key, start_ts, &c);
    if (rc == 0 && c.kind != MVCC_COMMIT_NONE) {
        /* Already rolled back (a commit record beside our own lock cannot happen): only
         * the lock goes. */
        rc = mvcc_txn_unlock_key(t, enc_key, start_ts, is_pessimistic_txn);
        mvcc_commit_record_deinit(&c);
        return rc;
    }
    /* A long value of a Put lock lives in the default CF. */
    if (rc == 0 && lock->type == TXN_LOCK_PUT && !lock->has_short_value)
        rc = mvcc_txn_delete_value(t, enc_key, start_ts);
    if (rc == 0) {
        /* Only the primary of a pessimistic transaction needs protection. */
        bool protect = false;
        if (is_pessimistic_txn) {
            tkv_buf raw;
            tkv_buf_init(&raw);
            rc = txn_key_decode(enc_key, &raw);
            protect = rc == 0 && tkv_slice_eq(tkv_buf_slice(&raw), lock->primary);
            tkv_buf_deinit(&raw);
        }
        if (rc == 0)
            rc = txn_put_rollback(t, enc_key, protect, &c);
    }
    if (rc == 0 && collapse_rollback)
        rc = txn_collapse_prev_rollback(t, r, enc_key);
    if (rc == 0)
        rc = mvcc_txn_unlock_key(t, enc_key, start_ts, is_pessimistic_txn);
    mvcc_commit_record_deinit(&c);
    return rc;
}

int txn_cleanup(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key, uint64_t current_ts,
                bool protect_rollback, mvcc_err *e)
{
    uint64_t start_ts = mvcc_txn_start_ts(t);
    txn_lock_holder h;
    txn_lock_holder_init(&h);
    bool has_lock;
    int rc = mvcc_load_lock(r, enc_key, &h, &has_lock);
    if (rc == 0 && has_lock && h.lock.start_ts == start_ts) {
        /* With a current_ts, a lock whose TTL has not run out is left alone (TiKV: expired
         * iff physical(lock_ts) + ttl < physical(current_ts)). */
        if (current_ts != 0 &&
            txn_ts_physical(h.lock.start_ts) + h.lock.ttl >= txn_ts_physical(current_ts)) {
            rc = mvcc_err_set_locked(e, &h.lock, enc_key);
        } else {
            rc = txn_rollback_lock(t, r, enc_key, &h.lock, txn_lock_is_pessimistic_txn(&h.lock),
                                   !protect_rollback);
        }
        txn_lock_holder_deinit(&h);
        return rc;
    }
    if (rc == 0) {
        txn_status st;
        txn_status_init(&st);
        rc = txn_check_txn_status_missing_lock(t, r, enc_key, has_lock ? &h.lock : NULL,
                                               protect_rollback ? TXN_MISSING_PROTECTED_ROLLBACK
                                                                : TXN_MISSING_ROLLBACK,
                                               false, &st, e);
        if (rc == 0 && e->kind == MVCC_OK && st.kind == TXN_STATUS_COMMITTED)
            rc = mvcc_err_set(e, MVCC_E_COMMITTED, enc_key, none, start_ts, st.commit_ts, 0);
        txn_status_deinit(&st);
    }
    txn_lock_holder_deinit(&h);
    return rc;
}
