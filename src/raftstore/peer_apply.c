/*
 * peer_apply.c: what a peer does with the apply thread's reports: the applied index (reads
 * waiting for it), membership changes (Raft's configuration follows the applied command),
 * splits (new peers), log compactions (the log start moves, old entries are deleted in the
 * background), applied snapshots, and the end of its own destruction.
 *
 * Thread: the poller's.
 */
#include <stdlib.h>

#include "base/log.h"
#include "raftstore/rstore_int.h"

static void replace_region(rstore_peer *p, Metapb__Region **region)
{
    rstore__region_free(p->region);
    p->region = *region;
    *region = NULL;
}

static void on_conf_change(rstore_peer *p, rstore_exec_result *res)
{
    rstore *s = p->store;
    p->pending_conf = false;
    if (!res->change_ok)
        return;
    raft_conf_state cs;
    int rc = raft_node_apply_conf_change(p->raft, &res->cc, &cs);
    if (rc != 0) {
        TKV_LOG_FATAL("raft refused an applied conf change", TKV_LF_U64("region_id", p->region_id),
                      TKV_LF_ERR("err", rc));
        abort();
    }
    replace_region(p, &res->region);
    p->ps.cs = cs;
    rstore__meta_set(&s->meta, p->region);
    TKV_LOG_INFO("conf change applied", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_U64("peer_id", p->peer_id), TKV_LF_U64("changed", res->cc.node_id),
                 TKV_LF_U64("conf_ver", p->region->region_epoch->conf_ver),
                 TKV_LF_U64("peers", p->region->n_peers));
    if (res->cc.change_type == RAFT_CONF_REMOVE_NODE && res->cc.node_id == p->peer_id) {
        rstore__peer_start_destroy(p, false);
        return;
    }
    if (rstore__peer_is_leader(p))
        p->next_pd_hb_ms = 0; /* report the new membership at once */
}

static void on_split(rstore_peer *p, rstore_exec_result *res)
{
    rstore *s = p->store;
    bool leader = rstore__peer_is_leader(p);
    for (size_t i = 0; i < p->n_split_regions; i++)
        rstore__region_free(p->split_regions[i]);
    tkv_free(p->split_regions);
    p->split_regions = tkv_xcalloc(res->n_regions, sizeof(Metapb__Region *));
    p->n_split_regions = res->n_regions;
    for (size_t i = 0; i < res->n_regions; i++) {
        p->split_regions[i] = rstore__region_dup(res->regions[i]);
        if (res->regions[i]->id == p->region_id) {
            rstore__region_free(p->region);
            p->region = rstore__region_dup(res->regions[i]);
        }
    }
    rstore__meta_set(&s->meta, p->region);
    atomic_fetch_add(&s->stat_splits, 1);
    p->approx_size = 0;
    p->approx_keys = 0;
    p->size_diff_since_check = 0;
    /* The region's new range goes through TKV_LF_KEY: security.redact-info-log applies. */
    TKV_LOG_INFO("region split", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_U64("regions", res->n_regions),
                 TKV_LF_U64("version", p->region->region_epoch->version),
                 TKV_LF_KEY("start_key", p->region->start_key.data, p->region->start_key.len),
                 TKV_LF_KEY("end_key", p->region->end_key.data, p->region->end_key.len));
    rstore__store_on_split(s, p, res->regions, res->n_regions, leader);
    if (leader) {
        p->next_pd_hb_ms = 0;
        if (s->opts.pd) {
            rstore_task *t = rstore__task_new(RSTORE_TASK_REPORT_SPLIT, p->region_id);
            t->regions = tkv_xcalloc(res->n_regions, sizeof(Metapb__Region *));
            for (size_t i = 0; i < res->n_regions; i++)
                t->regions[i] = rstore__region_dup(res->regions[i]);
            t->n_regions = res->n_regions;
            rstore__worker_push(&s->pd_worker, t);
        }
    }
}

static void on_compact_log(rstore_peer *p, rstore_exec_result *res)
{
    rstore *s = p->store;
    uint64_t first = p->ps.truncated_index + 1;
    if (res->index < first)
        return;
    rstore__ps_compact_to(&p->ps, res->index, res->term);
    rstore_task *t = rstore__task_new(RSTORE_TASK_GC_LOG, p->region_id);
    t->a = first;
    t->b = res->index;
    rstore__worker_push(&s->worker, t);
    atomic_fetch_add(&s->stat_compactions, 1);
}

static void on_snapshot_applied(rstore_peer *p, rstore_exec_result *res)
{
    rstore *s = p->store;
    replace_region(p, &res->region);
    p->initialized = true;
    rstore__region_conf_state(p->region, &p->ps.cs);
    rstore__meta_remove_tombstone(&s->meta, p->region_id);
    rstore__meta_set(&s->meta, p->region);
    p->snap_applied = true;
    p->applied_index = res->index;
    p->applied_term = res->term;
    TKV_LOG_INFO("snapshot applied", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_U64("index", res->index));
}

/* Finishes destruction: the apply thread wrote the tombstone; unregister and free. */
static void on_destroyed(rstore_peer *p)
{
    rstore *s = p->store;
    rstore_task *t = rstore__task_new(RSTORE_TASK_DESTROY_LOG, p->region_id);
    t->a = p->ps.truncated_index + 1;
    t->b = p->ps.last_index;
    rstore__worker_push(&s->worker, t);
    rstore__meta_add_tombstone(&s->meta, p->region, p->peer_id);
    rstore__store_remove_peer(s, p);
    TKV_LOG_INFO("peer destroyed", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_U64("peer_id", p->peer_id));
}

void rstore__peer_on_apply_res(rstore_peer *p, rstore_apply_res *res)
{
    if (res->peer_id != p->peer_id)
        return; /* about an older replica of this region */
    if (res->applied_index > p->applied_index) {
        p->applied_index = res->applied_index;
        p->applied_term = res->applied_term;
    }
    p->written_bytes += res->written_bytes;
    p->written_keys += res->written_keys;
    p->size_diff_since_check += res->written_bytes;
    p->approx_size += res->written_bytes;
    for (size_t i = 0; i < res->n_results; i++) {
        rstore_exec_result *e = &res->results[i];
        switch (e->type) {
        case RSTORE_EXEC_CONF_CHANGE:
            if (!p->destroying)
                on_conf_change(p, e);
            break;
        case RSTORE_EXEC_SPLIT:
            if (!p->destroying)
                on_split(p, e);
            break;
        case RSTORE_EXEC_COMPACT_LOG:
            on_compact_log(p, e);
            break;
        case RSTORE_EXEC_SNAPSHOT_APPLIED:
            on_snapshot_applied(p, e);
            break;
        case RSTORE_EXEC_DESTROYED:
            on_destroyed(p);
            return;
        }
    }
    rstore__ps_trim_cache(&p->ps, p->applied_index);
    rstore__peer_serve_reads(p);
}
