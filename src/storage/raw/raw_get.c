/*
 * raw_get.c: RawGet and RawBatchGet (TiKV's Storage::raw_get, raw_batch_get): point reads at
 * one snapshot of the region. Absent and expired keys read as not found; RawBatchGet omits
 * them.
 */
#include "storage/raw/raw_int.h"

static const raw_cmd RAW_GET = {"raw_get", &kvrpcpb__raw_get_response__descriptor};
static const raw_cmd RAW_BATCH_GET = {"raw_batch_get",
                                      &kvrpcpb__raw_batch_get_response__descriptor};

static void get_on_snap(raw_op *op, stor_snap *snap)
{
    const Kvrpcpb__RawGetRequest *req = op->req;
    raw_point pt;
    if (stor__raw_read_key(op, snap, raw_bin(req->key), &pt)) {
        Kvrpcpb__RawGetResponse resp = KVRPCPB__RAW_GET_RESPONSE__INIT;
        if (pt.found) {
            resp.value.data = (uint8_t *)pt.user.data;
            resp.value.len = pt.user.len;
        } else {
            resp.not_found = true;
        }
        stor__raw_reply(op, &resp.base);
    }
    tkv_buf_deinit(&pt.buf);
}

int stor__raw_get(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawGetRequest *req = (const Kvrpcpb__RawGetRequest *)m;
    raw_op *op = stor__raw_op_new(s, &RAW_GET, req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_cf(op, req->cf) ||
        !stor__raw_check_key(op, req->key))
        return 0;
    return stor__raw_run_read(op, get_on_snap);
}

static void batch_get_on_snap(raw_op *op, stor_snap *snap)
{
    const Kvrpcpb__RawBatchGetRequest *req = op->req;
    for (size_t i = 0; i < req->n_keys; i++) {
        if (!stor__raw_check_in_region(op, snap, raw_bin(req->keys[i])))
            return;
    }
    raw_pairs pairs;
    stor__raw_pairs_init(&pairs);
    tkv_buf buf;
    tkv_buf_init(&buf);
    int rc = 0;
    for (size_t i = 0; i < req->n_keys && rc == 0; i++) {
        tkv_slice key = raw_bin(req->keys[i]), user;
        uint64_t expire;
        bool found;
        rc = stor__raw_snap_get(op, snap, key, &buf, &user, &expire, &found);
        if (rc == 0 && found)
            rc = stor__raw_pairs_add(&pairs, key, user);
    }
    stor_snap_release(snap);
    tkv_buf_deinit(&buf);
    Kvrpcpb__RawBatchGetResponse resp = KVRPCPB__RAW_BATCH_GET_RESPONSE__INIT;
    if (rc == 0)
        rc = stor__raw_pairs_build(&pairs, &resp.pairs, &resp.n_pairs);
    if (rc != 0)
        stor__raw_reply_read_error(op, rc);
    else
        stor__raw_reply(op, &resp.base);
    stor__raw_pairs_deinit(&pairs);
}

int stor__raw_batch_get(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawBatchGetRequest *req = (const Kvrpcpb__RawBatchGetRequest *)m;
    raw_op *op = stor__raw_op_new(s, &RAW_BATCH_GET, req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_cf(op, req->cf) ||
        !stor__raw_check_keys(op, req->keys, req->n_keys))
        return 0;
    return stor__raw_run_read(op, batch_get_on_snap);
}
