/*
 * tc_cache.c: the region cache and the store table.
 *
 * A cache is a sorted array of disjoint regions under a read-write lock; lookups take a
 * reference. Inserting a region drops the cached regions it overlaps (a split or merge seen
 * through PD or EpochNotMatch replaces them). A region's leader changes in place (NotLeader
 * with a hint); anything else makes a new region object, so a task routed with an old one
 * keeps a consistent view.
 *
 * Transactional caches hold decoded keys: PD and TiKV keep transactional region boundaries
 * memcomparable-encoded, so lookups encode the key for PD and the boundaries PD returns are
 * decoded, as client-go's CodecPDClient does (empty boundaries stay empty).
 */
#include <inttypes.h>
#include <stdio.h>

#include "base/codec.h"
#include "base/log.h"
#include "client/tc_int.h"

/* ---- regions ---------------------------------------------------------------------------- */

static void region_free(tc_region *r)
{
    tkv_buf_deinit(&r->start);
    tkv_buf_deinit(&r->end);
    tkv_free(r->peer_ids);
    tkv_free(r->store_ids);
    tkv_free(r);
}

void tikvc__region_unref(tc_region *r)
{
    if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1)
        region_free(r);
}

static tc_region *region_ref(tc_region *r)
{
    atomic_fetch_add(&r->refs, 1);
    return r;
}

bool tikvc__region_contains(const tc_region *r, tkv_slice key)
{
    return tkv_slice_cmp(tkv_buf_slice(&r->start), key) <= 0 &&
           (r->end.len == 0 || tkv_slice_cmp(key, tkv_buf_slice(&r->end)) < 0);
}

/* Sets @out to @raw, decoded from memcomparable form with @codec (empty stays empty). */
static int boundary(bool codec, ProtobufCBinaryData raw, tkv_buf *out)
{
    if (!codec || raw.len == 0)
        return tkv_buf_set(out, raw.data, raw.len) == 0 ? 0 : TIKVC_ENOMEM;
    tkv_slice in = tkv_slice_of(raw.data, raw.len);
    int rc = tkv_codec_decode_bytes(&in, out);
    if (rc == -ENOMEM)
        return TIKVC_ENOMEM;
    return rc == 0 ? 0 : TIKVC_ECORRUPT;
}

int tikvc__region_from_pb(bool codec, const Metapb__Region *m, const Metapb__Peer *leader,
                          uint64_t leader_store, tc_region **out)
{
    if (m->n_peers == 0 || m->id == 0)
        return tikvc__fail(TIKVC_ECORRUPT, "region %" PRIu64 " comes without peers", m->id);
    tc_region *r = tkv_calloc(1, sizeof(*r));
    if (r == NULL)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    atomic_init(&r->refs, 1);
    r->id = m->id;
    if (m->region_epoch != NULL) {
        r->conf_ver = m->region_epoch->conf_ver;
        r->version = m->region_epoch->version;
    }
    tkv_buf_init(&r->start);
    tkv_buf_init(&r->end);
    r->peer_ids = tkv_calloc(m->n_peers, sizeof(uint64_t));
    r->store_ids = tkv_calloc(m->n_peers, sizeof(uint64_t));
    int rc = r->peer_ids == NULL || r->store_ids == NULL ? TIKVC_ENOMEM : 0;
    if (rc == 0)
        rc = boundary(codec, m->start_key, &r->start);
    if (rc == 0)
        rc = boundary(codec, m->end_key, &r->end);
    if (rc != 0) {
        region_free(r);
        return tikvc__fail(rc,
                           rc == TIKVC_ECORRUPT
                               ? "failed to decode region range key (region %" PRIu64 ")"
                               : "out of memory (region %" PRIu64 ")",
                           m->id);
    }
    r->n_peers = m->n_peers;
    int lead = 0;
    for (size_t i = 0; i < m->n_peers; i++) {
        r->peer_ids[i] = m->peers[i]->id;
        r->store_ids[i] = m->peers[i]->store_id;
        if (leader_store != 0 ? r->store_ids[i] == leader_store
                              : (leader != NULL && leader->id != 0 && leader->id == r->peer_ids[i]))
            lead = (int)i;
    }
    atomic_init(&r->leader, lead);
    atomic_init(&r->invalid, false);
    *out = r;
    return 0;
}

/* ---- cache ------------------------------------------------------------------------------ */

void tikvc__cache_init(tc_cache *cc, bool codec)
{
    memset(cc, 0, sizeof(*cc));
    TKV_ASSERT(pthread_rwlock_init(&cc->lk, NULL) == 0);
    cc->codec = codec;
}

void tikvc__cache_deinit(tc_cache *cc)
{
    for (size_t i = 0; i < cc->n; i++)
        tikvc__region_unref(cc->v[i]);
    tkv_free(cc->v);
    pthread_rwlock_destroy(&cc->lk);
}

/* Returns the index of the last region whose start is <= @key (strictly < with @strict),
 * or -1. Under the lock. */
static long last_start_before(tc_cache *cc, tkv_slice key, bool strict)
{
    long lo = 0, hi = (long)cc->n - 1, ans = -1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        int c = tkv_slice_cmp(tkv_buf_slice(&cc->v[mid]->start), key);
        if (c < 0 || (c == 0 && !strict)) {
            ans = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return ans;
}

tc_region *tikvc__cache_find(tc_cache *cc, tkv_slice key, bool end_key)
{
    tc_region *found = NULL;
    pthread_rwlock_rdlock(&cc->lk);
    if (!end_key) {
        long i = last_start_before(cc, key, false);
        if (i >= 0 && tikvc__region_contains(cc->v[i], key))
            found = cc->v[i];
    } else if (key.len == 0) {
        if (cc->n > 0 && cc->v[cc->n - 1]->end.len == 0)
            found = cc->v[cc->n - 1];
    } else {
        /* The region holding the keys just below @key: start < key <= end. */
        long i = last_start_before(cc, key, true);
        if (i >= 0) {
            tc_region *r = cc->v[i];
            if (r->end.len == 0 || tkv_slice_cmp(key, tkv_buf_slice(&r->end)) <= 0)
                found = r;
        }
    }
    if (found != NULL && atomic_load(&found->invalid))
        found = NULL;
    if (found != NULL)
        region_ref(found);
    pthread_rwlock_unlock(&cc->lk);
    return found;
}

/* True when [a.start, a.end) and [b.start, b.end) intersect. */
static bool overlaps(const tc_region *a, const tc_region *b)
{
    bool a_before_b_end =
        b->end.len == 0 || tkv_slice_cmp(tkv_buf_slice(&a->start), tkv_buf_slice(&b->end)) < 0;
    bool b_before_a_end =
        a->end.len == 0 || tkv_slice_cmp(tkv_buf_slice(&b->start), tkv_buf_slice(&a->end)) < 0;
    return a_before_b_end && b_before_a_end;
}

int tikvc__cache_insert(tc_cache *cc, tc_region *r)
{
    pthread_rwlock_wrlock(&cc->lk);
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    if (tikvc__grow((void **)&cc->v, &cc->cap, cc->n + 1, sizeof(*cc->v)) != 0) {
        pthread_rwlock_unlock(&cc->lk);
        return TIKVC_ENOMEM;
    }
    /* Cached regions are disjoint and sorted: the overlapped ones are consecutive. */
    long i = last_start_before(cc, tkv_buf_slice(&r->start), false);
    size_t first = i >= 0 && overlaps(cc->v[i], r) ? (size_t)i : (size_t)(i + 1);
    size_t last = first;
    while (last < cc->n && overlaps(cc->v[last], r)) {
        /* An older view of the same region never replaces a newer one. */
        tc_region *old = cc->v[last];
        if (old->id == r->id && (old->version > r->version || old->conf_ver > r->conf_ver) &&
            !atomic_load(&old->invalid)) {
            pthread_rwlock_unlock(&cc->lk);
            return 0;
        }
        last++;
    }
    for (size_t k = first; k < last; k++)
        tikvc__region_unref(cc->v[k]);
    size_t removed = last - first;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    memmove(&cc->v[first + 1], &cc->v[last], (cc->n - last) * sizeof(*cc->v));
    cc->n = cc->n - removed + 1;
    cc->v[first] = region_ref(r);
    pthread_rwlock_unlock(&cc->lk);
    return 0;
}

void tikvc__cache_invalidate(tc_cache *cc, tc_region *r)
{
    (void)cc;
    atomic_store(&r->invalid, true);
}

size_t tikvc__cache_size(tc_cache *cc)
{
    pthread_rwlock_rdlock(&cc->lk);
    size_t n = cc->n;
    pthread_rwlock_unlock(&cc->lk);
    return n;
}

/* Maps a pdc failure to a TIKVC code, keeping pdc's message. */
static int pd_failure(int rc, const char *what)
{
    return tikvc__fail(tikvc__code(rc), "%s: %s", what, pdc_errmsg(NULL));
}

int tikvc__cache_load(tikvc_client *c, tc_cache *cc, tkv_slice key, bool end_key, tc_region **out)
{
    tkv_buf enc;
    tkv_buf_init(&enc);
    tkv_slice pd_key = key;
    if (cc->codec) {
        if (tkv_codec_encode_bytes(&enc, key) != 0)
            return tikvc__fail(TIKVC_ENOMEM, "out of memory");
        pd_key = tkv_buf_slice(&enc);
    }
    Pdpb__GetRegionResponse *r = NULL;
    int rc;
    if (end_key && key.len == 0) {
        /* The last region: the one holding the largest keys. PD has no direct call for it,
         * so scan from the start and keep the one with an open end. */
        Pdpb__ScanRegionsResponse *s = NULL;
        rc = pdc_scan_regions(c->pd, tkv_slice_of(NULL, 0), tkv_slice_of(NULL, 0), 0, &s);
        if (rc == 0) {
            tc_region *last = NULL;
            for (size_t i = 0; i < s->n_regions && rc == 0; i++) {
                Pdpb__Region *g = s->regions[i];
                if (g->region == NULL || g->region->end_key.len != 0)
                    continue;
                rc = tikvc__region_from_pb(cc->codec, g->region, g->leader, 0, &last);
            }
            pdc_msg_free(s);
            if (rc != 0) {
                tkv_buf_deinit(&enc);
                return rc;
            }
            if (last == NULL) {
                tkv_buf_deinit(&enc);
                return tikvc__fail(TIKVC_EREGION, "PD has no region reaching the end");
            }
            tkv_buf_deinit(&enc);
            rc = tikvc__cache_insert(cc, last);
            if (rc != 0) {
                tikvc__region_unref(last);
                return tikvc__fail(rc, "out of memory");
            }
            *out = last;
            return 0;
        }
        tkv_buf_deinit(&enc);
        return pd_failure(rc, "scan regions");
    }
    rc = pdc_get_region(c->pd, pd_key, &r);
    /* For the keys below @key: a region starting exactly at @key is the wrong one; the one
     * before it is wanted (client-go's loadRegion with isEndKey). */
    if (rc == 0 && end_key && r->region->start_key.len != 0) {
        tkv_slice start = tkv_slice_of(r->region->start_key.data, r->region->start_key.len);
        if (tkv_slice_eq(start, pd_key)) {
            pdc_msg_free(r);
            r = NULL;
            rc = pdc_get_prev_region(c->pd, pd_key, &r);
        }
    }
    tkv_buf_deinit(&enc);
    if (rc != 0)
        return pd_failure(rc, "load region from PD");
    tc_region *reg = NULL;
    rc = tikvc__region_from_pb(cc->codec, r->region, r->leader, 0, &reg);
    pdc_msg_free(r);
    if (rc != 0)
        return rc;
    rc = tikvc__cache_insert(cc, reg);
    if (rc != 0) {
        tikvc__region_unref(reg);
        return tikvc__fail(rc, "out of memory");
    }
    *out = reg;
    return 0;
}

/* ---- stores ----------------------------------------------------------------------------- */

tc_store *tikvc__store_get(tikvc_client *c, uint64_t id)
{
    pthread_mutex_lock(&c->stores_mu);
    for (size_t i = 0; i < c->n_stores; i++) {
        if (c->stores[i]->id == id) {
            tc_store *s = c->stores[i];
            pthread_mutex_unlock(&c->stores_mu);
            return s;
        }
    }
    tc_store *s = NULL;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    if (tikvc__grow((void **)&c->stores, &c->cap_stores, c->n_stores + 1, sizeof(*c->stores)) != 0)
        goto out;
    s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        goto out;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    s->bs = tkv_calloc((size_t)c->opts.conns_per_store, sizeof(*s->bs));
    if (s->bs == NULL) {
        tkv_free(s);
        s = NULL;
        goto out;
    }
    s->id = id;
    TKV_ASSERT(pthread_mutex_init(&s->mu, NULL) == 0);
    c->stores[c->n_stores++] = s;
out:
    pthread_mutex_unlock(&c->stores_mu);
    if (s == NULL)
        tikvc__set_errmsg("out of memory");
    return s;
}

bool tikvc__store_ready(tc_store *s)
{
    pthread_mutex_lock(&s->mu);
    bool ok = s->addr != NULL && !s->stale;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

int tikvc__store_resolve(tikvc_client *c, tc_store *s)
{
    Pdpb__GetStoreResponse *r = NULL;
    int rc = pdc_get_store(c->pd, s->id, &r);
    if (rc != 0)
        return pd_failure(rc, "look up store");
    const Metapb__Store *st = r->store;
    if (st->state == METAPB__STORE_STATE__Tombstone || st->address == NULL ||
        st->address[0] == '\0') {
        pdc_msg_free(r);
        return tikvc__fail(TIKVC_EUNAVAILABLE, "store %" PRIu64 " is gone or has no address",
                           s->id);
    }
    char *addr = tkv_strdup(st->address);
    pdc_msg_free(r);
    if (addr == NULL)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    pthread_mutex_lock(&s->mu);
    bool moved = s->addr != NULL && strcmp(s->addr, addr) != 0;
    if (s->addr == NULL || moved) {
        tkv_free(s->addr);
        s->addr = addr;
        addr = NULL;
    }
    s->stale = false;
    pthread_mutex_unlock(&s->mu);
    tkv_free(addr);
    if (moved) {
        TKV_LOG_INFO("store address changed", TKV_LF_U64("store_id", s->id));
        tikvc__store_close(c, s);
    }
    return 0;
}

void tikvc__store_mark_stale(tikvc_client *c, tc_store *s)
{
    (void)c;
    pthread_mutex_lock(&s->mu);
    s->stale = true;
    pthread_mutex_unlock(&s->mu);
}
