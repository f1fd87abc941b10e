/*
 * rstore_int.h: raftstore internals shared between its files (not API).
 *
 * Who owns what (CONVENTIONS 5: no peer state behind a mutex):
 *   - the poller thread owns every rstore_peer (Raft node, peer storage, proposals, reads)
 *     and the store meta (region ranges, tombstones); other threads reach a peer only by
 *     sending an rstore_msg to its mailbox through the router;
 *   - the apply thread owns every rstore_apply_delegate (region copy and apply state as the
 *     kv engine has them); the poller reaches it only through apply tasks;
 *   - workers own their task queues' items once dequeued.
 * Locks: the router's rwlock (map lookups), each mailbox's mutex (its queue), the poller's
 * mutex (ready list and wake-ups), each worker's mutex (its queue), the transport's address
 * map mutex. None is held while calling out of this module.
 */
#ifndef TKV_RSTORE_INT_H
#define TKV_RSTORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "base/log.h"
#include "base/metrics.h"
#include "eraftpb.pb-c.h"
#include "raft/raft.h"
#include "raft_cmdpb.pb-c.h"
#include "raft_serverpb.pb-c.h"
#include "raftstore/raftstore.h"
#include "tikvpb.pb-c.h"

/* TiKV's initial log position of a region created by bootstrap or split. */
#define RSTORE_INIT_LOG_INDEX 5
#define RSTORE_INIT_LOG_TERM  5

/* Raft node ids are peer ids. */

struct rstore_peer;
struct rstore_apply;
struct rstore_transport;
struct rstore_worker;

/* ---- callbacks carried with proposals ----------------------------------------------- */

typedef enum rstore_cb_kind {
    RSTORE_CB_NONE = 0,
    RSTORE_CB_WRITE = 1, /* stor_write_cb */
    RSTORE_CB_SPLIT = 2, /* rstore_split_cb */
} rstore_cb_kind;

typedef struct rstore_cb {
    rstore_cb_kind kind;
    union {
        stor_write_cb write;
        rstore_split_cb split;
    } fn;
    void *ud;
    uint64_t start_ns; /* when the request entered the store (metrics) */
    /* SPLIT: the resulting regions handed to the callback on success (owned). */
    Metapb__Region **regions;
    size_t n_regions;
} rstore_cb;

/* Answers @cb with a region error (owned by the callee afterwards) or a failure @rc; the
 * callback is consumed (kind set to NONE). A NULL @rerr with @rc 0 is a success. */
void rstore__cb_done(rstore_cb *cb, int rc, Errorpb__Error *rerr);

/* ---- mailbox messages --------------------------------------------------------------- */

typedef enum rstore_msg_type {
    RSTORE_MSG_RAFT = 1,      /* raft: a RaftMessage from another store (owned) */
    RSTORE_MSG_WRITE,         /* write: a proposal from the kv seam */
    RSTORE_MSG_READ,          /* read: a snapshot request from the kv seam */
    RSTORE_MSG_APPLY_RES,     /* apply_res: the apply thread's report */
    RSTORE_MSG_SNAP_GEN,      /* snap_gen: a generated snapshot for this region */
    RSTORE_MSG_SNAP_STATUS,   /* u64a = to peer id, u64b = failed: a snapshot was sent */
    RSTORE_MSG_UNREACHABLE,   /* u64a = to peer id */
    RSTORE_MSG_SPLIT_CHECK,   /* split_check: size, keys and split keys of the region */
    RSTORE_MSG_SPLIT_IDS,     /* split_ids: AskBatchSplit's answer */
    RSTORE_MSG_SPLIT_REQ,     /* split_req: split at keys (RPC, PD operator) */
    RSTORE_MSG_PD_OP,         /* pd_op: a RegionHeartbeatResponse (owned) */
    RSTORE_MSG_CHANGE_PEER,   /* u64a peer id, u64b store id, flags: remove / learner */
    RSTORE_MSG_TRANSFER,      /* u64a = target store id */
    RSTORE_MSG_COMPACT,       /* flags & 1: force */
    RSTORE_MSG_CAMPAIGN,      /* start an election now (a fresh split region) */
    RSTORE_MSG_QUERY,         /* query: fill region info and signal */
    RSTORE_MSG_DESTROY,       /* u64a = peer id to destroy (if it is still that peer) */
    RSTORE_MSG_SNAP_RECEIVED, /* raft: a MsgSnapshot whose file is complete */
    RSTORE_MSG_WAKE,          /* (ctl) nothing: a round, so the transport queues the store
                               * lookups incoming streams asked for */
} rstore_msg_type;

typedef struct rstore_write_req {
    stor_ctx ctx;
    tkv_buf cmd;     /* repeated raft_cmdpb.Request (field 2 of RaftCmdRequest), encoded */
    tkv_buf min_key; /* smallest key written (storage key) */
    tkv_buf max_key; /* largest point key or range start */
    tkv_buf max_end; /* largest non-empty DeleteRange end; empty: none */
    bool has_keys;
    rstore_cb cb;
} rstore_write_req;

typedef struct rstore_read_req {
    stor_ctx ctx;
    stor_snap_cb cb;
    void *ud;
    uint64_t uuid;       /* read-index context */
    uint64_t read_index; /* 0 until the read index is known */
    uint64_t expire_tick;
    uint64_t start_ns;
    struct rstore_read_req *next;
} rstore_read_req;

typedef struct rstore_split_req {
    stor_ctx ctx; /* region id and epoch checked; has_epoch false for PD operators */
    tkv_buf *keys;
    size_t n_keys;
    rstore_cb cb; /* RSTORE_CB_SPLIT or NONE */
} rstore_split_req;

/* A split the PD worker got ids for: propose BatchSplit if the epoch still matches. */
typedef struct rstore_split_ids {
    uint64_t conf_ver, version; /* epoch the split keys were chosen in */
    tkv_buf *keys;
    size_t n_keys;
    uint64_t *new_region_ids; /* n_keys of them */
    uint64_t *new_peer_ids;   /* n_keys * n_peers, row per new region, in region peer order */
    size_t n_peers;
    int rc; /* nonzero: PD refused; cb gets it */
    rstore_cb cb;
} rstore_split_ids;

typedef struct rstore_split_check {
    uint64_t size_bytes;
    uint64_t keys;
    tkv_buf *split_keys;
    size_t n_split_keys;
    uint64_t version; /* region version the check ran at */
} rstore_split_check;

/* Exec results the apply thread reports (rstore_apply_res.results). */
typedef enum rstore_exec_type {
    RSTORE_EXEC_CONF_CHANGE = 1,
    RSTORE_EXEC_SPLIT,
    RSTORE_EXEC_COMPACT_LOG,
    RSTORE_EXEC_SNAPSHOT_APPLIED,
    RSTORE_EXEC_DESTROYED,
} rstore_exec_type;

typedef struct rstore_exec_result {
    rstore_exec_type type;
    /* CONF_CHANGE: the change and the region after it (owned); change_ok false when the
     * command failed its checks (the Raft change is still applied as a no-op). */
    raft_conf_change cc;
    uint64_t cc_peer_id;
    bool change_ok;
    Metapb__Region *region;
    /* SPLIT: the regions after the split in key order (owned), the one that kept the id
     * included. */
    Metapb__Region **regions;
    size_t n_regions;
    /* COMPACT_LOG: the new truncated state; SNAPSHOT_APPLIED: index/term of the snapshot. */
    uint64_t index;
    uint64_t term;
} rstore_exec_result;

typedef struct rstore_apply_res {
    uint64_t peer_id;
    uint64_t applied_index;
    uint64_t applied_term;
    uint64_t written_bytes;
    uint64_t written_keys;
    rstore_exec_result *results;
    size_t n_results;
} rstore_apply_res;

/* A snapshot the apply thread and worker generated for a leader's peer storage. */
typedef struct rstore_snap_gen {
    raft_snapshot snap; /* owned; data = packed RaftSnapshotData */
    int rc;             /* nonzero: generation failed (the peer asks again later) */
    uint64_t version;   /* region epoch the snapshot carries */
    uint64_t conf_ver;
} rstore_snap_gen;

typedef struct rstore_query {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int refs; /* 2: the asker and the poller; the last one frees it */
    rstore_region_info info;
} rstore_query;

typedef struct rstore_msg {
    struct rstore_msg *next;
    rstore_msg_type type;
    uint64_t region_id;
    uint64_t u64a, u64b;
    unsigned flags;
    union {
        RaftServerpb__RaftMessage *raft;
        rstore_write_req *write;
        rstore_read_req *read;
        rstore_apply_res *apply_res;
        rstore_snap_gen *snap_gen;
        rstore_split_check *split_check;
        rstore_split_ids *split_ids;
        rstore_split_req *split_req;
        Pdpb__RegionHeartbeatResponse *pd_op;
        rstore_query *query;
    } u;
} rstore_msg;

/* Allocates a zeroed message of @type for @region_id (aborts on OOM like server code). */
rstore_msg *rstore__msg_new(rstore_msg_type type, uint64_t region_id);
/* Frees @m and everything it owns; requests inside are answered first with @rerr (copied per
 * request; NULL with @rc 0 means "region not found") or @rc. */
void rstore__msg_free(rstore_msg *m, int rc);
/* Frees what a write request holds (not its callback). */
void rstore__write_req_free(rstore_write_req *w);
void rstore__split_check_free(rstore_split_check *c);
void rstore__split_ids_free(rstore_split_ids *s);
void rstore__split_req_free(rstore_split_req *s);
void rstore__apply_res_free(rstore_apply_res *r);
void rstore__exec_result_deinit(rstore_exec_result *e);

/* ---- local reads (local_read.c) ------------------------------------------------------ */

/* Raft tick times a peer remembers (for the lease in monotonic time). */
#define RSTORE_TICK_RING 128

typedef struct rstore_reader rstore_reader;

rstore_reader *rstore__reader_new(void);
void rstore__reader_free(rstore_reader *rd);
/* Stops lease reads through @rd until the poller validates it again. Thread: any. */
void rstore__reader_invalidate(rstore_reader *rd);
void rstore__reader_invalidate_region(struct rstore *s, uint64_t region_id);
/* Serves a lease read on the calling thread when the region's lease holds; returns false
 * (and does nothing) otherwise. */
bool rstore__local_read(struct rstore *s, const stor_ctx *ctx, stor_snap_cb cb, void *ud);

/* ---- router and mailboxes ----------------------------------------------------------- */

typedef struct rstore_mailbox {
    pthread_mutex_t mu;
    rstore_msg *head, *tail;
    size_t len;
    bool scheduled; /* in the poller's ready list or being handled */
    bool closed;    /* the peer is gone: sends fail */
    atomic_int refs;
    uint64_t region_id;
    struct rstore_peer *peer; /* only the poller dereferences it */
    rstore_reader *reader;    /* lease-read delegate (thread-safe) */
    struct rstore_mailbox *ready_next;
} rstore_mailbox;

typedef struct rstore_router {
    pthread_rwlock_t lock;
    rstore_mailbox **slots; /* open addressing by region id, NULL = empty, TOMB = deleted */
    size_t cap;
    size_t n;    /* live entries */
    size_t used; /* live + deleted slots */
    struct rstore_poller *poller;
    size_t capacity; /* per-mailbox limit for seam requests */
    bool closed;
} rstore_router;

int rstore__router_init(rstore_router *r, struct rstore_poller *p, size_t capacity);
void rstore__router_deinit(rstore_router *r);
/* Creates a mailbox for @region_id owning @peer and registers it. Errors: TKV_EEXIST. */
int rstore__router_register(rstore_router *r, uint64_t region_id, struct rstore_peer *peer,
                            rstore_mailbox **out);
/* Closes and unregisters @mb; messages still queued are returned (caller frees them). */
rstore_msg *rstore__router_unregister(rstore_router *r, rstore_mailbox *mb);
/* Queues @m to its region's mailbox and schedules it. Returns 0, TKV_ENOTFOUND (no such
 * region: @m is untouched and still the caller's), TKV_EBUSY (@bounded and the mailbox is
 * at capacity: untouched), TKV_ECLOSED (router closed: untouched). */
int rstore__router_send(rstore_router *r, rstore_msg *m, bool bounded);
/* Sends @m, or frees it (answering requests with @rc / region not found) when it cannot be
 * delivered. */
void rstore__router_send_or_free(rstore_router *r, rstore_msg *m);
/* Copies up to @cap region ids; returns the count. */
size_t rstore__router_region_ids(rstore_router *r, uint64_t *ids, size_t cap);
/* Marks the router closed (sends fail with TKV_ECLOSED). */
void rstore__router_close(rstore_router *r);
void rstore__mailbox_unref(rstore_mailbox *mb);
/* Returns the mailbox of @region_id with a reference taken (rstore__mailbox_unref), or
 * NULL. */
rstore_mailbox *rstore__router_get(rstore_router *r, uint64_t region_id);

/* ---- poller ------------------------------------------------------------------------- */

typedef struct rstore_poller {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rstore_mailbox *ready_head, *ready_tail; /* scheduled mailboxes (each holds a ref) */
    rstore_msg *ctl_head, *ctl_tail;         /* store-level messages */
    bool stop;
    bool wake;
} rstore_poller;

/* Schedules @mb (caller holds mb->mu and has set scheduled). */
void rstore__poller_schedule(rstore_poller *p, rstore_mailbox *mb);
/* Queues a store-level message (raft messages for regions without a peer here). */
void rstore__poller_send_ctl(rstore_poller *p, rstore_msg *m);
void *rstore__poller_main(void *arg);

/* ---- store meta (poller-owned) ------------------------------------------------------ */

typedef struct rstore_range {
    uint64_t region_id;
    tkv_buf start; /* raw region start key (storage keys) */
    tkv_buf end;   /* empty: +infinity */
} rstore_range;

typedef struct rstore_tombstone {
    uint64_t region_id;
    uint64_t peer_id; /* the removed replica (0 when unknown after a restart) */
    uint64_t conf_ver, version;
    uint64_t members[RAFT_MAX_MEMBERS]; /* peer ids of the region as the tombstone saw it */
    size_t n_members;
} rstore_tombstone;

typedef struct rstore_meta {
    rstore_range *ranges; /* initialized regions, sorted by start key */
    size_t n_ranges, cap_ranges;
    rstore_tombstone *tombs;
    size_t n_tombs, cap_tombs;
} rstore_meta;

void rstore__meta_deinit(rstore_meta *m);
/* Sets the range of @region (replacing the region's old range). */
void rstore__meta_set(rstore_meta *m, const Metapb__Region *region);
void rstore__meta_remove(rstore_meta *m, uint64_t region_id);
/* Returns the id of an initialized region other than @except overlapping [start, end), or
 * 0. */
uint64_t rstore__meta_overlap(const rstore_meta *m, tkv_slice start, tkv_slice end,
                              uint64_t except);
/* Records that this store's replica @peer_id of @region (the region as of the removal)
 * was destroyed. */
void rstore__meta_add_tombstone(rstore_meta *m, const Metapb__Region *region, uint64_t peer_id);
const rstore_tombstone *rstore__meta_tombstone(const rstore_meta *m, uint64_t region_id);
void rstore__meta_remove_tombstone(rstore_meta *m, uint64_t region_id);

/* ---- region helpers (region.c) ------------------------------------------------------ */

/* Returns whether @key (storage key) is in [start, end) of @r. */
bool rstore__key_in_region(const Metapb__Region *r, tkv_slice key);
/* Returns the peer of @r with id @peer_id, or NULL. */
const Metapb__Peer *rstore__region_peer(const Metapb__Region *r, uint64_t peer_id);
/* Returns the peer of @r on store @store_id, or NULL. */
const Metapb__Peer *rstore__region_store_peer(const Metapb__Region *r, uint64_t store_id);
/* Fills @cs with @r's voters and learners. */
void rstore__region_conf_state(const Metapb__Region *r, raft_conf_state *cs);
/* Returns a heap copy of @r (system allocator; never NULL: aborts on OOM). */
Metapb__Region *rstore__region_dup(const Metapb__Region *r);
void rstore__region_free(Metapb__Region *r);
/* Replaces *@r (decoded from bytes from disk or a peer) by the decoding of its own packing,
 * which every later copy (rstore__region_dup) and write repeats: protobuf-c keeps unknown
 * fields and packs them back, and some (field number 0 in a long varint) do not decode once
 * packed. Errors: TKV_ECORRUPT (*@r unchanged; the caller frees it). */
int rstore__region_canonical(Metapb__Region **r);
/* Builds a copy of @r with its peers replaced by @peers[0..n) and epoch (conf_ver,
 * version). */
Metapb__Region *rstore__region_with(const Metapb__Region *r, Metapb__Peer *const *peers, size_t n,
                                    uint64_t conf_ver, uint64_t version, tkv_slice start,
                                    tkv_slice end, uint64_t id);
/* Initializes @lo and @hi to the data-key bounds of @r's range ('z' + start, and 'z' + end or
 * the end of all data keys). Both must be released even on error. Errors: -ENOMEM. */
int rstore__region_data_bounds(const Metapb__Region *r, tkv_buf *lo, tkv_buf *hi);
/* Packs @m with protobuf-c into @out (replacing its contents; aborts on OOM). */
void rstore__pack(const ProtobufCMessage *m, tkv_buf *out);

/* ---- persisted state (state.c) ------------------------------------------------------ */

typedef struct rstore_raft_state {
    raft_hard_state hs;
    uint64_t last_index;
} rstore_raft_state;

typedef struct rstore_apply_state {
    uint64_t applied_index;
    uint64_t truncated_index;
    uint64_t truncated_term;
    uint64_t commit_index;
    uint64_t commit_term;
} rstore_apply_state;

/* The pure encoders and decoders of the persisted state records (what the get/put functions
 * below use; the fuzz target raft_log_state drives them). The decoders refuse
 * (TKV_ECORRUPT) what tikv-c never writes and Raft cannot run on: a term or index at or past
 * RAFT_TERM_LIMIT / RAFT_INDEX_LIMIT, a commit index past the last index, a truncated index
 * past the applied index, a region state other than Normal or Tombstone, for another region
 * or with a region that is not sane (rstore__region_is_sane). On error *@st is zeroed and
 * *@region NULL. */
void rstore__raft_state_encode(const rstore_raft_state *st, tkv_buf *out);
int rstore__raft_state_decode(tkv_slice v, rstore_raft_state *st);
void rstore__apply_state_encode(const rstore_apply_state *st, tkv_buf *out);
int rstore__apply_state_decode(tkv_slice v, rstore_apply_state *st);
void rstore__region_state_encode(const Metapb__Region *region, int state, tkv_buf *out);
int rstore__region_state_decode(tkv_slice v, uint64_t region_id, Metapb__Region **region,
                                int *state);
/* Whether @r can be a region of this store: an id, an epoch, and start < end (or no end). */
bool rstore__region_is_sane(const Metapb__Region *r);

/* Adds "raft local state of @region_id = @st" to @b (raft engine, CF default). */
int rstore__put_raft_state(eng_batch *b, uint64_t region_id, const rstore_raft_state *st);
/* Reads the raft local state; *found false when absent. Errors: TKV_ECORRUPT, engine. */
int rstore__get_raft_state(eng_db *db, uint64_t region_id, rstore_raft_state *st, bool *found);
int rstore__put_apply_state(eng_batch *b, uint64_t region_id, const rstore_apply_state *st);
int rstore__get_apply_state(eng_db *db, uint64_t region_id, rstore_apply_state *st, bool *found);
/* Region local state: @state is a RaftServerpb__PeerState. */
int rstore__put_region_state(eng_batch *b, const Metapb__Region *region, int state);
/* Reads the region local state into *@region (owned) and *@state. Errors: TKV_ECORRUPT. */
int rstore__get_region_state(eng_db *db, uint64_t region_id, Metapb__Region **region, int *state,
                             bool *found);
/* Encodes @e as eraftpb.Entry into @out (replacing). */
int rstore__entry_encode(const raft_entry *e, tkv_buf *out);
/* Decodes an eraftpb.Entry into @e (owned: raft_entry_deinit). Errors: TKV_ECORRUPT,
 * -ENOMEM. */
int rstore__entry_decode(tkv_slice in, raft_entry *e);
/* Adds the initial states of a region created by bootstrap or split: region state Normal,
 * apply state (5, truncated 5/5) to @kvb and, when @raftb is not NULL, raft state (term 5,
 * commit 5, last 5). */
int rstore__write_initial_states(eng_batch *kvb, eng_batch *raftb, const Metapb__Region *region);

/* ---- command encoding (cmd.c) ------------------------------------------------------- */

/* Appends the raft_cmdpb.Request entries for @mods (storage keys, no prefix) to @out, and
 * the key bounds to @w. Errors: -EINVAL (bad op or cf), -ENOMEM. */
int rstore__cmd_encode_mods(const stor_modify *mods, size_t n, rstore_write_req *w);
/* Builds a RaftCmdRequest: header (region id, peer, epoch, term) + @body (already encoded
 * fields 2 or 3) into @out. */
int rstore__cmd_build(uint64_t region_id, const Metapb__Peer *peer, uint64_t conf_ver,
                      uint64_t version, uint64_t term, tkv_slice body, tkv_buf *out);
/* Encodes an AdminRequest as field 3 of RaftCmdRequest into @out. */
int rstore__cmd_admin_body(const RaftCmdpb__AdminRequest *admin, tkv_buf *out);

/* ---- peer storage (peer_storage.c) -------------------------------------------------- */

typedef struct rstore_peer_storage {
    struct rstore *store;
    struct rstore_peer *peer;
    uint64_t region_id;
    raft_hard_state hs;
    uint64_t last_index;
    uint64_t last_term;
    uint64_t truncated_index;
    uint64_t truncated_term;
    uint64_t applied_index; /* at load (raft_config.applied) */
    raft_conf_state cs;
    /* Cache of the newest entries: cache.items[i] has index cache_first + i. */
    raft_entry_vec cache;
    uint64_t cache_first;
    size_t cache_bytes;
    /* Snapshot generation. */
    bool gen_pending;
    raft_snapshot gen;     /* metadata.index 0: none */
    uint64_t gen_version;  /* region epoch in gen: a snapshot older than the region's */
    uint64_t gen_conf_ver; /* epoch is not reused (its range may overlap split regions) */
} rstore_peer_storage;

void rstore__ps_init(rstore_peer_storage *ps, struct rstore *s, struct rstore_peer *peer,
                     uint64_t region_id);
void rstore__ps_deinit(rstore_peer_storage *ps);
/* Loads the raft and apply states of an initialized region (fixing up a raft state behind
 * the applied snapshot, or a missing one for a region created by split). */
int rstore__ps_load(rstore_peer_storage *ps, const Metapb__Region *region);
raft_storage rstore__ps_iface(rstore_peer_storage *ps);
/* Adds @ents (appended by a Ready) to @b, deleting a conflicting tail, and notes the new
 * last index (applied to the cache by rstore__ps_appended after the write). */
int rstore__ps_append(rstore_peer_storage *ps, const raft_entry *ents, size_t n, eng_batch *b);
/* Updates the cache after the Ready's write. Errors: -ENOMEM (cache dropped). */
void rstore__ps_appended(rstore_peer_storage *ps, const raft_entry *ents, size_t n);
/* Drops cached entries up to @index (applied). */
void rstore__ps_trim_cache(rstore_peer_storage *ps, uint64_t index);
/* Installs a snapshot's position: truncated = last = @index / @term, log and cache emptied
 * (entries after @index in @b deleted up to the old last index). */
int rstore__ps_apply_snapshot(rstore_peer_storage *ps, uint64_t index, uint64_t term, eng_batch *b,
                              uint64_t *old_first, uint64_t *old_last);
/* Sets the truncated state after a CompactLog was applied. */
void rstore__ps_compact_to(rstore_peer_storage *ps, uint64_t index, uint64_t term);
/* The raft local state to persist. */
rstore_raft_state rstore__ps_raft_state(const rstore_peer_storage *ps);
/* Approximate bytes of raft log between first and last index (cache-based estimate). */
uint64_t rstore__ps_log_bytes(const rstore_peer_storage *ps);

/* ---- peers (peer*.c) ---------------------------------------------------------------- */

typedef struct rstore_proposal {
    uint64_t index;
    uint64_t term;
    rstore_cb cb;
} rstore_proposal;

typedef struct rstore_peer {
    struct rstore *store;
    rstore_mailbox *mb;
    uint64_t region_id;
    uint64_t peer_id;
    Metapb__Region *region; /* owned; no peers and no range until initialized */
    bool initialized;
    raft_node *raft;
    rstore_peer_storage ps;
    /* Proposals in index order (a ring). */
    rstore_proposal *props;
    size_t props_head, props_len, props_cap;
    /* Reads waiting for a read index or the apply index. */
    rstore_read_req *reads_head, *reads_tail;
    uint64_t next_read_uuid;
    uint64_t applied_index;
    uint64_t applied_term;
    uint64_t last_leader_id;
    uint64_t term_seen;
    /* Outstanding Ready kept across rounds while a snapshot is applied. */
    raft_ready *pending_rd;
    bool snap_applying; /* snapshot handed to the apply thread */
    bool snap_applied;  /* done: persist and advance in the next round */
    uint64_t snap_index, snap_term;
    bool pending_conf; /* a conf change is proposed and not yet applied */
    uint64_t pending_conf_index;
    bool destroying;                      /* destroy handed to the apply thread */
    bool destroyed;                       /* unregistered: freed at the end of the round */
    bool touched;                         /* in the current round's list */
    struct rstore_peer *round_next;       /* touched list */
    struct rstore_peer *ready_next_round; /* peers with a Ready this round */
    struct rstore_peer *free_next;        /* destroyed, waiting to be freed */
    /* Timers (poller ticks). */
    uint64_t ticks;
    uint64_t next_pd_hb_ms;
    uint64_t next_gc_ms;
    uint64_t next_split_check_ms;
    size_t last_hb_pending; /* pending peers in the last region heartbeat */
    bool split_check_pending;
    bool split_asking;
    /* Sizes. */
    uint64_t approx_size;
    uint64_t approx_keys;
    uint64_t size_diff_since_check;
    uint64_t written_bytes;
    uint64_t written_keys;
    /* Last time each member was heard from (mono ms), for down peers. */
    uint64_t heard_peer[RAFT_MAX_MEMBERS];
    uint64_t heard_ms[RAFT_MAX_MEMBERS];
    size_t n_heard;
    /* Peers learned from messages (an uninitialized replica has no members yet but must
     * answer its leader). */
    struct {
        uint64_t id;
        uint64_t store_id;
    } known[RAFT_MAX_MEMBERS];
    size_t n_known;
    /* Monotonic time of recent Raft ticks (tick_at guards against stale slots). */
    uint64_t tick_ns[RSTORE_TICK_RING];
    uint64_t tick_at[RSTORE_TICK_RING];
    /* Regions created by the last split (EpochNotMatch's current regions). */
    Metapb__Region **split_regions;
    size_t n_split_regions;
} rstore_peer;

/* Creates a peer for @region (owned by the peer afterwards) with this store's peer
 * @peer_id; @initialized says whether the region has a range and members. Loads storage
 * for initialized regions. Registers the mailbox and, for initialized peers, the apply
 * delegate. Errors: engine / decode errors, TKV_EEXIST. */
int rstore__peer_create(struct rstore *s, Metapb__Region *region, uint64_t peer_id,
                        bool initialized, rstore_peer **out);
/* Releases a peer that is no longer registered (its mailbox closed). */
void rstore__peer_free(rstore_peer *p);
/* Handles one mailbox message (consumes it). */
void rstore__peer_handle(rstore_peer *p, rstore_msg *m);
/* Ticks Raft and the peer's timers. */
void rstore__peer_tick(rstore_peer *p, uint64_t now_ms);
/* Answers every pending proposal and read with @rc (or RegionNotFound when 0). */
void rstore__peer_fail_all(rstore_peer *p, int rc);
/* Returns whether the peer is leader. */
bool rstore__peer_is_leader(const rstore_peer *p);
/* Proposes (on the leader) the admin command @admin with callback @cb (consumed). */
void rstore__peer_propose_admin(rstore_peer *p, const RaftCmdpb__AdminRequest *admin,
                                rstore_cb *cb);
/* Fills a region info. */
void rstore__peer_info(rstore_peer *p, rstore_region_info *info);
/* Starts destroying the peer (removed from the group, or told it is stale). */
void rstore__peer_start_destroy(rstore_peer *p, bool keep_data);
/* Handles raft messages (peer_raft.c). */
void rstore__peer_on_raft(rstore_peer *p, RaftServerpb__RaftMessage *rm);
/* Handles reads (peer_read.c). */
void rstore__peer_on_read(rstore_peer *p, rstore_read_req *r);
void rstore__peer_on_read_states(rstore_peer *p, const raft_read_state *rs, size_t n);
void rstore__peer_serve_reads(rstore_peer *p);
void rstore__peer_expire_reads(rstore_peer *p);
/* Handles an apply report (peer_apply.c). */
void rstore__peer_on_apply_res(rstore_peer *p, rstore_apply_res *res);
/* Region epoch / leader checks for seam requests; returns a region error or NULL. */
Errorpb__Error *rstore__peer_check(rstore_peer *p, const stor_ctx *ctx, bool check_leader);
/* Sends the apply thread the region's state so it can apply entries (peer.c). */
void rstore__peer_register_apply(rstore_peer *p);
/* The oldest proposal (NULL when none), and dropping it. */
rstore_proposal *rstore__peer_props_front(rstore_peer *p);
void rstore__peer_props_pop(rstore_peer *p);
/* NotLeader naming the leader this replica knows. */
Errorpb__Error *rstore__peer_not_leader(rstore_peer *p);
/* PD operators and their API equivalents (leader only; ignored otherwise). */
void rstore__peer_change_peer(rstore_peer *p, raft_conf_change_type type, uint64_t peer_id,
                              uint64_t store_id);
void rstore__peer_transfer_leader(rstore_peer *p, uint64_t to_store_id);
/* Heartbeat and split helpers (peer_pd.c). */
void rstore__peer_heartbeat_pd(rstore_peer *p);
/* Returns how many members need entries the leader no longer has (pending peers). */
size_t rstore__peer_pending_count(rstore_peer *p);
void rstore__peer_on_pd_op(rstore_peer *p, Pdpb__RegionHeartbeatResponse *op);
void rstore__peer_on_split_check(rstore_peer *p, rstore_split_check *c);
void rstore__peer_on_split_req(rstore_peer *p, rstore_split_req *r);
void rstore__peer_on_split_ids(rstore_peer *p, rstore_split_ids *ids);
void rstore__peer_maybe_gc_log(rstore_peer *p, bool force);
void rstore__peer_maybe_split_check(rstore_peer *p, bool force);
/* Lease-read delegate upkeep (local_read.c). */
void rstore__peer_note_tick(rstore_peer *p, uint64_t tick, uint64_t now_ns);
void rstore__peer_update_reader(rstore_peer *p);
/* Records that @from_peer_id was heard from now. */
void rstore__peer_heard(rstore_peer *p, uint64_t from_peer_id, uint64_t now_ms);

/* ---- Ready handling (peer_ready.c), called by the poller ----------------------------- */

typedef struct rstore_round {
    eng_batch *raft_wb;
    bool sync;
    rstore_peer *ready_head; /* peers with a Ready taken this round */
    struct rstore_apply_task *apply_head, *apply_tail;
} rstore_round;

/* Takes the Ready of @p if any: sends messages, adds the log write to the round. */
void rstore__peer_collect_ready(rstore_peer *p, rstore_round *r);
/* After the round's write: persisted messages, apply tasks, read states, advance. */
void rstore__peer_post_persist(rstore_peer *p, rstore_round *r);
/* Sends raft messages from @p through the transport (converts and batches them). */
void rstore__peer_send(rstore_peer *p, const raft_message *msgs, size_t n);
/* Sends a gc message (is_tombstone) to a stale peer. */
void rstore__send_tombstone(struct rstore *s, uint64_t region_id, const Metapb__Peer *to,
                            const Metapb__Peer *from, uint64_t conf_ver, uint64_t version);

/* ---- apply (apply.c, apply_exec.c) -------------------------------------------------- */

typedef enum rstore_apply_task_type {
    RSTORE_APPLY_ENTRIES = 1,
    RSTORE_APPLY_REGISTER,
    RSTORE_APPLY_SNAPSHOT,
    RSTORE_APPLY_DESTROY,
    RSTORE_APPLY_GEN_SNAP,
} rstore_apply_task_type;

typedef struct rstore_apply_task {
    struct rstore_apply_task *next;
    rstore_apply_task_type type;
    uint64_t region_id;
    uint64_t peer_id;
    uint64_t term;                  /* ENTRIES: the leader term at handoff */
    raft_entry_vec entries;         /* ENTRIES: owned copies */
    rstore_cb *cbs;                 /* ENTRIES: parallel to entries (kind NONE when none) */
    Metapb__Region *region;         /* REGISTER / SNAPSHOT: owned */
    rstore_apply_state state;       /* REGISTER */
    uint64_t snap_index, snap_term; /* SNAPSHOT */
    bool keep_data;                 /* DESTROY: another region owns the range now */
    uint64_t commit_index, commit_term;
} rstore_apply_task;

typedef struct rstore_apply_delegate {
    uint64_t region_id;
    uint64_t peer_id;
    Metapb__Region *region;
    rstore_apply_state st;
    uint64_t applied_term;
    bool dirty;             /* apply state changed this round */
    bool removed;           /* this peer was removed by a conf change: ignore the rest */
    uint64_t written_bytes; /* since the last report */
    uint64_t written_keys;
    rstore_exec_result *results;
    size_t n_results, cap_results;
    bool report;
} rstore_apply_delegate;

typedef struct rstore_apply {
    struct rstore *store;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rstore_apply_task *head, *tail;
    bool stop;
    /* Thread-owned. */
    rstore_apply_delegate **dels; /* open addressing by region id */
    size_t cap, n;
    eng_batch *wb;
    bool wb_sync;
    rstore_cb *done_cbs; /* callbacks answered after the round's write */
    Errorpb__Error **done_errs;
    size_t n_done, cap_done;
    rstore_apply_delegate **touched;
    size_t n_touched, cap_touched;
    tkv_buf kbuf, kbuf2;
    /* Range compactions to hand to the worker once the round's write is durable (one per
     * DeleteRange applied in the round). */
    struct rstore_task *compacts;
} rstore_apply;

int rstore__apply_init(rstore_apply *a, struct rstore *s);
int rstore__apply_start(rstore_apply *a);
/* Stops the thread after it has applied every queued task. */
void rstore__apply_stop(rstore_apply *a);
void rstore__apply_deinit(rstore_apply *a);
/* Queues tasks (a linked list) in order. */
void rstore__apply_push(rstore_apply *a, rstore_apply_task *head, rstore_apply_task *tail);
rstore_apply_task *rstore__apply_task_new(rstore_apply_task_type type, uint64_t region_id);
void rstore__apply_task_free(rstore_apply_task *t, int rc);
/* Runs one entry on delegate @d (apply_exec.c): decodes, checks, adds to the batch,
 * records callbacks and exec results. */
void rstore__apply_entry(rstore_apply *a, rstore_apply_delegate *d, const raft_entry *e,
                         rstore_cb *cb);
/* Registers a split-created delegate (apply_exec.c uses it). */
rstore_apply_delegate *rstore__apply_delegate_add(rstore_apply *a, const Metapb__Region *region,
                                                  uint64_t peer_id, const rstore_apply_state *st);
rstore_apply_delegate *rstore__apply_delegate_get(rstore_apply *a, uint64_t region_id);
void rstore__apply_add_result(rstore_apply_delegate *d, rstore_exec_result *res);
/* Queues @cb to be answered after the batch is written (with @rerr, owned). */
void rstore__apply_defer_cb(rstore_apply *a, rstore_cb *cb, Errorpb__Error *rerr);
/* Makes sure the round's write syncs (admin commands). */
void rstore__apply_mark_touched(rstore_apply *a, rstore_apply_delegate *d);

/* ---- snapshots (snap.c) ------------------------------------------------------------- */

/* Builds the path of a snapshot file into @buf. @gen: generated here (else received). */
void rstore__snap_path(const struct rstore *s, bool gen, uint64_t region_id, uint64_t term,
                       uint64_t index, char *buf, size_t cap);
/* Returns the key dictionary snapshot files go through (NULL: plaintext). */
sec_keys *rstore__snap_keys(const struct rstore *s);
/* Writes the region's data CFs from @snap to a generated snapshot file and builds the
 * RaftSnapshotData (packed into @data). Runs on the worker. */
int rstore__snap_build(struct rstore *s, eng_snap *snap, const Metapb__Region *region,
                       uint64_t index, uint64_t term, tkv_buf *data);
/* What a snapshot's RaftSnapshotData says about its file, validated. */
typedef struct rstore_snap_meta {
    Metapb__Region *region; /* owned */
    uint64_t file_size;     /* the sum of the sections' sizes */
    uint64_t sizes[3];      /* sections default, lock, write */
    uint32_t crcs[3];       /* CRC-32 of each section */
} rstore_snap_meta;

/* Decodes @data (raft_serverpb.RaftSnapshotData) into @out: format version 1, a sane region
 * (rstore__region_is_sane), three CF files named default, lock, write in that order whose
 * sizes add up to file_size. Errors: TKV_ECORRUPT (*@out zeroed). Pure: no I/O. */
int rstore__snap_meta_decode(tkv_slice data, rstore_snap_meta *out);
void rstore__snap_meta_deinit(rstore_snap_meta *m);

/* Longest key or value a snapshot record may carry. */
#define RSTORE_SNAP_MAX_FIELD (256u << 20)

/* Called for each complete record of a snapshot file (@key without the 'z' prefix); a
 * non-zero return stops the parse with that error. Without one the parser keeps no values (a
 * check holds at most one key in memory). */
typedef int (*rstore_snap_record_fn)(void *ud, eng_cf cf, tkv_slice key, tkv_slice value);

/* An incremental parser of a snapshot file's bytes, fed in pieces of any size: the one code
 * that both checks a received file (with its meta: sections, sizes, CRCs, each section holding
 * only its CF) and loads it (without): so a file the check accepts always loads. Every record
 * must be well formed, of a data CF, with key and value of at most RSTORE_SNAP_MAX_FIELD bytes
 * and its key in @region's range. Pure: no I/O. */
typedef struct rstore_snap_parser {
    const Metapb__Region *region;
    const rstore_snap_meta *meta; /* NULL: records only */
    rstore_snap_record_fn on_record;
    void *ud;
    int rc; /* first failure, sticky */
    size_t section;
    uint64_t section_left;
    uint32_t crc;
    uint64_t bytes;   /* fed so far */
    uint64_t records; /* complete records so far */
    int state;
    uint8_t cf;
    uint64_t varint;
    int shift;
    uint64_t want;
    tkv_buf key, value;
} rstore_snap_parser;

/* Starts a parse of a file for @region (borrowed, as are @meta, which may be NULL, and @ud);
 * @on_record may be NULL. */
void rstore__snap_parser_init(rstore_snap_parser *p, const Metapb__Region *region,
                              const rstore_snap_meta *meta, rstore_snap_record_fn on_record,
                              void *ud);
void rstore__snap_parser_deinit(rstore_snap_parser *p);
/* Parses the next @n bytes. Errors (sticky): TKV_ECORRUPT, -ENOMEM, @on_record's. */
int rstore__snap_parser_feed(rstore_snap_parser *p, const void *data, size_t n);
/* Ends the parse: the file must end between records and, with a meta, after exactly its
 * sections. Errors: as rstore__snap_parser_feed. */
int rstore__snap_parser_finish(rstore_snap_parser *p);

/* Validates a received snapshot file against @data (RaftSnapshotData): the metadata decodes
 * (rstore__snap_meta_decode) and the file parses with it. Errors: TKV_ECORRUPT, -errno, the
 * key dictionary's. */
int rstore__snap_check_file(struct rstore *s, const char *path, tkv_slice data);
/* Adds the snapshot file's key-values to @b (data keys) after deleting the region's range.
 * Runs on the apply thread. Errors: TKV_ECORRUPT (a record does not decode or lies outside
 * the region), -errno. */
int rstore__snap_load_into(struct rstore *s, const char *path, const Metapb__Region *region,
                           eng_batch *b);
/* Adds deletion of every data key of [start, end) in the data CFs to @b. */
int rstore__delete_region_data(eng_batch *b, const Metapb__Region *region);
/* Removes snapshot files older than @max_age_s seconds (worker). */
void rstore__snap_clean(struct rstore *s, uint64_t max_age_s);
/* The worker's side of one incoming snapshot stream (snap_io.c), apart from gRPC: the first
 * chunk's RaftMessage, then the data chunks, then the end. Whatever the peer sends, at most
 * the announced file size reaches the disk, a partial file is removed, and the message is
 * handed out only once the file on disk checks against its metadata. Worker thread only. */
typedef struct rstore_snap_rx {
    struct rstore *s;
    RaftServerpb__RaftMessage *msg; /* owned until handed out by rstore__snap_rx_end */
    rstore_snap_meta meta;
    rstore_snap_parser parser; /* the data checked as it arrives */
    bool begun, parsing, done;
    char path[512]; /* the received-snapshot path (rstore__snap_path) */
    char tmp[600];  /* written here, renamed to path at the end */
    sec_file *f;
    int rc; /* first failure, sticky */
    uint64_t bytes;
} rstore_snap_rx;

void rstore__snap_rx_init(rstore_snap_rx *rx, struct rstore *s);
/* Takes the first chunk's message @m (owned; may be NULL): refused (rx->rc TKV_ECORRUPT, @m
 * freed) unless it is a MsgSnapshot to this store with snapshot metadata and data that
 * rstore__snap_meta_decode accepts, for the region the message names. */
void rstore__snap_rx_begin(rstore_snap_rx *rx, RaftServerpb__RaftMessage *m);
/* Checks and writes the next data chunk. Errors (sticky): TKV_ECORRUPT (no valid first chunk,
 * or the data does not parse against the metadata, or runs past it), file errors. */
int rstore__snap_rx_data(rstore_snap_rx *rx, tkv_slice data);
/* Ends the stream: the file must be complete; it is synced, read back and checked
 * (rstore__snap_check_file), and renamed to rx->path; then *@msg is the message (owned by the
 * caller). Errors: as rstore__snap_rx_data, the check's. */
int rstore__snap_rx_end(rstore_snap_rx *rx, RaftServerpb__RaftMessage **msg);
/* Releases @rx, removing a partial file. */
void rstore__snap_rx_deinit(rstore_snap_rx *rx);

/* Registers /tikvpb.Tikv/Snapshot (snap_io.c). */
int rstore__snap_register(struct rstore *s, rpc_server *rs);
/* Frees every incoming-stream record (rstore_free, after the gRPC server is gone). */
void rstore__snap_recv_free_all(struct rstore *s);
/* CRC-32 (IEEE) of @len bytes continuing @crc (start with 0). */
uint32_t rstore__crc32(uint32_t crc, const void *p, size_t len);

/* ---- workers (worker.c) ------------------------------------------------------------- */

typedef enum rstore_task_type {
    RSTORE_TASK_SPLIT_CHECK = 1, /* region, u64 flags: force */
    RSTORE_TASK_GEN_SNAP,        /* region, eng snap, index/term */
    RSTORE_TASK_GC_LOG,          /* region id, [lo, hi] */
    RSTORE_TASK_DESTROY_LOG,     /* region id, [lo, hi], delete raft state */
    RSTORE_TASK_RECV_CHUNK,      /* a snapshot receiver's chunk */
    RSTORE_TASK_SEND_SNAP,       /* snapshot to send (snap sender) */
    RSTORE_TASK_STORE_HB,        /* PD worker: store heartbeat */
    RSTORE_TASK_REGION_HB,       /* PD worker: region heartbeat (owned request) */
    RSTORE_TASK_ASK_SPLIT,       /* PD worker */
    RSTORE_TASK_REPORT_SPLIT,    /* PD worker */
    RSTORE_TASK_RESOLVE,         /* PD worker: store address */
    RSTORE_TASK_CLEAN_SNAPS,     /* worker: remove stale snapshot files */
    RSTORE_TASK_COMPACT_RANGE,   /* worker: cf in a, buf = start (a-long) + end data keys */
} rstore_task_type;

typedef struct rstore_task {
    struct rstore_task *next;
    rstore_task_type type;
    uint64_t region_id;
    uint64_t a, b, c, d;
    Metapb__Region *region;
    Metapb__Region **regions;
    size_t n_regions;
    eng_snap *snap;
    void *p; /* type-specific owned pointer */
    void (*free_p)(void *p);
    rstore_split_ids *split; /* ASK_SPLIT */
    tkv_buf buf;
} rstore_task;

typedef struct rstore_worker {
    struct rstore *store;
    const char *name;
    void (*run)(struct rstore *s, rstore_task *t);
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rstore_task *head, *tail;
    size_t len;
    bool stop;
} rstore_worker;

rstore_task *rstore__task_new(rstore_task_type type, uint64_t region_id);
void rstore__task_free(rstore_task *t);
int rstore__worker_start(rstore_worker *w, struct rstore *s, const char *name,
                         void (*run)(struct rstore *, rstore_task *));
/* Queues @t (the worker owns it). A stopped worker frees it. */
void rstore__worker_push(rstore_worker *w, rstore_task *t);
/* Stops after the queued tasks ran and joins. */
void rstore__worker_stop(rstore_worker *w);
size_t rstore__worker_len(rstore_worker *w);

void rstore__run_worker_task(struct rstore *s, rstore_task *t);
void rstore__run_pd_task(struct rstore *s, rstore_task *t);
void rstore__run_snap_task(struct rstore *s, rstore_task *t);
/* Runs a snapshot receiver's task (worker). */
void rstore__run_recv_task(struct rstore *s, rstore_task *t);

/* Split check (split.c): computes size, keys and split keys of a region. */
void rstore__split_check(struct rstore *s, const Metapb__Region *region, bool force,
                         rstore_split_check *out);
/* Returns whether @key is a valid split key inside @region (not a boundary). */
bool rstore__valid_split_key(const Metapb__Region *region, tkv_slice key);
/* Turns a data key candidate into a split key: strips a timestamp from an MVCC key. */
void rstore__split_key_adjust(tkv_slice key, tkv_slice *out);

/* ---- transport (transport.c) -------------------------------------------------------- */

/* Longest certificate name kept for a store. */
#define RSTORE_CERT_NAME_LEN 128

/* What PD says about a store (the receiving side of the transport checks it). */
typedef enum rstore_store_state {
    RSTORE_STORE_PENDING = 0, /* asked PD, no answer yet */
    RSTORE_STORE_UP,          /* known to PD, not a tombstone */
    RSTORE_STORE_TOMBSTONE,   /* a tombstone */
    RSTORE_STORE_UNKNOWN,     /* PD does not know it */
} rstore_store_state;

typedef struct rstore_conn {
    uint64_t store_id;
    char addr[128];
    rpc_stream *stream;
    atomic_bool broken;
    tkv_buf batch; /* BatchRaftMessage being built */
    size_t n_batch;
    uint64_t (*targets)[2]; /* (region id, peer id) per batched message */
    size_t cap_targets;
    bool resolving;
    uint64_t resolved_ms;
} rstore_conn;

typedef struct rstore_transport {
    struct rstore *store;
    rpc_client *client;
    /* Poller-owned. */
    rstore_conn **conns;
    size_t n_conns, cap_conns;
    /* Stores resolved by the PD worker: the address to dial and, for incoming streams,
     * whether PD knows the store and the certificate name it registered with. */
    pthread_mutex_t mu;
    struct {
        uint64_t store_id;
        char addr[128];
        char cert_name[RSTORE_CERT_NAME_LEN]; /* PD's tikv-c.cert-name label, "" when none */
        rstore_store_state state;
        uint64_t generation;
        uint64_t resolve_ms;  /* last resolve asked from a receiving stream (rate limit) */
        uint64_t resolved_ms; /* last answer from PD (0: never) */
        bool wanted;          /* a resolve for a receiving stream, not queued yet */
    } * addrs;
    size_t n_addrs, cap_addrs;
    tkv_buf scratch;
    /* Refused incoming streams and dropped forged messages (tikv_raftstore_raft_refused_total). */
    atomic_uint_fast64_t refused_streams;
    atomic_uint_fast64_t forged_messages;
    atomic_bool resolve_wanted; /* some addrs[].wanted is set */
} rstore_transport;

int rstore__transport_init(rstore_transport *t, struct rstore *s);
void rstore__transport_deinit(rstore_transport *t);
/* Queues the packed RaftMessage @rm for @store_id (poller thread). */
void rstore__transport_send(rstore_transport *t, uint64_t store_id, uint64_t region_id,
                            uint64_t to_peer, tkv_slice packed);
/* Sends every queued batch (poller thread). */
void rstore__transport_flush(rstore_transport *t);
/* Stores what PD said about @store_id (PD worker): its address, the certificate name it
 * registered with ("" when none) and its state. */
void rstore__transport_set_store(rstore_transport *t, uint64_t store_id, const char *addr,
                                 const char *cert_name, rstore_store_state state);
/* Returns what is known of @store_id for an incoming stream, copying its certificate name
 * into @cert (@cap bytes). A store never asked about, or whose answer is older than the
 * refresh interval, is (re)resolved asynchronously (the poller queues the lookup on the PD
 * worker at its next round); the answer given is the cached one (RSTORE_STORE_PENDING when
 * there is none yet). Thread: any (gRPC threads); never blocks on PD. */
rstore_store_state rstore__transport_peer_store(rstore_transport *t, uint64_t store_id, char *cert,
                                                size_t cap);
/* Copies the address of @store_id into @buf; returns false when unknown. */
bool rstore__transport_addr(rstore_transport *t, uint64_t store_id, char *buf, size_t cap);
/* The sender identity a store's outgoing replication streams carry as metadata. */
typedef struct rstore_stream_md {
    char cluster_id[24];
    char store_id[24];
    rpc_md md[2];
} rstore_stream_md;
/* Fills @out with this store's cluster id and store id (md points into @out). */
void rstore__stream_md(const struct rstore *s, rstore_stream_md *out);
/* Checks an incoming replication stream's sender once, when it opens (on_open of Raft,
 * BatchRaft, Snapshot): returns true with the sender's store id in *@store_id, or refuses
 * the stream (counted, told to on_refused unless it is only UNAVAILABLE: not serving yet or
 * the sender being looked up in PD), finishes the call and returns false. Never blocks.
 * Thread: gRPC completion-queue thread. */
bool rstore__admit_stream(struct rstore *s, rpc_call *call, uint64_t *store_id);
/* Counts a refused stream (@stream) or a forged message, logs it and tells on_refused. */
void rstore__refused(struct rstore *s, rpc_call *call, uint64_t store_id, const char *reason,
                     bool stream);
/* Routes one received RaftMessage (owned) to its peer or to the poller. */
void rstore__route_raft_message(struct rstore *s, RaftServerpb__RaftMessage *rm);

/* ---- PD (pd.c) ---------------------------------------------------------------------- */

/* The heartbeat stream callback (routes operators to peers). */
void rstore__on_pd_heartbeat(void *ud, const Pdpb__RegionHeartbeatResponse *resp);
/* Queues a store heartbeat with the poller's counts. */
void rstore__schedule_store_heartbeat(struct rstore *s, size_t regions, size_t leaders);

/* ---- metrics (metrics.c) ------------------------------------------------------------ */

typedef struct rstore_metrics {
    tkv_series *proposal_normal;
    tkv_series *proposal_conf_change;
    tkv_series *proposal_read_index;
    tkv_series *proposal_local_read;
    tkv_series *proposal_transfer_leader;
    tkv_series *proposal_all;
    tkv_series *apply_log_duration;
    tkv_series *append_log_duration;
    tkv_series *commit_log_duration;
    tkv_series *region_count;
    tkv_series *leader_count;
    tkv_series *store_capacity;
    tkv_series *store_available;
    tkv_series *store_used;
    tkv_series *engine_size[2][ENG_CF_COUNT];
    tkv_series *raft_sent[RAFT_MSG_TYPE_COUNT];
    tkv_series *snapshot_sent;
    tkv_series *snapshot_received;
    tkv_series *snapshot_applied;
    tkv_series *raft_ready_handled;
    tkv_series *raft_refused_stream;  /* incoming replication streams refused */
    tkv_series *raft_refused_message; /* forged raft messages dropped */
    tkv_series *write_batch_size;
} rstore_metrics;

void rstore__metrics_init(rstore_metrics *m);

/* ---- the store ---------------------------------------------------------------------- */

struct rstore {
    rstore_opts opts;
    char *snap_dir;
    char *data_dir;
    char *version;
    uint64_t store_id;
    uint64_t cluster_id;
    char addr[128];
    char status_addr[128];
    uint64_t start_time_s;
    rstore_router router;
    rstore_poller poller;
    rstore_apply apply;
    rstore_transport transport;
    rstore_worker worker;
    rstore_worker snap_worker;
    rstore_worker pd_worker;
    pthread_t poll_thread;
    bool started;
    bool stopped;
    atomic_bool accepting;
    /* Peers loaded by rstore_open, handed to the poller at start (poller-owned then). */
    rstore_peer **loaded;
    size_t n_loaded;
    /* Poller-owned. */
    rstore_meta meta;
    rstore_peer **peers; /* every live peer (for ticks) */
    size_t n_peers, cap_peers;
    rstore_peer *to_free;
    uint64_t next_tick_ms;
    uint64_t next_store_hb_ms;
    uint64_t next_snap_clean_ms;
    /* Counters (atomics: read by rstore_stats_get). */
    atomic_size_t stat_regions;
    atomic_size_t stat_leaders;
    atomic_size_t stat_applying;
    atomic_uint_fast64_t stat_snap_sent;
    atomic_uint_fast64_t stat_snap_received;
    atomic_uint_fast64_t stat_snap_applied;
    atomic_uint_fast64_t stat_compactions;
    atomic_uint_fast64_t stat_splits;
    atomic_uint_fast64_t stat_disk_full_refused;
    atomic_uint_fast64_t stat_range_compactions;
    atomic_int snaps_sending;
    atomic_int snaps_receiving;
    atomic_uint_fast64_t snap_seq;
    rstore_metrics m;
    /* Incoming snapshot streams (snap_io.c), freed with the store. */
    pthread_mutex_t snap_recv_mu;
    struct snap_recv *snap_recvs;
};

/* Adds a peer to the poller's list (poller thread). */
void rstore__store_add_peer(struct rstore *s, rstore_peer *p);
/* Removes a peer from the poller's list (poller thread). */
void rstore__store_remove_peer(struct rstore *s, rstore_peer *p);
/* Handles a store-level message (poller thread): raft messages for unknown regions. A peer
 * it creates is added to *@touched. */
void rstore__store_handle_ctl(struct rstore *s, rstore_msg *m, rstore_peer **touched);
/* Frees the peers destroyed during the round (poller thread). */
void rstore__store_free_destroyed(struct rstore *s);
/* Writes @b to @db or dies (engine failure is fatal). */
void rstore__must_write(eng_db *db, eng_batch *b, bool sync, const char *what);
/* Creates peers for the regions produced by a split (poller thread). */
void rstore__store_on_split(struct rstore *s, rstore_peer *from, Metapb__Region *const *regions,
                            size_t n, bool campaign);

#endif /* TKV_RSTORE_INT_H */
