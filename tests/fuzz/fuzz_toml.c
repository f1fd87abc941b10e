/*
 * fuzz_toml.c: the TOML configuration parser and what is built on it (src/base/cfg.h).
 *
 * For each input:
 *   - parsing returns 0 with a document or TKV_ECONFIG with a "fuzz:line:column: " message,
 *     never anything else and never a half-built document;
 *   - a parsed document written back with tkv_cfg_dump reparses to an equal document, and
 *     writing that one gives the same text (the writer is a fixed point);
 *   - every key found by iterating a table is found again by tkv_cfg_lookup through its
 *     quoted path (the same value, not a copy);
 *   - binding the document to a small struct succeeds or fails with TKV_ECONFIG, and sizes and
 *     durations it accepts print back to the same number;
 *   - with allocation failing after N allocations (N from the input), parsing returns the same
 *     result or -ENOMEM, and leaks nothing;
 *   - the first line, applied as a --set override to an empty document, succeeds only when the
 *     same line parses as a document, and gives the same data; the last line, applied to the
 *     parsed document, changes nothing when it fails, and when it succeeds leaves a document
 *     that still writes and reparses equal and does not change when the override is repeated;
 *   - read as code points (bytes below 0xF0 stand for themselves, 0xF0-0xFF start a 3-byte
 *     code point), the input written as \u and \U escapes into a quoted key and a string
 *     parses to exactly their UTF-8 encoding, and survives a dump and a reparse. Random bytes
 *     rarely spell such escapes, so this reaches every control character, quote and plane.
 */
#include "base/cfg.h"
#include "fuzz/fuzz.h"

/* Inputs past this size teach nothing new and slow the search down. */
#define MAX_INPUT (64 * 1024)

static tkv_cfg_doc *parse(const uint8_t *data, size_t size, int *rc, char *err)
{
    tkv_cfg_doc *doc = (tkv_cfg_doc *)&doc; /* must be overwritten */
    *rc = tkv_cfg_parse((const char *)data, size, "fuzz", &doc, err);
    FUZZ_CHECK(*rc == 0 || *rc == TKV_ECONFIG || *rc == -ENOMEM);
    FUZZ_CHECK((*rc == 0) == (doc != NULL));
    if (*rc == TKV_ECONFIG)
        FUZZ_CHECK(strncmp(err, "fuzz:", 5) == 0 && strlen(err) > 8);
    return doc;
}

/* Dump, reparse, compare; dump again, compare text. */
static void check_round_trip(const tkv_cfg_doc *doc)
{
    tkv_buf a, b;
    tkv_buf_init(&a);
    tkv_buf_init(&b);
    FUZZ_CHECK(tkv_cfg_dump(doc, &a) == 0);
    int rc;
    char err[TKV_ERRMSG_LEN];
    tkv_cfg_doc *again = parse(a.data, a.len, &rc, err);
    if (rc != 0)
        fprintf(stderr, "dump does not reparse: %s\n%.*s\n", err, (int)a.len, (char *)a.data);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(tkv_cfg_equal(tkv_cfg_root(doc), tkv_cfg_root(again)));
    FUZZ_CHECK(tkv_cfg_dump(again, &b) == 0);
    FUZZ_CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
    tkv_cfg_free(again);
    tkv_buf_deinit(&a);
    tkv_buf_deinit(&b);
}

/* Appends @k as a quoted path part (always quoted, so every key is reachable). */
static bool put_path_part(tkv_buf *path, const char *k, size_t n)
{
    if (memchr(k, '\0', n) != NULL)
        return false; /* paths are C strings */
    if (path->len > 0 && tkv_buf_append_u8(path, '.') != 0)
        return false;
    if (tkv_buf_append_u8(path, '\'') != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        /* A literal key cannot hold ' or control characters; leave those to basic quotes. */
        if (k[i] == '\'' || (uint8_t)k[i] < 0x20 || k[i] == 0x7F)
            return false;
    }
    return tkv_buf_append(path, k, n) == 0 && tkv_buf_append_u8(path, '\'') == 0;
}

static bool is_bare_key(const char *k, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Every key reached by iteration is reached again by path (up to a budget of lookups): by
 * its quoted path, and by its plain dotted path when every part is a bare key. */
static void check_lookups(const tkv_cfg_value *root, const tkv_cfg_value *t, tkv_buf *path,
                          tkv_buf *plain, bool plain_ok, int *budget)
{
    for (size_t i = 0; i < tkv_cfg_len(t) && *budget > 0; i++) {
        size_t klen;
        const char *k = tkv_cfg_key_at(t, i, &klen);
        const tkv_cfg_value *v = tkv_cfg_at(t, i);
        FUZZ_CHECK(k != NULL && v != NULL);
        size_t saved = path->len, saved_plain = plain->len;
        bool bare = plain_ok && is_bare_key(k, klen);
        if (bare) {
            FUZZ_CHECK(plain->len == 0 || tkv_buf_append_u8(plain, '.') == 0);
            FUZZ_CHECK(tkv_buf_append(plain, k, klen) == 0 && tkv_buf_append_u8(plain, 0) == 0);
            FUZZ_CHECK(tkv_cfg_lookup(root, (const char *)plain->data) == v);
            plain->len--;
        }
        if (put_path_part(path, k, klen) && tkv_buf_append_u8(path, 0) == 0) {
            (*budget)--;
            FUZZ_CHECK(tkv_cfg_lookup(root, (const char *)path->data) == v);
            path->len--;
            if (tkv_cfg_type_of(v) == TKV_CFG_TABLE)
                check_lookups(root, v, path, plain, bare, budget);
        }
        path->len = saved;
        plain->len = saved_plain;
    }
}

typedef struct demo {
    uint64_t size, dur_ms, u;
    char *name;
    tkv_cfg_strlist list;
    int n;
    double f;
    bool b;
    int64_t i;
} demo;

static const tkv_cfg_field fields[] = {
    TKV_CFG_FIELD("size", SIZE, demo, size, "\"1KB\"", NULL),
    TKV_CFG_FIELD("dur", DURATION, demo, dur_ms, "\"1s\"", NULL),
    TKV_CFG_FIELD("name", STR, demo, name, "\"x\"", NULL),
    TKV_CFG_FIELD("list", STRLIST, demo, list, "[]", NULL),
    TKV_CFG_FIELD("n", INT, demo, n, NULL, NULL),
    TKV_CFG_FIELD("t.u", U64, demo, u, NULL, NULL),
    TKV_CFG_FIELD("t.f", F64, demo, f, NULL, NULL),
    TKV_CFG_FIELD("t.b", BOOL, demo, b, NULL, NULL),
    TKV_CFG_FIELD("t.i", I64, demo, i, NULL, NULL),
};

static void count_warning(void *arg, const char *msg)
{
    FUZZ_CHECK(strstr(msg, "unknown configuration key") != NULL);
    (*(int *)arg)++;
}

static void check_bind(const tkv_cfg_doc *doc)
{
    demo d;
    int warnings = 0;
    char err[TKV_ERRMSG_LEN];
    int rc = tkv_cfg_bind(doc, fields, TKV_ARRAY_LEN(fields), &d, count_warning, &warnings, err);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
    if (rc != 0) {
        FUZZ_CHECK(err[0] != '\0' && d.name == NULL && d.list.items == NULL);
        return;
    }
    FUZZ_CHECK(d.name != NULL);
    char text[TKV_CFG_FMT_LEN];
    uint64_t back;
    size_t n = tkv_cfg_format_size(d.size, text, sizeof(text));
    FUZZ_CHECK(tkv_cfg_parse_size(text, n, &back, NULL) == 0 && back == d.size);
    n = tkv_cfg_format_duration(d.dur_ms, text, sizeof(text));
    FUZZ_CHECK(tkv_cfg_parse_duration(text, n, &back, NULL) == 0 && back == d.dur_ms);
    tkv_cfg_unbind(fields, TKV_ARRAY_LEN(fields), &d);
}

/* Parsing under allocation failure: the same answer or -ENOMEM. */
static void check_oom(const uint8_t *data, size_t size, const tkv_cfg_doc *doc, int rc,
                      const char *err)
{
    long after = 0;
    for (size_t i = 0; i < size; i++)
        after = (after * 31 + data[i]) % 251;
    char err2[TKV_ERRMSG_LEN];
    tkv_alloc_fail_after(after);
    tkv_cfg_doc *d2 = (tkv_cfg_doc *)&d2;
    int rc2 = tkv_cfg_parse((const char *)data, size, "fuzz", &d2, err2);
    tkv_alloc_fault_clear();
    FUZZ_CHECK(rc2 == rc || rc2 == -ENOMEM);
    if (rc2 == 0)
        FUZZ_CHECK(tkv_cfg_equal(tkv_cfg_root(doc), tkv_cfg_root(d2)));
    else
        FUZZ_CHECK(d2 == NULL);
    if (rc2 == TKV_ECONFIG)
        FUZZ_CHECK(strcmp(err, err2) == 0);
    tkv_cfg_free(d2);
}

/* The first line as an override must agree with the same line parsed as a document. */
/* Copies the line of @data starting at @start (up to 512 bytes, no NUL) into @line. */
static size_t take_line(const uint8_t *data, size_t size, size_t start, char line[513])
{
    size_t n = 0;
    while (start + n < size && n < 512 && data[start + n] != '\n' && data[start + n] != '\0')
        n++;
    memcpy(line, data + start, n);
    line[n] = '\0';
    return n;
}

/* The first line, as an override on an empty document, must agree with the same line parsed
 * as a document. */
static void check_override(const uint8_t *data, size_t size)
{
    char line[513];
    size_t n = take_line(data, size, 0, line);
    tkv_cfg_doc *doc;
    FUZZ_CHECK(tkv_cfg_new(&doc) == 0);
    char err[TKV_ERRMSG_LEN];
    int rc = tkv_cfg_set(doc, line, err);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
    if (rc == 0) {
        tkv_cfg_doc *as_doc;
        FUZZ_CHECK(tkv_cfg_parse(line, n, "line", &as_doc, err) == 0);
        FUZZ_CHECK(tkv_cfg_equal(tkv_cfg_root(doc), tkv_cfg_root(as_doc)));
        /* Setting it again replaces the value with an equal one. */
        FUZZ_CHECK(tkv_cfg_set(doc, line, err) == 0);
        FUZZ_CHECK(tkv_cfg_equal(tkv_cfg_root(doc), tkv_cfg_root(as_doc)));
        tkv_cfg_free(as_doc);
    } else {
        FUZZ_CHECK(tkv_cfg_len(tkv_cfg_root(doc)) == 0);
    }
    tkv_cfg_free(doc);
}

/* The last line, as an override on the parsed document @doc: a failure changes nothing, a
 * success leaves a document that still writes and reparses equal, and is idempotent. */
static void check_override_on(tkv_cfg_doc *doc, const uint8_t *data, size_t size)
{
    size_t start = size;
    while (start > 0 && data[start - 1] == '\n')
        start--;
    while (start > 0 && data[start - 1] != '\n')
        start--;
    char line[513];
    take_line(data, size, start, line);
    int rc;
    char err[TKV_ERRMSG_LEN];
    tkv_cfg_doc *before = parse(data, size, &rc, err);
    FUZZ_CHECK(rc == 0);
    rc = tkv_cfg_set(doc, line, err);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
    if (rc != 0) {
        FUZZ_CHECK(tkv_cfg_equal(tkv_cfg_root(doc), tkv_cfg_root(before)));
    } else {
        check_round_trip(doc);
        /* A snapshot of the changed document, to compare the repeated override with. */
        tkv_buf text;
        tkv_buf_init(&text);
        FUZZ_CHECK(tkv_cfg_dump(doc, &text) == 0);
        tkv_cfg_free(before);
        before = parse(text.data, text.len, &rc, err);
        FUZZ_CHECK(rc == 0);
        tkv_buf_deinit(&text);
        FUZZ_CHECK(tkv_cfg_set(doc, line, err) == 0);
        FUZZ_CHECK(tkv_cfg_equal(tkv_cfg_root(doc), tkv_cfg_root(before)));
    }
    tkv_cfg_free(before);
}

/* Appends the UTF-8 encoding of @cp (a Unicode scalar value). Kept apart from the parser's own
 * encoder on purpose: it is the oracle the parser is checked against. */
static void put_utf8(tkv_buf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xC0 | (cp >> 6));
        u[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xE0 | (cp >> 12));
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (uint8_t)(0xF0 | (cp >> 18));
        u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    FUZZ_CHECK(tkv_buf_append(b, u, n) == 0);
}

/* Escaped code points from the input parse to their UTF-8 and survive dump and reparse. */
static void check_escapes(const uint8_t *data, size_t size)
{
    tkv_buf body, text, want;
    tkv_buf_init(&body);
    tkv_buf_init(&text);
    tkv_buf_init(&want);
    for (size_t i = 0; i < size && i < 256; i++) {
        uint32_t cp = data[i];
        if (cp >= 0xF0 && i + 2 < size) {
            cp = ((((uint32_t)data[i] & 0x0F) << 16) | ((uint32_t)data[i + 1] << 8) | data[i + 2]) %
                 0x110000;
            i += 2;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            cp -= 0x800; /* not a scalar value */
        char esc[16];
        int n = cp > 0xFFFF ? snprintf(esc, sizeof(esc), "\\U%08X", (unsigned)cp)
                            : snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
        FUZZ_CHECK(tkv_buf_append(&body, esc, (size_t)n) == 0);
        put_utf8(&want, cp);
    }
    /* "<escapes>" = "<escapes>" */
    const char *parts[] = {"\"", "\" = \"", "\"\n"};
    for (size_t i = 0; i < 3; i++) {
        FUZZ_CHECK(tkv_buf_append(&text, parts[i], strlen(parts[i])) == 0);
        if (i < 2)
            FUZZ_CHECK(tkv_buf_append(&text, body.data, body.len) == 0);
    }
    int rc;
    char err[TKV_ERRMSG_LEN];
    tkv_cfg_doc *doc = parse(text.data, text.len, &rc, err);
    FUZZ_CHECK(rc == 0);
    const tkv_cfg_value *root = tkv_cfg_root(doc);
    size_t klen, vlen;
    const char *k = tkv_cfg_key_at(root, 0, &klen);
    const char *v = tkv_cfg_str(tkv_cfg_at(root, 0), &vlen);
    FUZZ_CHECK(tkv_cfg_len(root) == 1 && k != NULL && v != NULL);
    FUZZ_CHECK(klen == want.len && (klen == 0 || memcmp(k, want.data, klen) == 0));
    FUZZ_CHECK(vlen == want.len && (vlen == 0 || memcmp(v, want.data, vlen) == 0));
    check_round_trip(doc);
    tkv_cfg_free(doc);
    tkv_buf_deinit(&body);
    tkv_buf_deinit(&text);
    tkv_buf_deinit(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    int rc;
    char err[TKV_ERRMSG_LEN];
    tkv_cfg_doc *doc = parse(data, size, &rc, err);
    FUZZ_CHECK(rc != -ENOMEM);
    if (doc != NULL) {
        check_round_trip(doc);
        tkv_buf path, plain;
        tkv_buf_init(&path);
        tkv_buf_init(&plain);
        int budget = 256;
        check_lookups(tkv_cfg_root(doc), tkv_cfg_root(doc), &path, &plain, true, &budget);
        tkv_buf_deinit(&path);
        tkv_buf_deinit(&plain);
        check_bind(doc);
    }
    check_oom(data, size, doc, rc, err);
    if (doc != NULL)
        check_override_on(doc, data, size);
    check_override(data, size);
    check_escapes(data, size);
    tkv_cfg_free(doc);
    return 0;
}
