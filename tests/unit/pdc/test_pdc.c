/*
 * test_pdc.c: the PD client against a fake PD cluster on 127.0.0.1: member discovery, the
 * cluster id in every header, leader changes, TSO batching and ordering, region and store
 * lookups, the tikv-server calls, the heartbeat stream and etcd KV.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/clock.h"
#include "pdc/pdc.h"
#include "pdc/pdc_int.h"
#include "unit/pdc/fake_pd.h"

#define CLUSTER_ID 7001

static pdc_client *open_pd(fake_pd *p, int member, bool scheme)
{
    char ep[96];
    snprintf(ep, sizeof(ep), "%s%s", scheme ? "http://" : "", p->addr[member]);
    const char *eps[] = {ep};
    pdc_opts o;
    pdc_opts_init(&o);
    o.endpoints = eps;
    o.n_endpoints = 1;
    o.timeout_ms = 5000;
    o.sender_id = 42;
    pdc_client *c = NULL;
    int rc = pdc_open(&o, &c);
    if (rc != 0)
        printf("# pdc_open: %s\n", pdc_errmsg(NULL));
    assert_int_equal(rc, 0);
    return c;
}

static void add_two_regions(fake_pd *p)
{
    uint64_t stores[] = {1};
    fake_pd_add_store(p, 1, "127.0.0.1:1");
    fake_pd_add_region(p, 2, tkv_slice_str(""), tkv_slice_str("m"), stores, 1);
    fake_pd_add_region(p, 3, tkv_slice_str("m"), tkv_slice_str(""), stores, 1);
}

/* ---- members ---------------------------------------------------------------------------- */

static void test_open_finds_cluster_id_and_leader_from_a_follower(void **state)
{
    (void)state;
    fake_pd p;
    fake_pd_start(&p, 3, CLUSTER_ID);
    fake_pd_set_leader(&p, 1);
    pdc_client *c = open_pd(&p, 0, true);
    assert_int_equal(pdc_cluster_id(c), CLUSTER_ID);
    char leader[64];
    pdc_leader_addr(c, leader, sizeof(leader));
    assert_string_equal(leader, p.addr[1]);

    Pdpb__GetMembersResponse *m = NULL;
    assert_int_equal(pdc_get_members(c, &m), 0);
    assert_int_equal(m->n_members, 3);
    assert_non_null(m->leader);
    pdc_msg_free(m);
    /* Requests carry the cluster id and the sender id. */
    pthread_mutex_lock(&p.mu);
    assert_int_equal(p.last_cluster_id_seen, CLUSTER_ID);
    assert_int_equal(p.last_sender_id, 42);
    pthread_mutex_unlock(&p.mu);
    pdc_set_sender_id(c, 43);
    uint64_t id;
    assert_int_equal(pdc_alloc_id(c, &id), 0);
    pthread_mutex_lock(&p.mu);
    assert_int_equal(p.last_sender_id, 43);
    pthread_mutex_unlock(&p.mu);
    pdc_close(c);
    fake_pd_stop(&p);
}

static void test_open_rejects_bad_or_dead_endpoints(void **state)
{
    (void)state;
    pdc_opts o;
    pdc_opts_init(&o);
    pdc_client *c = NULL;
    assert_int_equal(pdc_open(&o, &c), TKV_ECONFIG);
    assert_non_null(strstr(pdc_errmsg(NULL), "no PD endpoint"));

    const char *bad[] = {"http://"};
    o.endpoints = bad;
    o.n_endpoints = 1;
    assert_int_equal(pdc_open(&o, &c), TKV_ECONFIG);
    assert_non_null(strstr(pdc_errmsg(NULL), "bad PD endpoint"));
    const char *noport[] = {"localhost"};
    o.endpoints = noport;
    assert_int_equal(pdc_open(&o, &c), TKV_ECONFIG);

    /* A port nobody listens on: the open fails within its deadline, with a message. */
    fake_pd p;
    fake_pd_start(&p, 1, CLUSTER_ID);
    char dead[64];
    snprintf(dead, sizeof(dead), "%s", p.addr[0]);
    fake_pd_kill_member(&p, 0);
    const char *eps[] = {dead};
    o.endpoints = eps;
    o.timeout_ms = 500;
    uint64_t t0 = tkv_clock_mono_ms();
    int rc = pdc_open(&o, &c);
    assert_true(rc == TKV_ERPC || rc == -ETIMEDOUT);
    assert_true(tkv_clock_mono_ms() - t0 < 5000);
    assert_non_null(strstr(pdc_errmsg(NULL), "GetMembers"));
    assert_null(c);
    fake_pd_stop(&p);
}

static void test_open_refuses_a_pd_of_another_cluster(void **state)
{
    (void)state;
    fake_pd a, b;
    fake_pd_start(&a, 1, CLUSTER_ID);
    fake_pd_start(&b, 1, CLUSTER_ID + 1);
    pdc_client *c = open_pd(&a, 0, false);
    /* Point the client's only endpoint at the other cluster: the refresh must refuse it. */
    fake_pd_kill_member(&a, 0);
    pthread_mutex_lock(&c->mu);
    tkv_free(c->urls[0]);
    c->urls[0] = tkv_strdup(b.addr[0]);
    c->n_urls = 1;
    pthread_mutex_unlock(&c->mu);
    assert_int_equal(pdc_refresh_members(c), TKV_ECONFIG);
    assert_non_null(strstr(pdc_errmsg(c), "belongs to cluster"));
    pdc_close(c);
    fake_pd_stop(&a);
    fake_pd_stop(&b);
}

static void test_calls_follow_a_leader_change(void **state)
{
    (void)state;
    fake_pd p;
    fake_pd_start(&p, 3, CLUSTER_ID);
    add_two_regions(&p);
    pdc_client *c = open_pd(&p, 2, false);
    Pdpb__GetRegionResponse *r = NULL;
    assert_int_equal(pdc_get_region(c, tkv_slice_str("a"), &r), 0);
    assert_int_equal(r->region->id, 2);
    pdc_msg_free(r);

    pthread_mutex_lock(&p.mu);
    p.quiet_leader_change = true;
    pthread_mutex_unlock(&p.mu);
    fake_pd_set_leader(&p, 2);
    /* The old leader now answers "not leader": the client refreshes and retries. */
    assert_int_equal(pdc_get_region(c, tkv_slice_str("z"), &r), 0);
    assert_int_equal(r->region->id, 3);
    pdc_msg_free(r);
    char leader[64];
    pdc_leader_addr(c, leader, sizeof(leader));
    assert_string_equal(leader, p.addr[2]);
    pthread_mutex_lock(&p.mu);
    assert_true(p.not_leader_answers >= 1);
    pthread_mutex_unlock(&p.mu);
    pdc_close(c);
    fake_pd_stop(&p);
}

static void test_call_fails_within_its_deadline_when_pd_is_gone(void **state)
{
    (void)state;
    fake_pd p;
    fake_pd_start(&p, 1, CLUSTER_ID);
    add_two_regions(&p);
    pdc_opts o;
    pdc_opts_init(&o);
    const char *eps[] = {p.addr[0]};
    o.endpoints = eps;
    o.n_endpoints = 1;
    o.timeout_ms = 400;
    pdc_client *c;
    assert_int_equal(pdc_open(&o, &c), 0);
    fake_pd_kill_member(&p, 0);
    Pdpb__GetRegionResponse *r = NULL;
    uint64_t t0 = tkv_clock_mono_ms();
    int rc = pdc_get_region(c, tkv_slice_str("a"), &r);
    assert_true(rc == -ETIMEDOUT || rc == TKV_ERPC);
    assert_null(r);
    assert_true(tkv_clock_mono_ms() - t0 < 3000);
    assert_non_null(strstr(pdc_errmsg(c), "GetRegion"));
    uint64_t ts;
    assert_int_not_equal(pdc_tso(c, 300, &ts), 0);
    pdc_close(c);
    fake_pd_stop(&p);
}

/* ---- regions and stores ----------------------------------------------------------------- */

static void test_region_and_store_lookups(void **state)
{
    (void)state;
    fake_pd p;
    fake_pd_start(&p, 1, CLUSTER_ID);
    add_two_regions(&p);
    pdc_client *c = open_pd(&p, 0, true);
    Pdpb__GetRegionResponse *r = NULL;
    assert_int_equal(pdc_get_region(c, tkv_slice_str("m"), &r), 0);
    assert_int_equal(r->region->id, 3);
    assert_int_equal(r->leader->store_id, 1);
    assert_int_equal(r->region->region_epoch->version, 1);
    pdc_msg_free(r);
    assert_int_equal(pdc_get_prev_region(c, tkv_slice_str("m"), &r), 0);
    assert_int_equal(r->region->id, 2);
    assert_int_equal(r->region->end_key.len, 1);
    pdc_msg_free(r);
    assert_int_equal(pdc_get_prev_region(c, tkv_slice_str("a"), &r), TKV_ENOTFOUND);
    assert_int_equal(pdc_get_region_by_id(c, 3, &r), 0);
    assert_int_equal(r->region->start_key.data[0], 'm');
    pdc_msg_free(r);
    assert_int_equal(pdc_get_region_by_id(c, 99, &r), TKV_ENOTFOUND);
    assert_non_null(strstr(pdc_errmsg(c), "99"));

    Pdpb__ScanRegionsResponse *s = NULL;
    assert_int_equal(pdc_scan_regions(c, tkv_slice_str(""), tkv_slice_str(""), 0, &s), 0);
    assert_int_equal(s->n_regions, 2);
    assert_int_equal(s->regions[0]->region->id, 2);
    assert_int_equal(s->regions[1]->region->id, 3);
    pdc_msg_free(s);
    assert_int_equal(pdc_scan_regions(c, tkv_slice_str("n"), tkv_slice_str(""), 10, &s), 0);
    assert_int_equal(s->n_regions, 1);
    pdc_msg_free(s);

    Pdpb__GetStoreResponse *st = NULL;
    assert_int_equal(pdc_get_store(c, 1, &st), 0);
    assert_string_equal(st->store->address, "127.0.0.1:1");
    pdc_msg_free(st);
    assert_int_equal(pdc_get_store(c, 77, &st), TKV_ENOTFOUND);
    assert_non_null(strstr(pdc_errmsg(c), "invalid store ID 77"));
    Pdpb__GetAllStoresResponse *all = NULL;
    assert_int_equal(pdc_get_all_stores(c, true, &all), 0);
    assert_int_equal(all->n_stores, 1);
    pdc_msg_free(all);
    pdc_close(c);
    fake_pd_stop(&p);
}

/* ---- timestamps ------------------------------------------------------------------------- */

typedef struct ts_sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t ts[256];
    int rc[256];
    int done;
} ts_sink;

typedef struct ts_slot {
    ts_sink *sink;
    int idx;
} ts_slot;

static void on_ts(void *ud, int rc, uint64_t ts)
{
    ts_slot *s = ud;
    pthread_mutex_lock(&s->sink->mu);
    s->sink->ts[s->idx] = ts;
    s->sink->rc[s->idx] = rc;
    s->sink->done++;
    pthread_cond_broadcast(&s->sink->cv);
    pthread_mutex_unlock(&s->sink->mu);
}

/* Starts a one-member fake PD that parks Tso requests, a client on it, and an empty sink. */
static pdc_client *start_holding_tso(fake_pd *p, ts_sink *sink)
{
    fake_pd_start(p, 1, CLUSTER_ID);
    pdc_client *c = open_pd(p, 0, false);
    pthread_mutex_lock(&p->mu);
    p->tso_hold = true;
    pthread_mutex_unlock(&p->mu);
    memset(sink, 0, sizeof(*sink));
    pthread_mutex_init(&sink->mu, NULL);
    pthread_cond_init(&sink->cv, NULL);
    return c;
}

static void test_tso_batches_queued_requests_into_one_request(void **state)
{
    (void)state;
    fake_pd p;
    ts_sink sink;
    pdc_client *c = start_holding_tso(&p, &sink);
    enum { N = 100 };
    ts_slot slots[N];
    slots[0] = (ts_slot){&sink, 0};
    assert_int_equal(pdc_tso_async(c, 10000, on_ts, &slots[0]), 0);
    assert_true(fake_pd_wait_calls(&p, FPD_TSO, 1));
    /* The first request is held by PD: everything queued now goes out as one batch. */
    for (int i = 1; i < N; i++) {
        slots[i] = (ts_slot){&sink, i};
        assert_int_equal(pdc_tso_async(c, 10000, on_ts, &slots[i]), 0);
    }
    fake_pd_tso_release(&p);
    pthread_mutex_lock(&sink.mu);
    while (sink.done < N)
        pthread_cond_wait(&sink.cv, &sink.mu);
    pthread_mutex_unlock(&sink.mu);
    pthread_mutex_lock(&p.mu);
    assert_int_equal(p.n_tso_reqs, 2);
    assert_int_equal(p.tso_counts[0], 1);
    assert_int_equal(p.tso_counts[1], N - 1);
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < N; i++) {
        assert_int_equal(sink.rc[i], 0);
        assert_true(pdc_ts_physical(sink.ts[i]) > 0);
        if (i > 0)
            assert_true(sink.ts[i] == sink.ts[i - 1] + 1 || sink.ts[i] > sink.ts[i - 1]);
    }
    /* Inside the batch the timestamps are consecutive logical values. */
    for (int i = 2; i < N; i++)
        assert_int_equal(sink.ts[i], sink.ts[i - 1] + 1);
    pthread_cond_destroy(&sink.cv);
    pthread_mutex_destroy(&sink.mu);
    pdc_close(c);
    fake_pd_stop(&p);
}

typedef struct tso_thread {
    pdc_client *c;
    uint64_t ts[300];
    int n;
    int failures;
} tso_thread;

static void *tso_worker(void *arg)
{
    tso_thread *t = arg;
    for (int i = 0; i < t->n; i++) {
        if (pdc_tso(t->c, 5000, &t->ts[i]) != 0)
            t->failures++;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_tso_concurrent_callers_get_unique_increasing_timestamps(void **state)
{
    (void)state;
    fake_pd p;
    fake_pd_start(&p, 1, CLUSTER_ID);
    pdc_client *c = open_pd(&p, 0, false);
    enum { T = 8, N = 300 };
    static tso_thread th[T];
    pthread_t tid[T];
    for (int i = 0; i < T; i++) {
        th[i] = (tso_thread){.c = c, .n = N};
        assert_int_equal(pthread_create(&tid[i], NULL, tso_worker, &th[i]), 0);
    }
    for (int i = 0; i < T; i++)
        pthread_join(tid[i], NULL);
    static uint64_t all[T * N];
    for (int i = 0; i < T; i++) {
        assert_int_equal(th[i].failures, 0);
        for (int j = 1; j < N; j++)
            assert_true(th[i].ts[j] > th[i].ts[j - 1]);
        memcpy(&all[i * N], th[i].ts, sizeof(th[i].ts));
    }
    qsort(all, T * N, sizeof(uint64_t), cmp_u64);
    for (int i = 1; i < T * N; i++)
        assert_true(all[i] > all[i - 1]);
    /* Every timestamp handed out was asked for in some request's count. */
    pthread_mutex_lock(&p.mu);
    uint64_t asked = 0;
    for (size_t i = 0; i < p.n_tso_reqs; i++)
        asked += p.tso_counts[i];
    assert_int_equal(asked, T * N);
    printf("# %d timestamps in %zu Tso requests\n", T * N, p.n_tso_reqs);
    pthread_mutex_unlock(&p.mu);
    pdc_close(c);
    fake_pd_stop(&p);
}

static void test_tso_stream_moves_to_a_new_leader(void **state)
{
    (void)state;
    fake_pd p;
    fake_pd_start(&p, 2, CLUSTER_ID);
    pdc_client *c = open_pd(&p, 0, false);
    uint64_t a, b;
    assert_int_equal(pdc_tso(c, 5000, &a), 0);
    fake_pd_set_leader(&p, 1);
    /* The stream on the old leader ends; queued requests wait for the new stream. */
    assert_int_equal(pdc_tso(c, 10000, &b), 0);
    assert_true(b > a);
    char leader[64];
    pdc_leader_addr(c, leader, sizeof(leader));
    assert_string_equal(leader, p.addr[1]);
    pdc_close(c);
    fake_pd_stop(&p);
}

static void test_tso_requests_fail_when_the_client_closes(void **state)
{
    (void)state;
    fake_pd p;
    ts_sink sink;
    pdc_client *c = start_holding_tso(&p, &sink);
    ts_slot slots[3];
    for (int i = 0; i < 3; i++) {
        slots[i] = (ts_slot){&sink, i};
        assert_int_equal(pdc_tso_async(c, 60000, on_ts, &slots[i]), 0);
    }
    assert_true(fake_pd_wait_calls(&p, FPD_TSO, 1));
    pdc_close(c);
    assert_int_equal(sink.done, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sink.rc[i], TKV_ECLOSED);
    pthread_cond_destroy(&sink.cv);
    pthread_mutex_destroy(&sink.mu);
    fake_pd_stop(&p);
}

static void test_tso_request_times_out_while_pd_holds_it(void **state)
{
    (void)state;
    fake_pd p;
    fake_pd_start(&p, 1, CLUSTER_ID);
    pdc_opts o;
    pdc_opts_init(&o);
    const char *eps[] = {p.addr[0]};
    o.endpoints = eps;
    o.n_endpoints = 1;
    o.timeout_ms = 300;
    pdc_client *c;
    assert_int_equal(pdc_open(&o, &c), 0);
    pthread_mutex_lock(&p.mu);
    p.tso_hold = true;
    pthread_mutex_unlock(&p.mu);
    uint64_t ts = 0;
    uint64_t t0 = tkv_clock_mono_ms();
    int rc = pdc_tso(c, 300, &ts);
    assert_true(rc == TKV_ERPC || rc == -ETIMEDOUT);
    assert_true(tkv_clock_mono_ms() - t0 < 5000);
    /* After PD lets go the stream is replaced and timestamps flow again. */
    fake_pd_tso_release(&p);
    assert_int_equal(pdc_tso(c, 5000, &ts), 0);
    assert_true(ts > 0);
    pdc_close(c);
    fake_pd_stop(&p);
}

/* ---- tikv-server calls ------------------------------------------------------------------ */

static void test_bootstrap_ids_stores_and_splits(void **state)
{
    (void)state;
    fake_pd p;
    fake_pd_start(&p, 1, CLUSTER_ID);
    pdc_client *c = open_pd(&p, 0, false);
    bool boot = true;
    assert_int_equal(pdc_is_bootstrapped(c, &boot), 0);
    assert_false(boot);

    uint64_t sid, rid, pid;
    assert_int_equal(pdc_alloc_id(c, &sid), 0);
    assert_int_equal(pdc_alloc_id(c, &rid), 0);
    assert_int_equal(pdc_alloc_id(c, &pid), 0);
    assert_true(sid < rid && rid < pid);

    Metapb__Store store = METAPB__STORE__INIT;
    store.id = sid;
    store.address = "127.0.0.1:20160";
    Metapb__Peer peer = METAPB__PEER__INIT;
    peer.id = pid;
    peer.store_id = sid;
    Metapb__Peer *pp = &peer;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    ep.conf_ver = 1;
    ep.version = 1;
    Metapb__Region region = METAPB__REGION__INIT;
    region.id = rid;
    region.region_epoch = &ep;
    region.peers = &pp;
    region.n_peers = 1;
    assert_int_equal(pdc_bootstrap(c, &store, &region), 0);
    assert_int_equal(pdc_is_bootstrapped(c, &boot), 0);
    assert_true(boot);
    assert_int_equal(pdc_bootstrap(c, &store, &region), TKV_EEXIST);
    assert_int_equal(pdc_err_pd_type(), PDPB__ERROR_TYPE__ALREADY_BOOTSTRAPPED);
    assert_non_null(strstr(pdc_errmsg(c), "already bootstrapped"));

    store.address = "127.0.0.1:20161";
    assert_int_equal(pdc_put_store(c, &store), 0);
    Pdpb__GetStoreResponse *st = NULL;
    assert_int_equal(pdc_get_store(c, sid, &st), 0);
    assert_string_equal(st->store->address, "127.0.0.1:20161");
    pdc_msg_free(st);

    Pdpb__StoreStats stats = PDPB__STORE_STATS__INIT;
    stats.store_id = sid;
    Pdpb__StoreHeartbeatResponse *hr = NULL;
    assert_int_equal(pdc_store_heartbeat(c, &stats, &hr), 0);
    assert_non_null(hr);
    pdc_msg_free(hr);
    assert_int_equal(pdc_store_heartbeat(c, &stats, NULL), 0);
    assert_int_equal(fake_pd_calls(&p, FPD_STORE_HEARTBEAT), 2);

    Pdpb__AskBatchSplitResponse *sp = NULL;
    assert_int_equal(pdc_ask_batch_split(c, &region, 2, &sp), 0);
    assert_int_equal(sp->n_ids, 2);
    assert_int_equal(sp->ids[0]->n_new_peer_ids, 1);
    assert_true(sp->ids[1]->new_region_id > sp->ids[0]->new_region_id);
    pdc_msg_free(sp);
    const Metapb__Region *regs[] = {&region, &region};
    assert_int_equal(pdc_report_batch_split(c, regs, 2), 0);
    assert_int_equal(fake_pd_calls(&p, FPD_REPORT_BATCH_SPLIT), 1);

    uint64_t gc = 1;
    assert_int_equal(pdc_get_gc_safe_point(c, &gc), 0);
    assert_int_equal(gc, 0);
    uint64_t now_sp = 0;
    assert_int_equal(pdc_update_gc_safe_point(c, 500, &now_sp), 0);
    assert_int_equal(now_sp, 500);
    assert_int_equal(pdc_update_gc_safe_point(c, 100, &now_sp), 0);
    assert_int_equal(now_sp, 500);
    assert_int_equal(pdc_get_gc_safe_point(c, &gc), 0);
    assert_int_equal(gc, 500);
    pdc_close(c);
    fake_pd_stop(&p);
}

static void test_etcd_kv_and_txn_safe_point(void **state)
{
    (void)state;
    fake_pd p;
    fake_pd_start(&p, 1, CLUSTER_ID);
    pdc_client *c = open_pd(&p, 0, false);
    uint64_t sp = 9;
    assert_int_equal(pdc_load_txn_safe_point(c, &sp), 0);
    assert_int_equal(sp, 0);
    assert_int_equal(pdc_save_txn_safe_point(c, 4242424242ULL), 0);
    assert_int_equal(pdc_load_txn_safe_point(c, &sp), 0);
    assert_int_equal(sp, 4242424242ULL);

    tkv_buf v;
    tkv_buf_init(&v);
    bool found = false;
    assert_int_equal(pdc_etcd_put(c, tkv_slice_str("/k"), tkv_slice_str("val")), 0);
    assert_int_equal(pdc_etcd_get(c, tkv_slice_str("/k"), &v, &found), 0);
    assert_true(found);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.data, "val", 3);
    assert_int_equal(pdc_etcd_get(c, tkv_slice_str("/none"), &v, &found), 0);
    assert_false(found);
    /* A safe point that is not a number is reported, not trusted. */
    assert_int_equal(pdc_etcd_put(c, tkv_slice_str(PDC_TXN_SAFE_POINT_KEY), tkv_slice_str("12x")),
                     0);
    assert_int_equal(pdc_load_txn_safe_point(c, &sp), TKV_ECORRUPT);
    tkv_buf_deinit(&v);
    pdc_close(c);
    fake_pd_stop(&p);
}

typedef struct hb_sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    uint64_t last_region;
    uint64_t last_transfer_store;
} hb_sink;

static void on_hb(void *ud, const Pdpb__RegionHeartbeatResponse *r)
{
    hb_sink *s = ud;
    pthread_mutex_lock(&s->mu);
    s->n++;
    s->last_region = r->region_id;
    if (r->transfer_leader != NULL && r->transfer_leader->peer != NULL)
        s->last_transfer_store = r->transfer_leader->peer->store_id;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Sends heartbeats for @region until the sink has seen @want answers (the stream may be
 * reconnecting: sends fail with TKV_EUNAVAILABLE meanwhile). */
static bool heartbeat_until(pdc_client *c, hb_sink *s, uint64_t region, int want)
{
    Metapb__Region r = METAPB__REGION__INIT;
    r.id = region;
    Metapb__Peer leader = METAPB__PEER__INIT;
    leader.id = region * 10;
    leader.store_id = 5;
    Pdpb__RegionHeartbeatRequest hb = PDPB__REGION_HEARTBEAT_REQUEST__INIT;
    hb.region = &r;
    hb.leader = &leader;
    uint64_t deadline = tkv_clock_mono_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool ok = s->n >= want;
        pthread_mutex_unlock(&s->mu);
        if (ok)
            return true;
        if (tkv_clock_mono_ms() > deadline)
            return false;
        int rc = pdc_region_heartbeat_send(c, &hb);
        assert_true(rc == 0 || rc == TKV_EUNAVAILABLE);
        /* Pace the retries while the stream reconnects; correctness does not depend on it. */
        pthread_mutex_lock(&s->mu);
        if (s->n < want)
            fpd_cond_wait_ms(&s->cv, &s->mu, 20);
        pthread_mutex_unlock(&s->mu);
    }
}

static void test_region_heartbeat_stream_delivers_operators_and_reconnects(void **state)
{
    (void)state;
    fake_pd p;
    fake_pd_start(&p, 2, CLUSTER_ID);
    pdc_client *c = open_pd(&p, 0, false);
    hb_sink s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    fpd_cond_init(&s.cv);
    Pdpb__RegionHeartbeatRequest hb = PDPB__REGION_HEARTBEAT_REQUEST__INIT;
    assert_int_equal(pdc_region_heartbeat_send(c, &hb), -EINVAL);
    assert_int_equal(pdc_region_heartbeat_start(c, on_hb, &s), 0);
    assert_int_equal(pdc_region_heartbeat_start(c, on_hb, &s), -EINVAL);
    assert_true(heartbeat_until(c, &s, 7, 1));
    assert_int_equal(s.last_region, 7);
    assert_int_equal(s.last_transfer_store, 5);

    fake_pd_set_leader(&p, 1);
    int before = s.n;
    assert_true(heartbeat_until(c, &s, 8, before + 1));
    assert_int_equal(s.last_region, 8);
    pthread_mutex_lock(&p.mu);
    assert_int_equal(p.last_heartbeat_region, 8);
    pthread_mutex_unlock(&p.mu);
    pdc_close(c);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    fake_pd_stop(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_finds_cluster_id_and_leader_from_a_follower),
        cmocka_unit_test(test_open_rejects_bad_or_dead_endpoints),
        cmocka_unit_test(test_open_refuses_a_pd_of_another_cluster),
        cmocka_unit_test(test_calls_follow_a_leader_change),
        cmocka_unit_test(test_call_fails_within_its_deadline_when_pd_is_gone),
        cmocka_unit_test(test_region_and_store_lookups),
        cmocka_unit_test(test_tso_batches_queued_requests_into_one_request),
        cmocka_unit_test(test_tso_concurrent_callers_get_unique_increasing_timestamps),
        cmocka_unit_test(test_tso_stream_moves_to_a_new_leader),
        cmocka_unit_test(test_tso_requests_fail_when_the_client_closes),
        cmocka_unit_test(test_tso_request_times_out_while_pd_holds_it),
        cmocka_unit_test(test_bootstrap_ids_stores_and_splits),
        cmocka_unit_test(test_etcd_kv_and_txn_safe_point),
        cmocka_unit_test(test_region_heartbeat_stream_delivers_operators_and_reconnects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
