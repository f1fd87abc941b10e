/*
 * codec.c: memcomparable bytes, fixed-width and variable-width numbers (see codec.h).
 */
#include "base/codec.h"

size_t tkv_codec_encoded_bytes_len(size_t len)
{
    return (len / TKV_ENC_GROUP_SIZE + 1) * (TKV_ENC_GROUP_SIZE + 1);
}

static int encode_bytes(tkv_buf *out, tkv_slice raw, bool desc)
{
    size_t enc_len = tkv_codec_encoded_bytes_len(raw.len);
    int rc = tkv_buf_reserve(out, enc_len);
    if (rc != 0)
        return rc;
    uint8_t *dst = out->data + out->len;
    size_t pos = 0;
    for (;;) {
        size_t remain = raw.len - pos;
        if (remain >= TKV_ENC_GROUP_SIZE) {
            memcpy(dst, raw.data + pos, TKV_ENC_GROUP_SIZE);
            dst[TKV_ENC_GROUP_SIZE] = TKV_ENC_MARKER;
            pos += TKV_ENC_GROUP_SIZE;
            dst += TKV_ENC_GROUP_SIZE + 1;
            continue;
        }
        size_t pad = TKV_ENC_GROUP_SIZE - remain;
        if (remain > 0)
            memcpy(dst, raw.data + pos, remain);
        memset(dst + remain, TKV_ENC_PAD, pad);
        dst[TKV_ENC_GROUP_SIZE] = (uint8_t)(TKV_ENC_MARKER - pad);
        break;
    }
    if (desc) {
        uint8_t *p = out->data + out->len;
        for (size_t i = 0; i < enc_len; i++)
            p[i] = (uint8_t)~p[i];
    }
    out->len += enc_len;
    return 0;
}

int tkv_codec_encode_bytes(tkv_buf *out, tkv_slice raw)
{
    return encode_bytes(out, raw, false);
}

int tkv_codec_encode_bytes_desc(tkv_buf *out, tkv_slice raw)
{
    return encode_bytes(out, raw, true);
}

/* Scans one encoded string at the start of @in; returns its encoded length and its decoded
 * length, or TKV_ECORRUPT. */
static int scan_encoded(tkv_slice in, bool desc, size_t *enc_len, size_t *raw_len)
{
    uint8_t flip = desc ? 0xFF : 0x00;
    size_t pos = 0, out = 0;
    for (;;) {
        if (in.len - pos < TKV_ENC_GROUP_SIZE + 1)
            return TKV_ECORRUPT;
        const uint8_t *g = in.data + pos;
        uint8_t marker = g[TKV_ENC_GROUP_SIZE] ^ flip;
        pos += TKV_ENC_GROUP_SIZE + 1;
        if (marker == TKV_ENC_MARKER) {
            out += TKV_ENC_GROUP_SIZE;
            continue;
        }
        size_t pad = (size_t)(TKV_ENC_MARKER - marker);
        if (pad > TKV_ENC_GROUP_SIZE)
            return TKV_ECORRUPT;
        size_t real = TKV_ENC_GROUP_SIZE - pad;
        for (size_t i = real; i < TKV_ENC_GROUP_SIZE; i++) {
            if ((uint8_t)(g[i] ^ flip) != TKV_ENC_PAD)
                return TKV_ECORRUPT;
        }
        out += real;
        break;
    }
    *enc_len = pos;
    *raw_len = out;
    return 0;
}

static int decode_bytes(tkv_slice *in, tkv_buf *out, bool desc)
{
    size_t enc_len, raw_len;
    int rc = scan_encoded(*in, desc, &enc_len, &raw_len);
    if (rc != 0)
        return rc;
    size_t old_len = out->len;
    out->len = 0;
    rc = tkv_buf_reserve(out, raw_len);
    if (rc != 0) {
        out->len = old_len;
        return rc;
    }
    uint8_t flip = desc ? 0xFF : 0x00;
    size_t written = 0;
    for (size_t pos = 0; written < raw_len; pos += TKV_ENC_GROUP_SIZE + 1) {
        size_t n = TKV_MIN((size_t)TKV_ENC_GROUP_SIZE, raw_len - written);
        for (size_t i = 0; i < n; i++)
            out->data[written + i] = in->data[pos + i] ^ flip;
        written += n;
    }
    out->len = raw_len;
    in->data += enc_len;
    in->len -= enc_len;
    return 0;
}

int tkv_codec_decode_bytes(tkv_slice *in, tkv_buf *out)
{
    return decode_bytes(in, out, false);
}

int tkv_codec_decode_bytes_desc(tkv_slice *in, tkv_buf *out)
{
    return decode_bytes(in, out, true);
}

int tkv_codec_encoded_prefix_len(tkv_slice in, size_t *len)
{
    size_t raw_len;
    return scan_encoded(in, false, len, &raw_len);
}

void tkv_codec_put_u64_be(uint8_t *dst, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        dst[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t tkv_codec_get_u64_be(const uint8_t *src)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | src[i];
    return v;
}

int tkv_codec_encode_u64(tkv_buf *out, uint64_t v)
{
    uint8_t b[8];
    tkv_codec_put_u64_be(b, v);
    return tkv_buf_append(out, b, sizeof(b));
}

int tkv_codec_encode_u64_desc(tkv_buf *out, uint64_t v)
{
    return tkv_codec_encode_u64(out, ~v);
}

#define SIGN_MASK 0x8000000000000000ULL

int tkv_codec_encode_i64(tkv_buf *out, int64_t v)
{
    return tkv_codec_encode_u64(out, (uint64_t)v ^ SIGN_MASK);
}

int tkv_codec_decode_u64(tkv_slice *in, uint64_t *v)
{
    if (in->len < 8)
        return TKV_ECORRUPT;
    *v = tkv_codec_get_u64_be(in->data);
    in->data += 8;
    in->len -= 8;
    return 0;
}

int tkv_codec_decode_u64_desc(tkv_slice *in, uint64_t *v)
{
    uint64_t x;
    int rc = tkv_codec_decode_u64(in, &x);
    if (rc == 0)
        *v = ~x;
    return rc;
}

int tkv_codec_decode_i64(tkv_slice *in, int64_t *v)
{
    uint64_t x;
    int rc = tkv_codec_decode_u64(in, &x);
    if (rc == 0)
        *v = (int64_t)(x ^ SIGN_MASK);
    return rc;
}

size_t tkv_codec_put_uvarint(uint8_t *dst, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        dst[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    dst[n++] = (uint8_t)v;
    return n;
}

int tkv_codec_encode_uvarint(tkv_buf *out, uint64_t v)
{
    uint8_t b[TKV_VARINT_MAX_LEN];
    size_t n = tkv_codec_put_uvarint(b, v);
    return tkv_buf_append(out, b, n);
}

int tkv_codec_encode_varint(tkv_buf *out, int64_t v)
{
    /* Zigzag: the sign bit spread over all bits, without right-shifting a signed value
     * (implementation-defined in C11). */
    uint64_t zz = ((uint64_t)v << 1) ^ ((uint64_t)0 - ((uint64_t)v >> 63));
    return tkv_codec_encode_uvarint(out, zz);
}

int tkv_codec_decode_uvarint(tkv_slice *in, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < in->len && i < TKV_VARINT_MAX_LEN; i++) {
        uint8_t b = in->data[i];
        if (i == TKV_VARINT_MAX_LEN - 1 && b > 1)
            return TKV_ECORRUPT; /* overflows 64 bits */
        x |= (uint64_t)(b & 0x7F) << (7 * i);
        if (b < 0x80) {
            *v = x;
            in->data += i + 1;
            in->len -= i + 1;
            return 0;
        }
    }
    return TKV_ECORRUPT;
}

int tkv_codec_decode_varint(tkv_slice *in, int64_t *v)
{
    uint64_t zz;
    int rc = tkv_codec_decode_uvarint(in, &zz);
    if (rc == 0)
        *v = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
    return rc;
}

int tkv_codec_encode_compact_bytes(tkv_buf *out, tkv_slice raw)
{
    size_t old = out->len;
    int rc = tkv_codec_encode_varint(out, (int64_t)raw.len);
    if (rc == 0)
        rc = tkv_buf_append(out, raw.data, raw.len);
    if (rc != 0)
        out->len = old;
    return rc;
}

int tkv_codec_decode_compact_bytes(tkv_slice *in, tkv_slice *raw)
{
    tkv_slice save = *in;
    int64_t n;
    int rc = tkv_codec_decode_varint(in, &n);
    if (rc != 0)
        return rc;
    if (n < 0 || (uint64_t)n > in->len) {
        *in = save;
        return TKV_ECORRUPT;
    }
    raw->data = in->data;
    raw->len = (size_t)n;
    in->data += n;
    in->len -= (size_t)n;
    return 0;
}

int tkv_codec_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
