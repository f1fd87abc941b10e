/*
 * pdc.h: the PD client, used by tikv-server (bootstrap, heartbeats, splits, GC safe point) and
 * by libtikvc (region routing, stores, timestamps).
 *
 * Owns: a pdc_client: the list of PD endpoints, the cluster id, a connection to the PD
 * leader (re-found through GetMembers after errors), one long-lived Tso stream with request
 * batching, an optional RegionHeartbeat stream, and one background thread that refreshes
 * members, reconnects the streams and expires timestamp requests.
 *
 * Behaviour (that of PD's own Go client, which client-go uses):
 *   - Endpoints are "host:port" or "http://host:port" ("https://" too: TLS is chosen by the
 *     options, not the scheme). pdc_open asks each endpoint in turn for GetMembers until one
 *     answers with a non-zero cluster id and a leader with client URLs; from then on the
 *     endpoint list is the union of the members' client URLs and every call goes to the
 *     leader's first client URL. Every later GetMembers answer must carry the same cluster
 *     id (a PD of another cluster is refused).
 *   - Every request carries header.cluster_id (and header.sender_id from the options).
 *   - A call that fails at the gRPC level (UNAVAILABLE, a PD that is no longer leader, ...)
 *     refreshes the members and retries on the new leader until the call's deadline. A PD
 *     answer with header.error is not retried: it is returned as an error (below).
 *   - Timestamps: concurrent callers are queued; one TsoRequest with count N is in flight at
 *     a time and its answer (the largest timestamp of the batch) is split back into N
 *     timestamps, physical << 18 | logical, strictly increasing. A batch lost with its
 *     stream (leader change, PD restart) is asked again on the next stream; every request
 *     waits at most until its deadline.
 *
 * Threads: every function is thread-safe. Blocking functions wait on the calling thread and
 * must not be called from a gRPC completion-queue thread (an rpc callback, a pdc callback):
 * use pdc_tso_async there. Callbacks (pdc_tso_cb, pdc_heartbeat_cb) run on a gRPC
 * completion-queue thread or the background thread and must not block.
 *
 * Errors: functions return 0 or a negative code, and the calling thread's last error message
 * (pdc_errmsg) says what failed:
 *   -EINVAL        bad argument;
 *   -ENOMEM        allocation failed;
 *   -ETIMEDOUT     the deadline passed before PD answered (retries included);
 *   TKV_ERPC       gRPC failure that outlived the retries, or a response that is not what the
 *                  protocol promises (wrong count, no leader, timestamp going back);
 *   TKV_ECORRUPT   a response does not decode;
 *   TKV_ENOTFOUND  PD has no such region or store (REGION_NOT_FOUND, "not found");
 *   TKV_EEXIST     ALREADY_BOOTSTRAPPED;
 *   TKV_ESTALE     STORE_TOMBSTONE;
 *   TKV_ECONFIG    bad endpoints or TLS files, or PD answered with another cluster id;
 *   TKV_EUNAVAILABLE  the heartbeat stream is down (reconnecting);
 *   TKV_ECLOSED    the client is closing;
 *   other PD header errors map to TKV_ERPC; pdc_err_pd_type gives the PD ErrorType.
 *
 * Ownership: messages passed in are borrowed for the call. Responses returned through
 * `T **out` belong to the caller and are freed with pdc_msg_free. Messages handed to
 * callbacks are borrowed for the callback only.
 *
 * Dependencies: base, rpc, tkv_proto (pdpb, metapb, etcdserverpb).
 *
 * Usage (tikv-server start-up):
 *     pdc_opts o;
 *     pdc_opts_init(&o);
 *     const char *eps[] = {"127.0.0.1:2379"};
 *     o.endpoints = eps;
 *     o.n_endpoints = 1;
 *     pdc_client *pd;
 *     if (pdc_open(&o, &pd) != 0) die(pdc_errmsg(NULL));
 *     bool boot;
 *     rc = pdc_is_bootstrapped(pd, &boot);
 *     if (!boot) { ids from pdc_alloc_id; rc = pdc_bootstrap(pd, &store, &region); }
 *     rc = pdc_put_store(pd, &store);
 *     rc = pdc_region_heartbeat_start(pd, on_operator, raftstore);
 *     ... pdc_region_heartbeat_send(pd, &hb); pdc_store_heartbeat(pd, &stats, NULL); ...
 *     pdc_close(pd);
 */
#ifndef TKV_PDC_H
#define TKV_PDC_H

#include "base/base.h"
#include "etcdserverpb.pb-c.h"
#include "metapb.pb-c.h"
#include "pdpb.pb-c.h"
#include "rpc/rpc.h"

typedef struct pdc_client pdc_client;

/* TSO layout: physical milliseconds << 18 | logical. */
#define PDC_PHYSICAL_SHIFT 18
#define PDC_LOGICAL_MASK   ((UINT64_C(1) << PDC_PHYSICAL_SHIFT) - 1)

/* The etcd key where TiDB and client-go keep the transaction GC safe point. */
#define PDC_TXN_SAFE_POINT_KEY "/tidb/store/gcworker/saved_safe_point"

/* Returns the composed timestamp of @physical_ms and @logical. */
static inline uint64_t pdc_ts_compose(int64_t physical_ms, int64_t logical)
{
    return ((uint64_t)physical_ms << PDC_PHYSICAL_SHIFT) | ((uint64_t)logical & PDC_LOGICAL_MASK);
}

/* Returns the physical milliseconds of the composed timestamp @ts. */
static inline uint64_t pdc_ts_physical(uint64_t ts)
{
    return ts >> PDC_PHYSICAL_SHIFT;
}

typedef struct pdc_opts {
    /* PD endpoints, "host:port" or "http://host:port"; at least one. Copied. */
    const char *const *endpoints;
    size_t n_endpoints;
    /* TLS for the PD connections; NULL means plaintext. Copied by the rpc client. */
    const rpc_tls *tls;
    /* Default deadline of a call, retries included (PD's client uses 3 s). */
    int64_t timeout_ms;
    /* How often members are refreshed without an error (PD's client: 1 minute). */
    int64_t member_refresh_ms;
    /* Most timestamps asked for in one TsoRequest (PD's client: 10000). */
    uint32_t tso_max_batch;
    /* header.sender_id (the store id for tikv-server; 0 for clients). */
    uint64_t sender_id;
    /* An rpc client to share (borrowed; it must outlive the pdc client), or NULL to create
     * one (with @tls). */
    rpc_client *rpc;
} pdc_opts;

/* Fills @o with defaults: no endpoints, plaintext, timeout 3 s, member refresh 60 s, TSO
 * batches of at most 10000, sender id 0, own rpc client. */
void pdc_opts_init(pdc_opts *o);

/* Connects to PD: finds the cluster id and the leader (GetMembers) and starts the background
 * thread; the Tso stream opens at once. On failure *@out is untouched and pdc_errmsg(NULL)
 * says why; a caller that must wait for PD to come up (tikv-server) calls it again.
 * Errors: -EINVAL, TKV_ECONFIG (no endpoint, bad endpoint, TLS files), -ETIMEDOUT or
 * TKV_ERPC (no endpoint answered within timeout_ms), -ENOMEM, -errno (thread). */
TKV_MUST_USE int pdc_open(const pdc_opts *o, pdc_client **out);

/* Stops the background thread and the streams, fails queued timestamp requests with
 * TKV_ECLOSED, and frees the client. Blocking calls still running on other threads are a
 * bug (they must have returned). NULL is a no-op. Thread: not a callback of this client. */
void pdc_close(pdc_client *c);

/* Returns the calling thread's last pdc error message ("" when none); @c is unused and may
 * be NULL (kept for the errmsg style). Valid until the thread's next failing pdc call. */
const char *pdc_errmsg(const pdc_client *c);

/* Returns the pdpb ErrorType of the calling thread's last failure when PD answered with
 * header.error, else 0 (OK). */
int pdc_err_pd_type(void);

/* Frees a response returned by a pdc function; NULL is a no-op. */
void pdc_msg_free(void *msg);

/* Sets header.sender_id of later requests (tikv-server learns its store id after opening the
 * client: from its data directory, or from AllocID before bootstrapping). Thread: any. */
void pdc_set_sender_id(pdc_client *c, uint64_t sender_id);

/* Returns the cluster id (fixed after pdc_open). */
uint64_t pdc_cluster_id(const pdc_client *c);

/* Copies the current leader's address ("host:port") into @buf (NUL-terminated, truncated to
 * @cap). */
void pdc_leader_addr(pdc_client *c, char *buf, size_t cap);

/* ---- members ---------------------------------------------------------------------------- */

/* Asks the leader for the members (GetMembers) into *@out. */
TKV_MUST_USE int pdc_get_members(pdc_client *c, Pdpb__GetMembersResponse **out);

/* Forces a members refresh now (as after an error) and waits for it; the leader may change.
 * Errors: as pdc_open. */
TKV_MUST_USE int pdc_refresh_members(pdc_client *c);

/* ---- timestamps ------------------------------------------------------------------------- */

/* Completion of pdc_tso_async: @rc is 0 with the timestamp @ts, or an error (-ETIMEDOUT,
 * TKV_ERPC, TKV_ECLOSED, -ENOMEM) with @ts 0. Runs on a gRPC completion-queue thread, the
 * background thread, or (for -ENOMEM) never: see pdc_tso_async. */
typedef void (*pdc_tso_cb)(void *ud, int rc, uint64_t ts);

/* Returns a timestamp in *@ts, waiting at most @timeout_ms (<= 0: the default). */
TKV_MUST_USE int pdc_tso(pdc_client *c, int64_t timeout_ms, uint64_t *ts);

/* Queues a timestamp request; @cb runs exactly once when it is answered or fails (deadline
 * @timeout_ms, <= 0 for the default). Errors (then @cb never runs): -EINVAL, -ENOMEM,
 * TKV_ECLOSED. */
TKV_MUST_USE int pdc_tso_async(pdc_client *c, int64_t timeout_ms, pdc_tso_cb cb, void *ud);

/* ---- regions and stores ----------------------------------------------------------------- */

/* Returns the region containing @key (GetRegion) with its leader into *@out; the key is
 * sent as given (callers that need the transactional codec encode it themselves).
 * Errors: TKV_ENOTFOUND (PD knows no region there), the common ones. */
TKV_MUST_USE int pdc_get_region(pdc_client *c, tkv_slice key, Pdpb__GetRegionResponse **out);

/* Returns the region before the one containing @key (GetPrevRegion). Errors: as above. */
TKV_MUST_USE int pdc_get_prev_region(pdc_client *c, tkv_slice key, Pdpb__GetRegionResponse **out);

/* Returns the region with id @region_id (GetRegionByID). Errors: as above. */
TKV_MUST_USE int pdc_get_region_by_id(pdc_client *c, uint64_t region_id,
                                      Pdpb__GetRegionResponse **out);

/* Returns up to @limit regions (<= 0: no limit) intersecting [@start, @end) (@end empty: to
 * the end) in key order (ScanRegions). */
TKV_MUST_USE int pdc_scan_regions(pdc_client *c, tkv_slice start, tkv_slice end, int32_t limit,
                                  Pdpb__ScanRegionsResponse **out);

/* Returns the store @store_id (GetStore) into *@out (out->store is set).
 * Errors: TKV_ENOTFOUND (no such store, or removed), the common ones. */
TKV_MUST_USE int pdc_get_store(pdc_client *c, uint64_t store_id, Pdpb__GetStoreResponse **out);

/* Returns every store (GetAllStores), without tombstones when @exclude_tombstone. */
TKV_MUST_USE int pdc_get_all_stores(pdc_client *c, bool exclude_tombstone,
                                    Pdpb__GetAllStoresResponse **out);

/* ---- tikv-server calls ------------------------------------------------------------------ */

/* Sets *@bootstrapped to whether the cluster is bootstrapped (IsBootstrapped). */
TKV_MUST_USE int pdc_is_bootstrapped(pdc_client *c, bool *bootstrapped);

/* Bootstraps the cluster with the first store and the first region (Bootstrap).
 * Errors: TKV_EEXIST (already bootstrapped: another store won), the common ones. */
TKV_MUST_USE int pdc_bootstrap(pdc_client *c, const Metapb__Store *store,
                               const Metapb__Region *region);

/* Returns a new unique id in *@id (AllocID). */
TKV_MUST_USE int pdc_alloc_id(pdc_client *c, uint64_t *id);

/* Registers or updates @store (PutStore). Errors: TKV_ESTALE (the store is a tombstone). */
TKV_MUST_USE int pdc_put_store(pdc_client *c, const Metapb__Store *store);

/* Sends a store heartbeat (StoreHeartbeat); the response goes to *@out unless @out is NULL.
 * Errors: TKV_ESTALE (tombstone), the common ones. */
TKV_MUST_USE int pdc_store_heartbeat(pdc_client *c, const Pdpb__StoreStats *stats,
                                     Pdpb__StoreHeartbeatResponse **out);

/* Receives each RegionHeartbeatResponse (PD's operators: change peer, transfer leader, split,
 * ...); @resp is borrowed for the call. Runs on a gRPC completion-queue thread: hand the work
 * to the raftstore and return. */
typedef void (*pdc_heartbeat_cb)(void *ud, const Pdpb__RegionHeartbeatResponse *resp);

/* Opens the RegionHeartbeat stream; @cb receives every response until pdc_close. The stream
 * is reopened (to the current leader) whenever it ends. Errors: -EINVAL (already started). */
TKV_MUST_USE int pdc_region_heartbeat_start(pdc_client *c, pdc_heartbeat_cb cb, void *ud);

/* Sends one region heartbeat on the stream (the header is filled in). Returns at once.
 * Errors: TKV_EUNAVAILABLE (the stream is down and being reopened: send the next heartbeat
 * later), TKV_EBUSY (thousands of heartbeats still queued: PD is not keeping up), -EINVAL
 * (not started), -ENOMEM. */
TKV_MUST_USE int pdc_region_heartbeat_send(pdc_client *c, const Pdpb__RegionHeartbeatRequest *hb);

/* Asks PD for the ids of @split_count new regions split off @region (AskBatchSplit). */
TKV_MUST_USE int pdc_ask_batch_split(pdc_client *c, const Metapb__Region *region,
                                     uint32_t split_count, Pdpb__AskBatchSplitResponse **out);

/* Reports the regions a split produced (ReportBatchSplit). */
TKV_MUST_USE int pdc_report_batch_split(pdc_client *c, const Metapb__Region *const *regions,
                                        size_t n_regions);

/* Returns the GC safe point PD holds in *@safe_point (GetGCSafePoint). */
TKV_MUST_USE int pdc_get_gc_safe_point(pdc_client *c, uint64_t *safe_point);

/* Asks PD to advance the GC safe point to @safe_point (UpdateGCSafePoint); *@new_safe_point
 * (may be NULL) receives what PD holds afterwards (the old one when @safe_point was older). */
TKV_MUST_USE int pdc_update_gc_safe_point(pdc_client *c, uint64_t safe_point,
                                          uint64_t *new_safe_point);

/* ---- etcd KV on the PD port ------------------------------------------------------------- */

/* Reads @key through etcd's KV/Range on the PD leader: *@found tells whether it exists, and
 * @value (replaced) holds its value. */
TKV_MUST_USE int pdc_etcd_get(pdc_client *c, tkv_slice key, tkv_buf *value, bool *found);

/* Writes @key = @value through etcd's KV/Put on the PD leader. */
TKV_MUST_USE int pdc_etcd_put(pdc_client *c, tkv_slice key, tkv_slice value);

/* Reads the transaction GC safe point (decimal text at PDC_TXN_SAFE_POINT_KEY; absent or
 * empty is 0). Errors: TKV_ECORRUPT (not a decimal number), the common ones. */
TKV_MUST_USE int pdc_load_txn_safe_point(pdc_client *c, uint64_t *safe_point);

/* Writes the transaction GC safe point as decimal text at PDC_TXN_SAFE_POINT_KEY. */
TKV_MUST_USE int pdc_save_txn_safe_point(pdc_client *c, uint64_t safe_point);

#endif /* TKV_PDC_H */
