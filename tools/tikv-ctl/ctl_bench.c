/*
 * ctl_bench.c: `tikv-ctl bench raw-put|raw-get|txn-put|txn-transfer`.
 *   raw-put, raw-get: N closed-loop clients on libtikvc's asynchronous raw API (each client
 *     issues its next request from the completion callback, so N requests are always in
 *     flight, from a handful of library threads), 16-byte keys in [0, --keys), values of
 *     --value-size bytes derived from the key; reads check every value found is the one a
 *     put would write.
 *   txn-put: N threads, each committing single-key write transactions (begin, set one
 *     random key, two-phase commit) back to back.
 *   txn-transfer: N threads, each committing 4-key transfers: read 4 distinct random
 *     accounts of --keys (8-byte balances), move amounts from three of them to the fourth,
 *     write all four (a write conflict aborts the transaction and counts as a conflict, not
 *     as an operation).
 * After a warm-up, counts operations (committed transactions) and latencies for --seconds.
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

#define HIST_US   1000000 /* 10 us buckets up to 1 s */
#define HIST_STEP 10
#define HIST_N    (HIST_US / HIST_STEP + 1)
#define KEY_LEN   16

typedef struct bench {
    tikvc_client *c;
    const char *what;
    bool put;
    int value_size;
    long long keys;
    atomic_bool stop;
    atomic_bool measuring;
    atomic_long ops;
    atomic_long errors;
    atomic_long missing;
    atomic_long wrong;
    atomic_long conflicts; /* transactions aborted by a write conflict */
    atomic_uint_least32_t *hist;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int idle;
    char first_error[256];
} bench;

typedef struct slot {
    bench *b;
    uint64_t started_ns;
    uint64_t rng;
    char key[KEY_LEN + 1];
    uint8_t *value;
} slot;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t next_rand(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The value a put writes for @key: the key repeated. */
static void fill_value(uint8_t *v, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        v[i] = (uint8_t)key[i % KEY_LEN];
}

static void on_done(void *ud, const tikvc_result *r);

/* Counts one successful operation of @us microseconds while measuring. */
static void record(bench *b, uint64_t us)
{
    if (!atomic_load(&b->measuring))
        return;
    atomic_fetch_add(&b->ops, 1);
    size_t i = us / HIST_STEP < HIST_N - 1 ? us / HIST_STEP : HIST_N - 1;
    atomic_fetch_add(&b->hist[i], 1);
}

/* Counts a failed operation, keeping the first message. */
static void record_error(bench *b, int code, const char *msg)
{
    if (atomic_fetch_add(&b->errors, 1) == 0) {
        pthread_mutex_lock(&b->mu);
        snprintf(b->first_error, sizeof(b->first_error), "%s: %s", tikvc_strerror(code), msg);
        pthread_mutex_unlock(&b->mu);
    }
}

static void finish_slot(slot *s)
{
    bench *b = s->b;
    pthread_mutex_lock(&b->mu);
    b->idle++;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void issue(slot *s)
{
    bench *b = s->b;
    if (atomic_load(&b->stop)) {
        finish_slot(s);
        return;
    }
    long long k = (long long)(next_rand(&s->rng) % (uint64_t)b->keys);
    snprintf(s->key, sizeof(s->key), "key%013lld", k);
    s->started_ns = now_ns();
    int rc;
    if (b->put) {
        fill_value(s->value, b->value_size, s->key);
        rc = tikvc_raw_put_async(b->c, s->key, KEY_LEN, s->value, (size_t)b->value_size, 0, on_done,
                                 s);
    } else {
        rc = tikvc_raw_get_async(b->c, s->key, KEY_LEN, on_done, s);
    }
    if (rc != TIKVC_OK) {
        atomic_fetch_add(&b->errors, 1);
        finish_slot(s);
    }
}

static void on_done(void *ud, const tikvc_result *r)
{
    slot *s = ud;
    bench *b = s->b;
    uint64_t us = (now_ns() - s->started_ns) / 1000;
    if (r->code != TIKVC_OK) {
        record_error(b, r->code, r->errmsg);
    } else if (!b->put) {
        if (!r->found) {
            atomic_fetch_add(&b->missing, 1);
        } else {
            fill_value(s->value, b->value_size, s->key);
            if (r->value.len != (size_t)b->value_size ||
                (r->value.len > 0 && memcmp(r->value.data, s->value, r->value.len) != 0))
                atomic_fetch_add(&b->wrong, 1);
        }
    }
    if (r->code == TIKVC_OK)
        record(b, us);
    issue(s);
}

static double percentile_ms(bench *b, long total, double p)
{
    long want = (long)((double)total * p + 0.999999), seen = 0;
    for (size_t i = 0; i < HIST_N; i++) {
        seen += (long)atomic_load(&b->hist[i]);
        if (seen >= want && want > 0)
            return (double)((i + 1) * HIST_STEP) / 1000.0;
    }
    return 0;
}

/* ---- transactional workloads ---------------------------------------------------------- */

#define TRANSFER_KEYS 4

typedef struct txn_worker {
    bench *b;
    bool transfer;
    uint64_t rng;
    pthread_t thread;
} txn_worker;

/* The account key of @i for txn-transfer, the row key for txn-put (16 bytes). */
static void txn_key(char *out, const char *kind, long long i)
{
    snprintf(out, KEY_LEN + 1, "%s%012lld", kind, i);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* One single-key write transaction. Returns the library's code. */
static int txn_put_once(txn_worker *w, tikvc_txn *t, uint8_t *value)
{
    bench *b = w->b;
    char key[KEY_LEN + 1];
    txn_key(key, "row", (long long)(next_rand(&w->rng) % (uint64_t)b->keys));
    fill_value(value, b->value_size, key);
    int rc = tikvc_txn_set(t, key, KEY_LEN, value, (size_t)b->value_size);
    return rc == TIKVC_OK ? tikvc_txn_commit(t) : rc;
}

/* One 4-key transfer: three accounts each give up to a tenth of their balance to a fourth.
 * Missing accounts count as holding 1,000,000. */
static int txn_transfer_once(txn_worker *w, tikvc_txn *t)
{
    bench *b = w->b;
    long long ids[TRANSFER_KEYS];
    for (int i = 0; i < TRANSFER_KEYS; i++) {
        bool dup;
        do {
            ids[i] = (long long)(next_rand(&w->rng) % (uint64_t)b->keys);
            dup = false;
            for (int j = 0; j < i; j++)
                dup |= ids[j] == ids[i];
        } while (dup);
    }
    char keys[TRANSFER_KEYS][KEY_LEN + 1];
    tikvc_slice sl[TRANSFER_KEYS];
    uint64_t bal[TRANSFER_KEYS];
    for (int i = 0; i < TRANSFER_KEYS; i++) {
        txn_key(keys[i], "acct", ids[i]);
        sl[i] = (tikvc_slice){keys[i], KEY_LEN};
        bal[i] = 1000000;
    }
    tikvc_kvs got = {0};
    int rc = tikvc_txn_batch_get(t, sl, TRANSFER_KEYS, &got);
    if (rc != TIKVC_OK)
        return rc;
    for (size_t k = 0; k < got.len; k++) {
        for (int i = 0; i < TRANSFER_KEYS; i++) {
            if (got.items[k].key.len == KEY_LEN &&
                memcmp(got.items[k].key.data, keys[i], KEY_LEN) == 0 && got.items[k].value.len == 8)
                bal[i] = get_u64(got.items[k].value.data);
        }
    }
    tikvc_kvs_free(&got);
    for (int i = 0; i + 1 < TRANSFER_KEYS; i++) {
        uint64_t amount = next_rand(&w->rng) % (bal[i] / 10 + 1);
        bal[i] -= amount;
        bal[TRANSFER_KEYS - 1] += amount;
    }
    for (int i = 0; i < TRANSFER_KEYS && rc == TIKVC_OK; i++) {
        uint8_t v[8];
        put_u64(v, bal[i]);
        rc = tikvc_txn_set(t, keys[i], KEY_LEN, v, sizeof(v));
    }
    return rc == TIKVC_OK ? tikvc_txn_commit(t) : rc;
}

static void *txn_worker_main(void *arg)
{
    txn_worker *w = arg;
    bench *b = w->b;
    uint8_t *value = malloc((size_t)b->value_size + 1);
    while (value != NULL && !atomic_load(&b->stop)) {
        uint64_t t0 = now_ns();
        tikvc_txn *t;
        int rc = tikvc_txn_begin(b->c, &t);
        if (rc == TIKVC_OK) {
            rc = w->transfer ? txn_transfer_once(w, t) : txn_put_once(w, t, value);
            tikvc_txn_free(t);
        }
        if (rc == TIKVC_OK)
            record(b, (now_ns() - t0) / 1000);
        else if (rc == TIKVC_ECONFLICT)
            atomic_fetch_add(&b->conflicts, 1);
        else
            record_error(b, rc, tikvc_errmsg());
    }
    if (value == NULL)
        atomic_fetch_add(&b->errors, 1);
    free(value);
    return NULL;
}

/* ---- running and reporting -------------------------------------------------------------- */

/* Sleeps through a warm-up (a fifth of the run, at most 1 s), then measures for
 * o->seconds; returns the measured seconds. */
static double measure(const ctl_opts *o, bench *b)
{
    uint64_t warm_ms = (uint64_t)o->seconds * 200 < 1000 ? (uint64_t)o->seconds * 200 : 1000;
    struct timespec d = {(time_t)(warm_ms / 1000), (long)(warm_ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    atomic_store(&b->measuring, true);
    uint64_t t0 = now_ns();
    d.tv_sec = o->seconds;
    d.tv_nsec = 0;
    nanosleep(&d, NULL);
    atomic_store(&b->measuring, false);
    double secs = (double)(now_ns() - t0) / 1e9;
    atomic_store(&b->stop, true);
    return secs;
}

static int report(const ctl_opts *o, bench *b, double secs)
{
    long ops = atomic_load(&b->ops);
    double p50 = percentile_ms(b, ops, 0.50), p99 = percentile_ms(b, ops, 0.99),
           p999 = percentile_ms(b, ops, 0.999);
    long errors = atomic_load(&b->errors), missing = atomic_load(&b->missing),
         wrong = atomic_load(&b->wrong), conflicts = atomic_load(&b->conflicts);
    bool txn = strncmp(b->what, "txn-", 4) == 0;
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "workload", json_string(b->what));
        json_object_set_new(j, "concurrency", json_integer(o->concurrency));
        json_object_set_new(j, "seconds", json_real(secs));
        json_object_set_new(j, "ops", json_integer(ops));
        json_object_set_new(j, "ops_per_sec", json_real((double)ops / secs));
        json_object_set_new(j, "p50_ms", json_real(p50));
        json_object_set_new(j, "p99_ms", json_real(p99));
        json_object_set_new(j, "p999_ms", json_real(p999));
        json_object_set_new(j, "errors", json_integer(errors));
        if (txn) {
            json_object_set_new(j, "write_conflicts", json_integer(conflicts));
        } else {
            json_object_set_new(j, "not_found", json_integer(missing));
            json_object_set_new(j, "wrong_values", json_integer(wrong));
        }
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s != NULL)
            printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("%-12s %-11s %-9s %-11s %-9s %-9s %-9s %s\n", "WORKLOAD", "CONCURRENCY", "OPS",
               "OPS/S", "P50 MS", "P99 MS", "P99.9 MS", "ERRORS");
        printf("%-12s %-11d %-9ld %-11.0f %-9.3f %-9.3f %-9.3f %ld\n", b->what, o->concurrency, ops,
               (double)ops / secs, p50, p99, p999, errors);
        if (txn)
            printf("transactions: ops are commits; %ld aborted by write conflicts\n", conflicts);
        else if (!b->put)
            printf("reads: %ld not found (never written), %ld with a wrong value\n", missing,
                   wrong);
        if (errors > 0)
            printf("first error: %s\n", b->first_error);
    }
    return ops > 0 && wrong == 0 ? CTL_OK : CTL_FAILED;
}

static int run_txn(const ctl_opts *o, bench *b)
{
    txn_worker *ws = calloc((size_t)o->concurrency, sizeof(*ws));
    if (ws == NULL) {
        fprintf(stderr, "tikv-ctl: out of memory\n");
        return CTL_FAILED;
    }
    uint64_t seed = now_ns();
    int started = 0;
    for (int i = 0; i < o->concurrency; i++) {
        ws[i] = (txn_worker){.b = b,
                             .transfer = strcmp(b->what, "txn-transfer") == 0,
                             .rng = seed + (uint64_t)i * 7919};
        if (pthread_create(&ws[i].thread, NULL, txn_worker_main, &ws[i]) != 0)
            break;
        started++;
    }
    double secs = measure(o, b);
    for (int i = 0; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    free(ws);
    if (started < o->concurrency)
        fprintf(stderr, "tikv-ctl: started only %d of %d threads\n", started, o->concurrency);
    return report(o, b, secs);
}

static int run_raw(const ctl_opts *o, bench *b)
{
    slot *slots = calloc((size_t)o->concurrency, sizeof(*slots));
    if (slots == NULL) {
        fprintf(stderr, "tikv-ctl: out of memory\n");
        return CTL_FAILED;
    }
    uint64_t seed = now_ns();
    int started = 0;
    for (int i = 0; i < o->concurrency; i++) {
        slots[i].b = b;
        slots[i].rng = seed + (uint64_t)i * 7919;
        slots[i].value = malloc((size_t)b->value_size + 1);
        if (slots[i].value == NULL)
            break;
        started++;
    }
    pthread_mutex_lock(&b->mu);
    b->idle = o->concurrency - started;
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < started; i++)
        issue(&slots[i]);
    double secs = measure(o, b);
    pthread_mutex_lock(&b->mu);
    while (b->idle < o->concurrency)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    int rc = report(o, b, secs);
    for (int i = 0; i < started; i++)
        free(slots[i].value);
    free(slots);
    return rc;
}

int ctl_bench(const ctl_opts *o, tikvc_client *c, const char *what)
{
    static const char *const known[] = {"raw-put", "raw-get", "txn-put", "txn-transfer"};
    bool ok = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        ok |= strcmp(what, known[i]) == 0;
    if (!ok) {
        fprintf(stderr,
                "tikv-ctl: unknown benchmark '%s' (raw-put, raw-get, txn-put or txn-transfer)\n",
                what);
        return CTL_USAGE;
    }
    if (strcmp(what, "txn-transfer") == 0 && o->keys < TRANSFER_KEYS) {
        fprintf(stderr, "tikv-ctl: txn-transfer needs --keys of at least %d\n", TRANSFER_KEYS);
        return CTL_USAGE;
    }
    bench b;
    memset(&b, 0, sizeof(b));
    b.c = c;
    b.what = what;
    b.put = strcmp(what, "raw-put") == 0;
    b.value_size = o->value_size;
    b.keys = o->keys;
    b.hist = calloc(HIST_N, sizeof(*b.hist));
    if (b.hist == NULL) {
        fprintf(stderr, "tikv-ctl: out of memory\n");
        return CTL_FAILED;
    }
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    int rc = strncmp(what, "txn-", 4) == 0 ? run_txn(o, &b) : run_raw(o, &b);
    free(b.hist);
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    return rc;
}
