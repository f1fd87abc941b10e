/*
 * point_getter.c: a point read at a timestamp that honours locks (TiKV's PointGetter).
 */
#include "storage/mvcc/mvcc_int.h"

/* Reads the value a committed-but-unresolved lock carries (the request said the lock's
 * transaction committed: committed_locks). */
static int read_from_lock(mvcc_reader *r, tkv_slice enc_key, const txn_lock *lock,
                          const mvcc_read_opts *o, tkv_buf *value, bool *found, mvcc_err *e)
{
    if (lock->type == TXN_LOCK_DELETE)
        return 0;
    *found = true;
    if (o->key_only) {
        tkv_buf_reset(value);
        return 0;
    }
    if (lock->has_short_value)
        return tkv_buf_set(value, lock->short_value.data, lock->short_value.len);
    txn_write w;
    txn_write_init(&w, TXN_WRITE_PUT, lock->start_ts);
    int rc = mvcc_load_data(r, enc_key, &w, value);
    if (rc == TKV_ENOTFOUND) {
        *found = false;
        return mvcc_err_set(e, MVCC_E_DEFAULT_NOT_FOUND, enc_key, tkv_slice_of(NULL, 0),
                            lock->start_ts, 0, 0);
    }
    return rc;
}

int mvcc_point_get(mvcc_reader *r, tkv_slice enc_key, uint64_t ts, const mvcc_read_opts *o,
                   tkv_buf *value, bool *found, mvcc_err *e)
{
    *found = false;
    int rc;
    if (o->iso != MVCC_ISO_RC) {
        txn_lock_holder h;
        txn_lock_holder_init(&h);
        bool has_lock;
        rc = mvcc_load_lock(r, enc_key, &h, &has_lock);
        bool blocks = false;
        if (rc == 0 && has_lock)
            rc = mvcc_check_lock_conflict(&h.lock, enc_key, ts, o, &blocks, e);
        if (rc == 0 && blocks && mvcc__ts_in(o->access_locks, o->n_access_locks, h.lock.start_ts)) {
            mvcc_err_reset(e);
            rc = read_from_lock(r, enc_key, &h.lock, o, value, found, e);
        } else if (rc == 0 && blocks) {
            rc = 1; /* blocked: e says why */
        }
        txn_lock_holder_deinit(&h);
        if (rc != 0 || *found || e->kind != MVCC_OK)
            return rc == 1 ? 0 : rc;
        /* A committed Delete lock read through: the key is absent. */
        if (blocks)
            return 0;
    }
    txn_write w;
    tkv_buf wbuf;
    tkv_buf_init(&wbuf);
    rc = mvcc__find_visible(r, enc_key, ts, &w, &wbuf, found);
    if (rc == 0 && *found) {
        if (o->key_only) {
            tkv_buf_reset(value);
        } else {
            rc = mvcc_load_data(r, enc_key, &w, value);
            if (rc == TKV_ENOTFOUND) {
                *found = false;
                rc = mvcc_err_set(e, MVCC_E_DEFAULT_NOT_FOUND, enc_key, tkv_slice_of(NULL, 0),
                                  w.start_ts, 0, 0);
            }
        }
    }
    tkv_buf_deinit(&wbuf);
    return rc;
}
