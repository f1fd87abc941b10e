/*
 * tc_raw.c: the raw API (TiKV API v1): point and batch reads and writes, compare-and-swap,
 * TTL, as key-set operations; scans and delete-range are in tc_scan.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "client/tc_int.h"

/* ---- commands --------------------------------------------------------------------------- */

#define CMD(name, arm, type)                                                                       \
    const tc_cmd tc_cmd_##name = {"/tikvpb.Tikv/" arm, 0, &kvrpcpb__##type##__descriptor}
#define BCMD(name, arm, field, type)                                                               \
    const tc_cmd tc_cmd_##name = {"/tikvpb.Tikv/" arm, field, &kvrpcpb__##type##__descriptor}

BCMD(raw_get, "RawGet", 13, raw_get_response);
BCMD(raw_batch_get, "RawBatchGet", 14, raw_batch_get_response);
BCMD(raw_put, "RawPut", 15, raw_put_response);
BCMD(raw_batch_put, "RawBatchPut", 16, raw_batch_put_response);
BCMD(raw_delete, "RawDelete", 17, raw_delete_response);
BCMD(raw_batch_delete, "RawBatchDelete", 18, raw_batch_delete_response);
BCMD(raw_scan, "RawScan", 19, raw_scan_response);
BCMD(raw_delete_range, "RawDeleteRange", 20, raw_delete_range_response);
CMD(raw_cas, "RawCompareAndSwap", raw_casresponse);
CMD(raw_get_ttl, "RawGetKeyTTL", raw_get_key_ttlresponse);
BCMD(kv_get, "KvGet", 1, get_response);
BCMD(kv_scan, "KvScan", 2, scan_response);
BCMD(kv_prewrite, "KvPrewrite", 3, prewrite_response);
BCMD(kv_commit, "KvCommit", 4, commit_response);
BCMD(kv_batch_get, "KvBatchGet", 7, batch_get_response);
BCMD(kv_batch_rollback, "KvBatchRollback", 8, batch_rollback_response);
BCMD(kv_resolve_lock, "KvResolveLock", 10, resolve_lock_response);
BCMD(kv_check_txn_status, "KvCheckTxnStatus", 25, check_txn_status_response);

static ProtobufCBinaryData bin(tkv_slice s)
{
    ProtobufCBinaryData b = {s.len, (uint8_t *)s.data};
    return b;
}

static int pack(const ProtobufCMessage *m, tkv_buf *out)
{
    return rpc_msg_pack(m, out) == 0 ? 0 : TIKVC_ENOMEM;
}

/* A string error in a raw response fails the op with the store's message. */
static bool raw_error(tc_kop *k, const char *err)
{
    if (err == NULL || err[0] == '\0')
        return false;
    tikvc__op_fail(&k->op, TIKVC_ESERVER, "store: %s", err);
    return true;
}

/* Returns the index among the task's items whose key is @key, or SIZE_MAX. */
static size_t find_item(tc_kop *k, const tc_task *t, ProtobufCBinaryData key)
{
    for (size_t i = 0; i < t->n_items; i++) {
        tc_item *it = &k->items[t->items[i]];
        if (!it->done && tkv_slice_eq(it->key, tkv_slice_of(key.data, key.len)))
            return t->items[i];
    }
    return SIZE_MAX;
}

/* RawGet */
static int build_get(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    (void)n;
    Kvrpcpb__RawGetRequest r = KVRPCPB__RAW_GET_REQUEST__INIT;
    r.context = ctx;
    r.key = bin(k->items[idx[0]].key);
    return pack(&r.base, o);
}

static void handle_get(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    Kvrpcpb__RawGetResponse *r = (Kvrpcpb__RawGetResponse *)m;
    if (raw_error(k, r->error))
        return;
    tc_item *it = &k->items[t->items[0]];
    it->found = !r->not_found;
    if (it->found && tkv_buf_set(&it->out, r->value.data, r->value.len) != 0)
        tikvc__op_fail(&k->op, TIKVC_ENOMEM, "out of memory");
    it->done = true;
}

static const tc_kop_cmd kc_get = {&tc_cmd_raw_get, build_get, handle_get, 1, SIZE_MAX};

/* RawBatchGet */
static int build_batch_get(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx,
                           tkv_buf *o)
{
    return tikvc__kop_pack_keys(k, &kvrpcpb__raw_batch_get_request__descriptor, idx, n, ctx, NULL,
                                o);
}

static void handle_batch_get(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    Kvrpcpb__RawBatchGetResponse *r = (Kvrpcpb__RawBatchGetResponse *)m;
    for (size_t i = 0; i < r->n_pairs; i++) {
        Kvrpcpb__KvPair *p = r->pairs[i];
        if (p->error != NULL) {
            tikvc__op_fail(&k->op, TIKVC_ESERVER, "store: a key error in a raw batch get");
            return;
        }
        size_t at = find_item(k, t, p->key);
        if (at == SIZE_MAX)
            continue;
        /* Every duplicate of the key gets the value. */
        for (size_t j = 0; j < t->n_items; j++) {
            tc_item *it = &k->items[t->items[j]];
            if (tkv_slice_eq(it->key, tkv_slice_of(p->key.data, p->key.len))) {
                it->found = true;
                it->done = true;
                if (tkv_buf_set(&it->out, p->value.data, p->value.len) != 0)
                    tikvc__op_fail(&k->op, TIKVC_ENOMEM, "out of memory");
            }
        }
    }
}

static const tc_kop_cmd kc_batch_get = {&tc_cmd_raw_batch_get, build_batch_get, handle_batch_get,
                                        512, SIZE_MAX};

/* RawPut */
static int build_put(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    (void)n;
    Kvrpcpb__RawPutRequest r = KVRPCPB__RAW_PUT_REQUEST__INIT;
    r.context = ctx;
    r.key = bin(k->items[idx[0]].key);
    r.value = bin(k->items[idx[0]].value);
    r.ttl = k->ttl_s;
    return pack(&r.base, o);
}

static void handle_put(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    (void)t;
    raw_error(k, ((Kvrpcpb__RawPutResponse *)m)->error);
}

static const tc_kop_cmd kc_put = {&tc_cmd_raw_put, build_put, handle_put, 1, SIZE_MAX};

/* RawBatchPut */
static int build_batch_put(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx,
                           tkv_buf *o)
{
    Kvrpcpb__KvPair *pairs = tkv_calloc(n, sizeof(*pairs));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Kvrpcpb__KvPair **pp = tkv_calloc(n, sizeof(*pp));
    uint64_t *ttls = k->ttl_s ? tkv_calloc(n, sizeof(*ttls)) : NULL;
    int rc = 0;
    if (pairs == NULL || pp == NULL || (k->ttl_s && ttls == NULL)) {
        rc = TIKVC_ENOMEM;
    } else {
        for (size_t i = 0; i < n; i++) {
            kvrpcpb__kv_pair__init(&pairs[i]);
            pairs[i].key = bin(k->items[idx[i]].key);
            pairs[i].value = bin(k->items[idx[i]].value);
            pp[i] = &pairs[i];
            if (ttls != NULL)
                ttls[i] = k->ttl_s;
        }
        Kvrpcpb__RawBatchPutRequest r = KVRPCPB__RAW_BATCH_PUT_REQUEST__INIT;
        r.context = ctx;
        r.pairs = pp;
        r.n_pairs = n;
        r.ttls = ttls;
        r.n_ttls = ttls ? n : 0;
        rc = pack(&r.base, o);
    }
    tkv_free(pairs);
    tkv_free(pp);
    tkv_free(ttls);
    return rc;
}

static void handle_batch_put(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    (void)t;
    raw_error(k, ((Kvrpcpb__RawBatchPutResponse *)m)->error);
}

static const tc_kop_cmd kc_batch_put = {&tc_cmd_raw_batch_put, build_batch_put, handle_batch_put,
                                        2048, 256 * 1024};

/* RawDelete */
static int build_delete(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    (void)n;
    Kvrpcpb__RawDeleteRequest r = KVRPCPB__RAW_DELETE_REQUEST__INIT;
    r.context = ctx;
    r.key = bin(k->items[idx[0]].key);
    return pack(&r.base, o);
}

static void handle_delete(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    (void)t;
    raw_error(k, ((Kvrpcpb__RawDeleteResponse *)m)->error);
}

static const tc_kop_cmd kc_delete = {&tc_cmd_raw_delete, build_delete, handle_delete, 1, SIZE_MAX};

/* RawBatchDelete */
static int build_batch_delete(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx,
                              tkv_buf *o)
{
    return tikvc__kop_pack_keys(k, &kvrpcpb__raw_batch_delete_request__descriptor, idx, n, ctx,
                                NULL, o);
}

static void handle_batch_delete(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    (void)t;
    raw_error(k, ((Kvrpcpb__RawBatchDeleteResponse *)m)->error);
}

static const tc_kop_cmd kc_batch_delete = {&tc_cmd_raw_batch_delete, build_batch_delete,
                                           handle_batch_delete, 2048, 256 * 1024};

/* RawCompareAndSwap */
static int build_cas(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    (void)n;
    Kvrpcpb__RawCASRequest r = KVRPCPB__RAW_CASREQUEST__INIT;
    r.context = ctx;
    r.key = bin(k->items[idx[0]].key);
    r.value = bin(k->items[idx[0]].value);
    r.previous_not_exist = k->for_cas_prev_absent;
    r.previous_value = bin(k->cas_expected);
    r.ttl = k->ttl_s;
    return pack(&r.base, o);
}

static void handle_cas(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    Kvrpcpb__RawCASResponse *r = (Kvrpcpb__RawCASResponse *)m;
    if (raw_error(k, r->error))
        return;
    tc_item *it = &k->items[t->items[0]];
    k->swapped = r->succeed;
    it->found = !r->previous_not_exist;
    if (it->found && tkv_buf_set(&it->out, r->previous_value.data, r->previous_value.len) != 0)
        tikvc__op_fail(&k->op, TIKVC_ENOMEM, "out of memory");
    it->done = true;
}

static const tc_kop_cmd kc_cas = {&tc_cmd_raw_cas, build_cas, handle_cas, 1, SIZE_MAX};

/* RawGetKeyTTL */
static int build_ttl(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    (void)n;
    Kvrpcpb__RawGetKeyTTLRequest r = KVRPCPB__RAW_GET_KEY_TTLREQUEST__INIT;
    r.context = ctx;
    r.key = bin(k->items[idx[0]].key);
    return pack(&r.base, o);
}

static void handle_ttl(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    Kvrpcpb__RawGetKeyTTLResponse *r = (Kvrpcpb__RawGetKeyTTLResponse *)m;
    if (raw_error(k, r->error))
        return;
    tc_item *it = &k->items[t->items[0]];
    it->found = !r->not_found;
    k->ttl_out = r->ttl;
    it->done = true;
}

static const tc_kop_cmd kc_ttl = {&tc_cmd_raw_get_ttl, build_ttl, handle_ttl, 1, SIZE_MAX};

/* ---- blocking API ----------------------------------------------------------------------- */

static int check_client(tikvc_client *c)
{
    if (c == NULL)
        return tikvc__fail(TIKVC_EINVAL, "NULL client");
    if (atomic_load(&c->closing))
        return tikvc__fail(TIKVC_ECLOSED, "the client is closing");
    return 0;
}

/* Makes a key-set op over @n keys (and values), borrowed for a blocking call. */
static int raw_kop(tikvc_client *c, const tc_kop_cmd *kc, const tikvc_slice *keys,
                   const tikvc_slice *values, size_t n, tc_kop **out)
{
    int rc = check_client(c);
    if (rc != 0)
        return rc;
    if (n > 0 && keys == NULL)
        return tikvc__fail(TIKVC_EINVAL, "NULL keys");
    rc = tikvc__kop_new(c, kc, &c->raw_cache, n, out);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        tkv_slice v =
            values != NULL ? tkv_slice_of(values[i].data, values[i].len) : tkv_slice_of(NULL, 0);
        if (keys[i].data == NULL && keys[i].len > 0)
            rc = tikvc__fail(TIKVC_EINVAL, "NULL key data");
        else
            rc = tikvc__kop_set(*out, i, tkv_slice_of(keys[i].data, keys[i].len), v, false);
    }
    if (rc != 0 && *out != NULL) {
        tikvc__kop_free(*out);
        *out = NULL;
    }
    return rc;
}

/* Moves @b's bytes into a caller-owned tikvc_buf (malloc'd, so tikvc_buf_free frees it). */
static int give_buf(tkv_buf *b, tikvc_buf *out)
{
    tikvc_buf_free(out);
    out->data = malloc(b->len ? b->len : 1);
    if (out->data == NULL)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    if (b->len > 0)
        memcpy(out->data, b->data, b->len);
    out->len = b->len;
    return 0;
}

int tikvc__give_buf(tkv_buf *b, tikvc_buf *out)
{
    return give_buf(b, out);
}

int tikvc_raw_get(tikvc_client *c, const void *key, size_t key_len, tikvc_buf *value, bool *found)
{
    if (value == NULL || found == NULL || (key == NULL && key_len > 0))
        return tikvc__fail(TIKVC_EINVAL, "tikvc_raw_get: NULL argument");
    tikvc_slice k1 = {key, key_len};
    tc_kop *k = NULL;
    int rc = raw_kop(c, &kc_get, &k1, NULL, 1, &k);
    if (rc == 0)
        rc = tikvc__kop_run(k);
    if (rc == 0) {
        *found = k->items[0].found;
        if (*found)
            rc = give_buf(&k->items[0].out, value);
        else
            tikvc_buf_free(value);
    }
    tikvc__kop_free(k);
    return rc;
}

/* Collects the found items of @k, in item order, into @out. */
static int found_pairs(tc_kop *k, tikvc_kvs *out)
{
    tikvc_kvs_free(out);
    size_t n = 0;
    for (size_t i = 0; i < k->n; i++)
        n += k->items[i].found;
    out->items = calloc(n ? n : 1, sizeof(*out->items));
    if (out->items == NULL)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    for (size_t i = 0; i < k->n; i++) {
        if (!k->items[i].found)
            continue;
        tikvc_kv *kv = &out->items[out->len];
        kv->key.data = malloc(k->items[i].key.len ? k->items[i].key.len : 1);
        if (kv->key.data == NULL || give_buf(&k->items[i].out, &kv->value) != 0) {
            free(kv->key.data);
            kv->key.data = NULL;
            tikvc_kvs_free(out);
            return tikvc__fail(TIKVC_ENOMEM, "out of memory");
        }
        if (k->items[i].key.len > 0)
            memcpy(kv->key.data, k->items[i].key.data, k->items[i].key.len);
        kv->key.len = k->items[i].key.len;
        out->len++;
    }
    return 0;
}

int tikvc__found_pairs(tc_kop *k, tikvc_kvs *out)
{
    return found_pairs(k, out);
}

int tikvc_raw_batch_get(tikvc_client *c, const tikvc_slice *keys, size_t n, tikvc_kvs *out)
{
    if (out == NULL)
        return tikvc__fail(TIKVC_EINVAL, "tikvc_raw_batch_get: NULL output");
    tc_kop *k = NULL;
    int rc = raw_kop(c, &kc_batch_get, keys, NULL, n, &k);
    if (rc == 0)
        rc = tikvc__kop_run(k);
    if (rc == 0)
        rc = found_pairs(k, out);
    tikvc__kop_free(k);
    return rc;
}

static int run_write(tikvc_client *c, const tc_kop_cmd *kc, const tikvc_slice *keys,
                     const tikvc_slice *values, size_t n, uint64_t ttl_s)
{
    tc_kop *k = NULL;
    int rc = raw_kop(c, kc, keys, values, n, &k);
    if (rc == 0) {
        k->ttl_s = ttl_s;
        rc = tikvc__kop_run(k);
    }
    tikvc__kop_free(k);
    return rc;
}

int tikvc_raw_put(tikvc_client *c, const void *key, size_t key_len, const void *value,
                  size_t value_len, uint64_t ttl_s)
{
    if ((key == NULL && key_len > 0) || (value == NULL && value_len > 0))
        return tikvc__fail(TIKVC_EINVAL, "tikvc_raw_put: NULL argument");
    tikvc_slice k1 = {key, key_len}, v1 = {value, value_len};
    return run_write(c, &kc_put, &k1, &v1, 1, ttl_s);
}

int tikvc_raw_batch_put(tikvc_client *c, const tikvc_slice *keys, const tikvc_slice *values,
                        size_t n, uint64_t ttl_s)
{
    if (n > 0 && values == NULL)
        return tikvc__fail(TIKVC_EINVAL, "tikvc_raw_batch_put: NULL values");
    return run_write(c, &kc_batch_put, keys, values, n, ttl_s);
}

int tikvc_raw_delete(tikvc_client *c, const void *key, size_t key_len)
{
    if (key == NULL && key_len > 0)
        return tikvc__fail(TIKVC_EINVAL, "tikvc_raw_delete: NULL key");
    tikvc_slice k1 = {key, key_len};
    return run_write(c, &kc_delete, &k1, NULL, 1, 0);
}

int tikvc_raw_batch_delete(tikvc_client *c, const tikvc_slice *keys, size_t n)
{
    return run_write(c, &kc_batch_delete, keys, NULL, n, 0);
}

int tikvc_raw_cas(tikvc_client *c, const void *key, size_t key_len, const void *expected,
                  size_t expected_len, bool expect_absent, const void *value, size_t value_len,
                  uint64_t ttl_s, bool *swapped, tikvc_buf *previous, bool *previous_found)
{
    if (swapped == NULL || (key == NULL && key_len > 0) || (value == NULL && value_len > 0) ||
        (expected == NULL && expected_len > 0))
        return tikvc__fail(TIKVC_EINVAL, "tikvc_raw_cas: NULL argument");
    tikvc_slice k1 = {key, key_len}, v1 = {value, value_len};
    tc_kop *k = NULL;
    int rc = raw_kop(c, &kc_cas, &k1, &v1, 1, &k);
    if (rc == 0) {
        k->ttl_s = ttl_s;
        k->for_cas_prev_absent = expect_absent;
        k->cas_expected = tkv_slice_of(expected, expected_len);
        rc = tikvc__kop_run(k);
    }
    if (rc == 0) {
        *swapped = k->swapped;
        if (previous_found != NULL)
            *previous_found = k->items[0].found;
        if (previous != NULL) {
            if (k->items[0].found)
                rc = give_buf(&k->items[0].out, previous);
            else
                tikvc_buf_free(previous);
        }
    }
    tikvc__kop_free(k);
    return rc;
}

int tikvc_raw_get_ttl(tikvc_client *c, const void *key, size_t key_len, uint64_t *ttl_s,
                      bool *found)
{
    if (ttl_s == NULL || found == NULL || (key == NULL && key_len > 0))
        return tikvc__fail(TIKVC_EINVAL, "tikvc_raw_get_ttl: NULL argument");
    tikvc_slice k1 = {key, key_len};
    tc_kop *k = NULL;
    int rc = raw_kop(c, &kc_ttl, &k1, NULL, 1, &k);
    if (rc == 0)
        rc = tikvc__kop_run(k);
    if (rc == 0) {
        *found = k->items[0].found;
        *ttl_s = k->ttl_out;
    }
    tikvc__kop_free(k);
    return rc;
}

/* ---- asynchronous API ------------------------------------------------------------------- */

static void kop_fill(tc_op *op, tikvc_result *r)
{
    tc_kop *k = (tc_kop *)op;
    if (r->code == 0 && k->n == 1) {
        r->found = k->items[0].found;
        r->value.data = k->items[0].out.data;
        r->value.len = k->items[0].out.len;
    }
}

static int start_async(tikvc_client *c, const tc_kop_cmd *kc, tkv_slice key, tkv_slice value,
                       uint64_t ttl_s, tikvc_cb cb, void *ud)
{
    int rc = check_client(c);
    if (rc != 0)
        return rc;
    if (cb == NULL || (key.data == NULL && key.len > 0) || (value.data == NULL && value.len > 0))
        return tikvc__fail(TIKVC_EINVAL, "NULL argument");
    tc_kop *k = NULL;
    rc = tikvc__kop_new(c, kc, &c->raw_cache, 1, &k);
    if (rc != 0)
        return rc;
    k->ttl_s = ttl_s;
    rc = tikvc__kop_set(k, 0, key, value, true);
    if (rc == 0)
        rc = tikvc__op_start_async(&k->op, kop_fill, cb, ud);
    if (rc != 0)
        tikvc__kop_free(k);
    return rc;
}

int tikvc_raw_get_async(tikvc_client *c, const void *key, size_t key_len, tikvc_cb cb, void *ud)
{
    return start_async(c, &kc_get, tkv_slice_of(key, key_len), tkv_slice_of(NULL, 0), 0, cb, ud);
}

int tikvc_raw_put_async(tikvc_client *c, const void *key, size_t key_len, const void *value,
                        size_t value_len, uint64_t ttl_s, tikvc_cb cb, void *ud)
{
    return start_async(c, &kc_put, tkv_slice_of(key, key_len), tkv_slice_of(value, value_len),
                       ttl_s, cb, ud);
}

int tikvc_raw_delete_async(tikvc_client *c, const void *key, size_t key_len, tikvc_cb cb, void *ud)
{
    return start_async(c, &kc_delete, tkv_slice_of(key, key_len), tkv_slice_of(NULL, 0), 0, cb, ud);
}
