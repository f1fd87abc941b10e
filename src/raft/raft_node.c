/*
 * raft_node.c: the public node (etcd RawNode): construction from storage, the calls that
 * feed it (tick, step, propose, read_index, ...), and the Ready / advance hand-off.
 */
#include <stdarg.h>
#include <stdio.h>

#include "raft/raft_int.h"

/* ---- configuration ------------------------------------------------------------------- */

void raft_config_default(raft_config *cfg, uint64_t id)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->id = id;
    cfg->election_tick = 10;
    cfg->heartbeat_tick = 2;
    cfg->max_size_per_msg = 1024 * 1024;
    cfg->max_inflight_msgs = 256;
    cfg->check_quorum = true;
    cfg->pre_vote = true;
    cfg->read_only_option = RAFT_READ_ONLY_SAFE;
    cfg->seed = id;
}

int raft_config_validate(const raft_config *cfg, const char **why)
{
    const char *w = NULL;
    if (cfg->id == RAFT_NONE)
        w = "id must not be 0";
    else if (cfg->heartbeat_tick < 1)
        w = "heartbeat_tick must be at least 1";
    else if (cfg->election_tick <= cfg->heartbeat_tick)
        w = "election_tick must be greater than heartbeat_tick";
    else if (cfg->max_inflight_msgs < 1)
        w = "max_inflight_msgs must be at least 1";
    else if (cfg->read_only_option == RAFT_READ_ONLY_LEASE_BASED && !cfg->check_quorum)
        w = "lease-based reads need check_quorum";
    else if (cfg->read_only_option != RAFT_READ_ONLY_SAFE &&
             cfg->read_only_option != RAFT_READ_ONLY_LEASE_BASED)
        w = "unknown read_only_option";
    if (why)
        *why = w;
    return w ? TKV_ECONFIG : 0;
}

/* ---- tracing and sending --------------------------------------------------------------- */

void raft__trace(const raft_node *r, const char *fmt, ...)
{
    if (!r->cfg.tracer)
        return;
    char line[320];
    int n = snprintf(line, sizeof(line), "[%llu t%llu %s] ", (unsigned long long)r->id,
                     (unsigned long long)r->term, raft_state_name(r->state));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    r->cfg.tracer(r->cfg.tracer_ctx, line);
}

static int msg_vec_push(raft__msg_vec *v, raft_message *m)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        raft_message *items = tkv_realloc(v->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = *m;
    memset(m, 0, sizeof(*m));
    return 0;
}

void raft__send(raft_node *r, raft_message *m)
{
    m->from = r->id;
    raft_message_type t = m->msg_type;
    if (t == RAFT_MSG_REQUEST_VOTE || t == RAFT_MSG_REQUEST_PRE_VOTE ||
        t == RAFT_MSG_REQUEST_VOTE_RESPONSE || t == RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE) {
        /* Votes carry the term they are about, set by the caller. */
        TKV_ASSERT(m->term != 0);
    } else if (t != RAFT_MSG_PROPOSE && t != RAFT_MSG_READ_INDEX && t != RAFT_MSG_TRANSFER_LEADER) {
        m->term = r->term;
    }
    /* Thesis 10.2.1: a leader may send while its own write is in flight, as long as its term
     * is durable. Everything else depends on state the caller persists first (a vote, a term,
     * appended entries). */
    bool now = r->state == RAFT_STATE_LEADER && r->term == r->persisted_term;
    if (msg_vec_push(now ? &r->msgs : &r->msgs_after, m) != 0) {
        raft__trace(r, "dropped %s to %llu: no memory", raft_message_type_name(t),
                    (unsigned long long)m->to);
        raft_message_deinit(m);
    }
}

bool raft__promotable(raft_node *r)
{
    raft__progress *pr = raft__tracker_get(&r->trk, r->id);
    return pr && !pr->is_learner && !r->log.u.snapshot;
}

/* ---- construction -------------------------------------------------------------------- */

int raft_node_new(const raft_config *cfg, const raft_storage *storage, raft_node **out)
{
    *out = NULL;
    if (raft_config_validate(cfg, NULL) != 0)
        return TKV_ECONFIG;
    raft_node *r = tkv_calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->id = cfg->id;
    r->cfg = *cfg;
    tkv_rng_seed(&r->rng, cfg->seed);
    raft__tracker_init(&r->trk, cfg->max_inflight_msgs);
    raft__read_only_init(&r->ro);
    int rc = raft__log_init(&r->log, storage, cfg->max_committed_size_per_ready);
    if (rc != 0)
        goto fail;
    raft_hard_state hs;
    raft_conf_state cs;
    memset(&hs, 0, sizeof(hs));
    memset(&cs, 0, sizeof(cs));
    rc = storage->initial_state(storage->ctx, &hs, &cs);
    if (rc != 0)
        goto fail;
    raft__tracker trk;
    rc = raft__tracker_build(r, &cs, &trk);
    if (rc != 0)
        goto fail;
    raft__tracker_install(r, &trk);
    uint64_t last = raft__log_last_index(&r->log);
    if (hs.commit > last) {
        rc = TKV_ECONFIG; /* the log lost committed entries: refuse to run on it */
        goto fail;
    }
    /* A commit index older than the snapshot was simply not synced: the snapshot proves
     * more is committed. */
    raft__log_commit_to(&r->log, hs.commit);
    if (cfg->applied > last) {
        rc = TKV_ECONFIG; /* applied entries the log does not have */
        goto fail;
    }
    /* Applied entries were committed, whether or not that commit index reached the disk. */
    raft__log_commit_to(&r->log, cfg->applied);
    raft__log_applied_to(&r->log, cfg->applied);
    r->term = hs.term;
    r->vote = hs.vote;
    r->ticks = 1; /* stamps start at 1: 0 means "no acknowledgement" */
    raft__become_follower(r, hs.term, RAFT_NONE);
    r->startup_lease = true;
    r->prev_hs.term = r->term;
    r->prev_hs.vote = r->vote;
    r->prev_hs.commit = r->log.committed;
    r->persisted_term = r->term;
    r->prev_ss.leader_id = RAFT_NONE;
    r->prev_ss.raft_state = RAFT_STATE_FOLLOWER;
    raft__trace(r, "started: commit %llu, applied %llu, last %llu", (unsigned long long)hs.commit,
                (unsigned long long)r->log.applied, (unsigned long long)last);
    *out = r;
    return 0;
fail:
    raft_node_free(r);
    return rc;
}

void raft_node_free(raft_node *r)
{
    if (!r)
        return;
    raft__log_deinit(&r->log);
    raft__tracker_deinit(&r->trk);
    raft__read_only_deinit(&r->ro);
    raft__msg_vec_deinit(&r->pending_read_msgs);
    raft__msg_vec_deinit(&r->msgs);
    raft__msg_vec_deinit(&r->msgs_after);
    raft__read_state_vec_deinit(&r->read_states);
    raft_entry_vec_deinit(&r->rd_committed);
    raft__msg_vec_deinit(&r->rd_msgs);
    raft__msg_vec_deinit(&r->rd_msgs_after);
    raft__read_state_vec_deinit(&r->rd_read_states);
    tkv_free(r);
}

/* ---- inputs -------------------------------------------------------------------------- */

int raft_node_tick(raft_node *r)
{
    if (r->ready_out)
        return TKV_EBUSY;
    raft__tick(r);
    return 0;
}

int raft_node_campaign(raft_node *r)
{
    if (r->ready_out)
        return TKV_EBUSY;
    raft_message m = {0};
    m.msg_type = RAFT_MSG_HUP;
    m.from = r->id;
    return raft__step(r, &m);
}

static bool is_local_type(raft_message_type t)
{
    return t == RAFT_MSG_HUP || t == RAFT_MSG_BEAT || t == RAFT_MSG_UNREACHABLE ||
           t == RAFT_MSG_SNAP_STATUS || t == RAFT_MSG_CHECK_QUORUM;
}

/* Returns true when every pointer of @m agrees with its length (bytes from the network are
 * converted by the transport; a bad conversion must not crash the node). */
static bool well_formed(const raft_message *m)
{
    if ((m->n_entries > 0 && !m->entries) || (m->context_len > 0 && !m->context))
        return false;
    for (size_t i = 0; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        if ((e->data_len > 0 && !e->data) || (e->context_len > 0 && !e->context) ||
            (unsigned)e->entry_type > RAFT_ENTRY_CONF_CHANGE)
            return false;
    }
    if (m->snapshot && m->snapshot->data_len > 0 && !m->snapshot->data)
        return false;
    /* Term 0 marks a local message: only a proposal, a read request or a transfer request that
     * a follower forwards travels without a term. Any other message must carry its sender's
     * term, or the term rules are skipped (a term-0 append turned a candidate into a follower of
     * term 0, losing its term and vote; a term-0 vote request tripped an assertion). */
    if (m->term >= RAFT_TERM_LIMIT || m->log_term >= RAFT_TERM_LIMIT ||
        m->index >= RAFT_INDEX_LIMIT || m->commit >= RAFT_INDEX_LIMIT ||
        m->reject_hint >= RAFT_INDEX_LIMIT)
        return false; /* term + 1 and index + n must never wrap */
    for (size_t i = 0; i < m->n_entries; i++)
        if (m->entries[i].term >= RAFT_TERM_LIMIT || m->entries[i].index >= RAFT_INDEX_LIMIT)
            return false;
    if (m->snapshot && (m->snapshot->metadata.term >= RAFT_TERM_LIMIT ||
                        m->snapshot->metadata.index >= RAFT_INDEX_LIMIT))
        return false; /* a snapshot at 2^64-1 left a log that could not restart */
    return m->term != 0 || m->msg_type == RAFT_MSG_PROPOSE || m->msg_type == RAFT_MSG_READ_INDEX ||
           m->msg_type == RAFT_MSG_TRANSFER_LEADER;
}

int raft_node_step(raft_node *r, const raft_message *m)
{
    if (r->ready_out)
        return TKV_EBUSY;
    if ((unsigned)m->msg_type >= RAFT_MSG_TYPE_COUNT || is_local_type(m->msg_type) ||
        !well_formed(m))
        return TKV_ECORRUPT;
    if (m->to != RAFT_NONE && m->to != r->id) {
        raft__trace(r, "ignored %s for %llu", raft_message_type_name(m->msg_type),
                    (unsigned long long)m->to);
        return 0;
    }
    return raft__step(r, m);
}

/* Steps a local message of @t carrying one entry (a proposal, or a read request's ctx). */
static int step_one_entry(raft_node *r, raft_message_type t, raft_entry_type type, const void *data,
                          size_t len, const void *context, size_t context_len)
{
    raft_entry e = {type, 0, 0, (uint8_t *)data, len, (uint8_t *)context, context_len};
    raft_message m = {0};
    m.msg_type = t;
    m.from = r->id;
    m.entries = &e;
    m.n_entries = 1;
    return raft__step(r, &m);
}

static int propose_entry(raft_node *r, raft_entry_type type, const void *data, size_t len,
                         const void *context, size_t context_len)
{
    return step_one_entry(r, RAFT_MSG_PROPOSE, type, data, len, context, context_len);
}

int raft_node_propose(raft_node *r, const void *data, size_t len, const void *context,
                      size_t context_len)
{
    if (r->ready_out)
        return TKV_EBUSY;
    return propose_entry(r, RAFT_ENTRY_NORMAL, data, len, context, context_len);
}

int raft_node_propose_conf_change(raft_node *r, const raft_conf_change *cc)
{
    if (r->ready_out)
        return TKV_EBUSY;
    if (r->state == RAFT_STATE_LEADER && r->pending_conf_index > r->log.applied)
        return TKV_EBUSY;
    if (cc->change_type != RAFT_CONF_REMOVE_NODE && !raft__tracker_get(&r->trk, cc->node_id) &&
        r->trk.n >= RAFT_MAX_MEMBERS)
        return TKV_ETOOLARGE;
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = raft_conf_change_encode(cc, &b);
    if (rc == 0)
        rc = propose_entry(r, RAFT_ENTRY_CONF_CHANGE, b.data, b.len, NULL, 0);
    tkv_buf_deinit(&b);
    return rc;
}

int raft_node_read_index(raft_node *r, const void *ctx, size_t len)
{
    if (r->ready_out)
        return TKV_EBUSY;
    return step_one_entry(r, RAFT_MSG_READ_INDEX, RAFT_ENTRY_NORMAL, ctx, len, NULL, 0);
}

/* Steps a local request about peer @from. */
static int step_about_peer(raft_node *r, raft_message_type t, uint64_t from, bool reject)
{
    if (r->ready_out)
        return TKV_EBUSY;
    raft_message m = {0};
    m.msg_type = t;
    m.from = from;
    m.reject = reject;
    return raft__step(r, &m);
}

int raft_node_transfer_leader(raft_node *r, uint64_t transferee)
{
    return step_about_peer(r, RAFT_MSG_TRANSFER_LEADER, transferee, false);
}

int raft_node_report_unreachable(raft_node *r, uint64_t id)
{
    return step_about_peer(r, RAFT_MSG_UNREACHABLE, id, false);
}

int raft_node_report_snapshot(raft_node *r, uint64_t id, bool failed)
{
    return step_about_peer(r, RAFT_MSG_SNAP_STATUS, id, failed);
}

/* ---- Ready / advance ----------------------------------------------------------------- */

static raft_soft_state soft_state(const raft_node *r)
{
    raft_soft_state ss = {r->lead, r->state};
    return ss;
}

static raft_hard_state hard_state(const raft_node *r)
{
    raft_hard_state hs = {r->term, r->vote, r->log.committed};
    return hs;
}

static bool hs_equal(raft_hard_state a, raft_hard_state b)
{
    return a.term == b.term && a.vote == b.vote && a.commit == b.commit;
}

bool raft_node_has_ready(const raft_node *r)
{
    if (r->ready_out)
        return false;
    raft_soft_state ss = soft_state(r);
    if (ss.leader_id != r->prev_ss.leader_id || ss.raft_state != r->prev_ss.raft_state)
        return true;
    if (!hs_equal(hard_state(r), r->prev_hs))
        return true;
    if (r->log.u.snapshot || r->log.u.n > 0)
        return true;
    if (r->msgs.len || r->msgs_after.len || r->read_states.len)
        return true;
    return raft__log_has_next_committed(&r->log);
}

int raft_node_ready(raft_node *r, raft_ready **out)
{
    *out = NULL;
    if (r->ready_out)
        return TKV_EBUSY;
    raft_entry_vec_truncate(&r->rd_committed, 0);
    int rc = raft__log_next_committed(&r->log, &r->rd_committed);
    if (rc != 0)
        return rc;
    raft_ready *rd = &r->rd;
    memset(rd, 0, sizeof(*rd));
    rd->soft_state = soft_state(r);
    rd->has_soft_state = rd->soft_state.leader_id != r->prev_ss.leader_id ||
                         rd->soft_state.raft_state != r->prev_ss.raft_state;
    rd->hard_state = hard_state(r);
    rd->has_hard_state = !hs_equal(rd->hard_state, r->prev_hs);
    rd->entries = r->log.u.ents;
    rd->n_entries = r->log.u.n;
    r->rd_entries_last_index = 0;
    if (rd->n_entries) {
        r->rd_entries_last_index = rd->entries[rd->n_entries - 1].index;
        r->rd_entries_last_term = rd->entries[rd->n_entries - 1].term;
    }
    rd->snapshot = r->log.u.snapshot;
    r->rd_snapshot_index = rd->snapshot ? rd->snapshot->metadata.index : 0;
    rd->committed_entries = r->rd_committed.items;
    rd->n_committed_entries = r->rd_committed.len;
    /* Hand the outbound queues over by swapping with the (empty) Ready queues. */
    raft__msg_vec tmp = r->rd_msgs;
    r->rd_msgs = r->msgs;
    r->msgs = tmp;
    tmp = r->rd_msgs_after;
    r->rd_msgs_after = r->msgs_after;
    r->msgs_after = tmp;
    raft__read_state_vec rtmp = r->rd_read_states;
    r->rd_read_states = r->read_states;
    r->read_states = rtmp;
    rd->messages = r->rd_msgs.items;
    rd->n_messages = r->rd_msgs.len;
    rd->persisted_messages = r->rd_msgs_after.items;
    rd->n_persisted_messages = r->rd_msgs_after.len;
    rd->read_states = r->rd_read_states.items;
    rd->n_read_states = r->rd_read_states.len;
    rd->must_sync = rd->n_entries > 0 || rd->snapshot != NULL ||
                    rd->hard_state.term != r->prev_hs.term ||
                    rd->hard_state.vote != r->prev_hs.vote;
    r->prev_ss = rd->soft_state;
    r->prev_hs = rd->hard_state;
    r->ready_out = true;
    *out = rd;
    return 0;
}

static void msg_vec_clear(raft__msg_vec *v)
{
    for (size_t i = 0; i < v->len; i++)
        raft_message_deinit(&v->items[i]);
    v->len = 0;
}

int raft_node_advance(raft_node *r)
{
    if (!r->ready_out)
        return TKV_EBUSY;
    raft_ready *rd = &r->rd;
    if (r->rd_entries_last_index)
        raft__log_stable_to(&r->log, r->rd_entries_last_index, r->rd_entries_last_term);
    if (r->rd_snapshot_index) {
        raft__log_stable_snap_to(&r->log, r->rd_snapshot_index);
        raft__log_applied_to(&r->log, r->rd_snapshot_index);
    }
    if (rd->n_committed_entries)
        raft__log_applied_to(&r->log, rd->committed_entries[rd->n_committed_entries - 1].index);
    if (r->state == RAFT_STATE_LEADER) {
        /* Committed proposals no longer count against max_uncommitted_size. */
        for (size_t i = 0; i < rd->n_committed_entries; i++) {
            uint64_t sz = raft_entry_size(&rd->committed_entries[i]);
            r->uncommitted_size = sz < r->uncommitted_size ? r->uncommitted_size - sz : 0;
        }
    }
    r->persisted_term = rd->hard_state.term;
    raft_entry_vec_truncate(&r->rd_committed, 0);
    msg_vec_clear(&r->rd_msgs);
    msg_vec_clear(&r->rd_msgs_after);
    for (size_t i = 0; i < r->rd_read_states.len; i++)
        tkv_free(r->rd_read_states.items[i].request_ctx);
    r->rd_read_states.len = 0;
    memset(rd, 0, sizeof(*rd));
    r->ready_out = false;
    if (r->state == RAFT_STATE_LEADER)
        raft__leader_persisted(r);
    return 0;
}

/* ---- inspection ---------------------------------------------------------------------- */

void raft_node_status(const raft_node *r, raft_status *st)
{
    memset(st, 0, sizeof(*st));
    st->id = r->id;
    st->hard_state = hard_state(r);
    st->soft_state = soft_state(r);
    st->applied = r->log.applied;
    st->first_index = raft__log_first_index(&r->log);
    st->last_index = raft__log_last_index(&r->log);
    st->persisted_index = raft__log_persisted_index(&r->log);
    st->lead_transferee = r->lead_transferee;
    st->ticks = r->ticks;
    raft__tracker_conf_state(&r->trk, &st->conf_state);
}

uint64_t raft_node_id(const raft_node *r)
{
    return r->id;
}

raft_state_type raft_node_state(const raft_node *r)
{
    return r->state;
}

uint64_t raft_node_leader(const raft_node *r)
{
    return r->lead;
}

uint64_t raft_node_term(const raft_node *r)
{
    return r->term;
}

size_t raft_node_progress(const raft_node *r, raft_progress_info out[RAFT_MAX_MEMBERS])
{
    if (r->state != RAFT_STATE_LEADER)
        return 0;
    for (size_t i = 0; i < r->trk.n; i++) {
        const raft__progress *pr = &r->trk.prs[i];
        out[i].id = pr->id;
        out[i].is_learner = pr->is_learner;
        out[i].match = pr->match;
        out[i].next = pr->next;
        out[i].state = (raft_progress_state)pr->state;
    }
    return r->trk.n;
}

uint64_t raft_node_quorum_ack_tick(const raft_node *r)
{
    if (r->state != RAFT_STATE_LEADER)
        return 0;
    return raft__tracker_quorum_ack(&r->trk, r->id, r->ticks);
}

bool raft_node_lease_valid(const raft_node *r)
{
    return raft__lease_valid(r);
}
