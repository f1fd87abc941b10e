/*
 * test_http.c: routes, methods, bodies, queries, limits and errors of the HTTP server.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/http.h"

/* Sends @req to 127.0.0.1:@port and returns the whole response (heap, NUL-terminated). */
static char *roundtrip(uint16_t port, const char *req, size_t req_len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    size_t off = 0;
    while (off < req_len) {
        ssize_t w = write(fd, req + off, req_len - off);
        if (w <= 0)
            break; /* the server may close early on an oversized body */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    tkv_buf b;
    tkv_buf_init(&b);
    char tmp[4096];
    ssize_t n;
    while ((n = read(fd, tmp, sizeof(tmp))) > 0)
        assert_int_equal(tkv_buf_append(&b, tmp, (size_t)n), 0);
    close(fd);
    assert_int_equal(tkv_buf_append_u8(&b, 0), 0);
    return (char *)tkv_buf_steal(&b, NULL);
}

static char *get(uint16_t port, const char *method, const char *path, const char *body)
{
    char req[1024];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, body ? strlen(body) : 0, body ? body : "");
    return roundtrip(port, req, (size_t)n);
}

static void h_hello(const http_request *rq, http_response *rs, void *ud)
{
    rs->content_type = "text/plain";
    const char *name = http_request_query(rq, "name");
    http_printf(rs, "hello %s from %s ud=%s", name ? name : "nobody",
                strncmp(rq->peer, "127.0.0.1:", 10) == 0 ? "loopback" : rq->peer, (const char *)ud);
}

static void h_echo(const http_request *rq, http_response *rs, void *ud)
{
    (void)ud;
    rs->status = 201;
    http_printf(rs, "[%.*s]", (int)rq->body_len, rq->body ? (const char *)rq->body : "");
}

static void h_store(const http_request *rq, http_response *rs, void *ud)
{
    (void)ud;
    char *end;
    unsigned long id = strtoul(rq->tail, &end, 10);
    if (*rq->tail == '\0' || *end != '\0') {
        http_error(rs, 400, "bad \"id\"");
        return;
    }
    http_printf(rs, "{\"id\":%lu}", id);
}

static const http_route routes[] = {
    {"GET", "/hello", false, h_hello},
    {"POST", "/echo", false, h_echo},
    {"GET", "/store/", true, h_store},
};

static http_server *start(void)
{
    http_server_opts o = {.addr = "127.0.0.1:0",
                          .routes = routes,
                          .nroutes = TKV_ARRAY_LEN(routes),
                          .ud = "U",
                          .max_body_bytes = 64};
    http_server *srv;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(http_server_start(&o, &srv, err), 0);
    assert_true(http_server_port(srv) > 0);
    return srv;
}

static void test_routes_answer_with_status_and_body(void **state)
{
    (void)state;
    http_server *srv = start();
    uint16_t port = http_server_port(srv);
    char *r = get(port, "GET", "/hello?name=pd", NULL);
    assert_non_null(strstr(r, " 200 "));
    assert_non_null(strstr(r, "Content-Type: text/plain"));
    assert_non_null(strstr(r, "hello pd from loopback ud=U"));
    tkv_free(r);
    r = get(port, "POST", "/echo", "abc");
    assert_non_null(strstr(r, " 201 "));
    assert_non_null(strstr(r, "[abc]"));
    tkv_free(r);
    r = get(port, "GET", "/store/42", NULL);
    assert_non_null(strstr(r, "{\"id\":42}"));
    tkv_free(r);
    r = get(port, "GET", "/store/x", NULL);
    assert_non_null(strstr(r, " 400 "));
    assert_non_null(strstr(r, "{\"error\":\"bad \\\"id\\\"\"}"));
    tkv_free(r);
    http_server_stop(srv);
}

static void test_unknown_path_404_wrong_method_405_big_body_413(void **state)
{
    (void)state;
    http_server *srv = start();
    uint16_t port = http_server_port(srv);
    char *r = get(port, "GET", "/nope", NULL);
    assert_non_null(strstr(r, " 404 "));
    tkv_free(r);
    r = get(port, "DELETE", "/hello", NULL);
    assert_non_null(strstr(r, " 405 "));
    tkv_free(r);
    char big[200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    r = get(port, "POST", "/echo", big);
    assert_non_null(strstr(r, " 413 "));
    tkv_free(r);
    http_server_stop(srv);
}

static void test_bad_address_is_an_error(void **state)
{
    (void)state;
    http_server_opts o = {.addr = "127.0.0.1", .routes = routes, .nroutes = 1};
    http_server *srv;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(http_server_start(&o, &srv, err), -EINVAL);
    assert_non_null(strstr(err, "invalid address"));
    o.addr = "nothost:80";
    assert_int_equal(http_server_start(&o, &srv, err), -EINVAL);
    /* A port already taken. */
    http_server *a = start();
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", http_server_port(a));
    o.addr = addr;
    assert_int_equal(http_server_start(&o, &srv, err), -EADDRINUSE);
    http_server_stop(a);
    http_server_stop(NULL);
    char host[16];
    uint16_t port;
    assert_int_equal(http_split_addr("[::1]:2379", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 2379);
    assert_int_equal(http_split_addr("h:70000", host, sizeof(host), &port), -EINVAL);
}

static uint16_t shared_port;

static void *client_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        char *r = get(shared_port, "GET", "/store/7", NULL);
        if (strstr(r, "{\"id\":7}") == NULL) {
            tkv_free(r);
            return (void *)1;
        }
        tkv_free(r);
    }
    return NULL;
}

static void test_concurrent_clients_are_served(void **state)
{
    (void)state;
    http_server *srv = start();
    shared_port = http_server_port(srv);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, client_thread, NULL), 0);
    for (int i = 0; i < 8; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
    http_server_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_answer_with_status_and_body),
        cmocka_unit_test(test_unknown_path_404_wrong_method_405_big_body_413),
        cmocka_unit_test(test_bad_address_is_an_error),
        cmocka_unit_test(test_concurrent_clients_are_served),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
