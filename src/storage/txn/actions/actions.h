/*
 * actions.h: Percolator actions on one key (TiKV's storage/txn/actions).
 *
 * Each action reads through an mvcc_reader (a snapshot), adds what it changes to an
 * mvcc_txn (the command's pending write), and reports Percolator outcomes in an mvcc_err.
 * The transaction's start_ts is mvcc_txn_start_ts(@t). Keys are encoded MVCC keys.
 * Errors: 0 or a negative code (engine errors, -ENOMEM, TKV_ECORRUPT); a set mvcc_err is
 * not an error code: the action refused, and whatever it added to @t must be discarded by
 * the command (commands write nothing when an action refuses, as TiKV does).
 * Threads: the single thread running the command.
 * Dependencies: mvcc, txn_types.
 */
#ifndef TKV_STORAGE_TXN_ACTIONS_H
#define TKV_STORAGE_TXN_ACTIONS_H

#include "storage/mvcc/mvcc.h"

/* kvrpcpb.Op values. */
enum {
    TXN_OP_PUT = 0,
    TXN_OP_DEL = 1,
    TXN_OP_LOCK = 2,
    TXN_OP_ROLLBACK = 3,
    TXN_OP_INSERT = 4,
    TXN_OP_PESSIMISTIC_LOCK = 5,
    TXN_OP_CHECK_NOT_EXISTS = 6,
};

/* kvrpcpb.Assertion and AssertionLevel values. */
enum { TXN_ASSERT_NONE = 0, TXN_ASSERT_EXIST = 1, TXN_ASSERT_NOT_EXIST = 2 };
enum { TXN_ASSERT_LEVEL_OFF = 0, TXN_ASSERT_LEVEL_FAST = 1, TXN_ASSERT_LEVEL_STRICT = 2 };

/* kvrpcpb.PrewriteRequest.PessimisticAction values. */
enum {
    TXN_SKIP_PESSIMISTIC_CHECK = 0,
    TXN_DO_PESSIMISTIC_CHECK = 1,
    TXN_DO_CONSTRAINT_CHECK = 2,
};

/* ---- prewrite ---------------------------------------------------------------------------- */

/* A lock a 1PC prewrite would have written. */
typedef struct txn_1pc_lock {
    tkv_slice enc_key;
    txn_lock lock;             /* borrows primary and short value from the prewrite's inputs */
    bool had_pessimistic_lock; /* the key holds this transaction's pessimistic lock */
} txn_1pc_lock;

/* Where a 1PC prewrite collects its locks instead of writing them: the command then writes
 * commit records for them, or the locks after all when it falls back to 2PC. */
typedef struct txn_1pc_locks {
    txn_1pc_lock *items; /* room for one per mutation (caller-owned) */
    size_t n;
    bool own_lock_found; /* a key already held this transaction's prewrite lock */
} txn_1pc_locks;

/* What all mutations of one prewrite share. */
typedef struct txn_prewrite_props {
    tkv_slice primary; /* raw primary key */
    uint64_t lock_ttl;
    uint64_t txn_size;
    uint64_t for_update_ts; /* != 0: a pessimistic transaction */
    uint64_t min_commit_ts;
    bool skip_constraint_check; /* optimistic only */
    int assertion_level;
    txn_1pc_locks *one_pc; /* NULL: write locks (2PC) */
} txn_prewrite_props;

typedef struct txn_mutation {
    int op; /* TXN_OP_* */
    tkv_slice enc_key;
    tkv_slice value;
    int assertion;
} txn_mutation;

/* Prewrites @m: checks locks, newer writes, rollbacks and constraints, then writes the lock
 * (and a long value to the default CF). @pessimistic_action applies to pessimistic
 * transactions (TXN_DO_PESSIMISTIC_CHECK: the key must hold this txn's pessimistic lock).
 * Outcomes: KeyIsLocked, WriteConflict (Optimistic, or SelfRolledBack when this txn was
 * rolled back), AlreadyExist, PessimisticLockNotFound, LockTypeNotMatch, AssertionFailed.
 * With p->one_pc the lock is appended there instead of being written (a long value still goes
 * to the default CF: commit records point at it by start_ts). */
TKV_MUST_USE int txn_prewrite(mvcc_txn *t, mvcc_reader *r, const txn_prewrite_props *p,
                              const txn_mutation *m, int pessimistic_action, mvcc_err *e);

/* Returns whether transaction start_ts of @t has a commit (not rollback) record on
 * @enc_key; when it does, *@commit_ts gets its commit_ts. */
TKV_MUST_USE int txn_committed_record(mvcc_reader *r, tkv_slice enc_key, uint64_t start_ts,
                                      bool *committed, uint64_t *commit_ts);

/* ---- commit and rollback ------------------------------------------------------------------ */

/* Commits the lock of @t's transaction on @enc_key at @commit_ts. A missing lock with a
 * commit record is success (a retried commit); a missing lock without one is
 * TxnLockNotFound; @commit_ts below the lock's min_commit_ts is CommitTsExpired. */
TKV_MUST_USE int txn_commit(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key, uint64_t commit_ts,
                            mvcc_err *e);

/* Rolls back @t's transaction on @enc_key (TiKV's cleanup): with @current_ts != 0 a lock
 * whose TTL has not expired is reported (KeyIsLocked); a committed transaction is reported
 * as Committed (commit_ts in @e); otherwise a rollback record is written (protected when
 * @protect_rollback) and the lock removed. */
TKV_MUST_USE int txn_cleanup(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key, uint64_t current_ts,
                             bool protect_rollback, mvcc_err *e);

/* Removes @t's lock @lock on @enc_key and writes its rollback record (protected for the
 * primary of a pessimistic transaction), collapsing the previous unprotected rollback when
 * @collapse_rollback. */
TKV_MUST_USE int txn_rollback_lock(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key,
                                   const txn_lock *lock, bool is_pessimistic_txn,
                                   bool collapse_rollback);

/* Deletes the newest unprotected rollback record at or below @t's start_ts. */
TKV_MUST_USE int txn_collapse_prev_rollback(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key);

/* Writes the rollback of @t's transaction given what the write CF holds at start_ts (@c
 * from mvcc_get_txn_commit_record with kind NONE): a rollback record, or for a protected
 * rollback over another txn's commit at start_ts, that record with the overlapped flag. */
TKV_MUST_USE int txn_put_rollback(mvcc_txn *t, tkv_slice enc_key, bool protected_rollback,
                                  const mvcc_commit_record *c);

/* ---- transaction status ------------------------------------------------------------------- */

typedef enum txn_status_kind {
    TXN_STATUS_ROLLED_BACK = 0,
    TXN_STATUS_TTL_EXPIRE,
    TXN_STATUS_LOCK_NOT_EXIST,
    TXN_STATUS_COMMITTED,
    TXN_STATUS_UNCOMMITTED,
    TXN_STATUS_PESSIMISTIC_ROLLBACK,
    TXN_STATUS_LOCK_NOT_EXIST_DO_NOTHING,
} txn_status_kind;

typedef struct txn_status {
    txn_status_kind kind;
    uint64_t commit_ts;        /* COMMITTED */
    txn_lock_holder lock;      /* UNCOMMITTED: the primary lock as it now is */
    bool min_commit_ts_pushed; /* UNCOMMITTED */
} txn_status;

/* Initializes / releases a status. */
void txn_status_init(txn_status *s);
void txn_status_deinit(txn_status *s);

/* What to do when the primary lock is missing. */
typedef enum txn_missing_lock_action {
    TXN_MISSING_ROLLBACK = 0,           /* write an unprotected rollback */
    TXN_MISSING_PROTECTED_ROLLBACK = 1, /* write a protected rollback */
    TXN_MISSING_RETURN_ERROR = 2,       /* TxnNotFound */
} txn_missing_lock_action;

/* Checks the status of @t's transaction through its primary @enc_key (TiKV's
 * check_txn_status): rolls back an expired lock (TTL from the physical parts of the
 * timestamps), pushes min_commit_ts for @caller_start_ts, or reports what the write CF
 * says. */
TKV_MUST_USE int txn_check_txn_status(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key,
                                      uint64_t caller_start_ts, uint64_t current_ts,
                                      txn_missing_lock_action missing, bool force_sync_commit,
                                      bool resolving_pessimistic_lock, txn_status *st, mvcc_err *e);

/* The missing-lock half of txn_check_txn_status; @mismatch is another txn's lock on the key
 * (or NULL). */
TKV_MUST_USE int txn_check_txn_status_missing_lock(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key,
                                                   const txn_lock *mismatch,
                                                   txn_missing_lock_action action,
                                                   bool resolving_pessimistic_lock, txn_status *st,
                                                   mvcc_err *e);

/* ---- pessimistic locks -------------------------------------------------------------------- */

typedef struct txn_pessimistic_props {
    tkv_slice primary; /* raw */
    uint64_t lock_ttl;
    uint64_t for_update_ts;
    uint64_t min_commit_ts;
    bool need_value;
    bool need_check_existence;
    bool lock_only_if_exists;
} txn_pessimistic_props;

/* Acquires a pessimistic lock on @enc_key for @t's transaction. With need_value, @value and
 * *@found get the newest committed value; with need_check_existence only *@found.
 * Outcomes: KeyIsLocked (another txn: the caller may wait), WriteConflict
 * (PessimisticRetry: a commit newer than for_update_ts), PessimisticLockRolledBack,
 * AlreadyExist (@should_not_exist), LockTypeNotMatch. */
TKV_MUST_USE int txn_acquire_pessimistic_lock(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key,
                                              const txn_pessimistic_props *p, bool should_not_exist,
                                              tkv_buf *value, bool *found, mvcc_err *e);

/* Removes @t's pessimistic lock on @enc_key when its for_update_ts <= @for_update_ts. */
TKV_MUST_USE int txn_pessimistic_rollback(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key,
                                          uint64_t for_update_ts);

/* ---- GC ------------------------------------------------------------------------------------ */

/* Removes the versions of @enc_key that no read at or above @safe_point can see: below the
 * newest Put at or below the safe point everything goes; a newest Delete at or below it goes
 * with everything older; Lock and Rollback records at or below it go.
 * *@deleted counts removed versions. */
TKV_MUST_USE int txn_gc_key(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key, uint64_t safe_point,
                            size_t *deleted);

#endif /* TKV_STORAGE_TXN_ACTIONS_H */
