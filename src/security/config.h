/*
 * config.h: the [security] configuration, with TiKV's key names, bound through cfg.h, and the
 * translation into the options of each security building block.
 *
 * Keys (TiKV's unless marked "ours"):
 *   security.ca-path, cert-path, key-path          mutual TLS: all three or none
 *   security.cert-allowed-cn                       exact common names allowed to call
 *   security.cert-allowed-san                      exact SANs allowed to call (ours)
 *   security.audit-log                             audit log path ("" = off) (ours)
 *   security.audit-log-sync                        "always" | "interval" | "off" (ours)
 *   security.auth-failure-burst, auth-failure-window, auth-ban-duration,
 *   security.auth-tracked-addresses                brute-force guard (ours)
 *   security.encryption.data-encryption-method     plaintext | aes128-ctr | aes192-ctr |
 *                                                  aes256-ctr
 *   security.encryption.data-key-rotation-period   "7d"
 *   security.encryption.master-key.type, .path     type "file" (64 hex digits) or
 *                                                  "plaintext" (no master key: encryption off)
 *   security.encryption.previous-master-key.type, .path   for master-key rotation
 *
 * Owns: nothing beyond the bound struct (release it with tkv_cfg_unbind over
 * sec_config_fields). Threads: plain functions. Errors: TKV_ECONFIG with the reason in the
 * caller's buffer.
 * Dependencies: base (cfg), the security headers.
 *
 * Usage (in a server's start-up, next to its own fields):
 *     sec_config sc;
 *     rc = tkv_cfg_bind(doc, sec_config_fields, SEC_CONFIG_N_FIELDS, &sc, NULL, NULL, err);
 *     if (rc == 0) rc = sec_config_validate(&sc, err);
 *     if (rc == 0 && sec_config_encryption_on(&sc)) rc = sec_config_enc_opts(&sc, dir, &eo, err);
 *     ...
 *     tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &sc);
 */
#ifndef TKV_SEC_CONFIG_H
#define TKV_SEC_CONFIG_H

#include "base/cfg.h"
#include "security/audit.h"
#include "security/encryption.h"
#include "security/guard.h"

/* The bound [security] section. Strings are NULL or owned (tkv_cfg_unbind releases them). */
typedef struct sec_config {
    char *ca_path;
    char *cert_path;
    char *key_path;
    tkv_cfg_strlist cert_allowed_cn;
    tkv_cfg_strlist cert_allowed_san;
    char *audit_log;
    char *audit_log_sync;
    uint64_t auth_failure_burst;
    uint64_t auth_failure_window_ms;
    uint64_t auth_ban_duration_ms;
    uint64_t auth_tracked_addresses;
    char *data_encryption_method;
    uint64_t data_key_rotation_period_ms;
    char *master_key_type;
    char *master_key_path;
    char *previous_master_key_type;
    char *previous_master_key_path;
} sec_config;

/* The binding table for sec_config (defaults as TiKV's where TiKV has the key). */
extern const tkv_cfg_field sec_config_fields[];
#define SEC_CONFIG_N_FIELDS 17

/* Checks the combination of settings: TLS paths all or none, allow-lists only with TLS, a
 * known encryption method, master key type "file" with a path whenever a method encrypts,
 * and a previous master key only next to a master key. Errors: TKV_ECONFIG. */
TKV_MUST_USE int sec_config_validate(const sec_config *c, char err[TKV_ERRMSG_LEN]);

/* Returns true when the configuration needs the key dictionary: a method that encrypts, or a
 * file master key (to keep reading files encrypted earlier after switching to plaintext). */
bool sec_config_encryption_on(const sec_config *c);

/* Fills @o for sec_keys_open with the dictionary in @dict_dir (usually the data directory).
 * The strings in @o point into @c and @dict_dir. Errors: TKV_ECONFIG. */
TKV_MUST_USE int sec_config_enc_opts(const sec_config *c, const char *dict_dir, sec_enc_opts *o,
                                     char err[TKV_ERRMSG_LEN]);

/* Fills @o for sec_audit_open; returns false when the audit log is off. */
bool sec_config_audit_opts(const sec_config *c, sec_audit_opts *o);

/* Fills @o for sec_guard_new. */
void sec_config_guard_opts(const sec_config *c, sec_guard_opts *o);

#endif /* TKV_SEC_CONFIG_H */
