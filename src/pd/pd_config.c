/*
 * pd_config.c: pd-server's configuration: defaults, the TOML file (PD's key names), the
 * run-time settable [schedule]/[replication] items (one table drives the file, the HTTP
 * API's GET and POST, and the persisted overrides), and validation.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>

#include "base/cfg.h"
#include "base/log.h"
#include "pd/pd_int.h"

typedef enum item_kind {
    K_U64,
    K_DURATION,
    K_LABELS,
} item_kind;

typedef struct sched_item {
    const char *section;
    const char *key;
    item_kind kind;
    size_t off;
    uint64_t min; /* smallest accepted value (numbers and durations) */
} sched_item;

#define ITEM(sec, key, kind, member, min)                                                          \
    {                                                                                              \
        sec, key, kind, offsetof(pd_sched_cfg, member), min                                        \
    }

static const sched_item items[] = {
    ITEM("schedule", "max-snapshot-count", K_U64, max_snapshot_count, 1),
    ITEM("schedule", "max-pending-peer-count", K_U64, max_pending_peer_count, 1),
    ITEM("schedule", "split-merge-interval", K_DURATION, split_merge_interval_ms, 0),
    ITEM("schedule", "patrol-region-interval", K_DURATION, patrol_region_interval_ms, 1),
    ITEM("schedule", "max-store-down-time", K_DURATION, max_store_down_time_ms, 1),
    ITEM("schedule", "leader-schedule-limit", K_U64, leader_schedule_limit, 0),
    ITEM("schedule", "region-schedule-limit", K_U64, region_schedule_limit, 0),
    ITEM("schedule", "replica-schedule-limit", K_U64, replica_schedule_limit, 0),
    ITEM("schedule", "fast-operator-timeout", K_DURATION, fast_operator_timeout_ms, 1),
    ITEM("schedule", "slow-operator-timeout", K_DURATION, slow_operator_timeout_ms, 1),
    ITEM("schedule", "store-disconnect-time", K_DURATION, store_disconnect_ms, 1),
    ITEM("replication", "max-replicas", K_U64, max_replicas, 1),
    ITEM("replication", "location-labels", K_LABELS, location_labels, 0),
};

void pd__sched_cfg_default(pd_sched_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->max_store_down_time_ms = 30 * 60 * 1000;
    c->leader_schedule_limit = 4;
    c->region_schedule_limit = 2048;
    c->replica_schedule_limit = 64;
    c->patrol_region_interval_ms = 10;
    c->split_merge_interval_ms = 60 * 60 * 1000;
    c->max_snapshot_count = 64;
    c->max_pending_peer_count = 64;
    c->fast_operator_timeout_ms = 10 * 1000;
    c->slow_operator_timeout_ms = 10 * 60 * 1000;
    c->store_disconnect_ms = 20 * 1000;
    c->max_replicas = 3;
}

void pd_config_init(pd_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "pd");
    snprintf(c->client_urls, sizeof(c->client_urls), "http://127.0.0.1:2379");
    snprintf(c->http_addr, sizeof(c->http_addr), "127.0.0.1:2381");
    c->lease_s = 3;
    c->tso_window_ms = 3000;
    snprintf(c->log_level, sizeof(c->log_level), "info");
    c->grpc_threads = 2;
    c->grpc_max_connections = 10000;
    c->grpc_max_connections_per_address = 1000;
    c->auth_failure_burst = 10;
    pd__sched_cfg_default(&c->sched);
}

void pd__fmt_go_duration(uint64_t ms, char *out, size_t cap)
{
    if (ms == 0) {
        snprintf(out, cap, "0s");
        return;
    }
    if (ms < 1000) {
        snprintf(out, cap, "%" PRIu64 "ms", ms);
        return;
    }
    uint64_t h = ms / 3600000, m = (ms / 60000) % 60, s = (ms / 1000) % 60, frac = ms % 1000;
    char sec[32];
    if (frac == 0) {
        snprintf(sec, sizeof(sec), "%" PRIu64 "s", s);
    } else {
        char f[8];
        snprintf(f, sizeof(f), "%03" PRIu64, frac);
        for (int i = 2; i > 0 && f[i] == '0'; i--)
            f[i] = '\0';
        snprintf(sec, sizeof(sec), "%" PRIu64 ".%ss", s, f);
    }
    if (h > 0)
        snprintf(out, cap, "%" PRIu64 "h%" PRIu64 "m%s", h, m, sec);
    else if (m > 0)
        snprintf(out, cap, "%" PRIu64 "m%s", m, sec);
    else
        snprintf(out, cap, "%s", sec);
}

static void vset(char *errmsg, const char *fmt, va_list ap)
{
    if (errmsg != NULL)
        vsnprintf(errmsg, TKV_ERRMSG_LEN, fmt, ap);
}

/* Sets @errmsg and returns -EINVAL (a bad run-time value). */
static TKV_PRINTF(2, 3) int fail(char *errmsg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(errmsg, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Sets @errmsg and returns TKV_ECONFIG (a bad configuration file or setting). */
static TKV_PRINTF(2, 3) int cfail(char *errmsg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(errmsg, fmt, ap);
    va_end(ap);
    return TKV_ECONFIG;
}

static const sched_item *find_item(const char *key)
{
    const char *dot = strchr(key, '.');
    for (size_t i = 0; i < TKV_ARRAY_LEN(items); i++) {
        const sched_item *it = &items[i];
        if (dot != NULL) {
            size_t sl = (size_t)(dot - key);
            if (strlen(it->section) == sl && strncmp(key, it->section, sl) == 0 &&
                strcmp(dot + 1, it->key) == 0)
                return it;
        } else if (strcmp(key, it->key) == 0) {
            return it;
        }
    }
    return NULL;
}

/* Parses a decimal u64 (a JSON number may arrive as "4" or "4.0"). */
static bool parse_u64(const char *s, uint64_t *v)
{
    if (*s == '\0' || *s == '-')
        return false;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno != 0)
        return false;
    if (*end == '.') {
        for (end++; *end == '0'; end++) {
        }
    }
    if (*end != '\0')
        return false;
    *v = x;
    return true;
}

int pd__sched_cfg_set(pd_sched_cfg *c, const char *key, const char *value,
                      char errmsg[TKV_ERRMSG_LEN])
{
    const sched_item *it = find_item(key);
    if (it == NULL) {
        if (errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "config item %s not found", key);
        return TKV_ENOTFOUND;
    }
    void *field = (char *)c + it->off;
    if (it->kind == K_LABELS) {
        size_t n = strlen(value);
        if (n >= PD_LABELS_LEN)
            return fail(errmsg, "%s.%s: too long", it->section, it->key);
        for (size_t i = 0; i < n; i++)
            if (value[i] == '"' || value[i] == '\\' || (unsigned char)value[i] < 0x20)
                return fail(errmsg, "%s.%s: invalid character in label list", it->section, it->key);
        memcpy(field, value, n + 1);
        return 0;
    }
    uint64_t v;
    if (it->kind == K_U64) {
        if (!parse_u64(value, &v))
            return fail(errmsg, "%s.%s: '%s' is not a non-negative integer", it->section, it->key,
                        value);
    } else if (strcmp(value, "0") == 0) {
        v = 0;
    } else {
        char why[TKV_ERRMSG_LEN];
        if (tkv_cfg_parse_duration(value, strlen(value), &v, why) != 0)
            return fail(errmsg, "%s.%s: bad duration '%s': %s", it->section, it->key, value, why);
    }
    if (v < it->min)
        return fail(errmsg, "%s.%s: must be at least %" PRIu64, it->section, it->key, it->min);
    if (strcmp(it->key, "max-replicas") == 0 && v > 16)
        return fail(errmsg, "replication.max-replicas: at most 16");
    *(uint64_t *)field = v;
    return 0;
}

static json_t *item_json(const pd_sched_cfg *c, const sched_item *it)
{
    const void *field = (const char *)c + it->off;
    if (it->kind == K_LABELS)
        return json_string((const char *)field);
    uint64_t v = *(const uint64_t *)field;
    if (it->kind == K_U64)
        return json_integer((json_int_t)v);
    char buf[64];
    pd__fmt_go_duration(v, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *section_json(const pd_sched_cfg *c, const char *section)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < TKV_ARRAY_LEN(items); i++) {
        if (strcmp(items[i].section, section) != 0)
            continue;
        if (json_object_set_new(o, items[i].key, item_json(c, &items[i])) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *pd__sched_cfg_json(const pd_sched_cfg *c, int which)
{
    if (which == 1)
        return section_json(c, "schedule");
    if (which == 2)
        return section_json(c, "replication");
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "schedule", section_json(c, "schedule")) != 0 ||
        json_object_set_new(o, "replication", section_json(c, "replication")) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int pd__sched_cfg_apply_json(pd_sched_cfg *c, const json_t *obj, const char *section,
                             char errmsg[TKV_ERRMSG_LEN])
{
    if (!json_is_object(obj))
        return fail(errmsg, "config must be a JSON object");
    pd_sched_cfg tmp = *c;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        char key[160];
        if (json_is_object(v) && section == NULL) {
            int rc = pd__sched_cfg_apply_json(&tmp, v, k, errmsg);
            if (rc != 0)
                return rc;
            continue;
        }
        if (section != NULL)
            snprintf(key, sizeof(key), "%s.%s", section, k);
        else
            snprintf(key, sizeof(key), "%s", k);
        char val[PD_LABELS_LEN];
        if (json_is_string(v))
            snprintf(val, sizeof(val), "%s", json_string_value(v));
        else if (json_is_integer(v) && json_integer_value(v) >= 0)
            snprintf(val, sizeof(val), "%" PRId64, (int64_t)json_integer_value(v));
        else if (json_is_real(v) && json_real_value(v) >= 0)
            snprintf(val, sizeof(val), "%.0f", json_real_value(v));
        else if (json_is_array(v)) {
            /* location-labels may come as a list of strings. */
            size_t off = 0;
            val[0] = '\0';
            for (size_t i = 0; i < json_array_size(v); i++) {
                const char *s = json_string_value(json_array_get(v, i));
                if (s == NULL)
                    return fail(errmsg, "%s: list items must be strings", key);
                int w = snprintf(val + off, sizeof(val) - off, "%s%s", i ? "," : "", s);
                if (w < 0 || (size_t)w >= sizeof(val) - off)
                    return fail(errmsg, "%s: too long", key);
                off += (size_t)w;
            }
        } else
            return fail(errmsg, "%s: unsupported value type", key);
        int rc = pd__sched_cfg_set(&tmp, key, val, errmsg);
        if (rc != 0)
            return rc;
    }
    *c = tmp;
    return 0;
}

/* ---- the TOML file --------------------------------------------------------------------- */

static const char *const top_keys[] = {
    "name",
    "data-dir",
    "client-urls",
    "http-addr",
    "lease",
    "tso-save-interval",
    "grpc-max-connections",
    "grpc-max-connections-per-address",
    "log.level",
    "log.file.filename",
    "log-level",
    "log-file",
    /* TLS branch: [security] */
    "security.cacert-path",
    "security.cert-path",
    "security.key-path",
    "security.cert-allowed-cn",
    "security.cert-allowed-san",
    "security.audit-log",
    "security.auth-failure-burst",
};

/* Reads the integer @key into *@out when present; it must be between 1 and INT32_MAX. */
static int get_positive(const tkv_cfg_doc *doc, const char *key, uint64_t *out,
                        char errmsg[TKV_ERRMSG_LEN])
{
    int64_t v;
    int r = tkv_cfg_get_int(doc, key, &v);
    if (r == 0 && v > 0 && v <= INT32_MAX)
        *out = (uint64_t)v;
    else if (r != TKV_ENOTFOUND)
        return cfail(errmsg, "%s: expected a positive integer", key);
    return 0;
}

static bool known_key(const char *path)
{
    for (size_t i = 0; i < TKV_ARRAY_LEN(top_keys); i++)
        if (strcmp(path, top_keys[i]) == 0)
            return true;
    /* [security.encryption] is bound by pd_security_open (pd_sec.c). */
    if (strncmp(path, "security.encryption", strlen("security.encryption")) == 0)
        return true;
    return strchr(path, '.') != NULL && find_item(path) != NULL;
}

/* Warns about keys PD has but tikv-c does not use (a PD config file works unchanged). */
static void warn_unknown(const tkv_cfg_value *t, const char *prefix)
{
    for (size_t i = 0; i < tkv_cfg_len(t); i++) {
        const char *k = tkv_cfg_key_at(t, i, NULL);
        const tkv_cfg_value *v = tkv_cfg_at(t, i);
        char path[256];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", k);
        if (tkv_cfg_type_of(v) == TKV_CFG_TABLE && !known_key(path)) {
            warn_unknown(v, path);
            continue;
        }
        if (!known_key(path)) {
            unsigned line = 0;
            const char *origin = tkv_cfg_origin(v, &line, NULL);
            TKV_LOG_WARN("unknown configuration key ignored", TKV_LF_STR("key", path),
                         TKV_LF_STR("file", origin), TKV_LF_U64("line", line));
        }
    }
}

static int copy_str(const tkv_cfg_doc *doc, const char *key, char *dst, size_t cap, char *errmsg)
{
    const char *s;
    size_t len;
    int rc = tkv_cfg_get_str(doc, key, &s, &len);
    if (rc == TKV_ENOTFOUND)
        return 0;
    if (rc != 0 || len >= cap || strlen(s) != len) {
        if (errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "%s: expected a string shorter than %zu bytes", key,
                     cap);
        return TKV_ECONFIG;
    }
    memcpy(dst, s, len + 1);
    return 0;
}

/* Copies the array of strings at @key into @names (at most PD_MAX_ALLOWED). */
static int copy_names(const tkv_cfg_doc *doc, const char *key,
                      char names[PD_MAX_ALLOWED][PD_ALLOWED_NAME], size_t *n, char *errmsg)
{
    const tkv_cfg_value *v = tkv_cfg_get(doc, key);
    if (v == NULL)
        return 0;
    if (tkv_cfg_type_of(v) != TKV_CFG_ARRAY || tkv_cfg_len(v) > PD_MAX_ALLOWED)
        return cfail(errmsg, "%s: expected a list of at most %d names", key, PD_MAX_ALLOWED);
    for (size_t i = 0; i < tkv_cfg_len(v); i++) {
        size_t len = 0;
        const char *s = tkv_cfg_str(tkv_cfg_at(v, i), &len);
        if (s == NULL || len == 0 || len >= PD_ALLOWED_NAME || strlen(s) != len)
            return cfail(errmsg, "%s: names must be strings of 1 to %d bytes", key,
                         PD_ALLOWED_NAME - 1);
        memcpy(names[i], s, len + 1);
    }
    *n = tkv_cfg_len(v);
    return 0;
}

static int apply_sched_value(pd_sched_cfg *c, const char *key, const tkv_cfg_value *v, char *errmsg)
{
    char val[PD_LABELS_LEN];
    switch (tkv_cfg_type_of(v)) {
    case TKV_CFG_STRING:
        snprintf(val, sizeof(val), "%s", tkv_cfg_str(v, NULL));
        break;
    case TKV_CFG_INTEGER:
        snprintf(val, sizeof(val), "%" PRId64, tkv_cfg_int(v));
        break;
    case TKV_CFG_ARRAY: {
        size_t off = 0;
        val[0] = '\0';
        for (size_t i = 0; i < tkv_cfg_len(v); i++) {
            const char *s = tkv_cfg_str(tkv_cfg_at(v, i), NULL);
            if (s == NULL)
                return cfail(errmsg, "%s: expected strings", key);
            int w = snprintf(val + off, sizeof(val) - off, "%s%s", i ? "," : "", s);
            if (w < 0 || (size_t)w >= sizeof(val) - off)
                return cfail(errmsg, "%s: too long", key);
            off += (size_t)w;
        }
        break;
    }
    default:
        return cfail(errmsg, "%s: unexpected %s", key, tkv_cfg_type_name(tkv_cfg_type_of(v)));
    }
    return pd__sched_cfg_set(c, key, val, errmsg) == 0 ? 0 : TKV_ECONFIG;
}

int pd_config_load_file(pd_config *c, const char *path, char errmsg[TKV_ERRMSG_LEN])
{
    tkv_cfg_doc *doc;
    int rc = tkv_cfg_load(path, &doc, errmsg);
    if (rc != 0)
        return rc;
    rc = copy_str(doc, "name", c->name, sizeof(c->name), errmsg);
    if (rc == 0)
        rc = copy_str(doc, "data-dir", c->data_dir, sizeof(c->data_dir), errmsg);
    if (rc == 0)
        rc = copy_str(doc, "client-urls", c->client_urls, sizeof(c->client_urls), errmsg);
    if (rc == 0)
        rc = copy_str(doc, "http-addr", c->http_addr, sizeof(c->http_addr), errmsg);
    if (rc == 0)
        rc = copy_str(doc, "log-level", c->log_level, sizeof(c->log_level), errmsg);
    if (rc == 0)
        rc = copy_str(doc, "log.level", c->log_level, sizeof(c->log_level), errmsg);
    if (rc == 0)
        rc = copy_str(doc, "log-file", c->log_file, sizeof(c->log_file), errmsg);
    if (rc == 0)
        rc = copy_str(doc, "log.file.filename", c->log_file, sizeof(c->log_file), errmsg);
    /* TLS branch: [security] */
    if (rc == 0)
        rc = copy_str(doc, "security.cacert-path", c->cacert_path, sizeof(c->cacert_path), errmsg);
    if (rc == 0)
        rc = copy_str(doc, "security.cert-path", c->cert_path, sizeof(c->cert_path), errmsg);
    if (rc == 0)
        rc = copy_str(doc, "security.key-path", c->key_path, sizeof(c->key_path), errmsg);
    if (rc == 0)
        rc = copy_str(doc, "security.audit-log", c->audit_log, sizeof(c->audit_log), errmsg);
    if (rc == 0)
        rc = copy_names(doc, "security.cert-allowed-cn", c->cert_allowed_cn, &c->n_cert_allowed_cn,
                        errmsg);
    if (rc == 0)
        rc = copy_names(doc, "security.cert-allowed-san", c->cert_allowed_san,
                        &c->n_cert_allowed_san, errmsg);
    if (rc == 0)
        rc = get_positive(doc, "security.auth-failure-burst", &c->auth_failure_burst, errmsg);
    if (rc == 0)
        rc = get_positive(doc, "grpc-max-connections", &c->grpc_max_connections, errmsg);
    if (rc == 0)
        rc = get_positive(doc, "grpc-max-connections-per-address",
                          &c->grpc_max_connections_per_address, errmsg);
    if (rc == 0) {
        int64_t lease;
        int r = tkv_cfg_get_int(doc, "lease", &lease);
        if (r == 0 && lease > 0)
            c->lease_s = lease;
        else if (r != TKV_ENOTFOUND) {
            rc = cfail(errmsg, "lease: expected a positive integer (seconds)");
        }
    }
    if (rc == 0) {
        const char *s;
        size_t len;
        int r = tkv_cfg_get_str(doc, "tso-save-interval", &s, &len);
        char why[TKV_ERRMSG_LEN];
        if (r == 0 && tkv_cfg_parse_duration(s, len, &c->tso_window_ms, why) != 0)
            rc = cfail(errmsg, "tso-save-interval: %s", why); /* the message names the key */
        else if (r != 0 && r != TKV_ENOTFOUND) {
            rc = cfail(errmsg, "tso-save-interval: expected a duration string");
        }
    }
    for (size_t i = 0; rc == 0 && i < TKV_ARRAY_LEN(items); i++) {
        char key[128];
        snprintf(key, sizeof(key), "%s.%s", items[i].section, items[i].key);
        const tkv_cfg_value *v = tkv_cfg_get(doc, key);
        if (v != NULL)
            rc = apply_sched_value(&c->sched, key, v, errmsg);
    }
    if (rc == 0)
        warn_unknown(tkv_cfg_root(doc), "");
    tkv_cfg_free(doc);
    return rc;
}

int pd_config_validate(const pd_config *c, char errmsg[TKV_ERRMSG_LEN])
{
    if (c->name[0] == '\0')
        return cfail(errmsg, "name must not be empty");
    if (c->data_dir[0] == '\0')
        return cfail(errmsg, "data-dir must not be empty");
    /* TLS branch: the three files together, https:// exactly when TLS is on. */
    bool ca = c->cacert_path[0] != '\0', cert = c->cert_path[0] != '\0';
    bool key = c->key_path[0] != '\0';
    if (ca != cert || cert != key)
        return cfail(errmsg, "security: cacert-path, cert-path and key-path must be set "
                             "together");
    if (!ca && (c->n_cert_allowed_cn > 0 || c->n_cert_allowed_san > 0))
        return cfail(errmsg, "security.cert-allowed-cn/san: need TLS (cacert-path, cert-path, "
                             "key-path)");
    const char *scheme = ca ? "https://" : "http://";
    if (strncmp(c->client_urls, scheme, strlen(scheme)) != 0)
        return cfail(errmsg, "client-urls must start with %s%s (got '%s')", scheme,
                     ca ? " when TLS is on" : "", c->client_urls);
    if (c->tso_window_ms < 50)
        return cfail(errmsg, "tso-save-interval must be at least 50ms");
    tkv_log_level lvl;
    if (tkv_log_parse_level(c->log_level, &lvl) != 0)
        return cfail(errmsg, "log.level: unknown level '%s'", c->log_level);
    if (c->grpc_threads < 1)
        return cfail(errmsg, "grpc threads must be at least 1");
    return 0;
}
