/*
 * sec_crypto.c: the crypto primitives of src/security over OpenSSL 3's EVP interface, and the
 * small file helpers the dictionaries share.
 */
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "security/sec_int.h"

size_t sec__method_key_len(sec_method m)
{
    switch (m) {
    case SEC_AES128_CTR:
        return 16;
    case SEC_AES192_CTR:
        return 24;
    case SEC_AES256_CTR:
        return 32;
    default:
        return 0;
    }
}

static const EVP_CIPHER *ctr_cipher(sec_method m)
{
    switch (m) {
    case SEC_AES128_CTR:
        return EVP_aes_128_ctr();
    case SEC_AES192_CTR:
        return EVP_aes_192_ctr();
    case SEC_AES256_CTR:
        return EVP_aes_256_ctr();
    default:
        return NULL;
    }
}

/* Sets @ctr to @iv plus @blocks as 128-bit big-endian numbers (wrapping, as CTR does). */
static void counter_add(const uint8_t iv[SEC_IV_LEN], uint64_t blocks, uint8_t ctr[SEC_IV_LEN])
{
    unsigned carry = 0;
    for (int i = SEC_IV_LEN - 1; i >= 0; i--) {
        unsigned add = (unsigned)(blocks & 0xff);
        blocks >>= 8;
        unsigned sum = (unsigned)iv[i] + add + carry;
        ctr[i] = (uint8_t)sum;
        carry = sum >> 8;
    }
}

int sec__ctr_xor(sec_method m, const uint8_t *key, const uint8_t iv[SEC_IV_LEN], uint64_t offset,
                 uint8_t *data, size_t len)
{
    const EVP_CIPHER *cipher = ctr_cipher(m);
    if (cipher == NULL)
        return -EINVAL;
    if (len == 0)
        return 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return -ENOMEM;
    uint8_t ctr[SEC_IV_LEN];
    counter_add(iv, offset / 16, ctr);
    int rc = 0;
    int outl;
    if (EVP_EncryptInit_ex(ctx, cipher, NULL, key, ctr) != 1) {
        rc = TKV_EUNSUPPORTED;
        goto out;
    }
    /* Skip into the first block: the keystream of a partial block is consumed by encrypting
     * that many throwaway bytes. */
    size_t skip = (size_t)(offset % 16);
    if (skip > 0) {
        uint8_t pad[16] = {0};
        if (EVP_EncryptUpdate(ctx, pad, &outl, pad, (int)skip) != 1) {
            rc = TKV_EUNSUPPORTED;
            goto out;
        }
    }
    while (len > 0) {
        int n = len > (size_t)(INT_MAX / 2) ? INT_MAX / 2 : (int)len;
        if (EVP_EncryptUpdate(ctx, data, &outl, data, n) != 1 || outl != n) {
            rc = TKV_EUNSUPPORTED;
            goto out;
        }
        data += n;
        len -= (size_t)n;
    }
out:
    EVP_CIPHER_CTX_free(ctx);
    sec__wipe(ctr, sizeof(ctr));
    return rc;
}

int sec__gcm_seal(const uint8_t key[32], const uint8_t nonce[SEC__GCM_NONCE_LEN],
                  const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                  uint8_t tag[SEC__GCM_TAG_LEN])
{
    if (len > INT_MAX || aad_len > INT_MAX)
        return -EINVAL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return -ENOMEM;
    int rc = TKV_EUNSUPPORTED;
    int outl;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEC__GCM_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
        goto out;
    if (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1)
        goto out;
    if (len > 0 && EVP_EncryptUpdate(ctx, out, &outl, in, (int)len) != 1)
        goto out;
    if (EVP_EncryptFinal_ex(ctx, out + len, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEC__GCM_TAG_LEN, tag) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int sec__gcm_open(const uint8_t key[32], const uint8_t nonce[SEC__GCM_NONCE_LEN],
                  const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                  const uint8_t tag[SEC__GCM_TAG_LEN])
{
    if (len > INT_MAX || aad_len > INT_MAX)
        return -EINVAL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return -ENOMEM;
    int rc = TKV_EUNSUPPORTED;
    int outl;
    uint8_t tagcopy[SEC__GCM_TAG_LEN];
    memcpy(tagcopy, tag, sizeof(tagcopy));
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEC__GCM_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
        goto out;
    if (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1)
        goto out;
    if (len > 0 && EVP_DecryptUpdate(ctx, out, &outl, in, (int)len) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEC__GCM_TAG_LEN, tagcopy) != 1)
        goto out;
    /* The tag is checked here; a mismatch means a wrong key or altered bytes. */
    rc = EVP_DecryptFinal_ex(ctx, out + len, &outl) == 1 ? 0 : TKV_ECORRUPT;
    if (rc != 0)
        sec__wipe(out, len);
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int sec__random(uint8_t *out, size_t len)
{
    if (len > INT_MAX)
        return -EINVAL;
    return RAND_bytes(out, (int)len) == 1 ? 0 : TKV_EUNSUPPORTED;
}

void sec__sha256_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned olen = 0;
    /* Digest allocation failure leaves no way to compute a hash; that is the OOM abort the
     * servers take anyway. */
    TKV_ASSERT(ctx != NULL);
    TKV_ASSERT(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
    TKV_ASSERT(EVP_DigestUpdate(ctx, a, alen) == 1);
    TKV_ASSERT(EVP_DigestUpdate(ctx, b, blen) == 1);
    TKV_ASSERT(EVP_DigestFinal_ex(ctx, out, &olen) == 1 && olen == 32);
    EVP_MD_CTX_free(ctx);
}

void sec__hmac_sha256(const uint8_t *key, size_t key_len, const void *msg, size_t msg_len,
                      uint8_t out[32])
{
    unsigned olen = 0;
    TKV_ASSERT(HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &olen) != NULL &&
               olen == 32);
}

void sec__wipe(void *p, size_t len)
{
    OPENSSL_cleanse(p, len);
}

void sec__hex(const uint8_t *p, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

int sec__fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof(dir))
            return -ENAMETOOLONG;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int sec__write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int sec__write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = sec__write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return sec__fsync_parent(path);
}

int sec__read_file(const char *path, size_t max_bytes, tkv_buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc == 0 && (uint64_t)st.st_size > max_bytes)
        rc = TKV_ETOOLARGE;
    tkv_buf_reset(out);
    if (rc == 0)
        rc = tkv_buf_reserve(out, (size_t)st.st_size + 1);
    while (rc == 0) {
        if (out->cap - out->len < 4096 && (rc = tkv_buf_reserve(out, 4096)) != 0)
            break;
        ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
        } else if (n == 0) {
            break;
        } else {
            out->len += (size_t)n;
            if (out->len > max_bytes)
                rc = TKV_ETOOLARGE;
        }
    }
    close(fd);
    return rc;
}

void sec__put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t sec__get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void sec__put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t sec__get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- public helpers ---------------------------------------------------------------------- */

const char *sec_method_name(sec_method m)
{
    switch (m) {
    case SEC_PLAINTEXT:
        return "plaintext";
    case SEC_AES128_CTR:
        return "aes128-ctr";
    case SEC_AES192_CTR:
        return "aes192-ctr";
    case SEC_AES256_CTR:
        return "aes256-ctr";
    default:
        return "unknown";
    }
}

int sec_method_parse(const char *name, sec_method *m)
{
    if (name == NULL || m == NULL)
        return -EINVAL;
    static const sec_method all[] = {SEC_PLAINTEXT, SEC_AES128_CTR, SEC_AES192_CTR, SEC_AES256_CTR};
    for (size_t i = 0; i < TKV_ARRAY_LEN(all); i++) {
        if (strcasecmp(name, sec_method_name(all[i])) == 0) {
            *m = all[i];
            return 0;
        }
    }
    return -EINVAL;
}

int sec__hex_decode(const char *s, size_t n, uint8_t *out)
{
    if (n % 2 != 0)
        return -EINVAL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = sec__hex_digit(s[2 * i]), lo = sec__hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int sec__hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sec_master_key_load(const char *path, uint8_t key[32], char err[TKV_ERRMSG_LEN])
{
    char dummy[TKV_ERRMSG_LEN];
    if (err == NULL)
        err = dummy;
    err[0] = '\0';
    if (path == NULL || path[0] == '\0') {
        snprintf(err, TKV_ERRMSG_LEN, "no master key file configured");
        return TKV_ECONFIG;
    }
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = sec__read_file(path, 4096, &b);
    if (rc != 0) {
        snprintf(err, TKV_ERRMSG_LEN, "read master key file %.150s: %s", path,
                 rc == TKV_ETOOLARGE ? "file too large" : tkv_strerror(rc));
        tkv_buf_deinit(&b);
        return TKV_ECONFIG;
    }
    size_t n = b.len;
    while (n > 0 && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r' || b.data[n - 1] == ' ' ||
                     b.data[n - 1] == '\t'))
        n--;
    rc = 0;
    if (n != 64) {
        snprintf(err, TKV_ERRMSG_LEN,
                 "master key file %.150s must hold 64 hex digits (a 256-bit key), found %zu "
                 "characters",
                 path, n);
        rc = TKV_ECONFIG;
    }
    if (rc == 0 && sec__hex_decode((const char *)b.data, 64, key) != 0) {
        snprintf(err, TKV_ERRMSG_LEN, "master key file %.150s holds a non-hex character", path);
        rc = TKV_ECONFIG;
    }
    sec__wipe(b.data, b.cap);
    tkv_buf_deinit(&b);
    if (rc != 0)
        sec__wipe(key, 32);
    return rc;
}

void sec_cipher_wipe(sec_cipher *c)
{
    sec__wipe(c, sizeof(*c));
}

int sec_cipher_apply(const sec_cipher *c, uint64_t offset, void *data, size_t len)
{
    if (c->method == SEC_PLAINTEXT)
        return 0;
    return sec__ctr_xor(c->method, c->key, c->iv, offset, data, len);
}
