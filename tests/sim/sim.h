/*
 * sim.h: the deterministic Raft simulator (CONVENTIONS 9): clusters of raft_nodes over
 * simulated disks and a simulated network, driven entirely by one seeded PRNG, with the Raft
 * safety properties checked after every step and liveness checked once faults heal.
 *
 * Owns: everything of one run (nodes, disks, network, clients, checker state); sim_run()
 * releases it all. Threads: none. Errors: a run fails with a reason string; nothing else
 * fails (allocation failure aborts the program: this is a test tool).
 *
 * Files: sim_main.c (command line), sim_world.c (nodes, network, faults, the step loop),
 * sim_kv.c (the key-value state machine and its clients), sim_check.c (the checker).
 */
#ifndef TKV_SIM_H
#define TKV_SIM_H

#include "base/base.h"
#include "raft/raft.h"

#define SIM_MAX_IDS   48 /* node ids 1..SIM_MAX_IDS-1 */
#define SIM_KEYS      6
#define SIM_TRACE_CAP 20000

typedef struct sim_opts {
    uint64_t seed;
    int nodes; /* 3 or 5 */
    int steps; /* chaos steps before healing */
    bool trace;
} sim_opts;

/* ---- the key-value state machine (sim_kv.c) ---------------------------------------- */

typedef struct sim_cell {
    uint64_t value; /* id of the write that stored it (0: never written) */
    uint64_t index; /* log index of that write */
} sim_cell;

typedef struct sim_sm {
    sim_cell kv[SIM_KEYS];
    uint64_t applied;
    raft_conf_state conf;
    uint8_t *done; /* done[w] != 0: write w applied (exactly once) */
    size_t done_cap;
} sim_sm;

typedef struct sim_write {
    uint64_t id;
    int key;
    bool acked;
    uint64_t index;      /* log index where it was first applied */
    uint64_t next_retry; /* tick of the next re-proposal */
} sim_write;

typedef struct sim_read {
    uint64_t id;
    int key;
    uint64_t node;
    uint32_t incarnation;
    uint64_t min_index; /* log index of the newest write to key acked before the read */
    uint64_t index;     /* read index once answered (0: not yet) */
    bool done;
} sim_read;

/* ---- nodes ------------------------------------------------------------------------- */

typedef enum sim_status {
    SIM_UNUSED = 0,
    SIM_UP,
    SIM_CRASHED,
    SIM_DESTROYED,
} sim_status;

typedef struct sim_node {
    uint64_t id;
    sim_status status;
    uint32_t incarnation;
    raft_node *r;
    raft_mem_storage *disk;     /* what survives a crash (plus durable_hs) */
    raft_hard_state durable_hs; /* the hard state as of the last fsync */
    sim_sm sm;
    /* Mirror of the persisted log for the checker: prefix hashes by index. */
    uint64_t *mp;
    size_t mp_cap;
    uint64_t mp_first;               /* lowest index whose prefix hash is known */
    uint64_t mp_last;                /* last persisted index */
    uint64_t last_commit;            /* reported commit in this incarnation */
    uint64_t lead_term;              /* term in which we last saw it lead */
    uint64_t lead_last;              /* its last index then */
    uint64_t resp_tick[SIM_MAX_IDS]; /* when it last heard a peer's answer as leader */
    bool counted[SIM_MAX_IDS];       /* peers seen as voters during this leadership */
    uint64_t voters_sig;             /* the voter set last seen, and since when */
    uint64_t voters_since;
    bool destroy_pending;
} sim_node;

typedef struct sim_msg {
    uint64_t at; /* deliverable from this tick on */
    raft_message m;
} sim_msg;

/* Open-addressing map from (index, term) to the prefix hash of the log ending there. */
typedef struct sim_reg {
    uint64_t *keys_i, *keys_t, *vals;
    size_t cap, n;
} sim_reg;

typedef struct sim {
    sim_opts o;
    tkv_rng rng;
    raft_config base_cfg;
    sim_node nodes[SIM_MAX_IDS];
    uint64_t next_id;
    sim_msg *net; /* net[0 .. n_due) are due (at <= now), the rest later */
    size_t n_net, n_due, cap_net;
    bool cut[SIM_MAX_IDS][SIM_MAX_IDS];
    bool slow[SIM_MAX_IDS][SIM_MAX_IDS]; /* congested links: long delays */
    unsigned drop_pct, dup_pct;
    uint64_t now; /* ticks */
    bool healing;
    bool churn;                /* the "churn" profile: see sim_world.c */
    uint64_t pending_cc_until; /* no new conf change before this tick */
    /* Clients. */
    sim_write *writes;
    size_t n_writes, cap_writes;
    sim_read *reads;
    size_t n_reads, cap_reads;
    uint64_t key_acked_index[SIM_KEYS];
    /* Checker. */
    sim_reg reg;
    uint64_t *cp; /* committed prefix hash by index, for index <= committed */
    size_t cp_cap;
    uint64_t committed;
    uint64_t *best_commit; /* by term: highest commit index a node reported in that term */
    uint64_t *leader_of;   /* by term */
    size_t terms_cap;
    uint64_t *ah; /* applied entry hash by index */
    size_t ah_cap;
    uint64_t max_applied;
    /* Outcome. */
    bool failed;
    char why[512];
    /* Statistics for the summary. */
    uint64_t n_acked, n_reads_done, n_crashes, n_snapshots, n_conf_changes, n_transfers;
} sim;

/* Runs one seed; returns true when every check passed, else false with s->why set. The
 * caller owns @s only for reading the outcome; sim_run releases everything else. */
bool sim_run(const sim_opts *o, sim *s);

/* Trace ring (sim_world.c): the last lines of a traced run. */
void sim_trace(sim *s, const char *fmt, ...) TKV_PRINTF(2, 3);
void sim_trace_dump(int max_lines);
void sim_trace_reset(void);

/* sim_world.c helpers used by the other files. */
void sim_fail(sim *s, const char *fmt, ...) TKV_PRINTF(2, 3);
void *sim_xrealloc(void *p, size_t n);
/* Appends a zeroed element of @elem bytes to the array *@arr (a T **) and returns it. */
void *sim_push(void *arr, size_t *len, size_t *cap, size_t elem);
sim_node *sim_leader(sim *s);

/* sim_kv.c */
void sim_sm_init(sim_sm *sm);
void sim_sm_deinit(sim_sm *sm);
void sim_sm_restore(sim *s, sim_node *n, const raft_snapshot *snap);
void sim_sm_snapshot_data(const sim_sm *sm, tkv_buf *out);
void sim_apply_entry(sim *s, sim_node *n, const raft_entry *e);
void sim_client_write(sim *s);
void sim_client_retry(sim *s, bool all_due_to_leader);
void sim_client_read(sim *s);
void sim_read_states(sim *s, sim_node *n, const raft_read_state *rs, size_t count);
void sim_reads_progress(sim *s, sim_node *n);
size_t sim_pending_writes(const sim *s);

/* sim_check.c */
void sim_check_init(sim *s);
void sim_check_deinit(sim *s);
void sim_mirror_init(sim *s, sim_node *n);
void sim_check_snapshot(sim *s, sim_node *n, const raft_snapshot *snap);
void sim_check_entries(sim *s, sim_node *n, const raft_entry *ents, size_t count, bool leader);
void sim_check_commit(sim *s, sim_node *n, const raft_hard_state *hs);
void sim_check_apply(sim *s, sim_node *n, const raft_entry *e);
void sim_check_step(sim *s);
void sim_note_response(sim *s, const raft_message *m);
uint64_t sim_hash_bytes(const void *p, size_t len);

#endif /* TKV_SIM_H */
