/*
 * test_rstore_state.c: the decoders of what raftstore persists and receives, without a
 * running store: RaftLocalState / RaftApplyState / RegionLocalState, the peer storage's load,
 * snapshot metadata and the snapshot file parser that both the receiver's check and the apply
 * thread's load run. Each refusal here is a case a fuzz target (tests/fuzz/raftstore) found
 * accepted before, after which the store crashed (apply aborts, region copies abort) or ran
 * Raft on a log whose terms go down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/keys.h"
#include "raftstore/rstore_int.h"
#include "rs_testutil.h"

/* ---- helpers ---------------------------------------------------------------------------- */

/* Region 9 of [@start, @end) with epoch (1, 1) and a peer 2 on store 1. */
static Metapb__Region *region_of(const char *start, const char *end)
{
    return rs_region(9, tkv_slice_of(start, strlen(start)), tkv_slice_of(end, strlen(end)), 1);
}

static void put(eng_db *db, eng_cf cf, tkv_slice key, tkv_slice value)
{
    assert_int_equal(rs_engine_put(db, cf, key, value), 0);
}

/* A store with only what the snapshot files use (snap_dir, no encryption). */
typedef struct snap_env {
    char dir[256];
    rstore *s;
    eng_db *kv;
    Metapb__Region *r; /* the region of the snapshot built */
    tkv_buf data;      /* its RaftSnapshotData */
    char path[512];    /* its file, at the received-snapshot path */
} snap_env;

static void snap_env_init(snap_env *e)
{
    rs_tmpdir(e->dir, sizeof(e->dir));
    e->s = tkv_xcalloc(1, sizeof(*e->s));
    e->s->snap_dir = e->dir;
    assert_int_equal(eng_mem_open(NULL, &e->kv), 0);
    e->r = NULL;
    tkv_buf_init(&e->data);
}

static void snap_env_deinit(snap_env *e)
{
    rstore__region_free(e->r);
    tkv_buf_deinit(&e->data);
    eng_close(e->kv);
    tkv_free(e->s);
    rs_rmtree(e->dir);
}

/* Puts data key 'z'+@key = @value into @cf of the env's kv engine. */
static void put_data(snap_env *e, eng_cf cf, const char *key, const char *value)
{
    tkv_buf k;
    tkv_buf_init(&k);
    assert_int_equal(tkv_keys_data_key(&k, tkv_slice_of(key, strlen(key))), 0);
    put(e->kv, cf, tkv_buf_slice(&k), tkv_slice_of(value, strlen(value)));
    tkv_buf_deinit(&k);
}

/* Builds a snapshot of region [@start, @end) from the env's kv engine (e->r, e->data,
 * e->path). */
static void build_snapshot(snap_env *e, const char *start, const char *end)
{
    e->r = region_of(start, end);
    assert_int_equal(rs_build_snapshot(e->s, e->kv, e->r, &e->data, e->path, sizeof(e->path)), 0);
}

static size_t read_all(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void write_all(const char *path, const uint8_t *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Re-encodes @data's metadata with @region (NULL: unchanged) and sizes and CRCs recomputed
 * over @file[0..n) cut into sections of @sizes (a sender that forges consistent metadata). */
static void forge_meta(tkv_buf *data, const Metapb__Region *region, const uint8_t *file,
                       const uint64_t sizes[3])
{
    RaftServerpb__RaftSnapshotData *sd =
        raft_serverpb__raft_snapshot_data__unpack(NULL, data->len, data->data);
    assert_non_null(sd);
    uint64_t off = 0;
    for (size_t i = 0; i < 3; i++) {
        sd->meta->cf_files[i]->size = sizes[i];
        sd->meta->cf_files[i]->checksum = rstore__crc32(0, file + off, sizes[i]);
        off += sizes[i];
    }
    sd->file_size = off;
    Metapb__Region *keep = sd->region;
    if (region)
        sd->region = (Metapb__Region *)region;
    rstore__pack(&sd->base, data);
    sd->region = keep;
    protobuf_c_message_free_unpacked(&sd->base, NULL);
}

/* ---- persisted states --------------------------------------------------------------------- */

static void test_states_round_trip(void **state)
{
    (void)state;
    tkv_buf v;
    tkv_buf_init(&v);
    rstore_raft_state rs = {.hs = {.term = 7, .vote = 3, .commit = 9}, .last_index = 12}, rs2;
    rstore__raft_state_encode(&rs, &v);
    assert_int_equal(rstore__raft_state_decode(tkv_buf_slice(&v), &rs2), 0);
    assert_memory_equal(&rs, &rs2, sizeof(rs));
    rstore_apply_state as = {.applied_index = 9,
                             .truncated_index = 5,
                             .truncated_term = 5,
                             .commit_index = 9,
                             .commit_term = 7},
                       as2;
    rstore__apply_state_encode(&as, &v);
    assert_int_equal(rstore__apply_state_decode(tkv_buf_slice(&v), &as2), 0);
    assert_memory_equal(&as, &as2, sizeof(as));
    Metapb__Region *r = region_of("a", "m"), *r2;
    int st;
    rstore__region_state_encode(r, RAFT_SERVERPB__PEER_STATE__Tombstone, &v);
    assert_int_equal(rstore__region_state_decode(tkv_buf_slice(&v), 9, &r2, &st), 0);
    assert_int_equal(st, RAFT_SERVERPB__PEER_STATE__Tombstone);
    assert_int_equal(r2->id, 9);
    rstore__region_free(r2);
    /* Under another region's key, it is not this region's state. */
    assert_int_equal(rstore__region_state_decode(tkv_buf_slice(&v), 10, &r2, &st), TKV_ECORRUPT);
    assert_null(r2);
    rstore__region_free(r);
    tkv_buf_deinit(&v);
}

static void test_raft_state_past_raft_limits_or_commit_past_last_is_refused(void **state)
{
    (void)state;
    const rstore_raft_state bad[] = {
        {.hs = {.term = RAFT_TERM_LIMIT, .commit = 5}, .last_index = 5},
        {.hs = {.term = 6, .commit = 5}, .last_index = UINT64_MAX},
        {.hs = {.term = 6, .commit = 9}, .last_index = 8},
    };
    tkv_buf v;
    tkv_buf_init(&v);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rstore_raft_state got;
        rstore__raft_state_encode(&bad[i], &v);
        assert_int_equal(rstore__raft_state_decode(tkv_buf_slice(&v), &got), TKV_ECORRUPT);
    }
    tkv_buf_deinit(&v);
}

static void test_apply_state_past_raft_limits_is_refused(void **state)
{
    (void)state;
    const rstore_apply_state bad[] = {
        {.applied_index = UINT64_MAX, .truncated_index = UINT64_MAX, .truncated_term = 5},
        {.applied_index = 9, .truncated_index = 5, .truncated_term = RAFT_TERM_LIMIT},
        {.applied_index = 9, .truncated_index = 10, .truncated_term = 5},
    };
    tkv_buf v;
    tkv_buf_init(&v);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rstore_apply_state got;
        rstore__apply_state_encode(&bad[i], &v);
        assert_int_equal(rstore__apply_state_decode(tkv_buf_slice(&v), &got), TKV_ECORRUPT);
    }
    tkv_buf_deinit(&v);
}

/* A region whose bytes carry an unknown field numbered 0 in a two-byte tag (0x82 0x00):
 * protobuf-c decodes it, keeps the field, and packs it back in a form it cannot decode. */
static const uint8_t region_with_field_zero[] = {
    0x08, 0x09,                         /* id 9 */
    0x22, 0x04, 0x08, 0x01, 0x10, 0x01, /* epoch (1, 1) */
    0x2a, 0x04, 0x08, 0x02, 0x10, 0x01, /* peer 2 on store 1 */
    0x82, 0x00, 0x01, 0x00,             /* field 0, length-delimited, 1 byte */
};

static void test_region_state_whose_region_does_not_pack_back_is_refused(void **state)
{
    (void)state;
    /* RegionLocalState { state = Normal, region = the bytes above } */
    uint8_t v[2 + sizeof(region_with_field_zero)];
    v[0] = 0x12;
    v[1] = (uint8_t)sizeof(region_with_field_zero);
    memcpy(v + 2, region_with_field_zero, sizeof(region_with_field_zero));
    eng_db *kv;
    assert_int_equal(eng_mem_open(NULL, &kv), 0);
    uint8_t key[11];
    tkv_keys_region_state_key(key, 9);
    put(kv, ENG_CF_RAFT, tkv_slice_of(key, sizeof(key)), tkv_slice_of(v, sizeof(v)));
    Metapb__Region *r;
    int st;
    bool found;
    /* Accepted before: the store then aborted copying the region (rstore__region_dup). */
    assert_int_equal(rstore__get_region_state(kv, 9, &r, &st, &found), TKV_ECORRUPT);
    assert_null(r);
    eng_close(kv);
}

/* Loads region 9's peer storage from @raft (raft state, entries) and @kv (apply state). */
static int load_ps(eng_db *kv, eng_db *raft)
{
    rstore *s = tkv_xcalloc(1, sizeof(*s));
    s->opts.kv = kv;
    s->opts.raft = raft;
    Metapb__Region *r = region_of("", "");
    rstore_peer_storage ps;
    rstore__ps_init(&ps, s, NULL, 9);
    int rc = rstore__ps_load(&ps, r);
    rstore__ps_deinit(&ps);
    rstore__region_free(r);
    tkv_free(s);
    return rc;
}

static void test_load_refuses_a_log_newer_than_its_hard_state(void **state)
{
    (void)state;
    eng_db *kv, *raft;
    assert_int_equal(eng_mem_open(NULL, &kv), 0);
    assert_int_equal(eng_mem_open(NULL, &raft), 0);
    eng_batch *kb, *rb;
    assert_int_equal(eng_batch_new(kv, &kb), 0);
    assert_int_equal(eng_batch_new(raft, &rb), 0);
    /* Truncated at 5 with term 8, but the hard state says term 6: Raft would campaign at term
     * 7 and append entries of term 7 after an entry of term 8. */
    rstore_apply_state as = {.applied_index = 5, .truncated_index = 5, .truncated_term = 8};
    rstore_raft_state rs = {.hs = {.term = 6, .commit = 5}, .last_index = 5};
    assert_int_equal(rstore__put_apply_state(kb, 9, &as), 0);
    assert_int_equal(rstore__put_raft_state(rb, 9, &rs), 0);
    assert_int_equal(eng_write(kv, kb, false), 0);
    assert_int_equal(eng_write(raft, rb, false), 0);
    assert_int_equal(load_ps(kv, raft), TKV_ECORRUPT);
    /* The same with the newer term on the last log entry instead. */
    as.truncated_term = 5;
    rs.last_index = 6;
    raft_entry e = {.term = 7, .index = 6};
    tkv_buf v;
    tkv_buf_init(&v);
    assert_int_equal(rstore__entry_encode(&e, &v), 0);
    uint8_t key[TKV_KEYS_RAFT_LOG_KEY_LEN];
    tkv_keys_raft_log_key(key, 9, 6);
    eng_batch_clear(kb);
    eng_batch_clear(rb);
    assert_int_equal(rstore__put_apply_state(kb, 9, &as), 0);
    assert_int_equal(rstore__put_raft_state(rb, 9, &rs), 0);
    assert_int_equal(
        eng_batch_put(rb, ENG_CF_DEFAULT, tkv_slice_of(key, sizeof(key)), tkv_buf_slice(&v)), 0);
    assert_int_equal(eng_write(kv, kb, false), 0);
    assert_int_equal(eng_write(raft, rb, false), 0);
    assert_int_equal(load_ps(kv, raft), TKV_ECORRUPT);
    /* With the hard state at term 7 the same log loads. */
    rs.hs.term = 7;
    eng_batch_clear(rb);
    assert_int_equal(rstore__put_raft_state(rb, 9, &rs), 0);
    assert_int_equal(eng_write(raft, rb, false), 0);
    assert_int_equal(load_ps(kv, raft), 0);
    tkv_buf_deinit(&v);
    eng_batch_free(kb);
    eng_batch_free(rb);
    eng_close(kv);
    eng_close(raft);
}

/* ---- snapshots ------------------------------------------------------------------------------ */

static void test_snapshot_round_trips_through_check_and_load(void **state)
{
    (void)state;
    snap_env e;
    snap_env_init(&e);
    put_data(&e, ENG_CF_DEFAULT, "b", "vb");
    put_data(&e, ENG_CF_LOCK, "c", "lock");
    put_data(&e, ENG_CF_WRITE, "d", "w");
    put_data(&e, ENG_CF_DEFAULT, "x", "outside");
    build_snapshot(&e, "a", "m");
    assert_int_equal(rstore__snap_check_file(e.s, e.path, tkv_buf_slice(&e.data)), 0);
    eng_batch *b;
    assert_int_equal(eng_batch_new(e.kv, &b), 0);
    assert_int_equal(rstore__snap_load_into(e.s, e.path, e.r, b), 0);
    assert_int_equal(eng_batch_count(b), 3 + 3); /* the range deletions, the three records */
    eng_batch_free(b);
    snap_env_deinit(&e);
}

static void test_snapshot_with_records_outside_its_region_is_refused(void **state)
{
    (void)state;
    snap_env e;
    snap_env_init(&e);
    put_data(&e, ENG_CF_DEFAULT, "b", "vb");
    put_data(&e, ENG_CF_DEFAULT, "k", "vk");
    Metapb__Region *narrow = region_of("a", "c");
    build_snapshot(&e, "a", "m");
    /* The metadata names a smaller region than the file holds; sizes and CRCs still match.
     * Accepted before, then the apply thread failed to load it and aborted. */
    uint8_t file[256];
    size_t n = read_all(e.path, file, sizeof(file));
    uint64_t sizes[3] = {n, 0, 0};
    forge_meta(&e.data, narrow, file, sizes);
    assert_int_equal(rstore__snap_check_file(e.s, e.path, tkv_buf_slice(&e.data)), TKV_ECORRUPT);
    eng_batch *b;
    assert_int_equal(eng_batch_new(e.kv, &b), 0);
    assert_int_equal(rstore__snap_load_into(e.s, e.path, narrow, b), TKV_ECORRUPT);
    eng_batch_free(b);
    rstore__region_free(narrow);
    snap_env_deinit(&e);
}

static void test_snapshot_with_malformed_records_and_forged_crcs_is_refused(void **state)
{
    (void)state;
    snap_env e;
    snap_env_init(&e);
    put_data(&e, ENG_CF_DEFAULT, "b", "vb");
    build_snapshot(&e, "a", "m");
    uint8_t file[256];
    size_t n = read_all(e.path, file, sizeof(file));
    /* A record whose key length runs past the end of the file. */
    file[n++] = ENG_CF_DEFAULT;
    file[n++] = 0x7f;
    file[n++] = 'b';
    write_all(e.path, file, n);
    uint64_t sizes[3] = {n, 0, 0};
    forge_meta(&e.data, NULL, file, sizes);
    assert_int_equal(rstore__snap_check_file(e.s, e.path, tkv_buf_slice(&e.data)), TKV_ECORRUPT);
    /* A lock record in the default CF's section. */
    n -= 3;
    file[0] = ENG_CF_LOCK;
    write_all(e.path, file, n);
    uint64_t sizes2[3] = {n, 0, 0};
    forge_meta(&e.data, NULL, file, sizes2);
    assert_int_equal(rstore__snap_check_file(e.s, e.path, tkv_buf_slice(&e.data)), TKV_ECORRUPT);
    /* The same record announced in the lock section is fine. */
    uint64_t sizes3[3] = {0, n, 0};
    forge_meta(&e.data, NULL, file, sizes3);
    assert_int_equal(rstore__snap_check_file(e.s, e.path, tkv_buf_slice(&e.data)), 0);
    snap_env_deinit(&e);
}

static void test_snapshot_meta_whose_region_does_not_pack_back_is_refused(void **state)
{
    (void)state;
    snap_env e;
    snap_env_init(&e);
    build_snapshot(&e, "", ""); /* an empty region: an empty file */
    /* A second region field, which protobuf merges into the first, carrying field 0. */
    uint8_t extra[2 + sizeof(region_with_field_zero)];
    extra[0] = 0x0a; /* RaftSnapshotData.region */
    extra[1] = (uint8_t)sizeof(region_with_field_zero);
    memcpy(extra + 2, region_with_field_zero, sizeof(region_with_field_zero));
    assert_int_equal(tkv_buf_append(&e.data, extra, sizeof(extra)), 0);
    /* Accepted before; the peer then aborted copying the region when it applied it. */
    assert_int_equal(rstore__snap_check_file(e.s, e.path, tkv_buf_slice(&e.data)), TKV_ECORRUPT);
    rstore_snap_meta m;
    assert_int_equal(rstore__snap_meta_decode(tkv_buf_slice(&e.data), &m), TKV_ECORRUPT);
    assert_null(m.region);
    snap_env_deinit(&e);
}

static int count_record(void *ud, eng_cf cf, tkv_slice key, tkv_slice value)
{
    (void)cf;
    (void)key;
    (void)value;
    (*(int *)ud)++;
    return 0;
}

static void test_snapshot_parser_gives_the_same_answer_byte_by_byte(void **state)
{
    (void)state;
    snap_env e;
    snap_env_init(&e);
    put_data(&e, ENG_CF_DEFAULT, "b", "a longer value than the others");
    put_data(&e, ENG_CF_WRITE, "c", "w");
    build_snapshot(&e, "", "");
    uint8_t file[256];
    size_t n = read_all(e.path, file, sizeof(file));
    rstore_snap_meta m;
    assert_int_equal(rstore__snap_meta_decode(tkv_buf_slice(&e.data), &m), 0);
    int whole = 0, bytewise = 0;
    rstore_snap_parser p;
    rstore__snap_parser_init(&p, m.region, &m, count_record, &whole);
    assert_int_equal(rstore__snap_parser_feed(&p, file, n), 0);
    assert_int_equal(rstore__snap_parser_finish(&p), 0);
    rstore__snap_parser_deinit(&p);
    rstore__snap_parser_init(&p, m.region, &m, count_record, &bytewise);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rstore__snap_parser_feed(&p, file + i, 1), 0);
    assert_int_equal(rstore__snap_parser_finish(&p), 0);
    rstore__snap_parser_deinit(&p);
    assert_int_equal(whole, 2);
    assert_int_equal(bytewise, 2);
    /* One byte short: a torn record. */
    int torn = 0;
    rstore__snap_parser_init(&p, m.region, NULL, count_record, &torn);
    assert_int_equal(rstore__snap_parser_feed(&p, file, n - 1), 0);
    assert_int_equal(rstore__snap_parser_finish(&p), TKV_ECORRUPT);
    rstore__snap_parser_deinit(&p);
    rstore__snap_meta_deinit(&m);
    snap_env_deinit(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states_round_trip),
        cmocka_unit_test(test_raft_state_past_raft_limits_or_commit_past_last_is_refused),
        cmocka_unit_test(test_apply_state_past_raft_limits_is_refused),
        cmocka_unit_test(test_region_state_whose_region_does_not_pack_back_is_refused),
        cmocka_unit_test(test_load_refuses_a_log_newer_than_its_hard_state),
        cmocka_unit_test(test_snapshot_round_trips_through_check_and_load),
        cmocka_unit_test(test_snapshot_with_records_outside_its_region_is_refused),
        cmocka_unit_test(test_snapshot_with_malformed_records_and_forged_crcs_is_refused),
        cmocka_unit_test(test_snapshot_meta_whose_region_does_not_pack_back_is_refused),
        cmocka_unit_test(test_snapshot_parser_gives_the_same_answer_byte_by_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
