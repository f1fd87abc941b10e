/*
 * pdc_tso.c: timestamps over one long-lived /pdpb.PD/Tso stream, with request batching.
 *
 * Callers queue requests. At most one TsoRequest is on the wire at a time; everything queued
 * while it is out goes in the next one, as one request with count N (PD's Go client batches
 * the same way). PD answers with the largest timestamp of the batch: request i of N gets
 * logical - (N - 1 - i), each shifted by suffix_bits.
 *
 * The stream's callbacks run on gRPC completion-queue threads; they never block. The
 * background thread opens the stream, replaces it after it ends (with backoff) or when the
 * leader changes, cancels a batch that PD does not answer in time, and fails queued
 * requests whose deadline passed.
 */
#include <inttypes.h>
#include <stdio.h>

#include "base/clock.h"
#include "base/log.h"
#include "pdc/pdc_int.h"

#define TSO_BACKOFF_MIN_MS 20
#define TSO_BACKOFF_MAX_MS 1000

void pdc__tso_init(pdc_client *c)
{
    pdc__tso *t = &c->tso;
    TKV_ASSERT(pthread_mutex_init(&t->mu, NULL) == 0);
    t->pending_tail = &t->pending;
    t->broken = true;
    t->backoff_ms = TSO_BACKOFF_MIN_MS;
}

void pdc__tso_deinit(pdc_client *c)
{
    pthread_mutex_destroy(&c->tso.mu);
}

/* Runs the callbacks of a detached list of requests with @rc and frees them. */
static void fail_list(pdc__tso_req *r, int rc)
{
    while (r != NULL) {
        pdc__tso_req *next = r->next;
        r->cb(r->ud, rc, 0);
        tkv_free(r);
        r = next;
    }
}

/* Sends the next batch when the stream is up and nothing is in flight. Under t->mu. */
static void send_batch_locked(pdc_client *c)
{
    pdc__tso *t = &c->tso;
    if (t->stream == NULL || t->broken || t->inflight != NULL || t->pending == NULL)
        return;
    /* The batch takes the head always, then up to tso_max_batch requests in all. */
    size_t n = 1;
    pdc__tso_req *head = t->pending, *last = head, *r = head->next;
    while (r != NULL && n < c->opts.tso_max_batch) {
        last = r;
        r = r->next;
        n++;
    }
    Pdpb__RequestHeader h = PDPB__REQUEST_HEADER__INIT;
    h.cluster_id = c->cluster_id;
    h.sender_id = atomic_load(&c->sender_id);
    Pdpb__TsoRequest req = PDPB__TSO_REQUEST__INIT;
    req.header = &h;
    req.count = (uint32_t)n;
    req.dc_location = "global";
    if (rpc_stream_send_msg(t->stream, &req.base) != 0) {
        /* The stream is ending; its on_done marks it broken and the requests stay queued. */
        return;
    }
    t->pending = r;
    if (r == NULL)
        t->pending_tail = &t->pending;
    last->next = NULL;
    t->n_pending -= n;
    t->inflight = head;
    t->n_inflight = n;
    t->inflight_since_ms = tkv_clock_mono_ms();
}

static void on_tso_message(rpc_stream *s, tkv_slice msg, void *ud)
{
    pdc_client *c = ud;
    pdc__tso *t = &c->tso;
    ProtobufCMessage *m = NULL;
    int urc = rpc_msg_unpack(&pdpb__tso_response__descriptor, msg, &m);
    Pdpb__TsoResponse *r = (Pdpb__TsoResponse *)m;

    pthread_mutex_lock(&t->mu);
    if (s != t->stream || t->inflight == NULL) {
        pthread_mutex_unlock(&t->mu);
        rpc_msg_free(m);
        return;
    }
    pdc__tso_req *batch = t->inflight;
    size_t n = t->n_inflight;
    t->inflight = NULL;
    t->n_inflight = 0;
    const char *why = NULL;
    uint64_t first = 0, largest = 0, step = 1;
    if (urc != 0) {
        why = "a TsoResponse that does not decode";
    } else if (r->header != NULL && r->header->error != NULL &&
               r->header->error->type != PDPB__ERROR_TYPE__OK) {
        why = "an error in the TsoResponse header";
    } else if (r->count != n || r->timestamp == NULL) {
        why = "a TsoResponse with the wrong count";
    } else {
        uint32_t sb = r->timestamp->suffix_bits;
        int64_t logical = r->timestamp->logical;
        int64_t physical = r->timestamp->physical;
        step = sb < PDC_PHYSICAL_SHIFT ? UINT64_C(1) << sb : 0;
        uint64_t span = (uint64_t)(n - 1) * step;
        if (step == 0 || physical <= 0 || logical < 0 || (uint64_t)logical < span ||
            (uint64_t)logical > PDC_LOGICAL_MASK) {
            why = "a TsoResponse with an impossible timestamp";
        } else {
            largest = pdc_ts_compose(physical, logical);
            first = largest - span;
            if (first <= t->last_ts)
                why = "a timestamp that is not newer than the last one";
            else
                t->last_ts = largest;
        }
    }
    if (why == NULL)
        t->backoff_ms = TSO_BACKOFF_MIN_MS;
    send_batch_locked(c);
    pthread_mutex_unlock(&t->mu);
    rpc_msg_free(m);

    if (why != NULL) {
        TKV_LOG_WARN("PD TSO answer rejected", TKV_LF_STR("cause", why));
        pdc__fail(TKV_ERPC, "PD sent %s", why);
        fail_list(batch, TKV_ERPC);
        return;
    }
    uint64_t ts = first;
    while (batch != NULL) {
        pdc__tso_req *next = batch->next;
        batch->cb(batch->ud, 0, ts);
        tkv_free(batch);
        ts += step;
        batch = next;
    }
}

static void on_tso_done(rpc_stream *s, const rpc_status *st, void *ud)
{
    pdc_client *c = ud;
    pdc__tso *t = &c->tso;
    pthread_mutex_lock(&t->mu);
    if (s != t->stream) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    t->broken = true;
    /* The lost batch goes back to the front of the queue: asking again only skips the
     * timestamps PD may have handed out for it, which is harmless. Deadlines still apply. */
    if (t->inflight != NULL) {
        pdc__tso_req *last = t->inflight;
        while (last->next != NULL)
            last = last->next;
        last->next = t->pending;
        if (t->pending == NULL)
            t->pending_tail = &last->next;
        t->pending = t->inflight;
        t->n_pending += t->n_inflight;
        t->inflight = NULL;
        t->n_inflight = 0;
    }
    t->retry_at_ms = tkv_clock_mono_ms() + (uint64_t)t->backoff_ms;
    t->backoff_ms = TKV_MIN(t->backoff_ms * 2, TSO_BACKOFF_MAX_MS);
    pthread_mutex_unlock(&t->mu);
    TKV_LOG_DEBUG("PD Tso stream ended", TKV_LF_STR("code", rpc_code_name(st->code)));
    pdc__wake(c, st->code != RPC_CANCELLED);
}

void pdc__tso_tick(pdc_client *c, uint64_t now, uint64_t *next_wake)
{
    pdc__tso *t = &c->tso;
    uint64_t gen;
    rpc_channel *ch = pdc__leader(c, &gen);
    pdc__tso_req *expired = NULL, **etail = &expired;
    rpc_stream *old = NULL;

    pthread_mutex_lock(&t->mu);
    /* Fail queued requests whose deadline passed. */
    for (pdc__tso_req **pp = &t->pending; *pp != NULL;) {
        pdc__tso_req *r = *pp;
        if (r->deadline_ms <= now) {
            *pp = r->next;
            r->next = NULL;
            *etail = r;
            etail = &r->next;
            t->n_pending--;
        } else {
            *next_wake = TKV_MIN(*next_wake, r->deadline_ms);
            pp = &r->next;
        }
    }
    t->pending_tail = &t->pending;
    while (*t->pending_tail != NULL)
        t->pending_tail = &(*t->pending_tail)->next;
    /* A batch PD does not answer in time, or a stream to a former leader, is cancelled; its
     * on_done fails the batch and marks the stream broken. */
    rpc_stream *cancel = NULL;
    if (t->stream != NULL && !t->broken &&
        ((t->inflight != NULL && now - t->inflight_since_ms >= (uint64_t)c->opts.timeout_ms) ||
         t->stream_gen != gen))
        cancel = t->stream;
    if (t->inflight != NULL)
        *next_wake = TKV_MIN(*next_wake, t->inflight_since_ms + (uint64_t)c->opts.timeout_ms);
    if (t->broken && t->stream != NULL) {
        old = t->stream;
        t->stream = NULL;
    }
    bool open = t->broken && t->stream == NULL && now >= t->retry_at_ms;
    if (t->broken && !open)
        *next_wake = TKV_MIN(*next_wake, TKV_MAX(t->retry_at_ms, now + 1));
    pthread_mutex_unlock(&t->mu);

    if (cancel != NULL)
        rpc_stream_cancel(cancel);
    /* Freeing waits for the old stream's callbacks, which take t->mu: not held here. */
    rpc_stream_free(old);
    if (open && ch != NULL) {
        rpc_stream_cbs cbs = {.on_message = on_tso_message, .on_done = on_tso_done, .ud = c};
        rpc_stream *s = NULL;
        if (rpc_stream_open(ch, "/pdpb.PD/Tso", 0, &cbs, &s) == 0) {
            pthread_mutex_lock(&t->mu);
            t->stream = s;
            t->broken = false;
            t->stream_gen = gen;
            send_batch_locked(c);
            pthread_mutex_unlock(&t->mu);
        } else {
            pthread_mutex_lock(&t->mu);
            t->retry_at_ms = now + (uint64_t)t->backoff_ms;
            pthread_mutex_unlock(&t->mu);
            *next_wake = TKV_MIN(*next_wake, now + (uint64_t)TSO_BACKOFF_MIN_MS);
        }
    }
    if (expired != NULL) {
        pdc__fail(-ETIMEDOUT, "PD Tso: no timestamp within the deadline");
        fail_list(expired, -ETIMEDOUT);
    }
}

void pdc__tso_stop(pdc_client *c)
{
    pdc__tso *t = &c->tso;
    pthread_mutex_lock(&t->mu);
    rpc_stream *s = t->stream;
    t->stream = NULL;
    t->broken = true;
    pthread_mutex_unlock(&t->mu);
    rpc_stream_free(s);
    pthread_mutex_lock(&t->mu);
    pdc__tso_req *a = t->inflight, *b = t->pending;
    t->inflight = NULL;
    t->pending = NULL;
    t->pending_tail = &t->pending;
    t->n_pending = t->n_inflight = 0;
    pthread_mutex_unlock(&t->mu);
    if (a != NULL || b != NULL)
        pdc__fail(TKV_ECLOSED, "PD client closed");
    fail_list(a, TKV_ECLOSED);
    fail_list(b, TKV_ECLOSED);
}

int pdc_tso_async(pdc_client *c, int64_t timeout_ms, pdc_tso_cb cb, void *ud)
{
    if (c == NULL || cb == NULL)
        return pdc__fail(-EINVAL, "pdc_tso_async: NULL argument");
    pdc__tso_req *r = tkv_calloc(1, sizeof(*r));
    if (r == NULL)
        return pdc__fail(-ENOMEM, "out of memory");
    r->cb = cb;
    r->ud = ud;
    r->deadline_ms =
        tkv_clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : c->opts.timeout_ms);
    pdc__tso *t = &c->tso;
    pthread_mutex_lock(&c->mu);
    bool stopping = c->stop;
    pthread_mutex_unlock(&c->mu);
    if (stopping) {
        tkv_free(r);
        return pdc__fail(TKV_ECLOSED, "PD client closed");
    }
    pthread_mutex_lock(&t->mu);
    *t->pending_tail = r;
    t->pending_tail = &r->next;
    t->n_pending++;
    send_batch_locked(c);
    bool down = t->stream == NULL || t->broken;
    pthread_mutex_unlock(&t->mu);
    /* While the stream is down the background thread must watch this deadline. */
    if (down)
        pdc__wake(c, false);
    return 0;
}

typedef struct tso_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    uint64_t ts;
    char errmsg[TKV_ERRMSG_LEN];
} tso_wait;

static void on_tso_sync(void *ud, int rc, uint64_t ts)
{
    tso_wait *w = ud;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->ts = ts;
    if (rc != 0)
        snprintf(w->errmsg, sizeof(w->errmsg), "%s", pdc_errmsg(NULL));
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int pdc_tso(pdc_client *c, int64_t timeout_ms, uint64_t *ts)
{
    if (ts == NULL)
        return pdc__fail(-EINVAL, "pdc_tso: NULL argument");
    tso_wait w;
    memset(&w, 0, sizeof(w));
    TKV_ASSERT(pthread_mutex_init(&w.mu, NULL) == 0);
    TKV_ASSERT(pthread_cond_init(&w.cv, NULL) == 0);
    int rc = pdc_tso_async(c, timeout_ms, on_tso_sync, &w);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
        if (rc == 0)
            *ts = w.ts;
        else
            pdc__fail(rc, "%s", w.errmsg);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}
