/*
 * deadlock.c: the wait-for graph (TiKV's DetectTable) and the per-store deadlock detector
 * built on it (see lock_manager.h).
 */
#include <pthread.h>

#include "base/clock.h"
#include "storage/txn/lock_manager.h"

/* ---- the graph ------------------------------------------------------------------------- */

struct txn_wait_graph {
    pthread_mutex_t mu;
    uint64_t ttl_ms;
    uint64_t (*now_ms)(void *);
    void *clock_arg;
    txn_wait_edge *edges;
    size_t n, cap;
};

static uint64_t mono_ms(void *arg)
{
    (void)arg;
    return tkv_clock_mono_ms();
}

int txn_wait_graph_new(uint64_t ttl_ms, uint64_t (*now_ms)(void *), void *clock_arg,
                       txn_wait_graph **out)
{
    txn_wait_graph *g = tkv_calloc(1, sizeof(*g));
    if (g == NULL || pthread_mutex_init(&g->mu, NULL) != 0) {
        tkv_free(g);
        return -ENOMEM;
    }
    g->ttl_ms = ttl_ms;
    g->now_ms = now_ms != NULL ? now_ms : mono_ms;
    g->clock_arg = clock_arg;
    *out = g;
    return 0;
}

void txn_wait_graph_free(txn_wait_graph *g)
{
    if (g == NULL)
        return;
    pthread_mutex_destroy(&g->mu);
    tkv_free(g->edges);
    tkv_free(g);
}

/* Drops the edges that outlived the TTL. Under mu. */
static void expire(txn_wait_graph *g, uint64_t now)
{
    if (g->ttl_ms == 0)
        return;
    size_t j = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (now - g->edges[i].since_ms < g->ttl_ms)
            g->edges[j++] = g->edges[i];
    }
    g->n = j;
}

/* Depth-first search from @from for a path to @target; on success *@hash is the key hash of
 * the edge that reaches @target. @visited holds the nodes already searched (a small graph:
 * O(E^2) is fine). Under mu. */
static bool reaches(const txn_wait_graph *g, uint64_t from, uint64_t target, uint64_t *hash,
                    uint64_t *visited, size_t *nvisited)
{
    for (size_t i = 0; i < *nvisited; i++) {
        if (visited[i] == from)
            return false;
    }
    visited[(*nvisited)++] = from;
    for (size_t i = 0; i < g->n; i++) {
        if (g->edges[i].txn_ts != from)
            continue;
        if (g->edges[i].lock_ts == target) {
            *hash = g->edges[i].key_hash;
            return true;
        }
        if (reaches(g, g->edges[i].lock_ts, target, hash, visited, nvisited))
            return true;
    }
    return false;
}

bool txn_wait_graph_detect(txn_wait_graph *g, uint64_t txn_ts, uint64_t lock_ts, uint64_t key_hash,
                           uint64_t *deadlock_key_hash)
{
    uint64_t now = g->now_ms(g->clock_arg);
    pthread_mutex_lock(&g->mu);
    expire(g, now);
    bool deadlock = false;
    /* Every node is visited at most once: at most n + 1 of them. */
    uint64_t *visited = tkv_malloc((g->n + 1) * sizeof(uint64_t));
    if (visited != NULL) {
        size_t nv = 0;
        deadlock = reaches(g, lock_ts, txn_ts, deadlock_key_hash, visited, &nv);
        tkv_free(visited);
    }
    for (size_t i = 0; i < g->n && !deadlock; i++) {
        txn_wait_edge *e = &g->edges[i];
        if (e->txn_ts == txn_ts && e->lock_ts == lock_ts && e->key_hash == key_hash) {
            e->since_ms = now;
            pthread_mutex_unlock(&g->mu);
            return false;
        }
    }
    if (!deadlock) {
        if (g->n == g->cap) {
            size_t cap = g->cap ? g->cap * 2 : 16;
            txn_wait_edge *e = tkv_realloc(g->edges, cap * sizeof(*e));
            if (e != NULL) {
                g->edges = e;
                g->cap = cap;
            }
        }
        /* Out of memory: the edge is not recorded; the wait still ends by its timeout. */
        if (g->n < g->cap)
            g->edges[g->n++] = (txn_wait_edge){txn_ts, lock_ts, key_hash, now};
    }
    pthread_mutex_unlock(&g->mu);
    return deadlock;
}

static void remove_if(txn_wait_graph *g, uint64_t txn_ts, bool any, uint64_t lock_ts,
                      uint64_t key_hash)
{
    pthread_mutex_lock(&g->mu);
    size_t j = 0;
    for (size_t i = 0; i < g->n; i++) {
        const txn_wait_edge *e = &g->edges[i];
        bool drop =
            e->txn_ts == txn_ts && (any || (e->lock_ts == lock_ts && e->key_hash == key_hash));
        if (!drop)
            g->edges[j++] = *e;
    }
    g->n = j;
    pthread_mutex_unlock(&g->mu);
}

void txn_wait_graph_clean_up_wait_for(txn_wait_graph *g, uint64_t txn_ts, uint64_t lock_ts,
                                      uint64_t key_hash)
{
    remove_if(g, txn_ts, false, lock_ts, key_hash);
}

void txn_wait_graph_clean_up(txn_wait_graph *g, uint64_t txn_ts)
{
    remove_if(g, txn_ts, true, 0, 0);
}

void txn_wait_graph_clear(txn_wait_graph *g)
{
    pthread_mutex_lock(&g->mu);
    g->n = 0;
    pthread_mutex_unlock(&g->mu);
}

size_t txn_wait_graph_edges(txn_wait_graph *g, txn_wait_edge *out, size_t cap)
{
    uint64_t now = g->now_ms(g->clock_arg);
    pthread_mutex_lock(&g->mu);
    expire(g, now);
    size_t n = g->n;
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = g->edges[i];
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* ---- the per-store detector --------------------------------------------------------------- */

static void local_detect(void *impl, txn_lock_mgr *lm, uint64_t txn_ts, uint64_t lock_ts,
                         uint64_t key_hash)
{
    uint64_t dl_hash = 0;
    if (txn_wait_graph_detect(impl, txn_ts, lock_ts, key_hash, &dl_hash))
        txn_lock_mgr_on_deadlock(lm, txn_ts, lock_ts, key_hash, dl_hash);
}

static void local_clean_up_wait_for(void *impl, uint64_t txn_ts, uint64_t lock_ts,
                                    uint64_t key_hash)
{
    txn_wait_graph_clean_up_wait_for(impl, txn_ts, lock_ts, key_hash);
}

static void local_clean_up(void *impl, uint64_t txn_ts)
{
    txn_wait_graph_clean_up(impl, txn_ts);
}

static void local_free(void *impl)
{
    txn_wait_graph_free(impl);
}

static const txn_detector_ops local_ops = {
    .detect = local_detect,
    .clean_up_wait_for = local_clean_up_wait_for,
    .clean_up = local_clean_up,
    .free = local_free,
};

int txn_detector_local_new(txn_detector **out)
{
    txn_detector *det = tkv_calloc(1, sizeof(*det));
    txn_wait_graph *g = NULL;
    if (det == NULL || txn_wait_graph_new(TXN_WAIT_GRAPH_TTL_MS, NULL, NULL, &g) != 0) {
        tkv_free(det);
        return -ENOMEM;
    }
    det->ops = &local_ops;
    det->impl = g;
    *out = det;
    return 0;
}

void txn_detector_free(txn_detector *d)
{
    if (d == NULL)
        return;
    d->ops->free(d->impl);
    tkv_free(d);
}
