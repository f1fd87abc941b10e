/*
 * sim_kv.c: the replicated state machine of the simulation, a small key-value map written by
 * client puts (each with a unique write id, applied exactly once even when a client retries)
 * and read through ReadIndex or the lease. A read must see every write acknowledged before it
 * began (linearizability, Raft thesis 6.4): the checker compares the log index of the value a
 * read returns with the newest acknowledged write to that key when the read started.
 */
#include <stdlib.h>

#include "base/codec.h"
#include "sim.h"

#define WRITE_LEN 10 /* 'W', key, write id (8 bytes big-endian) */

void sim_sm_init(sim_sm *sm)
{
    memset(sm, 0, sizeof(*sm));
}

void sim_sm_deinit(sim_sm *sm)
{
    free(sm->done);
    memset(sm, 0, sizeof(*sm));
}

static void mark_done(sim_sm *sm, uint64_t w)
{
    if (w >= sm->done_cap) {
        size_t cap = sm->done_cap ? sm->done_cap : 256;
        while (cap <= w)
            cap *= 2;
        sm->done = sim_xrealloc(sm->done, cap);
        memset(sm->done + sm->done_cap, 0, cap - sm->done_cap);
        sm->done_cap = cap;
    }
    sm->done[w] = 1;
}

static bool is_done(const sim_sm *sm, uint64_t w)
{
    return w < sm->done_cap && sm->done[w];
}

/* Snapshot data: each cell (value, index), then the done table. */
void sim_sm_snapshot_data(const sim_sm *sm, tkv_buf *out)
{
    tkv_buf_reset(out);
    uint8_t b[8];
    for (int k = 0; k < SIM_KEYS; k++) {
        tkv_codec_put_u64_be(b, sm->kv[k].value);
        if (tkv_buf_append(out, b, 8) != 0)
            abort();
        tkv_codec_put_u64_be(b, sm->kv[k].index);
        if (tkv_buf_append(out, b, 8) != 0)
            abort();
    }
    if (tkv_buf_append(out, sm->done, sm->done_cap) != 0)
        abort();
}

void sim_sm_restore(sim *s, sim_node *n, const raft_snapshot *snap)
{
    sim_sm *sm = &n->sm;
    sim_sm_deinit(sm);
    sm->applied = snap->metadata.index;
    sm->conf = snap->metadata.conf_state;
    if (snap->data_len == 0)
        return; /* the bootstrap snapshot: nothing written yet */
    if (snap->data_len < SIM_KEYS * 16) {
        sim_fail(s, "node %llu got snapshot data of %zu bytes", (unsigned long long)n->id,
                 snap->data_len);
        return;
    }
    const uint8_t *p = snap->data;
    for (int k = 0; k < SIM_KEYS; k++) {
        sm->kv[k].value = tkv_codec_get_u64_be(p);
        sm->kv[k].index = tkv_codec_get_u64_be(p + 8);
        p += 16;
    }
    size_t rest = snap->data_len - SIM_KEYS * 16;
    for (size_t w = 0; w < rest; w++)
        if (p[w])
            mark_done(sm, w);
}

static sim_write *write_of(sim *s, uint64_t wid)
{
    return wid >= 1 && wid <= s->n_writes ? &s->writes[wid - 1] : NULL;
}

void sim_apply_entry(sim *s, sim_node *n, const raft_entry *e)
{
    sim_check_apply(s, n, e);
    n->sm.applied = e->index;
    if (e->entry_type == RAFT_ENTRY_CONF_CHANGE) {
        raft_conf_change cc;
        if (raft_conf_change_decode(tkv_slice_of(e->data, e->data_len), &cc) != 0) {
            sim_fail(s, "undecodable conf change at %llu", (unsigned long long)e->index);
            return;
        }
        int rc = raft_node_apply_conf_change(n->r, &cc, &n->sm.conf);
        if (rc != 0) {
            sim_fail(s, "apply conf change: %s", tkv_strerror(rc));
            return;
        }
        sim_trace(s, "node %llu applied conf change %d %llu at %llu", (unsigned long long)n->id,
                  (int)cc.change_type, (unsigned long long)cc.node_id,
                  (unsigned long long)e->index);
        /* Like raftstore, destroy a removed member once its removal is applied somewhere, so
         * that it does not linger and campaign. */
        if (cc.change_type == RAFT_CONF_REMOVE_NODE && cc.node_id < SIM_MAX_IDS &&
            (s->nodes[cc.node_id].status == SIM_UP || s->nodes[cc.node_id].status == SIM_CRASHED))
            s->nodes[cc.node_id].destroy_pending = true;
        return;
    }
    if (e->data_len != WRITE_LEN || e->data[0] != 'W')
        return; /* the empty entry of a new leader */
    int key = e->data[1];
    uint64_t wid = tkv_codec_get_u64_be(e->data + 2);
    if (key >= SIM_KEYS || is_done(&n->sm, wid))
        return;
    mark_done(&n->sm, wid);
    n->sm.kv[key].value = wid;
    n->sm.kv[key].index = e->index;
    sim_write *w = write_of(s, wid);
    if (w && !w->acked) {
        w->acked = true;
        w->index = e->index;
        if (e->index > s->key_acked_index[key])
            s->key_acked_index[key] = e->index;
        s->n_acked++;
    }
}

static sim_node *random_up(sim *s)
{
    uint64_t ids[SIM_MAX_IDS] = {0};
    size_t n = 0;
    for (uint64_t id = 1; id < SIM_MAX_IDS; id++)
        if (s->nodes[id].status == SIM_UP)
            ids[n++] = id;
    return n ? &s->nodes[ids[tkv_rng_below(&s->rng, n)]] : NULL;
}

/* Proposes @w at @n and returns the result (TKV_EDROPPED is an answer, not a failure). */
static int propose_write(sim *s, sim_node *n, const sim_write *w)
{
    uint8_t data[WRITE_LEN];
    data[0] = 'W';
    data[1] = (uint8_t)w->key;
    tkv_codec_put_u64_be(data + 2, w->id);
    int rc = raft_node_propose(n->r, data, sizeof(data), NULL, 0);
    if (rc != 0 && rc != TKV_EDROPPED)
        sim_fail(s, "propose at %llu: %s", (unsigned long long)n->id, tkv_strerror(rc));
    sim_trace(s, "client write %llu key %d at node %llu: %s", (unsigned long long)w->id, w->key,
              (unsigned long long)n->id, tkv_strerror(rc));
    return rc;
}

void sim_client_write(sim *s)
{
    sim_node *n = random_up(s);
    if (!n)
        return;
    sim_write *w = sim_push(&s->writes, &s->n_writes, &s->cap_writes, sizeof(sim_write));
    w->id = s->n_writes;
    w->key = (int)tkv_rng_below(&s->rng, SIM_KEYS);
    w->next_retry = s->now + 2 * (uint64_t)s->base_cfg.election_tick;
    TKV_IGNORE(propose_write(s, n, w));
}

void sim_client_retry(sim *s, bool to_leader)
{
    sim_node *l = sim_leader(s);
    int budget = to_leader ? 1000 : 4;
    for (size_t i = 0; i < s->n_writes && budget > 0; i++) {
        sim_write *w = &s->writes[i];
        if (w->acked || w->next_retry > s->now)
            continue;
        sim_node *n = (to_leader && l) ? l : random_up(s);
        if (!n)
            return;
        /* After healing the network is reliable: a retry only helps when a leader change
         * dropped the proposal, so retry rarely and keep the log from ballooning; a proposal
         * refused outright (flow control, no leader) is retried soon. */
        uint64_t et = (uint64_t)s->base_cfg.election_tick;
        int rc = propose_write(s, n, w);
        w->next_retry = s->now + (rc == TKV_EDROPPED ? 2 : (to_leader ? 10 : 3) * et);
        budget--;
        if (s->failed)
            return;
    }
}

size_t sim_pending_writes(const sim *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_writes; i++)
        n += !s->writes[i].acked;
    return n;
}

void sim_client_read(sim *s)
{
    sim_node *n = random_up(s);
    if (!n)
        return;
    sim_read *r = sim_push(&s->reads, &s->n_reads, &s->cap_reads, sizeof(sim_read));
    r->id = s->n_reads;
    r->key = (int)tkv_rng_below(&s->rng, SIM_KEYS);
    r->node = n->id;
    r->incarnation = n->incarnation;
    r->min_index = s->key_acked_index[r->key];
    uint8_t ctx[8];
    tkv_codec_put_u64_be(ctx, r->id);
    int rc = raft_node_read_index(n->r, ctx, sizeof(ctx));
    if (rc != 0 && rc != TKV_EDROPPED)
        sim_fail(s, "read_index at %llu: %s", (unsigned long long)n->id, tkv_strerror(rc));
    if (rc != 0)
        r->done = true; /* the client gives up at once */
    sim_trace(s, "client read %llu key %d at node %llu (needs index >= %llu): %s",
              (unsigned long long)r->id, r->key, (unsigned long long)n->id,
              (unsigned long long)r->min_index, tkv_strerror(rc));
}

void sim_read_states(sim *s, sim_node *n, const raft_read_state *rs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (rs[i].request_ctx_len != 8) {
            sim_fail(s, "read state with a %zu-byte context", rs[i].request_ctx_len);
            return;
        }
        uint64_t rid = tkv_codec_get_u64_be(rs[i].request_ctx);
        if (rid < 1 || rid > s->n_reads)
            continue;
        sim_read *r = &s->reads[rid - 1];
        if (r->node != n->id || r->incarnation != n->incarnation || r->index != 0 || r->done)
            continue;
        r->index = rs[i].index;
        if (r->index == 0)
            sim_fail(s, "read %llu answered with index 0", (unsigned long long)rid);
    }
}

void sim_reads_progress(sim *s, sim_node *n)
{
    for (size_t i = s->n_reads; i-- > 0;) {
        sim_read *r = &s->reads[i];
        if (r->done || r->node != n->id || r->index == 0 || r->incarnation != n->incarnation)
            continue;
        if (n->sm.applied < r->index)
            continue;
        r->done = true;
        s->n_reads_done++;
        const sim_cell *c = &n->sm.kv[r->key];
        sim_trace(s, "read %llu at node %llu: key %d = write %llu (index %llu), read index %llu",
                  (unsigned long long)r->id, (unsigned long long)n->id, r->key,
                  (unsigned long long)c->value, (unsigned long long)c->index,
                  (unsigned long long)r->index);
        if (c->index < r->min_index)
            sim_fail(s,
                     "stale read %llu at node %llu: key %d shows index %llu, but a write at %llu "
                     "was acknowledged before the read began",
                     (unsigned long long)r->id, (unsigned long long)n->id, r->key,
                     (unsigned long long)c->index, (unsigned long long)r->min_index);
    }
}
