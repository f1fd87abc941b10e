/*
 * test_pd_cluster.c: the cluster state: bootstrap, stores, region heartbeats and their
 * errors, split id allocation and reports, store states, settings, and everything surviving
 * a reopen of the storage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pd_testutil.h"

static pdt_region region3(uint64_t id, const char *start, const char *end, uint64_t leader)
{
    pdt_region r;
    memset(&r, 0, sizeof(r));
    r.id = id;
    snprintf(r.start, sizeof(r.start), "%s", start);
    snprintf(r.end, sizeof(r.end), "%s", end);
    r.version = 1;
    r.conf_ver = 1;
    r.n = 3;
    for (size_t i = 0; i < 3; i++) {
        r.peer_ids[i] = id * 10 + i + 1;
        r.stores[i] = i + 1;
    }
    r.leader_store = leader;
    return r;
}

static void test_bootstrap_once_with_one_peer_on_the_store(void **state)
{
    (void)state;
    pdt_cluster t;
    pdt_open(&t, NULL);
    assert_false(t.c->bootstrapped);
    /* Everything but bootstrap answers NOT_BOOTSTRAPPED first. */
    Metapb__Store s = METAPB__STORE__INIT;
    s.id = 1;
    s.address = "127.0.0.1:20160";
    pd_result res;
    assert_int_equal(pd__cluster_put_store(t.c, &s, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__NOT_BOOTSTRAPPED);
    /* A first region with two peers is refused. */
    Metapb__Peer p1 = METAPB__PEER__INIT, p2 = METAPB__PEER__INIT;
    p1.id = 2;
    p1.store_id = 1;
    p2.id = 3;
    p2.store_id = 1;
    Metapb__Peer *peers[] = {&p1, &p2};
    Metapb__Region r = METAPB__REGION__INIT;
    r.id = 4;
    r.n_peers = 2;
    r.peers = peers;
    assert_int_equal(pd__cluster_bootstrap(t.c, &s, &r, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__UNKNOWN);
    assert_non_null(strstr(res.msg, "peer count"));
    /* A peer on another store is refused. */
    r.n_peers = 1;
    p1.store_id = 9;
    assert_int_equal(pd__cluster_bootstrap(t.c, &s, &r, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__UNKNOWN);
    p1.store_id = 1;
    assert_int_equal(pd__cluster_bootstrap(t.c, &s, &r, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
    assert_true(t.c->bootstrapped);
    assert_int_equal(pd__cluster_bootstrap(t.c, &s, &r, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__ALREADY_BOOTSTRAPPED);
    assert_int_equal(pd__rt_count(&t.c->regions), 1);
    assert_int_equal(t.c->stores[0]->region_count, 1);
    assert_int_equal(t.c->meta->max_peer_count, 3);
    pdt_close(&t);
}

static void test_put_store_rejects_duplicate_addresses_and_tombstones(void **state)
{
    (void)state;
    pdt_cluster t;
    pdt_open(&t, NULL);
    pdt_bootstrap(&t, 1, 2, 3);
    pdt_put_store(&t, 4, "zone=z1");
    assert_int_equal(t.c->nstores, 2);
    Metapb__Store s = METAPB__STORE__INIT;
    s.id = 5;
    s.address = "127.0.0.1:20164"; /* store 4's address */
    pd_result res;
    assert_int_equal(pd__cluster_put_store(t.c, &s, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__UNKNOWN);
    assert_non_null(strstr(res.msg, "duplicated store address"));
    s.address = "";
    assert_int_equal(pd__cluster_put_store(t.c, &s, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__UNKNOWN);
    /* Re-registering keeps the store's state and counts, updates its meta. */
    pdt_put_store(&t, 4, "zone=z2");
    assert_string_equal(pd__store_label(pd__cluster_store_locked(t.c, 4), "zone"), "z2");
    assert_int_equal(
        pd__cluster_set_store_state(t.c, 4, METAPB__STORE_STATE__Tombstone, false, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
    s.id = 4;
    s.address = "127.0.0.1:20164";
    assert_int_equal(pd__cluster_put_store(t.c, &s, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__STORE_TOMBSTONE);
    /* A store with regions cannot become Tombstone without force. */
    assert_int_equal(
        pd__cluster_set_store_state(t.c, 1, METAPB__STORE_STATE__Tombstone, false, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__INVALID_VALUE);
    assert_int_equal(
        pd__cluster_set_store_state(t.c, 99, METAPB__STORE_STATE__Offline, false, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__ENTRY_NOT_FOUND);
    pdt_close(&t);
}

static void test_store_certificate_name_is_recorded_from_tls_and_binds_the_store(void **state)
{
    (void)state;
    pdt_cluster t;
    pdt_open(&t, NULL);
    pdt_bootstrap(&t, 1, 2, 3);
    /* A request naming its own certificate label gets the caller's TLS name instead. */
    Metapb__StoreLabel zone = METAPB__STORE_LABEL__INIT, claim = METAPB__STORE_LABEL__INIT;
    zone.key = "zone";
    zone.value = "z1";
    claim.key = PD_CERT_NAME_LABEL;
    claim.value = "store-9";
    Metapb__StoreLabel *labels[] = {&zone, &claim};
    Metapb__Store s = METAPB__STORE__INIT;
    s.id = 4;
    s.address = "127.0.0.1:20164";
    s.n_labels = 2;
    s.labels = labels;
    pd_result res;
    assert_int_equal(pd__cluster_put_store_as(t.c, &s, "store-4", &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
    pd_store *st = pd__cluster_store_locked(t.c, 4);
    assert_string_equal(pd__store_label(st, PD_CERT_NAME_LABEL), "store-4");
    assert_string_equal(pd__store_label(st, "zone"), "z1");
    assert_int_equal(st->meta->n_labels, 2);
    /* Another certificate cannot take store 4's id, by PutStore or StoreHeartbeat. */
    assert_int_equal(pd__cluster_put_store_as(t.c, &s, "store-9", &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__UNKNOWN);
    assert_non_null(strstr(res.msg, "another certificate name"));
    Pdpb__StoreStats stats = PDPB__STORE_STATS__INIT;
    stats.store_id = 4;
    assert_int_equal(pd__cluster_store_heartbeat_as(t.c, &stats, "store-9", &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__UNKNOWN);
    assert_int_equal(pd__cluster_store_heartbeat_as(t.c, &stats, "store-4", &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
    /* The owner re-registers; the label stays. */
    assert_int_equal(pd__cluster_put_store_as(t.c, &s, "store-4", &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
    assert_string_equal(pd__store_label(pd__cluster_store_locked(t.c, 4), PD_CERT_NAME_LABEL),
                        "store-4");
    /* Without TLS nobody can claim a certificate name: the request's label is dropped. */
    s.id = 5;
    s.address = "127.0.0.1:20165";
    assert_int_equal(pd__cluster_put_store(t.c, &s, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
    st = pd__cluster_store_locked(t.c, 5);
    assert_int_equal(st->meta->n_labels, 1);
    assert_string_equal(st->meta->labels[0]->key, "zone");
    pdt_close(&t);
}

static void test_store_heartbeat_of_unknown_store_is_an_error(void **state)
{
    (void)state;
    pdt_cluster t;
    pdt_open(&t, NULL);
    pdt_bootstrap(&t, 1, 2, 3);
    Pdpb__StoreStats st = PDPB__STORE_STATS__INIT;
    st.store_id = 77;
    pd_result res;
    assert_int_equal(pd__cluster_store_heartbeat(t.c, &st, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__UNKNOWN);
    assert_string_equal(res.msg, "store 77 not found");
    t.now += 5000;
    pdt_store_hb(&t, 1);
    pd_store *s = pd__cluster_store_locked(t.c, 1);
    assert_int_equal(s->last_heartbeat_ms, t.now);
    assert_non_null(s->stats);
    assert_true(s->meta->last_heartbeat > 0);
    /* Down after max-store-down-time without heartbeats, Disconnected before. */
    t.now += 21 * 1000;
    assert_int_equal(pd__store_status(s, t.now, &t.c->cfg), PD_STORE_DISCONNECTED);
    t.now += 31 * 60 * 1000;
    assert_int_equal(pd__store_status(s, t.now, &t.c->cfg), PD_STORE_DOWN);
    pdt_close(&t);
}

static void test_region_heartbeats_update_the_tree_and_store_counts(void **state)
{
    (void)state;
    pdt_cluster t;
    pdt_open(&t, NULL);
    pdt_bootstrap(&t, 1, 100, 101);
    pdt_put_store(&t, 2, NULL);
    pdt_put_store(&t, 3, NULL);
    pdt_region r = region3(100, "", "", 2);
    r.peer_ids[0] = 101;
    r.version = 1;
    r.conf_ver = 3;
    assert_int_equal(pdt_region_hb(&t, &r), 0);
    assert_int_equal(pd__cluster_store_locked(t.c, 2)->leader_count, 1);
    assert_int_equal(pd__cluster_store_locked(t.c, 1)->leader_count, 0);
    assert_int_equal(pd__cluster_store_locked(t.c, 3)->region_count, 1);
    /* An unknown leader store fails the stream the way PD does. */
    pdt_region bad = r;
    bad.stores[1] = 9;
    bad.leader_store = 9;
    int type = pdt_region_hb(&t, &bad);
    assert_int_equal(type, PDPB__ERROR_TYPE__UNKNOWN);
    /* A stale epoch is refused with a message, and nothing changes. */
    pdt_region stale = r;
    stale.conf_ver = 2;
    stale.leader_store = 3;
    assert_int_equal(pdt_region_hb(&t, &stale), PDPB__ERROR_TYPE__UNKNOWN);
    assert_int_equal(pd__cluster_store_locked(t.c, 2)->leader_count, 1);
    /* Zero peers and inverted ranges are invalid. */
    pdt_region inv = r;
    snprintf(inv.start, sizeof(inv.start), "z");
    snprintf(inv.end, sizeof(inv.end), "a");
    assert_int_equal(pdt_region_hb(&t, &inv), PDPB__ERROR_TYPE__UNKNOWN);
    /* Split: the new left region appears; counts follow. */
    pdt_region left = region3(200, "", "m", 1);
    left.version = 2;
    left.conf_ver = 3;
    assert_int_equal(pdt_region_hb(&t, &left), 0);
    assert_int_equal(pd__rt_count(&t.c->regions), 1); /* the old whole-range region overlapped */
    r.version = 2;
    snprintf(r.start, sizeof(r.start), "m");
    assert_int_equal(pdt_region_hb(&t, &r), 0);
    assert_int_equal(pd__rt_count(&t.c->regions), 2);
    assert_int_equal(pd__cluster_store_locked(t.c, 1)->region_count, 2);
    assert_int_equal(pd__cluster_store_locked(t.c, 1)->leader_count, 1);
    assert_int_equal(pd__cluster_store_locked(t.c, 2)->leader_count, 1);
    /* Pending peers are counted per store. */
    r.pending_peer = r.peer_ids[2];
    assert_int_equal(pdt_region_hb(&t, &r), 0);
    assert_int_equal(pd__cluster_store_locked(t.c, 3)->pending_count, 1);
    r.pending_peer = 0;
    assert_int_equal(pdt_region_hb(&t, &r), 0);
    assert_int_equal(pd__cluster_store_locked(t.c, 3)->pending_count, 0);
    pdt_close(&t);
}

static void test_ask_batch_split_allocates_fresh_ids_and_checks_the_epoch(void **state)
{
    (void)state;
    pdt_cluster t;
    pdt_open(&t, NULL);
    pdt_bootstrap(&t, 1, 2, 3);
    pdt_region r;
    pdt_region_get(&t, 2, &r);
    r.leader_store = 1;
    assert_int_equal(pdt_region_hb(&t, &r), 0);

    Metapb__Peer p = METAPB__PEER__INIT;
    p.id = 3;
    p.store_id = 1;
    Metapb__Peer *peers[] = {&p};
    Metapb__RegionEpoch e = METAPB__REGION_EPOCH__INIT;
    e.version = 1;
    e.conf_ver = 1;
    Metapb__Region m = METAPB__REGION__INIT;
    m.id = 2;
    m.region_epoch = &e;
    m.n_peers = 1;
    m.peers = peers;
    Pdpb__AskBatchSplitResponse resp = PDPB__ASK_BATCH_SPLIT_RESPONSE__INIT;
    pd_result res;
    assert_int_equal(pd__cluster_ask_batch_split(t.c, &m, 3, &resp, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
    assert_int_equal(resp.n_ids, 3);
    uint64_t seen[6];
    size_t n = 0;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(resp.ids[i]->n_new_peer_ids, 1);
        seen[n++] = resp.ids[i]->new_region_id;
        seen[n++] = resp.ids[i]->new_peer_ids[0];
    }
    for (size_t i = 0; i < n; i++) {
        assert_true(seen[i] > 100);
        for (size_t j = i + 1; j < n; j++)
            assert_true(seen[i] != seen[j]);
    }
    pd__ask_batch_split_free(&resp);
    /* Report the split: three new regions on the left, the original keeps the right. */
    Metapb__Region parts[4];
    Metapb__Region *pp[4];
    Metapb__RegionEpoch e2 = METAPB__REGION_EPOCH__INIT;
    e2.version = 4;
    e2.conf_ver = 1;
    const char *bounds[] = {"", "b", "d", "f", ""};
    Metapb__Peer np[4];
    Metapb__Peer *npp[4][1];
    for (int i = 0; i < 4; i++) {
        metapb__region__init(&parts[i]);
        parts[i].id = i < 3 ? seen[2 * i] : 2;
        parts[i].start_key.data = (uint8_t *)bounds[i];
        parts[i].start_key.len = strlen(bounds[i]);
        parts[i].end_key.data = (uint8_t *)bounds[i + 1];
        parts[i].end_key.len = strlen(bounds[i + 1]);
        parts[i].region_epoch = &e2;
        metapb__peer__init(&np[i]);
        np[i].id = i < 3 ? seen[2 * i + 1] : 3;
        np[i].store_id = 1;
        npp[i][0] = &np[i];
        parts[i].n_peers = 1;
        parts[i].peers = npp[i];
        pp[i] = &parts[i];
    }
    assert_int_equal(pd__cluster_report_batch_split(t.c, pp, 4, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__OK);
    assert_int_equal(pd__rt_count(&t.c->regions), 4);
    pd_region *c1 = pd__rt_find(&t.c->regions, tkv_slice_str("c"));
    assert_non_null(c1);
    assert_int_equal(pd__region_id(c1), seen[2]);
    assert_int_equal(pd__region_leader_store(c1), 1);
    /* The old epoch is now stale for AskBatchSplit. */
    assert_int_equal(pd__cluster_ask_batch_split(t.c, &m, 1, &resp, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__UNKNOWN);
    assert_non_null(strstr(res.msg, "invalid region epoch"));
    /* A repeated split at a boundary would report an empty region: refused. */
    Metapb__Region empty = parts[1];
    empty.end_key = empty.start_key;
    Metapb__Region *bad_parts[] = {&empty, &parts[1]};
    assert_int_equal(pd__cluster_report_batch_split(t.c, bad_parts, 2, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__UNKNOWN);
    assert_int_equal(pd__rt_count(&t.c->regions), 4);
    /* Not adjacent: refused. */
    pp[1] = &parts[2];
    assert_int_equal(pd__cluster_report_batch_split(t.c, pp, 4, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__UNKNOWN);
    assert_int_equal(pd__cluster_ask_batch_split(t.c, NULL, 1, &resp, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__REGION_NOT_FOUND);
    assert_int_equal(pd__cluster_ask_batch_split(t.c, &m, 0, &resp, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__INVALID_VALUE);
    pdt_close(&t);
}

static void test_offline_store_becomes_tombstone_when_empty(void **state)
{
    (void)state;
    pdt_cluster t;
    pdt_open(&t, NULL);
    pdt_bootstrap(&t, 1, 2, 3);
    pdt_put_store(&t, 4, NULL);
    pd_result res;
    assert_int_equal(pd__cluster_set_store_state(t.c, 4, METAPB__STORE_STATE__Offline, false, &res),
                     0);
    assert_int_equal(pd__cluster_store_locked(t.c, 4)->meta->state, METAPB__STORE_STATE__Offline);
    pd__coordinator_tick(t.c);
    assert_int_equal(pd__cluster_store_locked(t.c, 4)->meta->state, METAPB__STORE_STATE__Tombstone);
    /* Tombstone is final. */
    assert_int_equal(pd__cluster_set_store_state(t.c, 4, METAPB__STORE_STATE__Up, false, &res), 0);
    assert_int_equal(res.type, PDPB__ERROR_TYPE__INVALID_VALUE);
    pdt_close(&t);
}

static void test_config_settings_are_validated_and_applied_atomically(void **state)
{
    (void)state;
    pdt_cluster t;
    pdt_open(&t, NULL);
    char err[TKV_ERRMSG_LEN];
    json_t *o = json_pack("{s:s, s:i}", "max-store-down-time", "5s", "replication.max-replicas", 5);
    assert_int_equal(pd__cluster_apply_config(t.c, o, NULL, err), 0);
    json_decref(o);
    pd_sched_cfg cfg;
    pd__cluster_get_config(t.c, &cfg);
    assert_int_equal(cfg.max_store_down_time_ms, 5000);
    assert_int_equal(cfg.max_replicas, 5);
    /* One bad key leaves everything unchanged. */
    o = json_pack("{s:i, s:s}", "leader-schedule-limit", 9, "max-store-down-time", "soon");
    assert_int_not_equal(pd__cluster_apply_config(t.c, o, NULL, err), 0);
    json_decref(o);
    pd__cluster_get_config(t.c, &cfg);
    assert_int_equal(cfg.leader_schedule_limit, 4);
    o = json_pack("{s:i}", "no-such-thing", 1);
    assert_int_equal(pd__cluster_apply_config(t.c, o, NULL, err), TKV_ENOTFOUND);
    json_decref(o);
    /* Section form, as POST /pd/api/v1/config/schedule sends it. */
    o = json_pack("{s:s}", "location-labels", "zone,host");
    assert_int_equal(pd__cluster_apply_config(t.c, o, "replication", err), 0);
    json_decref(o);
    pd__cluster_get_config(t.c, &cfg);
    assert_string_equal(cfg.location_labels, "zone,host");
    json_t *j = pd__sched_cfg_json(&cfg, 1);
    assert_string_equal(json_string_value(json_object_get(j, "max-store-down-time")), "5s");
    assert_string_equal(json_string_value(json_object_get(j, "split-merge-interval")), "1h0m0s");
    json_decref(j);
    char buf[32];
    pd__fmt_go_duration(90500, buf, sizeof(buf));
    assert_string_equal(buf, "1m30.5s");
    pd__fmt_go_duration(30 * 60 * 1000, buf, sizeof(buf));
    assert_string_equal(buf, "30m0s");
    pd__fmt_go_duration(10, buf, sizeof(buf));
    assert_string_equal(buf, "10ms");
    pdt_close(&t);
}

static void test_cluster_state_survives_reopening_the_storage(void **state)
{
    (void)state;
    char dir[] = "/tmp/pd-cluster-XXXXXX";
    pdt_mkdtemp(dir);
    char err[TKV_ERRMSG_LEN];
    uint64_t now = 5000;
    pd_sched_cfg def;
    pd__sched_cfg_default(&def);
    {
        pd_storage *st;
        assert_int_equal(pd__storage_open(dir, &st, err), 0);
        pd_id_alloc ids;
        assert_int_equal(pd__id_init(&ids, st, 0), 0);
        pd_cluster *c;
        assert_int_equal(pd__cluster_new(st, &ids, 7, &def, pdt_clock_read, &now, &c), 0);
        pdt_cluster t = {.st = st, .c = c};
        pdt_bootstrap(&t, 1, 100, 101);
        pdt_put_store(&t, 2, "zone=a");
        pdt_put_store(&t, 3, "zone=b");
        pdt_region r = region3(100, "m", "", 3);
        r.peer_ids[0] = 101;
        r.version = 2;
        assert_int_equal(pdt_region_hb(&t, &r), 0);
        pdt_region l = region3(200, "", "m", 2);
        l.version = 2;
        assert_int_equal(pdt_region_hb(&t, &l), 0);
        uint64_t sp;
        assert_int_equal(pd__cluster_update_gc_safe_point(c, 12345, &sp), 0);
        assert_int_equal(sp, 12345);
        assert_int_equal(pd__cluster_update_gc_safe_point(c, 100, &sp), 0);
        assert_int_equal(sp, 12345);
        json_t *o = json_pack("{s:s}", "max-store-down-time", "7s");
        assert_int_equal(pd__cluster_apply_config(c, o, NULL, err), 0);
        json_decref(o);
        pd__cluster_free(c);
        pd__id_deinit(&ids);
        pd__storage_close(st);
    }
    {
        pd_storage *st;
        assert_int_equal(pd__storage_open(dir, &st, err), 0);
        pd_id_alloc ids;
        assert_int_equal(pd__id_init(&ids, st, 0), 0);
        pd_cluster *c;
        assert_int_equal(pd__cluster_new(st, &ids, 7, &def, pdt_clock_read, &now, &c), 0);
        assert_true(c->bootstrapped);
        assert_int_equal(c->nstores, 3);
        assert_string_equal(pd__store_label(pd__cluster_store_locked(c, 3), "zone"), "b");
        assert_int_equal(pd__rt_count(&c->regions), 2);
        pd_region *r = pd__rt_find(&c->regions, tkv_slice_str("x"));
        assert_non_null(r);
        assert_int_equal(pd__region_id(r), 100);
        assert_int_equal(pd__region_leader_store(r), 3);
        assert_int_equal(pd__region_version(r), 2);
        assert_int_equal(pd__region_id(pd__rt_find(&c->regions, tkv_slice_str("a"))), 200);
        assert_int_equal(pd__cluster_store_locked(c, 2)->leader_count, 1);
        assert_int_equal(pd__cluster_store_locked(c, 1)->region_count, 2);
        assert_int_equal(c->gc_safe_point, 12345);
        assert_int_equal(c->cfg.max_store_down_time_ms, 7000);
        /* Stores get a fresh grace period: not Down right after the restart. */
        assert_int_equal(pd__store_status(pd__cluster_store_locked(c, 2), now, &c->cfg),
                         PD_STORE_UP);
        pd__cluster_free(c);
        pd__id_deinit(&ids);
        pd__storage_close(st);
    }
    pdt_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bootstrap_once_with_one_peer_on_the_store),
        cmocka_unit_test(test_put_store_rejects_duplicate_addresses_and_tombstones),
        cmocka_unit_test(test_store_heartbeat_of_unknown_store_is_an_error),
        cmocka_unit_test(test_region_heartbeats_update_the_tree_and_store_counts),
        cmocka_unit_test(test_ask_batch_split_allocates_fresh_ids_and_checks_the_epoch),
        cmocka_unit_test(test_offline_store_becomes_tombstone_when_empty),
        cmocka_unit_test(test_config_settings_are_validated_and_applied_atomically),
        cmocka_unit_test(test_cluster_state_survives_reopening_the_storage),
        cmocka_unit_test(test_store_certificate_name_is_recorded_from_tls_and_binds_the_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
