/*
 * deadlock.c: the per-store deadlock detector (TiKV's DetectTable): a wait-for graph whose
 * nodes are transactions (start_ts) and whose edges say "txn waits for lock_ts on key
 * key_hash". A new edge that has a path back to its waiter closes a cycle: it is not added
 * and the deadlock is reported with the key hash of the last edge on that path (the one
 * that waits for the new waiter), as TiKV reports it.
 */
#include <pthread.h>

#include "storage/txn/lock_manager.h"

typedef struct edge {
    uint64_t txn_ts, lock_ts, key_hash;
} edge;

typedef struct local_detector {
    pthread_mutex_t mu;
    edge *edges;
    size_t n, cap;
} local_detector;

/* Depth-first search from @from for a path to @target; on success *@hash is the key hash of
 * the edge that reaches @target. @seen marks visited nodes by edge index of their first
 * out-edge scan (a small graph: O(E^2) is fine). */
static bool reaches(local_detector *d, uint64_t from, uint64_t target, uint64_t *hash,
                    uint64_t *visited, size_t *nvisited, size_t depth)
{
    if (depth > d->n)
        return false;
    for (size_t i = 0; i < *nvisited; i++) {
        if (visited[i] == from)
            return false;
    }
    visited[(*nvisited)++] = from;
    for (size_t i = 0; i < d->n; i++) {
        if (d->edges[i].txn_ts != from)
            continue;
        if (d->edges[i].lock_ts == target) {
            *hash = d->edges[i].key_hash;
            return true;
        }
        if (reaches(d, d->edges[i].lock_ts, target, hash, visited, nvisited, depth + 1))
            return true;
    }
    return false;
}

static void local_detect(void *impl, txn_lock_mgr *lm, uint64_t txn_ts, uint64_t lock_ts,
                         uint64_t key_hash)
{
    local_detector *d = impl;
    pthread_mutex_lock(&d->mu);
    uint64_t dl_hash = 0;
    bool deadlock = false;
    uint64_t *visited = tkv_malloc((d->n + 1) * sizeof(uint64_t));
    if (visited != NULL) {
        size_t nv = 0;
        deadlock = reaches(d, lock_ts, txn_ts, &dl_hash, visited, &nv, 0);
        tkv_free(visited);
    }
    bool dup = false;
    for (size_t i = 0; i < d->n && !deadlock; i++) {
        const edge *e = &d->edges[i];
        dup |= e->txn_ts == txn_ts && e->lock_ts == lock_ts && e->key_hash == key_hash;
    }
    if (!deadlock && !dup) {
        if (d->n == d->cap) {
            size_t cap = d->cap ? d->cap * 2 : 16;
            edge *e = tkv_realloc(d->edges, cap * sizeof(*e));
            if (e != NULL) {
                d->edges = e;
                d->cap = cap;
            }
        }
        /* Out of memory: the edge is not recorded; the wait still ends by its timeout. */
        if (d->n < d->cap)
            d->edges[d->n++] = (edge){txn_ts, lock_ts, key_hash};
    }
    pthread_mutex_unlock(&d->mu);
    if (deadlock)
        txn_lock_mgr_on_deadlock(lm, txn_ts, lock_ts, key_hash, dl_hash);
}

static void remove_if(local_detector *d, uint64_t txn_ts, bool any, uint64_t lock_ts,
                      uint64_t key_hash)
{
    pthread_mutex_lock(&d->mu);
    size_t j = 0;
    for (size_t i = 0; i < d->n; i++) {
        const edge *e = &d->edges[i];
        bool drop =
            e->txn_ts == txn_ts && (any || (e->lock_ts == lock_ts && e->key_hash == key_hash));
        if (!drop)
            d->edges[j++] = *e;
    }
    d->n = j;
    pthread_mutex_unlock(&d->mu);
}

static void local_clean_up_wait_for(void *impl, uint64_t txn_ts, uint64_t lock_ts,
                                    uint64_t key_hash)
{
    remove_if(impl, txn_ts, false, lock_ts, key_hash);
}

static void local_clean_up(void *impl, uint64_t txn_ts)
{
    remove_if(impl, txn_ts, true, 0, 0);
}

static void local_free(void *impl)
{
    local_detector *d = impl;
    pthread_mutex_destroy(&d->mu);
    tkv_free(d->edges);
    tkv_free(d);
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
    local_detector *d = tkv_calloc(1, sizeof(*d));
    if (det == NULL || d == NULL || pthread_mutex_init(&d->mu, NULL) != 0) {
        tkv_free(det);
        tkv_free(d);
        return -ENOMEM;
    }
    det->ops = &local_ops;
    det->impl = d;
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
