/*
 * sim_world.c: the simulated world: nodes on disks that lose unsynced writes when they crash,
 * a network that delays, reorders, drops, duplicates and partitions (symmetrically or one
 * way), clients, membership changes, leadership transfers and compaction, all chosen by one
 * PRNG so that a seed replays exactly. After every step the checker runs; at the end the
 * faults heal and liveness is checked: a leader within 10 election timeouts, and every
 * outstanding write committed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim.h"

/* ---- tracing --------------------------------------------------------------------------- */

static char trace_lines[SIM_TRACE_CAP][224];
static size_t trace_head, trace_count;

void sim_trace_reset(void)
{
    trace_head = trace_count = 0;
}

void sim_trace(sim *s, const char *fmt, ...)
{
    if (!s->o.trace)
        return;
    char *line = trace_lines[trace_head];
    int n = snprintf(line, sizeof(trace_lines[0]), "t=%llu ", (unsigned long long)s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(trace_lines[0]) - (size_t)n, fmt, ap);
    va_end(ap);
    trace_head = (trace_head + 1) % SIM_TRACE_CAP;
    if (trace_count < SIM_TRACE_CAP)
        trace_count++;
}

void sim_trace_dump(int max_lines)
{
    size_t n = trace_count < (size_t)max_lines ? trace_count : (size_t)max_lines;
    for (size_t i = 0; i < n; i++) {
        size_t k = (trace_head + SIM_TRACE_CAP - n + i) % SIM_TRACE_CAP;
        printf("  %s\n", trace_lines[k]);
    }
}

static void raft_tracer(void *ctx, const char *line)
{
    sim_trace(ctx, "%s", line);
}

static void trace_nodes(sim *s)
{
    for (uint64_t id = 1; id < SIM_MAX_IDS; id++) {
        sim_node *n = &s->nodes[id];
        if (n->status != SIM_UP)
            continue;
        raft_status st;
        raft_node_status(n->r, &st);
        char voters[64] = "", learners[64] = "";
        for (size_t i = 0, o = 0; i < st.conf_state.n_voters && o < 56; i++)
            o += (size_t)snprintf(voters + o, sizeof(voters) - o, "%llu ",
                                  (unsigned long long)st.conf_state.voters[i]);
        for (size_t i = 0, o = 0; i < st.conf_state.n_learners && o < 56; i++)
            o += (size_t)snprintf(learners + o, sizeof(learners) - o, "%llu ",
                                  (unsigned long long)st.conf_state.learners[i]);
        sim_trace(s,
                  "  node %llu %s term %llu vote %llu lead %llu commit %llu applied %llu "
                  "log %llu..%llu voters [%s] learners [%s]",
                  (unsigned long long)id, raft_state_name(st.soft_state.raft_state),
                  (unsigned long long)st.hard_state.term, (unsigned long long)st.hard_state.vote,
                  (unsigned long long)st.soft_state.leader_id,
                  (unsigned long long)st.hard_state.commit, (unsigned long long)st.applied,
                  (unsigned long long)st.first_index, (unsigned long long)st.last_index, voters,
                  learners);
    }
}

void sim_fail(sim *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
    sim_trace(s, "CHECK FAILED: %s", s->why);
    if (s->o.trace)
        trace_nodes(s);
}

void *sim_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q)
        abort();
    return q;
}

void *sim_push(void *arr, size_t *len, size_t *cap, size_t elem)
{
    void **a = arr;
    if (*len == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *a = sim_xrealloc(*a, *cap * elem);
    }
    void *slot = (char *)*a + (*len)++ * elem;
    memset(slot, 0, elem);
    return slot;
}

sim_node *sim_leader(sim *s)
{
    sim_node *best = NULL;
    for (uint64_t id = 1; id < SIM_MAX_IDS; id++) {
        sim_node *n = &s->nodes[id];
        if (n->status == SIM_UP && raft_node_state(n->r) == RAFT_STATE_LEADER &&
            (!best || raft_node_term(n->r) > raft_node_term(best->r)))
            best = n;
    }
    return best;
}

static bool chance(sim *s, unsigned pct)
{
    return tkv_rng_below(&s->rng, 100) < pct;
}

/* ---- nodes ----------------------------------------------------------------------------- */

static void node_start(sim *s, sim_node *n)
{
    raft_config cfg = s->base_cfg;
    cfg.id = n->id;
    cfg.seed = tkv_rng_next(&s->rng);
    const raft_snapshot *snap = raft_mem_storage_snapshot_ref(n->disk);
    cfg.applied = snap->metadata.index;
    if (s->o.trace) {
        cfg.tracer = raft_tracer;
        cfg.tracer_ctx = s;
    }
    raft_storage st = raft_mem_storage_iface(n->disk);
    int rc = raft_node_new(&cfg, &st, &n->r);
    if (rc != 0) {
        raft_hard_state hs = raft_mem_storage_hard_state(n->disk);
        sim_fail(s,
                 "node %llu does not start from its disk: %s (term %llu commit %llu, log "
                 "%llu..%llu, applied %llu)",
                 (unsigned long long)n->id, tkv_strerror(rc), (unsigned long long)hs.term,
                 (unsigned long long)hs.commit, (unsigned long long)st.first_index(st.ctx),
                 (unsigned long long)st.last_index(st.ctx), (unsigned long long)cfg.applied);
        n->status = SIM_CRASHED;
        return;
    }
    sim_sm_restore(s, n, snap);
    n->incarnation++;
    n->last_commit = 0;
    n->lead_term = 0;
    n->status = SIM_UP;
}

static void node_create(sim *s, uint64_t id, const raft_conf_state *cs)
{
    sim_node *n = &s->nodes[id];
    memset(n, 0, sizeof(*n));
    n->id = id;
    if (raft_mem_storage_new(cs, &n->disk) != 0)
        abort();
    n->durable_hs = raft_mem_storage_hard_state(n->disk);
    sim_mirror_init(s, n);
    node_start(s, n);
    sim_trace(s, "node %llu created%s", (unsigned long long)id, cs ? "" : " (joining)");
}

static void node_crash(sim *s, sim_node *n, const char *how)
{
    raft_node_free(n->r);
    n->r = NULL;
    n->status = SIM_CRASHED;
    /* Writes since the last fsync are gone: only the hard state can be unsynced here, as every
     * Ready with entries or a new term / vote is synced before anything depends on it. */
    raft_mem_storage_set_hard_state(n->disk, &n->durable_hs);
    sim_sm_deinit(&n->sm);
    s->n_crashes++;
    sim_trace(s, "node %llu crashed %s", (unsigned long long)n->id, how);
}

static void node_destroy(sim *s, sim_node *n)
{
    raft_node_free(n->r);
    n->r = NULL;
    raft_mem_storage_free(n->disk);
    n->disk = NULL;
    sim_sm_deinit(&n->sm);
    free(n->mp);
    n->mp = NULL;
    n->mp_cap = 0;
    n->status = SIM_DESTROYED;
    sim_trace(s, "node %llu destroyed", (unsigned long long)n->id);
}

/* ---- the network ------------------------------------------------------------------------ */

static uint64_t delay(sim *s, const raft_message *m)
{
    if (s->healing)
        return tkv_rng_below(&s->rng, 2);
    if (m->from < SIM_MAX_IDS && m->to < SIM_MAX_IDS && s->slow[m->from][m->to])
        return 3 + tkv_rng_below(&s->rng, 12);
    uint64_t r = tkv_rng_below(&s->rng, 100);
    if (r < 70)
        return 0;
    if (r < 90)
        return 1;
    if (r < 98)
        return 2 + tkv_rng_below(&s->rng, 2);
    return 4 + tkv_rng_below(&s->rng, 7);
}

static void net_push(sim *s, const raft_message *m)
{
    if (s->n_net == s->cap_net) {
        s->cap_net = s->cap_net ? s->cap_net * 2 : 256;
        s->net = sim_xrealloc(s->net, s->cap_net * sizeof(sim_msg));
    }
    sim_msg sm;
    if (raft_message_copy(&sm.m, m) != 0)
        abort();
    sm.at = s->now + delay(s, m);
    if (sm.at <= s->now) {
        /* Keep the due ones first. */
        s->net[s->n_net++] = s->net[s->n_due];
        s->net[s->n_due++] = sm;
    } else {
        s->net[s->n_net++] = sm;
    }
}

static void send_all(sim *s, const raft_message *ms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        net_push(s, &ms[i]);
}

/* Moves the messages that became due at the new time into the due part. */
static void net_advance(sim *s)
{
    for (size_t i = s->n_due; i < s->n_net; i++) {
        if (s->net[i].at <= s->now) {
            sim_msg t = s->net[i];
            s->net[i] = s->net[s->n_due];
            s->net[s->n_due++] = t;
        }
    }
}

/* Takes the due message @k out of the network. */
static raft_message net_take(sim *s, size_t k)
{
    raft_message m = s->net[k].m;
    s->net[k] = s->net[--s->n_due];
    s->net[s->n_due] = s->net[--s->n_net];
    return m;
}

static bool is_up(const sim *s, uint64_t id)
{
    return id >= 1 && id < SIM_MAX_IDS && s->nodes[id].status == SIM_UP;
}

static void process_readies(sim *s);

static void report_snapshot(sim *s, const raft_message *m, bool failed)
{
    if (m->msg_type != RAFT_MSG_SNAPSHOT || !is_up(s, m->from))
        return;
    int rc = raft_node_report_snapshot(s->nodes[m->from].r, m->to, failed);
    if (rc != 0)
        sim_fail(s, "report_snapshot: %s", tkv_strerror(rc));
}

static void deliver(sim *s, size_t k)
{
    raft_message m = net_take(s, k);
    bool link = is_up(s, m.to) && m.from < SIM_MAX_IDS && !s->cut[m.from][m.to];
    bool lost = !link || (!s->healing && chance(s, s->drop_pct));
    if (lost) {
        sim_trace(s, "drop %s %llu->%llu", raft_message_type_name(m.msg_type),
                  (unsigned long long)m.from, (unsigned long long)m.to);
        report_snapshot(s, &m, true);
        /* A transport notices a broken connection now and then. */
        if (!link && m.msg_type == RAFT_MSG_APPEND && is_up(s, m.from) && chance(s, 20))
            if (raft_node_report_unreachable(s->nodes[m.from].r, m.to) != 0)
                sim_fail(s, "report_unreachable failed");
        raft_message_deinit(&m);
        process_readies(s);
        return;
    }
    if (!s->healing && chance(s, s->dup_pct))
        net_push(s, &m);
    sim_trace(s, "deliver %s %llu->%llu term %llu index %llu log_term %llu commit %llu n=%zu%s",
              raft_message_type_name(m.msg_type), (unsigned long long)m.from,
              (unsigned long long)m.to, (unsigned long long)m.term, (unsigned long long)m.index,
              (unsigned long long)m.log_term, (unsigned long long)m.commit, m.n_entries,
              m.reject ? " reject" : "");
    if (m.msg_type == RAFT_MSG_APPEND_RESPONSE || m.msg_type == RAFT_MSG_HEARTBEAT_RESPONSE)
        sim_note_response(s, &m);
    int rc = raft_node_step(s->nodes[m.to].r, &m);
    if (rc != 0 && rc != TKV_EDROPPED && rc != TKV_ENOTLEADER)
        sim_fail(s, "node %llu refused %s from %llu: %s", (unsigned long long)m.to,
                 raft_message_type_name(m.msg_type), (unsigned long long)m.from, tkv_strerror(rc));
    report_snapshot(s, &m, false);
    raft_message_deinit(&m);
    process_readies(s);
}

/* ---- Ready handling: what raftstore will do ------------------------------------------------ */

static void handle_ready(sim *s, sim_node *n)
{
    raft_ready *rd;
    int rc = raft_node_ready(n->r, &rd);
    if (rc != 0) {
        sim_fail(s, "ready at %llu: %s", (unsigned long long)n->id, tkv_strerror(rc));
        return;
    }
    bool leader = raft_node_state(n->r) == RAFT_STATE_LEADER;
    /* The process may die at any point of the Ready: after sending but before the fsync (the
     * write is lost), or after the fsync but before anything left the machine. The churn
     * profile likes the second right after a leader moved its commit index, when only the
     * leader knows the new commit (Raft paper Figure 8). */
    uint64_t crash = s->healing ? 1000 : tkv_rng_below(&s->rng, 1000);
    if (!s->healing && s->churn && leader && rd->has_hard_state &&
        rd->hard_state.commit > n->last_commit && crash >= 2 && chance(s, 8))
        crash = 1;
    if (crash != 1)
        send_all(s, rd->messages, rd->n_messages);
    if (crash == 0) {
        node_crash(s, n, "before its write reached the disk");
        return;
    }
    if (rd->snapshot) {
        sim_check_snapshot(s, n, rd->snapshot);
        rc = raft_mem_storage_apply_snapshot(n->disk, rd->snapshot);
        if (rc != 0)
            sim_fail(s, "apply snapshot on disk: %s", tkv_strerror(rc));
    }
    sim_check_entries(s, n, rd->entries, rd->n_entries, leader);
    rc = raft_mem_storage_append(n->disk, rd->entries, rd->n_entries);
    if (rc != 0)
        sim_fail(s, "append on disk: %s", tkv_strerror(rc));
    if (rd->has_hard_state)
        raft_mem_storage_set_hard_state(n->disk, &rd->hard_state);
    if (rd->must_sync || rd->snapshot)
        n->durable_hs = raft_mem_storage_hard_state(n->disk);
    if (rd->has_hard_state)
        sim_check_commit(s, n, &rd->hard_state);
    if (crash == 1) {
        n->durable_hs = raft_mem_storage_hard_state(n->disk);
        node_crash(s, n, "after its write, before its messages left");
        return;
    }
    send_all(s, rd->persisted_messages, rd->n_persisted_messages);
    if (rd->snapshot) {
        sim_sm_restore(s, n, rd->snapshot);
        s->n_snapshots++;
    }
    for (size_t i = 0; i < rd->n_committed_entries && !s->failed; i++)
        sim_apply_entry(s, n, &rd->committed_entries[i]);
    sim_read_states(s, n, rd->read_states, rd->n_read_states);
    rc = raft_node_advance(n->r);
    if (rc != 0)
        sim_fail(s, "advance: %s", tkv_strerror(rc));
    sim_reads_progress(s, n);
}

static void process_readies(sim *s)
{
    for (int round = 0; round < 100; round++) {
        bool any = false;
        for (uint64_t id = 1; id < SIM_MAX_IDS && !s->failed; id++) {
            sim_node *n = &s->nodes[id];
            while (n->status == SIM_UP && raft_node_has_ready(n->r) && !s->failed) {
                handle_ready(s, n);
                any = true;
            }
        }
        for (uint64_t id = 1; id < SIM_MAX_IDS; id++)
            if (s->nodes[id].destroy_pending) {
                s->nodes[id].destroy_pending = false;
                node_destroy(s, &s->nodes[id]);
            }
        if (!any || s->failed)
            return;
    }
    sim_fail(s, "Ready handling does not settle");
}

/* ---- actions --------------------------------------------------------------------------- */

/* Delivers one random due message (the random choice reorders them). */
static void deliver_one(sim *s)
{
    deliver(s, (size_t)tkv_rng_below(&s->rng, s->n_due));
}

static void act_tick(sim *s)
{
    /* Whatever is due arrives before time moves on, so that delays stay what delay() drew. */
    for (size_t guard = 0; s->n_due > 0 && !s->failed; guard++) {
        deliver_one(s);
        if (guard > 100000) {
            sim_fail(s, "messages never stop");
            return;
        }
    }
    s->now++;
    net_advance(s);
    for (uint64_t id = 1; id < SIM_MAX_IDS && !s->failed; id++)
        if (s->nodes[id].status == SIM_UP && raft_node_tick(s->nodes[id].r) != 0)
            sim_fail(s, "tick refused at %llu", (unsigned long long)id);
    process_readies(s);
}

static size_t count_status(const sim *s, sim_status st)
{
    size_t n = 0;
    for (uint64_t id = 1; id < SIM_MAX_IDS; id++)
        n += s->nodes[id].status == st;
    return n;
}

static sim_node *random_with(sim *s, sim_status st)
{
    size_t n = count_status(s, st);
    if (n == 0)
        return NULL;
    size_t k = (size_t)tkv_rng_below(&s->rng, n);
    for (uint64_t id = 1; id < SIM_MAX_IDS; id++)
        if (s->nodes[id].status == st && k-- == 0)
            return &s->nodes[id];
    return NULL;
}

static void act_crash(sim *s)
{
    sim_node *l = sim_leader(s);
    sim_node *n = (l && chance(s, s->churn ? 80 : 40)) ? l : random_with(s, SIM_UP);
    if (n && count_status(s, SIM_UP) > 1)
        node_crash(s, n, "");
}

static void act_restart(sim *s)
{
    sim_node *n = random_with(s, SIM_CRASHED);
    if (!n)
        return;
    node_start(s, n);
    sim_trace(s, "node %llu restarted, commit %llu", (unsigned long long)n->id,
              (unsigned long long)n->durable_hs.commit);
    process_readies(s);
}

static void act_partition(sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
    bool side[SIM_MAX_IDS];
    for (uint64_t id = 1; id < SIM_MAX_IDS; id++)
        side[id] = chance(s, 50);
    bool oneway = chance(s, 30);
    for (uint64_t a = 1; a < SIM_MAX_IDS; a++)
        for (uint64_t b = 1; b < SIM_MAX_IDS; b++)
            if (side[a] && !side[b]) {
                s->cut[a][b] = true;
                if (!oneway)
                    s->cut[b][a] = true;
            }
    sim_trace(s, "partition (%s)", oneway ? "one way" : "both ways");
}

static void act_cut_links(sim *s)
{
    uint64_t top = s->next_id;
    int k = 1 + (int)tkv_rng_below(&s->rng, 3);
    for (int i = 0; i < k; i++) {
        uint64_t a = 1 + tkv_rng_below(&s->rng, top - 1), b = 1 + tkv_rng_below(&s->rng, top - 1);
        if (a != b) {
            s->cut[a][b] = true;
            sim_trace(s, "cut link %llu->%llu", (unsigned long long)a, (unsigned long long)b);
        }
    }
}

static void act_slow_links(sim *s)
{
    uint64_t top = s->next_id;
    int k = 1 + (int)tkv_rng_below(&s->rng, 4);
    for (int i = 0; i < k; i++) {
        uint64_t a = 1 + tkv_rng_below(&s->rng, top - 1), b = 1 + tkv_rng_below(&s->rng, top - 1);
        s->slow[a][b] = true;
        sim_trace(s, "slow link %llu->%llu", (unsigned long long)a, (unsigned long long)b);
    }
}

static void act_heal_net(sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
    memset(s->slow, 0, sizeof(s->slow));
    sim_trace(s, "network healed");
}

static void act_rates(sim *s)
{
    static const unsigned drops[] = {0, 0, 2, 10, 25};
    static const unsigned dups[] = {0, 0, 3, 10};
    s->drop_pct = drops[tkv_rng_below(&s->rng, TKV_ARRAY_LEN(drops))];
    s->dup_pct = dups[tkv_rng_below(&s->rng, TKV_ARRAY_LEN(dups))];
    sim_trace(s, "drop %u%% duplicate %u%%", s->drop_pct, s->dup_pct);
}

static void act_conf_change(sim *s)
{
    sim_node *l = sim_leader(s);
    if (!l || s->now < s->pending_cc_until)
        return;
    raft_status st;
    raft_node_status(l->r, &st);
    const raft_conf_state *cs = &st.conf_state;
    size_t alive = SIM_MAX_IDS - 1 - count_status(s, SIM_UNUSED) - count_status(s, SIM_DESTROYED);
    raft_conf_change cc = {RAFT_CONF_ADD_LEARNER_NODE, 0, {NULL, 0}};
    uint64_t r = tkv_rng_below(&s->rng, 4);
    bool can_add = alive < (size_t)s->o.nodes + 2 && s->next_id < SIM_MAX_IDS &&
                   cs->n_voters + cs->n_learners < (size_t)s->o.nodes + 2;
    if (r == 0 && cs->n_learners > 0) {
        cc.change_type = RAFT_CONF_ADD_NODE; /* promote */
        cc.node_id = cs->learners[tkv_rng_below(&s->rng, cs->n_learners)];
    } else if (r == 1 && (cs->n_voters > 3 || cs->n_learners > 0)) {
        cc.change_type = RAFT_CONF_REMOVE_NODE;
        size_t total = cs->n_voters + cs->n_learners;
        size_t k = (size_t)tkv_rng_below(&s->rng, total);
        cc.node_id = k < cs->n_voters ? cs->voters[k] : cs->learners[k - cs->n_voters];
        if (cc.node_id == l->id || (k < cs->n_voters && cs->n_voters <= 3))
            return;
    } else if (can_add) {
        cc.change_type = chance(s, 75) ? RAFT_CONF_ADD_LEARNER_NODE : RAFT_CONF_ADD_NODE;
        cc.node_id = s->next_id++;
        node_create(s, cc.node_id, NULL);
    } else {
        return;
    }
    int rc = raft_node_propose_conf_change(l->r, &cc);
    sim_trace(s, "propose conf change %d %llu at leader %llu: %s", (int)cc.change_type,
              (unsigned long long)cc.node_id, (unsigned long long)l->id, tkv_strerror(rc));
    if (rc == 0) {
        s->n_conf_changes++;
        s->pending_cc_until = s->now + 3 * (uint64_t)s->base_cfg.election_tick;
    } else if (rc != TKV_EBUSY && rc != TKV_EDROPPED) {
        sim_fail(s, "propose_conf_change: %s", tkv_strerror(rc));
    }
    process_readies(s);
}

static void act_transfer(sim *s)
{
    sim_node *l = sim_leader(s);
    if (!l)
        return;
    raft_status st;
    raft_node_status(l->r, &st);
    if (st.conf_state.n_voters < 2)
        return;
    uint64_t to = st.conf_state.voters[tkv_rng_below(&s->rng, st.conf_state.n_voters)];
    int rc = raft_node_transfer_leader(l->r, to);
    if (rc != 0)
        sim_fail(s, "transfer_leader: %s", tkv_strerror(rc));
    s->n_transfers++;
    sim_trace(s, "transfer leadership %llu -> %llu", (unsigned long long)l->id,
              (unsigned long long)to);
    process_readies(s);
}

static void act_compact(sim *s)
{
    sim_node *n = random_with(s, SIM_UP);
    if (!n)
        return;
    uint64_t a = n->sm.applied;
    uint64_t snap = raft_mem_storage_snapshot_ref(n->disk)->metadata.index;
    if (a <= snap)
        return;
    tkv_buf data;
    tkv_buf_init(&data);
    sim_sm_snapshot_data(&n->sm, &data);
    int rc = raft_mem_storage_create_snapshot(n->disk, a, &n->sm.conf, data.data, data.len);
    tkv_buf_deinit(&data);
    if (rc != 0) {
        sim_fail(s, "create_snapshot at %llu: %s", (unsigned long long)a, tkv_strerror(rc));
        return;
    }
    uint64_t keep = tkv_rng_below(&s->rng, 4);
    uint64_t at = a > snap + 1 + keep ? a - keep : snap + 1;
    rc = raft_mem_storage_compact(n->disk, at);
    if (rc != 0)
        sim_fail(s, "compact at %llu: %s", (unsigned long long)at, tkv_strerror(rc));
    sim_trace(s, "node %llu snapshot at %llu, compacted to %llu", (unsigned long long)n->id,
              (unsigned long long)a, (unsigned long long)at);
}

typedef void (*sim_action)(sim *s);

/* The faults and admin actions, with their weights in the two profiles: "mixed" and "churn"
 * (leaders crash and return often, appends carry one entry: the ground on which Figure 8 of
 * the Raft paper grows). */
static const struct {
    sim_action act;
    unsigned mixed, churn;
} faults[] = {
    {act_crash, 10, 28},    {act_restart, 18, 30}, {act_partition, 8, 8}, {act_cut_links, 8, 8},
    {act_slow_links, 6, 6}, {act_heal_net, 8, 8},  {act_rates, 6, 5},     {act_conf_change, 10, 3},
    {act_transfer, 8, 2},   {act_compact, 18, 2},
};

static void act_fault(sim *s)
{
    unsigned total = 0;
    for (size_t i = 0; i < TKV_ARRAY_LEN(faults); i++)
        total += s->churn ? faults[i].churn : faults[i].mixed;
    unsigned f = (unsigned)tkv_rng_below(&s->rng, total);
    for (size_t i = 0; i < TKV_ARRAY_LEN(faults); i++) {
        unsigned w = s->churn ? faults[i].churn : faults[i].mixed;
        if (f < w) {
            faults[i].act(s);
            return;
        }
        f -= w;
    }
}

static void chaos_step(sim *s)
{
    uint64_t r = tkv_rng_below(&s->rng, 1000);
    if (s->n_due && r < 550) {
        deliver_one(s);
    } else if (r < 760) {
        act_tick(s);
    } else if (r < 840) {
        sim_client_write(s);
        process_readies(s);
    } else if (r < 890) {
        sim_client_read(s);
        process_readies(s);
    } else if (r < 910) {
        sim_client_retry(s, false);
        process_readies(s);
    } else if (r >= (s->churn ? 910u : 930u)) {
        act_fault(s);
    }
}

/* ---- healing and liveness ------------------------------------------------------------------ */

static void heal(sim *s)
{
    s->healing = true;
    memset(s->cut, 0, sizeof(s->cut));
    memset(s->slow, 0, sizeof(s->slow));
    s->drop_pct = s->dup_pct = 0;
    for (uint64_t id = 1; id < SIM_MAX_IDS && !s->failed; id++)
        if (s->nodes[id].status == SIM_CRASHED)
            node_start(s, &s->nodes[id]);
    sim_trace(s, "all faults healed");
    process_readies(s);
    uint64_t et = (uint64_t)s->base_cfg.election_tick;
    uint64_t t0 = s->now, leader_at = 0;
    while (!s->failed) {
        size_t guard = 0;
        while (!s->failed && s->n_due) {
            deliver_one(s);
            sim_check_step(s);
            if (++guard > 200000) {
                sim_fail(s, "messages never stop after healing");
                return;
            }
        }
        sim_node *l = sim_leader(s);
        if (!leader_at && l)
            leader_at = s->now;
        if (leader_at && sim_pending_writes(s) == 0)
            return;
        if (!leader_at && s->now - t0 > 10 * et) {
            sim_fail(s, "no leader within 10 election timeouts after the faults healed");
            return;
        }
        if (s->now - t0 > 40 * et) {
            sim_fail(s, "%zu outstanding writes not committed 40 election timeouts after healing",
                     sim_pending_writes(s));
            return;
        }
        sim_client_retry(s, true);
        process_readies(s);
        act_tick(s);
        sim_check_step(s);
    }
}

/* ---- a run ----------------------------------------------------------------------------- */

static void configure(sim *s)
{
    raft_config *c = &s->base_cfg;
    raft_config_default(c, 1);
    s->churn = chance(s, 35);
    c->election_tick = 10;
    c->heartbeat_tick = 1 + (int)tkv_rng_below(&s->rng, 3);
    c->pre_vote = !s->churn && chance(s, 75);
    c->check_quorum = !s->churn && chance(s, 80);
    c->read_only_option =
        c->check_quorum && chance(s, 50) ? RAFT_READ_ONLY_LEASE_BASED : RAFT_READ_ONLY_SAFE;
    static const uint64_t sizes[] = {0, 30, 200, 1 << 20};
    c->max_size_per_msg = s->churn ? 0 : sizes[tkv_rng_below(&s->rng, TKV_ARRAY_LEN(sizes))];
    static const size_t windows[] = {2, 4, 16, 256};
    c->max_inflight_msgs = windows[tkv_rng_below(&s->rng, TKV_ARRAY_LEN(windows))];
    c->max_committed_size_per_ready = chance(s, 25) ? 40 : 0;
    c->max_uncommitted_size = chance(s, 50) ? 400 : 0;
    c->skip_bcast_commit = chance(s, 20);
    sim_trace(s,
              "config: %s, heartbeat %d pre_vote %d check_quorum %d lease %d max_size %llu "
              "inflight %zu",
              s->churn ? "churn" : "mixed", c->heartbeat_tick, c->pre_vote, c->check_quorum,
              c->read_only_option == RAFT_READ_ONLY_LEASE_BASED,
              (unsigned long long)c->max_size_per_msg, c->max_inflight_msgs);
}

bool sim_run(const sim_opts *o, sim *s)
{
    memset(s, 0, sizeof(*s));
    s->o = *o;
    tkv_rng_seed(&s->rng, o->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)o->nodes);
    configure(s);
    sim_check_init(s);
    raft_conf_state cs;
    memset(&cs, 0, sizeof(cs));
    for (int i = 1; i <= o->nodes; i++)
        cs.voters[cs.n_voters++] = (uint64_t)i;
    for (int i = 1; i <= o->nodes; i++)
        node_create(s, (uint64_t)i, &cs);
    s->next_id = (uint64_t)o->nodes + 1;
    for (int step = 0; step < o->steps && !s->failed; step++) {
        chaos_step(s);
        sim_check_step(s);
    }
    if (!s->failed)
        heal(s);
    for (uint64_t id = 1; id < SIM_MAX_IDS; id++)
        if (s->nodes[id].status == SIM_UP || s->nodes[id].status == SIM_CRASHED)
            node_destroy(s, &s->nodes[id]);
    for (size_t i = 0; i < s->n_net; i++)
        raft_message_deinit(&s->net[i].m);
    free(s->net);
    free(s->writes);
    free(s->reads);
    sim_check_deinit(s);
    return !s->failed;
}
