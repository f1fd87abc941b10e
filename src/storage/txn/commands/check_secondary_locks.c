/*
 * check_secondary_locks.c: KvCheckSecondaryLocks (TiKV's
 * commands/check_secondary_locks.rs): for resolving async-commit transactions. Returns the
 * transaction's locks when all keys are still locked; stops at the first key found
 * committed (commit_ts) or rolled back (no locks). A missing lock, or a pessimistic lock
 * (which can never be committed), is rolled back with a protected record so the status
 * cannot change any more.
 */
#include "storage/txn/txn_int.h"

typedef enum { SEC_LOCKED, SEC_COMMITTED, SEC_ROLLED_BACK } sec_status;

static int check_one(txn_cmd *c, mvcc_reader *r, tkv_slice key, sec_status *status,
                     uint64_t *commit_ts, txn_lock_holder *h)
{
    uint64_t start_ts = mvcc_txn_start_ts(c->txn);
    bool found;
    int rc = mvcc_load_lock(r, key, h, &found);
    if (rc != 0)
        return rc;
    mvcc_commit_record rec;
    mvcc_commit_record_init(&rec);
    bool need_rollback = false;
    bool mismatch = found && h->lock.start_ts != start_ts;
    if (found && !mismatch) {
        if (h->lock.type != TXN_LOCK_PESSIMISTIC) {
            *status = SEC_LOCKED;
            mvcc_commit_record_deinit(&rec);
            return 0;
        }
        rc = mvcc_txn_unlock_key(c->txn, key, start_ts, true);
        if (rc == 0)
            rc = mvcc_get_txn_commit_record(r, key, start_ts, &rec);
        *status = SEC_ROLLED_BACK;
        need_rollback = true;
    } else {
        rc = mvcc_get_txn_commit_record(r, key, start_ts, &rec);
        if (rc == 0 && rec.kind == MVCC_COMMIT_SINGLE && rec.write.type != TXN_WRITE_ROLLBACK) {
            *status = SEC_COMMITTED;
            *commit_ts = rec.commit_ts;
        } else {
            *status = SEC_ROLLED_BACK;
            need_rollback = rc == 0 && rec.kind == MVCC_COMMIT_NONE;
        }
    }
    if (rc == 0 && need_rollback && rec.kind == MVCC_COMMIT_NONE) {
        /* Protected: a collapsed rollback could let a stale prewrite succeed again. */
        rc = txn_put_rollback(c->txn, key, true, &rec);
        if (rc == 0)
            rc = txn_collapse_prev_rollback(c->txn, r, key);
    }
    mvcc_commit_record_deinit(&rec);
    return rc;
}

static int process(txn_cmd *c, mvcc_reader *r)
{
    Kvrpcpb__CheckSecondaryLocksResponse *resp = (Kvrpcpb__CheckSecondaryLocksResponse *)c->resp;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    resp->locks = txn_arena_alloc(&c->arena, c->n_keys * sizeof(*resp->locks));
    if (resp->locks == NULL && c->n_keys > 0)
        return -ENOMEM;
    const Kvrpcpb__CheckSecondaryLocksRequest *req =
        (const Kvrpcpb__CheckSecondaryLocksRequest *)c->req;
    txn_lock_holder h;
    txn_lock_holder_init(&h);
    int rc = 0;
    for (size_t i = 0; i < c->n_keys && rc == 0; i++) {
        sec_status status;
        uint64_t commit_ts = 0;
        rc = check_one(c, r, c->keys[i], &status, &commit_ts, &h);
        if (rc != 0)
            break;
        if (status == SEC_LOCKED) {
            resp->locks[resp->n_locks] =
                txn__lock_info(c, &h.lock, tkv_slice_of(req->keys[i].data, req->keys[i].len));
            if (resp->locks[resp->n_locks++] == NULL)
                rc = -ENOMEM;
        } else if (status == SEC_COMMITTED) {
            resp->commit_ts = commit_ts;
            break;
        } else {
            resp->n_locks = 0;
            break;
        }
    }
    txn_lock_holder_deinit(&h);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvCheckSecondaryLocks",
    .resp_desc = &kvrpcpb__check_secondary_locks_response__descriptor,
    .write = true,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__CheckSecondaryLocksRequest *req =
        (const Kvrpcpb__CheckSecondaryLocksRequest *)c->req;
    return txn__set_keys(c, req->keys, req->n_keys);
}

int txn__kv_check_secondary_locks(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__CheckSecondaryLocksRequest *r = (const Kvrpcpb__CheckSecondaryLocksRequest *)req;
    return txn__submit(s, &def, req, r->context, r->start_version, setup, cb, ud);
}
