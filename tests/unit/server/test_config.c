/*
 * test_config.c: tikv-server's configuration: TiKV's defaults and derived values, file plus
 * command-line flags, unknown keys, errors naming the key, JSON for /config, and the options
 * handed to storage and gRPC.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/server.h"

#define MiB (1024ULL * 1024)

typedef struct warnings {
    int n;
    char last[TKV_ERRMSG_LEN];
} warnings;

static void on_warn(void *arg, const char *msg)
{
    warnings *w = arg;
    w->n++;
    snprintf(w->last, sizeof(w->last), "%s", msg);
}

/* Writes @text to a new temporary file whose path goes to @path. */
static void write_file(char *path, size_t cap, const char *text)
{
    snprintf(path, cap, "/tmp/tkv-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int from_args(srv_config *cfg, int argc, char **argv, warnings *w, char *err)
{
    bool help = false;
    int rc = srv_config_from_args(cfg, argc, argv, &help, on_warn, w, err);
    assert_false(help);
    return rc;
}

static void test_defaults_follow_tikv_and_derive_from_split_size(void **state)
{
    (void)state;
    srv_config c;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(srv_config_bind(&c, NULL, NULL, NULL, err), 0);
    assert_string_equal(c.server.addr, "127.0.0.1:20160");
    assert_string_equal(c.server.status_addr, "127.0.0.1:20180");
    assert_int_equal(c.server.grpc_concurrency, 5);
    assert_int_equal(c.server.max_grpc_send_msg_len, 10 * MiB);
    assert_int_equal(c.server.grpc_keepalive_time_ms, 10000);
    assert_int_equal(c.server.grpc_keepalive_timeout_ms, 3000);
    assert_string_equal(c.storage.data_dir, "./");
    assert_false(c.storage.enable_ttl);
    assert_int_equal(c.storage.api_version, 1);
    assert_int_equal(c.storage.scheduler_concurrency, 524288);
    assert_int_equal(c.storage.reserve_space_bytes, 5 * 1024 * MiB);
    assert_int_equal(c.raftstore.raft_base_tick_interval_ms, 1000);
    assert_int_equal(c.raftstore.raft_heartbeat_ticks, 2);
    assert_int_equal(c.raftstore.raft_election_timeout_ticks, 10);
    assert_int_equal(c.raftstore.raft_entry_max_size, 8 * MiB);
    assert_int_equal(c.raftstore.pd_heartbeat_tick_interval_ms, 60000);
    assert_true(c.raftstore.sync_log);
    assert_false(c.raftstore.hibernate_regions);
    assert_int_equal(c.coprocessor.region_split_size, 96 * MiB);
    /* TiKV's derived defaults. */
    assert_int_equal(c.coprocessor.region_max_size, 144 * MiB);
    assert_int_equal(c.coprocessor.region_split_keys, 960000);
    assert_int_equal(c.coprocessor.region_max_keys, 1440000);
    assert_int_equal(c.raftstore.raft_log_gc_count_limit, 73728);
    assert_int_equal(c.raftstore.region_split_check_diff, 6 * MiB);
    assert_int_equal(c.pd.endpoints.len, 1);
    assert_string_equal(c.pd.endpoints.items[0], "127.0.0.1:2379");
    assert_string_equal(c.log.level, "info");
    assert_string_equal(c.security.ca_path, "");
    srv_config_free(&c);
    srv_config_free(&c); /* twice is fine */
}

static void test_file_then_flags_with_flags_winning(void **state)
{
    (void)state;
    char path[64];
    write_file(path, sizeof(path),
               "log-level = \"warn\"\n"
               "[server]\naddr = \"0.0.0.0:1111\"\nstatus-addr = \"0.0.0.0:2222\"\n"
               "[storage]\nenable-ttl = true\nunknown-thing = 3\n"
               "[coprocessor]\nregion-split-size = \"1MiB\"\n"
               "[raftstore]\nraft-log-gc-count-limit = 100\n");
    char *argv[] = {"tikv-server",
                    "-C",
                    path,
                    "--addr",
                    "127.0.0.1:3333",
                    "--pd=10.0.0.1:2379, 10.0.0.2:2379",
                    "--capacity",
                    "10GB",
                    "--data-dir",
                    "/tmp/d \"q\"",
                    "--log-level",
                    "debug"};
    srv_config c;
    warnings w = {0};
    char err[TKV_ERRMSG_LEN];
    int rc = from_args(&c, TKV_ARRAY_LEN(argv), argv, &w, err);
    if (rc != 0)
        fail_msg("%s", err);
    assert_string_equal(c.server.addr, "127.0.0.1:3333");
    assert_string_equal(c.server.status_addr, "0.0.0.0:2222");
    assert_true(c.storage.enable_ttl);
    assert_string_equal(c.storage.data_dir, "/tmp/d \"q\"");
    assert_int_equal(c.raftstore.capacity_bytes, 10ULL * 1024 * MiB);
    assert_int_equal(c.pd.endpoints.len, 2);
    assert_string_equal(c.pd.endpoints.items[1], "10.0.0.2:2379");
    /* The flag beats the file's deprecated top-level key. */
    assert_string_equal(c.log.level, "debug");
    /* Derived values follow the configured split size; set ones stay. */
    assert_int_equal(c.coprocessor.region_max_size, 3 * MiB / 2);
    assert_int_equal(c.coprocessor.region_split_keys, 10000);
    assert_int_equal(c.raftstore.region_split_check_diff, MiB / 16);
    assert_int_equal(c.raftstore.raft_log_gc_count_limit, 100);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.last, "storage.unknown-thing"));
    srv_config_free(&c);

    /* Without the flag, the deprecated key replaces log.level. */
    char *argv2[] = {"tikv-server", "--config", path};
    assert_int_equal(from_args(&c, 3, argv2, &w, err), 0);
    assert_string_equal(c.log.level, "warn");
    assert_string_equal(c.server.addr, "0.0.0.0:1111");
    srv_config_free(&c);
    unlink(path);
}

static void expect_error(int argc, char **argv, const char *needle)
{
    srv_config c;
    warnings w = {0};
    char err[TKV_ERRMSG_LEN] = "";
    bool help = false;
    int rc = srv_config_from_args(&c, argc, argv, &help, on_warn, &w, err);
    assert_int_equal(rc, TKV_ECONFIG);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_bad_values_and_flags_fail_naming_the_key(void **state)
{
    (void)state;
    char path[64];
    write_file(path, sizeof(path), "[server]\ngrpc-concurrency = 0\n");
    char *a1[] = {"tikv-server", "--config", path};
    expect_error(3, a1, "server.grpc-concurrency");
    unlink(path);
    write_file(path, sizeof(path), "[storage]\napi-version = 2\n");
    expect_error(3, a1, "storage.api-version");
    unlink(path);
    write_file(path, sizeof(path), "[raftstore]\nraft-election-timeout-ticks = 2\n");
    expect_error(3, a1, "raftstore.raft-election-timeout-ticks");
    unlink(path);
    write_file(path, sizeof(path), "[security]\ncert-path = \"/x.pem\"\n");
    expect_error(3, a1, "security.key-path");
    unlink(path);
    write_file(path, sizeof(path), "[server\n");
    expect_error(3, a1, path);
    unlink(path);
    char *a2[] = {"tikv-server", "--capacity", "10XB"};
    expect_error(3, a2, "raftstore.capacity");
    char *a3[] = {"tikv-server", "--bogus", "1"};
    expect_error(3, a3, "--bogus");
    char *a4[] = {"tikv-server", "--addr"};
    expect_error(2, a4, "--addr");
    char *a5[] = {"tikv-server", "--log-level", "loud"};
    expect_error(3, a5, "unknown log level");
    char *a6[] = {"tikv-server", "--config", "/nonexistent/tikv.toml"};
    expect_error(3, a6, "/nonexistent/tikv.toml");
    char *a7[] = {"tikv-server", "--pd", " , "};
    expect_error(3, a7, "pd.endpoints");

    srv_config c;
    bool help = false;
    char err[TKV_ERRMSG_LEN];
    char *a8[] = {"tikv-server", "--addr", "x:1", "--help"};
    assert_int_equal(srv_config_from_args(&c, 4, a8, &help, NULL, NULL, err), 0);
    assert_true(help);
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    srv_config_usage(devnull, "tikv-server");
    fclose(devnull);
}

static void test_json_has_tikv_key_names(void **state)
{
    (void)state;
    srv_config c;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(srv_config_bind(&c, NULL, NULL, NULL, err), 0);
    tkv_buf out;
    tkv_buf_init(&out);
    assert_int_equal(srv_config_to_json(&c, &out), 0);
    json_error_t je;
    json_t *root = json_loadb((const char *)out.data, out.len, 0, &je);
    assert_non_null(root);
    json_t *storage = json_object_get(root, "storage");
    assert_int_equal(json_integer_value(json_object_get(storage, "api-version")), 1);
    assert_true(json_is_false(json_object_get(storage, "enable-ttl")));
    json_t *server = json_object_get(root, "server");
    assert_string_equal(json_string_value(json_object_get(server, "grpc-keepalive-time")), "10s");
    json_t *cop = json_object_get(root, "coprocessor");
    assert_string_equal(json_string_value(json_object_get(cop, "region-split-size")), "96MiB");
    json_t *pd = json_object_get(json_object_get(root, "pd"), "endpoints");
    assert_int_equal(json_array_size(pd), 1);
    json_t *file = json_object_get(json_object_get(root, "log"), "file");
    assert_string_equal(json_string_value(json_object_get(file, "filename")), "");
    assert_null(json_object_get(root, "log-level"));
    json_decref(root);
    tkv_buf_deinit(&out);
    srv_config_free(&c);
}

static void test_security_section_binds_redaction_and_encryption(void **state)
{
    (void)state;
    char path[64];
    write_file(path, sizeof(path),
               "[security]\nredact-info-log = \"marker\"\n"
               "[security.encryption]\ndata-encryption-method = \"aes128-ctr\"\n"
               "data-key-rotation-period = \"1h\"\n"
               "[security.encryption.master-key]\ntype = \"file\"\npath = \"/etc/mk\"\n"
               "[rocksdb.defaultcf]\nwrite-buffer-size = \"4MiB\"\n");
    char *argv[] = {"tikv-server", "--config", path};
    srv_config c;
    warnings w = {0};
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(from_args(&c, 3, argv, &w, err), 0);
    assert_int_equal(w.n, 0); /* [security.encryption] is known, not warned about */
    assert_int_equal(c.security.redact_mode, TKV_REDACT_MARKER);
    assert_string_equal(c.sec.data_encryption_method, "aes128-ctr");
    assert_true(c.sec.data_key_rotation_period_ms == 3600000);
    assert_string_equal(c.sec.master_key_path, "/etc/mk");
    assert_true(c.rocksdb.kv_write_buffer_bytes == 4 * MiB);
    assert_true(c.rocksdb.raft_write_buffer_bytes == 64 * MiB);
    tkv_buf out;
    tkv_buf_init(&out);
    assert_int_equal(srv_config_to_json(&c, &out), 0);
    json_error_t je;
    json_t *root = json_loadb((const char *)out.data, out.len, 0, &je);
    assert_non_null(root);
    json_t *sec = json_object_get(root, "security");
    assert_string_equal(json_string_value(json_object_get(sec, "redact-info-log")), "marker");
    json_t *enc = json_object_get(sec, "encryption");
    assert_string_equal(json_string_value(json_object_get(enc, "data-encryption-method")),
                        "aes128-ctr");
    json_decref(root);
    tkv_buf_deinit(&out);
    srv_config_free(&c);
    unlink(path);

    write_file(path, sizeof(path), "[security]\nredact-info-log = true\n");
    assert_int_equal(from_args(&c, 3, argv, &w, err), 0);
    assert_int_equal(c.security.redact_mode, TKV_REDACT_ON);
    assert_int_equal(srv_config_to_json(&c, &out), 0);
    root = json_loadb((const char *)out.data, out.len, 0, &je);
    assert_true(
        json_is_true(json_object_get(json_object_get(root, "security"), "redact-info-log")));
    json_decref(root);
    tkv_buf_deinit(&out);
    srv_config_free(&c);
    unlink(path);

    write_file(path, sizeof(path), "[security]\nredact-info-log = \"sometimes\"\n");
    expect_error(3, argv, "security.redact-info-log");
    unlink(path);
    write_file(path, sizeof(path),
               "[security.encryption]\ndata-encryption-method = \"aes256-ctr\"\n");
    expect_error(3, argv, "master-key");
    unlink(path);
}

static void test_options_for_storage_and_grpc(void **state)
{
    (void)state;
    char path[64];
    write_file(path, sizeof(path),
               "[storage]\nenable-ttl = true\nmax-key-size = 100\nscheduler-concurrency = 64\n"
               "[raftstore]\nraft-entry-max-size = \"1MiB\"\n"
               "[server]\ngrpc-concurrency = 3\ngrpc-max-connections = 500\n"
               "grpc-max-connections-per-address = 20\n"
               "[security]\nca-path = \"/ca.pem\"\ncert-path = \"/c.pem\"\nkey-path = \"/k.pem\"\n"
               "cert-allowed-cn = [\"tikv\", \"pd\"]\n");
    char *argv[] = {"tikv-server", "--config", path};
    srv_config c;
    warnings w = {0};
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(from_args(&c, 3, argv, &w, err), 0);
    stor_opts so;
    srv_config_stor_opts(&c, &so);
    assert_true(so.enable_ttl);
    assert_int_equal(so.max_key_bytes, 100);
    assert_int_equal(so.max_value_bytes, MiB);
    assert_int_equal(so.latch_slots, 64);
    rpc_server_opts ro;
    rpc_tls tls;
    srv_config_rpc_opts(&c, &ro, &tls);
    assert_string_equal(ro.addr, "127.0.0.1:20160");
    assert_int_equal(ro.cq_threads, 3);
    assert_int_equal(ro.max_send_msg_bytes, 10 * MiB);
    assert_int_equal(ro.max_connections, 500);
    assert_int_equal(ro.max_connections_per_addr, 20);
    assert_ptr_equal(ro.tls, &tls);
    assert_string_equal(tls.ca_path, "/ca.pem");
    assert_string_equal(ro.cert_allowed_cn[1], "pd");
    assert_null(ro.cert_allowed_cn[2]);
    srv_config_free(&c);
    unlink(path);

    /* Plaintext when no certificate is configured. */
    assert_int_equal(srv_config_bind(&c, NULL, NULL, NULL, err), 0);
    srv_config_rpc_opts(&c, &ro, &tls);
    assert_null(ro.tls);
    assert_null(ro.cert_allowed_cn);
    assert_int_equal(ro.max_connections, 10000);
    assert_int_equal(ro.max_connections_per_addr, 1000);
    srv_config_free(&c);

    /* The gate's limits must be positive. */
    char *bad[] = {"tikv-server", "--config", path};
    write_file(path, sizeof(path), "[server]\ngrpc-max-connections = 0\n");
    expect_error(3, bad, "server.grpc-max-connections");
    unlink(path);
    write_file(path, sizeof(path), "[server]\ngrpc-max-connections-per-address = -1\n");
    expect_error(3, bad, "server.grpc-max-connections-per-address");
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_follow_tikv_and_derive_from_split_size),
        cmocka_unit_test(test_file_then_flags_with_flags_winning),
        cmocka_unit_test(test_bad_values_and_flags_fail_naming_the_key),
        cmocka_unit_test(test_json_has_tikv_key_names),
        cmocka_unit_test(test_options_for_storage_and_grpc),
        cmocka_unit_test(test_security_section_binds_redaction_and_encryption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
