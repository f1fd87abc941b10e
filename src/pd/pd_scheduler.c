/*
 * pd_scheduler.c: the balance schedulers and scatter.
 *
 * Both balancers work on counts corrected by the running operators' influence (a peer being
 * added counts on its target, one being removed no longer counts on its source), so an
 * operator that is still running is never scheduled twice and the counts never overshoot:
 *   balance-region: the Up store with the most regions gives a peer to the Up store with
 *     the fewest, if they differ by at least 2 (after the move the source still has at
 *     least as many as the target, so nothing moves back); the region must be healthy
 *     (a leader, max-replicas voters, no learner, no down or pending peer, no operator) and
 *     have no peer on the target. The move is add learner, promote, (transfer the leader
 *     when the source leads), remove. Limit: region-schedule-limit running operators.
 *   balance-leader: the same on leader counts, with a leader transfer to a healthy voter.
 *     Limit: leader-schedule-limit.
 * With N stores this converges to region counts that differ by at most 1 (a 4th store
 * joining a 3-store cluster ends with an equal share, up to 1).
 *
 * Scatter (ScatterRegion): per group, counts how many peers and leaders scatter placed on
 * each store, and places the region's peers on the stores with the lowest counts (keeping
 * current stores on ties, so an already spread region does not move) and its leader on the
 * chosen store with the fewest scattered leaders.
 */
#include <stdint.h>

#include "pd/pd_int.h"

/* Returns whether @r may be moved by a balancer. */
static bool healthy(const pd_cluster *c, const pd_region *r)
{
    if (pd__map_get(&c->ops, pd__region_id(r)) != NULL || pd__region_leader_store(r) == 0)
        return false;
    if (r->pb->n_down_peers > 0 || r->pb->n_pending_peers > 0)
        return false;
    const Metapb__Region *m = pd__region_meta(r);
    if (m->n_peers != c->cfg.max_replicas)
        return false;
    for (size_t i = 0; i < m->n_peers; i++)
        if (pd__peer_is_learner(m->peers[i]))
            return false;
    return true;
}

typedef struct ranked {
    size_t idx; /* into c->stores */
    int64_t count;
} ranked;

/* Collects the Up stores with their corrected counts (@leaders: leader counts, else region
 * counts), sorted by count descending, ties by id ascending. */
static size_t rank_stores(const pd_cluster *c, const pd_influence *inf, bool leaders, ranked *out)
{
    uint64_t now = pd__cluster_now(c);
    size_t n = 0;
    for (size_t i = 0; i < c->nstores; i++) {
        const pd_store *s = c->stores[i];
        if (pd__store_status(s, now, &c->cfg) != PD_STORE_UP)
            continue;
        int64_t cnt = leaders ? (int64_t)s->leader_count + inf->leaders[i]
                              : (int64_t)s->region_count + inf->regions[i];
        size_t j = n++;
        while (j > 0 &&
               (out[j - 1].count < cnt ||
                (out[j - 1].count == cnt && c->stores[out[j - 1].idx]->meta->id > s->meta->id))) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = (ranked){.idx = i, .count = cnt};
    }
    return n;
}

/* Finds a healthy region with a peer (or, with @leader, the leader) on @src and no peer on
 * @dst (or, with @leader, a healthy voter on @dst). */
static pd_region *find_region(const pd_cluster *c, uint64_t src, uint64_t dst, bool leader)
{
    for (pd_region *r = pd__rt_first(&c->regions); r != NULL; r = pd__rt_next(&c->regions, r)) {
        if (!healthy(c, r))
            continue;
        if (leader) {
            if (pd__region_leader_store(r) != src)
                continue;
            const Metapb__Peer *p = pd__region_store_peer(r, dst);
            if (p != NULL && !pd__peer_is_learner(p))
                return r;
        } else if (pd__region_store_peer(r, src) != NULL && pd__region_store_peer(r, dst) == NULL) {
            return r;
        }
    }
    return NULL;
}

static int balance(pd_cluster *c, bool leaders, pd_operator **out)
{
    *out = NULL;
    uint64_t limit = leaders ? c->cfg.leader_schedule_limit : c->cfg.region_schedule_limit;
    unsigned kind = PD_OPK_BALANCE | (leaders ? PD_OPK_LEADER : PD_OPK_REGION);
    if (limit == 0 || pd__opc_count_locked(c, kind) >= limit || c->nstores < 2)
        return 0;
    pd_influence inf;
    int rc = pd__opc_influence_locked(c, &inf);
    if (rc != 0)
        return rc;
    ranked *rk = tkv_calloc(c->nstores, sizeof(*rk));
    if (rk == NULL) {
        pd__influence_free(&inf);
        return -ENOMEM;
    }
    size_t n = rank_stores(c, &inf, leaders, rk);
    for (size_t a = 0; a < n && *out == NULL && rc == 0; a++) {
        const pd_store *src = c->stores[rk[a].idx];
        for (size_t b = n; b-- > a + 1 && *out == NULL && rc == 0;) {
            if (rk[a].count - rk[b].count < 2)
                break;
            const pd_store *dst = c->stores[rk[b].idx];
            if (!leaders && !pd__store_can_take_peer_locked(c, dst))
                continue;
            pd_region *r = find_region(c, src->meta->id, dst->meta->id, leaders);
            if (r == NULL)
                continue;
            if (leaders) {
                pd_operator *op;
                rc = pd__op_new(r, "balance-leader", kind, &op);
                if (rc == 0)
                    rc = pd__op_add_step(op, PD_STEP_TRANSFER_LEADER, dst->meta->id, 0);
                if (rc == 0)
                    *out = op;
                else
                    pd__op_free(op);
            } else {
                uint64_t from = src->meta->id, to = dst->meta->id;
                rc = pd__build_move_locked(c, r, &from, &to, 1, 0, "balance-region", kind, out);
            }
        }
    }
    tkv_free(rk);
    pd__influence_free(&inf);
    return rc;
}

int pd__balance_leader_locked(pd_cluster *c, pd_operator **out)
{
    return balance(c, true, out);
}

int pd__balance_region_locked(pd_cluster *c, pd_operator **out)
{
    return balance(c, false, out);
}

/* ---- scatter ----------------------------------------------------------------------------- */

static pd_scatter_group *group_get(pd_cluster *c, const char *name)
{
    if (name == NULL)
        name = "";
    for (pd_scatter_group *g = c->groups; g != NULL; g = g->next)
        if (strcmp(g->name, name) == 0)
            return g;
    pd_scatter_group *g = tkv_calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    snprintf(g->name, sizeof(g->name), "%s", name);
    pd__map_init(&g->peers);
    pd__map_init(&g->leaders);
    g->next = c->groups;
    c->groups = g;
    return g;
}

static uint64_t gcount(const pd_map *m, uint64_t store)
{
    return (uint64_t)(uintptr_t)pd__map_get(m, store);
}

static int gbump(pd_map *m, uint64_t store)
{
    return pd__map_put(m, store, (void *)(uintptr_t)(gcount(m, store) + 1));
}

int pd__scatter_locked(pd_cluster *c, const pd_region *r, const char *group, pd_operator **out)
{
    *out = NULL;
    if (pd__map_get(&c->ops, pd__region_id(r)) != NULL)
        return TKV_EEXIST;
    if (pd__region_leader_store(r) == 0)
        return TKV_EUNAVAILABLE;
    pd_scatter_group *g = group_get(c, group);
    if (g == NULL)
        return -ENOMEM;
    const Metapb__Region *m = pd__region_meta(r);
    size_t k = m->n_peers;
    uint64_t chosen[64];
    size_t nc = 0;
    if (k > TKV_ARRAY_LEN(chosen))
        return -EINVAL;
    uint64_t now = pd__cluster_now(c);
    while (nc < k) {
        const pd_store *best = NULL;
        uint64_t best_cnt = 0;
        bool best_has = false;
        for (size_t i = 0; i < c->nstores; i++) {
            const pd_store *s = c->stores[i];
            uint64_t id = s->meta->id;
            bool taken = false;
            for (size_t j = 0; j < nc; j++)
                taken = taken || chosen[j] == id;
            if (taken || pd__store_status(s, now, &c->cfg) != PD_STORE_UP)
                continue;
            uint64_t cnt = gcount(&g->peers, id);
            bool has = pd__region_store_peer(r, id) != NULL;
            if (best == NULL || cnt < best_cnt || (cnt == best_cnt && has && !best_has)) {
                best = s;
                best_cnt = cnt;
                best_has = has;
            }
        }
        if (best == NULL)
            break;
        chosen[nc++] = best->meta->id;
    }
    /* Too few usable stores: keep current peers for the remaining places. */
    for (size_t i = 0; i < m->n_peers && nc < k; i++) {
        bool dup = false;
        for (size_t j = 0; j < nc; j++)
            dup = dup || chosen[j] == m->peers[i]->store_id;
        if (!dup)
            chosen[nc++] = m->peers[i]->store_id;
    }
    uint64_t cur_leader = pd__region_leader_store(r);
    uint64_t leader = 0, leader_cnt = 0;
    for (size_t j = 0; j < nc; j++) {
        const Metapb__Peer *p = pd__region_store_peer(r, chosen[j]);
        if (p != NULL && pd__peer_is_learner(p))
            continue;
        uint64_t cnt = gcount(&g->leaders, chosen[j]);
        if (leader == 0 || cnt < leader_cnt ||
            (cnt == leader_cnt && chosen[j] == cur_leader && leader != cur_leader)) {
            leader = chosen[j];
            leader_cnt = cnt;
        }
    }
    uint64_t from[64], to[64];
    size_t nf = 0, nt = 0;
    for (size_t i = 0; i < m->n_peers; i++) {
        bool keep = false;
        for (size_t j = 0; j < nc; j++)
            keep = keep || chosen[j] == m->peers[i]->store_id;
        if (!keep)
            from[nf++] = m->peers[i]->store_id;
    }
    for (size_t j = 0; j < nc; j++)
        if (pd__region_store_peer(r, chosen[j]) == NULL)
            to[nt++] = chosen[j];
    int rc = 0;
    for (size_t j = 0; j < nc && rc == 0; j++)
        rc = gbump(&g->peers, chosen[j]);
    if (rc == 0 && leader != 0)
        rc = gbump(&g->leaders, leader);
    if (rc != 0)
        return rc;
    if (nf == 0 && (leader == 0 || leader == cur_leader))
        return 0; /* already in place */
    while (nt < nf)
        to[nt++] = 0;
    while (nf < nt)
        from[nf++] = 0;
    return pd__build_move_locked(c, r, from, to, nf, leader, "scatter-region",
                                 PD_OPK_ADMIN | PD_OPK_REGION | PD_OPK_LEADER, out);
}
