/*
 * raft_read_only.c: linearizable reads without log writes (Raft thesis 6.4). The leader
 * records its commit index when a request arrives, confirms it is still leader with a
 * heartbeat round acknowledged by a quorum (or, lease-based, by a valid lease: 6.4.1), and
 * answers with that index; the reader waits until its state machine has applied it.
 */
#include "raft/raft_int.h"

void raft__read_only_init(raft__read_only *ro)
{
    memset(ro, 0, sizeof(*ro));
}

void raft__read_only_reset(raft__read_only *ro)
{
    for (size_t i = 0; i < ro->n; i++)
        tkv_free(ro->reqs[i].ctx);
    ro->n = 0;
}

void raft__read_only_deinit(raft__read_only *ro)
{
    raft__read_only_reset(ro);
    tkv_free(ro->reqs);
    memset(ro, 0, sizeof(*ro));
}

const raft__read_req *raft__read_only_last(const raft__read_only *ro)
{
    return ro->n ? &ro->reqs[ro->n - 1] : NULL;
}

static long find_req(const raft__read_only *ro, const uint8_t *ctx, size_t len)
{
    for (size_t i = 0; i < ro->n; i++)
        if (ro->reqs[i].ctx_len == len && (len == 0 || memcmp(ro->reqs[i].ctx, ctx, len) == 0))
            return (long)i;
    return -1;
}

void raft__add_read_state(raft_node *r, uint64_t index, const uint8_t *ctx, size_t len)
{
    raft__read_state_vec *v = &r->read_states;
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        raft_read_state *items = tkv_realloc(v->items, cap * sizeof(*items));
        if (!items)
            return; /* the reader times out and retries */
        v->items = items;
        v->cap = cap;
    }
    raft_read_state *rs = &v->items[v->len];
    if (raft__bytes_dup(ctx, len, &rs->request_ctx) != 0)
        return;
    rs->index = index;
    rs->request_ctx_len = rs->request_ctx ? len : 0;
    v->len++;
}

/* Answers a read request with @index: locally as a read state, or to the follower that
 * forwarded it. */
static void respond(raft_node *r, uint64_t from, uint64_t index, const uint8_t *ctx, size_t len)
{
    if (from == RAFT_NONE || from == r->id) {
        raft__add_read_state(r, index, ctx, len);
        return;
    }
    raft_message m = {0};
    m.msg_type = RAFT_MSG_READ_INDEX_RESP;
    m.to = from;
    m.index = index;
    m.entries = tkv_calloc(1, sizeof(raft_entry));
    if (!m.entries)
        return;
    m.n_entries = 1;
    if (raft__bytes_dup(ctx, len, &m.entries[0].data) != 0) {
        raft_message_deinit(&m);
        return;
    }
    m.entries[0].data_len = m.entries[0].data ? len : 0;
    raft__send(r, &m);
}

bool raft__lease_valid(const raft_node *r)
{
    if (r->state != RAFT_STATE_LEADER || !r->cfg.check_quorum || r->timeout_now_sent ||
        r->lead_transferee != RAFT_NONE || !raft__committed_in_current_term(r))
        return false;
    uint64_t qa = raft__tracker_quorum_ack(&r->trk, r->id, r->ticks);
    /* One tick of margin: ticks of different nodes need not be in phase. */
    return qa > 0 && r->ticks + 1 < qa + (uint64_t)r->cfg.election_tick;
}

static int queue_pending(raft_node *r, const raft_message *m)
{
    raft__msg_vec *v = &r->pending_read_msgs;
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        raft_message *items = tkv_realloc(v->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        v->items = items;
        v->cap = cap;
    }
    int rc = raft_message_copy(&v->items[v->len], m);
    if (rc == 0)
        v->len++;
    return rc;
}

int raft__leader_read_index(raft_node *r, const raft_message *m)
{
    if (m->n_entries != 1)
        return TKV_ECORRUPT;
    const uint8_t *ctx = m->entries[0].data;
    size_t len = m->entries[0].data_len;
    if (raft__tracker_voter_count(&r->trk) <= 1 && raft__tracker_is_voter(&r->trk, r->id)) {
        respond(r, m->from, r->log.committed, ctx, len);
        return 0;
    }
    /* Thesis 6.4 step 1: until the leader commits an entry of its term it may not know the
     * latest commit index; hold the request until then. */
    if (!raft__committed_in_current_term(r))
        return queue_pending(r, m);
    if (r->cfg.read_only_option == RAFT_READ_ONLY_LEASE_BASED && raft__lease_valid(r)) {
        respond(r, m->from, r->log.committed, ctx, len);
        return 0;
    }
    if (find_req(&r->ro, ctx, len) >= 0)
        return 0; /* already waiting for the same request */
    raft__read_only *ro = &r->ro;
    if (ro->n == ro->cap) {
        size_t cap = ro->cap ? ro->cap * 2 : 8;
        raft__read_req *reqs = tkv_realloc(ro->reqs, cap * sizeof(*reqs));
        if (!reqs)
            return -ENOMEM;
        ro->reqs = reqs;
        ro->cap = cap;
    }
    raft__read_req *req = &ro->reqs[ro->n];
    memset(req, 0, sizeof(*req));
    if (raft__bytes_dup(ctx, len, &req->ctx) != 0)
        return -ENOMEM;
    req->ctx_len = len;
    req->index = r->log.committed;
    req->from = m->from;
    req->acks[req->n_acks++] = r->id;
    ro->n++;
    /* Thesis 6.4 step 2: a heartbeat round confirms we are still the leader. */
    raft__bcast_heartbeat(r, ctx, len);
    return 0;
}

void raft__read_only_recv_ack(raft_node *r, uint64_t from, const uint8_t *ctx, size_t len)
{
    raft__read_only *ro = &r->ro;
    long at = find_req(ro, ctx, len);
    if (at < 0)
        return;
    raft__read_req *req = &ro->reqs[at];
    bool seen = false;
    for (size_t i = 0; i < req->n_acks; i++)
        seen |= req->acks[i] == from;
    if (!seen && req->n_acks < RAFT_MAX_MEMBERS)
        req->acks[req->n_acks++] = from;
    size_t voters = raft__tracker_voter_count(&r->trk), acked = 0;
    for (size_t i = 0; i < req->n_acks; i++)
        acked += raft__tracker_is_voter(&r->trk, req->acks[i]);
    if (acked < voters / 2 + 1)
        return;
    /* The round confirms this request and every earlier one: answer them in order. */
    size_t done = (size_t)at + 1;
    for (size_t i = 0; i < done; i++) {
        raft__read_req *q = &ro->reqs[i];
        respond(r, q->from, q->index, q->ctx, q->ctx_len);
        tkv_free(q->ctx);
    }
    memmove(ro->reqs, ro->reqs + done, (ro->n - done) * sizeof(raft__read_req));
    ro->n -= done;
}

void raft__release_pending_read_index(raft_node *r)
{
    if (r->pending_read_msgs.len == 0 || !raft__committed_in_current_term(r))
        return;
    raft__msg_vec pending = r->pending_read_msgs;
    memset(&r->pending_read_msgs, 0, sizeof(r->pending_read_msgs));
    for (size_t i = 0; i < pending.len; i++)
        TKV_IGNORE(raft__leader_read_index(r, &pending.items[i]));
    raft__msg_vec_deinit(&pending);
}
