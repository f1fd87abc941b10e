/*
 * test_client_integration.c: libtikvc, the PD client and tikv-ctl against the real pd-server
 * process and the real tikv service (srv_node: gRPC service, BatchCommands, storage with raw
 * KV and Percolator transactions) on a single-region local kv seam, until raftstore joins
 * them into tikv-server. The store and its region are registered in PD with the PD client as
 * tikv-server will do it (AllocID, Bootstrap, PutStore, region heartbeats).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "client/tikvc.h"
#include "integration/pd/pd_proc.h"
#include "pdc/pdc.h"
#include "server/server.h"

typedef struct cluster {
    pdp pd;
    pdc_client *pdc;
    srv_config cfg;
    eng_db *db;
    stor_kv *kv;
    srv_node *node;
    char addr[64];
    char config_path[300];
    uint64_t store_id, region_id, peer_id;
    tikvc_client *c;
} cluster;

static void on_operator(void *ud, const Pdpb__RegionHeartbeatResponse *r)
{
    (void)ud;
    (void)r;
}

/* Starts pd-server, a tikv node for one store, registers both in PD the way tikv-server
 * does, and connects a libtikvc client. */
static void cluster_start(cluster *k)
{
    memset(k, 0, sizeof(*k));
    pdp_init(&k->pd, NULL);
    pdp_start(&k->pd);
    const char *eps[] = {k->pd.grpc_addr};
    pdc_opts po;
    pdc_opts_init(&po);
    po.endpoints = eps;
    po.n_endpoints = 1;
    assert_int_equal(pdc_open(&po, &k->pdc), 0);
    bool boot = true;
    assert_int_equal(pdc_is_bootstrapped(k->pdc, &boot), 0);
    assert_false(boot);
    assert_int_equal(pdc_alloc_id(k->pdc, &k->store_id), 0);
    assert_int_equal(pdc_alloc_id(k->pdc, &k->region_id), 0);
    assert_int_equal(pdc_alloc_id(k->pdc, &k->peer_id), 0);

    snprintf(k->config_path, sizeof(k->config_path), "%s/tikv.toml", k->pd.dir);
    FILE *f = fopen(k->config_path, "w");
    assert_non_null(f);
    fputs("[storage]\nenable-ttl = true\n", f);
    fclose(f);
    char *argv[] = {"tikv-server", "--addr",   "127.0.0.1:0", "--status-addr",
                    "127.0.0.1:0", "--config", k->config_path};
    bool help;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(
        srv_config_from_args(&k->cfg, TKV_ARRAY_LEN(argv), argv, &help, NULL, NULL, err), 0);
    assert_int_equal(eng_mem_open(NULL, &k->db), 0);
    stor_kv_local_opts lo = {.region_id = k->region_id, .store_id = k->store_id};
    assert_int_equal(stor_kv_local_new(k->db, &lo, &k->kv), 0);
    assert_int_equal(srv_node_new(&k->cfg, k->kv, NULL, &k->node, err), 0);
    assert_int_equal(srv_node_start(k->node, err), 0);
    snprintf(k->addr, sizeof(k->addr), "127.0.0.1:%d", srv_node_port(k->node));

    Metapb__Store store = METAPB__STORE__INIT;
    store.id = k->store_id;
    store.address = k->addr;
    store.version = "0.1.0";
    Metapb__Peer peer = METAPB__PEER__INIT;
    peer.id = k->peer_id;
    peer.store_id = k->store_id;
    Metapb__Peer *pp = &peer;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    ep.conf_ver = 1;
    ep.version = 1;
    Metapb__Region region = METAPB__REGION__INIT;
    region.id = k->region_id;
    region.region_epoch = &ep;
    region.peers = &pp;
    region.n_peers = 1;
    assert_int_equal(pdc_bootstrap(k->pdc, &store, &region), 0);
    assert_int_equal(pdc_bootstrap(k->pdc, &store, &region), TKV_EEXIST);
    assert_int_equal(pdc_put_store(k->pdc, &store), 0);
    /* The leader is known to PD once a heartbeat names it. */
    assert_int_equal(pdc_region_heartbeat_start(k->pdc, on_operator, NULL), 0);
    Pdpb__RegionHeartbeatRequest hb = PDPB__REGION_HEARTBEAT_REQUEST__INIT;
    hb.region = &region;
    hb.leader = &peer;
    uint64_t deadline = tkv_clock_mono_ms() + 20000;
    bool led = false;
    while (!led && tkv_clock_mono_ms() < deadline) {
        TKV_IGNORE(pdc_region_heartbeat_send(k->pdc, &hb));
        Pdpb__GetRegionResponse *r = NULL;
        if (pdc_get_region(k->pdc, tkv_slice_str("a"), &r) == 0) {
            led = r->leader != NULL && r->leader->id == k->peer_id;
            pdc_msg_free(r);
        }
        if (!led)
            tkv_sleep_ms(20); /* paces the heartbeats; the loop's end is the condition */
    }
    assert_true(led);

    tikvc_opts o;
    tikvc_opts_init(&o);
    o.pd_endpoints = k->pd.grpc_addr;
    o.max_backoff_ms = 5000;
    int rc = tikvc_open(&o, &k->c);
    if (rc != 0)
        printf("# tikvc_open: %s\n", tikvc_errmsg());
    assert_int_equal(rc, TIKVC_OK);
}

static void cluster_stop(cluster *k)
{
    tikvc_close(k->c);
    pdc_close(k->pdc);
    srv_node_stop(k->node, 1000);
    srv_node_free(k->node);
    stor_kv_free(k->kv);
    eng_close(k->db);
    srv_config_free(&k->cfg);
    if (pdp_stop(&k->pd) != 0)
        pdp_dump_log(&k->pd);
    pdp_cleanup(&k->pd);
}

static void expect_raw(tikvc_client *c, const char *k, const char *v)
{
    tikvc_buf b = {0};
    bool found = !v;
    int rc = tikvc_raw_get(c, k, strlen(k), &b, &found);
    if (rc != 0)
        printf("# raw get %s: %s\n", k, tikvc_errmsg());
    assert_int_equal(rc, TIKVC_OK);
    assert_int_equal(found, v != NULL);
    if (v != NULL) {
        assert_int_equal(b.len, strlen(v));
        assert_memory_equal(b.data, v, b.len);
    }
    tikvc_buf_free(&b);
}

static void test_raw_api_against_pd_server_and_the_tikv_service(void **state)
{
    (void)state;
    cluster k;
    cluster_start(&k);
    tikvc_client *c = k.c;
    assert_int_equal(tikvc_raw_put(c, "a", 1, "1", 1, 0), TIKVC_OK);
    assert_int_equal(tikvc_raw_put(c, "empty", 5, "", 0, 0), TIKVC_OK);
    expect_raw(c, "a", "1");
    expect_raw(c, "empty", "");
    expect_raw(c, "nope", NULL);

    enum { N = 200 };
    char keys[N][16], vals[N][16];
    tikvc_slice ks[N], vs[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%04d", i);
        snprintf(vals[i], sizeof(vals[i]), "v%d", i);
        ks[i] = (tikvc_slice){keys[i], strlen(keys[i])};
        vs[i] = (tikvc_slice){vals[i], strlen(vals[i])};
    }
    assert_int_equal(tikvc_raw_batch_put(c, ks, vs, N, 0), TIKVC_OK);
    tikvc_kvs out = {0};
    assert_int_equal(tikvc_raw_batch_get(c, ks, N, &out), TIKVC_OK);
    assert_int_equal(out.len, N);
    assert_int_equal(tikvc_raw_scan(c, "k", 1, "l", 1, 50, 0, &out), TIKVC_OK);
    assert_int_equal(out.len, 50);
    assert_memory_equal(out.items[49].key.data, "k0049", 5);
    assert_int_equal(tikvc_raw_scan(c, "k", 1, "l", 1, 3, TIKVC_SCAN_REVERSE, &out), TIKVC_OK);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.items[0].key.data, "k0199", 5);
    /* A reverse scan from the end of the key space. */
    assert_int_equal(tikvc_raw_scan(c, "", 0, "", 0, 1, TIKVC_SCAN_REVERSE, &out), TIKVC_OK);
    assert_int_equal(out.len, 1);
    assert_memory_equal(out.items[0].key.data, "k0199", 5);
    tikvc_kvs_free(&out);
    assert_int_equal(tikvc_raw_batch_delete(c, ks, N / 2), TIKVC_OK);
    assert_int_equal(tikvc_raw_delete_range(c, "k0150", 5, "k0160", 5), TIKVC_OK);
    assert_int_equal(tikvc_raw_scan(c, "k", 1, "l", 1, 1000, TIKVC_SCAN_KEY_ONLY, &out), TIKVC_OK);
    assert_int_equal(out.len, N / 2 - 10);
    tikvc_kvs_free(&out);

    bool swapped = false, prev_found = false;
    assert_int_equal(
        tikvc_raw_cas(c, "cas", 3, NULL, 0, true, "x", 1, 0, &swapped, NULL, &prev_found),
        TIKVC_OK);
    assert_true(swapped);
    assert_int_equal(
        tikvc_raw_cas(c, "cas", 3, "y", 1, false, "z", 1, 0, &swapped, NULL, &prev_found),
        TIKVC_OK);
    assert_false(swapped);
    assert_true(prev_found);

    assert_int_equal(tikvc_raw_put(c, "ttl", 3, "t", 1, 300), TIKVC_OK);
    uint64_t ttl = 0;
    bool found = false;
    assert_int_equal(tikvc_raw_get_ttl(c, "ttl", 3, &ttl, &found), TIKVC_OK);
    assert_true(found);
    assert_true(ttl > 0 && ttl <= 300);
    cluster_stop(&k);
}

/* Returns the store's count of 1PC prewrites with outcome @result (same process). */
static double one_pc_count(const char *result)
{
    tkv_metric *m = tkv_metric_counter(
        "tikv_storage_one_pc_total",
        "Prewrites that asked for 1PC, by outcome (committed, or fallback to 2PC)", "result");
    return tkv_series_value(tkv_metric_with(m, result));
}

static void test_transactions_against_pd_server_and_the_tikv_service(void **state)
{
    (void)state;
    cluster k;
    cluster_start(&k);
    tikvc_client *c = k.c;
    tikvc_txn *t = NULL;
    assert_int_equal(tikvc_txn_begin(c, &t), TIKVC_OK);
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof(key), "acct%02d", i);
        assert_int_equal(tikvc_txn_set(t, key, strlen(key), "100", 3), TIKVC_OK);
    }
    double one_pc_before = one_pc_count("committed");
    assert_int_equal(tikvc_txn_commit(t), TIKVC_OK);
    assert_true(tikvc_txn_commit_ts(t) > tikvc_txn_start_ts(t));
    /* One region, one request: the store committed it in one phase. */
    assert_true(one_pc_count("committed") == one_pc_before + 1);
    tikvc_txn_free(t);

    /* With txn_one_pc = 0 the client commits in two phases. */
    tikvc_opts o2;
    tikvc_opts_init(&o2);
    o2.pd_endpoints = k.pd.grpc_addr;
    o2.txn_one_pc = 0;
    tikvc_client *c2;
    assert_int_equal(tikvc_open(&o2, &c2), TIKVC_OK);
    assert_int_equal(tikvc_txn_begin(c2, &t), TIKVC_OK);
    assert_int_equal(tikvc_txn_set(t, "a1pc", 4, "2", 1), TIKVC_OK);
    double asked_before = one_pc_count("committed") + one_pc_count("fallback");
    assert_int_equal(tikvc_txn_commit(t), TIKVC_OK);
    assert_true(one_pc_count("committed") + one_pc_count("fallback") == asked_before);
    uint64_t two_pc_ts = tikvc_txn_commit_ts(t);
    tikvc_txn_free(t);
    tikvc_close(c2);
    /* A 1PC commit after a read at a later ts commits above that read. */
    tikvc_txn *w = NULL;
    assert_int_equal(tikvc_txn_begin(c, &w), TIKVC_OK);
    assert_int_equal(tikvc_txn_begin(c, &t), TIKVC_OK);
    tikvc_buf rv = {0};
    bool rfound = false;
    assert_int_equal(tikvc_txn_get(t, "a1pc", 4, &rv, &rfound), TIKVC_OK);
    assert_true(rfound && tikvc_txn_start_ts(t) > two_pc_ts);
    tikvc_buf_free(&rv);
    assert_int_equal(tikvc_txn_set(w, "a1pc", 4, "1", 1), TIKVC_OK);
    assert_int_equal(tikvc_txn_commit(w), TIKVC_OK);
    assert_true(tikvc_txn_commit_ts(w) > tikvc_txn_start_ts(t));
    assert_int_equal(tikvc_txn_get(t, "a1pc", 4, &rv, &rfound), TIKVC_OK);
    assert_true(rfound && rv.len == 1 && rv.data[0] == '2'); /* t's snapshot did not change */
    tikvc_buf_free(&rv);
    tikvc_txn_free(w);
    assert_int_equal(tikvc_txn_rollback(t), TIKVC_OK);
    tikvc_txn_free(t);

    /* A conflict: t1 started before t2 committed the same key. */
    tikvc_txn *t1 = NULL, *t2 = NULL;
    assert_int_equal(tikvc_txn_begin(c, &t1), TIKVC_OK);
    assert_int_equal(tikvc_txn_begin(c, &t2), TIKVC_OK);
    assert_int_equal(tikvc_txn_set(t2, "acct00", 6, "50", 2), TIKVC_OK);
    assert_int_equal(tikvc_txn_commit(t2), TIKVC_OK);
    tikvc_buf v = {0};
    bool found = false;
    assert_int_equal(tikvc_txn_get(t1, "acct00", 6, &v, &found), TIKVC_OK);
    assert_true(found);
    assert_memory_equal(v.data, "100", 3); /* t1's snapshot */
    tikvc_buf_free(&v);
    assert_int_equal(tikvc_txn_set(t1, "acct00", 6, "150", 3), TIKVC_OK);
    assert_int_equal(tikvc_txn_commit(t1), TIKVC_ECONFLICT);
    tikvc_txn_free(t1);
    tikvc_txn_free(t2);

    /* Scans and iterators with the transaction's own writes. */
    assert_int_equal(tikvc_txn_begin(c, &t), TIKVC_OK);
    assert_int_equal(tikvc_txn_delete(t, "acct05", 6), TIKVC_OK);
    tikvc_kvs out = {0};
    assert_int_equal(tikvc_txn_scan(t, "acct", 4, "acctz", 5, 100, 0, &out), TIKVC_OK);
    assert_int_equal(out.len, 19);
    assert_memory_equal(out.items[0].value.data, "50", 2);
    assert_int_equal(tikvc_txn_scan(t, "acct", 4, "", 0, 2, TIKVC_SCAN_REVERSE, &out), TIKVC_OK);
    assert_int_equal(out.len, 2);
    assert_memory_equal(out.items[0].key.data, "acct19", 6);
    tikvc_kvs_free(&out);
    assert_int_equal(tikvc_txn_rollback(t), TIKVC_OK);
    tikvc_txn_free(t);

    /* A crashed transaction: its prewrite landed, its commit never came. */
    uint64_t start_ts;
    assert_int_equal(tikvc_pd_tso(c, &start_ts), TIKVC_OK);
    start_ts -= (uint64_t)5000 << 18; /* 5 s ago, with a 100 ms TTL: expired */
    rpc_client_opts ro;
    rpc_client_opts_init(&ro);
    rpc_client *rc;
    assert_int_equal(rpc_client_new(&ro, &rc), 0);
    rpc_channel *ch;
    assert_int_equal(rpc_client_channel(rc, k.addr, 0, &ch), 0);
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    Metapb__Peer peer = METAPB__PEER__INIT;
    ep.conf_ver = 1;
    ep.version = 1;
    peer.id = k.peer_id;
    peer.store_id = k.store_id;
    ctx.region_id = k.region_id;
    ctx.region_epoch = &ep;
    ctx.peer = &peer;
    Kvrpcpb__Mutation m1 = KVRPCPB__MUTATION__INIT, m2 = KVRPCPB__MUTATION__INIT;
    m1.key.data = (uint8_t *)"crash1";
    m1.key.len = 6;
    m1.value.data = (uint8_t *)"999";
    m1.value.len = 3;
    m2 = m1;
    m2.key.data = (uint8_t *)"crash2";
    Kvrpcpb__Mutation *mp[] = {&m1, &m2};
    Kvrpcpb__PrewriteRequest pw = KVRPCPB__PREWRITE_REQUEST__INIT;
    pw.context = &ctx;
    pw.mutations = mp;
    pw.n_mutations = 2;
    pw.primary_lock = m1.key;
    pw.start_version = start_ts;
    pw.lock_ttl = 100;
    ProtobufCMessage *resp = NULL;
    rpc_status st;
    assert_int_equal(rpc_unary_msg(ch, "/tikvpb.Tikv/KvPrewrite", &pw.base,
                                   &kvrpcpb__prewrite_response__descriptor, 10000, &resp, &st),
                     0);
    Kvrpcpb__PrewriteResponse *pr = (Kvrpcpb__PrewriteResponse *)resp;
    assert_null(pr->region_error);
    assert_int_equal(pr->n_errors, 0);
    rpc_msg_free(resp);
    rpc_client_free(rc);
    /* A reader resolves both locks (the primary's TTL has run out: rolled back). */
    assert_int_equal(tikvc_txn_begin(c, &t), TIKVC_OK);
    assert_int_equal(tikvc_txn_get(t, "crash2", 6, &v, &found), TIKVC_OK);
    assert_false(found);
    assert_int_equal(tikvc_txn_scan(t, "crash", 5, "crashz", 6, 100, 0, &out), TIKVC_OK);
    assert_int_equal(out.len, 0);
    tikvc_kvs_free(&out);
    /* The keys are writable again. */
    assert_int_equal(tikvc_txn_set(t, "crash1", 6, "101", 3), TIKVC_OK);
    assert_int_equal(tikvc_txn_commit(t), TIKVC_OK);
    tikvc_txn_free(t);
    cluster_stop(&k);
}

static void test_tikv_ctl_against_pd_server_and_the_tikv_service(void **state)
{
    (void)state;
    const char *ctl = getenv("TKV_TIKV_CTL");
    if (ctl == NULL)
        fail_msg("TKV_TIKV_CTL is not set (the path of tikv-ctl)");
    cluster k;
    cluster_start(&k);
    char *put[] = {(char *)ctl, "--pd", k.pd.grpc_addr, "raw", "put", "hello", "world", NULL};
    tkv_buf out;
    tkv_buf_init(&out);
    assert_int_equal(pdp_run(put, &out), 0);
    char *get[] = {(char *)ctl, "--pd", k.pd.grpc_addr, "raw", "get", "hello", NULL};
    assert_int_equal(pdp_run(get, &out), 0);
    assert_int_equal(out.len, 6);
    assert_memory_equal(out.data, "world\n", 6);
    char *txn[] = {(char *)ctl, "--pd", k.pd.grpc_addr, "txn", "put", "tk", "tv", NULL};
    assert_int_equal(pdp_run(txn, &out), 0);
    char *cl[] = {(char *)ctl, "--pd", k.pd.grpc_addr, "--json", "cluster", NULL};
    assert_int_equal(pdp_run(cl, &out), 0);
    assert_int_equal(tkv_buf_append_u8(&out, 0), 0);
    assert_non_null(strstr((char *)out.data, "\"region_count\": 1"));
    assert_non_null(strstr((char *)out.data, k.addr));
    /* The closed-loop bench (TKV_CLIENT_BENCH_SECONDS=S measures raw put and get at
     * concurrency 1 and 64 for S seconds each and prints the tables). */
    const char *secs = getenv("TKV_CLIENT_BENCH_SECONDS");
    const char *conc[] = {"1", "64"};
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < (secs != NULL ? 2 : 1); i++) {
            char *bench[] = {(char *)ctl,
                             "--pd",
                             k.pd.grpc_addr,
                             "bench",
                             w == 0 ? "raw-put" : "raw-get",
                             "--concurrency",
                             secs != NULL ? (char *)conc[i] : "4",
                             "--seconds",
                             secs != NULL ? (char *)secs : "1",
                             "--keys",
                             "10000",
                             NULL};
            assert_int_equal(pdp_run(bench, &out), 0);
            if (secs != NULL)
                printf("%.*s", (int)out.len, (const char *)out.data);
        }
    }
    tkv_buf_deinit(&out);
    cluster_stop(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_api_against_pd_server_and_the_tikv_service),
        cmocka_unit_test(test_transactions_against_pd_server_and_the_tikv_service),
        cmocka_unit_test(test_tikv_ctl_against_pd_server_and_the_tikv_service),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
