/*
 * peer_read.c: linearizable reads (DESIGN 6). A leader whose lease is valid and that has
 * applied an entry of its own term serves at once from a kv-engine snapshot: no log write,
 * no disk, no latch. Otherwise, and for follower (replica) reads, the peer asks Raft for a
 * read index (a heartbeat round on the leader) and serves once it has applied that index.
 *
 * Thread: the poller's.
 */
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

/* Takes a kv snapshot of @p's region and answers @r with it. */
static void serve(rstore_peer *p, rstore_read_req *r)
{
    eng_snap *es;
    int rc = eng_snap_open(p->store->opts.kv, &es);
    stor_snap *snap = NULL;
    if (rc == 0)
        rc = stor_snap_new(es, p->region, &snap);
    if (rc == 0) {
        snap->term = raft_node_term(p->raft);
        snap->applied_index = p->applied_index;
    }
    r->cb(r->ud, rc, NULL, snap);
    tkv_free(r);
}

static bool lease_ok(rstore_peer *p)
{
    return rstore__peer_is_leader(p) && p->applied_term == raft_node_term(p->raft) &&
           raft_node_lease_valid(p->raft);
}

void rstore__peer_on_read(rstore_peer *p, rstore_read_req *r)
{
    Errorpb__Error *err = rstore__peer_check(p, &r->ctx, !r->ctx.replica_read);
    if (err == NULL && p->pending_rd)
        err = rstore__peer_not_leader(p);
    if (err != NULL) {
        r->cb(r->ud, 0, err, NULL);
        tkv_free(r);
        return;
    }
    rstore *s = p->store;
    if (!r->ctx.replica_read && lease_ok(p)) {
        tkv_series_inc(s->m.proposal_local_read);
        serve(p, r);
        return;
    }
    r->uuid = ++p->next_read_uuid;
    int rc = raft_node_read_index(p->raft, &r->uuid, sizeof(r->uuid));
    if (rc != 0) {
        if (rc == TKV_EDROPPED || rc == TKV_ENOTLEADER)
            r->cb(r->ud, 0, rstore__peer_not_leader(p), NULL);
        else
            r->cb(r->ud, rc, NULL, NULL);
        tkv_free(r);
        return;
    }
    tkv_series_inc(s->m.proposal_read_index);
    r->read_index = 0;
    r->expire_tick = p->ticks + 2 * (uint64_t)s->opts.raft_election_timeout_ticks;
    r->next = NULL;
    if (p->reads_tail)
        p->reads_tail->next = r;
    else
        p->reads_head = r;
    p->reads_tail = r;
}

void rstore__peer_on_read_states(rstore_peer *p, const raft_read_state *rs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rs[i].request_ctx_len != sizeof(uint64_t))
            continue;
        uint64_t uuid;
        memcpy(&uuid, rs[i].request_ctx, sizeof(uuid));
        for (rstore_read_req *r = p->reads_head; r; r = r->next) {
            if (r->uuid == uuid) {
                r->read_index = rs[i].index;
                break;
            }
        }
    }
    rstore__peer_serve_reads(p);
}

void rstore__peer_serve_reads(rstore_peer *p)
{
    rstore_read_req **link = &p->reads_head;
    rstore_read_req *prev = NULL;
    while (*link) {
        rstore_read_req *r = *link;
        if (r->read_index != 0 && r->read_index <= p->applied_index) {
            *link = r->next;
            if (p->reads_tail == r)
                p->reads_tail = prev;
            serve(p, r);
            continue;
        }
        prev = r;
        link = &r->next;
    }
}

void rstore__peer_expire_reads(rstore_peer *p)
{
    rstore_read_req **link = &p->reads_head;
    rstore_read_req *prev = NULL;
    while (*link) {
        rstore_read_req *r = *link;
        if (r->read_index == 0 && p->ticks >= r->expire_tick) {
            /* The read index request was lost (leader change, dropped message). */
            *link = r->next;
            if (p->reads_tail == r)
                p->reads_tail = prev;
            r->cb(r->ud, 0, stor_rerr_stale_command(), NULL);
            tkv_free(r);
            continue;
        }
        prev = r;
        link = &r->next;
    }
}
