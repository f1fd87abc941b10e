/*
 * tc_txn.c: optimistic transactions: begin, reads at the start timestamp with the
 * transaction's own writes merged in, the write buffer, iterators, rollback.
 *
 * Reads never see other transactions' uncommitted data: a store answers a read that meets a
 * lock with KeyError.locked, and the read resolves the lock (tc_lock.c) and retries; a live
 * lock is waited for with backoff (txnLock) within the operation's budget, after which the
 * read fails with TIKVC_ELOCKED.
 */
#include "client/tc_txn.h"

#include <stdio.h>
#include <stdlib.h>

#include "client/tc_int.h"

static int check_txn(const tikvc_txn *t)
{
    if (t == NULL)
        return tikvc__fail(TIKVC_EINVAL, "NULL transaction");
    if (t->state != TXN_ACTIVE)
        return tikvc__fail(TIKVC_ECLOSED, "the transaction is already finished");
    if (atomic_load(&t->c->closing))
        return tikvc__fail(TIKVC_ECLOSED, "the client is closing");
    return 0;
}

int tikvc_txn_begin(tikvc_client *c, tikvc_txn **out)
{
    if (c == NULL || out == NULL)
        return tikvc__fail(TIKVC_EINVAL, "tikvc_txn_begin: NULL argument");
    if (atomic_load(&c->closing))
        return tikvc__fail(TIKVC_ECLOSED, "the client is closing");
    tikvc_txn *t = tkv_calloc(1, sizeof(*t));
    if (t == NULL)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    t->c = c;
    if (pdc_tso(c->pd, 0, &t->start_ts) != 0) {
        tkv_free(t);
        return tikvc__fail(TIKVC_EUNAVAILABLE, "begin: no timestamp from PD: %s", pdc_errmsg(NULL));
    }
    t->state = TXN_ACTIVE;
    *out = t;
    return 0;
}

uint64_t tikvc_txn_start_ts(const tikvc_txn *t)
{
    return t != NULL ? t->start_ts : 0;
}

uint64_t tikvc_txn_commit_ts(const tikvc_txn *t)
{
    return t != NULL && t->state == TXN_COMMITTED ? t->commit_ts : 0;
}

void tikvc_txn_free(tikvc_txn *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_muts; i++) {
        tkv_buf_deinit(&t->muts[i].key);
        tkv_buf_deinit(&t->muts[i].value);
    }
    tkv_free(t->muts);
    tkv_free(t->resolved);
    tkv_free(t);
}

int tikvc_txn_rollback(tikvc_txn *t)
{
    int rc = check_txn(t);
    if (rc != 0)
        return rc;
    /* Writes are buffered until commit: nothing reached the stores. */
    t->state = TXN_ROLLED_BACK;
    return 0;
}

int tikvc_txn_commit(tikvc_txn *t)
{
    int rc = check_txn(t);
    if (rc != 0)
        return rc;
    return tikvc__txn_commit(t);
}

/* ---- write buffer ----------------------------------------------------------------------- */

size_t tikvc__txn_lower_bound(const tikvc_txn *t, tkv_slice key)
{
    size_t lo = 0, hi = t->n_muts;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tkv_slice_cmp(tkv_buf_slice(&t->muts[mid].key), key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int buffer(tikvc_txn *t, const void *key, size_t key_len, const void *value,
                  size_t value_len, bool del)
{
    int rc = check_txn(t);
    if (rc != 0)
        return rc;
    if ((key == NULL && key_len > 0) || (value == NULL && value_len > 0))
        return tikvc__fail(TIKVC_EINVAL, "NULL key or value");
    tkv_slice k = tkv_slice_of(key, key_len);
    size_t i = tikvc__txn_lower_bound(t, k);
    bool exists = i < t->n_muts && tkv_slice_eq(tkv_buf_slice(&t->muts[i].key), k);
    if (!exists) {
        if (tikvc__grow((void **)&t->muts, &t->cap_muts, t->n_muts + 1, sizeof(tc_mut)) != 0)
            return tikvc__fail(TIKVC_ENOMEM, "out of memory");
        tc_mut m = {.del = false};
        tkv_buf_init(&m.key);
        tkv_buf_init(&m.value);
        if (tkv_buf_set(&m.key, key, key_len) != 0)
            return tikvc__fail(TIKVC_ENOMEM, "out of memory");
        memmove(&t->muts[i + 1], &t->muts[i], (t->n_muts - i) * sizeof(tc_mut));
        t->muts[i] = m;
        t->n_muts++;
    }
    if (tkv_buf_set(&t->muts[i].value, value, value_len) != 0)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    t->muts[i].del = del;
    return 0;
}

int tikvc_txn_set(tikvc_txn *t, const void *key, size_t key_len, const void *value,
                  size_t value_len)
{
    return buffer(t, key, key_len, value, value_len, false);
}

int tikvc_txn_delete(tikvc_txn *t, const void *key, size_t key_len)
{
    return buffer(t, key, key_len, NULL, 0, true);
}

/* ---- reads ------------------------------------------------------------------------------ */

int tikvc__txn_add_resolved(tikvc_txn *t, uint64_t lock_ts)
{
    for (size_t i = 0; i < t->n_resolved; i++)
        if (t->resolved[i] == lock_ts)
            return 0;
    if (tikvc__grow((void **)&t->resolved, &t->cap_resolved, t->n_resolved + 1, sizeof(uint64_t)) !=
        0)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    t->resolved[t->n_resolved++] = lock_ts;
    return 0;
}

/* Resolves @lock for a read of @t; sleeps (within @bo) while its owner is alive. */
static int resolve_for_read(tikvc_txn *t, tc_backoff *bo, const Kvrpcpb__LockInfo *lock)
{
    uint64_t ttl_left;
    bool bypass;
    int rc = tikvc__resolve_lock(t->c, bo, &t->known, lock, t->start_ts, &ttl_left, &bypass);
    if (rc != 0)
        return rc;
    if (bypass)
        return tikvc__txn_add_resolved(t, lock->lock_version);
    if (ttl_left > 0)
        return tikvc__bo_sleep(t->c, bo, TC_BO_TXN_LOCK, "a live transaction holds the lock");
    return 0;
}

int tikvc__txn_read(tikvc_txn *t, tc_kop *k)
{
    tc_backoff bo;
    tikvc__bo_init(&bo, t->c);
    for (;;) {
        k->start_ts = t->start_ts;
        k->op.resolved_locks = t->resolved;
        k->op.n_resolved_locks = t->n_resolved;
        int rc = tikvc__kop_run(k);
        if (rc != 0)
            return rc;
        /* Locks met: resolve each, then read the locked keys again. */
        bool again = false;
        for (size_t i = 0; i < k->n; i++) {
            Kvrpcpb__KeyError *e = k->items[i].err;
            if (e == NULL)
                continue;
            if (e->locked == NULL)
                return tikvc__key_error(e, "read");
            rc = resolve_for_read(t, &bo, e->locked);
            if (rc != 0)
                return rc;
            rpc_msg_free(&e->base);
            k->items[i].err = NULL;
            again = true;
        }
        if (!again)
            return 0;
        /* Ask again for the whole set: the op reuses its items (answered ones just repeat). */
        k->op.rc = 0;
        k->op.errmsg[0] = '\0';
    }
}

int tikvc_txn_get(tikvc_txn *t, const void *key, size_t key_len, tikvc_buf *value, bool *found)
{
    int rc = check_txn(t);
    if (rc != 0)
        return rc;
    if (value == NULL || found == NULL || (key == NULL && key_len > 0))
        return tikvc__fail(TIKVC_EINVAL, "tikvc_txn_get: NULL argument");
    tkv_slice k1 = tkv_slice_of(key, key_len);
    size_t i = tikvc__txn_lower_bound(t, k1);
    if (i < t->n_muts && tkv_slice_eq(tkv_buf_slice(&t->muts[i].key), k1)) {
        *found = !t->muts[i].del;
        if (*found)
            return tikvc__give_buf(&t->muts[i].value, value);
        tikvc_buf_free(value);
        return 0;
    }
    tc_kop *k = NULL;
    rc = tikvc__kop_new(t->c, &tc_kc_kv_get, &t->c->txn_cache, 1, &k);
    if (rc == 0)
        rc = tikvc__kop_set(k, 0, k1, tkv_slice_of(NULL, 0), false);
    if (rc == 0)
        rc = tikvc__txn_read(t, k);
    if (rc == 0) {
        *found = k->items[0].found;
        if (*found)
            rc = tikvc__give_buf(&k->items[0].out, value);
        else
            tikvc_buf_free(value);
    }
    tikvc__kop_free(k);
    return rc;
}

int tikvc_txn_batch_get(tikvc_txn *t, const tikvc_slice *keys, size_t n, tikvc_kvs *out)
{
    int rc = check_txn(t);
    if (rc != 0)
        return rc;
    if (out == NULL || (n > 0 && keys == NULL))
        return tikvc__fail(TIKVC_EINVAL, "tikvc_txn_batch_get: NULL argument");
    tc_kop *k = NULL;
    rc = tikvc__kop_new(t->c, &tc_kc_kv_batch_get, &t->c->txn_cache, n, &k);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = tikvc__kop_set(k, i, tkv_slice_of(keys[i].data, keys[i].len), tkv_slice_of(NULL, 0),
                            false);
    if (rc == 0)
        rc = tikvc__txn_read(t, k);
    /* The transaction's own writes win over what the stores hold. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        tkv_slice key = k->items[i].key;
        size_t j = tikvc__txn_lower_bound(t, key);
        if (j < t->n_muts && tkv_slice_eq(tkv_buf_slice(&t->muts[j].key), key)) {
            k->items[i].found = !t->muts[j].del;
            if (tkv_buf_set(&k->items[i].out, t->muts[j].value.data, t->muts[j].value.len) != 0)
                rc = tikvc__fail(TIKVC_ENOMEM, "out of memory");
        }
    }
    if (rc == 0)
        rc = tikvc__found_pairs(k, out);
    tikvc__kop_free(k);
    return rc;
}

/* ---- iterators -------------------------------------------------------------------------- */

struct tikvc_iter {
    tikvc_txn *t;
    bool reverse;
    tkv_buf lower, upper; /* the range */
    /* snapshot side: a batch read from the stores and where the next one starts */
    tikvc_kvs batch;
    size_t bi;
    tkv_buf snap_cursor; /* forward: next key; reverse: exclusive upper bound */
    bool snap_cursor_inf;
    bool snap_done;
    /* buffer side: the next buffered write in order */
    size_t mi; /* forward: index; reverse: one past */
    /* the current pair */
    bool valid;
    tkv_slice key, value;
    tc_backoff bo;
};

#define ITER_BATCH 256

/* Reads the next snapshot batch (empty when the snapshot side is done). */
static int fetch(tikvc_iter *it)
{
    tikvc_kvs_free(&it->batch);
    it->bi = 0;
    while (!it->snap_done) {
        tkv_slice lower = it->reverse ? tkv_buf_slice(&it->lower) : tkv_buf_slice(&it->snap_cursor);
        tkv_slice upper = !it->reverse          ? tkv_buf_slice(&it->upper)
                          : it->snap_cursor_inf ? tkv_slice_of(NULL, 0)
                                                : tkv_buf_slice(&it->snap_cursor);
        tc_scan *sc = NULL;
        int rc = tikvc__scan_new(it->t->c, TC_SCAN_TXN, lower, upper, ITER_BATCH,
                                 it->reverse ? TIKVC_SCAN_REVERSE : 0, &sc);
        if (rc != 0)
            return rc;
        sc->batch = ITER_BATCH;
        sc->version = it->t->start_ts;
        sc->op.resolved_locks = it->t->resolved;
        sc->op.n_resolved_locks = it->t->n_resolved;
        rc = tikvc__scan_run(sc);
        if (rc == 0) {
            it->batch = sc->out;
            memset(&sc->out, 0, sizeof(sc->out));
            it->snap_done = sc->exhausted;
            it->snap_cursor_inf = sc->reverse && sc->cursor_inf;
            if (tkv_buf_set(&it->snap_cursor, sc->cursor.data, sc->cursor.len) != 0)
                rc = tikvc__fail(TIKVC_ENOMEM, "out of memory");
        }
        Kvrpcpb__LockInfo *lock = rc == 0 && sc->lock != NULL ? sc->lock->locked : NULL;
        if (lock != NULL)
            rc = resolve_for_read(it->t, &it->bo, lock);
        tikvc__scan_free(sc);
        if (rc != 0 || it->batch.len > 0 || lock == NULL)
            return rc;
    }
    return 0;
}

/* Positions on the next pair of the merge (snapshot batch vs buffered writes). */
static int settle(tikvc_iter *it)
{
    tikvc_txn *t = it->t;
    for (;;) {
        if (it->bi == it->batch.len && !it->snap_done) {
            int rc = fetch(it);
            if (rc != 0)
                return rc;
        }
        tikvc_kv *s = it->bi < it->batch.len ? &it->batch.items[it->bi] : NULL;
        tc_mut *m = NULL;
        if (!it->reverse && it->mi < t->n_muts) {
            m = &t->muts[it->mi];
            if (it->upper.len > 0 &&
                tkv_slice_cmp(tkv_buf_slice(&m->key), tkv_buf_slice(&it->upper)) >= 0)
                m = NULL;
        } else if (it->reverse && it->mi > 0) {
            m = &t->muts[it->mi - 1];
            if (tkv_slice_cmp(tkv_buf_slice(&m->key), tkv_buf_slice(&it->lower)) < 0)
                m = NULL;
        }
        if (s == NULL && m == NULL) {
            it->valid = false;
            return 0;
        }
        int c = 0;
        if (s != NULL && m != NULL) {
            c = tkv_slice_cmp(tkv_slice_of(s->key.data, s->key.len), tkv_buf_slice(&m->key));
            if (it->reverse)
                c = -c;
        }
        bool take_mem = m != NULL && (s == NULL || c >= 0);
        if (take_mem) {
            if (s != NULL && c == 0)
                it->bi++; /* the buffered write hides the stored value */
            if (it->reverse)
                it->mi--;
            else
                it->mi++;
            if (m->del)
                continue;
            it->key = tkv_buf_slice(&m->key);
            it->value = tkv_buf_slice(&m->value);
        } else {
            it->bi++;
            it->key = tkv_slice_of(s->key.data, s->key.len);
            it->value = tkv_slice_of(s->value.data, s->value.len);
        }
        it->valid = true;
        return 0;
    }
}

int tikvc_txn_iter(tikvc_txn *t, const void *start, size_t start_len, const void *end,
                   size_t end_len, unsigned flags, tikvc_iter **out)
{
    int rc = check_txn(t);
    if (rc != 0)
        return rc;
    if (out == NULL || (start == NULL && start_len > 0) || (end == NULL && end_len > 0))
        return tikvc__fail(TIKVC_EINVAL, "tikvc_txn_iter: NULL argument");
    tikvc_iter *it = tkv_calloc(1, sizeof(*it));
    if (it == NULL)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    it->t = t;
    it->reverse = (flags & TIKVC_SCAN_REVERSE) != 0;
    tikvc__bo_init(&it->bo, t->c);
    tkv_buf_init(&it->lower);
    tkv_buf_init(&it->upper);
    tkv_buf_init(&it->snap_cursor);
    if (tkv_buf_set(&it->lower, start, start_len) != 0 ||
        tkv_buf_set(&it->upper, end, end_len) != 0 ||
        tkv_buf_set(&it->snap_cursor, it->reverse ? end : start,
                    it->reverse ? end_len : start_len) != 0) {
        tikvc_iter_free(it);
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    }
    it->snap_cursor_inf = it->reverse && end_len == 0;
    if (end_len > 0 &&
        tkv_slice_cmp(tkv_slice_of(start, start_len), tkv_slice_of(end, end_len)) >= 0)
        it->snap_done = true;
    if (!it->reverse) {
        it->mi = tikvc__txn_lower_bound(t, tkv_slice_of(start, start_len));
    } else {
        it->mi = end_len == 0 ? t->n_muts : tikvc__txn_lower_bound(t, tkv_slice_of(end, end_len));
    }
    if (it->snap_done) {
        /* An empty range: nothing from either side. */
        it->mi = it->reverse ? 0 : t->n_muts;
    }
    rc = settle(it);
    if (rc != 0) {
        tikvc_iter_free(it);
        return rc;
    }
    *out = it;
    return 0;
}

bool tikvc_iter_valid(const tikvc_iter *it)
{
    return it != NULL && it->valid;
}

tikvc_slice tikvc_iter_key(const tikvc_iter *it)
{
    tikvc_slice s = {it->key.data, it->key.len};
    return s;
}

tikvc_slice tikvc_iter_value(const tikvc_iter *it)
{
    tikvc_slice s = {it->value.data, it->value.len};
    return s;
}

int tikvc_iter_next(tikvc_iter *it)
{
    if (it == NULL || !it->valid)
        return tikvc__fail(TIKVC_EINVAL, "the iterator is not on a pair");
    return settle(it);
}

void tikvc_iter_free(tikvc_iter *it)
{
    if (it == NULL)
        return;
    tikvc_kvs_free(&it->batch);
    tkv_buf_deinit(&it->lower);
    tkv_buf_deinit(&it->upper);
    tkv_buf_deinit(&it->snap_cursor);
    tkv_free(it);
}

int tikvc_txn_scan(tikvc_txn *t, const void *start, size_t start_len, const void *end,
                   size_t end_len, size_t limit, unsigned flags, tikvc_kvs *out)
{
    if (out == NULL)
        return tikvc__fail(TIKVC_EINVAL, "tikvc_txn_scan: NULL output");
    tikvc_iter *it = NULL;
    int rc = tikvc_txn_iter(t, start, start_len, end, end_len, flags, &it);
    tikvc_kvs res = {0};
    size_t cap = 0;
    while (rc == 0 && tikvc_iter_valid(it) && res.len < limit) {
        if (tikvc__grow((void **)&res.items, &cap, res.len + 1, sizeof(tikvc_kv)) != 0) {
            rc = tikvc__fail(TIKVC_ENOMEM, "out of memory");
            break;
        }
        tikvc_kv *kv = &res.items[res.len];
        kv->key.data = malloc(it->key.len ? it->key.len : 1);
        kv->value.data = malloc(it->value.len ? it->value.len : 1);
        if (kv->key.data == NULL || kv->value.data == NULL) {
            free(kv->key.data);
            free(kv->value.data);
            rc = tikvc__fail(TIKVC_ENOMEM, "out of memory");
            break;
        }
        if (it->key.len > 0)
            memcpy(kv->key.data, it->key.data, it->key.len);
        kv->key.len = it->key.len;
        if (it->value.len > 0)
            memcpy(kv->value.data, it->value.data, it->value.len);
        kv->value.len = it->value.len;
        res.len++;
        if (res.len < limit)
            rc = tikvc_iter_next(it);
    }
    tikvc_iter_free(it);
    if (rc != 0) {
        tikvc_kvs_free(&res);
        return rc;
    }
    tikvc_kvs_free(out);
    *out = res;
    return 0;
}
