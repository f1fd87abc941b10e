/*
 * rpc_server.c: the gRPC server: accept slots, method dispatch, server calls, the built-in
 * health service and graceful shutdown.
 *
 * Every completion queue keeps `accept_slots` grpc_server_request_call requests outstanding;
 * each slot is an rpc_call waiting to become a call. When one fires, a fresh slot replaces
 * it and the call is dispatched by its path. A call lives while anything references it:
 * the RECV_CLOSE_ON_SERVER batch (which reports cancellation), a running receive, a running
 * send batch, the handler's ownership, and the dispatch itself; the last reference unrefs
 * the gRPC call and frees ours. All batches of a call start under its mutex (gRPC core
 * requires start_batch to be serialized per call).
 */
#include <inttypes.h>
#include <stdio.h>

#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "base/clock.h"
#include "base/log.h"
#include "health.pb-c.h"
#include "rpc/rpc_int.h"

/* How close to its deadline a cancelled call counts as timed out (see rpc_call_cancel_code). */
#define RPC_DEADLINE_SKEW_MS 100

#define HEALTH_CHECK_PATH "/grpc.health.v1.Health/Check"

typedef struct rpc__method {
    char *path;
    rpc_handler h;
} rpc__method;

typedef struct health_entry {
    char *service;
    rpc_health status;
} health_entry;

enum { SRV_NEW = 0, SRV_RUNNING = 1, SRV_STOPPED = 2 };

struct rpc_server {
    char *addr;
    rpc_server_opts opts;       /* pointers in it are not kept */
    rpc__server_tls tls;        /* credentials, identity and allow-lists */
    grpc_resource_quota *quota; /* memory quota, or NULL */
    rpc__gate *gate;            /* connection gate (rpc_gate.c), or NULL when off */
    grpc_server *server;
    rpc__cq_pool pool;

    rpc__method *methods;
    size_t n_methods, cap_methods;
    uint32_t *index; /* open addressing: method number + 1, 0 = empty */
    size_t index_cap;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;
    int port;
    rpc__tag t_shutdown;
    bool shutdown_done;
    long live_calls; /* dispatched calls not yet freed */
    long slots;      /* accept slots outstanding */
    health_entry *health;
    size_t n_health;

    char errmsg[TKV_ERRMSG_LEN];
};

struct rpc_call {
    rpc__tag t_new;
    rpc__tag t_recv;
    rpc__tag t_close;
    rpc__tag t_send;
    rpc_server *srv;
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *recv_bb;
    int close_cancelled;
    const rpc__method *method;
    char *path;
    char cn[128];         /* the verified client certificate's common name ("" without TLS) */
    uint64_t deadline_ms; /* monotonic; UINT64_MAX when none */

    pthread_mutex_t mu;
    atomic_int refs;
    rpc__sendq sq;
    bool owned;           /* the handler received the call */
    atomic_bool finished; /* the call's end was queued (by the handler or by us) */
    atomic_bool cancelled;
    void *data;
};

/* ---- method table -------------------------------------------------------------------- */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int build_index(rpc_server *s)
{
    size_t cap = 16;
    while (cap < s->n_methods * 2)
        cap *= 2;
    uint32_t *idx = tkv_calloc(cap, sizeof(*idx));
    if (idx == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_methods; i++) {
        size_t pos = hash_bytes(s->methods[i].path, strlen(s->methods[i].path)) & (cap - 1);
        while (idx[pos] != 0)
            pos = (pos + 1) & (cap - 1);
        idx[pos] = (uint32_t)(i + 1);
    }
    tkv_free(s->index);
    s->index = idx;
    s->index_cap = cap;
    return 0;
}

static const rpc__method *lookup_method(const rpc_server *s, grpc_slice path)
{
    const char *p = (const char *)GRPC_SLICE_START_PTR(path);
    size_t n = GRPC_SLICE_LENGTH(path);
    size_t pos = hash_bytes(p, n) & (s->index_cap - 1);
    while (s->index[pos] != 0) {
        const rpc__method *m = &s->methods[s->index[pos] - 1];
        if (strlen(m->path) == n && memcmp(m->path, p, n) == 0)
            return m;
        pos = (pos + 1) & (s->index_cap - 1);
    }
    return NULL;
}

static const rpc__method *find_method_str(const rpc_server *s, const char *path)
{
    for (size_t i = 0; i < s->n_methods; i++)
        if (strcmp(s->methods[i].path, path) == 0)
            return &s->methods[i];
    return NULL;
}

/* ---- health -------------------------------------------------------------------------- */

/* Sets @service's status; with @only_if_absent an existing entry is kept. Under s->mu. */
static int health_put(rpc_server *s, const char *service, size_t len, rpc_health status,
                      bool only_if_absent)
{
    for (size_t i = 0; i < s->n_health; i++) {
        if (strlen(s->health[i].service) == len &&
            memcmp(s->health[i].service, service, len) == 0) {
            if (!only_if_absent)
                s->health[i].status = status;
            return 0;
        }
    }
    health_entry *h = tkv_realloc(s->health, (s->n_health + 1) * sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    s->health = h;
    char *name = tkv_malloc(len + 1);
    if (name == NULL)
        return -ENOMEM;
    memcpy(name, service, len);
    name[len] = '\0';
    s->health[s->n_health].service = name;
    s->health[s->n_health].status = status;
    s->n_health++;
    return 0;
}

int rpc_server_set_health(rpc_server *s, const char *service, rpc_health status)
{
    if (s == NULL || service == NULL || status < RPC_HEALTH_UNKNOWN ||
        status > RPC_HEALTH_NOT_SERVING)
        return -EINVAL;
    pthread_mutex_lock(&s->mu);
    int rc = health_put(s, service, strlen(service), status, false);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void health_check(rpc_call *call, tkv_slice req, void *ud)
{
    rpc_server *s = ud;
    ProtobufCMessage *m;
    if (rpc_msg_unpack(&grpc__health__v1__health_check_request__descriptor, req, &m) != 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "undecodable HealthCheckRequest");
        return;
    }
    const char *service = ((Grpc__Health__V1__HealthCheckRequest *)m)->service;
    int status = -1;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_health; i++)
        if (strcmp(s->health[i].service, service) == 0)
            status = (int)s->health[i].status;
    pthread_mutex_unlock(&s->mu);
    rpc_msg_free(m);
    if (status < 0) {
        rpc_call_finish(call, RPC_NOT_FOUND, "unknown service");
        return;
    }
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    TKV_IGNORE(rpc_call_reply_msg(call, &resp.base));
}

/* ---- calls --------------------------------------------------------------------------- */

static void on_new_call(rpc__tag *t, bool ok);
static void on_shutdown(rpc__tag *t, bool ok);
static void on_recv(rpc__tag *t, bool ok);
static void on_close(rpc__tag *t, bool ok);
static void on_send(rpc__tag *t, bool ok);

static void call_destroy(rpc_call *c)
{
    rpc_server *s = c->srv;
    if (c->call != NULL)
        grpc_call_unref(c->call);
    if (c->recv_bb != NULL)
        grpc_byte_buffer_destroy(c->recv_bb);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    rpc__sendq_deinit(&c->sq);
    pthread_mutex_destroy(&c->mu);
    bool was_call = c->call != NULL;
    tkv_free(c->path);
    tkv_free(c);
    /* Last: once live_calls reaches 0 the server may be freed. */
    pthread_mutex_lock(&s->mu);
    if (was_call)
        s->live_calls--;
    else
        s->slots--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void call_unref(rpc_call *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        call_destroy(c);
}

static void call_ref(rpc_call *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* Posts a fresh accept slot on @cq. Thread: server start or a completion-queue thread. */
static void post_slot(rpc_server *s, grpc_completion_queue *cq)
{
    rpc_call *c = tkv_xcalloc(1, sizeof(*c));
    c->srv = s;
    c->cq = cq;
    c->t_new.fn = on_new_call;
    c->t_recv.fn = on_recv;
    c->t_close.fn = on_close;
    c->t_send.fn = on_send;
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    TKV_ASSERT(pthread_mutex_init(&c->mu, NULL) == 0);
    rpc__sendq_init(&c->sq, true);
    atomic_init(&c->refs, 1);
    atomic_init(&c->finished, false);
    atomic_init(&c->cancelled, false);
    c->deadline_ms = UINT64_MAX;
    pthread_mutex_lock(&s->mu);
    s->slots++;
    pthread_mutex_unlock(&s->mu);
    grpc_call_error err =
        grpc_server_request_call(s->server, &c->call, &c->details, &c->md, cq, cq, &c->t_new);
    if (err != GRPC_CALL_OK) {
        TKV_LOG_ERROR("grpc request_call refused",
                      TKV_LF_STR("error", grpc_call_error_to_string(err)));
        call_unref(c);
    }
}

/* Queues the end of the call with @code; the caller holds c->mu. Returns false when the end
 * was already queued. */
static bool end_locked(rpc_call *c, rpc_code code, const char *message)
{
    if (atomic_load(&c->finished))
        return false;
    atomic_store(&c->finished, true);
    if (atomic_load(&c->cancelled))
        return true;
    rpc__sendq_end(&c->sq, (grpc_status_code)code, message);
    if (rpc__sendq_kick(&c->sq, c->call, &c->t_send))
        call_ref(c);
    return true;
}

/* Ends a call the handler does not own (unknown method, refused peer, bad request). */
static void end_by_server(rpc_call *c, rpc_code code, const char *message)
{
    pthread_mutex_lock(&c->mu);
    TKV_IGNORE(end_locked(c, code, message));
    pthread_mutex_unlock(&c->mu);
}

static void post_recv(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    if (!atomic_load(&c->finished) && !atomic_load(&c->cancelled)) {
        grpc_op op;
        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &c->recv_bb;
        call_ref(c);
        grpc_call_error err = grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL);
        if (err != GRPC_CALL_OK) {
            TKV_LOG_ERROR("grpc receive refused",
                          TKV_LF_STR("error", grpc_call_error_to_string(err)));
            atomic_fetch_sub(&c->refs, 1); /* the dispatch or receive reference remains */
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* A stream whose client does not read: with this many response bytes queued and not yet
 * taken by the transport, the stream is ended with RESOURCE_EXHAUSTED instead of reading (and
 * answering) more of its requests, so memory per stream stays bounded however fast the client
 * sends. (Not reading alone would not do: gRPC core keeps buffering what the client sends.)
 * A client that sends many requests before reading is fine up to this much. */
#define STREAM_MAX_QUEUED_BYTES (4u << 20)

/* Posts the next receive of a streaming call, or ends a call whose client is not reading. */
static void next_recv(rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    bool stuck = c->sq.bytes >= STREAM_MAX_QUEUED_BYTES && !c->sq.broken;
    pthread_mutex_unlock(&c->mu);
    if (!stuck) {
        post_recv(c);
        return;
    }
    TKV_LOG_WARN("stream ended: its client does not read the responses",
                 TKV_LF_STR("method", c->path),
                 TKV_LF_U64("queued_bytes", STREAM_MAX_QUEUED_BYTES));
    grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "too many responses queued: the client is not reading", NULL);
}

/* Decides whether the call's peer may call: the gate, then (with mutual TLS) the client
 * certificate: verified by the CA, with an allowed name. Returns RPC_OK, or the refusal code
 * with @reason set; c->cn receives the certificate's common name. */
static rpc_code check_peer(rpc_call *c, const char *peer, char *reason, size_t cap)
{
    rpc_server *s = c->srv;
    if (s->opts.peer_gate != NULL && !s->opts.peer_gate(peer, s->opts.hook_ud)) {
        snprintf(reason, cap, "peer temporarily refused after repeated failures");
        return RPC_PERMISSION_DENIED;
    }
    sec_tls_peer id;
    rpc_code code = rpc__server_tls_check(&s->tls, c->call, &id);
    snprintf(c->cn, sizeof(c->cn), "%s", id.cn);
    if (code != RPC_OK)
        snprintf(reason, cap, "%s", id.reason);
    else if (s->tls.mtls && s->opts.method_gate != NULL &&
             !s->opts.method_gate(c->path, c->cn, reason, cap, s->opts.hook_ud))
        code = RPC_PERMISSION_DENIED;
    return code;
}

/* Runs the gate and allow-list for a new call; a refused call is ended here, reported to the
 * rejection hook, and false returned. Marks the call's connection served for the connection
 * gate (only while the gate has unserved connections: one atomic load otherwise). */
static bool admit_peer(rpc_call *c)
{
    rpc_server *s = c->srv;
    bool mark = s->gate != NULL && rpc__gate_wants_peer(s->gate);
    if (s->opts.peer_gate == NULL && !s->tls.mtls && !mark)
        return true;
    char *peer = grpc_call_get_peer(c->call);
    if (mark && peer != NULL)
        rpc__gate_served(s->gate, peer);
    if (s->opts.peer_gate == NULL && !s->tls.mtls) {
        gpr_free(peer);
        return true;
    }
    char reason[RPC_STATUS_MSG_LEN];
    reason[0] = '\0';
    rpc_code code = check_peer(c, peer != NULL ? peer : "", reason, sizeof(reason));
    if (code != RPC_OK) {
        if (s->opts.on_peer_rejected != NULL) {
            rpc_peer_rejection r = {.peer = peer != NULL ? peer : "",
                                    .cert_cn = c->cn,
                                    .method = c->path,
                                    .code = code,
                                    .reason = reason};
            s->opts.on_peer_rejected(&r, s->opts.hook_ud);
        }
        end_by_server(c, code, reason);
    }
    gpr_free(peer);
    return code == RPC_OK;
}

static void set_deadline(rpc_call *c)
{
    gpr_timespec d = gpr_convert_clock_type(c->details.deadline, GPR_CLOCK_MONOTONIC);
    if (gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_MONOTONIC)) >= 0)
        return;
    int64_t left = gpr_time_to_millis(gpr_time_sub(d, gpr_now(GPR_CLOCK_MONOTONIC)));
    int64_t now = (int64_t)tkv_clock_mono_ms();
    c->deadline_ms = left + now > 0 ? (uint64_t)(left + now) : 0;
}

static void dispatch(rpc_call *c)
{
    rpc_server *s = c->srv;
    /* The slot's reference now counts as the dispatch reference. */
    size_t plen = GRPC_SLICE_LENGTH(c->details.method);
    c->path = tkv_xmalloc(plen + 1);
    memcpy(c->path, GRPC_SLICE_START_PTR(c->details.method), plen);
    c->path[plen] = '\0';
    c->method = lookup_method(s, c->details.method);
    set_deadline(c);

    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    call_ref(c);
    pthread_mutex_lock(&c->mu);
    grpc_call_error err = grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL);
    pthread_mutex_unlock(&c->mu);
    if (err != GRPC_CALL_OK) {
        TKV_LOG_ERROR("grpc close watch refused",
                      TKV_LF_STR("error", grpc_call_error_to_string(err)));
        atomic_fetch_sub(&c->refs, 1);
    }

    if (c->method == NULL) {
        if (s->gate != NULL && rpc__gate_wants_peer(s->gate)) {
            char *peer = grpc_call_get_peer(c->call);
            if (peer != NULL)
                rpc__gate_served(s->gate, peer);
            gpr_free(peer);
        }
        char msg[160];
        snprintf(msg, sizeof(msg), "unknown method %.120s", c->path);
        end_by_server(c, RPC_UNIMPLEMENTED, msg);
    } else if (!admit_peer(c)) {
        /* refused and ended by admit_peer */
    } else if (c->method->h.type == RPC_UNARY || c->method->h.type == RPC_SERVER_STREAMING) {
        post_recv(c);
    } else {
        c->owned = true;
        call_ref(c); /* the handler's */
        c->method->h.on_open(c, c->method->h.ud);
        post_recv(c);
    }
    call_unref(c);
}

static void on_new_call(rpc__tag *t, bool ok)
{
    rpc_call *c = RPC__CONTAINER(t, rpc_call, t_new);
    rpc_server *s = c->srv;
    if (!ok) {
        /* The server is shutting down: the slot never became a call. */
        c->call = NULL;
        call_unref(c);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->slots--;
    s->live_calls++;
    pthread_mutex_unlock(&s->mu);
    post_slot(s, c->cq);
    dispatch(c);
}

static void on_recv(rpc__tag *t, bool ok)
{
    rpc_call *c = RPC__CONTAINER(t, rpc_call, t_recv);
    const rpc_handler *h = &c->method->h;
    grpc_byte_buffer *bb = c->recv_bb;
    c->recv_bb = NULL;
    bool streaming_in = h->type == RPC_CLIENT_STREAMING || h->type == RPC_BIDI_STREAMING;

    if (!ok || bb == NULL || atomic_load(&c->cancelled)) {
        if (bb != NULL)
            grpc_byte_buffer_destroy(bb);
        if (ok && bb == NULL && !atomic_load(&c->cancelled)) {
            if (!streaming_in)
                end_by_server(c, RPC_INTERNAL, "the client sent no request message");
            else if (!atomic_load(&c->finished))
                h->on_half_close(c, h->ud);
        }
        call_unref(c);
        return;
    }

    grpc_slice msg;
    int rc = rpc__bb_read(bb, &msg);
    grpc_byte_buffer_destroy(bb);
    if (rc != 0) {
        if (!c->owned)
            end_by_server(c, RPC_INTERNAL, "undecodable (compressed) request message");
        else
            grpc_call_cancel_with_status(c->call, GRPC_STATUS_INTERNAL,
                                         "undecodable (compressed) request message", NULL);
        call_unref(c);
        return;
    }
    if (!streaming_in) {
        c->owned = true;
        call_ref(c); /* the handler's */
        h->on_request(c, rpc__slice(msg), h->ud);
    } else if (!atomic_load(&c->finished)) {
        h->on_request(c, rpc__slice(msg), h->ud);
        next_recv(c);
    }
    grpc_slice_unref(msg);
    call_unref(c);
}

static void on_close(rpc__tag *t, bool ok)
{
    (void)ok;
    rpc_call *c = RPC__CONTAINER(t, rpc_call, t_close);
    if (c->close_cancelled) {
        pthread_mutex_lock(&c->mu);
        atomic_store(&c->cancelled, true);
        rpc__sendq_break(&c->sq);
        pthread_mutex_unlock(&c->mu);
        const rpc_handler *h = c->method != NULL ? &c->method->h : NULL;
        if (h != NULL && c->owned && !atomic_load(&c->finished) && h->on_cancel != NULL)
            h->on_cancel(c, h->ud);
    }
    call_unref(c);
}

static void on_send(rpc__tag *t, bool ok)
{
    rpc_call *c = RPC__CONTAINER(t, rpc_call, t_send);
    pthread_mutex_lock(&c->mu);
    rpc__sendq_done(&c->sq, ok);
    if (rpc__sendq_kick(&c->sq, c->call, &c->t_send))
        call_ref(c);
    pthread_mutex_unlock(&c->mu);
    call_unref(c);
}

/* ---- handler API --------------------------------------------------------------------- */

/* Queues @bb and, with @end, the OK status behind it. */
static int call_queue(rpc_call *c, grpc_byte_buffer *bb, bool end)
{
    pthread_mutex_lock(&c->mu);
    if (atomic_load(&c->finished) || atomic_load(&c->cancelled) || c->sq.broken) {
        pthread_mutex_unlock(&c->mu);
        grpc_byte_buffer_destroy(bb);
        if (end)
            rpc_call_finish(c, RPC_CANCELLED, NULL);
        return TKV_ECLOSED;
    }
    int rc = rpc__sendq_push(&c->sq, bb);
    if (rc != 0) {
        pthread_mutex_unlock(&c->mu);
        if (end)
            rpc_call_finish(c, RPC_INTERNAL, "out of memory queueing the response");
        return rc;
    }
    if (end) {
        TKV_ASSERT(c->owned);
        TKV_IGNORE(end_locked(c, RPC_OK, NULL));
    } else if (rpc__sendq_kick(&c->sq, c->call, &c->t_send)) {
        call_ref(c);
    }
    pthread_mutex_unlock(&c->mu);
    if (end)
        call_unref(c); /* the handler's ownership ends */
    return 0;
}

int rpc_call_send(rpc_call *call, tkv_slice msg)
{
    return call_queue(call, rpc__bb_from_slice(msg), false);
}

int rpc_call_send_msg(rpc_call *call, const ProtobufCMessage *msg)
{
    return call_queue(call, rpc__bb_from_msg(msg), false);
}

int rpc_call_reply(rpc_call *call, tkv_slice msg)
{
    return call_queue(call, rpc__bb_from_slice(msg), true);
}

int rpc_call_reply_msg(rpc_call *call, const ProtobufCMessage *msg)
{
    return call_queue(call, rpc__bb_from_msg(msg), true);
}

void rpc_call_finish(rpc_call *call, rpc_code code, const char *message)
{
    pthread_mutex_lock(&call->mu);
    TKV_ASSERT(call->owned);
    bool first = end_locked(call, code, message);
    /* A cancelled call is marked finished by end_locked as well; finishing twice is a bug. */
    pthread_mutex_unlock(&call->mu);
    TKV_ASSERT(first);
    call_unref(call);
}

bool rpc_call_is_cancelled(const rpc_call *call)
{
    return atomic_load(&call->cancelled);
}

rpc_code rpc_call_cancel_code(const rpc_call *call)
{
    if (!atomic_load(&call->cancelled))
        return RPC_OK;
    /* The client's deadline fires on the client's clock, which started before the call
     * reached us; the gap is the call's delivery delay, tens of milliseconds on a loaded
     * machine. A cancel that close to the deadline is the deadline. */
    if (call->deadline_ms != UINT64_MAX &&
        tkv_clock_mono_ms() + RPC_DEADLINE_SKEW_MS >= call->deadline_ms)
        return RPC_DEADLINE_EXCEEDED;
    return RPC_CANCELLED;
}

int64_t rpc_call_remaining_ms(const rpc_call *call)
{
    if (call->deadline_ms == UINT64_MAX)
        return INT64_MAX;
    return (int64_t)call->deadline_ms - (int64_t)tkv_clock_mono_ms();
}

const char *rpc_call_method(const rpc_call *call)
{
    return call->path;
}

const char *rpc_call_peer_cn(const rpc_call *call)
{
    return call->cn;
}

void rpc_call_peer(const rpc_call *call, char *buf, size_t cap)
{
    char *peer = grpc_call_get_peer(call->call);
    snprintf(buf, cap, "%s", peer != NULL ? peer : "");
    gpr_free(peer);
}

bool rpc_call_metadata(const rpc_call *call, const char *key, char *buf, size_t cap)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < call->md.count; i++) {
        const grpc_metadata *m = &call->md.metadata[i];
        if (GRPC_SLICE_LENGTH(m->key) != klen ||
            memcmp(GRPC_SLICE_START_PTR(m->key), key, klen) != 0)
            continue;
        size_t n = TKV_MIN(GRPC_SLICE_LENGTH(m->value), cap - 1);
        memcpy(buf, GRPC_SLICE_START_PTR(m->value), n);
        buf[n] = '\0';
        return true;
    }
    return false;
}

size_t rpc_call_pending_sends(rpc_call *call)
{
    pthread_mutex_lock(&call->mu);
    size_t n = call->sq.len + (call->sq.in_flight ? 1 : 0);
    pthread_mutex_unlock(&call->mu);
    return n;
}

void *rpc_call_alloc(rpc_call *call, size_t size)
{
    if (size == 0)
        return NULL;
    return grpc_call_arena_alloc(call->call, size);
}

static void *arena_alloc(void *data, size_t size)
{
    return grpc_call_arena_alloc(data, size ? size : 1);
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p; /* the arena goes with the call */
}

int rpc_call_unpack(rpc_call *call, const ProtobufCMessageDescriptor *desc, tkv_slice bytes,
                    ProtobufCMessage **out)
{
    if (call == NULL || desc == NULL || out == NULL)
        return -EINVAL;
    ProtobufCAllocator a = {arena_alloc, arena_free, call->call};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a, bytes.len, bytes.data);
    if (m == NULL)
        return TKV_ECORRUPT;
    *out = m;
    return 0;
}

void rpc_call_set_data(rpc_call *call, void *data)
{
    call->data = data;
}

void *rpc_call_data(const rpc_call *call)
{
    return call->data;
}

/* ---- server lifecycle ---------------------------------------------------------------- */

void rpc_server_opts_init(rpc_server_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->addr = "127.0.0.1:20160";
    o->cq_threads = 2;
    o->max_recv_msg_bytes = -1;
    o->max_send_msg_bytes = -1;
    o->keepalive_time_ms = 10000;
    o->keepalive_timeout_ms = 3000;
    o->min_recv_ping_interval_ms = 1000;
    o->accept_slots = 16;
}

static void server_destroy_fields(rpc_server *s)
{
    for (size_t i = 0; i < s->n_methods; i++)
        tkv_free(s->methods[i].path);
    tkv_free(s->methods);
    tkv_free(s->index);
    for (size_t i = 0; i < s->n_health; i++)
        tkv_free(s->health[i].service);
    tkv_free(s->health);
    rpc__server_tls_deinit(&s->tls);
    rpc__gate_free(s->gate);
    if (s->quota != NULL)
        grpc_resource_quota_unref(s->quota);
    tkv_free(s->addr);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    tkv_free(s);
}

int rpc_server_new(const rpc_server_opts *o, rpc_server **out)
{
    if (o == NULL || out == NULL || o->addr == NULL || o->cq_threads < 1 || o->accept_slots < 1)
        return -EINVAL;
    rpc_server *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    TKV_ASSERT(pthread_mutex_init(&s->mu, NULL) == 0);
    TKV_ASSERT(pthread_cond_init(&s->cv, NULL) == 0);
    s->opts = *o;
    s->opts.addr = NULL;
    s->opts.tls = NULL;
    s->opts.cert_allowed_cn = NULL;
    s->opts.cert_allowed_san = NULL;
    s->state = SRV_NEW;
    s->t_shutdown.fn = on_shutdown;
    int rc = (s->addr = tkv_strdup(o->addr)) == NULL ? -ENOMEM : 0;
    if (rc == 0)
        rc = health_put(s, "", 0, RPC_HEALTH_SERVING, false);
    bool lists = (o->cert_allowed_cn != NULL && o->cert_allowed_cn[0] != NULL) ||
                 (o->cert_allowed_san != NULL && o->cert_allowed_san[0] != NULL);
    if (rc == 0 && lists && (!rpc__tls_enabled(o->tls) || o->tls->ca_path == NULL)) {
        TKV_LOG_ERROR("cert-allowed-cn and cert-allowed-san need mutual TLS (ca-path, "
                      "cert-path, key-path)");
        rc = TKV_ECONFIG;
    }
    if (rc != 0) {
        server_destroy_fields(s);
        return rc;
    }
    rpc_init();
    rc = rpc__server_tls_init(&s->tls, o->tls, o->cert_allowed_cn, o->cert_allowed_san, s->errmsg,
                              sizeof(s->errmsg));
    if (rc != 0) {
        TKV_LOG_ERROR("rpc server credentials rejected", TKV_LF_STR("cause", s->errmsg));
        server_destroy_fields(s);
        rpc_shutdown();
        return rc;
    }
    if (o->memory_quota_bytes > 0) {
        s->quota = grpc_resource_quota_create("tikv-c-rpc-server");
        grpc_resource_quota_resize(s->quota, (size_t)o->memory_quota_bytes);
    }
    *out = s;
    return 0;
}

int rpc_server_add_method(rpc_server *s, const char *path, const rpc_handler *h)
{
    if (s == NULL || path == NULL || h == NULL || s->state != SRV_NEW || path[0] != '/' ||
        h->on_request == NULL)
        return -EINVAL;
    const char *slash = strrchr(path, '/');
    if (slash == path || slash[1] == '\0')
        return -EINVAL;
    bool streaming_in = h->type == RPC_CLIENT_STREAMING || h->type == RPC_BIDI_STREAMING;
    if (h->type < RPC_UNARY || h->type > RPC_BIDI_STREAMING ||
        (streaming_in && (h->on_open == NULL || h->on_half_close == NULL)))
        return -EINVAL;
    if (find_method_str(s, path) != NULL)
        return TKV_EEXIST;
    if (s->n_methods == s->cap_methods) {
        size_t cap = s->cap_methods ? s->cap_methods * 2 : 16;
        rpc__method *m = tkv_realloc(s->methods, cap * sizeof(*m));
        if (m == NULL)
            return -ENOMEM;
        s->methods = m;
        s->cap_methods = cap;
    }
    char *copy = tkv_strdup(path);
    if (copy == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&s->mu);
    int rc = health_put(s, path + 1, (size_t)(slash - path - 1), RPC_HEALTH_SERVING, true);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        tkv_free(copy);
        return rc;
    }
    s->methods[s->n_methods].path = copy;
    s->methods[s->n_methods].h = *h;
    s->n_methods++;
    return 0;
}

static void on_shutdown(rpc__tag *t, bool ok)
{
    (void)ok;
    rpc_server *s = RPC__CONTAINER(t, rpc_server, t_shutdown);
    pthread_mutex_lock(&s->mu);
    s->shutdown_done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static grpc_server *create_grpc_server(const rpc_server *s)
{
    rpc__args a;
    rpc__args_init(&a);
    rpc__args_common(&a, s->opts.max_recv_msg_bytes, s->opts.max_send_msg_bytes,
                     s->opts.keepalive_time_ms, s->opts.keepalive_timeout_ms);
    /* Official clients ping every 10 s on idle streams: accept any number of pings. */
    rpc__args_int(&a, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    rpc__args_int(&a, GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    rpc__args_int(&a, GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                  s->opts.min_recv_ping_interval_ms);
    /* The connection gate reads established connections from channelz (gRPC's default is
     * on; said here because rpc_gate.c depends on it). */
    rpc__args_int(&a, GRPC_ARG_ENABLE_CHANNELZ, 1);
    /* A port already in use must fail, not be shared. */
    rpc__args_int(&a, GRPC_ARG_ALLOW_REUSEPORT, 0);
    /* Hardening (rpc_server_opts): each limit only when set. */
    const rpc_server_opts *o = &s->opts;
    if (o->max_concurrent_streams > 0)
        rpc__args_int(&a, GRPC_ARG_MAX_CONCURRENT_STREAMS, o->max_concurrent_streams);
    if (o->max_metadata_bytes > 0)
        rpc__args_int(&a, GRPC_ARG_MAX_METADATA_SIZE, o->max_metadata_bytes);
    if (o->handshake_timeout_ms > 0)
        rpc__args_int(&a, GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, o->handshake_timeout_ms);
    if (o->max_connection_idle_ms > 0)
        rpc__args_int(&a, GRPC_ARG_MAX_CONNECTION_IDLE_MS, o->max_connection_idle_ms);
    if (o->max_connection_age_ms > 0) {
        rpc__args_int(&a, GRPC_ARG_MAX_CONNECTION_AGE_MS, o->max_connection_age_ms);
        rpc__args_int(&a, GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                      o->max_connection_age_grace_ms > 0 ? o->max_connection_age_grace_ms
                                                         : o->max_connection_age_ms / 10);
    }
    if (s->quota != NULL)
        rpc__args_ptr(&a, GRPC_ARG_RESOURCE_QUOTA, s->quota, grpc_resource_quota_arg_vtable());
    return grpc_server_create(&a.args, NULL);
}

/* Starts the connection gate on the bound port when a limit, TLS or a peer gate asks for it
 * (before grpc_server_start, so no connection is accepted ungated). */
static int gate_start(rpc_server *s)
{
    const rpc_server_opts *o = &s->opts;
    bool tls = s->tls.id != NULL;
    if (o->max_connections <= 0 && o->max_connections_per_addr <= 0 && !tls && o->peer_gate == NULL)
        return 0;
    rpc__gate_opts go;
    rpc__gate_opts_init(&go);
    go.max_connections = TKV_MAX(o->max_connections, 0);
    go.max_connections_per_addr = TKV_MAX(o->max_connections_per_addr, 0);
    go.handshake_timeout_ms = o->handshake_timeout_ms;
    go.count_failures = tls && o->on_peer_rejected != NULL;
    go.use_channelz = true;
    go.peer_gate = o->peer_gate;
    go.on_peer_rejected = o->on_peer_rejected;
    go.hook_ud = o->hook_ud;
    int rc = rpc__gate_new(&go, &s->gate);
    if (rc == 0)
        rc = rpc__gate_listen(s->gate, s->port);
    return rc;
}

int rpc_server_start(rpc_server *s)
{
    if (s == NULL || s->state != SRV_NEW)
        return -EINVAL;
    if (find_method_str(s, HEALTH_CHECK_PATH) == NULL) {
        rpc_handler hh = {.type = RPC_UNARY, .on_request = health_check, .ud = s};
        int rc = rpc_server_add_method(s, HEALTH_CHECK_PATH, &hh);
        if (rc != 0)
            return rc;
    }
    int rc = build_index(s);
    if (rc != 0)
        return rc;
    rc = rpc__cq_pool_init(&s->pool, s->opts.cq_threads);
    if (rc != 0)
        return rc;
    s->server = create_grpc_server(s);
    for (int i = 0; i < s->pool.n; i++)
        grpc_server_register_completion_queue(s->server, s->pool.cqs[i], NULL);
    s->port = grpc_server_add_http2_port(s->server, s->addr, s->tls.creds);
    if (s->port <= 0) {
        snprintf(s->errmsg, sizeof(s->errmsg), "cannot listen on %s", s->addr);
        rc = TKV_ECONFIG;
    } else {
        rc = gate_start(s);
        if (rc != 0)
            snprintf(s->errmsg, sizeof(s->errmsg), "connection gate: %s", tkv_strerror(rc));
        if (rc == 0 && (rc = rpc__cq_pool_start(&s->pool, "grpc-server-")) != 0)
            snprintf(s->errmsg, sizeof(s->errmsg), "start threads: %s", tkv_strerror(rc));
    }
    if (rc != 0) {
        TKV_LOG_ERROR("rpc server start failed", TKV_LF_STR("cause", s->errmsg));
        rpc__gate_free(s->gate);
        s->gate = NULL;
        grpc_server_destroy(s->server);
        s->server = NULL;
        rpc__cq_pool_deinit(&s->pool);
        s->port = 0;
        return rc;
    }
    grpc_server_start(s->server);
    s->state = SRV_RUNNING;
    for (int i = 0; i < s->pool.n; i++)
        for (int j = 0; j < s->opts.accept_slots; j++)
            post_slot(s, s->pool.cqs[i]);
    TKV_LOG_INFO("rpc server listening", TKV_LF_STR("addr", s->addr), TKV_LF_I64("port", s->port),
                 TKV_LF_BOOL("tls", s->tls.id != NULL), TKV_LF_BOOL("mutual_tls", s->tls.mtls),
                 TKV_LF_I64("cq_threads", s->pool.n),
                 TKV_LF_I64("max_connections", s->opts.max_connections),
                 TKV_LF_I64("max_connections_per_addr", s->opts.max_connections_per_addr));
    return 0;
}

int rpc_server_port(const rpc_server *s)
{
    return s != NULL && s->state == SRV_RUNNING ? s->port : 0;
}

/* Waits under s->mu until *@flag is true or *@counter is 0 (whichever is given), or until
 * @deadline_ms passes (monotonic; UINT64_MAX: none). Returns false on timeout. */
static bool wait_locked(rpc_server *s, const bool *flag, const long *counter, uint64_t deadline_ms)
{
    for (;;) {
        if ((flag != NULL && *flag) || (counter != NULL && *counter == 0))
            return true;
        if (!rpc__cond_wait_until(&s->cv, &s->mu, deadline_ms))
            return false;
    }
}

void rpc_server_shutdown(rpc_server *s, int64_t grace_ms)
{
    if (s == NULL || s->state != SRV_RUNNING)
        return;
    TKV_ASSERT(!rpc__on_cq_thread());
    rpc__gate_unlisten(s->gate); /* connections accepted from now on pass ungated */
    grpc_server_shutdown_and_notify(s->server, s->pool.cqs[0], &s->t_shutdown);
    uint64_t deadline = rpc__deadline_after(grace_ms);
    pthread_mutex_lock(&s->mu);
    bool done = wait_locked(s, &s->shutdown_done, NULL, deadline);
    long left = s->live_calls;
    pthread_mutex_unlock(&s->mu);
    if (!done) {
        TKV_LOG_INFO("rpc server cancelling calls after grace period", TKV_LF_I64("calls", left));
        grpc_server_cancel_all_calls(s->server);
    }
    pthread_mutex_lock(&s->mu);
    TKV_IGNORE(wait_locked(s, &s->shutdown_done, NULL, UINT64_MAX));
    TKV_IGNORE(wait_locked(s, NULL, &s->live_calls, UINT64_MAX));
    pthread_mutex_unlock(&s->mu);
    grpc_server_destroy(s->server);
    s->server = NULL;
    /* Draining the queues frees the accept slots that failed with the shutdown. */
    rpc__cq_pool_deinit(&s->pool);
    TKV_ASSERT(s->slots == 0 && s->live_calls == 0);
    s->state = SRV_STOPPED;
    TKV_LOG_INFO("rpc server stopped", TKV_LF_STR("addr", s->addr));
}

void rpc_server_free(rpc_server *s)
{
    if (s == NULL)
        return;
    rpc_server_shutdown(s, 0);
    server_destroy_fields(s);
    rpc_shutdown();
}

const char *rpc_server_errmsg(const rpc_server *s)
{
    return s->errmsg;
}

void rpc_server_gate_stats(const rpc_server *s, rpc_gate_stats *out)
{
    rpc__gate_stats(s != NULL ? s->gate : NULL, out);
}
