/*
 * fake_pd.c: the fake PD cluster (see fake_pd.h).
 */
#include "unit/pdc/fake_pd.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "base/clock.h"
#include "etcdserverpb.pb-c.h"
#include "pdpb.pb-c.h"

static const char *const unary_methods[] = {
    "GetMembers",    "GetRegion",        "GetPrevRegion",  "GetRegionByID",
    "ScanRegions",   "GetStore",         "GetAllStores",   "IsBootstrapped",
    "Bootstrap",     "AllocID",          "PutStore",       "StoreHeartbeat",
    "AskBatchSplit", "ReportBatchSplit", "GetGCSafePoint", "UpdateGCSafePoint",
};

/* ---- helpers ---------------------------------------------------------------------------- */

void fpd_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

void fpd_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

void fpd_region_to_msg(const fpd_region *r, fpd_region_msg *m)
{
    metapb__region__init(&m->r);
    metapb__region_epoch__init(&m->ep);
    m->r.id = r->id;
    m->r.start_key.data = (uint8_t *)r->start;
    m->r.start_key.len = r->start_len;
    m->r.end_key.data = (uint8_t *)r->end;
    m->r.end_key.len = r->end_len;
    m->ep.conf_ver = r->conf_ver;
    m->ep.version = r->version;
    m->r.region_epoch = &m->ep;
    for (size_t i = 0; i < r->n_peers; i++) {
        metapb__peer__init(&m->peers[i]);
        m->peers[i].id = r->peers[i].id;
        m->peers[i].store_id = r->peers[i].store_id;
        m->pp[i] = &m->peers[i];
    }
    m->r.peers = m->pp;
    m->r.n_peers = r->n_peers;
    metapb__peer__init(&m->leader);
    if (r->n_peers > 0) {
        m->leader.id = r->peers[r->leader].id;
        m->leader.store_id = r->peers[r->leader].store_id;
    }
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    return tkv_slice_cmp(tkv_slice_of(a, an), tkv_slice_of(b, bn));
}

/* Returns the index of the region containing @key, or -1. Under mu. */
static int find_region(fake_pd *p, tkv_slice key)
{
    for (size_t i = 0; i < p->n_regions; i++) {
        fpd_region *r = &p->regions[i];
        if (key_cmp(r->start, r->start_len, key.data, key.len) <= 0 &&
            (r->end_len == 0 || key_cmp(key.data, key.len, r->end, r->end_len) < 0))
            return (int)i;
    }
    return -1;
}

int fake_pd_region_index(fake_pd *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_regions; i++)
        if (p->regions[i].id == id)
            return (int)i;
    return -1;
}

static void set_header(fake_pd *p, Pdpb__ResponseHeader *h)
{
    pdpb__response_header__init(h);
    h->cluster_id = p->cluster_id;
}

/* Records the request header's ids. Under mu. */
static void seen_header(fake_pd *p, const Pdpb__RequestHeader *h)
{
    if (h != NULL) {
        p->last_cluster_id_seen = h->cluster_id;
        p->last_sender_id = h->sender_id;
    }
}

static void reply(rpc_call *call, const ProtobufCMessage *m)
{
    TKV_IGNORE(rpc_call_reply_msg(call, m));
}

/* ---- unary methods ---------------------------------------------------------------------- */

static void answer_members(fake_pd *p, rpc_call *call, tkv_slice msg)
{
    Pdpb__GetMembersResponse r = PDPB__GET_MEMBERS_RESPONSE__INIT;
    Pdpb__ResponseHeader h;
    Pdpb__Member m[FPD_MAX_MEMBERS];
    Pdpb__Member *mp[FPD_MAX_MEMBERS];
    char url[FPD_MAX_MEMBERS][80];
    char *urlp[FPD_MAX_MEMBERS];
    pthread_mutex_lock(&p->mu);
    p->calls[FPD_GET_MEMBERS]++;
    ProtobufCMessage *q = NULL;
    if (rpc_msg_unpack(&pdpb__get_members_request__descriptor, msg, &q) == 0) {
        seen_header(p, ((Pdpb__GetMembersRequest *)q)->header);
        rpc_msg_free(q);
    }
    set_header(p, &h);
    int n = 0;
    for (int i = 0; i < p->n_members; i++) {
        if (p->srv[i] == NULL)
            continue;
        pdpb__member__init(&m[n]);
        m[n].member_id = (uint64_t)i + 1;
        snprintf(url[i], sizeof(url[i]), "http://%s", p->addr[i]);
        urlp[i] = url[i];
        m[n].client_urls = &urlp[i];
        m[n].n_client_urls = 1;
        m[n].name = "pd";
        mp[n] = &m[n];
        if (i == p->leader)
            r.leader = &m[n];
        n++;
    }
    r.members = mp;
    r.n_members = (size_t)n;
    r.header = &h;
    reply(call, &r.base);
    pthread_mutex_unlock(&p->mu);
}

static void answer_region(fake_pd *p, rpc_call *call, int idx)
{
    Pdpb__GetRegionResponse r = PDPB__GET_REGION_RESPONSE__INIT;
    Pdpb__ResponseHeader h;
    set_header(p, &h);
    r.header = &h;
    fpd_region_msg m;
    if (idx >= 0) {
        fpd_region_to_msg(&p->regions[idx], &m);
        r.region = &m.r;
        r.leader = &m.leader;
        for (size_t i = 0; p->stale_leader_store != 0 && i < m.r.n_peers; i++) {
            if (m.peers[i].store_id == p->stale_leader_store)
                r.leader = &m.peers[i];
        }
    }
    reply(call, &r.base);
}

#define UNPACK(type, desc, out)                                                                    \
    do {                                                                                           \
        ProtobufCMessage *um_ = NULL;                                                              \
        if (rpc_msg_unpack(&(desc), msg, &um_) != 0) {                                             \
            pthread_mutex_unlock(&p->mu);                                                          \
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, "bad request");                            \
            return;                                                                                \
        }                                                                                          \
        (out) = (type *)um_;                                                                       \
    } while (0)

static void header_error(fake_pd *p, rpc_call *call, Pdpb__ErrorType type, const char *msg,
                         const ProtobufCMessageDescriptor *desc)
{
    /* Every pdpb response has the header first; build an empty response of the right type. */
    ProtobufCMessage *m = calloc(1, desc->sizeof_message);
    desc->message_init(m);
    Pdpb__ResponseHeader h;
    set_header(p, &h);
    Pdpb__Error e = PDPB__ERROR__INIT;
    e.type = type;
    e.message = (char *)msg;
    h.error = &e;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(desc, "header");
    *(Pdpb__ResponseHeader **)((char *)m + f->offset) = &h;
    reply(call, m);
    free(m);
}

static void on_unary(rpc_call *call, tkv_slice msg, void *ud)
{
    struct fpd_member_ud *mu = ud;
    fake_pd *p = mu->pd;
    const char *name = strrchr(rpc_call_method(call), '/') + 1;
    if (strcmp(name, "GetMembers") == 0) {
        answer_members(p, call, msg);
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (mu->idx != p->leader) {
        p->not_leader_answers++;
        pthread_mutex_unlock(&p->mu);
        rpc_call_finish(call, RPC_UNAVAILABLE, "not leader");
        return;
    }
    Pdpb__ResponseHeader h;
    set_header(p, &h);
    if (strcmp(name, "GetRegion") == 0 || strcmp(name, "GetPrevRegion") == 0) {
        bool prev = name[3] == 'P';
        p->calls[prev ? FPD_GET_PREV_REGION : FPD_GET_REGION]++;
        if (p->region_lookups_fail > 0) {
            p->region_lookups_fail--;
            pthread_mutex_unlock(&p->mu);
            rpc_call_finish(call, RPC_UNAVAILABLE, "injected failure");
            return;
        }
        Pdpb__GetRegionRequest *q;
        UNPACK(Pdpb__GetRegionRequest, pdpb__get_region_request__descriptor, q);
        seen_header(p, q->header);
        p->last_region_key_len = TKV_MIN(q->region_key.len, (size_t)FPD_MAX_KEY);
        if (p->last_region_key_len > 0)
            memcpy(p->last_region_key, q->region_key.data, p->last_region_key_len);
        int idx = find_region(p, tkv_slice_of(q->region_key.data, q->region_key.len));
        if (prev)
            idx = idx > 0 ? idx - 1 : -1;
        answer_region(p, call, idx);
        rpc_msg_free(&q->base);
    } else if (strcmp(name, "GetRegionByID") == 0) {
        p->calls[FPD_GET_REGION_BY_ID]++;
        Pdpb__GetRegionByIDRequest *q;
        UNPACK(Pdpb__GetRegionByIDRequest, pdpb__get_region_by_idrequest__descriptor, q);
        seen_header(p, q->header);
        answer_region(p, call, fake_pd_region_index(p, q->region_id));
        rpc_msg_free(&q->base);
    } else if (strcmp(name, "ScanRegions") == 0) {
        p->calls[FPD_SCAN_REGIONS]++;
        Pdpb__ScanRegionsRequest *q;
        UNPACK(Pdpb__ScanRegionsRequest, pdpb__scan_regions_request__descriptor, q);
        seen_header(p, q->header);
        Pdpb__ScanRegionsResponse r = PDPB__SCAN_REGIONS_RESPONSE__INIT;
        r.header = &h;
        static fpd_region_msg msgs[FPD_MAX_REGIONS];
        Pdpb__Region regs[FPD_MAX_REGIONS];
        Pdpb__Region *rp[FPD_MAX_REGIONS];
        size_t n = 0;
        for (size_t i = 0; i < p->n_regions; i++) {
            fpd_region *g = &p->regions[i];
            bool after_start = g->end_len == 0 ||
                               key_cmp(q->start_key.data, q->start_key.len, g->end, g->end_len) < 0;
            bool before_end = q->end_key.len == 0 ||
                              key_cmp(g->start, g->start_len, q->end_key.data, q->end_key.len) < 0;
            if (!after_start || !before_end)
                continue;
            if (q->limit > 0 && n >= (size_t)q->limit)
                break;
            fpd_region_to_msg(g, &msgs[n]);
            pdpb__region__init(&regs[n]);
            regs[n].region = &msgs[n].r;
            regs[n].leader = &msgs[n].leader;
            rp[n] = &regs[n];
            n++;
        }
        r.regions = rp;
        r.n_regions = n;
        reply(call, &r.base);
        rpc_msg_free(&q->base);
    } else if (strcmp(name, "GetStore") == 0) {
        p->calls[FPD_GET_STORE]++;
        Pdpb__GetStoreRequest *q;
        UNPACK(Pdpb__GetStoreRequest, pdpb__get_store_request__descriptor, q);
        seen_header(p, q->header);
        fpd_store *s = NULL;
        for (size_t i = 0; i < p->n_stores; i++)
            if (p->stores[i].id == q->store_id)
                s = &p->stores[i];
        if (s == NULL) {
            char text[64];
            snprintf(text, sizeof(text), "invalid store ID %" PRIu64 ", not found", q->store_id);
            header_error(p, call, PDPB__ERROR_TYPE__UNKNOWN, text,
                         &pdpb__get_store_response__descriptor);
        } else {
            Pdpb__GetStoreResponse r = PDPB__GET_STORE_RESPONSE__INIT;
            Metapb__Store st = METAPB__STORE__INIT;
            st.id = s->id;
            st.address = s->addr;
            st.state = (Metapb__StoreState)s->state;
            r.header = &h;
            r.store = &st;
            reply(call, &r.base);
        }
        rpc_msg_free(&q->base);
    } else if (strcmp(name, "GetAllStores") == 0) {
        p->calls[FPD_GET_ALL_STORES]++;
        Pdpb__GetAllStoresResponse r = PDPB__GET_ALL_STORES_RESPONSE__INIT;
        Metapb__Store st[FPD_MAX_STORES];
        Metapb__Store *sp[FPD_MAX_STORES];
        for (size_t i = 0; i < p->n_stores; i++) {
            metapb__store__init(&st[i]);
            st[i].id = p->stores[i].id;
            st[i].address = p->stores[i].addr;
            st[i].state = (Metapb__StoreState)p->stores[i].state;
            sp[i] = &st[i];
        }
        r.header = &h;
        r.stores = sp;
        r.n_stores = p->n_stores;
        reply(call, &r.base);
    } else if (strcmp(name, "IsBootstrapped") == 0) {
        p->calls[FPD_IS_BOOTSTRAPPED]++;
        Pdpb__IsBootstrappedResponse r = PDPB__IS_BOOTSTRAPPED_RESPONSE__INIT;
        r.header = &h;
        r.bootstrapped = p->bootstrapped;
        reply(call, &r.base);
    } else if (strcmp(name, "Bootstrap") == 0) {
        p->calls[FPD_BOOTSTRAP]++;
        Pdpb__BootstrapRequest *q;
        UNPACK(Pdpb__BootstrapRequest, pdpb__bootstrap_request__descriptor, q);
        seen_header(p, q->header);
        if (p->bootstrapped) {
            header_error(p, call, PDPB__ERROR_TYPE__ALREADY_BOOTSTRAPPED,
                         "cluster is already bootstrapped", &pdpb__bootstrap_response__descriptor);
        } else if (q->store == NULL || q->region == NULL || q->region->n_peers == 0) {
            pthread_mutex_unlock(&p->mu);
            rpc_msg_free(&q->base);
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, "store and region required");
            return;
        } else {
            p->bootstrapped = true;
            fpd_store *s = &p->stores[p->n_stores++];
            s->id = q->store->id;
            snprintf(s->addr, sizeof(s->addr), "%s", q->store->address ? q->store->address : "");
            fpd_region *g = &p->regions[p->n_regions++];
            memset(g, 0, sizeof(*g));
            g->id = q->region->id;
            g->conf_ver = 1;
            g->version = 1;
            g->n_peers = 1;
            g->peers[0].id = q->region->peers[0]->id;
            g->peers[0].store_id = q->region->peers[0]->store_id;
            Pdpb__BootstrapResponse r = PDPB__BOOTSTRAP_RESPONSE__INIT;
            r.header = &h;
            reply(call, &r.base);
        }
        rpc_msg_free(&q->base);
    } else if (strcmp(name, "AllocID") == 0) {
        p->calls[FPD_ALLOC_ID]++;
        Pdpb__AllocIDRequest *q;
        UNPACK(Pdpb__AllocIDRequest, pdpb__alloc_idrequest__descriptor, q);
        seen_header(p, q->header);
        rpc_msg_free(&q->base);
        Pdpb__AllocIDResponse r = PDPB__ALLOC_IDRESPONSE__INIT;
        r.header = &h;
        r.id = ++p->next_id;
        reply(call, &r.base);
    } else if (strcmp(name, "PutStore") == 0) {
        p->calls[FPD_PUT_STORE]++;
        Pdpb__PutStoreRequest *q;
        UNPACK(Pdpb__PutStoreRequest, pdpb__put_store_request__descriptor, q);
        seen_header(p, q->header);
        if (q->store != NULL) {
            fpd_store *s = NULL;
            for (size_t i = 0; i < p->n_stores; i++)
                if (p->stores[i].id == q->store->id)
                    s = &p->stores[i];
            if (s == NULL && p->n_stores < FPD_MAX_STORES)
                s = &p->stores[p->n_stores++];
            if (s != NULL) {
                s->id = q->store->id;
                snprintf(s->addr, sizeof(s->addr), "%s",
                         q->store->address ? q->store->address : "");
            }
        }
        Pdpb__PutStoreResponse r = PDPB__PUT_STORE_RESPONSE__INIT;
        r.header = &h;
        reply(call, &r.base);
        rpc_msg_free(&q->base);
    } else if (strcmp(name, "StoreHeartbeat") == 0) {
        p->calls[FPD_STORE_HEARTBEAT]++;
        Pdpb__StoreHeartbeatRequest *q;
        UNPACK(Pdpb__StoreHeartbeatRequest, pdpb__store_heartbeat_request__descriptor, q);
        seen_header(p, q->header);
        Pdpb__StoreHeartbeatResponse r = PDPB__STORE_HEARTBEAT_RESPONSE__INIT;
        r.header = &h;
        reply(call, &r.base);
        rpc_msg_free(&q->base);
    } else if (strcmp(name, "AskBatchSplit") == 0) {
        p->calls[FPD_ASK_BATCH_SPLIT]++;
        Pdpb__AskBatchSplitRequest *q;
        UNPACK(Pdpb__AskBatchSplitRequest, pdpb__ask_batch_split_request__descriptor, q);
        seen_header(p, q->header);
        size_t n = q->split_count < 8 ? q->split_count : 8;
        size_t np = q->region != NULL ? q->region->n_peers : 0;
        if (np > FPD_MAX_PEERS)
            np = FPD_MAX_PEERS;
        Pdpb__SplitID ids[8];
        Pdpb__SplitID *ip[8];
        uint64_t peers[8][FPD_MAX_PEERS];
        for (size_t i = 0; i < n; i++) {
            pdpb__split_id__init(&ids[i]);
            ids[i].new_region_id = ++p->next_id;
            for (size_t j = 0; j < np; j++)
                peers[i][j] = ++p->next_id;
            ids[i].new_peer_ids = peers[i];
            ids[i].n_new_peer_ids = np;
            ip[i] = &ids[i];
        }
        Pdpb__AskBatchSplitResponse r = PDPB__ASK_BATCH_SPLIT_RESPONSE__INIT;
        r.header = &h;
        r.ids = ip;
        r.n_ids = n;
        reply(call, &r.base);
        rpc_msg_free(&q->base);
    } else if (strcmp(name, "ReportBatchSplit") == 0) {
        p->calls[FPD_REPORT_BATCH_SPLIT]++;
        Pdpb__ReportBatchSplitResponse r = PDPB__REPORT_BATCH_SPLIT_RESPONSE__INIT;
        r.header = &h;
        reply(call, &r.base);
    } else if (strcmp(name, "GetGCSafePoint") == 0) {
        p->calls[FPD_GET_GC_SAFE_POINT]++;
        Pdpb__GetGCSafePointResponse r = PDPB__GET_GCSAFE_POINT_RESPONSE__INIT;
        r.header = &h;
        r.safe_point = p->gc_safe_point;
        reply(call, &r.base);
    } else if (strcmp(name, "UpdateGCSafePoint") == 0) {
        p->calls[FPD_UPDATE_GC_SAFE_POINT]++;
        Pdpb__UpdateGCSafePointRequest *q;
        UNPACK(Pdpb__UpdateGCSafePointRequest, pdpb__update_gcsafe_point_request__descriptor, q);
        if (q->safe_point > p->gc_safe_point)
            p->gc_safe_point = q->safe_point;
        Pdpb__UpdateGCSafePointResponse r = PDPB__UPDATE_GCSAFE_POINT_RESPONSE__INIT;
        r.header = &h;
        r.new_safe_point = p->gc_safe_point;
        reply(call, &r.base);
        rpc_msg_free(&q->base);
    } else {
        pthread_mutex_unlock(&p->mu);
        rpc_call_finish(call, RPC_UNIMPLEMENTED, name);
        return;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* ---- etcd ------------------------------------------------------------------------------- */

static void on_etcd(rpc_call *call, tkv_slice msg, void *ud)
{
    struct fpd_member_ud *mu = ud;
    fake_pd *p = mu->pd;
    const char *name = strrchr(rpc_call_method(call), '/') + 1;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    pthread_mutex_lock(&p->mu);
    h.cluster_id = p->cluster_id;
    if (strcmp(name, "Range") == 0) {
        p->calls[FPD_ETCD_RANGE]++;
        Etcdserverpb__RangeRequest *q;
        UNPACK(Etcdserverpb__RangeRequest, etcdserverpb__range_request__descriptor, q);
        Etcdserverpb__RangeResponse r = ETCDSERVERPB__RANGE_RESPONSE__INIT;
        Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
        Mvccpb__KeyValue *kvp = &kv;
        r.header = &h;
        for (size_t i = 0; i < p->n_etcd; i++) {
            if (tkv_slice_eq(tkv_slice_str(p->etcd[i].key),
                             tkv_slice_of(q->key.data, q->key.len))) {
                kv.key.data = (uint8_t *)p->etcd[i].key;
                kv.key.len = strlen(p->etcd[i].key);
                kv.value.data = (uint8_t *)p->etcd[i].value;
                kv.value.len = strlen(p->etcd[i].value);
                r.kvs = &kvp;
                r.n_kvs = 1;
                r.count = 1;
            }
        }
        reply(call, &r.base);
        rpc_msg_free(&q->base);
    } else {
        p->calls[FPD_ETCD_PUT]++;
        Etcdserverpb__PutRequest *q;
        UNPACK(Etcdserverpb__PutRequest, etcdserverpb__put_request__descriptor, q);
        size_t i = 0;
        while (i < p->n_etcd &&
               !tkv_slice_eq(tkv_slice_str(p->etcd[i].key), tkv_slice_of(q->key.data, q->key.len)))
            i++;
        if (i == p->n_etcd && p->n_etcd < FPD_MAX_ETCD)
            p->n_etcd++;
        if (i < FPD_MAX_ETCD && q->key.len < 64 && q->value.len < 64) {
            if (q->key.len > 0)
                memcpy(p->etcd[i].key, q->key.data, q->key.len);
            p->etcd[i].key[q->key.len] = '\0';
            if (q->value.len > 0)
                memcpy(p->etcd[i].value, q->value.data, q->value.len);
            p->etcd[i].value[q->value.len] = '\0';
        }
        Etcdserverpb__PutResponse r = ETCDSERVERPB__PUT_RESPONSE__INIT;
        r.header = &h;
        reply(call, &r.base);
        rpc_msg_free(&q->base);
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- streams (Tso, RegionHeartbeat) ----------------------------------------------------- */

/* Removes @call from the open streams; returns true when it was there. Under mu. */
static bool stream_remove(fake_pd *p, rpc_call *call)
{
    for (int i = 0; i < FPD_MAX_STREAMS; i++) {
        if (p->streams[i].call == call) {
            p->streams[i].call = NULL;
            return true;
        }
    }
    return false;
}

static bool stream_open(fake_pd *p, rpc_call *call)
{
    for (int i = 0; i < FPD_MAX_STREAMS; i++) {
        if (p->streams[i].call == call)
            return true;
    }
    return false;
}

static void on_stream_open(rpc_call *call, void *ud)
{
    struct fpd_member_ud *mu = ud;
    fake_pd *p = mu->pd;
    pthread_mutex_lock(&p->mu);
    bool ok = mu->idx == p->leader;
    int slot = -1;
    for (int i = 0; ok && i < FPD_MAX_STREAMS; i++) {
        if (p->streams[i].call == NULL) {
            slot = i;
            break;
        }
    }
    if (slot >= 0) {
        p->streams[slot].call = call;
        p->streams[slot].member = mu->idx;
    } else if (ok) {
        ok = false;
    } else {
        p->not_leader_answers++;
    }
    pthread_mutex_unlock(&p->mu);
    if (!ok)
        rpc_call_finish(call, RPC_UNAVAILABLE, "not leader");
}

/* Answers one Tso request of @count. Under mu. */
static void tso_answer(fake_pd *p, rpc_call *call, uint32_t count)
{
    int64_t now = (int64_t)tkv_clock_real_ms();
    if (now > p->tso_physical) {
        p->tso_physical = now;
        p->tso_logical = 0;
    }
    p->tso_logical += count;
    if (p->tso_logical >= (1 << 18)) {
        p->tso_physical++;
        p->tso_logical = count;
    }
    Pdpb__TsoResponse r = PDPB__TSO_RESPONSE__INIT;
    Pdpb__ResponseHeader h;
    set_header(p, &h);
    Pdpb__Timestamp ts = PDPB__TIMESTAMP__INIT;
    ts.physical = p->tso_physical;
    ts.logical = p->tso_logical;
    r.header = &h;
    r.count = count;
    r.timestamp = &ts;
    TKV_IGNORE(rpc_call_send_msg(call, &r.base));
}

static void on_stream_request(rpc_call *call, tkv_slice msg, void *ud)
{
    struct fpd_member_ud *mu = ud;
    fake_pd *p = mu->pd;
    bool tso = strstr(rpc_call_method(call), "/Tso") != NULL;
    pthread_mutex_lock(&p->mu);
    if (!stream_open(p, call)) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    if (tso) {
        ProtobufCMessage *m = NULL;
        if (rpc_msg_unpack(&pdpb__tso_request__descriptor, msg, &m) == 0) {
            Pdpb__TsoRequest *q = (Pdpb__TsoRequest *)m;
            seen_header(p, q->header);
            p->calls[FPD_TSO]++;
            if (p->n_tso_reqs < FPD_MAX_TSO_LOG)
                p->tso_counts[p->n_tso_reqs++] = q->count;
            if (p->tso_hold && p->n_tso_held < FPD_MAX_TSO_LOG) {
                p->tso_held[p->n_tso_held] = call;
                p->tso_held_count[p->n_tso_held++] = q->count;
            } else {
                tso_answer(p, call, q->count);
            }
            rpc_msg_free(m);
        }
    } else {
        ProtobufCMessage *m = NULL;
        if (rpc_msg_unpack(&pdpb__region_heartbeat_request__descriptor, msg, &m) == 0) {
            Pdpb__RegionHeartbeatRequest *q = (Pdpb__RegionHeartbeatRequest *)m;
            seen_header(p, q->header);
            p->calls[FPD_REGION_HEARTBEAT]++;
            Pdpb__RegionHeartbeatResponse r = PDPB__REGION_HEARTBEAT_RESPONSE__INIT;
            Pdpb__ResponseHeader h;
            set_header(p, &h);
            Pdpb__TransferLeader tl = PDPB__TRANSFER_LEADER__INIT;
            r.header = &h;
            if (q->region != NULL) {
                p->last_heartbeat_region = q->region->id;
                r.region_id = q->region->id;
                r.region_epoch = q->region->region_epoch;
            }
            tl.peer = q->leader;
            r.transfer_leader = &tl;
            TKV_IGNORE(rpc_call_send_msg(call, &r.base));
            rpc_msg_free(m);
        }
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void on_stream_half_close(rpc_call *call, void *ud)
{
    fake_pd *p = ((struct fpd_member_ud *)ud)->pd;
    pthread_mutex_lock(&p->mu);
    bool mine = stream_remove(p, call);
    if (mine)
        rpc_call_finish(call, RPC_OK, NULL);
    pthread_mutex_unlock(&p->mu);
}

static void on_stream_cancel(rpc_call *call, void *ud)
{
    fake_pd *p = ((struct fpd_member_ud *)ud)->pd;
    pthread_mutex_lock(&p->mu);
    bool mine = stream_remove(p, call);
    if (mine)
        rpc_call_finish(call, RPC_CANCELLED, NULL);
    pthread_mutex_unlock(&p->mu);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static const rpc_tls *server_tls;

void fpd_set_server_tls(const rpc_tls *tls)
{
    server_tls = tls;
}

const rpc_tls *fpd_server_tls(void)
{
    return server_tls;
}

static void start_member(fake_pd *p, int i)
{
    rpc_server_opts o;
    rpc_server_opts_init(&o);
    o.addr = "127.0.0.1:0";
    o.cq_threads = 1;
    o.tls = server_tls;
    assert_int_equal(rpc_server_new(&o, &p->srv[i]), 0);
    p->ud[i].pd = p;
    p->ud[i].idx = i;
    char path[96];
    for (size_t m = 0; m < TKV_ARRAY_LEN(unary_methods); m++) {
        rpc_handler h = {.type = RPC_UNARY, .on_request = on_unary, .ud = &p->ud[i]};
        snprintf(path, sizeof(path), "/pdpb.PD/%s", unary_methods[m]);
        assert_int_equal(rpc_server_add_method(p->srv[i], path, &h), 0);
    }
    rpc_handler e = {.type = RPC_UNARY, .on_request = on_etcd, .ud = &p->ud[i]};
    assert_int_equal(rpc_server_add_method(p->srv[i], "/etcdserverpb.KV/Range", &e), 0);
    assert_int_equal(rpc_server_add_method(p->srv[i], "/etcdserverpb.KV/Put", &e), 0);
    rpc_handler s = {.type = RPC_BIDI_STREAMING,
                     .on_open = on_stream_open,
                     .on_request = on_stream_request,
                     .on_half_close = on_stream_half_close,
                     .on_cancel = on_stream_cancel,
                     .ud = &p->ud[i]};
    assert_int_equal(rpc_server_add_method(p->srv[i], "/pdpb.PD/Tso", &s), 0);
    assert_int_equal(rpc_server_add_method(p->srv[i], "/pdpb.PD/RegionHeartbeat", &s), 0);
    assert_int_equal(rpc_server_start(p->srv[i]), 0);
    snprintf(p->addr[i], sizeof(p->addr[i]), "127.0.0.1:%d", rpc_server_port(p->srv[i]));
}

void fake_pd_start(fake_pd *p, int n_members, uint64_t cluster_id)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    fpd_cond_init(&p->cv);
    p->cluster_id = cluster_id;
    p->n_members = n_members;
    p->next_id = 1000;
    for (int i = 0; i < n_members; i++)
        start_member(p, i);
}

/* Ends the open streams of member @idx with @code. Under mu. */
static void end_streams_of(fake_pd *p, int idx, rpc_code code)
{
    for (int i = 0; i < FPD_MAX_STREAMS; i++) {
        if (p->streams[i].call != NULL && p->streams[i].member == idx) {
            rpc_call_finish(p->streams[i].call, code, "not leader");
            p->streams[i].call = NULL;
        }
    }
}

void fake_pd_set_leader(fake_pd *p, int idx)
{
    pthread_mutex_lock(&p->mu);
    int old = p->leader;
    p->leader = idx;
    if (old != idx && !p->quiet_leader_change)
        end_streams_of(p, old, RPC_UNAVAILABLE);
    pthread_mutex_unlock(&p->mu);
}

void fake_pd_kill_member(fake_pd *p, int idx)
{
    pthread_mutex_lock(&p->mu);
    rpc_server *s = p->srv[idx];
    p->srv[idx] = NULL;
    end_streams_of(p, idx, RPC_UNAVAILABLE);
    pthread_mutex_unlock(&p->mu);
    rpc_server_shutdown(s, 0);
    rpc_server_free(s);
}

void fake_pd_stop(fake_pd *p)
{
    pthread_mutex_lock(&p->mu);
    p->tso_hold = false;
    p->n_tso_held = 0;
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_members; i++) {
        if (p->srv[i] != NULL) {
            rpc_server_shutdown(p->srv[i], 0);
            rpc_server_free(p->srv[i]);
            p->srv[i] = NULL;
        }
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

int fake_pd_calls(fake_pd *p, int method)
{
    pthread_mutex_lock(&p->mu);
    int n = p->calls[method];
    pthread_mutex_unlock(&p->mu);
    return n;
}

bool fake_pd_wait_calls(fake_pd *p, int method, int want)
{
    uint64_t deadline = tkv_clock_mono_ms() + FPD_WAIT_MS;
    pthread_mutex_lock(&p->mu);
    while (p->calls[method] < want) {
        if (tkv_clock_mono_ms() >= deadline)
            break;
        fpd_cond_wait_ms(&p->cv, &p->mu, 20);
    }
    bool ok = p->calls[method] >= want;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

void fake_pd_add_store(fake_pd *p, uint64_t id, const char *addr)
{
    pthread_mutex_lock(&p->mu);
    assert_true(p->n_stores < FPD_MAX_STORES);
    fpd_store *s = &p->stores[p->n_stores++];
    s->id = id;
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    s->state = 0;
    pthread_mutex_unlock(&p->mu);
}

void fake_pd_add_region(fake_pd *p, uint64_t id, tkv_slice start, tkv_slice end,
                        const uint64_t *store_ids, size_t n_stores)
{
    assert_true(start.len <= FPD_MAX_KEY && end.len <= FPD_MAX_KEY && n_stores <= FPD_MAX_PEERS);
    pthread_mutex_lock(&p->mu);
    assert_true(p->n_regions < FPD_MAX_REGIONS);
    fpd_region r;
    memset(&r, 0, sizeof(r));
    r.id = id;
    if (start.len > 0)
        memcpy(r.start, start.data, start.len);
    r.start_len = start.len;
    if (end.len > 0)
        memcpy(r.end, end.data, end.len);
    r.end_len = end.len;
    r.conf_ver = 1;
    r.version = 1;
    for (size_t i = 0; i < n_stores; i++) {
        r.peers[i].id = id * 10 + i;
        r.peers[i].store_id = store_ids[i];
    }
    r.n_peers = n_stores;
    size_t at = 0;
    while (at < p->n_regions &&
           key_cmp(p->regions[at].start, p->regions[at].start_len, r.start, r.start_len) < 0)
        at++;
    memmove(&p->regions[at + 1], &p->regions[at], (p->n_regions - at) * sizeof(r));
    p->regions[at] = r;
    p->n_regions++;
    pthread_mutex_unlock(&p->mu);
}

void fake_pd_split(fake_pd *p, uint64_t id, tkv_slice key, uint64_t new_id)
{
    pthread_mutex_lock(&p->mu);
    fake_pd_split_locked(p, id, key, new_id);
    pthread_mutex_unlock(&p->mu);
}

void fake_pd_split_locked(fake_pd *p, uint64_t id, tkv_slice key, uint64_t new_id)
{
    int i = fake_pd_region_index(p, id);
    assert_true(i >= 0 && key.len <= FPD_MAX_KEY && p->n_regions < FPD_MAX_REGIONS);
    fpd_region *l = &p->regions[i];
    fpd_region r = *l;
    r.id = new_id;
    if (key.len > 0)
        memcpy(r.start, key.data, key.len);
    r.start_len = key.len;
    for (size_t j = 0; j < r.n_peers; j++)
        r.peers[j].id = new_id * 10 + j;
    if (key.len > 0)
        memcpy(l->end, key.data, key.len);
    l->end_len = key.len;
    l->version++;
    r.version = l->version;
    memmove(&p->regions[i + 2], &p->regions[i + 1],
            (p->n_regions - (size_t)i - 1) * sizeof(fpd_region));
    p->regions[i + 1] = r;
    p->n_regions++;
}

void fake_pd_set_region_leader(fake_pd *p, uint64_t id, uint64_t store_id)
{
    pthread_mutex_lock(&p->mu);
    int i = fake_pd_region_index(p, id);
    assert_true(i >= 0);
    for (size_t j = 0; j < p->regions[i].n_peers; j++)
        if (p->regions[i].peers[j].store_id == store_id)
            p->regions[i].leader = j;
    pthread_mutex_unlock(&p->mu);
}

void fake_pd_tso_release(fake_pd *p)
{
    pthread_mutex_lock(&p->mu);
    p->tso_hold = false;
    for (size_t i = 0; i < p->n_tso_held; i++) {
        if (stream_open(p, p->tso_held[i]))
            tso_answer(p, p->tso_held[i], p->tso_held_count[i]);
    }
    p->n_tso_held = 0;
    pthread_mutex_unlock(&p->mu);
}
