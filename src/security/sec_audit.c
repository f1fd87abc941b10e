/*
 * sec_audit.c: the hash-chained audit log and its verifier (contract in audit.h).
 */
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "security/audit.h"
#include "security/sec_int.h"

#define HASH_SUFFIX_LEN 75 /* ,"hash":"<64 hex>"} */
#define HEAD_MAGIC      "TKVAUDITHEAD"
#define MAX_LINE        (1u << 20)
#define MAX_KEY         64

struct sec_audit {
    pthread_mutex_t mu;
    int fd;
    int head_fd;
    sec_audit_sync sync;
    uint64_t sync_interval_ms;
    uint64_t last_sync_ms;
    uint8_t key[MAX_KEY];
    size_t key_len;
    uint64_t (*now_ms)(void *ud);
    void *clock_ud;
    uint64_t next_seq;
    uint8_t prev[32];
    off_t size;
};

void sec_audit_opts_init(sec_audit_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->sync = SEC_AUDIT_SYNC_ALWAYS;
    o->sync_interval_ms = 1000;
}

static void chain_hash(const uint8_t *key, size_t key_len, const uint8_t prev[32], const char *line,
                       size_t len, uint8_t out[32])
{
    if (key_len == 0) {
        sec__sha256_2(prev, 32, line, len, out);
        return;
    }
    /* HMAC over prev || line: built in one buffer, lines are bounded by MAX_LINE. */
    uint8_t *buf = tkv_xmalloc(32 + len);
    memcpy(buf, prev, 32);
    memcpy(buf + 32, line, len);
    sec__hmac_sha256(key, key_len, buf, 32 + len, out);
    tkv_free(buf);
}

/* Decodes exactly 64 lowercase hex digits (as the writer prints them) into @out. */
static int parse_hex32(const char *s, size_t len, uint8_t out[32])
{
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'F')
            return -EINVAL;
    return len == 64 ? sec__hex_decode(s, 64, out) : -EINVAL;
}

static void head_path(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s.head", path);
}

/* ---- verification ----------------------------------------------------------------------- */

static int fail(sec_audit_report *r, uint64_t line, const char *fmt, ...) TKV_PRINTF(3, 4);
static int fail(sec_audit_report *r, uint64_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->problem, sizeof(r->problem), fmt, ap);
    va_end(ap);
    r->bad_line = line;
    return TKV_ECORRUPT;
}

/* Checks one complete line (without its newline) against the chain state. */
static int verify_line(const char *line, size_t len, uint64_t lineno, const uint8_t *key,
                       size_t key_len, uint64_t want_seq, uint8_t prev[32], bool *is_seal,
                       sec_audit_report *r)
{
    static const char suffix_start[] = ",\"hash\":\"";
    if (len < HASH_SUFFIX_LEN + 2 || line[len - 1] != '}' || line[len - 2] != '"' ||
        memcmp(line + len - HASH_SUFFIX_LEN, suffix_start, sizeof(suffix_start) - 1) != 0)
        return fail(r, lineno, "line %llu is not an audit record (no trailing hash)",
                    (unsigned long long)lineno);
    uint8_t stored[32];
    if (parse_hex32(line + len - 66, 64, stored) != 0)
        return fail(r, lineno, "line %llu has a malformed hash", (unsigned long long)lineno);
    size_t body = len - HASH_SUFFIX_LEN;
    json_error_t jerr;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        return fail(r, lineno, "line %llu is not valid JSON", (unsigned long long)lineno);
    }
    json_t *seq = json_object_get(j, "seq");
    json_t *pv = json_object_get(j, "prev");
    json_t *ev = json_object_get(j, "event");
    int rc = 0;
    uint8_t pbytes[32];
    if (!json_is_integer(seq) || !json_is_string(pv) || !json_is_string(ev)) {
        rc = fail(r, lineno, "line %llu lacks seq, prev or event", (unsigned long long)lineno);
    } else if ((uint64_t)json_integer_value(seq) != want_seq) {
        rc = fail(r, lineno,
                  "line %llu has seq %lld where %llu was expected (records missing, "
                  "inserted or reordered)",
                  (unsigned long long)lineno, (long long)json_integer_value(seq),
                  (unsigned long long)want_seq);
    } else if (parse_hex32(json_string_value(pv), json_string_length(pv), pbytes) != 0 ||
               memcmp(pbytes, prev, 32) != 0) {
        rc = fail(r, lineno, "line %llu does not chain to the record before it",
                  (unsigned long long)lineno);
    } else {
        uint8_t h[32];
        chain_hash(key, key_len, prev, line, body, h);
        if (memcmp(h, stored, 32) != 0) {
            rc = fail(r, lineno, "line %llu was altered (its hash does not match)",
                      (unsigned long long)lineno);
        } else {
            memcpy(prev, h, 32);
            *is_seal = strcmp(json_string_value(ev), "audit_log_sealed") == 0;
        }
    }
    json_decref(j);
    return rc;
}

/* Reads the head file: seq and hash of the last record written. */
static int read_head(const char *path, uint64_t *seq, uint8_t hash[32])
{
    char hp[PATH_MAX + 8];
    head_path(path, hp, sizeof(hp));
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = sec__read_file(hp, 4096, &b);
    if (rc == 0) {
        char text[200];
        size_t n = TKV_MIN(b.len, sizeof(text) - 1);
        memcpy(text, b.data, n);
        text[n] = '\0';
        /* HEAD_MAGIC " seq=<20 digits> hash=<64 hex>" */
        static const char pre[] = HEAD_MAGIC " seq=";
        char *end = NULL;
        errno = 0;
        unsigned long long s = 0;
        if (strncmp(text, pre, sizeof(pre) - 1) == 0)
            s = strtoull(text + sizeof(pre) - 1, &end, 10);
        if (end == NULL || errno != 0 || strncmp(end, " hash=", 6) != 0 ||
            parse_hex32(end + 6, strnlen(end + 6, 64), hash) != 0)
            rc = TKV_ECORRUPT;
        else
            *seq = s;
    }
    tkv_buf_deinit(&b);
    return rc;
}

/* The verification walk; also used at open, where @hashes_out gets the chain state. */
static int verify(const char *path, const uint8_t *key, size_t key_len, sec_audit_report *r,
                  uint64_t *good_bytes)
{
    memset(r, 0, sizeof(*r));
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = sec__read_file(path, SIZE_MAX / 2, &b);
    if (rc != 0) {
        snprintf(r->problem, sizeof(r->problem), "read %.150s: %s", path, tkv_strerror(rc));
        tkv_buf_deinit(&b);
        return rc;
    }
    uint8_t prev[32] = {0}, before_last[32] = {0};
    size_t off = 0;
    uint64_t lineno = 0;
    bool sealed = false;
    while (rc == 0 && off < b.len) {
        const char *line = (const char *)b.data + off;
        const char *nl = memchr(line, '\n', b.len - off);
        if (nl == NULL) {
            r->torn_bytes = b.len - off;
            break;
        }
        lineno++;
        size_t len = (size_t)(nl - line);
        memcpy(before_last, prev, 32);
        rc = verify_line(line, len, lineno, key, key_len, r->records, prev, &sealed, r);
        if (rc == 0) {
            r->records++;
            off += len + 1;
        }
    }
    *good_bytes = off;
    memcpy(r->last_hash, prev, 32);
    r->sealed = sealed && r->torn_bytes == 0;
    if (rc == 0) {
        uint64_t hseq = 0;
        uint8_t hhash[32];
        int hrc = read_head(path, &hseq, hhash);
        r->head_present = hrc == 0;
        r->head_seq = hseq;
        if (hrc == TKV_ECORRUPT) {
            rc = fail(r, 0, "the head file is malformed");
        } else if (hrc != 0 && r->records > 0) {
            rc = fail(r, 0,
                      "the head file is missing: truncation at the end cannot be ruled "
                      "out");
        } else if (hrc == 0 && r->records > 0) {
            uint64_t last = r->records - 1;
            /* The head is written right after each record, so a crash can leave it one
             * record behind; anything else means records were removed or the head edited. */
            bool at_last = hseq == last && memcmp(hhash, prev, 32) == 0;
            bool one_behind =
                !r->sealed && last > 0 && hseq == last - 1 && memcmp(hhash, before_last, 32) == 0;
            if (!at_last && !one_behind)
                rc = fail(r, lineno,
                          hseq > last ? "records are missing at the end: the head names record "
                                        "%llu, the log ends at %llu"
                                      : "the head (record %llu) does not match the log's last "
                                        "record %llu",
                          (unsigned long long)hseq, (unsigned long long)last);
        } else if (hrc == 0 && r->records == 0) {
            rc = fail(r, 0, "the log is empty but its head names record %llu",
                      (unsigned long long)hseq);
        }
    }
    tkv_buf_deinit(&b);
    return rc;
}

int sec_audit_verify(const char *path, const uint8_t *key, size_t key_len, sec_audit_report *r)
{
    if (path == NULL || r == NULL || key_len > MAX_KEY)
        return -EINVAL;
    uint64_t good;
    return verify(path, key, key_len, r, &good);
}

/* ---- writing ------------------------------------------------------------------------------ */

static uint64_t now_ms(const sec_audit *a)
{
    return a->now_ms != NULL ? a->now_ms(a->clock_ud) : tkv_clock_real_ms();
}

static int write_head(sec_audit *a, uint64_t seq, const uint8_t hash[32], bool sync)
{
    char hex[65], text[160];
    sec__hex(hash, 32, hex);
    int n = snprintf(text, sizeof(text), HEAD_MAGIC " seq=%020llu hash=%s\n",
                     (unsigned long long)seq, hex);
    ssize_t w = pwrite(a->head_fd, text, (size_t)n, 0);
    if (w != n)
        return w < 0 ? -errno : -EIO;
    if (sync && fdatasync(a->head_fd) != 0)
        return -errno;
    return 0;
}

static void fmt_time(uint64_t ms, char *out, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
}

/* Builds and appends one record; the caller holds the mutex. */
static int append_locked(sec_audit *a, const sec_audit_event *ev)
{
    char ts[64], prevhex[65];
    fmt_time(now_ms(a), ts, sizeof(ts));
    sec__hex(a->prev, 32, prevhex);
    json_t *j = json_object();
    if (j == NULL)
        return -ENOMEM;
    int jrc = json_object_set_new(j, "seq", json_integer((json_int_t)a->next_seq));
    jrc |= json_object_set_new(j, "time", json_string(ts));
    jrc |= json_object_set_new(j, "event", json_string(ev->type));
    const char *names[] = {"peer", "method", "reason", "details"};
    const char *vals[] = {ev->peer, ev->method, ev->reason, ev->details};
    for (size_t i = 0; i < 4; i++)
        if (vals[i] != NULL)
            jrc |= json_object_set_new(j, names[i], json_string(vals[i]));
    jrc |= json_object_set_new(j, "prev", json_string(prevhex));
    /* json_string refuses invalid UTF-8 (a set_new of NULL fails): report it as bad input. */
    char *text = jrc == 0 ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (text == NULL)
        return jrc != 0 ? -EINVAL : -ENOMEM;
    size_t body = strlen(text) - 1; /* without the closing brace */
    if (body + HASH_SUFFIX_LEN + 1 > MAX_LINE) {
        free(text);
        return TKV_ETOOLARGE;
    }
    uint8_t h[32];
    chain_hash(a->key, a->key_len, a->prev, text, body, h);
    char *line = tkv_malloc(body + HASH_SUFFIX_LEN + 1);
    if (line == NULL) {
        free(text);
        return -ENOMEM;
    }
    memcpy(line, text, body);
    free(text);
    char hex[65];
    sec__hex(h, 32, hex);
    int n = snprintf(line + body, HASH_SUFFIX_LEN + 2, ",\"hash\":\"%s\"}", hex);
    TKV_ASSERT(n == HASH_SUFFIX_LEN);
    line[body + HASH_SUFFIX_LEN] = '\n';
    size_t len = body + HASH_SUFFIX_LEN + 1;
    int rc = sec__write_all(a->fd, line, len);
    tkv_free(line);
    uint64_t t = now_ms(a);
    bool sync = a->sync == SEC_AUDIT_SYNC_ALWAYS ||
                (a->sync == SEC_AUDIT_SYNC_INTERVAL && t >= a->last_sync_ms + a->sync_interval_ms);
    if (rc == 0 && sync && fdatasync(a->fd) != 0)
        rc = -errno;
    if (rc != 0) {
        /* Cut a partial record back so the chain stays verifiable. */
        TKV_IGNORE(ftruncate(a->fd, a->size));
        return rc;
    }
    if (sync)
        a->last_sync_ms = t;
    a->size += (off_t)len;
    memcpy(a->prev, h, 32);
    rc = write_head(a, a->next_seq, h, sync);
    a->next_seq++;
    return rc;
}

int sec_audit_log(sec_audit *a, const sec_audit_event *ev)
{
    if (a == NULL || ev == NULL || ev->type == NULL)
        return -EINVAL;
    pthread_mutex_lock(&a->mu);
    int rc = append_locked(a, ev);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

uint64_t sec_audit_records(sec_audit *a)
{
    pthread_mutex_lock(&a->mu);
    uint64_t n = a->next_seq;
    pthread_mutex_unlock(&a->mu);
    return n;
}

static void audit_free(sec_audit *a)
{
    if (a->fd >= 0)
        close(a->fd);
    if (a->head_fd >= 0)
        close(a->head_fd);
    pthread_mutex_destroy(&a->mu);
    sec__wipe(a, sizeof(*a));
    tkv_free(a);
}

void sec_audit_close(sec_audit *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    sec_audit_event ev = {.type = "audit_log_sealed", .reason = "clean shutdown"};
    int rc = append_locked(a, &ev);
    char hex[65];
    sec__hex(a->prev, 32, hex);
    if (rc == 0 && fdatasync(a->fd) != 0)
        rc = -errno;
    if (rc == 0 && fdatasync(a->head_fd) != 0)
        rc = -errno;
    pthread_mutex_unlock(&a->mu);
    if (rc != 0)
        TKV_LOG_ERROR("audit log seal failed", TKV_LF_ERR("error", rc));
    else
        TKV_LOG_INFO("audit log sealed", TKV_LF_U64("records", a->next_seq),
                     TKV_LF_STR("last_hash", hex));
    audit_free(a);
}

static int open_existing(sec_audit *a, const char *path, char *err, bool *recovered, size_t *torn)
{
    sec_audit_report r;
    uint64_t good = 0;
    int rc = verify(path, a->key, a->key_len, &r, &good);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0) {
        snprintf(err, TKV_ERRMSG_LEN, "audit log %.60s fails verification: %.150s", path,
                 r.problem);
        return rc;
    }
    *torn = r.torn_bytes;
    if (r.torn_bytes > 0 && truncate(path, (off_t)good) != 0) {
        rc = -errno;
        snprintf(err, TKV_ERRMSG_LEN, "cut partial record of %.100s: %s", path, tkv_strerror(rc));
        return rc;
    }
    *recovered = r.records > 0 && !r.sealed;
    a->next_seq = r.records;
    memcpy(a->prev, r.last_hash, 32);
    a->size = (off_t)good;
    return 0;
}

int sec_audit_open(const sec_audit_opts *o, sec_audit **out, char err[TKV_ERRMSG_LEN])
{
    char dummy[TKV_ERRMSG_LEN];
    if (err == NULL)
        err = dummy;
    err[0] = '\0';
    if (o == NULL || out == NULL || o->path == NULL || o->key_len > MAX_KEY ||
        (o->key_len > 0 && o->key == NULL)) {
        snprintf(err, TKV_ERRMSG_LEN, "audit log: bad options");
        return -EINVAL;
    }
    sec_audit *a = tkv_calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    TKV_ASSERT(pthread_mutex_init(&a->mu, NULL) == 0);
    a->fd = a->head_fd = -1;
    a->sync = o->sync;
    a->sync_interval_ms = o->sync_interval_ms;
    a->now_ms = o->now_ms;
    a->clock_ud = o->clock_ud;
    a->key_len = o->key_len;
    if (o->key_len > 0)
        memcpy(a->key, o->key, o->key_len);
    bool recovered = false;
    size_t torn = 0;
    int rc = open_existing(a, o->path, err, &recovered, &torn);
    char hp[PATH_MAX + 8];
    head_path(o->path, hp, sizeof(hp));
    if (rc == 0 && ((a->fd = open(o->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0 ||
                    (a->head_fd = open(hp, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
                    fchmod(a->fd, 0600) != 0 || fchmod(a->head_fd, 0600) != 0)) {
        rc = -errno;
        snprintf(err, TKV_ERRMSG_LEN, "open audit log %.150s: %s", o->path, tkv_strerror(rc));
    }
    if (rc == 0 && recovered) {
        char details[96];
        snprintf(details, sizeof(details),
                 "previous run ended without a seal; %zu bytes of a "
                 "partial record dropped",
                 torn);
        sec_audit_event ev = {.type = "audit_log_recovered", .details = details};
        rc = sec_audit_log(a, &ev);
    }
    if (rc == 0) {
        sec_audit_event ev = {.type = "audit_log_opened"};
        rc = sec_audit_log(a, &ev);
    }
    if (rc != 0) {
        if (err[0] == '\0')
            snprintf(err, TKV_ERRMSG_LEN, "write audit log %.150s: %s", o->path, tkv_strerror(rc));
        audit_free(a);
        return rc;
    }
    *out = a;
    return 0;
}
