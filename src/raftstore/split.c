/*
 * split.c: the size-based split check (TiKV's split-check worker with the size and keys
 * checkers). It scans the region's default and write column families in key order,
 * measuring size and key count, and picks split keys every region-split-size bytes (or
 * region-split-keys keys) once the region passed region-max-size (or region-max-keys). A
 * forced check (PD's split operator without keys) splits a region in half.
 *
 * Split keys must lie on valid boundaries: a key that is an MVCC key (a memcomparable-encoded
 * user key followed by an 8-byte timestamp) loses its timestamp, so every version of a user
 * key stays in one region and transactional regions split at encoded user keys (TiKV's
 * SplitObserver); raw keys are used as they are.
 *
 * Thread: the worker's.
 */
#include <stdlib.h>

#include "base/codec.h"
#include "base/keys.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

/* At most this many split keys per check (TiKV's batch-split-limit). */
#define SPLIT_BATCH_LIMIT 10

void rstore__split_key_adjust(tkv_slice key, tkv_slice *out)
{
    *out = key;
    size_t n;
    if (tkv_codec_encoded_prefix_len(key, &n) == 0 && key.len == n + 8)
        *out = tkv_slice_of(key.data, n);
}

bool rstore__valid_split_key(const Metapb__Region *region, tkv_slice key)
{
    if (key.len == 0 || !rstore__key_in_region(region, key))
        return false;
    return !tkv_slice_eq(key, tkv_slice_of(region->start_key.data, region->start_key.len));
}

/* Two iterators merged in key order (default and write). */
typedef struct merge_iter {
    eng_iter *it[2];
    bool valid[2];
    int cur;
} merge_iter;

static void merge_pick(merge_iter *m)
{
    if (!m->valid[0] && !m->valid[1]) {
        m->cur = -1;
        return;
    }
    if (!m->valid[1])
        m->cur = 0;
    else if (!m->valid[0])
        m->cur = 1;
    else
        m->cur = tkv_slice_cmp(eng_iter_key(m->it[0]), eng_iter_key(m->it[1])) <= 0 ? 0 : 1;
}

static int merge_open(rstore *s, merge_iter *m, tkv_slice lo, tkv_slice hi)
{
    memset(m, 0, sizeof(*m));
    int rc = eng_iter_new(s->opts.kv, ENG_CF_DEFAULT, lo, hi, &m->it[0]);
    if (rc == 0)
        rc = eng_iter_new(s->opts.kv, ENG_CF_WRITE, lo, hi, &m->it[1]);
    if (rc != 0) {
        eng_iter_free(m->it[0]);
        return rc;
    }
    m->valid[0] = eng_iter_seek_to_first(m->it[0]);
    m->valid[1] = eng_iter_seek_to_first(m->it[1]);
    merge_pick(m);
    return 0;
}

static void merge_next(merge_iter *m)
{
    m->valid[m->cur] = eng_iter_next(m->it[m->cur]);
    merge_pick(m);
}

static void merge_close(merge_iter *m)
{
    eng_iter_free(m->it[0]);
    eng_iter_free(m->it[1]);
}

/* Appends @key (a data key) as a split key when it is valid and after the previous one. */
static void add_split_key(rstore_split_check *out, const Metapb__Region *region, tkv_slice dkey)
{
    tkv_slice k = tkv_slice_of(dkey.data + 1, dkey.len - 1), adj;
    rstore__split_key_adjust(k, &adj);
    if (!rstore__valid_split_key(region, adj))
        return;
    if (out->n_split_keys &&
        tkv_slice_cmp(tkv_buf_slice(&out->split_keys[out->n_split_keys - 1]), adj) >= 0)
        return;
    tkv_buf *keys = tkv_xrealloc(out->split_keys, (out->n_split_keys + 1) * sizeof(tkv_buf));
    out->split_keys = keys;
    tkv_buf_init(&keys[out->n_split_keys]);
    if (tkv_buf_set(&keys[out->n_split_keys], adj.data, adj.len) != 0) {
        TKV_LOG_FATAL("out of memory in the split check");
        abort();
    }
    out->n_split_keys++;
}

void rstore__split_check(rstore *s, const Metapb__Region *region, bool force,
                         rstore_split_check *out)
{
    memset(out, 0, sizeof(*out));
    tkv_buf lo, hi;
    int rc = rstore__region_data_bounds(region, &lo, &hi);
    merge_iter m;
    if (rc == 0)
        rc = merge_open(s, &m, tkv_buf_slice(&lo), tkv_buf_slice(&hi));
    if (rc != 0) {
        tkv_buf_deinit(&lo);
        tkv_buf_deinit(&hi);
        return;
    }
    uint64_t split_size = s->opts.region_split_size, split_keys = s->opts.region_split_keys;
    uint64_t piece_size = 0, piece_keys = 0;
    /* Candidate keys every split-size; used only if the whole region turns out too big. */
    rstore_split_check cand = {0};
    for (; m.cur >= 0; merge_next(&m)) {
        eng_iter *it = m.it[m.cur];
        uint64_t sz = eng_iter_key(it).len + eng_iter_value(it).len;
        out->size_bytes += sz;
        out->keys++;
        piece_size += sz;
        piece_keys++;
        if ((piece_size >= split_size || piece_keys >= split_keys) &&
            cand.n_split_keys < SPLIT_BATCH_LIMIT) {
            add_split_key(&cand, region, eng_iter_key(it));
            piece_size = 0;
            piece_keys = 0;
        }
    }
    merge_close(&m);
    bool too_big = out->size_bytes > s->opts.region_max_size || out->keys > s->opts.region_max_keys;
    if (too_big) {
        out->split_keys = cand.split_keys;
        out->n_split_keys = cand.n_split_keys;
        cand.split_keys = NULL;
        cand.n_split_keys = 0;
    } else if (force && out->keys > 1 &&
               merge_open(s, &m, tkv_buf_slice(&lo), tkv_buf_slice(&hi)) == 0) {
        /* Half: the key where half of the bytes lie before it. */
        uint64_t acc = 0;
        for (; m.cur >= 0; merge_next(&m)) {
            eng_iter *it = m.it[m.cur];
            acc += eng_iter_key(it).len + eng_iter_value(it).len;
            if (acc * 2 >= out->size_bytes) {
                add_split_key(out, region, eng_iter_key(it));
                break;
            }
        }
        merge_close(&m);
    }
    for (size_t i = 0; i < cand.n_split_keys; i++)
        tkv_buf_deinit(&cand.split_keys[i]);
    tkv_free(cand.split_keys);
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
}
