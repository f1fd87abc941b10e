/*
 * http.h: a small HTTP/1.1 server for status, metrics and JSON admin APIs.
 *
 * Owns: a libmicrohttpd daemon with its own thread pool, and a route table. Used by
 * tikv-server's status port (/metrics, /status, /config) and pd-server's HTTP API.
 * HTTPS (optional): libmicrohttpd's own TLS (GnuTLS; Debian's build has MHD_FEATURE_TLS).
 * The certificate and key are handed to GnuTLS per handshake from a reloadable identity
 * (security/tls.h), so rotated files are used by new connections without a restart. With a
 * CA, mutual TLS is required: the handshake asks for a client certificate, and every request
 * is refused (401 without a certificate or with one the CA did not sign, 403 when its name is
 * not in the allow-lists) unless it verifies, before any route runs. Refusals go to the
 * on_rejected hook (audit log, brute-force guard); the peer gate refuses banned addresses at
 * accept time.
 * Threads: handlers run on the daemon's pool threads, possibly several at once; they must be
 * thread-safe and must not block for long (no raft proposals from here: answer from state
 * that is already in memory, or hand work over and wait with a bound).
 * Errors: http_server_start returns -errno or TKV_ECONFIG with a message in @errmsg.
 * Ownership: a request and everything it points to are borrowed for the handler call; the
 * handler fills the response, whose body buffer the server releases.
 * Dependencies: base, libmicrohttpd, GnuTLS (for the TLS session), security (tls.h).
 *
 * Usage:
 *     static void metrics(const http_request *rq, http_response *rs, void *ud) {
 *         rs->content_type = "text/plain; version=0.0.4";
 *         if (tkv_metrics_render(&rs->body) != 0) rs->status = 500;
 *     }
 *     http_route routes[] = {{"GET", "/metrics", false, metrics}};
 *     http_server_opts o = {.addr = "127.0.0.1:0", .routes = routes, .nroutes = 1};
 *     http_server *srv; char err[TKV_ERRMSG_LEN];
 *     if (http_server_start(&o, &srv, err) == 0) { ... http_server_stop(srv); }
 */
#ifndef TKV_HTTP_H
#define TKV_HTTP_H

#include "base/base.h"

typedef struct http_server http_server;

/* A request as the handler sees it. All pointers are borrowed for the call. */
typedef struct http_request {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* decoded path without the query, e.g. "/pd/api/v1/store/1" */
    const char *tail;    /* for prefix routes: the part of path after the route's prefix */
    const uint8_t *body; /* request body (NULL when empty) */
    size_t body_len;     /* body length */
    const char *peer;    /* client address "ip:port" */
    const char *cert_cn; /* verified client certificate's common name ("" without mTLS) */
    void *conn_internal; /* used by http_request_query(); do not touch */
} http_request;

/* A response the handler fills. status defaults to 200 and content_type to
 * "application/json"; body starts empty. */
typedef struct http_response {
    int status;
    const char *content_type; /* static string */
    tkv_buf body;
} http_response;

typedef void (*http_handler)(const http_request *rq, http_response *rs, void *ud);

/* A route: exact path, or prefix when @prefix is true (the rest lands in request.tail).
 * @method NULL matches every method. The first matching route wins. */
typedef struct http_route {
    const char *method;
    const char *path;
    bool prefix;
    http_handler fn;
} http_route;

/* A request refused for its peer (http_server_opts.on_rejected). Strings are borrowed for
 * the hook's duration. */
typedef struct http_rejection {
    const char *peer;    /* "127.0.0.1:5555" */
    const char *cert_cn; /* the client certificate's common name, "" when none */
    const char *method;  /* "GET /metrics" */
    int status;          /* 401 or 403 */
    const char *reason;
} http_rejection;

typedef struct http_server_opts {
    const char *addr;         /* "host:port"; port 0 picks a free port */
    const http_route *routes; /* copied at start */
    size_t nroutes;
    void *ud;                 /* passed to every handler */
    unsigned threads;         /* pool size; 0 means 2 */
    size_t max_body_bytes;    /* larger bodies get 413; 0 means 8 MiB */
    unsigned conn_timeout_s;  /* idle connection timeout; 0 means 30 */
    unsigned max_connections; /* 0 means 256 */
    /* HTTPS: PEM files (all three for mutual TLS; cert and key alone for server-only TLS);
     * NULL cert_path means plain HTTP. */
    const char *ca_path;
    const char *cert_path;
    const char *key_path;
    /* Exact-name allow-lists for client certificates (as rpc_server_opts), NULL-terminated,
     * copied; NULL admits any certificate the CA signed. Need ca_path. */
    const char *const *allowed_cn;
    const char *const *allowed_san;
    /* Optional hooks (run on pool threads, must not block): peer_gate is asked at accept
     * time with "ip:port" (false closes the connection); on_rejected hears every refused
     * request. */
    bool (*peer_gate)(const char *peer, void *ud);
    void (*on_rejected)(const http_rejection *r, void *ud);
    /* Optional: told about every request a route answered, with its status (after the
     * handler, before the response goes out; for audit records of changes). */
    void (*on_served)(const http_request *rq, int status, void *ud);
    void *hook_ud;
} http_server_opts;

/* Starts serving. Unknown paths answer 404 with a JSON error, a known path with another
 * method 405. Errors: -EINVAL (bad address), -EADDRINUSE, -ENOMEM, TKV_ECONFIG (TLS files,
 * allow-lists without a CA, or no TLS support in libmicrohttpd); @errmsg (TKV_ERRMSG_LEN
 * bytes) says why. */
TKV_MUST_USE int http_server_start(const http_server_opts *opts, http_server **out, char *errmsg);
/* Returns the port the server listens on. */
uint16_t http_server_port(const http_server *srv);
/* Stops accepting, waits for handlers in progress, frees the server. NULL is a no-op. */
void http_server_stop(http_server *srv);

/* Returns true when the server speaks HTTPS. */
bool http_server_tls(const http_server *srv);

/* Returns the value of query argument @name (decoded), or NULL. Lifetime: the request. */
const char *http_request_query(const http_request *rq, const char *name);

/* Appends printf-formatted text to the response body; on -ENOMEM sets status 500. */
TKV_PRINTF(2, 3) void http_printf(http_response *rs, const char *fmt, ...);
/* Sets @status and a JSON body {"error": msg} (msg escaped). */
void http_error(http_response *rs, int status, const char *msg);

/* Parses "host:port" into @host (NUL-terminated, @hostcap bytes) and @port.
 * Errors: -EINVAL. Accepts "[v6]:port". */
TKV_MUST_USE int http_split_addr(const char *addr, char *host, size_t hostcap, uint16_t *port);

#endif /* TKV_HTTP_H */
