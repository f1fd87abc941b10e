/*
 * test_service.c: the tikvpb.Tikv service in process: an rpc_server on 127.0.0.1:0 with
 * storage on stor_kv_local (eng_mem), called through rpc's client: unary raw calls,
 * BatchCommands with 1,000 interleaved requests on one stream, malformed bytes, unknown
 * methods, SplitRegion with and without a hook, GetStoreSafeTS, shutdown and metrics.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/codec.h"
#include "base/metrics.h"
#include "server/server.h"
#include "tikvpb.pb-c.h"

#define TIMEOUT_MS 10000

typedef struct fx {
    eng_db *db;
    stor_kv *kv;
    stor *s;
    rpc_server *rs;
    srv_service *svc;
    rpc_client *client;
    rpc_channel *ch;
    char addr[64];
    Kvrpcpb__Context ctx;
} fx;

static int setup(void **state)
{
    fx *f = tkv_calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(eng_mem_open(NULL, &f->db), 0);
    assert_int_equal(stor_kv_local_new(f->db, NULL, &f->kv), 0);
    stor_opts so;
    stor_opts_init(&so);
    so.latch_slots = 1024;
    assert_int_equal(stor_new(f->kv, &so, &f->s), 0);
    rpc_server_opts ro;
    rpc_server_opts_init(&ro);
    ro.addr = "127.0.0.1:0";
    assert_int_equal(rpc_server_new(&ro, &f->rs), 0);
    assert_int_equal(srv_service_new(f->rs, f->s, NULL, &f->svc), 0);
    assert_int_equal(rpc_server_start(f->rs), 0);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", rpc_server_port(f->rs));
    rpc_client_opts co;
    rpc_client_opts_init(&co);
    assert_int_equal(rpc_client_new(&co, &f->client), 0);
    assert_int_equal(rpc_client_channel(f->client, f->addr, 0, &f->ch), 0);
    kvrpcpb__context__init(&f->ctx);
    f->ctx.region_id = 1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    rpc_client_free(f->client);
    srv_service_shutdown(f->svc);
    rpc_server_shutdown(f->rs, 5000);
    srv_service_free(f->svc);
    rpc_server_free(f->rs);
    stor_free(f->s);
    stor_kv_free(f->kv);
    eng_close(f->db);
    tkv_free(f);
    tkv_metrics_reset();
    return 0;
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

/* Calls unary @method and returns the decoded response (asserting an OK status). */
static void *unary(fx *f, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *resp = NULL;
    rpc_status st;
    int rc = rpc_unary_msg(f->ch, method, req, desc, TIMEOUT_MS, &resp, &st);
    if (rc != 0)
        fail_msg("%s: %s %s", method, rpc_code_name(st.code), st.message);
    return resp;
}

/* Calls @method with raw @bytes and returns the status code. */
static rpc_code unary_status(fx *f, const char *method, tkv_slice bytes, rpc_status *st)
{
    tkv_buf out;
    tkv_buf_init(&out);
    int rc = rpc_unary(f->ch, method, bytes, TIMEOUT_MS, &out, st);
    tkv_buf_deinit(&out);
    if (rc == 0)
        return RPC_OK;
    assert_int_equal(rc, TKV_ERPC);
    return st->code;
}

static void test_unary_raw_calls_reach_storage(void **state)
{
    fx *f = *state;
    Kvrpcpb__RawPutRequest put = KVRPCPB__RAW_PUT_REQUEST__INIT;
    put.context = &f->ctx;
    put.key = bin("k");
    put.value = bin("v");
    Kvrpcpb__RawPutResponse *pr =
        unary(f, "/tikvpb.Tikv/RawPut", &put.base, &kvrpcpb__raw_put_response__descriptor);
    assert_null(pr->region_error);
    assert_string_equal(pr->error, "");
    rpc_msg_free(&pr->base);

    Kvrpcpb__RawGetRequest get = KVRPCPB__RAW_GET_REQUEST__INIT;
    get.context = &f->ctx;
    get.key = bin("k");
    Kvrpcpb__RawGetResponse *gr =
        unary(f, "/tikvpb.Tikv/RawGet", &get.base, &kvrpcpb__raw_get_response__descriptor);
    assert_false(gr->not_found);
    assert_true(bin_is(gr->value, "v"));
    rpc_msg_free(&gr->base);

    /* Region errors travel inside the response. */
    f->ctx.region_id = 42;
    gr = unary(f, "/tikvpb.Tikv/RawGet", &get.base, &kvrpcpb__raw_get_response__descriptor);
    assert_non_null(gr->region_error);
    assert_non_null(gr->region_error->region_not_found);
    rpc_msg_free(&gr->base);
    f->ctx.region_id = 1;

    Kvrpcpb__RawScanRequest scan = KVRPCPB__RAW_SCAN_REQUEST__INIT;
    scan.context = &f->ctx;
    scan.limit = 10;
    Kvrpcpb__RawScanResponse *sr =
        unary(f, "/tikvpb.Tikv/RawScan", &scan.base, &kvrpcpb__raw_scan_response__descriptor);
    assert_int_equal(sr->n_kvs, 1);
    assert_true(bin_is(sr->kvs[0]->key, "k"));
    rpc_msg_free(&sr->base);

    Kvrpcpb__StoreSafeTSRequest ts = KVRPCPB__STORE_SAFE_TSREQUEST__INIT;
    Kvrpcpb__StoreSafeTSResponse *tr = unary(f, "/tikvpb.Tikv/GetStoreSafeTS", &ts.base,
                                             &kvrpcpb__store_safe_tsresponse__descriptor);
    assert_int_equal(tr->safe_ts, 0);
    rpc_msg_free(&tr->base);

    /* Metrics carry TiKV's names and labels. */
    tkv_buf m;
    tkv_buf_init(&m);
    assert_int_equal(tkv_metrics_render(&m), 0);
    assert_int_equal(tkv_buf_append_u8(&m, 0), 0);
    assert_non_null(
        strstr((char *)m.data, "tikv_grpc_msg_duration_seconds_count{type=\"raw_get\"} 2"));
    assert_non_null(
        strstr((char *)m.data, "tikv_grpc_msg_duration_seconds_count{type=\"raw_put\"} 1"));
    tkv_buf_deinit(&m);
}

static void test_malformed_requests_and_unknown_methods_get_grpc_statuses(void **state)
{
    fx *f = *state;
    rpc_status st;
    const uint8_t garbage[] = {0x0a, 0x7f, 0x01};
    assert_int_equal(unary_status(f, "/tikvpb.Tikv/RawGet", tkv_slice_of(garbage, 3), &st),
                     RPC_INVALID_ARGUMENT);
    assert_non_null(strstr(st.message, "RawGet"));
    assert_int_equal(unary_status(f, "/tikvpb.Tikv/NoSuchMethod", tkv_slice_of(NULL, 0), &st),
                     RPC_UNIMPLEMENTED);
    /* A kvproto method the storage tables do not serve: unimplemented, not crashed. */
    assert_int_equal(unary_status(f, "/tikvpb.Tikv/Coprocessor", tkv_slice_of(NULL, 0), &st),
                     RPC_UNIMPLEMENTED);
    assert_int_equal(unary_status(f, "/tikvpb.Tikv/SplitRegion", tkv_slice_of(garbage, 3), &st),
                     RPC_INVALID_ARGUMENT);

    tkv_buf m;
    tkv_buf_init(&m);
    assert_int_equal(tkv_metrics_render(&m), 0);
    assert_int_equal(tkv_buf_append_u8(&m, 0), 0);
    assert_non_null(strstr((char *)m.data, "tikv_grpc_msg_fail_total{type=\"raw_get\"} 1"));
    tkv_buf_deinit(&m);

    /* After shutdown starts, requests are refused as unavailable. */
    srv_service_shutdown(f->svc);
    Kvrpcpb__RawGetRequest get = KVRPCPB__RAW_GET_REQUEST__INIT;
    get.context = &f->ctx;
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(rpc_msg_pack(&get.base, &b), 0);
    assert_int_equal(unary_status(f, "/tikvpb.Tikv/RawGet", tkv_buf_slice(&b), &st),
                     RPC_UNAVAILABLE);
    tkv_buf_deinit(&b);
}

/* ---- BatchCommands ------------------------------------------------------------------------ */

#define BATCH_TOTAL   1000
#define BATCH_PER_MSG 100

/* What request id @id is: a put, a get of an earlier put, an Empty, or an unserved command. */
static int kind_of(uint64_t id)
{
    switch (id % 5) {
    case 0:
    case 1:
        return TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_RAW_PUT;
    case 2:
        return TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_RAW_GET;
    case 3:
        return TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_EMPTY;
    }
    return TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_PREWRITE; /* not served yet */
}

static void test_batch_commands_answers_every_id_once_with_its_kind(void **state)
{
    fx *f = *state;
    rpc_stream *s;
    assert_int_equal(rpc_stream_open(f->ch, "/tikvpb.Tikv/BatchCommands", 0, NULL, &s), 0);

    /* Ids are sent out of order and interleaved across messages. */
    uint64_t order[BATCH_TOTAL];
    for (uint64_t i = 0; i < BATCH_TOTAL; i++)
        order[i] = i;
    tkv_rng rng;
    tkv_rng_seed(&rng, 42);
    for (size_t i = BATCH_TOTAL - 1; i > 0; i--) {
        size_t j = tkv_rng_below(&rng, i + 1);
        uint64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    char keys[BATCH_TOTAL][16];
    for (size_t base = 0; base < BATCH_TOTAL; base += BATCH_PER_MSG) {
        Tikvpb__BatchCommandsRequest__Request r[BATCH_PER_MSG];
        Tikvpb__BatchCommandsRequest__Request *rp[BATCH_PER_MSG];
        Kvrpcpb__RawPutRequest puts[BATCH_PER_MSG];
        Kvrpcpb__RawGetRequest gets[BATCH_PER_MSG];
        Kvrpcpb__PrewriteRequest pws[BATCH_PER_MSG];
        Tikvpb__BatchCommandsEmptyRequest empties[BATCH_PER_MSG];
        uint64_t ids[BATCH_PER_MSG];
        for (size_t i = 0; i < BATCH_PER_MSG; i++) {
            uint64_t id = order[base + i];
            ids[i] = id;
            tikvpb__batch_commands_request__request__init(&r[i]);
            rp[i] = &r[i];
            snprintf(keys[id], sizeof(keys[id]), "key%03d", (int)(id % 97));
            r[i].cmd_case = kind_of(id);
            switch (r[i].cmd_case) {
            case TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_RAW_PUT:
                kvrpcpb__raw_put_request__init(&puts[i]);
                puts[i].context = &f->ctx;
                puts[i].key = bin(keys[id]);
                puts[i].value = bin("value");
                r[i].rawput = &puts[i];
                break;
            case TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_RAW_GET:
                kvrpcpb__raw_get_request__init(&gets[i]);
                gets[i].context = &f->ctx;
                gets[i].key = bin(keys[id]);
                r[i].rawget = &gets[i];
                break;
            case TIKVPB__BATCH_COMMANDS_REQUEST__REQUEST__CMD_EMPTY:
                tikvpb__batch_commands_empty_request__init(&empties[i]);
                empties[i].test_id = id;
                r[i].empty = &empties[i];
                break;
            default:
                kvrpcpb__prewrite_request__init(&pws[i]);
                r[i].prewrite = &pws[i];
                break;
            }
        }
        Tikvpb__BatchCommandsRequest req = TIKVPB__BATCH_COMMANDS_REQUEST__INIT;
        req.requests = rp;
        req.n_requests = BATCH_PER_MSG;
        req.request_ids = ids;
        req.n_request_ids = BATCH_PER_MSG;
        assert_int_equal(rpc_stream_send_msg(s, &req.base), 0);
    }

    int answered[BATCH_TOTAL] = {0};
    int got = 0, messages = 0;
    tkv_buf msg;
    tkv_buf_init(&msg);
    rpc_status st;
    while (got < BATCH_TOTAL) {
        assert_int_equal(rpc_stream_read(s, TIMEOUT_MS, &msg, &st), 0);
        messages++;
        Tikvpb__BatchCommandsResponse *resp =
            tikvpb__batch_commands_response__unpack(NULL, msg.len, msg.data);
        assert_non_null(resp);
        assert_int_equal(resp->n_responses, resp->n_request_ids);
        for (size_t i = 0; i < resp->n_responses; i++) {
            uint64_t id = resp->request_ids[i];
            assert_true(id < BATCH_TOTAL);
            answered[id]++;
            got++;
            const Tikvpb__BatchCommandsResponse__Response *r = resp->responses[i];
            assert_int_equal((int)r->cmd_case, kind_of(id));
            switch (r->cmd_case) {
            case TIKVPB__BATCH_COMMANDS_RESPONSE__RESPONSE__CMD_RAW_PUT:
                assert_null(r->rawput->region_error);
                assert_string_equal(r->rawput->error, "");
                break;
            case TIKVPB__BATCH_COMMANDS_RESPONSE__RESPONSE__CMD_RAW_GET:
                assert_null(r->rawget->region_error);
                if (!r->rawget->not_found)
                    assert_true(bin_is(r->rawget->value, "value"));
                break;
            case TIKVPB__BATCH_COMMANDS_RESPONSE__RESPONSE__CMD_EMPTY:
                assert_int_equal(r->empty->test_id, id);
                break;
            default:
                /* Unserved commands come back with an error of their own kind. */
                assert_non_null(r->prewrite->region_error);
                assert_string_not_equal(r->prewrite->region_error->message, "");
                break;
            }
        }
        tikvpb__batch_commands_response__free_unpacked(resp, NULL);
    }
    for (int i = 0; i < BATCH_TOTAL; i++)
        assert_int_equal(answered[i], 1);
    /* Responses completing together were batched. */
    assert_true(messages < BATCH_TOTAL);

    assert_int_equal(rpc_stream_close_send(s), 0);
    assert_int_equal(rpc_stream_read(s, TIMEOUT_MS, &msg, &st), TKV_ECLOSED);
    assert_int_equal(st.code, RPC_OK);
    tkv_buf_deinit(&msg);
    rpc_stream_free(s);
}

static void test_batch_commands_malformed_message_fails_the_stream(void **state)
{
    fx *f = *state;
    rpc_stream *s;
    assert_int_equal(rpc_stream_open(f->ch, "/tikvpb.Tikv/BatchCommands", 0, NULL, &s), 0);
    const uint8_t garbage[] = {0x0a, 0x40, 0x01};
    assert_int_equal(rpc_stream_send(s, tkv_slice_of(garbage, sizeof(garbage))), 0);
    tkv_buf msg;
    tkv_buf_init(&msg);
    rpc_status st;
    assert_int_equal(rpc_stream_read(s, TIMEOUT_MS, &msg, &st), TKV_ECLOSED);
    assert_int_equal(st.code, RPC_INVALID_ARGUMENT);
    rpc_stream_free(s);

    /* requests and request_ids of different lengths are malformed too. */
    assert_int_equal(rpc_stream_open(f->ch, "/tikvpb.Tikv/BatchCommands", 0, NULL, &s), 0);
    const uint8_t mismatch[] = {0x0a, 0x00, 0x0a, 0x00, 0x10, 0x01};
    assert_int_equal(rpc_stream_send(s, tkv_slice_of(mismatch, sizeof(mismatch))), 0);
    assert_int_equal(rpc_stream_read(s, TIMEOUT_MS, &msg, &st), TKV_ECLOSED);
    assert_int_equal(st.code, RPC_INVALID_ARGUMENT);
    assert_non_null(strstr(st.message, "request_ids"));
    rpc_stream_free(s);
    tkv_buf_deinit(&msg);

    /* The service still works on a fresh stream. */
    assert_int_equal(rpc_stream_open(f->ch, "/tikvpb.Tikv/BatchCommands", 0, NULL, &s), 0);
    const uint8_t empty[] = {0x0a, 0x05, 0xfa, 0x0f, 0x02, 0x08, 0x07, 0x10, 0x09};
    assert_int_equal(rpc_stream_send(s, tkv_slice_of(empty, sizeof(empty))), 0);
    tkv_buf_init(&msg);
    assert_int_equal(rpc_stream_read(s, TIMEOUT_MS, &msg, &st), 0);
    Tikvpb__BatchCommandsResponse *resp =
        tikvpb__batch_commands_response__unpack(NULL, msg.len, msg.data);
    assert_non_null(resp);
    assert_int_equal(resp->n_responses, 1);
    assert_int_equal(resp->request_ids[0], 9);
    assert_int_equal(resp->responses[0]->empty->test_id, 7);
    tikvpb__batch_commands_response__free_unpacked(resp, NULL);
    tkv_buf_deinit(&msg);
    rpc_stream_free(s); /* cancels: the server ends the stream on its side */
}

/* ---- SplitRegion ------------------------------------------------------------------------- */

/* Written on a server thread, read by the test after the call returns: the mutex makes that
 * ordering visible to ThreadSanitizer (gRPC's own synchronization is not instrumented). */
typedef struct split_hook {
    pthread_mutex_t mu;
    int calls;
    tkv_buf keys[4];
    size_t n;
    bool is_raw;
    uint64_t region_id;
} split_hook;

static int fake_split(void *impl, const stor_ctx *ctx, const tkv_slice *keys, size_t n,
                      bool is_raw_kv, srv_split_cb cb, void *ud)
{
    split_hook *h = impl;
    pthread_mutex_lock(&h->mu);
    h->calls++;
    h->n = n;
    h->is_raw = is_raw_kv;
    h->region_id = ctx->region_id;
    for (size_t i = 0; i < n && i < 4; i++)
        assert_int_equal(tkv_buf_set(&h->keys[i], keys[i].data, keys[i].len), 0);
    pthread_mutex_unlock(&h->mu);
    /* Answer with the n + 1 regions the split produced. */
    Metapb__Region regions[5];
    const Metapb__Region *rp[5];
    for (size_t i = 0; i <= n && i < 5; i++) {
        metapb__region__init(&regions[i]);
        regions[i].id = 100 + i;
        if (i > 0) {
            regions[i].start_key.data = (uint8_t *)keys[i - 1].data;
            regions[i].start_key.len = keys[i - 1].len;
        }
        if (i < n) {
            regions[i].end_key.data = (uint8_t *)keys[i].data;
            regions[i].end_key.len = keys[i].len;
        }
        rp[i] = &regions[i];
    }
    cb(ud, 0, NULL, rp, n + 1);
    return 0;
}

static void test_split_region_goes_through_the_hook(void **state)
{
    fx *f = *state;
    ProtobufCBinaryData keys[2] = {bin("m"), bin("c")};
    Kvrpcpb__SplitRegionRequest req = KVRPCPB__SPLIT_REGION_REQUEST__INIT;
    req.context = &f->ctx;
    req.split_keys = keys;
    req.n_split_keys = 2;
    req.is_raw_kv = true;

    /* No hook yet: a region error says why, not UNIMPLEMENTED. */
    Kvrpcpb__SplitRegionResponse *r = unary(f, "/tikvpb.Tikv/SplitRegion", &req.base,
                                            &kvrpcpb__split_region_response__descriptor);
    assert_non_null(r->region_error);
    assert_non_null(strstr(r->region_error->message, "not available"));
    rpc_msg_free(&r->base);

    split_hook h = {.calls = 0};
    pthread_mutex_init(&h.mu, NULL);
    for (int i = 0; i < 4; i++)
        tkv_buf_init(&h.keys[i]);
    srv_admin_hooks hooks = {.impl = &h, .split_region = fake_split};
    srv_service_set_admin(f->svc, &hooks);
    r = unary(f, "/tikvpb.Tikv/SplitRegion", &req.base,
              &kvrpcpb__split_region_response__descriptor);
    assert_null(r->region_error);
    pthread_mutex_lock(&h.mu);
    assert_int_equal(h.calls, 1);
    assert_true(h.is_raw);
    assert_int_equal(h.region_id, 1);
    /* Raw keys as given, sorted. */
    assert_int_equal(h.n, 2);
    assert_memory_equal(h.keys[0].data, "c", 1);
    assert_memory_equal(h.keys[1].data, "m", 1);
    pthread_mutex_unlock(&h.mu);
    assert_int_equal(r->n_regions, 3);
    assert_int_equal(r->regions[1]->id, 101);
    assert_true(bin_is(r->regions[1]->start_key, "c"));
    rpc_msg_free(&r->base);

    /* Transactional splits get memcomparable-encoded keys. */
    req.is_raw_kv = false;
    req.n_split_keys = 1;
    r = unary(f, "/tikvpb.Tikv/SplitRegion", &req.base,
              &kvrpcpb__split_region_response__descriptor);
    assert_int_equal(r->n_regions, 2);
    rpc_msg_free(&r->base);
    tkv_buf enc;
    tkv_buf_init(&enc);
    assert_int_equal(tkv_codec_encode_bytes(&enc, tkv_slice_str("m")), 0);
    pthread_mutex_lock(&h.mu);
    assert_int_equal(h.keys[0].len, enc.len);
    assert_memory_equal(h.keys[0].data, enc.data, enc.len);
    pthread_mutex_unlock(&h.mu);
    tkv_buf_deinit(&enc);
    srv_service_set_admin(f->svc, NULL);
    for (int i = 0; i < 4; i++)
        tkv_buf_deinit(&h.keys[i]);
    pthread_mutex_destroy(&h.mu);
}

static void test_method_labels_follow_tikv(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"RawGet", "raw_get"},
        {"KVPessimisticRollback", "kv_pessimistic_rollback"},
        {"RawGetKeyTTL", "raw_get_key_ttl"},
        {"KvGC", "kv_gc"},
        {"RawCompareAndSwap", "raw_compare_and_swap"},
        {"GetStoreSafeTS", "get_store_safe_ts"},
        {"KvTxnHeartBeat", "kv_txn_heart_beat"},
    };
    for (size_t i = 0; i < TKV_ARRAY_LEN(cases); i++) {
        char out[48];
        srv_method_label(cases[i][0], out, sizeof(out));
        assert_string_equal(out, cases[i][1]);
    }
    char tiny[4];
    srv_method_label("RawGet", tiny, sizeof(tiny));
    assert_string_equal(tiny, "raw");
}

int main(void)
{
    rpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unary_raw_calls_reach_storage, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_malformed_requests_and_unknown_methods_get_grpc_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_commands_answers_every_id_once_with_its_kind,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_commands_malformed_message_fails_the_stream,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_region_goes_through_the_hook, setup, teardown),
        cmocka_unit_test(test_method_labels_follow_tikv),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rpc_shutdown();
    return rc;
}
