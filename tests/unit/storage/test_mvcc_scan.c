/*
 * test_mvcc_scan.c: the MVCC scanner (src/storage/mvcc/scanner.c) over column families
 * written by hand: what well-behaved writers never produce, locks interleaved with writes
 * (forward, reverse, key-only, bounds), and the work a scan does over a lock CF full of
 * deletion markers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <rocksdb/c.h>

#include "base/clock.h"
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

/* ---- a rocks engine with hand-written locks and writes ---------------------------------- */

typedef struct fx {
    char dir[64];
    eng_db *db;
    stor_kv *kv;
    stor_snap *snap;
} fx;

static void fx_open(fx *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tkv-test-mvcc-scan-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(eng_rocks_open(f->dir, NULL, &f->db, err), 0);
    assert_int_equal(stor_kv_local_new(f->db, NULL, &f->kv), 0);
}

/* Takes the snapshot scans read (after every write). */
static void fx_snap(fx *f)
{
    stor_ctx ctx;
    stor_ctx_from_pb(&ctx, NULL);
    ctx.region_id = 1;
    assert_int_equal(stor_kv_snapshot(f->kv, &ctx, snap_cb, &f->snap), 0);
    assert_non_null(f->snap);
}

static void fx_close(fx *f)
{
    stor_snap_release(f->snap);
    stor_kv_free(f->kv);
    eng_close(f->db);
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(eng_rocks_destroy(f->dir, NULL, err), 0);
    rmdir(f->dir);
}

static void encode_key(tkv_buf *out, const char *user)
{
    tkv_buf_reset(out);
    assert_int_equal(txn_key_encode(out, tkv_slice_of((const uint8_t *)user, strlen(user))), 0);
}

/* A PUT lock of @user by the transaction started at @start_ts. */
static void put_lock(eng_batch *b, const char *user, uint64_t start_ts)
{
    tkv_buf ek, lb;
    tkv_buf_init(&ek);
    tkv_buf_init(&lb);
    encode_key(&ek, user);
    txn_lock l;
    txn_lock_init(&l, TXN_LOCK_PUT, tkv_slice_of((const uint8_t *)user, strlen(user)), start_ts,
                  3000);
    assert_int_equal(txn_lock_encode(&l, &lb), 0);
    put_raw(b, ENG_CF_LOCK, tkv_buf_slice(&ek), tkv_buf_slice(&lb));
    txn_lock_deinit(&l);
    tkv_buf_deinit(&lb);
    tkv_buf_deinit(&ek);
}

/* Deletes the lock of @user (what commit and rollback do): a deletion marker in rocks. */
static void del_lock(eng_batch *b, const char *user)
{
    tkv_buf ek, k;
    tkv_buf_init(&ek);
    tkv_buf_init(&k);
    encode_key(&ek, user);
    assert_int_equal(tkv_buf_append_u8(&k, TKV_KEYS_DATA_PREFIX), 0);
    assert_int_equal(tkv_buf_append(&k, ek.data, ek.len), 0);
    assert_int_equal(eng_batch_delete(b, ENG_CF_LOCK, tkv_buf_slice(&k)), 0);
    tkv_buf_deinit(&k);
    tkv_buf_deinit(&ek);
}

/* A committed PUT of @user = @value (short value) at @commit_ts. */
static void put_write(eng_batch *b, const char *user, uint64_t start_ts, uint64_t commit_ts,
                      const char *value)
{
    tkv_buf ek, vk, wb;
    tkv_buf_init(&ek);
    tkv_buf_init(&vk);
    tkv_buf_init(&wb);
    encode_key(&ek, user);
    assert_int_equal(txn_key_versioned(&vk, tkv_buf_slice(&ek), commit_ts), 0);
    txn_write w;
    txn_write_init(&w, TXN_WRITE_PUT, start_ts);
    w.has_short_value = true;
    w.short_value = tkv_slice_of((const uint8_t *)value, strlen(value));
    assert_int_equal(txn_write_encode(&w, &wb), 0);
    put_raw(b, ENG_CF_WRITE, tkv_buf_slice(&vk), tkv_buf_slice(&wb));
    tkv_buf_deinit(&wb);
    tkv_buf_deinit(&vk);
    tkv_buf_deinit(&ek);
}

/* Scans @f's snapshot with @so to the end and writes what it returns into @out, one
 * "key=value" or "key!locked" per key, separated by spaces. Returns the scanner's lock-cursor
 * counters in @st (when not NULL). */
static void scan_all(fx *f, const mvcc_scan_opts *so, char *out, size_t cap, mvcc_scan_stats *st)
{
    mvcc_scanner *s;
    assert_int_equal(mvcc_scanner_new(f->snap, so, &s), 0);
    tkv_buf key, value, user;
    tkv_buf_init(&key);
    tkv_buf_init(&value);
    tkv_buf_init(&user);
    mvcc_err e;
    mvcc_err_init(&e);
    size_t len = 0;
    out[0] = '\0';
    for (;;) {
        bool done;
        assert_int_equal(mvcc_scanner_next(s, &done, &key, &value, &e), 0);
        if (done)
            break;
        tkv_buf_reset(&user);
        assert_int_equal(txn_key_decode(tkv_buf_slice(&key), &user), 0);
        int n;
        if (e.kind == MVCC_E_KEY_IS_LOCKED)
            n = snprintf(out + len, cap - len, "%s%.*s!locked", len ? " " : "", (int)user.len,
                         (const char *)user.data);
        else
            n = snprintf(out + len, cap - len, "%s%.*s=%.*s", len ? " " : "", (int)user.len,
                         (const char *)user.data, (int)value.len, (const char *)value.data);
        assert_true(n > 0 && (size_t)n < cap - len);
        len += (size_t)n;
    }
    if (st != NULL)
        *st = *mvcc_scanner_stats(s);
    mvcc_err_deinit(&e);
    tkv_buf_deinit(&user);
    tkv_buf_deinit(&value);
    tkv_buf_deinit(&key);
    mvcc_scanner_free(s);
}

/* Locks interleaved with writes, read at ts 10 with transaction 8's locks resolved:
 *   a: committed "va"                 b: only a lock at 7 (blocks)
 *   c: committed "vc", lock at 20     d: only a lock at 20 (newer: nothing to read)
 *   e: committed "ve", lock at 8      (resolved: bypassed)
 *   f: committed "vf", lock deleted   g: only a deleted lock
 *   h: committed "vh"
 * Forward, reverse and key-only scans see exactly the point-read answers, and a lock exactly
 * on the lower bound is in the range while one exactly on the upper bound is not. */
static void test_scan_merges_locks_and_writes_in_both_directions(void **state)
{
    (void)state;
    fx f;
    fx_open(&f);
    eng_batch *b;
    assert_int_equal(eng_batch_new(f.db, &b), 0);
    put_write(b, "a", 3, 4, "va");
    put_lock(b, "b", 7);
    put_write(b, "c", 3, 4, "vc");
    put_lock(b, "c", 20);
    put_lock(b, "d", 20);
    put_write(b, "e", 3, 4, "ve");
    put_lock(b, "e", 8);
    put_write(b, "f", 3, 4, "vf");
    put_lock(b, "f", 6);
    put_lock(b, "g", 6);
    put_write(b, "h", 3, 4, "vh");
    assert_int_equal(eng_write(f.db, b, false), 0);
    eng_batch_free(b);
    assert_int_equal(eng_batch_new(f.db, &b), 0);
    del_lock(b, "f");
    del_lock(b, "g");
    assert_int_equal(eng_write(f.db, b, false), 0);
    eng_batch_free(b);
    fx_snap(&f);

    static const uint64_t resolved[] = {8};
    mvcc_scan_opts so;
    memset(&so, 0, sizeof(so));
    so.ts = 10;
    so.read.bypass_locks = resolved;
    so.read.n_bypass_locks = 1;
    char out[256];
    scan_all(&f, &so, out, sizeof(out), NULL);
    assert_string_equal(out, "a=va b!locked c=vc e=ve f=vf h=vh");
    so.desc = true;
    scan_all(&f, &so, out, sizeof(out), NULL);
    assert_string_equal(out, "h=vh f=vf e=ve c=vc b!locked a=va");
    so.read.key_only = true;
    scan_all(&f, &so, out, sizeof(out), NULL);
    assert_string_equal(out, "h= f= e= c= b!locked a=");
    so.read.key_only = false;

    /* Without the resolved list, e's lock at 8 blocks. */
    so.read.n_bypass_locks = 0;
    so.desc = false;
    scan_all(&f, &so, out, sizeof(out), NULL);
    assert_string_equal(out, "a=va b!locked c=vc e!locked f=vf h=vh");
    so.read.n_bypass_locks = 1;

    /* Bounds: a lock exactly on the lower bound is in the range, one exactly on the upper
     * bound is not, in both directions. */
    static const struct {
        const char *lo, *hi, *fwd, *rev;
    } ranges[] = {
        {"b", "e", "b!locked c=vc", "c=vc b!locked"},
        {"b", "c", "b!locked", "b!locked"},
        {"a", "b", "a=va", "a=va"},
        {"c", "d", "c=vc", "c=vc"},
        {"d", "e", "", ""},
        {"e", "g", "e=ve f=vf", "f=vf e=ve"},
    };
    tkv_buf lo, hi;
    tkv_buf_init(&lo);
    tkv_buf_init(&hi);
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        encode_key(&lo, ranges[i].lo);
        encode_key(&hi, ranges[i].hi);
        so.lower = tkv_buf_slice(&lo);
        so.upper = tkv_buf_slice(&hi);
        so.desc = false;
        scan_all(&f, &so, out, sizeof(out), NULL);
        assert_string_equal(out, ranges[i].fwd);
        so.desc = true;
        scan_all(&f, &so, out, sizeof(out), NULL);
        assert_string_equal(out, ranges[i].rev);
    }
    tkv_buf_deinit(&hi);
    tkv_buf_deinit(&lo);
    fx_close(&f);
}

#define MANY_KEYS  20000
#define LIVE_EVERY 1000

/* The case a benchmark left behind: 2PC put and then deleted a lock on every key, so the lock
 * CF is one deletion marker per key, with a live (newer, non-blocking) lock every
 * LIVE_EVERY keys. A scan must position its lock cursor once and then only step it past the
 * live locks: before the fix it re-seeked the cursor for every key, and every seek walked the
 * markers up to the next live lock (quadratic in the markers: minutes for a 10k-key scan). */
static void test_scan_over_deleted_locks_seeks_the_lock_cursor_once(void **state)
{
    (void)state;
    fx f;
    fx_open(&f);
    eng_batch *b;
    char user[16];
    assert_int_equal(eng_batch_new(f.db, &b), 0);
    for (int i = 0; i < MANY_KEYS; i++) {
        snprintf(user, sizeof(user), "k%06d", i);
        put_lock(b, user, 3);
        put_write(b, user, 3, 4, "v");
    }
    assert_int_equal(eng_write(f.db, b, false), 0);
    eng_batch_free(b);
    assert_int_equal(eng_batch_new(f.db, &b), 0);
    for (int i = 0; i < MANY_KEYS; i++) {
        snprintf(user, sizeof(user), "k%06d", i);
        del_lock(b, user);
    }
    assert_int_equal(eng_write(f.db, b, false), 0);
    eng_batch_free(b);
    assert_int_equal(eng_batch_new(f.db, &b), 0);
    uint64_t live = 0;
    for (int i = LIVE_EVERY / 2; i < MANY_KEYS; i += LIVE_EVERY, live++) {
        snprintf(user, sizeof(user), "k%06d", i);
        put_lock(b, user, 20);
    }
    assert_int_equal(eng_write(f.db, b, false), 0);
    eng_batch_free(b);
    fx_snap(&f);

    for (int desc = 0; desc <= 1; desc++) {
        mvcc_scan_opts so;
        memset(&so, 0, sizeof(so));
        so.ts = 10;
        so.desc = desc;
        /* RocksDB's own count of deletion markers its iterators stepped over on this thread:
         * the work the seeks did inside the engine, which the scanner's counters cannot see. */
        rocksdb_set_perf_level(rocksdb_enable_count);
        rocksdb_perfcontext_t *perf = rocksdb_perfcontext_create();
        assert_non_null(perf);
        rocksdb_perfcontext_reset(perf);
        uint64_t t0 = tkv_clock_mono_ns();
        mvcc_scanner *s;
        assert_int_equal(mvcc_scanner_new(f.snap, &so, &s), 0);
        tkv_buf key, value;
        tkv_buf_init(&key);
        tkv_buf_init(&value);
        mvcc_err e;
        mvcc_err_init(&e);
        int n = 0;
        for (;;) {
            bool done;
            assert_int_equal(mvcc_scanner_next(s, &done, &key, &value, &e), 0);
            if (done)
                break;
            assert_int_equal(e.kind, MVCC_OK);
            assert_int_equal(value.len, 1);
            n++;
        }
        uint64_t ms = (tkv_clock_mono_ns() - t0) / 1000000;
        uint64_t skipped = rocksdb_perfcontext_metric(perf, rocksdb_internal_delete_skipped_count);
        rocksdb_perfcontext_destroy(perf);
        rocksdb_set_perf_level(rocksdb_disable);
        assert_int_equal(n, MANY_KEYS);
        const mvcc_scan_stats *st = mvcc_scanner_stats(s);
        printf("%s scan of %d keys over %d deleted locks: %llu ms, lock cursor %llu seeks, "
               "%llu steps, %llu deletion markers skipped in the engine\n",
               desc ? "reverse" : "forward", MANY_KEYS, MANY_KEYS, (unsigned long long)ms,
               (unsigned long long)st->lock_seeks, (unsigned long long)st->lock_steps,
               (unsigned long long)skipped);
        /* Before the fix: MANY_KEYS + 1 seeks and about MANY_KEYS * LIVE_EVERY / 2 markers. */
        assert_int_equal(st->lock_seeks, 1);
        assert_true(st->lock_steps <= live);
        assert_true(skipped <= 2 * (uint64_t)MANY_KEYS);
        mvcc_err_deinit(&e);
        tkv_buf_deinit(&value);
        tkv_buf_deinit(&key);
        mvcc_scanner_free(s);
    }
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_refuses_a_write_key_that_goes_back),
        cmocka_unit_test(test_scan_merges_locks_and_writes_in_both_directions),
        cmocka_unit_test(test_scan_over_deleted_locks_seeks_the_lock_cursor_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
