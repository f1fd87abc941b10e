/*
 * sec_int.h: internals shared by the files of src/security (not API).
 *
 * Crypto primitives over OpenSSL 3's EVP interface (AES-CTR at any byte offset, AES-256-GCM
 * seal/open, SHA-256, random bytes), byte packing helpers, and the hooks the C++ RocksDB
 * shim (sec_env.cc) calls into the key dictionary. Key material passes through these
 * functions in caller-owned buffers; nothing here logs or keeps it.
 */
#ifndef TKV_SEC_INT_H
#define TKV_SEC_INT_H

#include "security/encryption.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SEC__GCM_NONCE_LEN 12
#define SEC__GCM_TAG_LEN   16

/* Returns the key length in bytes of @m (16, 24, 32), or 0 for plaintext and unknown. */
size_t sec__method_key_len(sec_method m);

/* XORs @len bytes at @data in place with the AES-CTR keystream of (@m, @key, @iv) starting at
 * byte @offset of the stream: the counter block is @iv + offset / 16 (128-bit big-endian
 * addition), so any range of a file can be encrypted or decrypted on its own.
 * Errors: -EINVAL (plaintext or unknown method), -ENOMEM, TKV_EUNSUPPORTED (OpenSSL refused). */
int sec__ctr_xor(sec_method m, const uint8_t *key, const uint8_t iv[SEC_IV_LEN], uint64_t offset,
                 uint8_t *data, size_t len);

/* Encrypts @len bytes of @in with AES-256-GCM under the 32-byte @key and the 12-byte @nonce,
 * authenticating @aad too; writes the ciphertext (same length) to @out and the tag to @tag.
 * Errors: -ENOMEM, TKV_EUNSUPPORTED. */
int sec__gcm_seal(const uint8_t key[32], const uint8_t nonce[SEC__GCM_NONCE_LEN],
                  const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                  uint8_t tag[SEC__GCM_TAG_LEN]);

/* Decrypts and verifies what sec__gcm_seal made. Errors: TKV_ECORRUPT (the tag does not
 * verify: wrong key, or ciphertext, @aad or tag altered), -ENOMEM, TKV_EUNSUPPORTED. */
int sec__gcm_open(const uint8_t key[32], const uint8_t nonce[SEC__GCM_NONCE_LEN],
                  const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                  const uint8_t tag[SEC__GCM_TAG_LEN]);

/* Fills @out with @len bytes from OpenSSL's CSPRNG. Errors: TKV_EUNSUPPORTED (no entropy). */
int sec__random(uint8_t *out, size_t len);

/* Writes SHA-256 of the concatenation of @a and @b into @out. */
void sec__sha256_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32]);

/* Writes HMAC-SHA256(@key, @msg) into @out. */
void sec__hmac_sha256(const uint8_t *key, size_t key_len, const void *msg, size_t msg_len,
                      uint8_t out[32]);

/* Zeroes @len bytes at @p in a way the compiler keeps (OPENSSL_cleanse). */
void sec__wipe(void *p, size_t len);

/* Writes the lowercase hex of @len bytes at @p into @out (2 * len + 1 bytes, NUL-terminated). */
void sec__hex(const uint8_t *p, size_t len, char *out);

/* Decodes @n hex digits at @s (either case) into @n / 2 bytes at @out. Errors: -EINVAL (odd
 * length or a non-hex character; @out may be partly written). */
int sec__hex_decode(const char *s, size_t n, uint8_t *out);
/* Returns the value of the hex digit @c, or -1. */
int sec__hex_digit(int c);

/* Writes @data of @len bytes to @path atomically: a temporary file beside it (mode 0600),
 * fsync, rename over @path, fsync of the directory. Errors: -errno. */
int sec__write_atomic(const char *path, const void *data, size_t len);

/* Writes all @len bytes at @data to @fd, retrying on EINTR and short writes. Errors: -errno. */
int sec__write_all(int fd, const void *data, size_t len);

/* Reads the whole file at @path into @out (replacing its contents), refusing files larger
 * than @max_bytes. Errors: -errno (-ENOENT when missing), TKV_ETOOLARGE. */
int sec__read_file(const char *path, size_t max_bytes, tkv_buf *out);

/* Fsyncs the directory that contains @path. Errors: -errno. */
int sec__fsync_parent(const char *path);

/* Little-endian packing. */
void sec__put_u64(uint8_t *p, uint64_t v);
uint64_t sec__get_u64(const uint8_t *p);
void sec__put_u32(uint8_t *p, uint32_t v);
uint32_t sec__get_u32(const uint8_t *p);

/* ---- hooks for the RocksDB shim (sec_env.cc) and sec_file ------------------------------ */

/* Puts back @path's entry as it was before a failed rename or link: @c as looked up then,
 * @found whether it existed. Errors: as sec_keys_link_file. */
int sec__keys_restore(sec_keys *k, const char *path, const sec_cipher *c, bool found);

#ifdef __cplusplus
}
#endif

#endif /* TKV_SEC_INT_H */
