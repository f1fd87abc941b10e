/*
 * tb_main.c: tikv-bench's command line.
 *
 *   tikv-bench [--pd ADDRS | --etcd ADDRS] [--driver LIST] [--workloads LIST] [--clients LIST]
 *              [--keys N] [--accounts N] [--warmup S] [--seconds S] [--quick | --long]
 *              [--json FILE] [--server-pids P,P,...] [--mode auto|async|threads]
 *              [--no-preload] [--conns N] [--timeout-ms N] [--seed N] [--settle S]
 *   tikv-bench report [--base-keys N] [--json OUT] FILE...
 *   tikv-bench ports N
 *   tikv-bench wait-cluster --pd ADDRS [--replicas 3] [--timeout S]
 *
 * Run mode: preloads the key space (and the accounts for transfers), then runs every
 * (workload, concurrency) cell of the matrix and prints one line per cell; --json writes the
 * results for `tikv-bench report`. Exits 1 when a cell failed an operation, completed none,
 * or the accounts' balances do not add up; 2 on bad usage.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "client/tikvc.h"
#include "rpc/rpc.h"
#include "tb.h"

#define MAX_LEVELS  8
#define MAX_DRIVERS 3

typedef struct opts {
    const char *pd;
    const char *etcd;
    const char *drivers[MAX_DRIVERS];
    int n_drivers;
    bool want[TB_W__COUNT];
    bool want_set;
    int clients[MAX_LEVELS];
    int n_clients;
    uint64_t keys;
    uint64_t accounts;
    double warmup_s;
    double seconds;
    bool quick;
    bool longrun;
    const char *json;
    pid_t pids[TB_MAX_PIDS];
    int n_pids;
    tb_mode mode;
    bool preload;
    bool no_one_pc;
    int conns;
    int timeout_ms;
    uint64_t seed;
    bool seed_set;
    int preload_threads;
    double settle_s;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: tikv-bench [--pd ADDRS | --etcd ADDRS] [options]\n"
            "       tikv-bench report [--base-keys N] [--json OUT] FILE...\n"
            "       tikv-bench ports N\n"
            "       tikv-bench wait-cluster --pd ADDRS [--replicas N] [--timeout S]\n"
            "Options:\n"
            "  --pd ADDRS           PD endpoints (drivers tikv-raw, tikv-txn)\n"
            "  --etcd ADDRS         etcd client endpoints (driver etcd; the leader is found)\n"
            "  --driver LIST        tikv-raw,tikv-txn | etcd (default: from --pd / --etcd)\n"
            "  --workloads LIST     put,get,get-ser,ycsb-a,ycsb-b,ycsb-c,scan,txn-put,transfer\n"
            "  --clients LIST       concurrency levels for every workload (default 1,16,64,256;\n"
            "                       --quick: fewer per workload, every workload at least once)\n"
            "  --keys N             preloaded keys (default 100000)\n"
            "  --accounts N         accounts of the transfer workload (default 10000)\n"
            "  --warmup S           seconds before the window (default 0.5)\n"
            "  --seconds S          measured window per cell (default 3)\n"
            "  --quick              0.5 s warm-up, 1.5 s window, fewer concurrency levels\n"
            "  --long               2 s warm-up, 6 s window\n"
            "  --json FILE          write the results as JSON\n"
            "  --server-pids LIST   server processes whose CPU and RSS are reported\n"
            "  --mode M             auto (default), async or threads\n"
            "  --no-preload         the keys already exist (written by an earlier run)\n"
            "  --no-1pc             tikv-txn commits in two phases even when one region holds\n"
            "                       every key (default: one-phase commit there)\n"
            "  --conns N            etcd connections to the leader (default 16)\n"
            "  --timeout-ms N       per-request deadline (default 10000)\n"
            "  --seed N             PRNG seed (default: random, printed)\n"
            "  --settle S           before the first cell, wait up to S seconds (default 120)\n"
            "                       for quiet servers and fast probe reads; 0: do not wait\n");
}

static int split_list(char *s, const char **out, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (n == max)
            return -1;
        out[n++] = tok;
    }
    return n;
}

static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

static int parse_opts(int argc, char **argv, opts *o)
{
    static const struct option longs[] = {
        {"pd", required_argument, NULL, 'p'},
        {"etcd", required_argument, NULL, 'e'},
        {"driver", required_argument, NULL, 'd'},
        {"workloads", required_argument, NULL, 'w'},
        {"clients", required_argument, NULL, 'c'},
        {"keys", required_argument, NULL, 'k'},
        {"accounts", required_argument, NULL, 'a'},
        {"warmup", required_argument, NULL, 'W'},
        {"seconds", required_argument, NULL, 's'},
        {"quick", no_argument, NULL, 'q'},
        {"long", no_argument, NULL, 'l'},
        {"json", required_argument, NULL, 'j'},
        {"server-pids", required_argument, NULL, 'P'},
        {"mode", required_argument, NULL, 'm'},
        {"no-preload", no_argument, NULL, 'n'},
        {"no-1pc", no_argument, NULL, 'O'},
        {"conns", required_argument, NULL, 'C'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, 'S'},
        {"settle", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->keys = 100000;
    o->accounts = 10000;
    o->warmup_s = -1;
    o->seconds = -1;
    o->preload = true;
    o->conns = 16;
    o->timeout_ms = 10000;
    o->preload_threads = 16;
    o->settle_s = 120;
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        uint64_t u;
        const char *items[32];
        int n;
        switch (c) {
        case 'p':
            o->pd = optarg;
            break;
        case 'e':
            o->etcd = optarg;
            break;
        case 'd':
            o->n_drivers = split_list(optarg, o->drivers, MAX_DRIVERS);
            if (o->n_drivers <= 0)
                return -1;
            for (int i = 0; i < o->n_drivers; i++)
                if (tb_driver_find(o->drivers[i]) == NULL) {
                    fprintf(stderr, "tikv-bench: unknown driver %s\n", o->drivers[i]);
                    return -1;
                }
            break;
        case 'w':
            n = split_list(optarg, items, 32);
            if (n <= 0)
                return -1;
            o->want_set = true;
            for (int i = 0; i < n; i++) {
                int w = tb_workload_parse(items[i]);
                if (w < 0) {
                    fprintf(stderr, "tikv-bench: unknown workload %s\n", items[i]);
                    return -1;
                }
                o->want[w] = true;
            }
            break;
        case 'c':
            n = split_list(optarg, items, MAX_LEVELS);
            if (n <= 0)
                return -1;
            for (int i = 0; i < n; i++) {
                if (!parse_u64(items[i], &u) || u < 1 || u > 4096)
                    return -1;
                o->clients[i] = (int)u;
            }
            o->n_clients = n;
            break;
        case 'k':
            if (!parse_u64(optarg, &u) || u < 1 || u >= 1000000000000ull)
                return -1;
            o->keys = u;
            break;
        case 'a':
            if (!parse_u64(optarg, &u) || u < TB_TRANSFER_N || u > 10000000)
                return -1;
            o->accounts = u;
            break;
        case 'W':
            if (!parse_double(optarg, &o->warmup_s) || o->warmup_s < 0)
                return -1;
            break;
        case 's':
            if (!parse_double(optarg, &o->seconds) || o->seconds <= 0)
                return -1;
            break;
        case 'q':
            o->quick = true;
            break;
        case 'l':
            o->longrun = true;
            break;
        case 'j':
            o->json = optarg;
            break;
        case 'P':
            n = split_list(optarg, items, TB_MAX_PIDS);
            if (n <= 0)
                return -1;
            for (int i = 0; i < n; i++) {
                if (!parse_u64(items[i], &u) || u < 1 || u > INT32_MAX)
                    return -1;
                o->pids[i] = (pid_t)u;
            }
            o->n_pids = n;
            break;
        case 'm':
            if (strcmp(optarg, "auto") == 0)
                o->mode = TB_MODE_AUTO;
            else if (strcmp(optarg, "async") == 0)
                o->mode = TB_MODE_ASYNC;
            else if (strcmp(optarg, "threads") == 0)
                o->mode = TB_MODE_THREADS;
            else
                return -1;
            break;
        case 'n':
            o->preload = false;
            break;
        case 'O':
            o->no_one_pc = true;
            break;
        case 'C':
            if (!parse_u64(optarg, &u) || u < 1 || u > 64)
                return -1;
            o->conns = (int)u;
            break;
        case 't':
            if (!parse_u64(optarg, &u) || u < 1 || u > 600000)
                return -1;
            o->timeout_ms = (int)u;
            break;
        case 'S':
            if (!parse_u64(optarg, &u))
                return -1;
            o->seed = u;
            o->seed_set = true;
            break;
        case 'T':
            if (!parse_double(optarg, &o->settle_s) || o->settle_s < 0)
                return -1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind != argc || (o->pd == NULL) == (o->etcd == NULL)) {
        fprintf(stderr, "tikv-bench: give exactly one of --pd and --etcd\n");
        return -1;
    }
    if (o->n_drivers == 0) {
        if (o->pd != NULL) {
            o->drivers[0] = "tikv-raw";
            o->drivers[1] = "tikv-txn";
            o->n_drivers = 2;
        } else {
            o->drivers[0] = "etcd";
            o->n_drivers = 1;
        }
    }
    if (o->warmup_s < 0)
        o->warmup_s = o->quick || !o->longrun ? 0.5 : 2;
    if (o->seconds < 0)
        o->seconds = o->quick ? 1.5 : o->longrun ? 6 : 3;
    return 0;
}

/* The default concurrency levels of each workload: all four everywhere, except with --quick
 * (put and get at all four, every other workload at one or two levels). */
static int default_levels(tb_workload w, bool quick, int *out)
{
    static const int all[] = {1, 16, 64, 256};
    if (!quick) {
        memcpy(out, all, sizeof(all));
        return 4;
    }
    switch (w) {
    case TB_W_PUT:
    case TB_W_GET:
        memcpy(out, all, sizeof(all));
        return 4;
    case TB_W_GET_SER:
    case TB_W_TXN_PUT:
        out[0] = 1;
        out[1] = 64;
        return 2;
    case TB_W_SCAN:
    case TB_W_TRANSFER:
        out[0] = 16;
        return 1;
    default:
        out[0] = 64;
        return 1;
    }
}

static void print_result(const tb_result *r)
{
    double ops_s = r->seconds > 0 ? (double)r->ops / r->seconds : 0;
    printf("%-7s %-9s %-8s %4d clients %-7s %10.0f ops/s  p50 %7.3f  p99 %7.3f  p99.9 %7.3f ms",
           r->system, r->driver, tb_workload_name(r->workload), r->clients, r->mode, ops_s,
           (double)tb_hist_percentile(&r->hist, 50) / 1e6,
           (double)tb_hist_percentile(&r->hist, 99) / 1e6,
           (double)tb_hist_percentile(&r->hist, 99.9) / 1e6);
    if (r->server_cpu_s >= 0 && r->ops > 0)
        printf("  cpu %.3f s/1k  rss %.0f MiB", r->server_cpu_s * 1000.0 / (double)r->ops,
               (double)r->server_rss_bytes / (1024.0 * 1024.0));
    if (r->retries > 0)
        printf("  retries %" PRIu64, r->retries);
    if (r->errors > 0)
        printf("  ERRORS %" PRIu64, r->errors);
    printf("\n");
    for (int i = 0; i < r->n_errs; i++)
        printf("    error: %s\n", r->errs[i]);
    fflush(stdout);
}

/* Waits, after a preload, until the cluster is in a steady state, at most --settle seconds:
 *   - the servers are quiet (their CPU use over one second below SETTLE_CORES of a core), so
 *     the preload's background work (RocksDB compaction, region splits, raft log GC, etcd's
 *     backend commits) does not land in the first cells;
 *   - SETTLE_PROBES reads spread evenly over the key space all answer within SETTLE_FAST_MS
 *     (a range whose new region has no leader yet stalls its reads).
 * Returns 0, or -1 when a probe read failed (a wrong value is an error, not a delay). */
#define SETTLE_CORES   0.25
#define SETTLE_PROBES  256
#define SETTLE_FAST_MS 200

static int settle(const opts *o, const tb_driver_ops *ops, tb_driver *d, tb_ledger *kv)
{
    uint64_t t0 = tkv_clock_mono_ms();
    double used = 0;
    bool quiet = o->n_pids == 0;
    if (!quiet) {
        tb_proc_sample a, b;
        tb_proc_sample_pids(o->pids, o->n_pids, &a);
        while (!quiet && (double)(tkv_clock_mono_ms() - t0) / 1e3 < o->settle_s) {
            tkv_sleep_ms(1000);
            tb_proc_sample_pids(o->pids, o->n_pids, &b);
            used = b.cpu_s - a.cpu_s;
            a = b;
            quiet = used < SETTLE_CORES;
        }
    }
    bool fast = false;
    uint64_t slowest = 0;
    int rounds = 0;
    tb_op *op = tkv_calloc(1, sizeof(*op));
    if (op == NULL)
        return -1;
    while (!fast && (rounds == 0 || (double)(tkv_clock_mono_ms() - t0) / 1e3 < o->settle_s)) {
        rounds++;
        fast = true;
        slowest = 0;
        uint64_t probes = kv->n < SETTLE_PROBES ? kv->n : SETTLE_PROBES;
        for (uint64_t i = 0; i < probes; i++) {
            op->kind = TB_OP_GET;
            op->idx[0] = probes > 1 ? i * (kv->n - 1) / (probes - 1) : 0;
            uint64_t s0 = tkv_clock_mono_ns();
            if (tb_exec_one(ops, d, op) != 0) {
                fprintf(stderr, "tikv-bench: settle probe read failed: %s\n", op->err);
                if (ops->op_release != NULL)
                    ops->op_release(d, op);
                tkv_free(op);
                return -1;
            }
            uint64_t ms = (tkv_clock_mono_ns() - s0) / 1000000;
            slowest = ms > slowest ? ms : slowest;
            fast = fast && ms < SETTLE_FAST_MS;
        }
    }
    if (ops->op_release != NULL)
        ops->op_release(d, op);
    tkv_free(op);
    printf("tikv-bench: settled after %.0f s: servers %s (%.2f cores busy), %d probe rounds, "
           "slowest probe read %" PRIu64 " ms%s\n",
           (double)(tkv_clock_mono_ms() - t0) / 1e3, quiet ? "quiet" : "still busy", used, rounds,
           slowest, fast ? "" : " (still slow: gave up waiting)");
    return 0;
}

/* A workload reads the preloaded key space. */
static bool needs_kv(tb_workload w)
{
    return w <= TB_W_SCAN;
}

static int run_bench(opts *o)
{
    if (!o->seed_set) {
        if (getrandom(&o->seed, sizeof(o->seed), 0) != sizeof(o->seed))
            o->seed = tkv_clock_real_ms() ^ (uint64_t)getpid() << 32;
    }
    uint32_t epoch = (uint32_t)(o->seed ^ o->seed >> 32) | 1;
    printf("tikv-bench: seed %" PRIu64 ", %" PRIu64 " keys, warm-up %.1f s, window %.1f s\n",
           o->seed, o->keys, o->warmup_s, o->seconds);

    tb_ledger kv, txn, acc;
    if (tb_ledger_init(&kv, TB_PREFIX_KV, o->keys, epoch) != 0 ||
        tb_ledger_init(&txn, TB_PREFIX_TXN, o->keys, epoch) != 0 ||
        tb_ledger_init(&acc, TB_PREFIX_ACCOUNT, o->accounts, epoch) != 0) {
        fprintf(stderr, "tikv-bench: out of memory for the ledgers\n");
        return 1;
    }
    tb_env env = {.endpoints = o->pd != NULL ? o->pd : o->etcd,
                  .kv = &kv,
                  .txn = &txn,
                  .accounts = &acc,
                  .conns = o->conns,
                  .timeout_ms = o->timeout_ms,
                  .no_one_pc = o->no_one_pc};

    const tb_driver_ops *ops[MAX_DRIVERS] = {NULL};
    tb_driver *drv[MAX_DRIVERS] = {NULL};
    int failed = 0;
    char err[TB_ERR_MSG_LEN];
    for (int i = 0; i < o->n_drivers; i++) {
        ops[i] = tb_driver_find(o->drivers[i]);
        err[0] = '\0';
        int rc = ops[i]->open(&env, &drv[i], err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "tikv-bench: %s: %s\n", ops[i]->name, err);
            failed = 1;
            goto out;
        }
    }

    /* Which driver runs which workload: the first that supports it. */
    int owner[TB_W__COUNT];
    bool any_kv = false, any_transfer = false;
    for (int w = 0; w < TB_W__COUNT; w++) {
        owner[w] = -1;
        if (o->want_set && !o->want[w])
            continue;
        for (int i = 0; i < o->n_drivers && owner[w] < 0; i++)
            if (ops[i]->supports(drv[i], (tb_workload)w))
                owner[w] = i;
        if (o->want_set && o->want[w] && owner[w] < 0) {
            fprintf(stderr, "tikv-bench: no selected driver runs %s\n",
                    tb_workload_name((tb_workload)w));
            failed = 1;
            goto out;
        }
        any_kv = any_kv || (owner[w] >= 0 && needs_kv((tb_workload)w));
        any_transfer = any_transfer || (owner[w] >= 0 && w == TB_W_TRANSFER);
    }

    if (o->preload) {
        for (int pass = 0; pass < 2; pass++) {
            bool need = pass == 0 ? any_kv : any_transfer;
            tb_workload w = pass == 0 ? TB_W_GET : TB_W_TRANSFER;
            tb_ledger *l = pass == 0 ? &kv : &acc;
            int i = owner[w];
            if (pass == 0 && i < 0)
                for (int x = 0; x <= TB_W_SCAN && i < 0; x++)
                    i = owner[x];
            if (!need || i < 0)
                continue;
            uint64_t t0 = tkv_clock_mono_ms();
            err[0] = '\0';
            int rc = ops[i]->preload(drv[i], l, o->preload_threads, err, sizeof(err));
            if (rc != 0) {
                fprintf(stderr, "tikv-bench: preload of %s keys: %s\n", l->prefix, err);
                failed = 1;
                goto out;
            }
            tb_ledger_set_all(l, 1);
            double s = (double)(tkv_clock_mono_ms() - t0) / 1e3;
            printf("tikv-bench: preloaded %" PRIu64 " %s keys through %s in %.1f s (%.0f keys/s)\n",
                   l->n, l->prefix, ops[i]->name, s, s > 0 ? (double)l->n / s : 0.0);
        }
    } else if (any_transfer) {
        /* The accounts are small: write them anyway, so their sum is known. */
        int i = owner[TB_W_TRANSFER];
        err[0] = '\0';
        if (ops[i]->preload(drv[i], &acc, o->preload_threads, err, sizeof(err)) != 0) {
            fprintf(stderr, "tikv-bench: preload of accounts: %s\n", err);
            failed = 1;
            goto out;
        }
        tb_ledger_set_all(&acc, 1);
    }

    if (any_kv && o->settle_s > 0) {
        int i = owner[TB_W_GET];
        for (int x = 0; x <= TB_W_SCAN && i < 0; x++)
            i = owner[x];
        if (settle(o, ops[i], drv[i], &kv) != 0) {
            failed = 1;
            goto out;
        }
    }

    json_t *results = json_array();
    for (int w = 0; w < TB_W__COUNT; w++) {
        int i = owner[w];
        if (i < 0)
            continue;
        int levels[MAX_LEVELS];
        int n_levels =
            o->n_clients > 0 ? o->n_clients : default_levels((tb_workload)w, o->quick, levels);
        if (o->n_clients > 0)
            memcpy(levels, o->clients, sizeof(int) * (size_t)o->n_clients);
        for (int li = 0; li < n_levels; li++) {
            tb_cell cell = {.workload = (tb_workload)w,
                            .clients = levels[li],
                            .warmup_ms = (uint64_t)(o->warmup_s * 1000),
                            .measure_ms = (uint64_t)(o->seconds * 1000),
                            .mode = o->mode,
                            .seed = o->seed + (uint64_t)w * 100 + (uint64_t)li,
                            .pids = o->pids,
                            .n_pids = o->n_pids};
            tb_result *r = tkv_malloc(sizeof(*r));
            if (r == NULL) {
                failed = 1;
                break;
            }
            int rc = tb_run_cell(ops[i], drv[i], &env, &cell, r);
            if (rc == -ETIMEDOUT) {
                print_result(r);
                fprintf(stderr, "tikv-bench: operations hang; giving up\n");
                fflush(NULL);
                _exit(1); /* the stuck operations still own memory the drivers use */
            }
            if (rc != 0) {
                fprintf(stderr, "tikv-bench: %s at %d clients: %s\n",
                        tb_workload_name((tb_workload)w), levels[li], tkv_strerror(rc));
                tkv_free(r);
                failed = 1;
                continue;
            }
            print_result(r);
            if (r->errors > 0 || r->ops == 0) {
                if (r->ops == 0 && r->errors == 0)
                    fprintf(stderr, "tikv-bench: %s at %d clients completed no operation\n",
                            tb_workload_name((tb_workload)w), levels[li]);
                failed = 1;
            }
            if (results != NULL && tb_result_to_json(r, results) != 0)
                failed = 1;
            tkv_free(r);
        }
        if (w == TB_W_TRANSFER) {
            err[0] = '\0';
            int rc = ops[i]->check_accounts(drv[i], err, sizeof(err));
            if (rc != 0) {
                fprintf(stderr, "tikv-bench: accounts check failed: %s\n", err);
                failed = 1;
            } else {
                printf("tikv-bench: %" PRIu64 " accounts read in one snapshot: every value valid, "
                       "balances sum to %" PRIu64 "\n",
                       acc.n, acc.n * TB_ACCOUNT_START);
            }
        }
    }
    if (o->json != NULL) {
        json_t *root = json_object();
        json_object_set_new(root, "tool", json_string("tikv-bench"));
        json_object_set_new(root, "seed", json_integer((json_int_t)o->seed));
        json_object_set_new(root, "results", results);
        if (json_dump_file(root, o->json, JSON_INDENT(1)) != 0) {
            fprintf(stderr, "tikv-bench: cannot write %s\n", o->json);
            failed = 1;
        }
        json_decref(root);
    } else {
        json_decref(results);
    }
out:
    for (int i = 0; i < o->n_drivers; i++)
        if (ops[i] != NULL && drv[i] != NULL)
            ops[i]->close(drv[i]);
    tb_ledger_deinit(&kv);
    tb_ledger_deinit(&txn);
    tb_ledger_deinit(&acc);
    printf("tikv-bench: %s\n", failed ? "FAILED" : "ok");
    return failed;
}

const tb_driver_ops *tb_driver_find(const char *name)
{
    static const tb_driver_ops *const all[] = {&tb_drv_tikv_raw, &tb_drv_tikv_txn, &tb_drv_etcd};
    for (size_t i = 0; i < TKV_ARRAY_LEN(all); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

/* `ports N`: prints N distinct free TCP ports of 127.0.0.1, one per line. */
static int cmd_ports(int argc, char **argv)
{
    uint64_t n;
    if (argc != 3 || !parse_u64(argv[2], &n) || n < 1 || n > 64) {
        usage(stderr);
        return 2;
    }
    int fds[64];
    for (uint64_t i = 0; i < n; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(a);
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &len) != 0) {
            perror("tikv-bench ports");
            return 1;
        }
        printf("%d\n", ntohs(a.sin_port));
    }
    for (uint64_t i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

/* `wait-cluster`: waits until every region has N peers and a leader, and a raw put and get
 * of a probe key work. */
static int cmd_wait_cluster(int argc, char **argv)
{
    static const struct option longs[] = {
        {"pd", required_argument, NULL, 'p'},
        {"replicas", required_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *pd = NULL;
    uint64_t replicas = 3, timeout_s = 120;
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        bool ok = (c == 'p' && (pd = optarg) != NULL) ||
                  (c == 'r' && parse_u64(optarg, &replicas)) ||
                  (c == 't' && parse_u64(optarg, &timeout_s));
        if (!ok) {
            usage(stderr);
            return 2;
        }
    }
    if (pd == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    uint64_t deadline = tkv_clock_mono_ms() + timeout_s * 1000;
    tikvc_client *cl = NULL;
    char why[256] = "PD did not answer";
    while (tkv_clock_mono_ms() < deadline) {
        if (cl == NULL && tikvc_connect(pd, &cl) != TIKVC_OK) {
            snprintf(why, sizeof(why), "connect: %s", tikvc_errmsg());
            cl = NULL;
            tkv_sleep_ms(200);
            continue;
        }
        tikvc_region *regs = NULL;
        size_t n = 0;
        int rc = tikvc_pd_scan_regions(cl, "", 0, "", 0, 0, TIKVC_MODE_RAW, &regs, &n);
        bool ready = rc == TIKVC_OK && n > 0;
        if (rc != TIKVC_OK)
            snprintf(why, sizeof(why), "scan regions: %s", tikvc_errmsg());
        else if (n == 0)
            snprintf(why, sizeof(why), "PD knows no region yet");
        for (size_t i = 0; ready && i < n; i++) {
            size_t voters = 0;
            for (size_t j = 0; j < regs[i].n_peers; j++)
                voters += regs[i].peers[j].role == 0;
            if (voters < replicas || regs[i].leader_store_id == 0) {
                snprintf(why, sizeof(why),
                         "region %" PRIu64 " has %zu voters, leader store %" PRIu64, regs[i].id,
                         voters, regs[i].leader_store_id);
                ready = false;
            }
        }
        tikvc_regions_free(regs, n);
        if (ready) {
            static const char probe[] = "tikv-bench-probe";
            tikvc_buf v = {0};
            bool found = false;
            rc = tikvc_raw_put(cl, probe, sizeof(probe) - 1, "1", 1, 0);
            if (rc == TIKVC_OK)
                rc = tikvc_raw_get(cl, probe, sizeof(probe) - 1, &v, &found);
            if (rc == TIKVC_OK && found && v.len == 1) {
                tikvc_buf_free(&v);
                tikvc_close(cl);
                return 0;
            }
            tikvc_buf_free(&v);
            snprintf(why, sizeof(why), "probe put/get: %s",
                     rc != TIKVC_OK ? tikvc_errmsg() : "value not read back");
        }
        tkv_sleep_ms(250);
    }
    tikvc_close(cl);
    fprintf(stderr, "tikv-bench wait-cluster: not ready after %" PRIu64 " s: %s\n", timeout_s, why);
    return 1;
}

static int cmd_report(int argc, char **argv)
{
    static const struct option longs[] = {
        {"base-keys", required_argument, NULL, 'b'},
        {"json", required_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    uint64_t base = 100000;
    const char *json_out = NULL;
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        if (c == 'b' && parse_u64(optarg, &base))
            continue;
        if (c == 'j') {
            json_out = optarg;
            continue;
        }
        usage(stderr);
        return 2;
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    return tb_report((const char *const *)argv + optind, argc - optind, base, stdout, json_out) == 0
               ? 0
               : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "report") == 0)
        return cmd_report(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "ports") == 0)
        return cmd_ports(argc, argv);
    tkv_log_set_level(TKV_LOG_WARN);
    if (argc >= 2 && strcmp(argv[1], "wait-cluster") == 0)
        return cmd_wait_cluster(argc, argv);
    opts o;
    if (parse_opts(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    rpc_init();
    int rc = run_bench(&o);
    rpc_shutdown();
    return rc;
}
