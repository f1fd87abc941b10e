/*
 * authz.h: authorization by key range (etcd's users and roles are the model; TiKV has none).
 *
 * A policy is one JSON document, kept in PD (etcd key SEC_AUTHZ_KEY) and edited with
 * `pd-ctl role ...`:
 *   {"roles":    {"ROLE": [{"perm": "read"|"write"|"admin", "start": "a", "end": "m"}, ...]},
 *    "bindings": {"CERT-NAME": ["ROLE", ...]}}
 * A permission covers the keys in [start, end); an empty end means no upper bound, an empty
 * start the lowest key. "admin" on a range also grants read and write there; read and write
 * are independent. A certificate name (the client certificate's common name) has the union
 * of its roles' grants; a name without a binding has none. Keys are compared as raw bytes
 * (the strings' UTF-8 bytes; "\u0000"-style escapes reach any byte).
 *
 * Owns: the parsed policy (sec_authz), immutable after parsing. Threads: a policy may be read
 * by any number of threads at once. Errors: sec_authz_parse returns TKV_ECONFIG (the
 * document's problem in @err) or -ENOMEM.
 * Dependencies: base, jansson.
 */
#ifndef TKV_SEC_AUTHZ_H
#define TKV_SEC_AUTHZ_H

#include "base/base.h"

/* The etcd key (in PD) that holds the policy document. */
#define SEC_AUTHZ_KEY "/tikv-c/security/authz"

typedef enum sec_perm {
    SEC_PERM_READ = 1,
    SEC_PERM_WRITE = 2,
    SEC_PERM_ADMIN = 4,
} sec_perm;

typedef struct sec_authz sec_authz;

/* Parses and validates the document @doc (@len bytes) into a new policy. An empty document
 * (len 0) is the empty policy (no grants). Errors: TKV_ECONFIG with @err, -ENOMEM. */
TKV_MUST_USE int sec_authz_parse(const char *doc, size_t len, sec_authz **out,
                                 char err[TKV_ERRMSG_LEN]);

/* Frees @a; NULL is a no-op. */
void sec_authz_free(sec_authz *a);

/* Returns true when @name's roles grant @perm on every key of [@start, @end) (@end empty:
 * no upper bound). A single key k is the range [k, k+"\0"). */
bool sec_authz_allows(const sec_authz *a, const char *name, sec_perm perm, tkv_slice start,
                      tkv_slice end);

/* Returns true when some bound name has admin on every key (the policy has a superuser:
 * only such names may change it). */
bool sec_authz_has_superuser(const sec_authz *a);

/* Returns "read", "write" or "admin". */
const char *sec_perm_name(sec_perm p);

#endif /* TKV_SEC_AUTHZ_H */
