/*
 * rpc_common.c: what servers and clients share: status names, gRPC's global lifecycle and
 * log routing, protobuf-c <-> byte buffer conversion, completion-queue threads, the send
 * queue and channel arguments (credentials are in rpc_tls.c).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "base/clock.h"
#include "base/log.h"
#include "rpc/rpc_int.h"

/* ---- status -------------------------------------------------------------------------- */

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *rpc_code_name(int code)
{
    if (code < 0 || (size_t)code >= TKV_ARRAY_LEN(code_names))
        return "UNKNOWN";
    return code_names[code];
}

void rpc_status_set(rpc_status *st, rpc_code code, const char *fmt, ...)
{
    st->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof(st->message), fmt, ap);
    va_end(ap);
}

void rpc__status_from_call(rpc_status *st, grpc_status_code code, grpc_slice details,
                           const char *error_string)
{
    st->code = (rpc_code)code;
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n > 0) {
        if (n >= sizeof(st->message))
            n = sizeof(st->message) - 1;
        memcpy(st->message, GRPC_SLICE_START_PTR(details), n);
        st->message[n] = '\0';
    } else if (code != GRPC_STATUS_OK && error_string != NULL) {
        snprintf(st->message, sizeof(st->message), "%s", error_string);
    } else {
        st->message[0] = '\0';
    }
}

gpr_timespec rpc__deadline(int64_t timeout_ms)
{
    if (timeout_ms <= 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

/* ---- gRPC lifecycle and logging ------------------------------------------------------- */

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

/* gRPC core's log lines become ours: the message is constant, gRPC's text a field. */
static void grpc_log_to_tkv(gpr_log_func_args *a)
{
    tkv_log_level level = TKV_LOG_DEBUG;
    if (a->severity == GPR_LOG_SEVERITY_ERROR)
        level = TKV_LOG_ERROR;
    else if (a->severity == GPR_LOG_SEVERITY_INFO)
        level = TKV_LOG_INFO;
    if (!tkv_log_enabled(level))
        return;
    tkv_log_field f = TKV_LF_STR("detail", a->message);
    tkv__log_write(level, a->file, a->line, "grpc core", &f, 1);
}

static void install_log_hook(void)
{
    /* GRPC_VERBOSITY still wins when set: gRPC reads it at init. */
    if (getenv("GRPC_VERBOSITY") == NULL)
        gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
    gpr_set_log_function(grpc_log_to_tkv);
}

void rpc_init(void)
{
    TKV_ASSERT(pthread_once(&log_once, install_log_hook) == 0);
    grpc_init();
}

void rpc_shutdown(void)
{
    grpc_shutdown_blocking();
}

/* ---- messages and byte buffers ------------------------------------------------------- */

static void *pb_alloc(void *data, size_t size)
{
    (void)data;
    return tkv_malloc(size);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    tkv_free(p);
}

/* protobuf-c allocations go through tkv_malloc so tests can fail them. */
static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

int rpc_msg_unpack(const ProtobufCMessageDescriptor *desc, tkv_slice bytes, ProtobufCMessage **out)
{
    if (desc == NULL || out == NULL)
        return -EINVAL;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &pb_allocator, bytes.len, bytes.data);
    if (m == NULL)
        return TKV_ECORRUPT;
    *out = m;
    return 0;
}

void rpc_msg_free(ProtobufCMessage *msg)
{
    if (msg != NULL)
        protobuf_c_message_free_unpacked(msg, &pb_allocator);
}

int rpc_msg_pack(const ProtobufCMessage *msg, tkv_buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > out->cap) {
        tkv_buf fresh;
        tkv_buf_init(&fresh);
        int rc = tkv_buf_reserve(&fresh, n);
        if (rc != 0)
            return rc;
        tkv_buf_deinit(out);
        *out = fresh;
    }
    out->len = protobuf_c_message_pack(msg, out->data);
    return 0;
}

grpc_byte_buffer *rpc__bb_from_slice(tkv_slice msg)
{
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)msg.data, msg.len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

grpc_byte_buffer *rpc__bb_from_msg(const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(n);
    size_t packed = protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    TKV_ASSERT(packed == n);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

int rpc__bb_read(grpc_byte_buffer *bb, grpc_slice *out)
{
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return TKV_ECORRUPT;
    *out = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    return 0;
}

int rpc_msg_to_bb(const ProtobufCMessage *msg, struct grpc_byte_buffer **out)
{
    if (msg == NULL || out == NULL)
        return -EINVAL;
    *out = rpc__bb_from_msg(msg);
    return 0;
}

int rpc_msg_from_bb(const ProtobufCMessageDescriptor *desc, struct grpc_byte_buffer *bb,
                    ProtobufCMessage **out)
{
    if (bb == NULL)
        return -EINVAL;
    grpc_slice s;
    int rc = rpc__bb_read(bb, &s);
    if (rc != 0)
        return rc;
    rc = rpc_msg_unpack(desc, rpc__slice(s), out);
    grpc_slice_unref(s);
    return rc;
}

/* ---- completion-queue threads -------------------------------------------------------- */

static __thread bool tls_on_cq;

bool rpc__on_cq_thread(void)
{
    return tls_on_cq;
}

static void *cq_main(void *arg)
{
    grpc_completion_queue *cq = arg;
    tls_on_cq = true;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE) {
            rpc__tag *t = ev.tag;
            t->fn(t, ev.success != 0);
        }
    }
    return NULL;
}

int rpc__cq_pool_init(rpc__cq_pool *p, int n)
{
    memset(p, 0, sizeof(*p));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    p->cqs = tkv_calloc((size_t)n, sizeof(*p->cqs));
    p->threads = tkv_calloc((size_t)n, sizeof(*p->threads));
    if (p->cqs == NULL || p->threads == NULL) {
        tkv_free(p->cqs);
        tkv_free(p->threads);
        return -ENOMEM;
    }
    p->n = n;
    for (int i = 0; i < n; i++)
        p->cqs[i] = grpc_completion_queue_create_for_next(NULL);
    atomic_init(&p->next, 0);
    return 0;
}

int rpc__cq_pool_start(rpc__cq_pool *p, const char *prefix)
{
    for (int i = 0; i < p->n; i++) {
        int rc = pthread_create(&p->threads[i], NULL, cq_main, p->cqs[i]);
        if (rc != 0)
            return -rc;
        p->started++;
        char name[16];
        snprintf(name, sizeof(name), "%s%d", prefix, i);
        TKV_IGNORE(pthread_setname_np(p->threads[i], name));
    }
    return 0;
}

grpc_completion_queue *rpc__cq_pool_pick(rpc__cq_pool *p)
{
    unsigned i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    return p->cqs[i % (unsigned)p->n];
}

void rpc__cq_pool_deinit(rpc__cq_pool *p)
{
    if (p->cqs == NULL)
        return;
    for (int i = 0; i < p->n; i++)
        grpc_completion_queue_shutdown(p->cqs[i]);
    for (int i = 0; i < p->started; i++)
        TKV_ASSERT(pthread_join(p->threads[i], NULL) == 0);
    /* Queues whose thread never started still need draining before destruction. */
    for (int i = p->started; i < p->n; i++) {
        for (;;) {
            grpc_event ev =
                grpc_completion_queue_next(p->cqs[i], gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN)
                break;
        }
    }
    for (int i = 0; i < p->n; i++)
        grpc_completion_queue_destroy(p->cqs[i]);
    tkv_free(p->cqs);
    tkv_free(p->threads);
    memset(p, 0, sizeof(*p));
}

/* ---- send queue ---------------------------------------------------------------------- */

void rpc__sendq_init(rpc__sendq *q, bool server)
{
    memset(q, 0, sizeof(*q));
    q->server = server;
    q->end_details = grpc_empty_slice();
}

static void sendq_drop(rpc__sendq *q)
{
    rpc__sq_item *it = q->head;
    while (it != NULL) {
        rpc__sq_item *next = it->next;
        grpc_byte_buffer_destroy(it->bb);
        tkv_free(it);
        it = next;
    }
    q->head = q->tail = NULL;
    q->len = 0;
    q->bytes = 0;
}

void rpc__sendq_deinit(rpc__sendq *q)
{
    sendq_drop(q);
    if (q->flight_bb != NULL)
        grpc_byte_buffer_destroy(q->flight_bb);
    q->flight_bb = NULL;
    grpc_slice_unref(q->end_details);
    q->end_details = grpc_empty_slice();
}

int rpc__sendq_push(rpc__sendq *q, grpc_byte_buffer *bb)
{
    rpc__sq_item *it = tkv_malloc(sizeof(*it));
    if (it == NULL) {
        grpc_byte_buffer_destroy(bb);
        return -ENOMEM;
    }
    it->next = NULL;
    it->bb = bb;
    if (q->tail != NULL)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->len++;
    q->bytes += grpc_byte_buffer_length(bb);
    return 0;
}

void rpc__sendq_end(rpc__sendq *q, grpc_status_code code, const char *details)
{
    q->end_queued = true;
    q->end_code = code;
    grpc_slice_unref(q->end_details);
    q->end_details = details != NULL ? grpc_slice_from_copied_string(details) : grpc_empty_slice();
}

bool rpc__sendq_kick(rpc__sendq *q, grpc_call *call, rpc__tag *tag)
{
    if (q->in_flight || q->broken)
        return false;
    bool end_pending = q->end_queued && !q->end_started;
    if (q->head == NULL && !end_pending)
        return false;

    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    bool md_now = q->server && !q->md_sent;
    if (md_now)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (q->head != NULL) {
        rpc__sq_item *it = q->head;
        q->head = it->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->len--;
        q->bytes -= TKV_MIN(q->bytes, grpc_byte_buffer_length(it->bb));
        q->flight_bb = it->bb;
        tkv_free(it);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = q->flight_bb;
    }
    bool end_now = end_pending && q->head == NULL;
    if (end_now) {
        if (q->server) {
            ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
            ops[n].data.send_status_from_server.status = q->end_code;
            ops[n++].data.send_status_from_server.status_details = &q->end_details;
        } else {
            ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        }
    }
    grpc_call_error err = grpc_call_start_batch(call, ops, n, tag, NULL);
    if (err != GRPC_CALL_OK) {
        TKV_LOG_ERROR("grpc send batch refused",
                      TKV_LF_STR("error", grpc_call_error_to_string(err)));
        if (q->flight_bb != NULL)
            grpc_byte_buffer_destroy(q->flight_bb);
        q->flight_bb = NULL;
        rpc__sendq_break(q);
        return false;
    }
    q->md_sent = q->md_sent || md_now;
    q->end_started = q->end_started || end_now;
    q->in_flight = true;
    return true;
}

void rpc__sendq_done(rpc__sendq *q, bool ok)
{
    q->in_flight = false;
    if (q->flight_bb != NULL)
        grpc_byte_buffer_destroy(q->flight_bb);
    q->flight_bb = NULL;
    if (!ok)
        rpc__sendq_break(q);
}

void rpc__sendq_break(rpc__sendq *q)
{
    q->broken = true;
    sendq_drop(q);
}

/* ---- channel args -------------------------------------------------------------------- */

void rpc__args_init(rpc__args *a)
{
    memset(a, 0, sizeof(*a));
    a->args.args = a->arg;
}

void rpc__args_int(rpc__args *a, const char *key, int value)
{
    TKV_ASSERT(a->args.num_args < TKV_ARRAY_LEN(a->arg));
    grpc_arg *g = &a->arg[a->args.num_args++];
    g->type = GRPC_ARG_INTEGER;
    g->key = (char *)key;
    g->value.integer = value;
}

void rpc__args_ptr(rpc__args *a, const char *key, void *p, const grpc_arg_pointer_vtable *vt)
{
    TKV_ASSERT(a->args.num_args < TKV_ARRAY_LEN(a->arg));
    grpc_arg *g = &a->arg[a->args.num_args++];
    g->type = GRPC_ARG_POINTER;
    g->key = (char *)key;
    g->value.pointer.p = p;
    g->value.pointer.vtable = vt;
}

void rpc__args_common(rpc__args *a, int max_recv, int max_send, int keepalive_time_ms,
                      int keepalive_timeout_ms)
{
    rpc__args_int(a, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, max_recv > 0 ? max_recv : -1);
    rpc__args_int(a, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, max_send > 0 ? max_send : -1);
    if (keepalive_time_ms > 0) {
        rpc__args_int(a, GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_time_ms);
        rpc__args_int(a, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_timeout_ms);
        /* Keep pinging while streams sit idle (PD and BatchCommands streams do). */
        rpc__args_int(a, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    }
}

bool rpc__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ms)
{
    if (deadline_ms == UINT64_MAX) {
        pthread_cond_wait(cv, mu);
        return true;
    }
    uint64_t now = tkv_clock_mono_ms();
    if (now >= deadline_ms)
        return false;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (deadline_ms - now) * 1000000ULL;
    ts.tv_sec += (time_t)(ns / 1000000000ULL);
    ts.tv_nsec = (long)(ns % 1000000000ULL);
    pthread_cond_timedwait(cv, mu, &ts);
    return true;
}

uint64_t rpc__deadline_after(int64_t timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : tkv_clock_mono_ms() + (uint64_t)timeout_ms;
}
