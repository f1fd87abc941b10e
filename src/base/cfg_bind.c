/*
 * cfg_bind.c: TiKV's readable sizes and durations, and binding documents to C structs
 * (see cfg.h).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "base/cfg.h"
#include "base/cfg_int.h"
#include "base/log.h"

/* ---- readable sizes and durations ------------------------------------------------------ */

/* Longest fraction accepted in a size or duration ("1.5" has one digit). */
#define MAX_FRACTION_DIGITS 64

static TKV_PRINTF(2, 3) int unit_fail(char *errmsg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = tkv__cfg_verr(errmsg, "", fmt, ap);
    va_end(ap);
    return rc;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_space((*s)[0])) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_space((*s)[*len - 1]))
        (*len)--;
}

/* Computes @num * @unit exactly, where @num is the decimal number of @n bytes at @s (digits
 * with at most one '.'), rounding down. Returns 0, or TKV_ECONFIG with a reason in @why. */
static int scale(const char *s, size_t n, uint64_t unit, uint64_t *out, const char **why)
{
    size_t dot = n;
    size_t ndigits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (dot != n) {
                *why = "more than one '.'";
                return TKV_ECONFIG;
            }
            dot = i;
        } else if (s[i] >= '0' && s[i] <= '9') {
            ndigits++;
        } else {
            *why = "not a number";
            return TKV_ECONFIG;
        }
    }
    if (ndigits == 0) {
        *why = "no digits";
        return TKV_ECONFIG;
    }
    uint64_t whole = 0;
    for (size_t i = 0; i < dot; i++) {
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, (uint64_t)(s[i] - '0'), &whole)) {
            *why = "too large";
            return TKV_ECONFIG;
        }
    }
    /* floor(0.f1f2...fk * unit): multiply the fraction's digits by unit from the last digit
     * up; the carry out of the first digit is the whole part of the product. */
    uint64_t frac = 0;
    if (dot < n) {
        size_t k = n - dot - 1;
        if (k > MAX_FRACTION_DIGITS) {
            *why = "too many fraction digits";
            return TKV_ECONFIG;
        }
        uint8_t d[MAX_FRACTION_DIGITS] = {0};
        for (size_t i = 0; i < k; i++)
            d[i] = (uint8_t)(s[dot + 1 + i] - '0');
        uint64_t carry = 0;
        for (size_t i = k; i-- > 0;) {
            /* unit < 2^60 keeps this below 2^64: 9 * unit + carry (carry < unit). */
            uint64_t v = d[i] * unit + carry;
            carry = v / 10;
        }
        frac = carry;
    }
    uint64_t total;
    if (__builtin_mul_overflow(whole, unit, &total) ||
        __builtin_add_overflow(total, frac, &total)) {
        *why = "too large";
        return TKV_ECONFIG;
    }
    *out = total;
    return 0;
}

int tkv_cfg_parse_size(const char *s, size_t len, uint64_t *bytes, char *errmsg)
{
    static const struct {
        const char *name;
        unsigned shift;
    } units[] = {
        {"", 0},    {"B", 0},    {"K", 10}, {"KB", 10}, {"KiB", 10}, {"M", 20},
        {"MB", 20}, {"MiB", 20}, {"G", 30}, {"GB", 30}, {"GiB", 30}, {"T", 40},
        {"TB", 40}, {"TiB", 40}, {"P", 50}, {"PB", 50}, {"PiB", 50},
    };
    const char *orig = s;
    size_t orig_len = len;
    int shown = (int)TKV_MIN(orig_len, (size_t)96);
    trim(&s, &len);
    if (len == 0)
        return unit_fail(errmsg, "empty size");
    size_t num = 0;
    while (num < len && ((s[num] >= '0' && s[num] <= '9') || s[num] == '.'))
        num++;
    const char *u = s + num;
    size_t ulen = len - num;
    trim(&u, &ulen);
    unsigned shift = 0;
    bool known = false;
    for (size_t i = 0; i < TKV_ARRAY_LEN(units) && !known; i++) {
        if (strlen(units[i].name) == ulen && memcmp(units[i].name, u, ulen) == 0) {
            shift = units[i].shift;
            known = true;
        }
    }
    if (!known)
        return unit_fail(errmsg,
                         "invalid size \"%.*s\": unknown unit \"%.*s\" (use B, KB, KiB, MB, MiB, "
                         "GB, GiB, TB, TiB, PB or PiB)",
                         shown, orig, (int)TKV_MIN(ulen, (size_t)16), u);
    const char *why;
    if (scale(s, num, (uint64_t)1 << shift, bytes, &why) != 0)
        return unit_fail(errmsg, "invalid size \"%.*s\": %s", shown, orig,
                         strcmp(why, "too large") == 0 ? "more than 2^64-1 bytes" : why);
    return 0;
}

int tkv_cfg_parse_duration(const char *s, size_t len, uint64_t *ms, char *errmsg)
{
    enum { MS = 1, SEC = 1000, MIN = 60 * SEC, HOUR = 60 * MIN, DAY = 24 * HOUR };
    const char *orig = s;
    int shown = (int)TKV_MIN(len, (size_t)96);
    trim(&s, &len);
    if (len == 0)
        return unit_fail(errmsg, "empty duration (use units d, h, m, s, ms: \"10s\")");
    uint64_t total = 0;
    uint64_t last = (uint64_t)DAY + 1;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && s[i] != 'd' && s[i] != 'h' && s[i] != 'm' && s[i] != 's')
            i++;
        if (i == len)
            return unit_fail(errmsg,
                             "invalid duration \"%.*s\": a number without a unit (use d, h, m, "
                             "s, ms)",
                             shown, orig);
        const char *num = s + start;
        size_t nlen = i - start;
        trim(&num, &nlen);
        uint64_t unit;
        if (s[i] == 'm' && i + 1 < len && s[i + 1] == 's') {
            unit = MS;
            i += 2;
        } else {
            unit = s[i] == 'd' ? DAY : s[i] == 'h' ? HOUR : s[i] == 'm' ? MIN : SEC;
            i++;
        }
        if (unit >= last)
            return unit_fail(errmsg,
                             "invalid duration \"%.*s\": units must appear once each, from "
                             "d to ms",
                             shown, orig);
        last = unit;
        uint64_t part;
        /* scale() sets why on failure; an overflow of the sum alone is "too large". */
        const char *why = "too large";
        if (scale(num, nlen, unit, &part, &why) != 0 ||
            __builtin_add_overflow(total, part, &total)) {
            if (nlen == 0 || strcmp(why, "too large") != 0)
                return unit_fail(errmsg, "invalid duration \"%.*s\": bad number before a unit",
                                 shown, orig);
            return unit_fail(errmsg, "invalid duration \"%.*s\": more than 2^64-1 ms", shown, orig);
        }
    }
    *ms = total;
    return 0;
}

size_t tkv_cfg_format_size(uint64_t bytes, char *out, size_t cap)
{
    static const char *const names[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    int n;
    if (bytes == 0) {
        n = snprintf(out, cap, "0KiB");
    } else {
        int best = -1;
        for (int i = 4; i >= 0 && best < 0; i--) {
            if (bytes % ((uint64_t)1 << (10 * (i + 1))) == 0)
                best = i;
        }
        if (best < 0)
            n = snprintf(out, cap, "%" PRIu64 "B", bytes);
        else
            n = snprintf(out, cap, "%" PRIu64 "%s", bytes >> (10 * (best + 1)), names[best]);
    }
    return n < 0 ? 0 : (size_t)n;
}

size_t tkv_cfg_format_duration(uint64_t ms, char *out, size_t cap)
{
    static const struct {
        uint64_t ms;
        const char *name;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    tkv__cfg_sink s;
    tkv__cfg_sink_fixed(&s, out, cap);
    for (size_t i = 0; i < TKV_ARRAY_LEN(units); i++) {
        if (ms < units[i].ms)
            continue;
        char b[32];
        int n = snprintf(b, sizeof(b), "%" PRIu64 "%s", ms / units[i].ms, units[i].name);
        tkv__cfg_put(&s, b, (size_t)n);
        ms %= units[i].ms;
    }
    if (s.len == 0)
        tkv__cfg_put(&s, "0s", 2);
    return s.len;
}

/* ---- binding --------------------------------------------------------------------------- */

/* What a bind error or warning names: where the value came from and which key. */
typedef struct bind_ctx {
    const tkv_cfg_field *f;
    const tkv_cfg_value *v; /* the value being bound, NULL when there is none */
    bool is_default;        /* v is the field's default, not a document value */
    char *errmsg;
} bind_ctx;

static TKV_PRINTF(2, 3) int bind_fail(bind_ctx *c, const char *fmt, ...)
{
    char prefix[TKV_ERRMSG_LEN];
    if (c->v != NULL && !c->is_default)
        snprintf(prefix, sizeof(prefix), "%s:%u:%u: %s: ", c->v->origin, (unsigned)c->v->line,
                 (unsigned)c->v->col, c->f->key);
    else
        snprintf(prefix, sizeof(prefix), "default: %s: ", c->f->key);
    va_list ap;
    va_start(ap, fmt);
    int rc = tkv__cfg_verr(c->errmsg, prefix, fmt, ap);
    va_end(ap);
    return rc;
}

static int bind_oom(bind_ctx *c)
{
    if (c->errmsg != NULL)
        snprintf(c->errmsg, TKV_ERRMSG_LEN, "%s: out of memory", c->f->key);
    return -ENOMEM;
}

static int want(bind_ctx *c, const char *what)
{
    return bind_fail(c, "expected %s, got %s", what, tkv_cfg_type_name(c->v->type));
}

/* Returns a heap copy of string value @v after checking it has no NUL. */
static int copy_str(bind_ctx *c, const tkv_cfg_value *v, char **out)
{
    if (memchr(v->u.s.ptr, '\0', v->u.s.len) != NULL)
        return bind_fail(c, "strings cannot hold NUL characters");
    *out = tkv_memdup(v->u.s.ptr, v->u.s.len + 1);
    return *out != NULL ? 0 : bind_oom(c);
}

static void release(const tkv_cfg_field *f, void *out)
{
    char *slot = (char *)out + f->offset;
    if (f->kind == TKV_CFG_K_STR || f->kind == TKV_CFG_K_BOOLSTR) {
        char *str;
        memcpy(&str, slot, sizeof(str));
        tkv_free(str);
        str = NULL;
        memcpy(slot, &str, sizeof(str));
    } else if (f->kind == TKV_CFG_K_STRLIST) {
        tkv_cfg_strlist l;
        memcpy(&l, slot, sizeof(l));
        for (size_t i = 0; i < l.len; i++)
            tkv_free(l.items[i]);
        tkv_free(l.items);
        memset(slot, 0, sizeof(l));
    }
}

/* Returns the size of the member a field of @kind binds. */
static size_t kind_size(tkv_cfg_kind kind)
{
    switch (kind) {
    case TKV_CFG_K_BOOL:
        return sizeof(bool);
    case TKV_CFG_K_INT:
        return sizeof(int);
    case TKV_CFG_K_STR:
    case TKV_CFG_K_BOOLSTR:
        return sizeof(char *);
    case TKV_CFG_K_STRLIST:
        return sizeof(tkv_cfg_strlist);
    case TKV_CFG_K_F64:
        return sizeof(double);
    default:
        return sizeof(uint64_t);
    }
}

/* Converts c->v to the field's kind and stores it into @out's member, replacing (and
 * freeing) the previous value only on success. */
static int apply(bind_ctx *c, void *out)
{
    const tkv_cfg_value *v = c->v;
    char *slot = (char *)out + c->f->offset;
    char reason[TKV_ERRMSG_LEN];
    switch (c->f->kind) {
    case TKV_CFG_K_BOOL: {
        if (v->type != TKV_CFG_BOOL)
            return want(c, "a boolean");
        bool b = v->u.b;
        memcpy(slot, &b, sizeof(b));
        return 0;
    }
    case TKV_CFG_K_INT: {
        if (v->type != TKV_CFG_INTEGER)
            return want(c, "an integer");
        if (v->u.i < INT_MIN || v->u.i > INT_MAX)
            return bind_fail(c, "%" PRId64 " is out of range [%d, %d]", v->u.i, INT_MIN, INT_MAX);
        int i = (int)v->u.i;
        memcpy(slot, &i, sizeof(i));
        return 0;
    }
    case TKV_CFG_K_I64:
        if (v->type != TKV_CFG_INTEGER)
            return want(c, "an integer");
        memcpy(slot, &v->u.i, sizeof(v->u.i));
        return 0;
    case TKV_CFG_K_U64: {
        if (v->type != TKV_CFG_INTEGER)
            return want(c, "an integer");
        if (v->u.i < 0)
            return bind_fail(c, "%" PRId64 " is negative", v->u.i);
        uint64_t u = (uint64_t)v->u.i;
        memcpy(slot, &u, sizeof(u));
        return 0;
    }
    case TKV_CFG_K_F64: {
        if (v->type != TKV_CFG_FLOAT && v->type != TKV_CFG_INTEGER)
            return want(c, "a number");
        double d = tkv_cfg_float(v);
        memcpy(slot, &d, sizeof(d));
        return 0;
    }
    case TKV_CFG_K_STR: {
        if (v->type != TKV_CFG_STRING)
            return want(c, "a string");
        char *str;
        int rc = copy_str(c, v, &str);
        if (rc != 0)
            return rc;
        release(c->f, out);
        memcpy(slot, &str, sizeof(str));
        return 0;
    }
    case TKV_CFG_K_BOOLSTR: {
        char *str = NULL;
        int rc = 0;
        if (v->type == TKV_CFG_BOOL) {
            str = tkv_strdup(v->u.b ? "true" : "false");
            rc = str != NULL ? 0 : bind_oom(c);
        } else if (v->type == TKV_CFG_STRING) {
            rc = copy_str(c, v, &str);
        } else {
            return want(c, "a boolean or a string");
        }
        if (rc != 0)
            return rc;
        release(c->f, out);
        memcpy(slot, &str, sizeof(str));
        return 0;
    }
    case TKV_CFG_K_STRLIST: {
        if (v->type != TKV_CFG_ARRAY)
            return want(c, "an array of strings");
        tkv_cfg_strlist l = {NULL, 0};
        int rc = 0;
        if (v->u.arr.len > 0) {
            l.items = tkv_calloc(v->u.arr.len, sizeof(char *));
            if (l.items == NULL)
                rc = bind_oom(c);
        }
        for (size_t i = 0; rc == 0 && i < v->u.arr.len; i++) {
            const tkv_cfg_value *el = v->u.arr.items[i];
            if (el->type != TKV_CFG_STRING)
                rc = bind_fail(c, "expected an array of strings, element %zu is %s", i,
                               tkv_cfg_type_name(el->type));
            else
                rc = copy_str(c, el, &l.items[l.len++]);
        }
        if (rc != 0) {
            for (size_t i = 0; i < l.len; i++)
                tkv_free(l.items[i]);
            tkv_free(l.items);
            return rc;
        }
        release(c->f, out);
        memcpy(slot, &l, sizeof(l));
        return 0;
    }
    case TKV_CFG_K_SIZE: {
        uint64_t bytes;
        if (v->type == TKV_CFG_INTEGER) {
            if (v->u.i < 0)
                return bind_fail(c, "a size cannot be negative (%" PRId64 ")", v->u.i);
            bytes = (uint64_t)v->u.i;
        } else if (v->type == TKV_CFG_STRING) {
            if (tkv_cfg_parse_size(v->u.s.ptr, v->u.s.len, &bytes, reason) != 0)
                return bind_fail(c, "%s", reason);
        } else {
            return want(c, "a size (\"96MiB\" or a number of bytes)");
        }
        memcpy(slot, &bytes, sizeof(bytes));
        return 0;
    }
    case TKV_CFG_K_DURATION: {
        uint64_t ms;
        if (v->type != TKV_CFG_STRING)
            return want(c, "a duration string (\"10s\", \"1m30s\", \"500ms\")");
        if (tkv_cfg_parse_duration(v->u.s.ptr, v->u.s.len, &ms, reason) != 0)
            return bind_fail(c, "%s", reason);
        memcpy(slot, &ms, sizeof(ms));
        return 0;
    }
    }
    return bind_fail(c, "unknown field kind %d", (int)c->f->kind);
}

/* Returns the @i-th dot-separated part of the field key @key in @part/@n, or false. */
static bool key_part(const char *key, size_t i, const char **part, size_t *n)
{
    const char *p = key;
    for (; i > 0; i--) {
        p = strchr(p, '.');
        if (p == NULL)
            return false;
        p++;
    }
    const char *dot = strchr(p, '.');
    *part = p;
    *n = dot != NULL ? (size_t)(dot - p) : strlen(p);
    return true;
}

/* Finds field @f's value in @root. Sets *@v (NULL when absent); when a non-table sits on the
 * path, returns it in *@block. */
static void find_field(const tkv_cfg_value *root, const tkv_cfg_field *f, const tkv_cfg_value **v,
                       const tkv_cfg_value **block, size_t *block_parts)
{
    *v = NULL;
    *block = NULL;
    const tkv_cfg_value *t = root;
    const char *part;
    size_t n;
    for (size_t i = 0; key_part(f->key, i, &part, &n); i++) {
        if (t->type != TKV_CFG_TABLE) {
            *block = t;
            *block_parts = i;
            return;
        }
        const tkv__cfg_entry *e = tkv__cfg_table_find(t, part, n);
        if (e == NULL)
            return;
        t = e->val;
    }
    *v = t;
}

enum { MATCH_NONE, MATCH_PREFIX, MATCH_EXACT };

/* Compares the document path @segs[0..@n) with the field keys. */
static int match_fields(const tkv_cfg_field *fields, size_t nf, const tkv__cfg_entry **segs,
                        size_t n)
{
    int best = MATCH_NONE;
    for (size_t j = 0; j < nf && best != MATCH_EXACT; j++) {
        const char *part;
        size_t len;
        size_t i = 0;
        for (; i < n; i++) {
            if (!key_part(fields[j].key, i, &part, &len) || len != segs[i]->key_len ||
                memcmp(part, segs[i]->key, len) != 0)
                break;
        }
        if (i < n)
            continue;
        best = key_part(fields[j].key, n, &part, &len) ? MATCH_PREFIX : MATCH_EXACT;
    }
    return best;
}

/* Reports every key below @t that no field names. */
static void warn_unknown(const tkv_cfg_value *t, const tkv_cfg_field *fields, size_t nf,
                         const tkv__cfg_entry **segs, size_t depth, tkv_cfg_warn_fn warn, void *arg)
{
    for (size_t i = 0; i < t->u.tbl.len; i++) {
        const tkv__cfg_entry *e = &t->u.tbl.items[i];
        segs[depth] = e;
        int m = match_fields(fields, nf, segs, depth + 1);
        if (m == MATCH_EXACT)
            continue;
        if (m == MATCH_PREFIX && e->val->type == TKV_CFG_TABLE && depth + 1 <= TKV_CFG_MAX_DEPTH) {
            warn_unknown(e->val, fields, nf, segs, depth + 1, warn, arg);
            continue;
        }
        char msg[TKV_ERRMSG_LEN];
        tkv__cfg_sink s;
        tkv__cfg_sink_fixed(&s, msg, sizeof(msg));
        char head[128];
        snprintf(head, sizeof(head), "%s:%u:%u: unknown configuration key '", e->val->origin,
                 (unsigned)e->val->line, (unsigned)e->val->col);
        tkv__cfg_put(&s, head, strlen(head));
        for (size_t k = 0; k <= depth; k++) {
            if (k > 0)
                tkv__cfg_put(&s, ".", 1);
            tkv__cfg_put_key(&s, segs[k]->key, segs[k]->key_len);
        }
        tkv__cfg_put(&s, "'", 1);
        if (warn != NULL)
            warn(arg, msg);
        else
            TKV_LOG_WARN("unknown configuration key", TKV_LF_STR("detail", msg));
    }
}

int tkv_cfg_bind(const tkv_cfg_doc *doc, const tkv_cfg_field *fields, size_t n, void *out,
                 tkv_cfg_warn_fn warn, void *warn_arg, char *errmsg)
{
    if (errmsg != NULL)
        errmsg[0] = '\0';
    for (size_t i = 0; i < n; i++)
        memset((char *)out + fields[i].offset, 0, kind_size(fields[i].kind));
    int rc = 0;
    /* Defaults, parsed as TOML values like everything else. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (fields[i].def == NULL)
            continue;
        bind_ctx c = {&fields[i], NULL, true, errmsg};
        char origin[TKV_ERRMSG_LEN];
        snprintf(origin, sizeof(origin), "default of %s", fields[i].key);
        tkv_cfg_value *v;
        rc = tkv__cfg_parse_value(fields[i].def, strlen(fields[i].def), origin, 0, &v, errmsg);
        if (rc == 0) {
            c.v = v;
            rc = apply(&c, out);
            tkv__cfg_value_free(v);
        } else if (rc == -ENOMEM) {
            rc = bind_oom(&c);
        }
    }
    /* The document's values. */
    const tkv_cfg_value *root = doc != NULL ? doc->root : NULL;
    for (size_t i = 0; rc == 0 && root != NULL && i < n; i++) {
        bind_ctx c = {&fields[i], NULL, false, errmsg};
        const tkv_cfg_value *block;
        size_t parts = 0;
        find_field(root, &fields[i], &c.v, &block, &parts);
        if (block != NULL) {
            /* The root is always a table, so parts >= 1; the defaults cover the rest. */
            const char *part = fields[i].key;
            size_t len = 0;
            TKV_IGNORE(parts > 0 && key_part(fields[i].key, parts - 1, &part, &len));
            c.v = block;
            rc = bind_fail(&c, "'%.*s' must be a table, got %s", (int)(part + len - fields[i].key),
                           fields[i].key, tkv_cfg_type_name(block->type));
        } else if (c.v != NULL) {
            rc = apply(&c, out);
        }
    }
    /* Validators see the final values. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (fields[i].check == NULL)
            continue;
        char reason[TKV_ERRMSG_LEN] = "";
        if (fields[i].check((char *)out + fields[i].offset, reason, sizeof(reason)) != 0) {
            bind_ctx c = {&fields[i], NULL, false, errmsg};
            const tkv_cfg_value *block;
            size_t parts;
            if (root != NULL)
                find_field(root, &fields[i], &c.v, &block, &parts);
            rc = bind_fail(&c, "%s", reason[0] ? reason : "invalid value");
        }
    }
    if (rc != 0) {
        tkv_cfg_unbind(fields, n, out);
        return rc;
    }
    if (root != NULL) {
        const tkv__cfg_entry *segs[TKV_CFG_MAX_DEPTH + 1];
        warn_unknown(root, fields, n, segs, 0, warn, warn_arg);
    }
    return 0;
}

void tkv_cfg_unbind(const tkv_cfg_field *fields, size_t n, void *out)
{
    for (size_t i = 0; i < n; i++)
        release(&fields[i], out);
}
