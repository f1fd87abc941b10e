/*
 * pd_ctl.c: pd-ctl, the command-line client of pd-server's HTTP API (libcurl + jansson).
 * Tables for people by default, the server's JSON with --json for scripts.
 *
 *   pd-ctl [-u http://127.0.0.1:2381] [--json] COMMAND
 *     store [ID] | store delete ID | store state ID Up|Offline|Tombstone
 *     region [ID] | region key KEY
 *     member | health | cluster
 *     config show [schedule|replication] | config set KEY VALUE
 *     operator show [REGION_ID] | operator remove REGION_ID
 *     operator add transfer-leader REGION STORE | add-peer REGION STORE |
 *                  add-learner REGION STORE | remove-peer REGION STORE |
 *                  transfer-peer REGION FROM TO | transfer-region REGION STORE... |
 *                  split-region REGION [scan|approximate]
 * Exit status: 0 on success, 1 when the server answers an error or cannot be reached, 2 on
 * bad usage.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ctl {
    const char *url;
    bool json;
    const char *ca_path, *cert_path, *key_path; /* TLS (PEM); NULL: none */
} ctl;

typedef struct body {
    char *data;
    size_t len;
} body;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t add = size * n;
    char *nd = realloc(b->data, b->len + add + 1);
    if (nd == NULL)
        return 0;
    memcpy(nd + b->len, p, add);
    b->data = nd;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* Performs the request; returns the HTTP status (0: transport error, message printed) and
 * the body in @out (free it). */
static long request(const ctl *c, const char *method, const char *path, const char *payload,
                    body *out)
{
    out->data = NULL;
    out->len = 0;
    CURL *h = curl_easy_init();
    if (h == NULL) {
        fprintf(stderr, "pd-ctl: cannot initialize libcurl\n");
        return 0;
    }
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", c->url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (c->ca_path != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_path);
    if (c->cert_path != NULL)
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_path);
    if (c->key_path != NULL)
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_path);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *hdrs = NULL;
    if (payload != NULL) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    }
    long code = 0;
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    else
        fprintf(stderr, "pd-ctl: %s: %s\n", url, curl_easy_strerror(rc));
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return code;
}

/* GETs/sends and parses JSON; prints the server's error and returns NULL on failure. */
static json_t *call(const ctl *c, const char *method, const char *path, const char *payload)
{
    body b;
    long code = request(c, method, path, payload, &b);
    if (code == 0) {
        free(b.data);
        return NULL;
    }
    json_error_t err;
    json_t *v = b.data ? json_loads(b.data, JSON_DECODE_ANY, &err) : NULL;
    if (code >= 400) {
        const char *msg = json_is_string(v) ? json_string_value(v) : b.data ? b.data : "";
        fprintf(stderr, "pd-ctl: %s %s: HTTP %ld: %s\n", method, path, code, msg);
        json_decref(v);
        free(b.data);
        return NULL;
    }
    if (v == NULL)
        fprintf(stderr, "pd-ctl: %s %s: the answer is not JSON\n", method, path);
    free(b.data);
    return v;
}

static void print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s != NULL) {
        puts(s);
        free(s);
    }
}

/* Sends a change and prints the server's confirmation (a JSON string). */
static int act(const ctl *c, const char *method, const char *path, const char *payload)
{
    json_t *v = call(c, method, path, payload);
    if (v == NULL)
        return 1;
    if (c->json)
        print_json(v);
    else
        puts(json_string_value(v) ? json_string_value(v) : "ok");
    json_decref(v);
    return 0;
}

/* ---- tables ------------------------------------------------------------------------------- */

#define MAX_COLS 10

typedef struct table {
    size_t ncols, nrows;
    char **cells; /* nrows * ncols, row 0 is the header */
    size_t cap;
} table;

static void t_row(table *t, ...)
{
    if (t->nrows * t->ncols + t->ncols > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : t->ncols * 16;
        while (nc < t->nrows * t->ncols + t->ncols)
            nc *= 2;
        char **n = realloc(t->cells, nc * sizeof(*n));
        if (n == NULL)
            return;
        t->cells = n;
        t->cap = nc;
    }
    va_list ap;
    va_start(ap, t);
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->nrows * t->ncols + i] = strdup(s ? s : "");
    }
    va_end(ap);
    t->nrows++;
}

static void t_print(table *t)
{
    size_t w[MAX_COLS] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * t->ncols + i];
            size_t l = s ? strlen(s) : 0;
            w[i] = l > w[i] ? l : w[i];
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * t->ncols + i];
            if (i + 1 < t->ncols)
                printf("%-*s  ", (int)w[i], s ? s : "");
            else
                printf("%s\n", s ? s : "");
        }
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static char *jnum(const json_t *o, const char *key, char *buf, size_t cap)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%g", json_real_value(v));
    else
        snprintf(buf, cap, "0");
    return buf;
}

/* ---- commands ----------------------------------------------------------------------------- */

static void store_row(table *t, const json_t *info)
{
    const json_t *s = json_object_get(info, "store"), *st = json_object_get(info, "status");
    char id[32], regions[32], leaders[32];
    t_row(t, jnum(s, "id", id, sizeof(id)), jstr(s, "address"), jstr(s, "state_name"),
          jstr(st, "capacity"), jstr(st, "available"), jnum(st, "region_count", regions, 32),
          jnum(st, "leader_count", leaders, 32), jstr(st, "last_heartbeat_ts"));
}

static int cmd_store(const ctl *c, int argc, char **argv)
{
    char path[256];
    if (argc >= 2 && strcmp(argv[0], "delete") == 0) {
        snprintf(path, sizeof(path), "/pd/api/v1/store/%s", argv[1]);
        return act(c, "DELETE", path, NULL);
    }
    if (argc >= 3 && strcmp(argv[0], "state") == 0) {
        snprintf(path, sizeof(path), "/pd/api/v1/store/%s/state?state=%s", argv[1], argv[2]);
        return act(c, "POST", path, "");
    }
    if (argc >= 1)
        snprintf(path, sizeof(path), "/pd/api/v1/store/%s", argv[0]);
    else
        snprintf(path, sizeof(path), "/pd/api/v1/stores");
    json_t *v = call(c, "GET", path, NULL);
    if (v == NULL)
        return 1;
    if (c->json) {
        print_json(v);
    } else {
        table t = {.ncols = 8};
        t_row(&t, "ID", "ADDRESS", "STATE", "CAPACITY", "AVAILABLE", "REGIONS", "LEADERS",
              "LAST HEARTBEAT");
        if (argc >= 1) {
            store_row(&t, v);
        } else {
            size_t i;
            json_t *s;
            json_array_foreach(json_object_get(v, "stores"), i, s) store_row(&t, s);
        }
        t_print(&t);
    }
    json_decref(v);
    return 0;
}

/* Renders a hex key the way PD stores it, showing printable keys as text. */
/* The byte that the two hex digits at @p spell, or -1. */
static int hex_byte(const char *p)
{
    if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
        return -1;
    char two[3] = {p[0], p[1], '\0'};
    return (int)strtol(two, NULL, 16);
}

static void key_text(const char *hex, char *out, size_t cap)
{
    size_t n = strlen(hex);
    if (n == 0) {
        snprintf(out, cap, "\"\"");
        return;
    }
    bool printable = n % 2 == 0 && n / 2 < cap - 1;
    for (size_t i = 0; printable && i < n; i += 2) {
        int v = hex_byte(hex + i);
        if (v < 0x20 || v > 0x7e)
            printable = false;
    }
    if (!printable) {
        snprintf(out, cap, "0x%s", hex);
        return;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i += 2) {
        int v = hex_byte(hex + i);
        if (v < 0)
            break;
        out[j++] = (char)v;
    }
    out[j] = '\0';
}

static void region_row(table *t, const json_t *r)
{
    char id[32], ver[32], conf[32], size[32], start[256], end[256], peers[256] = "", leader[32];
    const json_t *e = json_object_get(r, "epoch");
    key_text(jstr(r, "start_key"), start, sizeof(start));
    key_text(jstr(r, "end_key"), end, sizeof(end));
    size_t i, off = 0;
    json_t *p;
    json_array_foreach(json_object_get(r, "peers"), i, p)
    {
        char sid[32];
        int w = snprintf(peers + off, sizeof(peers) - off, "%s%s%s", i ? "," : "",
                         jnum(p, "store_id", sid, sizeof(sid)),
                         strcmp(jstr(p, "role_name"), "Learner") == 0 ? "(L)" : "");
        if (w > 0 && (size_t)w < sizeof(peers) - off)
            off += (size_t)w;
    }
    t_row(t, jnum(r, "id", id, sizeof(id)), start, end, jnum(e, "version", ver, sizeof(ver)),
          jnum(e, "conf_ver", conf, sizeof(conf)),
          jnum(json_object_get(r, "leader"), "store_id", leader, sizeof(leader)), peers,
          jnum(r, "approximate_size", size, sizeof(size)));
}

static int cmd_region(const ctl *c, int argc, char **argv)
{
    char path[1024];
    bool single = argc >= 1;
    if (argc >= 2 && strcmp(argv[0], "key") == 0) {
        char *esc = curl_easy_escape(NULL, argv[1], 0);
        snprintf(path, sizeof(path), "/pd/api/v1/region/key/%s", esc ? esc : argv[1]);
        curl_free(esc);
    } else if (argc >= 1) {
        snprintf(path, sizeof(path), "/pd/api/v1/region/id/%s", argv[0]);
    } else {
        snprintf(path, sizeof(path), "/pd/api/v1/regions");
    }
    json_t *v = call(c, "GET", path, NULL);
    if (v == NULL)
        return 1;
    if (c->json) {
        print_json(v);
    } else if (single && json_is_null(v)) {
        puts("region not found");
    } else {
        table t = {.ncols = 8};
        t_row(&t, "ID", "START KEY", "END KEY", "VERSION", "CONF_VER", "LEADER", "PEERS(STORE)",
              "SIZE(MiB)");
        if (single) {
            region_row(&t, v);
        } else {
            size_t i;
            json_t *r;
            json_array_foreach(json_object_get(v, "regions"), i, r) region_row(&t, r);
        }
        t_print(&t);
    }
    json_decref(v);
    return 0;
}

static int cmd_simple(const ctl *c, const char *path, int kind)
{
    json_t *v = call(c, "GET", path, NULL);
    if (v == NULL)
        return 1;
    if (c->json || kind == 0) {
        print_json(v);
    } else if (kind == 1) { /* members */
        table t = {.ncols = 4};
        t_row(&t, "NAME", "MEMBER ID", "CLIENT URLS", "LEADER");
        uint64_t leader = (uint64_t)json_integer_value(
            json_object_get(json_object_get(v, "leader"), "member_id"));
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(v, "members"), i, m)
        {
            char id[32];
            t_row(&t, jstr(m, "name"), jnum(m, "member_id", id, sizeof(id)),
                  json_string_value(json_array_get(json_object_get(m, "client_urls"), 0)),
                  (uint64_t)json_integer_value(json_object_get(m, "member_id")) == leader ? "yes"
                                                                                          : "");
        }
        t_print(&t);
    } else { /* health */
        table t = {.ncols = 3};
        t_row(&t, "NAME", "MEMBER ID", "HEALTH");
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            char id[32];
            t_row(&t, jstr(m, "name"), jnum(m, "member_id", id, sizeof(id)),
                  json_is_true(json_object_get(m, "health")) ? "true" : "false");
        }
        t_print(&t);
    }
    json_decref(v);
    return 0;
}

static void print_flat(const char *prefix, const json_t *v)
{
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        char key[256];
        snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", k);
        if (json_is_object(x)) {
            print_flat(key, x);
        } else {
            char *s = json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT);
            printf("%s = %s\n", key, s ? s : "?");
            free(s);
        }
    }
}

static bool is_number(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if ((*s < '0' || *s > '9') && *s != '.')
            return false;
    return true;
}

static int cmd_config(const ctl *c, int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[0], "set") == 0) {
        json_t *o = json_object();
        json_object_set_new(o, argv[1],
                            is_number(argv[2]) ? json_integer(strtoll(argv[2], NULL, 10))
                                               : json_string(argv[2]));
        char *payload = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        int rc = payload ? act(c, "POST", "/pd/api/v1/config", payload) : 1;
        free(payload);
        return rc;
    }
    if (argc >= 1 && strcmp(argv[0], "show") != 0)
        return 2;
    const char *path = "/pd/api/v1/config";
    if (argc >= 2 && strcmp(argv[1], "schedule") == 0)
        path = "/pd/api/v1/config/schedule";
    else if (argc >= 2 &&
             (strcmp(argv[1], "replication") == 0 || strcmp(argv[1], "replicate") == 0))
        path = "/pd/api/v1/config/replicate";
    json_t *v = call(c, "GET", path, NULL);
    if (v == NULL)
        return 1;
    c->json ? print_json(v) : print_flat("", v);
    json_decref(v);
    return 0;
}

/* ---- roles (the key-range authorization policy, security/authz.h) ----------------------- */

#define AUTHZ_PATH "/pd/api/v1/security/authz"

/* Returns the object @key of @doc, created empty when missing (borrowed). */
static json_t *section(json_t *doc, const char *key)
{
    json_t *o = json_object_get(doc, key);
    if (!json_is_object(o)) {
        o = json_object();
        json_object_set_new(doc, key, o);
    }
    return o;
}

/* Removes string @s from array @a; returns true when it was there. */
static bool remove_string(json_t *a, const char *s)
{
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *v = json_string_value(json_array_get(a, i));
        if (v != NULL && strcmp(v, s) == 0) {
            json_array_remove(a, i);
            return true;
        }
    }
    return false;
}

/* role show | grant ROLE read|write|admin START END | delete ROLE | bind NAME ROLE |
 * unbind NAME ROLE: read-modify-write of the policy document. */
static int cmd_role(const ctl *c, int argc, char **argv)
{
    if (argc < 1)
        return 2;
    json_t *doc = call(c, "GET", AUTHZ_PATH, NULL);
    if (doc == NULL)
        return 1;
    const char *op = argv[0];
    json_t *roles = section(doc, "roles"), *bindings = section(doc, "bindings");
    int rc = 0;
    if (strcmp(op, "show") == 0 && argc == 1) {
        print_json(doc);
        json_decref(doc);
        return 0;
    } else if (strcmp(op, "grant") == 0 && argc == 5) {
        json_t *list = json_object_get(roles, argv[1]);
        if (!json_is_array(list)) {
            list = json_array();
            json_object_set_new(roles, argv[1], list);
        }
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s}", "perm", argv[2], "start", argv[3], "end", argv[4]));
    } else if (strcmp(op, "delete") == 0 && argc == 2) {
        if (json_object_del(roles, argv[1]) != 0) {
            fprintf(stderr, "pd-ctl: role %s does not exist\n", argv[1]);
            rc = 1;
        }
        const char *name;
        json_t *list;
        json_object_foreach(bindings, name, list)
        {
            remove_string(list, argv[1]);
        }
    } else if (strcmp(op, "bind") == 0 && argc == 3) {
        json_t *list = json_object_get(bindings, argv[1]);
        if (!json_is_array(list)) {
            list = json_array();
            json_object_set_new(bindings, argv[1], list);
        }
        remove_string(list, argv[2]);
        json_array_append_new(list, json_string(argv[2]));
    } else if (strcmp(op, "unbind") == 0 && argc == 3) {
        if (!remove_string(json_object_get(bindings, argv[1]), argv[2])) {
            fprintf(stderr, "pd-ctl: %s is not bound to %s\n", argv[1], argv[2]);
            rc = 1;
        }
    } else {
        json_decref(doc);
        return 2;
    }
    char *payload = rc == 0 ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (rc == 0)
        rc = payload != NULL ? act(c, "POST", AUTHZ_PATH, payload) : 1;
    free(payload);
    return rc;
}

static bool parse_u64(const char *s, json_int_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        return false;
    *out = v;
    return true;
}

static int cmd_operator(const ctl *c, int argc, char **argv)
{
    char path[256];
    if (argc == 0 || strcmp(argv[0], "show") == 0) {
        if (argc >= 2)
            snprintf(path, sizeof(path), "/pd/api/v1/operators/%s", argv[1]);
        else
            snprintf(path, sizeof(path), "/pd/api/v1/operators");
        json_t *v = call(c, "GET", path, NULL);
        if (v == NULL)
            return 1;
        if (c->json || !json_is_array(v)) {
            print_json(v);
        } else if (json_array_size(v) == 0) {
            puts("no running operators");
        } else {
            size_t i;
            json_t *op;
            json_array_foreach(v, i, op) puts(json_string_value(op) ? json_string_value(op) : "");
        }
        json_decref(v);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[0], "remove") == 0) {
        snprintf(path, sizeof(path), "/pd/api/v1/operators/%s", argv[1]);
        return act(c, "DELETE", path, NULL);
    }
    if (argc < 3 || strcmp(argv[0], "add") != 0)
        return 2;
    const char *name = argv[1];
    json_int_t region, a, b;
    if (!parse_u64(argv[2], &region))
        return 2;
    json_t *in = json_pack("{s:s, s:I}", "name", name, "region_id", region);
    if (in == NULL)
        return 1;
    if ((strcmp(name, "transfer-leader") == 0) && argc >= 4 && parse_u64(argv[3], &a)) {
        json_object_set_new(in, "to_store_id", json_integer(a));
    } else if ((strcmp(name, "add-peer") == 0 || strcmp(name, "add-learner") == 0 ||
                strcmp(name, "remove-peer") == 0) &&
               argc >= 4 && parse_u64(argv[3], &a)) {
        json_object_set_new(in, "store_id", json_integer(a));
    } else if (strcmp(name, "transfer-peer") == 0 && argc >= 5 && parse_u64(argv[3], &a) &&
               parse_u64(argv[4], &b)) {
        json_object_set_new(in, "from_store_id", json_integer(a));
        json_object_set_new(in, "to_store_id", json_integer(b));
    } else if (strcmp(name, "transfer-region") == 0 && argc >= 4) {
        json_t *ids = json_array();
        for (int i = 3; i < argc; i++) {
            if (!parse_u64(argv[i], &a)) {
                json_decref(ids);
                json_decref(in);
                return 2;
            }
            json_array_append_new(ids, json_integer(a));
        }
        json_object_set_new(in, "to_store_ids", ids);
    } else if (strcmp(name, "split-region") == 0) {
        json_object_set_new(in, "policy", json_string(argc >= 4 ? argv[3] : "scan"));
    } else {
        json_decref(in);
        return 2;
    }
    char *payload = json_dumps(in, JSON_COMPACT);
    json_decref(in);
    int rc = payload ? act(c, "POST", "/pd/api/v1/operators", payload) : 1;
    free(payload);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: pd-ctl [-u URL] [--json] COMMAND\n"
               "  -u, --pd URL     pd-server's HTTP API (default http://127.0.0.1:2381)\n"
               "  --json           print the server's JSON instead of tables\n"
               "  --ca-path FILE --cert-path FILE --key-path FILE\n"
               "                   TLS (PEM; also --cacert, --cert, --key): https:// URLs\n"
               "Commands:\n"
               "  store [ID]                          stores (or one store)\n"
               "  store delete ID                     set a store Offline (it is drained)\n"
               "  store state ID Up|Offline|Tombstone\n"
               "  region [ID] | region key KEY        regions (or one)\n"
               "  member | health | cluster\n"
               "  config show [schedule|replication]  settings\n"
               "  config set KEY VALUE                e.g. config set max-store-down-time 5m\n"
               "  operator show [REGION_ID]\n"
               "  operator add transfer-leader REGION STORE | add-peer REGION STORE |\n"
               "               add-learner REGION STORE | remove-peer REGION STORE |\n"
               "               transfer-peer REGION FROM TO | transfer-region REGION STORE... |\n"
               "               split-region REGION [scan|approximate]\n"
               "  operator remove REGION_ID\n"
               "  role show                           the key-range authorization policy\n"
               "  role grant ROLE read|write|admin START END   ([START, END); \"\" END: no end)\n"
               "  role delete ROLE | role bind CERT-NAME ROLE | role unbind CERT-NAME ROLE\n");
}

int main(int argc, char **argv)
{
    const char *env_url = getenv("PD_CTL_URL");
    ctl c = {.url = env_url != NULL ? env_url : "http://127.0.0.1:2381"};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if ((strcmp(argv[i], "-u") == 0 || strcmp(argv[i], "--pd") == 0) && i + 1 < argc)
            c.url = argv[++i];
        else if ((strcmp(argv[i], "--ca-path") == 0 || strcmp(argv[i], "--cacert") == 0) &&
                 i + 1 < argc)
            c.ca_path = argv[++i];
        else if ((strcmp(argv[i], "--cert-path") == 0 || strcmp(argv[i], "--cert") == 0) &&
                 i + 1 < argc)
            c.cert_path = argv[++i];
        else if ((strcmp(argv[i], "--key-path") == 0 || strcmp(argv[i], "--key") == 0) &&
                 i + 1 < argc)
            c.key_path = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            c.json = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    /* Accept "127.0.0.1:2381" without a scheme, as PD's pd-ctl does; drop trailing '/'. */
    char url[512];
    const char *scheme = c.ca_path != NULL || c.cert_path != NULL ? "https://" : "http://";
    snprintf(url, sizeof(url), "%s%s", strstr(c.url, "://") ? "" : scheme, c.url);
    for (size_t ul = strlen(url); ul > 0 && url[ul - 1] == '/'; ul--)
        url[ul - 1] = '\0';
    c.url = url;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *cmd = argv[i];
    int rest = argc - i - 1;
    char **args = argv + i + 1;
    int rc;
    if (strcmp(cmd, "store") == 0)
        rc = cmd_store(&c, rest, args);
    else if (strcmp(cmd, "region") == 0)
        rc = cmd_region(&c, rest, args);
    else if (strcmp(cmd, "member") == 0)
        rc = cmd_simple(&c, "/pd/api/v1/members", 1);
    else if (strcmp(cmd, "health") == 0)
        rc = cmd_simple(&c, "/pd/api/v1/health", 2);
    else if (strcmp(cmd, "cluster") == 0)
        rc = cmd_simple(&c, "/pd/api/v1/cluster", 0);
    else if (strcmp(cmd, "config") == 0)
        rc = cmd_config(&c, rest, args);
    else if (strcmp(cmd, "operator") == 0)
        rc = cmd_operator(&c, rest, args);
    else if (strcmp(cmd, "role") == 0)
        rc = cmd_role(&c, rest, args);
    else
        rc = 2;
    if (rc == 2)
        usage(stderr);
    curl_global_cleanup();
    return rc;
}
