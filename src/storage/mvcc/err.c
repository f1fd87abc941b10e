/*
 * err.c: Percolator outcomes and the read-side lock check (see mvcc.h).
 */
#include "storage/mvcc/mvcc_int.h"

void mvcc_err_init(mvcc_err *e)
{
    memset(e, 0, sizeof(*e));
    tkv_buf_init(&e->key);
    tkv_buf_init(&e->primary);
    txn_lock_holder_init(&e->lock);
}

void mvcc_err_deinit(mvcc_err *e)
{
    tkv_buf_deinit(&e->key);
    tkv_buf_deinit(&e->primary);
    txn_lock_holder_deinit(&e->lock);
    e->kind = MVCC_OK;
}

void mvcc_err_reset(mvcc_err *e)
{
    tkv_buf key = e->key, primary = e->primary;
    txn_lock_holder lock = e->lock;
    txn_lock_deinit(&lock.lock);
    tkv_buf_reset(&key);
    tkv_buf_reset(&primary);
    tkv_buf_reset(&lock.raw);
    memset(e, 0, sizeof(*e));
    e->key = key;
    e->primary = primary;
    e->lock = lock;
}

void mvcc_err_move(mvcc_err *dst, mvcc_err *src)
{
    mvcc_err_deinit(dst);
    *dst = *src;
    mvcc_err_init(src);
}

static int set_key(mvcc_err *e, tkv_slice enc_key)
{
    if (enc_key.len == 0) {
        tkv_buf_reset(&e->key);
        return 0;
    }
    return txn_key_decode(enc_key, &e->key);
}

int mvcc_err_set_locked(mvcc_err *e, const txn_lock *lock, tkv_slice enc_key)
{
    mvcc_err_reset(e);
    tkv_buf enc;
    tkv_buf_init(&enc);
    int rc = txn_lock_encode(lock, &enc);
    if (rc == 0)
        rc = txn_lock_holder_set(&e->lock, tkv_buf_slice(&enc));
    tkv_buf_deinit(&enc);
    if (rc == 0)
        rc = set_key(e, enc_key);
    if (rc == 0)
        rc = tkv_buf_set(&e->primary, lock->primary.data, lock->primary.len);
    if (rc != 0)
        return rc;
    e->kind = MVCC_E_KEY_IS_LOCKED;
    e->lock_ts = lock->start_ts;
    return 0;
}

int mvcc_err_set(mvcc_err *e, mvcc_err_kind kind, tkv_slice enc_key, tkv_slice primary,
                 uint64_t start_ts, uint64_t ts2, uint64_t ts3)
{
    mvcc_err_reset(e);
    int rc = set_key(e, enc_key);
    if (rc == 0 && primary.len)
        rc = tkv_buf_set(&e->primary, primary.data, primary.len);
    if (rc != 0)
        return rc;
    e->kind = kind;
    e->start_ts = start_ts;
    switch (kind) {
    case MVCC_E_TXN_LOCK_NOT_FOUND:
    case MVCC_E_COMMITTED:
    case MVCC_E_INVALID_TXN_TSO:
        e->commit_ts = ts2;
        break;
    case MVCC_E_COMMIT_TS_EXPIRED:
        e->commit_ts = ts2;
        e->min_commit_ts = ts3;
        break;
    case MVCC_E_DEADLOCK:
        e->lock_ts = ts2;
        e->deadlock_key_hash = ts3;
        break;
    case MVCC_E_ASSERTION_FAILED:
        e->existing_start_ts = ts2;
        e->existing_commit_ts = ts3;
        break;
    default:
        break;
    }
    return 0;
}

int mvcc_err_set_conflict(mvcc_err *e, tkv_slice enc_key, tkv_slice primary, uint64_t start_ts,
                          uint64_t conflict_start_ts, uint64_t conflict_commit_ts, int reason)
{
    int rc = mvcc_err_set(e, MVCC_E_WRITE_CONFLICT, enc_key, primary, start_ts, 0, 0);
    if (rc != 0)
        return rc;
    e->conflict_start_ts = conflict_start_ts;
    e->conflict_commit_ts = conflict_commit_ts;
    e->reason = reason;
    return 0;
}

bool mvcc__ts_in(const uint64_t *set, size_t n, uint64_t ts)
{
    for (size_t i = 0; i < n; i++) {
        if (set[i] == ts)
            return true;
    }
    return false;
}

int mvcc_check_lock_conflict(const txn_lock *lock, tkv_slice enc_key, uint64_t ts,
                             const mvcc_read_opts *o, bool *blocks, mvcc_err *e)
{
    *blocks = false;
    if (o->iso == MVCC_ISO_RC)
        return 0;
    /* Lock and Pessimistic locks never hide a value: they are not writes. */
    if (lock->type == TXN_LOCK_LOCK || lock->type == TXN_LOCK_PESSIMISTIC)
        return 0;
    if (mvcc__ts_in(o->bypass_locks, o->n_bypass_locks, lock->start_ts))
        return 0;
    if (o->iso == MVCC_ISO_RC_CHECK_TS) {
        *blocks = true;
        return mvcc_err_set_conflict(e, enc_key, lock->primary, ts, lock->start_ts, 0,
                                     MVCC_CONFLICT_RC_CHECK_TS);
    }
    /* SI: a lock from the future cannot hide a version we may read, and neither can a lock
     * whose transaction promised to commit after ts. */
    if (lock->start_ts > ts || lock->min_commit_ts > ts)
        return 0;
    /* Reading the latest version (ts = max) of a primary key ignores its own lock: that is
     * how an autocommit point get avoids waiting for the transaction it would block. */
    if (ts == TXN_TS_MAX && !lock->use_async_commit) {
        tkv_buf raw;
        tkv_buf_init(&raw);
        int rc = txn_key_decode(enc_key, &raw);
        bool is_primary = rc == 0 && tkv_slice_eq(tkv_buf_slice(&raw), lock->primary);
        tkv_buf_deinit(&raw);
        if (rc != 0)
            return rc;
        if (is_primary)
            return 0;
    }
    *blocks = true;
    return mvcc_err_set_locked(e, lock, enc_key);
}
