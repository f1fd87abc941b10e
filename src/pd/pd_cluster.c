/*
 * pd_cluster.c: the cluster state (PD's RaftCluster): bootstrap, stores, the region tree,
 * heartbeats, split bookkeeping, GC safe point and the run-time settings. Every change of
 * cluster state goes through this file under one mutex and is persisted here:
 *   - bootstrap, PutStore, store state changes, cluster meta, settings, the GC safe point:
 *     fsynced before the call returns (rare);
 *   - region changes from heartbeats and split reports: written without fsync, as PD does
 *     (a lost update is repaired by the next heartbeat).
 * Store counts (regions, leaders, learners, pending peers, sizes) are maintained as regions
 * come and go, so the schedulers read them in O(1).
 */
#include <inttypes.h>
#include <stdarg.h>

#include "base/clock.h"
#include "base/log.h"
#include "pd/pd_int.h"
#include "rpc/rpc.h"

void pd__result_set(pd_result *res, Pdpb__ErrorType type, const char *fmt, ...)
{
    res->type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
    va_end(ap);
}

uint64_t pd__cluster_now(const pd_cluster *c)
{
    return c->clock_ms != NULL ? c->clock_ms(c->clock_ud) : tkv_clock_mono_ms();
}

/* ---- stores ----------------------------------------------------------------------------- */

ssize_t pd__cluster_store_index_locked(const pd_cluster *c, uint64_t id)
{
    size_t lo = 0, hi = c->nstores;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t m = c->stores[mid]->meta->id;
        if (m == id)
            return (ssize_t)mid;
        if (m < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

pd_store *pd__cluster_store_locked(const pd_cluster *c, uint64_t id)
{
    ssize_t i = pd__cluster_store_index_locked(c, id);
    return i < 0 ? NULL : c->stores[i];
}

/* Inserts @s in id order (no store with its id may exist). Errors: -ENOMEM. */
static int insert_store(pd_cluster *c, pd_store *s)
{
    if (c->nstores == c->cap_stores) {
        size_t nc = c->cap_stores ? c->cap_stores * 2 : 8;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        pd_store **na = tkv_realloc(c->stores, nc * sizeof(*na));
        if (na == NULL)
            return -ENOMEM;
        c->stores = na;
        c->cap_stores = nc;
    }
    size_t i = c->nstores;
    while (i > 0 && c->stores[i - 1]->meta->id > s->meta->id) {
        c->stores[i] = c->stores[i - 1];
        i--;
    }
    c->stores[i] = s;
    c->nstores++;
    return 0;
}

/* Builds a store around a deep copy of @meta. */
static int store_new(const Metapb__Store *meta, pd_store **out)
{
    pd_store *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    ProtobufCMessage *m;
    int rc = pd__msg_clone(&meta->base, &m);
    if (rc != 0) {
        tkv_free(s);
        return rc;
    }
    s->meta = (Metapb__Store *)m;
    *out = s;
    return 0;
}

static int persist_store(pd_cluster *c, const Metapb__Store *meta)
{
    uint8_t k[PD_KEY_ID_LEN];
    int rc =
        pd__storage_put_msg(c->st, pd__key_id(k, PD_PREFIX_STORE, meta->id), &meta->base, true);
    if (rc != 0)
        TKV_LOG_ERROR("persist store", TKV_LF_U64("store_id", meta->id), TKV_LF_ERR("err", rc),
                      TKV_LF_STR("cause", pd__storage_errmsg(c->st)));
    return rc;
}

/* ---- regions ---------------------------------------------------------------------------- */

/* Adds (@sign 1) or removes (-1) @r's contribution to its stores' counts. */
static void account(pd_cluster *c, const pd_region *r, int sign)
{
    const Metapb__Region *m = pd__region_meta(r);
    uint64_t size = pd__region_size_mib(r);
    uint64_t leader = pd__region_leader_store(r);
    for (size_t i = 0; i < m->n_peers; i++) {
        const Metapb__Peer *p = m->peers[i];
        pd_store *s = pd__cluster_store_locked(c, p->store_id);
        if (s == NULL)
            continue;
        s->region_count += (uint64_t)(int64_t)sign;
        s->region_size_mib += (uint64_t)((int64_t)sign * (int64_t)size);
        if (pd__peer_is_learner(p))
            s->learner_count += (uint64_t)(int64_t)sign;
        if (pd__region_is_pending(r, p->id))
            s->pending_count += (uint64_t)(int64_t)sign;
        if (p->store_id == leader) {
            s->leader_count += (uint64_t)(int64_t)sign;
            s->leader_size_mib += (uint64_t)((int64_t)sign * (int64_t)size);
        }
    }
}

/* Recomputes every store's counts from the tree (after loading, or when a store appears
 * after regions already reference it). */
static void recount(pd_cluster *c)
{
    for (size_t i = 0; i < c->nstores; i++) {
        pd_store *s = c->stores[i];
        s->region_count = s->leader_count = s->learner_count = s->pending_count = 0;
        s->region_size_mib = s->leader_size_mib = 0;
    }
    for (pd_region *r = pd__rt_first(&c->regions); r != NULL; r = pd__rt_next(&c->regions, r))
        account(c, r, 1);
}

/* Puts @r into the tree (taking it), fixing counts, and persists the change when @persist
 * (without fsync: heartbeats repair lost region updates). On -ENOMEM @r is freed. */
static int put_region(pd_cluster *c, pd_region *r, bool persist)
{
    pd_region **removed;
    size_t nremoved;
    int rc = pd__rt_put(&c->regions, r, &removed, &nremoved);
    if (rc != 0) {
        pd__region_free(r);
        return rc;
    }
    eng_batch *b = NULL;
    if (persist && pd__storage_batch_new(c->st, &b) != 0)
        b = NULL;
    uint8_t k[PD_KEY_ID_LEN];
    for (size_t i = 0; i < nremoved; i++) {
        account(c, removed[i], -1);
        if (b != NULL && pd__region_id(removed[i]) != pd__region_id(r))
            TKV_IGNORE(eng_batch_delete(
                b, ENG_CF_DEFAULT, pd__key_id(k, PD_PREFIX_REGION, pd__region_id(removed[i]))));
        if (pd__region_id(removed[i]) != pd__region_id(r))
            TKV_LOG_INFO("region removed as overlapped",
                         TKV_LF_U64("region_id", pd__region_id(removed[i])),
                         TKV_LF_U64("by_region_id", pd__region_id(r)));
        pd__region_free(removed[i]);
    }
    tkv_free(removed);
    account(c, r, 1);
    if (persist) {
        tkv_buf v;
        tkv_buf_init(&v);
        int wrc = b == NULL ? -ENOMEM : rpc_msg_pack(&r->pb->base, &v);
        if (wrc == 0)
            wrc =
                eng_batch_put(b, ENG_CF_DEFAULT, pd__key_id(k, PD_PREFIX_REGION, pd__region_id(r)),
                              tkv_buf_slice(&v));
        if (wrc == 0)
            wrc = pd__storage_write(c->st, b, false);
        if (wrc != 0)
            TKV_LOG_ERROR("persist region", TKV_LF_U64("region_id", pd__region_id(r)),
                          TKV_LF_ERR("err", wrc));
        tkv_buf_deinit(&v);
    }
    eng_batch_free(b);
    return 0;
}

/* ---- loading ---------------------------------------------------------------------------- */

static int load_store(void *ud, tkv_slice key, tkv_slice val)
{
    (void)key;
    pd_cluster *c = ud;
    ProtobufCMessage *m;
    int rc = rpc_msg_unpack(&metapb__store__descriptor, val, &m);
    if (rc != 0)
        return TKV_ECORRUPT;
    pd_store *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL) {
        rpc_msg_free(m);
        return -ENOMEM;
    }
    s->meta = (Metapb__Store *)m;
    s->last_heartbeat_ms = c->start_ms;
    if (s->meta->id == 0 || pd__cluster_store_locked(c, s->meta->id) != NULL) {
        pd__store_free(s);
        return TKV_ECORRUPT;
    }
    rc = insert_store(c, s);
    if (rc != 0)
        pd__store_free(s);
    return rc;
}

static int load_region(void *ud, tkv_slice key, tkv_slice val)
{
    (void)key;
    pd_cluster *c = ud;
    pd_region *r;
    int rc = pd__region_decode(val, &r);
    if (rc != 0)
        return rc;
    /* Regions are loaded in id order; overlaps left by a crash resolve by version. */
    if (pd__rt_check(&c->regions, pd__region_meta(r), 0, NULL) != 0) {
        pd__region_free(r);
        return 0;
    }
    uint64_t id = pd__region_id(r);
    rc = put_region(c, r, false);
    if (rc == -EINVAL) {
        TKV_LOG_WARN("stored region with an empty range skipped", TKV_LF_U64("region_id", id));
        return 0;
    }
    return rc;
}

static int load_config(pd_cluster *c)
{
    tkv_buf b;
    tkv_buf_init(&b);
    bool found = false;
    int rc = pd__storage_get(c->st, tkv_slice_str(PD_KEY_CONFIG), &b, &found);
    if (rc != 0 || !found) {
        tkv_buf_deinit(&b);
        return rc;
    }
    json_error_t jerr;
    json_t *obj = json_loadb((const char *)b.data, b.len, 0, &jerr);
    tkv_buf_deinit(&b);
    if (obj == NULL)
        return TKV_ECORRUPT;
    char err[TKV_ERRMSG_LEN];
    rc = pd__sched_cfg_apply_json(&c->cfg, obj, NULL, err);
    json_decref(obj);
    if (rc != 0) {
        TKV_LOG_WARN("persisted config ignored", TKV_LF_STR("error", err));
        return 0;
    }
    TKV_LOG_INFO("persisted config applied");
    return 0;
}

int pd__cluster_new(pd_storage *st, pd_id_alloc *ids, uint64_t cluster_id, const pd_sched_cfg *cfg,
                    uint64_t (*clock_ms)(void *), void *clock_ud, pd_cluster **out)
{
    pd_cluster *c = tkv_calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    int rc = pd__rt_init(&c->regions);
    if (rc != 0) {
        tkv_free(c);
        return rc;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->st = st;
    c->ids = ids;
    c->cluster_id = cluster_id;
    c->cfg = *cfg;
    c->clock_ms = clock_ms;
    c->clock_ud = clock_ud;
    c->start_ms = pd__cluster_now(c);
    pd__map_init(&c->ops);
    pd__map_init(&c->records);
    tkv_buf_init(&c->patrol_key);

    tkv_buf b;
    tkv_buf_init(&b);
    bool found = false;
    rc = pd__storage_get(st, tkv_slice_str(PD_KEY_CLUSTER), &b, &found);
    if (rc == 0 && found) {
        ProtobufCMessage *m;
        rc = rpc_msg_unpack(&metapb__cluster__descriptor, tkv_buf_slice(&b), &m);
        if (rc == 0) {
            c->meta = (Metapb__Cluster *)m;
            c->bootstrapped = true;
        }
    }
    tkv_buf_deinit(&b);
    if (rc == 0) {
        uint64_t sp = 0;
        rc = pd__storage_get_u64(st, PD_KEY_GC_SAFE_POINT, &sp, &found);
        if (rc == 0 && found)
            c->gc_safe_point = sp;
    }
    if (rc == 0)
        rc = load_config(c);
    if (rc == 0)
        rc = pd__storage_scan(st, tkv_slice_str("s/"), tkv_slice_str("s0"), load_store, c);
    if (rc == 0)
        rc = pd__storage_scan(st, tkv_slice_str("r/"), tkv_slice_str("r0"), load_region, c);
    if (rc != 0) {
        pd__cluster_free(c);
        return rc;
    }
    recount(c);
    if (c->bootstrapped)
        TKV_LOG_INFO("cluster loaded", TKV_LF_U64("cluster_id", cluster_id),
                     TKV_LF_U64("stores", c->nstores),
                     TKV_LF_U64("regions", pd__rt_count(&c->regions)));
    *out = c;
    return 0;
}

static void free_groups(pd_cluster *c)
{
    while (c->groups != NULL) {
        pd_scatter_group *g = c->groups;
        c->groups = g->next;
        pd__map_deinit(&g->peers);
        pd__map_deinit(&g->leaders);
        tkv_free(g);
    }
}

void pd__cluster_free(pd_cluster *c)
{
    if (c == NULL)
        return;
    pd__waiters_free_locked(c);
    size_t pos = 0;
    void *v;
    while (pd__map_next(&c->ops, &pos, NULL, &v))
        pd__op_free(v);
    pos = 0;
    while (pd__map_next(&c->records, &pos, NULL, &v))
        tkv_free(v);
    pd__map_deinit(&c->ops);
    pd__map_deinit(&c->records);
    for (size_t i = 0; i < c->nstores; i++)
        pd__store_free(c->stores[i]);
    tkv_free(c->stores);
    pd__rt_deinit(&c->regions);
    free_groups(c);
    if (c->meta != NULL)
        rpc_msg_free(&c->meta->base);
    tkv_buf_deinit(&c->patrol_key);
    pthread_mutex_destroy(&c->mu);
    tkv_free(c);
}

void pd__cluster_set_hb_sink(pd_cluster *c, pd_hb_send_fn fn, void *ud)
{
    pd__cluster_lock(c);
    c->hb_send = fn;
    c->hb_ud = ud;
    pd__cluster_unlock(c);
}

/* ---- bootstrap and stores --------------------------------------------------------------- */

static bool not_bootstrapped(const pd_cluster *c, pd_result *res)
{
    if (c->bootstrapped)
        return false;
    pd__result_set(res, PDPB__ERROR_TYPE__NOT_BOOTSTRAPPED, "cluster is not bootstrapped");
    return true;
}

int pd__cluster_bootstrap(pd_cluster *c, const Metapb__Store *store, const Metapb__Region *region,
                          pd_result *res)
{
    res->type = PDPB__ERROR_TYPE__OK;
    pd__cluster_lock(c);
    int rc = 0;
    if (c->bootstrapped) {
        pd__result_set(res, PDPB__ERROR_TYPE__ALREADY_BOOTSTRAPPED,
                       "cluster is already bootstrapped");
        goto out;
    }
    if (store == NULL || store->id == 0) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid zero store id");
        goto out;
    }
    if (region == NULL || region->id == 0) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid zero region id");
        goto out;
    }
    if (region->n_peers != 1) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid first region peer count %zu",
                       region->n_peers);
        goto out;
    }
    if (region->peers[0]->store_id != store->id) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN,
                       "invalid peer store id %" PRIu64 " != %" PRIu64, region->peers[0]->store_id,
                       store->id);
        goto out;
    }
    if (region->start_key.len != 0 || region->end_key.len != 0) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid first region range");
        goto out;
    }
    Metapb__Cluster meta = METAPB__CLUSTER__INIT;
    meta.id = c->cluster_id;
    meta.max_peer_count = (uint32_t)c->cfg.max_replicas;
    Metapb__Store sm = *store;
    sm.state = METAPB__STORE_STATE__Up;
    sm.node_state = METAPB__NODE_STATE__Serving;
    pd_store *s = NULL;
    pd_region *r = NULL;
    ProtobufCMessage *mc = NULL;
    rc = store_new(&sm, &s);
    if (rc == 0)
        rc = pd__region_new(region, NULL, NULL, 0, NULL, 0, &r);
    if (rc == 0)
        rc = pd__msg_clone(&meta.base, &mc);
    eng_batch *b = NULL;
    if (rc == 0)
        rc = pd__storage_batch_new(c->st, &b);
    tkv_buf v;
    tkv_buf_init(&v);
    uint8_t k[PD_KEY_ID_LEN];
    if (rc == 0)
        rc = rpc_msg_pack(&meta.base, &v);
    if (rc == 0)
        rc = eng_batch_put(b, ENG_CF_DEFAULT, tkv_slice_str(PD_KEY_CLUSTER), tkv_buf_slice(&v));
    if (rc == 0)
        rc = rpc_msg_pack(&sm.base, &v);
    if (rc == 0)
        rc = eng_batch_put(b, ENG_CF_DEFAULT, pd__key_id(k, PD_PREFIX_STORE, sm.id),
                           tkv_buf_slice(&v));
    if (rc == 0)
        rc = rpc_msg_pack(&r->pb->base, &v);
    if (rc == 0)
        rc = eng_batch_put(b, ENG_CF_DEFAULT, pd__key_id(k, PD_PREFIX_REGION, region->id),
                           tkv_buf_slice(&v));
    if (rc == 0)
        rc = pd__storage_write(c->st, b, true);
    if (rc == 0) {
        /* Counting happens in put_region; the store must be present first. */
        s->last_heartbeat_ms = pd__cluster_now(c);
        rc = insert_store(c, s);
    }
    if (rc == 0) {
        s = NULL;
        rc = put_region(c, r, false);
        r = NULL;
    }
    tkv_buf_deinit(&v);
    eng_batch_free(b);
    pd__store_free(s);
    pd__region_free(r);
    if (rc != 0) {
        if (mc != NULL)
            rpc_msg_free(mc);
        TKV_LOG_ERROR("bootstrap failed", TKV_LF_ERR("err", rc));
        goto out;
    }
    c->meta = (Metapb__Cluster *)mc;
    c->bootstrapped = true;
    TKV_LOG_INFO("cluster bootstrapped", TKV_LF_U64("cluster_id", c->cluster_id),
                 TKV_LF_U64("store_id", store->id), TKV_LF_U64("region_id", region->id));
out:
    pd__cluster_unlock(c);
    return rc;
}

/* Returns the PD_CERT_NAME_LABEL value of @meta, or "" when it has none. */
static const char *cert_name_of(const Metapb__Store *meta)
{
    for (size_t i = 0; i < meta->n_labels; i++) {
        const Metapb__StoreLabel *l = meta->labels[i];
        if (l->key != NULL && strcmp(l->key, PD_CERT_NAME_LABEL) == 0)
            return l->value != NULL ? l->value : "";
    }
    return "";
}

/* Refuses (res, true) a caller whose certificate name @cn is not the one store @meta
 * registered with. Without mutual TLS (@cn empty) nothing is checked. */
static bool cert_mismatch(const Metapb__Store *meta, const char *cn, pd_result *res)
{
    const char *had = cert_name_of(meta);
    if (cn == NULL || cn[0] == '\0' || had[0] == '\0' || strcmp(had, cn) == 0)
        return false;
    pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN,
                   "store %" PRIu64 " is registered with another certificate name", meta->id);
    res->identity_refused = true;
    TKV_LOG_WARN("store refused: certificate name differs from the registered one",
                 TKV_LF_U64("store_id", meta->id), TKV_LF_STR("cn", cn),
                 TKV_LF_STR("registered", had));
    return true;
}

int pd__cluster_put_store(pd_cluster *c, const Metapb__Store *store, pd_result *res)
{
    return pd__cluster_put_store_as(c, store, NULL, res);
}

int pd__cluster_put_store_as(pd_cluster *c, const Metapb__Store *store, const char *cert_name,
                             pd_result *res)
{
    res->type = PDPB__ERROR_TYPE__OK;
    res->identity_refused = false;
    pd__cluster_lock(c);
    int rc = 0;
    if (not_bootstrapped(c, res))
        goto out;
    if (store == NULL || store->id == 0) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid put store: zero store id");
        goto out;
    }
    ssize_t idx = pd__cluster_store_index_locked(c, store->id);
    pd_store *old = idx >= 0 ? c->stores[idx] : NULL;
    if (old != NULL && old->meta->state == METAPB__STORE_STATE__Tombstone) {
        pd__result_set(res, PDPB__ERROR_TYPE__STORE_TOMBSTONE, "store is tombstone");
        goto out;
    }
    if (old != NULL && cert_mismatch(old->meta, cert_name, res))
        goto out;
    if (store->address == NULL || store->address[0] == '\0') {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN,
                       "invalid put store %" PRIu64 ": empty address", store->id);
        goto out;
    }
    for (size_t i = 0; i < c->nstores; i++) {
        const Metapb__Store *m = c->stores[i]->meta;
        if (m->id != store->id && m->state != METAPB__STORE_STATE__Tombstone &&
            m->address != NULL && strcmp(m->address, store->address) == 0) {
            pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN,
                           "duplicated store address: %s, already registered by store %" PRIu64,
                           store->address, m->id);
            goto out;
        }
    }
    Metapb__Store sm = *store;
    /* The certificate name label is PD's to set: the caller's TLS name, never the request's. */
    Metapb__StoreLabel cert_label = METAPB__STORE_LABEL__INIT;
    Metapb__StoreLabel *labels[64];
    sm.n_labels = 0;
    sm.labels = labels;
    for (size_t i = 0; i < store->n_labels && sm.n_labels < TKV_ARRAY_LEN(labels) - 1; i++)
        if (store->labels[i]->key == NULL || strcmp(store->labels[i]->key, PD_CERT_NAME_LABEL) != 0)
            labels[sm.n_labels++] = store->labels[i];
    if (cert_name != NULL && cert_name[0] != '\0') {
        cert_label.key = PD_CERT_NAME_LABEL;
        cert_label.value = (char *)cert_name;
        labels[sm.n_labels++] = &cert_label;
    }
    sm.state = old != NULL ? old->meta->state : METAPB__STORE_STATE__Up;
    sm.node_state = old != NULL ? old->meta->node_state : METAPB__NODE_STATE__Serving;
    sm.last_heartbeat = old != NULL ? old->meta->last_heartbeat : 0;
    pd_store *s;
    rc = store_new(&sm, &s);
    if (rc == 0) {
        rc = persist_store(c, s->meta);
        if (rc != 0)
            pd__store_free(s);
    }
    if (rc != 0)
        goto out;
    if (old != NULL) {
        /* Keep heartbeat state and counts; replace the meta. */
        rpc_msg_free(&old->meta->base);
        old->meta = s->meta;
        s->meta = NULL;
        tkv_free(s);
    } else {
        s->last_heartbeat_ms = pd__cluster_now(c);
        rc = insert_store(c, s);
        if (rc != 0) {
            pd__store_free(s);
            goto out;
        }
        recount(c);
    }
    TKV_LOG_INFO("put store ok", TKV_LF_U64("store_id", store->id),
                 TKV_LF_STR("address", store->address), TKV_LF_BOOL("new", old == NULL));
out:
    pd__cluster_unlock(c);
    return rc;
}

int pd__cluster_store_heartbeat(pd_cluster *c, const Pdpb__StoreStats *stats, pd_result *res)
{
    return pd__cluster_store_heartbeat_as(c, stats, NULL, res);
}

int pd__cluster_store_heartbeat_as(pd_cluster *c, const Pdpb__StoreStats *stats,
                                   const char *cert_name, pd_result *res)
{
    res->type = PDPB__ERROR_TYPE__OK;
    res->identity_refused = false;
    pd__cluster_lock(c);
    int rc = 0;
    if (not_bootstrapped(c, res))
        goto out;
    pd_store *s = pd__cluster_store_locked(c, stats->store_id);
    if (s == NULL) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "store %" PRIu64 " not found",
                       stats->store_id);
        goto out;
    }
    if (s->meta->state == METAPB__STORE_STATE__Tombstone) {
        pd__result_set(res, PDPB__ERROR_TYPE__STORE_TOMBSTONE, "store is tombstone");
        goto out;
    }
    if (cert_mismatch(s->meta, cert_name, res))
        goto out;
    ProtobufCMessage *m;
    rc = pd__msg_clone(&stats->base, &m);
    if (rc != 0)
        goto out;
    if (s->stats != NULL)
        rpc_msg_free(&s->stats->base);
    s->stats = (Pdpb__StoreStats *)m;
    s->last_heartbeat_ms = pd__cluster_now(c);
    s->heartbeat_real_ms = tkv_clock_real_ms();
    s->meta->last_heartbeat = (int64_t)(s->heartbeat_real_ms * 1000000ull);
out:
    pd__cluster_unlock(c);
    return rc;
}

int pd__cluster_set_store_state(pd_cluster *c, uint64_t store_id, Metapb__StoreState state,
                                bool force, pd_result *res)
{
    res->type = PDPB__ERROR_TYPE__OK;
    pd__cluster_lock(c);
    int rc = 0;
    pd_store *s = pd__cluster_store_locked(c, store_id);
    if (s == NULL) {
        pd__result_set(res, PDPB__ERROR_TYPE__ENTRY_NOT_FOUND, "store %" PRIu64 " not found",
                       store_id);
        goto out;
    }
    Metapb__StoreState old = s->meta->state;
    if (old == state)
        goto out;
    if (old == METAPB__STORE_STATE__Tombstone) {
        pd__result_set(res, PDPB__ERROR_TYPE__INVALID_VALUE, "store %" PRIu64 " is tombstone",
                       store_id);
        goto out;
    }
    if (state == METAPB__STORE_STATE__Tombstone && s->region_count > 0 && !force) {
        pd__result_set(res, PDPB__ERROR_TYPE__INVALID_VALUE,
                       "store %" PRIu64 " still has %" PRIu64 " regions; set it Offline first",
                       store_id, s->region_count);
        goto out;
    }
    s->meta->state = state;
    if (state == METAPB__STORE_STATE__Tombstone)
        s->meta->node_state = METAPB__NODE_STATE__Removed;
    else if (state == METAPB__STORE_STATE__Offline)
        s->meta->node_state = METAPB__NODE_STATE__Removing;
    else
        s->meta->node_state = METAPB__NODE_STATE__Serving;
    rc = persist_store(c, s->meta);
    if (rc != 0) {
        s->meta->state = old;
        goto out;
    }
    TKV_LOG_INFO("store state changed", TKV_LF_U64("store_id", store_id),
                 TKV_LF_U64("from", (uint64_t)old), TKV_LF_U64("to", (uint64_t)state));
out:
    pd__cluster_unlock(c);
    return rc;
}

/* ---- region heartbeats ------------------------------------------------------------------ */

static bool peers_equal(const Metapb__Region *a, const Metapb__Region *b)
{
    if (a->n_peers != b->n_peers)
        return false;
    for (size_t i = 0; i < a->n_peers; i++)
        if (a->peers[i]->id != b->peers[i]->id || a->peers[i]->store_id != b->peers[i]->store_id ||
            a->peers[i]->role != b->peers[i]->role)
            return false;
    return true;
}

int pd__cluster_region_heartbeat(pd_cluster *c, const Pdpb__RegionHeartbeatRequest *req,
                                 pd_result *res)
{
    res->type = PDPB__ERROR_TYPE__OK;
    pd__cluster_lock(c);
    int rc = 0;
    if (not_bootstrapped(c, res))
        goto out;
    const Metapb__Region *m = req->region;
    const Metapb__Peer *leader = req->leader;
    if (leader == NULL) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid request leader");
        goto out;
    }
    if (pd__cluster_store_locked(c, leader->store_id) == NULL) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid store ID %" PRIu64 ", not found",
                       leader->store_id);
        rc = TKV_ENOTFOUND;
        goto out;
    }
    if (m == NULL || m->id == 0) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid request region");
        goto out;
    }
    if (m->n_peers == 0) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid region, zero region peer count");
        goto out;
    }
    if (m->end_key.len != 0 && tkv_slice_cmp(pd__bytes(m->start_key), pd__bytes(m->end_key)) >= 0) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid region %" PRIu64 ": empty range",
                       m->id);
        goto out;
    }
    pd_region *origin;
    rc = pd__rt_check(&c->regions, m, req->term, &origin);
    if (rc == TKV_ESTALE) {
        rc = 0;
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN,
                       "region is stale: region %" PRIu64 " version %" PRIu64 " conf_ver %" PRIu64,
                       m->id, m->region_epoch ? m->region_epoch->version : 0,
                       m->region_epoch ? m->region_epoch->conf_ver : 0);
        goto out;
    }
    if (rc != 0)
        goto out;
    pd_region *r;
    rc = pd__region_new(m, leader, req->down_peers, req->n_down_peers, req->pending_peers,
                        req->n_pending_peers, &r);
    if (rc != 0)
        goto out;
    r->approximate_size = req->approximate_size;
    r->approximate_keys = req->approximate_keys;
    r->bytes_written = req->bytes_written;
    r->bytes_read = req->bytes_read;
    r->keys_written = req->keys_written;
    r->keys_read = req->keys_read;
    r->term = req->term;
    r->heartbeat_ms = pd__cluster_now(c);
    bool persist = origin == NULL || pd__region_version(origin) != pd__region_version(r) ||
                   pd__region_conf_ver(origin) != pd__region_conf_ver(r) ||
                   !peers_equal(pd__region_meta(origin), m) ||
                   pd__region_leader_store(origin) != leader->store_id ||
                   !tkv_slice_eq(pd__region_start(origin), pd__region_start(r)) ||
                   !tkv_slice_eq(pd__region_end(origin), pd__region_end(r));
    if (origin == NULL)
        TKV_LOG_DEBUG("insert new region", TKV_LF_U64("region_id", m->id));
    else if (pd__region_version(origin) != pd__region_version(r) ||
             pd__region_conf_ver(origin) != pd__region_conf_ver(r))
        TKV_LOG_INFO("region epoch changed", TKV_LF_U64("region_id", m->id),
                     TKV_LF_U64("old_version", pd__region_version(origin)),
                     TKV_LF_U64("new_version", pd__region_version(r)),
                     TKV_LF_U64("old_conf_ver", pd__region_conf_ver(origin)),
                     TKV_LF_U64("new_conf_ver", pd__region_conf_ver(r)));
    rc = put_region(c, r, persist);
    if (rc != 0)
        goto out;
    pd__opc_dispatch_locked(c, r);
out:
    pd__cluster_unlock(c);
    return rc;
}

/* ---- splits ----------------------------------------------------------------------------- */

#define MAX_SPLIT_COUNT 4096

void pd__ask_batch_split_free(Pdpb__AskBatchSplitResponse *resp)
{
    for (size_t i = 0; i < resp->n_ids; i++) {
        if (resp->ids[i] != NULL)
            tkv_free(resp->ids[i]->new_peer_ids);
        tkv_free(resp->ids[i]);
    }
    tkv_free(resp->ids);
    resp->ids = NULL;
    resp->n_ids = 0;
}

/* PD's ValidRequestRegion: the region containing the request's start key must exist and
 * the request's epoch must not be older. */
static bool valid_request_region(pd_cluster *c, const Metapb__Region *req, pd_result *res)
{
    pd_region *cur = pd__rt_find(&c->regions, pd__bytes(req->start_key));
    if (cur == NULL) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "region not found, request region: %" PRIu64,
                       req->id);
        return false;
    }
    const Metapb__RegionEpoch *e = req->region_epoch;
    uint64_t v = e ? e->version : 0, cv = e ? e->conf_ver : 0;
    if (v < pd__region_version(cur) || cv < pd__region_conf_ver(cur)) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN,
                       "invalid region epoch, request: (version %" PRIu64 ", conf_ver %" PRIu64
                       "), current: (version %" PRIu64 ", conf_ver %" PRIu64 ")",
                       v, cv, pd__region_version(cur), pd__region_conf_ver(cur));
        return false;
    }
    return true;
}

int pd__cluster_ask_batch_split(pd_cluster *c, const Metapb__Region *region, uint32_t count,
                                Pdpb__AskBatchSplitResponse *resp, pd_result *res)
{
    res->type = PDPB__ERROR_TYPE__OK;
    resp->ids = NULL;
    resp->n_ids = 0;
    pd__cluster_lock(c);
    int rc = 0;
    if (not_bootstrapped(c, res))
        goto out;
    if (region == NULL) {
        pd__result_set(res, PDPB__ERROR_TYPE__REGION_NOT_FOUND, "missing region for split");
        goto out;
    }
    if (count == 0 || count > MAX_SPLIT_COUNT || region->n_peers > 64) {
        pd__result_set(res, PDPB__ERROR_TYPE__INVALID_VALUE,
                       "invalid split count %u (1..%d) or peer count %zu", count, MAX_SPLIT_COUNT,
                       region->n_peers);
        goto out;
    }
    if (!valid_request_region(c, region, res))
        goto out;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    resp->ids = tkv_calloc(count, sizeof(*resp->ids));
    if (resp->ids == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        Pdpb__SplitID *sid = tkv_calloc(1, sizeof(*sid));
        uint64_t *peer_ids = region->n_peers ? tkv_calloc(region->n_peers, sizeof(uint64_t)) : NULL;
        if (sid == NULL || (region->n_peers && peer_ids == NULL)) {
            tkv_free(sid);
            tkv_free(peer_ids);
            rc = -ENOMEM;
            break;
        }
        pdpb__split_id__init(sid);
        resp->ids[resp->n_ids++] = sid;
        sid->new_peer_ids = peer_ids;
        sid->n_new_peer_ids = region->n_peers;
        rc = pd__id_alloc(c->ids, &sid->new_region_id);
        if (rc == 0 && region->n_peers > 0)
            rc = pd__id_alloc_n(c->ids, region->n_peers, peer_ids);
        if (rc == 0)
            TKV_LOG_INFO("alloc ids for region split", TKV_LF_U64("region_id", sid->new_region_id),
                         TKV_LF_U64("peers", region->n_peers));
    }
    if (rc != 0)
        pd__ask_batch_split_free(resp);
out:
    pd__cluster_unlock(c);
    return rc;
}

int pd__cluster_report_batch_split(pd_cluster *c, Metapb__Region *const *regions, size_t n,
                                   pd_result *res)
{
    res->type = PDPB__ERROR_TYPE__OK;
    pd__cluster_lock(c);
    int rc = 0;
    if (not_bootstrapped(c, res))
        goto out;
    bool valid = n >= 2;
    for (size_t i = 1; valid && i < n; i++) {
        const Metapb__Region *l = regions[i - 1], *r = regions[i];
        /* Adjacent, and each region non-empty. */
        if (l == NULL || r == NULL ||
            !tkv_slice_eq(pd__bytes(l->end_key), pd__bytes(r->start_key)) ||
            (r->end_key.len != 0 &&
             tkv_slice_cmp(pd__bytes(l->start_key), pd__bytes(r->end_key)) >= 0))
            valid = false;
    }
    for (size_t i = 0; valid && i < n; i++) {
        const Metapb__Region *m = regions[i];
        valid = m->id != 0 && m->n_peers > 0 &&
                (m->end_key.len == 0 ||
                 tkv_slice_cmp(pd__bytes(m->start_key), pd__bytes(m->end_key)) < 0);
    }
    if (!valid) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN, "invalid split region");
        goto out;
    }
    /* The reporting leader leads every part right after the split: record the parts now so
     * that clients find them before their own heartbeats arrive. */
    pd_region *orig = pd__rt_get(&c->regions, regions[n - 1]->id);
    uint64_t leader_store = orig != NULL ? pd__region_leader_store(orig) : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (pd__rt_check(&c->regions, regions[i], 0, NULL) != 0)
            continue;
        const Metapb__Peer *leader = NULL;
        for (size_t j = 0; j < regions[i]->n_peers; j++)
            if (regions[i]->peers[j]->store_id == leader_store)
                leader = regions[i]->peers[j];
        pd_region *r;
        rc = pd__region_new(regions[i], leader, NULL, 0, NULL, 0, &r);
        if (rc == 0)
            rc = put_region(c, r, true);
    }
    TKV_LOG_INFO("region batch split, generate new regions",
                 TKV_LF_U64("region_id", regions[n - 1]->id), TKV_LF_U64("total", n - 1));
out:
    pd__cluster_unlock(c);
    return rc;
}

/* ---- cluster meta, GC safe point, settings ---------------------------------------------- */

int pd__cluster_put_meta(pd_cluster *c, const Metapb__Cluster *meta, pd_result *res)
{
    res->type = PDPB__ERROR_TYPE__OK;
    pd__cluster_lock(c);
    int rc = 0;
    if (not_bootstrapped(c, res))
        goto out;
    if (meta == NULL || meta->id != c->cluster_id) {
        pd__result_set(res, PDPB__ERROR_TYPE__UNKNOWN,
                       "invalid cluster %" PRIu64 ", mismatch cluster id %" PRIu64,
                       meta ? meta->id : 0, c->cluster_id);
        goto out;
    }
    ProtobufCMessage *m;
    rc = pd__msg_clone(&meta->base, &m);
    if (rc != 0)
        goto out;
    rc = pd__storage_put_msg(c->st, tkv_slice_str(PD_KEY_CLUSTER), m, true);
    if (rc != 0) {
        rpc_msg_free(m);
        goto out;
    }
    rpc_msg_free(&c->meta->base);
    c->meta = (Metapb__Cluster *)m;
    TKV_LOG_INFO("put cluster config ok", TKV_LF_U64("max_peer_count", meta->max_peer_count));
out:
    pd__cluster_unlock(c);
    return rc;
}

int pd__cluster_update_gc_safe_point(pd_cluster *c, uint64_t sp, uint64_t *out)
{
    pd__cluster_lock(c);
    int rc = 0;
    if (sp > c->gc_safe_point) {
        rc = pd__storage_put_u64(c->st, PD_KEY_GC_SAFE_POINT, sp, true);
        if (rc == 0) {
            TKV_LOG_INFO("updated gc safe point", TKV_LF_U64("safe_point", sp));
            c->gc_safe_point = sp;
        }
    } else if (sp < c->gc_safe_point) {
        TKV_LOG_WARN("trying to update gc safe point",
                     TKV_LF_U64("old_safe_point", c->gc_safe_point),
                     TKV_LF_U64("new_safe_point", sp));
    }
    *out = c->gc_safe_point;
    pd__cluster_unlock(c);
    return rc;
}

int pd__cluster_apply_config(pd_cluster *c, const json_t *obj, const char *section,
                             char errmsg[TKV_ERRMSG_LEN])
{
    pd__cluster_lock(c);
    pd_sched_cfg cfg = c->cfg;
    int rc = pd__sched_cfg_apply_json(&cfg, obj, section, errmsg);
    if (rc == 0) {
        json_t *all = pd__sched_cfg_json(&cfg, 0);
        char *text = all != NULL ? json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(all);
        rc = text == NULL
                 ? -ENOMEM
                 : pd__storage_put(c->st, tkv_slice_str(PD_KEY_CONFIG), tkv_slice_str(text), true);
        free(text);
        if (rc == 0) {
            c->cfg = cfg;
            TKV_LOG_INFO("config changed");
        } else if (errmsg != NULL) {
            snprintf(errmsg, TKV_ERRMSG_LEN, "persist config: %s", tkv_strerror(rc));
        }
    }
    pd__cluster_unlock(c);
    return rc;
}

void pd__cluster_get_config(pd_cluster *c, pd_sched_cfg *out)
{
    pd__cluster_lock(c);
    *out = c->cfg;
    pd__cluster_unlock(c);
}
