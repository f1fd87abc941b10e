/*
 * tc_engine.c: operations, tasks, region errors and backoff.
 *
 * A task is one request to one region. Its life: route (the region's leader store must have
 * an address; resolving it needs PD, which happens on a worker), build the request with the
 * region's context, send, and on the answer:
 *   - transport failure: the store's address is looked up again, and the next peer of the
 *     region is tried at once (it answers NotLeader with the real leader if it is not it), as
 *     client-go's replica selector does when a leader is unreachable; once every peer failed,
 *     the region is dropped, and the task backs off (tikvRPC) and re-routes from PD;
 *   - region error (protocol.md 3.4, client-go's onRegionError):
 *       not leader with a leader  -> move the cached leader, resend at once;
 *       not leader without one    -> back off (regionScheduling), re-route from PD;
 *       epoch not match           -> install the current regions the store sent (leader:
 *                                    the peer on the store that answered), re-route at once;
 *       region not found, key not in region -> drop the region, re-route (regionMiss);
 *       server is busy            -> back off (tikvServerBusy, or the server's hint), resend;
 *       stale command             -> back off (staleCommand), re-route;
 *       store not match           -> re-resolve the store, drop the region, re-route;
 *       raft entry too large      -> fail (TIKVC_ETOOLARGE);
 *       anything else             -> drop the region, back off (regionMiss), re-route;
 *   - otherwise the op's handler reads the answer.
 * Immediate retries are bounded (10 in a row, then they back off too); every backoff sleep
 * counts against the op's budget (max_backoff_ms), after which the op fails with the code of
 * the kind that ran out (TIKVC_EREGION, TIKVC_EBUSY, TIKVC_EUNAVAILABLE, TIKVC_ETIMEDOUT).
 * Sleeps never block a thread: the task is posted to the exec with a delay.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "base/clock.h"
#include "base/log.h"
#include "client/tc_int.h"

#define QUICK_RETRIES 10

/* ---- backoff ---------------------------------------------------------------------------- */

typedef struct bo_cfg {
    uint32_t base, cap;
    bool jitter;
    int code;
    const char *name;
} bo_cfg;

static const bo_cfg bo_cfgs[TC_BO_KINDS] = {
    [TC_BO_REGION_MISS] = {2, 500, false, TIKVC_EREGION, "regionMiss"},
    [TC_BO_REGION_SCHED] = {2, 500, false, TIKVC_EREGION, "regionScheduling"},
    [TC_BO_BUSY] = {2000, 10000, true, TIKVC_EBUSY, "tikvServerBusy"},
    [TC_BO_TIKV_RPC] = {100, 2000, true, TIKVC_EUNAVAILABLE, "tikvRPC"},
    [TC_BO_STALE_CMD] = {2, 1000, false, TIKVC_EREGION, "staleCommand"},
    [TC_BO_PD] = {500, 3000, true, TIKVC_EUNAVAILABLE, "pdRPC"},
    [TC_BO_TXN_LOCK] = {100, 3000, true, TIKVC_ELOCKED, "txnLock"},
    [TC_BO_TXN_NOT_FOUND] = {2, 500, false, TIKVC_ELOCKED, "txnNotFound"},
};

void tikvc__bo_init(tc_backoff *bo, const tikvc_client *c)
{
    memset(bo, 0, sizeof(*bo));
    bo->max_ms = (uint64_t)c->opts.max_backoff_ms;
}

int tikvc__bo_next(tikvc_client *c, tc_backoff *bo, int kind, uint64_t hint_ms, const char *why,
                   uint64_t *sleep_ms)
{
    bo_cfg cfg = bo_cfgs[kind];
    if (kind == TC_BO_BUSY) {
        cfg.base = (uint32_t)c->opts.busy_backoff_base_ms;
        cfg.cap = (uint32_t)c->opts.busy_backoff_cap_ms;
    }
    uint64_t v = cfg.base;
    for (int i = 0; i < bo->attempts[kind] && v < cfg.cap; i++)
        v *= 2;
    if (v > cfg.cap)
        v = cfg.cap;
    if (cfg.jitter && v >= 2)
        v = v / 2 + tikvc__rand(c, v / 2);
    if (hint_ms > v)
        v = TKV_MIN(hint_ms, (uint64_t)cfg.cap);
    if (v == 0)
        v = 1;
    if (bo->slept_ms + v > bo->max_ms)
        return tikvc__fail(cfg.code, "%s (gave up after %" PRIu64 " ms of %s backoff)", why,
                           bo->slept_ms, cfg.name);
    bo->attempts[kind]++;
    bo->slept_ms += v;
    *sleep_ms = v;
    return 0;
}

int tikvc__bo_sleep(tikvc_client *c, tc_backoff *bo, int kind, const char *why)
{
    uint64_t ms;
    int rc = tikvc__bo_next(c, bo, kind, 0, why, &ms);
    if (rc != 0)
        return rc;
    if (atomic_load(&c->closing))
        return tikvc__fail(TIKVC_ECLOSED, "the client is closing");
    tkv_sleep_ms(ms);
    return 0;
}

/* ---- waiter ----------------------------------------------------------------------------- */

void tikvc__wait_init(tc_wait *w)
{
    TKV_ASSERT(pthread_mutex_init(&w->mu, NULL) == 0);
    TKV_ASSERT(pthread_cond_init(&w->cv, NULL) == 0);
    w->done = false;
}

void tikvc__wait_deinit(tc_wait *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

void tikvc__wait_signal(tc_wait *w)
{
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void tikvc__wait(tc_wait *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* ---- operations ------------------------------------------------------------------------- */

void tikvc__op_init(tc_op *op, tikvc_client *c, const tc_op_vt *vt, const tc_cmd *cmd,
                    tc_cache *cache)
{
    memset(op, 0, sizeof(*op));
    op->c = c;
    op->vt = vt;
    op->cmd = cmd;
    op->cache = cache;
    TKV_ASSERT(pthread_mutex_init(&op->mu, NULL) == 0);
    tikvc__bo_init(&op->bo, c);
}

void tikvc__op_deinit(tc_op *op)
{
    pthread_mutex_destroy(&op->mu);
}

static void op_fail_v(tc_op *op, int rc, const char *fmt, va_list ap)
{
    pthread_mutex_lock(&op->mu);
    if (op->rc == 0) {
        op->rc = rc;
        vsnprintf(op->errmsg, sizeof(op->errmsg), fmt, ap);
    }
    pthread_mutex_unlock(&op->mu);
}

void tikvc__op_fail(tc_op *op, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    op_fail_v(op, rc, fmt, ap);
    va_end(ap);
}

/* Fails @op with the calling thread's last error. */
static void op_fail_errmsg(tc_op *op, int rc)
{
    tikvc__op_fail(op, rc, "%s", tikvc_errmsg());
}

void tikvc__op_hold(tc_op *op)
{
    pthread_mutex_lock(&op->mu);
    op->pending++;
    pthread_mutex_unlock(&op->mu);
}

void tikvc__op_release(tc_op *op)
{
    pthread_mutex_lock(&op->mu);
    bool last = --op->pending == 0;
    pthread_mutex_unlock(&op->mu);
    if (last)
        op->done(op);
}

static void op_wake(tc_op *op)
{
    tikvc__wait_signal(op->wait);
}

typedef struct tc_async {
    tikvc_cb cb;
    void *ud;
    void (*fill)(tc_op *op, tikvc_result *r);
} tc_async;

static void async_done(tc_op *op)
{
    tc_async *a = op->ud;
    tikvc_result r;
    memset(&r, 0, sizeof(r));
    r.code = op->rc;
    r.errmsg = op->errmsg;
    a->fill(op, &r);
    a->cb(a->ud, &r);
    tikvc_client *c = op->c;
    tkv_free(a);
    op->vt->free(op);
    tikvc__op_done_count(c);
}

int tikvc__op_start_async(tc_op *op, void (*fill)(tc_op *op, tikvc_result *r), tikvc_cb cb,
                          void *ud)
{
    tc_async *a = tkv_malloc(sizeof(*a));
    if (a == NULL)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    a->cb = cb;
    a->ud = ud;
    a->fill = fill;
    op->ud = a;
    op->done = async_done;
    tikvc__op_count(op->c, op);
    op->vt->start(op, false);
    return 0;
}

int tikvc__op_run(tc_op *op)
{
    tc_wait w;
    tikvc__wait_init(&w);
    op->wait = &w;
    op->done = op_wake;
    op->vt->start(op, !tikvc__on_worker());
    tikvc__wait(&w);
    tikvc__wait_deinit(&w);
    op->wait = NULL;
    if (op->rc != 0)
        tikvc__set_errmsg("%s", op->errmsg);
    return op->rc;
}

static void job_run(tc_job *j);

tc_task *tikvc__task_new(tc_op *op, tc_region *region)
{
    tc_task *t = tkv_calloc(1, sizeof(*t));
    if (t == NULL) {
        tikvc__region_unref(region);
        tikvc__op_fail(op, TIKVC_ENOMEM, "out of memory");
        return NULL;
    }
    t->op = op;
    t->region = region;
    t->job.fn = job_run;
    tkv_buf_init(&t->call.body);
    pthread_mutex_lock(&op->mu);
    op->pending++;
    pthread_mutex_unlock(&op->mu);
    return t;
}

void tikvc__task_end(tc_task *t)
{
    tc_op *op = t->op;
    tikvc__region_unref(t->region);
    tkv_buf_deinit(&t->call.body);
    tkv_free(t->items);
    tkv_free(t);
    tikvc__op_release(op);
}

static void task_fail(tc_task *t, int rc, const char *msg)
{
    tikvc__op_fail(t->op, rc, "%s", msg);
    tikvc__task_end(t);
}

int tikvc__locate(tc_op *op, tkv_slice key, bool end_key, bool may_block, tc_region **out)
{
    tc_region *r = tikvc__cache_find(op->cache, key, end_key);
    if (r != NULL) {
        *out = r;
        return 0;
    }
    if (!may_block)
        return TC_WOULD_BLOCK;
    for (;;) {
        if (atomic_load(&op->c->closing))
            return tikvc__fail(TIKVC_ECLOSED, "the client is closing");
        int rc = tikvc__cache_load(op->c, op->cache, key, end_key, out);
        if (rc == 0 || rc == TIKVC_ECORRUPT || rc == TIKVC_ENOMEM || rc == TIKVC_ECONFIG)
            return rc;
        char why[TKV_ERRMSG_LEN];
        snprintf(why, sizeof(why), "%s", tikvc_errmsg());
        pthread_mutex_lock(&op->mu);
        uint64_t ms = 0;
        int brc = tikvc__bo_next(op->c, &op->bo, TC_BO_PD, 0, why, &ms);
        pthread_mutex_unlock(&op->mu);
        if (brc != 0)
            return brc;
        tkv_sleep_ms(ms);
    }
}

/* ---- retries ---------------------------------------------------------------------------- */

/* Continues @t with @step after a backoff of @kind (or at once when @quick), failing the op
 * when the budget is spent. @code replaces the kind's failure code when non-zero. */
static void task_retry(tc_task *t, int kind, uint64_t hint_ms, bool quick, int code,
                       const char *why, tc_step step)
{
    tc_op *op = t->op;
    uint64_t sleep_ms = 0;
    if (quick && t->quick_retries < QUICK_RETRIES) {
        t->quick_retries++;
    } else {
        pthread_mutex_lock(&op->mu);
        int rc = tikvc__bo_next(op->c, &op->bo, kind, hint_ms, why, &sleep_ms);
        pthread_mutex_unlock(&op->mu);
        if (rc != 0) {
            op_fail_errmsg(op, code != 0 ? code : rc);
            tikvc__task_end(t);
            return;
        }
        t->quick_retries = 0;
    }
    t->step = step;
    if (sleep_ms == 0) {
        if (step == TC_STEP_SEND)
            tikvc__task_send(t, false);
        else
            tikvc__task_reroute(t, false);
        return;
    }
    tikvc__exec_post(&op->c->exec, &t->job, sleep_ms);
}

static void job_run(tc_job *j)
{
    tc_task *t = (tc_task *)((char *)j - offsetof(tc_task, job));
    if (atomic_load(&t->op->c->closing)) {
        task_fail(t, TIKVC_ECLOSED, "the client is closing");
        return;
    }
    if (t->step == TC_STEP_SEND)
        tikvc__task_send(t, true);
    else
        tikvc__task_reroute(t, true);
}

void tikvc__task_reroute(tc_task *t, bool may_block)
{
    int rc = t->op->vt->reroute(t, may_block);
    if (rc == TC_WOULD_BLOCK) {
        t->step = TC_STEP_REROUTE;
        tikvc__exec_post(&t->op->c->exec, &t->job, 0);
        return;
    }
    if (rc != 0)
        op_fail_errmsg(t->op, rc);
    tikvc__task_end(t);
}

/* ---- sending ---------------------------------------------------------------------------- */

static void on_call_done(tc_call *call, int rc, const char *errmsg, tkv_slice resp);

void tikvc__task_send(tc_task *t, bool may_block)
{
    tc_op *op = t->op;
    tikvc_client *c = op->c;
    if (atomic_load(&c->closing)) {
        task_fail(t, TIKVC_ECLOSED, "the client is closing");
        return;
    }
    tc_region *r = t->region;
    int lead = atomic_load(&r->leader);
    t->lead = lead;
    tc_store *st = tikvc__store_get(c, r->store_ids[lead]);
    if (st == NULL) {
        task_fail(t, TIKVC_ENOMEM, "out of memory");
        return;
    }
    if (!tikvc__store_ready(st)) {
        if (!may_block) {
            t->step = TC_STEP_SEND;
            tikvc__exec_post(&c->exec, &t->job, 0);
            return;
        }
        if (tikvc__store_resolve(c, st) != 0) {
            /* The store may be gone for good: ask PD about the region again. */
            tikvc__cache_invalidate(op->cache, r);
            char why[TKV_ERRMSG_LEN];
            snprintf(why, sizeof(why), "%s", tikvc_errmsg());
            task_retry(t, TC_BO_PD, 0, false, 0, why, TC_STEP_REROUTE);
            return;
        }
    }
    t->store = st;
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    Metapb__Peer peer = METAPB__PEER__INIT;
    ctx.region_id = r->id;
    ep.conf_ver = r->conf_ver;
    ep.version = r->version;
    ctx.region_epoch = &ep;
    peer.id = r->peer_ids[lead];
    peer.store_id = r->store_ids[lead];
    ctx.peer = &peer;
    ctx.max_execution_duration_ms = (uint64_t)c->opts.rpc_timeout_ms;
    ctx.resolved_locks = (uint64_t *)op->resolved_locks;
    ctx.n_resolved_locks = op->n_resolved_locks;
    tkv_buf_reset(&t->call.body);
    int rc = op->vt->build(t, &ctx, &t->call.body);
    if (rc != 0) {
        task_fail(t, rc, "out of memory building a request");
        return;
    }
    t->call.cmd = op->cmd;
    t->call.cb = on_call_done;
    rc = tikvc__send(c, st, &t->call);
    if (rc == TIKVC_ECLOSED || rc == TIKVC_ENOMEM) {
        task_fail(t, rc, tikvc_errmsg());
    } else if (rc != 0) {
        char why[TKV_ERRMSG_LEN];
        snprintf(why, sizeof(why), "%s", tikvc_errmsg());
        tikvc__cache_invalidate(op->cache, r);
        task_retry(t, TC_BO_TIKV_RPC, 0, false, 0, why, TC_STEP_REROUTE);
    }
    /* Past a successful send the task may already be finished on another thread. */
}

/* Returns the response's region_error, if any. */
static Errorpb__Error *region_error_of(ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "region_error");
    if (f == NULL)
        return NULL;
    return *(Errorpb__Error **)((char *)m + f->offset);
}

/* Installs EpochNotMatch's current regions; the leader is the peer on the store that
 * answered. Returns false when nothing usable came. */
static bool install_current_regions(tc_task *t, const Errorpb__EpochNotMatch *e)
{
    tc_op *op = t->op;
    int lead = atomic_load(&t->region->leader);
    uint64_t answered = t->region->store_ids[lead];
    size_t installed = 0;
    for (size_t i = 0; i < e->n_current_regions; i++) {
        tc_region *r = NULL;
        if (tikvc__region_from_pb(op->cache->codec, e->current_regions[i], NULL, answered, &r) != 0)
            continue;
        if (tikvc__cache_insert(op->cache, r) == 0)
            installed++;
        tikvc__region_unref(r);
    }
    return installed > 0;
}

static void handle_region_error(tc_task *t, const Errorpb__Error *e)
{
    tc_op *op = t->op;
    tc_region *r = t->region;
    char why[TKV_ERRMSG_LEN];
    const char *msg = e->message != NULL && e->message[0] != '\0' ? e->message : "";
    if (e->not_leader != NULL) {
        const Metapb__Peer *l = e->not_leader->leader;
        snprintf(why, sizeof(why), "region %" PRIu64 ": not leader", r->id);
        if (l != NULL && l->store_id != 0) {
            for (size_t i = 0; i < r->n_peers; i++) {
                if (r->store_ids[i] == l->store_id) {
                    atomic_store(&r->leader, (int)i);
                    task_retry(t, TC_BO_REGION_SCHED, 0, true, 0, why, TC_STEP_SEND);
                    return;
                }
            }
        }
        /* No hint, or a leader on a peer we do not know: ask PD. */
        tikvc__cache_invalidate(op->cache, r);
        task_retry(t, TC_BO_REGION_SCHED, 0, false, 0, why, TC_STEP_REROUTE);
    } else if (e->epoch_not_match != NULL) {
        snprintf(why, sizeof(why), "region %" PRIu64 ": epoch not match", r->id);
        tikvc__cache_invalidate(op->cache, r);
        bool fresh = install_current_regions(t, e->epoch_not_match);
        task_retry(t, TC_BO_REGION_MISS, 0, fresh, 0, why, TC_STEP_REROUTE);
    } else if (e->server_is_busy != NULL) {
        snprintf(why, sizeof(why), "store %" PRIu64 " is busy: %s", t->store->id,
                 e->server_is_busy->reason ? e->server_is_busy->reason : "");
        task_retry(t, TC_BO_BUSY, e->server_is_busy->backoff_ms, false, 0, why, TC_STEP_SEND);
    } else if (e->stale_command != NULL) {
        snprintf(why, sizeof(why), "region %" PRIu64 ": stale command", r->id);
        task_retry(t, TC_BO_STALE_CMD, 0, false, 0, why, TC_STEP_REROUTE);
    } else if (e->store_not_match != NULL) {
        snprintf(why, sizeof(why), "store not match (asked %" PRIu64 ", answered %" PRIu64 ")",
                 e->store_not_match->request_store_id, e->store_not_match->actual_store_id);
        tikvc__store_mark_stale(op->c, t->store);
        tikvc__cache_invalidate(op->cache, r);
        task_retry(t, TC_BO_REGION_MISS, 0, true, 0, why, TC_STEP_REROUTE);
    } else if (e->raft_entry_too_large != NULL) {
        task_fail(t, TIKVC_ETOOLARGE, "the request is too large for one raft entry");
    } else if (e->region_not_found != NULL || e->key_not_in_region != NULL) {
        snprintf(why, sizeof(why), "region %" PRIu64 ": %s", r->id,
                 e->region_not_found != NULL ? "region not found" : "key not in region");
        tikvc__cache_invalidate(op->cache, r);
        task_retry(t, TC_BO_REGION_MISS, 0, t->quick_retries < 2, 0, why, TC_STEP_REROUTE);
    } else if (e->max_timestamp_not_synced != NULL || e->read_index_not_ready != NULL ||
               e->proposal_in_merging_mode != NULL || e->data_is_not_ready != NULL ||
               e->region_not_initialized != NULL || e->disk_full != NULL ||
               e->recoveryinprogress != NULL) {
        snprintf(why, sizeof(why), "region %" PRIu64 " is not ready: %s", r->id, msg);
        task_retry(t, TC_BO_REGION_MISS, 0, false, 0, why, TC_STEP_REROUTE);
    } else {
        snprintf(why, sizeof(why), "region %" PRIu64 ": %s", r->id,
                 msg[0] ? msg : "unknown region error");
        tikvc__cache_invalidate(op->cache, r);
        task_retry(t, TC_BO_REGION_MISS, 0, false, 0, why, TC_STEP_REROUTE);
    }
}

static void on_call_done(tc_call *call, int rc, const char *errmsg, tkv_slice resp)
{
    tc_task *t = (tc_task *)((char *)call - offsetof(tc_task, call));
    tc_op *op = t->op;
    if (rc != 0) {
        if (rc == TIKVC_ECLOSED || rc == TIKVC_ECORRUPT || rc == TIKVC_ESERVER) {
            task_fail(t, rc, errmsg);
            return;
        }
        /* The store may be gone: its address is looked up again, and another peer tried. */
        tikvc__store_mark_stale(op->c, t->store);
        tc_region *r = t->region;
        int code = rc == TIKVC_ETIMEDOUT ? TIKVC_ETIMEDOUT : 0;
        if (++t->unreachable < (int)r->n_peers) {
            int lead = t->lead;
            atomic_compare_exchange_strong(&r->leader, &lead, (t->lead + 1) % (int)r->n_peers);
            task_retry(t, TC_BO_TIKV_RPC, 0, true, code, errmsg, TC_STEP_SEND);
            return;
        }
        t->unreachable = 0;
        tikvc__cache_invalidate(op->cache, r);
        task_retry(t, TC_BO_TIKV_RPC, 0, false, code, errmsg, TC_STEP_REROUTE);
        return;
    }
    ProtobufCMessage *m = NULL;
    if (rpc_msg_unpack(op->cmd->resp_desc, resp, &m) != 0) {
        task_fail(t, TIKVC_ECORRUPT, "a store's response does not decode");
        return;
    }
    Errorpb__Error *re = region_error_of(m);
    if (re != NULL) {
        handle_region_error(t, re);
        rpc_msg_free(m);
        return;
    }
    op->vt->handle(t, m);
    rpc_msg_free(m);
    tikvc__task_end(t);
}
