/*
 * resolve_lock.c: KvResolveLock (TiKV's commands/resolve_lock.rs and resolve_lock_lite.rs):
 * commits (commit_version > 0) or rolls back (0) the locks of one transaction, or of the
 * transactions listed in txn_infos. With keys it resolves just those keys; without, it
 * scans the region's locks in batches: a read phase finds up to RESOLVE_BATCH locks of the
 * listed transactions (no latches), then a write phase latches those keys and resolves them
 * against a fresh snapshot, and so on until the scan is exhausted.
 */
#include "storage/txn/txn_int.h"

#define RESOLVE_BATCH 256

typedef struct txn_entry {
    uint64_t start_ts, commit_ts;
} txn_entry;

typedef struct resolve_state {
    txn_entry *txns;
    size_t n_txns;
    bool lite;
    bool resolving; /* next run is a write phase over c->keys */
    bool more;      /* the read phase stopped at RESOLVE_BATCH */
    tkv_buf next;   /* where the next read phase starts */
    size_t found;
} resolve_state;

static const txn_entry *find_txn(const resolve_state *st, uint64_t start_ts)
{
    for (size_t i = 0; i < st->n_txns; i++) {
        if (st->txns[i].start_ts == start_ts)
            return &st->txns[i];
    }
    return NULL;
}

static int set_error(txn_cmd *c, const mvcc_err *e)
{
    Kvrpcpb__ResolveLockResponse *resp = (Kvrpcpb__ResolveLockResponse *)c->resp;
    return txn__refuse(c, &resp->error, e);
}

/* Resolves the lock of a listed transaction on @key, if it is still there (lite mode: acts
 * for the one named transaction whatever the key holds, as TiKV's ResolveLockLite). */
static int resolve_key(txn_cmd *c, mvcc_reader *r, resolve_state *st, tkv_slice key, mvcc_err *e)
{
    if (st->lite) {
        mvcc_txn_set_start_ts(c->txn, st->txns[0].start_ts);
        if (st->txns[0].commit_ts == 0)
            return txn_cleanup(c->txn, r, key, 0, false, e);
        return txn_commit(c->txn, r, key, st->txns[0].commit_ts, e);
    }
    txn_lock_holder h;
    txn_lock_holder_init(&h);
    bool found;
    int rc = mvcc_load_lock(r, key, &h, &found);
    const txn_entry *t = rc == 0 && found ? find_txn(st, h.lock.start_ts) : NULL;
    if (t != NULL) {
        mvcc_txn_set_start_ts(c->txn, t->start_ts);
        if (t->commit_ts == 0) {
            rc = txn_cleanup(c->txn, r, key, 0, false, e);
        } else if (t->commit_ts > h.lock.start_ts) {
            rc = txn_commit(c->txn, r, key, t->commit_ts, e);
            /* A pessimistic lock left behind by a committed txn is simply dropped. */
            if (rc == 0 && e->kind == MVCC_E_TXN_LOCK_NOT_FOUND &&
                txn_lock_is_pessimistic_lock(&h.lock))
                mvcc_err_reset(e);
        } else {
            rc = mvcc_err_set(e, MVCC_E_INVALID_TXN_TSO, tkv_slice_of(NULL, 0),
                              tkv_slice_of(NULL, 0), h.lock.start_ts, t->commit_ts, 0);
        }
    }
    txn_lock_holder_deinit(&h);
    return rc;
}

typedef struct scan_ctx {
    txn_cmd *c;
    resolve_state *st;
    tkv_slice *keys;
    int rc;
} scan_ctx;

static int collect(void *ud, tkv_slice enc_key, const txn_lock *lock)
{
    scan_ctx *s = ud;
    if (find_txn(s->st, lock->start_ts) == NULL)
        return 0;
    uint8_t *p = txn_arena_alloc(&s->c->arena, enc_key.len);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p, enc_key.data, enc_key.len);
    s->keys[s->st->found++] = tkv_slice_of(p, enc_key.len);
    return s->st->found == RESOLVE_BATCH ? 1 : 0;
}

static int read_phase(txn_cmd *c, mvcc_reader *r, resolve_state *st)
{
    tkv_slice *keys = txn_arena_alloc(&c->arena, RESOLVE_BATCH * sizeof(tkv_slice));
    if (keys == NULL)
        return -ENOMEM;
    scan_ctx s = {c, st, keys, 0};
    st->found = 0;
    int rc = mvcc_scan_locks(r, tkv_buf_slice(&st->next), tkv_slice_of(NULL, 0), 0, 0, collect, &s);
    if (rc != 0 || st->found == 0)
        return rc;
    st->more = st->found == RESOLVE_BATCH;
    if (st->more) {
        /* Resume right after the last key found (the smallest key above it). */
        tkv_slice last = keys[st->found - 1];
        rc = tkv_buf_set(&st->next, last.data, last.len);
        if (rc == 0)
            rc = tkv_buf_append_u8(&st->next, 0);
        if (rc != 0)
            return rc;
    }
    c->keys = keys;
    c->n_keys = st->found;
    st->resolving = true;
    c->again = true;
    return 0;
}

static int process(txn_cmd *c, mvcc_reader *r)
{
    resolve_state *st = c->state;
    if (!st->lite && !st->resolving)
        return read_phase(c, r, st);
    mvcc_err e;
    mvcc_err_init(&e);
    int rc = 0;
    for (size_t i = 0; i < c->n_keys && rc == 0 && e.kind == MVCC_OK; i++)
        rc = resolve_key(c, r, st, c->keys[i], &e);
    if (rc == 0 && e.kind != MVCC_OK)
        rc = set_error(c, &e);
    else if (rc == 0 && st->n_txns == 1)
        c->release_commit_ts = st->txns[0].commit_ts;
    mvcc_err_deinit(&e);
    if (rc == 0 && !st->lite && e.kind == MVCC_OK && st->more) {
        /* Back to a read phase (no latches) after this batch is written. */
        st->resolving = false;
        st->more = false;
        c->again = true;
        c->keys = NULL;
        c->n_keys = 0;
    }
    return rc;
}

static void cleanup(txn_cmd *c)
{
    resolve_state *st = c->state;
    if (st != NULL)
        tkv_buf_deinit(&st->next);
}

static const txn_cmd_def def = {
    .name = "KvResolveLock",
    .resp_desc = &kvrpcpb__resolve_lock_response__descriptor,
    .write = true,
    .process = process,
    .cleanup = cleanup,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__ResolveLockRequest *req = (const Kvrpcpb__ResolveLockRequest *)c->req;
    resolve_state *st = txn_arena_alloc(&c->arena, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    /* The arena frees the struct; cleanup() frees its buffer. */
    size_t n = req->n_txn_infos ? req->n_txn_infos : 1;
    st->txns = txn_arena_alloc(&c->arena, n * sizeof(txn_entry));
    if (st->txns == NULL)
        return -ENOMEM;
    if (req->n_txn_infos) {
        for (size_t i = 0; i < req->n_txn_infos; i++) {
            if (req->txn_infos[i] == NULL)
                return -EINVAL;
            st->txns[i] = (txn_entry){req->txn_infos[i]->txn, req->txn_infos[i]->status};
        }
    } else {
        st->txns[0] = (txn_entry){req->start_version, req->commit_version};
    }
    st->n_txns = n;
    st->lite = req->n_keys > 0;
    tkv_buf_init(&st->next);
    c->state = st;
    if (st->lite)
        return txn__set_keys(c, req->keys, req->n_keys);
    return 0;
}

int txn__kv_resolve_lock(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__ResolveLockRequest *r = (const Kvrpcpb__ResolveLockRequest *)req;
    return txn__submit(s, &def, req, r->context, r->start_version, setup, cb, ud);
}
