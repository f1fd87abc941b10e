/*
 * region.c: metapb.Region helpers and the store meta (the poller's index of region ranges
 * and tombstones on this store, TiKV's StoreMeta).
 */
#include <stdlib.h>

#include "base/keys.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

bool rstore__key_in_region(const Metapb__Region *r, tkv_slice key)
{
    tkv_slice start = tkv_slice_of(r->start_key.data, r->start_key.len);
    tkv_slice end = tkv_slice_of(r->end_key.data, r->end_key.len);
    if (tkv_slice_cmp(key, start) < 0)
        return false;
    return end.len == 0 || tkv_slice_cmp(key, end) < 0;
}

const Metapb__Peer *rstore__region_peer(const Metapb__Region *r, uint64_t peer_id)
{
    for (size_t i = 0; i < r->n_peers; i++)
        if (r->peers[i]->id == peer_id)
            return r->peers[i];
    return NULL;
}

const Metapb__Peer *rstore__region_store_peer(const Metapb__Region *r, uint64_t store_id)
{
    for (size_t i = 0; i < r->n_peers; i++)
        if (r->peers[i]->store_id == store_id)
            return r->peers[i];
    return NULL;
}

void rstore__region_conf_state(const Metapb__Region *r, raft_conf_state *cs)
{
    memset(cs, 0, sizeof(*cs));
    for (size_t i = 0; i < r->n_peers; i++) {
        const Metapb__Peer *p = r->peers[i];
        if (p->role == METAPB__PEER_ROLE__Learner) {
            if (cs->n_learners < RAFT_MAX_MEMBERS)
                cs->learners[cs->n_learners++] = p->id;
        } else if (cs->n_voters < RAFT_MAX_MEMBERS) {
            cs->voters[cs->n_voters++] = p->id;
        }
    }
}

Metapb__Region *rstore__region_dup(const Metapb__Region *r)
{
    Metapb__Region *c = stor_region_dup(r);
    if (c == NULL) {
        TKV_LOG_FATAL("out of memory copying a region");
        abort();
    }
    return c;
}

int rstore__region_canonical(Metapb__Region **r)
{
    size_t len = protobuf_c_message_get_packed_size(&(*r)->base);
    uint8_t *buf = tkv_malloc(len ? len : 1);
    if (buf == NULL)
        return -ENOMEM;
    protobuf_c_message_pack(&(*r)->base, buf);
    Metapb__Region *copy = metapb__region__unpack(NULL, len, buf);
    tkv_free(buf);
    if (copy == NULL)
        return TKV_ECORRUPT; /* or out of memory: either way not a region to keep */
    rstore__region_free(*r);
    *r = copy;
    return 0;
}

void rstore__region_free(Metapb__Region *r)
{
    if (r)
        protobuf_c_message_free_unpacked(&r->base, NULL);
}

Metapb__Region *rstore__region_with(const Metapb__Region *r, Metapb__Peer *const *peers, size_t n,
                                    uint64_t conf_ver, uint64_t version, tkv_slice start,
                                    tkv_slice end, uint64_t id)
{
    Metapb__Region tmp = *r;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    ep.conf_ver = conf_ver;
    ep.version = version;
    tmp.region_epoch = &ep;
    tmp.peers = (Metapb__Peer **)peers;
    tmp.n_peers = n;
    tmp.start_key.data = (uint8_t *)start.data;
    tmp.start_key.len = start.len;
    tmp.end_key.data = (uint8_t *)end.data;
    tmp.end_key.len = end.len;
    tmp.id = id;
    return rstore__region_dup(&tmp);
}

int rstore__region_data_bounds(const Metapb__Region *r, tkv_buf *lo, tkv_buf *hi)
{
    tkv_buf_init(lo);
    tkv_buf_init(hi);
    int rc = tkv_keys_data_key(lo, tkv_slice_of(r->start_key.data, r->start_key.len));
    if (rc == 0)
        rc = tkv_keys_data_bound(hi, tkv_slice_of(r->end_key.data, r->end_key.len), true);
    return rc;
}

/* ---- store meta ----------------------------------------------------------------------- */

static void die_oom(void)
{
    TKV_LOG_FATAL("out of memory in the store meta");
    abort();
}

void rstore__meta_deinit(rstore_meta *m)
{
    for (size_t i = 0; i < m->n_ranges; i++) {
        tkv_buf_deinit(&m->ranges[i].start);
        tkv_buf_deinit(&m->ranges[i].end);
    }
    tkv_free(m->ranges);
    tkv_free(m->tombs);
    memset(m, 0, sizeof(*m));
}

void rstore__meta_remove(rstore_meta *m, uint64_t region_id)
{
    for (size_t i = 0; i < m->n_ranges; i++) {
        if (m->ranges[i].region_id == region_id) {
            tkv_buf_deinit(&m->ranges[i].start);
            tkv_buf_deinit(&m->ranges[i].end);
            memmove(&m->ranges[i], &m->ranges[i + 1], (m->n_ranges - i - 1) * sizeof(m->ranges[0]));
            m->n_ranges--;
            return;
        }
    }
}

void rstore__meta_set(rstore_meta *m, const Metapb__Region *region)
{
    rstore__meta_remove(m, region->id);
    if (m->n_ranges == m->cap_ranges) {
        size_t cap = m->cap_ranges ? m->cap_ranges * 2 : 16;
        rstore_range *r = tkv_realloc(m->ranges, cap * sizeof(*r));
        if (r == NULL)
            die_oom();
        m->ranges = r;
        m->cap_ranges = cap;
    }
    tkv_slice start = tkv_slice_of(region->start_key.data, region->start_key.len);
    size_t pos = 0;
    while (pos < m->n_ranges && tkv_slice_cmp(tkv_buf_slice(&m->ranges[pos].start), start) < 0)
        pos++;
    memmove(&m->ranges[pos + 1], &m->ranges[pos], (m->n_ranges - pos) * sizeof(m->ranges[0]));
    rstore_range *r = &m->ranges[pos];
    r->region_id = region->id;
    tkv_buf_init(&r->start);
    tkv_buf_init(&r->end);
    if (tkv_buf_set(&r->start, region->start_key.data, region->start_key.len) != 0 ||
        tkv_buf_set(&r->end, region->end_key.data, region->end_key.len) != 0)
        die_oom();
    m->n_ranges++;
}

/* Returns whether [a0, a1) and [b0, b1) overlap (empty ends are +infinity). */
static bool overlaps(tkv_slice a0, tkv_slice a1, tkv_slice b0, tkv_slice b1)
{
    bool a_before_b = a1.len > 0 && tkv_slice_cmp(a1, b0) <= 0;
    bool b_before_a = b1.len > 0 && tkv_slice_cmp(b1, a0) <= 0;
    return !a_before_b && !b_before_a;
}

uint64_t rstore__meta_overlap(const rstore_meta *m, tkv_slice start, tkv_slice end, uint64_t except)
{
    for (size_t i = 0; i < m->n_ranges; i++) {
        const rstore_range *r = &m->ranges[i];
        if (r->region_id == except)
            continue;
        if (overlaps(start, end, tkv_buf_slice(&r->start), tkv_buf_slice(&r->end)))
            return r->region_id;
    }
    return 0;
}

void rstore__meta_add_tombstone(rstore_meta *m, const Metapb__Region *region, uint64_t peer_id)
{
    rstore__meta_remove_tombstone(m, region->id);
    if (m->n_tombs == m->cap_tombs) {
        size_t cap = m->cap_tombs ? m->cap_tombs * 2 : 16;
        rstore_tombstone *t = tkv_realloc(m->tombs, cap * sizeof(*t));
        if (t == NULL)
            die_oom();
        m->tombs = t;
        m->cap_tombs = cap;
    }
    rstore_tombstone *t = &m->tombs[m->n_tombs++];
    memset(t, 0, sizeof(*t));
    t->region_id = region->id;
    t->peer_id = peer_id;
    if (region->region_epoch) {
        t->conf_ver = region->region_epoch->conf_ver;
        t->version = region->region_epoch->version;
    }
    for (size_t i = 0; i < region->n_peers && t->n_members < RAFT_MAX_MEMBERS; i++)
        t->members[t->n_members++] = region->peers[i]->id;
}

const rstore_tombstone *rstore__meta_tombstone(const rstore_meta *m, uint64_t region_id)
{
    for (size_t i = 0; i < m->n_tombs; i++)
        if (m->tombs[i].region_id == region_id)
            return &m->tombs[i];
    return NULL;
}

void rstore__meta_remove_tombstone(rstore_meta *m, uint64_t region_id)
{
    for (size_t i = 0; i < m->n_tombs; i++) {
        if (m->tombs[i].region_id == region_id) {
            m->tombs[i] = m->tombs[m->n_tombs - 1];
            m->n_tombs--;
            return;
        }
    }
}
