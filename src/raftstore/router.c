/*
 * router.c: region id -> mailbox, and the mailboxes themselves (TiKV's batch-system
 * router). Any thread sends; only the poller receives. A mailbox that gets its first
 * message is put on the poller's ready list once ("scheduled"); the poller drains it and
 * reschedules it if more arrived meanwhile, so a peer is handled by one thread at a time
 * and never behind a lock.
 */
#include <stdlib.h>

#include "base/log.h"
#include "raftstore/rstore_int.h"

#define TOMB ((rstore_mailbox *)(uintptr_t)1)

static size_t slot_of(uint64_t id, size_t cap)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

int rstore__router_init(rstore_router *r, rstore_poller *p, size_t capacity)
{
    memset(r, 0, sizeof(*r));
    int rc = pthread_rwlock_init(&r->lock, NULL);
    if (rc != 0)
        return -rc;
    r->cap = 64;
    r->slots = tkv_calloc(r->cap, sizeof(rstore_mailbox *));
    if (r->slots == NULL) {
        pthread_rwlock_destroy(&r->lock);
        return -ENOMEM;
    }
    r->poller = p;
    r->capacity = capacity;
    return 0;
}

void rstore__router_deinit(rstore_router *r)
{
    for (size_t i = 0; i < r->cap; i++) {
        rstore_mailbox *mb = r->slots[i];
        if (mb && mb != TOMB)
            rstore__mailbox_unref(mb);
    }
    tkv_free(r->slots);
    pthread_rwlock_destroy(&r->lock);
    memset(r, 0, sizeof(*r));
}

void rstore__mailbox_unref(rstore_mailbox *mb)
{
    if (atomic_fetch_sub(&mb->refs, 1) != 1)
        return;
    rstore_msg *m = mb->head;
    while (m) {
        rstore_msg *next = m->next;
        rstore__msg_free(m, TKV_ECLOSED);
        m = next;
    }
    rstore__reader_free(mb->reader);
    pthread_mutex_destroy(&mb->mu);
    tkv_free(mb);
}

static rstore_mailbox *lookup(rstore_router *r, uint64_t id)
{
    size_t mask = r->cap - 1;
    for (size_t i = slot_of(id, r->cap), n = 0; n < r->cap; i = (i + 1) & mask, n++) {
        rstore_mailbox *mb = r->slots[i];
        if (mb == NULL)
            return NULL;
        if (mb != TOMB && mb->region_id == id)
            return mb;
    }
    return NULL;
}

static void insert_slot(rstore_mailbox **slots, size_t cap, rstore_mailbox *mb)
{
    size_t mask = cap - 1;
    size_t i = slot_of(mb->region_id, cap);
    while (slots[i] != NULL && slots[i] != TOMB)
        i = (i + 1) & mask;
    slots[i] = mb;
}

static int grow(rstore_router *r)
{
    size_t cap = r->n * 4 > r->cap ? r->cap * 2 : r->cap; /* rehash drops tombstones */
    rstore_mailbox **slots = tkv_calloc(cap, sizeof(rstore_mailbox *));
    if (slots == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i] && r->slots[i] != TOMB)
            insert_slot(slots, cap, r->slots[i]);
    tkv_free(r->slots);
    r->slots = slots;
    r->cap = cap;
    r->used = r->n;
    return 0;
}

int rstore__router_register(rstore_router *r, uint64_t region_id, rstore_peer *peer,
                            rstore_mailbox **out)
{
    rstore_mailbox *mb = tkv_calloc(1, sizeof(*mb));
    if (mb == NULL)
        return -ENOMEM;
    int rc = pthread_mutex_init(&mb->mu, NULL);
    if (rc != 0) {
        tkv_free(mb);
        return -rc;
    }
    mb->region_id = region_id;
    mb->peer = peer;
    mb->reader = rstore__reader_new();
    atomic_init(&mb->refs, 2); /* the router's and the peer's */
    pthread_rwlock_wrlock(&r->lock);
    if (lookup(r, region_id) != NULL) {
        pthread_rwlock_unlock(&r->lock);
        rstore__reader_free(mb->reader);
        pthread_mutex_destroy(&mb->mu);
        tkv_free(mb);
        return TKV_EEXIST;
    }
    if ((r->used + 1) * 4 > r->cap * 3 && (rc = grow(r)) != 0) {
        pthread_rwlock_unlock(&r->lock);
        rstore__reader_free(mb->reader);
        pthread_mutex_destroy(&mb->mu);
        tkv_free(mb);
        return rc;
    }
    size_t mask = r->cap - 1;
    size_t i = slot_of(region_id, r->cap);
    while (r->slots[i] != NULL && r->slots[i] != TOMB)
        i = (i + 1) & mask;
    if (r->slots[i] == NULL)
        r->used++;
    r->slots[i] = mb;
    r->n++;
    pthread_rwlock_unlock(&r->lock);
    *out = mb;
    return 0;
}

rstore_mailbox *rstore__router_get(rstore_router *r, uint64_t region_id)
{
    pthread_rwlock_rdlock(&r->lock);
    rstore_mailbox *mb = r->closed ? NULL : lookup(r, region_id);
    if (mb)
        atomic_fetch_add(&mb->refs, 1);
    pthread_rwlock_unlock(&r->lock);
    return mb;
}

rstore_msg *rstore__router_unregister(rstore_router *r, rstore_mailbox *mb)
{
    rstore__reader_invalidate(mb->reader);
    pthread_rwlock_wrlock(&r->lock);
    size_t mask = r->cap - 1;
    bool dropped = false;
    for (size_t i = slot_of(mb->region_id, r->cap), n = 0; n < r->cap; i = (i + 1) & mask, n++) {
        if (r->slots[i] == NULL)
            break;
        if (r->slots[i] == mb) {
            r->slots[i] = TOMB;
            r->n--;
            dropped = true;
            break;
        }
    }
    pthread_rwlock_unlock(&r->lock);
    pthread_mutex_lock(&mb->mu);
    mb->closed = true;
    mb->peer = NULL;
    rstore_msg *left = mb->head;
    mb->head = mb->tail = NULL;
    mb->len = 0;
    pthread_mutex_unlock(&mb->mu);
    if (dropped)
        rstore__mailbox_unref(mb); /* the router's reference */
    return left;
}

int rstore__router_send(rstore_router *r, rstore_msg *m, bool bounded)
{
    pthread_rwlock_rdlock(&r->lock);
    if (r->closed) {
        pthread_rwlock_unlock(&r->lock);
        return TKV_ECLOSED;
    }
    rstore_mailbox *mb = lookup(r, m->region_id);
    if (mb == NULL) {
        pthread_rwlock_unlock(&r->lock);
        return TKV_ENOTFOUND;
    }
    pthread_mutex_lock(&mb->mu);
    pthread_rwlock_unlock(&r->lock);
    if (mb->closed) {
        pthread_mutex_unlock(&mb->mu);
        return TKV_ENOTFOUND;
    }
    if (bounded && mb->len >= r->capacity) {
        pthread_mutex_unlock(&mb->mu);
        return TKV_EBUSY;
    }
    m->next = NULL;
    if (mb->tail)
        mb->tail->next = m;
    else
        mb->head = m;
    mb->tail = m;
    mb->len++;
    if (!mb->scheduled) {
        mb->scheduled = true;
        atomic_fetch_add(&mb->refs, 1); /* held by the ready list */
        rstore__poller_schedule(r->poller, mb);
    }
    pthread_mutex_unlock(&mb->mu);
    return 0;
}

void rstore__router_send_or_free(rstore_router *r, rstore_msg *m)
{
    int rc = rstore__router_send(r, m, false);
    if (rc != 0)
        rstore__msg_free(m, rc == TKV_ENOTFOUND ? 0 : rc);
}

size_t rstore__router_region_ids(rstore_router *r, uint64_t *ids, size_t cap)
{
    pthread_rwlock_rdlock(&r->lock);
    size_t n = 0;
    for (size_t i = 0; i < r->cap; i++) {
        rstore_mailbox *mb = r->slots[i];
        if (mb && mb != TOMB) {
            if (n < cap)
                ids[n] = mb->region_id;
            n++;
        }
    }
    pthread_rwlock_unlock(&r->lock);
    return n;
}

void rstore__router_close(rstore_router *r)
{
    pthread_rwlock_wrlock(&r->lock);
    r->closed = true;
    pthread_rwlock_unlock(&r->lock);
}
