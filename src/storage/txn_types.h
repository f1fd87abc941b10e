/*
 * txn_types.h: Percolator records in TiKV's binary formats (TiKV's txn_types crate).
 *
 * Owns: nothing; encoders append to caller buffers, decoders fill caller structs.
 * Formats (the bytes TiKV writes, so data, tools and reasoning carry over):
 *   - keys: the memcomparable encoding of the user key (codec.h); in the write and default
 *     column families followed by 8 bytes of descending timestamp (keys.h): commit_ts in
 *     write, start_ts in default. Newer versions sort first.
 *   - Lock (lock CF value): type byte ('P' put, 'D' delete, 'L' lock, 'S' pessimistic),
 *     primary as compact bytes, start_ts and ttl as varints, then optional fields, each
 *     announced by a prefix byte, in this order: 'v' short value (1-byte length + bytes),
 *     'f' for_update_ts, 't' txn_size, 'c' min_commit_ts (8-byte big-endian each), 'a'
 *     async commit (varint count + compact-bytes secondaries), 'r' rollback_ts (varint count
 *     + 8-byte timestamps), 'l' last change (8-byte ts + varint count), 's' txn_source
 *     (varint), 'F' locked with conflict (flag). An unknown prefix ends parsing (TiKV keeps
 *     newer fields forward compatible that way).
 *   - Write (write CF value): type byte ('P', 'D', 'L', 'R' rollback), start_ts varint,
 *     then 'v' short value, 'R' overlapped rollback (flag), 'F' gc fence (8-byte), 'l' last
 *     change, 'S' txn_source; unknown prefix ends parsing. A rollback whose short value is
 *     "p" is protected (never collapsed).
 *   - Values up to TXN_SHORT_VALUE_MAX_LEN bytes live inline in the lock and then in the
 *     write record; longer ones in the default CF at key + start_ts.
 * Threads: reentrant. Errors: -ENOMEM from encoders and from decoders that allocate
 * (secondaries, rollback_ts); TKV_ECORRUPT from decoders on truncated or malformed bytes,
 * never an assertion.
 * Ownership: a decoded txn_lock / txn_write borrows the decoded bytes (slices point into
 * them); txn_lock_deinit frees the arrays a lock decode allocated. txn_lock_holder keeps its
 * own copy of the bytes.
 * Dependencies: base (codec, keys).
 */
#ifndef TKV_STORAGE_TXN_TYPES_H
#define TKV_STORAGE_TXN_TYPES_H

#include "base/base.h"

/* Longest value stored inline in a lock or write record (TiKV's SHORT_VALUE_MAX_LEN). */
#define TXN_SHORT_VALUE_MAX_LEN 255

/* Timestamps: TSO layout physical_ms << 18 | logical. */
#define TXN_TS_PHYSICAL_SHIFT 18
#define TXN_TS_MAX            UINT64_MAX

/* Returns the physical (milliseconds) part of @ts. */
static inline uint64_t txn_ts_physical(uint64_t ts)
{
    return ts >> TXN_TS_PHYSICAL_SHIFT;
}

/* Returns the timestamp of @physical_ms with logical part @logical. */
static inline uint64_t txn_ts_compose(uint64_t physical_ms, uint64_t logical)
{
    return (physical_ms << TXN_TS_PHYSICAL_SHIFT) | logical;
}

typedef enum txn_lock_type {
    TXN_LOCK_PUT = 'P',
    TXN_LOCK_DELETE = 'D',
    TXN_LOCK_LOCK = 'L',
    TXN_LOCK_PESSIMISTIC = 'S',
} txn_lock_type;

typedef enum txn_write_type {
    TXN_WRITE_PUT = 'P',
    TXN_WRITE_DELETE = 'D',
    TXN_WRITE_LOCK = 'L',
    TXN_WRITE_ROLLBACK = 'R',
} txn_write_type;

/* A Percolator lock. Slices borrow the bytes it was decoded from (or the caller's). */
typedef struct txn_lock {
    txn_lock_type type;
    tkv_slice primary; /* raw user key of the primary */
    uint64_t start_ts;
    uint64_t ttl; /* milliseconds */
    bool has_short_value;
    tkv_slice short_value;
    uint64_t for_update_ts; /* != 0: the lock belongs to a pessimistic transaction */
    uint64_t txn_size;
    uint64_t min_commit_ts;
    bool use_async_commit;
    size_t n_secondaries;
    tkv_slice *secondaries; /* allocated by decode */
    size_t n_rollback_ts;
    uint64_t *rollback_ts; /* allocated by decode */
    uint64_t last_change_ts;
    uint64_t versions_to_last_change;
    uint64_t txn_source;
    bool is_locked_with_conflict;
} txn_lock;

/* A write (commit or rollback) record. Slices borrow the decoded bytes. */
typedef struct txn_write {
    txn_write_type type;
    uint64_t start_ts;
    bool has_short_value;
    tkv_slice short_value;
    bool has_overlapped_rollback;
    bool has_gc_fence;
    uint64_t gc_fence; /* commit_ts of the next PUT/DELETE version, 0 for none */
    uint64_t last_change_ts;
    uint64_t versions_to_last_change;
    uint64_t txn_source;
} txn_write;

/* The short value of a protected rollback record. */
#define TXN_PROTECTED_ROLLBACK_VALUE 'p'

/* Initializes @l to an empty lock of @type (no optional fields). */
void txn_lock_init(txn_lock *l, txn_lock_type type, tkv_slice primary, uint64_t start_ts,
                   uint64_t ttl);

/* Frees the arrays a decode allocated (secondaries, rollback_ts); safe on any initialized
 * lock and twice. */
void txn_lock_deinit(txn_lock *l);

/* Appends the encoding of @l to @out. Errors: -ENOMEM, -EINVAL (short value over 255
 * bytes). */
TKV_MUST_USE int txn_lock_encode(const txn_lock *l, tkv_buf *out);

/* Decodes @in into @l (slices borrow @in; arrays are allocated: txn_lock_deinit).
 * Errors: TKV_ECORRUPT (empty, bad type, truncated field), -ENOMEM. On error @l holds no
 * allocation. */
TKV_MUST_USE int txn_lock_decode(tkv_slice in, txn_lock *l);

/* Returns true when @l is a pessimistic lock (type 'S'). */
static inline bool txn_lock_is_pessimistic_lock(const txn_lock *l)
{
    return l->type == TXN_LOCK_PESSIMISTIC;
}

/* Returns true when @l belongs to a pessimistic transaction (for_update_ts != 0). */
static inline bool txn_lock_is_pessimistic_txn(const txn_lock *l)
{
    return l->for_update_ts != 0;
}

/* A lock with its own copy of the bytes it was decoded from. */
typedef struct txn_lock_holder {
    tkv_buf raw;
    txn_lock lock;
} txn_lock_holder;

/* Initializes an empty holder. */
void txn_lock_holder_init(txn_lock_holder *h);
/* Releases the holder's bytes and arrays. */
void txn_lock_holder_deinit(txn_lock_holder *h);
/* Copies @bytes into @h and decodes them. Errors: as txn_lock_decode. */
TKV_MUST_USE int txn_lock_holder_set(txn_lock_holder *h, tkv_slice bytes);

/* Initializes @w as a record of @type for @start_ts without optional fields. */
void txn_write_init(txn_write *w, txn_write_type type, uint64_t start_ts);

/* Initializes @w as a rollback record for @start_ts, protected or not. */
void txn_write_init_rollback(txn_write *w, uint64_t start_ts, bool protected_rollback);

/* Returns whether @w is a protected rollback. */
bool txn_write_is_protected(const txn_write *w);

/* Returns whether @w, found as the newest version at or below @read_ts, is valid: false
 * when its GC fence points at a version at or below @read_ts (that version was removed by
 * GC, so this one is stale). */
bool txn_write_check_gc_fence(const txn_write *w, uint64_t read_ts);

/* Appends the encoding of @w. Errors: -ENOMEM, -EINVAL (short value over 255 bytes). */
TKV_MUST_USE int txn_write_encode(const txn_write *w, tkv_buf *out);

/* Decodes @in into @w (slices borrow @in). Errors: TKV_ECORRUPT. */
TKV_MUST_USE int txn_write_decode(tkv_slice in, txn_write *w);

/* Returns the write type a committed lock of @type becomes (PESSIMISTIC commits as LOCK). */
txn_write_type txn_write_type_of_lock(txn_lock_type type);

/* ---- keys ---------------------------------------------------------------------------- */

/* Appends the MVCC key of @user_key (memcomparable). Errors: -ENOMEM. */
TKV_MUST_USE int txn_key_encode(tkv_buf *out, tkv_slice user_key);

/* Appends the versioned key: encoded @enc_key + 8 descending bytes of @ts. Errors: -ENOMEM. */
TKV_MUST_USE int txn_key_versioned(tkv_buf *out, tkv_slice enc_key, uint64_t ts);

/* Decodes an MVCC key (without timestamp) into the raw user key @out (replaced).
 * Errors: TKV_ECORRUPT, -ENOMEM. */
TKV_MUST_USE int txn_key_decode(tkv_slice enc_key, tkv_buf *out);

/* Splits a versioned key into the encoded key and its timestamp.
 * Errors: TKV_ECORRUPT (shorter than 8 bytes). */
TKV_MUST_USE int txn_key_split_ts(tkv_slice versioned, tkv_slice *enc_key, uint64_t *ts);

/* Returns a 64-bit hash of an encoded key (lock waiting and deadlock detection). */
uint64_t txn_key_hash(tkv_slice enc_key);

#endif /* TKV_STORAGE_TXN_TYPES_H */
