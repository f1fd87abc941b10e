/*
 * check_txn_status.c: KvCheckTxnStatus (TiKV's commands/check_txn_status.rs): the status of
 * a transaction through its primary key, rolling back an expired lock and pushing
 * min_commit_ts for readers. lock_ttl > 0 means alive, commit_version > 0 committed, both 0
 * rolled back; action says what this call did.
 */
#include "storage/txn/txn_int.h"

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__CheckTxnStatusRequest *req = (const Kvrpcpb__CheckTxnStatusRequest *)c->req;
    Kvrpcpb__CheckTxnStatusResponse *resp = (Kvrpcpb__CheckTxnStatusResponse *)c->resp;
    mvcc_err e;
    mvcc_err_init(&e);
    txn_status st;
    txn_status_init(&st);
    txn_missing_lock_action missing =
        req->rollback_if_not_exist ? TXN_MISSING_PROTECTED_ROLLBACK : TXN_MISSING_RETURN_ERROR;
    int rc =
        txn_check_txn_status(c->txn, r, c->keys[0], req->caller_start_ts, req->current_ts, missing,
                             req->force_sync_commit, req->resolving_pessimistic_lock, &st, &e);
    if (rc == 0 && e.kind != MVCC_OK) {
        rc = txn__refuse(c, &resp->error, &e);
    } else if (rc == 0) {
        switch (st.kind) {
        case TXN_STATUS_ROLLED_BACK:
            resp->action = KVRPCPB__ACTION__NoAction;
            break;
        case TXN_STATUS_TTL_EXPIRE:
            resp->action = KVRPCPB__ACTION__TTLExpireRollback;
            break;
        case TXN_STATUS_LOCK_NOT_EXIST:
            resp->action = KVRPCPB__ACTION__LockNotExistRollback;
            break;
        case TXN_STATUS_COMMITTED:
            resp->commit_version = st.commit_ts;
            resp->action = KVRPCPB__ACTION__NoAction;
            break;
        case TXN_STATUS_PESSIMISTIC_ROLLBACK:
            resp->action = KVRPCPB__ACTION__TTLExpirePessimisticRollback;
            break;
        case TXN_STATUS_LOCK_NOT_EXIST_DO_NOTHING:
            resp->action = KVRPCPB__ACTION__LockNotExistDoNothing;
            break;
        case TXN_STATUS_UNCOMMITTED:
            resp->lock_ttl = st.lock.lock.ttl;
            resp->action = st.min_commit_ts_pushed ? KVRPCPB__ACTION__MinCommitTSPushed
                                                   : KVRPCPB__ACTION__NoAction;
            resp->lock_info = txn__lock_info(
                c, &st.lock.lock, tkv_slice_of(req->primary_key.data, req->primary_key.len));
            if (resp->lock_info == NULL)
                rc = -ENOMEM;
            break;
        }
    }
    txn_status_deinit(&st);
    mvcc_err_deinit(&e);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvCheckTxnStatus",
    .resp_desc = &kvrpcpb__check_txn_status_response__descriptor,
    .write = true,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__CheckTxnStatusRequest *req = (const Kvrpcpb__CheckTxnStatusRequest *)c->req;
    return txn__set_keys(c, &req->primary_key, 1);
}

int txn__kv_check_txn_status(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__CheckTxnStatusRequest *r = (const Kvrpcpb__CheckTxnStatusRequest *)req;
    return txn__submit(s, &def, req, r->context, r->lock_ts, setup, cb, ud);
}
