/*
 * test_raft_node.c: the node API: the Ready / advance contract, what may be sent before the
 * persist step (thesis 10.2.1), restart from storage, input validation, configuration, and
 * behaviour under allocation failures.
 */
#include "raft_tests.h"

static uint64_t test_seed(void)
{
    const char *s = getenv("TKV_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : 20261127;
    printf("# TKV_SEED=%llu\n", (unsigned long long)seed);
    return seed;
}

/* Between ready() and advance() the node takes no input; advance needs a Ready. */
static void test_outstanding_ready_refuses_inputs(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    raft_node *r = tn_r(net, 1);
    assert_int_equal(raft_node_advance(r), TKV_EBUSY);
    assert_int_equal(raft_node_campaign(r), 0);
    assert_true(raft_node_has_ready(r));
    raft_ready *rd;
    assert_int_equal(raft_node_ready(r, &rd), 0);
    assert_false(raft_node_has_ready(r));
    raft_ready *again;
    assert_int_equal(raft_node_ready(r, &again), TKV_EBUSY);
    assert_int_equal(raft_node_tick(r), TKV_EBUSY);
    assert_int_equal(raft_node_propose(r, "x", 1, NULL, 0), TKV_EBUSY);
    assert_int_equal(raft_node_read_index(r, "x", 1), TKV_EBUSY);
    raft_message m = {0};
    m.msg_type = RAFT_MSG_HEARTBEAT;
    m.from = 2;
    m.to = 1;
    m.term = 9;
    assert_int_equal(raft_node_step(r, &m), TKV_EBUSY);
    tn_handle_ready(net, 1, rd);
    tn_flush(net);
    assert_int_equal(raft_node_state(r), RAFT_STATE_LEADER);
    tn_free(net);
}

static size_t count_type(const raft_message *ms, size_t n, raft_message_type t)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ms[i].msg_type == t;
    return c;
}

/* Thesis 10.2.1: a leader's appends may leave before its own write; votes, vote requests
 * and append responses depend on persisted state and wait for the persist step. */
static void test_ready_splits_messages_around_the_persist_step(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    raft_node *r1 = tn_r(net, 1);
    assert_int_equal(raft_node_campaign(r1), 0);
    raft_ready *rd;
    assert_int_equal(raft_node_ready(r1, &rd), 0);
    assert_true(rd->has_hard_state);
    assert_int_equal(rd->hard_state.term, 2);
    assert_int_equal(rd->hard_state.vote, 1);
    assert_true(rd->must_sync);
    assert_true(rd->has_soft_state);
    assert_int_equal(rd->soft_state.raft_state, RAFT_STATE_CANDIDATE);
    assert_int_equal(rd->n_messages, 0);
    assert_int_equal(
        count_type(rd->persisted_messages, rd->n_persisted_messages, RAFT_MSG_REQUEST_VOTE), 2);
    tn_handle_ready(net, 1, rd);
    tn_flush(net);
    assert_int_equal(raft_node_state(r1), RAFT_STATE_LEADER);

    assert_int_equal(raft_node_propose(r1, "e", 1, NULL, 0), 0);
    assert_int_equal(raft_node_ready(r1, &rd), 0);
    assert_int_equal(rd->n_entries, 1);
    assert_true(rd->must_sync);
    assert_int_equal(count_type(rd->messages, rd->n_messages, RAFT_MSG_APPEND), 2);
    assert_int_equal(rd->n_persisted_messages, 0);
    assert_int_equal(rd->n_committed_entries, 0);
    tn_handle_ready(net, 1, rd);
    tn_deliver(net);
    raft_node *r2 = tn_r(net, 2);
    assert_int_equal(raft_node_ready(r2, &rd), 0);
    assert_int_equal(rd->n_entries, 1);
    assert_int_equal(rd->n_messages, 0);
    assert_int_equal(
        count_type(rd->persisted_messages, rd->n_persisted_messages, RAFT_MSG_APPEND_RESPONSE), 1);
    tn_handle_ready(net, 2, rd);
    tn_flush(net);
    assert_int_equal(tn_applied_count(net, 2, "e"), 1);
    tn_free(net);
}

/* Thesis 10.2.1: the leader counts its own entry toward commit only once the caller has
 * persisted it (advance), so a crash before the write cannot lose a committed entry. */
static void test_leader_counts_own_entry_only_once_persisted(void **state)
{
    (void)state;
    tn_net *net = tn_new(1, NULL, NULL);
    tn_campaign(net, 1);
    raft_node *r = tn_r(net, 1);
    raft_status st;
    raft_node_status(r, &st);
    uint64_t commit = st.hard_state.commit;
    assert_int_equal(raft_node_propose(r, "solo", 4, NULL, 0), 0);
    raft_ready *rd;
    assert_int_equal(raft_node_ready(r, &rd), 0);
    assert_int_equal(rd->n_entries, 1);
    assert_int_equal(rd->n_committed_entries, 0);
    raft_node_status(r, &st);
    assert_int_equal(st.hard_state.commit, commit);
    assert_int_equal(st.persisted_index, commit);
    tn_handle_ready(net, 1, rd); /* persists and advances */
    raft_node_status(r, &st);
    assert_int_equal(st.hard_state.commit, commit + 1);
    assert_true(raft_node_has_ready(r));
    assert_int_equal(raft_node_ready(r, &rd), 0);
    assert_int_equal(rd->n_committed_entries, 1);
    assert_memory_equal(rd->committed_entries[0].data, "solo", 4);
    assert_int_equal(rd->hard_state.commit, commit + 1);
    assert_false(rd->must_sync); /* a commit index alone needs no fsync */
    tn_handle_ready(net, 1, rd);
    tn_free(net);
}

/* Raft paper Figure 2: term, vote and log are persistent; a restarted node resumes with
 * them and re-applies what it had not captured in a snapshot. */
static void test_restart_resumes_from_persisted_state(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 1);
    assert_int_equal(tn_propose(net, 1, "a"), 0);
    assert_int_equal(tn_propose(net, 1, "b"), 0);
    raft_status before, after;
    raft_node_status(tn_r(net, 2), &before);
    tn_crash(net, 2);
    tn_restart(net, 2);
    raft_node_status(tn_r(net, 2), &after);
    assert_int_equal(after.hard_state.term, before.hard_state.term);
    assert_int_equal(after.hard_state.vote, before.hard_state.vote);
    assert_int_equal(after.last_index, before.last_index);
    assert_true(after.hard_state.commit <= before.hard_state.commit);
    assert_int_equal(after.conf_state.n_voters, 3);
    tn_tick(net, 1, 1);
    assert_int_equal(tn_applied_count(net, 2, "a"), 1);
    assert_int_equal(tn_applied_count(net, 2, "b"), 1);
    tn_free(net);
}

static void test_step_validates_input(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    raft_node *r = tn_r(net, 1);
    raft_message m = {0};
    m.msg_type = RAFT_MSG_HUP;
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    m.msg_type = RAFT_MSG_CHECK_QUORUM;
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    m.msg_type = (raft_message_type)77;
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    m.msg_type = RAFT_MSG_APPEND;
    m.from = 2;
    m.to = 1;
    m.term = 1;
    m.n_entries = 2; /* entries missing */
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    raft_entry bad = {RAFT_ENTRY_NORMAL, 1, 2, NULL, 5, NULL, 0}; /* data missing */
    m.entries = &bad;
    m.n_entries = 1;
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    bad.data_len = 0;
    bad.entry_type = (raft_entry_type)9;
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    m.entries = NULL;
    m.n_entries = 0;
    m.context_len = 3; /* context missing */
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    m.context_len = 0;
    m.to = 3; /* for someone else */
    assert_int_equal(raft_node_step(r, &m), 0);
    assert_int_equal(raft_node_term(r), 1);
    /* A snapshot message without a snapshot is refused. */
    m.to = 1;
    m.msg_type = RAFT_MSG_SNAPSHOT;
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    /* A read-index answer must carry exactly the request context. */
    m.msg_type = RAFT_MSG_READ_INDEX_RESP;
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    tn_flush(net);
    tn_free(net);
}

/* Found by fuzz_raft_step: a message from the network without a term skipped the term rules.
 * A term-0 MsgAppend made a candidate a follower of term 0 (its term and vote went back, so it
 * could vote twice in its old term), and a term-0 vote request tripped an assertion. Only the
 * requests a follower forwards (proposal, read index, transfer) travel without a term. */
static void test_step_refuses_messages_without_a_term_or_past_the_term_limit(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    raft_node *r = tn_r(net, 3);
    assert_int_equal(raft_node_campaign(r), 0); /* candidate of term 2, voted for itself */
    raft_status before;
    raft_node_status(r, &before);
    assert_int_equal(before.soft_state.raft_state, RAFT_STATE_CANDIDATE);
    static const raft_message_type types[] = {
        RAFT_MSG_APPEND,
        RAFT_MSG_APPEND_RESPONSE,
        RAFT_MSG_REQUEST_VOTE,
        RAFT_MSG_REQUEST_VOTE_RESPONSE,
        RAFT_MSG_SNAPSHOT,
        RAFT_MSG_HEARTBEAT,
        RAFT_MSG_HEARTBEAT_RESPONSE,
        RAFT_MSG_TIMEOUT_NOW,
        RAFT_MSG_READ_INDEX_RESP,
        RAFT_MSG_REQUEST_PRE_VOTE,
        RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE,
    };
    raft_entry e = {RAFT_ENTRY_NORMAL, 1, 2, NULL, 0, NULL, 0};
    for (size_t i = 0; i < TKV_ARRAY_LEN(types); i++) {
        raft_message m = {0};
        m.msg_type = types[i];
        m.from = 1;
        m.to = 3;
        m.index = 1;
        m.log_term = 1;
        m.entries = &e;
        m.n_entries = 1;
        assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
        raft_status after;
        raft_node_status(r, &after);
        assert_int_equal(after.hard_state.term, before.hard_state.term);
        assert_int_equal(after.hard_state.vote, 3);
        assert_int_equal(after.soft_state.raft_state, RAFT_STATE_CANDIDATE);
    }
    /* Forwarded requests still travel without a term. */
    raft_message fwd = {0};
    fwd.msg_type = RAFT_MSG_PROPOSE;
    fwd.from = 1;
    fwd.to = 3;
    fwd.entries = &e;
    fwd.n_entries = 1;
    assert_int_equal(raft_node_step(r, &fwd), TKV_EDROPPED); /* a candidate drops it */
    /* Found by fuzz_raft_step: a heartbeat of term 2^64-1 made the next election's term wrap
     * to 0 (an assertion). Terms that close to the end are refused. */
    raft_message hb = {0};
    hb.msg_type = RAFT_MSG_HEARTBEAT;
    hb.from = 1;
    hb.to = 3;
    hb.term = UINT64_MAX;
    assert_int_equal(raft_node_step(r, &hb), TKV_ECORRUPT);
    hb.term = RAFT_TERM_LIMIT;
    assert_int_equal(raft_node_step(r, &hb), TKV_ECORRUPT);
    hb.term = RAFT_TERM_LIMIT - 1; /* still a term a peer can reach */
    assert_int_equal(raft_node_step(r, &hb), 0);
    assert_int_equal(raft_node_term(r), RAFT_TERM_LIMIT - 1);
    /* Its own elections may go past the limit without wrapping (peers refuse such terms:
     * nothing real gets there). */
    assert_int_equal(raft_node_campaign(r), 0);
    assert_int_equal(raft_node_term(r), RAFT_TERM_LIMIT);
    tn_free(net);
}

/* Returns a MsgSnapshot from node 1 to node 2 in term 2 carrying @snap, which it fills with
 * @index, @term and voters 1..@n_voters. */
static raft_message snapshot_message(raft_snapshot *snap, uint64_t index, uint64_t term,
                                     size_t n_voters)
{
    memset(snap, 0, sizeof(*snap));
    snap->metadata.index = index;
    snap->metadata.term = term;
    for (size_t i = 0; i < n_voters; i++)
        snap->metadata.conf_state.voters[i] = i + 1;
    snap->metadata.conf_state.n_voters = n_voters;
    raft_message m = {0};
    m.msg_type = RAFT_MSG_SNAPSHOT;
    m.from = 1;
    m.to = 2;
    m.term = 2;
    m.snapshot = snap;
    return m;
}

/* Found by fuzz_raft_step: a snapshot of term 0 past the end of the log "matched" the log
 * (which answers term 0 there) and was taken as proof that the log holds it: the node
 * committed past its last entry and tripped an assertion. A snapshot holds committed
 * entries, whose terms are never 0: it is refused. */
static void test_snapshot_of_term_zero_is_refused(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    raft_node *r = tn_r(net, 2);
    raft_snapshot snap;
    raft_message m = snapshot_message(&snap, 9, 0, 3);
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    raft_status st;
    raft_node_status(r, &st);
    assert_true(st.hard_state.commit <= st.last_index);
    assert_int_equal(st.last_index, 1);
    tn_free(net);
}

/* Found by fuzz_raft_step: a snapshot message at index and term 2^64-1 was installed, and the
 * node could not restart from what it had persisted (its first index wrapped to 0). Indexes
 * that close to the end are refused, wherever they appear in a message. */
static void test_step_refuses_indexes_past_the_limit(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    raft_node *r = tn_r(net, 2);
    raft_snapshot snap;
    raft_message m = snapshot_message(&snap, UINT64_MAX, 1, 1);
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    snap.metadata.index = RAFT_INDEX_LIMIT;
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    snap.metadata.index = 5;
    snap.metadata.term = RAFT_TERM_LIMIT;
    assert_int_equal(raft_node_step(r, &m), TKV_ECORRUPT);
    raft_entry e = {RAFT_ENTRY_NORMAL, 2, RAFT_INDEX_LIMIT, NULL, 0, NULL, 0};
    raft_message app = {0};
    app.msg_type = RAFT_MSG_APPEND;
    app.from = 1;
    app.to = 2;
    app.term = 2;
    app.index = RAFT_INDEX_LIMIT - 1;
    app.log_term = 1;
    app.entries = &e;
    app.n_entries = 1;
    assert_int_equal(raft_node_step(r, &app), TKV_ECORRUPT);
    app.n_entries = 0;
    app.index = 1;
    app.commit = UINT64_MAX;
    assert_int_equal(raft_node_step(r, &app), TKV_ECORRUPT);
    raft_status st;
    raft_node_status(r, &st);
    assert_int_equal(st.hard_state.term, 1);
    assert_int_equal(st.last_index, 1);
    /* The same snapshot at a real index is installed. */
    snap.metadata.term = 1;
    assert_int_equal(raft_node_step(r, &m), 0);
    raft_node_status(r, &st);
    assert_int_equal(st.last_index, 5);
    tn_free(net);
}

static void test_config_validation_names_the_problem(void **state)
{
    (void)state;
    raft_config cfg;
    const char *why;
    raft_config_default(&cfg, 1);
    assert_int_equal(raft_config_validate(&cfg, &why), 0);
    assert_null(why);
    cfg.id = 0;
    assert_int_equal(raft_config_validate(&cfg, &why), TKV_ECONFIG);
    assert_string_equal(why, "id must not be 0");
    raft_config_default(&cfg, 1);
    cfg.election_tick = cfg.heartbeat_tick;
    assert_int_equal(raft_config_validate(&cfg, &why), TKV_ECONFIG);
    raft_config_default(&cfg, 1);
    cfg.heartbeat_tick = 0;
    assert_int_equal(raft_config_validate(&cfg, &why), TKV_ECONFIG);
    raft_config_default(&cfg, 1);
    cfg.max_inflight_msgs = 0;
    assert_int_equal(raft_config_validate(&cfg, &why), TKV_ECONFIG);
    raft_config_default(&cfg, 1);
    cfg.check_quorum = false;
    cfg.read_only_option = RAFT_READ_ONLY_LEASE_BASED;
    assert_int_equal(raft_config_validate(&cfg, &why), TKV_ECONFIG);
    assert_string_equal(why, "lease-based reads need check_quorum");
    raft_mem_storage *ms;
    assert_int_equal(raft_mem_storage_new(NULL, &ms), 0);
    raft_storage st = raft_mem_storage_iface(ms);
    raft_node *r;
    assert_int_equal(raft_node_new(&cfg, &st, &r), TKV_ECONFIG);
    assert_null(r);
    /* A hard state committing past the log contradicts itself. */
    raft_config_default(&cfg, 1);
    raft_hard_state hs = {3, 1, 5};
    raft_mem_storage_set_hard_state(ms, &hs);
    assert_int_equal(raft_node_new(&cfg, &st, &r), TKV_ECONFIG);
    /* So does an applied index past the log. */
    hs.commit = 0;
    raft_mem_storage_set_hard_state(ms, &hs);
    cfg.applied = 2;
    assert_int_equal(raft_node_new(&cfg, &st, &r), TKV_ECONFIG);
    /* An applied index past a stale commit index is fine: applied means committed. */
    raft_entry e = {RAFT_ENTRY_NORMAL, 3, 1, NULL, 0, NULL, 0};
    assert_int_equal(raft_mem_storage_append(ms, &e, 1), 0);
    cfg.applied = 1;
    assert_int_equal(raft_node_new(&cfg, &st, &r), 0);
    raft_status rs;
    raft_node_status(r, &rs);
    assert_int_equal(rs.hard_state.commit, 1);
    raft_node_free(r);
    cfg.applied = 0;
    assert_int_equal(raft_node_new(&cfg, &st, &r), 0);
    assert_int_equal(raft_node_term(r), 3);
    raft_node_free(r);
    raft_node_free(NULL);
    raft_mem_storage_free(ms);
}

static void test_tracer_reports_decisions(void **state)
{
    (void)state;
    tn_net *net = tn_new(3, NULL, NULL);
    tn_campaign(net, 2);
    assert_true(tn_traced(net, "[2 t2 Candidate] became candidate at term 2"));
    assert_true(tn_traced(net, "[1 t2 Follower] granted vote to 2 at term 2"));
    assert_true(tn_traced(net, "[2 t2 Leader] became leader at term 2"));
    tn_free(net);
}

static long g_failures;

/* Makes one call with the allocator failing after @budget allocations; @rc gets its result. */
#define WITH_FAULT(rc, budget, call)                                                               \
    do {                                                                                           \
        tkv_alloc_fail_after(budget);                                                              \
        (rc) = (call);                                                                             \
        g_failures += tkv_alloc_fault_count();                                                     \
        tkv_alloc_fault_clear();                                                                   \
    } while (0)

static bool rc_ok_or_oom(int rc)
{
    return rc == 0 || rc == -ENOMEM || rc == TKV_EDROPPED || rc == TKV_ENOTLEADER;
}

/* CONVENTIONS 4: raft returns -ENOMEM instead of crashing. A cluster whose every call may
 * run out of memory stays consistent (the same entries applied in the same order
 * everywhere) and recovers once memory is back. */
static void test_cluster_stays_consistent_under_allocation_failures(void **state)
{
    (void)state;
    tkv_rng rng;
    tkv_rng_seed(&rng, test_seed());
    tn_net *net = tn_new(3, NULL, NULL);
    net->tracing = false;
    tn_campaign(net, 1);
    g_failures = 0;
    char buf[16];
    int rc;
    for (int iter = 0; iter < 600; iter++) {
        long budget = (long)tkv_rng_below(&rng, 6);
        uint64_t id = 1 + tkv_rng_below(&rng, 3);
        raft_node *r = tn_r(net, id);
        switch (tkv_rng_below(&rng, 4)) {
        case 0:
            snprintf(buf, sizeof(buf), "p%d", iter);
            WITH_FAULT(rc, budget, raft_node_propose(r, buf, strlen(buf), NULL, 0));
            assert_true(rc_ok_or_oom(rc));
            break;
        case 1:
            WITH_FAULT(rc, budget, raft_node_tick(r));
            assert_true(rc_ok_or_oom(rc));
            break;
        case 2: {
            raft_message *q = net->queue;
            size_t n = net->qlen;
            net->queue = NULL;
            net->qlen = net->qcap = 0;
            for (size_t i = 0; i < n; i++) {
                budget = (long)tkv_rng_below(&rng, 8);
                WITH_FAULT(rc, budget, raft_node_step(tn_r(net, q[i].to), &q[i]));
                assert_true(rc_ok_or_oom(rc));
                raft_message_deinit(&q[i]);
            }
            free(q);
            break;
        }
        default:
            if (raft_node_has_ready(r)) {
                raft_ready *rd;
                WITH_FAULT(rc, budget, raft_node_ready(r, &rd));
                assert_true(rc == 0 || rc == -ENOMEM);
                if (rc == 0)
                    tn_handle_ready(net, id, rd);
            }
            break;
        }
    }
    assert_true(g_failures > 0);
    /* Memory is back: the cluster converges and takes new writes. */
    tn_flush(net);
    uint64_t l = tn_elect_by_ticks(net);
    assert_int_equal(tn_propose(net, l, "final"), 0);
    tn_tick_all(net, 2);
    tn_node *a = &net->nodes[1];
    for (uint64_t id = 1; id <= 3; id++) {
        tn_node *b = &net->nodes[id];
        assert_int_equal(tn_applied_count(net, id, "final"), 1);
        assert_int_equal(b->applied.len, a->applied.len);
        for (size_t i = 0; i < a->applied.len; i++) {
            assert_int_equal(b->applied.items[i].index, a->applied.items[i].index);
            assert_int_equal(b->applied.items[i].data_len, a->applied.items[i].data_len);
            assert_memory_equal(b->applied.items[i].data, a->applied.items[i].data,
                                a->applied.items[i].data_len);
        }
    }
    tn_free(net);
}

int raft_test_node_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outstanding_ready_refuses_inputs),
        cmocka_unit_test(test_ready_splits_messages_around_the_persist_step),
        cmocka_unit_test(test_leader_counts_own_entry_only_once_persisted),
        cmocka_unit_test(test_restart_resumes_from_persisted_state),
        cmocka_unit_test(test_step_validates_input),
        cmocka_unit_test(test_step_refuses_messages_without_a_term_or_past_the_term_limit),
        cmocka_unit_test(test_snapshot_of_term_zero_is_refused),
        cmocka_unit_test(test_step_refuses_indexes_past_the_limit),
        cmocka_unit_test(test_config_validation_names_the_problem),
        cmocka_unit_test(test_tracer_reports_decisions),
        cmocka_unit_test(test_cluster_stays_consistent_under_allocation_failures),
    };
    return cmocka_run_group_tests_name("raft_node", tests, NULL, NULL);
}
