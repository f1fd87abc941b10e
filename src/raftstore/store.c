/*
 * store.c: the store (TiKV's RaftBatchSystem + Node): options, open (identity, bootstrap,
 * loading), start and stop of the threads, the store-level messages the poller handles
 * (raft messages for regions without a peer here: TiKV's maybe_create_peer), peers created
 * by splits, and the administrative API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

int rstore__load_ident(rstore *s, char *errmsg);
int rstore__bootstrap_standalone(rstore *s, Metapb__Region **created, char *errmsg);
int rstore__bootstrap_cluster(rstore *s, const Metapb__Store *store, Metapb__Region **created,
                              char *errmsg);
int rstore__load_regions(rstore *s, char *errmsg);

void rstore_opts_init(rstore_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->standalone_store_id = 1;
    o->raft_base_tick_ms = 1000;
    o->raft_heartbeat_ticks = 2;
    o->raft_election_timeout_ticks = 10;
    o->raft_max_size_per_msg = 1u << 20;
    o->raft_max_inflight_msgs = 256;
    o->raft_entry_max_size = 8u << 20;
    o->sync_log = true;
    o->region_split_size = 96u << 20;
    o->region_max_size = 144u << 20;
    o->region_split_keys = 960000;
    o->region_max_keys = 1440000;
    o->region_split_check_diff = o->region_split_size / 16;
    o->raft_log_gc_tick_ms = 10000;
    o->raft_log_gc_threshold = 50;
    o->raft_log_gc_count_limit = o->region_split_size * 3 / 4 / 1024;
    o->raft_log_gc_size_limit = o->region_split_size * 3 / 4;
    o->split_check_tick_ms = 10000;
    o->pd_heartbeat_tick_ms = 60000;
    o->pd_store_heartbeat_tick_ms = 10000;
    o->max_peer_down_ms = 600000;
    o->mailbox_capacity = 4096;
}

void rstore__must_write(eng_db *db, eng_batch *b, bool sync, const char *what)
{
    int rc = eng_write(db, b, sync);
    if (rc != 0) {
        TKV_LOG_FATAL("engine write failed", TKV_LF_STR("what", what), TKV_LF_ERR("err", rc),
                      TKV_LF_STR("cause", eng_errmsg(db)));
        abort();
    }
}

/* ---- peers list (poller-owned) ------------------------------------------------------- */

void rstore__store_add_peer(rstore *s, rstore_peer *p)
{
    if (s->n_peers == s->cap_peers) {
        size_t cap = s->cap_peers ? s->cap_peers * 2 : 16;
        s->peers = tkv_xrealloc(s->peers, cap * sizeof(rstore_peer *));
        s->cap_peers = cap;
    }
    s->peers[s->n_peers++] = p;
}

void rstore__store_remove_peer(rstore *s, rstore_peer *p)
{
    for (size_t i = 0; i < s->n_peers; i++) {
        if (s->peers[i] == p) {
            s->peers[i] = s->peers[--s->n_peers];
            break;
        }
    }
    rstore_msg *left = rstore__router_unregister(&s->router, p->mb);
    while (left) {
        rstore_msg *next = left->next;
        rstore__msg_free(left, 0);
        left = next;
    }
    p->destroyed = true;
    p->free_next = s->to_free;
    s->to_free = p;
}

void rstore__store_free_destroyed(rstore *s)
{
    while (s->to_free) {
        rstore_peer *p = s->to_free;
        s->to_free = p->free_next;
        if (p->pending_rd) {
            /* A Ready parked for a snapshot: the node is freed with it. */
            p->pending_rd = NULL;
            if (p->snap_applying)
                atomic_fetch_sub(&s->stat_applying, 1);
        }
        rstore__peer_free(p);
    }
}

static rstore_peer *find_peer(rstore *s, uint64_t region_id)
{
    for (size_t i = 0; i < s->n_peers; i++)
        if (s->peers[i]->region_id == region_id)
            return s->peers[i];
    return NULL;
}

/* ---- store-level messages ---------------------------------------------------------------- */

/* Returns whether @rm, for a region whose replica here was destroyed, is stale: it comes
 * from an older membership or names the destroyed replica. A sender that is not a member of
 * the membership the tombstone knows, and whose view is older, was removed as well: it is
 * told so (a gc message), so it can destroy itself instead of campaigning forever. */
static bool stale_for_tombstone(rstore *s, const RaftServerpb__RaftMessage *rm,
                                const rstore_tombstone *t)
{
    uint64_t conf_ver = rm->region_epoch ? rm->region_epoch->conf_ver : 0;
    bool stale = conf_ver < t->conf_ver || (t->peer_id != 0 && rm->to_peer->id <= t->peer_id);
    if (!stale)
        return false;
    bool member = false;
    for (size_t i = 0; i < t->n_members; i++)
        member |= t->members[i] == rm->from_peer->id;
    if (!member && conf_ver < t->conf_ver)
        rstore__send_tombstone(s, rm->region_id, rm->from_peer, rm->to_peer, t->conf_ver,
                               t->version);
    return true;
}

/* TiKV's is_initial_msg: only a vote or a leader's first heartbeat may create a peer. */
static bool is_initial_msg(const Eraftpb__Message *m)
{
    return m->msg_type == ERAFTPB__MESSAGE_TYPE__MsgRequestVote ||
           m->msg_type == ERAFTPB__MESSAGE_TYPE__MsgRequestPreVote ||
           (m->msg_type == ERAFTPB__MESSAGE_TYPE__MsgHeartbeat && m->commit == 0);
}

/* Creates an uninitialized peer for a region this store does not have yet when the message
 * allows it (TiKV's maybe_create_peer). Returns the peer, or NULL. */
static rstore_peer *maybe_create_peer(rstore *s, const RaftServerpb__RaftMessage *rm)
{
    if (rm->is_tombstone || rm->message == NULL)
        return NULL;
    const rstore_tombstone *t = rstore__meta_tombstone(&s->meta, rm->region_id);
    if (t != NULL && stale_for_tombstone(s, rm, t))
        return NULL;
    if (!is_initial_msg(rm->message))
        return NULL;
    tkv_slice start = tkv_slice_of(rm->start_key.data, rm->start_key.len);
    tkv_slice end = tkv_slice_of(rm->end_key.data, rm->end_key.len);
    uint64_t other = rstore__meta_overlap(&s->meta, start, end, rm->region_id);
    if (other != 0) {
        TKV_LOG_DEBUG("not creating a peer over an existing region",
                      TKV_LF_U64("region_id", rm->region_id), TKV_LF_U64("other", other));
        return NULL;
    }
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    Metapb__Region r = METAPB__REGION__INIT;
    r.id = rm->region_id;
    r.region_epoch = &ep;
    Metapb__Region *region = rstore__region_dup(&r);
    rstore_peer *p;
    int rc = rstore__peer_create(s, region, rm->to_peer->id, false, &p);
    if (rc != 0) {
        TKV_LOG_WARN("creating a peer failed", TKV_LF_U64("region_id", rm->region_id),
                     TKV_LF_ERR("err", rc));
        rstore__region_free(region);
        return NULL;
    }
    rstore__store_add_peer(s, p);
    TKV_LOG_INFO("created peer from a raft message", TKV_LF_U64("region_id", rm->region_id),
                 TKV_LF_U64("peer_id", rm->to_peer->id));
    return p;
}

void rstore__store_handle_ctl(rstore *s, rstore_msg *m, rstore_peer **touched)
{
    if (m->type != RSTORE_MSG_RAFT && m->type != RSTORE_MSG_SNAP_RECEIVED) {
        rstore__msg_free(m, 0);
        return;
    }
    RaftServerpb__RaftMessage *rm = m->u.raft;
    rstore_peer *p = find_peer(s, rm->region_id);
    if (p == NULL)
        p = maybe_create_peer(s, rm);
    if (p == NULL || p->destroyed) {
        rstore__msg_free(m, 0);
        return;
    }
    rstore__peer_handle(p, m);
    if (!p->touched) {
        p->touched = true;
        p->round_next = *touched;
        *touched = p;
    }
}

/* ---- splits --------------------------------------------------------------------------- */

void rstore__store_on_split(rstore *s, rstore_peer *from, Metapb__Region *const *regions, size_t n,
                            bool campaign)
{
    (void)from;
    for (size_t i = 0; i < n; i++) {
        const Metapb__Region *r = regions[i];
        if (r->id == from->region_id)
            continue;
        const Metapb__Peer *mine = rstore__region_store_peer(r, s->store_id);
        if (mine == NULL)
            continue;
        rstore_peer *old = find_peer(s, r->id);
        if (old && old->initialized)
            continue; /* a snapshot got there first: it is newer */
        if (old) {
            /* An uninitialized replica created by a message from the new region's leader:
             * the split supersedes it (it has no data). */
            rstore__store_remove_peer(s, old);
        }
        const rstore_tombstone *t = rstore__meta_tombstone(&s->meta, r->id);
        if (t && t->peer_id >= mine->id)
            continue;
        rstore_peer *p;
        Metapb__Region *copy = rstore__region_dup(r);
        int rc = rstore__peer_create(s, copy, mine->id, true, &p);
        if (rc != 0) {
            TKV_LOG_ERROR("creating a split region's peer failed", TKV_LF_U64("region_id", r->id),
                          TKV_LF_ERR("err", rc));
            rstore__region_free(copy);
            continue;
        }
        rstore__meta_set(&s->meta, copy);
        rstore__store_add_peer(s, p);
        if (campaign) {
            /* The parent's leader store campaigns for the new region at once (TiKV does the
             * same), so it does not wait an election timeout without a leader. */
            rstore_msg *m = rstore__msg_new(RSTORE_MSG_CAMPAIGN, r->id);
            rstore__router_send_or_free(&s->router, m);
        }
    }
}

/* ---- open / start / stop ------------------------------------------------------------------ */

static char *dup_or_null(const char *sdup)
{
    return sdup ? tkv_xstrdup(sdup) : NULL;
}

int rstore_open(const rstore_opts *o, rstore **out, char errmsg[TKV_ERRMSG_LEN])
{
    *out = NULL;
    if (errmsg)
        errmsg[0] = '\0';
    if (o == NULL || o->kv == NULL || o->raft == NULL || o->snap_dir == NULL) {
        if (errmsg)
            snprintf(errmsg, TKV_ERRMSG_LEN,
                     "raftstore needs a kv engine, a raft engine and a "
                     "snapshot directory");
        return -EINVAL;
    }
    if (mkdir(o->snap_dir, 0700) != 0 && errno != EEXIST) {
        int rc = -errno;
        if (errmsg)
            snprintf(errmsg, TKV_ERRMSG_LEN, "create snapshot directory %s: %s", o->snap_dir,
                     tkv_strerror(rc));
        return rc;
    }
    rstore *s = tkv_xcalloc(1, sizeof(*s));
    s->opts = *o;
    if (s->opts.raft_base_tick_ms == 0)
        s->opts.raft_base_tick_ms = 1000;
    if (s->opts.mailbox_capacity == 0)
        s->opts.mailbox_capacity = 4096;
    s->snap_dir = tkv_xstrdup(o->snap_dir);
    s->data_dir = dup_or_null(o->data_dir);
    s->version = tkv_xstrdup(o->version ? o->version : "");
    s->opts.snap_dir = s->snap_dir;
    s->opts.data_dir = s->data_dir;
    s->opts.version = s->version;
    s->start_time_s = tkv_clock_real_ms() / 1000;
    atomic_init(&s->accepting, false);
    pthread_mutex_init(&s->snap_recv_mu, NULL);
    pthread_mutex_init(&s->poller.mu, NULL);
    pthread_cond_init(&s->poller.cv, NULL);
    rstore__metrics_init(&s->m);
    int rc = rstore__router_init(&s->router, &s->poller, s->opts.mailbox_capacity);
    if (rc == 0)
        rc = rstore__apply_init(&s->apply, s);
    if (rc == 0)
        rc = rstore__transport_init(&s->transport, s);
    if (rc != 0) {
        if (errmsg)
            snprintf(errmsg, TKV_ERRMSG_LEN, "raftstore init: %s", tkv_strerror(rc));
        rstore_free(s);
        return rc;
    }
    rc = rstore__load_ident(s, errmsg);
    if (rc == 0)
        rc = rstore__load_regions(s, errmsg);
    if (rc == 0 && s->opts.pd == NULL && s->n_peers == 0) {
        Metapb__Region *first;
        rc = rstore__bootstrap_standalone(s, &first, errmsg);
        if (rc == 0) {
            rstore_peer *p;
            rc = rstore__peer_create(s, first, first->peers[0]->id, true, &p);
            if (rc == 0) {
                rstore__peer_register_apply(p);
                rstore__meta_set(&s->meta, first);
                rstore__store_add_peer(s, p);
            } else {
                rstore__region_free(first);
            }
        }
    }
    if (rc != 0) {
        rstore_free(s);
        return rc;
    }
    TKV_LOG_INFO("raftstore opened", TKV_LF_U64("store_id", s->store_id),
                 TKV_LF_U64("cluster_id", s->cluster_id), TKV_LF_U64("regions", s->n_peers));
    *out = s;
    return 0;
}

static void fill_store(const rstore *s, Metapb__Store *st)
{
    metapb__store__init(st);
    st->id = s->store_id;
    st->address = (char *)s->addr;
    st->status_address = (char *)s->status_addr;
    st->version = s->version[0] ? s->version : "6.5.0";
    st->state = METAPB__STORE_STATE__Up;
    st->start_timestamp = (int64_t)s->start_time_s;
}

int rstore_start(rstore *s, const char *addr, const char *status_addr, char errmsg[TKV_ERRMSG_LEN])
{
    if (errmsg)
        errmsg[0] = '\0';
    snprintf(s->addr, sizeof(s->addr), "%s", addr ? addr : "");
    snprintf(s->status_addr, sizeof(s->status_addr), "%s", status_addr ? status_addr : "");
    int rc = 0;
    if (s->opts.pd) {
        Metapb__Store st;
        fill_store(s, &st);
        Metapb__Region *first = NULL;
        rc = rstore__bootstrap_cluster(s, &st, &first, errmsg);
        if (rc == 0 && first && find_peer(s, first->id) == NULL) {
            rstore_peer *p;
            rc = rstore__peer_create(s, first, first->peers[0]->id, true, &p);
            if (rc == 0) {
                rstore__peer_register_apply(p);
                rstore__meta_set(&s->meta, first);
                rstore__store_add_peer(s, p);
                first = NULL;
            }
        }
        rstore__region_free(first);
        if (rc == 0) {
            rc = pdc_put_store(s->opts.pd, &st);
            if (rc != 0 && errmsg)
                snprintf(errmsg, TKV_ERRMSG_LEN, "register the store with PD: %s (%s)",
                         pdc_errmsg(s->opts.pd), tkv_strerror(rc));
        }
        if (rc != 0)
            return rc;
    }
    atomic_store(&s->accepting, true);
    rc = rstore__apply_start(&s->apply);
    if (rc == 0)
        rc = rstore__worker_start(&s->worker, s, "rstore-worker", rstore__run_worker_task);
    if (rc == 0)
        rc = rstore__worker_start(&s->snap_worker, s, "rstore-snap", rstore__run_snap_task);
    if (rc == 0)
        rc = rstore__worker_start(&s->pd_worker, s, "rstore-pd", rstore__run_pd_task);
    if (rc == 0) {
        rc = -pthread_create(&s->poll_thread, NULL, rstore__poller_main, s);
        if (rc == 0)
            pthread_setname_np(s->poll_thread, "rstore-poll");
    }
    if (rc != 0) {
        if (errmsg)
            snprintf(errmsg, TKV_ERRMSG_LEN, "start raftstore threads: %s", tkv_strerror(rc));
        rstore_stop(s);
        return rc;
    }
    s->started = true;
    if (s->opts.pd) {
        rc = pdc_region_heartbeat_start(s->opts.pd, rstore__on_pd_heartbeat, s);
        if (rc != 0)
            TKV_LOG_WARN("region heartbeat stream not started", TKV_LF_ERR("err", rc));
    }
    /* A region whose only voter is this store elects itself at once. */
    for (size_t i = 0; i < s->n_peers; i++) {
        rstore_peer *p = s->peers[i];
        raft_conf_state cs;
        rstore__region_conf_state(p->region, &cs);
        if (cs.n_voters == 1 && cs.voters[0] == p->peer_id) {
            rstore_msg *m = rstore__msg_new(RSTORE_MSG_CAMPAIGN, p->region_id);
            rstore__router_send_or_free(&s->router, m);
        }
    }
    TKV_LOG_INFO("raftstore started", TKV_LF_U64("store_id", s->store_id),
                 TKV_LF_STR("addr", s->addr));
    return 0;
}

void rstore_stop(rstore *s)
{
    if (s == NULL || s->stopped)
        return;
    s->stopped = true;
    atomic_store(&s->accepting, false);
    rstore__router_close(&s->router);
    if (s->started) {
        pthread_mutex_lock(&s->poller.mu);
        s->poller.stop = true;
        pthread_cond_signal(&s->poller.cv);
        pthread_mutex_unlock(&s->poller.mu);
        pthread_join(s->poll_thread, NULL);
    }
    /* Requests the poller still held get their answer now; proposals already handed to the
     * apply thread are answered by it. */
    for (size_t i = 0; i < s->n_peers; i++)
        rstore__peer_fail_all(s->peers[i], TKV_ECLOSED);
    rstore__apply_stop(&s->apply);
    rstore__worker_stop(&s->snap_worker);
    rstore__worker_stop(&s->pd_worker);
    rstore__worker_stop(&s->worker);
    TKV_LOG_INFO("raftstore stopped", TKV_LF_U64("store_id", s->store_id));
}

void rstore_free(rstore *s)
{
    if (s == NULL)
        return;
    rstore_stop(s);
    for (size_t i = 0; i < s->n_peers; i++) {
        rstore_peer *p = s->peers[i];
        rstore_msg *left = rstore__router_unregister(&s->router, p->mb);
        while (left) {
            rstore_msg *next = left->next;
            rstore__msg_free(left, TKV_ECLOSED);
            left = next;
        }
        rstore__peer_free(p);
    }
    tkv_free(s->peers);
    rstore__store_free_destroyed(s);
    rstore_msg *ctl = s->poller.ctl_head;
    while (ctl) {
        rstore_msg *next = ctl->next;
        rstore__msg_free(ctl, TKV_ECLOSED);
        ctl = next;
    }
    while (s->poller.ready_head) {
        rstore_mailbox *mb = s->poller.ready_head;
        s->poller.ready_head = mb->ready_next;
        rstore__mailbox_unref(mb);
    }
    if (s->apply.dels)
        rstore__apply_deinit(&s->apply);
    if (s->transport.client)
        rstore__transport_deinit(&s->transport);
    if (s->router.slots)
        rstore__router_deinit(&s->router);
    rstore__snap_recv_free_all(s);
    rstore__meta_deinit(&s->meta);
    pthread_mutex_destroy(&s->snap_recv_mu);
    pthread_mutex_destroy(&s->poller.mu);
    pthread_cond_destroy(&s->poller.cv);
    tkv_free(s->snap_dir);
    tkv_free(s->data_dir);
    tkv_free(s->version);
    tkv_free(s);
}

/* ---- accessors and the administrative API ---------------------------------------------- */

uint64_t rstore_store_id(const rstore *s)
{
    return s->store_id;
}

uint64_t rstore_cluster_id(const rstore *s)
{
    return s->cluster_id;
}

void rstore_stats_get(rstore *s, rstore_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->regions = atomic_load(&s->stat_regions);
    st->leaders = atomic_load(&s->stat_leaders);
    st->applying_snapshots = atomic_load(&s->stat_applying);
    st->snapshots_sent = atomic_load(&s->stat_snap_sent);
    st->snapshots_received = atomic_load(&s->stat_snap_received);
    st->snapshots_applied = atomic_load(&s->stat_snap_applied);
    st->log_compactions = atomic_load(&s->stat_compactions);
    st->splits = atomic_load(&s->stat_splits);
    st->disk_full_refused = atomic_load(&s->stat_disk_full_refused);
    st->range_compactions = atomic_load(&s->stat_range_compactions);
}

size_t rstore_region_ids(rstore *s, uint64_t *ids, size_t cap)
{
    return rstore__router_region_ids(&s->router, ids, cap);
}

static int send_admin(rstore *s, rstore_msg *m)
{
    int rc = rstore__router_send(&s->router, m, false);
    if (rc != 0)
        rstore__msg_free(m, rc);
    return rc;
}

int rstore_transfer_leader(rstore *s, uint64_t region_id, uint64_t to_store_id)
{
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_TRANSFER, region_id);
    m->u64a = to_store_id;
    return send_admin(s, m);
}

int rstore_change_peer(rstore *s, uint64_t region_id, bool remove, bool learner, uint64_t peer_id,
                       uint64_t store_id)
{
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_CHANGE_PEER, region_id);
    m->u64a = peer_id;
    m->u64b = store_id;
    m->flags = (remove ? 1u : 0u) | (learner ? 2u : 0u);
    return send_admin(s, m);
}

int rstore_compact_log(rstore *s, uint64_t region_id, bool force)
{
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_COMPACT, region_id);
    m->flags = force ? 1u : 0u;
    return send_admin(s, m);
}

int rstore_region_info_get(rstore *s, uint64_t region_id, int64_t timeout_ms,
                           rstore_region_info *info)
{
    memset(info, 0, sizeof(*info));
    rstore_query *q = tkv_calloc(1, sizeof(*q));
    if (q == NULL)
        return -ENOMEM;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &ca);
    pthread_condattr_destroy(&ca);
    q->refs = 2;
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_QUERY, region_id);
    m->u.query = q;
    int rc = rstore__router_send(&s->router, m, false);
    if (rc != 0) {
        rstore__msg_free(m, rc); /* drops the poller's reference */
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
        tkv_free(q);
        return rc == TKV_ENOTFOUND ? 0 : rc; /* not found: info->found stays false */
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->mu);
    while (!q->done && pthread_cond_timedwait(&q->cv, &q->mu, &ts) == 0) {
    }
    rc = q->done ? 0 : -ETIMEDOUT;
    if (q->done)
        *info = q->info;
    bool last = --q->refs == 0;
    pthread_mutex_unlock(&q->mu);
    if (last) {
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
        tkv_free(q);
    }
    return rc;
}
