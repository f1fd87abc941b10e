/*
 * fuzz_raft_step.c: a small Raft group (src/raft over raft_mem_storage) driven by the input.
 *
 * The input is a recipe: a header picks the configuration (3 or 5 voters, pre-vote,
 * check-quorum, lease reads, flow-control limits) and the mode, then each step picks an
 * action: deliver, drop or duplicate one of the messages in flight (so the network reorders,
 * loses and repeats at the input's will), tick every node or one node, propose a write, ask
 * for a read index, campaign, transfer leadership, crash a node (also in the middle of a
 * Ready: before its write reached the disk, or after it but before its messages left),
 * restart it, compact its log into a snapshot, change the membership, report a peer
 * unreachable, or inject a message decoded from the input. Every Ready is handled as
 * raftstore does (send, persist, send persisted messages, apply, advance).
 *
 * Honest mode (the nodes only see each other's messages): after every step the simulator's
 * checker (tests/sim/sim_check.c, linked in) proves Election Safety, Leader Append-Only, Log
 * Matching, Leader Completeness, State Machine Safety and that committed entries never change,
 * that commit and apply never go back, and that a leader steps down without a quorum; the
 * simulator's clients (tests/sim/sim_kv.c) check that every read sees every write acknowledged
 * before it began. Injected messages are either addressed to another node (they must be
 * ignored: 0 and no change) or malformed (a local type, an unknown type, a length without its
 * pointer, an unknown entry type: TKV_ECORRUPT and no change, never an assertion). A header
 * bit ends the run by healing every fault and checking liveness: a leader within 10 election
 * timeouts and every write committed.
 *
 * Forged mode adds messages with arbitrary fields (any type, term, index, entries, snapshot)
 * from members and strangers. Those can fool a Raft group (Raft trusts its peers; raftstore
 * authenticates them), so the global checks are off, and what must still hold is what one
 * node guarantees on its own: no assertion or crash, only the documented errors, its term
 * never goes back and it votes once per term, its commit and apply never go back, it never
 * commits past its persisted log nor changes an entry it has committed, it applies exactly
 * the entries it persisted in order, a leader never overwrites its own log, everything but
 * the commit index it asks to persist is synced, what it asks storage to persist is always
 * consistent, and it restarts from what it persisted.
 */
#include <stdio.h>

#include "base/codec.h"
#include "fuzz/fuzz.h"
#include "sim/sim.h"

#define FZ_MAX_ID    7 /* member ids 1..7; 8 is never a member */
#define FZ_MAX_QUEUE 256
#define FZ_MAX_STEPS 2000

/* What one node guarantees on its own (checked in both modes). */
typedef struct fz_local {
    uint64_t term, vote, commit; /* last persisted hard state */
    uint64_t applied;
    uint64_t snap;   /* index of the snapshot on disk */
    uint64_t *h;     /* hash of persisted entry snap + 1 + i */
    size_t n, cap;   /* entries persisted after the snapshot */
    int crash_at;    /* -1, or crash in the next Ready: 0 before the write, 1 after */
    bool was_leader; /* leader when it last persisted */
    uint64_t leader_term;
} fz_local;

typedef struct fz {
    sim *s;
    bool forged;
    bool lease;
    bool heal; /* end with the liveness check (honest mode) */
    fz_local loc[SIM_MAX_IDS];
    raft_message q[FZ_MAX_QUEUE];
    size_t nq;
    uint64_t next_id;
} fz;

/* FUZZ_TRACE=1 in the environment prints every step and the nodes' own trace lines (for
 * turning a failing input into a story). */
static int tracing = -1;

static bool trace_on(void)
{
    if (tracing < 0)
        tracing = getenv("FUZZ_TRACE") != NULL;
    return tracing > 0;
}

static void raft_tracer(void *ctx, const char *line)
{
    fprintf(stderr, "  [%llu] %s\n", (unsigned long long)(uintptr_t)ctx, line);
}

static void fz_fail_if(fz *f)
{
    if (f->s->failed) {
        fprintf(stderr, "raft_step: %s\n", f->s->why);
        FUZZ_CHECK(!f->s->failed);
    }
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t ehash(const raft_entry *e)
{
    return mix(mix(e->term) ^ (uint64_t)e->entry_type ^ sim_hash_bytes(e->data, e->data_len) ^
               (sim_hash_bytes(e->context, e->context_len) << 1));
}

static bool is_up(const fz *f, uint64_t id)
{
    return id >= 1 && id <= FZ_MAX_ID && f->s->nodes[id].status == SIM_UP;
}

/* ---- node-local checks ---------------------------------------------------------------- */

static uint64_t local_last(const fz_local *l)
{
    return l->snap + l->n;
}

static void local_reset(fz_local *l, const raft_mem_storage *disk)
{
    free(l->h);
    memset(l, 0, sizeof(*l));
    l->crash_at = -1;
    if (disk != NULL) {
        raft_hard_state hs = raft_mem_storage_hard_state(disk);
        l->term = hs.term;
        l->vote = hs.vote;
        l->commit = hs.commit;
        l->snap = raft_mem_storage_snapshot_ref(disk)->metadata.index;
        l->applied = l->snap;
    }
}

static void local_snapshot(fz_local *l, const raft_snapshot *snap)
{
    FUZZ_CHECK(snap->metadata.index > l->commit); /* a snapshot never rolls back the commit */
    l->snap = snap->metadata.index;
    l->n = 0;
}

static void local_entries(fz_local *l, const raft_entry *e, size_t k, bool leader)
{
    if (k == 0)
        return;
    uint64_t first = e[0].index, last = local_last(l);
    /* Consecutive, after the snapshot, no gap after the log. */
    FUZZ_CHECK(first > l->snap && first <= last + 1);
    /* Leader Append-Only on one node. */
    FUZZ_CHECK(!leader || first == last + 1);
    for (size_t i = 0; i < k; i++) {
        FUZZ_CHECK(e[i].index == first + i);
        uint64_t h = ehash(&e[i]);
        size_t at = (size_t)(e[i].index - l->snap - 1);
        /* A committed entry never changes. */
        if (e[i].index <= l->commit && e[i].index <= last)
            FUZZ_CHECK(l->h[at] == h);
        if (at >= l->cap) {
            l->cap = l->cap ? l->cap * 2 : 64;
            while (l->cap <= at)
                l->cap *= 2;
            l->h = realloc(l->h, l->cap * sizeof(uint64_t));
            FUZZ_CHECK(l->h != NULL);
        }
        l->h[at] = h;
    }
    l->n = (size_t)(e[k - 1].index - l->snap);
}

static void local_hard_state(fz_local *l, const raft_hard_state *hs)
{
    FUZZ_CHECK(hs->term >= l->term);                                        /* term never back */
    FUZZ_CHECK(hs->term != l->term || l->vote == 0 || hs->vote == l->vote); /* one vote a term */
    FUZZ_CHECK(hs->commit >= l->commit);                                    /* commit never back */
    FUZZ_CHECK(hs->commit <= local_last(l)); /* never past the persisted log */
    l->term = hs->term;
    l->vote = hs->vote;
    l->commit = hs->commit;
}

/* Checks that @e is the next entry to apply and the one persisted at its index. */
static void local_apply(fz_local *l, const raft_entry *e)
{
    FUZZ_CHECK(e->index == l->applied + 1);
    FUZZ_CHECK(e->index <= l->commit);
    if (e->index > l->snap && e->index <= local_last(l))
        FUZZ_CHECK(l->h[e->index - l->snap - 1] == ehash(e));
    l->applied = e->index;
}

/* ---- nodes ------------------------------------------------------------------------------ */

static raft_config base_cfg(const fz *f, uint64_t id)
{
    raft_config cfg = f->s->base_cfg;
    cfg.id = id;
    cfg.seed = mix(f->s->o.seed ^ id);
    if (trace_on()) {
        cfg.tracer = raft_tracer;
        cfg.tracer_ctx = (void *)(uintptr_t)id;
    }
    return cfg;
}

static void node_start(fz *f, sim_node *n)
{
    raft_config cfg = base_cfg(f, n->id);
    const raft_snapshot *snap = raft_mem_storage_snapshot_ref(n->disk);
    cfg.applied = snap->metadata.index;
    raft_storage st = raft_mem_storage_iface(n->disk);
    int rc = raft_node_new(&cfg, &st, &n->r);
    if (rc != 0)
        fprintf(stderr, "raft_step: node %llu does not restart from its disk: %s\n",
                (unsigned long long)n->id, tkv_strerror(rc));
    FUZZ_CHECK(rc == 0);
    if (!f->forged)
        sim_sm_restore(f->s, n, snap);
    n->incarnation++;
    n->last_commit = 0;
    n->lead_term = 0;
    n->status = SIM_UP;
    fz_local *l = &f->loc[n->id];
    l->commit = raft_mem_storage_hard_state(n->disk).commit;
    l->applied = snap->metadata.index;
    l->was_leader = false;
}

static void node_create(fz *f, uint64_t id, const raft_conf_state *cs)
{
    sim_node *n = &f->s->nodes[id];
    memset(n, 0, sizeof(*n));
    n->id = id;
    FUZZ_CHECK(raft_mem_storage_new(cs, &n->disk) == 0);
    n->durable_hs = raft_mem_storage_hard_state(n->disk);
    sim_mirror_init(f->s, n);
    local_reset(&f->loc[id], n->disk);
    node_start(f, n);
}

static void node_crash(fz *f, sim_node *n)
{
    raft_node_free(n->r);
    n->r = NULL;
    n->status = SIM_CRASHED;
    fz_local *l = &f->loc[n->id];
    /* Only the commit index may be unsynced: a new term or vote is synced before anything
     * depends on it. */
    FUZZ_CHECK(n->durable_hs.term == l->term && n->durable_hs.vote == l->vote);
    raft_mem_storage_set_hard_state(n->disk, &n->durable_hs);
    l->commit = n->durable_hs.commit;
    l->crash_at = -1;
    sim_sm_deinit(&n->sm);
}

static void node_destroy(fz *f, sim_node *n)
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
    local_reset(&f->loc[n->id], NULL);
}

/* ---- the network ------------------------------------------------------------------------ */

static void report_snapshot(fz *f, const raft_message *m, bool failed)
{
    if (m->msg_type != RAFT_MSG_SNAPSHOT || !is_up(f, m->from))
        return;
    FUZZ_CHECK(raft_node_report_snapshot(f->s->nodes[m->from].r, m->to, failed) == 0);
}

static void net_push(fz *f, const raft_message *m)
{
    if (f->nq == FZ_MAX_QUEUE) {
        report_snapshot(f, m, true); /* lost on a full link */
        return;
    }
    FUZZ_CHECK(raft_message_copy(&f->q[f->nq], m) == 0);
    f->nq++;
}

static raft_message net_take(fz *f, size_t k)
{
    raft_message m = f->q[k];
    memmove(&f->q[k], &f->q[k + 1], (f->nq - k - 1) * sizeof(raft_message));
    f->nq--;
    return m;
}

/* ---- Ready handling --------------------------------------------------------------------- */

static void process_readies(fz *f);

static void apply_conf_change_forged(sim_node *n, const raft_entry *e)
{
    raft_conf_change cc;
    if (raft_conf_change_decode(tkv_slice_of(e->data, e->data_len), &cc) != 0)
        return; /* a forged entry: raftstore would refuse to apply it */
    int rc = raft_node_apply_conf_change(n->r, &cc, NULL);
    FUZZ_CHECK(rc == 0 || rc == TKV_ETOOLARGE);
}

static void handle_ready(fz *f, sim_node *n)
{
    sim *s = f->s;
    fz_local *l = &f->loc[n->id];
    raft_ready *rd;
    FUZZ_CHECK(raft_node_ready(n->r, &rd) == 0);
    bool leader = raft_node_state(n->r) == RAFT_STATE_LEADER;
    int crash = l->crash_at;
    if (trace_on())
        fprintf(stderr,
                "ready %llu: hs %d term %llu vote %llu commit %llu, entries %zu from %llu, "
                "snapshot %llu, committed %zu, crash %d\n",
                (unsigned long long)n->id, rd->has_hard_state,
                (unsigned long long)rd->hard_state.term, (unsigned long long)rd->hard_state.vote,
                (unsigned long long)rd->hard_state.commit, rd->n_entries,
                (unsigned long long)(rd->n_entries ? rd->entries[0].index : 0),
                (unsigned long long)(rd->snapshot ? rd->snapshot->metadata.index : 0),
                rd->n_committed_entries, crash);
    if (crash != 1)
        for (size_t i = 0; i < rd->n_messages; i++)
            net_push(f, &rd->messages[i]);
    if (crash == 0) {
        node_crash(f, n);
        return;
    }
    if (rd->snapshot) {
        if (!f->forged)
            sim_check_snapshot(s, n, rd->snapshot);
        local_snapshot(l, rd->snapshot);
        FUZZ_CHECK(raft_mem_storage_apply_snapshot(n->disk, rd->snapshot) == 0);
    }
    if (!f->forged)
        sim_check_entries(s, n, rd->entries, rd->n_entries, leader);
    /* Leader Append-Only holds while it stays leader of the same term. */
    bool same_leader = leader && l->was_leader && l->leader_term == raft_node_term(n->r);
    local_entries(l, rd->entries, rd->n_entries, same_leader);
    FUZZ_CHECK(raft_mem_storage_append(n->disk, rd->entries, rd->n_entries) == 0);
    if (rd->has_hard_state) {
        local_hard_state(l, &rd->hard_state);
        raft_mem_storage_set_hard_state(n->disk, &rd->hard_state);
    }
    if (rd->must_sync || rd->snapshot)
        n->durable_hs = raft_mem_storage_hard_state(n->disk);
    if (rd->has_hard_state && !f->forged)
        sim_check_commit(s, n, &rd->hard_state);
    l->was_leader = leader;
    l->leader_term = raft_node_term(n->r);
    if (crash == 1) {
        n->durable_hs = raft_mem_storage_hard_state(n->disk);
        node_crash(f, n);
        return;
    }
    for (size_t i = 0; i < rd->n_persisted_messages; i++)
        net_push(f, &rd->persisted_messages[i]);
    if (rd->snapshot) {
        l->applied = rd->snapshot->metadata.index;
        if (!f->forged)
            sim_sm_restore(s, n, rd->snapshot);
    }
    for (size_t i = 0; i < rd->n_committed_entries && !s->failed; i++) {
        const raft_entry *e = &rd->committed_entries[i];
        local_apply(l, e);
        if (!f->forged)
            sim_apply_entry(s, n, e);
        else if (e->entry_type == RAFT_ENTRY_CONF_CHANGE)
            apply_conf_change_forged(n, e);
    }
    if (!f->forged)
        sim_read_states(s, n, rd->read_states, rd->n_read_states);
    FUZZ_CHECK(raft_node_advance(n->r) == 0);
    if (!f->forged)
        sim_reads_progress(s, n);
    fz_fail_if(f);
}

static void process_readies(fz *f)
{
    sim *s = f->s;
    for (int round = 0; round < 100; round++) {
        bool any = false;
        for (uint64_t id = 1; id <= FZ_MAX_ID; id++) {
            sim_node *n = &s->nodes[id];
            while (n->status == SIM_UP && raft_node_has_ready(n->r)) {
                handle_ready(f, n);
                any = true;
            }
        }
        for (uint64_t id = 1; id <= FZ_MAX_ID; id++)
            if (s->nodes[id].destroy_pending) {
                s->nodes[id].destroy_pending = false;
                node_destroy(f, &s->nodes[id]);
            }
        if (!any)
            return;
    }
    FUZZ_CHECK(!"Ready handling does not settle");
}

/* ---- injected messages ---------------------------------------------------------------- */

/* A message whose fields come from the input, near the receiver's state so that it can
 * matter. Entries, context and snapshot data point into @in's bytes or @ents / @snap. */
static void decode_message(fz *f, fuzz_in *in, const sim_node *to, raft_message *m,
                           raft_entry ents[4], raft_snapshot *snap)
{
    raft_status st;
    raft_node_status(to->r, &st);
    memset(m, 0, sizeof(*m));
    uint8_t t = fuzz_u8(in);
    m->msg_type = (raft_message_type)(t % RAFT_MSG_TYPE_COUNT);
    m->to = to->id;
    m->from = 1 + fuzz_below(in, FZ_MAX_ID + 1);
    int64_t dt = (int8_t)fuzz_u8(in) % 4;
    if (t & 0x80)
        m->term = fuzz_uint(in, 8);
    else
        m->term = dt < 0 && (uint64_t)-dt > st.hard_state.term ? 0 : st.hard_state.term + dt;
    uint64_t last = st.last_index;
    if (fuzz_u8(in) & 1) {
        m->index = fuzz_uint(in, 8);
    } else {
        uint64_t back = fuzz_below(in, 4);
        m->index = last - TKV_MIN(last, back);
    }
    m->log_term = fuzz_u8(in) % 2 ? st.hard_state.term : fuzz_uint(in, 1);
    m->commit = fuzz_u8(in) & 1 ? fuzz_uint(in, 8) : last + fuzz_below(in, 3) - 1;
    m->reject = fuzz_u8(in) & 1;
    m->reject_hint = fuzz_uint(in, 1);
    size_t len;
    const uint8_t *p = fuzz_bytes(in, 16, &len);
    m->context = (uint8_t *)p;
    m->context_len = len;
    size_t k = fuzz_below(in, 5);
    for (size_t i = 0; i < k; i++) {
        raft_entry *e = &ents[i];
        uint8_t b = fuzz_u8(in);
        e->entry_type = (raft_entry_type)(b & 1);
        e->index = b & 2 ? fuzz_uint(in, 1) : m->index + 1 + i;
        e->term = b & 4 ? fuzz_uint(in, 1) : m->term;
        e->data = (uint8_t *)fuzz_bytes(in, 24, &e->data_len);
        e->context = NULL;
        e->context_len = 0;
    }
    m->entries = k ? ents : NULL;
    m->n_entries = k;
    if (m->msg_type == RAFT_MSG_SNAPSHOT && fuzz_u8(in) % 4 != 0) {
        memset(snap, 0, sizeof(*snap));
        snap->metadata.index = fuzz_u8(in) & 1 ? fuzz_uint(in, 8) : last + fuzz_below(in, 4);
        snap->metadata.term = fuzz_u8(in) & 1 ? fuzz_uint(in, 8) : m->term;
        raft_conf_state *cs = &snap->metadata.conf_state;
        cs->n_voters = fuzz_below(in, 5);
        for (size_t i = 0; i < cs->n_voters; i++)
            cs->voters[i] = 1 + fuzz_below(in, FZ_MAX_ID + 1);
        cs->n_learners = fuzz_below(in, 3);
        for (size_t i = 0; i < cs->n_learners; i++)
            cs->learners[i] = 1 + fuzz_below(in, FZ_MAX_ID + 1);
        snap->data = (uint8_t *)fuzz_bytes(in, 32, &snap->data_len);
        m->snapshot = snap;
    }
    (void)f;
}

static bool same_status(const raft_status *a, const raft_status *b)
{
    return a->hard_state.term == b->hard_state.term && a->hard_state.vote == b->hard_state.vote &&
           a->hard_state.commit == b->hard_state.commit &&
           a->soft_state.leader_id == b->soft_state.leader_id &&
           a->soft_state.raft_state == b->soft_state.raft_state && a->applied == b->applied &&
           a->first_index == b->first_index && a->last_index == b->last_index &&
           a->lead_transferee == b->lead_transferee && a->ticks == b->ticks &&
           a->conf_state.n_voters == b->conf_state.n_voters &&
           a->conf_state.n_learners == b->conf_state.n_learners;
}

/* Spoils @m in one of the ways raft_node_step must refuse. */
static void make_malformed(fuzz_in *in, raft_message *m, raft_entry ents[4], raft_snapshot *snap)
{
    static const raft_message_type local[] = {RAFT_MSG_HUP, RAFT_MSG_BEAT, RAFT_MSG_UNREACHABLE,
                                              RAFT_MSG_SNAP_STATUS, RAFT_MSG_CHECK_QUORUM};
    switch (fuzz_u8(in) % 7) {
    case 0:
        m->msg_type = local[fuzz_below(in, TKV_ARRAY_LEN(local))];
        break;
    case 1:
        m->msg_type = (raft_message_type)(RAFT_MSG_TYPE_COUNT + fuzz_u8(in));
        break;
    case 2:
        m->entries = NULL;
        m->n_entries = 1 + fuzz_below(in, 4);
        break;
    case 3:
        m->context = NULL;
        m->context_len = 1 + fuzz_u8(in);
        break;
    case 4:
        memset(&ents[0], 0, sizeof(ents[0]));
        ents[0].data_len = 1 + fuzz_u8(in);
        m->entries = ents;
        m->n_entries = 1;
        break;
    case 5:
        memset(&ents[0], 0, sizeof(ents[0]));
        ents[0].entry_type = (raft_entry_type)(2 + fuzz_u8(in));
        m->entries = ents;
        m->n_entries = 1;
        break;
    default:
        memset(snap, 0, sizeof(*snap));
        snap->metadata.index = 1 + fuzz_u8(in);
        snap->data_len = 1 + fuzz_u8(in);
        m->snapshot = snap;
        break;
    }
}

/* Brings every term and index of @m below RAFT_TERM_LIMIT / RAFT_INDEX_LIMIT, which
 * raft_node_step refuses wherever they appear (found by fuzz_raft_step: a misaddressed
 * message with an index past the limit was refused instead of ignored). */
static void within_limits(raft_message *m)
{
    m->log_term %= RAFT_TERM_LIMIT;
    m->index %= RAFT_INDEX_LIMIT;
    m->commit %= RAFT_INDEX_LIMIT;
    m->reject_hint %= RAFT_INDEX_LIMIT;
    for (size_t i = 0; i < m->n_entries; i++) {
        raft_entry *e = &m->entries[i];
        e->term %= RAFT_TERM_LIMIT;
        e->index %= RAFT_INDEX_LIMIT;
    }
    if (m->snapshot) {
        raft_snapshot *s = m->snapshot;
        s->metadata.term %= RAFT_TERM_LIMIT;
        s->metadata.index %= RAFT_INDEX_LIMIT;
    }
}

static void act_inject(fz *f, fuzz_in *in, uint64_t id, bool forge)
{
    if (!is_up(f, id))
        return;
    sim_node *n = &f->s->nodes[id];
    raft_message m;
    raft_entry ents[4];
    raft_snapshot snap;
    decode_message(f, in, n, &m, ents, &snap);
    uint8_t how = forge ? 0 : 1 + fuzz_u8(in) % 2;
    if (how == 1)
        make_malformed(in, &m, ents, &snap);
    else if (how == 2) {
        m.to = id % FZ_MAX_ID + 1; /* another node */
        if (m.msg_type == RAFT_MSG_HUP || m.msg_type == RAFT_MSG_BEAT ||
            m.msg_type == RAFT_MSG_UNREACHABLE || m.msg_type == RAFT_MSG_SNAP_STATUS ||
            m.msg_type == RAFT_MSG_CHECK_QUORUM)
            m.msg_type = RAFT_MSG_APPEND;
        if (m.term == 0 || m.term >= RAFT_TERM_LIMIT)
            m.term = 1; /* well-formed, only not ours */
        within_limits(&m);
    }
    raft_status before, after;
    raft_node_status(n->r, &before);
    if (trace_on())
        fprintf(stderr,
                "inject (%u) %s %llu->%llu term %llu index %llu log_term %llu commit %llu "
                "entries %zu snapshot %llu\n",
                how, raft_message_type_name(m.msg_type), (unsigned long long)m.from,
                (unsigned long long)m.to, (unsigned long long)m.term, (unsigned long long)m.index,
                (unsigned long long)m.log_term, (unsigned long long)m.commit, m.n_entries,
                (unsigned long long)(m.snapshot ? m.snapshot->metadata.index : 0));
    bool ready_before = raft_node_has_ready(n->r);
    int rc = raft_node_step(n->r, &m);
    raft_node_status(n->r, &after);
    if (how == 1) {
        FUZZ_CHECK(rc == TKV_ECORRUPT);
    } else if (how == 2) {
        FUZZ_CHECK(rc == 0);
    } else {
        FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT || rc == TKV_EDROPPED || rc == TKV_ENOTLEADER);
        process_readies(f);
        return;
    }
    /* Refused or ignored: nothing changed. */
    FUZZ_CHECK(same_status(&before, &after));
    FUZZ_CHECK(raft_node_has_ready(n->r) == ready_before);
}

/* ---- actions ---------------------------------------------------------------------------- */

static void deliver(fz *f, size_t k, bool drop)
{
    raft_message m = net_take(f, k);
    if (drop || !is_up(f, m.to)) {
        report_snapshot(f, &m, true);
        raft_message_deinit(&m);
        process_readies(f);
        return;
    }
    if (!f->forged &&
        (m.msg_type == RAFT_MSG_APPEND_RESPONSE || m.msg_type == RAFT_MSG_HEARTBEAT_RESPONSE))
        sim_note_response(f->s, &m);
    int rc = raft_node_step(f->s->nodes[m.to].r, &m);
    if (f->forged)
        FUZZ_CHECK(rc == 0 || rc == TKV_EDROPPED || rc == TKV_ENOTLEADER || rc == TKV_ECORRUPT);
    else
        FUZZ_CHECK(rc == 0 || rc == TKV_EDROPPED || rc == TKV_ENOTLEADER);
    report_snapshot(f, &m, false);
    raft_message_deinit(&m);
    process_readies(f);
}

static void tick_all(fz *f)
{
    sim *s = f->s;
    s->now++;
    for (uint64_t id = 1; id <= FZ_MAX_ID; id++)
        if (is_up(f, id))
            FUZZ_CHECK(raft_node_tick(s->nodes[id].r) == 0);
    process_readies(f);
}

static void act_write(fz *f, fuzz_in *in, uint64_t id)
{
    sim *s = f->s;
    if (!is_up(f, id))
        return;
    sim_write *w = sim_push(&s->writes, &s->n_writes, &s->cap_writes, sizeof(sim_write));
    w->id = s->n_writes;
    w->key = (int)fuzz_below(in, SIM_KEYS);
    w->next_retry = s->now + 2 * (uint64_t)s->base_cfg.election_tick;
    uint8_t data[10];
    data[0] = 'W';
    data[1] = (uint8_t)w->key;
    tkv_codec_put_u64_be(data + 2, w->id);
    int rc = raft_node_propose(s->nodes[id].r, data, sizeof(data), NULL, 0);
    FUZZ_CHECK(rc == 0 || rc == TKV_EDROPPED);
    process_readies(f);
}

static void act_read(fz *f, fuzz_in *in, uint64_t id)
{
    sim *s = f->s;
    if (!is_up(f, id) || f->forged)
        return;
    sim_node *n = &s->nodes[id];
    sim_read *r = sim_push(&s->reads, &s->n_reads, &s->cap_reads, sizeof(sim_read));
    r->id = s->n_reads;
    r->key = (int)fuzz_below(in, SIM_KEYS);
    r->node = id;
    r->incarnation = n->incarnation;
    r->min_index = s->key_acked_index[r->key];
    uint8_t ctx[8];
    tkv_codec_put_u64_be(ctx, r->id);
    int rc = raft_node_read_index(n->r, ctx, sizeof(ctx));
    FUZZ_CHECK(rc == 0 || rc == TKV_EDROPPED);
    if (rc != 0)
        r->done = true;
    process_readies(f);
}

static void act_compact(fz *f, fuzz_in *in, uint64_t id)
{
    if (!is_up(f, id))
        return;
    sim_node *n = &f->s->nodes[id];
    fz_local *l = &f->loc[id];
    uint64_t a = f->forged ? l->applied : n->sm.applied;
    if (a <= l->snap || a > local_last(l))
        return;
    raft_status st;
    raft_node_status(n->r, &st);
    tkv_buf data;
    tkv_buf_init(&data);
    if (!f->forged)
        sim_sm_snapshot_data(&n->sm, &data);
    const raft_conf_state *cs = f->forged ? &st.conf_state : &n->sm.conf;
    FUZZ_CHECK(raft_mem_storage_create_snapshot(n->disk, a, cs, data.data, data.len) == 0);
    tkv_buf_deinit(&data);
    uint64_t keep = fuzz_below(in, 4);
    uint64_t at = a > l->snap + 1 + keep ? a - keep : l->snap + 1;
    FUZZ_CHECK(raft_mem_storage_compact(n->disk, at) == 0);
    /* The disk's snapshot moved to a; entries after it are unchanged. */
    size_t drop = (size_t)(a - l->snap);
    memmove(l->h, l->h + drop, (l->n - drop) * sizeof(uint64_t));
    l->n -= drop;
    l->snap = a;
}

static void act_conf_change(fz *f, fuzz_in *in)
{
    sim *s = f->s;
    sim_node *l = sim_leader(s);
    if (!l || f->forged)
        return;
    raft_status st;
    raft_node_status(l->r, &st);
    const raft_conf_state *cs = &st.conf_state;
    raft_conf_change cc = {RAFT_CONF_ADD_LEARNER_NODE, 0, {NULL, 0}};
    uint8_t b = fuzz_u8(in);
    if (b % 3 == 0 && cs->n_learners > 0) {
        cc.change_type = RAFT_CONF_ADD_NODE; /* promote */
        cc.node_id = cs->learners[(b >> 2) % cs->n_learners];
    } else if (b % 3 == 1 && (cs->n_voters > 3 || cs->n_learners > 0)) {
        cc.change_type = RAFT_CONF_REMOVE_NODE;
        size_t total = cs->n_voters + cs->n_learners;
        size_t k = (b >> 2) % total;
        cc.node_id = k < cs->n_voters ? cs->voters[k] : cs->learners[k - cs->n_voters];
        if (cc.node_id == l->id || (k < cs->n_voters && cs->n_voters <= 3))
            return;
    } else if (f->next_id <= FZ_MAX_ID) {
        cc.change_type = b & 4 ? RAFT_CONF_ADD_NODE : RAFT_CONF_ADD_LEARNER_NODE;
        cc.node_id = f->next_id++;
        node_create(f, cc.node_id, NULL);
    } else {
        return;
    }
    int rc = raft_node_propose_conf_change(l->r, &cc);
    FUZZ_CHECK(rc == 0 || rc == TKV_EBUSY || rc == TKV_EDROPPED || rc == TKV_ETOOLARGE);
    process_readies(f);
}

/* Heals everything and checks liveness: a leader within 10 election timeouts, then every
 * write committed within 40. */
static void heal(fz *f)
{
    sim *s = f->s;
    s->healing = true;
    for (uint64_t id = 1; id <= FZ_MAX_ID; id++) {
        f->loc[id].crash_at = -1;
        if (s->nodes[id].status == SIM_CRASHED)
            node_start(f, &s->nodes[id]);
    }
    process_readies(f);
    uint64_t et = (uint64_t)s->base_cfg.election_tick;
    uint64_t t0 = s->now;
    bool had_leader = false;
    for (;;) {
        for (size_t guard = 0; f->nq > 0; guard++) {
            FUZZ_CHECK(guard < 100000);
            deliver(f, 0, false);
            sim_check_step(s);
            fz_fail_if(f);
        }
        had_leader = had_leader || sim_leader(s) != NULL;
        if (had_leader && sim_pending_writes(s) == 0)
            return;
        if (!had_leader && s->now - t0 > 10 * et)
            FUZZ_CHECK(!"no leader within 10 election timeouts after healing");
        if (s->now - t0 > 40 * et)
            FUZZ_CHECK(!"writes not committed 40 election timeouts after healing");
        sim_client_retry(s, true);
        fz_fail_if(f);
        process_readies(f);
        tick_all(f);
        sim_check_step(s);
        fz_fail_if(f);
    }
}

static uint64_t pick_id(fuzz_in *in)
{
    return 1 + fuzz_below(in, FZ_MAX_ID);
}

static void step(fz *f, fuzz_in *in)
{
    sim *s = f->s;
    uint8_t op = fuzz_u8(in) % 20;
    if (trace_on())
        fprintf(stderr, "step %u (queue %zu, now %llu)\n", op, f->nq, (unsigned long long)s->now);
    switch (op) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
        if (f->nq > 0)
            deliver(f, (size_t)fuzz_below(in, f->nq), op == 5);
        break;
    case 6:
        if (f->nq > 0 && f->nq < FZ_MAX_QUEUE) {
            size_t k = (size_t)fuzz_below(in, f->nq);
            raft_message copy;
            FUZZ_CHECK(raft_message_copy(&copy, &f->q[k]) == 0);
            f->q[f->nq++] = copy;
        }
        break;
    case 7:
    case 8:
        tick_all(f);
        break;
    case 9: {
        /* One node's clock runs ahead (not with lease reads, which assume bounded drift). */
        uint64_t id = pick_id(in);
        if (!f->lease && is_up(f, id)) {
            FUZZ_CHECK(raft_node_tick(s->nodes[id].r) == 0);
            process_readies(f);
        }
        break;
    }
    case 10:
        act_write(f, in, pick_id(in));
        break;
    case 11:
        act_read(f, in, pick_id(in));
        break;
    case 12: {
        uint64_t id = pick_id(in);
        if (is_up(f, id)) {
            FUZZ_CHECK(raft_node_campaign(s->nodes[id].r) == 0);
            process_readies(f);
        }
        break;
    }
    case 13: {
        uint64_t id = pick_id(in), to = pick_id(in);
        if (is_up(f, id)) {
            int rc = raft_node_transfer_leader(s->nodes[id].r, to);
            FUZZ_CHECK(rc == 0 || rc == TKV_EDROPPED || rc == TKV_ENOTLEADER);
            process_readies(f);
        }
        break;
    }
    case 14: {
        uint64_t id = pick_id(in);
        uint8_t how = fuzz_u8(in) % 3;
        size_t up = 0;
        for (uint64_t i = 1; i <= FZ_MAX_ID; i++)
            up += is_up(f, i);
        if (!is_up(f, id) || up < 2)
            break;
        if (how == 2)
            node_crash(f, &s->nodes[id]);
        else
            f->loc[id].crash_at = how; /* in its next Ready */
        break;
    }
    case 15: {
        uint64_t id = pick_id(in);
        if (s->nodes[id].status == SIM_CRASHED) {
            node_start(f, &s->nodes[id]);
            process_readies(f);
        }
        break;
    }
    case 16:
        act_compact(f, in, pick_id(in));
        break;
    case 17:
        act_conf_change(f, in);
        break;
    case 18: {
        uint64_t id = pick_id(in), to = pick_id(in);
        if (is_up(f, id)) {
            FUZZ_CHECK(raft_node_report_unreachable(s->nodes[id].r, to) == 0);
            process_readies(f);
        }
        break;
    }
    default: {
        /* Separate statements: the order in which arguments are evaluated is unspecified, and
         * a recipe must mean the same under every compiler. */
        uint64_t id = pick_id(in);
        bool forge = f->forged && fuzz_u8(in) % 4 != 0;
        act_inject(f, in, id, forge);
        break;
    }
    }
    if (!f->forged)
        sim_check_step(s);
    fz_fail_if(f);
}

static void configure(fz *f, fuzz_in *in)
{
    sim *s = f->s;
    uint8_t b0 = fuzz_u8(in), b1 = fuzz_u8(in);
    s->o.seed = fuzz_uint(in, 8);
    s->o.nodes = b0 & 0x80 ? 5 : 3;
    tkv_rng_seed(&s->rng, s->o.seed);
    f->forged = b0 & 1;
    f->heal = !f->forged && (b1 & 0x40);
    raft_config *c = &s->base_cfg;
    raft_config_default(c, 1);
    c->election_tick = 10;
    c->heartbeat_tick = 1 + b1 % 3;
    c->pre_vote = b0 & 2;
    c->check_quorum = b0 & 4;
    f->lease = c->check_quorum && (b0 & 8);
    c->read_only_option = f->lease ? RAFT_READ_ONLY_LEASE_BASED : RAFT_READ_ONLY_SAFE;
    c->skip_bcast_commit = b0 & 0x10;
    c->max_committed_size_per_ready = b0 & 0x20 ? 40 : 0;
    c->max_uncommitted_size = b0 & 0x40 ? 400 : 0;
    static const uint64_t sizes[] = {0, 30, 200, 1 << 20};
    c->max_size_per_msg = sizes[(b1 >> 2) & 3];
    static const size_t windows[] = {2, 4, 16, 256};
    c->max_inflight_msgs = windows[(b1 >> 4) & 3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in = fuzz_in_of(data, size);
    fz *f = calloc(1, sizeof(*f));
    FUZZ_CHECK(f != NULL);
    f->s = calloc(1, sizeof(sim));
    FUZZ_CHECK(f->s != NULL);
    sim *s = f->s;
    configure(f, &in);
    sim_check_init(s);
    raft_conf_state cs;
    memset(&cs, 0, sizeof(cs));
    for (int i = 1; i <= s->o.nodes; i++)
        cs.voters[cs.n_voters++] = (uint64_t)i;
    for (int i = 1; i <= s->o.nodes; i++)
        node_create(f, (uint64_t)i, &cs);
    f->next_id = (uint64_t)s->o.nodes + 1;
    for (int i = 0; i < FZ_MAX_STEPS && in.n > 0; i++)
        step(f, &in);
    if (f->heal)
        heal(f);
    if (trace_on())
        fprintf(stderr, "end: %s, %d nodes, committed %llu, writes %zu acked %llu, reads %llu\n",
                f->forged ? "forged" : "honest", s->o.nodes, (unsigned long long)s->committed,
                s->n_writes, (unsigned long long)s->n_acked, (unsigned long long)s->n_reads_done);
    for (uint64_t id = 1; id <= FZ_MAX_ID; id++) {
        if (s->nodes[id].status == SIM_UP || s->nodes[id].status == SIM_CRASHED)
            node_destroy(f, &s->nodes[id]);
        free(f->loc[id].h);
    }
    for (size_t i = 0; i < f->nq; i++)
        raft_message_deinit(&f->q[i]);
    free(s->writes);
    free(s->reads);
    sim_check_deinit(s);
    free(s);
    free(f);
    return 0;
}
