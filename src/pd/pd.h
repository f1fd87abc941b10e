/*
 * pd.h: pd-server, the Placement Driver of a tikv-c cluster.
 *
 * What it serves (one member; the cluster state sits behind one module, pd_cluster, so a
 * replicated PD can be built under it later):
 *   - gRPC `pdpb.PD` on the client URL: GetMembers, Tso, Bootstrap, IsBootstrapped, AllocID,
 *     GetStore, PutStore, GetAllStores, StoreHeartbeat, RegionHeartbeat, GetRegion,
 *     GetPrevRegion, GetRegionByID, ScanRegions, AskBatchSplit, ReportBatchSplit,
 *     GetClusterConfig, PutClusterConfig, GetGCSafePoint, UpdateGCSafePoint, SplitRegions,
 *     ScatterRegion, GetOperator; `etcdserverpb.KV` Range/Put/DeleteRange on the same port
 *     (client-go keeps its GC safe point there); grpc.health.v1.Health.
 *   - the HTTP API at PD's paths (/pd/api/v1/stores, /regions, /members, /config,
 *     /operators, ...) and Prometheus metrics (/metrics) on the HTTP address.
 *   - scheduling: replica repair, leader and region balance, split and scatter, delivered
 *     as operators on the region heartbeat streams.
 *
 * Owns: PD's RocksDB in <data-dir>/db (cluster id, cluster meta, stores, regions, the ID
 * allocator and TSO bounds, GC safe point, run-time config, etcd keys), the gRPC and HTTP
 * servers, and two threads of its own (coordinator, TSO updater).
 * Threads: pd_server_new/start/stop/free on one thread; the server runs on gRPC
 * completion-queue threads, HTTP pool threads and its own threads. It caches metric series
 * (metrics.h), so tkv_metrics_reset() must not run while a server exists.
 * Errors: 0 or a negative TKV_E* / -errno; the cause in the caller's errmsg buffer.
 * Dependencies: base (log, cfg, metrics, clock), rpc, http, engine, proto (pdpb, metapb,
 * etcdserverpb), jansson (HTTP API bodies).
 *
 * Usage (what pd-server's main does):
 *     pd_config cfg;
 *     pd_config_init(&cfg);
 *     rc = pd_config_load_file(&cfg, "pd.toml", err);      // optional
 *     snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);   // flags override the file
 *     pd_server *s;
 *     rc = pd_server_new(&cfg, &s, err);                     // opens storage, TSO, cluster
 *     rc = pd_server_start(s, err);                          // gRPC, HTTP, coordinator
 *     ... wait for SIGTERM ...
 *     pd_server_stop(s);
 *     pd_server_free(s);
 */
#ifndef TKV_PD_H
#define TKV_PD_H

#include "base/base.h"
#include "security/runtime.h"

#define PD_LABELS_LEN 256

/* Scheduling and replication settings (PD's [schedule] and [replication] keys, plus a few
 * marked tikv-c). Plain data; changeable at run time through POST /pd/api/v1/config. */
typedef struct pd_sched_cfg {
    /* [schedule] */
    uint64_t max_store_down_time_ms;    /* max-store-down-time, 30m */
    uint64_t leader_schedule_limit;     /* leader-schedule-limit, 4 (0 disables) */
    uint64_t region_schedule_limit;     /* region-schedule-limit, 2048 (0 disables) */
    uint64_t replica_schedule_limit;    /* replica-schedule-limit, 64 (0 disables) */
    uint64_t patrol_region_interval_ms; /* patrol-region-interval, 10ms */
    uint64_t split_merge_interval_ms;   /* split-merge-interval, 1h (kept; no merge yet) */
    uint64_t max_snapshot_count;        /* max-snapshot-count, 64: peers being added per store */
    uint64_t max_pending_peer_count;    /* max-pending-peer-count, 64 */
    uint64_t fast_operator_timeout_ms;  /* tikv-c fast-operator-timeout, 10s */
    uint64_t slow_operator_timeout_ms;  /* tikv-c slow-operator-timeout, 10m */
    uint64_t store_disconnect_ms;       /* tikv-c store-disconnect-time, 20s */
    /* [replication] */
    uint64_t max_replicas;               /* max-replicas, 3 */
    char location_labels[PD_LABELS_LEN]; /* location-labels, comma-separated */
} pd_sched_cfg;

/* pd-server's configuration: command-line flags and the TOML file (PD's key names). */
/* Sizes of the certificate-name allow-lists in pd_config. */
#define PD_MAX_ALLOWED  16
#define PD_ALLOWED_NAME 128

typedef struct pd_config {
    char name[128];         /* name, "pd" */
    char client_urls[512];  /* client-urls, "http://127.0.0.1:2379" (first URL is served) */
    char data_dir[1024];    /* data-dir, "default.<name>" */
    char http_addr[256];    /* http-addr (tikv-c), "127.0.0.1:2381"; "" disables HTTP */
    int64_t lease_s;        /* lease, 3 */
    uint64_t tso_window_ms; /* tso-save-interval, 3s: how far ahead the TSO bound is saved */
    char log_level[16];     /* log.level, "info" */
    char log_file[1024];    /* log.file.filename, "" = stderr */
    int grpc_threads;       /* completion-queue threads, 2 */
    /* Connection gate of the gRPC server (tikv-c; rpc.h max_connections): connections open
     * at once, in all and from one source address. */
    uint64_t grpc_max_connections;             /* grpc-max-connections, 10000 */
    uint64_t grpc_max_connections_per_address; /* grpc-max-connections-per-address, 1000 */
    pd_sched_cfg sched;
    /* [security] (PD's keys; cert-allowed-san and audit-log are tikv-c's). TLS on every
     * channel when cacert-path, cert-path and key-path are set (all three or none): mutual
     * TLS on gRPC and the HTTP API, and client-urls must use https://. */
    char cacert_path[1024];                                 /* security.cacert-path */
    char cert_path[1024];                                   /* security.cert-path */
    char key_path[1024];                                    /* security.key-path */
    char cert_allowed_cn[PD_MAX_ALLOWED][PD_ALLOWED_NAME];  /* security.cert-allowed-cn */
    char cert_allowed_san[PD_MAX_ALLOWED][PD_ALLOWED_NAME]; /* security.cert-allowed-san */
    size_t n_cert_allowed_cn, n_cert_allowed_san;
    char audit_log[1024];        /* security.audit-log, "" = off */
    uint64_t auth_failure_burst; /* security.auth-failure-burst, 10 (brute-force guard) */
    /* An opaque rocksdb_env_t * for the on-disk store (borrowed; must outlive the server),
     * e.g. pd_security's encrypting environment; NULL (the default): RocksDB's own. */
    void *rocksdb_env;
} pd_config;

/* Fills @c with the defaults above. */
void pd_config_init(pd_config *c);

/* Applies the TOML file at @path on top of @c (unknown keys are logged as warnings).
 * Errors: TKV_ECONFIG (syntax, wrong type, bad value), -errno (unreadable); @errmsg says
 * where. @c may be partly changed on error. */
TKV_MUST_USE int pd_config_load_file(pd_config *c, const char *path, char errmsg[TKV_ERRMSG_LEN]);

/* Checks @c: names and URLs present, client URL "http://host:port" ("https://" with TLS),
 * the TLS paths all or none, allow-lists only with TLS, limits sane.
 * Errors: TKV_ECONFIG with the reason in @errmsg. */
TKV_MUST_USE int pd_config_validate(const pd_config *c, char errmsg[TKV_ERRMSG_LEN]);

/* Storage security for pd-server (issue 9): binds [security.encryption] from the TOML file
 * at @config_path (NULL or "": defaults, encryption off), creates @data_dir 0700 (warning when
 * group or others can read it), opens the key dictionary and the encrypting environment when
 * encryption is configured, and starts data-key rotation. Set pd_config.rocksdb_env to
 * sec_runtime_rocksdb_env(*@out) before pd_server_new; close the runtime after
 * pd_server_free. Errors: TKV_ECONFIG (bad settings, wrong master key), -errno; @errmsg says
 * why (never key material). */
TKV_MUST_USE int pd_security_open(const char *config_path, const char *data_dir, sec_runtime **out,
                                  char errmsg[TKV_ERRMSG_LEN]);

typedef struct pd_server pd_server;

/* Opens the data directory (creating it), loads or creates the cluster id, member id, ID
 * allocator, TSO and cluster state, and prepares (does not start) the servers.
 * Errors: TKV_ECONFIG, TKV_EENGINE (storage, e.g. the directory is locked by another
 * pd-server), TKV_ECORRUPT, -ENOMEM; @errmsg says why. */
TKV_MUST_USE int pd_server_new(const pd_config *cfg, pd_server **out, char errmsg[TKV_ERRMSG_LEN]);

/* Binds the gRPC and HTTP addresses and starts serving and scheduling.
 * Errors: TKV_ECONFIG (address in use or invalid), -errno; @errmsg says why. */
TKV_MUST_USE int pd_server_start(pd_server *s, char errmsg[TKV_ERRMSG_LEN]);

/* Returns the bound gRPC port (after start), and the HTTP port (0 when disabled). */
int pd_server_grpc_port(const pd_server *s);
int pd_server_http_port(const pd_server *s);
/* Returns the cluster id (stable across restarts of the same data directory). */
uint64_t pd_server_cluster_id(const pd_server *s);

/* Stops serving: health NOT_SERVING, HTTP stopped, gRPC calls drained (1 s grace), threads
 * joined, and every state change already acknowledged is on disk. Idempotent. */
void pd_server_stop(pd_server *s);

/* Stops @s if needed and frees it; NULL is a no-op. */
void pd_server_free(pd_server *s);

#endif /* TKV_PD_H */
