/*
 * rpc_bench.c: unary requests per second through the rpc module on 127.0.0.1.
 *
 * Starts an rpc_server with a trivial handler (/bench.Svc/Ping answers a fixed 8-byte
 * message from the completion-queue thread), then for each concurrency level runs that many
 * client threads issuing blocking rpc_unary calls back to back for a fixed time, and prints
 * requests per second and latency percentiles. Server and clients share the machine's cores,
 * so the figures are for the whole round trip on one host.
 *
 *   rpc-bench [--seconds S] [--concurrency 1,64] [--server-threads N] [--client-threads N]
 *             [--conns N] [--payload BYTES] [--async] [--max-connections N]
 *
 * --max-connections turns the server's connection gate on (same limit in all and per
 * address), to measure what it costs per call.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"
#include "rpc/rpc.h"

#define MAX_THREADS 1024
#define N_BUCKETS   64 /* latency histogram: bucket i holds [2^(i/2), 2^((i+1)/2)) microseconds */

typedef struct bench_opts {
    double seconds;
    int levels[16];
    int n_levels;
    int server_threads;
    int client_threads;
    int conns;
    size_t payload;
    bool async;
    int max_connections; /* > 0 turns the connection gate on (rpc.h max_connections) */
} bench_opts;

typedef struct worker {
    pthread_t th;
    rpc_channel *ch;
    const bench_opts *o;
    const atomic_bool *stop;
    uint64_t done;
    uint64_t failed;
    uint64_t hist[N_BUCKETS];
} worker;

static void ping(rpc_call *call, tkv_slice req, void *ud)
{
    (void)req;
    (void)ud;
    static const uint8_t pong[8] = {'p', 'o', 'n', 'g', 0, 0, 0, 0};
    TKV_IGNORE(rpc_call_reply(call, tkv_slice_of(pong, sizeof(pong))));
}

static int bucket_of(uint64_t us)
{
    int b = 0;
    /* Two buckets per power of two: enough resolution for p50 / p99. */
    while (b < N_BUCKETS - 1) {
        uint64_t lo = 1ULL << ((b + 1) / 2);
        if ((b + 1) % 2 == 1)
            lo = lo + lo / 2;
        if (us < lo)
            break;
        b++;
    }
    return b;
}

static double bucket_upper_us(int b)
{
    uint64_t base = 1ULL << ((b + 1) / 2);
    return (b + 1) % 2 == 1 ? (double)base * 1.5 : (double)base;
}

static void record(worker *w, uint64_t ns)
{
    w->hist[bucket_of(ns / 1000)]++;
}

static void *sync_main(void *arg)
{
    worker *w = arg;
    uint8_t *payload = calloc(1, w->o->payload ? w->o->payload : 1);
    tkv_buf resp;
    tkv_buf_init(&resp);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        uint64_t t0 = tkv_clock_mono_ns();
        rpc_status st;
        if (rpc_unary(w->ch, "/bench.Svc/Ping", tkv_slice_of(payload, w->o->payload), 10000, &resp,
                      &st) == 0) {
            w->done++;
            record(w, tkv_clock_mono_ns() - t0);
        } else {
            w->failed++;
        }
    }
    tkv_buf_deinit(&resp);
    free(payload);
    return NULL;
}

/* Async mode: each "worker" keeps one call in flight, reissuing from the callback. */
typedef struct async_slot {
    worker *w;
    uint64_t t0;
    uint8_t *payload;
    atomic_bool *idle;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
} async_slot;

static void async_issue(async_slot *s);

static void async_done(const rpc_status *st, tkv_slice resp, void *ud)
{
    (void)resp;
    async_slot *s = ud;
    if (st->code == RPC_OK) {
        s->w->done++;
        record(s->w, tkv_clock_mono_ns() - s->t0);
    } else {
        s->w->failed++;
    }
    if (atomic_load_explicit(s->w->stop, memory_order_relaxed)) {
        pthread_mutex_lock(s->mu);
        atomic_store(s->idle, true);
        pthread_cond_broadcast(s->cv);
        pthread_mutex_unlock(s->mu);
        return;
    }
    async_issue(s);
}

static void async_issue(async_slot *s)
{
    s->t0 = tkv_clock_mono_ns();
    if (rpc_unary_async(s->w->ch, "/bench.Svc/Ping", tkv_slice_of(s->payload, s->w->o->payload),
                        10000, async_done, s) != 0) {
        fprintf(stderr, "rpc-bench: async call refused\n");
        exit(1);
    }
}

static void merge(worker *ws, int n, uint64_t *done, uint64_t *failed, uint64_t hist[N_BUCKETS])
{
    *done = *failed = 0;
    memset(hist, 0, sizeof(uint64_t) * N_BUCKETS);
    for (int i = 0; i < n; i++) {
        *done += ws[i].done;
        *failed += ws[i].failed;
        for (int b = 0; b < N_BUCKETS; b++)
            hist[b] += ws[i].hist[b];
    }
}

static double percentile_us(const uint64_t hist[N_BUCKETS], uint64_t total, double p)
{
    uint64_t want = (uint64_t)((double)total * p);
    uint64_t seen = 0;
    for (int b = 0; b < N_BUCKETS; b++) {
        seen += hist[b];
        if (seen > want)
            return bucket_upper_us(b);
    }
    return bucket_upper_us(N_BUCKETS - 1);
}

static void run_level(rpc_client *cl, const char *addr, const bench_opts *o, int level)
{
    worker *ws = calloc((size_t)level, sizeof(*ws));
    async_slot *slots = calloc((size_t)level, sizeof(*slots));
    atomic_bool *idle = calloc((size_t)level, sizeof(*idle));
    if (ws == NULL || slots == NULL || idle == NULL) {
        fprintf(stderr, "rpc-bench: out of memory\n");
        exit(1);
    }
    atomic_bool stop;
    atomic_init(&stop, false);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int conns = o->conns < level ? o->conns : level;
    for (int i = 0; i < level; i++) {
        ws[i].o = o;
        ws[i].stop = &stop;
        if (rpc_client_channel(cl, addr, (unsigned)(i % conns), &ws[i].ch) != 0) {
            fprintf(stderr, "rpc-bench: channel failed\n");
            exit(1);
        }
    }
    /* Connect every channel before the clock starts. */
    for (int i = 0; i < conns; i++) {
        tkv_buf r;
        tkv_buf_init(&r);
        rpc_status st;
        if (rpc_unary(ws[i].ch, "/bench.Svc/Ping", tkv_slice_of("", 0), 10000, &r, &st) != 0) {
            fprintf(stderr, "rpc-bench: warm-up call failed: %s %s\n", rpc_code_name(st.code),
                    st.message);
            exit(1);
        }
        tkv_buf_deinit(&r);
    }
    uint64_t t0 = tkv_clock_mono_ns();
    for (int i = 0; i < level; i++) {
        if (o->async) {
            slots[i] = (async_slot){.w = &ws[i], .idle = &idle[i], .mu = &mu, .cv = &cv};
            slots[i].payload = calloc(1, o->payload ? o->payload : 1);
            atomic_init(&idle[i], false);
            async_issue(&slots[i]);
        } else if (pthread_create(&ws[i].th, NULL, sync_main, &ws[i]) != 0) {
            fprintf(stderr, "rpc-bench: thread creation failed\n");
            exit(1);
        }
    }
    struct timespec d = {.tv_sec = (time_t)o->seconds,
                         .tv_nsec = (long)((o->seconds - (double)(time_t)o->seconds) * 1e9)};
    while (nanosleep(&d, &d) != 0) {
    }
    atomic_store(&stop, true);
    for (int i = 0; i < level; i++) {
        if (o->async) {
            pthread_mutex_lock(&mu);
            while (!atomic_load(&idle[i]))
                pthread_cond_wait(&cv, &mu);
            pthread_mutex_unlock(&mu);
            free(slots[i].payload);
        } else {
            pthread_join(ws[i].th, NULL);
        }
    }
    double secs = (double)(tkv_clock_mono_ns() - t0) / 1e9;
    uint64_t done, failed, hist[N_BUCKETS];
    merge(ws, level, &done, &failed, hist);
    printf("unary %-5s concurrency=%-4d conns=%-3d requests=%-9" PRIu64 " failed=%-4" PRIu64
           " seconds=%.2f rps=%.0f p50_us<=%.0f p99_us<=%.0f\n",
           o->async ? "async" : "sync", level, conns, done, failed, secs, (double)done / secs,
           percentile_us(hist, done, 0.50), percentile_us(hist, done, 0.99));
    fflush(stdout);
    free(ws);
    free(slots);
    free(idle);
}

static void usage(void)
{
    fprintf(stderr, "usage: rpc-bench [--seconds S] [--concurrency 1,64] [--server-threads N]\n"
                    "                 [--client-threads N] [--conns N] [--payload BYTES] "
                    "[--async] [--max-connections N]\n");
    exit(2);
}

/* Parses the whole of @s as a number in [@lo, @hi], or exits with the usage text. */
static long parse_long(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        usage();
    return v;
}

static double parse_seconds(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0))
        usage();
    return v;
}

static void parse_levels(bench_opts *o, const char *s)
{
    o->n_levels = 0;
    char *copy = strdup(s);
    if (copy == NULL)
        usage();
    for (char *tok = strtok(copy, ","); tok != NULL; tok = strtok(NULL, ",")) {
        int v = (int)parse_long(tok, 1, MAX_THREADS);
        if (o->n_levels == (int)TKV_ARRAY_LEN(o->levels))
            usage();
        o->levels[o->n_levels++] = v;
    }
    free(copy);
    if (o->n_levels == 0)
        usage();
}

int main(int argc, char **argv)
{
    bench_opts o = {.seconds = 3.0,
                    .levels = {1, 64},
                    .n_levels = 2,
                    .server_threads = 2,
                    .client_threads = 2,
                    .conns = 4,
                    .payload = 16};
    static const struct option longopts[] = {{"seconds", required_argument, NULL, 's'},
                                             {"concurrency", required_argument, NULL, 'c'},
                                             {"server-threads", required_argument, NULL, 'S'},
                                             {"client-threads", required_argument, NULL, 'C'},
                                             {"conns", required_argument, NULL, 'n'},
                                             {"payload", required_argument, NULL, 'p'},
                                             {"async", no_argument, NULL, 'a'},
                                             {"max-connections", required_argument, NULL, 'm'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 's':
            o.seconds = parse_seconds(optarg);
            break;
        case 'c':
            parse_levels(&o, optarg);
            break;
        case 'S':
            o.server_threads = (int)parse_long(optarg, 1, MAX_THREADS);
            break;
        case 'C':
            o.client_threads = (int)parse_long(optarg, 1, MAX_THREADS);
            break;
        case 'n':
            o.conns = (int)parse_long(optarg, 1, 1024);
            break;
        case 'p':
            o.payload = (size_t)parse_long(optarg, 0, 64L << 20);
            break;
        case 'a':
            o.async = true;
            break;
        case 'm':
            o.max_connections = (int)parse_long(optarg, 1, 1 << 30);
            break;
        default:
            usage();
        }
    }
    if (o.seconds <= 0 || o.server_threads < 1 || o.client_threads < 1 || o.conns < 1)
        usage();
    tkv_log_set_level(TKV_LOG_WARN);
    rpc_init();

    rpc_server_opts so;
    rpc_server_opts_init(&so);
    so.addr = "127.0.0.1:0";
    so.cq_threads = o.server_threads;
    so.max_connections = o.max_connections;
    so.max_connections_per_addr = o.max_connections;
    rpc_server *srv;
    rpc_handler h = {.type = RPC_UNARY, .on_request = ping};
    if (rpc_server_new(&so, &srv) != 0 || rpc_server_add_method(srv, "/bench.Svc/Ping", &h) != 0 ||
        rpc_server_start(srv) != 0) {
        fprintf(stderr, "rpc-bench: server start failed\n");
        return 1;
    }
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", rpc_server_port(srv));

    rpc_client_opts co;
    rpc_client_opts_init(&co);
    co.cq_threads = o.client_threads;
    rpc_client *cl;
    if (rpc_client_new(&co, &cl) != 0) {
        fprintf(stderr, "rpc-bench: client start failed\n");
        return 1;
    }
    printf("rpc-bench: trivial unary handler on %s, server cq threads %d, client cq threads %d, "
           "payload %zu bytes, %.1f s per level, connection gate %s\n",
           addr, o.server_threads, o.client_threads, o.payload, o.seconds,
           o.max_connections > 0 ? "on" : "off");
    for (int i = 0; i < o.n_levels; i++)
        run_level(cl, addr, &o, o.levels[i]);

    rpc_client_free(cl);
    rpc_server_shutdown(srv, 1000);
    rpc_server_free(srv);
    rpc_shutdown();
    return 0;
}
