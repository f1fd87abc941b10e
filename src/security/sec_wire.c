/*
 * sec_wire.c: audit log and brute-force guard connected to the gRPC and HTTP servers' peer
 * hooks (see wire.h).
 */
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "security/wire.h"

struct sec_wire {
    char *component;
    char **replication_cn; /* NULL-terminated, or NULL: no restriction */
    sec_audit *audit;      /* NULL when the audit log is off */
    sec_guard *guard;
};

void sec_wire_event(sec_wire *w, const sec_audit_event *ev)
{
    if (w == NULL || w->audit == NULL)
        return;
    int rc = sec_audit_log(w->audit, ev);
    if (rc != 0)
        TKV_LOG_ERROR("audit record not written", TKV_LF_STR("event", ev->type),
                      TKV_LF_ERR("err", rc));
}

bool sec_wire_auditing(const sec_wire *w)
{
    return w != NULL && w->audit != NULL;
}

static void on_ban(const char *addr, uint64_t ban_ms, void *ud)
{
    sec_wire *w = ud;
    char details[64];
    snprintf(details, sizeof(details), "banned for %llu ms", (unsigned long long)ban_ms);
    TKV_LOG_WARN("peer address banned after repeated authentication failures",
                 TKV_LF_STR("addr", addr), TKV_LF_U64("ban_ms", ban_ms));
    sec_audit_event ev = {.type = "peer_banned",
                          .peer = addr,
                          .reason = "repeated authentication failures",
                          .details = details};
    sec_wire_event(w, &ev);
}

/* Records one refused peer: audit record, guard failure, warning. */
static void rejected(sec_wire *w, const char *peer, const char *cn, const char *method,
                     const char *reason)
{
    char details[160];
    snprintf(details, sizeof(details), "cn=%s", cn != NULL ? cn : "");
    TKV_LOG_WARN("peer refused", TKV_LF_STR("peer", peer), TKV_LF_STR("cn", cn),
                 TKV_LF_STR("method", method), TKV_LF_STR("reason", reason));
    sec_audit_event ev = {.type = "peer_rejected",
                          .peer = peer,
                          .method = method,
                          .reason = reason,
                          .details = details};
    sec_wire_event(w, &ev);
    TKV_IGNORE(sec_guard_failure(w->guard, peer));
}

void sec_wire_peer_rejected(sec_wire *w, const char *peer, const char *cn, const char *method,
                            const char *reason)
{
    if (w == NULL)
        return;
    rejected(w, peer != NULL ? peer : "", cn, method != NULL ? method : "",
             reason != NULL ? reason : "");
}

/* HTTP peers are "ip:port" or "[ip6]:port"; the guard keys on gRPC's "ipv4:"/"ipv6:" form so
 * that one host counts once whichever server it failed on. */
static void grpc_peer_form(const char *peer, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", peer[0] == '[' ? "ipv6:" : "ipv4:", peer);
}

static bool rpc_gate(const char *peer, void *ud)
{
    sec_wire *w = ud;
    return sec_guard_allowed(w->guard, peer);
}

/* Calls refused and failed TLS handshakes count as failures for the guard; connections the
 * gate closed at accept (banned address, connection limit) are only audited (the gate
 * reports each address once a minute) and never extend or start a ban. */
static void rpc_rejected(const rpc_peer_rejection *r, void *ud)
{
    sec_wire *w = ud;
    if (r->kind != RPC_REJECT_CONNECTION) {
        rejected(w, r->peer, r->cert_cn,
                 r->kind == RPC_REJECT_HANDSHAKE ? "(handshake)" : r->method, r->reason);
        return;
    }
    TKV_LOG_WARN("connection refused", TKV_LF_STR("peer", r->peer),
                 TKV_LF_STR("reason", r->reason));
    sec_audit_event ev = {.type = "peer_rejected",
                          .peer = r->peer,
                          .method = "(connection)",
                          .reason = r->reason,
                          .details = "closed at accept; reported once a minute per address"};
    sec_wire_event(w, &ev);
}

static bool http_gate(const char *peer, void *ud)
{
    sec_wire *w = ud;
    char p[128];
    grpc_peer_form(peer, p, sizeof(p));
    return sec_guard_allowed(w->guard, p);
}

static void http_rejected(const http_rejection *r, void *ud)
{
    char p[128];
    grpc_peer_form(r->peer, p, sizeof(p));
    rejected(ud, p, r->cert_cn, r->method, r->reason);
}

/* Every change made through the HTTP API (a method other than GET that succeeded) is an
 * admin action: config changes, operators, store states, role changes. */
static void http_served(const http_request *rq, int status, void *ud)
{
    if (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0 || status >= 400)
        return;
    char who[160], what[300], details[64];
    snprintf(who, sizeof(who), "%s cn=%s", rq->peer, rq->cert_cn != NULL ? rq->cert_cn : "");
    snprintf(what, sizeof(what), "%s %s", rq->method, rq->path);
    snprintf(details, sizeof(details), "status %d, %zu bytes of body", status, rq->body_len);
    sec_audit_event ev = {.type = "admin",
                          .peer = who,
                          .method = what,
                          .reason = "HTTP API change",
                          .details = details};
    sec_wire_event(ud, &ev);
}

static bool is_replication(const char *method)
{
    static const char *const methods[] = {"/tikvpb.Tikv/Raft", "/tikvpb.Tikv/BatchRaft",
                                          "/tikvpb.Tikv/Snapshot"};
    for (size_t i = 0; i < TKV_ARRAY_LEN(methods); i++)
        if (strcmp(method, methods[i]) == 0)
            return true;
    return false;
}

static bool rpc_method_gate(const char *method, const char *cn, char *reason, size_t cap, void *ud)
{
    sec_wire *w = ud;
    if (w->replication_cn == NULL || !is_replication(method))
        return true;
    for (char **n = w->replication_cn; *n != NULL; n++)
        if (strcmp(*n, cn) == 0)
            return true;
    snprintf(reason, cap, "certificate name may not send replication messages");
    return false;
}

void sec_wire_rpc(sec_wire *w, rpc_server_opts *o)
{
    o->peer_gate = rpc_gate;
    o->on_peer_rejected = rpc_rejected;
    o->method_gate = rpc_method_gate;
    o->hook_ud = w;
}

void sec_wire_http(sec_wire *w, http_server_opts *o)
{
    o->peer_gate = http_gate;
    o->on_rejected = http_rejected;
    o->on_served = http_served;
    o->hook_ud = w;
}

static void free_names(char **names)
{
    for (char **n = names; n != NULL && *n != NULL; n++)
        tkv_free(*n);
    tkv_free(names);
}

int sec_wire_new(const sec_wire_opts *o, sec_wire **out, char err[TKV_ERRMSG_LEN])
{
    if (o == NULL || out == NULL || o->component == NULL)
        return -EINVAL;
    sec_wire *w = tkv_calloc(1, sizeof(*w));
    if (w == NULL || (w->component = tkv_strdup(o->component)) == NULL) {
        tkv_free(w);
        snprintf(err, TKV_ERRMSG_LEN, "out of memory");
        return -ENOMEM;
    }
    sec_guard_opts go;
    if (o->guard != NULL)
        go = *o->guard;
    else
        sec_guard_opts_init(&go);
    go.on_ban = on_ban;
    go.hook_ud = w;
    int rc = 0;
    if (o->replication_cn != NULL && o->replication_cn[0] != NULL) {
        size_t n = 0;
        while (o->replication_cn[n] != NULL)
            n++;
        w->replication_cn = tkv_calloc(n + 1, sizeof(char *));
        rc = w->replication_cn == NULL ? -ENOMEM : 0;
        for (size_t i = 0; rc == 0 && i < n; i++)
            if ((w->replication_cn[i] = tkv_strdup(o->replication_cn[i])) == NULL)
                rc = -ENOMEM;
        if (rc != 0)
            snprintf(err, TKV_ERRMSG_LEN, "out of memory");
    }
    if (rc == 0)
        rc = sec_guard_new(&go, &w->guard);
    if (rc != 0)
        snprintf(err, TKV_ERRMSG_LEN, "brute-force guard: %s", tkv_strerror(rc));
    if (rc == 0 && o->audit_path != NULL && o->audit_path[0] != '\0') {
        sec_audit_opts ao;
        sec_audit_opts_init(&ao);
        ao.path = o->audit_path;
        rc = sec_audit_open(&ao, &w->audit, err);
    }
    if (rc != 0) {
        free_names(w->replication_cn);
        sec_guard_free(w->guard);
        tkv_free(w->component);
        tkv_free(w);
        return rc;
    }
    sec_audit_event ev = {.type = "start", .peer = w->component, .reason = "process started"};
    sec_wire_event(w, &ev);
    *out = w;
    return 0;
}

void sec_wire_free(sec_wire *w)
{
    if (w == NULL)
        return;
    sec_audit_event ev = {.type = "stop", .peer = w->component, .reason = "process stopped"};
    sec_wire_event(w, &ev);
    sec_audit_close(w->audit);
    sec_guard_free(w->guard);
    free_names(w->replication_cn);
    tkv_free(w->component);
    tkv_free(w);
}
