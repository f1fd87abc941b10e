/*
 * cfg_dump.c: writing documents back as TOML, and comparing values (see cfg.h).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/cfg.h"
#include "base/cfg_int.h"

int tkv__cfg_verr(char *errmsg, const char *prefix, const char *fmt, va_list ap)
{
    if (errmsg != NULL) {
        int n = snprintf(errmsg, TKV_ERRMSG_LEN, "%s", prefix);
        if (n >= 0 && n < TKV_ERRMSG_LEN)
            vsnprintf(errmsg + n, (size_t)(TKV_ERRMSG_LEN - n), fmt, ap);
    }
    return TKV_ECONFIG;
}

/* ---- sinks ----------------------------------------------------------------------------- */

void tkv__cfg_sink_fixed(tkv__cfg_sink *s, char *dst, size_t cap)
{
    memset(s, 0, sizeof(*s));
    s->fixed = dst;
    s->cap = cap;
    if (cap > 0)
        dst[0] = '\0';
}

void tkv__cfg_sink_buf(tkv__cfg_sink *s, tkv_buf *buf)
{
    memset(s, 0, sizeof(*s));
    s->buf = buf;
}

void tkv__cfg_put(tkv__cfg_sink *s, const char *p, size_t n)
{
    if (s->buf != NULL) {
        if (s->rc == 0)
            s->rc = tkv_buf_append(s->buf, p, n);
        return;
    }
    if (s->cap == 0)
        return;
    size_t room = s->cap - 1 - s->len;
    size_t k = TKV_MIN(room, n);
    memcpy(s->fixed + s->len, p, k);
    s->len += k;
    s->fixed[s->len] = '\0';
}

static void put_str(tkv__cfg_sink *s, const char *str)
{
    tkv__cfg_put(s, str, strlen(str));
}

void tkv__cfg_put_quoted(tkv__cfg_sink *s, const char *p, size_t n)
{
    tkv__cfg_put(s, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)p[i];
        const char *esc = NULL;
        char hex[8];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\r':
            esc = "\\r";
            break;
        default:
            if (c < 0x20 || c == 0x7F) {
                snprintf(hex, sizeof(hex), "\\u%04X", (unsigned)c);
                esc = hex;
            }
            break;
        }
        if (esc == NULL)
            continue;
        tkv__cfg_put(s, p + run, i - run);
        put_str(s, esc);
        run = i + 1;
    }
    tkv__cfg_put(s, p + run, n - run);
    tkv__cfg_put(s, "\"", 1);
}

void tkv__cfg_put_key(tkv__cfg_sink *s, const char *k, size_t n)
{
    bool bare = n > 0;
    for (size_t i = 0; i < n && bare; i++) {
        char c = k[i];
        bare = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    }
    if (bare)
        tkv__cfg_put(s, k, n);
    else
        tkv__cfg_put_quoted(s, k, n);
}

/* ---- values ---------------------------------------------------------------------------- */

/* Writes @d in the shortest form that reads back as the same double, as a TOML float. */
static void put_float(tkv__cfg_sink *s, double d)
{
    if (isnan(d)) {
        put_str(s, "nan");
        return;
    }
    if (isinf(d)) {
        put_str(s, d > 0 ? "inf" : "-inf");
        return;
    }
    char b[48];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, sizeof(b), "%.*g", prec, d);
        if (strtod(b, NULL) == d)
            break;
    }
    put_str(s, b);
    if (strpbrk(b, ".e") == NULL)
        put_str(s, ".0");
}

static bool is_array_of_tables(const tkv_cfg_value *v)
{
    if (v->type != TKV_CFG_ARRAY || v->u.arr.len == 0)
        return false;
    for (size_t i = 0; i < v->u.arr.len; i++) {
        if (v->u.arr.items[i]->type != TKV_CFG_TABLE)
            return false;
    }
    return true;
}

/* Writes @v inline (tables as { ... }). */
static void put_value(tkv__cfg_sink *s, const tkv_cfg_value *v)
{
    char b[32];
    switch (v->type) {
    case TKV_CFG_STRING:
        tkv__cfg_put_quoted(s, v->u.s.ptr, v->u.s.len);
        break;
    case TKV_CFG_DATETIME:
        tkv__cfg_put(s, v->u.s.ptr, v->u.s.len);
        break;
    case TKV_CFG_INTEGER:
        snprintf(b, sizeof(b), "%" PRId64, v->u.i);
        put_str(s, b);
        break;
    case TKV_CFG_FLOAT:
        put_float(s, v->u.f);
        break;
    case TKV_CFG_BOOL:
        put_str(s, v->u.b ? "true" : "false");
        break;
    case TKV_CFG_ARRAY:
        tkv__cfg_put(s, "[", 1);
        for (size_t i = 0; i < v->u.arr.len; i++) {
            if (i > 0)
                tkv__cfg_put(s, ", ", 2);
            put_value(s, v->u.arr.items[i]);
        }
        tkv__cfg_put(s, "]", 1);
        break;
    default:
        tkv__cfg_put(s, "{", 1);
        for (size_t i = 0; i < v->u.tbl.len; i++) {
            const tkv__cfg_entry *e = &v->u.tbl.items[i];
            tkv__cfg_put(s, i > 0 ? ", " : " ", i > 0 ? 2 : 1);
            tkv__cfg_put_key(s, e->key, e->key_len);
            tkv__cfg_put(s, " = ", 3);
            put_value(s, e->val);
        }
        put_str(s, v->u.tbl.len > 0 ? " }" : "}");
        break;
    }
}

/* Writes the body of table @t whose header path is in @path: plain keys, then sub-tables. */
static void dump_table(tkv__cfg_sink *s, const tkv_cfg_value *t, tkv_buf *path)
{
    for (size_t i = 0; i < t->u.tbl.len; i++) {
        const tkv__cfg_entry *e = &t->u.tbl.items[i];
        if (e->val->type == TKV_CFG_TABLE || is_array_of_tables(e->val))
            continue;
        tkv__cfg_put_key(s, e->key, e->key_len);
        tkv__cfg_put(s, " = ", 3);
        put_value(s, e->val);
        tkv__cfg_put(s, "\n", 1);
    }
    for (size_t i = 0; i < t->u.tbl.len && s->rc == 0; i++) {
        const tkv__cfg_entry *e = &t->u.tbl.items[i];
        bool aot = is_array_of_tables(e->val);
        if (e->val->type != TKV_CFG_TABLE && !aot)
            continue;
        size_t saved = path->len;
        tkv__cfg_sink ps;
        tkv__cfg_sink_buf(&ps, path);
        if (saved > 0)
            tkv__cfg_put(&ps, ".", 1);
        tkv__cfg_put_key(&ps, e->key, e->key_len);
        if (ps.rc != 0) {
            s->rc = ps.rc;
            break;
        }
        size_t n = aot ? e->val->u.arr.len : 1;
        for (size_t j = 0; j < n; j++) {
            put_str(s, aot ? "\n[[" : "\n[");
            tkv__cfg_put(s, (const char *)path->data, path->len);
            put_str(s, aot ? "]]\n" : "]\n");
            dump_table(s, aot ? e->val->u.arr.items[j] : e->val, path);
        }
        path->len = saved;
    }
}

int tkv_cfg_dump(const tkv_cfg_doc *doc, tkv_buf *out)
{
    size_t old = out->len;
    tkv_buf path;
    tkv_buf_init(&path);
    tkv__cfg_sink s;
    tkv__cfg_sink_buf(&s, out);
    dump_table(&s, doc->root, &path);
    tkv_buf_deinit(&path);
    if (s.rc != 0)
        out->len = old;
    return s.rc;
}

bool tkv_cfg_equal(const tkv_cfg_value *a, const tkv_cfg_value *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case TKV_CFG_STRING:
    case TKV_CFG_DATETIME:
        return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
    case TKV_CFG_INTEGER:
        return a->u.i == b->u.i;
    case TKV_CFG_FLOAT:
        if (isnan(a->u.f) || isnan(b->u.f))
            return isnan(a->u.f) && isnan(b->u.f);
        return a->u.f == b->u.f && signbit(a->u.f) == signbit(b->u.f);
    case TKV_CFG_BOOL:
        return a->u.b == b->u.b;
    case TKV_CFG_ARRAY:
        if (a->u.arr.len != b->u.arr.len)
            return false;
        for (size_t i = 0; i < a->u.arr.len; i++) {
            if (!tkv_cfg_equal(a->u.arr.items[i], b->u.arr.items[i]))
                return false;
        }
        return true;
    default:
        if (a->u.tbl.len != b->u.tbl.len)
            return false;
        for (size_t i = 0; i < a->u.tbl.len; i++) {
            const tkv__cfg_entry *e = &a->u.tbl.items[i];
            const tkv__cfg_entry *f = tkv__cfg_table_find(b, e->key, e->key_len);
            if (f == NULL || !tkv_cfg_equal(e->val, f->val))
                return false;
        }
        return true;
    }
}
