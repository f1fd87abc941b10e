/*
 * test_raft_election.c: terms, elections, votes, pre-vote and check-quorum
 * (Raft paper 5.1, 5.2, 5.4.1; thesis 9.6 and 6.2).
 */
#include "raft/raft_int.h"
#include "raft_tests.h"

static void tweak_prevote(raft_config *cfg, void *arg)
{
    (void)arg;
    cfg->pre_vote = true;
}

static void tweak_check_quorum(raft_config *cfg, void *arg)
{
    (void)arg;
    cfg->check_quorum = true;
}

static void tweak_both(raft_config *cfg, void *arg)
{
    (void)arg;
    cfg->check_quorum = true;
    cfg->pre_vote = true;
}

/* Returns the queued message of @type from @from, or NULL. */
static raft_message *queued(tn_net *net, raft_message_type type, uint64_t from)
{
    for (size_t i = 0; i < net->qlen; i++)
        if (net->queue[i].msg_type == type && net->queue[i].from == from)
            return &net->queue[i];
    return NULL;
}

static raft_message vote_req(uint64_t from, uint64_t to, uint64_t term, uint64_t index,
                             uint64_t log_term)
{
    raft_message m = {0};
    m.msg_type = RAFT_MSG_REQUEST_VOTE;
    m.from = from;
    m.to = to;
    m.term = term;
    m.index = index;
    m.log_term = log_term;
    return m;
}

/* Raft paper 5.2: followers that hear nothing for an election timeout elect a leader. */
static void test_leader_elected_after_election_timeout(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    uint64_t l = tn_elect_by_ticks(net);
    assert_int_not_equal(l, RAFT_NONE);
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(raft_node_leader(tn_r(net, id)), l);
        assert_int_equal(raft_node_term(tn_r(net, id)), raft_node_term(tn_r(net, l)));
        if (id != l)
            assert_int_equal(raft_node_state(tn_r(net, id)), RAFT_STATE_FOLLOWER);
    }
    tn_free(net);
}

/* Raft paper 5.2: election timeouts are drawn from [T, 2T) so that nodes rarely tie. */
static void tweak_seed(raft_config *cfg, void *arg)
{
    cfg->seed = *(uint64_t *)arg;
}

static void test_randomized_election_timeout_spans_t_to_2t(void **state)
{
    (void)state;
    bool seen[20] = {false};
    for (uint64_t seed = 1; seed <= 60; seed++) {
        tn_net *net = tn_new(3, tweak_seed, &seed);
        tn_isolate(net, 1, true);
        int ticks = 0;
        while (raft_node_state(tn_r(net, 1)) == RAFT_STATE_FOLLOWER) {
            tn_tick(net, 1, 1);
            ticks++;
            assert_true(ticks < 20);
        }
        assert_true(ticks >= 10);
        seen[ticks] = true;
        tn_free(net);
    }
    int distinct = 0;
    for (int i = 10; i < 20; i++)
        distinct += seen[i];
    assert_true(distinct >= 5);
}

/* Raft paper 5.2: each server votes for at most one candidate in a term. */
static void test_node_grants_one_vote_per_term(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    raft_message m = vote_req(2, 1, 2, 1, 1);
    tn_step(net, 1, &m);
    tn_ready(net, 1);
    raft_message *resp = queued(net, RAFT_MSG_REQUEST_VOTE_RESPONSE, 1);
    assert_non_null(resp);
    assert_false(resp->reject);
    assert_int_equal(resp->to, 2);
    assert_int_equal(resp->term, 2);
    tn_deliver(net); /* node 2 is a follower at term 1: adopts term 2, ignores the answer */
    m = vote_req(3, 1, 2, 1, 1);
    tn_step(net, 1, &m);
    tn_ready(net, 1);
    resp = queued(net, RAFT_MSG_REQUEST_VOTE_RESPONSE, 1);
    assert_non_null(resp);
    assert_true(resp->reject);
    /* The vote is durable: after a restart the node still refuses node 3. */
    tn_deliver(net);
    tn_crash(net, 1);
    tn_restart(net, 1);
    tn_step(net, 1, &m);
    tn_ready(net, 1);
    resp = queued(net, RAFT_MSG_REQUEST_VOTE_RESPONSE, 1);
    assert_non_null(resp);
    assert_true(resp->reject);
    tn_free(net);
}

/* Raft paper 5.4.1: a voter denies a candidate whose log is less up to date than its own:
 * compare the last terms first, then the lengths. */
static void test_vote_denied_to_candidate_with_stale_log(void **state)
{
    (void)state;
    struct {
        uint64_t index, log_term;
        bool granted;
    } cases[] = {
        {4, 1, false}, /* lower last term, longer log */
        {2, 2, false}, /* same last term, shorter log */
        {3, 2, true},  /* same last term, same length */
        {4, 2, true},  /* same last term, longer */
        {1, 3, true},  /* higher last term, shorter */
    };
    for (size_t i = 0; i < TKV_ARRAY_LEN(cases); i++) {
        tn_net *net = tn_new(3, NULL, NULL);
        uint64_t terms[] = {1, 2};
        tn_write_log(net, 1, terms, 2, 2);
        raft_message m = vote_req(2, 1, 3, cases[i].index, cases[i].log_term);
        tn_step(net, 1, &m);
        tn_ready(net, 1);
        raft_message *resp = queued(net, RAFT_MSG_REQUEST_VOTE_RESPONSE, 1);
        assert_non_null(resp);
        assert_int_equal(resp->reject, !cases[i].granted);
        /* Either way the candidate's newer term was adopted (5.1). */
        assert_int_equal(raft_node_term(tn_r(net, 1)), 3);
        tn_free(net);
    }
}

/* Raft paper 5.2: a candidate that hears from a leader of its term becomes a follower. */
static void test_candidate_follows_leader_of_same_term(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_isolate(net, 2, true);
    tn_campaign(net, 2); /* candidate at term 2, cut off */
    assert_int_equal(raft_node_state(tn_r(net, 2)), RAFT_STATE_CANDIDATE);
    tn_campaign(net, 1); /* node 1 wins term 2 with node 3 */
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    assert_int_equal(raft_node_term(tn_r(net, 1)), 2);
    tn_isolate(net, 2, false);
    assert_int_equal(tn_propose(net, 1, "a"), 0);
    tn_tick(net, 1, 1); /* the probe to 2 was lost: the heartbeat answer resumes it */
    assert_int_equal(raft_node_state(tn_r(net, 2)), RAFT_STATE_FOLLOWER);
    assert_int_equal(raft_node_leader(tn_r(net, 2)), 1);
    assert_int_equal(tn_applied_count(net, 2, "a"), 1);
    tn_free(net);
}

/* Raft paper 5.1: a server that sees a newer term steps down; older terms are ignored. */
static void test_newer_term_deposes_leader_and_older_term_is_ignored(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    raft_message stale = {0};
    stale.msg_type = RAFT_MSG_APPEND;
    stale.from = 2;
    stale.to = 1;
    stale.term = 2;
    raft_message newer = {0};
    newer.msg_type = RAFT_MSG_HEARTBEAT;
    newer.from = 3;
    newer.to = 1;
    newer.term = 5;
    tn_step(net, 1, &newer);
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_FOLLOWER);
    assert_int_equal(raft_node_term(tn_r(net, 1)), 5);
    assert_int_equal(raft_node_leader(tn_r(net, 1)), 3);
    /* A term-1 append is stale now: no change, no answer (check_quorum and pre_vote off). */
    tn_step(net, 1, &stale);
    assert_int_equal(raft_node_term(tn_r(net, 1)), 5);
    assert_int_equal(raft_node_leader(tn_r(net, 1)), 3);
    tn_ready(net, 1);
    assert_null(queued(net, RAFT_MSG_APPEND_RESPONSE, 1));
    tn_flush(net);
    tn_free(net);
}

/* Raft paper 5.2: a candidate that a majority rejects does not become leader. */
static void test_candidate_rejected_by_majority_steps_down(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    uint64_t longer[] = {1, 1};
    tn_write_log(net, 2, longer, 2, 1);
    tn_write_log(net, 3, longer, 2, 1);
    tn_campaign(net, 1); /* node 1 has an empty log */
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_FOLLOWER);
    assert_int_equal(raft_node_term(tn_r(net, 1)), 2);
    assert_int_equal(tn_leader(net), RAFT_NONE);
    tn_free(net);
}

/* A group with a single voter elects itself and commits on its own durable log. */
static void test_single_voter_elects_itself_and_commits(void **state)
{
    (void)state;
    tn_net *net = tn_new(1, NULL, NULL);
    tn_campaign(net, 1);
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    assert_int_equal(tn_propose(net, 1, "solo"), 0);
    assert_int_equal(tn_applied_count(net, 1, "solo"), 1);
    tn_free(net);
}

/* Thesis 9.6: with pre-vote, a node cut off from the cluster does not raise its term, so on
 * its return it does not depose the leader. */
static void test_prevote_keeps_partitioned_node_from_disrupting_on_return(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_prevote, NULL);
    tn_campaign(net, 1);
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    uint64_t term = raft_node_term(tn_r(net, 1));
    tn_isolate(net, 3, true);
    assert_int_equal(tn_propose(net, 1, "while-away"), 0);
    tn_tick(net, 3, 100); /* many election timeouts alone */
    assert_int_equal(raft_node_term(tn_r(net, 3)), term);
    assert_int_equal(raft_node_state(tn_r(net, 3)), RAFT_STATE_PRE_CANDIDATE);
    tn_isolate(net, 3, false);
    tn_tick(net, 3, 30); /* it campaigns again, now reaching the others */
    tn_tick(net, 1, 1);  /* and the leader's heartbeat reaches it */
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    assert_int_equal(raft_node_term(tn_r(net, 1)), term);
    assert_int_equal(raft_node_state(tn_r(net, 3)), RAFT_STATE_FOLLOWER);
    assert_int_equal(raft_node_leader(tn_r(net, 3)), 1);
    assert_int_equal(tn_applied_count(net, 3, "while-away"), 1);
    tn_free(net);
}

/* The contrast: without pre-vote the returning node's inflated term deposes the leader. */
static void test_without_prevote_returning_node_deposes_leader(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    uint64_t term = raft_node_term(tn_r(net, 1));
    tn_isolate(net, 3, true);
    assert_int_equal(tn_propose(net, 1, "while-away"), 0);
    tn_tick(net, 3, 100);
    assert_true(raft_node_term(tn_r(net, 3)) > term + 3);
    tn_isolate(net, 3, false);
    tn_tick(net, 3, 20); /* it campaigns with its inflated term */
    assert_int_not_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    assert_true(raft_node_term(tn_r(net, 1)) > term + 3);
    tn_free(net);
}

/* Thesis 6.2: with check-quorum a leader that hears from no quorum for an election timeout
 * steps down. */
static void test_check_quorum_isolated_leader_steps_down(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_check_quorum, NULL);
    uint64_t l = tn_elect_by_ticks(net);
    tn_isolate(net, l, true);
    tn_tick(net, l, 20);
    assert_int_equal(raft_node_state(tn_r(net, l)), RAFT_STATE_FOLLOWER);
    assert_true(tn_traced(net, "no quorum active"));
    tn_free(net);
}

/* A leader that keeps hearing from a quorum stays leader through many rounds. */
static void test_check_quorum_connected_leader_stays(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_check_quorum, NULL);
    uint64_t l = tn_elect_by_ticks(net);
    uint64_t other = l == 3 ? 2 : 3;
    tn_isolate(net, other, true); /* one follower gone still leaves a quorum */
    for (int i = 0; i < 100; i++)
        tn_tick(net, l, 1);
    assert_int_equal(raft_node_state(tn_r(net, l)), RAFT_STATE_LEADER);
    tn_free(net);
}

/* Thesis 4.2.3: with check-quorum a follower that heard from its leader within the election
 * timeout ignores vote requests (no term change, no answer). */
static void test_follower_in_lease_ignores_vote_request(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_check_quorum, NULL);
    uint64_t l = tn_elect_by_ticks(net);
    uint64_t f = l == 1 ? 2 : 1, c = 6 - l - f;
    uint64_t term = raft_node_term(tn_r(net, f));
    raft_status st;
    raft_node_status(tn_r(net, f), &st);
    raft_message m = vote_req(c, f, term + 1, st.last_index + 10, term);
    tn_step(net, f, &m);
    assert_int_equal(raft_node_term(tn_r(net, f)), term);
    tn_ready(net, f);
    assert_null(queued(net, RAFT_MSG_REQUEST_VOTE_RESPONSE, f));
    assert_true(tn_traced(net, "in lease"));
    tn_flush(net);
    tn_free(net);
}

/* A restarted node cannot know whether it promised a leader its vote-free lease before the
 * crash, so it keeps that promise for one election timeout after starting. */
static void test_restarted_node_honours_lease_for_an_election_timeout(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_both, NULL);
    uint64_t l = tn_elect_by_ticks(net);
    uint64_t f = l == 1 ? 2 : 1, c = 6 - l - f;
    tn_crash(net, f);
    tn_restart(net, f);
    tn_isolate(net, f, true);
    uint64_t term = raft_node_term(tn_r(net, f));
    raft_status st;
    raft_node_status(tn_r(net, f), &st);
    raft_message m = vote_req(c, f, term + 1, st.last_index + 10, term);
    m.msg_type = RAFT_MSG_REQUEST_PRE_VOTE;
    tn_step(net, f, &m);
    assert_int_equal(raft_node_term(tn_r(net, f)), term);
    tn_tick(net, f, 10);
    m.term = raft_node_term(tn_r(net, f)) + 1;
    tn_step(net, f, &m);
    tn_ready(net, f);
    raft_message *resp = queued(net, RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE, f);
    assert_non_null(resp);
    assert_false(resp->reject);
    tn_heal(net);
    tn_flush(net);
    tn_free(net);
}

/* Thesis 9.6: a pre-vote binds nothing: the voter's term and vote stay as they were. */
static void test_prevote_grant_changes_neither_term_nor_vote(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_prevote, NULL);
    raft_message m = vote_req(2, 1, 2, 1, 1);
    m.msg_type = RAFT_MSG_REQUEST_PRE_VOTE;
    tn_step(net, 1, &m);
    tn_ready(net, 1);
    raft_message *resp = queued(net, RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE, 1);
    assert_non_null(resp);
    assert_false(resp->reject);
    assert_int_equal(resp->term, 2);
    raft_status st;
    raft_node_status(tn_r(net, 1), &st);
    assert_int_equal(st.hard_state.term, 1);
    assert_int_equal(st.hard_state.vote, RAFT_NONE);
    tn_free(net);
}

/* Raft paper Figure 2: only granting a vote (or hearing from a leader) resets the election
 * timer; a node that rejects a stale candidate keeps counting and campaigns on time. */
static void test_rejecting_stale_candidate_keeps_election_timer(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    uint64_t terms[] = {1, 2};
    tn_write_log(net, 1, terms, 2, 2);
    tn_isolate(net, 1, true);
    tn_tick(net, 1, 8);
    raft_node *r = tn_r(net, 1);
    assert_int_equal(r->election_elapsed, 8);
    raft_message m = vote_req(2, 1, 5, 1, 1); /* a stale log */
    tn_step(net, 1, &m);
    assert_int_equal(raft_node_term(r), 5);
    assert_int_equal(r->election_elapsed, 8);
    m = vote_req(3, 1, 6, 9, 2); /* a good one: granted, timer reset */
    tn_step(net, 1, &m);
    assert_int_equal(r->vote, 3);
    assert_int_equal(r->election_elapsed, 0);
    tn_flush(net);
    tn_free(net);
}

/* Thesis 3.10 and 6.2: transfer requests do not restart the check-quorum round, so they
 * cannot keep a cut-off leader in office. */
static void test_transfer_requests_do_not_postpone_check_quorum(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_check_quorum, NULL);
    uint64_t l = tn_elect_by_ticks(net);
    tn_isolate(net, l, true);
    for (int i = 0; i < 25 && raft_node_state(tn_r(net, l)) == RAFT_STATE_LEADER; i++) {
        assert_int_equal(raft_node_transfer_leader(tn_r(net, l), l == 1 ? 2 : 1), 0);
        tn_tick(net, l, 1);
    }
    assert_int_equal(raft_node_state(tn_r(net, l)), RAFT_STATE_FOLLOWER);
    tn_free(net);
}

int raft_test_election_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_elected_after_election_timeout),
        cmocka_unit_test(test_randomized_election_timeout_spans_t_to_2t),
        cmocka_unit_test(test_node_grants_one_vote_per_term),
        cmocka_unit_test(test_vote_denied_to_candidate_with_stale_log),
        cmocka_unit_test(test_candidate_follows_leader_of_same_term),
        cmocka_unit_test(test_newer_term_deposes_leader_and_older_term_is_ignored),
        cmocka_unit_test(test_candidate_rejected_by_majority_steps_down),
        cmocka_unit_test(test_single_voter_elects_itself_and_commits),
        cmocka_unit_test(test_prevote_keeps_partitioned_node_from_disrupting_on_return),
        cmocka_unit_test(test_without_prevote_returning_node_deposes_leader),
        cmocka_unit_test(test_check_quorum_isolated_leader_steps_down),
        cmocka_unit_test(test_check_quorum_connected_leader_stays),
        cmocka_unit_test(test_follower_in_lease_ignores_vote_request),
        cmocka_unit_test(test_restarted_node_honours_lease_for_an_election_timeout),
        cmocka_unit_test(test_prevote_grant_changes_neither_term_nor_vote),
        cmocka_unit_test(test_rejecting_stale_candidate_keeps_election_timer),
        cmocka_unit_test(test_transfer_requests_do_not_postpone_check_quorum),
    };
    return cmocka_run_group_tests_name("raft_election", tests, NULL, NULL);
}
