/*
 * raft_membership.c: who the members are. Single-step membership changes (Raft thesis 4.1:
 * one server at a time, so that old and new majorities always overlap; a change takes effect
 * on every node when it applies the committed entry, and the leader admits one change at a
 * time), learners (non-voting members), and leadership transfer (thesis 3.10).
 */
#include "raft/raft_int.h"

int raft__tracker_build(raft_node *r, const raft_conf_state *cs, raft__tracker *out)
{
    raft__tracker_init(out, r->cfg.max_inflight_msgs);
    uint64_t next = raft__log_last_index(&r->log) + 1;
    if (cs->n_voters > RAFT_MAX_MEMBERS || cs->n_learners > RAFT_MAX_MEMBERS)
        return TKV_ETOOLARGE;
    for (size_t i = 0; i < cs->n_voters + cs->n_learners; i++) {
        bool learner = i >= cs->n_voters;
        uint64_t id = learner ? cs->learners[i - cs->n_voters] : cs->voters[i];
        if (id == RAFT_NONE || raft__tracker_get(out, id))
            continue; /* a voter listed again as learner stays a voter */
        int rc = raft__tracker_add(out, id, learner, next);
        if (rc != 0) {
            raft__tracker_deinit(out);
            return rc;
        }
    }
    return 0;
}

void raft__tracker_install(raft_node *r, raft__tracker *t)
{
    raft__tracker_deinit(&r->trk);
    r->trk = *t;
    memset(t, 0, sizeof(*t));
    if (r->lead_transferee != RAFT_NONE && !raft__tracker_is_voter(&r->trk, r->lead_transferee))
        raft__abort_leader_transfer(r);
}

bool raft__has_unapplied_conf_change(raft_node *r)
{
    raft__log *l = &r->log;
    uint64_t lo = TKV_MAX(l->applied + 1, raft__log_first_index(l));
    if (lo > l->committed)
        return false;
    raft_entry_vec ents;
    raft_entry_vec_init(&ents);
    int rc = raft__log_slice(l, lo, l->committed + 1, UINT64_MAX, &ents);
    bool found = rc != 0; /* cannot tell: be careful */
    for (size_t i = 0; i < ents.len && !found; i++)
        found = ents.items[i].entry_type == RAFT_ENTRY_CONF_CHANGE;
    raft_entry_vec_deinit(&ents);
    return found;
}

int raft_node_apply_conf_change(raft_node *r, const raft_conf_change *cc, raft_conf_state *cs)
{
    uint64_t id = cc->node_id;
    raft__progress *pr = raft__tracker_get(&r->trk, id);
    int rc = 0;
    switch (cc->change_type) {
    case RAFT_CONF_ADD_NODE:
        if (pr) {
            pr->is_learner = false; /* promote a learner; an existing voter stays */
        } else {
            rc = raft__tracker_add(&r->trk, id, false, raft__log_last_index(&r->log) + 1);
        }
        break;
    case RAFT_CONF_ADD_LEARNER_NODE:
        /* Demoting a voter needs joint consensus, which is not implemented: no-op. */
        if (!pr)
            rc = raft__tracker_add(&r->trk, id, true, raft__log_last_index(&r->log) + 1);
        break;
    case RAFT_CONF_REMOVE_NODE:
        raft__tracker_remove(&r->trk, id);
        if (id == r->lead_transferee)
            raft__abort_leader_transfer(r);
        break;
    }
    if (rc != 0)
        return rc;
    raft__trace(r, "applied conf change %d for %llu", (int)cc->change_type, (unsigned long long)id);
    if (r->state == RAFT_STATE_LEADER) {
        if (!raft__tracker_is_voter(&r->trk, r->id)) {
            /* A leader that is no longer a voter cannot count itself: hand over by stepping
             * down (the caller normally transfers leadership before removing the leader). */
            raft__become_follower(r, r->term, RAFT_NONE);
        } else if (raft__maybe_commit(r)) {
            /* A smaller quorum may commit more now. */
            raft__release_pending_read_index(r);
            raft__bcast_append(r);
        }
    }
    if (cs)
        raft__tracker_conf_state(&r->trk, cs);
    return 0;
}

/* ---- leadership transfer ----------------------------------------------------------------- */

void raft__abort_leader_transfer(raft_node *r)
{
    r->lead_transferee = RAFT_NONE;
}

void raft__send_timeout_now(raft_node *r, uint64_t to)
{
    raft_message m = {0};
    m.msg_type = RAFT_MSG_TIMEOUT_NOW;
    m.to = to;
    /* The transferee will campaign past everyone's lease: ours is void from now on. */
    r->timeout_now_sent = true;
    raft__send(r, &m);
}

void raft__leader_transfer(raft_node *r, const raft_message *m)
{
    uint64_t transferee = m->from;
    if (transferee == r->id) {
        raft__trace(r, "already leader; ignoring transfer to self");
        return;
    }
    raft__progress *pr = raft__tracker_get(&r->trk, transferee);
    if (!pr || pr->is_learner) {
        raft__trace(r, "ignoring transfer to %llu: not a voter", (unsigned long long)transferee);
        return;
    }
    if (r->lead_transferee != RAFT_NONE) {
        if (r->lead_transferee == transferee)
            return; /* already under way */
        raft__abort_leader_transfer(r);
    }
    /* The transfer must finish within an election timeout (checked in the tick). */
    r->transfer_start = r->ticks;
    r->lead_transferee = transferee;
    raft__trace(r, "transferring leadership to %llu", (unsigned long long)transferee);
    if (pr->match == raft__log_last_index(&r->log))
        raft__send_timeout_now(r, transferee);
    else
        raft__send_append(r, transferee); /* catch it up first */
}
