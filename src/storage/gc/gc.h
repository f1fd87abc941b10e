/*
 * gc.h: MVCC garbage collection (TiKV's gc_worker): removes the versions no read at or above
 * the GC safe point can see.
 *
 * Owns: a GC worker: a thread that asks a callback for the current safe point (the PD
 * client provides it once it exists; TiKV reads it from PD) and, when it advances, collects
 * region after region through the KvGC command (so GC writes take the same path as every
 * other write). What a key keeps: every version above the safe point, plus the newest Put
 * at or below it; a newest Delete at or below it goes with everything older; Lock and
 * Rollback records at or below it go. Reads at or above the safe point see exactly what they
 * saw before.
 * Locks are not resolved here: as in TiKV, the client (GC leader) resolves locks below the
 * safe point first (KvScanLock + KvResolveLock).
 * Threads: the worker runs its own thread; stor_gc_run_once may be called from any thread
 * but not concurrently with itself.
 * Errors: -ENOMEM, -errno, TKV_EUNAVAILABLE (a region answered with a region error).
 * Dependencies: storage (storage.h), the transactional methods.
 */
#ifndef TKV_STORAGE_GC_H
#define TKV_STORAGE_GC_H

#include "storage/storage.h"

typedef struct stor_gc_worker stor_gc_worker;

/* Returns the current GC safe point (0: not known yet, nothing is collected). */
typedef uint64_t (*stor_gc_safe_point_fn)(void *ud);

/* Lists the regions this store should collect (those it leads): writes up to @cap contexts
 * into @out and returns how many there are (possibly more than @cap: the worker asks again
 * with more room). */
typedef size_t (*stor_gc_regions_fn)(void *ud, stor_ctx *out, size_t cap);

typedef struct stor_gc_opts {
    stor_gc_safe_point_fn safe_point;
    stor_gc_regions_fn regions;
    void *ud;             /* passed to both callbacks */
    uint64_t interval_ms; /* how often to poll the safe point (default 10000, TiKV's) */
} stor_gc_opts;

/* Collects one region (@ctx) at @safe_point through KvGC and waits for it.
 * Errors: TKV_EUNAVAILABLE (region error), -ENOMEM, other method failures. */
TKV_MUST_USE int stor_gc_region(stor *s, const stor_ctx *ctx, uint64_t safe_point);

/* Starts a worker over @s (borrowed; it must outlive the worker) with @o (copied).
 * Errors: -EINVAL (no callbacks), -ENOMEM, -errno. */
TKV_MUST_USE int stor_gc_worker_new(stor *s, const stor_gc_opts *o, stor_gc_worker **out);

/* Runs one round now on the calling thread: reads the safe point and, if it is newer than
 * the last one collected, collects every region. *@safe_point (may be NULL) gets the safe
 * point the round used (0 when nothing was done). Errors: as stor_gc_region. */
TKV_MUST_USE int stor_gc_run_once(stor_gc_worker *w, uint64_t *safe_point);

/* Returns the last safe point every region was collected at. */
uint64_t stor_gc_worker_done_safe_point(stor_gc_worker *w);

/* Stops the worker's thread and frees it. NULL is a no-op. */
void stor_gc_worker_free(stor_gc_worker *w);

#endif /* TKV_STORAGE_GC_H */
