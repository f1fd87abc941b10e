/*
 * test_mvcc_scan.c: the MVCC scanner (src/storage/mvcc/scanner.c) over column families
 * written by hand, for what well-behaved writers never produce.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "base/keys.h"
#include "storage/mvcc/mvcc.h"

static void snap_cb(void *ud, int rc, Errorpb__Error *rerr, stor_snap *snap)
{
    assert_int_equal(rc, 0);
    assert_null(rerr);
    *(stor_snap **)ud = snap;
}

/* Puts @value under data key 'z' + @key in @cf. */
static void put_raw(eng_batch *b, eng_cf cf, tkv_slice key, tkv_slice value)
{
    tkv_buf k;
    tkv_buf_init(&k);
    assert_int_equal(tkv_buf_append_u8(&k, TKV_KEYS_DATA_PREFIX), 0);
    assert_int_equal(tkv_buf_append(&k, key.data, key.len), 0);
    assert_int_equal(eng_batch_put(b, cf, tkv_buf_slice(&k), value), 0);
    tkv_buf_deinit(&k);
}

/* Found by fuzz_mvcc_read: a write-CF key that sorts after every version of the scan's
 * current key but whose user key (the key without its last 8 bytes) sorts before it sent the
 * scan back to an earlier key, forever when nothing on the way was visible. Such a key is
 * corrupt: the scan reports TKV_ECORRUPT instead of going back. */
static void test_scan_refuses_a_write_key_that_goes_back(void **state)
{
    (void)state;
    eng_db *db;
    assert_int_equal(eng_mem_open(NULL, &db), 0);
    stor_kv *kv;
    assert_int_equal(stor_kv_local_new(db, NULL, &kv), 0);
    tkv_buf ek, lb;
    tkv_buf_init(&ek);
    tkv_buf_init(&lb);
    assert_int_equal(txn_key_encode(&ek, tkv_slice_of((const uint8_t *)"a", 1)), 0);
    /* A lock on "a" that blocks a read at ts 10. */
    txn_lock l;
    txn_lock_init(&l, TXN_LOCK_PUT, tkv_slice_of((const uint8_t *)"a", 1), 5, 3000);
    assert_int_equal(txn_lock_encode(&l, &lb), 0);
    eng_batch *b;
    assert_int_equal(eng_batch_new(db, &b), 0);
    put_raw(b, ENG_CF_LOCK, tkv_buf_slice(&ek), tkv_buf_slice(&lb));
    /* "b" + 7 bytes: after "a"'s versions, but its user key is the empty key. */
    put_raw(b, ENG_CF_WRITE, tkv_slice_of((const uint8_t *)"bxxxxxxx", 8),
            tkv_slice_of((const uint8_t *)"junk", 4));
    assert_int_equal(eng_write(db, b, false), 0);
    eng_batch_free(b);
    stor_ctx ctx;
    stor_ctx_from_pb(&ctx, NULL);
    ctx.region_id = 1;
    stor_snap *snap = NULL;
    assert_int_equal(stor_kv_snapshot(kv, &ctx, snap_cb, &snap), 0);
    assert_non_null(snap);
    mvcc_scan_opts so;
    memset(&so, 0, sizeof(so));
    so.ts = 10;
    mvcc_scanner *s;
    assert_int_equal(mvcc_scanner_new(snap, &so, &s), 0);
    tkv_buf key, value;
    tkv_buf_init(&key);
    tkv_buf_init(&value);
    mvcc_err e;
    mvcc_err_init(&e);
    bool done;
    /* First "a", locked; then not "a" again (before the fix: "a", "a", ... without end). */
    assert_int_equal(mvcc_scanner_next(s, &done, &key, &value, &e), 0);
    assert_false(done);
    assert_int_equal(e.kind, MVCC_E_KEY_IS_LOCKED);
    assert_memory_equal(key.data, ek.data, ek.len);
    assert_int_equal(mvcc_scanner_next(s, &done, &key, &value, &e), TKV_ECORRUPT);
    mvcc_err_deinit(&e);
    tkv_buf_deinit(&key);
    tkv_buf_deinit(&value);
    mvcc_scanner_free(s);
    stor_snap_release(snap);
    txn_lock_deinit(&l);
    tkv_buf_deinit(&lb);
    tkv_buf_deinit(&ek);
    stor_kv_free(kv);
    eng_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_refuses_a_write_key_that_goes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
