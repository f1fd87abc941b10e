/*
 * kv.h: the seam between storage (raw KV and MVCC transactions) and replication
 * (TiKV's tikv_kv::Engine).
 *
 * Storage computes what to write from a consistent read view and hands the writes to a
 * stor_kv; it never knows whether they go through Raft. Two implementations:
 *   - raftstore's (src/raftstore): routes by region, checks epoch and leadership, proposes
 *     through Raft, reads under a lease or ReadIndex;
 *   - stor_kv_local (this module): one region covering every key, writes applied directly to
 *     an engine, for unit tests of raw KV and transactions and for fuzzing the handlers.
 *
 * Keys. Storage keys carry no data prefix: raw keys for raw KV, memcomparable-encoded keys
 * (with an 8-byte descending timestamp in the write and default column families) for
 * transactions, exactly the keys TiKV's storage layer uses. Implementations add TiKV's 'z'
 * data prefix when they touch the engine and compare storage keys against region
 * boundaries (which are in the same key space: PD holds raw boundaries for raw regions and
 * encoded ones for transactional regions, as client-go expects).
 *
 * Region errors. Requests that cannot proceed in a region (not leader, epoch not match,
 * region not found, key not in region, server is busy, ...) are answered with an
 * Errorpb__Error, the kvproto message the service puts into the response's region_error
 * field unchanged. These trees are built by the stor_rerr_* constructors below with the
 * system allocator, so protobuf-c's default free works: release one with
 * stor_rerr_free(). Whoever receives one owns it.
 *
 * Threads: stor_kv implementations are thread-safe. Callbacks run on an implementation
 * thread (raftstore's apply or poll thread) or, for stor_kv_local, on the calling thread
 * before the call returns; they must not block (hand slow work elsewhere).
 * Errors: 0 or negative TKV_E* / -errno; region-level refusals are region errors, not codes.
 * Dependencies: base, engine, tkv_proto (errorpb, metapb, kvrpcpb).
 *
 * Usage (a read-modify-write, as raw compare-and-swap does it):
 *     static void on_snap(void *ud, int rc, Errorpb__Error *rerr, stor_snap *snap) {
 *         if (rerr) { reply_region_error(ud, rerr); return; }       // ud owns rerr now
 *         if (rc) { reply_error(ud, rc); return; }
 *         bool found; rc = stor_snap_get(snap, ENG_CF_DEFAULT, key, &val, &found);
 *         stor_snap_release(snap);
 *         stor_modify m = {.op = STOR_MODIFY_PUT, .cf = ENG_CF_DEFAULT, .key = key,
 *                          .value = new_value};
 *         if (stor_kv_write(kv, &ctx, &m, 1, on_written, ud) != 0) reply_error(...);
 *     }
 *     if (stor_kv_snapshot(kv, &ctx, on_snap, ud) != 0) reply_error(...);
 */
#ifndef TKV_STORAGE_KV_H
#define TKV_STORAGE_KV_H

#include "base/base.h"
#include "engine/engine.h"
#include "errorpb.pb-c.h"
#include "kvrpcpb.pb-c.h"
#include "metapb.pb-c.h"

/* ---- request context ------------------------------------------------------------------- */

/* What storage needs of kvrpcpb.Context. Plain data, no pointers. */
typedef struct stor_ctx {
    uint64_t region_id;
    bool has_epoch; /* region_epoch present: checked against the region's current epoch */
    uint64_t conf_ver;
    uint64_t version;
    bool has_peer; /* peer present: store_id checked (StoreNotMatch) */
    uint64_t peer_id;
    uint64_t store_id;
    uint64_t term;        /* leader term the client believes in (0: not checked) */
    bool replica_read;    /* read from this replica through ReadIndex (follower read) */
    bool stale_read;      /* stale read (not supported: answered like a replica read) */
    uint64_t deadline_ms; /* monotonic deadline (tkv_clock_mono_ms), 0 for none */
    int disk_full_opt;    /* kvrpcpb.DiskFullOpt: 0 NotAllowedOnFull, 1 AllowedOnAlmostFull,
                           * 2 AllowedOnAlreadyFull */
} stor_ctx;

/* Fills @c from the protobuf context @pb (NULL gives an empty context) and sets the
 * deadline from max_execution_duration_ms when present. */
void stor_ctx_from_pb(stor_ctx *c, const Kvrpcpb__Context *pb);

/* ---- region errors --------------------------------------------------------------------- */

/* Releases a region error tree built by the constructors below (or unpacked by protobuf-c
 * with the default allocator). NULL is a no-op. */
void stor_rerr_free(Errorpb__Error *e);

/* Each constructor returns a new error with a readable message set, or NULL when memory
 * runs out (callers then answer with a plain gRPC error). Arguments are copied. */

/* NotLeader: @leader is the leader this replica knows of, or NULL. */
Errorpb__Error *stor_rerr_not_leader(uint64_t region_id, const Metapb__Peer *leader);
/* RegionNotFound. */
Errorpb__Error *stor_rerr_region_not_found(uint64_t region_id);
/* KeyNotInRegion: @key is outside [start, end) of @region. */
Errorpb__Error *stor_rerr_key_not_in_region(tkv_slice key, const Metapb__Region *region);
/* EpochNotMatch with the regions that now cover the range (copied; may be 0 of them). */
Errorpb__Error *stor_rerr_epoch_not_match(const Metapb__Region *const *regions, size_t n);
/* ServerIsBusy with a reason and a suggested backoff. */
Errorpb__Error *stor_rerr_server_is_busy(const char *reason, uint64_t backoff_ms);
/* StaleCommand: the proposal was overtaken (term change, entry overwritten). */
Errorpb__Error *stor_rerr_stale_command(void);
/* StoreNotMatch: the request was meant for another store. */
Errorpb__Error *stor_rerr_store_not_match(uint64_t request_store_id, uint64_t actual_store_id);
/* RaftEntryTooLarge: the proposal exceeds the raft entry size limit. */
Errorpb__Error *stor_rerr_raft_entry_too_large(uint64_t region_id, uint64_t entry_size);
/* DiskFull: writes are refused because the store is low on space. */
Errorpb__Error *stor_rerr_disk_full(uint64_t store_id, const char *reason);
/* An error with only a message (clients invalidate the region and retry). */
Errorpb__Error *stor_rerr_message(const char *fmt, ...) TKV_PRINTF(1, 2);

/* Returns a deep copy of @r made with the system allocator (for building EpochNotMatch and
 * responses), or NULL on -ENOMEM. Free with protobuf_c_message_free_unpacked(&r->base, NULL). */
Metapb__Region *stor_region_dup(const Metapb__Region *r);

/* ---- writes ---------------------------------------------------------------------------- */

typedef enum stor_modify_op {
    STOR_MODIFY_PUT = 0,
    STOR_MODIFY_DELETE = 1,
    STOR_MODIFY_DELETE_RANGE = 2, /* [key, end_key); both inside the region */
} stor_modify_op;

/* One modification, in storage keys (no data prefix). Borrowed by stor_kv_write, which
 * copies what it keeps before returning. */
typedef struct stor_modify {
    stor_modify_op op;
    eng_cf cf;
    tkv_slice key;
    tkv_slice value;   /* PUT only */
    tkv_slice end_key; /* DELETE_RANGE only; empty means the end of the region */
} stor_modify;

/* Outcome of a write, called exactly once: (0, NULL) when the writes are durable on a quorum
 * and applied on this replica; (0, rerr) when the region refused them (the callback owns
 * @rerr); (rc < 0, NULL) on a local failure (TKV_EENGINE, TKV_ETOOLARGE, TKV_ECLOSED at
 * shutdown, -ENOMEM). In every case but success nothing was written. */
typedef void (*stor_write_cb)(void *ud, int rc, Errorpb__Error *rerr);

/* ---- reads ----------------------------------------------------------------------------- */

typedef struct stor_snap stor_snap;
typedef struct stor_iter stor_iter;

/* Outcome of a snapshot request, called exactly once: a read view of the region @snap (the
 * callback owns it and releases it with stor_snap_release), or a region error (owned by the
 * callback), or a local failure rc < 0. */
typedef void (*stor_snap_cb)(void *ud, int rc, Errorpb__Error *rerr, stor_snap *snap);

/* ---- the interface --------------------------------------------------------------------- */

typedef struct stor_kv_ops {
    int (*write)(void *impl, const stor_ctx *ctx, const stor_modify *mods, size_t n,
                 stor_write_cb cb, void *ud);
    int (*snapshot)(void *impl, const stor_ctx *ctx, stor_snap_cb cb, void *ud);
    void (*free)(void *impl);
} stor_kv_ops;

typedef struct stor_kv {
    const stor_kv_ops *ops;
    void *impl;
} stor_kv;

/* Proposes @mods (at least one) for the region named by @ctx as one atomic write. Returns 0
 * when accepted: @cb then runs exactly once, possibly before this returns. Returns a
 * negative code when not accepted (-EINVAL for an empty or malformed batch, -ENOMEM,
 * TKV_ECLOSED): @cb never runs. Region checks (epoch, leader, keys in range) happen inside and
 * end in a region error through @cb. */
TKV_MUST_USE static inline int stor_kv_write(stor_kv *kv, const stor_ctx *ctx,
                                             const stor_modify *mods, size_t n, stor_write_cb cb,
                                             void *ud)
{
    return kv->ops->write(kv->impl, ctx, mods, n, cb, ud);
}

/* Asks for a linearizable read view of the region named by @ctx (lease read on the leader,
 * ReadIndex otherwise or for replica reads). Same acceptance contract as stor_kv_write. */
TKV_MUST_USE static inline int stor_kv_snapshot(stor_kv *kv, const stor_ctx *ctx, stor_snap_cb cb,
                                                void *ud)
{
    return kv->ops->snapshot(kv->impl, ctx, cb, ud);
}

/* Releases @kv and its implementation. Every callback must have run. NULL is a no-op. */
void stor_kv_free(stor_kv *kv);

/* ---- snapshots ------------------------------------------------------------------------- */

/* A consistent read view of one region: an engine snapshot plus the region it covers.
 * Implementations fill it through stor_snap_new. Thread: may be read by several threads;
 * released once. */
struct stor_snap {
    eng_snap *eng;          /* engine snapshot (keys carry the 'z' prefix) */
    Metapb__Region *region; /* the region as of the snapshot (owned, system allocator) */
    uint64_t term;          /* raft term of the leader that served the read (0 if local) */
    uint64_t applied_index; /* applied index the view reflects (0 if local) */
    void (*on_release)(stor_snap *s, void *arg); /* implementation hook, may be NULL */
    void *release_arg;
};

/* Builds a snapshot over @eng (ownership passes to the snapshot) for a copy of @region.
 * Errors: -ENOMEM (then @eng is closed). */
TKV_MUST_USE int stor_snap_new(eng_snap *eng, const Metapb__Region *region, stor_snap **out);

/* Releases @s and its engine snapshot (calls on_release first). NULL is a no-op. */
void stor_snap_release(stor_snap *s);

/* Returns whether the storage key @key is inside the snapshot's region. */
bool stor_snap_key_in_region(const stor_snap *s, tkv_slice key);

/* Reads storage key @key of @cf. Does not check the region range: callers check with
 * stor_snap_key_in_region and answer KeyNotInRegion. Errors: as eng_snap_get. */
TKV_MUST_USE int stor_snap_get(const stor_snap *s, eng_cf cf, tkv_slice key, tkv_buf *value,
                               bool *found);

/* Creates an iterator over storage keys of @cf in [@lower, @upper) intersected with the
 * region (an empty bound means the region's bound). Keys it returns have no prefix.
 * Errors: -EINVAL, -ENOMEM. */
TKV_MUST_USE int stor_snap_iter_new(const stor_snap *s, eng_cf cf, tkv_slice lower, tkv_slice upper,
                                    stor_iter **out);

/* Iterator moves; each returns whether the iterator is valid. Seeks take storage keys. */
bool stor_iter_seek(stor_iter *it, tkv_slice key);
bool stor_iter_seek_for_prev(stor_iter *it, tkv_slice key);
bool stor_iter_seek_to_first(stor_iter *it);
bool stor_iter_seek_to_last(stor_iter *it);
bool stor_iter_next(stor_iter *it);
bool stor_iter_prev(stor_iter *it);
bool stor_iter_valid(const stor_iter *it);
/* The current key without the data prefix, and the value. Lifetime: until @it moves. */
tkv_slice stor_iter_key(const stor_iter *it);
tkv_slice stor_iter_value(const stor_iter *it);
/* 0, or the engine error that ended the scan. */
TKV_MUST_USE int stor_iter_status(const stor_iter *it);
/* Releases @it. NULL is a no-op. */
void stor_iter_free(stor_iter *it);

/* ---- the local implementation ---------------------------------------------------------- */

typedef struct stor_kv_local_opts {
    uint64_t region_id; /* default 1 */
    uint64_t store_id;  /* default 1; a context naming another store gets StoreNotMatch */
    bool sync;          /* fsync each write (default false) */
} stor_kv_local_opts;

/* Creates a local stor_kv over @db (borrowed; it must outlive the result): one region
 * [-inf, +inf) with epoch (1, 1) and one peer, writes applied directly and synchronously,
 * snapshots taken directly, callbacks run before the call returns. Contexts are checked like
 * raftstore checks them (region id, epoch, store), so region-error paths are testable.
 * @opts may be NULL. Errors: -ENOMEM. */
TKV_MUST_USE int stor_kv_local_new(eng_db *db, const stor_kv_local_opts *opts, stor_kv **out);

/* Replaces the local region's epoch (to test EpochNotMatch handling). */
void stor_kv_local_set_epoch(stor_kv *kv, uint64_t conf_ver, uint64_t version);

/* Makes snapshots report leader term @term (0, the default, means "local": no leader ever
 * changes), to test what storage does after a leader change (1PC waits for a fresh TSO). */
void stor_kv_local_set_term(stor_kv *kv, uint64_t term);

/* Replaces the local region's range with [@start, @end) (an empty @end is +inf; the keys are
 * copied), as after a split, to test behaviour at region edges: snapshots are clipped to it
 * and writes with a key outside it get KeyNotInRegion (a range to delete may end at the
 * region's end; an empty end deletes up to it). The epoch is left alone.
 * Errors: -EINVAL (@start >= a non-empty @end), -ENOMEM (the range is unchanged). */
TKV_MUST_USE int stor_kv_local_set_range(stor_kv *kv, tkv_slice start, tkv_slice end);

#endif /* TKV_STORAGE_KV_H */
