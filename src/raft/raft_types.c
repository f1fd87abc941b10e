/*
 * raft_types.c: entries, snapshots, messages and conf changes: copies, releases, the
 * eraftpb.ConfChange wire encoding, and names for tracing.
 */
#include "base/codec.h"
#include "raft/raft_int.h"

int raft__bytes_dup(const void *p, size_t len, uint8_t **out)
{
    *out = NULL;
    if (len == 0)
        return 0;
    *out = tkv_memdup(p, len);
    return *out ? 0 : -ENOMEM;
}

/* ---- entries ------------------------------------------------------------------------- */

int raft_entry_copy(raft_entry *dst, const raft_entry *src)
{
    raft_entry e = *src;
    e.data = NULL;
    e.context = NULL;
    size_t total = src->data_len + src->context_len;
    if (total > 0) {
        /* One block for data and context: one allocation per entry on the hot path. */
        uint8_t *block = tkv_malloc(total);
        if (!block) {
            memset(dst, 0, sizeof(*dst));
            return -ENOMEM;
        }
        if (src->data_len)
            memcpy(block, src->data, src->data_len);
        if (src->context_len)
            memcpy(block + src->data_len, src->context, src->context_len);
        e.data = block;
        e.context = block + src->data_len;
    }
    *dst = e;
    return 0;
}

void raft_entry_deinit(raft_entry *e)
{
    tkv_free(e->data);
    memset(e, 0, sizeof(*e));
}

uint64_t raft_entry_size(const raft_entry *e)
{
    return (uint64_t)e->data_len + e->context_len;
}

void raft_entry_vec_init(raft_entry_vec *v)
{
    memset(v, 0, sizeof(*v));
}

int raft_entry_vec_push_copy(raft_entry_vec *v, const raft_entry *e)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        raft_entry *items = tkv_realloc(v->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        v->items = items;
        v->cap = cap;
    }
    int rc = raft_entry_copy(&v->items[v->len], e);
    if (rc != 0)
        return rc;
    v->len++;
    return 0;
}

void raft_entry_vec_truncate(raft_entry_vec *v, size_t from)
{
    for (size_t i = from; i < v->len; i++)
        raft_entry_deinit(&v->items[i]);
    if (from < v->len)
        v->len = from;
}

void raft_entry_vec_deinit(raft_entry_vec *v)
{
    raft_entry_vec_truncate(v, 0);
    tkv_free(v->items);
    memset(v, 0, sizeof(*v));
}

raft_entry *raft__entries_dup(const raft_entry *ents, size_t n)
{
    raft_entry *copies = tkv_malloc(n * sizeof(raft_entry));
    if (!copies)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (raft_entry_copy(&copies[i], &ents[i]) != 0) {
            raft__entries_free(copies, i);
            return NULL;
        }
    }
    return copies;
}

void raft__entries_free(raft_entry *ents, size_t n)
{
    for (size_t i = 0; i < n; i++)
        raft_entry_deinit(&ents[i]);
    tkv_free(ents);
}

int raft__push_limited(raft_entry_vec *out, size_t start, uint64_t size, const raft_entry *ents,
                       size_t n, uint64_t max_bytes)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t sz = raft_entry_size(&ents[i]);
        if (out->len > start && size + sz > max_bytes)
            break;
        int rc = raft_entry_vec_push_copy(out, &ents[i]);
        if (rc != 0) {
            raft_entry_vec_truncate(out, start);
            return rc;
        }
        size += sz;
    }
    return 0;
}

/* ---- conf state and snapshots ---------------------------------------------------------- */

bool raft_conf_state_contains(const raft_conf_state *cs, uint64_t id)
{
    for (size_t i = 0; i < cs->n_voters; i++)
        if (cs->voters[i] == id)
            return true;
    for (size_t i = 0; i < cs->n_learners; i++)
        if (cs->learners[i] == id)
            return true;
    return false;
}

int raft_snapshot_copy(raft_snapshot *dst, const raft_snapshot *src)
{
    raft_snapshot s = *src;
    if (raft__bytes_dup(src->data, src->data_len, &s.data) != 0) {
        memset(dst, 0, sizeof(*dst));
        return -ENOMEM;
    }
    *dst = s;
    return 0;
}

void raft_snapshot_deinit(raft_snapshot *s)
{
    tkv_free(s->data);
    memset(s, 0, sizeof(*s));
}

/* ---- messages ------------------------------------------------------------------------ */

int raft_message_copy(raft_message *dst, const raft_message *src)
{
    raft_message m = *src;
    m.entries = NULL;
    m.n_entries = 0;
    m.snapshot = NULL;
    m.context = NULL;
    if (src->n_entries) {
        m.entries = tkv_calloc(src->n_entries, sizeof(raft_entry));
        if (!m.entries)
            goto oom;
        for (size_t i = 0; i < src->n_entries; i++) {
            if (raft_entry_copy(&m.entries[i], &src->entries[i]) != 0)
                goto oom;
            m.n_entries++;
        }
    }
    if (src->snapshot) {
        m.snapshot = tkv_malloc(sizeof(raft_snapshot));
        if (!m.snapshot)
            goto oom;
        if (raft_snapshot_copy(m.snapshot, src->snapshot) != 0) {
            tkv_free(m.snapshot);
            m.snapshot = NULL;
            goto oom;
        }
    }
    if (raft__bytes_dup(src->context, src->context_len, &m.context) != 0)
        goto oom;
    *dst = m;
    return 0;
oom:
    raft_message_deinit(&m);
    memset(dst, 0, sizeof(*dst));
    return -ENOMEM;
}

void raft_message_deinit(raft_message *m)
{
    for (size_t i = 0; i < m->n_entries; i++)
        raft_entry_deinit(&m->entries[i]);
    tkv_free(m->entries);
    if (m->snapshot) {
        raft_snapshot_deinit(m->snapshot);
        tkv_free(m->snapshot);
    }
    tkv_free(m->context);
    memset(m, 0, sizeof(*m));
}

void raft__msg_vec_deinit(raft__msg_vec *v)
{
    for (size_t i = 0; i < v->len; i++)
        raft_message_deinit(&v->items[i]);
    tkv_free(v->items);
    memset(v, 0, sizeof(*v));
}

void raft__read_state_vec_deinit(raft__read_state_vec *v)
{
    for (size_t i = 0; i < v->len; i++)
        tkv_free(v->items[i].request_ctx);
    tkv_free(v->items);
    memset(v, 0, sizeof(*v));
}

/* ---- eraftpb.ConfChange wire format ----------------------------------------------------
 * Protobuf: each field is a varint key (field number << 3 | wire type) and a value; wire
 * type 0 is a varint, 2 is a length-prefixed byte string. proto3 omits zero values. */

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_BYTES = 2, PB_FIXED32 = 5 };

static int pb_put_varint_field(tkv_buf *out, uint32_t field, uint64_t v)
{
    if (v == 0)
        return 0;
    int rc = tkv_codec_encode_uvarint(out, (uint64_t)field << 3 | PB_VARINT);
    return rc ? rc : tkv_codec_encode_uvarint(out, v);
}

int raft_conf_change_encode(const raft_conf_change *cc, tkv_buf *out)
{
    size_t old_len = out->len;
    int rc = pb_put_varint_field(out, 2, (uint64_t)cc->change_type);
    if (!rc)
        rc = pb_put_varint_field(out, 3, cc->node_id);
    if (!rc && cc->context.len) {
        rc = tkv_codec_encode_uvarint(out, 4u << 3 | PB_BYTES);
        if (!rc)
            rc = tkv_codec_encode_uvarint(out, cc->context.len);
        if (!rc)
            rc = tkv_buf_append(out, cc->context.data, cc->context.len);
    }
    if (rc)
        out->len = old_len;
    return rc;
}

static int pb_skip(tkv_slice *in, uint32_t wire)
{
    uint64_t v;
    switch (wire) {
    case PB_VARINT:
        return tkv_codec_decode_uvarint(in, &v);
    case PB_FIXED64:
    case PB_FIXED32: {
        size_t n = wire == PB_FIXED64 ? 8 : 4;
        if (in->len < n)
            return TKV_ECORRUPT;
        in->data += n;
        in->len -= n;
        return 0;
    }
    case PB_BYTES:
        if (tkv_codec_decode_uvarint(in, &v) != 0 || v > in->len)
            return TKV_ECORRUPT;
        in->data += v;
        in->len -= v;
        return 0;
    default:
        return TKV_ECORRUPT;
    }
}

int raft_conf_change_decode(tkv_slice in, raft_conf_change *cc)
{
    raft_conf_change r = {RAFT_CONF_ADD_NODE, 0, {NULL, 0}};
    while (in.len > 0) {
        uint64_t key, v;
        if (tkv_codec_decode_uvarint(&in, &key) != 0)
            return TKV_ECORRUPT;
        uint64_t field = key >> 3;
        uint32_t wire = (uint32_t)(key & 7);
        if ((field == 2 || field == 3) && wire == PB_VARINT) {
            if (tkv_codec_decode_uvarint(&in, &v) != 0)
                return TKV_ECORRUPT;
            if (field == 2) {
                if (v > RAFT_CONF_ADD_LEARNER_NODE)
                    return TKV_ECORRUPT;
                r.change_type = (raft_conf_change_type)v;
            } else {
                r.node_id = v;
            }
        } else if (field == 4 && wire == PB_BYTES) {
            if (tkv_codec_decode_uvarint(&in, &v) != 0 || v > in.len)
                return TKV_ECORRUPT;
            r.context = tkv_slice_of(in.data, (size_t)v);
            in.data += v;
            in.len -= v;
        } else if (field == 0 || pb_skip(&in, wire) != 0) {
            return TKV_ECORRUPT;
        }
    }
    if (r.node_id == RAFT_NONE)
        return TKV_ECORRUPT;
    *cc = r;
    return 0;
}

/* ---- names --------------------------------------------------------------------------- */

const char *raft_state_name(raft_state_type s)
{
    switch (s) {
    case RAFT_STATE_FOLLOWER:
        return "Follower";
    case RAFT_STATE_CANDIDATE:
        return "Candidate";
    case RAFT_STATE_LEADER:
        return "Leader";
    case RAFT_STATE_PRE_CANDIDATE:
        return "PreCandidate";
    }
    return "Unknown";
}

const char *raft_message_type_name(raft_message_type t)
{
    static const char *const names[RAFT_MSG_TYPE_COUNT] = {
        "MsgHup",
        "MsgBeat",
        "MsgPropose",
        "MsgAppend",
        "MsgAppendResponse",
        "MsgRequestVote",
        "MsgRequestVoteResponse",
        "MsgSnapshot",
        "MsgHeartbeat",
        "MsgHeartbeatResponse",
        "MsgUnreachable",
        "MsgSnapStatus",
        "MsgCheckQuorum",
        "MsgTransferLeader",
        "MsgTimeoutNow",
        "MsgReadIndex",
        "MsgReadIndexResp",
        "MsgRequestPreVote",
        "MsgRequestPreVoteResponse",
    };
    if ((unsigned)t >= RAFT_MSG_TYPE_COUNT)
        return "MsgUnknown";
    return names[t];
}
