/*
 * raft_test_net.h: a small in-memory cluster for the Raft unit tests (etcd's raft_test.go
 * "network"): nodes over raft_mem_storage, a FIFO of messages, cut links, crash and restart.
 * Every Ready is handled the way raftstore will: send messages, persist, send persisted
 * messages, apply, advance. Single-threaded; everything it allocates is released by
 * tn_free().
 */
#ifndef TKV_RAFT_TEST_NET_H
#define TKV_RAFT_TEST_NET_H

#include "base/base.h"
#include "raft/raft.h"

#define TN_MAX 8

typedef struct tn_node {
    uint64_t id;
    bool present; /* slot in use */
    bool down;    /* crashed: storage kept, node gone */
    raft_node *r;
    raft_mem_storage *st;
    raft_config cfg;
    raft_entry_vec applied; /* normal entries with data, in apply order */
    uint64_t applied_index;
    raft_read_state reads[64]; /* request_ctx unused (NULL); index and first ctx byte */
    uint8_t read_ctx[64];
    size_t n_reads;
    raft_conf_state conf; /* after the last applied conf change */
} tn_node;

typedef void (*tn_tweak_fn)(raft_config *cfg, void *arg);

typedef struct tn_net {
    tn_node nodes[TN_MAX + 1]; /* by id, 1..TN_MAX */
    raft_message *queue;
    size_t qlen, qcap;
    bool cut[TN_MAX + 1][TN_MAX + 1]; /* cut[from][to] */
    bool drop_type[RAFT_MSG_TYPE_COUNT];
    size_t delivered[RAFT_MSG_TYPE_COUNT];
    /* Sees every message once its fate is known (the scenario runner prints them). */
    void (*observe)(const raft_message *m, bool delivered, void *arg);
    void *observe_arg;
    /* Sees every message about to be delivered; returning false drops it. */
    bool (*filter)(const raft_message *m, void *arg);
    void *filter_arg;
    tn_tweak_fn tweak;
    void *tweak_arg;
    tkv_buf trace; /* tracer lines, '\n'-separated */
    bool tracing;
} tn_net;

/* Creates a cluster of voters 1..@n (all present), each configured by raft_config_default,
 * election_tick 10, heartbeat_tick 1, then @tweak (may be NULL). */
tn_net *tn_new(size_t n, tn_tweak_fn tweak, void *arg);
void tn_free(tn_net *net);
/* Adds node @id with an empty storage and @cs as its initial members (NULL: none, to join). */
void tn_add(tn_net *net, uint64_t id, const raft_conf_state *cs);
raft_node *tn_r(tn_net *net, uint64_t id);
/* Handles every Ready and delivers every message until the cluster is quiet. */
void tn_flush(tn_net *net);
/* Handles the Readies of one node only (messages queue up, nothing is delivered). */
void tn_ready(tn_net *net, uint64_t id);
/* Handles @rd, a Ready the test took from node @id itself: send, persist, apply, advance. */
void tn_handle_ready(tn_net *net, uint64_t id, raft_ready *rd);
/* Delivers the queued messages once (no Ready handling). */
void tn_deliver(tn_net *net);
/* Ticks node @id @k times, flushing after each tick. */
void tn_tick(tn_net *net, uint64_t id, int k);
/* Ticks every live node @k times, flushing after each round. */
void tn_tick_all(tn_net *net, int k);
/* Makes @id campaign and flushes. */
void tn_campaign(tn_net *net, uint64_t id);
/* Proposes the string @s at @id, flushes, returns the propose result. */
int tn_propose(tn_net *net, uint64_t id, const char *s);
/* Cuts both directions between @a and @b (or restores them). */
void tn_cut(tn_net *net, uint64_t a, uint64_t b, bool cut);
/* Cuts @id from everyone (or restores). */
void tn_isolate(tn_net *net, uint64_t id, bool cut);
void tn_heal(tn_net *net);
/* Crashes @id (drops the node; its storage survives) and restarts it from storage. */
void tn_crash(tn_net *net, uint64_t id);
void tn_restart(tn_net *net, uint64_t id);
/* Returns the number of entries @id applied whose data equals @s. */
size_t tn_applied_count(tn_net *net, uint64_t id, const char *s);
/* Returns the term of entry @i in @id's storage (0 if absent). */
uint64_t tn_stored_term(tn_net *net, uint64_t id, uint64_t i);
/* Returns true when a captured trace line contains @needle. */
bool tn_traced(tn_net *net, const char *needle);
/* Returns the live leader with the highest term, or RAFT_NONE. */
uint64_t tn_leader(tn_net *net);
/* Ticks every node until a leader appears (fails the test after 100 ticks); returns it. */
uint64_t tn_elect_by_ticks(tn_net *net);
/* Replaces @id's log after the bootstrap snapshot (index 1, term 1) by entries 2..@n+1 with
 * @terms (data "x") and sets its term to @term,
 * restarting the node around the change. */
void tn_write_log(tn_net *net, uint64_t id, const uint64_t *terms, size_t n, uint64_t term);
/* Steps @m into node @to (no flush); fails the test unless the step returns 0. */
void tn_step(tn_net *net, uint64_t to, const raft_message *m);

#endif /* TKV_RAFT_TEST_NET_H */
