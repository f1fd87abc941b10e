/*
 * sec_config.c: binding and checking the [security] configuration (contract in config.h).
 */
#include <stdio.h>
#include <strings.h>

#include "security/config.h"

static int check_method(const void *field, char *msg, size_t cap)
{
    const char *s = *(char *const *)field;
    sec_method m;
    if (s != NULL && sec_method_parse(s, &m) == 0)
        return 0;
    snprintf(msg, cap, "expected plaintext, aes128-ctr, aes192-ctr or aes256-ctr");
    return 1;
}

static int check_key_type(const void *field, char *msg, size_t cap)
{
    const char *s = *(char *const *)field;
    if (s != NULL && (strcmp(s, "file") == 0 || strcmp(s, "plaintext") == 0))
        return 0;
    snprintf(msg, cap, "expected \"file\" or \"plaintext\" (kms is not supported)");
    return 1;
}

static int check_sync(const void *field, char *msg, size_t cap)
{
    const char *s = *(char *const *)field;
    if (s != NULL &&
        (strcmp(s, "always") == 0 || strcmp(s, "interval") == 0 || strcmp(s, "off") == 0))
        return 0;
    snprintf(msg, cap, "expected \"always\", \"interval\" or \"off\"");
    return 1;
}

static int check_positive(const void *field, char *msg, size_t cap)
{
    if (*(const uint64_t *)field > 0 && *(const uint64_t *)field < UINT32_MAX)
        return 0;
    snprintf(msg, cap, "must be between 1 and 2^32-1");
    return 1;
}

const tkv_cfg_field sec_config_fields[] = {
    TKV_CFG_FIELD("security.ca-path", STR, sec_config, ca_path, "\"\"", NULL),
    TKV_CFG_FIELD("security.cert-path", STR, sec_config, cert_path, "\"\"", NULL),
    TKV_CFG_FIELD("security.key-path", STR, sec_config, key_path, "\"\"", NULL),
    TKV_CFG_FIELD("security.cert-allowed-cn", STRLIST, sec_config, cert_allowed_cn, "[]", NULL),
    TKV_CFG_FIELD("security.cert-allowed-san", STRLIST, sec_config, cert_allowed_san, "[]", NULL),
    TKV_CFG_FIELD("security.audit-log", STR, sec_config, audit_log, "\"\"", NULL),
    TKV_CFG_FIELD("security.audit-log-sync", STR, sec_config, audit_log_sync, "\"always\"",
                  check_sync),
    TKV_CFG_FIELD("security.auth-failure-burst", U64, sec_config, auth_failure_burst, "10",
                  check_positive),
    TKV_CFG_FIELD("security.auth-failure-window", DURATION, sec_config, auth_failure_window_ms,
                  "\"1m\"", check_positive),
    TKV_CFG_FIELD("security.auth-ban-duration", DURATION, sec_config, auth_ban_duration_ms,
                  "\"5m\"", NULL),
    TKV_CFG_FIELD("security.auth-tracked-addresses", U64, sec_config, auth_tracked_addresses,
                  "65536", check_positive),
    TKV_CFG_FIELD("security.encryption.data-encryption-method", STR, sec_config,
                  data_encryption_method, "\"plaintext\"", check_method),
    TKV_CFG_FIELD("security.encryption.data-key-rotation-period", DURATION, sec_config,
                  data_key_rotation_period_ms, "\"7d\"", NULL),
    TKV_CFG_FIELD("security.encryption.master-key.type", STR, sec_config, master_key_type,
                  "\"plaintext\"", check_key_type),
    TKV_CFG_FIELD("security.encryption.master-key.path", STR, sec_config, master_key_path, "\"\"",
                  NULL),
    TKV_CFG_FIELD("security.encryption.previous-master-key.type", STR, sec_config,
                  previous_master_key_type, "\"plaintext\"", check_key_type),
    TKV_CFG_FIELD("security.encryption.previous-master-key.path", STR, sec_config,
                  previous_master_key_path, "\"\"", NULL),
};

_Static_assert(sizeof(sec_config_fields) / sizeof(sec_config_fields[0]) == SEC_CONFIG_N_FIELDS,
               "SEC_CONFIG_N_FIELDS must count sec_config_fields");

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static bool is_file_key(const char *type)
{
    return type != NULL && strcmp(type, "file") == 0;
}

int sec_config_validate(const sec_config *c, char err[TKV_ERRMSG_LEN])
{
    int n_tls = set(c->ca_path) + set(c->cert_path) + set(c->key_path);
    if (n_tls != 0 && n_tls != 3) {
        snprintf(err, TKV_ERRMSG_LEN,
                 "security: ca-path, cert-path and key-path must be set together (or none)");
        return TKV_ECONFIG;
    }
    if (n_tls == 0 && (c->cert_allowed_cn.len > 0 || c->cert_allowed_san.len > 0)) {
        snprintf(err, TKV_ERRMSG_LEN,
                 "security: cert-allowed-cn and cert-allowed-san need ca-path, cert-path and "
                 "key-path (mutual TLS)");
        return TKV_ECONFIG;
    }
    sec_method m = SEC_PLAINTEXT;
    if (c->data_encryption_method != NULL && sec_method_parse(c->data_encryption_method, &m) != 0) {
        snprintf(err, TKV_ERRMSG_LEN, "security.encryption: unknown data-encryption-method");
        return TKV_ECONFIG;
    }
    bool file_key = is_file_key(c->master_key_type);
    if (m != SEC_PLAINTEXT && !file_key) {
        snprintf(err, TKV_ERRMSG_LEN,
                 "security.encryption: data-encryption-method %s needs master-key type = "
                 "\"file\"",
                 sec_method_name(m));
        return TKV_ECONFIG;
    }
    if (file_key && !set(c->master_key_path)) {
        snprintf(err, TKV_ERRMSG_LEN, "security.encryption.master-key: type \"file\" needs path");
        return TKV_ECONFIG;
    }
    bool prev_file = is_file_key(c->previous_master_key_type);
    if (prev_file && (!set(c->previous_master_key_path) || !file_key)) {
        snprintf(err, TKV_ERRMSG_LEN,
                 "security.encryption.previous-master-key: type \"file\" needs path, and a "
                 "file master-key beside it");
        return TKV_ECONFIG;
    }
    return 0;
}

bool sec_config_encryption_on(const sec_config *c)
{
    sec_method m = SEC_PLAINTEXT;
    TKV_IGNORE(c->data_encryption_method != NULL &&
               sec_method_parse(c->data_encryption_method, &m) != 0);
    return m != SEC_PLAINTEXT || is_file_key(c->master_key_type);
}

int sec_config_enc_opts(const sec_config *c, const char *dict_dir, sec_enc_opts *o,
                        char err[TKV_ERRMSG_LEN])
{
    int rc = sec_config_validate(c, err);
    if (rc != 0)
        return rc;
    sec_enc_opts_init(o);
    o->dict_dir = dict_dir;
    if (c->data_encryption_method != NULL)
        TKV_IGNORE(sec_method_parse(c->data_encryption_method, &o->method));
    o->rotation_period_s = c->data_key_rotation_period_ms / 1000;
    o->master_key_path = is_file_key(c->master_key_type) ? c->master_key_path : NULL;
    o->previous_master_key_path =
        is_file_key(c->previous_master_key_type) ? c->previous_master_key_path : NULL;
    return 0;
}

bool sec_config_audit_opts(const sec_config *c, sec_audit_opts *o)
{
    sec_audit_opts_init(o);
    if (!set(c->audit_log))
        return false;
    o->path = c->audit_log;
    if (c->audit_log_sync != NULL && strcmp(c->audit_log_sync, "interval") == 0)
        o->sync = SEC_AUDIT_SYNC_INTERVAL;
    else if (c->audit_log_sync != NULL && strcmp(c->audit_log_sync, "off") == 0)
        o->sync = SEC_AUDIT_SYNC_OFF;
    return true;
}

void sec_config_guard_opts(const sec_config *c, sec_guard_opts *o)
{
    sec_guard_opts_init(o);
    o->max_failures = (uint32_t)c->auth_failure_burst;
    o->window_ms = c->auth_failure_window_ms;
    o->ban_ms = c->auth_ban_duration_ms;
    o->max_addrs = (size_t)c->auth_tracked_addresses;
}
