/*
 * pessimistic_rollback.c: KVPessimisticRollback (TiKV's commands/pessimistic_rollback.rs):
 * removes the transaction's pessimistic locks whose for_update_ts is not newer than the
 * request's; other locks are left alone. Leaves no rollback record.
 */
#include "storage/txn/txn_int.h"

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__PessimisticRollbackRequest *req =
        (const Kvrpcpb__PessimisticRollbackRequest *)c->req;
    int rc = 0;
    for (size_t i = 0; i < c->n_keys && rc == 0; i++)
        rc = txn_pessimistic_rollback(c->txn, r, c->keys[i], req->for_update_ts);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KVPessimisticRollback",
    .resp_desc = &kvrpcpb__pessimistic_rollback_response__descriptor,
    .write = true,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__PessimisticRollbackRequest *req =
        (const Kvrpcpb__PessimisticRollbackRequest *)c->req;
    return txn__set_keys(c, req->keys, req->n_keys);
}

int txn__kv_pessimistic_rollback(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__PessimisticRollbackRequest *r = (const Kvrpcpb__PessimisticRollbackRequest *)req;
    return txn__submit(s, &def, req, r->context, r->start_version, setup, cb, ud);
}
