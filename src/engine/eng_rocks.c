/*
 * eng_rocks.c: the engine on RocksDB through its C API. The only file that sees RocksDB.
 *
 * Every RocksDB error arrives as a malloc()ed "<Status>: <message>" string; rocks_fail()
 * turns it into a code (TKV_ECORRUPT for "Corruption:", TKV_EENGINE otherwise) and the
 * caller's message, and frees it.
 */
#include <stdio.h>
#include <stdlib.h>

#include <rocksdb/c.h>

#include "engine/eng_int.h"

typedef struct rocks_db {
    eng_db base;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_cache_t *cache;
    rocksdb_column_family_handle_t *cf[ENG_CF_COUNT];
    rocksdb_column_family_handle_t **extra_cf; /* column families we do not use */
    size_t n_extra_cf;
    rocksdb_writeoptions_t *wo_sync;
    rocksdb_writeoptions_t *wo_nosync;
    rocksdb_readoptions_t *ro;
    rocksdb_flushoptions_t *fo_wait;
    rocksdb_flushoptions_t *fo_nowait;
    rocksdb_envoptions_t *envopts;
    rocksdb_ingestexternalfileoptions_t *ingest_opts;
    rocksdb_compactoptions_t *compact_opts;
} rocks_db;

typedef struct rocks_batch {
    eng_batch base;
    rocksdb_writebatch_t *wb;
} rocks_batch;

typedef struct rocks_snap {
    eng_snap base;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
} rocks_snap;

typedef struct rocks_pinned {
    eng_pinned base;
    rocksdb_pinnableslice_t *ps;
} rocks_pinned;

typedef struct rocks_iter {
    eng_iter base;
    rocksdb_readoptions_t *ro; /* holds the bounds' slices: lives as long as the iterator */
    rocksdb_iterator_t *it;
} rocks_iter;

typedef struct rocks_sst {
    eng_sst_writer base;
    rocksdb_sstfilewriter_t *w;
} rocks_sst;

static rocks_db *R(eng_db *db)
{
    return (rocks_db *)db;
}

static const char *cp(tkv_slice s)
{
    /* RocksDB never dereferences a zero-length key, but keep the pointer non-NULL anyway. */
    return s.data != NULL ? (const char *)s.data : "";
}

/* Writes a message for a caller without a handle (open, destroy); long causes are cut. */
static TKV_PRINTF(2, 3) void set_msg(char *dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, TKV_ERRMSG_LEN, fmt, ap);
    va_end(ap);
}

static int status_code(const char *err)
{
    return strncmp(err, "Corruption:", 11) == 0 ? TKV_ECORRUPT : TKV_EENGINE;
}

/* Records RocksDB's message @err for @db under @op, frees it, returns the code. */
static int rocks_fail(eng_db *db, const char *op, char *err)
{
    int code = status_code(err);
    eng__errorf(db, code, "%s: %s", op, err);
    rocksdb_free(err);
    return code;
}

/* ---- open, close, destroy --------------------------------------------------------------- */

static void opts_apply(rocksdb_options_t *o, const eng_options *e, rocksdb_cache_t **cache)
{
    rocksdb_options_set_create_if_missing(o, e->create_if_missing);
    rocksdb_options_set_create_missing_column_families(o, 1);
    if (e->write_buffer_bytes > 0)
        rocksdb_options_set_write_buffer_size(o, e->write_buffer_bytes);
    if (e->max_background_jobs > 0)
        rocksdb_options_set_max_background_jobs(o, e->max_background_jobs);
    if (e->bytes_per_sync > 0)
        rocksdb_options_set_bytes_per_sync(o, e->bytes_per_sync);
    if (e->wal_bytes_per_sync > 0)
        rocksdb_options_set_wal_bytes_per_sync(o, e->wal_bytes_per_sync);
    if (e->max_total_wal_bytes > 0)
        rocksdb_options_set_max_total_wal_size(o, e->max_total_wal_bytes);
    if (e->recycle_wal_files > 0)
        rocksdb_options_set_recycle_log_file_num(o, (size_t)e->recycle_wal_files);
    if (e->wal_dir != NULL)
        rocksdb_options_set_wal_dir(o, e->wal_dir);
    if (e->rocksdb_env != NULL)
        rocksdb_options_set_env(o, (rocksdb_env_t *)e->rocksdb_env);
    /* TiKV's choices: dynamic level sizes keep space amplification low, a few info logs. */
    rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);
    rocksdb_options_set_keep_log_file_num(o, 4);
    /* TiKV's target-file-size-base (8MB; RocksDB's is 64MB). It also bounds what a compaction
     * preallocates per output file (about 1.1x): with 64MB, one compaction on a nearly full
     * disk asked for ~70MB at once, failed with ENOSPC while the disk watcher still saw room
     * above the reserve, and left the engine in its background-error state. */
    rocksdb_options_set_target_file_size_base(o, ENG_TARGET_FILE_BYTES);

    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    if (e->block_cache_bytes > 0) {
        *cache = rocksdb_cache_create_lru(e->block_cache_bytes);
        rocksdb_block_based_options_set_block_cache(t, *cache);
    }
    /* A bloom filter saves a disk read per point get of a missing key. */
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(o, t); /* copies the table options */
    rocksdb_block_based_options_destroy(t);
}

static void rocks_free_handles(rocks_db *r)
{
    for (int i = 0; i < ENG_CF_COUNT; i++)
        if (r->cf[i] != NULL)
            rocksdb_column_family_handle_destroy(r->cf[i]);
    for (size_t i = 0; i < r->n_extra_cf; i++)
        if (r->extra_cf[i] != NULL)
            rocksdb_column_family_handle_destroy(r->extra_cf[i]);
    tkv_free(r->extra_cf);
    if (r->db != NULL)
        rocksdb_close(r->db);
    if (r->opts != NULL)
        rocksdb_options_destroy(r->opts);
    if (r->cache != NULL)
        rocksdb_cache_destroy(r->cache);
    if (r->wo_sync != NULL)
        rocksdb_writeoptions_destroy(r->wo_sync);
    if (r->wo_nosync != NULL)
        rocksdb_writeoptions_destroy(r->wo_nosync);
    if (r->ro != NULL)
        rocksdb_readoptions_destroy(r->ro);
    if (r->fo_wait != NULL)
        rocksdb_flushoptions_destroy(r->fo_wait);
    if (r->fo_nowait != NULL)
        rocksdb_flushoptions_destroy(r->fo_nowait);
    if (r->envopts != NULL)
        rocksdb_envoptions_destroy(r->envopts);
    if (r->ingest_opts != NULL)
        rocksdb_ingestexternalfileoptions_destroy(r->ingest_opts);
    if (r->compact_opts != NULL)
        rocksdb_compactoptions_destroy(r->compact_opts);
    tkv_free(r);
}

static void rocks_close(eng_db *db)
{
    rocks_free_handles(R(db));
}

static bool is_our_cf(const char *name)
{
    for (int i = 0; i < ENG_CF_COUNT; i++)
        if (strcmp(name, eng_cf_name((eng_cf)i)) == 0)
            return true;
    return false;
}

/* Opens the database with our column families plus any others already on disk (RocksDB
 * refuses to open a database without naming all of them). */
static int rocks_open_cfs(rocks_db *r, const char *path, char errmsg[TKV_ERRMSG_LEN])
{
    size_t n_disk = 0;
    char *err = NULL;
    char **disk = rocksdb_list_column_families(r->opts, path, &n_disk, &err);
    if (err != NULL) {
        /* A new database has no list yet; any real problem is reported by the open. The C API
         * returns an (empty) array even on failure. */
        rocksdb_free(err);
        err = NULL;
        if (disk != NULL)
            rocksdb_list_column_families_destroy(disk, n_disk);
        disk = NULL;
        n_disk = 0;
    }
    size_t n_extra = 0;
    for (size_t i = 0; i < n_disk; i++)
        if (!is_our_cf(disk[i]))
            n_extra++;
    size_t total = ENG_CF_COUNT + n_extra;
    const char **names = tkv_calloc(total, sizeof(*names));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    const rocksdb_options_t **cf_opts = tkv_calloc(total, sizeof(*cf_opts));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    rocksdb_column_family_handle_t **handles = tkv_calloc(total, sizeof(*handles));
    int rc = 0;
    if (names == NULL || cf_opts == NULL || handles == NULL) {
        set_msg(errmsg, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    size_t k = 0;
    for (int i = 0; i < ENG_CF_COUNT; i++)
        names[k++] = eng_cf_name((eng_cf)i);
    for (size_t i = 0; i < n_disk; i++)
        if (!is_our_cf(disk[i]))
            names[k++] = disk[i];
    /* Every column family uses the same options (one shared block cache). */
    for (size_t i = 0; i < total; i++)
        cf_opts[i] = r->opts;

    r->db = rocksdb_open_column_families(r->opts, path, (int)total, names, cf_opts, handles, &err);
    if (err != NULL) {
        set_msg(errmsg, "%s", err);
        rc = status_code(err);
        rocksdb_free(err);
        r->db = NULL;
        goto out;
    }
    for (int i = 0; i < ENG_CF_COUNT; i++)
        r->cf[i] = handles[i];
    if (n_extra > 0) {
        r->extra_cf = handles;
        handles = NULL;
        /* The first ENG_CF_COUNT entries now belong to r->cf; clear them so they are
         * destroyed once. */
        for (int i = 0; i < ENG_CF_COUNT; i++)
            r->extra_cf[i] = NULL;
        r->n_extra_cf = total;
    }
out:
    if (disk != NULL)
        rocksdb_list_column_families_destroy(disk, n_disk);
    tkv_free(names);
    tkv_free(cf_opts);
    tkv_free(handles);
    return rc;
}

static const eng_ops rocks_ops;

int eng_rocks_open(const char *path, const eng_options *opts, eng_db **out,
                   char errmsg[TKV_ERRMSG_LEN])
{
    char local[TKV_ERRMSG_LEN];
    char *msg = errmsg != NULL ? errmsg : local;
    msg[0] = '\0';
    eng_options defaults;
    if (opts == NULL) {
        eng_options_init(&defaults);
        opts = &defaults;
    }
    const char *name = opts->name != NULL ? opts->name : "engine";
    if (path == NULL) {
        set_msg(msg, "open %s engine: no path", name);
        return -EINVAL;
    }
    if (opts->recycle_wal_files > 0 && opts->rocksdb_env != NULL) {
        set_msg(msg,
                "open %s engine at %s: recycled WAL files and an encrypting environment "
                "do not mix (AES-CTR would write twice at one offset)",
                name, path);
        return -EINVAL;
    }
    rocks_db *r = tkv_calloc(1, sizeof(*r));
    if (r == NULL) {
        set_msg(msg, "open %s engine at %s: out of memory", name, path);
        return -ENOMEM;
    }
    eng__db_init(&r->base, &rocks_ops, opts);
    r->opts = rocksdb_options_create();
    opts_apply(r->opts, opts, &r->cache);

    char cause[TKV_ERRMSG_LEN];
    int rc = rocks_open_cfs(r, path, cause);
    if (rc != 0) {
        set_msg(msg, "open %s engine at %s: %s", name, path, cause);
        rocks_free_handles(r);
        return rc;
    }
    r->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(r->wo_sync, 1);
    r->wo_nosync = rocksdb_writeoptions_create();
    r->ro = rocksdb_readoptions_create();
    r->fo_wait = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(r->fo_wait, 1);
    r->fo_nowait = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(r->fo_nowait, 0);
    r->envopts = rocksdb_envoptions_create();
    r->ingest_opts = rocksdb_ingestexternalfileoptions_create();
    /* Raft snapshots hand their files over: link instead of copying. */
    rocksdb_ingestexternalfileoptions_set_move_files(r->ingest_opts, 1);
    r->compact_opts = rocksdb_compactoptions_create();
    /* Compact the bottom level too, so that deleted data really goes away (kForce). */
    rocksdb_compactoptions_set_bottommost_level_compaction(r->compact_opts, 2);
    *out = &r->base;
    return 0;
}

int eng_rocks_destroy(const char *path, const eng_options *opts, char errmsg[TKV_ERRMSG_LEN])
{
    char local[TKV_ERRMSG_LEN];
    char *msg = errmsg != NULL ? errmsg : local;
    msg[0] = '\0';
    if (path == NULL) {
        set_msg(msg, "destroy engine: no path");
        return -EINVAL;
    }
    eng_options defaults;
    if (opts == NULL) {
        eng_options_init(&defaults);
        opts = &defaults;
    }
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_cache_t *cache = NULL;
    opts_apply(o, opts, &cache);
    char *err = NULL;
    rocksdb_destroy_db(o, path, &err);
    rocksdb_options_destroy(o);
    if (cache != NULL)
        rocksdb_cache_destroy(cache);
    if (err != NULL) {
        set_msg(msg, "destroy engine at %s: %s", path, err);
        int code = status_code(err);
        rocksdb_free(err);
        return code;
    }
    return 0;
}

/* ---- write batches ---------------------------------------------------------------------- */

static rocksdb_writebatch_t *WB(const eng_batch *b)
{
    return ((const rocks_batch *)b)->wb;
}

static int rocks_batch_new(eng_db *db, eng_batch **out)
{
    rocks_batch *b = tkv_calloc(1, sizeof(*b));
    if (b == NULL)
        return eng__errorf(db, -ENOMEM, "batch: out of memory");
    b->wb = rocksdb_writebatch_create();
    *out = &b->base;
    return 0;
}

static void rocks_batch_free(eng_batch *b)
{
    rocksdb_writebatch_destroy(WB(b));
    tkv_free(b);
}

static int rocks_batch_put(eng_batch *b, eng_cf cf, tkv_slice key, tkv_slice value)
{
    rocksdb_writebatch_put_cf(WB(b), R(b->db)->cf[cf], cp(key), key.len, cp(value), value.len);
    return 0;
}

static int rocks_batch_delete(eng_batch *b, eng_cf cf, tkv_slice key)
{
    rocksdb_writebatch_delete_cf(WB(b), R(b->db)->cf[cf], cp(key), key.len);
    return 0;
}

static int rocks_batch_delete_range(eng_batch *b, eng_cf cf, tkv_slice begin, tkv_slice end)
{
    rocksdb_writebatch_delete_range_cf(WB(b), R(b->db)->cf[cf], cp(begin), begin.len, cp(end),
                                       end.len);
    return 0;
}

static size_t rocks_batch_count(const eng_batch *b)
{
    /* The C API lacks const; counting does not modify the batch. */
    return (size_t)rocksdb_writebatch_count(WB(b));
}

static size_t rocks_batch_data_size(const eng_batch *b)
{
    size_t size = 0;
    rocksdb_writebatch_data(WB(b), &size);
    return size;
}

static void rocks_batch_clear(eng_batch *b)
{
    rocksdb_writebatch_clear(WB(b));
}

static int rocks_batch_set_save_point(eng_batch *b)
{
    rocksdb_writebatch_set_save_point(WB(b));
    return 0;
}

static int rocks_batch_rollback(eng_batch *b)
{
    char *err = NULL;
    rocksdb_writebatch_rollback_to_save_point(WB(b), &err);
    return err != NULL ? rocks_fail(b->db, "batch rollback", err) : 0;
}

static int rocks_batch_pop_save_point(eng_batch *b)
{
    char *err = NULL;
    rocksdb_writebatch_pop_save_point(WB(b), &err);
    return err != NULL ? rocks_fail(b->db, "batch pop save point", err) : 0;
}

static int rocks_write(eng_db *db, eng_batch *b, bool sync)
{
    rocks_db *r = R(db);
    char *err = NULL;
    rocksdb_write(r->db, sync ? r->wo_sync : r->wo_nosync, WB(b), &err);
    return err != NULL ? rocks_fail(db, "write", err) : 0;
}

/* ---- reads and snapshots ---------------------------------------------------------------- */

static const rocksdb_readoptions_t *read_opts(eng_db *db, const eng_snap *snap)
{
    return snap != NULL ? ((const rocks_snap *)snap)->ro : R(db)->ro;
}

/* Returns a pinned value or NULL (absent or failed: *rc says which). */
static rocksdb_pinnableslice_t *pinned_get(eng_db *db, const eng_snap *snap, eng_cf cf,
                                           tkv_slice key, int *rc)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(R(db)->db, read_opts(db, snap),
                                                        R(db)->cf[cf], cp(key), key.len, &err);
    *rc = err != NULL ? rocks_fail(db, "get", err) : 0;
    return ps;
}

static int rocks_get(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice key, tkv_buf *value,
                     bool *found)
{
    int rc;
    rocksdb_pinnableslice_t *ps = pinned_get(db, snap, cf, key, &rc);
    if (rc != 0)
        return rc;
    if (ps == NULL) {
        *found = false;
        tkv_buf_reset(value);
        return 0;
    }
    size_t len = 0;
    const char *v = rocksdb_pinnableslice_value(ps, &len);
    rc = tkv_buf_set(value, v, len);
    rocksdb_pinnableslice_destroy(ps);
    if (rc != 0)
        return eng__errorf(db, rc, "get: out of memory");
    *found = true;
    return 0;
}

static int rocks_get_pinned(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice key,
                            eng_pinned **out)
{
    rocks_pinned *p = tkv_calloc(1, sizeof(*p));
    if (p == NULL)
        return eng__errorf(db, -ENOMEM, "get: out of memory");
    int rc;
    p->ps = pinned_get(db, snap, cf, key, &rc);
    if (rc != 0 || p->ps == NULL) {
        tkv_free(p);
        *out = NULL;
        return rc;
    }
    size_t len = 0;
    const char *v = rocksdb_pinnableslice_value(p->ps, &len);
    p->base.value = tkv_slice_of(v, len);
    *out = &p->base;
    return 0;
}

static void rocks_pinned_free(eng_pinned *p)
{
    rocksdb_pinnableslice_destroy(((rocks_pinned *)p)->ps);
    tkv_free(p);
}

static int rocks_snap_open(eng_db *db, eng_snap **out)
{
    rocks_snap *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        return eng__errorf(db, -ENOMEM, "snapshot: out of memory");
    s->snap = rocksdb_create_snapshot(R(db)->db);
    s->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(s->ro, s->snap);
    *out = &s->base;
    return 0;
}

static void rocks_snap_close(eng_snap *snap)
{
    rocks_snap *s = (rocks_snap *)snap;
    rocksdb_readoptions_destroy(s->ro);
    rocksdb_release_snapshot(R(snap->db)->db, s->snap);
    tkv_free(s);
}

/* ---- iterators -------------------------------------------------------------------------- */

static rocks_iter *RI(eng_iter *it)
{
    return (rocks_iter *)it;
}

static int rocks_iter_new(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice lower,
                          tkv_slice upper, eng_iter **out)
{
    rocks_iter *ri = tkv_calloc(1, sizeof(*ri));
    if (ri == NULL)
        return eng__errorf(db, -ENOMEM, "iterator: out of memory");
    ri->ro = rocksdb_readoptions_create();
    if (snap != NULL)
        rocksdb_readoptions_set_snapshot(ri->ro, ((const rocks_snap *)snap)->snap);
    /* The read options keep pointers to the bound bytes, which the iterator owns. */
    if (lower.len > 0)
        rocksdb_readoptions_set_iterate_lower_bound(ri->ro, cp(lower), lower.len);
    if (upper.len > 0)
        rocksdb_readoptions_set_iterate_upper_bound(ri->ro, cp(upper), upper.len);
    ri->it = rocksdb_create_iterator_cf(R(db)->db, ri->ro, R(db)->cf[cf]);
    *out = &ri->base;
    return 0;
}

static void rocks_iter_free(eng_iter *it)
{
    rocksdb_iter_destroy(RI(it)->it);
    rocksdb_readoptions_destroy(RI(it)->ro);
    tkv_free(it);
}

/* Loads the position after a move: key and value, or the error that ended the scan. */
static bool rocks_iter_load(eng_iter *it)
{
    rocksdb_iterator_t *ri = RI(it)->it;
    if (rocksdb_iter_valid(ri)) {
        size_t klen = 0, vlen = 0;
        const char *k = rocksdb_iter_key(ri, &klen);
        const char *v = rocksdb_iter_value(ri, &vlen);
        it->key = tkv_slice_of(k, klen);
        it->value = tkv_slice_of(v, vlen);
        return true;
    }
    char *err = NULL;
    rocksdb_iter_get_error(ri, &err);
    if (err != NULL) {
        eng__iter_fail(it, status_code(err), "%s engine: iterator: %s", it->db->name, err);
        rocksdb_free(err);
    }
    return false;
}

static bool rocks_iter_seek(eng_iter *it, tkv_slice key)
{
    rocksdb_iter_seek(RI(it)->it, cp(key), key.len);
    return rocks_iter_load(it);
}

static bool rocks_iter_seek_for_prev(eng_iter *it, tkv_slice key)
{
    rocksdb_iter_seek_for_prev(RI(it)->it, cp(key), key.len);
    return rocks_iter_load(it);
}

static bool rocks_iter_seek_to_first(eng_iter *it)
{
    rocksdb_iter_seek_to_first(RI(it)->it);
    return rocks_iter_load(it);
}

static bool rocks_iter_seek_to_last(eng_iter *it)
{
    rocksdb_iter_seek_to_last(RI(it)->it);
    return rocks_iter_load(it);
}

static bool rocks_iter_next(eng_iter *it)
{
    rocksdb_iter_next(RI(it)->it);
    return rocks_iter_load(it);
}

static bool rocks_iter_prev(eng_iter *it)
{
    rocksdb_iter_prev(RI(it)->it);
    return rocks_iter_load(it);
}

/* ---- SST files -------------------------------------------------------------------------- */

static rocksdb_sstfilewriter_t *SW(eng_sst_writer *w)
{
    return ((rocks_sst *)w)->w;
}

static int rocks_sst_writer_new(eng_db *db, const char *path, eng_sst_writer **out)
{
    rocks_sst *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        return eng__errorf(db, -ENOMEM, "sst writer: out of memory");
    s->w = rocksdb_sstfilewriter_create(R(db)->envopts, R(db)->opts);
    char *err = NULL;
    rocksdb_sstfilewriter_open(s->w, path, &err);
    if (err != NULL) {
        rocksdb_sstfilewriter_destroy(s->w);
        tkv_free(s);
        return rocks_fail(db, "sst writer open", err);
    }
    *out = &s->base;
    return 0;
}

static int sst_result(eng_sst_writer *w, const char *op, char *err)
{
    if (err == NULL)
        return 0;
    int code = eng__sst_fail(w, status_code(err), "sst writer %s: %s: %s", w->path, op, err);
    rocksdb_free(err);
    return code;
}

static int rocks_sst_put(eng_sst_writer *w, tkv_slice key, tkv_slice value)
{
    char *err = NULL;
    rocksdb_sstfilewriter_put(SW(w), cp(key), key.len, cp(value), value.len, &err);
    return sst_result(w, "put", err);
}

static int rocks_sst_delete(eng_sst_writer *w, tkv_slice key)
{
    char *err = NULL;
    rocksdb_sstfilewriter_delete(SW(w), cp(key), key.len, &err);
    return sst_result(w, "delete", err);
}

static int rocks_sst_finish(eng_sst_writer *w, uint64_t *file_bytes)
{
    char *err = NULL;
    rocksdb_sstfilewriter_finish(SW(w), &err);
    if (err != NULL)
        return sst_result(w, "finish", err);
    rocksdb_sstfilewriter_file_size(SW(w), file_bytes);
    return 0;
}

static void rocks_sst_free(eng_sst_writer *w)
{
    rocksdb_sstfilewriter_destroy(SW(w));
    tkv_free(w);
}

static int rocks_ingest(eng_db *db, eng_cf cf, const char *const *paths, size_t n)
{
    char *err = NULL;
    rocksdb_ingest_external_file_cf(R(db)->db, R(db)->cf[cf], paths, n, R(db)->ingest_opts, &err);
    return err != NULL ? rocks_fail(db, "ingest", err) : 0;
}

/* ---- sizes, properties, maintenance ----------------------------------------------------- */

/* An unbounded end becomes "just past the last key" (RocksDB needs a limit key). */
static int range_end(eng_db *db, eng_cf cf, tkv_slice end, tkv_buf *limit, bool *any)
{
    *any = true;
    if (end.len > 0)
        return tkv_buf_set(limit, end.data, end.len);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(R(db)->db, R(db)->ro, R(db)->cf[cf]);
    rocksdb_iter_seek_to_last(it);
    int rc = 0;
    if (rocksdb_iter_valid(it)) {
        size_t klen = 0;
        const char *k = rocksdb_iter_key(it, &klen);
        rc = tkv_buf_set(limit, k, klen);
        if (rc == 0)
            rc = tkv_buf_append_u8(limit, 0);
    } else {
        char *err = NULL;
        rocksdb_iter_get_error(it, &err);
        if (err != NULL)
            rc = rocks_fail(db, "approximate size", err);
        *any = false;
    }
    rocksdb_iter_destroy(it);
    return rc;
}

static int rocks_approx_size(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end, uint64_t *bytes)
{
    tkv_buf limit;
    tkv_buf_init(&limit);
    bool any;
    int rc = range_end(db, cf, end, &limit, &any);
    if (rc != 0 || !any) {
        tkv_buf_deinit(&limit);
        if (rc == -ENOMEM)
            return eng__errorf(db, rc, "approximate size: out of memory");
        *bytes = 0;
        return rc;
    }
    const char *s = cp(start), *l = (const char *)limit.data;
    size_t slen = start.len, llen = limit.len;
    uint64_t size = 0;
    char *err = NULL;
    rocksdb_approximate_sizes_cf(R(db)->db, R(db)->cf[cf], 1, &s, &slen, &l, &llen, &size, &err);
    tkv_buf_deinit(&limit);
    if (err != NULL)
        return rocks_fail(db, "approximate size", err);
    *bytes = size;
    return 0;
}

static int rocks_property_u64(eng_db *db, eng_cf cf, const char *name, uint64_t *value)
{
    if (rocksdb_property_int_cf(R(db)->db, R(db)->cf[cf], name, value) != 0)
        return eng__errorf(db, TKV_ENOTFOUND, "unknown integer property %s", name);
    return 0;
}

static int rocks_approx_keys(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end, uint64_t *keys)
{
    uint64_t range_bytes = 0, total_keys = 0, total_bytes = 0;
    int rc = rocks_approx_size(db, cf, start, end, &range_bytes);
    if (rc == 0)
        rc = rocks_property_u64(db, cf, ENG_PROP_ESTIMATE_NUM_KEYS, &total_keys);
    if (rc == 0)
        rc = rocks_property_u64(db, cf, ENG_PROP_TOTAL_SST_FILES_SIZE, &total_bytes);
    if (rc != 0)
        return rc;
    /* The C API has no per-range key count: scale the range's share of the SST bytes. */
    if (total_bytes == 0 || range_bytes == 0) {
        *keys = 0;
        return 0;
    }
    double share = (double)range_bytes / (double)total_bytes;
    uint64_t est = (uint64_t)(share * (double)total_keys + 0.5);
    *keys = est > total_keys ? total_keys : est;
    return 0;
}

static int rocks_flush_cf(eng_db *db, eng_cf cf, bool wait)
{
    char *err = NULL;
    rocksdb_flush_cf(R(db)->db, wait ? R(db)->fo_wait : R(db)->fo_nowait, R(db)->cf[cf], &err);
    return err != NULL ? rocks_fail(db, "flush", err) : 0;
}

static int rocks_compact_range(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end)
{
    /* NULL bounds mean "from the first key" and "to the last key". */
    rocksdb_compact_range_cf_opt(R(db)->db, R(db)->cf[cf], R(db)->compact_opts,
                                 start.len > 0 ? cp(start) : NULL, start.len,
                                 end.len > 0 ? cp(end) : NULL, end.len);
    return 0;
}

static const eng_ops rocks_ops = {
    .kind = "rocksdb",
    .close = rocks_close,
    .batch_new = rocks_batch_new,
    .batch_free = rocks_batch_free,
    .batch_put = rocks_batch_put,
    .batch_delete = rocks_batch_delete,
    .batch_delete_range = rocks_batch_delete_range,
    .batch_count = rocks_batch_count,
    .batch_data_size = rocks_batch_data_size,
    .batch_clear = rocks_batch_clear,
    .batch_set_save_point = rocks_batch_set_save_point,
    .batch_rollback = rocks_batch_rollback,
    .batch_pop_save_point = rocks_batch_pop_save_point,
    .write = rocks_write,
    .get = rocks_get,
    .get_pinned = rocks_get_pinned,
    .pinned_free = rocks_pinned_free,
    .snap_open = rocks_snap_open,
    .snap_close = rocks_snap_close,
    .iter_new = rocks_iter_new,
    .iter_free = rocks_iter_free,
    .iter_seek = rocks_iter_seek,
    .iter_seek_for_prev = rocks_iter_seek_for_prev,
    .iter_seek_to_first = rocks_iter_seek_to_first,
    .iter_seek_to_last = rocks_iter_seek_to_last,
    .iter_next = rocks_iter_next,
    .iter_prev = rocks_iter_prev,
    .sst_writer_new = rocks_sst_writer_new,
    .sst_put = rocks_sst_put,
    .sst_delete = rocks_sst_delete,
    .sst_finish = rocks_sst_finish,
    .sst_free = rocks_sst_free,
    .ingest = rocks_ingest,
    .approx_size = rocks_approx_size,
    .approx_keys = rocks_approx_keys,
    .property_u64 = rocks_property_u64,
    .flush_cf = rocks_flush_cf,
    .compact_range = rocks_compact_range,
};
