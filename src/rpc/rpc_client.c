/*
 * rpc_client.c: the gRPC client: channel cache, blocking and async unary calls, streams.
 *
 * Blocking unary calls run all six ops in one batch on a private pluck queue, so the
 * caller's thread does the waiting. Async calls and streams live on the client's
 * completion-queue threads. A stream counts its running batches (`ops`); it is done once
 * the final status arrived and no batch runs, and it is freed when done and released by its
 * owner (rpc_stream_free), whichever comes last.
 */
#include <stdio.h>

#include <grpc/support/alloc.h>

#include "base/clock.h"
#include "base/log.h"
#include "rpc/rpc_int.h"

/* An idle pluck queue kept for the next blocking call. */
typedef struct idle_cq {
    struct idle_cq *next;
    grpc_completion_queue *cq;
} idle_cq;

struct rpc_channel {
    rpc_channel *next;
    rpc_client *cl;
    char *target;
    unsigned idx;
    grpc_channel *ch;
};

typedef struct async_call async_call;

struct rpc_client {
    rpc_client_opts opts;
    grpc_channel_credentials *creds;
    rpc__cq_pool pool;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rpc_channel *channels;
    async_call *asyncs; /* in flight, doubly linked */
    long n_asyncs;
    long n_streams;      /* alive */
    long n_user_streams; /* not yet freed by their owner */
    idle_cq *idle_cqs;   /* pluck queues of finished blocking calls, reused */
    char errmsg[TKV_ERRMSG_LEN];
};

/* The parts of a client call's status that gRPC fills in. */
typedef struct call_status {
    grpc_metadata_array md_init;
    grpc_metadata_array md_trail;
    grpc_status_code code;
    grpc_slice details;
    const char *error_string;
} call_status;

static void call_status_init(call_status *cs)
{
    grpc_metadata_array_init(&cs->md_init);
    grpc_metadata_array_init(&cs->md_trail);
    cs->code = GRPC_STATUS_UNKNOWN;
    cs->details = grpc_empty_slice();
    cs->error_string = NULL;
}

static void call_status_deinit(call_status *cs)
{
    grpc_metadata_array_destroy(&cs->md_init);
    grpc_metadata_array_destroy(&cs->md_trail);
    grpc_slice_unref(cs->details);
    gpr_free((void *)cs->error_string);
}

/* Fills the six ops of a unary call: send everything, receive everything. */
static void unary_ops(grpc_op ops[6], grpc_byte_buffer *send, grpc_byte_buffer **recv,
                      call_status *cs)
{
    memset(ops, 0, 6 * sizeof(grpc_op));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &cs->md_init;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &cs->md_trail;
    ops[5].data.recv_status_on_client.status = &cs->code;
    ops[5].data.recv_status_on_client.status_details = &cs->details;
    ops[5].data.recv_status_on_client.error_string = &cs->error_string;
}

/* Turns a finished unary call into a status and, on OK, the response slice (*@msg must be
 * unreffed by the caller when set). */
static void unary_outcome(const call_status *cs, grpc_byte_buffer *recv, rpc_status *st,
                          grpc_slice *msg, bool *have_msg)
{
    *have_msg = false;
    rpc__status_from_call(st, cs->code, cs->details, cs->error_string);
    if (st->code != RPC_OK)
        return;
    if (recv == NULL) {
        rpc_status_set(st, RPC_INTERNAL, "the server sent no response message");
        return;
    }
    if (rpc__bb_read(recv, msg) != 0) {
        rpc_status_set(st, RPC_INTERNAL, "undecodable (compressed) response message");
        return;
    }
    *have_msg = true;
}

/* ---- client and channels ------------------------------------------------------------- */

void rpc_client_opts_init(rpc_client_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->cq_threads = 2;
    o->max_recv_msg_bytes = -1;
    o->max_send_msg_bytes = -1;
    o->keepalive_time_ms = 10000;
    o->keepalive_timeout_ms = 3000;
    o->connect_timeout_ms = 5000;
    o->initial_reconnect_backoff_ms = 100;
    o->max_reconnect_backoff_ms = 3000;
}

int rpc_client_new(const rpc_client_opts *o, rpc_client **out)
{
    if (o == NULL || out == NULL || o->cq_threads < 1)
        return -EINVAL;
    rpc_client *c = tkv_calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->opts = *o;
    c->opts.tls = NULL;
    TKV_ASSERT(pthread_mutex_init(&c->mu, NULL) == 0);
    TKV_ASSERT(pthread_cond_init(&c->cv, NULL) == 0);
    rpc_init();
    int rc = rpc__channel_creds(o->tls, o->tls_refresh_s, &c->creds, c->errmsg, sizeof(c->errmsg));
    if (rc != 0) {
        TKV_LOG_ERROR("rpc client credentials rejected", TKV_LF_STR("cause", c->errmsg));
    } else if ((rc = rpc__cq_pool_init(&c->pool, o->cq_threads)) == 0) {
        rc = rpc__cq_pool_start(&c->pool, "grpc-client-");
        if (rc != 0)
            rpc__cq_pool_deinit(&c->pool);
    }
    if (rc != 0) {
        if (c->creds != NULL)
            grpc_channel_credentials_release(c->creds);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        tkv_free(c);
        rpc_shutdown();
        return rc;
    }
    *out = c;
    return 0;
}

static grpc_channel *create_grpc_channel(rpc_client *c, const char *target)
{
    rpc__args a;
    rpc__args_init(&a);
    rpc__args_common(&a, c->opts.max_recv_msg_bytes, c->opts.max_send_msg_bytes,
                     c->opts.keepalive_time_ms, c->opts.keepalive_timeout_ms);
    /* Each channel gets its own connection, so connection indexes mean something. */
    rpc__args_int(&a, GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    /* gRPC names the minimum connect timeout after the backoff it bounds. */
    if (c->opts.connect_timeout_ms > 0)
        rpc__args_int(&a, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, c->opts.connect_timeout_ms);
    if (c->opts.initial_reconnect_backoff_ms > 0)
        rpc__args_int(&a, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                      c->opts.initial_reconnect_backoff_ms);
    if (c->opts.max_reconnect_backoff_ms > 0)
        rpc__args_int(&a, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, c->opts.max_reconnect_backoff_ms);
    return grpc_channel_create(target, c->creds, &a.args);
}

int rpc_client_channel(rpc_client *c, const char *target, unsigned conn_idx, rpc_channel **out)
{
    if (c == NULL || target == NULL || target[0] == '\0' || out == NULL)
        return -EINVAL;
    pthread_mutex_lock(&c->mu);
    for (rpc_channel *ch = c->channels; ch != NULL; ch = ch->next) {
        if (ch->idx == conn_idx && strcmp(ch->target, target) == 0) {
            pthread_mutex_unlock(&c->mu);
            *out = ch;
            return 0;
        }
    }
    rpc_channel *ch = tkv_calloc(1, sizeof(*ch));
    if (ch == NULL || (ch->target = tkv_strdup(target)) == NULL) {
        pthread_mutex_unlock(&c->mu);
        tkv_free(ch);
        return -ENOMEM;
    }
    ch->cl = c;
    ch->idx = conn_idx;
    ch->ch = create_grpc_channel(c, target);
    ch->next = c->channels;
    c->channels = ch;
    pthread_mutex_unlock(&c->mu);
    *out = ch;
    return 0;
}

const char *rpc_channel_target(const rpc_channel *ch)
{
    return ch->target;
}

/* Creates a call on @ch bound to @cq; the method is copied into the call. */
static grpc_call *create_call(rpc_channel *ch, grpc_completion_queue *cq, const char *method,
                              int64_t timeout_ms)
{
    grpc_slice m = grpc_slice_from_copied_string(method);
    grpc_call *call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                               rpc__deadline(timeout_ms), NULL);
    grpc_slice_unref(m);
    return call;
}

static bool valid_method(const char *method)
{
    return method != NULL && method[0] == '/' && strchr(method + 1, '/') != NULL;
}

/* ---- blocking unary ------------------------------------------------------------------ */

/* Returns a pluck queue for one blocking call: a finished call's queue holds no events, so
 * reusing it saves creating one per call. */
static grpc_completion_queue *take_pluck_cq(rpc_client *c, idle_cq **holder)
{
    pthread_mutex_lock(&c->mu);
    idle_cq *q = c->idle_cqs;
    if (q != NULL)
        c->idle_cqs = q->next;
    pthread_mutex_unlock(&c->mu);
    if (q == NULL) {
        q = tkv_malloc(sizeof(*q));
        if (q == NULL)
            return NULL;
        q->cq = grpc_completion_queue_create_for_pluck(NULL);
    }
    *holder = q;
    return q->cq;
}

static void give_pluck_cq(rpc_client *c, idle_cq *q)
{
    pthread_mutex_lock(&c->mu);
    q->next = c->idle_cqs;
    c->idle_cqs = q;
    pthread_mutex_unlock(&c->mu);
}

int rpc_unary(rpc_channel *ch, const char *method, tkv_slice req, int64_t timeout_ms, tkv_buf *resp,
              rpc_status *st)
{
    if (ch == NULL || !valid_method(method) || resp == NULL || st == NULL)
        return -EINVAL;
    if (rpc__on_cq_thread())
        return -EDEADLK;
    idle_cq *holder;
    grpc_completion_queue *cq = take_pluck_cq(ch->cl, &holder);
    if (cq == NULL)
        return -ENOMEM;
    grpc_call *call = create_call(ch, cq, method, timeout_ms);
    grpc_byte_buffer *send = rpc__bb_from_slice(req);
    grpc_byte_buffer *recv = NULL;
    call_status cs;
    call_status_init(&cs);
    grpc_op ops[6];
    unary_ops(ops, send, &recv, &cs);
    grpc_call_error err = grpc_call_start_batch(call, ops, 6, call, NULL);
    int rc = 0;
    if (err != GRPC_CALL_OK) {
        rpc_status_set(st, RPC_INTERNAL, "gRPC refused the call: %s",
                       grpc_call_error_to_string(err));
        rc = TKV_ERPC;
    } else {
        grpc_event ev =
            grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        TKV_ASSERT(ev.type == GRPC_OP_COMPLETE);
        grpc_slice msg;
        bool have;
        unary_outcome(&cs, recv, st, &msg, &have);
        if (have) {
            rc = tkv_buf_set(resp, GRPC_SLICE_START_PTR(msg), GRPC_SLICE_LENGTH(msg));
            grpc_slice_unref(msg);
        } else {
            rc = TKV_ERPC;
        }
    }
    grpc_byte_buffer_destroy(send);
    if (recv != NULL)
        grpc_byte_buffer_destroy(recv);
    call_status_deinit(&cs);
    grpc_call_unref(call);
    give_pluck_cq(ch->cl, holder);
    return rc;
}

int rpc_unary_msg(rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                  ProtobufCMessage **resp, rpc_status *st)
{
    if (req == NULL || resp_desc == NULL || resp == NULL)
        return -EINVAL;
    tkv_buf in, out;
    tkv_buf_init(&in);
    tkv_buf_init(&out);
    int rc = rpc_msg_pack(req, &in);
    if (rc == 0)
        rc = rpc_unary(ch, method, tkv_buf_slice(&in), timeout_ms, &out, st);
    if (rc == 0) {
        rc = rpc_msg_unpack(resp_desc, tkv_buf_slice(&out), resp);
        if (rc != 0)
            rpc_status_set(st, RPC_INTERNAL, "response does not decode as %s", resp_desc->name);
    }
    tkv_buf_deinit(&in);
    tkv_buf_deinit(&out);
    return rc;
}

/* ---- async unary --------------------------------------------------------------------- */

struct async_call {
    rpc__tag tag;
    async_call *prev, *next;
    rpc_client *cl;
    grpc_call *call;
    grpc_byte_buffer *send;
    grpc_byte_buffer *recv;
    call_status cs;
    rpc_unary_cb cb;
    void *ud;
};

static void on_async_done(rpc__tag *t, bool ok)
{
    (void)ok;
    async_call *a = RPC__CONTAINER(t, async_call, tag);
    rpc_status st;
    grpc_slice msg;
    bool have;
    unary_outcome(&a->cs, a->recv, &st, &msg, &have);
    a->cb(&st, have ? rpc__slice(msg) : tkv_slice_of(NULL, 0), a->ud);
    if (have)
        grpc_slice_unref(msg);
    /* Leave the in-flight list before the call goes away: rpc_client_free cancels what is on
     * it, and cancelling a destroyed call crashes inside gRPC. */
    rpc_client *c = a->cl;
    pthread_mutex_lock(&c->mu);
    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        c->asyncs = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    pthread_mutex_unlock(&c->mu);
    grpc_byte_buffer_destroy(a->send);
    if (a->recv != NULL)
        grpc_byte_buffer_destroy(a->recv);
    call_status_deinit(&a->cs);
    grpc_call_unref(a->call);
    tkv_free(a);
    pthread_mutex_lock(&c->mu);
    c->n_asyncs--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int rpc_unary_async(rpc_channel *ch, const char *method, tkv_slice req, int64_t timeout_ms,
                    rpc_unary_cb cb, void *ud)
{
    if (ch == NULL || !valid_method(method) || cb == NULL)
        return -EINVAL;
    async_call *a = tkv_calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    rpc_client *c = ch->cl;
    a->tag.fn = on_async_done;
    a->cl = c;
    a->cb = cb;
    a->ud = ud;
    a->call = create_call(ch, rpc__cq_pool_pick(&c->pool), method, timeout_ms);
    a->send = rpc__bb_from_slice(req);
    call_status_init(&a->cs);
    grpc_op ops[6];
    unary_ops(ops, a->send, &a->recv, &a->cs);
    pthread_mutex_lock(&c->mu);
    grpc_call_error err = grpc_call_start_batch(a->call, ops, 6, &a->tag, NULL);
    if (err == GRPC_CALL_OK) {
        a->next = c->asyncs;
        if (c->asyncs != NULL)
            c->asyncs->prev = a;
        c->asyncs = a;
        c->n_asyncs++;
    }
    pthread_mutex_unlock(&c->mu);
    if (err != GRPC_CALL_OK) {
        TKV_LOG_ERROR("grpc async call refused",
                      TKV_LF_STR("error", grpc_call_error_to_string(err)));
        grpc_byte_buffer_destroy(a->send);
        call_status_deinit(&a->cs);
        grpc_call_unref(a->call);
        tkv_free(a);
        return -EINVAL;
    }
    return 0;
}

/* ---- streams ------------------------------------------------------------------------- */

struct rpc_stream {
    rpc__tag t_start;
    rpc__tag t_status;
    rpc__tag t_recv;
    rpc__tag t_send;
    rpc_client *cl;
    grpc_call *call;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rpc__sendq sq;
    bool cb_mode;
    rpc_stream_cbs cbs;
    call_status cs;
    int ops; /* batches running */
    bool status_received;
    rpc_status final;
    bool recv_pending;
    grpc_byte_buffer *recv_bb;
    bool have_msg; /* read mode: a received message waits for the reader */
    grpc_slice msg;
    bool eos;     /* the server sent its last message */
    bool reading; /* a reader waits in rpc_stream_read */
    bool closed_send;
    bool done;  /* final status known and no batch runs */
    bool in_cb; /* a callback of this stream runs */
    bool user_freed;
    bool free_deferred; /* freed from inside a callback: whoever sees it done frees it */
    grpc_metadata *md;  /* request metadata (slices owned) */
    size_t n_md;
};

static __thread rpc_stream *tls_cb_stream;

static void stream_destroy(rpc_stream *s)
{
    rpc_client *c = s->cl;
    pthread_mutex_lock(&c->mu);
    c->n_streams--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (s->have_msg)
        grpc_slice_unref(s->msg);
    if (s->recv_bb != NULL)
        grpc_byte_buffer_destroy(s->recv_bb);
    rpc__sendq_deinit(&s->sq);
    call_status_deinit(&s->cs);
    for (size_t i = 0; i < s->n_md; i++) {
        grpc_slice_unref(s->md[i].key);
        grpc_slice_unref(s->md[i].value);
    }
    tkv_free(s->md);
    grpc_call_unref(s->call);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    tkv_free(s);
}

/* True once the stream ended and nothing of it runs: no batch, no callback. Under s->mu. */
static bool stream_idle(const rpc_stream *s)
{
    return s->done && s->ops == 0 && !s->in_cb;
}

/* Runs after every completion with s->mu held; reports the end, runs on_done and frees a
 * stream whose owner already let go. Releases s->mu. */
static void stream_settle(rpc_stream *s)
{
    if (!s->done && s->status_received && s->ops == 0) {
        s->done = true;
        pthread_cond_broadcast(&s->cv);
        if (s->cb_mode && !s->user_freed && s->cbs.on_done != NULL) {
            s->in_cb = true;
            pthread_mutex_unlock(&s->mu);
            tls_cb_stream = s;
            s->cbs.on_done(s, &s->final, s->cbs.ud);
            tls_cb_stream = NULL;
            pthread_mutex_lock(&s->mu);
            s->in_cb = false;
            pthread_cond_broadcast(&s->cv);
        }
    }
    bool destroy = s->free_deferred && stream_idle(s);
    pthread_mutex_unlock(&s->mu);
    if (destroy)
        stream_destroy(s);
}

/* Starts a RECV_MESSAGE batch; under s->mu. */
static void stream_post_recv(rpc_stream *s)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv_bb;
    grpc_call_error err = grpc_call_start_batch(s->call, &op, 1, &s->t_recv, NULL);
    if (err != GRPC_CALL_OK) {
        TKV_LOG_ERROR("grpc stream receive refused",
                      TKV_LF_STR("error", grpc_call_error_to_string(err)));
        s->eos = true;
        return;
    }
    s->ops++;
    s->recv_pending = true;
}

static void on_stream_start(rpc__tag *t, bool ok)
{
    (void)ok;
    rpc_stream *s = RPC__CONTAINER(t, rpc_stream, t_start);
    pthread_mutex_lock(&s->mu);
    s->ops--;
    stream_settle(s);
}

static void on_stream_status(rpc__tag *t, bool ok)
{
    (void)ok;
    rpc_stream *s = RPC__CONTAINER(t, rpc_stream, t_status);
    pthread_mutex_lock(&s->mu);
    rpc__status_from_call(&s->final, s->cs.code, s->cs.details, s->cs.error_string);
    s->status_received = true;
    rpc__sendq_break(&s->sq);
    s->ops--;
    stream_settle(s);
}

static void on_stream_recv(rpc__tag *t, bool ok)
{
    rpc_stream *s = RPC__CONTAINER(t, rpc_stream, t_recv);
    pthread_mutex_lock(&s->mu);
    s->recv_pending = false;
    grpc_byte_buffer *bb = s->recv_bb;
    s->recv_bb = NULL;
    grpc_slice msg;
    bool have = false;
    if (ok && bb != NULL) {
        have = rpc__bb_read(bb, &msg) == 0;
        if (!have) {
            grpc_call_cancel_with_status(s->call, GRPC_STATUS_INTERNAL,
                                         "undecodable (compressed) response message", NULL);
        }
    }
    if (bb != NULL)
        grpc_byte_buffer_destroy(bb);
    if (!have) {
        s->eos = true;
    } else if (!s->cb_mode) {
        s->msg = msg;
        s->have_msg = true;
    } else {
        if (!s->user_freed && s->cbs.on_message != NULL) {
            s->in_cb = true;
            pthread_mutex_unlock(&s->mu);
            tls_cb_stream = s;
            s->cbs.on_message(s, rpc__slice(msg), s->cbs.ud);
            tls_cb_stream = NULL;
            pthread_mutex_lock(&s->mu);
            s->in_cb = false;
        }
        grpc_slice_unref(msg);
        if (!s->user_freed)
            stream_post_recv(s);
    }
    pthread_cond_broadcast(&s->cv);
    s->ops--;
    stream_settle(s);
}

static void on_stream_send(rpc__tag *t, bool ok)
{
    rpc_stream *s = RPC__CONTAINER(t, rpc_stream, t_send);
    pthread_mutex_lock(&s->mu);
    rpc__sendq_done(&s->sq, ok);
    if (rpc__sendq_kick(&s->sq, s->call, &s->t_send))
        s->ops++;
    /* The send batch still counts in s->ops, so the stream cannot finish under the callback. */
    if (ok && s->cb_mode && s->cbs.on_sent != NULL && !s->user_freed) {
        s->in_cb = true;
        pthread_mutex_unlock(&s->mu);
        tls_cb_stream = s;
        s->cbs.on_sent(s, s->cbs.ud);
        tls_cb_stream = NULL;
        pthread_mutex_lock(&s->mu);
        s->in_cb = false;
    }
    s->ops--;
    pthread_cond_broadcast(&s->cv);
    stream_settle(s);
}

int rpc_stream_open(rpc_channel *ch, const char *method, int64_t timeout_ms,
                    const rpc_stream_cbs *cbs, rpc_stream **out)
{
    return rpc_stream_open_md(ch, method, timeout_ms, NULL, 0, cbs, out);
}

int rpc_stream_open_md(rpc_channel *ch, const char *method, int64_t timeout_ms, const rpc_md *md,
                       size_t n_md, const rpc_stream_cbs *cbs, rpc_stream **out)
{
    if (ch == NULL || !valid_method(method) || out == NULL || (md == NULL && n_md > 0))
        return -EINVAL;
    rpc_stream *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    if (n_md > 0 && (s->md = tkv_calloc(n_md, sizeof(*s->md))) == NULL) {
        tkv_free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_md; i++) {
        s->md[i].key = grpc_slice_from_copied_string(md[i].key);
        s->md[i].value = grpc_slice_from_copied_string(md[i].value);
    }
    s->n_md = n_md;
    rpc_client *c = ch->cl;
    s->t_start.fn = on_stream_start;
    s->t_status.fn = on_stream_status;
    s->t_recv.fn = on_stream_recv;
    s->t_send.fn = on_stream_send;
    s->cl = c;
    s->cb_mode = cbs != NULL;
    if (cbs != NULL)
        s->cbs = *cbs;
    TKV_ASSERT(pthread_mutex_init(&s->mu, NULL) == 0);
    TKV_ASSERT(pthread_cond_init(&s->cv, NULL) == 0);
    rpc__sendq_init(&s->sq, false);
    call_status_init(&s->cs);
    s->call = create_call(ch, rpc__cq_pool_pick(&c->pool), method, timeout_ms);

    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = s->n_md;
    ops[0].data.send_initial_metadata.metadata = s->md;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &s->cs.md_init;
    grpc_op st;
    memset(&st, 0, sizeof(st));
    st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st.data.recv_status_on_client.trailing_metadata = &s->cs.md_trail;
    st.data.recv_status_on_client.status = &s->cs.code;
    st.data.recv_status_on_client.status_details = &s->cs.details;
    st.data.recv_status_on_client.error_string = &s->cs.error_string;

    pthread_mutex_lock(&c->mu);
    c->n_streams++;
    c->n_user_streams++;
    pthread_mutex_unlock(&c->mu);

    pthread_mutex_lock(&s->mu);
    grpc_call_error e1 = grpc_call_start_batch(s->call, ops, 2, &s->t_start, NULL);
    grpc_call_error e2 = grpc_call_start_batch(s->call, &st, 1, &s->t_status, NULL);
    /* Both are well-formed batches on a fresh call: gRPC only refuses them on misuse. */
    TKV_ASSERT(e1 == GRPC_CALL_OK && e2 == GRPC_CALL_OK);
    s->ops = 2;
    if (s->cb_mode)
        stream_post_recv(s);
    pthread_mutex_unlock(&s->mu);
    *out = s;
    return 0;
}

static int stream_queue(rpc_stream *s, grpc_byte_buffer *bb)
{
    pthread_mutex_lock(&s->mu);
    if (s->closed_send || s->done || s->sq.broken || s->user_freed) {
        pthread_mutex_unlock(&s->mu);
        grpc_byte_buffer_destroy(bb);
        return TKV_ECLOSED;
    }
    int rc = rpc__sendq_push(&s->sq, bb);
    if (rc == 0 && rpc__sendq_kick(&s->sq, s->call, &s->t_send))
        s->ops++;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int rpc_stream_send(rpc_stream *s, tkv_slice msg)
{
    return stream_queue(s, rpc__bb_from_slice(msg));
}

int rpc_stream_send_msg(rpc_stream *s, const ProtobufCMessage *msg)
{
    return stream_queue(s, rpc__bb_from_msg(msg));
}

int rpc_stream_close_send(rpc_stream *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->closed_send || s->done || s->sq.broken) {
        pthread_mutex_unlock(&s->mu);
        return TKV_ECLOSED;
    }
    s->closed_send = true;
    rpc__sendq_end(&s->sq, GRPC_STATUS_OK, NULL);
    if (rpc__sendq_kick(&s->sq, s->call, &s->t_send))
        s->ops++;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void rpc_stream_cancel(rpc_stream *s)
{
    pthread_mutex_lock(&s->mu);
    rpc__sendq_break(&s->sq);
    pthread_mutex_unlock(&s->mu);
    grpc_call_cancel(s->call, NULL);
}

size_t rpc_stream_pending_sends(rpc_stream *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->sq.len + (s->sq.in_flight ? 1 : 0);
    pthread_mutex_unlock(&s->mu);
    return n;
}

int rpc_stream_read(rpc_stream *s, int64_t timeout_ms, tkv_buf *out, rpc_status *st)
{
    if (s == NULL || out == NULL || st == NULL)
        return -EINVAL;
    uint64_t deadline = rpc__deadline_after(timeout_ms);
    pthread_mutex_lock(&s->mu);
    if (s->cb_mode || s->reading) {
        pthread_mutex_unlock(&s->mu);
        return -EINVAL;
    }
    s->reading = true;
    /* Messages may still be buffered after the status arrived: read until the end. */
    if (!s->have_msg && !s->eos && !s->recv_pending)
        stream_post_recv(s);
    int rc = -ETIMEDOUT;
    for (;;) {
        if (s->have_msg) {
            s->have_msg = false;
            rc = tkv_buf_set(out, GRPC_SLICE_START_PTR(s->msg), GRPC_SLICE_LENGTH(s->msg));
            grpc_slice_unref(s->msg);
            break;
        }
        if (s->eos && s->done) {
            *st = s->final;
            rc = TKV_ECLOSED;
            break;
        }
        if (!rpc__cond_wait_until(&s->cv, &s->mu, deadline))
            break;
    }
    s->reading = false;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int rpc_stream_wait(rpc_stream *s, int64_t timeout_ms, rpc_status *st)
{
    if (s == NULL || st == NULL)
        return -EINVAL;
    uint64_t deadline = rpc__deadline_after(timeout_ms);
    if (!s->cb_mode) {
        /* Drain what nobody will read, so the stream can end. */
        tkv_buf sink;
        tkv_buf_init(&sink);
        int rc;
        for (;;) {
            int64_t left = deadline == UINT64_MAX ? -1 : (int64_t)(deadline - tkv_clock_mono_ms());
            if (deadline != UINT64_MAX && left < 0)
                left = 0;
            rc = rpc_stream_read(s, left, &sink, st);
            if (rc != 0)
                break;
        }
        tkv_buf_deinit(&sink);
        return rc == TKV_ECLOSED ? 0 : rc;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (!stream_idle(s)) {
        if (!rpc__cond_wait_until(&s->cv, &s->mu, deadline)) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    if (rc == 0)
        *st = s->final;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void rpc_stream_free(rpc_stream *s)
{
    if (s == NULL)
        return;
    rpc_client *c = s->cl;
    pthread_mutex_lock(&c->mu);
    c->n_user_streams--;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&s->mu);
    s->user_freed = true;
    rpc__sendq_break(&s->sq);
    bool done = s->done;
    pthread_mutex_unlock(&s->mu);
    if (!done)
        grpc_call_cancel(s->call, NULL);
    pthread_mutex_lock(&s->mu);
    if (tls_cb_stream == s) {
        /* Inside one of our own callbacks: whoever finishes the stream frees it. */
        s->free_deferred = true;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    while (!stream_idle(s))
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    stream_destroy(s);
}

void rpc_client_free(rpc_client *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    for (async_call *a = c->asyncs; a != NULL; a = a->next)
        grpc_call_cancel(a->call, NULL);
    /* Streams belong to their owners, who must free them first. */
    TKV_ASSERT(c->n_user_streams == 0);
    /* Streams freed from their own callbacks may still be winding down. */
    while (c->n_asyncs > 0 || c->n_streams > 0)
        pthread_cond_wait(&c->cv, &c->mu);
    rpc_channel *ch = c->channels;
    c->channels = NULL;
    pthread_mutex_unlock(&c->mu);
    while (ch != NULL) {
        rpc_channel *next = ch->next;
        grpc_channel_destroy(ch->ch);
        tkv_free(ch->target);
        tkv_free(ch);
        ch = next;
    }
    while (c->idle_cqs != NULL) {
        idle_cq *q = c->idle_cqs;
        c->idle_cqs = q->next;
        grpc_completion_queue_shutdown(q->cq);
        grpc_completion_queue_destroy(q->cq);
        tkv_free(q);
    }
    rpc__cq_pool_deinit(&c->pool);
    grpc_channel_credentials_release(c->creds);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    tkv_free(c);
    rpc_shutdown();
}
