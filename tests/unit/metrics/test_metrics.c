/*
 * test_metrics.c: registry, series, histogram buckets and the Prometheus text format.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/metrics.h"

static int teardown(void **state)
{
    (void)state;
    tkv_metrics_reset();
    return 0;
}

static char *render(void)
{
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(tkv_metrics_render(&b), 0);
    assert_int_equal(tkv_buf_append_u8(&b, 0), 0);
    return (char *)tkv_buf_steal(&b, NULL);
}

static void test_counter_and_gauge_render_in_text_format(void **state)
{
    (void)state;
    tkv_metric *c = tkv_metric_counter("tikv_test_requests_total", "Requests \\ served", "type");
    tkv_metric *g = tkv_metric_gauge("tikv_test_region_count", "Regions", NULL);
    assert_non_null(c);
    assert_non_null(g);
    tkv_series *get = tkv_metric_with(c, "raw_get");
    tkv_series *put = tkv_metric_with(c, "raw\"put");
    assert_ptr_equal(get, tkv_metric_with(c, "raw_get"));
    tkv_series_inc(get);
    tkv_series_add(get, 2);
    tkv_series_add(get, -5); /* ignored: counters never go down */
    tkv_series_inc(put);
    tkv_series *gs = tkv_metric_with(g);
    tkv_series_set(gs, 7);
    tkv_series_add(gs, -2);
    assert_true(tkv_series_value(get) == 3.0);
    assert_true(tkv_series_value(gs) == 5.0);
    char *text = render();
    assert_non_null(strstr(text, "# HELP tikv_test_requests_total Requests \\\\ served\n"
                                 "# TYPE tikv_test_requests_total counter\n"));
    assert_non_null(strstr(text, "tikv_test_requests_total{type=\"raw_get\"} 3\n"));
    assert_non_null(strstr(text, "tikv_test_requests_total{type=\"raw\\\"put\"} 1\n"));
    assert_non_null(
        strstr(text, "# TYPE tikv_test_region_count gauge\ntikv_test_region_count 5\n"));
    /* Families are sorted by name. */
    assert_true(strstr(text, "tikv_test_region_count") < strstr(text, "tikv_test_requests_total"));
    tkv_free(text);
}

static void test_histogram_buckets_are_cumulative(void **state)
{
    (void)state;
    const double b[] = {0.001, 0.01, 0.1};
    tkv_metric *h = tkv_metric_histogram("tikv_test_duration_seconds", "d", "type", b, 3);
    tkv_series *s = tkv_metric_with(h, "x");
    tkv_series_observe(s, 0.0005);
    tkv_series_observe(s, 0.001); /* le is inclusive */
    tkv_series_observe(s, 0.05);
    tkv_series_observe(s, 5);
    char *text = render();
    assert_non_null(strstr(text, "tikv_test_duration_seconds_bucket{type=\"x\",le=\"0.001\"} 2\n"));
    assert_non_null(strstr(text, "tikv_test_duration_seconds_bucket{type=\"x\",le=\"0.01\"} 2\n"));
    assert_non_null(strstr(text, "tikv_test_duration_seconds_bucket{type=\"x\",le=\"0.1\"} 3\n"));
    assert_non_null(strstr(text, "tikv_test_duration_seconds_bucket{type=\"x\",le=\"+Inf\"} 4\n"));
    const char *sum = strstr(text, "tikv_test_duration_seconds_sum{type=\"x\"} ");
    assert_non_null(sum);
    double v = strtod(strchr(sum, ' ') + 1, NULL);
    assert_true(v > 5.05149 && v < 5.05151);
    assert_non_null(strstr(text, "tikv_test_duration_seconds_count{type=\"x\"} 4\n"));
    assert_true(tkv_series_value(s) == 4.0);
    tkv_free(text);
}

static void test_reregistration_checks_shape(void **state)
{
    (void)state;
    tkv_metric *a = tkv_metric_counter("tikv_test_x_total", "x", "a,b");
    assert_ptr_equal(a, tkv_metric_counter("tikv_test_x_total", "x", "a,b"));
    assert_null(tkv_metric_gauge("tikv_test_x_total", "x", "a,b"));
    assert_null(tkv_metric_counter("tikv_test_x_total", "x", "a"));
    assert_null(tkv_metric_counter("bad name", "x", NULL));
    assert_null(tkv_metric_counter("tikv_ok", "x", "1bad"));
    const double desc[] = {2, 1};
    assert_null(tkv_metric_histogram("tikv_test_h", "h", NULL, desc, 2));
    tkv_series *s = tkv_metric_with(a, "1", "2");
    assert_non_null(s);
    tkv_alloc_fail_after(0);
    assert_null(tkv_metric_with(a, "3", "4"));
    assert_null(tkv_metric_gauge("tikv_test_oom", "x", NULL));
    tkv_alloc_fault_clear();
}

#define THREADS    4
#define PER_THREAD 100000

static void *hammer(void *arg)
{
    tkv_series **s = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        tkv_series_inc(s[0]);
        tkv_series_observe(s[1], 0.5);
    }
    return NULL;
}

static void test_concurrent_updates_are_not_lost(void **state)
{
    (void)state;
    tkv_series *s[2];
    s[0] = tkv_metric_with(tkv_metric_counter("tikv_test_c_total", "c", NULL));
    s[1] = tkv_metric_with(tkv_metric_histogram("tikv_test_c_seconds", "c", NULL, NULL, 0));
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, s), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(tkv_series_value(s[0]) == (double)THREADS * PER_THREAD);
    assert_true(tkv_series_value(s[1]) == (double)THREADS * PER_THREAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_counter_and_gauge_render_in_text_format, teardown),
        cmocka_unit_test_teardown(test_histogram_buckets_are_cumulative, teardown),
        cmocka_unit_test_teardown(test_reregistration_checks_shape, teardown),
        cmocka_unit_test_teardown(test_concurrent_updates_are_not_lost, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
