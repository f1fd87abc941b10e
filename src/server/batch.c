/*
 * batch.c: /tikvpb.Tikv/BatchCommands, the bidirectional stream client-go sends every
 * batchable command through (protocol.md 3.3).
 *
 * Each BatchCommandsRequest is decoded by hand (batch_wire.c); its requests are dispatched by
 * oneof number to the storage methods and answered as they complete. Completions append their
 * Response entry and id to the stream's pending lists; whoever completes while no dispatch
 * loop runs sends everything pending as one BatchCommandsResponse (at most
 * BATCH_MAX_RESPONSES entries each), so responses finishing together travel together and the
 * ones finishing inside a dispatch loop go out when it ends. Every id is answered exactly once
 * with the oneof kind it came with: commands nobody serves (and undecodable ones) with a
 * response carrying only a region_error message, Empty (255) with its test_id, and a Request
 * without a command with an empty Response, as TiKV does.
 *
 * Lifetime. rpc may deliver a cancellation while another thread finishes the call, so a
 * stream's state must stay readable after the call ends: states are kept in a per-service
 * pool, never freed before the service, and a callback checks that the state still belongs to
 * its call (st->call == call, under st->mu) before using it. A state returns to the pool when
 * its call is finished and no command is in flight.
 */
#include <stdarg.h>
#include <stdio.h>

#include "base/clock.h"
#include "base/log.h"
#include "server/srv_int.h"
#include "tikvpb.pb-c.h"

/* Most Response entries per BatchCommandsResponse (TiKV's GRPC_MSG_MAX_BATCH_SIZE). */
#define BATCH_MAX_RESPONSES 128

struct srv_bstream {
    srv_service *svc;
    srv_bstream *next_free;
    srv_bstream *next_all;
    pthread_mutex_t mu;
    rpc_call *call; /* NULL while in the pool */
    long inflight;  /* commands dispatched and not yet answered */
    int dispatching;
    bool half_closed, cancelled, failed, finished;
    rpc_code end_code;
    char end_msg[128];
    /* Pending answers: Response entries back to back, with their ids and offsets. */
    tkv_buf out;
    uint64_t *ids;
    size_t *offs;
    size_t n, cap;
    tkv_buf msg;       /* the BatchCommandsResponse being sent */
    srv_batch_req req; /* decoding scratch, used by the call's completion-queue thread */
};

/* One dispatched command. */
typedef struct binner {
    srv_bstream *st;
    const srv_method *sm;
    uint64_t id;
    ProtobufCMessage *req;
    uint64_t start_ns;
} binner;

/* ---- sending ----------------------------------------------------------------------------- */

static void fail_locked(srv_bstream *st, rpc_code code, const char *msg)
{
    if (st->failed)
        return;
    st->failed = true;
    st->end_code = code;
    snprintf(st->end_msg, sizeof(st->end_msg), "%s", msg);
}

/* Sends the pending answers. Called under st->mu. */
static void flush_locked(srv_bstream *st)
{
    size_t done = 0;
    while (done < st->n && !st->cancelled && !st->failed && !st->finished) {
        size_t end = TKV_MIN(st->n, done + BATCH_MAX_RESPONSES);
        size_t from = st->offs[done], to = end < st->n ? st->offs[end] : st->out.len;
        tkv_buf_reset(&st->msg);
        int rc = tkv_buf_append(&st->msg, st->out.data + from, to - from);
        if (rc == 0)
            rc = srv__batch_encode_ids(&st->msg, st->ids + done, end - done);
        if (rc == 0)
            rc = rpc_call_send(st->call, tkv_buf_slice(&st->msg));
        if (rc == -ENOMEM)
            fail_locked(st, RPC_RESOURCE_EXHAUSTED, "out of memory sending responses");
        /* TKV_ECLOSED: the call was cancelled; on_cancel follows and ends the stream. */
        if (st->svc->resp_batch_size != NULL)
            tkv_series_observe(st->svc->resp_batch_size, (double)(end - done));
        done = end;
    }
    st->n = 0;
    tkv_buf_reset(&st->out);
}

/* Ends the call once nothing is in flight and the stream is over; the state then returns to
 * the pool. Called under st->mu; the caller must not touch @st after unlocking when this
 * returned true. */
static bool maybe_end_locked(srv_bstream *st)
{
    if (st->finished || st->inflight > 0 || st->dispatching > 0)
        return false;
    if (!st->half_closed && !st->cancelled && !st->failed)
        return false;
    flush_locked(st);
    st->finished = true;
    if (st->failed)
        rpc_call_finish(st->call, st->end_code, st->end_msg);
    else if (st->cancelled)
        rpc_call_finish(st->call, RPC_CANCELLED, "cancelled");
    else
        rpc_call_finish(st->call, RPC_OK, NULL);
    st->call = NULL;
    tkv_buf_reset(&st->out);
    st->n = 0;
    srv_service *svc = st->svc;
    pthread_mutex_lock(&svc->mu);
    st->next_free = svc->free_streams;
    svc->free_streams = st;
    pthread_mutex_unlock(&svc->mu);
    return true;
}

static int reserve_answer(srv_bstream *st)
{
    if (st->n < st->cap)
        return 0;
    size_t cap = st->cap ? st->cap * 2 : 64;
    uint64_t *ids = tkv_realloc(st->ids, cap * sizeof(*ids));
    if (ids == NULL)
        return -ENOMEM;
    st->ids = ids;
    size_t *offs = tkv_realloc(st->offs, cap * sizeof(*offs));
    if (offs == NULL)
        return -ENOMEM;
    st->offs = offs;
    st->cap = cap;
    return 0;
}

/* What an answer carries: a packed-on-the-spot message, or ready inner bytes. */
typedef struct answer {
    int cmd;
    const ProtobufCMessage *msg; /* or: */
    tkv_slice inner;
} answer;

/* Records the answer to @id and, outside a dispatch loop, sends what is pending. Every
 * dispatched id comes here exactly once. */
static void answer_id(srv_bstream *st, uint64_t id, const answer *a)
{
    pthread_mutex_lock(&st->mu);
    if (!st->cancelled && !st->failed && !st->finished) {
        size_t off = st->out.len;
        int rc = reserve_answer(st);
        if (rc == 0)
            rc = a->msg != NULL ? srv__batch_encode_resp_msg(&st->out, a->cmd, a->msg)
                                : srv__batch_encode_resp(&st->out, a->cmd, a->inner);
        if (rc == 0) {
            st->ids[st->n] = id;
            st->offs[st->n] = off;
            st->n++;
        } else {
            /* The id cannot be answered: fail the stream, which fails it on the client. */
            fail_locked(st, RPC_RESOURCE_EXHAUSTED, "out of memory encoding a response");
        }
    }
    st->inflight--;
    if (st->dispatching == 0)
        flush_locked(st);
    maybe_end_locked(st);
    pthread_mutex_unlock(&st->mu);
}

/* Answers @id with oneof @cmd carrying only region_error{message}. */
static void answer_region_error(srv_bstream *st, uint64_t id, int cmd, const char *fmt, ...)
    TKV_PRINTF(4, 5);

static void answer_region_error(srv_bstream *st, uint64_t id, int cmd, const char *fmt, ...)
{
    char msg[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A stack buffer that never grows: msg is under 192 bytes, its encoding under 256. */
    uint8_t small[256];
    tkv_buf inner = {.data = small, .len = 0, .cap = sizeof(small)};
    TKV_ASSERT(srv__batch_encode_region_error(&inner, msg) == 0 && inner.data == small);
    answer a = {.cmd = cmd, .inner = tkv_buf_slice(&inner)};
    answer_id(st, id, &a);
}

/* Answers @id with ServerIsBusy (too many commands in flight). */
static void answer_busy(srv_bstream *st, uint64_t id, int cmd)
{
    uint8_t small[256];
    tkv_buf inner = {.data = small, .len = 0, .cap = sizeof(small)};
    TKV_ASSERT(srv__batch_encode_busy(&inner, "too many requests in flight") == 0 &&
               inner.data == small);
    answer a = {.cmd = cmd, .inner = tkv_buf_slice(&inner)};
    answer_id(st, id, &a);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void inner_done(void *ud, const ProtobufCMessage *resp)
{
    binner *b = ud;
    atomic_fetch_sub(&b->st->svc->inflight, 1);
    answer a = {.cmd = b->sm->m->batch_cmd, .msg = resp};
    srv__observe(b->sm, b->start_ns);
    srv_bstream *st = b->st;
    uint64_t id = b->id;
    rpc_msg_free(b->req);
    tkv_free(b);
    answer_id(st, id, &a);
}

static void dispatch_empty(srv_bstream *st, uint64_t id, tkv_slice inner)
{
    uint64_t test_id;
    if (srv__batch_decode_empty(inner, &test_id) != 0) {
        answer_region_error(st, id, SRV_BATCH_EMPTY, "malformed BatchCommandsEmptyRequest");
        return;
    }
    /* delay_time is not honoured: client-go sends Empty only from its own tests. */
    Tikvpb__BatchCommandsEmptyResponse resp = TIKVPB__BATCH_COMMANDS_EMPTY_RESPONSE__INIT;
    resp.test_id = test_id;
    answer a = {.cmd = SRV_BATCH_EMPTY, .msg = &resp.base};
    answer_id(st, id, &a);
}

static void dispatch_one(srv_bstream *st, int cmd, tkv_slice inner, uint64_t id)
{
    srv_service *svc = st->svc;
    uint64_t start = tkv_clock_mono_ns();
    if (cmd == SRV_BATCH_EMPTY) {
        dispatch_empty(st, id, inner);
        srv__observe(svc->m_invalid, start);
        return;
    }
    const srv_method *sm = cmd > 0 && cmd < SRV_BATCH_CMDS ? svc->batch[cmd] : NULL;
    if (sm == NULL) {
        if (svc->m_invalid->fail != NULL)
            tkv_series_inc(svc->m_invalid->fail);
        if (cmd == 0) {
            answer a = {.cmd = 0};
            answer_id(st, id, &a);
        } else {
            answer_region_error(st, id, cmd, "command %d is not served in BatchCommands", cmd);
        }
        return;
    }
    if (atomic_load(&svc->stopping)) {
        answer_region_error(st, id, cmd, "TiKV is Closing");
        return;
    }
    if (atomic_load(&svc->inflight) >= SRV_MAX_INFLIGHT) {
        answer_busy(st, id, cmd);
        return;
    }
    ProtobufCMessage *req;
    int rc = rpc_msg_unpack(sm->m->req_desc, inner, &req);
    if (rc != 0) {
        if (sm->fail != NULL)
            tkv_series_inc(sm->fail);
        answer_region_error(st, id, cmd, "malformed %s request", sm->name);
        return;
    }
    char reason[192];
    if (!srv__authorized(sm, st->call, req, reason, sizeof(reason))) {
        rpc_msg_free(req);
        if (sm->fail != NULL)
            tkv_series_inc(sm->fail);
        ProtobufCMessage *resp = NULL;
        if (srv_authz_denied_response(sm->m->resp_desc, reason, &resp) == 0) {
            answer a = {.cmd = cmd, .msg = resp};
            answer_id(st, id, &a);
            tkv_free(resp);
        } else {
            answer_region_error(st, id, cmd, "%s", reason);
        }
        return;
    }
    srv__audit_admin(sm, st->call);
    binner *b = tkv_malloc(sizeof(*b));
    if (b == NULL) {
        rpc_msg_free(req);
        answer_region_error(st, id, cmd, "out of memory");
        return;
    }
    *b = (binner){.st = st, .sm = sm, .id = id, .req = req, .start_ns = start};
    atomic_fetch_add(&svc->inflight, 1);
    rc = sm->m->fn(svc->s, req, inner_done, b);
    if (rc != 0) {
        atomic_fetch_sub(&svc->inflight, 1);
        rpc_msg_free(req);
        tkv_free(b);
        if (sm->fail != NULL)
            tkv_series_inc(sm->fail);
        if (rc == TKV_ECLOSED)
            answer_region_error(st, id, cmd, "TiKV is Closing");
        else
            answer_region_error(st, id, cmd, "%s refused: %s", sm->name, tkv_strerror(rc));
    }
}

/* Returns the call's stream state, locked, if it still belongs to @call; else NULL. */
static srv_bstream *lock_stream(rpc_call *call)
{
    srv_bstream *st = rpc_call_data(call);
    if (st == NULL)
        return NULL;
    pthread_mutex_lock(&st->mu);
    if (st->call != call || st->finished) {
        pthread_mutex_unlock(&st->mu);
        return NULL;
    }
    return st;
}

static void batch_on_request(rpc_call *call, tkv_slice msg, void *ud)
{
    srv_service *svc = ud;
    srv_bstream *st = lock_stream(call);
    if (st == NULL)
        return;
    if (st->failed || st->cancelled) {
        pthread_mutex_unlock(&st->mu);
        return;
    }
    st->dispatching++;
    pthread_mutex_unlock(&st->mu);

    /* Only this call's completion-queue thread touches st->req, and the state cannot be
     * recycled while dispatching > 0. */
    int rc = srv__batch_decode(msg, &st->req);
    const char *why = NULL;
    if (rc == -ENOMEM)
        why = "out of memory decoding BatchCommandsRequest";
    else if (rc != 0)
        why = "malformed BatchCommandsRequest";
    else if (st->req.n != st->req.n_ids)
        why = "BatchCommandsRequest: requests and request_ids differ in length";
    if (why == NULL) {
        if (svc->req_batch_size != NULL)
            tkv_series_observe(svc->req_batch_size, (double)st->req.n);
        pthread_mutex_lock(&st->mu);
        st->inflight += (long)st->req.n;
        pthread_mutex_unlock(&st->mu);
        for (size_t i = 0; i < st->req.n; i++)
            dispatch_one(st, st->req.cmds[i], st->req.inner[i], st->req.ids[i]);
    }

    pthread_mutex_lock(&st->mu);
    if (why != NULL) {
        TKV_LOG_WARN("batch commands stream failed", TKV_LF_STR("reason", why));
        fail_locked(st, rc == -ENOMEM ? RPC_RESOURCE_EXHAUSTED : RPC_INVALID_ARGUMENT, why);
    }
    st->dispatching--;
    flush_locked(st);
    maybe_end_locked(st);
    pthread_mutex_unlock(&st->mu);
}

static void batch_on_half_close(rpc_call *call, void *ud)
{
    (void)ud;
    srv_bstream *st = lock_stream(call);
    if (st == NULL)
        return;
    st->half_closed = true;
    maybe_end_locked(st);
    pthread_mutex_unlock(&st->mu);
}

static void batch_on_cancel(rpc_call *call, void *ud)
{
    (void)ud;
    srv_bstream *st = lock_stream(call);
    if (st == NULL)
        return;
    st->cancelled = true;
    maybe_end_locked(st);
    pthread_mutex_unlock(&st->mu);
}

static srv_bstream *stream_get(srv_service *svc)
{
    pthread_mutex_lock(&svc->mu);
    srv_bstream *st = svc->free_streams;
    if (st != NULL) {
        svc->free_streams = st->next_free;
        pthread_mutex_unlock(&svc->mu);
        return st;
    }
    pthread_mutex_unlock(&svc->mu);
    st = tkv_calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        tkv_free(st);
        return NULL;
    }
    st->svc = svc;
    tkv_buf_init(&st->out);
    tkv_buf_init(&st->msg);
    srv__batch_req_init(&st->req);
    pthread_mutex_lock(&svc->mu);
    st->next_all = svc->all_streams;
    svc->all_streams = st;
    pthread_mutex_unlock(&svc->mu);
    return st;
}

static void batch_on_open(rpc_call *call, void *ud)
{
    srv_service *svc = ud;
    rpc_call_set_data(call, NULL);
    if (atomic_load(&svc->stopping)) {
        srv__refuse(svc->m_batch, call, TKV_ECLOSED);
        return;
    }
    srv_bstream *st = stream_get(svc);
    if (st == NULL) {
        srv__refuse(svc->m_batch, call, -ENOMEM);
        return;
    }
    pthread_mutex_lock(&st->mu);
    st->inflight = 0;
    st->dispatching = 0;
    st->half_closed = st->cancelled = st->failed = st->finished = false;
    st->n = 0;
    tkv_buf_reset(&st->out);
    st->call = call;
    rpc_call_set_data(call, st);
    pthread_mutex_unlock(&st->mu);
}

int srv__batch_register(srv_service *svc)
{
    rpc_handler h = {.type = RPC_BIDI_STREAMING,
                     .on_open = batch_on_open,
                     .on_request = batch_on_request,
                     .on_half_close = batch_on_half_close,
                     .on_cancel = batch_on_cancel,
                     .ud = svc};
    return rpc_server_add_method(svc->rs, "/tikvpb.Tikv/BatchCommands", &h);
}

void srv__batch_free_all(srv_service *svc)
{
    srv_bstream *st = svc->all_streams;
    while (st != NULL) {
        srv_bstream *next = st->next_all;
        /* The server is down: no call, callback or command refers to the state any more. */
        TKV_ASSERT(st->call == NULL);
        pthread_mutex_destroy(&st->mu);
        tkv_buf_deinit(&st->out);
        tkv_buf_deinit(&st->msg);
        tkv_free(st->ids);
        tkv_free(st->offs);
        srv__batch_req_deinit(&st->req);
        tkv_free(st);
        st = next;
    }
    svc->all_streams = NULL;
    svc->free_streams = NULL;
}
