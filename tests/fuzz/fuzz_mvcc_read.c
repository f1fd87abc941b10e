/*
 * fuzz_mvcc_read.c: MVCC reads (src/storage/mvcc: the point getter, the scanner and the
 * lock-ignoring reader) over an engine whose lock, write and default column families hold
 * records from the input.
 *
 * The input lays out, for a few user keys, an optional lock, a list of write records at
 * commit timestamps and default-CF values, each either a well-formed record built from the
 * input's choices (any type, timestamps, short or long values, min_commit_ts, async commit,
 * GC fences, missing default values) or raw bytes from the input; in "junk" mode it also adds
 * keys that are not MVCC keys at all. Then it reads every key at several timestamps with
 * several options (SI, RC, RCCheckTS; bypassed and read-through locks; key only), by point
 * get, by forward and reverse scans, and by the lock-ignoring read. Checked:
 *   - decode errors surface as TKV_ECORRUPT, never an assertion or a crash;
 *   - without junk keys, every answer is exactly what the read rules of mvcc.h give for the
 *     records as laid out (a model in this file): a blocking lock (KeyIsLocked, or a write
 *     conflict under RCCheckTS, except the primary read at the maximum timestamp), the value
 *     of the newest visible Put (from the lock for read-through locks; absent past a GC fence
 *     or after a Delete; Lock and Rollback records skipped), DefaultNotFound when its value
 *     is missing, or TKV_ECORRUPT exactly when an undecodable record is consulted;
 *   - scans return keys in order, each once, with the point get's answer for it.
 */
#include <stdio.h>

#include "base/keys.h"
#include "fuzz/fuzz.h"
#include "storage/mvcc/mvcc.h"

#define NKEYS 5
#define NW    6

static const char *const user_keys[NKEYS] = {"a", "b", "bb", "c", "d"};

/* What the input put under one key. */
typedef struct wrec {
    uint64_t commit_ts;
    bool valid; /* decodes */
    txn_write w;
    tkv_buf bytes; /* the record's bytes (w's slices point here) */
} wrec;

typedef struct krec {
    bool has_lock, lock_valid;
    txn_lock lock;
    tkv_buf lock_bytes;
    wrec w[NW];
    size_t nw;
    /* Default values present, by start_ts, with their bytes. */
    uint64_t dts[NW + 1];
    tkv_buf dval[NW + 1];
    size_t nd;
} krec;

typedef struct fx {
    krec k[NKEYS];
    bool junk;
    eng_db *db;
    stor_kv *kv;
    stor_snap *snap;
} fx;

static void put(eng_batch *b, eng_cf cf, tkv_slice enc_key, bool versioned, uint64_t ts,
                tkv_slice value)
{
    tkv_buf k;
    tkv_buf_init(&k);
    FUZZ_CHECK(tkv_buf_append_u8(&k, TKV_KEYS_DATA_PREFIX) == 0);
    if (versioned)
        FUZZ_CHECK(txn_key_versioned(&k, enc_key, ts) == 0);
    else
        FUZZ_CHECK(tkv_buf_append(&k, enc_key.data, enc_key.len) == 0);
    FUZZ_CHECK(eng_batch_put(b, cf, tkv_buf_slice(&k), value) == 0);
    tkv_buf_deinit(&k);
}

static void enc(const char *user, tkv_buf *out)
{
    tkv_buf_init(out);
    FUZZ_CHECK(txn_key_encode(out, tkv_slice_str(user)) == 0);
}

/* Fills a value of @len bytes from the input (or a pattern past its end). */
static void value_of(fuzz_in *in, size_t len, tkv_buf *out)
{
    FUZZ_CHECK(tkv_buf_reserve(out, len) == 0);
    uint8_t seed = fuzz_u8(in);
    for (size_t i = 0; i < len; i++)
        out->data[i] = (uint8_t)(seed + i * 7);
    out->len = len;
}

/* Builds one record: mostly well formed from choices, sometimes raw bytes. Returns whether
 * it decodes (then the decoded form is in @l / @w, borrowing @bytes). */
static bool gen_lock(fuzz_in *in, uint8_t keyi, txn_lock *l, tkv_buf *bytes)
{
    tkv_buf_init(bytes);
    uint8_t b = fuzz_u8(in);
    if (b % 8 == 0) {
        size_t n;
        const uint8_t *p = fuzz_bytes(in, 40, &n);
        FUZZ_CHECK(tkv_buf_set(bytes, p, n) == 0);
    } else {
        static const txn_lock_type types[] = {TXN_LOCK_PUT, TXN_LOCK_DELETE, TXN_LOCK_LOCK,
                                              TXN_LOCK_PESSIMISTIC};
        const char *primary = user_keys[(keyi + (b >> 6)) % NKEYS];
        txn_lock x;
        txn_lock_init(&x, types[(b >> 1) % 4], tkv_slice_str(primary), 1 + fuzz_below(in, 30),
                      3000);
        tkv_buf sv;
        tkv_buf_init(&sv);
        if (b & 8) {
            value_of(in, fuzz_below(in, 16), &sv);
            x.has_short_value = true;
            x.short_value = tkv_buf_slice(&sv);
        }
        if (b & 16)
            x.min_commit_ts = x.start_ts + fuzz_below(in, 16);
        if (b & 32)
            x.use_async_commit = true;
        FUZZ_CHECK(txn_lock_encode(&x, bytes) == 0);
        tkv_buf_deinit(&sv);
        if (fuzz_u8(in) % 16 == 0 && bytes->len > 1)
            bytes->len = 1 + fuzz_below(in, bytes->len - 1); /* cut short */
    }
    int rc = txn_lock_decode(tkv_buf_slice(bytes), l);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    return rc == 0;
}

static bool gen_write(fuzz_in *in, uint64_t commit_ts, txn_write *w, tkv_buf *bytes)
{
    tkv_buf_init(bytes);
    uint8_t b = fuzz_u8(in);
    if (b % 8 == 0) {
        size_t n;
        const uint8_t *p = fuzz_bytes(in, 40, &n);
        FUZZ_CHECK(tkv_buf_set(bytes, p, n) == 0);
    } else {
        static const txn_write_type types[] = {TXN_WRITE_PUT, TXN_WRITE_PUT, TXN_WRITE_DELETE,
                                               TXN_WRITE_LOCK, TXN_WRITE_ROLLBACK};
        txn_write x;
        uint64_t back = fuzz_below(in, 4);
        txn_write_init(&x, types[(b >> 1) % 5], commit_ts > back ? commit_ts - back : 0);
        tkv_buf sv;
        tkv_buf_init(&sv);
        if (b & 16) {
            value_of(in, fuzz_below(in, 16), &sv);
            x.has_short_value = true;
            x.short_value = tkv_buf_slice(&sv);
        }
        if (b & 32) {
            x.has_gc_fence = true;
            x.gc_fence = fuzz_below(in, 40);
        }
        if (b & 64)
            x.has_overlapped_rollback = true;
        FUZZ_CHECK(txn_write_encode(&x, bytes) == 0);
        tkv_buf_deinit(&sv);
        if (fuzz_u8(in) % 16 == 0 && bytes->len > 1)
            bytes->len = 1 + fuzz_below(in, bytes->len - 1);
    }
    int rc = txn_write_decode(tkv_buf_slice(bytes), w);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    return rc == 0;
}

static void build(fx *f, fuzz_in *in)
{
    eng_batch *b;
    FUZZ_CHECK(eng_batch_new(f->db, &b) == 0);
    for (int i = 0; i < NKEYS; i++) {
        krec *k = &f->k[i];
        tkv_buf ek;
        enc(user_keys[i], &ek);
        uint8_t m = fuzz_u8(in);
        tkv_buf_init(&k->lock_bytes);
        if (m & 1) {
            k->has_lock = true;
            k->lock_valid = gen_lock(in, (uint8_t)i, &k->lock, &k->lock_bytes);
            put(b, ENG_CF_LOCK, tkv_buf_slice(&ek), false, 0, tkv_buf_slice(&k->lock_bytes));
        }
        size_t nw = (m >> 1) % (NW + 1);
        uint64_t ts = 40;
        for (size_t j = 0; j < nw; j++) {
            ts -= 1 + fuzz_below(in, 6); /* newest first, distinct commit timestamps */
            if (ts == 0 || ts > 40)
                break;
            wrec *w = &k->w[k->nw++];
            w->commit_ts = ts;
            w->valid = gen_write(in, ts, &w->w, &w->bytes);
            put(b, ENG_CF_WRITE, tkv_buf_slice(&ek), true, ts, tkv_buf_slice(&w->bytes));
        }
        /* Default values: for long Puts (sometimes missing), for a Put lock, and strays. */
        for (size_t j = 0; j <= k->nw && k->nd <= NW; j++) {
            uint64_t sts;
            if (j < k->nw) {
                const wrec *w = &k->w[j];
                if (!w->valid || w->w.type != TXN_WRITE_PUT || w->w.has_short_value)
                    continue;
                sts = w->w.start_ts;
            } else {
                if (!k->has_lock || !k->lock_valid)
                    continue;
                sts = k->lock.start_ts;
            }
            if (fuzz_u8(in) % 8 == 0)
                continue; /* missing */
            bool dup = false;
            for (size_t d = 0; d < k->nd; d++)
                dup = dup || k->dts[d] == sts;
            if (dup)
                continue;
            tkv_buf_init(&k->dval[k->nd]);
            value_of(in, 256 + fuzz_below(in, 8), &k->dval[k->nd]);
            k->dts[k->nd] = sts;
            put(b, ENG_CF_DEFAULT, tkv_buf_slice(&ek), true, sts, tkv_buf_slice(&k->dval[k->nd]));
            k->nd++;
        }
        tkv_buf_deinit(&ek);
    }
    if (f->junk) {
        /* Keys that are not MVCC keys: short write keys, lock keys that do not decode. */
        size_t n = 1 + fuzz_below(in, 4);
        for (size_t i = 0; i < n; i++) {
            size_t len;
            const uint8_t *p = fuzz_bytes(in, 12, &len);
            uint8_t kb[16];
            kb[0] = TKV_KEYS_DATA_PREFIX;
            memcpy(kb + 1, p, len);
            size_t vlen;
            const uint8_t *v = fuzz_bytes(in, 12, &vlen);
            FUZZ_CHECK(eng_batch_put(b, (eng_cf)(1 + fuzz_below(in, 2)), tkv_slice_of(kb, 1 + len),
                                     tkv_slice_of(v, vlen)) == 0);
        }
    }
    FUZZ_CHECK(eng_write(f->db, b, false) == 0);
    eng_batch_free(b);
}

/* ---- the model of mvcc.h's read rules -------------------------------------------------- */

typedef enum outcome {
    O_ABSENT,
    O_VALUE,
    O_LOCKED,
    O_CONFLICT,
    O_DEFAULT_NOT_FOUND,
    O_CORRUPT,
} outcome;

typedef struct expect {
    outcome o;
    tkv_slice value;
} expect;

static bool ts_in(const uint64_t *a, size_t n, uint64_t ts)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] == ts)
            return true;
    return false;
}

static const tkv_buf *default_at(const krec *k, uint64_t sts)
{
    for (size_t d = 0; d < k->nd; d++)
        if (k->dts[d] == sts)
            return &k->dval[d];
    return NULL;
}

/* A Put's value: short, or from the default CF. */
static expect value_of_put(const krec *k, bool has_short, tkv_slice sv, uint64_t sts, bool key_only)
{
    expect e = {O_VALUE, tkv_slice_of(NULL, 0)};
    if (key_only)
        return e;
    if (has_short) {
        e.value = sv;
        return e;
    }
    const tkv_buf *d = default_at(k, sts);
    if (d == NULL)
        e.o = O_DEFAULT_NOT_FOUND;
    else
        e.value = tkv_buf_slice(d);
    return e;
}

static expect model(const krec *k, int ki, uint64_t ts, const mvcc_read_opts *o, bool use_locks)
{
    expect e = {O_ABSENT, tkv_slice_of(NULL, 0)};
    if (use_locks && o->iso != MVCC_ISO_RC && k->has_lock) {
        if (!k->lock_valid)
            return (expect){O_CORRUPT, e.value};
        const txn_lock *l = &k->lock;
        bool blocks = false;
        bool conflict = false;
        if ((l->type == TXN_LOCK_PUT || l->type == TXN_LOCK_DELETE) &&
            !ts_in(o->bypass_locks, o->n_bypass_locks, l->start_ts)) {
            if (o->iso == MVCC_ISO_RC_CHECK_TS) {
                blocks = conflict = true;
            } else if (l->start_ts <= ts && l->min_commit_ts <= ts) {
                bool primary_read = ts == TXN_TS_MAX && !l->use_async_commit &&
                                    tkv_slice_eq(l->primary, tkv_slice_str(user_keys[ki]));
                blocks = !primary_read;
            }
        }
        if (blocks && ts_in(o->access_locks, o->n_access_locks, l->start_ts)) {
            if (l->type == TXN_LOCK_DELETE)
                return e;
            return value_of_put(k, l->has_short_value, l->short_value, l->start_ts, o->key_only);
        }
        if (blocks)
            return (expect){conflict ? O_CONFLICT : O_LOCKED, e.value};
    }
    for (size_t j = 0; j < k->nw; j++) {
        const wrec *w = &k->w[j];
        if (w->commit_ts > ts)
            continue;
        if (!w->valid)
            return (expect){O_CORRUPT, e.value};
        switch (w->w.type) {
        case TXN_WRITE_PUT:
            if (!txn_write_check_gc_fence(&w->w, ts))
                return e;
            return value_of_put(k, w->w.has_short_value, w->w.short_value, w->w.start_ts,
                                o->key_only);
        case TXN_WRITE_DELETE:
            return e;
        default:
            break;
        }
    }
    return e;
}

/* ---- reading ------------------------------------------------------------------------------ */

static void snap_cb(void *ud, int rc, Errorpb__Error *rerr, stor_snap *snap)
{
    FUZZ_CHECK(rc == 0 && rerr == NULL);
    *(stor_snap **)ud = snap;
}

/* FUZZ_TRACE=1 prints how often each outcome was checked (is the model exercised?). */
static unsigned long checked[O_CORRUPT + 1];

static void check_answer(const fx *f, int rc, bool found, const tkv_buf *value, const mvcc_err *e,
                         expect want)
{
    checked[want.o]++;
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (f->junk)
        return; /* junk keys may change which records a read meets: only robustness */
    if (want.o == O_CORRUPT) {
        FUZZ_CHECK(rc == TKV_ECORRUPT);
        return;
    }
    FUZZ_CHECK(rc == 0);
    switch (want.o) {
    case O_ABSENT:
        FUZZ_CHECK(!found && e->kind == MVCC_OK);
        break;
    case O_VALUE:
        FUZZ_CHECK(found && e->kind == MVCC_OK);
        FUZZ_CHECK(tkv_slice_eq(tkv_buf_slice(value), want.value));
        break;
    case O_LOCKED:
        FUZZ_CHECK(!found && e->kind == MVCC_E_KEY_IS_LOCKED);
        break;
    case O_CONFLICT:
        FUZZ_CHECK(!found && e->kind == MVCC_E_WRITE_CONFLICT);
        break;
    default:
        FUZZ_CHECK(!found && e->kind == MVCC_E_DEFAULT_NOT_FOUND);
        break;
    }
}

static int key_of(const tkv_buf *enc_key)
{
    for (int i = 0; i < NKEYS; i++) {
        tkv_buf ek;
        enc(user_keys[i], &ek);
        bool eq = tkv_slice_eq(tkv_buf_slice(&ek), tkv_buf_slice(enc_key));
        tkv_buf_deinit(&ek);
        if (eq)
            return i;
    }
    return -1;
}

static void read_all(fx *f, uint64_t ts, const mvcc_read_opts *o)
{
    mvcc_reader *r;
    FUZZ_CHECK(mvcc_reader_new(f->snap, &r) == 0);
    tkv_buf v;
    tkv_buf_init(&v);
    mvcc_err e;
    mvcc_err_init(&e);
    for (int i = 0; i < NKEYS; i++) {
        tkv_buf ek;
        enc(user_keys[i], &ek);
        bool found;
        mvcc_err_reset(&e);
        int rc = mvcc_point_get(r, tkv_buf_slice(&ek), ts, o, &v, &found, &e);
        check_answer(f, rc, found, &v, &e, model(&f->k[i], i, ts, o, true));
        /* The lock-ignoring read (key_only does not apply to it). */
        mvcc_read_opts plain = {MVCC_ISO_RC, NULL, 0, NULL, 0, false};
        expect w = model(&f->k[i], i, ts, &plain, false);
        rc = mvcc_get(r, tkv_buf_slice(&ek), ts, &v, &found);
        FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT || rc == TKV_ENOTFOUND);
        if (!f->junk) {
            if (w.o == O_CORRUPT)
                FUZZ_CHECK(rc == TKV_ECORRUPT);
            else if (w.o == O_DEFAULT_NOT_FOUND)
                FUZZ_CHECK(rc == TKV_ENOTFOUND);
            else if (w.o == O_VALUE)
                FUZZ_CHECK(rc == 0 && found && tkv_slice_eq(tkv_buf_slice(&v), w.value));
            else
                FUZZ_CHECK(rc == 0 && !found);
        }
        tkv_buf_deinit(&ek);
    }
    mvcc_reader_free(r);
    /* Scans both ways: in order, each key once, the point get's answer. */
    for (int desc = 0; desc < 2; desc++) {
        mvcc_scan_opts so = {ts, tkv_slice_of(NULL, 0), tkv_slice_of(NULL, 0), desc, *o};
        mvcc_scanner *s;
        FUZZ_CHECK(mvcc_scanner_new(f->snap, &so, &s) == 0);
        tkv_buf key;
        tkv_buf_init(&key);
        bool seen[NKEYS] = {false};
        int last = desc ? NKEYS : -1;
        int rc = 0;
        for (int guard = 0; guard < 64; guard++) {
            bool done;
            rc = mvcc_scanner_next(s, &done, &key, &v, &e);
            FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
            if (rc != 0 || done)
                break;
            int k = key_of(&key);
            if (f->junk)
                continue;
            FUZZ_CHECK(k >= 0 && !seen[k] && (desc ? k < last : k > last));
            /* Keys skipped on the way had nothing to show. */
            for (int j = desc ? last - 1 : last + 1; j != k; j += desc ? -1 : 1)
                FUZZ_CHECK(model(&f->k[j], j, ts, o, true).o == O_ABSENT);
            seen[k] = true;
            last = k;
            check_answer(f, 0, e.kind == MVCC_OK, &v, &e, model(&f->k[k], k, ts, o, true));
        }
        if (!f->junk && rc == 0) {
            for (int j = desc ? last - 1 : last + 1; j >= 0 && j < NKEYS; j += desc ? -1 : 1)
                FUZZ_CHECK(model(&f->k[j], j, ts, o, true).o == O_ABSENT);
        }
        if (!f->junk && rc != 0) {
            /* The scan stopped at a key whose records do not decode. */
            int j = desc ? last - 1 : last + 1;
            while (j >= 0 && j < NKEYS && model(&f->k[j], j, ts, o, true).o == O_ABSENT)
                j += desc ? -1 : 1;
            FUZZ_CHECK(j >= 0 && j < NKEYS && model(&f->k[j], j, ts, o, true).o == O_CORRUPT);
        }
        tkv_buf_deinit(&key);
        mvcc_scanner_free(s);
    }
    mvcc_err_deinit(&e);
    tkv_buf_deinit(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fx *f = calloc(1, sizeof(*f));
    FUZZ_CHECK(f != NULL);
    fuzz_in in = fuzz_in_of(data, size);
    f->junk = fuzz_u8(&in) % 8 == 0;
    FUZZ_CHECK(eng_mem_open(NULL, &f->db) == 0);
    FUZZ_CHECK(stor_kv_local_new(f->db, NULL, &f->kv) == 0);
    build(f, &in);
    stor_ctx ctx;
    stor_ctx_from_pb(&ctx, NULL);
    ctx.region_id = 1;
    FUZZ_CHECK(stor_kv_snapshot(f->kv, &ctx, snap_cb, &f->snap) == 0);
    FUZZ_CHECK(f->snap != NULL);
    static const uint64_t tss[] = {0, 5, 12, 20, 28, 39, 100, TXN_TS_MAX};
    for (int round = 0; round < 6; round++) {
        uint8_t b = fuzz_u8(&in);
        uint64_t ts = tss[b % TKV_ARRAY_LEN(tss)];
        if (b & 0x80)
            ts = fuzz_below(&in, 41);
        uint64_t bypass[2] = {fuzz_below(&in, 31), fuzz_below(&in, 31)};
        uint64_t access[2] = {fuzz_below(&in, 31), fuzz_below(&in, 31)};
        uint8_t m = fuzz_u8(&in);
        mvcc_read_opts o = {(mvcc_isolation)(m % 3), bypass, (m >> 2) % 3, access, (m >> 4) % 3,
                            (m & 0x40) != 0};
        read_all(f, ts, &o);
    }
    stor_snap_release(f->snap);
    for (int i = 0; i < NKEYS; i++) {
        krec *k = &f->k[i];
        if (k->lock_valid)
            txn_lock_deinit(&k->lock);
        tkv_buf_deinit(&k->lock_bytes);
        for (size_t j = 0; j < k->nw; j++)
            tkv_buf_deinit(&k->w[j].bytes);
        for (size_t d = 0; d < k->nd; d++)
            tkv_buf_deinit(&k->dval[d]);
    }
    stor_kv_free(f->kv);
    eng_close(f->db);
    free(f);
    if (getenv("FUZZ_TRACE") != NULL)
        fprintf(stderr,
                "checked: absent %lu value %lu locked %lu conflict %lu missing %lu corrupt %lu\n",
                checked[0], checked[1], checked[2], checked[3], checked[4], checked[5]);
    return 0;
}
