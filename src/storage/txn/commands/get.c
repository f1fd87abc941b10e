/*
 * get.c: KvGet, a point read at the request's version (TiKV's Storage::get).
 */
#include "storage/txn/txn_int.h"

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__GetRequest *req = (const Kvrpcpb__GetRequest *)c->req;
    Kvrpcpb__GetResponse *resp = (Kvrpcpb__GetResponse *)c->resp;
    mvcc_err e;
    mvcc_err_init(&e);
    tkv_buf v;
    tkv_buf_init(&v);
    bool found;
    int rc = mvcc_point_get(r, c->keys[0], req->version, &c->ropts, &v, &found, &e);
    if (rc == 0 && e.kind != MVCC_OK) {
        resp->error = txn__key_error(c, &e);
        rc = resp->error ? 0 : -ENOMEM;
    } else if (rc == 0 && found) {
        resp->value = txn_arena_bytes(&c->arena, tkv_buf_slice(&v), &rc);
    } else if (rc == 0) {
        resp->not_found = true;
    }
    tkv_buf_deinit(&v);
    mvcc_err_deinit(&e);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvGet",
    .snapshot_read = true,
    .resp_desc = &kvrpcpb__get_response__descriptor,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__GetRequest *req = (const Kvrpcpb__GetRequest *)c->req;
    return txn__set_keys(c, &req->key, 1);
}

int txn__kv_get(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__GetRequest *r = (const Kvrpcpb__GetRequest *)req;
    return txn__submit(s, &def, req, r->context, r->version, setup, cb, ud);
}
