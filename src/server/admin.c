/*
 * admin.c: the service's own unary methods: SplitRegion (through the replication layer's
 * split hook) and GetStoreSafeTS.
 *
 * SplitRegion follows TiKV's service: the deprecated split_key alone when set, else
 * split_keys; raw keys are used as given when is_raw_kv, other keys are memcomparable-encoded
 * (transactional regions have encoded boundaries); keys are sorted; every failure is a
 * region_error (a message when it is not a region error of its own), and a success answers
 * the regions, with left/right also set when there are exactly two.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/codec.h"
#include "server/srv_int.h"

/* split_key, left and right are deprecated in kvproto but still read and set by TiKV for
 * older clients; so do we. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

typedef struct split_call {
    const srv_method *sm;
    rpc_call *call;
    uint64_t start_ns;
} split_call;

/* Answers with a region error carrying only @msg. */
static void split_reply_message(const srv_method *sm, rpc_call *call, uint64_t start_ns,
                                const char *msg)
{
    Errorpb__Error err = ERRORPB__ERROR__INIT;
    err.message = (char *)msg;
    Kvrpcpb__SplitRegionResponse resp = KVRPCPB__SPLIT_REGION_RESPONSE__INIT;
    resp.region_error = &err;
    srv__reply(sm, call, &resp.base, start_ns);
}

static void split_done(void *ud, int rc, Errorpb__Error *rerr, const Metapb__Region *const *regions,
                       size_t n)
{
    split_call *c = ud;
    char msg[160];
    if (rerr == NULL && rc != 0) {
        snprintf(msg, sizeof(msg), "failed to split: %s", tkv_strerror(rc));
        split_reply_message(c->sm, c->call, c->start_ns, msg);
    } else if (rerr == NULL && n < 2) {
        snprintf(msg, sizeof(msg), "Internal Error: invalid response: %zu regions", n);
        split_reply_message(c->sm, c->call, c->start_ns, msg);
    } else {
        Kvrpcpb__SplitRegionResponse resp = KVRPCPB__SPLIT_REGION_RESPONSE__INIT;
        resp.region_error = rerr;
        if (rerr == NULL) {
            resp.regions = (Metapb__Region **)regions;
            resp.n_regions = n;
            if (n == 2) {
                resp.left = (Metapb__Region *)regions[0];
                resp.right = (Metapb__Region *)regions[1];
            }
        }
        srv__reply(c->sm, c->call, &resp.base, c->start_ns);
    }
    stor_rerr_free(rerr);
    tkv_free(c);
}

static int slice_cmp(const void *a, const void *b)
{
    return tkv_slice_cmp(*(const tkv_slice *)a, *(const tkv_slice *)b);
}

/* Builds the sorted split keys of @req in storage form into @keys (backed by @buf). */
static int split_keys(const Kvrpcpb__SplitRegionRequest *req, tkv_buf *buf, tkv_slice **keys,
                      size_t *n)
{
    const ProtobufCBinaryData *src = req->split_keys;
    size_t count = req->n_split_keys;
    if (req->split_key.len != 0) {
        src = &req->split_key;
        count = 1;
    }
    size_t *offs = tkv_calloc(count ? count : 1, sizeof(*offs));
    tkv_slice *out = tkv_calloc(count ? count : 1, sizeof(*out));
    int rc = offs == NULL || out == NULL ? -ENOMEM : 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        offs[i] = buf->len;
        tkv_slice k = tkv_slice_of(src[i].data, src[i].len);
        rc = req->is_raw_kv ? tkv_buf_append(buf, k.data, k.len) : tkv_codec_encode_bytes(buf, k);
    }
    if (rc == 0) {
        for (size_t i = 0; i < count; i++) {
            size_t end = i + 1 < count ? offs[i + 1] : buf->len;
            out[i] = tkv_slice_of(buf->data + offs[i], end - offs[i]);
        }
        qsort(out, count, sizeof(*out), slice_cmp);
        *keys = out;
        *n = count;
    } else {
        tkv_free(out);
    }
    tkv_free(offs);
    return rc;
}

static void split_on_request(rpc_call *call, tkv_slice msg, void *ud)
{
    const srv_method *sm = ud;
    srv_service *svc = sm->svc;
    uint64_t start = tkv_clock_mono_ns();
    ProtobufCMessage *m = srv__accept(sm, call, msg, &kvrpcpb__split_region_request__descriptor);
    if (m == NULL)
        return;
    char reason[192];
    if (!srv__authorized(sm, call, m, reason, sizeof(reason))) {
        srv__deny(sm, call, reason);
        rpc_msg_free(m);
        return;
    }
    srv__audit_admin(sm, call);
    int rc;
    const Kvrpcpb__SplitRegionRequest *req = (const Kvrpcpb__SplitRegionRequest *)m;
    pthread_mutex_lock(&svc->mu);
    srv_admin_hooks hooks = svc->admin;
    pthread_mutex_unlock(&svc->mu);

    tkv_buf buf;
    tkv_buf_init(&buf);
    tkv_slice *keys = NULL;
    size_t n = 0;
    split_call *c = NULL;
    if (hooks.split_region == NULL) {
        split_reply_message(sm, call, start,
                            "SplitRegion is not available: the replication layer has not started");
    } else if (req->split_key.len == 0 && req->n_split_keys == 0) {
        split_reply_message(sm, call, start, "SplitRegion: no split keys");
    } else if (split_keys(req, &buf, &keys, &n) != 0 || (c = tkv_malloc(sizeof(*c))) == NULL) {
        srv__refuse(sm, call, -ENOMEM);
    } else {
        *c = (split_call){.sm = sm, .call = call, .start_ns = start};
        stor_ctx ctx;
        stor_ctx_from_pb(&ctx, req->context);
        rc = hooks.split_region(hooks.impl, &ctx, keys, n, req->is_raw_kv, split_done, c);
        if (rc != 0) {
            tkv_free(c);
            char err[160];
            snprintf(err, sizeof(err), "failed to split: %s", tkv_strerror(rc));
            split_reply_message(sm, call, start, err);
        }
    }
    tkv_free(keys);
    tkv_buf_deinit(&buf);
    rpc_msg_free(m);
}

static void safe_ts_on_request(rpc_call *call, tkv_slice msg, void *ud)
{
    const srv_method *sm = ud;
    srv_service *svc = sm->svc;
    uint64_t start = tkv_clock_mono_ns();
    ProtobufCMessage *m = srv__accept(sm, call, msg, &kvrpcpb__store_safe_tsrequest__descriptor);
    if (m == NULL)
        return;
    const Kvrpcpb__StoreSafeTSRequest *req = (const Kvrpcpb__StoreSafeTSRequest *)m;
    pthread_mutex_lock(&svc->mu);
    srv_admin_hooks hooks = svc->admin;
    pthread_mutex_unlock(&svc->mu);
    Kvrpcpb__StoreSafeTSResponse resp = KVRPCPB__STORE_SAFE_TSRESPONSE__INIT;
    if (hooks.store_safe_ts != NULL) {
        tkv_slice lo = tkv_slice_of(NULL, 0), hi = tkv_slice_of(NULL, 0);
        if (req->key_range != NULL) {
            lo = tkv_slice_of(req->key_range->start_key.data, req->key_range->start_key.len);
            hi = tkv_slice_of(req->key_range->end_key.data, req->key_range->end_key.len);
        }
        resp.safe_ts = hooks.store_safe_ts(hooks.impl, lo, hi);
    }
    srv__reply(sm, call, &resp.base, start);
    rpc_msg_free(m);
}

int srv__admin_register(srv_service *svc)
{
    rpc_handler h = {.type = RPC_UNARY, .on_request = split_on_request, .ud = svc->m_split};
    int rc = rpc_server_add_method(svc->rs, "/tikvpb.Tikv/SplitRegion", &h);
    if (rc != 0)
        return rc;
    h.on_request = safe_ts_on_request;
    h.ud = svc->m_safe_ts;
    return rpc_server_add_method(svc->rs, "/tikvpb.Tikv/GetStoreSafeTS", &h);
}
