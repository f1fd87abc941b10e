/*
 * test_rstore_cluster.c: several stores in one process, each with its own in-memory engines,
 * gRPC server (raft transport) and PD client, against the fake PD: bootstrap and join,
 * replication to added peers, a leader's store stopping and restarting, a lagging replica
 * caught up by a snapshot after log compaction, peer removal, and splits; replication
 * streams that do not name a sender PD knows for this cluster, or forge another store's
 * messages, are refused and never applied.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/codec.h"
#include "base/metrics.h"
#include "raft_serverpb.pb-c.h"
#include "rs_testutil.h"
#include "unit/pdc/fake_pd.h"

#define MAX_NODES 4

typedef struct node {
    eng_db *kv, *raft;
    char dir[256];
    pdc_client *pd;
    rpc_server *srv;
    rstore *rs;
    stor_kv *seam;
    int port;
    bool up;
    uint64_t store_id;
    sec_runtime *sec; /* encryption of the snapshot files, when the cluster encrypts */
} node;

typedef struct cluster {
    fake_pd pd;
    node nodes[MAX_NODES];
    int n;
    bool encrypt; /* snapshot files encrypted at rest (aes256-ctr under mk) */
    char mk[256]; /* master key file */
    /* Refusals told to rstore_opts.on_refused, by any store. */
    pthread_mutex_t refused_mu;
    int refused;
    uint64_t refused_store_id;
    char refused_reason[200];
} cluster;

static void on_refused(const rstore_refusal *r, void *ud)
{
    cluster *c = ud;
    pthread_mutex_lock(&c->refused_mu);
    c->refused++;
    c->refused_store_id = r->store_id;
    snprintf(c->refused_reason, sizeof(c->refused_reason), "%s", r->reason);
    pthread_mutex_unlock(&c->refused_mu);
}

static int refused_count(cluster *c, char *reason, size_t cap)
{
    pthread_mutex_lock(&c->refused_mu);
    int n = c->refused;
    if (reason != NULL)
        snprintf(reason, cap, "%s", c->refused_reason);
    pthread_mutex_unlock(&c->refused_mu);
    return n;
}

/* Opens node @nd's security runtime: the key dictionary in its snapshot directory. */
static void node_open_sec(cluster *c, node *nd)
{
    sec_config sc;
    memset(&sc, 0, sizeof(sc));
    sc.data_encryption_method = "aes256-ctr";
    sc.data_key_rotation_period_ms = 7ull * 24 * 3600 * 1000;
    sc.master_key_type = "file";
    sc.master_key_path = c->mk;
    sec_runtime_opts so;
    sec_runtime_opts_init(&so);
    so.name = "test";
    so.data_dir = nd->dir;
    so.config = &sc;
    char err[TKV_ERRMSG_LEN];
    int rc = sec_runtime_open(&so, &nd->sec, err);
    if (rc != 0)
        fprintf(stderr, "# sec_runtime_open: %s\n", err);
    assert_int_equal(rc, 0);
}

static void node_start(cluster *c, int i)
{
    node *nd = &c->nodes[i];
    const char *eps[] = {c->pd.addr[0]};
    pdc_opts po;
    pdc_opts_init(&po);
    po.endpoints = eps;
    po.n_endpoints = 1;
    assert_int_equal(pdc_open(&po, &nd->pd), 0);
    rstore_opts o;
    rstore_opts_init(&o);
    o.kv = nd->kv;
    o.raft = nd->raft;
    o.snap_dir = nd->dir;
    o.pd = nd->pd;
    o.raft_base_tick_ms = 20;
    o.raft_log_gc_tick_ms = 100000; /* compaction only when the test asks */
    o.pd_heartbeat_tick_ms = 200;
    o.pd_store_heartbeat_tick_ms = 500;
    o.on_refused = on_refused;
    o.refused_ud = c;
    if (c->encrypt) {
        node_open_sec(c, nd);
        o.sec = nd->sec;
    }
    char err[TKV_ERRMSG_LEN];
    int rc = rstore_open(&o, &nd->rs, err);
    if (rc != 0)
        fprintf(stderr, "# rstore_open: %s\n", err);
    assert_int_equal(rc, 0);
    rpc_server_opts so;
    rpc_server_opts_init(&so);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", nd->port);
    so.addr = addr;
    so.cq_threads = 1;
    assert_int_equal(rpc_server_new(&so, &nd->srv), 0);
    assert_int_equal(rstore_register_service(nd->rs, nd->srv), 0);
    assert_int_equal(rpc_server_start(nd->srv), 0);
    nd->port = rpc_server_port(nd->srv);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", nd->port);
    rc = rstore_start(nd->rs, addr, NULL, err);
    if (rc != 0)
        fprintf(stderr, "# rstore_start: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(rstore_kv_new(nd->rs, &nd->seam), 0);
    nd->store_id = rstore_store_id(nd->rs);
    nd->up = true;
}

static void node_stop(cluster *c, int i)
{
    node *nd = &c->nodes[i];
    if (!nd->up)
        return;
    rstore_stop(nd->rs);
    rpc_server_shutdown(nd->srv, 0);
    stor_kv_free(nd->seam);
    pdc_close(nd->pd);
    rstore_free(nd->rs);
    rpc_server_free(nd->srv);
    sec_runtime_close(nd->sec);
    nd->sec = NULL;
    nd->rs = NULL;
    nd->up = false;
}

/* Starts @n stores; with @encrypt their snapshot files are encrypted at rest. */
static void cluster_start_enc(cluster *c, int n, bool encrypt)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->refused_mu, NULL);
    c->encrypt = encrypt;
    if (encrypt) {
        rs_tmpdir(c->mk, sizeof(c->mk) - 16);
        strcat(c->mk, "/master.key");
        FILE *f = fopen(c->mk, "w");
        assert_non_null(f);
        fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
        fclose(f);
    }
    rpc_init();
    fake_pd_start(&c->pd, 1, 4242);
    c->n = n;
    for (int i = 0; i < n; i++) {
        node *nd = &c->nodes[i];
        assert_int_equal(eng_mem_open(NULL, &nd->kv), 0);
        assert_int_equal(eng_mem_open(NULL, &nd->raft), 0);
        rs_tmpdir(nd->dir, sizeof(nd->dir));
        node_start(c, i);
    }
}

static void cluster_start(cluster *c, int n)
{
    cluster_start_enc(c, n, false);
}

static void cluster_stop(cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        node_stop(c, i);
        eng_close(c->nodes[i].kv);
        eng_close(c->nodes[i].raft);
        rs_rmtree(c->nodes[i].dir);
    }
    if (c->encrypt) {
        char *slash = strrchr(c->mk, '/');
        *slash = '\0';
        rs_rmtree(c->mk);
    }
    fake_pd_stop(&c->pd);
    rpc_shutdown();
    tkv_metrics_reset();
    pthread_mutex_destroy(&c->refused_mu);
}

/* ---- conditions ------------------------------------------------------------------------ */

typedef struct probe {
    cluster *c;
    int node;
    uint64_t region;
    uint64_t want;
    size_t peers;
} probe;

static bool info_of(cluster *c, int i, uint64_t region, rstore_region_info *info)
{
    if (!c->nodes[i].up)
        return false;
    return rstore_region_info_get(c->nodes[i].rs, region, 2000, info) == 0 && info->found;
}

/* Returns the index of the node leading @region, or -1. */
static int leader_of(cluster *c, uint64_t region)
{
    for (int i = 0; i < c->n; i++) {
        rstore_region_info info;
        if (info_of(c, i, region, &info) && info.is_leader)
            return i;
    }
    return -1;
}

static bool has_leader(void *arg)
{
    probe *p = arg;
    return leader_of(p->c, p->region) >= 0;
}

static bool replica_has_peers(void *arg)
{
    probe *p = arg;
    rstore_region_info info;
    return info_of(p->c, p->node, p->region, &info) && info.initialized && info.n_peers == p->peers;
}

static bool replica_gone(void *arg)
{
    probe *p = arg;
    rstore_region_info info;
    return !info_of(p->c, p->node, p->region, &info);
}

static uint64_t first_region(cluster *c)
{
    uint64_t ids[4];
    size_t n = rstore_region_ids(c->nodes[0].rs, ids, 4);
    assert_int_equal(n, 1);
    return ids[0];
}

/* Writes through the region's leader, following NotLeader answers. */
static void put_ok(cluster *c, uint64_t region, const char *k, const char *v)
{
    probe pr = {.c = c, .region = region};
    for (int attempt = 0; attempt < 50; attempt++) {
        assert_true(rs_wait_for(has_leader, &pr, 10000));
        int l = leader_of(c, region);
        if (l < 0)
            continue;
        stor_ctx ctx = rs_ctx(region);
        rs_result r;
        assert_int_equal(rs_put(c->nodes[l].seam, &ctx, k, v, &r), 0);
        bool ok = r.rc == 0 && r.rerr == NULL;
        rs_result_deinit(&r);
        if (ok)
            return;
    }
    fail_msg("put %s never succeeded", k);
}

/* Reads @k on node @i (replica read unless it leads) and compares. */
static bool get_on(cluster *c, int i, uint64_t region, const char *k, const char *v)
{
    stor_ctx ctx = rs_ctx(region);
    ctx.replica_read = true;
    rs_result r;
    if (rs_get(c->nodes[i].seam, &ctx, k, &r) != 0)
        return false;
    bool ok =
        r.rc == 0 && r.rerr == NULL &&
        (v == NULL ? !r.found
                   : r.found && r.value.len == strlen(v) && !memcmp(r.value.data, v, r.value.len));
    rs_result_deinit(&r);
    return ok;
}

typedef struct get_probe {
    cluster *c;
    int node;
    uint64_t region;
    const char *key;
    const char *value;
} get_probe;

static bool get_matches(void *arg)
{
    get_probe *g = arg;
    return get_on(g->c, g->node, g->region, g->key, g->value);
}

/* Adds a voter on node @i to @region (through its leader) and waits for the replica. */
static void add_voter(cluster *c, uint64_t region, int i, uint64_t peer_id, size_t want_peers)
{
    probe pr = {.c = c, .region = region, .node = i, .peers = want_peers};
    for (int attempt = 0; attempt < 20 && !replica_has_peers(&pr); attempt++) {
        assert_true(rs_wait_for(has_leader, &pr, 10000));
        int l = leader_of(c, region);
        if (l >= 0)
            assert_int_equal(rstore_change_peer(c->nodes[l].rs, region, false, false, peer_id,
                                                c->nodes[i].store_id),
                             0);
        rs_wait_for(replica_has_peers, &pr, 3000);
    }
    assert_true(replica_has_peers(&pr));
}

static uint64_t three_replicas(cluster *c)
{
    uint64_t region = first_region(c);
    probe pr = {.c = c, .region = region};
    assert_true(rs_wait_for(has_leader, &pr, 10000));
    add_voter(c, region, 1, 1001, 2);
    add_voter(c, region, 2, 1002, 3);
    return region;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_stores_bootstrap_join_and_replicate(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    assert_true(c.nodes[0].store_id != c.nodes[1].store_id);
    uint64_t region = three_replicas(&c);
    char k[32], v[32];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "key%03d", i);
        snprintf(v, sizeof(v), "val%d", i);
        put_ok(&c, region, k, v);
    }
    for (int n = 0; n < 3; n++) {
        get_probe g = {&c, n, region, "key049", "val49"};
        assert_true(rs_wait_for(get_matches, &g, 5000));
        assert_true(get_on(&c, n, region, "key000", "val0"));
    }
    cluster_stop(&c);
}

static void test_leader_store_stops_and_restarts(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    uint64_t region = three_replicas(&c);
    put_ok(&c, region, "before", "1");
    int l = leader_of(&c, region);
    assert_true(l >= 0);
    node_stop(&c, l);
    put_ok(&c, region, "after", "2"); /* a new leader among the other two */
    int l2 = leader_of(&c, region);
    assert_true(l2 >= 0 && l2 != l);
    node_start(&c, l);
    get_probe g = {&c, l, region, "after", "2"};
    assert_true(rs_wait_for(get_matches, &g, 10000));
    assert_true(get_on(&c, l, region, "before", "1"));
    cluster_stop(&c);
}

#define SNAP_CANARY "snapshot-canary-3f9c2b7e5d1a"

/* Counts the generated snapshot files in @dir and how many of them hold SNAP_CANARY. */
static void scan_snap_files(const char *dir, int *files, int *with_canary)
{
    *files = *with_canary = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    char path[512];
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (strncmp(de->d_name, "gen_", 4) != 0 || n < 5 ||
            strcmp(de->d_name + n - 5, ".snap") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        tkv_buf b;
        tkv_buf_init(&b);
        uint8_t chunk[4096];
        size_t got;
        while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
            assert_int_equal(tkv_buf_append(&b, chunk, got), 0);
        fclose(f);
        (*files)++;
        if (b.len > 0 && memmem(b.data, b.len, SNAP_CANARY, strlen(SNAP_CANARY)) != NULL)
            (*with_canary)++;
        tkv_buf_deinit(&b);
    }
    closedir(d);
}

/* A replica that missed compacted log entries catches up by a snapshot. With @encrypt the
 * snapshot files are encrypted at rest: the value the snapshot carries is in none of the
 * leader's generated files (the plaintext run shows the search finds it). */
static void lagging_replica_catches_up(bool encrypt)
{
    cluster c;
    cluster_start_enc(&c, 3, encrypt);
    uint64_t region = three_replicas(&c);
    put_ok(&c, region, "k0", "v0");
    int l = leader_of(&c, region);
    int down = (l + 1) % 3;
    node_stop(&c, down);
    char k[32];
    for (int i = 1; i <= 100; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        put_ok(&c, region, k, SNAP_CANARY);
    }
    l = leader_of(&c, region);
    assert_true(l >= 0);
    assert_int_equal(rstore_compact_log(c.nodes[l].rs, region, true), 0);
    rstore_region_info li;
    assert_true(info_of(&c, l, region, &li));
    for (int t = 0; t < 200 && li.first_index <= li.applied_index - 1; t++) {
        tkv_sleep_ms(10); /* waiting for the compaction to apply, bounded */
        assert_true(info_of(&c, l, region, &li));
    }
    assert_true(li.first_index > 50);
    node_start(&c, down);
    get_probe g = {&c, down, region, "k100", SNAP_CANARY};
    assert_true(rs_wait_for(get_matches, &g, 15000));
    assert_true(get_on(&c, down, region, "k0", "v0"));
    rstore_stats st;
    rstore_stats_get(c.nodes[down].rs, &st);
    assert_true(st.snapshots_applied >= 1);
    int files, with_canary;
    scan_snap_files(c.nodes[l].dir, &files, &with_canary);
    assert_true(files >= 1); /* the snapshot that carried the canary, and earlier ones */
    if (encrypt)
        assert_int_equal(with_canary, 0);
    else
        assert_true(with_canary >= 1);
    /* And it keeps replicating normally afterwards. */
    put_ok(&c, region, "k101", "y");
    g.key = "k101";
    g.value = "y";
    assert_true(rs_wait_for(get_matches, &g, 5000));
    cluster_stop(&c);
}

static void test_lagging_replica_catches_up_by_snapshot(void **state)
{
    (void)state;
    lagging_replica_catches_up(false);
}

static void test_snapshot_files_are_encrypted_at_rest(void **state)
{
    (void)state;
    lagging_replica_catches_up(true);
}

static void test_removed_peer_is_destroyed(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    uint64_t region = three_replicas(&c);
    put_ok(&c, region, "gone", "soon");
    int l = leader_of(&c, region);
    int victim = (l + 1) % 3;
    rstore_region_info vi = {0};
    assert_true(info_of(&c, victim, region, &vi));
    assert_int_equal(rstore_change_peer(c.nodes[l].rs, region, true, false, vi.peer_id,
                                        c.nodes[victim].store_id),
                     0);
    probe pr = {.c = &c, .node = victim, .region = region};
    assert_true(rs_wait_for(replica_gone, &pr, 10000));
    tkv_buf val;
    tkv_buf_init(&val);
    bool found = true;
    assert_int_equal(
        eng_get(c.nodes[victim].kv, ENG_CF_DEFAULT, tkv_slice_str("zgone"), &val, &found), 0);
    assert_false(found);
    tkv_buf_deinit(&val);
    put_ok(&c, region, "still", "works");
    cluster_stop(&c);
}

/* A replica removed while its store was down learns it when it comes back (the members
 * answer its messages with a gc message) and destroys itself. */
static void test_replica_removed_while_down_destroys_itself(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    uint64_t region = three_replicas(&c);
    put_ok(&c, region, "k", "v");
    int l = leader_of(&c, region);
    int victim = (l + 1) % 3;
    rstore_region_info vi = {0};
    assert_true(info_of(&c, victim, region, &vi));
    node_stop(&c, victim);
    assert_int_equal(rstore_change_peer(c.nodes[l].rs, region, true, false, vi.peer_id,
                                        c.nodes[victim].store_id),
                     0);
    probe left = {.c = &c, .node = l, .region = region, .peers = 2};
    assert_true(rs_wait_for(replica_has_peers, &left, 10000));
    node_start(&c, victim);
    probe pr = {.c = &c, .node = victim, .region = region};
    assert_true(rs_wait_for(replica_gone, &pr, 15000));
    put_ok(&c, region, "k2", "v2");
    cluster_stop(&c);
}

typedef struct split_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    size_t n;
    uint64_t ids[4];
} split_wait;

static void on_split(void *ud, int rc, Errorpb__Error *rerr, const Metapb__Region *const *regions,
                     size_t n)
{
    split_wait *w = ud;
    pthread_mutex_lock(&w->mu);
    w->rc = rerr ? -1 : rc;
    if (rerr)
        fprintf(stderr, "# split error: %s\n", rerr->message);
    stor_rerr_free(rerr);
    w->n = n;
    for (size_t i = 0; i < n && i < 4; i++)
        w->ids[i] = regions[i]->id;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Splits @region at @k through its leader and returns the new (left) region's id. */
static uint64_t split_at(cluster *c, uint64_t region, const char *k)
{
    int l = leader_of(c, region);
    assert_true(l >= 0);
    split_wait w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    stor_ctx ctx = rs_ctx(region);
    tkv_slice key = tkv_slice_str(k);
    assert_int_equal(rstore_split_region(c->nodes[l].rs, &ctx, &key, 1, true, on_split, &w), 0);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.ids[1], region); /* the parent keeps the right part (right_derive) */
    return w.ids[0];
}

static void test_split_makes_two_served_regions(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    uint64_t region = three_replicas(&c);
    put_ok(&c, region, "a", "left");
    put_ok(&c, region, "z", "right");
    uint64_t left = split_at(&c, region, "m"), right = region;
    put_ok(&c, left, "b", "L");
    put_ok(&c, right, "y", "R");
    for (int n = 0; n < 3; n++) {
        get_probe g = {&c, n, left, "b", "L"};
        assert_true(rs_wait_for(get_matches, &g, 10000));
        get_probe g2 = {&c, n, right, "y", "R"};
        assert_true(rs_wait_for(get_matches, &g2, 10000));
        assert_true(get_on(&c, n, left, "a", "left"));
        assert_true(get_on(&c, n, right, "z", "right"));
    }
    /* A key of the other half is refused. */
    stor_ctx lctx = rs_ctx(left);
    rs_result r;
    int ll = leader_of(&c, left);
    assert_true(ll >= 0);
    assert_int_equal(rs_put(c.nodes[ll].seam, &lctx, "zz", "no", &r), 0);
    assert_non_null(r.rerr);
    assert_true(r.rerr->key_not_in_region != NULL || r.rerr->not_leader != NULL);
    rs_result_deinit(&r);
    cluster_stop(&c);
}

/* The leader keeps the snapshot it generated for one new peer; after a split that snapshot
 * still covers the split-off range. A peer added later on a store that already holds the
 * split-off region would drop it as overlapping, again and again: the leader must generate
 * a new one with the current epoch instead. */
static void test_snapshot_made_before_split_is_not_reused(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    uint64_t region = first_region(&c);
    probe pr = {.c = &c, .region = region};
    assert_true(rs_wait_for(has_leader, &pr, 10000));
    put_ok(&c, region, "a", "left");
    put_ok(&c, region, "z", "right");
    add_voter(&c, region, 1, 1001, 2); /* the leader generates (and keeps) a snapshot */
    uint64_t left = split_at(&c, region, "m");
    add_voter(&c, left, 2, 2001, 3); /* node 2 now holds the left range */
    add_voter(&c, region, 2, 2002, 3);
    get_probe g = {&c, 2, region, "z", "right"};
    assert_true(rs_wait_for(get_matches, &g, 10000));
    get_probe g2 = {&c, 2, left, "a", "left"};
    assert_true(rs_wait_for(get_matches, &g2, 10000));
    cluster_stop(&c);
}

/* ---- sender identity ------------------------------------------------------------------- */

typedef struct forged_stream {
    rpc_client *client;
    int port;               /* the receiving store's */
    const char *method;     /* "/tikvpb.Tikv/BatchRaft" or "/tikvpb.Tikv/Raft" */
    const char *cluster_id; /* metadata sent (NULL: left out) */
    const char *store_id;   /* metadata sent (NULL: left out) */
    const tkv_buf *message; /* one packed RaftMessage to send, or NULL */
    rpc_code want;          /* what the stream must end with (rpc_stream_ends_with) */
} forged_stream;

/* Opens @f's stream, sends its message (in a BatchRaftMessage for BatchRaft), half-closes and
 * returns the status the receiver ended it with. */
static rpc_code forged_send(const forged_stream *f)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
    rpc_channel *ch;
    assert_int_equal(rpc_client_channel(f->client, addr, 0, &ch), 0);
    rpc_md md[2];
    size_t n = 0;
    if (f->cluster_id != NULL)
        md[n++] = (rpc_md){RSTORE_MD_CLUSTER_ID, f->cluster_id};
    if (f->store_id != NULL)
        md[n++] = (rpc_md){RSTORE_MD_STORE_ID, f->store_id};
    rpc_stream *st;
    assert_int_equal(rpc_stream_open_md(ch, f->method, 5000, md, n, NULL, &st), 0);
    if (f->message != NULL) {
        tkv_buf b;
        tkv_buf_init(&b);
        if (strcmp(f->method, "/tikvpb.Tikv/Raft") != 0) {
            /* BatchRaftMessage.msgs or SnapshotChunk.message: both field 1. */
            assert_int_equal(tkv_buf_append_u8(&b, 0x0a), 0);
            assert_int_equal(tkv_codec_encode_uvarint(&b, f->message->len), 0);
        }
        assert_int_equal(tkv_buf_append(&b, f->message->data, f->message->len), 0);
        TKV_IGNORE(rpc_stream_send(st, tkv_buf_slice(&b))); /* refused streams may be gone */
        tkv_buf_deinit(&b);
    }
    TKV_IGNORE(rpc_stream_close_send(st));
    rpc_status status;
    assert_int_equal(rpc_stream_wait(st, 10000, &status), 0);
    rpc_stream_free(st);
    return status.code;
}

/* Condition: @f's stream ends with f->want (a store PD is asked about is refused with
 * UNAVAILABLE until the answer is in). */
static bool stream_ends_with(void *arg)
{
    const forged_stream *f = arg;
    return forged_send(f) == f->want;
}

/* Returns how many received snapshot files ("rev_*") directory @dir holds. */
static int received_snapshots(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, "rev_", 4) == 0;
    closedir(d);
    return n;
}

/* Packs a raft message of type @type for @region from the peer @from_peer on @from_store to
 * node @to, with term @term, into @out (a MsgSnapshot carries snapshot metadata at @term). */
static void pack_raft(cluster *c, int to, uint64_t region, uint64_t from_peer, uint64_t from_store,
                      uint64_t term, Eraftpb__MessageType type, tkv_buf *out)
{
    rstore_region_info info = {0};
    assert_true(info_of(c, to, region, &info));
    Metapb__Peer fp = METAPB__PEER__INIT, tp = METAPB__PEER__INIT;
    fp.id = from_peer;
    fp.store_id = from_store;
    tp.id = info.peer_id;
    tp.store_id = c->nodes[to].store_id;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    ep.conf_ver = info.conf_ver;
    ep.version = info.version;
    Eraftpb__Message m = ERAFTPB__MESSAGE__INIT;
    m.msg_type = type;
    m.to = tp.id;
    m.from = fp.id;
    m.term = term;
    Eraftpb__SnapshotMetadata md = ERAFTPB__SNAPSHOT_METADATA__INIT;
    md.term = term;
    md.index = info.commit_index + 100;
    Eraftpb__Snapshot snap = ERAFTPB__SNAPSHOT__INIT;
    snap.metadata = &md;
    if (type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot)
        m.snapshot = &snap;
    RaftServerpb__RaftMessage rm = RAFT_SERVERPB__RAFT_MESSAGE__INIT;
    rm.region_id = region;
    rm.from_peer = &fp;
    rm.to_peer = &tp;
    rm.region_epoch = &ep;
    rm.message = &m;
    assert_int_equal(rpc_msg_pack(&rm.base, out), 0);
}

static void test_replication_streams_must_name_a_sender_pd_knows(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    uint64_t region = three_replicas(&c);
    put_ok(&c, region, "k", "v");
    probe pr = {.c = &c, .region = region};
    assert_true(rs_wait_for(has_leader, &pr, 10000));
    int l = leader_of(&c, region);
    assert_true(l >= 0);
    int f = (l + 1) % 3, other = (l + 2) % 3; /* the follower attacked, a third store */
    rstore_region_info before = {0}, oinfo = {0};
    assert_true(info_of(&c, f, region, &before));
    assert_true(info_of(&c, other, region, &oinfo));

    rpc_client_opts co;
    rpc_client_opts_init(&co);
    rpc_client *client;
    assert_int_equal(rpc_client_new(&co, &client), 0);
    char cid[24], lsid[24], osid[24], fsid[24];
    snprintf(cid, sizeof(cid), "%llu", (unsigned long long)rstore_cluster_id(c.nodes[f].rs));
    snprintf(lsid, sizeof(lsid), "%llu", (unsigned long long)c.nodes[l].store_id);
    snprintf(osid, sizeof(osid), "%llu", (unsigned long long)c.nodes[other].store_id);
    snprintf(fsid, sizeof(fsid), "%llu", (unsigned long long)c.nodes[f].store_id);
    /* A heartbeat from the third store's peer with a much higher term: applied, it would
     * make the follower step to that term. */
    tkv_buf hb;
    tkv_buf_init(&hb);
    pack_raft(&c, f, region, oinfo.peer_id, c.nodes[other].store_id, before.term + 5,
              ERAFTPB__MESSAGE_TYPE__MsgHeartbeat, &hb);
    tkv_buf snap;
    tkv_buf_init(&snap);
    pack_raft(&c, f, region, oinfo.peer_id, c.nodes[other].store_id, before.term + 5,
              ERAFTPB__MESSAGE_TYPE__MsgSnapshot, &snap);
    int refused0 = refused_count(&c, NULL, 0);
    char reason[200];

    /* No sender identity. */
    forged_stream fs = {.client = client,
                        .port = c.nodes[f].port,
                        .method = "/tikvpb.Tikv/BatchRaft",
                        .message = &hb};
    assert_int_equal(forged_send(&fs), RPC_UNAUTHENTICATED);
    fs.cluster_id = cid;
    assert_int_equal(forged_send(&fs), RPC_UNAUTHENTICATED);
    assert_int_equal(refused_count(&c, reason, sizeof(reason)), refused0 + 2);
    assert_non_null(strstr(reason, RSTORE_MD_STORE_ID));
    /* Another cluster. */
    fs.cluster_id = "4243";
    fs.store_id = osid;
    assert_int_equal(forged_send(&fs), RPC_PERMISSION_DENIED);
    assert_int_equal(refused_count(&c, reason, sizeof(reason)), refused0 + 3);
    assert_non_null(strstr(reason, "cluster id 4243"));
    /* The receiver's own store id. */
    fs.cluster_id = cid;
    fs.store_id = fsid;
    fs.method = "/tikvpb.Tikv/Raft";
    assert_int_equal(forged_send(&fs), RPC_PERMISSION_DENIED);
    /* A store PD does not know, and a tombstone (looked up first: UNAVAILABLE meanwhile). */
    fs.store_id = "987654";
    fs.want = RPC_PERMISSION_DENIED;
    assert_true(rs_wait_for(stream_ends_with, &fs, 10000));
    refused_count(&c, reason, sizeof(reason));
    assert_non_null(strstr(reason, "unknown to PD"));
    fake_pd_add_store(&c.pd, 77, "127.0.0.1:1");
    pthread_mutex_lock(&c.pd.mu);
    for (size_t i = 0; i < c.pd.n_stores; i++)
        if (c.pd.stores[i].id == 77)
            c.pd.stores[i].state = METAPB__STORE_STATE__Tombstone;
    pthread_mutex_unlock(&c.pd.mu);
    fs.store_id = "77";
    fs.method = "/tikvpb.Tikv/Snapshot";
    fs.message = NULL;
    assert_true(rs_wait_for(stream_ends_with, &fs, 10000));
    refused_count(&c, reason, sizeof(reason));
    assert_non_null(strstr(reason, "tombstone"));

    /* The leader's store id with a message from the third store's peer: the stream is ended
     * at that message, which is dropped, and the refusal told once. */
    fs.method = "/tikvpb.Tikv/BatchRaft";
    fs.message = &hb;
    fs.store_id = lsid;
    fs.want = RPC_PERMISSION_DENIED;
    int before_forged = refused_count(&c, NULL, 0);
    assert_true(rs_wait_for(stream_ends_with, &fs, 10000));
    assert_int_equal(refused_count(&c, reason, sizeof(reason)), before_forged + 1);
    assert_non_null(strstr(reason, "on store"));
    /* The same sender with nothing forged is accepted. */
    fs.message = NULL;
    assert_int_equal(forged_send(&fs), RPC_OK);
    /* A snapshot from the third store's peer on the leader's stream: refused, no file. */
    fs.method = "/tikvpb.Tikv/Snapshot";
    fs.message = &snap;
    before_forged = refused_count(&c, NULL, 0);
    int snaps = received_snapshots(c.nodes[f].dir);
    rpc_code got = forged_send(&fs);
    assert_true(got != RPC_OK);
    assert_int_equal(received_snapshots(c.nodes[f].dir), snaps);
    assert_int_equal(refused_count(&c, reason, sizeof(reason)), before_forged + 1);
    assert_non_null(strstr(reason, "snapshot from a peer of store"));

    /* None of it reached Raft: the follower's term and the leader are what they were, and
     * the cluster still serves. */
    rstore_region_info after = {0};
    assert_true(info_of(&c, f, region, &after));
    assert_int_equal(after.term, before.term);
    assert_int_equal(leader_of(&c, region), l);
    put_ok(&c, region, "k2", "v2");
    get_probe g = {&c, f, region, "k2", "v2"};
    assert_true(rs_wait_for(get_matches, &g, 5000));

    tkv_buf_deinit(&hb);
    tkv_buf_deinit(&snap);
    rpc_client_free(client);
    cluster_stop(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stores_bootstrap_join_and_replicate),
        cmocka_unit_test(test_leader_store_stops_and_restarts),
        cmocka_unit_test(test_lagging_replica_catches_up_by_snapshot),
        cmocka_unit_test(test_snapshot_files_are_encrypted_at_rest),
        cmocka_unit_test(test_removed_peer_is_destroyed),
        cmocka_unit_test(test_replica_removed_while_down_destroys_itself),
        cmocka_unit_test(test_split_makes_two_served_regions),
        cmocka_unit_test(test_snapshot_made_before_split_is_not_reused),
        cmocka_unit_test(test_replication_streams_must_name_a_sender_pd_knows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
