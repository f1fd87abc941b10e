/*
 * fuzz_audit_line.c: the hash-chained audit log of src/security (audit.h): its writer, its
 * verifier and its recovery at open, on recipes and on untrusted bytes.
 *
 * The first byte picks what the rest is:
 *   0: a recipe. A log is written (keyed with HMAC or not, the key from the input) with
 *      events whose strings come from the input; each is accepted exactly when it has a type
 *      and all its strings are UTF-8 (-EINVAL otherwise). The sealed log must verify with
 *      the right key (every record, sealed, head present) and fail with any other key; every
 *      line must be a JSON object that says exactly what was logged (no escaping mistakes).
 *      Then the input edits the file: changes a byte, deletes or inserts bytes, swaps or
 *      drops lines, cuts it short or appends. An edit that changes any complete line, or
 *      removes records, must fail verification (TKV_ECORRUPT with the problem named); only
 *      bytes appended without a newline (a torn write) verify, reported as torn_bytes, and
 *      reopening then cuts them off and records the recovery. An edited log never reopens.
 *   1: untrusted log (and head file) bytes: verification answers 0 or TKV_ECORRUPT, and
 *      bytes that are not a chain of records written with the hash never verify as records;
 *      reopening a log that verifies continues its chain into a log that verifies.
 */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "fuzz/fuzz.h"
#include "security/audit.h"

#define MAX_EVENTS 12
#define MAX_BYTES  (1 << 16)

static char log_path[300], head_file[320];

static uint64_t fixed_clock(void *ud)
{
    (void)ud;
    return 1700000000123ULL;
}

static void setup(void)
{
    if (log_path[0] != '\0')
        return;
    tkv_log_set_level(TKV_LOG_OFF); /* seal lines log at INFO */
    const char *root = fuzz_tmpdir("audit");
    snprintf(log_path, sizeof(log_path), "%s/audit.log", root);
    snprintf(head_file, sizeof(head_file), "%s.head", log_path);
}

static void audit_opts(sec_audit_opts *o, const uint8_t *key, size_t key_len)
{
    sec_audit_opts_init(o);
    o->path = log_path;
    o->sync = SEC_AUDIT_SYNC_OFF;
    o->key = key;
    o->key_len = key_len;
    o->now_ms = fixed_clock;
}

/* Returns whether @s (a C string) is UTF-8, by jansson, whose check the writer relies on. */
static bool utf8(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

typedef struct event {
    char s[5][48]; /* type, peer, method, reason, details */
    bool set[5];
} event;

static const char *const fields[5] = {"event", "peer", "method", "reason", "details"};

/* Checks that line @i of the log (a JSON object) says what @e logged. */
static void check_line(const char *line, size_t len, const event *e, const char *type)
{
    json_error_t jerr;
    json_t *j = json_loadb(line, len, 0, &jerr);
    FUZZ_CHECK(json_is_object(j));
    FUZZ_CHECK(json_is_integer(json_object_get(j, "seq")));
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "time")), "2023-11-14T22:13:20.123Z") ==
               0);
    if (e == NULL) {
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "event")), type) == 0);
    } else {
        for (int f = 0; f < 5; f++) {
            const char *v = json_string_value(json_object_get(j, fields[f]));
            FUZZ_CHECK(e->set[f] ? v != NULL && strcmp(v, e->s[f]) == 0 : v == NULL);
        }
    }
    json_decref(j);
}

static int verify(const uint8_t *key, size_t key_len, sec_audit_report *r)
{
    int rc = sec_audit_verify(log_path, key, key_len, r);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    FUZZ_CHECK((rc == 0) == (r->problem[0] == '\0'));
    return rc;
}

/* Swaps lines @a and @b of @buf (n bytes, complete lines) into @out; returns false when
 * there are not that many lines. */
static bool swap_lines(const uint8_t *buf, size_t n, size_t a, size_t b, uint8_t *out)
{
    size_t start[64], len[64], k = 0;
    for (size_t off = 0; off < n && k < 64;) {
        const uint8_t *nl = memchr(buf + off, '\n', n - off);
        size_t l = nl ? (size_t)(nl - (buf + off)) + 1 : n - off;
        start[k] = off;
        len[k++] = l;
        off += l;
    }
    if (a >= k || b >= k || a == b)
        return false;
    size_t o = 0;
    for (size_t i = 0; i < k; i++) {
        size_t s = i == a ? b : i == b ? a : i;
        memcpy(out + o, buf + start[s], len[s]);
        o += len[s];
    }
    return true;
}

static void mode_recipe(fuzz_in *in)
{
    uint8_t key[64];
    size_t key_len = fuzz_u8(in) % 65;
    for (size_t i = 0; i < key_len; i++)
        key[i] = fuzz_u8(in);
    sec_audit_opts o;
    audit_opts(&o, key, key_len);
    sec_audit *a;
    char err[TKV_ERRMSG_LEN];
    FUZZ_CHECK(sec_audit_open(&o, &a, err) == 0);
    static event ev[MAX_EVENTS];
    size_t nev = 0;
    size_t n = fuzz_below(in, MAX_EVENTS + 1);
    for (size_t i = 0; i < n; i++) {
        event *e = &ev[nev];
        memset(e, 0, sizeof(*e));
        uint8_t mask = fuzz_u8(in);
        bool ok = true;
        for (int f = 0; f < 5; f++) {
            e->set[f] = mask & (1u << f);
            if (!e->set[f])
                continue;
            size_t len;
            const uint8_t *p = fuzz_bytes(in, sizeof(e->s[f]) - 1, &len);
            memcpy(e->s[f], p, len);
            e->s[f][len] = '\0';
            ok = ok && utf8(e->s[f]);
        }
        sec_audit_event x = {e->set[0] ? e->s[0] : NULL, e->set[1] ? e->s[1] : NULL,
                             e->set[2] ? e->s[2] : NULL, e->set[3] ? e->s[3] : NULL,
                             e->set[4] ? e->s[4] : NULL};
        int rc = sec_audit_log(a, &x);
        FUZZ_CHECK(rc == ((ok && e->set[0]) ? 0 : -EINVAL));
        if (rc == 0)
            nev++;
        FUZZ_CHECK(sec_audit_records(a) == 1 + nev);
    }
    sec_audit_close(a);

    /* The sealed log verifies, with the right key only, and says what was logged. */
    sec_audit_report r;
    FUZZ_CHECK(verify(key, key_len, &r) == 0);
    FUZZ_CHECK(r.records == nev + 2 && r.sealed && r.head_present && r.torn_bytes == 0);
    FUZZ_CHECK(r.head_seq == nev + 1);
    uint8_t other[64];
    memcpy(other, key, key_len);
    size_t other_len = key_len ? key_len : 1;
    other[0] = key_len ? (uint8_t)(key[0] ^ 1) : 'x';
    FUZZ_CHECK(verify(other, other_len, &r) == TKV_ECORRUPT);
    static uint8_t buf[MAX_BYTES], out[MAX_BYTES + 256];
    size_t len = fuzz_read_file(log_path, buf, sizeof(buf));
    FUZZ_CHECK(len < sizeof(buf));
    size_t off = 0;
    for (size_t i = 0; i < nev + 2; i++) {
        const uint8_t *nl = memchr(buf + off, '\n', len - off);
        FUZZ_CHECK(nl != NULL);
        size_t l = (size_t)(nl - (buf + off));
        check_line((const char *)buf + off, l, i == 0 || i == nev + 1 ? NULL : &ev[i - 1],
                   i == 0 ? "audit_log_opened" : "audit_log_sealed");
        off += l + 1;
    }
    FUZZ_CHECK(off == len);
    if (in->n == 0 || len == 0)
        return;

    /* Edit the file. */
    size_t on = 0;
    bool torn_only = false; /* the edit only appended bytes without a newline */
    size_t appended = 0;
    uint8_t how = fuzz_u8(in) % 6;
    size_t at = (size_t)fuzz_uint(in, 2) % (len + 1);
    switch (how) {
    case 0: { /* change one byte */
        memcpy(out, buf, len);
        uint8_t x = fuzz_u8(in);
        at %= len;
        out[at] ^= x ? x : 1;
        on = len;
        break;
    }
    case 1: { /* delete bytes */
        size_t k = 1 + fuzz_below(in, 64);
        if (at + k > len)
            k = len - at;
        memcpy(out, buf, at);
        memcpy(out + at, buf + at + k, len - at - k);
        on = len - k;
        break;
    }
    case 2: { /* insert bytes (at the end: an append) */
        size_t k;
        const uint8_t *p = fuzz_bytes(in, 200, &k);
        if (k == 0)
            return;
        memcpy(out, buf, at);
        memcpy(out + at, p, k);
        memcpy(out + at + k, buf + at, len - at);
        on = len + k;
        torn_only = at == len && memchr(p, '\n', k) == NULL;
        appended = k;
        break;
    }
    case 3: /* swap two lines */
        if (!swap_lines(buf, len, fuzz_below(in, nev + 2), fuzz_below(in, nev + 2), out))
            return;
        on = len;
        break;
    case 4: { /* drop a line */
        size_t which = fuzz_below(in, nev + 2), o2 = 0, line = 0;
        for (size_t i = 0; i < len;) {
            const uint8_t *nl = memchr(buf + i, '\n', len - i);
            size_t l = (size_t)(nl - (buf + i)) + 1;
            if (line++ != which) {
                memcpy(out + o2, buf + i, l);
                o2 += l;
            }
            i += l;
        }
        on = o2;
        break;
    }
    default: /* cut short */
        if (at == len)
            return;
        memcpy(out, buf, at);
        on = at;
        break;
    }
    if (on == len && memcmp(out, buf, len) == 0)
        return; /* no change after all (a swap of equal lines) */
    fuzz_write_file(log_path, out, on);
    int rc = verify(key, key_len, &r);
    if (!torn_only) {
        FUZZ_CHECK(rc == TKV_ECORRUPT);
        FUZZ_CHECK(sec_audit_open(&o, &a, err) == TKV_ECORRUPT);
        FUZZ_CHECK(err[0] != '\0');
        return;
    }
    FUZZ_CHECK(rc == 0 && r.torn_bytes == appended && r.records == nev + 2 && !r.sealed);
    /* Reopening cuts the torn bytes off, notes the recovery and continues the chain. */
    FUZZ_CHECK(sec_audit_open(&o, &a, err) == 0);
    sec_audit_close(a);
    FUZZ_CHECK(verify(key, key_len, &r) == 0);
    FUZZ_CHECK(r.records == nev + 5 && r.sealed && r.torn_bytes == 0);
}

static void mode_raw(fuzz_in *in)
{
    uint8_t flags = fuzz_u8(in);
    size_t hlen = fuzz_u8(in);
    if (hlen > in->n)
        hlen = in->n;
    if (flags & 1)
        fuzz_write_file(head_file, in->p, hlen);
    fuzz_write_file(log_path, in->p + hlen, in->n - hlen);
    sec_audit_report r;
    int rc = verify(NULL, 0, &r);
    if (rc != 0) {
        sec_audit_opts o;
        audit_opts(&o, NULL, 0);
        sec_audit *a;
        char err[TKV_ERRMSG_LEN];
        FUZZ_CHECK(sec_audit_open(&o, &a, err) == TKV_ECORRUPT);
        return;
    }
    /* Bytes from the input are never a chain of hashed records. */
    FUZZ_CHECK(r.records == 0);
    sec_audit_opts o;
    audit_opts(&o, NULL, 0);
    sec_audit *a;
    char err[TKV_ERRMSG_LEN];
    FUZZ_CHECK(sec_audit_open(&o, &a, err) == 0);
    sec_audit_close(a);
    FUZZ_CHECK(verify(NULL, 0, &r) == 0);
    FUZZ_CHECK(r.records == 2 && r.sealed && r.torn_bytes == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size == 0)
        return 0;
    fuzz_in in = fuzz_in_of(data + 1, size - 1);
    if (data[0] % 2 == 0)
        mode_recipe(&in);
    else
        mode_raw(&in);
    remove(log_path);
    remove(head_file);
    return 0;
}
