/*
 * gc_worker.c: the GC worker: polls the safe point and collects region by region (see
 * gc.h).
 */
#include <pthread.h>
#include <time.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "storage/gc/gc.h"
#include "storage/txn/txn_int.h"

struct stor_gc_worker {
    stor *s;
    stor_gc_opts o;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_mutex_t run_mu; /* one round at a time */
    pthread_cond_t cond;
    bool stop;
    uint64_t done; /* last safe point fully collected */
    /* TiKV's series: regions collected and failed, the safe point last completed. */
    tkv_series *m_tasks, *m_fails, *m_safe_point;
};

typedef struct gc_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool finished;
    int rc;
} gc_wait;

static void on_gc_done(void *ud, const ProtobufCMessage *resp)
{
    gc_wait *w = ud;
    const Kvrpcpb__GCResponse *r = (const Kvrpcpb__GCResponse *)resp;
    pthread_mutex_lock(&w->mu);
    w->rc = r->region_error != NULL ? TKV_EUNAVAILABLE : 0;
    if (w->rc == 0 && r->error != NULL)
        w->rc = TKV_EUNAVAILABLE;
    w->finished = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

int stor_gc_region(stor *s, const stor_ctx *ctx, uint64_t safe_point)
{
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    Metapb__Peer peer = METAPB__PEER__INIT;
    Kvrpcpb__Context pbctx = KVRPCPB__CONTEXT__INIT;
    pbctx.region_id = ctx->region_id;
    if (ctx->has_epoch) {
        epoch.conf_ver = ctx->conf_ver;
        epoch.version = ctx->version;
        pbctx.region_epoch = &epoch;
    }
    if (ctx->has_peer) {
        peer.id = ctx->peer_id;
        peer.store_id = ctx->store_id;
        pbctx.peer = &peer;
    }
    Kvrpcpb__GCRequest req = KVRPCPB__GCREQUEST__INIT;
    req.context = &pbctx;
    req.safe_point = safe_point;
    gc_wait w = {.finished = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    int rc = txn__kv_gc(s, &req.base, on_gc_done, &w);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.finished)
            pthread_cond_wait(&w.cond, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

static int run_round(stor_gc_worker *w, uint64_t *safe_point);

int stor_gc_run_once(stor_gc_worker *w, uint64_t *safe_point)
{
    pthread_mutex_lock(&w->run_mu);
    int rc = run_round(w, safe_point);
    pthread_mutex_unlock(&w->run_mu);
    return rc;
}

static int run_round(stor_gc_worker *w, uint64_t *safe_point)
{
    if (safe_point != NULL)
        *safe_point = 0;
    uint64_t sp = w->o.safe_point(w->o.ud);
    pthread_mutex_lock(&w->mu);
    uint64_t done = w->done;
    pthread_mutex_unlock(&w->mu);
    if (sp == 0 || sp <= done)
        return 0;
    size_t cap = 16, n;
    stor_ctx *regions = NULL;
    for (;;) {
        stor_ctx *r = tkv_realloc(regions, cap * sizeof(*r));
        if (r == NULL) {
            tkv_free(regions);
            return -ENOMEM;
        }
        regions = r;
        n = w->o.regions(w->o.ud, regions, cap);
        if (n <= cap)
            break;
        cap = n;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int r = stor_gc_region(w->s, &regions[i], sp);
        tkv_series_inc(r == 0 ? w->m_tasks : w->m_fails);
        if (r != 0 && rc == 0)
            rc = r; /* go on with the other regions; this round is not complete */
    }
    tkv_free(regions);
    if (rc == 0) {
        pthread_mutex_lock(&w->mu);
        w->done = sp;
        pthread_mutex_unlock(&w->mu);
        tkv_series_set(w->m_safe_point, (double)sp);
        if (safe_point != NULL)
            *safe_point = sp;
    }
    return rc;
}

uint64_t stor_gc_worker_done_safe_point(stor_gc_worker *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t d = w->done;
    pthread_mutex_unlock(&w->mu);
    return d;
}

static void *worker_main(void *arg)
{
    stor_gc_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        /* A failed round is retried at the next tick. */
        TKV_IGNORE(stor_gc_run_once(w, NULL));
        pthread_mutex_lock(&w->mu);
        if (w->stop)
            break;
        struct timespec ts;
        tkv_clock_mono_deadline(&ts, w->o.interval_ms);
        pthread_cond_timedwait(&w->cond, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int stor_gc_worker_new(stor *s, const stor_gc_opts *o, stor_gc_worker **out)
{
    if (s == NULL || o == NULL || o->safe_point == NULL || o->regions == NULL)
        return -EINVAL;
    stor_gc_worker *w = tkv_calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->s = s;
    w->o = *o;
    tkv_metric *tasks =
        tkv_metric_counter("tikv_gcworker_gc_tasks_vec", "Counter of gc tasks processed", "task");
    tkv_metric *fails = tkv_metric_counter("tikv_gcworker_gc_task_fail_vec",
                                           "Counter of gc tasks that is failed", "task");
    w->m_tasks = tkv_metric_with(tasks, "gc");
    w->m_fails = tkv_metric_with(fails, "gc");
    w->m_safe_point = tkv_metric_with(
        tkv_metric_gauge("tikv_gcworker_autogc_safe_point", "Safe point used for auto gc", NULL));
    if (w->o.interval_ms == 0)
        w->o.interval_ms = 10000;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->run_mu, NULL);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mu);
        pthread_mutex_destroy(&w->run_mu);
        tkv_free(w);
        return -rc;
    }
    *out = w;
    return 0;
}

void stor_gc_worker_free(stor_gc_worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->run_mu);
    tkv_free(w);
}
