/*
 * scanner.c: forward and reverse range reads at a timestamp (TiKV's Scanner).
 *
 * Two iterators discover the user keys of the range: one over the lock CF (keys are
 * encoded user keys) and one over the write CF (encoded key + 8-byte timestamp). The next
 * key is the smaller (forward) or larger (reverse) of the two; its value comes from a point
 * read, so locks and visibility follow exactly the point-read rules. A key with only a
 * non-blocking lock and no visible version yields nothing. The lock cursor is positioned once
 * and then only moves on (lock_pass), so each deletion marker in the lock CF is walked once
 * per scan.
 */
#include "storage/mvcc/mvcc_int.h"

struct mvcc_scanner {
    mvcc_scan_opts o;
    mvcc_reader *reader;
    stor_iter *lock_it;
    stor_iter *write_it;
    bool started;
    bool have_cur;        /* cur holds a key the scan has passed */
    tkv_buf lower, upper; /* copies of the bounds */
    tkv_buf cur;          /* the user key last returned (encoded) */
    tkv_buf seek;         /* scratch */
    mvcc_scan_stats stats;
};

int mvcc_scanner_new(const stor_snap *snap, const mvcc_scan_opts *o, mvcc_scanner **out)
{
    mvcc_scanner *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->o = *o;
    tkv_buf_init(&s->lower);
    tkv_buf_init(&s->upper);
    tkv_buf_init(&s->cur);
    tkv_buf_init(&s->seek);
    int rc = tkv_buf_set(&s->lower, o->lower.data, o->lower.len);
    if (rc == 0)
        rc = tkv_buf_set(&s->upper, o->upper.data, o->upper.len);
    if (rc == 0)
        rc = mvcc_reader_new(snap, &s->reader);
    if (rc == 0)
        rc = stor_snap_iter_new(snap, ENG_CF_LOCK, tkv_buf_slice(&s->lower),
                                tkv_buf_slice(&s->upper), &s->lock_it);
    if (rc == 0)
        rc = stor_snap_iter_new(snap, ENG_CF_WRITE, tkv_buf_slice(&s->lower),
                                tkv_buf_slice(&s->upper), &s->write_it);
    if (rc != 0) {
        mvcc_scanner_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void mvcc_scanner_free(mvcc_scanner *s)
{
    if (s == NULL)
        return;
    stor_iter_free(s->lock_it);
    stor_iter_free(s->write_it);
    mvcc_reader_free(s->reader);
    tkv_buf_deinit(&s->lower);
    tkv_buf_deinit(&s->upper);
    tkv_buf_deinit(&s->cur);
    tkv_buf_deinit(&s->seek);
    tkv_free(s);
}

/* The user key under the write iterator (its key without the timestamp). */
static int write_user_key(stor_iter *it, tkv_slice *user)
{
    uint64_t ts;
    return txn_key_split_ts(stor_iter_key(it), user, &ts);
}

/* Lock-cursor moves, counted in the scan's statistics. */
static bool lock_seek(mvcc_scanner *s, tkv_slice key)
{
    s->stats.lock_seeks++;
    return s->o.desc ? stor_iter_seek_for_prev(s->lock_it, key) : stor_iter_seek(s->lock_it, key);
}

static bool lock_step(mvcc_scanner *s)
{
    s->stats.lock_steps++;
    return s->o.desc ? stor_iter_prev(s->lock_it) : stor_iter_next(s->lock_it);
}

/* Moves the lock cursor strictly past @cur in the scan's direction. The cursor is positioned
 * once at the start and only ever moves on from there: re-seeking it for every key would walk
 * again all the deletion markers 2PC leaves in the lock CF between @cur and the next live
 * lock, which made a scan quadratic in the number of markers. Normally the cursor sits at
 * @cur (the key came from the lock CF) or already past it, so one step or none suffices; it
 * is seeked to @cur only if it is behind, which the merge in mvcc_scanner_next never leaves. */
static void lock_pass(mvcc_scanner *s, tkv_slice cur)
{
    int sign = s->o.desc ? -1 : 1;
    if (!stor_iter_valid(s->lock_it))
        return;
    int c = tkv_slice_cmp(stor_iter_key(s->lock_it), cur) * sign;
    if (c < 0) {
        if (!lock_seek(s, cur))
            return;
        c = tkv_slice_cmp(stor_iter_key(s->lock_it), cur) * sign;
    }
    if (c == 0)
        lock_step(s);
}

/* Positions both iterators at the first candidate after (forward) or before (reverse) the
 * current key, or at the range's edge on the first call. */
static void advance(mvcc_scanner *s)
{
    tkv_slice cur = tkv_buf_slice(&s->cur);
    if (!s->started) {
        s->started = true;
        s->stats.lock_seeks++;
        if (s->o.desc) {
            stor_iter_seek_to_last(s->lock_it);
            stor_iter_seek_to_last(s->write_it);
        } else {
            stor_iter_seek_to_first(s->lock_it);
            stor_iter_seek_to_first(s->write_it);
        }
        return;
    }
    lock_pass(s, cur);
    if (s->o.desc) {
        /* Every versioned key of cur sorts after cur itself, and no other key's versions
         * sit between, so the last key <= cur belongs to a smaller user key. */
        stor_iter_seek_for_prev(s->write_it, cur);
        return;
    }
    /* The oldest possible version of cur is cur + ts 0 (8 bytes of 0xFF). */
    tkv_buf_reset(&s->seek);
    if (txn_key_versioned(&s->seek, cur, 0) != 0) {
        /* Out of memory: fall back to stepping over cur's versions one by one. */
        for (bool ok = stor_iter_seek(s->write_it, cur); ok; ok = stor_iter_next(s->write_it)) {
            tkv_slice u;
            if (write_user_key(s->write_it, &u) != 0 || !tkv_slice_eq(u, cur))
                break;
        }
        return;
    }
    if (stor_iter_seek(s->write_it, tkv_buf_slice(&s->seek)) &&
        tkv_slice_eq(stor_iter_key(s->write_it), tkv_buf_slice(&s->seek)))
        stor_iter_next(s->write_it);
}

int mvcc_scanner_next(mvcc_scanner *s, bool *done, tkv_buf *enc_key, tkv_buf *value, mvcc_err *e)
{
    *done = false;
    mvcc_err_reset(e);
    for (;;) {
        advance(s);
        int rc = stor_iter_status(s->lock_it);
        if (rc == 0)
            rc = stor_iter_status(s->write_it);
        if (rc != 0)
            return rc;
        bool lv = stor_iter_valid(s->lock_it), wv = stor_iter_valid(s->write_it);
        if (!lv && !wv) {
            *done = true;
            return 0;
        }
        tkv_slice lk = lv ? stor_iter_key(s->lock_it) : tkv_slice_of(NULL, 0), wk;
        if (wv && write_user_key(s->write_it, &wk) != 0)
            return TKV_ECORRUPT;
        tkv_slice next;
        if (!lv)
            next = wk;
        else if (!wv)
            next = lk;
        else if (s->o.desc)
            next = tkv_slice_cmp(lk, wk) > 0 ? lk : wk;
        else
            next = tkv_slice_cmp(lk, wk) < 0 ? lk : wk;
        /* The scan only moves on. A write key past cur's versions whose user key sorts at or
         * before cur is not an encoded key plus a timestamp (found by fuzz_mvcc_read: such a
         * key sent the scan back and forth forever). */
        int dir = tkv_slice_cmp(next, tkv_buf_slice(&s->cur));
        if (s->have_cur && (s->o.desc ? dir >= 0 : dir <= 0))
            return TKV_ECORRUPT;
        rc = tkv_buf_set(&s->cur, next.data, next.len);
        if (rc != 0)
            return rc;
        s->have_cur = true;
        bool found;
        rc = mvcc_point_get(s->reader, tkv_buf_slice(&s->cur), s->o.ts, &s->o.read, value, &found,
                            e);
        if (rc != 0)
            return rc;
        if (found || e->kind != MVCC_OK)
            return tkv_buf_set(enc_key, s->cur.data, s->cur.len);
    }
}

const mvcc_scan_stats *mvcc_scanner_stats(const mvcc_scanner *s)
{
    return &s->stats;
}
