/*
 * raftstore.h: multi-Raft replication for one tikv-server store (TiKV's raftstore and its
 * batch-system): every region replica on the store is a peer running a Raft group, and the
 * store turns storage's writes and reads (the kv seam, storage/kv.h) into proposals, lease
 * reads and ReadIndex reads.
 *
 * Owns: an rstore: the store identity (cluster id, store id, kept in the kv engine), every
 * peer with its Raft node and peer storage, the router (region id -> mailbox), the threads
 * below, the raft transport (BatchRaft streams to other stores, snapshot streams), the
 * snapshot files under snap_dir, and the store's metrics. The two engines are borrowed.
 *   - kv engine: region data under 'z' keys in default/lock/write, per region
 *     RegionLocalState and RaftApplyState in the raft column family, the store ident and the
 *     prepare-bootstrap marker in default (TiKV's layout, base/keys.h);
 *   - raft engine: raft log entries (eraftpb.Entry) and RaftLocalState per region.
 *
 * Threads (all started by rstore_start, joined by rstore_stop):
 *   - poller ("rstore-poll"): owns every peer. Each loop drains the mailboxes of the peers
 *     that got messages, steps Raft, ticks on the base tick, collects the Readys of all
 *     peers, sends their messages at once, writes every raft log and hard state in ONE
 *     raft-engine write batch with ONE fsync (group commit), sends the messages that had to
 *     wait for the write, hands committed entries to the apply thread, and advances.
 *   - apply ("rstore-apply"): owns each region's apply state; applies committed entries into
 *     one kv write batch per round together with every touched region's RaftApplyState (the
 *     apply index is persisted atomically with the data), answers proposals, and reports
 *     applied indexes, membership changes, splits and log compactions back to the peers.
 *   - worker ("rstore-worker"): split checks, snapshot generation and reception, raft log
 *     deletion after compaction.
 *   - snap sender ("rstore-snap"): streams snapshot files over /tikvpb.Tikv/Snapshot.
 *   - PD worker ("rstore-pd"): store and region heartbeats, AskBatchSplit / ReportBatchSplit,
 *     store address resolution; PD's operators (change peer, transfer leader, split) come
 *     back on the heartbeat stream and go to the peers' mailboxes.
 * Every public function is thread-safe unless it says otherwise. Callbacks handed to the kv
 * seam run on the apply thread (writes) or the poller thread (reads) and must not block.
 *
 * Errors: 0 or a negative TKV_E* / -errno; start-up failures put a message in the caller's
 * errmsg buffer. Requests a region cannot serve are answered with errorpb region errors
 * (NotLeader with the leader, EpochNotMatch with the current regions, RegionNotFound,
 * KeyNotInRegion, ServerIsBusy, StoreNotMatch, RaftEntryTooLarge, StaleCommand) through the
 * seam's callbacks, as TiKV does; DiskFull when the store is low on space (rstore_opts.sec). An
 * engine write failure in the poller or the apply thread is fatal (logged, then abort), as in TiKV:
 * continuing would let replicas diverge. Ownership: options are copied; engines, the PD client and
 * rpc servers are borrowed and must outlive the store. Dependencies: base, engine, raft, rpc, pdc,
 * security (runtime, sec_file), storage/kv.h, tkv_proto.
 *
 * Usage (tikv-server's start-up; tests do the same with eng_mem engines):
 *     rstore_opts o;
 *     rstore_opts_init(&o);
 *     o.kv = kv_db; o.raft = raft_db; o.snap_dir = "/data/snap"; o.pd = pd_client;
 *     rstore *rs;
 *     if (rstore_open(&o, &rs, err) != 0) die(err);          // ident, bootstrap, load peers
 *     rc = rstore_register_service(rs, grpc_server);         // Raft, BatchRaft, Snapshot
 *     ... rpc_server_start(grpc_server) ...
 *     rc = rstore_start(rs, "127.0.0.1:20160", "127.0.0.1:20180", err); // PutStore, threads
 *     stor_kv *kv;
 *     rc = rstore_kv_new(rs, &kv);                           // storage writes through it
 *     ... serve ...
 *     rstore_stop(rs);      // pending requests end with TKV_ECLOSED; threads joined
 *     stor_kv_free(kv);
 *     rstore_free(rs);
 */
#ifndef TKV_RAFTSTORE_H
#define TKV_RAFTSTORE_H

#include "base/base.h"
#include "engine/engine.h"
#include "pdc/pdc.h"
#include "rpc/rpc.h"
#include "security/runtime.h"
#include "storage/kv.h"

typedef struct rstore rstore;

/* Store settings: TiKV's [raftstore] and [coprocessor] keys where TiKV has them. Plain data;
 * strings are copied by rstore_open. */
/* Request metadata every replication stream a store opens carries: the sender's cluster id
 * and store id, in decimal. */
#define RSTORE_MD_CLUSTER_ID "tikvc-cluster-id"
#define RSTORE_MD_STORE_ID   "tikvc-store-id"
/* Store label under which PD records, with mutual TLS, the certificate name a store
 * registered with (PD sets it from the PutStore caller's certificate; stores never do). */
#define RSTORE_CERT_NAME_LABEL "tikv-c.cert-name"

/* An incoming replication stream refused, or the first forged message of a stream, told to
 * rstore_opts.on_refused once per stream. Strings are borrowed for the hook's duration. */
typedef struct rstore_refusal {
    const char *peer;    /* gRPC peer address ("ipv4:127.0.0.1:5555") */
    const char *cert_cn; /* the client certificate's common name, "" without mutual TLS */
    const char *method;  /* "/tikvpb.Tikv/Raft", ".../BatchRaft" or ".../Snapshot" */
    uint64_t store_id;   /* the sender's store id as the stream claimed it (0: none) */
    const char *reason;  /* why (also the status message sent, for a refused stream) */
} rstore_refusal;

typedef struct rstore_opts {
    eng_db *kv;                   /* kv engine (borrowed, required) */
    eng_db *raft;                 /* raft engine (borrowed, required; may be the kv engine) */
    const char *snap_dir;         /* snapshot files (created if missing; required) */
    pdc_client *pd;               /* PD client (borrowed); NULL runs standalone: one store that
                                   * bootstraps its first region locally and talks to nobody */
    uint64_t standalone_store_id; /* store id without PD (default 1) */

    /* Raft timing (raft-base-tick-interval, raft-heartbeat-ticks,
     * raft-election-timeout-ticks). */
    uint64_t raft_base_tick_ms;
    int raft_heartbeat_ticks;
    int raft_election_timeout_ticks;
    uint64_t raft_max_size_per_msg; /* raft-max-size-per-msg, 1 MiB */
    size_t raft_max_inflight_msgs;  /* raft-max-inflight-msgs, 256 */
    uint64_t raft_entry_max_size;   /* raft-entry-max-size, 8 MiB: larger writes get
                                     * RaftEntryTooLarge */
    bool sync_log;                  /* sync-log: fsync raft log writes (default true) */

    /* Raft log compaction (raft-log-gc-tick-interval, raft-log-gc-threshold,
     * raft-log-gc-count-limit, raft-log-gc-size-limit). */
    uint64_t raft_log_gc_tick_ms;
    uint64_t raft_log_gc_threshold;
    uint64_t raft_log_gc_count_limit;
    uint64_t raft_log_gc_size_limit;

    /* Split (split-region-check-tick-interval, region-split-check-diff,
     * coprocessor.region-split-size / region-max-size / region-split-keys /
     * region-max-keys). */
    uint64_t split_check_tick_ms;
    uint64_t region_split_check_diff;
    uint64_t region_split_size;
    uint64_t region_max_size;
    uint64_t region_split_keys;
    uint64_t region_max_keys;

    /* PD (pd-heartbeat-tick-interval, pd-store-heartbeat-tick-interval,
     * max-peer-down-duration). */
    uint64_t pd_heartbeat_tick_ms;
    uint64_t pd_store_heartbeat_tick_ms;
    uint64_t max_peer_down_ms;

    /* Back-pressure: messages queued in one peer's mailbox before new writes and reads get
     * ServerIsBusy (TiKV's notify capacity). */
    size_t mailbox_capacity;
    /* Store capacity reported to PD (raftstore.capacity); 0: the disk's size. */
    uint64_t capacity_bytes;
    /* Directory whose file system is measured for capacity/available (usually data-dir);
     * NULL: snap_dir's. */
    const char *data_dir;
    /* Version reported in PutStore ("" for the project version). */
    const char *version;
    /* TLS for raft messages and snapshots to other stores (the [security] files; borrowed,
     * must outlive the store); NULL: plaintext. */
    const rpc_tls *tls;
    /* The server's storage security (borrowed; may be NULL): snapshot files are written and
     * read through its key dictionary (encrypted when encryption is on), and its disk state
     * gates writes: AlmostFull refuses writes whose context does not allow it (kvrpcpb
     * DiskFullOpt), AlreadyFull refuses every write, each with the DiskFull region error,
     * while reads go on. A write of deletions only is always accepted: deleting is how a
     * full store gets room back. NULL: plaintext files, the disk is never full. */
    sec_runtime *sec;
    /* Optional: told about every refused incoming raft or snapshot stream and every stream
     * caught forging another store's messages (once per stream), for the audit log. Runs on
     * a gRPC completion-queue thread: must not block. */
    void (*on_refused)(const rstore_refusal *r, void *ud);
    void *refused_ud;
} rstore_opts;

/* Fills @o with TiKV's defaults: 1 s base tick, heartbeat 2 ticks, election 10 ticks, log
 * GC every 10 s with threshold 50 and limits derived from the split size, split check every
 * 10 s, split size 96 MiB and max 144 MiB (keys 960000 / 1440000), region heartbeat every
 * 60 s, store heartbeat every 10 s, peers down after 10 min, sync-log on, mailbox capacity
 * 4096, 8 MiB entries. Engines, snap_dir and pd are NULL. */
void rstore_opts_init(rstore_opts *o);

/* Opens the store: reads or creates the store ident (AllocID through PD), bootstraps the
 * cluster through PD when nobody has (IsBootstrapped, AllocID, Bootstrap with one region
 * covering every key, epoch (1, 1), one peer on this store) or joins it, and loads every
 * region replica persisted in the engines (RegionLocalState, RaftApplyState,
 * RaftLocalState). No thread runs yet. Errors: -EINVAL (missing engines or snap_dir),
 * TKV_ECORRUPT (persisted state that does not decode or contradicts itself), TKV_ECONFIG
 * (the engines belong to another cluster), PD and engine errors; @errmsg says which. */
TKV_MUST_USE int rstore_open(const rstore_opts *o, rstore **out, char errmsg[TKV_ERRMSG_LEN]);

/* Registers /tikvpb.Tikv/Raft, /tikvpb.Tikv/BatchRaft and /tikvpb.Tikv/Snapshot on @rs (not
 * started yet): raft messages from other stores are routed to the peers here, snapshots are
 * received into snap_dir. Streams that open before rstore_start are refused with
 * UNAVAILABLE (Raft retries). Each stream must name its sender (RSTORE_MD_CLUSTER_ID,
 * RSTORE_MD_STORE_ID; the stores' own streams do): a stream without them, for another
 * cluster, from this store's own id, from a store PD does not know or a tombstone, or, with
 * mutual TLS, whose certificate name is not the one PD recorded for that store is refused
 * (UNAUTHENTICATED or PERMISSION_DENIED, told to on_refused); a store PD has not been asked
 * about yet is looked up in the background and its stream refused with UNAVAILABLE
 * meanwhile. A message whose from_peer is on another store than the stream's ends the
 * stream (PERMISSION_DENIED) and is dropped, as is everything after it.
 * Errors: as rpc_server_add_method. Thread: the thread building @rs. */
TKV_MUST_USE int rstore_register_service(rstore *s, rpc_server *rs);

/* Starts the threads and, with PD, registers the store (PutStore with @addr, the address
 * other stores and clients dial, and @status_addr, may be NULL), then sends the first store
 * heartbeat. Errors: PD errors (TKV_ESTALE: PD says this store is a tombstone), -errno
 * (threads); @errmsg says which. */
TKV_MUST_USE int rstore_start(rstore *s, const char *addr, const char *status_addr,
                              char errmsg[TKV_ERRMSG_LEN]);

/* Stops the store: new requests are refused (TKV_ECLOSED), pending proposals and reads are
 * answered with TKV_ECLOSED unless their entries were already applied, and every thread is
 * joined. Idempotent. Thread: not a store thread or a callback. */
void rstore_stop(rstore *s);

/* Stops the store if needed and frees it. Every stor_kv made by rstore_kv_new must be
 * freed first. NULL is a no-op. */
void rstore_free(rstore *s);

/* Returns the store id. */
uint64_t rstore_store_id(const rstore *s);
/* Returns the cluster id (0 standalone). */
uint64_t rstore_cluster_id(const rstore *s);

/* Makes the kv seam over this store (storage writes and reads through Raft) into *@out;
 * free it with stor_kv_free before rstore_free. Errors: -ENOMEM. */
TKV_MUST_USE int rstore_kv_new(rstore *s, stor_kv **out);

/* ---- administration ------------------------------------------------------------------- */

/* Outcome of a split: the regions that now cover the split range in key order (borrowed for
 * the call), or a region error (owned by the callee), or a failure rc < 0. Same shape as the
 * server's srv_split_cb. */
typedef void (*rstore_split_cb)(void *ud, int rc, Errorpb__Error *rerr,
                                const Metapb__Region *const *regions, size_t n);

/* Splits the region named by @ctx at @keys[0..@n) (sorted storage keys: raw keys for raw
 * regions, memcomparable-encoded user keys for transactional ones; @is_raw_kv only selects
 * how keys are validated) through AskBatchSplit and a BatchSplit admin command, the path PD's
 * split operators take. @cb runs exactly once after the split was applied here (or failed).
 * Returns 0 when accepted, or -EINVAL / -ENOMEM / TKV_ECLOSED (then @cb never runs). The
 * signature matches the server's split hook (srv_admin_hooks.split_region) with @impl the
 * store. */
TKV_MUST_USE int rstore_split_region(void *impl, const stor_ctx *ctx, const tkv_slice *keys,
                                     size_t n, bool is_raw_kv, rstore_split_cb cb, void *ud);

/* What rstore_region_info reports about one local replica. */
typedef struct rstore_region_info {
    bool found;
    uint64_t region_id;
    uint64_t peer_id;
    uint64_t leader_id; /* peer id of the leader this replica knows, 0 when none */
    bool is_leader;     /* leader with a valid lease */
    bool initialized;   /* has a key range and members (not waiting for a snapshot) */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t first_index; /* first raft log index present (truncated + 1) */
    uint64_t last_index;
    uint64_t conf_ver;
    uint64_t version;
    size_t n_peers;
    uint64_t approximate_size;
} rstore_region_info;

/* Asks the poller about region @region_id and waits at most @timeout_ms for the answer
 * (for tests, tools and the status page). Errors: -ETIMEDOUT, TKV_ECLOSED, -ENOMEM. */
TKV_MUST_USE int rstore_region_info_get(rstore *s, uint64_t region_id, int64_t timeout_ms,
                                        rstore_region_info *info);

/* Counts in a store-wide summary. */
typedef struct rstore_stats {
    size_t regions;
    size_t leaders;
    size_t applying_snapshots;
    uint64_t snapshots_sent;
    uint64_t snapshots_received;
    uint64_t snapshots_applied;
    uint64_t log_compactions;
    uint64_t splits;
    uint64_t disk_full_refused; /* writes answered DiskFull */
    uint64_t range_compactions; /* kv compactions after an applied DeleteRange */
} rstore_stats;

/* Fills @st with the store's counters (updated by the poller every loop). */
void rstore_stats_get(rstore *s, rstore_stats *st);

/* Copies the ids of up to @cap regions this store has a replica of into @ids and returns
 * how many it has (may exceed @cap). */
size_t rstore_region_ids(rstore *s, uint64_t *ids, size_t cap);

/* Asks the leader of @region_id to hand leadership to its peer on store @to_store_id (as a
 * PD TransferLeader operator does). Returns 0 when the request was queued. Errors:
 * TKV_ENOTFOUND (no such region here), TKV_ECLOSED, -ENOMEM. */
TKV_MUST_USE int rstore_transfer_leader(rstore *s, uint64_t region_id, uint64_t to_store_id);

/* Asks the leader of @region_id to propose a membership change (as a PD ChangePeer operator
 * does): add @peer_id on @store_id as a voter (@learner false) or learner, or remove it
 * (@remove). Returns 0 when queued. Errors: as rstore_transfer_leader. */
TKV_MUST_USE int rstore_change_peer(rstore *s, uint64_t region_id, bool remove, bool learner,
                                    uint64_t peer_id, uint64_t store_id);

/* Asks the leader of @region_id to compact its raft log now up to what every peer has (or,
 * with @force, up to what it applied), as the raft-log-gc tick does. For tests and tools.
 * Errors: as rstore_transfer_leader. */
TKV_MUST_USE int rstore_compact_log(rstore *s, uint64_t region_id, bool force);

#endif /* TKV_RAFTSTORE_H */
