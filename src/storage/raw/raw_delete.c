/*
 * raw_delete.c: RawDelete, RawBatchDelete (atomic with for_cas, like TiKV's
 * raw_batch_delete_atomic) and RawDeleteRange.
 */
#include "storage/raw/raw_int.h"

static const raw_cmd RAW_DELETE = {"raw_delete", &kvrpcpb__raw_delete_response__descriptor};
static const raw_cmd RAW_DELETE_ATOMIC = {"raw_atomic_store",
                                          &kvrpcpb__raw_delete_response__descriptor};
static const raw_cmd RAW_BATCH_DELETE = {"raw_batch_delete",
                                         &kvrpcpb__raw_batch_delete_response__descriptor};
static const raw_cmd RAW_BATCH_DELETE_ATOMIC = {"raw_atomic_store",
                                                &kvrpcpb__raw_batch_delete_response__descriptor};
static const raw_cmd RAW_DELETE_RANGE = {"raw_delete_range",
                                         &kvrpcpb__raw_delete_range_response__descriptor};

static int delete_build(raw_op *op, raw_mods *out)
{
    const Kvrpcpb__RawDeleteRequest *req = op->req;
    return stor__raw_mods_delete(op, out, raw_bin(req->key));
}

static tkv_slice delete_key(const void *req, size_t i)
{
    (void)i;
    return raw_bin(((const Kvrpcpb__RawDeleteRequest *)req)->key);
}

int stor__raw_delete(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawDeleteRequest *req = (const Kvrpcpb__RawDeleteRequest *)m;
    raw_op *op = stor__raw_op_new(s, req->for_cas ? &RAW_DELETE_ATOMIC : &RAW_DELETE, req->context,
                                  req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_key(op, req->key) ||
        !stor__raw_check_cf(op, req->cf))
        return 0;
    return stor__raw_run_mods(op, delete_build, req->for_cas ? delete_key : NULL, 1);
}

static int batch_delete_build(raw_op *op, raw_mods *out)
{
    const Kvrpcpb__RawBatchDeleteRequest *req = op->req;
    int rc = 0;
    for (size_t i = 0; i < req->n_keys && rc == 0; i++)
        rc = stor__raw_mods_delete(op, out, raw_bin(req->keys[i]));
    return rc;
}

static tkv_slice batch_delete_key(const void *req, size_t i)
{
    return raw_bin(((const Kvrpcpb__RawBatchDeleteRequest *)req)->keys[i]);
}

int stor__raw_batch_delete(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawBatchDeleteRequest *req = (const Kvrpcpb__RawBatchDeleteRequest *)m;
    raw_op *op = stor__raw_op_new(s, req->for_cas ? &RAW_BATCH_DELETE_ATOMIC : &RAW_BATCH_DELETE,
                                  req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_cf(op, req->cf) ||
        !stor__raw_check_keys(op, req->keys, req->n_keys))
        return 0;
    return stor__raw_run_mods(op, batch_delete_build, req->for_cas ? batch_delete_key : NULL,
                              req->n_keys);
}

static int delete_range_build(raw_op *op, raw_mods *out)
{
    const Kvrpcpb__RawDeleteRangeRequest *req = op->req;
    return stor__raw_mods_delete_range(op, out, raw_bin(req->start_key), raw_bin(req->end_key));
}

int stor__raw_delete_range(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawDeleteRangeRequest *req = (const Kvrpcpb__RawDeleteRangeRequest *)m;
    raw_op *op = stor__raw_op_new(s, &RAW_DELETE_RANGE, req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_key(op, req->start_key) || !stor__raw_check_key(op, req->end_key) ||
        !stor__raw_check_api(op, req->context) || !stor__raw_check_cf(op, req->cf))
        return 0;
    /* An empty end key is the end of the region (client-go clamps the range to the region it
     * sends to); otherwise the range must not be empty or inverted (TiKV's apply refuses it). */
    if (req->end_key.len != 0 &&
        tkv_slice_cmp(raw_bin(req->start_key), raw_bin(req->end_key)) >= 0) {
        stor__raw_reply_error(op, "invalid delete range command: start_key must be less than "
                                  "end_key");
        return 0;
    }
    return stor__raw_run_mods(op, delete_range_build, NULL, 0);
}
