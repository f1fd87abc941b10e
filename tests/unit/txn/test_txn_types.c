/*
 * test_txn_types.c: Lock and Write records in TiKV's byte formats, MVCC keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/codec.h"
#include "storage/txn_types.h"

static tkv_slice S(const char *s)
{
    return tkv_slice_str(s);
}

static void test_lock_encodes_tikv_bytes(void **state)
{
    (void)state;
    txn_lock l;
    txn_lock_init(&l, TXN_LOCK_PUT, S("pk"), 1, 10);
    l.has_short_value = true;
    l.short_value = S("v");
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(txn_lock_encode(&l, &b), 0);
    /* type, compact bytes (zigzag length 2 = 4), varint start_ts, varint ttl, 'v' len value */
    const uint8_t want[] = {'P', 4, 'p', 'k', 1, 10, 'v', 1, 'v'};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    /* for_update_ts, txn_size and min_commit_ts are 8-byte big-endian after their prefix. */
    tkv_buf_reset(&b);
    l.has_short_value = false;
    l.type = TXN_LOCK_PESSIMISTIC;
    l.for_update_ts = 0x0102;
    assert_int_equal(txn_lock_encode(&l, &b), 0);
    const uint8_t want2[] = {'S', 4, 'p', 'k', 1, 10, 'f', 0, 0, 0, 0, 0, 0, 1, 2};
    assert_int_equal(b.len, sizeof(want2));
    assert_memory_equal(b.data, want2, sizeof(want2));
    tkv_buf_deinit(&b);
}

static void test_lock_round_trips_every_field(void **state)
{
    (void)state;
    tkv_slice secs[2] = {S("s1"), S("")};
    uint64_t rts[3] = {5, 6, UINT64_MAX};
    txn_lock l;
    txn_lock_init(&l, TXN_LOCK_DELETE, S("primary"), 1ULL << 40, 3000);
    l.has_short_value = true;
    l.short_value = S("");
    l.for_update_ts = 77;
    l.txn_size = 3;
    l.min_commit_ts = 1ULL << 41;
    l.use_async_commit = true;
    l.n_secondaries = 2;
    l.secondaries = secs;
    l.n_rollback_ts = 3;
    l.rollback_ts = rts;
    l.last_change_ts = 9;
    l.versions_to_last_change = 4;
    l.txn_source = 12;
    l.is_locked_with_conflict = true;
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(txn_lock_encode(&l, &b), 0);
    txn_lock d;
    assert_int_equal(txn_lock_decode(tkv_buf_slice(&b), &d), 0);
    assert_int_equal(d.type, TXN_LOCK_DELETE);
    assert_true(tkv_slice_eq(d.primary, S("primary")));
    assert_int_equal(d.start_ts, 1ULL << 40);
    assert_int_equal(d.ttl, 3000);
    assert_true(d.has_short_value);
    assert_int_equal(d.short_value.len, 0);
    assert_int_equal(d.for_update_ts, 77);
    assert_int_equal(d.txn_size, 3);
    assert_int_equal(d.min_commit_ts, 1ULL << 41);
    assert_true(d.use_async_commit);
    assert_int_equal(d.n_secondaries, 2);
    assert_true(tkv_slice_eq(d.secondaries[0], S("s1")));
    assert_int_equal(d.secondaries[1].len, 0);
    assert_int_equal(d.n_rollback_ts, 3);
    assert_int_equal(d.rollback_ts[2], UINT64_MAX);
    assert_int_equal(d.last_change_ts, 9);
    assert_int_equal(d.versions_to_last_change, 4);
    assert_int_equal(d.txn_source, 12);
    assert_true(d.is_locked_with_conflict);
    /* Re-encoding gives the same bytes. */
    tkv_buf b2;
    tkv_buf_init(&b2);
    assert_int_equal(txn_lock_encode(&d, &b2), 0);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    txn_lock_deinit(&d);
    tkv_buf_deinit(&b);
    tkv_buf_deinit(&b2);
}

static void test_lock_decode_rejects_bad_bytes_and_stops_at_unknown_fields(void **state)
{
    (void)state;
    txn_lock d;
    assert_int_equal(txn_lock_decode(S(""), &d), TKV_ECORRUPT);
    assert_int_equal(txn_lock_decode(S("X"), &d), TKV_ECORRUPT);
    const uint8_t truncated_primary[] = {'P', 20, 'a'};
    assert_int_equal(txn_lock_decode(tkv_slice_of(truncated_primary, 3), &d), TKV_ECORRUPT);
    const uint8_t short_value_too_long[] = {'P', 0, 1, 10, 'v', 5, 'a'};
    assert_int_equal(txn_lock_decode(tkv_slice_of(short_value_too_long, 7), &d), TKV_ECORRUPT);
    const uint8_t truncated_ts[] = {'P', 0, 1, 10, 'f', 0, 0};
    assert_int_equal(txn_lock_decode(tkv_slice_of(truncated_ts, 7), &d), TKV_ECORRUPT);
    const uint8_t huge_count[] = {'P', 0, 1, 10, 'a', 0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(txn_lock_decode(tkv_slice_of(huge_count, 9), &d), TKV_ECORRUPT);
    /* No ttl at all is a ttl of 0 (TiKV). */
    const uint8_t no_ttl[] = {'L', 0, 7};
    assert_int_equal(txn_lock_decode(tkv_slice_of(no_ttl, 3), &d), 0);
    assert_int_equal(d.ttl, 0);
    assert_int_equal(d.start_ts, 7);
    txn_lock_deinit(&d);
    /* An unknown prefix ends parsing; what came before stays. */
    const uint8_t future[] = {'P', 0, 1, 10, 't', 0, 0, 0, 0, 0, 0, 0, 9, 'Z', 1, 2, 3};
    assert_int_equal(txn_lock_decode(tkv_slice_of(future, sizeof(future)), &d), 0);
    assert_int_equal(d.txn_size, 9);
    txn_lock_deinit(&d);
}

static void test_write_round_trips_and_knows_protected_rollbacks(void **state)
{
    (void)state;
    txn_write w;
    txn_write_init(&w, TXN_WRITE_PUT, 456);
    w.has_short_value = true;
    w.short_value = S("short");
    w.has_overlapped_rollback = true;
    w.has_gc_fence = true;
    w.gc_fence = 421397468076048385ULL;
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(txn_write_encode(&w, &b), 0);
    txn_write d;
    assert_int_equal(txn_write_decode(tkv_buf_slice(&b), &d), 0);
    assert_int_equal(d.type, TXN_WRITE_PUT);
    assert_int_equal(d.start_ts, 456);
    assert_true(tkv_slice_eq(d.short_value, S("short")));
    assert_true(d.has_overlapped_rollback);
    assert_true(d.has_gc_fence);
    assert_int_equal(d.gc_fence, 421397468076048385ULL);
    assert_false(txn_write_check_gc_fence(&d, 421397468076048385ULL));
    assert_true(txn_write_check_gc_fence(&d, 421397468076048384ULL));
    /* 'R' start_ts 'v' 1 'p' */
    tkv_buf_reset(&b);
    txn_write_init_rollback(&w, 5, true);
    assert_int_equal(txn_write_encode(&w, &b), 0);
    const uint8_t want[] = {'R', 5, 'v', 1, 'p'};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    assert_int_equal(txn_write_decode(tkv_buf_slice(&b), &d), 0);
    assert_true(txn_write_is_protected(&d));
    txn_write_init_rollback(&w, 5, false);
    assert_false(txn_write_is_protected(&w));
    assert_int_equal(txn_write_decode(S(""), &d), TKV_ECORRUPT);
    assert_int_equal(txn_write_decode(S("Q"), &d), TKV_ECORRUPT);
    assert_int_equal(txn_write_decode(S("P"), &d), TKV_ECORRUPT);
    const uint8_t bad_fence[] = {'P', 1, 'F', 0};
    assert_int_equal(txn_write_decode(tkv_slice_of(bad_fence, 4), &d), TKV_ECORRUPT);
    /* Too long a short value is refused at encode time. */
    uint8_t big[256] = {0};
    txn_write_init(&w, TXN_WRITE_PUT, 1);
    w.has_short_value = true;
    w.short_value = tkv_slice_of(big, sizeof(big));
    assert_int_equal(txn_write_encode(&w, &b), -EINVAL);
    tkv_buf_deinit(&b);
}

static void test_mvcc_keys_order_newer_versions_first(void **state)
{
    (void)state;
    tkv_buf a, b, k1, k2, raw;
    tkv_buf_init(&a);
    tkv_buf_init(&b);
    tkv_buf_init(&k1);
    tkv_buf_init(&k2);
    tkv_buf_init(&raw);
    assert_int_equal(txn_key_encode(&a, S("key")), 0);
    assert_int_equal(txn_key_versioned(&k1, tkv_buf_slice(&a), 10), 0);
    assert_int_equal(txn_key_versioned(&k2, tkv_buf_slice(&a), 20), 0);
    assert_true(tkv_slice_cmp(tkv_buf_slice(&k2), tkv_buf_slice(&k1)) < 0);
    tkv_slice enc;
    uint64_t ts;
    assert_int_equal(txn_key_split_ts(tkv_buf_slice(&k1), &enc, &ts), 0);
    assert_int_equal(ts, 10);
    assert_true(tkv_slice_eq(enc, tkv_buf_slice(&a)));
    assert_int_equal(txn_key_decode(enc, &raw), 0);
    assert_true(tkv_slice_eq(tkv_buf_slice(&raw), S("key")));
    /* Every version of "key" sorts before "key\0". */
    assert_int_equal(txn_key_encode(&b, tkv_slice_of("key\0", 4)), 0);
    assert_true(tkv_slice_cmp(tkv_buf_slice(&k1), tkv_buf_slice(&b)) < 0);
    assert_int_equal(txn_key_decode(S("bad"), &raw), TKV_ECORRUPT);
    assert_int_equal(txn_ts_physical(txn_ts_compose(1234, 5)), 1234);
    tkv_buf_deinit(&a);
    tkv_buf_deinit(&b);
    tkv_buf_deinit(&k1);
    tkv_buf_deinit(&k2);
    tkv_buf_deinit(&raw);
}

static void test_lock_decode_survives_allocation_failure(void **state)
{
    (void)state;
    tkv_slice secs[1] = {S("s")};
    txn_lock l;
    txn_lock_init(&l, TXN_LOCK_PUT, S("p"), 1, 1);
    l.use_async_commit = true;
    l.n_secondaries = 1;
    l.secondaries = secs;
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(txn_lock_encode(&l, &b), 0);
    txn_lock d;
    tkv_alloc_fail_after(0);
    assert_int_equal(txn_lock_decode(tkv_buf_slice(&b), &d), -ENOMEM);
    tkv_alloc_fault_clear();
    assert_null(d.secondaries);
    tkv_buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_encodes_tikv_bytes),
        cmocka_unit_test(test_lock_round_trips_every_field),
        cmocka_unit_test(test_lock_decode_rejects_bad_bytes_and_stops_at_unknown_fields),
        cmocka_unit_test(test_write_round_trips_and_knows_protected_rollbacks),
        cmocka_unit_test(test_mvcc_keys_order_newer_versions_first),
        cmocka_unit_test(test_lock_decode_survives_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
