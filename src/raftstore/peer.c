/*
 * peer.c: one region replica on this store (TiKV's PeerFsm): creation from persisted state
 * or a split or a message, mailbox dispatch, proposals with their callbacks, the checks
 * every request passes (epoch, leader, key range), ticks, and destruction.
 *
 * Thread: the poller's, always.
 */
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

static uint64_t applied_term_at_load(rstore_peer *p)
{
    rstore_peer_storage *ps = &p->ps;
    if (ps->applied_index == ps->truncated_index)
        return ps->truncated_term;
    raft_storage st = rstore__ps_iface(ps);
    uint64_t t = 0;
    if (st.term(st.ctx, ps->applied_index, &t) != 0)
        return 0;
    return t;
}

int rstore__peer_create(rstore *s, Metapb__Region *region, uint64_t peer_id, bool initialized,
                        rstore_peer **out)
{
    rstore_peer *p = tkv_xcalloc(1, sizeof(*p));
    p->store = s;
    p->region_id = region->id;
    p->peer_id = peer_id;
    p->region = region;
    p->initialized = initialized;
    rstore__ps_init(&p->ps, s, p, region->id);
    int rc = 0;
    if (initialized) {
        rc = rstore__ps_load(&p->ps, region);
    } else {
        /* An uninitialized replica may have voted before a restart: keep its term and vote
         * (its log stays empty until a snapshot arrives). */
        rstore_raft_state rs;
        bool found;
        rc = rstore__get_raft_state(s->opts.raft, region->id, &rs, &found);
        if (rc == 0 && found) {
            p->ps.hs.term = rs.hs.term;
            p->ps.hs.vote = rs.hs.vote;
        }
    }
    if (rc != 0) {
        rstore__ps_deinit(&p->ps);
        tkv_free(p);
        return rc;
    }
    raft_config cfg;
    raft_config_default(&cfg, peer_id);
    cfg.election_tick = s->opts.raft_election_timeout_ticks;
    cfg.heartbeat_tick = s->opts.raft_heartbeat_ticks;
    cfg.applied = p->ps.applied_index;
    cfg.max_size_per_msg = s->opts.raft_max_size_per_msg;
    cfg.max_inflight_msgs = s->opts.raft_max_inflight_msgs;
    cfg.max_committed_size_per_ready = 16u << 20;
    cfg.check_quorum = true;
    cfg.pre_vote = true;
    cfg.seed = peer_id ^ tkv_clock_mono_ns() ^ (s->store_id << 32);
    raft_storage st = rstore__ps_iface(&p->ps);
    rc = raft_node_new(&cfg, &st, &p->raft);
    if (rc != 0) {
        TKV_LOG_ERROR("raft node refused the persisted state", TKV_LF_U64("region_id", region->id),
                      TKV_LF_U64("peer_id", peer_id), TKV_LF_ERR("err", rc));
        rstore__ps_deinit(&p->ps);
        tkv_free(p);
        return rc == TKV_ECONFIG ? TKV_ECORRUPT : rc;
    }
    p->applied_index = p->ps.applied_index;
    p->applied_term = initialized ? applied_term_at_load(p) : 0;
    rc = rstore__router_register(&s->router, region->id, p, &p->mb);
    if (rc != 0) {
        raft_node_free(p->raft);
        rstore__ps_deinit(&p->ps);
        tkv_free(p);
        return rc;
    }
    rstore__peer_note_tick(p, 1, tkv_clock_mono_ns()); /* Raft's tick count starts at 1 */
    uint64_t now = tkv_clock_mono_ms();
    p->next_pd_hb_ms = now + s->opts.pd_heartbeat_tick_ms / 4;
    p->next_gc_ms = now + s->opts.raft_log_gc_tick_ms;
    p->next_split_check_ms = now + s->opts.split_check_tick_ms;
    p->region = region;
    *out = p;
    return 0;
}

/* Sends the apply thread the region's state so it can apply entries. */
void rstore__peer_register_apply(rstore_peer *p)
{
    rstore_apply_task *t = rstore__apply_task_new(RSTORE_APPLY_REGISTER, p->region_id);
    t->peer_id = p->peer_id;
    t->region = rstore__region_dup(p->region);
    t->state.applied_index = p->ps.applied_index;
    t->state.truncated_index = p->ps.truncated_index;
    t->state.truncated_term = p->ps.truncated_term;
    t->term = p->applied_term;
    rstore__apply_push(&p->store->apply, t, t);
}

void rstore__peer_free(rstore_peer *p)
{
    if (p == NULL)
        return;
    rstore__peer_fail_all(p, TKV_ECLOSED);
    raft_node_free(p->raft);
    rstore__ps_deinit(&p->ps);
    rstore__region_free(p->region);
    for (size_t i = 0; i < p->n_split_regions; i++)
        rstore__region_free(p->split_regions[i]);
    tkv_free(p->split_regions);
    tkv_free(p->props);
    if (p->mb)
        rstore__mailbox_unref(p->mb);
    tkv_free(p);
}

bool rstore__peer_is_leader(const rstore_peer *p)
{
    return raft_node_state(p->raft) == RAFT_STATE_LEADER;
}

/* ---- proposals ---------------------------------------------------------------------- */

static void props_push(rstore_peer *p, uint64_t index, uint64_t term, rstore_cb *cb)
{
    if (p->props_len == p->props_cap) {
        size_t cap = p->props_cap ? p->props_cap * 2 : 64;
        rstore_proposal *np = tkv_xcalloc(cap, sizeof(*np));
        for (size_t i = 0; i < p->props_len; i++)
            np[i] = p->props[(p->props_head + i) % p->props_cap];
        tkv_free(p->props);
        p->props = np;
        p->props_cap = cap;
        p->props_head = 0;
    }
    rstore_proposal *pr = &p->props[(p->props_head + p->props_len) % p->props_cap];
    pr->index = index;
    pr->term = term;
    pr->cb = *cb;
    cb->kind = RSTORE_CB_NONE;
    p->props_len++;
}

/* Returns the oldest proposal, or NULL. */
rstore_proposal *rstore__peer_props_front(rstore_peer *p)
{
    return p->props_len ? &p->props[p->props_head] : NULL;
}

void rstore__peer_props_pop(rstore_peer *p)
{
    p->props_head = (p->props_head + 1) % p->props_cap;
    p->props_len--;
}

/* Returns the leader's metapb peer (a copy for an error), or NULL. */
static const Metapb__Peer *leader_peer(rstore_peer *p)
{
    uint64_t lead = raft_node_leader(p->raft);
    if (lead == RAFT_NONE || !p->initialized)
        return NULL;
    return rstore__region_peer(p->region, lead);
}

Errorpb__Error *rstore__peer_not_leader(rstore_peer *p)
{
    return stor_rerr_not_leader(p->region_id, leader_peer(p));
}

/* EpochNotMatch with the current region and the regions its last split made. */
static Errorpb__Error *epoch_not_match(rstore_peer *p)
{
    const Metapb__Region *list[17];
    size_t n = 0;
    list[n++] = p->region;
    for (size_t i = 0; i < p->n_split_regions && n < TKV_ARRAY_LEN(list); i++)
        if (p->split_regions[i]->id != p->region_id)
            list[n++] = p->split_regions[i];
    return stor_rerr_epoch_not_match(list, n);
}

Errorpb__Error *rstore__peer_check(rstore_peer *p, const stor_ctx *ctx, bool check_leader)
{
    if (!p->initialized || p->destroying)
        return stor_rerr_region_not_found(p->region_id);
    if (check_leader && !rstore__peer_is_leader(p))
        return rstore__peer_not_leader(p);
    /* TiKV checks only the version for data requests: membership changes do not move keys. */
    if (ctx->has_epoch && ctx->version != p->region->region_epoch->version)
        return epoch_not_match(p);
    /* TiKV's check_term: a request from more than one term ago was meant for an old
     * leadership. */
    if (check_leader && ctx->term != 0 && raft_node_term(p->raft) > ctx->term + 1)
        return stor_rerr_stale_command();
    return NULL;
}

static uint64_t last_index_of(rstore_peer *p)
{
    raft_status st;
    raft_node_status(p->raft, &st);
    return st.last_index;
}

static bool keys_in_region(rstore_peer *p, const rstore_write_req *w, tkv_slice *bad)
{
    if (!w->has_keys)
        return true;
    const Metapb__Region *r = p->region;
    if (!rstore__key_in_region(r, tkv_buf_slice(&w->min_key))) {
        *bad = tkv_buf_slice(&w->min_key);
        return false;
    }
    if (!rstore__key_in_region(r, tkv_buf_slice(&w->max_key))) {
        *bad = tkv_buf_slice(&w->max_key);
        return false;
    }
    if (w->max_end.len && r->end_key.len &&
        tkv_slice_cmp(tkv_buf_slice(&w->max_end), tkv_slice_of(r->end_key.data, r->end_key.len)) >
            0) {
        *bad = tkv_buf_slice(&w->max_end);
        return false;
    }
    return true;
}

/* Proposes @data (a whole RaftCmdRequest) and records @cb for index/term matching. */
static int propose_data(rstore_peer *p, tkv_slice data, rstore_cb *cb)
{
    uint64_t term = raft_node_term(p->raft);
    int rc = raft_node_propose(p->raft, data.data, data.len, NULL, 0);
    if (rc != 0)
        return rc;
    props_push(p, last_index_of(p), term, cb);
    return 0;
}

/* Answers a proposal that Raft refused. */
static void refuse(rstore_peer *p, rstore_cb *cb, int rc)
{
    if (rc == TKV_EDROPPED || rc == TKV_ENOTLEADER)
        rstore__cb_done(cb, 0, rstore__peer_not_leader(p));
    else if (rc == TKV_EBUSY)
        rstore__cb_done(cb, 0, stor_rerr_server_is_busy("raft is busy", 20));
    else
        rstore__cb_done(cb, rc, NULL);
}

static void on_write(rstore_peer *p, rstore_write_req *w)
{
    Errorpb__Error *err = rstore__peer_check(p, &w->ctx, true);
    if (err == NULL && p->pending_rd != NULL)
        err = rstore__peer_not_leader(p);
    tkv_slice bad;
    if (err == NULL && !keys_in_region(p, w, &bad))
        err = stor_rerr_key_not_in_region(bad, p->region);
    if (err != NULL) {
        rstore__cb_done(&w->cb, 0, err);
        return;
    }
    const Metapb__RegionEpoch *ep = p->region->region_epoch;
    const Metapb__Peer *self = rstore__region_peer(p->region, p->peer_id);
    tkv_buf data;
    tkv_buf_init(&data);
    int rc = rstore__cmd_build(p->region_id, self, ep->conf_ver, ep->version,
                               raft_node_term(p->raft), tkv_buf_slice(&w->cmd), &data);
    if (rc == 0 && data.len > p->store->opts.raft_entry_max_size) {
        rstore__cb_done(&w->cb, 0, stor_rerr_raft_entry_too_large(p->region_id, data.len));
        tkv_buf_deinit(&data);
        return;
    }
    if (rc == 0)
        rc = propose_data(p, tkv_buf_slice(&data), &w->cb);
    tkv_buf_deinit(&data);
    if (rc != 0) {
        refuse(p, &w->cb, rc);
        return;
    }
    tkv_series_inc(p->store->m.proposal_normal);
    tkv_series_inc(p->store->m.proposal_all);
}

void rstore__peer_propose_admin(rstore_peer *p, const RaftCmdpb__AdminRequest *admin, rstore_cb *cb)
{
    if (!rstore__peer_is_leader(p) || p->pending_rd) {
        rstore__cb_done(cb, 0, rstore__peer_not_leader(p));
        return;
    }
    tkv_buf body, data;
    tkv_buf_init(&body);
    tkv_buf_init(&data);
    const Metapb__RegionEpoch *ep = p->region->region_epoch;
    int rc = rstore__cmd_admin_body(admin, &body);
    if (rc == 0)
        rc = rstore__cmd_build(p->region_id, rstore__region_peer(p->region, p->peer_id),
                               ep->conf_ver, ep->version, raft_node_term(p->raft),
                               tkv_buf_slice(&body), &data);
    if (rc == 0)
        rc = propose_data(p, tkv_buf_slice(&data), cb);
    tkv_buf_deinit(&body);
    tkv_buf_deinit(&data);
    if (rc != 0)
        refuse(p, cb, rc);
}

/* Proposes a membership change (PD's ChangePeer): one at a time, never removing the
 * leader itself (PD transfers leadership first). */
static void propose_conf_change(rstore_peer *p, raft_conf_change_type type, uint64_t peer_id,
                                uint64_t store_id)
{
    if (!rstore__peer_is_leader(p) || p->pending_rd || p->pending_conf)
        return;
    if (type == RAFT_CONF_REMOVE_NODE && peer_id == p->peer_id) {
        TKV_LOG_WARN("refusing to remove the leader itself", TKV_LF_U64("region_id", p->region_id));
        return;
    }
    Metapb__Peer peer = METAPB__PEER__INIT;
    peer.id = peer_id;
    peer.store_id = store_id;
    peer.role =
        type == RAFT_CONF_ADD_LEARNER_NODE ? METAPB__PEER_ROLE__Learner : METAPB__PEER_ROLE__Voter;
    RaftCmdpb__ChangePeerRequest cp = RAFT_CMDPB__CHANGE_PEER_REQUEST__INIT;
    cp.change_type = (Eraftpb__ConfChangeType)type;
    cp.peer = &peer;
    RaftCmdpb__AdminRequest admin = RAFT_CMDPB__ADMIN_REQUEST__INIT;
    admin.cmd_type = RAFT_CMDPB__ADMIN_CMD_TYPE__ChangePeer;
    admin.change_peer = &cp;
    tkv_buf body, data;
    tkv_buf_init(&body);
    tkv_buf_init(&data);
    const Metapb__RegionEpoch *ep = p->region->region_epoch;
    int rc = rstore__cmd_admin_body(&admin, &body);
    if (rc == 0)
        rc = rstore__cmd_build(p->region_id, rstore__region_peer(p->region, p->peer_id),
                               ep->conf_ver, ep->version, raft_node_term(p->raft),
                               tkv_buf_slice(&body), &data);
    raft_conf_change cc = {
        .change_type = type, .node_id = peer_id, .context = tkv_buf_slice(&data)};
    uint64_t term = raft_node_term(p->raft);
    if (rc == 0)
        rc = raft_node_propose_conf_change(p->raft, &cc);
    tkv_buf_deinit(&body);
    tkv_buf_deinit(&data);
    if (rc != 0) {
        TKV_LOG_INFO("conf change not proposed", TKV_LF_U64("region_id", p->region_id),
                     TKV_LF_ERR("err", rc));
        return;
    }
    p->pending_conf = true;
    p->pending_conf_index = last_index_of(p);
    rstore_cb none = {.kind = RSTORE_CB_NONE};
    props_push(p, p->pending_conf_index, term, &none);
    tkv_series_inc(p->store->m.proposal_conf_change);
    tkv_series_inc(p->store->m.proposal_all);
    TKV_LOG_INFO("proposed conf change", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_STR("change", type == RAFT_CONF_REMOVE_NODE        ? "remove"
                                      : type == RAFT_CONF_ADD_LEARNER_NODE ? "add learner"
                                                                           : "add voter"),
                 TKV_LF_U64("peer_id", peer_id), TKV_LF_U64("store_id", store_id));
}

void rstore__peer_change_peer(rstore_peer *p, raft_conf_change_type type, uint64_t peer_id,
                              uint64_t store_id)
{
    propose_conf_change(p, type, peer_id, store_id);
}

void rstore__peer_transfer_leader(rstore_peer *p, uint64_t to_store_id)
{
    if (!rstore__peer_is_leader(p) || p->pending_rd)
        return;
    const Metapb__Peer *to = rstore__region_store_peer(p->region, to_store_id);
    if (to == NULL || to->id == p->peer_id || to->role == METAPB__PEER_ROLE__Learner)
        return;
    /* The target campaigns as soon as it gets MsgTimeoutNow: no lease reads from here on. */
    rstore__reader_invalidate(p->mb->reader);
    int rc = raft_node_transfer_leader(p->raft, to->id);
    tkv_series_inc(p->store->m.proposal_transfer_leader);
    TKV_LOG_INFO("transferring leader", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_U64("to_peer", to->id), TKV_LF_U64("to_store", to_store_id),
                 TKV_LF_ERR("result", rc));
}

/* ---- failure and destruction -------------------------------------------------------- */

void rstore__peer_fail_all(rstore_peer *p, int rc)
{
    while (p->props_len) {
        rstore_proposal *pr = rstore__peer_props_front(p);
        rstore__cb_done(&pr->cb, rc, rc == 0 ? stor_rerr_region_not_found(p->region_id) : NULL);
        rstore__peer_props_pop(p);
    }
    rstore_read_req *r = p->reads_head;
    p->reads_head = p->reads_tail = NULL;
    while (r) {
        rstore_read_req *next = r->next;
        r->cb(r->ud, rc, rc == 0 ? stor_rerr_region_not_found(p->region_id) : NULL, NULL);
        tkv_free(r);
        r = next;
    }
}

void rstore__peer_start_destroy(rstore_peer *p, bool keep_data)
{
    if (p->destroying)
        return;
    rstore *s = p->store;
    p->destroying = true;
    rstore__reader_invalidate(p->mb->reader);
    TKV_LOG_INFO("destroying peer", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_U64("peer_id", p->peer_id), TKV_LF_BOOL("initialized", p->initialized));
    rstore__peer_fail_all(p, 0);
    if (p->initialized) {
        tkv_slice start = tkv_slice_of(p->region->start_key.data, p->region->start_key.len);
        tkv_slice end = tkv_slice_of(p->region->end_key.data, p->region->end_key.len);
        if (rstore__meta_overlap(&s->meta, start, end, p->region_id) != 0)
            keep_data = true; /* another replica here owns (part of) the range now */
    } else {
        keep_data = true;
    }
    rstore__meta_remove(&s->meta, p->region_id);
    rstore_apply_task *t = rstore__apply_task_new(RSTORE_APPLY_DESTROY, p->region_id);
    t->peer_id = p->peer_id;
    t->region = rstore__region_dup(p->region);
    t->keep_data = keep_data;
    rstore__apply_push(&s->apply, t, t);
}

/* ---- ticks -------------------------------------------------------------------------- */

void rstore__peer_tick(rstore_peer *p, uint64_t now_ms)
{
    if (p->destroying || p->pending_rd)
        return;
    if (raft_node_tick(p->raft) == 0) {
        raft_status st;
        raft_node_status(p->raft, &st);
        rstore__peer_note_tick(p, st.ticks, tkv_clock_mono_ns());
    }
    p->ticks++;
    rstore__peer_expire_reads(p);
    if (!rstore__peer_is_leader(p))
        return;
    rstore *s = p->store;
    /* A pending peer caught up: tell PD now, its operators wait for that (TiKV does so). */
    if (p->last_hb_pending > 0 && rstore__peer_pending_count(p) < p->last_hb_pending)
        p->next_pd_hb_ms = 0;
    if (now_ms >= p->next_pd_hb_ms) {
        p->next_pd_hb_ms = now_ms + s->opts.pd_heartbeat_tick_ms;
        rstore__peer_heartbeat_pd(p);
    }
    if (now_ms >= p->next_gc_ms) {
        p->next_gc_ms = now_ms + s->opts.raft_log_gc_tick_ms;
        rstore__peer_maybe_gc_log(p, false);
    }
    if (now_ms >= p->next_split_check_ms) {
        p->next_split_check_ms = now_ms + s->opts.split_check_tick_ms;
        rstore__peer_maybe_split_check(p, false);
    }
}

/* ---- dispatch ----------------------------------------------------------------------- */

void rstore__peer_info(rstore_peer *p, rstore_region_info *info)
{
    raft_status st;
    raft_node_status(p->raft, &st);
    memset(info, 0, sizeof(*info));
    info->found = true;
    info->region_id = p->region_id;
    info->peer_id = p->peer_id;
    info->leader_id = st.soft_state.leader_id;
    info->is_leader = st.soft_state.raft_state == RAFT_STATE_LEADER;
    info->initialized = p->initialized;
    info->term = st.hard_state.term;
    info->commit_index = st.hard_state.commit;
    info->applied_index = p->applied_index;
    info->first_index = p->ps.truncated_index + 1;
    info->last_index = p->ps.last_index;
    if (p->region->region_epoch) {
        info->conf_ver = p->region->region_epoch->conf_ver;
        info->version = p->region->region_epoch->version;
    }
    info->n_peers = p->region->n_peers;
    info->approximate_size = p->approx_size;
}

void rstore__peer_handle(rstore_peer *p, rstore_msg *m)
{
    if (p->destroying && m->type != RSTORE_MSG_APPLY_RES && m->type != RSTORE_MSG_QUERY) {
        rstore__msg_free(m, 0);
        return;
    }
    switch (m->type) {
    case RSTORE_MSG_RAFT:
    case RSTORE_MSG_SNAP_RECEIVED:
        rstore__peer_on_raft(p, m->u.raft);
        m->u.raft = NULL;
        break;
    case RSTORE_MSG_WRITE:
        on_write(p, m->u.write);
        break;
    case RSTORE_MSG_READ:
        rstore__peer_on_read(p, m->u.read);
        m->u.read = NULL;
        break;
    case RSTORE_MSG_APPLY_RES:
        rstore__peer_on_apply_res(p, m->u.apply_res);
        break;
    case RSTORE_MSG_SNAP_GEN: {
        rstore_snap_gen *g = m->u.snap_gen;
        p->ps.gen_pending = false;
        if (g->rc == 0) {
            raft_snapshot_deinit(&p->ps.gen);
            p->ps.gen = g->snap;
            p->ps.gen_version = g->version;
            p->ps.gen_conf_ver = g->conf_ver;
            memset(&g->snap, 0, sizeof(g->snap));
        }
        break;
    }
    case RSTORE_MSG_SNAP_STATUS:
        if (m->flags & 1)
            raft_snapshot_deinit(&p->ps.gen); /* its file is gone: generate a new one */
        if (!p->pending_rd)
            TKV_IGNORE(raft_node_report_snapshot(p->raft, m->u64a, m->u64b != 0));
        break;
    case RSTORE_MSG_UNREACHABLE:
        if (!p->pending_rd)
            TKV_IGNORE(raft_node_report_unreachable(p->raft, m->u64a));
        break;
    case RSTORE_MSG_SPLIT_CHECK:
        rstore__peer_on_split_check(p, m->u.split_check);
        break;
    case RSTORE_MSG_SPLIT_IDS:
        rstore__peer_on_split_ids(p, m->u.split_ids);
        break;
    case RSTORE_MSG_SPLIT_REQ:
        rstore__peer_on_split_req(p, m->u.split_req); /* takes the request */
        m->u.split_req = NULL;
        break;
    case RSTORE_MSG_PD_OP:
        rstore__peer_on_pd_op(p, m->u.pd_op);
        break;
    case RSTORE_MSG_CHANGE_PEER: {
        raft_conf_change_type t = (m->flags & 1)   ? RAFT_CONF_REMOVE_NODE
                                  : (m->flags & 2) ? RAFT_CONF_ADD_LEARNER_NODE
                                                   : RAFT_CONF_ADD_NODE;
        propose_conf_change(p, t, m->u64a, m->u64b);
        break;
    }
    case RSTORE_MSG_TRANSFER:
        rstore__peer_transfer_leader(p, m->u64a);
        break;
    case RSTORE_MSG_COMPACT:
        rstore__peer_maybe_gc_log(p, (m->flags & 1) != 0);
        break;
    case RSTORE_MSG_CAMPAIGN:
        if (!p->pending_rd && p->initialized)
            TKV_IGNORE(raft_node_campaign(p->raft));
        break;
    case RSTORE_MSG_QUERY:
        rstore__peer_info(p, &m->u.query->info);
        break;
    case RSTORE_MSG_DESTROY:
        if (m->u64a == p->peer_id)
            rstore__peer_start_destroy(p, false);
        break;
    case RSTORE_MSG_WAKE: /* store-level only (the poller's ctl list) */
        break;
    }
    rstore__msg_free(m, TKV_ECLOSED);
}
