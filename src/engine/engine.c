/*
 * engine.c: the engine interface: argument checks, iterator bounds, SST key order, error
 * messages, then dispatch to the implementation's eng_ops table.
 */
#include <stdio.h>
#include <unistd.h>

#include "engine/eng_int.h"

/* ---- names, options, messages ----------------------------------------------------------- */

static const char *const cf_names[ENG_CF_COUNT] = {"default", "lock", "write", "raft"};

const char *eng_cf_name(eng_cf cf)
{
    return (unsigned)cf < ENG_CF_COUNT ? cf_names[cf] : NULL;
}

static bool cf_ok(eng_cf cf)
{
    return (unsigned)cf < ENG_CF_COUNT;
}

void eng_options_init(eng_options *o)
{
    memset(o, 0, sizeof(*o));
    o->name = "engine";
    o->create_if_missing = true;
    o->block_cache_bytes = (size_t)64 << 20;
}

uint64_t eng_headroom_bytes(const eng_options *o)
{
    uint64_t buffer = o->write_buffer_bytes > 0 ? (uint64_t)o->write_buffer_bytes
                                                : (uint64_t)64 << 20; /* RocksDB's default */
    uint64_t jobs = o->max_background_jobs > 0 ? (uint64_t)o->max_background_jobs : 2;
    uint64_t total = ENG_CF_COUNT * buffer + jobs * ENG_TARGET_FILE_BYTES;
    return total + total / 10;
}

void eng__db_init(eng_db *db, const eng_ops *ops, const eng_options *opts)
{
    db->ops = ops;
    const char *name = opts != NULL && opts->name != NULL ? opts->name : "engine";
    snprintf(db->name, sizeof(db->name), "%s", name);
    atomic_init(&db->live, 0);
}

/* The db handle is shared by threads, so its message is per thread: the owner pointer says
 * which db the message belongs to. */
static _Thread_local const eng_db *tls_err_db;
static _Thread_local char tls_err_msg[TKV_ERRMSG_LEN];

int eng__errorf(const eng_db *db, int err, const char *fmt, ...)
{
    int n = snprintf(tls_err_msg, sizeof(tls_err_msg), "%s engine: ", db->name);
    if (n < 0 || (size_t)n >= sizeof(tls_err_msg))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_err_msg + n, sizeof(tls_err_msg) - (size_t)n, fmt, ap);
    va_end(ap);
    tls_err_db = db;
    return err;
}

const char *eng_errmsg(const eng_db *db)
{
    return db != NULL && tls_err_db == db ? tls_err_msg : "";
}

const char *eng_kind(const eng_db *db)
{
    return db->ops->kind;
}

void eng__iter_fail(eng_iter *it, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->errmsg, sizeof(it->errmsg), fmt, ap);
    va_end(ap);
    it->status = err;
    it->valid = false;
}

int eng__sst_fail(eng_sst_writer *w, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->errmsg, sizeof(w->errmsg), fmt, ap);
    va_end(ap);
    return err;
}

static void live_add(eng_db *db, long d)
{
    atomic_fetch_add_explicit(&db->live, d, memory_order_relaxed);
}

void eng_close(eng_db *db)
{
    if (db == NULL)
        return;
    /* A live iterator or snapshot would point into freed memory: crash here instead. */
    TKV_ASSERT(atomic_load(&db->live) == 0);
    if (tls_err_db == db)
        tls_err_db = NULL;
    db->ops->close(db);
}

/* ---- write batches ---------------------------------------------------------------------- */

int eng_batch_new(eng_db *db, eng_batch **out)
{
    eng_batch *b = NULL;
    int rc = db->ops->batch_new(db, &b);
    if (rc != 0)
        return rc;
    b->db = db;
    b->save_points = 0;
    live_add(db, 1);
    *out = b;
    return 0;
}

void eng_batch_free(eng_batch *b)
{
    if (b == NULL)
        return;
    eng_db *db = b->db;
    db->ops->batch_free(b);
    live_add(db, -1);
}

static int bad_cf(eng_db *db, const char *op, eng_cf cf)
{
    return eng__errorf(db, -EINVAL, "%s: bad column family %d", op, (int)cf);
}

int eng_batch_put(eng_batch *b, eng_cf cf, tkv_slice key, tkv_slice value)
{
    if (!cf_ok(cf))
        return bad_cf(b->db, "batch put", cf);
    return b->db->ops->batch_put(b, cf, key, value);
}

int eng_batch_delete(eng_batch *b, eng_cf cf, tkv_slice key)
{
    if (!cf_ok(cf))
        return bad_cf(b->db, "batch delete", cf);
    return b->db->ops->batch_delete(b, cf, key);
}

int eng_batch_delete_range(eng_batch *b, eng_cf cf, tkv_slice begin, tkv_slice end)
{
    if (!cf_ok(cf))
        return bad_cf(b->db, "batch delete range", cf);
    int c = tkv_slice_cmp(begin, end);
    if (c > 0)
        return eng__errorf(b->db, -EINVAL, "batch delete range: begin after end");
    if (c == 0)
        return 0;
    return b->db->ops->batch_delete_range(b, cf, begin, end);
}

size_t eng_batch_count(const eng_batch *b)
{
    return b->db->ops->batch_count(b);
}

size_t eng_batch_data_size(const eng_batch *b)
{
    return b->db->ops->batch_data_size(b);
}

void eng_batch_clear(eng_batch *b)
{
    b->db->ops->batch_clear(b);
    b->save_points = 0;
}

int eng_batch_set_save_point(eng_batch *b)
{
    int rc = b->db->ops->batch_set_save_point(b);
    if (rc == 0)
        b->save_points++;
    return rc;
}

int eng_batch_rollback_to_save_point(eng_batch *b)
{
    if (b->save_points == 0)
        return TKV_ENOTFOUND;
    int rc = b->db->ops->batch_rollback(b);
    if (rc == 0)
        b->save_points--;
    return rc;
}

int eng_batch_pop_save_point(eng_batch *b)
{
    if (b->save_points == 0)
        return TKV_ENOTFOUND;
    int rc = b->db->ops->batch_pop_save_point(b);
    if (rc == 0)
        b->save_points--;
    return rc;
}

int eng_write(eng_db *db, eng_batch *b, bool sync)
{
    if (b->db != db)
        return eng__errorf(db, -EINVAL, "write: the batch belongs to another engine");
    return db->ops->write(db, b, sync);
}

/* ---- point reads and snapshots ---------------------------------------------------------- */

static int check_get(eng_db *db, eng_cf cf)
{
    if (!cf_ok(cf))
        return bad_cf(db, "get", cf);
    return 0;
}

int eng_get(eng_db *db, eng_cf cf, tkv_slice key, tkv_buf *value, bool *found)
{
    int rc = check_get(db, cf);
    return rc != 0 ? rc : db->ops->get(db, NULL, cf, key, value, found);
}

int eng_snap_get(const eng_snap *snap, eng_cf cf, tkv_slice key, tkv_buf *value, bool *found)
{
    int rc = check_get(snap->db, cf);
    return rc != 0 ? rc : snap->db->ops->get(snap->db, snap, cf, key, value, found);
}

static int get_pinned(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice key, eng_pinned **out)
{
    int rc = check_get(db, cf);
    if (rc != 0)
        return rc;
    eng_pinned *p = NULL;
    rc = db->ops->get_pinned(db, snap, cf, key, &p);
    if (rc != 0)
        return rc;
    if (p != NULL) {
        p->db = db;
        live_add(db, 1);
    }
    *out = p;
    return 0;
}

int eng_get_pinned(eng_db *db, eng_cf cf, tkv_slice key, eng_pinned **out)
{
    return get_pinned(db, NULL, cf, key, out);
}

int eng_snap_get_pinned(const eng_snap *snap, eng_cf cf, tkv_slice key, eng_pinned **out)
{
    return get_pinned(snap->db, snap, cf, key, out);
}

tkv_slice eng_pinned_value(const eng_pinned *p)
{
    return p->value;
}

void eng_pinned_free(eng_pinned *p)
{
    if (p == NULL)
        return;
    eng_db *db = p->db;
    db->ops->pinned_free(p);
    live_add(db, -1);
}

int eng_snap_open(eng_db *db, eng_snap **out)
{
    eng_snap *s = NULL;
    int rc = db->ops->snap_open(db, &s);
    if (rc != 0)
        return rc;
    s->db = db;
    atomic_init(&s->iters, 0);
    live_add(db, 1);
    *out = s;
    return 0;
}

void eng_snap_close(eng_snap *snap)
{
    if (snap == NULL)
        return;
    /* An iterator still reading the snapshot would read freed versions: crash here instead. */
    TKV_ASSERT(atomic_load(&snap->iters) == 0);
    eng_db *db = snap->db;
    db->ops->snap_close(snap);
    live_add(db, -1);
}

eng_db *eng_snap_db(const eng_snap *snap)
{
    return snap->db;
}

/* ---- iterators -------------------------------------------------------------------------- */

static int iter_new(eng_db *db, const eng_snap *snap, eng_cf cf, tkv_slice lower, tkv_slice upper,
                    eng_iter **out)
{
    if (!cf_ok(cf))
        return bad_cf(db, "iterator", cf);
    if (lower.len > SIZE_MAX - upper.len)
        return eng__errorf(db, -ENOMEM, "iterator: bounds too long");
    /* The iterator owns copies of its bounds: RocksDB reads them for its whole life. */
    uint8_t *bounds = tkv_malloc(lower.len + upper.len);
    if (bounds == NULL)
        return eng__errorf(db, -ENOMEM, "iterator: out of memory");
    if (lower.len > 0)
        memcpy(bounds, lower.data, lower.len);
    if (upper.len > 0)
        memcpy(bounds + lower.len, upper.data, upper.len);
    tkv_slice lo = tkv_slice_of(bounds, lower.len);
    tkv_slice up = tkv_slice_of(bounds + lower.len, upper.len);
    eng_iter *it = NULL;
    int rc = db->ops->iter_new(db, snap, cf, lo, up, &it);
    if (rc != 0) {
        tkv_free(bounds);
        return rc;
    }
    it->db = db;
    /* The snapshot is const to readers; only its iterator count changes. */
    it->snap = (eng_snap *)(uintptr_t)snap;
    if (it->snap != NULL)
        atomic_fetch_add(&it->snap->iters, 1);
    it->bounds = bounds;
    it->lower = lo;
    it->upper = up;
    it->empty = lo.len > 0 && up.len > 0 && tkv_slice_cmp(lo, up) >= 0;
    it->valid = false;
    it->key = tkv_slice_of(NULL, 0);
    it->value = tkv_slice_of(NULL, 0);
    it->status = 0;
    it->errmsg[0] = '\0';
    live_add(db, 1);
    *out = it;
    return 0;
}

int eng_iter_new(eng_db *db, eng_cf cf, tkv_slice lower, tkv_slice upper, eng_iter **out)
{
    return iter_new(db, NULL, cf, lower, upper, out);
}

int eng_snap_iter_new(const eng_snap *snap, eng_cf cf, tkv_slice lower, tkv_slice upper,
                      eng_iter **out)
{
    return iter_new(snap->db, snap, cf, lower, upper, out);
}

void eng_iter_free(eng_iter *it)
{
    if (it == NULL)
        return;
    eng_db *db = it->db;
    uint8_t *bounds = it->bounds;
    eng_snap *snap = it->snap;
    db->ops->iter_free(it);
    if (snap != NULL)
        atomic_fetch_sub(&snap->iters, 1);
    tkv_free(bounds);
    live_add(db, -1);
}

static bool below_lower(const eng_iter *it, tkv_slice key)
{
    return it->lower.len > 0 && tkv_slice_cmp(key, it->lower) < 0;
}

static bool at_or_past_upper(const eng_iter *it, tkv_slice key)
{
    return it->upper.len > 0 && tkv_slice_cmp(key, it->upper) >= 0;
}

/* Every seek starts afresh: a previous failure is forgotten, as in RocksDB. */
static bool seek_start(eng_iter *it)
{
    it->status = 0;
    it->errmsg[0] = '\0';
    it->valid = false;
    return !it->empty;
}

static bool settle(eng_iter *it, bool valid)
{
    it->valid = valid && it->status == 0;
    return it->valid;
}

bool eng_iter_seek(eng_iter *it, tkv_slice key)
{
    if (!seek_start(it))
        return false;
    if (below_lower(it, key))
        key = it->lower;
    if (at_or_past_upper(it, key))
        return false;
    return settle(it, it->db->ops->iter_seek(it, key));
}

bool eng_iter_seek_for_prev(eng_iter *it, tkv_slice key)
{
    if (!seek_start(it))
        return false;
    if (below_lower(it, key))
        return false;
    if (at_or_past_upper(it, key))
        return settle(it, it->db->ops->iter_seek_to_last(it));
    return settle(it, it->db->ops->iter_seek_for_prev(it, key));
}

bool eng_iter_seek_to_first(eng_iter *it)
{
    if (!seek_start(it))
        return false;
    return settle(it, it->db->ops->iter_seek_to_first(it));
}

bool eng_iter_seek_to_last(eng_iter *it)
{
    if (!seek_start(it))
        return false;
    return settle(it, it->db->ops->iter_seek_to_last(it));
}

bool eng_iter_next(eng_iter *it)
{
    if (!it->valid)
        return false;
    return settle(it, it->db->ops->iter_next(it));
}

bool eng_iter_prev(eng_iter *it)
{
    if (!it->valid)
        return false;
    return settle(it, it->db->ops->iter_prev(it));
}

bool eng_iter_valid(const eng_iter *it)
{
    return it->valid;
}

tkv_slice eng_iter_key(const eng_iter *it)
{
    TKV_ASSERT(it->valid);
    return it->key;
}

tkv_slice eng_iter_value(const eng_iter *it)
{
    TKV_ASSERT(it->valid);
    return it->value;
}

int eng_iter_status(const eng_iter *it)
{
    return it->status;
}

const char *eng_iter_errmsg(const eng_iter *it)
{
    return it->errmsg;
}

/* ---- SST files -------------------------------------------------------------------------- */

int eng_sst_writer_new(eng_db *db, const char *path, eng_sst_writer **out)
{
    if (path == NULL)
        return eng__errorf(db, -EINVAL, "sst writer: no path");
    char *copy = tkv_strdup(path);
    if (copy == NULL)
        return eng__errorf(db, -ENOMEM, "sst writer: out of memory");
    eng_sst_writer *w = NULL;
    int rc = db->ops->sst_writer_new(db, path, &w);
    if (rc != 0) {
        tkv_free(copy);
        return rc;
    }
    w->db = db;
    w->path = copy;
    tkv_buf_init(&w->last_key);
    w->count = 0;
    w->finished = false;
    w->broken = false;
    w->errmsg[0] = '\0';
    live_add(db, 1);
    *out = w;
    return 0;
}

/* Checks that @key may be appended next and makes room to remember it, so that nothing can
 * fail after the implementation accepted the entry. */
static int sst_check(eng_sst_writer *w, tkv_slice key)
{
    if (w->finished || w->broken)
        return eng__sst_fail(w, -EINVAL, "sst writer %s: already %s", w->path,
                             w->finished ? "finished" : "failed");
    if (w->count > 0 && tkv_slice_cmp(key, tkv_buf_slice(&w->last_key)) <= 0)
        return eng__sst_fail(w, -EINVAL, "sst writer %s: keys must be strictly increasing",
                             w->path);
    if (key.len > w->last_key.cap && tkv_buf_reserve(&w->last_key, key.len) != 0)
        return eng__sst_fail(w, -ENOMEM, "sst writer %s: out of memory", w->path);
    return 0;
}

static int sst_added(eng_sst_writer *w, tkv_slice key, int rc)
{
    if (rc != 0) {
        w->broken = true;
        return rc;
    }
    int set = tkv_buf_set(&w->last_key, key.data, key.len);
    TKV_ASSERT(set == 0); /* room was reserved by sst_check */
    w->count++;
    return 0;
}

int eng_sst_writer_put(eng_sst_writer *w, tkv_slice key, tkv_slice value)
{
    int rc = sst_check(w, key);
    if (rc != 0)
        return rc;
    return sst_added(w, key, w->db->ops->sst_put(w, key, value));
}

int eng_sst_writer_delete(eng_sst_writer *w, tkv_slice key)
{
    int rc = sst_check(w, key);
    if (rc != 0)
        return rc;
    return sst_added(w, key, w->db->ops->sst_delete(w, key));
}

int eng_sst_writer_finish(eng_sst_writer *w, uint64_t *file_bytes)
{
    if (w->finished || w->broken)
        return eng__sst_fail(w, -EINVAL, "sst writer %s: already %s", w->path,
                             w->finished ? "finished" : "failed");
    if (w->count == 0)
        return eng__sst_fail(w, -EINVAL, "sst writer %s: no entries", w->path);
    uint64_t bytes = 0;
    int rc = w->db->ops->sst_finish(w, &bytes);
    if (rc != 0) {
        w->broken = true;
        return rc;
    }
    w->finished = true;
    if (file_bytes != NULL)
        *file_bytes = bytes;
    return 0;
}

uint64_t eng_sst_writer_count(const eng_sst_writer *w)
{
    return w->count;
}

const char *eng_sst_writer_errmsg(const eng_sst_writer *w)
{
    return w->errmsg;
}

void eng_sst_writer_free(eng_sst_writer *w)
{
    if (w == NULL)
        return;
    eng_db *db = w->db;
    char *path = w->path;
    bool finished = w->finished;
    tkv_buf last = w->last_key;
    db->ops->sst_free(w);
    if (!finished)
        TKV_IGNORE(unlink(path) != 0);
    tkv_free(path);
    tkv_buf_deinit(&last);
    live_add(db, -1);
}

int eng_ingest(eng_db *db, eng_cf cf, const char *const *paths, size_t n)
{
    if (!cf_ok(cf))
        return bad_cf(db, "ingest", cf);
    if (n == 0 || paths == NULL)
        return eng__errorf(db, -EINVAL, "ingest: no files");
    for (size_t i = 0; i < n; i++)
        if (paths[i] == NULL)
            return eng__errorf(db, -EINVAL, "ingest: file %zu has no path", i);
    return db->ops->ingest(db, cf, paths, n);
}

/* ---- sizes, properties, maintenance ----------------------------------------------------- */

/* Returns true when [start, end) is empty (an empty end is unbounded). */
static bool range_empty(tkv_slice start, tkv_slice end)
{
    return end.len > 0 && tkv_slice_cmp(start, end) >= 0;
}

int eng_approx_size(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end, uint64_t *bytes)
{
    if (!cf_ok(cf))
        return bad_cf(db, "approximate size", cf);
    if (range_empty(start, end)) {
        *bytes = 0;
        return 0;
    }
    return db->ops->approx_size(db, cf, start, end, bytes);
}

int eng_approx_keys(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end, uint64_t *keys)
{
    if (!cf_ok(cf))
        return bad_cf(db, "approximate keys", cf);
    if (range_empty(start, end)) {
        *keys = 0;
        return 0;
    }
    return db->ops->approx_keys(db, cf, start, end, keys);
}

int eng_property_u64(eng_db *db, eng_cf cf, const char *name, uint64_t *value)
{
    if (!cf_ok(cf) || name == NULL)
        return eng__errorf(db, -EINVAL, "property: bad column family or name");
    return db->ops->property_u64(db, cf, name, value);
}

int eng_flush_cf(eng_db *db, eng_cf cf, bool wait)
{
    if (!cf_ok(cf))
        return bad_cf(db, "flush", cf);
    return db->ops->flush_cf(db, cf, wait);
}

int eng_flush(eng_db *db, bool wait)
{
    for (int cf = 0; cf < ENG_CF_COUNT; cf++) {
        int rc = db->ops->flush_cf(db, (eng_cf)cf, wait);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int eng_compact_range(eng_db *db, eng_cf cf, tkv_slice start, tkv_slice end)
{
    if (!cf_ok(cf))
        return bad_cf(db, "compact", cf);
    if (start.len > 0 && range_empty(start, end))
        return 0;
    return db->ops->compact_range(db, cf, start, end);
}
