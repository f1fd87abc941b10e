/*
 * test_raft_membership.c: single-step membership changes and learners (Raft thesis 4.1,
 * 4.2.1), and leadership transfer (thesis 3.10).
 */
#include "raft_tests.h"

static int change(tn_net *net, uint64_t at, raft_conf_change_type t, uint64_t id)
{
    raft_conf_change cc = {t, id, {NULL, 0}};
    int rc = raft_node_propose_conf_change(tn_r(net, at), &cc);
    tn_flush(net);
    return rc;
}

/* Thesis 4.2.1: a learner receives the log but neither votes nor counts toward commit. */
static void test_learner_replicates_but_neither_votes_nor_counts(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    assert_int_equal(tn_propose(net, 1, "early"), 0);
    tn_add(net, 4, NULL);
    assert_int_equal(change(net, 1, RAFT_CONF_ADD_LEARNER_NODE, 4), 0);
    assert_int_equal(net->nodes[1].conf.n_learners, 1);
    tn_tick(net, 1, 1);
    assert_int_equal(tn_applied_count(net, 4, "early"), 1);
    assert_int_equal(net->nodes[4].conf.n_learners, 1);
    assert_int_equal(net->nodes[4].conf.learners[0], 4);
    /* It never campaigns. */
    tn_isolate(net, 4, true);
    tn_tick(net, 4, 50);
    assert_int_equal(raft_node_state(tn_r(net, 4)), RAFT_STATE_FOLLOWER);
    tn_isolate(net, 4, false);
    /* The leader and the learner are not a quorum of three voters. */
    tn_isolate(net, 2, true);
    tn_isolate(net, 3, true);
    tn_cut(net, 1, 4, false);
    assert_int_equal(tn_propose(net, 1, "needs-voters"), 0);
    assert_int_equal(tn_applied_count(net, 1, "needs-voters"), 0);
    tn_free(net);
}

/* Thesis 4.2.1: a caught-up learner is promoted with AddNode and then counts in the quorum. */
static void test_promoted_learner_counts_in_quorum(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    tn_add(net, 4, NULL);
    assert_int_equal(change(net, 1, RAFT_CONF_ADD_LEARNER_NODE, 4), 0);
    tn_tick(net, 1, 1);
    assert_int_equal(change(net, 1, RAFT_CONF_ADD_NODE, 4), 0);
    assert_int_equal(net->nodes[1].conf.n_voters, 4);
    assert_int_equal(net->nodes[4].conf.n_voters, 4);
    /* Four voters: the leader, 3 and 4 are a quorum without 2. */
    tn_isolate(net, 2, true);
    assert_int_equal(tn_propose(net, 1, "three-of-four"), 0);
    assert_int_equal(tn_applied_count(net, 4, "three-of-four"), 1);
    /* ... but the leader and 4 alone are not. */
    tn_isolate(net, 3, true);
    assert_int_equal(tn_propose(net, 1, "two-of-four"), 0);
    assert_int_equal(tn_applied_count(net, 1, "two-of-four"), 0);
    tn_free(net);
}

/* Thesis 4.1: removing a member shrinks the majority once the change is applied. */
static void test_removing_member_shrinks_quorum(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    assert_int_equal(change(net, 1, RAFT_CONF_REMOVE_NODE, 3), 0);
    assert_int_equal(net->nodes[1].conf.n_voters, 2);
    tn_isolate(net, 3, true);
    assert_int_equal(tn_propose(net, 1, "two-of-two"), 0);
    assert_int_equal(tn_applied_count(net, 2, "two-of-two"), 1);
    tn_free(net);
}

/* Thesis 4.1: the leader accepts one membership change at a time. */
static void test_second_conf_change_refused_while_first_pending(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    tn_isolate(net, 1, true); /* the first change cannot commit */
    tn_add(net, 4, NULL);
    tn_add(net, 5, NULL);
    assert_int_equal(change(net, 1, RAFT_CONF_ADD_LEARNER_NODE, 4), 0);
    assert_int_equal(change(net, 1, RAFT_CONF_ADD_LEARNER_NODE, 5), TKV_EBUSY);
    tn_isolate(net, 1, false);
    tn_tick(net, 1, 1);
    assert_int_equal(net->nodes[1].conf.n_learners, 1);
    assert_int_equal(change(net, 1, RAFT_CONF_ADD_LEARNER_NODE, 5), 0);
    assert_int_equal(net->nodes[1].conf.n_learners, 2);
    tn_free(net);
}

/* A new leader does not know whether an earlier term left a change unapplied: it accepts
 * none until it has applied everything up to its election. */
static void test_new_leader_accepts_conf_change_after_applying_its_log(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    uint64_t terms[] = {1, 1, 1};
    for (uint64_t id = 1; id <= 3; id++)
        tn_write_log(net, id, terms, 3, 1);
    net->drop_type[RAFT_MSG_APPEND] = true;
    tn_campaign(net, 1);
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    tn_add(net, 4, NULL);
    assert_int_equal(change(net, 1, RAFT_CONF_ADD_LEARNER_NODE, 4), TKV_EBUSY);
    net->drop_type[RAFT_MSG_APPEND] = false;
    tn_tick(net, 1, 1);
    assert_int_equal(change(net, 1, RAFT_CONF_ADD_LEARNER_NODE, 4), 0);
    tn_free(net);
}

/* A leader that applies its own removal steps down; the rest elect a new leader. */
static void test_removed_leader_steps_down(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    assert_int_equal(change(net, 1, RAFT_CONF_REMOVE_NODE, 1), 0);
    assert_int_not_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    tn_isolate(net, 1, true);
    tn_campaign(net, 2);
    assert_int_equal(raft_node_state(tn_r(net, 2)), RAFT_STATE_LEADER);
    assert_int_equal(tn_propose(net, 2, "after"), 0);
    assert_int_equal(tn_applied_count(net, 3, "after"), 1);
    assert_int_equal(tn_propose(net, 1, "from-removed"), TKV_EDROPPED);
    tn_free(net);
}

/* Thesis 3.10: leadership goes to a follower that lags behind: the leader first brings its
 * log up to date, then tells it to campaign at once (MsgTimeoutNow). */
static void test_transfer_leadership_to_lagging_follower(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    tn_isolate(net, 3, true);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tn_propose(net, 1, "behind"), 0);
    tn_isolate(net, 3, false);
    raft_status st1, st3;
    raft_node_status(tn_r(net, 1), &st1);
    raft_node_status(tn_r(net, 3), &st3);
    assert_true(st3.last_index < st1.last_index); /* lagging */
    uint64_t term = raft_node_term(tn_r(net, 1));
    assert_int_equal(raft_node_transfer_leader(tn_r(net, 1), 3), 0);
    tn_flush(net);
    assert_true(tn_traced(net, "transferee 3 caught up, sending MsgTimeoutNow"));
    assert_int_equal(net->delivered[RAFT_MSG_TIMEOUT_NOW], 1);
    assert_int_equal(raft_node_state(tn_r(net, 3)), RAFT_STATE_LEADER);
    assert_int_equal(raft_node_term(tn_r(net, 3)), term + 1);
    assert_int_equal(raft_node_leader(tn_r(net, 1)), 3);
    assert_int_equal(tn_applied_count(net, 3, "behind"), 5);
    assert_int_equal(tn_propose(net, 3, "new-leader"), 0);
    assert_int_equal(tn_applied_count(net, 1, "new-leader"), 1);
    tn_free(net);
}

static void tweak_cq(raft_config *cfg, void *arg)
{
    (void)arg;
    cfg->check_quorum = true;
    cfg->pre_vote = true;
}

/* The transfer campaign passes followers' leases (they know the leader wants it). */
static void test_transfer_works_with_check_quorum_and_pre_vote(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_cq, NULL);
    uint64_t l = tn_elect_by_ticks(net);
    uint64_t t = l == 3 ? 1 : 3;
    assert_int_equal(raft_node_transfer_leader(tn_r(net, l), t), 0);
    tn_flush(net);
    assert_int_equal(raft_node_state(tn_r(net, t)), RAFT_STATE_LEADER);
    tn_free(net);
}

/* Thesis 3.10: during a transfer the leader takes no proposals; a transfer that does not
 * finish within an election timeout is abandoned. */
static void test_stuck_transfer_blocks_proposals_then_is_abandoned(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    tn_isolate(net, 3, true);
    assert_int_equal(raft_node_transfer_leader(tn_r(net, 1), 3), 0);
    tn_flush(net);
    assert_int_equal(tn_propose(net, 1, "during"), TKV_EDROPPED);
    tn_tick(net, 1, 10);
    raft_status st;
    raft_node_status(tn_r(net, 1), &st);
    assert_int_equal(st.lead_transferee, RAFT_NONE);
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    assert_int_equal(tn_propose(net, 1, "after"), 0);
    assert_int_equal(tn_applied_count(net, 2, "after"), 1);
    /* Transfers to learners and non-members are ignored. */
    tn_add(net, 4, NULL);
    assert_int_equal(change(net, 1, RAFT_CONF_ADD_LEARNER_NODE, 4), 0);
    assert_int_equal(raft_node_transfer_leader(tn_r(net, 1), 4), 0);
    assert_int_equal(raft_node_transfer_leader(tn_r(net, 1), 7), 0);
    raft_node_status(tn_r(net, 1), &st);
    assert_int_equal(st.lead_transferee, RAFT_NONE);
    /* A follower can only ask for itself. */
    assert_int_equal(raft_node_transfer_leader(tn_r(net, 2), 4), TKV_ENOTLEADER);
    tn_flush(net);
    tn_free(net);
}

int raft_test_membership_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learner_replicates_but_neither_votes_nor_counts),
        cmocka_unit_test(test_promoted_learner_counts_in_quorum),
        cmocka_unit_test(test_removing_member_shrinks_quorum),
        cmocka_unit_test(test_second_conf_change_refused_while_first_pending),
        cmocka_unit_test(test_new_leader_accepts_conf_change_after_applying_its_log),
        cmocka_unit_test(test_removed_leader_steps_down),
        cmocka_unit_test(test_transfer_leadership_to_lagging_follower),
        cmocka_unit_test(test_transfer_works_with_check_quorum_and_pre_vote),
        cmocka_unit_test(test_stuck_transfer_blocks_proposals_then_is_abandoned),
    };
    return cmocka_run_group_tests_name("raft_membership", tests, NULL, NULL);
}
