/*
 * test_batch_wire.c: the hand-written BatchCommands envelope codec against protobuf-c's own
 * encoding and decoding of the same messages, plus malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "server/srv_int.h"
#include "tikvpb.pb-c.h"

static tkv_buf pack(const ProtobufCMessage *m)
{
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(tkv_buf_reserve(&b, protobuf_c_message_get_packed_size(m) + 1), 0);
    b.len = protobuf_c_message_pack(m, b.data);
    return b;
}

static void test_decode_matches_protobuf_c_encoding(void **state)
{
    (void)state;
    Kvrpcpb__RawGetRequest get = KVRPCPB__RAW_GET_REQUEST__INIT;
    get.key.data = (uint8_t *)"k1";
    get.key.len = 2;
    Tikvpb__BatchCommandsEmptyRequest empty = TIKVPB__BATCH_COMMANDS_EMPTY_REQUEST__INIT;
    empty.test_id = 77;
    Tikvpb__BatchCommandsRequest__Request r[3] = {TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__INIT,
                                                  TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__INIT,
                                                  TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__INIT};
    r[0].cmd_case = TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_RAW_GET;
    r[0].rawget = &get;
    r[1].cmd_case = TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_EMPTY;
    r[1].empty = &empty;
    /* r[2] sets no command. */
    Tikvpb__BatchCommandsRequest__Request *rp[3] = {&r[0], &r[1], &r[2]};
    uint64_t ids[3] = {5, 300, 1ULL << 40};
    Tikvpb__BatchCommandsRequest req = TIKVPB__BATCH_COMMANDS_REQUEST__INIT;
    req.requests = rp;
    req.n_requests = 3;
    req.request_ids = ids;
    req.n_request_ids = 3;
    tkv_buf b = pack(&req.base);

    srv_batch_req d;
    srv__batch_req_init(&d);
    assert_int_equal(srv__batch_decode(tkv_buf_slice(&b), &d), 0);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.n_ids, 3);
    assert_int_equal(d.cmds[0], 13);
    assert_int_equal(d.cmds[1], 255);
    assert_int_equal(d.cmds[2], 0);
    assert_true(d.ids[0] == 5 && d.ids[1] == 300 && d.ids[2] == (1ULL << 40));
    ProtobufCMessage *inner;
    inner = protobuf_c_message_unpack(&kvrpcpb__raw_get_request__descriptor, NULL, d.inner[0].len,
                                      d.inner[0].data);
    assert_non_null(inner);
    assert_memory_equal(((Kvrpcpb__RawGetRequest *)inner)->key.data, "k1", 2);
    protobuf_c_message_free_unpacked(inner, NULL);
    uint64_t test_id;
    assert_int_equal(srv__batch_decode_empty(d.inner[1], &test_id), 0);
    assert_int_equal(test_id, 77);

    /* Decoding again reuses the arrays. */
    assert_int_equal(srv__batch_decode(tkv_buf_slice(&b), &d), 0);
    assert_int_equal(d.n, 3);
    srv__batch_req_deinit(&d);
    tkv_buf_deinit(&b);
}

static void test_decode_accepts_unpacked_ids_unknown_fields_and_last_oneof(void **state)
{
    (void)state;
    /* requests: a Request with field 13 then field 15 (the last wins), request_ids unpacked
     * (two varint fields), an unknown fixed32 field 9 and an unknown varint field 3. */
    const uint8_t msg[] = {
        0x0a, 0x06, 0x6a, 0x00, 0x7a, 0x02, 0x12, 0x00, /* Request{13: {}, 15: {2: ""}} */
        0x10, 0x07,                                     /* request_ids = 7 */
        0x4d, 0x01, 0x02, 0x03, 0x04,                   /* field 9, fixed32 */
        0x18, 0x96, 0x01,                               /* field 3, varint 150 */
        0x0a, 0x00,                                     /* an empty Request */
        0x10, 0x08,                                     /* request_ids = 8 */
    };
    srv_batch_req d;
    srv__batch_req_init(&d);
    assert_int_equal(srv__batch_decode(tkv_slice_of(msg, sizeof(msg)), &d), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.cmds[0], 15);
    assert_int_equal(d.inner[0].len, 2);
    assert_int_equal(d.cmds[1], 0);
    assert_int_equal(d.n_ids, 2);
    assert_int_equal(d.ids[0], 7);
    assert_int_equal(d.ids[1], 8);
    srv__batch_req_deinit(&d);
}

/* Found by fuzz_batch_commands: protobuf-c skips unknown fields whose varint runs past 64 bits
 * or whose number is past the spec's range, so a client may send them; they are skipped, and a
 * huge field number inside a Request is never taken for a command. */
static void test_decode_skips_odd_unknown_fields_like_protobuf_c(void **state)
{
    (void)state;
    const uint8_t msg[] = {
        0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x20, /* field 3, 70 bits */
        0x0a, 0x08, 0x6a, 0x00,                                           /* Request{13: {}, */
        0xfa, 0xff, 0xff, 0xff, 0x7f, 0x00,                               /* 2^32-ish: {}} */
        0x10, 0x01,                                                       /* request_ids = 1 */
    };
    srv_batch_req d;
    srv__batch_req_init(&d);
    assert_int_equal(srv__batch_decode(tkv_slice_of(msg, sizeof(msg)), &d), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.cmds[0], 13);
    assert_int_equal(d.n_ids, 1);
    srv__batch_req_deinit(&d);
}

static void test_decode_rejects_malformed_input(void **state)
{
    (void)state;
    const struct {
        const char *why;
        uint8_t bytes[8];
        size_t len;
    } bad[] = {
        {"length past the end", {0x0a, 0x05, 0x00}, 3},
        {"truncated varint", {0x10, 0x80}, 2},
        {"field number 0", {0x00, 0x01}, 2},
        {"group wire type", {0x0b}, 1},
        {"requests as a varint", {0x08, 0x01}, 2},
        {"request_ids as fixed64", {0x11, 1, 2, 3, 4, 5, 6, 7}, 8},
        {"bad packed id", {0x12, 0x01, 0x80}, 3},
        {"bad field inside a Request", {0x0a, 0x02, 0x6a, 0x05}, 4},
    };
    srv_batch_req d;
    srv__batch_req_init(&d);
    for (size_t i = 0; i < TKV_ARRAY_LEN(bad); i++) {
        if (srv__batch_decode(tkv_slice_of(bad[i].bytes, bad[i].len), &d) != TKV_ECORRUPT)
            fail_msg("accepted: %s", bad[i].why);
    }
    srv__batch_req_deinit(&d);
}

static void test_encoded_responses_decode_with_protobuf_c(void **state)
{
    (void)state;
    tkv_buf out;
    tkv_buf_init(&out);
    Kvrpcpb__RawGetResponse get = KVRPCPB__RAW_GET_RESPONSE__INIT;
    get.not_found = true;
    assert_int_equal(srv__batch_encode_resp_msg(&out, 13, &get.base), 0);
    tkv_buf inner;
    tkv_buf_init(&inner);
    assert_int_equal(srv__batch_encode_region_error(&inner, "no such command"), 0);
    assert_int_equal(srv__batch_encode_resp(&out, 1, tkv_buf_slice(&inner)), 0);
    assert_int_equal(srv__batch_encode_resp(&out, 0, tkv_slice_of(NULL, 0)), 0);
    Tikvpb__BatchCommandsEmptyResponse empty = TIKVPB__BATCH_COMMANDS_EMPTY_RESPONSE__INIT;
    empty.test_id = 9;
    assert_int_equal(srv__batch_encode_resp_msg(&out, 255, &empty.base), 0);
    uint64_t ids[4] = {1, 2, 128, 1ULL << 63};
    assert_int_equal(srv__batch_encode_ids(&out, ids, 4), 0);

    Tikvpb__BatchCommandsResponse *r =
        tikvpb__batch_commands_response__unpack(NULL, out.len, out.data);
    assert_non_null(r);
    assert_int_equal(r->n_responses, 4);
    assert_int_equal(r->n_request_ids, 4);
    assert_int_equal(r->responses[0]->cmd_case,
                     TIKVPB__BATCH_COMMANDS_RESPONSE__RESPONSE__CMD_RAW_GET);
    assert_true(r->responses[0]->rawget->not_found);
    assert_int_equal(r->responses[1]->cmd_case, TIKVPB__BATCH_COMMANDS_RESPONSE__RESPONSE__CMD_GET);
    assert_string_equal(r->responses[1]->get->region_error->message, "no such command");
    assert_int_equal(r->responses[2]->cmd_case,
                     TIKVPB__BATCH_COMMANDS_RESPONSE__RESPONSE__CMD__NOT_SET);
    assert_int_equal(r->responses[3]->cmd_case,
                     TIKVPB__BATCH_COMMANDS_RESPONSE__RESPONSE__CMD_EMPTY);
    assert_int_equal(r->responses[3]->empty->test_id, 9);
    assert_true(r->request_ids[2] == 128 && r->request_ids[3] == (1ULL << 63));
    tikvpb__batch_commands_response__free_unpacked(r, NULL);
    tkv_buf_deinit(&inner);
    tkv_buf_deinit(&out);
}

static void test_busy_answer_decodes_as_server_is_busy(void **state)
{
    (void)state;
    tkv_buf inner;
    tkv_buf_init(&inner);
    assert_int_equal(srv__batch_encode_busy(&inner, "too many requests in flight"), 0);
    Kvrpcpb__RawPutResponse *r = kvrpcpb__raw_put_response__unpack(NULL, inner.len, inner.data);
    assert_non_null(r);
    assert_non_null(r->region_error);
    assert_string_equal(r->region_error->message, "too many requests in flight");
    assert_non_null(r->region_error->server_is_busy);
    assert_string_equal(r->region_error->server_is_busy->reason, "too many requests in flight");
    kvrpcpb__raw_put_response__free_unpacked(r, NULL);
    tkv_buf_deinit(&inner);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_matches_protobuf_c_encoding),
        cmocka_unit_test(test_decode_accepts_unpacked_ids_unknown_fields_and_last_oneof),
        cmocka_unit_test(test_decode_skips_odd_unknown_fields_like_protobuf_c),
        cmocka_unit_test(test_decode_rejects_malformed_input),
        cmocka_unit_test(test_encoded_responses_decode_with_protobuf_c),
        cmocka_unit_test(test_busy_answer_decodes_as_server_is_busy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
