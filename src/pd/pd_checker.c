/*
 * pd_checker.c: the replica checker (PD's replica_checker + learner checks) and the store
 * choices and operator builder it shares with the schedulers.
 *
 * For one region, in this order (the first that applies produces the operator):
 *   1. a peer on a store that is Down (no heartbeat for max-store-down-time), Tombstone,
 *      unknown, or Offline: replace it on the best store ("replace-down-replica" /
 *      "replace-offline-replica"); when no store can take it and the region has more voters
 *      than max-replicas, remove it ("remove-extra-replica");
 *   2. a learner no operator is adding: promote it when voters are missing
 *      ("promote-learner"), else remove it ("remove-orphan-learner");
 *   3. fewer voters than max-replicas: add one ("make-up-replica");
 *   4. more voters than max-replicas: remove the worst ("remove-extra-replica").
 * A store may take a new peer when it is Up (heartbeat within store-disconnect-time), has
 * fewer than max-pending-peer-count pending peers and fewer than max-snapshot-count peers
 * being added by operators. The best store is the most isolated from the region's other
 * peers by location labels, then the one with the fewest regions (counting running
 * operators), then the lowest id: deterministic for a given cluster state.
 */
#include "base/log.h"
#include "pd/pd_int.h"

bool pd__store_can_take_peer_locked(const pd_cluster *c, const pd_store *s)
{
    if (pd__store_status(s, pd__cluster_now(c), &c->cfg) != PD_STORE_UP)
        return false;
    if (s->stats != NULL && s->stats->is_busy)
        return false;
    if (s->pending_count >= c->cfg.max_pending_peer_count)
        return false;
    return pd__opc_store_adds_locked(c, s->meta->id) < c->cfg.max_snapshot_count;
}

/* Returns how far apart stores @a and @b are by the location labels: with labels
 * zone,rack,host, differing at the zone scores 3, at the rack 2, at the host 1, not at
 * all 0. */
static unsigned distinct_score(const pd_cluster *c, const pd_store *a, const pd_store *b)
{
    const char *labels = c->cfg.location_labels;
    unsigned nlevels = 0;
    for (const char *p = labels; *p; p++)
        if (*p == ',')
            nlevels++;
    if (*labels != '\0')
        nlevels++;
    unsigned level = 0;
    const char *p = labels;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char key[64];
        if (len >= sizeof(key))
            len = sizeof(key) - 1;
        memcpy(key, p, len);
        key[len] = '\0';
        const char *va = pd__store_label(a, key), *vb = pd__store_label(b, key);
        if (strcmp(va ? va : "", vb ? vb : "") != 0)
            return nlevels - level;
        level++;
        p = comma ? comma + 1 : p + len;
    }
    return 0;
}

static bool in_list(const uint64_t *list, size_t n, uint64_t v)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == v)
            return true;
    return false;
}

/* Sums the distinct scores of @s against the stores of @r's peers, except @s itself and
 * stores in @skip. */
static unsigned isolation(const pd_cluster *c, const pd_region *r, const pd_store *s,
                          const uint64_t *skip, size_t nskip)
{
    unsigned score = 0;
    const Metapb__Region *m = pd__region_meta(r);
    for (size_t i = 0; i < m->n_peers; i++) {
        uint64_t sid = m->peers[i]->store_id;
        if (sid == s->meta->id || in_list(skip, nskip, sid))
            continue;
        const pd_store *o = pd__cluster_store_locked(c, sid);
        if (o != NULL)
            score += distinct_score(c, s, o);
    }
    return score;
}

static int64_t eff_regions(const pd_cluster *c, const pd_store *s, const pd_influence *inf)
{
    int64_t n = (int64_t)s->region_count;
    if (inf != NULL) {
        ssize_t i = pd__cluster_store_index_locked(c, s->meta->id);
        if (i >= 0)
            n += inf->regions[i];
    }
    return n;
}

pd_store *pd__pick_target_store_locked(const pd_cluster *c, const pd_region *r,
                                       const uint64_t *exclude, size_t nexclude,
                                       const pd_influence *inf)
{
    pd_store *best = NULL;
    unsigned best_score = 0;
    int64_t best_count = 0;
    for (size_t i = 0; i < c->nstores; i++) {
        pd_store *s = c->stores[i];
        uint64_t id = s->meta->id;
        if (in_list(exclude, nexclude, id) || pd__region_store_peer(r, id) != NULL)
            continue;
        if (!pd__store_can_take_peer_locked(c, s))
            continue;
        unsigned score = isolation(c, r, s, exclude, nexclude);
        int64_t count = eff_regions(c, s, inf);
        if (best == NULL || score > best_score || (score == best_score && count < best_count)) {
            best = s;
            best_score = score;
            best_count = count;
        }
    }
    return best;
}

/* Picks the store whose leader count is lowest among @stores (ties: lowest id). */
static uint64_t least_leaders(const pd_cluster *c, const uint64_t *stores, size_t n)
{
    uint64_t best = 0, best_n = 0;
    for (size_t i = 0; i < n; i++) {
        const pd_store *s = pd__cluster_store_locked(c, stores[i]);
        uint64_t cnt = s != NULL ? s->leader_count : UINT64_MAX / 2;
        if (best == 0 || cnt < best_n || (cnt == best_n && stores[i] < best)) {
            best = stores[i];
            best_n = cnt;
        }
    }
    return best;
}

int pd__build_move_locked(pd_cluster *c, const pd_region *r, const uint64_t *from,
                          const uint64_t *to, size_t n, uint64_t leader_store, const char *desc,
                          unsigned kind, pd_operator **out)
{
    *out = NULL;
    pd_operator *op;
    int rc = pd__op_new(r, desc, kind, &op);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (to[i] == 0)
            continue;
        uint64_t peer_id;
        rc = pd__id_alloc(c->ids, &peer_id);
        if (rc == 0)
            rc = pd__op_add_step(op, PD_STEP_ADD_LEARNER, to[i], peer_id);
        if (rc == 0)
            rc = pd__op_add_step(op, PD_STEP_PROMOTE_LEARNER, to[i], peer_id);
    }
    /* The voters after the move: current voters not removed, plus the added ones. */
    uint64_t voters[64];
    size_t nv = 0;
    const Metapb__Region *m = pd__region_meta(r);
    for (size_t i = 0; i < m->n_peers && nv < TKV_ARRAY_LEN(voters); i++)
        if (!pd__peer_is_learner(m->peers[i]) && !in_list(from, n, m->peers[i]->store_id))
            voters[nv++] = m->peers[i]->store_id;
    for (size_t i = 0; i < n && nv < TKV_ARRAY_LEN(voters); i++)
        if (to[i] != 0)
            voters[nv++] = to[i];
    uint64_t leader = pd__region_leader_store(r);
    uint64_t target = 0;
    if (leader_store != 0 && leader_store != leader && in_list(voters, nv, leader_store))
        target = leader_store;
    else if (leader_store == 0 && in_list(from, n, leader))
        target = least_leaders(c, voters, nv);
    if (rc == 0 && target != 0)
        rc = pd__op_add_step(op, PD_STEP_TRANSFER_LEADER, target, 0);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (from[i] != 0)
            rc = pd__op_add_step(op, PD_STEP_REMOVE_PEER, from[i], 0);
    if (rc == 0 && op->nsteps == 0)
        rc = -EINVAL;
    if (rc != 0) {
        pd__op_free(op);
        return rc;
    }
    *out = op;
    return 0;
}

/* Returns whether the peer's store makes it need replacing, and which kind. */
static const char *bad_peer(const pd_cluster *c, const Metapb__Peer *p)
{
    const pd_store *s = pd__cluster_store_locked(c, p->store_id);
    if (s == NULL)
        return "replace-down-replica";
    switch (pd__store_status(s, pd__cluster_now(c), &c->cfg)) {
    case PD_STORE_DOWN:
    case PD_STORE_TOMBSTONE:
        return "replace-down-replica";
    case PD_STORE_OFFLINE:
        return "replace-offline-replica";
    default:
        return NULL;
    }
}

/* Picks the voter to drop when there are too many: a peer on a bad store first, then the
 * least isolated, then the store with the most regions, then the highest store id. */
static uint64_t pick_worst_voter(const pd_cluster *c, const pd_region *r)
{
    const Metapb__Region *m = pd__region_meta(r);
    uint64_t worst = 0;
    bool worst_bad = false;
    unsigned worst_iso = 0;
    uint64_t worst_count = 0;
    for (size_t i = 0; i < m->n_peers; i++) {
        const Metapb__Peer *p = m->peers[i];
        if (pd__peer_is_learner(p))
            continue;
        const pd_store *s = pd__cluster_store_locked(c, p->store_id);
        bool bad = bad_peer(c, p) != NULL;
        unsigned iso = s != NULL ? isolation(c, r, s, NULL, 0) : 0;
        uint64_t count = s != NULL ? s->region_count : UINT64_MAX;
        bool better;
        if (worst == 0)
            better = true;
        else if (bad != worst_bad)
            better = bad;
        else if (iso != worst_iso)
            better = iso < worst_iso;
        else if (count != worst_count)
            better = count > worst_count;
        else
            better = p->store_id > worst;
        if (better) {
            worst = p->store_id;
            worst_bad = bad;
            worst_iso = iso;
            worst_count = count;
        }
    }
    return worst;
}

static int build_simple(pd_cluster *c, const pd_region *r, uint64_t from, uint64_t to,
                        const char *desc, pd_operator **out)
{
    return pd__build_move_locked(c, r, &from, &to, 1, 0, desc, PD_OPK_REPLICA | PD_OPK_REGION, out);
}

int pd__check_replica_locked(pd_cluster *c, const pd_region *r, pd_operator **out)
{
    *out = NULL;
    if (c->cfg.replica_schedule_limit == 0 || pd__map_get(&c->ops, pd__region_id(r)) != NULL ||
        pd__region_leader_store(r) == 0)
        return 0;
    if (pd__opc_count_locked(c, PD_OPK_REPLICA) >= c->cfg.replica_schedule_limit)
        return 0;
    const Metapb__Region *m = pd__region_meta(r);
    size_t voters = pd__region_voter_count(r);
    uint64_t max = c->cfg.max_replicas;

    for (size_t i = 0; i < m->n_peers; i++) {
        const Metapb__Peer *p = m->peers[i];
        const char *desc = bad_peer(c, p);
        if (desc == NULL)
            continue;
        uint64_t skip = p->store_id;
        const pd_store *t = pd__pick_target_store_locked(c, r, &skip, 1, NULL);
        if (t != NULL)
            return build_simple(c, r, p->store_id, t->meta->id, desc, out);
        if (pd__peer_is_learner(p) || voters > max)
            return build_simple(c, r, p->store_id, 0, "remove-extra-replica", out);
        TKV_LOG_DEBUG("no store to replace peer", TKV_LF_U64("region_id", m->id),
                      TKV_LF_U64("store_id", p->store_id));
    }
    for (size_t i = 0; i < m->n_peers; i++) {
        const Metapb__Peer *p = m->peers[i];
        if (!pd__peer_is_learner(p))
            continue;
        if (voters < max) {
            if (pd__region_is_pending(r, p->id))
                return 0; /* let it catch up first */
            pd_operator *op;
            int rc = pd__op_new(r, "promote-learner", PD_OPK_REPLICA | PD_OPK_REGION, &op);
            if (rc == 0)
                rc = pd__op_add_step(op, PD_STEP_PROMOTE_LEARNER, p->store_id, p->id);
            if (rc != 0) {
                pd__op_free(op);
                return rc;
            }
            *out = op;
            return 0;
        }
        return build_simple(c, r, p->store_id, 0, "remove-orphan-learner", out);
    }
    if (voters < max) {
        const pd_store *t = pd__pick_target_store_locked(c, r, NULL, 0, NULL);
        if (t == NULL)
            return 0;
        return build_simple(c, r, 0, t->meta->id, "make-up-replica", out);
    }
    if (voters > max) {
        uint64_t worst = pick_worst_voter(c, r);
        if (worst != 0)
            return build_simple(c, r, worst, 0, "remove-extra-replica", out);
    }
    return 0;
}
