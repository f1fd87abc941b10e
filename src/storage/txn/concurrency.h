/*
 * concurrency.h: the store's max_ts and in-memory 1PC locks (TiKV's concurrency_manager), the
 * bookkeeping that makes one-phase commit safe.
 *
 * Purpose. A 1PC prewrite commits at a timestamp the store computes, not one from PD. That is
 * only snapshot-isolated if the commit_ts is above every timestamp a reader of those keys
 * has used or is using. So:
 *   - every snapshot read at ts T raises max_ts to >= T before it takes its snapshot
 *     (txn_cm_begin_read);
 *   - a 1PC prewrite, holding the latches of its keys, takes commit_ts = max(max_ts,
 *     start_ts, for_update_ts) + 1 (at least the locks' min_commit_ts) and, in the same
 *     critical section, registers its keys with that commit_ts (txn_cm_lock_1pc) until its
 *     write is applied (txn_cm_release);
 *   - a reader at T that finds a registered key it reads with commit_ts <= T (the writer took
 *     its commit_ts before the reader raised max_ts, and the write is not visible yet) waits:
 *     it is queued and run again when a guard is released. Readers never see half of it.
 *   - max_ts is per store. A new leader may have served no read the old leader served, so
 *     1PC in a region needs max_ts synced for the (region, term, epoch version) the snapshot
 *     came from: a PD timestamp fetched after that term began (txn_cm_synced starts the
 *     fetch and answers false meanwhile; prewrite then falls back to 2PC). Term 0 (a local
 *     kv seam, one process, no leader changes) is always synced.
 * Owns: the guard list (guards borrow their keys from the command that registered them), the
 * reader wait queue, the per-region sync table.
 * Threads: every function is thread-safe (one mutex). Retry callbacks and the TSO hook run
 * outside it: a retry runs on the thread that released a guard, the TSO hook on the thread
 * that asked whether a region is synced.
 * Errors: 0 or -ENOMEM.
 * Dependencies: base, storage.h (stor_tso_fn).
 */
#ifndef TKV_STORAGE_TXN_CONCURRENCY_H
#define TKV_STORAGE_TXN_CONCURRENCY_H

#include "storage/storage.h"

typedef struct txn_cm txn_cm;
typedef struct txn_cm_guard txn_cm_guard;

/* Creates a manager with max_ts 0 and nothing synced. Errors: -ENOMEM. */
TKV_MUST_USE int txn_cm_new(txn_cm **out);

/* Waits for TSO fetches in flight (their callbacks must still be able to run), then frees
 * @cm. No guard may be held and no reader queued. NULL is a no-op. */
void txn_cm_free(txn_cm *cm);

/* Returns max_ts. */
uint64_t txn_cm_max_ts(txn_cm *cm);

/* Raises max_ts to @ts (never lowers it; TXN_TS_MAX is ignored: "read the newest" reads
 * promise no snapshot). */
void txn_cm_update_max_ts(txn_cm *cm, uint64_t ts);

/* What a snapshot read covers: point keys, or a range. Encoded MVCC keys without timestamps,
 * all borrowed for the call. */
typedef struct txn_cm_read {
    uint64_t ts;
    const tkv_slice *keys; /* point keys, when !range */
    size_t n_keys;
    bool range;
    tkv_slice lower, upper; /* range: both inclusive; an empty bound is unbounded */
    const uint64_t *bypass; /* start_ts of transactions whose locks the reader may pass */
    size_t n_bypass;
} txn_cm_read;

/* Starts a snapshot read: raises max_ts to r->ts, then checks the registered 1PC keys. When
 * one the read covers has commit_ts <= r->ts, the read is queued and *@queued set: @retry
 * (@arg) runs once, after the next guard release, and must call txn_cm_begin_read again.
 * Otherwise the read may take its snapshot now. Errors: -ENOMEM (not queued). */
TKV_MUST_USE int txn_cm_begin_read(txn_cm *cm, const txn_cm_read *r, void (*retry)(void *arg),
                                   void *arg, bool *queued);

/* Takes the commit_ts of a 1PC prewrite of @keys[0..n) (borrowed until txn_cm_release) by
 * transaction @start_ts: max(max_ts, @start_ts, @for_update_ts) + 1, raised to
 * @min_commit_ts. With @max_commit_ts != 0 and a commit_ts above it, returns 0 with *@out
 * NULL (the caller falls back to 2PC). Otherwise registers the keys and returns the guard in
 * *@out and the commit_ts in *@commit_ts. The caller holds the latches of @keys.
 * Errors: -ENOMEM. */
TKV_MUST_USE int txn_cm_lock_1pc(txn_cm *cm, const tkv_slice *keys, size_t n, uint64_t start_ts,
                                 uint64_t for_update_ts, uint64_t min_commit_ts,
                                 uint64_t max_commit_ts, uint64_t *commit_ts, txn_cm_guard **out);

/* Unregisters guard @g (after its write was applied or refused) and runs the queued readers'
 * retries. NULL is a no-op. */
void txn_cm_release(txn_cm *cm, txn_cm_guard *g);

/* Installs the TSO source used to sync max_ts after a leader change (NULL: regions with a
 * term other than 0 are never synced, so they never do 1PC). Call before serving. */
void txn_cm_set_tso(txn_cm *cm, stor_tso_fn fn, void *arg);

/* Returns whether max_ts is synced for @region_id at leader @term and epoch @version. When it
 * is not, starts one TSO fetch for that triple (unless one is in flight); when it arrives,
 * max_ts is raised to it and the triple is synced. @term 0 is always synced. */
bool txn_cm_synced(txn_cm *cm, uint64_t region_id, uint64_t term, uint64_t version);

#endif /* TKV_STORAGE_TXN_CONCURRENCY_H */
