/*
 * tb_run.c: the closed loop.
 *
 * A cell runs `clients` slots. Each slot has exactly one operation in flight: when it
 * completes, the slot records it and starts the next. In async mode completions arrive on
 * the driver's library threads and the next operation is submitted from there, so 256
 * clients cost 256 small structs, not 256 threads; in threads mode each slot is a thread
 * that runs the driver's blocking form (or submits and waits).
 *
 * Timeline: start, warm-up (operations run but are not counted), the measured window
 * (operations that complete inside it are counted and their latencies recorded; server
 * CPU is sampled at both ends), then stop: slots finish the operation in flight and end.
 * A slot whose operation fails stops issuing; the failure is counted and the cell fails.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

#include "base/clock.h"
#include "tb.h"

/* Most time the slots may take to finish their last operation after the window. */
#define DRAIN_MS 60000

typedef struct tb_run tb_run;

typedef struct tb_slot {
    tb_run *run;
    int id;
    tkv_rng rng;
    tb_op op;
    tb_hist hist;
    uint64_t ops;
    uint64_t total;
    uint64_t retries;
    uint64_t errors;
    pthread_t th;
    /* Threads mode with an async-only driver: the thread waits here for tb_op_done. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} tb_slot;

struct tb_run {
    const tb_driver_ops *ops;
    tb_driver *d;
    const tb_env *env;
    const tb_cell *cell;
    bool async;
    uint64_t window_start_ns;
    uint64_t window_end_ns;
    atomic_bool stop;
    pthread_mutex_t mu; /* active, errs */
    pthread_cond_t cv;
    int active;
    tb_result *res;
};

static tb_zipf g_zipf;
static pthread_once_t g_zipf_once = PTHREAD_ONCE_INIT;

static void zipf_init_once(void)
{
    tb_zipf_init(&g_zipf, TB_ZIPF_ITEMS, TB_ZIPF_THETA);
}

void tb_op_fail(tb_op *op, int rc, const char *fmt, ...)
{
    op->rc = rc != 0 ? rc : -EIO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->err, sizeof(op->err), fmt, ap);
    va_end(ap);
}

/* Fills the slot's next operation from the cell's workload. */
static void choose(tb_slot *s)
{
    const tb_run *run = s->run;
    const tb_env *env = run->env;
    tb_op *op = &s->op;
    uint64_t n = env->kv != NULL ? env->kv->n : 0;
    op->rc = 0;
    op->err[0] = '\0';
    op->retries = 0;
    switch (run->cell->workload) {
    case TB_W_PUT:
        op->kind = TB_OP_PUT;
        op->idx[0] = tkv_rng_below(&s->rng, n);
        break;
    case TB_W_GET:
        op->kind = TB_OP_GET;
        op->idx[0] = tkv_rng_below(&s->rng, n);
        break;
    case TB_W_GET_SER:
        op->kind = TB_OP_GET_SER;
        op->idx[0] = tkv_rng_below(&s->rng, n);
        break;
    case TB_W_YCSB_A:
    case TB_W_YCSB_B:
    case TB_W_YCSB_C: {
        unsigned reads = run->cell->workload == TB_W_YCSB_A   ? 50
                         : run->cell->workload == TB_W_YCSB_B ? 95
                                                              : 100;
        op->kind = tkv_rng_below(&s->rng, 100) < reads ? TB_OP_GET : TB_OP_PUT;
        op->idx[0] = tb_zipf_scrambled(&g_zipf, &s->rng, n);
        break;
    }
    case TB_W_SCAN:
        op->kind = TB_OP_SCAN;
        op->idx[0] = n > TB_SCAN_LEN ? tkv_rng_below(&s->rng, n - TB_SCAN_LEN + 1) : 0;
        break;
    case TB_W_TXN_PUT:
        op->kind = TB_OP_TXN_PUT;
        op->idx[0] = tkv_rng_below(&s->rng, env->txn->n);
        break;
    case TB_W_TRANSFER: {
        op->kind = TB_OP_TRANSFER;
        uint64_t na = env->accounts->n;
        for (int i = 0; i < TB_TRANSFER_N; i++) {
            bool dup;
            do {
                op->idx[i] = tkv_rng_below(&s->rng, na);
                dup = false;
                for (int j = 0; j < i; j++)
                    dup = dup || op->idx[j] == op->idx[i];
            } while (dup);
        }
        op->amount[0] = (int64_t)tkv_rng_below(&s->rng, 10) + 1;
        op->amount[1] = (int64_t)tkv_rng_below(&s->rng, 10) + 1;
        break;
    }
    case TB_W__COUNT:
        TKV_ASSERT(false);
    }
}

void tb_op_release_state(tb_driver *d, tb_op *op)
{
    (void)d;
    tkv_free(op->drv_state);
    op->drv_state = NULL;
}

static void keep_error(tb_run *run, const tb_op *op)
{
    pthread_mutex_lock(&run->mu);
    tb_result *r = run->res;
    if (r->n_errs < TB_MAX_ERRS_KEPT)
        snprintf(r->errs[r->n_errs++], TB_ERR_MSG_LEN, "%s", op->err[0] ? op->err : "failed");
    pthread_mutex_unlock(&run->mu);
}

/* Records the finished operation; returns true when the slot goes on. */
static bool record(tb_slot *s)
{
    tb_run *run = s->run;
    uint64_t now = tkv_clock_mono_ns();
    tb_op *op = &s->op;
    s->total++;
    if (op->rc != 0) {
        s->errors++;
        keep_error(run, op);
        return false;
    }
    if (now >= run->window_start_ns && now < run->window_end_ns) {
        tb_hist_record(&s->hist, now - op->start_ns);
        s->ops++;
        s->retries += op->retries;
    }
    return !atomic_load(&run->stop);
}

static void slot_finish(tb_slot *s)
{
    tb_run *run = s->run;
    pthread_mutex_lock(&run->mu);
    if (--run->active == 0)
        pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* Async mode: submits the slot's next operation; on a refused submit the slot ends. */
static void async_next(tb_slot *s)
{
    choose(s);
    s->op.start_ns = tkv_clock_mono_ns();
    int rc = s->run->ops->submit(s->run->d, &s->op);
    if (rc != 0) {
        if (s->op.rc == 0)
            tb_op_fail(&s->op, rc, "submit: %s", tkv_strerror(rc));
        s->total++;
        s->errors++;
        keep_error(s->run, &s->op);
        slot_finish(s);
    }
}

typedef struct tb_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} tb_waiter;

int tb_exec_one(const tb_driver_ops *ops, tb_driver *d, tb_op *op)
{
    op->rc = 0;
    op->err[0] = '\0';
    op->retries = 0;
    op->slot = NULL;
    if (ops->exec != NULL) {
        ops->exec(d, op);
        return op->rc;
    }
    tb_waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    op->waiter = &w;
    int rc = ops->submit(d, op);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = op->rc;
    } else if (op->rc == 0) {
        tb_op_fail(op, rc, "submit: %s", tkv_strerror(rc));
    }
    op->waiter = NULL;
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

void tb_op_done(tb_op *op)
{
    if (op->waiter != NULL) {
        tb_waiter *w = op->waiter;
        pthread_mutex_lock(&w->mu);
        w->done = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        return;
    }
    tb_slot *s = op->slot;
    if (!s->run->async) {
        pthread_mutex_lock(&s->mu);
        s->done = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (record(s))
        async_next(s);
    else
        slot_finish(s);
}

static void *slot_thread(void *arg)
{
    tb_slot *s = arg;
    tb_run *run = s->run;
    for (;;) {
        choose(s);
        s->op.start_ns = tkv_clock_mono_ns();
        if (run->ops->exec != NULL) {
            run->ops->exec(run->d, &s->op);
        } else {
            pthread_mutex_lock(&s->mu);
            s->done = false;
            pthread_mutex_unlock(&s->mu);
            int rc = run->ops->submit(run->d, &s->op);
            if (rc != 0) {
                if (s->op.rc == 0)
                    tb_op_fail(&s->op, rc, "submit: %s", tkv_strerror(rc));
            } else {
                pthread_mutex_lock(&s->mu);
                while (!s->done)
                    pthread_cond_wait(&s->cv, &s->mu);
                pthread_mutex_unlock(&s->mu);
            }
        }
        if (!record(s))
            break;
    }
    slot_finish(s);
    return NULL;
}

static void sleep_until(uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = tkv_clock_mono_ns();
        if (now >= deadline_ns)
            return;
        uint64_t left = deadline_ns - now;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                              .tv_nsec = (long)(left % 1000000000u)};
        nanosleep(&ts, NULL);
    }
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int tb_run_cell(const tb_driver_ops *ops, tb_driver *d, const tb_env *env, const tb_cell *cell,
                tb_result *out)
{
    pthread_once(&g_zipf_once, zipf_init_once);
    if (cell->clients < 1 || !ops->supports(d, cell->workload))
        return -EINVAL;
    bool async = cell->mode == TB_MODE_ASYNC || (cell->mode == TB_MODE_AUTO && ops->submit);
    if ((async && ops->submit == NULL) || (!async && ops->exec == NULL && ops->submit == NULL))
        return -EINVAL;

    memset(out, 0, sizeof(*out));
    snprintf(out->system, sizeof(out->system), "%s", ops->system);
    snprintf(out->driver, sizeof(out->driver), "%s", ops->name);
    out->workload = cell->workload;
    out->clients = cell->clients;
    out->keys = env->kv != NULL ? env->kv->n : 0;
    out->mode = async ? "async" : "threads";
    out->server_cpu_s = -1;
    tb_hist_reset(&out->hist);

    tb_run run = {.ops = ops, .d = d, .env = env, .cell = cell, .async = async, .res = out};
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    tb_slot *slots = tkv_calloc((size_t)cell->clients, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    for (int i = 0; i < cell->clients; i++) {
        tb_slot *s = &slots[i];
        s->run = &run;
        s->id = i;
        tkv_rng_seed(&s->rng, cell->seed * 1000003u + (uint64_t)i);
        s->op.slot = s;
        s->op.client = i;
        tb_hist_reset(&s->hist);
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
    }

    uint64_t t0 = tkv_clock_mono_ns();
    run.window_start_ns = t0 + cell->warmup_ms * 1000000u;
    run.window_end_ns = run.window_start_ns + cell->measure_ms * 1000000u;
    run.active = cell->clients;

    int started = 0, rc = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (; started < cell->clients; started++) {
        tb_slot *s = &slots[started];
        if (async) {
            async_next(s);
        } else if ((rc = pthread_create(&s->th, &attr, slot_thread, s)) != 0) {
            rc = -rc;
            break;
        }
    }
    pthread_attr_destroy(&attr);
    if (started < cell->clients) {
        /* Slots never started count as finished. */
        pthread_mutex_lock(&run.mu);
        run.active -= cell->clients - started;
        pthread_mutex_unlock(&run.mu);
        atomic_store(&run.stop, true);
    }

    tb_proc_sample p0 = {0}, p1 = {0};
    sleep_until(run.window_start_ns);
    if (cell->n_pids > 0)
        tb_proc_sample_pids(cell->pids, cell->n_pids, &p0);
    double c0 = self_cpu_s();
    sleep_until(run.window_end_ns);
    if (cell->n_pids > 0)
        tb_proc_sample_pids(cell->pids, cell->n_pids, &p1);
    double c1 = self_cpu_s();
    atomic_store(&run.stop, true);

    /* Drain: every slot finishes its operation in flight. */
    uint64_t drain_deadline = tkv_clock_mono_ms() + DRAIN_MS;
    bool drained = true;
    pthread_mutex_lock(&run.mu);
    while (run.active > 0) {
        if (tkv_clock_mono_ms() >= drain_deadline) {
            drained = false;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&run.cv, &run.mu, &ts);
    }
    pthread_mutex_unlock(&run.mu);
    if (!drained) {
        /* Operations still in flight own their slots: leave them (the process ends). */
        snprintf(out->errs[0], TB_ERR_MSG_LEN,
                 "%d clients did not finish their last operation within %d s", run.active,
                 DRAIN_MS / 1000);
        out->n_errs = 1;
        out->errors++;
        return -ETIMEDOUT;
    }
    for (int i = 0; i < started; i++)
        if (!async)
            pthread_join(slots[i].th, NULL);

    out->seconds = (double)cell->measure_ms / 1e3;
    for (int i = 0; i < cell->clients; i++) {
        tb_slot *s = &slots[i];
        tb_hist_merge(&out->hist, &s->hist);
        out->ops += s->ops;
        out->total_ops += s->total;
        out->errors += s->errors;
        out->retries += s->retries;
        if (ops->op_release != NULL)
            ops->op_release(d, &s->op);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
    if (cell->n_pids > 0) {
        out->server_cpu_s = p1.cpu_s - p0.cpu_s;
        out->server_rss_bytes = p1.rss_bytes;
        out->server_hwm_bytes = p1.hwm_bytes;
        if (p0.missing > 0 || p1.missing > 0) {
            out->errors++;
            if (out->n_errs < TB_MAX_ERRS_KEPT)
                snprintf(out->errs[out->n_errs++], TB_ERR_MSG_LEN,
                         "%d server processes could not be read from /proc (exited?)",
                         p1.missing > p0.missing ? p1.missing : p0.missing);
        }
    }
    out->client_cpu_s = c1 - c0;
    tkv_free(slots);
    pthread_mutex_destroy(&run.mu);
    pthread_cond_destroy(&run.cv);
    return rc;
}

typedef struct chunk_job {
    uint64_t n;
    uint64_t chunk;
    tb_chunk_fn fn;
    void *arg;
    _Atomic uint64_t next;
    atomic_int rc;
    pthread_mutex_t mu;
    char err[TB_ERR_MSG_LEN];
} chunk_job;

static void *chunk_thread(void *arg)
{
    chunk_job *j = arg;
    char err[TB_ERR_MSG_LEN];
    while (atomic_load(&j->rc) == 0) {
        uint64_t lo = atomic_fetch_add(&j->next, j->chunk);
        if (lo >= j->n)
            break;
        uint64_t hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
        err[0] = '\0';
        int rc = j->fn(j->arg, lo, hi, err, sizeof(err));
        if (rc != 0) {
            int zero = 0;
            if (atomic_compare_exchange_strong(&j->rc, &zero, rc)) {
                pthread_mutex_lock(&j->mu);
                snprintf(j->err, sizeof(j->err), "%s", err);
                pthread_mutex_unlock(&j->mu);
            }
            break;
        }
    }
    return NULL;
}

int tb_parallel_chunks(uint64_t n, uint64_t chunk, int threads, tb_chunk_fn fn, void *arg,
                       char *err, size_t err_len)
{
    if (chunk == 0 || threads < 1)
        return -EINVAL;
    chunk_job j = {.n = n, .chunk = chunk, .fn = fn, .arg = arg};
    pthread_mutex_init(&j.mu, NULL);
    pthread_t *th = tkv_calloc((size_t)threads, sizeof(*th));
    if (th == NULL)
        return -ENOMEM;
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&th[started], NULL, chunk_thread, &j) != 0)
            break;
    if (started == 0)
        chunk_thread(&j);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    tkv_free(th);
    pthread_mutex_destroy(&j.mu);
    int rc = atomic_load(&j.rc);
    if (rc != 0)
        snprintf(err, err_len, "%s", j.err);
    return rc;
}
