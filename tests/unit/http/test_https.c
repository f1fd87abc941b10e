/*
 * test_https.c: the HTTP server over TLS: mutual TLS with exact certificate names, refusals
 * reported to the hook, the accept-time peer gate, certificates rotated on disk without a
 * restart, and configuration errors. The client is libcurl (OpenSSL); certificates are made
 * with the openssl CLI.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/http.h"
#include "testutil/test_pki.h"

typedef struct env {
    char dir[64];
    char live[96];
    pthread_mutex_t mu;
    int rejected;
    int last_status;
    char last_cn[128];
    char last_method[128];
    bool gate_open;
    int served;            /* requests a route answered (on_served) */
    char served_what[160]; /* "METHOD /path STATUS cn" of the last one */
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    snprintf(e->dir, sizeof(e->dir), "/tmp/tkv-https-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->live, sizeof(e->live), "%s/live", e->dir);
    const char *san = "subjectAltName=IP:127.0.0.1,DNS:localhost";
    const char *client = "extendedKeyUsage=clientAuth";
    tpki_ca(e->dir, "ca", "test CA");
    tpki_ca(e->dir, "ca2", "second CA");
    tpki_cert(e->dir, "ca", "server", "server", san);
    tpki_cert(e->dir, "ca2", "server2", "server", san);
    tpki_cert(e->dir, "ca", "client", "tikv-client", client);
    tpki_cert(e->dir, "ca", "evil", "evil-tikv-client", client);
    tpki_cert(e->dir, "ca2", "foreign", "tikv-client", client);
    tpki_live(e->dir, e->live, "ca", "server");
    assert_int_equal(pthread_mutex_init(&e->mu, NULL), 0);
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), 0);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    tpki_run(cmd);
    pthread_mutex_destroy(&e->mu);
    curl_global_cleanup();
    free(e);
    return 0;
}

static void on_rejected(const http_rejection *r, void *ud)
{
    env *e = ud;
    pthread_mutex_lock(&e->mu);
    e->rejected++;
    e->last_status = r->status;
    snprintf(e->last_cn, sizeof(e->last_cn), "%s", r->cert_cn);
    snprintf(e->last_method, sizeof(e->last_method), "%s", r->method);
    pthread_mutex_unlock(&e->mu);
}

static void on_served(const http_request *rq, int status, void *ud)
{
    env *e = ud;
    pthread_mutex_lock(&e->mu);
    e->served++;
    snprintf(e->served_what, sizeof(e->served_what), "%s %s %d %s", rq->method, rq->path, status,
             rq->cert_cn);
    pthread_mutex_unlock(&e->mu);
}

static bool gate(const char *peer, void *ud)
{
    env *e = ud;
    (void)peer;
    pthread_mutex_lock(&e->mu);
    bool open = e->gate_open;
    pthread_mutex_unlock(&e->mu);
    return open;
}

static void h_who(const http_request *rq, http_response *rs, void *ud)
{
    (void)ud;
    rs->content_type = "text/plain";
    http_printf(rs, "hello %s", rq->cert_cn);
}

static http_server *start(env *e, const char *const *allowed)
{
    static const http_route routes[] = {{"GET", "/who", false, h_who}};
    char ca[128], cert[128], key[128];
    snprintf(ca, sizeof(ca), "%s/ca.pem", e->live);
    snprintf(cert, sizeof(cert), "%s/server.pem", e->live);
    snprintf(key, sizeof(key), "%s/server.key", e->live);
    http_server_opts o = {.addr = "127.0.0.1:0",
                          .routes = routes,
                          .nroutes = 1,
                          .ca_path = ca,
                          .cert_path = cert,
                          .key_path = key,
                          .allowed_cn = allowed,
                          .peer_gate = gate,
                          .on_rejected = on_rejected,
                          .on_served = on_served,
                          .hook_ud = e};
    http_server *srv;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(http_server_start(&o, &srv, err), 0);
    assert_true(http_server_tls(srv));
    return srv;
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    tkv_buf *b = ud;
    assert_int_equal(tkv_buf_append(b, p, size * n), 0);
    return size * n;
}

/* GETs /who over HTTPS trusting <@ca>.pem and presenting <@cert>.pem (NULL: none); with
 * @plain, over plain HTTP. Returns the HTTP status, or -1 when no response came (TLS or
 * connection failure). @body receives the body. */
static long fetch(const env *e, uint16_t port, const char *ca, const char *cert, bool plain,
                  char *body, size_t cap)
{
    char url[64], cap_path[128], cert_path[128], key_path[128];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%u/who", plain ? "http" : "https", port);
    snprintf(cap_path, sizeof(cap_path), "%s/%s.pem", e->dir, ca);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    tkv_buf b;
    tkv_buf_init(&b);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, cap_path);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (cert != NULL) {
        snprintf(cert_path, sizeof(cert_path), "%s/%s.pem", e->dir, cert);
        snprintf(key_path, sizeof(key_path), "%s/%s.key", e->dir, cert);
        curl_easy_setopt(c, CURLOPT_SSLCERT, cert_path);
        curl_easy_setopt(c, CURLOPT_SSLKEY, key_path);
    }
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (body != NULL)
        snprintf(body, cap, "%.*s", (int)b.len, b.data != NULL ? (const char *)b.data : "");
    tkv_buf_deinit(&b);
    return status;
}

static int rejected(env *e)
{
    pthread_mutex_lock(&e->mu);
    int n = e->rejected;
    pthread_mutex_unlock(&e->mu);
    return n;
}

static void test_mutual_tls_admits_exact_names_and_reports_refusals(void **state)
{
    env *e = *state;
    e->gate_open = true;
    const char *allowed[] = {"tikv-client", NULL};
    http_server *srv = start(e, allowed);
    uint16_t port = http_server_port(srv);
    char body[256];
    assert_int_equal(fetch(e, port, "ca", "client", false, body, sizeof(body)), 200);
    assert_string_equal(body, "hello tikv-client");
    assert_int_equal(rejected(e), 0);
    /* on_served hears what a route answered, with the caller's name. */
    pthread_mutex_lock(&e->mu);
    assert_int_equal(e->served, 1);
    assert_string_equal(e->served_what, "GET /who 200 tikv-client");
    pthread_mutex_unlock(&e->mu);

    /* A superstring of an allowed name. */
    assert_int_equal(fetch(e, port, "ca", "evil", false, body, sizeof(body)), 403);
    assert_non_null(strstr(body, "not allowed"));
    assert_int_equal(rejected(e), 1);
    assert_int_equal(e->last_status, 403);
    assert_string_equal(e->last_cn, "evil-tikv-client");
    assert_string_equal(e->last_method, "GET /who");
    /* No certificate, and a certificate from another CA with an allowed name. */
    assert_int_equal(fetch(e, port, "ca", NULL, false, body, sizeof(body)), 401);
    assert_int_equal(rejected(e), 2);
    assert_int_equal(fetch(e, port, "ca", "foreign", false, body, sizeof(body)), 401);
    assert_int_equal(rejected(e), 3);
    /* Refused requests never reach a route. */
    pthread_mutex_lock(&e->mu);
    assert_int_equal(e->served, 1);
    pthread_mutex_unlock(&e->mu);
    assert_string_equal(e->last_cn, "tikv-client");
    assert_non_null(strstr(body, "not trusted"));
    /* Plain HTTP gets no answer from a TLS port. */
    assert_int_equal(fetch(e, port, "ca", "client", true, body, sizeof(body)), -1);

    /* A closed gate refuses connections before TLS. */
    pthread_mutex_lock(&e->mu);
    e->gate_open = false;
    pthread_mutex_unlock(&e->mu);
    assert_int_equal(fetch(e, port, "ca", "client", false, body, sizeof(body)), -1);
    pthread_mutex_lock(&e->mu);
    e->gate_open = true;
    pthread_mutex_unlock(&e->mu);
    assert_int_equal(fetch(e, port, "ca", "client", false, body, sizeof(body)), 200);
    http_server_stop(srv);
}

static void test_rotated_server_certificate_is_served_without_restart(void **state)
{
    env *e = *state;
    e->gate_open = true;
    http_server *srv = start(e, NULL);
    uint16_t port = http_server_port(srv);
    char body[256];
    assert_int_equal(fetch(e, port, "ca", "client", false, body, sizeof(body)), 200);
    assert_int_equal(fetch(e, port, "ca2", "foreign", false, body, sizeof(body)), -1);
    tpki_replace(e->dir, "server2.pem", e->live, "server.pem");
    tpki_replace(e->dir, "server2.key", e->live, "server.key");
    tpki_replace(e->dir, "ca2.pem", e->live, "ca.pem");
    assert_int_equal(fetch(e, port, "ca2", "foreign", false, body, sizeof(body)), 200);
    assert_string_equal(body, "hello tikv-client");
    assert_int_equal(fetch(e, port, "ca", "client", false, body, sizeof(body)), -1);
    /* Back, so later tests start from the first CA. */
    tpki_replace(e->dir, "server.pem", e->live, "server.pem");
    tpki_replace(e->dir, "server.key", e->live, "server.key");
    tpki_replace(e->dir, "ca.pem", e->live, "ca.pem");
    assert_int_equal(fetch(e, port, "ca", "client", false, body, sizeof(body)), 200);
    http_server_stop(srv);
}

static void test_tls_configuration_errors_are_reported(void **state)
{
    env *e = *state;
    static const http_route routes[] = {{"GET", "/who", false, h_who}};
    char ca[128], cert[128], key[128];
    snprintf(ca, sizeof(ca), "%s/ca.pem", e->dir);
    snprintf(cert, sizeof(cert), "%s/server.pem", e->dir);
    snprintf(key, sizeof(key), "%s/evil.key", e->dir);
    const char *allowed[] = {"x", NULL};
    http_server_opts o = {.addr = "127.0.0.1:0", .routes = routes, .nroutes = 1};
    http_server *srv = NULL;
    char err[TKV_ERRMSG_LEN];
    o.allowed_cn = allowed;
    assert_int_equal(http_server_start(&o, &srv, err), TKV_ECONFIG);
    o.cert_path = cert;
    o.key_path = key;
    o.ca_path = ca;
    assert_int_equal(http_server_start(&o, &srv, err), TKV_ECONFIG);
    assert_non_null(strstr(err, "does not belong"));
    assert_null(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual_tls_admits_exact_names_and_reports_refusals),
        cmocka_unit_test(test_rotated_server_certificate_is_served_without_restart),
        cmocka_unit_test(test_tls_configuration_errors_are_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
