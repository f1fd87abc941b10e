/*
 * peer_storage.c: one region's Raft storage (TiKV's PeerStorage): the raft log and hard
 * state in the raft engine, the truncated state from the apply state, an in-memory cache of
 * the newest entries, and snapshots generated on demand.
 *
 * Thread: the poller's (the Raft node calls it from raft_node_step / ready).
 */
#include <stdlib.h>

#include "base/keys.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

/* Entries kept in the cache beyond the applied index, at most. */
#define CACHE_MAX_BYTES (8u << 20)

void rstore__ps_init(rstore_peer_storage *ps, struct rstore *s, struct rstore_peer *peer,
                     uint64_t region_id)
{
    memset(ps, 0, sizeof(*ps));
    ps->store = s;
    ps->peer = peer;
    ps->region_id = region_id;
    raft_entry_vec_init(&ps->cache);
}

void rstore__ps_deinit(rstore_peer_storage *ps)
{
    raft_entry_vec_deinit(&ps->cache);
    raft_snapshot_deinit(&ps->gen);
}

/* Reads entry @index from the raft engine into @e (owned). */
static int read_entry(rstore_peer_storage *ps, uint64_t index, raft_entry *e)
{
    uint8_t key[TKV_KEYS_RAFT_LOG_KEY_LEN];
    tkv_keys_raft_log_key(key, ps->region_id, index);
    tkv_buf v;
    tkv_buf_init(&v);
    bool found;
    int rc =
        eng_get(ps->store->opts.raft, ENG_CF_DEFAULT, tkv_slice_of(key, sizeof(key)), &v, &found);
    if (rc == 0 && !found)
        rc = TKV_EUNAVAILABLE;
    if (rc == 0)
        rc = rstore__entry_decode(tkv_buf_slice(&v), e);
    if (rc == 0 && (e->index != index)) {
        raft_entry_deinit(e);
        rc = TKV_ECORRUPT;
    }
    tkv_buf_deinit(&v);
    if (rc != 0 && rc != -ENOMEM)
        TKV_LOG_ERROR("raft log entry unreadable", TKV_LF_U64("region_id", ps->region_id),
                      TKV_LF_U64("index", index), TKV_LF_ERR("err", rc));
    return rc;
}

int rstore__ps_load(rstore_peer_storage *ps, const Metapb__Region *region)
{
    rstore *s = ps->store;
    rstore_raft_state rs;
    rstore_apply_state as;
    bool has_raft, has_apply;
    int rc = rstore__get_raft_state(s->opts.raft, ps->region_id, &rs, &has_raft);
    if (rc == 0)
        rc = rstore__get_apply_state(s->opts.kv, ps->region_id, &as, &has_apply);
    if (rc != 0)
        return rc;
    if (!has_apply)
        return TKV_ECORRUPT; /* an initialized region always has an apply state */
    if (!has_raft) {
        /* A region created by a split: its raft state was never written. */
        rs.hs.term = RSTORE_INIT_LOG_TERM;
        rs.hs.vote = 0;
        rs.hs.commit = RSTORE_INIT_LOG_INDEX;
        rs.last_index = RSTORE_INIT_LOG_INDEX;
    }
    if (rs.last_index < as.truncated_index) {
        /* A snapshot reached the kv engine but the raft state written after it did not. */
        rs.last_index = as.truncated_index;
        rs.hs.commit = TKV_MAX(rs.hs.commit, as.truncated_index);
        rs.hs.term = TKV_MAX(rs.hs.term, as.truncated_term);
    }
    if (rs.last_index < as.applied_index)
        return TKV_ECORRUPT;
    rs.hs.commit = TKV_MAX(rs.hs.commit, as.applied_index);
    ps->hs = rs.hs;
    ps->last_index = rs.last_index;
    ps->truncated_index = as.truncated_index;
    ps->truncated_term = as.truncated_term;
    ps->applied_index = as.applied_index;
    if (ps->last_index == ps->truncated_index) {
        ps->last_term = ps->truncated_term;
    } else {
        raft_entry e;
        rc = read_entry(ps, ps->last_index, &e);
        if (rc != 0)
            return rc == TKV_EUNAVAILABLE ? TKV_ECORRUPT : rc;
        ps->last_term = e.term;
        raft_entry_deinit(&e);
    }
    /* Terms never go down along the log, and no entry is newer than the hard state's term (a
     * node on such a log would append entries of an older term after it). */
    if (ps->last_term < ps->truncated_term || ps->last_term > ps->hs.term)
        return TKV_ECORRUPT;
    rstore__region_conf_state(region, &ps->cs);
    return 0;
}

/* ---- raft_storage ----------------------------------------------------------------------- */

static int ps_initial_state(void *ctx, raft_hard_state *hs, raft_conf_state *cs)
{
    rstore_peer_storage *ps = ctx;
    *hs = ps->hs;
    *cs = ps->cs;
    return 0;
}

static const raft_entry *cached(const rstore_peer_storage *ps, uint64_t index)
{
    if (ps->cache.len == 0 || index < ps->cache_first || index >= ps->cache_first + ps->cache.len)
        return NULL;
    return &ps->cache.items[index - ps->cache_first];
}

static int ps_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes, raft_entry_vec *out)
{
    rstore_peer_storage *ps = ctx;
    if (lo <= ps->truncated_index)
        return TKV_ECOMPACTED;
    if (hi > ps->last_index + 1)
        return TKV_EUNAVAILABLE;
    uint64_t total = 0;
    for (uint64_t i = lo; i < hi; i++) {
        const raft_entry *c = cached(ps, i);
        raft_entry tmp;
        int rc = 0;
        if (c == NULL) {
            rc = read_entry(ps, i, &tmp);
            if (rc != 0)
                return rc;
            c = &tmp;
        }
        uint64_t sz = raft_entry_size(c);
        bool stop = i > lo && total + sz > max_bytes;
        if (!stop)
            rc = raft_entry_vec_push_copy(out, c);
        if (c == &tmp)
            raft_entry_deinit(&tmp);
        if (rc != 0)
            return rc;
        if (stop)
            break;
        total += sz;
    }
    return 0;
}

static int ps_term(void *ctx, uint64_t index, uint64_t *term)
{
    rstore_peer_storage *ps = ctx;
    if (index == ps->truncated_index) {
        *term = ps->truncated_term;
        return 0;
    }
    if (index < ps->truncated_index)
        return TKV_ECOMPACTED;
    if (index > ps->last_index)
        return TKV_EUNAVAILABLE;
    if (index == ps->last_index) {
        *term = ps->last_term;
        return 0;
    }
    const raft_entry *c = cached(ps, index);
    if (c) {
        *term = c->term;
        return 0;
    }
    raft_entry e;
    int rc = read_entry(ps, index, &e);
    if (rc != 0)
        return rc;
    *term = e.term;
    raft_entry_deinit(&e);
    return 0;
}

static uint64_t ps_first_index(void *ctx)
{
    rstore_peer_storage *ps = ctx;
    return ps->truncated_index + 1;
}

static uint64_t ps_last_index(void *ctx)
{
    rstore_peer_storage *ps = ctx;
    return ps->last_index;
}

/* Whether the generated snapshot carries an older region epoch than the peer's region. */
static bool gen_epoch_stale(const rstore_peer_storage *ps)
{
    const Metapb__Region *r = ps->peer ? ps->peer->region : NULL;
    if (r == NULL || r->region_epoch == NULL)
        return false;
    return ps->gen_version < r->region_epoch->version ||
           ps->gen_conf_ver < r->region_epoch->conf_ver;
}

static int ps_snapshot(void *ctx, uint64_t request_index, raft_snapshot *out)
{
    rstore_peer_storage *ps = ctx;
    if (ps->gen.metadata.index > 0 && gen_epoch_stale(ps)) {
        /* Made before a split or a membership change: a new peer on a store that already
         * has the split-off regions would drop it as overlapping, forever (TiKV regenerates
         * a snapshot whose epoch is stale too). */
        raft_snapshot_deinit(&ps->gen);
    }
    if (ps->gen.metadata.index > 0 && ps->gen.metadata.index >= request_index)
        return raft_snapshot_copy(out, &ps->gen);
    if (!ps->gen_pending) {
        ps->gen_pending = true;
        rstore_apply_task *t = rstore__apply_task_new(RSTORE_APPLY_GEN_SNAP, ps->region_id);
        t->peer_id = ps->peer ? ps->peer->peer_id : 0;
        rstore__apply_push(&ps->store->apply, t, t);
        TKV_LOG_INFO("requesting snapshot", TKV_LF_U64("region_id", ps->region_id),
                     TKV_LF_U64("request_index", request_index));
    }
    return TKV_EUNAVAILABLE;
}

raft_storage rstore__ps_iface(rstore_peer_storage *ps)
{
    raft_storage st = {
        .ctx = ps,
        .initial_state = ps_initial_state,
        .entries = ps_entries,
        .term = ps_term,
        .first_index = ps_first_index,
        .last_index = ps_last_index,
        .snapshot = ps_snapshot,
    };
    return st;
}

/* ---- writes ----------------------------------------------------------------------------- */

static void cache_drop_front(rstore_peer_storage *ps, size_t k)
{
    if (k == 0)
        return;
    if (k >= ps->cache.len) {
        raft_entry_vec_truncate(&ps->cache, 0);
        ps->cache_bytes = 0;
        return;
    }
    for (size_t i = 0; i < k; i++) {
        uint64_t sz = raft_entry_size(&ps->cache.items[i]);
        ps->cache_bytes = sz < ps->cache_bytes ? ps->cache_bytes - sz : 0;
        raft_entry_deinit(&ps->cache.items[i]);
    }
    memmove(ps->cache.items, ps->cache.items + k, (ps->cache.len - k) * sizeof(raft_entry));
    ps->cache.len -= k;
    ps->cache_first += k;
}

static void cache_clear(rstore_peer_storage *ps)
{
    raft_entry_vec_truncate(&ps->cache, 0);
    ps->cache_bytes = 0;
}

int rstore__ps_append(rstore_peer_storage *ps, const raft_entry *ents, size_t n, eng_batch *b)
{
    if (n == 0)
        return 0;
    uint8_t key[TKV_KEYS_RAFT_LOG_KEY_LEN];
    tkv_buf v;
    tkv_buf_init(&v);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = rstore__entry_encode(&ents[i], &v);
        tkv_keys_raft_log_key(key, ps->region_id, ents[i].index);
        if (rc == 0)
            rc =
                eng_batch_put(b, ENG_CF_DEFAULT, tkv_slice_of(key, sizeof(key)), tkv_buf_slice(&v));
    }
    tkv_buf_deinit(&v);
    if (rc != 0)
        return rc;
    uint64_t new_last = ents[n - 1].index;
    /* A follower overwriting an uncommitted tail: delete what lies past the new end. */
    for (uint64_t i = new_last + 1; i <= ps->last_index && rc == 0; i++) {
        tkv_keys_raft_log_key(key, ps->region_id, i);
        rc = eng_batch_delete(b, ENG_CF_DEFAULT, tkv_slice_of(key, sizeof(key)));
    }
    if (rc != 0)
        return rc;
    ps->last_index = new_last;
    ps->last_term = ents[n - 1].term;
    return 0;
}

void rstore__ps_appended(rstore_peer_storage *ps, const raft_entry *ents, size_t n)
{
    if (n == 0)
        return;
    uint64_t first = ents[0].index;
    if (ps->cache.len == 0 || first < ps->cache_first || first > ps->cache_first + ps->cache.len) {
        cache_clear(ps);
        ps->cache_first = first;
    } else {
        size_t keep = (size_t)(first - ps->cache_first);
        for (size_t i = keep; i < ps->cache.len; i++) {
            uint64_t sz = raft_entry_size(&ps->cache.items[i]);
            ps->cache_bytes = sz < ps->cache_bytes ? ps->cache_bytes - sz : 0;
        }
        raft_entry_vec_truncate(&ps->cache, keep);
    }
    for (size_t i = 0; i < n; i++) {
        if (raft_entry_vec_push_copy(&ps->cache, &ents[i]) != 0) {
            cache_clear(ps); /* the engine has them: the cache is only a cache */
            return;
        }
        ps->cache_bytes += raft_entry_size(&ents[i]);
    }
    /* Bound the cache: the oldest entries can always be read back from the engine. */
    size_t k = 0;
    uint64_t bytes = ps->cache_bytes;
    while (k + 1 < ps->cache.len && bytes > CACHE_MAX_BYTES)
        bytes -= raft_entry_size(&ps->cache.items[k++]);
    cache_drop_front(ps, k);
}

void rstore__ps_trim_cache(rstore_peer_storage *ps, uint64_t index)
{
    /* Keep a small tail of applied entries: followers a little behind read them from here. */
    if (index < 64 || ps->cache.len == 0)
        return;
    uint64_t keep_from = index - 63;
    if (keep_from <= ps->cache_first)
        return;
    cache_drop_front(ps, (size_t)TKV_MIN(keep_from - ps->cache_first, (uint64_t)ps->cache.len));
}

int rstore__ps_apply_snapshot(rstore_peer_storage *ps, uint64_t index, uint64_t term, eng_batch *b,
                              uint64_t *old_first, uint64_t *old_last)
{
    *old_first = ps->truncated_index + 1;
    *old_last = ps->last_index;
    uint8_t key[TKV_KEYS_RAFT_LOG_KEY_LEN];
    int rc = 0;
    /* Entries past the snapshot would be overwritten later: delete them now, in this write.
     * The older ones are never rewritten and go in the background. */
    for (uint64_t i = TKV_MAX(index + 1, *old_first); i <= ps->last_index && rc == 0; i++) {
        tkv_keys_raft_log_key(key, ps->region_id, i);
        rc = eng_batch_delete(b, ENG_CF_DEFAULT, tkv_slice_of(key, sizeof(key)));
    }
    if (rc != 0)
        return rc;
    ps->truncated_index = index;
    ps->truncated_term = term;
    ps->last_index = index;
    ps->last_term = term;
    cache_clear(ps);
    return 0;
}

void rstore__ps_compact_to(rstore_peer_storage *ps, uint64_t index, uint64_t term)
{
    if (index <= ps->truncated_index)
        return;
    ps->truncated_index = index;
    ps->truncated_term = term;
    if (ps->cache.len && index >= ps->cache_first)
        cache_drop_front(ps, (size_t)TKV_MIN(index + 1 - ps->cache_first, (uint64_t)ps->cache.len));
    if (ps->gen.metadata.index > 0 && ps->gen.metadata.index < index) {
        /* A generated snapshot older than the log start cannot serve anyone any more. */
        raft_snapshot_deinit(&ps->gen);
    }
}

rstore_raft_state rstore__ps_raft_state(const rstore_peer_storage *ps)
{
    rstore_raft_state st = {.hs = ps->hs, .last_index = ps->last_index};
    return st;
}

uint64_t rstore__ps_log_bytes(const rstore_peer_storage *ps)
{
    uint64_t n = ps->last_index - ps->truncated_index;
    if (ps->cache.len == 0)
        return n * 128;
    /* Average entry size from the cache, times the entries in the log. */
    return n * (ps->cache_bytes / ps->cache.len + 16);
}
