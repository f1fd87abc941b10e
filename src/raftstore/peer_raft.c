/*
 * peer_raft.c: raft messages in and out of a peer: raft_serverpb.RaftMessage <->
 * raft_message, the checks TiKV makes before stepping (target peer, stale senders, gc
 * messages, snapshots that would overlap another replica), and batching to the transport.
 *
 * Thread: the poller's.
 */
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

/* ---- conversion --------------------------------------------------------------------- */

/* Fills @m from @pm, borrowing its bytes; entries go to a new array in *@ents (free it) and
 * the snapshot to @snap. Errors: TKV_ECORRUPT (an unknown type). */
static int from_pb(const Eraftpb__Message *pm, raft_message *m, raft_entry **ents,
                   raft_snapshot *snap)
{
    memset(m, 0, sizeof(*m));
    *ents = NULL;
    if ((unsigned)pm->msg_type >= RAFT_MSG_TYPE_COUNT)
        return TKV_ECORRUPT;
    m->msg_type = (raft_message_type)pm->msg_type;
    m->to = pm->to;
    m->from = pm->from;
    m->term = pm->term;
    m->log_term = pm->log_term;
    m->index = pm->index;
    m->commit = pm->commit;
    m->reject = pm->reject;
    m->reject_hint = pm->reject_hint;
    m->context = pm->context.data;
    m->context_len = pm->context.len;
    if (pm->n_entries) {
        *ents = tkv_xcalloc(pm->n_entries, sizeof(raft_entry));
        for (size_t i = 0; i < pm->n_entries; i++) {
            const Eraftpb__Entry *pe = pm->entries[i];
            if ((unsigned)pe->entry_type > RAFT_ENTRY_CONF_CHANGE) {
                tkv_free(*ents);
                *ents = NULL;
                return TKV_ECORRUPT;
            }
            (*ents)[i] = (raft_entry){(raft_entry_type)pe->entry_type,
                                      pe->term,
                                      pe->index,
                                      pe->data.data,
                                      pe->data.len,
                                      pe->context.data,
                                      pe->context.len};
        }
        m->entries = *ents;
        m->n_entries = pm->n_entries;
    }
    if (pm->snapshot && pm->snapshot->metadata) {
        const Eraftpb__SnapshotMetadata *md = pm->snapshot->metadata;
        memset(snap, 0, sizeof(*snap));
        snap->metadata.index = md->index;
        snap->metadata.term = md->term;
        if (md->conf_state) {
            const Eraftpb__ConfState *cs = md->conf_state;
            if (cs->n_voters > RAFT_MAX_MEMBERS || cs->n_learners > RAFT_MAX_MEMBERS) {
                tkv_free(*ents);
                *ents = NULL;
                return TKV_ECORRUPT;
            }
            if (cs->n_voters)
                memcpy(snap->metadata.conf_state.voters, cs->voters,
                       cs->n_voters * sizeof(uint64_t));
            snap->metadata.conf_state.n_voters = cs->n_voters;
            if (cs->n_learners)
                memcpy(snap->metadata.conf_state.learners, cs->learners,
                       cs->n_learners * sizeof(uint64_t));
            snap->metadata.conf_state.n_learners = cs->n_learners;
        }
        snap->data = pm->snapshot->data.data;
        snap->data_len = pm->snapshot->data.len;
        m->snapshot = snap;
    }
    return 0;
}

/* Packs @m for the wire inside a RaftMessage from @p to @to into @out. */
static void pack_raft_message(rstore_peer *p, const raft_message *m, const Metapb__Peer *from,
                              const Metapb__Peer *to, tkv_buf *out)
{
    Eraftpb__Message pm = ERAFTPB__MESSAGE__INIT;
    pm.msg_type = (Eraftpb__MessageType)m->msg_type;
    pm.to = m->to;
    pm.from = m->from;
    pm.term = m->term;
    pm.log_term = m->log_term;
    pm.index = m->index;
    pm.commit = m->commit;
    pm.reject = m->reject;
    pm.reject_hint = m->reject_hint;
    pm.context.data = m->context;
    pm.context.len = m->context_len;
    Eraftpb__Entry *ents = NULL, **eptrs = NULL;
    if (m->n_entries) {
        ents = tkv_xcalloc(m->n_entries, sizeof(*ents));
        eptrs = tkv_xcalloc(m->n_entries, sizeof(Eraftpb__Entry *));
        for (size_t i = 0; i < m->n_entries; i++) {
            const raft_entry *e = &m->entries[i];
            eraftpb__entry__init(&ents[i]);
            ents[i].entry_type = (Eraftpb__EntryType)e->entry_type;
            ents[i].term = e->term;
            ents[i].index = e->index;
            ents[i].data.data = e->data;
            ents[i].data.len = e->data_len;
            ents[i].context.data = e->context;
            ents[i].context.len = e->context_len;
            eptrs[i] = &ents[i];
        }
        pm.entries = eptrs;
        pm.n_entries = m->n_entries;
    }
    Eraftpb__Snapshot ps = ERAFTPB__SNAPSHOT__INIT;
    Eraftpb__SnapshotMetadata md = ERAFTPB__SNAPSHOT_METADATA__INIT;
    Eraftpb__ConfState cs = ERAFTPB__CONF_STATE__INIT;
    raft_conf_state rcs;
    if (m->snapshot) {
        rcs = m->snapshot->metadata.conf_state;
        cs.voters = rcs.voters;
        cs.n_voters = rcs.n_voters;
        cs.learners = rcs.learners;
        cs.n_learners = rcs.n_learners;
        md.conf_state = &cs;
        md.index = m->snapshot->metadata.index;
        md.term = m->snapshot->metadata.term;
        ps.metadata = &md;
        ps.data.data = m->snapshot->data;
        ps.data.len = m->snapshot->data_len;
        pm.snapshot = &ps;
    }
    RaftServerpb__RaftMessage rm = RAFT_SERVERPB__RAFT_MESSAGE__INIT;
    rm.region_id = p->region_id;
    rm.from_peer = (Metapb__Peer *)from;
    rm.to_peer = (Metapb__Peer *)to;
    rm.message = &pm;
    rm.region_epoch = p->region->region_epoch;
    rm.start_key = p->region->start_key;
    rm.end_key = p->region->end_key;
    rstore__pack(&rm.base, out);
    tkv_free(ents);
    tkv_free(eptrs);
}

/* Finds member @id of @p's region or among peers learned from messages; fills @out. */
static bool find_peer(rstore_peer *p, uint64_t id, Metapb__Peer *out)
{
    const Metapb__Peer *rp = rstore__region_peer(p->region, id);
    if (rp) {
        *out = *rp;
        return true;
    }
    for (size_t i = 0; i < p->n_known; i++) {
        if (p->known[i].id == id) {
            metapb__peer__init(out);
            out->id = id;
            out->store_id = p->known[i].store_id;
            return true;
        }
    }
    return false;
}

static void learn_peer(rstore_peer *p, const Metapb__Peer *peer)
{
    for (size_t i = 0; i < p->n_known; i++) {
        if (p->known[i].id == peer->id) {
            p->known[i].store_id = peer->store_id;
            return;
        }
    }
    size_t i = p->n_known < RAFT_MAX_MEMBERS ? p->n_known++ : (size_t)(peer->id % RAFT_MAX_MEMBERS);
    p->known[i].id = peer->id;
    p->known[i].store_id = peer->store_id;
}

void rstore__peer_send(rstore_peer *p, const raft_message *msgs, size_t n)
{
    rstore *s = p->store;
    Metapb__Peer self = METAPB__PEER__INIT;
    if (!find_peer(p, p->peer_id, &self)) {
        self.id = p->peer_id;
        self.store_id = s->store_id;
    }
    tkv_buf packed;
    tkv_buf_init(&packed);
    for (size_t i = 0; i < n; i++) {
        const raft_message *m = &msgs[i];
        Metapb__Peer to;
        if (!find_peer(p, m->to, &to)) {
            TKV_LOG_DEBUG("dropping message to an unknown peer",
                          TKV_LF_U64("region_id", p->region_id), TKV_LF_U64("to", m->to));
            continue;
        }
        if (to.store_id == s->store_id)
            continue; /* never ours: two replicas of a region never share a store */
        pack_raft_message(p, m, &self, &to, &packed);
        if ((unsigned)m->msg_type < RAFT_MSG_TYPE_COUNT)
            tkv_series_inc(s->m.raft_sent[m->msg_type]);
        if (m->msg_type == RAFT_MSG_SNAPSHOT && m->snapshot) {
            rstore_task *t = rstore__task_new(RSTORE_TASK_SEND_SNAP, p->region_id);
            t->a = to.store_id;
            t->b = to.id;
            t->c = m->snapshot->metadata.term;
            t->d = m->snapshot->metadata.index;
            t->buf = packed;
            tkv_buf_init(&packed);
            rstore__worker_push(&s->snap_worker, t);
            continue;
        }
        rstore__transport_send(&s->transport, to.store_id, p->region_id, to.id,
                               tkv_buf_slice(&packed));
    }
    tkv_buf_deinit(&packed);
}

void rstore__send_tombstone(rstore *s, uint64_t region_id, const Metapb__Peer *to,
                            const Metapb__Peer *from, uint64_t conf_ver, uint64_t version)
{
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    ep.conf_ver = conf_ver;
    ep.version = version;
    RaftServerpb__RaftMessage rm = RAFT_SERVERPB__RAFT_MESSAGE__INIT;
    rm.region_id = region_id;
    rm.from_peer = (Metapb__Peer *)from;
    rm.to_peer = (Metapb__Peer *)to;
    rm.region_epoch = &ep;
    rm.is_tombstone = true;
    tkv_buf packed;
    tkv_buf_init(&packed);
    rstore__pack(&rm.base, &packed);
    rstore__transport_send(&s->transport, to->store_id, region_id, to->id, tkv_buf_slice(&packed));
    tkv_buf_deinit(&packed);
}

/* ---- incoming ----------------------------------------------------------------------- */

void rstore__peer_heard(rstore_peer *p, uint64_t from_peer_id, uint64_t now_ms)
{
    for (size_t i = 0; i < p->n_heard; i++) {
        if (p->heard_peer[i] == from_peer_id) {
            p->heard_ms[i] = now_ms;
            return;
        }
    }
    if (p->n_heard < RAFT_MAX_MEMBERS) {
        p->heard_peer[p->n_heard] = from_peer_id;
        p->heard_ms[p->n_heard++] = now_ms;
    }
}

/* Returns whether a MsgSnapshot may be stepped: the region matches, it does not overlap
 * another replica here, it is not older than what we have, and its file arrived. */
static bool check_snapshot(rstore_peer *p, const RaftServerpb__RaftMessage *rm)
{
    rstore *s = p->store;
    const Eraftpb__Snapshot *snap = rm->message->snapshot;
    if (snap == NULL || snap->metadata == NULL)
        return false;
    rstore_snap_meta meta;
    if (rstore__snap_meta_decode(tkv_slice_of(snap->data.data, snap->data.len), &meta) != 0)
        return false;
    const Metapb__Region *region = meta.region;
    bool ok = region->id == p->region_id;
    if (ok && p->initialized) {
        const Metapb__RegionEpoch *mine = p->region->region_epoch;
        const Metapb__RegionEpoch *theirs = region->region_epoch;
        if (theirs->conf_ver < mine->conf_ver || theirs->version < mine->version)
            ok = false;
    }
    if (ok && snap->metadata->index <= p->ps.truncated_index)
        ok = false;
    if (ok) {
        tkv_slice start = tkv_slice_of(region->start_key.data, region->start_key.len);
        tkv_slice end = tkv_slice_of(region->end_key.data, region->end_key.len);
        uint64_t other = rstore__meta_overlap(&s->meta, start, end, p->region_id);
        if (other != 0) {
            TKV_LOG_INFO("snapshot overlaps another region, dropped",
                         TKV_LF_U64("region_id", p->region_id), TKV_LF_U64("other", other));
            ok = false;
        }
    }
    if (ok) {
        char path[512];
        rstore__snap_path(s, false, p->region_id, snap->metadata->term, snap->metadata->index, path,
                          sizeof(path));
        ok = rstore__snap_check_file(s, path, tkv_slice_of(snap->data.data, snap->data.len)) == 0;
    }
    rstore__snap_meta_deinit(&meta);
    return ok;
}

/* Handles a gc message: the sender says this peer was removed. */
static void on_gc_message(rstore_peer *p, const RaftServerpb__RaftMessage *rm)
{
    if (rm->to_peer->id != p->peer_id)
        return;
    if (p->initialized && rm->region_epoch &&
        rm->region_epoch->conf_ver < p->region->region_epoch->conf_ver)
        return; /* an older view than ours */
    if (p->initialized && rstore__region_peer(p->region, p->peer_id) && rm->region_epoch &&
        rm->region_epoch->conf_ver == p->region->region_epoch->conf_ver)
        return; /* same membership that still has us: not stale */
    TKV_LOG_INFO("peer told it is stale", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_U64("peer_id", p->peer_id));
    rstore__peer_start_destroy(p, false);
}

void rstore__peer_on_raft(rstore_peer *p, RaftServerpb__RaftMessage *rm)
{
    rstore *s = p->store;
    const Eraftpb__Message *pm = rm->message;
    if (rm->to_peer == NULL || rm->from_peer == NULL) {
        protobuf_c_message_free_unpacked(&rm->base, NULL);
        return;
    }
    if (rm->is_tombstone) {
        on_gc_message(p, rm);
        protobuf_c_message_free_unpacked(&rm->base, NULL);
        return;
    }
    if (pm == NULL || p->pending_rd) {
        protobuf_c_message_free_unpacked(&rm->base, NULL);
        return;
    }
    if (rm->to_peer->id != p->peer_id) {
        if (rm->to_peer->id > p->peer_id) {
            /* The region has a newer replica for this store: ours was removed. */
            TKV_LOG_INFO("newer peer id for this store, destroying the old one",
                         TKV_LF_U64("region_id", p->region_id), TKV_LF_U64("peer_id", p->peer_id),
                         TKV_LF_U64("new_peer_id", rm->to_peer->id));
            rstore__peer_start_destroy(p, false);
        }
        protobuf_c_message_free_unpacked(&rm->base, NULL);
        return;
    }
    if (p->initialized && rm->region_epoch &&
        rstore__region_peer(p->region, rm->from_peer->id) == NULL &&
        rm->region_epoch->conf_ver < p->region->region_epoch->conf_ver) {
        /* The sender was removed from the group: tell it so it can destroy itself. */
        const Metapb__Peer *self = rstore__region_peer(p->region, p->peer_id);
        if (self)
            rstore__send_tombstone(s, p->region_id, rm->from_peer, self,
                                   p->region->region_epoch->conf_ver,
                                   p->region->region_epoch->version);
        protobuf_c_message_free_unpacked(&rm->base, NULL);
        return;
    }
    learn_peer(p, rm->from_peer);
    rstore__peer_heard(p, rm->from_peer->id, tkv_clock_mono_ms());
    if (pm->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot && !check_snapshot(p, rm)) {
        protobuf_c_message_free_unpacked(&rm->base, NULL);
        return;
    }
    raft_message m;
    raft_entry *ents;
    raft_snapshot snap;
    int rc = from_pb(pm, &m, &ents, &snap);
    if (rc == 0) {
        rc = raft_node_step(p->raft, &m);
        if (rc != 0 && rc != TKV_EDROPPED)
            TKV_LOG_DEBUG("raft message not stepped", TKV_LF_U64("region_id", p->region_id),
                          TKV_LF_STR("type", raft_message_type_name(m.msg_type)),
                          TKV_LF_ERR("err", rc));
    }
    tkv_free(ents);
    protobuf_c_message_free_unpacked(&rm->base, NULL);
}
