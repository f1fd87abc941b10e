/*
 * test_pd_config.c: pd-server's configuration: defaults, a TOML file with PD's key names
 * (unknown PD keys are only warned about), bad values refused with the key in the message,
 * and validation of the result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "pd_testutil.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_defaults_are_pds(void **state)
{
    (void)state;
    pd_config c;
    pd_config_init(&c);
    assert_string_equal(c.client_urls, "http://127.0.0.1:2379");
    assert_string_equal(c.http_addr, "127.0.0.1:2381");
    assert_int_equal(c.tso_window_ms, 3000);
    assert_int_equal(c.sched.max_store_down_time_ms, 30 * 60 * 1000);
    assert_int_equal(c.sched.leader_schedule_limit, 4);
    assert_int_equal(c.sched.region_schedule_limit, 2048);
    assert_int_equal(c.sched.replica_schedule_limit, 64);
    assert_int_equal(c.sched.max_replicas, 3);
    char err[TKV_ERRMSG_LEN];
    snprintf(c.data_dir, sizeof(c.data_dir), "default.pd");
    assert_int_equal(pd_config_validate(&c, err), 0);
    snprintf(c.client_urls, sizeof(c.client_urls), "127.0.0.1:2379");
    assert_int_equal(pd_config_validate(&c, err), TKV_ECONFIG);
    assert_non_null(strstr(err, "client-urls"));
}

static void test_file_with_pd_keys_is_applied(void **state)
{
    (void)state;
    char dir[] = "/tmp/pd-cfg-XXXXXX";
    pdt_mkdtemp(dir);
    char path[64];
    snprintf(path, sizeof(path), "%s/pd.toml", dir);
    write_file(path, "name = \"pd-a\"\n"
                     "data-dir = \"/var/lib/pd\"\n"
                     "client-urls = \"http://127.0.0.1:3379\"\n"
                     "peer-urls = \"http://127.0.0.1:3380\"\n" /* PD's, unused: a warning */
                     "lease = 5\n"
                     "tso-save-interval = \"5s\"\n"
                     "grpc-max-connections = 300\n"
                     "grpc-max-connections-per-address = 30\n"
                     "[log]\nlevel = \"warn\"\n[log.file]\nfilename = \"/tmp/pd.log\"\n"
                     "[schedule]\n"
                     "max-store-down-time = \"1m30s\"\n"
                     "leader-schedule-limit = 8\n"
                     "region-schedule-limit = 16\n"
                     "replica-schedule-limit = 32\n"
                     "patrol-region-interval = \"50ms\"\n"
                     "split-merge-interval = \"2h\"\n"
                     "[replication]\n"
                     "max-replicas = 5\n"
                     "location-labels = [\"zone\", \"host\"]\n"
                     "[pd-server]\nuse-region-storage = true\n");
    pd_config c;
    pd_config_init(&c);
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(pd_config_load_file(&c, path, err), 0);
    assert_string_equal(c.name, "pd-a");
    assert_string_equal(c.data_dir, "/var/lib/pd");
    assert_string_equal(c.client_urls, "http://127.0.0.1:3379");
    assert_int_equal(c.lease_s, 5);
    assert_int_equal(c.tso_window_ms, 5000);
    assert_int_equal(c.grpc_max_connections, 300);
    assert_int_equal(c.grpc_max_connections_per_address, 30);
    assert_string_equal(c.log_level, "warn");
    assert_string_equal(c.log_file, "/tmp/pd.log");
    assert_int_equal(c.sched.max_store_down_time_ms, 90000);
    assert_int_equal(c.sched.leader_schedule_limit, 8);
    assert_int_equal(c.sched.region_schedule_limit, 16);
    assert_int_equal(c.sched.replica_schedule_limit, 32);
    assert_int_equal(c.sched.patrol_region_interval_ms, 50);
    assert_int_equal(c.sched.split_merge_interval_ms, 2 * 3600 * 1000);
    assert_int_equal(c.sched.max_replicas, 5);
    assert_string_equal(c.sched.location_labels, "zone,host");
    assert_int_equal(pd_config_validate(&c, err), 0);
    unlink(path);
    pdt_rmtree(dir);
}

static void test_bad_values_name_the_key(void **state)
{
    (void)state;
    char dir[] = "/tmp/pd-cfg-XXXXXX";
    pdt_mkdtemp(dir);
    char path[64];
    snprintf(path, sizeof(path), "%s/pd.toml", dir);
    pd_config c;
    char err[TKV_ERRMSG_LEN];
    const char *bad[] = {
        "[schedule]\nmax-store-down-time = \"soon\"\n",
        "[schedule]\nleader-schedule-limit = -1\n",
        "[replication]\nmax-replicas = 0\n",
        "[schedule]\nmax-store-down-time = 30\n", /* a duration must be a string */
        "lease = \"3\"\n",
        "name = [1, 2\n", /* TOML syntax */
        /* Found by fuzz_cfg_bind: this one's message named no key. */
        "tso-save-interval = \"bogus\"\n",
        "grpc-max-connections = 0\n",
        "grpc-max-connections-per-address = -5\n",
    };
    const char *key[] = {"max-store-down-time",
                         "leader-schedule-limit",
                         "max-replicas",
                         "max-store-down-time",
                         "lease",
                         "pd.toml",
                         "tso-save-interval",
                         "grpc-max-connections",
                         "grpc-max-connections-per-address"};
    for (size_t i = 0; i < TKV_ARRAY_LEN(bad); i++) {
        write_file(path, bad[i]);
        pd_config_init(&c);
        err[0] = '\0';
        assert_int_equal(pd_config_load_file(&c, path, err), TKV_ECONFIG);
        if (strstr(err, key[i]) == NULL)
            fail_msg("case %zu: '%s' does not name %s", i, err, key[i]);
    }
    pd_config_init(&c);
    snprintf(path, sizeof(path), "%s/missing.toml", dir);
    assert_true(pd_config_load_file(&c, path, err) < 0);
    pdt_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_pds),
        cmocka_unit_test(test_file_with_pd_keys_is_applied),
        cmocka_unit_test(test_bad_values_name_the_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
