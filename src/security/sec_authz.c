/*
 * sec_authz.c: parsing and checking the key-range authorization policy (see authz.h).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "security/authz.h"

typedef struct grant {
    int perms; /* SEC_PERM_* bits (admin implies read and write) */
    tkv_buf start, end;
} grant;

typedef struct binding {
    char *name;
    grant *grants; /* the union of the bound roles' grants */
    size_t n;
} binding;

struct sec_authz {
    binding *b;
    size_t n;
};

const char *sec_perm_name(sec_perm p)
{
    return p == SEC_PERM_READ ? "read" : p == SEC_PERM_WRITE ? "write" : "admin";
}

void sec_authz_free(sec_authz *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        for (size_t j = 0; j < a->b[i].n; j++) {
            tkv_buf_deinit(&a->b[i].grants[j].start);
            tkv_buf_deinit(&a->b[i].grants[j].end);
        }
        tkv_free(a->b[i].grants);
        tkv_free(a->b[i].name);
    }
    tkv_free(a->b);
    tkv_free(a);
}

static TKV_PRINTF(2, 3) int fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, TKV_ERRMSG_LEN, fmt, ap);
    va_end(ap);
    return TKV_ECONFIG;
}

static int parse_perm(const char *s, int *out)
{
    if (strcmp(s, "read") == 0)
        *out = SEC_PERM_READ;
    else if (strcmp(s, "write") == 0)
        *out = SEC_PERM_WRITE;
    else if (strcmp(s, "admin") == 0)
        *out = SEC_PERM_ADMIN | SEC_PERM_READ | SEC_PERM_WRITE;
    else
        return TKV_ECONFIG;
    return 0;
}

/* Appends the grants of role @role (a JSON array) to @b. */
static int add_role(binding *b, const char *role, const json_t *grants, char *err)
{
    if (!json_is_array(grants))
        return fail(err, "role %.100s: expected a list of grants", role);
    size_t n = json_array_size(grants);
    grant *g = tkv_realloc(b->grants, (b->n + n) * sizeof(*g));
    if (g == NULL && b->n + n > 0)
        return -ENOMEM;
    b->grants = g;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(grants, i);
        const char *perm = json_string_value(json_object_get(e, "perm"));
        const json_t *st = json_object_get(e, "start"), *en = json_object_get(e, "end");
        grant *x = &b->grants[b->n];
        tkv_buf_init(&x->start);
        tkv_buf_init(&x->end);
        b->n++;
        if (perm == NULL || parse_perm(perm, &x->perms) != 0)
            return fail(err, "role %.100s: perm must be read, write or admin", role);
        if ((st != NULL && !json_is_string(st)) || (en != NULL && !json_is_string(en)))
            return fail(err, "role %.100s: start and end must be strings", role);
        if (st != NULL &&
            tkv_buf_append(&x->start, json_string_value(st), json_string_length(st)) != 0)
            return -ENOMEM;
        if (en != NULL &&
            tkv_buf_append(&x->end, json_string_value(en), json_string_length(en)) != 0)
            return -ENOMEM;
        if (x->end.len > 0 && tkv_slice_cmp(tkv_buf_slice(&x->start), tkv_buf_slice(&x->end)) > 0)
            return fail(err, "role %.100s: start is after end", role);
    }
    return 0;
}

static int parse_doc(const json_t *root, sec_authz *a, char *err)
{
    const json_t *roles = json_object_get(root, "roles");
    const json_t *bindings = json_object_get(root, "bindings");
    if (!json_is_object(root) || (roles != NULL && !json_is_object(roles)) ||
        (bindings != NULL && !json_is_object(bindings)))
        return fail(err, "expected {\"roles\": {...}, \"bindings\": {...}}");
    size_t n = bindings != NULL ? json_object_size(bindings) : 0;
    a->b = tkv_calloc(n + 1, sizeof(*a->b));
    if (a->b == NULL)
        return -ENOMEM;
    const char *name;
    const json_t *list;
    json_object_foreach((json_t *)bindings, name, list)
    {
        binding *b = &a->b[a->n++];
        if ((b->name = tkv_strdup(name)) == NULL)
            return -ENOMEM;
        if (!json_is_array(list))
            return fail(err, "binding %.100s: expected a list of role names", name);
        for (size_t i = 0; i < json_array_size(list); i++) {
            const char *role = json_string_value(json_array_get(list, i));
            const json_t *grants = role != NULL ? json_object_get(roles, role) : NULL;
            if (grants == NULL)
                return fail(err, "binding %.100s: unknown role", name);
            int rc = add_role(b, role, grants, err);
            if (rc != 0)
                return rc;
        }
    }
    /* Roles nobody is bound to must still be well formed. */
    const json_t *grants;
    json_object_foreach((json_t *)roles, name, grants)
    {
        binding scratch = {0};
        int rc = add_role(&scratch, name, grants, err);
        for (size_t j = 0; j < scratch.n; j++) {
            tkv_buf_deinit(&scratch.grants[j].start);
            tkv_buf_deinit(&scratch.grants[j].end);
        }
        tkv_free(scratch.grants);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int sec_authz_parse(const char *doc, size_t len, sec_authz **out, char err[TKV_ERRMSG_LEN])
{
    sec_authz *a = tkv_calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    if (len == 0) {
        *out = a;
        return 0;
    }
    json_error_t je;
    json_t *root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &je);
    int rc;
    if (root == NULL) {
        snprintf(err, TKV_ERRMSG_LEN, "policy is not JSON: %.150s", je.text);
        rc = TKV_ECONFIG;
    } else {
        rc = parse_doc(root, a, err);
    }
    json_decref(root);
    if (rc != 0) {
        sec_authz_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

/* Returns true when @x begins at or before @cur and reaches past it. */
static bool covers(const grant *x, tkv_slice cur)
{
    return tkv_slice_cmp(tkv_buf_slice(&x->start), cur) <= 0 &&
           (x->end.len == 0 || tkv_slice_cmp(tkv_buf_slice(&x->end), cur) > 0);
}

bool sec_authz_allows(const sec_authz *a, const char *name, sec_perm perm, tkv_slice start,
                      tkv_slice end)
{
    if (a == NULL || name == NULL)
        return false;
    const binding *b = NULL;
    for (size_t i = 0; i < a->n && b == NULL; i++)
        if (strcmp(a->b[i].name, name) == 0)
            b = &a->b[i];
    if (b == NULL)
        return false;
    /* Walk from start: each step jumps to the farthest end of a grant covering the current
     * key; the range is covered when the walk passes @end (or an unbounded grant is met). */
    tkv_slice cur = start;
    for (size_t steps = 0; steps <= b->n; steps++) {
        const grant *best = NULL;
        for (size_t i = 0; i < b->n; i++) {
            const grant *x = &b->grants[i];
            if ((x->perms & (int)perm) == 0 || !covers(x, cur))
                continue;
            if (x->end.len == 0)
                return true;
            if (best == NULL ||
                tkv_slice_cmp(tkv_buf_slice(&x->end), tkv_buf_slice(&best->end)) > 0)
                best = x;
        }
        if (best == NULL)
            return false;
        cur = tkv_buf_slice(&best->end);
        if (end.len > 0 && tkv_slice_cmp(cur, end) >= 0)
            return true;
    }
    return false;
}

bool sec_authz_has_superuser(const sec_authz *a)
{
    for (size_t i = 0; a != NULL && i < a->n; i++)
        if (sec_authz_allows(a, a->b[i].name, SEC_PERM_ADMIN, (tkv_slice){0}, (tkv_slice){0}))
            return true;
    return false;
}
