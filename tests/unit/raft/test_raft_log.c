/*
 * test_raft_log.c: the log (storage plus unstable tail), memory storage, progress flow
 * control and the conf change wire format.
 */
#include "raft/raft_int.h"
#include "raft_tests.h"

static raft_entry ent(uint64_t index, uint64_t term)
{
    raft_entry e = {RAFT_ENTRY_NORMAL, term, index, NULL, 0, NULL, 0};
    return e;
}

/* A log over a fresh storage holding entries 1..n with @terms. */
typedef struct log_fixture {
    raft_mem_storage *ms;
    raft_storage st;
    raft__log log;
} log_fixture;

static void fixture_init(log_fixture *f, const uint64_t *terms, size_t n)
{
    assert_int_equal(raft_mem_storage_new(NULL, &f->ms), 0);
    for (size_t i = 0; i < n; i++) {
        raft_entry e = ent(i + 1, terms[i]);
        assert_int_equal(raft_mem_storage_append(f->ms, &e, 1), 0);
    }
    f->st = raft_mem_storage_iface(f->ms);
    assert_int_equal(raft__log_init(&f->log, &f->st, 0), 0);
}

static void fixture_deinit(log_fixture *f)
{
    raft__log_deinit(&f->log);
    raft_mem_storage_free(f->ms);
}

/* Raft paper 5.3: a follower deletes a conflicting entry and all that follow it. */
static void test_log_append_replaces_conflicting_tail(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 1, 1};
    log_fixture f;
    fixture_init(&f, terms, 3);
    raft_entry add[] = {ent(4, 1), ent(5, 1)};
    assert_int_equal(raft__log_append(&f.log, add, 2), 0);
    assert_int_equal(raft__log_last_index(&f.log), 5);
    raft_entry repl[] = {ent(5, 2), ent(6, 2)};
    assert_int_equal(raft__log_append(&f.log, repl, 2), 0);
    assert_int_equal(raft__log_last_index(&f.log), 6);
    assert_int_equal(raft__log_term_or_zero(&f.log, 4), 1);
    assert_int_equal(raft__log_term_or_zero(&f.log, 5), 2);
    /* Replacing into the stored part moves the unstable offset back. */
    raft_entry deep[] = {ent(2, 3)};
    assert_int_equal(raft__log_append(&f.log, deep, 1), 0);
    assert_int_equal(raft__log_last_index(&f.log), 2);
    assert_int_equal(raft__log_term_or_zero(&f.log, 2), 3);
    assert_int_equal(raft__log_persisted_index(&f.log), 1);
    /* A gap is refused and changes nothing. */
    raft_entry gap[] = {ent(9, 3)};
    assert_int_equal(raft__log_append(&f.log, gap, 1), TKV_ECORRUPT);
    assert_int_equal(raft__log_last_index(&f.log), 2);
    fixture_deinit(&f);
}

/* Raft paper 5.3 receiver rules: reply false on a mismatch at (index, term); append only
 * what is new; commit min(leaderCommit, last new). Committed entries never change. */
static void test_log_maybe_append_follows_receiver_rules(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 2, 3};
    log_fixture f;
    fixture_init(&f, terms, 3);
    bool ok;
    uint64_t last_new;
    raft_entry e4[] = {ent(4, 4)};
    assert_int_equal(raft__log_maybe_append(&f.log, 3, 2, 10, e4, 1, &ok, &last_new), 0);
    assert_false(ok);
    assert_int_equal(raft__log_maybe_append(&f.log, 3, 3, 10, e4, 1, &ok, &last_new), 0);
    assert_true(ok);
    assert_int_equal(last_new, 4);
    assert_int_equal(f.log.committed, 4);
    /* An old, already present entry is not an overwrite and does not shorten the log. */
    raft_entry e3[] = {ent(3, 3)};
    assert_int_equal(raft__log_maybe_append(&f.log, 2, 2, 3, e3, 1, &ok, &last_new), 0);
    assert_true(ok);
    assert_int_equal(raft__log_last_index(&f.log), 4);
    /* Overwriting a committed entry is refused. */
    raft_entry bad[] = {ent(3, 9)};
    assert_int_equal(raft__log_maybe_append(&f.log, 2, 2, 4, bad, 1, &ok, &last_new), TKV_ECORRUPT);
    assert_int_equal(raft__log_term_or_zero(&f.log, 3), 3);
    /* Entries that do not follow (index, term) consecutively are refused. */
    raft_entry holes[] = {ent(5, 4), ent(7, 4)};
    assert_int_equal(raft__log_maybe_append(&f.log, 4, 4, 4, holes, 2, &ok, &last_new),
                     TKV_ECORRUPT);
    fixture_deinit(&f);
}

/* Found by fuzz_raft_step: past the last entry the log answers term 0, which a message
 * claiming term 0 matched, so a forged append (index past the log, log_term 0) or snapshot
 * (term 0) committed past the end of the log and tripped an assertion. Nothing past the
 * last entry matches. */
static void test_log_nothing_past_the_last_entry_matches(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 1};
    log_fixture f;
    fixture_init(&f, terms, 2);
    assert_false(raft__log_match_term(&f.log, 3, 0));
    assert_false(raft__log_match_term(&f.log, UINT64_MAX, 0));
    assert_true(raft__log_match_term(&f.log, 2, 1));
    bool ok;
    uint64_t last_new;
    assert_int_equal(raft__log_maybe_append(&f.log, 7, 0, 7, NULL, 0, &ok, &last_new), 0);
    assert_false(ok);
    assert_int_equal(f.log.committed, 0);
    assert_int_equal(raft__log_last_index(&f.log), 2);
    fixture_deinit(&f);
}

static void test_log_find_conflict_reports_first_mismatch(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 2, 3};
    log_fixture f;
    fixture_init(&f, terms, 3);
    raft_entry same[] = {ent(2, 2), ent(3, 3)};
    assert_int_equal(raft__log_find_conflict(&f.log, same, 2), 0);
    raft_entry newer[] = {ent(3, 3), ent(4, 4)};
    assert_int_equal(raft__log_find_conflict(&f.log, newer, 2), 4);
    raft_entry differ[] = {ent(2, 2), ent(3, 4)};
    assert_int_equal(raft__log_find_conflict(&f.log, differ, 2), 3);
    fixture_deinit(&f);
}

/* Thesis 5.3 fast backtracking: the largest index <= i whose term is <= t. */
static void test_log_find_conflict_by_term_skips_whole_terms(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 1, 2, 2, 5, 5, 5};
    log_fixture f;
    fixture_init(&f, terms, 7);
    assert_int_equal(raft__log_find_conflict_by_term(&f.log, 7, 4), 4);
    assert_int_equal(raft__log_find_conflict_by_term(&f.log, 7, 5), 7);
    assert_int_equal(raft__log_find_conflict_by_term(&f.log, 4, 1), 2);
    assert_int_equal(raft__log_find_conflict_by_term(&f.log, 7, 0), 0);
    fixture_deinit(&f);
}

/* Raft paper 5.4.1: up to date means a later last term, or the same term and no shorter. */
static void test_log_is_up_to_date_compares_term_then_length(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 2, 2};
    log_fixture f;
    fixture_init(&f, terms, 3);
    assert_true(raft__log_is_up_to_date(&f.log, 1, 3));
    assert_true(raft__log_is_up_to_date(&f.log, 3, 2));
    assert_true(raft__log_is_up_to_date(&f.log, 4, 2));
    assert_false(raft__log_is_up_to_date(&f.log, 2, 2));
    assert_false(raft__log_is_up_to_date(&f.log, 9, 1));
    fixture_deinit(&f);
}

/* Entries handed out respect the byte limit but always include one entry. */
static void test_log_slice_honours_byte_limit_with_one_entry_minimum(void **state)
{
    (void)state;
    log_fixture f;
    uint64_t terms[] = {1, 1, 1};
    fixture_init(&f, terms, 3);
    char data[10] = "0123456789";
    for (uint64_t i = 1; i <= 6; i++) {
        raft_entry e = ent(i, 1);
        e.data = (uint8_t *)data;
        e.data_len = sizeof(data);
        if (i <= 3)
            assert_int_equal(raft_mem_storage_append(f.ms, &e, 1), 0); /* same, with data */
        else
            assert_int_equal(raft__log_append(&f.log, &e, 1), 0);
    }
    raft_entry_vec v;
    raft_entry_vec_init(&v);
    assert_int_equal(raft__log_slice(&f.log, 1, 7, 0, &v), 0);
    assert_int_equal(v.len, 1);
    raft_entry_vec_truncate(&v, 0);
    assert_int_equal(raft__log_slice(&f.log, 2, 7, 25, &v), 0);
    assert_int_equal(v.len, 2);
    raft_entry_vec_truncate(&v, 0);
    /* Across the storage / unstable boundary. */
    assert_int_equal(raft__log_slice(&f.log, 2, 7, 45, &v), 0);
    assert_int_equal(v.len, 4);
    assert_int_equal(v.items[3].index, 5);
    assert_memory_equal(v.items[3].data, data, sizeof(data));
    raft_entry_vec_truncate(&v, 0);
    assert_int_equal(raft__log_slice(&f.log, 1, 7, UINT64_MAX, &v), 0);
    assert_int_equal(v.len, 6);
    raft_entry_vec_deinit(&v);
    fixture_deinit(&f);
}

/* After compaction the marker keeps the term of first_index - 1; older terms are gone. */
static void test_mem_storage_compaction_keeps_marker_term(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 2, 3, 4, 5};
    log_fixture f;
    fixture_init(&f, terms, 5);
    raft_conf_state cs = {{1, 2, 3}, 3, {0}, 0};
    assert_int_equal(raft_mem_storage_create_snapshot(f.ms, 3, &cs, "sm", 2), 0);
    assert_int_equal(raft_mem_storage_compact(f.ms, 3), 0);
    assert_int_equal(f.st.first_index(f.ms), 4);
    assert_int_equal(f.st.last_index(f.ms), 5);
    uint64_t t;
    assert_int_equal(f.st.term(f.ms, 3, &t), 0);
    assert_int_equal(t, 3);
    assert_int_equal(f.st.term(f.ms, 2, &t), TKV_ECOMPACTED);
    assert_int_equal(raft__log_term(&f.log, 2, &t), TKV_ECOMPACTED);
    assert_int_equal(raft_mem_storage_compact(f.ms, 3), TKV_ECOMPACTED);
    assert_int_equal(raft_mem_storage_compact(f.ms, 9), TKV_ENOTFOUND);
    raft_entry_vec v;
    raft_entry_vec_init(&v);
    assert_int_equal(f.st.entries(f.ms, 3, 6, UINT64_MAX, &v), TKV_ECOMPACTED);
    assert_int_equal(raft__log_slice(&f.log, 3, 6, UINT64_MAX, &v), TKV_ECOMPACTED);
    assert_int_equal(v.len, 0);
    raft_entry_vec_deinit(&v);
    raft_snapshot snap;
    assert_int_equal(f.st.snapshot(f.ms, 0, &snap), 0);
    assert_int_equal(snap.metadata.index, 3);
    assert_int_equal(snap.metadata.term, 3);
    assert_int_equal(snap.metadata.conf_state.n_voters, 3);
    assert_memory_equal(snap.data, "sm", 2);
    raft_snapshot_deinit(&snap);
    /* A clone is an independent disk image. */
    raft_mem_storage *copy;
    assert_int_equal(raft_mem_storage_clone(f.ms, &copy), 0);
    raft_entry e6 = ent(6, 6);
    assert_int_equal(raft_mem_storage_append(f.ms, &e6, 1), 0);
    raft_storage cst = raft_mem_storage_iface(copy);
    assert_int_equal(cst.last_index(copy), 5);
    assert_int_equal(cst.first_index(copy), 4);
    raft_mem_storage_free(copy);
    fixture_deinit(&f);
}

static void test_mem_storage_applies_snapshot_and_refuses_stale_one(void **state)
{
    (void)state;
    uint64_t terms[] = {1, 1};
    log_fixture f;
    fixture_init(&f, terms, 2);
    raft_snapshot s = {{{{1, 2}, 2, {3}, 1}, 10, 4}, (uint8_t *)"kv", 2};
    assert_int_equal(raft_mem_storage_apply_snapshot(f.ms, &s), 0);
    assert_int_equal(f.st.first_index(f.ms), 11);
    assert_int_equal(f.st.last_index(f.ms), 10);
    raft_hard_state hs;
    raft_conf_state cs;
    assert_int_equal(f.st.initial_state(f.ms, &hs, &cs), 0);
    assert_int_equal(hs.commit, 10);
    assert_int_equal(cs.n_learners, 1);
    s.metadata.index = 9;
    assert_int_equal(raft_mem_storage_apply_snapshot(f.ms, &s), TKV_ESTALE);
    raft_entry late = ent(11, 4);
    assert_int_equal(raft_mem_storage_append(f.ms, &late, 1), 0);
    raft_entry gap = ent(13, 4);
    assert_int_equal(raft_mem_storage_append(f.ms, &gap, 1), TKV_ECORRUPT);
    fixture_deinit(&f);
}

/* Probe state sends one append and waits; replicate state streams up to the window. */
static void test_progress_flow_control_states(void **state)
{
    (void)state;
    raft__tracker t;
    raft__tracker_init(&t, 2);
    assert_int_equal(raft__tracker_add(&t, 2, false, 5), 0);
    raft__progress *pr = raft__tracker_get(&t, 2);
    assert_false(raft__progress_is_paused(pr));
    pr->probe_sent = true;
    assert_true(raft__progress_is_paused(pr));
    /* A rejection of an older probe is stale; of the current one moves next to the hint. */
    assert_false(raft__progress_maybe_decr_to(pr, 2, 1));
    assert_true(raft__progress_maybe_decr_to(pr, 4, 1));
    assert_int_equal(pr->next, 2);
    assert_false(raft__progress_is_paused(pr));
    assert_true(raft__progress_maybe_update(pr, 3));
    raft__progress_become_replicate(pr);
    assert_int_equal(pr->next, 4);
    raft__inflights_add(&pr->ins, 5);
    raft__inflights_add(&pr->ins, 7);
    assert_true(raft__progress_is_paused(pr));
    raft__inflights_free_to(&pr->ins, 5);
    assert_false(raft__progress_is_paused(pr));
    /* In replicate state a rejection at or below match is stale. */
    assert_false(raft__progress_maybe_decr_to(pr, 3, 0));
    raft__progress_become_snapshot(pr, 20);
    assert_true(raft__progress_is_paused(pr));
    raft__progress_become_probe(pr);
    assert_int_equal(pr->next, 21);
    raft__tracker_deinit(&t);
}

/* Quorum arithmetic: commit is the largest index a majority of voters matched; learners do
 * not count. */
static void test_tracker_commit_counts_voters_only(void **state)
{
    (void)state;
    raft__tracker t;
    raft__tracker_init(&t, 4);
    for (uint64_t id = 1; id <= 5; id++)
        assert_int_equal(raft__tracker_add(&t, id, id == 5, 1), 0);
    uint64_t match[] = {0, 9, 7, 3, 2, 100};
    for (uint64_t id = 1; id <= 5; id++)
        raft__tracker_get(&t, id)->match = match[id];
    assert_int_equal(raft__tracker_committed(&t), 3); /* voters 9,7,3,2: 3 of 4 reach 3 */
    raft__tracker_remove(&t, 4);
    assert_int_equal(raft__tracker_committed(&t), 7); /* voters 9,7,3 */
    assert_int_equal(raft__tracker_voter_count(&t), 3);
    raft__tracker_deinit(&t);
}

static void test_conf_change_round_trips_eraftpb_wire_format(void **state)
{
    (void)state;
    tkv_buf b;
    tkv_buf_init(&b);
    raft_conf_change cc = {RAFT_CONF_ADD_LEARNER_NODE, 300, tkv_slice_str("ctx")};
    assert_int_equal(raft_conf_change_encode(&cc, &b), 0);
    /* field 2 varint 2, field 3 varint 300 (0xac 0x02), field 4 bytes "ctx" */
    const uint8_t want[] = {0x10, 0x02, 0x18, 0xac, 0x02, 0x22, 0x03, 'c', 't', 'x'};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    raft_conf_change out;
    assert_int_equal(raft_conf_change_decode(tkv_buf_slice(&b), &out), 0);
    assert_int_equal(out.change_type, RAFT_CONF_ADD_LEARNER_NODE);
    assert_int_equal(out.node_id, 300);
    assert_true(tkv_slice_eq(out.context, tkv_slice_str("ctx")));
    /* An unknown field (1: the deprecated id) is skipped. */
    const uint8_t with_id[] = {0x08, 0x07, 0x18, 0x05};
    assert_int_equal(raft_conf_change_decode(tkv_slice_of(with_id, sizeof(with_id)), &out), 0);
    assert_int_equal(out.change_type, RAFT_CONF_ADD_NODE);
    assert_int_equal(out.node_id, 5);
    /* Truncated, a bad type, a zero node id, and garbage are corrupt. */
    assert_int_equal(raft_conf_change_decode(tkv_slice_of(b.data, b.len - 1), &out), TKV_ECORRUPT);
    const uint8_t bad_type[] = {0x10, 0x09, 0x18, 0x01};
    assert_int_equal(raft_conf_change_decode(tkv_slice_of(bad_type, 4), &out), TKV_ECORRUPT);
    const uint8_t no_node[] = {0x10, 0x01};
    assert_int_equal(raft_conf_change_decode(tkv_slice_of(no_node, 2), &out), TKV_ECORRUPT);
    const uint8_t garbage[] = {0xff, 0xff, 0xff};
    assert_int_equal(raft_conf_change_decode(tkv_slice_of(garbage, 3), &out), TKV_ECORRUPT);
    tkv_buf_deinit(&b);
}

static void test_message_copy_is_deep_and_survives_oom(void **state)
{
    (void)state;
    raft_entry ents[2] = {{RAFT_ENTRY_NORMAL, 1, 1, (uint8_t *)"ab", 2, (uint8_t *)"c", 1},
                          {RAFT_ENTRY_NORMAL, 1, 2, NULL, 0, NULL, 0}};
    raft_snapshot snap = {{{{1}, 1, {0}, 0}, 7, 2}, (uint8_t *)"snap", 4};
    raft_message m = {0};
    m.msg_type = RAFT_MSG_APPEND;
    m.entries = ents;
    m.n_entries = 2;
    m.snapshot = &snap;
    m.context = (uint8_t *)"xy";
    m.context_len = 2;
    raft_message c;
    assert_int_equal(raft_message_copy(&c, &m), 0);
    assert_ptr_not_equal(c.entries, ents);
    assert_memory_equal(c.entries[0].data, "ab", 2);
    assert_memory_equal(c.entries[0].context, "c", 1);
    assert_memory_equal(c.snapshot->data, "snap", 4);
    assert_int_equal(c.snapshot->metadata.index, 7);
    raft_message_deinit(&c);
    for (long k = 0; k < 6; k++) {
        tkv_alloc_fail_after(k);
        int rc = raft_message_copy(&c, &m);
        tkv_alloc_fault_clear();
        if (rc == 0)
            raft_message_deinit(&c);
        else
            assert_int_equal(rc, -ENOMEM);
    }
}

int raft_test_log_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_append_replaces_conflicting_tail),
        cmocka_unit_test(test_log_maybe_append_follows_receiver_rules),
        cmocka_unit_test(test_log_nothing_past_the_last_entry_matches),
        cmocka_unit_test(test_log_find_conflict_reports_first_mismatch),
        cmocka_unit_test(test_log_find_conflict_by_term_skips_whole_terms),
        cmocka_unit_test(test_log_is_up_to_date_compares_term_then_length),
        cmocka_unit_test(test_log_slice_honours_byte_limit_with_one_entry_minimum),
        cmocka_unit_test(test_mem_storage_compaction_keeps_marker_term),
        cmocka_unit_test(test_mem_storage_applies_snapshot_and_refuses_stale_one),
        cmocka_unit_test(test_progress_flow_control_states),
        cmocka_unit_test(test_tracker_commit_counts_voters_only),
        cmocka_unit_test(test_conf_change_round_trips_eraftpb_wire_format),
        cmocka_unit_test(test_message_copy_is_deep_and_survives_oom),
    };
    return cmocka_run_group_tests_name("raft_log", tests, NULL, NULL);
}
