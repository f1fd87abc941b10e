/*
 * cleanup.c: KvCleanup (TiKV's commands/cleanup.rs, used by tikv-client 0.3.0 to resolve
 * locks): rolls back the transaction on one key unless its lock is still alive at
 * current_ts (then `locked`); a committed transaction answers its commit_version.
 */
#include "storage/txn/txn_int.h"

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__CleanupRequest *req = (const Kvrpcpb__CleanupRequest *)c->req;
    Kvrpcpb__CleanupResponse *resp = (Kvrpcpb__CleanupResponse *)c->resp;
    mvcc_err e;
    mvcc_err_init(&e);
    int rc = txn_cleanup(c->txn, r, c->keys[0], req->current_ts, true, &e);
    if (rc == 0 && e.kind == MVCC_E_COMMITTED) {
        mvcc_txn_clear(c->txn);
        resp->commit_version = e.commit_ts;
    } else if (rc == 0 && e.kind != MVCC_OK) {
        rc = txn__refuse(c, &resp->error, &e);
    }
    mvcc_err_deinit(&e);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvCleanup",
    .resp_desc = &kvrpcpb__cleanup_response__descriptor,
    .write = true,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__CleanupRequest *req = (const Kvrpcpb__CleanupRequest *)c->req;
    return txn__set_keys(c, &req->key, 1);
}

int txn__kv_cleanup(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__CleanupRequest *r = (const Kvrpcpb__CleanupRequest *)req;
    return txn__submit(s, &def, req, r->context, r->start_version, setup, cb, ud);
}
