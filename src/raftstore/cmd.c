/*
 * cmd.c: raft_cmdpb.RaftCmdRequest encoding for proposals.
 *
 * A proposal's entry data is a RaftCmdRequest, as in TiKV. The data requests (field 2) are
 * encoded on the caller's thread when storage hands its writes over; the header (field 1:
 * region id, peer, epoch at proposal time, term) is prepended by the peer when it proposes.
 * Protobuf fields may appear in any order, so header + body concatenated is one valid
 * message.
 */
#include "base/codec.h"
#include "raftstore/rstore_int.h"

static int put_tag_len(tkv_buf *out, uint8_t tag, size_t len)
{
    int rc = tkv_buf_append_u8(out, tag);
    return rc ? rc : tkv_codec_encode_uvarint(out, len);
}

static int put_bytes(tkv_buf *out, uint8_t tag, tkv_slice s)
{
    int rc = put_tag_len(out, tag, s.len);
    return rc ? rc : tkv_buf_append(out, s.data, s.len);
}

static const char *cf_wire_name(eng_cf cf)
{
    return cf == ENG_CF_DEFAULT ? NULL : eng_cf_name(cf);
}

/* Appends the inner message (PutRequest / DeleteRequest / DeleteRangeRequest) for @m. */
static int encode_inner(tkv_buf *inner, const stor_modify *m)
{
    const char *cf = cf_wire_name(m->cf);
    int rc = 0;
    if (cf)
        rc = put_bytes(inner, 0x0a, tkv_slice_str(cf));
    if (rc != 0)
        return rc;
    switch (m->op) {
    case STOR_MODIFY_PUT:
        rc = put_bytes(inner, 0x12, m->key);
        return rc ? rc : put_bytes(inner, 0x1a, m->value);
    case STOR_MODIFY_DELETE:
        return put_bytes(inner, 0x12, m->key);
    case STOR_MODIFY_DELETE_RANGE:
        rc = put_bytes(inner, 0x12, m->key);
        return rc ? rc : (m->end_key.len ? put_bytes(inner, 0x1a, m->end_key) : 0);
    }
    return -EINVAL;
}

static int note_max(tkv_buf *b, tkv_slice k, bool *has)
{
    if (*has && tkv_slice_cmp(tkv_buf_slice(b), k) >= 0)
        return 0;
    *has = true;
    return tkv_buf_set(b, k.data, k.len);
}

int rstore__cmd_encode_mods(const stor_modify *mods, size_t n, rstore_write_req *w)
{
    tkv_buf inner, req;
    tkv_buf_init(&inner);
    tkv_buf_init(&req);
    int rc = 0;
    bool has_min = false, has_max = false, has_end = false;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const stor_modify *m = &mods[i];
        if (eng_cf_name(m->cf) == NULL || m->cf == ENG_CF_RAFT) {
            rc = -EINVAL;
            break;
        }
        uint8_t field;
        RaftCmdpb__CmdType type;
        switch (m->op) {
        case STOR_MODIFY_PUT:
            field = 0x22; /* put = 4 */
            type = RAFT_CMDPB__CMD_TYPE__Put;
            break;
        case STOR_MODIFY_DELETE:
            field = 0x2a; /* delete = 5 */
            type = RAFT_CMDPB__CMD_TYPE__Delete;
            break;
        case STOR_MODIFY_DELETE_RANGE:
            field = 0x42; /* delete_range = 8 */
            type = RAFT_CMDPB__CMD_TYPE__DeleteRange;
            if (m->end_key.len && tkv_slice_cmp(m->key, m->end_key) > 0)
                rc = -EINVAL;
            break;
        default:
            rc = -EINVAL;
            continue;
        }
        tkv_buf_reset(&inner);
        tkv_buf_reset(&req);
        if (rc == 0)
            rc = encode_inner(&inner, m);
        if (rc == 0)
            rc = tkv_buf_append_u8(&req, 0x08);
        if (rc == 0)
            rc = tkv_codec_encode_uvarint(&req, (uint64_t)type);
        if (rc == 0)
            rc = put_bytes(&req, field, tkv_buf_slice(&inner));
        if (rc == 0)
            rc = put_bytes(&w->cmd, 0x12, tkv_buf_slice(&req));
        /* Key bounds for the region check. */
        if (rc == 0 && (!has_min || tkv_slice_cmp(m->key, tkv_buf_slice(&w->min_key)) < 0)) {
            has_min = true;
            rc = tkv_buf_set(&w->min_key, m->key.data, m->key.len);
        }
        if (rc == 0)
            rc = note_max(&w->max_key, m->key, &has_max);
        if (rc == 0 && m->op == STOR_MODIFY_DELETE_RANGE && m->end_key.len)
            rc = note_max(&w->max_end, m->end_key, &has_end);
    }
    w->has_keys = has_min;
    tkv_buf_deinit(&inner);
    tkv_buf_deinit(&req);
    return rc;
}

int rstore__cmd_build(uint64_t region_id, const Metapb__Peer *peer, uint64_t conf_ver,
                      uint64_t version, uint64_t term, tkv_slice body, tkv_buf *out)
{
    RaftCmdpb__RaftRequestHeader h = RAFT_CMDPB__RAFT_REQUEST_HEADER__INIT;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    ep.conf_ver = conf_ver;
    ep.version = version;
    h.region_id = region_id;
    h.peer = (Metapb__Peer *)peer;
    h.region_epoch = &ep;
    h.term = term;
    size_t hlen = raft_cmdpb__raft_request_header__get_packed_size(&h);
    tkv_buf_reset(out);
    int rc = tkv_buf_reserve(out, hlen + 12 + body.len);
    if (rc != 0)
        return rc;
    rc = put_tag_len(out, 0x0a, hlen);
    if (rc != 0)
        return rc;
    raft_cmdpb__raft_request_header__pack(&h, out->data + out->len);
    out->len += hlen;
    return tkv_buf_append(out, body.data, body.len);
}

int rstore__cmd_admin_body(const RaftCmdpb__AdminRequest *admin, tkv_buf *out)
{
    size_t len = raft_cmdpb__admin_request__get_packed_size(admin);
    tkv_buf_reset(out);
    int rc = put_tag_len(out, 0x1a, len);
    if (rc == 0)
        rc = tkv_buf_reserve(out, len);
    if (rc != 0)
        return rc;
    raft_cmdpb__admin_request__pack(admin, out->data + out->len);
    out->len += len;
    return 0;
}
