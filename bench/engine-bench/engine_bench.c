/*
 * engine_bench.c: micro-benchmark of the storage engine.
 *
 * Prints synced write-batch puts per second for batch sizes 1 and 16 with 1 and 16 threads
 * (each write fsyncs the WAL; RocksDB groups concurrent writers into one fsync), then point
 * gets per second over the loaded keys with 1 and 16 threads.
 *
 *   engine-bench [--engine rocks|mem] [--dir DIR] [--seconds S] [--value-bytes N]
 *                [--get-keys N]
 *
 * The database goes in a new directory (by default mkdtemp under /tmp; --dir must not exist)
 * that is destroyed at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "security/encryption.h"

typedef struct bench {
    eng_db *db;
    int batch;
    size_t value_bytes;
    uint64_t get_keys;
    atomic_bool stop;
} bench;

typedef struct runner {
    bench *b;
    int id;
    uint64_t ops;
    int err;
    char errmsg[TKV_ERRMSG_LEN];
    pthread_t th;
} runner;

static void fill_value(uint8_t *v, size_t n, tkv_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (uint8_t)tkv_rng_next(rng);
}

static void *put_main(void *arg)
{
    runner *r = arg;
    bench *b = r->b;
    eng_batch *wb = NULL;
    uint8_t *v = malloc(b->value_bytes);
    tkv_rng rng;
    tkv_rng_seed(&rng, (uint64_t)r->id);
    r->err = v == NULL ? -ENOMEM : eng_batch_new(b->db, &wb);
    char key[32];
    for (uint64_t n = 0; r->err == 0 && !atomic_load(&b->stop); n++) {
        eng_batch_clear(wb);
        for (int i = 0; i < b->batch && r->err == 0; i++) {
            snprintf(key, sizeof(key), "w%02d-%012" PRIu64 "-%02d", r->id, n, i);
            fill_value(v, b->value_bytes, &rng);
            r->err = eng_batch_put(wb, ENG_CF_DEFAULT, tkv_slice_str(key),
                                   tkv_slice_of(v, b->value_bytes));
        }
        if (r->err == 0)
            r->err = eng_write(b->db, wb, true);
        if (r->err == 0)
            r->ops += (uint64_t)b->batch;
    }
    if (r->err != 0)
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", eng_errmsg(b->db));
    eng_batch_free(wb);
    free(v);
    return NULL;
}

static void get_key(uint64_t i, char key[32])
{
    snprintf(key, 32, "g%012" PRIu64, i);
}

static void *get_main(void *arg)
{
    runner *r = arg;
    bench *b = r->b;
    tkv_rng rng;
    tkv_rng_seed(&rng, 1000 + (uint64_t)r->id);
    tkv_buf v;
    tkv_buf_init(&v);
    char key[32];
    while (r->err == 0 && !atomic_load(&b->stop)) {
        for (int i = 0; i < 64 && r->err == 0; i++) {
            get_key(tkv_rng_below(&rng, b->get_keys), key);
            bool found = false;
            r->err = eng_get(b->db, ENG_CF_DEFAULT, tkv_slice_str(key), &v, &found);
            if (r->err == 0 && !found)
                r->err = TKV_ENOTFOUND;
            r->ops++;
        }
    }
    if (r->err != 0)
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", eng_errmsg(b->db));
    tkv_buf_deinit(&v);
    return NULL;
}

/* Runs @threads copies of @fn for @seconds; returns operations per second, or -1. */
static double run(bench *b, int threads, void *(*fn)(void *), double seconds)
{
    runner *rs = calloc((size_t)threads, sizeof(*rs));
    if (rs == NULL)
        return -1;
    atomic_store(&b->stop, false);
    uint64_t t0 = tkv_clock_mono_ns();
    int started = 0;
    for (; started < threads; started++) {
        rs[started].b = b;
        rs[started].id = started;
        if (pthread_create(&rs[started].th, NULL, fn, &rs[started]) != 0)
            break;
    }
    /* A benchmark may sleep: the threads do the work, this one only times them. */
    tkv_sleep_ms((uint64_t)(seconds * 1000));
    atomic_store(&b->stop, true);
    uint64_t ops = 0;
    int failed = started < threads;
    for (int i = 0; i < started; i++) {
        pthread_join(rs[i].th, NULL);
        ops += rs[i].ops;
        if (rs[i].err != 0) {
            fprintf(stderr, "engine-bench: thread %d: %s: %s\n", i, tkv_strerror(rs[i].err),
                    rs[i].errmsg);
            failed = 1;
        }
    }
    double elapsed = (double)(tkv_clock_mono_ns() - t0) / 1e9;
    free(rs);
    return failed ? -1 : (double)ops / elapsed;
}

static int load_get_keys(bench *b)
{
    eng_batch *wb = NULL;
    int rc = eng_batch_new(b->db, &wb);
    uint8_t *v = malloc(b->value_bytes);
    tkv_rng rng;
    tkv_rng_seed(&rng, 42);
    char key[32];
    for (uint64_t i = 0; rc == 0 && v != NULL && i < b->get_keys; i++) {
        get_key(i, key);
        fill_value(v, b->value_bytes, &rng);
        rc = eng_batch_put(wb, ENG_CF_DEFAULT, tkv_slice_str(key), tkv_slice_of(v, b->value_bytes));
        if (rc == 0 && (eng_batch_count(wb) == 1000 || i + 1 == b->get_keys)) {
            rc = eng_write(b->db, wb, false);
            eng_batch_clear(wb);
        }
    }
    if (v == NULL)
        rc = -ENOMEM;
    if (rc == 0)
        rc = eng_flush(b->db, true);
    eng_batch_free(wb);
    free(v);
    return rc;
}

/* Parses the whole of @s as a positive number of seconds. */
static bool parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0))
        return false;
    *out = v;
    return true;
}

/* The files encryption adds beside the database, removed at the end. */
static const char *const enc_files[] = {"master.key", "key.dict", "file.dict"};

/* Writes a random master key into @dir and opens the key dictionary and the encrypting env
 * there, with @m for new files. */
static int open_encryption(const char *dir, sec_method m, sec_keys **keys, sec_env **env, char *err)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/master.key", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        snprintf(err, TKV_ERRMSG_LEN, "create %.200s", path);
        return -EIO;
    }
    tkv_rng r; /* a throw-away key for a benchmark: any bits will do */
    tkv_rng_seed(&r, tkv_clock_mono_ns());
    for (int i = 0; i < 32; i++)
        fprintf(f, "%02x", (unsigned)(tkv_rng_next(&r) & 0xff));
    fputc('\n', f);
    fclose(f);
    sec_enc_opts eo;
    sec_enc_opts_init(&eo);
    eo.dict_dir = dir;
    eo.method = m;
    eo.master_key_path = path;
    int rc = sec_keys_open(&eo, keys, err);
    if (rc == 0 && (rc = sec_env_new(*keys, env)) != 0)
        snprintf(err, TKV_ERRMSG_LEN, "encrypting env: %s", tkv_strerror(rc));
    return rc;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: engine-bench [--engine rocks|mem] [--dir DIR] [--seconds S] "
            "[--value-bytes N] [--get-keys N]\n"
            "                    [--encrypt aes128-ctr|aes192-ctr|aes256-ctr]\n"
            "                    [--write-buffer BYTES] [--recycle-wal N] [--block-cache BYTES]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *engine = "rocks";
    char dir[256] = "";
    double seconds = 2;
    bench b = {.batch = 1, .value_bytes = 100, .get_keys = 200000};
    sec_method method = SEC_PLAINTEXT;
    size_t write_buffer = 0;
    int recycle_wal = 0;
    size_t block_cache = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL)
            return usage();
        if (strcmp(a, "--engine") == 0)
            engine = val;
        else if (strcmp(a, "--dir") == 0)
            snprintf(dir, sizeof(dir), "%s", val);
        else if (strcmp(a, "--seconds") == 0) {
            if (!parse_seconds(val, &seconds))
                return usage();
        } else if (strcmp(a, "--value-bytes") == 0)
            b.value_bytes = (size_t)strtoull(val, NULL, 10);
        else if (strcmp(a, "--get-keys") == 0)
            b.get_keys = strtoull(val, NULL, 10);
        else if (strcmp(a, "--write-buffer") == 0)
            write_buffer = (size_t)strtoull(val, NULL, 10);
        else if (strcmp(a, "--block-cache") == 0)
            block_cache = (size_t)strtoull(val, NULL, 10);
        else if (strcmp(a, "--recycle-wal") == 0)
            recycle_wal = (int)strtol(val, NULL, 10);
        else if (strcmp(a, "--encrypt") == 0) {
            if (sec_method_parse(val, &method) != 0 || method == SEC_PLAINTEXT)
                return usage();
        } else
            return usage();
        i++;
    }
    bool rocks = strcmp(engine, "rocks") == 0;
    if ((!rocks && strcmp(engine, "mem") != 0) || seconds <= 0 || b.get_keys == 0 ||
        b.value_bytes == 0 || (!rocks && method != SEC_PLAINTEXT))
        return usage();

    eng_options o;
    eng_options_init(&o);
    o.name = "bench";
    o.write_buffer_bytes = write_buffer;
    o.recycle_wal_files = recycle_wal;
    if (block_cache > 0)
        o.block_cache_bytes = block_cache;
    char err[TKV_ERRMSG_LEN];
    int rc;
    sec_keys *keys = NULL;
    sec_env *env = NULL;
    if (rocks) {
        if (dir[0] == '\0') {
            snprintf(dir, sizeof(dir), "/tmp/engine-bench-XXXXXX");
            if (mkdtemp(dir) == NULL) {
                perror("engine-bench: mkdtemp");
                return 1;
            }
        } else if (mkdir(dir, 0755) != 0) {
            perror("engine-bench: --dir must be a new directory");
            return 1;
        }
        rc = method != SEC_PLAINTEXT ? open_encryption(dir, method, &keys, &env, err) : 0;
        if (rc == 0) {
            o.rocksdb_env = env != NULL ? sec_env_rocksdb(env) : NULL;
            rc = eng_rocks_open(dir, &o, &b.db, err);
        }
    } else {
        rc = eng_mem_open(&o, &b.db);
        snprintf(err, sizeof(err), "%s", tkv_strerror(rc));
    }
    if (rc != 0) {
        fprintf(stderr, "engine-bench: %s\n", err);
        return 1;
    }
    printf("engine-bench: %s engine%s%s, %zu-byte values, %.1f s per case, %s\n", eng_kind(b.db),
           rocks ? " at " : "", rocks ? dir : "", b.value_bytes, seconds,
           method != SEC_PLAINTEXT ? sec_method_name(method) : "not encrypted");
    printf("synced write batches (fsync per write; concurrent writers share fsyncs):\n");
    printf("  %-8s %-6s %12s %12s\n", "threads", "batch", "puts/s", "batches/s");
    static const int thread_counts[] = {1, 16};
    static const int batch_sizes[] = {1, 16};
    int status = 0;
    for (size_t t = 0; t < 2 && status == 0; t++) {
        for (size_t s = 0; s < 2 && status == 0; s++) {
            b.batch = batch_sizes[s];
            double rate = run(&b, thread_counts[t], put_main, seconds);
            if (rate < 0) {
                status = 1;
                break;
            }
            printf("  %-8d %-6d %12.0f %12.0f\n", thread_counts[t], b.batch, rate, rate / b.batch);
            fflush(stdout);
        }
    }
    if (status == 0) {
        rc = load_get_keys(&b);
        if (rc != 0) {
            fprintf(stderr, "engine-bench: load: %s\n", eng_errmsg(b.db));
            status = 1;
        }
    }
    if (status == 0) {
        printf("point gets (%" PRIu64 " keys, flushed, uniform random):\n", b.get_keys);
        printf("  %-8s %12s\n", "threads", "gets/s");
        for (size_t t = 0; t < 2 && status == 0; t++) {
            double rate = run(&b, thread_counts[t], get_main, seconds);
            if (rate < 0)
                status = 1;
            else
                printf("  %-8d %12.0f\n", thread_counts[t], rate);
        }
    }
    eng_close(b.db);
    if (rocks) {
        if (eng_rocks_destroy(dir, &o, err) != 0) {
            fprintf(stderr, "engine-bench: %s\n", err);
            status = 1;
        }
        if (method != SEC_PLAINTEXT)
            for (size_t i = 0; i < TKV_ARRAY_LEN(enc_files); i++) {
                char p[512];
                snprintf(p, sizeof(p), "%s/%s", dir, enc_files[i]);
                unlink(p);
            }
        rmdir(dir); /* already gone unless RocksDB left something foreign in it */
    }
    sec_env_free(env); /* after eng_rocks_destroy, which deletes through it */
    sec_keys_close(keys);
    return status;
}
