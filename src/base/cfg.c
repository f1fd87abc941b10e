/*
 * cfg.c: the configuration document model: values, tables, arrays, documents, lookups and
 * accessors (see cfg.h). Parsing lives in cfg_parse.c, writing in cfg_dump.c, binding in
 * cfg_bind.c.
 */
#include "base/cfg.h"

#include "base/cfg_int.h"

/* ---- values ---------------------------------------------------------------------------- */

tkv_cfg_value *tkv__cfg_value_new(tkv_cfg_type type, unsigned depth, const char *origin,
                                  uint32_t line, uint32_t col)
{
    tkv_cfg_value *v = tkv_calloc(1, sizeof(*v));
    if (v == NULL)
        return NULL;
    v->type = (uint8_t)type;
    v->depth = (uint16_t)depth;
    v->origin = origin;
    v->line = line;
    v->col = col;
    return v;
}

void tkv__cfg_value_free(tkv_cfg_value *v)
{
    if (v == NULL)
        return;
    switch (v->type) {
    case TKV_CFG_STRING:
    case TKV_CFG_DATETIME:
        tkv_free(v->u.s.ptr);
        break;
    case TKV_CFG_ARRAY:
        for (size_t i = 0; i < v->u.arr.len; i++)
            tkv__cfg_value_free(v->u.arr.items[i]);
        tkv_free(v->u.arr.items);
        break;
    case TKV_CFG_TABLE:
        for (size_t i = 0; i < v->u.tbl.len; i++) {
            tkv_free(v->u.tbl.items[i].key);
            tkv__cfg_value_free(v->u.tbl.items[i].val);
        }
        tkv_free(v->u.tbl.items);
        break;
    default:
        break;
    }
    tkv_free(v);
}

tkv__cfg_entry *tkv__cfg_table_find(const tkv_cfg_value *t, const char *key, size_t len)
{
    for (size_t i = 0; i < t->u.tbl.len; i++) {
        tkv__cfg_entry *e = &t->u.tbl.items[i];
        if (e->key_len == len && memcmp(e->key, key, len) == 0)
            return e;
    }
    return NULL;
}

/* Grows the array at *@items (elements of @size bytes) to hold one more. Errors: -ENOMEM. */
static int grow(void **items, size_t len, size_t *cap, size_t size)
{
    if (len < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = tkv_realloc(*items, ncap * size);
    if (p == NULL)
        return -ENOMEM;
    *items = p;
    *cap = ncap;
    return 0;
}

/* Adds @key (taking ownership of it and @v on success only). Errors: -ENOMEM. */
int tkv__cfg_table_add(tkv_cfg_value *t, char *key, size_t len, tkv_cfg_value *v)
{
    int rc = grow((void **)&t->u.tbl.items, t->u.tbl.len, &t->u.tbl.cap, sizeof(tkv__cfg_entry));
    if (rc != 0)
        return rc;
    t->u.tbl.items[t->u.tbl.len++] = (tkv__cfg_entry){key, len, v};
    return 0;
}

/* Appends @v (taking ownership on success only). Errors: -ENOMEM. */
int tkv__cfg_array_push(tkv_cfg_value *a, tkv_cfg_value *v)
{
    int rc = grow((void **)&a->u.arr.items, a->u.arr.len, &a->u.arr.cap, sizeof(tkv_cfg_value *));
    if (rc != 0)
        return rc;
    a->u.arr.items[a->u.arr.len++] = v;
    return 0;
}

/* Returns a heap copy of @len bytes at @p with a NUL after them, or NULL. */
char *tkv__cfg_dup_nul(const char *p, size_t len)
{
    char *s = tkv_malloc(len + 1);
    if (s == NULL)
        return NULL;
    if (len > 0)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* ---- documents ------------------------------------------------------------------------- */

int tkv_cfg_new(tkv_cfg_doc **doc)
{
    *doc = NULL;
    tkv_cfg_doc *d = tkv_calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->root = tkv__cfg_value_new(TKV_CFG_TABLE, 0, "<root>", 1, 1);
    if (d->root == NULL) {
        tkv_free(d);
        return -ENOMEM;
    }
    d->root->flags = TKV__CFG_EXPLICIT;
    *doc = d;
    return 0;
}

void tkv_cfg_free(tkv_cfg_doc *doc)
{
    if (doc == NULL)
        return;
    tkv__cfg_value_free(doc->root);
    while (doc->origins != NULL) {
        tkv__cfg_origin *o = doc->origins;
        doc->origins = o->next;
        tkv_free(o);
    }
    tkv_free(doc);
}

/* Returns the document's copy of the source name @name, adding it once. NULL on -ENOMEM. */
const char *tkv__cfg_origin_intern(tkv_cfg_doc *doc, const char *name)
{
    for (tkv__cfg_origin *o = doc->origins; o != NULL; o = o->next) {
        if (strcmp(o->name, name) == 0)
            return o->name;
    }
    size_t n = strlen(name);
    tkv__cfg_origin *o = tkv_malloc(sizeof(*o) + n + 1);
    if (o == NULL)
        return NULL;
    memcpy(o->name, name, n + 1);
    o->next = doc->origins;
    doc->origins = o;
    return o->name;
}

/* ---- lookups --------------------------------------------------------------------------- */

const tkv_cfg_value *tkv_cfg_root(const tkv_cfg_doc *doc)
{
    return doc->root;
}

const tkv_cfg_value *tkv_cfg_lookup(const tkv_cfg_value *table, const char *path)
{
    const tkv_cfg_value *v;
    return tkv__cfg_lookup(table, path, &v) == 0 ? v : NULL;
}

const tkv_cfg_value *tkv_cfg_get(const tkv_cfg_doc *doc, const char *path)
{
    return tkv_cfg_lookup(doc->root, path);
}

/* Looks up @path and checks its type against @a (and @b unless 0). */
static int get_typed(const tkv_cfg_doc *doc, const char *path, tkv_cfg_type a, tkv_cfg_type b,
                     const tkv_cfg_value **out)
{
    const tkv_cfg_value *v;
    int rc = tkv__cfg_lookup(doc->root, path, &v);
    if (rc != 0)
        return rc;
    if (v->type != a && (b == 0 || v->type != b))
        return TKV_ECONFIG;
    *out = v;
    return 0;
}

int tkv_cfg_get_str(const tkv_cfg_doc *doc, const char *path, const char **s, size_t *len)
{
    const tkv_cfg_value *v;
    int rc = get_typed(doc, path, TKV_CFG_STRING, 0, &v);
    if (rc == 0) {
        *s = v->u.s.ptr;
        if (len != NULL)
            *len = v->u.s.len;
    }
    return rc;
}

int tkv_cfg_get_int(const tkv_cfg_doc *doc, const char *path, int64_t *out)
{
    const tkv_cfg_value *v;
    int rc = get_typed(doc, path, TKV_CFG_INTEGER, 0, &v);
    if (rc == 0)
        *out = v->u.i;
    return rc;
}

int tkv_cfg_get_float(const tkv_cfg_doc *doc, const char *path, double *out)
{
    const tkv_cfg_value *v;
    int rc = get_typed(doc, path, TKV_CFG_FLOAT, TKV_CFG_INTEGER, &v);
    if (rc == 0)
        *out = tkv_cfg_float(v);
    return rc;
}

int tkv_cfg_get_bool(const tkv_cfg_doc *doc, const char *path, bool *out)
{
    const tkv_cfg_value *v;
    int rc = get_typed(doc, path, TKV_CFG_BOOL, 0, &v);
    if (rc == 0)
        *out = v->u.b;
    return rc;
}

int tkv_cfg_get_array(const tkv_cfg_doc *doc, const char *path, const tkv_cfg_value **arr)
{
    return get_typed(doc, path, TKV_CFG_ARRAY, 0, arr);
}

int tkv_cfg_get_table(const tkv_cfg_doc *doc, const char *path, const tkv_cfg_value **table)
{
    return get_typed(doc, path, TKV_CFG_TABLE, 0, table);
}

/* ---- value accessors ------------------------------------------------------------------- */

tkv_cfg_type tkv_cfg_type_of(const tkv_cfg_value *v)
{
    return (tkv_cfg_type)v->type;
}

const char *tkv_cfg_type_name(tkv_cfg_type t)
{
    switch (t) {
    case TKV_CFG_STRING:
        return "string";
    case TKV_CFG_INTEGER:
        return "integer";
    case TKV_CFG_FLOAT:
        return "float";
    case TKV_CFG_BOOL:
        return "boolean";
    case TKV_CFG_DATETIME:
        return "datetime";
    case TKV_CFG_ARRAY:
        return "array";
    case TKV_CFG_TABLE:
        return "table";
    }
    return "unknown";
}

const char *tkv_cfg_str(const tkv_cfg_value *v, size_t *len)
{
    if (v->type != TKV_CFG_STRING && v->type != TKV_CFG_DATETIME)
        return NULL;
    if (len != NULL)
        *len = v->u.s.len;
    return v->u.s.ptr;
}

int64_t tkv_cfg_int(const tkv_cfg_value *v)
{
    return v->type == TKV_CFG_INTEGER ? v->u.i : 0;
}

double tkv_cfg_float(const tkv_cfg_value *v)
{
    if (v->type == TKV_CFG_FLOAT)
        return v->u.f;
    return v->type == TKV_CFG_INTEGER ? (double)v->u.i : 0.0;
}

bool tkv_cfg_bool(const tkv_cfg_value *v)
{
    return v->type == TKV_CFG_BOOL && v->u.b;
}

size_t tkv_cfg_len(const tkv_cfg_value *v)
{
    if (v->type == TKV_CFG_ARRAY)
        return v->u.arr.len;
    return v->type == TKV_CFG_TABLE ? v->u.tbl.len : 0;
}

const tkv_cfg_value *tkv_cfg_at(const tkv_cfg_value *v, size_t i)
{
    if (v->type == TKV_CFG_ARRAY)
        return i < v->u.arr.len ? v->u.arr.items[i] : NULL;
    if (v->type == TKV_CFG_TABLE)
        return i < v->u.tbl.len ? v->u.tbl.items[i].val : NULL;
    return NULL;
}

const char *tkv_cfg_key_at(const tkv_cfg_value *v, size_t i, size_t *len)
{
    if (v->type != TKV_CFG_TABLE || i >= v->u.tbl.len)
        return NULL;
    if (len != NULL)
        *len = v->u.tbl.items[i].key_len;
    return v->u.tbl.items[i].key;
}

const char *tkv_cfg_origin(const tkv_cfg_value *v, unsigned *line, unsigned *col)
{
    if (line != NULL)
        *line = v->line;
    if (col != NULL)
        *col = v->col;
    return v->origin;
}
