/*
 * lock_manager.h: waiting for pessimistic locks and detecting deadlocks (TiKV's
 * lock_manager: WaiterManager + Detector).
 *
 * Owns: the waiters (requests blocked on another transaction's lock, each with a deadline),
 * a timer thread that ends waits at their deadline, and a deadlock detector behind an
 * interface.
 * Waiting: a pessimistic lock request that meets another transaction's lock (lock_ts on the
 * key with hash key_hash) registers a waiter and gives up its latch. The wait ends exactly
 * once, through its callback:
 *   - WOKEN: the lock was released (commit or rollback): the oldest waiter for that key is
 *     told at once (TiKV answers it with a WriteConflict, PessimisticRetry), later waiters for
 *     the same key have their deadline cut to TXN_WAKE_UP_DELAY_MS so they retry after it;
 *   - TIMEOUT: the deadline passed (the request answers with the original KeyIsLocked);
 *   - DEADLOCK: waiting would close a cycle in the wait-for graph (answered with the
 *     `deadlock` KeyError).
 * Deadlock detection: every new wait edge (txn_ts waits for lock_ts on key_hash) goes to a
 * txn_detector; edges go away when a wait ends, and all edges of a transaction when its
 * locks are released. The detector is an interface because TiKV runs one detector per
 * cluster (on the leader of the first region, other stores send edges to it over gRPC);
 * txn_detector_local_new is the per-store implementation used until that exists. A remote
 * detector reports deadlocks later, from any thread, through txn_lock_mgr_on_deadlock.
 * Threads: thread-safe. Callbacks run on the timer thread, on the thread that calls
 * txn_lock_mgr_wake_up / txn_lock_mgr_on_deadlock, or on the thread registering the wait
 * (an immediate deadlock); never under the manager's mutex. They must not block.
 * Errors: -ENOMEM, -errno from pthread.
 * Dependencies: base.
 */
#ifndef TKV_STORAGE_LOCK_MANAGER_H
#define TKV_STORAGE_LOCK_MANAGER_H

#include "base/base.h"

/* How long later waiters for a released key keep waiting (TiKV's wake-up-delay-duration). */
#define TXN_WAKE_UP_DELAY_MS 20
/* The server default for wait_timeout = 0 and the ceiling for others
 * (pessimistic-txn.wait-for-lock-timeout). */
#define TXN_DEFAULT_WAIT_TIMEOUT_MS 1000

typedef struct txn_lock_mgr txn_lock_mgr;

typedef enum txn_wait_outcome {
    TXN_WAIT_WOKEN = 0,
    TXN_WAIT_TIMEOUT = 1,
    TXN_WAIT_DEADLOCK = 2,
} txn_wait_outcome;

/* Ends a wait. @commit_ts: for WOKEN, the commit_ts of the releasing transaction (0 for a
 * rollback). @deadlock_key_hash: for DEADLOCK, the key hash of the wait that closes the
 * cycle. */
typedef void (*txn_wait_cb)(void *ud, txn_wait_outcome outcome, uint64_t commit_ts,
                            uint64_t deadlock_key_hash);

/* ---- the detector interface ------------------------------------------------------------- */

typedef struct txn_detector_ops {
    /* Adds the edge txn_ts -> lock_ts (waiting for key_hash), unless it closes a cycle; a
     * cycle is reported with txn_lock_mgr_on_deadlock(@lm, ...) (now or later). */
    void (*detect)(void *impl, txn_lock_mgr *lm, uint64_t txn_ts, uint64_t lock_ts,
                   uint64_t key_hash);
    /* Removes the edge txn_ts -> lock_ts for key_hash. */
    void (*clean_up_wait_for)(void *impl, uint64_t txn_ts, uint64_t lock_ts, uint64_t key_hash);
    /* Removes every edge from txn_ts (it no longer waits: it committed or rolled back). */
    void (*clean_up)(void *impl, uint64_t txn_ts);
    void (*free)(void *impl);
} txn_detector_ops;

typedef struct txn_detector {
    const txn_detector_ops *ops;
    void *impl;
} txn_detector;

/* Creates the per-store detector: a wait-for graph (below) searched for a path back to the
 * waiting transaction on every new edge. Errors: -ENOMEM. */
TKV_MUST_USE int txn_detector_local_new(txn_detector **out);

/* ---- the wait-for graph ------------------------------------------------------------------ */

/* TiKV's DetectTable: nodes are transactions (start_ts), an edge says "txn_ts waits for
 * lock_ts on the key with hash key_hash". A new edge that has a path back to its waiter closes
 * a cycle: it is not added and the deadlock is reported with the key hash of the path's last
 * edge (the one that waits for the new waiter). Edges older than the graph's TTL are dropped
 * (a store that crashed never cleans its edges up). Used by the per-store detector and by
 * tikv-server's cluster-wide detector (src/server/deadlock.c), which feeds it the edges of
 * every store. Thread-safe. */
typedef struct txn_wait_graph txn_wait_graph;

/* One edge, as listed by txn_wait_graph_edges. */
typedef struct txn_wait_edge {
    uint64_t txn_ts, lock_ts, key_hash;
    uint64_t since_ms; /* when it was added (the graph's clock) */
} txn_wait_edge;

/* TiKV's detect table TTL. */
#define TXN_WAIT_GRAPH_TTL_MS 3000

/* Creates a graph whose edges live @ttl_ms (0: forever), timed by @now_ms(@clock_arg)
 * (NULL: tkv_clock_mono_ms). Errors: -ENOMEM. */
TKV_MUST_USE int txn_wait_graph_new(uint64_t ttl_ms, uint64_t (*now_ms)(void *), void *clock_arg,
                                    txn_wait_graph **out);
/* Releases @g. NULL is a no-op. */
void txn_wait_graph_free(txn_wait_graph *g);
/* Adds the edge txn_ts -> lock_ts (key_hash) unless it closes a cycle. Returns true for a
 * deadlock, with *@deadlock_key_hash set (the edge is then not added). An edge that is
 * already there is refreshed. Out of memory leaves the edge out (the wait still times out). */
bool txn_wait_graph_detect(txn_wait_graph *g, uint64_t txn_ts, uint64_t lock_ts, uint64_t key_hash,
                           uint64_t *deadlock_key_hash);
/* Removes the edge txn_ts -> lock_ts for key_hash. */
void txn_wait_graph_clean_up_wait_for(txn_wait_graph *g, uint64_t txn_ts, uint64_t lock_ts,
                                      uint64_t key_hash);
/* Removes every edge from txn_ts. */
void txn_wait_graph_clean_up(txn_wait_graph *g, uint64_t txn_ts);
/* Removes every edge (the detector lost its role). */
void txn_wait_graph_clear(txn_wait_graph *g);
/* Copies up to @cap live edges into @out and returns how many there are. */
size_t txn_wait_graph_edges(txn_wait_graph *g, txn_wait_edge *out, size_t cap);

/* Releases @d. NULL is a no-op. */
void txn_detector_free(txn_detector *d);

/* ---- the manager ------------------------------------------------------------------------ */

/* Creates a manager that owns @d (NULL: a local detector) and starts its timer thread.
 * @default_timeout_ms caps every wait (0: TXN_DEFAULT_WAIT_TIMEOUT_MS).
 * Errors: -ENOMEM, -errno. On failure @d is freed. */
TKV_MUST_USE int txn_lock_mgr_new(txn_detector *d, uint64_t default_timeout_ms, txn_lock_mgr **out);

/* Ends every wait with TIMEOUT, stops the timer thread and frees @lm. NULL is a no-op. */
void txn_lock_mgr_free(txn_lock_mgr *lm);

/* Returns the wait for a request's wait_timeout: 0 = do not wait (negative), else the
 * server default for 0, else min(wait_timeout, default). */
uint64_t txn_lock_mgr_wait_ms(const txn_lock_mgr *lm, int64_t wait_timeout);

/* Registers a wait of transaction @start_ts for lock @lock_ts on the key with hash
 * @key_hash, for @timeout_ms. @cb(@ud, ...) runs exactly once (possibly before this
 * returns, with DEADLOCK). Errors: -ENOMEM (@cb never runs). */
TKV_MUST_USE int txn_lock_mgr_wait_for(txn_lock_mgr *lm, uint64_t start_ts, uint64_t lock_ts,
                                       uint64_t key_hash, uint64_t timeout_ms, txn_wait_cb cb,
                                       void *ud);

/* Tells the manager that transaction @lock_ts released its locks on the keys with hashes
 * @hashes[0..n) (committed at @commit_ts, or rolled back with 0). A pessimistic transaction
 * (@pessimistic_txn: only those ever wait) also has its wait-for edges removed from the
 * detector, as TiKV does. */
void txn_lock_mgr_wake_up(txn_lock_mgr *lm, uint64_t lock_ts, const uint64_t *hashes, size_t n,
                          uint64_t commit_ts, bool pessimistic_txn);

/* Ends the wait of @txn_ts for (@lock_ts, @key_hash) with DEADLOCK (the detector's report).
 * A wait that already ended is ignored. */
void txn_lock_mgr_on_deadlock(txn_lock_mgr *lm, uint64_t txn_ts, uint64_t lock_ts,
                              uint64_t key_hash, uint64_t deadlock_key_hash);

/* Returns the number of waits in progress. */
size_t txn_lock_mgr_waiter_count(txn_lock_mgr *lm);

/* Replaces the manager's detector with @d (owned from now on; the old one is freed). Call
 * before any wait is registered (tikv-server installs its cluster-wide detector at start). */
void txn_lock_mgr_set_detector(txn_lock_mgr *lm, txn_detector *d);

#endif /* TKV_STORAGE_LOCK_MANAGER_H */
