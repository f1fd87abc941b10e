/*
 * raft_step.c: message dispatch. First the term rules every server follows (Raft paper 5.1:
 * a newer term turns us into a follower, an older one is stale), with the pre-vote and
 * check-quorum refinements (thesis 9.6), then the handler of our role.
 */
#include "raft/raft_int.h"

static bool is_transfer_campaign(const raft_message *m)
{
    static const char ctx[] = "CampaignTransfer";
    return m->context_len == sizeof(ctx) - 1 && memcmp(m->context, ctx, sizeof(ctx) - 1) == 0;
}

/* Forwards a copy of @m to the leader (proposals, read requests, transfer requests). */
static int forward_to_leader(raft_node *r, const raft_message *m)
{
    raft_message f;
    int rc = raft_message_copy(&f, m);
    if (rc != 0)
        return rc;
    f.to = r->lead;
    f.term = 0;
    raft__send(r, &f);
    return 0;
}

static int propose_on_leader(raft_node *r, const raft_message *m)
{
    if (m->n_entries == 0)
        return TKV_ECORRUPT;
    if (!raft__tracker_get(&r->trk, r->id)) {
        raft__trace(r, "dropping proposal: this node was removed");
        return TKV_EDROPPED;
    }
    if (r->lead_transferee != RAFT_NONE) {
        /* Thesis 3.10: stop taking proposals so the transferee's log can catch up. */
        raft__trace(r, "dropping proposal: transfer to %llu under way",
                    (unsigned long long)r->lead_transferee);
        return TKV_EDROPPED;
    }
    uint64_t size = 0;
    for (size_t i = 0; i < m->n_entries; i++)
        size += raft_entry_size(&m->entries[i]);
    uint64_t limit = r->cfg.max_uncommitted_size;
    if (limit && r->uncommitted_size > 0 && r->uncommitted_size + size > limit) {
        raft__trace(r, "dropping proposal: %llu bytes uncommitted",
                    (unsigned long long)r->uncommitted_size);
        return TKV_EDROPPED;
    }
    raft_entry one = {0};
    raft_entry *ents = m->n_entries == 1 ? &one : tkv_malloc(m->n_entries * sizeof(raft_entry));
    if (!ents)
        return -ENOMEM;
    memcpy(ents, m->entries, m->n_entries * sizeof(raft_entry));
    uint64_t li = raft__log_last_index(&r->log);
    uint64_t conf_index = 0;
    for (size_t i = 0; i < m->n_entries; i++) {
        if (ents[i].entry_type != RAFT_ENTRY_CONF_CHANGE)
            continue;
        if (conf_index != 0 || r->pending_conf_index > r->log.applied) {
            /* Thesis 4.1: one change at a time. Keep the slot (the proposer watches the
             * index) but make it a no-op. */
            raft__trace(r, "ignoring conf change: another one is pending");
            memset(&ents[i], 0, sizeof(ents[i]));
        } else {
            conf_index = li + 1 + i;
        }
    }
    int rc = raft__append_entries(r, ents, m->n_entries);
    if (ents != &one)
        tkv_free(ents);
    if (rc != 0)
        return rc;
    if (conf_index)
        r->pending_conf_index = conf_index;
    r->uncommitted_size += size;
    raft__bcast_append(r);
    return 0;
}

static int step_leader(raft_node *r, const raft_message *m)
{
    switch (m->msg_type) {
    case RAFT_MSG_BEAT: {
        const raft__read_req *last = raft__read_only_last(&r->ro);
        raft__bcast_heartbeat(r, last ? last->ctx : NULL, last ? last->ctx_len : 0);
        return 0;
    }
    case RAFT_MSG_PROPOSE:
        return propose_on_leader(r, m);
    case RAFT_MSG_READ_INDEX:
        return raft__leader_read_index(r, m);
    default:
        break;
    }
    raft__progress *pr = raft__tracker_get(&r->trk, m->from);
    if (!pr)
        return 0; /* not a member (any more) */
    switch (m->msg_type) {
    case RAFT_MSG_APPEND_RESPONSE:
        raft__leader_append_response(r, pr, m);
        break;
    case RAFT_MSG_HEARTBEAT_RESPONSE:
        raft__leader_heartbeat_response(r, pr, m);
        break;
    case RAFT_MSG_SNAP_STATUS:
        if (pr->state != RAFT__PR_SNAPSHOT)
            break;
        if (m->reject)
            pr->pending_snapshot = 0;
        raft__progress_become_probe(pr);
        /* Wait for a heartbeat answer before probing again. */
        pr->probe_sent = true;
        break;
    case RAFT_MSG_UNREACHABLE:
        if (pr->state == RAFT__PR_REPLICATE)
            raft__progress_become_probe(pr);
        break;
    case RAFT_MSG_TRANSFER_LEADER:
        raft__leader_transfer(r, m);
        break;
    default:
        break;
    }
    return 0;
}

static int step_candidate(raft_node *r, const raft_message *m)
{
    switch (m->msg_type) {
    case RAFT_MSG_PROPOSE:
    case RAFT_MSG_READ_INDEX:
        return TKV_EDROPPED;
    case RAFT_MSG_APPEND:
        /* Raft paper 5.2: a leader of our term exists; join it. */
        raft__become_follower(r, m->term, m->from);
        return raft__handle_append(r, m);
    case RAFT_MSG_HEARTBEAT:
        raft__become_follower(r, m->term, m->from);
        raft__handle_heartbeat(r, m);
        return 0;
    case RAFT_MSG_SNAPSHOT:
        raft__become_follower(r, m->term, m->from);
        return raft__handle_snapshot(r, m);
    case RAFT_MSG_REQUEST_VOTE_RESPONSE:
    case RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE:
        raft__handle_vote_response(r, m);
        return 0;
    default:
        return 0;
    }
}

static int step_follower(raft_node *r, const raft_message *m)
{
    switch (m->msg_type) {
    case RAFT_MSG_PROPOSE:
    case RAFT_MSG_READ_INDEX:
        if (r->lead == RAFT_NONE)
            return TKV_EDROPPED;
        return forward_to_leader(r, m);
    case RAFT_MSG_TRANSFER_LEADER:
        if (r->lead == RAFT_NONE)
            return TKV_EDROPPED;
        /* The leader reads the transferee from the sender, which will be us. */
        if (m->from != r->id)
            return TKV_ENOTLEADER;
        return forward_to_leader(r, m);
    case RAFT_MSG_APPEND:
        r->election_elapsed = 0;
        r->lead = m->from;
        return raft__handle_append(r, m);
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->lead = m->from;
        raft__handle_heartbeat(r, m);
        return 0;
    case RAFT_MSG_SNAPSHOT:
        r->election_elapsed = 0;
        r->lead = m->from;
        return raft__handle_snapshot(r, m);
    case RAFT_MSG_TIMEOUT_NOW:
        /* Thesis 3.10: the leader chose us; campaign now, without pre-vote. */
        raft__trace(r, "received MsgTimeoutNow from %llu", (unsigned long long)m->from);
        raft__hup(r, RAFT__CAMPAIGN_TRANSFER);
        return 0;
    case RAFT_MSG_READ_INDEX_RESP:
        if (m->n_entries != 1)
            return TKV_ECORRUPT;
        raft__add_read_state(r, m->index, m->entries[0].data, m->entries[0].data_len);
        return 0;
    default:
        return 0;
    }
}

int raft__step(raft_node *r, const raft_message *m)
{
    raft_message_type t = m->msg_type;
    bool vote_req = t == RAFT_MSG_REQUEST_VOTE || t == RAFT_MSG_REQUEST_PRE_VOTE;
    if (m->term == 0) {
        /* local message */
    } else if (m->term > r->term) {
        if (vote_req && !is_transfer_campaign(m) && raft__in_lease(r)) {
            /* Thesis 4.2.3: we heard from a leader recently; a candidate that did not is
             * likely cut off, and must not depose it. */
            raft__trace(r, "ignored %s from %llu at term %llu: in lease", raft_message_type_name(t),
                        (unsigned long long)m->from, (unsigned long long)m->term);
            return 0;
        }
        /* A pre-vote never changes our term; a granted pre-vote carries the term we would run
         * in and is counted below. Anything else from a newer term makes us follow it. */
        bool keeps_term = t == RAFT_MSG_REQUEST_PRE_VOTE ||
                          (t == RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE && !m->reject);
        if (!keeps_term) {
            raft__trace(r, "received %s from %llu at newer term %llu", raft_message_type_name(t),
                        (unsigned long long)m->from, (unsigned long long)m->term);
            bool from_leader =
                t == RAFT_MSG_APPEND || t == RAFT_MSG_HEARTBEAT || t == RAFT_MSG_SNAPSHOT;
            int elapsed = r->election_elapsed, timeout = r->randomized_election_timeout;
            raft__become_follower(r, m->term, from_leader ? m->from : RAFT_NONE);
            if (t == RAFT_MSG_REQUEST_VOTE) {
                /* Raft paper Figure 2: only granting a vote resets the election timer. A node
                 * that rejects a stale candidate keeps counting, so the node with the best log
                 * is not held back by a stream of candidates that cannot win. */
                r->election_elapsed = elapsed;
                r->randomized_election_timeout = timeout;
            }
        }
    } else if (m->term < r->term) {
        if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
            (t == RAFT_MSG_HEARTBEAT || t == RAFT_MSG_APPEND)) {
            /* A stale leader (perhaps back from a partition) would otherwise never learn the
             * new term, because our pre-votes or lease keep us from raising it. */
            raft_message resp = {0};
            resp.msg_type = RAFT_MSG_APPEND_RESPONSE;
            resp.to = m->from;
            raft__send(r, &resp);
        } else if (t == RAFT_MSG_REQUEST_PRE_VOTE) {
            raft_message resp = {0};
            resp.msg_type = RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE;
            resp.to = m->from;
            resp.term = r->term;
            resp.reject = true;
            raft__send(r, &resp);
        }
        return 0;
    }

    switch (t) {
    case RAFT_MSG_HUP:
        raft__hup(r, r->cfg.pre_vote ? RAFT__CAMPAIGN_PRE_ELECTION : RAFT__CAMPAIGN_ELECTION);
        return 0;
    case RAFT_MSG_REQUEST_VOTE:
    case RAFT_MSG_REQUEST_PRE_VOTE:
        raft__handle_vote_request(r, m);
        return 0;
    default:
        break;
    }
    switch (r->state) {
    case RAFT_STATE_LEADER:
        return step_leader(r, m);
    case RAFT_STATE_CANDIDATE:
    case RAFT_STATE_PRE_CANDIDATE:
        return step_candidate(r, m);
    case RAFT_STATE_FOLLOWER:
        return step_follower(r, m);
    }
    return 0;
}
