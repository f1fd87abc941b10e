/*
 * raft_int.h: internals shared by the files of src/raft/. Not API: raftstore uses raft.h.
 *
 * Files, one concept each:
 *   raft_types.c       entries, snapshots, messages, conf changes (wire encoding), names
 *   raft_log.c         the log: storage plus the unstable tail, commit and apply marks
 *   raft_progress.c    per-peer replication progress, in-flight window, quorum arithmetic
 *   raft_election.c    roles, terms, campaigns, votes and pre-votes, ticks
 *   raft_replication.c appends, heartbeats, snapshots, their responses, commit
 *   raft_read_only.c   read index (safe and lease-based) and the leader lease
 *   raft_membership.c  conf changes and leadership transfer
 *   raft_step.c        message dispatch: the term rules and each role's handler
 *   raft_node.c        the public node: construction, proposals, Ready / advance
 *   storage_mem.c      raft_mem_storage
 */
#ifndef TKV_RAFT_INT_H
#define TKV_RAFT_INT_H

#include "raft/raft.h"

/* ---- mutation switches ---------------------------------------------------------------
 * Each disables one safety rule so the simulator can show it catches the bug. Off unless the
 * build sets TKV_RAFT_MUTATION (src/raft/CMakeLists.txt); never on in a shipped build. */
#ifndef TKV_RAFT_MUTATION_COMMIT_OLD_TERM
#define TKV_RAFT_MUTATION_COMMIT_OLD_TERM 0
#endif
#ifndef TKV_RAFT_MUTATION_NO_UPTODATE_CHECK
#define TKV_RAFT_MUTATION_NO_UPTODATE_CHECK 0
#endif
#ifndef TKV_RAFT_MUTATION_NO_CHECKQUORUM_STEPDOWN
#define TKV_RAFT_MUTATION_NO_CHECKQUORUM_STEPDOWN 0
#endif

/* ---- the log (raft_log.c) ------------------------------------------------------------ */

/* Entries and snapshot the caller has not persisted yet (etcd "unstable"). */
typedef struct raft__unstable {
    raft_snapshot *snapshot; /* owned, NULL if none */
    raft_entry *ents;        /* owned; ents[i].index == offset + i */
    size_t n;
    size_t cap;
    uint64_t offset;
} raft__unstable;

typedef struct raft__log {
    raft_storage storage;
    raft__unstable u;
    uint64_t committed; /* highest index known committed */
    uint64_t applied;   /* highest index handed out for applying */
    uint64_t max_committed_size_per_ready;
} raft__log;

int raft__log_init(raft__log *l, const raft_storage *storage, uint64_t max_committed_size);
void raft__log_deinit(raft__log *l);
uint64_t raft__log_first_index(const raft__log *l);
uint64_t raft__log_last_index(const raft__log *l);
/* The last index that is durable and part of this log (the storage may still hold a
 * conflicting tail that the unstable part replaces). */
uint64_t raft__log_persisted_index(const raft__log *l);
/* Term of @i: 0 with rc 0 when i is past the last index. Errors: TKV_ECOMPACTED,
 * TKV_EUNAVAILABLE, storage errors. */
int raft__log_term(const raft__log *l, uint64_t i, uint64_t *term);
/* Term of @i, or 0 on any error (for comparisons where "unknown" means "no match"). */
uint64_t raft__log_term_or_zero(const raft__log *l, uint64_t i);
uint64_t raft__log_last_term(const raft__log *l);
bool raft__log_match_term(const raft__log *l, uint64_t i, uint64_t term);
/* Raft paper 5.4.1: is (last_term, last_index) at least as up to date as our log? */
bool raft__log_is_up_to_date(const raft__log *l, uint64_t last_index, uint64_t last_term);
/* Appends deep copies of entries [lo, hi) to @out, limited to @max_bytes (at least one).
 * Errors: TKV_ECOMPACTED, TKV_EUNAVAILABLE, -ENOMEM, storage errors. */
int raft__log_slice(const raft__log *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                    raft_entry_vec *out);
/* Appends copies of @n entries to the unstable tail, truncating it at ents[0].index.
 * Atomic: -ENOMEM leaves the log unchanged. */
int raft__log_append(raft__log *l, const raft_entry *ents, size_t n);
/* Returns the first index of @ents whose term conflicts with the log, or 0. */
uint64_t raft__log_find_conflict(const raft__log *l, const raft_entry *ents, size_t n);
/* Largest index <= @index whose term is <= @term (fast log backtracking, thesis 5.3). */
uint64_t raft__log_find_conflict_by_term(const raft__log *l, uint64_t index, uint64_t term);
/* Raft paper 5.3 receiver rules: on a match at (index, log_term), appends the new part of
 * @ents, commits up to min(commit, last new) and sets *last_new. Returns 0 with *ok false
 * on a mismatch. Errors: TKV_ECORRUPT (would truncate committed entries), -ENOMEM. */
int raft__log_maybe_append(raft__log *l, uint64_t index, uint64_t log_term, uint64_t commit,
                           const raft_entry *ents, size_t n, bool *ok, uint64_t *last_new);
void raft__log_commit_to(raft__log *l, uint64_t commit);
/* Commits @max_index if it is newer and has term @term. */
bool raft__log_maybe_commit(raft__log *l, uint64_t max_index, uint64_t term);
void raft__log_applied_to(raft__log *l, uint64_t i);
/* Installs a snapshot as the unstable state (entries dropped). -ENOMEM: unchanged. */
int raft__log_restore(raft__log *l, const raft_snapshot *s);
/* Forgets unstable entries up to (i, t) once the caller persisted them. */
void raft__log_stable_to(raft__log *l, uint64_t i, uint64_t t);
void raft__log_stable_snap_to(raft__log *l, uint64_t i);
/* Index after which committed entries are not yet handed out, and whether any are waiting. */
bool raft__log_has_next_committed(const raft__log *l);
/* Appends copies of the committed, not yet applied entries (bounded by the Ready limit). */
int raft__log_next_committed(const raft__log *l, raft_entry_vec *out);
/* The current snapshot: unstable one, else the storage's. Errors as storage.snapshot. */
int raft__log_snapshot(const raft__log *l, uint64_t request_index, raft_snapshot *out);

/* ---- progress and quorum (raft_progress.c) -------------------------------------------- */

typedef enum raft__pr_state {
    RAFT__PR_PROBE = 0,     /* one append at a time until we find the match point */
    RAFT__PR_REPLICATE = 1, /* streaming appends, bounded by the in-flight window */
    RAFT__PR_SNAPSHOT = 2,  /* waiting for a snapshot to be installed */
} raft__pr_state;

/* A ring of the last index of each append in flight (etcd tracker.Inflights). */
typedef struct raft__inflights {
    uint64_t *buf;
    size_t cap;
    size_t start;
    size_t count;
} raft__inflights;

typedef struct raft__progress {
    uint64_t id;
    bool is_learner;
    uint64_t match;
    uint64_t next;
    raft__pr_state state;
    bool probe_sent;           /* probe state: one append sent, wait for its answer */
    uint64_t pending_snapshot; /* snapshot state: index of the snapshot sent */
    bool recent_active;        /* heard from since the last check-quorum round */
    uint64_t lease_ack_tick;   /* newest heartbeat stamp echoed this term */
    int8_t vote;               /* election tally: 0 none, 1 granted, -1 rejected */
    raft__inflights ins;
} raft__progress;

typedef struct raft__tracker {
    raft__progress prs[RAFT_MAX_MEMBERS];
    size_t n;
    size_t max_inflight;
} raft__tracker;

int raft__inflights_init(raft__inflights *in, size_t cap);
void raft__inflights_deinit(raft__inflights *in);
bool raft__inflights_full(const raft__inflights *in);
void raft__inflights_add(raft__inflights *in, uint64_t last);
void raft__inflights_free_to(raft__inflights *in, uint64_t to);
void raft__inflights_reset(raft__inflights *in);

void raft__progress_become_probe(raft__progress *pr);
void raft__progress_become_replicate(raft__progress *pr);
void raft__progress_become_snapshot(raft__progress *pr, uint64_t snapshot_index);
bool raft__progress_maybe_update(raft__progress *pr, uint64_t n);
bool raft__progress_maybe_decr_to(raft__progress *pr, uint64_t rejected, uint64_t match_hint);
bool raft__progress_is_paused(const raft__progress *pr);

void raft__tracker_init(raft__tracker *t, size_t max_inflight);
void raft__tracker_deinit(raft__tracker *t);
raft__progress *raft__tracker_get(raft__tracker *t, uint64_t id);
/* Adds a member (-ENOMEM, TKV_ETOOLARGE: unchanged). */
int raft__tracker_add(raft__tracker *t, uint64_t id, bool learner, uint64_t next);
void raft__tracker_remove(raft__tracker *t, uint64_t id);
size_t raft__tracker_voter_count(const raft__tracker *t);
bool raft__tracker_is_voter(raft__tracker *t, uint64_t id);
void raft__tracker_conf_state(const raft__tracker *t, raft_conf_state *cs);
/* Largest index a quorum of voters has matched (Raft paper 5.3-5.4). */
uint64_t raft__tracker_committed(const raft__tracker *t);
/* Largest lease stamp a quorum of voters has echoed, counting @self as @now. */
uint64_t raft__tracker_quorum_ack(const raft__tracker *t, uint64_t self, uint64_t now);
/* Election tally: 1 won, -1 lost, 0 pending. */
int raft__tracker_tally(const raft__tracker *t);
void raft__tracker_reset_votes(raft__tracker *t);
bool raft__tracker_quorum_active(const raft__tracker *t, uint64_t self);

/* ---- read index (raft_read_only.c) ---------------------------------------------------- */

typedef struct raft__read_req {
    uint64_t index; /* commit index when the request arrived */
    uint64_t from;  /* the requesting node (this node for local requests) */
    uint8_t *ctx;   /* owned */
    size_t ctx_len;
    uint64_t acks[RAFT_MAX_MEMBERS];
    size_t n_acks;
} raft__read_req;

typedef struct raft__read_only {
    raft__read_req *reqs; /* in arrival order */
    size_t n;
    size_t cap;
} raft__read_only;

/* ---- the node -------------------------------------------------------------------------- */

typedef struct raft__msg_vec {
    raft_message *items;
    size_t len;
    size_t cap;
} raft__msg_vec;

typedef struct raft__read_state_vec {
    raft_read_state *items;
    size_t len;
    size_t cap;
} raft__read_state_vec;

typedef enum raft__campaign_type {
    RAFT__CAMPAIGN_PRE_ELECTION,
    RAFT__CAMPAIGN_ELECTION,
    RAFT__CAMPAIGN_TRANSFER,
} raft__campaign_type;

struct raft_node {
    uint64_t id;
    raft_config cfg;
    tkv_rng rng;

    uint64_t term;
    uint64_t vote;
    raft_state_type state;
    uint64_t lead;
    uint64_t lead_transferee;
    uint64_t transfer_start; /* ticks when the transfer began */
    bool timeout_now_sent;   /* this term: no lease reads, a transfer may elect another */
    bool startup_lease;      /* act as if we just heard from a leader (lease, see raft.h) */
    uint64_t pending_conf_index;
    uint64_t uncommitted_size; /* leader: proposal bytes appended in this term, not committed */

    raft__log log;
    raft__tracker trk;
    raft__read_only ro;
    raft__msg_vec pending_read_msgs; /* read requests waiting for a commit in this term */

    int election_elapsed;
    int heartbeat_elapsed;
    int randomized_election_timeout;
    uint64_t ticks;

    raft__msg_vec msgs;       /* sendable at once */
    raft__msg_vec msgs_after; /* sendable after the next persist */
    raft__read_state_vec read_states;

    /* Ready bookkeeping. */
    raft_soft_state prev_ss;
    raft_hard_state prev_hs; /* as handed out in the last Ready */
    uint64_t persisted_term; /* term of the last hard state the caller persisted */
    bool ready_out;
    raft_ready rd;
    raft_entry_vec rd_committed;
    raft__msg_vec rd_msgs;
    raft__msg_vec rd_msgs_after;
    raft__read_state_vec rd_read_states;
    uint64_t rd_entries_last_index; /* 0 if the Ready had no entries */
    uint64_t rd_entries_last_term;
    uint64_t rd_snapshot_index;
};

/* raft_types.c */
void raft__msg_vec_deinit(raft__msg_vec *v);
void raft__read_state_vec_deinit(raft__read_state_vec *v);
int raft__bytes_dup(const void *p, size_t len, uint8_t **out);
/* Returns a heap array of deep copies of @ents (NULL when out of memory). */
raft_entry *raft__entries_dup(const raft_entry *ents, size_t n);
/* Releases @n owned entries and their array. */
void raft__entries_free(raft_entry *ents, size_t n);
/* Appends copies of @ents to @out while the bytes since index @start (already @size) stay
 * within @max_bytes, but at least one entry after @start. On -ENOMEM @out is truncated back
 * to @start. */
int raft__push_limited(raft_entry_vec *out, size_t start, uint64_t size, const raft_entry *ents,
                       size_t n, uint64_t max_bytes);

/* raft_node.c: tracing and sending. */
void raft__trace(const raft_node *r, const char *fmt, ...) TKV_PRINTF(2, 3);
/* Queues @m (which owns its contents; they are taken even on failure) for sending, stamping
 * term and from. A message that cannot be queued for lack of memory is dropped, as a lossy
 * network would; Raft recovers by retrying. */
void raft__send(raft_node *r, raft_message *m);
bool raft__promotable(raft_node *r);

/* raft_election.c */
void raft__become_follower(raft_node *r, uint64_t term, uint64_t lead);
void raft__become_candidate(raft_node *r);
void raft__become_pre_candidate(raft_node *r);
void raft__become_leader(raft_node *r);
void raft__campaign(raft_node *r, raft__campaign_type t);
void raft__hup(raft_node *r, raft__campaign_type t);
void raft__handle_vote_request(raft_node *r, const raft_message *m);
void raft__handle_vote_response(raft_node *r, const raft_message *m);
bool raft__in_lease(const raft_node *r);
void raft__tick(raft_node *r);
void raft__reset_randomized_timeout(raft_node *r);

/* raft_replication.c */
bool raft__maybe_send_append(raft_node *r, uint64_t to, bool send_if_empty);
void raft__send_append(raft_node *r, uint64_t to);
void raft__bcast_append(raft_node *r);
void raft__bcast_heartbeat(raft_node *r, const uint8_t *ctx, size_t ctx_len);
bool raft__maybe_commit(raft_node *r);
int raft__append_entries(raft_node *r, raft_entry *ents, size_t n);
int raft__handle_append(raft_node *r, const raft_message *m);
void raft__handle_heartbeat(raft_node *r, const raft_message *m);
int raft__handle_snapshot(raft_node *r, const raft_message *m);
void raft__leader_append_response(raft_node *r, raft__progress *pr, const raft_message *m);
void raft__leader_heartbeat_response(raft_node *r, raft__progress *pr, const raft_message *m);
void raft__leader_persisted(raft_node *r);
bool raft__committed_in_current_term(const raft_node *r);

/* raft_read_only.c */
void raft__read_only_init(raft__read_only *ro);
void raft__read_only_deinit(raft__read_only *ro);
void raft__read_only_reset(raft__read_only *ro);
const raft__read_req *raft__read_only_last(const raft__read_only *ro);
int raft__leader_read_index(raft_node *r, const raft_message *m);
void raft__read_only_recv_ack(raft_node *r, uint64_t from, const uint8_t *ctx, size_t len);
void raft__release_pending_read_index(raft_node *r);
void raft__add_read_state(raft_node *r, uint64_t index, const uint8_t *ctx, size_t len);
bool raft__lease_valid(const raft_node *r);

/* raft_membership.c */
void raft__leader_transfer(raft_node *r, const raft_message *m);
void raft__abort_leader_transfer(raft_node *r);
void raft__send_timeout_now(raft_node *r, uint64_t to);
/* Builds a tracker for the members @cs (progress reset to the log's end). */
int raft__tracker_build(raft_node *r, const raft_conf_state *cs, raft__tracker *out);
/* Replaces the node's tracker by @t (moved). */
void raft__tracker_install(raft_node *r, raft__tracker *t);
bool raft__has_unapplied_conf_change(raft_node *r);

/* raft_step.c */
int raft__step(raft_node *r, const raft_message *m);

#endif /* TKV_RAFT_INT_H */
