/*
 * service.c: the tikvpb.Tikv service: unary methods from the storage method tables, their
 * metrics, refusals mapped to gRPC statuses, and the service's lifecycle (see server.h).
 */
#include <ctype.h>
#include <stdio.h>

#include "base/clock.h"
#include "base/log.h"
#include "security/authz.h"
#include "security/wire.h"
#include "server/srv_int.h"

#define TIKV_PATH_PREFIX "/tikvpb.Tikv/"

void srv_method_label(const char *name, char *out, size_t cap)
{
    if (cap == 0)
        return;
    size_t n = 0, len = strlen(name);
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)name[i];
        if (isupper(c) && i > 0) {
            unsigned char prev = (unsigned char)name[i - 1];
            unsigned char next = i + 1 < len ? (unsigned char)name[i + 1] : 0;
            /* A word starts at an upper-case letter after a lower-case one ("RawGet"), or at
             * the last capital of an acronym followed by lower case ("KVPessimistic"). */
            if ((islower(prev) || isdigit(prev) || (isupper(prev) && islower(next))) && n + 2 < cap)
                out[n++] = '_';
        }
        out[n++] = (char)tolower(c);
    }
    out[n] = '\0';
}

void srv__observe(const srv_method *sm, uint64_t start_ns)
{
    if (sm->dur != NULL)
        tkv_series_observe(sm->dur, (double)(tkv_clock_mono_ns() - start_ns) / 1e9);
}

rpc_code srv__code_for(int rc)
{
    switch (rc) {
    case -EINVAL:
    case TKV_ECORRUPT:
        return RPC_INVALID_ARGUMENT;
    case TKV_ETOOLARGE:
    case -ENOMEM:
        return RPC_RESOURCE_EXHAUSTED;
    case TKV_ECLOSED:
    case TKV_EBUSY:
    case TKV_EUNAVAILABLE:
        return RPC_UNAVAILABLE;
    case TKV_EUNSUPPORTED:
        return RPC_UNIMPLEMENTED;
    }
    return RPC_INTERNAL;
}

void srv__refuse(const srv_method *sm, rpc_call *call, int rc)
{
    char msg[160];
    switch (rc) {
    case -EINVAL:
    case TKV_ECORRUPT:
        snprintf(msg, sizeof(msg), "malformed %s request", sm->name);
        break;
    case TKV_ECLOSED:
        snprintf(msg, sizeof(msg), "TiKV is shutting down");
        break;
    case TKV_ETOOLARGE:
        snprintf(msg, sizeof(msg), "%s request over a configured limit", sm->name);
        break;
    default:
        snprintf(msg, sizeof(msg), "%s refused: %s", sm->name, tkv_strerror(rc));
        break;
    }
    if (sm->fail != NULL)
        tkv_series_inc(sm->fail);
    rpc_call_finish(call, srv__code_for(rc), msg);
}

/* ---- unary storage methods --------------------------------------------------------------- */

typedef struct unary_call {
    const srv_method *sm;
    rpc_call *call;
    ProtobufCMessage *req;
    uint64_t start_ns;
} unary_call;

ProtobufCMessage *srv__accept(const srv_method *sm, rpc_call *call, tkv_slice msg,
                              const ProtobufCMessageDescriptor *desc)
{
    if (atomic_load(&sm->svc->stopping)) {
        srv__refuse(sm, call, TKV_ECLOSED);
        return NULL;
    }
    ProtobufCMessage *req;
    int rc = rpc_msg_unpack(desc, msg, &req);
    if (rc != 0) {
        srv__refuse(sm, call, rc);
        return NULL;
    }
    return req;
}

void srv__reply(const srv_method *sm, rpc_call *call, const ProtobufCMessage *resp,
                uint64_t start_ns)
{
    if (rpc_call_reply_msg(call, resp) != 0 && sm->fail != NULL)
        tkv_series_inc(sm->fail);
    srv__observe(sm, start_ns);
}

static void unary_done(void *ud, const ProtobufCMessage *resp)
{
    unary_call *u = ud;
    atomic_fetch_sub(&u->sm->svc->inflight, 1);
    srv__reply(u->sm, u->call, resp, u->start_ns);
    rpc_msg_free(u->req);
    tkv_free(u);
}

bool srv__authorized(const srv_method *sm, rpc_call *call, const ProtobufCMessage *req,
                     char *reason, size_t cap)
{
    srv_authz *a = sm->svc->authz;
    return a == NULL || srv_authz_check(a, rpc_call_peer_cn(call), sm->name, req, reason, cap);
}

void srv__deny(const srv_method *sm, rpc_call *call, const char *reason)
{
    ProtobufCMessage *resp = NULL;
    if (sm->m != NULL && srv_authz_denied_response(sm->m->resp_desc, reason, &resp) == 0) {
        TKV_IGNORE(rpc_call_reply_msg(call, resp));
        tkv_free(resp);
    } else {
        rpc_call_finish(call, RPC_PERMISSION_DENIED, reason);
    }
    if (sm->fail != NULL)
        tkv_series_inc(sm->fail);
}

static void unary_on_request(rpc_call *call, tkv_slice msg, void *ud)
{
    const srv_method *sm = ud;
    uint64_t start = tkv_clock_mono_ns();
    ProtobufCMessage *req = srv__accept(sm, call, msg, sm->m->req_desc);
    if (req == NULL)
        return;
    char reason[192];
    if (!srv__authorized(sm, call, req, reason, sizeof(reason))) {
        srv__deny(sm, call, reason);
        rpc_msg_free(req);
        return;
    }
    srv__audit_admin(sm, call);
    unary_call *u = tkv_malloc(sizeof(*u));
    if (u == NULL) {
        rpc_msg_free(req);
        srv__refuse(sm, call, -ENOMEM);
        return;
    }
    *u = (unary_call){.sm = sm, .call = call, .req = req, .start_ns = start};
    if (atomic_fetch_add(&sm->svc->inflight, 1) >= SRV_MAX_INFLIGHT) {
        atomic_fetch_sub(&sm->svc->inflight, 1);
        rpc_msg_free(req);
        tkv_free(u);
        if (sm->fail != NULL)
            tkv_series_inc(sm->fail);
        rpc_call_finish(call, RPC_RESOURCE_EXHAUSTED,
                        "server is busy: too many requests in flight");
        return;
    }
    int rc = sm->m->fn(sm->svc->s, req, unary_done, u);
    if (rc != 0) {
        atomic_fetch_sub(&sm->svc->inflight, 1);
        /* Refused: the callback never runs. */
        rpc_msg_free(req);
        tkv_free(u);
        srv__refuse(sm, call, rc);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------- */

/* TiKV's buckets for tikv_grpc_msg_duration_seconds: 50 us doubling 22 times (to ~104 s). */
static void tikv_grpc_buckets(double *b, size_t n)
{
    double v = 5e-5;
    for (size_t i = 0; i < n; i++) {
        b[i] = v;
        v *= 2;
    }
}

static void init_method(srv_service *svc, srv_method *sm, const char *name, const stor_method *m)
{
    sm->svc = svc;
    sm->m = m;
    snprintf(sm->name, sizeof(sm->name), "%s", name);
    srv_method_label(name, sm->label, sizeof(sm->label));
    /* Series are optional: without them (out of memory) requests are just not measured. */
    sm->dur = tkv_metric_with(svc->grpc_dur, sm->label);
    sm->fail = tkv_metric_with(svc->grpc_fail, sm->label);
}

static int count_methods(void)
{
    int n = 0;
    const stor_method *tables[] = {stor_raw_methods, stor_txn_methods};
    for (size_t t = 0; t < TKV_ARRAY_LEN(tables); t++)
        for (const stor_method *m = tables[t]; m->name != NULL; m++)
            n++;
    return n;
}

static int register_storage_methods(srv_service *svc)
{
    const stor_method *tables[] = {stor_raw_methods, stor_txn_methods};
    for (size_t t = 0; t < TKV_ARRAY_LEN(tables); t++) {
        for (const stor_method *m = tables[t]; m->name != NULL; m++) {
            srv_method *sm = &svc->methods[svc->n_methods++];
            init_method(svc, sm, m->name, m);
            char path[SRV_NAME_LEN + sizeof(TIKV_PATH_PREFIX)];
            snprintf(path, sizeof(path), TIKV_PATH_PREFIX "%s", m->name);
            rpc_handler h = {.type = RPC_UNARY, .on_request = unary_on_request, .ud = sm};
            int rc = rpc_server_add_method(svc->rs, path, &h);
            if (rc != 0)
                return rc;
            if (m->batch_cmd > 0 && m->batch_cmd < SRV_BATCH_CMDS)
                svc->batch[m->batch_cmd] = sm;
        }
    }
    return 0;
}

/* The service's own methods' entries: SplitRegion, GetStoreSafeTS, BatchCommands and the
 * "invalid" label for commands nobody serves. */
#define OWN_METHODS 4

int srv_service_new(rpc_server *rs, stor *s, const srv_admin_hooks *admin, srv_service **out)
{
    if (rs == NULL || s == NULL || out == NULL)
        return -EINVAL;
    srv_service *svc = tkv_calloc(1, sizeof(*svc));
    if (svc == NULL)
        return -ENOMEM;
    svc->rs = rs;
    svc->s = s;
    atomic_init(&svc->stopping, false);
    atomic_init(&svc->inflight, 0);
    if (admin != NULL)
        svc->admin = *admin;
    int rc = pthread_mutex_init(&svc->mu, NULL);
    if (rc != 0) {
        tkv_free(svc);
        return -rc;
    }
    /* Registering returns the existing family when there is one (another service, a test). */
    double buckets[22];
    tikv_grpc_buckets(buckets, TKV_ARRAY_LEN(buckets));
    svc->grpc_dur = tkv_metric_histogram("tikv_grpc_msg_duration_seconds",
                                         "Bucketed histogram of grpc server messages", "type",
                                         buckets, TKV_ARRAY_LEN(buckets));
    svc->grpc_fail = tkv_metric_counter("tikv_grpc_msg_fail_total",
                                        "Total number of handle grpc message failure", "type");
    double sizes[10];
    for (size_t i = 0; i < TKV_ARRAY_LEN(sizes); i++)
        sizes[i] = (double)(1u << i);
    svc->req_batch_size = tkv_metric_with(tkv_metric_histogram("tikv_server_grpc_req_batch_size",
                                                               "grpc batch size of gRPC requests",
                                                               NULL, sizes, TKV_ARRAY_LEN(sizes)));
    svc->resp_batch_size = tkv_metric_with(tkv_metric_histogram("tikv_server_grpc_resp_batch_size",
                                                                "grpc batch size of gRPC responses",
                                                                NULL, sizes, TKV_ARRAY_LEN(sizes)));
    svc->methods = tkv_calloc((size_t)count_methods() + OWN_METHODS, sizeof(*svc->methods));
    if (svc->methods == NULL) {
        srv_service_free(svc);
        return -ENOMEM;
    }
    rc = register_storage_methods(svc);
    if (rc == 0) {
        svc->m_split = &svc->methods[svc->n_methods++];
        init_method(svc, svc->m_split, "SplitRegion", NULL);
        svc->m_safe_ts = &svc->methods[svc->n_methods++];
        init_method(svc, svc->m_safe_ts, "GetStoreSafeTS", NULL);
        svc->m_batch = &svc->methods[svc->n_methods++];
        init_method(svc, svc->m_batch, "BatchCommands", NULL);
        svc->m_invalid = &svc->methods[svc->n_methods++];
        init_method(svc, svc->m_invalid, "Invalid", NULL);
        rc = srv__admin_register(svc);
    }
    if (rc == 0)
        rc = srv__batch_register(svc);
    if (rc != 0) {
        TKV_LOG_ERROR("cannot register the tikv service", TKV_LF_ERR("err", rc));
        srv_service_free(svc);
        return rc;
    }
    *out = svc;
    return 0;
}

void srv_service_set_admin(srv_service *svc, const srv_admin_hooks *admin)
{
    pthread_mutex_lock(&svc->mu);
    if (admin != NULL)
        svc->admin = *admin;
    else
        memset(&svc->admin, 0, sizeof(svc->admin));
    pthread_mutex_unlock(&svc->mu);
}

void srv_service_set_authz(srv_service *svc, srv_authz *a)
{
    svc->authz = a;
}

void srv_service_set_wire(srv_service *svc, struct sec_wire *w)
{
    svc->wire = w;
}

void srv__audit_admin(const srv_method *sm, rpc_call *call)
{
    if (sm->svc->wire == NULL || srv_authz_perm_of(sm->name) != SEC_PERM_ADMIN)
        return;
    char peer[128], who[300];
    rpc_call_peer(call, peer, sizeof(peer));
    snprintf(who, sizeof(who), "%s cn=%s", peer, rpc_call_peer_cn(call));
    sec_audit_event ev = {.type = "admin", .peer = who, .method = sm->name, .reason = "served"};
    sec_wire_event(sm->svc->wire, &ev);
}

void srv_service_shutdown(srv_service *svc)
{
    if (atomic_exchange(&svc->stopping, true))
        return;
    TKV_IGNORE(rpc_server_set_health(svc->rs, "", RPC_HEALTH_NOT_SERVING));
    TKV_IGNORE(rpc_server_set_health(svc->rs, "tikvpb.Tikv", RPC_HEALTH_NOT_SERVING));
}

void srv_service_free(srv_service *svc)
{
    if (svc == NULL)
        return;
    srv__batch_free_all(svc);
    tkv_free(svc->methods);
    pthread_mutex_destroy(&svc->mu);
    tkv_free(svc);
}
