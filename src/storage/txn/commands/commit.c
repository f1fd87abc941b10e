/*
 * commit.c: KvCommit (TiKV's commands/commit.rs): commits every key or none.
 */
#include "storage/txn/txn_int.h"

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__CommitRequest *req = (const Kvrpcpb__CommitRequest *)c->req;
    Kvrpcpb__CommitResponse *resp = (Kvrpcpb__CommitResponse *)c->resp;
    mvcc_err e;
    mvcc_err_init(&e);
    int rc = 0;
    if (req->commit_version <= req->start_version) {
        rc = mvcc_err_set(&e, MVCC_E_INVALID_TXN_TSO, tkv_slice_of(NULL, 0), tkv_slice_of(NULL, 0),
                          req->start_version, req->commit_version, 0);
    }
    for (size_t i = 0; i < c->n_keys && rc == 0 && e.kind == MVCC_OK; i++)
        rc = txn_commit(c->txn, r, c->keys[i], req->commit_version, &e);
    if (rc == 0 && e.kind != MVCC_OK) {
        rc = txn__refuse(c, &resp->error, &e);
    } else if (rc == 0) {
        resp->commit_version = req->commit_version;
        c->release_commit_ts = req->commit_version;
    }
    mvcc_err_deinit(&e);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvCommit",
    .resp_desc = &kvrpcpb__commit_response__descriptor,
    .write = true,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__CommitRequest *req = (const Kvrpcpb__CommitRequest *)c->req;
    return txn__set_keys(c, req->keys, req->n_keys);
}

int txn__kv_commit(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__CommitRequest *r = (const Kvrpcpb__CommitRequest *)req;
    return txn__submit(s, &def, req, r->context, r->start_version, setup, cb, ud);
}
