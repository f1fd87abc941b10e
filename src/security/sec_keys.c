/*
 * sec_keys.c: the key dictionary (key.dict, under the master key) and the file dictionary
 * (file.dict, an append-only log of file name -> key id, method, IV).
 *
 * key.dict layout (all integers little-endian):
 *   header (authenticated as GCM associated data, 32 bytes):
 *     "TKVKDICT" | u32 version (1) | 8-byte master key check | 12-byte nonce
 *   AES-256-GCM ciphertext of the payload | 16-byte tag
 *   payload: u64 current key id (0: plaintext) | u32 count | count x
 *            (u64 id | u8 method | u64 creation time, Unix s | 32 key bytes, zero padded)
 * The master key check is the first 8 bytes of HMAC-SHA256(master key, a fixed label): it
 * tells "wrong master key" (check differs) from "corrupt dictionary" (check matches, tag
 * fails) and says nothing useful about the key.
 *
 * file.dict layout: "TKVFDICT" | u32 version (1), then records
 *   u32 payload length | u32 CRC-32 of the payload | payload:
 *   u8 op (1 put, 2 delete) | u64 key id | u8 method | 16-byte IV | u16 name length | name
 * A record that runs past the end of the file, or a bad last record, is a torn append (the
 * call that made it never returned) and is cut off; a bad record before the last one is
 * corruption. The log is rewritten with only live entries when dead records pile up.
 */
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "base/log.h"
#include "security/sec_int.h"

#define KD_MAGIC       "TKVKDICT"
#define FD_MAGIC       "TKVFDICT"
#define KD_VERSION     1
#define FD_VERSION     1
#define KD_HEADER_LEN  32
#define KD_ENTRY_LEN   49
#define FD_HEADER_LEN  12
#define FD_FIXED_LEN   28 /* payload bytes before the name */
#define FD_MAX_NAME    4096
#define DICT_MAX_BYTES (256u << 20)

static const char check_label[] = "tikv-c key dictionary master key check v1";

typedef struct dkey {
    uint64_t id;
    sec_method method;
    uint64_t created_s;
    uint8_t key[SEC_MAX_KEY_LEN];
} dkey;

typedef struct fent {
    char *name;
    uint64_t key_id;
    sec_method method;
    uint8_t iv[SEC_IV_LEN];
} fent;

struct sec_keys {
    pthread_mutex_t mu;
    sec_method method;
    uint64_t rotation_period_s;
    bool read_only;
    uint64_t (*now_s)(void *ud);
    void *clock_ud;
    char dir[PATH_MAX]; /* absolute, lexically normalized, no trailing slash */
    char key_path[PATH_MAX];
    char file_path[PATH_MAX];
    uint8_t master[32];
    dkey *keys;
    size_t n_keys, cap_keys;
    uint64_t current_id;
    fent *files; /* sorted by name */
    size_t n_files, cap_files;
    int log_fd;
    uint64_t log_size;
    size_t log_records;
    char errmsg[TKV_ERRMSG_LEN];
};

static uint64_t now_s(const sec_keys *k)
{
    if (k->now_s != NULL)
        return k->now_s(k->clock_ud);
    return (uint64_t)time(NULL);
}

static void set_err(char *err, const char *fmt, ...) TKV_PRINTF(2, 3);
static void set_err(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, TKV_ERRMSG_LEN, fmt, ap);
    va_end(ap);
}

/* ---- names ------------------------------------------------------------------------------ */

/* Writes the lexically normalized absolute form of @path into @out: "." and empty parts are
 * dropped, ".." removes the part before it. Errors: -ENAMETOOLONG, -errno from getcwd. */
static int normalize_abs(const char *path, char *out, size_t cap)
{
    char buf[PATH_MAX * 2];
    if (path[0] == '/') {
        if (strlen(path) >= sizeof(buf))
            return -ENAMETOOLONG;
        strcpy(buf, path);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return -errno;
        if (snprintf(buf, sizeof(buf), "%s/%s", cwd, path) >= (int)sizeof(buf))
            return -ENAMETOOLONG;
    }
    size_t n = 0;
    char *save = NULL;
    for (char *part = strtok_r(buf, "/", &save); part != NULL; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0) {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            continue;
        }
        size_t len = strlen(part);
        if (n + 1 + len + 1 > cap)
            return -ENAMETOOLONG;
        out[n++] = '/';
        memcpy(out + n, part, len);
        n += len;
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
    return 0;
}

/* The dictionary name of @path: relative to the dictionary directory when under it. */
static int dict_name(const sec_keys *k, const char *path, char *out, size_t cap)
{
    char abs[PATH_MAX];
    int rc = normalize_abs(path, abs, sizeof(abs));
    if (rc != 0)
        return rc;
    size_t dl = strlen(k->dir);
    const char *name = abs;
    if (strncmp(abs, k->dir, dl) == 0 && abs[dl] == '/' && abs[dl + 1] != '\0')
        name = abs + dl + 1;
    else if (strcmp(k->dir, "/") == 0 && strlen(abs) > 1)
        name = abs + 1;
    if (strlen(name) >= cap || strlen(name) > FD_MAX_NAME)
        return -ENAMETOOLONG;
    strcpy(out, name);
    return 0;
}

/* ---- the in-memory maps ----------------------------------------------------------------- */

static dkey *find_key(sec_keys *k, uint64_t id)
{
    for (size_t i = 0; i < k->n_keys; i++)
        if (k->keys[i].id == id)
            return &k->keys[i];
    return NULL;
}

/* Returns the index of @name in the sorted file table, or where it would go (*found false). */
static size_t find_file(const sec_keys *k, const char *name, bool *found)
{
    size_t lo = 0, hi = k->n_files;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(k->files[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static int map_put(sec_keys *k, const char *name, uint64_t key_id, sec_method m,
                   const uint8_t iv[SEC_IV_LEN])
{
    bool found;
    size_t i = find_file(k, name, &found);
    if (!found) {
        if (k->n_files == k->cap_files) {
            size_t cap = k->cap_files ? k->cap_files * 2 : 64;
            fent *nf = tkv_realloc(k->files, cap * sizeof(*nf));
            if (nf == NULL)
                return -ENOMEM;
            k->files = nf;
            k->cap_files = cap;
        }
        char *copy = tkv_strdup(name);
        if (copy == NULL)
            return -ENOMEM;
        memmove(&k->files[i + 1], &k->files[i], (k->n_files - i) * sizeof(fent));
        k->n_files++;
        k->files[i].name = copy;
    }
    k->files[i].key_id = key_id;
    k->files[i].method = m;
    memcpy(k->files[i].iv, iv, SEC_IV_LEN);
    return 0;
}

static void map_del(sec_keys *k, const char *name)
{
    bool found;
    size_t i = find_file(k, name, &found);
    if (!found)
        return;
    tkv_free(k->files[i].name);
    memmove(&k->files[i], &k->files[i + 1], (k->n_files - i - 1) * sizeof(fent));
    k->n_files--;
}

/* ---- key.dict ----------------------------------------------------------------------------- */

static void master_check(const uint8_t master[32], uint8_t out[8])
{
    uint8_t mac[32];
    sec__hmac_sha256(master, 32, check_label, sizeof(check_label) - 1, mac);
    memcpy(out, mac, 8);
}

/* Encrypts the key table under the master key and writes key.dict atomically. */
static int write_key_dict(sec_keys *k)
{
    size_t plen = 12 + k->n_keys * KD_ENTRY_LEN;
    size_t total = KD_HEADER_LEN + plen + SEC__GCM_TAG_LEN;
    uint8_t *plain = tkv_malloc(plen);
    uint8_t *file = tkv_malloc(total);
    int rc = plain == NULL || file == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        sec__put_u64(plain, k->current_id);
        sec__put_u32(plain + 8, (uint32_t)k->n_keys);
        for (size_t i = 0; i < k->n_keys; i++) {
            uint8_t *e = plain + 12 + i * KD_ENTRY_LEN;
            sec__put_u64(e, k->keys[i].id);
            e[8] = (uint8_t)k->keys[i].method;
            sec__put_u64(e + 9, k->keys[i].created_s);
            memcpy(e + 17, k->keys[i].key, SEC_MAX_KEY_LEN);
        }
        memcpy(file, KD_MAGIC, 8);
        sec__put_u32(file + 8, KD_VERSION);
        master_check(k->master, file + 12);
        rc = sec__random(file + 20, SEC__GCM_NONCE_LEN);
    }
    if (rc == 0)
        rc = sec__gcm_seal(k->master, file + 20, file, KD_HEADER_LEN, plain, plen,
                           file + KD_HEADER_LEN, file + KD_HEADER_LEN + plen);
    if (rc == 0)
        rc = sec__write_atomic(k->key_path, file, total);
    if (plain != NULL)
        sec__wipe(plain, plen);
    tkv_free(plain);
    tkv_free(file);
    return rc;
}

/* Decrypts key.dict's bytes @d with @master into the key table. */
static int parse_key_dict(sec_keys *k, tkv_slice d, const uint8_t master[32], char *err)
{
    size_t plen = d.len - KD_HEADER_LEN - SEC__GCM_TAG_LEN;
    uint8_t *plain = tkv_malloc(plen > 0 ? plen : 1);
    if (plain == NULL)
        return -ENOMEM;
    int rc = sec__gcm_open(master, d.data + 20, d.data, KD_HEADER_LEN, d.data + KD_HEADER_LEN, plen,
                           plain, d.data + KD_HEADER_LEN + plen);
    if (rc == TKV_ECORRUPT) {
        set_err(err, "key dictionary %.150s is corrupt: authentication (GCM tag) failed",
                k->key_path);
    } else if (rc != 0) {
        set_err(err, "decrypt key dictionary: %s", tkv_strerror(rc));
    } else if (plen < 12 || (plen - 12) % KD_ENTRY_LEN != 0 ||
               sec__get_u32(plain + 8) != (plen - 12) / KD_ENTRY_LEN) {
        set_err(err, "key dictionary %.150s has a malformed payload", k->key_path);
        rc = TKV_ECORRUPT;
    }
    size_t n = rc == 0 ? (plen - 12) / KD_ENTRY_LEN : 0;
    if (rc == 0 && n > 0 && (k->keys = tkv_calloc(n, sizeof(dkey))) == NULL)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const uint8_t *e = plain + 12 + i * KD_ENTRY_LEN;
        dkey *dk = &k->keys[i];
        dk->id = sec__get_u64(e);
        dk->method = (sec_method)e[8];
        dk->created_s = sec__get_u64(e + 9);
        memcpy(dk->key, e + 17, SEC_MAX_KEY_LEN);
        if (dk->id == 0 || sec__method_key_len(dk->method) == 0) {
            set_err(err, "key dictionary %.150s has an invalid key entry", k->key_path);
            rc = TKV_ECORRUPT;
        }
        k->n_keys = k->cap_keys = i + 1;
    }
    if (rc == 0) {
        k->current_id = sec__get_u64(plain);
        if (k->current_id != 0 && find_key(k, k->current_id) == NULL) {
            set_err(err, "key dictionary %.150s names a current key it does not hold", k->key_path);
            rc = TKV_ECORRUPT;
        }
    }
    sec__wipe(plain, plen > 0 ? plen : 1);
    tkv_free(plain);
    return rc;
}

/* Loads key.dict; *@rewrite is set when it was opened with the previous master key. */
static int load_key_dict(sec_keys *k, const uint8_t *previous, bool *rewrite, char *err)
{
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = sec__read_file(k->key_path, DICT_MAX_BYTES, &b);
    if (rc != 0) {
        if (rc != -ENOENT)
            set_err(err, "read key dictionary %.150s: %s", k->key_path, tkv_strerror(rc));
        tkv_buf_deinit(&b);
        return rc;
    }
    if (b.len < KD_HEADER_LEN + SEC__GCM_TAG_LEN || memcmp(b.data, KD_MAGIC, 8) != 0) {
        set_err(err, "%.150s is not a key dictionary", k->key_path);
        rc = TKV_ECORRUPT;
    } else if (sec__get_u32(b.data + 8) != KD_VERSION) {
        set_err(err, "key dictionary %.150s has unsupported version %u", k->key_path,
                sec__get_u32(b.data + 8));
        rc = TKV_ECORRUPT;
    }
    if (rc == 0) {
        uint8_t check[8];
        master_check(k->master, check);
        if (memcmp(check, b.data + 12, 8) == 0) {
            rc = parse_key_dict(k, tkv_buf_slice(&b), k->master, err);
        } else {
            uint8_t pcheck[8];
            if (previous != NULL)
                master_check(previous, pcheck);
            if (previous != NULL && memcmp(pcheck, b.data + 12, 8) == 0) {
                rc = parse_key_dict(k, tkv_buf_slice(&b), previous, err);
                *rewrite = rc == 0;
            } else {
                set_err(err,
                        "wrong master key: the key dictionary %.150s was not written with the "
                        "configured master key%s",
                        k->key_path, previous != NULL ? " nor with previous-master-key" : "");
                rc = TKV_ECONFIG;
            }
        }
    }
    tkv_buf_deinit(&b);
    return rc;
}

static uint64_t new_key_id(sec_keys *k)
{
    for (;;) {
        uint8_t r[8];
        if (sec__random(r, sizeof(r)) != 0)
            return 0;
        uint64_t id = sec__get_u64(r);
        if (id != 0 && find_key(k, id) == NULL)
            return id;
    }
}

/* Adds a fresh data key for the configured method, makes it current and persists key.dict;
 * on failure the table is as before. Caller holds the mutex (or is opening). */
static int rotate_locked(sec_keys *k)
{
    if (k->read_only)
        return -EROFS;
    size_t klen = sec__method_key_len(k->method);
    if (klen == 0) {
        if (k->current_id == 0)
            return 0;
        uint64_t old = k->current_id;
        k->current_id = 0;
        int rc = write_key_dict(k);
        if (rc != 0)
            k->current_id = old;
        return rc;
    }
    if (k->n_keys == k->cap_keys) {
        size_t cap = k->cap_keys ? k->cap_keys * 2 : 8;
        dkey *nk = tkv_realloc(k->keys, cap * sizeof(*nk));
        if (nk == NULL)
            return -ENOMEM;
        k->keys = nk;
        k->cap_keys = cap;
    }
    dkey *dk = &k->keys[k->n_keys];
    memset(dk, 0, sizeof(*dk));
    dk->id = new_key_id(k);
    dk->method = k->method;
    dk->created_s = now_s(k);
    if (dk->id == 0 || sec__random(dk->key, klen) != 0)
        return TKV_EUNSUPPORTED;
    uint64_t old = k->current_id;
    k->n_keys++;
    k->current_id = dk->id;
    int rc = write_key_dict(k);
    if (rc != 0) {
        k->n_keys--;
        k->current_id = old;
        sec__wipe(dk, sizeof(*dk));
        return rc;
    }
    TKV_LOG_INFO("encryption data key rotated", TKV_LF_U64("key_id", dk->id),
                 TKV_LF_STR("method", sec_method_name(dk->method)));
    return 0;
}

static bool rotation_due(const sec_keys *k, const dkey *cur)
{
    if (cur == NULL)
        return sec__method_key_len(k->method) != 0;
    if (cur->method != k->method)
        return true;
    return k->rotation_period_s != 0 && now_s(k) >= cur->created_s + k->rotation_period_s;
}

/* ---- file.dict ---------------------------------------------------------------------------- */

static size_t encode_record(uint8_t *out, int op, const char *name, uint64_t key_id, sec_method m,
                            const uint8_t *iv)
{
    size_t nlen = strlen(name);
    uint8_t *p = out + 8;
    p[0] = (uint8_t)op;
    sec__put_u64(p + 1, key_id);
    p[9] = (uint8_t)m;
    if (iv != NULL)
        memcpy(p + 10, iv, SEC_IV_LEN);
    else
        memset(p + 10, 0, SEC_IV_LEN);
    p[26] = (uint8_t)(nlen & 0xff);
    p[27] = (uint8_t)(nlen >> 8);
    memcpy(p + FD_FIXED_LEN, name, nlen);
    size_t plen = FD_FIXED_LEN + nlen;
    sec__put_u32(out, (uint32_t)plen);
    sec__put_u32(out + 4, (uint32_t)crc32(0L, p, (uInt)plen));
    return 8 + plen;
}

/* Replays file.dict's bytes into the file table; *@good_len is the length of the valid
 * prefix (a torn last record is left out). */
static int replay_file_dict(sec_keys *k, tkv_slice d, uint64_t *good_len, char *err)
{
    if (d.len < FD_HEADER_LEN || memcmp(d.data, FD_MAGIC, 8) != 0 ||
        sec__get_u32(d.data + 8) != FD_VERSION) {
        set_err(err, "%.150s is not a file dictionary (bad header)", k->file_path);
        return TKV_ECORRUPT;
    }
    size_t off = FD_HEADER_LEN;
    while (off < d.len) {
        bool last_possible = false;
        size_t left = d.len - off;
        if (left < 8)
            break; /* torn header of the last record */
        uint32_t plen = sec__get_u32(d.data + off);
        uint32_t crc = sec__get_u32(d.data + off + 4);
        if (plen > left - 8)
            break; /* the last record runs past the end: torn */
        last_possible = off + 8 + plen == d.len;
        const uint8_t *p = d.data + off + 8;
        bool ok = plen >= FD_FIXED_LEN && (uint32_t)crc32(0L, p, plen) == crc;
        size_t nlen = ok ? (size_t)p[26] | (size_t)p[27] << 8 : 0;
        /* Names are at most FD_MAX_NAME bytes (found by fuzz_enc_dict: a record with a longer
         * name and a valid CRC overflowed the name buffer below). */
        ok = ok && FD_FIXED_LEN + nlen == plen && nlen > 0 && nlen <= FD_MAX_NAME &&
             (p[0] == 1 || p[0] == 2);
        ok = ok && memchr(p + FD_FIXED_LEN, '\0', nlen) == NULL;
        if (!ok) {
            if (last_possible)
                break;
            set_err(err, "file dictionary %.150s is corrupt at offset %zu", k->file_path, off);
            return TKV_ECORRUPT;
        }
        char name[FD_MAX_NAME + 1];
        memcpy(name, p + FD_FIXED_LEN, nlen);
        name[nlen] = '\0';
        if (p[0] == 1) {
            int rc = map_put(k, name, sec__get_u64(p + 1), (sec_method)p[9], p + 10);
            if (rc != 0)
                return rc;
        } else {
            map_del(k, name);
        }
        k->log_records++;
        off += 8 + plen;
    }
    *good_len = off;
    return 0;
}

/* Rewrites file.dict with only the live entries and reopens the append descriptor. */
static int compact_file_dict(sec_keys *k)
{
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = tkv_buf_reserve(&b, FD_HEADER_LEN);
    if (rc == 0) {
        memcpy(b.data, FD_MAGIC, 8);
        sec__put_u32(b.data + 8, FD_VERSION);
        b.len = FD_HEADER_LEN;
    }
    for (size_t i = 0; rc == 0 && i < k->n_files; i++) {
        const fent *f = &k->files[i];
        rc = tkv_buf_reserve(&b, 8 + FD_FIXED_LEN + strlen(f->name));
        if (rc == 0)
            b.len += encode_record(b.data + b.len, 1, f->name, f->key_id, f->method, f->iv);
    }
    if (rc == 0)
        rc = sec__write_atomic(k->file_path, b.data, b.len);
    int fd = -1;
    if (rc == 0 && (fd = open(k->file_path, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0)
        rc = -errno;
    if (rc == 0) {
        if (k->log_fd >= 0)
            close(k->log_fd);
        k->log_fd = fd;
        k->log_size = b.len;
        k->log_records = k->n_files;
    }
    tkv_buf_deinit(&b);
    return rc;
}

/* Appends one durable record; on failure the log is cut back to its previous length. */
static int append_record(sec_keys *k, int op, const char *name, uint64_t key_id, sec_method m,
                         const uint8_t *iv)
{
    if (k->read_only)
        return -EROFS;
    uint8_t rec[8 + FD_FIXED_LEN + FD_MAX_NAME];
    size_t len = encode_record(rec, op, name, key_id, m, iv);
    int rc = sec__write_all(k->log_fd, rec, len);
    if (rc == 0 && fdatasync(k->log_fd) != 0)
        rc = -errno;
    if (rc != 0) {
        TKV_IGNORE(ftruncate(k->log_fd, (off_t)k->log_size));
        snprintf(k->errmsg, sizeof(k->errmsg), "append to file dictionary: %s", tkv_strerror(rc));
        return rc;
    }
    k->log_size += len;
    k->log_records++;
    return 0;
}

static void maybe_compact(sec_keys *k)
{
    if (k->log_records <= 2 * k->n_files + 1024)
        return;
    int rc = compact_file_dict(k);
    if (rc != 0) /* the log stays valid, only longer */
        TKV_LOG_WARN("file dictionary compaction failed", TKV_LF_ERR("error", rc));
}

/* Records and applies a put of @name; the caller holds the mutex. */
static int put_locked(sec_keys *k, const char *name, uint64_t key_id, sec_method m,
                      const uint8_t iv[SEC_IV_LEN])
{
    int rc = append_record(k, 1, name, key_id, m, iv);
    return rc == 0 ? map_put(k, name, key_id, m, iv) : rc;
}

/* Records and applies the removal of @name if it has an entry; the caller holds the mutex. */
static int drop_locked(sec_keys *k, const char *name)
{
    bool found;
    TKV_IGNORE(find_file(k, name, &found));
    if (!found)
        return 0;
    int rc = append_record(k, 2, name, 0, SEC_PLAINTEXT, NULL);
    if (rc == 0)
        map_del(k, name);
    return rc;
}

static int open_file_dict(sec_keys *k, char *err)
{
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = sec__read_file(k->file_path, DICT_MAX_BYTES, &b);
    uint64_t good = 0;
    if (rc == -ENOENT) {
        rc = 0;
        if (!k->read_only)
            rc = compact_file_dict(k); /* creates an empty log */
        if (rc != 0)
            set_err(err, "create file dictionary %.150s: %s", k->file_path, tkv_strerror(rc));
        tkv_buf_deinit(&b);
        return rc;
    }
    if (rc != 0) {
        set_err(err, "read file dictionary %.150s: %s", k->file_path, tkv_strerror(rc));
    } else {
        rc = replay_file_dict(k, tkv_buf_slice(&b), &good, err);
    }
    if (rc == 0 && !k->read_only) {
        if (good < b.len) {
            TKV_LOG_WARN("file dictionary had a torn last record; dropped it",
                         TKV_LF_U64("offset", good));
            if (truncate(k->file_path, (off_t)good) != 0)
                rc = -errno;
        }
        if (rc == 0 && (k->log_fd = open(k->file_path, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0)
            rc = -errno;
        if (rc != 0)
            set_err(err, "open file dictionary %.150s: %s", k->file_path, tkv_strerror(rc));
        k->log_size = good;
    }
    tkv_buf_deinit(&b);
    return rc;
}

/* ---- open / close ------------------------------------------------------------------------- */

void sec_enc_opts_init(sec_enc_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->method = SEC_PLAINTEXT;
    o->rotation_period_s = SEC_DEFAULT_ROTATION_S;
}

void sec_keys_close(sec_keys *k)
{
    if (k == NULL)
        return;
    if (k->log_fd >= 0)
        close(k->log_fd);
    for (size_t i = 0; i < k->n_files; i++)
        tkv_free(k->files[i].name);
    tkv_free(k->files);
    if (k->keys != NULL)
        sec__wipe(k->keys, k->cap_keys * sizeof(dkey));
    tkv_free(k->keys);
    pthread_mutex_destroy(&k->mu);
    sec__wipe(k, sizeof(*k));
    tkv_free(k);
}

static int open_fill(sec_keys *k, const sec_enc_opts *o, char *err)
{
    int rc = normalize_abs(o->dict_dir, k->dir, sizeof(k->dir));
    if (rc == 0 && (snprintf(k->key_path, sizeof(k->key_path), "%s/key.dict", k->dir) >=
                        (int)sizeof(k->key_path) ||
                    snprintf(k->file_path, sizeof(k->file_path), "%s/file.dict", k->dir) >=
                        (int)sizeof(k->file_path)))
        rc = -ENAMETOOLONG;
    if (rc != 0) {
        set_err(err, "dictionary directory %.150s: %s", o->dict_dir, tkv_strerror(rc));
        return rc;
    }
    if (!o->read_only && mkdir(k->dir, 0700) != 0 && errno != EEXIST) {
        rc = -errno;
        set_err(err, "create dictionary directory %.150s: %s", k->dir, tkv_strerror(rc));
        return rc;
    }
    rc = sec_master_key_load(o->master_key_path, k->master, err);
    if (rc != 0)
        return rc;
    uint8_t prev[32];
    bool have_prev = o->previous_master_key_path != NULL;
    if (have_prev && (rc = sec_master_key_load(o->previous_master_key_path, prev, err)) != 0)
        return rc;
    bool rewrite = false;
    rc = load_key_dict(k, have_prev ? prev : NULL, &rewrite, err);
    if (have_prev)
        sec__wipe(prev, sizeof(prev));
    bool fresh = rc == -ENOENT;
    if (fresh)
        rc = 0;
    if (rc == 0)
        rc = open_file_dict(k, err);
    if (rc != 0)
        return rc;
    if (fresh) {
        for (size_t i = 0; i < k->n_files; i++) {
            if (k->files[i].method != SEC_PLAINTEXT) {
                set_err(err,
                        "key dictionary %.150s is missing but the file dictionary names "
                        "encrypted files",
                        k->key_path);
                return TKV_ECORRUPT;
            }
        }
    }
    if (k->read_only)
        return 0;
    if (rewrite) {
        if ((rc = write_key_dict(k)) != 0) {
            set_err(err, "rewrite key dictionary under the new master key: %s", tkv_strerror(rc));
            return rc;
        }
        TKV_LOG_INFO("encryption master key rotated: key dictionary rewritten");
    }
    if (rotation_due(k, find_key(k, k->current_id)) ||
        (k->method == SEC_PLAINTEXT && k->current_id != 0)) {
        rc = rotate_locked(k);
    } else if (fresh) {
        rc = write_key_dict(k);
    }
    if (rc != 0)
        set_err(err, "write key dictionary %.150s: %s", k->key_path, tkv_strerror(rc));
    return rc;
}

int sec_keys_open(const sec_enc_opts *o, sec_keys **out, char err[TKV_ERRMSG_LEN])
{
    char dummy[TKV_ERRMSG_LEN];
    if (err == NULL)
        err = dummy;
    err[0] = '\0';
    if (o == NULL || out == NULL || o->dict_dir == NULL) {
        set_err(err, "sec_keys_open: missing options or dictionary directory");
        return -EINVAL;
    }
    if (o->method != SEC_PLAINTEXT && sec__method_key_len(o->method) == 0) {
        set_err(err, "unsupported data-encryption-method %d", (int)o->method);
        return TKV_ECONFIG;
    }
    if (o->master_key_path == NULL) {
        set_err(err, "[security.encryption.master-key] path is required");
        return TKV_ECONFIG;
    }
    sec_keys *k = tkv_calloc(1, sizeof(*k));
    if (k == NULL)
        return -ENOMEM;
    TKV_ASSERT(pthread_mutex_init(&k->mu, NULL) == 0);
    k->log_fd = -1;
    k->method = o->method;
    k->rotation_period_s = o->rotation_period_s;
    k->read_only = o->read_only;
    k->now_s = o->now_s;
    k->clock_ud = o->clock_ud;
    int rc = open_fill(k, o, err);
    if (rc != 0) {
        sec_keys_close(k);
        return rc;
    }
    *out = k;
    return 0;
}

const char *sec_keys_errmsg(const sec_keys *k)
{
    return k->errmsg;
}

sec_method sec_keys_method(const sec_keys *k)
{
    return k->method;
}

uint64_t sec_keys_current_id(sec_keys *k)
{
    pthread_mutex_lock(&k->mu);
    uint64_t id = k->current_id;
    pthread_mutex_unlock(&k->mu);
    return id;
}

int sec_keys_rotate_if_due(sec_keys *k, bool *rotated)
{
    pthread_mutex_lock(&k->mu);
    int rc = 0;
    bool due = !k->read_only && rotation_due(k, find_key(k, k->current_id));
    if (due)
        rc = rotate_locked(k);
    pthread_mutex_unlock(&k->mu);
    if (rotated != NULL)
        *rotated = due && rc == 0;
    return k->read_only ? -EROFS : rc;
}

int sec_keys_rotate(sec_keys *k)
{
    pthread_mutex_lock(&k->mu);
    int rc = rotate_locked(k);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

/* ---- file operations ---------------------------------------------------------------------- */

/* Fills @c from entry @f; the caller holds the mutex. */
static int cipher_of(sec_keys *k, const fent *f, sec_cipher *c)
{
    memset(c, 0, sizeof(*c));
    c->method = SEC_PLAINTEXT;
    if (f == NULL || f->method == SEC_PLAINTEXT)
        return 0;
    const dkey *dk = find_key(k, f->key_id);
    if (dk == NULL || dk->method != f->method) {
        snprintf(k->errmsg, sizeof(k->errmsg),
                 "file %.150s names data key %llu, not in the "
                 "key dictionary",
                 f->name, (unsigned long long)f->key_id);
        return TKV_ECORRUPT;
    }
    c->method = f->method;
    c->key_id = f->key_id;
    memcpy(c->key, dk->key, SEC_MAX_KEY_LEN);
    memcpy(c->iv, f->iv, SEC_IV_LEN);
    return 0;
}

int sec_keys_new_file(sec_keys *k, const char *path, sec_cipher *c)
{
    char name[PATH_MAX];
    memset(c, 0, sizeof(*c));
    c->method = SEC_PLAINTEXT;
    int rc = dict_name(k, path, name, sizeof(name));
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&k->mu);
    if (k->current_id == 0) {
        rc = drop_locked(k, name);
    } else {
        const dkey *dk = find_key(k, k->current_id);
        uint8_t iv[SEC_IV_LEN];
        rc = sec__random(iv, sizeof(iv));
        if (rc == 0)
            rc = put_locked(k, name, dk->id, dk->method, iv);
        if (rc == 0) {
            bool found;
            rc = cipher_of(k, &k->files[find_file(k, name, &found)], c);
        }
    }
    if (rc == 0)
        maybe_compact(k);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int sec_keys_file_cipher(sec_keys *k, const char *path, sec_cipher *c, bool *found)
{
    char name[PATH_MAX];
    memset(c, 0, sizeof(*c));
    c->method = SEC_PLAINTEXT;
    int rc = dict_name(k, path, name, sizeof(name));
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&k->mu);
    bool f;
    size_t i = find_file(k, name, &f);
    rc = cipher_of(k, f ? &k->files[i] : NULL, c);
    pthread_mutex_unlock(&k->mu);
    if (found != NULL)
        *found = f;
    return rc;
}

int sec_keys_delete_file(sec_keys *k, const char *path)
{
    char name[PATH_MAX];
    int rc = dict_name(k, path, name, sizeof(name));
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&k->mu);
    rc = drop_locked(k, name);
    if (rc == 0)
        maybe_compact(k);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

/* Copies @src's entry to @dst (or drops @dst's); with @move, drops @src's afterwards. */
static int link_or_move(sec_keys *k, const char *src, const char *dst, bool move)
{
    char sname[PATH_MAX], dname[PATH_MAX];
    int rc = dict_name(k, src, sname, sizeof(sname));
    if (rc == 0)
        rc = dict_name(k, dst, dname, sizeof(dname));
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&k->mu);
    bool sfound;
    size_t si = find_file(k, sname, &sfound);
    if (strcmp(sname, dname) == 0) {
        rc = 0;
    } else if (sfound) {
        fent e = k->files[si]; /* a copy: put_locked may move the table */
        rc = put_locked(k, dname, e.key_id, e.method, e.iv);
        if (rc == 0 && move)
            rc = drop_locked(k, sname);
    } else {
        rc = drop_locked(k, dname);
    }
    if (rc == 0)
        maybe_compact(k);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int sec__keys_restore(sec_keys *k, const char *path, const sec_cipher *c, bool found)
{
    char name[PATH_MAX];
    int rc = dict_name(k, path, name, sizeof(name));
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&k->mu);
    rc = found ? put_locked(k, name, c->key_id, c->method, c->iv) : drop_locked(k, name);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int sec_keys_link_file(sec_keys *k, const char *src, const char *dst)
{
    return link_or_move(k, src, dst, false);
}

int sec_keys_rename_file(sec_keys *k, const char *src, const char *dst)
{
    return link_or_move(k, src, dst, true);
}

/* ---- inspection --------------------------------------------------------------------------- */

int sec_encryption_meta(sec_keys *k, tkv_buf *out)
{
    json_t *root = json_object();
    json_t *keys = json_array();
    json_t *files = json_array();
    int rc = root == NULL || keys == NULL || files == NULL ? -ENOMEM : 0;
    pthread_mutex_lock(&k->mu);
    if (rc == 0) {
        rc |= json_object_set_new(root, "method", json_string(sec_method_name(k->method)));
        rc |= json_object_set_new(root, "current_key_id", json_integer((json_int_t)k->current_id));
    }
    for (size_t i = 0; rc == 0 && i < k->n_keys; i++) {
        const dkey *d = &k->keys[i];
        json_t *e =
            json_pack("{s:I, s:s, s:I}", "id", (json_int_t)d->id, "method",
                      sec_method_name(d->method), "creation_time", (json_int_t)d->created_s);
        rc = e == NULL ? -ENOMEM : json_array_append_new(keys, e);
    }
    for (size_t i = 0; rc == 0 && i < k->n_files; i++) {
        const fent *f = &k->files[i];
        char iv[2 * SEC_IV_LEN + 1];
        sec__hex(f->iv, SEC_IV_LEN, iv);
        json_t *e = json_pack("{s:I, s:s, s:s}", "key_id", (json_int_t)f->key_id, "method",
                              sec_method_name(f->method), "iv", iv);
        /* File names are bytes: one that is not UTF-8 (JSON strings must be) is shown in hex
         * (found by fuzz_enc_dict: such a name made the whole call fail as out of memory). */
        json_t *name = json_string(f->name);
        const char *field = "name";
        if (name == NULL) {
            size_t len = strlen(f->name);
            char *h = tkv_malloc(2 * len + 1);
            if (h != NULL) {
                sec__hex((const uint8_t *)f->name, len, h);
                name = json_string(h);
                tkv_free(h);
            }
            field = "name_hex";
        }
        if (e == NULL || name == NULL || json_object_set_new(e, field, name) != 0) {
            json_decref(e);
            rc = -ENOMEM;
        } else {
            rc = json_array_append_new(files, e);
        }
    }
    pthread_mutex_unlock(&k->mu);
    if (rc == 0) {
        rc |= json_object_set(root, "keys", keys);
        rc |= json_object_set(root, "files", files);
    }
    char *text = rc == 0 ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    rc = text == NULL ? -ENOMEM : tkv_buf_set(out, text, strlen(text));
    free(text);
    json_decref(keys);
    json_decref(files);
    json_decref(root);
    return rc;
}
