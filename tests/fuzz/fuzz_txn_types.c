/*
 * fuzz_txn_types.c: Lock and Write records in TiKV's formats (src/storage/txn_types.h).
 *
 * Each input is used twice. As untrusted bytes it goes to both decoders: a decoder may
 * reject it (TKV_ECORRUPT, never a crash or an assertion); when it accepts, encoding what it
 * decoded and decoding that again must give the same record, and encoding is then stable
 * (the canonical form round-trips byte for byte). As a recipe it builds a valid lock and a
 * valid write (which fields are present and their values come from the input), which must
 * decode to exactly the fields that were encoded.
 */
#include "fuzz/fuzz.h"
#include "storage/txn_types.h"

static bool slice_eq(tkv_slice a, tkv_slice b)
{
    return tkv_slice_eq(a, b);
}

static bool lock_eq(const txn_lock *a, const txn_lock *b)
{
    if (a->type != b->type || !slice_eq(a->primary, b->primary) || a->start_ts != b->start_ts ||
        a->ttl != b->ttl || a->has_short_value != b->has_short_value ||
        (a->has_short_value && !slice_eq(a->short_value, b->short_value)) ||
        a->for_update_ts != b->for_update_ts || a->txn_size != b->txn_size ||
        a->min_commit_ts != b->min_commit_ts || a->use_async_commit != b->use_async_commit ||
        a->n_secondaries != b->n_secondaries || a->n_rollback_ts != b->n_rollback_ts ||
        a->last_change_ts != b->last_change_ts ||
        a->versions_to_last_change != b->versions_to_last_change ||
        a->txn_source != b->txn_source || a->is_locked_with_conflict != b->is_locked_with_conflict)
        return false;
    for (size_t i = 0; i < a->n_secondaries; i++) {
        if (!slice_eq(a->secondaries[i], b->secondaries[i]))
            return false;
    }
    for (size_t i = 0; i < a->n_rollback_ts; i++) {
        if (a->rollback_ts[i] != b->rollback_ts[i])
            return false;
    }
    return true;
}

static bool write_eq(const txn_write *a, const txn_write *b)
{
    return a->type == b->type && a->start_ts == b->start_ts &&
           a->has_short_value == b->has_short_value &&
           (!a->has_short_value || slice_eq(a->short_value, b->short_value)) &&
           a->has_overlapped_rollback == b->has_overlapped_rollback &&
           a->has_gc_fence == b->has_gc_fence && (!a->has_gc_fence || a->gc_fence == b->gc_fence) &&
           a->last_change_ts == b->last_change_ts &&
           a->versions_to_last_change == b->versions_to_last_change &&
           a->txn_source == b->txn_source;
}

/* Decoded -> encoded -> decoded is the same lock, and its encoding is stable. */
static void check_lock_bytes(tkv_slice in)
{
    txn_lock l;
    int rc = txn_lock_decode(in, &l);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT || rc == -ENOMEM);
    if (rc != 0) {
        FUZZ_CHECK(l.secondaries == NULL && l.rollback_ts == NULL);
        return;
    }
    tkv_buf e1, e2;
    tkv_buf_init(&e1);
    tkv_buf_init(&e2);
    FUZZ_CHECK(txn_lock_encode(&l, &e1) == 0);
    txn_lock l2;
    FUZZ_CHECK(txn_lock_decode(tkv_buf_slice(&e1), &l2) == 0);
    FUZZ_CHECK(lock_eq(&l, &l2));
    FUZZ_CHECK(txn_lock_encode(&l2, &e2) == 0);
    FUZZ_CHECK(slice_eq(tkv_buf_slice(&e1), tkv_buf_slice(&e2)));
    txn_lock_deinit(&l);
    txn_lock_deinit(&l2);
    tkv_buf_deinit(&e1);
    tkv_buf_deinit(&e2);
}

static void check_write_bytes(tkv_slice in)
{
    txn_write w;
    int rc = txn_write_decode(in, &w);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (rc != 0)
        return;
    tkv_buf e1, e2;
    tkv_buf_init(&e1);
    tkv_buf_init(&e2);
    FUZZ_CHECK(txn_write_encode(&w, &e1) == 0);
    txn_write w2;
    FUZZ_CHECK(txn_write_decode(tkv_buf_slice(&e1), &w2) == 0);
    FUZZ_CHECK(write_eq(&w, &w2));
    FUZZ_CHECK(txn_write_encode(&w2, &e2) == 0);
    FUZZ_CHECK(slice_eq(tkv_buf_slice(&e1), tkv_buf_slice(&e2)));
    tkv_buf_deinit(&e1);
    tkv_buf_deinit(&e2);
}

/* A cursor that hands out input bytes (zeros once it runs out). */
typedef struct cursor {
    const uint8_t *p;
    size_t n;
} cursor;

static uint8_t take8(cursor *c)
{
    if (c->n == 0)
        return 0;
    c->n--;
    return *c->p++;
}

static uint64_t take64(cursor *c)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | take8(c);
    return v;
}

static tkv_slice take_bytes(cursor *c, size_t max)
{
    size_t want = (size_t)take8(c) % (max + 1); /* TKV_MIN evaluates twice: take first */
    size_t len = TKV_MIN(want, c->n);
    tkv_slice s = tkv_slice_of(c->p, len);
    c->p += len;
    c->n -= len;
    return s;
}

/* Builds a valid lock from the input and checks its round trip field by field. */
static void check_built_lock(cursor *c)
{
    static const txn_lock_type types[4] = {TXN_LOCK_PUT, TXN_LOCK_DELETE, TXN_LOCK_LOCK,
                                           TXN_LOCK_PESSIMISTIC};
    uint8_t flags = take8(c);
    txn_lock l;
    txn_lock_init(&l, types[take8(c) % 4], take_bytes(c, 40), take64(c), take64(c));
    tkv_slice secs[4];
    uint64_t rts[4];
    if (flags & 1) {
        l.has_short_value = true;
        l.short_value = take_bytes(c, 255);
    }
    if (flags & 2)
        l.for_update_ts = take64(c);
    if (flags & 4)
        l.txn_size = take64(c);
    if (flags & 8)
        l.min_commit_ts = take64(c);
    if (flags & 16) {
        l.use_async_commit = true;
        l.n_secondaries = take8(c) % 5;
        for (size_t i = 0; i < l.n_secondaries; i++)
            secs[i] = take_bytes(c, 20);
        l.secondaries = secs;
    }
    if (flags & 32) {
        l.n_rollback_ts = take8(c) % 5;
        for (size_t i = 0; i < l.n_rollback_ts; i++)
            rts[i] = take64(c);
        l.rollback_ts = rts;
    }
    if (flags & 64) {
        l.last_change_ts = take64(c);
        l.versions_to_last_change = take64(c);
        l.txn_source = take64(c);
    }
    l.is_locked_with_conflict = (flags & 128) != 0;
    tkv_buf e;
    tkv_buf_init(&e);
    FUZZ_CHECK(txn_lock_encode(&l, &e) == 0);
    txn_lock d;
    FUZZ_CHECK(txn_lock_decode(tkv_buf_slice(&e), &d) == 0);
    /* Zero-valued optional numbers are not written, so they decode as absent: equal. */
    FUZZ_CHECK(lock_eq(&l, &d));
    txn_lock_deinit(&d);
    tkv_buf_deinit(&e);
}

static void check_built_write(cursor *c)
{
    static const txn_write_type types[4] = {TXN_WRITE_PUT, TXN_WRITE_DELETE, TXN_WRITE_LOCK,
                                            TXN_WRITE_ROLLBACK};
    uint8_t flags = take8(c);
    txn_write w;
    txn_write_init(&w, types[take8(c) % 4], take64(c));
    if (flags & 1) {
        w.has_short_value = true;
        w.short_value = take_bytes(c, 255);
    }
    w.has_overlapped_rollback = (flags & 2) != 0;
    if (flags & 4) {
        w.has_gc_fence = true;
        w.gc_fence = take64(c);
    }
    if (flags & 8) {
        w.last_change_ts = take64(c);
        w.versions_to_last_change = take64(c);
        w.txn_source = take64(c);
    }
    tkv_buf e;
    tkv_buf_init(&e);
    FUZZ_CHECK(txn_write_encode(&w, &e) == 0);
    txn_write d;
    FUZZ_CHECK(txn_write_decode(tkv_buf_slice(&e), &d) == 0);
    FUZZ_CHECK(write_eq(&w, &d));
    tkv_buf_deinit(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tkv_slice in = tkv_slice_of(data, size);
    check_lock_bytes(in);
    check_write_bytes(in);
    cursor c = {data, size};
    check_built_lock(&c);
    check_built_write(&c);
    return 0;
}
