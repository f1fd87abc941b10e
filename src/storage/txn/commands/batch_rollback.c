/*
 * batch_rollback.c: KvBatchRollback (TiKV's commands/rollback.rs): rolls the transaction
 * back on every key, leaving rollback records that stop late prewrites. A key whose
 * transaction already committed fails the whole request.
 */
#include "storage/txn/txn_int.h"

static int process(txn_cmd *c, mvcc_reader *r)
{
    Kvrpcpb__BatchRollbackResponse *resp = (Kvrpcpb__BatchRollbackResponse *)c->resp;
    mvcc_err e;
    mvcc_err_init(&e);
    int rc = 0;
    for (size_t i = 0; i < c->n_keys && rc == 0 && e.kind == MVCC_OK; i++)
        rc = txn_cleanup(c->txn, r, c->keys[i], 0, false, &e);
    if (rc == 0 && e.kind != MVCC_OK) {
        rc = txn__refuse(c, &resp->error, &e);
    }
    mvcc_err_deinit(&e);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvBatchRollback",
    .resp_desc = &kvrpcpb__batch_rollback_response__descriptor,
    .write = true,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__BatchRollbackRequest *req = (const Kvrpcpb__BatchRollbackRequest *)c->req;
    return txn__set_keys(c, req->keys, req->n_keys);
}

int txn__kv_batch_rollback(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__BatchRollbackRequest *r = (const Kvrpcpb__BatchRollbackRequest *)req;
    return txn__submit(s, &def, req, r->context, r->start_version, setup, cb, ud);
}
