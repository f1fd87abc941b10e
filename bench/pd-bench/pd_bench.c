/*
 * pd_bench.c: pd-bench, load generator for pd-server.
 *
 *   pd-bench tso [--pd HOST:PORT] [--streams 16] [--batch 1,100] [--seconds 3]
 *
 * tso: for each batch size, N streams (one connection each, like N clients) send a
 * TsoRequest{count = batch} and wait for its response, back to back, for the given time;
 * prints requests/s, timestamps/s and latency percentiles. Without --pd it starts a
 * pd-server in-process (temporary data directory, port 0, no HTTP), so the figure covers
 * the server and the clients sharing this machine's cores.
 */
#include <errno.h>
#include <ftw.h>
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
#include "base/metrics.h"
#include "pd/pd.h"
#include "pdpb.pb-c.h"
#include "rpc/rpc.h"

#define MAX_STREAMS 256
#define N_BUCKETS   64

typedef struct opts {
    const char *pd;
    int streams;
    int batches[8];
    int n_batches;
    double seconds;
} opts;

typedef struct worker {
    pthread_t th;
    rpc_channel *ch;
    uint64_t cluster_id;
    uint32_t batch;
    const atomic_bool *stop;
    uint64_t requests;
    uint64_t failed;
    uint64_t last_ts;
    bool went_back;
    uint64_t hist[N_BUCKETS];
} worker;

static int bucket_of(uint64_t us)
{
    int b = 0;
    while (b < N_BUCKETS - 1) {
        double lo = (double)(1ull << (b / 2)) * ((b & 1) ? 1.41421356 : 1.0);
        if ((double)us < lo * 1.41421356)
            break;
        b++;
    }
    return b;
}

static double bucket_us(int b)
{
    return (double)(1ull << (b / 2)) * ((b & 1) ? 1.41421356 : 1.0);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    rpc_stream *s;
    if (rpc_stream_open(w->ch, "/pdpb.PD/Tso", 0, NULL, &s) != 0) {
        w->failed++;
        return NULL;
    }
    Pdpb__RequestHeader h = PDPB__REQUEST_HEADER__INIT;
    h.cluster_id = w->cluster_id;
    Pdpb__TsoRequest req = PDPB__TSO_REQUEST__INIT;
    req.header = &h;
    req.count = w->batch;
    req.dc_location = "global";
    tkv_buf packed, resp;
    tkv_buf_init(&packed);
    tkv_buf_init(&resp);
    if (rpc_msg_pack(&req.base, &packed) != 0) {
        w->failed++;
        rpc_stream_free(s);
        return NULL;
    }
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        uint64_t t0 = tkv_clock_mono_ns();
        rpc_status st;
        if (rpc_stream_send(s, tkv_buf_slice(&packed)) != 0 ||
            rpc_stream_read(s, 10000, &resp, &st) != 0) {
            w->failed++;
            break;
        }
        ProtobufCMessage *m;
        if (rpc_msg_unpack(&pdpb__tso_response__descriptor, tkv_buf_slice(&resp), &m) != 0) {
            w->failed++;
            break;
        }
        Pdpb__TsoResponse *r = (Pdpb__TsoResponse *)m;
        if (r->timestamp != NULL) {
            uint64_t ts =
                ((uint64_t)r->timestamp->physical << 18) | (uint64_t)r->timestamp->logical;
            if (ts - w->batch + 1 <= w->last_ts)
                w->went_back = true;
            w->last_ts = ts;
        }
        rpc_msg_free(m);
        w->requests++;
        w->hist[bucket_of((tkv_clock_mono_ns() - t0) / 1000)]++;
    }
    TKV_IGNORE(rpc_stream_close_send(s));
    rpc_status st;
    TKV_IGNORE(rpc_stream_wait(s, 5000, &st));
    rpc_stream_free(s);
    tkv_buf_deinit(&packed);
    tkv_buf_deinit(&resp);
    return NULL;
}

static double percentile(const uint64_t *hist, uint64_t total, double p)
{
    uint64_t want = (uint64_t)((double)total * p), seen = 0;
    for (int b = 0; b < N_BUCKETS; b++) {
        seen += hist[b];
        if (seen > want)
            return bucket_us(b);
    }
    return bucket_us(N_BUCKETS - 1);
}

static uint64_t cluster_id_of(rpc_channel *ch)
{
    Pdpb__GetMembersRequest req = PDPB__GET_MEMBERS_REQUEST__INIT;
    ProtobufCMessage *m;
    rpc_status st;
    if (rpc_unary_msg(ch, "/pdpb.PD/GetMembers", &req.base, &pdpb__get_members_response__descriptor,
                      5000, &m, &st) != 0) {
        fprintf(stderr, "pd-bench: GetMembers: %s %s\n", rpc_code_name(st.code), st.message);
        return 0;
    }
    Pdpb__GetMembersResponse *r = (Pdpb__GetMembersResponse *)m;
    uint64_t id = r->header ? r->header->cluster_id : 0;
    rpc_msg_free(m);
    return id;
}

static int run_tso(const opts *o, const char *addr)
{
    rpc_client_opts co;
    rpc_client_opts_init(&co);
    rpc_client *cli;
    if (rpc_client_new(&co, &cli) != 0)
        return 1;
    rpc_channel *ch0;
    if (rpc_client_channel(cli, addr, 0, &ch0) != 0) {
        rpc_client_free(cli);
        return 1;
    }
    uint64_t cluster_id = cluster_id_of(ch0);
    if (cluster_id == 0) {
        rpc_client_free(cli);
        return 1;
    }
    printf("pd-bench tso: %s, %d streams, %.1f s per batch size\n", addr, o->streams, o->seconds);
    printf("%-8s %12s %16s %10s %10s %10s\n", "batch", "requests/s", "timestamps/s", "p50(us)",
           "p99(us)", "errors");
    int rc = 0;
    for (int bi = 0; bi < o->n_batches; bi++) {
        worker *ws = calloc((size_t)o->streams, sizeof(*ws));
        if (ws == NULL)
            return 1;
        atomic_bool stop;
        atomic_init(&stop, false);
        for (int i = 0; i < o->streams; i++) {
            ws[i].cluster_id = cluster_id;
            ws[i].batch = (uint32_t)o->batches[bi];
            ws[i].stop = &stop;
            if (rpc_client_channel(cli, addr, (unsigned)i, &ws[i].ch) != 0 ||
                pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
                fprintf(stderr, "pd-bench: cannot start stream %d\n", i);
                return 1;
            }
        }
        uint64_t t0 = tkv_clock_mono_ns();
        tkv_sleep_ms((uint64_t)(o->seconds * 1000));
        atomic_store(&stop, true);
        for (int i = 0; i < o->streams; i++)
            pthread_join(ws[i].th, NULL);
        double secs = (double)(tkv_clock_mono_ns() - t0) / 1e9;
        uint64_t reqs = 0, failed = 0, hist[N_BUCKETS] = {0};
        bool back = false;
        for (int i = 0; i < o->streams; i++) {
            reqs += ws[i].requests;
            failed += ws[i].failed;
            back = back || ws[i].went_back;
            for (int b = 0; b < N_BUCKETS; b++)
                hist[b] += ws[i].hist[b];
        }
        printf("%-8d %12.0f %16.0f %10.0f %10.0f %10" PRIu64 "%s\n", o->batches[bi],
               (double)reqs / secs, (double)reqs * o->batches[bi] / secs,
               percentile(hist, reqs, 0.50), percentile(hist, reqs, 0.99), failed,
               back ? "  TIMESTAMPS WENT BACK" : "");
        if (back || failed > 0)
            rc = 1;
        free(ws);
    }
    rpc_client_free(cli);
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: pd-bench tso [--pd HOST:PORT] [--streams N] [--batch 1,100] "
               "[--seconds S]\n"
               "Without --pd, a pd-server runs in this process on a temporary directory.\n");
}

/* A whole-string decimal integer in 0..INT_MAX, or -1 (which the range checks reject). */
static int arg_int(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX)
        return -1;
    return (int)v;
}

/* A whole-string decimal number, or -1 (which the range checks reject). */
static double arg_double(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    return v;
}

int main(int argc, char **argv)
{
    opts o = {.streams = 16, .batches = {1, 100}, .n_batches = 2, .seconds = 3};
    if (argc < 2 || strcmp(argv[1], "tso") != 0) {
        usage(argc < 2 ? stderr : (strcmp(argv[1], "--help") == 0 ? stdout : stderr));
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    static const struct option longs[] = {
        {"pd", required_argument, NULL, 'p'},    {"streams", required_argument, NULL, 's'},
        {"batch", required_argument, NULL, 'b'}, {"seconds", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'p':
            o.pd = optarg;
            break;
        case 's':
            o.streams = arg_int(optarg);
            break;
        case 'b': {
            o.n_batches = 0;
            for (char *tok = strtok(optarg, ","); tok != NULL && o.n_batches < 8;
                 tok = strtok(NULL, ","))
                o.batches[o.n_batches++] = arg_int(tok);
            break;
        }
        case 't':
            o.seconds = arg_double(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (o.streams < 1 || o.streams > MAX_STREAMS || o.n_batches == 0 || o.seconds <= 0) {
        usage(stderr);
        return 2;
    }
    for (int i = 0; i < o.n_batches; i++)
        if (o.batches[i] < 1 || o.batches[i] >= (1 << 18)) {
            fprintf(stderr, "pd-bench: batch sizes must be in 1..262143\n");
            return 2;
        }
    tkv_log_set_level(TKV_LOG_WARN);
    rpc_init();
    pd_server *srv = NULL;
    char dir[] = "/tmp/pd-bench-XXXXXX";
    char addr[64];
    int rc = 0;
    if (o.pd == NULL) {
        if (mkdtemp(dir) == NULL) {
            perror("pd-bench: mkdtemp");
            return 1;
        }
        pd_config cfg;
        pd_config_init(&cfg);
        snprintf(cfg.client_urls, sizeof(cfg.client_urls), "http://127.0.0.1:0");
        snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
        cfg.http_addr[0] = '\0';
        char err[TKV_ERRMSG_LEN];
        if (pd_server_new(&cfg, &srv, err) != 0 || pd_server_start(srv, err) != 0) {
            fprintf(stderr, "pd-bench: start pd-server: %s\n", err);
            pd_server_free(srv);
            nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
            rpc_shutdown();
            return 1;
        }
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", pd_server_grpc_port(srv));
    } else {
        snprintf(addr, sizeof(addr), "%s", o.pd);
    }
    rc = run_tso(&o, addr);
    if (srv != NULL) {
        pd_server_free(srv);
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    rpc_shutdown();
    tkv_metrics_reset();
    return rc;
}
