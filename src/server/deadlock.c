/*
 * deadlock.c: the cluster-wide deadlock detector (see server.h): TiKV's Detector and
 * DeadlockService. The role (leader or not, and where the leader is) is refreshed by a
 * thread every refresh_ms and whenever the stream to the leader ends.
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "deadlock.pb-c.h"
#include "server/server.h"
#include "storage/txn/lock_manager.h"

#define DETECT_METHOD  "/deadlock.Deadlock/Detect"
#define ENTRIES_METHOD "/deadlock.Deadlock/GetWaitForEntries"
#define NOT_LEADER     "I'm not the leader of deadlock detector"
/* rpc_call_data marker of a Detect call this side already finished. */
#define CALL_FINISHED ((void *)1)
/* Shortest pause between two refreshes (a leader that keeps refusing is not hammered). */
#define MIN_REFRESH_MS 100

typedef struct srv_deadlock {
    srv_deadlock_opts o;
    txn_wait_graph *graph; /* the detector's graph, used while this store leads */
    rpc_client *client;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
    bool refresh_now;           /* the stream to the leader ended */
    srv_deadlock_leader leader; /* current view */
    rpc_stream *stream;         /* to the remote leader; NULL while local or unknown */
    txn_lock_mgr *lm;           /* learned from the first detect call */
    tkv_series *m_detect, *m_clean_up_wait_for, *m_clean_up, *m_deadlock, *m_dropped;
} srv_deadlock;

/* ---- sending to the leader ------------------------------------------------------------- */

/* Sends one request to the remote leader, or counts it dropped. Under mu. */
static void send_request(srv_deadlock *d, Deadlock__DeadlockRequestType tp, uint64_t txn_ts,
                         uint64_t lock_ts, uint64_t key_hash)
{
    Deadlock__WaitForEntry e = DEADLOCK__WAIT_FOR_ENTRY__INIT;
    e.txn = txn_ts;
    e.wait_for_txn = lock_ts;
    e.key_hash = key_hash;
    Deadlock__DeadlockRequest r = DEADLOCK__DEADLOCK_REQUEST__INIT;
    r.tp = tp;
    r.entry = &e;
    if (d->stream == NULL || rpc_stream_send_msg(d->stream, &r.base) != 0)
        tkv_series_inc(d->m_dropped);
}

/* Returns whether this store runs the detector now; otherwise sends the request (under mu). */
static bool local_or_send(srv_deadlock *d, Deadlock__DeadlockRequestType tp, uint64_t txn_ts,
                          uint64_t lock_ts, uint64_t key_hash, txn_lock_mgr *lm)
{
    pthread_mutex_lock(&d->mu);
    if (lm != NULL)
        d->lm = lm;
    bool local = d->leader.known && d->leader.local;
    if (!local)
        send_request(d, tp, txn_ts, lock_ts, key_hash);
    pthread_mutex_unlock(&d->mu);
    return local;
}

static void det_detect(void *impl, txn_lock_mgr *lm, uint64_t txn_ts, uint64_t lock_ts,
                       uint64_t key_hash)
{
    srv_deadlock *d = impl;
    tkv_series_inc(d->m_detect);
    if (!local_or_send(d, DEADLOCK__DEADLOCK_REQUEST_TYPE__Detect, txn_ts, lock_ts, key_hash, lm))
        return;
    uint64_t dl_hash = 0;
    if (txn_wait_graph_detect(d->graph, txn_ts, lock_ts, key_hash, &dl_hash)) {
        tkv_series_inc(d->m_deadlock);
        txn_lock_mgr_on_deadlock(lm, txn_ts, lock_ts, key_hash, dl_hash);
    }
}

static void det_clean_up_wait_for(void *impl, uint64_t txn_ts, uint64_t lock_ts, uint64_t key_hash)
{
    srv_deadlock *d = impl;
    tkv_series_inc(d->m_clean_up_wait_for);
    if (local_or_send(d, DEADLOCK__DEADLOCK_REQUEST_TYPE__CleanUpWaitFor, txn_ts, lock_ts, key_hash,
                      NULL))
        txn_wait_graph_clean_up_wait_for(d->graph, txn_ts, lock_ts, key_hash);
}

static void det_clean_up(void *impl, uint64_t txn_ts)
{
    srv_deadlock *d = impl;
    tkv_series_inc(d->m_clean_up);
    if (local_or_send(d, DEADLOCK__DEADLOCK_REQUEST_TYPE__CleanUp, txn_ts, 0, 0, NULL))
        txn_wait_graph_clean_up(d->graph, txn_ts);
}

/* ---- the stream to the leader ------------------------------------------------------------ */

static void on_response(rpc_stream *s, tkv_slice msg, void *ud)
{
    (void)s;
    srv_deadlock *d = ud;
    ProtobufCMessage *m;
    if (rpc_msg_unpack(&deadlock__deadlock_response__descriptor, msg, &m) != 0)
        return; /* a detector that answers garbage is ignored: waits time out */
    const Deadlock__DeadlockResponse *r = (const void *)m;
    pthread_mutex_lock(&d->mu);
    txn_lock_mgr *lm = d->lm;
    pthread_mutex_unlock(&d->mu);
    if (r->entry != NULL && lm != NULL) {
        tkv_series_inc(d->m_deadlock);
        txn_lock_mgr_on_deadlock(lm, r->entry->txn, r->entry->wait_for_txn, r->entry->key_hash,
                                 r->deadlock_key_hash);
    }
    rpc_msg_free(m);
}

static void on_stream_done(rpc_stream *s, const rpc_status *st, void *ud)
{
    srv_deadlock *d = ud;
    pthread_mutex_lock(&d->mu);
    bool mine = d->stream == s;
    if (mine) {
        d->stream = NULL;
        d->refresh_now = true;
        pthread_cond_signal(&d->cond);
    }
    pthread_mutex_unlock(&d->mu);
    if (!mine)
        return; /* the refresh thread replaced it and frees it */
    TKV_LOG_INFO("deadlock detector stream ended", TKV_LF_STR("code", rpc_code_name(st->code)),
                 TKV_LF_STR("message", st->message));
    rpc_stream_free(s);
}

/* Applies a new view of the leader: opens or drops the stream, clears the graph when this
 * store stops leading. Returns the stream to free (outside mu), or NULL. */
static rpc_stream *apply_leader(srv_deadlock *d, const srv_deadlock_leader *l)
{
    rpc_stream *old = NULL;
    bool was_local = d->leader.known && d->leader.local;
    bool changed = l->known != d->leader.known || l->local != d->leader.local ||
                   (!l->local && strcmp(l->addr, d->leader.addr) != 0);
    if (changed) {
        if (was_local)
            txn_wait_graph_clear(d->graph); /* TiKV drops its table with the role */
        old = d->stream;
        d->stream = NULL;
        TKV_LOG_INFO("deadlock detector leader changed", TKV_LF_BOOL("known", l->known),
                     TKV_LF_BOOL("local", l->local), TKV_LF_STR("addr", l->local ? "" : l->addr));
    }
    d->leader = *l;
    if (l->known && !l->local && d->stream == NULL) {
        rpc_channel *ch;
        rpc_stream_cbs cbs = {.on_message = on_response, .on_done = on_stream_done, .ud = d};
        if (rpc_client_channel(d->client, l->addr, 0, &ch) != 0 ||
            rpc_stream_open(ch, DETECT_METHOD, 0, &cbs, &d->stream) != 0)
            d->stream = NULL; /* tried again at the next refresh */
    }
    return old;
}

static void *refresh_main(void *arg)
{
    srv_deadlock *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        pthread_mutex_unlock(&d->mu);
        srv_deadlock_leader l;
        memset(&l, 0, sizeof(l));
        d->o.leader(d->o.ud, &l);
        pthread_mutex_lock(&d->mu);
        if (d->stop)
            break;
        rpc_stream *old = apply_leader(d, &l);
        d->refresh_now = false;
        pthread_mutex_unlock(&d->mu);
        rpc_stream_free(old);
        struct timespec ts;
        tkv_clock_mono_deadline(&ts, MIN_REFRESH_MS);
        pthread_mutex_lock(&d->mu);
        /* A short pause always; then the full interval unless the stream ended. */
        while (!d->stop && pthread_cond_timedwait(&d->cond, &d->mu, &ts) == 0)
            ;
        uint64_t rest = d->o.refresh_ms > MIN_REFRESH_MS ? d->o.refresh_ms - MIN_REFRESH_MS : 0;
        tkv_clock_mono_deadline(&ts, rest);
        while (!d->stop && !d->refresh_now && pthread_cond_timedwait(&d->cond, &d->mu, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---- the service (the leader's side) ---------------------------------------------------- */

static bool is_leader(srv_deadlock *d)
{
    pthread_mutex_lock(&d->mu);
    bool local = d->leader.known && d->leader.local;
    pthread_mutex_unlock(&d->mu);
    return local;
}

static void finish_once(rpc_call *call, rpc_code code, const char *msg)
{
    if (rpc_call_data(call) == CALL_FINISHED)
        return;
    rpc_call_set_data(call, CALL_FINISHED);
    rpc_call_finish(call, code, msg);
}

static void detect_open(rpc_call *call, void *ud)
{
    (void)call;
    (void)ud;
}

static void detect_request(rpc_call *call, tkv_slice msg, void *ud)
{
    srv_deadlock *d = ud;
    if (rpc_call_data(call) == CALL_FINISHED)
        return; /* raced with our own finish */
    if (!is_leader(d)) {
        finish_once(call, RPC_FAILED_PRECONDITION, NOT_LEADER);
        return;
    }
    ProtobufCMessage *m;
    if (rpc_msg_unpack(&deadlock__deadlock_request__descriptor, msg, &m) != 0) {
        finish_once(call, RPC_INVALID_ARGUMENT, "DeadlockRequest does not decode");
        return;
    }
    const Deadlock__DeadlockRequest *r = (const void *)m;
    if (r->entry != NULL) {
        const Deadlock__WaitForEntry *e = r->entry;
        switch (r->tp) {
        case DEADLOCK__DEADLOCK_REQUEST_TYPE__Detect: {
            uint64_t dl_hash = 0;
            if (txn_wait_graph_detect(d->graph, e->txn, e->wait_for_txn, e->key_hash, &dl_hash)) {
                Deadlock__WaitForEntry echo = DEADLOCK__WAIT_FOR_ENTRY__INIT;
                echo.txn = e->txn;
                echo.wait_for_txn = e->wait_for_txn;
                echo.key_hash = e->key_hash;
                Deadlock__DeadlockResponse resp = DEADLOCK__DEADLOCK_RESPONSE__INIT;
                resp.entry = &echo;
                resp.deadlock_key_hash = dl_hash;
                TKV_IGNORE(rpc_call_send_msg(call, &resp.base));
            }
            break;
        }
        case DEADLOCK__DEADLOCK_REQUEST_TYPE__CleanUpWaitFor:
            txn_wait_graph_clean_up_wait_for(d->graph, e->txn, e->wait_for_txn, e->key_hash);
            break;
        case DEADLOCK__DEADLOCK_REQUEST_TYPE__CleanUp:
            txn_wait_graph_clean_up(d->graph, e->txn);
            break;
        default:
            break; /* a newer request type: nothing to do */
        }
    }
    rpc_msg_free(m);
}

static void detect_half_close(rpc_call *call, void *ud)
{
    (void)ud;
    finish_once(call, RPC_OK, NULL);
}

static void detect_cancel(rpc_call *call, void *ud)
{
    (void)ud;
    finish_once(call, RPC_CANCELLED, NULL);
}

static void entries_request(rpc_call *call, tkv_slice msg, void *ud)
{
    (void)msg;
    srv_deadlock *d = ud;
    if (!is_leader(d)) {
        rpc_call_finish(call, RPC_FAILED_PRECONDITION, NOT_LEADER);
        return;
    }
    size_t n = txn_wait_graph_edges(d->graph, NULL, 0);
    txn_wait_edge *edges = tkv_calloc(n ? n : 1, sizeof(*edges));
    Deadlock__WaitForEntry *es = tkv_calloc(n ? n : 1, sizeof(*es));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Deadlock__WaitForEntry **ps = tkv_calloc(n ? n : 1, sizeof(*ps));
    if (edges == NULL || es == NULL || ps == NULL) {
        rpc_call_finish(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        n = TKV_MIN(n, txn_wait_graph_edges(d->graph, edges, n));
        uint64_t now = tkv_clock_mono_ms();
        for (size_t i = 0; i < n; i++) {
            deadlock__wait_for_entry__init(&es[i]);
            es[i].txn = edges[i].txn_ts;
            es[i].wait_for_txn = edges[i].lock_ts;
            es[i].key_hash = edges[i].key_hash;
            es[i].wait_time = now - edges[i].since_ms;
            ps[i] = &es[i];
        }
        Deadlock__WaitForEntriesResponse resp = DEADLOCK__WAIT_FOR_ENTRIES_RESPONSE__INIT;
        resp.entries = ps;
        resp.n_entries = n;
        TKV_IGNORE(rpc_call_reply_msg(call, &resp.base));
    }
    tkv_free(edges);
    tkv_free(es);
    tkv_free(ps);
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void det_free(void *impl)
{
    srv_deadlock *d = impl;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    pthread_mutex_lock(&d->mu);
    rpc_stream *s = d->stream;
    d->stream = NULL;
    pthread_mutex_unlock(&d->mu);
    rpc_stream_free(s);
    rpc_client_free(d->client);
    txn_wait_graph_free(d->graph);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->mu);
    tkv_free(d);
}

static const txn_detector_ops cluster_ops = {
    .detect = det_detect,
    .clean_up_wait_for = det_clean_up_wait_for,
    .clean_up = det_clean_up,
    .free = det_free,
};

int srv_deadlock_new(rpc_server *rs, const srv_deadlock_opts *o, struct txn_detector **out)
{
    if (rs == NULL || o == NULL || o->leader == NULL || out == NULL)
        return -EINVAL;
    srv_deadlock *d = tkv_calloc(1, sizeof(*d));
    txn_detector *det = tkv_calloc(1, sizeof(*det));
    if (d == NULL || det == NULL) {
        tkv_free(d);
        tkv_free(det);
        return -ENOMEM;
    }
    d->o = *o;
    if (d->o.refresh_ms == 0)
        d->o.refresh_ms = 1000;
    rpc_client_opts co;
    rpc_client_opts_init(&co);
    co.cq_threads = 1;
    co.tls = o->tls;
    int rc = txn_wait_graph_new(o->graph_ttl_ms ? o->graph_ttl_ms : TXN_WAIT_GRAPH_TTL_MS, NULL,
                                NULL, &d->graph);
    if (rc == 0)
        rc = rpc_client_new(&co, &d->client);
    d->o.tls = NULL; /* read by rpc_client_new only: the caller's struct may go */
    if (rc == 0) {
        rpc_handler h = {.type = RPC_BIDI_STREAMING,
                         .on_open = detect_open,
                         .on_request = detect_request,
                         .on_half_close = detect_half_close,
                         .on_cancel = detect_cancel,
                         .ud = d};
        rc = rpc_server_add_method(rs, DETECT_METHOD, &h);
    }
    if (rc == 0) {
        rpc_handler h = {.type = RPC_UNARY, .on_request = entries_request, .ud = d};
        rc = rpc_server_add_method(rs, ENTRIES_METHOD, &h);
    }
    tkv_metric *tasks = tkv_metric_counter("tikv_lock_manager_task_counter",
                                           "Total number of tasks received", "type");
    d->m_detect = tkv_metric_with(tasks, "detect");
    d->m_clean_up_wait_for = tkv_metric_with(tasks, "clean_up_wait_for");
    d->m_clean_up = tkv_metric_with(tasks, "clean_up");
    tkv_metric *errs =
        tkv_metric_counter("tikv_lock_manager_error_counter", "Total number of errors", "type");
    d->m_dropped = tkv_metric_with(errs, "dropped");
    d->m_deadlock =
        tkv_metric_with(tkv_metric_counter("tikv_lock_manager_detector_deadlocks_total",
                                           "Deadlocks the detector found (tikv-c)", NULL));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&d->mu, NULL);
    if (rc == 0)
        rc = -pthread_create(&d->thread, NULL, refresh_main, d);
    if (rc != 0) {
        /* Methods already registered keep a pointer to d: only a failed start-up gets here,
         * and the server is then freed without serving. */
        rpc_client_free(d->client);
        txn_wait_graph_free(d->graph);
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->mu);
        tkv_free(d);
        tkv_free(det);
        return rc;
    }
    det->ops = &cluster_ops;
    det->impl = d;
    *out = det;
    return 0;
}
