/*
 * raw_put.c: RawPut and RawBatchPut (TiKV's Storage::raw_put, raw_batch_put and, with for_cas,
 * raw_batch_put_atomic), with optional TTLs in seconds.
 */
#include "storage/raw/raw_int.h"

static const raw_cmd RAW_PUT = {"raw_put", &kvrpcpb__raw_put_response__descriptor};
static const raw_cmd RAW_PUT_ATOMIC = {"raw_atomic_store", &kvrpcpb__raw_put_response__descriptor};
static const raw_cmd RAW_BATCH_PUT = {"raw_batch_put",
                                      &kvrpcpb__raw_batch_put_response__descriptor};
static const raw_cmd RAW_BATCH_PUT_ATOMIC = {"raw_atomic_store",
                                             &kvrpcpb__raw_batch_put_response__descriptor};

static int put_build(raw_op *op, raw_mods *out)
{
    const Kvrpcpb__RawPutRequest *req = op->req;
    return stor__raw_mods_put(op, out, raw_bin(req->key), raw_bin(req->value), req->ttl);
}

static tkv_slice put_key(const void *req, size_t i)
{
    (void)i;
    return raw_bin(((const Kvrpcpb__RawPutRequest *)req)->key);
}

int stor__raw_put(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawPutRequest *req = (const Kvrpcpb__RawPutRequest *)m;
    raw_op *op =
        stor__raw_op_new(s, req->for_cas ? &RAW_PUT_ATOMIC : &RAW_PUT, req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_key(op, req->key) ||
        !stor__raw_check_value(op, req->value) || !stor__raw_check_ttl(op, req->ttl) ||
        !stor__raw_check_cf(op, req->cf))
        return 0;
    return stor__raw_run_mods(op, put_build, req->for_cas ? put_key : NULL, 1);
}

/* TiKV's rule for RawBatchPut.ttls: none means no TTL, one applies to every pair, otherwise
 * one per pair. */
static uint64_t pair_ttl(const Kvrpcpb__RawBatchPutRequest *req, size_t i)
{
    if (req->n_ttls == 1)
        return req->ttls[0];
    /* Without TTL a list of zeros of any length passes the checks: read it safely. */
    return i < req->n_ttls ? req->ttls[i] : 0;
}

static int batch_put_build(raw_op *op, raw_mods *out)
{
    const Kvrpcpb__RawBatchPutRequest *req = op->req;
    int rc = 0;
    for (size_t i = 0; i < req->n_pairs && rc == 0; i++)
        rc = stor__raw_mods_put(op, out, raw_bin(req->pairs[i]->key), raw_bin(req->pairs[i]->value),
                                pair_ttl(req, i));
    return rc;
}

static tkv_slice batch_put_key(const void *req, size_t i)
{
    return raw_bin(((const Kvrpcpb__RawBatchPutRequest *)req)->pairs[i]->key);
}

int stor__raw_batch_put(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawBatchPutRequest *req = (const Kvrpcpb__RawBatchPutRequest *)m;
    raw_op *op = stor__raw_op_new(s, req->for_cas ? &RAW_BATCH_PUT_ATOMIC : &RAW_BATCH_PUT,
                                  req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_cf(op, req->cf) ||
        !stor__raw_check_batch(op, req->n_pairs))
        return 0;
    for (size_t i = 0; i < req->n_pairs; i++) {
        if (!stor__raw_check_key(op, req->pairs[i]->key) ||
            !stor__raw_check_value(op, req->pairs[i]->value))
            return 0;
    }
    for (size_t i = 0; i < req->n_ttls; i++) {
        if (!stor__raw_check_ttl(op, req->ttls[i]))
            return 0;
    }
    if (s->opts.enable_ttl && req->n_ttls > 1 && req->n_ttls != req->n_pairs) {
        stor__raw_reply_error(op, "The length of ttls does not equal to the length of pairs");
        return 0;
    }
    return stor__raw_run_mods(op, batch_put_build, req->for_cas ? batch_put_key : NULL,
                              req->n_pairs);
}
