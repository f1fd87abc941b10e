/*
 * fuzz_cfg_bind.c: configuration binding (src/base/cfg_bind.c) with the real field tables of
 * tikv-server (src/server/config.c, srv_config_fields), its [security] section
 * (src/security/sec_config.c, sec_config_fields) and pd-server (src/pd/pd_config.c).
 *
 * The first byte picks the program (tikv-server, security section, pd-server) and whether the
 * rest is raw TOML text or a recipe: assignments of generated values (integers, booleans,
 * strings, sizes, durations, arrays, floats, tables, date-times) to the programs' own keys and
 * to unknown ones, applied as --set overrides. Then:
 *   - binding answers 0 or TKV_ECONFIG, never anything else, never a crash;
 *   - a refusal names a key: with tikv-server and [security], exactly the first field (in
 *     table order) whose value has the wrong type or is out of range or unparsable (or the
 *     table in its way), or, when every value has the right kind, the key whose validator
 *     or cross-check failed; with pd-server, one of PD's keys;
 *   - an accepted value is bound as written: every field holds what the document says at its
 *     key (integers, booleans, strings, lists as they are; sizes and durations as their
 *     readable forms mean), and unknown keys are reported as warnings without failing;
 *   - a bound tikv-server configuration is a fixed point: its JSON (what the status port
 *     shows) turned back into a configuration binds to the same JSON; PD's scheduling
 *     settings survive their JSON (what GET /config shows) posted back.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "base/cfg.h"
#include "base/log.h"
#include "fuzz/fuzz.h"
#include "fuzz/pd/fuzz_pd.h"
#include "pd/pd_int.h"
#include "security/config.h"
#include "server/server.h"

/* ---- generating documents --------------------------------------------------------------- */

static const char *const pd_keys[] = {
    "name",
    "data-dir",
    "client-urls",
    "http-addr",
    "lease",
    "tso-save-interval",
    "log.level",
    "log.file.filename",
    "log-level",
    "log-file",
    "schedule.max-snapshot-count",
    "schedule.max-pending-peer-count",
    "schedule.split-merge-interval",
    "schedule.patrol-region-interval",
    "schedule.max-store-down-time",
    "schedule.leader-schedule-limit",
    "schedule.region-schedule-limit",
    "schedule.replica-schedule-limit",
    "schedule.fast-operator-timeout",
    "schedule.slow-operator-timeout",
    "schedule.store-disconnect-time",
    "replication.max-replicas",
    "replication.location-labels",
};

static const char *const parts[] = {
    "server",   "storage",     "raftstore",  "coprocessor", "pd", "security", "log",
    "schedule", "replication", "encryption", "master-key",  "x",  "addr",     "path"};

/* Appends @s (NUL-free bytes) as a TOML basic string. */
static void toml_string(tkv_buf *b, const uint8_t *s, size_t n)
{
    FUZZ_CHECK(tkv_buf_append_u8(b, '"') == 0);
    for (size_t i = 0; i < n; i++) {
        char esc[8];
        if (s[i] == '"' || s[i] == '\\') {
            snprintf(esc, sizeof(esc), "\\%c", s[i]);
        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
        } else {
            FUZZ_CHECK(tkv_buf_append_u8(b, s[i]) == 0);
            continue;
        }
        FUZZ_CHECK(tkv_buf_append(b, esc, strlen(esc)) == 0);
    }
    FUZZ_CHECK(tkv_buf_append_u8(b, '"') == 0);
}

static void putf(tkv_buf *b, const char *fmt, ...) TKV_PRINTF(2, 3);
static void putf(tkv_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    FUZZ_CHECK(tkv_buf_append(b, tmp, strlen(tmp)) == 0);
}

/* Appends a TOML value chosen by the input. */
static void gen_value(fuzz_in *in, tkv_buf *b)
{
    static const char *const units[] = {"",    "B",  "K",   "KB",  "KiB", "M",   "MB",
                                        "MiB", "G",  "GB",  "GiB", "T",   "TB",  "TiB",
                                        "P",   "PB", "PiB", "XB",  "kb",  " MiB"};
    static const char *const dunits[] = {"d", "h", "m", "s", "ms", "us", "x", ""};
    static const char *const words[] = {"info",
                                        "debug",
                                        "warn",
                                        "error",
                                        "trace",
                                        "fatal",
                                        "bogus",
                                        "file",
                                        "plaintext",
                                        "aes128-ctr",
                                        "aes256-ctr",
                                        "always",
                                        "interval",
                                        "off",
                                        "127.0.0.1:20160",
                                        "http://127.0.0.1:2379",
                                        "",
                                        "zone,host",
                                        "0",
                                        "1.0"};
    switch (fuzz_u8(in) % 12) {
    case 0:
        putf(b, "%" PRId64, (int64_t)fuzz_uint(in, 8));
        break;
    case 1:
        putf(b, "%d", (int8_t)fuzz_u8(in));
        break;
    case 2:
        putf(b, "%s", fuzz_u8(in) & 1 ? "true" : "false");
        break;
    case 3: {
        size_t n;
        const uint8_t *p = fuzz_bytes(in, 40, &n);
        uint8_t s[64];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (p[i] != 0)
                s[k++] = p[i];
        toml_string(b, s, k);
        break;
    }
    case 4: { /* a size */
        uint8_t f = fuzz_u8(in);
        char s[64];
        uint64_t num = fuzz_uint(in, 1 + f % 3);
        if (f & 0x10)
            snprintf(s, sizeof(s), "%" PRIu64 ".%u%s", num, fuzz_u8(in) % 10,
                     units[fuzz_below(in, TKV_ARRAY_LEN(units))]);
        else
            snprintf(s, sizeof(s), "%s%" PRIu64 "%s", f & 0x20 ? " " : "", num,
                     units[fuzz_below(in, TKV_ARRAY_LEN(units))]);
        toml_string(b, (const uint8_t *)s, strlen(s));
        break;
    }
    case 5: { /* a duration */
        char s[96] = "";
        size_t k = 1 + fuzz_below(in, 3), o = 0;
        for (size_t i = 0; i < k; i++) {
            uint8_t f = fuzz_u8(in);
            o += (size_t)snprintf(s + o, sizeof(s) - o, "%s%u%s%s", f & 0x40 ? " " : "",
                                  (unsigned)fuzz_uint(in, 1 + (f & 1)), f & 0x80 ? ".5" : "",
                                  dunits[f % TKV_ARRAY_LEN(dunits)]);
        }
        toml_string(b, (const uint8_t *)s, strlen(s));
        break;
    }
    case 6: { /* an array (of strings, mostly) */
        size_t k = fuzz_below(in, 4);
        FUZZ_CHECK(tkv_buf_append_u8(b, '[') == 0);
        for (size_t i = 0; i < k; i++) {
            if (i)
                FUZZ_CHECK(tkv_buf_append_u8(b, ',') == 0);
            uint8_t w = fuzz_u8(in);
            if (w == 0xff)
                putf(b, "%d", 7);
            else
                toml_string(b, (const uint8_t *)words[w % TKV_ARRAY_LEN(words)],
                            strlen(words[w % TKV_ARRAY_LEN(words)]));
        }
        FUZZ_CHECK(tkv_buf_append_u8(b, ']') == 0);
        break;
    }
    case 7: {
        static const char *const fl[] = {"1.5", "inf", "nan", "-0.0", "1e300"};
        putf(b, "%s", fl[fuzz_below(in, TKV_ARRAY_LEN(fl))]);
        break;
    }
    case 8:
        putf(b, "%s", fuzz_u8(in) & 1 ? "{}" : "{ a = 1 }");
        break;
    case 9:
        putf(b, "1979-05-27T07:32:00Z");
        break;
    default: {
        const char *w = words[fuzz_below(in, TKV_ARRAY_LEN(words))];
        toml_string(b, (const uint8_t *)w, strlen(w));
        break;
    }
    }
}

typedef enum program { P_SERVER, P_SECURITY, P_PD } program;

/* Appends a key: one of the program's, or one made of common parts. */
static void gen_key(fuzz_in *in, program p, tkv_buf *b)
{
    uint8_t c = fuzz_u8(in);
    const char *k = NULL;
    if (c < 200) {
        if (p == P_PD)
            k = pd_keys[c % TKV_ARRAY_LEN(pd_keys)];
        else if (p == P_SECURITY || c % 3 == 0)
            k = sec_config_fields[c % SEC_CONFIG_N_FIELDS].key;
        else
            k = srv_config_fields[c % srv_config_nfields].key;
        FUZZ_CHECK(tkv_buf_append(b, k, strlen(k)) == 0);
        return;
    }
    size_t n = 1 + c % 3;
    for (size_t i = 0; i < n; i++) {
        if (i)
            FUZZ_CHECK(tkv_buf_append_u8(b, '.') == 0);
        const char *part = parts[fuzz_below(in, TKV_ARRAY_LEN(parts))];
        FUZZ_CHECK(tkv_buf_append(b, part, strlen(part)) == 0);
    }
}

/* Builds a document from the recipe; assignments the document refuses (a key path through
 * a value) are skipped, as a user's would be reported. */
static tkv_cfg_doc *gen_doc(fuzz_in *in, program p)
{
    tkv_cfg_doc *doc;
    FUZZ_CHECK(tkv_cfg_new(&doc) == 0);
    size_t n = fuzz_below(in, 24);
    tkv_buf b;
    tkv_buf_init(&b);
    for (size_t i = 0; i < n && in->n > 0; i++) {
        tkv_buf_reset(&b);
        gen_key(in, p, &b);
        FUZZ_CHECK(tkv_buf_append_u8(&b, '=') == 0);
        gen_value(in, &b);
        FUZZ_CHECK(tkv_buf_append_u8(&b, 0) == 0);
        char err[TKV_ERRMSG_LEN];
        int rc = tkv_cfg_set(doc, (const char *)b.data, err);
        FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
    }
    tkv_buf_deinit(&b);
    return doc;
}

/* ---- what a field must hold --------------------------------------------------------------- */

static bool has_nul(const tkv_cfg_value *v)
{
    size_t len;
    const char *s = tkv_cfg_str(v, &len);
    return s == NULL || strlen(s) != len;
}

/* Returns whether @v is acceptable for a field of @kind (type, range, readable form). */
static bool kind_ok(tkv_cfg_kind kind, const tkv_cfg_value *v)
{
    tkv_cfg_type t = tkv_cfg_type_of(v);
    uint64_t u;
    switch (kind) {
    case TKV_CFG_K_BOOL:
        return t == TKV_CFG_BOOL;
    case TKV_CFG_K_INT:
        return t == TKV_CFG_INTEGER && tkv_cfg_int(v) >= INT_MIN && tkv_cfg_int(v) <= INT_MAX;
    case TKV_CFG_K_I64:
        return t == TKV_CFG_INTEGER;
    case TKV_CFG_K_U64:
        return t == TKV_CFG_INTEGER && tkv_cfg_int(v) >= 0;
    case TKV_CFG_K_F64:
        return t == TKV_CFG_INTEGER || t == TKV_CFG_FLOAT;
    case TKV_CFG_K_STR:
        return t == TKV_CFG_STRING && !has_nul(v);
    case TKV_CFG_K_BOOLSTR:
        return t == TKV_CFG_BOOL || (t == TKV_CFG_STRING && !has_nul(v));
    case TKV_CFG_K_STRLIST:
        if (t != TKV_CFG_ARRAY)
            return false;
        for (size_t i = 0; i < tkv_cfg_len(v); i++)
            if (tkv_cfg_type_of(tkv_cfg_at(v, i)) != TKV_CFG_STRING || has_nul(tkv_cfg_at(v, i)))
                return false;
        return true;
    case TKV_CFG_K_SIZE: {
        if (t == TKV_CFG_INTEGER)
            return tkv_cfg_int(v) >= 0;
        size_t len;
        const char *s = tkv_cfg_str(v, &len);
        return t == TKV_CFG_STRING && tkv_cfg_parse_size(s, len, &u, NULL) == 0;
    }
    case TKV_CFG_K_DURATION: {
        size_t len;
        const char *s = tkv_cfg_str(v, &len);
        return t == TKV_CFG_STRING && tkv_cfg_parse_duration(s, len, &u, NULL) == 0;
    }
    }
    return false;
}

/* Returns the value at @key in @doc, and in *@blocked whether a non-table sits on its path. */
static const tkv_cfg_value *field_value(const tkv_cfg_doc *doc, const char *key, bool *blocked)
{
    *blocked = false;
    char prefix[128];
    for (const char *dot = strchr(key, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
        snprintf(prefix, sizeof(prefix), "%.*s", (int)(dot - key), key);
        const tkv_cfg_value *v = tkv_cfg_get(doc, prefix);
        if (v != NULL && tkv_cfg_type_of(v) != TKV_CFG_TABLE) {
            *blocked = true;
            return NULL;
        }
    }
    return tkv_cfg_get(doc, key);
}

/* Checks that member @f of @out holds the document's value @v. */
static void check_member(const tkv_cfg_field *f, const void *out, const tkv_cfg_value *v)
{
    const void *m = (const char *)out + f->offset; /* the member: of the field's own type */
    size_t len;
    const char *s = tkv_cfg_str(v, &len);
    uint64_t u;
    switch (f->kind) {
    case TKV_CFG_K_BOOL:
        FUZZ_CHECK(*(const bool *)m == tkv_cfg_bool(v));
        break;
    case TKV_CFG_K_INT:
        FUZZ_CHECK(*(const int *)m == tkv_cfg_int(v));
        break;
    case TKV_CFG_K_I64:
        FUZZ_CHECK(*(const int64_t *)m == tkv_cfg_int(v));
        break;
    case TKV_CFG_K_U64:
        FUZZ_CHECK(*(const uint64_t *)m == (uint64_t)tkv_cfg_int(v));
        break;
    case TKV_CFG_K_F64: {
        double d = *(const double *)m, w = tkv_cfg_float(v);
        FUZZ_CHECK(d == w || (d != d && w != w));
        break;
    }
    case TKV_CFG_K_STR:
        FUZZ_CHECK(strcmp(*(char *const *)m, s) == 0);
        break;
    case TKV_CFG_K_BOOLSTR: /* a boolean is stored as its name */
        if (tkv_cfg_type_of(v) == TKV_CFG_BOOL)
            FUZZ_CHECK(strcmp(*(char *const *)m, tkv_cfg_bool(v) ? "true" : "false") == 0);
        else
            FUZZ_CHECK(strcmp(*(char *const *)m, s) == 0);
        break;
    case TKV_CFG_K_STRLIST: {
        const tkv_cfg_strlist *l = (const tkv_cfg_strlist *)m;
        FUZZ_CHECK(l->len == tkv_cfg_len(v));
        for (size_t i = 0; i < l->len; i++)
            FUZZ_CHECK(strcmp(l->items[i], tkv_cfg_str(tkv_cfg_at(v, i), NULL)) == 0);
        break;
    }
    case TKV_CFG_K_SIZE:
        if (tkv_cfg_type_of(v) == TKV_CFG_INTEGER)
            u = (uint64_t)tkv_cfg_int(v);
        else
            FUZZ_CHECK(tkv_cfg_parse_size(s, len, &u, NULL) == 0);
        FUZZ_CHECK(*(const uint64_t *)m == u);
        break;
    case TKV_CFG_K_DURATION:
        FUZZ_CHECK(tkv_cfg_parse_duration(s, len, &u, NULL) == 0);
        FUZZ_CHECK(*(const uint64_t *)m == u);
        break;
    }
}

static void count_warning(void *arg, const char *msg)
{
    FUZZ_CHECK(strstr(msg, "unknown configuration key") != NULL);
    (*(size_t *)arg)++;
}

/* Binds @doc through @fields into @out (a struct of @size bytes) and checks the outcome as
 * the header says. Returns the result; on success @out is bound (unbind it). */
static int bind_and_check(const tkv_cfg_doc *doc, const tkv_cfg_field *fields, size_t n, void *out)
{
    char err[TKV_ERRMSG_LEN];
    size_t warnings = 0;
    int rc = tkv_cfg_bind(doc, fields, n, out, count_warning, &warnings, err);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
    size_t first_bad = n;
    for (size_t i = 0; i < n && first_bad == n; i++) {
        bool blocked;
        const tkv_cfg_value *v = field_value(doc, fields[i].key, &blocked);
        if (blocked || (v != NULL && !kind_ok(fields[i].kind, v)))
            first_bad = i;
    }
    if (rc != 0) {
        FUZZ_CHECK(err[0] != '\0');
        if (first_bad < n) {
            /* The first bad field in table order, by its key or the table in its way. */
            const char *key = fields[first_bad].key;
            bool named = strstr(err, key) != NULL;
            for (const char *dot = strchr(key, '.'); !named && dot; dot = strchr(dot + 1, '.')) {
                char q[160];
                snprintf(q, sizeof(q), "'%.*s' must be a table", (int)(dot - key), key);
                named = strstr(err, q) != NULL;
            }
            if (!named)
                fprintf(stderr, "cfg_bind: '%s' does not name %s\n", err, key);
            FUZZ_CHECK(named);
        } else {
            bool named = false;
            for (size_t i = 0; i < n && !named; i++)
                named = strstr(err, fields[i].key) != NULL;
            FUZZ_CHECK(named);
        }
        return rc;
    }
    FUZZ_CHECK(first_bad == n);
    for (size_t i = 0; i < n; i++) {
        bool blocked;
        const tkv_cfg_value *v = field_value(doc, fields[i].key, &blocked);
        if (v != NULL)
            check_member(&fields[i], out, v);
    }
    return 0;
}

/* ---- tikv-server ----------------------------------------------------------------------------- */

static bool names_any_key(const char *err)
{
    for (size_t i = 0; i < srv_config_nfields; i++)
        if (strstr(err, srv_config_fields[i].key) != NULL)
            return true;
    /* tikv-server binds its [security] section in the same pass. */
    for (size_t i = 0; i < SEC_CONFIG_N_FIELDS; i++)
        if (strstr(err, sec_config_fields[i].key) != NULL)
            return true;
    return false;
}

/* Turns the JSON of a bound configuration back into a document (one --set per leaf). */
static void json_to_doc(json_t *o, const char *prefix, tkv_cfg_doc *doc)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        char path[256];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", k);
        if (json_is_object(v)) {
            json_to_doc(v, path, doc);
            continue;
        }
        tkv_buf b;
        tkv_buf_init(&b);
        FUZZ_CHECK(tkv_buf_append(&b, path, strlen(path)) == 0);
        FUZZ_CHECK(tkv_buf_append_u8(&b, '=') == 0);
        if (json_is_string(v)) {
            toml_string(&b, (const uint8_t *)json_string_value(v), json_string_length(v));
        } else if (json_is_integer(v)) {
            putf(&b, "%" PRId64, (int64_t)json_integer_value(v));
        } else if (json_is_boolean(v)) {
            putf(&b, "%s", json_is_true(v) ? "true" : "false");
        } else {
            FUZZ_CHECK(json_is_array(v));
            FUZZ_CHECK(tkv_buf_append_u8(&b, '[') == 0);
            for (size_t i = 0; i < json_array_size(v); i++) {
                json_t *s = json_array_get(v, i);
                if (i)
                    FUZZ_CHECK(tkv_buf_append_u8(&b, ',') == 0);
                toml_string(&b, (const uint8_t *)json_string_value(s), json_string_length(s));
            }
            FUZZ_CHECK(tkv_buf_append_u8(&b, ']') == 0);
        }
        FUZZ_CHECK(tkv_buf_append_u8(&b, 0) == 0);
        char err[TKV_ERRMSG_LEN];
        int rc = tkv_cfg_set(doc, (const char *)b.data, err);
        if (rc != 0)
            fprintf(stderr, "cfg_bind: --set %s: %s\n", (const char *)b.data, err);
        FUZZ_CHECK(rc == 0);
        tkv_buf_deinit(&b);
    }
}

static void check_server(const tkv_cfg_doc *doc)
{
    /* The raw binding, value by value. */
    srv_config raw;
    if (bind_and_check(doc, srv_config_fields, srv_config_nfields, &raw) == 0)
        tkv_cfg_unbind(srv_config_fields, srv_config_nfields, &raw);
    /* The server's own binding (derived settings, cross-checks). */
    srv_config cfg;
    char err[TKV_ERRMSG_LEN];
    size_t warnings = 0;
    int rc = srv_config_bind(&cfg, doc, count_warning, &warnings, err);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
    if (rc != 0) {
        if (!names_any_key(err))
            fprintf(stderr, "cfg_bind: '%s' names no key\n", err);
        FUZZ_CHECK(names_any_key(err));
        return;
    }
    tkv_buf j1, j2;
    tkv_buf_init(&j1);
    tkv_buf_init(&j2);
    FUZZ_CHECK(srv_config_to_json(&cfg, &j1) == 0);
    srv_config_free(&cfg);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)j1.data, j1.len, 0, &jerr);
    FUZZ_CHECK(root != NULL);
    tkv_cfg_doc *doc2;
    FUZZ_CHECK(tkv_cfg_new(&doc2) == 0);
    json_to_doc(root, "", doc2);
    json_decref(root);
    rc = srv_config_bind(&cfg, doc2, count_warning, &warnings, err);
    if (rc != 0)
        fprintf(stderr, "cfg_bind: its own JSON does not bind: %s\n%.*s\n", err, (int)j1.len,
                (const char *)j1.data);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(srv_config_to_json(&cfg, &j2) == 0);
    if (!tkv_slice_eq(tkv_buf_slice(&j1), tkv_buf_slice(&j2)))
        fprintf(stderr, "cfg_bind: not a fixed point:\n%.*s\n%.*s\n", (int)j1.len,
                (const char *)j1.data, (int)j2.len, (const char *)j2.data);
    FUZZ_CHECK(tkv_slice_eq(tkv_buf_slice(&j1), tkv_buf_slice(&j2)));
    srv_config_free(&cfg);
    tkv_cfg_free(doc2);
    tkv_buf_deinit(&j1);
    tkv_buf_deinit(&j2);
}

static void check_security(const tkv_cfg_doc *doc)
{
    sec_config sc;
    if (bind_and_check(doc, sec_config_fields, SEC_CONFIG_N_FIELDS, &sc) != 0)
        return;
    char err[TKV_ERRMSG_LEN];
    int rc = sec_config_validate(&sc, err);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
    FUZZ_CHECK(rc == 0 || strstr(err, "security") != NULL);
    tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &sc);
}

/* ---- pd-server ---------------------------------------------------------------------------- */

static char pd_path[128];

/* Checks PD's reading of a scheduling key present in @doc against its JSON. */
static void check_pd_value(const tkv_cfg_doc *doc, json_t *j, const char *key)
{
    const tkv_cfg_value *v = tkv_cfg_get(doc, key);
    if (v == NULL || strchr(key, '.') == NULL)
        return;
    char section[32];
    const char *dot = strchr(key, '.');
    snprintf(section, sizeof(section), "%.*s", (int)(dot - key), key);
    json_t *got = json_object_get(json_object_get(j, section), dot + 1);
    if (got == NULL)
        return; /* log.level and the like */
    size_t len;
    const char *s = tkv_cfg_str(v, &len);
    if (json_is_integer(got)) {
        if (tkv_cfg_type_of(v) == TKV_CFG_INTEGER)
            FUZZ_CHECK((uint64_t)json_integer_value(got) == (uint64_t)tkv_cfg_int(v));
    } else if (strcmp(dot + 1, "location-labels") == 0) {
        if (tkv_cfg_type_of(v) == TKV_CFG_STRING)
            FUZZ_CHECK(strcmp(json_string_value(got), s) == 0);
    } else if (tkv_cfg_type_of(v) == TKV_CFG_STRING && strcmp(s, "0") != 0) {
        /* A duration, shown as Go prints it: the same number of milliseconds. */
        uint64_t want, have;
        FUZZ_CHECK(tkv_cfg_parse_duration(s, len, &want, NULL) == 0);
        const char *g = json_string_value(got);
        FUZZ_CHECK(tkv_cfg_parse_duration(g, strlen(g), &have, NULL) == 0);
        FUZZ_CHECK(want == have);
    }
}

static void check_pd(const tkv_cfg_doc *doc)
{
    if (pd_path[0] == '\0') {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(pd_path, sizeof(pd_path), "%s/tkv-fuzz-pd-%d.toml", base, (int)getpid());
    }
    tkv_buf text;
    tkv_buf_init(&text);
    FUZZ_CHECK(tkv_cfg_dump(doc, &text) == 0);
    FILE *f = fopen(pd_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(text.len == 0 || fwrite(text.data, 1, text.len, f) == text.len);
    FUZZ_CHECK(fclose(f) == 0);
    tkv_buf_deinit(&text);
    pd_config c;
    pd_config_init(&c);
    char err[TKV_ERRMSG_LEN] = "";
    int rc = pd_config_load_file(&c, pd_path, err);
    remove(pd_path);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
    if (rc != 0) {
        bool named = false;
        for (size_t i = 0; i < TKV_ARRAY_LEN(pd_keys) && !named; i++) {
            const char *k = pd_keys[i];
            named = strstr(err, k) != NULL;
        }
        if (!named)
            fprintf(stderr, "cfg_bind: pd: '%s' names no key\n", err);
        FUZZ_CHECK(named);
        return;
    }
    rc = pd_config_validate(&c, err);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
    /* What GET /config shows, posted back, changes nothing. */
    json_t *j = pd__sched_cfg_json(&c.sched, 0);
    FUZZ_CHECK(j != NULL);
    for (size_t i = 0; i < TKV_ARRAY_LEN(pd_keys); i++)
        check_pd_value(doc, j, pd_keys[i]);
    pd_sched_cfg back;
    pd__sched_cfg_default(&back);
    rc = pd__sched_cfg_apply_json(&back, j, NULL, err);
    if (rc != 0)
        fprintf(stderr, "cfg_bind: pd's own JSON does not apply: %s\n", err);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(fuzz_pd_sched_equal(&back, &c.sched));
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    tkv_log_set_level(TKV_LOG_OFF); /* unknown keys in PD files log warnings */
    program p = (program)(data[0] % 3);
    bool raw = data[0] & 0x80;
    fuzz_in in = fuzz_in_of(data + 1, size - 1);
    tkv_cfg_doc *doc;
    if (raw) {
        char err[TKV_ERRMSG_LEN];
        int rc = tkv_cfg_parse((const char *)in.p, in.n, "fuzz.toml", &doc, err);
        FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
        if (rc != 0)
            return 0;
    } else {
        doc = gen_doc(&in, p);
    }
    if (p == P_SERVER)
        check_server(doc);
    else if (p == P_SECURITY)
        check_security(doc);
    else
        check_pd(doc);
    tkv_cfg_free(doc);
    return 0;
}
