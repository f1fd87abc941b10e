/*
 * test_raft_replication.c: log replication and commitment (Raft paper 5.3, 5.4.2 and
 * Figure 8), flow control, log compaction and snapshots (thesis 5).
 */
#include "raft/raft_int.h"
#include "raft_tests.h"

static void tweak_one_entry_per_msg(raft_config *cfg, void *arg)
{
    (void)arg;
    cfg->max_size_per_msg = 0;
}

/* Raft paper 5.3: an entry is committed once a majority stores it, and then applied by all. */
static void test_leader_replicates_and_commits_on_majority(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    tn_isolate(net, 3, true);
    assert_int_equal(tn_propose(net, 1, "x"), 0);
    assert_int_equal(tn_applied_count(net, 1, "x"), 1);
    assert_int_equal(tn_applied_count(net, 2, "x"), 1);
    assert_int_equal(tn_applied_count(net, 3, "x"), 0);
    tn_isolate(net, 2, true); /* the leader alone cannot commit */
    assert_int_equal(tn_propose(net, 1, "y"), 0);
    assert_int_equal(tn_applied_count(net, 1, "y"), 0);
    tn_heal(net);
    tn_tick(net, 1, 1); /* heartbeats reveal the lagging followers */
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(tn_applied_count(net, id, "x"), 1);
        assert_int_equal(tn_applied_count(net, id, "y"), 1);
    }
    tn_free(net);
}

/* The leader reports each member's match index; followers report nothing. */
static void test_progress_reports_match_of_every_member(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    tn_isolate(net, 3, true);
    assert_int_equal(tn_propose(net, 1, "x"), 0);
    raft_status st;
    raft_node_status(tn_r(net, 1), &st);
    raft_progress_info pr[RAFT_MAX_MEMBERS];
    assert_int_equal(raft_node_progress(tn_r(net, 2), pr), 0);
    size_t n = raft_node_progress(tn_r(net, 1), pr);
    assert_int_equal(n, 3);
    bool seen[4] = {false};
    for (size_t i = 0; i < n; i++) {
        assert_true(pr[i].id >= 1 && pr[i].id <= 3);
        seen[pr[i].id] = true;
        assert_false(pr[i].is_learner);
        if (pr[i].id == 3)
            assert_true(pr[i].match < st.last_index);
        else
            assert_int_equal(pr[i].match, st.last_index);
    }
    assert_true(seen[1] && seen[2] && seen[3]);
    tn_free(net);
}

/* A proposal on a follower is forwarded to the leader. */
static void test_follower_forwards_proposal_to_leader(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    assert_int_equal(tn_propose(net, 3, "via-follower"), 0);
    for (uint64_t id = 1; id <= 3; id++)
        assert_int_equal(tn_applied_count(net, id, "via-follower"), 1);
    /* Without a leader it is dropped at once. */
    tn_net *lonely = tn_new(3, NULL, NULL);
    assert_int_equal(tn_propose(lonely, 2, "nowhere"), TKV_EDROPPED);
    tn_free(lonely);
    tn_free(net);
}

/* Figure 8 step (c): once node @to stores index @max_index, drop the appends that would
 * give it anything later. */
typedef struct fig8_filter {
    tn_net *net;
    uint64_t to;
    uint64_t max_index;
} fig8_filter;

static bool drop_appends_past(const raft_message *m, void *arg)
{
    fig8_filter *f = arg;
    if (m->msg_type != RAFT_MSG_APPEND || m->to != f->to || m->n_entries == 0)
        return true;
    if (tn_stored_term(f->net, f->to, f->max_index) == 0)
        return true; /* it would reject it anyway: it lacks the entry before */
    return m->entries[m->n_entries - 1].index <= f->max_index;
}

/* Campaigns at @id until it leads (a first attempt may only catch up with the term). */
static void campaign_until_leader(tn_net *net, uint64_t id, int attempts)
{
    for (int k = 0; k < attempts && raft_node_state(tn_r(net, id)) != RAFT_STATE_LEADER; k++)
        tn_campaign(net, id);
}

static bool drop_all_appends(const raft_message *m, void *arg)
{
    (void)arg;
    return m->msg_type != RAFT_MSG_APPEND;
}

/* Sets up Figure 8 (a)-(c) of the Raft paper on five nodes and returns the index that holds
 * S1's entry from an earlier term, now stored on S1, S2, S3 (a majority) while S1 leads in a
 * later term whose own entry reached only S1 and S2. */
static uint64_t figure8_setup(tn_net *net, fig8_filter *ff)
{
    tn_campaign(net, 1); /* term 1, entry 1 (empty) everywhere */
    assert_int_equal(tn_propose(net, 1, "base"), 0);
    /* (a) S1 leads term T1 and replicates entry "old" at index i to S2 only. */
    for (uint64_t id = 3; id <= 5; id++)
        tn_cut(net, 1, id, true);
    assert_int_equal(tn_propose(net, 1, "old"), 0);
    raft_status st;
    raft_node_status(tn_r(net, 1), &st);
    uint64_t i = st.last_index;
    assert_int_equal(tn_stored_term(net, 2, i), tn_stored_term(net, 1, i));
    assert_int_equal(tn_stored_term(net, 3, i), 0);
    /* (b) S1 crashes; S5 wins the next term with S3 and S4 and appends at index i, but its
     * appends are lost; then S5 crashes too. */
    tn_crash(net, 1);
    net->filter = drop_all_appends;
    tn_campaign(net, 5);
    assert_int_equal(raft_node_state(tn_r(net, 5)), RAFT_STATE_LEADER);
    assert_int_equal(tn_stored_term(net, 5, i), raft_node_term(tn_r(net, 5)));
    net->filter = NULL;
    tn_crash(net, 5);
    /* (c) S1 restarts and wins a later term (S2, S3 vote). It brings S3 up to index i but its
     * own new entry (i + 1) does not reach S3. */
    tn_restart(net, 1);
    tn_cut(net, 1, 3, false);
    ff->net = net;
    ff->to = 3;
    ff->max_index = i;
    net->filter = drop_appends_past;
    net->filter_arg = ff;
    campaign_until_leader(net, 1, 3);
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    tn_tick(net, 1, 1);
    return i;
}

/* Raft paper 5.4.2, Figure 8: an entry from an earlier term stored on a majority is not
 * committed by counting replicas; a later leader may still overwrite it. */
static void test_figure8_earlier_term_entry_not_committed_by_counting(void **state)
{
    (void)state;
    tn_net *net = tn_new(5, tweak_one_entry_per_msg, NULL);
    fig8_filter ff;
    uint64_t i = figure8_setup(net, &ff);
    uint64_t old_term = tn_stored_term(net, 1, i);
    assert_int_equal(tn_stored_term(net, 2, i), old_term);
    assert_int_equal(tn_stored_term(net, 3, i), old_term); /* a majority: S1, S2, S3 */
    raft_status st;
    raft_node_status(tn_r(net, 1), &st);
    assert_true(st.hard_state.commit < i); /* the rule under test */
    assert_int_equal(tn_applied_count(net, 1, "old"), 0);
    /* (d) S1 crashes; S5 returns and is elected by S3 and S4 (its last term is newer), and
     * overwrites index i: harmless, because it was never committed. */
    net->filter = NULL;
    tn_crash(net, 1);
    tn_heal(net);
    tn_restart(net, 5);
    campaign_until_leader(net, 5, 3);
    assert_int_equal(raft_node_state(tn_r(net, 5)), RAFT_STATE_LEADER);
    uint64_t s5_term_at_i = tn_stored_term(net, 5, i);
    assert_int_not_equal(s5_term_at_i, old_term);
    assert_int_equal(tn_stored_term(net, 3, i), s5_term_at_i);
    assert_int_equal(tn_stored_term(net, 4, i), s5_term_at_i);
    for (uint64_t id = 2; id <= 5; id++)
        assert_int_equal(tn_applied_count(net, id, "old"), 0);
    tn_free(net);
}

/* Figure 8 (e): once the leader's current-term entry is on a majority, the earlier entry
 * commits with it, and no later leader can lack it. */
static void test_figure8_earlier_entry_commits_with_current_term_entry(void **state)
{
    (void)state;
    tn_net *net = tn_new(5, tweak_one_entry_per_msg, NULL);
    fig8_filter ff;
    uint64_t i = figure8_setup(net, &ff);
    net->filter = NULL;
    tn_tick(net, 1, 1); /* S3 now receives i + 1 */
    for (uint64_t id = 1; id <= 3; id++)
        assert_int_equal(tn_applied_count(net, id, "old"), 1);
    tn_crash(net, 1);
    tn_heal(net);
    tn_restart(net, 5);
    campaign_until_leader(net, 5, 3);
    assert_int_not_equal(raft_node_state(tn_r(net, 5)), RAFT_STATE_LEADER);
    (void)i;
    tn_free(net);
}

/* Raft paper 5.3: a leader cut off from the majority keeps appending locally; those entries
 * never commit and are overwritten by the new leader's log when the partition heals. */
static void test_partitioned_old_leader_stale_writes_are_discarded(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    assert_int_equal(tn_propose(net, 1, "before"), 0);
    tn_isolate(net, 1, true);
    assert_int_equal(tn_propose(net, 1, "stale-1"), 0);
    assert_int_equal(tn_propose(net, 1, "stale-2"), 0);
    raft_status old;
    raft_node_status(tn_r(net, 1), &old);
    tn_campaign(net, 2);
    assert_int_equal(raft_node_state(tn_r(net, 2)), RAFT_STATE_LEADER);
    assert_int_equal(tn_propose(net, 2, "fresh"), 0);
    tn_heal(net);
    tn_tick(net, 2, 1);
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_FOLLOWER);
    assert_int_equal(raft_node_leader(tn_r(net, 1)), 2);
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(tn_applied_count(net, id, "before"), 1);
        assert_int_equal(tn_applied_count(net, id, "fresh"), 1);
        assert_int_equal(tn_applied_count(net, id, "stale-1"), 0);
        assert_int_equal(tn_applied_count(net, id, "stale-2"), 0);
    }
    /* The old leader's tail now holds the new leader's entries. */
    uint64_t t2 = raft_node_term(tn_r(net, 2));
    assert_int_equal(tn_stored_term(net, 1, old.last_index), t2);
    tn_free(net);
}

static void compact_node(tn_net *net, uint64_t id)
{
    tn_node *nd = &net->nodes[id];
    uint64_t at = nd->applied_index;
    assert_int_equal(raft_mem_storage_create_snapshot(nd->st, at, &nd->conf, "state", 5), 0);
    assert_int_equal(raft_mem_storage_compact(nd->st, at), 0);
}

/* Thesis 5.1: a follower that needs entries the leader compacted away gets a snapshot,
 * installs it and continues from the log. */
static void test_follower_rejoins_after_compaction_through_snapshot(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    tn_isolate(net, 3, true);
    char buf[16];
    for (int i = 0; i < 20; i++) {
        snprintf(buf, sizeof(buf), "e%d", i);
        assert_int_equal(tn_propose(net, 1, buf), 0);
    }
    compact_node(net, 1);
    compact_node(net, 2);
    uint64_t snap_index = net->nodes[1].applied_index;
    tn_isolate(net, 3, false);
    tn_tick(net, 1, 1);
    assert_int_equal(net->delivered[RAFT_MSG_SNAPSHOT], 1);
    assert_true(tn_traced(net, "restored snapshot"));
    const raft_snapshot *s3 = raft_mem_storage_snapshot_ref(net->nodes[3].st);
    assert_int_equal(s3->metadata.index, snap_index);
    assert_memory_equal(s3->data, "state", 5);
    assert_int_equal(net->nodes[3].conf.n_voters, 3);
    /* Replication continues from the log after the snapshot. */
    assert_int_equal(tn_propose(net, 1, "after"), 0);
    assert_int_equal(tn_applied_count(net, 3, "after"), 1);
    raft_status st1, st3;
    raft_node_status(tn_r(net, 1), &st1);
    raft_node_status(tn_r(net, 3), &st3);
    assert_int_equal(st3.hard_state.commit, st1.hard_state.commit);
    assert_int_equal(st3.last_index, st1.last_index);
    tn_free(net);
}

/* Counts rejected append responses. */
static bool count_rejects(const raft_message *m, void *arg)
{
    if (m->msg_type == RAFT_MSG_APPEND_RESPONSE && m->reject)
        (*(int *)arg)++;
    return true;
}

/* Thesis 5.3 (fast log backtracking): a follower's hint lets the leader skip a whole
 * divergent term in one round trip instead of one entry per round trip. */
static void test_reject_hint_skips_divergent_term_in_one_round(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    uint64_t good[10] = {1, 1, 1, 1, 1, 3, 3, 3, 3, 3};
    uint64_t bad[50];
    for (int k = 0; k < 50; k++)
        bad[k] = k < 5 ? 1 : 2;
    tn_write_log(net, 1, good, 10, 3);
    tn_write_log(net, 2, good, 10, 3);
    tn_write_log(net, 3, bad, 50, 2);
    int rejects = 0;
    net->filter = count_rejects;
    net->filter_arg = &rejects;
    tn_campaign(net, 1);
    assert_int_equal(raft_node_state(tn_r(net, 1)), RAFT_STATE_LEADER);
    assert_true(rejects <= 1);
    raft_status st;
    raft_node_status(tn_r(net, 3), &st);
    assert_int_equal(st.last_index, 12); /* bootstrap 1, log 2..11, the new leader's 12 */
    for (uint64_t k = 7; k <= 11; k++)
        assert_int_equal(tn_stored_term(net, 3, k), 3);
    tn_free(net);
}

typedef struct batch_watch {
    size_t max_entries;
    size_t appends_with_entries;
    bool drop_responses;
} batch_watch;

static bool watch_batches(const raft_message *m, void *arg)
{
    batch_watch *w = arg;
    if (m->msg_type == RAFT_MSG_APPEND && m->to == 2 && m->n_entries > 0) {
        w->appends_with_entries++;
        if (m->n_entries > w->max_entries)
            w->max_entries = m->n_entries;
    }
    if (w->drop_responses && m->msg_type == RAFT_MSG_APPEND_RESPONSE && m->from == 2)
        return false;
    return true;
}

static void tweak_250_bytes(raft_config *cfg, void *arg)
{
    (void)arg;
    cfg->max_size_per_msg = 250;
}

/* Several entries travel in one append, bounded by max_size_per_msg (always at least one). */
static void test_appends_batch_entries_up_to_byte_limit(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_250_bytes, NULL);
    tn_campaign(net, 1);
    tn_isolate(net, 2, true);
    char data[101];
    memset(data, 'd', 100);
    data[100] = 0;
    for (int i = 0; i < 10; i++)
        assert_int_equal(tn_propose(net, 1, data), 0);
    batch_watch w = {0, 0, false};
    net->filter = watch_batches;
    net->filter_arg = &w;
    tn_isolate(net, 2, false);
    tn_tick(net, 1, 1);
    assert_int_equal(tn_applied_count(net, 2, data), 10);
    assert_int_equal(w.max_entries, 2);
    assert_true(w.appends_with_entries >= 5 && w.appends_with_entries <= 6);
    tn_free(net);
}

static void tweak_window_2(raft_config *cfg, void *arg)
{
    (void)arg;
    cfg->max_size_per_msg = 0;
    cfg->max_inflight_msgs = 2;
}

/* In replicate state the leader keeps at most max_inflight_msgs appends unacknowledged. */
static void test_inflight_window_bounds_unacknowledged_appends(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_window_2, NULL);
    tn_campaign(net, 1);
    assert_int_equal(tn_propose(net, 1, "warm"), 0); /* follower 2 in replicate state */
    batch_watch w = {0, 0, true};
    net->filter = watch_batches;
    net->filter_arg = &w;
    for (int i = 0; i < 6; i++)
        assert_int_equal(tn_propose(net, 1, "p"), 0);
    assert_int_equal(w.appends_with_entries, 2);
    /* Once answers flow again the rest follows. */
    w.drop_responses = false;
    tn_tick(net, 1, 1);
    tn_tick(net, 1, 1);
    assert_int_equal(tn_applied_count(net, 2, "p"), 6);
    tn_free(net);
}

/* A snapshot the transport could not deliver is reported (MsgSnapStatus): the leader goes
 * back to probing and sends a snapshot again after the next heartbeat answer. */
static void test_failed_snapshot_is_sent_again_after_report(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    tn_isolate(net, 3, true);
    assert_int_equal(tn_propose(net, 1, "x"), 0);
    compact_node(net, 1);
    tn_isolate(net, 3, false);
    net->drop_type[RAFT_MSG_SNAPSHOT] = true;
    tn_tick(net, 1, 1);
    assert_true(tn_traced(net, "sending snapshot"));
    /* Paused in snapshot state: heartbeats do not send another one. */
    tn_tick(net, 1, 3);
    assert_int_equal(net->delivered[RAFT_MSG_SNAPSHOT], 0);
    assert_int_equal(raft_node_report_snapshot(tn_r(net, 1), 3, true), 0);
    net->drop_type[RAFT_MSG_SNAPSHOT] = false;
    tn_tick(net, 1, 1);
    assert_int_equal(net->delivered[RAFT_MSG_SNAPSHOT], 1);
    assert_int_equal(tn_propose(net, 1, "y"), 0);
    assert_int_equal(tn_applied_count(net, 3, "y"), 1);
    /* An unreachable report sends a replicating follower back to probing; it recovers. */
    assert_int_equal(raft_node_report_unreachable(tn_r(net, 1), 3), 0);
    assert_int_equal(tn_propose(net, 1, "z"), 0);
    assert_int_equal(tn_applied_count(net, 3, "z"), 1);
    tn_free(net);
}

static void tweak_uncommitted_30(raft_config *cfg, void *arg)
{
    (void)arg;
    cfg->max_uncommitted_size = 30;
}

/* Flow control (etcd MaxUncommittedEntriesSize): a leader whose followers fall behind stops
 * taking proposals once max_uncommitted_size bytes wait for commit, and takes them again once
 * they commit. */
static void test_leader_drops_proposals_past_uncommitted_limit(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, tweak_uncommitted_30, NULL);
    tn_campaign(net, 1);
    tn_isolate(net, 1, true);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tn_propose(net, 1, "0123456789"), 0);
    assert_int_equal(tn_propose(net, 1, "0123456789"), TKV_EDROPPED);
    assert_true(tn_traced(net, "dropping proposal: 30 bytes uncommitted"));
    tn_isolate(net, 1, false);
    tn_tick(net, 1, 1);
    assert_int_equal(tn_applied_count(net, 2, "0123456789"), 3);
    assert_int_equal(tn_propose(net, 1, "0123456789"), 0);
    assert_int_equal(tn_applied_count(net, 2, "0123456789"), 4);
    tn_free(net);
}

int raft_test_replication_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_replicates_and_commits_on_majority),
        cmocka_unit_test(test_progress_reports_match_of_every_member),
        cmocka_unit_test(test_follower_forwards_proposal_to_leader),
        cmocka_unit_test(test_figure8_earlier_term_entry_not_committed_by_counting),
        cmocka_unit_test(test_figure8_earlier_entry_commits_with_current_term_entry),
        cmocka_unit_test(test_partitioned_old_leader_stale_writes_are_discarded),
        cmocka_unit_test(test_follower_rejoins_after_compaction_through_snapshot),
        cmocka_unit_test(test_reject_hint_skips_divergent_term_in_one_round),
        cmocka_unit_test(test_appends_batch_entries_up_to_byte_limit),
        cmocka_unit_test(test_inflight_window_bounds_unacknowledged_appends),
        cmocka_unit_test(test_leader_drops_proposals_past_uncommitted_limit),
        cmocka_unit_test(test_failed_snapshot_is_sent_again_after_report),
    };
    return cmocka_run_group_tests_name("raft_replication", tests, NULL, NULL);
}
