/*
 * engine.h: the storage engine every stateful component builds on (TiKV's engine_traits).
 *
 * One interface, two implementations behind a vtable:
 *   - eng_rocks: RocksDB through its C API (eng_rocks.c is the only file that sees RocksDB);
 *   - eng_mem:   an in-memory engine with the same semantics (a versioned skiplist per column
 *                family, cheap isolated snapshots), for fast unit tests of MVCC and raftstore.
 * The same API serves TiKV's kv engine, the raft engine (a second instance) and PD's store.
 *
 * Owns: the database handle (column families default, lock, write, raft, opened together and
 * created when missing), write batches, snapshots, iterators, pinned values and SST writers.
 * Threads: an eng_db is thread-safe (any number of threads may read, write, take snapshots and
 * open iterators at once). An eng_snap may be read from several threads at once; close it once,
 * after every reader is done. Iterators, write batches, pinned values and SST writers are
 * single-threaded objects: one thread at a time, and their engine must outlive them (closing
 * an engine with live objects is a bug caught by an assertion).
 * Errors: functions return 0 or a negative code: TKV_EENGINE for a RocksDB failure,
 * TKV_ECORRUPT when RocksDB (or eng_mem's SST reader) reports corruption, -ENOMEM, -EINVAL for
 * misuse (bad column family, keys out of order, an inverted range), -errno for eng_mem's file
 * I/O. The message (RocksDB's own text, prefixed with the engine's name and the operation) is
 * kept per thread for the db handle: eng_errmsg(db) returns the message of the calling thread's
 * last failed call on that db. Iterators and SST writers keep their own message. A failed call
 * changes nothing unless its comment says otherwise; a failed write applies none of the batch.
 * Ownership: keys and values are tkv_slice (borrowed for the call; the engine copies what it
 * keeps). `T **out` hands an object to the caller, released with its _free/_close. Slices
 * returned by iterators and pinned values are borrowed, with the lifetime stated.
 * Keys: byte strings ordered bytewise (shorter first on a common prefix); the empty key is a
 * valid key. Bounds and ranges: an empty slice as an iterator bound means "no bound" (TiKV's
 * empty end key), everywhere else as stated.
 * Dependencies: base.h; eng_rocks links librocksdb (C API, 7.8), eng_mem pthreads.
 *
 * Usage:
 *     eng_options o;
 *     eng_options_init(&o);
 *     o.name = "kv";
 *     eng_db *db;
 *     char err[TKV_ERRMSG_LEN];
 *     if (eng_rocks_open("/data/db", &o, &db, err) != 0) die(err);
 *     eng_batch *b;
 *     rc = eng_batch_new(db, &b);
 *     rc = eng_batch_put(b, ENG_CF_WRITE, key, value);
 *     rc = eng_write(db, b, true);                       // fsync before returning
 *     eng_batch_free(b);
 *     eng_snap *s;
 *     rc = eng_snap_open(db, &s);
 *     eng_iter *it;
 *     rc = eng_snap_iter_new(s, ENG_CF_WRITE, lower, upper, &it);
 *     for (bool ok = eng_iter_seek_to_first(it); ok; ok = eng_iter_next(it))
 *         use(eng_iter_key(it), eng_iter_value(it));
 *     rc = eng_iter_status(it);                          // 0 unless the scan failed
 *     eng_iter_free(it);
 *     eng_snap_close(s);
 *     eng_close(db);
 */
#ifndef TKV_ENGINE_H
#define TKV_ENGINE_H

#include "base/base.h"

/* ---- column families and options -------------------------------------------------------- */

/* TiKV's column families. Every engine has all four. */
typedef enum eng_cf {
    ENG_CF_DEFAULT = 0, /* "default": raw KV values, long transaction values */
    ENG_CF_LOCK = 1,    /* "lock": Percolator locks */
    ENG_CF_WRITE = 2,   /* "write": Percolator commit records */
    ENG_CF_RAFT = 3,    /* "raft": raft log and raft state (TiKV keeps the CF in the kv engine) */
} eng_cf;

#define ENG_CF_COUNT 4

/* Returns the RocksDB name of @cf ("default", "lock", "write", "raft"), or NULL if @cf is not
 * a column family. */
const char *eng_cf_name(eng_cf cf);

/* Engine options: plain data, set with eng_options_init() then changed field by field. Sizes
 * of 0 keep RocksDB's default. eng_mem uses only name. */
typedef struct eng_options {
    const char *name;             /* label in messages ("kv", "raft", "pd"); copied at open */
    bool create_if_missing;       /* create the database if absent (default true) */
    size_t block_cache_bytes;     /* one LRU block cache shared by all CFs (default 64 MiB) */
    size_t write_buffer_bytes;    /* memtable size per CF */
    int max_background_jobs;      /* flush and compaction threads (default 2) */
    uint64_t bytes_per_sync;      /* sync SST files incrementally every this many bytes */
    uint64_t wal_bytes_per_sync;  /* the same for the WAL */
    uint64_t max_total_wal_bytes; /* flush CFs when the WALs pass this size */
    const char *wal_dir;          /* WAL directory; NULL keeps the WAL in the database dir */
    /* Finished WAL files kept for reuse (RocksDB's recycle_log_file_num; 0: none). A synced
     * write into a recycled file does not grow it, so fdatasync has no inode to write: one
     * I/O per sync instead of two. Never with an encrypting environment: AES-CTR must not
     * write twice at the same offset under one key (eng_rocks_open refuses the pair). */
    int recycle_wal_files;
    /* An opaque rocksdb_env_t * (for example an encrypting Env, issue 9), or NULL for the
     * default. Borrowed: it must outlive the engine and every SST writer made from it. */
    void *rocksdb_env;
} eng_options;

/* Sets @o to the defaults: name "engine", create_if_missing, 64 MiB block cache, the rest 0. */
void eng_options_init(eng_options *o);

/* RocksDB's target file size for level compaction outputs (TiKV's target-file-size-base). */
#define ENG_TARGET_FILE_BYTES ((uint64_t)8 << 20)

/* Returns the disk space an engine opened with @o may take at once after writes stop coming:
 * every column family's memtable flushed (write_buffer_bytes each, RocksDB's 64 MiB when 0)
 * plus one compaction output file per background job (ENG_TARGET_FILE_BYTES each), with the
 * 10% RocksDB adds when it preallocates a file. A disk-full gate must refuse writes while at
 * least this much is still free, or a flush or compaction can fail with ENOSPC. */
uint64_t eng_headroom_bytes(const eng_options *o);

/* ---- the database handle ---------------------------------------------------------------- */

typedef struct eng_db eng_db;

/* Opens (creating if asked) the RocksDB database at @path with column families default, lock,
 * write and raft (missing ones are created; extra ones found on disk are opened and left
 * alone), and stores the handle in *@out.
 * @opts may be NULL for the defaults. @errmsg (may be NULL) receives the cause on failure.
 * Errors: TKV_EENGINE (the path is not a directory, the database is locked by another handle,
 * I/O errors...: RocksDB's message in @errmsg), TKV_ECORRUPT, -ENOMEM, -EINVAL (@path NULL).
 * Thread: the handle is thread-safe. */
TKV_MUST_USE int eng_rocks_open(const char *path, const eng_options *opts, eng_db **out,
                                char errmsg[TKV_ERRMSG_LEN]);

/* Deletes the RocksDB database at @path (its files, then the directory if it is left empty).
 * The database must not be open. Errors: TKV_EENGINE with the message in @errmsg. */
TKV_MUST_USE int eng_rocks_destroy(const char *path, const eng_options *opts,
                                   char errmsg[TKV_ERRMSG_LEN]);

/* Opens an empty in-memory engine and stores it in *@out. Nothing is durable: sync is
 * accepted and ignored, and the data go away at eng_close. @opts may be NULL.
 * Errors: -ENOMEM, -errno (pthread initialization). */
TKV_MUST_USE int eng_mem_open(const eng_options *opts, eng_db **out);

/* Closes @db and releases it. Every snapshot, iterator, batch, pinned value and SST writer of
 * @db must already be released (asserted). NULL is a no-op. */
void eng_close(eng_db *db);

/* Returns the message of the calling thread's last failed call on @db ("" if none).
 * Lifetime: until this thread's next engine call on @db. */
const char *eng_errmsg(const eng_db *db);

/* Returns "rocksdb" or "memory". */
const char *eng_kind(const eng_db *db);

/* ---- write batches ---------------------------------------------------------------------- */

typedef struct eng_batch eng_batch;

/* Creates an empty write batch for @db in *@out. Errors: -ENOMEM. */
TKV_MUST_USE int eng_batch_new(eng_db *db, eng_batch **out);

/* Releases @b (a batch need not be written). NULL is a no-op. */
void eng_batch_free(eng_batch *b);

/* Adds "set @key to @value in @cf" to @b. Errors: -EINVAL (bad @cf), -ENOMEM. */
TKV_MUST_USE int eng_batch_put(eng_batch *b, eng_cf cf, tkv_slice key, tkv_slice value);

/* Adds "delete @key from @cf" to @b. Errors: -EINVAL, -ENOMEM. */
TKV_MUST_USE int eng_batch_delete(eng_batch *b, eng_cf cf, tkv_slice key);

/* Adds "delete every key in [@begin, @end) of @cf" to @b. Both bounds are keys (an empty
 * @end is the empty key, not infinity); @begin == @end adds nothing.
 * Errors: -EINVAL (bad @cf, or @begin > @end), -ENOMEM. */
TKV_MUST_USE int eng_batch_delete_range(eng_batch *b, eng_cf cf, tkv_slice begin, tkv_slice end);

/* Returns the number of operations in @b. */
size_t eng_batch_count(const eng_batch *b);

/* Returns the encoded size of @b in bytes (RocksDB's WriteBatch representation; eng_mem uses
 * the same layout, so the figures match closely). */
size_t eng_batch_data_size(const eng_batch *b);

/* Empties @b, save points included, keeping its memory. */
void eng_batch_clear(eng_batch *b);

/* Records the current contents of @b, to go back to with eng_batch_rollback_to_save_point.
 * Save points nest. Errors: -ENOMEM. */
TKV_MUST_USE int eng_batch_set_save_point(eng_batch *b);

/* Removes every operation added since the newest save point, and that save point.
 * Errors: TKV_ENOTFOUND (no save point). */
TKV_MUST_USE int eng_batch_rollback_to_save_point(eng_batch *b);

/* Forgets the newest save point, keeping the operations. Errors: TKV_ENOTFOUND. */
TKV_MUST_USE int eng_batch_pop_save_point(eng_batch *b);

/* Applies @b to @db atomically: readers see all of it or none of it. With @sync the WAL is
 * fsynced before returning (eng_mem ignores @sync). @b is unchanged and may be reused.
 * Errors: -EINVAL (@b belongs to another engine), TKV_EENGINE (RocksDB's message), -ENOMEM
 * (eng_mem; nothing was applied). */
TKV_MUST_USE int eng_write(eng_db *db, eng_batch *b, bool sync);

/* ---- point reads ------------------------------------------------------------------------ */

typedef struct eng_snap eng_snap;
typedef struct eng_pinned eng_pinned;

/* Reads @key of @cf at the latest state. Found: sets *@found and replaces @value's contents.
 * Absent: *@found = false and @value is emptied.
 * Errors: -EINVAL, TKV_EENGINE, TKV_ECORRUPT, -ENOMEM (@value is then unchanged). */
TKV_MUST_USE int eng_get(eng_db *db, eng_cf cf, tkv_slice key, tkv_buf *value, bool *found);

/* Like eng_get, at snapshot @snap. */
TKV_MUST_USE int eng_snap_get(const eng_snap *snap, eng_cf cf, tkv_slice key, tkv_buf *value,
                              bool *found);

/* Reads @key of @cf without copying into a buffer: *@out is a pinned value (release with
 * eng_pinned_free), or NULL when the key is absent. Errors: as eng_get. */
TKV_MUST_USE int eng_get_pinned(eng_db *db, eng_cf cf, tkv_slice key, eng_pinned **out);

/* Like eng_get_pinned, at snapshot @snap. */
TKV_MUST_USE int eng_snap_get_pinned(const eng_snap *snap, eng_cf cf, tkv_slice key,
                                     eng_pinned **out);

/* Returns the bytes of @p. Lifetime: until eng_pinned_free(@p). */
tkv_slice eng_pinned_value(const eng_pinned *p);

/* Releases @p. NULL is a no-op. */
void eng_pinned_free(eng_pinned *p);

/* ---- snapshots -------------------------------------------------------------------------- */

/* Takes a consistent read view of @db in *@out: reads through it never see writes made after
 * it was taken, in any column family. Cheap in both engines.
 * Errors: -ENOMEM. Thread: the snapshot may be read from several threads at once. */
TKV_MUST_USE int eng_snap_open(eng_db *db, eng_snap **out);

/* Releases @snap. Iterators made from it must be freed first (asserted). NULL is a no-op. */
void eng_snap_close(eng_snap *snap);

/* Returns the engine @snap was taken from. */
eng_db *eng_snap_db(const eng_snap *snap);

/* ---- iterators -------------------------------------------------------------------------- */

typedef struct eng_iter eng_iter;

/* Creates an iterator over the keys of @cf in [@lower, @upper) in *@out, reading a view of
 * @db fixed at creation (later writes are not seen). An empty @lower or @upper means no bound;
 * the iterator copies both. @lower >= @upper gives an empty iterator.
 * The iterator starts unpositioned: call a seek first.
 * Errors: -EINVAL (bad @cf), -ENOMEM. */
TKV_MUST_USE int eng_iter_new(eng_db *db, eng_cf cf, tkv_slice lower, tkv_slice upper,
                              eng_iter **out);

/* Like eng_iter_new, reading snapshot @snap (which must outlive the iterator). */
TKV_MUST_USE int eng_snap_iter_new(const eng_snap *snap, eng_cf cf, tkv_slice lower,
                                   tkv_slice upper, eng_iter **out);

/* Releases @it. NULL is a no-op. */
void eng_iter_free(eng_iter *it);

/* Positions @it at the first key >= @key within the bounds (a @key below the lower bound
 * seeks the lower bound). Returns whether @it is now valid. */
bool eng_iter_seek(eng_iter *it, tkv_slice key);

/* Positions @it at the last key <= @key within the bounds (a @key at or past the upper bound
 * seeks the last key below it). Returns whether @it is now valid. */
bool eng_iter_seek_for_prev(eng_iter *it, tkv_slice key);

/* Positions @it at the first key within the bounds. Returns whether @it is valid. */
bool eng_iter_seek_to_first(eng_iter *it);

/* Positions @it at the last key within the bounds. Returns whether @it is valid. */
bool eng_iter_seek_to_last(eng_iter *it);

/* Moves @it to the next key; an invalid iterator stays invalid. Returns whether @it is
 * valid. */
bool eng_iter_next(eng_iter *it);

/* Moves @it to the previous key; an invalid iterator stays invalid. Returns whether @it is
 * valid. */
bool eng_iter_prev(eng_iter *it);

/* Returns whether @it is positioned at a key. */
bool eng_iter_valid(const eng_iter *it);

/* Returns the current key; @it must be valid. Lifetime: until @it moves or is freed. */
tkv_slice eng_iter_key(const eng_iter *it);

/* Returns the current value; @it must be valid. Lifetime: until @it moves or is freed. */
tkv_slice eng_iter_value(const eng_iter *it);

/* Returns 0, or the error that made @it invalid (TKV_EENGINE, TKV_ECORRUPT) with its message
 * in eng_iter_errmsg. Check it when a scan ends: invalid means "done" only if this is 0. */
TKV_MUST_USE int eng_iter_status(const eng_iter *it);

/* Returns the message for eng_iter_status ("" when it is 0). Lifetime: until @it moves. */
const char *eng_iter_errmsg(const eng_iter *it);

/* ---- SST files (raft snapshots) --------------------------------------------------------- */

typedef struct eng_sst_writer eng_sst_writer;

/* Creates an SST writer for a file at @path (replaced if it exists) in the format @db
 * ingests: RocksDB SST files for eng_rocks, eng_mem's own checksummed format for eng_mem.
 * Errors: TKV_EENGINE / -errno (the file cannot be created; message in eng_errmsg(@db)),
 * -ENOMEM. */
TKV_MUST_USE int eng_sst_writer_new(eng_db *db, const char *path, eng_sst_writer **out);

/* Appends "@key = @value"; keys must be strictly increasing.
 * Errors: -EINVAL (@key not greater than the previous key, or the writer is finished: the
 * writer is unchanged), TKV_EENGINE / -errno (I/O: the writer can then only be freed),
 * -ENOMEM. The message is in eng_sst_writer_errmsg. */
TKV_MUST_USE int eng_sst_writer_put(eng_sst_writer *w, tkv_slice key, tkv_slice value);

/* Appends a deletion of @key (ingesting it deletes the key). Same rules and errors as
 * eng_sst_writer_put. */
TKV_MUST_USE int eng_sst_writer_delete(eng_sst_writer *w, tkv_slice key);

/* Completes the file and syncs it; *@file_bytes (may be NULL) gets its size.
 * Errors: -EINVAL (no entries: callers skip empty column families, or already finished),
 * TKV_EENGINE / -errno (I/O). */
TKV_MUST_USE int eng_sst_writer_finish(eng_sst_writer *w, uint64_t *file_bytes);

/* Returns the number of entries added so far. */
uint64_t eng_sst_writer_count(const eng_sst_writer *w);

/* Returns the message of @w's last failure ("" if none). */
const char *eng_sst_writer_errmsg(const eng_sst_writer *w);

/* Releases @w; an unfinished file is removed. NULL is a no-op. */
void eng_sst_writer_free(eng_sst_writer *w);

/* Ingests the @n finished SST files at @paths into @cf atomically, as one new write: their
 * keys become visible together and replace the values of the same keys already in @cf (keys
 * of @cf in the files' range that the files do not contain are kept: delete the range first to
 * replace a whole range, as raft snapshot apply does). Snapshots taken before do not see the
 * ingested data. The files are moved into the engine: on success the paths are gone.
 * Errors: -EINVAL (bad @cf, @n 0), TKV_EENGINE (RocksDB's message: a missing or foreign file),
 * TKV_ECORRUPT (a damaged file), -errno, -ENOMEM. On failure nothing was ingested. */
TKV_MUST_USE int eng_ingest(eng_db *db, eng_cf cf, const char *const *paths, size_t n);

/* ---- sizes, properties, maintenance ----------------------------------------------------- */

/* Stores in *@bytes the approximate on-disk size of the keys of @cf in [@start, @end) (empty
 * @end: no end). eng_rocks counts SST files only, so data still in memtables counts after a
 * flush; eng_mem returns the exact sum of live key and value bytes.
 * Errors: -EINVAL, TKV_EENGINE. */
TKV_MUST_USE int eng_approx_size(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end,
                                 uint64_t *bytes);

/* Stores in *@keys the approximate number of keys of @cf in [@start, @end). eng_rocks
 * estimates it from the range's size and the column family's average entry size (RocksDB's
 * C API gives no per-range key count); eng_mem counts exactly. Errors: as eng_approx_size. */
TKV_MUST_USE int eng_approx_keys(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end,
                                 uint64_t *keys);

/* Integer properties for metrics (RocksDB's names). eng_mem answers these four. */
#define ENG_PROP_ESTIMATE_NUM_KEYS       "rocksdb.estimate-num-keys"
#define ENG_PROP_TOTAL_SST_FILES_SIZE    "rocksdb.total-sst-files-size"
#define ENG_PROP_CUR_SIZE_ALL_MEM_TABLES "rocksdb.cur-size-all-mem-tables"
#define ENG_PROP_ESTIMATE_LIVE_DATA_SIZE "rocksdb.estimate-live-data-size"

/* Stores the integer property @name of @cf in *@value.
 * Errors: TKV_ENOTFOUND (unknown property), -EINVAL. */
TKV_MUST_USE int eng_property_u64(eng_db *db, eng_cf cf, const char *name, uint64_t *value);

/* Flushes the memtables of every column family to SST files; with @wait, returns when done.
 * eng_mem: nothing to do. Errors: TKV_EENGINE. */
TKV_MUST_USE int eng_flush(eng_db *db, bool wait);

/* Flushes the memtable of @cf. Errors: -EINVAL, TKV_EENGINE. */
TKV_MUST_USE int eng_flush_cf(eng_db *db, eng_cf cf, bool wait);

/* Compacts the keys of @cf in [@start, @end) (empty: unbounded on that side) down to the
 * bottom level, dropping deleted and overwritten versions that no snapshot needs. eng_mem
 * drops the same versions from memory. Errors: -EINVAL, TKV_EENGINE. */
TKV_MUST_USE int eng_compact_range(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end);

#endif /* TKV_ENGINE_H */
