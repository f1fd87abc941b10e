/*
 * reader.c: point lookups on the lock and write column families (TiKV's MvccReader).
 */
#include "storage/mvcc/mvcc_int.h"

struct mvcc_reader {
    const stor_snap *snap;
    stor_iter *write_it; /* over the whole region, created on first use */
    tkv_buf kbuf;        /* scratch for versioned keys */
    tkv_buf vbuf;        /* scratch for lock bytes */
};

int mvcc_reader_new(const stor_snap *snap, mvcc_reader **out)
{
    mvcc_reader *r = tkv_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->snap = snap;
    tkv_buf_init(&r->kbuf);
    tkv_buf_init(&r->vbuf);
    *out = r;
    return 0;
}

void mvcc_reader_free(mvcc_reader *r)
{
    if (r == NULL)
        return;
    stor_iter_free(r->write_it);
    tkv_buf_deinit(&r->kbuf);
    tkv_buf_deinit(&r->vbuf);
    tkv_free(r);
}

const stor_snap *mvcc_reader_snap(const mvcc_reader *r)
{
    return r->snap;
}

int mvcc_load_lock(mvcc_reader *r, tkv_slice enc_key, txn_lock_holder *h, bool *found)
{
    int rc = stor_snap_get(r->snap, ENG_CF_LOCK, enc_key, &r->vbuf, found);
    if (rc != 0 || !*found)
        return rc;
    rc = txn_lock_holder_set(h, tkv_buf_slice(&r->vbuf));
    if (rc != 0)
        *found = false;
    return rc;
}

int mvcc_seek_write(mvcc_reader *r, tkv_slice enc_key, uint64_t ts, uint64_t *commit_ts,
                    txn_write *w, tkv_buf *wbuf, bool *found)
{
    *found = false;
    if (r->write_it == NULL) {
        int rc = stor_snap_iter_new(r->snap, ENG_CF_WRITE, tkv_slice_of(NULL, 0),
                                    tkv_slice_of(NULL, 0), &r->write_it);
        if (rc != 0)
            return rc;
    }
    tkv_buf_reset(&r->kbuf);
    int rc = txn_key_versioned(&r->kbuf, enc_key, ts);
    if (rc != 0)
        return rc;
    if (!stor_iter_seek(r->write_it, tkv_buf_slice(&r->kbuf)))
        return stor_iter_status(r->write_it);
    tkv_slice k = stor_iter_key(r->write_it), user;
    uint64_t cts;
    if (txn_key_split_ts(k, &user, &cts) != 0 || !tkv_slice_eq(user, enc_key))
        return 0;
    tkv_slice v = stor_iter_value(r->write_it);
    rc = tkv_buf_set(wbuf, v.data, v.len);
    if (rc != 0)
        return rc;
    rc = txn_write_decode(tkv_buf_slice(wbuf), w);
    if (rc != 0)
        return rc;
    *commit_ts = cts;
    *found = true;
    return 0;
}

int mvcc_load_data(mvcc_reader *r, tkv_slice enc_key, const txn_write *w, tkv_buf *value)
{
    if (w->has_short_value)
        return tkv_buf_set(value, w->short_value.data, w->short_value.len);
    tkv_buf_reset(&r->kbuf);
    int rc = txn_key_versioned(&r->kbuf, enc_key, w->start_ts);
    if (rc != 0)
        return rc;
    bool found;
    rc = stor_snap_get(r->snap, ENG_CF_DEFAULT, tkv_buf_slice(&r->kbuf), value, &found);
    if (rc == 0 && !found)
        rc = TKV_ENOTFOUND;
    return rc;
}

int mvcc__find_visible(mvcc_reader *r, tkv_slice enc_key, uint64_t ts, txn_write *w, tkv_buf *wbuf,
                       bool *found)
{
    *found = false;
    uint64_t seek_ts = ts;
    for (;;) {
        uint64_t commit_ts;
        bool got;
        int rc = mvcc_seek_write(r, enc_key, seek_ts, &commit_ts, w, wbuf, &got);
        if (rc != 0 || !got)
            return rc;
        switch (w->type) {
        case TXN_WRITE_PUT:
            /* A Put whose newer version was collected by GC is stale (TiKV's GC fence). */
            *found = txn_write_check_gc_fence(w, ts);
            return 0;
        case TXN_WRITE_DELETE:
            return 0;
        case TXN_WRITE_LOCK:
        case TXN_WRITE_ROLLBACK:
            break;
        }
        if (commit_ts == 0)
            return 0;
        seek_ts = commit_ts - 1;
    }
}

int mvcc_get(mvcc_reader *r, tkv_slice enc_key, uint64_t ts, tkv_buf *value, bool *found)
{
    txn_write w;
    tkv_buf wbuf;
    tkv_buf_init(&wbuf);
    int rc = mvcc__find_visible(r, enc_key, ts, &w, &wbuf, found);
    if (rc == 0 && *found)
        rc = mvcc_load_data(r, enc_key, &w, value);
    tkv_buf_deinit(&wbuf);
    return rc;
}

int mvcc_exists(mvcc_reader *r, tkv_slice enc_key, uint64_t ts, bool *found)
{
    txn_write w;
    tkv_buf wbuf;
    tkv_buf_init(&wbuf);
    int rc = mvcc__find_visible(r, enc_key, ts, &w, &wbuf, found);
    tkv_buf_deinit(&wbuf);
    return rc;
}

void mvcc_commit_record_init(mvcc_commit_record *c)
{
    memset(c, 0, sizeof(*c));
    tkv_buf_init(&c->wbuf);
    tkv_buf_init(&c->obuf);
}

void mvcc_commit_record_deinit(mvcc_commit_record *c)
{
    tkv_buf_deinit(&c->wbuf);
    tkv_buf_deinit(&c->obuf);
}

int mvcc_get_txn_commit_record(mvcc_reader *r, tkv_slice enc_key, uint64_t start_ts,
                               mvcc_commit_record *c)
{
    c->kind = MVCC_COMMIT_NONE;
    c->has_overlapped = false;
    uint64_t seek_ts = TXN_TS_MAX, gc_fence = 0;
    for (;;) {
        uint64_t commit_ts;
        bool found;
        int rc = mvcc_seek_write(r, enc_key, seek_ts, &commit_ts, &c->write, &c->wbuf, &found);
        if (rc != 0 || !found)
            return rc;
        if (c->write.start_ts == start_ts) {
            c->kind = MVCC_COMMIT_SINGLE;
            c->commit_ts = commit_ts;
            return 0;
        }
        if (commit_ts == start_ts) {
            /* Another transaction committed at our start_ts: its record stands where our
             * rollback record would go. */
            if (c->write.has_overlapped_rollback) {
                c->kind = MVCC_COMMIT_OVERLAPPED_ROLLBACK;
                c->commit_ts = commit_ts;
                return 0;
            }
            rc = tkv_buf_set(&c->obuf, c->wbuf.data, c->wbuf.len);
            if (rc == 0)
                rc = txn_write_decode(tkv_buf_slice(&c->obuf), &c->overlapped);
            if (rc != 0)
                return rc;
            c->has_overlapped = true;
            c->overlapped_gc_fence = gc_fence;
            return 0;
        }
        if (commit_ts < start_ts || commit_ts == 0)
            return 0;
        if (c->write.type == TXN_WRITE_PUT || c->write.type == TXN_WRITE_DELETE)
            gc_fence = commit_ts;
        seek_ts = commit_ts - 1;
    }
}

int mvcc_scan_locks(mvcc_reader *r, tkv_slice start, tkv_slice end, uint64_t max_ts, size_t limit,
                    mvcc_lock_fn fn, void *ud)
{
    stor_iter *it;
    int rc = stor_snap_iter_new(r->snap, ENG_CF_LOCK, start, end, &it);
    if (rc != 0)
        return rc;
    size_t n = 0;
    txn_lock lock;
    for (bool ok = stor_iter_seek_to_first(it); ok; ok = stor_iter_next(it)) {
        rc = txn_lock_decode(stor_iter_value(it), &lock);
        if (rc != 0)
            break;
        if (max_ts == 0 || lock.start_ts <= max_ts) {
            rc = fn(ud, stor_iter_key(it), &lock);
            n++;
        }
        txn_lock_deinit(&lock);
        if (rc != 0 || (limit != 0 && n >= limit))
            break;
    }
    if (rc == 0)
        rc = stor_iter_status(it);
    stor_iter_free(it);
    return rc == 1 ? 0 : rc;
}
