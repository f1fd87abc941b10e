/*
 * http.c: libmicrohttpd-based HTTP server (see http.h).
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

struct http_server {
    struct MHD_Daemon *daemon;
    http_route *routes;
    size_t nroutes;
    void *ud;
    size_t max_body;
    uint16_t port;
};

/* Per-request state kept across libmicrohttpd's access-handler calls. */
typedef struct req_ctx {
    tkv_buf body;
    bool too_large;
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

static void peer_string(struct MHD_Connection *c, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, cap, "?");
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
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
        return MHD_YES;
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
        .conn_internal = c,
    };
    match->fn(&rq, &rs, srv->ud);
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
    srv->routes = tkv_calloc(opts->nroutes ? opts->nroutes : 1, sizeof(*srv->routes));
    if (srv->routes == NULL) {
        tkv_free(srv);
        return -ENOMEM;
    }
    if (opts->nroutes)
        memcpy(srv->routes, opts->routes, opts->nroutes * sizeof(*srv->routes));
    srv->nroutes = opts->nroutes;
    srv->ud = opts->ud;
    srv->max_body = opts->max_body_bytes ? opts->max_body_bytes : 8u << 20;
    unsigned threads = opts->threads ? opts->threads : 2;
    srv->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO, port, NULL, NULL,
        on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
        threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(opts->conn_timeout_s ? opts->conn_timeout_s : 30), MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(opts->max_connections ? opts->max_connections : 256), MHD_OPTION_END);
    if (srv->daemon == NULL) {
        snprintf(errmsg, TKV_ERRMSG_LEN, "cannot listen on %s (address in use?)", opts->addr);
        tkv_free(srv->routes);
        tkv_free(srv);
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

void http_server_stop(http_server *srv)
{
    if (srv == NULL)
        return;
    MHD_stop_daemon(srv->daemon);
    tkv_free(srv->routes);
    tkv_free(srv);
}
