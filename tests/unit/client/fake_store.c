/*
 * fake_store.c: fake TiKV stores (see fake_store.h).
 */
#include "unit/client/fake_store.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/codec.h"
#include "errorpb.pb-c.h"
#include "kvrpcpb.pb-c.h"
#include "tikvpb.pb-c.h"

struct fs_raw {
    tkv_buf key;
    tkv_buf value;
    uint64_t expire_ms; /* 0: never (wall clock ms) */
};

enum { W_PUT, W_DEL, W_ROLLBACK };

typedef struct fs_write {
    uint64_t commit_ts;
    uint64_t start_ts;
    int type;
    tkv_buf value;
} fs_write;

struct fs_tkey {
    tkv_buf key;
    bool locked;
    tkv_buf primary;
    uint64_t lock_ts;
    uint64_t lock_ttl;
    int lock_op; /* kvrpcpb Op */
    tkv_buf lock_value;
    fs_write *w; /* newest commit first */
    size_t n_w, cap_w;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static ProtobufCBinaryData bin(tkv_slice s)
{
    ProtobufCBinaryData b = {s.len, (uint8_t *)s.data};
    return b;
}

static tkv_slice sl(ProtobufCBinaryData b)
{
    return tkv_slice_of(b.data, b.len);
}

static void buf_set(tkv_buf *b, tkv_slice s)
{
    assert_int_equal(tkv_buf_set(b, s.data, s.len), 0);
}

/* Index of the first element whose key (a tkv_buf at the start of the struct) is >= @key. */
static size_t lower_bound(const void *base, size_t n, size_t size, tkv_slice key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const tkv_buf *k = (const tkv_buf *)((const char *)base + mid * size);
        if (tkv_slice_cmp(tkv_buf_slice(k), key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void count(fake_cluster *fc, const char *method)
{
    for (size_t i = 0; i < fc->n_counts; i++) {
        if (strcmp(fc->counts[i].name, method) == 0) {
            fc->counts[i].n++;
            return;
        }
    }
    if (fc->n_counts < TKV_ARRAY_LEN(fc->counts)) {
        snprintf(fc->counts[fc->n_counts].name, sizeof(fc->counts[0].name), "%s", method);
        fc->counts[fc->n_counts++].n = 1;
    }
}

static void log_call(fake_cluster *fc, fake_store *st, const char *method, tkv_slice first,
                     size_t n, uint64_t start_ts, uint64_t commit_ts)
{
    if (fc->n_log >= FS_MAX_LOG)
        return;
    fs_log *l = &fc->log[fc->n_log++];
    l->store_id = st->id;
    snprintf(l->method, sizeof(l->method), "%s", method);
    size_t k = TKV_MIN(first.len, sizeof(l->key) - 1);
    if (k > 0)
        memcpy(l->key, first.data, k);
    l->key[k] = '\0';
    l->n_keys = n;
    l->start_ts = start_ts;
    l->commit_ts = commit_ts;
}

/* ---- raw data --------------------------------------------------------------------------- */

static fs_raw *raw_find(fake_cluster *fc, tkv_slice key)
{
    size_t i = lower_bound(fc->raw, fc->n_raw, sizeof(fs_raw), key);
    if (i < fc->n_raw && tkv_slice_eq(tkv_buf_slice(&fc->raw[i].key), key)) {
        fs_raw *r = &fc->raw[i];
        if (r->expire_ms != 0 && tkv_clock_real_ms() >= r->expire_ms)
            return NULL;
        return r;
    }
    return NULL;
}

static void raw_put(fake_cluster *fc, tkv_slice key, tkv_slice value, uint64_t ttl_s)
{
    size_t i = lower_bound(fc->raw, fc->n_raw, sizeof(fs_raw), key);
    if (!(i < fc->n_raw && tkv_slice_eq(tkv_buf_slice(&fc->raw[i].key), key))) {
        if (fc->n_raw == fc->cap_raw) {
            fc->cap_raw = fc->cap_raw ? 2 * fc->cap_raw : 64;
            fc->raw = realloc(fc->raw, fc->cap_raw * sizeof(fs_raw));
            assert_non_null(fc->raw);
        }
        memmove(&fc->raw[i + 1], &fc->raw[i], (fc->n_raw - i) * sizeof(fs_raw));
        fc->n_raw++;
        tkv_buf_init(&fc->raw[i].key);
        tkv_buf_init(&fc->raw[i].value);
        buf_set(&fc->raw[i].key, key);
    }
    buf_set(&fc->raw[i].value, value);
    fc->raw[i].expire_ms = ttl_s ? tkv_clock_real_ms() + ttl_s * 1000 : 0;
}

static void raw_delete(fake_cluster *fc, tkv_slice key)
{
    size_t i = lower_bound(fc->raw, fc->n_raw, sizeof(fs_raw), key);
    if (i < fc->n_raw && tkv_slice_eq(tkv_buf_slice(&fc->raw[i].key), key)) {
        tkv_buf_deinit(&fc->raw[i].key);
        tkv_buf_deinit(&fc->raw[i].value);
        memmove(&fc->raw[i], &fc->raw[i + 1], (fc->n_raw - i - 1) * sizeof(fs_raw));
        fc->n_raw--;
    }
}

/* ---- transactional data ----------------------------------------------------------------- */

static fs_tkey *tk_find(fake_cluster *fc, tkv_slice key, bool create)
{
    size_t i = lower_bound(fc->tk, fc->n_tk, sizeof(fs_tkey), key);
    if (i < fc->n_tk && tkv_slice_eq(tkv_buf_slice(&fc->tk[i].key), key))
        return &fc->tk[i];
    if (!create)
        return NULL;
    if (fc->n_tk == fc->cap_tk) {
        fc->cap_tk = fc->cap_tk ? 2 * fc->cap_tk : 64;
        fc->tk = realloc(fc->tk, fc->cap_tk * sizeof(fs_tkey));
        assert_non_null(fc->tk);
    }
    memmove(&fc->tk[i + 1], &fc->tk[i], (fc->n_tk - i) * sizeof(fs_tkey));
    fc->n_tk++;
    fs_tkey *k = &fc->tk[i];
    memset(k, 0, sizeof(*k));
    buf_set(&k->key, key);
    return k;
}

static void add_write(fs_tkey *k, uint64_t commit_ts, uint64_t start_ts, int type, tkv_slice v)
{
    if (k->n_w == k->cap_w) {
        k->cap_w = k->cap_w ? 2 * k->cap_w : 4;
        k->w = realloc(k->w, k->cap_w * sizeof(fs_write));
        assert_non_null(k->w);
    }
    size_t i = 0;
    while (i < k->n_w && k->w[i].commit_ts > commit_ts)
        i++;
    memmove(&k->w[i + 1], &k->w[i], (k->n_w - i) * sizeof(fs_write));
    k->n_w++;
    k->w[i].commit_ts = commit_ts;
    k->w[i].start_ts = start_ts;
    k->w[i].type = type;
    tkv_buf_init(&k->w[i].value);
    buf_set(&k->w[i].value, v);
}

/* The write of @k made by the transaction @start_ts, or NULL. */
static fs_write *write_of(fs_tkey *k, uint64_t start_ts)
{
    for (size_t i = 0; k != NULL && i < k->n_w; i++)
        if (k->w[i].start_ts == start_ts)
            return &k->w[i];
    return NULL;
}

/* The value @k has at @ts: true when it exists. */
static bool read_at(fs_tkey *k, uint64_t ts, tkv_slice *value)
{
    for (size_t i = 0; k != NULL && i < k->n_w; i++) {
        fs_write *w = &k->w[i];
        if (w->commit_ts > ts || w->type == W_ROLLBACK)
            continue;
        if (w->type == W_DEL)
            return false;
        *value = tkv_buf_slice(&w->value);
        return true;
    }
    return false;
}

static void unlock(fs_tkey *k)
{
    k->locked = false;
    tkv_buf_deinit(&k->primary);
    tkv_buf_deinit(&k->lock_value);
}

static void commit_lock(fs_tkey *k, uint64_t commit_ts)
{
    int type = k->lock_op == KVRPCPB__OP__Del ? W_DEL : W_PUT;
    add_write(k, commit_ts, k->lock_ts, type, tkv_buf_slice(&k->lock_value));
    unlock(k);
}

static void rollback_lock(fs_tkey *k, uint64_t start_ts)
{
    if (k->locked && k->lock_ts == start_ts)
        unlock(k);
    if (write_of(k, start_ts) == NULL)
        add_write(k, start_ts, start_ts, W_ROLLBACK, tkv_slice_of(NULL, 0));
}

static void lock_info(fs_tkey *k, Kvrpcpb__LockInfo *li)
{
    kvrpcpb__lock_info__init(li);
    li->primary_lock = bin(tkv_buf_slice(&k->primary));
    li->lock_version = k->lock_ts;
    li->key = bin(tkv_buf_slice(&k->key));
    li->lock_ttl = k->lock_ttl;
    li->lock_type = (Kvrpcpb__Op)k->lock_op;
}

/* True when @k's lock blocks a read at @ts with @ctx. */
static bool blocks_read(fs_tkey *k, uint64_t ts, const Kvrpcpb__Context *ctx)
{
    if (k == NULL || !k->locked || k->lock_ts > ts)
        return false;
    if (k->lock_op != KVRPCPB__OP__Put && k->lock_op != KVRPCPB__OP__Del)
        return false;
    for (size_t i = 0; ctx != NULL && i < ctx->n_resolved_locks; i++)
        if (ctx->resolved_locks[i] == k->lock_ts)
            return false;
    return true;
}

/* ---- routing ---------------------------------------------------------------------------- */

/* Storage for the region error of one answer. */
typedef struct rerr {
    Errorpb__Error e;
    Errorpb__NotLeader nl;
    Metapb__Peer leader;
    Errorpb__EpochNotMatch enm;
    fpd_region_msg msgs[FPD_MAX_REGIONS];
    Metapb__Region *rp[FPD_MAX_REGIONS];
    Errorpb__RegionNotFound rnf;
    Errorpb__KeyNotInRegion knr;
    Errorpb__ServerIsBusy busy;
    Errorpb__StaleCommand stale;
    Errorpb__StoreNotMatch snm;
    tkv_buf enc; /* encoded key scratch */
} rerr;

static void rerr_init(rerr *r)
{
    memset(r, 0, sizeof(*r));
    errorpb__error__init(&r->e);
    tkv_buf_init(&r->enc);
}

/* The form of @key that region boundaries are compared with. */
static tkv_slice region_key(fake_cluster *fc, rerr *r, tkv_slice key, bool txn)
{
    if (!txn || !fc->txn_encoded)
        return key;
    tkv_buf_reset(&r->enc);
    assert_int_equal(tkv_codec_encode_bytes(&r->enc, key), 0);
    return tkv_buf_slice(&r->enc);
}

static bool in_region(const fpd_region *g, tkv_slice k)
{
    return tkv_slice_cmp(tkv_slice_of(g->start, g->start_len), k) <= 0 &&
           (g->end_len == 0 || tkv_slice_cmp(k, tkv_slice_of(g->end, g->end_len)) < 0);
}

/* Checks @ctx like a TiKV store: returns the region or NULL with @r->e filled. Under mu. */
static fpd_region *route(fake_store *st, const Kvrpcpb__Context *ctx, rerr *r)
{
    fake_cluster *fc = st->fc;
    fake_pd *p = fc->pd;
    fs_inject *inj = &st->inj;
    r->e.message = "region error";
    if (inj->busy > 0) {
        inj->busy--;
        errorpb__server_is_busy__init(&r->busy);
        r->busy.reason = "injected";
        r->busy.backoff_ms = inj->busy_hint_ms;
        r->e.server_is_busy = &r->busy;
        return NULL;
    }
    if (inj->stale_command > 0) {
        inj->stale_command--;
        errorpb__stale_command__init(&r->stale);
        r->e.stale_command = &r->stale;
        return NULL;
    }
    if (inj->store_not_match > 0) {
        inj->store_not_match--;
        errorpb__store_not_match__init(&r->snm);
        r->snm.request_store_id = st->id;
        r->snm.actual_store_id = st->id + 100;
        r->e.store_not_match = &r->snm;
        return NULL;
    }
    if (inj->key_not_in_region > 0) {
        inj->key_not_in_region--;
        errorpb__key_not_in_region__init(&r->knr);
        r->knr.region_id = ctx != NULL ? ctx->region_id : 0;
        r->e.key_not_in_region = &r->knr;
        return NULL;
    }
    if (inj->not_leader_no_hint > 0) {
        inj->not_leader_no_hint--;
        errorpb__not_leader__init(&r->nl);
        r->nl.region_id = ctx != NULL ? ctx->region_id : 0;
        r->e.not_leader = &r->nl;
        return NULL;
    }
    int gi = ctx != NULL ? fake_pd_region_index(p, ctx->region_id) : -1;
    fpd_region *g = gi >= 0 ? &p->regions[gi] : NULL;
    bool here = false;
    for (size_t i = 0; g != NULL && i < g->n_peers; i++)
        here |= g->peers[i].store_id == st->id;
    if (!here) {
        errorpb__region_not_found__init(&r->rnf);
        r->rnf.region_id = ctx != NULL ? ctx->region_id : 0;
        r->e.region_not_found = &r->rnf;
        return NULL;
    }
    if (ctx->peer == NULL || ctx->peer->store_id != st->id) {
        errorpb__store_not_match__init(&r->snm);
        r->snm.request_store_id = ctx->peer != NULL ? ctx->peer->store_id : 0;
        r->snm.actual_store_id = st->id;
        r->e.store_not_match = &r->snm;
        return NULL;
    }
    if (g->peers[g->leader].store_id != st->id) {
        errorpb__not_leader__init(&r->nl);
        metapb__peer__init(&r->leader);
        r->nl.region_id = g->id;
        r->leader.id = g->peers[g->leader].id;
        r->leader.store_id = g->peers[g->leader].store_id;
        r->nl.leader = &r->leader;
        r->e.not_leader = &r->nl;
        return NULL;
    }
    if (ctx->region_epoch == NULL || ctx->region_epoch->version != g->version ||
        ctx->region_epoch->conf_ver != g->conf_ver) {
        errorpb__epoch_not_match__init(&r->enm);
        for (size_t i = 0; i < p->n_regions; i++) {
            fpd_region_to_msg(&p->regions[i], &r->msgs[i]);
            r->rp[i] = &r->msgs[i].r;
        }
        r->enm.current_regions = r->rp;
        r->enm.n_current_regions = p->n_regions;
        r->e.epoch_not_match = &r->enm;
        fc->epoch_not_match++;
        return NULL;
    }
    return g;
}

/* Checks that @key lies in @g; else fills KeyNotInRegion. */
static bool key_ok(fake_cluster *fc, fpd_region *g, rerr *r, tkv_slice key, bool txn)
{
    tkv_slice k = region_key(fc, r, key, txn);
    if (in_region(g, k))
        return true;
    errorpb__key_not_in_region__init(&r->knr);
    r->knr.key = bin(key);
    r->knr.region_id = g->id;
    r->knr.start_key = bin(tkv_slice_of(g->start, g->start_len));
    r->knr.end_key = bin(tkv_slice_of(g->end, g->end_len));
    r->e.key_not_in_region = &r->knr;
    return false;
}

/* ---- handlers --------------------------------------------------------------------------- */

/* A request handler: unpacked request in, packed response out. Under mu. */
typedef void (*handler_fn)(fake_store *st, ProtobufCMessage *req, tkv_buf *out);

static void pack(const ProtobufCMessage *m, tkv_buf *out)
{
    assert_int_equal(rpc_msg_pack(m, out), 0);
}

#define ROUTE_OR_ANSWER(resp, ctx)                                                                 \
    rerr re;                                                                                       \
    rerr_init(&re);                                                                                \
    fpd_region *g = route(st, (ctx), &re);                                                         \
    if (g == NULL) {                                                                               \
        (resp).region_error = &re.e;                                                               \
        pack(&(resp).base, out);                                                                   \
        tkv_buf_deinit(&re.enc);                                                                   \
        return;                                                                                    \
    }

#define KEY_OR_ANSWER(resp, key, txn)                                                              \
    if (!key_ok(fc, g, &re, (key), (txn))) {                                                       \
        (resp).region_error = &re.e;                                                               \
        pack(&(resp).base, out);                                                                   \
        tkv_buf_deinit(&re.enc);                                                                   \
        return;                                                                                    \
    }

static void h_raw_get(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__RawGetRequest *q = (Kvrpcpb__RawGetRequest *)m;
    Kvrpcpb__RawGetResponse r = KVRPCPB__RAW_GET_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    KEY_OR_ANSWER(r, sl(q->key), false);
    fs_raw *e = raw_find(fc, sl(q->key));
    r.not_found = e == NULL;
    if (e != NULL)
        r.value = bin(tkv_buf_slice(&e->value));
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

static void h_raw_batch_get(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__RawBatchGetRequest *q = (Kvrpcpb__RawBatchGetRequest *)m;
    Kvrpcpb__RawBatchGetResponse r = KVRPCPB__RAW_BATCH_GET_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    for (size_t i = 0; i < q->n_keys; i++)
        KEY_OR_ANSWER(r, sl(q->keys[i]), false);
    Kvrpcpb__KvPair *pairs = calloc(q->n_keys + 1, sizeof(*pairs));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Kvrpcpb__KvPair **pp = calloc(q->n_keys + 1, sizeof(*pp));
    for (size_t i = 0; i < q->n_keys; i++) {
        fs_raw *e = raw_find(fc, sl(q->keys[i]));
        if (e == NULL)
            continue;
        kvrpcpb__kv_pair__init(&pairs[r.n_pairs]);
        pairs[r.n_pairs].key = q->keys[i];
        pairs[r.n_pairs].value = bin(tkv_buf_slice(&e->value));
        pp[r.n_pairs] = &pairs[r.n_pairs];
        r.n_pairs++;
    }
    r.pairs = pp;
    pack(&r.base, out);
    free(pairs);
    free(pp);
    tkv_buf_deinit(&re.enc);
}

static void h_raw_put(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__RawPutRequest *q = (Kvrpcpb__RawPutRequest *)m;
    Kvrpcpb__RawPutResponse r = KVRPCPB__RAW_PUT_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    KEY_OR_ANSWER(r, sl(q->key), false);
    raw_put(fc, sl(q->key), sl(q->value), q->ttl);
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

static void h_raw_batch_put(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__RawBatchPutRequest *q = (Kvrpcpb__RawBatchPutRequest *)m;
    Kvrpcpb__RawBatchPutResponse r = KVRPCPB__RAW_BATCH_PUT_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    for (size_t i = 0; i < q->n_pairs; i++)
        KEY_OR_ANSWER(r, sl(q->pairs[i]->key), false);
    for (size_t i = 0; i < q->n_pairs; i++)
        raw_put(fc, sl(q->pairs[i]->key), sl(q->pairs[i]->value), i < q->n_ttls ? q->ttls[i] : 0);
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

static void h_raw_delete(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__RawDeleteRequest *q = (Kvrpcpb__RawDeleteRequest *)m;
    Kvrpcpb__RawDeleteResponse r = KVRPCPB__RAW_DELETE_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    KEY_OR_ANSWER(r, sl(q->key), false);
    raw_delete(fc, sl(q->key));
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

static void h_raw_batch_delete(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__RawBatchDeleteRequest *q = (Kvrpcpb__RawBatchDeleteRequest *)m;
    Kvrpcpb__RawBatchDeleteResponse r = KVRPCPB__RAW_BATCH_DELETE_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    for (size_t i = 0; i < q->n_keys; i++)
        KEY_OR_ANSWER(r, sl(q->keys[i]), false);
    for (size_t i = 0; i < q->n_keys; i++)
        raw_delete(fc, sl(q->keys[i]));
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

/* Clamps a scan request to region @g: forward [lo, hi), reverse [lo, hi) read downward.
 * Returns false (with KeyNotInRegion) when the request does not start inside the region. */
static bool scan_bounds(fake_cluster *fc, fpd_region *g, rerr *re, bool reverse, tkv_slice start,
                        tkv_slice end, bool txn, tkv_buf *lo, tkv_buf *hi, bool *hi_inf)
{
    /* Region bounds in the user key space (decoded when encoded). */
    tkv_buf rs, rend;
    tkv_buf_init(&rs);
    tkv_buf_init(&rend);
    tkv_slice a = tkv_slice_of(g->start, g->start_len), b = tkv_slice_of(g->end, g->end_len);
    if (txn && fc->txn_encoded) {
        if (a.len > 0)
            assert_int_equal(tkv_codec_decode_bytes(&a, &rs), 0);
        if (b.len > 0)
            assert_int_equal(tkv_codec_decode_bytes(&b, &rend), 0);
    } else {
        buf_set(&rs, a);
        buf_set(&rend, b);
    }
    bool ok = true;
    if (!reverse) {
        ok = key_ok(fc, g, re, start, txn);
        buf_set(lo, start);
        *hi_inf = end.len == 0 && g->end_len == 0;
        if (end.len == 0 || (g->end_len > 0 && tkv_slice_cmp(tkv_buf_slice(&rend), end) < 0))
            buf_set(hi, tkv_buf_slice(&rend));
        else
            buf_set(hi, end);
    } else {
        /* start is the exclusive upper bound: empty means the end of the key space. */
        *hi_inf = start.len == 0;
        if (start.len == 0) {
            ok = g->end_len == 0;
        } else {
            ok = tkv_slice_cmp(tkv_buf_slice(&rs), start) < 0 &&
                 (g->end_len == 0 || tkv_slice_cmp(start, tkv_buf_slice(&rend)) <= 0);
        }
        if (!ok) {
            errorpb__key_not_in_region__init(&re->knr);
            re->knr.key = bin(start);
            re->knr.region_id = g->id;
            re->e.key_not_in_region = &re->knr;
        }
        buf_set(hi, start);
        buf_set(lo, tkv_slice_cmp(end, tkv_buf_slice(&rs)) > 0 ? end : tkv_buf_slice(&rs));
    }
    tkv_buf_deinit(&rs);
    tkv_buf_deinit(&rend);
    return ok;
}

/* True when @k lies in [lo, hi) (hi empty with hi_inf: no bound). */
static bool in_range(tkv_slice k, const tkv_buf *lo, const tkv_buf *hi, bool hi_inf)
{
    return tkv_slice_cmp(tkv_buf_slice(lo), k) <= 0 &&
           (hi_inf || tkv_slice_cmp(k, tkv_buf_slice(hi)) < 0);
}

/* After a scan answer, splits the configured region (the split-during-scan tests). */
static void maybe_split(fake_cluster *fc)
{
    if (fc->split_after <= 0)
        return;
    if (++fc->scans_seen != fc->split_after)
        return;
    fake_pd_split_locked(fc->pd, fc->split_region, tkv_slice_of(fc->split_key, fc->split_key_len),
                         fc->split_new_id);
    fc->split_after = 0;
}

static void h_raw_scan(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__RawScanRequest *q = (Kvrpcpb__RawScanRequest *)m;
    Kvrpcpb__RawScanResponse r = KVRPCPB__RAW_SCAN_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    tkv_buf lo, hi;
    tkv_buf_init(&lo);
    tkv_buf_init(&hi);
    bool hi_inf;
    if (!scan_bounds(fc, g, &re, q->reverse, sl(q->start_key), sl(q->end_key), false, &lo, &hi,
                     &hi_inf)) {
        r.region_error = &re.e;
        pack(&r.base, out);
    } else {
        Kvrpcpb__KvPair *pairs = calloc(q->limit + 1, sizeof(*pairs));
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        Kvrpcpb__KvPair **pp = calloc(q->limit + 1, sizeof(*pp));
        for (size_t k = 0; k < fc->n_raw && r.n_kvs < q->limit; k++) {
            size_t i = q->reverse ? fc->n_raw - 1 - k : k;
            fs_raw *e = &fc->raw[i];
            if (!in_range(tkv_buf_slice(&e->key), &lo, &hi, hi_inf))
                continue;
            if (e->expire_ms != 0 && tkv_clock_real_ms() >= e->expire_ms)
                continue;
            kvrpcpb__kv_pair__init(&pairs[r.n_kvs]);
            pairs[r.n_kvs].key = bin(tkv_buf_slice(&e->key));
            if (!q->key_only)
                pairs[r.n_kvs].value = bin(tkv_buf_slice(&e->value));
            pp[r.n_kvs] = &pairs[r.n_kvs];
            r.n_kvs++;
        }
        r.kvs = pp;
        pack(&r.base, out);
        free(pairs);
        free(pp);
        maybe_split(fc);
    }
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
    tkv_buf_deinit(&re.enc);
}

static void h_raw_delete_range(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__RawDeleteRangeRequest *q = (Kvrpcpb__RawDeleteRangeRequest *)m;
    Kvrpcpb__RawDeleteRangeResponse r = KVRPCPB__RAW_DELETE_RANGE_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    tkv_buf lo, hi;
    tkv_buf_init(&lo);
    tkv_buf_init(&hi);
    bool hi_inf;
    if (!scan_bounds(fc, g, &re, false, sl(q->start_key), sl(q->end_key), false, &lo, &hi,
                     &hi_inf)) {
        r.region_error = &re.e;
    } else {
        for (size_t i = fc->n_raw; i-- > 0;)
            if (in_range(tkv_buf_slice(&fc->raw[i].key), &lo, &hi, hi_inf))
                raw_delete(fc, tkv_buf_slice(&fc->raw[i].key));
    }
    pack(&r.base, out);
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
    tkv_buf_deinit(&re.enc);
}

static void h_raw_cas(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__RawCASRequest *q = (Kvrpcpb__RawCASRequest *)m;
    Kvrpcpb__RawCASResponse r = KVRPCPB__RAW_CASRESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    KEY_OR_ANSWER(r, sl(q->key), false);
    fs_raw *e = raw_find(fc, sl(q->key));
    tkv_buf prev;
    tkv_buf_init(&prev);
    if (e != NULL)
        buf_set(&prev, tkv_buf_slice(&e->value));
    r.previous_not_exist = e == NULL;
    r.succeed = q->previous_not_exist
                    ? e == NULL
                    : e != NULL && tkv_slice_eq(tkv_buf_slice(&e->value), sl(q->previous_value));
    if (r.succeed)
        raw_put(fc, sl(q->key), sl(q->value), q->ttl);
    r.previous_value = bin(tkv_buf_slice(&prev));
    pack(&r.base, out);
    tkv_buf_deinit(&prev);
    tkv_buf_deinit(&re.enc);
}

static void h_raw_get_ttl(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__RawGetKeyTTLRequest *q = (Kvrpcpb__RawGetKeyTTLRequest *)m;
    Kvrpcpb__RawGetKeyTTLResponse r = KVRPCPB__RAW_GET_KEY_TTLRESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    KEY_OR_ANSWER(r, sl(q->key), false);
    fs_raw *e = raw_find(fc, sl(q->key));
    r.not_found = e == NULL;
    if (e != NULL && e->expire_ms != 0) {
        uint64_t now = tkv_clock_real_ms();
        r.ttl = e->expire_ms > now ? (e->expire_ms - now + 999) / 1000 : 0;
    }
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

/* ---- transactional handlers ------------------------------------------------------------- */

static void h_kv_get(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__GetRequest *q = (Kvrpcpb__GetRequest *)m;
    Kvrpcpb__GetResponse r = KVRPCPB__GET_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    KEY_OR_ANSWER(r, sl(q->key), true);
    fs_tkey *k = tk_find(fc, sl(q->key), false);
    Kvrpcpb__KeyError ke = KVRPCPB__KEY_ERROR__INIT;
    Kvrpcpb__LockInfo li;
    if (blocks_read(k, q->version, q->context)) {
        lock_info(k, &li);
        ke.locked = &li;
        r.error = &ke;
    } else {
        tkv_slice v;
        r.not_found = !read_at(k, q->version, &v);
        if (!r.not_found)
            r.value = bin(v);
    }
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

static void h_kv_batch_get(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__BatchGetRequest *q = (Kvrpcpb__BatchGetRequest *)m;
    Kvrpcpb__BatchGetResponse r = KVRPCPB__BATCH_GET_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    for (size_t i = 0; i < q->n_keys; i++)
        KEY_OR_ANSWER(r, sl(q->keys[i]), true);
    size_t n = q->n_keys + 1;
    Kvrpcpb__KvPair *pairs = calloc(n, sizeof(*pairs));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Kvrpcpb__KvPair **pp = calloc(n, sizeof(*pp));
    Kvrpcpb__KeyError *kes = calloc(n, sizeof(*kes));
    Kvrpcpb__LockInfo *lis = calloc(n, sizeof(*lis));
    for (size_t i = 0; i < q->n_keys; i++) {
        fs_tkey *k = tk_find(fc, sl(q->keys[i]), false);
        Kvrpcpb__KvPair *p = &pairs[r.n_pairs];
        kvrpcpb__kv_pair__init(p);
        p->key = q->keys[i];
        if (blocks_read(k, q->version, q->context)) {
            kvrpcpb__key_error__init(&kes[i]);
            lock_info(k, &lis[i]);
            kes[i].locked = &lis[i];
            p->error = &kes[i];
        } else {
            tkv_slice v;
            if (!read_at(k, q->version, &v))
                continue;
            p->value = bin(v);
        }
        pp[r.n_pairs++] = p;
    }
    r.pairs = pp;
    pack(&r.base, out);
    free(pairs);
    free(pp);
    free(kes);
    free(lis);
    tkv_buf_deinit(&re.enc);
}

static void h_kv_scan(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__ScanRequest *q = (Kvrpcpb__ScanRequest *)m;
    Kvrpcpb__ScanResponse r = KVRPCPB__SCAN_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    tkv_buf lo, hi;
    tkv_buf_init(&lo);
    tkv_buf_init(&hi);
    bool hi_inf;
    if (!scan_bounds(fc, g, &re, q->reverse, sl(q->start_key), sl(q->end_key), true, &lo, &hi,
                     &hi_inf)) {
        r.region_error = &re.e;
        pack(&r.base, out);
    } else {
        size_t n = q->limit + 1;
        Kvrpcpb__KvPair *pairs = calloc(n, sizeof(*pairs));
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        Kvrpcpb__KvPair **pp = calloc(n, sizeof(*pp));
        Kvrpcpb__KeyError *kes = calloc(n, sizeof(*kes));
        Kvrpcpb__LockInfo *lis = calloc(n, sizeof(*lis));
        for (size_t j = 0; j < fc->n_tk && r.n_pairs < q->limit; j++) {
            fs_tkey *k = &fc->tk[q->reverse ? fc->n_tk - 1 - j : j];
            if (!in_range(tkv_buf_slice(&k->key), &lo, &hi, hi_inf))
                continue;
            Kvrpcpb__KvPair *p = &pairs[r.n_pairs];
            kvrpcpb__kv_pair__init(p);
            p->key = bin(tkv_buf_slice(&k->key));
            if (blocks_read(k, q->version, q->context)) {
                kvrpcpb__key_error__init(&kes[r.n_pairs]);
                lock_info(k, &lis[r.n_pairs]);
                kes[r.n_pairs].locked = &lis[r.n_pairs];
                p->error = &kes[r.n_pairs];
            } else {
                tkv_slice v;
                if (!read_at(k, q->version, &v))
                    continue;
                if (!q->key_only)
                    p->value = bin(v);
            }
            pp[r.n_pairs++] = p;
        }
        r.pairs = pp;
        pack(&r.base, out);
        free(pairs);
        free(pp);
        free(kes);
        free(lis);
        maybe_split(fc);
    }
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
    tkv_buf_deinit(&re.enc);
}

static void h_kv_prewrite(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__PrewriteRequest *q = (Kvrpcpb__PrewriteRequest *)m;
    Kvrpcpb__PrewriteResponse r = KVRPCPB__PREWRITE_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    for (size_t i = 0; i < q->n_mutations; i++)
        KEY_OR_ANSWER(r, sl(q->mutations[i]->key), true);
    log_call(fc, st, "KvPrewrite", q->n_mutations ? sl(q->mutations[0]->key) : sl(q->primary_lock),
             q->n_mutations, q->start_version, 0);
    size_t n = q->n_mutations + 1;
    Kvrpcpb__KeyError *kes = calloc(n, sizeof(*kes));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Kvrpcpb__KeyError **kp = calloc(n, sizeof(*kp));
    Kvrpcpb__LockInfo *lis = calloc(n, sizeof(*lis));
    Kvrpcpb__WriteConflict *wcs = calloc(n, sizeof(*wcs));
    for (size_t i = 0; i < q->n_mutations; i++) {
        Kvrpcpb__Mutation *mu = q->mutations[i];
        fs_tkey *k = tk_find(fc, sl(mu->key), false);
        Kvrpcpb__KeyError *e = &kes[r.n_errors];
        kvrpcpb__key_error__init(e);
        if (k != NULL && k->locked && k->lock_ts != q->start_version) {
            lock_info(k, &lis[r.n_errors]);
            e->locked = &lis[r.n_errors];
        } else if (k != NULL && k->n_w > 0 && k->w[0].commit_ts >= q->start_version &&
                   !(k->locked && k->lock_ts == q->start_version)) {
            Kvrpcpb__WriteConflict *wc = &wcs[r.n_errors];
            kvrpcpb__write_conflict__init(wc);
            wc->start_ts = q->start_version;
            wc->conflict_ts = k->w[0].start_ts;
            wc->conflict_commit_ts = k->w[0].commit_ts;
            wc->key = mu->key;
            wc->primary = q->primary_lock;
            e->conflict = wc;
        } else {
            continue;
        }
        kp[r.n_errors++] = e;
    }
    if (r.n_errors == 0) {
        for (size_t i = 0; i < q->n_mutations; i++) {
            Kvrpcpb__Mutation *mu = q->mutations[i];
            fs_tkey *k = tk_find(fc, sl(mu->key), true);
            if (k->locked)
                continue; /* our own lock: prewrite is idempotent */
            k->locked = true;
            tkv_buf_init(&k->primary);
            tkv_buf_init(&k->lock_value);
            buf_set(&k->primary, sl(q->primary_lock));
            buf_set(&k->lock_value, sl(mu->value));
            k->lock_ts = q->start_version;
            k->lock_ttl = q->lock_ttl;
            k->lock_op = mu->op;
        }
    }
    r.errors = kp;
    pack(&r.base, out);
    free(kes);
    free(kp);
    free(lis);
    free(wcs);
    tkv_buf_deinit(&re.enc);
}

static void h_kv_commit(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__CommitRequest *q = (Kvrpcpb__CommitRequest *)m;
    Kvrpcpb__CommitResponse r = KVRPCPB__COMMIT_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    for (size_t i = 0; i < q->n_keys; i++)
        KEY_OR_ANSWER(r, sl(q->keys[i]), true);
    log_call(fc, st, "KvCommit", q->n_keys ? sl(q->keys[0]) : tkv_slice_of(NULL, 0), q->n_keys,
             q->start_version, q->commit_version);
    Kvrpcpb__KeyError ke = KVRPCPB__KEY_ERROR__INIT;
    for (size_t i = 0; i < q->n_keys && r.error == NULL; i++) {
        fs_tkey *k = tk_find(fc, sl(q->keys[i]), false);
        if (k != NULL && k->locked && k->lock_ts == q->start_version)
            continue;
        fs_write *w = write_of(k, q->start_version);
        if (w != NULL && w->type != W_ROLLBACK)
            continue; /* committed already */
        ke.retryable = "txn lock not found (the transaction was rolled back)";
        r.error = &ke;
    }
    if (r.error == NULL) {
        for (size_t i = 0; i < q->n_keys; i++) {
            fs_tkey *k = tk_find(fc, sl(q->keys[i]), false);
            if (k->locked && k->lock_ts == q->start_version)
                commit_lock(k, q->commit_version);
        }
    }
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

static void h_kv_batch_rollback(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__BatchRollbackRequest *q = (Kvrpcpb__BatchRollbackRequest *)m;
    Kvrpcpb__BatchRollbackResponse r = KVRPCPB__BATCH_ROLLBACK_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    for (size_t i = 0; i < q->n_keys; i++)
        KEY_OR_ANSWER(r, sl(q->keys[i]), true);
    log_call(fc, st, "KvBatchRollback", q->n_keys ? sl(q->keys[0]) : tkv_slice_of(NULL, 0),
             q->n_keys, q->start_version, 0);
    Kvrpcpb__KeyError ke = KVRPCPB__KEY_ERROR__INIT;
    for (size_t i = 0; i < q->n_keys; i++) {
        fs_tkey *k = tk_find(fc, sl(q->keys[i]), true);
        fs_write *w = write_of(k, q->start_version);
        if (w != NULL && w->type != W_ROLLBACK) {
            ke.abort = "already committed";
            r.error = &ke;
            break;
        }
        rollback_lock(k, q->start_version);
    }
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

static void h_kv_check_txn_status(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__CheckTxnStatusRequest *q = (Kvrpcpb__CheckTxnStatusRequest *)m;
    Kvrpcpb__CheckTxnStatusResponse r = KVRPCPB__CHECK_TXN_STATUS_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    KEY_OR_ANSWER(r, sl(q->primary_key), true);
    log_call(fc, st, "KvCheckTxnStatus", sl(q->primary_key), 1, q->lock_ts, 0);
    fs_tkey *k = tk_find(fc, sl(q->primary_key), false);
    Kvrpcpb__KeyError ke = KVRPCPB__KEY_ERROR__INIT;
    Kvrpcpb__TxnNotFound tnf = KVRPCPB__TXN_NOT_FOUND__INIT;
    if (k != NULL && k->locked && k->lock_ts == q->lock_ts) {
        uint64_t now_phys = q->current_ts >> 18, lock_phys = q->lock_ts >> 18;
        if (now_phys >= lock_phys + k->lock_ttl) {
            rollback_lock(k, q->lock_ts);
            r.action = KVRPCPB__ACTION__TTLExpireRollback;
        } else {
            r.lock_ttl = k->lock_ttl;
        }
    } else {
        fs_write *w = write_of(k, q->lock_ts);
        if (w != NULL) {
            r.commit_version = w->type == W_ROLLBACK ? 0 : w->commit_ts;
        } else if (q->rollback_if_not_exist) {
            rollback_lock(tk_find(fc, sl(q->primary_key), true), q->lock_ts);
            r.action = KVRPCPB__ACTION__LockNotExistRollback;
        } else {
            tnf.start_ts = q->lock_ts;
            tnf.primary_key = q->primary_key;
            ke.txn_not_found = &tnf;
            r.error = &ke;
        }
    }
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

static void h_kv_resolve_lock(fake_store *st, ProtobufCMessage *m, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    Kvrpcpb__ResolveLockRequest *q = (Kvrpcpb__ResolveLockRequest *)m;
    Kvrpcpb__ResolveLockResponse r = KVRPCPB__RESOLVE_LOCK_RESPONSE__INIT;
    ROUTE_OR_ANSWER(r, q->context);
    for (size_t i = 0; i < q->n_keys; i++)
        KEY_OR_ANSWER(r, sl(q->keys[i]), true);
    log_call(fc, st, "KvResolveLock", q->n_keys ? sl(q->keys[0]) : tkv_slice_of(NULL, 0), q->n_keys,
             q->start_version, q->commit_version);
    for (size_t j = 0; j < fc->n_tk; j++) {
        fs_tkey *k = &fc->tk[j];
        if (!k->locked || k->lock_ts != q->start_version)
            continue;
        bool wanted = q->n_keys == 0;
        for (size_t i = 0; i < q->n_keys && !wanted; i++)
            wanted = tkv_slice_eq(tkv_buf_slice(&k->key), sl(q->keys[i]));
        if (!wanted)
            continue;
        if (q->commit_version != 0)
            commit_lock(k, q->commit_version);
        else
            rollback_lock(k, q->start_version);
    }
    pack(&r.base, out);
    tkv_buf_deinit(&re.enc);
}

/* ---- dispatch --------------------------------------------------------------------------- */

typedef struct fs_method {
    const char *name;
    int batch_field;
    const ProtobufCMessageDescriptor *req;
    handler_fn fn;
} fs_method;

static const fs_method methods[] = {
    {"RawGet", 13, &kvrpcpb__raw_get_request__descriptor, h_raw_get},
    {"RawBatchGet", 14, &kvrpcpb__raw_batch_get_request__descriptor, h_raw_batch_get},
    {"RawPut", 15, &kvrpcpb__raw_put_request__descriptor, h_raw_put},
    {"RawBatchPut", 16, &kvrpcpb__raw_batch_put_request__descriptor, h_raw_batch_put},
    {"RawDelete", 17, &kvrpcpb__raw_delete_request__descriptor, h_raw_delete},
    {"RawBatchDelete", 18, &kvrpcpb__raw_batch_delete_request__descriptor, h_raw_batch_delete},
    {"RawScan", 19, &kvrpcpb__raw_scan_request__descriptor, h_raw_scan},
    {"RawDeleteRange", 20, &kvrpcpb__raw_delete_range_request__descriptor, h_raw_delete_range},
    {"RawCompareAndSwap", 0, &kvrpcpb__raw_casrequest__descriptor, h_raw_cas},
    {"RawGetKeyTTL", 0, &kvrpcpb__raw_get_key_ttlrequest__descriptor, h_raw_get_ttl},
    {"KvGet", 1, &kvrpcpb__get_request__descriptor, h_kv_get},
    {"KvScan", 2, &kvrpcpb__scan_request__descriptor, h_kv_scan},
    {"KvPrewrite", 3, &kvrpcpb__prewrite_request__descriptor, h_kv_prewrite},
    {"KvCommit", 4, &kvrpcpb__commit_request__descriptor, h_kv_commit},
    {"KvBatchGet", 7, &kvrpcpb__batch_get_request__descriptor, h_kv_batch_get},
    {"KvBatchRollback", 8, &kvrpcpb__batch_rollback_request__descriptor, h_kv_batch_rollback},
    {"KvResolveLock", 10, &kvrpcpb__resolve_lock_request__descriptor, h_kv_resolve_lock},
    {"KvCheckTxnStatus", 25, &kvrpcpb__check_txn_status_request__descriptor, h_kv_check_txn_status},
};

static const fs_method *method_by_name(const char *name)
{
    for (size_t i = 0; i < TKV_ARRAY_LEN(methods); i++)
        if (strcmp(methods[i].name, name) == 0)
            return &methods[i];
    return NULL;
}

static const fs_method *method_by_field(int field)
{
    for (size_t i = 0; i < TKV_ARRAY_LEN(methods); i++)
        if (methods[i].batch_field == field)
            return &methods[i];
    return NULL;
}

/* Serves one request; returns false when it must not be answered (injected drop). */
static bool serve(fake_store *st, const fs_method *md, ProtobufCMessage *req, tkv_buf *out)
{
    fake_cluster *fc = st->fc;
    pthread_mutex_lock(&fc->pd->mu);
    if (st->inj.drop > 0 &&
        (st->inj.drop_method[0] == '\0' || strcmp(st->inj.drop_method, md->name) == 0)) {
        st->inj.drop--;
        pthread_mutex_unlock(&fc->pd->mu);
        return false;
    }
    count(fc, md->name);
    st->requests++;
    md->fn(st, req, out);
    pthread_cond_broadcast(&fc->pd->cv);
    pthread_mutex_unlock(&fc->pd->mu);
    return true;
}

static void on_unary(rpc_call *call, tkv_slice msg, void *ud)
{
    fake_store *st = ud;
    const fs_method *md = method_by_name(strrchr(rpc_call_method(call), '/') + 1);
    ProtobufCMessage *req = NULL;
    if (md == NULL || rpc_msg_unpack(md->req, msg, &req) != 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "bad request");
        return;
    }
    tkv_buf out;
    tkv_buf_init(&out);
    if (serve(st, md, req, &out)) {
        TKV_IGNORE(rpc_call_reply(call, tkv_buf_slice(&out)));
    } else {
        pthread_mutex_lock(&st->fc->pd->mu);
        if (st->fc->n_dropped < TKV_ARRAY_LEN(st->fc->dropped))
            st->fc->dropped[st->fc->n_dropped++] = call;
        else
            rpc_call_finish(call, RPC_UNAVAILABLE, "dropped");
        pthread_mutex_unlock(&st->fc->pd->mu);
    }
    tkv_buf_deinit(&out);
    rpc_msg_free(req);
}

/* The set oneof field of a BatchCommands Request/Response message. */
static const ProtobufCFieldDescriptor *oneof_field(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d->n_fields == 0)
        return NULL;
    uint32_t which = *(const uint32_t *)((const char *)m + d->fields[0].quantifier_offset);
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].id == which)
            return &d->fields[i];
    return NULL;
}

static void on_batch_request(rpc_call *call, tkv_slice msg, void *ud)
{
    fake_store *st = ud;
    ProtobufCMessage *m = NULL;
    if (rpc_msg_unpack(&tikvpb__batch_commands_request__descriptor, msg, &m) != 0) {
        fail_msg("a BatchCommandsRequest from libtikvc does not decode");
        return;
    }
    Tikvpb__BatchCommandsRequest *q = (Tikvpb__BatchCommandsRequest *)m;
    assert_int_equal(q->n_requests, q->n_request_ids);
    pthread_mutex_lock(&st->fc->pd->mu);
    st->batch_messages++;
    st->batched_requests += (int)q->n_requests;
    pthread_mutex_unlock(&st->fc->pd->mu);
    size_t n = q->n_requests;
    Tikvpb__BatchCommandsResponse__Response *resps = calloc(n + 1, sizeof(*resps));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Tikvpb__BatchCommandsResponse__Response **rp = calloc(n + 1, sizeof(*rp));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    ProtobufCMessage **inner = calloc(n + 1, sizeof(*inner));
    uint64_t *ids = calloc(n + 1, sizeof(*ids));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const ProtobufCFieldDescriptor *f = oneof_field(&q->requests[i]->base);
        const fs_method *md = f != NULL ? method_by_field((int)f->id) : NULL;
        assert_non_null(md);
        if (f == NULL || md == NULL) /* not reached: the assert failed the test */
            break;
        ProtobufCMessage *req = *(ProtobufCMessage **)((char *)q->requests[i] + f->offset);
        tkv_buf out;
        tkv_buf_init(&out);
        if (serve(st, md, req, &out)) {
            Tikvpb__BatchCommandsResponse__Response *r = &resps[k];
            tikvpb__batch_commands_response__response__init(r);
            const ProtobufCFieldDescriptor *rf = protobuf_c_message_descriptor_get_field(
                &tikvpb__batch_commands_response__response__descriptor, f->id);
            assert_non_null(rf);
            assert_int_equal(rpc_msg_unpack(rf->descriptor, tkv_buf_slice(&out), &inner[k]), 0);
            *(uint32_t *)((char *)r + rf->quantifier_offset) = rf->id;
            *(ProtobufCMessage **)((char *)r + rf->offset) = inner[k];
            rp[k] = r;
            ids[k] = q->request_ids[i];
            k++;
        }
        tkv_buf_deinit(&out);
    }
    if (k > 0) {
        Tikvpb__BatchCommandsResponse resp = TIKVPB__BATCH_COMMANDS_RESPONSE__INIT;
        resp.responses = rp;
        resp.n_responses = k;
        resp.request_ids = ids;
        resp.n_request_ids = k;
        TKV_IGNORE(rpc_call_send_msg(call, &resp.base));
    }
    for (size_t i = 0; i < k; i++)
        rpc_msg_free(inner[i]);
    free(resps);
    free(rp);
    free(inner);
    free(ids);
    rpc_msg_free(m);
}

static void on_batch_open(rpc_call *call, void *ud)
{
    (void)call;
    fake_store *st = ud;
    pthread_mutex_lock(&st->fc->pd->mu);
    st->batch_streams++;
    pthread_mutex_unlock(&st->fc->pd->mu);
}

static void on_batch_half_close(rpc_call *call, void *ud)
{
    (void)ud;
    rpc_call_finish(call, RPC_OK, NULL);
}

static void on_batch_cancel(rpc_call *call, void *ud)
{
    (void)ud;
    rpc_call_finish(call, RPC_CANCELLED, NULL);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

void fake_cluster_start(fake_cluster *fc, fake_pd *pd, int n)
{
    memset(fc, 0, sizeof(*fc));
    fc->pd = pd;
    fc->n_stores = n;
    for (int i = 0; i < n; i++) {
        fake_store *st = &fc->stores[i];
        st->fc = fc;
        st->id = (uint64_t)i + 1;
        rpc_server_opts o;
        rpc_server_opts_init(&o);
        o.addr = "127.0.0.1:0";
        o.cq_threads = 1;
        o.tls = fpd_server_tls();
        assert_int_equal(rpc_server_new(&o, &st->srv), 0);
        char path[96];
        for (size_t m = 0; m < TKV_ARRAY_LEN(methods); m++) {
            rpc_handler h = {.type = RPC_UNARY, .on_request = on_unary, .ud = st};
            snprintf(path, sizeof(path), "/tikvpb.Tikv/%s", methods[m].name);
            assert_int_equal(rpc_server_add_method(st->srv, path, &h), 0);
        }
        rpc_handler b = {.type = RPC_BIDI_STREAMING,
                         .on_open = on_batch_open,
                         .on_request = on_batch_request,
                         .on_half_close = on_batch_half_close,
                         .on_cancel = on_batch_cancel,
                         .ud = st};
        assert_int_equal(rpc_server_add_method(st->srv, "/tikvpb.Tikv/BatchCommands", &b), 0);
        assert_int_equal(rpc_server_start(st->srv), 0);
        snprintf(st->addr, sizeof(st->addr), "127.0.0.1:%d", rpc_server_port(st->srv));
        fake_pd_add_store(pd, st->id, st->addr);
    }
}

void fake_cluster_stop(fake_cluster *fc)
{
    pthread_mutex_lock(&fc->pd->mu);
    for (size_t i = 0; i < fc->n_dropped; i++)
        rpc_call_finish(fc->dropped[i], RPC_UNAVAILABLE, "dropped");
    fc->n_dropped = 0;
    pthread_mutex_unlock(&fc->pd->mu);
    for (int i = 0; i < fc->n_stores; i++) {
        if (fc->stores[i].srv == NULL)
            continue;
        rpc_server_shutdown(fc->stores[i].srv, 0);
        rpc_server_free(fc->stores[i].srv);
    }
    for (size_t i = 0; i < fc->n_raw; i++) {
        tkv_buf_deinit(&fc->raw[i].key);
        tkv_buf_deinit(&fc->raw[i].value);
    }
    free(fc->raw);
    for (size_t i = 0; i < fc->n_tk; i++) {
        fs_tkey *k = &fc->tk[i];
        tkv_buf_deinit(&k->key);
        unlock(k);
        for (size_t j = 0; j < k->n_w; j++)
            tkv_buf_deinit(&k->w[j].value);
        free(k->w);
    }
    free(fc->tk);
}

void fake_cluster_kill_store(fake_cluster *fc, uint64_t id)
{
    fake_store *st = fake_cluster_store(fc, id);
    rpc_server *s = st->srv;
    st->srv = NULL;
    rpc_server_shutdown(s, 0);
    rpc_server_free(s);
}

fake_store *fake_cluster_store(fake_cluster *fc, uint64_t id)
{
    assert_true(id >= 1 && id <= (uint64_t)fc->n_stores);
    return &fc->stores[id - 1];
}

int fake_cluster_count(fake_cluster *fc, const char *method)
{
    pthread_mutex_lock(&fc->pd->mu);
    int n = 0;
    for (size_t i = 0; i < fc->n_counts; i++)
        if (strcmp(fc->counts[i].name, method) == 0)
            n = fc->counts[i].n;
    pthread_mutex_unlock(&fc->pd->mu);
    return n;
}

void fake_cluster_raw_put(fake_cluster *fc, tkv_slice key, tkv_slice value)
{
    pthread_mutex_lock(&fc->pd->mu);
    raw_put(fc, key, value, 0);
    pthread_mutex_unlock(&fc->pd->mu);
}

bool fake_cluster_raw_get(fake_cluster *fc, tkv_slice key, tkv_buf *value)
{
    pthread_mutex_lock(&fc->pd->mu);
    fs_raw *e = raw_find(fc, key);
    if (e != NULL)
        buf_set(value, tkv_buf_slice(&e->value));
    pthread_mutex_unlock(&fc->pd->mu);
    return e != NULL;
}

size_t fake_cluster_raw_count(fake_cluster *fc)
{
    pthread_mutex_lock(&fc->pd->mu);
    size_t n = fc->n_raw;
    pthread_mutex_unlock(&fc->pd->mu);
    return n;
}

void fake_cluster_put_lock(fake_cluster *fc, tkv_slice key, tkv_slice primary, uint64_t start_ts,
                           uint64_t ttl_ms, tkv_slice value)
{
    pthread_mutex_lock(&fc->pd->mu);
    fs_tkey *k = tk_find(fc, key, true);
    k->locked = true;
    tkv_buf_init(&k->primary);
    tkv_buf_init(&k->lock_value);
    buf_set(&k->primary, primary);
    buf_set(&k->lock_value, value);
    k->lock_ts = start_ts;
    k->lock_ttl = ttl_ms;
    k->lock_op = KVRPCPB__OP__Put;
    pthread_mutex_unlock(&fc->pd->mu);
}

void fake_cluster_commit_key(fake_cluster *fc, tkv_slice key, uint64_t start_ts, uint64_t commit_ts)
{
    pthread_mutex_lock(&fc->pd->mu);
    fs_tkey *k = tk_find(fc, key, false);
    assert_non_null(k);
    assert_true(k->locked && k->lock_ts == start_ts);
    commit_lock(k, commit_ts);
    pthread_mutex_unlock(&fc->pd->mu);
}

bool fake_cluster_has_lock(fake_cluster *fc, tkv_slice key)
{
    pthread_mutex_lock(&fc->pd->mu);
    fs_tkey *k = tk_find(fc, key, false);
    bool locked = k != NULL && k->locked;
    pthread_mutex_unlock(&fc->pd->mu);
    return locked;
}

bool fake_cluster_txn_read(fake_cluster *fc, tkv_slice key, uint64_t ts, tkv_buf *value)
{
    pthread_mutex_lock(&fc->pd->mu);
    tkv_slice v;
    bool found = read_at(tk_find(fc, key, false), ts, &v);
    if (found)
        buf_set(value, v);
    pthread_mutex_unlock(&fc->pd->mu);
    return found;
}
