/*
 * test_raft_read.c: linearizable reads through ReadIndex (Raft thesis 6.4) and the leader
 * lease (6.4.1).
 */
#include "raft_tests.h"

static void tweak_lease(raft_config *cfg, void *arg)
{
    (void)arg;
    cfg->check_quorum = true;
    cfg->pre_vote = true;
    cfg->read_only_option = RAFT_READ_ONLY_LEASE_BASED;
}

static void read_at(tn_net *net, uint64_t id, char tag, int want_rc)
{
    assert_int_equal(raft_node_read_index(tn_r(net, id), &tag, 1), want_rc);
    tn_flush(net);
}

/* Thesis 6.4: the leader answers a read with its commit index only after a heartbeat round
 * acknowledged by a majority confirms it still leads. */
static void test_read_index_needs_heartbeat_quorum(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    assert_int_equal(tn_propose(net, 1, "w"), 0);
    read_at(net, 1, 'a', 0);
    assert_int_equal(net->nodes[1].n_reads, 1);
    assert_int_equal(net->nodes[1].read_ctx[0], 'a');
    raft_status st;
    raft_node_status(tn_r(net, 1), &st);
    assert_int_equal(net->nodes[1].reads[0].index, st.hard_state.commit);
    /* Cut off from both followers: no answer. */
    tn_isolate(net, 1, true);
    read_at(net, 1, 'b', 0);
    tn_tick(net, 1, 3);
    assert_int_equal(net->nodes[1].n_reads, 1);
    /* Back in touch: the next heartbeat carries the pending request and completes it. */
    tn_isolate(net, 1, false);
    tn_tick(net, 1, 1);
    assert_int_equal(net->nodes[1].n_reads, 2);
    assert_int_equal(net->nodes[1].read_ctx[1], 'b');
    tn_free(net);
}

/* Thesis 6.4 step 1: a new leader answers reads only after committing an entry of its term,
 * because until then it may not know the latest commit index. */
static void test_read_index_waits_for_commit_in_current_term(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    net->drop_type[RAFT_MSG_APPEND] = true;
    tn_campaign(net, 1);
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    read_at(net, 1, 'r', 0);
    assert_int_equal(net->nodes[1].n_reads, 0);
    net->drop_type[RAFT_MSG_APPEND] = false;
    tn_tick(net, 1, 1);
    assert_int_equal(net->nodes[1].n_reads, 1);
    raft_status st;
    raft_node_status(tn_r(net, 1), &st);
    assert_true(net->nodes[1].reads[0].index >= 1);
    assert_int_equal(net->nodes[1].reads[0].index, st.hard_state.commit);
    tn_free(net);
}

/* Follower reads: the request goes to the leader and the answer back to the follower. */
static void test_read_index_on_follower_goes_through_leader(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    assert_int_equal(tn_propose(net, 1, "w"), 0);
    read_at(net, 3, 'f', 0);
    assert_int_equal(net->nodes[3].n_reads, 1);
    assert_int_equal(net->nodes[3].read_ctx[0], 'f');
    raft_status st;
    raft_node_status(tn_r(net, 1), &st);
    assert_int_equal(net->nodes[3].reads[0].index, st.hard_state.commit);
    tn_net *lonely = tn_new(3, NULL, NULL);
    read_at(lonely, 2, 'x', TKV_EDROPPED);
    tn_free(lonely);
    tn_free(net);
}

/* Thesis 6.4.1: while the lease holds, the leader answers at once, without a round; when
 * it runs out (no acknowledgements for an election timeout) it needs a round again. */
static void test_lease_read_answers_without_round_until_lease_expires(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_lease, NULL);
    uint64_t l = tn_elect_by_ticks(net);
    tn_tick(net, l, 2);
    assert_true(raft_node_lease_valid(tn_r(net, l)));
    uint64_t ack = raft_node_quorum_ack_tick(tn_r(net, l));
    raft_status st;
    raft_node_status(tn_r(net, l), &st);
    assert_true(ack > 0 && ack <= st.ticks);
    tn_isolate(net, l, true);
    read_at(net, l, 'L', 0);
    assert_int_equal(net->nodes[l].n_reads, 1);
    /* The acknowledgement tick stays while nobody answers; the lease runs out before the
     * followers could elect anyone else. */
    tn_tick(net, l, 9);
    assert_false(raft_node_lease_valid(tn_r(net, l)));
    assert_int_equal(raft_node_quorum_ack_tick(tn_r(net, l)), ack);
    read_at(net, l, 'M', 0);
    assert_int_equal(net->nodes[l].n_reads, 1);
    tn_free(net);
}

/* After MsgTimeoutNow the transferee may be elected at once, past every lease: the old
 * leader's lease is void for the rest of its term. */
static void test_lease_void_once_timeout_now_sent(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_lease, NULL);
    uint64_t l = tn_elect_by_ticks(net);
    tn_tick(net, l, 2);
    assert_true(raft_node_lease_valid(tn_r(net, l)));
    uint64_t t = l == 1 ? 2 : 1;
    net->drop_type[RAFT_MSG_TIMEOUT_NOW] = true; /* the transfer itself goes nowhere */
    assert_int_equal(raft_node_transfer_leader(tn_r(net, l), t), 0);
    tn_flush(net);
    assert_int_equal(raft_node_state(tn_r(net, l)), RAFT_STATE_LEADER);
    assert_false(raft_node_lease_valid(tn_r(net, l)));
    tn_tick(net, l, 12); /* the transfer is abandoned, the lease stays void */
    assert_int_equal(raft_node_state(tn_r(net, l)), RAFT_STATE_LEADER);
    assert_false(raft_node_lease_valid(tn_r(net, l)));
    tn_free(net);
}

int raft_test_read_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_index_needs_heartbeat_quorum),
        cmocka_unit_test(test_read_index_waits_for_commit_in_current_term),
        cmocka_unit_test(test_read_index_on_follower_goes_through_leader),
        cmocka_unit_test(test_lease_read_answers_without_round_until_lease_expires),
        cmocka_unit_test(test_lease_void_once_timeout_now_sent),
    };
    return cmocka_run_group_tests_name("raft_read", tests, NULL, NULL);
}
