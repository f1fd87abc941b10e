/*
 * local_read.c: lease reads on the caller's thread (TiKV's LocalReader).
 *
 * A leader with a valid lease serves reads from a kv-engine snapshot without asking Raft.
 * Going through the poller for that would make every read wait behind the poller's round,
 * including its raft-log fsync. So each region's mailbox carries a small read delegate: the
 * poller publishes, after every round, whether this replica may serve lease reads and until
 * when (in monotonic time: the time of the tick whose heartbeat a quorum acknowledged, plus
 * the election timeout less two ticks of margin, Raft thesis 6.4.1), with a copy of the
 * region. A gRPC thread takes a read from it when the lease still holds; anything else
 * (no lease, replica reads, an epoch mismatch) goes to the peer's mailbox as before.
 *
 * Invalidation happens before anything that could let another leader exist within the
 * lease: a leadership transfer in progress (MsgTimeoutNow makes the target campaign at
 * once), a split or membership change applied by the apply thread (the region changes), a
 * step-down, and the destruction of the peer.
 */
#include <stdlib.h>

#include "base/clock.h"
#include "raftstore/rstore_int.h"

struct rstore_reader {
    pthread_mutex_t mu;
    bool valid;
    uint64_t expire_ns;
    uint64_t term;
    uint64_t applied_index;
    Metapb__Region *region; /* owned copy */
};

rstore_reader *rstore__reader_new(void)
{
    rstore_reader *rd = tkv_xcalloc(1, sizeof(*rd));
    pthread_mutex_init(&rd->mu, NULL);
    return rd;
}

void rstore__reader_free(rstore_reader *rd)
{
    if (rd == NULL)
        return;
    rstore__region_free(rd->region);
    pthread_mutex_destroy(&rd->mu);
    tkv_free(rd);
}

void rstore__reader_invalidate(rstore_reader *rd)
{
    if (rd == NULL)
        return;
    pthread_mutex_lock(&rd->mu);
    rd->valid = false;
    pthread_mutex_unlock(&rd->mu);
}

void rstore__reader_invalidate_region(rstore *s, uint64_t region_id)
{
    rstore_mailbox *mb = rstore__router_get(&s->router, region_id);
    if (mb == NULL)
        return;
    rstore__reader_invalidate(mb->reader);
    rstore__mailbox_unref(mb);
}

/* Records the monotonic time of Raft tick @tick (poller). */
void rstore__peer_note_tick(rstore_peer *p, uint64_t tick, uint64_t now_ns)
{
    p->tick_ns[tick % RSTORE_TICK_RING] = now_ns;
    p->tick_at[tick % RSTORE_TICK_RING] = tick;
}

void rstore__peer_update_reader(rstore_peer *p)
{
    rstore_reader *rd = p->mb ? p->mb->reader : NULL;
    if (rd == NULL)
        return;
    rstore *s = p->store;
    bool ok = !p->destroying && p->initialized && p->pending_rd == NULL &&
              rstore__peer_is_leader(p) && p->applied_term == raft_node_term(p->raft) &&
              raft_node_lease_valid(p->raft);
    uint64_t expire = 0;
    if (ok) {
        raft_status st;
        raft_node_status(p->raft, &st);
        uint64_t ack = raft_node_quorum_ack_tick(p->raft);
        ok =
            st.lead_transferee == RAFT_NONE && ack > 0 && p->tick_at[ack % RSTORE_TICK_RING] == ack;
        uint64_t margin = (uint64_t)s->opts.raft_election_timeout_ticks;
        if (ok && margin > 2)
            expire = p->tick_ns[ack % RSTORE_TICK_RING] +
                     (margin - 2) * s->opts.raft_base_tick_ms * 1000000ull;
        else
            ok = false;
    }
    pthread_mutex_lock(&rd->mu);
    rd->valid = ok;
    if (ok) {
        rd->expire_ns = expire;
        rd->term = raft_node_term(p->raft);
        rd->applied_index = p->applied_index;
        const Metapb__RegionEpoch *mine = p->region->region_epoch;
        const Metapb__RegionEpoch *theirs = rd->region ? rd->region->region_epoch : NULL;
        if (theirs == NULL || theirs->version != mine->version ||
            theirs->conf_ver != mine->conf_ver) {
            rstore__region_free(rd->region);
            rd->region = rstore__region_dup(p->region);
        }
    }
    pthread_mutex_unlock(&rd->mu);
}

bool rstore__local_read(rstore *s, const stor_ctx *ctx, stor_snap_cb cb, void *ud)
{
    if (ctx->replica_read || ctx->stale_read)
        return false;
    rstore_mailbox *mb = rstore__router_get(&s->router, ctx->region_id);
    if (mb == NULL)
        return false;
    rstore_reader *rd = mb->reader;
    stor_snap *snap = NULL;
    bool served = false;
    int rc = 0;
    pthread_mutex_lock(&rd->mu);
    if (rd->valid && rd->region && tkv_clock_mono_ns() < rd->expire_ns &&
        (!ctx->has_epoch || ctx->version == rd->region->region_epoch->version) &&
        (ctx->term == 0 || rd->term <= ctx->term + 1)) {
        eng_snap *es;
        rc = eng_snap_open(s->opts.kv, &es);
        if (rc == 0)
            rc = stor_snap_new(es, rd->region, &snap);
        if (rc == 0) {
            snap->term = rd->term;
            snap->applied_index = rd->applied_index;
        }
        served = true;
    }
    pthread_mutex_unlock(&rd->mu);
    rstore__mailbox_unref(mb);
    if (!served)
        return false;
    tkv_series_inc(s->m.proposal_local_read);
    cb(ud, rc, NULL, snap);
    return true;
}
