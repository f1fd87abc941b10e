/*
 * raw_check.c: request checks every raw method runs before touching data. A failed check
 * answers with TiKV's message for it (storage/errors.rs) and nothing is read or written.
 */
#include "storage/raw/raw_int.h"

static const char *api_name(int v)
{
    switch (v) {
    case KVRPCPB__APIVERSION__V1:
        return "V1";
    case KVRPCPB__APIVERSION__V1TTL:
        return "V1ttl";
    case KVRPCPB__APIVERSION__V2:
        return "V2";
    }
    return "Unknown";
}

bool stor__raw_check_api(raw_op *op, const Kvrpcpb__Context *pbctx)
{
    int v = pbctx != NULL ? (int)pbctx->api_version : KVRPCPB__APIVERSION__V1;
    /* TiKV's check_api_version: a V1 store takes V1 requests, a V1TTL store (enable-ttl)
     * takes V1 raw requests; everything else, V2 (keyspaces) above all, is refused. */
    if (v == KVRPCPB__APIVERSION__V1)
        return true;
    stor__raw_reply_error(op,
                          "Api version in request does not match with TiKV storage, cmd: %s, "
                          "storage: %s, request: %s",
                          op->cmd->kind, op->s->opts.enable_ttl ? "V1ttl" : "V1", api_name(v));
    return false;
}

bool stor__raw_check_cf(raw_op *op, const char *cf)
{
    if (cf == NULL || cf[0] == '\0' || strcmp(cf, "default") == 0)
        op->cf = ENG_CF_DEFAULT;
    else if (strcmp(cf, "lock") == 0)
        op->cf = ENG_CF_LOCK;
    else if (strcmp(cf, "write") == 0)
        op->cf = ENG_CF_WRITE;
    else {
        stor__raw_reply_error(op, "invalid cf name: %.128s", cf);
        return false;
    }
    return true;
}

bool stor__raw_check_key(raw_op *op, ProtobufCBinaryData key)
{
    size_t limit = op->s->opts.max_key_bytes;
    if (limit == 0 || key.len <= limit)
        return true;
    stor__raw_reply_error(op, "max key size exceeded, size: %zu, limit: %zu", key.len, limit);
    return false;
}

bool stor__raw_check_keys(raw_op *op, const ProtobufCBinaryData *keys, size_t n)
{
    if (!stor__raw_check_batch(op, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!stor__raw_check_key(op, keys[i]))
            return false;
    }
    return true;
}

bool stor__raw_check_value(raw_op *op, ProtobufCBinaryData value)
{
    size_t limit = op->s->opts.max_value_bytes;
    if (limit == 0 || value.len <= limit)
        return true;
    stor__raw_reply_error(op, "max value size exceeded, size: %zu, limit: %zu", value.len, limit);
    return false;
}

bool stor__raw_check_batch(raw_op *op, size_t n)
{
    size_t limit = op->s->opts.max_batch_keys;
    if (limit == 0 || n <= limit)
        return true;
    stor__raw_reply_error(op, "max batch size exceeded, size: %zu, limit: %zu", n, limit);
    return false;
}

bool stor__raw_check_scan_limit(raw_op *op, uint64_t limit)
{
    size_t max = op->s->opts.max_scan_limit;
    if (max == 0 || limit <= max)
        return true;
    stor__raw_reply_error(op, "max scan limit exceeded, limit: %llu, max: %zu",
                          (unsigned long long)limit, max);
    return false;
}

bool stor__raw_check_ttl(raw_op *op, uint64_t ttl)
{
    if (ttl == 0 || op->s->opts.enable_ttl)
        return true;
    stor__raw_reply_error(op, "ttl is not enabled, but get put request with ttl");
    return false;
}
