/*
 * eng_int.h: what engine.c shares with the two implementations (not API).
 *
 * engine.c owns argument checks, iterator bound handling, SST key order, error messages and
 * the live-object count; an implementation (eng_rocks.c, eng_mem.c) fills an eng_ops table
 * and embeds the base structs below as the first member of its own.
 * Threads: as engine.h. Dependencies: engine.h only (never RocksDB headers).
 */
#ifndef TKV_ENG_INT_H
#define TKV_ENG_INT_H

#include <stdarg.h>
#include <stdatomic.h>

#include "engine/engine.h"

typedef struct eng_ops eng_ops;

struct eng_db {
    const eng_ops *ops;
    char name[32];
    /* Snapshots, iterators, batches, pinned values and SST writers not yet released. */
    atomic_long live;
};

struct eng_snap {
    eng_db *db;
    atomic_long iters; /* iterators reading this snapshot: it must outlive them */
};

struct eng_batch {
    eng_db *db;
    size_t save_points; /* nesting depth, checked before the implementation is called */
};

struct eng_pinned {
    eng_db *db;
    tkv_slice value;
};

struct eng_iter {
    eng_db *db;
    eng_snap *snap;  /* the snapshot read, or NULL */
    uint8_t *bounds; /* one block holding copies of lower and upper */
    tkv_slice lower; /* len 0: none */
    tkv_slice upper; /* len 0: none */
    bool empty;      /* lower >= upper: never valid, the implementation is not called */
    bool valid;
    tkv_slice key; /* set by the implementation when it returns true */
    tkv_slice value;
    int status;
    char errmsg[TKV_ERRMSG_LEN];
};

struct eng_sst_writer {
    eng_db *db;
    char *path;
    tkv_buf last_key;
    uint64_t count;
    bool finished;
    bool broken; /* an I/O error happened: only free is allowed */
    char errmsg[TKV_ERRMSG_LEN];
};

/* The implementation's side. Arguments are already checked (valid column family, ranges in
 * order, iterator bounds copied, save point depth); each function reports failures with
 * eng__errorf / eng__iter_fail / eng__sst_fail before returning the code. Constructors
 * allocate the whole object, set nothing in the base (engine.c does) and return 0 or an
 * error. */
struct eng_ops {
    const char *kind;
    void (*close)(eng_db *db);

    int (*batch_new)(eng_db *db, eng_batch **out);
    void (*batch_free)(eng_batch *b);
    int (*batch_put)(eng_batch *b, eng_cf cf, tkv_slice key, tkv_slice value);
    int (*batch_delete)(eng_batch *b, eng_cf cf, tkv_slice key);
    int (*batch_delete_range)(eng_batch *b, eng_cf cf, tkv_slice begin, tkv_slice end);
    size_t (*batch_count)(const eng_batch *b);
    size_t (*batch_data_size)(const eng_batch *b);
    void (*batch_clear)(eng_batch *b);
    int (*batch_set_save_point)(eng_batch *b);
    int (*batch_rollback)(eng_batch *b);
    int (*batch_pop_save_point)(eng_batch *b);
    int (*write)(eng_db *db, eng_batch *b, bool sync);

    /* @snap NULL reads the latest state. */
    int (*get)(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice key, tkv_buf *value,
               bool *found);
    int (*get_pinned)(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice key, eng_pinned **out);
    void (*pinned_free)(eng_pinned *p);

    int (*snap_open)(eng_db *db, eng_snap **out);
    void (*snap_close)(eng_snap *snap);

    /* @lower/@upper point into the iterator's own copies (len 0: none) and stay valid for
     * its life. The movers return whether the iterator is valid and set key and value. */
    int (*iter_new)(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice lower, tkv_slice upper,
                    eng_iter **out);
    void (*iter_free)(eng_iter *it);
    bool (*iter_seek)(eng_iter *it, tkv_slice key);
    bool (*iter_seek_for_prev)(eng_iter *it, tkv_slice key);
    bool (*iter_seek_to_first)(eng_iter *it);
    bool (*iter_seek_to_last)(eng_iter *it);
    bool (*iter_next)(eng_iter *it);
    bool (*iter_prev)(eng_iter *it);

    int (*sst_writer_new)(eng_db *db, const char *path, eng_sst_writer **out);
    int (*sst_put)(eng_sst_writer *w, tkv_slice key, tkv_slice value);
    int (*sst_delete)(eng_sst_writer *w, tkv_slice key);
    int (*sst_finish)(eng_sst_writer *w, uint64_t *file_bytes);
    void (*sst_free)(eng_sst_writer *w); /* engine.c then removes an unfinished file */
    int (*ingest)(eng_db *db, eng_cf cf, const char *const *paths, size_t n);

    /* @end len 0: unbounded. */
    int (*approx_size)(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end, uint64_t *bytes);
    int (*approx_keys)(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end, uint64_t *keys);
    int (*property_u64)(eng_db *db, eng_cf cf, const char *name, uint64_t *value);
    int (*flush_cf)(eng_db *db, eng_cf cf, bool wait);
    int (*compact_range)(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end);
};

/* Initializes the base of a freshly opened engine. */
void eng__db_init(eng_db *db, const eng_ops *ops, const eng_options *opts);

/* Records "<name> engine: <formatted text>" as the calling thread's message for @db and
 * returns @err, so that implementations can write `return eng__errorf(db, rc, ...)`. */
TKV_PRINTF(3, 4) int eng__errorf(const eng_db *db, int err, const char *fmt, ...);

/* Records an iterator failure: sets its status and message and makes it invalid. */
TKV_PRINTF(3, 4) void eng__iter_fail(eng_iter *it, int err, const char *fmt, ...);

/* Records an SST writer failure in its message and returns @err. */
TKV_PRINTF(3, 4) int eng__sst_fail(eng_sst_writer *w, int err, const char *fmt, ...);

/* eng_mem's SST files (eng_mem_sst.c), in eng_mem's vtable. */
int eng__mem_sst_writer_new(eng_db *db, const char *path, eng_sst_writer **out);
int eng__mem_sst_put(eng_sst_writer *w, tkv_slice key, tkv_slice value);
int eng__mem_sst_delete(eng_sst_writer *w, tkv_slice key);
int eng__mem_sst_finish(eng_sst_writer *w, uint64_t *file_bytes);
void eng__mem_sst_free(eng_sst_writer *w);
int eng__mem_ingest(eng_db *db, eng_cf cf, const char *const *paths, size_t n);

#endif /* TKV_ENG_INT_H */
