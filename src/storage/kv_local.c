/*
 * kv_local.c: stor_kv over one engine with one region covering every key (see kv.h).
 */
#include <pthread.h>

#include "base/keys.h"
#include "storage/kv.h"

typedef struct local_kv {
    eng_db *db;
    bool sync;
    pthread_mutex_t mu; /* guards region (its epoch changes in tests) and term */
    uint64_t term;      /* reported in snapshots (0: local, see stor_kv_local_set_term) */
    Metapb__Region region;
    Metapb__RegionEpoch epoch;
    Metapb__Peer peer;
    Metapb__Peer *peers[1];
} local_kv;

static tkv_slice bin(ProtobufCBinaryData b)
{
    return tkv_slice_of(b.data, b.len);
}

/* Returns whether @key is in [start, end) of the region (or, with @inclusive, [start, end]:
 * the end of a range to delete). Called under l->mu. */
static bool in_region(const local_kv *l, tkv_slice key, bool inclusive)
{
    tkv_slice start = bin(l->region.start_key), end = bin(l->region.end_key);
    if (tkv_slice_cmp(key, start) < 0)
        return false;
    if (end.len == 0)
        return true;
    int c = tkv_slice_cmp(key, end);
    return inclusive ? c <= 0 : c < 0;
}

/* Returns the first key of @mods outside the region (raftstore's check before proposing), or
 * NULL. Called under l->mu. */
static const tkv_slice *key_outside(const local_kv *l, const stor_modify *mods, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!in_region(l, mods[i].key, false))
            return &mods[i].key;
        if (mods[i].op == STOR_MODIFY_DELETE_RANGE && mods[i].end_key.len != 0 &&
            !in_region(l, mods[i].end_key, true))
            return &mods[i].end_key;
    }
    return NULL;
}

/* Checks @ctx (and the keys of @mods, when writing) against the region like raftstore does;
 * returns a region error or NULL. */
static Errorpb__Error *check_ctx(local_kv *l, const stor_ctx *ctx, const stor_modify *mods,
                                 size_t n, int *rc)
{
    *rc = 0;
    Errorpb__Error *e = NULL;
    const tkv_slice *outside;
    pthread_mutex_lock(&l->mu);
    if (ctx->has_peer && ctx->store_id != l->peer.store_id) {
        e = stor_rerr_store_not_match(ctx->store_id, l->peer.store_id);
    } else if (ctx->region_id != l->region.id) {
        e = stor_rerr_region_not_found(ctx->region_id);
    } else if (ctx->has_epoch &&
               (ctx->conf_ver != l->epoch.conf_ver || ctx->version != l->epoch.version)) {
        const Metapb__Region *cur = &l->region;
        e = stor_rerr_epoch_not_match(&cur, 1);
    } else if ((outside = key_outside(l, mods, n)) != NULL) {
        e = stor_rerr_key_not_in_region(*outside, &l->region);
    } else {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    pthread_mutex_unlock(&l->mu);
    if (e == NULL)
        *rc = -ENOMEM;
    return e;
}

/* Adds @m to @b; a range with an empty end ends at @region_end (itself empty for +inf). */
static int add_modify(eng_batch *b, const stor_modify *m, tkv_slice region_end, tkv_buf *k1,
                      tkv_buf *k2)
{
    tkv_buf_reset(k1);
    tkv_buf_reset(k2);
    int rc = tkv_keys_data_key(k1, m->key);
    if (rc != 0)
        return rc;
    switch (m->op) {
    case STOR_MODIFY_PUT:
        return eng_batch_put(b, m->cf, tkv_buf_slice(k1), m->value);
    case STOR_MODIFY_DELETE:
        return eng_batch_delete(b, m->cf, tkv_buf_slice(k1));
    case STOR_MODIFY_DELETE_RANGE:
        rc = tkv_keys_data_bound(k2, m->end_key.len != 0 ? m->end_key : region_end, true);
        if (rc != 0)
            return rc;
        if (tkv_slice_cmp(tkv_buf_slice(k1), tkv_buf_slice(k2)) > 0)
            return -EINVAL;
        return eng_batch_delete_range(b, m->cf, tkv_buf_slice(k1), tkv_buf_slice(k2));
    }
    return -EINVAL;
}

static int local_write(void *impl, const stor_ctx *ctx, const stor_modify *mods, size_t n,
                       stor_write_cb cb, void *ud)
{
    local_kv *l = impl;
    if (n == 0 || mods == NULL || cb == NULL)
        return -EINVAL;
    int rc;
    Errorpb__Error *rerr = check_ctx(l, ctx, mods, n, &rc);
    if (rc != 0)
        return rc;
    if (rerr != NULL) {
        cb(ud, 0, rerr);
        return 0;
    }
    eng_batch *b;
    rc = eng_batch_new(l->db, &b);
    if (rc != 0)
        return rc;
    tkv_buf k1, k2, end;
    tkv_buf_init(&k1);
    tkv_buf_init(&k2);
    tkv_buf_init(&end);
    pthread_mutex_lock(&l->mu);
    rc = tkv_buf_set(&end, l->region.end_key.data, l->region.end_key.len);
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_modify(b, &mods[i], tkv_buf_slice(&end), &k1, &k2);
    tkv_buf_deinit(&k1);
    tkv_buf_deinit(&k2);
    tkv_buf_deinit(&end);
    if (rc == -EINVAL) {
        eng_batch_free(b);
        return rc; /* malformed batch: not accepted */
    }
    if (rc == 0)
        rc = eng_write(l->db, b, l->sync);
    eng_batch_free(b);
    cb(ud, rc, NULL);
    return 0;
}

static int local_snapshot(void *impl, const stor_ctx *ctx, stor_snap_cb cb, void *ud)
{
    local_kv *l = impl;
    if (cb == NULL)
        return -EINVAL;
    int rc;
    Errorpb__Error *rerr = check_ctx(l, ctx, NULL, 0, &rc);
    if (rc != 0)
        return rc;
    if (rerr != NULL) {
        cb(ud, 0, rerr, NULL);
        return 0;
    }
    eng_snap *es;
    rc = eng_snap_open(l->db, &es);
    if (rc != 0) {
        cb(ud, rc, NULL, NULL);
        return 0;
    }
    stor_snap *s;
    pthread_mutex_lock(&l->mu);
    rc = stor_snap_new(es, &l->region, &s);
    if (rc == 0)
        s->term = l->term;
    pthread_mutex_unlock(&l->mu);
    cb(ud, rc, NULL, rc == 0 ? s : NULL);
    return 0;
}

static void local_free(void *impl)
{
    local_kv *l = impl;
    pthread_mutex_destroy(&l->mu);
    tkv_free(l->region.start_key.data);
    tkv_free(l->region.end_key.data);
    tkv_free(l);
}

static const stor_kv_ops local_ops = {
    .write = local_write,
    .snapshot = local_snapshot,
    .free = local_free,
};

int stor_kv_local_new(eng_db *db, const stor_kv_local_opts *opts, stor_kv **out)
{
    stor_kv *kv = tkv_calloc(1, sizeof(*kv));
    local_kv *l = tkv_calloc(1, sizeof(*l));
    if (kv == NULL || l == NULL) {
        tkv_free(kv);
        tkv_free(l);
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&l->mu, NULL);
    if (rc != 0) {
        tkv_free(kv);
        tkv_free(l);
        return -rc;
    }
    l->db = db;
    l->sync = opts ? opts->sync : false;
    metapb__region__init(&l->region);
    metapb__region_epoch__init(&l->epoch);
    metapb__peer__init(&l->peer);
    l->region.id = opts && opts->region_id ? opts->region_id : 1;
    l->epoch.conf_ver = 1;
    l->epoch.version = 1;
    l->region.region_epoch = &l->epoch;
    l->peer.id = l->region.id + 1;
    l->peer.store_id = opts && opts->store_id ? opts->store_id : 1;
    l->peers[0] = &l->peer;
    l->region.n_peers = 1;
    l->region.peers = l->peers;
    kv->ops = &local_ops;
    kv->impl = l;
    *out = kv;
    return 0;
}

void stor_kv_local_set_epoch(stor_kv *kv, uint64_t conf_ver, uint64_t version)
{
    local_kv *l = kv->impl;
    pthread_mutex_lock(&l->mu);
    l->epoch.conf_ver = conf_ver;
    l->epoch.version = version;
    pthread_mutex_unlock(&l->mu);
}

void stor_kv_local_set_term(stor_kv *kv, uint64_t term)
{
    local_kv *l = kv->impl;
    pthread_mutex_lock(&l->mu);
    l->term = term;
    pthread_mutex_unlock(&l->mu);
}

int stor_kv_local_set_range(stor_kv *kv, tkv_slice start, tkv_slice end)
{
    local_kv *l = kv->impl;
    if (end.len != 0 && tkv_slice_cmp(start, end) >= 0)
        return -EINVAL;
    uint8_t *s = start.len ? tkv_memdup(start.data, start.len) : NULL;
    uint8_t *e = end.len ? tkv_memdup(end.data, end.len) : NULL;
    if ((start.len && s == NULL) || (end.len && e == NULL)) {
        tkv_free(s);
        tkv_free(e);
        return -ENOMEM;
    }
    pthread_mutex_lock(&l->mu);
    tkv_free(l->region.start_key.data);
    tkv_free(l->region.end_key.data);
    l->region.start_key.data = s;
    l->region.start_key.len = start.len;
    l->region.end_key.data = e;
    l->region.end_key.len = end.len;
    pthread_mutex_unlock(&l->mu);
    return 0;
}
