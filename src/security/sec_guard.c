/*
 * sec_guard.c: per-address failure token buckets with bans, in a bounded hash table with LRU
 * eviction (contract in guard.h).
 */
#include <pthread.h>
#include <stdio.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "security/guard.h"

#define ADDR_LEN    64
#define EVICT_PROBE 8
#define NIL         UINT32_MAX

typedef struct gentry {
    char addr[ADDR_LEN];
    uint64_t hash;
    uint32_t next_hash; /* chain in the bucket, NIL ends */
    uint32_t lru_prev, lru_next;
    double tokens;            /* failures still tolerated */
    uint64_t refill_ms;       /* when tokens were last refilled */
    uint64_t banned_until_ms; /* 0: not banned */
    bool used;
} gentry;

struct sec_guard {
    pthread_mutex_t mu;
    sec_guard_opts o;
    gentry *e;
    uint32_t *buckets; /* n_buckets heads */
    size_t n_buckets;
    uint32_t free_head;          /* free entries chained through next_hash */
    uint32_t lru_head, lru_tail; /* head: most recent */
    size_t n_used;
    tkv_series *m_failures, *m_bans;
};

void sec_guard_opts_init(sec_guard_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_failures = 10;
    o->window_ms = 60000;
    o->ban_ms = 300000;
    o->max_addrs = 65536;
}

void sec_guard_addr(const char *peer, char *out, size_t cap)
{
    if (cap == 0)
        return;
    const char *p = peer;
    size_t n;
    if (strncmp(p, "ipv4:", 5) == 0) {
        p += 5;
        const char *colon = strrchr(p, ':');
        n = colon != NULL ? (size_t)(colon - p) : strlen(p);
    } else if (strncmp(p, "ipv6:[", 6) == 0) {
        p += 6;
        const char *end = strchr(p, ']');
        n = end != NULL ? (size_t)(end - p) : strlen(p);
    } else {
        n = strlen(p);
    }
    n = TKV_MIN(n, cap - 1);
    memcpy(out, p, n);
    out[n] = '\0';
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t now_ms(const sec_guard *g)
{
    return g->o.now_ms != NULL ? g->o.now_ms(g->o.clock_ud) : tkv_clock_mono_ms();
}

int sec_guard_new(const sec_guard_opts *o, sec_guard **out)
{
    if (o == NULL || out == NULL || o->max_failures == 0 || o->window_ms == 0 ||
        o->max_addrs == 0 || o->max_addrs >= NIL)
        return -EINVAL;
    sec_guard *g = tkv_calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    g->o = *o;
    g->n_buckets = 1;
    while (g->n_buckets < o->max_addrs)
        g->n_buckets <<= 1;
    g->e = tkv_calloc(o->max_addrs, sizeof(gentry));
    g->buckets = tkv_malloc(g->n_buckets * sizeof(uint32_t));
    if (g->e == NULL || g->buckets == NULL) {
        tkv_free(g->e);
        tkv_free(g->buckets);
        tkv_free(g);
        return -ENOMEM;
    }
    for (size_t i = 0; i < g->n_buckets; i++)
        g->buckets[i] = NIL;
    for (size_t i = 0; i < o->max_addrs; i++)
        g->e[i].next_hash = i + 1 < o->max_addrs ? (uint32_t)(i + 1) : NIL;
    g->free_head = 0;
    g->lru_head = g->lru_tail = NIL;
    TKV_ASSERT(pthread_mutex_init(&g->mu, NULL) == 0);
    tkv_metric *mf = tkv_metric_counter("tikv_server_peer_auth_failures_total",
                                        "Failed TLS handshakes and refused certificates", NULL);
    tkv_metric *mb = tkv_metric_counter("tikv_server_peer_bans_total",
                                        "Source addresses banned after repeated failures", NULL);
    g->m_failures = mf != NULL ? tkv_metric_with(mf) : NULL;
    g->m_bans = mb != NULL ? tkv_metric_with(mb) : NULL;
    *out = g;
    return 0;
}

void sec_guard_free(sec_guard *g)
{
    if (g == NULL)
        return;
    pthread_mutex_destroy(&g->mu);
    tkv_free(g->e);
    tkv_free(g->buckets);
    tkv_free(g);
}

static void lru_unlink(sec_guard *g, uint32_t i)
{
    gentry *e = &g->e[i];
    if (e->lru_prev != NIL)
        g->e[e->lru_prev].lru_next = e->lru_next;
    else
        g->lru_head = e->lru_next;
    if (e->lru_next != NIL)
        g->e[e->lru_next].lru_prev = e->lru_prev;
    else
        g->lru_tail = e->lru_prev;
}

static void lru_push_front(sec_guard *g, uint32_t i)
{
    gentry *e = &g->e[i];
    e->lru_prev = NIL;
    e->lru_next = g->lru_head;
    if (g->lru_head != NIL)
        g->e[g->lru_head].lru_prev = i;
    g->lru_head = i;
    if (g->lru_tail == NIL)
        g->lru_tail = i;
}

static uint32_t *bucket_of(sec_guard *g, uint64_t hash)
{
    return &g->buckets[hash & (g->n_buckets - 1)];
}

static uint32_t lookup(sec_guard *g, const char *addr, uint64_t hash)
{
    for (uint32_t i = *bucket_of(g, hash); i != NIL; i = g->e[i].next_hash)
        if (g->e[i].hash == hash && strcmp(g->e[i].addr, addr) == 0)
            return i;
    return NIL;
}

static void remove_entry(sec_guard *g, uint32_t i)
{
    uint32_t *link = bucket_of(g, g->e[i].hash);
    while (*link != i)
        link = &g->e[*link].next_hash;
    *link = g->e[i].next_hash;
    lru_unlink(g, i);
    g->e[i].used = false;
    g->e[i].next_hash = g->free_head;
    g->free_head = i;
    g->n_used--;
}

/* Frees one entry: among the EVICT_PROBE least recent, the least recent unbanned one, else
 * the least recent. */
static void evict(sec_guard *g, uint64_t now)
{
    uint32_t victim = g->lru_tail;
    uint32_t i = g->lru_tail;
    for (int probe = 0; probe < EVICT_PROBE && i != NIL; probe++, i = g->e[i].lru_prev) {
        if (g->e[i].banned_until_ms <= now) {
            victim = i;
            break;
        }
    }
    remove_entry(g, victim);
}

static uint32_t insert(sec_guard *g, const char *addr, uint64_t hash, uint64_t now)
{
    if (g->free_head == NIL)
        evict(g, now);
    uint32_t i = g->free_head;
    gentry *e = &g->e[i];
    g->free_head = e->next_hash;
    memset(e, 0, sizeof(*e));
    snprintf(e->addr, sizeof(e->addr), "%s", addr);
    e->hash = hash;
    e->used = true;
    e->tokens = g->o.max_failures;
    e->refill_ms = now;
    uint32_t *b = bucket_of(g, hash);
    e->next_hash = *b;
    *b = i;
    lru_push_front(g, i);
    g->n_used++;
    return i;
}

bool sec_guard_allowed(sec_guard *g, const char *peer)
{
    char addr[ADDR_LEN];
    sec_guard_addr(peer, addr, sizeof(addr));
    uint64_t hash = hash_str(addr);
    pthread_mutex_lock(&g->mu);
    uint64_t now = now_ms(g);
    uint32_t i = lookup(g, addr, hash);
    bool ok = i == NIL || g->e[i].banned_until_ms <= now;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

bool sec_guard_failure(sec_guard *g, const char *peer)
{
    char addr[ADDR_LEN];
    sec_guard_addr(peer, addr, sizeof(addr));
    uint64_t hash = hash_str(addr);
    if (g->m_failures != NULL)
        tkv_series_inc(g->m_failures);
    pthread_mutex_lock(&g->mu);
    uint64_t now = now_ms(g);
    uint32_t i = lookup(g, addr, hash);
    if (i == NIL) {
        i = insert(g, addr, hash, now);
    } else {
        lru_unlink(g, i);
        lru_push_front(g, i);
    }
    gentry *e = &g->e[i];
    bool banned_now = false;
    if (e->banned_until_ms <= now) {
        /* Refill at max_failures per window, up to the bucket size. */
        double refill = (double)(now - e->refill_ms) * g->o.max_failures / (double)g->o.window_ms;
        e->tokens = TKV_MIN((double)g->o.max_failures, e->tokens + refill);
        e->refill_ms = now;
        e->tokens -= 1.0;
        if (e->tokens < 0) {
            e->banned_until_ms = now + g->o.ban_ms;
            e->tokens = g->o.max_failures; /* a fresh bucket once the ban ends */
            e->refill_ms = e->banned_until_ms;
            banned_now = true;
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (banned_now) {
        if (g->m_bans != NULL)
            tkv_series_inc(g->m_bans);
        if (g->o.on_ban != NULL)
            g->o.on_ban(addr, g->o.ban_ms, g->o.hook_ud);
    }
    return banned_now;
}

size_t sec_guard_size(sec_guard *g)
{
    pthread_mutex_lock(&g->mu);
    size_t n = g->n_used;
    pthread_mutex_unlock(&g->mu);
    return n;
}
