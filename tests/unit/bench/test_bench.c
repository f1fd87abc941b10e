/*
 * test_bench.c: tikv-bench's building blocks: the log-linear histogram, YCSB's scrambled
 * zipfian, the self-describing values and the ledger that catches wrong or stale reads,
 * /proc parsing, the closed loop (async and threads) on an in-process fake store, and the
 * report's medians and ratios.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "tb.h"

static uint64_t test_seed(void)
{
    const char *s = getenv("TKV_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : 20261127;
    printf("# TKV_SEED=%" PRIu64 "\n", seed);
    return seed;
}

/* ---- histogram ------------------------------------------------------------------------ */

static void test_hist_buckets_are_exact_below_256_and_within_one_percent_above(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < 256; v++) {
        assert_int_equal(tb_hist_index(v), v);
        assert_int_equal(tb_hist_bucket_high(tb_hist_index(v)), v);
    }
    /* Every value lies in its bucket, whose upper end is within 1/128 of it; indexes grow
     * with the value. */
    unsigned prev = 0;
    for (uint64_t v = 256; v < (1ull << 40); v = v + v / 97 + 1) {
        unsigned i = tb_hist_index(v);
        assert_true(i >= prev);
        prev = i;
        uint64_t hi = tb_hist_bucket_high(i);
        assert_true(hi >= v);
        assert_true((double)(hi - v) <= (double)v / 128.0);
        if (i > 0)
            assert_true(tb_hist_bucket_high(i - 1) < v);
    }
    assert_int_equal(tb_hist_index(UINT64_MAX), TB_HIST_BUCKETS - 1);
}

static void test_hist_percentiles_match_exact_ranks(void **state)
{
    (void)state;
    tb_hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    tb_hist_reset(h);
    assert_int_equal(tb_hist_percentile(h, 50), 0);
    /* 1..10000 microseconds: p50 is 5000 us, p99 9900 us, p99.9 9990 us (within 1%). */
    for (uint64_t us = 1; us <= 10000; us++)
        tb_hist_record(h, us * 1000);
    assert_int_equal(h->count, 10000);
    struct {
        double p;
        double want_us;
    } cases[] = {{50, 5000}, {99, 9900}, {99.9, 9990}, {1, 100}};
    for (size_t i = 0; i < TKV_ARRAY_LEN(cases); i++) {
        double got = (double)tb_hist_percentile(h, cases[i].p) / 1000.0;
        assert_true(got >= cases[i].want_us);
        assert_true(got <= cases[i].want_us * 1.01);
    }
    assert_int_equal(tb_hist_percentile(h, 100), 10000 * 1000);
    assert_true(fabs(tb_hist_mean(h) - 5000.5 * 1000) < 1);

    /* Merging two halves gives the same percentiles as recording everything in one. */
    tb_hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    assert_non_null(a);
    assert_non_null(b);
    tb_hist_reset(a);
    tb_hist_reset(b);
    for (uint64_t us = 1; us <= 10000; us++)
        tb_hist_record(us % 2 ? a : b, us * 1000);
    tb_hist_merge(a, b);
    assert_int_equal(a->count, h->count);
    assert_int_equal(a->min_ns, 1000);
    assert_int_equal(a->max_ns, 10000 * 1000);
    for (int i = 0; i < 14; i++) {
        double p = 1 + 7.5 * i;
        assert_int_equal(tb_hist_percentile(a, p), tb_hist_percentile(h, p));
    }
    free(a);
    free(b);
    free(h);
}

/* ---- key choice ----------------------------------------------------------------------- */

static void test_zeta_matches_ycsb_constant(void **state)
{
    (void)state;
    /* YCSB's ScrambledZipfianGenerator precomputes zeta(10^10, 0.99) = 26.46902820178302. */
    double z = tb_zeta(TB_ZIPF_ITEMS, 0.99);
    assert_true(fabs(z - 26.46902820178302) < 1e-9);
    /* Small n: the plain sum. */
    assert_true(fabs(tb_zeta(2, 0.99) - (1.0 + pow(2, -0.99))) < 1e-12);
}

static void test_zipfian_favours_item_zero_as_theory_says(void **state)
{
    (void)state;
    tkv_rng r;
    tkv_rng_seed(&r, test_seed());
    tb_zipf z;
    tb_zipf_init(&z, 1000, 0.99);
    enum { N = 200000 };
    uint64_t zero = 0, one = 0;
    for (int i = 0; i < N; i++) {
        uint64_t v = tb_zipf_next(&z, &r);
        assert_true(v < 1000);
        zero += v == 0;
        one += v == 1;
    }
    /* P(0) = 1 / zeta(1000), P(1) = 2^-theta / zeta(1000). */
    double p0 = 1.0 / z.zetan, p1 = pow(2, -0.99) / z.zetan;
    assert_true(fabs((double)zero / N - p0) < p0 * 0.05);
    assert_true(fabs((double)one / N - p1) < p1 * 0.08);
}

static void test_scrambled_zipfian_spreads_hot_keys_over_the_space(void **state)
{
    (void)state;
    tkv_rng r;
    tkv_rng_seed(&r, test_seed());
    tb_zipf z;
    tb_zipf_init(&z, TB_ZIPF_ITEMS, TB_ZIPF_THETA);
    enum { KEYS = 1000, N = 200000 };
    uint32_t *hits = calloc(KEYS, sizeof(*hits));
    assert_non_null(hits);
    for (int i = 0; i < N; i++) {
        uint64_t k = tb_zipf_scrambled(&z, &r, KEYS);
        assert_true(k < KEYS);
        hits[k]++;
    }
    /* The hottest key is item 0's hash: about 1/26.47 = 3.8% of the draws, and it is not
     * key 0 (scrambling moves it). */
    uint64_t hot = tb_fnv64(0) % KEYS;
    double share = (double)hits[hot] / N;
    assert_true(share > 0.033 && share < 0.045);
    assert_int_not_equal(hot, 0);
    uint32_t max = 0, zero_keys = 0;
    for (int k = 0; k < KEYS; k++) {
        max = hits[k] > max ? hits[k] : max;
        zero_keys += hits[k] == 0;
    }
    assert_int_equal(max, hits[hot]);
    /* The long tail still reaches almost every key. */
    assert_true(zero_keys < KEYS / 20);
    free(hits);
    /* YCSB's FNV-1a over the 8 bytes of 0 is 0xa8c7f832281a39c5, negative as a Java long,
     * so Math.abs gives its two's complement. */
    assert_int_equal(tb_fnv64(0), 0x573807cdd7e5c63bull);
}

/* ---- values and the ledger ------------------------------------------------------------ */

static void test_keys_are_16_bytes_and_sort_by_index(void **state)
{
    (void)state;
    uint8_t a[TB_KEY_LEN], b[TB_KEY_LEN];
    tb_key(TB_PREFIX_KV, 42, a);
    assert_memory_equal(a, "tkvb000000000042", TB_KEY_LEN);
    tb_key(TB_PREFIX_KV, 999999999999ull, b);
    assert_memory_equal(b, "tkvb999999999999", TB_KEY_LEN);
    tb_key(TB_PREFIX_KV, 9, a);
    tb_key(TB_PREFIX_KV, 10, b);
    assert_true(memcmp(a, b, TB_KEY_LEN) < 0);
}

static void test_value_round_trips_and_rejects_tampering(void **state)
{
    (void)state;
    uint8_t key[TB_KEY_LEN], other[TB_KEY_LEN], v[TB_VALUE_LEN];
    char why[256];
    tb_value_info vi;
    tb_key(TB_PREFIX_ACCOUNT, 7, key);
    tb_key(TB_PREFIX_ACCOUNT, 8, other);
    tb_value_make(key, 0xdeadbeef, 12, -250, v);
    assert_int_equal(tb_value_parse(v, sizeof(v), key, &vi, why, sizeof(why)), 0);
    assert_int_equal(vi.epoch, 0xdeadbeef);
    assert_int_equal(vi.version, 12);
    assert_int_equal(vi.balance, -250);
    /* Read back under another key: caught. */
    assert_int_equal(tb_value_parse(v, sizeof(v), other, &vi, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "was written for tkva000000000007"));
    /* Short value, any flipped byte: caught. */
    assert_int_equal(tb_value_parse(v, 99, key, &vi, why, sizeof(why)), -1);
    for (int i = 0; i < TB_VALUE_LEN; i++) {
        v[i] ^= 0x20;
        assert_int_equal(tb_value_parse(v, sizeof(v), key, &vi, why, sizeof(why)), -1);
        v[i] ^= 0x20;
    }
}

static void test_ledger_sets_floor_only_for_writes_that_ran_alone(void **state)
{
    (void)state;
    tb_ledger l;
    assert_int_equal(tb_ledger_init(&l, TB_PREFIX_KV, 4, 77), 0);
    tb_write a, b;
    /* Alone: the floor follows. */
    tb_ledger_write_begin(&l, 1, &a);
    assert_true(a.solo);
    assert_int_equal(a.version, 1);
    tb_ledger_write_end(&l, &a, true);
    assert_int_equal(tb_ledger_read_begin(&l, 1), 1);
    /* Two overlapping writes: the server may order them either way, so no floor moves. */
    tb_ledger_write_begin(&l, 1, &a);
    tb_ledger_write_begin(&l, 1, &b);
    assert_false(b.solo);
    tb_ledger_write_end(&l, &b, true);
    tb_ledger_write_end(&l, &a, true);
    assert_int_equal(tb_ledger_read_begin(&l, 1), 1);
    /* A failed (rolled back) write moves nothing. */
    tb_ledger_write_begin(&l, 2, &a);
    tb_ledger_write_end(&l, &a, false);
    assert_int_equal(tb_ledger_read_begin(&l, 2), 0);
    tb_ledger_deinit(&l);
}

static void test_ledger_catches_stale_unknown_and_foreign_reads(void **state)
{
    (void)state;
    tb_ledger l;
    assert_int_equal(tb_ledger_init(&l, TB_PREFIX_KV, 4, 77), 0);
    uint8_t key[TB_KEY_LEN], v1[TB_VALUE_LEN], v2[TB_VALUE_LEN], v9[TB_VALUE_LEN],
        old[TB_VALUE_LEN];
    char why[256];
    tb_ledger_key(&l, 3, key);
    tb_value_make(key, 77, 1, 0, v1);
    tb_value_make(key, 77, 2, 0, v2);
    tb_value_make(key, 77, 9, 0, v9);
    tb_value_make(key, 55, 4, 0, old);
    /* Before this run wrote the key, an earlier run's value is fine. */
    assert_int_equal(tb_ledger_check(&l, 3, 0, true, old, TB_VALUE_LEN, NULL, why, sizeof(why)), 0);
    tb_ledger_set_all(&l, 1);
    tb_write w;
    tb_ledger_write_begin(&l, 3, &w);
    tb_ledger_write_end(&l, &w, true);
    uint32_t floor = tb_ledger_read_begin(&l, 3);
    assert_int_equal(floor, 2);
    assert_int_equal(tb_ledger_check(&l, 3, floor, true, v2, TB_VALUE_LEN, NULL, why, sizeof(why)),
                     0);
    /* Version 1 after version 2 was acknowledged: stale for a linearizable read, allowed
     * for a serializable one. */
    assert_int_equal(tb_ledger_check(&l, 3, floor, true, v1, TB_VALUE_LEN, NULL, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "stale read"));
    assert_int_equal(tb_ledger_check(&l, 3, floor, false, v1, TB_VALUE_LEN, NULL, why, sizeof(why)),
                     0);
    /* A version never handed out, an earlier run's value, a missing key: caught. */
    assert_int_equal(tb_ledger_check(&l, 3, floor, true, v9, TB_VALUE_LEN, NULL, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "never written"));
    assert_int_equal(tb_ledger_check(&l, 3, floor, true, old, TB_VALUE_LEN, NULL, why, sizeof(why)),
                     -1);
    assert_int_equal(tb_ledger_check(&l, 3, floor, true, NULL, 0, NULL, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "not found"));
    tb_ledger_deinit(&l);
}

/* ---- /proc ---------------------------------------------------------------------------- */

static void test_proc_parsers_read_cpu_ticks_and_memory(void **state)
{
    (void)state;
    /* A command name with a space and a parenthesis must not shift the fields. */
    const char *stat = "1234 (etcd (m) 1) S 1 1234 1234 0 -1 4194560 100 0 0 0 "
                       "250 75 0 0 20 0 12 0 100 1000 200 18446744073709551615";
    uint64_t ticks = 0;
    assert_int_equal(tb_proc_parse_stat(stat, &ticks), 0);
    assert_int_equal(ticks, 325);
    assert_int_equal(tb_proc_parse_stat("1 (x) S 1 2", &ticks), -1);
    assert_int_equal(tb_proc_parse_stat("no parens", &ticks), -1);
    const char *status = "Name:\tetcd\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t12\n";
    uint64_t b = 0;
    assert_int_equal(tb_proc_parse_status(status, "VmRSS", &b), 0);
    assert_int_equal(b, 102400ull * 1024);
    assert_int_equal(tb_proc_parse_status(status, "VmHWM", &b), 0);
    assert_int_equal(b, 204800ull * 1024);
    assert_int_equal(tb_proc_parse_status(status, "VmSwap", &b), -1);

    /* Our own process can be sampled; a PID that does not exist counts as missing. */
    pid_t pids[2] = {getpid(), 0x7ffffff0};
    tb_proc_sample s;
    tb_proc_sample_pids(pids, 2, &s);
    assert_int_equal(s.missing, 1);
    assert_true(s.rss_bytes > 0);
    assert_true(s.hwm_bytes >= s.rss_bytes);
}

/* ---- the closed loop on a fake store -------------------------------------------------- */

/* An in-process store: values per key index, served by one worker thread that answers
 * submitted operations after a short delay (async), or on the caller's thread (exec).
 * `stale` makes every get return the preloaded value, which the ledger must catch. */
struct tb_driver {
    const tb_env *env;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tb_op *queue[512];
    int head, tail;
    bool quit;
    pthread_t worker;
    uint8_t (*vals)[TB_VALUE_LEN];
    uint8_t (*first)[TB_VALUE_LEN];
    bool stale;
    atomic_int ops_seen;
};

static bool g_fake_stale;

static void fake_apply(tb_driver *d, tb_op *op)
{
    tb_ledger *l = d->env->kv;
    uint8_t key[TB_KEY_LEN];
    tb_ledger_key(l, op->idx[0], key);
    atomic_fetch_add(&d->ops_seen, 1);
    if (op->kind == TB_OP_PUT) {
        tb_write w;
        tb_ledger_write_begin(l, op->idx[0], &w);
        pthread_mutex_lock(&d->mu);
        tb_value_make(key, l->epoch, w.version, 0, d->vals[op->idx[0]]);
        pthread_mutex_unlock(&d->mu);
        tb_ledger_write_end(l, &w, true);
        return;
    }
    uint32_t floor = tb_ledger_read_begin(l, op->idx[0]);
    uint8_t v[TB_VALUE_LEN];
    pthread_mutex_lock(&d->mu);
    memcpy(v, d->stale ? d->first[op->idx[0]] : d->vals[op->idx[0]], TB_VALUE_LEN);
    pthread_mutex_unlock(&d->mu);
    if (tb_ledger_check(l, op->idx[0], floor, true, v, TB_VALUE_LEN, NULL, op->err,
                        sizeof(op->err)) != 0)
        op->rc = -EIO;
}

static void *fake_worker(void *arg)
{
    tb_driver *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (d->head == d->tail && !d->quit)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->head == d->tail && d->quit)
            break;
        tb_op *op = d->queue[d->head++ % 512];
        pthread_mutex_unlock(&d->mu);
        usleep(50);
        fake_apply(d, op);
        tb_op_done(op);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static int fake_open(const tb_env *env, tb_driver **out, char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    tb_driver *d = calloc(1, sizeof(*d));
    d->env = env;
    d->stale = g_fake_stale;
    d->vals = calloc(env->kv->n, TB_VALUE_LEN);
    d->first = calloc(env->kv->n, TB_VALUE_LEN);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    pthread_create(&d->worker, NULL, fake_worker, d);
    *out = d;
    return 0;
}

static void fake_close(tb_driver *d)
{
    pthread_mutex_lock(&d->mu);
    d->quit = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->worker, NULL);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->vals);
    free(d->first);
    free(d);
}

static bool fake_supports(const tb_driver *d, tb_workload w)
{
    (void)d;
    return w == TB_W_PUT || w == TB_W_GET || w == TB_W_YCSB_A;
}

static int fake_preload_chunk(void *arg, uint64_t lo, uint64_t hi, char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    tb_driver *d = arg;
    for (uint64_t i = lo; i < hi; i++) {
        uint8_t key[TB_KEY_LEN];
        tb_ledger_key(d->env->kv, i, key);
        tb_value_make(key, d->env->kv->epoch, 1, 0, d->vals[i]);
        memcpy(d->first[i], d->vals[i], TB_VALUE_LEN);
    }
    return 0;
}

static int fake_preload(tb_driver *d, tb_ledger *l, int threads, char *err, size_t err_len)
{
    return tb_parallel_chunks(l->n, 7, threads, fake_preload_chunk, d, err, err_len);
}

static int fake_submit(tb_driver *d, tb_op *op)
{
    pthread_mutex_lock(&d->mu);
    d->queue[d->tail++ % 512] = op;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

static void fake_exec(tb_driver *d, tb_op *op)
{
    fake_apply(d, op);
}

static const tb_driver_ops fake_ops_async = {
    .name = "fake",
    .system = "fake",
    .open = fake_open,
    .close = fake_close,
    .supports = fake_supports,
    .preload = fake_preload,
    .submit = fake_submit,
};

static const tb_driver_ops fake_ops_exec = {
    .name = "fake",
    .system = "fake",
    .open = fake_open,
    .close = fake_close,
    .supports = fake_supports,
    .preload = fake_preload,
    .exec = fake_exec,
};

/* Runs @w at @clients on a fresh fake store; returns the result (caller frees). */
static tb_result *run_fake(const tb_driver_ops *ops, tb_mode mode, tb_workload w, int clients,
                           bool stale)
{
    tb_ledger kv;
    assert_int_equal(tb_ledger_init(&kv, TB_PREFIX_KV, 200, 99), 0);
    tb_env env = {.endpoints = "fake", .kv = &kv, .timeout_ms = 1000};
    tb_driver *d = NULL;
    char err[128];
    g_fake_stale = stale;
    assert_int_equal(ops->open(&env, &d, err, sizeof(err)), 0);
    assert_int_equal(ops->preload(d, &kv, 3, err, sizeof(err)), 0);
    tb_ledger_set_all(&kv, 1);
    pid_t self = getpid();
    tb_cell cell = {.workload = w,
                    .clients = clients,
                    .warmup_ms = 50,
                    .measure_ms = 200,
                    .mode = mode,
                    .seed = test_seed(),
                    .pids = &self,
                    .n_pids = 1};
    tb_result *r = malloc(sizeof(*r));
    assert_non_null(r);
    assert_int_equal(tb_run_cell(ops, d, &env, &cell, r), 0);
    /* Every operation the store saw was recorded by the runner (none lost or doubled). */
    assert_int_equal(r->total_ops, (uint64_t)atomic_load(&d->ops_seen));
    ops->close(d);
    tb_ledger_deinit(&kv);
    return r;
}

static void test_async_loop_counts_window_ops_and_verifies_reads(void **state)
{
    (void)state;
    tb_result *r = run_fake(&fake_ops_async, TB_MODE_AUTO, TB_W_YCSB_A, 16, false);
    assert_string_equal(r->mode, "async");
    assert_int_equal(r->errors, 0);
    assert_true(r->ops > 0);
    assert_true(r->ops < r->total_ops); /* warm-up and drain are not counted */
    assert_int_equal(r->hist.count, r->ops);
    assert_true(r->hist.min_ns >= 50000); /* the store's 50 us delay */
    assert_true(r->seconds > 0.19 && r->seconds < 0.21);
    assert_true(r->server_cpu_s >= 0);
    assert_true(r->server_rss_bytes > 0);
    free(r);
}

static void test_threads_loop_runs_blocking_and_async_drivers(void **state)
{
    (void)state;
    tb_result *r = run_fake(&fake_ops_exec, TB_MODE_AUTO, TB_W_PUT, 4, false);
    assert_string_equal(r->mode, "threads");
    assert_int_equal(r->errors, 0);
    assert_true(r->ops > 0);
    free(r);
    r = run_fake(&fake_ops_async, TB_MODE_THREADS, TB_W_GET, 4, false);
    assert_string_equal(r->mode, "threads");
    assert_int_equal(r->errors, 0);
    assert_true(r->ops > 0);
    free(r);
}

static void test_stale_store_fails_the_cell_with_the_reason(void **state)
{
    (void)state;
    tb_result *r = run_fake(&fake_ops_async, TB_MODE_ASYNC, TB_W_YCSB_A, 8, true);
    assert_true(r->errors > 0);
    assert_true(r->n_errs > 0);
    assert_non_null(strstr(r->errs[0], "stale read"));
    free(r);
}

static void test_exec_one_runs_a_probe_on_async_and_blocking_drivers(void **state)
{
    (void)state;
    const tb_driver_ops *all[2] = {&fake_ops_async, &fake_ops_exec};
    for (int k = 0; k < 2; k++) {
        tb_ledger kv;
        assert_int_equal(tb_ledger_init(&kv, TB_PREFIX_KV, 50, 5), 0);
        tb_env env = {.endpoints = "fake", .kv = &kv, .timeout_ms = 1000};
        tb_driver *d = NULL;
        char err[128];
        g_fake_stale = false;
        assert_int_equal(all[k]->open(&env, &d, err, sizeof(err)), 0);
        assert_int_equal(all[k]->preload(d, &kv, 2, err, sizeof(err)), 0);
        tb_ledger_set_all(&kv, 1);
        tb_op op;
        memset(&op, 0, sizeof(op));
        op.kind = TB_OP_PUT;
        op.idx[0] = 7;
        assert_int_equal(tb_exec_one(all[k], d, &op), 0);
        op.kind = TB_OP_GET;
        assert_int_equal(tb_exec_one(all[k], d, &op), 0);
        assert_int_equal(atomic_load(&d->ops_seen), 2);
        assert_int_equal(tb_ledger_read_begin(&kv, 7), 2);
        all[k]->close(d);
        tb_ledger_deinit(&kv);
    }
}

/* ---- the report ----------------------------------------------------------------------- */

static void write_run(const char *path, double tikv_ops, double etcd_ops, double big_ops)
{
    json_t *rs = json_array();
    struct {
        const char *sys;
        double ops;
        uint64_t keys;
    } rows[] = {
        {"tikv-c", tikv_ops, 100000}, {"etcd", etcd_ops, 100000}, {"tikv-c", big_ops, 10000000}};
    for (size_t i = 0; i < TKV_ARRAY_LEN(rows); i++)
        json_array_append_new(rs,
                              json_pack("{s:s, s:s, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:i}",
                                        "system", rows[i].sys, "workload", "put", "clients", 16,
                                        "keys", (json_int_t)rows[i].keys, "ops_per_sec",
                                        rows[i].ops, "p50_ms", 10000.0 / rows[i].ops, "p99_ms", 2.0,
                                        "p999_ms", 3.0, "server_cpu_s_per_1k", 0.1,
                                        "server_rss_bytes", (json_int_t)1 << 30, "errors", 0));
    json_t *root = json_pack("{s:s, s:o}", "tool", "tikv-bench", "results", rs);
    assert_int_equal(json_dump_file(root, path, 0), 0);
    json_decref(root);
}

static void test_report_takes_medians_and_ratios(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_bench_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[3][128], out[128], table[128];
    double tikv[3] = {9000, 3000, 8000}, etcd[3] = {1000, 4000, 2000}, big[3] = {4000, 4000, 1};
    for (int i = 0; i < 3; i++) {
        snprintf(p[i], sizeof(p[i]), "%s/run%d.json", dir, i);
        write_run(p[i], tikv[i], etcd[i], big[i]);
    }
    snprintf(out, sizeof(out), "%s/merged.json", dir);
    snprintf(table, sizeof(table), "%s/table.txt", dir);
    const char *paths[3] = {p[0], p[1], p[2]};
    FILE *f = fopen(table, "w");
    assert_non_null(f);
    assert_int_equal(tb_report(paths, 3, 100000, f, out), 0);
    fclose(f);
    json_error_t je;
    json_t *root = json_load_file(out, 0, &je);
    assert_non_null(root);
    json_t *rows = json_object_get(root, "rows");
    assert_int_equal(json_array_size(rows), 2);
    json_t *row = json_array_get(rows, 0);
    /* Medians: tikv-c 8000, etcd 2000; ratio 4. */
    assert_true(
        fabs(json_real_value(json_object_get(json_object_get(row, "tikv-c"), "ops_per_sec")) -
             8000) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(json_object_get(row, "ratio_tikv_c_etcd"),
                                                     "ops_per_sec")) -
                     4) < 1e-9);
    /* The 10M row against the 100k row: 4000 / 8000. */
    json_t *scale = json_array_get(rows, 1);
    assert_int_equal(json_integer_value(json_object_get(scale, "keys")), 10000000);
    assert_true(fabs(json_real_value(json_object_get(json_object_get(scale, "ratio_tikv-c_vs_base"),
                                                     "ops_per_sec")) -
                     0.5) < 1e-9);
    json_decref(root);
    /* The printed table carries the ratio rows. */
    char text[8192];
    f = fopen(table, "r");
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_non_null(strstr(text, "ratio tikv-c/etcd"));
    assert_non_null(strstr(text, "4.00x"));
    assert_non_null(strstr(text, "tikv-c vs 100k keys"));
    for (int i = 0; i < 3; i++)
        unlink(p[i]);
    unlink(out);
    unlink(table);
    rmdir(dir);

    double v[4] = {3, 1, 4, 2};
    assert_true(tb_median(v, 4) == 2.5);
    assert_true(tb_median(v, 3) == 2);
    assert_true(isnan(tb_median(v, 0)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_buckets_are_exact_below_256_and_within_one_percent_above),
        cmocka_unit_test(test_hist_percentiles_match_exact_ranks),
        cmocka_unit_test(test_zeta_matches_ycsb_constant),
        cmocka_unit_test(test_zipfian_favours_item_zero_as_theory_says),
        cmocka_unit_test(test_scrambled_zipfian_spreads_hot_keys_over_the_space),
        cmocka_unit_test(test_keys_are_16_bytes_and_sort_by_index),
        cmocka_unit_test(test_value_round_trips_and_rejects_tampering),
        cmocka_unit_test(test_ledger_sets_floor_only_for_writes_that_ran_alone),
        cmocka_unit_test(test_ledger_catches_stale_unknown_and_foreign_reads),
        cmocka_unit_test(test_proc_parsers_read_cpu_ticks_and_memory),
        cmocka_unit_test(test_async_loop_counts_window_ops_and_verifies_reads),
        cmocka_unit_test(test_threads_loop_runs_blocking_and_async_drivers),
        cmocka_unit_test(test_stale_store_fails_the_cell_with_the_reason),
        cmocka_unit_test(test_exec_one_runs_a_probe_on_async_and_blocking_drivers),
        cmocka_unit_test(test_report_takes_medians_and_ratios),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
