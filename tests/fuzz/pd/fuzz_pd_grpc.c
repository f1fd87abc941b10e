/*
 * fuzz_pd_grpc.c: pdpb.PD requests into pd-server's cluster state (src/pd: pd_cluster, the
 * operator controller, checkers and schedulers, the TSO and the ID allocator), in process,
 * without a network.
 *
 * Each input builds a fresh PD over in-memory storage with a fake clock and drives it with a
 * recipe of requests, each either decoded from the input's bytes (protobuf, as a client may
 * send anything) or built from the input's choices (plausible stores, regions, epochs, peers
 * and keys, so that the state grows): Bootstrap, PutStore, StoreHeartbeat, RegionHeartbeat,
 * AskBatchSplit, ReportBatchSplit, PutClusterConfig, UpdateGCSafePoint, ScatterRegion,
 * SplitRegions, GetRegion / GetPrevRegion / GetRegionByID / ScanRegions, AllocID, Tso, store
 * state changes, coordinator rounds (patrol, replica checker, balance schedulers, timeouts),
 * and stores carrying out the operator commands PD sends them (conf changes, leader transfers,
 * splits), reporting back with heartbeats. The calls are the ones the gRPC handlers make
 * (pd_grpc.c), with the same preconditions.
 * After every request:
 *   - the region tree is ordered and its ranges do not overlap, every region has an id and an
 *     epoch, and the id index and the count agree with the tree;
 *   - every store's region, leader, learner and pending-peer counts equal what the tree says;
 *   - answers are 0 (or, for a heartbeat naming an unknown store, TKV_ENOTFOUND as the stream
 *     handler expects), never an internal error, with a known error type;
 *   - lookups agree with the tree (GetRegion's region contains the key, GetPrevRegion's ends
 *     where the next begins, a scan is ordered);
 *   - timestamps are strictly increasing, also when the wall clock steps back; allocated ids
 *     are strictly increasing; the GC safe point never goes back;
 *   - operator commands go to the store of the region's leader, for regions PD knows.
 */
#include <inttypes.h>
#include <stdio.h>

#include "base/log.h"
#include "fuzz/fuzz.h"
#include "fuzz/pd/fuzz_pd.h"
#include "pd/pd_int.h"

#define MAX_CMDS 64
#define KEYLEN   24

/* An operator command PD sent, as a store received it. */
typedef struct cmd {
    uint64_t store, region;
    int kind; /* 1 change peer, 2 transfer leader, 3 split */
    int change_type;
    uint64_t peer_id, peer_store;
    bool learner;
    int policy;
    size_t nkeys;
    uint8_t key[KEYLEN];
    size_t keylen;
} cmd;

typedef struct pdf {
    pd_storage *st;
    pd_id_alloc ids;
    pd_cluster *c;
    pd_tso *tso;
    uint64_t now;  /* cluster clock, ms */
    uint64_t wall; /* TSO's wall clock, ms (may step back) */
    cmd cmds[MAX_CMDS];
    size_t ncmds;
    uint64_t last_ts, last_id, gc;
    size_t split_done;
} pdf;

/* ---- the command sink: what stores receive -------------------------------------------------- */

static void sink(void *ud, uint64_t store_id, const Pdpb__RegionHeartbeatResponse *m)
{
    pdf *f = ud;
    /* Called with the cluster mutex held: the region and its leader are stable here. */
    pd_region *r = pd__rt_get(&f->c->regions, m->region_id);
    FUZZ_CHECK(r != NULL);
    FUZZ_CHECK(store_id == pd__region_leader_store(r));
    if (f->ncmds == MAX_CMDS)
        return;
    cmd *c = &f->cmds[f->ncmds];
    memset(c, 0, sizeof(*c));
    c->store = store_id;
    c->region = m->region_id;
    if (m->change_peer != NULL && m->change_peer->peer != NULL) {
        c->kind = 1;
        c->change_type = (int)m->change_peer->change_type;
        c->peer_id = m->change_peer->peer->id;
        c->peer_store = m->change_peer->peer->store_id;
        c->learner = m->change_peer->peer->role == METAPB__PEER_ROLE__Learner;
    } else if (m->transfer_leader != NULL && m->transfer_leader->peer != NULL) {
        c->kind = 2;
        c->peer_id = m->transfer_leader->peer->id;
        c->peer_store = m->transfer_leader->peer->store_id;
    } else if (m->split_region != NULL) {
        c->kind = 3;
        c->policy = (int)m->split_region->policy;
        c->nkeys = m->split_region->n_keys;
        if (c->nkeys > 0 && m->split_region->keys[0].len <= KEYLEN) {
            memcpy(c->key, m->split_region->keys[0].data, m->split_region->keys[0].len);
            c->keylen = m->split_region->keys[0].len;
        }
    } else {
        return;
    }
    f->ncmds++;
}

/* ---- invariants ---------------------------------------------------------------------------- */

static void check_state(pdf *f)
{
    pd_cluster *c = f->c;
    pd__cluster_lock(c);
    size_t n = 0;
    const pd_region *prev = NULL;
    for (pd_region *r = pd__rt_first(&c->regions); r != NULL; r = pd__rt_next(&c->regions, r)) {
        n++;
        FUZZ_CHECK(pd__region_id(r) != 0 && pd__region_meta(r)->region_epoch != NULL);
        FUZZ_CHECK(pd__rt_get(&c->regions, pd__region_id(r)) == r);
        tkv_slice s = pd__region_start(r), e = pd__region_end(r);
        FUZZ_CHECK(e.len == 0 || tkv_slice_cmp(s, e) < 0);
        FUZZ_CHECK(pd__rt_find(&c->regions, s) == r);
        if (prev != NULL) {
            tkv_slice pe = pd__region_end(prev);
            /* Ordered, not overlapping: the previous one ends at or before this start. */
            FUZZ_CHECK(pe.len != 0 && tkv_slice_cmp(pe, s) <= 0);
        }
        prev = r;
    }
    FUZZ_CHECK(n == pd__rt_count(&c->regions));
    FUZZ_CHECK(n == c->regions.by_id.len);
    for (size_t i = 0; i < c->nstores; i++) {
        const pd_store *s = c->stores[i];
        uint64_t id = s->meta->id, regions = 0, leaders = 0, learners = 0, pending = 0;
        if (i > 0)
            FUZZ_CHECK(c->stores[i - 1]->meta->id < id);
        for (pd_region *r = pd__rt_first(&c->regions); r != NULL; r = pd__rt_next(&c->regions, r)) {
            const Metapb__Region *m = pd__region_meta(r);
            for (size_t k = 0; k < m->n_peers; k++) {
                if (m->peers[k]->store_id != id)
                    continue;
                regions++;
                learners += pd__peer_is_learner(m->peers[k]);
                pending += pd__region_is_pending(r, m->peers[k]->id);
                leaders += pd__region_leader_store(r) == id;
            }
        }
        if (s->region_count != regions || s->leader_count != leaders ||
            s->learner_count != learners || s->pending_count != pending)
            fprintf(stderr,
                    "pd_grpc: store %" PRIu64 " counts %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
                    ", tree says %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n",
                    id, s->region_count, s->leader_count, s->learner_count, s->pending_count,
                    regions, leaders, learners, pending);
        FUZZ_CHECK(s->region_count == regions && s->leader_count == leaders &&
                   s->learner_count == learners && s->pending_count == pending);
    }
    pd__cluster_unlock(c);
}

static void check_result(const pd_result *res)
{
    FUZZ_CHECK((int)res->type >= 0 && (int)res->type <= 20);
    FUZZ_CHECK(res->type == PDPB__ERROR_TYPE__OK || res->msg[0] != '\0');
}

/* ---- building requests ------------------------------------------------------------------- */

static const char *const keys[] = {"", "b", "d", "f", "h", "j", "l", "n"};

typedef struct sreg {
    Metapb__Region m;
    Metapb__RegionEpoch epoch;
    Metapb__Peer peers[8];
    Metapb__Peer *pp[8];
    uint8_t start[KEYLEN + 1], end[KEYLEN + 1];
} sreg;

static void sreg_init(sreg *s)
{
    memset(s, 0, sizeof(*s));
    metapb__region__init(&s->m);
    metapb__region_epoch__init(&s->epoch);
    s->m.region_epoch = &s->epoch;
    s->m.peers = s->pp;
    for (int i = 0; i < 8; i++) {
        metapb__peer__init(&s->peers[i]);
        s->pp[i] = &s->peers[i];
    }
}

static void sreg_keys(sreg *s, const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    if (al > 0) /* a and b may be NULL when empty */
        memcpy(s->start, a, al);
    if (bl > 0)
        memcpy(s->end, b, bl);
    s->m.start_key = (ProtobufCBinaryData){al, s->start};
    s->m.end_key = (ProtobufCBinaryData){bl, s->end};
}

static void sreg_add_peer(sreg *s, uint64_t id, uint64_t store, bool learner)
{
    if (s->m.n_peers == 8)
        return;
    Metapb__Peer *p = &s->peers[s->m.n_peers++];
    p->id = id;
    p->store_id = store;
    p->role = learner ? METAPB__PEER_ROLE__Learner : METAPB__PEER_ROLE__Voter;
}

/* A plausible region: small ids, keys from a sorted alphabet, peers on stores 1..5. */
static void gen_region(fuzz_in *in, sreg *s)
{
    sreg_init(s);
    s->m.id = 1 + fuzz_below(in, 8);
    size_t a = fuzz_below(in, TKV_ARRAY_LEN(keys)), b = fuzz_below(in, TKV_ARRAY_LEN(keys));
    if (b != 0 && b <= a)
        b = 0;
    sreg_keys(s, (const uint8_t *)keys[a], strlen(keys[a]), (const uint8_t *)keys[b],
              strlen(keys[b]));
    s->epoch.version = fuzz_below(in, 8);
    s->epoch.conf_ver = fuzz_below(in, 8);
    size_t n = 1 + fuzz_below(in, 4);
    bool used[6] = {false};
    for (size_t i = 0; i < n; i++) {
        uint64_t store = 1 + fuzz_below(in, 5);
        if (used[store])
            continue;
        used[store] = true;
        sreg_add_peer(s, s->m.id * 10 + store, store, fuzz_u8(in) % 5 == 0);
    }
}

/* Loads the region @r as PD holds it (mutex held); false when its keys are too long. */
static bool sreg_from(const pd_region *r, sreg *s)
{
    sreg_init(s);
    const Metapb__Region *m = pd__region_meta(r);
    if (m->start_key.len > KEYLEN || m->end_key.len > KEYLEN)
        return false;
    s->m.id = m->id;
    sreg_keys(s, m->start_key.data, m->start_key.len, m->end_key.data, m->end_key.len);
    s->epoch.version = m->region_epoch->version;
    s->epoch.conf_ver = m->region_epoch->conf_ver;
    for (size_t i = 0; i < m->n_peers && i < 8; i++)
        sreg_add_peer(s, m->peers[i]->id, m->peers[i]->store_id, pd__peer_is_learner(m->peers[i]));
    return true;
}

static const Metapb__Peer *sreg_peer_on(const sreg *s, uint64_t store)
{
    for (size_t i = 0; i < s->m.n_peers; i++)
        if (s->peers[i].store_id == store)
            return &s->peers[i];
    return NULL;
}

static void region_heartbeat(pdf *f, const Pdpb__RegionHeartbeatRequest *req)
{
    pd_result res;
    int rc = pd__cluster_region_heartbeat(f->c, req, &res);
    FUZZ_CHECK(rc == 0 || rc == TKV_ENOTFOUND);
    check_result(&res);
}

static void heartbeat_sreg(pdf *f, sreg *s, const Metapb__Peer *leader, uint64_t term)
{
    Pdpb__RegionHeartbeatRequest req = PDPB__REGION_HEARTBEAT_REQUEST__INIT;
    req.region = &s->m;
    req.leader = (Metapb__Peer *)leader;
    req.term = term;
    req.approximate_size = 1 << 20;
    region_heartbeat(f, &req);
}

/* Unpacks a request of type @d from the next chunk of the input (NULL when it does not
 * decode). Free with protobuf_c_message_free_unpacked. */
static ProtobufCMessage *raw(fuzz_in *in, const ProtobufCMessageDescriptor *d)
{
    size_t len;
    const uint8_t *p = fuzz_bytes(in, 255, &len);
    return protobuf_c_message_unpack(d, NULL, len, p);
}

/* ---- requests ----------------------------------------------------------------------------- */

static void op_bootstrap(pdf *f, fuzz_in *in, bool from_bytes)
{
    pd_result res;
    if (from_bytes) {
        Pdpb__BootstrapRequest *req = (void *)raw(in, &pdpb__bootstrap_request__descriptor);
        if (req == NULL)
            return;
        FUZZ_CHECK(pd__cluster_bootstrap(f->c, req->store, req->region, &res) == 0);
        protobuf_c_message_free_unpacked(&req->base, NULL);
    } else {
        Metapb__Store st = METAPB__STORE__INIT;
        st.id = 1 + fuzz_below(in, 5);
        st.address = "127.0.0.1:20160";
        sreg s;
        sreg_init(&s);
        s.m.id = 1 + fuzz_below(in, 3);
        sreg_add_peer(&s, s.m.id * 10 + st.id, st.id, false);
        s.epoch.version = s.epoch.conf_ver = 1;
        FUZZ_CHECK(pd__cluster_bootstrap(f->c, &st, &s.m, &res) == 0);
    }
    check_result(&res);
}

static void op_put_store(pdf *f, fuzz_in *in, bool from_bytes)
{
    pd_result res;
    if (from_bytes) {
        Pdpb__PutStoreRequest *req = (void *)raw(in, &pdpb__put_store_request__descriptor);
        if (req == NULL)
            return;
        FUZZ_CHECK(pd__cluster_put_store(f->c, req->store, &res) == 0);
        protobuf_c_message_free_unpacked(&req->base, NULL);
    } else {
        static const char *const zones[] = {"z1", "z2", "z3"};
        Metapb__Store st = METAPB__STORE__INIT;
        st.id = 1 + fuzz_below(in, 6);
        char addr[32];
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", 20160 + (unsigned)fuzz_below(in, 8));
        st.address = addr;
        Metapb__StoreLabel lab = METAPB__STORE_LABEL__INIT;
        Metapb__StoreLabel *labs[1] = {&lab};
        lab.key = "zone";
        lab.value = (char *)zones[fuzz_below(in, 3)];
        st.labels = labs;
        st.n_labels = 1;
        st.state = (Metapb__StoreState)fuzz_below(in, 3);
        FUZZ_CHECK(pd__cluster_put_store(f->c, &st, &res) == 0);
    }
    check_result(&res);
}

static void op_store_heartbeat(pdf *f, fuzz_in *in, bool from_bytes)
{
    pd_result res;
    if (from_bytes) {
        Pdpb__StoreHeartbeatRequest *req =
            (void *)raw(in, &pdpb__store_heartbeat_request__descriptor);
        if (req == NULL)
            return;
        bool has_stats = req->stats != NULL; /* the handler refuses a heartbeat without */
        if (has_stats)
            FUZZ_CHECK(pd__cluster_store_heartbeat(f->c, req->stats, &res) == 0);
        protobuf_c_message_free_unpacked(&req->base, NULL);
        if (!has_stats) /* (found by the 10-minute run: this read the freed request) */
            return;
    } else {
        Pdpb__StoreStats stats = PDPB__STORE_STATS__INIT;
        stats.store_id = 1 + fuzz_below(in, 6);
        stats.capacity = 100ull << 30;
        stats.available = fuzz_uint(in, 1) << 30;
        stats.region_count = (uint32_t)fuzz_u8(in);
        stats.is_busy = fuzz_u8(in) == 0;
        FUZZ_CHECK(pd__cluster_store_heartbeat(f->c, &stats, &res) == 0);
    }
    check_result(&res);
}

static void op_region_heartbeat(pdf *f, fuzz_in *in, bool from_bytes)
{
    if (from_bytes) {
        Pdpb__RegionHeartbeatRequest *req =
            (void *)raw(in, &pdpb__region_heartbeat_request__descriptor);
        if (req == NULL)
            return;
        region_heartbeat(f, req);
        protobuf_c_message_free_unpacked(&req->base, NULL);
        return;
    }
    sreg s;
    gen_region(in, &s);
    Metapb__Peer stranger = METAPB__PEER__INIT;
    const Metapb__Peer *leader = &s.peers[fuzz_below(in, s.m.n_peers)];
    if (fuzz_u8(in) % 8 == 0) {
        stranger.id = 99;
        stranger.store_id = 1 + fuzz_below(in, 7);
        leader = &stranger; /* a leader that is not among the peers, or on no store */
    }
    Pdpb__RegionHeartbeatRequest req = PDPB__REGION_HEARTBEAT_REQUEST__INIT;
    req.region = &s.m;
    req.leader = (Metapb__Peer *)leader;
    req.term = fuzz_below(in, 8);
    req.approximate_size = fuzz_uint(in, 1) << 20;
    Metapb__Peer *pending[1] = {&s.peers[0]};
    Pdpb__PeerStats down = PDPB__PEER_STATS__INIT, *downs[1] = {&down};
    uint8_t extra = fuzz_u8(in);
    if (extra & 1) {
        req.pending_peers = pending;
        req.n_pending_peers = 1;
    }
    if (extra & 2) {
        down.peer = &s.peers[s.m.n_peers - 1];
        down.down_seconds = 3600;
        req.down_peers = downs;
        req.n_down_peers = 1;
    }
    region_heartbeat(f, &req);
}

/* A store splits region @r at @keys (mutex not held): asks for ids, reports the parts. */
static void do_split(pdf *f, uint64_t region_id, const uint8_t *key, size_t keylen)
{
    sreg s;
    pd__cluster_lock(f->c);
    pd_region *r = pd__rt_get(&f->c->regions, region_id);
    bool ok = r != NULL && sreg_from(r, &s);
    uint64_t leader_store = r ? pd__region_leader_store(r) : 0;
    pd__cluster_unlock(f->c);
    if (!ok || keylen == 0 ||
        tkv_slice_cmp(tkv_slice_of(key, keylen), pd__bytes(s.m.start_key)) <= 0 ||
        (s.m.end_key.len > 0 &&
         tkv_slice_cmp(tkv_slice_of(key, keylen), pd__bytes(s.m.end_key)) >= 0))
        return;
    Pdpb__AskBatchSplitResponse resp = PDPB__ASK_BATCH_SPLIT_RESPONSE__INIT;
    pd_result res;
    FUZZ_CHECK(pd__cluster_ask_batch_split(f->c, &s.m, 1, &resp, &res) == 0);
    check_result(&res);
    if (res.type != PDPB__ERROR_TYPE__OK)
        return;
    FUZZ_CHECK(resp.n_ids == 1 && resp.ids[0]->n_new_peer_ids == s.m.n_peers);
    FUZZ_CHECK(resp.ids[0]->new_region_id > f->last_id);
    f->last_id = resp.ids[0]->new_region_id;
    for (size_t i = 0; i < s.m.n_peers; i++) {
        FUZZ_CHECK(resp.ids[0]->new_peer_ids[i] > f->last_id);
        f->last_id = resp.ids[0]->new_peer_ids[i];
    }
    /* TiKV keeps the old id on the right part; the left part gets the new id. */
    sreg left, right = s;
    right.m.region_epoch = &right.epoch;
    right.m.peers = right.pp;
    for (int i = 0; i < 8; i++)
        right.pp[i] = &right.peers[i];
    right.epoch.version++;
    sreg_keys(&right, key, keylen, s.end, s.m.end_key.len);
    sreg_init(&left);
    left.m.id = resp.ids[0]->new_region_id;
    sreg_keys(&left, s.start, s.m.start_key.len, key, keylen);
    left.epoch = right.epoch;
    for (size_t i = 0; i < s.m.n_peers; i++)
        sreg_add_peer(&left, resp.ids[0]->new_peer_ids[i], s.peers[i].store_id,
                      s.peers[i].role == METAPB__PEER_ROLE__Learner);
    pd__ask_batch_split_free(&resp);
    Metapb__Region *parts[2] = {&left.m, &right.m};
    FUZZ_CHECK(pd__cluster_report_batch_split(f->c, parts, 2, &res) == 0);
    check_result(&res);
    heartbeat_sreg(f, &left, sreg_peer_on(&left, leader_store), 1);
    heartbeat_sreg(f, &right, sreg_peer_on(&right, leader_store), 1);
}

static void op_ask_split(pdf *f, fuzz_in *in, bool from_bytes)
{
    if (!from_bytes) {
        const char *k = keys[fuzz_below(in, TKV_ARRAY_LEN(keys))];
        do_split(f, 1 + fuzz_below(in, 8), (const uint8_t *)k, strlen(k));
        return;
    }
    Pdpb__AskBatchSplitRequest *req = (void *)raw(in, &pdpb__ask_batch_split_request__descriptor);
    if (req == NULL)
        return;
    Pdpb__AskBatchSplitResponse resp = PDPB__ASK_BATCH_SPLIT_RESPONSE__INIT;
    pd_result res;
    uint32_t count = req->split_count % 64; /* bounded work per input (PD allows 4096) */
    FUZZ_CHECK(pd__cluster_ask_batch_split(f->c, req->region, count, &resp, &res) == 0);
    check_result(&res);
    FUZZ_CHECK(res.type != PDPB__ERROR_TYPE__OK || resp.n_ids == count);
    for (size_t i = 0; i < resp.n_ids; i++) {
        FUZZ_CHECK(resp.ids[i]->new_region_id > f->last_id);
        f->last_id = resp.ids[i]->new_region_id;
        for (size_t k = 0; k < resp.ids[i]->n_new_peer_ids; k++) {
            FUZZ_CHECK(resp.ids[i]->new_peer_ids[k] > f->last_id);
            f->last_id = resp.ids[i]->new_peer_ids[k];
        }
    }
    pd__ask_batch_split_free(&resp);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void op_report_split(pdf *f, fuzz_in *in)
{
    Pdpb__ReportBatchSplitRequest *req =
        (void *)raw(in, &pdpb__report_batch_split_request__descriptor);
    if (req == NULL)
        return;
    pd_result res;
    FUZZ_CHECK(pd__cluster_report_batch_split(f->c, req->regions, req->n_regions, &res) == 0);
    check_result(&res);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void op_put_meta(pdf *f, fuzz_in *in, bool from_bytes)
{
    pd_result res;
    if (from_bytes) {
        Pdpb__PutClusterConfigRequest *req =
            (void *)raw(in, &pdpb__put_cluster_config_request__descriptor);
        if (req == NULL)
            return;
        FUZZ_CHECK(pd__cluster_put_meta(f->c, req->cluster, &res) == 0);
        protobuf_c_message_free_unpacked(&req->base, NULL);
    } else {
        Metapb__Cluster m = METAPB__CLUSTER__INIT;
        m.id = fuzz_u8(in) % 4 == 0 ? 7 : f->c->cluster_id;
        m.max_peer_count = (uint32_t)fuzz_below(in, 6);
        FUZZ_CHECK(pd__cluster_put_meta(f->c, &m, &res) == 0);
    }
    check_result(&res);
}

static void op_gc(pdf *f, fuzz_in *in)
{
    pd__cluster_lock(f->c);
    bool boot = f->c->bootstrapped;
    pd__cluster_unlock(f->c);
    if (!boot)
        return; /* the handler answers NOT_BOOTSTRAPPED */
    uint64_t want = fuzz_uint(in, 2) << (fuzz_u8(in) % 48), got;
    FUZZ_CHECK(pd__cluster_update_gc_safe_point(f->c, want, &got) == 0);
    FUZZ_CHECK(got >= f->gc && got >= want && (got == want || got == f->gc));
    f->gc = got;
}

static void op_scatter(pdf *f, fuzz_in *in)
{
    static const char *const groups[] = {"", "g1", "g2"};
    pd_cluster *c = f->c;
    pd__cluster_lock(c);
    pd_region *r = pd__rt_get(&c->regions, 1 + fuzz_below(in, 8));
    if (r != NULL) {
        pd_operator *op = NULL;
        bool busy = pd__map_get(&c->ops, pd__region_id(r)) != NULL;
        bool leaderless = pd__region_leader_store(r) == 0;
        int rc = pd__scatter_locked(c, r, groups[fuzz_below(in, 3)], &op);
        /* Refused only for a region that has an operator already or no leader (found by the
         * 10-minute run: the harness took every refusal for a failure). */
        FUZZ_CHECK(rc == 0 || (rc == TKV_EEXIST && busy) ||
                   (rc == TKV_EUNAVAILABLE && leaderless && !busy));
        if (op != NULL) {
            rc = pd__opc_add_locked(c, op);
            FUZZ_CHECK(rc == 0 || rc == TKV_EEXIST);
            if (rc != 0)
                pd__op_free(op);
        }
    }
    pd__cluster_unlock(c);
}

static void split_done(void *ud, uint64_t pct, const uint64_t *ids, size_t n)
{
    pdf *f = ud;
    FUZZ_CHECK(pct <= 100);
    /* Called with the cluster mutex held: each id names a region that exists. */
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(pd__rt_get(&f->c->regions, ids[i]) != NULL);
    f->split_done++;
}

static void op_split_regions(pdf *f, fuzz_in *in)
{
    pd__cluster_lock(f->c);
    bool boot = f->c->bootstrapped;
    pd__cluster_unlock(f->c);
    if (!boot || f->c->waiters != NULL)
        return; /* one waiter at a time: @ud must be unique among waiting requests */
    tkv_slice ks[4];
    size_t n = fuzz_below(in, 5);
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[fuzz_below(in, TKV_ARRAY_LEN(keys))];
        ks[i] = tkv_slice_of(k, strlen(k));
    }
    pd_split_waiter *w;
    size_t before = f->split_done;
    FUZZ_CHECK(pd__cluster_split_regions(f->c, ks, n, fuzz_below(in, 2000), split_done, f, &w) ==
               0);
    FUZZ_CHECK((w == NULL) == (f->split_done == before + 1));
}

static void op_lookup(pdf *f, fuzz_in *in)
{
    pd_cluster *c = f->c;
    const char *k = keys[fuzz_below(in, TKV_ARRAY_LEN(keys))];
    tkv_slice key = tkv_slice_of(k, strlen(k));
    pd__cluster_lock(c);
    pd_region *r = pd__rt_find(&c->regions, key);
    if (r != NULL) {
        FUZZ_CHECK(tkv_slice_cmp(pd__region_start(r), key) <= 0);
        FUZZ_CHECK(pd__region_end(r).len == 0 || tkv_slice_cmp(key, pd__region_end(r)) < 0);
        pd_region *p = pd__rt_prev_adjacent(&c->regions, key);
        if (p != NULL)
            FUZZ_CHECK(tkv_slice_eq(pd__region_end(p), pd__region_start(r)));
    }
    pd_region *s = pd__rt_seek(&c->regions, key);
    FUZZ_CHECK(s == r || (r == NULL && (s == NULL || tkv_slice_cmp(pd__region_start(s), key) > 0)));
    pd_region **over;
    size_t n;
    const char *e = keys[fuzz_below(in, TKV_ARRAY_LEN(keys))];
    FUZZ_CHECK(pd__rt_overlaps(&c->regions, key, tkv_slice_of(e, strlen(e)), &over, &n) == 0);
    for (size_t i = 1; i < n; i++)
        FUZZ_CHECK(tkv_slice_cmp(pd__region_start(over[i - 1]), pd__region_start(over[i])) < 0);
    tkv_free(over);
    pd__cluster_unlock(c);
}

static void op_alloc_id(pdf *f)
{
    uint64_t id;
    FUZZ_CHECK(pd__id_alloc(&f->ids, &id) == 0);
    FUZZ_CHECK(id > f->last_id);
    f->last_id = id;
}

static void op_tso(pdf *f, fuzz_in *in)
{
    uint8_t b = fuzz_u8(in);
    if (b & 1) {
        f->wall += fuzz_u8(in);
    } else if (b & 2) {
        uint64_t back = fuzz_uint(in, 2);
        f->wall -= TKV_MIN(f->wall, back); /* the wall clock steps back */
    }
    uint32_t count = b & 4 ? (uint32_t)fuzz_uint(in, 3) : 1u + fuzz_u8(in);
    int64_t phys, logical;
    int rc = pd__tso_get(f->tso, count, &phys, &logical);
    if (count == 0 || count > PD_TSO_MAX_LOGICAL) {
        FUZZ_CHECK(rc == -EINVAL);
        return;
    }
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(logical >= (int64_t)count - 1 && logical < PD_TSO_MAX_LOGICAL);
    uint64_t first = pd__tso_compose(phys, logical - (int64_t)count + 1);
    FUZZ_CHECK(first > f->last_ts || f->last_ts == 0);
    f->last_ts = pd__tso_compose(phys, logical);
}

static void op_tick(pdf *f, fuzz_in *in)
{
    uint64_t k = fuzz_u8(in);
    f->now += k * (fuzz_u8(in) % 4 == 0 ? 60000u : 100u);
    pd__coordinator_tick(f->c);
}

static void op_store_state(pdf *f, fuzz_in *in)
{
    static const Metapb__StoreState states[] = {
        METAPB__STORE_STATE__Up, METAPB__STORE_STATE__Offline, METAPB__STORE_STATE__Tombstone};
    pd_result res;
    FUZZ_CHECK(pd__cluster_set_store_state(f->c, 1 + fuzz_below(in, 6), states[fuzz_below(in, 3)],
                                           fuzz_u8(in) % 8 == 0, &res) == 0);
    check_result(&res);
}

/* A store carries out a command it received and reports the region. */
static void op_apply_cmd(pdf *f, fuzz_in *in)
{
    if (f->ncmds == 0)
        return;
    size_t k = fuzz_below(in, f->ncmds);
    cmd c = f->cmds[k];
    f->cmds[k] = f->cmds[--f->ncmds];
    if (c.kind == 3) {
        static const char *const mids[] = {"c", "e", "g", "i", "k", "m"};
        const char *m = mids[fuzz_below(in, TKV_ARRAY_LEN(mids))];
        if (c.keylen > 0)
            do_split(f, c.region, c.key, c.keylen);
        else
            do_split(f, c.region, (const uint8_t *)m, strlen(m));
        return;
    }
    sreg s;
    pd__cluster_lock(f->c);
    pd_region *r = pd__rt_get(&f->c->regions, c.region);
    bool ok = r != NULL && sreg_from(r, &s);
    uint64_t leader_store = r ? pd__region_leader_store(r) : 0;
    uint64_t term = r ? r->term : 0;
    pd__cluster_unlock(f->c);
    if (!ok)
        return;
    if (c.kind == 2) {
        if (sreg_peer_on(&s, c.peer_store) != NULL)
            leader_store = c.peer_store;
        term++;
    } else if (c.change_type == ERAFTPB__CONF_CHANGE_TYPE__RemoveNode) {
        for (size_t i = 0; i < s.m.n_peers; i++) {
            if (s.peers[i].store_id == c.peer_store) {
                s.peers[i] = s.peers[--s.m.n_peers];
                s.epoch.conf_ver++;
                break;
            }
        }
    } else {
        Metapb__Peer *p = (Metapb__Peer *)sreg_peer_on(&s, c.peer_store);
        bool learner = c.change_type == ERAFTPB__CONF_CHANGE_TYPE__AddLearnerNode;
        if (p == NULL)
            sreg_add_peer(&s, c.peer_id, c.peer_store, learner);
        else
            p->role = learner ? METAPB__PEER_ROLE__Learner : METAPB__PEER_ROLE__Voter;
        s.epoch.conf_ver++;
    }
    const Metapb__Peer *leader = sreg_peer_on(&s, leader_store);
    if (leader != NULL && s.m.n_peers > 0)
        heartbeat_sreg(f, &s, leader, term);
}

static void step(pdf *f, fuzz_in *in)
{
    uint8_t b = fuzz_u8(in);
    bool from_bytes = b & 0x80;
    switch (b % 20) {
    case 0:
        op_bootstrap(f, in, from_bytes);
        break;
    case 1:
        op_put_store(f, in, from_bytes);
        break;
    case 2:
        op_store_heartbeat(f, in, from_bytes);
        break;
    case 3:
    case 4:
    case 5:
        op_region_heartbeat(f, in, from_bytes);
        break;
    case 6:
        op_ask_split(f, in, from_bytes);
        break;
    case 7:
        op_report_split(f, in);
        break;
    case 8:
        op_put_meta(f, in, from_bytes);
        break;
    case 9:
        op_gc(f, in);
        break;
    case 10:
        op_scatter(f, in);
        break;
    case 11:
        op_split_regions(f, in);
        break;
    case 12:
        op_lookup(f, in);
        break;
    case 13:
        op_alloc_id(f);
        break;
    case 14:
        op_tso(f, in);
        break;
    case 15:
    case 16:
        op_tick(f, in);
        break;
    case 17:
        op_store_state(f, in);
        break;
    default:
        op_apply_cmd(f, in);
        break;
    }
    check_state(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tkv_log_set_level(TKV_LOG_OFF);
    pdf *f = calloc(1, sizeof(*f));
    FUZZ_CHECK(f != NULL);
    f->now = 1000000;
    f->wall = 1700000000000ULL;
    char err[TKV_ERRMSG_LEN];
    FUZZ_CHECK(pd__storage_open(NULL, &f->st, err) == 0);
    FUZZ_CHECK(pd__id_init(&f->ids, f->st, 0) == 0);
    pd_sched_cfg cfg;
    pd__sched_cfg_default(&cfg);
    FUZZ_CHECK(pd__cluster_new(f->st, &f->ids, 42, &cfg, fuzz_pd_read_now, &f->now, &f->c) == 0);
    pd__cluster_set_hb_sink(f->c, sink, f);
    pd_tso_opts to;
    pd__tso_opts_init(&to);
    to.start_thread = false;
    to.clock_ms = fuzz_pd_read_now;
    to.clock_ud = &f->wall;
    FUZZ_CHECK(pd__tso_open(f->st, &to, &f->tso) == 0);
    fuzz_in in = fuzz_in_of(data, size);
    for (int i = 0; i < 200 && in.n > 0; i++)
        step(f, &in);
    pd__tso_close(f->tso);
    pd__cluster_lock(f->c);
    pd__waiters_free_locked(f->c);
    pd__cluster_unlock(f->c);
    pd__cluster_free(f->c);
    pd__id_deinit(&f->ids);
    pd__storage_close(f->st);
    free(f);
    return 0;
}
