/*
 * raft_replication.c: log replication (Raft paper 5.3): the leader's appends, heartbeats and
 * snapshots, the follower's answers to them, and the commit rule (5.4.2).
 */
#include "raft/raft_int.h"

bool raft__committed_in_current_term(const raft_node *r)
{
    return raft__log_term_or_zero(&r->log, r->log.committed) == r->term;
}

/* Sends a snapshot to @pr because the entries it needs were compacted (thesis 5.1). */
static bool send_snapshot(raft_node *r, raft__progress *pr)
{
    if (!pr->recent_active) {
        /* Do not spend a snapshot on a follower that may be gone. */
        raft__trace(r, "not sending snapshot to %llu: not recently active",
                    (unsigned long long)pr->id);
        return false;
    }
    raft_snapshot *snap = tkv_malloc(sizeof(*snap));
    if (!snap)
        return false;
    int rc = raft__log_snapshot(&r->log, raft__log_first_index(&r->log) - 1, snap);
    if (rc != 0 || snap->metadata.index == 0) {
        if (rc == 0)
            raft_snapshot_deinit(snap);
        tkv_free(snap);
        raft__trace(r, "snapshot for %llu not available: %s", (unsigned long long)pr->id,
                    rc ? tkv_strerror(rc) : "empty");
        return false;
    }
    raft_message m = {0};
    m.msg_type = RAFT_MSG_SNAPSHOT;
    m.to = pr->id;
    m.snapshot = snap;
    raft__trace(r, "sending snapshot %llu/%llu to %llu", (unsigned long long)snap->metadata.index,
                (unsigned long long)snap->metadata.term, (unsigned long long)pr->id);
    raft__progress_become_snapshot(pr, snap->metadata.index);
    raft__send(r, &m);
    return true;
}

bool raft__maybe_send_append(raft_node *r, uint64_t to, bool send_if_empty)
{
    raft__progress *pr = raft__tracker_get(&r->trk, to);
    if (!pr || pr->id == r->id || raft__progress_is_paused(pr))
        return false;
    uint64_t term = 0;
    raft_entry_vec ents;
    raft_entry_vec_init(&ents);
    int trc = raft__log_term(&r->log, pr->next - 1, &term);
    int erc = 0;
    if (trc == 0)
        erc = raft__log_slice(&r->log, pr->next, raft__log_last_index(&r->log) + 1,
                              r->cfg.max_size_per_msg, &ents);
    if (trc == TKV_ECOMPACTED || erc == TKV_ECOMPACTED) {
        raft_entry_vec_deinit(&ents);
        return send_snapshot(r, pr);
    }
    if (trc != 0 || erc != 0) {
        /* Storage unavailable or out of memory: try again on the next round. */
        raft_entry_vec_deinit(&ents);
        return false;
    }
    if (ents.len == 0 && !send_if_empty) {
        raft_entry_vec_deinit(&ents);
        return false;
    }
    raft_message m = {0};
    m.msg_type = RAFT_MSG_APPEND;
    m.to = to;
    m.index = pr->next - 1;
    m.log_term = term;
    m.entries = ents.items;
    m.n_entries = ents.len;
    m.commit = r->log.committed;
    if (ents.len > 0) {
        uint64_t last = ents.items[ents.len - 1].index;
        if (pr->state == RAFT__PR_REPLICATE) {
            /* Pipeline: assume success, bounded by the in-flight window. */
            pr->next = last + 1;
            raft__inflights_add(&pr->ins, last);
        } else if (pr->state == RAFT__PR_PROBE) {
            pr->probe_sent = true;
        }
    }
    raft__send(r, &m);
    return true;
}

void raft__send_append(raft_node *r, uint64_t to)
{
    TKV_IGNORE(raft__maybe_send_append(r, to, true));
}

void raft__bcast_append(raft_node *r)
{
    for (size_t i = 0; i < r->trk.n; i++)
        if (r->trk.prs[i].id != r->id)
            raft__send_append(r, r->trk.prs[i].id);
}

void raft__bcast_heartbeat(raft_node *r, const uint8_t *ctx, size_t ctx_len)
{
    for (size_t i = 0; i < r->trk.n; i++) {
        raft__progress *pr = &r->trk.prs[i];
        if (pr->id == r->id)
            continue;
        raft_message m = {0};
        m.msg_type = RAFT_MSG_HEARTBEAT;
        m.to = pr->id;
        /* A follower may lack entries we committed: never ask it to commit past its match. */
        m.commit = TKV_MIN(pr->match, r->log.committed);
        m.index = r->ticks; /* lease stamp, echoed back */
        if (raft__bytes_dup(ctx, ctx_len, &m.context) != 0)
            continue;
        m.context_len = m.context ? ctx_len : 0;
        raft__send(r, &m);
    }
}

bool raft__maybe_commit(raft_node *r)
{
    return raft__log_maybe_commit(&r->log, raft__tracker_committed(&r->trk), r->term);
}

/* The commit index moved on the leader: answer reads that waited for it, spread it. */
static void leader_commit_advanced(raft_node *r)
{
    raft__release_pending_read_index(r);
    if (!r->cfg.skip_bcast_commit)
        raft__bcast_append(r);
}

int raft__append_entries(raft_node *r, raft_entry *ents, size_t n)
{
    uint64_t li = raft__log_last_index(&r->log);
    for (size_t i = 0; i < n; i++) {
        ents[i].term = r->term;
        ents[i].index = li + 1 + i;
    }
    /* The leader's own progress moves when the caller reports the entries durable
     * (raft__leader_persisted), not here: thesis 10.2.1. */
    return raft__log_append(&r->log, ents, n);
}

void raft__leader_persisted(raft_node *r)
{
    raft__progress *self = raft__tracker_get(&r->trk, r->id);
    if (!self)
        return;
    if (raft__progress_maybe_update(self, raft__log_persisted_index(&r->log)) &&
        raft__maybe_commit(r))
        leader_commit_advanced(r);
}

/* ---- follower side ------------------------------------------------------------------- */

static void send_append_response(raft_node *r, uint64_t to, uint64_t index)
{
    raft_message resp = {0};
    resp.msg_type = RAFT_MSG_APPEND_RESPONSE;
    resp.to = to;
    resp.index = index;
    raft__send(r, &resp);
}

int raft__handle_append(raft_node *r, const raft_message *m)
{
    if (m->index < r->log.committed) {
        /* Everything up to our commit index matches the leader already. */
        send_append_response(r, m->from, r->log.committed);
        return 0;
    }
    bool ok;
    uint64_t last_new;
    int rc = raft__log_maybe_append(&r->log, m->index, m->log_term, m->commit, m->entries,
                                    m->n_entries, &ok, &last_new);
    if (rc != 0) {
        raft__trace(r, "rejected MsgAppend from %llu: %s", (unsigned long long)m->from,
                    tkv_strerror(rc));
        return rc;
    }
    if (ok) {
        send_append_response(r, m->from, last_new);
        return 0;
    }
    /* Thesis 5.3 fast backtracking: point the leader at the last entry that could match,
     * the largest index <= m->index whose term is <= m->log_term. */
    uint64_t hint = TKV_MIN(m->index, raft__log_last_index(&r->log));
    hint = raft__log_find_conflict_by_term(&r->log, hint, m->log_term);
    raft__trace(r, "rejected MsgAppend %llu/%llu from %llu, hint %llu",
                (unsigned long long)m->index, (unsigned long long)m->log_term,
                (unsigned long long)m->from, (unsigned long long)hint);
    raft_message resp = {0};
    resp.msg_type = RAFT_MSG_APPEND_RESPONSE;
    resp.to = m->from;
    resp.index = m->index;
    resp.reject = true;
    resp.reject_hint = hint;
    resp.log_term = raft__log_term_or_zero(&r->log, hint);
    raft__send(r, &resp);
    return 0;
}

void raft__handle_heartbeat(raft_node *r, const raft_message *m)
{
    if (m->commit <= raft__log_last_index(&r->log))
        raft__log_commit_to(&r->log, m->commit);
    raft_message resp = {0};
    resp.msg_type = RAFT_MSG_HEARTBEAT_RESPONSE;
    resp.to = m->from;
    resp.index = m->index;
    if (raft__bytes_dup(m->context, m->context_len, &resp.context) != 0)
        return;
    resp.context_len = resp.context ? m->context_len : 0;
    raft__send(r, &resp);
}

int raft__handle_snapshot(raft_node *r, const raft_message *m)
{
    const raft_snapshot *s = m->snapshot;
    if (!s || s->metadata.index == 0 || s->metadata.term == 0)
        return TKV_ECORRUPT; /* a snapshot holds committed entries: never index or term 0 */
    uint64_t sindex = s->metadata.index, sterm = s->metadata.term;
    if (sindex <= r->log.committed) {
        raft__trace(r, "ignored snapshot %llu/%llu: commit is %llu", (unsigned long long)sindex,
                    (unsigned long long)sterm, (unsigned long long)r->log.committed);
        send_append_response(r, m->from, r->log.committed);
        return 0;
    }
    if (raft__log_match_term(&r->log, sindex, sterm)) {
        /* We have the snapshot's last entry: just learn that it is committed. */
        raft__log_commit_to(&r->log, sindex);
        send_append_response(r, m->from, r->log.committed);
        return 0;
    }
    /* Build the new membership first so that either both log and members change or
     * neither does. */
    raft__tracker trk;
    int rc = raft__tracker_build(r, &s->metadata.conf_state, &trk);
    if (rc != 0)
        return rc;
    rc = raft__log_restore(&r->log, s);
    if (rc != 0) {
        raft__tracker_deinit(&trk);
        return rc;
    }
    raft__tracker_install(r, &trk);
    raft__trace(r, "restored snapshot %llu/%llu", (unsigned long long)sindex,
                (unsigned long long)sterm);
    send_append_response(r, m->from, raft__log_last_index(&r->log));
    return 0;
}

/* ---- leader side --------------------------------------------------------------------- */

void raft__leader_append_response(raft_node *r, raft__progress *pr, const raft_message *m)
{
    pr->recent_active = true;
    if (m->reject) {
        uint64_t next_probe = m->reject_hint;
        if (m->log_term > 0)
            next_probe = raft__log_find_conflict_by_term(&r->log, m->reject_hint, m->log_term);
        if (raft__progress_maybe_decr_to(pr, m->index, next_probe)) {
            if (pr->state == RAFT__PR_REPLICATE)
                raft__progress_become_probe(pr);
            raft__send_append(r, m->from);
        }
        return;
    }
    if (m->index > raft__log_last_index(&r->log)) {
        raft__trace(r, "ignored MsgAppendResponse from %llu past our last index",
                    (unsigned long long)m->from);
        return;
    }
    bool old_paused = raft__progress_is_paused(pr);
    if (!raft__progress_maybe_update(pr, m->index))
        return;
    switch (pr->state) {
    case RAFT__PR_PROBE:
        raft__progress_become_replicate(pr);
        break;
    case RAFT__PR_SNAPSHOT:
        /* The follower can continue from the log once it has what precedes our first entry. */
        if (pr->match + 1 >= raft__log_first_index(&r->log)) {
            raft__progress_become_probe(pr);
            raft__progress_become_replicate(pr);
        }
        break;
    case RAFT__PR_REPLICATE:
        raft__inflights_free_to(&pr->ins, m->index);
        break;
    }
    if (raft__maybe_commit(r))
        leader_commit_advanced(r);
    else if (old_paused)
        raft__send_append(r, m->from);
    /* Keep the pipeline full while there is more to send. */
    while (raft__maybe_send_append(r, m->from, false)) {
    }
    if (m->from == r->lead_transferee && pr->match == raft__log_last_index(&r->log)) {
        raft__trace(r, "transferee %llu caught up, sending MsgTimeoutNow",
                    (unsigned long long)m->from);
        raft__send_timeout_now(r, m->from);
    }
}

void raft__leader_heartbeat_response(raft_node *r, raft__progress *pr, const raft_message *m)
{
    pr->recent_active = true;
    pr->probe_sent = false;
    if (m->index <= r->ticks && m->index > pr->lease_ack_tick)
        pr->lease_ack_tick = m->index;
    /* A lost append may have filled the window: free a slot so that the pipeline resumes. */
    if (pr->state == RAFT__PR_REPLICATE && raft__inflights_full(&pr->ins)) {
        pr->ins.start = (pr->ins.start + 1) % pr->ins.cap;
        pr->ins.count--;
    }
    if (pr->match < raft__log_last_index(&r->log))
        raft__send_append(r, m->from);
    if (m->context_len > 0)
        raft__read_only_recv_ack(r, m->from, m->context, m->context_len);
}
