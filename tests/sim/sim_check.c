/*
 * sim_check.c: the safety checker. It keeps a mirror of every node's persisted log as a chain
 * of prefix hashes (the hash at index i covers every entry up to i), a registry of the chain
 * hash at each (index, term) any node ever persisted, the chain of committed entries, and the
 * hash of what was applied at each index. With those the Raft properties (Raft paper Figure
 * 3) are checked in constant time per entry:
 *   Election Safety: at most one leader per term.
 *   Leader Append-Only: a leader never overwrites or deletes its entries.
 *   Log Matching: logs with an entry of the same index and term agree up to it.
 *   Leader Completeness: a leader holds every entry committed in earlier terms.
 *   State Machine Safety: no two nodes apply different entries at an index; committed
 *     entries are never lost or overwritten, across crashes.
 * plus: commit and apply never go back, applied <= committed, and with check-quorum no leader
 * stays leader after a quorum has been silent for two election timeouts (thesis 6.2).
 */
#include <stdlib.h>

#include "sim.h"

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t sim_hash_bytes(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return mix(h ^ len);
}

static uint64_t entry_hash(const raft_entry *e)
{
    return mix(mix(e->term) ^ ((uint64_t)e->entry_type << 32) ^
               sim_hash_bytes(e->data, e->data_len) ^
               (sim_hash_bytes(e->context, e->context_len) << 1));
}

static uint64_t chain(uint64_t prev, const raft_entry *e)
{
    return mix(prev ^ entry_hash(e) ^ mix(e->index));
}

/* The chain hash of the bootstrap snapshot every founding member starts from. */
static uint64_t boot_hash(void)
{
    return mix(RAFT_MEM_BOOTSTRAP_INDEX * 7919);
}

/* ---- the (index, term) registry ------------------------------------------------------ */

static size_t reg_slot(const sim_reg *r, uint64_t i, uint64_t t)
{
    size_t h = (size_t)mix(i * 1000003 ^ t) & (r->cap - 1);
    while (r->keys_i[h] != 0 && (r->keys_i[h] != i || r->keys_t[h] != t))
        h = (h + 1) & (r->cap - 1);
    return h;
}

static void reg_grow(sim_reg *r)
{
    sim_reg old = *r;
    r->cap = old.cap ? old.cap * 2 : 1024;
    r->keys_i = calloc(r->cap, sizeof(uint64_t));
    r->keys_t = calloc(r->cap, sizeof(uint64_t));
    r->vals = calloc(r->cap, sizeof(uint64_t));
    if (!r->keys_i || !r->keys_t || !r->vals)
        abort();
    r->n = 0;
    for (size_t k = 0; k < old.cap; k++) {
        if (old.keys_i[k] == 0)
            continue;
        size_t h = reg_slot(r, old.keys_i[k], old.keys_t[k]);
        r->keys_i[h] = old.keys_i[k];
        r->keys_t[h] = old.keys_t[k];
        r->vals[h] = old.vals[k];
        r->n++;
    }
    free(old.keys_i);
    free(old.keys_t);
    free(old.vals);
}

/* Returns the registered chain hash at (i, t), or registers @v and returns it. */
static uint64_t reg_get_or_put(sim_reg *r, uint64_t i, uint64_t t, uint64_t v)
{
    if (2 * (r->n + 1) > r->cap)
        reg_grow(r);
    size_t h = reg_slot(r, i, t);
    if (r->keys_i[h] == 0) {
        r->keys_i[h] = i;
        r->keys_t[h] = t;
        r->vals[h] = v;
        r->n++;
    }
    return r->vals[h];
}

/* ---- growable arrays by index ---------------------------------------------------------- */

static void ensure(uint64_t **a, size_t *cap, uint64_t i)
{
    if (i < *cap)
        return;
    size_t n = *cap ? *cap : 256;
    while (n <= i)
        n *= 2;
    *a = sim_xrealloc(*a, n * sizeof(uint64_t));
    memset(*a + *cap, 0, (n - *cap) * sizeof(uint64_t));
    *cap = n;
}

static void mp_set(sim_node *n, uint64_t i, uint64_t v)
{
    ensure(&n->mp, &n->mp_cap, i);
    n->mp[i] = v;
}

void sim_check_init(sim *s)
{
    ensure(&s->cp, &s->cp_cap, RAFT_MEM_BOOTSTRAP_INDEX);
    s->cp[RAFT_MEM_BOOTSTRAP_INDEX] = boot_hash();
    s->committed = RAFT_MEM_BOOTSTRAP_INDEX;
    (void)reg_get_or_put(&s->reg, RAFT_MEM_BOOTSTRAP_INDEX, RAFT_MEM_BOOTSTRAP_INDEX, boot_hash());
    ensure(&s->best_commit, &s->terms_cap, 64);
    size_t cap = 0;
    ensure(&s->leader_of, &cap, s->terms_cap - 1);
}

void sim_check_deinit(sim *s)
{
    free(s->reg.keys_i);
    free(s->reg.keys_t);
    free(s->reg.vals);
    free(s->cp);
    free(s->best_commit);
    free(s->leader_of);
    free(s->ah);
}

static void ensure_term(sim *s, uint64_t t)
{
    if (t < s->terms_cap)
        return;
    size_t cap = s->terms_cap;
    ensure(&s->best_commit, &s->terms_cap, t);
    ensure(&s->leader_of, &cap, t);
}

void sim_mirror_init(sim *s, sim_node *n)
{
    (void)s;
    const raft_snapshot *snap = raft_mem_storage_snapshot_ref(n->disk);
    n->mp_first = n->mp_last = snap->metadata.index;
    mp_set(n, n->mp_first, snap->metadata.index ? boot_hash() : 0);
}

/* ---- per-Ready checks ---------------------------------------------------------------- */

void sim_check_snapshot(sim *s, sim_node *n, const raft_snapshot *snap)
{
    uint64_t i = snap->metadata.index, t = snap->metadata.term;
    if (i > s->committed) {
        sim_fail(s, "node %llu installs snapshot %llu beyond the commit index %llu",
                 (unsigned long long)n->id, (unsigned long long)i,
                 (unsigned long long)s->committed);
        return;
    }
    if (reg_get_or_put(&s->reg, i, t, s->cp[i]) != s->cp[i]) {
        sim_fail(s, "snapshot %llu/%llu at node %llu does not match the committed log",
                 (unsigned long long)i, (unsigned long long)t, (unsigned long long)n->id);
        return;
    }
    n->mp_first = n->mp_last = i;
    mp_set(n, i, s->cp[i]);
}

void sim_check_entries(sim *s, sim_node *n, const raft_entry *ents, size_t count, bool leader)
{
    if (count == 0)
        return;
    uint64_t first = ents[0].index;
    if (first > n->mp_last + 1 || first <= n->mp_first) {
        sim_fail(s, "node %llu persists entries from %llu, its log is [%llu, %llu]",
                 (unsigned long long)n->id, (unsigned long long)first,
                 (unsigned long long)n->mp_first, (unsigned long long)n->mp_last);
        return;
    }
    if (leader && first <= n->mp_last) {
        sim_fail(s, "leader %llu overwrites its own entries from %llu (last %llu)",
                 (unsigned long long)n->id, (unsigned long long)first,
                 (unsigned long long)n->mp_last);
        return;
    }
    uint64_t prev = n->mp[first - 1];
    uint64_t old_last = n->mp_last;
    for (size_t k = 0; k < count; k++) {
        const raft_entry *e = &ents[k];
        uint64_t ph = chain(prev, e);
        if (reg_get_or_put(&s->reg, e->index, e->term, ph) != ph) {
            sim_fail(s, "log matching: node %llu has entry %llu/%llu after a different log",
                     (unsigned long long)n->id, (unsigned long long)e->index,
                     (unsigned long long)e->term);
            return;
        }
        /* Replacing a committed entry the node held (a stale leader appending past its own
         * log where others committed something else is fine: it never commits that). */
        if (e->index <= old_last && e->index <= s->committed &&
            n->mp[e->index] == s->cp[e->index] && ph != s->cp[e->index]) {
            sim_fail(s, "node %llu overwrites committed entry %llu", (unsigned long long)n->id,
                     (unsigned long long)e->index);
            return;
        }
        mp_set(n, e->index, ph);
        prev = ph;
    }
    n->mp_last = ents[count - 1].index;
}

void sim_check_commit(sim *s, sim_node *n, const raft_hard_state *hs)
{
    uint64_t c = hs->commit;
    if (c > n->mp_last) {
        sim_fail(s, "node %llu commits %llu past its persisted log %llu", (unsigned long long)n->id,
                 (unsigned long long)c, (unsigned long long)n->mp_last);
        return;
    }
    if (c < n->last_commit) {
        sim_fail(s, "node %llu commit went back from %llu to %llu", (unsigned long long)n->id,
                 (unsigned long long)n->last_commit, (unsigned long long)c);
        return;
    }
    n->last_commit = c;
    ensure_term(s, hs->term);
    if (c > s->best_commit[hs->term])
        s->best_commit[hs->term] = c;
    if (c < n->mp_first)
        return;
    if (c <= s->committed) {
        if (n->mp[c] != s->cp[c])
            sim_fail(s, "node %llu committed a log that differs at or before %llu",
                     (unsigned long long)n->id, (unsigned long long)c);
        return;
    }
    if (s->committed >= n->mp_first && n->mp[s->committed] != s->cp[s->committed]) {
        sim_fail(s, "node %llu committed %llu on a log that lost committed entry %llu",
                 (unsigned long long)n->id, (unsigned long long)c,
                 (unsigned long long)s->committed);
        return;
    }
    ensure(&s->cp, &s->cp_cap, c);
    for (uint64_t i = s->committed + 1; i <= c; i++)
        s->cp[i] = n->mp[i];
    s->committed = c;
}

void sim_check_apply(sim *s, sim_node *n, const raft_entry *e)
{
    if (e->index != n->sm.applied + 1) {
        sim_fail(s, "node %llu applies %llu after %llu", (unsigned long long)n->id,
                 (unsigned long long)e->index, (unsigned long long)n->sm.applied);
        return;
    }
    if (e->index > s->committed) {
        sim_fail(s, "node %llu applies %llu, not reported committed (%llu)",
                 (unsigned long long)n->id, (unsigned long long)e->index,
                 (unsigned long long)s->committed);
        return;
    }
    uint64_t h = entry_hash(e) | 1;
    ensure(&s->ah, &s->ah_cap, e->index);
    if (s->ah[e->index] == 0)
        s->ah[e->index] = h;
    else if (s->ah[e->index] != h)
        sim_fail(s, "state machine safety: node %llu applies a different entry at %llu",
                 (unsigned long long)n->id, (unsigned long long)e->index);
}

/* ---- per-step checks ----------------------------------------------------------------- */

void sim_note_response(sim *s, const raft_message *m)
{
    sim_node *l = &s->nodes[m->to];
    if (l->status != SIM_UP || m->from >= SIM_MAX_IDS)
        return;
    if (raft_node_state(l->r) == RAFT_STATE_LEADER && m->term == raft_node_term(l->r))
        l->resp_tick[m->from] = s->now;
}

/* Raft thesis 6.2: with check-quorum, a leader that has not heard from a quorum for two
 * election timeouts (one full check round) must have stepped down. */
static void check_quorum_contact(sim *s, sim_node *n, const raft_status *st)
{
    uint64_t t[RAFT_MAX_MEMBERS];
    size_t k = 0;
    /* A new voter set changes what "a quorum" means: raft judges it from the next round. */
    uint64_t sig = 0;
    for (size_t i = 0; i < st->conf_state.n_voters; i++)
        sig += mix(st->conf_state.voters[i]);
    if (sig != n->voters_sig) {
        n->voters_sig = sig;
        n->voters_since = s->now;
    }
    for (size_t i = 0; i < st->conf_state.n_voters; i++) {
        uint64_t v = st->conf_state.voters[i];
        if (v >= SIM_MAX_IDS)
            continue;
        if (!n->counted[v]) {
            /* A new voter (added or promoted) gets a round to answer, as in raft. */
            n->counted[v] = true;
            n->resp_tick[v] = s->now;
        }
        t[k++] = v == n->id ? s->now : n->resp_tick[v];
    }
    if (k == 0)
        return;
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && t[j - 1] < t[j]; j--) {
            uint64_t x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    uint64_t q = TKV_MAX(t[k / 2], n->voters_since);
    uint64_t bound = 2 * (uint64_t)s->base_cfg.election_tick + 2;
    if (s->now > q + bound)
        sim_fail(s, "leader %llu kept leading term %llu without a quorum for %llu ticks",
                 (unsigned long long)n->id, (unsigned long long)st->hard_state.term,
                 (unsigned long long)(s->now - q));
}

static void check_new_leader(sim *s, sim_node *n, uint64_t term)
{
    /* Leader Completeness: every entry committed in an earlier term is in its log. */
    uint64_t need = 0;
    for (uint64_t t = 0; t < term && t < s->terms_cap; t++)
        if (s->best_commit[t] > need)
            need = s->best_commit[t];
    if (need > n->mp_last) {
        sim_fail(s, "leader %llu of term %llu lacks committed entries (last %llu < %llu)",
                 (unsigned long long)n->id, (unsigned long long)term,
                 (unsigned long long)n->mp_last, (unsigned long long)need);
        return;
    }
    if (need >= n->mp_first && n->mp[need] != s->cp[need])
        sim_fail(s,
                 "leader %llu of term %llu has a log that differs from the committed one at %llu",
                 (unsigned long long)n->id, (unsigned long long)term, (unsigned long long)need);
    memset(n->resp_tick, 0, sizeof(n->resp_tick));
    memset(n->counted, 0, sizeof(n->counted));
}

void sim_check_step(sim *s)
{
    for (uint64_t id = 1; id < SIM_MAX_IDS && !s->failed; id++) {
        sim_node *n = &s->nodes[id];
        if (n->status != SIM_UP)
            continue;
        raft_status st;
        raft_node_status(n->r, &st);
        if (st.applied > st.hard_state.commit)
            sim_fail(s, "node %llu applied %llu past commit %llu", (unsigned long long)id,
                     (unsigned long long)st.applied, (unsigned long long)st.hard_state.commit);
        if (st.soft_state.raft_state != RAFT_STATE_LEADER)
            continue;
        uint64_t term = st.hard_state.term;
        ensure_term(s, term);
        if (s->leader_of[term] == 0)
            s->leader_of[term] = id;
        else if (s->leader_of[term] != id)
            sim_fail(s, "election safety: nodes %llu and %llu both lead term %llu",
                     (unsigned long long)s->leader_of[term], (unsigned long long)id,
                     (unsigned long long)term);
        if (n->lead_term != term) {
            n->lead_term = term;
            n->lead_last = st.last_index;
            check_new_leader(s, n, term);
        } else if (st.last_index < n->lead_last) {
            sim_fail(s, "leader %llu shortened its log from %llu to %llu", (unsigned long long)id,
                     (unsigned long long)n->lead_last, (unsigned long long)st.last_index);
        }
        n->lead_last = st.last_index;
        if (s->base_cfg.check_quorum && !s->failed)
            check_quorum_contact(s, n, &st);
    }
}
