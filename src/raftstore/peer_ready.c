/*
 * peer_ready.c: a peer's part of the poller round (DESIGN 5). collect_ready takes the Ready,
 * sends the messages that may go before the log write (a leader's appends: Raft thesis
 * 10.2.1) and adds the entries and hard state to the round's single raft-engine batch;
 * post_persist runs after that batch was written with one fsync: it sends the messages that
 * had to wait, hands committed entries (with the callbacks of their proposals) to the apply
 * thread, records read indexes, and advances.
 *
 * A Ready carrying a snapshot is parked: the snapshot's data is applied to the kv engine by
 * the apply thread first, and only then is the raft state written and the Ready advanced,
 * so a crash in between leaves a raft state behind the applied snapshot, which loading
 * repairs (peer_storage.c), never the reverse.
 *
 * Thread: the poller's.
 */
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

static void on_role_change(rstore_peer *p, const raft_soft_state *ss)
{
    rstore *s = p->store;
    if (ss->raft_state == RAFT_STATE_LEADER) {
        TKV_LOG_INFO("became leader", TKV_LF_U64("region_id", p->region_id),
                     TKV_LF_U64("peer_id", p->peer_id),
                     TKV_LF_U64("term", raft_node_term(p->raft)));
        /* Tell PD at once, so clients find the new leader quickly. */
        p->next_pd_hb_ms = 0;
        p->pending_conf = false;
        uint64_t now = tkv_clock_mono_ms();
        p->next_gc_ms = now + s->opts.raft_log_gc_tick_ms;
        for (size_t i = 0; i < p->n_heard; i++)
            p->heard_ms[i] = now; /* give every member a fresh start before calling it down */
    } else if (p->last_leader_id == p->peer_id) {
        TKV_LOG_INFO("stepped down", TKV_LF_U64("region_id", p->region_id),
                     TKV_LF_U64("peer_id", p->peer_id), TKV_LF_U64("leader", ss->leader_id));
    }
    p->last_leader_id = ss->leader_id;
    if (ss->raft_state != RAFT_STATE_LEADER) {
        rstore__reader_invalidate(p->mb->reader);
        /* Reads waiting for a read index from the old leadership will never get one. */
        rstore_read_req *r = p->reads_head, *keep = NULL, *keep_tail = NULL;
        p->reads_head = p->reads_tail = NULL;
        while (r) {
            rstore_read_req *next = r->next;
            if (r->read_index == 0 && !r->ctx.replica_read) {
                r->cb(r->ud, 0, rstore__peer_not_leader(p), NULL);
                tkv_free(r);
            } else {
                r->next = NULL;
                if (keep_tail)
                    keep_tail->next = r;
                else
                    keep = r;
                keep_tail = r;
            }
            r = next;
        }
        p->reads_head = keep;
        p->reads_tail = keep_tail;
    }
}

/* Hands the snapshot in @rd to the apply thread and parks the Ready. */
static void park_snapshot(rstore_peer *p, raft_ready *rd)
{
    rstore *s = p->store;
    const raft_snapshot *snap = rd->snapshot;
    rstore_snap_meta meta;
    if (rstore__snap_meta_decode(tkv_slice_of(snap->data, snap->data_len), &meta) != 0) {
        /* check_snapshot validated it before it was stepped: this cannot decode-fail. */
        TKV_LOG_FATAL("accepted snapshot does not decode", TKV_LF_U64("region_id", p->region_id));
        abort();
    }
    p->pending_rd = rd;
    p->snap_applying = true;
    p->snap_applied = false;
    p->snap_index = snap->metadata.index;
    p->snap_term = snap->metadata.term;
    atomic_fetch_add(&s->stat_applying, 1);
    rstore_apply_task *t = rstore__apply_task_new(RSTORE_APPLY_SNAPSHOT, p->region_id);
    t->peer_id = p->peer_id;
    t->region = meta.region; /* handed over */
    meta.region = NULL;
    t->snap_index = p->snap_index;
    t->snap_term = p->snap_term;
    t->commit_index = rd->hard_state.commit;
    rstore__snap_meta_deinit(&meta);
    rstore__apply_push(&s->apply, t, t);
    TKV_LOG_INFO("applying snapshot", TKV_LF_U64("region_id", p->region_id),
                 TKV_LF_U64("index", p->snap_index), TKV_LF_U64("term", p->snap_term));
}

static void add_to_round(rstore_peer *p, rstore_round *r)
{
    p->ready_next_round = r->ready_head;
    r->ready_head = p;
}

static void must(int rc, const char *what)
{
    if (rc != 0) {
        TKV_LOG_FATAL("raft log batch failed", TKV_LF_STR("what", what), TKV_LF_ERR("err", rc));
        abort();
    }
}

void rstore__peer_collect_ready(rstore_peer *p, rstore_round *r)
{
    rstore *s = p->store;
    if (p->pending_rd) {
        if (!p->snap_applied)
            return;
        /* The kv engine has the snapshot: now the raft state follows it. */
        raft_ready *rd = p->pending_rd;
        uint64_t of, ol;
        must(rstore__ps_apply_snapshot(&p->ps, p->snap_index, p->snap_term, r->raft_wb, &of, &ol),
             "snapshot");
        if (of <= TKV_MIN(ol, p->snap_index)) {
            rstore_task *t = rstore__task_new(RSTORE_TASK_GC_LOG, p->region_id);
            t->a = of;
            t->b = TKV_MIN(ol, p->snap_index);
            rstore__worker_push(&s->worker, t);
        }
        must(rstore__ps_append(&p->ps, rd->entries, rd->n_entries, r->raft_wb), "append");
        if (rd->has_hard_state)
            p->ps.hs = rd->hard_state;
        p->ps.hs.commit = TKV_MAX(p->ps.hs.commit, p->snap_index);
        rstore_raft_state st = rstore__ps_raft_state(&p->ps);
        must(rstore__put_raft_state(r->raft_wb, p->region_id, &st), "raft state");
        r->sync = true;
        add_to_round(p, r);
        return;
    }
    if (p->destroying || !raft_node_has_ready(p->raft))
        return;
    raft_ready *rd;
    int rc = raft_node_ready(p->raft, &rd);
    if (rc != 0) {
        TKV_LOG_WARN("raft ready failed", TKV_LF_U64("region_id", p->region_id),
                     TKV_LF_ERR("err", rc));
        return;
    }
    tkv_series_inc(s->m.raft_ready_handled);
    if (rd->has_soft_state)
        on_role_change(p, &rd->soft_state);
    if (rd->n_messages)
        rstore__peer_send(p, rd->messages, rd->n_messages);
    if (rd->snapshot) {
        park_snapshot(p, rd);
        return;
    }
    bool write = false;
    if (rd->n_entries) {
        must(rstore__ps_append(&p->ps, rd->entries, rd->n_entries, r->raft_wb), "append");
        write = true;
    }
    if (rd->has_hard_state) {
        p->ps.hs = rd->hard_state;
        write = true;
    }
    if (write) {
        rstore_raft_state st = rstore__ps_raft_state(&p->ps);
        must(rstore__put_raft_state(r->raft_wb, p->region_id, &st), "raft state");
        r->sync |= rd->must_sync;
    }
    p->pending_rd = rd; /* this round's Ready, advanced in post_persist */
    add_to_round(p, r);
}

/* Builds the apply task for the committed entries of @rd, attaching the callbacks of the
 * proposals they answer (matched by index and term; a proposal whose index was taken by an
 * entry of another term was overwritten: StaleCommand). */
static rstore_apply_task *apply_task_for(rstore_peer *p, const raft_ready *rd)
{
    rstore_apply_task *t = rstore__apply_task_new(RSTORE_APPLY_ENTRIES, p->region_id);
    t->peer_id = p->peer_id;
    t->term = raft_node_term(p->raft);
    t->cbs = tkv_xcalloc(rd->n_committed_entries, sizeof(rstore_cb));
    for (size_t i = 0; i < rd->n_committed_entries; i++) {
        const raft_entry *e = &rd->committed_entries[i];
        if (raft_entry_vec_push_copy(&t->entries, e) != 0) {
            TKV_LOG_FATAL("out of memory handing entries to apply");
            abort();
        }
        rstore_proposal *pr;
        while ((pr = rstore__peer_props_front(p)) != NULL &&
               (pr->index < e->index || (pr->index == e->index && pr->term != e->term))) {
            rstore__cb_done(&pr->cb, 0, stor_rerr_stale_command());
            rstore__peer_props_pop(p);
        }
        if (pr && pr->index == e->index && pr->term == e->term) {
            t->cbs[i] = pr->cb;
            pr->cb.kind = RSTORE_CB_NONE;
            rstore__peer_props_pop(p);
        }
    }
    const raft_entry *last = &rd->committed_entries[rd->n_committed_entries - 1];
    t->commit_index = last->index;
    t->commit_term = last->term;
    return t;
}

void rstore__peer_post_persist(rstore_peer *p, rstore_round *r)
{
    rstore *s = p->store;
    raft_ready *rd = p->pending_rd;
    bool was_snapshot = p->snap_applied;
    if (was_snapshot) {
        p->snap_applied = false;
        p->snap_applying = false;
        atomic_fetch_sub(&s->stat_applying, 1);
        atomic_fetch_add(&s->stat_snap_applied, 1);
        tkv_series_inc(s->m.snapshot_applied);
    }
    rstore__ps_appended(&p->ps, rd->entries, rd->n_entries);
    if (rd->n_persisted_messages)
        rstore__peer_send(p, rd->persisted_messages, rd->n_persisted_messages);
    if (rd->n_committed_entries) {
        rstore_apply_task *t = apply_task_for(p, rd);
        if (r->apply_tail)
            r->apply_tail->next = t;
        else
            r->apply_head = t;
        r->apply_tail = t;
    }
    if (rd->n_read_states)
        rstore__peer_on_read_states(p, rd->read_states, rd->n_read_states);
    p->pending_rd = NULL;
    int rc = raft_node_advance(p->raft);
    TKV_ASSERT(rc == 0);
}
