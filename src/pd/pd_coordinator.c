/*
 * pd_coordinator.c: the scheduling loop (PD's coordinator) and SplitRegions waiters.
 *
 * pd__coordinator_tick runs one round under the cluster mutex:
 *   1. operators that timed out or lost their region end;
 *   2. Offline stores with no region left become Tombstone;
 *   3. the replica patrol checks the next 128 regions (in key order, wrapping around);
 *   4. the balancers run (every 100 ms at most), up to 4 operators each per round;
 *   5. SplitRegions waiters complete when every key starts a region, or time out; keys whose
 *      region has no operator get a split operator again (retry);
 *   6. cluster gauges for /metrics (once a second).
 * The coordinator thread calls it every patrol-region-interval (at least 10 ms, at most 1 s).
 * Tests call it directly with a fake clock.
 */
#include <time.h>

#include "base/log.h"
#include "base/metrics.h"
#include "pd/pd_int.h"

#define PATROL_BATCH        128
#define BALANCE_INTERVAL_MS 100
#define BALANCE_PER_ROUND   4

struct pd_split_waiter {
    pd_split_waiter *next;
    tkv_buf *keys;
    size_t n;
    uint64_t *ids; /* region starting at keys[i], 0 while not split */
    uint64_t deadline_ms;
    pd_split_done_fn done;
    void *ud;
};

static void waiter_free(pd_split_waiter *w)
{
    for (size_t i = 0; i < w->n; i++)
        tkv_buf_deinit(&w->keys[i]);
    tkv_free(w->keys);
    tkv_free(w->ids);
    tkv_free(w);
}

void pd__waiters_free_locked(pd_cluster *c)
{
    while (c->waiters != NULL) {
        pd_split_waiter *w = c->waiters;
        c->waiters = w->next;
        waiter_free(w);
    }
}

/* Marks keys that now start a region; returns how many are done. A region remembered earlier
 * that no longer exists or no longer starts at its key (replaced by a newer one, merged) is
 * looked up again, so that only existing regions are reported (found by fuzz_pd_grpc). */
static size_t waiter_scan(pd_cluster *c, pd_split_waiter *w)
{
    size_t done = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (w->ids[i] != 0) {
            pd_region *old = pd__rt_get(&c->regions, w->ids[i]);
            if (old == NULL || !tkv_slice_eq(pd__region_start(old), tkv_buf_slice(&w->keys[i])))
                w->ids[i] = 0;
        }
        if (w->ids[i] == 0) {
            pd_region *r = pd__rt_find(&c->regions, tkv_buf_slice(&w->keys[i]));
            if (r != NULL && tkv_slice_eq(pd__region_start(r), tkv_buf_slice(&w->keys[i])))
                w->ids[i] = pd__region_id(r);
        }
        done += w->ids[i] != 0;
    }
    return done;
}

/* Creates split operators for the unfinished keys whose region has none. */
static void waiter_split(pd_cluster *c, pd_split_waiter *w)
{
    for (size_t i = 0; i < w->n; i++) {
        if (w->ids[i] != 0)
            continue;
        pd_region *r = pd__rt_find(&c->regions, tkv_buf_slice(&w->keys[i]));
        if (r == NULL || pd__region_leader_store(r) == 0 ||
            pd__map_get(&c->ops, pd__region_id(r)) != NULL)
            continue;
        /* Every unfinished key in this region goes into one operator. */
        tkv_slice ks[64];
        size_t nk = 0;
        for (size_t j = i; j < w->n && nk < TKV_ARRAY_LEN(ks); j++)
            if (w->ids[j] == 0 && pd__rt_find(&c->regions, tkv_buf_slice(&w->keys[j])) == r)
                ks[nk++] = tkv_buf_slice(&w->keys[j]);
        pd_operator *op;
        if (pd__op_new(r, "region-splitter", PD_OPK_ADMIN | PD_OPK_SPLIT, &op) != 0)
            continue;
        if (pd__op_set_split(op, PDPB__CHECK_POLICY__USEKEY, ks, nk) != 0 ||
            pd__opc_add_locked(c, op) != 0)
            pd__op_free(op);
    }
}

/* Completes @w if done or out of time; returns true when it completed. */
static bool waiter_try_complete(pd_cluster *c, pd_split_waiter *w, uint64_t now)
{
    size_t done = waiter_scan(c, w);
    if (done < w->n && now < w->deadline_ms) {
        waiter_split(c, w);
        return false;
    }
    uint64_t *ids = tkv_calloc(w->n ? w->n : 1, sizeof(uint64_t));
    size_t nids = 0;
    for (size_t i = 0; ids != NULL && i < w->n; i++) {
        bool dup = false;
        for (size_t j = 0; j < nids; j++)
            dup = dup || ids[j] == w->ids[i];
        if (w->ids[i] != 0 && !dup)
            ids[nids++] = w->ids[i];
    }
    uint64_t pct = w->n ? 100 - (uint64_t)(w->n - done) * 100 / w->n : 0;
    /* Out of memory for the id list: report the percentage without ids. */
    w->done(w->ud, pct, ids, nids);
    tkv_free(ids);
    return true;
}

void pd__waiters_tick_locked(pd_cluster *c)
{
    uint64_t now = pd__cluster_now(c);
    pd_split_waiter **pp = &c->waiters;
    while (*pp != NULL) {
        pd_split_waiter *w = *pp;
        if (waiter_try_complete(c, w, now)) {
            *pp = w->next;
            waiter_free(w);
        } else {
            pp = &w->next;
        }
    }
}

int pd__cluster_split_regions(pd_cluster *c, const tkv_slice *keys, size_t n, uint64_t timeout_ms,
                              pd_split_done_fn done, void *ud, pd_split_waiter **handle)
{
    *handle = NULL;
    pd_split_waiter *w = tkv_calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->keys = n ? tkv_calloc(n, sizeof(tkv_buf)) : NULL;
    w->ids = n ? tkv_calloc(n, sizeof(uint64_t)) : NULL;
    if (n && (w->keys == NULL || w->ids == NULL)) {
        waiter_free(w);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        tkv_buf_init(&w->keys[i]);
        w->n = i + 1;
        if (tkv_buf_set(&w->keys[i], keys[i].data, keys[i].len) != 0) {
            waiter_free(w);
            return -ENOMEM;
        }
    }
    w->n = n;
    w->done = done;
    w->ud = ud;
    pd__cluster_lock(c);
    uint64_t now = pd__cluster_now(c);
    w->deadline_ms = now + timeout_ms;
    if (waiter_try_complete(c, w, now)) {
        pd__cluster_unlock(c);
        waiter_free(w);
        return 0;
    }
    w->next = c->waiters;
    c->waiters = w;
    *handle = w;
    pd__cluster_unlock(c);
    return 0;
}

bool pd__cluster_split_cancel(pd_cluster *c, void *ud)
{
    pd__cluster_lock(c);
    pd_split_waiter *w = NULL;
    for (pd_split_waiter **pp = &c->waiters; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->ud == ud) {
            w = *pp;
            *pp = w->next;
            break;
        }
    }
    pd__cluster_unlock(c);
    if (w != NULL)
        waiter_free(w);
    return w != NULL;
}

/* ---- the round ---------------------------------------------------------------------------- */

static void offline_to_tombstone(pd_cluster *c)
{
    for (size_t i = 0; i < c->nstores; i++) {
        pd_store *s = c->stores[i];
        if (s->meta->state != METAPB__STORE_STATE__Offline || s->region_count != 0)
            continue;
        s->meta->state = METAPB__STORE_STATE__Tombstone;
        s->meta->node_state = METAPB__NODE_STATE__Removed;
        uint8_t k[PD_KEY_ID_LEN];
        int rc = pd__storage_put_msg(c->st, pd__key_id(k, PD_PREFIX_STORE, s->meta->id),
                                     &s->meta->base, true);
        if (rc != 0) {
            s->meta->state = METAPB__STORE_STATE__Offline;
            s->meta->node_state = METAPB__NODE_STATE__Removing;
            continue;
        }
        TKV_LOG_INFO("store became tombstone", TKV_LF_U64("store_id", s->meta->id));
    }
}

static void add_or_drop(pd_cluster *c, int rc, pd_operator *op)
{
    if (rc == 0 && op != NULL && pd__opc_add_locked(c, op) != 0)
        pd__op_free(op);
}

static void patrol(pd_cluster *c)
{
    pd_region *r = pd__rt_seek(&c->regions, tkv_buf_slice(&c->patrol_key));
    for (int i = 0; i < PATROL_BATCH && r != NULL; i++) {
        pd_operator *op = NULL;
        int rc = pd__check_replica_locked(c, r, &op);
        add_or_drop(c, rc, op);
        tkv_slice end = pd__region_end(r);
        if (end.len == 0) {
            r = NULL;
            break;
        }
        if (tkv_buf_set(&c->patrol_key, end.data, end.len) != 0)
            return;
        r = pd__rt_seek(&c->regions, end);
    }
    if (r == NULL)
        tkv_buf_reset(&c->patrol_key);
}

static void set_gauge(tkv_metric *m, const char *type, double v)
{
    tkv_series *s = tkv_metric_with(m, type);
    if (s != NULL)
        tkv_series_set(s, v);
}

static void update_gauges(pd_cluster *c)
{
    tkv_metric *m = tkv_metric_gauge("pd_cluster_status", "Status of the cluster.", "type");
    if (m == NULL)
        return;
    uint64_t now = pd__cluster_now(c);
    double cnt[5] = {0};
    for (size_t i = 0; i < c->nstores; i++)
        cnt[pd__store_status(c->stores[i], now, &c->cfg)]++;
    set_gauge(m, "store_up_count", cnt[PD_STORE_UP]);
    set_gauge(m, "store_disconnected_count", cnt[PD_STORE_DISCONNECTED]);
    set_gauge(m, "store_down_count", cnt[PD_STORE_DOWN]);
    set_gauge(m, "store_offline_count", cnt[PD_STORE_OFFLINE]);
    set_gauge(m, "store_tombstone_count", cnt[PD_STORE_TOMBSTONE]);
    set_gauge(m, "region_count", (double)pd__rt_count(&c->regions));
    set_gauge(m, "operator_count", (double)c->ops.len);
}

void pd__coordinator_tick(pd_cluster *c)
{
    pd__cluster_lock(c);
    if (!c->bootstrapped) {
        pd__cluster_unlock(c);
        return;
    }
    pd__opc_check_timeouts_locked(c);
    offline_to_tombstone(c);
    patrol(c);
    uint64_t now = pd__cluster_now(c);
    if (now - c->last_schedule_ms >= BALANCE_INTERVAL_MS || c->last_schedule_ms == 0) {
        c->last_schedule_ms = now;
        for (int i = 0; i < BALANCE_PER_ROUND; i++) {
            pd_operator *op = NULL;
            int rc = pd__balance_region_locked(c, &op);
            if (op == NULL)
                break;
            add_or_drop(c, rc, op);
        }
        for (int i = 0; i < BALANCE_PER_ROUND; i++) {
            pd_operator *op = NULL;
            int rc = pd__balance_leader_locked(c, &op);
            if (op == NULL)
                break;
            add_or_drop(c, rc, op);
        }
    }
    pd__waiters_tick_locked(c);
    if (now - c->last_gauges_ms >= 1000 || c->last_gauges_ms == 0) {
        c->last_gauges_ms = now;
        update_gauges(c);
    }
    pd__cluster_unlock(c);
}

/* ---- the thread --------------------------------------------------------------------------- */

struct pd_coordinator {
    pd_cluster *c;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static void *coordinator_main(void *arg)
{
    pd_coordinator *co = arg;
    pthread_mutex_lock(&co->mu);
    while (!co->stop) {
        pthread_mutex_unlock(&co->mu);
        pd__coordinator_tick(co->c);
        pd_sched_cfg cfg;
        pd__cluster_get_config(co->c, &cfg);
        uint64_t ms = cfg.patrol_region_interval_ms;
        ms = ms < 10 ? 10 : ms > 1000 ? 1000 : ms;
        struct timespec ts;
        pd__deadline(&ts, ms);
        pthread_mutex_lock(&co->mu);
        if (!co->stop)
            pthread_cond_timedwait(&co->cv, &co->mu, &ts);
    }
    pthread_mutex_unlock(&co->mu);
    return NULL;
}

int pd__coordinator_start(pd_cluster *c, pd_coordinator **out)
{
    pd_coordinator *co = tkv_calloc(1, sizeof(*co));
    if (co == NULL)
        return -ENOMEM;
    co->c = c;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&co->mu, NULL);
    pthread_cond_init(&co->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = -pthread_create(&co->thread, NULL, coordinator_main, co);
    if (rc != 0) {
        pthread_cond_destroy(&co->cv);
        pthread_mutex_destroy(&co->mu);
        tkv_free(co);
        return rc;
    }
    *out = co;
    return 0;
}

void pd__coordinator_stop(pd_coordinator *co)
{
    if (co == NULL)
        return;
    pthread_mutex_lock(&co->mu);
    co->stop = true;
    pthread_cond_signal(&co->cv);
    pthread_mutex_unlock(&co->mu);
    pthread_join(co->thread, NULL);
    pthread_cond_destroy(&co->cv);
    pthread_mutex_destroy(&co->mu);
    tkv_free(co);
}
