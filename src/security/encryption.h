/*
 * encryption.h: encryption at rest (TiKV's [security.encryption]).
 *
 * Three parts, used together by the servers:
 *   - sec_keys, the key dictionary: data keys (id, method, creation time, key bytes) with one
 *     current key, encrypted as a whole under the master key with AES-256-GCM in
 *     <dict_dir>/key.dict (rewritten by temp file + fsync + rename); and the file dictionary
 *     <dict_dir>/file.dict, an append-only log (each record CRC-checked, compacted by
 *     rewrite) that maps each file name to the data key id, method and per-file IV it was
 *     written with. Files the dictionary does not know are plaintext, so data written
 *     before encryption was switched on stays readable, and files written under an older
 *     data key stay readable after rotation.
 *   - sec_env, an encrypting RocksDB environment over the dictionary (a C++ shim over
 *     rocksdb/env_encryption.h and rocksdb/file_system.h, sec_env.cc), handed to the engine
 *     as eng_options.rocksdb_env.
 *   - sec_file, the same cipher for files we write ourselves (snapshot files, PD's files).
 * The per-file cipher is AES-CTR (128, 192 or 256-bit keys) from OpenSSL's EVP interface; the
 * counter block is the file's random 16-byte IV plus the block index, so any byte range can
 * be read on its own. The master key comes from a file holding 64 hex digits (TiKV's
 * `[security.encryption.master-key] type = "file"`); `previous-master-key` lets an operator
 * rotate it: the dictionary is read with the previous key and rewritten under the new one.
 *
 * What it protects: file contents at rest (values, keys, WAL, MANIFEST, SST, our own files)
 * from someone who reads the disk without the master key. Not: file names and sizes, the
 * RocksDB info LOG (no user values; it can name key ranges in compaction lines), memory, or
 * an attacker who can also read the master key file. CTR mode has no integrity of its own:
 * RocksDB's block checksums detect tampering with encrypted files.
 *
 * Owns: the dictionary handle (keys, file map, the master key copy: all wiped at close), the
 * environment objects, open sec_files.
 * Threads: sec_keys is thread-safe (a mutex; RocksDB's threads call it through the env). A
 * sec_env is thread-safe. A sec_file is single-threaded.
 * Errors: 0 or negative: TKV_ECONFIG (bad settings: master key file unreadable or malformed,
 * the master key does not match the dictionary), TKV_ECORRUPT (a dictionary fails its GCM
 * tag or CRC, or names a key that does not exist), -errno for I/O, -ENOMEM, -EINVAL.
 * Open functions take an @err buffer that receives a clear cause; key material never
 * appears in messages or logs.
 * Ownership: strings in sec_enc_opts are copied at open; sec_cipher holds key bytes: wipe it
 * with sec_cipher_wipe when done.
 * Dependencies: base, OpenSSL 3 (libcrypto), jansson (sec_encryption_meta), RocksDB 7.8's C++
 * API (sec_env.cc only).
 *
 * Usage:
 *     sec_enc_opts o;
 *     sec_enc_opts_init(&o);
 *     o.dict_dir = "/data/tikv";
 *     o.method = SEC_AES256_CTR;
 *     o.master_key_path = "/etc/tikv/master.key";
 *     sec_keys *k;
 *     if (sec_keys_open(&o, &k, err) != 0) die(err);
 *     sec_env *env;
 *     rc = sec_env_new(k, &env);
 *     eng_opts.rocksdb_env = sec_env_rocksdb(env);
 *     ... eng_rocks_open, periodically sec_keys_rotate_if_due(k, &rotated) ...
 *     eng_close(db); sec_env_free(env); sec_keys_close(k);
 */
#ifndef TKV_SEC_ENCRYPTION_H
#define TKV_SEC_ENCRYPTION_H

#include "base/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SEC_IV_LEN      16
#define SEC_MAX_KEY_LEN 32
/* TiKV's default data-key-rotation-period: 7 days. */
#define SEC_DEFAULT_ROTATION_S (7ull * 24 * 3600)

/* Encryption methods, numbered as kvproto's encryptionpb.EncryptionMethod. */
typedef enum sec_method {
    SEC_METHOD_UNKNOWN = 0,
    SEC_PLAINTEXT = 1,
    SEC_AES128_CTR = 2,
    SEC_AES192_CTR = 3,
    SEC_AES256_CTR = 4,
} sec_method;

/* Returns TiKV's configuration name of @m ("plaintext", "aes128-ctr", ...), or "unknown". */
const char *sec_method_name(sec_method m);

/* Parses TiKV's data-encryption-method names ("plaintext", "aes128-ctr", "aes192-ctr",
 * "aes256-ctr"; case-insensitive) into *@m. Errors: -EINVAL. */
TKV_MUST_USE int sec_method_parse(const char *name, sec_method *m);

/* Reads a master key file: 64 hex digits (a 256-bit key), optionally followed by white space.
 * @err receives the cause on failure (never the key). Errors: TKV_ECONFIG (unreadable,
 * malformed, wrong length). */
TKV_MUST_USE int sec_master_key_load(const char *path, uint8_t key[32], char err[TKV_ERRMSG_LEN]);

/* How one file is encrypted. Holds key bytes: wipe with sec_cipher_wipe. Plain data. */
typedef struct sec_cipher {
    sec_method method; /* SEC_PLAINTEXT: the file is stored as is; key and iv are unused */
    uint64_t key_id;
    uint8_t key[SEC_MAX_KEY_LEN];
    uint8_t iv[SEC_IV_LEN];
} sec_cipher;

/* Zeroes @c, key bytes included. */
void sec_cipher_wipe(sec_cipher *c);

/* Encrypts or decrypts (the same operation in CTR mode) @len bytes at @data in place, as the
 * bytes at offset @offset of a file encrypted with @c. A plaintext cipher leaves them as
 * they are. Errors: -ENOMEM, TKV_EUNSUPPORTED (OpenSSL refused the cipher). */
TKV_MUST_USE int sec_cipher_apply(const sec_cipher *c, uint64_t offset, void *data, size_t len);

/* Settings of the key dictionary (TiKV's [security.encryption]). Plain data. */
typedef struct sec_enc_opts {
    /* Directory of key.dict and file.dict (created 0700 if missing). File names under it are
     * stored relative to it, so the data directory can move as a whole. */
    const char *dict_dir;
    /* data-encryption-method for new files. Plaintext writes new files unencrypted while
     * files written under a data key stay readable. */
    sec_method method;
    /* data-key-rotation-period in seconds: the current key is replaced once it is this old
     * (checked at open and by sec_keys_rotate_if_due); 0 never rotates by age. */
    uint64_t rotation_period_s;
    /* [security.encryption.master-key] path (type "file"); required. */
    const char *master_key_path;
    /* [security.encryption.previous-master-key] path, or NULL: when the dictionary does not
     * open with the master key, it is opened with this one and rewritten under the master
     * key (master-key rotation). */
    const char *previous_master_key_path;
    /* Open for inspection only (tikv-ctl encryption-meta): no rotation, nothing written. */
    bool read_only;
    /* Clock in Unix seconds for key creation times and rotation; NULL uses the real clock.
     * Tests inject their own. */
    uint64_t (*now_s)(void *ud);
    void *clock_ud;
} sec_enc_opts;

/* Fills @o with defaults: method plaintext (TiKV's default), rotation period 7 days,
 * everything else NULL/false. */
void sec_enc_opts_init(sec_enc_opts *o);

typedef struct sec_keys sec_keys;

/* Opens (creating if missing) the key dictionary in @o->dict_dir and stores it in *@out.
 * When the method needs a key and the current key is missing, has another method or is older
 * than the rotation period, a new data key becomes current. When only previous-master-key
 * opens the dictionary, it is rewritten under the master key.
 * Errors: TKV_ECONFIG (no master key path, master key file bad, the dictionary opens with
 * neither the master key nor the previous one: "wrong master key"), TKV_ECORRUPT (key.dict
 * fails authentication although the master key matches, file.dict has a bad record, or
 * file.dict names encrypted files while key.dict is missing), -errno, -ENOMEM, -EINVAL.
 * @err (may be NULL) receives the cause. */
TKV_MUST_USE int sec_keys_open(const sec_enc_opts *o, sec_keys **out, char err[TKV_ERRMSG_LEN]);

/* Wipes the key material and closes the dictionary. NULL is a no-op. */
void sec_keys_close(sec_keys *k);

/* Returns the message of the last failed call on @k ("" if none). Lifetime: until the next
 * failing call. */
const char *sec_keys_errmsg(const sec_keys *k);

/* Returns the method new files are written with. */
sec_method sec_keys_method(const sec_keys *k);

/* Returns the id of the current data key, 0 when new files are plaintext. */
uint64_t sec_keys_current_id(sec_keys *k);

/* Makes a fresh data key current when the current one is at least rotation_period_s old,
 * and sets *@rotated (may be NULL) to whether it did. Meant for a periodic timer.
 * Errors: -errno (key.dict could not be written; the old key stays current), -EROFS
 * (read-only handle). */
TKV_MUST_USE int sec_keys_rotate_if_due(sec_keys *k, bool *rotated);

/* Makes a fresh data key current now (no-op for plaintext). Errors: as above. */
TKV_MUST_USE int sec_keys_rotate(sec_keys *k);

/* Registers @path as a new file written with the current key and a fresh IV (replacing any
 * entry of that name, so an overwritten file never reuses a keystream) and fills @c.
 * Plaintext methods drop the entry and give a plaintext cipher. The record is durable when
 * this returns. Errors: -errno (file.dict append), -EROFS, -ENOMEM, -ENAMETOOLONG. */
TKV_MUST_USE int sec_keys_new_file(sec_keys *k, const char *path, sec_cipher *c);

/* Fills @c with the cipher of the existing file @path; files unknown to the dictionary are
 * plaintext (@c->method SEC_PLAINTEXT, *@found false). @found may be NULL.
 * Errors: TKV_ECORRUPT (the entry names a data key that does not exist), -ENAMETOOLONG. */
TKV_MUST_USE int sec_keys_file_cipher(sec_keys *k, const char *path, sec_cipher *c, bool *found);

/* Forgets @path (after the file itself was deleted). Unknown names are fine.
 * Errors: -errno, -EROFS. */
TKV_MUST_USE int sec_keys_delete_file(sec_keys *k, const char *path);

/* Makes @dst use @src's entry (a hard link, or before a rename); when @src is unknown, @dst's
 * entry is dropped (a plaintext file). Errors: -errno, -EROFS, -ENOMEM. */
TKV_MUST_USE int sec_keys_link_file(sec_keys *k, const char *src, const char *dst);

/* Moves @src's entry to @dst (after the file was renamed). Errors: as sec_keys_link_file. */
TKV_MUST_USE int sec_keys_rename_file(sec_keys *k, const char *src, const char *dst);

/* Replaces @out's contents with a JSON description of the dictionary without key material:
 * {"method":..., "current_key_id":..., "keys":[{"id","method","creation_time"}],
 *  "files":[{"name","key_id","method","iv"}]} (what tikv-ctl encryption-meta prints); a
 * file name that is not valid UTF-8 is given as "name_hex" (its bytes in hex) instead.
 * Errors: -ENOMEM. */
TKV_MUST_USE int sec_encryption_meta(sec_keys *k, tkv_buf *out);

/* ---- the RocksDB environment ------------------------------------------------------------ */

typedef struct sec_env sec_env;

/* Creates an encrypting RocksDB environment over @k (borrowed: it must outlive the env): new
 * files are registered in the dictionary and encrypted with the current key, existing files
 * are read with the key they were written with (or as plaintext), renames, links and deletes
 * keep the dictionary in step. Errors: -ENOMEM, -EINVAL. */
TKV_MUST_USE int sec_env_new(sec_keys *k, sec_env **out);

/* Returns the opaque rocksdb_env_t * for eng_options.rocksdb_env. Lifetime: until
 * sec_env_free; never pass it to rocksdb_env_destroy. */
void *sec_env_rocksdb(sec_env *e);

/* Frees the environment; every database opened with it must be closed. NULL is a no-op. */
void sec_env_free(sec_env *e);

/* ---- files we write ourselves ----------------------------------------------------------- */

typedef struct sec_file sec_file;

/* Creates (truncating) @path with mode 0600 for writing, registered in @k with a fresh IV and
 * the current key; @k NULL writes plaintext. Errors: -errno, the errors of sec_keys_new_file. */
TKV_MUST_USE int sec_file_open_write(sec_keys *k, const char *path, sec_file **out);

/* Opens @path for reading with the cipher the dictionary has for it (plaintext when unknown or
 * @k is NULL). Errors: -errno, TKV_ECORRUPT. */
TKV_MUST_USE int sec_file_open_read(sec_keys *k, const char *path, sec_file **out);

/* Appends @len bytes (encrypted per the file's cipher). Errors: -errno, -EBADF (opened for
 * reading), -ENOMEM. */
TKV_MUST_USE int sec_file_write(sec_file *f, const void *data, size_t len);

/* Reads up to @cap bytes at the current position into @buf (decrypted) and sets *@got (0 at
 * the end of the file). Errors: -errno, -EBADF (opened for writing). */
TKV_MUST_USE int sec_file_read(sec_file *f, void *buf, size_t cap, size_t *got);

/* Flushes the file's data to stable storage (fdatasync). Errors: -errno. */
TKV_MUST_USE int sec_file_sync(sec_file *f);

/* Closes @f and returns close's error, if any. NULL is a no-op returning 0. */
int sec_file_close(sec_file *f);

/* Deletes the file @path and its dictionary entry (@k may be NULL). A missing file is not an
 * error. Errors: -errno. */
TKV_MUST_USE int sec_file_remove(sec_keys *k, const char *path);

/* Renames @src to @dst, moving the dictionary entry (@k may be NULL). Errors: -errno. */
TKV_MUST_USE int sec_file_rename(sec_keys *k, const char *src, const char *dst);

#ifdef __cplusplus
}
#endif

#endif /* TKV_SEC_ENCRYPTION_H */
