/*
 * test_node.c: tikv-server's front end composed from a configuration (srv_node): storage,
 * gRPC with the tikv service plus a method the caller adds (as raftstore adds Raft), and the
 * status server serving the configuration.
 */
#include <curl/curl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "server/server.h"

static void extra(rpc_call *call, tkv_slice req, void *ud)
{
    (void)ud;
    TKV_IGNORE(rpc_call_reply(call, req));
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    assert_int_equal(tkv_buf_append(ud, p, size * n), 0);
    return size * n;
}

static void test_node_composes_service_extra_methods_and_status(void **state)
{
    (void)state;
    char *argv[] = {"tikv-server", "--addr",     "127.0.0.1:0", "--status-addr",
                    "127.0.0.1:0", "--data-dir", "/tmp/unused"};
    srv_config cfg;
    bool help;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(srv_config_from_args(&cfg, TKV_ARRAY_LEN(argv), argv, &help, NULL, NULL, err),
                     0);
    eng_db *db;
    assert_int_equal(eng_mem_open(NULL, &db), 0);
    stor_kv *kv;
    assert_int_equal(stor_kv_local_new(db, NULL, &kv), 0);

    srv_node *n;
    assert_int_equal(srv_node_new(&cfg, kv, NULL, &n, err), 0);
    assert_int_equal(srv_node_port(n), 0);
    rpc_handler h = {.type = RPC_UNARY, .on_request = extra};
    assert_int_equal(rpc_server_add_method(srv_node_rpc(n), "/test.Svc/Extra", &h), 0);
    assert_non_null(srv_node_storage(n));
    assert_non_null(srv_node_service(n));
    assert_int_equal(srv_node_start(n, err), 0);
    assert_true(srv_node_port(n) > 0);
    assert_true(srv_node_status_port(n) > 0);

    rpc_client_opts co;
    rpc_client_opts_init(&co);
    rpc_client *cl;
    assert_int_equal(rpc_client_new(&co, &cl), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", srv_node_port(n));
    rpc_channel *ch;
    assert_int_equal(rpc_client_channel(cl, addr, 0, &ch), 0);
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    ctx.region_id = 1;
    Kvrpcpb__RawPutRequest put = KVRPCPB__RAW_PUT_REQUEST__INIT;
    put.context = &ctx;
    put.key.data = (uint8_t *)"k";
    put.key.len = 1;
    ProtobufCMessage *resp;
    rpc_status st;
    assert_int_equal(rpc_unary_msg(ch, "/tikvpb.Tikv/RawPut", &put.base,
                                   &kvrpcpb__raw_put_response__descriptor, 10000, &resp, &st),
                     0);
    assert_null(((Kvrpcpb__RawPutResponse *)resp)->region_error);
    rpc_msg_free(resp);
    tkv_buf out;
    tkv_buf_init(&out);
    assert_int_equal(rpc_unary(ch, "/test.Svc/Extra", tkv_slice_str("ping"), 10000, &out, &st), 0);
    assert_int_equal(out.len, 4);
    rpc_client_free(cl);

    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/config", (unsigned)srv_node_status_port(n));
    tkv_buf_reset(&out);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    assert_int_equal(tkv_buf_append_u8(&out, 0), 0);
    assert_non_null(strstr((char *)out.data, "\"api-version\":1"));
    assert_non_null(strstr((char *)out.data, "\"data-dir\":\"/tmp/unused\""));
    tkv_buf_deinit(&out);

    srv_node_stop(n, 5000);
    srv_node_stop(n, 5000);
    srv_node_free(n);
    srv_node_free(NULL);
    stor_kv_free(kv);
    eng_close(db);
    srv_config_free(&cfg);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_composes_service_extra_methods_and_status),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
