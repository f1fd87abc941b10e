/*
 * raw_cas.c: RawCompareAndSwap (TiKV's Storage::raw_compare_and_swap_atomic and its
 * RawCompareAndSwap command): latch the key, read it at a snapshot, and write the new value
 * only when the current one is what the client expects.
 *
 * Semantics client-go relies on: previous_not_exist in the request means "expect no live
 * value"; otherwise previous_value is the expected value (an empty one matches only an
 * existing empty value). The response always carries what was found: previous_not_exist when
 * there was no live value, else previous_value; succeed says whether the write happened.
 * Writes of client-go's atomic mode (for_cas) latch the same keys, so they never interleave
 * with a compare-and-swap.
 */
#include "storage/raw/raw_int.h"

static const raw_cmd RAW_CAS = {"raw_compare_and_swap", &kvrpcpb__raw_casresponse__descriptor};

static void cas_reply(raw_op *op)
{
    Kvrpcpb__RawCASResponse resp = KVRPCPB__RAW_CASRESPONSE__INIT;
    resp.succeed = op->succeed;
    if (op->prev_found) {
        resp.previous_value.data = op->prev.data;
        resp.previous_value.len = op->prev.len;
    } else {
        resp.previous_not_exist = true;
    }
    stor__raw_reply(op, &resp.base);
}

static int cas_build(raw_op *op, raw_mods *out)
{
    const Kvrpcpb__RawCASRequest *req = op->req;
    return stor__raw_mods_put(op, out, raw_bin(req->key), raw_bin(req->value), req->ttl);
}

static void cas_on_snap(raw_op *op, stor_snap *snap)
{
    const Kvrpcpb__RawCASRequest *req = op->req;
    raw_point pt;
    if (!stor__raw_read_key(op, snap, raw_bin(req->key), &pt)) {
        tkv_buf_deinit(&pt.buf);
        return;
    }
    bool found = pt.found;
    int rc = found ? tkv_buf_set(&op->prev, pt.user.data, pt.user.len) : 0;
    tkv_buf_deinit(&pt.buf);
    if (rc != 0) {
        stor__raw_reply_read_error(op, rc);
        return;
    }
    op->prev_found = found;
    bool match = req->previous_not_exist ? !found
                                         : found && tkv_slice_eq(tkv_buf_slice(&op->prev),
                                                                 raw_bin(req->previous_value));
    if (!match) {
        cas_reply(op);
        return;
    }
    op->succeed = true;
    op->build = cas_build;
    op->on_written = cas_reply;
    rc = stor__raw_write_built(op);
    if (rc != 0)
        stor__raw_reply_error(op, "write refused: %s", tkv_strerror(rc));
}

static void cas_latched(raw_op *op)
{
    int rc = stor__raw_read(op, cas_on_snap);
    if (rc != 0)
        stor__raw_reply_error(op, "get snapshot refused: %s", tkv_strerror(rc));
}

int stor__raw_compare_and_swap(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawCASRequest *req = (const Kvrpcpb__RawCASRequest *)m;
    raw_op *op = stor__raw_op_new(s, &RAW_CAS, req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_cf(op, req->cf) ||
        !stor__raw_check_ttl(op, req->ttl) || !stor__raw_check_key(op, req->key) ||
        !stor__raw_check_value(op, req->value))
        return 0;
    tkv_slice key = raw_bin(req->key);
    int rc = stor__raw_latch(op, &key, 1, cas_latched);
    if (rc != 0)
        stor__raw_op_free(op);
    return rc;
}
