/*
 * fuzz_pd_http.c: pd-server's HTTP API handlers (src/pd/pd_http.c, through its own route
 * table) with request bodies and path tails from the input, over a small in-process cluster
 * (four stores, three regions with leaders), without a network.
 *
 * Requests: POST /pd/api/v1/config (whole, /schedule, /replicate) with JSON bodies built from
 * PD's setting names (numbers, durations, label lists, sections, unknown keys, wrong types) or
 * raw bytes; POST /pd/api/v1/operators with operator descriptions (every name PD knows, region
 * and store ids, store lists, split policies and hex keys) or raw bytes; GET and DELETE
 * /pd/api/v1/operators/{tail}; GET /region/id/{tail}, /regions, /operators, /cluster; and
 * coordinator rounds that let operators time out. Checked:
 *   - every answer is 200 or a 4xx the handler documents, never 500, with a JSON body;
 *   - a config POST answered 400 changes nothing; one answered 200 is what GET shows
 *     afterwards (numbers and label lists as posted, durations meaning the same time), and
 *     what GET shows posted back is accepted and changes nothing (a fixed point);
 *   - an operator POST answered 200 leaves an admin operator named after the request on that
 *     region, which GET /operators/{id} describes; 404 means the region is unknown, 409 that
 *     it already has an admin operator; the operator list has one line per operator;
 *   - DELETE /operators/{id} answers 200 exactly when an operator ran, and then none does;
 *   - operator commands go to the store of the region's leader.
 */
#include <inttypes.h>
#include <stdio.h>

#include "base/cfg.h"
#include "base/log.h"
#include "fuzz/fuzz.h"
#include "fuzz/pd/fuzz_pd.h"
#include "http/http.h"
#include "pd/pd_int.h"

typedef struct fx {
    pd_storage *st;
    pd_id_alloc ids;
    pd_cluster *c;
    pd_server s;
    uint64_t now;
} fx;

static void sink(void *ud, uint64_t store_id, const Pdpb__RegionHeartbeatResponse *m)
{
    fx *f = ud;
    pd_region *r = pd__rt_get(&f->c->regions, m->region_id);
    FUZZ_CHECK(r != NULL && store_id == pd__region_leader_store(r));
}

/* ---- the fixture -------------------------------------------------------------------------- */

static void heartbeat(fx *f, uint64_t id, const char *start, const char *end,
                      const uint64_t *stores, size_t n, uint64_t learner_store,
                      uint64_t leader_store)
{
    Metapb__Region m = METAPB__REGION__INIT;
    Metapb__RegionEpoch e = METAPB__REGION_EPOCH__INIT;
    Metapb__Peer peers[4], *pp[4];
    const Metapb__Peer *leader = NULL;
    e.version = 2;
    e.conf_ver = 3;
    m.id = id;
    m.region_epoch = &e;
    m.start_key = (ProtobufCBinaryData){strlen(start), (uint8_t *)start};
    m.end_key = (ProtobufCBinaryData){strlen(end), (uint8_t *)end};
    for (size_t i = 0; i < n; i++) {
        metapb__peer__init(&peers[i]);
        peers[i].id = id * 10 + stores[i];
        peers[i].store_id = stores[i];
        if (stores[i] == learner_store)
            peers[i].role = METAPB__PEER_ROLE__Learner;
        if (stores[i] == leader_store)
            leader = &peers[i];
        pp[i] = &peers[i];
    }
    m.peers = pp;
    m.n_peers = n;
    Pdpb__RegionHeartbeatRequest req = PDPB__REGION_HEARTBEAT_REQUEST__INIT;
    req.region = &m;
    req.leader = (Metapb__Peer *)leader;
    req.term = 2;
    req.approximate_size = 1 << 20;
    pd_result res;
    FUZZ_CHECK(pd__cluster_region_heartbeat(f->c, &req, &res) == 0);
    FUZZ_CHECK(res.type == PDPB__ERROR_TYPE__OK);
}

static void fixture_open(fx *f)
{
    memset(f, 0, sizeof(*f));
    f->now = 1000000;
    char err[TKV_ERRMSG_LEN];
    FUZZ_CHECK(pd__storage_open(NULL, &f->st, err) == 0);
    FUZZ_CHECK(pd__id_init(&f->ids, f->st, 0) == 0);
    pd_sched_cfg cfg;
    pd__sched_cfg_default(&cfg);
    FUZZ_CHECK(pd__cluster_new(f->st, &f->ids, 42, &cfg, fuzz_pd_read_now, &f->now, &f->c) == 0);
    pd__cluster_set_hb_sink(f->c, sink, f);
    pd_config_init(&f->s.cfg);
    f->s.cluster = f->c;
    f->s.st = f->st;
    f->s.cluster_id = 42;
    snprintf(f->s.advertise_url, sizeof(f->s.advertise_url), "http://127.0.0.1:2379");
    /* Stores 1..4 in three zones, a bootstrapped cluster with three regions. */
    pd_result res;
    for (uint64_t id = 1; id <= 4; id++) {
        Metapb__Store st = METAPB__STORE__INIT;
        char addr[32];
        snprintf(addr, sizeof(addr), "127.0.0.1:%" PRIu64, 20160 + id);
        st.id = id;
        st.address = addr;
        if (id == 1) {
            Metapb__Region r = METAPB__REGION__INIT;
            Metapb__RegionEpoch e = METAPB__REGION_EPOCH__INIT;
            Metapb__Peer p = METAPB__PEER__INIT, *pp[1] = {&p};
            e.version = e.conf_ver = 1;
            r.id = 1;
            r.region_epoch = &e;
            p.id = 11;
            p.store_id = 1;
            r.peers = pp;
            r.n_peers = 1;
            FUZZ_CHECK(pd__cluster_bootstrap(f->c, &st, &r, &res) == 0);
        } else {
            FUZZ_CHECK(pd__cluster_put_store(f->c, &st, &res) == 0);
        }
        FUZZ_CHECK(res.type == PDPB__ERROR_TYPE__OK);
    }
    const uint64_t a[] = {1, 2, 3}, b[] = {2, 3, 4};
    heartbeat(f, 1, "", "f", a, 3, 0, 1);
    heartbeat(f, 2, "f", "m", a, 3, 0, 2);
    heartbeat(f, 3, "m", "", b, 3, 4, 3);
}

static void fixture_close(fx *f)
{
    pd__cluster_free(f->c);
    pd__id_deinit(&f->ids);
    pd__storage_close(f->st);
}

/* ---- calling handlers ----------------------------------------------------------------------- */

/* Serves @method @path (a prefix route gets what follows as its tail) with @body and checks the
 * answer is a documented status with a JSON body; returns the status, @out (may be NULL) gets
 * the decoded body. */
static int call(fx *f, const char *method, const char *path, const void *body, size_t len,
                json_t **out)
{
    size_t n;
    const http_route *routes = pd__http_routes(&n);
    const http_route *hit = NULL;
    const char *tail = "";
    for (size_t i = 0; i < n && hit == NULL; i++) {
        const http_route *r = &routes[i];
        if (r->method != NULL && strcmp(r->method, method) != 0)
            continue;
        size_t pl = strlen(r->path);
        if (r->prefix ? strncmp(path, r->path, pl) == 0 : strcmp(path, r->path) == 0) {
            hit = r;
            tail = r->prefix ? path + pl : "";
        }
    }
    FUZZ_CHECK(hit != NULL);
    http_request rq = {.method = method,
                       .path = path,
                       .tail = tail,
                       .body = body,
                       .body_len = len,
                       .peer = "127.0.0.1:5555",
                       .cert_cn = "",
                       .conn_internal = NULL};
    http_response rs = {200, "application/json", {0}};
    tkv_buf_init(&rs.body);
    hit->fn(&rq, &rs, &f->s);
    if (rs.status != 200 && rs.status != 400 && rs.status != 404 && rs.status != 405 &&
        rs.status != 409)
        fprintf(stderr, "pd_http: %s %s answered %d: %.*s\n", method, path, rs.status,
                (int)rs.body.len, (const char *)rs.body.data);
    FUZZ_CHECK(rs.status == 200 || rs.status == 400 || rs.status == 404 || rs.status == 405 ||
               rs.status == 409);
    json_error_t jerr;
    json_t *j = json_loadb((const char *)rs.body.data, rs.body.len, JSON_DECODE_ANY, &jerr);
    FUZZ_CHECK(j != NULL);
    if (out != NULL)
        *out = j;
    else
        json_decref(j);
    tkv_buf_deinit(&rs.body);
    return rs.status;
}

/* ---- config ----------------------------------------------------------------------------- */

static const char *const sched_keys[] = {
    "max-snapshot-count",     "max-pending-peer-count", "split-merge-interval",
    "patrol-region-interval", "max-store-down-time",    "leader-schedule-limit",
    "region-schedule-limit",  "replica-schedule-limit", "fast-operator-timeout",
    "slow-operator-timeout",  "store-disconnect-time",
};
static const char *const repl_keys[] = {"max-replicas", "location-labels"};

static json_t *gen_value(fuzz_in *in)
{
    static const char *const strs[] = {"30m",  "10s",  "1h30m",     "500ms", "0",   "7d",
                                       "1.5h", "zone", "zone,host", "",      "abc", "-1",
                                       "10",   "4.0",  "1m1m",      "\"x\""};
    switch (fuzz_u8(in) % 8) {
    case 0:
        return json_integer((json_int_t)fuzz_uint(in, 1 + fuzz_u8(in) % 8));
    case 1:
        return json_integer((json_int_t)(int8_t)fuzz_u8(in));
    case 2:
        return json_real((double)fuzz_u8(in) / 4);
    case 3: {
        json_t *a = json_array();
        size_t n = fuzz_below(in, 4);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, fuzz_u8(in) == 0 ? json_integer(1)
                                                      : json_string(strs[fuzz_below(in, 16)]));
        return a;
    }
    case 4:
        return fuzz_u8(in) & 1 ? json_true() : json_null();
    default:
        return json_string(strs[fuzz_below(in, TKV_ARRAY_LEN(strs))]);
    }
}

/* Builds a config body: keys bare, prefixed ("schedule.x") or in section objects, each
 * setting under one spelling only (found by the 10-minute run: with two spellings of one
 * setting in a body, which value wins is the handler's choice, not something to check). */
static json_t *gen_config(fuzz_in *in)
{
    json_t *o = json_object();
    size_t n = 1 + fuzz_below(in, 4);
    const char *used[4] = {NULL};
    size_t nused = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = fuzz_u8(in);
        bool sched = b & 1;
        const char *k = sched ? sched_keys[fuzz_below(in, TKV_ARRAY_LEN(sched_keys))]
                              : repl_keys[fuzz_below(in, TKV_ARRAY_LEN(repl_keys))];
        bool again = false;
        for (size_t j = 0; j < nused; j++)
            again = again || used[j] == k;
        if (again)
            continue;
        used[nused++] = k;
        char key[96];
        switch ((b >> 1) % 4) {
        case 0:
            snprintf(key, sizeof(key), "%s", k);
            json_object_set_new(o, key, gen_value(in));
            break;
        case 1:
            snprintf(key, sizeof(key), "%s.%s", sched ? "schedule" : "replication", k);
            json_object_set_new(o, key, gen_value(in));
            break;
        case 2: {
            const char *sec = sched ? "schedule" : "replication";
            json_t *s = json_object_get(o, sec);
            if (!json_is_object(s)) {
                s = json_object();
                json_object_set_new(o, sec, s);
            }
            json_object_set_new(s, k, gen_value(in));
            break;
        }
        default:
            json_object_set_new(o, "no-such-setting", gen_value(in));
            break;
        }
    }
    return o;
}

/* A body from the recipe, or the input's bytes as they are. */
static char *body_of(fuzz_in *in, json_t *(*gen)(fuzz_in *), size_t *len)
{
    if (fuzz_u8(in) % 4 == 0) {
        size_t n;
        const uint8_t *p = fuzz_bytes(in, 255, &n);
        char *b = malloc(n + 1);
        FUZZ_CHECK(b != NULL);
        memcpy(b, p, n);
        b[n] = '\0';
        *len = n;
        return b;
    }
    json_t *j = gen(in);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    FUZZ_CHECK(text != NULL);
    *len = strlen(text);
    return text;
}

/* Checks that each setting in the posted object @o reads back from @now as posted. */
static void check_posted(json_t *o, const char *section, json_t *now)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (json_is_object(v) && section == NULL) {
            check_posted(v, k, now);
            continue;
        }
        char sec[32] = "";
        const char *name = k;
        const char *dot = strchr(k, '.');
        if (section != NULL) {
            snprintf(sec, sizeof(sec), "%s", section);
        } else if (dot != NULL) {
            snprintf(sec, sizeof(sec), "%.*s", (int)(dot - k), k);
            name = dot + 1;
        } else {
            bool in_repl = strcmp(k, "max-replicas") == 0 || strcmp(k, "location-labels") == 0;
            snprintf(sec, sizeof(sec), "%s", in_repl ? "replication" : "schedule");
        }
        json_t *got = json_object_get(json_object_get(now, sec), name);
        FUZZ_CHECK(got != NULL);
        if (json_is_integer(got) && json_is_integer(v)) {
            FUZZ_CHECK(json_integer_value(got) == json_integer_value(v));
        } else if (strcmp(name, "location-labels") == 0 && json_is_string(v)) {
            FUZZ_CHECK(strcmp(json_string_value(got), json_string_value(v)) == 0);
        } else if (json_is_string(got) && json_is_string(v) &&
                   strcmp(json_string_value(v), "0") != 0) {
            uint64_t want, have;
            const char *w = json_string_value(v), *g = json_string_value(got);
            FUZZ_CHECK(tkv_cfg_parse_duration(w, strlen(w), &want, NULL) == 0);
            FUZZ_CHECK(tkv_cfg_parse_duration(g, strlen(g), &have, NULL) == 0);
            FUZZ_CHECK(want == have);
        }
    }
}

static void op_config(fx *f, fuzz_in *in)
{
    static const char *const paths[] = {"/pd/api/v1/config", "/pd/api/v1/config/schedule",
                                        "/pd/api/v1/config/replicate"};
    static const char *const sections[] = {NULL, "schedule", "replication"};
    size_t which = fuzz_below(in, 3);
    size_t len;
    char *body = body_of(in, gen_config, &len);
    pd_sched_cfg before, after;
    pd__cluster_get_config(f->c, &before);
    int status = call(f, "POST", paths[which], body, len, NULL);
    FUZZ_CHECK(status == 200 || status == 400);
    pd__cluster_get_config(f->c, &after);
    if (status == 400) {
        FUZZ_CHECK(fuzz_pd_sched_equal(&before, &after)); /* all or nothing */
    } else {
        json_error_t jerr;
        json_t *posted = json_loads(body, 0, &jerr);
        json_t *now = pd__sched_cfg_json(&after, 0);
        FUZZ_CHECK(posted != NULL && now != NULL);
        check_posted(posted, sections[which], now);
        json_decref(posted);
        json_decref(now);
    }
    free(body);
    /* What GET shows, posted back, is accepted and changes nothing. */
    json_t *shown;
    FUZZ_CHECK(call(f, "GET", paths[which], NULL, 0, &shown) == 200);
    if (which == 0) {
        /* The whole config also carries server settings: post only the two sections. */
        json_t *o = json_pack("{s:O, s:O}", "schedule", json_object_get(shown, "schedule"),
                              "replication", json_object_get(shown, "replication"));
        json_decref(shown);
        shown = o;
    }
    char *text = json_dumps(shown, JSON_COMPACT);
    json_decref(shown);
    status = call(f, "POST", paths[which], text, strlen(text), NULL);
    if (status != 200)
        fprintf(stderr, "pd_http: GET's own config refused: %s\n", text);
    FUZZ_CHECK(status == 200);
    pd_sched_cfg again;
    pd__cluster_get_config(f->c, &again);
    FUZZ_CHECK(fuzz_pd_sched_equal(&after, &again));
    free(text);
}

/* ---- operators ------------------------------------------------------------------------------ */

static const char *const op_names[] = {"transfer-leader", "transfer-region", "transfer-peer",
                                       "add-peer",        "add-learner",     "remove-peer",
                                       "split-region",    "merge-region"};

static json_t *gen_operator(fuzz_in *in)
{
    json_t *o = json_object();
    uint8_t mask = fuzz_u8(in);
    if (mask & 1)
        json_object_set_new(o, "name", json_string(op_names[fuzz_below(in, 8)]));
    if (mask & 2)
        json_object_set_new(o, "region_id",
                            fuzz_u8(in) % 8 == 0 ? gen_value(in) : json_integer(fuzz_below(in, 5)));
    if (mask & 4)
        json_object_set_new(o, "to_store_id", json_integer(fuzz_below(in, 6)));
    if (mask & 8)
        json_object_set_new(o, "from_store_id", json_integer(fuzz_below(in, 6)));
    if (mask & 16)
        json_object_set_new(o, "store_id", json_integer(fuzz_below(in, 6)));
    if (mask & 32) {
        json_t *a = json_array();
        size_t n = fuzz_below(in, 5);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, json_integer(fuzz_below(in, 6)));
        json_object_set_new(o, "to_store_ids", a);
    }
    if (mask & 64) {
        static const char *const pol[] = {"scan", "approximate", "usekey", "other"};
        json_object_set_new(o, "policy", json_string(pol[fuzz_below(in, 4)]));
    }
    if (mask & 128) {
        static const char *const hk[] = {"62", "6a", "7a7a", "", "6", "zz", "0061"};
        json_t *a = json_array();
        size_t n = fuzz_below(in, 3);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, json_string(hk[fuzz_below(in, 7)]));
        json_object_set_new(o, "keys", a);
    }
    return o;
}

static void op_operator_post(fx *f, fuzz_in *in)
{
    size_t len;
    char *body = body_of(in, gen_operator, &len);
    json_error_t jerr;
    json_t *req = json_loads(body, 0, &jerr);
    json_t *rid = json_object_get(req, "region_id");
    uint64_t region = 0; /* as the handler reads it: a non-negative integer or real */
    if (json_is_integer(rid) && json_integer_value(rid) >= 0)
        region = (uint64_t)json_integer_value(rid);
    else if (json_is_real(rid) && json_real_value(rid) >= 0)
        region = (uint64_t)json_real_value(rid);
    pd__cluster_lock(f->c);
    bool known = region != 0 && pd__rt_get(&f->c->regions, region) != NULL;
    const pd_operator *had = pd__map_get(&f->c->ops, region);
    bool had_admin = had != NULL && (had->kind & PD_OPK_ADMIN);
    pd__cluster_unlock(f->c);
    int status = call(f, "POST", "/pd/api/v1/operators", body, len, NULL);
    FUZZ_CHECK(status == 200 || status == 400 || status == 404 || status == 409);
    if (status == 404)
        FUZZ_CHECK(!known);
    if (status == 409)
        FUZZ_CHECK(had_admin);
    if (status == 200) {
        FUZZ_CHECK(known);
        const char *name = json_string_value(json_object_get(req, "name"));
        char want[48];
        snprintf(want, sizeof(want), "admin-%s", name);
        pd__cluster_lock(f->c);
        const pd_operator *op = pd__map_get(&f->c->ops, region);
        FUZZ_CHECK(op != NULL && (op->kind & PD_OPK_ADMIN) && strcmp(op->desc, want) == 0);
        pd__cluster_unlock(f->c);
        char path[64];
        snprintf(path, sizeof(path), "/pd/api/v1/operators/%" PRIu64, region);
        json_t *got;
        FUZZ_CHECK(call(f, "GET", path, NULL, 0, &got) == 200);
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(got, "desc")), want) == 0);
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(got, "status")), "RUNNING") == 0);
        json_decref(got);
    }
    json_decref(req);
    free(body);
}

static void op_operator_region(fx *f, fuzz_in *in)
{
    char path[320];
    uint8_t b = fuzz_u8(in);
    if (b & 1) {
        size_t n;
        const uint8_t *p = fuzz_bytes(in, 32, &n);
        char tail[40];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (p[i] != 0)
                tail[k++] = (char)p[i];
        tail[k] = '\0';
        snprintf(path, sizeof(path), "/pd/api/v1/operators/%s", tail);
    } else {
        snprintf(path, sizeof(path), "/pd/api/v1/operators/%u", (unsigned)fuzz_below(in, 5));
    }
    /* A named (non-numeric) operator reads as id 0, which no operator has. */
    uint64_t id = strtoull(path + strlen("/pd/api/v1/operators/"), NULL, 10);
    pd__cluster_lock(f->c);
    bool running = pd__map_get(&f->c->ops, id) != NULL;
    pd__cluster_unlock(f->c);
    bool del = b & 2;
    int status = call(f, del ? "DELETE" : "GET", path, NULL, 0, NULL);
    if (del && status == 200) {
        FUZZ_CHECK(running);
        pd__cluster_lock(f->c);
        FUZZ_CHECK(pd__map_get(&f->c->ops, id) == NULL);
        pd__cluster_unlock(f->c);
    }
    if (del && running && path[strlen("/pd/api/v1/operators/")] >= '1' &&
        path[strlen("/pd/api/v1/operators/")] <= '9')
        FUZZ_CHECK(status == 200 || status == 400);
}

static void op_get(fx *f, fuzz_in *in)
{
    json_t *j;
    switch (fuzz_u8(in) % 4) {
    case 0: {
        FUZZ_CHECK(call(f, "GET", "/pd/api/v1/operators", NULL, 0, &j) == 200);
        pd__cluster_lock(f->c);
        FUZZ_CHECK(json_array_size(j) == f->c->ops.len);
        pd__cluster_unlock(f->c);
        break;
    }
    case 1: {
        char path[64];
        snprintf(path, sizeof(path), "/pd/api/v1/region/id/%u", (unsigned)fuzz_below(in, 5));
        call(f, "GET", path, NULL, 0, &j);
        break;
    }
    case 2:
        FUZZ_CHECK(call(f, "GET", "/pd/api/v1/regions", NULL, 0, &j) == 200);
        FUZZ_CHECK(json_array_size(json_object_get(j, "regions")) ==
                   (size_t)json_integer_value(json_object_get(j, "count")));
        break;
    default:
        FUZZ_CHECK(call(f, "GET", "/pd/api/v1/cluster", NULL, 0, &j) == 200);
        break;
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tkv_log_set_level(TKV_LOG_OFF);
    fx *f = calloc(1, sizeof(*f));
    FUZZ_CHECK(f != NULL);
    fixture_open(f);
    fuzz_in in = fuzz_in_of(data, size);
    for (int i = 0; i < 32 && in.n > 0; i++) {
        switch (fuzz_u8(&in) % 6) {
        case 0:
            op_config(f, &in);
            break;
        case 1:
        case 2:
            op_operator_post(f, &in);
            break;
        case 3:
            op_operator_region(f, &in);
            break;
        case 4:
            op_get(f, &in);
            break;
        default:
            f->now += (uint64_t)fuzz_u8(&in) * 10000;
            pd__coordinator_tick(f->c);
            break;
        }
    }
    fixture_close(f);
    free(f);
    return 0;
}
