/*
 * test_guard.c: the brute-force guard with an injected clock: bursts, refill, bans that end,
 * other addresses unaffected, bounded memory with LRU eviction that spares bans, metrics,
 * the ban hook and concurrent use.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/metrics.h"
#include "security/guard.h"

typedef struct clockfx {
    uint64_t now;
    int bans;
    char last_ban[64];
} clockfx;

static uint64_t fake_now(void *ud)
{
    return ((clockfx *)ud)->now;
}

static void on_ban(const char *addr, uint64_t ban_ms, void *ud)
{
    clockfx *c = ud;
    (void)ban_ms;
    c->bans++;
    snprintf(c->last_ban, sizeof(c->last_ban), "%s", addr);
}

static sec_guard *new_guard(clockfx *c, uint32_t max_failures, size_t max_addrs)
{
    sec_guard_opts o;
    sec_guard_opts_init(&o);
    o.max_failures = max_failures;
    o.window_ms = 10000;
    o.ban_ms = 60000;
    o.max_addrs = max_addrs;
    o.now_ms = fake_now;
    o.clock_ud = c;
    o.on_ban = on_ban;
    o.hook_ud = c;
    sec_guard *g;
    assert_int_equal(sec_guard_new(&o, &g), 0);
    return g;
}

static void test_addresses_drop_scheme_and_port(void **state)
{
    (void)state;
    char a[64];
    sec_guard_addr("ipv4:10.1.2.3:5555", a, sizeof(a));
    assert_string_equal(a, "10.1.2.3");
    sec_guard_addr("ipv6:[::1]:20160", a, sizeof(a));
    assert_string_equal(a, "::1");
    sec_guard_addr("unix:/tmp/sock", a, sizeof(a));
    assert_string_equal(a, "unix:/tmp/sock");
    sec_guard_addr("ipv4:10.1.2.3:5555", a, 4);
    assert_string_equal(a, "10.");
}

static void test_a_burst_past_the_limit_bans_only_that_address(void **state)
{
    (void)state;
    tkv_metrics_reset();
    clockfx c = {.now = 1000};
    sec_guard *g = new_guard(&c, 3, 16);
    /* Three failures fit the bucket; different ports are one host. */
    for (int i = 0; i < 3; i++) {
        char peer[64];
        snprintf(peer, sizeof(peer), "ipv4:10.0.0.9:%d", 40000 + i);
        assert_false(sec_guard_failure(g, peer));
        assert_true(sec_guard_allowed(g, peer));
    }
    assert_true(sec_guard_failure(g, "ipv4:10.0.0.9:1"));
    assert_false(sec_guard_allowed(g, "ipv4:10.0.0.9:2"));
    assert_int_equal(c.bans, 1);
    assert_string_equal(c.last_ban, "10.0.0.9");
    /* A well-behaved client elsewhere is not affected. */
    assert_true(sec_guard_allowed(g, "ipv4:10.0.0.10:1"));
    /* Failures while banned do not extend the ban. */
    assert_false(sec_guard_failure(g, "ipv4:10.0.0.9:3"));
    c.now += 59999;
    assert_false(sec_guard_allowed(g, "ipv4:10.0.0.9:2"));
    c.now += 1;
    assert_true(sec_guard_allowed(g, "ipv4:10.0.0.9:2"));
    /* After the ban the bucket is full again. */
    for (int i = 0; i < 3; i++)
        assert_false(sec_guard_failure(g, "ipv4:10.0.0.9:1"));
    assert_true(sec_guard_failure(g, "ipv4:10.0.0.9:1"));

    tkv_buf out;
    tkv_buf_init(&out);
    assert_int_equal(tkv_metrics_render(&out), 0);
    assert_int_equal(tkv_buf_append_u8(&out, 0), 0);
    assert_non_null(strstr((const char *)out.data, "tikv_server_peer_bans_total 2"));
    assert_non_null(strstr((const char *)out.data, "tikv_server_peer_auth_failures_total 9"));
    tkv_buf_deinit(&out);
    sec_guard_free(g);
    tkv_metrics_reset();
}

static void test_a_slow_rate_below_the_limit_is_never_banned(void **state)
{
    (void)state;
    clockfx c = {.now = 5};
    sec_guard *g = new_guard(&c, 3, 16);
    /* 3 per 10 s refill: one failure every 4 s stays under the rate forever. */
    for (int i = 0; i < 100; i++) {
        assert_false(sec_guard_failure(g, "ipv4:10.0.0.1:1"));
        c.now += 4000;
    }
    assert_true(sec_guard_allowed(g, "ipv4:10.0.0.1:1"));
    /* One every 2 s is faster than the refill: banned within a few failures. */
    bool banned = false;
    for (int i = 0; i < 20 && !banned; i++) {
        banned = sec_guard_failure(g, "ipv4:10.0.0.1:1");
        c.now += 2000;
    }
    assert_true(banned);
    assert_int_equal(c.bans, 1);
    sec_guard_free(g);
}

static void test_the_table_is_bounded_and_eviction_spares_bans(void **state)
{
    (void)state;
    clockfx c = {.now = 1};
    sec_guard *g = new_guard(&c, 1, 8);
    /* Ban one address, then flood with more addresses than the table holds. */
    assert_false(sec_guard_failure(g, "ipv4:192.0.2.1:1"));
    assert_true(sec_guard_failure(g, "ipv4:192.0.2.1:1"));
    for (int i = 0; i < 100; i++) {
        char peer[64];
        snprintf(peer, sizeof(peer), "ipv4:198.51.100.%d:1", i);
        TKV_IGNORE(sec_guard_failure(g, peer));
        assert_true(sec_guard_size(g) <= 8);
    }
    assert_int_equal(sec_guard_size(g), 8);
    assert_false(sec_guard_allowed(g, "ipv4:192.0.2.1:9"));
    sec_guard_free(g);
}

static void test_bad_options_are_refused(void **state)
{
    (void)state;
    sec_guard_opts o;
    sec_guard_opts_init(&o);
    sec_guard *g = NULL;
    o.max_addrs = 0;
    assert_int_equal(sec_guard_new(&o, &g), -EINVAL);
    sec_guard_opts_init(&o);
    o.window_ms = 0;
    assert_int_equal(sec_guard_new(&o, &g), -EINVAL);
    assert_null(g);
    sec_guard_free(NULL);
}

typedef struct worker {
    sec_guard *g;
    int id;
    int bans;
} worker;

static void *hammer(void *p)
{
    worker *w = p;
    char peer[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(peer, sizeof(peer), "ipv4:10.%d.0.%d:1", w->id, i % 10);
        if (sec_guard_failure(w->g, peer))
            w->bans++;
        TKV_IGNORE(sec_guard_allowed(w->g, peer));
    }
    return NULL;
}

static void test_concurrent_use_keeps_the_table_consistent(void **state)
{
    (void)state;
    sec_guard_opts o;
    sec_guard_opts_init(&o);
    o.max_failures = 5;
    o.max_addrs = 64;
    sec_guard *g;
    assert_int_equal(sec_guard_new(&o, &g), 0);
    pthread_t t[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){g, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    int bans = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        bans += w[i].bans;
    }
    /* 40 addresses, each failing 500 times in no time: each is banned exactly once. */
    assert_int_equal(bans, 40);
    assert_int_equal(sec_guard_size(g), 40);
    sec_guard_free(g);
    tkv_metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses_drop_scheme_and_port),
        cmocka_unit_test(test_a_burst_past_the_limit_bans_only_that_address),
        cmocka_unit_test(test_a_slow_rate_below_the_limit_is_never_banned),
        cmocka_unit_test(test_the_table_is_bounded_and_eviction_spares_bans),
        cmocka_unit_test(test_bad_options_are_refused),
        cmocka_unit_test(test_concurrent_use_keeps_the_table_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
