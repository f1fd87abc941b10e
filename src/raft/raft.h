/*
 * raft.h: the Raft consensus core, a pure state machine in the design of etcd's raft and
 * raft-rs (Raft paper, Ongaro and Ousterhout 2014; Raft thesis, Ongaro 2014).
 *
 * Owns: one raft_node per Raft group member: its term and vote, the unstable tail of its log
 * (entries and a snapshot the caller has not persisted yet; everything older is read from
 * storage), every peer's progress when leader, pending read-index requests and outbound
 * messages. Persistent state lives in the caller's raft_storage; the node only reads it.
 * Threads: none. A raft_node is single-threaded: call it from one thread at a time. It does no
 * I/O, reads no clock and keeps no globals: time enters by raft_node_tick(), randomness (the
 * election timeout) comes from a PRNG seeded by raft_config.seed, so a run replays exactly.
 * Errors: fallible functions return 0 or a negative TKV_E* code (base.h): -ENOMEM when the
 * allocator fails (the call had no effect, or its doc says what it did), TKV_EDROPPED when a
 * proposal cannot be accepted now (no leader, a leadership transfer, flow control),
 * TKV_EBUSY when a Ready is outstanding (call raft_node_advance first), TKV_ECONFIG for a bad
 * configuration, TKV_ECORRUPT for a message that contradicts the Raft rules (it is ignored),
 * and any error the storage returned other than TKV_ECOMPACTED / TKV_EUNAVAILABLE.
 * Ownership: inputs are borrowed for the call; the node copies what it keeps. Everything a
 * raft_ready points to is owned by the node and stays valid until raft_node_advance().
 * Dependencies: src/base only.
 *
 * Usage (the main loop of one group; raftstore runs it for many groups and batches the
 * persist step of all of them into one write and one fsync):
 *
 *     raft_node *n;
 *     int rc = raft_node_new(&cfg, &storage, &n);            // cfg.id, election_tick, ...
 *     for (;;) {
 *         on timer:    rc = raft_node_tick(n);               // every tick interval
 *         on message:  rc = raft_node_step(n, &msg);         // from the transport
 *         on request:  rc = raft_node_propose(n, data, len, NULL, 0);
 *         if (!raft_node_has_ready(n))
 *             continue;
 *         raft_ready *rd;
 *         rc = raft_node_ready(n, &rd);
 *         send(rd->messages, rd->n_messages);               // may go before the write
 *         persist(rd->snapshot, rd->entries, rd->hard_state); // fsync if rd->must_sync
 *         send(rd->persisted_messages, rd->n_persisted_messages);
 *         apply(rd->snapshot, rd->committed_entries);       // conf changes: see below
 *         serve(rd->read_states);                            // once applied >= index
 *         rc = raft_node_advance(n);                         // rd is invalid from here
 *     }
 *
 * A committed RAFT_ENTRY_CONF_CHANGE entry is applied by decoding its data with
 * raft_conf_change_decode() and calling raft_node_apply_conf_change() (single-step membership
 * change, Raft thesis section 4.1: one change at a time, taking effect when applied).
 */
#ifndef TKV_RAFT_H
#define TKV_RAFT_H

#include "base/base.h"

/* ---- limits ------------------------------------------------------------------------- */

/* Most voters plus learners in one group. TiKV regions have a handful of replicas; the fixed
 * bound keeps configuration state plain data. */
#define RAFT_MAX_MEMBERS 16

/* Messages with a term at or above this are refused, so that no term a node reaches can wrap
 * around (a node adds one per election; 2^62 elections take longer than any deployment). */
#define RAFT_TERM_LIMIT (UINT64_C(1) << 62)
/* Likewise for log indexes (and commit indexes, hints, snapshot indexes) in messages. */
#define RAFT_INDEX_LIMIT (UINT64_C(1) << 62)

/* The id that means "nobody" (no leader, no vote). Node ids are never 0. */
#define RAFT_NONE 0

/* ---- entries ------------------------------------------------------------------------ */

/* eraftpb.EntryType. */
typedef enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0,
    RAFT_ENTRY_CONF_CHANGE = 1, /* data is an encoded raft_conf_change */
} raft_entry_type;

/* One log entry, shaped like eraftpb.Entry. Ownership: an entry in an array the node hands out
 * (raft_ready, raft_entry_vec) owns its bytes, which sit in one heap block starting at data
 * (context follows data in the same block); such entries are made by raft_entry_copy() and
 * released by raft_entry_deinit(). An entry the caller passes in is only read. */
typedef struct raft_entry {
    raft_entry_type entry_type;
    uint64_t term;
    uint64_t index;
    uint8_t *data;
    size_t data_len;
    uint8_t *context;
    size_t context_len;
} raft_entry;

/* Makes @dst an owned deep copy of @src. Errors: -ENOMEM (@dst is left zeroed). */
TKV_MUST_USE int raft_entry_copy(raft_entry *dst, const raft_entry *src);
/* Releases the bytes of an owned entry and zeroes it; a zeroed entry is a no-op. */
void raft_entry_deinit(raft_entry *e);
/* Returns the bytes an entry counts for in size limits (data + context). */
uint64_t raft_entry_size(const raft_entry *e);

/* A growable array of owned entries: what raft_storage.entries() appends to. */
typedef struct raft_entry_vec {
    raft_entry *items;
    size_t len;
    size_t cap;
} raft_entry_vec;

/* Initializes an empty vector (no allocation). */
void raft_entry_vec_init(raft_entry_vec *v);
/* Appends a deep copy of @e. Errors: -ENOMEM (the vector is unchanged). */
TKV_MUST_USE int raft_entry_vec_push_copy(raft_entry_vec *v, const raft_entry *e);
/* Releases every entry from index @from on and sets len to @from. */
void raft_entry_vec_truncate(raft_entry_vec *v, size_t from);
/* Releases all entries and the array. */
void raft_entry_vec_deinit(raft_entry_vec *v);

/* ---- state -------------------------------------------------------------------------- */

/* eraftpb.HardState: what must be durable before messages that depend on it are sent. */
typedef struct raft_hard_state {
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
} raft_hard_state;

/* eraftpb.ConfState: the members of the group. Plain data. */
typedef struct raft_conf_state {
    uint64_t voters[RAFT_MAX_MEMBERS];
    size_t n_voters;
    uint64_t learners[RAFT_MAX_MEMBERS];
    size_t n_learners;
} raft_conf_state;

/* Returns true when @id is a voter or a learner of @cs. */
bool raft_conf_state_contains(const raft_conf_state *cs, uint64_t id);

/* eraftpb.SnapshotMetadata. */
typedef struct raft_snapshot_metadata {
    raft_conf_state conf_state;
    uint64_t index;
    uint64_t term;
} raft_snapshot_metadata;

/* eraftpb.Snapshot. A snapshot with metadata.index 0 is empty. Ownership: as for entries,
 * snapshots the node hands out own their data; raft_snapshot_copy / raft_snapshot_deinit. */
typedef struct raft_snapshot {
    raft_snapshot_metadata metadata;
    uint8_t *data;
    size_t data_len;
} raft_snapshot;

/* Makes @dst an owned deep copy of @src. Errors: -ENOMEM (@dst is left zeroed). */
TKV_MUST_USE int raft_snapshot_copy(raft_snapshot *dst, const raft_snapshot *src);
/* Releases an owned snapshot's data and zeroes it. */
void raft_snapshot_deinit(raft_snapshot *s);

/* The role of a node. */
typedef enum raft_state_type {
    RAFT_STATE_FOLLOWER = 0,
    RAFT_STATE_CANDIDATE = 1,
    RAFT_STATE_LEADER = 2,
    RAFT_STATE_PRE_CANDIDATE = 3,
} raft_state_type;

/* Returns a static name for @s ("Follower", ...). */
const char *raft_state_name(raft_state_type s);

/* Volatile state worth reporting: who leads, and our role. */
typedef struct raft_soft_state {
    uint64_t leader_id;
    raft_state_type raft_state;
} raft_soft_state;

/* ---- messages ----------------------------------------------------------------------- */

/* eraftpb.MessageType, same names and numbers. Local messages (Hup, Beat, Unreachable,
 * SnapStatus, CheckQuorum) never travel between nodes. */
typedef enum raft_message_type {
    RAFT_MSG_HUP = 0,
    RAFT_MSG_BEAT = 1,
    RAFT_MSG_PROPOSE = 2,
    RAFT_MSG_APPEND = 3,
    RAFT_MSG_APPEND_RESPONSE = 4,
    RAFT_MSG_REQUEST_VOTE = 5,
    RAFT_MSG_REQUEST_VOTE_RESPONSE = 6,
    RAFT_MSG_SNAPSHOT = 7,
    RAFT_MSG_HEARTBEAT = 8,
    RAFT_MSG_HEARTBEAT_RESPONSE = 9,
    RAFT_MSG_UNREACHABLE = 10,
    RAFT_MSG_SNAP_STATUS = 11,
    RAFT_MSG_CHECK_QUORUM = 12,
    RAFT_MSG_TRANSFER_LEADER = 13,
    RAFT_MSG_TIMEOUT_NOW = 14,
    RAFT_MSG_READ_INDEX = 15,
    RAFT_MSG_READ_INDEX_RESP = 16,
    RAFT_MSG_REQUEST_PRE_VOTE = 17,
    RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE = 18,
} raft_message_type;

/* Number of message types (for tables indexed by type). */
#define RAFT_MSG_TYPE_COUNT 19

/* Returns a static name for @t ("MsgAppend", ...), or "MsgUnknown". */
const char *raft_message_type_name(raft_message_type t);

/* eraftpb.Message, same field names. snapshot is NULL when the message carries none.
 * MsgHeartbeat and MsgHeartbeatResponse carry the leader's tick count at send time in index
 * (the response echoes it), which anchors the leader lease; etcd leaves index 0 there.
 * Ownership: messages in a raft_ready own entries, snapshot and context (raft_message_copy
 * makes such a message, raft_message_deinit releases one); a message passed to
 * raft_node_step() is only read. */
typedef struct raft_message {
    raft_message_type msg_type;
    uint64_t to;
    uint64_t from;
    uint64_t term;
    uint64_t log_term;
    uint64_t index;
    raft_entry *entries;
    size_t n_entries;
    uint64_t commit;
    raft_snapshot *snapshot;
    bool reject;
    uint64_t reject_hint;
    uint8_t *context;
    size_t context_len;
} raft_message;

/* Makes @dst an owned deep copy of @src. Errors: -ENOMEM (@dst is left zeroed). */
TKV_MUST_USE int raft_message_copy(raft_message *dst, const raft_message *src);
/* Releases what an owned message holds and zeroes it. */
void raft_message_deinit(raft_message *m);

/* ---- membership changes --------------------------------------------------------------- */

/* eraftpb.ConfChangeType (single-step subset). */
typedef enum raft_conf_change_type {
    RAFT_CONF_ADD_NODE = 0,
    RAFT_CONF_REMOVE_NODE = 1,
    RAFT_CONF_ADD_LEARNER_NODE = 2,
} raft_conf_change_type;

/* eraftpb.ConfChange. context is borrowed (after decode: from the decoded bytes). */
typedef struct raft_conf_change {
    raft_conf_change_type change_type;
    uint64_t node_id;
    tkv_slice context;
} raft_conf_change;

/* Appends @cc to @out in eraftpb.ConfChange protobuf wire format (fields change_type = 2,
 * node_id = 3, context = 4), the data of a RAFT_ENTRY_CONF_CHANGE entry. Errors: -ENOMEM. */
TKV_MUST_USE int raft_conf_change_encode(const raft_conf_change *cc, tkv_buf *out);
/* Decodes @in into @cc; cc->context borrows from @in. Unknown fields are skipped.
 * Errors: TKV_ECORRUPT (malformed wire data, node id 0, unknown change type). */
TKV_MUST_USE int raft_conf_change_decode(tkv_slice in, raft_conf_change *cc);

/* ---- storage -------------------------------------------------------------------------- */

/* The persistent state the caller keeps (raftstore's peer storage; raft_mem_storage in
 * tests). The node only reads it; the caller writes it from each Ready. Every function gets
 * ctx as its first argument. Log layout: entries first_index .. last_index are present;
 * first_index - 1 is the index of the last snapshot (or 0), whose term term() must still
 * answer.
 *   initial_state: the hard state and conf state at start-up.
 *   entries: appends deep copies (raft_entry_vec_push_copy) of entries [lo, hi) to @out,
 *       stopping before the total passes @max_bytes but always at least one entry.
 *       Errors: TKV_ECOMPACTED (lo < first_index), TKV_EUNAVAILABLE (not yet readable).
 *   term: the term of entry @index, for first_index - 1 <= index <= last_index.
 *       Errors: TKV_ECOMPACTED (index < first_index - 1), TKV_EUNAVAILABLE.
 *   first_index / last_index: cannot fail (TiKV keeps both in memory).
 *   snapshot: the most recent snapshot, as an owned copy in @out, whose index is at least
 *       @request_index if the caller can make one. Errors: TKV_EUNAVAILABLE (being built;
 *       the node retries later). */
typedef struct raft_storage {
    void *ctx;
    int (*initial_state)(void *ctx, raft_hard_state *hs, raft_conf_state *cs);
    int (*entries)(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes, raft_entry_vec *out);
    int (*term)(void *ctx, uint64_t index, uint64_t *term);
    uint64_t (*first_index)(void *ctx);
    uint64_t (*last_index)(void *ctx);
    int (*snapshot)(void *ctx, uint64_t request_index, raft_snapshot *out);
} raft_storage;

/* An in-memory raft_storage for tests, the simulator and the benchmark (etcd MemoryStorage).
 * Owns copies of everything written to it. Single-threaded. */
typedef struct raft_mem_storage raft_mem_storage;

/* Index and term of the bootstrap snapshot of raft_mem_storage_new(cs != NULL). */
#define RAFT_MEM_BOOTSTRAP_INDEX 1

/* Creates a storage. With @cs it is bootstrapped as a founding member: a snapshot at index and
 * term RAFT_MEM_BOOTSTRAP_INDEX holding the members @cs (empty data), hard state term and
 * commit RAFT_MEM_BOOTSTRAP_INDEX; a member added later receives that snapshot and learns
 * the members from it. With NULL it is empty, for a node that joins an existing group.
 * Errors: -ENOMEM. */
TKV_MUST_USE int raft_mem_storage_new(const raft_conf_state *cs, raft_mem_storage **out);
/* Releases the storage; NULL is a no-op. */
void raft_mem_storage_free(raft_mem_storage *s);
/* Returns the raft_storage interface over @s (valid while @s lives). */
raft_storage raft_mem_storage_iface(raft_mem_storage *s);
/* Appends @n entries, first truncating any entries at or after ents[0].index (a follower
 * overwriting a conflicting tail). Entries already covered by the snapshot are skipped.
 * Errors: -ENOMEM (unchanged), TKV_ECORRUPT (ents[0].index leaves a gap after last_index, or
 * the entries are not consecutive). */
TKV_MUST_USE int raft_mem_storage_append(raft_mem_storage *s, const raft_entry *ents, size_t n);
/* Sets the hard state. */
void raft_mem_storage_set_hard_state(raft_mem_storage *s, const raft_hard_state *hs);
/* Returns the stored hard state. */
raft_hard_state raft_mem_storage_hard_state(const raft_mem_storage *s);
/* Replaces everything with the snapshot @snap (copied): the log becomes empty after
 * snap.metadata.index. Errors: -ENOMEM (unchanged), TKV_ESTALE (older than the current
 * snapshot). */
TKV_MUST_USE int raft_mem_storage_apply_snapshot(raft_mem_storage *s, const raft_snapshot *snap);
/* Records a snapshot at @index (which must be present in the log) with @cs and @data (copied)
 * without discarding entries; compact separately. Errors: -ENOMEM, TKV_ESTALE (index at or
 * before the current snapshot), TKV_ECOMPACTED / TKV_ENOTFOUND (index outside the log). */
TKV_MUST_USE int raft_mem_storage_create_snapshot(raft_mem_storage *s, uint64_t index,
                                                  const raft_conf_state *cs, const void *data,
                                                  size_t len);
/* Discards entries before @compact_index (which stays, as the new first_index - 1 marker
 * whose term is still known). Errors: TKV_ECOMPACTED (already compacted past it),
 * TKV_ENOTFOUND (beyond last_index). */
TKV_MUST_USE int raft_mem_storage_compact(raft_mem_storage *s, uint64_t compact_index);
/* Returns a borrowed view of the current snapshot (metadata.index 0 when none); valid until
 * the next call that changes @s. */
const raft_snapshot *raft_mem_storage_snapshot_ref(const raft_mem_storage *s);
/* Makes @dst (a new storage) an independent copy of @src: a disk image. Errors: -ENOMEM. */
TKV_MUST_USE int raft_mem_storage_clone(const raft_mem_storage *src, raft_mem_storage **dst);

/* ---- configuration -------------------------------------------------------------------- */

/* How read_index() confirms leadership (etcd ReadOnlyOption). */
typedef enum raft_read_only_option {
    /* A heartbeat round acknowledged by a quorum confirms leadership (Raft thesis 6.4). */
    RAFT_READ_ONLY_SAFE = 0,
    /* Answer at once while the leader lease holds (thesis 6.4.1); needs check_quorum. Falls
     * back to the safe way when the lease has run out. */
    RAFT_READ_ONLY_LEASE_BASED = 1,
} raft_read_only_option;

/* Receives one trace line (no newline) describing a state change or a decision; @line is
 * valid for the call only. Pure modules never print (CONVENTIONS 6): tests capture these. */
typedef void (*raft_tracer_fn)(void *ctx, const char *line);

typedef struct raft_config {
    uint64_t id;               /* this node, never 0 */
    int election_tick;         /* ticks without a leader before campaigning (> heartbeat) */
    int heartbeat_tick;        /* ticks between leader heartbeats (>= 1) */
    uint64_t applied;          /* last applied index at start (0 on a fresh node) */
    uint64_t max_size_per_msg; /* bytes of entries per append; 0 sends one entry a message */
    size_t max_inflight_msgs;  /* appends in flight per follower while replicating (>= 1) */
    uint64_t max_committed_size_per_ready; /* bytes of committed entries per Ready; 0: all */
    /* Bytes of proposals a leader holds appended but not yet committed before it drops new
     * ones with TKV_EDROPPED (flow control when followers fall behind); 0: no limit. A single
     * proposal is always taken when nothing is outstanding (etcd MaxUncommittedEntriesSize). */
    uint64_t max_uncommitted_size;
    bool check_quorum; /* leader steps down without a quorum for an election timeout */
    bool pre_vote;     /* pre-vote phase before campaigning (thesis 9.6) */
    raft_read_only_option read_only_option;
    bool skip_bcast_commit; /* do not broadcast appends only to spread a new commit index */
    uint64_t seed;          /* seeds the node's PRNG (randomized election timeouts) */
    raft_tracer_fn tracer;  /* NULL: no tracing */
    void *tracer_ctx;
} raft_config;

/* Fills @cfg with defaults for @id: election_tick 10, heartbeat_tick 2, max_size_per_msg
 * 1 MiB, max_inflight_msgs 256, check_quorum and pre_vote on, safe reads, seed @id. */
void raft_config_default(raft_config *cfg, uint64_t id);

/* Returns 0 when @cfg is valid, else TKV_ECONFIG with *why set to a static reason. */
TKV_MUST_USE int raft_config_validate(const raft_config *cfg, const char **why);

/* ---- the node ----------------------------------------------------------------------- */

typedef struct raft_node raft_node;

/* A read-index result: once the state machine has applied index, reads issued with
 * request_ctx are linearizable (thesis 6.4). request_ctx is owned by the Ready. */
typedef struct raft_read_state {
    uint64_t index;
    uint8_t *request_ctx;
    size_t request_ctx_len;
} raft_read_state;

/* What the caller must do, in this order: send messages (allowed before persisting), persist
 * snapshot + entries + hard state (fsync when must_sync), then send persisted_messages,
 * apply snapshot and committed_entries, serve read_states once applied >= index, and call
 * raft_node_advance(). Lifetime: every pointer is owned by the node and valid until
 * raft_node_advance(); between raft_node_ready() and raft_node_advance() the node refuses
 * tick/step/propose with TKV_EBUSY. */
typedef struct raft_ready {
    bool has_soft_state; /* soft_state changed since the last Ready */
    raft_soft_state soft_state;
    bool has_hard_state; /* hard_state changed since the last Ready: persist it */
    raft_hard_state hard_state;
    bool must_sync;      /* entries, term or vote changed: fsync before persisted_messages */
    raft_entry *entries; /* to append to storage, in order, overwriting any conflicting tail */
    size_t n_entries;
    const raft_snapshot *snapshot; /* to install (storage and state machine); NULL if none */
    raft_entry *committed_entries; /* to apply, in order */
    size_t n_committed_entries;
    raft_message *messages; /* sendable at once (a leader's appends: thesis 10.2.1) */
    size_t n_messages;
    raft_message *persisted_messages; /* sendable only after the persist step */
    size_t n_persisted_messages;
    raft_read_state *read_states;
    size_t n_read_states;
} raft_ready;

/* A snapshot of a node's state for tests, tools and raftstore's status. */
typedef struct raft_status {
    uint64_t id;
    raft_hard_state hard_state;
    raft_soft_state soft_state;
    uint64_t applied;
    uint64_t first_index;
    uint64_t last_index;
    uint64_t persisted_index; /* last index known durable (the leader counts it for commit) */
    uint64_t lead_transferee; /* RAFT_NONE unless a leadership transfer is under way */
    uint64_t ticks;           /* ticks since the node was created */
    raft_conf_state conf_state;
} raft_status;

/* Creates a node from @cfg over @storage (its ctx must outlive the node), loading the hard and
 * conf state from storage. It starts as a follower with no leader. The commit index is the
 * largest of the stored one, the snapshot's and cfg.applied (applied entries were committed).
 * Errors: TKV_ECONFIG (invalid config, or storage state that contradicts itself: a commit
 * or applied index past the last entry), -ENOMEM, storage errors. */
TKV_MUST_USE int raft_node_new(const raft_config *cfg, const raft_storage *storage,
                               raft_node **out);
/* Releases the node and everything it owns (an outstanding Ready included); NULL is a no-op. */
void raft_node_free(raft_node *n);

/* Advances the node's logical clock by one tick: followers count toward an election, leaders
 * toward heartbeats and the check-quorum round. Errors: TKV_EBUSY (Ready outstanding). */
TKV_MUST_USE int raft_node_tick(raft_node *n);
/* Starts an election now (MsgHup), as if the election timeout had passed.
 * Errors: TKV_EBUSY. */
TKV_MUST_USE int raft_node_campaign(raft_node *n);
/* Feeds one message from a peer. Messages for another node, from an older term, or from
 * non-members are ignored (0). Errors: TKV_EBUSY; TKV_ECORRUPT (a local message type, a
 * message without a term other than a forwarded proposal, read or transfer request, a term
 * of RAFT_TERM_LIMIT or an index of RAFT_INDEX_LIMIT or more anywhere in it, or a message that
 * contradicts committed state: ignored); TKV_EDROPPED / TKV_ENOTLEADER for a
 * forwarded proposal or request that cannot be served; -ENOMEM (the message was not or only
 * partly processed: as if the network had lost it, which Raft tolerates; the node stays
 * consistent). */
TKV_MUST_USE int raft_node_step(raft_node *n, const raft_message *m);
/* Proposes @data (and @context, may be NULL/0) for the log. A follower forwards it to the
 * leader. Errors: TKV_EDROPPED (no leader known, leadership transfer under way, this node
 * was removed, or max_uncommitted_size reached), TKV_EBUSY, -ENOMEM. Success does not mean the
 * entry will commit: watch the committed entries (etcd semantics); a caller that needs an answer
 * times out and retries. */
TKV_MUST_USE int raft_node_propose(raft_node *n, const void *data, size_t len, const void *context,
                                   size_t context_len);
/* Proposes a membership change; the leader accepts one at a time (a second one while the
 * first is not yet applied fails with TKV_EBUSY). Errors: as raft_node_propose, TKV_EBUSY,
 * TKV_ETOOLARGE (the change would pass RAFT_MAX_MEMBERS). */
TKV_MUST_USE int raft_node_propose_conf_change(raft_node *n, const raft_conf_change *cc);
/* Applies a committed membership change (call it when the entry is applied, on every node;
 * allowed while a Ready is outstanding) and writes the resulting members to @cs (may be
 * NULL). Adding an existing voter, removing a non-member, or adding a voter back as a learner
 * are no-ops. A leader that removes itself steps down.
 * Errors: TKV_ETOOLARGE (more than RAFT_MAX_MEMBERS), -ENOMEM (nothing changed either way). */
TKV_MUST_USE int raft_node_apply_conf_change(raft_node *n, const raft_conf_change *cc,
                                             raft_conf_state *cs);
/* Requests a linearizable read point tagged with @ctx (unique per request, copied). The
 * answer arrives as a raft_read_state in a later Ready, or never (leader change, lost
 * message): callers time out and retry. Errors: TKV_EDROPPED (no leader known), TKV_EBUSY,
 * -ENOMEM. */
TKV_MUST_USE int raft_node_read_index(raft_node *n, const void *ctx, size_t len);
/* Asks the leader to hand leadership to @transferee (Raft thesis 3.10): it brings the
 * transferee's log up to date, then sends it MsgTimeoutNow. Proposals are dropped meanwhile;
 * the transfer is abandoned after an election timeout. On a follower only @transferee equal
 * to this node is possible (forwarded to the leader). Errors: TKV_EBUSY, TKV_EDROPPED (no
 * leader known), TKV_ENOTLEADER (a follower asked to transfer to a third node). */
TKV_MUST_USE int raft_node_transfer_leader(raft_node *n, uint64_t transferee);
/* Tells the leader that the last message to @id could not be delivered (MsgUnreachable): it
 * goes back to probing that follower. Errors: TKV_EBUSY. */
TKV_MUST_USE int raft_node_report_unreachable(raft_node *n, uint64_t id);
/* Tells the leader whether sending a snapshot to @id succeeded (MsgSnapStatus).
 * Errors: TKV_EBUSY. */
TKV_MUST_USE int raft_node_report_snapshot(raft_node *n, uint64_t id, bool failed);

/* Returns true when raft_node_ready() has something for the caller. */
bool raft_node_has_ready(const raft_node *n);
/* Collects the pending work into *out (owned by the node, valid until raft_node_advance()).
 * Errors: TKV_EBUSY (a Ready is already outstanding), -ENOMEM or a storage error while
 * reading committed entries (nothing was handed out; try again later). */
TKV_MUST_USE int raft_node_ready(raft_node *n, raft_ready **out);
/* Declares the outstanding Ready done: entries and snapshot persisted, committed entries
 * applied, messages sent. Frees the Ready; a leader now counts its own persisted entries
 * toward commit (thesis 10.2.1). Errors: TKV_EBUSY (no Ready outstanding). */
TKV_MUST_USE int raft_node_advance(raft_node *n);

/* Fills @st with the node's state. */
void raft_node_status(const raft_node *n, raft_status *st);
/* Returns the node's id. */
uint64_t raft_node_id(const raft_node *n);
/* Returns the node's role. */
raft_state_type raft_node_state(const raft_node *n);
/* Returns the leader this node knows of (RAFT_NONE if none). */
uint64_t raft_node_leader(const raft_node *n);
/* Returns the node's current term. */
uint64_t raft_node_term(const raft_node *n);

/* The leader's view of one member's replication (etcd Progress), for raftstore's log
 * compaction (the index every member has) and its pending-peer report to PD. */
typedef enum raft_progress_state {
    RAFT_PROGRESS_PROBE = 0,     /* finding the match point, one append at a time */
    RAFT_PROGRESS_REPLICATE = 1, /* streaming appends */
    RAFT_PROGRESS_SNAPSHOT = 2,  /* waiting for a snapshot to be installed */
} raft_progress_state;

typedef struct raft_progress_info {
    uint64_t id;
    uint64_t match; /* highest index known to be in the member's log */
    uint64_t next;  /* next index to send */
    raft_progress_state state;
    bool is_learner;
} raft_progress_info;

/* Fills @out[0..n) with the progress of every member (the leader included) and returns n
 * (at most RAFT_MAX_MEMBERS), or 0 when this node is not the leader. */
size_t raft_node_progress(const raft_node *n, raft_progress_info out[RAFT_MAX_MEMBERS]);

/* Leader lease (Raft thesis 6.4.1), what raftstore needs to serve reads without a log write.
 * A leader stamps each heartbeat with its tick count; followers echo the stamp. The quorum
 * acknowledgement tick is the newest stamp that a quorum of voters (the leader counting as
 * "now") has echoed in the current term. No other leader can be elected before that tick plus
 * election_tick, because with check_quorum voters refuse to vote for election_tick ticks after
 * hearing from the leader (also after a restart). Returns 0 when not leader. */
uint64_t raft_node_quorum_ack_tick(const raft_node *n);
/* Returns true when this node is leader with a valid lease: check_quorum is on, it has
 * committed an entry of its term, no transfer has sent MsgTimeoutNow this term, and
 * ticks < quorum_ack_tick + election_tick - 1 (one tick of margin for clock skew). */
bool raft_node_lease_valid(const raft_node *n);

#endif /* TKV_RAFT_H */
