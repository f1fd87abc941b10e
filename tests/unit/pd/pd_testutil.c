/*
 * pd_testutil.c: see pd_testutil.h.
 */
#include "pd_testutil.h"

#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

uint64_t pdt_seed(void)
{
    const char *s = getenv("TKV_SEED");
    uint64_t seed = s != NULL ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("# TKV_SEED=%" PRIu64 "\n", seed);
    return seed;
}

void pdt_mkdtemp(char *tmpl)
{
    assert_non_null(mkdtemp(tmpl));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void pdt_rmtree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t pdt_clock_read(void *ud)
{
    return *(uint64_t *)ud;
}

static void record(void *ud, uint64_t store_id, const Pdpb__RegionHeartbeatResponse *m)
{
    pdt_cluster *t = ud;
    if (t->ncmds >= PDT_MAX_CMDS)
        return;
    pdt_cmd *c = &t->cmds[t->ncmds++];
    memset(c, 0, sizeof(*c));
    c->store_id = store_id;
    c->region_id = m->region_id;
    if (m->change_peer != NULL) {
        c->kind = PDT_CHANGE_PEER;
        c->change_type = m->change_peer->change_type;
        c->peer_id = m->change_peer->peer->id;
        c->peer_store = m->change_peer->peer->store_id;
        c->peer_role = m->change_peer->peer->role;
    } else if (m->transfer_leader != NULL) {
        c->kind = PDT_TRANSFER;
        c->peer_id = m->transfer_leader->peer->id;
        c->peer_store = m->transfer_leader->peer->store_id;
    } else if (m->split_region != NULL) {
        c->kind = PDT_SPLIT;
        c->nsplit_keys = m->split_region->n_keys;
        c->split_policy = m->split_region->policy;
    }
}

void pdt_open(pdt_cluster *t, const pd_sched_cfg *cfg)
{
    memset(t, 0, sizeof(*t));
    t->now = 1000000;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(pd__storage_open(NULL, &t->st, err), 0);
    assert_int_equal(pd__id_init(&t->ids, t->st, 0), 0);
    /* Tests pick small ids by hand: allocated ones start above them. */
    uint64_t skip[100];
    assert_int_equal(pd__id_alloc_n(&t->ids, 100, skip), 0);
    pd_sched_cfg def;
    pd__sched_cfg_default(&def);
    assert_int_equal(
        pd__cluster_new(t->st, &t->ids, 42, cfg ? cfg : &def, pdt_clock_read, &t->now, &t->c), 0);
    pd__cluster_set_hb_sink(t->c, record, t);
}

void pdt_close(pdt_cluster *t)
{
    pd__cluster_free(t->c);
    pd__id_deinit(&t->ids);
    pd__storage_close(t->st);
}

static void fill_store(Metapb__Store *s, uint64_t id, char *addr, size_t cap)
{
    metapb__store__init(s);
    snprintf(addr, cap, "127.0.0.1:%" PRIu64, 20160 + id);
    s->id = id;
    s->address = addr;
}

void pdt_bootstrap(pdt_cluster *t, uint64_t store_id, uint64_t region_id, uint64_t peer_id)
{
    Metapb__Store s;
    char addr[64];
    fill_store(&s, store_id, addr, sizeof(addr));
    Metapb__Peer p = METAPB__PEER__INIT;
    p.id = peer_id;
    p.store_id = store_id;
    Metapb__Peer *peers[] = {&p};
    Metapb__RegionEpoch e = METAPB__REGION_EPOCH__INIT;
    e.version = 1;
    e.conf_ver = 1;
    Metapb__Region r = METAPB__REGION__INIT;
    r.id = region_id;
    r.region_epoch = &e;
    r.n_peers = 1;
    r.peers = peers;
    pd_result res;
    assert_int_equal(pd__cluster_bootstrap(t->c, &s, &r, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
}

void pdt_put_store(pdt_cluster *t, uint64_t id, const char *labels)
{
    Metapb__Store s;
    char addr[64];
    fill_store(&s, id, addr, sizeof(addr));
    Metapb__StoreLabel lab[4], *plab[4];
    char buf[4][2][32];
    size_t n = 0;
    if (labels != NULL) {
        const char *p = labels;
        while (*p && n < 4) {
            const char *eq = strchr(p, '=');
            const char *comma = strchr(p, ',');
            assert_non_null(eq);
            size_t end = comma ? (size_t)(comma - p) : strlen(p);
            snprintf(buf[n][0], 32, "%.*s", (int)(eq - p), p);
            snprintf(buf[n][1], 32, "%.*s", (int)(end - (size_t)(eq - p) - 1), eq + 1);
            metapb__store_label__init(&lab[n]);
            lab[n].key = buf[n][0];
            lab[n].value = buf[n][1];
            plab[n] = &lab[n];
            n++;
            p = comma ? comma + 1 : p + end;
        }
    }
    s.n_labels = n;
    s.labels = plab;
    pd_result res;
    assert_int_equal(pd__cluster_put_store(t->c, &s, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
}

void pdt_store_hb(pdt_cluster *t, uint64_t id)
{
    Pdpb__StoreStats st = PDPB__STORE_STATS__INIT;
    st.store_id = id;
    st.capacity = 100ull << 30;
    st.available = 50ull << 30;
    pd_result res;
    assert_int_equal(pd__cluster_store_heartbeat(t->c, &st, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
}

void pdt_store_hb_all(pdt_cluster *t)
{
    pd__cluster_lock(t->c);
    uint64_t ids[64];
    size_t n = 0;
    for (size_t i = 0; i < t->c->nstores && n < 64; i++)
        if (t->c->stores[i]->meta->state != METAPB__STORE_STATE__Tombstone)
            ids[n++] = t->c->stores[i]->meta->id;
    pd__cluster_unlock(t->c);
    for (size_t i = 0; i < n; i++)
        pdt_store_hb(t, ids[i]);
}

int pdt_region_hb(pdt_cluster *t, const pdt_region *r)
{
    Metapb__Peer peers[8], *pp[8];
    Metapb__Peer *leader = NULL;
    Metapb__Peer *pending[1];
    Pdpb__PeerStats ds = PDPB__PEER_STATS__INIT, *down[1];
    size_t npending = 0, ndown = 0;
    for (size_t i = 0; i < r->n; i++) {
        metapb__peer__init(&peers[i]);
        peers[i].id = r->peer_ids[i];
        peers[i].store_id = r->stores[i];
        peers[i].role = r->learner[i] ? METAPB__PEER_ROLE__Learner : METAPB__PEER_ROLE__Voter;
        pp[i] = &peers[i];
        if (r->stores[i] == r->leader_store)
            leader = &peers[i];
        if (r->peer_ids[i] == r->pending_peer && r->pending_peer != 0)
            pending[npending++] = &peers[i];
        if (r->peer_ids[i] == r->down_peer && r->down_peer != 0) {
            ds.peer = &peers[i];
            ds.down_seconds = 3600;
            down[ndown++] = &ds;
        }
    }
    Metapb__RegionEpoch e = METAPB__REGION_EPOCH__INIT;
    e.version = r->version;
    e.conf_ver = r->conf_ver;
    Metapb__Region m = METAPB__REGION__INIT;
    m.id = r->id;
    m.start_key.data = (uint8_t *)r->start;
    m.start_key.len = strlen(r->start);
    m.end_key.data = (uint8_t *)r->end;
    m.end_key.len = strlen(r->end);
    m.region_epoch = &e;
    m.n_peers = r->n;
    m.peers = pp;
    Pdpb__RegionHeartbeatRequest req = PDPB__REGION_HEARTBEAT_REQUEST__INIT;
    req.region = &m;
    req.leader = leader;
    req.n_pending_peers = npending;
    req.pending_peers = pending;
    req.n_down_peers = ndown;
    req.down_peers = down;
    req.approximate_size = r->approximate_size;
    pd_result res;
    int rc = pd__cluster_region_heartbeat(t->c, &req, &res);
    assert_true(rc == 0 || rc == TKV_ENOTFOUND);
    return res.type;
}

void pdt_region_get(pdt_cluster *t, uint64_t id, pdt_region *out)
{
    memset(out, 0, sizeof(*out));
    pd__cluster_lock(t->c);
    pd_region *r = pd__rt_get(&t->c->regions, id);
    assert_non_null(r);
    const Metapb__Region *m = pd__region_meta(r);
    out->id = id;
    snprintf(out->start, sizeof(out->start), "%.*s", (int)m->start_key.len,
             (const char *)m->start_key.data);
    snprintf(out->end, sizeof(out->end), "%.*s", (int)m->end_key.len,
             (const char *)m->end_key.data);
    out->version = pd__region_version(r);
    out->conf_ver = pd__region_conf_ver(r);
    out->n = m->n_peers;
    for (size_t i = 0; i < m->n_peers && i < 8; i++) {
        out->peer_ids[i] = m->peers[i]->id;
        out->stores[i] = m->peers[i]->store_id;
        out->learner[i] = pd__peer_is_learner(m->peers[i]);
    }
    out->leader_store = pd__region_leader_store(r);
    out->approximate_size = r->approximate_size;
    pd__cluster_unlock(t->c);
}

bool pdt_apply(pdt_region *r, const pdt_cmd *cmd)
{
    if (cmd->kind == PDT_TRANSFER) {
        r->leader_store = cmd->peer_store;
        return true;
    }
    if (cmd->kind != PDT_CHANGE_PEER)
        return false;
    size_t i;
    for (i = 0; i < r->n; i++)
        if (r->stores[i] == cmd->peer_store)
            break;
    switch (cmd->change_type) {
    case ERAFTPB__CONF_CHANGE_TYPE__AddLearnerNode:
        if (i < r->n || r->n >= 8)
            return false;
        r->peer_ids[r->n] = cmd->peer_id;
        r->stores[r->n] = cmd->peer_store;
        r->learner[r->n] = true;
        r->n++;
        break;
    case ERAFTPB__CONF_CHANGE_TYPE__AddNode:
        if (i == r->n) {
            if (r->n >= 8)
                return false;
            r->peer_ids[r->n] = cmd->peer_id;
            r->stores[r->n] = cmd->peer_store;
            r->n++;
        }
        r->learner[i] = false;
        break;
    case ERAFTPB__CONF_CHANGE_TYPE__RemoveNode:
        if (i == r->n)
            return false;
        for (size_t j = i + 1; j < r->n; j++) {
            r->peer_ids[j - 1] = r->peer_ids[j];
            r->stores[j - 1] = r->stores[j];
            r->learner[j - 1] = r->learner[j];
        }
        r->n--;
        break;
    default:
        return false;
    }
    r->conf_ver++;
    return true;
}

pd_operator *pdt_op(pdt_cluster *t, uint64_t id)
{
    pd__cluster_lock(t->c);
    pd_operator *op = pd__map_get(&t->c->ops, id);
    pd__cluster_unlock(t->c);
    return op;
}

void pdt_clear_cmds(pdt_cluster *t)
{
    t->ncmds = 0;
}
