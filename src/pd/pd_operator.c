/*
 * pd_operator.c: operators (PD's design: a list of steps for one region, advanced as the
 * region's heartbeats show each step done) and the operator controller (at most one
 * operator per region, dispatch on heartbeats, timeouts, outcome records for GetOperator).
 *
 * Steps and the command each sends on the region heartbeat stream:
 *   add learner    ChangePeer{AddLearnerNode, peer{id, store, Learner}}; done when the store
 *                  has that learner and it is not pending (caught up), or it became a voter.
 *                  Not re-sent while the peer exists but is pending (its snapshot is on the
 *                  way).
 *   promote        ChangePeer{AddNode, peer{id, store, Voter}}; done when the peer is a voter.
 *   remove         ChangePeer{RemoveNode, the region's peer on the store}; done when the store
 *                  has no peer of the region.
 *   transfer       TransferLeader{peer on the store, peers=[it]}; done when the leader is on
 *                  the store.
 *   split          SplitRegion{policy, keys}; done when the region's range changed.
 * Adding a peer is always "add learner, then promote" (single-step conf changes; a learner
 * gets its snapshot without touching the quorum). The current step is sent when the
 * operator is created and again on every heartbeat of the region until it is done, so the
 * store must treat a repeated command as a no-op.
 *
 * An operator ends as SUCCESS (every step done), TIMEOUT (fast-operator-timeout without a
 * peer addition, slow-operator-timeout with one, counted from creation), CANCEL (stale:
 * the region's conf_ver moved more than the operator's own steps explain, a target store
 * became unusable, the region vanished) or REPLACE (an admin operator took its place).
 * Outcomes are kept 10 minutes for GetOperator.
 */
#include <inttypes.h>

#include "base/log.h"
#include "base/metrics.h"
#include "pd/pd_int.h"

#define RECORD_KEEP_MS (10 * 60 * 1000)

int pd__op_new(const pd_region *r, const char *desc, unsigned kind, pd_operator **out)
{
    pd_operator *op = tkv_calloc(1, sizeof(*op));
    if (op == NULL)
        return -ENOMEM;
    op->region_id = pd__region_id(r);
    op->version = pd__region_version(r);
    op->conf_ver = pd__region_conf_ver(r);
    tkv_buf_init(&op->start_key);
    tkv_buf_init(&op->end_key);
    tkv_slice s = pd__region_start(r), e = pd__region_end(r);
    if (tkv_buf_set(&op->start_key, s.data, s.len) != 0 ||
        tkv_buf_set(&op->end_key, e.data, e.len) != 0) {
        pd__op_free(op);
        return -ENOMEM;
    }
    snprintf(op->desc, sizeof(op->desc), "%s", desc);
    op->kind = kind;
    *out = op;
    return 0;
}

void pd__op_free(pd_operator *op)
{
    if (op == NULL)
        return;
    tkv_buf_deinit(&op->start_key);
    tkv_buf_deinit(&op->end_key);
    for (size_t i = 0; i < op->nsplit_keys; i++)
        tkv_buf_deinit(&op->split_keys[i]);
    tkv_free(op->split_keys);
    tkv_free(op);
}

int pd__op_add_step(pd_operator *op, pd_step_type type, uint64_t store_id, uint64_t peer_id)
{
    if (op->nsteps >= PD_OP_MAX_STEPS)
        return -E2BIG;
    op->steps[op->nsteps++] = (pd_step){.type = type, .store_id = store_id, .peer_id = peer_id};
    return 0;
}

int pd__op_set_split(pd_operator *op, Pdpb__CheckPolicy policy, const tkv_slice *keys, size_t n)
{
    tkv_buf *k = n ? tkv_calloc(n, sizeof(*k)) : NULL;
    if (n && k == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        tkv_buf_init(&k[i]);
        if (tkv_buf_set(&k[i], keys[i].data, keys[i].len) != 0) {
            for (size_t j = 0; j <= i; j++)
                tkv_buf_deinit(&k[j]);
            tkv_free(k);
            return -ENOMEM;
        }
    }
    int rc = pd__op_add_step(op, PD_STEP_SPLIT, 0, 0);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            tkv_buf_deinit(&k[i]);
        tkv_free(k);
        return rc;
    }
    op->split_policy = policy;
    op->split_keys = k;
    op->nsplit_keys = n;
    return 0;
}

bool pd__step_done(const pd_operator *op, const pd_step *s, const pd_region *r)
{
    const Metapb__Peer *p;
    switch (s->type) {
    case PD_STEP_ADD_LEARNER:
        p = pd__region_store_peer(r, s->store_id);
        if (p == NULL || p->id != s->peer_id)
            return false;
        return !pd__peer_is_learner(p) || !pd__region_is_pending(r, p->id);
    case PD_STEP_PROMOTE_LEARNER:
        p = pd__region_store_peer(r, s->store_id);
        return p != NULL && p->id == s->peer_id && !pd__peer_is_learner(p);
    case PD_STEP_REMOVE_PEER:
        return pd__region_store_peer(r, s->store_id) == NULL;
    case PD_STEP_TRANSFER_LEADER:
        return pd__region_leader_store(r) == s->store_id;
    case PD_STEP_SPLIT:
        return !tkv_slice_eq(pd__region_start(r), tkv_buf_slice(&op->start_key)) ||
               !tkv_slice_eq(pd__region_end(r), tkv_buf_slice(&op->end_key));
    }
    return false;
}

bool pd__op_advance(pd_operator *op, const pd_region *r)
{
    while (op->cur < op->nsteps && pd__step_done(op, &op->steps[op->cur], r))
        op->cur++;
    return op->cur == op->nsteps;
}

static bool is_conf_change(pd_step_type t)
{
    return t == PD_STEP_ADD_LEARNER || t == PD_STEP_PROMOTE_LEARNER || t == PD_STEP_REMOVE_PEER;
}

uint64_t pd__op_conf_changes(const pd_operator *op, const pd_region *r)
{
    uint64_t n = 0;
    for (size_t i = 0; i < op->cur && i < op->nsteps; i++)
        if (is_conf_change(op->steps[i].type))
            n++;
    if (op->cur < op->nsteps) {
        const pd_step *s = &op->steps[op->cur];
        /* An added learner that is still catching up already moved conf_ver. */
        if (s->type == PD_STEP_ADD_LEARNER) {
            const Metapb__Peer *p = pd__region_store_peer(r, s->store_id);
            if (p != NULL && p->id == s->peer_id)
                n++;
        }
    }
    return n;
}

void pd__step_describe(const pd_step *s, char *out, size_t cap)
{
    switch (s->type) {
    case PD_STEP_ADD_LEARNER:
        snprintf(out, cap, "add learner peer %" PRIu64 " on store %" PRIu64, s->peer_id,
                 s->store_id);
        return;
    case PD_STEP_PROMOTE_LEARNER:
        snprintf(out, cap, "promote learner peer %" PRIu64 " on store %" PRIu64 " to voter",
                 s->peer_id, s->store_id);
        return;
    case PD_STEP_REMOVE_PEER:
        snprintf(out, cap, "remove peer on store %" PRIu64, s->store_id);
        return;
    case PD_STEP_TRANSFER_LEADER:
        snprintf(out, cap, "transfer leader to store %" PRIu64, s->store_id);
        return;
    case PD_STEP_SPLIT:
        snprintf(out, cap, "split region");
        return;
    }
    snprintf(out, cap, "unknown step");
}

void pd__op_kind_name(unsigned kind, char *out, size_t cap)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {PD_OPK_LEADER, "leader"}, {PD_OPK_REGION, "region"},   {PD_OPK_SPLIT, "split"},
        {PD_OPK_ADMIN, "admin"},   {PD_OPK_REPLICA, "replica"}, {PD_OPK_BALANCE, "balance"},
    };
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < TKV_ARRAY_LEN(names); i++) {
        if ((kind & names[i].bit) == 0)
            continue;
        int w = snprintf(out + off, cap - off, "%s%s", off ? "," : "", names[i].name);
        if (w < 0 || (size_t)w >= cap - off)
            return;
        off += (size_t)w;
    }
}

void pd__op_describe(const pd_operator *op, char *out, size_t cap)
{
    char kind[64];
    pd__op_kind_name(op->kind, kind, sizeof(kind));
    int w = snprintf(out, cap,
                     "%s (kind:%s, region:%" PRIu64 "(%" PRIu64 ", %" PRIu64
                     "), currentStep:%zu, steps:[",
                     op->desc, kind, op->region_id, op->version, op->conf_ver, op->cur);
    size_t off = (w > 0 && (size_t)w < cap) ? (size_t)w : cap - 1;
    for (size_t i = 0; i < op->nsteps && off < cap - 1; i++) {
        char st[96];
        pd__step_describe(&op->steps[i], st, sizeof(st));
        w = snprintf(out + off, cap - off, "%s%s", i ? ", " : "", st);
        off = (w > 0 && (size_t)w < cap - off) ? off + (size_t)w : cap - 1;
    }
    if (off < cap - 1)
        snprintf(out + off, cap - off, "])");
}

/* ---- metrics --------------------------------------------------------------------------- */

static void count_event(const pd_operator *op, const char *event)
{
    tkv_metric *m = tkv_metric_counter("pd_schedule_operators_count",
                                       "Counter of schedule operators.", "type,event");
    tkv_series *s = tkv_metric_with(m, op->desc, event);
    if (s != NULL)
        tkv_series_inc(s);
}

static const char *status_event(Pdpb__OperatorStatus st)
{
    switch (st) {
    case PDPB__OPERATOR_STATUS__SUCCESS:
        return "finish";
    case PDPB__OPERATOR_STATUS__TIMEOUT:
        return "timeout";
    case PDPB__OPERATOR_STATUS__CANCEL:
        return "cancel";
    case PDPB__OPERATOR_STATUS__REPLACE:
        return "replace";
    default:
        return "running";
    }
}

/* ---- the controller --------------------------------------------------------------------- */

/* Sends the command of @op's current step to the leader of @r. */
static void send_step(pd_cluster *c, const pd_operator *op, const pd_region *r)
{
    if (c->hb_send == NULL || op->cur >= op->nsteps)
        return;
    const Metapb__Peer *leader = r->pb->leader;
    if (leader == NULL || leader->id == 0)
        return;
    const pd_step *s = &op->steps[op->cur];
    Pdpb__ResponseHeader hdr = PDPB__RESPONSE_HEADER__INIT;
    hdr.cluster_id = c->cluster_id;
    Pdpb__RegionHeartbeatResponse resp = PDPB__REGION_HEARTBEAT_RESPONSE__INIT;
    resp.header = &hdr;
    resp.region_id = pd__region_id(r);
    resp.region_epoch = pd__region_meta(r)->region_epoch;
    resp.target_peer = (Metapb__Peer *)leader;
    Pdpb__ChangePeer cp = PDPB__CHANGE_PEER__INIT;
    Metapb__Peer peer = METAPB__PEER__INIT;
    Pdpb__TransferLeader tl = PDPB__TRANSFER_LEADER__INIT;
    Metapb__Peer *tl_peers[1];
    Pdpb__SplitRegion sr = PDPB__SPLIT_REGION__INIT;
    ProtobufCBinaryData *keys = NULL;
    switch (s->type) {
    case PD_STEP_ADD_LEARNER:
        if (pd__region_store_peer(r, s->store_id) != NULL)
            return; /* added, catching up: nothing to send */
        peer.id = s->peer_id;
        peer.store_id = s->store_id;
        peer.role = METAPB__PEER_ROLE__Learner;
        cp.peer = &peer;
        cp.change_type = ERAFTPB__CONF_CHANGE_TYPE__AddLearnerNode;
        resp.change_peer = &cp;
        break;
    case PD_STEP_PROMOTE_LEARNER:
        peer.id = s->peer_id;
        peer.store_id = s->store_id;
        peer.role = METAPB__PEER_ROLE__Voter;
        cp.peer = &peer;
        cp.change_type = ERAFTPB__CONF_CHANGE_TYPE__AddNode;
        resp.change_peer = &cp;
        break;
    case PD_STEP_REMOVE_PEER: {
        Metapb__Peer *p = pd__region_store_peer(r, s->store_id);
        if (p == NULL)
            return;
        cp.peer = p;
        cp.change_type = ERAFTPB__CONF_CHANGE_TYPE__RemoveNode;
        resp.change_peer = &cp;
        break;
    }
    case PD_STEP_TRANSFER_LEADER: {
        Metapb__Peer *p = pd__region_store_peer(r, s->store_id);
        if (p == NULL)
            return;
        tl.peer = p;
        tl_peers[0] = p;
        tl.n_peers = 1;
        tl.peers = tl_peers;
        resp.transfer_leader = &tl;
        break;
    }
    case PD_STEP_SPLIT:
        if (op->nsplit_keys > 0) {
            keys = tkv_calloc(op->nsplit_keys, sizeof(*keys));
            if (keys == NULL)
                return; /* sent again on the next heartbeat */
            for (size_t i = 0; i < op->nsplit_keys; i++) {
                keys[i].data = op->split_keys[i].data;
                keys[i].len = op->split_keys[i].len;
            }
        }
        sr.policy = op->split_policy;
        sr.n_keys = op->nsplit_keys;
        sr.keys = keys;
        resp.split_region = &sr;
        break;
    }
    c->hb_send(c->hb_ud, leader->store_id, &resp);
    tkv_free(keys);
}

/* Returns a reason when @op's current step cannot go on in @r, else NULL. */
static const char *step_blocked(pd_cluster *c, const pd_operator *op, const pd_region *r)
{
    if (op->cur >= op->nsteps)
        return NULL;
    const pd_step *s = &op->steps[op->cur];
    const Metapb__Peer *p = s->store_id ? pd__region_store_peer(r, s->store_id) : NULL;
    uint64_t now = pd__cluster_now(c);
    switch (s->type) {
    case PD_STEP_ADD_LEARNER: {
        const pd_store *st = pd__cluster_store_locked(c, s->store_id);
        if (st == NULL)
            return "target store not found";
        pd_store_status ss = pd__store_status(st, now, &c->cfg);
        if (ss == PD_STORE_TOMBSTONE || ss == PD_STORE_DOWN || ss == PD_STORE_OFFLINE)
            return "target store is not available";
        if (p != NULL && p->id != s->peer_id)
            return "store already has another peer of the region";
        return NULL;
    }
    case PD_STEP_PROMOTE_LEARNER:
        if (p == NULL || p->id != s->peer_id)
            return "learner to promote is missing";
        return NULL;
    case PD_STEP_TRANSFER_LEADER:
        if (p == NULL || pd__peer_is_learner(p))
            return "leader target has no voter";
        return NULL;
    case PD_STEP_REMOVE_PEER:
        if (p != NULL && pd__region_leader_store(r) == s->store_id)
            return "cannot remove the leader peer";
        return NULL;
    case PD_STEP_SPLIT:
        return NULL;
    }
    return NULL;
}

void pd__opc_finish_locked(pd_cluster *c, pd_operator *op, Pdpb__OperatorStatus status,
                           const char *reason)
{
    TKV_IGNORE(pd__map_del(&c->ops, op->region_id) == NULL);
    pd_op_record *rec = pd__map_get(&c->records, op->region_id);
    if (rec == NULL) {
        rec = tkv_calloc(1, sizeof(*rec));
        if (rec != NULL && pd__map_put(&c->records, op->region_id, rec) != 0) {
            tkv_free(rec);
            rec = NULL;
        }
    }
    if (rec != NULL) {
        rec->status = status;
        snprintf(rec->desc, sizeof(rec->desc), "%s", op->desc);
        rec->kind = op->kind;
        rec->finish_ms = pd__cluster_now(c);
    }
    char d[512];
    pd__op_describe(op, d, sizeof(d));
    if (status == PDPB__OPERATOR_STATUS__SUCCESS)
        TKV_LOG_INFO("operator finish", TKV_LF_U64("region_id", op->region_id),
                     TKV_LF_STR("operator", d));
    else
        TKV_LOG_INFO("operator ended", TKV_LF_U64("region_id", op->region_id),
                     TKV_LF_STR("status", status_event(status)),
                     TKV_LF_STR("reason", reason ? reason : ""), TKV_LF_STR("operator", d));
    count_event(op, status_event(status));
    pd__op_free(op);
}

int pd__opc_add_locked(pd_cluster *c, pd_operator *op)
{
    pd_region *r = pd__rt_get(&c->regions, op->region_id);
    if (r == NULL)
        return TKV_ENOTFOUND;
    pd_operator *old = pd__map_get(&c->ops, op->region_id);
    if (old != NULL) {
        if ((op->kind & PD_OPK_ADMIN) == 0 || (old->kind & PD_OPK_ADMIN) != 0)
            return TKV_EEXIST;
    }
    if (op->timeout_ms == 0) {
        bool slow = false;
        for (size_t i = 0; i < op->nsteps; i++)
            slow = slow || op->steps[i].type == PD_STEP_ADD_LEARNER;
        op->timeout_ms = slow ? c->cfg.slow_operator_timeout_ms : c->cfg.fast_operator_timeout_ms;
    }
    op->create_ms = pd__cluster_now(c);
    if (old != NULL) {
        /* The slot is reused: no allocation can fail between the removal and the insert. */
        pd__opc_finish_locked(c, old, PDPB__OPERATOR_STATUS__REPLACE, "replaced by admin");
    }
    int rc = pd__map_put(&c->ops, op->region_id, op);
    if (rc != 0)
        return rc;
    char d[512];
    pd__op_describe(op, d, sizeof(d));
    TKV_LOG_INFO("add operator", TKV_LF_U64("region_id", op->region_id), TKV_LF_STR("operator", d));
    count_event(op, "create");
    if (pd__op_advance(op, r))
        pd__opc_finish_locked(c, op, PDPB__OPERATOR_STATUS__SUCCESS, NULL);
    else
        send_step(c, op, r);
    return 0;
}

void pd__opc_dispatch_locked(pd_cluster *c, const pd_region *r)
{
    pd_operator *op = pd__map_get(&c->ops, pd__region_id(r));
    if (op == NULL)
        return;
    if (pd__op_advance(op, r)) {
        pd__opc_finish_locked(c, op, PDPB__OPERATOR_STATUS__SUCCESS, NULL);
        return;
    }
    uint64_t now = pd__cluster_now(c);
    if (now - op->create_ms > op->timeout_ms) {
        pd__opc_finish_locked(c, op, PDPB__OPERATOR_STATUS__TIMEOUT, "timeout");
        return;
    }
    uint64_t latest = pd__region_conf_ver(r);
    if (latest < op->conf_ver || latest - op->conf_ver > pd__op_conf_changes(op, r)) {
        pd__opc_finish_locked(c, op, PDPB__OPERATOR_STATUS__CANCEL,
                              "stale operator: conf_ver moved beyond its steps");
        return;
    }
    const char *why = step_blocked(c, op, r);
    if (why != NULL) {
        pd__opc_finish_locked(c, op, PDPB__OPERATOR_STATUS__CANCEL, why);
        return;
    }
    send_step(c, op, r);
}

void pd__opc_check_timeouts_locked(pd_cluster *c)
{
    uint64_t now = pd__cluster_now(c);
    for (;;) {
        /* Finishing changes the map: restart the walk after each removal. */
        pd_operator *victim = NULL;
        Pdpb__OperatorStatus st = PDPB__OPERATOR_STATUS__TIMEOUT;
        const char *why = NULL;
        size_t pos = 0;
        void *v;
        while (victim == NULL && pd__map_next(&c->ops, &pos, NULL, &v)) {
            pd_operator *op = v;
            if (pd__rt_get(&c->regions, op->region_id) == NULL) {
                victim = op;
                st = PDPB__OPERATOR_STATUS__CANCEL;
                why = "region not found";
            } else if (now - op->create_ms > op->timeout_ms) {
                victim = op;
                why = "timeout";
            }
        }
        if (victim == NULL)
            break;
        pd__opc_finish_locked(c, victim, st, why);
    }
    for (;;) {
        uint64_t old = 0;
        size_t pos = 0;
        uint64_t id;
        void *v;
        while (old == 0 && pd__map_next(&c->records, &pos, &id, &v))
            if (now - ((pd_op_record *)v)->finish_ms > RECORD_KEEP_MS)
                old = id;
        if (old == 0)
            break;
        tkv_free(pd__map_del(&c->records, old));
    }
}

size_t pd__opc_count_locked(const pd_cluster *c, unsigned kind)
{
    size_t n = 0, pos = 0;
    void *v;
    while (pd__map_next(&c->ops, &pos, NULL, &v))
        if ((((pd_operator *)v)->kind & kind) == kind)
            n++;
    return n;
}

size_t pd__opc_store_adds_locked(const pd_cluster *c, uint64_t store_id)
{
    size_t n = 0, pos = 0;
    void *v;
    while (pd__map_next(&c->ops, &pos, NULL, &v)) {
        const pd_operator *op = v;
        for (size_t i = op->cur; i < op->nsteps; i++)
            if (op->steps[i].type == PD_STEP_ADD_LEARNER && op->steps[i].store_id == store_id)
                n++;
    }
    return n;
}

int pd__opc_influence_locked(const pd_cluster *c, pd_influence *inf)
{
    size_t n = c->nstores ? c->nstores : 1;
    inf->regions = tkv_calloc(n, sizeof(int64_t));
    inf->leaders = tkv_calloc(n, sizeof(int64_t));
    if (inf->regions == NULL || inf->leaders == NULL) {
        pd__influence_free(inf);
        return -ENOMEM;
    }
    size_t pos = 0;
    void *v;
    while (pd__map_next(&c->ops, &pos, NULL, &v)) {
        const pd_operator *op = v;
        const pd_region *r = pd__rt_get(&c->regions, op->region_id);
        if (r == NULL)
            continue;
        uint64_t leader = pd__region_leader_store(r);
        for (size_t i = op->cur; i < op->nsteps; i++) {
            const pd_step *s = &op->steps[i];
            ssize_t idx = pd__cluster_store_index_locked(c, s->store_id);
            if (idx < 0)
                continue;
            bool has = pd__region_store_peer(r, s->store_id) != NULL;
            if (s->type == PD_STEP_ADD_LEARNER && !has) {
                inf->regions[idx]++;
            } else if (s->type == PD_STEP_REMOVE_PEER && has) {
                inf->regions[idx]--;
            } else if (s->type == PD_STEP_TRANSFER_LEADER && leader != s->store_id) {
                inf->leaders[idx]++;
                ssize_t from = pd__cluster_store_index_locked(c, leader);
                if (from >= 0)
                    inf->leaders[from]--;
                leader = s->store_id;
            }
        }
    }
    return 0;
}

void pd__influence_free(pd_influence *inf)
{
    tkv_free(inf->regions);
    tkv_free(inf->leaders);
    inf->regions = inf->leaders = NULL;
}
