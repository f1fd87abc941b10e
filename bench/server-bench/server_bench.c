/*
 * server_bench.c: raw put and get throughput through the whole tikv service in one process:
 * rpc client -> gRPC -> srv_service (unary or BatchCommands) -> storage (raw methods) ->
 * stor_kv_local -> engine. No replication, so this is the ceiling the service and storage
 * layers leave for raftstore, on this host's cores (server and clients share them).
 *
 *   server-bench [--seconds S] [--concurrency 1,64] [--op put|get] [--batch N]
 *                [--engine rocks|mem] [--sync] [--value-size BYTES] [--keys N]
 *                [--server-threads N] [--conns N]
 *
 * --batch 0 sends unary RawPut/RawGet calls; --batch N sends BatchCommandsRequests of N
 * commands on one stream per client thread and waits for all N answers (like client-go with
 * its batching on). Each level prints operations per second and latency percentiles per call.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "server/server.h"
#include "tikvpb.pb-c.h"

#define MAX_LEVELS 16
#define N_BUCKETS  96 /* bucket b: latencies below 2^(b/4) microseconds */

typedef struct bench_opts {
    double seconds;
    int levels[MAX_LEVELS];
    int n_levels;
    bool put;
    int batch;
    bool rocks;
    bool sync;
    size_t value_size;
    uint64_t keys;
    int server_threads;
    int conns;
} bench_opts;

typedef struct worker {
    pthread_t th;
    const bench_opts *o;
    rpc_channel *ch;
    const atomic_bool *stop;
    uint64_t seed;
    uint64_t ops, calls, failed;
    uint64_t hist[N_BUCKETS];
} worker;

static void die(const char *what, int rc)
{
    fprintf(stderr, "server-bench: %s: %s\n", what, tkv_strerror(rc));
    exit(1);
}

static int bucket_of(uint64_t ns)
{
    double us = (double)ns / 1000.0;
    int b = 0;
    double upper = 1.0;
    while (b < N_BUCKETS - 1 && us >= upper) {
        upper *= 1.189207115; /* 2^(1/4) */
        b++;
    }
    return b;
}

static double bucket_upper_us(int b)
{
    double upper = 1.0;
    for (int i = 0; i < b; i++)
        upper *= 1.189207115;
    return upper;
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Fills a RawPut or RawGet request for a random key into the given structs. */
static void fill_request(worker *w, char *key, Kvrpcpb__Context *ctx, Kvrpcpb__RawPutRequest *put,
                         Kvrpcpb__RawGetRequest *get, const uint8_t *value)
{
    snprintf(key, 32, "key%012llu", (unsigned long long)(next_rand(&w->seed) % w->o->keys));
    kvrpcpb__raw_put_request__init(put);
    kvrpcpb__raw_get_request__init(get);
    put->context = get->context = ctx;
    put->key.data = get->key.data = (uint8_t *)key;
    put->key.len = get->key.len = strlen(key);
    put->value.data = (uint8_t *)value;
    put->value.len = w->o->value_size;
}

static void *unary_main(void *arg)
{
    worker *w = arg;
    uint8_t *value = calloc(1, w->o->value_size + 1);
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    ctx.region_id = 1;
    const char *method = w->o->put ? "/tikvpb.Tikv/RawPut" : "/tikvpb.Tikv/RawGet";
    tkv_buf req, resp;
    tkv_buf_init(&req);
    tkv_buf_init(&resp);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        char key[32];
        Kvrpcpb__RawPutRequest put;
        Kvrpcpb__RawGetRequest get;
        fill_request(w, key, &ctx, &put, &get, value);
        if (rpc_msg_pack(w->o->put ? &put.base : &get.base, &req) != 0)
            die("pack", -ENOMEM);
        uint64_t t0 = tkv_clock_mono_ns();
        rpc_status st;
        if (rpc_unary(w->ch, method, tkv_buf_slice(&req), 10000, &resp, &st) == 0) {
            w->ops++;
            w->calls++;
            w->hist[bucket_of(tkv_clock_mono_ns() - t0)]++;
        } else {
            w->failed++;
        }
    }
    tkv_buf_deinit(&req);
    tkv_buf_deinit(&resp);
    free(value);
    return NULL;
}

static void *batch_main(void *arg)
{
    worker *w = arg;
    int n = w->o->batch;
    uint8_t *value = calloc(1, w->o->value_size + 1);
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    ctx.region_id = 1;
    char(*keys)[32] = calloc((size_t)n, 32);
    Kvrpcpb__RawPutRequest *puts = calloc((size_t)n, sizeof(*puts));
    Kvrpcpb__RawGetRequest *gets = calloc((size_t)n, sizeof(*gets));
    Tikvpb__BatchCommandsRequest__Request *reqs = calloc((size_t)n, sizeof(*reqs));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Tikvpb__BatchCommandsRequest__Request **rp = calloc((size_t)n, sizeof(*rp));
    uint64_t *ids = calloc((size_t)n, sizeof(*ids));
    if (value == NULL || keys == NULL || puts == NULL || gets == NULL || reqs == NULL ||
        rp == NULL || ids == NULL)
        die("calloc", -ENOMEM);
    rpc_stream *s;
    int rc = rpc_stream_open(w->ch, "/tikvpb.Tikv/BatchCommands", 0, NULL, &s);
    if (rc != 0)
        die("open BatchCommands", rc);
    uint64_t next_id = 1;
    tkv_buf msg;
    tkv_buf_init(&msg);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        for (int i = 0; i < n; i++) {
            fill_request(w, keys[i], &ctx, &puts[i], &gets[i], value);
            tikvpb__batch_commands_request__request__init(&reqs[i]);
            if (w->o->put) {
                reqs[i].cmd_case = TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_RAW_PUT;
                reqs[i].rawput = &puts[i];
            } else {
                reqs[i].cmd_case = TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_RAW_GET;
                reqs[i].rawget = &gets[i];
            }
            rp[i] = &reqs[i];
            ids[i] = next_id++;
        }
        Tikvpb__BatchCommandsRequest req = TIKVPB__BATCH_COMMANDS_REQUEST__INIT;
        req.requests = rp;
        req.n_requests = (size_t)n;
        req.request_ids = ids;
        req.n_request_ids = (size_t)n;
        uint64_t t0 = tkv_clock_mono_ns();
        if ((rc = rpc_stream_send_msg(s, &req.base)) != 0)
            die("send", rc);
        size_t got = 0;
        while (got < (size_t)n) {
            rpc_status st;
            if ((rc = rpc_stream_read(s, 10000, &msg, &st)) != 0)
                die("read", rc);
            Tikvpb__BatchCommandsResponse *resp =
                tikvpb__batch_commands_response__unpack(NULL, msg.len, msg.data);
            if (resp == NULL)
                die("undecodable BatchCommandsResponse", TKV_ECORRUPT);
            got += resp->n_request_ids;
            tikvpb__batch_commands_response__free_unpacked(resp, NULL);
        }
        w->ops += (uint64_t)n;
        w->calls++;
        w->hist[bucket_of(tkv_clock_mono_ns() - t0)]++;
    }
    TKV_IGNORE(rpc_stream_close_send(s));
    rpc_stream_free(s);
    tkv_buf_deinit(&msg);
    free(value);
    free(keys);
    free(puts);
    free(gets);
    free(reqs);
    free(rp);
    free(ids);
    return NULL;
}

static double percentile_us(const uint64_t *hist, uint64_t total, double p)
{
    uint64_t want = (uint64_t)((double)total * p), seen = 0;
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
    if (ws == NULL)
        die("calloc", -ENOMEM);
    atomic_bool stop;
    atomic_init(&stop, false);
    int conns = TKV_MIN(o->conns, level);
    for (int i = 0; i < level; i++) {
        ws[i].o = o;
        ws[i].stop = &stop;
        ws[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        int rc = rpc_client_channel(cl, addr, (unsigned)(i % conns), &ws[i].ch);
        if (rc != 0)
            die("channel", rc);
    }
    uint64_t t0 = tkv_clock_mono_ns();
    for (int i = 0; i < level; i++)
        pthread_create(&ws[i].th, NULL, o->batch > 0 ? batch_main : unary_main, &ws[i]);
    tkv_sleep_ms((uint64_t)(o->seconds * 1000));
    atomic_store(&stop, true);
    uint64_t ops = 0, calls = 0, failed = 0, hist[N_BUCKETS] = {0};
    for (int i = 0; i < level; i++) {
        pthread_join(ws[i].th, NULL);
        ops += ws[i].ops;
        calls += ws[i].calls;
        failed += ws[i].failed;
        for (int b = 0; b < N_BUCKETS; b++)
            hist[b] += ws[i].hist[b];
    }
    double secs = (double)(tkv_clock_mono_ns() - t0) / 1e9;
    printf("%-4s %-7s batch=%-4d concurrency=%-4d %10.0f ops/s  call p50=%.0fus p99=%.0fus"
           "  failed=%llu\n",
           o->put ? "put" : "get", o->rocks ? (o->sync ? "rocks+s" : "rocks") : "mem", o->batch,
           level, (double)ops / secs, percentile_us(hist, calls, 0.5),
           percentile_us(hist, calls, 0.99), (unsigned long long)failed);
    fflush(stdout);
    free(ws);
}

static void usage(void)
{
    fprintf(stderr, "usage: server-bench [--seconds S] [--concurrency 1,64] [--op put|get] "
                    "[--batch N] [--engine rocks|mem] [--sync] [--value-size B] [--keys N] "
                    "[--server-threads N] [--conns N]\n");
    exit(2);
}

/* Whole-string decimal integer in [@lo, @hi]; anything else prints the usage and exits. */
static long parse_long(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        usage();
    return v;
}

/* Whole-string decimal number; anything else prints the usage and exits. */
static double parse_double(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0')
        usage();
    return v;
}

static void parse(int argc, char **argv, bench_opts *o)
{
    *o = (bench_opts){.seconds = 5,
                      .levels = {1, 64},
                      .n_levels = 2,
                      .put = true,
                      .rocks = true,
                      .value_size = 100,
                      .keys = 100000,
                      .server_threads = 2,
                      .conns = 4};
    static const struct option longs[] = {{"seconds", required_argument, NULL, 's'},
                                          {"concurrency", required_argument, NULL, 'c'},
                                          {"op", required_argument, NULL, 'o'},
                                          {"batch", required_argument, NULL, 'b'},
                                          {"engine", required_argument, NULL, 'e'},
                                          {"sync", no_argument, NULL, 'y'},
                                          {"value-size", required_argument, NULL, 'v'},
                                          {"keys", required_argument, NULL, 'k'},
                                          {"server-threads", required_argument, NULL, 't'},
                                          {"conns", required_argument, NULL, 'n'},
                                          {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 's':
            o->seconds = parse_double(optarg);
            break;
        case 'c': {
            o->n_levels = 0;
            for (char *save, *t = strtok_r(optarg, ",", &save); t && o->n_levels < MAX_LEVELS;
                 t = strtok_r(NULL, ",", &save))
                o->levels[o->n_levels++] = (int)parse_long(t, 1, INT_MAX);
            break;
        }
        case 'o':
            o->put = strcmp(optarg, "get") != 0;
            break;
        case 'b':
            o->batch = (int)parse_long(optarg, 0, INT_MAX);
            break;
        case 'e':
            o->rocks = strcmp(optarg, "mem") != 0;
            break;
        case 'y':
            o->sync = true;
            break;
        case 'v':
            o->value_size = (size_t)parse_long(optarg, 0, LONG_MAX);
            break;
        case 'k':
            o->keys = (uint64_t)parse_long(optarg, 1, LONG_MAX);
            break;
        case 't':
            o->server_threads = (int)parse_long(optarg, 0, INT_MAX);
            break;
        case 'n':
            o->conns = (int)parse_long(optarg, 1, INT_MAX);
            break;
        default:
            usage();
        }
    }
    if (o->seconds <= 0 || o->n_levels == 0 || o->keys == 0 || o->conns < 1 || o->batch < 0)
        usage();
    for (int i = 0; i < o->n_levels; i++)
        if (o->levels[i] < 1)
            usage();
}

static void preload_done(void *ud, const ProtobufCMessage *resp)
{
    const Kvrpcpb__RawBatchPutResponse *r = (const Kvrpcpb__RawBatchPutResponse *)resp;
    if (r->region_error != NULL || r->error[0] != '\0')
        *(int *)ud = 1;
}

/* Writes every key once so gets find values (stor_kv_local answers before returning). */
static void preload(stor *s, const bench_opts *o)
{
    const stor_method *m = stor_method_find("RawBatchPut");
    uint8_t *value = calloc(1, o->value_size + 1);
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    ctx.region_id = 1;
    enum { CHUNK = 1000 };
    static char keys[CHUNK][32];
    Kvrpcpb__KvPair pairs[CHUNK], *pp[CHUNK];
    for (uint64_t base = 0; base < o->keys; base += CHUNK) {
        size_t n = (size_t)TKV_MIN((uint64_t)CHUNK, o->keys - base);
        for (size_t i = 0; i < n; i++) {
            snprintf(keys[i], sizeof(keys[i]), "key%012" PRIu64, base + i);
            kvrpcpb__kv_pair__init(&pairs[i]);
            pairs[i].key.data = (uint8_t *)keys[i];
            pairs[i].key.len = strlen(keys[i]);
            pairs[i].value.data = value;
            pairs[i].value.len = o->value_size;
            pp[i] = &pairs[i];
        }
        Kvrpcpb__RawBatchPutRequest req = KVRPCPB__RAW_BATCH_PUT_REQUEST__INIT;
        req.context = &ctx;
        req.pairs = pp;
        req.n_pairs = n;
        int failed = 0;
        int rc = m->fn(s, &req.base, preload_done, &failed);
        if (rc != 0 || failed)
            die("preload", rc != 0 ? rc : TKV_EENGINE);
    }
    free(value);
}

int main(int argc, char **argv)
{
    bench_opts o;
    parse(argc, argv, &o);
    tkv_log_set_level(TKV_LOG_WARN);
    rpc_init();
    char dir[64] = "";
    eng_db *db;
    char err[TKV_ERRMSG_LEN];
    int rc;
    if (o.rocks) {
        snprintf(dir, sizeof(dir), "/tmp/tkv-server-bench-XXXXXX");
        if (mkdtemp(dir) == NULL)
            die("mkdtemp", -errno);
        rc = eng_rocks_open(dir, NULL, &db, err);
    } else {
        rc = eng_mem_open(NULL, &db);
    }
    if (rc != 0)
        die("open engine", rc);
    stor_kv_local_opts ko = {.sync = o.sync};
    stor_kv *kv;
    if ((rc = stor_kv_local_new(db, &ko, &kv)) != 0)
        die("kv", rc);
    stor_opts so;
    stor_opts_init(&so);
    so.latch_slots = 1 << 16;
    so.max_batch_keys = 1 << 20;
    stor *s;
    if ((rc = stor_new(kv, &so, &s)) != 0)
        die("storage", rc);
    rpc_server_opts ro;
    rpc_server_opts_init(&ro);
    ro.addr = "127.0.0.1:0";
    ro.cq_threads = o.server_threads;
    rpc_server *rs;
    srv_service *svc;
    if ((rc = rpc_server_new(&ro, &rs)) != 0 || (rc = srv_service_new(rs, s, NULL, &svc)) != 0 ||
        (rc = rpc_server_start(rs)) != 0)
        die("server", rc);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", rpc_server_port(rs));
    if (!o.put)
        preload(s, &o);
    rpc_client_opts co;
    rpc_client_opts_init(&co);
    rpc_client *cl;
    if ((rc = rpc_client_new(&co, &cl)) != 0)
        die("client", rc);
    for (int i = 0; i < o.n_levels; i++)
        run_level(cl, addr, &o, o.levels[i]);
    rpc_client_free(cl);
    srv_service_shutdown(svc);
    rpc_server_shutdown(rs, 5000);
    srv_service_free(svc);
    rpc_server_free(rs);
    stor_free(s);
    stor_kv_free(kv);
    eng_close(db);
    if (o.rocks) {
        TKV_IGNORE(eng_rocks_destroy(dir, NULL, err));
        rmdir(dir);
    }
    rpc_shutdown();
    return 0;
}
