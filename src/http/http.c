/*
 * http.c: libmicrohttpd-based HTTP server, with HTTPS and client-certificate checks (see
 * http.h).
 *
 * TLS identity: GnuTLS asks cert_for_handshake() for the server certificate at every
 * handshake (MHD_OPTION_HTTPS_CERT_CALLBACK); it refreshes the sec_tls files and builds a new
 * GnuTLS identity when they changed. Identities handed out stay alive until the server stops
 * (a handshake in progress may still use the previous one; rotations are rare).
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "base/log.h"
#include "security/tls.h"

/* Certificates in one chain we hand to GnuTLS at most. */
#define CHAIN_MAX 8

/* One server identity in GnuTLS form. */
typedef struct tls_ident {
    struct tls_ident *older;
    uint64_t generation;
    gnutls_pcert_st pcerts[CHAIN_MAX];
    unsigned n_pcerts;
    gnutls_privkey_t key;
} tls_ident;

struct http_server {
    struct MHD_Daemon *daemon;
    http_route *routes;
    size_t nroutes;
    void *ud;
    size_t max_body;
    uint16_t port;
    /* TLS (NULL tls: plain HTTP) */
    sec_tls *tls;
    bool mtls;
    char *trust_pem; /* the CA bundle given to libmicrohttpd (it asks for client certs) */
    pthread_mutex_t id_mu;
    tls_ident *ident; /* the newest; older ones chained behind */
    bool (*peer_gate)(const char *peer, void *ud);
    void (*on_rejected)(const http_rejection *r, void *ud);
    void (*on_served)(const http_request *rq, int status, void *ud);
    void *hook_ud;
};

/* Per-request state kept across libmicrohttpd's access-handler calls. */
typedef struct req_ctx {
    tkv_buf body;
    bool too_large;
    char cn[128]; /* the verified client certificate's common name */
} req_ctx;

int http_split_addr(const char *addr, char *host, size_t hostcap, uint16_t *port)
{
    if (addr == NULL)
        return -EINVAL;
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0')
        return -EINVAL;
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= hostcap)
        return -EINVAL;
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || p > 65535)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

void http_printf(http_response *rs, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || tkv_buf_reserve(&rs->body, (size_t)n + 1) != 0) {
        rs->status = 500;
        return;
    }
    va_start(ap, fmt);
    vsnprintf((char *)rs->body.data + rs->body.len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rs->body.len += (size_t)n;
}

void http_error(http_response *rs, int status, const char *msg)
{
    tkv_buf_reset(&rs->body);
    rs->status = status;
    rs->content_type = "application/json";
    http_printf(rs, "{\"error\":\"");
    for (const char *p = msg; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            http_printf(rs, "\\%c", c);
        else if (c < 0x20)
            http_printf(rs, "\\u%04x", c);
        else
            http_printf(rs, "%c", c);
    }
    http_printf(rs, "\"}");
    rs->status = status;
}

const char *http_request_query(const http_request *rq, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)rq->conn_internal,
                                       MHD_GET_ARGUMENT_KIND, name);
}

static void addr_string(const struct sockaddr *sa, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    if (sa == NULL)
        return;
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
    }
}

static void peer_string(struct MHD_Connection *c, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    addr_string(ci != NULL ? ci->client_addr : NULL, out, cap);
}

/* ---- TLS -------------------------------------------------------------------------------- */

static void ident_free(tls_ident *id)
{
    while (id != NULL) {
        tls_ident *older = id->older;
        for (unsigned i = 0; i < id->n_pcerts; i++)
            gnutls_pcert_deinit(&id->pcerts[i]);
        if (id->key != NULL)
            gnutls_privkey_deinit(id->key);
        tkv_free(id);
        id = older;
    }
}

/* Builds a GnuTLS identity from the current files of @srv. */
static tls_ident *ident_build(http_server *srv, uint64_t generation)
{
    char *ca = NULL, *cert = NULL, *key = NULL;
    if (sec_tls_material(srv->tls, &ca, &cert, &key) != 0)
        return NULL;
    tls_ident *id = tkv_calloc(1, sizeof(*id));
    bool ok = id != NULL && cert != NULL && key != NULL;
    if (ok) {
        id->generation = generation;
        id->n_pcerts = CHAIN_MAX;
        gnutls_datum_t c = {(unsigned char *)cert, (unsigned)strlen(cert)};
        gnutls_datum_t k = {(unsigned char *)key, (unsigned)strlen(key)};
        ok = gnutls_pcert_list_import_x509_raw(id->pcerts, &id->n_pcerts, &c, GNUTLS_X509_FMT_PEM,
                                               0) == GNUTLS_E_SUCCESS;
        if (!ok)
            id->n_pcerts = 0;
        ok = ok && gnutls_privkey_init(&id->key) == GNUTLS_E_SUCCESS &&
             gnutls_privkey_import_x509_raw(id->key, &k, GNUTLS_X509_FMT_PEM, NULL, 0) ==
                 GNUTLS_E_SUCCESS;
    }
    if (key != NULL)
        memset(key, 0, strlen(key));
    tkv_free(ca);
    tkv_free(cert);
    tkv_free(key);
    if (!ok) {
        ident_free(id);
        return NULL;
    }
    return id;
}

/* Returns the identity to present now, reloading the files when they changed. */
static tls_ident *current_ident(http_server *srv)
{
    char err[TKV_ERRMSG_LEN];
    TKV_IGNORE(sec_tls_refresh(srv->tls, err));
    uint64_t gen = sec_tls_generation(srv->tls);
    pthread_mutex_lock(&srv->id_mu);
    if (srv->ident == NULL || srv->ident->generation != gen) {
        tls_ident *id = ident_build(srv, gen);
        if (id != NULL) {
            id->older = srv->ident;
            srv->ident = id;
        } else {
            TKV_LOG_WARN("HTTPS identity could not be rebuilt; keeping the previous one");
        }
    }
    tls_ident *cur = srv->ident;
    pthread_mutex_unlock(&srv->id_mu);
    return cur;
}

/* GnuTLS asks for our certificate during each handshake. */
static int cert_for_handshake(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                              const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                              gnutls_pcert_st **pcert, unsigned int *pcert_length,
                              gnutls_privkey_t *pkey)
{
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    struct MHD_Connection *c = gnutls_session_get_ptr(session);
    const union MHD_ConnectionInfo *ci =
        c != NULL ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
    http_server *srv = ci != NULL ? ci->socket_context : NULL;
    tls_ident *id = srv != NULL ? current_ident(srv) : NULL;
    if (id == NULL)
        return -1;
    *pcert = id->pcerts;
    *pcert_length = id->n_pcerts;
    *pkey = id->key;
    return 0;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)c;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = cls;
}

static enum MHD_Result accept_peer(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addrlen;
    http_server *srv = cls;
    if (srv->peer_gate == NULL)
        return MHD_YES;
    char peer[64];
    addr_string(addr, peer, sizeof(peer));
    return srv->peer_gate(peer, srv->hook_ud) ? MHD_YES : MHD_NO;
}

/* Checks the client certificate of @c (mutual TLS); fills @cn. Returns 0 when the request may
 * go on, else the HTTP status to refuse it with (@reason set). */
static int check_client(http_server *srv, struct MHD_Connection *c, char *cn, size_t cn_cap,
                        char *reason, size_t cap)
{
    cn[0] = '\0';
    if (!srv->mtls)
        return 0;
    const union MHD_ConnectionInfo *ti =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    unsigned n = 0;
    const gnutls_datum_t *certs =
        ti != NULL ? gnutls_certificate_get_peers((gnutls_session_t)ti->tls_session, &n) : NULL;
    const uint8_t *ders[CHAIN_MAX];
    size_t lens[CHAIN_MAX];
    if (certs == NULL)
        n = 0;
    n = TKV_MIN(n, (unsigned)CHAIN_MAX);
    for (unsigned i = 0; i < n; i++) {
        ders[i] = certs[i].data;
        lens[i] = certs[i].size;
    }
    sec_tls_peer p;
    if (sec_tls_check_peer_der(srv->tls, ders, lens, n, &p) != 0)
        p.verdict = SEC_TLS_PEER_UNTRUSTED;
    snprintf(cn, cn_cap, "%s", p.cn);
    snprintf(reason, cap, "%s", p.reason);
    switch (p.verdict) {
    case SEC_TLS_PEER_OK:
        return 0;
    case SEC_TLS_PEER_NAME:
        return 403;
    case SEC_TLS_PEER_NO_CERT:
    case SEC_TLS_PEER_UNTRUSTED:
        break;
    }
    return 401;
}

static enum MHD_Result send_response(struct MHD_Connection *c, http_response *rs)
{
    size_t len;
    uint8_t *data = tkv_buf_steal(&rs->body, &len);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, data ? (void *)data : (void *)"",
                                        data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        tkv_free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type",
                            rs->content_type ? rs->content_type : "application/json");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    http_server *srv = cls;
    req_ctx *ctx = *con_cls;
    if (ctx == NULL) {
        ctx = calloc(1, sizeof(*ctx));
        if (ctx == NULL)
            return MHD_NO;
        tkv_buf_init(&ctx->body);
        *con_cls = ctx;
        char reason[160];
        int status = check_client(srv, c, ctx->cn, sizeof(ctx->cn), reason, sizeof(reason));
        if (status == 0)
            return MHD_YES;
        /* Refused before any route or body is read. */
        char peer[64], what[96];
        peer_string(c, peer, sizeof(peer));
        snprintf(what, sizeof(what), "%.16s %.64s", method, url);
        if (srv->on_rejected != NULL) {
            http_rejection r = {.peer = peer,
                                .cert_cn = ctx->cn,
                                .method = what,
                                .status = status,
                                .reason = reason};
            srv->on_rejected(&r, srv->hook_ud);
        }
        http_response rs = {.status = status, .content_type = "application/json"};
        tkv_buf_init(&rs.body);
        http_error(&rs, status, reason);
        return send_response(c, &rs);
    }
    if (*upload_size > 0) {
        if (ctx->body.len + *upload_size > srv->max_body ||
            tkv_buf_append(&ctx->body, upload_data, *upload_size) != 0)
            ctx->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }

    http_response rs = {.status = 200, .content_type = "application/json"};
    tkv_buf_init(&rs.body);
    if (ctx->too_large) {
        http_error(&rs, 413, "request body too large");
        return send_response(c, &rs);
    }
    const http_route *match = NULL;
    bool path_known = false;
    const char *tail = "";
    for (size_t i = 0; i < srv->nroutes; i++) {
        const http_route *r = &srv->routes[i];
        size_t plen = strlen(r->path);
        bool hit = r->prefix ? strncmp(url, r->path, plen) == 0 : strcmp(url, r->path) == 0;
        if (!hit)
            continue;
        path_known = true;
        if (r->method == NULL || strcmp(r->method, method) == 0) {
            match = r;
            tail = r->prefix ? url + plen : "";
            break;
        }
    }
    if (match == NULL) {
        http_error(&rs, path_known ? 405 : 404, path_known ? "method not allowed" : "not found");
        return send_response(c, &rs);
    }
    char peer[64];
    peer_string(c, peer, sizeof(peer));
    http_request rq = {
        .method = method,
        .path = url,
        .tail = tail,
        .body = ctx->body.len ? ctx->body.data : NULL,
        .body_len = ctx->body.len,
        .peer = peer,
        .cert_cn = ctx->cn,
        .conn_internal = c,
    };
    match->fn(&rq, &rs, srv->ud);
    if (srv->on_served != NULL)
        srv->on_served(&rq, rs.status, srv->hook_ud);
    return send_response(c, &rs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    req_ctx *ctx = *con_cls;
    if (ctx != NULL) {
        tkv_buf_deinit(&ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

/* Loads the TLS files of @opts into @srv (nothing for plain HTTP). */
static int tls_setup(http_server *srv, const http_server_opts *opts, char *errmsg)
{
    bool lists = (opts->allowed_cn != NULL && opts->allowed_cn[0] != NULL) ||
                 (opts->allowed_san != NULL && opts->allowed_san[0] != NULL);
    if (opts->cert_path == NULL || opts->cert_path[0] == '\0') {
        if (lists || (opts->ca_path != NULL && opts->ca_path[0] != '\0')) {
            snprintf(errmsg, TKV_ERRMSG_LEN,
                     "HTTPS: ca-path and allow-lists need cert-path "
                     "and key-path");
            return TKV_ECONFIG;
        }
        return 0;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
        MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES) {
        snprintf(errmsg, TKV_ERRMSG_LEN, "HTTPS: this libmicrohttpd has no TLS support");
        return TKV_ECONFIG;
    }
    srv->mtls = opts->ca_path != NULL && opts->ca_path[0] != '\0';
    if (lists && !srv->mtls) {
        snprintf(errmsg, TKV_ERRMSG_LEN, "HTTPS: certificate allow-lists need ca-path");
        return TKV_ECONFIG;
    }
    sec_tls_opts o = {.ca_path = opts->ca_path,
                      .cert_path = opts->cert_path,
                      .key_path = opts->key_path,
                      .allowed_cn = opts->allowed_cn,
                      .allowed_san = opts->allowed_san};
    int rc = sec_tls_new(&o, &srv->tls, errmsg);
    if (rc != 0)
        return rc;
    char *cert = NULL, *key = NULL;
    rc = sec_tls_material(srv->tls, &srv->trust_pem, &cert, &key);
    if (key != NULL)
        memset(key, 0, strlen(key));
    tkv_free(cert);
    tkv_free(key);
    if (rc != 0)
        return rc;
    srv->ident = ident_build(srv, sec_tls_generation(srv->tls));
    if (srv->ident == NULL) {
        snprintf(errmsg, TKV_ERRMSG_LEN, "HTTPS: GnuTLS cannot use %s / %s", opts->cert_path,
                 opts->key_path);
        return TKV_ECONFIG;
    }
    return 0;
}

int http_server_start(const http_server_opts *opts, http_server **out, char *errmsg)
{
    char host[256];
    uint16_t port;
    errmsg[0] = '\0';
    if (http_split_addr(opts->addr, host, sizeof(host), &port) != 0) {
        snprintf(errmsg, TKV_ERRMSG_LEN, "invalid address '%s', want host:port",
                 opts->addr ? opts->addr : "(null)");
        return -EINVAL;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(errmsg, TKV_ERRMSG_LEN, "invalid IPv4 address '%.200s'", host);
        return -EINVAL;
    }
    http_server *srv = tkv_calloc(1, sizeof(*srv));
    if (srv == NULL)
        return -ENOMEM;
    pthread_mutex_init(&srv->id_mu, NULL);
    srv->routes = tkv_calloc(opts->nroutes ? opts->nroutes : 1, sizeof(*srv->routes));
    if (srv->routes == NULL) {
        http_server_stop(srv);
        return -ENOMEM;
    }
    if (opts->nroutes)
        memcpy(srv->routes, opts->routes, opts->nroutes * sizeof(*srv->routes));
    srv->nroutes = opts->nroutes;
    srv->ud = opts->ud;
    srv->max_body = opts->max_body_bytes ? opts->max_body_bytes : 8u << 20;
    srv->peer_gate = opts->peer_gate;
    srv->on_rejected = opts->on_rejected;
    srv->on_served = opts->on_served;
    srv->hook_ud = opts->hook_ud;
    int rc = tls_setup(srv, opts, errmsg);
    if (rc != 0) {
        http_server_stop(srv);
        return rc;
    }
    unsigned threads = opts->threads ? opts->threads : 2;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO;
    if (srv->tls != NULL)
        flags |= MHD_USE_TLS;
    /* A NULL callback ends the option list early: TLS options go last. */
    gnutls_certificate_retrieve_function2 *cert_cb = cert_for_handshake;
    srv->daemon = MHD_start_daemon(
        flags, port, accept_peer, srv, on_request, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(opts->conn_timeout_s ? opts->conn_timeout_s : 30),
        MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(opts->max_connections ? opts->max_connections : 256),
        srv->tls != NULL ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, cert_cb,
        srv->trust_pem != NULL ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, srv->trust_pem,
        MHD_OPTION_END);
    if (srv->daemon == NULL) {
        snprintf(errmsg, TKV_ERRMSG_LEN, "cannot listen on %s (address in use?)", opts->addr);
        http_server_stop(srv);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : port;
    *out = srv;
    return 0;
}

uint16_t http_server_port(const http_server *srv)
{
    return srv->port;
}

bool http_server_tls(const http_server *srv)
{
    return srv->tls != NULL;
}

void http_server_stop(http_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->daemon != NULL)
        MHD_stop_daemon(srv->daemon);
    ident_free(srv->ident);
    sec_tls_free(srv->tls);
    tkv_free(srv->trust_pem);
    pthread_mutex_destroy(&srv->id_mu);
    tkv_free(srv->routes);
    tkv_free(srv);
}
