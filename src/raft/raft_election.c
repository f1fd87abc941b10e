/*
 * raft_election.c: roles and terms (Raft paper 5.1), leader election with randomized
 * timeouts (5.2), the vote restriction (5.4.1), pre-vote and check-quorum (thesis 9.6), and
 * the logical clock.
 */
#include "raft/raft_int.h"

void raft__reset_randomized_timeout(raft_node *r)
{
    /* Raft paper 5.2: a timeout drawn from [election_tick, 2 * election_tick) so that split
     * votes are rare and resolve quickly. */
    int et = r->cfg.election_tick;
    r->randomized_election_timeout = et + (int)tkv_rng_below(&r->rng, (uint64_t)et);
}

/* Resets the volatile state for a new role in @term. */
static void reset(raft_node *r, uint64_t term)
{
    if (r->term != term) {
        r->term = term;
        r->vote = RAFT_NONE;
        r->timeout_now_sent = false;
    }
    r->lead = RAFT_NONE;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    raft__reset_randomized_timeout(r);
    raft__abort_leader_transfer(r);
    uint64_t last = raft__log_last_index(&r->log);
    for (size_t i = 0; i < r->trk.n; i++) {
        raft__progress *pr = &r->trk.prs[i];
        pr->match = 0;
        pr->next = last + 1;
        pr->state = RAFT__PR_PROBE;
        pr->probe_sent = false;
        pr->pending_snapshot = 0;
        pr->recent_active = false;
        pr->lease_ack_tick = 0;
        pr->vote = 0;
        raft__inflights_reset(&pr->ins);
        if (pr->id == r->id) {
            /* Thesis 10.2.1: the leader counts its own log only as far as it is durable. */
            pr->match = raft__log_persisted_index(&r->log);
            pr->recent_active = true;
        }
    }
    r->pending_conf_index = 0;
    r->uncommitted_size = 0;
    raft__read_only_reset(&r->ro);
    raft__msg_vec_deinit(&r->pending_read_msgs);
}

void raft__become_follower(raft_node *r, uint64_t term, uint64_t lead)
{
    reset(r, term);
    r->lead = lead;
    r->state = RAFT_STATE_FOLLOWER;
    raft__trace(r, "became follower at term %llu, leader %llu", (unsigned long long)term,
                (unsigned long long)lead);
}

void raft__become_candidate(raft_node *r)
{
    TKV_ASSERT(r->state != RAFT_STATE_LEADER);
    reset(r, r->term + 1);
    r->vote = r->id;
    r->state = RAFT_STATE_CANDIDATE;
    r->startup_lease = false;
    raft__trace(r, "became candidate at term %llu", (unsigned long long)r->term);
}

void raft__become_pre_candidate(raft_node *r)
{
    TKV_ASSERT(r->state != RAFT_STATE_LEADER);
    /* Thesis 9.6: a pre-candidate changes neither term nor vote; it only asks whether it
     * could win, so that a node cut off from the cluster does not inflate terms. */
    raft__tracker_reset_votes(&r->trk);
    r->lead = RAFT_NONE;
    r->state = RAFT_STATE_PRE_CANDIDATE;
    r->startup_lease = false;
    raft__trace(r, "became pre-candidate at term %llu", (unsigned long long)r->term);
}

void raft__become_leader(raft_node *r)
{
    TKV_ASSERT(r->state != RAFT_STATE_FOLLOWER);
    reset(r, r->term);
    r->lead = r->id;
    r->state = RAFT_STATE_LEADER;
    raft__progress *self = raft__tracker_get(&r->trk, r->id);
    if (self)
        raft__progress_become_replicate(self);
    /* Entries from earlier terms may hold a conf change that is not applied yet: allow no new
     * change until everything up to here is applied. */
    r->pending_conf_index = raft__log_last_index(&r->log);
    raft__trace(r, "became leader at term %llu", (unsigned long long)r->term);
    /* Raft paper 5.4.2 / thesis 6.4: an empty entry of the new term lets the leader commit
     * (and learn the commit index of) everything before it. */
    raft_entry empty = {RAFT_ENTRY_NORMAL, 0, 0, NULL, 0, NULL, 0};
    if (raft__append_entries(r, &empty, 1) != 0)
        raft__trace(r, "could not append the empty entry of the term (no memory)");
}

bool raft__in_lease(const raft_node *r)
{
    /* Thesis 4.2.3 / 9.6: with check-quorum a node that heard from a leader within the
     * election timeout refuses to help elect another, which is what makes the leader lease
     * hold. A node that just started does not know whether it promised that before a crash,
     * so it behaves as if it had. */
    return r->cfg.check_quorum && (r->lead != RAFT_NONE || r->startup_lease) &&
           r->election_elapsed < r->cfg.election_tick;
}

void raft__campaign(raft_node *r, raft__campaign_type t)
{
    if (!raft__promotable(r)) {
        raft__trace(r, "cannot campaign: not a voter");
        return;
    }
    raft_message_type vote_type;
    uint64_t term;
    if (t == RAFT__CAMPAIGN_PRE_ELECTION) {
        raft__become_pre_candidate(r);
        vote_type = RAFT_MSG_REQUEST_PRE_VOTE;
        term = r->term + 1; /* the term we would campaign in */
    } else {
        raft__become_candidate(r);
        vote_type = RAFT_MSG_REQUEST_VOTE;
        term = r->term;
    }
    /* Vote for ourselves; a single-voter group wins at once. */
    raft__progress *self = raft__tracker_get(&r->trk, r->id);
    self->vote = 1;
    if (raft__tracker_tally(&r->trk) > 0) {
        if (t == RAFT__CAMPAIGN_PRE_ELECTION) {
            raft__campaign(r, RAFT__CAMPAIGN_ELECTION);
        } else {
            raft__become_leader(r);
            raft__bcast_append(r);
        }
        return;
    }
    uint64_t last = raft__log_last_index(&r->log);
    uint64_t last_term = raft__log_last_term(&r->log);
    static const char transfer_ctx[] = "CampaignTransfer";
    for (size_t i = 0; i < r->trk.n; i++) {
        raft__progress *pr = &r->trk.prs[i];
        if (pr->is_learner || pr->id == r->id)
            continue;
        raft_message m = {0};
        m.msg_type = vote_type;
        m.to = pr->id;
        m.term = term;
        m.index = last;
        m.log_term = last_term;
        if (t == RAFT__CAMPAIGN_TRANSFER &&
            raft__bytes_dup(transfer_ctx, sizeof(transfer_ctx) - 1, &m.context) != 0)
            continue; /* lost message: the transfer times out */
        if (t == RAFT__CAMPAIGN_TRANSFER)
            m.context_len = sizeof(transfer_ctx) - 1;
        raft__send(r, &m);
    }
}

void raft__hup(raft_node *r, raft__campaign_type t)
{
    if (r->state == RAFT_STATE_LEADER) {
        raft__trace(r, "ignoring MsgHup: already leader");
        return;
    }
    if (!raft__promotable(r)) {
        raft__trace(r, "ignoring MsgHup: not promotable");
        return;
    }
    /* A committed conf change not yet applied could change who votes: wait for it. */
    if (raft__has_unapplied_conf_change(r)) {
        raft__trace(r, "cannot campaign: conf change committed but not applied");
        return;
    }
    raft__campaign(r, t);
}

void raft__handle_vote_request(raft_node *r, const raft_message *m)
{
    bool pre = m->msg_type == RAFT_MSG_REQUEST_PRE_VOTE;
    /* Raft paper 5.2: one vote per term, first come first served; a repeated request from
     * the one we voted for is answered the same way. A pre-vote for a later term binds
     * nothing, so it is granted whenever the log allows. */
    bool can_vote = r->vote == m->from || (r->vote == RAFT_NONE && r->lead == RAFT_NONE) ||
                    (pre && m->term > r->term);
    /* Raft paper 5.4.1: never vote for a candidate whose log is less up to date. */
    bool up_to_date = TKV_RAFT_MUTATION_NO_UPTODATE_CHECK ||
                      raft__log_is_up_to_date(&r->log, m->index, m->log_term);
    raft_message resp = {0};
    resp.msg_type = pre ? RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE : RAFT_MSG_REQUEST_VOTE_RESPONSE;
    resp.to = m->from;
    if (can_vote && up_to_date) {
        /* Answer in the request's term: a pre-vote grant must count for the pre-candidate,
         * whose own term is still ours. */
        resp.term = m->term;
        raft__trace(r, "granted %s to %llu at term %llu", pre ? "pre-vote" : "vote",
                    (unsigned long long)m->from, (unsigned long long)m->term);
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
    } else {
        resp.term = r->term;
        resp.reject = true;
        raft__trace(r, "rejected %s from %llu at term %llu", pre ? "pre-vote" : "vote",
                    (unsigned long long)m->from, (unsigned long long)m->term);
    }
    raft__send(r, &resp);
}

void raft__handle_vote_response(raft_node *r, const raft_message *m)
{
    raft_message_type mine = r->state == RAFT_STATE_PRE_CANDIDATE
                                 ? RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE
                                 : RAFT_MSG_REQUEST_VOTE_RESPONSE;
    if (m->msg_type != mine)
        return;
    raft__progress *pr = raft__tracker_get(&r->trk, m->from);
    if (!pr || pr->is_learner)
        return;
    if (pr->vote == 0)
        pr->vote = m->reject ? -1 : 1;
    int res = raft__tracker_tally(&r->trk);
    if (res > 0) {
        if (r->state == RAFT_STATE_PRE_CANDIDATE) {
            raft__campaign(r, RAFT__CAMPAIGN_ELECTION);
        } else {
            raft__become_leader(r);
            raft__bcast_append(r);
        }
    } else if (res < 0) {
        raft__become_follower(r, r->term, RAFT_NONE);
    }
}

static void check_quorum(raft_node *r)
{
    if (!raft__tracker_quorum_active(&r->trk, r->id)) {
        raft__trace(r, "no quorum active in the last election timeout");
        /* Thesis 6.2: a leader that cannot reach a quorum steps down, so clients look for
         * the real leader and a partitioned leader stops answering. */
        if (!TKV_RAFT_MUTATION_NO_CHECKQUORUM_STEPDOWN) {
            raft__become_follower(r, r->term, RAFT_NONE);
            return;
        }
    }
    for (size_t i = 0; i < r->trk.n; i++)
        if (r->trk.prs[i].id != r->id)
            r->trk.prs[i].recent_active = false;
}

static void tick_election(raft_node *r)
{
    r->election_elapsed++;
    if (r->election_elapsed >= r->cfg.election_tick)
        r->startup_lease = false;
    if (raft__promotable(r) && r->election_elapsed >= r->randomized_election_timeout) {
        r->election_elapsed = 0;
        raft__hup(r, r->cfg.pre_vote ? RAFT__CAMPAIGN_PRE_ELECTION : RAFT__CAMPAIGN_ELECTION);
    }
}

static void tick_heartbeat(raft_node *r)
{
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (r->election_elapsed >= r->cfg.election_tick) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum)
            check_quorum(r);
        if (r->state != RAFT_STATE_LEADER)
            return;
    }
    /* Thesis 3.10: a transfer that did not finish within an election timeout is given up so
     * that the leader takes proposals again. It has its own clock: restarting the
     * check-quorum round on every transfer request would let requests keep a cut-off leader
     * in office. */
    if (r->lead_transferee != RAFT_NONE &&
        r->ticks - r->transfer_start >= (uint64_t)r->cfg.election_tick) {
        raft__trace(r, "transfer to %llu timed out", (unsigned long long)r->lead_transferee);
        raft__abort_leader_transfer(r);
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_tick) {
        r->heartbeat_elapsed = 0;
        const raft__read_req *last = raft__read_only_last(&r->ro);
        raft__bcast_heartbeat(r, last ? last->ctx : NULL, last ? last->ctx_len : 0);
    }
}

void raft__tick(raft_node *r)
{
    r->ticks++;
    if (r->state == RAFT_STATE_LEADER)
        tick_heartbeat(r);
    else
        tick_election(r);
}
