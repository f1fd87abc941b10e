/*
 * poller.c: the raftstore poller thread (TiKV's batch-system poller with the store and peer
 * FSMs, one thread). Each round:
 *   1. drain the mailboxes that got messages (step Raft, propose, read, apply reports...);
 *   2. on the base tick, tick every peer and the store's timers;
 *   3. collect every peer's Ready: send the messages that need no persistence, add entries
 *      and hard states to ONE raft-engine write batch;
 *   4. write that batch with ONE fsync (group commit for every region of the store);
 *   5. send the messages that waited for the write, hand committed entries to the apply
 *      thread in one push, serve read indexes, advance every Ready.
 */
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

void rstore__poller_schedule(rstore_poller *p, rstore_mailbox *mb)
{
    pthread_mutex_lock(&p->mu);
    mb->ready_next = NULL;
    if (p->ready_tail)
        p->ready_tail->ready_next = mb;
    else
        p->ready_head = mb;
    p->ready_tail = mb;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void rstore__poller_send_ctl(rstore_poller *p, rstore_msg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->stop) {
        pthread_mutex_unlock(&p->mu);
        rstore__msg_free(m, TKV_ECLOSED);
        return;
    }
    if (p->ctl_tail)
        p->ctl_tail->next = m;
    else
        p->ctl_head = m;
    p->ctl_tail = m;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Adds @p to the round's touched list once. */
static void touch(rstore_peer **head, rstore_peer *p)
{
    if (p->touched)
        return;
    p->touched = true;
    p->round_next = *head;
    *head = p;
}

/* Waits for work or the next tick; returns the scheduled mailboxes and control messages. */
static bool wait_work(rstore *s, bool busy, rstore_mailbox **mbs, rstore_msg **ctl)
{
    rstore_poller *p = &s->poller;
    pthread_mutex_lock(&p->mu);
    while (!busy && p->ready_head == NULL && p->ctl_head == NULL && !p->stop) {
        uint64_t now = tkv_clock_mono_ms();
        if (now >= s->next_tick_ms)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t wait_ms = s->next_tick_ms - now;
        ts.tv_sec += (time_t)(wait_ms / 1000);
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    *mbs = p->ready_head;
    p->ready_head = p->ready_tail = NULL;
    *ctl = p->ctl_head;
    p->ctl_head = p->ctl_tail = NULL;
    bool stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    return !stop;
}

/* Releases a drained mailbox: rescheduled when messages arrived meanwhile. */
static void release_mailbox(rstore *s, rstore_mailbox *mb)
{
    pthread_mutex_lock(&mb->mu);
    if (mb->head != NULL && !mb->closed) {
        atomic_fetch_add(&mb->refs, 1);
        rstore__poller_schedule(&s->poller, mb);
    } else {
        mb->scheduled = false;
    }
    pthread_mutex_unlock(&mb->mu);
    rstore__mailbox_unref(mb); /* the ready list's reference */
}

static void store_tick(rstore *s, uint64_t now)
{
    size_t leaders = 0;
    for (size_t i = 0; i < s->n_peers; i++)
        if (rstore__peer_is_leader(s->peers[i]))
            leaders++;
    atomic_store(&s->stat_regions, s->n_peers);
    atomic_store(&s->stat_leaders, leaders);
    if (now >= s->next_store_hb_ms) {
        s->next_store_hb_ms = now + s->opts.pd_store_heartbeat_tick_ms;
        rstore__schedule_store_heartbeat(s, s->n_peers, leaders);
    }
    if (now >= s->next_snap_clean_ms) {
        s->next_snap_clean_ms = now + 60000;
        rstore_task *t = rstore__task_new(RSTORE_TASK_CLEAN_SNAPS, 0);
        t->a = 1800; /* seconds */
        rstore__worker_push(&s->worker, t);
    }
}

/* Runs one round over the touched peers: collect Readies, write once, finish them. */
static void run_round(rstore *s, rstore_peer *touched, eng_batch *wb)
{
    rstore_round r = {.raft_wb = wb};
    for (rstore_peer *p = touched; p; p = p->round_next)
        if (!p->destroyed)
            rstore__peer_collect_ready(p, &r);
    rstore__transport_flush(&s->transport);
    if (eng_batch_count(wb) > 0) {
        uint64_t t0 = tkv_clock_mono_ns();
        rstore__must_write(s->opts.raft, wb, r.sync && s->opts.sync_log, "raft log");
        tkv_series_observe(s->m.append_log_duration, (double)(tkv_clock_mono_ns() - t0) / 1e9);
        eng_batch_clear(wb);
    }
    for (rstore_peer *p = r.ready_head; p; p = p->ready_next_round)
        rstore__peer_post_persist(p, &r);
    for (rstore_peer *p = touched; p; p = p->round_next)
        if (!p->destroyed)
            rstore__peer_update_reader(p);
    rstore__transport_flush(&s->transport);
    rstore__apply_push(&s->apply, r.apply_head, r.apply_tail);
}

void *rstore__poller_main(void *arg)
{
    rstore *s = arg;
    eng_batch *wb;
    if (eng_batch_new(s->opts.raft, &wb) != 0) {
        TKV_LOG_FATAL("out of memory starting the poller");
        abort();
    }
    s->next_tick_ms = tkv_clock_mono_ms() + s->opts.raft_base_tick_ms;
    bool busy = true; /* the first round looks at every peer */
    rstore_peer *revisit = NULL;
    for (size_t i = 0; i < s->n_peers; i++)
        touch(&revisit, s->peers[i]);
    for (;;) {
        rstore_mailbox *mbs;
        rstore_msg *ctl;
        if (!wait_work(s, busy, &mbs, &ctl)) {
            /* Stopping: what was scheduled is released; peers are freed by rstore_free. */
            while (mbs) {
                rstore_mailbox *next = mbs->ready_next;
                release_mailbox(s, mbs);
                mbs = next;
            }
            while (ctl) {
                rstore_msg *next = ctl->next;
                rstore__msg_free(ctl, TKV_ECLOSED);
                ctl = next;
            }
            break;
        }
        rstore_peer *touched = revisit;
        revisit = NULL;
        uint64_t now = tkv_clock_mono_ms();
        while (ctl) {
            rstore_msg *next = ctl->next;
            rstore__store_handle_ctl(s, ctl, &touched);
            ctl = next;
        }
        for (rstore_mailbox *mb = mbs; mb; mb = mb->ready_next) {
            pthread_mutex_lock(&mb->mu);
            rstore_msg *m = mb->head;
            mb->head = mb->tail = NULL;
            mb->len = 0;
            rstore_peer *p = mb->peer;
            pthread_mutex_unlock(&mb->mu);
            while (m) {
                rstore_msg *next = m->next;
                if (p && !p->destroyed)
                    rstore__peer_handle(p, m);
                else
                    rstore__msg_free(m, 0);
                m = next;
            }
            if (p && !p->destroyed)
                touch(&touched, p);
        }
        if (now >= s->next_tick_ms) {
            s->next_tick_ms = now + s->opts.raft_base_tick_ms;
            for (size_t i = 0; i < s->n_peers; i++) {
                rstore__peer_tick(s->peers[i], now);
                touch(&touched, s->peers[i]);
            }
            store_tick(s, now);
        }
        run_round(s, touched, wb);
        /* Peers with more work (a commit that followed their own write, an applied
         * snapshot) go around again at once. */
        busy = false;
        rstore_peer *p = touched;
        while (p) {
            rstore_peer *next = p->round_next;
            p->touched = false;
            if (!p->destroyed &&
                ((p->pending_rd == NULL && raft_node_has_ready(p->raft)) || p->snap_applied)) {
                touch(&revisit, p);
                busy = true;
            }
            p = next;
        }
        while (mbs) {
            rstore_mailbox *next = mbs->ready_next;
            release_mailbox(s, mbs);
            mbs = next;
        }
        rstore__store_free_destroyed(s);
    }
    eng_batch_free(wb);
    return NULL;
}
