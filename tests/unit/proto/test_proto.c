/*
 * test_proto.c: the generated kvproto subset against wire bytes computed by hand from the
 * protobuf encoding rules (tag = field_number << 3 | wire_type; varints little-endian base 128).
 * A wrong field number or type in proto/ changes these bytes, so these tests catch it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/base.h"
#include "eraftpb.pb-c.h"
#include "etcdserverpb.pb-c.h"
#include "health.pb-c.h"
#include "kvrpcpb.pb-c.h"
#include "pdpb.pb-c.h"
#include "raft_serverpb.pb-c.h"
#include "tikvpb.pb-c.h"

/* Packs @msg and checks the bytes equal @want. */
static void assert_packs_to(const ProtobufCMessage *msg, const uint8_t *want, size_t want_len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    assert_int_equal(n, want_len);
    uint8_t *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(msg, buf), n);
    if (memcmp(buf, want, n) != 0) {
        for (size_t i = 0; i < n && i < want_len; i++)
            printf("# byte %zu: got 0x%02x want 0x%02x\n", i, buf[i], want[i]);
        fail_msg("packed bytes differ");
    }
    free(buf);
}

static bool bin_eq(ProtobufCBinaryData b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.data, s, b.len) == 0;
}

static void test_raw_get_request_packs_context_key_and_cf(void **state)
{
    (void)state;
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    epoch.conf_ver = 1;
    epoch.version = 3;
    Metapb__Peer peer = METAPB__PEER__INIT;
    peer.id = 4;
    peer.store_id = 5;
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    ctx.region_id = 2;
    ctx.region_epoch = &epoch;
    ctx.peer = &peer;
    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    req.context = &ctx;
    req.key.data = (uint8_t *)"k1";
    req.key.len = 2;
    req.cf = "default";

    static const uint8_t want[] = {
        0x0a, 0x0e,                         /* context (1, LEN) 14 bytes */
        0x08, 0x02,                         /*   region_id (1) = 2 */
        0x12, 0x04, 0x08, 0x01, 0x10, 0x03, /*   region_epoch (2) {conf_ver 1, version 3} */
        0x1a, 0x04, 0x08, 0x04, 0x10, 0x05, /*   peer (3) {id 4, store_id 5} */
        0x12, 0x02, 'k',  '1',              /* key (2) */
        0x1a, 0x07, 'd',  'e',  'f',  'a',  'u', 'l', 't', /* cf (3) */
    };
    assert_packs_to(&req.base, want, sizeof(want));

    Kvrpcpb__RawGetRequest *back = kvrpcpb__raw_get_request__unpack(NULL, sizeof(want), want);
    assert_non_null(back);
    assert_non_null(back->context);
    assert_int_equal(back->context->region_id, 2);
    assert_int_equal(back->context->region_epoch->conf_ver, 1);
    assert_int_equal(back->context->region_epoch->version, 3);
    assert_int_equal(back->context->peer->store_id, 5);
    assert_true(bin_eq(back->key, "k1"));
    assert_string_equal(back->cf, "default");
    kvrpcpb__raw_get_request__free_unpacked(back, NULL);
}

static void test_raw_get_response_carries_not_leader_region_error(void **state)
{
    (void)state;
    static const uint8_t wire[] = {
        0x0a, 0x0d,                         /* region_error (1) 13 bytes */
        0x0a, 0x01, 'x',                    /*   message (1) */
        0x12, 0x08,                         /*   not_leader (2) 8 bytes */
        0x08, 0x07,                         /*     region_id (1) = 7 */
        0x12, 0x04, 0x08, 0x08, 0x10, 0x09, /*     leader (2) {id 8, store_id 9} */
        0x1a, 0x01, 'v',                    /* value (3) */
        0x20, 0x01,                         /* not_found (4) = true */
    };
    Kvrpcpb__RawGetResponse *r = kvrpcpb__raw_get_response__unpack(NULL, sizeof(wire), wire);
    assert_non_null(r);
    assert_non_null(r->region_error);
    assert_string_equal(r->region_error->message, "x");
    assert_non_null(r->region_error->not_leader);
    assert_int_equal(r->region_error->not_leader->region_id, 7);
    assert_int_equal(r->region_error->not_leader->leader->id, 8);
    assert_int_equal(r->region_error->not_leader->leader->store_id, 9);
    assert_null(r->region_error->epoch_not_match);
    assert_true(bin_eq(r->value, "v"));
    assert_true(r->not_found);
    assert_packs_to(&r->base, wire, sizeof(wire));
    kvrpcpb__raw_get_response__free_unpacked(r, NULL);
}

static void test_batch_commands_request_uses_oneof_numbers_and_packed_ids(void **state)
{
    (void)state;
    Kvrpcpb__RawGetRequest get = KVRPCPB__RAW_GET_REQUEST__INIT;
    get.key.data = (uint8_t *)"a";
    get.key.len = 1;
    Tikvpb__BatchCommandsEmptyRequest empty = TIKVPB__BATCH_COMMANDS_EMPTY_REQUEST__INIT;
    empty.test_id = 300;
    Tikvpb__BatchCommandsRequest__Request r0 = TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__INIT;
    r0.cmd_case = TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_RAW_GET;
    r0.rawget = &get;
    Tikvpb__BatchCommandsRequest__Request r1 = TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__INIT;
    r1.cmd_case = TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_EMPTY;
    r1.empty = &empty;
    Tikvpb__BatchCommandsRequest__Request *reqs[] = {&r0, &r1};
    uint64_t ids[] = {1, 2};
    Tikvpb__BatchCommandsRequest batch = TIKVPB__BATCH_COMMANDS_REQUEST__INIT;
    batch.n_requests = 2;
    batch.requests = reqs;
    batch.n_request_ids = 2;
    batch.request_ids = ids;

    static const uint8_t want[] = {
        0x0a, 0x05, 0x6a, 0x03, 0x12, 0x01, 'a', /* requests[0]: RawGet (13, LEN) {key "a"} */
        0x0a, 0x06, 0xfa, 0x0f, 0x03, 0x08, 0xac, 0x02, /* requests[1]: Empty (255) {test_id 300} */
        0x12, 0x02, 0x01, 0x02,                         /* request_ids (2), packed */
    };
    assert_packs_to(&batch.base, want, sizeof(want));

    /* Decoders must also accept the unpacked form of a repeated scalar. */
    static const uint8_t unpacked[] = {0x0a, 0x05, 0x6a, 0x03, 0x12, 0x01,
                                       'a',  0x10, 0x07, 0x10, 0x09};
    Tikvpb__BatchCommandsRequest *b =
        tikvpb__batch_commands_request__unpack(NULL, sizeof(unpacked), unpacked);
    assert_non_null(b);
    assert_int_equal(b->n_requests, 1);
    assert_int_equal(b->requests[0]->cmd_case,
                     TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_RAW_GET);
    assert_true(bin_eq(b->requests[0]->rawget->key, "a"));
    assert_int_equal(b->n_request_ids, 2);
    assert_int_equal(b->request_ids[0], 7);
    assert_int_equal(b->request_ids[1], 9);
    tikvpb__batch_commands_request__free_unpacked(b, NULL);
}

static void test_tso_response_encodes_count_and_timestamp(void **state)
{
    (void)state;
    Pdpb__Timestamp ts = PDPB__TIMESTAMP__INIT;
    ts.physical = 1700000000000LL;
    ts.logical = 5;
    Pdpb__TsoResponse resp = PDPB__TSO_RESPONSE__INIT;
    resp.count = 3;
    resp.timestamp = &ts;
    static const uint8_t want[] = {
        0x10, 0x03,                               /* count (2) = 3 */
        0x1a, 0x09,                               /* timestamp (3) 9 bytes */
        0x08, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, /*   physical (1) = 1700000000000 */
        0x10, 0x05,                               /*   logical (2) = 5 */
    };
    assert_packs_to(&resp.base, want, sizeof(want));
}

static void test_get_members_response_map_entry_round_trips(void **state)
{
    (void)state;
    static const uint8_t wire[] = {
        0x1a, 0x05, 0x0a, 0x03, 'p', 'd', '1',      /* leader (3) {name "pd1"} */
        0x2a, 0x0f,                                 /* tso_allocator_leaders (5) entry, 15 bytes */
        0x0a, 0x06, 'g',  'l',  'o', 'b', 'a', 'l', /* key (1) */
        0x12, 0x05, 0x0a, 0x03, 'p', 'd', '2',      /* value (2) {name "pd2"} */
    };
    Pdpb__GetMembersResponse *m = pdpb__get_members_response__unpack(NULL, sizeof(wire), wire);
    assert_non_null(m);
    assert_string_equal(m->leader->name, "pd1");
    assert_int_equal(m->n_tso_allocator_leaders, 1);
    assert_string_equal(m->tso_allocator_leaders[0]->key, "global");
    assert_string_equal(m->tso_allocator_leaders[0]->value->name, "pd2");
    assert_packs_to(&m->base, wire, sizeof(wire));
    pdpb__get_members_response__free_unpacked(m, NULL);
}

static void test_etcd_compare_uses_value_oneof_and_field_64(void **state)
{
    (void)state;
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    cmp.key.data = (uint8_t *)"k";
    cmp.key.len = 1;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    cmp.value.data = (uint8_t *)"v";
    cmp.value.len = 1;
    cmp.range_end.data = (uint8_t *)"z";
    cmp.range_end.len = 1;
    static const uint8_t want[] = {
        0x10, 0x03,            /* target (2) = VALUE */
        0x1a, 0x01, 'k',       /* key (3) */
        0x3a, 0x01, 'v',       /* value (7) */
        0x82, 0x04, 0x01, 'z', /* range_end (64) */
    };
    assert_packs_to(&cmp.base, want, sizeof(want));
}

static void test_health_response_serving_is_status_one(void **state)
{
    (void)state;
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    static const uint8_t want[] = {0x08, 0x01};
    assert_packs_to(&r.base, want, sizeof(want));
}

static void test_raft_message_nests_eraft_entries(void **state)
{
    (void)state;
    static const uint8_t wire[] = {
        0x08, 0x02,                         /* region_id (1) = 2 */
        0x22, 0x0e,                         /* message (4) 14 bytes */
        0x08, 0x03,                         /*   msg_type (1) = MsgAppend */
        0x10, 0x05,                         /*   to (2) = 5 */
        0x3a, 0x06,                         /*   entries (7) 6 bytes */
        0x10, 0x02, 0x18, 0x0b, 0x22, 0x00, /*     term 2, index 11, data "" (explicit) */
        0x40, 0x0a,                         /*   commit (8) = 10 */
    };
    RaftServerpb__RaftMessage *m = raft_serverpb__raft_message__unpack(NULL, sizeof(wire), wire);
    assert_non_null(m);
    assert_int_equal(m->region_id, 2);
    assert_int_equal(m->message->msg_type, ERAFTPB__MESSAGE_TYPE__MsgAppend);
    assert_int_equal(m->message->to, 5);
    assert_int_equal(m->message->n_entries, 1);
    assert_int_equal(m->message->entries[0]->term, 2);
    assert_int_equal(m->message->entries[0]->index, 11);
    assert_int_equal(m->message->commit, 10);
    raft_serverpb__raft_message__free_unpacked(m, NULL);
}

static void test_truncated_input_is_rejected(void **state)
{
    (void)state;
    static const uint8_t wire[] = {0x0a, 0x0e, 0x08, 0x02};
    assert_null(kvrpcpb__raw_get_request__unpack(NULL, sizeof(wire), wire));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_get_request_packs_context_key_and_cf),
        cmocka_unit_test(test_raw_get_response_carries_not_leader_region_error),
        cmocka_unit_test(test_batch_commands_request_uses_oneof_numbers_and_packed_ids),
        cmocka_unit_test(test_tso_response_encodes_count_and_timestamp),
        cmocka_unit_test(test_get_members_response_map_entry_round_trips),
        cmocka_unit_test(test_etcd_compare_uses_value_oneof_and_field_64),
        cmocka_unit_test(test_health_response_serving_is_status_one),
        cmocka_unit_test(test_raft_message_nests_eraft_entries),
        cmocka_unit_test(test_truncated_input_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
