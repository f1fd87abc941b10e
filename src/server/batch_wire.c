/*
 * batch_wire.c: tikvpb.BatchCommandsRequest / BatchCommandsResponse on the wire, by hand.
 *
 * The stream's outer messages are only envelopes: decoding them into protobuf-c structs would
 * unpack every inner request twice, and encoding them would copy every packed inner response.
 * So the envelope is read and written here (protocol.md 3.3: field 1 repeated Request or
 * Response, each a oneof whose field number is the command; field 2 request_ids, packed or
 * not), and only the inner messages go through protobuf-c.
 */
#include "base/codec.h"
#include "server/srv_int.h"

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

/* Largest field number protobuf allows. */
#define MAX_FIELD ((1u << 29) - 1)

void srv__batch_req_init(srv_batch_req *r)
{
    memset(r, 0, sizeof(*r));
}

void srv__batch_req_deinit(srv_batch_req *r)
{
    tkv_free(r->cmds);
    tkv_free(r->inner);
    tkv_free(r->ids);
    memset(r, 0, sizeof(*r));
}

/* Reads a tag. Field numbers past protobuf's range can only be unknown fields, which are
 * skipped (as protobuf-c does); they come back as 0 so no caller takes them for a command. */
static int read_tag(tkv_slice *in, uint32_t *field, unsigned *wire)
{
    uint64_t tag;
    int rc = tkv_codec_decode_uvarint(in, &tag);
    if (rc != 0)
        return rc;
    if ((tag >> 3) == 0)
        return TKV_ECORRUPT;
    *field = (tag >> 3) > MAX_FIELD ? 0 : (uint32_t)(tag >> 3);
    *wire = (unsigned)(tag & 7);
    return 0;
}

static int read_bytes(tkv_slice *in, tkv_slice *out)
{
    uint64_t len;
    int rc = tkv_codec_decode_uvarint(in, &len);
    if (rc != 0)
        return rc;
    if (len > in->len)
        return TKV_ECORRUPT;
    *out = tkv_slice_of(in->data, (size_t)len);
    in->data += len;
    in->len -= (size_t)len;
    return 0;
}

static int skip_fixed(tkv_slice *in, size_t n)
{
    if (in->len < n)
        return TKV_ECORRUPT;
    in->data += n;
    in->len -= n;
    return 0;
}

/* Skips a varint of an unknown field: up to 10 bytes, whatever their value (bits past 64 are
 * only an error where the value is used). */
static int skip_varint(tkv_slice *in)
{
    for (size_t i = 0; i < in->len && i < TKV_VARINT_MAX_LEN; i++) {
        if ((in->data[i] & 0x80) == 0) {
            in->data += i + 1;
            in->len -= i + 1;
            return 0;
        }
    }
    return TKV_ECORRUPT;
}

static int skip_field(tkv_slice *in, unsigned wire)
{
    tkv_slice b;
    switch (wire) {
    case WIRE_VARINT:
        return skip_varint(in);
    case WIRE_FIXED64:
        return skip_fixed(in, 8);
    case WIRE_LEN:
        return read_bytes(in, &b);
    case WIRE_FIXED32:
        return skip_fixed(in, 4);
    }
    return TKV_ECORRUPT; /* groups (3, 4) and undefined wire types */
}

static int push_request(srv_batch_req *r, int cmd, tkv_slice inner)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        int *cmds = tkv_realloc(r->cmds, cap * sizeof(*cmds));
        if (cmds == NULL)
            return -ENOMEM;
        r->cmds = cmds;
        tkv_slice *in = tkv_realloc(r->inner, cap * sizeof(*in));
        if (in == NULL)
            return -ENOMEM;
        r->inner = in;
        r->cap = cap;
    }
    r->cmds[r->n] = cmd;
    r->inner[r->n] = inner;
    r->n++;
    return 0;
}

static int push_id(srv_batch_req *r, uint64_t id)
{
    if (r->n_ids == r->cap_ids) {
        size_t cap = r->cap_ids ? r->cap_ids * 2 : 16;
        uint64_t *ids = tkv_realloc(r->ids, cap * sizeof(*ids));
        if (ids == NULL)
            return -ENOMEM;
        r->ids = ids;
        r->cap_ids = cap;
    }
    r->ids[r->n_ids++] = id;
    return 0;
}

/* Decodes one Request: its oneof is the last length-delimited field (every arm is a message). */
static int decode_request(tkv_slice req, srv_batch_req *r)
{
    int cmd = 0;
    tkv_slice inner = tkv_slice_of(NULL, 0);
    while (req.len > 0) {
        uint32_t field;
        unsigned wire;
        int rc = read_tag(&req, &field, &wire);
        if (rc == 0 && wire == WIRE_LEN && field != 0) {
            rc = read_bytes(&req, &inner);
            cmd = (int)field;
        } else if (rc == 0) {
            rc = skip_field(&req, wire);
        }
        if (rc != 0)
            return rc;
    }
    return push_request(r, cmd, inner);
}

int srv__batch_decode(tkv_slice msg, srv_batch_req *r)
{
    r->n = 0;
    r->n_ids = 0;
    while (msg.len > 0) {
        uint32_t field;
        unsigned wire;
        int rc = read_tag(&msg, &field, &wire);
        if (rc != 0)
            return rc;
        tkv_slice b;
        uint64_t id;
        if (field == 1 && wire == WIRE_LEN) {
            rc = read_bytes(&msg, &b);
            if (rc == 0)
                rc = decode_request(b, r);
        } else if (field == 2 && wire == WIRE_LEN) {
            rc = read_bytes(&msg, &b);
            while (rc == 0 && b.len > 0) {
                rc = tkv_codec_decode_uvarint(&b, &id);
                if (rc == 0)
                    rc = push_id(r, id);
            }
        } else if (field == 2 && wire == WIRE_VARINT) {
            rc = tkv_codec_decode_uvarint(&msg, &id);
            if (rc == 0)
                rc = push_id(r, id);
        } else if (field == 1 || field == 2) {
            rc = TKV_ECORRUPT; /* a known field with the wrong wire type */
        } else {
            rc = skip_field(&msg, wire);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Appends the header of a Response entry holding oneof @cmd with @inner_len bytes. */
static int resp_header(tkv_buf *out, int cmd, size_t inner_len)
{
    uint8_t hdr[3 * TKV_VARINT_MAX_LEN + 1];
    uint8_t tag[TKV_VARINT_MAX_LEN] = {0}, len[TKV_VARINT_MAX_LEN] = {0};
    size_t ntag = 0, nlen = 0, resp_len = 0;
    if (cmd != 0) {
        ntag = tkv_codec_put_uvarint(tag, ((uint64_t)cmd << 3) | WIRE_LEN);
        nlen = tkv_codec_put_uvarint(len, inner_len);
        resp_len = ntag + nlen + inner_len;
    }
    size_t n = 0;
    hdr[n++] = (1 << 3) | WIRE_LEN;
    n += tkv_codec_put_uvarint(hdr + n, resp_len);
    memcpy(hdr + n, tag, ntag);
    n += ntag;
    memcpy(hdr + n, len, nlen);
    n += nlen;
    return tkv_buf_append(out, hdr, n);
}

int srv__batch_encode_resp(tkv_buf *out, int cmd, tkv_slice inner)
{
    size_t old = out->len;
    int rc = tkv_buf_reserve(out, 3 * TKV_VARINT_MAX_LEN + 1 + inner.len);
    if (rc == 0)
        rc = resp_header(out, cmd, cmd != 0 ? inner.len : 0);
    if (rc == 0 && cmd != 0)
        rc = tkv_buf_append(out, inner.data, inner.len);
    if (rc != 0)
        out->len = old;
    return rc;
}

int srv__batch_encode_resp_msg(tkv_buf *out, int cmd, const ProtobufCMessage *inner)
{
    size_t size = protobuf_c_message_get_packed_size(inner);
    size_t old = out->len;
    int rc = tkv_buf_reserve(out, 3 * TKV_VARINT_MAX_LEN + 1 + size);
    if (rc == 0)
        rc = resp_header(out, cmd, size);
    if (rc != 0) {
        out->len = old;
        return rc;
    }
    out->len += protobuf_c_message_pack(inner, out->data + out->len);
    return 0;
}

int srv__batch_encode_ids(tkv_buf *out, const uint64_t *ids, size_t n)
{
    size_t bytes = 0;
    uint8_t tmp[TKV_VARINT_MAX_LEN];
    for (size_t i = 0; i < n; i++)
        bytes += tkv_codec_put_uvarint(tmp, ids[i]);
    int rc = tkv_buf_reserve(out, 1 + TKV_VARINT_MAX_LEN + bytes);
    if (rc != 0)
        return rc;
    if (n == 0)
        return 0;
    out->data[out->len++] = (2 << 3) | WIRE_LEN;
    out->len += tkv_codec_put_uvarint(out->data + out->len, bytes);
    for (size_t i = 0; i < n; i++)
        out->len += tkv_codec_put_uvarint(out->data + out->len, ids[i]);
    return 0;
}

/* Appends the length-delimited field @field: its tag and length (the caller then appends the
 * @len bytes). The caller reserved room. */
static void put_len_field(tkv_buf *out, unsigned field, size_t len)
{
    out->data[out->len++] = (uint8_t)((field << 3) | WIRE_LEN);
    out->len += tkv_codec_put_uvarint(out->data + out->len, len);
}

/* Appends string field @field = @s (room reserved by the caller). */
static void put_str_field(tkv_buf *out, unsigned field, const char *s, size_t len)
{
    put_len_field(out, field, len);
    memcpy(out->data + out->len, s, len);
    out->len += len;
}

/* The encoded size of a length-delimited field of @len bytes with a one-byte tag. */
static size_t len_field_size(size_t len)
{
    uint8_t tmp[TKV_VARINT_MAX_LEN];
    return 1 + tkv_codec_put_uvarint(tmp, len) + len;
}

int srv__batch_encode_region_error(tkv_buf *out, const char *msg)
{
    /* Errorpb.Error{message = 1} inside region_error = 1 of the inner response. */
    size_t mlen = strlen(msg);
    int rc = tkv_buf_reserve(out, 2 + 2 * TKV_VARINT_MAX_LEN + mlen);
    if (rc != 0)
        return rc;
    put_len_field(out, 1, len_field_size(mlen));
    put_str_field(out, 1, msg, mlen);
    return 0;
}

int srv__batch_encode_busy(tkv_buf *out, const char *reason)
{
    /* region_error = 1 { message = 1, server_is_busy = 6 { reason = 1 } }: client-go backs
     * off and retries. */
    size_t rlen = strlen(reason);
    size_t str_len = len_field_size(rlen); /* one string field; ServerIsBusy{reason} too */
    int rc = tkv_buf_reserve(out, 8 + 6 * TKV_VARINT_MAX_LEN + 2 * rlen);
    if (rc != 0)
        return rc;
    put_len_field(out, 1, str_len + len_field_size(str_len));
    put_str_field(out, 1, reason, rlen);
    put_len_field(out, 6, str_len);
    put_str_field(out, 1, reason, rlen);
    return 0;
}

int srv__batch_decode_empty(tkv_slice inner, uint64_t *test_id)
{
    *test_id = 0;
    while (inner.len > 0) {
        uint32_t field;
        unsigned wire;
        int rc = read_tag(&inner, &field, &wire);
        if (rc == 0 && field == 1 && wire == WIRE_VARINT)
            rc = tkv_codec_decode_uvarint(&inner, test_id);
        else if (rc == 0)
            rc = skip_field(&inner, wire);
        if (rc != 0)
            return rc;
    }
    return 0;
}
