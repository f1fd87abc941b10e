/*
 * txn_bench.c: transactions per second through the storage layer alone.
 *
 *     txn-bench [--rocks DIR] [--sync] [--threads N] [--seconds S] [--keys K] [--width W]
 *
 * Each client thread runs optimistic transactions: W distinct random keys out of K, one
 * KvPrewrite with all of them, KvCommit of the primary, then KvCommit of the secondaries,
 * with timestamps from a shared counter (a stand-in for PD's TSO). Write conflicts and
 * locked keys roll the transaction back (KvBatchRollback) and count as aborts. Prints
 * committed transactions per second and the abort ratio. Runs on eng_mem unless --rocks is
 * given (--sync: fsync every write).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "kvrpcpb.pb-c.h"
#include "storage/storage.h"

typedef struct call {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    ProtobufCMessage *resp;
} call;

static void on_done(void *ud, const ProtobufCMessage *resp)
{
    call *c = ud;
    size_t n = protobuf_c_message_get_packed_size(resp);
    uint8_t *buf = malloc(n ? n : 1);
    protobuf_c_message_pack(resp, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(resp->descriptor, NULL, n, buf);
    free(buf);
    pthread_mutex_lock(&c->mu);
    c->resp = copy;
    c->done = true;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

static stor *g_s;
static Kvrpcpb__Context g_ctx = KVRPCPB__CONTEXT__INIT;
static _Atomic uint64_t g_tso = 1000;
static _Atomic uint64_t g_committed, g_aborted;
static _Atomic bool g_stop;
static int g_keys = 10000, g_width = 1;

static void *do_call(const char *name, ProtobufCMessage *req)
{
    call c = {.done = false};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cond, NULL);
    const stor_method *m = stor_method_find(name);
    if (m->fn(g_s, req, on_done, &c) != 0) {
        fprintf(stderr, "txn-bench: %s not accepted\n", name);
        exit(1);
    }
    pthread_mutex_lock(&c.mu);
    while (!c.done)
        pthread_cond_wait(&c.cond, &c.mu);
    pthread_mutex_unlock(&c.mu);
    pthread_cond_destroy(&c.cond);
    pthread_mutex_destroy(&c.mu);
    if (c.resp == NULL) {
        fprintf(stderr, "txn-bench: bad %s response\n", name);
        exit(1);
    }
    return c.resp;
}

static bool commit(ProtobufCBinaryData *keys, size_t n, uint64_t start, uint64_t commit_ts)
{
    Kvrpcpb__CommitRequest req = KVRPCPB__COMMIT_REQUEST__INIT;
    req.context = &g_ctx;
    req.start_version = start;
    req.commit_version = commit_ts;
    req.n_keys = n;
    req.keys = keys;
    Kvrpcpb__CommitResponse *r = do_call("KvCommit", &req.base);
    bool ok = r->error == NULL && r->region_error == NULL;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return ok;
}

static void *client(void *arg)
{
    tkv_rng rng;
    tkv_rng_seed(&rng, (uint64_t)(uintptr_t)arg);
    char kbuf[16][24];
    char value[64];
    ProtobufCBinaryData keys[16];
    Kvrpcpb__Mutation m[16], *mp[16];
    while (!atomic_load(&g_stop)) {
        int n = 0;
        while (n < g_width) {
            snprintf(kbuf[n], sizeof(kbuf[n]), "key%08llu",
                     (unsigned long long)tkv_rng_below(&rng, (uint64_t)g_keys));
            bool dup = false;
            for (int j = 0; j < n; j++)
                dup |= strcmp(kbuf[j], kbuf[n]) == 0;
            if (!dup)
                n++;
        }
        uint64_t start = atomic_fetch_add(&g_tso, 1);
        snprintf(value, sizeof(value), "value-%llu", (unsigned long long)start);
        for (int i = 0; i < n; i++) {
            keys[i] = (ProtobufCBinaryData){strlen(kbuf[i]), (uint8_t *)kbuf[i]};
            kvrpcpb__mutation__init(&m[i]);
            m[i].key = keys[i];
            m[i].value = (ProtobufCBinaryData){strlen(value), (uint8_t *)value};
            mp[i] = &m[i];
        }
        Kvrpcpb__PrewriteRequest pw = KVRPCPB__PREWRITE_REQUEST__INIT;
        pw.context = &g_ctx;
        pw.n_mutations = (size_t)n;
        pw.mutations = mp;
        pw.primary_lock = keys[0];
        pw.start_version = start;
        pw.lock_ttl = 3000;
        pw.min_commit_ts = start + 1;
        Kvrpcpb__PrewriteResponse *r = do_call("KvPrewrite", &pw.base);
        bool ok = r->n_errors == 0 && r->region_error == NULL;
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (!ok) {
            Kvrpcpb__BatchRollbackRequest rb = KVRPCPB__BATCH_ROLLBACK_REQUEST__INIT;
            rb.context = &g_ctx;
            rb.start_version = start;
            rb.n_keys = (size_t)n;
            rb.keys = keys;
            Kvrpcpb__BatchRollbackResponse *rr = do_call("KvBatchRollback", &rb.base);
            protobuf_c_message_free_unpacked(&rr->base, NULL);
            atomic_fetch_add(&g_aborted, 1);
            continue;
        }
        uint64_t commit_ts = atomic_fetch_add(&g_tso, 1);
        if (!commit(keys, 1, start, commit_ts) ||
            (n > 1 && !commit(keys + 1, (size_t)n - 1, start, commit_ts))) {
            fprintf(stderr, "txn-bench: commit failed\n");
            exit(1);
        }
        atomic_fetch_add(&g_committed, 1);
    }
    return NULL;
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

int main(int argc, char **argv)
{
    const char *rocks = NULL;
    bool sync = false;
    int threads = 16, seconds = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rocks") == 0 && i + 1 < argc)
            rocks = argv[++i];
        else if (strcmp(argv[i], "--sync") == 0)
            sync = true;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = arg_int(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = arg_int(argv[++i]);
        else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc)
            g_keys = arg_int(argv[++i]);
        else if (strcmp(argv[i], "--width") == 0 && i + 1 < argc)
            g_width = arg_int(argv[++i]);
        else {
            fprintf(stderr, "usage: txn-bench [--rocks DIR] [--sync] [--threads N] [--seconds S] "
                            "[--keys K] [--width W (1..16)]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || seconds < 0 || g_width < 1 || g_width > 16 ||
        g_keys < g_width) {
        fprintf(stderr, "txn-bench: bad arguments\n");
        return 2;
    }
    eng_db *db;
    char err[TKV_ERRMSG_LEN];
    int rc = rocks ? eng_rocks_open(rocks, NULL, &db, err) : eng_mem_open(NULL, &db);
    if (rc != 0) {
        fprintf(stderr, "txn-bench: open engine: %s\n", rocks ? err : tkv_strerror(rc));
        return 1;
    }
    stor_kv_local_opts ko = {.sync = sync};
    stor_kv *kv;
    stor_opts so;
    stor_opts_init(&so);
    so.latch_slots = 1 << 16;
    if (stor_kv_local_new(db, &ko, &kv) != 0 || stor_new(kv, &so, &g_s) != 0) {
        fprintf(stderr, "txn-bench: out of memory\n");
        return 1;
    }
    g_ctx.region_id = 1;
    pthread_t th[256];
    uint64_t t0 = tkv_clock_mono_ms();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, client, (void *)(uintptr_t)(i + 1));
    tkv_sleep_ms((uint64_t)seconds * 1000);
    atomic_store(&g_stop, true);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(tkv_clock_mono_ms() - t0) / 1000.0;
    uint64_t c = atomic_load(&g_committed), a = atomic_load(&g_aborted);
    printf("engine=%s sync=%d threads=%d width=%d keys=%d: %.0f txn/s committed, %.1f%% "
           "aborted\n",
           rocks ? "rocksdb" : "memory", sync, threads, g_width, g_keys, (double)c / secs,
           c + a ? 100.0 * (double)a / (double)(c + a) : 0.0);
    stor_free(g_s);
    stor_kv_free(kv);
    eng_close(db);
    return 0;
}
