/*
 * kv_local.c: stor_kv over one engine with one region covering every key (see kv.h).
 */
#include <pthread.h>

#include "base/keys.h"
#include "storage/kv.h"

typedef struct local_kv {
    eng_db *db;
    bool sync;
    pthread_mutex_t mu; /* guards region (its epoch changes in tests) */
    Metapb__Region region;
    Metapb__RegionEpoch epoch;
    Metapb__Peer peer;
    Metapb__Peer *peers[1];
} local_kv;

/* Checks @ctx against the region like raftstore does; returns a region error or NULL. */
static Errorpb__Error *check_ctx(local_kv *l, const stor_ctx *ctx, int *rc)
{
    *rc = 0;
    Errorpb__Error *e = NULL;
    pthread_mutex_lock(&l->mu);
    if (ctx->has_peer && ctx->store_id != l->peer.store_id) {
        e = stor_rerr_store_not_match(ctx->store_id, l->peer.store_id);
    } else if (ctx->region_id != l->region.id) {
        e = stor_rerr_region_not_found(ctx->region_id);
    } else if (ctx->has_epoch &&
               (ctx->conf_ver != l->epoch.conf_ver || ctx->version != l->epoch.version)) {
        const Metapb__Region *cur = &l->region;
        e = stor_rerr_epoch_not_match(&cur, 1);
    } else {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    pthread_mutex_unlock(&l->mu);
    if (e == NULL)
        *rc = -ENOMEM;
    return e;
}

static int add_modify(eng_batch *b, const stor_modify *m, tkv_buf *k1, tkv_buf *k2)
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
        rc = tkv_keys_data_bound(k2, m->end_key, true);
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
    Errorpb__Error *rerr = check_ctx(l, ctx, &rc);
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
    tkv_buf k1, k2;
    tkv_buf_init(&k1);
    tkv_buf_init(&k2);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_modify(b, &mods[i], &k1, &k2);
    tkv_buf_deinit(&k1);
    tkv_buf_deinit(&k2);
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
    Errorpb__Error *rerr = check_ctx(l, ctx, &rc);
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
    pthread_mutex_unlock(&l->mu);
    cb(ud, rc, NULL, rc == 0 ? s : NULL);
    return 0;
}

static void local_free(void *impl)
{
    local_kv *l = impl;
    pthread_mutex_destroy(&l->mu);
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
