/*
 * config.c: tikv-server's configuration: TiKV's TOML keys and defaults for what tikv-c
 * supports, TiKV's command-line flags, validation naming the key, and the JSON /config serves
 * (see server.h).
 *
 * Adding a setting: a member in the right srv_config_* struct of server.h, one line in
 * srv_config_fields below (TiKV's key, kind, default as a TOML value, optional check), and,
 * when it depends on others, a line in derive() or validate(). The JSON, the unknown-key
 * warnings and the error messages follow from the table.
 */
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "server/server.h"

/* ---- field checks ------------------------------------------------------------------------ */

static int check_nonempty(const void *field, char *msg, size_t cap)
{
    const char *s = *(char *const *)field;
    if (s != NULL && s[0] != '\0')
        return 0;
    snprintf(msg, cap, "must not be empty");
    return 1;
}

static int check_positive_int(const void *field, char *msg, size_t cap)
{
    if (*(const int *)field >= 1)
        return 0;
    snprintf(msg, cap, "must be at least 1");
    return 1;
}

static int check_positive_u64(const void *field, char *msg, size_t cap)
{
    if (*(const uint64_t *)field >= 1)
        return 0;
    snprintf(msg, cap, "must be greater than 0");
    return 1;
}

static int check_api_version(const void *field, char *msg, size_t cap)
{
    int v = *(const int *)field;
    if (v == 1)
        return 0;
    if (v == 2)
        snprintf(msg, cap, "API V2 is not supported by tikv-c (use 1, with enable-ttl for TTL)");
    else
        snprintf(msg, cap, "must be 1 or 2, got %d", v);
    return 1;
}

static int check_redact(const void *field, char *msg, size_t cap)
{
    const char *s = *(char *const *)field;
    tkv_log_redact mode;
    if (s != NULL && tkv_log_parse_redact(s, &mode) == 0)
        return 0;
    snprintf(msg, cap, "expected false, true or \"marker\"");
    return 1;
}

static int check_log_level(const void *field, char *msg, size_t cap)
{
    const char *s = *(char *const *)field;
    tkv_log_level l;
    if (s == NULL || tkv_log_parse_level(s, &l) == 0)
        return 0;
    snprintf(msg, cap, "unknown log level '%.32s' (trace, debug, info, warn, error, fatal)", s);
    return 1;
}

/* ---- the table -------------------------------------------------------------------------- */

#define F(key, kind, member, def, check) TKV_CFG_FIELD(key, kind, srv_config, member, def, check)

const tkv_cfg_field srv_config_fields[] = {
    F("log-level", STR, log_level_deprecated, NULL, check_log_level),
    F("log-file", STR, log_file_deprecated, NULL, NULL),

    F("server.addr", STR, server.addr, "\"127.0.0.1:20160\"", check_nonempty),
    F("server.status-addr", STR, server.status_addr, "\"127.0.0.1:20180\"", check_nonempty),
    F("server.advertise-addr", STR, server.advertise_addr, "\"\"", NULL),
    F("server.advertise-status-addr", STR, server.advertise_status_addr, "\"\"", NULL),
    F("server.grpc-concurrency", INT, server.grpc_concurrency, "5", check_positive_int),
    F("server.max-grpc-send-msg-len", SIZE, server.max_grpc_send_msg_len, "\"10MiB\"",
      check_positive_u64),
    F("server.max-grpc-recv-msg-len", SIZE, server.max_grpc_recv_msg_len, "\"256MiB\"",
      check_positive_u64),
    F("server.grpc-concurrent-stream", INT, server.grpc_concurrent_stream, "1024",
      check_positive_int),
    F("server.grpc-memory-pool-quota", SIZE, server.grpc_memory_pool_quota, "\"0\"", NULL),
    F("server.grpc-max-connection-idle", DURATION, server.grpc_max_connection_idle_ms, "\"0s\"",
      NULL),
    F("server.grpc-max-connections", INT, server.grpc_max_connections, "10000", check_positive_int),
    F("server.grpc-max-connections-per-address", INT, server.grpc_max_connections_per_address,
      "1000", check_positive_int),
    F("server.grpc-keepalive-time", DURATION, server.grpc_keepalive_time_ms, "\"10s\"",
      check_positive_u64),
    F("server.grpc-keepalive-timeout", DURATION, server.grpc_keepalive_timeout_ms, "\"3s\"",
      check_positive_u64),

    F("storage.data-dir", STR, storage.data_dir, "\"./\"", check_nonempty),
    F("storage.enable-ttl", BOOL, storage.enable_ttl, "false", NULL),
    F("storage.api-version", INT, storage.api_version, "1", check_api_version),
    F("storage.scheduler-concurrency", U64, storage.scheduler_concurrency, "524288",
      check_positive_u64),
    F("storage.reserve-space", SIZE, storage.reserve_space_bytes, "\"5GiB\"", NULL),
    F("storage.max-key-size", U64, storage.max_key_size, "8192", check_positive_u64),
    F("storage.max-batch-keys", U64, storage.max_batch_keys, "100000", check_positive_u64),
    F("storage.max-scan-limit", U64, storage.max_scan_limit, "100000", check_positive_u64),

    F("raftstore.capacity", SIZE, raftstore.capacity_bytes, "0", NULL),
    F("raftstore.raft-base-tick-interval", DURATION, raftstore.raft_base_tick_interval_ms, "\"1s\"",
      check_positive_u64),
    F("raftstore.raft-heartbeat-ticks", U64, raftstore.raft_heartbeat_ticks, "2",
      check_positive_u64),
    F("raftstore.raft-election-timeout-ticks", U64, raftstore.raft_election_timeout_ticks, "10",
      check_positive_u64),
    F("raftstore.raft-log-gc-threshold", U64, raftstore.raft_log_gc_threshold, "50",
      check_positive_u64),
    /* 0 (unset) derives TiKV's default from the split size. */
    F("raftstore.raft-log-gc-count-limit", U64, raftstore.raft_log_gc_count_limit, NULL, NULL),
    F("raftstore.raft-entry-max-size", SIZE, raftstore.raft_entry_max_size, "\"8MiB\"",
      check_positive_u64),
    F("raftstore.region-split-check-diff", SIZE, raftstore.region_split_check_diff, NULL, NULL),
    F("raftstore.split-region-check-tick-interval", DURATION,
      raftstore.split_region_check_tick_interval_ms, "\"10s\"", check_positive_u64),
    F("raftstore.pd-heartbeat-tick-interval", DURATION, raftstore.pd_heartbeat_tick_interval_ms,
      "\"1m\"", check_positive_u64),
    F("raftstore.pd-store-heartbeat-tick-interval", DURATION,
      raftstore.pd_store_heartbeat_tick_interval_ms, "\"10s\"", check_positive_u64),
    F("raftstore.raft-log-gc-tick-interval", DURATION, raftstore.raft_log_gc_tick_interval_ms,
      "\"3s\"", check_positive_u64),
    /* 0 (unset) derives TiKV's default from the split size. */
    F("raftstore.raft-log-gc-size-limit", SIZE, raftstore.raft_log_gc_size_limit, NULL, NULL),
    F("raftstore.max-peer-down-duration", DURATION, raftstore.max_peer_down_duration_ms, "\"10m\"",
      check_positive_u64),
    F("raftstore.sync-log", BOOL, raftstore.sync_log, "true", NULL),
    F("raftstore.hibernate-regions", BOOL, raftstore.hibernate_regions, "false", NULL),

    F("coprocessor.region-split-size", SIZE, coprocessor.region_split_size, "\"96MiB\"",
      check_positive_u64),
    /* 0 (unset) derives TiKV's defaults from the split size. */
    F("coprocessor.region-max-size", SIZE, coprocessor.region_max_size, NULL, NULL),
    F("coprocessor.region-split-keys", U64, coprocessor.region_split_keys, NULL, NULL),
    F("coprocessor.region-max-keys", U64, coprocessor.region_max_keys, NULL, NULL),

    F("gc.poll-safe-point-interval", DURATION, gc.poll_safe_point_interval_ms, "\"10s\"",
      check_positive_u64),

    F("pd.endpoints", STRLIST, pd.endpoints, "[\"127.0.0.1:2379\"]", NULL),

    F("security.ca-path", STR, security.ca_path, "\"\"", NULL),
    F("security.cert-path", STR, security.cert_path, "\"\"", NULL),
    F("security.key-path", STR, security.key_path, "\"\"", NULL),
    F("security.cert-allowed-cn", STRLIST, security.cert_allowed_cn, "[]", NULL),
    F("security.redact-info-log", BOOLSTR, security.redact_info_log, "false", check_redact),
    /* Ours (cert-allowed-san, audit-log and the guard's keys are in sec_config_fields): */
    F("security.authorization", BOOL, security.authorization, "false", NULL),
    F("security.cert-allowed-peer-cn", STRLIST, security.cert_allowed_peer_cn, "[]", NULL),

    F("rocksdb.defaultcf.write-buffer-size", SIZE, rocksdb.kv_write_buffer_bytes, "\"64MiB\"",
      check_positive_u64),
    F("raftdb.defaultcf.write-buffer-size", SIZE, rocksdb.raft_write_buffer_bytes, "\"64MiB\"",
      check_positive_u64),

    F("log.level", STR, log.level, "\"info\"", check_log_level),
    F("log.file.filename", STR, log.file_filename, "\"\"", NULL),
};

const size_t srv_config_nfields = TKV_ARRAY_LEN(srv_config_fields);

/* srv_config_fields followed by sec_config_fields moved into srv_config.sec: one table, so
 * one bind sees every key (no unknown-key warning for [security.encryption]) and /config
 * shows them all. Built once; read-only afterwards. */
#define ALL_NFIELDS (TKV_ARRAY_LEN(srv_config_fields) + SEC_CONFIG_N_FIELDS)
static tkv_cfg_field all_fields[ALL_NFIELDS];
static pthread_once_t all_fields_once = PTHREAD_ONCE_INIT;

static void all_fields_build(void)
{
    memcpy(all_fields, srv_config_fields, sizeof(srv_config_fields));
    for (size_t i = 0; i < SEC_CONFIG_N_FIELDS; i++) {
        tkv_cfg_field f = sec_config_fields[i];
        f.offset += offsetof(srv_config, sec);
        all_fields[TKV_ARRAY_LEN(srv_config_fields) + i] = f;
    }
}

static const tkv_cfg_field *fields_all(void)
{
    pthread_once(&all_fields_once, all_fields_build);
    return all_fields;
}

/* ---- binding ----------------------------------------------------------------------------- */

static int config_fail(char *errmsg, const char *fmt, ...) TKV_PRINTF(2, 3);

static int config_fail(char *errmsg, const char *fmt, ...)
{
    if (errmsg != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errmsg, TKV_ERRMSG_LEN, fmt, ap);
        va_end(ap);
    }
    return TKV_ECONFIG;
}

/* Replaces the string at @dst with a copy of @src. Errors: -ENOMEM. */
static int replace_str(char **dst, const char *src)
{
    char *copy = tkv_strdup(src);
    if (copy == NULL)
        return -ENOMEM;
    tkv_free(*dst);
    *dst = copy;
    return 0;
}

/* Points a new NULL-terminated array at the items of @l (the strings stay owned by @l). */
static int null_terminated(const tkv_cfg_strlist *l, const char ***out)
{
    *out = tkv_calloc(l->len + 1, sizeof(char *));
    if (*out == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < l->len; i++)
        (*out)[i] = l->items[i];
    return 0;
}

/* Fills the settings TiKV derives from others when they are not set. */
static int derive(srv_config *c)
{
    srv_config_coprocessor *cp = &c->coprocessor;
    double split_mb = (double)cp->region_split_size / (1024.0 * 1024.0);
    if (cp->region_max_size == 0)
        cp->region_max_size = cp->region_split_size / 2 * 3;
    if (cp->region_split_keys == 0)
        cp->region_split_keys = (uint64_t)(split_mb * 10000.0);
    if (cp->region_max_keys == 0)
        cp->region_max_keys = (uint64_t)(split_mb * 10000.0) / 2 * 3;
    srv_config_raftstore *rs = &c->raftstore;
    if (rs->raft_log_gc_count_limit == 0)
        rs->raft_log_gc_count_limit = cp->region_split_size * 3 / 4 / 1024;
    if (rs->raft_log_gc_size_limit == 0)
        rs->raft_log_gc_size_limit = cp->region_split_size * 3 / 4;
    if (rs->region_split_check_diff == 0)
        rs->region_split_check_diff = cp->region_split_size / 16;
    /* The deprecated top-level keys win when set (TiKV's compatible_adjust). */
    int rc = 0;
    if (c->log_level_deprecated != NULL)
        rc = replace_str(&c->log.level, c->log_level_deprecated);
    if (rc == 0 && c->log_file_deprecated != NULL)
        rc = replace_str(&c->log.file_filename, c->log_file_deprecated);
    /* rpc takes the allowed names as NULL-terminated arrays. */
    srv_config_security *sec = &c->security;
    if (rc == 0)
        rc = null_terminated(&sec->cert_allowed_cn, &sec->cert_allowed_cn_nt);
    if (rc == 0)
        rc = null_terminated(&c->sec.cert_allowed_san, &sec->cert_allowed_san_nt);
    if (rc == 0)
        rc = null_terminated(&sec->cert_allowed_peer_cn, &sec->cert_allowed_peer_cn_nt);
    if (rc == 0)
        rc = tkv_log_parse_redact(sec->redact_info_log, &sec->redact_mode) == 0 ? 0 : TKV_ECONFIG;
    return rc;
}

/* Checks what no single field can check alone; messages name the keys. */
static int validate(const srv_config *c, char *errmsg)
{
    const srv_config_raftstore *rs = &c->raftstore;
    const srv_config_coprocessor *cp = &c->coprocessor;
    if (rs->raft_election_timeout_ticks <= rs->raft_heartbeat_ticks)
        return config_fail(errmsg,
                           "raftstore.raft-election-timeout-ticks: must be greater than "
                           "raftstore.raft-heartbeat-ticks (%llu <= %llu)",
                           (unsigned long long)rs->raft_election_timeout_ticks,
                           (unsigned long long)rs->raft_heartbeat_ticks);
    if (cp->region_max_size < cp->region_split_size)
        return config_fail(errmsg, "coprocessor.region-max-size: must not be less than "
                                   "coprocessor.region-split-size");
    if (cp->region_max_keys < cp->region_split_keys)
        return config_fail(errmsg, "coprocessor.region-max-keys: must not be less than "
                                   "coprocessor.region-split-keys");
    if (c->server.max_grpc_send_msg_len > INT_MAX)
        return config_fail(errmsg, "server.max-grpc-send-msg-len: must be below 2GiB");
    if (c->storage.scheduler_concurrency > (1u << 30))
        return config_fail(errmsg, "storage.scheduler-concurrency: must not exceed 1073741824");
    const srv_config_security *sec = &c->security;
    bool cert = sec->cert_path[0] != '\0', key = sec->key_path[0] != '\0';
    if (cert != key)
        return config_fail(errmsg, "security.%s: cert-path and key-path must be set together",
                           cert ? "key-path" : "cert-path");
    if (sec->ca_path[0] != '\0' && !cert)
        return config_fail(errmsg, "security.cert-path: ca-path needs cert-path and key-path");
    if (sec->cert_allowed_cn.len > 0 && sec->ca_path[0] == '\0')
        return config_fail(errmsg, "security.cert-allowed-cn: needs security.ca-path (mutual "
                                   "TLS)");
    if (sec->authorization && sec->ca_path[0] == '\0')
        return config_fail(errmsg, "security.authorization: needs mutual TLS (security.ca-path, "
                                   "cert-path, key-path): callers are named by their certificate");
    if (sec->cert_allowed_peer_cn.len > 0 && sec->ca_path[0] == '\0')
        return config_fail(errmsg, "security.cert-allowed-peer-cn: needs security.ca-path "
                                   "(mutual TLS)");
    if (c->server.max_grpc_recv_msg_len > INT_MAX)
        return config_fail(errmsg, "server.max-grpc-recv-msg-len: must be below 2GiB");
    if (c->server.grpc_memory_pool_quota > (uint64_t)INT64_MAX)
        return config_fail(errmsg, "server.grpc-memory-pool-quota: too large");
    int rc = sec_config_validate(&c->sec, errmsg);
    if (rc != 0)
        return rc;
    if (c->pd.endpoints.len == 0)
        return config_fail(errmsg, "pd.endpoints: must not be empty");
    for (size_t i = 0; i < c->pd.endpoints.len; i++) {
        if (c->pd.endpoints.items[i][0] == '\0')
            return config_fail(errmsg, "pd.endpoints: an endpoint is empty");
    }
    return 0;
}

int srv_config_bind(srv_config *cfg, const tkv_cfg_doc *doc, tkv_cfg_warn_fn warn, void *warn_arg,
                    char *errmsg)
{
    memset(cfg, 0, sizeof(*cfg));
    int rc = tkv_cfg_bind(doc, fields_all(), ALL_NFIELDS, cfg, warn, warn_arg, errmsg);
    if (rc != 0)
        return rc;
    rc = derive(cfg);
    if (rc == 0)
        rc = validate(cfg, errmsg);
    if (rc == -ENOMEM)
        config_fail(errmsg, "out of memory");
    if (rc != 0)
        srv_config_free(cfg);
    return rc;
}

void srv_config_free(srv_config *cfg)
{
    tkv_cfg_unbind(fields_all(), ALL_NFIELDS, cfg);
    tkv_free(cfg->security.cert_allowed_cn_nt);
    cfg->security.cert_allowed_cn_nt = NULL;
    tkv_free(cfg->security.cert_allowed_san_nt);
    cfg->security.cert_allowed_san_nt = NULL;
    tkv_free(cfg->security.cert_allowed_peer_cn_nt);
    cfg->security.cert_allowed_peer_cn_nt = NULL;
}

/* ---- command line ------------------------------------------------------------------------ */

/* How a flag's value becomes TOML. */
typedef enum flag_kind { FLAG_STRING, FLAG_LIST, FLAG_CONFIG, FLAG_HELP } flag_kind;

typedef struct flag {
    const char *name;  /* long name, without "--" */
    const char *alias; /* another long name, or NULL */
    char shrt;         /* short name, or 0 */
    flag_kind kind;
    const char *keys[2]; /* the configuration keys it sets */
    const char *help;
} flag;

static const flag flags[] = {
    {"config", NULL, 'C', FLAG_CONFIG, {NULL}, "configuration file (TOML, TiKV's keys)"},
    {"pd", "pd-endpoints", 0, FLAG_LIST, {"pd.endpoints"}, "PD endpoints, comma-separated"},
    {"addr", NULL, 'A', FLAG_STRING, {"server.addr"}, "gRPC listening address"},
    {"advertise-addr",
     NULL,
     0,
     FLAG_STRING,
     {"server.advertise-addr"},
     "gRPC address advertised to PD and clients"},
    {"status-addr", NULL, 0, FLAG_STRING, {"server.status-addr"}, "status HTTP address"},
    {"advertise-status-addr",
     NULL,
     0,
     FLAG_STRING,
     {"server.advertise-status-addr"},
     "status address advertised to PD"},
    {"data-dir", NULL, 's', FLAG_STRING, {"storage.data-dir"}, "data directory"},
    {"log-level",
     NULL,
     'L',
     FLAG_STRING,
     {"log.level", "log-level"},
     "trace, debug, info, warn, error or fatal"},
    {"log-file",
     NULL,
     'f',
     FLAG_STRING,
     {"log.file.filename", "log-file"},
     "log file (default: stderr)"},
    {"capacity",
     NULL,
     0,
     FLAG_STRING,
     {"raftstore.capacity"},
     "store capacity reported to PD (e.g. 10GB; 0 = the disk's)"},
    {"help", NULL, 'h', FLAG_HELP, {NULL}, "print this help"},
};

void srv_config_usage(FILE *out, const char *prog)
{
    fprintf(out, "Usage: %s [OPTIONS]\n\ntikv-c storage node (TiKV-compatible).\n\nOptions:\n",
            prog);
    for (size_t i = 0; i < TKV_ARRAY_LEN(flags); i++) {
        const flag *f = &flags[i];
        char names[64];
        if (f->shrt != 0)
            snprintf(names, sizeof(names), "-%c, --%s", f->shrt, f->name);
        else
            snprintf(names, sizeof(names), "    --%s", f->name);
        fprintf(out, "  %-28s %s%s\n", names, f->kind == FLAG_HELP ? "" : "<value>  ", f->help);
    }
    fprintf(out, "\nFlags override the configuration file.\n");
}

static const flag *find_flag(const char *arg, const char **inline_value)
{
    *inline_value = NULL;
    if (arg[0] == '-' && arg[1] != '-' && arg[1] != '\0' && arg[2] == '\0') {
        for (size_t i = 0; i < TKV_ARRAY_LEN(flags); i++)
            if (flags[i].shrt == arg[1])
                return &flags[i];
        return NULL;
    }
    if (strncmp(arg, "--", 2) != 0)
        return NULL;
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    for (size_t i = 0; i < TKV_ARRAY_LEN(flags); i++) {
        const flag *f = &flags[i];
        if ((strlen(f->name) == len && strncmp(f->name, name, len) == 0) ||
            (f->alias != NULL && strlen(f->alias) == len && strncmp(f->alias, name, len) == 0)) {
            if (eq != NULL)
                *inline_value = eq + 1;
            return f;
        }
    }
    return NULL;
}

/* Appends @s as a TOML basic string. Errors: -ENOMEM. */
static int toml_string(tkv_buf *b, const char *s, size_t len)
{
    int rc = tkv_buf_append_u8(b, '"');
    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = tkv_buf_append(b, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            rc = tkv_buf_append(b, esc, 6);
        } else {
            rc = tkv_buf_append_u8(b, c);
        }
    }
    if (rc == 0)
        rc = tkv_buf_append_u8(b, '"');
    return rc;
}

/* Builds "key=<value as TOML>" for flag @f. Errors: -ENOMEM. */
static int flag_assignment(const flag *f, const char *key, const char *value, tkv_buf *out)
{
    tkv_buf_reset(out);
    int rc = tkv_buf_append(out, key, strlen(key));
    if (rc == 0)
        rc = tkv_buf_append_u8(out, '=');
    if (rc == 0 && f->kind == FLAG_LIST) {
        /* "a,b" -> ["a", "b"], skipping empty items and spaces around them. */
        rc = tkv_buf_append_u8(out, '[');
        const char *p = value;
        bool first = true;
        while (rc == 0 && *p != '\0') {
            const char *end = strchr(p, ',');
            size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
            const char *s = p;
            size_t n = len;
            while (n > 0 && *s == ' ')
                s++, n--;
            while (n > 0 && s[n - 1] == ' ')
                n--;
            if (n > 0) {
                if (!first)
                    rc = tkv_buf_append_u8(out, ',');
                if (rc == 0)
                    rc = toml_string(out, s, n);
                first = false;
            }
            p += len;
            if (*p == ',')
                p++;
        }
        if (rc == 0)
            rc = tkv_buf_append_u8(out, ']');
    } else if (rc == 0) {
        rc = toml_string(out, value, strlen(value));
    }
    if (rc == 0)
        rc = tkv_buf_append_u8(out, '\0');
    return rc;
}

/* Applies every flag of the command line except --config to @doc. */
static int apply_flags(tkv_cfg_doc *doc, int argc, char *const argv[], char *errmsg)
{
    tkv_buf a;
    tkv_buf_init(&a);
    int rc = 0;
    for (int i = 1; rc == 0 && i < argc; i++) {
        const char *value;
        const flag *f = find_flag(argv[i], &value);
        if (f->kind == FLAG_HELP)
            continue;
        if (value == NULL)
            value = argv[++i];
        if (f->kind == FLAG_CONFIG)
            continue;
        for (size_t k = 0; rc == 0 && k < TKV_ARRAY_LEN(f->keys) && f->keys[k] != NULL; k++) {
            rc = flag_assignment(f, f->keys[k], value, &a);
            char cause[TKV_ERRMSG_LEN];
            if (rc == 0)
                rc = tkv_cfg_set(doc, (const char *)a.data, cause);
            if (rc != 0 && rc != -ENOMEM)
                config_fail(errmsg, "--%s: %s", f->name, cause);
        }
    }
    tkv_buf_deinit(&a);
    return rc;
}

int srv_config_from_args(srv_config *cfg, int argc, char *const argv[], bool *help,
                         tkv_cfg_warn_fn warn, void *warn_arg, char *errmsg)
{
    memset(cfg, 0, sizeof(*cfg));
    *help = false;
    const char *config_path = NULL;
    /* First pass: validate the command line, find --config and --help. */
    for (int i = 1; i < argc; i++) {
        const char *value;
        const flag *f = find_flag(argv[i], &value);
        if (f == NULL)
            return config_fail(errmsg, "unknown option '%.64s' (see --help)", argv[i]);
        if (f->kind == FLAG_HELP) {
            *help = true;
            return 0;
        }
        if (value == NULL) {
            if (i + 1 >= argc)
                return config_fail(errmsg, "option --%s needs a value", f->name);
            value = argv[++i];
        }
        if (f->kind == FLAG_CONFIG)
            config_path = value;
    }
    tkv_cfg_doc *doc;
    int rc = config_path != NULL ? tkv_cfg_load(config_path, &doc, errmsg) : tkv_cfg_new(&doc);
    if (rc != 0) {
        if (rc == -ENOMEM)
            config_fail(errmsg, "out of memory");
        return rc == -ENOMEM ? rc : TKV_ECONFIG;
    }
    rc = apply_flags(doc, argc, argv, errmsg);
    if (rc == 0)
        rc = srv_config_bind(cfg, doc, warn, warn_arg, errmsg);
    else if (rc == -ENOMEM)
        config_fail(errmsg, "out of memory");
    tkv_cfg_free(doc);
    return rc;
}

/* ---- using the configuration ------------------------------------------------------------- */

/* Sets @path ("a.b.c") in the JSON object @root to @v, creating the objects on the way. */
static int json_put(json_t *root, const char *path, json_t *v)
{
    if (v == NULL)
        return -ENOMEM;
    json_t *o = root;
    const char *p = path;
    for (const char *dot; (dot = strchr(p, '.')) != NULL; p = dot + 1) {
        char part[64];
        snprintf(part, sizeof(part), "%.*s", (int)(dot - p), p);
        json_t *next = json_object_get(o, part);
        if (next == NULL) {
            next = json_object();
            if (next == NULL || json_object_set_new(o, part, next) != 0) {
                json_decref(v);
                return -ENOMEM;
            }
        }
        o = next;
    }
    return json_object_set_new(o, p, v) == 0 ? 0 : -ENOMEM;
}

static json_t *field_json(const tkv_cfg_field *f, const void *member)
{
    char buf[TKV_CFG_FMT_LEN];
    switch (f->kind) {
    case TKV_CFG_K_BOOL:
        return json_boolean(*(const bool *)member);
    case TKV_CFG_K_INT:
        return json_integer(*(const int *)member);
    case TKV_CFG_K_I64:
        return json_integer(*(const int64_t *)member);
    case TKV_CFG_K_U64:
        return json_integer((json_int_t) * (const uint64_t *)member);
    case TKV_CFG_K_F64:
        return json_real(*(const double *)member);
    case TKV_CFG_K_STR: {
        const char *s = *(char *const *)member;
        return json_string(s != NULL ? s : "");
    }
    case TKV_CFG_K_BOOLSTR: {
        /* As TiKV prints such keys: a boolean when it is one, else the string. */
        const char *s = *(char *const *)member;
        if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0))
            return json_boolean(s[0] == 't');
        return json_string(s != NULL ? s : "");
    }
    case TKV_CFG_K_STRLIST: {
        const tkv_cfg_strlist *l = member;
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < l->len; i++) {
            if (json_array_append_new(a, json_string(l->items[i])) != 0) {
                json_decref(a);
                a = NULL;
            }
        }
        return a;
    }
    case TKV_CFG_K_SIZE:
        tkv_cfg_format_size(*(const uint64_t *)member, buf, sizeof(buf));
        return json_string(buf);
    case TKV_CFG_K_DURATION:
        tkv_cfg_format_duration(*(const uint64_t *)member, buf, sizeof(buf));
        return json_string(buf);
    }
    return NULL;
}

int srv_config_to_json(const srv_config *cfg, tkv_buf *out)
{
    json_t *root = json_object();
    int rc = root != NULL ? 0 : -ENOMEM;
    const tkv_cfg_field *fields = fields_all();
    for (size_t i = 0; rc == 0 && i < ALL_NFIELDS; i++) {
        const tkv_cfg_field *f = &fields[i];
        /* The deprecated top-level keys were folded into [log]. */
        if (f->offset == offsetof(srv_config, log_level_deprecated) ||
            f->offset == offsetof(srv_config, log_file_deprecated))
            continue;
        rc = json_put(root, f->key, field_json(f, (const char *)cfg + f->offset));
    }
    char *text = rc == 0 ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (text == NULL)
        return -ENOMEM;
    /* The text and a NUL that out->len does not count, so out->data is a C string. */
    size_t len = strlen(text);
    rc = tkv_buf_reserve(out, len + 1);
    if (rc == 0) {
        memcpy(out->data + out->len, text, len + 1);
        out->len += len;
    }
    free(text);
    return rc;
}

void srv_config_stor_opts(const srv_config *cfg, stor_opts *o)
{
    stor_opts_init(o);
    o->enable_ttl = cfg->storage.enable_ttl;
    o->latch_slots = (size_t)cfg->storage.scheduler_concurrency;
    o->max_key_bytes = (size_t)cfg->storage.max_key_size;
    o->max_value_bytes = (size_t)cfg->raftstore.raft_entry_max_size;
    o->max_batch_keys = (size_t)cfg->storage.max_batch_keys;
    o->max_scan_limit = (size_t)cfg->storage.max_scan_limit;
}

static const char *or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

void srv_config_rpc_opts(const srv_config *cfg, rpc_server_opts *o, rpc_tls *tls)
{
    rpc_server_opts_init(o);
    o->addr = cfg->server.addr;
    o->cq_threads = cfg->server.grpc_concurrency;
    o->max_send_msg_bytes = (int)cfg->server.max_grpc_send_msg_len;
    o->max_recv_msg_bytes = (int)cfg->server.max_grpc_recv_msg_len;
    o->max_concurrent_streams = cfg->server.grpc_concurrent_stream;
    o->memory_quota_bytes = (int64_t)cfg->server.grpc_memory_pool_quota;
    o->max_connection_idle_ms =
        (int)TKV_MIN(cfg->server.grpc_max_connection_idle_ms, (uint64_t)INT_MAX);
    o->handshake_timeout_ms = 10000; /* a connection must finish TCP+TLS+HTTP/2 within 10 s */
    o->max_connections = cfg->server.grpc_max_connections;
    o->max_connections_per_addr = cfg->server.grpc_max_connections_per_address;
    o->keepalive_time_ms = (int)TKV_MIN(cfg->server.grpc_keepalive_time_ms, (uint64_t)INT_MAX);
    o->keepalive_timeout_ms =
        (int)TKV_MIN(cfg->server.grpc_keepalive_timeout_ms, (uint64_t)INT_MAX);
    tls->ca_path = or_null(cfg->security.ca_path);
    tls->cert_path = or_null(cfg->security.cert_path);
    tls->key_path = or_null(cfg->security.key_path);
    if (tls->cert_path != NULL)
        o->tls = tls;
    if (cfg->security.cert_allowed_cn.len > 0)
        o->cert_allowed_cn = cfg->security.cert_allowed_cn_nt;
    if (cfg->sec.cert_allowed_san.len > 0)
        o->cert_allowed_san = cfg->security.cert_allowed_san_nt;
}

int srv_config_apply_log(const srv_config *cfg, char *errmsg)
{
    tkv_log_level level;
    if (tkv_log_parse_level(cfg->log.level, &level) != 0)
        return config_fail(errmsg, "log.level: unknown log level '%.32s'", cfg->log.level);
    tkv_log_set_level(level);
    tkv_log_set_redact(cfg->security.redact_mode);
    if (cfg->log.file_filename != NULL && cfg->log.file_filename[0] != '\0') {
        int rc = tkv_log_open_file(cfg->log.file_filename);
        if (rc != 0) {
            config_fail(errmsg, "log.file.filename: cannot open '%.128s': %s",
                        cfg->log.file_filename, tkv_strerror(rc));
            return rc;
        }
    }
    return 0;
}
