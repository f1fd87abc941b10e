/*
 * pd_region.c: one region as PD knows it: the region meta from the newest heartbeat, its
 * leader, down and pending peers (held together as an owned pdpb.Region message, which is
 * also the record persisted in storage and the shape of several responses), plus the
 * statistics of the heartbeat.
 *
 * Regions are immutable once built: an update builds a new pd_region and replaces the old
 * one in the tree, so a borrowed pointer never sees a half-updated region.
 */
#include "pd/pd_int.h"
#include "rpc/rpc.h"

int pd__msg_clone(const ProtobufCMessage *m, ProtobufCMessage **out)
{
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = rpc_msg_pack(m, &b);
    if (rc == 0)
        rc = rpc_msg_unpack(m->descriptor, tkv_buf_slice(&b), out);
    tkv_buf_deinit(&b);
    return rc == TKV_ECORRUPT ? -ENOMEM : rc;
}

/* Checks what every stored region must have: an id and an epoch. */
static int validate(const Pdpb__Region *pb)
{
    if (pb->region == NULL || pb->region->id == 0 || pb->region->region_epoch == NULL)
        return TKV_ECORRUPT;
    return 0;
}

int pd__region_new(const Metapb__Region *meta, const Metapb__Peer *leader,
                   Pdpb__PeerStats *const *down, size_t ndown, Metapb__Peer *const *pending,
                   size_t npending, pd_region **out)
{
    if (meta == NULL || meta->id == 0)
        return -EINVAL;
    Metapb__Region m = *meta;
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    if (m.region_epoch == NULL)
        m.region_epoch = &epoch;
    Pdpb__Region pb = PDPB__REGION__INIT;
    pb.region = &m;
    pb.leader = (Metapb__Peer *)leader;
    pb.n_down_peers = ndown;
    pb.down_peers = (Pdpb__PeerStats **)down;
    pb.n_pending_peers = npending;
    pb.pending_peers = (Metapb__Peer **)pending;
    pd_region *r = tkv_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    ProtobufCMessage *copy;
    int rc = pd__msg_clone(&pb.base, &copy);
    if (rc != 0) {
        tkv_free(r);
        return rc;
    }
    r->pb = (Pdpb__Region *)copy;
    *out = r;
    return 0;
}

int pd__region_decode(tkv_slice bytes, pd_region **out)
{
    ProtobufCMessage *m;
    int rc = rpc_msg_unpack(&pdpb__region__descriptor, bytes, &m);
    if (rc != 0)
        return rc;
    Pdpb__Region *pb = (Pdpb__Region *)m;
    rc = validate(pb);
    if (rc == 0) {
        pd_region *r = tkv_calloc(1, sizeof(*r));
        if (r == NULL) {
            rc = -ENOMEM;
        } else {
            r->pb = pb;
            *out = r;
            return 0;
        }
    }
    rpc_msg_free(m);
    return rc;
}

int pd__region_clone(const pd_region *src, pd_region **out)
{
    const Pdpb__Region *pb = src->pb;
    int rc = pd__region_new(pb->region, pb->leader, pb->down_peers, pb->n_down_peers,
                            pb->pending_peers, pb->n_pending_peers, out);
    if (rc == 0) {
        pd_region *r = *out;
        r->approximate_size = src->approximate_size;
        r->approximate_keys = src->approximate_keys;
        r->bytes_written = src->bytes_written;
        r->bytes_read = src->bytes_read;
        r->keys_written = src->keys_written;
        r->keys_read = src->keys_read;
        r->term = src->term;
        r->heartbeat_ms = src->heartbeat_ms;
    }
    return rc;
}

void pd__region_free(pd_region *r)
{
    if (r == NULL)
        return;
    rpc_msg_free(&r->pb->base);
    tkv_free(r);
}

Metapb__Peer *pd__region_store_peer(const pd_region *r, uint64_t store_id)
{
    const Metapb__Region *m = r->pb->region;
    for (size_t i = 0; i < m->n_peers; i++)
        if (m->peers[i]->store_id == store_id)
            return m->peers[i];
    return NULL;
}

Metapb__Peer *pd__region_peer(const pd_region *r, uint64_t peer_id)
{
    const Metapb__Region *m = r->pb->region;
    for (size_t i = 0; i < m->n_peers; i++)
        if (m->peers[i]->id == peer_id)
            return m->peers[i];
    return NULL;
}

uint64_t pd__region_leader_store(const pd_region *r)
{
    const Metapb__Peer *l = r->pb->leader;
    return (l != NULL && l->id != 0) ? l->store_id : 0;
}

bool pd__region_is_pending(const pd_region *r, uint64_t peer_id)
{
    for (size_t i = 0; i < r->pb->n_pending_peers; i++)
        if (r->pb->pending_peers[i]->id == peer_id)
            return true;
    return false;
}

bool pd__region_is_down(const pd_region *r, uint64_t peer_id)
{
    for (size_t i = 0; i < r->pb->n_down_peers; i++) {
        const Pdpb__PeerStats *ps = r->pb->down_peers[i];
        if (ps->peer != NULL && ps->peer->id == peer_id)
            return true;
    }
    return false;
}

size_t pd__region_voter_count(const pd_region *r)
{
    size_t n = 0;
    const Metapb__Region *m = r->pb->region;
    for (size_t i = 0; i < m->n_peers; i++)
        if (!pd__peer_is_learner(m->peers[i]))
            n++;
    return n;
}

uint64_t pd__region_size_mib(const pd_region *r)
{
    /* As PD: sizes are kept in MiB, and a non-empty region counts at least 1 MiB. */
    uint64_t mib = r->approximate_size >> 20;
    return (mib == 0 && r->approximate_size > 0) ? 1 : mib;
}
