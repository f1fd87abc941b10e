/*
 * test_encryption.c: encryption at rest: the AES-CTR cipher, master key files, the key and
 * file dictionaries, the encrypting RocksDB environment under eng_rocks, rotation of data
 * and master keys, and sec_file.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "sec_testutil.h"
#include "security/encryption.h"
#include "security/sec_int.h"
#include "unit/engine/eng_testutil.h"

#define MARKER   "SECRET-VALUE-7f3a9c"
#define N_VALUES 200

typedef struct fx {
    char dir[SEC_TEST_DIR_LEN]; /* first: see sec_testutil.h */
    char data[128];             /* the engine's directory */
    char mk1[128];              /* master key files */
    char mk2[128];
    char mkbad[128];
    uint64_t now; /* injected clock, Unix seconds */
} fx;

static uint64_t fx_now(void *ud)
{
    return ((fx *)ud)->now;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    fx *f = sec_test_fixture_new(sizeof(*f), "sec");
    snprintf(f->data, sizeof(f->data), "%s/db", f->dir);
    snprintf(f->mk1, sizeof(f->mk1), "%s/master1.key", f->dir);
    snprintf(f->mk2, sizeof(f->mk2), "%s/master2.key", f->dir);
    snprintf(f->mkbad, sizeof(f->mkbad), "%s/master-bad.key", f->dir);
    write_text(f->mk1, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    write_text(f->mk2, "ffeeddccbbaa99887766554433221100FFEEDDCCBBAA99887766554433221100");
    write_text(f->mkbad, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdee\n");
    f->now = 1700000000;
    *state = f;
    return 0;
}

static void opts_for(fx *f, sec_enc_opts *o, sec_method m, const char *mk, const char *prev)
{
    sec_enc_opts_init(o);
    o->dict_dir = f->dir;
    o->method = m;
    o->master_key_path = mk;
    o->previous_master_key_path = prev;
    o->now_s = fx_now;
    o->clock_ud = f;
}

static sec_keys *open_keys(fx *f, sec_method m, const char *mk, const char *prev)
{
    sec_enc_opts o;
    opts_for(f, &o, m, mk, prev);
    sec_keys *k = NULL;
    char err[TKV_ERRMSG_LEN];
    int rc = sec_keys_open(&o, &k, err);
    if (rc != 0)
        fail_msg("sec_keys_open: %s (%s)", tkv_strerror(rc), err);
    return k;
}

/* An open engine over an optional encrypting env. */
typedef struct db_h {
    sec_env *env;
    eng_db *db;
} db_h;

static db_h open_db(fx *f, sec_keys *k)
{
    db_h h = {0};
    eng_options o;
    eng_options_init(&o);
    o.name = "kv";
    if (k != NULL) {
        assert_int_equal(sec_env_new(k, &h.env), 0);
        o.rocksdb_env = sec_env_rocksdb(h.env);
    }
    char err[TKV_ERRMSG_LEN];
    int rc = eng_rocks_open(f->data, &o, &h.db, err);
    if (rc != 0)
        fail_msg("eng_rocks_open: %s", err);
    return h;
}

static void close_db(db_h *h)
{
    eng_close(h->db);
    sec_env_free(h->env);
    memset(h, 0, sizeof(*h));
}

static void value_of(int i, char *out, size_t cap)
{
    /* Varied bytes after the marker so compression cannot hide a plaintext copy. */
    snprintf(out, cap, MARKER "-%04d-%08x%08x", i, (unsigned)(i * 2654435761u),
             (unsigned)(i * 40503u + 7));
}

static void put_values(eng_db *db, int from, int to)
{
    char k[32], v[96];
    for (int i = from; i < to; i++) {
        snprintf(k, sizeof(k), "key-%04d", i);
        value_of(i, v, sizeof(v));
        eng_test_put(db, ENG_CF_DEFAULT, k, v);
    }
}

static void expect_values(eng_db *db, int from, int to)
{
    char k[32], v[96];
    for (int i = from; i < to; i++) {
        snprintf(k, sizeof(k), "key-%04d", i);
        value_of(i, v, sizeof(v));
        eng_test_expect(db, ENG_CF_DEFAULT, k, v);
    }
}

/* Counts files under the directory tree that contain @needle. */
static const char *g_needle;
static int g_hits;
static int g_files;

static int scan_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    g_files++;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t n = (size_t)st->st_size;
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (memmem(buf, got, g_needle, strlen(g_needle)) != NULL)
        g_hits++;
    free(buf);
    return 0;
}

static int files_containing(const char *dir, const char *needle)
{
    g_needle = needle;
    g_hits = 0;
    g_files = 0;
    assert_int_equal(nftw(dir, scan_entry, 16, FTW_PHYS), 0);
    assert_true(g_files > 0);
    return g_hits;
}

/* ---- the cipher ------------------------------------------------------------------------- */

static void test_ctr_matches_the_nist_vector(void **state)
{
    (void)state;
    /* NIST SP 800-38A, F.5.1 CTR-AES128.Encrypt, first block. */
    static const uint8_t key[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                                    0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
    static const uint8_t iv[16] = {0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7,
                                   0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff};
    uint8_t data[16] = {0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96,
                        0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17, 0x2a};
    static const uint8_t want[16] = {0x87, 0x4d, 0x61, 0x91, 0xb6, 0x20, 0xe3, 0x26,
                                     0x1b, 0xef, 0x68, 0x64, 0x99, 0x0d, 0xb6, 0xce};
    assert_int_equal(sec__ctr_xor(SEC_AES128_CTR, key, iv, 0, data, sizeof(data)), 0);
    assert_memory_equal(data, want, sizeof(want));
}

static void test_ctr_any_offset_equals_the_whole_stream(void **state)
{
    (void)state;
    uint8_t key[32], iv[16], whole[1000], part[1000];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 7);
    /* An IV near the 64-bit boundary checks the 128-bit carry. */
    memset(iv, 0xff, sizeof(iv));
    iv[0] = 1;
    for (size_t i = 0; i < sizeof(whole); i++)
        whole[i] = part[i] = (uint8_t)i;
    static const sec_method methods[] = {SEC_AES128_CTR, SEC_AES192_CTR, SEC_AES256_CTR};
    for (size_t m = 0; m < 3; m++) {
        uint8_t a[1000], b[1000];
        memcpy(a, whole, sizeof(a));
        memcpy(b, part, sizeof(b));
        assert_int_equal(sec__ctr_xor(methods[m], key, iv, 0, a, sizeof(a)), 0);
        static const size_t cuts[] = {0, 1, 15, 16, 17, 100, 333, 512, 999, 1000};
        for (size_t c = 0; c + 1 < TKV_ARRAY_LEN(cuts); c++)
            assert_int_equal(
                sec__ctr_xor(methods[m], key, iv, cuts[c], b + cuts[c], cuts[c + 1] - cuts[c]), 0);
        assert_memory_equal(a, b, sizeof(a));
        assert_memory_not_equal(a, whole, sizeof(a));
        assert_int_equal(sec__ctr_xor(methods[m], key, iv, 0, a, sizeof(a)), 0);
        assert_memory_equal(a, whole, sizeof(a));
    }
}

static void test_gcm_rejects_a_flipped_bit(void **state)
{
    (void)state;
    uint8_t key[32] = {1}, nonce[12] = {2}, tag[16], ct[5], pt[5];
    assert_int_equal(
        sec__gcm_seal(key, nonce, (const uint8_t *)"hdr", 3, (const uint8_t *)"hello", 5, ct, tag),
        0);
    assert_int_equal(sec__gcm_open(key, nonce, (const uint8_t *)"hdr", 3, ct, 5, pt, tag), 0);
    assert_memory_equal(pt, "hello", 5);
    ct[2] ^= 1;
    assert_int_equal(sec__gcm_open(key, nonce, (const uint8_t *)"hdr", 3, ct, 5, pt, tag),
                     TKV_ECORRUPT);
    ct[2] ^= 1;
    assert_int_equal(sec__gcm_open(key, nonce, (const uint8_t *)"hdX", 3, ct, 5, pt, tag),
                     TKV_ECORRUPT);
}

static void test_method_names_parse_as_tikv_spells_them(void **state)
{
    (void)state;
    sec_method m;
    assert_int_equal(sec_method_parse("aes256-ctr", &m), 0);
    assert_int_equal(m, SEC_AES256_CTR);
    assert_int_equal(sec_method_parse("AES128-CTR", &m), 0);
    assert_int_equal(m, SEC_AES128_CTR);
    assert_int_equal(sec_method_parse("plaintext", &m), 0);
    assert_int_equal(m, SEC_PLAINTEXT);
    assert_int_equal(sec_method_parse("sm4-ctr", &m), -EINVAL);
    assert_string_equal(sec_method_name(SEC_AES192_CTR), "aes192-ctr");
}

static void test_master_key_file_must_hold_64_hex_digits(void **state)
{
    fx *f = *state;
    uint8_t key[32];
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_master_key_load(f->mk1, key, err), 0);
    assert_int_equal(key[0], 0x00);
    assert_int_equal(key[31], 0xff);
    char p[160];
    snprintf(p, sizeof(p), "%s/short.key", f->dir);
    write_text(p, "0011\n");
    assert_int_equal(sec_master_key_load(p, key, err), TKV_ECONFIG);
    assert_non_null(strstr(err, "64 hex digits"));
    write_text(p, "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    assert_int_equal(sec_master_key_load(p, key, err), TKV_ECONFIG);
    assert_non_null(strstr(err, "non-hex"));
    snprintf(p, sizeof(p), "%s/missing.key", f->dir);
    assert_int_equal(sec_master_key_load(p, key, err), TKV_ECONFIG);
    assert_non_null(strstr(err, "missing.key"));
}

/* ---- RocksDB under the encrypting env --------------------------------------------------- */

static void test_values_never_appear_in_plaintext_and_read_back_after_reopen(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    db_h h = open_db(f, k);
    put_values(h.db, 0, N_VALUES / 2);
    assert_int_equal(eng_flush(h.db, true), 0);
    put_values(h.db, N_VALUES / 2, N_VALUES); /* these stay in the WAL */
    close_db(&h);
    assert_int_equal(files_containing(f->dir, MARKER), 0);
    assert_int_equal(files_containing(f->dir, "key-0042"), 0);

    h = open_db(f, k);
    expect_values(h.db, 0, N_VALUES);
    assert_int_equal(eng_compact_range(h.db, ENG_CF_DEFAULT, eng_test_s(""), eng_test_s("")), 0);
    expect_values(h.db, 0, N_VALUES);
    close_db(&h);
    assert_int_equal(files_containing(f->dir, MARKER), 0);
    sec_keys_close(k);

    /* A fresh handle on the same dictionary reads everything too. */
    k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    h = open_db(f, k);
    expect_values(h.db, 0, N_VALUES);
    close_db(&h);
    sec_keys_close(k);
}

static void test_ingested_sst_files_are_encrypted_and_readable(void **state)
{
    /* Snapshots arrive as SST files that are ingested (linked or copied into the database):
     * the writer encrypts through the env and the ingested file keeps its cipher. */
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    db_h h = open_db(f, k);
    char sst[160];
    snprintf(sst, sizeof(sst), "%s/snap.sst", f->dir);
    eng_sst_writer *w;
    assert_int_equal(eng_sst_writer_new(h.db, sst, &w), 0);
    char key[32], v[96];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "key-%04d", i);
        value_of(i, v, sizeof(v));
        assert_int_equal(eng_sst_writer_put(w, eng_test_s(key), eng_test_s(v)), 0);
    }
    uint64_t bytes = 0;
    assert_int_equal(eng_sst_writer_finish(w, &bytes), 0);
    eng_sst_writer_free(w);
    assert_true(bytes > 0);
    assert_int_equal(files_containing(f->dir, MARKER), 0);
    const char *paths[] = {sst};
    assert_int_equal(eng_ingest(h.db, ENG_CF_DEFAULT, paths, 1), 0);
    expect_values(h.db, 0, 50);
    close_db(&h);
    h = open_db(f, k);
    expect_values(h.db, 0, 50);
    close_db(&h);
    assert_int_equal(files_containing(f->dir, MARKER), 0);
    sec_keys_close(k);
}

static void test_without_encryption_the_scan_does_find_the_values(void **state)
{
    /* The control for the test above: the same writes without the env are visible. */
    fx *f = *state;
    db_h h = open_db(f, NULL);
    put_values(h.db, 0, N_VALUES);
    assert_int_equal(eng_flush(h.db, true), 0);
    close_db(&h);
    assert_true(files_containing(f->data, MARKER) > 0);
}

static void test_plaintext_data_written_before_enabling_stays_readable(void **state)
{
    fx *f = *state;
    db_h h = open_db(f, NULL);
    put_values(h.db, 0, 50);
    assert_int_equal(eng_flush(h.db, true), 0);
    put_values(h.db, 50, 100);
    close_db(&h);

    sec_keys *k = open_keys(f, SEC_AES128_CTR, f->mk1, NULL);
    h = open_db(f, k);
    expect_values(h.db, 0, 100);
    put_values(h.db, 100, 150);
    assert_int_equal(eng_flush(h.db, true), 0);
    close_db(&h);
    h = open_db(f, k);
    expect_values(h.db, 0, 150);
    /* After a full compaction every live file was written under the data key. */
    assert_int_equal(eng_compact_range(h.db, ENG_CF_DEFAULT, eng_test_s(""), eng_test_s("")), 0);
    expect_values(h.db, 0, 150);
    close_db(&h);
    sec_keys_close(k);
}

static void test_data_key_then_master_key_rotation_keep_everything_readable(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    uint64_t first = sec_keys_current_id(k);
    assert_true(first != 0);
    db_h h = open_db(f, k);
    put_values(h.db, 0, 60);
    assert_int_equal(eng_flush(h.db, true), 0);

    /* Not due yet; then the injected clock passes the period. */
    bool rotated = true;
    assert_int_equal(sec_keys_rotate_if_due(k, &rotated), 0);
    assert_false(rotated);
    f->now += SEC_DEFAULT_ROTATION_S;
    assert_int_equal(sec_keys_rotate_if_due(k, &rotated), 0);
    assert_true(rotated);
    uint64_t second = sec_keys_current_id(k);
    assert_true(second != 0 && second != first);
    put_values(h.db, 60, 120);
    assert_int_equal(eng_flush(h.db, true), 0);
    expect_values(h.db, 0, 120);
    close_db(&h);
    sec_keys_close(k);

    /* Master key rotation: the new key with the old one as previous-master-key. */
    k = open_keys(f, SEC_AES256_CTR, f->mk2, f->mk1);
    assert_int_equal(sec_keys_current_id(k), second);
    h = open_db(f, k);
    expect_values(h.db, 0, 120);
    close_db(&h);
    sec_keys_close(k);

    /* The dictionary is now under the new key alone; the old key no longer opens it. */
    k = open_keys(f, SEC_AES256_CTR, f->mk2, NULL);
    h = open_db(f, k);
    expect_values(h.db, 0, 120);
    close_db(&h);
    sec_keys_close(k);
    sec_enc_opts o;
    opts_for(f, &o, SEC_AES256_CTR, f->mk1, NULL);
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_keys_open(&o, &k, err), TKV_ECONFIG);
    assert_non_null(strstr(err, "wrong master key"));
    assert_int_equal(files_containing(f->dir, MARKER), 0);
}

static void test_wrong_master_key_fails_with_a_clear_error(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    db_h h = open_db(f, k);
    put_values(h.db, 0, 10);
    close_db(&h);
    sec_keys_close(k);

    sec_enc_opts o;
    opts_for(f, &o, SEC_AES256_CTR, f->mkbad, NULL);
    char err[TKV_ERRMSG_LEN];
    k = (sec_keys *)0x1;
    assert_int_equal(sec_keys_open(&o, &k, err), TKV_ECONFIG);
    assert_ptr_equal(k, (sec_keys *)0x1); /* untouched on failure */
    assert_non_null(strstr(err, "wrong master key"));
    /* Neither key matches: both are named in the message. */
    o.previous_master_key_path = f->mk2;
    assert_int_equal(sec_keys_open(&o, &k, err), TKV_ECONFIG);
    assert_non_null(strstr(err, "previous-master-key"));
}

static void test_a_corrupt_key_dictionary_is_detected(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    sec_keys_close(k);
    char path[160];
    snprintf(path, sizeof(path), "%s/key.dict", f->dir);
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(sec__read_file(path, 1 << 20, &b), 0);
    sec_enc_opts o;
    opts_for(f, &o, SEC_AES256_CTR, f->mk1, NULL);
    char err[TKV_ERRMSG_LEN];

    /* A flipped ciphertext byte: the master key matches, the GCM tag does not. */
    b.data[40] ^= 0x10;
    assert_int_equal(sec__write_atomic(path, b.data, b.len), 0);
    assert_int_equal(sec_keys_open(&o, &k, err), TKV_ECORRUPT);
    assert_non_null(strstr(err, "GCM tag"));
    b.data[40] ^= 0x10;
    /* An edited header is authenticated too. */
    b.data[25] ^= 0x01;
    assert_int_equal(sec__write_atomic(path, b.data, b.len), 0);
    assert_int_equal(sec_keys_open(&o, &k, err), TKV_ECORRUPT);
    b.data[25] ^= 0x01;
    /* Truncated. */
    assert_int_equal(sec__write_atomic(path, b.data, 20), 0);
    assert_int_equal(sec_keys_open(&o, &k, err), TKV_ECORRUPT);
    /* Restored: opens again. */
    assert_int_equal(sec__write_atomic(path, b.data, b.len), 0);
    assert_int_equal(sec_keys_open(&o, &k, err), 0);
    sec_keys_close(k);
    tkv_buf_deinit(&b);
}

static void test_file_dictionary_drops_a_torn_tail_and_refuses_corruption(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES128_CTR, f->mk1, NULL);
    sec_cipher c1, c2, got;
    char p1[160], p2[160];
    snprintf(p1, sizeof(p1), "%s/a.sst", f->dir);
    snprintf(p2, sizeof(p2), "%s/b.sst", f->dir);
    assert_int_equal(sec_keys_new_file(k, p1, &c1), 0);
    assert_int_equal(sec_keys_new_file(k, p2, &c2), 0);
    assert_memory_not_equal(c1.iv, c2.iv, SEC_IV_LEN);
    sec_keys_close(k);

    char path[160];
    snprintf(path, sizeof(path), "%s/file.dict", f->dir);
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(sec__read_file(path, 1 << 20, &b), 0);
    /* Torn: the last record lost its final bytes. The first entry survives. */
    assert_int_equal(sec__write_atomic(path, b.data, b.len - 3), 0);
    k = open_keys(f, SEC_AES128_CTR, f->mk1, NULL);
    bool found;
    assert_int_equal(sec_keys_file_cipher(k, p1, &got, &found), 0);
    assert_true(found);
    assert_memory_equal(got.iv, c1.iv, SEC_IV_LEN);
    assert_int_equal(sec_keys_file_cipher(k, p2, &got, &found), 0);
    assert_false(found);
    assert_int_equal(got.method, SEC_PLAINTEXT);
    sec_keys_close(k);

    /* A bad byte inside the first of two records is corruption, not a torn tail. */
    b.data[12 + 8 + 3] ^= 0x40;
    assert_int_equal(sec__write_atomic(path, b.data, b.len), 0);
    sec_enc_opts o;
    opts_for(f, &o, SEC_AES128_CTR, f->mk1, NULL);
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_keys_open(&o, &k, err), TKV_ECORRUPT);
    assert_non_null(strstr(err, "file dictionary"));
    tkv_buf_deinit(&b);
    sec_cipher_wipe(&c1);
    sec_cipher_wipe(&c2);
    sec_cipher_wipe(&got);
}

static void test_renames_links_and_deletes_follow_the_file(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    sec_cipher c, got;
    bool found;
    assert_int_equal(sec_keys_new_file(k, "rel/../x.tmp", &c), 0); /* relative to the cwd */
    assert_int_equal(sec_keys_rename_file(k, "x.tmp", "./y"), 0);
    assert_int_equal(sec_keys_file_cipher(k, "x.tmp", &got, &found), 0);
    assert_false(found);
    assert_int_equal(sec_keys_file_cipher(k, "y", &got, &found), 0);
    assert_true(found);
    assert_memory_equal(got.iv, c.iv, SEC_IV_LEN);
    assert_int_equal(sec_keys_link_file(k, "y", "z"), 0);
    assert_int_equal(sec_keys_delete_file(k, "y"), 0);
    assert_int_equal(sec_keys_file_cipher(k, "z", &got, &found), 0);
    assert_true(found);
    /* Linking an unknown (plaintext) file over z makes z plaintext. */
    assert_int_equal(sec_keys_link_file(k, "plain", "z"), 0);
    assert_int_equal(sec_keys_file_cipher(k, "z", &got, &found), 0);
    assert_false(found);
    /* Many operations compact the log; the survivors stay. */
    char name[32];
    for (int i = 0; i < 1500; i++) {
        snprintf(name, sizeof(name), "f%d", i % 10);
        assert_int_equal(sec_keys_new_file(k, name, &got), 0);
    }
    sec_keys_close(k);
    k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    assert_int_equal(sec_keys_file_cipher(k, "f9", &got, &found), 0);
    assert_true(found);
    assert_int_equal(got.method, SEC_AES256_CTR);
    sec_keys_close(k);
    sec_cipher_wipe(&c);
    sec_cipher_wipe(&got);
}

static void test_switching_back_to_plaintext_keeps_old_files_readable(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES192_CTR, f->mk1, NULL);
    db_h h = open_db(f, k);
    put_values(h.db, 0, 40);
    close_db(&h);
    sec_keys_close(k);

    k = open_keys(f, SEC_PLAINTEXT, f->mk1, NULL);
    assert_int_equal(sec_keys_current_id(k), 0);
    h = open_db(f, k);
    expect_values(h.db, 0, 40);
    put_values(h.db, 40, 80);
    assert_int_equal(eng_flush(h.db, true), 0);
    expect_values(h.db, 0, 80);
    close_db(&h);
    sec_keys_close(k);
}

/* ---- sec_file and meta ------------------------------------------------------------------ */

static void test_sec_file_encrypts_and_reads_back_through_rename(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    char p[160], q[160];
    snprintf(p, sizeof(p), "%s/snap.tmp", f->dir);
    snprintf(q, sizeof(q), "%s/snap.sst", f->dir);
    sec_file *w;
    assert_int_equal(sec_file_open_write(k, p, &w), 0);
    tkv_buf want;
    tkv_buf_init(&want);
    for (int i = 0; i < 3000; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), MARKER " line %d\n", i);
        assert_int_equal(tkv_buf_append(&want, line, (size_t)n), 0);
    }
    /* Two writes crossing the internal chunk size at an odd offset. */
    assert_int_equal(sec_file_write(w, want.data, 77), 0);
    assert_int_equal(sec_file_write(w, want.data + 77, want.len - 77), 0);
    assert_int_equal(sec_file_sync(w), 0);
    assert_int_equal(sec_file_close(w), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sec_file_rename(k, p, q), 0);
    assert_int_equal(files_containing(f->dir, MARKER), 0);

    sec_file *r;
    assert_int_equal(sec_file_open_read(k, q, &r), 0);
    tkv_buf got;
    tkv_buf_init(&got);
    for (;;) {
        uint8_t buf[1000];
        size_t n;
        assert_int_equal(sec_file_read(r, buf, sizeof(buf), &n), 0);
        if (n == 0)
            break;
        assert_int_equal(tkv_buf_append(&got, buf, n), 0);
    }
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    size_t n;
    assert_int_equal(sec_file_write(r, "x", 1), -EBADF);
    assert_int_equal(sec_file_read(r, got.data, 1, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sec_file_close(r), 0);

    /* A file the dictionary does not know reads as plaintext. */
    char plain[160];
    snprintf(plain, sizeof(plain), "%s/plain.txt", f->dir);
    write_text(plain, "hello");
    assert_int_equal(sec_file_open_read(k, plain, &r), 0);
    uint8_t buf[16];
    assert_int_equal(sec_file_read(r, buf, sizeof(buf), &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(sec_file_close(r), 0);
    assert_int_equal(sec_file_remove(k, q), 0);
    bool found;
    sec_cipher c;
    assert_int_equal(sec_keys_file_cipher(k, q, &c, &found), 0);
    assert_false(found);
    tkv_buf_deinit(&got);
    tkv_buf_deinit(&want);
    sec_keys_close(k);
}

/* Returns encryption-meta's JSON for @k as a string held by @out (deinit it afterwards). */
static const char *meta_json(sec_keys *k, tkv_buf *out)
{
    tkv_buf_init(out);
    assert_int_equal(sec_encryption_meta(k, out), 0);
    assert_int_equal(tkv_buf_append_u8(out, 0), 0);
    return (const char *)out->data;
}

static void test_meta_lists_keys_and_files_without_key_material(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    sec_cipher c;
    char p[160];
    snprintf(p, sizeof(p), "%s/db/000001.sst", f->dir);
    assert_int_equal(sec_keys_new_file(k, p, &c), 0);
    tkv_buf out;
    const char *json = meta_json(k, &out);
    assert_non_null(strstr(json, "\"current_key_id\""));
    assert_non_null(strstr(json, "\"db/000001.sst\""));
    assert_non_null(strstr(json, "\"aes256-ctr\""));
    char hex[2 * SEC_MAX_KEY_LEN + 1], half[17];
    sec__hex(c.key, SEC_MAX_KEY_LEN, hex);
    memcpy(half, hex, 16);
    half[16] = '\0';
    assert_null(strstr(json, half));
    /* The master key never appears either. */
    assert_null(strstr(json, "0011223344556677"));
    tkv_buf_deinit(&out);
    sec_cipher_wipe(&c);
    sec_keys_close(k);
}

/* Found by fuzz_enc_dict: a file name that is not UTF-8 made encryption-meta fail as if out
 * of memory (JSON strings must be UTF-8). Such a name is listed in hex. */
static void test_meta_lists_a_non_utf8_file_name_in_hex(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    sec_cipher c;
    char p[160];
    snprintf(p, sizeof(p), "%s/bad\xff\xfe.sst", f->dir);
    assert_int_equal(sec_keys_new_file(k, p, &c), 0);
    snprintf(p, sizeof(p), "%s/good.sst", f->dir);
    assert_int_equal(sec_keys_new_file(k, p, &c), 0);
    tkv_buf out;
    const char *json = meta_json(k, &out);
    assert_non_null(strstr(json, "\"name_hex\": \"626164fffe2e737374\""));
    assert_non_null(strstr(json, "\"name\": \"good.sst\""));
    tkv_buf_deinit(&out);
    sec_cipher_wipe(&c);
    sec_keys_close(k);
}

/* Appends a file.dict record (sec_keys.c's layout) with a name of @nlen bytes of 'x'. */
static void append_record(const char *path, size_t nlen)
{
    uint8_t *rec = calloc(1, 8 + 28 + nlen);
    assert_non_null(rec);
    uint8_t *p = rec + 8;
    p[0] = 1; /* put */
    p[1] = 7; /* key id 7, little-endian */
    p[9] = SEC_AES256_CTR;
    p[26] = (uint8_t)(nlen & 0xff);
    p[27] = (uint8_t)(nlen >> 8);
    memset(p + 28, 'x', nlen);
    uint32_t plen = (uint32_t)(28 + nlen), crc = (uint32_t)crc32(0L, p, (uInt)plen);
    for (int i = 0; i < 4; i++) {
        rec[i] = (uint8_t)(plen >> (8 * i));
        rec[4 + i] = (uint8_t)(crc >> (8 * i));
    }
    FILE *fp = fopen(path, "ab");
    assert_non_null(fp);
    assert_int_equal(fwrite(rec, 1, 8 + plen, fp), 8 + plen);
    assert_int_equal(fclose(fp), 0);
    free(rec);
}

/* Found by fuzz_enc_dict: a file.dict record whose name is longer than any name the
 * dictionary writes (4096 bytes) but whose CRC matches overflowed a stack buffer while the
 * dictionary was read. Such a record is corrupt: refused in the middle of the log, cut off as
 * a torn append at its end. */
static void test_file_dict_refuses_overlong_names(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES256_CTR, f->mk1, NULL);
    sec_keys_close(k);
    char fd[160];
    snprintf(fd, sizeof(fd), "%s/file.dict", f->dir);
    append_record(fd, 5000); /* the last record: a torn append */
    sec_enc_opts o;
    opts_for(f, &o, SEC_AES256_CTR, f->mk1, NULL);
    o.read_only = true;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_keys_open(&o, &k, err), 0);
    sec_cipher c;
    bool found;
    char name[160];
    snprintf(name, sizeof(name), "%s/x", f->dir);
    assert_int_equal(sec_keys_file_cipher(k, name, &c, &found), 0);
    assert_false(found);
    sec_keys_close(k);
    append_record(fd, 1); /* now the long one is in the middle: corruption */
    assert_int_equal(sec_keys_open(&o, &k, err), TKV_ECORRUPT);
    assert_non_null(strstr(err, "corrupt"));
}

static void test_read_only_open_writes_nothing(void **state)
{
    fx *f = *state;
    sec_keys *k = open_keys(f, SEC_AES128_CTR, f->mk1, NULL);
    sec_keys_close(k);
    sec_enc_opts o;
    opts_for(f, &o, SEC_AES256_CTR, f->mk1, NULL); /* a method change would rotate */
    o.read_only = true;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_keys_open(&o, &k, err), 0);
    sec_cipher c;
    assert_int_equal(sec_keys_new_file(k, "x", &c), -EROFS);
    assert_int_equal(sec_keys_rotate(k), -EROFS);
    sec_keys_close(k);
    k = open_keys(f, SEC_AES128_CTR, f->mk1, NULL);
    tkv_buf out;
    tkv_buf_init(&out);
    assert_int_equal(sec_encryption_meta(k, &out), 0);
    assert_int_equal(tkv_buf_append_u8(&out, 0), 0);
    assert_null(strstr((const char *)out.data, "aes256-ctr"));
    tkv_buf_deinit(&out);
    sec_keys_close(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctr_matches_the_nist_vector),
        cmocka_unit_test(test_ctr_any_offset_equals_the_whole_stream),
        cmocka_unit_test(test_gcm_rejects_a_flipped_bit),
        cmocka_unit_test(test_method_names_parse_as_tikv_spells_them),
        cmocka_unit_test_setup_teardown(test_master_key_file_must_hold_64_hex_digits, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(
            test_values_never_appear_in_plaintext_and_read_back_after_reopen, setup,
            sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_ingested_sst_files_are_encrypted_and_readable, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_without_encryption_the_scan_does_find_the_values,
                                        setup, sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_plaintext_data_written_before_enabling_stays_readable,
                                        setup, sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(
            test_data_key_then_master_key_rotation_keep_everything_readable, setup,
            sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_wrong_master_key_fails_with_a_clear_error, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_a_corrupt_key_dictionary_is_detected, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(
            test_file_dictionary_drops_a_torn_tail_and_refuses_corruption, setup,
            sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_renames_links_and_deletes_follow_the_file, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_switching_back_to_plaintext_keeps_old_files_readable,
                                        setup, sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_sec_file_encrypts_and_reads_back_through_rename, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_meta_lists_keys_and_files_without_key_material, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_meta_lists_a_non_utf8_file_name_in_hex, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_file_dict_refuses_overlong_names, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_read_only_open_writes_nothing, setup,
                                        sec_test_fixture_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
