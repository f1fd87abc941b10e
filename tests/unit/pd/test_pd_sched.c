/*
 * test_pd_sched.c: operators from every checker and scheduler, fed with synthetic cluster
 * state: replica repair (make up, learner catching up, down and offline stores, extra
 * replicas, orphan learners, location labels), balance-region and balance-leader
 * convergence, scatter, SplitRegions, and the operator lifecycle (timeout, stale cancel,
 * admin replace). A small simulator plays the stores: it applies every command PD sends
 * and heartbeats the result, so whole schedules run to their end deterministically.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pd_testutil.h"

typedef struct sim {
    pdt_cluster t;
    pdt_region regs[64];
    size_t nregs;
    bool dead[32]; /* by store id: sends no heartbeats */
    size_t processed;
    size_t adds_on[32]; /* learners added per store, over the whole run */
    size_t transfers;
    size_t removes;
    size_t applied; /* commands applied, over the whole run */
} sim;

static sim *sim_new(const pd_sched_cfg *cfg)
{
    sim *s = tkv_calloc(1, sizeof(*s));
    assert_non_null(s);
    pdt_open(&s->t, cfg);
    return s;
}

static void sim_free(sim *s)
{
    pdt_close(&s->t);
    tkv_free(s);
}

static pdt_region *sim_find(sim *s, uint64_t id)
{
    for (size_t i = 0; i < s->nregs; i++)
        if (s->regs[i].id == id)
            return &s->regs[i];
    return NULL;
}

/* A region whose leader store died elects a live voter (as Raft would). */
static void fix_leader(sim *s, pdt_region *r)
{
    if (!s->dead[r->leader_store])
        return;
    for (size_t i = 0; i < r->n; i++) {
        if (!r->learner[i] && !s->dead[r->stores[i]]) {
            r->leader_store = r->stores[i];
            return;
        }
    }
}

static void sim_hb_regions(sim *s)
{
    for (size_t i = 0; i < s->nregs; i++) {
        fix_leader(s, &s->regs[i]);
        assert_int_equal(pdt_region_hb(&s->t, &s->regs[i]), 0);
    }
}

static void sim_drain(sim *s)
{
    while (s->processed < s->t.ncmds) {
        pdt_cmd cmd = s->t.cmds[s->processed++];
        pdt_region *r = sim_find(s, cmd.region_id);
        if (r == NULL || cmd.store_id != r->leader_store)
            continue;
        if (!pdt_apply(r, &cmd))
            continue;
        s->applied++;
        if (cmd.kind == PDT_TRANSFER)
            s->transfers++;
        else if (cmd.change_type == ERAFTPB__CONF_CHANGE_TYPE__AddLearnerNode)
            s->adds_on[cmd.peer_store]++;
        else if (cmd.change_type == ERAFTPB__CONF_CHANGE_TYPE__RemoveNode)
            s->removes++;
        assert_int_equal(pdt_region_hb(&s->t, r), 0);
    }
    pdt_clear_cmds(&s->t);
    s->processed = 0;
}

/* Runs rounds (200 ms of fake time each) until two rounds in a row apply no command and end
 * with no operator.
 * Returns the number of rounds. */
static int sim_run(sim *s, int max_rounds)
{
    int quiet = 0;
    for (int round = 1; round <= max_rounds; round++) {
        s->t.now += 200;
        size_t applied = s->applied;
        pd__cluster_lock(s->t.c);
        uint64_t ids[32];
        size_t n = 0;
        for (size_t i = 0; i < s->t.c->nstores; i++) {
            uint64_t id = s->t.c->stores[i]->meta->id;
            if (id < 32 && !s->dead[id] &&
                s->t.c->stores[i]->meta->state != METAPB__STORE_STATE__Tombstone)
                ids[n++] = id;
        }
        pd__cluster_unlock(s->t.c);
        for (size_t i = 0; i < n; i++)
            pdt_store_hb(&s->t, ids[i]);
        pd__coordinator_tick(s->t.c);
        sim_drain(s);
        sim_hb_regions(s);
        sim_drain(s);
        pd__cluster_lock(s->t.c);
        size_t ops = s->t.c->ops.len;
        pd__cluster_unlock(s->t.c);
        quiet = (ops == 0 && applied == s->applied) ? quiet + 1 : 0;
        if (quiet == 2)
            return round;
    }
    fail_msg("schedule did not settle in %d rounds", max_rounds);
    return max_rounds;
}

/* Bootstraps store 1 with region 2 (peer 3) and registers stores 2..@nstores. */
static void sim_boot(sim *s, uint64_t nstores)
{
    pdt_bootstrap(&s->t, 1, 2, 3);
    for (uint64_t i = 2; i <= nstores; i++)
        pdt_put_store(&s->t, i, NULL);
    pdt_store_hb_all(&s->t);
    pdt_region_get(&s->t, 2, &s->regs[0]);
    s->regs[0].leader_store = 1;
    s->nregs = 1;
    assert_int_equal(pdt_region_hb(&s->t, &s->regs[0]), 0);
}

/* Adds a 3-replica region with the given id, range, stores and leader to the simulation. */
static void sim_add_region(sim *s, uint64_t id, const char *start, const char *end,
                           const uint64_t stores[3], uint64_t leader)
{
    pdt_region *r = &s->regs[s->nregs++];
    memset(r, 0, sizeof(*r));
    r->id = id;
    snprintf(r->start, sizeof(r->start), "%s", start);
    snprintf(r->end, sizeof(r->end), "%s", end);
    r->version = 5;
    r->conf_ver = 5;
    r->n = 3;
    for (size_t i = 0; i < 3; i++) {
        r->peer_ids[i] = id * 1000 + i;
        r->stores[i] = stores[i];
    }
    r->leader_store = leader;
    assert_int_equal(pdt_region_hb(&s->t, r), 0);
}

/* Splits the key space into @n regions ids 1000.., all on stores 1,2,3. */
static void sim_regions_on_123(sim *s, size_t n, bool leaders_on_1)
{
    pdt_bootstrap(&s->t, 1, 2, 3);
    pdt_put_store(&s->t, 2, NULL);
    pdt_put_store(&s->t, 3, NULL);
    pdt_store_hb_all(&s->t);
    const uint64_t st[3] = {1, 2, 3};
    for (size_t i = 0; i < n; i++) {
        char a[16], b[16];
        snprintf(a, sizeof(a), i == 0 ? "" : "k%03zu", i);
        snprintf(b, sizeof(b), i == n - 1 ? "" : "k%03zu", i + 1);
        sim_add_region(s, 1000 + i, a, b, st, leaders_on_1 ? 1 : (uint64_t)(i % 3) + 1);
    }
    assert_int_equal(pd__rt_count(&s->t.c->regions), n);
}

static uint64_t count_of(sim *s, uint64_t store, bool leaders)
{
    pd__cluster_lock(s->t.c);
    pd_store *st = pd__cluster_store_locked(s->t.c, store);
    uint64_t v = leaders ? st->leader_count : st->region_count;
    pd__cluster_unlock(s->t.c);
    return v;
}

static const pd_op_record *record_of(sim *s, uint64_t region)
{
    return pd__map_get(&s->t.c->records, region);
}

/* ---- replica checker ------------------------------------------------------------------- */

static void test_make_up_replica_adds_a_learner_then_promotes_it(void **state)
{
    (void)state;
    sim *s = sim_new(NULL);
    sim_boot(s, 3);
    pd__coordinator_tick(s->t.c);
    pd_operator *op = pdt_op(&s->t, 2);
    assert_non_null(op);
    assert_string_equal(op->desc, "make-up-replica");
    assert_int_equal(op->nsteps, 2);
    assert_int_equal(op->steps[0].type, PD_STEP_ADD_LEARNER);
    assert_int_equal(op->steps[0].store_id, 2);
    assert_int_equal(op->steps[1].type, PD_STEP_PROMOTE_LEARNER);
    /* The first step went out at once, to the leader's store. */
    assert_int_equal(s->t.ncmds, 1);
    pdt_cmd c = s->t.cmds[0];
    assert_int_equal(c.store_id, 1);
    assert_int_equal(c.region_id, 2);
    assert_int_equal(c.kind, PDT_CHANGE_PEER);
    assert_int_equal(c.change_type, ERAFTPB__CONF_CHANGE_TYPE__AddLearnerNode);
    assert_int_equal(c.peer_store, 2);
    assert_int_equal(c.peer_role, METAPB__PEER_ROLE__Learner);
    uint64_t learner_id = c.peer_id;
    /* The store applies it; the heartbeat shows the learner still pending: no resend, no
     * promotion yet. */
    pdt_clear_cmds(&s->t);
    pdt_region *r = &s->regs[0];
    assert_true(pdt_apply(r, &c));
    r->pending_peer = learner_id;
    assert_int_equal(pdt_region_hb(&s->t, r), 0);
    assert_int_equal(s->t.ncmds, 0);
    /* Caught up: the promotion goes out. */
    r->pending_peer = 0;
    assert_int_equal(pdt_region_hb(&s->t, r), 0);
    assert_int_equal(s->t.ncmds, 1);
    assert_int_equal(s->t.cmds[0].change_type, ERAFTPB__CONF_CHANGE_TYPE__AddNode);
    assert_int_equal(s->t.cmds[0].peer_id, learner_id);
    assert_int_equal(s->t.cmds[0].peer_role, METAPB__PEER_ROLE__Voter);
    sim_drain(s);
    assert_null(pdt_op(&s->t, 2));
    assert_int_equal(record_of(s, 2)->status, PDPB__OPERATOR_STATUS__SUCCESS);
    /* The third replica follows. */
    sim_run(s, 50);
    assert_int_equal(r->n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_false(r->learner[i]);
    assert_int_equal(r->conf_ver, 1 + 4);
    for (uint64_t st = 1; st <= 3; st++)
        assert_int_equal(count_of(s, st, false), 1);
    sim_free(s);
}

static void test_down_store_peers_are_replaced_on_a_live_store(void **state)
{
    (void)state;
    pd_sched_cfg cfg;
    pd__sched_cfg_default(&cfg);
    cfg.max_store_down_time_ms = 5000;
    cfg.region_schedule_limit = 0; /* isolate the replica checker */
    cfg.leader_schedule_limit = 0;
    sim *s = sim_new(&cfg);
    sim_regions_on_123(s, 4, false);
    pdt_put_store(&s->t, 4, NULL);
    sim_run(s, 5);
    assert_int_equal(count_of(s, 4, false), 0);
    /* Store 3 dies; store 1 leads some regions it had. */
    s->dead[3] = true;
    s->t.now += 6000;
    sim_run(s, 200);
    assert_int_equal(count_of(s, 3, false), 0);
    assert_int_equal(count_of(s, 4, false), 4);
    for (size_t i = 0; i < s->nregs; i++) {
        assert_int_equal(s->regs[i].n, 3);
        assert_true(s->regs[i].leader_store != 3);
    }
    const pd_op_record *rec = record_of(s, 1000);
    assert_non_null(rec);
    assert_string_equal(rec->desc, "replace-down-replica");
    assert_int_equal(rec->status, PDPB__OPERATOR_STATUS__SUCCESS);
    sim_free(s);
}

static void test_offline_store_is_drained_and_becomes_tombstone(void **state)
{
    (void)state;
    pd_sched_cfg cfg;
    pd__sched_cfg_default(&cfg);
    cfg.region_schedule_limit = 0;
    cfg.leader_schedule_limit = 0;
    sim *s = sim_new(&cfg);
    sim_regions_on_123(s, 3, false); /* store 3 leads region 1002 */
    pdt_put_store(&s->t, 4, NULL);
    pd_result res;
    assert_int_equal(
        pd__cluster_set_store_state(s->t.c, 3, METAPB__STORE_STATE__Offline, false, &res), 0);
    sim_run(s, 200);
    assert_int_equal(count_of(s, 3, false), 0);
    assert_int_equal(pd__cluster_store_locked(s->t.c, 3)->meta->state,
                     METAPB__STORE_STATE__Tombstone);
    assert_true(s->transfers >= 1); /* the leader left store 3 before its peer was removed */
    assert_string_equal(record_of(s, 1002)->desc, "replace-offline-replica");
    sim_free(s);
}

static void test_extra_replica_removal_moves_the_leader_first(void **state)
{
    (void)state;
    pd_sched_cfg cfg;
    pd__sched_cfg_default(&cfg);
    cfg.region_schedule_limit = 0;
    cfg.leader_schedule_limit = 0;
    sim *s = sim_new(&cfg);
    sim_boot(s, 4);
    pdt_region *r = &s->regs[0];
    r->n = 4;
    for (size_t i = 0; i < 4; i++) {
        r->peer_ids[i] = 3 + i;
        r->stores[i] = i + 1;
    }
    r->conf_ver = 7;
    r->leader_store = 4;
    assert_int_equal(pdt_region_hb(&s->t, r), 0);
    pdt_clear_cmds(&s->t);
    pd__coordinator_tick(s->t.c);
    pd_operator *op = pdt_op(&s->t, 2);
    assert_non_null(op);
    assert_string_equal(op->desc, "remove-extra-replica");
    /* Equal counts and no labels: the highest store id goes, and it leads. */
    assert_int_equal(op->nsteps, 2);
    assert_int_equal(op->steps[0].type, PD_STEP_TRANSFER_LEADER);
    assert_int_equal(op->steps[1].type, PD_STEP_REMOVE_PEER);
    assert_int_equal(op->steps[1].store_id, 4);
    sim_run(s, 20);
    assert_int_equal(r->n, 3);
    assert_null(pd__region_store_peer(pd__rt_get(&s->t.c->regions, 2), 4));
    sim_free(s);
}

static void test_orphan_learner_is_promoted_when_a_voter_is_missing(void **state)
{
    (void)state;
    sim *s = sim_new(NULL);
    sim_boot(s, 3);
    pdt_region *r = &s->regs[0];
    r->n = 2;
    r->peer_ids[1] = 50;
    r->stores[1] = 2;
    r->learner[1] = true;
    r->conf_ver = 2;
    assert_int_equal(pdt_region_hb(&s->t, r), 0);
    pdt_clear_cmds(&s->t);
    pd__coordinator_tick(s->t.c);
    pd_operator *op = pdt_op(&s->t, 2);
    assert_non_null(op);
    assert_string_equal(op->desc, "promote-learner");
    assert_int_equal(s->t.cmds[0].change_type, ERAFTPB__CONF_CHANGE_TYPE__AddNode);
    assert_int_equal(s->t.cmds[0].peer_id, 50);
    sim_free(s);
}

static void test_location_labels_prefer_an_isolated_store(void **state)
{
    (void)state;
    pd_sched_cfg cfg;
    pd__sched_cfg_default(&cfg);
    snprintf(cfg.location_labels, sizeof(cfg.location_labels), "zone,host");
    sim *s = sim_new(&cfg);
    pdt_bootstrap(&s->t, 1, 2, 3);
    pd_result res;
    /* Store 1 has no labels: give it zone z1 by re-registering. */
    pdt_put_store(&s->t, 1, "zone=z1,host=h1");
    pdt_put_store(&s->t, 2, "zone=z1,host=h2");
    pdt_put_store(&s->t, 3, "zone=z2,host=h3");
    pdt_put_store(&s->t, 4, "zone=z1,host=h4");
    (void)res;
    pdt_store_hb_all(&s->t);
    pdt_region_get(&s->t, 2, &s->regs[0]);
    s->regs[0].leader_store = 1;
    s->nregs = 1;
    assert_int_equal(pdt_region_hb(&s->t, &s->regs[0]), 0);
    pd__coordinator_tick(s->t.c);
    pd_operator *op = pdt_op(&s->t, 2);
    assert_non_null(op);
    assert_int_equal(op->steps[0].store_id, 3); /* another zone beats a lower id */
    sim_run(s, 50);
    /* The third replica: both remaining stores share zone z1 with store 1, hosts differ. */
    assert_int_equal(s->regs[0].n, 3);
    sim_free(s);
}

/* ---- balancers ------------------------------------------------------------------------- */

static void test_balance_region_gives_a_new_store_an_even_share(void **state)
{
    (void)state;
    sim *s = sim_new(NULL);
    sim_regions_on_123(s, 12, false);
    sim_run(s, 10);
    pdt_put_store(&s->t, 4, NULL);
    sim_run(s, 500);
    for (uint64_t st = 1; st <= 4; st++)
        assert_int_equal(count_of(s, st, false), 9);
    /* No thrashing: exactly the 9 moves needed, all onto the new store. */
    assert_int_equal(s->adds_on[4], 9);
    assert_int_equal(s->adds_on[1] + s->adds_on[2] + s->adds_on[3], 0);
    assert_int_equal(s->removes, 9);
    for (uint64_t st = 1; st <= 4; st++)
        assert_int_equal(count_of(s, st, true), 3);
    sim_free(s);
}

static void test_balance_leader_evens_out_leaders_with_minimal_transfers(void **state)
{
    (void)state;
    sim *s = sim_new(NULL);
    sim_regions_on_123(s, 6, true);
    assert_int_equal(count_of(s, 1, true), 6);
    sim_run(s, 100);
    for (uint64_t st = 1; st <= 3; st++)
        assert_int_equal(count_of(s, st, true), 2);
    assert_int_equal(s->transfers, 4);
    const pd_op_record *rec = NULL;
    for (size_t i = 0; i < s->nregs && rec == NULL; i++)
        rec = record_of(s, s->regs[i].id);
    assert_non_null(rec);
    assert_string_equal(rec->desc, "balance-leader");
    sim_free(s);
}

/* ---- scatter ----------------------------------------------------------------------------- */

static void test_scatter_spreads_peers_and_leaders_of_a_group(void **state)
{
    (void)state;
    pd_sched_cfg cfg;
    pd__sched_cfg_default(&cfg);
    cfg.region_schedule_limit = 0;
    cfg.leader_schedule_limit = 0;
    sim *s = sim_new(&cfg);
    sim_regions_on_123(s, 6, true);
    for (uint64_t st = 4; st <= 6; st++)
        pdt_put_store(&s->t, st, NULL);
    pdt_store_hb_all(&s->t);
    for (size_t i = 0; i < s->nregs; i++) {
        pd__cluster_lock(s->t.c);
        pd_operator *op = NULL;
        int rc = pd__scatter_locked(s->t.c, pd__rt_get(&s->t.c->regions, s->regs[i].id), "t1", &op);
        assert_int_equal(rc, 0);
        if (op != NULL)
            assert_int_equal(pd__opc_add_locked(s->t.c, op), 0);
        pd__cluster_unlock(s->t.c);
    }
    sim_drain(s);
    sim_run(s, 200);
    for (uint64_t st = 1; st <= 6; st++) {
        assert_int_equal(count_of(s, st, false), 3);
        assert_int_equal(count_of(s, st, true), 1);
    }
    sim_free(s);
}

/* ---- operator lifecycle ---------------------------------------------------------------- */

static void test_operators_time_out_go_stale_and_yield_to_admin(void **state)
{
    (void)state;
    sim *s = sim_new(NULL);
    sim_boot(s, 3);
    pd__coordinator_tick(s->t.c);
    assert_non_null(pdt_op(&s->t, 2));
    /* Nobody executes it: after slow-operator-timeout it is dropped. */
    s->t.now += s->t.c->cfg.slow_operator_timeout_ms + 1;
    pdt_store_hb_all(&s->t);
    pd__cluster_lock(s->t.c);
    pd__opc_check_timeouts_locked(s->t.c);
    pd__cluster_unlock(s->t.c);
    assert_null(pdt_op(&s->t, 2));
    assert_int_equal(record_of(s, 2)->status, PDPB__OPERATOR_STATUS__TIMEOUT);
    /* A new one; then somebody else changes the region twice: stale, cancelled. */
    pd__coordinator_tick(s->t.c);
    assert_non_null(pdt_op(&s->t, 2));
    s->regs[0].conf_ver += 2;
    assert_int_equal(pdt_region_hb(&s->t, &s->regs[0]), 0);
    assert_null(pdt_op(&s->t, 2));
    assert_int_equal(record_of(s, 2)->status, PDPB__OPERATOR_STATUS__CANCEL);
    /* An admin operator replaces a scheduler's, not the other way round. */
    pd__coordinator_tick(s->t.c);
    pd_operator *old = pdt_op(&s->t, 2);
    assert_non_null(old);
    pd__cluster_lock(s->t.c);
    pd_region *r = pd__rt_get(&s->t.c->regions, 2);
    pd_operator *admin;
    assert_int_equal(pd__op_new(r, "admin-split-region", PD_OPK_ADMIN | PD_OPK_SPLIT, &admin), 0);
    tkv_slice k = tkv_slice_str("m");
    assert_int_equal(pd__op_set_split(admin, PDPB__CHECK_POLICY__USEKEY, &k, 1), 0);
    assert_int_equal(pd__opc_add_locked(s->t.c, admin), 0);
    pd_operator *again;
    assert_int_equal(pd__op_new(r, "make-up-replica", PD_OPK_REPLICA, &again), 0);
    assert_int_equal(pd__op_add_step(again, PD_STEP_ADD_LEARNER, 3, 99), 0);
    assert_int_equal(pd__opc_add_locked(s->t.c, again), TKV_EEXIST);
    pd__op_free(again);
    pd__cluster_unlock(s->t.c);
    assert_int_equal(record_of(s, 2)->status, PDPB__OPERATOR_STATUS__REPLACE);
    assert_ptr_equal(pdt_op(&s->t, 2), admin);
    pdt_cmd last = s->t.cmds[s->t.ncmds - 1];
    assert_int_equal(last.kind, PDT_SPLIT);
    assert_int_equal(last.nsplit_keys, 1);
    assert_int_equal(last.split_policy, PDPB__CHECK_POLICY__USEKEY);
    sim_free(s);
}

/* ---- SplitRegions -------------------------------------------------------------------------- */

typedef struct split_result {
    int calls;
    uint64_t pct;
    uint64_t ids[8];
    size_t n;
} split_result;

static void on_split(void *ud, uint64_t pct, const uint64_t *ids, size_t n)
{
    split_result *r = ud;
    r->calls++;
    r->pct = pct;
    r->n = n < 8 ? n : 8;
    memcpy(r->ids, ids, r->n * sizeof(uint64_t));
}

static bool has_id(const split_result *r, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->ids[i] == id)
            return true;
    return false;
}

/* Found by fuzz_pd_grpc: a key's region was remembered when it first started one, so a region
 * replaced afterwards (here by a newer one from the same key) was still reported when the
 * waiter finished. Only regions that exist and start at their key are reported. */
static void test_split_regions_reports_only_regions_that_still_exist(void **state)
{
    (void)state;
    pd_sched_cfg cfg;
    pd__sched_cfg_default(&cfg);
    cfg.replica_schedule_limit = 0;
    sim *s = sim_new(&cfg);
    sim_boot(s, 1);
    split_result res = {0};
    tkv_slice keys[] = {tkv_slice_str("b"), tkv_slice_str("x")};
    pd_split_waiter *w;
    assert_int_equal(pd__cluster_split_regions(s->t.c, keys, 2, 1000, on_split, &res, &w), 0);
    assert_non_null(w);
    /* "b" starts region 11; the waiter still waits for "x". */
    pdt_region l = s->regs[0], m = s->regs[0];
    l.id = 10;
    l.peer_ids[0] = 100;
    snprintf(l.end, sizeof(l.end), "b");
    snprintf(m.start, sizeof(m.start), "b");
    m.id = 11;
    m.peer_ids[0] = 110;
    l.version = m.version = 3;
    assert_int_equal(pdt_region_hb(&s->t, &l), 0);
    assert_int_equal(pdt_region_hb(&s->t, &m), 0);
    pd__coordinator_tick(s->t.c);
    assert_int_equal(res.calls, 0);
    /* Region 12, newer, replaces region 11 from "b" on. */
    m.id = 12;
    m.peer_ids[0] = 120;
    m.version = 5;
    assert_int_equal(pdt_region_hb(&s->t, &m), 0);
    pd__cluster_lock(s->t.c);
    bool gone = pd__rt_get(&s->t.c->regions, 11) == NULL;
    pd__cluster_unlock(s->t.c);
    assert_true(gone);
    s->t.now += 1001;
    pd__coordinator_tick(s->t.c);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.pct, 50);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.ids[0], 12);
    sim_free(s);
}

static void test_split_regions_waits_for_the_split_and_returns_new_region_ids(void **state)
{
    (void)state;
    pd_sched_cfg cfg;
    pd__sched_cfg_default(&cfg);
    cfg.replica_schedule_limit = 0; /* a single-replica cluster for this test */
    sim *s = sim_new(&cfg);
    sim_boot(s, 1);
    pdt_clear_cmds(&s->t);
    split_result res = {0};
    tkv_slice keys[] = {tkv_slice_str("b"), tkv_slice_str("d")};
    pd_split_waiter *w;
    assert_int_equal(pd__cluster_split_regions(s->t.c, keys, 2, 60000, on_split, &res, &w), 0);
    assert_non_null(w);
    assert_int_equal(res.calls, 0);
    assert_int_equal(s->t.ncmds, 1);
    assert_int_equal(s->t.cmds[0].kind, PDT_SPLIT);
    assert_int_equal(s->t.cmds[0].nsplit_keys, 2);
    /* The store splits: new regions 10 and 11 on the left, region 2 keeps the right. */
    pdt_region l = s->regs[0], m = s->regs[0], r = s->regs[0];
    l.id = 10;
    l.peer_ids[0] = 100;
    snprintf(l.end, sizeof(l.end), "b");
    m.id = 11;
    m.peer_ids[0] = 110;
    snprintf(m.start, sizeof(m.start), "b");
    snprintf(m.end, sizeof(m.end), "d");
    snprintf(r.start, sizeof(r.start), "d");
    l.version = m.version = r.version = 3;
    assert_int_equal(pdt_region_hb(&s->t, &l), 0);
    assert_int_equal(pdt_region_hb(&s->t, &m), 0);
    assert_int_equal(pdt_region_hb(&s->t, &r), 0);
    assert_int_equal(record_of(s, 2)->status, PDPB__OPERATOR_STATUS__SUCCESS);
    pd__coordinator_tick(s->t.c);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.pct, 100);
    assert_int_equal(res.n, 2);
    assert_true(has_id(&res, 11) && has_id(&res, 2));
    /* A key that already starts a region completes at once. */
    split_result res2 = {0};
    tkv_slice k2 = tkv_slice_str("b");
    assert_int_equal(pd__cluster_split_regions(s->t.c, &k2, 1, 60000, on_split, &res2, &w), 0);
    assert_null(w);
    assert_int_equal(res2.calls, 1);
    assert_int_equal(res2.pct, 100);
    assert_true(has_id(&res2, 11));
    /* A split nobody performs times out with 0 %. */
    split_result res3 = {0};
    tkv_slice k3 = tkv_slice_str("x");
    assert_int_equal(pd__cluster_split_regions(s->t.c, &k3, 1, 1000, on_split, &res3, &w), 0);
    assert_non_null(w);
    s->t.now += 1001;
    pd__coordinator_tick(s->t.c);
    assert_int_equal(res3.calls, 1);
    assert_int_equal(res3.pct, 0);
    assert_int_equal(res3.n, 0);
    /* Cancelling a finished waiter is refused; a pending one is dropped without a call. */
    split_result res4 = {0};
    tkv_slice k4 = tkv_slice_str("y");
    assert_int_equal(pd__cluster_split_regions(s->t.c, &k4, 1, 60000, on_split, &res4, &w), 0);
    assert_non_null(w);
    assert_true(pd__cluster_split_cancel(s->t.c, &res4));
    assert_false(pd__cluster_split_cancel(s->t.c, &res4));
    assert_false(pd__cluster_split_cancel(s->t.c, &res));
    assert_int_equal(res4.calls, 0);
    sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_up_replica_adds_a_learner_then_promotes_it),
        cmocka_unit_test(test_down_store_peers_are_replaced_on_a_live_store),
        cmocka_unit_test(test_offline_store_is_drained_and_becomes_tombstone),
        cmocka_unit_test(test_extra_replica_removal_moves_the_leader_first),
        cmocka_unit_test(test_orphan_learner_is_promoted_when_a_voter_is_missing),
        cmocka_unit_test(test_location_labels_prefer_an_isolated_store),
        cmocka_unit_test(test_balance_region_gives_a_new_store_an_even_share),
        cmocka_unit_test(test_balance_leader_evens_out_leaders_with_minimal_transfers),
        cmocka_unit_test(test_scatter_spreads_peers_and_leaders_of_a_group),
        cmocka_unit_test(test_operators_time_out_go_stale_and_yield_to_admin),
        cmocka_unit_test(test_split_regions_waits_for_the_split_and_returns_new_region_ids),
        cmocka_unit_test(test_split_regions_reports_only_regions_that_still_exist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
