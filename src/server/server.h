/*
 * server.h: tikv-server's pieces other than replication: the gRPC service (tikvpb.Tikv with
 * BatchCommands), the status HTTP server (/metrics, /status, /config) and the configuration
 * (TiKV's TOML keys and command-line flags).
 *
 * Owns: a srv_service (its methods registered on a caller's rpc_server, per-method metrics,
 * BatchCommands streams, the admin hooks), a srv_status (an HTTP server), and the strings of
 * a srv_config.
 * Threads: srv_service and srv_status are thread-safe after creation; their handlers run on
 * gRPC completion-queue threads and HTTP pool threads and never wait on disk or Raft
 * themselves (storage methods complete asynchronously). Building them happens on one thread.
 * Errors: 0 or negative TKV_E* / -errno; configuration errors are TKV_ECONFIG with the key
 * named in errmsg. Clients see gRPC statuses only for requests that cannot be served at all:
 * INVALID_ARGUMENT (undecodable request), RESOURCE_EXHAUSTED (over a message limit, out of
 * memory), UNAVAILABLE (shutting down), UNIMPLEMENTED (a method no table serves); everything
 * else is in the response message, as TiKV puts it.
 * Ownership: the service borrows the rpc_server and the stor (both must outlive it); admin
 * hooks are copied; the config JSON given to the status server is copied.
 * Dependencies: base, rpc, http, storage, tkv_proto, jansson.
 *
 * Usage (tikv-server's main, with raftstore's pieces where the comments say; srv_node below
 * does the middle part in three calls):
 *     srv_config cfg;
 *     bool help;
 *     char err[TKV_ERRMSG_LEN];
 *     if (srv_config_from_args(&cfg, argc, argv, &help, NULL, NULL, err) != 0) die(err);
 *     if (help) { srv_config_usage(stdout, argv[0]); return 0; }
 *     srv_config_apply_log(&cfg, err);                  // log level, file, redaction
 *     ... open the kv engine under cfg.storage.data_dir, start raftstore -> stor_kv *kv ...
 *     stor_opts so; srv_config_stor_opts(&cfg, &so);
 *     stor *st; stor_new(kv, &so, &st);
 *     rpc_server_opts ro; rpc_tls tls; srv_config_rpc_opts(&cfg, &ro, &tls);
 *     rpc_server *rs; rpc_server_new(&ro, &rs);
 *     srv_admin_hooks hooks = {.impl = raftstore, .split_region = rstore_split_hook};
 *     srv_service *svc; srv_service_new(rs, st, &hooks, &svc);   // before rpc_server_start
 *     rpc_server_start(rs);
 *     tkv_buf json; tkv_buf_init(&json); srv_config_to_json(&cfg, &json);
 *     srv_status_opts so2 = {.addr = cfg.server.status_addr, .config_json = (char *)json.data};
 *     srv_status *status; srv_status_start(&so2, &status, err);
 *     ... wait for SIGTERM ...
 *     srv_service_shutdown(svc);                         // new requests: UNAVAILABLE
 *     rpc_server_shutdown(rs, 5000);                     // in-flight calls finish
 *     srv_status_stop(status); srv_service_free(svc); rpc_server_free(rs);
 *     stor_free(st); ... stop raftstore ...; srv_config_free(&cfg);
 */
#ifndef TKV_SERVER_H
#define TKV_SERVER_H

#include <stdio.h>

#include "base/cfg.h"
#include "base/log.h"
#include "rpc/rpc.h"
#include "security/config.h"
#include "storage/storage.h"

/* ---- the gRPC service ------------------------------------------------------------------ */

typedef struct srv_service srv_service;

/* Outcome of a split: @regions[0..@n) are the regions that now cover the split range, in key
 * order (borrowed for the call), or a region error (owned by the callee, like kv.h's), or a
 * local failure rc < 0. Called exactly once, from any thread. */
typedef void (*srv_split_cb)(void *ud, int rc, Errorpb__Error *rerr,
                             const Metapb__Region *const *regions, size_t n);

/* Administrative operations the replication layer implements. Every member may be NULL. */
typedef struct srv_admin_hooks {
    void *impl; /* passed to every hook */
    /* Splits the region named by @ctx (id and epoch checked like any request) at @keys[0..n),
     * sorted, in storage key form: raw keys as given when @is_raw_kv, memcomparable-encoded
     * user keys otherwise (the service encodes them, as TiKV's does). Returns 0 when the
     * split was accepted (@cb then runs exactly once, possibly before this returns), or a
     * negative code (@cb never runs). */
    int (*split_region)(void *impl, const stor_ctx *ctx, const tkv_slice *keys, size_t n,
                        bool is_raw_kv, srv_split_cb cb, void *ud);
    /* Returns the store's safe timestamp for [@start, @end) (GetStoreSafeTS); NULL answers
     * 0, which clients accept. Must not block. */
    uint64_t (*store_safe_ts)(void *impl, tkv_slice start, tkv_slice end);
} srv_admin_hooks;

/* Creates the tikvpb.Tikv service on @rs (not started yet) over storage @s: every method of
 * stor_raw_methods and stor_txn_methods as a unary method "/tikvpb.Tikv/<name>", the bidi
 * stream "/tikvpb.Tikv/BatchCommands" (batchable methods by oneof number), SplitRegion (through
 * the split hook; without one it answers a region error saying so) and GetStoreSafeTS. The
 * health service is rpc's own. @admin may be NULL (install hooks later with
 * srv_service_set_admin). Metrics use TiKV's names (tikv_grpc_msg_duration_seconds{type},
 * tikv_grpc_msg_fail_total{type}, tikv_server_grpc_req_batch_size, ..._resp_batch_size).
 * Errors: -EINVAL (server started or NULL arguments), TKV_EEXIST (a path registered twice),
 * -ENOMEM. */
TKV_MUST_USE int srv_service_new(rpc_server *rs, stor *s, const srv_admin_hooks *admin,
                                 srv_service **out);

/* Replaces the admin hooks (copied; NULL removes them). Thread: any, any time; calls already
 * handed to the old hooks complete through them. */
void srv_service_set_admin(srv_service *svc, const srv_admin_hooks *admin);

/* Refuses new requests (UNAVAILABLE, and NOT_SERVING on the health service) while requests in
 * flight complete. Call before rpc_server_shutdown. Idempotent. Thread: any. */
void srv_service_shutdown(srv_service *svc);

/* Frees the service. The rpc_server must be shut down first (no call in flight). NULL is a
 * no-op. */
void srv_service_free(srv_service *svc);

/* Returns TiKV's metric label for method @name: "RawGet" -> "raw_get", "KVPessimisticRollback"
 * -> "kv_pessimistic_rollback", "RawGetKeyTTL" -> "raw_get_key_ttl". Writes at most @cap bytes
 * (NUL included) to @out. */
void srv_method_label(const char *name, char *out, size_t cap);

/* ---- the cluster-wide deadlock detector --------------------------------------------------- */

/* TiKV runs one deadlock detector per cluster, on the store that leads the region holding
 * the empty key; every store sends the wait-for edges of its pessimistic lock waiters there
 * over the deadlock.Deadlock/Detect stream, and the detector answers the edges that close a
 * cycle. srv_deadlock is that detector for one store, behind storage's txn_detector
 * interface: while this store leads, edges go into its own wait-for graph (remote stores'
 * too, through the Detect service registered here); otherwise they go to the leader's
 * stream and deadlocks come back on it. While the leader is unknown or unreachable, edges
 * are dropped and waits end by their timeout (TiKV does the same). */

/* Who runs the detector. */
typedef struct srv_deadlock_leader {
    bool known;     /* false: nobody known (edges are dropped) */
    bool local;     /* this store */
    char addr[128]; /* the leader's gRPC address when remote */
} srv_deadlock_leader;

/* Fills @out with the current detector leader. Called on the detector's own thread; may block
 * (PD calls). */
typedef void (*srv_deadlock_leader_fn)(void *ud, srv_deadlock_leader *out);

typedef struct srv_deadlock_opts {
    srv_deadlock_leader_fn leader; /* required */
    void *ud;
    uint64_t refresh_ms;   /* how often the leader is asked again (default 1000) */
    const rpc_tls *tls;    /* client TLS for Detect streams (NULL: plaintext; read only by
                            * srv_deadlock_new) */
    uint64_t graph_ttl_ms; /* edge lifetime in the graph (default TiKV's 3 s) */
} srv_deadlock_opts;

/* Creates the detector, registers /deadlock.Deadlock/Detect and GetWaitForEntries on @rs (not
 * started yet), and starts its thread. *@out is the detector to install with
 * stor_set_detector (the storage owns it: freeing it stops the thread and closes the
 * streams); @rs must be shut down before the storage is freed. Errors: -EINVAL, -ENOMEM,
 * -errno, rpc registration errors. */
TKV_MUST_USE int srv_deadlock_new(rpc_server *rs, const srv_deadlock_opts *o,
                                  struct txn_detector **out);

/* ---- the status server ------------------------------------------------------------------ */

typedef struct srv_status srv_status;

typedef struct srv_status_opts {
    const char *addr;        /* "host:port" (server.status-addr); port 0 picks one */
    const char *version;     /* NULL: srv_version() */
    const char *git_hash;    /* NULL: srv_git_hash() */
    const char *config_json; /* /config body (copied); NULL: "{}" */
    /* HTTPS with the [security] files (NULL: plain HTTP); with a CA, mutual TLS and the
     * allow-lists (NULL-terminated, NULL: any certificate the CA signed) as on the gRPC
     * port. */
    const rpc_tls *tls;
    const char *const *allowed_cn;
    const char *const *allowed_san;
    struct sec_wire *wire; /* audit log and guard for refused peers; NULL: none */
} srv_status_opts;

/* Starts the status server: GET /metrics (Prometheus text format 0.0.4 from the metrics
 * registry), GET /status (JSON: version, git_hash, start_time, start_timestamp, uptime,
 * uptime_seconds), GET /config (the JSON given, TiKV's key names: client-go's raw tests read
 * storage.api-version there). Errors: as http_server_start, with @errmsg. */
TKV_MUST_USE int srv_status_start(const srv_status_opts *o, srv_status **out, char *errmsg);

/* Returns the bound port. */
uint16_t srv_status_port(const srv_status *st);

/* Replaces the /config body with a copy of @json. Thread: any. Errors: -ENOMEM (unchanged). */
TKV_MUST_USE int srv_status_set_config(srv_status *st, const char *json);

/* Stops the server and frees it. NULL is a no-op. */
void srv_status_stop(srv_status *st);

/* Returns the version tikv-server reports (the project version). */
const char *srv_version(void);
/* Returns the git commit the binary was configured from, or "" when unknown. */
const char *srv_git_hash(void);

/* ---- configuration --------------------------------------------------------------------- */

/* [server] */
typedef struct srv_config_server {
    char *addr;                         /* addr, "127.0.0.1:20160" */
    char *status_addr;                  /* status-addr, "127.0.0.1:20180" */
    char *advertise_addr;               /* advertise-addr, "" = addr */
    char *advertise_status_addr;        /* advertise-status-addr, "" = status-addr */
    int grpc_concurrency;               /* grpc-concurrency, 5 */
    uint64_t max_grpc_send_msg_len;     /* max-grpc-send-msg-len, 10 MiB (bytes) */
    uint64_t grpc_keepalive_time_ms;    /* grpc-keepalive-time, "10s" */
    uint64_t grpc_keepalive_timeout_ms; /* grpc-keepalive-timeout, "3s" */
    /* gRPC hardening (TiKV's keys, except max-grpc-recv-msg-len and grpc-max-connection-idle
     * which are ours): */
    uint64_t max_grpc_recv_msg_len;       /* max-grpc-recv-msg-len, "256MiB" */
    int grpc_concurrent_stream;           /* grpc-concurrent-stream, 1024 (per connection) */
    uint64_t grpc_memory_pool_quota;      /* grpc-memory-pool-quota, "0" = unlimited (bytes) */
    uint64_t grpc_max_connection_idle_ms; /* grpc-max-connection-idle, "0" = never */
    /* Connection gate (ours; rpc.h max_connections): connections open at once, in all and
     * from one source address; more are closed as soon as they are accepted. */
    int grpc_max_connections;             /* grpc-max-connections, 10000 */
    int grpc_max_connections_per_address; /* grpc-max-connections-per-address, 1000 */
} srv_config_server;

/* [storage] */
typedef struct srv_config_storage {
    char *data_dir;                 /* data-dir, "./" */
    bool enable_ttl;                /* enable-ttl, false: API V1; true: API V1TTL */
    int api_version;                /* api-version, 1 (2 is refused: not supported) */
    uint64_t scheduler_concurrency; /* scheduler-concurrency, 524288 (latch slots) */
    uint64_t reserve_space_bytes;   /* reserve-space, "5GiB" */
    uint64_t max_key_size;          /* max-key-size, 8192 */
    /* tikv-c's own limits (TiKV has no keys for them): */
    uint64_t max_batch_keys; /* max-batch-keys, 100000: keys/pairs/ranges per request */
    uint64_t max_scan_limit; /* max-scan-limit, 100000: rows one scan may ask for */
} srv_config_storage;

/* [raftstore] (the raftstore engineer adds what raftstore needs here and in config.c) */
typedef struct srv_config_raftstore {
    uint64_t capacity_bytes;              /* capacity, 0 = the disk's (--capacity) */
    uint64_t raft_base_tick_interval_ms;  /* raft-base-tick-interval, "1s" */
    uint64_t raft_heartbeat_ticks;        /* raft-heartbeat-ticks, 2 */
    uint64_t raft_election_timeout_ticks; /* raft-election-timeout-ticks, 10 */
    uint64_t raft_log_gc_threshold;       /* raft-log-gc-threshold, 50 */
    uint64_t raft_log_gc_count_limit;     /* raft-log-gc-count-limit, split size * 3/4 / 1 KiB */
    uint64_t raft_entry_max_size;         /* raft-entry-max-size, "8MiB" (also the value limit) */
    uint64_t region_split_check_diff;     /* region-split-check-diff, split size / 16 */
    uint64_t split_region_check_tick_interval_ms; /* split-region-check-tick-interval, "10s" */
    uint64_t pd_heartbeat_tick_interval_ms;       /* pd-heartbeat-tick-interval, "1m" */
    uint64_t pd_store_heartbeat_tick_interval_ms; /* pd-store-heartbeat-tick-interval, "10s" */
    uint64_t raft_log_gc_tick_interval_ms;        /* raft-log-gc-tick-interval, "3s" */
    uint64_t raft_log_gc_size_limit;              /* raft-log-gc-size-limit, split size * 3/4 */
    uint64_t max_peer_down_duration_ms;           /* max-peer-down-duration, "10m" */
    bool sync_log;                                /* sync-log, true: acknowledge after fsync */
    bool hibernate_regions;                       /* hibernate-regions, false here (TiKV: true) */
} srv_config_raftstore;

/* [coprocessor] */
typedef struct srv_config_coprocessor {
    uint64_t region_split_size; /* region-split-size, "96MiB" */
    uint64_t region_max_size;   /* region-max-size, "144MiB" */
    uint64_t region_split_keys; /* region-split-keys, 960000 */
    uint64_t region_max_keys;   /* region-max-keys, 1440000 */
} srv_config_coprocessor;

/* [gc] */
typedef struct srv_config_gc {
    /* poll-safe-point-interval, "10s": how often the GC worker asks PD for the GC safe point
     * (tikv-c's key: TiKV polls every 10 s without a setting). */
    uint64_t poll_safe_point_interval_ms;
} srv_config_gc;

/* [pd] */
typedef struct srv_config_pd {
    tkv_cfg_strlist endpoints; /* endpoints, ["127.0.0.1:2379"] (--pd) */
} srv_config_pd;

/* [security] */
typedef struct srv_config_security {
    char *ca_path;                   /* ca-path, "" */
    char *cert_path;                 /* cert-path, "" */
    char *key_path;                  /* key-path, "" */
    tkv_cfg_strlist cert_allowed_cn; /* cert-allowed-cn, [] */
    char *redact_info_log;           /* redact-info-log, false | true | "marker" */
    const char **cert_allowed_cn_nt; /* (derived) cert-allowed-cn, NULL-terminated */
    /* Ours (TiKV has no such keys; cert-allowed-san, audit-log and the brute-force guard's
     * keys are bound in srv_config.sec): */
    const char **cert_allowed_san_nt; /* (derived) sec.cert-allowed-san, NULL-terminated */
    bool authorization; /* authorization, false: key-range roles from PD (srv_authz) */
    tkv_cfg_strlist cert_allowed_peer_cn; /* cert-allowed-peer-cn, []: names that may send
                                           * raft messages and snapshots ([]: any allowed) */
    const char **cert_allowed_peer_cn_nt; /* (derived) NULL-terminated */
    tkv_log_redact redact_mode;           /* (derived) redact-info-log as a mode */
} srv_config_security;

/* [rocksdb] and [raftdb]: the engines' tuning tikv-c exposes (TiKV's keys; one memtable size
 * applies to every column family of that engine). */
typedef struct srv_config_rocksdb {
    uint64_t kv_write_buffer_bytes;   /* rocksdb.defaultcf.write-buffer-size, "64MiB" */
    uint64_t raft_write_buffer_bytes; /* raftdb.defaultcf.write-buffer-size, "64MiB" */
} srv_config_rocksdb;

/* [log] */
typedef struct srv_config_log {
    char *level;         /* level, "info" (the deprecated top-level log-level overrides it) */
    char *file_filename; /* file.filename, "" = stderr (log-file overrides it) */
} srv_config_log;

/* tikv-server's configuration: TiKV's key names and defaults for what tikv-c supports. */
typedef struct srv_config {
    char *log_level_deprecated; /* log-level: set -> copied into log.level */
    char *log_file_deprecated;  /* log-file: set -> copied into log.file.filename */
    srv_config_server server;
    srv_config_storage storage;
    srv_config_raftstore raftstore;
    srv_config_coprocessor coprocessor;
    srv_config_gc gc;
    srv_config_pd pd;
    srv_config_security security;
    srv_config_rocksdb rocksdb;
    srv_config_log log;
    /* The whole [security] section as src/security binds it (sec_config_fields: encryption,
     * audit log, guard, allow-lists; the TLS paths again), for the security building blocks. */
    sec_config sec;
} srv_config;

/* The binding table (TiKV key -> member), for srv_config_bind and extensions. srv_config_bind
 * binds sec_config_fields into srv_config.sec from the same document as well. */
extern const tkv_cfg_field srv_config_fields[];
extern const size_t srv_config_nfields;

/* Fills @cfg from @doc (NULL: defaults only) and validates it: unknown keys go to @warn (NULL
 * logs them at WARN), bad values fail naming the key ("server.grpc-concurrency: must be at
 * least 1"). Derived defaults (raft-log-gc-count-limit, region-split-check-diff) are computed,
 * and the deprecated top-level log-level / log-file, when set, replace log.level /
 * log.file.filename. Errors: TKV_ECONFIG with @errmsg, -ENOMEM. On error @cfg holds nothing
 * to free. */
TKV_MUST_USE int srv_config_bind(srv_config *cfg, const tkv_cfg_doc *doc, tkv_cfg_warn_fn warn,
                                 void *warn_arg, char *errmsg);

/* Parses TiKV's command line: --config FILE (-C), --pd ENDPOINTS (comma-separated; also
 * --pd-endpoints), --addr (-A), --advertise-addr, --status-addr, --advertise-status-addr,
 * --data-dir (-s), --log-level (-L), --log-file (-f), --capacity SIZE, --help (-h); each as
 * "--flag value" or "--flag=value". Loads the file, applies the flags over it (flags win),
 * then binds as srv_config_bind. With --help sets *@help and returns 0 with @cfg holding
 * nothing to free. Errors: TKV_ECONFIG (unknown flag, missing value, unreadable file, bad
 * value: the message names the flag or key), -ENOMEM. */
TKV_MUST_USE int srv_config_from_args(srv_config *cfg, int argc, char *const argv[], bool *help,
                                      tkv_cfg_warn_fn warn, void *warn_arg, char *errmsg);

/* Prints the command-line help to @out. */
void srv_config_usage(FILE *out, const char *prog);

/* Releases the strings and lists of @cfg. Safe to call twice. */
void srv_config_free(srv_config *cfg);

/* Appends @cfg as JSON with TiKV's key names and nesting ({"server": {"addr": ...},
 * "storage": {"api-version": 1, ...}, ...}); sizes and durations as TiKV prints them
 * ("96MiB", "10s"). A NUL follows the text (not counted in out->len), so (char *)out->data
 * can be handed to srv_status_opts.config_json. Errors: -ENOMEM (@out unchanged). */
TKV_MUST_USE int srv_config_to_json(const srv_config *cfg, tkv_buf *out);

/* Fills storage options from @cfg (limits, TTL, latch slots). */
void srv_config_stor_opts(const srv_config *cfg, stor_opts *o);

/* Fills gRPC server options from @cfg: addr, completion-queue threads, send limit, keepalive,
 * TLS paths and allowed CNs. @tls receives the paths (it is pointed to by o->tls when TLS is
 * configured). Lifetime: pointers into @cfg, valid until srv_config_free. */
void srv_config_rpc_opts(const srv_config *cfg, rpc_server_opts *o, rpc_tls *tls);

/* Applies the [log] and [security] settings to the process logger (level, file, redaction).
 * Errors: TKV_ECONFIG (unknown level), -errno (log file cannot be opened), with @errmsg. */
TKV_MUST_USE int srv_config_apply_log(const srv_config *cfg, char *errmsg);

/* ---- authorization by key range (security/authz.h) -------------------------------------- */

/* With security.authorization on, every storage request is checked against the policy in PD:
 * the caller is the verified client certificate's common name, the permission comes from the
 * method (reads, writes, admin methods such as RawDeleteRange, UnsafeDestroyRange and
 * SplitRegion), the keys and ranges from the request. A refused request gets its response's
 * error field set ("permission denied: ...", the client sees an error, not a retry) or, for
 * responses without one, PERMISSION_DENIED; it is audited as "request_rejected". Until the
 * first policy arrives everything is refused. */
typedef struct srv_authz srv_authz;

/* Reads the policy document (etcd key SEC_AUTHZ_KEY in PD) into @doc; *@found false: none
 * stored (the empty policy). Errors: any negative code (the previous policy stays). */
typedef int (*srv_authz_fetch_fn)(void *ud, tkv_buf *doc, bool *found);

/* Starts a checker that fetches the policy now and every @refresh_ms; refusals go to @wire's
 * audit log (NULL: none). Errors: -EINVAL, -ENOMEM, -errno (thread). */
TKV_MUST_USE int srv_authz_new(srv_authz_fetch_fn fetch, void *ud, uint64_t refresh_ms,
                               struct sec_wire *wire, srv_authz **out);
/* Fetches and applies the policy now. Errors: from fetch or parsing (policy kept). */
int srv_authz_refresh(srv_authz *a);
/* Stops the refresher and frees @a. NULL is a no-op. */
void srv_authz_free(srv_authz *a);
/* Returns true when certificate name @cn may call @method ("RawGet") with @req; else writes
 * why into @reason and audits the refusal. Thread: any. */
bool srv_authz_check(srv_authz *a, const char *cn, const char *method, const ProtobufCMessage *req,
                     char *reason, size_t cap);
/* The permission @method needs. */
int srv_authz_perm_of(const char *method);
/* Builds an empty response of type @d whose error field carries @msg (string error, or a
 * KeyError's abort); free it with tkv_free (@msg is borrowed). Errors: TKV_ENOTFOUND (no such
 * field), -ENOMEM. */
TKV_MUST_USE int srv_authz_denied_response(const ProtobufCMessageDescriptor *d, const char *msg,
                                           ProtobufCMessage **out);
/* Makes @svc check every request with @a (NULL: off). Call before the server starts. */
void srv_service_set_authz(srv_service *svc, srv_authz *a);
/* Makes @svc write an "admin" audit record for every admin request it serves (SplitRegion,
 * RawDeleteRange, UnsafeDestroyRange, ...) into @w (NULL: none). Call before the server
 * starts. */
void srv_service_set_wire(srv_service *svc, struct sec_wire *w);

/* ---- the node: service, gRPC server and status server together --------------------------- */

typedef struct srv_node srv_node;

/* Builds tikv-server's front end from @cfg over the kv seam @kv (borrowed; it must outlive the
 * node): the storage (srv_config_stor_opts), a gRPC server (srv_config_rpc_opts; not yet
 * listening) carrying the tikv service with @admin hooks (NULL: none yet), and the status
 * server's settings. Register further methods (raftstore's /tikvpb.Tikv/Raft, BatchRaft,
 * Snapshot) on srv_node_rpc() before srv_node_start.
 * Errors: TKV_ECONFIG (TLS files), TKV_ECORRUPT (the audit log fails verification), -errno,
 * -ENOMEM, -EINVAL, with @errmsg. */
TKV_MUST_USE int srv_node_new(const srv_config *cfg, stor_kv *kv, const srv_admin_hooks *admin,
                              srv_node **out, char *errmsg);

/* Returns the node's gRPC server (to add methods before srv_node_start), storage and service. */
rpc_server *srv_node_rpc(srv_node *n);
/* Returns the node's audit log and brute-force guard (security/wire.h), opened from
 * security.audit-log by srv_node_new; both servers report refused peers to it. */
struct sec_wire *srv_node_wire(srv_node *n);
stor *srv_node_storage(srv_node *n);
srv_service *srv_node_service(srv_node *n);

/* Starts listening: gRPC on server.addr, then the status server on server.status-addr with
 * the configuration's JSON at /config. Errors: TKV_ECONFIG (an address cannot be bound), -errno,
 * with @errmsg; the node must still be stopped and freed. */
TKV_MUST_USE int srv_node_start(srv_node *n, char *errmsg);

/* Returns the bound gRPC port and status port (0 before srv_node_start). */
int srv_node_port(const srv_node *n);
uint16_t srv_node_status_port(const srv_node *n);

/* Refuses new requests, lets calls in flight finish for up to @grace_ms, stops the gRPC and
 * status servers. Idempotent. Thread: not a gRPC or HTTP thread. */
void srv_node_stop(srv_node *n, int64_t grace_ms);

/* Stops the node if needed and frees it (the storage too, not @kv). NULL is a no-op. */
void srv_node_free(srv_node *n);

#endif /* TKV_SERVER_H */
