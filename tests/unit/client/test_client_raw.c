/*
 * test_client_raw.c: libtikvc's raw API, region cache and retry logic against fake PD and
 * fake stores: every raw call across regions; stale routes (epoch not match, not leader with
 * and without a hint, region not found, store not match, stale command) retried until they
 * succeed; ServerIsBusy backed off within a bounded budget; a split in the middle of a
 * multi-region scan; BatchCommands multiplexing and the unary switch; deadlines; async calls
 * and closing with calls in flight.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/clock.h"
#include "unit/client/client_fixture.h"

static const char *const splits3[] = {"g", "p"}; /* regions: [,g) [g,p) [p,) */

static void put(tikvc_client *c, const char *k, const char *v)
{
    int rc = tikvc_raw_put(c, k, strlen(k), v, strlen(v), 0);
    if (rc != 0)
        printf("# put %s: %s\n", k, tikvc_errmsg());
    assert_int_equal(rc, TIKVC_OK);
}

/* Asserts @k reads as @v (NULL: absent). */
static void expect(tikvc_client *c, const char *k, const char *v)
{
    tikvc_buf b = {0};
    bool found = !v;
    int rc = tikvc_raw_get(c, k, strlen(k), &b, &found);
    fx_check_read(rc, &b, found, k, v);
}

static void keyname(char *out, size_t cap, const char *prefix, int i)
{
    snprintf(out, cap, "%s%04d", prefix, i);
}

/* ---- the raw API ------------------------------------------------------------------------ */

static void test_raw_point_calls_across_regions(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    put(f.c, "a", "1");
    put(f.c, "h", "2");
    put(f.c, "z", "3");
    expect(f.c, "a", "1");
    expect(f.c, "h", "2");
    expect(f.c, "z", "3");
    expect(f.c, "missing", NULL);
    /* An empty value is a value. */
    assert_int_equal(tikvc_raw_put(f.c, "e", 1, "", 0, 0), TIKVC_OK);
    expect(f.c, "e", "");
    assert_int_equal(tikvc_raw_delete(f.c, "h", 1), TIKVC_OK);
    expect(f.c, "h", NULL);
    assert_int_equal(tikvc_raw_delete(f.c, "never", 5), TIKVC_OK);
    /* Each region's leader answered its keys. */
    assert_true(fake_cluster_store(&f.fc, 1)->requests > 0);
    assert_true(fake_cluster_store(&f.fc, 2)->requests > 0);
    assert_true(fake_cluster_store(&f.fc, 3)->requests > 0);
    assert_int_equal(tikvc_raw_get(f.c, NULL, 1, NULL, NULL), TIKVC_EINVAL);
    assert_non_null(strstr(tikvc_errmsg(), "NULL"));
    fx_stop(&f);
}

static void test_raw_batch_calls_group_keys_by_region(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    enum { N = 300 };
    char keys[N][16], vals[N][16];
    tikvc_slice ks[N], vs[N];
    for (int i = 0; i < N; i++) {
        /* Spread over the three regions, out of order. */
        snprintf(keys[i], sizeof(keys[i]), "%c%04d", "azhq"[i % 4], N - i);
        snprintf(vals[i], sizeof(vals[i]), "v%d", i);
        ks[i] = (tikvc_slice){keys[i], strlen(keys[i])};
        vs[i] = (tikvc_slice){vals[i], strlen(vals[i])};
    }
    assert_int_equal(tikvc_raw_batch_put(f.c, ks, vs, N, 0), TIKVC_OK);
    assert_int_equal(fake_cluster_raw_count(&f.fc), N);
    /* One request per region (the keys fit one batch each). */
    assert_int_equal(fake_cluster_count(&f.fc, "RawBatchPut"), 3);

    tikvc_slice q[N + 1];
    memcpy(q, ks, sizeof(ks));
    q[N] = (tikvc_slice){"nope", 4};
    tikvc_kvs out = {0};
    assert_int_equal(tikvc_raw_batch_get(f.c, q, N + 1, &out), TIKVC_OK);
    assert_int_equal(out.len, N);
    for (int i = 0; i < N; i++) {
        /* In the order asked. */
        assert_int_equal(out.items[i].key.len, ks[i].len);
        assert_memory_equal(out.items[i].key.data, keys[i], ks[i].len);
        assert_memory_equal(out.items[i].value.data, vals[i], vs[i].len);
    }
    tikvc_kvs_free(&out);
    assert_int_equal(tikvc_raw_batch_delete(f.c, ks, N / 2), TIKVC_OK);
    assert_int_equal(fake_cluster_raw_count(&f.fc), N - N / 2);
    assert_int_equal(tikvc_raw_batch_get(f.c, q, N / 2, &out), TIKVC_OK);
    assert_int_equal(out.len, 0);
    tikvc_kvs_free(&out);
    fx_stop(&f);
}

static void test_raw_scans_cross_regions_and_respect_the_limit(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    char k[16];
    for (int i = 0; i < 26; i++) {
        for (int j = 0; j < 4; j++) {
            snprintf(k, sizeof(k), "%c%d", 'a' + i, j);
            fake_cluster_raw_put(&f.fc, tkv_slice_str(k), tkv_slice_str(k));
        }
    }
    tikvc_kvs out = {0};
    assert_int_equal(tikvc_raw_scan(f.c, "", 0, "", 0, 1000, 0, &out), TIKVC_OK);
    assert_int_equal(out.len, 104);
    for (size_t i = 1; i < out.len; i++)
        assert_true(memcmp(out.items[i - 1].key.data, out.items[i].key.data, 2) < 0);
    /* The limit holds across regions: [f, r) has 48 keys, 30 asked. */
    assert_int_equal(tikvc_raw_scan(f.c, "f", 1, "r", 1, 30, 0, &out), TIKVC_OK);
    assert_int_equal(out.len, 30);
    assert_memory_equal(out.items[0].key.data, "f0", 2);
    assert_memory_equal(out.items[29].key.data, "m1", 2);
    /* Reverse: from the top of [f, r) down. */
    assert_int_equal(tikvc_raw_scan(f.c, "f", 1, "r", 1, 10, TIKVC_SCAN_REVERSE, &out), TIKVC_OK);
    assert_int_equal(out.len, 10);
    assert_memory_equal(out.items[0].key.data, "q3", 2);
    assert_memory_equal(out.items[9].key.data, "o2", 2);
    /* Reverse over everything, from +infinity. */
    assert_int_equal(tikvc_raw_scan(f.c, "", 0, "", 0, 1000, TIKVC_SCAN_REVERSE, &out), TIKVC_OK);
    assert_int_equal(out.len, 104);
    assert_memory_equal(out.items[0].key.data, "z3", 2);
    assert_memory_equal(out.items[103].key.data, "a0", 2);
    /* Key-only scans leave values empty. */
    assert_int_equal(tikvc_raw_scan(f.c, "a", 1, "b", 1, 10, TIKVC_SCAN_KEY_ONLY, &out), TIKVC_OK);
    assert_int_equal(out.len, 4);
    assert_int_equal(out.items[0].value.len, 0);
    /* An empty range has nothing. */
    assert_int_equal(tikvc_raw_scan(f.c, "m", 1, "m", 1, 10, 0, &out), TIKVC_OK);
    assert_int_equal(out.len, 0);
    tikvc_kvs_free(&out);

    /* Delete range across the three regions. */
    assert_int_equal(tikvc_raw_delete_range(f.c, "c", 1, "x", 1), TIKVC_OK);
    assert_int_equal(fake_cluster_raw_count(&f.fc), 104 - 21 * 4);
    assert_int_equal(fake_cluster_count(&f.fc, "RawDeleteRange"), 3);
    expect(f.c, "b3", "b3");
    expect(f.c, "c0", NULL);
    expect(f.c, "x0", "x0");
    fx_stop(&f);
}

static void test_raw_cas_and_ttl(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 1, false, NULL, 0, NULL);
    bool swapped = false, prev_found = true;
    tikvc_buf prev = {0};
    assert_int_equal(
        tikvc_raw_cas(f.c, "k", 1, NULL, 0, true, "v1", 2, 0, &swapped, &prev, &prev_found),
        TIKVC_OK);
    assert_true(swapped);
    assert_false(prev_found);
    assert_int_equal(
        tikvc_raw_cas(f.c, "k", 1, "zz", 2, false, "v2", 2, 0, &swapped, &prev, &prev_found),
        TIKVC_OK);
    assert_false(swapped);
    assert_true(prev_found);
    assert_memory_equal(prev.data, "v1", 2);
    assert_int_equal(tikvc_raw_cas(f.c, "k", 1, "v1", 2, false, "v2", 2, 0, &swapped, NULL, NULL),
                     TIKVC_OK);
    assert_true(swapped);
    expect(f.c, "k", "v2");
    tikvc_buf_free(&prev);
    /* CAS is never batched: it goes unary even with BatchCommands on. */
    assert_int_equal(fake_cluster_count(&f.fc, "RawCompareAndSwap"), 3);

    assert_int_equal(tikvc_raw_put(f.c, "t", 1, "x", 1, 100), TIKVC_OK);
    uint64_t ttl = 0;
    bool found = false;
    assert_int_equal(tikvc_raw_get_ttl(f.c, "t", 1, &ttl, &found), TIKVC_OK);
    assert_true(found);
    assert_true(ttl > 90 && ttl <= 100);
    assert_int_equal(tikvc_raw_get_ttl(f.c, "k", 1, &ttl, &found), TIKVC_OK);
    assert_true(found);
    assert_int_equal(ttl, 0);
    fx_stop(&f);
}

/* ---- stale routes ----------------------------------------------------------------------- */

static void test_epoch_not_match_after_a_split_installs_the_new_regions(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    put(f.c, "h", "1"); /* caches region 3 = [g, p) */
    int lookups = fake_pd_calls(&f.pd, FPD_GET_REGION);
    fake_pd_split(&f.pd, 3, tkv_slice_str("k"), 10);
    put(f.c, "m", "2");
    expect(f.c, "h", "1");
    /* The store's EpochNotMatch carried the new regions: PD was not asked again. */
    assert_int_equal(fake_pd_calls(&f.pd, FPD_GET_REGION), lookups);
    assert_int_equal(fake_cluster_count(&f.fc, "RawPut"), 3);
    assert_int_equal(f.fc.epoch_not_match, 1);
    assert_int_equal(fx_region_of(&f, "m"), 10);
    fx_stop(&f);
}

static void test_not_leader_with_a_hint_moves_the_leader(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    put(f.c, "a", "1"); /* region 2, leader store 1 */
    fake_pd_set_region_leader(&f.pd, 2, 2);
    int s1 = fake_cluster_store(&f.fc, 1)->requests;
    int s2 = fake_cluster_store(&f.fc, 2)->requests;
    int lookups = fake_pd_calls(&f.pd, FPD_GET_REGION);
    expect(f.c, "a", "1");
    assert_int_equal(fake_cluster_store(&f.fc, 1)->requests, s1 + 1); /* answered NotLeader */
    assert_int_equal(fake_cluster_store(&f.fc, 2)->requests, s2 + 1); /* answered the get */
    assert_int_equal(fake_pd_calls(&f.pd, FPD_GET_REGION), lookups);
    /* From now on the new leader is asked directly. */
    expect(f.c, "a", "1");
    assert_int_equal(fake_cluster_store(&f.fc, 1)->requests, s1 + 1);
    fx_stop(&f);
}

static void test_not_leader_without_a_hint_and_region_not_found_ask_pd_again(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    put(f.c, "a", "1");
    int lookups = fake_pd_calls(&f.pd, FPD_GET_REGION);
    pthread_mutex_lock(&f.pd.mu);
    fake_cluster_store(&f.fc, 1)->inj.not_leader_no_hint = 1;
    pthread_mutex_unlock(&f.pd.mu);
    expect(f.c, "a", "1");
    assert_int_equal(fake_pd_calls(&f.pd, FPD_GET_REGION), lookups + 1);

    /* The region leaves store 1 (its peer removed, leader now on store 2). */
    pthread_mutex_lock(&f.pd.mu);
    fpd_region *g = &f.pd.regions[fake_pd_region_index(&f.pd, 2)];
    g->peers[0] = g->peers[2];
    g->n_peers = 2;
    g->leader = 1;
    g->conf_ver++;
    pthread_mutex_unlock(&f.pd.mu);
    /* Store 1, the cached leader, no longer has the region: RegionNotFound sends the
     * client to PD, which knows the new leader. */
    expect(f.c, "a", "1");
    assert_int_equal(fake_pd_calls(&f.pd, FPD_GET_REGION), lookups + 2);
    fx_stop(&f);
}

static void test_key_not_in_region_drops_the_region_and_asks_pd(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    put(f.c, "h", "1");
    int lookups = fake_pd_calls(&f.pd, FPD_GET_REGION);
    pthread_mutex_lock(&f.pd.mu);
    fake_cluster_store(&f.fc, 2)->inj.key_not_in_region = 1;
    pthread_mutex_unlock(&f.pd.mu);
    expect(f.c, "h", "1");
    assert_int_equal(fake_pd_calls(&f.pd, FPD_GET_REGION), lookups + 1);
    assert_int_equal(fake_cluster_count(&f.fc, "RawGet"), 2);
    fx_stop(&f);
}

static void test_an_unreachable_leader_makes_the_client_try_the_other_peers(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    put(f.c, "a", "1"); /* region 2: leader store 1, peers on 1, 2, 3 */
    /* Store 1 dies; store 3 wins the election, but PD has not heard of it yet. */
    fake_cluster_kill_store(&f.fc, 1);
    pthread_mutex_lock(&f.pd.mu);
    f.pd.stale_leader_store = 1;
    pthread_mutex_unlock(&f.pd.mu);
    fake_pd_set_region_leader(&f.pd, 2, 3);
    uint64_t t0 = tkv_clock_mono_ms();
    expect(f.c, "a", "1");
    /* Store 2 was tried next and pointed at store 3: no backoff sleep was needed. */
    assert_true(tkv_clock_mono_ms() - t0 < 2000);
    assert_true(fake_cluster_store(&f.fc, 3)->requests >= 1);
    expect(f.c, "a", "1");
    fx_stop(&f);
}

static void test_store_not_match_and_stale_command_are_retried(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    put(f.c, "a", "1");
    int stores = fake_pd_calls(&f.pd, FPD_GET_STORE);
    pthread_mutex_lock(&f.pd.mu);
    fake_cluster_store(&f.fc, 1)->inj.store_not_match = 1;
    fake_cluster_store(&f.fc, 1)->inj.stale_command = 2;
    pthread_mutex_unlock(&f.pd.mu);
    expect(f.c, "a", "1");
    /* StoreNotMatch made the client ask PD for the store's address again. */
    assert_true(fake_pd_calls(&f.pd, FPD_GET_STORE) > stores);
    assert_int_equal(fake_cluster_count(&f.fc, "RawGet"), 4);
    fx_stop(&f);
}

static void test_server_busy_is_backed_off_and_the_backoff_is_bounded(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 1, false, NULL, 0, NULL);
    put(f.c, "a", "1");
    pthread_mutex_lock(&f.pd.mu);
    fake_cluster_store(&f.fc, 1)->inj.busy = 3;
    pthread_mutex_unlock(&f.pd.mu);
    uint64_t t0 = tkv_clock_mono_ms();
    expect(f.c, "a", "1");
    /* Three sleeps of at least 5, 10 and 20 ms (base 10, equal jitter, doubling). */
    assert_true(tkv_clock_mono_ms() - t0 >= 35);

    /* A store that stays busy: the call gives up once the budget is spent. */
    tikvc_opts o;
    fx_opts(&f, &o);
    o.max_backoff_ms = 300;
    fx_reopen(&f, &o);
    pthread_mutex_lock(&f.pd.mu);
    fake_cluster_store(&f.fc, 1)->inj.busy = 1000000;
    pthread_mutex_unlock(&f.pd.mu);
    t0 = tkv_clock_mono_ms();
    tikvc_buf b = {0};
    bool found;
    assert_int_equal(tikvc_raw_get(f.c, "a", 1, &b, &found), TIKVC_EBUSY);
    uint64_t took = tkv_clock_mono_ms() - t0;
    assert_true(took >= 200 && took < 3000);
    assert_non_null(strstr(tikvc_errmsg(), "busy"));
    /* The server's backoff hint is honoured (capped by the busy cap). */
    pthread_mutex_lock(&f.pd.mu);
    fake_cluster_store(&f.fc, 1)->inj.busy = 1;
    fake_cluster_store(&f.fc, 1)->inj.busy_hint_ms = 35;
    pthread_mutex_unlock(&f.pd.mu);
    t0 = tkv_clock_mono_ms();
    expect(f.c, "a", "1");
    assert_true(tkv_clock_mono_ms() - t0 >= 35);
    fx_stop(&f);
}

static void test_pd_unavailable_for_a_while_is_retried(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 1, false, NULL, 0, NULL);
    pthread_mutex_lock(&f.pd.mu);
    f.pd.region_lookups_fail = 1;
    pthread_mutex_unlock(&f.pd.mu);
    put(f.c, "a", "1");
    assert_true(fake_pd_calls(&f.pd, FPD_GET_REGION) >= 2);
    fx_stop(&f);
}

/* ---- split under a scan ----------------------------------------------------------------- */

/* Scans everything with 7 pairs per request while region @split_id splits at @at after the
 * @after-th scan request; checks every key comes exactly once, in order. */
static void scan_with_split(bool reverse, uint64_t split_id, const char *at, int after)
{
    fx f;
    tikvc_opts o;
    fx_start(&f, 3, false, splits3, 2, NULL);
    fx_opts(&f, &o);
    o.scan_batch = 7;
    fx_reopen(&f, &o);
    char k[16];
    int n = 0;
    for (int c = 'a'; c <= 'z'; c++) {
        for (int j = 0; j < 5; j++, n++) {
            snprintf(k, sizeof(k), "%c%d", c, j);
            fake_cluster_raw_put(&f.fc, tkv_slice_str(k), tkv_slice_str(k));
        }
    }
    /* Warm the cache with the current regions, so the split makes it stale. */
    expect(f.c, "a0", "a0");
    expect(f.c, "h0", "h0");
    expect(f.c, "z0", "z0");
    pthread_mutex_lock(&f.pd.mu);
    f.fc.split_after = after;
    f.fc.scans_seen = 0;
    f.fc.split_region = split_id;
    f.fc.split_key_len = strlen(at);
    memcpy(f.fc.split_key, at, strlen(at));
    f.fc.split_new_id = 20;
    pthread_mutex_unlock(&f.pd.mu);
    tikvc_kvs out = {0};
    int rc = tikvc_raw_scan(f.c, "", 0, "", 0, 10000, reverse ? TIKVC_SCAN_REVERSE : 0, &out);
    if (rc != 0)
        printf("# scan: %s\n", tikvc_errmsg());
    assert_int_equal(rc, TIKVC_OK);
    assert_int_equal(out.len, (size_t)n);
    for (size_t i = 0; i < out.len; i++) {
        size_t at_i = reverse ? out.len - 1 - i : i;
        snprintf(k, sizeof(k), "%c%d", 'a' + (int)(at_i / 5), (int)(at_i % 5));
        assert_int_equal(out.items[i].key.len, strlen(k));
        assert_memory_equal(out.items[i].key.data, k, strlen(k));
    }
    tikvc_kvs_free(&out);
    /* The split happened during the scan and the client met the stale epoch. */
    pthread_mutex_lock(&f.pd.mu);
    assert_int_equal(f.fc.split_after, 0);
    assert_true(fake_pd_region_index(&f.pd, 20) >= 0);
    assert_true(f.fc.epoch_not_match >= 1);
    pthread_mutex_unlock(&f.pd.mu);
    fx_stop(&f);
}

static void test_split_under_a_running_forward_scan_misses_and_repeats_nothing(void **state)
{
    (void)state;
    /* Split the middle region [g, p) at "k" while the scan is still in [, g). */
    scan_with_split(false, 3, "k", 1);
    /* Split the region the scan is in ([g, p) at "j", after its first batch there). */
    scan_with_split(false, 3, "j", 6);
}

static void test_split_under_a_running_reverse_scan_misses_and_repeats_nothing(void **state)
{
    (void)state;
    scan_with_split(true, 3, "k", 1);
    scan_with_split(true, 3, "m", 6);
}

/* ---- transport -------------------------------------------------------------------------- */

typedef struct load_arg {
    tikvc_client *c;
    int id;
    int n;
    int failures;
} load_arg;

static void *load_main(void *p)
{
    load_arg *a = p;
    char k[32], v[32];
    for (int i = 0; i < a->n; i++) {
        snprintf(k, sizeof(k), "%c-%d-%d", "ahq"[i % 3], a -> id, i);
        snprintf(v, sizeof(v), "v%d", i);
        if (tikvc_raw_put(a->c, k, strlen(k), v, strlen(v), 0) != 0)
            a->failures++;
        tikvc_buf b = {0};
        bool found = false;
        if (tikvc_raw_get(a->c, k, strlen(k), &b, &found) != 0 || !found || b.len != strlen(v) ||
            memcmp(b.data, v, b.len) != 0)
            a->failures++;
        tikvc_buf_free(&b);
    }
    return NULL;
}

static void run_load(fx *f, int threads, int per)
{
    pthread_t t[32];
    load_arg a[32];
    for (int i = 0; i < threads; i++) {
        a[i] = (load_arg){.c = f->c, .id = i, .n = per};
        assert_int_equal(pthread_create(&t[i], NULL, load_main, &a[i]), 0);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].failures, 0);
    }
}

static void test_batch_commands_multiplex_many_callers_on_few_streams(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    run_load(&f, 16, 40);
    int reqs = 0, msgs = 0;
    for (uint64_t s = 1; s <= 3; s++) {
        fake_store *st = fake_cluster_store(&f.fc, s);
        pthread_mutex_lock(&f.pd.mu);
        /* conns_per_store (2) streams at most, every request through them. */
        assert_true(st->batch_streams >= 1 && st->batch_streams <= 2);
        assert_int_equal(st->batched_requests, st->requests);
        reqs += st->batched_requests;
        msgs += st->batch_messages;
        pthread_mutex_unlock(&f.pd.mu);
    }
    assert_int_equal(reqs, 16 * 40 * 2);
    printf("# %d requests in %d BatchCommands messages\n", reqs, msgs);
    assert_true(msgs <= reqs);
    fx_stop(&f);
}

static void test_unary_switch_sends_no_batch_commands(void **state)
{
    (void)state;
    fx f;
    tikvc_opts o;
    fx_start(&f, 3, false, splits3, 2, NULL);
    fx_opts(&f, &o);
    o.batch_commands = 0;
    fx_reopen(&f, &o);
    run_load(&f, 4, 20);
    for (uint64_t s = 1; s <= 3; s++) {
        pthread_mutex_lock(&f.pd.mu);
        assert_int_equal(fake_cluster_store(&f.fc, s)->batch_streams, 0);
        assert_true(fake_cluster_store(&f.fc, s)->requests > 0);
        pthread_mutex_unlock(&f.pd.mu);
    }
    fx_stop(&f);
}

static void test_lost_answers_hit_the_deadline_and_are_retried(void **state)
{
    (void)state;
    for (int unary = 0; unary <= 1; unary++) {
        fx f;
        tikvc_opts o;
        fx_start(&f, 1, false, NULL, 0, NULL);
        fx_opts(&f, &o);
        o.rpc_timeout_ms = 300;
        o.batch_commands = !unary;
        fx_reopen(&f, &o);
        put(f.c, "a", "1");
        pthread_mutex_lock(&f.pd.mu);
        fake_cluster_store(&f.fc, 1)->inj.drop = 1;
        pthread_mutex_unlock(&f.pd.mu);
        uint64_t t0 = tkv_clock_mono_ms();
        expect(f.c, "a", "1");
        assert_true(tkv_clock_mono_ms() - t0 >= 300);

        /* A store that never answers: the call fails within its budget. */
        o.max_backoff_ms = 400;
        fx_reopen(&f, &o);
        put(f.c, "b", "1");
        pthread_mutex_lock(&f.pd.mu);
        fake_cluster_store(&f.fc, 1)->inj.drop = 1000;
        pthread_mutex_unlock(&f.pd.mu);
        tikvc_buf b = {0};
        bool found;
        int rc = tikvc_raw_get(f.c, "b", 1, &b, &found);
        assert_int_equal(rc, TIKVC_ETIMEDOUT);
        assert_non_null(strstr(tikvc_errmsg(), "in time"));
        fx_stop(&f);
    }
}

typedef struct async_sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int ok;
    int closed;
    int found;
} async_sink;

static void on_async(void *ud, const tikvc_result *r)
{
    async_sink *s = ud;
    pthread_mutex_lock(&s->mu);
    s->done++;
    s->ok += r->code == TIKVC_OK;
    s->closed += r->code == TIKVC_ECLOSED;
    s->found += r->found;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void wait_sink(async_sink *s, int n)
{
    pthread_mutex_lock(&s->mu);
    while (s->done < n)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void test_async_calls_complete_and_close_fails_what_is_in_flight(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    async_sink s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    char k[32];
    for (int i = 0; i < 64; i++) {
        keyname(k, sizeof(k), i % 2 ? "z" : "b", i);
        assert_int_equal(tikvc_raw_put_async(f.c, k, strlen(k), k, strlen(k), 0, on_async, &s),
                         TIKVC_OK);
    }
    wait_sink(&s, 64);
    assert_int_equal(s.ok, 64);
    for (int i = 0; i < 64; i++) {
        keyname(k, sizeof(k), i % 2 ? "z" : "b", i);
        assert_int_equal(tikvc_raw_get_async(f.c, k, strlen(k), on_async, &s), TIKVC_OK);
    }
    assert_int_equal(tikvc_raw_scan_async(f.c, "a", 1, "c", 1, 100, 0, on_async, &s), TIKVC_OK);
    wait_sink(&s, 129);
    assert_int_equal(s.ok, 129);
    assert_int_equal(s.found, 64);

    /* Calls that never get an answer end with TIKVC_ECLOSED when the client closes. */
    pthread_mutex_lock(&f.pd.mu);
    for (uint64_t i = 1; i <= 3; i++)
        fake_cluster_store(&f.fc, i)->inj.drop = 1000;
    pthread_mutex_unlock(&f.pd.mu);
    for (int i = 0; i < 10; i++) {
        keyname(k, sizeof(k), "h", i);
        assert_int_equal(tikvc_raw_delete_async(f.c, k, strlen(k), on_async, &s), TIKVC_OK);
    }
    tikvc_close(f.c);
    f.c = NULL;
    assert_int_equal(s.done, 139);
    assert_int_equal(s.closed, 10);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    fx_stop(&f);
}

static void test_open_fails_clearly_without_pd(void **state)
{
    (void)state;
    tikvc_client *c = NULL;
    assert_int_equal(tikvc_connect("", &c), TIKVC_ECONFIG);
    assert_non_null(strstr(tikvc_errmsg(), "PD"));
    tikvc_opts o;
    tikvc_opts_init(&o);
    o.pd_endpoints = "127.0.0.1:1";
    o.pd_timeout_ms = 300;
    int rc = tikvc_open(&o, &c);
    assert_true(rc == TIKVC_EUNAVAILABLE || rc == TIKVC_ETIMEDOUT);
    assert_non_null(strstr(tikvc_errmsg(), "connect to PD"));
    assert_null(c);
    assert_string_equal(tikvc_strerror(TIKVC_EBUSY), "TIKVC_EBUSY");
}

static void test_cluster_information_from_pd(void **state)
{
    (void)state;
    fx f;
    fx_start(&f, 3, false, splits3, 2, NULL);
    tikvc_region r;
    assert_int_equal(tikvc_pd_region_by_key(f.c, "h", 1, TIKVC_MODE_RAW, &r), TIKVC_OK);
    assert_int_equal(r.id, 3);
    assert_int_equal(r.start.len, 1);
    assert_memory_equal(r.start.data, "g", 1);
    assert_int_equal(r.n_peers, 3);
    assert_int_equal(r.leader_store_id, 2);
    tikvc_region_free(&r);
    assert_int_equal(tikvc_pd_region_by_id(f.c, 4, TIKVC_MODE_RAW, &r), TIKVC_OK);
    assert_int_equal(r.end.len, 0);
    tikvc_region_free(&r);
    assert_int_equal(tikvc_pd_region_by_id(f.c, 99, TIKVC_MODE_RAW, &r), TIKVC_EREGION);
    tikvc_region *rs = NULL;
    size_t n = 0;
    assert_int_equal(tikvc_pd_scan_regions(f.c, "", 0, "", 0, 0, TIKVC_MODE_RAW, &rs, &n),
                     TIKVC_OK);
    assert_int_equal(n, 3);
    tikvc_regions_free(rs, n);
    tikvc_store *ss = NULL;
    assert_int_equal(tikvc_pd_stores(f.c, &ss, &n), TIKVC_OK);
    assert_int_equal(n, 3);
    assert_string_equal(ss[1].address, f.fc.stores[1].addr);
    tikvc_stores_free(ss, n);
    tikvc_store st;
    assert_int_equal(tikvc_pd_store(f.c, 3, &st), TIKVC_OK);
    assert_int_equal(st.id, 3);
    tikvc_store_free(&st);
    tikvc_member *m = NULL;
    uint64_t cid = 0;
    assert_int_equal(tikvc_pd_members(f.c, &cid, &m, &n), TIKVC_OK);
    assert_int_equal(cid, 4242);
    assert_int_equal(n, 1);
    assert_true(m[0].leader);
    tikvc_members_free(m, n);
    uint64_t ts1, ts2;
    assert_int_equal(tikvc_pd_tso(f.c, &ts1), TIKVC_OK);
    assert_int_equal(tikvc_pd_tso(f.c, &ts2), TIKVC_OK);
    assert_true(ts2 > ts1);
    fx_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_point_calls_across_regions),
        cmocka_unit_test(test_raw_batch_calls_group_keys_by_region),
        cmocka_unit_test(test_raw_scans_cross_regions_and_respect_the_limit),
        cmocka_unit_test(test_raw_cas_and_ttl),
        cmocka_unit_test(test_epoch_not_match_after_a_split_installs_the_new_regions),
        cmocka_unit_test(test_not_leader_with_a_hint_moves_the_leader),
        cmocka_unit_test(test_not_leader_without_a_hint_and_region_not_found_ask_pd_again),
        cmocka_unit_test(test_key_not_in_region_drops_the_region_and_asks_pd),
        cmocka_unit_test(test_an_unreachable_leader_makes_the_client_try_the_other_peers),
        cmocka_unit_test(test_store_not_match_and_stale_command_are_retried),
        cmocka_unit_test(test_server_busy_is_backed_off_and_the_backoff_is_bounded),
        cmocka_unit_test(test_pd_unavailable_for_a_while_is_retried),
        cmocka_unit_test(test_split_under_a_running_forward_scan_misses_and_repeats_nothing),
        cmocka_unit_test(test_split_under_a_running_reverse_scan_misses_and_repeats_nothing),
        cmocka_unit_test(test_batch_commands_multiplex_many_callers_on_few_streams),
        cmocka_unit_test(test_unary_switch_sends_no_batch_commands),
        cmocka_unit_test(test_lost_answers_hit_the_deadline_and_are_retried),
        cmocka_unit_test(test_async_calls_complete_and_close_fails_what_is_in_flight),
        cmocka_unit_test(test_open_fails_clearly_without_pd),
        cmocka_unit_test(test_cluster_information_from_pd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
