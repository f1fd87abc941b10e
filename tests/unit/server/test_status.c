/*
 * test_status.c: the status server over real HTTP (libcurl): /metrics in Prometheus text
 * format, /status JSON, /config JSON (replaceable), and 404 for other paths.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/metrics.h"
#include "server/server.h"

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    tkv_buf *b = ud;
    assert_int_equal(tkv_buf_append(b, p, size * n), 0);
    return size * n;
}

/* GETs @path from the status server; returns the HTTP status and the body (NUL-terminated). */
static long http_get(const srv_status *st, const char *path, tkv_buf *body)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)srv_status_port(st), path);
    tkv_buf_reset(body);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    assert_int_equal(tkv_buf_append_u8(body, 0), 0);
    return code;
}

static void test_status_server_serves_metrics_status_and_config(void **state)
{
    (void)state;
    tkv_series *s =
        tkv_metric_with(tkv_metric_counter("tikv_test_status_hits_total", "hits", "type"), "probe");
    assert_non_null(s);
    tkv_series_add(s, 3);

    srv_config cfg;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(srv_config_bind(&cfg, NULL, NULL, NULL, err), 0);
    tkv_buf json;
    tkv_buf_init(&json);
    assert_int_equal(srv_config_to_json(&cfg, &json), 0);
    assert_int_equal(strlen((const char *)json.data), json.len);
    srv_status_opts o = {.addr = "127.0.0.1:0", .config_json = (const char *)json.data};
    srv_status *st;
    assert_int_equal(srv_status_start(&o, &st, err), 0);
    assert_true(srv_status_port(st) > 0);

    tkv_buf body;
    tkv_buf_init(&body);
    assert_int_equal(http_get(st, "/metrics", &body), 200);
    assert_non_null(strstr((char *)body.data, "tikv_test_status_hits_total{type=\"probe\"} 3"));

    assert_int_equal(http_get(st, "/status", &body), 200);
    json_error_t je;
    json_t *root = json_loads((char *)body.data, 0, &je);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "version")), srv_version());
    assert_non_null(json_object_get(root, "git_hash"));
    assert_non_null(json_string_value(json_object_get(root, "start_time")));
    assert_true(json_integer_value(json_object_get(root, "start_timestamp")) > 1600000000);
    assert_non_null(json_string_value(json_object_get(root, "uptime")));
    json_decref(root);

    /* client-go's raw tests read storage.api-version here. */
    assert_int_equal(http_get(st, "/config", &body), 200);
    root = json_loads((char *)body.data, 0, &je);
    assert_non_null(root);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(root, "storage"), "api-version")), 1);
    json_decref(root);
    assert_int_equal(srv_status_set_config(st, "{\"storage\":{\"api-version\":2}}"), 0);
    assert_int_equal(http_get(st, "/config", &body), 200);
    assert_string_equal((char *)body.data, "{\"storage\":{\"api-version\":2}}");

    assert_int_equal(http_get(st, "/nope", &body), 404);

    /* A taken address fails with a message. */
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)srv_status_port(st));
    srv_status_opts busy = {.addr = addr};
    srv_status *st2;
    assert_int_not_equal(srv_status_start(&busy, &st2, err), 0);
    assert_string_not_equal(err, "");

    srv_status_stop(st);
    srv_status_stop(NULL);
    tkv_buf_deinit(&body);
    tkv_buf_deinit(&json);
    srv_config_free(&cfg);
    tkv_metrics_reset();
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_server_serves_metrics_status_and_config),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
