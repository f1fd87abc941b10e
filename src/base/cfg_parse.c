/*
 * cfg_parse.c: the TOML 1.0 parser, file loading, command-line overrides and path lookups
 * (see cfg.h). A hand-written recursive descent over the raw bytes; recursion happens only
 * for nested arrays and inline tables and stops at TKV_CFG_MAX_DEPTH.
 */
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/cfg.h"
#include "base/cfg_int.h"
#include "base/codec.h"

/* ---- the parser ------------------------------------------------------------------------ */

typedef struct parser {
    const char *s;
    size_t len;
    size_t pos;
    const char *origin;
    char *errmsg;
    /* Cache for locate(): positions are asked for mostly in increasing order. */
    size_t loc_pos;
    uint32_t loc_line, loc_col;
    tkv_buf buf;         /* scratch: decoded strings, number text */
    tkv_cfg_value *root; /* NULL when parsing a lone value */
    tkv_cfg_value *cur;  /* the table key/value lines go to */
} parser;

/* A parsed key: its parts and where each starts. */
typedef struct seg {
    char *s; /* owned until moved into a table; still readable after the move */
    size_t len;
    size_t at;
    bool moved;
} seg;

typedef struct keypath {
    seg segs[TKV_CFG_MAX_DEPTH];
    size_t n;
} keypath;

static void parser_init(parser *p, const char *s, size_t len, const char *origin, char *errmsg)
{
    memset(p, 0, sizeof(*p));
    p->s = s;
    p->len = len;
    p->origin = origin;
    p->errmsg = errmsg;
    p->loc_line = 1;
    p->loc_col = 1;
    tkv_buf_init(&p->buf);
}

static void keypath_clear(keypath *k)
{
    for (size_t i = 0; i < k->n; i++) {
        if (!k->segs[i].moved)
            tkv_free(k->segs[i].s);
    }
    k->n = 0;
}

/* Stores the 1-based line and column (in characters) of byte offset @at. */
static void locate(parser *p, size_t at, uint32_t *line, uint32_t *col)
{
    if (at > p->len)
        at = p->len;
    if (at < p->loc_pos) {
        p->loc_pos = 0;
        p->loc_line = 1;
        p->loc_col = 1;
    }
    for (size_t i = p->loc_pos; i < at; i++) {
        uint8_t c = (uint8_t)p->s[i];
        if (c == '\n') {
            p->loc_line++;
            p->loc_col = 1;
        } else if ((c & 0xC0) != 0x80) {
            p->loc_col++;
        }
    }
    p->loc_pos = at;
    *line = p->loc_line;
    *col = p->loc_col;
}

static TKV_PRINTF(3, 4) int fail(parser *p, size_t at, const char *fmt, ...)
{
    if (p->errmsg == NULL)
        return TKV_ECONFIG;
    uint32_t line, col;
    locate(p, at, &line, &col);
    char prefix[TKV_ERRMSG_LEN];
    snprintf(prefix, sizeof(prefix), "%s:%u:%u: ", p->origin, (unsigned)line, (unsigned)col);
    va_list ap;
    va_start(ap, fmt);
    int rc = tkv__cfg_verr(p->errmsg, prefix, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(parser *p)
{
    if (p->errmsg != NULL)
        snprintf(p->errmsg, TKV_ERRMSG_LEN, "%s: out of memory", p->origin);
    return -ENOMEM;
}

static int peek(const parser *p)
{
    return p->pos < p->len ? (uint8_t)p->s[p->pos] : -1;
}

static int peek_at(const parser *p, size_t at)
{
    return at < p->len ? (uint8_t)p->s[at] : -1;
}

static bool starts_with(const parser *p, const char *lit)
{
    size_t n = strlen(lit);
    return p->len - p->pos >= n && memcmp(p->s + p->pos, lit, n) == 0;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_bare(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-';
}

static bool is_control(int c)
{
    return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7F;
}

/* Describes the input at @at for a message ("'x'", "end of input", "U+00E9"). */
static const char *describe(const parser *p, size_t at, char out[32])
{
    int c = peek_at(p, at);
    if (c < 0)
        return "end of input";
    if (c == '\n' || (c == '\r' && peek_at(p, at + 1) == '\n'))
        return "end of line";
    if (c == '\r')
        return "a carriage return without a line feed";
    if (c >= 0x20 && c < 0x7F) {
        snprintf(out, 32, "'%c'", c);
        return out;
    }
    uint32_t cp = (uint32_t)c;
    if (c >= 0xC0) {
        /* The input is valid UTF-8 (checked first), so the sequence is complete. */
        int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
        cp = (uint32_t)c & (0x3Fu >> n);
        for (int i = 1; i <= n; i++)
            cp = (cp << 6) | ((uint8_t)p->s[at + (size_t)i] & 0x3Fu);
    }
    snprintf(out, 32, "U+%04X", (unsigned)cp);
    return out;
}

/* Writes the first @n parts of @k as a dotted key for messages. */
static const char *key_text(const keypath *k, size_t n, char out[96])
{
    tkv__cfg_sink s;
    tkv__cfg_sink_fixed(&s, out, 96);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            tkv__cfg_put(&s, ".", 1);
        tkv__cfg_put_key(&s, k->segs[i].s, k->segs[i].len);
    }
    return out;
}

/* Returns the offset of the first byte that is not valid UTF-8, or @len. */
static size_t utf8_invalid_at(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t j = 2; j <= n; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return i;
        }
        i += n + 1;
    }
    return len;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
        p->pos++;
}

/* Consumes a line ending (LF or CRLF) and returns true, or returns false. */
static bool eat_newline(parser *p)
{
    int c = peek(p);
    if (c == '\n') {
        p->pos++;
        return true;
    }
    if (c == '\r' && peek_at(p, p->pos + 1) == '\n') {
        p->pos += 2;
        return true;
    }
    return false;
}

/* Skips a comment up to (not including) its line ending. */
static int skip_comment(parser *p)
{
    if (peek(p) != '#')
        return 0;
    p->pos++;
    while (p->pos < p->len) {
        int c = (uint8_t)p->s[p->pos];
        if (c == '\n' || (c == '\r' && peek_at(p, p->pos + 1) == '\n'))
            break;
        if (is_control(c))
            return fail(p, p->pos, "control character U+%04X in a comment", (unsigned)c);
        p->pos++;
    }
    return 0;
}

/* Requires the rest of the line after @what to be blank or a comment, and consumes it. */
static int expect_eol(parser *p, const char *what)
{
    skip_ws(p);
    int rc = skip_comment(p);
    if (rc != 0)
        return rc;
    if (p->pos >= p->len || eat_newline(p))
        return 0;
    char d[32];
    return fail(p, p->pos, "expected the end of the line after %s, found %s", what,
                describe(p, p->pos, d));
}

/* Skips spaces, line endings and comments (inside arrays). */
static int skip_ws_nl(parser *p)
{
    for (;;) {
        skip_ws(p);
        if (peek(p) == '#') {
            int rc = skip_comment(p);
            if (rc != 0)
                return rc;
        }
        if (!eat_newline(p))
            return 0;
    }
}

/* ---- strings --------------------------------------------------------------------------- */

static int buf_add(parser *p, const void *src, size_t n)
{
    return tkv_buf_append(&p->buf, src, n) == 0 ? 0 : oom(p);
}

/* Parses one escape sequence at the backslash into p->buf. */
static int parse_escape(parser *p, bool multi)
{
    size_t at = p->pos++;
    int c = peek(p);
    /* The one-character escapes, in pairs: the letter, then what it stands for. */
    static const char simple[] = "b\bt\tn\nf\fr\r\"\"\\\\";
    char out[4];
    for (size_t i = 0; c > 0 && i < sizeof(simple) - 1; i += 2) {
        if (simple[i] == c) {
            p->pos++;
            return buf_add(p, &simple[i + 1], 1);
        }
    }
    switch (c) {
    case 'u':
    case 'U': {
        int digits = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int i = 1; i <= digits; i++) {
            int h = tkv_codec_hex_digit(peek_at(p, p->pos + (size_t)i));
            if (h < 0)
                return fail(p, at, "escape \\%c needs %d hex digits", c, digits);
            cp = (cp << 4) | (uint32_t)h;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return fail(p, at, "escape \\%c%0*X is not a Unicode scalar value", c, digits,
                        (unsigned)cp);
        p->pos += (size_t)digits + 1;
        size_t n;
        if (cp < 0x80) {
            out[0] = (char)cp;
            n = 1;
        } else if (cp < 0x800) {
            out[0] = (char)(0xC0 | (cp >> 6));
            out[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            out[0] = (char)(0xE0 | (cp >> 12));
            out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[2] = (char)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            out[0] = (char)(0xF0 | (cp >> 18));
            out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[3] = (char)(0x80 | (cp & 0x3F));
            n = 4;
        }
        return buf_add(p, out, n);
    }
    default:
        if (multi && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            /* A line-ending backslash trims every space and line ending after it. */
            skip_ws(p);
            if (!eat_newline(p))
                return fail(p, at, "a backslash followed by spaces must end the line");
            for (;;) {
                skip_ws(p);
                if (!eat_newline(p))
                    return 0;
            }
        }
        if (c < 0)
            return fail(p, at, "unterminated string");
        if (c >= 0x20 && c < 0x7F)
            return fail(p, at, "invalid escape sequence '\\%c'", c);
        return fail(p, at, "invalid escape sequence");
    }
}

/* Parses a string at its opening quote(s) into p->buf. @quote is '"' (basic: escapes) or
 * '\'' (literal); @multi selects the triple-quoted form. */
static int parse_string(parser *p, char quote, bool multi)
{
    size_t open = p->pos;
    tkv_buf_reset(&p->buf);
    if (multi) {
        p->pos += 3;
        eat_newline(p); /* a line ending right after the opening quotes is trimmed */
    } else {
        p->pos++;
    }
    for (;;) {
        int c = peek(p);
        if (c < 0)
            return fail(p, open, "unterminated string");
        if (c == quote) {
            if (!multi) {
                p->pos++;
                return 0;
            }
            size_t n = 0;
            while (peek_at(p, p->pos + n) == quote)
                n++;
            if (n >= 3) {
                /* Up to two quotes right before the closing three belong to the string. */
                if (n > 5)
                    return fail(p, p->pos + 5, "too many quotes at the end of a string");
                int rc = buf_add(p, p->s + p->pos, n - 3);
                p->pos += n;
                return rc;
            }
            int rc = buf_add(p, p->s + p->pos, n);
            if (rc != 0)
                return rc;
            p->pos += n;
            continue;
        }
        if (c == '\\' && quote == '"') {
            int rc = parse_escape(p, multi);
            if (rc != 0)
                return rc;
            continue;
        }
        if (c == '\n' || (c == '\r' && peek_at(p, p->pos + 1) == '\n')) {
            if (!multi)
                return fail(p, p->pos, "line ending inside a single-line string");
            eat_newline(p);
            int rc = buf_add(p, "\n", 1);
            if (rc != 0)
                return rc;
            continue;
        }
        if (is_control(c))
            return fail(p, p->pos, "control character U+%04X in a string (use an escape)",
                        (unsigned)c);
        size_t start = p->pos;
        while (p->pos < p->len) {
            int d = (uint8_t)p->s[p->pos];
            if (d == quote || (d == '\\' && quote == '"') || is_control(d))
                break;
            p->pos++;
        }
        int rc = buf_add(p, p->s + start, p->pos - start);
        if (rc != 0)
            return rc;
    }
}

/* ---- keys ------------------------------------------------------------------------------ */

/* Parses a (dotted) key into @k, leaving p->pos after the spaces that follow it. */
static int parse_key(parser *p, keypath *k)
{
    k->n = 0;
    for (;;) {
        skip_ws(p);
        if (k->n == TKV_CFG_MAX_DEPTH)
            return fail(p, p->pos, "key has more than %d parts", TKV_CFG_MAX_DEPTH);
        seg *sg = &k->segs[k->n];
        sg->at = p->pos;
        sg->moved = false;
        int c = peek(p);
        const char *src;
        size_t len;
        if (is_bare(c)) {
            size_t start = p->pos;
            while (is_bare(peek(p)))
                p->pos++;
            src = p->s + start;
            len = p->pos - start;
        } else if (c == '"' || c == '\'') {
            if (starts_with(p, c == '"' ? "\"\"\"" : "'''"))
                return fail(p, p->pos, "a multi-line string cannot be a key");
            int rc = parse_string(p, (char)c, false);
            if (rc != 0)
                return rc;
            src = (const char *)p->buf.data;
            len = p->buf.len;
        } else {
            char d[32];
            return fail(p, p->pos, "expected a key, found %s", describe(p, p->pos, d));
        }
        sg->s = tkv__cfg_dup_nul(src, len);
        if (sg->s == NULL)
            return oom(p);
        sg->len = len;
        k->n++;
        skip_ws(p);
        if (peek(p) != '.')
            return 0;
        p->pos++;
    }
}

/* ---- numbers and date-times ------------------------------------------------------------ */

/* Returns true when the @n bytes at @s are digits of @radix with single underscores between
 * digits only. */
static bool digits_ok(const char *s, size_t n, int radix)
{
    if (n == 0)
        return false;
    bool prev_digit = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            if (!prev_digit)
                return false;
            prev_digit = false;
            continue;
        }
        int h = tkv_codec_hex_digit((uint8_t)s[i]);
        if (h < 0 || h >= radix)
            return false;
        prev_digit = true;
    }
    return prev_digit;
}

/* Accumulates the validated digits at @s in @radix; returns false above @limit. */
static bool digits_value(const char *s, size_t n, int radix, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_')
            continue;
        uint64_t d = (uint64_t)tkv_codec_hex_digit((uint8_t)s[i]);
        if (v > (limit - d) / (uint64_t)radix)
            return false;
        v = v * (uint64_t)radix + d;
    }
    *out = v;
    return true;
}

static int parse_number(parser *p, tkv_cfg_value *v)
{
    size_t start = p->pos;
    while (p->pos < p->len) {
        int c = (uint8_t)p->s[p->pos];
        if (!(is_bare(c) || c == '+' || c == '.'))
            break;
        p->pos++;
    }
    const char *tok = p->s + start;
    size_t n = p->pos - start;
    int tlen = (int)TKV_MIN(n, (size_t)40);
    bool neg = n > 0 && tok[0] == '-';
    size_t sign = n > 0 && (tok[0] == '-' || tok[0] == '+') ? 1 : 0;
    const char *body = tok + sign;
    size_t blen = n - sign;

    if ((blen == 3 && memcmp(body, "inf", 3) == 0) || (blen == 3 && memcmp(body, "nan", 3) == 0)) {
        v->type = TKV_CFG_FLOAT;
        v->u.f = body[0] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
        return 0;
    }
    if (blen > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'o' || body[1] == 'b')) {
        int radix = body[1] == 'x' ? 16 : body[1] == 'o' ? 8 : 2;
        uint64_t u;
        if (sign || !digits_ok(body + 2, blen - 2, radix))
            return fail(p, start, "invalid integer '%.*s'", tlen, tok);
        if (!digits_value(body + 2, blen - 2, radix, INT64_MAX, &u))
            return fail(p, start, "integer '%.*s' does not fit in 64 bits", tlen, tok);
        v->type = TKV_CFG_INTEGER;
        v->u.i = (int64_t)u;
        return 0;
    }
    /* Decimal: an integer part without leading zeros, then a fraction and/or an exponent. */
    size_t ip = 0;
    while (ip < blen && (is_digit((uint8_t)body[ip]) || body[ip] == '_'))
        ip++;
    if (!digits_ok(body, ip, 10))
        return fail(p, start, "invalid number '%.*s'", tlen, tok);
    if (body[0] == '0' && ip > 1)
        return fail(p, start, "leading zeros are not allowed in '%.*s'", tlen, tok);
    if (ip == blen) {
        uint64_t u;
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        if (!digits_value(body, ip, 10, limit, &u))
            return fail(p, start, "integer '%.*s' does not fit in 64 bits", tlen, tok);
        v->type = TKV_CFG_INTEGER;
        v->u.i = neg ? (int64_t)(0 - u) : (int64_t)u;
        return 0;
    }
    size_t i = ip;
    if (body[i] == '.') {
        size_t f = ++i;
        while (i < blen && (is_digit((uint8_t)body[i]) || body[i] == '_'))
            i++;
        if (!digits_ok(body + f, i - f, 10))
            return fail(p, start, "invalid float '%.*s'", tlen, tok);
    }
    if (i < blen && (body[i] == 'e' || body[i] == 'E')) {
        i++;
        if (i < blen && (body[i] == '+' || body[i] == '-'))
            i++;
        size_t e = i;
        while (i < blen && (is_digit((uint8_t)body[i]) || body[i] == '_'))
            i++;
        if (!digits_ok(body + e, i - e, 10))
            return fail(p, start, "invalid float '%.*s'", tlen, tok);
    }
    if (i != blen)
        return fail(p, start, "invalid number '%.*s'", tlen, tok);
    tkv_buf_reset(&p->buf);
    for (size_t j = 0; j < n; j++) {
        if (tok[j] != '_' && tkv_buf_append_u8(&p->buf, (uint8_t)tok[j]) != 0)
            return oom(p);
    }
    if (tkv_buf_append_u8(&p->buf, 0) != 0)
        return oom(p);
    double d = strtod((const char *)p->buf.data, NULL);
    if (isinf(d))
        return fail(p, start, "float '%.*s' is out of range", tlen, tok);
    v->type = TKV_CFG_FLOAT;
    v->u.f = d;
    return 0;
}

/* Returns true when @n digits start at @at. */
static bool digits_at(const parser *p, size_t at, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(peek_at(p, at + i)))
            return false;
    }
    return true;
}

static int two_digits(const parser *p, size_t at)
{
    return (p->s[at] - '0') * 10 + (p->s[at + 1] - '0');
}

/* Parses HH:MM:SS[.frac] at p->pos. */
static int parse_time(parser *p, size_t start)
{
    size_t at = p->pos;
    if (!digits_at(p, at, 2) || peek_at(p, at + 2) != ':' || !digits_at(p, at + 3, 2) ||
        peek_at(p, at + 5) != ':' || !digits_at(p, at + 6, 2))
        return fail(p, start, "invalid time (expected HH:MM:SS)");
    if (two_digits(p, at) > 23 || two_digits(p, at + 3) > 59 || two_digits(p, at + 6) > 60)
        return fail(p, start, "time out of range");
    p->pos = at + 8;
    if (peek(p) == '.') {
        if (!is_digit(peek_at(p, p->pos + 1)))
            return fail(p, start, "invalid time: a fraction of a second needs digits");
        p->pos++;
        while (is_digit(peek(p)))
            p->pos++;
    }
    return 0;
}

/* Parses the four TOML date-time forms, keeping their text. */
static int parse_datetime(parser *p, tkv_cfg_value *v)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t start = p->pos;
    int rc;
    if (peek_at(p, start + 2) == ':') {
        rc = parse_time(p, start);
    } else {
        if (!digits_at(p, start, 4) || peek_at(p, start + 4) != '-' ||
            !digits_at(p, start + 5, 2) || peek_at(p, start + 7) != '-' ||
            !digits_at(p, start + 8, 2))
            return fail(p, start, "invalid date (expected YYYY-MM-DD)");
        int year = two_digits(p, start) * 100 + two_digits(p, start + 2);
        int month = two_digits(p, start + 5), day = two_digits(p, start + 8);
        bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1] ||
            (month == 2 && day == 29 && !leap))
            return fail(p, start, "date out of range");
        p->pos = start + 10;
        int c = peek(p);
        rc = 0;
        if (c == 'T' || c == 't' ||
            (c == ' ' && digits_at(p, p->pos + 1, 2) && peek_at(p, p->pos + 3) == ':')) {
            p->pos++;
            rc = parse_time(p, start);
            c = peek(p);
            if (rc == 0 && (c == 'Z' || c == 'z')) {
                p->pos++;
            } else if (rc == 0 && (c == '+' || c == '-')) {
                size_t at = p->pos + 1;
                if (!digits_at(p, at, 2) || peek_at(p, at + 2) != ':' || !digits_at(p, at + 3, 2))
                    return fail(p, start, "invalid time offset (expected +HH:MM)");
                if (two_digits(p, at) > 23 || two_digits(p, at + 3) > 59)
                    return fail(p, start, "time offset out of range");
                p->pos = at + 5;
            }
        }
    }
    if (rc != 0)
        return rc;
    v->type = TKV_CFG_DATETIME;
    v->u.s.len = p->pos - start;
    v->u.s.ptr = tkv__cfg_dup_nul(p->s + start, v->u.s.len);
    return v->u.s.ptr != NULL ? 0 : oom(p);
}

/* ---- values ---------------------------------------------------------------------------- */

static int parse_value(parser *p, unsigned depth, tkv_cfg_value **out);
static int parse_keyval(parser *p, tkv_cfg_value *tbl);

static int parse_array(parser *p, tkv_cfg_value *arr)
{
    size_t open = p->pos++;
    char d[32];
    for (;;) {
        int rc = skip_ws_nl(p);
        if (rc != 0)
            return rc;
        if (peek(p) == ']') {
            p->pos++;
            return 0;
        }
        if (peek(p) < 0)
            return fail(p, open, "unterminated array");
        tkv_cfg_value *el;
        rc = parse_value(p, arr->depth + 1u, &el);
        if (rc != 0)
            return rc;
        if (tkv__cfg_array_push(arr, el) != 0) {
            tkv__cfg_value_free(el);
            return oom(p);
        }
        rc = skip_ws_nl(p);
        if (rc != 0)
            return rc;
        int c = peek(p);
        if (c == ',') {
            p->pos++;
        } else if (c == ']') {
            p->pos++;
            return 0;
        } else if (c < 0) {
            return fail(p, open, "unterminated array");
        } else {
            return fail(p, p->pos, "expected ',' or ']' in an array, found %s",
                        describe(p, p->pos, d));
        }
    }
}

static int parse_inline_table(parser *p, tkv_cfg_value *tbl)
{
    size_t open = p->pos++;
    char d[32];
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
        tbl->flags |= TKV__CFG_INLINE;
        return 0;
    }
    for (;;) {
        int rc = parse_keyval(p, tbl);
        if (rc != 0)
            return rc;
        skip_ws(p);
        int c = peek(p);
        if (c == ',') {
            p->pos++;
            skip_ws(p);
            if (peek(p) == '}')
                return fail(p, p->pos, "trailing comma in an inline table");
        } else if (c == '}') {
            p->pos++;
            tbl->flags |= TKV__CFG_INLINE;
            return 0;
        } else if (c < 0) {
            return fail(p, open, "unterminated inline table");
        } else if (c == '\n' || c == '\r') {
            return fail(p, p->pos,
                        "line ending inside an inline table (TOML 1.0 inline tables "
                        "are one line)");
        } else {
            return fail(p, p->pos, "expected ',' or '}' in an inline table, found %s",
                        describe(p, p->pos, d));
        }
    }
}

/* Parses the value at p->pos into a new detached value at @depth. */
static int parse_value(parser *p, unsigned depth, tkv_cfg_value **out)
{
    *out = NULL;
    size_t at = p->pos;
    char d[32];
    if (depth > TKV_CFG_MAX_DEPTH)
        return fail(p, at, "values nested deeper than %d levels", TKV_CFG_MAX_DEPTH);
    uint32_t line, col;
    locate(p, at, &line, &col);
    tkv_cfg_value *v = tkv__cfg_value_new(TKV_CFG_BOOL, depth, p->origin, line, col);
    if (v == NULL)
        return oom(p);
    int c = peek(p);
    int rc;
    if (c == '"' || c == '\'') {
        rc = parse_string(p, (char)c, starts_with(p, c == '"' ? "\"\"\"" : "'''"));
        if (rc == 0) {
            v->type = TKV_CFG_STRING;
            v->u.s.len = p->buf.len;
            v->u.s.ptr = tkv__cfg_dup_nul((const char *)p->buf.data, p->buf.len);
            if (v->u.s.ptr == NULL)
                rc = oom(p);
        }
    } else if (c == '[') {
        v->type = TKV_CFG_ARRAY;
        rc = parse_array(p, v);
    } else if (c == '{') {
        v->type = TKV_CFG_TABLE;
        rc = parse_inline_table(p, v);
    } else if (starts_with(p, "true") && !is_bare(peek_at(p, at + 4))) {
        p->pos += 4;
        v->u.b = true;
        rc = 0;
    } else if (starts_with(p, "false") && !is_bare(peek_at(p, at + 5))) {
        p->pos += 5;
        v->u.b = false;
        rc = 0;
    } else if (is_digit(c) && ((digits_at(p, at, 4) && peek_at(p, at + 4) == '-') ||
                               (digits_at(p, at, 2) && peek_at(p, at + 2) == ':'))) {
        rc = parse_datetime(p, v);
    } else if (is_digit(c) || c == '+' || c == '-' || c == 'i' || c == 'n') {
        rc = parse_number(p, v);
    } else {
        rc = fail(p, at, "expected a value, found %s", describe(p, at, d));
    }
    if (rc != 0) {
        tkv__cfg_value_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* ---- building the tree ----------------------------------------------------------------- */

/* Returns "a string", "an array", ... for messages. */
static const char *a_type(const tkv_cfg_value *v)
{
    switch (v->type) {
    case TKV_CFG_STRING:
        return "a string";
    case TKV_CFG_INTEGER:
        return "an integer";
    case TKV_CFG_FLOAT:
        return "a float";
    case TKV_CFG_BOOL:
        return "a boolean";
    case TKV_CFG_DATETIME:
        return "a date-time";
    case TKV_CFG_ARRAY:
        return (v->flags & TKV__CFG_AOT) ? "an array of tables" : "an array";
    default:
        return "a table";
    }
}

/* Creates an empty table named by segment @i of @k in @parent (moving the key into it). */
static int add_table(parser *p, tkv_cfg_value *parent, keypath *k, size_t i, uint8_t flags,
                     tkv_cfg_value **out)
{
    seg *sg = &k->segs[i];
    if (parent->depth + 1u > TKV_CFG_MAX_DEPTH)
        return fail(p, sg->at, "tables nested deeper than %d levels", TKV_CFG_MAX_DEPTH);
    uint32_t line, col;
    locate(p, sg->at, &line, &col);
    tkv_cfg_value *t = tkv__cfg_value_new(TKV_CFG_TABLE, parent->depth + 1u, p->origin, line, col);
    if (t == NULL)
        return oom(p);
    t->flags = flags;
    if (tkv__cfg_table_add(parent, sg->s, sg->len, t) != 0) {
        tkv__cfg_value_free(t);
        return oom(p);
    }
    sg->moved = true;
    *out = t;
    return 0;
}

/* Adds the key/value @k = @v below @tbl, creating the tables of a dotted key. Takes @v. */
static int insert_kv(parser *p, tkv_cfg_value *tbl, keypath *k, tkv_cfg_value *v)
{
    char kt[96];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i + 1 < k->n; i++) {
        tkv__cfg_entry *e = tkv__cfg_table_find(tbl, k->segs[i].s, k->segs[i].len);
        if (e == NULL) {
            rc = add_table(p, tbl, k, i, TKV__CFG_DOTTED, &tbl);
        } else if (e->val->type != TKV_CFG_TABLE) {
            rc = fail(p, k->segs[i].at, "'%s' is %s, not a table", key_text(k, i + 1, kt),
                      a_type(e->val));
        } else if (e->val->flags & TKV__CFG_INLINE) {
            rc = fail(p, k->segs[i].at, "cannot add keys to the inline table '%s'",
                      key_text(k, i + 1, kt));
        } else if (!(e->val->flags & TKV__CFG_DOTTED)) {
            rc = fail(p, k->segs[i].at,
                      "table '%s' is already defined; dotted keys cannot add to it",
                      key_text(k, i + 1, kt));
        } else {
            tbl = e->val;
        }
    }
    seg *last = &k->segs[k->n - 1];
    if (rc == 0 && tkv__cfg_table_find(tbl, last->s, last->len) != NULL)
        rc = fail(p, last->at, "duplicate key '%s'", key_text(k, k->n, kt));
    if (rc == 0) {
        if (tkv__cfg_table_add(tbl, last->s, last->len, v) != 0)
            rc = oom(p);
        else
            last->moved = true;
    }
    if (rc != 0)
        tkv__cfg_value_free(v);
    return rc;
}

/* Appends a new table to the array of tables @arr named by the last part of @k in @parent,
 * creating the array when @arr is NULL. */
static int aot_append(parser *p, tkv_cfg_value *parent, keypath *k, tkv_cfg_value *arr, size_t open,
                      tkv_cfg_value **out)
{
    seg *last = &k->segs[k->n - 1];
    uint32_t line, col;
    locate(p, open, &line, &col);
    bool fresh = arr == NULL;
    if (fresh) {
        arr = tkv__cfg_value_new(TKV_CFG_ARRAY, parent->depth + 1u, p->origin, line, col);
        if (arr == NULL)
            return oom(p);
        arr->flags = TKV__CFG_AOT;
    }
    tkv_cfg_value *t = tkv__cfg_value_new(TKV_CFG_TABLE, parent->depth + 2u, p->origin, line, col);
    if (t == NULL || tkv__cfg_array_push(arr, t) != 0) {
        tkv__cfg_value_free(t);
        if (fresh)
            tkv__cfg_value_free(arr);
        return oom(p);
    }
    t->flags = TKV__CFG_EXPLICIT;
    if (fresh) {
        if (tkv__cfg_table_add(parent, last->s, last->len, arr) != 0) {
            tkv__cfg_value_free(arr);
            return oom(p);
        }
        last->moved = true;
    }
    *out = t;
    return 0;
}

/* Parses a [table] or [[array of tables]] header and makes its table the current one. */
static int parse_header(parser *p)
{
    size_t open = p->pos;
    bool aot = starts_with(p, "[[");
    p->pos += aot ? 2 : 1;
    keypath k;
    char kt[96], d[32];
    int rc = parse_key(p, &k);
    if (rc == 0 && !starts_with(p, aot ? "]]" : "]"))
        rc = fail(p, p->pos, "expected '%s' to end the header, found %s", aot ? "]]" : "]",
                  describe(p, p->pos, d));
    if (rc != 0) {
        keypath_clear(&k);
        return rc;
    }
    p->pos += aot ? 2 : 1;
    tkv_cfg_value *tbl = p->root;
    for (size_t i = 0; rc == 0 && i + 1 < k.n; i++) {
        tkv__cfg_entry *e = tkv__cfg_table_find(tbl, k.segs[i].s, k.segs[i].len);
        if (e == NULL) {
            rc = add_table(p, tbl, &k, i, 0, &tbl);
        } else if (e->val->type == TKV_CFG_TABLE && !(e->val->flags & TKV__CFG_INLINE)) {
            tbl = e->val;
        } else if (e->val->type == TKV_CFG_ARRAY && (e->val->flags & TKV__CFG_AOT)) {
            tbl = e->val->u.arr.items[e->val->u.arr.len - 1];
        } else if (e->val->type == TKV_CFG_TABLE) {
            rc = fail(p, k.segs[i].at, "cannot add to the inline table '%s'",
                      key_text(&k, i + 1, kt));
        } else {
            rc = fail(p, k.segs[i].at, "'%s' is %s, not a table", key_text(&k, i + 1, kt),
                      a_type(e->val));
        }
    }
    seg *last = &k.segs[k.n - 1];
    tkv__cfg_entry *e = rc == 0 ? tkv__cfg_table_find(tbl, last->s, last->len) : NULL;
    if (rc != 0) {
        /* reported */
    } else if (!aot) {
        if (e == NULL) {
            rc = add_table(p, tbl, &k, k.n - 1, TKV__CFG_EXPLICIT, &tbl);
        } else if (e->val->type != TKV_CFG_TABLE) {
            rc = fail(p, open, "'%s' is already %s, not a table", key_text(&k, k.n, kt),
                      a_type(e->val));
        } else if (e->val->flags & TKV__CFG_EXPLICIT) {
            rc = fail(p, open, "table '%s' is defined twice", key_text(&k, k.n, kt));
        } else if (e->val->flags & (TKV__CFG_DOTTED | TKV__CFG_INLINE)) {
            rc = fail(p, open, "table '%s' is already defined by %s", key_text(&k, k.n, kt),
                      (e->val->flags & TKV__CFG_INLINE) ? "an inline table" : "dotted keys");
        } else {
            e->val->flags |= TKV__CFG_EXPLICIT;
            tbl = e->val;
        }
    } else {
        tkv_cfg_value *arr = e != NULL ? e->val : NULL;
        if (arr != NULL && !(arr->type == TKV_CFG_ARRAY && (arr->flags & TKV__CFG_AOT)))
            rc = fail(p, open, "'%s' is already %s, not an array of tables", key_text(&k, k.n, kt),
                      a_type(arr));
        else if (tbl->depth + 2u > TKV_CFG_MAX_DEPTH)
            rc = fail(p, open, "tables nested deeper than %d levels", TKV_CFG_MAX_DEPTH);
        else
            rc = aot_append(p, tbl, &k, arr, open, &tbl);
    }
    keypath_clear(&k);
    if (rc == 0)
        p->cur = tbl;
    return rc;
}

/* Parses "key = value" at p->pos into the table @tbl. */
static int parse_keyval(parser *p, tkv_cfg_value *tbl)
{
    keypath k;
    char d[32];
    int rc = parse_key(p, &k);
    if (rc == 0 && peek(p) != '=')
        rc = fail(p, p->pos, "expected '=' after a key, found %s", describe(p, p->pos, d));
    tkv_cfg_value *v = NULL;
    if (rc == 0) {
        p->pos++;
        skip_ws(p);
        rc = parse_value(p, tbl->depth + (unsigned)k.n, &v);
    }
    if (rc == 0)
        rc = insert_kv(p, tbl, &k, v);
    keypath_clear(&k);
    return rc;
}

/* Checks the encoding and size of the text before parsing starts. */
static int check_text(parser *p)
{
    size_t bad = utf8_invalid_at((const uint8_t *)p->s, p->len);
    if (bad < p->len)
        return fail(p, bad, "invalid UTF-8");
    if (starts_with(p, "\xEF\xBB\xBF"))
        p->pos = 3; /* a byte-order mark */
    return 0;
}

int tkv_cfg_parse(const char *text, size_t len, const char *name, tkv_cfg_doc **doc, char *errmsg)
{
    *doc = NULL;
    if (errmsg != NULL)
        errmsg[0] = '\0';
    if (name == NULL)
        name = "<config>";
    if (len > TKV_CFG_MAX_TEXT_LEN) {
        if (errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "%s: larger than %u bytes", name,
                     (unsigned)TKV_CFG_MAX_TEXT_LEN);
        return TKV_ETOOLARGE;
    }
    tkv_cfg_doc *d;
    int rc = tkv_cfg_new(&d);
    const char *origin = rc == 0 ? tkv__cfg_origin_intern(d, name) : NULL;
    if (origin == NULL) {
        tkv_cfg_free(d);
        if (errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "%s: out of memory", name);
        return -ENOMEM;
    }
    d->root->origin = origin;
    parser p;
    parser_init(&p, text, len, origin, errmsg);
    p.root = p.cur = d->root;
    rc = check_text(&p);
    while (rc == 0) {
        skip_ws(&p);
        if (p.pos >= p.len)
            break;
        if (eat_newline(&p))
            continue;
        if (peek(&p) == '#') {
            rc = expect_eol(&p, "a comment");
        } else if (peek(&p) == '[') {
            rc = parse_header(&p);
            if (rc == 0)
                rc = expect_eol(&p, "a table header");
        } else {
            rc = parse_keyval(&p, p.cur);
            if (rc == 0)
                rc = expect_eol(&p, "a value");
        }
    }
    tkv_buf_deinit(&p.buf);
    if (rc != 0) {
        tkv_cfg_free(d);
        return rc;
    }
    *doc = d;
    return 0;
}

int tkv_cfg_load(const char *path, tkv_cfg_doc **doc, char *errmsg)
{
    *doc = NULL;
    if (errmsg != NULL)
        errmsg[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        if (errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "%s: cannot open: %s", path, tkv_strerror(rc));
        return rc;
    }
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = 0;
    for (;;) {
        if (b.len > TKV_CFG_MAX_TEXT_LEN) {
            rc = TKV_ETOOLARGE;
            if (errmsg != NULL)
                snprintf(errmsg, TKV_ERRMSG_LEN, "%s: larger than %u bytes", path,
                         (unsigned)TKV_CFG_MAX_TEXT_LEN);
            break;
        }
        rc = tkv_buf_reserve(&b, 64 * 1024);
        if (rc != 0) {
            if (errmsg != NULL)
                snprintf(errmsg, TKV_ERRMSG_LEN, "%s: out of memory", path);
            break;
        }
        ssize_t n = read(fd, b.data + b.len, b.cap - b.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            if (errmsg != NULL)
                snprintf(errmsg, TKV_ERRMSG_LEN, "%s: read failed: %s", path, tkv_strerror(rc));
            break;
        }
        if (n == 0)
            break;
        b.len += (size_t)n;
    }
    close(fd);
    if (rc == 0)
        rc = tkv_cfg_parse((const char *)b.data, b.len, path, doc, errmsg);
    tkv_buf_deinit(&b);
    return rc;
}

int tkv__cfg_parse_value(const char *text, size_t len, const char *origin, unsigned depth,
                         tkv_cfg_value **out, char *errmsg)
{
    *out = NULL;
    if (len > TKV_CFG_MAX_TEXT_LEN)
        return TKV_ETOOLARGE;
    parser p;
    parser_init(&p, text, len, origin, errmsg);
    int rc = check_text(&p);
    if (rc == 0) {
        skip_ws(&p);
        rc = parse_value(&p, depth, out);
    }
    if (rc == 0) {
        skip_ws(&p);
        char d[32];
        if (p.pos < p.len)
            rc = fail(&p, p.pos, "unexpected %s after the value", describe(&p, p.pos, d));
        if (rc != 0) {
            tkv__cfg_value_free(*out);
            *out = NULL;
        }
    }
    tkv_buf_deinit(&p.buf);
    return rc;
}

/* ---- overrides ------------------------------------------------------------------------- */

/* Puts @v at @k below the root, replacing what is there; @doc is unchanged on error. Takes
 * @v. */
static int override_put(parser *p, keypath *k, tkv_cfg_value *v)
{
    char kt[96];
    tkv_cfg_value *tbl = p->root;
    size_t i = 0;
    int rc = 0;
    /* Walk the tables that exist. */
    for (; i + 1 < k->n; i++) {
        tkv__cfg_entry *e = tkv__cfg_table_find(tbl, k->segs[i].s, k->segs[i].len);
        if (e == NULL)
            break;
        if (e->val->type != TKV_CFG_TABLE) {
            tkv__cfg_value_free(v);
            return fail(p, k->segs[i].at, "'%s' is %s, not a table", key_text(k, i + 1, kt),
                        a_type(e->val));
        }
        tbl = e->val;
    }
    if (i + 1 == k->n) {
        tkv__cfg_entry *e = tkv__cfg_table_find(tbl, k->segs[i].s, k->segs[i].len);
        if (e != NULL) {
            tkv__cfg_value_free(e->val);
            e->val = v;
            return 0;
        }
    }
    /* Build the missing tables detached, innermost first, then attach them in one step. */
    tkv_cfg_value *node = v;
    for (size_t j = k->n - 1; rc == 0 && j > i; j--) {
        seg *sg = &k->segs[j - 1];
        tkv_cfg_value *t =
            tkv__cfg_value_new(TKV_CFG_TABLE, tbl->depth + (unsigned)(j - i), p->origin, 1, 1);
        if (t == NULL) {
            rc = oom(p);
            break;
        }
        uint32_t line, col;
        locate(p, sg->at, &line, &col);
        t->line = line;
        t->col = col;
        t->flags = TKV__CFG_DOTTED;
        if (tkv__cfg_table_add(t, k->segs[j].s, k->segs[j].len, node) != 0) {
            tkv__cfg_value_free(t);
            rc = oom(p);
            break;
        }
        k->segs[j].moved = true;
        node = t;
    }
    if (rc == 0 && tkv__cfg_table_add(tbl, k->segs[i].s, k->segs[i].len, node) != 0)
        rc = oom(p);
    if (rc != 0) {
        tkv__cfg_value_free(node);
        return rc;
    }
    k->segs[i].moved = true;
    return 0;
}

int tkv_cfg_set(tkv_cfg_doc *doc, const char *assignment, char *errmsg)
{
    if (errmsg != NULL)
        errmsg[0] = '\0';
    const char *origin = tkv__cfg_origin_intern(doc, "--set");
    if (origin == NULL) {
        if (errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "--set: out of memory");
        return -ENOMEM;
    }
    size_t len = strlen(assignment);
    if (len > TKV_CFG_MAX_TEXT_LEN) {
        if (errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "--set: larger than %u bytes",
                     (unsigned)TKV_CFG_MAX_TEXT_LEN);
        return TKV_ETOOLARGE;
    }
    parser p;
    parser_init(&p, assignment, len, origin, errmsg);
    p.root = p.cur = doc->root;
    keypath k;
    k.n = 0;
    char d[32];
    int rc = check_text(&p);
    if (rc == 0)
        rc = parse_key(&p, &k);
    if (rc == 0 && peek(&p) != '=')
        rc = fail(&p, p.pos, "expected '=' after the key, found %s (use --set key=value)",
                  describe(&p, p.pos, d));
    tkv_cfg_value *v = NULL;
    if (rc == 0) {
        p.pos++;
        skip_ws(&p);
        rc = parse_value(&p, (unsigned)k.n, &v);
        if (rc == TKV_ECONFIG && errmsg != NULL) {
            size_t n = strlen(errmsg);
            snprintf(errmsg + n, TKV_ERRMSG_LEN - n, " (strings need quotes: key=\"text\")");
        }
    }
    if (rc == 0) {
        skip_ws(&p);
        if (p.pos < p.len) {
            rc = fail(&p, p.pos, "unexpected %s after the value", describe(&p, p.pos, d));
            tkv__cfg_value_free(v);
        }
    }
    if (rc == 0)
        rc = override_put(&p, &k, v);
    keypath_clear(&k);
    tkv_buf_deinit(&p.buf);
    return rc;
}

/* ---- lookups --------------------------------------------------------------------------- */

/* Plain dotted paths need no allocation; paths with quotes go through the key parser. */
int tkv__cfg_lookup(const tkv_cfg_value *t, const char *path, const tkv_cfg_value **out)
{
    *out = NULL;
    if (t == NULL || t->type != TKV_CFG_TABLE)
        return TKV_ENOTFOUND;
    bool plain = *path != '\0';
    for (const char *c = path; *c; c++) {
        if (!is_bare((uint8_t)*c) && *c != '.')
            plain = false;
    }
    if (plain) {
        const char *c = path;
        for (;;) {
            const char *dot = strchr(c, '.');
            size_t n = dot ? (size_t)(dot - c) : strlen(c);
            if (n == 0)
                return -EINVAL;
            if (t->type != TKV_CFG_TABLE)
                return TKV_ENOTFOUND;
            tkv__cfg_entry *e = tkv__cfg_table_find(t, c, n);
            if (e == NULL)
                return TKV_ENOTFOUND;
            t = e->val;
            if (dot == NULL)
                break;
            c = dot + 1;
        }
        *out = t;
        return 0;
    }
    parser p;
    parser_init(&p, path, strlen(path), "<path>", NULL);
    keypath k;
    k.n = 0;
    int rc = parse_key(&p, &k);
    if (rc == TKV_ECONFIG || (rc == 0 && p.pos != p.len))
        rc = -EINVAL;
    for (size_t i = 0; rc == 0 && i < k.n; i++) {
        tkv__cfg_entry *e =
            t->type == TKV_CFG_TABLE ? tkv__cfg_table_find(t, k.segs[i].s, k.segs[i].len) : NULL;
        if (e == NULL)
            rc = TKV_ENOTFOUND;
        else
            t = e->val;
    }
    keypath_clear(&k);
    tkv_buf_deinit(&p.buf);
    if (rc == 0)
        *out = t;
    return rc;
}
