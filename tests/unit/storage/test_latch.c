/*
 * test_latch.c: latches grant in FIFO order per slot, exclude overlapping commands, never
 * deadlock on opposite key orders, and hold under threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "storage/latch.h"

typedef struct cmd {
    int granted;
    int order;
} cmd;

static int grant_seq;

static void on_grant(void *ud)
{
    cmd *c = ud;
    c->granted++;
    c->order = ++grant_seq;
}

static stor_latch *latch(stor_latches *t, const char *a, const char *b)
{
    tkv_slice keys[2] = {tkv_slice_str(a), tkv_slice_str(b ? b : a)};
    stor_latch *l;
    assert_int_equal(stor_latch_new(t, keys, b ? 2 : 1, &l), 0);
    return l;
}

static void test_overlapping_commands_wait_in_fifo_order(void **state)
{
    (void)state;
    stor_latches *t;
    assert_int_equal(stor_latches_new(64, &t), 0);
    grant_seq = 0;
    cmd c1 = {0}, c2 = {0}, c3 = {0}, c4 = {0};
    stor_latch *l1 = latch(t, "a", "b");
    stor_latch *l2 = latch(t, "b", "a"); /* opposite order: must not deadlock */
    stor_latch *l3 = latch(t, "a", NULL);
    stor_latch *l4 = latch(t, "zzz-unrelated", NULL);
    assert_int_equal(stor_latch_acquire(t, l1, on_grant, &c1), 0);
    assert_int_equal(stor_latch_acquire(t, l2, on_grant, &c2), 0);
    assert_int_equal(stor_latch_acquire(t, l3, on_grant, &c3), 0);
    assert_int_equal(stor_latch_acquire(t, l1, on_grant, &c1), -EINVAL);
    assert_int_equal(c1.granted, 1);
    assert_int_equal(c2.granted, 0);
    assert_int_equal(c3.granted, 0);
    /* An unrelated key is not held up (unless it hashes to a taken slot: 64 slots, 3 keys;
     * check the hash spread instead of assuming). */
    assert_int_equal(stor_latch_acquire(t, l4, on_grant, &c4), 0);
    stor_latch_release(t, l1);
    assert_int_equal(c2.granted, 1);
    assert_int_equal(c3.granted, 0);
    stor_latch_release(t, l2);
    assert_int_equal(c3.granted, 1);
    assert_true(c2.order < c3.order);
    stor_latch_release(t, l3);
    if (c4.granted == 0) {
        /* l4 shared a slot with one of the others; it must be granted by now anyway. */
        fail_msg("unrelated latch never granted");
    }
    stor_latch_release(t, l4);
    /* Duplicate keys in one command count once. */
    stor_latch *dup = latch(t, "k", "k");
    cmd cd = {0};
    assert_int_equal(stor_latch_acquire(t, dup, on_grant, &cd), 0);
    assert_int_equal(cd.granted, 1);
    stor_latch_release(t, dup);
    /* A latch on no keys is granted at once. */
    stor_latch *none;
    assert_int_equal(stor_latch_new(t, NULL, 0, &none), 0);
    assert_int_equal(stor_latch_acquire(t, none, on_grant, &cd), 0);
    assert_int_equal(cd.granted, 2);
    stor_latch_release(t, none);
    stor_latch_free(latch(t, "never", "acquired"));
    stor_latches_free(t);
}

/* ---- threads: mutual exclusion on shared keys ------------------------------------------ */

#define KEYS    8
#define THREADS 4
#define ROUNDS  3000

static stor_latches *shared;
static atomic_int inside[KEYS];
static atomic_int violations;
static atomic_long completed;

typedef struct job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool granted;
} job;

static void job_grant(void *ud)
{
    job *j = ud;
    pthread_mutex_lock(&j->mu);
    j->granted = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    job j;
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    for (int r = 0; r < ROUNDS; r++) {
        int a = (int)(rand_r(&seed) % KEYS), b = (int)(rand_r(&seed) % KEYS);
        char ka[8], kb[8];
        snprintf(ka, sizeof(ka), "k%d", a);
        snprintf(kb, sizeof(kb), "k%d", b);
        tkv_slice keys[2] = {tkv_slice_str(ka), tkv_slice_str(kb)};
        stor_latch *l;
        if (stor_latch_new(shared, keys, 2, &l) != 0)
            abort();
        j.granted = false;
        if (stor_latch_acquire(shared, l, job_grant, &j) != 0)
            abort();
        pthread_mutex_lock(&j.mu);
        while (!j.granted)
            pthread_cond_wait(&j.cv, &j.mu);
        pthread_mutex_unlock(&j.mu);
        if (atomic_fetch_add(&inside[a], 1) != 0)
            atomic_fetch_add(&violations, 1);
        if (b != a && atomic_fetch_add(&inside[b], 1) != 0)
            atomic_fetch_add(&violations, 1);
        atomic_fetch_sub(&inside[a], 1);
        if (b != a)
            atomic_fetch_sub(&inside[b], 1);
        stor_latch_release(shared, l);
        atomic_fetch_add(&completed, 1);
    }
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    return NULL;
}

static void test_threads_never_share_a_latched_key(void **state)
{
    (void)state;
    assert_int_equal(stor_latches_new(4096, &shared), 0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1)), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&violations), 0);
    assert_int_equal(atomic_load(&completed), THREADS * ROUNDS);
    stor_latches_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlapping_commands_wait_in_fifo_order),
        cmocka_unit_test(test_threads_never_share_a_latched_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
