/*
 * fuzz_codec.c: TiKV's byte and number encodings and key layout (src/base/codec.h, keys.h).
 *
 * Each input is used twice. Split in two at a point chosen by its first byte, it gives a pair
 * of raw strings (a, b) whose encodings must round-trip and keep their order: memcomparable
 * ascending and descending, concatenated without ambiguity, u64/i64 fixed width, and MVCC keys
 * (user key order first, then newer timestamps first). Whole, it is fed to every decoder as
 * untrusted bytes: varints, zigzag varints, compact bytes, memcomparable strings, raft log
 * keys, data keys and timestamped keys. A decoder may reject it; when it accepts, encoding
 * what it decoded must give back exactly the bytes it consumed (or, for varints with redundant
 * high zero groups, the same value), and a rejection must leave the input untouched.
 */
#include "base/codec.h"
#include "base/keys.h"
#include "fuzz/fuzz.h"

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

static int cmp_u64(uint64_t x, uint64_t y)
{
    return (x > y) - (x < y);
}

static tkv_slice buf_slice(const tkv_buf *b)
{
    return tkv_buf_slice(b);
}

/* Memcomparable: round trip, length, order, and unambiguous concatenation. */
static void check_bytes_pair(tkv_slice a, tkv_slice b)
{
    tkv_buf ea, eb, da, db, both, out;
    tkv_buf_init(&ea);
    tkv_buf_init(&eb);
    tkv_buf_init(&da);
    tkv_buf_init(&db);
    tkv_buf_init(&both);
    tkv_buf_init(&out);
    FUZZ_CHECK(tkv_codec_encode_bytes(&ea, a) == 0);
    FUZZ_CHECK(tkv_codec_encode_bytes(&eb, b) == 0);
    FUZZ_CHECK(tkv_codec_encode_bytes_desc(&da, a) == 0);
    FUZZ_CHECK(tkv_codec_encode_bytes_desc(&db, b) == 0);
    FUZZ_CHECK(ea.len == tkv_codec_encoded_bytes_len(a.len));
    FUZZ_CHECK(da.len == ea.len);

    size_t plen = 0;
    FUZZ_CHECK(tkv_codec_encoded_prefix_len(buf_slice(&ea), &plen) == 0 && plen == ea.len);
    tkv_slice s = buf_slice(&ea);
    FUZZ_CHECK(tkv_codec_decode_bytes(&s, &out) == 0);
    FUZZ_CHECK(s.len == 0 && tkv_slice_eq(buf_slice(&out), a));
    s = buf_slice(&da);
    FUZZ_CHECK(tkv_codec_decode_bytes_desc(&s, &out) == 0);
    FUZZ_CHECK(s.len == 0 && tkv_slice_eq(buf_slice(&out), a));

    int raw = sign(tkv_slice_cmp(a, b));
    FUZZ_CHECK(sign(tkv_slice_cmp(buf_slice(&ea), buf_slice(&eb))) == raw);
    FUZZ_CHECK(sign(tkv_slice_cmp(buf_slice(&da), buf_slice(&db))) == -raw);
    if (raw != 0) {
        /* No encoding is a prefix of another. */
        size_t n = TKV_MIN(ea.len, eb.len);
        FUZZ_CHECK(memcmp(ea.data, eb.data, n) != 0);
    }

    FUZZ_CHECK(tkv_buf_append(&both, ea.data, ea.len) == 0);
    FUZZ_CHECK(tkv_buf_append(&both, eb.data, eb.len) == 0);
    s = buf_slice(&both);
    FUZZ_CHECK(tkv_codec_decode_bytes(&s, &out) == 0 && tkv_slice_eq(buf_slice(&out), a));
    FUZZ_CHECK(tkv_codec_decode_bytes(&s, &out) == 0 && tkv_slice_eq(buf_slice(&out), b));
    FUZZ_CHECK(s.len == 0);

    tkv_buf_deinit(&ea);
    tkv_buf_deinit(&eb);
    tkv_buf_deinit(&da);
    tkv_buf_deinit(&db);
    tkv_buf_deinit(&both);
    tkv_buf_deinit(&out);
}

/* Returns up to 8 bytes of @s as a big-endian number (short inputs are zero-padded). */
static uint64_t take_u64(tkv_slice s)
{
    uint8_t b[8] = {0};
    memcpy(b, s.data, TKV_MIN(s.len, sizeof(b)));
    return tkv_codec_get_u64_be(b);
}

/* Fixed-width numbers: round trip and order, ascending, descending and signed. */
static void check_numbers(uint64_t x, uint64_t y)
{
    tkv_buf ex, ey;
    tkv_buf_init(&ex);
    tkv_buf_init(&ey);
    uint64_t u;
    int64_t i;

    FUZZ_CHECK(tkv_codec_encode_u64(&ex, x) == 0 && tkv_codec_encode_u64(&ey, y) == 0);
    FUZZ_CHECK(sign(tkv_slice_cmp(buf_slice(&ex), buf_slice(&ey))) == cmp_u64(x, y));
    tkv_slice s = buf_slice(&ex);
    FUZZ_CHECK(tkv_codec_decode_u64(&s, &u) == 0 && u == x && s.len == 0);

    tkv_buf_reset(&ex);
    tkv_buf_reset(&ey);
    FUZZ_CHECK(tkv_codec_encode_u64_desc(&ex, x) == 0 && tkv_codec_encode_u64_desc(&ey, y) == 0);
    FUZZ_CHECK(sign(tkv_slice_cmp(buf_slice(&ex), buf_slice(&ey))) == -cmp_u64(x, y));
    s = buf_slice(&ex);
    FUZZ_CHECK(tkv_codec_decode_u64_desc(&s, &u) == 0 && u == x);

    int64_t sx = (int64_t)x, sy = (int64_t)y;
    tkv_buf_reset(&ex);
    tkv_buf_reset(&ey);
    FUZZ_CHECK(tkv_codec_encode_i64(&ex, sx) == 0 && tkv_codec_encode_i64(&ey, sy) == 0);
    FUZZ_CHECK(sign(tkv_slice_cmp(buf_slice(&ex), buf_slice(&ey))) == (sx > sy) - (sx < sy));
    s = buf_slice(&ex);
    FUZZ_CHECK(tkv_codec_decode_i64(&s, &i) == 0 && i == sx);

    /* Varints of the same numbers round-trip. */
    tkv_buf_reset(&ex);
    FUZZ_CHECK(tkv_codec_encode_uvarint(&ex, x) == 0 && tkv_codec_encode_varint(&ex, sy) == 0);
    s = buf_slice(&ex);
    FUZZ_CHECK(tkv_codec_decode_uvarint(&s, &u) == 0 && u == x);
    FUZZ_CHECK(tkv_codec_decode_varint(&s, &i) == 0 && i == sy && s.len == 0);

    tkv_buf_deinit(&ex);
    tkv_buf_deinit(&ey);
}

/* MVCC keys: the user key orders first, then newer timestamps sort first. */
static void check_mvcc_keys(tkv_slice a, tkv_slice b, uint64_t ta, uint64_t tb)
{
    tkv_buf ka, kb;
    tkv_buf_init(&ka);
    tkv_buf_init(&kb);
    FUZZ_CHECK(tkv_keys_mvcc_encode(&ka, a) == 0 && tkv_keys_append_ts(&ka, ta) == 0);
    FUZZ_CHECK(tkv_keys_mvcc_encode(&kb, b) == 0 && tkv_keys_append_ts(&kb, tb) == 0);
    int want = tkv_slice_eq(a, b) ? -cmp_u64(ta, tb) : sign(tkv_slice_cmp(a, b));
    FUZZ_CHECK(sign(tkv_slice_cmp(buf_slice(&ka), buf_slice(&kb))) == want);
    tkv_slice without;
    uint64_t ts;
    FUZZ_CHECK(tkv_keys_split_ts(buf_slice(&ka), &without, &ts) == 0 && ts == ta);
    FUZZ_CHECK(without.len == tkv_codec_encoded_bytes_len(a.len));

    /* Data keys keep order, and the end bound of an empty key is past all of them. */
    tkv_buf_reset(&ka);
    tkv_buf_reset(&kb);
    FUZZ_CHECK(tkv_keys_data_key(&ka, a) == 0 && tkv_keys_data_key(&kb, b) == 0);
    FUZZ_CHECK(sign(tkv_slice_cmp(buf_slice(&ka), buf_slice(&kb))) == sign(tkv_slice_cmp(a, b)));
    tkv_buf_reset(&kb);
    FUZZ_CHECK(tkv_keys_data_bound(&kb, tkv_slice_of(NULL, 0), true) == 0);
    FUZZ_CHECK(tkv_slice_cmp(buf_slice(&ka), buf_slice(&kb)) < 0);
    tkv_buf_deinit(&ka);
    tkv_buf_deinit(&kb);
}

/* Every decoder on the raw input: reject cleanly, or accept exactly re-encodable bytes. */
static void check_decoders(tkv_slice in)
{
    tkv_buf enc, out;
    tkv_buf_init(&enc);
    tkv_buf_init(&out);

    tkv_slice s = in;
    uint64_t u;
    if (tkv_codec_decode_uvarint(&s, &u) == 0) {
        size_t used = in.len - s.len;
        FUZZ_CHECK(used >= 1 && used <= TKV_VARINT_MAX_LEN && s.data == in.data + used);
        uint8_t b[TKV_VARINT_MAX_LEN];
        size_t n = tkv_codec_put_uvarint(b, u);
        FUZZ_CHECK(n <= used);
        /* Canonical when the last group is not a redundant zero. */
        if (used == 1 || in.data[used - 1] != 0)
            FUZZ_CHECK(n == used && memcmp(b, in.data, n) == 0);
    } else {
        FUZZ_CHECK(s.data == in.data && s.len == in.len);
    }

    s = in;
    int64_t i;
    if (tkv_codec_decode_varint(&s, &i) == 0) {
        FUZZ_CHECK(tkv_codec_encode_varint(&enc, i) == 0);
        tkv_slice t = buf_slice(&enc);
        int64_t j;
        FUZZ_CHECK(tkv_codec_decode_varint(&t, &j) == 0 && j == i && t.len == 0);
    } else {
        FUZZ_CHECK(s.data == in.data && s.len == in.len);
    }

    s = in;
    tkv_slice raw;
    if (tkv_codec_decode_compact_bytes(&s, &raw) == 0) {
        FUZZ_CHECK(raw.data >= in.data && raw.data + raw.len == s.data);
        FUZZ_CHECK(s.data + s.len == in.data + in.len);
        tkv_buf_reset(&enc);
        FUZZ_CHECK(tkv_codec_encode_compact_bytes(&enc, raw) == 0);
        tkv_slice t = buf_slice(&enc), raw2;
        FUZZ_CHECK(tkv_codec_decode_compact_bytes(&t, &raw2) == 0 && tkv_slice_eq(raw, raw2));
    } else {
        FUZZ_CHECK(s.data == in.data && s.len == in.len);
    }

    /* Memcomparable decoding is canonical: exactly the consumed bytes come back. */
    for (int desc = 0; desc <= 1; desc++) {
        s = in;
        int rc = desc ? tkv_codec_decode_bytes_desc(&s, &out) : tkv_codec_decode_bytes(&s, &out);
        size_t plen = 0;
        int prc = tkv_codec_encoded_prefix_len(in, &plen);
        if (rc == 0) {
            size_t used = in.len - s.len;
            tkv_buf_reset(&enc);
            FUZZ_CHECK((desc ? tkv_codec_encode_bytes_desc(&enc, buf_slice(&out))
                             : tkv_codec_encode_bytes(&enc, buf_slice(&out))) == 0);
            FUZZ_CHECK(enc.len == used && memcmp(enc.data, in.data, used) == 0);
            if (!desc)
                FUZZ_CHECK(prc == 0 && plen == used);
        } else {
            FUZZ_CHECK(rc == TKV_ECORRUPT && s.data == in.data && s.len == in.len);
            if (!desc)
                FUZZ_CHECK(prc == TKV_ECORRUPT);
        }
    }

    /* Key parsers accept exactly their layout and rebuild the same bytes. */
    uint64_t region, index;
    bool log_shape = in.len == TKV_KEYS_RAFT_LOG_KEY_LEN && in.data[0] == TKV_KEYS_LOCAL_PREFIX &&
                     in.data[1] == TKV_KEYS_REGION_RAFT_PREFIX &&
                     in.data[10] == TKV_KEYS_RAFT_LOG_SUFFIX;
    int rc = tkv_keys_parse_raft_log_key(in, &region, &index);
    FUZZ_CHECK((rc == 0) == log_shape);
    if (rc == 0) {
        uint8_t k[TKV_KEYS_RAFT_LOG_KEY_LEN];
        tkv_keys_raft_log_key(k, region, index);
        FUZZ_CHECK(memcmp(k, in.data, sizeof(k)) == 0);
    }
    tkv_slice origin;
    rc = tkv_keys_origin_key(in, &origin);
    FUZZ_CHECK((rc == 0) == tkv_keys_is_data_key(in));
    if (rc == 0) {
        tkv_buf_reset(&enc);
        FUZZ_CHECK(tkv_keys_data_key(&enc, origin) == 0 && tkv_slice_eq(buf_slice(&enc), in));
    }
    tkv_slice without;
    uint64_t ts;
    rc = tkv_keys_split_ts(in, &without, &ts);
    FUZZ_CHECK((rc == 0) == (in.len >= 8));
    if (rc == 0) {
        tkv_buf_reset(&enc);
        FUZZ_CHECK(tkv_buf_append(&enc, without.data, without.len) == 0);
        FUZZ_CHECK(tkv_keys_append_ts(&enc, ts) == 0 && tkv_slice_eq(buf_slice(&enc), in));
    }

    tkv_buf_deinit(&enc);
    tkv_buf_deinit(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tkv_slice in = tkv_slice_of(data, size);
    tkv_slice a = tkv_slice_of(data, 0), b = tkv_slice_of(data, 0);
    if (size > 0) {
        size_t cut = 1 + data[0] % size; /* 1..size */
        a = tkv_slice_of(data + 1, cut - 1);
        b = tkv_slice_of(data + cut, size - cut);
    }
    check_bytes_pair(a, b);
    check_numbers(take_u64(a), take_u64(b));
    check_mvcc_keys(a, b, take_u64(b), take_u64(a));
    check_decoders(in);
    return 0;
}
