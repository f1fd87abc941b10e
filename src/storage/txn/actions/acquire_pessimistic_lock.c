/*
 * acquire_pessimistic_lock.c: locking a key before the transaction writes it (TiKV's
 * actions/acquire_pessimistic_lock.rs, normal wake-up mode).
 *
 * Pessimistic transactions read at for_update_ts: a commit newer than for_update_ts means
 * the statement read stale data and must retry (WriteConflict, PessimisticRetry).
 */
#include <stdio.h>

#include "storage/txn/actions/actions.h"

static const tkv_slice none = {NULL, 0};

/* The value (or existence) of the key as the lock request returns it: the newest committed
 * version. @w/@commit_ts is the newest write record, already loaded. */
static int read_value(mvcc_reader *r, tkv_slice enc_key, const txn_pessimistic_props *p,
                      const txn_write *w, uint64_t commit_ts, uint64_t start_ts, tkv_buf *value,
                      bool *found)
{
    *found = false;
    if (w->type == TXN_WRITE_DELETE)
        return 0;
    if (w->type == TXN_WRITE_PUT && txn_write_check_gc_fence(w, start_ts)) {
        *found = true;
        if (!p->need_value) {
            tkv_buf_reset(value);
            return 0;
        }
        return mvcc_load_data(r, enc_key, w, value);
    }
    if (commit_ts == 0)
        return 0;
    if (p->need_value)
        return mvcc_get(r, enc_key, commit_ts - 1, value, found);
    return mvcc_exists(r, enc_key, commit_ts - 1, found);
}

static int put_pessimistic_lock(mvcc_txn *t, tkv_slice enc_key, const txn_pessimistic_props *p)
{
    txn_lock lock;
    txn_lock_init(&lock, TXN_LOCK_PESSIMISTIC, p->primary, mvcc_txn_start_ts(t), p->lock_ttl);
    lock.for_update_ts = p->for_update_ts;
    lock.min_commit_ts = p->min_commit_ts;
    return mvcc_txn_put_lock(t, enc_key, &lock);
}

int txn_acquire_pessimistic_lock(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key,
                                 const txn_pessimistic_props *p, bool should_not_exist,
                                 tkv_buf *value, bool *found, mvcc_err *e)
{
    uint64_t start_ts = mvcc_txn_start_ts(t);
    bool want = p->need_value || p->need_check_existence;
    *found = false;
    if (p->lock_only_if_exists && !p->need_value) {
        int rc = mvcc_err_set(e, MVCC_E_OTHER, enc_key, none, start_ts, 0, 0);
        snprintf(e->msg, sizeof(e->msg), "lock_only_if_exists is set without return_values");
        return rc;
    }
    txn_lock_holder h;
    txn_lock_holder_init(&h);
    bool has_lock;
    int rc = mvcc_load_lock(r, enc_key, &h, &has_lock);
    if (rc == 0 && has_lock) {
        if (h.lock.start_ts != start_ts) {
            rc = mvcc_err_set_locked(e, &h.lock, enc_key);
        } else if (h.lock.type != TXN_LOCK_PESSIMISTIC) {
            rc = mvcc_err_set(e, MVCC_E_LOCK_TYPE_NOT_MATCH, enc_key, none, start_ts, 0, 0);
        } else {
            /* Already ours (a retried request): read again, and move for_update_ts up. */
            if (p->need_value)
                rc = mvcc_get(r, enc_key, p->for_update_ts, value, found);
            else if (p->need_check_existence)
                rc = mvcc_exists(r, enc_key, p->for_update_ts, found);
            if (rc == 0 && p->for_update_ts > h.lock.for_update_ts)
                rc = put_pessimistic_lock(t, enc_key, p);
        }
        txn_lock_holder_deinit(&h);
        return rc;
    }
    txn_lock_holder_deinit(&h);
    if (rc != 0)
        return rc;

    txn_write w;
    tkv_buf wbuf;
    tkv_buf_init(&wbuf);
    uint64_t commit_ts;
    bool has_write;
    rc = mvcc_seek_write(r, enc_key, TXN_TS_MAX, &commit_ts, &w, &wbuf, &has_write);
    if (rc == 0 && has_write) {
        if (commit_ts > p->for_update_ts) {
            rc = mvcc_err_set_conflict(e, enc_key, p->primary, start_ts, w.start_ts, commit_ts,
                                       MVCC_CONFLICT_PESSIMISTIC_RETRY);
            goto out;
        }
        bool rolled_back =
            commit_ts == start_ts && (w.type == TXN_WRITE_ROLLBACK || w.has_overlapped_rollback);
        if (!rolled_back && commit_ts > start_ts) {
            /* Our rollback may hide below newer records. */
            txn_write older;
            tkv_buf obuf;
            tkv_buf_init(&obuf);
            uint64_t older_ts;
            bool got;
            rc = mvcc_seek_write(r, enc_key, start_ts, &older_ts, &older, &obuf, &got);
            rolled_back = rc == 0 && got && older_ts == start_ts &&
                          (older.type == TXN_WRITE_ROLLBACK || older.has_overlapped_rollback);
            tkv_buf_deinit(&obuf);
            if (rc != 0)
                goto out;
        }
        if (rolled_back) {
            rc =
                mvcc_err_set(e, MVCC_E_PESSIMISTIC_LOCK_ROLLED_BACK, enc_key, none, start_ts, 0, 0);
            goto out;
        }
        if (should_not_exist && w.type != TXN_WRITE_DELETE) {
            bool exists = w.type == TXN_WRITE_PUT;
            if (!exists && commit_ts > 0)
                rc = mvcc_exists(r, enc_key, commit_ts - 1, &exists);
            if (rc == 0 && exists)
                rc = mvcc_err_set(e, MVCC_E_ALREADY_EXIST, enc_key, none, 0, 0, 0);
            if (rc != 0 || e->kind != MVCC_OK)
                goto out;
        }
        if (want)
            rc = read_value(r, enc_key, p, &w, commit_ts, start_ts, value, found);
    }
    if (rc == 0 && (!p->lock_only_if_exists || *found))
        rc = put_pessimistic_lock(t, enc_key, p);
out:
    tkv_buf_deinit(&wbuf);
    return rc;
}

int txn_pessimistic_rollback(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key, uint64_t for_update_ts)
{
    txn_lock_holder h;
    txn_lock_holder_init(&h);
    bool has_lock;
    int rc = mvcc_load_lock(r, enc_key, &h, &has_lock);
    if (rc == 0 && has_lock && h.lock.type == TXN_LOCK_PESSIMISTIC &&
        h.lock.start_ts == mvcc_txn_start_ts(t) && h.lock.for_update_ts <= for_update_ts)
        rc = mvcc_txn_unlock_key(t, enc_key, h.lock.start_ts, true);
    txn_lock_holder_deinit(&h);
    return rc;
}
