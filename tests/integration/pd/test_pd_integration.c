/*
 * test_pd_integration.c: the real pd-server process over gRPC (src/rpc's client, pdpb
 * messages), with this program playing the stores: bootstrap, store and region heartbeats,
 * replica repair, the ask-split flow, SplitRegions, a fourth store receiving its share, a
 * store going down and its peers being replaced, and a restart that keeps every store and
 * region. Also: GetMembers, TSO streams, cluster-id errors, the etcd KV subset, the HTTP API.
 *
 * The simulated stores apply every command PD sends (add learner, promote, remove, transfer
 * leader, split with keys) to a model of the regions, then heartbeat the changed region
 * from its leader, as TiKV would. Every wait is a poll with a deadline; the deadline only
 * bounds a failure.
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/clock.h"
#include "etcdserverpb.pb-c.h"
#include "health.pb-c.h"
#include "pd_proc.h"
#include "pdpb.pb-c.h"

#define WAIT_MS 60000

/* ---- the simulated cluster -------------------------------------------------------------- */

typedef struct sregion {
    uint64_t id;
    char start[16], end[16];
    uint64_t version, conf_ver;
    size_t n;
    uint64_t peer_ids[8], stores[8];
    bool learner[8];
    uint64_t leader; /* store id */
} sregion;

typedef struct world world;

typedef struct sstore {
    world *w;
    uint64_t id;
    char addr[32];
    rpc_stream *hb;
    bool dead;
} sstore;

typedef struct qcmd {
    uint64_t store;
    Pdpb__RegionHeartbeatResponse *m;
} qcmd;

#define QCAP 4096

struct world {
    pdp pd;
    rpc_client *cli;
    rpc_channel *ch;
    uint64_t cluster_id;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sstore stores[8];
    size_t nstores;
    sregion regions[32];
    size_t nregions;
    qcmd q[QCAP];
    size_t qhead, qlen;
    size_t header_errors;
    size_t applied;
    pthread_t hb_thread;
    bool hb_running;
    bool stop;
};

static void connect_pd(world *w)
{
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    assert_int_equal(rpc_client_new(&o, &w->cli), 0);
    assert_int_equal(rpc_client_channel(w->cli, w->pd.grpc_addr, 0, &w->ch), 0);
}

/* Calls a unary PD method; fails the test on a transport or gRPC error. */
static ProtobufCMessage *call(world *w, const char *method, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc)
{
    ProtobufCMessage *resp = NULL;
    rpc_status st;
    int rc = rpc_unary_msg(w->ch, method, req, resp_desc, 10000, &resp, &st);
    if (rc != 0) {
        pdp_dump_log(&w->pd);
        fail_msg("%s failed: %s %s", method, rpc_code_name(st.code), st.message);
    }
    return resp;
}

static Pdpb__RequestHeader header(world *w)
{
    Pdpb__RequestHeader h = PDPB__REQUEST_HEADER__INIT;
    h.cluster_id = w->cluster_id;
    return h;
}

static uint64_t alloc_id(world *w)
{
    Pdpb__RequestHeader h = header(w);
    Pdpb__AllocIDRequest req = PDPB__ALLOC_IDREQUEST__INIT;
    req.header = &h;
    Pdpb__AllocIDResponse *r =
        (void *)call(w, "/pdpb.PD/AllocID", &req.base, &pdpb__alloc_idresponse__descriptor);
    assert_null(r->header->error);
    uint64_t id = r->id;
    rpc_msg_free(&r->base);
    assert_true(id > 0);
    return id;
}

static uint64_t get_members_cluster_id(world *w)
{
    Pdpb__GetMembersRequest req = PDPB__GET_MEMBERS_REQUEST__INIT;
    Pdpb__GetMembersResponse *r =
        (void *)call(w, "/pdpb.PD/GetMembers", &req.base, &pdpb__get_members_response__descriptor);
    assert_non_null(r->header);
    uint64_t id = r->header->cluster_id;
    assert_non_null(r->leader);
    assert_int_equal(r->leader->n_client_urls, 1);
    char want[100];
    snprintf(want, sizeof(want), "http://%s", w->pd.grpc_addr);
    assert_string_equal(r->leader->client_urls[0], want);
    assert_int_equal(r->n_members, 1);
    assert_int_equal(r->members[0]->member_id, r->leader->member_id);
    assert_true(r->leader->member_id != 0);
    rpc_msg_free(&r->base);
    return id;
}

static void fill_region(const sregion *s, Metapb__Region *m, Metapb__RegionEpoch *e,
                        Metapb__Peer *peers, Metapb__Peer **pp)
{
    metapb__region__init(m);
    metapb__region_epoch__init(e);
    e->version = s->version;
    e->conf_ver = s->conf_ver;
    m->id = s->id;
    m->start_key.data = (uint8_t *)s->start;
    m->start_key.len = strlen(s->start);
    m->end_key.data = (uint8_t *)s->end;
    m->end_key.len = strlen(s->end);
    m->region_epoch = e;
    for (size_t i = 0; i < s->n; i++) {
        metapb__peer__init(&peers[i]);
        peers[i].id = s->peer_ids[i];
        peers[i].store_id = s->stores[i];
        peers[i].role = s->learner[i] ? METAPB__PEER_ROLE__Learner : METAPB__PEER_ROLE__Voter;
        pp[i] = &peers[i];
    }
    m->n_peers = s->n;
    m->peers = pp;
}

static sstore *store_by_id(world *w, uint64_t id)
{
    for (size_t i = 0; i < w->nstores; i++)
        if (w->stores[i].id == id)
            return &w->stores[i];
    return NULL;
}

/* Sends the region's heartbeat from its leader's stream (w->mu held). A region led by a
 * dead store elects a live voter first, as Raft would. */
static void region_hb_locked(world *w, sregion *s)
{
    sstore *leader = store_by_id(w, s->leader);
    if (leader == NULL || leader->dead) {
        for (size_t i = 0; i < s->n; i++) {
            sstore *o = store_by_id(w, s->stores[i]);
            if (!s->learner[i] && o != NULL && !o->dead && o->hb != NULL) {
                s->leader = o->id;
                leader = o;
                break;
            }
        }
    }
    if (leader == NULL || leader->dead || leader->hb == NULL)
        return;
    Metapb__Region m;
    Metapb__RegionEpoch e;
    Metapb__Peer peers[8], *pp[8];
    fill_region(s, &m, &e, peers, pp);
    Metapb__Peer *lp = NULL;
    for (size_t i = 0; i < s->n; i++)
        if (s->stores[i] == s->leader)
            lp = pp[i];
    Pdpb__RequestHeader h = header(w);
    Pdpb__RegionHeartbeatRequest req = PDPB__REGION_HEARTBEAT_REQUEST__INIT;
    req.header = &h;
    req.region = &m;
    req.leader = lp;
    req.approximate_size = 1 << 20;
    req.approximate_keys = 100;
    TKV_IGNORE(rpc_stream_send_msg(leader->hb, &req.base));
}

static sregion *region_by_id(world *w, uint64_t id)
{
    for (size_t i = 0; i < w->nregions; i++)
        if (w->regions[i].id == id)
            return &w->regions[i];
    return NULL;
}

static void hb_message(rpc_stream *st, tkv_slice msg, void *ud)
{
    (void)st;
    sstore *s = ud;
    world *w = s->w;
    ProtobufCMessage *m;
    if (rpc_msg_unpack(&pdpb__region_heartbeat_response__descriptor, msg, &m) != 0)
        return;
    Pdpb__RegionHeartbeatResponse *r = (void *)m;
    pthread_mutex_lock(&w->mu);
    if (r->header != NULL && r->header->error != NULL) {
        w->header_errors++;
        rpc_msg_free(m);
    } else if (w->qlen < QCAP) {
        w->q[(w->qhead + w->qlen++) % QCAP] = (qcmd){.store = s->id, .m = r};
        pthread_cond_broadcast(&w->cv);
    } else {
        rpc_msg_free(m);
    }
    pthread_mutex_unlock(&w->mu);
}

static void hb_done(rpc_stream *st, const rpc_status *status, void *ud)
{
    (void)st;
    (void)status;
    (void)ud;
}

static void open_hb(world *w, sstore *s)
{
    rpc_stream_cbs cbs = {.on_message = hb_message, .on_done = hb_done, .ud = s};
    assert_int_equal(rpc_stream_open(w->ch, "/pdpb.PD/RegionHeartbeat", 0, &cbs, &s->hb), 0);
}

static void close_streams(world *w)
{
    for (size_t i = 0; i < w->nstores; i++) {
        rpc_stream_free(w->stores[i].hb);
        w->stores[i].hb = NULL;
    }
}

/* Splits @r at @keys (sorted) the way TiKV does with right-derive: the new regions take the
 * left parts, the original keeps the right one. Uses AskBatchSplit and ReportBatchSplit.
 * w->mu held (released around the calls). */
static void split_locked(world *w, sregion *r, char keys[][16], size_t nkeys)
{
    sregion orig = *r;
    pthread_mutex_unlock(&w->mu);
    Metapb__Region m;
    Metapb__RegionEpoch e;
    Metapb__Peer peers[8], *pp[8];
    fill_region(&orig, &m, &e, peers, pp);
    Pdpb__RequestHeader h = header(w);
    Pdpb__AskBatchSplitRequest req = PDPB__ASK_BATCH_SPLIT_REQUEST__INIT;
    req.header = &h;
    req.region = &m;
    req.split_count = (uint32_t)nkeys;
    Pdpb__AskBatchSplitResponse *resp = (void *)call(w, "/pdpb.PD/AskBatchSplit", &req.base,
                                                     &pdpb__ask_batch_split_response__descriptor);
    assert_null(resp->header->error);
    assert_int_equal(resp->n_ids, nkeys);
    sregion parts[8];
    for (size_t i = 0; i <= nkeys; i++) {
        parts[i] = orig;
        parts[i].version = orig.version + nkeys;
        snprintf(parts[i].start, sizeof(parts[i].start), "%s", i == 0 ? orig.start : keys[i - 1]);
        snprintf(parts[i].end, sizeof(parts[i].end), "%s", i == nkeys ? orig.end : keys[i]);
        if (i < nkeys) {
            parts[i].id = resp->ids[i]->new_region_id;
            assert_int_equal(resp->ids[i]->n_new_peer_ids, orig.n);
            for (size_t j = 0; j < orig.n; j++)
                parts[i].peer_ids[j] = resp->ids[i]->new_peer_ids[j];
        }
    }
    rpc_msg_free(&resp->base);
    Metapb__Region rm[8], *prm[8];
    Metapb__RegionEpoch re[8];
    Metapb__Peer rpeers[8][8], *rpp[8][8];
    for (size_t i = 0; i <= nkeys; i++) {
        fill_region(&parts[i], &rm[i], &re[i], rpeers[i], rpp[i]);
        prm[i] = &rm[i];
    }
    Pdpb__ReportBatchSplitRequest rep = PDPB__REPORT_BATCH_SPLIT_REQUEST__INIT;
    rep.header = &h;
    rep.n_regions = nkeys + 1;
    rep.regions = prm;
    Pdpb__ReportBatchSplitResponse *rr = (void *)call(
        w, "/pdpb.PD/ReportBatchSplit", &rep.base, &pdpb__report_batch_split_response__descriptor);
    assert_null(rr->header->error);
    rpc_msg_free(&rr->base);
    pthread_mutex_lock(&w->mu);
    r = region_by_id(w, orig.id);
    *r = parts[nkeys];
    for (size_t i = 0; i < nkeys; i++)
        w->regions[w->nregions++] = parts[i];
    for (size_t i = 0; i <= nkeys; i++)
        region_hb_locked(w, region_by_id(w, parts[i].id));
}

/* Applies one command as the store would. w->mu held. */
static void apply_locked(world *w, qcmd *c)
{
    Pdpb__RegionHeartbeatResponse *m = c->m;
    sregion *r = region_by_id(w, m->region_id);
    if (r == NULL || r->leader != c->store)
        return;
    bool changed = false;
    if (m->change_peer != NULL && m->change_peer->peer != NULL) {
        const Metapb__Peer *p = m->change_peer->peer;
        size_t i;
        for (i = 0; i < r->n; i++)
            if (r->stores[i] == p->store_id)
                break;
        switch (m->change_peer->change_type) {
        case ERAFTPB__CONF_CHANGE_TYPE__AddLearnerNode:
            if (i == r->n && r->n < 8) {
                r->peer_ids[r->n] = p->id;
                r->stores[r->n] = p->store_id;
                r->learner[r->n++] = true;
                changed = true;
            }
            break;
        case ERAFTPB__CONF_CHANGE_TYPE__AddNode:
            if (i < r->n && r->learner[i]) {
                r->learner[i] = false;
                changed = true;
            }
            break;
        case ERAFTPB__CONF_CHANGE_TYPE__RemoveNode:
            if (i < r->n && r->stores[i] != r->leader) {
                for (size_t j = i + 1; j < r->n; j++) {
                    r->peer_ids[j - 1] = r->peer_ids[j];
                    r->stores[j - 1] = r->stores[j];
                    r->learner[j - 1] = r->learner[j];
                }
                r->n--;
                changed = true;
            }
            break;
        default:
            break;
        }
        if (changed)
            r->conf_ver++;
    } else if (m->transfer_leader != NULL && m->transfer_leader->peer != NULL) {
        uint64_t to = m->transfer_leader->peer->store_id;
        sstore *s = store_by_id(w, to);
        for (size_t i = 0; i < r->n && s != NULL && !s->dead; i++)
            if (r->stores[i] == to && !r->learner[i] && r->leader != to) {
                r->leader = to;
                changed = true;
            }
    } else if (m->split_region != NULL && m->split_region->n_keys > 0) {
        char keys[8][16];
        size_t n = 0;
        for (size_t i = 0; i < m->split_region->n_keys && n < 8; i++) {
            ProtobufCBinaryData k = m->split_region->keys[i];
            if (k.len == 0 || k.len >= 16)
                continue;
            snprintf(keys[n], 16, "%.*s", (int)k.len, (const char *)k.data);
            /* TiKV ignores keys outside the region or on its boundary (a repeated command
             * for a split that already happened). */
            if (strcmp(keys[n], r->start) > 0 && (r->end[0] == '\0' || strcmp(keys[n], r->end) < 0))
                n++;
        }
        if (n > 0) {
            split_locked(w, r, keys, n);
            w->applied++;
        }
        return;
    }
    if (changed) {
        w->applied++;
        region_hb_locked(w, r);
    }
}

/* Processes commands for @ms, heartbeating every region every 200 ms. */
static void pump(world *w, uint64_t ms)
{
    uint64_t end = tkv_clock_mono_ms() + ms;
    uint64_t next_hb = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        uint64_t now = tkv_clock_mono_ms();
        if (now >= next_hb) {
            for (size_t i = 0; i < w->nregions; i++)
                region_hb_locked(w, &w->regions[i]);
            next_hb = now + 200;
        }
        while (w->qlen > 0) {
            qcmd c = w->q[w->qhead];
            w->qhead = (w->qhead + 1) % QCAP;
            w->qlen--;
            apply_locked(w, &c);
            rpc_msg_free(&c.m->base);
        }
        if (now >= end)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
}

static void *store_hb_main(void *arg)
{
    world *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        uint64_t ids[8];
        size_t n = 0;
        for (size_t i = 0; i < w->nstores; i++)
            if (!w->stores[i].dead)
                ids[n++] = w->stores[i].id;
        pthread_mutex_unlock(&w->mu);
        for (size_t i = 0; i < n; i++) {
            Pdpb__RequestHeader h = header(w);
            Pdpb__StoreStats st = PDPB__STORE_STATS__INIT;
            st.store_id = ids[i];
            st.capacity = 100ull << 30;
            st.available = 60ull << 30;
            st.used_size = 1ull << 30;
            st.start_time = (uint32_t)(tkv_clock_real_ms() / 1000);
            Pdpb__StoreHeartbeatRequest req = PDPB__STORE_HEARTBEAT_REQUEST__INIT;
            req.header = &h;
            req.stats = &st;
            ProtobufCMessage *resp;
            rpc_status rs;
            if (rpc_unary_msg(w->ch, "/pdpb.PD/StoreHeartbeat", &req.base,
                              &pdpb__store_heartbeat_response__descriptor, 2000, &resp, &rs) == 0)
                rpc_msg_free(resp);
        }
        tkv_sleep_ms(100);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void start_store_heartbeats(world *w)
{
    w->stop = false;
    assert_int_equal(pthread_create(&w->hb_thread, NULL, store_hb_main, w), 0);
    w->hb_running = true;
}

static void stop_store_heartbeats(world *w)
{
    if (!w->hb_running)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->hb_thread, NULL);
    w->hb_running = false;
}

static void world_free(world *w)
{
    stop_store_heartbeats(w);
    close_streams(w);
    for (size_t i = 0; i < w->qlen; i++)
        rpc_msg_free(&w->q[(w->qhead + i) % QCAP].m->base);
    rpc_client_free(w->cli);
    /* A clean exit: graceful stop, and no leak or sanitizer report in the ASan build. */
    int status = pdp_stop(&w->pd);
    if (status != 0)
        pdp_dump_log(&w->pd);
    pdp_cleanup(&w->pd);
    assert_int_equal(status, 0);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    tkv_free(w);
}

static world *world_new(const char *toml)
{
    world *w = tkv_calloc(1, sizeof(*w));
    assert_non_null(w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pdp_init(&w->pd, toml);
    pdp_start(&w->pd);
    connect_pd(w);
    w->cluster_id = get_members_cluster_id(w);
    assert_true(w->cluster_id != 0);
    return w;
}

static void put_store(world *w, sstore *s)
{
    Pdpb__RequestHeader h = header(w);
    Metapb__Store ms = METAPB__STORE__INIT;
    ms.id = s->id;
    ms.address = s->addr;
    ms.version = "6.5.0";
    Pdpb__PutStoreRequest req = PDPB__PUT_STORE_REQUEST__INIT;
    req.header = &h;
    req.store = &ms;
    Pdpb__PutStoreResponse *r =
        (void *)call(w, "/pdpb.PD/PutStore", &req.base, &pdpb__put_store_response__descriptor);
    assert_null(r->header->error);
    rpc_msg_free(&r->base);
}

/* Adds a store the way tikv-server does: an id from AllocID, PutStore, a heartbeat stream. */
static sstore *join_store(world *w)
{
    uint64_t id = alloc_id(w);
    pthread_mutex_lock(&w->mu);
    sstore *s = &w->stores[w->nstores];
    memset(s, 0, sizeof(*s));
    s->w = w;
    s->id = id;
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%" PRIu64, 30000 + id);
    pthread_mutex_unlock(&w->mu);
    put_store(w, s);
    open_hb(w, s);
    pthread_mutex_lock(&w->mu);
    w->nstores++;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* The first store: IsBootstrapped, AllocID for store, region and peer, Bootstrap. */
static void bootstrap(world *w)
{
    Pdpb__RequestHeader h = header(w);
    Pdpb__IsBootstrappedRequest ib = PDPB__IS_BOOTSTRAPPED_REQUEST__INIT;
    ib.header = &h;
    Pdpb__IsBootstrappedResponse *ibr = (void *)call(w, "/pdpb.PD/IsBootstrapped", &ib.base,
                                                     &pdpb__is_bootstrapped_response__descriptor);
    assert_false(ibr->bootstrapped);
    rpc_msg_free(&ibr->base);
    sstore *s = &w->stores[0];
    s->w = w;
    s->id = alloc_id(w);
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%" PRIu64, 30000 + s->id);
    sregion *r = &w->regions[0];
    memset(r, 0, sizeof(*r));
    r->id = alloc_id(w);
    r->peer_ids[0] = alloc_id(w);
    r->stores[0] = s->id;
    r->n = 1;
    r->version = 1;
    r->conf_ver = 1;
    r->leader = s->id;
    Metapb__Store ms = METAPB__STORE__INIT;
    ms.id = s->id;
    ms.address = s->addr;
    Metapb__Region m;
    Metapb__RegionEpoch e;
    Metapb__Peer peers[8], *pp[8];
    fill_region(r, &m, &e, peers, pp);
    Pdpb__BootstrapRequest req = PDPB__BOOTSTRAP_REQUEST__INIT;
    req.header = &h;
    req.store = &ms;
    req.region = &m;
    Pdpb__BootstrapResponse *br =
        (void *)call(w, "/pdpb.PD/Bootstrap", &req.base, &pdpb__bootstrap_response__descriptor);
    assert_null(br->header->error);
    assert_int_equal(br->header->cluster_id, w->cluster_id);
    rpc_msg_free(&br->base);
    /* A second bootstrap is refused. */
    br = (void *)call(w, "/pdpb.PD/Bootstrap", &req.base, &pdpb__bootstrap_response__descriptor);
    assert_non_null(br->header->error);
    assert_int_equal(br->header->error->type, PDPB__ERROR_TYPE__ALREADY_BOOTSTRAPPED);
    rpc_msg_free(&br->base);
    ibr = (void *)call(w, "/pdpb.PD/IsBootstrapped", &ib.base,
                       &pdpb__is_bootstrapped_response__descriptor);
    assert_true(ibr->bootstrapped);
    rpc_msg_free(&ibr->base);
    w->nregions = 1;
    w->nstores = 1;
    open_hb(w, s);
}

/* ---- views of PD's state -------------------------------------------------------------------- */

/* Scans every region from PD. */
static Pdpb__ScanRegionsResponse *scan_all(world *w)
{
    Pdpb__RequestHeader h = header(w);
    Pdpb__ScanRegionsRequest req = PDPB__SCAN_REGIONS_REQUEST__INIT;
    req.header = &h;
    Pdpb__ScanRegionsResponse *r = (void *)call(w, "/pdpb.PD/ScanRegions", &req.base,
                                                &pdpb__scan_regions_response__descriptor);
    assert_null(r->header->error);
    return r;
}

/* Counts PD's peers per store; returns the number of regions, and whether every region has
 * exactly @want voters and no learner. */
static size_t peer_counts(world *w, uint64_t *counts, size_t ncounts, size_t want, bool *complete)
{
    Pdpb__ScanRegionsResponse *r = scan_all(w);
    memset(counts, 0, ncounts * sizeof(*counts));
    *complete = true;
    for (size_t i = 0; i < r->n_regions; i++) {
        const Metapb__Region *m = r->regions[i]->region;
        size_t voters = 0;
        for (size_t j = 0; j < m->n_peers; j++) {
            if (m->peers[j]->role == METAPB__PEER_ROLE__Voter)
                voters++;
            else
                *complete = false;
            if (m->peers[j]->store_id < ncounts)
                counts[m->peers[j]->store_id]++;
        }
        if (voters != want)
            *complete = false;
    }
    size_t n = r->n_regions;
    rpc_msg_free(&r->base);
    return n;
}

typedef bool (*pred_fn)(world *w, void *arg);

static bool wait_until(world *w, pred_fn pred, void *arg, const char *what)
{
    uint64_t deadline = tkv_clock_mono_ms() + WAIT_MS;
    while (!pred(w, arg)) {
        if (tkv_clock_mono_ms() > deadline) {
            pdp_dump_log(&w->pd);
            fail_msg("timed out waiting for: %s", what);
            return false;
        }
        pump(w, 100);
    }
    return true;
}

static bool all_replicated(world *w, void *arg)
{
    (void)arg;
    uint64_t counts[64];
    bool complete;
    size_t n = peer_counts(w, counts, 64, 3, &complete);
    return n == w->nregions && complete;
}

static bool balanced(world *w, void *arg)
{
    (void)arg;
    uint64_t counts[64];
    bool complete;
    peer_counts(w, counts, 64, 3, &complete);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < w->nstores; i++) {
        if (w->stores[i].dead)
            continue;
        uint64_t c = counts[w->stores[i].id];
        lo = c < lo ? c : lo;
        hi = c > hi ? c : hi;
    }
    return complete && hi - lo <= 1;
}

static bool store_empty(world *w, void *arg)
{
    uint64_t id = *(uint64_t *)arg;
    uint64_t counts[64];
    bool complete;
    peer_counts(w, counts, 64, 3, &complete);
    return complete && counts[id] == 0;
}

static Pdpb__GetRegionResponse *get_region(world *w, const char *method, const char *key)
{
    Pdpb__RequestHeader h = header(w);
    Pdpb__GetRegionRequest req = PDPB__GET_REGION_REQUEST__INIT;
    req.header = &h;
    req.region_key.data = (uint8_t *)key;
    req.region_key.len = strlen(key);
    Pdpb__GetRegionResponse *r =
        (void *)call(w, method, &req.base, &pdpb__get_region_response__descriptor);
    assert_null(r->header->error);
    return r;
}

static uint64_t region_id_at(world *w, const char *method, const char *key)
{
    Pdpb__GetRegionResponse *r = get_region(w, method, key);
    uint64_t id = r->region ? r->region->id : 0;
    rpc_msg_free(&r->base);
    return id;
}

static int64_t tso_once(world *w, uint32_t count, uint64_t *ts)
{
    rpc_stream *s;
    assert_int_equal(rpc_stream_open(w->ch, "/pdpb.PD/Tso", 10000, NULL, &s), 0);
    Pdpb__RequestHeader h = header(w);
    Pdpb__TsoRequest req = PDPB__TSO_REQUEST__INIT;
    req.header = &h;
    req.count = count;
    req.dc_location = "global";
    assert_int_equal(rpc_stream_send_msg(s, &req.base), 0);
    tkv_buf b;
    tkv_buf_init(&b);
    rpc_status st;
    assert_int_equal(rpc_stream_read(s, 10000, &b, &st), 0);
    ProtobufCMessage *m;
    assert_int_equal(rpc_msg_unpack(&pdpb__tso_response__descriptor, tkv_buf_slice(&b), &m), 0);
    Pdpb__TsoResponse *r = (void *)m;
    assert_int_equal(r->count, count);
    *ts = ((uint64_t)r->timestamp->physical << 18) | (uint64_t)r->timestamp->logical;
    int64_t phys = r->timestamp->physical;
    rpc_msg_free(m);
    tkv_buf_deinit(&b);
    TKV_IGNORE(rpc_stream_close_send(s));
    TKV_IGNORE(rpc_stream_wait(s, 10000, &st));
    rpc_stream_free(s);
    return phys;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static void test_members_tso_errors_etcd_and_health(void **state)
{
    (void)state;
    world *w = world_new(NULL);

    /* TSO: three pipelined requests answered in order, counts echoed, increasing. */
    rpc_stream *s;
    assert_int_equal(rpc_stream_open(w->ch, "/pdpb.PD/Tso", 10000, NULL, &s), 0);
    Pdpb__RequestHeader h = header(w);
    uint32_t counts[] = {1, 10, 100};
    for (int i = 0; i < 3; i++) {
        Pdpb__TsoRequest req = PDPB__TSO_REQUEST__INIT;
        req.header = &h;
        req.count = counts[i];
        assert_int_equal(rpc_stream_send_msg(s, &req.base), 0);
    }
    uint64_t last = 0;
    tkv_buf b;
    tkv_buf_init(&b);
    rpc_status st;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rpc_stream_read(s, 10000, &b, &st), 0);
        ProtobufCMessage *m;
        assert_int_equal(rpc_msg_unpack(&pdpb__tso_response__descriptor, tkv_buf_slice(&b), &m), 0);
        Pdpb__TsoResponse *r = (void *)m;
        assert_int_equal(r->count, counts[i]);
        assert_int_equal(r->header->cluster_id, w->cluster_id);
        int64_t first = r->timestamp->logical - (int64_t)counts[i] + 1;
        assert_true(first >= 0);
        assert_true(r->timestamp->logical < (1 << 18));
        uint64_t first_ts = ((uint64_t)r->timestamp->physical << 18) | (uint64_t)first;
        assert_true(first_ts > last);
        last = ((uint64_t)r->timestamp->physical << 18) | (uint64_t)r->timestamp->logical;
        /* Physical is real milliseconds. */
        int64_t now = (int64_t)tkv_clock_real_ms();
        assert_true(r->timestamp->physical > now - 60000 && r->timestamp->physical < now + 60000);
        rpc_msg_free(m);
    }
    /* A request for another cluster ends the stream with FAILED_PRECONDITION. */
    Pdpb__RequestHeader bad = PDPB__REQUEST_HEADER__INIT;
    bad.cluster_id = w->cluster_id + 1;
    Pdpb__TsoRequest breq = PDPB__TSO_REQUEST__INIT;
    breq.header = &bad;
    breq.count = 1;
    assert_int_equal(rpc_stream_send_msg(s, &breq.base), 0);
    assert_int_equal(rpc_stream_read(s, 10000, &b, &st), TKV_ECLOSED);
    assert_int_equal(st.code, RPC_FAILED_PRECONDITION);
    assert_non_null(strstr(st.message, "mismatch cluster id"));
    rpc_stream_free(s);
    tkv_buf_deinit(&b);

    /* Unary with a wrong cluster id: FAILED_PRECONDITION as well. */
    Pdpb__GetStoreRequest gs = PDPB__GET_STORE_REQUEST__INIT;
    gs.header = &bad;
    gs.store_id = 1;
    ProtobufCMessage *resp;
    assert_int_equal(rpc_unary_msg(w->ch, "/pdpb.PD/GetStore", &gs.base,
                                   &pdpb__get_store_response__descriptor, 5000, &resp, &st),
                     TKV_ERPC);
    assert_int_equal(st.code, RPC_FAILED_PRECONDITION);
    /* Before bootstrap: NOT_BOOTSTRAPPED in the header. */
    gs.header = &h;
    Pdpb__GetStoreResponse *gsr =
        (void *)call(w, "/pdpb.PD/GetStore", &gs.base, &pdpb__get_store_response__descriptor);
    assert_int_equal(gsr->header->error->type, PDPB__ERROR_TYPE__NOT_BOOTSTRAPPED);
    rpc_msg_free(&gsr->base);

    /* etcd KV: client-go's GC safe point key. */
    const char *key = "/tidb/store/gcworker/saved_safe_point";
    Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rr.key.data = (uint8_t *)key;
    rr.key.len = strlen(key);
    Etcdserverpb__RangeResponse *rresp = (void *)call(w, "/etcdserverpb.KV/Range", &rr.base,
                                                      &etcdserverpb__range_response__descriptor);
    assert_int_equal(rresp->n_kvs, 0);
    assert_int_equal(rresp->header->cluster_id, w->cluster_id);
    rpc_msg_free(&rresp->base);
    Etcdserverpb__PutRequest pr = ETCDSERVERPB__PUT_REQUEST__INIT;
    pr.key = rr.key;
    pr.value.data = (uint8_t *)"424242";
    pr.value.len = 6;
    Etcdserverpb__PutResponse *presp =
        (void *)call(w, "/etcdserverpb.KV/Put", &pr.base, &etcdserverpb__put_response__descriptor);
    int64_t rev = presp->header->revision;
    rpc_msg_free(&presp->base);
    rresp = (void *)call(w, "/etcdserverpb.KV/Range", &rr.base,
                         &etcdserverpb__range_response__descriptor);
    assert_int_equal(rresp->n_kvs, 1);
    assert_int_equal(rresp->kvs[0]->value.len, 6);
    assert_memory_equal(rresp->kvs[0]->value.data, "424242", 6);
    assert_int_equal(rresp->kvs[0]->mod_revision, rev);
    assert_int_equal(rresp->kvs[0]->version, 1);
    rpc_msg_free(&rresp->base);
    /* Prefix range: key .. "\0" (every key from it). */
    rr.range_end.data = (uint8_t *)"\0";
    rr.range_end.len = 1;
    rr.key.len = 6; /* "/tidb/" */
    rresp = (void *)call(w, "/etcdserverpb.KV/Range", &rr.base,
                         &etcdserverpb__range_response__descriptor);
    assert_int_equal(rresp->count, 1);
    rpc_msg_free(&rresp->base);

    /* The health service answers SERVING for the whole server. */
    Grpc__Health__V1__HealthCheckRequest hr = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    hr.service = "";
    Grpc__Health__V1__HealthCheckResponse *hresp =
        (void *)call(w, "/grpc.health.v1.Health/Check", &hr.base,
                     &grpc__health__v1__health_check_response__descriptor);
    assert_int_equal(hresp->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    rpc_msg_free(&hresp->base);
    world_free(w);
}

static const char *scenario_toml = "[schedule]\n"
                                   "max-store-down-time = \"3s\"\n"
                                   "store-disconnect-time = \"1s\"\n"
                                   "patrol-region-interval = \"20ms\"\n"
                                   "[replication]\n"
                                   "max-replicas = 3\n";

typedef struct split_call {
    world *w;
    Pdpb__SplitRegionsResponse *resp;
    rpc_status st;
    int rc;
} split_call;

static void *split_main(void *arg)
{
    split_call *sc = arg;
    Pdpb__RequestHeader h = header(sc->w);
    ProtobufCBinaryData keys[1] = {{.data = (uint8_t *)"t", .len = 1}};
    Pdpb__SplitRegionsRequest req = PDPB__SPLIT_REGIONS_REQUEST__INIT;
    req.header = &h;
    req.n_split_keys = 1;
    req.split_keys = keys;
    ProtobufCMessage *resp = NULL;
    sc->rc = rpc_unary_msg(sc->w->ch, "/pdpb.PD/SplitRegions", &req.base,
                           &pdpb__split_regions_response__descriptor, 30000, &resp, &sc->st);
    sc->resp = (void *)resp;
    return NULL;
}

static void test_three_stores_bootstrap_split_balance_down_and_restart(void **state)
{
    (void)state;
    world *w = world_new(scenario_toml);
    bootstrap(w);
    join_store(w);
    join_store(w);
    start_store_heartbeats(w);

    /* The first region is made up to three replicas (add learner, promote) by PD. */
    wait_until(w, all_replicated, NULL, "the first region to get 3 voters");
    uint64_t first_region = w->regions[0].id;
    {
        Pdpb__GetRegionResponse *r = get_region(w, "/pdpb.PD/GetRegion", "");
        assert_non_null(r->region);
        assert_int_equal(r->region->id, first_region);
        assert_int_equal(r->region->n_peers, 3);
        assert_non_null(r->leader);
        rpc_msg_free(&r->base);
    }
    /* A store id nobody registered: PD's exact error text. */
    Pdpb__RequestHeader h = header(w);
    Pdpb__GetStoreRequest gs = PDPB__GET_STORE_REQUEST__INIT;
    gs.header = &h;
    gs.store_id = 999999;
    Pdpb__GetStoreResponse *gsr =
        (void *)call(w, "/pdpb.PD/GetStore", &gs.base, &pdpb__get_store_response__descriptor);
    assert_non_null(gsr->header->error);
    assert_string_equal(gsr->header->error->message, "invalid store ID 999999, not found");
    rpc_msg_free(&gsr->base);

    /* Ask-split flow, as a store splitting on its own: AskBatchSplit, split, report. */
    pthread_mutex_lock(&w->mu);
    char keys[1][16] = {"m"};
    split_locked(w, &w->regions[0], keys, 1);
    pthread_mutex_unlock(&w->mu);
    pump(w, 300);
    uint64_t left = region_id_at(w, "/pdpb.PD/GetRegion", "a");
    assert_true(left != 0 && left != first_region);
    assert_int_equal(region_id_at(w, "/pdpb.PD/GetRegion", "x"), first_region);
    assert_int_equal(region_id_at(w, "/pdpb.PD/GetPrevRegion", "x"), left);
    assert_int_equal(region_id_at(w, "/pdpb.PD/GetPrevRegion", "a"), 0);

    /* SplitRegions: PD sends a split operator, the store splits, PD answers with the region
     * that starts at the key. */
    split_call sc = {.w = w};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, split_main, &sc), 0);
    uint64_t deadline = tkv_clock_mono_ms() + WAIT_MS;
    bool done = false;
    while (!done && tkv_clock_mono_ms() < deadline) {
        pump(w, 100);
        done = region_id_at(w, "/pdpb.PD/GetRegion", "t") !=
               region_id_at(w, "/pdpb.PD/GetRegion", "p");
    }
    pthread_join(th, NULL);
    assert_int_equal(sc.rc, 0);
    assert_null(sc.resp->header->error);
    assert_int_equal(sc.resp->finished_percentage, 100);
    assert_int_equal(sc.resp->n_regions_id, 1);
    assert_int_equal(sc.resp->regions_id[0], region_id_at(w, "/pdpb.PD/GetRegion", "t"));
    rpc_msg_free(&sc.resp->base);
    assert_int_equal(w->nregions, 3);
    wait_until(w, all_replicated, NULL, "three regions with 3 voters");

    /* A fourth store joins: region counts even out (9 peers: 3,2,2,2). */
    join_store(w);
    wait_until(w, balanced, NULL, "region balance onto the new store");

    /* Store 3 goes down: after max-store-down-time its peers are replaced. */
    uint64_t dead = w->stores[2].id;
    pthread_mutex_lock(&w->mu);
    w->stores[2].dead = true;
    pthread_mutex_unlock(&w->mu);
    wait_until(w, store_empty, &dead, "the down store's peers to be replaced");
    tkv_buf body;
    tkv_buf_init(&body);
    char path[64];
    snprintf(path, sizeof(path), "/pd/api/v1/store/%" PRIu64, dead);
    assert_int_equal(pdp_http(&w->pd, "GET", path, NULL, &body), 200);
    assert_non_null(strstr((const char *)body.data, "\"state_name\": \"Down\""));
    assert_int_equal(pdp_http(&w->pd, "GET", "/pd/api/v1/stores", NULL, &body), 200);
    assert_non_null(strstr((const char *)body.data, "\"count\": 4"));
    assert_non_null(strstr((const char *)body.data, "\"state_name\": \"Up\""));
    assert_int_equal(pdp_http(&w->pd, "GET", "/pd/api/v1/regions", NULL, &body), 200);
    assert_non_null(strstr((const char *)body.data, "\"count\": 3"));

    /* Restart: every store and region survives, ids and timestamps move on. */
    stop_store_heartbeats(w);
    pump(w, 300);
    close_streams(w);
    Pdpb__ScanRegionsResponse *before = scan_all(w);
    uint64_t ts_before;
    tso_once(w, 10, &ts_before);
    uint64_t id_before = alloc_id(w);
    assert_int_equal(pdp_stop(&w->pd), 0);
    pdp_start(&w->pd);
    assert_int_equal(get_members_cluster_id(w), w->cluster_id);
    Pdpb__GetAllStoresRequest as = PDPB__GET_ALL_STORES_REQUEST__INIT;
    as.header = &h;
    Pdpb__GetAllStoresResponse *all = (void *)call(w, "/pdpb.PD/GetAllStores", &as.base,
                                                   &pdpb__get_all_stores_response__descriptor);
    assert_int_equal(all->n_stores, 4);
    for (size_t i = 0; i < 4; i++)
        assert_non_null(store_by_id(w, all->stores[i]->id));
    rpc_msg_free(&all->base);
    Pdpb__ScanRegionsResponse *after = scan_all(w);
    assert_int_equal(after->n_regions, before->n_regions);
    for (size_t i = 0; i < after->n_regions; i++) {
        const Metapb__Region *a = after->regions[i]->region, *b = before->regions[i]->region;
        assert_int_equal(a->id, b->id);
        assert_int_equal(a->region_epoch->version, b->region_epoch->version);
        assert_int_equal(a->region_epoch->conf_ver, b->region_epoch->conf_ver);
        assert_int_equal(a->n_peers, b->n_peers);
        assert_int_equal(after->regions[i]->leader->store_id, before->regions[i]->leader->store_id);
    }
    rpc_msg_free(&before->base);
    rpc_msg_free(&after->base);
    uint64_t ts_after;
    tso_once(w, 1, &ts_after);
    assert_true(ts_after > ts_before);
    assert_true(alloc_id(w) > id_before);
    tkv_buf_deinit(&body);
    world_free(w);
}

/* Runs pd-ctl with @args against the world's PD; returns its exit status, output in @out. */
static int pd_ctl(world *w, tkv_buf *out, const char *a1, const char *a2, const char *a3,
                  const char *a4, const char *a5, const char *a6)
{
    const char *bin = getenv("TKV_PD_CTL");
    if (bin == NULL)
        fail_msg("TKV_PD_CTL is not set (the path of pd-ctl)");
    char url[100];
    snprintf(url, sizeof(url), "http://%s", w->pd.http_addr);
    char *argv[12] = {(char *)bin, "-u", url};
    int n = 3;
    const char *rest[] = {a1, a2, a3, a4, a5, a6};
    for (size_t i = 0; i < 6 && rest[i] != NULL; i++)
        argv[n++] = (char *)rest[i];
    argv[n] = NULL;
    return pdp_run(argv, out);
}

static bool leader_on(world *w, void *arg)
{
    const uint64_t *want = arg; /* {region id, store id} */
    Pdpb__RequestHeader h = header(w);
    Pdpb__GetRegionByIDRequest req = PDPB__GET_REGION_BY_IDREQUEST__INIT;
    req.header = &h;
    req.region_id = want[0];
    Pdpb__GetRegionResponse *r = (void *)call(w, "/pdpb.PD/GetRegionByID", &req.base,
                                              &pdpb__get_region_response__descriptor);
    bool ok = r->leader != NULL && r->leader->store_id == want[1];
    rpc_msg_free(&r->base);
    return ok;
}

static void test_admin_calls_pd_ctl_and_http_api(void **state)
{
    (void)state;
    world *w = world_new(scenario_toml);
    bootstrap(w);
    join_store(w);
    join_store(w);
    start_store_heartbeats(w);
    wait_until(w, all_replicated, NULL, "the first region to get 3 voters");
    tkv_buf out;
    tkv_buf_init(&out);

    /* Tables for people. */
    assert_int_equal(pd_ctl(w, &out, "store", NULL, NULL, NULL, NULL, NULL), 0);
    assert_non_null(strstr((const char *)out.data, "ADDRESS"));
    assert_non_null(strstr((const char *)out.data, "Up"));
    assert_non_null(strstr((const char *)out.data, w->stores[1].addr));
    assert_int_equal(pd_ctl(w, &out, "region", NULL, NULL, NULL, NULL, NULL), 0);
    assert_non_null(strstr((const char *)out.data, "PEERS(STORE)"));
    assert_int_equal(pd_ctl(w, &out, "member", NULL, NULL, NULL, NULL, NULL), 0);
    assert_non_null(strstr((const char *)out.data, "pd-it"));
    /* JSON for scripts: the server's own document. */
    assert_int_equal(pd_ctl(w, &out, "--json", "store", NULL, NULL, NULL, NULL), 0);
    json_error_t jerr;
    json_t *j = json_loads((const char *)out.data, 0, &jerr);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 3);
    json_decref(j);
    /* Errors: exit status 1 with the server's message. */
    assert_int_equal(pd_ctl(w, &out, "store", "999999", NULL, NULL, NULL, NULL), 1);

    /* Settings: set through pd-ctl, read through the API. */
    assert_int_equal(pd_ctl(w, &out, "config", "set", "leader-schedule-limit", "0", NULL, NULL), 0);
    assert_int_equal(pdp_http(&w->pd, "GET", "/pd/api/v1/config/schedule", NULL, &out), 200);
    assert_non_null(strstr((const char *)out.data, "\"leader-schedule-limit\": 0"));
    assert_int_equal(pd_ctl(w, &out, "config", "set", "max-store-down-time", "soon", NULL, NULL),
                     1);

    /* An admin operator: transfer the leader, watch it finish. */
    uint64_t region = w->regions[0].id;
    uint64_t target = w->stores[2].id;
    char rid[32], sid[32];
    snprintf(rid, sizeof(rid), "%" PRIu64, region);
    snprintf(sid, sizeof(sid), "%" PRIu64, target);
    assert_int_equal(pd_ctl(w, &out, "operator", "add", "transfer-leader", rid, sid, NULL), 0);
    uint64_t want[2] = {region, target};
    wait_until(w, leader_on, want, "the admin leader transfer");
    assert_int_equal(pd_ctl(w, &out, "--json", "operator", "show", rid, NULL, NULL), 0);
    assert_non_null(strstr((const char *)out.data, "\"status\": \"SUCCESS\""));
    assert_non_null(strstr((const char *)out.data, "admin-transfer-leader"));

    /* Scatter through gRPC (client-go's SplitRegions(scatter=true) path), then GetOperator
     * until it is no longer running. */
    Pdpb__RequestHeader h = header(w);
    uint64_t ids[1] = {region};
    Pdpb__ScatterRegionRequest sr = PDPB__SCATTER_REGION_REQUEST__INIT;
    sr.header = &h;
    sr.n_regions_id = 1;
    sr.regions_id = ids;
    Pdpb__ScatterRegionResponse *srr = (void *)call(w, "/pdpb.PD/ScatterRegion", &sr.base,
                                                    &pdpb__scatter_region_response__descriptor);
    assert_null(srr->header->error);
    assert_int_equal(srr->finished_percentage, 100);
    rpc_msg_free(&srr->base);
    Pdpb__GetOperatorRequest go = PDPB__GET_OPERATOR_REQUEST__INIT;
    go.header = &h;
    go.region_id = region;
    uint64_t deadline = tkv_clock_mono_ms() + WAIT_MS;
    for (;;) {
        Pdpb__GetOperatorResponse *gor = (void *)call(w, "/pdpb.PD/GetOperator", &go.base,
                                                      &pdpb__get_operator_response__descriptor);
        assert_null(gor->header->error);
        bool running = gor->status == PDPB__OPERATOR_STATUS__RUNNING;
        rpc_msg_free(&gor->base);
        if (!running)
            break;
        assert_true(tkv_clock_mono_ms() < deadline);
        pump(w, 100);
    }
    go.region_id = 987654;
    Pdpb__GetOperatorResponse *gor =
        (void *)call(w, "/pdpb.PD/GetOperator", &go.base, &pdpb__get_operator_response__descriptor);
    assert_int_equal(gor->header->error->type, PDPB__ERROR_TYPE__REGION_NOT_FOUND);
    rpc_msg_free(&gor->base);

    /* GC safe point: only moves forward. */
    Pdpb__UpdateGCSafePointRequest ug = PDPB__UPDATE_GCSAFE_POINT_REQUEST__INIT;
    ug.header = &h;
    ug.safe_point = 1000;
    Pdpb__UpdateGCSafePointResponse *ugr = (void *)call(
        w, "/pdpb.PD/UpdateGCSafePoint", &ug.base, &pdpb__update_gcsafe_point_response__descriptor);
    assert_int_equal(ugr->new_safe_point, 1000);
    rpc_msg_free(&ugr->base);
    ug.safe_point = 10;
    ugr = (void *)call(w, "/pdpb.PD/UpdateGCSafePoint", &ug.base,
                       &pdpb__update_gcsafe_point_response__descriptor);
    assert_int_equal(ugr->new_safe_point, 1000);
    rpc_msg_free(&ugr->base);
    Pdpb__GetGCSafePointRequest gg = PDPB__GET_GCSAFE_POINT_REQUEST__INIT;
    gg.header = &h;
    Pdpb__GetGCSafePointResponse *ggr = (void *)call(w, "/pdpb.PD/GetGCSafePoint", &gg.base,
                                                     &pdpb__get_gcsafe_point_response__descriptor);
    assert_int_equal(ggr->safe_point, 1000);
    rpc_msg_free(&ggr->base);
    Pdpb__GetClusterConfigRequest gc = PDPB__GET_CLUSTER_CONFIG_REQUEST__INIT;
    gc.header = &h;
    Pdpb__GetClusterConfigResponse *gcr = (void *)call(
        w, "/pdpb.PD/GetClusterConfig", &gc.base, &pdpb__get_cluster_config_response__descriptor);
    assert_int_equal(gcr->cluster->id, w->cluster_id);
    assert_int_equal(gcr->cluster->max_peer_count, 3);
    rpc_msg_free(&gcr->base);

    /* The HTTP API answers at PD's paths. */
    char path[64];
    snprintf(path, sizeof(path), "/pd/api/v1/region/id/%" PRIu64, region);
    assert_int_equal(pdp_http(&w->pd, "GET", path, NULL, &out), 200);
    assert_non_null(strstr((const char *)out.data, "\"role_name\": \"Voter\""));
    assert_int_equal(pdp_http(&w->pd, "GET", "/pd/api/v1/region/key/anything", NULL, &out), 200);
    assert_non_null(strstr((const char *)out.data, "\"epoch\""));
    assert_int_equal(pdp_http(&w->pd, "GET", "/pd/api/v1/health", NULL, &out), 200);
    assert_non_null(strstr((const char *)out.data, "\"health\": true"));
    assert_int_equal(pdp_http(&w->pd, "GET", "/metrics", NULL, &out), 200);
    assert_non_null(strstr((const char *)out.data, "pd_scheduler_region_heartbeat"));
    assert_non_null(strstr((const char *)out.data, "pd_cluster_status"));
    assert_int_equal(pdp_http(&w->pd, "GET", "/pd/api/v1/nothing", NULL, &out), 404);
    tkv_buf_deinit(&out);
    world_free(w);
}

static int group_setup(void **state)
{
    (void)state;
    rpc_init();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rpc_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_tso_errors_etcd_and_health),
        cmocka_unit_test(test_three_stores_bootstrap_split_balance_down_and_restart),
        cmocka_unit_test(test_admin_calls_pd_ctl_and_http_api),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
