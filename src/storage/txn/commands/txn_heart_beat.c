/*
 * txn_heart_beat.c: KvTxnHeartBeat (TiKV's commands/txn_heart_beat.rs): extends the TTL of
 * a live primary lock to advise_lock_ttl (never shortens it) and answers the TTL.
 */
#include "storage/txn/txn_int.h"

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__TxnHeartBeatRequest *req = (const Kvrpcpb__TxnHeartBeatRequest *)c->req;
    Kvrpcpb__TxnHeartBeatResponse *resp = (Kvrpcpb__TxnHeartBeatResponse *)c->resp;
    txn_lock_holder h;
    txn_lock_holder_init(&h);
    bool found;
    int rc = mvcc_load_lock(r, c->keys[0], &h, &found);
    if (rc == 0 && found && h.lock.start_ts == req->start_version) {
        if (h.lock.ttl < req->advise_lock_ttl) {
            h.lock.ttl = req->advise_lock_ttl;
            rc = mvcc_txn_put_lock(c->txn, c->keys[0], &h.lock);
        }
        resp->lock_ttl = h.lock.ttl;
    } else if (rc == 0) {
        mvcc_err e;
        mvcc_err_init(&e);
        rc = mvcc_err_set(&e, MVCC_E_TXN_NOT_FOUND, c->keys[0],
                          tkv_slice_of(req->primary_lock.data, req->primary_lock.len),
                          req->start_version, 0, 0);
        if (rc == 0) {
            resp->error = txn__key_error(c, &e);
            if (resp->error == NULL)
                rc = -ENOMEM;
        }
        mvcc_err_deinit(&e);
    }
    txn_lock_holder_deinit(&h);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvTxnHeartBeat",
    .resp_desc = &kvrpcpb__txn_heart_beat_response__descriptor,
    .write = true,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__TxnHeartBeatRequest *req = (const Kvrpcpb__TxnHeartBeatRequest *)c->req;
    return txn__set_keys(c, &req->primary_lock, 1);
}

int txn__kv_txn_heart_beat(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__TxnHeartBeatRequest *r = (const Kvrpcpb__TxnHeartBeatRequest *)req;
    return txn__submit(s, &def, req, r->context, r->start_version, setup, cb, ud);
}
