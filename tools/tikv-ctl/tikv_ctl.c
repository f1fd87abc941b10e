/*
 * tikv_ctl.c: tikv-ctl's main: option parsing, the raw/txn/region/store/cluster commands,
 * tables for people and JSON (--json) for scripts.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "ctl.h"
#include "security/audit.h"

static const char usage_text[] =
    "usage: tikv-ctl [--pd ADDR] [--json] [TLS flags] COMMAND [ARGS]\n"
    "\n"
    "Talks to a TiKV / tikv-c cluster through PD (default --pd 127.0.0.1:2379).\n"
    "\n"
    "commands:\n"
    "  raw get KEY                          read a raw key\n"
    "  raw put KEY VALUE [--ttl SECONDS]    write a raw key (TTL needs storage.enable-ttl)\n"
    "  raw delete KEY                       delete a raw key\n"
    "  raw scan [--from K] [--to K] [--limit N] [--reverse] [--key-only]\n"
    "                                       list raw pairs in [from, to) (limit 100)\n"
    "  raw delete-range --from K --to K     delete raw keys in [from, to)\n"
    "  txn get KEY                          read a key in a new transaction\n"
    "  txn put KEY VALUE                    write a key in a transaction (2PC)\n"
    "  txn delete KEY                       delete a key in a transaction\n"
    "  txn scan [--from K] [--to K] [--limit N] [--reverse]\n"
    "  region KEY [--txn] | region --id ID  the region holding KEY (raw key, or a\n"
    "                                       transactional key with --txn), or region ID\n"
    "  store [ID]                           one store, or all of them\n"
    "  cluster                              PD members, stores and the region count\n"
    "  audit verify FILE [--key-file PATH]  check an audit log's hash chain (no cluster\n"
    "                                       needed): exit 0 intact, 1 edited or truncated\n"
    "  bench raw-put|raw-get|txn-put|txn-transfer [--concurrency N] [--seconds S]\n"
    "        [--value-size B] [--keys N]    closed-loop load (16-byte keys): ops/s, latency;\n"
    "                                       txn-put commits one-key transactions, txn-transfer\n"
    "                                       4-key transfers between --keys accounts\n"
    "  encryption-meta [dump-key | dump-file [--path FILE]] --config TOML [--data-dir DIR]\n"
    "                                       offline: data keys and encrypted files of a\n"
    "                                       stopped store's data directory (no key material)\n"
    "\n"
    "options:\n"
    "  --pd ADDR[,ADDR]   PD endpoints (host:port or http://host:port)\n"
    "  --json             print JSON instead of tables\n"
    "  --hex              KEY and VALUE arguments are hex (else \\xHH escapes work)\n"
    "  --ca-path FILE --cert-path FILE --key-path FILE   TLS (PEM)\n"
    "  --timeout MS       deadline of one request\n"
    "  --no-batch         one unary call per request instead of BatchCommands\n"
    "  --no-1pc           transactions commit in two phases even when one region holds\n"
    "                     every key (default: one-phase commit there)\n"
    "  --help             this text\n"
    "\n"
    "exit codes: 0 ok, 1 key not found, 2 usage error, 3 cannot reach PD, 4 request failed\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tikv-ctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(tikv-ctl --help for usage)\n");
    va_end(ap);
    return CTL_USAGE;
}

/* ---- bytes on the command line ---------------------------------------------------------- */

static bool decode(const ctl_opts *o, const char *in, tikvc_buf *out)
{
    size_t n = strlen(in);
    out->data = malloc(n + 1);
    out->len = 0;
    if (out->data == NULL)
        return false;
    if (o->hex) {
        if (n % 2 != 0) {
            fprintf(stderr, "tikv-ctl: '%s' is not hex (odd length)\n", in);
            return false;
        }
        for (size_t i = 0; i < n; i += 2) {
            int a = tkv_codec_hex_digit(in[i]), b = tkv_codec_hex_digit(in[i + 1]);
            if (a < 0 || b < 0) {
                fprintf(stderr, "tikv-ctl: '%s' is not hex\n", in);
                return false;
            }
            out->data[out->len++] = (uint8_t)(a * 16 + b);
        }
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '\\' || i + 1 == n) {
            out->data[out->len++] = (uint8_t)in[i];
            continue;
        }
        char e = in[++i];
        if (e == 'x' && i + 2 < n + 1 && tkv_codec_hex_digit(in[i + 1]) >= 0 &&
            tkv_codec_hex_digit(in[i + 2]) >= 0) {
            out->data[out->len++] =
                (uint8_t)(tkv_codec_hex_digit(in[i + 1]) * 16 + tkv_codec_hex_digit(in[i + 2]));
            i += 2;
        } else if (e == 'n') {
            out->data[out->len++] = '\n';
        } else if (e == 't') {
            out->data[out->len++] = '\t';
        } else if (e == '\\') {
            out->data[out->len++] = '\\';
        } else {
            fprintf(stderr, "tikv-ctl: bad escape '\\%c' in '%s' (use \\xHH, \\n, \\t, \\\\)\n", e,
                    in);
            return false;
        }
    }
    return true;
}

bool ctl_decode(const ctl_opts *o, const char *in, tikvc_buf *out)
{
    if (decode(o, in, out))
        return true;
    free(out->data); /* a malformed argument leaves no buffer behind */
    out->data = NULL;
    out->len = 0;
    return false;
}

char *ctl_escape(const void *p, size_t n)
{
    const uint8_t *b = p;
    char *s = malloc(4 * n + 1);
    if (s == NULL)
        return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\\') {
            s[w++] = '\\';
            s[w++] = '\\';
        } else if (b[i] >= 0x20 && b[i] < 0x7f) {
            s[w++] = (char)b[i];
        } else {
            w += (size_t)sprintf(s + w, "\\x%02x", b[i]);
        }
    }
    s[w] = '\0';
    return s;
}

int ctl_fail(const char *what)
{
    fprintf(stderr, "tikv-ctl: %s failed: %s\n", what, tikvc_errmsg());
    return CTL_FAILED;
}

int ctl_connect(const ctl_opts *o, tikvc_client **out)
{
    tikvc_opts to;
    tikvc_opts_init(&to);
    to.pd_endpoints = o->pd;
    to.ca_path = o->ca_path;
    to.cert_path = o->cert_path;
    to.key_path = o->key_path;
    if (o->timeout_ms > 0) {
        to.rpc_timeout_ms = o->timeout_ms;
        to.pd_timeout_ms = o->timeout_ms;
    }
    to.batch_commands = !o->batch_commands_off;
    to.txn_one_pc = !o->one_pc_off;
    if (tikvc_open(&to, out) != TIKVC_OK) {
        fprintf(stderr, "tikv-ctl: cannot connect to PD at %s: %s\n", o->pd, tikvc_errmsg());
        return CTL_CONNECT;
    }
    return CTL_OK;
}

/* ---- output ----------------------------------------------------------------------------- */

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        printf("%s\n", s);
        free(s);
    }
    json_decref(j);
}

static json_t *json_bytes(const void *p, size_t n)
{
    char *s = ctl_escape(p, n);
    json_t *j = json_string(s != NULL ? s : "");
    free(s);
    return j;
}

/* Prints pairs as a two-column table (or a JSON array). */
static void print_pairs(const ctl_opts *o, const tikvc_kvs *kvs)
{
    if (o->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < kvs->len; i++) {
            json_t *e = json_object();
            json_object_set_new(e, "key",
                                json_bytes(kvs->items[i].key.data, kvs->items[i].key.len));
            if (!o->key_only)
                json_object_set_new(e, "value",
                                    json_bytes(kvs->items[i].value.data, kvs->items[i].value.len));
            json_array_append_new(a, e);
        }
        print_json(a);
        return;
    }
    char **ks = calloc(kvs->len + 1, sizeof(char *));
    size_t w = 3;
    for (size_t i = 0; ks != NULL && i < kvs->len; i++) {
        ks[i] = ctl_escape(kvs->items[i].key.data, kvs->items[i].key.len);
        if (ks[i] != NULL && strlen(ks[i]) > w)
            w = strlen(ks[i]);
    }
    if (w > 60)
        w = 60;
    printf("%-*s  %s\n", (int)w, "KEY", o->key_only ? "" : "VALUE");
    for (size_t i = 0; ks != NULL && i < kvs->len; i++) {
        char *v =
            o->key_only ? NULL : ctl_escape(kvs->items[i].value.data, kvs->items[i].value.len);
        printf("%-*s  %s\n", (int)w, ks[i] ? ks[i] : "?", v ? v : "");
        free(v);
        free(ks[i]);
    }
    free(ks);
    printf("(%zu pair%s)\n", kvs->len, kvs->len == 1 ? "" : "s");
}

static void print_ok(const ctl_opts *o, const char *what, uint64_t commit_ts)
{
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "ok", json_true());
        if (commit_ts != 0)
            json_object_set_new(j, "commit_ts", json_integer((json_int_t)commit_ts));
        print_json(j);
    } else if (commit_ts != 0) {
        printf("%s (committed at ts %" PRIu64 ")\n", what, commit_ts);
    } else {
        printf("%s\n", what);
    }
}

static int print_value(const ctl_opts *o, const tikvc_buf *key, const tikvc_buf *v, bool found)
{
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "key", json_bytes(key->data, key->len));
        json_object_set_new(j, "found", json_boolean(found));
        if (found)
            json_object_set_new(j, "value", json_bytes(v->data, v->len));
        print_json(j);
    } else if (found) {
        char *s = ctl_escape(v->data, v->len);
        printf("%s\n", s ? s : "");
        free(s);
    } else {
        fprintf(stderr, "tikv-ctl: key not found\n");
    }
    return found ? CTL_OK : CTL_NOT_FOUND;
}

/* ---- raw and txn commands --------------------------------------------------------------- */

/* Decodes the positionals from index @first on into @out[0..n). */
static int args_bytes(const ctl_opts *o, int first, int n, tikvc_buf *out)
{
    if (o->n_pos != first + n)
        return usage_error("%s: wrong number of arguments", o->pos[0]);
    for (int i = 0; i < n; i++)
        if (!ctl_decode(o, o->pos[first + i], &out[i]))
            return CTL_USAGE;
    return CTL_OK;
}

static int range_bytes(const ctl_opts *o, tikvc_buf *from, tikvc_buf *to)
{
    if (o->has_from && !ctl_decode(o, o->from, from))
        return CTL_USAGE;
    if (o->has_to && !ctl_decode(o, o->to, to))
        return CTL_USAGE;
    return CTL_OK;
}

static int cmd_raw(const ctl_opts *o, tikvc_client *c)
{
    const char *sub = o->n_pos > 1 ? o->pos[1] : "";
    tikvc_buf b[2] = {{0}, {0}};
    int rc = CTL_OK;
    if (strcmp(sub, "get") == 0) {
        rc = args_bytes(o, 2, 1, b);
        tikvc_buf v = {0};
        bool found = false;
        if (rc == CTL_OK)
            rc = tikvc_raw_get(c, b[0].data, b[0].len, &v, &found) == TIKVC_OK
                     ? print_value(o, &b[0], &v, found)
                     : ctl_fail("raw get");
        tikvc_buf_free(&v);
    } else if (strcmp(sub, "put") == 0) {
        rc = args_bytes(o, 2, 2, b);
        if (rc == CTL_OK)
            rc = tikvc_raw_put(c, b[0].data, b[0].len, b[1].data, b[1].len, o->ttl) == TIKVC_OK
                     ? (print_ok(o, "ok", 0), CTL_OK)
                     : ctl_fail("raw put");
    } else if (strcmp(sub, "delete") == 0) {
        rc = args_bytes(o, 2, 1, b);
        if (rc == CTL_OK)
            rc = tikvc_raw_delete(c, b[0].data, b[0].len) == TIKVC_OK
                     ? (print_ok(o, "ok", 0), CTL_OK)
                     : ctl_fail("raw delete");
    } else if (strcmp(sub, "scan") == 0) {
        rc = o->n_pos == 2 ? range_bytes(o, &b[0], &b[1])
                           : usage_error("%s: raw scan takes options only", "raw");
        tikvc_kvs kvs = {0};
        unsigned flags =
            (o->reverse ? TIKVC_SCAN_REVERSE : 0) | (o->key_only ? TIKVC_SCAN_KEY_ONLY : 0);
        if (rc == CTL_OK)
            rc = tikvc_raw_scan(c, b[0].data, b[0].len, b[1].data, b[1].len, (size_t)o->limit,
                                flags, &kvs) == TIKVC_OK
                     ? (print_pairs(o, &kvs), CTL_OK)
                     : ctl_fail("raw scan");
        tikvc_kvs_free(&kvs);
    } else if (strcmp(sub, "delete-range") == 0) {
        if (!o->has_from || !o->has_to)
            rc = usage_error("%s: delete-range needs --from and --to", "raw");
        if (rc == CTL_OK)
            rc = range_bytes(o, &b[0], &b[1]);
        if (rc == CTL_OK)
            rc = tikvc_raw_delete_range(c, b[0].data, b[0].len, b[1].data, b[1].len) == TIKVC_OK
                     ? (print_ok(o, "ok", 0), CTL_OK)
                     : ctl_fail("raw delete-range");
    } else {
        rc = usage_error("unknown raw command '%s'", sub);
    }
    tikvc_buf_free(&b[0]);
    tikvc_buf_free(&b[1]);
    return rc;
}

static int cmd_txn(const ctl_opts *o, tikvc_client *c)
{
    const char *sub = o->n_pos > 1 ? o->pos[1] : "";
    bool get = strcmp(sub, "get") == 0, put = strcmp(sub, "put") == 0,
         del = strcmp(sub, "delete") == 0, scan = strcmp(sub, "scan") == 0;
    if (!get && !put && !del && !scan)
        return usage_error("unknown txn command '%s'", sub);
    tikvc_buf b[2] = {{0}, {0}};
    int rc = scan ? (o->n_pos == 2 ? range_bytes(o, &b[0], &b[1])
                                   : usage_error("%s: txn scan takes options only", "txn"))
                  : args_bytes(o, 2, put ? 2 : 1, b);
    tikvc_txn *t = NULL;
    if (rc == CTL_OK && tikvc_txn_begin(c, &t) != TIKVC_OK)
        rc = ctl_fail("txn begin");
    if (rc == CTL_OK && get) {
        tikvc_buf v = {0};
        bool found = false;
        rc = tikvc_txn_get(t, b[0].data, b[0].len, &v, &found) == TIKVC_OK
                 ? print_value(o, &b[0], &v, found)
                 : ctl_fail("txn get");
        tikvc_buf_free(&v);
    } else if (rc == CTL_OK && scan) {
        tikvc_kvs kvs = {0};
        unsigned flags = o->reverse ? TIKVC_SCAN_REVERSE : 0;
        rc = tikvc_txn_scan(t, b[0].data, b[0].len, b[1].data, b[1].len, (size_t)o->limit, flags,
                            &kvs) == TIKVC_OK
                 ? (print_pairs(o, &kvs), CTL_OK)
                 : ctl_fail("txn scan");
        tikvc_kvs_free(&kvs);
    } else if (rc == CTL_OK) {
        int w = put ? tikvc_txn_set(t, b[0].data, b[0].len, b[1].data, b[1].len)
                    : tikvc_txn_delete(t, b[0].data, b[0].len);
        if (w != TIKVC_OK || tikvc_txn_commit(t) != TIKVC_OK)
            rc = ctl_fail(put ? "txn put" : "txn delete");
        else
            print_ok(o, "ok", tikvc_txn_commit_ts(t));
    }
    tikvc_txn_free(t);
    tikvc_buf_free(&b[0]);
    tikvc_buf_free(&b[1]);
    return rc;
}

/* ---- cluster information ---------------------------------------------------------------- */

static const char *store_state(int s)
{
    return s == 0 ? "Up" : s == 1 ? "Offline" : s == 2 ? "Tombstone" : "?";
}

static json_t *region_json(const tikvc_region *r)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer((json_int_t)r->id));
    json_object_set_new(j, "start_key", json_bytes(r->start.data, r->start.len));
    json_object_set_new(j, "end_key", json_bytes(r->end.data, r->end.len));
    json_object_set_new(j, "conf_ver", json_integer((json_int_t)r->conf_ver));
    json_object_set_new(j, "version", json_integer((json_int_t)r->version));
    json_t *peers = json_array();
    for (size_t i = 0; i < r->n_peers; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "id", json_integer((json_int_t)r->peers[i].id));
        json_object_set_new(p, "store_id", json_integer((json_int_t)r->peers[i].store_id));
        json_object_set_new(p, "role", json_string(r->peers[i].role == 1 ? "Learner" : "Voter"));
        json_array_append_new(peers, p);
    }
    json_object_set_new(j, "peers", peers);
    json_object_set_new(j, "leader_store_id", json_integer((json_int_t)r->leader_store_id));
    return j;
}

static int cmd_region(const ctl_opts *o, tikvc_client *c)
{
    tikvc_region r;
    int mode = o->txn_keys ? TIKVC_MODE_TXN : TIKVC_MODE_RAW;
    tikvc_buf key = {0};
    int rc;
    if (o->has_id && o->n_pos == 1) {
        rc = tikvc_pd_region_by_id(c, o->id, mode, &r);
    } else if (!o->has_id && o->n_pos == 2) {
        if (!ctl_decode(o, o->pos[1], &key))
            return CTL_USAGE;
        rc = tikvc_pd_region_by_key(c, key.data, key.len, mode, &r);
        tikvc_buf_free(&key);
    } else {
        return usage_error("%s: give a KEY or --id ID", "region");
    }
    if (rc != TIKVC_OK)
        return ctl_fail("region lookup");
    if (o->json) {
        print_json(region_json(&r));
    } else {
        char *s = ctl_escape(r.start.data, r.start.len), *e = ctl_escape(r.end.data, r.end.len);
        printf("region id:    %" PRIu64 "\n", r.id);
        printf("start key:    %s\n", r.start.len ? s : "(-inf)");
        printf("end key:      %s\n", r.end.len ? e : "(+inf)");
        printf("epoch:        conf_ver %" PRIu64 ", version %" PRIu64 "\n", r.conf_ver, r.version);
        printf("leader store: %" PRIu64 "\n", r.leader_store_id);
        printf("%-10s %-10s %s\n", "PEER", "STORE", "ROLE");
        for (size_t i = 0; i < r.n_peers; i++)
            printf("%-10" PRIu64 " %-10" PRIu64 " %s%s\n", r.peers[i].id, r.peers[i].store_id,
                   r.peers[i].role == 1 ? "Learner" : "Voter",
                   r.peers[i].id == r.leader_peer_id ? " (leader)" : "");
        free(s);
        free(e);
    }
    tikvc_region_free(&r);
    return CTL_OK;
}

static json_t *stores_json(const tikvc_store *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_object();
        json_object_set_new(j, "id", json_integer((json_int_t)s[i].id));
        json_object_set_new(j, "address", json_string(s[i].address));
        json_object_set_new(j, "status_address", json_string(s[i].status_address));
        json_object_set_new(j, "state", json_string(store_state(s[i].state)));
        json_object_set_new(j, "version", json_string(s[i].version));
        json_array_append_new(a, j);
    }
    return a;
}

static void stores_table(const tikvc_store *s, size_t n)
{
    printf("%-8s %-22s %-10s %-22s %s\n", "STORE", "ADDRESS", "STATE", "STATUS ADDRESS", "VERSION");
    for (size_t i = 0; i < n; i++)
        printf("%-8" PRIu64 " %-22s %-10s %-22s %s\n", s[i].id, s[i].address,
               store_state(s[i].state), s[i].status_address, s[i].version);
}

static int cmd_store(const ctl_opts *o, tikvc_client *c)
{
    tikvc_store *s = NULL;
    size_t n = 0;
    if (o->n_pos == 2) {
        char *end = NULL;
        errno = 0;
        unsigned long long id = strtoull(o->pos[1], &end, 10);
        if (errno != 0 || end == o->pos[1] || *end != '\0')
            return usage_error("store: '%s' is not a store id", o->pos[1]);
        s = calloc(1, sizeof(*s));
        if (s == NULL || tikvc_pd_store(c, id, s) != TIKVC_OK) {
            free(s);
            return ctl_fail("store lookup");
        }
        n = 1;
    } else if (o->n_pos == 1) {
        if (tikvc_pd_stores(c, &s, &n) != TIKVC_OK)
            return ctl_fail("store list");
    } else {
        return usage_error("%s: takes at most one store id", "store");
    }
    if (o->json && o->n_pos == 2) {
        json_t *a = stores_json(s, n);
        json_t *one = json_incref(json_array_get(a, 0));
        json_decref(a);
        print_json(one);
    } else if (o->json) {
        print_json(stores_json(s, n));
    } else
        stores_table(s, n);
    tikvc_stores_free(s, n);
    return CTL_OK;
}

static int cmd_cluster(const ctl_opts *o, tikvc_client *c)
{
    if (o->n_pos != 1)
        return usage_error("%s: takes no arguments", "cluster");
    uint64_t cid = 0;
    tikvc_member *m = NULL;
    size_t nm = 0, ns = 0, nr = 0;
    tikvc_store *s = NULL;
    tikvc_region *r = NULL;
    if (tikvc_pd_members(c, &cid, &m, &nm) != TIKVC_OK)
        return ctl_fail("members");
    int rc = CTL_OK;
    if (tikvc_pd_stores(c, &s, &ns) != TIKVC_OK)
        rc = ctl_fail("stores");
    if (rc == CTL_OK &&
        tikvc_pd_scan_regions(c, "", 0, "", 0, 0, TIKVC_MODE_RAW, &r, &nr) != TIKVC_OK)
        rc = ctl_fail("regions");
    if (rc == CTL_OK && o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "cluster_id", json_integer((json_int_t)cid));
        json_t *ma = json_array();
        for (size_t i = 0; i < nm; i++) {
            json_t *e = json_object();
            json_object_set_new(e, "name", json_string(m[i].name));
            json_object_set_new(e, "id", json_integer((json_int_t)m[i].id));
            json_object_set_new(e, "client_url", json_string(m[i].client_url));
            json_object_set_new(e, "leader", json_boolean(m[i].leader));
            json_array_append_new(ma, e);
        }
        json_object_set_new(j, "members", ma);
        json_object_set_new(j, "stores", stores_json(s, ns));
        json_object_set_new(j, "region_count", json_integer((json_int_t)nr));
        print_json(j);
    } else if (rc == CTL_OK) {
        printf("cluster id: %" PRIu64 "\n\n", cid);
        printf("%-20s %-22s %-32s %s\n", "PD MEMBER", "ID", "CLIENT URL", "LEADER");
        for (size_t i = 0; i < nm; i++)
            printf("%-20s %-22" PRIu64 " %-32s %s\n", m[i].name, m[i].id, m[i].client_url,
                   m[i].leader ? "yes" : "");
        printf("\n");
        stores_table(s, ns);
        printf("\nregions: %zu\n", nr);
    }
    tikvc_members_free(m, nm);
    tikvc_stores_free(s, ns);
    tikvc_regions_free(r, nr);
    return rc;
}

/* ---- options ---------------------------------------------------------------------------- */

static bool parse_num(const char *flag, const char *v, long long min, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long x = v != NULL ? strtoll(v, &end, 10) : 0;
    if (v == NULL || errno != 0 || end == v || *end != '\0' || x < min) {
        fprintf(stderr, "tikv-ctl: %s needs a number >= %lld\n", flag, min);
        return false;
    }
    *out = x;
    return true;
}

static int parse(int argc, char **argv, ctl_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->pd = "127.0.0.1:2379";
    o->limit = 100;
    o->concurrency = 1;
    o->seconds = 5;
    o->value_size = 100;
    o->keys = 100000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
#define TAKES_VALUE                                                                                \
    do {                                                                                           \
        if (v == NULL)                                                                             \
            return usage_error("%s needs a value", a);                                             \
        i++;                                                                                       \
    } while (0)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            exit(CTL_OK);
        } else if (strcmp(a, "--pd") == 0) {
            TAKES_VALUE;
            o->pd = v;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--hex") == 0) {
            o->hex = true;
        } else if (strcmp(a, "--no-batch") == 0) {
            o->batch_commands_off = true;
        } else if (strcmp(a, "--no-1pc") == 0) {
            o->one_pc_off = true;
        } else if (strcmp(a, "--ca-path") == 0) {
            TAKES_VALUE;
            o->ca_path = v;
        } else if (strcmp(a, "--cert-path") == 0) {
            TAKES_VALUE;
            o->cert_path = v;
        } else if (strcmp(a, "--key-path") == 0) {
            TAKES_VALUE;
            o->key_path = v;
        } else if (strcmp(a, "--config") == 0) {
            TAKES_VALUE;
            o->config_path = v;
        } else if (strcmp(a, "--data-dir") == 0) {
            TAKES_VALUE;
            o->data_dir = v;
        } else if (strcmp(a, "--path") == 0) {
            TAKES_VALUE;
            o->enc_path = v;
        } else if (strcmp(a, "--from") == 0) {
            TAKES_VALUE;
            o->from = v;
            o->has_from = true;
        } else if (strcmp(a, "--to") == 0) {
            TAKES_VALUE;
            o->to = v;
            o->has_to = true;
        } else if (strcmp(a, "--reverse") == 0) {
            o->reverse = true;
        } else if (strcmp(a, "--key-only") == 0) {
            o->key_only = true;
        } else if (strcmp(a, "--txn") == 0) {
            o->txn_keys = true;
        } else if (strcmp(a, "--limit") == 0 || strcmp(a, "--ttl") == 0 || strcmp(a, "--id") == 0 ||
                   strcmp(a, "--timeout") == 0 || strcmp(a, "--concurrency") == 0 ||
                   strcmp(a, "--seconds") == 0 || strcmp(a, "--value-size") == 0 ||
                   strcmp(a, "--keys") == 0) {
            TAKES_VALUE;
            bool positive = strcmp(a, "--limit") != 0 && strcmp(a, "--ttl") != 0 &&
                            strcmp(a, "--value-size") != 0;
            if (!parse_num(a, v, positive ? 1 : 0, &n))
                return CTL_USAGE;
            if (strcmp(a, "--limit") == 0)
                o->limit = n;
            else if (strcmp(a, "--ttl") == 0)
                o->ttl = (uint64_t)n;
            else if (strcmp(a, "--id") == 0)
                o->id = (uint64_t)n, o->has_id = true;
            else if (strcmp(a, "--timeout") == 0)
                o->timeout_ms = (int)n;
            else if (strcmp(a, "--concurrency") == 0)
                o->concurrency = (int)TKV_CTL_MIN(n, 4096);
            else if (strcmp(a, "--seconds") == 0)
                o->seconds = (int)TKV_CTL_MIN(n, 86400);
            else if (strcmp(a, "--value-size") == 0)
                o->value_size = (int)TKV_CTL_MIN(n, 1 << 24);
            else
                o->keys = n;
        } else if (a[0] == '-' && a[1] == '-') {
            return usage_error("unknown option %s", a);
        } else if (o->n_pos < (int)(sizeof(o->pos) / sizeof(o->pos[0]))) {
            o->pos[o->n_pos++] = a;
        } else {
            return usage_error("too many arguments (at '%s')", a);
        }
#undef TAKES_VALUE
    }
    if (o->n_pos == 0)
        return usage_error("%s", "no command given");
    return CTL_OK;
}

int main(int argc, char **argv)
{
    /* Local commands that need no cluster. */
    if (argc >= 2 && strcmp(argv[1], "audit") == 0)
        return sec_audit_verify_cmd(argc - 2, argv + 2, "tikv-ctl");
    ctl_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != CTL_OK)
        return rc;
    const char *cmd = o.pos[0];
    if (strcmp(cmd, "encryption-meta") == 0) /* offline: no cluster (issue 9) */
        return o.n_pos <= 2 ? ctl_encryption_meta(&o)
                            : usage_error("%s: one subcommand at most", cmd);
    bool known = strcmp(cmd, "raw") == 0 || strcmp(cmd, "txn") == 0 || strcmp(cmd, "region") == 0 ||
                 strcmp(cmd, "store") == 0 || strcmp(cmd, "cluster") == 0 ||
                 strcmp(cmd, "bench") == 0;
    if (!known)
        return usage_error("unknown command '%s'", cmd);
    if (strcmp(cmd, "bench") == 0 && o.n_pos != 2)
        return usage_error("%s: give raw-put, raw-get, txn-put or txn-transfer", "bench");
    tikvc_client *c = NULL;
    rc = ctl_connect(&o, &c);
    if (rc != CTL_OK)
        return rc;
    if (strcmp(cmd, "raw") == 0)
        rc = cmd_raw(&o, c);
    else if (strcmp(cmd, "txn") == 0)
        rc = cmd_txn(&o, c);
    else if (strcmp(cmd, "region") == 0)
        rc = cmd_region(&o, c);
    else if (strcmp(cmd, "store") == 0)
        rc = cmd_store(&o, c);
    else if (strcmp(cmd, "cluster") == 0)
        rc = cmd_cluster(&o, c);
    else
        rc = ctl_bench(&o, c, o.pos[1]);
    tikvc_close(c);
    return rc;
}
