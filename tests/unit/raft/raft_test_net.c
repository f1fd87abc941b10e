/*
 * raft_test_net.c: the in-memory cluster of raft_test_net.h.
 */
#include "raft_test_net.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static void tracer(void *ctx, const char *line)
{
    tn_net *net = ctx;
    if (!net->tracing)
        return;
    assert_int_equal(tkv_buf_append(&net->trace, line, strlen(line)), 0);
    assert_int_equal(tkv_buf_append_u8(&net->trace, '\n'), 0);
}

static void start_node(tn_net *net, tn_node *nd)
{
    raft_storage st = raft_mem_storage_iface(nd->st);
    nd->cfg.applied = nd->applied_index;
    assert_int_equal(raft_node_new(&nd->cfg, &st, &nd->r), 0);
    nd->down = false;
    (void)net;
}

void tn_add(tn_net *net, uint64_t id, const raft_conf_state *cs)
{
    assert_true(id >= 1 && id <= TN_MAX);
    tn_node *nd = &net->nodes[id];
    assert_false(nd->present);
    memset(nd, 0, sizeof(*nd));
    nd->id = id;
    nd->present = true;
    raft_config_default(&nd->cfg, id);
    nd->cfg.election_tick = 10;
    nd->cfg.heartbeat_tick = 1;
    /* As in etcd's tests: the refinements are off unless a test turns them on. */
    nd->cfg.check_quorum = false;
    nd->cfg.pre_vote = false;
    nd->cfg.tracer = tracer;
    nd->cfg.tracer_ctx = net;
    if (net->tweak)
        net->tweak(&nd->cfg, net->tweak_arg);
    raft_entry_vec_init(&nd->applied);
    assert_int_equal(raft_mem_storage_new(cs, &nd->st), 0);
    if (cs)
        nd->conf = *cs;
    nd->applied_index = raft_mem_storage_snapshot_ref(nd->st)->metadata.index;
    start_node(net, nd);
}

tn_net *tn_new(size_t n, tn_tweak_fn tweak, void *arg)
{
    tn_net *net = calloc(1, sizeof(*net));
    assert_non_null(net);
    net->tweak = tweak;
    net->tweak_arg = arg;
    net->tracing = true;
    tkv_buf_init(&net->trace);
    raft_conf_state cs;
    memset(&cs, 0, sizeof(cs));
    for (size_t i = 0; i < n; i++)
        cs.voters[cs.n_voters++] = i + 1;
    for (size_t i = 0; i < n; i++)
        tn_add(net, i + 1, &cs);
    return net;
}

void tn_free(tn_net *net)
{
    for (uint64_t id = 1; id <= TN_MAX; id++) {
        tn_node *nd = &net->nodes[id];
        if (!nd->present)
            continue;
        raft_node_free(nd->r);
        raft_mem_storage_free(nd->st);
        raft_entry_vec_deinit(&nd->applied);
    }
    for (size_t i = 0; i < net->qlen; i++)
        raft_message_deinit(&net->queue[i]);
    free(net->queue);
    tkv_buf_deinit(&net->trace);
    free(net);
}

raft_node *tn_r(tn_net *net, uint64_t id)
{
    assert_true(id >= 1 && id <= TN_MAX && net->nodes[id].present);
    return net->nodes[id].r;
}

static void enqueue(tn_net *net, const raft_message *m)
{
    if (net->qlen == net->qcap) {
        net->qcap = net->qcap ? net->qcap * 2 : 64;
        net->queue = realloc(net->queue, net->qcap * sizeof(raft_message));
        assert_non_null(net->queue);
    }
    assert_int_equal(raft_message_copy(&net->queue[net->qlen], m), 0);
    net->qlen++;
}

static void apply_entry(tn_node *nd, const raft_entry *e)
{
    nd->applied_index = e->index;
    if (e->entry_type == RAFT_ENTRY_CONF_CHANGE) {
        raft_conf_change cc;
        if (raft_conf_change_decode(tkv_slice_of(e->data, e->data_len), &cc) == 0)
            assert_int_equal(raft_node_apply_conf_change(nd->r, &cc, &nd->conf), 0);
        return;
    }
    if (e->data_len > 0)
        assert_int_equal(raft_entry_vec_push_copy(&nd->applied, e), 0);
}

void tn_handle_ready(tn_net *net, uint64_t id, raft_ready *rd)
{
    tn_node *nd = &net->nodes[id];
    for (size_t i = 0; i < rd->n_messages; i++)
        enqueue(net, &rd->messages[i]);
    if (rd->snapshot) {
        assert_int_equal(raft_mem_storage_apply_snapshot(nd->st, rd->snapshot), 0);
        nd->applied_index = rd->snapshot->metadata.index;
        nd->conf = rd->snapshot->metadata.conf_state;
    }
    assert_int_equal(raft_mem_storage_append(nd->st, rd->entries, rd->n_entries), 0);
    if (rd->has_hard_state)
        raft_mem_storage_set_hard_state(nd->st, &rd->hard_state);
    for (size_t i = 0; i < rd->n_persisted_messages; i++)
        enqueue(net, &rd->persisted_messages[i]);
    for (size_t i = 0; i < rd->n_committed_entries; i++)
        apply_entry(nd, &rd->committed_entries[i]);
    for (size_t i = 0; i < rd->n_read_states && nd->n_reads < 64; i++) {
        nd->reads[nd->n_reads].index = rd->read_states[i].index;
        nd->read_ctx[nd->n_reads] =
            rd->read_states[i].request_ctx_len ? rd->read_states[i].request_ctx[0] : 0;
        nd->n_reads++;
    }
    assert_int_equal(raft_node_advance(nd->r), 0);
}

static bool handle_one_ready(tn_net *net, tn_node *nd)
{
    if (nd->down || !raft_node_has_ready(nd->r))
        return false;
    raft_ready *rd;
    assert_int_equal(raft_node_ready(nd->r, &rd), 0);
    tn_handle_ready(net, nd->id, rd);
    return true;
}

void tn_ready(tn_net *net, uint64_t id)
{
    while (handle_one_ready(net, &net->nodes[id])) {
    }
}

void tn_deliver(tn_net *net)
{
    raft_message *q = net->queue;
    size_t n = net->qlen;
    net->queue = NULL;
    net->qlen = net->qcap = 0;
    for (size_t i = 0; i < n; i++) {
        raft_message *m = &q[i];
        bool ok = m->to >= 1 && m->to <= TN_MAX && net->nodes[m->to].present &&
                  !net->nodes[m->to].down && !net->cut[m->from][m->to] &&
                  !net->drop_type[m->msg_type] && (!net->filter || net->filter(m, net->filter_arg));
        if (net->observe)
            net->observe(m, ok, net->observe_arg);
        if (ok) {
            net->delivered[m->msg_type]++;
            int rc = raft_node_step(net->nodes[m->to].r, m);
            /* Dropped proposals and reads are normal outcomes for a forwarded request. */
            if (rc != TKV_EDROPPED && rc != TKV_ENOTLEADER)
                assert_int_equal(rc, 0);
        }
        raft_message_deinit(m);
    }
    free(q);
}

void tn_flush(tn_net *net)
{
    for (int round = 0; round < 10000; round++) {
        bool progress = false;
        for (uint64_t id = 1; id <= TN_MAX; id++)
            if (net->nodes[id].present)
                while (handle_one_ready(net, &net->nodes[id]))
                    progress = true;
        if (net->qlen > 0) {
            tn_deliver(net);
            progress = true;
        }
        if (!progress)
            return;
    }
    fail_msg("cluster did not quiesce");
}

void tn_tick(tn_net *net, uint64_t id, int k)
{
    for (int i = 0; i < k; i++) {
        assert_int_equal(raft_node_tick(tn_r(net, id)), 0);
        tn_flush(net);
    }
}

void tn_tick_all(tn_net *net, int k)
{
    for (int i = 0; i < k; i++) {
        for (uint64_t id = 1; id <= TN_MAX; id++)
            if (net->nodes[id].present && !net->nodes[id].down)
                assert_int_equal(raft_node_tick(net->nodes[id].r), 0);
        tn_flush(net);
    }
}

void tn_campaign(tn_net *net, uint64_t id)
{
    assert_int_equal(raft_node_campaign(tn_r(net, id)), 0);
    tn_flush(net);
}

int tn_propose(tn_net *net, uint64_t id, const char *s)
{
    int rc = raft_node_propose(tn_r(net, id), s, strlen(s), NULL, 0);
    tn_flush(net);
    return rc;
}

void tn_cut(tn_net *net, uint64_t a, uint64_t b, bool cut)
{
    net->cut[a][b] = cut;
    net->cut[b][a] = cut;
}

void tn_isolate(tn_net *net, uint64_t id, bool cut)
{
    for (uint64_t o = 1; o <= TN_MAX; o++)
        if (o != id)
            tn_cut(net, id, o, cut);
}

void tn_heal(tn_net *net)
{
    memset(net->cut, 0, sizeof(net->cut));
    memset(net->drop_type, 0, sizeof(net->drop_type));
}

void tn_crash(tn_net *net, uint64_t id)
{
    tn_node *nd = &net->nodes[id];
    assert_false(nd->down);
    raft_node_free(nd->r);
    nd->r = NULL;
    nd->down = true;
    /* The state machine is volatile: it restarts from the snapshot. */
    raft_entry_vec_truncate(&nd->applied, 0);
    nd->applied_index = raft_mem_storage_snapshot_ref(nd->st)->metadata.index;
}

void tn_restart(tn_net *net, uint64_t id)
{
    tn_node *nd = &net->nodes[id];
    assert_true(nd->down);
    start_node(net, nd);
}

size_t tn_applied_count(tn_net *net, uint64_t id, const char *s)
{
    tn_node *nd = &net->nodes[id];
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < nd->applied.len; i++)
        n += nd->applied.items[i].data_len == len && memcmp(nd->applied.items[i].data, s, len) == 0;
    return n;
}

uint64_t tn_stored_term(tn_net *net, uint64_t id, uint64_t i)
{
    raft_storage st = raft_mem_storage_iface(net->nodes[id].st);
    uint64_t t = 0;
    if (st.term(st.ctx, i, &t) != 0)
        return 0;
    return t;
}

bool tn_traced(tn_net *net, const char *needle)
{
    if (net->trace.len == 0)
        return false;
    assert_int_equal(tkv_buf_append_u8(&net->trace, 0), 0);
    net->trace.len--;
    return strstr((const char *)net->trace.data, needle) != NULL;
}

void tn_step(tn_net *net, uint64_t to, const raft_message *m)
{
    assert_int_equal(raft_node_step(tn_r(net, to), m), 0);
}

uint64_t tn_leader(tn_net *net)
{
    uint64_t best = RAFT_NONE, term = 0;
    for (uint64_t id = 1; id <= TN_MAX; id++) {
        tn_node *nd = &net->nodes[id];
        if (!nd->present || nd->down || raft_node_state(nd->r) != RAFT_STATE_LEADER)
            continue;
        if (raft_node_term(nd->r) >= term) {
            term = raft_node_term(nd->r);
            best = id;
        }
    }
    return best;
}

uint64_t tn_elect_by_ticks(tn_net *net)
{
    for (int i = 0; i < 100; i++) {
        tn_tick_all(net, 1);
        uint64_t l = tn_leader(net);
        if (l != RAFT_NONE)
            return l;
    }
    fail_msg("no leader after 100 ticks");
    return RAFT_NONE;
}

void tn_write_log(tn_net *net, uint64_t id, const uint64_t *terms, size_t n, uint64_t term)
{
    tn_node *nd = &net->nodes[id];
    bool was_up = !nd->down;
    if (was_up)
        tn_crash(net, id);
    for (size_t i = 0; i < n; i++) {
        raft_entry e = {RAFT_ENTRY_NORMAL,
                        terms[i],
                        RAFT_MEM_BOOTSTRAP_INDEX + 1 + i,
                        (uint8_t *)"x",
                        1,
                        NULL,
                        0};
        assert_int_equal(raft_mem_storage_append(nd->st, &e, 1), 0);
    }
    raft_hard_state hs = raft_mem_storage_hard_state(nd->st);
    hs.term = term;
    raft_mem_storage_set_hard_state(nd->st, &hs);
    if (was_up)
        tn_restart(net, id);
}
