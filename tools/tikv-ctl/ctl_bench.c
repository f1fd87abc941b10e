/*
 * ctl_bench.c: `tikv-ctl bench raw-put|raw-get`: N closed-loop clients on libtikvc's
 * asynchronous raw API (each client issues its next request from the completion callback, so
 * N requests are always in flight, from a handful of library threads), 16-byte keys in
 * [0, --keys), values of --value-size bytes derived from the key. After a warm-up, counts
 * operations and latencies for --seconds; reads check every value found is the one a put
 * would write.
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

#define HIST_US   100000 /* 10 us buckets up to 1 s */
#define HIST_STEP 10
#define HIST_N    (HIST_US / HIST_STEP + 1)
#define KEY_LEN   16

typedef struct bench {
    tikvc_client *c;
    bool put;
    int value_size;
    long long keys;
    atomic_bool stop;
    atomic_bool measuring;
    atomic_long ops;
    atomic_long errors;
    atomic_long missing;
    atomic_long wrong;
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
        if (atomic_fetch_add(&b->errors, 1) == 0) {
            pthread_mutex_lock(&b->mu);
            snprintf(b->first_error, sizeof(b->first_error), "%s: %s", tikvc_strerror(r->code),
                     r->errmsg);
            pthread_mutex_unlock(&b->mu);
        }
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
    if (atomic_load(&b->measuring) && r->code == TIKVC_OK) {
        atomic_fetch_add(&b->ops, 1);
        size_t i = us / HIST_STEP < HIST_N - 1 ? us / HIST_STEP : HIST_N - 1;
        atomic_fetch_add(&b->hist[i], 1);
    }
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

int ctl_bench(const ctl_opts *o, tikvc_client *c, const char *what)
{
    bool put = strcmp(what, "raw-put") == 0;
    if (!put && strcmp(what, "raw-get") != 0) {
        fprintf(stderr, "tikv-ctl: unknown benchmark '%s' (raw-put or raw-get)\n", what);
        return CTL_USAGE;
    }
    bench b;
    memset(&b, 0, sizeof(b));
    b.c = c;
    b.put = put;
    b.value_size = o->value_size;
    b.keys = o->keys;
    b.hist = calloc(HIST_N, sizeof(*b.hist));
    slot *slots = calloc((size_t)o->concurrency, sizeof(*slots));
    if (b.hist == NULL || slots == NULL) {
        free(b.hist);
        free(slots);
        fprintf(stderr, "tikv-ctl: out of memory\n");
        return CTL_FAILED;
    }
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    uint64_t seed = now_ns();
    int started = 0;
    for (int i = 0; i < o->concurrency; i++) {
        slots[i].b = &b;
        slots[i].rng = seed + (uint64_t)i * 7919;
        slots[i].value = malloc((size_t)b.value_size + 1);
        if (slots[i].value == NULL)
            break;
        started++;
    }
    /* A warm-up (a fifth of the run, at most 1 s) fills caches and connections first. */
    uint64_t warm_ms = (uint64_t)o->seconds * 200 < 1000 ? (uint64_t)o->seconds * 200 : 1000;
    pthread_mutex_lock(&b.mu);
    b.idle = o->concurrency - started;
    pthread_mutex_unlock(&b.mu);
    for (int i = 0; i < started; i++)
        issue(&slots[i]);
    struct timespec d = {(time_t)(warm_ms / 1000), (long)(warm_ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    atomic_store(&b.measuring, true);
    uint64_t t0 = now_ns();
    d.tv_sec = o->seconds;
    d.tv_nsec = 0;
    nanosleep(&d, NULL);
    atomic_store(&b.measuring, false);
    double secs = (double)(now_ns() - t0) / 1e9;
    atomic_store(&b.stop, true);
    pthread_mutex_lock(&b.mu);
    while (b.idle < o->concurrency)
        pthread_cond_wait(&b.cv, &b.mu);
    pthread_mutex_unlock(&b.mu);

    long ops = atomic_load(&b.ops);
    double p50 = percentile_ms(&b, ops, 0.50), p99 = percentile_ms(&b, ops, 0.99),
           p999 = percentile_ms(&b, ops, 0.999);
    long errors = atomic_load(&b.errors), missing = atomic_load(&b.missing),
         wrong = atomic_load(&b.wrong);
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "workload", json_string(what));
        json_object_set_new(j, "concurrency", json_integer(o->concurrency));
        json_object_set_new(j, "seconds", json_real(secs));
        json_object_set_new(j, "ops", json_integer(ops));
        json_object_set_new(j, "ops_per_sec", json_real((double)ops / secs));
        json_object_set_new(j, "p50_ms", json_real(p50));
        json_object_set_new(j, "p99_ms", json_real(p99));
        json_object_set_new(j, "p999_ms", json_real(p999));
        json_object_set_new(j, "errors", json_integer(errors));
        json_object_set_new(j, "not_found", json_integer(missing));
        json_object_set_new(j, "wrong_values", json_integer(wrong));
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s != NULL)
            printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("%-9s %-11s %-9s %-11s %-9s %-9s %-9s %s\n", "WORKLOAD", "CONCURRENCY", "OPS",
               "OPS/S", "P50 MS", "P99 MS", "P99.9 MS", "ERRORS");
        printf("%-9s %-11d %-9ld %-11.0f %-9.3f %-9.3f %-9.3f %ld\n", what, o->concurrency, ops,
               (double)ops / secs, p50, p99, p999, errors);
        if (!put)
            printf("reads: %ld not found (never written), %ld with a wrong value\n", missing,
                   wrong);
        if (errors > 0)
            printf("first error: %s\n", b.first_error);
    }
    for (int i = 0; i < started; i++)
        free(slots[i].value);
    free(slots);
    free(b.hist);
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    return ops > 0 && wrong == 0 ? CTL_OK : CTL_FAILED;
}
