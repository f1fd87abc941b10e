/*
 * bootstrap.c: the store's identity and the cluster's first region (TiKV's node.rs).
 *
 *   - A new store asks PD for an id (AllocID) and writes StoreIdent{cluster_id, store_id}
 *     into the kv engine; a restarted store reads it back and must be in the same cluster.
 *   - The first store of a cluster (IsBootstrapped says no) allocates the first region and
 *     its peer, writes them under the prepare-bootstrap key together with the region's
 *     initial states, and calls Bootstrap. If another store won the race, the prepared
 *     region is cleared; if this store crashed after Bootstrap, the prepared region is kept
 *     when PD's first region is the same.
 *   - Loading finds every region replica through its RegionLocalState.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/keys.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

/* Writes "@what: @cause (error name)" to @errmsg. */
static void fail(char *errmsg, const char *what, const char *cause, int rc)
{
    if (errmsg)
        snprintf(errmsg, TKV_ERRMSG_LEN, "%s: %s (%s)", what, cause, tkv_strerror(rc));
}

int rstore__load_ident(rstore *s, char *errmsg);
int rstore__load_ident(rstore *s, char *errmsg)
{
    tkv_buf v;
    tkv_buf_init(&v);
    bool found;
    int rc = eng_get(s->opts.kv, ENG_CF_DEFAULT,
                     tkv_slice_of(tkv_keys_store_ident, sizeof(tkv_keys_store_ident)), &v, &found);
    if (rc != 0) {
        fail(errmsg, "read store ident", eng_errmsg(s->opts.kv), rc);
        tkv_buf_deinit(&v);
        return rc;
    }
    if (found) {
        RaftServerpb__StoreIdent *id = raft_serverpb__store_ident__unpack(NULL, v.len, v.data);
        tkv_buf_deinit(&v);
        if (id == NULL || id->store_id == 0) {
            if (id)
                protobuf_c_message_free_unpacked(&id->base, NULL);
            fail(errmsg, "store ident", "does not decode", TKV_ECORRUPT);
            return TKV_ECORRUPT;
        }
        s->store_id = id->store_id;
        s->cluster_id = id->cluster_id;
        protobuf_c_message_free_unpacked(&id->base, NULL);
        if (s->opts.pd && s->cluster_id != pdc_cluster_id(s->opts.pd)) {
            if (errmsg)
                snprintf(errmsg, TKV_ERRMSG_LEN,
                         "the data directory belongs to cluster %llu but PD serves cluster %llu",
                         (unsigned long long)s->cluster_id,
                         (unsigned long long)pdc_cluster_id(s->opts.pd));
            return TKV_ECONFIG;
        }
        return 0;
    }
    tkv_buf_deinit(&v);
    if (s->opts.pd) {
        rc = pdc_alloc_id(s->opts.pd, &s->store_id);
        if (rc != 0) {
            fail(errmsg, "allocate the store id through PD", pdc_errmsg(s->opts.pd), rc);
            return rc;
        }
        s->cluster_id = pdc_cluster_id(s->opts.pd);
    } else {
        s->store_id = s->opts.standalone_store_id ? s->opts.standalone_store_id : 1;
        s->cluster_id = 0;
    }
    RaftServerpb__StoreIdent id = RAFT_SERVERPB__STORE_IDENT__INIT;
    id.store_id = s->store_id;
    id.cluster_id = s->cluster_id;
    eng_batch *b;
    rc = eng_batch_new(s->opts.kv, &b);
    if (rc == 0) {
        tkv_buf_init(&v);
        rstore__pack(&id.base, &v);
        rc = eng_batch_put(b, ENG_CF_DEFAULT,
                           tkv_slice_of(tkv_keys_store_ident, sizeof(tkv_keys_store_ident)),
                           tkv_buf_slice(&v));
        tkv_buf_deinit(&v);
        if (rc == 0)
            rc = eng_write(s->opts.kv, b, true);
        eng_batch_free(b);
    }
    if (rc != 0)
        fail(errmsg, "write store ident", eng_errmsg(s->opts.kv), rc);
    else
        TKV_LOG_INFO("store ident created", TKV_LF_U64("store_id", s->store_id),
                     TKV_LF_U64("cluster_id", s->cluster_id));
    return rc;
}

/* Makes a kv-engine and a raft-engine batch. */
static int new_batches(rstore *s, eng_batch **kb, eng_batch **rb)
{
    int rc = eng_batch_new(s->opts.kv, kb);
    if (rc != 0)
        return rc;
    rc = eng_batch_new(s->opts.raft, rb);
    if (rc != 0)
        eng_batch_free(*kb);
    return rc;
}

/* Writes the first region's states (and, with PD, the prepare-bootstrap marker). */
static int write_first_region(rstore *s, const Metapb__Region *region, bool prepare)
{
    eng_batch *kb, *rb;
    int rc = new_batches(s, &kb, &rb);
    if (rc != 0)
        return rc;
    rc = rstore__write_initial_states(kb, rb, region);
    if (rc == 0 && prepare) {
        tkv_buf v;
        tkv_buf_init(&v);
        rstore__pack(&region->base, &v);
        rc = eng_batch_put(
            kb, ENG_CF_DEFAULT,
            tkv_slice_of(tkv_keys_prepare_bootstrap, sizeof(tkv_keys_prepare_bootstrap)),
            tkv_buf_slice(&v));
        tkv_buf_deinit(&v);
    }
    /* Raft state first: a region state without it is repaired at load (split rule), the
     * other way round is not. */
    if (rc == 0)
        rc = eng_write(s->opts.raft, rb, true);
    if (rc == 0)
        rc = eng_write(s->opts.kv, kb, true);
    eng_batch_free(kb);
    eng_batch_free(rb);
    return rc;
}

static int clear_prepared(rstore *s, const Metapb__Region *region)
{
    eng_batch *kb, *rb;
    int rc = new_batches(s, &kb, &rb);
    if (rc != 0)
        return rc;
    uint8_t k[11];
    tkv_keys_region_state_key(k, region->id);
    rc = eng_batch_delete(kb, ENG_CF_RAFT, tkv_slice_of(k, sizeof(k)));
    tkv_keys_apply_state_key(k, region->id);
    if (rc == 0)
        rc = eng_batch_delete(kb, ENG_CF_RAFT, tkv_slice_of(k, sizeof(k)));
    if (rc == 0)
        rc = eng_batch_delete(
            kb, ENG_CF_DEFAULT,
            tkv_slice_of(tkv_keys_prepare_bootstrap, sizeof(tkv_keys_prepare_bootstrap)));
    tkv_keys_raft_state_key(k, region->id);
    if (rc == 0)
        rc = eng_batch_delete(rb, ENG_CF_DEFAULT, tkv_slice_of(k, sizeof(k)));
    if (rc == 0)
        rc = eng_write(s->opts.kv, kb, true);
    if (rc == 0)
        rc = eng_write(s->opts.raft, rb, true);
    eng_batch_free(kb);
    eng_batch_free(rb);
    return rc;
}

static int delete_prepare_key(rstore *s)
{
    eng_batch *b;
    int rc = eng_batch_new(s->opts.kv, &b);
    if (rc != 0)
        return rc;
    rc = eng_batch_delete(
        b, ENG_CF_DEFAULT,
        tkv_slice_of(tkv_keys_prepare_bootstrap, sizeof(tkv_keys_prepare_bootstrap)));
    if (rc == 0)
        rc = eng_write(s->opts.kv, b, true);
    eng_batch_free(b);
    return rc;
}

/* Builds the first region: all keys, epoch (1, 1), one peer on this store. */
static Metapb__Region *first_region(rstore *s, uint64_t region_id, uint64_t peer_id)
{
    Metapb__Peer peer = METAPB__PEER__INIT;
    peer.id = peer_id;
    peer.store_id = s->store_id;
    Metapb__Peer *pp = &peer;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    ep.conf_ver = 1;
    ep.version = 1;
    Metapb__Region r = METAPB__REGION__INIT;
    r.id = region_id;
    r.region_epoch = &ep;
    r.peers = &pp;
    r.n_peers = 1;
    return rstore__region_dup(&r);
}

int rstore__bootstrap_standalone(rstore *s, Metapb__Region **created, char *errmsg);
int rstore__bootstrap_standalone(rstore *s, Metapb__Region **created, char *errmsg)
{
    *created = first_region(s, 1, s->store_id + 1);
    int rc = write_first_region(s, *created, false);
    if (rc != 0) {
        fail(errmsg, "write the first region", eng_errmsg(s->opts.kv), rc);
        rstore__region_free(*created);
        *created = NULL;
    }
    return rc;
}

/* Returns the region stored under the prepare-bootstrap key, or NULL. */
static Metapb__Region *prepared_region(rstore *s)
{
    tkv_buf v;
    tkv_buf_init(&v);
    bool found = false;
    Metapb__Region *r = NULL;
    if (eng_get(s->opts.kv, ENG_CF_DEFAULT,
                tkv_slice_of(tkv_keys_prepare_bootstrap, sizeof(tkv_keys_prepare_bootstrap)), &v,
                &found) == 0 &&
        found)
        r = metapb__region__unpack(NULL, v.len, v.data);
    tkv_buf_deinit(&v);
    return r;
}

int rstore__bootstrap_cluster(rstore *s, const Metapb__Store *store, Metapb__Region **created,
                              char *errmsg);
int rstore__bootstrap_cluster(rstore *s, const Metapb__Store *store, Metapb__Region **created,
                              char *errmsg)
{
    *created = NULL;
    pdc_client *pd = s->opts.pd;
    Metapb__Region *prep = prepared_region(s);
    bool boot;
    int rc = pdc_is_bootstrapped(pd, &boot);
    if (rc != 0) {
        fail(errmsg, "ask PD whether the cluster is bootstrapped", pdc_errmsg(pd), rc);
        rstore__region_free(prep);
        return rc;
    }
    if (boot) {
        if (prep == NULL)
            return 0;
        /* We prepared a region earlier: keep it only if it became the cluster's first. */
        Pdpb__GetRegionResponse *resp = NULL;
        rc = pdc_get_region(pd, tkv_slice_of(NULL, 0), &resp);
        bool ours = rc == 0 && resp->region && resp->region->id == prep->id;
        pdc_msg_free(resp);
        if (rc != 0) {
            fail(errmsg, "ask PD for the first region", pdc_errmsg(pd), rc);
            rstore__region_free(prep);
            return rc;
        }
        rc = ours ? delete_prepare_key(s) : clear_prepared(s, prep);
        if (rc == 0 && ours)
            *created = prep;
        else
            rstore__region_free(prep);
        return rc;
    }
    if (prep == NULL) {
        uint64_t region_id, peer_id;
        rc = pdc_alloc_id(pd, &region_id);
        if (rc == 0)
            rc = pdc_alloc_id(pd, &peer_id);
        if (rc != 0) {
            fail(errmsg, "allocate the first region's ids", pdc_errmsg(pd), rc);
            return rc;
        }
        prep = first_region(s, region_id, peer_id);
        rc = write_first_region(s, prep, true);
        if (rc != 0) {
            fail(errmsg, "write the first region", eng_errmsg(s->opts.kv), rc);
            rstore__region_free(prep);
            return rc;
        }
    }
    rc = pdc_bootstrap(pd, store, prep);
    if (rc == TKV_EEXIST) {
        TKV_LOG_INFO("cluster bootstrapped by another store");
        rc = clear_prepared(s, prep);
        rstore__region_free(prep);
        return rc;
    }
    if (rc != 0) {
        fail(errmsg, "bootstrap the cluster through PD", pdc_errmsg(pd), rc);
        rstore__region_free(prep);
        return rc;
    }
    TKV_LOG_INFO("cluster bootstrapped", TKV_LF_U64("cluster_id", s->cluster_id),
                 TKV_LF_U64("store_id", s->store_id), TKV_LF_U64("region_id", prep->id));
    rc = delete_prepare_key(s);
    if (rc == 0)
        *created = prep;
    else
        rstore__region_free(prep);
    return rc;
}

int rstore__load_regions(rstore *s, char *errmsg);
int rstore__load_regions(rstore *s, char *errmsg)
{
    uint8_t lo[2] = {TKV_KEYS_LOCAL_PREFIX, TKV_KEYS_REGION_META_PREFIX};
    uint8_t hi[2] = {TKV_KEYS_LOCAL_PREFIX, TKV_KEYS_REGION_META_PREFIX + 1};
    eng_iter *it;
    int rc = eng_iter_new(s->opts.kv, ENG_CF_RAFT, tkv_slice_of(lo, 2), tkv_slice_of(hi, 2), &it);
    if (rc != 0)
        return rc;
    for (bool ok = eng_iter_seek_to_first(it); ok && rc == 0; ok = eng_iter_next(it)) {
        tkv_slice k = eng_iter_key(it);
        if (k.len != 11 || k.data[10] != TKV_KEYS_REGION_STATE_SUFFIX)
            continue;
        uint64_t region_id = 0;
        for (int i = 2; i < 10; i++)
            region_id = region_id << 8 | k.data[i];
        Metapb__Region *region;
        int state;
        bool found;
        rc = rstore__get_region_state(s->opts.kv, region_id, &region, &state, &found);
        if (rc != 0 || !found) {
            fail(errmsg, "region state", "unreadable", rc ? rc : TKV_ECORRUPT);
            rc = rc ? rc : TKV_ECORRUPT;
            break;
        }
        if (state == RAFT_SERVERPB__PEER_STATE__Tombstone) {
            const Metapb__Peer *mine = rstore__region_store_peer(region, s->store_id);
            rstore__meta_add_tombstone(&s->meta, region, mine ? mine->id : 0);
            rstore__region_free(region);
            continue;
        }
        const Metapb__Peer *mine = rstore__region_store_peer(region, s->store_id);
        if (mine == NULL) {
            TKV_LOG_WARN("region without a peer on this store skipped",
                         TKV_LF_U64("region_id", region_id));
            rstore__region_free(region);
            continue;
        }
        rstore_peer *p;
        rc = rstore__peer_create(s, region, mine->id, true, &p);
        if (rc != 0) {
            fail(errmsg, "load region", "peer state", rc);
            rstore__region_free(region);
            break;
        }
        rstore__peer_register_apply(p);
        rstore__meta_set(&s->meta, region);
        rstore__store_add_peer(s, p);
    }
    if (rc == 0)
        rc = eng_iter_status(it);
    eng_iter_free(it);
    return rc;
}
