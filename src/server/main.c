/*
 * main.c: tikv-server, the composition of one storage node.
 *
 *     tikv-server --pd 127.0.0.1:2379 --addr 127.0.0.1:20160 --status-addr 127.0.0.1:20180 \
 *                 --data-dir /data/tikv [--config tikv.toml]
 *
 * Start-up: configuration (TiKV's keys and flags) and logging; the data directory's
 * security (src/security/runtime.h: created 0700, encryption keys, reserve-space
 * placeholder and disk watcher); the kv engine (data-dir/db) and the raft engine
 * (data-dir/raft), encrypted when [security.encryption] says so; the PD client (retried until PD
 * answers); raftstore (store ident, bootstrap or join, persisted regions); storage over raftstore's
 * kv seam; the gRPC server with the tikvpb.Tikv service and the raft transport; raftstore's threads
 * and PutStore with the advertised address (--advertise-addr, else --addr); the status server.
 * SIGTERM or SIGINT stops everything gracefully: new requests are refused, requests in
 * flight finish, threads are joined, engines closed.
 *
 * Exit codes: 0 after a graceful stop (also one requested while waiting for PD) or --help,
 * 1 when start-up fails (a message on stderr and in the log), 2 for a bad command line or
 * configuration.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "engine/engine.h"
#include "pdc/pdc.h"
#include "raftstore/raftstore.h"
#include "security/authz.h"
#include "security/security.h"
#include "security/wire.h"
#include "server/main_int.h"
#include "server/server.h"

#define EXIT_START 1
#define EXIT_USAGE 2

/* How long start-up waits for PD before giving up. */
#define PD_WAIT_MS (5 * 60 * 1000)

typedef struct app {
    srv_config cfg;
    sigset_t sigs;
    eng_db *kv, *raft;
    pdc_client *pd;
    rstore *rs;
    stor_kv *seam;
    srv_node *node;
    rpc_tls tls;      /* TLS branch: client side of [security] (client_tls) */
    srv_authz *authz; /* TLS branch: security.authorization */
    srv_store_gc *gc;
    srv_detector_source detector_src;
    bool detector_src_ready;
    sec_runtime *sec; /* data directory, encryption, disk watcher (issue 9) */
    char err[TKV_ERRMSG_LEN];
} app;

static void die_start(app *a, const char *what)
{
    fprintf(stderr, "tikv-server: %s: %s\n", what, a->err);
    TKV_LOG_FATAL("start-up failed", TKV_LF_STR("what", what), TKV_LF_STR("cause", a->err));
}

/* Returns whether a stop signal is pending (without waiting). */
static bool stop_requested(app *a)
{
    struct timespec zero = {0, 0};
    return sigtimedwait(&a->sigs, NULL, &zero) > 0;
}

/* The data directory's security: created 0700, encryption keys and the encrypting
 * environment, the reserve-space placeholder and the disk watcher (issue 9). */
/* The options of the kv engine (@raft false) or the raft engine (@raft true), without the
 * environment: open_security sizes the disk reserve from them before the engines open. */
static void engine_options(const app *a, bool raft, eng_options *o)
{
    eng_options_init(o);
    if (raft) {
        o->name = "raft";
        o->block_cache_bytes = 16u << 20;
        o->write_buffer_bytes = (size_t)a->cfg.rocksdb.raft_write_buffer_bytes;
    } else {
        o->name = "kv";
        o->write_buffer_bytes = (size_t)a->cfg.rocksdb.kv_write_buffer_bytes;
    }
}

static int open_security(app *a)
{
    eng_options kv, raft;
    engine_options(a, false, &kv);
    engine_options(a, true, &raft);
    sec_runtime_opts so;
    sec_runtime_opts_init(&so);
    so.name = "tikv";
    so.data_dir = a->cfg.storage.data_dir;
    so.config = &a->cfg.sec;
    so.reserve_space_bytes = a->cfg.storage.reserve_space_bytes;
    so.capacity_bytes = a->cfg.raftstore.capacity_bytes;
    so.engine_headroom_bytes = eng_headroom_bytes(&kv) + eng_headroom_bytes(&raft);
    so.min_open_files = 82920; /* TiKV's start-up check */
    return sec_runtime_open(&so, &a->sec, a->err);
}

static int open_engines(app *a)
{
    const char *dir = a->cfg.storage.data_dir;
    char path[1024];
    int rc = open_security(a);
    if (rc != 0)
        return rc;
    eng_options o;
    engine_options(a, false, &o);
    o.rocksdb_env = sec_runtime_rocksdb_env(a->sec);
    snprintf(path, sizeof(path), "%s/db", dir);
    rc = eng_rocks_open(path, &o, &a->kv, a->err);
    if (rc != 0)
        return rc;
    engine_options(a, true, &o);
    o.rocksdb_env = sec_runtime_rocksdb_env(a->sec);
    snprintf(path, sizeof(path), "%s/raft", dir);
    return eng_rocks_open(path, &o, &a->raft, a->err);
}

/* TLS branch: the [security] files for the connections this store opens (PD, other stores);
 * NULL when TLS is off. */
static const rpc_tls *client_tls(app *a)
{
    const srv_config_security *sec = &a->cfg.security;
    if (sec->cert_path[0] == '\0')
        return NULL;
    a->tls = (rpc_tls){sec->ca_path[0] ? sec->ca_path : NULL, sec->cert_path, sec->key_path};
    return &a->tls;
}

static int open_pd(app *a)
{
    const tkv_cfg_strlist *eps = &a->cfg.pd.endpoints;
    pdc_opts o;
    pdc_opts_init(&o);
    o.endpoints = (const char *const *)eps->items;
    o.n_endpoints = eps->len;
    o.tls = client_tls(a); /* TLS branch: PD over the [security] files */
    uint64_t deadline = tkv_clock_mono_ms() + PD_WAIT_MS;
    for (int attempt = 0;; attempt++) {
        int rc = pdc_open(&o, &a->pd);
        if (rc == 0)
            return 0;
        snprintf(a->err, TKV_ERRMSG_LEN, "%s", pdc_errmsg(NULL));
        if (rc == TKV_ECONFIG || rc == -EINVAL || tkv_clock_mono_ms() > deadline)
            return rc;
        if (attempt % 10 == 0)
            TKV_LOG_WARN("PD is not reachable yet, retrying", TKV_LF_STR("cause", a->err));
        if (stop_requested(a))
            return TKV_ECLOSED;
        tkv_sleep_ms(500);
    }
}

/* A replication stream refused by raftstore (sender identity, forged messages): audited
 * like the gRPC server's own refusals. */
static void raft_refused(const rstore_refusal *r, void *ud)
{
    app *a = ud;
    char reason[320];
    snprintf(reason, sizeof(reason), "claimed store %llu: %s", (unsigned long long)r->store_id,
             r->reason);
    sec_wire_peer_rejected(a->node != NULL ? srv_node_wire(a->node) : NULL, r->peer, r->cert_cn,
                           r->method, reason);
}

static void raftstore_opts(app *a, rstore_opts *o, const char *snap_dir)
{
    const srv_config_raftstore *r = &a->cfg.raftstore;
    const srv_config_coprocessor *c = &a->cfg.coprocessor;
    rstore_opts_init(o);
    o->kv = a->kv;
    o->raft = a->raft;
    o->snap_dir = snap_dir;
    o->data_dir = a->cfg.storage.data_dir;
    o->pd = a->pd;
    o->raft_base_tick_ms = r->raft_base_tick_interval_ms;
    o->raft_heartbeat_ticks = (int)r->raft_heartbeat_ticks;
    o->raft_election_timeout_ticks = (int)r->raft_election_timeout_ticks;
    o->raft_entry_max_size = r->raft_entry_max_size;
    o->sync_log = r->sync_log;
    o->raft_log_gc_tick_ms = r->raft_log_gc_tick_interval_ms;
    o->raft_log_gc_threshold = r->raft_log_gc_threshold;
    o->raft_log_gc_count_limit = r->raft_log_gc_count_limit;
    o->raft_log_gc_size_limit = r->raft_log_gc_size_limit;
    o->split_check_tick_ms = r->split_region_check_tick_interval_ms;
    o->region_split_check_diff = r->region_split_check_diff;
    o->region_split_size = c->region_split_size;
    o->region_max_size = c->region_max_size;
    o->region_split_keys = c->region_split_keys;
    o->region_max_keys = c->region_max_keys;
    o->pd_heartbeat_tick_ms = r->pd_heartbeat_tick_interval_ms;
    o->pd_store_heartbeat_tick_ms = r->pd_store_heartbeat_tick_interval_ms;
    o->max_peer_down_ms = r->max_peer_down_duration_ms;
    o->capacity_bytes = r->capacity_bytes;
    o->version = srv_version();
    o->tls = a->tls.cert_path != NULL ? &a->tls : NULL; /* TLS branch: raft and snapshots */
    o->sec = a->sec;
    o->on_refused = raft_refused; /* sender identity of raft and snapshot streams */
    o->refused_ud = a;
}

/* TLS branch: security.authorization reads the key-range policy from PD's etcd store. */
static int fetch_policy(void *ud, tkv_buf *doc, bool *found)
{
    app *a = ud;
    return pdc_etcd_get(a->pd, tkv_slice_str(SEC_AUTHZ_KEY), doc, found);
}

static int start_authz(app *a)
{
    int rc = srv_authz_new(fetch_policy, a, 1000, srv_node_wire(a->node), &a->authz);
    if (rc != 0) {
        snprintf(a->err, TKV_ERRMSG_LEN, "authorization: %s", tkv_strerror(rc));
        return rc;
    }
    srv_service_set_authz(srv_node_service(a->node), a->authz);
    TKV_LOG_INFO("authorization by key range is on");
    return 0;
}

/* Returns "host:port" with @port replacing a 0 port in @addr. */
static void with_port(const char *addr, int port, char *out, size_t cap)
{
    const char *colon = strrchr(addr, ':');
    if (colon && strcmp(colon + 1, "0") == 0)
        snprintf(out, cap, "%.*s:%d", (int)(colon - addr), addr, port);
    else
        snprintf(out, cap, "%s", addr);
}

/* Replaces the per-store deadlock detector with the cluster-wide one (TiKV's: it runs on the
 * store leading the region with the empty key; the others send it their wait-for edges). */
static int start_detector(app *a)
{
    srv_detector_source_init(&a->detector_src, a->rs, a->pd);
    a->detector_src_ready = true;
    srv_deadlock_opts o = {.leader = srv_detector_leader, .ud = &a->detector_src};
    rpc_server_opts ro;
    rpc_tls tls;
    srv_config_rpc_opts(&a->cfg, &ro, &tls);
    o.tls = ro.tls; /* the peer TLS of the gRPC server, for the Detect streams */
    struct txn_detector *det;
    int rc = srv_deadlock_new(srv_node_rpc(a->node), &o, &det);
    if (rc == 0)
        stor_set_detector(srv_node_storage(a->node), det);
    else
        snprintf(a->err, TKV_ERRMSG_LEN, "deadlock detector: %s", tkv_strerror(rc));
    return rc;
}

/* The storage's timestamp source (stor_tso_fn): PD's TSO, asynchronously. */
static int storage_tso(void *arg, void (*cb)(void *ud, int rc, uint64_t ts), void *ud)
{
    return pdc_tso_async(arg, 0, cb, ud);
}

static int start(app *a)
{
    char snap_dir[1024];
    int rc = open_engines(a);
    if (rc != 0) {
        die_start(a, "open engines");
        return rc;
    }
    rc = open_pd(a);
    if (rc == TKV_ECLOSED) {
        TKV_LOG_INFO("stopped while waiting for PD");
        return rc;
    }
    if (rc != 0) {
        die_start(a, "connect to PD");
        return rc;
    }
    snprintf(snap_dir, sizeof(snap_dir), "%s/snap", a->cfg.storage.data_dir);
    rstore_opts ro;
    raftstore_opts(a, &ro, snap_dir);
    rc = rstore_open(&ro, &a->rs, a->err);
    if (rc != 0) {
        die_start(a, "open raftstore");
        return rc;
    }
    rc = rstore_kv_new(a->rs, &a->seam);
    if (rc != 0) {
        snprintf(a->err, TKV_ERRMSG_LEN, "%s", tkv_strerror(rc));
        die_start(a, "create the kv seam");
        return rc;
    }
    srv_admin_hooks hooks = {.impl = a->rs, .split_region = rstore_split_region};
    rc = srv_node_new(&a->cfg, a->seam, &hooks, &a->node, a->err);
    if (rc == 0 && a->cfg.security.authorization) /* TLS branch: roles from PD */
        rc = start_authz(a);
    if (rc == 0) {
        /* UnsafeDestroyRange deletes on the kv engine, below Raft, as TiKV's does. */
        stor_set_destroy_range(srv_node_storage(a->node), stor_destroy_range_engine, a->kv);
        /* 1PC: a region's max_ts is re-synced from PD's TSO after each leader change. */
        stor_set_tso(srv_node_storage(a->node), storage_tso, a->pd);
        rc = rstore_register_service(a->rs, srv_node_rpc(a->node));
    }
    if (rc == 0)
        rc = start_detector(a);
    if (rc == 0)
        rc = srv_node_start(a->node, a->err);
    if (rc != 0) {
        die_start(a, "start the gRPC and status servers");
        return rc;
    }
    char addr[256], status_addr[256];
    const srv_config_server *sv = &a->cfg.server;
    with_port(sv->advertise_addr[0] ? sv->advertise_addr : sv->addr, srv_node_port(a->node), addr,
              sizeof(addr));
    with_port(sv->advertise_status_addr[0] ? sv->advertise_status_addr : sv->status_addr,
              srv_node_status_port(a->node), status_addr, sizeof(status_addr));
    rc = rstore_start(a->rs, addr, status_addr, a->err);
    if (rc != 0) {
        die_start(a, "start raftstore");
        return rc;
    }
    rc = srv_store_gc_start(srv_node_storage(a->node), a->rs, a->pd,
                            a->cfg.gc.poll_safe_point_interval_ms, &a->gc);
    if (rc != 0) {
        snprintf(a->err, TKV_ERRMSG_LEN, "%s", tkv_strerror(rc));
        die_start(a, "start the GC worker");
        return rc;
    }
    rc = sec_runtime_start(a->sec);
    if (rc != 0) {
        snprintf(a->err, TKV_ERRMSG_LEN, "%s", tkv_strerror(rc));
        die_start(a, "start the disk watcher");
        return rc;
    }
    TKV_LOG_INFO("TiKV is ready to serve", TKV_LF_U64("store_id", rstore_store_id(a->rs)),
                 TKV_LF_STR("addr", addr), TKV_LF_STR("status_addr", status_addr));
    return 0;
}

/* Stops what start() started, in dependency order. */
static void stop(app *a)
{
    if (a->node)
        srv_node_stop(a->node, 1000); /* new requests refused, calls in flight finish */
    srv_store_gc_stop(a->gc);         /* its KvGC writes need raftstore */
    if (a->detector_src_ready)
        srv_detector_source_close(&a->detector_src); /* it asks raftstore and PD */
    if (a->rs)
        rstore_stop(a->rs);
    srv_authz_free(a->authz); /* TLS branch: before the PD client it reads with */
    pdc_close(a->pd);         /* its heartbeat callbacks into raftstore end here */
    srv_node_free(a->node);   /* the deadlock detector goes with the storage */
    if (a->detector_src_ready)
        srv_detector_source_deinit(&a->detector_src);
    stor_kv_free(a->seam);
    rstore_free(a->rs);
    eng_close(a->kv);
    eng_close(a->raft);
    sec_runtime_close(a->sec); /* after the engines that use its environment */
}

int main(int argc, char **argv)
{
    sec_private_umask(); /* every file and directory from here on is private (issue 9) */
    app a;
    memset(&a, 0, sizeof(a));
    bool help = false;
    if (srv_config_from_args(&a.cfg, argc, argv, &help, NULL, NULL, a.err) != 0) {
        fprintf(stderr, "tikv-server: %s\n", a.err);
        return EXIT_USAGE;
    }
    if (help) {
        srv_config_usage(stdout, argv[0]);
        return 0;
    }
    if (srv_config_apply_log(&a.cfg, a.err) != 0) {
        fprintf(stderr, "tikv-server: %s\n", a.err);
        srv_config_free(&a.cfg);
        return EXIT_USAGE;
    }
    /* Stop signals are taken synchronously by the main thread; every thread started from
     * here on inherits the blocked mask. */
    sigemptyset(&a.sigs);
    sigaddset(&a.sigs, SIGTERM);
    sigaddset(&a.sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &a.sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    rpc_init();
    TKV_LOG_INFO("Welcome to TiKV (tikv-c)", TKV_LF_STR("version", srv_version()),
                 TKV_LF_STR("git_hash", srv_git_hash()));
    int code = 0;
    int rc = start(&a);
    if (rc == TKV_ECLOSED) {
        code = 0; /* asked to stop before start-up finished */
    } else if (rc != 0) {
        code = EXIT_START;
    } else {
        int sig = 0;
        sigwait(&a.sigs, &sig);
        TKV_LOG_INFO("stopping on signal", TKV_LF_I64("signal", sig));
    }
    stop(&a);
    rpc_shutdown();
    TKV_LOG_INFO("tikv-server stopped", TKV_LF_I64("exit_code", code));
    srv_config_free(&a.cfg);
    tkv_metrics_reset();
    tkv_log_close();
    return code;
}
