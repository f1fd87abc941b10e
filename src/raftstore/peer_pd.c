/*
 * peer_pd.c: a leader's dealings with PD and its own housekeeping: region heartbeats (size,
 * keys, down and pending peers), PD's operators (change peer, transfer leader, split), the
 * size-based split check and the split itself (AskBatchSplit, then a BatchSplit admin
 * command), and raft log compaction (CompactLog admin command).
 *
 * Thread: the poller's.
 */
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

/* ---- region heartbeat --------------------------------------------------------------- */

void rstore__peer_heartbeat_pd(rstore_peer *p)
{
    rstore *s = p->store;
    if (s->opts.pd == NULL || !p->initialized || !rstore__peer_is_leader(p))
        return;
    uint64_t now = tkv_clock_mono_ms();
    Pdpb__PeerStats down_stats[RAFT_MAX_MEMBERS], *down_ptrs[RAFT_MAX_MEMBERS];
    size_t n_down = 0;
    Metapb__Peer *pending[RAFT_MAX_MEMBERS];
    size_t n_pending = 0;
    raft_progress_info pr[RAFT_MAX_MEMBERS];
    size_t n_pr = raft_node_progress(p->raft, pr);
    for (size_t i = 0; i < p->region->n_peers; i++) {
        Metapb__Peer *peer = p->region->peers[i];
        if (peer->id == p->peer_id)
            continue;
        uint64_t heard = 0;
        for (size_t j = 0; j < p->n_heard; j++)
            if (p->heard_peer[j] == peer->id)
                heard = p->heard_ms[j];
        if (heard == 0) {
            rstore__peer_heard(p, peer->id, now); /* start counting from now */
        } else if (now - heard > s->opts.max_peer_down_ms) {
            pdpb__peer_stats__init(&down_stats[n_down]);
            down_stats[n_down].peer = peer;
            down_stats[n_down].down_seconds = (now - heard) / 1000;
            down_ptrs[n_down] = &down_stats[n_down];
            n_down++;
        }
        for (size_t j = 0; j < n_pr; j++)
            if (pr[j].id == peer->id && pr[j].match < p->ps.truncated_index)
                pending[n_pending++] = peer;
    }
    Pdpb__RegionHeartbeatRequest hb = PDPB__REGION_HEARTBEAT_REQUEST__INIT;
    hb.region = p->region;
    hb.leader = (Metapb__Peer *)rstore__region_peer(p->region, p->peer_id);
    hb.down_peers = down_ptrs;
    hb.n_down_peers = n_down;
    hb.pending_peers = pending;
    hb.n_pending_peers = n_pending;
    hb.bytes_written = p->written_bytes;
    hb.keys_written = p->written_keys;
    hb.approximate_size = p->approx_size;
    hb.approximate_keys = p->approx_keys;
    hb.term = raft_node_term(p->raft);
    p->last_hb_pending = n_pending;
    p->written_bytes = 0;
    p->written_keys = 0;
    rstore_task *t = rstore__task_new(RSTORE_TASK_REGION_HB, p->region_id);
    rstore__pack(&hb.base, &t->buf);
    rstore__worker_push(&s->pd_worker, t);
}

size_t rstore__peer_pending_count(rstore_peer *p)
{
    raft_progress_info pr[RAFT_MAX_MEMBERS];
    size_t n = raft_node_progress(p->raft, pr), pending = 0;
    for (size_t i = 0; i < n; i++)
        if (pr[i].id != p->peer_id && pr[i].match < p->ps.truncated_index)
            pending++;
    return pending;
}

/* ---- PD operators ------------------------------------------------------------------- */

static bool op_epoch_stale(rstore_peer *p, const Metapb__RegionEpoch *ep)
{
    if (ep == NULL)
        return false;
    const Metapb__RegionEpoch *mine = p->region->region_epoch;
    return ep->conf_ver < mine->conf_ver || ep->version < mine->version;
}

static void split_keys_from(rstore_peer *p, tkv_buf **keys, size_t *n, ProtobufCBinaryData *in,
                            size_t n_in);

void rstore__peer_on_pd_op(rstore_peer *p, Pdpb__RegionHeartbeatResponse *op)
{
    if (!p->initialized || !rstore__peer_is_leader(p) || op_epoch_stale(p, op->region_epoch))
        return;
    if (op->change_peer && op->change_peer->peer) {
        const Metapb__Peer *peer = op->change_peer->peer;
        raft_conf_change_type t = (raft_conf_change_type)op->change_peer->change_type;
        if (t == RAFT_CONF_ADD_NODE || t == RAFT_CONF_REMOVE_NODE ||
            t == RAFT_CONF_ADD_LEARNER_NODE)
            rstore__peer_change_peer(p, t, peer->id, peer->store_id);
    } else if (op->change_peer_v2 && op->change_peer_v2->n_changes == 1 &&
               op->change_peer_v2->changes[0]->peer) {
        const Pdpb__ChangePeer *c = op->change_peer_v2->changes[0];
        rstore__peer_change_peer(p, (raft_conf_change_type)c->change_type, c->peer->id,
                                 c->peer->store_id);
    } else if (op->transfer_leader && op->transfer_leader->peer) {
        rstore__peer_transfer_leader(p, op->transfer_leader->peer->store_id);
    } else if (op->split_region) {
        if (op->split_region->n_keys == 0) {
            rstore__peer_maybe_split_check(p, true);
            return;
        }
        rstore_split_req *r = tkv_xcalloc(1, sizeof(*r));
        r->ctx.region_id = p->region_id;
        split_keys_from(p, &r->keys, &r->n_keys, op->split_region->keys, op->split_region->n_keys);
        rstore__peer_on_split_req(p, r);
    }
}

/* ---- split ---------------------------------------------------------------------------- */

static void split_keys_from(rstore_peer *p, tkv_buf **keys, size_t *n, ProtobufCBinaryData *in,
                            size_t n_in)
{
    (void)p;
    *keys = tkv_xcalloc(n_in ? n_in : 1, sizeof(tkv_buf));
    *n = n_in;
    for (size_t i = 0; i < n_in; i++) {
        tkv_buf_init(&(*keys)[i]);
        if (tkv_buf_set(&(*keys)[i], in[i].data, in[i].len) != 0)
            abort();
    }
}

void rstore__peer_maybe_split_check(rstore_peer *p, bool force)
{
    rstore *s = p->store;
    if (!p->initialized || !rstore__peer_is_leader(p) || p->split_check_pending || p->split_asking)
        return;
    if (!force && p->size_diff_since_check < s->opts.region_split_check_diff)
        return;
    p->split_check_pending = true;
    rstore_task *t = rstore__task_new(RSTORE_TASK_SPLIT_CHECK, p->region_id);
    t->region = rstore__region_dup(p->region);
    t->a = force;
    rstore__worker_push(&s->worker, t);
}

/* Asks the PD worker for ids for a split of the current region at @keys (consumed). */
static void ask_split(rstore_peer *p, tkv_buf *keys, size_t n, rstore_cb *cb)
{
    rstore *s = p->store;
    rstore_split_ids *ids = tkv_xcalloc(1, sizeof(*ids));
    ids->conf_ver = p->region->region_epoch->conf_ver;
    ids->version = p->region->region_epoch->version;
    ids->keys = keys;
    ids->n_keys = n;
    ids->cb = *cb;
    cb->kind = RSTORE_CB_NONE;
    if (s->opts.pd == NULL) {
        rstore__cb_done(&ids->cb, 0, stor_rerr_message("splitting needs PD"));
        rstore__split_ids_free(ids);
        return;
    }
    p->split_asking = true;
    rstore_task *t = rstore__task_new(RSTORE_TASK_ASK_SPLIT, p->region_id);
    t->region = rstore__region_dup(p->region);
    t->split = ids;
    rstore__worker_push(&s->pd_worker, t);
}

void rstore__peer_on_split_check(rstore_peer *p, rstore_split_check *c)
{
    p->split_check_pending = false;
    p->approx_size = c->size_bytes;
    p->approx_keys = c->keys;
    p->size_diff_since_check = 0;
    if (c->n_split_keys == 0 || !rstore__peer_is_leader(p) ||
        c->version != p->region->region_epoch->version)
        return;
    TKV_LOG_INFO("split check found split keys", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_U64("size", c->size_bytes), TKV_LF_U64("keys", c->n_split_keys));
    rstore_cb none = {.kind = RSTORE_CB_NONE};
    ask_split(p, c->split_keys, c->n_split_keys, &none);
    c->split_keys = NULL;
    c->n_split_keys = 0;
}

void rstore__peer_on_split_req(rstore_peer *p, rstore_split_req *r)
{
    Errorpb__Error *err = rstore__peer_check(p, &r->ctx, true);
    if (err == NULL && p->split_asking)
        err = stor_rerr_server_is_busy("a split is in progress", 100);
    for (size_t i = 0; err == NULL && i < r->n_keys; i++) {
        tkv_slice k = tkv_buf_slice(&r->keys[i]);
        if (!rstore__key_in_region(p->region, k))
            err = stor_rerr_key_not_in_region(k, p->region);
        else if (i > 0 && tkv_slice_cmp(tkv_buf_slice(&r->keys[i - 1]), k) >= 0)
            err = stor_rerr_message("split keys are not sorted and unique");
    }
    /* A key equal to the region start splits nothing off: drop it (TiKV skips it too). */
    size_t j = 0;
    for (size_t i = 0; err == NULL && i < r->n_keys; i++) {
        if (r->keys[i].len == p->region->start_key.len &&
            memcmp(r->keys[i].data, p->region->start_key.data, r->keys[i].len) == 0) {
            tkv_buf_deinit(&r->keys[i]);
            continue;
        }
        r->keys[j++] = r->keys[i];
    }
    if (err == NULL)
        r->n_keys = j;
    if (err == NULL && r->n_keys == 0) {
        /* Nothing to split: answer with the region as it is. */
        if (r->cb.kind == RSTORE_CB_SPLIT) {
            const Metapb__Region *one = p->region;
            rstore_cb cb = r->cb;
            r->cb.kind = RSTORE_CB_NONE;
            cb.fn.split(cb.ud, 0, NULL, &one, 1);
        }
        rstore__split_req_free(r);
        return;
    }
    if (err != NULL) {
        rstore__cb_done(&r->cb, 0, err);
        rstore__split_req_free(r);
        return;
    }
    ask_split(p, r->keys, r->n_keys, &r->cb);
    r->keys = NULL;
    r->n_keys = 0;
    rstore__split_req_free(r);
}

void rstore__peer_on_split_ids(rstore_peer *p, rstore_split_ids *ids)
{
    p->split_asking = false;
    if (ids->rc != 0) {
        rstore__cb_done(&ids->cb, ids->rc, NULL);
        return;
    }
    const Metapb__RegionEpoch *ep = p->region->region_epoch;
    if (!rstore__peer_is_leader(p)) {
        rstore__cb_done(&ids->cb, 0, rstore__peer_not_leader(p));
        return;
    }
    if (ep->version != ids->version || ep->conf_ver != ids->conf_ver ||
        ids->n_peers != p->region->n_peers) {
        rstore__cb_done(&ids->cb, 0,
                        stor_rerr_epoch_not_match((const Metapb__Region **)&p->region, 1));
        return;
    }
    RaftCmdpb__SplitRequest *reqs = tkv_xcalloc(ids->n_keys, sizeof(*reqs));
    RaftCmdpb__SplitRequest **req_ptrs =
        tkv_xcalloc(ids->n_keys, sizeof(RaftCmdpb__SplitRequest *));
    for (size_t i = 0; i < ids->n_keys; i++) {
        raft_cmdpb__split_request__init(&reqs[i]);
        reqs[i].split_key.data = ids->keys[i].data;
        reqs[i].split_key.len = ids->keys[i].len;
        reqs[i].new_region_id = ids->new_region_ids[i];
        reqs[i].new_peer_ids = &ids->new_peer_ids[i * ids->n_peers];
        reqs[i].n_new_peer_ids = ids->n_peers;
        req_ptrs[i] = &reqs[i];
    }
    RaftCmdpb__BatchSplitRequest bs = RAFT_CMDPB__BATCH_SPLIT_REQUEST__INIT;
    bs.requests = req_ptrs;
    bs.n_requests = ids->n_keys;
    bs.right_derive = true;
    RaftCmdpb__AdminRequest admin = RAFT_CMDPB__ADMIN_REQUEST__INIT;
    admin.cmd_type = RAFT_CMDPB__ADMIN_CMD_TYPE__BatchSplit;
    admin.splits = &bs;
    /* The first split key goes through TKV_LF_KEY: security.redact-info-log applies. */
    TKV_LOG_INFO("proposing split", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_U64("keys", ids->n_keys),
                 TKV_LF_KEY("split_key", ids->n_keys ? ids->keys[0].data : NULL,
                            ids->n_keys ? ids->keys[0].len : 0));
    rstore__peer_propose_admin(p, &admin, &ids->cb);
    tkv_free(reqs);
    tkv_free(req_ptrs);
}

/* ---- raft log compaction -------------------------------------------------------------- */

void rstore__peer_maybe_gc_log(rstore_peer *p, bool force)
{
    rstore *s = p->store;
    if (!p->initialized || !rstore__peer_is_leader(p) || p->pending_rd)
        return;
    uint64_t applied = p->applied_index;
    uint64_t first = p->ps.truncated_index + 1;
    if (applied < first)
        return;
    raft_progress_info pr[RAFT_MAX_MEMBERS];
    size_t n = raft_node_progress(p->raft, pr);
    uint64_t replicated = UINT64_MAX;
    for (size_t i = 0; i < n; i++)
        replicated = TKV_MIN(replicated, pr[i].match);
    uint64_t compact;
    uint64_t count = applied - first + 1;
    if (force || count >= s->opts.raft_log_gc_count_limit ||
        rstore__ps_log_bytes(&p->ps) >= s->opts.raft_log_gc_size_limit) {
        compact = applied; /* lagging followers will need a snapshot */
    } else if (replicated >= first && replicated - first + 1 >= s->opts.raft_log_gc_threshold) {
        compact = replicated;
    } else {
        return;
    }
    compact = TKV_MIN(compact, applied);
    if (compact < first)
        return;
    raft_storage st = rstore__ps_iface(&p->ps);
    uint64_t term;
    if (st.term(st.ctx, compact, &term) != 0)
        return;
    RaftCmdpb__CompactLogRequest cl = RAFT_CMDPB__COMPACT_LOG_REQUEST__INIT;
    cl.compact_index = compact;
    cl.compact_term = term;
    RaftCmdpb__AdminRequest admin = RAFT_CMDPB__ADMIN_REQUEST__INIT;
    admin.cmd_type = RAFT_CMDPB__ADMIN_CMD_TYPE__CompactLog;
    admin.compact_log = &cl;
    rstore_cb none = {.kind = RSTORE_CB_NONE};
    rstore__peer_propose_admin(p, &admin, &none);
}
