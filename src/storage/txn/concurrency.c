/*
 * concurrency.c: see concurrency.h.
 */
#include "storage/txn/concurrency.h"

#include <pthread.h>

#include "storage/txn_types.h"

struct txn_cm_guard {
    struct txn_cm_guard *prev, *next;
    const tkv_slice *keys;
    size_t n;
    uint64_t start_ts, commit_ts;
};

typedef struct cm_waiter {
    struct cm_waiter *next;
    void (*retry)(void *arg);
    void *arg;
} cm_waiter;

/* Sync state of one region. */
typedef struct cm_region {
    uint64_t id;
    uint64_t synced_term, synced_version;     /* 0: never synced */
    uint64_t fetching_term, fetching_version; /* a TSO fetch in flight for these (0: none) */
} cm_region;

struct txn_cm {
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when a TSO fetch ends */
    uint64_t max_ts;
    txn_cm_guard *guards;
    cm_waiter *waiters;
    cm_region *regions;
    size_t n_regions, cap_regions;
    size_t fetching;
    stor_tso_fn tso;
    void *tso_arg;
};

int txn_cm_new(txn_cm **out)
{
    txn_cm *cm = tkv_calloc(1, sizeof(*cm));
    if (cm == NULL)
        return -ENOMEM;
    pthread_mutex_init(&cm->mu, NULL);
    pthread_cond_init(&cm->idle, NULL);
    *out = cm;
    return 0;
}

void txn_cm_free(txn_cm *cm)
{
    if (cm == NULL)
        return;
    pthread_mutex_lock(&cm->mu);
    while (cm->fetching > 0)
        pthread_cond_wait(&cm->idle, &cm->mu);
    pthread_mutex_unlock(&cm->mu);
    cm_waiter *w = cm->waiters;
    while (w != NULL) {
        cm_waiter *next = w->next;
        tkv_free(w);
        w = next;
    }
    tkv_free(cm->regions);
    pthread_cond_destroy(&cm->idle);
    pthread_mutex_destroy(&cm->mu);
    tkv_free(cm);
}

static void raise_max_ts(txn_cm *cm, uint64_t ts)
{
    if (ts != TXN_TS_MAX && ts > cm->max_ts)
        cm->max_ts = ts;
}

uint64_t txn_cm_max_ts(txn_cm *cm)
{
    pthread_mutex_lock(&cm->mu);
    uint64_t ts = cm->max_ts;
    pthread_mutex_unlock(&cm->mu);
    return ts;
}

void txn_cm_update_max_ts(txn_cm *cm, uint64_t ts)
{
    pthread_mutex_lock(&cm->mu);
    raise_max_ts(cm, ts);
    pthread_mutex_unlock(&cm->mu);
}

static bool bypassed(const txn_cm_read *r, uint64_t start_ts)
{
    for (size_t i = 0; i < r->n_bypass; i++) {
        if (r->bypass[i] == start_ts)
            return true;
    }
    return false;
}

static bool covers(const txn_cm_read *r, tkv_slice key)
{
    if (r->range) {
        return (r->lower.len == 0 || tkv_slice_cmp(key, r->lower) >= 0) &&
               (r->upper.len == 0 || tkv_slice_cmp(key, r->upper) <= 0);
    }
    for (size_t i = 0; i < r->n_keys; i++) {
        if (tkv_slice_cmp(key, r->keys[i]) == 0)
            return true;
    }
    return false;
}

/* Returns whether a registered 1PC write the read covers may commit at or below its ts.
 * Called under cm->mu. */
static bool blocked(const txn_cm *cm, const txn_cm_read *r)
{
    for (const txn_cm_guard *g = cm->guards; g != NULL; g = g->next) {
        if (g->commit_ts > r->ts || bypassed(r, g->start_ts))
            continue;
        for (size_t i = 0; i < g->n; i++) {
            if (covers(r, g->keys[i]))
                return true;
        }
    }
    return false;
}

int txn_cm_begin_read(txn_cm *cm, const txn_cm_read *r, void (*retry)(void *arg), void *arg,
                      bool *queued)
{
    *queued = false;
    pthread_mutex_lock(&cm->mu);
    raise_max_ts(cm, r->ts);
    int rc = 0;
    if (cm->guards != NULL && blocked(cm, r)) {
        cm_waiter *w = tkv_malloc(sizeof(*w));
        if (w == NULL) {
            rc = -ENOMEM;
        } else {
            w->retry = retry;
            w->arg = arg;
            w->next = cm->waiters;
            cm->waiters = w;
            *queued = true;
        }
    }
    pthread_mutex_unlock(&cm->mu);
    return rc;
}

int txn_cm_lock_1pc(txn_cm *cm, const tkv_slice *keys, size_t n, uint64_t start_ts,
                    uint64_t for_update_ts, uint64_t min_commit_ts, uint64_t max_commit_ts,
                    uint64_t *commit_ts, txn_cm_guard **out)
{
    *out = NULL;
    txn_cm_guard *g = tkv_calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&cm->mu);
    uint64_t ts = TKV_MAX(TKV_MAX(cm->max_ts, start_ts), for_update_ts) + 1;
    ts = TKV_MAX(ts, min_commit_ts);
    if (max_commit_ts != 0 && ts > max_commit_ts) {
        pthread_mutex_unlock(&cm->mu);
        tkv_free(g);
        *commit_ts = 0;
        return 0;
    }
    g->keys = keys;
    g->n = n;
    g->start_ts = start_ts;
    g->commit_ts = ts;
    g->next = cm->guards;
    if (cm->guards != NULL)
        cm->guards->prev = g;
    cm->guards = g;
    pthread_mutex_unlock(&cm->mu);
    *commit_ts = ts;
    *out = g;
    return 0;
}

void txn_cm_release(txn_cm *cm, txn_cm_guard *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&cm->mu);
    if (g->prev != NULL)
        g->prev->next = g->next;
    else
        cm->guards = g->next;
    if (g->next != NULL)
        g->next->prev = g->prev;
    cm_waiter *w = cm->waiters;
    cm->waiters = NULL;
    pthread_mutex_unlock(&cm->mu);
    tkv_free(g);
    while (w != NULL) {
        cm_waiter *next = w->next;
        w->retry(w->arg);
        tkv_free(w);
        w = next;
    }
}

void txn_cm_set_tso(txn_cm *cm, stor_tso_fn fn, void *arg)
{
    pthread_mutex_lock(&cm->mu);
    cm->tso = fn;
    cm->tso_arg = arg;
    pthread_mutex_unlock(&cm->mu);
}

/* Returns the entry of region @id, adding it when missing (NULL on -ENOMEM). Under cm->mu. */
static cm_region *region_of(txn_cm *cm, uint64_t id)
{
    for (size_t i = 0; i < cm->n_regions; i++) {
        if (cm->regions[i].id == id)
            return &cm->regions[i];
    }
    if (cm->n_regions == cm->cap_regions) {
        size_t cap = cm->cap_regions ? cm->cap_regions * 2 : 16;
        cm_region *r = tkv_realloc(cm->regions, cap * sizeof(*r));
        if (r == NULL)
            return NULL;
        cm->regions = r;
        cm->cap_regions = cap;
    }
    cm_region *r = &cm->regions[cm->n_regions++];
    memset(r, 0, sizeof(*r));
    r->id = id;
    return r;
}

typedef struct cm_fetch {
    txn_cm *cm;
    uint64_t region_id, term, version;
} cm_fetch;

static void on_tso(void *ud, int rc, uint64_t ts)
{
    cm_fetch *f = ud;
    txn_cm *cm = f->cm;
    pthread_mutex_lock(&cm->mu);
    cm_region *r = region_of(cm, f->region_id);
    if (r != NULL) {
        if (r->fetching_term == f->term && r->fetching_version == f->version) {
            r->fetching_term = 0;
            r->fetching_version = 0;
        }
        if (rc == 0) {
            /* The timestamp was asked for after this term began: it is above every ts a
             * reader used on an earlier leader. */
            raise_max_ts(cm, ts);
            r->synced_term = f->term;
            r->synced_version = f->version;
        }
    }
    cm->fetching--;
    pthread_cond_broadcast(&cm->idle);
    pthread_mutex_unlock(&cm->mu);
    tkv_free(f);
}

bool txn_cm_synced(txn_cm *cm, uint64_t region_id, uint64_t term, uint64_t version)
{
    if (term == 0)
        return true;
    pthread_mutex_lock(&cm->mu);
    cm_region *r = region_of(cm, region_id);
    if (r == NULL) {
        pthread_mutex_unlock(&cm->mu);
        return false;
    }
    if (r->synced_term == term && r->synced_version == version) {
        pthread_mutex_unlock(&cm->mu);
        return true;
    }
    bool start = cm->tso != NULL && !(r->fetching_term == term && r->fetching_version == version);
    cm_fetch *f = start ? tkv_malloc(sizeof(*f)) : NULL;
    if (f != NULL) {
        r->fetching_term = term;
        r->fetching_version = version;
        cm->fetching++;
        *f = (cm_fetch){cm, region_id, term, version};
    }
    stor_tso_fn fn = cm->tso;
    void *arg = cm->tso_arg;
    pthread_mutex_unlock(&cm->mu);
    if (f != NULL && fn(arg, on_tso, f) != 0)
        on_tso(f, TKV_ECLOSED, 0); /* the hook refused: the next 1PC prewrite asks again */
    return false;
}
