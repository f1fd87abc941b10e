/*
 * cfg_int.h: internals shared by cfg.c (document model, TOML parser, overrides), cfg_dump.c
 * (writer, equality) and cfg_bind.c (readable sizes and durations, struct binding). Not API.
 */
#ifndef TKV_CFG_INT_H
#define TKV_CFG_INT_H

#include <stdarg.h>

#include "base/cfg.h"

/* Table flags, which decide what later headers and dotted keys may do with a table (TOML 1.0:
 * a table is defined once; dotted keys extend only tables they created; inline tables are
 * sealed). A table with none of the first three flags was created implicitly by a header's
 * path ([a.b] creates a) and may still get its own [a] header. */
enum {
    TKV__CFG_EXPLICIT = 1, /* defined by a [header] (or the root) */
    TKV__CFG_DOTTED = 2,   /* created by a dotted key (a.b = 1 creates table a) */
    TKV__CFG_INLINE = 4,   /* an inline table { ... } */
    TKV__CFG_AOT = 8,      /* an array created by [[header]]s */
};

typedef struct tkv__cfg_entry {
    char *key; /* NUL-terminated copy; may hold NULs (see key_len) */
    size_t key_len;
    tkv_cfg_value *val;
} tkv__cfg_entry;

struct tkv_cfg_value {
    uint8_t type; /* tkv_cfg_type */
    uint8_t flags;
    uint16_t depth; /* 0 for the root; children are one deeper */
    uint32_t line, col;
    const char *origin; /* owned by the document (or a static string) */
    union {
        struct {
            char *ptr; /* NUL-terminated */
            size_t len;
        } s;
        int64_t i;
        double f;
        bool b;
        struct {
            tkv_cfg_value **items;
            size_t len, cap;
        } arr;
        struct {
            tkv__cfg_entry *items;
            size_t len, cap;
        } tbl;
    } u;
};

/* A source name values point to ("tikv.toml", "--set"), kept as long as the document. */
typedef struct tkv__cfg_origin {
    struct tkv__cfg_origin *next;
    char name[];
} tkv__cfg_origin;

struct tkv_cfg_doc {
    tkv_cfg_value *root;
    tkv__cfg_origin *origins;
};

/* Returns a new value of @type (zeroed payload) at @depth, or NULL. */
tkv_cfg_value *tkv__cfg_value_new(tkv_cfg_type type, unsigned depth, const char *origin,
                                  uint32_t line, uint32_t col);
/* Adds @key (@len bytes) to table @t, taking ownership of @key and @v on success only.
 * Errors: -ENOMEM. */
int tkv__cfg_table_add(tkv_cfg_value *t, char *key, size_t len, tkv_cfg_value *v);
/* Appends @v to array @a, taking ownership on success only. Errors: -ENOMEM. */
int tkv__cfg_array_push(tkv_cfg_value *a, tkv_cfg_value *v);
/* Returns a heap copy of @len bytes at @p with a NUL after them, or NULL. */
char *tkv__cfg_dup_nul(const char *p, size_t len);
/* Returns the document's copy of the source name @name, adding it once; NULL on -ENOMEM. */
const char *tkv__cfg_origin_intern(tkv_cfg_doc *doc, const char *name);
/* Looks up the dotted TOML key @path below table @t. Errors: TKV_ENOTFOUND (missing, or a
 * non-table on the way), -EINVAL (malformed path), -ENOMEM (quoted paths allocate). */
int tkv__cfg_lookup(const tkv_cfg_value *t, const char *path, const tkv_cfg_value **out);
/* Releases @v and everything below it; NULL is a no-op. */
void tkv__cfg_value_free(tkv_cfg_value *v);
/* Returns the entry of @t named by the @len bytes at @key, or NULL. */
tkv__cfg_entry *tkv__cfg_table_find(const tkv_cfg_value *t, const char *key, size_t len);

/* Parses the single TOML value of @len bytes at @text (nothing but spaces may follow) into a
 * detached value at @depth, naming @origin (a static or document-owned string) in messages.
 * Errors: TKV_ECONFIG with the message in @errmsg, -ENOMEM. */
int tkv__cfg_parse_value(const char *text, size_t len, const char *origin, unsigned depth,
                         tkv_cfg_value **out, char *errmsg);

/* Writes @prefix and then the formatted message into @errmsg (TKV_ERRMSG_LEN bytes; NULL
 * writes nothing) and returns TKV_ECONFIG. */
TKV_PRINTF(3, 0) int tkv__cfg_verr(char *errmsg, const char *prefix, const char *fmt, va_list ap);

/* Where text goes: a growing tkv_buf (rc records the first -ENOMEM) or a fixed char array
 * that silently truncates and stays NUL-terminated (for messages). */
typedef struct tkv__cfg_sink {
    tkv_buf *buf;
    char *fixed;
    size_t cap, len;
    int rc;
} tkv__cfg_sink;

/* Starts a sink writing into the @cap bytes at @dst (empty string). */
void tkv__cfg_sink_fixed(tkv__cfg_sink *s, char *dst, size_t cap);
/* Starts a sink appending to @buf. */
void tkv__cfg_sink_buf(tkv__cfg_sink *s, tkv_buf *buf);
/* Appends @n bytes at @p. */
void tkv__cfg_put(tkv__cfg_sink *s, const char *p, size_t n);
/* Appends @s as a TOML basic string with quotes and escapes. */
void tkv__cfg_put_quoted(tkv__cfg_sink *s, const char *p, size_t n);
/* Appends a key: bare when it can be, else quoted. */
void tkv__cfg_put_key(tkv__cfg_sink *s, const char *k, size_t n);

#endif /* TKV_CFG_INT_H */
