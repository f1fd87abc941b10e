/*
 * pd_grpc_stream.c: the two bidirectional methods of pdpb.PD.
 *
 * Tso: one response per request, in order, with count echoed and the batch's largest
 * timestamp (suffix_bits 0). A request for another cluster ends the stream with
 * FAILED_PRECONDITION; a count of 0 or >= 2^18 ends it with UNKNOWN (PD's "tso count should
 * be positive"); a TSO that cannot raise its persisted bound ends it with UNAVAILABLE.
 *
 * RegionHeartbeat: each heartbeat updates the region (pd_cluster) and binds the stream to
 * the leader's store, so that operator commands for that store's regions go out on it.
 * Invalid or stale heartbeats get a header error on the stream (the stream stays open); a
 * leader on an unknown store ends the stream with UNKNOWN "invalid store ID %d, not found";
 * before bootstrap PD answers NOT_BOOTSTRAPPED and ends the stream.
 */
#include <inttypes.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "pd/pd_int.h"
#include "rpc/rpc.h"

/* ---- Tso ------------------------------------------------------------------------------------ */

static void tso_open(rpc_call *call, void *ud)
{
    (void)call;
    (void)ud;
}

static void tso_request(rpc_call *call, tkv_slice msg, void *ud)
{
    pd_server *s = ud;
    uint64_t t0 = tkv_clock_mono_ns();
    ProtobufCMessage *m;
    if (rpc_msg_unpack(&pdpb__tso_request__descriptor, msg, &m) != 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "TsoRequest does not decode");
        return;
    }
    const Pdpb__TsoRequest *req = (const void *)m;
    uint32_t count = req->count;
    bool ok = pd__check_header(s, req->header, call);
    rpc_msg_free(m);
    if (!ok)
        return;
    int64_t physical, logical;
    int rc = pd__tso_get(s->tso, count, &physical, &logical);
    if (rc == -EINVAL) {
        rpc_call_finish(call, RPC_UNKNOWN, "tso count should be positive and below 262144");
        return;
    }
    if (rc != 0) {
        rpc_call_finish(call, RPC_UNAVAILABLE, "generate timestamp failed");
        return;
    }
    pd_hdr b;
    Pdpb__Timestamp ts = PDPB__TIMESTAMP__INIT;
    ts.physical = physical;
    ts.logical = logical;
    Pdpb__TsoResponse resp = PDPB__TSO_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, NULL);
    resp.count = count;
    resp.timestamp = &ts;
    TKV_IGNORE(rpc_call_send_msg(call, &resp.base));
    if (s->tso_hist != NULL)
        tkv_series_observe(s->tso_hist, (double)(tkv_clock_mono_ns() - t0) / 1e9);
}

static void tso_half_close(rpc_call *call, void *ud)
{
    (void)ud;
    rpc_call_finish(call, RPC_OK, NULL);
}

static void tso_cancel(rpc_call *call, void *ud)
{
    (void)ud;
    rpc_call_finish(call, RPC_CANCELLED, NULL);
}

/* ---- RegionHeartbeat --------------------------------------------------------------------------
 */

static void count_heartbeat(uint64_t store_id, const char *status)
{
    tkv_metric *m = tkv_metric_counter("pd_scheduler_region_heartbeat",
                                       "Counter of region heartbeat.", "store,type,status");
    char store[24];
    snprintf(store, sizeof(store), "%" PRIu64, store_id);
    tkv_series *s = tkv_metric_with(m, store, "report", status);
    if (s != NULL)
        tkv_series_inc(s);
}

static void hb_open(rpc_call *call, void *ud)
{
    pd_server *s = ud;
    pd_hb_stream *st;
    if (pd__hb_open(&s->hb, call, &st) != 0) {
        rpc_call_finish(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    rpc_call_set_data(call, st);
}

static void hb_request(rpc_call *call, tkv_slice msg, void *ud)
{
    pd_server *s = ud;
    pd_hb_stream *st = rpc_call_data(call);
    ProtobufCMessage *m;
    if (rpc_msg_unpack(&pdpb__region_heartbeat_request__descriptor, msg, &m) != 0) {
        pd__hb_close(&s->hb, st, RPC_INVALID_ARGUMENT, "RegionHeartbeatRequest does not decode");
        return;
    }
    const Pdpb__RegionHeartbeatRequest *req = (const void *)m;
    uint64_t got = req->header != NULL ? req->header->cluster_id : 0;
    if (got != s->cluster_id) {
        char text[128];
        snprintf(text, sizeof(text), "mismatch cluster id, need %" PRIu64 " but got %" PRIu64,
                 s->cluster_id, got);
        rpc_msg_free(m);
        pd__hb_close(&s->hb, st, RPC_FAILED_PRECONDITION, text);
        return;
    }
    uint64_t store_id = req->leader != NULL ? req->leader->store_id : 0;
    /* Bind first: the operator dispatched by this heartbeat goes out on this stream. */
    pd__hb_bind(&s->hb, st, store_id);
    pd_result res;
    uint64_t t0 = tkv_clock_mono_ns();
    int rc = pd__cluster_region_heartbeat(s->cluster, req, &res);
    rpc_msg_free(m);
    if (s->hb_hist != NULL)
        tkv_series_observe(s->hb_hist, (double)(tkv_clock_mono_ns() - t0) / 1e9);
    if (rc == TKV_ENOTFOUND) {
        count_heartbeat(store_id, "err");
        pd__hb_close(&s->hb, st, RPC_UNKNOWN, res.msg);
        return;
    }
    pd_hdr b;
    Pdpb__RegionHeartbeatResponse resp = PDPB__REGION_HEARTBEAT_RESPONSE__INIT;
    if (rc != 0) {
        char text[TKV_ERRMSG_LEN];
        snprintf(text, sizeof(text), "pd internal error: %s", tkv_strerror(rc));
        resp.header = pd__hdr_err(s, &b, PDPB__ERROR_TYPE__UNKNOWN, text);
        pd__hb_send_on(&s->hb, st, &resp);
        count_heartbeat(store_id, "err");
        return;
    }
    if (res.type == PDPB__ERROR_TYPE__NOT_BOOTSTRAPPED) {
        resp.header = pd__hdr(s, &b, &res);
        pd__hb_send_on(&s->hb, st, &resp);
        pd__hb_close(&s->hb, st, RPC_OK, NULL);
        return;
    }
    if (res.type != PDPB__ERROR_TYPE__OK) {
        resp.header = pd__hdr(s, &b, &res);
        pd__hb_send_on(&s->hb, st, &resp);
        count_heartbeat(store_id, "err");
        return;
    }
    count_heartbeat(store_id, "ok");
}

static void hb_half_close(rpc_call *call, void *ud)
{
    pd_server *s = ud;
    pd__hb_close(&s->hb, rpc_call_data(call), RPC_OK, NULL);
}

static void hb_cancel(rpc_call *call, void *ud)
{
    pd_server *s = ud;
    pd__hb_close(&s->hb, rpc_call_data(call), RPC_CANCELLED, NULL);
}

int pd__grpc_register_streams(pd_server *s)
{
    /* Series are looked up once: the metrics registry outlives the server. */
    s->tso_hist = tkv_metric_with(tkv_metric_histogram(
        "pd_server_handle_tso_duration_seconds",
        "Bucketed histogram of processing time (s) of handled tso requests.", NULL, NULL, 0));
    s->hb_hist = tkv_metric_with(tkv_metric_histogram(
        "pd_scheduler_handle_region_heartbeat_duration_seconds",
        "Bucketed histogram of processing time (s) of handled region heartbeat requests.", NULL,
        NULL, 0));
    rpc_handler tso = {.type = RPC_BIDI_STREAMING,
                       .on_open = tso_open,
                       .on_request = tso_request,
                       .on_half_close = tso_half_close,
                       .on_cancel = tso_cancel,
                       .ud = s};
    int rc = rpc_server_add_method(s->rpc, "/pdpb.PD/Tso", &tso);
    if (rc != 0)
        return rc;
    rpc_handler hb = {.type = RPC_BIDI_STREAMING,
                      .on_open = hb_open,
                      .on_request = hb_request,
                      .on_half_close = hb_half_close,
                      .on_cancel = hb_cancel,
                      .ud = s};
    return rpc_server_add_method(s->rpc, "/pdpb.PD/RegionHeartbeat", &hb);
}
