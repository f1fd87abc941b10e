/*
 * pd_http.c: PD's HTTP API on --http-addr, at PD's paths with PD's JSON field names, so that
 * pd-ctl, scripts and dashboards written for PD work:
 *
 *   GET    /pd/api/v1/stores[?state=N]         {"count", "stores": [StoreInfo]} (Up, Offline;
 *                                              state=2 lists Tombstone stores too)
 *   GET    /pd/api/v1/store/{id}               StoreInfo
 *   DELETE /pd/api/v1/store/{id}               set the store Offline (drained, then Tombstone)
 *   POST   /pd/api/v1/store/{id}/state?state=Up|Offline|Tombstone
 *   GET    /pd/api/v1/regions                  {"count", "regions": [RegionInfo]}
 *   GET    /pd/api/v1/region/id/{id}           RegionInfo or null
 *   GET    /pd/api/v1/region/key/{key}[?format=hex]
 *   GET    /pd/api/v1/members, /leader, /health
 *   GET    /pd/api/v1/config[/schedule|/replicate]      POST the same to change settings
 *   GET    /pd/api/v1/cluster, /cluster/status
 *   GET    /pd/api/v1/operators                [operator descriptions]
 *   POST   /pd/api/v1/operators                {"name": "transfer-leader"|"transfer-region"|
 *                                              "transfer-peer"|"add-peer"|"add-learner"|
 *                                              "remove-peer"|"split-region", ...}
 *   GET    /pd/api/v1/operators/{region_id}    DELETE cancels it
 *   GET    /pd/api/v1/version, /status, /schedulers
 *   GET|POST /pd/api/v1/security/authz         the authorization policy (pd_security.c)
 *   GET    /metrics                            Prometheus text format
 * Errors are JSON strings with a 4xx/5xx status, as PD answers them. Bodies are indented
 * with two spaces ("state_name": "Up"), as PD's renderer does.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/metrics.h"
#include "http/http.h"
#include "pd/pd_int.h"

static void reply_json(http_response *rs, json_t *v, int status)
{
    if (v == NULL) {
        http_error(rs, 500, "out of memory");
        return;
    }
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    json_decref(v);
    if (text == NULL) {
        http_error(rs, 500, "out of memory");
        return;
    }
    rs->status = status;
    rs->content_type = "application/json; charset=UTF-8";
    if (tkv_buf_append(&rs->body, text, strlen(text)) != 0 || tkv_buf_append(&rs->body, "\n", 1))
        rs->status = 500;
    free(text);
}

/* PD answers errors (and some confirmations) as a bare JSON string. */
static void reply_msg(http_response *rs, int status, const char *msg)
{
    reply_json(rs, json_string(msg), status);
}

static bool parse_id(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || (*end != '\0' && *end != '/'))
        return false;
    *out = v;
    return true;
}

static pd_server *server(void *ud)
{
    return ud;
}

/* ---- stores ------------------------------------------------------------------------------- */

static void stores_get(const http_request *rq, http_response *rs, void *ud)
{
    pd_cluster *c = server(ud)->cluster;
    const char *state = http_request_query(rq, "state");
    int want = -1;
    if (state != NULL) {
        uint64_t v = 0;
        if (!parse_id(state, &v) || v > INT_MAX) {
            reply_msg(rs, 400, "state must be a store state number");
            return;
        }
        want = (int)v;
    }
    json_t *arr = json_array();
    pd__cluster_lock(c);
    size_t n = 0;
    for (size_t i = 0; arr != NULL && i < c->nstores; i++) {
        const pd_store *s = c->stores[i];
        int st = (int)s->meta->state;
        if (want >= 0 ? st != want : st == METAPB__STORE_STATE__Tombstone)
            continue;
        if (json_array_append_new(arr, pd__json_store(c, s)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
        n++;
    }
    pd__cluster_unlock(c);
    json_t *o = arr ? json_pack("{s:I, s:o}", "count", (json_int_t)n, "stores", arr) : NULL;
    reply_json(rs, o, 200);
}

static void store_any(const http_request *rq, http_response *rs, void *ud)
{
    pd_cluster *c = server(ud)->cluster;
    uint64_t id;
    if (!parse_id(rq->tail, &id)) {
        reply_msg(rs, 400, "invalid store id");
        return;
    }
    const char *rest = strchr(rq->tail, '/');
    pd_result res = {.type = PDPB__ERROR_TYPE__OK};
    char buf[128];
    if (strcmp(rq->method, "GET") == 0 && rest == NULL) {
        pd__cluster_lock(c);
        pd_store *s = pd__cluster_store_locked(c, id);
        json_t *v = s ? pd__json_store(c, s) : NULL;
        pd__cluster_unlock(c);
        if (s == NULL) {
            snprintf(buf, sizeof(buf), "store %" PRIu64 " not found", id);
            reply_msg(rs, 404, buf);
        } else {
            reply_json(rs, v, 200);
        }
        return;
    }
    Metapb__StoreState target;
    if (strcmp(rq->method, "DELETE") == 0 && rest == NULL) {
        target = METAPB__STORE_STATE__Offline;
    } else if (strcmp(rq->method, "POST") == 0 && rest != NULL && strcmp(rest, "/state") == 0) {
        const char *st = http_request_query(rq, "state");
        if (st != NULL && strcmp(st, "Up") == 0)
            target = METAPB__STORE_STATE__Up;
        else if (st != NULL && strcmp(st, "Offline") == 0)
            target = METAPB__STORE_STATE__Offline;
        else if (st != NULL && strcmp(st, "Tombstone") == 0)
            target = METAPB__STORE_STATE__Tombstone;
        else {
            reply_msg(rs, 400, "state must be Up, Offline or Tombstone");
            return;
        }
    } else {
        reply_msg(rs, 405, "method not allowed");
        return;
    }
    int rc = pd__cluster_set_store_state(c, id, target, false, &res);
    if (rc != 0)
        reply_msg(rs, 500, tkv_strerror(rc));
    else if (res.type == PDPB__ERROR_TYPE__ENTRY_NOT_FOUND)
        reply_msg(rs, 404, res.msg);
    else if (res.type != PDPB__ERROR_TYPE__OK)
        reply_msg(rs, 400, res.msg);
    else if (target == METAPB__STORE_STATE__Offline)
        reply_msg(rs, 200, "The store is set as Offline.");
    else
        reply_msg(rs, 200, "The store's state is updated.");
}

/* ---- regions ------------------------------------------------------------------------------ */

static void regions_get(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    pd_cluster *c = server(ud)->cluster;
    json_t *arr = json_array();
    pd__cluster_lock(c);
    size_t n = pd__rt_count(&c->regions);
    for (pd_region *r = pd__rt_first(&c->regions); arr != NULL && r != NULL;
         r = pd__rt_next(&c->regions, r)) {
        if (json_array_append_new(arr, pd__json_region(r)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    pd__cluster_unlock(c);
    json_t *o = arr ? json_pack("{s:I, s:o}", "count", (json_int_t)n, "regions", arr) : NULL;
    reply_json(rs, o, 200);
}

static void region_by_id(const http_request *rq, http_response *rs, void *ud)
{
    pd_cluster *c = server(ud)->cluster;
    uint64_t id;
    if (!parse_id(rq->tail, &id)) {
        reply_msg(rs, 400, "invalid region id");
        return;
    }
    pd__cluster_lock(c);
    pd_region *r = pd__rt_get(&c->regions, id);
    json_t *v = r ? pd__json_region(r) : json_null();
    pd__cluster_unlock(c);
    reply_json(rs, v, 200);
}

static int unhex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes the hex string @hex into @out (replacing it). Errors: -EINVAL, -ENOMEM. */
static int hex_decode(const char *hex, tkv_buf *out)
{
    size_t n = strlen(hex);
    tkv_buf_reset(out);
    if (n % 2 != 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i += 2) {
        int hi = unhex(hex[i]), lo = unhex(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        int rc = tkv_buf_append_u8(out, (uint8_t)(hi * 16 + lo));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void region_by_key(const http_request *rq, http_response *rs, void *ud)
{
    pd_cluster *c = server(ud)->cluster;
    const char *fmt = http_request_query(rq, "format");
    tkv_buf key;
    tkv_buf_init(&key);
    int rc = (fmt != NULL && strcmp(fmt, "hex") == 0)
                 ? hex_decode(rq->tail, &key)
                 : tkv_buf_set(&key, rq->tail, strlen(rq->tail));
    if (rc != 0) {
        tkv_buf_deinit(&key);
        reply_msg(rs, rc == -EINVAL ? 400 : 500,
                  rc == -EINVAL ? "invalid hex key" : "out of memory");
        return;
    }
    pd__cluster_lock(c);
    pd_region *r = pd__rt_find(&c->regions, tkv_buf_slice(&key));
    json_t *v = r ? pd__json_region(r) : json_null();
    pd__cluster_unlock(c);
    tkv_buf_deinit(&key);
    reply_json(rs, v, 200);
}

/* ---- members, health, cluster, version ---------------------------------------------------------
 */

static void members_get(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    pd_server *s = server(ud);
    json_t *members = json_array();
    if (members != NULL && json_array_append_new(members, pd__json_member(s)) != 0) {
        json_decref(members);
        members = NULL;
    }
    json_t *o = members ? json_pack("{s:{s:I}, s:o, s:o, s:o}", "header", "cluster_id",
                                    (json_int_t)s->cluster_id, "members", members, "leader",
                                    pd__json_member(s), "etcd_leader", pd__json_member(s))
                        : NULL;
    reply_json(rs, o, 200);
}

static void leader_get(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    reply_json(rs, pd__json_member(server(ud)), 200);
}

static void health_get(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    pd_server *s = server(ud);
    json_t *m = pd__json_member(s);
    json_t *h = m ? json_pack("{s:O, s:O, s:O, s:b}", "name", json_object_get(m, "name"),
                              "member_id", json_object_get(m, "member_id"), "client_urls",
                              json_object_get(m, "client_urls"), "health", 1)
                  : NULL;
    json_decref(m);
    reply_json(rs, h ? json_pack("[o]", h) : NULL, 200);
}

static void cluster_get(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    pd_server *s = server(ud);
    pd__cluster_lock(s->cluster);
    uint64_t max_peer = s->cluster->meta ? s->cluster->meta->max_peer_count : 0;
    pd__cluster_unlock(s->cluster);
    reply_json(rs,
               json_pack("{s:I, s:I}", "id", (json_int_t)s->cluster_id, "max_peer_count",
                         (json_int_t)max_peer),
               200);
}

static void cluster_status_get(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    pd_server *s = server(ud);
    pd__cluster_lock(s->cluster);
    bool boot = s->cluster->bootstrapped;
    pd__cluster_unlock(s->cluster);
    reply_json(rs, json_pack("{s:b, s:b}", "is_initialized", boot, "raft_bootstrapped", boot), 200);
}

static void version_get(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    (void)ud;
    reply_json(rs, json_pack("{s:s}", "version", "6.5.0"), 200);
}

static void status_get(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    pd_server *s = server(ud);
    reply_json(rs,
               json_pack("{s:s, s:s, s:s, s:I}", "build_ts", "", "version", "6.5.0", "git_hash",
                         "tikv-c", "start_timestamp", (json_int_t)(s->start_real_ms / 1000)),
               200);
}

static void schedulers_get(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    (void)ud;
    reply_json(rs, json_pack("[s, s]", "balance-leader-scheduler", "balance-region-scheduler"),
               200);
}

static void metrics_get(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    (void)ud;
    rs->content_type = "text/plain; version=0.0.4";
    if (tkv_metrics_render(&rs->body) != 0)
        rs->status = 500;
}

/* ---- config ------------------------------------------------------------------------------- */

static void config_json(pd_server *s, int which, http_response *rs)
{
    pd_sched_cfg cfg;
    pd__cluster_get_config(s->cluster, &cfg);
    json_t *v = pd__sched_cfg_json(&cfg, which);
    if (v != NULL && which == 0) {
        char dur[32];
        pd__fmt_go_duration(s->cfg.tso_window_ms, dur, sizeof(dur));
        json_t *top =
            json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:{s:s, s:{s:s}}}", "name", s->cfg.name,
                      "data-dir", s->cfg.data_dir, "client-urls", s->advertise_url, "http-addr",
                      s->cfg.http_addr, "lease", (json_int_t)s->cfg.lease_s, "tso-save-interval",
                      dur, "log", "level", s->cfg.log_level, "file", "filename", s->cfg.log_file);
        if (top == NULL || json_object_update(top, v) != 0) {
            json_decref(top);
            top = NULL;
        }
        json_decref(v);
        v = top;
    }
    reply_json(rs, v, 200);
}

static void config_post(pd_server *s, const http_request *rq, http_response *rs,
                        const char *section)
{
    json_error_t jerr;
    json_t *obj = json_loadb((const char *)rq->body, rq->body_len, 0, &jerr);
    if (obj == NULL) {
        reply_msg(rs, 400, "request body is not JSON");
        return;
    }
    char err[TKV_ERRMSG_LEN] = "";
    int rc = pd__cluster_apply_config(s->cluster, obj, section, err);
    json_decref(obj);
    if (rc == TKV_ENOTFOUND || rc == -EINVAL)
        reply_msg(rs, 400, err);
    else if (rc != 0)
        reply_msg(rs, 500, err[0] ? err : tkv_strerror(rc));
    else
        reply_msg(rs, 200, "The config is updated.");
}

static void config_any(const http_request *rq, http_response *rs, void *ud)
{
    if (strcmp(rq->method, "GET") == 0)
        config_json(server(ud), 0, rs);
    else if (strcmp(rq->method, "POST") == 0)
        config_post(server(ud), rq, rs, NULL);
    else
        reply_msg(rs, 405, "method not allowed");
}

static void config_schedule(const http_request *rq, http_response *rs, void *ud)
{
    if (strcmp(rq->method, "GET") == 0)
        config_json(server(ud), 1, rs);
    else if (strcmp(rq->method, "POST") == 0)
        config_post(server(ud), rq, rs, "schedule");
    else
        reply_msg(rs, 405, "method not allowed");
}

static void config_replicate(const http_request *rq, http_response *rs, void *ud)
{
    if (strcmp(rq->method, "GET") == 0)
        config_json(server(ud), 2, rs);
    else if (strcmp(rq->method, "POST") == 0)
        config_post(server(ud), rq, rs, "replication");
    else
        reply_msg(rs, 405, "method not allowed");
}

/* ---- operators ---------------------------------------------------------------------------- */

static bool get_u64_field(const json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v) && json_real_value(v) >= 0) {
        *out = (uint64_t)json_real_value(v);
        return true;
    }
    return false;
}

/* Builds the admin operator described by @in for its region; mutex held. Returns 0 with
 * *@out set, or an HTTP status with @err. */
static int build_admin_op(pd_cluster *c, const json_t *in, pd_operator **out, char *err, size_t cap)
{
    *out = NULL;
    const char *name = json_string_value(json_object_get(in, "name"));
    uint64_t region_id;
    if (name == NULL) {
        snprintf(err, cap, "missing operator name");
        return 400;
    }
    if (!get_u64_field(in, "region_id", &region_id)) {
        snprintf(err, cap, "missing region id");
        return 400;
    }
    pd_region *r = pd__rt_get(&c->regions, region_id);
    if (r == NULL) {
        snprintf(err, cap, "region %" PRIu64 " not found", region_id);
        return 404;
    }
    if (pd__region_leader_store(r) == 0) {
        snprintf(err, cap, "region %" PRIu64 " has no leader", region_id);
        return 400;
    }
    uint64_t a = 0, b = 0;
    int rc = 0;
    char desc[40];
    snprintf(desc, sizeof(desc), "admin-%s", name);
    unsigned kind = PD_OPK_ADMIN;
    if (strcmp(name, "transfer-leader") == 0) {
        if (!get_u64_field(in, "to_store_id", &a)) {
            snprintf(err, cap, "missing store id to transfer leader to");
            return 400;
        }
        const Metapb__Peer *p = pd__region_store_peer(r, a);
        if (p == NULL || pd__peer_is_learner(p)) {
            snprintf(err, cap, "store %" PRIu64 " has no voter of region %" PRIu64, a, region_id);
            return 400;
        }
        rc = pd__op_new(r, desc, kind | PD_OPK_LEADER, out);
        if (rc == 0)
            rc = pd__op_add_step(*out, PD_STEP_TRANSFER_LEADER, a, 0);
    } else if (strcmp(name, "transfer-peer") == 0) {
        if (!get_u64_field(in, "from_store_id", &a) || !get_u64_field(in, "to_store_id", &b)) {
            snprintf(err, cap, "missing from_store_id or to_store_id");
            return 400;
        }
        if (pd__region_store_peer(r, a) == NULL || pd__region_store_peer(r, b) != NULL ||
            pd__cluster_store_locked(c, b) == NULL) {
            snprintf(err, cap, "cannot move the peer from store %" PRIu64 " to store %" PRIu64, a,
                     b);
            return 400;
        }
        rc = pd__build_move_locked(c, r, &a, &b, 1, 0, desc, kind | PD_OPK_REGION, out);
    } else if (strcmp(name, "add-peer") == 0 || strcmp(name, "add-learner") == 0 ||
               strcmp(name, "remove-peer") == 0) {
        if (!get_u64_field(in, "store_id", &a)) {
            snprintf(err, cap, "missing store id");
            return 400;
        }
        bool removing = name[0] == 'r';
        if (removing != (pd__region_store_peer(r, a) != NULL) ||
            pd__cluster_store_locked(c, a) == NULL) {
            snprintf(err, cap, "store %" PRIu64 " %s a peer of region %" PRIu64, a,
                     removing ? "has no" : "already has", region_id);
            return 400;
        }
        if (strcmp(name, "add-learner") == 0) {
            uint64_t peer_id;
            rc = pd__id_alloc(c->ids, &peer_id);
            if (rc == 0)
                rc = pd__op_new(r, desc, kind | PD_OPK_REGION, out);
            if (rc == 0)
                rc = pd__op_add_step(*out, PD_STEP_ADD_LEARNER, a, peer_id);
        } else {
            uint64_t from = removing ? a : 0, to = removing ? 0 : a;
            rc = pd__build_move_locked(c, r, &from, &to, 1, 0, desc, kind | PD_OPK_REGION, out);
        }
    } else if (strcmp(name, "transfer-region") == 0) {
        json_t *ids = json_object_get(in, "to_store_ids");
        size_t n = json_array_size(ids);
        const Metapb__Region *m = pd__region_meta(r);
        if (n == 0 || n > 16) {
            snprintf(err, cap, "missing store ids to transfer region to");
            return 400;
        }
        uint64_t to_all[16], from[16], to[16];
        size_t nf = 0, nt = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(ids, i);
            if (!json_is_integer(v) ||
                pd__cluster_store_locked(c, (uint64_t)json_integer_value(v)) == NULL) {
                snprintf(err, cap, "invalid store ids to transfer region to");
                return 400;
            }
            to_all[i] = (uint64_t)json_integer_value(v);
            if (pd__region_store_peer(r, to_all[i]) == NULL)
                to[nt++] = to_all[i];
        }
        for (size_t i = 0; i < m->n_peers && nf < 16; i++) {
            bool keep = false;
            for (size_t j = 0; j < n; j++)
                keep = keep || to_all[j] == m->peers[i]->store_id;
            if (!keep)
                from[nf++] = m->peers[i]->store_id;
        }
        while (nt < nf)
            to[nt++] = 0;
        while (nf < nt)
            from[nf++] = 0;
        if (nf == 0) {
            snprintf(err, cap, "region %" PRIu64 " is already on those stores", region_id);
            return 400;
        }
        rc = pd__build_move_locked(c, r, from, to, nf, 0, desc, kind | PD_OPK_REGION, out);
    } else if (strcmp(name, "split-region") == 0) {
        const char *policy = json_string_value(json_object_get(in, "policy"));
        Pdpb__CheckPolicy pol;
        if (policy != NULL && strcmp(policy, "scan") == 0)
            pol = PDPB__CHECK_POLICY__SCAN;
        else if (policy != NULL && strcmp(policy, "approximate") == 0)
            pol = PDPB__CHECK_POLICY__APPROXIMATE;
        else if (policy != NULL && strcmp(policy, "usekey") == 0)
            pol = PDPB__CHECK_POLICY__USEKEY;
        else {
            snprintf(err, cap, "missing split policy (scan, approximate, usekey)");
            return 400;
        }
        json_t *keys = json_object_get(in, "keys");
        size_t n = json_array_size(keys);
        tkv_buf *kb = tkv_calloc(n ? n : 1, sizeof(*kb));
        tkv_slice *ks = tkv_calloc(n ? n : 1, sizeof(*ks));
        rc = (kb == NULL || ks == NULL) ? -ENOMEM : 0;
        int status = 0;
        for (size_t i = 0; kb != NULL && i < n; i++)
            tkv_buf_init(&kb[i]);
        for (size_t i = 0; rc == 0 && status == 0 && i < n; i++) {
            const char *hex = json_string_value(json_array_get(keys, i));
            int hrc = hex != NULL ? hex_decode(hex, &kb[i]) : -EINVAL;
            if (hrc == -EINVAL) {
                snprintf(err, cap, "bad format keys: hex strings expected");
                status = 400;
            }
            rc = hrc == -EINVAL ? 0 : hrc;
            ks[i] = tkv_buf_slice(&kb[i]);
        }
        if (rc == 0 && status == 0) {
            rc = pd__op_new(r, desc, kind | PD_OPK_SPLIT, out);
            if (rc == 0)
                rc = pd__op_set_split(*out, pol, ks, n);
        }
        for (size_t i = 0; kb != NULL && i < n; i++)
            tkv_buf_deinit(&kb[i]);
        tkv_free(kb);
        tkv_free(ks);
        if (status != 0) {
            pd__op_free(*out);
            *out = NULL;
            return status;
        }
    } else {
        snprintf(err, cap, "unknown operator name '%s'", name);
        return 400;
    }
    if (rc != 0) {
        pd__op_free(*out);
        *out = NULL;
        snprintf(err, cap, "cannot build operator: %s", tkv_strerror(rc));
        return 500;
    }
    /* An operator whose steps the region already shows done (a leader transfer to the leader's
     * store) would finish at once, leaving nothing to see: refused as PD does (found by
     * fuzz_pd_http: 200 was answered and no operator existed). */
    if (pd__op_advance(*out, r)) {
        pd__op_free(*out);
        *out = NULL;
        snprintf(err, cap, "cannot build operator for region %" PRIu64 " with no changes",
                 region_id);
        return 400;
    }
    return 0;
}

static void operators_any(const http_request *rq, http_response *rs, void *ud)
{
    pd_cluster *c = server(ud)->cluster;
    if (strcmp(rq->method, "GET") == 0) {
        json_t *arr = json_array();
        pd__cluster_lock(c);
        size_t pos = 0;
        void *v;
        while (arr != NULL && pd__map_next(&c->ops, &pos, NULL, &v)) {
            char d[1024];
            pd__op_describe(v, d, sizeof(d));
            if (json_array_append_new(arr, json_string(d)) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        pd__cluster_unlock(c);
        reply_json(rs, arr, 200);
        return;
    }
    if (strcmp(rq->method, "POST") != 0) {
        reply_msg(rs, 405, "method not allowed");
        return;
    }
    json_error_t jerr;
    json_t *in = json_loadb((const char *)rq->body, rq->body_len, 0, &jerr);
    if (!json_is_object(in)) {
        json_decref(in);
        reply_msg(rs, 400, "request body must be a JSON object");
        return;
    }
    char err[256];
    pd_operator *op;
    pd__cluster_lock(c);
    int status = build_admin_op(c, in, &op, err, sizeof(err));
    if (status == 0) {
        int rc = pd__opc_add_locked(c, op);
        if (rc != 0) {
            pd__op_free(op);
            snprintf(err, sizeof(err), "failed to add operator: %s",
                     rc == TKV_EEXIST ? "the region has an admin operator" : tkv_strerror(rc));
            status = rc == TKV_EEXIST ? 409 : 500;
        }
    }
    pd__cluster_unlock(c);
    json_decref(in);
    if (status != 0)
        reply_msg(rs, status, err);
    else
        reply_msg(rs, 200, "The operator is created.");
}

static void operator_region(const http_request *rq, http_response *rs, void *ud)
{
    pd_cluster *c = server(ud)->cluster;
    uint64_t id;
    if (!parse_id(rq->tail, &id)) {
        reply_msg(rs, 400, "invalid region id");
        return;
    }
    pd__cluster_lock(c);
    pd_operator *op = pd__map_get(&c->ops, id);
    const pd_op_record *rec = pd__map_get(&c->records, id);
    if (strcmp(rq->method, "DELETE") == 0) {
        if (op != NULL)
            pd__opc_finish_locked(c, op, PDPB__OPERATOR_STATUS__CANCEL, "cancelled by admin");
        pd__cluster_unlock(c);
        if (op == NULL)
            reply_msg(rs, 404, "operator not found");
        else
            reply_msg(rs, 200, "The pending operator is canceled.");
        return;
    }
    if (strcmp(rq->method, "GET") != 0) {
        pd__cluster_unlock(c);
        reply_msg(rs, 405, "method not allowed");
        return;
    }
    json_t *v = NULL;
    if (op != NULL || rec != NULL) {
        char kind[64], d[1024] = "";
        pd__op_kind_name(op ? op->kind : rec->kind, kind, sizeof(kind));
        if (op != NULL)
            pd__op_describe(op, d, sizeof(d));
        static const char *const names[] = {"SUCCESS", "TIMEOUT", "CANCEL", "REPLACE", "RUNNING"};
        int st = op ? PDPB__OPERATOR_STATUS__RUNNING : (int)rec->status;
        v = json_pack("{s:I, s:s, s:s, s:s, s:s}", "region_id", (json_int_t)id, "desc",
                      op ? op->desc : rec->desc, "kind", kind, "status",
                      st >= 0 && st < 5 ? names[st] : "UNKNOWN", "operator", d);
    }
    pd__cluster_unlock(c);
    if (op == NULL && rec == NULL)
        reply_msg(rs, 404, "operator not found");
    else
        reply_json(rs, v, 200);
}

/* ---- routes ------------------------------------------------------------------------------- */

static const http_route routes[] = {
    {"GET", "/metrics", false, metrics_get},
    {"GET", "/pd/api/v1/stores", false, stores_get},
    {NULL, "/pd/api/v1/store/", true, store_any},
    {"GET", "/pd/api/v1/regions", false, regions_get},
    {"GET", "/pd/api/v1/region/id/", true, region_by_id},
    {"GET", "/pd/api/v1/region/key/", true, region_by_key},
    {"GET", "/pd/api/v1/members", false, members_get},
    {"GET", "/pd/api/v1/leader", false, leader_get},
    {"GET", "/pd/api/v1/health", false, health_get},
    {NULL, "/pd/api/v1/config", false, config_any},
    {NULL, "/pd/api/v1/config/schedule", false, config_schedule},
    {NULL, "/pd/api/v1/config/replicate", false, config_replicate},
    {"GET", "/pd/api/v1/cluster", false, cluster_get},
    {"GET", "/pd/api/v1/cluster/status", false, cluster_status_get},
    {NULL, "/pd/api/v1/operators", false, operators_any},
    {NULL, "/pd/api/v1/operators/", true, operator_region},
    {"GET", "/pd/api/v1/version", false, version_get},
    {"GET", "/pd/api/v1/status", false, status_get},
    {"GET", "/pd/api/v1/schedulers", false, schedulers_get},
    {NULL, "/pd/api/v1/security/authz", false, pd__authz_http}, /* TLS branch */
};

const http_route *pd__http_routes(size_t *n)
{
    *n = TKV_ARRAY_LEN(routes);
    return routes;
}

int pd__http_start(pd_server *s, char errmsg[TKV_ERRMSG_LEN])
{
    http_server_opts o = {
        .addr = s->cfg.http_addr,
        .routes = routes,
        .nroutes = TKV_ARRAY_LEN(routes),
        .ud = s,
        .threads = 2,
    };
    pd__security_http(s, &o); /* TLS branch */
    char err[TKV_ERRMSG_LEN];
    int rc = http_server_start(&o, &s->http, err);
    if (rc != 0)
        snprintf(errmsg, TKV_ERRMSG_LEN, "serve HTTP API: %.200s", err);
    return rc;
}
