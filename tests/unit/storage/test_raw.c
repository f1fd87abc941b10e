/*
 * test_raw.c: the raw KV methods (storage/raw/) on stor_kv_local, each test over eng_mem and
 * eng_rocks: reads and writes, column families, scans (forward, reverse, at region edges),
 * batch scans, range deletes, TTL with an injected clock, compare-and-swap (with threads
 * racing), checksums against hand-computed CRC-64 values, limits, API versions, region errors
 * and allocation failures.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/codec.h"
#include "storage/raw/raw_int.h"
#include "storage/storage.h"

/* ---- fixture -------------------------------------------------------------------------- */

typedef struct fx {
    bool rocks;
    char dir[64];
    eng_db *db;
    stor_kv *kv;
    stor *s;
    _Atomic uint64_t now_s; /* the injected TTL clock */
    Kvrpcpb__Context ctx;
    Metapb__RegionEpoch epoch;
} fx;

static uint64_t fx_clock(void *arg)
{
    fx *f = arg;
    return f->now_s;
}

static void fx_open_storage(fx *f, bool enable_ttl)
{
    stor_free(f->s);
    stor_opts o;
    stor_opts_init(&o);
    o.latch_slots = 1024;
    o.enable_ttl = enable_ttl;
    o.max_key_bytes = 64;
    o.max_value_bytes = 1024;
    o.max_batch_keys = 16;
    o.max_scan_limit = 100;
    o.ttl_clock_s = fx_clock;
    o.ttl_clock_arg = f;
    assert_int_equal(stor_new(f->kv, &o, &f->s), 0);
}

static int fx_setup(void **state, bool rocks)
{
    fx *f = tkv_calloc(1, sizeof(*f));
    assert_non_null(f);
    f->rocks = rocks;
    f->now_s = 1000;
    if (rocks) {
        snprintf(f->dir, sizeof(f->dir), "/tmp/tkv-test-raw-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        char err[TKV_ERRMSG_LEN];
        assert_int_equal(eng_rocks_open(f->dir, NULL, &f->db, err), 0);
    } else {
        assert_int_equal(eng_mem_open(NULL, &f->db), 0);
    }
    assert_int_equal(stor_kv_local_new(f->db, NULL, &f->kv), 0);
    fx_open_storage(f, false);
    kvrpcpb__context__init(&f->ctx);
    metapb__region_epoch__init(&f->epoch);
    f->epoch.conf_ver = 1;
    f->epoch.version = 1;
    f->ctx.region_id = 1;
    f->ctx.region_epoch = &f->epoch;
    *state = f;
    return 0;
}

static int setup_mem(void **state)
{
    return fx_setup(state, false);
}

static int setup_rocks(void **state)
{
    return fx_setup(state, true);
}

static int teardown(void **state)
{
    fx *f = *state;
    stor_free(f->s);
    stor_kv_free(f->kv);
    eng_close(f->db);
    if (f->rocks) {
        char err[TKV_ERRMSG_LEN];
        assert_int_equal(eng_rocks_destroy(f->dir, NULL, err), 0);
        rmdir(f->dir);
    }
    tkv_free(f);
    return 0;
}

/* ---- calling methods ------------------------------------------------------------------ */

typedef struct reply {
    int calls;
    ProtobufCMessage *resp; /* a copy the test owns */
} reply;

/* Keeps a deep copy of the response (it is borrowed for the callback only). */
static void on_done(void *ud, const ProtobufCMessage *resp)
{
    reply *r = ud;
    r->calls++;
    size_t len = protobuf_c_message_get_packed_size(resp);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    protobuf_c_message_pack(resp, buf);
    r->resp = protobuf_c_message_unpack(resp->descriptor, NULL, len, buf);
    assert_non_null(r->resp);
    free(buf);
}

/* Calls method @name synchronously (stor_kv_local answers before returning). */
static void *call(fx *f, const char *name, const void *req)
{
    const stor_method *m = stor_method_find(name);
    assert_non_null(m);
    assert_ptr_equal(((const ProtobufCMessage *)req)->descriptor, m->req_desc);
    reply r = {0};
    assert_int_equal(m->fn(f->s, req, on_done, &r), 0);
    assert_int_equal(r.calls, 1);
    assert_ptr_equal(r.resp->descriptor, m->resp_desc);
    return r.resp;
}

static void resp_free(void *resp)
{
    protobuf_c_message_free_unpacked(resp, NULL);
}

static ProtobufCBinaryData bin(const char *s)
{
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}

static bool bin_is(ProtobufCBinaryData b, const char *s)
{
    return b.len == strlen(s) && (b.len == 0 || memcmp(b.data, s, b.len) == 0);
}

static void put_ttl_cf(fx *f, const char *cf, const char *k, const char *v, uint64_t ttl)
{
    Kvrpcpb__RawPutRequest req = KVRPCPB__RAW_PUT_REQUEST__INIT;
    req.context = &f->ctx;
    req.key = bin(k);
    req.value = bin(v);
    req.cf = (char *)cf;
    req.ttl = ttl;
    Kvrpcpb__RawPutResponse *resp = call(f, "RawPut", &req);
    assert_null(resp->region_error);
    assert_string_equal(resp->error, "");
    resp_free(resp);
}

static void put(fx *f, const char *k, const char *v)
{
    put_ttl_cf(f, "", k, v, 0);
}

static Kvrpcpb__RawGetResponse *get_cf(fx *f, const char *cf, const char *k)
{
    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    req.context = &f->ctx;
    req.key = bin(k);
    req.cf = (char *)cf;
    return call(f, "RawGet", &req);
}

/* Asserts that @k reads as @want (NULL: not found). */
static void expect_get_cf(fx *f, const char *cf, const char *k, const char *want)
{
    Kvrpcpb__RawGetResponse *resp = get_cf(f, cf, k);
    assert_null(resp->region_error);
    assert_string_equal(resp->error, "");
    if (want == NULL) {
        assert_true(resp->not_found);
        assert_int_equal(resp->value.len, 0);
    } else {
        assert_false(resp->not_found);
        assert_true(bin_is(resp->value, want));
    }
    resp_free(resp);
}

static void expect_get(fx *f, const char *k, const char *want)
{
    expect_get_cf(f, "", k, want);
}

static Kvrpcpb__RawScanResponse *scan(fx *f, const char *start, const char *end, uint32_t limit,
                                      bool reverse, bool key_only)
{
    Kvrpcpb__RawScanRequest req = KVRPCPB__RAW_SCAN_REQUEST__INIT;
    req.context = &f->ctx;
    req.start_key = bin(start);
    req.end_key = bin(end);
    req.limit = limit;
    req.reverse = reverse;
    req.key_only = key_only;
    return call(f, "RawScan", &req);
}

/* Asserts that the pairs are exactly the space-separated keys @keys ("" for none), each with
 * value "v" + key unless @key_only. */
static void expect_pairs(Kvrpcpb__KvPair **kvs, size_t n, const char *keys, bool key_only)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", keys);
    size_t i = 0;
    for (char *save, *k = strtok_r(buf, " ", &save); k; k = strtok_r(NULL, " ", &save), i++) {
        assert_true(i < n);
        assert_null(kvs[i]->error);
        if (!bin_is(kvs[i]->key, k))
            fail_msg("pair %zu: want key %s, got %.*s", i, k, (int)kvs[i]->key.len,
                     (const char *)kvs[i]->key.data);
        char v[64];
        snprintf(v, sizeof(v), "v%s", k);
        assert_true(bin_is(kvs[i]->value, key_only ? "" : v));
    }
    assert_int_equal(i, n);
}

static void expect_scan(fx *f, const char *start, const char *end, uint32_t limit, bool reverse,
                        const char *keys)
{
    Kvrpcpb__RawScanResponse *resp = scan(f, start, end, limit, reverse, false);
    assert_null(resp->region_error);
    expect_pairs(resp->kvs, resp->n_kvs, keys, false);
    resp_free(resp);
}

/* Writes key k with value "vk" for each space-separated key. */
static void put_keys(fx *f, const char *keys)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", keys);
    for (char *save, *k = strtok_r(buf, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
        char v[64];
        snprintf(v, sizeof(v), "v%s", k);
        put(f, k, v);
    }
}

/* ---- point reads and writes ----------------------------------------------------------- */

static void test_put_get_delete_and_empty_value(void **state)
{
    fx *f = *state;
    expect_get(f, "k", NULL);
    put(f, "k", "v1");
    expect_get(f, "k", "v1");
    put(f, "k", "v2");
    expect_get(f, "k", "v2");
    /* An empty value is a value, not an absence (client-go reads not_found). */
    put(f, "empty", "");
    expect_get(f, "empty", "");

    Kvrpcpb__RawDeleteRequest del = KVRPCPB__RAW_DELETE_REQUEST__INIT;
    del.context = &f->ctx;
    del.key = bin("k");
    Kvrpcpb__RawDeleteResponse *dr = call(f, "RawDelete", &del);
    assert_null(dr->region_error);
    assert_string_equal(dr->error, "");
    resp_free(dr);
    expect_get(f, "k", NULL);
    /* Deleting an absent key succeeds. */
    dr = call(f, "RawDelete", &del);
    assert_string_equal(dr->error, "");
    resp_free(dr);
}

static void test_batch_put_get_delete_omit_absent_keys(void **state)
{
    fx *f = *state;
    Kvrpcpb__KvPair p[3] = {KVRPCPB__KV_PAIR__INIT, KVRPCPB__KV_PAIR__INIT, KVRPCPB__KV_PAIR__INIT};
    Kvrpcpb__KvPair *pp[3] = {&p[0], &p[1], &p[2]};
    p[0].key = bin("a");
    p[0].value = bin("va");
    p[1].key = bin("c");
    p[1].value = bin("vc");
    p[2].key = bin("e");
    p[2].value = bin("");
    Kvrpcpb__RawBatchPutRequest bp = KVRPCPB__RAW_BATCH_PUT_REQUEST__INIT;
    bp.context = &f->ctx;
    bp.pairs = pp;
    bp.n_pairs = 3;
    Kvrpcpb__RawBatchPutResponse *bpr = call(f, "RawBatchPut", &bp);
    assert_null(bpr->region_error);
    assert_string_equal(bpr->error, "");
    resp_free(bpr);

    ProtobufCBinaryData keys[4] = {bin("a"), bin("b"), bin("c"), bin("e")};
    Kvrpcpb__RawBatchGetRequest bg = KVRPCPB__RAW_BATCH_GET_REQUEST__INIT;
    bg.context = &f->ctx;
    bg.keys = keys;
    bg.n_keys = 4;
    Kvrpcpb__RawBatchGetResponse *bgr = call(f, "RawBatchGet", &bg);
    assert_null(bgr->region_error);
    assert_int_equal(bgr->n_pairs, 3); /* "b" is omitted; "e" has an empty value */
    assert_true(bin_is(bgr->pairs[0]->key, "a") && bin_is(bgr->pairs[0]->value, "va"));
    assert_true(bin_is(bgr->pairs[1]->key, "c") && bin_is(bgr->pairs[1]->value, "vc"));
    assert_true(bin_is(bgr->pairs[2]->key, "e") && bin_is(bgr->pairs[2]->value, ""));
    resp_free(bgr);

    Kvrpcpb__RawBatchDeleteRequest bd = KVRPCPB__RAW_BATCH_DELETE_REQUEST__INIT;
    bd.context = &f->ctx;
    bd.keys = keys;
    bd.n_keys = 2;
    Kvrpcpb__RawBatchDeleteResponse *bdr = call(f, "RawBatchDelete", &bd);
    assert_string_equal(bdr->error, "");
    resp_free(bdr);
    expect_get(f, "a", NULL);
    expect_get(f, "c", "vc");

    /* Empty batches are fine and write nothing. */
    bp.n_pairs = 0;
    bpr = call(f, "RawBatchPut", &bp);
    assert_string_equal(bpr->error, "");
    resp_free(bpr);
}

static void test_column_families_are_separate_and_unknown_cf_fails(void **state)
{
    fx *f = *state;
    put_ttl_cf(f, "lock", "k", "in-lock", 0);
    put_ttl_cf(f, "write", "k", "in-write", 0);
    put_ttl_cf(f, "default", "k", "in-default", 0);
    expect_get_cf(f, "lock", "k", "in-lock");
    expect_get_cf(f, "write", "k", "in-write");
    expect_get(f, "k", "in-default");

    Kvrpcpb__RawPutRequest req = KVRPCPB__RAW_PUT_REQUEST__INIT;
    req.context = &f->ctx;
    req.key = bin("x");
    req.value = bin("y");
    req.cf = "raft";
    Kvrpcpb__RawPutResponse *resp = call(f, "RawPut", &req);
    assert_string_equal(resp->error, "invalid cf name: raft");
    resp_free(resp);
    expect_get(f, "x", NULL);
    Kvrpcpb__RawGetResponse *g = get_cf(f, "bogus", "k");
    assert_string_equal(g->error, "invalid cf name: bogus");
    resp_free(g);
    /* Responses without an error field carry it in a KvPair (TiKV's extract_kv_pairs). */
    Kvrpcpb__RawScanRequest sr = KVRPCPB__RAW_SCAN_REQUEST__INIT;
    sr.context = &f->ctx;
    sr.limit = 10;
    sr.cf = "nope";
    Kvrpcpb__RawScanResponse *s = call(f, "RawScan", &sr);
    assert_int_equal(s->n_kvs, 1);
    assert_non_null(s->kvs[0]->error);
    assert_string_equal(s->kvs[0]->error->abort, "invalid cf name: nope");
    resp_free(s);
}

/* ---- scans ------------------------------------------------------------------------------ */

static void test_scan_forward_limit_bounds_and_key_only(void **state)
{
    fx *f = *state;
    put_keys(f, "a b c d e");
    expect_scan(f, "", "", 100, false, "a b c d e");
    expect_scan(f, "b", "", 2, false, "b c");
    expect_scan(f, "b", "d", 100, false, "b c");
    expect_scan(f, "bb", "", 100, false, "c d e");
    expect_scan(f, "f", "", 100, false, "");
    expect_scan(f, "a", "", 0, false, "");
    expect_scan(f, "d", "b", 100, false, ""); /* inverted range */
    Kvrpcpb__RawScanResponse *resp = scan(f, "a", "c", 10, false, true);
    expect_pairs(resp->kvs, resp->n_kvs, "a b", true);
    resp_free(resp);
}

/* Found by fuzz_raw_methods: a response made only of empty keys and values has no bytes. */
static void test_scan_key_only_of_the_empty_key(void **state)
{
    fx *f = *state;
    put(f, "", "v");
    Kvrpcpb__RawScanResponse *resp = scan(f, "", "", 10, false, true);
    assert_null(resp->region_error);
    assert_int_equal(resp->n_kvs, 1);
    assert_int_equal(resp->kvs[0]->key.len, 0);
    assert_int_equal(resp->kvs[0]->value.len, 0);
    resp_free(resp);
}

static void test_scan_reverse_reads_end_to_start_downward(void **state)
{
    fx *f = *state;
    put_keys(f, "a b c d e");
    /* [end_key, start_key) read downward; start_key is exclusive. */
    expect_scan(f, "d", "", 100, true, "c b a");
    expect_scan(f, "d", "b", 100, true, "c b");
    expect_scan(f, "e", "", 2, true, "d c");
    expect_scan(f, "dd", "a", 100, true, "d c b a");
    expect_scan(f, "a", "", 100, true, "");
    /* An empty start key begins at the region's end. */
    expect_scan(f, "", "c", 100, true, "e d c");
}

static void test_scan_is_clipped_to_the_region(void **state)
{
    fx *f = *state;
    put_keys(f, "a b c d e f");
    assert_int_equal(stor_kv_local_set_range(f->kv, tkv_slice_str("b"), tkv_slice_str("e")), 0);
    /* The client sends its whole range; the region's part comes back, exactly. */
    expect_scan(f, "b", "", 100, false, "b c d");
    expect_scan(f, "b", "z", 2, false, "b c");
    expect_scan(f, "c", "", 100, false, "c d");
    expect_scan(f, "e", "", 100, false, ""); /* start at the region's end: nothing left */
    expect_scan(f, "e", "", 100, true, "d c b");
    expect_scan(f, "e", "a", 2, true, "d c");
    expect_scan(f, "", "", 100, true, "d c b");
    /* A start outside the region is refused with KeyNotInRegion. */
    Kvrpcpb__RawScanResponse *resp = scan(f, "a", "", 10, false, false);
    assert_non_null(resp->region_error);
    assert_non_null(resp->region_error->key_not_in_region);
    assert_true(bin_is(resp->region_error->key_not_in_region->key, "a"));
    assert_true(bin_is(resp->region_error->key_not_in_region->start_key, "b"));
    assert_true(bin_is(resp->region_error->key_not_in_region->end_key, "e"));
    assert_int_equal(resp->n_kvs, 0);
    resp_free(resp);
    resp = scan(f, "f", "", 10, true, false);
    assert_non_null(resp->region_error);
    resp_free(resp);
    /* Point reads and writes outside the region get KeyNotInRegion and change nothing. */
    Kvrpcpb__RawGetResponse *g = get_cf(f, "", "a");
    assert_non_null(g->region_error);
    assert_non_null(g->region_error->key_not_in_region);
    resp_free(g);
    Kvrpcpb__RawPutRequest pr = KVRPCPB__RAW_PUT_REQUEST__INIT;
    pr.context = &f->ctx;
    pr.key = bin("ea");
    pr.value = bin("x");
    Kvrpcpb__RawPutResponse *p = call(f, "RawPut", &pr);
    assert_non_null(p->region_error);
    assert_non_null(p->region_error->key_not_in_region);
    resp_free(p);
    assert_int_equal(stor_kv_local_set_range(f->kv, tkv_slice_str(""), tkv_slice_str("")), 0);
    expect_get(f, "ea", NULL);
    expect_get(f, "a", "va");
}

static void test_batch_scan_each_limit_and_range_ends(void **state)
{
    fx *f = *state;
    put_keys(f, "a1 a2 a3 b1 b2 c1 c2 c3");
    Kvrpcpb__KeyRange r[3] = {KVRPCPB__KEY_RANGE__INIT, KVRPCPB__KEY_RANGE__INIT,
                              KVRPCPB__KEY_RANGE__INIT};
    Kvrpcpb__KeyRange *rp[3] = {&r[0], &r[1], &r[2]};
    r[0].start_key = bin("a");
    r[0].end_key = bin("b");
    r[1].start_key = bin("b"); /* empty end: up to the next range's start */
    r[2].start_key = bin("c"); /* last range, empty end: unbounded */
    Kvrpcpb__RawBatchScanRequest req = KVRPCPB__RAW_BATCH_SCAN_REQUEST__INIT;
    req.context = &f->ctx;
    req.ranges = rp;
    req.n_ranges = 3;
    req.each_limit = 2;
    Kvrpcpb__RawBatchScanResponse *resp = call(f, "RawBatchScan", &req);
    assert_null(resp->region_error);
    expect_pairs(resp->kvs, resp->n_kvs, "a1 a2 b1 b2 c1 c2", false);
    resp_free(resp);

    /* Reverse: ranges go downward, start above end. */
    r[0].start_key = bin("c3");
    r[0].end_key = bin("c");
    r[1].start_key = bin("b9");
    r[1].end_key = bin("b");
    req.n_ranges = 2;
    req.reverse = true;
    req.each_limit = 10;
    resp = call(f, "RawBatchScan", &req);
    expect_pairs(resp->kvs, resp->n_kvs, "c2 c1 b2 b1", false);
    resp_free(resp);

    /* Ranges against the scan's direction are refused. */
    req.reverse = false;
    resp = call(f, "RawBatchScan", &req);
    assert_int_equal(resp->n_kvs, 1);
    assert_string_equal(resp->kvs[0]->error->abort, "Invalid KeyRanges");
    resp_free(resp);
}

static void test_delete_range_removes_half_open_range(void **state)
{
    fx *f = *state;
    put_keys(f, "a b c d e");
    Kvrpcpb__RawDeleteRangeRequest req = KVRPCPB__RAW_DELETE_RANGE_REQUEST__INIT;
    req.context = &f->ctx;
    req.start_key = bin("b");
    req.end_key = bin("d");
    Kvrpcpb__RawDeleteRangeResponse *resp = call(f, "RawDeleteRange", &req);
    assert_null(resp->region_error);
    assert_string_equal(resp->error, "");
    resp_free(resp);
    expect_scan(f, "", "", 100, false, "a d e");

    /* Inverted and empty ranges are refused and delete nothing. */
    req.start_key = bin("e");
    req.end_key = bin("a");
    resp = call(f, "RawDeleteRange", &req);
    assert_string_not_equal(resp->error, "");
    resp_free(resp);
    expect_scan(f, "", "", 100, false, "a d e");

    /* An empty end key deletes up to the region's end, and no further. */
    assert_int_equal(stor_kv_local_set_range(f->kv, tkv_slice_str(""), tkv_slice_str("e")), 0);
    req.start_key = bin("d");
    req.end_key = bin("");
    resp = call(f, "RawDeleteRange", &req);
    assert_string_equal(resp->error, "");
    resp_free(resp);
    assert_int_equal(stor_kv_local_set_range(f->kv, tkv_slice_str(""), tkv_slice_str("")), 0);
    expect_scan(f, "", "", 100, false, "a e");
}

/* ---- TTL -------------------------------------------------------------------------------- */

static uint64_t key_ttl(fx *f, const char *k, bool *not_found)
{
    Kvrpcpb__RawGetKeyTTLRequest req = KVRPCPB__RAW_GET_KEY_TTLREQUEST__INIT;
    req.context = &f->ctx;
    req.key = bin(k);
    Kvrpcpb__RawGetKeyTTLResponse *resp = call(f, "RawGetKeyTTL", &req);
    assert_null(resp->region_error);
    assert_string_equal(resp->error, "");
    uint64_t ttl = resp->ttl;
    *not_found = resp->not_found;
    resp_free(resp);
    return ttl;
}

static Kvrpcpb__RawChecksumResponse *checksum(fx *f, const char *start, const char *end)
{
    Kvrpcpb__KeyRange r = KVRPCPB__KEY_RANGE__INIT;
    Kvrpcpb__KeyRange *rp = &r;
    r.start_key = bin(start);
    r.end_key = bin(end);
    Kvrpcpb__RawChecksumRequest req = KVRPCPB__RAW_CHECKSUM_REQUEST__INIT;
    req.context = &f->ctx;
    req.ranges = &rp;
    req.n_ranges = 1;
    return call(f, "RawChecksum", &req);
}

static void test_ttl_expiry_hides_keys_from_every_read(void **state)
{
    fx *f = *state;
    fx_open_storage(f, true);
    f->now_s = 1000;
    put_ttl_cf(f, "", "a", "va", 0);
    put_ttl_cf(f, "", "b", "vb", 10);
    put_ttl_cf(f, "", "c", "vc", 20);

    /* TiKV's API V1TTL layout: the value, then the expiry time as 8 big-endian bytes. */
    tkv_buf raw;
    tkv_buf_init(&raw);
    bool found;
    assert_int_equal(eng_get(f->db, ENG_CF_DEFAULT, tkv_slice_str("zb"), &raw, &found), 0);
    assert_true(found);
    assert_int_equal(raw.len, 2 + 8);
    assert_memory_equal(raw.data, "vb", 2);
    assert_int_equal(tkv_codec_get_u64_be(raw.data + 2), 1010);
    assert_int_equal(eng_get(f->db, ENG_CF_DEFAULT, tkv_slice_str("za"), &raw, &found), 0);
    assert_int_equal(tkv_codec_get_u64_be(raw.data + 2), 0);
    tkv_buf_deinit(&raw);

    bool nf;
    assert_int_equal(key_ttl(f, "a", &nf), 0);
    assert_false(nf);
    assert_int_equal(key_ttl(f, "b", &nf), 10);
    assert_int_equal(key_ttl(f, "c", &nf), 20);
    key_ttl(f, "zz", &nf);
    assert_true(nf);
    f->now_s = 1004;
    assert_int_equal(key_ttl(f, "b", &nf), 6);
    expect_scan(f, "", "", 100, false, "a b c");

    /* At the expiry second the key is gone for every read. */
    f->now_s = 1010;
    key_ttl(f, "b", &nf);
    assert_true(nf);
    expect_get(f, "b", NULL);
    expect_scan(f, "", "", 100, false, "a c");
    expect_scan(f, "", "", 1, true, "c");
    expect_scan(f, "c", "", 100, true, "a");
    ProtobufCBinaryData keys[2] = {bin("b"), bin("c")};
    Kvrpcpb__RawBatchGetRequest bg = KVRPCPB__RAW_BATCH_GET_REQUEST__INIT;
    bg.context = &f->ctx;
    bg.keys = keys;
    bg.n_keys = 2;
    Kvrpcpb__RawBatchGetResponse *bgr = call(f, "RawBatchGet", &bg);
    assert_int_equal(bgr->n_pairs, 1);
    assert_true(bin_is(bgr->pairs[0]->key, "c"));
    resp_free(bgr);
    Kvrpcpb__RawChecksumResponse *ck = checksum(f, "", "");
    assert_int_equal(ck->total_kvs, 2);
    assert_int_equal(ck->total_bytes, 6); /* "a"+"va", "c"+"vc": user bytes only */
    resp_free(ck);

    /* RawBatchPut: one TTL for all pairs, one per pair, or a mismatch error. */
    Kvrpcpb__KvPair p[2] = {KVRPCPB__KV_PAIR__INIT, KVRPCPB__KV_PAIR__INIT};
    Kvrpcpb__KvPair *pp[2] = {&p[0], &p[1]};
    p[0].key = bin("x");
    p[0].value = bin("vx");
    p[1].key = bin("y");
    p[1].value = bin("vy");
    uint64_t ttls[3] = {5, 50, 7};
    Kvrpcpb__RawBatchPutRequest bp = KVRPCPB__RAW_BATCH_PUT_REQUEST__INIT;
    bp.context = &f->ctx;
    bp.pairs = pp;
    bp.n_pairs = 2;
    bp.ttls = ttls;
    bp.n_ttls = 2;
    Kvrpcpb__RawBatchPutResponse *bpr = call(f, "RawBatchPut", &bp);
    assert_string_equal(bpr->error, "");
    resp_free(bpr);
    assert_int_equal(key_ttl(f, "x", &nf), 5);
    assert_int_equal(key_ttl(f, "y", &nf), 50);
    bp.n_ttls = 3;
    bpr = call(f, "RawBatchPut", &bp);
    assert_string_equal(bpr->error, "The length of ttls does not equal to the length of pairs");
    resp_free(bpr);
    bp.n_ttls = 1;
    bpr = call(f, "RawBatchPut", &bp);
    assert_string_equal(bpr->error, "");
    resp_free(bpr);
    assert_int_equal(key_ttl(f, "y", &nf), 5);
}

static void test_ttl_without_enable_ttl_is_refused(void **state)
{
    fx *f = *state;
    Kvrpcpb__RawPutRequest req = KVRPCPB__RAW_PUT_REQUEST__INIT;
    req.context = &f->ctx;
    req.key = bin("k");
    req.value = bin("v");
    req.ttl = 30;
    Kvrpcpb__RawPutResponse *resp = call(f, "RawPut", &req);
    assert_string_equal(resp->error, "ttl is not enabled, but get put request with ttl");
    resp_free(resp);
    expect_get(f, "k", NULL);
    /* Values are stored as they are, and have no TTL. */
    put(f, "k", "v");
    tkv_buf raw;
    tkv_buf_init(&raw);
    bool found;
    assert_int_equal(eng_get(f->db, ENG_CF_DEFAULT, tkv_slice_str("zk"), &raw, &found), 0);
    assert_int_equal(raw.len, 1);
    tkv_buf_deinit(&raw);
    bool nf;
    assert_int_equal(key_ttl(f, "k", &nf), 0);
    assert_false(nf);
    key_ttl(f, "absent", &nf);
    assert_true(nf);
}

/* ---- compare-and-swap ------------------------------------------------------------------- */

static Kvrpcpb__RawCASResponse *cas(fx *f, const char *k, const char *prev, const char *v)
{
    Kvrpcpb__RawCASRequest req = KVRPCPB__RAW_CASREQUEST__INIT;
    req.context = &f->ctx;
    req.key = bin(k);
    req.value = bin(v);
    if (prev == NULL)
        req.previous_not_exist = true;
    else
        req.previous_value = bin(prev);
    Kvrpcpb__RawCASResponse *resp = call(f, "RawCompareAndSwap", &req);
    assert_null(resp->region_error);
    assert_string_equal(resp->error, "");
    return resp;
}

static void test_compare_and_swap_semantics(void **state)
{
    fx *f = *state;
    Kvrpcpb__RawCASResponse *r = cas(f, "k", NULL, "one");
    assert_true(r->succeed);
    assert_true(r->previous_not_exist);
    resp_free(r);
    expect_get(f, "k", "one");

    /* Expecting absence fails when the key exists; the current value comes back. */
    r = cas(f, "k", NULL, "two");
    assert_false(r->succeed);
    assert_false(r->previous_not_exist);
    assert_true(bin_is(r->previous_value, "one"));
    resp_free(r);
    r = cas(f, "k", "wrong", "two");
    assert_false(r->succeed);
    assert_true(bin_is(r->previous_value, "one"));
    resp_free(r);
    expect_get(f, "k", "one");
    r = cas(f, "k", "one", "two");
    assert_true(r->succeed);
    assert_true(bin_is(r->previous_value, "one"));
    resp_free(r);
    expect_get(f, "k", "two");

    /* An empty expected value matches only an existing empty value. */
    r = cas(f, "e", "", "x");
    assert_false(r->succeed);
    assert_true(r->previous_not_exist);
    resp_free(r);
    put(f, "e", "");
    r = cas(f, "e", "", "x");
    assert_true(r->succeed);
    assert_false(r->previous_not_exist);
    resp_free(r);
    expect_get(f, "e", "x");

    /* Atomic-mode writes (for_cas) go through the same latches and land. */
    Kvrpcpb__RawPutRequest pr = KVRPCPB__RAW_PUT_REQUEST__INIT;
    pr.context = &f->ctx;
    pr.key = bin("k");
    pr.value = bin("three");
    pr.for_cas = true;
    Kvrpcpb__RawPutResponse *p = call(f, "RawPut", &pr);
    assert_string_equal(p->error, "");
    resp_free(p);
    expect_get(f, "k", "three");
    Kvrpcpb__RawDeleteRequest dr = KVRPCPB__RAW_DELETE_REQUEST__INIT;
    dr.context = &f->ctx;
    dr.key = bin("k");
    dr.for_cas = true;
    Kvrpcpb__RawDeleteResponse *d = call(f, "RawDelete", &dr);
    assert_string_equal(d->error, "");
    resp_free(d);
    expect_get(f, "k", NULL);
}

#define CAS_THREADS 4
#define CAS_ROUNDS  200

typedef struct cas_worker {
    fx *f;
    pthread_t th;
    int successes;
    int attempts;
} cas_worker;

/* A reply that may come from another thread (the one releasing a latch). */
typedef struct sync_reply {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    reply r;
} sync_reply;

static void on_done_sync(void *ud, const ProtobufCMessage *resp)
{
    sync_reply *s = ud;
    pthread_mutex_lock(&s->mu);
    on_done(&s->r, resp);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Calls @m and waits for its reply; returns it, or NULL when refused or after 10 s. */
static ProtobufCMessage *call_wait(fx *f, const stor_method *m, const ProtobufCMessage *req)
{
    sync_reply s = {.r = {0}};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    ProtobufCMessage *resp = NULL;
    if (m->fn(f->s, req, on_done_sync, &s) == 0) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 10;
        pthread_mutex_lock(&s.mu);
        while (s.r.calls == 0 && pthread_cond_timedwait(&s.cv, &s.mu, &dl) == 0) {
        }
        resp = s.r.resp;
        pthread_mutex_unlock(&s.mu);
    }
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return resp;
}

/* Increments the decimal counter under key "n" CAS_ROUNDS times, retrying lost races. */
static void *cas_worker_main(void *arg)
{
    cas_worker *w = arg;
    const stor_method *m = stor_method_find("RawCompareAndSwap");
    const stor_method *g = stor_method_find("RawGet");
    Kvrpcpb__Context ctx = w->f->ctx;
    while (w->successes < CAS_ROUNDS) {
        Kvrpcpb__RawGetRequest gr = KVRPCPB__RAW_GET_REQUEST__INIT;
        gr.context = &ctx;
        gr.key = bin("n");
        Kvrpcpb__RawGetResponse *cur = (Kvrpcpb__RawGetResponse *)call_wait(w->f, g, &gr.base);
        if (cur == NULL)
            return NULL;
        char old[32], next[32];
        snprintf(old, sizeof(old), "%.*s", (int)cur->value.len, (const char *)cur->value.data);
        snprintf(next, sizeof(next), "%ld", strtol(old, NULL, 10) + 1);
        resp_free(cur);
        Kvrpcpb__RawCASRequest req = KVRPCPB__RAW_CASREQUEST__INIT;
        req.context = &ctx;
        req.key = bin("n");
        req.previous_value = bin(old);
        req.value = bin(next);
        Kvrpcpb__RawCASResponse *resp = (Kvrpcpb__RawCASResponse *)call_wait(w->f, m, &req.base);
        if (resp == NULL)
            return NULL;
        w->attempts++;
        if (resp->succeed)
            w->successes++;
        resp_free(resp);
    }
    return NULL;
}

static void test_compare_and_swap_races_between_threads_lose_no_update(void **state)
{
    fx *f = *state;
    put(f, "n", "0");
    cas_worker w[CAS_THREADS];
    for (int i = 0; i < CAS_THREADS; i++) {
        w[i] = (cas_worker){.f = f};
        assert_int_equal(pthread_create(&w[i].th, NULL, cas_worker_main, &w[i]), 0);
    }
    int attempts = 0;
    for (int i = 0; i < CAS_THREADS; i++) {
        pthread_join(w[i].th, NULL);
        assert_int_equal(w[i].successes, CAS_ROUNDS);
        attempts += w[i].attempts;
    }
    char want[32];
    snprintf(want, sizeof(want), "%d", CAS_THREADS * CAS_ROUNDS);
    expect_get(f, "n", want);
    /* Every attempt either won or saw another thread's value: none was lost. */
    assert_true(attempts >= CAS_THREADS * CAS_ROUNDS);
}

/* ---- checksums -------------------------------------------------------------------------- */

static void test_crc64_matches_the_xz_check_value(void **state)
{
    (void)state;
    assert_true(stor__crc64(0, "123456789", 9) == 0x995DC9BBDF1939FAULL);
    assert_true(stor__crc64(0, "", 0) == 0);
    /* Composable: the CRC of a concatenation continues from the CRC of its prefix. */
    uint64_t c = stor__crc64(0, "1234", 4);
    assert_true(stor__crc64(c, "56789", 5) == 0x995DC9BBDF1939FAULL);
    uint8_t big[768];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)i;
    assert_true(stor__crc64(0, big, sizeof(big)) == 0xDED362895C7B84D9ULL);
}

static void test_checksum_xors_crc64_of_key_and_value(void **state)
{
    fx *f = *state;
    put(f, "a", "1");
    put(f, "b", "22");
    put(f, "c", "");
    put_ttl_cf(f, "lock", "b", "ignored: checksums read the default column family", 0);
    /* Hand-computed: crc64("a1") ^ crc64("b22") ^ crc64("c"). */
    Kvrpcpb__RawChecksumResponse *r = checksum(f, "", "");
    assert_null(r->region_error);
    assert_string_equal(r->error, "");
    assert_true(r->checksum == 0x43F6496E1AFE53CFULL);
    assert_int_equal(r->total_kvs, 3);
    assert_int_equal(r->total_bytes, 6);
    resp_free(r);
    r = checksum(f, "b", "");
    assert_true(r->checksum == 0xA114CA55056DFD55ULL);
    assert_int_equal(r->total_kvs, 2);
    resp_free(r);
    r = checksum(f, "a", "b");
    assert_true(r->checksum == 0xE2E2833B1F93AE9AULL);
    assert_int_equal(r->total_kvs, 1);
    resp_free(r);
    /* Ranges are clipped to the region. */
    assert_int_equal(stor_kv_local_set_range(f->kv, tkv_slice_str("b"), tkv_slice_str("c")), 0);
    r = checksum(f, "b", "");
    assert_true(r->checksum == 0x669278758348760BULL);
    assert_int_equal(r->total_kvs, 1);
    assert_int_equal(r->total_bytes, 3);
    resp_free(r);
    r = checksum(f, "a", "");
    assert_non_null(r->region_error);
    resp_free(r);
    /* Unknown algorithms are refused. */
    Kvrpcpb__RawChecksumRequest req = KVRPCPB__RAW_CHECKSUM_REQUEST__INIT;
    req.context = &f->ctx;
    req.algorithm = 7;
    r = call(f, "RawChecksum", &req);
    assert_string_equal(r->error, "unknown checksum algorithm 7");
    resp_free(r);
}

/* ---- limits, API versions, region errors ------------------------------------------------ */

static void test_over_limit_requests_fail_clearly_and_write_nothing(void **state)
{
    fx *f = *state;
    char big_key[80], big_value[1100];
    memset(big_key, 'k', sizeof(big_key) - 1);
    big_key[sizeof(big_key) - 1] = '\0';
    memset(big_value, 'v', sizeof(big_value) - 1);
    big_value[sizeof(big_value) - 1] = '\0';

    Kvrpcpb__RawPutRequest pr = KVRPCPB__RAW_PUT_REQUEST__INIT;
    pr.context = &f->ctx;
    pr.key = bin(big_key);
    pr.value = bin("v");
    Kvrpcpb__RawPutResponse *p = call(f, "RawPut", &pr);
    assert_string_equal(p->error, "max key size exceeded, size: 79, limit: 64");
    resp_free(p);
    pr.key = bin("k");
    pr.value = bin(big_value);
    p = call(f, "RawPut", &pr);
    assert_string_equal(p->error, "max value size exceeded, size: 1099, limit: 1024");
    resp_free(p);
    expect_get(f, "k", NULL);

    /* One bad pair fails the whole batch. */
    Kvrpcpb__KvPair pairs[20];
    Kvrpcpb__KvPair *pp[20];
    char keys[20][16];
    for (int i = 0; i < 20; i++) {
        kvrpcpb__kv_pair__init(&pairs[i]);
        snprintf(keys[i], sizeof(keys[i]), "b%02d", i);
        pairs[i].key = bin(keys[i]);
        pairs[i].value = bin("v");
        pp[i] = &pairs[i];
    }
    pairs[3].key = bin(big_key);
    Kvrpcpb__RawBatchPutRequest bp = KVRPCPB__RAW_BATCH_PUT_REQUEST__INIT;
    bp.context = &f->ctx;
    bp.pairs = pp;
    bp.n_pairs = 5;
    Kvrpcpb__RawBatchPutResponse *b = call(f, "RawBatchPut", &bp);
    assert_string_equal(b->error, "max key size exceeded, size: 79, limit: 64");
    resp_free(b);
    pairs[3].key = bin(keys[3]);
    bp.n_pairs = 17;
    b = call(f, "RawBatchPut", &bp);
    assert_string_equal(b->error, "max batch size exceeded, size: 17, limit: 16");
    resp_free(b);
    expect_scan(f, "", "", 100, false, "");

    Kvrpcpb__RawScanResponse *s = scan(f, "", "", 101, false, false);
    assert_int_equal(s->n_kvs, 1);
    assert_string_equal(s->kvs[0]->error->abort, "max scan limit exceeded, limit: 101, max: 100");
    resp_free(s);
}

static void test_api_v2_requests_are_refused(void **state)
{
    fx *f = *state;
    f->ctx.api_version = KVRPCPB__APIVERSION__V2;
    Kvrpcpb__RawPutRequest pr = KVRPCPB__RAW_PUT_REQUEST__INIT;
    pr.context = &f->ctx;
    pr.key = bin("k");
    pr.value = bin("v");
    Kvrpcpb__RawPutResponse *p = call(f, "RawPut", &pr);
    assert_string_equal(p->error, "Api version in request does not match with TiKV storage, cmd: "
                                  "raw_put, storage: V1, request: V2");
    resp_free(p);
    Kvrpcpb__RawGetResponse *g = get_cf(f, "", "k");
    assert_string_equal(g->error, "Api version in request does not match with TiKV storage, cmd: "
                                  "raw_get, storage: V1, request: V2");
    resp_free(g);
    f->ctx.api_version = KVRPCPB__APIVERSION__V1;
    expect_get(f, "k", NULL);
}

static void test_region_errors_come_from_the_seam(void **state)
{
    fx *f = *state;
    f->epoch.version = 7;
    Kvrpcpb__RawGetResponse *g = get_cf(f, "", "k");
    assert_non_null(g->region_error);
    assert_non_null(g->region_error->epoch_not_match);
    assert_int_equal(g->region_error->epoch_not_match->n_current_regions, 1);
    resp_free(g);
    Kvrpcpb__RawPutRequest pr = KVRPCPB__RAW_PUT_REQUEST__INIT;
    pr.context = &f->ctx;
    pr.key = bin("k");
    pr.value = bin("v");
    Kvrpcpb__RawPutResponse *p = call(f, "RawPut", &pr);
    assert_non_null(p->region_error);
    assert_non_null(p->region_error->epoch_not_match);
    resp_free(p);
    f->epoch.version = 1;
    f->ctx.region_id = 9;
    Kvrpcpb__RawCASRequest cr = KVRPCPB__RAW_CASREQUEST__INIT;
    cr.context = &f->ctx;
    cr.key = bin("k");
    cr.previous_not_exist = true;
    Kvrpcpb__RawCASResponse *c = call(f, "RawCompareAndSwap", &cr);
    assert_non_null(c->region_error);
    assert_non_null(c->region_error->region_not_found);
    resp_free(c);
    f->ctx.region_id = 1;
    expect_get(f, "k", NULL);
}

/* ---- allocation failures ---------------------------------------------------------------- */

static void run_with_alloc_failures(fx *f, const char *name, const void *req)
{
    const stor_method *m = stor_method_find(name);
    for (long n = 0; n < 200; n++) {
        reply r = {0};
        tkv_alloc_fail_after(n);
        int rc = m->fn(f->s, req, on_done, &r);
        long failed = tkv_alloc_fault_count();
        tkv_alloc_fault_clear();
        if (rc != 0) {
            /* Refused: no reply. */
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(r.calls, 0);
            continue;
        }
        assert_int_equal(r.calls, 1);
        resp_free(r.resp);
        if (failed == 0)
            return; /* got through without a failure: every earlier point was covered */
    }
    fail_msg("%s never completed without allocation failures", name);
}

static void test_allocation_failures_answer_once_or_refuse(void **state)
{
    fx *f = *state;
    fx_open_storage(f, true);
    put_keys(f, "a b c");
    Kvrpcpb__KvPair p[2] = {KVRPCPB__KV_PAIR__INIT, KVRPCPB__KV_PAIR__INIT};
    Kvrpcpb__KvPair *pp[2] = {&p[0], &p[1]};
    p[0].key = bin("x");
    p[0].value = bin("vx");
    p[1].key = bin("y");
    p[1].value = bin("vy");
    uint64_t ttl = 5;
    Kvrpcpb__RawBatchPutRequest bp = KVRPCPB__RAW_BATCH_PUT_REQUEST__INIT;
    bp.context = &f->ctx;
    bp.pairs = pp;
    bp.n_pairs = 2;
    bp.ttls = &ttl;
    bp.n_ttls = 1;
    bp.for_cas = true;
    run_with_alloc_failures(f, "RawBatchPut", &bp);
    Kvrpcpb__RawScanRequest sr = KVRPCPB__RAW_SCAN_REQUEST__INIT;
    sr.context = &f->ctx;
    sr.limit = 10;
    run_with_alloc_failures(f, "RawScan", &sr);
    Kvrpcpb__RawCASRequest cr = KVRPCPB__RAW_CASREQUEST__INIT;
    cr.context = &f->ctx;
    cr.key = bin("a");
    cr.previous_value = bin("va");
    cr.value = bin("new");
    run_with_alloc_failures(f, "RawCompareAndSwap", &cr);
    expect_get(f, "a", "new");
}

#define BOTH(t)                                                                                    \
    cmocka_unit_test_setup_teardown(t, setup_mem, teardown),                                       \
        cmocka_unit_test_setup_teardown(t, setup_rocks, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_put_get_delete_and_empty_value),
        BOTH(test_batch_put_get_delete_omit_absent_keys),
        BOTH(test_column_families_are_separate_and_unknown_cf_fails),
        BOTH(test_scan_forward_limit_bounds_and_key_only),
        BOTH(test_scan_key_only_of_the_empty_key),
        BOTH(test_scan_reverse_reads_end_to_start_downward),
        BOTH(test_scan_is_clipped_to_the_region),
        BOTH(test_batch_scan_each_limit_and_range_ends),
        BOTH(test_delete_range_removes_half_open_range),
        BOTH(test_ttl_expiry_hides_keys_from_every_read),
        BOTH(test_ttl_without_enable_ttl_is_refused),
        BOTH(test_compare_and_swap_semantics),
        BOTH(test_compare_and_swap_races_between_threads_lose_no_update),
        cmocka_unit_test(test_crc64_matches_the_xz_check_value),
        BOTH(test_checksum_xors_crc64_of_key_and_value),
        BOTH(test_over_limit_requests_fail_clearly_and_write_nothing),
        BOTH(test_api_v2_requests_are_refused),
        BOTH(test_region_errors_come_from_the_seam),
        BOTH(test_allocation_failures_answer_once_or_refuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
