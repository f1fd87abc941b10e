/*
 * test_rpc.c: the rpc module end to end on 127.0.0.1: unary calls with kvproto messages,
 * every streaming shape, deadlines, cancellation, size limits, unknown methods, health,
 * concurrency, handlers answering from other threads, graceful shutdown and mutual TLS.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <grpc/byte_buffer.h>

#include "base/clock.h"
#include "health.pb-c.h"
#include "kvrpcpb.pb-c.h"
#include "rpc/rpc.h"
#include "rpc_fixture.h"

static rpc_client *new_client(const rpc_tls *tls, int max_recv)
{
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    o.tls = tls;
    o.max_recv_msg_bytes = max_recv;
    rpc_client *c;
    assert_int_equal(rpc_client_new(&o, &c), 0);
    return c;
}

static rpc_channel *chan(rpc_client *c, const fixture *f, unsigned idx)
{
    rpc_channel *ch;
    assert_int_equal(rpc_client_channel(c, f->addr, idx, &ch), 0);
    return ch;
}

/* Calls RawGet for @key and checks the answer. Returns the status code. */
static rpc_code raw_get(rpc_channel *ch, const char *key, int64_t timeout_ms)
{
    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    ctx.region_id = 1;
    req.context = &ctx;
    req.key.data = (uint8_t *)key;
    req.key.len = strlen(key);
    req.cf = "default";
    ProtobufCMessage *m = NULL;
    rpc_status st;
    int rc = rpc_unary_msg(ch, "/tikvpb.Tikv/RawGet", &req.base,
                           &kvrpcpb__raw_get_response__descriptor, timeout_ms, &m, &st);
    if (rc != 0) {
        printf("# raw_get %s: %s: %s\n", key, rpc_code_name(st.code), st.message);
        assert_int_equal(rc, TKV_ERPC);
        assert_int_not_equal(st.code, RPC_OK);
        return st.code;
    }
    assert_int_equal(st.code, RPC_OK);
    Kvrpcpb__RawGetResponse *r = (Kvrpcpb__RawGetResponse *)m;
    assert_int_equal(r->value.len, strlen(key) + 2);
    assert_memory_equal(r->value.data, "v:", 2);
    assert_memory_equal(r->value.data + 2, key, strlen(key));
    assert_false(r->not_found);
    assert_null(r->region_error);
    rpc_msg_free(m);
    return RPC_OK;
}

/* ---- unary --------------------------------------------------------------------------- */

static void test_unary_call_carries_raw_get_messages(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    rpc_channel *ch = chan(c, &f, 0);
    assert_int_equal(raw_get(ch, "hello", 5000), RPC_OK);
    assert_int_equal(raw_get(ch, "world", 5000), RPC_OK);
    /* The same (target, index) gives the cached channel. */
    assert_ptr_equal(chan(c, &f, 0), ch);
    assert_ptr_not_equal(chan(c, &f, 1), ch);
    assert_string_equal(rpc_channel_target(ch), f.addr);

    /* Bytes that are not a RawGetRequest get INVALID_ARGUMENT from the handler. */
    tkv_buf resp;
    tkv_buf_init(&resp);
    rpc_status st;
    static const uint8_t junk[] = {0x0a, 0x7f, 0x01};
    assert_int_equal(
        rpc_unary(ch, "/tikvpb.Tikv/RawGet", tkv_slice_of(junk, sizeof(junk)), 5000, &resp, &st),
        TKV_ERPC);
    assert_int_equal(st.code, RPC_INVALID_ARGUMENT);
    assert_string_equal(st.message, "bad RawGetRequest");
    tkv_buf_deinit(&resp);

    rpc_client_free(c);
    fix_stop(&f, 1000);
}

static void test_unknown_method_answers_unimplemented(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    tkv_buf resp;
    tkv_buf_init(&resp);
    rpc_status st;
    assert_int_equal(rpc_unary(chan(c, &f, 0), "/tikvpb.Tikv/NoSuchMethod", tkv_slice_str("x"),
                               5000, &resp, &st),
                     TKV_ERPC);
    assert_int_equal(st.code, RPC_UNIMPLEMENTED);
    assert_non_null(strstr(st.message, "/tikvpb.Tikv/NoSuchMethod"));
    assert_string_equal(rpc_code_name(st.code), "UNIMPLEMENTED");
    tkv_buf_deinit(&resp);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

static rpc_health health_check(rpc_channel *ch, const char *service, rpc_code *code)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *m = NULL;
    rpc_status st;
    int rc = rpc_unary_msg(ch, "/grpc.health.v1.Health/Check", &req.base,
                           &grpc__health__v1__health_check_response__descriptor, 5000, &m, &st);
    *code = st.code;
    if (rc != 0)
        return RPC_HEALTH_UNKNOWN;
    rpc_health h = (rpc_health)((Grpc__Health__V1__HealthCheckResponse *)m)->status;
    rpc_msg_free(m);
    return h;
}

static void test_health_check_answers_serving_and_follows_overrides(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    rpc_channel *ch = chan(c, &f, 0);
    rpc_code code;
    assert_int_equal(health_check(ch, "", &code), RPC_HEALTH_SERVING);
    assert_int_equal(code, RPC_OK);
    assert_int_equal(health_check(ch, "tikvpb.Tikv", &code), RPC_HEALTH_SERVING);
    assert_int_equal(rpc_server_set_health(f.srv, "tikvpb.Tikv", RPC_HEALTH_NOT_SERVING), 0);
    assert_int_equal(health_check(ch, "tikvpb.Tikv", &code), RPC_HEALTH_NOT_SERVING);
    assert_int_equal(health_check(ch, "", &code), RPC_HEALTH_SERVING);
    assert_int_equal(rpc_server_set_health(f.srv, "", RPC_HEALTH_NOT_SERVING), 0);
    assert_int_equal(health_check(ch, "", &code), RPC_HEALTH_NOT_SERVING);
    health_check(ch, "no.such.Service", &code);
    assert_int_equal(code, RPC_NOT_FOUND);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

/* ---- deadlines and cancellation ------------------------------------------------------ */

static void test_deadline_expires_and_the_handler_learns_of_it(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    tkv_buf resp;
    tkv_buf_init(&resp);
    rpc_status st;
    uint64_t t0 = tkv_clock_mono_ms();
    assert_int_equal(
        rpc_unary(chan(c, &f, 0), "/test.Svc/Hold", tkv_slice_str("x"), 300, &resp, &st), TKV_ERPC);
    uint64_t took = tkv_clock_mono_ms() - t0;
    assert_int_equal(st.code, RPC_DEADLINE_EXCEEDED);
    assert_true(took >= 250);
    /* The handler parked the call, then heard of the deadline through on_cancel. */
    assert_true(fix_wait_count(&f, &f.n_arrived, 1));
    assert_true(fix_wait_count(&f, &f.n_cancelled, 1));
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.last_cancel_code, RPC_DEADLINE_EXCEEDED);
    assert_int_equal(f.n_held, 0);
    pthread_mutex_unlock(&f.mu);
    tkv_buf_deinit(&resp);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

static void test_client_cancel_reaches_the_handler(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    rpc_stream *s;
    assert_int_equal(rpc_stream_open(chan(c, &f, 0), "/test.Svc/HoldStream", 0, NULL, &s), 0);
    assert_int_equal(rpc_stream_send(s, tkv_slice_str("hi")), 0);
    assert_true(fix_wait_count(&f, &f.n_arrived, 1));
    rpc_stream_cancel(s);
    assert_true(fix_wait_count(&f, &f.n_cancelled, 1));
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.last_cancel_code, RPC_CANCELLED);
    pthread_mutex_unlock(&f.mu);
    rpc_status st;
    assert_int_equal(rpc_stream_wait(s, FIX_TIMEOUT_MS, &st), 0);
    assert_int_equal(st.code, RPC_CANCELLED);
    assert_int_equal(rpc_stream_send(s, tkv_slice_str("late")), TKV_ECLOSED);
    rpc_stream_free(s);

    /* Freeing a stream whose read timed out (the receive is still pending) cancels it. */
    assert_int_equal(rpc_stream_open(chan(c, &f, 0), "/test.Svc/HoldStream", 0, NULL, &s), 0);
    assert_true(fix_wait_count(&f, &f.n_arrived, 2));
    tkv_buf msg;
    tkv_buf_init(&msg);
    assert_int_equal(rpc_stream_read(s, 20, &msg, &st), -ETIMEDOUT);
    rpc_stream_free(s);
    assert_true(fix_wait_count(&f, &f.n_cancelled, 2));
    tkv_buf_deinit(&msg);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

/* ---- size limits --------------------------------------------------------------------- */

static void test_oversize_message_is_rejected_with_resource_exhausted(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, &(fix_cfg){.max_recv = 1024});
    rpc_client *c = new_client(NULL, 0);
    rpc_channel *ch = chan(c, &f, 0);
    uint8_t *big = tkv_calloc(1, 4096);
    assert_non_null(big);
    tkv_buf resp;
    tkv_buf_init(&resp);
    rpc_status st;
    assert_int_equal(rpc_unary(ch, "/test.Svc/Echo", tkv_slice_of(big, 4096), 5000, &resp, &st),
                     TKV_ERPC);
    assert_int_equal(st.code, RPC_RESOURCE_EXHAUSTED);
    /* A message under the limit still passes on the same channel. */
    assert_int_equal(rpc_unary(ch, "/test.Svc/Echo", tkv_slice_of(big, 512), 5000, &resp, &st), 0);
    assert_int_equal(resp.len, 512);

    /* The client's own receive limit rejects a big answer the same way. */
    rpc_client *small = new_client(NULL, 256);
    assert_int_equal(
        rpc_unary(chan(small, &f, 0), "/test.Svc/Echo", tkv_slice_of(big, 512), 5000, &resp, &st),
        TKV_ERPC);
    assert_int_equal(st.code, RPC_RESOURCE_EXHAUSTED);
    rpc_client_free(small);

    tkv_free(big);
    tkv_buf_deinit(&resp);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

static void test_default_limits_accept_a_large_message(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    size_t n = 8u << 20; /* twice gRPC's built-in 4 MiB receive limit */
    uint8_t *big = tkv_malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 131);
    tkv_buf resp;
    tkv_buf_init(&resp);
    rpc_status st;
    assert_int_equal(
        rpc_unary(chan(c, &f, 0), "/test.Svc/Echo", tkv_slice_of(big, n), 20000, &resp, &st), 0);
    assert_int_equal(resp.len, n);
    assert_memory_equal(resp.data, big, n);
    tkv_free(big);
    tkv_buf_deinit(&resp);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

/* ---- streams ------------------------------------------------------------------------- */

#define BIDI_N 10000

typedef struct bidi_client {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next;
    int out_of_order;
    bool done;
    rpc_status st;
} bidi_client;

static void bidi_on_message(rpc_stream *s, tkv_slice msg, void *ud)
{
    (void)s;
    bidi_client *b = ud;
    pthread_mutex_lock(&b->mu);
    if (msg.len != 8 || fix_get_u64(msg.data) != b->next)
        b->out_of_order++;
    b->next++;
    pthread_mutex_unlock(&b->mu);
}

static void bidi_on_done(rpc_stream *s, const rpc_status *st, void *ud)
{
    (void)s;
    bidi_client *b = ud;
    pthread_mutex_lock(&b->mu);
    b->st = *st;
    b->done = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void test_bidi_stream_carries_10000_messages_in_order(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    bidi_client b = {.next = 0};
    assert_int_equal(pthread_mutex_init(&b.mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&b.cv, NULL), 0);
    rpc_stream_cbs cbs = {.on_message = bidi_on_message, .on_done = bidi_on_done, .ud = &b};
    rpc_stream *s;
    assert_int_equal(rpc_stream_open(chan(c, &f, 0), "/test.Svc/Bidi", 0, &cbs, &s), 0);
    for (uint64_t i = 0; i < BIDI_N; i++) {
        uint8_t m[8];
        fix_put_u64(m, i);
        assert_int_equal(rpc_stream_send(s, tkv_slice_of(m, 8)), 0);
    }
    assert_int_equal(rpc_stream_close_send(s), 0);
    assert_int_equal(rpc_stream_close_send(s), TKV_ECLOSED);
    struct timespec dl = fix_abs_deadline(60000);
    pthread_mutex_lock(&b.mu);
    while (!b.done && pthread_cond_timedwait(&b.cv, &b.mu, &dl) == 0) {
    }
    assert_true(b.done);
    assert_int_equal(b.st.code, RPC_OK);
    assert_int_equal(b.next, BIDI_N);
    assert_int_equal(b.out_of_order, 0);
    pthread_mutex_unlock(&b.mu);
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.bidi_next, BIDI_N);
    assert_int_equal(f.bidi_out_of_order, 0);
    assert_int_equal(f.bidi_half_closed, 1);
    pthread_mutex_unlock(&f.mu);
    rpc_stream_free(s);
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

/* Sends the next numbered message each time the previous one was handed to the transport,
 * so exactly one is ever queued (the BatchCommands sender's pattern). */
typedef struct paced {
    bidi_client b;
    rpc_stream *s;
    uint64_t sent;
    uint64_t n;
    int on_sent_calls;
} paced;

static void paced_on_sent(rpc_stream *s, void *ud)
{
    paced *p = ud;
    pthread_mutex_lock(&p->b.mu);
    p->on_sent_calls++;
    uint64_t next = p->sent < p->n ? p->sent++ : UINT64_MAX;
    pthread_mutex_unlock(&p->b.mu);
    if (next == UINT64_MAX)
        return;
    uint8_t m[8];
    fix_put_u64(m, next);
    TKV_IGNORE(rpc_stream_send(s, tkv_slice_of(m, 8)));
    if (next + 1 == p->n)
        TKV_IGNORE(rpc_stream_close_send(s));
}

static void paced_on_message(rpc_stream *s, tkv_slice msg, void *ud)
{
    bidi_on_message(s, msg, &((paced *)ud)->b);
}

static void paced_on_done(rpc_stream *s, const rpc_status *st, void *ud)
{
    bidi_on_done(s, st, &((paced *)ud)->b);
}

static void test_on_sent_paces_a_stream_one_message_at_a_time(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    paced p = {.n = 500};
    assert_int_equal(pthread_mutex_init(&p.b.mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&p.b.cv, NULL), 0);
    rpc_stream_cbs cbs = {.on_message = paced_on_message,
                          .on_done = paced_on_done,
                          .on_sent = paced_on_sent,
                          .ud = &p};
    assert_int_equal(rpc_stream_open(chan(c, &f, 0), "/test.Svc/Bidi", 0, &cbs, &p.s), 0);
    uint8_t m[8];
    pthread_mutex_lock(&p.b.mu);
    fix_put_u64(m, p.sent++);
    pthread_mutex_unlock(&p.b.mu);
    assert_int_equal(rpc_stream_send(p.s, tkv_slice_of(m, 8)), 0);
    struct timespec dl = fix_abs_deadline(60000);
    pthread_mutex_lock(&p.b.mu);
    while (!p.b.done && pthread_cond_timedwait(&p.b.cv, &p.b.mu, &dl) == 0) {
    }
    assert_true(p.b.done);
    assert_int_equal(p.b.st.code, RPC_OK);
    assert_int_equal(p.b.next, p.n);
    assert_int_equal(p.b.out_of_order, 0);
    /* One call per message handed over, plus one for the half-close. */
    assert_int_equal(p.on_sent_calls, (int)p.n + 1);
    pthread_mutex_unlock(&p.b.mu);
    rpc_stream_free(p.s);
    pthread_cond_destroy(&p.b.cv);
    pthread_mutex_destroy(&p.b.mu);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

static void test_client_streaming_sums_and_server_streaming_reads_in_order(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    rpc_channel *ch = chan(c, &f, 0);

    /* Client streaming: 1 + 2 + ... + 100, one answer. */
    rpc_stream *s;
    assert_int_equal(rpc_stream_open(ch, "/test.Svc/Sum", 10000, NULL, &s), 0);
    for (uint64_t i = 1; i <= 100; i++) {
        uint8_t m[8];
        fix_put_u64(m, i);
        assert_int_equal(rpc_stream_send(s, tkv_slice_of(m, 8)), 0);
    }
    assert_int_equal(rpc_stream_close_send(s), 0);
    tkv_buf msg;
    tkv_buf_init(&msg);
    rpc_status st;
    assert_int_equal(rpc_stream_read(s, FIX_TIMEOUT_MS, &msg, &st), 0);
    assert_int_equal(msg.len, 8);
    assert_int_equal(fix_get_u64(msg.data), 5050);
    assert_int_equal(rpc_stream_read(s, FIX_TIMEOUT_MS, &msg, &st), TKV_ECLOSED);
    assert_int_equal(st.code, RPC_OK);
    rpc_stream_free(s);

    /* Server streaming: ask for 500 messages, read them one by one. */
    assert_int_equal(rpc_stream_open(ch, "/test.Svc/Count", 10000, NULL, &s), 0);
    uint8_t n[8];
    fix_put_u64(n, 500);
    assert_int_equal(rpc_stream_send(s, tkv_slice_of(n, 8)), 0);
    assert_int_equal(rpc_stream_close_send(s), 0);
    for (uint64_t i = 0; i < 500; i++) {
        assert_int_equal(rpc_stream_read(s, FIX_TIMEOUT_MS, &msg, &st), 0);
        assert_int_equal(msg.len, 8);
        assert_int_equal(fix_get_u64(msg.data), i);
    }
    assert_int_equal(rpc_stream_read(s, FIX_TIMEOUT_MS, &msg, &st), TKV_ECLOSED);
    assert_int_equal(st.code, RPC_OK);
    assert_string_equal(st.message, "counted");
    assert_int_equal(rpc_stream_wait(s, 0, &st), 0);
    assert_int_equal(st.code, RPC_OK);
    rpc_stream_free(s);

    /* A read with nothing to read times out and can be retried. */
    assert_int_equal(rpc_stream_open(ch, "/test.Svc/HoldStream", 0, NULL, &s), 0);
    assert_int_equal(rpc_stream_read(s, 50, &msg, &st), -ETIMEDOUT);
    assert_true(fix_wait_count(&f, &f.n_arrived, 1));
    assert_int_equal(fix_release_held(&f), 1);
    assert_int_equal(rpc_stream_read(s, FIX_TIMEOUT_MS, &msg, &st), 0);
    assert_int_equal(msg.len, strlen("released"));
    assert_int_equal(rpc_stream_read(s, FIX_TIMEOUT_MS, &msg, &st), TKV_ECLOSED);
    assert_int_equal(st.code, RPC_OK);
    rpc_stream_free(s);

    tkv_buf_deinit(&msg);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

/* client-go pings every 10 s on idle streams; gRPC's default server policy (a 5 min minimum
 * interval, 2 strikes) counts those as bad pings and closes the connection with GOAWAY
 * too_many_pings. Here the server keeps gRPC's 5 min minimum and a client pings as often as
 * gRPC lets it (about once a second): the idle stream must survive several bad pings. */
static void test_idle_stream_survives_frequent_client_pings(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, &(fix_cfg){.min_recv_ping_interval_ms = 300000});
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    o.keepalive_time_ms = 100;
    o.keepalive_timeout_ms = 5000;
    rpc_client *c;
    assert_int_equal(rpc_client_new(&o, &c), 0);
    rpc_stream *s;
    assert_int_equal(rpc_stream_open(chan(c, &f, 0), "/test.Svc/Bidi", 0, NULL, &s), 0);
    tkv_buf msg;
    tkv_buf_init(&msg);
    rpc_status st;
    for (uint64_t i = 0; i < 2; i++) {
        uint8_t m[8];
        fix_put_u64(m, i);
        assert_int_equal(rpc_stream_send(s, tkv_slice_of(m, 8)), 0);
        assert_int_equal(rpc_stream_read(s, FIX_TIMEOUT_MS, &msg, &st), 0);
        assert_int_equal(fix_get_u64(msg.data), i);
        if (i == 0) /* stay idle for 5 s: about 5 pings without data */
            assert_int_equal(rpc_stream_read(s, 5000, &msg, &st), -ETIMEDOUT);
    }
    assert_int_equal(rpc_stream_close_send(s), 0);
    assert_int_equal(rpc_stream_read(s, FIX_TIMEOUT_MS, &msg, &st), TKV_ECLOSED);
    assert_int_equal(st.code, RPC_OK);
    tkv_buf_deinit(&msg);
    rpc_stream_free(s);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

/* ---- concurrency and threads --------------------------------------------------------- */

#define N_CLIENTS        64
#define CALLS_PER_CLIENT 20

typedef struct client_thread {
    rpc_client *c;
    const fixture *f;
    unsigned idx;
    int ok;
} client_thread;

static void *client_main(void *arg)
{
    client_thread *t = arg;
    rpc_channel *ch;
    if (rpc_client_channel(t->c, t->f->addr, t->idx, &ch) != 0)
        return NULL;
    for (int i = 0; i < CALLS_PER_CLIENT; i++) {
        char key[32];
        snprintf(key, sizeof(key), "c%u-%d", t->idx, i);
        if (raw_get(ch, key, 20000) == RPC_OK)
            t->ok++;
    }
    return NULL;
}

static void test_64_concurrent_clients_all_get_their_answers(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    pthread_t th[N_CLIENTS];
    client_thread ct[N_CLIENTS];
    for (unsigned i = 0; i < N_CLIENTS; i++) {
        ct[i] = (client_thread){.c = c, .f = &f, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &ct[i]), 0);
    }
    int total = 0;
    for (unsigned i = 0; i < N_CLIENTS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        total += ct[i].ok;
    }
    assert_int_equal(total, N_CLIENTS * CALLS_PER_CLIENT);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

typedef struct async_result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int ok;
    char last[64];
} async_result;

static void on_async(const rpc_status *st, tkv_slice resp, void *ud)
{
    async_result *r = ud;
    pthread_mutex_lock(&r->mu);
    if (st->code == RPC_OK) {
        r->ok++;
        snprintf(r->last, sizeof(r->last), "%.*s", (int)resp.len, (const char *)resp.data);
    }
    r->done++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void async_init(async_result *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(pthread_mutex_init(&r->mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&r->cv, NULL), 0);
}

static void async_deinit(async_result *r)
{
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

static void wait_async(async_result *r, int want)
{
    struct timespec dl = fix_abs_deadline(FIX_TIMEOUT_MS);
    pthread_mutex_lock(&r->mu);
    while (r->done < want && pthread_cond_timedwait(&r->cv, &r->mu, &dl) == 0) {
    }
    assert_int_equal(r->done, want);
    pthread_mutex_unlock(&r->mu);
}

/* Starts @n async calls to @method on @ch. */
static void async_start(rpc_channel *ch, const char *method, int n, async_result *r)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(rpc_unary_async(ch, method, tkv_slice_str("a"), 20000, on_async, r), 0);
}

static void test_handler_completes_the_call_from_another_thread(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    rpc_channel *ch = chan(c, &f, 0);
    async_result r;
    async_init(&r);
    async_start(ch, "/test.Svc/Worker", 10, &r);
    wait_async(&r, 10);
    assert_int_equal(r.ok, 10);
    assert_string_equal(r.last, "answered by worker, not on a cq thread");
    /* The worker counts a reply after handing it over, so it may lag the client a little. */
    assert_true(fix_wait_count(&f, &f.worker_replies, 10));
    async_deinit(&r);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

typedef struct cb_probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int seen;
    int free_at; /* free the stream from on_message at this count; 0: never */
    bool free_in_done;
    bool done;
    rpc_status st;
} cb_probe;

static void probe_on_message(rpc_stream *s, tkv_slice msg, void *ud)
{
    (void)msg;
    cb_probe *p = ud;
    pthread_mutex_lock(&p->mu);
    int seen = ++p->seen;
    pthread_mutex_unlock(&p->mu);
    if (seen == p->free_at)
        rpc_stream_free(s);
}

static void probe_on_done(rpc_stream *s, const rpc_status *st, void *ud)
{
    cb_probe *p = ud;
    if (p->free_in_done)
        rpc_stream_free(s);
    pthread_mutex_lock(&p->mu);
    p->st = *st;
    p->done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Opens a callback-mode stream that asks Count for @n messages; @free_at and @free_in_done
 * are set before the stream opens, since callbacks read them. */
static rpc_stream *open_count(rpc_channel *ch, uint64_t n, cb_probe *p, int free_at,
                              bool free_in_done)
{
    memset(p, 0, sizeof(*p));
    p->free_at = free_at;
    p->free_in_done = free_in_done;
    assert_int_equal(pthread_mutex_init(&p->mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&p->cv, NULL), 0);
    rpc_stream_cbs cbs = {.on_message = probe_on_message, .on_done = probe_on_done, .ud = p};
    rpc_stream *s;
    assert_int_equal(rpc_stream_open(ch, "/test.Svc/Count", 20000, &cbs, &s), 0);
    uint8_t m[8];
    fix_put_u64(m, n);
    assert_int_equal(rpc_stream_send(s, tkv_slice_of(m, 8)), 0);
    /* A stream that frees itself from a callback may be gone as soon as Count answered (it
     * does not wait for the half-close): it must not be touched again. */
    if (!free_in_done && free_at == 0)
        assert_int_equal(rpc_stream_close_send(s), 0);
    return s;
}

static void test_streams_can_be_freed_from_their_own_callbacks(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    rpc_channel *ch = chan(c, &f, 0);

    /* Waiting in callback mode sees every message first. */
    cb_probe a;
    rpc_stream *s = open_count(ch, 10, &a, 0, false);
    rpc_status st;
    assert_int_equal(rpc_stream_wait(s, FIX_TIMEOUT_MS, &st), 0);
    assert_int_equal(st.code, RPC_OK);
    assert_int_equal(a.seen, 10);
    assert_true(a.done);
    rpc_stream_free(s);

    /* Freed from on_message: no callback follows, not even on_done. */
    cb_probe b;
    TKV_IGNORE(open_count(ch, 1000, &b, 5, false) == NULL); /* frees itself */
    /* Freed from on_done. */
    cb_probe d;
    rpc_stream *self_freeing = open_count(ch, 3, &d, 0, true); /* on_done frees it */
    assert_non_null(self_freeing);
    struct timespec dl = fix_abs_deadline(FIX_TIMEOUT_MS);
    pthread_mutex_lock(&d.mu);
    while (!d.done && pthread_cond_timedwait(&d.cv, &d.mu, &dl) == 0) {
    }
    assert_true(d.done);
    assert_int_equal(d.st.code, RPC_OK);
    assert_int_equal(d.seen, 3);
    pthread_mutex_unlock(&d.mu);

    /* Async calls still in flight are cancelled by rpc_client_free. */
    rpc_client *c2 = new_client(NULL, 0);
    async_result r;
    async_init(&r);
    async_start(chan(c2, &f, 0), "/test.Svc/Hold", 3, &r);
    assert_true(fix_wait_count(&f, &f.n_arrived, 3));
    rpc_client_free(c2);
    assert_int_equal(r.done, 3);
    assert_int_equal(r.ok, 0);
    assert_true(fix_wait_count(&f, &f.n_cancelled, 3));
    async_deinit(&r);

    /* Freeing the client waits for the streams freed from callbacks to wind down. */
    rpc_client_free(c);
    assert_int_equal(b.seen, 5);
    assert_false(b.done);
    for (cb_probe *p = &a; p != NULL; p = p == &a ? &b : p == &b ? &d : NULL) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
    }
    fix_stop(&f, 1000);
}

/* ---- shutdown ------------------------------------------------------------------------ */

typedef struct shutdown_arg {
    rpc_server *srv;
    int64_t grace_ms;
} shutdown_arg;

static void *shutdown_main(void *arg)
{
    shutdown_arg *a = arg;
    rpc_server_shutdown(a->srv, a->grace_ms);
    return NULL;
}

static void test_graceful_shutdown_finishes_calls_in_flight(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    rpc_channel *ch = chan(c, &f, 0);
    async_result r;
    async_init(&r);
    async_start(ch, "/test.Svc/Hold", 5, &r);
    assert_true(fix_wait_count(&f, &f.n_arrived, 5));

    shutdown_arg sa = {.srv = f.srv, .grace_ms = 20000};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, shutdown_main, &sa), 0);
    /* Once the server refuses new calls, shutdown has begun; the parked ones still run. */
    rpc_channel *probe = chan(c, &f, 1);
    bool refused = false;
    for (int i = 0; i < 200 && !refused; i++)
        refused = raw_get(probe, "probe", 1000) != RPC_OK;
    assert_true(refused);
    assert_int_equal(fix_release_held(&f), 5);
    wait_async(&r, 5);
    assert_int_equal(r.ok, 5);
    assert_string_equal(r.last, "released");
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.n_cancelled, 0);
    pthread_mutex_unlock(&f.mu);

    async_deinit(&r);
    rpc_client_free(c);
    fix_stop(&f, 0);
}

static void test_shutdown_cancels_calls_still_running_after_the_grace_period(void **state)
{
    (void)state;
    fixture f;
    fix_start(&f, NULL);
    rpc_client *c = new_client(NULL, 0);
    rpc_channel *ch = chan(c, &f, 0);
    async_result r;
    async_init(&r);
    async_start(ch, "/test.Svc/Hold", 4, &r);
    rpc_stream *s;
    assert_int_equal(rpc_stream_open(ch, "/test.Svc/HoldStream", 0, NULL, &s), 0);
    assert_true(fix_wait_count(&f, &f.n_arrived, 5));

    uint64_t t0 = tkv_clock_mono_ms();
    rpc_server_shutdown(f.srv, 200);
    assert_true(tkv_clock_mono_ms() - t0 >= 150);
    /* Every parked call heard of the cancellation and was finished by its handler. */
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.n_cancelled, 5);
    assert_int_equal(f.n_held, 0);
    pthread_mutex_unlock(&f.mu);
    wait_async(&r, 4);
    assert_int_equal(r.ok, 0);
    rpc_status st;
    assert_int_equal(rpc_stream_wait(s, FIX_TIMEOUT_MS, &st), 0);
    assert_int_not_equal(st.code, RPC_OK);
    rpc_stream_free(s);

    async_deinit(&r);
    rpc_client_free(c);
    fix_stop(&f, 0);
}

/* ---- TLS ----------------------------------------------------------------------------- */

typedef struct pki {
    char dir[64];
    char path[8][128];
} pki;

enum { CA_PEM, SERVER_PEM, SERVER_KEY, CLIENT_PEM, CLIENT_KEY, ROGUE_PEM, ROGUE_KEY };

/* Makes a throw-away CA, a server certificate for 127.0.0.1, a client certificate with CN
 * "client-ok" and one with CN "rogue", all signed by the CA, with the openssl CLI. */
static void make_pki(pki *p)
{
    snprintf(p->dir, sizeof(p->dir), "/tmp/tkv-rpc-tls-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    const char *names[] = {"ca.pem",     "server.pem", "server.key", "client.pem",
                           "client.key", "rogue.pem",  "rogue.key",  "ca.key"};
    char dir[sizeof(p->dir)];
    memcpy(dir, p->dir, sizeof(dir));
    for (int i = 0; i < 8; i++)
        snprintf(p->path[i], sizeof(p->path[i]), "%s/%s", dir, names[i]);
    tpki_ca(dir, "ca", "tikv-c test CA");
    tpki_cert(dir, "ca", "server", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost");
    tpki_cert(dir, "ca", "client", "client-ok", "extendedKeyUsage=clientAuth");
    tpki_cert(dir, "ca", "rogue", "rogue", "extendedKeyUsage=clientAuth");
}

static void drop_pki(pki *p)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
    tpki_run(cmd);
}

static void test_mutual_tls_refuses_calls_without_a_client_certificate(void **state)
{
    (void)state;
    pki p;
    make_pki(&p);
    rpc_tls server_tls = {p.path[CA_PEM], p.path[SERVER_PEM], p.path[SERVER_KEY]};
    const char *allowed[] = {"client-ok", NULL};
    fixture f;
    fix_start(&f, &(fix_cfg){.tls = &server_tls, .allowed_cn = allowed});

    rpc_tls good = {p.path[CA_PEM], p.path[CLIENT_PEM], p.path[CLIENT_KEY]};
    rpc_client *c = new_client(&good, 0);
    assert_int_equal(raw_get(chan(c, &f, 0), "secure", 10000), RPC_OK);
    rpc_client_free(c);

    /* The handshake lets a client without a certificate in; its calls are refused. */
    rpc_tls no_cert = {p.path[CA_PEM], NULL, NULL};
    c = new_client(&no_cert, 0);
    assert_int_equal(raw_get(chan(c, &f, 0), "nocert", 10000), RPC_UNAUTHENTICATED);
    rpc_client_free(c);

    c = new_client(NULL, 0);
    assert_int_equal(raw_get(chan(c, &f, 0), "plain", 10000), RPC_UNAVAILABLE);
    rpc_client_free(c);

    /* A valid certificate whose common name is not on the allow-list. */
    rpc_tls rogue = {p.path[CA_PEM], p.path[ROGUE_PEM], p.path[ROGUE_KEY]};
    c = new_client(&rogue, 0);
    assert_int_equal(raw_get(chan(c, &f, 0), "rogue", 10000), RPC_PERMISSION_DENIED);
    rpc_client_free(c);

    fix_stop(&f, 1000);
    drop_pki(&p);
}

static void never_called(rpc_call *call, tkv_slice msg, void *ud)
{
    (void)msg;
    (void)ud;
    rpc_call_finish(call, RPC_INTERNAL, "this server never starts");
}

static void test_bad_tls_and_address_configs_are_rejected(void **state)
{
    (void)state;
    rpc_server_opts o;
    rpc_server_opts_init(&o);
    o.addr = "127.0.0.1:0";
    rpc_tls missing = {"/nonexistent/ca.pem", "/nonexistent/c.pem", "/nonexistent/k.pem"};
    o.tls = &missing;
    rpc_server *s = NULL;
    assert_int_equal(rpc_server_new(&o, &s), TKV_ECONFIG);
    rpc_tls half = {NULL, "/nonexistent/c.pem", NULL};
    o.tls = &half;
    assert_int_equal(rpc_server_new(&o, &s), TKV_ECONFIG);
    o.tls = NULL;
    const char *cn[] = {"x", NULL};
    o.cert_allowed_cn = cn;
    assert_int_equal(rpc_server_new(&o, &s), TKV_ECONFIG);
    o.cert_allowed_cn = NULL;

    rpc_client_opts co;
    rpc_client_opts_init(&co);
    rpc_tls no_ca = {NULL, NULL, NULL};
    co.tls = &no_ca; /* all NULL: plaintext, accepted */
    rpc_client *c;
    assert_int_equal(rpc_client_new(&co, &c), 0);
    rpc_client_free(c);
    rpc_tls cert_only = {NULL, "/nonexistent/c.pem", "/nonexistent/k.pem"};
    co.tls = &cert_only;
    assert_int_equal(rpc_client_new(&co, &c), TKV_ECONFIG);

    /* Two servers cannot listen on one port. */
    fixture f;
    fix_start(&f, NULL);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f.port);
    o.addr = addr;
    assert_int_equal(rpc_server_new(&o, &s), 0);
    assert_int_equal(rpc_server_start(s), TKV_ECONFIG);
    assert_int_equal(rpc_server_port(s), 0);
    assert_non_null(strstr(rpc_server_errmsg(s), addr));
    rpc_server_free(s);

    /* Method registration rules. */
    o.addr = "127.0.0.1:0";
    assert_int_equal(rpc_server_new(&o, &s), 0);
    rpc_handler bad_bidi = {.type = RPC_BIDI_STREAMING, .on_request = NULL};
    assert_int_equal(rpc_server_add_method(s, "/a.B/C", &bad_bidi), -EINVAL);
    rpc_handler ok = {.type = RPC_UNARY, .on_request = never_called};
    assert_int_equal(rpc_server_add_method(s, "no-slash", &ok), -EINVAL);
    assert_int_equal(rpc_server_add_method(s, "/a.B/", &ok), -EINVAL);
    assert_int_equal(rpc_server_add_method(s, "/a.B/C", &ok), 0);
    assert_int_equal(rpc_server_add_method(s, "/a.B/C", &ok), TKV_EEXIST);
    rpc_server_free(s);
    fix_stop(&f, 1000);
}

/* ---- message helpers ----------------------------------------------------------------- */

static void test_message_helpers_round_trip_and_reject_garbage(void **state)
{
    (void)state;
    Kvrpcpb__RawPutRequest req = KVRPCPB__RAW_PUT_REQUEST__INIT;
    req.key.data = (uint8_t *)"k";
    req.key.len = 1;
    req.value.data = (uint8_t *)"value";
    req.value.len = 5;
    req.ttl = 30;
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(rpc_msg_pack(&req.base, &b), 0);
    ProtobufCMessage *m;
    assert_int_equal(rpc_msg_unpack(&kvrpcpb__raw_put_request__descriptor, tkv_buf_slice(&b), &m),
                     0);
    Kvrpcpb__RawPutRequest *back = (Kvrpcpb__RawPutRequest *)m;
    assert_int_equal(back->ttl, 30);
    assert_memory_equal(back->value.data, "value", 5);
    rpc_msg_free(m);

    struct grpc_byte_buffer *bb;
    assert_int_equal(rpc_msg_to_bb(&req.base, &bb), 0);
    assert_int_equal(rpc_msg_from_bb(&kvrpcpb__raw_put_request__descriptor, bb, &m), 0);
    assert_int_equal(((Kvrpcpb__RawPutRequest *)m)->ttl, 30);
    rpc_msg_free(m);
    rpc_msg_free(NULL);
    grpc_byte_buffer_destroy(bb);

    static const uint8_t garbage[] = {0x12, 0x09, 0x01};
    assert_int_equal(rpc_msg_unpack(&kvrpcpb__raw_put_request__descriptor,
                                    tkv_slice_of(garbage, sizeof(garbage)), &m),
                     TKV_ECORRUPT);
    /* Allocation failures while decoding surface as errors, never as a crash. */
    tkv_alloc_fail_after(0);
    assert_int_equal(rpc_msg_unpack(&kvrpcpb__raw_put_request__descriptor, tkv_buf_slice(&b), &m),
                     TKV_ECORRUPT);
    tkv_alloc_fault_clear();
    tkv_buf_deinit(&b);

    rpc_status st;
    rpc_status_set(&st, RPC_ABORTED, "n=%d", 7);
    assert_string_equal(st.message, "n=7");
    assert_string_equal(rpc_code_name(RPC_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
    assert_string_equal(rpc_code_name(99), "UNKNOWN");
}

static int group_setup(void **state)
{
    (void)state;
    rpc_init();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rpc_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_helpers_round_trip_and_reject_garbage),
        cmocka_unit_test(test_unary_call_carries_raw_get_messages),
        cmocka_unit_test(test_unknown_method_answers_unimplemented),
        cmocka_unit_test(test_health_check_answers_serving_and_follows_overrides),
        cmocka_unit_test(test_deadline_expires_and_the_handler_learns_of_it),
        cmocka_unit_test(test_client_cancel_reaches_the_handler),
        cmocka_unit_test(test_oversize_message_is_rejected_with_resource_exhausted),
        cmocka_unit_test(test_default_limits_accept_a_large_message),
        cmocka_unit_test(test_bidi_stream_carries_10000_messages_in_order),
        cmocka_unit_test(test_on_sent_paces_a_stream_one_message_at_a_time),
        cmocka_unit_test(test_client_streaming_sums_and_server_streaming_reads_in_order),
        cmocka_unit_test(test_streams_can_be_freed_from_their_own_callbacks),
        cmocka_unit_test(test_idle_stream_survives_frequent_client_pings),
        cmocka_unit_test(test_64_concurrent_clients_all_get_their_answers),
        cmocka_unit_test(test_handler_completes_the_call_from_another_thread),
        cmocka_unit_test(test_graceful_shutdown_finishes_calls_in_flight),
        cmocka_unit_test(test_shutdown_cancels_calls_still_running_after_the_grace_period),
        cmocka_unit_test(test_mutual_tls_refuses_calls_without_a_client_certificate),
        cmocka_unit_test(test_bad_tls_and_address_configs_are_rejected),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
