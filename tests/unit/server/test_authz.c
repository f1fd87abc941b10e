/*
 * test_authz.c: the key-range authorization policy (security/authz.h) and tikv-server's
 * request check (srv_authz): policy documents that parse or fail, coverage by one grant or by
 * several, admin implying read and write, keys and ranges read from real request messages
 * (points, batches of pairs, scans both ways), refusals written into response error fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "kvrpcpb.pb-c.h"
#include "security/authz.h"
#include "server/server.h"

static sec_authz *parse_ok(const char *doc)
{
    sec_authz *a = NULL;
    char err[TKV_ERRMSG_LEN];
    int rc = sec_authz_parse(doc, strlen(doc), &a, err);
    if (rc != 0)
        fail_msg("policy does not parse: %s", err);
    return a;
}

static bool allows(const sec_authz *a, const char *name, sec_perm p, const char *s, const char *e)
{
    return sec_authz_allows(a, name, p, tkv_slice_str(s), tkv_slice_str(e));
}

static void test_bad_policies_are_refused_with_a_reason(void **state)
{
    (void)state;
    const char *bad[] = {
        "[1]",
        "{\"roles\": 1}",
        "{\"roles\": {\"r\": [{\"perm\": \"execute\", \"start\": \"a\", \"end\": \"b\"}]}}",
        "{\"roles\": {\"r\": [{\"perm\": \"read\", \"start\": \"m\", \"end\": \"a\"}]}}",
        "{\"roles\": {}, \"bindings\": {\"x\": [\"missing\"]}}",
        "{\"roles\": {\"r\": [{\"perm\": \"read\", \"start\": 5}]}}",
        "not json",
    };
    for (size_t i = 0; i < TKV_ARRAY_LEN(bad); i++) {
        sec_authz *a = NULL;
        char err[TKV_ERRMSG_LEN] = "";
        assert_int_equal(sec_authz_parse(bad[i], strlen(bad[i]), &a, err), TKV_ECONFIG);
        assert_null(a);
        assert_true(err[0] != '\0');
    }
    /* The empty document is the empty policy: nobody may do anything. */
    sec_authz *a = NULL;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_authz_parse("", 0, &a, err), 0);
    assert_false(allows(a, "x", SEC_PERM_READ, "a", "b"));
    sec_authz_free(a);
}

static void test_grants_cover_ranges_alone_or_together(void **state)
{
    (void)state;
    sec_authz *a =
        parse_ok("{\"roles\": {\"am\": [{\"perm\": \"read\", \"start\": \"a\", \"end\": \"m\"}],"
                 "            \"mz\": [{\"perm\": \"read\", \"start\": \"m\", \"end\": \"z\"}],"
                 "            \"w\": [{\"perm\": \"write\", \"start\": \"c\", \"end\": \"d\"}],"
                 "            \"root\": [{\"perm\": \"admin\", \"start\": \"\", \"end\": \"\"}]},"
                 " \"bindings\": {\"reader\": [\"am\"], \"both\": [\"am\", \"mz\", \"w\"],"
                 "              \"admin\": [\"root\"]}}");
    assert_true(allows(a, "reader", SEC_PERM_READ, "a", "m"));
    assert_true(allows(a, "reader", SEC_PERM_READ, "b", "b\x01"));
    assert_false(allows(a, "reader", SEC_PERM_READ, "a", "n"));
    assert_false(allows(a, "reader", SEC_PERM_READ, "n", "o"));
    assert_false(allows(a, "reader", SEC_PERM_WRITE, "b", "c"));
    assert_false(allows(a, "reader", SEC_PERM_READ, "a", "")); /* unbounded */
    /* Two adjacent grants cover what neither covers alone. */
    assert_true(allows(a, "both", SEC_PERM_READ, "b", "y"));
    assert_false(allows(a, "both", SEC_PERM_READ, "b", "zz"));
    assert_true(allows(a, "both", SEC_PERM_WRITE, "c", "c\xff"));
    assert_false(allows(a, "both", SEC_PERM_WRITE, "c", "e"));
    /* admin on everything grants read and write everywhere, even unbounded ranges. */
    assert_true(allows(a, "admin", SEC_PERM_READ, "", ""));
    assert_true(allows(a, "admin", SEC_PERM_WRITE, "q", ""));
    assert_true(allows(a, "admin", SEC_PERM_ADMIN, "a", "b"));
    /* Names match whole: a superstring or a prefix is somebody else. */
    assert_false(allows(a, "evil-reader", SEC_PERM_READ, "b", "c"));
    assert_false(allows(a, "read", SEC_PERM_READ, "b", "c"));
    assert_false(allows(a, "", SEC_PERM_READ, "b", "c"));
    /* "admin" has admin on every key: the policy has a superuser. */
    assert_true(sec_authz_has_superuser(a));
    sec_authz_free(a);
    a = parse_ok("{\"roles\": {\"am\": [{\"perm\": \"admin\", \"start\": \"a\", \"end\": \"m\"}]},"
                 " \"bindings\": {\"x\": [\"am\"]}}");
    assert_false(sec_authz_has_superuser(a));
    sec_authz_free(a);
}

/* srv_authz over a fixed document. */
static const char *g_doc;

static int fetch(void *ud, tkv_buf *doc, bool *found)
{
    (void)ud;
    *found = g_doc != NULL;
    return g_doc != NULL ? tkv_buf_append(doc, g_doc, strlen(g_doc)) : 0;
}

static bool check(srv_authz *z, const char *cn, const char *method, const ProtobufCMessage *m)
{
    char reason[192];
    return srv_authz_check(z, cn, method, m, reason, sizeof(reason));
}

static void test_requests_are_checked_by_their_keys_and_method(void **state)
{
    (void)state;
    g_doc = NULL;
    srv_authz *z;
    assert_int_equal(srv_authz_new(fetch, NULL, 3600 * 1000, NULL, &z), 0);
    Kvrpcpb__RawGetRequest get = KVRPCPB__RAW_GET_REQUEST__INIT;
    get.key = (ProtobufCBinaryData){1, (uint8_t *)"b"};
    g_doc = "{\"roles\": {\"am\": [{\"perm\": \"read\", \"start\": \"a\", \"end\": \"m\"},"
            "                    {\"perm\": \"write\", \"start\": \"c\", \"end\": \"d\"}]},"
            " \"bindings\": {\"reader\": [\"am\"]}}";
    assert_int_equal(srv_authz_refresh(z), 0);
    assert_true(check(z, "reader", "RawGet", &get.base));
    assert_false(check(z, "other", "RawGet", &get.base));
    get.key = (ProtobufCBinaryData){1, (uint8_t *)"p"};
    assert_false(check(z, "reader", "RawGet", &get.base));

    /* A batch is allowed only when every pair is. */
    Kvrpcpb__KvPair p1 = KVRPCPB__KV_PAIR__INIT, p2 = KVRPCPB__KV_PAIR__INIT;
    p1.key = (ProtobufCBinaryData){2, (uint8_t *)"c1"};
    p2.key = (ProtobufCBinaryData){2, (uint8_t *)"c2"};
    Kvrpcpb__KvPair *pairs[] = {&p1, &p2};
    Kvrpcpb__RawBatchPutRequest bput = KVRPCPB__RAW_BATCH_PUT_REQUEST__INIT;
    bput.pairs = pairs;
    bput.n_pairs = 2;
    assert_true(check(z, "reader", "RawBatchPut", &bput.base));
    p2.key = (ProtobufCBinaryData){1, (uint8_t *)"e"};
    assert_false(check(z, "reader", "RawBatchPut", &bput.base));

    /* Scans: [start, end), reversed ones read [end, start). */
    Kvrpcpb__RawScanRequest scan = KVRPCPB__RAW_SCAN_REQUEST__INIT;
    scan.start_key = (ProtobufCBinaryData){1, (uint8_t *)"a"};
    scan.end_key = (ProtobufCBinaryData){1, (uint8_t *)"m"};
    assert_true(check(z, "reader", "RawScan", &scan.base));
    scan.end_key = (ProtobufCBinaryData){0, NULL};
    assert_false(check(z, "reader", "RawScan", &scan.base));
    scan.reverse = 1;
    scan.start_key = (ProtobufCBinaryData){1, (uint8_t *)"k"};
    scan.end_key = (ProtobufCBinaryData){1, (uint8_t *)"b"};
    assert_true(check(z, "reader", "RawScan", &scan.base));
    scan.end_key = (ProtobufCBinaryData){0, NULL};
    assert_false(check(z, "reader", "RawScan", &scan.base));

    /* Admin methods need admin even where the name may write. */
    Kvrpcpb__RawDeleteRangeRequest dr = KVRPCPB__RAW_DELETE_RANGE_REQUEST__INIT;
    dr.start_key = (ProtobufCBinaryData){1, (uint8_t *)"c"};
    dr.end_key = (ProtobufCBinaryData){2, (uint8_t *)"c5"};
    assert_false(check(z, "reader", "RawDeleteRange", &dr.base));
    assert_int_equal(srv_authz_perm_of("RawDeleteRange"), SEC_PERM_ADMIN);
    assert_int_equal(srv_authz_perm_of("UnsafeDestroyRange"), SEC_PERM_ADMIN);
    assert_int_equal(srv_authz_perm_of("SplitRegion"), SEC_PERM_ADMIN);
    assert_int_equal(srv_authz_perm_of("KvPrewrite"), SEC_PERM_WRITE);
    assert_int_equal(srv_authz_perm_of("KvGet"), SEC_PERM_READ);

    /* A policy that stops parsing keeps the previous one. */
    g_doc = "{broken";
    assert_int_equal(srv_authz_refresh(z), TKV_ECONFIG);
    get.key = (ProtobufCBinaryData){1, (uint8_t *)"b"};
    assert_true(check(z, "reader", "RawGet", &get.base));
    srv_authz_free(z);
}

static int fetch_fails(void *ud, tkv_buf *doc, bool *found)
{
    (void)ud;
    (void)doc;
    *found = false;
    return -EIO;
}

static void test_nothing_is_allowed_before_a_policy_arrives(void **state)
{
    (void)state;
    srv_authz *z;
    assert_int_equal(srv_authz_new(fetch_fails, NULL, 3600 * 1000, NULL, &z), 0);
    assert_int_equal(srv_authz_refresh(z), -EIO);
    Kvrpcpb__RawGetRequest get = KVRPCPB__RAW_GET_REQUEST__INIT;
    get.key = (ProtobufCBinaryData){1, (uint8_t *)"b"};
    assert_false(check(z, "x", "RawGet", &get.base));
    srv_authz_free(z);
    /* A grant without start and end covers every key. */
    sec_authz *a =
        parse_ok("{\"roles\": {\"r\": [{\"perm\": \"admin\"}]}, \"bindings\": {\"x\": [\"r\"]}}");
    assert_true(allows(a, "x", SEC_PERM_WRITE, "anything", ""));
    sec_authz_free(a);
}

static void test_refusals_fill_the_response_error_field(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL;
    assert_int_equal(srv_authz_denied_response(&kvrpcpb__raw_put_response__descriptor,
                                               "permission denied: x", &m),
                     0);
    uint8_t buf[256];
    size_t n = protobuf_c_message_pack(m, buf);
    tkv_free(m);
    Kvrpcpb__RawPutResponse *rp = kvrpcpb__raw_put_response__unpack(NULL, n, buf);
    assert_non_null(rp);
    assert_string_equal(rp->error, "permission denied: x");
    kvrpcpb__raw_put_response__free_unpacked(rp, NULL);

    /* Transactional responses carry a KeyError; Prewrite a list of them. */
    assert_int_equal(srv_authz_denied_response(&kvrpcpb__get_response__descriptor, "no", &m), 0);
    n = protobuf_c_message_pack(m, buf);
    tkv_free(m);
    Kvrpcpb__GetResponse *gr = kvrpcpb__get_response__unpack(NULL, n, buf);
    assert_non_null(gr);
    assert_non_null(gr->error);
    assert_string_equal(gr->error->abort, "no");
    kvrpcpb__get_response__free_unpacked(gr, NULL);
    assert_int_equal(srv_authz_denied_response(&kvrpcpb__prewrite_response__descriptor, "no", &m),
                     0);
    n = protobuf_c_message_pack(m, buf);
    tkv_free(m);
    Kvrpcpb__PrewriteResponse *pr = kvrpcpb__prewrite_response__unpack(NULL, n, buf);
    assert_non_null(pr);
    assert_int_equal(pr->n_errors, 1);
    assert_string_equal(pr->errors[0]->abort, "no");
    kvrpcpb__prewrite_response__free_unpacked(pr, NULL);

    /* No error field: the caller answers with a status instead. */
    assert_int_equal(srv_authz_denied_response(&kvrpcpb__raw_scan_response__descriptor, "no", &m),
                     TKV_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_policies_are_refused_with_a_reason),
        cmocka_unit_test(test_grants_cover_ranges_alone_or_together),
        cmocka_unit_test(test_requests_are_checked_by_their_keys_and_method),
        cmocka_unit_test(test_nothing_is_allowed_before_a_policy_arrives),
        cmocka_unit_test(test_refusals_fill_the_response_error_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
