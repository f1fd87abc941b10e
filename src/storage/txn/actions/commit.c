/*
 * commit.c: the second phase of Percolator's two-phase commit for one key (TiKV's
 * actions/commit.rs).
 */
#include "storage/txn/actions/actions.h"

static const tkv_slice none = {NULL, 0};

int txn_commit(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key, uint64_t commit_ts, mvcc_err *e)
{
    uint64_t start_ts = mvcc_txn_start_ts(t);
    txn_lock_holder h;
    txn_lock_holder_init(&h);
    bool has_lock;
    int rc = mvcc_load_lock(r, enc_key, &h, &has_lock);
    if (rc == 0 && !(has_lock && h.lock.start_ts == start_ts)) {
        /* The lock is gone: a commit record means a retried commit (success); a rollback
         * record or nothing means the transaction was rolled back by someone else. */
        mvcc_commit_record c;
        mvcc_commit_record_init(&c);
        rc = mvcc_get_txn_commit_record(r, enc_key, start_ts, &c);
        bool committed = c.kind == MVCC_COMMIT_SINGLE && c.write.type != TXN_WRITE_ROLLBACK;
        mvcc_commit_record_deinit(&c);
        if (rc == 0 && !committed)
            rc = mvcc_err_set(e, MVCC_E_TXN_LOCK_NOT_FOUND, enc_key, none, start_ts, commit_ts, 0);
        txn_lock_holder_deinit(&h);
        return rc;
    }
    if (rc == 0 && commit_ts < h.lock.min_commit_ts) {
        rc = mvcc_err_set(e, MVCC_E_COMMIT_TS_EXPIRED, enc_key, none, start_ts, commit_ts,
                          h.lock.min_commit_ts);
    } else if (rc == 0) {
        /* A pessimistic lock left behind by a lost pessimistic rollback is committed as a
         * Lock record. */
        txn_write w;
        txn_write_init(&w, txn_write_type_of_lock(h.lock.type), start_ts);
        if (h.lock.type != TXN_LOCK_PESSIMISTIC && h.lock.has_short_value) {
            w.has_short_value = true;
            w.short_value = h.lock.short_value;
        }
        for (size_t i = 0; i < h.lock.n_rollback_ts; i++) {
            if (h.lock.rollback_ts[i] == commit_ts) {
                w.has_overlapped_rollback = true;
                break;
            }
        }
        rc = mvcc_txn_put_write(t, enc_key, commit_ts, &w);
        if (rc == 0)
            rc = mvcc_txn_unlock_key(t, enc_key, start_ts, txn_lock_is_pessimistic_txn(&h.lock));
    }
    txn_lock_holder_deinit(&h);
    return rc;
}
