/*
 * pd_json.c: PD's HTTP API objects in PD's JSON shapes (server/api/store.go, region.go,
 * member.go): metapb messages with Go's protobuf JSON names (snake_case, zero values
 * omitted), "state_name"/"role_name" helpers, sizes as Go's units.BytesSize prints them
 * ("1.819TiB"), times in RFC 3339, region keys in upper-case hex.
 */
#include <inttypes.h>
#include <math.h>
#include <time.h>

#include "pd/pd_int.h"

/* Sets @key to @v in @o, dropping @v (and reporting -ENOMEM) when it is NULL. */
static int put(json_t *o, const char *key, json_t *v)
{
    if (v == NULL)
        return -ENOMEM;
    return json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

static int put_u64(json_t *o, const char *key, uint64_t v)
{
    return put(o, key, json_integer((json_int_t)v));
}

static int put_u64_nz(json_t *o, const char *key, uint64_t v)
{
    return v == 0 ? 0 : put_u64(o, key, v);
}

static int put_str_nz(json_t *o, const char *key, const char *v)
{
    return (v == NULL || *v == '\0') ? 0 : put(o, key, json_string(v));
}

void pd__json_bytes_size(uint64_t bytes, char *out, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < TKV_ARRAY_LEN(units)) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, cap, "%.4g%s", v, units[u]);
}

void pd__json_time(uint64_t real_ms, char *out, size_t cap)
{
    time_t secs = (time_t)(real_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03" PRIu64 "Z", base, real_ms % 1000);
}

void pd__json_hex(tkv_slice key, char *out)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < key.len; i++) {
        out[2 * i] = digits[key.data[i] >> 4];
        out[2 * i + 1] = digits[key.data[i] & 15];
    }
    out[2 * key.len] = '\0';
}

static json_t *hex_string(tkv_slice key)
{
    char *buf = tkv_malloc(2 * key.len + 1);
    if (buf == NULL)
        return NULL;
    pd__json_hex(key, buf);
    json_t *s = json_string(buf);
    tkv_free(buf);
    return s;
}

static const char *role_name(int role)
{
    switch (role) {
    case METAPB__PEER_ROLE__Learner:
        return "Learner";
    case METAPB__PEER_ROLE__IncomingVoter:
        return "IncomingVoter";
    case METAPB__PEER_ROLE__DemotingVoter:
        return "DemotingVoter";
    default:
        return "Voter";
    }
}

json_t *pd__json_peer(const Metapb__Peer *p)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    if (p != NULL) {
        rc |= put_u64_nz(o, "id", p->id);
        rc |= put_u64_nz(o, "store_id", p->store_id);
        rc |= put_u64_nz(o, "role", (uint64_t)p->role);
        if (p->is_witness)
            rc |= put(o, "is_witness", json_true());
        rc |= put(o, "role_name", json_string(role_name(p->role)));
        if (p->role == METAPB__PEER_ROLE__Learner)
            rc |= put(o, "is_learner", json_true());
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *peer_list(Metapb__Peer *const *peers, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, pd__json_peer(peers[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

json_t *pd__json_region(const pd_region *r)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    const Metapb__Region *m = pd__region_meta(r);
    int rc = put_u64(o, "id", m->id);
    rc |= put(o, "start_key", hex_string(pd__region_start(r)));
    rc |= put(o, "end_key", hex_string(pd__region_end(r)));
    json_t *e = json_object();
    if (e != NULL) {
        rc |= put_u64_nz(e, "conf_ver", pd__region_conf_ver(r));
        rc |= put_u64_nz(e, "version", pd__region_version(r));
    }
    rc |= put(o, "epoch", e);
    if (m->n_peers > 0)
        rc |= put(o, "peers", peer_list(m->peers, m->n_peers));
    rc |= put(o, "leader", pd__json_peer(r->pb->leader));
    if (r->pb->n_down_peers > 0) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < r->pb->n_down_peers; i++) {
            json_t *d = json_object();
            if (d != NULL) {
                const Pdpb__PeerStats *ps = r->pb->down_peers[i];
                rc |= put(d, "peer", pd__json_peer(ps->peer));
                rc |= put_u64_nz(d, "down_seconds", ps->down_seconds);
            }
            if (d == NULL || json_array_append_new(a, d) != 0)
                rc = -ENOMEM;
        }
        rc |= put(o, "down_peers", a);
    }
    if (r->pb->n_pending_peers > 0)
        rc |= put(o, "pending_peers", peer_list(r->pb->pending_peers, r->pb->n_pending_peers));
    rc |= put_u64(o, "written_bytes", r->bytes_written);
    rc |= put_u64(o, "read_bytes", r->bytes_read);
    rc |= put_u64(o, "written_keys", r->keys_written);
    rc |= put_u64(o, "read_keys", r->keys_read);
    rc |= put_u64(o, "approximate_size", pd__region_size_mib(r));
    rc |= put_u64(o, "approximate_keys", r->approximate_keys);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *pd__json_store_meta(const Metapb__Store *s)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = put_u64_nz(o, "id", s->id);
    rc |= put_str_nz(o, "address", s->address);
    rc |= put_u64_nz(o, "state", (uint64_t)s->state);
    if (s->n_labels > 0) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < s->n_labels; i++) {
            json_t *l = json_object();
            if (l != NULL) {
                rc |= put_str_nz(l, "key", s->labels[i]->key);
                rc |= put_str_nz(l, "value", s->labels[i]->value);
            }
            if (l == NULL || json_array_append_new(a, l) != 0)
                rc = -ENOMEM;
        }
        rc |= put(o, "labels", a);
    }
    rc |= put_str_nz(o, "version", s->version);
    rc |= put_str_nz(o, "peer_address", s->peer_address);
    rc |= put_str_nz(o, "status_address", s->status_address);
    rc |= put_str_nz(o, "git_hash", s->git_hash);
    rc |= put_u64_nz(o, "start_timestamp", (uint64_t)s->start_timestamp);
    rc |= put_str_nz(o, "deploy_path", s->deploy_path);
    rc |= put_u64_nz(o, "last_heartbeat", (uint64_t)s->last_heartbeat);
    rc |= put_u64_nz(o, "node_state", (uint64_t)s->node_state);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *pd__json_store(const pd_cluster *c, const pd_store *s)
{
    json_t *meta = pd__json_store_meta(s->meta);
    json_t *st = json_object();
    json_t *o = json_object();
    if (meta == NULL || st == NULL || o == NULL) {
        json_decref(meta);
        json_decref(st);
        json_decref(o);
        return NULL;
    }
    pd_store_status status = pd__store_status(s, pd__cluster_now(c), &c->cfg);
    int rc = put(meta, "state_name", json_string(pd__store_status_name(status)));
    const Pdpb__StoreStats *ss = s->stats;
    char buf[64];
    pd__json_bytes_size(ss ? ss->capacity : 0, buf, sizeof(buf));
    rc |= put(st, "capacity", json_string(buf));
    pd__json_bytes_size(ss ? ss->available : 0, buf, sizeof(buf));
    rc |= put(st, "available", json_string(buf));
    pd__json_bytes_size(ss ? ss->used_size : 0, buf, sizeof(buf));
    rc |= put(st, "used_size", json_string(buf));
    rc |= put_u64(st, "leader_count", s->leader_count);
    rc |= put(st, "leader_weight", json_real(1));
    rc |= put(st, "leader_score", json_real((double)s->leader_count));
    rc |= put_u64(st, "leader_size", s->leader_size_mib);
    rc |= put_u64(st, "region_count", s->region_count);
    rc |= put(st, "region_weight", json_real(1));
    rc |= put(st, "region_score", json_real((double)s->region_size_mib));
    rc |= put_u64(st, "region_size", s->region_size_mib);
    rc |= put_u64(st, "witness_count", 0);
    rc |= put_u64(st, "slow_score", ss ? ss->slow_score : 0);
    if (ss != NULL) {
        rc |= put_u64_nz(st, "sending_snap_count", ss->sending_snap_count);
        rc |= put_u64_nz(st, "receiving_snap_count", ss->receiving_snap_count);
        if (ss->is_busy)
            rc |= put(st, "is_busy", json_true());
        if (ss->start_time != 0) {
            pd__json_time((uint64_t)ss->start_time * 1000, buf, sizeof(buf));
            rc |= put(st, "start_ts", json_string(buf));
        }
    }
    if (s->heartbeat_real_ms != 0) {
        pd__json_time(s->heartbeat_real_ms, buf, sizeof(buf));
        rc |= put(st, "last_heartbeat_ts", json_string(buf));
        if (ss != NULL && ss->start_time != 0 && s->heartbeat_real_ms / 1000 > ss->start_time) {
            pd__fmt_go_duration((s->heartbeat_real_ms / 1000 - ss->start_time) * 1000, buf,
                                sizeof(buf));
            rc |= put(st, "uptime", json_string(buf));
        }
    }
    rc |= put(o, "store", meta);
    rc |= put(o, "status", st);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *pd__json_member(const pd_server *s)
{
    json_t *o = json_object();
    json_t *urls = json_array();
    if (o == NULL || urls == NULL || json_array_append_new(urls, json_string(s->advertise_url))) {
        json_decref(o);
        json_decref(urls);
        return NULL;
    }
    int rc = put(o, "name", json_string(s->cfg.name));
    rc |= put_u64(o, "member_id", s->member_id);
    rc |= put(o, "client_urls", urls);
    rc |= put(o, "binary_version", json_string("6.5.0"));
    rc |= put(o, "git_hash", json_string("tikv-c"));
    rc |= put(o, "deploy_path", json_string(s->cfg.data_dir));
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}
