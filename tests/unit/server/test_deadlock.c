/*
 * test_deadlock.c: the cluster-wide deadlock detector (srv_deadlock) with two stores in one
 * process: store A runs the detector, store B sends its edges to A over
 * /deadlock.Deadlock/Detect. A cycle whose two waits are on different stores is found, and
 * the deadlock reaches the store whose wait closed it; a store that does not lead refuses
 * Detect streams; GetWaitForEntries lists the edges.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "deadlock.pb-c.h"
#include "server/server.h"
#include "storage/txn/lock_manager.h"

typedef struct store {
    rpc_server *rs;
    txn_lock_mgr *lm;
    srv_deadlock_leader view; /* what its leader function answers */
    pthread_mutex_t mu;
} store;

static void leader_of(void *ud, srv_deadlock_leader *out)
{
    store *s = ud;
    pthread_mutex_lock(&s->mu);
    *out = s->view;
    pthread_mutex_unlock(&s->mu);
}

static void store_open(store *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    rpc_server_opts o;
    rpc_server_opts_init(&o);
    o.addr = "127.0.0.1:0";
    assert_int_equal(rpc_server_new(&o, &s->rs), 0);
    srv_deadlock_opts d = {.leader = leader_of, .ud = s, .refresh_ms = 100};
    txn_detector *det;
    assert_int_equal(srv_deadlock_new(s->rs, &d, &det), 0);
    assert_int_equal(txn_lock_mgr_new(det, 60000, &s->lm), 0);
    assert_int_equal(rpc_server_start(s->rs), 0);
}

static void store_close(store *s)
{
    rpc_server_shutdown(s->rs, 1000);
    txn_lock_mgr_free(s->lm); /* frees the detector */
    rpc_server_free(s->rs);
    pthread_mutex_destroy(&s->mu);
}

static void set_view(store *s, bool local, const store *leader)
{
    pthread_mutex_lock(&s->mu);
    s->view.known = true;
    s->view.local = local;
    if (!local)
        snprintf(s->view.addr, sizeof(s->view.addr), "127.0.0.1:%d", rpc_server_port(leader->rs));
    pthread_mutex_unlock(&s->mu);
}

typedef struct wait {
    atomic_int outcome; /* -1 while waiting */
    atomic_ullong dl_hash;
} wait;

static void on_wait(void *ud, txn_wait_outcome o, uint64_t commit_ts, uint64_t dl_hash)
{
    (void)commit_ts;
    wait *w = ud;
    atomic_store(&w->dl_hash, dl_hash);
    atomic_store(&w->outcome, (int)o);
}

static void wait_init(wait *w)
{
    atomic_store(&w->outcome, -1);
    atomic_store(&w->dl_hash, 0);
}

/* Polls @cond for up to 10 s. */
static bool wait_until(bool (*cond)(void *), void *arg)
{
    uint64_t deadline = tkv_clock_mono_ms() + 10000;
    while (!cond(arg)) {
        if (tkv_clock_mono_ms() > deadline)
            return false;
        tkv_sleep_ms(10);
    }
    return true;
}

static bool ended(void *arg)
{
    return atomic_load(&((wait *)arg)->outcome) >= 0;
}

/* Returns the number of edges the detector at @leader lists, or -1 when it refuses. */
static int entries(rpc_client *cl, const store *leader)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", rpc_server_port(leader->rs));
    rpc_channel *ch;
    assert_int_equal(rpc_client_channel(cl, addr, 0, &ch), 0);
    Deadlock__WaitForEntriesRequest req = DEADLOCK__WAIT_FOR_ENTRIES_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    rpc_status st;
    int rc = rpc_unary_msg(ch, "/deadlock.Deadlock/GetWaitForEntries", &req.base,
                           &deadlock__wait_for_entries_response__descriptor, 5000, &resp, &st);
    if (rc != 0)
        return -1;
    int n = (int)((Deadlock__WaitForEntriesResponse *)resp)->n_entries;
    rpc_msg_free(resp);
    return n;
}

typedef struct probe {
    rpc_client *cl;
    store *leader;
    int want;
} probe;

static bool has_entries(void *arg)
{
    probe *p = arg;
    return entries(p->cl, p->leader) == p->want;
}

/* Registers the wait @txn_ts -> @lock_ts (@hash) on @s and repeats it until the detector
 * @p->leader lists @p->want edges: edges sent before @s found its leader are dropped (waits
 * then end by their timeout, as in TiKV). */
static void wait_until_edge_lands(store *s, probe *p, uint64_t txn_ts, uint64_t lock_ts,
                                  uint64_t hash, wait *w)
{
    wait_init(w);
    assert_int_equal(txn_lock_mgr_wait_for(s->lm, txn_ts, lock_ts, hash, 60000, on_wait, w), 0);
    for (int i = 0; !has_entries(p); i++) {
        assert_true(i < 500);
        txn_lock_mgr_wake_up(s->lm, lock_ts, &hash, 1, 0, true);
        assert_true(wait_until(ended, w));
        wait_init(w);
        tkv_sleep_ms(20);
        assert_int_equal(txn_lock_mgr_wait_for(s->lm, txn_ts, lock_ts, hash, 60000, on_wait, w), 0);
    }
}

static void test_cycle_across_two_stores_is_found_by_the_leader(void **state)
{
    (void)state;
    store a, b;
    store_open(&a);
    store_open(&b);
    set_view(&a, true, NULL);
    set_view(&b, false, &a);
    rpc_client_opts co;
    rpc_client_opts_init(&co);
    rpc_client *cl;
    assert_int_equal(rpc_client_new(&co, &cl), 0);

    /* B's first edge reaches A's graph once B found its leader. */
    wait w1, w2, w3, w4;
    probe p = {cl, &a, 1};
    wait_until_edge_lands(&b, &p, 10, 20, 111, &w1);
    /* 20 waits for 10 on A: the cycle closes at A, which answers its own waiter. */
    wait_init(&w2);
    assert_int_equal(txn_lock_mgr_wait_for(a.lm, 20, 10, 222, 60000, on_wait, &w2), 0);
    assert_true(wait_until(ended, &w2));
    assert_int_equal(atomic_load(&w2.outcome), TXN_WAIT_DEADLOCK);
    assert_int_equal(atomic_load(&w2.dl_hash), 111);
    assert_int_equal(atomic_load(&w1.outcome), -1); /* the other wait goes on */

    /* The other way round: A's edge first, then B's wait closes the cycle and B is told
     * over the stream. */
    wait_init(&w3);
    assert_int_equal(txn_lock_mgr_wait_for(a.lm, 30, 40, 333, 60000, on_wait, &w3), 0);
    wait_init(&w4);
    assert_int_equal(txn_lock_mgr_wait_for(b.lm, 40, 30, 444, 60000, on_wait, &w4), 0);
    assert_true(wait_until(ended, &w4));
    assert_int_equal(atomic_load(&w4.outcome), TXN_WAIT_DEADLOCK);
    assert_int_equal(atomic_load(&w4.dl_hash), 333);
    assert_int_equal(atomic_load(&w3.outcome), -1);

    /* A lists the two live edges (10 -> 20 from B, 30 -> 40 from A); B refuses, as TiKV's
     * followers do. */
    p.want = 2;
    assert_true(wait_until(has_entries, &p));
    assert_int_equal(entries(cl, &b), -1);

    /* Released locks clean their edges up everywhere. */
    txn_lock_mgr_wake_up(b.lm, 20, (uint64_t[]){111}, 1, 5, true);
    txn_lock_mgr_wake_up(a.lm, 40, (uint64_t[]){333}, 1, 6, true);
    assert_true(wait_until(ended, &w1));
    assert_true(wait_until(ended, &w3));
    assert_int_equal(atomic_load(&w1.outcome), TXN_WAIT_WOKEN);
    p.want = 0;
    assert_true(wait_until(has_entries, &p));

    rpc_client_free(cl);
    store_close(&b);
    store_close(&a);
}

static void test_leader_change_moves_detection(void **state)
{
    (void)state;
    store a, b;
    store_open(&a);
    store_open(&b);
    set_view(&a, true, NULL);
    set_view(&b, false, &a);
    /* B takes over: A now sends to B, and B detects with its own graph. */
    set_view(&b, true, NULL);
    set_view(&a, false, &b);
    rpc_client_opts co;
    rpc_client_opts_init(&co);
    rpc_client *cl;
    assert_int_equal(rpc_client_new(&co, &cl), 0);
    probe p = {cl, &b, 0};
    assert_true(wait_until(has_entries, &p)); /* B serves the detector now */
    wait w1, w2;
    p.want = 1;
    wait_until_edge_lands(&a, &p, 1, 2, 7, &w1);
    wait_init(&w2);
    assert_int_equal(txn_lock_mgr_wait_for(b.lm, 2, 1, 8, 60000, on_wait, &w2), 0);
    assert_true(wait_until(ended, &w2));
    assert_int_equal(atomic_load(&w2.outcome), TXN_WAIT_DEADLOCK);
    assert_int_equal(atomic_load(&w2.dl_hash), 7);
    assert_int_equal(entries(cl, &a), -1);
    rpc_client_free(cl);
    store_close(&a);
    store_close(&b);
}

int main(void)
{
    rpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cycle_across_two_stores_is_found_by_the_leader),
        cmocka_unit_test(test_leader_change_moves_detection),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rpc_shutdown();
    tkv_metrics_reset();
    return rc;
}
