/*
 * latch.c: slot-hashed FIFO latches (see latch.h).
 *
 * A latch needs its slots in ascending order and owns them one by one: it waits at the
 * first slot where another latch is ahead of it, and the release of that slot continues its
 * acquisition. Taking slots in one global order rules out deadlock between latches.
 */
#include "storage/latch.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct waiter {
    struct waiter *next;
    stor_latch *latch;
} waiter;

typedef struct slot {
    pthread_mutex_t mu;
    waiter *head;
    waiter *tail;
} slot;

struct stor_latches {
    size_t mask;
    slot *slots;
};

struct stor_latch {
    size_t n;       /* number of distinct slots */
    size_t *idx;    /* ascending slot indexes */
    waiter *nodes;  /* one queue node per slot */
    size_t owned;   /* slots [0, owned) are owned; the latch waits at slot `owned` */
    bool enqueued;  /* already queued at slot `owned` */
    bool acquiring; /* stor_latch_acquire was called */
    stor_latch_cb cb;
    void *ud;
};

/* FNV-1a: cheap, and good enough to spread keys over slots. */
static uint64_t hash_key(tkv_slice k)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < k.len; i++) {
        h ^= k.data[i];
        h *= 1099511628211ULL;
    }
    return h;
}

int stor_latches_new(size_t slots, stor_latches **out)
{
    if (slots == 0)
        return -EINVAL;
    size_t n = 1;
    while (n < slots)
        n <<= 1;
    stor_latches *t = tkv_calloc(1, sizeof(*t));
    slot *s = tkv_calloc(n, sizeof(*s));
    if (t == NULL || s == NULL) {
        tkv_free(t);
        tkv_free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        pthread_mutex_init(&s[i].mu, NULL);
    t->mask = n - 1;
    t->slots = s;
    *out = t;
    return 0;
}

void stor_latches_free(stor_latches *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i <= t->mask; i++) {
        TKV_ASSERT(t->slots[i].head == NULL);
        pthread_mutex_destroy(&t->slots[i].mu);
    }
    tkv_free(t->slots);
    tkv_free(t);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

int stor_latch_new(stor_latches *t, const tkv_slice *keys, size_t n, stor_latch **out)
{
    stor_latch *l = tkv_calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    if (n > 0) {
        l->idx = tkv_calloc(n, sizeof(*l->idx));
        l->nodes = tkv_calloc(n, sizeof(*l->nodes));
        if (l->idx == NULL || l->nodes == NULL) {
            stor_latch_free(l);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
            l->idx[i] = (size_t)hash_key(keys[i]) & t->mask;
        qsort(l->idx, n, sizeof(*l->idx), cmp_size);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (m == 0 || l->idx[m - 1] != l->idx[i])
                l->idx[m++] = l->idx[i];
        }
        l->n = m;
        for (size_t i = 0; i < m; i++)
            l->nodes[i].latch = l;
    }
    *out = l;
    return 0;
}

void stor_latch_free(stor_latch *l)
{
    if (l == NULL)
        return;
    tkv_free(l->idx);
    tkv_free(l->nodes);
    tkv_free(l);
}

/* Continues acquiring @l from slot l->owned. Returns true when @l now owns every slot (the
 * caller then runs its callback); false when it waits (and must not be touched again by the
 * caller: the release that frees its slot continues it, possibly on another thread). */
static bool advance(stor_latches *t, stor_latch *l)
{
    while (l->owned < l->n) {
        slot *s = &t->slots[l->idx[l->owned]];
        waiter *w = &l->nodes[l->owned];
        pthread_mutex_lock(&s->mu);
        if (!l->enqueued) {
            w->next = NULL;
            if (s->tail)
                s->tail->next = w;
            else
                s->head = w;
            s->tail = w;
            l->enqueued = true;
        }
        if (s->head != w) {
            pthread_mutex_unlock(&s->mu);
            return false;
        }
        l->owned++;
        l->enqueued = false;
        pthread_mutex_unlock(&s->mu);
    }
    return true;
}

int stor_latch_acquire(stor_latches *t, stor_latch *l, stor_latch_cb cb, void *ud)
{
    if (l->acquiring)
        return -EINVAL;
    l->acquiring = true;
    l->cb = cb;
    l->ud = ud;
    if (advance(t, l))
        cb(ud);
    return 0;
}

void stor_latch_release(stor_latches *t, stor_latch *l)
{
    TKV_ASSERT(l->owned == l->n);
    /* Collect the latches that become first in a slot; continue them after this latch is
     * gone, so their callbacks may release other latches without deep recursion here. */
    stor_latch *wake_small[16];
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    stor_latch **wake = l->n <= 16 ? wake_small : tkv_xcalloc(l->n, sizeof(*wake));
    size_t nwake = 0;
    for (size_t i = 0; i < l->n; i++) {
        slot *s = &t->slots[l->idx[i]];
        pthread_mutex_lock(&s->mu);
        TKV_ASSERT(s->head == &l->nodes[i]);
        s->head = s->head->next;
        if (s->head == NULL)
            s->tail = NULL;
        else
            wake[nwake++] = s->head->latch;
        pthread_mutex_unlock(&s->mu);
    }
    stor_latch_free(l);
    for (size_t i = 0; i < nwake; i++) {
        stor_latch *w = wake[i];
        if (advance(t, w))
            w->cb(w->ud);
    }
    if (wake != wake_small)
        tkv_free(wake);
}
