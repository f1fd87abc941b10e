/*
 * txn_int.h: the transaction scheduler and what commands share (not API).
 *
 * A command (one kvrpcpb request) goes through:
 *   submit -> [write commands: latches on its keys] -> pool thread: snapshot of the kv seam
 *   -> pool thread: process(command, reader) fills the response and the pending write
 *   -> [pending write: one stor_kv_write] -> wake up lock waiters -> respond.
 * A command may ask to run again (c->again: ResolveLock and GC work in batches), and a
 * pessimistic lock request may ask to wait (c->wait) for another transaction's lock.
 * Read commands take no latches; snapshot reads (def->snapshot_read) first raise the store's
 * max_ts to their ts and may wait for a 1PC write in flight (concurrency.h). A 1PC prewrite
 * holds its in-memory keys (c->guard) from its commit_ts until its write is applied.
 */
#ifndef TKV_STORAGE_TXN_INT_H
#define TKV_STORAGE_TXN_INT_H

#include <protobuf-c/protobuf-c.h>

#include "storage/mvcc/mvcc.h"
#include "storage/storage_int.h"
#include "storage/txn/actions/actions.h"
#include "storage/txn/concurrency.h"
#include "storage/txn/lock_manager.h"

/* ---- response arena --------------------------------------------------------------------- */

typedef struct txn_arena {
    struct txn_chunk *head;
} txn_arena;

/* Returns @n zeroed bytes that live until txn_arena_free, or NULL. */
void *txn_arena_alloc(txn_arena *a, size_t n);
/* Returns a copy of @s (NULL data for an empty slice), or a NULL-data slice on -ENOMEM with
 * *@rc set. */
ProtobufCBinaryData txn_arena_bytes(txn_arena *a, tkv_slice s, int *rc);
/* Returns a NUL-terminated copy of @s, or NULL. */
char *txn_arena_str(txn_arena *a, const char *s);
/* Releases everything. */
void txn_arena_free(txn_arena *a);

/* ---- the worker pool -------------------------------------------------------------------- */

typedef struct txn_pool txn_pool;
typedef void (*txn_task_fn)(void *arg);

/* Starts @threads workers. Errors: -ENOMEM, -errno. */
TKV_MUST_USE int txn_pool_new(size_t threads, txn_pool **out);
/* Runs queued tasks to the end, stops the workers, frees @p. NULL is a no-op. */
void txn_pool_free(txn_pool *p);
/* Queues @fn(@arg). Errors: -ENOMEM, TKV_ECLOSED. */
TKV_MUST_USE int txn_pool_submit(txn_pool *p, txn_task_fn fn, void *arg);

/* ---- transactional state of a storage -------------------------------------------------- */

struct stor_txn {
    stor *s;
    txn_pool *pool;
    txn_lock_mgr *lm;
    txn_cm *cm; /* max_ts and in-memory 1PC locks */
};

/* ---- commands --------------------------------------------------------------------------- */

typedef struct txn_cmd txn_cmd;

typedef struct txn_cmd_def {
    const char *name;
    const ProtobufCMessageDescriptor *resp_desc;
    bool write;         /* takes latches on c->keys and may write */
    bool snapshot_read; /* a read at start_ts: raises max_ts, waits for 1PC writes it covers */
    /* Runs on a pool thread with a reader over a fresh snapshot: fills c->resp (from
     * c->arena) and adds writes to c->txn. Returns 0 or a code (answered as a region
     * error "storage error"). */
    int (*process)(txn_cmd *c, mvcc_reader *r);
    /* Pessimistic lock waits only: ends the wait by filling the response. */
    void (*wait_done)(txn_cmd *c, txn_wait_outcome o, uint64_t commit_ts, uint64_t dl_hash);
    /* Releases what c->state holds outside the arena (may be NULL). */
    void (*cleanup)(txn_cmd *c);
} txn_cmd_def;

struct txn_cmd {
    stor *s;
    struct stor_txn *st;
    const txn_cmd_def *def;
    const ProtobufCMessage *req;
    ProtobufCMessage *resp;
    stor_done_cb cb;
    void *ud;
    stor_ctx ctx;
    mvcc_read_opts ropts;
    txn_arena arena;
    /* Encoded keys to latch and to check against the region (arena-owned). */
    tkv_slice *keys;
    size_t n_keys;
    mvcc_txn *txn;
    stor_latch *latch;
    stor_snap *snap;
    uint64_t snap_term; /* raft term of the leader that served the last snapshot (0: local) */
    int rc;
    /* Command-specific state that survives runs (ResolveLock, GC). */
    void *state;
    bool again; /* run again once this run's write is applied */
    /* Commit timestamp reported to lock waiters when released locks are woken up. */
    uint64_t release_commit_ts;
    /* Snapshot reads (def->snapshot_read): the range a scan covers (encoded, inclusive, empty
     * = unbounded); point reads cover c->keys. */
    bool read_range;
    tkv_slice read_lower, read_upper;
    uint64_t read_ts;
    /* A 1PC prewrite's in-memory locks, released when the command ends (its write applied
     * or refused). */
    txn_cm_guard *guard;
    /* Pessimistic lock wait. */
    bool wait;
    uint64_t wait_start_ts, wait_lock_ts, wait_key_hash, wait_ms;
};

/* Submits a command for request @req (its context @pbctx may be NULL). The keys to latch
 * are set by @setup (may be NULL), which may also reject the request (-EINVAL).
 * Returns 0 when accepted (the callback will run) or a negative code. */
TKV_MUST_USE int txn__submit(stor *s, const txn_cmd_def *def, const ProtobufCMessage *req,
                             const Kvrpcpb__Context *pbctx, uint64_t start_ts,
                             int (*setup)(txn_cmd *c), stor_done_cb cb, void *ud);

/* Sets the latch / region keys of @c to the encodings of raw keys @raw[0..n).
 * Errors: -EINVAL (more than max_batch_keys), -ENOMEM. */
TKV_MUST_USE int txn__set_keys(txn_cmd *c, const ProtobufCBinaryData *raw, size_t n);

/* Sets the keys of @c to the encoded keys of mutations @m[0..n). Errors: as txn__set_keys,
 * -EINVAL for a missing mutation. */
TKV_MUST_USE int txn__set_mutation_keys(txn_cmd *c, Kvrpcpb__Mutation *const *m, size_t n);

/* The command refuses with @e: drops its pending writes and stores the KeyError in @slot.
 * Errors: -ENOMEM. */
TKV_MUST_USE int txn__refuse(txn_cmd *c, Kvrpcpb__KeyError **slot, const mvcc_err *e);

/* Returns a new KvPair: the error @e when set, else @raw_key and @value (value omitted when
 * @key_only). NULL on -ENOMEM. */
Kvrpcpb__KvPair *txn__kv_pair(txn_cmd *c, const mvcc_err *e, tkv_slice raw_key, tkv_slice value,
                              bool key_only);

/* Returns the encoding of raw key @raw in the arena (NULL data on -ENOMEM, *rc set). */
tkv_slice txn__encode(txn_cmd *c, ProtobufCBinaryData raw, int *rc);

/* Sets *@s and *@e to the encodings of raw bounds @start and @end in the arena (an empty
 * bound stays empty: unbounded). Errors: -ENOMEM, encoding errors. */
TKV_MUST_USE int txn__encode_range(txn_cmd *c, ProtobufCBinaryData start, ProtobufCBinaryData end,
                                   tkv_slice *s, tkv_slice *e);

/* Builds the KeyError for @e in the arena, or NULL on -ENOMEM. */
Kvrpcpb__KeyError *txn__key_error(txn_cmd *c, const mvcc_err *e);

/* Builds the LockInfo of @lock on raw key @raw_key in the arena, or NULL on -ENOMEM. */
Kvrpcpb__LockInfo *txn__lock_info(txn_cmd *c, const txn_lock *lock, tkv_slice raw_key);

/* Sets the response's region_error to a message error (for failures without a better
 * answer). */
void txn__set_region_error(txn_cmd *c, Errorpb__Error *rerr);

/* Command definitions and entry points (txn/commands/). */
int txn__kv_get(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_batch_get(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_scan(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_prewrite(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_commit(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_batch_rollback(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_cleanup(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_check_txn_status(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_resolve_lock(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_txn_heart_beat(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_pessimistic_lock(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_pessimistic_rollback(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_check_secondary_locks(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_scan_lock(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_delete_range(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__unsafe_destroy_range(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);
int txn__kv_gc(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);

#endif /* TKV_STORAGE_TXN_INT_H */
