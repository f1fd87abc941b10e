/*
 * pdc_calls.c: the unary PD calls (regions, stores, bootstrap, ids, splits, GC safe points)
 * and etcd's KV Range/Put on the PD port. Each is a thin typed wrapper over pdc__call, which
 * fills the header, retries on the leader and maps header errors.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "pdc/pdc_int.h"

#define CALL(c, name, req, resp_type, out)                                                         \
    pdc__call((c), "/pdpb.PD/" name, &(req).base, &pdpb__##resp_type##__descriptor, 0, true,       \
              (ProtobufCMessage **)(out))

static int null_arg(const char *fn)
{
    return pdc__fail(-EINVAL, "%s: NULL argument", fn);
}

/* Accepts a GetRegion-style answer: absent region is TKV_ENOTFOUND. */
static int region_answer(int rc, Pdpb__GetRegionResponse *r, Pdpb__GetRegionResponse **out,
                         const char *what)
{
    if (rc != 0)
        return rc;
    if (r->region == NULL) {
        pdc_msg_free(r);
        return pdc__fail(TKV_ENOTFOUND, "PD knows no region %s", what);
    }
    *out = r;
    return 0;
}

/* GetRegion and GetPrevRegion take the same request and give the same answer. */
static int region_by_key(pdc_client *c, const char *method, tkv_slice key,
                         Pdpb__GetRegionResponse **out, const char *what)
{
    if (c == NULL || out == NULL)
        return null_arg(method);
    Pdpb__GetRegionRequest req = PDPB__GET_REGION_REQUEST__INIT;
    req.region_key.data = (uint8_t *)key.data;
    req.region_key.len = key.len;
    Pdpb__GetRegionResponse *r = NULL;
    char path[48];
    snprintf(path, sizeof(path), "/pdpb.PD/%s", method);
    int rc = pdc__call(c, path, &req.base, &pdpb__get_region_response__descriptor, 0, true,
                       (ProtobufCMessage **)&r);
    return region_answer(rc, r, out, what);
}

int pdc_get_region(pdc_client *c, tkv_slice key, Pdpb__GetRegionResponse **out)
{
    return region_by_key(c, "GetRegion", key, out, "for the key");
}

int pdc_get_prev_region(pdc_client *c, tkv_slice key, Pdpb__GetRegionResponse **out)
{
    return region_by_key(c, "GetPrevRegion", key, out, "before the key");
}

int pdc_get_region_by_id(pdc_client *c, uint64_t region_id, Pdpb__GetRegionResponse **out)
{
    if (c == NULL || out == NULL)
        return null_arg("pdc_get_region_by_id");
    Pdpb__GetRegionByIDRequest req = PDPB__GET_REGION_BY_IDREQUEST__INIT;
    req.region_id = region_id;
    Pdpb__GetRegionResponse *r = NULL;
    int rc = CALL(c, "GetRegionByID", req, get_region_response, &r);
    char what[48];
    snprintf(what, sizeof(what), "with id %" PRIu64, region_id);
    return region_answer(rc, r, out, what);
}

int pdc_scan_regions(pdc_client *c, tkv_slice start, tkv_slice end, int32_t limit,
                     Pdpb__ScanRegionsResponse **out)
{
    if (c == NULL || out == NULL)
        return null_arg("pdc_scan_regions");
    Pdpb__ScanRegionsRequest req = PDPB__SCAN_REGIONS_REQUEST__INIT;
    req.start_key.data = (uint8_t *)start.data;
    req.start_key.len = start.len;
    req.end_key.data = (uint8_t *)end.data;
    req.end_key.len = end.len;
    req.limit = limit;
    return CALL(c, "ScanRegions", req, scan_regions_response, out);
}

int pdc_get_store(pdc_client *c, uint64_t store_id, Pdpb__GetStoreResponse **out)
{
    if (c == NULL || out == NULL)
        return null_arg("pdc_get_store");
    Pdpb__GetStoreRequest req = PDPB__GET_STORE_REQUEST__INIT;
    req.store_id = store_id;
    Pdpb__GetStoreResponse *r = NULL;
    int rc = CALL(c, "GetStore", req, get_store_response, &r);
    if (rc != 0)
        return rc;
    if (r->store == NULL || r->store->node_state == METAPB__NODE_STATE__Removed) {
        pdc_msg_free(r);
        return pdc__fail(TKV_ENOTFOUND, "PD knows no store %" PRIu64, store_id);
    }
    *out = r;
    return 0;
}

int pdc_get_all_stores(pdc_client *c, bool exclude_tombstone, Pdpb__GetAllStoresResponse **out)
{
    if (c == NULL || out == NULL)
        return null_arg("pdc_get_all_stores");
    Pdpb__GetAllStoresRequest req = PDPB__GET_ALL_STORES_REQUEST__INIT;
    req.exclude_tombstone_stores = exclude_tombstone;
    return CALL(c, "GetAllStores", req, get_all_stores_response, out);
}

int pdc_is_bootstrapped(pdc_client *c, bool *bootstrapped)
{
    if (c == NULL || bootstrapped == NULL)
        return null_arg("pdc_is_bootstrapped");
    Pdpb__IsBootstrappedRequest req = PDPB__IS_BOOTSTRAPPED_REQUEST__INIT;
    Pdpb__IsBootstrappedResponse *r = NULL;
    int rc = CALL(c, "IsBootstrapped", req, is_bootstrapped_response, &r);
    if (rc == 0)
        *bootstrapped = r->bootstrapped;
    pdc_msg_free(r);
    return rc;
}

int pdc_bootstrap(pdc_client *c, const Metapb__Store *store, const Metapb__Region *region)
{
    if (c == NULL || store == NULL || region == NULL)
        return null_arg("pdc_bootstrap");
    Pdpb__BootstrapRequest req = PDPB__BOOTSTRAP_REQUEST__INIT;
    req.store = (Metapb__Store *)store;
    req.region = (Metapb__Region *)region;
    Pdpb__BootstrapResponse *r = NULL;
    int rc = CALL(c, "Bootstrap", req, bootstrap_response, &r);
    pdc_msg_free(r);
    return rc;
}

int pdc_alloc_id(pdc_client *c, uint64_t *id)
{
    if (c == NULL || id == NULL)
        return null_arg("pdc_alloc_id");
    Pdpb__AllocIDRequest req = PDPB__ALLOC_IDREQUEST__INIT;
    Pdpb__AllocIDResponse *r = NULL;
    int rc = CALL(c, "AllocID", req, alloc_idresponse, &r);
    if (rc == 0 && r->id == 0)
        rc = pdc__fail(TKV_ERPC, "PD AllocID answered id 0");
    if (rc == 0)
        *id = r->id;
    pdc_msg_free(r);
    return rc;
}

int pdc_put_store(pdc_client *c, const Metapb__Store *store)
{
    if (c == NULL || store == NULL)
        return null_arg("pdc_put_store");
    Pdpb__PutStoreRequest req = PDPB__PUT_STORE_REQUEST__INIT;
    req.store = (Metapb__Store *)store;
    Pdpb__PutStoreResponse *r = NULL;
    int rc = CALL(c, "PutStore", req, put_store_response, &r);
    pdc_msg_free(r);
    return rc;
}

int pdc_store_heartbeat(pdc_client *c, const Pdpb__StoreStats *stats,
                        Pdpb__StoreHeartbeatResponse **out)
{
    if (c == NULL || stats == NULL)
        return null_arg("pdc_store_heartbeat");
    Pdpb__StoreHeartbeatRequest req = PDPB__STORE_HEARTBEAT_REQUEST__INIT;
    req.stats = (Pdpb__StoreStats *)stats;
    Pdpb__StoreHeartbeatResponse *r = NULL;
    int rc = CALL(c, "StoreHeartbeat", req, store_heartbeat_response, &r);
    if (rc == 0 && out != NULL)
        *out = r;
    else
        pdc_msg_free(r);
    return rc;
}

int pdc_ask_batch_split(pdc_client *c, const Metapb__Region *region, uint32_t split_count,
                        Pdpb__AskBatchSplitResponse **out)
{
    if (c == NULL || region == NULL || out == NULL)
        return null_arg("pdc_ask_batch_split");
    Pdpb__AskBatchSplitRequest req = PDPB__ASK_BATCH_SPLIT_REQUEST__INIT;
    req.region = (Metapb__Region *)region;
    req.split_count = split_count;
    Pdpb__AskBatchSplitResponse *r = NULL;
    int rc = CALL(c, "AskBatchSplit", req, ask_batch_split_response, &r);
    if (rc == 0 && r->n_ids != split_count) {
        rc = pdc__fail(TKV_ERPC, "PD AskBatchSplit answered %zu ids for %u splits", r->n_ids,
                       split_count);
        pdc_msg_free(r);
    }
    if (rc == 0)
        *out = r;
    return rc;
}

int pdc_report_batch_split(pdc_client *c, const Metapb__Region *const *regions, size_t n_regions)
{
    if (c == NULL || (regions == NULL && n_regions > 0))
        return null_arg("pdc_report_batch_split");
    Pdpb__ReportBatchSplitRequest req = PDPB__REPORT_BATCH_SPLIT_REQUEST__INIT;
    req.regions = (Metapb__Region **)regions;
    req.n_regions = n_regions;
    Pdpb__ReportBatchSplitResponse *r = NULL;
    int rc = CALL(c, "ReportBatchSplit", req, report_batch_split_response, &r);
    pdc_msg_free(r);
    return rc;
}

int pdc_get_gc_safe_point(pdc_client *c, uint64_t *safe_point)
{
    if (c == NULL || safe_point == NULL)
        return null_arg("pdc_get_gc_safe_point");
    Pdpb__GetGCSafePointRequest req = PDPB__GET_GCSAFE_POINT_REQUEST__INIT;
    Pdpb__GetGCSafePointResponse *r = NULL;
    int rc = CALL(c, "GetGCSafePoint", req, get_gcsafe_point_response, &r);
    if (rc == 0)
        *safe_point = r->safe_point;
    pdc_msg_free(r);
    return rc;
}

int pdc_update_gc_safe_point(pdc_client *c, uint64_t safe_point, uint64_t *new_safe_point)
{
    if (c == NULL)
        return null_arg("pdc_update_gc_safe_point");
    Pdpb__UpdateGCSafePointRequest req = PDPB__UPDATE_GCSAFE_POINT_REQUEST__INIT;
    req.safe_point = safe_point;
    Pdpb__UpdateGCSafePointResponse *r = NULL;
    int rc = CALL(c, "UpdateGCSafePoint", req, update_gcsafe_point_response, &r);
    if (rc == 0 && new_safe_point != NULL)
        *new_safe_point = r->new_safe_point;
    pdc_msg_free(r);
    return rc;
}

/* ---- etcd ------------------------------------------------------------------------------- */

int pdc_etcd_get(pdc_client *c, tkv_slice key, tkv_buf *value, bool *found)
{
    if (c == NULL || value == NULL || found == NULL || key.len == 0)
        return pdc__fail(-EINVAL, "pdc_etcd_get: NULL argument or empty key");
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key.data = (uint8_t *)key.data;
    req.key.len = key.len;
    ProtobufCMessage *m = NULL;
    int rc = pdc__call(c, "/etcdserverpb.KV/Range", &req.base,
                       &etcdserverpb__range_response__descriptor, 0, false, &m);
    if (rc != 0)
        return rc;
    Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)m;
    *found = false;
    for (size_t i = 0; i < r->n_kvs; i++) {
        Mvccpb__KeyValue *kv = r->kvs[i];
        if (tkv_slice_eq(tkv_slice_of(kv->key.data, kv->key.len), key)) {
            rc = tkv_buf_set(value, kv->value.data, kv->value.len);
            if (rc != 0)
                rc = pdc__fail(rc, "out of memory");
            *found = rc == 0;
            break;
        }
    }
    rpc_msg_free(m);
    return rc;
}

int pdc_etcd_put(pdc_client *c, tkv_slice key, tkv_slice value)
{
    if (c == NULL || key.len == 0)
        return pdc__fail(-EINVAL, "pdc_etcd_put: NULL argument or empty key");
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key.data = (uint8_t *)key.data;
    req.key.len = key.len;
    req.value.data = (uint8_t *)value.data;
    req.value.len = value.len;
    ProtobufCMessage *m = NULL;
    int rc = pdc__call(c, "/etcdserverpb.KV/Put", &req.base,
                       &etcdserverpb__put_response__descriptor, 0, false, &m);
    rpc_msg_free(m);
    return rc;
}

int pdc_load_txn_safe_point(pdc_client *c, uint64_t *safe_point)
{
    if (safe_point == NULL)
        return pdc__fail(-EINVAL, "pdc_load_txn_safe_point: NULL argument");
    tkv_buf v;
    tkv_buf_init(&v);
    bool found = false;
    int rc = pdc_etcd_get(c, tkv_slice_str(PDC_TXN_SAFE_POINT_KEY), &v, &found);
    if (rc == 0) {
        *safe_point = 0;
        if (found && v.len > 0) {
            char text[32];
            size_t n = TKV_MIN(v.len, sizeof(text) - 1);
            memcpy(text, v.data, n);
            text[n] = '\0';
            if (v.len >= sizeof(text) || strspn(text, "0123456789") != v.len) {
                rc = pdc__fail(TKV_ECORRUPT, "the safe point at %s is not a decimal number",
                               PDC_TXN_SAFE_POINT_KEY);
            } else {
                errno = 0;
                unsigned long long sp = strtoull(text, NULL, 10);
                if (errno != 0)
                    rc = pdc__fail(TKV_ECORRUPT, "the safe point at %s is out of range",
                                   PDC_TXN_SAFE_POINT_KEY);
                else
                    *safe_point = sp;
            }
        }
    }
    tkv_buf_deinit(&v);
    return rc;
}

int pdc_save_txn_safe_point(pdc_client *c, uint64_t safe_point)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRIu64, safe_point);
    return pdc_etcd_put(c, tkv_slice_str(PDC_TXN_SAFE_POINT_KEY), tkv_slice_of(text, (size_t)n));
}
