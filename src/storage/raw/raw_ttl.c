/*
 * raw_ttl.c: RawGetKeyTTL (TiKV's Storage::raw_get_key_ttl): the seconds a key has left to
 * live, 0 for a key without TTL, not_found for an absent or expired key.
 *
 * TiKV panics when asked on a store without TTL; here such a store answers as if no key had a
 * TTL (0 when present), which is what its data say.
 */
#include "storage/raw/raw_int.h"

static const raw_cmd RAW_GET_KEY_TTL = {"raw_get_key_ttl",
                                        &kvrpcpb__raw_get_key_ttlresponse__descriptor};

static void ttl_on_snap(raw_op *op, stor_snap *snap)
{
    const Kvrpcpb__RawGetKeyTTLRequest *req = op->req;
    raw_point pt;
    bool ok = stor__raw_read_key(op, snap, raw_bin(req->key), &pt);
    tkv_buf_deinit(&pt.buf);
    if (!ok)
        return;
    Kvrpcpb__RawGetKeyTTLResponse resp = KVRPCPB__RAW_GET_KEY_TTLRESPONSE__INIT;
    if (!pt.found)
        resp.not_found = true;
    else if (pt.expire_s != 0)
        resp.ttl = pt.expire_s - op->now_s; /* live, so expiry > now */
    stor__raw_reply(op, &resp.base);
}

int stor__raw_get_key_ttl(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawGetKeyTTLRequest *req = (const Kvrpcpb__RawGetKeyTTLRequest *)m;
    raw_op *op = stor__raw_op_new(s, &RAW_GET_KEY_TTL, req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_cf(op, req->cf) ||
        !stor__raw_check_key(op, req->key))
        return 0;
    return stor__raw_run_read(op, ttl_on_snap);
}
