/*
 * test_config.c: the [security] configuration: TiKV's key names and defaults, the checks on
 * combinations, and the options each building block gets from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "security/security.h"

/* Binds @toml (NULL: defaults only) into @c; returns bind's code, message in @err. */
static int bind_text(const char *toml, sec_config *c, char *err)
{
    tkv_cfg_doc *doc = NULL;
    if (toml != NULL)
        assert_int_equal(tkv_cfg_parse(toml, strlen(toml), "tikv.toml", &doc, err), 0);
    int rc = tkv_cfg_bind(doc, sec_config_fields, SEC_CONFIG_N_FIELDS, c, NULL, NULL, err);
    tkv_cfg_free(doc);
    return rc;
}

static void test_defaults_are_tikvs_and_turn_nothing_on(void **state)
{
    (void)state;
    sec_config c;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(bind_text(NULL, &c, err), 0);
    assert_string_equal(c.data_encryption_method, "plaintext");
    assert_int_equal(c.data_key_rotation_period_ms, 7ull * 24 * 3600 * 1000);
    assert_string_equal(c.master_key_type, "plaintext");
    assert_int_equal(c.cert_allowed_cn.len, 0);
    assert_int_equal(sec_config_validate(&c, err), 0);
    assert_false(sec_config_encryption_on(&c));
    sec_audit_opts ao;
    assert_false(sec_config_audit_opts(&c, &ao));
    sec_guard_opts go;
    sec_config_guard_opts(&c, &go);
    assert_int_equal(go.max_failures, 10);
    assert_int_equal(go.window_ms, 60000);
    assert_int_equal(go.ban_ms, 300000);
    tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &c);
}

static void test_a_full_section_fills_every_block(void **state)
{
    (void)state;
    static const char toml[] = "[security]\n"
                               "ca-path = \"/etc/tikv/ca.pem\"\n"
                               "cert-path = \"/etc/tikv/tikv.pem\"\n"
                               "key-path = \"/etc/tikv/tikv-key.pem\"\n"
                               "cert-allowed-cn = [\"tikv\", \"pd\"]\n"
                               "cert-allowed-san = [\"tikv-0.tikv\"]\n"
                               "audit-log = \"/data/audit.log\"\n"
                               "audit-log-sync = \"interval\"\n"
                               "auth-failure-burst = 3\n"
                               "auth-failure-window = \"30s\"\n"
                               "auth-ban-duration = \"1h\"\n"
                               "[security.encryption]\n"
                               "data-encryption-method = \"aes128-ctr\"\n"
                               "data-key-rotation-period = \"1d\"\n"
                               "[security.encryption.master-key]\n"
                               "type = \"file\"\n"
                               "path = \"/etc/tikv/master.key\"\n"
                               "[security.encryption.previous-master-key]\n"
                               "type = \"file\"\n"
                               "path = \"/etc/tikv/master.key.old\"\n";
    sec_config c;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(bind_text(toml, &c, err), 0);
    assert_int_equal(sec_config_validate(&c, err), 0);
    assert_int_equal(c.cert_allowed_cn.len, 2);
    assert_string_equal(c.cert_allowed_cn.items[1], "pd");
    assert_true(sec_config_encryption_on(&c));

    sec_enc_opts eo;
    assert_int_equal(sec_config_enc_opts(&c, "/data", &eo, err), 0);
    assert_int_equal(eo.method, SEC_AES128_CTR);
    assert_int_equal(eo.rotation_period_s, 86400);
    assert_string_equal(eo.master_key_path, "/etc/tikv/master.key");
    assert_string_equal(eo.previous_master_key_path, "/etc/tikv/master.key.old");
    assert_string_equal(eo.dict_dir, "/data");

    sec_audit_opts ao;
    assert_true(sec_config_audit_opts(&c, &ao));
    assert_string_equal(ao.path, "/data/audit.log");
    assert_int_equal(ao.sync, SEC_AUDIT_SYNC_INTERVAL);
    sec_guard_opts go;
    sec_config_guard_opts(&c, &go);
    assert_int_equal(go.max_failures, 3);
    assert_int_equal(go.window_ms, 30000);
    assert_int_equal(go.ban_ms, 3600000);
    tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &c);
}

static void expect_invalid(const char *toml, const char *why)
{
    sec_config c;
    char err[TKV_ERRMSG_LEN] = "";
    int rc = bind_text(toml, &c, err);
    if (rc == 0) {
        rc = sec_config_validate(&c, err);
        tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &c);
    }
    assert_int_equal(rc, TKV_ECONFIG);
    if (strstr(err, why) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, why);
}

static void test_bad_combinations_are_refused_with_a_reason(void **state)
{
    (void)state;
    expect_invalid("[security]\nca-path = \"a\"\ncert-path = \"b\"\n", "set together");
    expect_invalid("[security]\ncert-allowed-cn = [\"tikv\"]\n", "mutual TLS");
    expect_invalid("[security.encryption]\ndata-encryption-method = \"aes256-ctr\"\n",
                   "needs master-key type");
    expect_invalid("[security.encryption]\ndata-encryption-method = \"sm4-ctr\"\n", "aes256-ctr");
    expect_invalid("[security.encryption.master-key]\ntype = \"file\"\n", "needs path");
    expect_invalid("[security.encryption.master-key]\ntype = \"kms\"\n", "kms");
    expect_invalid("[security.encryption.previous-master-key]\ntype = \"file\"\npath = \"x\"\n",
                   "file master-key beside it");
    expect_invalid("[security]\naudit-log-sync = \"sometimes\"\n", "interval");
    expect_invalid("[security]\nauth-failure-burst = 0\n", "between 1");
}

static void test_a_file_master_key_alone_keeps_old_files_readable(void **state)
{
    (void)state;
    /* Switching back to plaintext keeps the dictionary open so encrypted files still read. */
    sec_config c;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(bind_text("[security.encryption.master-key]\ntype = \"file\"\n"
                               "path = \"/k\"\n",
                               &c, err),
                     0);
    assert_int_equal(sec_config_validate(&c, err), 0);
    assert_true(sec_config_encryption_on(&c));
    sec_enc_opts eo;
    assert_int_equal(sec_config_enc_opts(&c, "/d", &eo, err), 0);
    assert_int_equal(eo.method, SEC_PLAINTEXT);
    assert_string_equal(eo.master_key_path, "/k");
    tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_tikvs_and_turn_nothing_on),
        cmocka_unit_test(test_a_full_section_fills_every_block),
        cmocka_unit_test(test_bad_combinations_are_refused_with_a_reason),
        cmocka_unit_test(test_a_file_master_key_alone_keeps_old_files_readable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
