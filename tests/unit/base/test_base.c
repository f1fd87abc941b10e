/*
 * test_base.c: errors, allocator fault hook, buffers, PRNG, codecs, keys and log format.
 */
#include <ctype.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/codec.h"
#include "base/keys.h"
#include "base/log.h"

static uint64_t test_seed(void)
{
    const char *s = getenv("TKV_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : 20261127;
    printf("# TKV_SEED=%" PRIu64 "\n", seed);
    return seed;
}

static void test_strerror_names_every_code(void **state)
{
    (void)state;
    assert_string_equal(tkv_strerror(0), "ok");
    assert_string_equal(tkv_strerror(TKV_ECORRUPT), "corrupt data");
    assert_string_equal(tkv_strerror(-ENOMEM), "out of memory");
    for (int e = TKV_EUNSUPPORTED; e <= TKV_ECORRUPT; e++)
        assert_string_not_equal(tkv_strerror(e), "unknown error");
    assert_string_equal(tkv_strerror(-5000), "unknown error");
}

static void test_alloc_fault_hook_fails_nth_allocation(void **state)
{
    (void)state;
    tkv_alloc_fail_after(2);
    void *a = tkv_malloc(8);
    void *b = tkv_malloc(8);
    void *c = tkv_malloc(8);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    assert_null(tkv_strdup("x"));
    assert_int_equal(tkv_alloc_fault_count(), 2);
    tkv_alloc_fault_clear();
    void *d = tkv_malloc(8);
    assert_non_null(d);
    tkv_free(a);
    tkv_free(b);
    tkv_free(d);
    tkv_free(NULL);
}

static void test_buf_append_failure_leaves_buffer_unchanged(void **state)
{
    (void)state;
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(tkv_buf_append(&b, "hello", 5), 0);
    tkv_alloc_fail_after(0);
    char big[100];
    memset(big, 'x', sizeof(big));
    assert_int_equal(tkv_buf_append(&b, big, sizeof(big)), -ENOMEM);
    tkv_alloc_fault_clear();
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "hello", 5);
    assert_int_equal(tkv_buf_set(&b, "ab", 2), 0);
    assert_true(tkv_slice_eq(tkv_buf_slice(&b), tkv_slice_str("ab")));
    size_t n;
    uint8_t *p = tkv_buf_steal(&b, &n);
    assert_int_equal(n, 2);
    assert_null(b.data);
    tkv_free(p);
    tkv_buf_deinit(&b);
}

static void test_slice_cmp_orders_prefix_first(void **state)
{
    (void)state;
    assert_true(tkv_slice_cmp(tkv_slice_str("a"), tkv_slice_str("ab")) < 0);
    assert_true(tkv_slice_cmp(tkv_slice_str("b"), tkv_slice_str("ab")) > 0);
    assert_int_equal(tkv_slice_cmp(tkv_slice_str(""), tkv_slice_of(NULL, 0)), 0);
}

static void test_rng_is_deterministic_and_bounded(void **state)
{
    (void)state;
    tkv_rng a, b;
    tkv_rng_seed(&a, 42);
    tkv_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(tkv_rng_next(&a), tkv_rng_next(&b));
    int hist[10] = {0};
    for (int i = 0; i < 100000; i++) {
        uint64_t v = tkv_rng_below(&a, 10);
        assert_true(v < 10);
        hist[v]++;
    }
    for (int i = 0; i < 10; i++)
        assert_true(hist[i] > 9000 && hist[i] < 11000);
}

/* ---- codec ---------------------------------------------------------------------------- */

typedef struct vec {
    const char *raw;
    size_t raw_len;
    const char *enc;
    size_t enc_len;
} vec;

static void test_encode_bytes_matches_tikv_vectors(void **state)
{
    (void)state;
    static const vec vecs[] = {
        {"", 0, "\0\0\0\0\0\0\0\0\xF7", 9},
        {"\x01\x02\x03", 3, "\x01\x02\x03\0\0\0\0\0\xFA", 9},
        {"\x01\x02\x03\x00", 4, "\x01\x02\x03\0\0\0\0\0\xFB", 9},
        {"\x01\x02\x03\x04\x05\x06\x07\x08", 8,
         "\x01\x02\x03\x04\x05\x06\x07\x08\xFF\0\0\0\0\0\0\0\0\xF7", 18},
        {"\x01\x02\x03\x04\x05\x06\x07\x08\x09", 9,
         "\x01\x02\x03\x04\x05\x06\x07\x08\xFF\x09\0\0\0\0\0\0\0\xF8", 18},
    };
    for (size_t i = 0; i < TKV_ARRAY_LEN(vecs); i++) {
        tkv_buf b;
        tkv_buf_init(&b);
        assert_int_equal(tkv_codec_encode_bytes(&b, tkv_slice_of(vecs[i].raw, vecs[i].raw_len)), 0);
        assert_int_equal(b.len, vecs[i].enc_len);
        assert_memory_equal(b.data, vecs[i].enc, vecs[i].enc_len);
        assert_int_equal(tkv_codec_encoded_bytes_len(vecs[i].raw_len), vecs[i].enc_len);
        tkv_buf_deinit(&b);
    }
    /* Descending: every byte inverted. */
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(tkv_codec_encode_bytes_desc(&b, tkv_slice_of("\x01\x02\x03", 3)), 0);
    assert_memory_equal(b.data, "\xFE\xFD\xFC\xFF\xFF\xFF\xFF\xFF\x05", 9);
    tkv_buf_deinit(&b);
}

static void random_bytes(tkv_rng *r, tkv_buf *b)
{
    size_t len = (size_t)tkv_rng_below(r, 40);
    tkv_buf_reset(b);
    for (size_t i = 0; i < len; i++) {
        /* Bias towards 0x00 and 0xFF, the bytes that stress padding and markers. */
        uint64_t k = tkv_rng_below(r, 4);
        uint8_t v = k == 0 ? 0 : (k == 1 ? 0xFF : (uint8_t)tkv_rng_next(r));
        assert_int_equal(tkv_buf_append_u8(b, v), 0);
    }
}

static int sign(int x)
{
    return x < 0 ? -1 : (x > 0 ? 1 : 0);
}

static void test_encode_bytes_round_trips_and_keeps_order(void **state)
{
    (void)state;
    tkv_rng r;
    tkv_rng_seed(&r, test_seed());
    tkv_buf a, b, ea, eb, da, db;
    tkv_buf_init(&a);
    tkv_buf_init(&b);
    tkv_buf_init(&ea);
    tkv_buf_init(&eb);
    tkv_buf_init(&da);
    tkv_buf_init(&db);
    for (int i = 0; i < 20000; i++) {
        random_bytes(&r, &a);
        random_bytes(&r, &b);
        if (i % 7 == 0) /* shared prefixes */
            assert_int_equal(tkv_buf_set(&b, a.data, a.len / 2), 0);
        bool desc = i % 2;
        tkv_buf_reset(&ea);
        tkv_buf_reset(&eb);
        int (*enc)(tkv_buf *, tkv_slice) =
            desc ? tkv_codec_encode_bytes_desc : tkv_codec_encode_bytes;
        int (*dec)(tkv_slice *, tkv_buf *) =
            desc ? tkv_codec_decode_bytes_desc : tkv_codec_decode_bytes;
        assert_int_equal(enc(&ea, tkv_buf_slice(&a)), 0);
        assert_int_equal(enc(&eb, tkv_buf_slice(&b)), 0);
        int raw_order = sign(tkv_slice_cmp(tkv_buf_slice(&a), tkv_buf_slice(&b)));
        int enc_order = sign(tkv_slice_cmp(tkv_buf_slice(&ea), tkv_buf_slice(&eb)));
        assert_int_equal(enc_order, desc ? -raw_order : raw_order);
        /* Round trip, with a suffix after the encoding that must stay unread. */
        assert_int_equal(tkv_buf_append(&ea, "tail", 4), 0);
        tkv_slice in = tkv_buf_slice(&ea);
        assert_int_equal(dec(&in, &da), 0);
        assert_true(tkv_slice_eq(tkv_buf_slice(&da), tkv_buf_slice(&a)));
        assert_true(tkv_slice_eq(in, tkv_slice_str("tail")));
        (void)db;
    }
    tkv_buf_deinit(&a);
    tkv_buf_deinit(&b);
    tkv_buf_deinit(&ea);
    tkv_buf_deinit(&eb);
    tkv_buf_deinit(&da);
    tkv_buf_deinit(&db);
}

static void test_decode_bytes_rejects_malformed_input(void **state)
{
    (void)state;
    static const vec bad[] = {
        {NULL, 0, "", 0},                                     /* empty */
        {NULL, 0, "\x01\x02\x03", 3},                         /* truncated group */
        {NULL, 0, "\x01\x02\x03\0\0\0\0\0\xF6", 9},           /* pad count 9 */
        {NULL, 0, "\x01\x02\x03\0\0\0\x01\0\xFA", 9},         /* non-zero padding */
        {NULL, 0, "\x01\x02\x03\x04\x05\x06\x07\x08\xFF", 9}, /* missing last group */
        {NULL, 0, "\x01\x02\x03\x04\x05\x06\x07\x08\xFF\x01", 10},
    };
    tkv_buf out;
    tkv_buf_init(&out);
    for (size_t i = 0; i < TKV_ARRAY_LEN(bad); i++) {
        tkv_slice in = tkv_slice_of(bad[i].enc, bad[i].enc_len);
        assert_int_equal(tkv_codec_decode_bytes(&in, &out), TKV_ECORRUPT);
        assert_int_equal(in.len, bad[i].enc_len); /* unchanged on error */
    }
    tkv_buf_deinit(&out);
}

static void test_u64_encodings_keep_order(void **state)
{
    (void)state;
    tkv_rng r;
    tkv_rng_seed(&r, test_seed() + 1);
    for (int i = 0; i < 20000; i++) {
        uint64_t x = tkv_rng_next(&r) >> tkv_rng_below(&r, 64);
        uint64_t y = tkv_rng_next(&r) >> tkv_rng_below(&r, 64);
        tkv_buf a, b;
        tkv_buf_init(&a);
        tkv_buf_init(&b);
        assert_int_equal(tkv_codec_encode_u64(&a, x), 0);
        assert_int_equal(tkv_codec_encode_u64(&b, y), 0);
        int raw = x < y ? -1 : (x > y ? 1 : 0);
        assert_int_equal(sign(tkv_slice_cmp(tkv_buf_slice(&a), tkv_buf_slice(&b))), raw);
        tkv_buf_reset(&a);
        tkv_buf_reset(&b);
        assert_int_equal(tkv_codec_encode_u64_desc(&a, x), 0);
        assert_int_equal(tkv_codec_encode_u64_desc(&b, y), 0);
        assert_int_equal(sign(tkv_slice_cmp(tkv_buf_slice(&a), tkv_buf_slice(&b))), -raw);
        tkv_slice in = tkv_buf_slice(&a);
        uint64_t back;
        assert_int_equal(tkv_codec_decode_u64_desc(&in, &back), 0);
        assert_int_equal(back, x);
        /* Signed. */
        int64_t sx = (int64_t)x, sy = (int64_t)y;
        tkv_buf_reset(&a);
        tkv_buf_reset(&b);
        assert_int_equal(tkv_codec_encode_i64(&a, sx), 0);
        assert_int_equal(tkv_codec_encode_i64(&b, sy), 0);
        int sraw = sx < sy ? -1 : (sx > sy ? 1 : 0);
        assert_int_equal(sign(tkv_slice_cmp(tkv_buf_slice(&a), tkv_buf_slice(&b))), sraw);
        in = tkv_buf_slice(&a);
        int64_t sback;
        assert_int_equal(tkv_codec_decode_i64(&in, &sback), 0);
        assert_int_equal(sback, sx);
        tkv_buf_deinit(&a);
        tkv_buf_deinit(&b);
    }
    uint8_t be[8];
    tkv_codec_put_u64_be(be, 0x0102030405060708ULL);
    assert_memory_equal(be, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    tkv_slice shortin = tkv_slice_of(be, 7);
    uint64_t v;
    assert_int_equal(tkv_codec_decode_u64(&shortin, &v), TKV_ECORRUPT);
}

static void test_hex_digits_decode_both_cases_and_reject_others(void **state)
{
    (void)state;
    const char *digits = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        assert_int_equal(tkv_codec_hex_digit(digits[i]), i);
        assert_int_equal(tkv_codec_hex_digit(toupper((unsigned char)digits[i])), i);
    }
    assert_int_equal(tkv_codec_hex_digit('g'), -1);
    assert_int_equal(tkv_codec_hex_digit('/'), -1);
    assert_int_equal(tkv_codec_hex_digit(':'), -1);
    assert_int_equal(tkv_codec_hex_digit('@'), -1);
    assert_int_equal(tkv_codec_hex_digit(0), -1);
}

static void test_varint_round_trips_and_rejects_overflow(void **state)
{
    (void)state;
    static const uint64_t us[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, UINT64_MAX};
    for (size_t i = 0; i < TKV_ARRAY_LEN(us); i++) {
        tkv_buf b;
        tkv_buf_init(&b);
        assert_int_equal(tkv_codec_encode_uvarint(&b, us[i]), 0);
        tkv_slice in = tkv_buf_slice(&b);
        uint64_t v;
        assert_int_equal(tkv_codec_decode_uvarint(&in, &v), 0);
        assert_int_equal(v, us[i]);
        assert_int_equal(in.len, 0);
        tkv_buf_deinit(&b);
    }
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(tkv_codec_encode_uvarint(&b, 300), 0);
    assert_memory_equal(b.data, "\xAC\x02", 2);
    tkv_buf_reset(&b);
    static const int64_t is[] = {0, -1, 1, -64, 64, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < TKV_ARRAY_LEN(is); i++) {
        tkv_buf_reset(&b);
        assert_int_equal(tkv_codec_encode_varint(&b, is[i]), 0);
        tkv_slice in = tkv_buf_slice(&b);
        int64_t v;
        assert_int_equal(tkv_codec_decode_varint(&in, &v), 0);
        assert_int_equal(v, is[i]);
    }
    /* -1 zigzags to 1. */
    tkv_buf_reset(&b);
    assert_int_equal(tkv_codec_encode_varint(&b, -1), 0);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], 1);
    tkv_buf_deinit(&b);
    /* 11 continuation bytes, and a 10th byte that overflows. */
    const uint8_t over[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02};
    tkv_slice in = tkv_slice_of(over, sizeof(over));
    uint64_t v;
    assert_int_equal(tkv_codec_decode_uvarint(&in, &v), TKV_ECORRUPT);
    const uint8_t trunc[] = {0x80, 0x80};
    in = tkv_slice_of(trunc, sizeof(trunc));
    assert_int_equal(tkv_codec_decode_uvarint(&in, &v), TKV_ECORRUPT);
}

static void test_compact_bytes_round_trip_and_bounds(void **state)
{
    (void)state;
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(tkv_codec_encode_compact_bytes(&b, tkv_slice_str("primary")), 0);
    assert_int_equal(b.data[0], 14); /* zigzag(7) */
    tkv_slice in = tkv_buf_slice(&b), raw;
    assert_int_equal(tkv_codec_decode_compact_bytes(&in, &raw), 0);
    assert_true(tkv_slice_eq(raw, tkv_slice_str("primary")));
    /* A length beyond the input. */
    b.len = 3;
    in = tkv_buf_slice(&b);
    assert_int_equal(tkv_codec_decode_compact_bytes(&in, &raw), TKV_ECORRUPT);
    assert_int_equal(in.len, 3);
    tkv_buf_deinit(&b);
}

static void test_keys_layout_matches_tikv(void **state)
{
    (void)state;
    uint8_t k[TKV_KEYS_RAFT_LOG_KEY_LEN];
    tkv_keys_raft_log_key(k, 2, 5);
    assert_memory_equal(k, "\x01\x02\0\0\0\0\0\0\0\x02\x01\0\0\0\0\0\0\0\x05", sizeof(k));
    uint64_t region, index;
    assert_int_equal(tkv_keys_parse_raft_log_key(tkv_slice_of(k, sizeof(k)), &region, &index), 0);
    assert_int_equal(region, 2);
    assert_int_equal(index, 5);
    k[10] = 0x02;
    assert_int_equal(tkv_keys_parse_raft_log_key(tkv_slice_of(k, sizeof(k)), &region, &index),
                     TKV_ECORRUPT);
    uint8_t s[11];
    tkv_keys_region_state_key(s, 7);
    assert_memory_equal(s, "\x01\x03\0\0\0\0\0\0\0\x07\x01", 11);
    tkv_keys_apply_state_key(s, 7);
    assert_memory_equal(s, "\x01\x02\0\0\0\0\0\0\0\x07\x03", 11);

    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(tkv_keys_data_key(&b, tkv_slice_str("k1")), 0);
    assert_memory_equal(b.data, "zk1", 3);
    tkv_slice origin;
    assert_int_equal(tkv_keys_origin_key(tkv_buf_slice(&b), &origin), 0);
    assert_true(tkv_slice_eq(origin, tkv_slice_str("k1")));
    tkv_buf_reset(&b);
    assert_int_equal(tkv_keys_data_bound(&b, tkv_slice_of(NULL, 0), true), 0);
    assert_memory_equal(b.data, "{", 1);

    /* Versions of one key: newer timestamps sort first. */
    tkv_buf v1, v2;
    tkv_buf_init(&v1);
    tkv_buf_init(&v2);
    assert_int_equal(tkv_keys_mvcc_encode(&v1, tkv_slice_str("k")), 0);
    assert_int_equal(tkv_keys_append_ts(&v1, 10), 0);
    assert_int_equal(tkv_keys_mvcc_encode(&v2, tkv_slice_str("k")), 0);
    assert_int_equal(tkv_keys_append_ts(&v2, 20), 0);
    assert_true(tkv_slice_cmp(tkv_buf_slice(&v2), tkv_buf_slice(&v1)) < 0);
    tkv_slice without;
    uint64_t ts;
    assert_int_equal(tkv_keys_split_ts(tkv_buf_slice(&v2), &without, &ts), 0);
    assert_int_equal(ts, 20);
    assert_int_equal(without.len, 9);
    tkv_buf_deinit(&v1);
    tkv_buf_deinit(&v2);
    tkv_buf_deinit(&b);
}

static void test_log_line_has_tikv_shape_and_redacts(void **state)
{
    (void)state;
    char out[512];
    tkv_log_field f[] = {
        TKV_LF_U64("region_id", 2),
        TKV_LF_STR("state", "leader now"),
        TKV_LF_KEY("key", "k\x01", 2),
        TKV_LF_ERR("err", TKV_ECORRUPT),
    };
    tkv_log_set_redact(TKV_REDACT_OFF);
    size_t n = tkv_log_format(out, sizeof(out), TKV_LOG_INFO, "src/raft/raft.c", 12,
                              "became leader", f, TKV_ARRAY_LEN(f));
    out[n] = '\0';
    assert_non_null(strstr(out, "] [INFO] [raft.c:12] [\"became leader\"] [region_id=2] "
                                "[state=\"leader now\"] [key=6B01] [err=\"corrupt data\"]\n"));
    assert_int_equal(out[0], '[');
    tkv_log_set_redact(TKV_REDACT_ON);
    n = tkv_log_format(out, sizeof(out), TKV_LOG_WARN, "x.c", 1, "m", f + 2, 1);
    out[n] = '\0';
    assert_non_null(strstr(out, "[key=?]"));
    tkv_log_set_redact(TKV_REDACT_MARKER);
    tkv_log_field g = TKV_LF_KEY("key", "abc", 3);
    n = tkv_log_format(out, sizeof(out), TKV_LOG_WARN, "x.c", 1, "m", &g, 1);
    out[n] = '\0';
    assert_non_null(strstr(out, "[key=\xE2\x80\xB9"
                                "abc\xE2\x80\xBA]"));
    tkv_log_set_redact(TKV_REDACT_OFF);
    /* A tiny buffer truncates without overflowing and still ends with a newline. */
    char tiny[16];
    n = tkv_log_format(tiny, sizeof(tiny), TKV_LOG_INFO, "x.c", 1, "m", f, 4);
    assert_int_equal(n, sizeof(tiny));
    assert_int_equal(tiny[n - 1], '\n');
    tkv_log_level lvl;
    assert_int_equal(tkv_log_parse_level("warn", &lvl), 0);
    assert_int_equal(lvl, TKV_LOG_WARN);
    assert_int_equal(tkv_log_parse_level("loud", &lvl), -EINVAL);
    tkv_log_redact mode;
    assert_int_equal(tkv_log_parse_redact("marker", &mode), 0);
    assert_int_equal(mode, TKV_REDACT_MARKER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_names_every_code),
        cmocka_unit_test(test_alloc_fault_hook_fails_nth_allocation),
        cmocka_unit_test(test_buf_append_failure_leaves_buffer_unchanged),
        cmocka_unit_test(test_slice_cmp_orders_prefix_first),
        cmocka_unit_test(test_rng_is_deterministic_and_bounded),
        cmocka_unit_test(test_encode_bytes_matches_tikv_vectors),
        cmocka_unit_test(test_encode_bytes_round_trips_and_keeps_order),
        cmocka_unit_test(test_decode_bytes_rejects_malformed_input),
        cmocka_unit_test(test_u64_encodings_keep_order),
        cmocka_unit_test(test_hex_digits_decode_both_cases_and_reject_others),
        cmocka_unit_test(test_varint_round_trips_and_rejects_overflow),
        cmocka_unit_test(test_compact_bytes_round_trip_and_bounds),
        cmocka_unit_test(test_keys_layout_matches_tikv),
        cmocka_unit_test(test_log_line_has_tikv_shape_and_redacts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
