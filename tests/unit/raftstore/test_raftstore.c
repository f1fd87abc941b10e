/*
 * test_raftstore.c: one store without PD (standalone) on in-memory engines: proposals
 * through Raft and the apply thread, reads under the leader lease, restarts from the
 * persisted raft and apply states, and the region errors the kv seam answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/codec.h"
#include "base/keys.h"
#include "base/metrics.h"
#include "raftstore/rstore_int.h"
#include "rs_testutil.h"

typedef struct single {
    eng_db *kv, *raft;
    char dir[256];
    rstore *rs;
    stor_kv *seam;
} single;

static void single_start(single *s)
{
    rstore_opts o;
    rstore_opts_init(&o);
    o.kv = s->kv;
    o.raft = s->raft;
    o.snap_dir = s->dir;
    o.raft_base_tick_ms = 20;
    char err[TKV_ERRMSG_LEN];
    int rc = rstore_open(&o, &s->rs, err);
    if (rc != 0)
        fprintf(stderr, "# rstore_open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(rstore_start(s->rs, "127.0.0.1:1", NULL, err), 0);
    assert_int_equal(rstore_kv_new(s->rs, &s->seam), 0);
}

static void single_stop(single *s)
{
    rstore_stop(s->rs);
    stor_kv_free(s->seam);
    rstore_free(s->rs);
    s->rs = NULL;
    s->seam = NULL;
}

static void single_open(single *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(eng_mem_open(NULL, &s->kv), 0);
    assert_int_equal(eng_mem_open(NULL, &s->raft), 0);
    rs_tmpdir(s->dir, sizeof(s->dir));
    single_start(s);
}

static void single_close(single *s)
{
    single_stop(s);
    eng_close(s->kv);
    eng_close(s->raft);
    rs_rmtree(s->dir);
    tkv_metrics_reset();
}

static bool is_leader(void *arg)
{
    single *s = arg;
    rstore_region_info info;
    return rstore_region_info_get(s->rs, 1, 1000, &info) == 0 && info.is_leader;
}

/* Writes once the region has a leader. */
static void put_ok(single *s, const char *k, const char *v)
{
    stor_ctx ctx = rs_ctx(1);
    rs_result r;
    assert_int_equal(rs_put(s->seam, &ctx, k, v, &r), 0);
    if (r.rerr)
        fprintf(stderr, "# put %s: %s\n", k, r.rerr->message);
    assert_null(r.rerr);
    assert_int_equal(r.rc, 0);
    rs_result_deinit(&r);
}

static void get_expect(single *s, const char *k, const char *v)
{
    stor_ctx ctx = rs_ctx(1);
    rs_result r;
    assert_int_equal(rs_get(s->seam, &ctx, k, &r), 0);
    assert_null(r.rerr);
    assert_int_equal(r.rc, 0);
    if (v == NULL) {
        assert_false(r.found);
    } else {
        assert_true(r.found);
        assert_int_equal(r.value.len, strlen(v));
        assert_memory_equal(r.value.data, v, r.value.len);
    }
    rs_result_deinit(&r);
}

static void test_single_store_elects_itself_and_serves_writes(void **state)
{
    (void)state;
    single s;
    single_open(&s);
    assert_true(rs_wait_for(is_leader, &s, 5000));
    assert_int_equal(rstore_store_id(s.rs), 1);
    char k[32], v[32];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        snprintf(v, sizeof(v), "v%d", i);
        put_ok(&s, k, v);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        snprintf(v, sizeof(v), "v%d", i);
        get_expect(&s, k, v);
    }
    put_ok(&s, "k000", NULL);
    get_expect(&s, "k000", NULL);
    get_expect(&s, "absent", NULL);
    /* The data lives under TiKV's 'z' prefix in the kv engine. */
    tkv_buf val;
    tkv_buf_init(&val);
    bool found;
    assert_int_equal(eng_get(s.kv, ENG_CF_DEFAULT, tkv_slice_str("zk001"), &val, &found), 0);
    assert_true(found);
    assert_memory_equal(val.data, "v1", 2);
    tkv_buf_deinit(&val);
    single_close(&s);
}

static void test_restart_recovers_data_and_apply_index(void **state)
{
    (void)state;
    single s;
    single_open(&s);
    assert_true(rs_wait_for(is_leader, &s, 5000));
    put_ok(&s, "a", "1");
    put_ok(&s, "b", "2");
    rstore_region_info before;
    assert_int_equal(rstore_region_info_get(s.rs, 1, 1000, &before), 0);
    single_stop(&s);
    single_start(&s);
    assert_true(rs_wait_for(is_leader, &s, 5000));
    rstore_region_info after;
    assert_int_equal(rstore_region_info_get(s.rs, 1, 1000, &after), 0);
    assert_true(after.applied_index >= before.applied_index);
    assert_true(after.term > before.term);
    get_expect(&s, "a", "1");
    get_expect(&s, "b", "2");
    put_ok(&s, "c", "3");
    get_expect(&s, "c", "3");
    single_close(&s);
}

static void test_region_errors_write_nothing(void **state)
{
    (void)state;
    single s;
    single_open(&s);
    assert_true(rs_wait_for(is_leader, &s, 5000));
    rs_result r;
    /* A region this store does not have. */
    stor_ctx ctx = rs_ctx(999);
    assert_int_equal(rs_put(s.seam, &ctx, "x", "1", &r), 0);
    assert_non_null(r.rerr);
    assert_non_null(r.rerr->region_not_found);
    rs_result_deinit(&r);
    assert_int_equal(rs_get(s.seam, &ctx, "x", &r), 0);
    assert_non_null(r.rerr);
    assert_non_null(r.rerr->region_not_found);
    rs_result_deinit(&r);
    /* A stale epoch. */
    ctx = rs_ctx(1);
    ctx.has_epoch = true;
    ctx.conf_ver = 1;
    ctx.version = 0;
    assert_int_equal(rs_put(s.seam, &ctx, "x", "1", &r), 0);
    assert_non_null(r.rerr);
    assert_non_null(r.rerr->epoch_not_match);
    assert_int_equal(r.rerr->epoch_not_match->n_current_regions, 1);
    assert_int_equal(r.rerr->epoch_not_match->current_regions[0]->id, 1);
    rs_result_deinit(&r);
    /* Another store. */
    ctx = rs_ctx(1);
    ctx.has_peer = true;
    ctx.store_id = 77;
    assert_int_equal(rs_put(s.seam, &ctx, "x", "1", &r), 0);
    assert_non_null(r.rerr);
    assert_non_null(r.rerr->store_not_match);
    assert_int_equal(r.rerr->store_not_match->request_store_id, 77);
    assert_int_equal(r.rerr->store_not_match->actual_store_id, 1);
    rs_result_deinit(&r);
    /* An entry over raft-entry-max-size (8 MiB by default). */
    size_t big = 9u << 20;
    char *value = malloc(big);
    memset(value, 'v', big);
    stor_modify m = {.op = STOR_MODIFY_PUT,
                     .cf = ENG_CF_DEFAULT,
                     .key = tkv_slice_str("x"),
                     .value = tkv_slice_of(value, big)};
    ctx = rs_ctx(1);
    assert_int_equal(rs_write(s.seam, &ctx, &m, 1, &r), 0);
    assert_non_null(r.rerr);
    assert_non_null(r.rerr->raft_entry_too_large);
    assert_int_equal(r.rerr->raft_entry_too_large->region_id, 1);
    rs_result_deinit(&r);
    free(value);
    /* An empty batch is not accepted at all. */
    assert_int_equal(stor_kv_write(s.seam, &ctx, &m, 0, NULL, NULL), -EINVAL);
    get_expect(&s, "x", NULL);
    single_close(&s);
}

static void test_delete_range_and_cfs(void **state)
{
    (void)state;
    single s;
    single_open(&s);
    assert_true(rs_wait_for(is_leader, &s, 5000));
    stor_modify ms[4] = {
        {.op = STOR_MODIFY_PUT,
         .cf = ENG_CF_DEFAULT,
         .key = tkv_slice_str("r1"),
         .value = tkv_slice_str("a")},
        {.op = STOR_MODIFY_PUT,
         .cf = ENG_CF_DEFAULT,
         .key = tkv_slice_str("r2"),
         .value = tkv_slice_str("b")},
        {.op = STOR_MODIFY_PUT,
         .cf = ENG_CF_DEFAULT,
         .key = tkv_slice_str("r3"),
         .value = tkv_slice_str("c")},
        {.op = STOR_MODIFY_PUT,
         .cf = ENG_CF_LOCK,
         .key = tkv_slice_str("r2"),
         .value = tkv_slice_str("lock")},
    };
    stor_ctx ctx = rs_ctx(1);
    rs_result r;
    assert_int_equal(rs_write(s.seam, &ctx, ms, 4, &r), 0);
    assert_null(r.rerr);
    rs_result_deinit(&r);
    stor_modify dr = {.op = STOR_MODIFY_DELETE_RANGE,
                      .cf = ENG_CF_DEFAULT,
                      .key = tkv_slice_str("r2"),
                      .end_key = tkv_slice_str("r3")};
    assert_int_equal(rs_write(s.seam, &ctx, &dr, 1, &r), 0);
    assert_null(r.rerr);
    rs_result_deinit(&r);
    get_expect(&s, "r1", "a");
    get_expect(&s, "r2", NULL);
    get_expect(&s, "r3", "c");
    tkv_buf val;
    tkv_buf_init(&val);
    bool found;
    assert_int_equal(eng_get(s.kv, ENG_CF_LOCK, tkv_slice_str("zr2"), &val, &found), 0);
    assert_true(found);
    tkv_buf_deinit(&val);
    /* An empty end deletes to the end of the region. */
    dr.key = tkv_slice_str("r");
    dr.end_key = tkv_slice_of(NULL, 0);
    assert_int_equal(rs_write(s.seam, &ctx, &dr, 1, &r), 0);
    assert_null(r.rerr);
    rs_result_deinit(&r);
    get_expect(&s, "r1", NULL);
    get_expect(&s, "r3", NULL);
    single_close(&s);
}

/* Split keys: raw keys as they are, MVCC keys without their timestamp, so every version of a
 * transactional key stays in one region. */
static void test_split_check_picks_valid_boundaries(void **state)
{
    (void)state;
    eng_db *db;
    assert_int_equal(eng_mem_open(NULL, &db), 0);
    eng_batch *b;
    assert_int_equal(eng_batch_new(db, &b), 0);
    char value[1024];
    memset(value, 'v', sizeof(value));
    tkv_buf k;
    tkv_buf_init(&k);
    /* 64 raw keys of about 1 KiB in default. */
    for (int i = 0; i < 64; i++) {
        char raw[16];
        snprintf(raw, sizeof(raw), "r%04d", i);
        tkv_buf_reset(&k);
        assert_int_equal(tkv_keys_data_key(&k, tkv_slice_str(raw)), 0);
        assert_int_equal(
            eng_batch_put(b, ENG_CF_DEFAULT, tkv_buf_slice(&k), tkv_slice_of(value, sizeof(value))),
            0);
    }
    /* 64 transactional keys, three versions each, in write. */
    for (int i = 0; i < 64; i++) {
        char user[16];
        snprintf(user, sizeof(user), "t%04d", i);
        for (uint64_t ts = 1; ts <= 3; ts++) {
            tkv_buf_reset(&k);
            assert_int_equal(tkv_buf_append_u8(&k, 'z'), 0);
            assert_int_equal(tkv_keys_mvcc_encode(&k, tkv_slice_str(user)), 0);
            assert_int_equal(tkv_keys_append_ts(&k, ts * 10), 0);
            assert_int_equal(
                eng_batch_put(b, ENG_CF_WRITE, tkv_buf_slice(&k), tkv_slice_of(value, 400)), 0);
        }
    }
    assert_int_equal(eng_write(db, b, false), 0);
    eng_batch_free(b);
    rstore s;
    memset(&s, 0, sizeof(s));
    rstore_opts_init(&s.opts);
    s.opts.kv = db;
    s.opts.region_split_size = 8 * 1024;
    s.opts.region_max_size = 12 * 1024;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    Metapb__Region region = METAPB__REGION__INIT;
    region.region_epoch = &ep;
    rstore_split_check c;
    rstore__split_check(&s, &region, false, &c);
    assert_true(c.size_bytes > 64 * 1024);
    assert_int_equal(c.keys, 64 + 64 * 3);
    assert_true(c.n_split_keys >= 2);
    size_t raw = 0, txn = 0;
    for (size_t i = 0; i < c.n_split_keys; i++) {
        tkv_slice key = tkv_buf_slice(&c.split_keys[i]);
        if (i > 0)
            assert_true(tkv_slice_cmp(tkv_buf_slice(&c.split_keys[i - 1]), key) < 0);
        if (key.data[0] == 'r') {
            raw++;
            assert_int_equal(key.len, 5); /* a raw key, unchanged */
        } else {
            txn++;
            /* An encoded user key without a timestamp: decodes completely. */
            tkv_slice in = key;
            tkv_buf user;
            tkv_buf_init(&user);
            assert_int_equal(tkv_codec_decode_bytes(&in, &user), 0);
            assert_int_equal(in.len, 0);
            assert_int_equal(user.len, 5);
            assert_int_equal(user.data[0], 't');
            tkv_buf_deinit(&user);
        }
    }
    assert_true(raw > 0 && txn > 0);
    for (size_t i = 0; i < c.n_split_keys; i++)
        tkv_buf_deinit(&c.split_keys[i]);
    tkv_free(c.split_keys);
    /* A small region is not split unless forced, and then in two. */
    s.opts.region_max_size = 1u << 30;
    rstore__split_check(&s, &region, false, &c);
    assert_int_equal(c.n_split_keys, 0);
    rstore__split_check(&s, &region, true, &c);
    assert_int_equal(c.n_split_keys, 1);
    tkv_buf_deinit(&c.split_keys[0]);
    tkv_free(c.split_keys);
    tkv_buf_deinit(&k);
    eng_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_store_elects_itself_and_serves_writes),
        cmocka_unit_test(test_restart_recovers_data_and_apply_index),
        cmocka_unit_test(test_region_errors_write_nothing),
        cmocka_unit_test(test_delete_range_and_cfs),
        cmocka_unit_test(test_split_check_picks_valid_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
