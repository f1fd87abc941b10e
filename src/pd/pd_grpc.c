/*
 * pd_grpc.c: the unary methods of pdpb.PD, with PD's error conventions
 * (server/grpc_service.go):
 *   - a request header naming another cluster id ends the call with gRPC status
 *     FAILED_PRECONDITION "mismatch cluster id, need X but got Y" (GetMembers is exempt);
 *   - before bootstrap, cluster calls answer a header error NOT_BOOTSTRAPPED;
 *   - an unknown store answers UNKNOWN "invalid store ID %d, not found" (client-go reads it
 *     as a tombstone); an unknown region answers a header with no region (clients retry),
 *     GetOperator answers REGION_NOT_FOUND "Not Found";
 *   - every response header carries the cluster id.
 * Handlers run on completion-queue threads; they take the cluster mutex briefly. Rare
 * metadata changes (bootstrap, PutStore, cluster meta, GC safe point, ID batches) fsync on
 * the calling thread. SplitRegions is answered later, by the coordinator, when the split is
 * done or times out.
 */
#include <inttypes.h>

#include "base/log.h"
#include "pd/pd_int.h"
#include "rpc/rpc.h"
#include "security/wire.h"

struct pd_method_binding {
    pd_server *s;
    const struct pd_method *m;
};

typedef void (*pd_unary_fn)(pd_server *s, const ProtobufCMessage *req, rpc_call *call);

typedef struct pd_method {
    const char *path;
    const ProtobufCMessageDescriptor *req;
    pd_unary_fn fn;
    void (*on_cancel)(rpc_call *call, void *ud);
} pd_method;

/* ---- helpers ----------------------------------------------------------------------------- */

Pdpb__ResponseHeader *pd__hdr(const pd_server *s, pd_hdr *b, const pd_result *res)
{
    pdpb__response_header__init(&b->h);
    b->h.cluster_id = s->cluster_id;
    if (res != NULL && res->type != PDPB__ERROR_TYPE__OK)
        return pd__hdr_err(s, b, res->type, res->msg);
    return &b->h;
}

Pdpb__ResponseHeader *pd__hdr_err(const pd_server *s, pd_hdr *b, Pdpb__ErrorType type,
                                  const char *msg)
{
    pdpb__response_header__init(&b->h);
    b->h.cluster_id = s->cluster_id;
    pdpb__error__init(&b->e);
    b->e.type = type;
    snprintf(b->msg, sizeof(b->msg), "%s", msg);
    b->e.message = b->msg;
    b->h.error = &b->e;
    return &b->h;
}

bool pd__check_header(const pd_server *s, const Pdpb__RequestHeader *h, rpc_call *call)
{
    uint64_t got = h != NULL ? h->cluster_id : 0;
    if (got == s->cluster_id)
        return true;
    char msg[128];
    snprintf(msg, sizeof(msg), "mismatch cluster id, need %" PRIu64 " but got %" PRIu64,
             s->cluster_id, got);
    rpc_call_finish(call, RPC_FAILED_PRECONDITION, msg);
    return false;
}

void pd__member(const pd_server *s, Pdpb__Member *m, char **urls)
{
    pdpb__member__init(m);
    m->name = (char *)s->cfg.name;
    m->member_id = s->member_id;
    urls[0] = (char *)s->advertise_url;
    m->n_client_urls = 1;
    m->client_urls = urls;
    m->binary_version = "6.5.0";
    m->git_hash = "tikv-c";
}

/* Replies with a response of type @d that carries only a header with error @type and @msg.
 * Every PD response has its header as field 1, so one generic builder serves them all. */
static void reply_header_only(pd_server *s, rpc_call *call, const ProtobufCMessageDescriptor *d,
                              Pdpb__ErrorType type, const char *msg)
{
    pd_hdr b;
    ProtobufCMessage *resp = tkv_calloc(1, d->sizeof_message);
    if (resp == NULL) {
        rpc_call_finish(call, RPC_INTERNAL, msg);
        return;
    }
    protobuf_c_message_init(d, resp);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, 1);
    TKV_ASSERT(f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE);
    *(Pdpb__ResponseHeader **)((char *)resp + f->offset) = pd__hdr_err(s, &b, type, msg);
    TKV_IGNORE(rpc_call_reply_msg(call, resp));
    tkv_free(resp);
}

/* Replies with the internal error @rc in the header (a storage or memory failure). */
static void reply_internal(pd_server *s, rpc_call *call, int rc,
                           const ProtobufCMessageDescriptor *d)
{
    char msg[TKV_ERRMSG_LEN];
    snprintf(msg, sizeof(msg), "pd internal error: %s", tkv_strerror(rc));
    reply_header_only(s, call, d, PDPB__ERROR_TYPE__UNKNOWN, msg);
}

#define REPLY(call, resp) TKV_IGNORE(rpc_call_reply_msg((call), &(resp).base))

/* ---- members, bootstrap, ids --------------------------------------------------------------- */

static void get_members(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    (void)m;
    pd_hdr b;
    Pdpb__Member me;
    char *urls[1];
    pd__member(s, &me, urls);
    Pdpb__Member *members[] = {&me};
    Pdpb__GetMembersResponse resp = PDPB__GET_MEMBERS_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, NULL);
    resp.n_members = 1;
    resp.members = members;
    resp.leader = &me;
    resp.etcd_leader = &me;
    REPLY(call, resp);
}

static void bootstrap(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__BootstrapRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_result res;
    int rc = pd__cluster_bootstrap(s->cluster, req->store, req->region, &res);
    if (rc != 0) {
        reply_internal(s, call, rc, &pdpb__bootstrap_response__descriptor);
        return;
    }
    pd_hdr b;
    Pdpb__BootstrapResponse resp = PDPB__BOOTSTRAP_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, &res);
    REPLY(call, resp);
}

static void is_bootstrapped(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__IsBootstrappedRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd__cluster_lock(s->cluster);
    bool yes = s->cluster->bootstrapped;
    pd__cluster_unlock(s->cluster);
    pd_hdr b;
    Pdpb__IsBootstrappedResponse resp = PDPB__IS_BOOTSTRAPPED_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, NULL);
    resp.bootstrapped = yes;
    REPLY(call, resp);
}

static void alloc_id(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__AllocIDRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    uint64_t id;
    int rc = pd__id_alloc(&s->ids, &id);
    if (rc != 0) {
        reply_internal(s, call, rc, &pdpb__alloc_idresponse__descriptor);
        return;
    }
    pd_hdr b;
    Pdpb__AllocIDResponse resp = PDPB__ALLOC_IDRESPONSE__INIT;
    resp.header = pd__hdr(s, &b, NULL);
    resp.id = id;
    REPLY(call, resp);
}

/* ---- stores -------------------------------------------------------------------------------- */

/* Answers NOT_BOOTSTRAPPED with a header-only response of type @d and returns true, or
 * returns false (mutex held by the caller). */
static bool reply_if_not_bootstrapped(pd_server *s, rpc_call *call,
                                      const ProtobufCMessageDescriptor *d)
{
    if (s->cluster->bootstrapped)
        return false;
    reply_header_only(s, call, d, PDPB__ERROR_TYPE__NOT_BOOTSTRAPPED,
                      "cluster is not bootstrapped");
    return true;
}

static void get_store(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__GetStoreRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_cluster *c = s->cluster;
    pd__cluster_lock(c);
    if (!reply_if_not_bootstrapped(s, call, &pdpb__get_store_response__descriptor)) {
        pd_hdr b;
        Pdpb__GetStoreResponse resp = PDPB__GET_STORE_RESPONSE__INIT;
        pd_store *st = pd__cluster_store_locked(c, req->store_id);
        if (st == NULL) {
            char msg[96];
            snprintf(msg, sizeof(msg), "invalid store ID %" PRIu64 ", not found", req->store_id);
            resp.header = pd__hdr_err(s, &b, PDPB__ERROR_TYPE__UNKNOWN, msg);
        } else {
            resp.header = pd__hdr(s, &b, NULL);
            resp.store = st->meta;
            resp.stats = st->stats;
        }
        REPLY(call, resp);
    }
    pd__cluster_unlock(c);
}

/* Audits a store refused because its certificate name is not the one it registered with. */
static void audit_identity(pd_server *s, rpc_call *call, const pd_result *res)
{
    if (!res->identity_refused)
        return;
    char peer[128];
    rpc_call_peer(call, peer, sizeof(peer));
    sec_wire_peer_rejected(s->wire, peer, rpc_call_peer_cn(call), rpc_call_method(call), res->msg);
}

static void put_store(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__PutStoreRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_result res;
    int rc = pd__cluster_put_store_as(s->cluster, req->store, rpc_call_peer_cn(call), &res);
    if (rc != 0) {
        reply_internal(s, call, rc, &pdpb__put_store_response__descriptor);
        return;
    }
    audit_identity(s, call, &res);
    pd_hdr b;
    Pdpb__PutStoreResponse resp = PDPB__PUT_STORE_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, &res);
    REPLY(call, resp);
}

static void get_all_stores(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__GetAllStoresRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_cluster *c = s->cluster;
    pd__cluster_lock(c);
    if (!reply_if_not_bootstrapped(s, call, &pdpb__get_all_stores_response__descriptor)) {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        Metapb__Store **stores = tkv_calloc(c->nstores ? c->nstores : 1, sizeof(*stores));
        if (stores == NULL) {
            rpc_call_finish(call, RPC_INTERNAL, "out of memory");
        } else {
            size_t n = 0;
            for (size_t i = 0; i < c->nstores; i++) {
                Metapb__Store *st = c->stores[i]->meta;
                if (req->exclude_tombstone_stores &&
                    (st->state == METAPB__STORE_STATE__Tombstone ||
                     st->node_state == METAPB__NODE_STATE__Removed))
                    continue;
                stores[n++] = st;
            }
            pd_hdr b;
            Pdpb__GetAllStoresResponse resp = PDPB__GET_ALL_STORES_RESPONSE__INIT;
            resp.header = pd__hdr(s, &b, NULL);
            resp.n_stores = n;
            resp.stores = stores;
            REPLY(call, resp);
            tkv_free(stores);
        }
    }
    pd__cluster_unlock(c);
}

static void store_heartbeat(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__StoreHeartbeatRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    if (req->stats == NULL) {
        rpc_call_finish(call, RPC_UNKNOWN, "invalid store heartbeat command: no stats");
        return;
    }
    pd_result res;
    int rc = pd__cluster_store_heartbeat_as(s->cluster, req->stats, rpc_call_peer_cn(call), &res);
    if (rc != 0) {
        reply_internal(s, call, rc, &pdpb__store_heartbeat_response__descriptor);
        return;
    }
    audit_identity(s, call, &res);
    pd_hdr b;
    Pdpb__StoreHeartbeatResponse resp = PDPB__STORE_HEARTBEAT_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, &res);
    REPLY(call, resp);
}

/* ---- regions ------------------------------------------------------------------------------- */

/* Answers a GetRegionResponse for @r (NULL: header only). Mutex held. */
static void reply_region(pd_server *s, rpc_call *call, const pd_region *r)
{
    pd_hdr b;
    Pdpb__GetRegionResponse resp = PDPB__GET_REGION_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, NULL);
    if (r != NULL) {
        resp.region = r->pb->region;
        resp.leader = r->pb->leader;
        resp.n_down_peers = r->pb->n_down_peers;
        resp.down_peers = r->pb->down_peers;
        resp.n_pending_peers = r->pb->n_pending_peers;
        resp.pending_peers = r->pb->pending_peers;
    }
    REPLY(call, resp);
}

static void get_region(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__GetRegionRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_cluster *c = s->cluster;
    pd__cluster_lock(c);
    if (!reply_if_not_bootstrapped(s, call, &pdpb__get_region_response__descriptor)) {
        tkv_slice key = pd__bytes(req->region_key);
        bool prev = strcmp(rpc_call_method(call), "/pdpb.PD/GetPrevRegion") == 0;
        reply_region(s, call,
                     prev ? pd__rt_prev_adjacent(&c->regions, key) : pd__rt_find(&c->regions, key));
    }
    pd__cluster_unlock(c);
}

static void get_region_by_id(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__GetRegionByIDRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_cluster *c = s->cluster;
    pd__cluster_lock(c);
    if (!reply_if_not_bootstrapped(s, call, &pdpb__get_region_response__descriptor))
        reply_region(s, call, pd__rt_get(&c->regions, req->region_id));
    pd__cluster_unlock(c);
}

static void scan_regions(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__ScanRegionsRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_cluster *c = s->cluster;
    pd__cluster_lock(c);
    if (reply_if_not_bootstrapped(s, call, &pdpb__scan_regions_response__descriptor)) {
        pd__cluster_unlock(c);
        return;
    }
    tkv_slice end = pd__bytes(req->end_key);
    size_t limit = req->limit > 0 ? (size_t)req->limit : SIZE_MAX;
    size_t n = 0;
    for (pd_region *r = pd__rt_seek(&c->regions, pd__bytes(req->start_key));
         r != NULL && n < limit && (end.len == 0 || tkv_slice_cmp(pd__region_start(r), end) < 0);
         r = pd__rt_next(&c->regions, r))
        n++;
    Pdpb__Region *regions = tkv_calloc(n ? n : 1, sizeof(*regions));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Pdpb__Region **pregions = tkv_calloc(n ? n : 1, sizeof(*pregions));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Metapb__Region **metas = tkv_calloc(n ? n : 1, sizeof(*metas));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Metapb__Peer **leaders = tkv_calloc(n ? n : 1, sizeof(*leaders));
    if (regions == NULL || pregions == NULL || metas == NULL || leaders == NULL) {
        rpc_call_finish(call, RPC_INTERNAL, "out of memory");
    } else {
        Metapb__Peer none = METAPB__PEER__INIT;
        size_t i = 0;
        for (pd_region *r = pd__rt_seek(&c->regions, pd__bytes(req->start_key)); i < n;
             r = pd__rt_next(&c->regions, r), i++) {
            regions[i] = *r->pb;
            if (regions[i].leader == NULL)
                regions[i].leader = &none;
            pregions[i] = &regions[i];
            metas[i] = r->pb->region;
            leaders[i] = regions[i].leader;
        }
        pd_hdr b;
        Pdpb__ScanRegionsResponse resp = PDPB__SCAN_REGIONS_RESPONSE__INIT;
        resp.header = pd__hdr(s, &b, NULL);
        resp.n_regions = n;
        resp.regions = pregions;
        resp.n_region_metas = n;
        resp.region_metas = metas;
        resp.n_leaders = n;
        resp.leaders = leaders;
        REPLY(call, resp);
    }
    tkv_free(regions);
    tkv_free(pregions);
    tkv_free(metas);
    tkv_free(leaders);
    pd__cluster_unlock(c);
}

static void ask_batch_split(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__AskBatchSplitRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_result res;
    Pdpb__AskBatchSplitResponse resp = PDPB__ASK_BATCH_SPLIT_RESPONSE__INIT;
    int rc = pd__cluster_ask_batch_split(s->cluster, req->region, req->split_count, &resp, &res);
    if (rc != 0) {
        reply_internal(s, call, rc, &pdpb__ask_batch_split_response__descriptor);
        return;
    }
    pd_hdr b;
    resp.header = pd__hdr(s, &b, &res);
    REPLY(call, resp);
    pd__ask_batch_split_free(&resp);
}

static void report_batch_split(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__ReportBatchSplitRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_result res;
    int rc = pd__cluster_report_batch_split(s->cluster, req->regions, req->n_regions, &res);
    if (rc != 0) {
        reply_internal(s, call, rc, &pdpb__report_batch_split_response__descriptor);
        return;
    }
    pd_hdr b;
    Pdpb__ReportBatchSplitResponse resp = PDPB__REPORT_BATCH_SPLIT_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, &res);
    REPLY(call, resp);
}

/* ---- cluster config, GC safe point -------------------------------------------------------------
 */

static void get_cluster_config(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__GetClusterConfigRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_cluster *c = s->cluster;
    pd__cluster_lock(c);
    if (!reply_if_not_bootstrapped(s, call, &pdpb__get_cluster_config_response__descriptor)) {
        pd_hdr b;
        Pdpb__GetClusterConfigResponse resp = PDPB__GET_CLUSTER_CONFIG_RESPONSE__INIT;
        resp.header = pd__hdr(s, &b, NULL);
        resp.cluster = c->meta;
        REPLY(call, resp);
    }
    pd__cluster_unlock(c);
}

static void put_cluster_config(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__PutClusterConfigRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_result res;
    int rc = pd__cluster_put_meta(s->cluster, req->cluster, &res);
    if (rc != 0) {
        reply_internal(s, call, rc, &pdpb__put_cluster_config_response__descriptor);
        return;
    }
    pd_hdr b;
    Pdpb__PutClusterConfigResponse resp = PDPB__PUT_CLUSTER_CONFIG_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, &res);
    REPLY(call, resp);
}

static void get_gc_safe_point(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__GetGCSafePointRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_cluster *c = s->cluster;
    pd__cluster_lock(c);
    if (!reply_if_not_bootstrapped(s, call, &pdpb__get_gcsafe_point_response__descriptor)) {
        pd_hdr b;
        Pdpb__GetGCSafePointResponse resp = PDPB__GET_GCSAFE_POINT_RESPONSE__INIT;
        resp.header = pd__hdr(s, &b, NULL);
        resp.safe_point = c->gc_safe_point;
        REPLY(call, resp);
    }
    pd__cluster_unlock(c);
}

static void update_gc_safe_point(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__UpdateGCSafePointRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd__cluster_lock(s->cluster);
    bool not_boot =
        reply_if_not_bootstrapped(s, call, &pdpb__update_gcsafe_point_response__descriptor);
    pd__cluster_unlock(s->cluster);
    if (not_boot)
        return;
    uint64_t sp;
    int rc = pd__cluster_update_gc_safe_point(s->cluster, req->safe_point, &sp);
    if (rc != 0) {
        reply_internal(s, call, rc, &pdpb__update_gcsafe_point_response__descriptor);
        return;
    }
    pd_hdr b;
    Pdpb__UpdateGCSafePointResponse resp = PDPB__UPDATE_GCSAFE_POINT_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, NULL);
    resp.new_safe_point = sp;
    REPLY(call, resp);
}

/* ---- operators, scatter, split ------------------------------------------------------------------
 */

static void get_operator(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__GetOperatorRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_cluster *c = s->cluster;
    pd__cluster_lock(c);
    if (!reply_if_not_bootstrapped(s, call, &pdpb__get_operator_response__descriptor)) {
        pd_hdr b;
        Pdpb__GetOperatorResponse resp = PDPB__GET_OPERATOR_RESPONSE__INIT;
        const pd_operator *op = pd__map_get(&c->ops, req->region_id);
        const pd_op_record *rec = pd__map_get(&c->records, req->region_id);
        char kind[64];
        if (op != NULL || rec != NULL) {
            resp.header = pd__hdr(s, &b, NULL);
            resp.region_id = req->region_id;
            const char *desc = op ? op->desc : rec->desc;
            pd__op_kind_name(op ? op->kind : rec->kind, kind, sizeof(kind));
            resp.desc.data = (uint8_t *)desc;
            resp.desc.len = strlen(desc);
            resp.kind.data = (uint8_t *)kind;
            resp.kind.len = strlen(kind);
            resp.status = op ? PDPB__OPERATOR_STATUS__RUNNING : rec->status;
        } else {
            resp.header = pd__hdr_err(s, &b, PDPB__ERROR_TYPE__REGION_NOT_FOUND, "Not Found");
        }
        REPLY(call, resp);
    }
    pd__cluster_unlock(c);
}

static void scatter_region(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__ScatterRegionRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd_cluster *c = s->cluster;
    pd__cluster_lock(c);
    if (reply_if_not_bootstrapped(s, call, &pdpb__scatter_region_response__descriptor)) {
        pd__cluster_unlock(c);
        return;
    }
    /* region_id is deprecated in favour of regions_id, but older clients still send it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    uint64_t single = req->region_id;
#pragma GCC diagnostic pop
    if (single == 0 && req->region != NULL)
        single = req->region->id;
    const uint64_t *ids = req->n_regions_id > 0 ? req->regions_id : &single;
    size_t n = req->n_regions_id > 0 ? req->n_regions_id : 1;
    size_t failures = 0;
    bool missing_single = false;
    for (size_t i = 0; i < n; i++) {
        pd_region *r = pd__rt_get(&c->regions, ids[i]);
        if (r == NULL) {
            failures++;
            missing_single = req->n_regions_id == 0;
            continue;
        }
        pd_operator *op = NULL;
        int rc = pd__scatter_locked(c, r, req->group, &op);
        if (rc == 0 && op != NULL) {
            rc = pd__opc_add_locked(c, op);
            if (rc != 0)
                pd__op_free(op);
        }
        if (rc != 0)
            failures++;
    }
    pd_hdr b;
    Pdpb__ScatterRegionResponse resp = PDPB__SCATTER_REGION_RESPONSE__INIT;
    if (missing_single) {
        char msg[64];
        snprintf(msg, sizeof(msg), "region %" PRIu64 " not found", single);
        resp.header = pd__hdr_err(s, &b, PDPB__ERROR_TYPE__REGION_NOT_FOUND, msg);
    } else {
        resp.header = pd__hdr(s, &b, NULL);
        resp.finished_percentage = 100 - (uint64_t)(failures * 100 / n);
    }
    REPLY(call, resp);
    pd__cluster_unlock(c);
}

static void split_done(void *ud, uint64_t pct, const uint64_t *ids, size_t n)
{
    rpc_call *call = ud;
    pd_server *s = rpc_call_data(call);
    pd_hdr b;
    Pdpb__SplitRegionsResponse resp = PDPB__SPLIT_REGIONS_RESPONSE__INIT;
    resp.header = pd__hdr(s, &b, NULL);
    resp.finished_percentage = pct;
    resp.n_regions_id = n;
    resp.regions_id = (uint64_t *)ids;
    REPLY(call, resp);
}

static void split_regions(pd_server *s, const ProtobufCMessage *m, rpc_call *call)
{
    const Pdpb__SplitRegionsRequest *req = (const void *)m;
    if (!pd__check_header(s, req->header, call))
        return;
    pd__cluster_lock(s->cluster);
    bool not_boot = reply_if_not_bootstrapped(s, call, &pdpb__split_regions_response__descriptor);
    pd__cluster_unlock(s->cluster);
    if (not_boot)
        return;
    tkv_slice *keys = tkv_calloc(req->n_split_keys ? req->n_split_keys : 1, sizeof(*keys));
    if (keys == NULL) {
        rpc_call_finish(call, RPC_INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < req->n_split_keys; i++)
        keys[i] = pd__bytes(req->split_keys[i]);
    /* PD waits up to a minute; answer before the client's own deadline. */
    int64_t left = rpc_call_remaining_ms(call);
    uint64_t timeout = 60000;
    if (left < 60500)
        timeout = left > 600 ? (uint64_t)(left - 500) : 100;
    rpc_call_set_data(call, s);
    pd_split_waiter *w;
    int rc = pd__cluster_split_regions(s->cluster, keys, req->n_split_keys, timeout, split_done,
                                       call, &w);
    tkv_free(keys);
    if (rc != 0)
        reply_internal(s, call, rc, &pdpb__split_regions_response__descriptor);
}

static void split_regions_cancel(rpc_call *call, void *ud)
{
    const pd_method_binding *bnd = ud;
    /* Under the cluster mutex the waiter is either still registered (drop it and end the
     * call here) or already answered by the coordinator (nothing to do). */
    if (pd__cluster_split_cancel(bnd->s->cluster, call))
        rpc_call_finish(call, RPC_CANCELLED, "cancelled");
}

/* ---- registration ------------------------------------------------------------------------------
 */

static const pd_method methods[] = {
    {"/pdpb.PD/GetMembers", &pdpb__get_members_request__descriptor, get_members, NULL},
    {"/pdpb.PD/Bootstrap", &pdpb__bootstrap_request__descriptor, bootstrap, NULL},
    {"/pdpb.PD/IsBootstrapped", &pdpb__is_bootstrapped_request__descriptor, is_bootstrapped, NULL},
    {"/pdpb.PD/AllocID", &pdpb__alloc_idrequest__descriptor, alloc_id, NULL},
    {"/pdpb.PD/GetStore", &pdpb__get_store_request__descriptor, get_store, NULL},
    {"/pdpb.PD/PutStore", &pdpb__put_store_request__descriptor, put_store, NULL},
    {"/pdpb.PD/GetAllStores", &pdpb__get_all_stores_request__descriptor, get_all_stores, NULL},
    {"/pdpb.PD/StoreHeartbeat", &pdpb__store_heartbeat_request__descriptor, store_heartbeat, NULL},
    {"/pdpb.PD/GetRegion", &pdpb__get_region_request__descriptor, get_region, NULL},
    {"/pdpb.PD/GetPrevRegion", &pdpb__get_region_request__descriptor, get_region, NULL},
    {"/pdpb.PD/GetRegionByID", &pdpb__get_region_by_idrequest__descriptor, get_region_by_id, NULL},
    {"/pdpb.PD/ScanRegions", &pdpb__scan_regions_request__descriptor, scan_regions, NULL},
    {"/pdpb.PD/AskBatchSplit", &pdpb__ask_batch_split_request__descriptor, ask_batch_split, NULL},
    {"/pdpb.PD/ReportBatchSplit", &pdpb__report_batch_split_request__descriptor, report_batch_split,
     NULL},
    {"/pdpb.PD/GetClusterConfig", &pdpb__get_cluster_config_request__descriptor, get_cluster_config,
     NULL},
    {"/pdpb.PD/PutClusterConfig", &pdpb__put_cluster_config_request__descriptor, put_cluster_config,
     NULL},
    {"/pdpb.PD/GetGCSafePoint", &pdpb__get_gcsafe_point_request__descriptor, get_gc_safe_point,
     NULL},
    {"/pdpb.PD/UpdateGCSafePoint", &pdpb__update_gcsafe_point_request__descriptor,
     update_gc_safe_point, NULL},
    {"/pdpb.PD/GetOperator", &pdpb__get_operator_request__descriptor, get_operator, NULL},
    {"/pdpb.PD/ScatterRegion", &pdpb__scatter_region_request__descriptor, scatter_region, NULL},
    {"/pdpb.PD/SplitRegions", &pdpb__split_regions_request__descriptor, split_regions,
     split_regions_cancel},
};

static void on_unary(rpc_call *call, tkv_slice msg, void *ud)
{
    const pd_method_binding *bnd = ud;
    ProtobufCMessage *req;
    if (rpc_msg_unpack(bnd->m->req, msg, &req) != 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "request does not decode");
        return;
    }
    bnd->m->fn(bnd->s, req, call);
    rpc_msg_free(req);
}

int pd__grpc_register(pd_server *s)
{
    s->bindings = tkv_calloc(TKV_ARRAY_LEN(methods), sizeof(*s->bindings));
    if (s->bindings == NULL)
        return -ENOMEM;
    s->nbindings = TKV_ARRAY_LEN(methods);
    for (size_t i = 0; i < TKV_ARRAY_LEN(methods); i++) {
        s->bindings[i] = (pd_method_binding){.s = s, .m = &methods[i]};
        rpc_handler h = {.type = RPC_UNARY,
                         .on_request = on_unary,
                         .on_cancel = methods[i].on_cancel,
                         .ud = &s->bindings[i]};
        int rc = rpc_server_add_method(s->rpc, methods[i].path, &h);
        if (rc != 0)
            return rc;
    }
    return 0;
}
