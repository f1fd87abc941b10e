/*
 * latch.h: key latches that serialize write commands on the same keys (TiKV's Latches).
 *
 * Owns: a fixed table of slots; each slot is a FIFO of waiting commands. A command hashes
 * its keys to slots, sorts and deduplicates them (so two commands never wait on each other
 * in opposite orders), and owns the command's latch once it is first in every slot's queue.
 * Readers never take latches (DESIGN.md section 5).
 * Threads: thread-safe (one mutex per slot). Callbacks run on the thread that grants the
 * latch: the acquiring thread when it is free at once, else the thread whose release frees
 * the last slot. Callbacks must not block; they usually hand the command to a worker.
 * Errors: -ENOMEM, -EINVAL.
 * Dependencies: base.
 *
 * Usage:
 *     stor_latch *l;
 *     rc = stor_latch_new(latches, keys, nkeys, &l);       // keys hashed, sorted, deduped
 *     rc = stor_latch_acquire(latches, l, run_command, cmd);  // run_command(cmd) once owned
 *     ... the command runs, its write is proposed and applied ...
 *     stor_latch_release(latches, l);                       // wakes the next waiters
 */
#ifndef TKV_STORAGE_LATCH_H
#define TKV_STORAGE_LATCH_H

#include "base/base.h"

typedef struct stor_latches stor_latches;
typedef struct stor_latch stor_latch;

/* Called once the latch is owned. */
typedef void (*stor_latch_cb)(void *ud);

/* Creates a latch table with @slots slots (rounded up to a power of two; TiKV's default is
 * 2048000, 4096 is plenty for tests). Errors: -ENOMEM, -EINVAL (0 slots). */
TKV_MUST_USE int stor_latches_new(size_t slots, stor_latches **out);

/* Frees the table; no latch may be held or waiting. NULL is a no-op. */
void stor_latches_free(stor_latches *t);

/* Creates the latch for a command touching @keys[0..n) (n may be 0: the latch is then granted
 * at once and orders nothing). Errors: -ENOMEM. */
TKV_MUST_USE int stor_latch_new(stor_latches *t, const tkv_slice *keys, size_t n, stor_latch **out);

/* Queues @l in every slot it needs; @cb(@ud) runs exactly once when @l is first in all of
 * them (possibly before this returns). A latch is acquired at most once. Errors: -EINVAL
 * (already acquired). */
TKV_MUST_USE int stor_latch_acquire(stor_latches *t, stor_latch *l, stor_latch_cb cb, void *ud);

/* Releases a granted latch, frees it, and grants the latches that now come first in all of
 * their slots (their callbacks run on this thread, after this latch is gone). */
void stor_latch_release(stor_latches *t, stor_latch *l);

/* Frees a latch that was never acquired. NULL is a no-op. */
void stor_latch_free(stor_latch *l);

#endif /* TKV_STORAGE_LATCH_H */
