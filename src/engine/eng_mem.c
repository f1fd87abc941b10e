/*
 * eng_mem.c: the in-memory engine: RocksDB's semantics without RocksDB, for fast tests.
 *
 * Structure: one skiplist per column family holding versions (key, sequence number, put or
 * delete), ordered by key ascending then sequence descending, so a key's newest version comes
 * first. A write batch becomes one new sequence number; a snapshot is just the sequence number
 * it was taken at, and reads at sequence S see, for each key, its newest version with a
 * sequence <= S. Range deletions become a tombstone per live key at write time.
 *
 * Concurrency: one reader-writer lock. Reads, iterator moves and snapshot registration take it
 * shared; writes and compaction take it exclusive. Iterators keep a pointer to their current
 * node between calls; that node stays allocated because every live read view (snapshot or
 * iterator) is registered, and versions are dropped only when no registered view can see
 * them (prune()).
 *
 * Memory: every node is one tkv_malloc block. A write allocates every node it needs before it
 * changes anything, so -ENOMEM leaves the engine as it was.
 */
#include <pthread.h>

#include "base/codec.h"
#include "engine/eng_int.h"

#define MEM_MAX_HEIGHT 12 /* 4^12 = 16 M nodes before the lists degrade */

enum { MEM_DEL = 0, MEM_PUT = 1 };

typedef struct mem_node {
    uint64_t seq; /* 0 while the node sits in a write's pending list */
    size_t klen;
    size_t vlen;
    uint8_t kind;
    uint8_t height;
    struct mem_node *next[]; /* height links, then the key bytes, then the value bytes */
} mem_node;

typedef struct mem_list {
    mem_node *head[MEM_MAX_HEIGHT];
    int height;
} mem_list;

/* A registered read view: a snapshot, or an iterator reading the latest state. */
typedef struct mem_reg {
    uint64_t seq;
    struct mem_reg *prev;
    struct mem_reg *next;
} mem_reg;

typedef struct mem_db {
    eng_db base;
    pthread_rwlock_t lock;
    pthread_mutex_t reg_lock; /* guards regs; taken inside lock (shared or exclusive) or alone */
    mem_reg regs;             /* sentinel of the live views, oldest (smallest seq) first */
    uint64_t last_seq;        /* guarded by lock */
    mem_list cf[ENG_CF_COUNT];
    size_t bytes[ENG_CF_COUNT]; /* node memory per column family; guarded by lock */
    tkv_rng rng;                /* node heights; used under the exclusive lock */
} mem_db;

typedef struct mem_snap {
    eng_snap base;
    mem_reg reg;
} mem_snap;

typedef struct mem_iter {
    eng_iter base;
    const mem_list *list;
    uint64_t seq;
    bool own_reg; /* reading the latest state: the iterator registered its own view */
    mem_reg reg;
    mem_node *cur;
} mem_iter;

typedef struct mem_save {
    size_t len;
    size_t count;
} mem_save;

/* The batch's representation follows RocksDB's WriteBatch: a 12-byte header, then records
 * (tag, column family, varint-prefixed key, then a varint-prefixed value or range end). */
typedef struct mem_batch {
    eng_batch base;
    tkv_buf rep;
    size_t count;
    mem_save *saves;
    size_t n_saves;
    size_t cap_saves;
} mem_batch;

#define MEM_BATCH_HEADER 12

enum { TAG_DEL = 0, TAG_PUT = 1, TAG_DEL_RANGE = 2 };

typedef struct mem_pinned {
    eng_pinned base;
    uint8_t bytes[];
} mem_pinned;

static mem_db *M(eng_db *db)
{
    return (mem_db *)db;
}

static void rdlock(mem_db *m)
{
    int rc = pthread_rwlock_rdlock(&m->lock);
    TKV_ASSERT(rc == 0);
}

static void wrlock(mem_db *m)
{
    int rc = pthread_rwlock_wrlock(&m->lock);
    TKV_ASSERT(rc == 0);
}

static void unlock(mem_db *m)
{
    int rc = pthread_rwlock_unlock(&m->lock);
    TKV_ASSERT(rc == 0);
}

/* ---- nodes and skiplists ---------------------------------------------------------------- */

static const uint8_t *node_bytes(const mem_node *n)
{
    return (const uint8_t *)(n->next + n->height);
}

static tkv_slice node_key(const mem_node *n)
{
    return tkv_slice_of(node_bytes(n), n->klen);
}

static tkv_slice node_value(const mem_node *n)
{
    return tkv_slice_of(node_bytes(n) + n->klen, n->vlen);
}

static size_t node_size(const mem_node *n)
{
    return sizeof(mem_node) + (size_t)n->height * sizeof(mem_node *) + n->klen + n->vlen;
}

static bool same_key(const mem_node *a, const mem_node *b)
{
    return tkv_slice_eq(node_key(a), node_key(b));
}

static int random_height(mem_db *m)
{
    int h = 1;
    while (h < MEM_MAX_HEIGHT && (tkv_rng_next(&m->rng) & 3) == 0)
        h++;
    return h;
}

/* Returns a new unlinked node, or NULL when memory runs out. */
static mem_node *node_new(mem_db *m, uint8_t kind, tkv_slice key, tkv_slice value)
{
    int h = random_height(m);
    size_t links = sizeof(mem_node) + (size_t)h * sizeof(mem_node *);
    if (key.len > SIZE_MAX - links || value.len > SIZE_MAX - links - key.len)
        return NULL;
    mem_node *n = tkv_malloc(links + key.len + value.len);
    if (n == NULL)
        return NULL;
    n->seq = 0;
    n->klen = key.len;
    n->vlen = value.len;
    n->kind = kind;
    n->height = (uint8_t)h;
    uint8_t *p = (uint8_t *)(n->next + h);
    if (key.len > 0)
        memcpy(p, key.data, key.len);
    if (value.len > 0)
        memcpy(p + key.len, value.data, value.len);
    return n;
}

/* Orders a node against (key, seq): key ascending, then sequence descending. */
static int node_cmp(const mem_node *n, tkv_slice key, uint64_t seq)
{
    int c = tkv_slice_cmp(node_key(n), key);
    if (c != 0)
        return c;
    return n->seq > seq ? -1 : (n->seq < seq ? 1 : 0);
}

static mem_node *next_at(const mem_list *l, const mem_node *x, int level)
{
    return x != NULL ? x->next[level] : l->head[level];
}

static mem_node **slot_at(mem_list *l, mem_node *x, int level)
{
    return x != NULL ? &x->next[level] : &l->head[level];
}

/* Returns the last node ordered before (key, seq), NULL for the head; fills @prev (may be
 * NULL) with that node for every level. (key, UINT64_MAX) sorts before every version of key,
 * (key, 0) after every version in the main lists. */
static mem_node *find_lt(const mem_list *l, tkv_slice key, uint64_t seq, mem_node **prev)
{
    mem_node *x = NULL;
    for (int lv = l->height - 1; lv >= 0; lv--) {
        mem_node *n;
        while ((n = next_at(l, x, lv)) != NULL && node_cmp(n, key, seq) < 0)
            x = n;
        if (prev != NULL)
            prev[lv] = x;
    }
    return x;
}

/* Returns the first node ordered at or after (key, seq), or NULL. */
static mem_node *find_ge(const mem_list *l, tkv_slice key, uint64_t seq)
{
    return next_at(l, find_lt(l, key, seq, NULL), 0);
}

static mem_node *find_last(const mem_list *l)
{
    mem_node *x = NULL;
    for (int lv = l->height - 1; lv >= 0; lv--) {
        mem_node *n;
        while ((n = next_at(l, x, lv)) != NULL)
            x = n;
    }
    return x;
}

static void list_init(mem_list *l)
{
    memset(l, 0, sizeof(*l));
    l->height = 1;
}

static void list_insert(mem_list *l, mem_node *n)
{
    mem_node *prev[MEM_MAX_HEIGHT];
    find_lt(l, node_key(n), n->seq, prev);
    for (int lv = l->height; lv < n->height; lv++)
        prev[lv] = NULL;
    if (n->height > l->height)
        l->height = n->height;
    for (int lv = 0; lv < n->height; lv++) {
        mem_node **s = slot_at(l, prev[lv], lv);
        n->next[lv] = *s;
        *s = n;
    }
}

static void list_unlink(mem_list *l, mem_node *n)
{
    mem_node *prev[MEM_MAX_HEIGHT] = {0}; /* find_lt fills every level below l->height */
    find_lt(l, node_key(n), n->seq, prev);
    for (int lv = 0; lv < n->height; lv++) {
        mem_node **s = slot_at(l, prev[lv], lv);
        TKV_ASSERT(*s == n);
        *s = n->next[lv];
    }
    while (l->height > 1 && l->head[l->height - 1] == NULL)
        l->height--;
}

static void list_free(mem_list *l)
{
    mem_node *n = l->head[0];
    while (n != NULL) {
        mem_node *next = n->next[0];
        tkv_free(n);
        n = next;
    }
    list_init(l);
}

/* Returns the first node ordered at or after (@n's key, @seq), starting from @n: a few steps
 * along the bottom level, then a search from the top, so that a key with thousands of
 * versions (kept for an old snapshot) costs O(log n) to cross rather than O(versions). */
static mem_node *advance_to(const mem_list *l, mem_node *n, uint64_t seq)
{
    tkv_slice key = node_key(n);
    for (int i = 0; i < 8; i++) {
        if (n == NULL || node_cmp(n, key, seq) >= 0)
            return n;
        n = n->next[0];
    }
    return find_ge(l, key, seq);
}

/* Returns the first node after every version of @n's key (main lists have no sequence 0). */
static mem_node *skip_key(const mem_list *l, mem_node *n)
{
    return advance_to(l, n, 0);
}

/* ---- read views ------------------------------------------------------------------------- */

/* Registers @r at the latest sequence. Caller holds the lock (shared is enough: no write can
 * run, so no version this view needs can be pruned before it is registered). */
static void reg_add(mem_db *m, mem_reg *r)
{
    pthread_mutex_lock(&m->reg_lock);
    r->seq = m->last_seq;
    r->prev = m->regs.prev;
    r->next = &m->regs;
    m->regs.prev->next = r;
    m->regs.prev = r;
    pthread_mutex_unlock(&m->reg_lock);
}

static void reg_del(mem_db *m, mem_reg *r)
{
    pthread_mutex_lock(&m->reg_lock);
    r->prev->next = r->next;
    r->next->prev = r->prev;
    pthread_mutex_unlock(&m->reg_lock);
}

/* Returns the sequence of the oldest live view, or UINT64_MAX when there is none. Views are
 * appended in sequence order, so the oldest is first. */
static uint64_t oldest_view(mem_db *m)
{
    pthread_mutex_lock(&m->reg_lock);
    uint64_t seq = m->regs.next == &m->regs ? UINT64_MAX : m->regs.next->seq;
    pthread_mutex_unlock(&m->reg_lock);
    return seq;
}

static void node_free(mem_db *m, eng_cf cf, mem_node *n)
{
    m->bytes[cf] -= node_size(n);
    tkv_free(n);
}

/* Drops the versions of @newest's key that no view can see: everything older than the
 * newest version visible to the oldest view, and that version too when it is a deletion (with
 * nothing older left, "deleted" and "absent" read the same). Caller holds the exclusive lock;
 * @newest may be freed. */
static void prune(mem_db *m, eng_cf cf, mem_node *newest, uint64_t oldest)
{
    mem_list *l = &m->cf[cf];
    /* The version the oldest view reads: found by search, not by walking the newer ones. */
    mem_node *w = advance_to(l, newest, oldest);
    if (w == NULL || !same_key(w, newest))
        return;
    for (;;) {
        mem_node *n = w->next[0];
        if (n == NULL || !same_key(n, w))
            break;
        list_unlink(l, n);
        node_free(m, cf, n);
    }
    if (w->kind == MEM_DEL) {
        list_unlink(l, w);
        node_free(m, cf, w);
    }
}

/* ---- open and close --------------------------------------------------------------------- */

static const eng_ops mem_ops;

int eng_mem_open(const eng_options *opts, eng_db **out)
{
    mem_db *m = tkv_calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    pthread_rwlockattr_t attr;
    int rc = pthread_rwlockattr_init(&attr);
    if (rc != 0) {
        tkv_free(m);
        return -rc;
    }
    /* Writers first: a steady stream of readers must not starve the apply thread. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    rc = pthread_rwlock_init(&m->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) {
        tkv_free(m);
        return -rc;
    }
    rc = pthread_mutex_init(&m->reg_lock, NULL);
    if (rc != 0) {
        pthread_rwlock_destroy(&m->lock);
        tkv_free(m);
        return -rc;
    }
    eng__db_init(&m->base, &mem_ops, opts);
    m->regs.prev = m->regs.next = &m->regs;
    m->last_seq = 0;
    for (int i = 0; i < ENG_CF_COUNT; i++)
        list_init(&m->cf[i]);
    tkv_rng_seed(&m->rng, 0x6d656d656e67ULL); /* heights need no secrecy, only spread */
    *out = &m->base;
    return 0;
}

static void mem_close(eng_db *db)
{
    mem_db *m = M(db);
    for (int i = 0; i < ENG_CF_COUNT; i++)
        list_free(&m->cf[i]);
    pthread_mutex_destroy(&m->reg_lock);
    pthread_rwlock_destroy(&m->lock);
    tkv_free(m);
}

/* ---- write batches ---------------------------------------------------------------------- */

static mem_batch *MB(eng_batch *b)
{
    return (mem_batch *)b;
}

static int mem_batch_new(eng_db *db, eng_batch **out)
{
    mem_batch *b = tkv_calloc(1, sizeof(*b));
    if (b == NULL)
        return eng__errorf(db, -ENOMEM, "batch: out of memory");
    tkv_buf_init(&b->rep);
    if (tkv_buf_reserve(&b->rep, 256) != 0) {
        tkv_free(b);
        return eng__errorf(db, -ENOMEM, "batch: out of memory");
    }
    memset(b->rep.data, 0, MEM_BATCH_HEADER);
    b->rep.len = MEM_BATCH_HEADER;
    *out = &b->base;
    return 0;
}

static void mem_batch_free(eng_batch *b)
{
    tkv_buf_deinit(&MB(b)->rep);
    tkv_free(MB(b)->saves);
    tkv_free(b);
}

/* Appends one record; reserves the worst case first, so failure leaves the batch as it was. */
static int batch_add(eng_batch *b, uint8_t tag, eng_cf cf, tkv_slice key, tkv_slice value)
{
    mem_batch *mb = MB(b);
    size_t fixed = 2 + 2 * TKV_VARINT_MAX_LEN;
    if (key.len > SIZE_MAX - fixed || value.len > SIZE_MAX - fixed - key.len ||
        tkv_buf_reserve(&mb->rep, fixed + key.len + value.len) != 0)
        return eng__errorf(b->db, -ENOMEM, "batch: out of memory");
    uint8_t *p = mb->rep.data + mb->rep.len;
    *p++ = tag;
    *p++ = (uint8_t)cf;
    p += tkv_codec_put_uvarint(p, key.len);
    if (key.len > 0)
        memcpy(p, key.data, key.len);
    p += key.len;
    if (tag != TAG_DEL) {
        p += tkv_codec_put_uvarint(p, value.len);
        if (value.len > 0)
            memcpy(p, value.data, value.len);
        p += value.len;
    }
    mb->rep.len = (size_t)(p - mb->rep.data);
    mb->count++;
    return 0;
}

static int mem_batch_put(eng_batch *b, eng_cf cf, tkv_slice key, tkv_slice value)
{
    return batch_add(b, TAG_PUT, cf, key, value);
}

static int mem_batch_delete(eng_batch *b, eng_cf cf, tkv_slice key)
{
    return batch_add(b, TAG_DEL, cf, key, tkv_slice_of(NULL, 0));
}

static int mem_batch_delete_range(eng_batch *b, eng_cf cf, tkv_slice begin, tkv_slice end)
{
    return batch_add(b, TAG_DEL_RANGE, cf, begin, end);
}

static size_t mem_batch_count(const eng_batch *b)
{
    return ((const mem_batch *)b)->count;
}

static size_t mem_batch_data_size(const eng_batch *b)
{
    return ((const mem_batch *)b)->rep.len;
}

static void mem_batch_clear(eng_batch *b)
{
    MB(b)->rep.len = MEM_BATCH_HEADER;
    MB(b)->count = 0;
    MB(b)->n_saves = 0;
}

static int mem_batch_set_save_point(eng_batch *b)
{
    mem_batch *mb = MB(b);
    if (mb->n_saves == mb->cap_saves) {
        size_t cap = mb->cap_saves ? mb->cap_saves * 2 : 4;
        mem_save *s = tkv_realloc(mb->saves, cap * sizeof(*s));
        if (s == NULL)
            return eng__errorf(b->db, -ENOMEM, "batch: out of memory");
        mb->saves = s;
        mb->cap_saves = cap;
    }
    mb->saves[mb->n_saves].len = mb->rep.len;
    mb->saves[mb->n_saves].count = mb->count;
    mb->n_saves++;
    return 0;
}

static int mem_batch_rollback(eng_batch *b)
{
    mem_batch *mb = MB(b);
    TKV_ASSERT(mb->n_saves > 0); /* engine.c checks the depth */
    mb->n_saves--;
    mb->rep.len = mb->saves[mb->n_saves].len;
    mb->count = mb->saves[mb->n_saves].count;
    return 0;
}

static int mem_batch_pop_save_point(eng_batch *b)
{
    TKV_ASSERT(MB(b)->n_saves > 0);
    MB(b)->n_saves--;
    return 0;
}

/* One decoded batch record. The batch is our own memory, so malformed bytes are a bug. */
typedef struct mem_op {
    uint8_t tag;
    eng_cf cf;
    tkv_slice key;
    tkv_slice value;
} mem_op;

static tkv_slice take_bytes(tkv_slice *in)
{
    uint64_t len = 0;
    int rc = tkv_codec_decode_uvarint(in, &len);
    TKV_ASSERT(rc == 0 && len <= in->len);
    tkv_slice s = tkv_slice_of(in->data, (size_t)len);
    in->data += len;
    in->len -= (size_t)len;
    return s;
}

static mem_op next_op(tkv_slice *in)
{
    TKV_ASSERT(in->len >= 2);
    mem_op op;
    op.tag = in->data[0];
    op.cf = (eng_cf)in->data[1];
    in->data += 2;
    in->len -= 2;
    op.key = take_bytes(in);
    op.value = op.tag != TAG_DEL ? take_bytes(in) : tkv_slice_of(NULL, 0);
    return op;
}

/* Sets @key in a write's pending list (sequence 0, one node per key) to @kind/@value. */
static int pend_set(mem_db *m, mem_list *pl, uint8_t kind, tkv_slice key, tkv_slice value)
{
    mem_node *x = find_ge(pl, key, 0);
    bool exists = x != NULL && tkv_slice_eq(node_key(x), key);
    if (exists && kind == MEM_DEL && x->kind == MEM_DEL)
        return 0;
    mem_node *n = node_new(m, kind, key, value);
    if (n == NULL)
        return -ENOMEM;
    if (exists) {
        list_unlink(pl, x);
        tkv_free(x);
    }
    list_insert(pl, n);
    return 0;
}

static bool before_end(tkv_slice key, tkv_slice end)
{
    return tkv_slice_cmp(key, end) < 0;
}

/* Deletes [begin, end) as seen by this write: the pending puts, then every key whose newest
 * committed version is a put. */
static int pend_delete_range(mem_db *m, eng_cf cf, mem_list *pl, tkv_slice begin, tkv_slice end)
{
    mem_node *n = find_ge(pl, begin, 0);
    while (n != NULL && before_end(node_key(n), end)) {
        mem_node *next = n->next[0];
        if (n->kind == MEM_PUT) {
            int rc = pend_set(m, pl, MEM_DEL, node_key(n), tkv_slice_of(NULL, 0));
            if (rc != 0)
                return rc;
        }
        n = next;
    }
    n = find_ge(&m->cf[cf], begin, UINT64_MAX);
    while (n != NULL && before_end(node_key(n), end)) {
        if (n->kind == MEM_PUT) {
            mem_node *p = find_ge(pl, node_key(n), 0);
            if (p == NULL || !same_key(p, n)) {
                int rc = pend_set(m, pl, MEM_DEL, node_key(n), tkv_slice_of(NULL, 0));
                if (rc != 0)
                    return rc;
            }
        }
        n = skip_key(&m->cf[cf], n);
    }
    return 0;
}

static int mem_write(eng_db *db, eng_batch *b, bool sync)
{
    (void)sync; /* nothing here is durable */
    mem_db *m = M(db);
    mem_batch *mb = MB(b);
    if (mb->count == 0)
        return 0;
    mem_list pending[ENG_CF_COUNT];
    for (int i = 0; i < ENG_CF_COUNT; i++)
        list_init(&pending[i]);
    wrlock(m);
    /* Phase 1: build the write's final effect per key, allocating every node. */
    tkv_slice in = tkv_slice_of(mb->rep.data + MEM_BATCH_HEADER, mb->rep.len - MEM_BATCH_HEADER);
    int rc = 0;
    while (in.len > 0 && rc == 0) {
        mem_op op = next_op(&in);
        TKV_ASSERT((unsigned)op.cf < ENG_CF_COUNT);
        mem_list *pl = &pending[op.cf];
        if (op.tag == TAG_PUT)
            rc = pend_set(m, pl, MEM_PUT, op.key, op.value);
        else if (op.tag == TAG_DEL)
            rc = pend_set(m, pl, MEM_DEL, op.key, op.value);
        else
            rc = pend_delete_range(m, op.cf, pl, op.key, op.value);
    }
    if (rc != 0) {
        unlock(m);
        for (int i = 0; i < ENG_CF_COUNT; i++)
            list_free(&pending[i]);
        return eng__errorf(db, rc, "write: out of memory");
    }
    /* Phase 2: link the nodes in at one new sequence number; nothing can fail here. */
    uint64_t seq = m->last_seq + 1;
    uint64_t oldest = oldest_view(m);
    for (int cf = 0; cf < ENG_CF_COUNT; cf++) {
        mem_list *pl = &pending[cf];
        mem_node *n;
        while ((n = pl->head[0]) != NULL) {
            /* n is first in the pending list at every level it has. */
            for (int lv = 0; lv < n->height; lv++)
                pl->head[lv] = n->next[lv];
            n->seq = seq;
            list_insert(&m->cf[cf], n);
            m->bytes[cf] += node_size(n);
            prune(m, (eng_cf)cf, n, oldest);
        }
    }
    m->last_seq = seq;
    unlock(m);
    return 0;
}

/* ---- reads and snapshots ---------------------------------------------------------------- */

static uint64_t read_seq(mem_db *m, const eng_snap *snap)
{
    return snap != NULL ? ((const mem_snap *)snap)->reg.seq : m->last_seq;
}

/* Returns the version of @key visible at @seq when it is a put, else NULL. */
static const mem_node *visible(const mem_list *l, tkv_slice key, uint64_t seq)
{
    const mem_node *n = find_ge(l, key, seq);
    if (n != NULL && n->kind == MEM_PUT && tkv_slice_eq(node_key(n), key))
        return n;
    return NULL;
}

static int mem_get(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice key, tkv_buf *value,
                   bool *found)
{
    mem_db *m = M(db);
    rdlock(m);
    const mem_node *n = visible(&m->cf[cf], key, read_seq(m, snap));
    int rc = 0;
    if (n == NULL) {
        *found = false;
        tkv_buf_reset(value);
    } else {
        rc = tkv_buf_set(value, node_value(n).data, n->vlen);
        *found = rc == 0;
    }
    unlock(m);
    return rc != 0 ? eng__errorf(db, rc, "get: out of memory") : 0;
}

static int mem_get_pinned(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice key,
                          eng_pinned **out)
{
    mem_db *m = M(db);
    rdlock(m);
    const mem_node *n = visible(&m->cf[cf], key, read_seq(m, snap));
    mem_pinned *p = NULL;
    int rc = 0;
    if (n != NULL) {
        p = tkv_malloc(sizeof(*p) + n->vlen);
        if (p == NULL) {
            rc = -ENOMEM;
        } else {
            memset(&p->base, 0, sizeof(p->base));
            if (n->vlen > 0)
                memcpy(p->bytes, node_value(n).data, n->vlen);
            p->base.value = tkv_slice_of(p->bytes, n->vlen);
        }
    }
    unlock(m);
    if (rc != 0)
        return eng__errorf(db, rc, "get: out of memory");
    *out = p != NULL ? &p->base : NULL;
    return 0;
}

static void mem_pinned_free(eng_pinned *p)
{
    tkv_free(p);
}

static int mem_snap_open(eng_db *db, eng_snap **out)
{
    mem_db *m = M(db);
    mem_snap *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        return eng__errorf(db, -ENOMEM, "snapshot: out of memory");
    rdlock(m);
    reg_add(m, &s->reg);
    unlock(m);
    *out = &s->base;
    return 0;
}

static void mem_snap_close(eng_snap *snap)
{
    reg_del(M(snap->db), &((mem_snap *)snap)->reg);
    tkv_free(snap);
}

/* ---- iterators -------------------------------------------------------------------------- */

static mem_iter *MI(eng_iter *it)
{
    return (mem_iter *)it;
}

static int mem_iter_new(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice lower,
                        tkv_slice upper, eng_iter **out)
{
    (void)lower;
    (void)upper; /* the base keeps them */
    mem_db *m = M(db);
    mem_iter *mi = tkv_calloc(1, sizeof(*mi));
    if (mi == NULL)
        return eng__errorf(db, -ENOMEM, "iterator: out of memory");
    mi->list = &m->cf[cf];
    if (snap != NULL) {
        mi->seq = ((const mem_snap *)snap)->reg.seq;
    } else {
        /* Like a RocksDB iterator, read the state as of creation. */
        rdlock(m);
        reg_add(m, &mi->reg);
        unlock(m);
        mi->own_reg = true;
        mi->seq = mi->reg.seq;
    }
    *out = &mi->base;
    return 0;
}

static void mem_iter_free(eng_iter *it)
{
    if (MI(it)->own_reg)
        reg_del(M(it->db), &MI(it)->reg);
    tkv_free(it);
}

static bool iter_at(mem_iter *mi, mem_node *n)
{
    mi->cur = n;
    if (n == NULL)
        return false;
    mi->base.key = node_key(n);
    mi->base.value = node_value(n);
    return true;
}

/* From @n onward, finds the first key below the upper bound whose version visible at the
 * iterator's sequence is a put. Caller holds the lock. */
static bool settle_forward(mem_iter *mi, mem_node *n)
{
    tkv_slice upper = mi->base.upper;
    while (n != NULL) {
        if (upper.len > 0 && tkv_slice_cmp(node_key(n), upper) >= 0)
            break;
        if (n->seq > mi->seq) { /* too new for this view: an older version may follow */
            n = advance_to(mi->list, n, mi->seq);
            continue;
        }
        if (n->kind == MEM_PUT)
            return iter_at(mi, n);
        n = skip_key(mi->list, n);
    }
    return iter_at(mi, NULL);
}

/* From the key of @n backward, finds the last key at or above the lower bound whose version
 * visible at the iterator's sequence is a put. Caller holds the lock. */
static bool settle_backward(mem_iter *mi, mem_node *n)
{
    tkv_slice lower = mi->base.lower;
    while (n != NULL) {
        tkv_slice key = node_key(n);
        if (lower.len > 0 && tkv_slice_cmp(key, lower) < 0)
            break;
        mem_node *v = find_ge(mi->list, key, mi->seq);
        if (v != NULL && v->kind == MEM_PUT && tkv_slice_eq(node_key(v), key))
            return iter_at(mi, v);
        n = find_lt(mi->list, key, UINT64_MAX, NULL);
    }
    return iter_at(mi, NULL);
}

static bool mem_iter_seek(eng_iter *it, tkv_slice key)
{
    mem_db *m = M(it->db);
    rdlock(m);
    bool ok = settle_forward(MI(it), find_ge(MI(it)->list, key, UINT64_MAX));
    unlock(m);
    return ok;
}

static bool mem_iter_seek_for_prev(eng_iter *it, tkv_slice key)
{
    mem_db *m = M(it->db);
    rdlock(m);
    bool ok = settle_backward(MI(it), find_lt(MI(it)->list, key, 0, NULL));
    unlock(m);
    return ok;
}

static bool mem_iter_seek_to_first(eng_iter *it)
{
    if (it->lower.len > 0)
        return mem_iter_seek(it, it->lower);
    mem_db *m = M(it->db);
    rdlock(m);
    bool ok = settle_forward(MI(it), MI(it)->list->head[0]);
    unlock(m);
    return ok;
}

static bool mem_iter_seek_to_last(eng_iter *it)
{
    mem_db *m = M(it->db);
    const mem_list *l = MI(it)->list;
    rdlock(m);
    mem_node *n = it->upper.len > 0 ? find_lt(l, it->upper, UINT64_MAX, NULL) : find_last(l);
    bool ok = settle_backward(MI(it), n);
    unlock(m);
    return ok;
}

static bool mem_iter_next(eng_iter *it)
{
    mem_db *m = M(it->db);
    rdlock(m);
    bool ok = settle_forward(MI(it), skip_key(MI(it)->list, MI(it)->cur));
    unlock(m);
    return ok;
}

static bool mem_iter_prev(eng_iter *it)
{
    mem_db *m = M(it->db);
    rdlock(m);
    mem_node *n = find_lt(MI(it)->list, node_key(MI(it)->cur), UINT64_MAX, NULL);
    bool ok = settle_backward(MI(it), n);
    unlock(m);
    return ok;
}

/* ---- sizes, properties, maintenance ----------------------------------------------------- */

/* Counts the live keys of [start, end) at the latest state and their key + value bytes.
 * Caller holds the lock. */
static void live_stats(const mem_list *l, tkv_slice start, tkv_slice end, uint64_t *keys,
                       uint64_t *bytes)
{
    uint64_t k = 0, b = 0;
    mem_node *n = find_ge(l, start, UINT64_MAX);
    while (n != NULL && (end.len == 0 || before_end(node_key(n), end))) {
        if (n->kind == MEM_PUT) { /* the first node of a key is its newest version */
            k++;
            b += n->klen + n->vlen;
        }
        n = skip_key(l, n);
    }
    *keys = k;
    *bytes = b;
}

static int mem_approx(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end, uint64_t *out,
                      bool want_keys)
{
    mem_db *m = M(db);
    uint64_t keys, bytes;
    rdlock(m);
    live_stats(&m->cf[cf], start, end, &keys, &bytes);
    unlock(m);
    *out = want_keys ? keys : bytes;
    return 0;
}

static int mem_approx_size(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end, uint64_t *bytes)
{
    return mem_approx(db, cf, start, end, bytes, false);
}

static int mem_approx_keys(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end, uint64_t *keys)
{
    return mem_approx(db, cf, start, end, keys, true);
}

static int mem_property_u64(eng_db *db, eng_cf cf, const char *name, uint64_t *value)
{
    mem_db *m = M(db);
    tkv_slice all = tkv_slice_of(NULL, 0);
    if (strcmp(name, ENG_PROP_ESTIMATE_NUM_KEYS) == 0)
        return mem_approx(db, cf, all, all, value, true);
    if (strcmp(name, ENG_PROP_ESTIMATE_LIVE_DATA_SIZE) == 0)
        return mem_approx(db, cf, all, all, value, false);
    if (strcmp(name, ENG_PROP_TOTAL_SST_FILES_SIZE) == 0) {
        *value = 0; /* nothing lives in files */
        return 0;
    }
    if (strcmp(name, ENG_PROP_CUR_SIZE_ALL_MEM_TABLES) == 0) {
        rdlock(m);
        *value = m->bytes[cf];
        unlock(m);
        return 0;
    }
    return eng__errorf(db, TKV_ENOTFOUND, "unknown integer property %s", name);
}

static int mem_flush_cf(eng_db *db, eng_cf cf, bool wait)
{
    (void)db;
    (void)cf;
    (void)wait;
    return 0; /* everything already is where it will stay */
}

static int mem_compact_range(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end)
{
    mem_db *m = M(db);
    wrlock(m);
    uint64_t oldest = oldest_view(m);
    mem_node *n = find_ge(&m->cf[cf], start, UINT64_MAX);
    while (n != NULL && (end.len == 0 || before_end(node_key(n), end))) {
        mem_node *next = skip_key(&m->cf[cf], n); /* prune() frees only nodes of n's key */
        prune(m, cf, n, oldest);
        n = next;
    }
    unlock(m);
    return 0;
}

static const eng_ops mem_ops = {
    .kind = "memory",
    .close = mem_close,
    .batch_new = mem_batch_new,
    .batch_free = mem_batch_free,
    .batch_put = mem_batch_put,
    .batch_delete = mem_batch_delete,
    .batch_delete_range = mem_batch_delete_range,
    .batch_count = mem_batch_count,
    .batch_data_size = mem_batch_data_size,
    .batch_clear = mem_batch_clear,
    .batch_set_save_point = mem_batch_set_save_point,
    .batch_rollback = mem_batch_rollback,
    .batch_pop_save_point = mem_batch_pop_save_point,
    .write = mem_write,
    .get = mem_get,
    .get_pinned = mem_get_pinned,
    .pinned_free = mem_pinned_free,
    .snap_open = mem_snap_open,
    .snap_close = mem_snap_close,
    .iter_new = mem_iter_new,
    .iter_free = mem_iter_free,
    .iter_seek = mem_iter_seek,
    .iter_seek_for_prev = mem_iter_seek_for_prev,
    .iter_seek_to_first = mem_iter_seek_to_first,
    .iter_seek_to_last = mem_iter_seek_to_last,
    .iter_next = mem_iter_next,
    .iter_prev = mem_iter_prev,
    .sst_writer_new = eng__mem_sst_writer_new,
    .sst_put = eng__mem_sst_put,
    .sst_delete = eng__mem_sst_delete,
    .sst_finish = eng__mem_sst_finish,
    .sst_free = eng__mem_sst_free,
    .ingest = eng__mem_ingest,
    .approx_size = mem_approx_size,
    .approx_keys = mem_approx_keys,
    .property_u64 = mem_property_u64,
    .flush_cf = mem_flush_cf,
    .compact_range = mem_compact_range,
};
