/*
 * rpc_fixture.c: the test server's handlers (see rpc_fixture.h).
 */
#include "rpc_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "kvrpcpb.pb-c.h"

void fix_put_u64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t fix_get_u64(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

struct timespec fix_abs_deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

bool fix_wait_count(fixture *f, const int *counter, int want)
{
    struct timespec dl = fix_abs_deadline(FIX_TIMEOUT_MS);
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    while (*counter < want && rc == 0)
        rc = pthread_cond_timedwait(&f->cv, &f->mu, &dl);
    bool ok = *counter >= want;
    pthread_mutex_unlock(&f->mu);
    return ok;
}

/* ---- handlers ------------------------------------------------------------------------ */

static void raw_get(rpc_call *call, tkv_slice req, void *ud)
{
    (void)ud;
    /* Request and response live in the call's arena: nothing to free. */
    ProtobufCMessage *m;
    if (rpc_call_unpack(call, &kvrpcpb__raw_get_request__descriptor, req, &m) != 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "bad RawGetRequest");
        return;
    }
    Kvrpcpb__RawGetRequest *r = (Kvrpcpb__RawGetRequest *)m;
    Kvrpcpb__RawGetResponse *resp = rpc_call_alloc(call, sizeof(*resp));
    kvrpcpb__raw_get_response__init(resp);
    uint8_t *value = rpc_call_alloc(call, r->key.len + 2);
    value[0] = 'v';
    value[1] = ':';
    if (r->key.len > 0)
        memcpy(value + 2, r->key.data, r->key.len);
    resp->value.data = value;
    resp->value.len = r->key.len + 2;
    resp->not_found = r->key.len == 0;
    TKV_IGNORE(rpc_call_reply_msg(call, &resp->base));
}

static void echo(rpc_call *call, tkv_slice req, void *ud)
{
    (void)ud;
    TKV_IGNORE(rpc_call_reply(call, req));
}

static void park(fixture *f, rpc_call *call)
{
    pthread_mutex_lock(&f->mu);
    assert_true(f->n_held < FIX_MAX_HELD);
    f->held[f->n_held++] = call;
    f->n_arrived++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void hold(rpc_call *call, tkv_slice req, void *ud)
{
    (void)req;
    park(ud, call);
}

static void hold_open(rpc_call *call, void *ud)
{
    park(ud, call);
}

static void hold_msg(rpc_call *call, tkv_slice msg, void *ud)
{
    (void)call;
    (void)msg;
    (void)ud;
}

static void hold_half_close(rpc_call *call, void *ud)
{
    (void)call;
    (void)ud;
}

/* Finishes the cancelled call if it is still parked (a release may have raced with it). */
static void hold_cancel(rpc_call *call, void *ud)
{
    fixture *f = ud;
    pthread_mutex_lock(&f->mu);
    bool mine = false;
    for (int i = 0; i < f->n_held; i++) {
        if (f->held[i] == call) {
            f->held[i] = f->held[--f->n_held];
            mine = true;
            break;
        }
    }
    f->n_cancelled++;
    f->last_cancel_code = rpc_call_cancel_code(call);
    assert_true(rpc_call_is_cancelled(call));
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (mine)
        rpc_call_finish(call, RPC_CANCELLED, "cancelled while held");
}

int fix_release_held(fixture *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->n_held;
    rpc_call *calls[FIX_MAX_HELD];
    memcpy(calls, f->held, sizeof(rpc_call *) * (size_t)n);
    f->n_held = 0;
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < n; i++)
        TKV_IGNORE(rpc_call_reply(calls[i], tkv_slice_str("released")));
    return n;
}

static void worker_enqueue(rpc_call *call, tkv_slice req, void *ud)
{
    (void)req;
    fixture *f = ud;
    pthread_mutex_lock(&f->mu);
    assert_true(f->n_work < FIX_MAX_HELD);
    f->work[f->n_work++] = call;
    f->cq_thread_seen = pthread_self();
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Answers Worker calls from its own thread, as raft apply callbacks will. */
static void *worker_main(void *arg)
{
    fixture *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (f->n_work == 0 && !f->worker_stop)
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->n_work == 0 && f->worker_stop)
            break;
        rpc_call *call = f->work[--f->n_work];
        pthread_mutex_unlock(&f->mu);
        char reply[64];
        snprintf(reply, sizeof(reply), "answered by worker, %s a cq thread",
                 pthread_equal(pthread_self(), f->cq_thread_seen) ? "on" : "not on");
        TKV_IGNORE(rpc_call_reply(call, tkv_slice_str(reply)));
        pthread_mutex_lock(&f->mu);
        f->worker_replies++;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void bidi_open(rpc_call *call, void *ud)
{
    (void)call;
    fixture *f = ud;
    pthread_mutex_lock(&f->mu);
    f->bidi_next = 0;
    pthread_mutex_unlock(&f->mu);
}

static void bidi_msg(rpc_call *call, tkv_slice msg, void *ud)
{
    fixture *f = ud;
    pthread_mutex_lock(&f->mu);
    if (msg.len != 8 || fix_get_u64(msg.data) != f->bidi_next)
        f->bidi_out_of_order++;
    f->bidi_next++;
    pthread_mutex_unlock(&f->mu);
    TKV_IGNORE(rpc_call_send(call, msg));
}

static void bidi_half_close(rpc_call *call, void *ud)
{
    fixture *f = ud;
    pthread_mutex_lock(&f->mu);
    f->bidi_half_closed++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    rpc_call_finish(call, RPC_OK, NULL);
}

static void sum_open(rpc_call *call, void *ud)
{
    (void)ud;
    uint64_t *total = tkv_calloc(1, sizeof(*total));
    assert_non_null(total);
    rpc_call_set_data(call, total);
}

static void sum_msg(rpc_call *call, tkv_slice msg, void *ud)
{
    (void)ud;
    uint64_t *total = rpc_call_data(call);
    if (msg.len == 8)
        *total += fix_get_u64(msg.data);
}

static void sum_half_close(rpc_call *call, void *ud)
{
    (void)ud;
    uint64_t *total = rpc_call_data(call);
    uint8_t out[8];
    fix_put_u64(out, *total);
    tkv_free(total);
    TKV_IGNORE(rpc_call_reply(call, tkv_slice_of(out, 8)));
}

static void sum_cancel(rpc_call *call, void *ud)
{
    (void)ud;
    tkv_free(rpc_call_data(call));
    rpc_call_finish(call, RPC_CANCELLED, NULL);
}

static void count(rpc_call *call, tkv_slice req, void *ud)
{
    (void)ud;
    if (req.len != 8) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "want an 8-byte count");
        return;
    }
    uint64_t n = fix_get_u64(req.data);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t out[8];
        fix_put_u64(out, i);
        assert_int_equal(rpc_call_send(call, tkv_slice_of(out, 8)), 0);
    }
    rpc_call_finish(call, RPC_OK, "counted");
}

/* Whoami: answers "<client certificate CN>|<x-tkv-test metadata>" when the client half-closes
 * (the messages it sent are ignored). */
static void whoami_open(rpc_call *call, void *ud)
{
    (void)ud;
    char md[64] = "";
    if (!rpc_call_metadata(call, "x-tkv-test", md, sizeof(md)))
        snprintf(md, sizeof(md), "(none)");
    char *answer = tkv_malloc(256);
    assert_non_null(answer);
    snprintf(answer, 256, "%s|%s", rpc_call_peer_cn(call), md);
    rpc_call_set_data(call, answer);
}

static void whoami_msg(rpc_call *call, tkv_slice msg, void *ud)
{
    (void)call;
    (void)msg;
    (void)ud;
}

static void whoami_half_close(rpc_call *call, void *ud)
{
    (void)ud;
    char *answer = rpc_call_data(call);
    rpc_call_set_data(call, NULL);
    TKV_IGNORE(rpc_call_reply(call, tkv_slice_of(answer, strlen(answer))));
    tkv_free(answer);
}

static void whoami_cancel(rpc_call *call, void *ud)
{
    (void)ud;
    tkv_free(rpc_call_data(call));
    rpc_call_set_data(call, NULL);
    rpc_call_finish(call, RPC_CANCELLED, NULL);
}

/* ---- lifecycle ----------------------------------------------------------------------- */

void fix_start(fixture *f, const fix_cfg *cfg)
{
    static const fix_cfg defaults;
    if (cfg == NULL)
        cfg = &defaults;
    memset(f, 0, sizeof(*f));
    assert_int_equal(pthread_mutex_init(&f->mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&f->cv, NULL), 0);
    rpc_server_opts o;
    rpc_server_opts_init(&o);
    o.addr = "127.0.0.1:0";
    o.cq_threads = 2;
    o.max_recv_msg_bytes = cfg->max_recv;
    o.tls = cfg->tls;
    o.cert_allowed_cn = cfg->allowed_cn;
    o.cert_allowed_san = cfg->allowed_san;
    o.peer_gate = cfg->peer_gate;
    o.on_peer_rejected = cfg->on_peer_rejected;
    o.hook_ud = cfg->hook_ud;
    o.max_concurrent_streams = cfg->max_concurrent_streams;
    o.max_connections = cfg->max_connections;
    o.max_connections_per_addr = cfg->max_connections_per_addr;
    if (cfg->min_recv_ping_interval_ms > 0)
        o.min_recv_ping_interval_ms = cfg->min_recv_ping_interval_ms;
    assert_int_equal(rpc_server_new(&o, &f->srv), 0);

    const rpc_handler unary_raw_get = {.type = RPC_UNARY, .on_request = raw_get};
    const rpc_handler unary_echo = {.type = RPC_UNARY, .on_request = echo};
    const rpc_handler unary_hold = {
        .type = RPC_UNARY, .on_request = hold, .on_cancel = hold_cancel, .ud = f};
    const rpc_handler bidi_hold = {.type = RPC_BIDI_STREAMING,
                                   .on_open = hold_open,
                                   .on_request = hold_msg,
                                   .on_half_close = hold_half_close,
                                   .on_cancel = hold_cancel,
                                   .ud = f};
    const rpc_handler unary_worker = {.type = RPC_UNARY, .on_request = worker_enqueue, .ud = f};
    const rpc_handler bidi_echo = {.type = RPC_BIDI_STREAMING,
                                   .on_open = bidi_open,
                                   .on_request = bidi_msg,
                                   .on_half_close = bidi_half_close,
                                   .ud = f};
    const rpc_handler client_sum = {.type = RPC_CLIENT_STREAMING,
                                    .on_open = sum_open,
                                    .on_request = sum_msg,
                                    .on_half_close = sum_half_close,
                                    .on_cancel = sum_cancel};
    const rpc_handler server_count = {.type = RPC_SERVER_STREAMING, .on_request = count};
    const rpc_handler client_whoami = {.type = RPC_CLIENT_STREAMING,
                                       .on_open = whoami_open,
                                       .on_request = whoami_msg,
                                       .on_half_close = whoami_half_close,
                                       .on_cancel = whoami_cancel};
    assert_int_equal(rpc_server_add_method(f->srv, "/tikvpb.Tikv/RawGet", &unary_raw_get), 0);
    assert_int_equal(rpc_server_add_method(f->srv, "/test.Svc/Echo", &unary_echo), 0);
    assert_int_equal(rpc_server_add_method(f->srv, "/test.Svc/Hold", &unary_hold), 0);
    assert_int_equal(rpc_server_add_method(f->srv, "/test.Svc/HoldStream", &bidi_hold), 0);
    assert_int_equal(rpc_server_add_method(f->srv, "/test.Svc/Worker", &unary_worker), 0);
    assert_int_equal(rpc_server_add_method(f->srv, "/test.Svc/Bidi", &bidi_echo), 0);
    assert_int_equal(rpc_server_add_method(f->srv, "/test.Svc/Sum", &client_sum), 0);
    assert_int_equal(rpc_server_add_method(f->srv, "/test.Svc/Count", &server_count), 0);
    assert_int_equal(rpc_server_add_method(f->srv, "/test.Svc/Whoami", &client_whoami), 0);
    assert_int_equal(rpc_server_start(f->srv), 0);
    f->port = rpc_server_port(f->srv);
    assert_true(f->port > 0);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->port);
    assert_int_equal(pthread_create(&f->worker, NULL, worker_main, f), 0);
}

void fix_stop(fixture *f, int64_t grace_ms)
{
    rpc_server_shutdown(f->srv, grace_ms);
    rpc_server_free(f->srv);
    pthread_mutex_lock(&f->mu);
    f->worker_stop = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(pthread_join(f->worker, NULL), 0);
    assert_int_equal(f->n_held, 0);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

rpc_code fix_raw_get(rpc_channel *ch)
{
    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    req.key.data = (uint8_t *)"k";
    req.key.len = 1;
    ProtobufCMessage *resp = NULL;
    rpc_status st;
    int rc = rpc_unary_msg(ch, "/tikvpb.Tikv/RawGet", &req.base,
                           &kvrpcpb__raw_get_response__descriptor, 10000, &resp, &st);
    assert_true(rc == 0 || rc == TKV_ERPC);
    rpc_msg_free(resp);
    return st.code;
}

rpc_code fix_call_once(const fixture *f, const rpc_tls *tls)
{
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    o.tls = tls;
    o.connect_timeout_ms = 2000;
    rpc_client *c;
    assert_int_equal(rpc_client_new(&o, &c), 0);
    rpc_channel *ch;
    assert_int_equal(rpc_client_channel(c, f->addr, 0, &ch), 0);
    rpc_code code = fix_raw_get(ch);
    rpc_client_free(c);
    return code;
}

void fix_rmdir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    tpki_run(cmd);
}
