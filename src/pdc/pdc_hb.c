/*
 * pdc_hb.c: the /pdpb.PD/RegionHeartbeat stream of a store.
 *
 * tikv-server sends one RegionHeartbeatRequest per region leader periodically; PD answers on
 * the same stream, at any time, with operators. The stream is opened by the background
 * thread once pdc_region_heartbeat_start was called, and reopened (to the current leader,
 * with backoff) whenever it ends. Sends while it is down fail at once with TKV_EUNAVAILABLE:
 * the raftstore sends the next heartbeat on its next tick anyway.
 */
#include "base/clock.h"
#include "base/log.h"
#include "pdc/pdc_int.h"

#define HB_BACKOFF_MIN_MS 50
#define HB_BACKOFF_MAX_MS 2000
/* Heartbeats queued on the stream beyond this are refused (PD is not keeping up). */
#define HB_MAX_QUEUED 4096

void pdc__hb_init(pdc_client *c)
{
    TKV_ASSERT(pthread_mutex_init(&c->hb.mu, NULL) == 0);
    c->hb.broken = true;
    c->hb.backoff_ms = HB_BACKOFF_MIN_MS;
}

void pdc__hb_deinit(pdc_client *c)
{
    pthread_mutex_destroy(&c->hb.mu);
}

static void on_hb_message(rpc_stream *s, tkv_slice msg, void *ud)
{
    pdc_client *c = ud;
    ProtobufCMessage *m = NULL;
    if (rpc_msg_unpack(&pdpb__region_heartbeat_response__descriptor, msg, &m) != 0) {
        TKV_LOG_WARN("PD region heartbeat answer does not decode");
        return;
    }
    pthread_mutex_lock(&c->hb.mu);
    bool current = s == c->hb.stream;
    if (current)
        c->hb.backoff_ms = HB_BACKOFF_MIN_MS;
    pthread_mutex_unlock(&c->hb.mu);
    if (current)
        c->hb.cb(c->hb.ud, (const Pdpb__RegionHeartbeatResponse *)m);
    rpc_msg_free(m);
}

static void on_hb_done(rpc_stream *s, const rpc_status *st, void *ud)
{
    pdc_client *c = ud;
    pthread_mutex_lock(&c->hb.mu);
    if (s != c->hb.stream) {
        pthread_mutex_unlock(&c->hb.mu);
        return;
    }
    c->hb.broken = true;
    c->hb.retry_at_ms = tkv_clock_mono_ms() + (uint64_t)c->hb.backoff_ms;
    c->hb.backoff_ms = TKV_MIN(c->hb.backoff_ms * 2, HB_BACKOFF_MAX_MS);
    pthread_mutex_unlock(&c->hb.mu);
    TKV_LOG_INFO("PD region heartbeat stream ended", TKV_LF_STR("code", rpc_code_name(st->code)),
                 TKV_LF_STR("message", st->message));
    pdc__wake(c, st->code != RPC_CANCELLED);
}

void pdc__hb_tick(pdc_client *c, uint64_t now, uint64_t *next_wake)
{
    pdc__hb *h = &c->hb;
    uint64_t gen;
    rpc_channel *ch = pdc__leader(c, &gen);
    pthread_mutex_lock(&h->mu);
    if (!h->started) {
        pthread_mutex_unlock(&h->mu);
        return;
    }
    rpc_stream *cancel = NULL, *old = NULL;
    if (h->stream != NULL && !h->broken && h->stream_gen != gen)
        cancel = h->stream;
    if (h->broken && h->stream != NULL) {
        old = h->stream;
        h->stream = NULL;
    }
    bool open = h->broken && h->stream == NULL && now >= h->retry_at_ms;
    if (h->broken && !open)
        *next_wake = TKV_MIN(*next_wake, TKV_MAX(h->retry_at_ms, now + 1));
    pthread_mutex_unlock(&h->mu);
    if (cancel != NULL)
        rpc_stream_cancel(cancel);
    rpc_stream_free(old);
    if (!open || ch == NULL)
        return;
    rpc_stream_cbs cbs = {.on_message = on_hb_message, .on_done = on_hb_done, .ud = c};
    rpc_stream *s = NULL;
    int rc = rpc_stream_open(ch, "/pdpb.PD/RegionHeartbeat", 0, &cbs, &s);
    pthread_mutex_lock(&h->mu);
    if (rc == 0) {
        h->stream = s;
        h->broken = false;
        h->stream_gen = gen;
    } else {
        h->retry_at_ms = now + (uint64_t)h->backoff_ms;
        *next_wake = TKV_MIN(*next_wake, h->retry_at_ms);
    }
    pthread_mutex_unlock(&h->mu);
}

void pdc__hb_stop(pdc_client *c)
{
    pthread_mutex_lock(&c->hb.mu);
    rpc_stream *s = c->hb.stream;
    c->hb.stream = NULL;
    c->hb.broken = true;
    c->hb.started = false;
    pthread_mutex_unlock(&c->hb.mu);
    rpc_stream_free(s);
}

int pdc_region_heartbeat_start(pdc_client *c, pdc_heartbeat_cb cb, void *ud)
{
    if (c == NULL || cb == NULL)
        return pdc__fail(-EINVAL, "pdc_region_heartbeat_start: NULL argument");
    pthread_mutex_lock(&c->hb.mu);
    if (c->hb.started) {
        pthread_mutex_unlock(&c->hb.mu);
        return pdc__fail(-EINVAL, "the region heartbeat stream is already started");
    }
    c->hb.started = true;
    c->hb.cb = cb;
    c->hb.ud = ud;
    pthread_mutex_unlock(&c->hb.mu);
    pdc__wake(c, false);
    return 0;
}

int pdc_region_heartbeat_send(pdc_client *c, const Pdpb__RegionHeartbeatRequest *hb)
{
    if (c == NULL || hb == NULL)
        return pdc__fail(-EINVAL, "pdc_region_heartbeat_send: NULL argument");
    Pdpb__RequestHeader h = PDPB__REQUEST_HEADER__INIT;
    h.cluster_id = c->cluster_id;
    h.sender_id = atomic_load(&c->sender_id);
    Pdpb__RegionHeartbeatRequest req = *hb;
    req.header = &h;
    pthread_mutex_lock(&c->hb.mu);
    int rc;
    if (!c->hb.started)
        rc = pdc__fail(-EINVAL, "the region heartbeat stream is not started");
    else if (c->hb.stream == NULL || c->hb.broken)
        rc = pdc__fail(TKV_EUNAVAILABLE, "the region heartbeat stream to PD is reconnecting");
    else if (rpc_stream_pending_sends(c->hb.stream) >= HB_MAX_QUEUED)
        rc = pdc__fail(TKV_EBUSY, "%d region heartbeats already wait to go out to PD",
                       HB_MAX_QUEUED);
    else if ((rc = rpc_stream_send_msg(c->hb.stream, &req.base)) != 0)
        rc = pdc__fail(rc == TKV_ECLOSED ? TKV_EUNAVAILABLE : rc,
                       "the region heartbeat stream to PD ended");
    pthread_mutex_unlock(&c->hb.mu);
    return rc;
}
