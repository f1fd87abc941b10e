/*
 * state.c: the per-region state raftstore persists, in TiKV's encodings and keys:
 * RaftLocalState (raft engine), RaftApplyState and RegionLocalState (kv engine, raft CF),
 * and raft log entries as eraftpb.Entry (raft engine).
 */
#include <stdlib.h>

#include "base/codec.h"
#include "base/keys.h"
#include "raftstore/rstore_int.h"

void rstore__pack(const ProtobufCMessage *m, tkv_buf *out)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    tkv_buf_reset(out);
    if (tkv_buf_reserve(out, len) != 0) {
        TKV_LOG_FATAL("out of memory packing a message");
        abort();
    }
    protobuf_c_message_pack(m, out->data);
    out->len = len;
}

/* Whether a persisted term or index is one Raft can run on (raft.h's limits: a log position
 * past them would wrap, or be refused in every message). */
static bool in_limits(uint64_t term, uint64_t index)
{
    return term < RAFT_TERM_LIMIT && index < RAFT_INDEX_LIMIT;
}

void rstore__raft_state_encode(const rstore_raft_state *st, tkv_buf *out)
{
    Eraftpb__HardState hs = ERAFTPB__HARD_STATE__INIT;
    hs.term = st->hs.term;
    hs.vote = st->hs.vote;
    hs.commit = st->hs.commit;
    RaftServerpb__RaftLocalState rs = RAFT_SERVERPB__RAFT_LOCAL_STATE__INIT;
    rs.hard_state = &hs;
    rs.last_index = st->last_index;
    rstore__pack(&rs.base, out);
}

int rstore__raft_state_decode(tkv_slice v, rstore_raft_state *st)
{
    memset(st, 0, sizeof(*st));
    RaftServerpb__RaftLocalState *rs = raft_serverpb__raft_local_state__unpack(NULL, v.len, v.data);
    if (rs == NULL)
        return TKV_ECORRUPT;
    if (rs->hard_state) {
        st->hs.term = rs->hard_state->term;
        st->hs.vote = rs->hard_state->vote;
        st->hs.commit = rs->hard_state->commit;
    }
    st->last_index = rs->last_index;
    protobuf_c_message_free_unpacked(&rs->base, NULL);
    if (!in_limits(st->hs.term, st->hs.commit) || !in_limits(0, st->last_index) ||
        st->hs.commit > st->last_index) {
        memset(st, 0, sizeof(*st));
        return TKV_ECORRUPT;
    }
    return 0;
}

int rstore__put_raft_state(eng_batch *b, uint64_t region_id, const rstore_raft_state *st)
{
    uint8_t key[11];
    tkv_keys_raft_state_key(key, region_id);
    tkv_buf v;
    tkv_buf_init(&v);
    rstore__raft_state_encode(st, &v);
    int rc = eng_batch_put(b, ENG_CF_DEFAULT, tkv_slice_of(key, sizeof(key)), tkv_buf_slice(&v));
    tkv_buf_deinit(&v);
    return rc;
}

int rstore__get_raft_state(eng_db *db, uint64_t region_id, rstore_raft_state *st, bool *found)
{
    uint8_t key[11];
    tkv_keys_raft_state_key(key, region_id);
    memset(st, 0, sizeof(*st));
    tkv_buf v;
    tkv_buf_init(&v);
    int rc = eng_get(db, ENG_CF_DEFAULT, tkv_slice_of(key, sizeof(key)), &v, found);
    if (rc == 0 && *found)
        rc = rstore__raft_state_decode(tkv_buf_slice(&v), st);
    tkv_buf_deinit(&v);
    return rc;
}

void rstore__apply_state_encode(const rstore_apply_state *st, tkv_buf *out)
{
    RaftServerpb__RaftTruncatedState ts = RAFT_SERVERPB__RAFT_TRUNCATED_STATE__INIT;
    ts.index = st->truncated_index;
    ts.term = st->truncated_term;
    RaftServerpb__RaftApplyState as = RAFT_SERVERPB__RAFT_APPLY_STATE__INIT;
    as.applied_index = st->applied_index;
    as.truncated_state = &ts;
    as.commit_index = st->commit_index;
    as.commit_term = st->commit_term;
    rstore__pack(&as.base, out);
}

int rstore__apply_state_decode(tkv_slice v, rstore_apply_state *st)
{
    memset(st, 0, sizeof(*st));
    RaftServerpb__RaftApplyState *as = raft_serverpb__raft_apply_state__unpack(NULL, v.len, v.data);
    if (as == NULL)
        return TKV_ECORRUPT;
    st->applied_index = as->applied_index;
    if (as->truncated_state) {
        st->truncated_index = as->truncated_state->index;
        st->truncated_term = as->truncated_state->term;
    }
    st->commit_index = as->commit_index;
    st->commit_term = as->commit_term;
    protobuf_c_message_free_unpacked(&as->base, NULL);
    if (st->truncated_index > st->applied_index ||
        !in_limits(st->truncated_term, st->applied_index) ||
        !in_limits(st->commit_term, st->commit_index)) {
        memset(st, 0, sizeof(*st));
        return TKV_ECORRUPT;
    }
    return 0;
}

int rstore__put_apply_state(eng_batch *b, uint64_t region_id, const rstore_apply_state *st)
{
    uint8_t key[11];
    tkv_keys_apply_state_key(key, region_id);
    tkv_buf v;
    tkv_buf_init(&v);
    rstore__apply_state_encode(st, &v);
    int rc = eng_batch_put(b, ENG_CF_RAFT, tkv_slice_of(key, sizeof(key)), tkv_buf_slice(&v));
    tkv_buf_deinit(&v);
    return rc;
}

int rstore__get_apply_state(eng_db *db, uint64_t region_id, rstore_apply_state *st, bool *found)
{
    uint8_t key[11];
    tkv_keys_apply_state_key(key, region_id);
    memset(st, 0, sizeof(*st));
    tkv_buf v;
    tkv_buf_init(&v);
    int rc = eng_get(db, ENG_CF_RAFT, tkv_slice_of(key, sizeof(key)), &v, found);
    if (rc == 0 && *found)
        rc = rstore__apply_state_decode(tkv_buf_slice(&v), st);
    tkv_buf_deinit(&v);
    return rc;
}

void rstore__region_state_encode(const Metapb__Region *region, int state, tkv_buf *out)
{
    RaftServerpb__RegionLocalState ls = RAFT_SERVERPB__REGION_LOCAL_STATE__INIT;
    ls.state = (RaftServerpb__PeerState)state;
    ls.region = (Metapb__Region *)region;
    rstore__pack(&ls.base, out);
}

bool rstore__region_is_sane(const Metapb__Region *r)
{
    if (r == NULL || r->id == 0 || r->region_epoch == NULL)
        return false;
    tkv_slice start = tkv_slice_of(r->start_key.data, r->start_key.len);
    tkv_slice end = tkv_slice_of(r->end_key.data, r->end_key.len);
    return end.len == 0 || tkv_slice_cmp(start, end) < 0;
}

int rstore__region_state_decode(tkv_slice v, uint64_t region_id, Metapb__Region **region,
                                int *state)
{
    *region = NULL;
    *state = RAFT_SERVERPB__PEER_STATE__Normal;
    RaftServerpb__RegionLocalState *ls =
        raft_serverpb__region_local_state__unpack(NULL, v.len, v.data);
    if (ls == NULL)
        return TKV_ECORRUPT;
    /* tikv-c writes Normal and Tombstone only (no merge, no Applying marker). */
    bool ok = ls->region != NULL && rstore__region_canonical(&ls->region) == 0 &&
              rstore__region_is_sane(ls->region) && ls->region->id == region_id &&
              (ls->state == RAFT_SERVERPB__PEER_STATE__Normal ||
               ls->state == RAFT_SERVERPB__PEER_STATE__Tombstone);
    if (!ok) {
        protobuf_c_message_free_unpacked(&ls->base, NULL);
        return TKV_ECORRUPT;
    }
    *state = ls->state;
    *region = ls->region;
    ls->region = NULL; /* detached: freed separately */
    protobuf_c_message_free_unpacked(&ls->base, NULL);
    return 0;
}

int rstore__put_region_state(eng_batch *b, const Metapb__Region *region, int state)
{
    uint8_t key[11];
    tkv_keys_region_state_key(key, region->id);
    tkv_buf v;
    tkv_buf_init(&v);
    rstore__region_state_encode(region, state, &v);
    int rc = eng_batch_put(b, ENG_CF_RAFT, tkv_slice_of(key, sizeof(key)), tkv_buf_slice(&v));
    tkv_buf_deinit(&v);
    return rc;
}

int rstore__get_region_state(eng_db *db, uint64_t region_id, Metapb__Region **region, int *state,
                             bool *found)
{
    uint8_t key[11];
    tkv_keys_region_state_key(key, region_id);
    *region = NULL;
    tkv_buf v;
    tkv_buf_init(&v);
    int rc = eng_get(db, ENG_CF_RAFT, tkv_slice_of(key, sizeof(key)), &v, found);
    if (rc == 0 && *found)
        rc = rstore__region_state_decode(tkv_buf_slice(&v), region_id, region, state);
    tkv_buf_deinit(&v);
    return rc;
}

/* ---- eraftpb.Entry, hand-coded (the hot path of every log write and read) ------------- */

static int put_varint_field(tkv_buf *out, uint8_t tag, uint64_t v)
{
    if (v == 0)
        return 0;
    int rc = tkv_buf_append_u8(out, tag);
    return rc ? rc : tkv_codec_encode_uvarint(out, v);
}

static int put_bytes_field(tkv_buf *out, uint8_t tag, const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = tkv_buf_append_u8(out, tag);
    if (rc == 0)
        rc = tkv_codec_encode_uvarint(out, n);
    return rc ? rc : tkv_buf_append(out, p, n);
}

int rstore__entry_encode(const raft_entry *e, tkv_buf *out)
{
    tkv_buf_reset(out);
    int rc = put_varint_field(out, 0x08, (uint64_t)e->entry_type);
    if (rc == 0)
        rc = put_varint_field(out, 0x10, e->term);
    if (rc == 0)
        rc = put_varint_field(out, 0x18, e->index);
    if (rc == 0)
        rc = put_bytes_field(out, 0x22, e->data, e->data_len);
    if (rc == 0)
        rc = put_bytes_field(out, 0x32, e->context, e->context_len);
    return rc;
}

/* Skips a field of wire type @wt. */
static int skip_field(tkv_slice *in, unsigned wt)
{
    uint64_t v;
    switch (wt) {
    case 0:
        return tkv_codec_decode_uvarint(in, &v);
    case 1:
        if (in->len < 8)
            return TKV_ECORRUPT;
        in->data += 8;
        in->len -= 8;
        return 0;
    case 2:
        if (tkv_codec_decode_uvarint(in, &v) != 0 || v > in->len)
            return TKV_ECORRUPT;
        in->data += v;
        in->len -= v;
        return 0;
    case 5:
        if (in->len < 4)
            return TKV_ECORRUPT;
        in->data += 4;
        in->len -= 4;
        return 0;
    default:
        return TKV_ECORRUPT;
    }
}

int rstore__entry_decode(tkv_slice in, raft_entry *e)
{
    memset(e, 0, sizeof(*e));
    raft_entry tmp = {0};
    while (in.len > 0) {
        uint64_t key;
        if (tkv_codec_decode_uvarint(&in, &key) != 0)
            return TKV_ECORRUPT;
        unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
        uint64_t v;
        if ((field == 1 || field == 2 || field == 3 || field == 5) && wt == 0) {
            if (tkv_codec_decode_uvarint(&in, &v) != 0)
                return TKV_ECORRUPT;
            if (field == 1) {
                if (v > RAFT_ENTRY_CONF_CHANGE)
                    return TKV_ECORRUPT; /* ConfChangeV2 is never written by tikv-c */
                tmp.entry_type = (raft_entry_type)v;
            } else if (field == 2) {
                tmp.term = v;
            } else if (field == 3) {
                tmp.index = v;
            }
        } else if ((field == 4 || field == 6) && wt == 2) {
            if (tkv_codec_decode_uvarint(&in, &v) != 0 || v > in.len)
                return TKV_ECORRUPT;
            if (field == 4) {
                tmp.data = (uint8_t *)in.data;
                tmp.data_len = (size_t)v;
            } else {
                tmp.context = (uint8_t *)in.data;
                tmp.context_len = (size_t)v;
            }
            in.data += v;
            in.len -= v;
        } else if (skip_field(&in, wt) != 0) {
            return TKV_ECORRUPT;
        }
    }
    return raft_entry_copy(e, &tmp);
}

int rstore__write_initial_states(eng_batch *kvb, eng_batch *raftb, const Metapb__Region *region)
{
    int rc = rstore__put_region_state(kvb, region, RAFT_SERVERPB__PEER_STATE__Normal);
    rstore_apply_state as = {
        .applied_index = RSTORE_INIT_LOG_INDEX,
        .truncated_index = RSTORE_INIT_LOG_INDEX,
        .truncated_term = RSTORE_INIT_LOG_TERM,
        .commit_index = RSTORE_INIT_LOG_INDEX,
        .commit_term = RSTORE_INIT_LOG_TERM,
    };
    if (rc == 0)
        rc = rstore__put_apply_state(kvb, region->id, &as);
    if (rc == 0 && raftb) {
        rstore_raft_state rs = {
            .hs = {.term = RSTORE_INIT_LOG_TERM, .vote = 0, .commit = RSTORE_INIT_LOG_INDEX},
            .last_index = RSTORE_INIT_LOG_INDEX,
        };
        rc = rstore__put_raft_state(raftb, region->id, &rs);
    }
    return rc;
}
