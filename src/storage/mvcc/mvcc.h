/*
 * mvcc.h: multi-version reads and writes over the lock, write and default column families
 * (TiKV's storage/mvcc: MvccReader, PointGetter, Scanner, MvccTxn).
 *
 * Owns: readers (a stor_snap borrowed for the reader's life plus cached iterators), scanners,
 * and writers (mvcc_txn: the modifications one command accumulates, with their bytes).
 * Read rules (Percolator as TiKV does it):
 *   - a read at ts T sees, for each key, the newest write record with commit_ts <= T that is
 *     a Put or a Delete; Lock and Rollback records are skipped; a Put whose GC fence points
 *     at or below T is stale (its newer version was garbage collected) and reads as absent;
 *   - under snapshot isolation (SI) a Put or Delete lock with start_ts <= T blocks the read
 *     (KeyIsLocked) unless its min_commit_ts > T, its transaction is in the request's
 *     resolved_locks (bypass: the lock is ignored) or in committed_locks (read through: the
 *     locked value is returned); Lock and Pessimistic locks never block; RC ignores locks;
 *     RCCheckTS answers any blocking lock with a write conflict.
 * Errors: functions return 0 or a negative code (engine errors, -ENOMEM, TKV_ECORRUPT for
 * undecodable records); Percolator outcomes (locked, write conflict, ...) are mvcc_err
 * values that the txn layer maps to kvrpcpb.KeyError.
 * Threads: readers, scanners and writers are single-threaded objects.
 * Keys: every key argument is an encoded MVCC key (txn_key_encode) without timestamp.
 * Dependencies: base, the kv seam (snapshots), txn_types.
 */
#ifndef TKV_STORAGE_MVCC_H
#define TKV_STORAGE_MVCC_H

#include "storage/kv.h"
#include "storage/txn_types.h"

/* ---- Percolator outcomes ---------------------------------------------------------------- */

typedef enum mvcc_err_kind {
    MVCC_OK = 0,
    MVCC_E_KEY_IS_LOCKED,      /* lock, key */
    MVCC_E_WRITE_CONFLICT,     /* start_ts, conflict_start_ts, conflict_commit_ts, key, primary,
                                  reason */
    MVCC_E_ALREADY_EXIST,      /* key */
    MVCC_E_TXN_LOCK_NOT_FOUND, /* start_ts, commit_ts, key */
    MVCC_E_TXN_NOT_FOUND,      /* start_ts, key (the primary) */
    MVCC_E_COMMIT_TS_EXPIRED,  /* start_ts, commit_ts, key, min_commit_ts */
    MVCC_E_DEADLOCK,           /* start_ts, lock_ts, key, deadlock_key_hash */
    MVCC_E_COMMITTED,          /* start_ts, commit_ts, key */
    MVCC_E_PESSIMISTIC_LOCK_NOT_FOUND,   /* start_ts, key */
    MVCC_E_PESSIMISTIC_LOCK_ROLLED_BACK, /* start_ts, key */
    MVCC_E_LOCK_TYPE_NOT_MATCH,          /* start_ts, key */
    MVCC_E_ASSERTION_FAILED,  /* start_ts, key, assertion, existing_start_ts, existing_commit_ts */
    MVCC_E_INVALID_TXN_TSO,   /* start_ts, commit_ts */
    MVCC_E_DEFAULT_NOT_FOUND, /* key: a write record whose value is missing */
    MVCC_E_OTHER,             /* msg */
} mvcc_err_kind;

/* WriteConflict reasons (kvrpcpb.WriteConflict.Reason). */
#define MVCC_CONFLICT_OPTIMISTIC        1
#define MVCC_CONFLICT_PESSIMISTIC_RETRY 2
#define MVCC_CONFLICT_SELF_ROLLED_BACK  3
#define MVCC_CONFLICT_RC_CHECK_TS       4

/* One Percolator outcome with the fields TiKV reports for it. Owns its buffers. */
typedef struct mvcc_err {
    mvcc_err_kind kind;
    tkv_buf key;     /* raw user key */
    tkv_buf primary; /* raw primary key */
    txn_lock_holder lock;
    uint64_t start_ts;
    uint64_t conflict_start_ts;
    uint64_t conflict_commit_ts;
    uint64_t commit_ts;
    uint64_t min_commit_ts;
    uint64_t lock_ts;
    uint64_t deadlock_key_hash;
    uint64_t existing_start_ts;
    uint64_t existing_commit_ts;
    int reason;
    int assertion;
    char msg[160];
} mvcc_err;

/* Initializes @e as MVCC_OK. */
void mvcc_err_init(mvcc_err *e);
/* Releases @e's buffers. */
void mvcc_err_deinit(mvcc_err *e);
/* Returns @e to MVCC_OK, keeping its memory. */
void mvcc_err_reset(mvcc_err *e);
/* Moves @src into @dst (dst's old contents are released; src becomes MVCC_OK). */
void mvcc_err_move(mvcc_err *dst, mvcc_err *src);

/* Sets @e to KeyIsLocked for @lock on encoded key @enc_key. Errors: -ENOMEM, TKV_ECORRUPT. */
TKV_MUST_USE int mvcc_err_set_locked(mvcc_err *e, const txn_lock *lock, tkv_slice enc_key);
/* Sets @e to @kind with the raw form of @enc_key as key (and @primary, may be empty), and
 * the given timestamps (fields a kind does not use are ignored). Errors: -ENOMEM,
 * TKV_ECORRUPT. */
TKV_MUST_USE int mvcc_err_set(mvcc_err *e, mvcc_err_kind kind, tkv_slice enc_key, tkv_slice primary,
                              uint64_t start_ts, uint64_t ts2, uint64_t ts3);
/* Sets @e to a WriteConflict. */
TKV_MUST_USE int mvcc_err_set_conflict(mvcc_err *e, tkv_slice enc_key, tkv_slice primary,
                                       uint64_t start_ts, uint64_t conflict_start_ts,
                                       uint64_t conflict_commit_ts, int reason);

/* ---- read options --------------------------------------------------------------------- */

typedef enum mvcc_isolation {
    MVCC_ISO_SI = 0,
    MVCC_ISO_RC = 1,
    MVCC_ISO_RC_CHECK_TS = 2,
} mvcc_isolation;

/* How a read treats locks (from kvrpcpb.Context). Arrays are borrowed. */
typedef struct mvcc_read_opts {
    mvcc_isolation iso;
    const uint64_t *bypass_locks; /* resolved_locks: ignore these transactions' locks */
    size_t n_bypass_locks;
    const uint64_t *access_locks; /* committed_locks: read through these transactions' locks */
    size_t n_access_locks;
    bool key_only; /* values are not loaded (returned empty) */
} mvcc_read_opts;

/* Returns whether @lock on @enc_key blocks a read at @ts under @o (the SI/RCCheckTS rules
 * above). When it does, @e is set (KeyIsLocked, or WriteConflict for RCCheckTS).
 * Errors: -ENOMEM, TKV_ECORRUPT. */
TKV_MUST_USE int mvcc_check_lock_conflict(const txn_lock *lock, tkv_slice enc_key, uint64_t ts,
                                          const mvcc_read_opts *o, bool *blocks, mvcc_err *e);

/* ---- the reader ----------------------------------------------------------------------- */

typedef struct mvcc_reader mvcc_reader;

/* Creates a reader over @snap (borrowed; it must outlive the reader). Errors: -ENOMEM. */
TKV_MUST_USE int mvcc_reader_new(const stor_snap *snap, mvcc_reader **out);
/* Releases @r. NULL is a no-op. */
void mvcc_reader_free(mvcc_reader *r);
/* Returns the snapshot @r reads. */
const stor_snap *mvcc_reader_snap(const mvcc_reader *r);

/* Loads the lock on @enc_key into @h. Errors: engine errors, TKV_ECORRUPT. */
TKV_MUST_USE int mvcc_load_lock(mvcc_reader *r, tkv_slice enc_key, txn_lock_holder *h, bool *found);

/* Finds the newest write record of @enc_key with commit_ts <= @ts: sets *@commit_ts and @w
 * (its slices point into @wbuf, which receives a copy of the record). */
TKV_MUST_USE int mvcc_seek_write(mvcc_reader *r, tkv_slice enc_key, uint64_t ts,
                                 uint64_t *commit_ts, txn_write *w, tkv_buf *wbuf, bool *found);

/* Loads the value of a Put record @w of @enc_key: its short value, or the default CF value
 * at start_ts. Errors: TKV_ENOTFOUND (default value missing), engine errors. */
TKV_MUST_USE int mvcc_load_data(mvcc_reader *r, tkv_slice enc_key, const txn_write *w,
                                tkv_buf *value);

/* Reads the value of @enc_key at @ts ignoring locks (TiKV's MvccReader::get).
 * Errors: as mvcc_load_data. */
TKV_MUST_USE int mvcc_get(mvcc_reader *r, tkv_slice enc_key, uint64_t ts, tkv_buf *value,
                          bool *found);

/* Like mvcc_get but only tells whether a Put is visible (no value load). */
TKV_MUST_USE int mvcc_exists(mvcc_reader *r, tkv_slice enc_key, uint64_t ts, bool *found);

/* What the write CF says about transaction @start_ts on one key. */
typedef enum mvcc_commit_kind {
    MVCC_COMMIT_NONE = 0,                /* no record of the transaction */
    MVCC_COMMIT_SINGLE = 1,              /* commit or rollback record (write.start_ts matches) */
    MVCC_COMMIT_OVERLAPPED_ROLLBACK = 2, /* another txn's commit at start_ts carries the flag */
} mvcc_commit_kind;

typedef struct mvcc_commit_record {
    mvcc_commit_kind kind;
    uint64_t commit_ts; /* SINGLE and OVERLAPPED_ROLLBACK */
    txn_write write;    /* SINGLE */
    tkv_buf wbuf;
    /* NONE: another transaction committed at exactly start_ts (its record, its gc fence). */
    bool has_overlapped;
    txn_write overlapped;
    tkv_buf obuf;
    uint64_t overlapped_gc_fence;
} mvcc_commit_record;

/* Initializes / releases a commit record. */
void mvcc_commit_record_init(mvcc_commit_record *c);
void mvcc_commit_record_deinit(mvcc_commit_record *c);

/* Looks for the commit or rollback record of transaction @start_ts on @enc_key (TiKV's
 * get_txn_commit_record). Errors: engine errors, TKV_ECORRUPT. */
TKV_MUST_USE int mvcc_get_txn_commit_record(mvcc_reader *r, tkv_slice enc_key, uint64_t start_ts,
                                            mvcc_commit_record *c);

/* Called for each lock found by mvcc_scan_locks: @enc_key and @lock are borrowed for the
 * call. Return 0 to go on, 1 to stop, a negative code to fail the scan. */
typedef int (*mvcc_lock_fn)(void *ud, tkv_slice enc_key, const txn_lock *lock);

/* Visits the locks in [@start, @end) (encoded keys; empty end = region end) in key order
 * for which @max_ts is 0 or lock.start_ts <= @max_ts, at most @limit of them (0 = no
 * limit). Errors: engine errors, TKV_ECORRUPT, or what @fn returned. */
TKV_MUST_USE int mvcc_scan_locks(mvcc_reader *r, tkv_slice start, tkv_slice end, uint64_t max_ts,
                                 size_t limit, mvcc_lock_fn fn, void *ud);

/* ---- point reads with lock checks (TiKV's PointGetter) -------------------------------- */

/* Reads @enc_key at @ts honouring locks per @o. Found: *@found and @value (empty when
 * key_only). A blocking lock sets @e (KeyIsLocked) and leaves *@found false.
 * Errors: engine errors, TKV_ECORRUPT; a missing default value is MVCC_E_DEFAULT_NOT_FOUND. */
TKV_MUST_USE int mvcc_point_get(mvcc_reader *r, tkv_slice enc_key, uint64_t ts,
                                const mvcc_read_opts *o, tkv_buf *value, bool *found, mvcc_err *e);

/* ---- scanners ------------------------------------------------------------------------- */

typedef struct mvcc_scanner mvcc_scanner;

typedef struct mvcc_scan_opts {
    uint64_t ts;
    tkv_slice lower; /* encoded, inclusive; empty: the region start */
    tkv_slice upper; /* encoded, exclusive; empty: the region end */
    bool desc;       /* from the upper bound down */
    mvcc_read_opts read;
} mvcc_scan_opts;

/* Creates a scanner over @snap (borrowed) with @o (copied; arrays borrowed).
 * Errors: -ENOMEM, -EINVAL. */
TKV_MUST_USE int mvcc_scanner_new(const stor_snap *snap, const mvcc_scan_opts *o,
                                  mvcc_scanner **out);
/* Releases @s. NULL is a no-op. */
void mvcc_scanner_free(mvcc_scanner *s);

/* Work one scanner did on its lock cursor (TiKV's per-CF scan statistics, lock CF only).
 * Seeks include the first positioning; steps are nexts (forward) or prevs (reverse). Each
 * step or seek may walk deletion markers inside the engine, so a scan keeps both O(1) per
 * key: one seek per scan and at most one step per live lock in the range. */
typedef struct mvcc_scan_stats {
    uint64_t lock_seeks;
    uint64_t lock_steps;
} mvcc_scan_stats;

/* Returns @s's counters so far. Lifetime: until @s is freed. */
const mvcc_scan_stats *mvcc_scanner_stats(const mvcc_scanner *s);

/* Moves to the next visible key. Sets *@done when the range is exhausted. Otherwise
 * @enc_key gets the encoded key and either @value (its value, empty when key_only) with @e
 * MVCC_OK, or @e set (the key is locked). Errors: engine errors, TKV_ECORRUPT (a record
 * does not decode, or a write-CF key is not an encoded key plus a timestamp so the scan
 * would not move on). */
TKV_MUST_USE int mvcc_scanner_next(mvcc_scanner *s, bool *done, tkv_buf *enc_key, tkv_buf *value,
                                   mvcc_err *e);

/* ---- the writer ----------------------------------------------------------------------- */

/* The modifications of one command, ready for one stor_kv_write. */
typedef struct mvcc_txn mvcc_txn;

/* Creates an empty writer for transaction @start_ts. Errors: -ENOMEM. */
TKV_MUST_USE int mvcc_txn_new(uint64_t start_ts, mvcc_txn **out);
/* Releases @t. NULL is a no-op. */
void mvcc_txn_free(mvcc_txn *t);
/* Returns the transaction's start_ts. */
uint64_t mvcc_txn_start_ts(const mvcc_txn *t);
/* Changes the start_ts subsequent calls use (batch resolve over several transactions). */
void mvcc_txn_set_start_ts(mvcc_txn *t, uint64_t start_ts);

/* Each adds one modification; the bytes are copied. Errors: -ENOMEM. */
TKV_MUST_USE int mvcc_txn_put_lock(mvcc_txn *t, tkv_slice enc_key, const txn_lock *lock);
/* Deletes the lock on @enc_key and records the release (for waking up lock waiters). */
TKV_MUST_USE int mvcc_txn_unlock_key(mvcc_txn *t, tkv_slice enc_key, uint64_t lock_ts,
                                     bool pessimistic_txn);
TKV_MUST_USE int mvcc_txn_put_value(mvcc_txn *t, tkv_slice enc_key, uint64_t start_ts,
                                    tkv_slice value);
TKV_MUST_USE int mvcc_txn_delete_value(mvcc_txn *t, tkv_slice enc_key, uint64_t start_ts);
TKV_MUST_USE int mvcc_txn_put_write(mvcc_txn *t, tkv_slice enc_key, uint64_t commit_ts,
                                    const txn_write *w);
TKV_MUST_USE int mvcc_txn_delete_write(mvcc_txn *t, tkv_slice enc_key, uint64_t commit_ts);
/* Adds a range deletion [@start, @end) of @cf (empty end: the region end). */
TKV_MUST_USE int mvcc_txn_delete_range(mvcc_txn *t, eng_cf cf, tkv_slice start, tkv_slice end);

/* Returns the number of modifications. */
size_t mvcc_txn_count(const mvcc_txn *t);
/* Drops every modification and release. */
void mvcc_txn_clear(mvcc_txn *t);
/* Returns the modifications as stor_modify values (an array owned by @t, valid until @t next
 * changes). Errors: -ENOMEM. */
TKV_MUST_USE int mvcc_txn_modifies(mvcc_txn *t, const stor_modify **mods, size_t *n);

/* A released lock: whose transaction, which key (hash), whether it was pessimistic. */
typedef struct mvcc_released {
    uint64_t lock_ts;
    uint64_t key_hash;
    bool pessimistic_txn;
} mvcc_released;

/* Returns the locks released by the modifications (owned by @t). */
const mvcc_released *mvcc_txn_released(const mvcc_txn *t, size_t *n);

#endif /* TKV_STORAGE_MVCC_H */
