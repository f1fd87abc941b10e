/*
 * pd_server.c: assembles a pd-server: storage, identities (cluster id, member id), the ID
 * allocator, the TSO, the cluster state, the gRPC and HTTP servers and the coordinator.
 *
 * Stop order (pd_server_stop): health NOT_SERVING, HTTP stopped, gRPC drained (calls in
 * flight finish or are cancelled after 1 s: waiting SplitRegions calls are cancelled), the
 * coordinator joined. Everything acknowledged was already written: fsynced metadata, and
 * region updates in RocksDB's WAL (flushed at close).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "base/clock.h"
#include "base/log.h"
#include "http/http.h"
#include "pd/pd_int.h"
#include "rpc/rpc.h"

static uint64_t random_u64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
        /* No entropy source: mix the clocks (uniqueness matters, not secrecy). */
        v = tkv_clock_real_ms() * 0x9E3779B97F4A7C15ull ^ tkv_clock_mono_ns();
    }
    return v;
}

/* Loads the u64 at @key, or creates it with @make() and persists it (fsync). */
static int load_or_create(pd_storage *st, const char *key, uint64_t (*make)(void), uint64_t *out,
                          bool *created)
{
    bool found = false;
    int rc = pd__storage_get_u64(st, key, out, &found);
    *created = false;
    if (rc != 0 || found)
        return rc;
    *out = make();
    *created = true;
    return pd__storage_put_u64(st, key, *out, true);
}

/* PD's cluster id: Unix seconds in the high 32 bits, random low bits; never 0 and below 2^63
 * so that JSON consumers read it exactly. */
static uint64_t make_cluster_id(void)
{
    uint64_t secs = tkv_clock_real_ms() / 1000;
    uint64_t id = ((secs & 0x7fffffffull) << 32) | (random_u64() & 0xffffffffull);
    return id != 0 ? id : 1;
}

static uint64_t make_member_id(void)
{
    uint64_t id = random_u64() & 0x7fffffffffffffffull;
    return id != 0 ? id : 1;
}

/* Splits the first URL of @urls ("http[s]://host:port[,...]") into "host:port". */
static int parse_client_url(const char *urls, char *addr, size_t cap, char *errmsg)
{
    const char *p = urls;
    if (strncmp(p, "http://", 7) == 0) {
        p += 7;
    } else if (strncmp(p, "https://", 8) == 0) {
        p += 8;
    } else {
        snprintf(errmsg, TKV_ERRMSG_LEN, "client-urls: '%.150s' must start with http(s)://", urls);
        return TKV_ECONFIG;
    }
    size_t n = strcspn(p, ",/");
    if (n == 0 || n >= cap) {
        snprintf(errmsg, TKV_ERRMSG_LEN, "client-urls: bad address in '%.150s'", urls);
        return TKV_ECONFIG;
    }
    memcpy(addr, p, n);
    addr[n] = '\0';
    char host[200];
    uint16_t port;
    if (http_split_addr(addr, host, sizeof(host), &port) != 0) {
        snprintf(errmsg, TKV_ERRMSG_LEN, "client-urls: '%.150s' is not host:port", addr);
        return TKV_ECONFIG;
    }
    return 0;
}

int pd_server_new(const pd_config *cfg, pd_server **out, char errmsg[TKV_ERRMSG_LEN])
{
    char scratch[TKV_ERRMSG_LEN];
    if (errmsg == NULL)
        errmsg = scratch;
    errmsg[0] = '\0';
    int rc = pd_config_validate(cfg, errmsg);
    if (rc != 0)
        return rc;
    pd_server *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->cfg = *cfg;
    pthread_mutex_init(&s->etcd_mu, NULL);
    s->start_real_ms = tkv_clock_real_ms();
    rc = parse_client_url(cfg->client_urls, s->listen_addr, sizeof(s->listen_addr), errmsg);
    if (rc == 0)
        rc = pd__storage_open_env(cfg->data_dir, cfg->rocksdb_env, &s->st, errmsg);
    bool created = false;
    if (rc == 0) {
        rc = load_or_create(s->st, PD_KEY_CLUSTER_ID, make_cluster_id, &s->cluster_id, &created);
        if (rc == 0 && created)
            TKV_LOG_INFO("init cluster id", TKV_LF_U64("cluster_id", s->cluster_id));
    }
    if (rc == 0)
        rc = load_or_create(s->st, PD_KEY_MEMBER_ID, make_member_id, &s->member_id, &created);
    if (rc == 0)
        rc = pd__etcd_load(s);
    if (rc == 0) {
        rc = pd__id_init(&s->ids, s->st, 0);
        s->ids_ready = rc == 0;
    }
    if (rc == 0) {
        pd_tso_opts to;
        pd__tso_opts_init(&to);
        to.window_ms = cfg->tso_window_ms;
        rc = pd__tso_open(s->st, &to, &s->tso);
    }
    if (rc == 0)
        rc = pd__cluster_new(s->st, &s->ids, s->cluster_id, &cfg->sched, NULL, NULL, &s->cluster);
    if (rc != 0) {
        if (errmsg[0] == '\0')
            snprintf(errmsg, TKV_ERRMSG_LEN, "open pd state in %.150s: %s", cfg->data_dir,
                     tkv_strerror(rc));
        pd_server_free(s);
        return rc;
    }
    if (rc == 0)
        rc = pd__security_init(s, errmsg); /* TLS branch: audit log, allow-lists */
    if (rc != 0) {
        pd_server_free(s);
        return rc;
    }
    pd__hb_init(&s->hb, s->cluster_id);
    pd__cluster_set_hb_sink(s->cluster, pd__hb_send, &s->hb);
    snprintf(s->advertise_url, sizeof(s->advertise_url), "%s%s", pd__url_scheme(s), s->listen_addr);
    *out = s;
    return 0;
}

int pd_server_start(pd_server *s, char errmsg[TKV_ERRMSG_LEN])
{
    char scratch[TKV_ERRMSG_LEN];
    if (errmsg == NULL)
        errmsg = scratch;
    if (s->started)
        return -EINVAL;
    rpc_server_opts o;
    rpc_server_opts_init(&o);
    o.addr = s->listen_addr;
    o.cq_threads = s->cfg.grpc_threads;
    o.handshake_timeout_ms = 10000; /* as tikv-server: TCP+TLS+HTTP/2 within 10 s */
    o.max_connections = (int)s->cfg.grpc_max_connections;
    o.max_connections_per_addr = (int)s->cfg.grpc_max_connections_per_address;
    pd__security_rpc(s, &o); /* TLS branch */
    int rc = rpc_server_new(&o, &s->rpc);
    if (rc == 0)
        rc = pd__grpc_register(s);
    if (rc == 0)
        rc = pd__grpc_register_streams(s);
    if (rc == 0)
        rc = pd__etcd_register(s);
    if (rc == 0) {
        rc = rpc_server_start(s->rpc);
        if (rc != 0)
            snprintf(errmsg, TKV_ERRMSG_LEN, "serve gRPC on %.100s: %.100s", s->listen_addr,
                     rpc_server_errmsg(s->rpc));
    } else {
        snprintf(errmsg, TKV_ERRMSG_LEN, "set up gRPC: %s", tkv_strerror(rc));
    }
    if (rc != 0)
        return rc;
    s->started = true;
    /* Advertise the bound port (port 0 in the URL picks a free one). */
    char host[200];
    uint16_t port;
    if (http_split_addr(s->listen_addr, host, sizeof(host), &port) == 0)
        snprintf(s->advertise_url, sizeof(s->advertise_url), "%s%s%s%s:%d", pd__url_scheme(s),
                 strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
                 rpc_server_port(s->rpc));
    if (s->cfg.http_addr[0] != '\0') {
        rc = pd__http_start(s, errmsg);
        if (rc != 0)
            return rc;
    }
    rc = pd__coordinator_start(s->cluster, &s->coord);
    if (rc != 0) {
        snprintf(errmsg, TKV_ERRMSG_LEN, "start coordinator: %s", tkv_strerror(rc));
        return rc;
    }
    TKV_LOG_INFO("PD server started", TKV_LF_STR("name", s->cfg.name),
                 TKV_LF_U64("cluster_id", s->cluster_id), TKV_LF_U64("member_id", s->member_id),
                 TKV_LF_STR("client_url", s->advertise_url),
                 TKV_LF_U64("http_port", (uint64_t)pd_server_http_port(s)));
    return 0;
}

int pd_server_grpc_port(const pd_server *s)
{
    return s->rpc != NULL ? rpc_server_port(s->rpc) : 0;
}

int pd_server_http_port(const pd_server *s)
{
    return s->http != NULL ? http_server_port(s->http) : 0;
}

uint64_t pd_server_cluster_id(const pd_server *s)
{
    return s->cluster_id;
}

void pd_server_stop(pd_server *s)
{
    if (s == NULL || s->stopped)
        return;
    s->stopped = true;
    if (s->rpc != NULL && s->started)
        TKV_IGNORE(rpc_server_set_health(s->rpc, "", RPC_HEALTH_NOT_SERVING));
    http_server_stop(s->http);
    s->http = NULL;
    if (s->rpc != NULL)
        rpc_server_shutdown(s->rpc, 1000);
    pd__coordinator_stop(s->coord);
    s->coord = NULL;
    if (s->started)
        TKV_LOG_INFO("PD server stopped", TKV_LF_STR("name", s->cfg.name));
}

void pd_server_free(pd_server *s)
{
    if (s == NULL)
        return;
    pd_server_stop(s);
    rpc_server_free(s->rpc);
    tkv_free(s->bindings);
    if (s->cluster != NULL) {
        pd__cluster_free(s->cluster);
        pd__hb_deinit(&s->hb);
    }
    pd__tso_close(s->tso);
    if (s->ids_ready)
        pd__id_deinit(&s->ids);
    pd__storage_close(s->st);
    pd__security_deinit(s);
    pthread_mutex_destroy(&s->etcd_mu);
    tkv_free(s);
}
