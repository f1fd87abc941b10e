/*
 * pd_security.c: pd-server's [security] settings applied to its servers: TLS files (reloaded
 * when they change, see security/tls.h) for gRPC and the HTTP API, the exact-name
 * allow-lists, and the audit log with the brute-force guard for refused peers
 * (security/wire.h); the key-range authorization policy (security/authz.h) read and replaced
 * through GET/POST /pd/api/v1/security/authz (pd-ctl role ...), kept in PD's etcd store where
 * tikv-servers read it.
 */
#include <stdio.h>

#include "base/log.h"
#include "http/http.h"
#include "pd/pd_int.h"
#include "security/authz.h"
#include "security/wire.h"

static void names(char src[PD_MAX_ALLOWED][PD_ALLOWED_NAME], size_t n, const char **dst)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
    dst[n] = NULL;
}

int pd__security_init(pd_server *s, char errmsg[TKV_ERRMSG_LEN])
{
    const pd_config *c = &s->cfg;
    if (c->cert_path[0] != '\0')
        s->tls = (rpc_tls){c->cacert_path, c->cert_path, c->key_path};
    names(s->cfg.cert_allowed_cn, c->n_cert_allowed_cn, s->allowed_cn);
    names(s->cfg.cert_allowed_san, c->n_cert_allowed_san, s->allowed_san);
    sec_guard_opts go;
    sec_guard_opts_init(&go);
    go.max_failures = (uint32_t)TKV_MIN(c->auth_failure_burst, UINT32_MAX);
    sec_wire_opts wo = {.component = "pd-server", .audit_path = c->audit_log, .guard = &go};
    char err[TKV_ERRMSG_LEN];
    int rc = sec_wire_new(&wo, &s->wire, err);
    if (rc != 0)
        snprintf(errmsg, TKV_ERRMSG_LEN, "open audit log: %.200s", err);
    return rc;
}

void pd__security_deinit(pd_server *s)
{
    sec_wire_free(s->wire);
    s->wire = NULL;
}

const char *pd__url_scheme(const pd_server *s)
{
    return s->tls.cert_path != NULL ? "https://" : "http://";
}

void pd__security_rpc(pd_server *s, rpc_server_opts *o)
{
    if (s->tls.cert_path != NULL) {
        o->tls = &s->tls;
        o->cert_allowed_cn = s->allowed_cn;
        o->cert_allowed_san = s->allowed_san;
    }
    if (s->wire != NULL)
        sec_wire_rpc(s->wire, o);
}

void pd__security_http(pd_server *s, http_server_opts *o)
{
    if (s->tls.cert_path != NULL) {
        o->ca_path = s->tls.ca_path;
        o->cert_path = s->tls.cert_path;
        o->key_path = s->tls.key_path;
        o->allowed_cn = s->allowed_cn;
        o->allowed_san = s->allowed_san;
    }
    if (s->wire != NULL)
        sec_wire_http(s->wire, o);
}

/* ---- the authorization policy (security/authz.h) over the HTTP API ----------------------- */

/* Returns whether @cn may replace the stored policy (see pd__authz_http). */
static bool may_change_policy(pd_server *s, const char *cn)
{
    tkv_buf cur;
    tkv_buf_init(&cur);
    bool found = false;
    sec_authz *a = NULL;
    char err[TKV_ERRMSG_LEN];
    bool ok = pd__etcd_get_value(s, tkv_slice_str(SEC_AUTHZ_KEY), &cur, &found) == 0;
    if (ok && found)
        ok = sec_authz_parse((const char *)cur.data, cur.len, &a, err) == 0;
    if (ok && a != NULL && sec_authz_has_superuser(a))
        ok = sec_authz_allows(a, cn, SEC_PERM_ADMIN, (tkv_slice){0}, (tkv_slice){0});
    sec_authz_free(a);
    tkv_buf_deinit(&cur);
    return ok;
}

void pd__authz_http(const http_request *rq, http_response *rs, void *ud)
{
    pd_server *s = ud;
    tkv_slice key = tkv_slice_str(SEC_AUTHZ_KEY);
    if (strcmp(rq->method, "GET") == 0) {
        bool found = false;
        if (pd__etcd_get_value(s, key, &rs->body, &found) != 0) {
            http_error(rs, 500, "cannot read the authorization policy");
            return;
        }
        static const char empty[] = "{\"roles\": {}, \"bindings\": {}}";
        if (!found && tkv_buf_append(&rs->body, empty, sizeof(empty) - 1) != 0) {
            http_error(rs, 500, "out of memory");
            return;
        }
        rs->status = 200;
        rs->content_type = "application/json; charset=UTF-8";
        return;
    }
    if (strcmp(rq->method, "POST") != 0) {
        http_error(rs, 405, "GET or POST");
        return;
    }
    /* Once the policy has a superuser (admin on every key), only a superuser may change it;
     * before that, any certificate the allow-lists admit may (bootstrap). */
    char err[TKV_ERRMSG_LEN];
    if (!may_change_policy(s, rq->cert_cn != NULL ? rq->cert_cn : "")) {
        http_error(rs, 403, "only a certificate name with admin on every key may change roles");
        return;
    }
    /* The whole document is replaced, after it parses as a policy. */
    sec_authz *a = NULL;
    int rc = sec_authz_parse((const char *)rq->body, rq->body_len, &a, err);
    sec_authz_free(a);
    if (rc != 0) {
        http_error(rs, 400, rc == -ENOMEM ? "out of memory" : err);
        return;
    }
    rc = pd__etcd_put_value(s, key, tkv_slice_of(rq->body, rq->body_len));
    if (rc != 0) {
        http_error(rs, 500, "cannot store the authorization policy");
        return;
    }
    char who[160];
    snprintf(who, sizeof(who), "%s cn=%s", rq->peer, rq->cert_cn != NULL ? rq->cert_cn : "");
    TKV_LOG_INFO("authorization policy replaced", TKV_LF_STR("by", who),
                 TKV_LF_U64("bytes", rq->body_len));
    sec_audit_event ev = {.type = "admin",
                          .peer = who,
                          .method = "role change",
                          .reason = "authorization policy replaced",
                          .details = NULL};
    sec_wire_event(s->wire, &ev);
    rs->status = 200;
    rs->content_type = "application/json; charset=UTF-8";
    static const char ok[] = "\"The authorization policy is updated.\"\n";
    if (tkv_buf_append(&rs->body, ok, sizeof(ok) - 1) != 0)
        http_error(rs, 500, "out of memory");
}
