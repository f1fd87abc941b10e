/*
 * test_kv.c: the storage seam: local writes and snapshots, context checks answered with
 * region errors, region-clipped iteration, region error constructors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "storage/kv.h"

typedef struct result {
    int calls;
    int rc;
    Errorpb__Error *rerr;
    stor_snap *snap;
} result;

static void on_write(void *ud, int rc, Errorpb__Error *rerr)
{
    result *r = ud;
    r->calls++;
    r->rc = rc;
    r->rerr = rerr;
}

static void on_snap(void *ud, int rc, Errorpb__Error *rerr, stor_snap *snap)
{
    result *r = ud;
    r->calls++;
    r->rc = rc;
    r->rerr = rerr;
    r->snap = snap;
}

typedef struct fixture {
    eng_db *db;
    stor_kv *kv;
    stor_ctx ctx;
} fixture;

static int setup(void **state)
{
    fixture *f = tkv_calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(eng_mem_open(NULL, &f->db), 0);
    stor_kv_local_opts o = {.region_id = 7, .store_id = 3};
    assert_int_equal(stor_kv_local_new(f->db, &o, &f->kv), 0);
    f->ctx = (stor_ctx){.region_id = 7,
                        .has_epoch = true,
                        .conf_ver = 1,
                        .version = 1,
                        .has_peer = true,
                        .store_id = 3};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    stor_kv_free(f->kv);
    eng_close(f->db);
    tkv_free(f);
    return 0;
}

static void put(fixture *f, const char *k, const char *v)
{
    stor_modify m = {.op = STOR_MODIFY_PUT,
                     .cf = ENG_CF_DEFAULT,
                     .key = tkv_slice_str(k),
                     .value = tkv_slice_str(v)};
    result r = {0};
    assert_int_equal(stor_kv_write(f->kv, &f->ctx, &m, 1, on_write, &r), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, 0);
    assert_null(r.rerr);
}

static stor_snap *snap(fixture *f)
{
    result r = {0};
    assert_int_equal(stor_kv_snapshot(f->kv, &f->ctx, on_snap, &r), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, 0);
    assert_non_null(r.snap);
    return r.snap;
}

static void test_local_write_is_visible_with_data_prefix(void **state)
{
    fixture *f = *state;
    put(f, "k1", "v1");
    /* The engine holds the key under TiKV's 'z' data prefix. */
    tkv_buf v;
    tkv_buf_init(&v);
    bool found;
    assert_int_equal(eng_get(f->db, ENG_CF_DEFAULT, tkv_slice_str("zk1"), &v, &found), 0);
    assert_true(found);
    stor_snap *s = snap(f);
    assert_int_equal(s->region->id, 7);
    assert_int_equal(stor_snap_get(s, ENG_CF_DEFAULT, tkv_slice_str("k1"), &v, &found), 0);
    assert_true(found);
    assert_true(tkv_slice_eq(tkv_buf_slice(&v), tkv_slice_str("v1")));
    /* Snapshot isolation: a later write is not seen. */
    put(f, "k1", "v2");
    assert_int_equal(stor_snap_get(s, ENG_CF_DEFAULT, tkv_slice_str("k1"), &v, &found), 0);
    assert_true(tkv_slice_eq(tkv_buf_slice(&v), tkv_slice_str("v1")));
    stor_snap_release(s);
    tkv_buf_deinit(&v);
}

static void test_batch_with_delete_and_delete_range(void **state)
{
    fixture *f = *state;
    put(f, "a", "1");
    put(f, "b", "2");
    put(f, "c", "3");
    put(f, "d", "4");
    stor_modify m[2] = {
        {.op = STOR_MODIFY_DELETE, .cf = ENG_CF_DEFAULT, .key = tkv_slice_str("a")},
        {.op = STOR_MODIFY_DELETE_RANGE,
         .cf = ENG_CF_DEFAULT,
         .key = tkv_slice_str("b"),
         .end_key = tkv_slice_str("d")},
    };
    result r = {0};
    assert_int_equal(stor_kv_write(f->kv, &f->ctx, m, 2, on_write, &r), 0);
    assert_int_equal(r.rc, 0);
    stor_snap *s = snap(f);
    stor_iter *it;
    assert_int_equal(
        stor_snap_iter_new(s, ENG_CF_DEFAULT, tkv_slice_of(NULL, 0), tkv_slice_of(NULL, 0), &it),
        0);
    assert_true(stor_iter_seek_to_first(it));
    assert_true(tkv_slice_eq(stor_iter_key(it), tkv_slice_str("d")));
    assert_false(stor_iter_next(it));
    assert_int_equal(stor_iter_status(it), 0);
    stor_iter_free(it);
    stor_snap_release(s);
    /* A range to an empty end deletes to the end of the region. */
    stor_modify all = {.op = STOR_MODIFY_DELETE_RANGE,
                       .cf = ENG_CF_DEFAULT,
                       .key = tkv_slice_of(NULL, 0),
                       .end_key = tkv_slice_of(NULL, 0)};
    assert_int_equal(stor_kv_write(f->kv, &f->ctx, &all, 1, on_write, &r), 0);
    s = snap(f);
    assert_int_equal(
        stor_snap_iter_new(s, ENG_CF_DEFAULT, tkv_slice_of(NULL, 0), tkv_slice_of(NULL, 0), &it),
        0);
    assert_false(stor_iter_seek_to_first(it));
    stor_iter_free(it);
    stor_snap_release(s);
    /* Malformed batches are not accepted and the callback does not run. */
    r.calls = 0;
    assert_int_equal(stor_kv_write(f->kv, &f->ctx, m, 0, on_write, &r), -EINVAL);
    stor_modify inverted = {.op = STOR_MODIFY_DELETE_RANGE,
                            .cf = ENG_CF_DEFAULT,
                            .key = tkv_slice_str("z"),
                            .end_key = tkv_slice_str("a")};
    assert_int_equal(stor_kv_write(f->kv, &f->ctx, &inverted, 1, on_write, &r), -EINVAL);
    assert_int_equal(r.calls, 0);
}

static void test_context_checks_answer_region_errors(void **state)
{
    fixture *f = *state;
    stor_modify m = {.op = STOR_MODIFY_PUT,
                     .cf = ENG_CF_DEFAULT,
                     .key = tkv_slice_str("k"),
                     .value = tkv_slice_str("v")};
    result r = {0};
    stor_ctx c = f->ctx;
    c.region_id = 99;
    assert_int_equal(stor_kv_write(f->kv, &c, &m, 1, on_write, &r), 0);
    assert_non_null(r.rerr);
    assert_non_null(r.rerr->region_not_found);
    assert_int_equal(r.rerr->region_not_found->region_id, 99);
    stor_rerr_free(r.rerr);

    c = f->ctx;
    c.store_id = 4;
    assert_int_equal(stor_kv_snapshot(f->kv, &c, on_snap, &r), 0);
    assert_non_null(r.rerr);
    assert_non_null(r.rerr->store_not_match);
    assert_int_equal(r.rerr->store_not_match->actual_store_id, 3);
    assert_null(r.snap);
    stor_rerr_free(r.rerr);

    stor_kv_local_set_epoch(f->kv, 1, 2);
    assert_int_equal(stor_kv_write(f->kv, &f->ctx, &m, 1, on_write, &r), 0);
    assert_non_null(r.rerr);
    assert_non_null(r.rerr->epoch_not_match);
    assert_int_equal(r.rerr->epoch_not_match->n_current_regions, 1);
    assert_int_equal(r.rerr->epoch_not_match->current_regions[0]->region_epoch->version, 2);
    stor_rerr_free(r.rerr);
    /* Nothing was written by the refused requests. */
    tkv_buf v;
    tkv_buf_init(&v);
    bool found;
    assert_int_equal(eng_get(f->db, ENG_CF_DEFAULT, tkv_slice_str("zk"), &v, &found), 0);
    assert_false(found);
    tkv_buf_deinit(&v);
}

static void test_iterator_is_clipped_to_region(void **state)
{
    (void)state;
    eng_db *db;
    assert_int_equal(eng_mem_open(NULL, &db), 0);
    eng_batch *b;
    assert_int_equal(eng_batch_new(db, &b), 0);
    const char *keys[] = {"za", "zb", "zc", "zd", "ze"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, tkv_slice_str(keys[i]), tkv_slice_str("v")),
                         0);
    /* A local key (0x01 prefix) and a key past every data key must never show up. */
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, tkv_slice_str("\x01x"), tkv_slice_str("v")), 0);
    assert_int_equal(eng_batch_put(b, ENG_CF_WRITE, tkv_slice_str("{x"), tkv_slice_str("v")), 0);
    assert_int_equal(eng_write(db, b, false), 0);
    eng_batch_free(b);

    Metapb__Region region = METAPB__REGION__INIT;
    region.id = 5;
    region.start_key = (ProtobufCBinaryData){1, (uint8_t *)"b"};
    region.end_key = (ProtobufCBinaryData){1, (uint8_t *)"d"};
    eng_snap *es;
    assert_int_equal(eng_snap_open(db, &es), 0);
    stor_snap *s;
    assert_int_equal(stor_snap_new(es, &region, &s), 0);
    assert_false(stor_snap_key_in_region(s, tkv_slice_str("a")));
    assert_true(stor_snap_key_in_region(s, tkv_slice_str("b")));
    assert_false(stor_snap_key_in_region(s, tkv_slice_str("d")));
    stor_iter *it;
    assert_int_equal(
        stor_snap_iter_new(s, ENG_CF_WRITE, tkv_slice_str("a"), tkv_slice_str("z"), &it), 0);
    assert_true(stor_iter_seek_to_first(it));
    assert_true(tkv_slice_eq(stor_iter_key(it), tkv_slice_str("b")));
    assert_true(stor_iter_next(it));
    assert_true(tkv_slice_eq(stor_iter_key(it), tkv_slice_str("c")));
    assert_false(stor_iter_next(it));
    assert_true(stor_iter_seek_for_prev(it, tkv_slice_str("zzz")));
    assert_true(tkv_slice_eq(stor_iter_key(it), tkv_slice_str("c")));
    stor_iter_free(it);
    /* Unbounded region end with unbounded upper: every data key from the start, no more. */
    region.end_key = (ProtobufCBinaryData){0, NULL};
    stor_snap *s2;
    assert_int_equal(eng_snap_open(db, &es), 0);
    assert_int_equal(stor_snap_new(es, &region, &s2), 0);
    assert_int_equal(
        stor_snap_iter_new(s2, ENG_CF_WRITE, tkv_slice_of(NULL, 0), tkv_slice_of(NULL, 0), &it), 0);
    int n = 0;
    for (bool ok = stor_iter_seek_to_first(it); ok; ok = stor_iter_next(it))
        n++;
    assert_int_equal(n, 4); /* b c d e */
    assert_true(stor_iter_seek_to_last(it));
    assert_true(tkv_slice_eq(stor_iter_key(it), tkv_slice_str("e")));
    stor_iter_free(it);
    stor_snap_release(s2);
    stor_snap_release(s);
    eng_close(db);
}

static void test_region_errors_pack_as_errorpb(void **state)
{
    (void)state;
    Metapb__Peer leader = METAPB__PEER__INIT;
    leader.id = 11;
    leader.store_id = 2;
    Errorpb__Error *e = stor_rerr_not_leader(5, &leader);
    assert_non_null(e);
    assert_non_null(e->not_leader->leader);
    assert_int_equal(e->not_leader->leader->store_id, 2);
    assert_non_null(strstr(e->message, "not leader"));
    uint8_t buf[256];
    size_t n = errorpb__error__pack(e, buf);
    Errorpb__Error *back = errorpb__error__unpack(NULL, n, buf);
    assert_non_null(back);
    assert_int_equal(back->not_leader->region_id, 5);
    errorpb__error__free_unpacked(back, NULL);
    stor_rerr_free(e);

    e = stor_rerr_key_not_in_region(tkv_slice_str("k"), NULL);
    assert_int_equal(e->key_not_in_region->key.len, 1);
    stor_rerr_free(e);
    e = stor_rerr_server_is_busy("too many", 20);
    assert_string_equal(e->server_is_busy->reason, "too many");
    assert_int_equal(e->server_is_busy->backoff_ms, 20);
    stor_rerr_free(e);
    e = stor_rerr_disk_full(3, "low space");
    assert_int_equal(e->disk_full->n_store_id, 1);
    assert_int_equal(e->disk_full->store_id[0], 3);
    stor_rerr_free(e);
    e = stor_rerr_raft_entry_too_large(4, 1 << 20);
    assert_int_equal(e->raft_entry_too_large->entry_size, 1 << 20);
    stor_rerr_free(e);
    e = stor_rerr_stale_command();
    assert_non_null(e->stale_command);
    stor_rerr_free(e);
    e = stor_rerr_message("region %d is splitting", 9);
    assert_string_equal(e->message, "region 9 is splitting");
    stor_rerr_free(e);
    stor_rerr_free(NULL);

    Kvrpcpb__Context pb = KVRPCPB__CONTEXT__INIT;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    ep.conf_ver = 3;
    ep.version = 4;
    pb.region_id = 8;
    pb.region_epoch = &ep;
    pb.peer = &leader;
    pb.replica_read = 1;
    pb.max_execution_duration_ms = 1000;
    stor_ctx c;
    stor_ctx_from_pb(&c, &pb);
    assert_int_equal(c.region_id, 8);
    assert_true(c.has_epoch && c.conf_ver == 3 && c.version == 4);
    assert_true(c.has_peer && c.store_id == 2 && c.peer_id == 11);
    assert_true(c.replica_read);
    assert_true(c.deadline_ms > 0);
    stor_ctx_from_pb(&c, NULL);
    assert_false(c.has_epoch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_write_is_visible_with_data_prefix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_with_delete_and_delete_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_checks_answer_region_errors, setup, teardown),
        cmocka_unit_test(test_iterator_is_clipped_to_region),
        cmocka_unit_test(test_region_errors_pack_as_errorpb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
