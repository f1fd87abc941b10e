/*
 * pd_int.h: what the parts of pd-server share (not API; tests include it to drive the parts
 * one by one).
 *
 * Layering inside the module, lowest first:
 *   pd_map (u64 -> pointer), pd_storage (PD's RocksDB), pd_id (ID allocator), pd_tso,
 *   pd_region + pd_region_tree, pd_store, pd_config,
 *   pd_operator (steps, operators, the operator controller), pd_checker (replica repair),
 *   pd_scheduler (balance-leader, balance-region, scatter),
 *   pd_cluster (THE cluster state: stores, regions, operators, bootstrap, heartbeats, splits;
 *   one mutex; every change of cluster state goes through it, so a replicated PD can later
 *   put a log under it), pd_coordinator (the background thread: patrol, schedulers,
 *   timeouts, SplitRegions waiters),
 *   pd_hbstream (region heartbeat streams per store), pd_grpc + pd_grpc_stream (pdpb.PD),
 *   pd_etcd (etcdserverpb.KV subset), pd_http + pd_json (HTTP API), pd_server (assembly);
 *   pd_main.c is the executable.
 *
 * Lock order: pd_cluster.mu, then pd_hbstreams.mu, then rpc internals. pd_tso and pd_id have
 * their own mutexes and take no other lock.
 */
#ifndef TKV_PD_INT_H
#define TKV_PD_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "base/base.h"
#include "base/codec.h"
#include "engine/engine.h"
#include "http/http.h"
#include "metapb.pb-c.h"
#include "pd/pd.h"
#include "pdpb.pb-c.h"
#include "rpc/rpc.h"

/* ---- small helpers ------------------------------------------------------------------ */

/* Returns a slice over a protobuf-c bytes field. */
static inline tkv_slice pd__bytes(ProtobufCBinaryData b)
{
    return tkv_slice_of(b.data, b.len);
}

/* Sets *@ts to @ms milliseconds from now on CLOCK_MONOTONIC (for condition variables created
 * with that clock). */
static inline void pd__deadline(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Deep-copies @m (pack + unpack with the project allocator) into *@out (rpc_msg_free).
 * Errors: -ENOMEM. */
TKV_MUST_USE int pd__msg_clone(const ProtobufCMessage *m, ProtobufCMessage **out);

/* ---- pd_map: non-zero u64 -> pointer ------------------------------------------------ */

typedef struct pd_map {
    uint64_t *keys; /* 0 marks a free slot */
    void **vals;
    size_t cap; /* a power of two, or 0 */
    size_t len;
} pd_map;

void pd__map_init(pd_map *m);
/* Frees the table (not the values). */
void pd__map_deinit(pd_map *m);
/* Returns the value for @key, or NULL. */
void *pd__map_get(const pd_map *m, uint64_t key);
/* Sets @key to @val (replacing). Errors: -EINVAL (key 0), -ENOMEM (map unchanged). */
TKV_MUST_USE int pd__map_put(pd_map *m, uint64_t key, void *val);
/* Removes @key and returns its value (NULL when absent). */
void *pd__map_del(pd_map *m, uint64_t key);
/* Iterates: start with *@pos = 0; returns false at the end. Order is the table's. The map
 * must not change during the walk. */
bool pd__map_next(const pd_map *m, size_t *pos, uint64_t *key, void **val);

/* ---- pd_storage: PD's own RocksDB ---------------------------------------------------- */

typedef struct pd_storage pd_storage;

#define PD_KEY_CLUSTER_ID    "m/cluster_id"
#define PD_KEY_MEMBER_ID     "m/member_id"
#define PD_KEY_CLUSTER       "m/cluster"
#define PD_KEY_ALLOC_ID      "m/alloc_id"
#define PD_KEY_TSO           "m/tso"
#define PD_KEY_GC_SAFE_POINT "m/gc_safe_point"
#define PD_KEY_CONFIG        "m/config"
#define PD_KEY_ETCD_REV      "m/etcd_revision"
#define PD_PREFIX_STORE      's'
#define PD_PREFIX_REGION     'r'
#define PD_PREFIX_ETCD       'e'
#define PD_KEY_ID_LEN        10

/* Opens PD's storage in @dir/db (creating @dir), or an in-memory engine when @dir is NULL.
 * Errors: -errno (mkdir), TKV_EENGINE, TKV_ECORRUPT, -ENOMEM; the cause in @errmsg. */
TKV_MUST_USE int pd__storage_open(const char *dir, pd_storage **out, char errmsg[TKV_ERRMSG_LEN]);
/* pd__storage_open with an opaque rocksdb_env_t * (the encrypting environment of
 * [security.encryption], issue 9) for the on-disk store; NULL: RocksDB's default. */
TKV_MUST_USE int pd__storage_open_env(const char *dir, void *rocksdb_env, pd_storage **out,
                                      char errmsg[TKV_ERRMSG_LEN]);
/* Closes @st; NULL is a no-op. */
void pd__storage_close(pd_storage *st);
/* Returns the engine's message for the calling thread's last failure. */
const char *pd__storage_errmsg(const pd_storage *st);
/* Point read. Errors: as eng_get. */
TKV_MUST_USE int pd__storage_get(pd_storage *st, tkv_slice key, tkv_buf *val, bool *found);
/* Reads an 8-byte big-endian value. Errors: as eng_get, TKV_ECORRUPT (not 8 bytes). */
TKV_MUST_USE int pd__storage_get_u64(pd_storage *st, const char *key, uint64_t *v, bool *found);
/* Single-key writes, each its own batch; @sync fsyncs the WAL. Errors: as eng_write. */
TKV_MUST_USE int pd__storage_put(pd_storage *st, tkv_slice key, tkv_slice val, bool sync);
TKV_MUST_USE int pd__storage_put_u64(pd_storage *st, const char *key, uint64_t v, bool sync);
TKV_MUST_USE int pd__storage_put_msg(pd_storage *st, tkv_slice key, const ProtobufCMessage *m,
                                     bool sync);
TKV_MUST_USE int pd__storage_delete(pd_storage *st, tkv_slice key, bool sync);
/* Calls @fn for every key in [@start, @end) in order; a non-zero return stops the scan and
 * is returned. */
typedef int (*pd_scan_fn)(void *ud, tkv_slice key, tkv_slice val);
TKV_MUST_USE int pd__storage_scan(pd_storage *st, tkv_slice start, tkv_slice end, pd_scan_fn fn,
                                  void *ud);
/* Batches for multi-key atomic writes. */
TKV_MUST_USE int pd__storage_batch_new(pd_storage *st, eng_batch **out);
TKV_MUST_USE int pd__storage_write(pd_storage *st, eng_batch *b, bool sync);
/* Builds the key "<prefix>/<u64 big-endian id>" in @out and returns a slice over it. */
tkv_slice pd__key_id(uint8_t out[PD_KEY_ID_LEN], char prefix, uint64_t id);

/* ---- pd_id: ID allocator ------------------------------------------------------------ */

#define PD_ID_STEP 1000

typedef struct pd_id_alloc {
    pthread_mutex_t mu;
    pd_storage *st;
    uint64_t base; /* last id handed out */
    uint64_t end;  /* persisted end of the current batch */
    uint64_t step;
} pd_id_alloc;

/* Loads the persisted batch end; ids continue after it. @step 0 means PD_ID_STEP. */
TKV_MUST_USE int pd__id_init(pd_id_alloc *a, pd_storage *st, uint64_t step);
void pd__id_deinit(pd_id_alloc *a);
/* Allocates one id (> 0, never reused). Errors: storage errors (nothing handed out). */
TKV_MUST_USE int pd__id_alloc(pd_id_alloc *a, uint64_t *id);
/* Allocates @n consecutive ids into @ids. */
TKV_MUST_USE int pd__id_alloc_n(pd_id_alloc *a, size_t n, uint64_t *ids);
/* Returns the last id handed out. */
uint64_t pd__id_current(pd_id_alloc *a);

/* ---- pd_tso: timestamp oracle ------------------------------------------------------- */

#define PD_TSO_LOGICAL_BITS 18
#define PD_TSO_MAX_LOGICAL  (1 << PD_TSO_LOGICAL_BITS)

typedef struct pd_tso pd_tso;

typedef struct pd_tso_opts {
    uint64_t window_ms;             /* how far ahead the upper bound is persisted */
    uint64_t (*clock_ms)(void *ud); /* wall clock in ms; NULL: tkv_clock_real_ms */
    void *clock_ud;
    bool start_thread; /* run the updater thread (tests may drive pd__tso_tick) */
} pd_tso_opts;

void pd__tso_opts_init(pd_tso_opts *o);
/* Loads the persisted bound, starts above it and persists a new bound (fsync).
 * Errors: storage errors, -ENOMEM, -errno (thread). */
TKV_MUST_USE int pd__tso_open(pd_storage *st, const pd_tso_opts *o, pd_tso **out);
/* Stops the updater and frees @t; NULL is a no-op. */
void pd__tso_close(pd_tso *t);
/* Hands out @count timestamps and returns the largest: (*@physical, *@logical); the batch is
 * (physical, logical - count + 1 .. logical). Thread-safe.
 * Errors: -EINVAL (count 0 or >= 2^18), TKV_EUNAVAILABLE (the bound was not raised within
 * 3 s), storage errors (no updater thread and the bound could not be saved). */
TKV_MUST_USE int pd__tso_get(pd_tso *t, uint32_t count, int64_t *physical, int64_t *logical);
/* Runs one updater step (persist the bound ahead when needed). */
TKV_MUST_USE int pd__tso_tick(pd_tso *t);
/* Returns the in-memory upper bound (physical ms). */
uint64_t pd__tso_limit(pd_tso *t);
/* Returns physical << 18 | logical. */
uint64_t pd__tso_compose(int64_t physical, int64_t logical);

/* ---- pd_region and pd_region_tree -------------------------------------------------- */

typedef struct pd_rt_node pd_rt_node;

/* One region. Immutable after creation except for tree linkage. */
typedef struct pd_region {
    Pdpb__Region *pb;          /* owned: region (id != 0, epoch present), leader, down, pending */
    uint64_t approximate_size; /* bytes, as the leader reported */
    uint64_t approximate_keys;
    uint64_t bytes_written, bytes_read, keys_written, keys_read;
    uint64_t term;
    uint64_t heartbeat_ms; /* cluster clock at the last heartbeat; 0: loaded from storage */
    pd_rt_node *node;      /* the tree's node, NULL when not in a tree */
} pd_region;

/* Builds a region from parts (deep-copied). A missing epoch becomes (0, 0).
 * Errors: -EINVAL (no meta, id 0), -ENOMEM. */
TKV_MUST_USE int pd__region_new(const Metapb__Region *meta, const Metapb__Peer *leader,
                                Pdpb__PeerStats *const *down, size_t ndown,
                                Metapb__Peer *const *pending, size_t npending, pd_region **out);
/* Decodes a persisted pdpb.Region. Errors: TKV_ECORRUPT (undecodable, no id or epoch). */
TKV_MUST_USE int pd__region_decode(tkv_slice bytes, pd_region **out);
/* Deep copy (statistics included). */
TKV_MUST_USE int pd__region_clone(const pd_region *src, pd_region **out);
/* Frees a region that is not in a tree; NULL is a no-op. */
void pd__region_free(pd_region *r);

static inline const Metapb__Region *pd__region_meta(const pd_region *r)
{
    return r->pb->region;
}
static inline uint64_t pd__region_id(const pd_region *r)
{
    return r->pb->region->id;
}
static inline tkv_slice pd__region_start(const pd_region *r)
{
    return pd__bytes(r->pb->region->start_key);
}
static inline tkv_slice pd__region_end(const pd_region *r)
{
    return pd__bytes(r->pb->region->end_key);
}
static inline uint64_t pd__region_version(const pd_region *r)
{
    return r->pb->region->region_epoch->version;
}
static inline uint64_t pd__region_conf_ver(const pd_region *r)
{
    return r->pb->region->region_epoch->conf_ver;
}
static inline bool pd__peer_is_learner(const Metapb__Peer *p)
{
    return p->role == METAPB__PEER_ROLE__Learner;
}
/* Returns the peer of @r on @store_id, or NULL. */
Metapb__Peer *pd__region_store_peer(const pd_region *r, uint64_t store_id);
/* Returns the peer of @r with id @peer_id, or NULL. */
Metapb__Peer *pd__region_peer(const pd_region *r, uint64_t peer_id);
/* Returns the store of the leader, 0 when the leader is unknown. */
uint64_t pd__region_leader_store(const pd_region *r);
bool pd__region_is_pending(const pd_region *r, uint64_t peer_id);
bool pd__region_is_down(const pd_region *r, uint64_t peer_id);
size_t pd__region_voter_count(const pd_region *r);
/* Returns the approximate size in MiB as PD counts it (>= 1 when non-empty). */
uint64_t pd__region_size_mib(const pd_region *r);

#define PD_RT_MAX_LEVEL 24

typedef struct pd_region_tree {
    pd_rt_node *head;
    int level;
    size_t count;
    tkv_rng rng;
    pd_map by_id; /* id -> pd_region * */
} pd_region_tree;

TKV_MUST_USE int pd__rt_init(pd_region_tree *t);
/* Frees every region still in the tree. */
void pd__rt_deinit(pd_region_tree *t);
pd_region *pd__rt_get(const pd_region_tree *t, uint64_t id);
/* Returns the region containing @key, or NULL (a hole). */
pd_region *pd__rt_find(const pd_region_tree *t, tkv_slice key);
/* Returns the region containing @key, else the first region starting after @key, or NULL. */
pd_region *pd__rt_seek(const pd_region_tree *t, tkv_slice key);
/* Returns the region before the one containing @key when the two are adjacent (PD's
 * GetPrevRegion), else NULL. */
pd_region *pd__rt_prev_adjacent(const pd_region_tree *t, tkv_slice key);
pd_region *pd__rt_first(const pd_region_tree *t);
pd_region *pd__rt_next(const pd_region_tree *t, const pd_region *r);
pd_region *pd__rt_prev(const pd_region_tree *t, const pd_region *r);
size_t pd__rt_count(const pd_region_tree *t);
/* Stores in *@out (tkv_free it) the regions overlapping [@start, @end) in key order (empty
 * @end: unbounded). Errors: -ENOMEM. */
TKV_MUST_USE int pd__rt_overlaps(const pd_region_tree *t, tkv_slice start, tkv_slice end,
                                 pd_region ***out, size_t *n);
/* Returns TKV_ESTALE when @incoming (with raft @term, 0 unknown) must not replace what the
 * tree holds: its epoch is older than the region with its id (version or conf_ver), its term
 * is behind, or its version is older than a region it overlaps. *@origin (may be NULL)
 * receives the region with the same id. Errors: -ENOMEM. */
TKV_MUST_USE int pd__rt_check(const pd_region_tree *t, const Metapb__Region *incoming,
                              uint64_t term, pd_region **origin);
/* Inserts @r (the tree takes ownership), unlinking the region with its id and every region
 * overlapping it; those are returned in *@removed (an array to tkv_free; the regions are
 * the caller's to free). Errors: -EINVAL (an empty range: start >= a non-empty end),
 * -ENOMEM (the tree is unchanged, @r still the caller's). */
TKV_MUST_USE int pd__rt_put(pd_region_tree *t, pd_region *r, pd_region ***removed,
                            size_t *nremoved);
/* Unlinks @r (it becomes the caller's). */
void pd__rt_remove(pd_region_tree *t, pd_region *r);

/* ---- configuration (pd_config.c) --------------------------------------------------- */

/* Fills @c with PD's defaults. */
void pd__sched_cfg_default(pd_sched_cfg *c);
/* Applies one setting "key" = @json_value (a JSON scalar as text: 64, "30m", "zone,host",
 * true). @key is "schedule.x", "replication.x" or a bare "x" found in either section.
 * Errors: TKV_ENOTFOUND (unknown key), -EINVAL (bad value); @errmsg says why. @c unchanged
 * on error. */
TKV_MUST_USE int pd__sched_cfg_set(pd_sched_cfg *c, const char *key, const char *value,
                                   char errmsg[TKV_ERRMSG_LEN]);
/* Returns the settings as JSON with PD's key names and formats (durations as Go prints
 * them): @which 0 gives {"schedule": {...}, "replication": {...}}, 1 the schedule object, 2
 * the replication object. NULL on -ENOMEM. */
json_t *pd__sched_cfg_json(const pd_sched_cfg *c, int which);
/* Applies every member of the JSON object @obj: keys as for pd__sched_cfg_set, or section
 * objects {"schedule": {...}} when @section is NULL; values may be strings, numbers or lists
 * of strings. All or nothing. Errors: TKV_ENOTFOUND, -EINVAL; @errmsg says why. */
TKV_MUST_USE int pd__sched_cfg_apply_json(pd_sched_cfg *c, const json_t *obj, const char *section,
                                          char errmsg[TKV_ERRMSG_LEN]);
/* Writes @ms the way Go prints a time.Duration ("30m0s", "10ms", "1h0m0s"). */
void pd__fmt_go_duration(uint64_t ms, char *out, size_t cap);

/* ---- stores ------------------------------------------------------------------------ */

typedef enum pd_store_status {
    PD_STORE_UP = 0,
    PD_STORE_DISCONNECTED, /* Up, no heartbeat for store_disconnect_ms */
    PD_STORE_DOWN,         /* Up, no heartbeat for max-store-down-time */
    PD_STORE_OFFLINE,
    PD_STORE_TOMBSTONE,
} pd_store_status;

typedef struct pd_store {
    Metapb__Store *meta;        /* owned */
    Pdpb__StoreStats *stats;    /* owned, last heartbeat's stats, NULL before the first */
    uint64_t last_heartbeat_ms; /* cluster clock; at load: PD's start (a grace period) */
    uint64_t heartbeat_real_ms; /* wall clock of the last heartbeat, 0 before the first */
    /* Counts over the region tree, maintained as regions change. */
    uint64_t region_count, leader_count, learner_count, pending_count;
    uint64_t region_size_mib, leader_size_mib;
} pd_store;

/* Returns the status of @s at cluster time @now_ms under @cfg. */
pd_store_status pd__store_status(const pd_store *s, uint64_t now_ms, const pd_sched_cfg *cfg);
/* Returns PD's state name: "Up", "Disconnected", "Down", "Offline", "Tombstone". */
const char *pd__store_status_name(pd_store_status st);
/* Returns the value of label @key of @s, or NULL. */
const char *pd__store_label(const pd_store *s, const char *key);
/* Frees a store; NULL is a no-op. */
void pd__store_free(pd_store *s);

/* ---- operators --------------------------------------------------------------------- */

typedef enum pd_step_type {
    PD_STEP_ADD_LEARNER = 1, /* ChangePeer AddLearnerNode; done when the learner has caught up */
    PD_STEP_PROMOTE_LEARNER, /* ChangePeer AddNode on the learner; done when it is a voter */
    PD_STEP_REMOVE_PEER,     /* ChangePeer RemoveNode; done when the store has no peer */
    PD_STEP_TRANSFER_LEADER, /* TransferLeader; done when the leader is on the store */
    PD_STEP_SPLIT,           /* SplitRegion; done when the region's range changed */
} pd_step_type;

typedef struct pd_step {
    pd_step_type type;
    uint64_t store_id; /* target (add, promote, transfer) or source (remove) */
    uint64_t peer_id;  /* add, promote */
} pd_step;

/* Operator kinds (bit flags), for limits and reporting. */
enum {
    PD_OPK_LEADER = 1 << 0,  /* moves leadership */
    PD_OPK_REGION = 1 << 1,  /* moves peers */
    PD_OPK_REPLICA = 1 << 2, /* created by the replica checker */
    PD_OPK_SPLIT = 1 << 3,
    PD_OPK_ADMIN = 1 << 4, /* asked for by a person or client (HTTP, SplitRegions, scatter) */
    PD_OPK_BALANCE = 1 << 5,
};

#define PD_OP_MAX_STEPS 16

typedef struct pd_operator {
    uint64_t region_id;
    uint64_t version, conf_ver; /* the region's epoch when created */
    tkv_buf start_key, end_key; /* the region's range when created */
    char desc[32];              /* "make-up-replica", "balance-region", "scatter-region"... */
    unsigned kind;
    pd_step steps[PD_OP_MAX_STEPS];
    size_t nsteps;
    size_t cur; /* first unfinished step */
    Pdpb__CheckPolicy split_policy;
    tkv_buf *split_keys;
    size_t nsplit_keys;
    uint64_t create_ms; /* cluster clock */
    uint64_t timeout_ms;
} pd_operator;

/* Returns a new operator for region @r with no steps. Errors: -ENOMEM. */
TKV_MUST_USE int pd__op_new(const pd_region *r, const char *desc, unsigned kind, pd_operator **out);
void pd__op_free(pd_operator *op);
/* Appends a step. Errors: -E2BIG (too many steps). */
TKV_MUST_USE int pd__op_add_step(pd_operator *op, pd_step_type type, uint64_t store_id,
                                 uint64_t peer_id);
/* Makes @op a split with @policy and @n keys (copied). Errors: -ENOMEM. */
TKV_MUST_USE int pd__op_set_split(pd_operator *op, Pdpb__CheckPolicy policy, const tkv_slice *keys,
                                  size_t n);
/* Returns whether step @s is done in region @r. */
bool pd__step_done(const pd_operator *op, const pd_step *s, const pd_region *r);
/* Advances op->cur past the steps @r shows done; returns true when every step is done. */
bool pd__op_advance(pd_operator *op, const pd_region *r);
/* Returns how many conf changes the finished steps (and the current one, if @r shows it
 * partly applied) account for; a larger conf_ver jump means someone else changed the
 * region and the operator is stale. */
uint64_t pd__op_conf_changes(const pd_operator *op, const pd_region *r);
/* Returns the step's name for logs and JSON ("add learner peer 5 on store 3"). */
void pd__step_describe(const pd_step *s, char *out, size_t cap);
/* Writes PD's one-line operator description into @out. */
void pd__op_describe(const pd_operator *op, char *out, size_t cap);
/* Returns "leader", "region", "replica,region", ... for @kind. */
void pd__op_kind_name(unsigned kind, char *out, size_t cap);

/* A finished operator's outcome, kept for GetOperator. */
typedef struct pd_op_record {
    Pdpb__OperatorStatus status;
    char desc[32];
    unsigned kind;
    uint64_t finish_ms;
} pd_op_record;

/* ---- the cluster ------------------------------------------------------------------- */

typedef struct pd_cluster pd_cluster;

/* Receives operator commands for the region leader's store (installed by the gRPC layer;
 * tests install a recorder). Called with the cluster mutex held: it must only queue. */
typedef void (*pd_hb_send_fn)(void *ud, uint64_t store_id, const Pdpb__RegionHeartbeatResponse *m);

/* Completion of a SplitRegions request: @pct finished percentage, ids of the regions that
 * start at the split keys. Called once, with the cluster mutex held (it must only queue). */
typedef void (*pd_split_done_fn)(void *ud, uint64_t pct, const uint64_t *ids, size_t n);

typedef struct pd_split_waiter pd_split_waiter;

/* Scatter counters for one group (ScatterRegion's `group`). */
typedef struct pd_scatter_group {
    char name[64];
    pd_map peers;   /* store id -> (void *)(uintptr_t) count */
    pd_map leaders; /* store id -> count */
    struct pd_scatter_group *next;
} pd_scatter_group;

struct pd_cluster {
    pthread_mutex_t mu;
    pd_storage *st;   /* borrowed */
    pd_id_alloc *ids; /* borrowed */
    uint64_t cluster_id;
    uint64_t (*clock_ms)(void *ud); /* monotonic ms; NULL: tkv_clock_mono_ms */
    void *clock_ud;
    uint64_t start_ms;

    bool bootstrapped;
    Metapb__Cluster *meta; /* owned once bootstrapped */
    pd_sched_cfg cfg;

    pd_store **stores; /* sorted by id */
    size_t nstores, cap_stores;
    pd_region_tree regions;

    pd_map ops;     /* region id -> pd_operator * */
    pd_map records; /* region id -> pd_op_record * */
    pd_hb_send_fn hb_send;
    void *hb_ud;

    pd_split_waiter *waiters;
    pd_scatter_group *groups;
    uint64_t gc_safe_point;
    tkv_buf patrol_key; /* the replica patrol continues at the region containing it */
    uint64_t last_schedule_ms;
    uint64_t last_gauges_ms;
};

/* Creates the cluster state over @st (regions, stores and meta are loaded from it) with
 * scheduling settings @cfg (copied). @clock_ms may be NULL (monotonic clock).
 * Errors: storage errors, TKV_ECORRUPT (a record does not decode), -ENOMEM. */
TKV_MUST_USE int pd__cluster_new(pd_storage *st, pd_id_alloc *ids, uint64_t cluster_id,
                                 const pd_sched_cfg *cfg, uint64_t (*clock_ms)(void *),
                                 void *clock_ud, pd_cluster **out);
void pd__cluster_free(pd_cluster *c);
/* Installs the operator command sink (before any heartbeat). */
void pd__cluster_set_hb_sink(pd_cluster *c, pd_hb_send_fn fn, void *ud);
static inline void pd__cluster_lock(pd_cluster *c)
{
    pthread_mutex_lock(&c->mu);
}
static inline void pd__cluster_unlock(pd_cluster *c)
{
    pthread_mutex_unlock(&c->mu);
}
/* Returns the cluster clock (ms). */
uint64_t pd__cluster_now(const pd_cluster *c);

/* Results of cluster operations that the gRPC layer maps to pdpb errors. */
typedef struct pd_result {
    Pdpb__ErrorType type; /* PDPB__ERROR_TYPE__OK on success */
    char msg[TKV_ERRMSG_LEN];
    bool identity_refused; /* (the _as operations) the caller's certificate name is not the
                            * store's: an audit matter, not only an error */
} pd_result;

void pd__result_set(pd_result *res, Pdpb__ErrorType type, const char *fmt, ...) TKV_PRINTF(3, 4);

/* The operations below take the cluster mutex themselves ("_locked" ones expect it held).
 * They return 0 with res->type telling the outcome the client sees, or a negative error
 * for internal failures (storage, memory), which the caller reports as UNKNOWN. */
TKV_MUST_USE int pd__cluster_bootstrap(pd_cluster *c, const Metapb__Store *store,
                                       const Metapb__Region *region, pd_result *res);
TKV_MUST_USE int pd__cluster_put_store(pd_cluster *c, const Metapb__Store *store, pd_result *res);
TKV_MUST_USE int pd__cluster_store_heartbeat(pd_cluster *c, const Pdpb__StoreStats *stats,
                                             pd_result *res);

/* Store label under which PD records the certificate name a store registered with over
 * mutual TLS (raftstore's RSTORE_CERT_NAME_LABEL: stores check raft streams against it). */
#define PD_CERT_NAME_LABEL "tikv-c.cert-name"
/* As pd__cluster_put_store for a caller that presented certificate name @cert_name ("" or
 * NULL without mutual TLS): the store's PD_CERT_NAME_LABEL is set to @cert_name (or removed
 * without TLS) whatever the request said, and a store id already registered under another
 * certificate name is refused (res UNKNOWN, "registered with another certificate"). */
TKV_MUST_USE int pd__cluster_put_store_as(pd_cluster *c, const Metapb__Store *store,
                                          const char *cert_name, pd_result *res);
/* As pd__cluster_store_heartbeat for a caller with certificate name @cert_name: a store
 * registered under another certificate name is refused (res UNKNOWN). */
TKV_MUST_USE int pd__cluster_store_heartbeat_as(pd_cluster *c, const Pdpb__StoreStats *stats,
                                                const char *cert_name, pd_result *res);
/* Applies a region heartbeat and dispatches the region's operator (through the sink).
 * res->type UNKNOWN with a message for invalid or stale heartbeats. */
TKV_MUST_USE int pd__cluster_region_heartbeat(pd_cluster *c,
                                              const Pdpb__RegionHeartbeatRequest *req,
                                              pd_result *res);
TKV_MUST_USE int pd__cluster_ask_batch_split(pd_cluster *c, const Metapb__Region *region,
                                             uint32_t count, Pdpb__AskBatchSplitResponse *resp,
                                             pd_result *res);
/* Frees the ids allocated into @resp by pd__cluster_ask_batch_split. */
void pd__ask_batch_split_free(Pdpb__AskBatchSplitResponse *resp);
TKV_MUST_USE int pd__cluster_report_batch_split(pd_cluster *c, Metapb__Region *const *regions,
                                                size_t n, pd_result *res);
TKV_MUST_USE int pd__cluster_put_meta(pd_cluster *c, const Metapb__Cluster *meta, pd_result *res);
/* Sets the GC safe point to max(old, @sp); *@out gets the result. */
TKV_MUST_USE int pd__cluster_update_gc_safe_point(pd_cluster *c, uint64_t sp, uint64_t *out);
/* Changes a store's state (HTTP API: Up <-> Offline, Offline -> Tombstone when empty).
 * res: ENTRY_NOT_FOUND, INVALID_VALUE. */
TKV_MUST_USE int pd__cluster_set_store_state(pd_cluster *c, uint64_t store_id,
                                             Metapb__StoreState state, bool force, pd_result *res);
/* Applies settings (a JSON object, as pd__sched_cfg_apply_json) and persists them; all or
 * nothing. Errors: TKV_ENOTFOUND, -EINVAL (with @errmsg), storage errors. */
TKV_MUST_USE int pd__cluster_apply_config(pd_cluster *c, const json_t *obj, const char *section,
                                          char errmsg[TKV_ERRMSG_LEN]);
/* Copies the settings. */
void pd__cluster_get_config(pd_cluster *c, pd_sched_cfg *out);

/* Lookups, with the mutex held by the caller. */
pd_store *pd__cluster_store_locked(const pd_cluster *c, uint64_t id);
/* Returns the index of store @id in c->stores, or -1. */
ssize_t pd__cluster_store_index_locked(const pd_cluster *c, uint64_t id);

/* Operator controller (pd_operator.c), mutex held. */
/* Adds @op (the cluster takes it): fails with TKV_EEXIST when the region has an operator
 * and @op is not allowed to replace it (admin operators replace non-admin ones), and with
 * TKV_ENOTFOUND when the region is unknown. Sends the first step at once. */
TKV_MUST_USE int pd__opc_add_locked(pd_cluster *c, pd_operator *op);
/* Checks the region's operator against @r and sends the current step (after a heartbeat). */
void pd__opc_dispatch_locked(pd_cluster *c, const pd_region *r);
/* Ends operators that timed out or whose region vanished. */
void pd__opc_check_timeouts_locked(pd_cluster *c);
/* Removes the region's operator with @status (CANCEL, TIMEOUT, REPLACE, SUCCESS). */
void pd__opc_finish_locked(pd_cluster *c, pd_operator *op, Pdpb__OperatorStatus status,
                           const char *reason);
/* Returns the number of running operators whose kind has all bits of @kind. */
size_t pd__opc_count_locked(const pd_cluster *c, unsigned kind);
/* Returns how many running operators still have to add a peer on @store_id. */
size_t pd__opc_store_adds_locked(const pd_cluster *c, uint64_t store_id);
/* Effect of the running operators on per-store counts, indexed like c->stores. */
typedef struct pd_influence {
    int64_t *regions;
    int64_t *leaders;
} pd_influence;
TKV_MUST_USE int pd__opc_influence_locked(const pd_cluster *c, pd_influence *inf);
void pd__influence_free(pd_influence *inf);

/* Replica checker (pd_checker.c), mutex held: an operator that repairs @r, or NULL in *@out
 * when none is needed or possible. Errors: -ENOMEM, id allocation errors. */
TKV_MUST_USE int pd__check_replica_locked(pd_cluster *c, const pd_region *r, pd_operator **out);

/* Store filters and choices shared by the checker and the schedulers, mutex held. */
/* Returns whether @s can receive a new peer now. */
bool pd__store_can_take_peer_locked(const pd_cluster *c, const pd_store *s);
/* Picks the best store for a new peer of @r (not on @exclude[0..n) or stores @r uses):
 * most isolated by location labels, then fewest regions (with influence), then lowest id.
 * Returns NULL when none qualifies. */
pd_store *pd__pick_target_store_locked(const pd_cluster *c, const pd_region *r,
                                       const uint64_t *exclude, size_t nexclude,
                                       const pd_influence *inf);
/* Builds an operator moving @r's peers from the stores in @from[0..n) to @to[0..n) (add
 * learner, promote, then leader transfer away from removed stores, then removals), with
 * leadership ending on @leader_store when non-zero. */
TKV_MUST_USE int pd__build_move_locked(pd_cluster *c, const pd_region *r, const uint64_t *from,
                                       const uint64_t *to, size_t n, uint64_t leader_store,
                                       const char *desc, unsigned kind, pd_operator **out);

/* Schedulers (pd_scheduler.c), mutex held: one operator or NULL per call. */
TKV_MUST_USE int pd__balance_leader_locked(pd_cluster *c, pd_operator **out);
TKV_MUST_USE int pd__balance_region_locked(pd_cluster *c, pd_operator **out);
/* Scatters @r within @group (NULL or "" for the default group). *@out NULL: already placed. */
TKV_MUST_USE int pd__scatter_locked(pd_cluster *c, const pd_region *r, const char *group,
                                    pd_operator **out);

/* SplitRegions (pd_coordinator.c): creates split operators for the regions containing
 * @keys, then calls @done once every key starts a region or @timeout_ms passed. @ud must be
 * unique among waiting requests (the gRPC call). Errors: -ENOMEM (then @done is never
 * called). */
TKV_MUST_USE int pd__cluster_split_regions(pd_cluster *c, const tkv_slice *keys, size_t n,
                                           uint64_t timeout_ms, pd_split_done_fn done, void *ud,
                                           pd_split_waiter **handle);
/* SplitRegions: @handle is NULL when @done already ran (every key started a region). */
/* Drops the waiting SplitRegions registered with @ud (its done callback never runs);
 * returns false when none waits (it already completed). */
bool pd__cluster_split_cancel(pd_cluster *c, void *ud);
/* One coordinator round: operator timeouts, replica patrol, schedulers, Offline stores
 * that became empty, SplitRegions waiters, statistics. */
void pd__coordinator_tick(pd_cluster *c);
void pd__waiters_tick_locked(pd_cluster *c);
/* Starts / stops the thread that runs pd__coordinator_tick every patrol-region-interval. */
typedef struct pd_coordinator pd_coordinator;
TKV_MUST_USE int pd__coordinator_start(pd_cluster *c, pd_coordinator **out);
void pd__coordinator_stop(pd_coordinator *co);
void pd__waiters_free_locked(pd_cluster *c);

/* ---- region heartbeat streams (pd_hbstream.c) ------------------------------------------ */

struct rpc_call;
struct rpc_server;
struct http_server;
struct http_route;

/* One RegionHeartbeat stream from a store. */
typedef struct pd_hb_stream {
    struct rpc_call *call;
    uint64_t store_id; /* the store it is bound to, 0 before the first heartbeat */
    bool finished;
    struct pd_hb_stream *next;
} pd_hb_stream;

/* The streams, and which one each store's commands go to (the newest from that store). */
typedef struct pd_hbstreams {
    pthread_mutex_t mu;
    pd_hb_stream *list;
    pd_map by_store; /* store id -> pd_hb_stream * */
    uint64_t cluster_id;
    uint64_t dropped; /* commands dropped: no stream, or the stream is backed up */
} pd_hbstreams;

void pd__hb_init(pd_hbstreams *hb, uint64_t cluster_id);
/* Frees what is left; every stream must be closed. */
void pd__hb_deinit(pd_hbstreams *hb);
/* Registers a new stream for @call. Errors: -ENOMEM. */
TKV_MUST_USE int pd__hb_open(pd_hbstreams *hb, struct rpc_call *call, pd_hb_stream **out);
/* Makes @st the stream that carries commands for @store_id. */
void pd__hb_bind(pd_hbstreams *hb, pd_hb_stream *st, uint64_t store_id);
/* Queues @m on @st itself (answers to its own heartbeats). */
void pd__hb_send_on(pd_hbstreams *hb, pd_hb_stream *st, const Pdpb__RegionHeartbeatResponse *m);
/* The cluster's command sink: queues @m on the stream bound to @store_id. */
void pd__hb_send(void *hb, uint64_t store_id, const Pdpb__RegionHeartbeatResponse *m);
/* Unbinds @st, ends its call with @code/@msg and frees it. */
void pd__hb_close(pd_hbstreams *hb, pd_hb_stream *st, int code, const char *msg);

/* ---- the server ------------------------------------------------------------------------ */

typedef struct pd_method_binding pd_method_binding;

struct pd_server {
    pd_config cfg;
    char listen_addr[256];   /* host:port from the first client URL */
    char advertise_url[300]; /* http://host:port with the bound port */
    pd_storage *st;
    pd_id_alloc ids;
    bool ids_ready;
    pd_tso *tso;
    pd_cluster *cluster;
    pd_hbstreams hb;
    pd_coordinator *coord;
    struct rpc_server *rpc;
    struct http_server *http;
    pd_method_binding *bindings;
    size_t nbindings;
    uint64_t cluster_id;
    uint64_t member_id;
    uint64_t start_real_ms;
    struct tkv_series *tso_hist; /* pd_server_handle_tso_duration_seconds */
    struct tkv_series *hb_hist;  /* pd_scheduler_handle_region_heartbeat_duration_seconds */
    /* TLS branch (pd_security.c): TLS files, allow-lists, audit log and guard. */
    struct rpc_tls tls;
    const char *allowed_cn[PD_MAX_ALLOWED + 1]; /* NULL-terminated, into cfg */
    const char *allowed_san[PD_MAX_ALLOWED + 1];
    struct sec_wire *wire;
    pthread_mutex_t etcd_mu; /* serializes etcd writes and the revision */
    int64_t etcd_rev;
    bool started;
    bool stopped;
};

/* Registers the pdpb.PD methods (pd_grpc.c, pd_grpc_stream.c) and the etcd KV subset
 * (pd_etcd.c) on s->rpc. Errors: from rpc_server_add_method. */
TKV_MUST_USE int pd__grpc_register(pd_server *s);
TKV_MUST_USE int pd__grpc_register_streams(pd_server *s);
TKV_MUST_USE int pd__etcd_register(pd_server *s);
/* Reads / writes one etcd key's value from inside PD (pd_etcd.c; a write takes a new
 * revision as a Put does). Errors: storage errors, TKV_ECORRUPT, -ENOMEM. */
TKV_MUST_USE int pd__etcd_get_value(pd_server *s, tkv_slice key, tkv_buf *value, bool *found);
TKV_MUST_USE int pd__etcd_put_value(pd_server *s, tkv_slice key, tkv_slice value);
/* Loads the etcd revision (pd_etcd.c). */
TKV_MUST_USE int pd__etcd_load(pd_server *s);
/* Returns the HTTP API's route table (pd_http.c) and its length in *@n, for tests and fuzz
 * targets that call the handlers without a server; every handler takes the pd_server as ud.
 * Handlers of routes with query arguments need a real connection. */
const struct http_route *pd__http_routes(size_t *n);
/* pd_security.c: builds s->tls, the allow-lists and the audit log / guard (s->wire) from
 * the [security] settings. Errors: as sec_wire_new, with @errmsg. */
TKV_MUST_USE int pd__security_init(pd_server *s, char errmsg[TKV_ERRMSG_LEN]);
/* Closes the audit log (after the servers stopped). */
void pd__security_deinit(pd_server *s);
/* Applies TLS, allow-lists and the refusal hooks to the gRPC / HTTP server options. */
void pd__security_rpc(pd_server *s, struct rpc_server_opts *o);
void pd__security_http(pd_server *s, struct http_server_opts *o);
/* GET / POST /pd/api/v1/security/authz: the authorization policy document. */
void pd__authz_http(const http_request *rq, http_response *rs, void *ud);
/* "https://" with TLS, else "http://". */
const char *pd__url_scheme(const pd_server *s);

/* Starts the HTTP API on cfg.http_addr (pd_http.c). Errors: as http_server_start. */
TKV_MUST_USE int pd__http_start(pd_server *s, char errmsg[TKV_ERRMSG_LEN]);

/* Helpers shared by the gRPC files (pd_grpc.c). */
typedef struct pd_hdr {
    Pdpb__ResponseHeader h;
    Pdpb__Error e;
    char msg[TKV_ERRMSG_LEN];
} pd_hdr;
/* Returns a header with the cluster id and, when @res is not NULL and not OK, its error. */
Pdpb__ResponseHeader *pd__hdr(const pd_server *s, pd_hdr *b, const pd_result *res);
/* Returns a header with an error of @type and @msg (copied into @b's buffer). */
Pdpb__ResponseHeader *pd__hdr_err(const pd_server *s, pd_hdr *b, Pdpb__ErrorType type,
                                  const char *msg);
/* Returns false (and ends @call with FAILED_PRECONDITION, as PD) when @h names another
 * cluster. */
bool pd__check_header(const pd_server *s, const Pdpb__RequestHeader *h, struct rpc_call *call);
/* Fills a PD member for this server (client URL with scheme). */
void pd__member(const pd_server *s, Pdpb__Member *m, char **urls);

/* ---- JSON for the HTTP API (pd_json.c); NULL on -ENOMEM --------------------------------- */

/* Writes @bytes as Go's units.BytesSize does ("1.819TiB", "0B"). */
void pd__json_bytes_size(uint64_t bytes, char *out, size_t cap);
/* Writes the wall-clock time @real_ms in RFC 3339 (UTC, milliseconds). */
void pd__json_time(uint64_t real_ms, char *out, size_t cap);
/* Writes @key in upper-case hex into @out (2 * len + 1 bytes). */
void pd__json_hex(tkv_slice key, char *out);
json_t *pd__json_peer(const Metapb__Peer *p);
/* PD's RegionInfo (api/region.go). Cluster mutex held. */
json_t *pd__json_region(const pd_region *r);
json_t *pd__json_store_meta(const Metapb__Store *s);
/* PD's StoreInfo {"store": {..., "state_name"}, "status": {...}}. Cluster mutex held. */
json_t *pd__json_store(const pd_cluster *c, const pd_store *s);
/* This member as PD's member JSON. */
json_t *pd__json_member(const pd_server *s);

#endif /* TKV_PD_INT_H */
