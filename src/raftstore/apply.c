/*
 * apply.c: the apply thread (TiKV's apply batch-system with one poller). It owns each
 * region's apply delegate: the region as the kv engine knows it and its RaftApplyState.
 * Each round applies every queued task into ONE kv write batch, puts the RaftApplyState of
 * every touched region into the same batch (the apply index is persisted atomically with
 * the data), writes it (synced when an admin command changed region metadata), then
 * answers the proposals' callbacks and reports to the peers.
 *
 * Snapshot installs, snapshot generation and destruction end the current round first, so
 * they see (and are seen after) everything applied before them.
 */
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/keys.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

rstore_apply_task *rstore__apply_task_new(rstore_apply_task_type type, uint64_t region_id)
{
    rstore_apply_task *t = tkv_xcalloc(1, sizeof(*t));
    t->type = type;
    t->region_id = region_id;
    raft_entry_vec_init(&t->entries);
    return t;
}

void rstore__apply_task_free(rstore_apply_task *t, int rc)
{
    if (t == NULL)
        return;
    for (size_t i = 0; t->cbs && i < t->entries.len; i++)
        if (t->cbs[i].kind != RSTORE_CB_NONE)
            rstore__cb_done(&t->cbs[i], rc,
                            rc == 0 ? stor_rerr_region_not_found(t->region_id) : NULL);
    tkv_free(t->cbs);
    raft_entry_vec_deinit(&t->entries);
    rstore__region_free(t->region);
    tkv_free(t);
}

/* ---- delegates ---------------------------------------------------------------------- */

#define DEL_TOMB ((rstore_apply_delegate *)(uintptr_t)1)

static size_t del_slot(uint64_t id, size_t cap)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

rstore_apply_delegate *rstore__apply_delegate_get(rstore_apply *a, uint64_t region_id)
{
    size_t mask = a->cap - 1;
    for (size_t i = del_slot(region_id, a->cap), n = 0; n < a->cap; i = (i + 1) & mask, n++) {
        rstore_apply_delegate *d = a->dels[i];
        if (d == NULL)
            return NULL;
        if (d != DEL_TOMB && d->region_id == region_id)
            return d;
    }
    return NULL;
}

static void del_free(rstore_apply_delegate *d)
{
    rstore__region_free(d->region);
    for (size_t i = 0; i < d->n_results; i++)
        rstore__exec_result_deinit(&d->results[i]);
    tkv_free(d->results);
    tkv_free(d);
}

static void del_remove(rstore_apply *a, rstore_apply_delegate *d)
{
    size_t mask = a->cap - 1;
    for (size_t i = del_slot(d->region_id, a->cap), n = 0; n < a->cap; i = (i + 1) & mask, n++) {
        if (a->dels[i] == d) {
            a->dels[i] = DEL_TOMB;
            a->n--;
            break;
        }
    }
    for (size_t i = 0; i < a->n_touched; i++) {
        if (a->touched[i] == d) {
            a->touched[i] = a->touched[--a->n_touched];
            break;
        }
    }
    del_free(d);
}

static void del_rehash(rstore_apply *a, size_t cap)
{
    rstore_apply_delegate **dels = tkv_xcalloc(cap, sizeof(rstore_apply_delegate *));
    for (size_t i = 0; i < a->cap; i++) {
        rstore_apply_delegate *d = a->dels[i];
        if (d && d != DEL_TOMB) {
            size_t j = del_slot(d->region_id, cap);
            while (dels[j])
                j = (j + 1) & (cap - 1);
            dels[j] = d;
        }
    }
    tkv_free(a->dels);
    a->dels = dels;
    a->cap = cap;
}

rstore_apply_delegate *rstore__apply_delegate_add(rstore_apply *a, const Metapb__Region *region,
                                                  uint64_t peer_id, const rstore_apply_state *st)
{
    rstore_apply_delegate *old = rstore__apply_delegate_get(a, region->id);
    if (old)
        del_remove(a, old);
    if ((a->n + 1) * 2 > a->cap)
        del_rehash(a, a->cap * 2);
    else
        del_rehash(a, a->cap); /* drops tombstones */
    rstore_apply_delegate *d = tkv_xcalloc(1, sizeof(*d));
    d->region_id = region->id;
    d->peer_id = peer_id;
    d->region = rstore__region_dup(region);
    d->st = *st;
    size_t j = del_slot(region->id, a->cap);
    while (a->dels[j])
        j = (j + 1) & (a->cap - 1);
    a->dels[j] = d;
    a->n++;
    return d;
}

void rstore__apply_add_result(rstore_apply_delegate *d, rstore_exec_result *res)
{
    if (d->n_results == d->cap_results) {
        size_t cap = d->cap_results ? d->cap_results * 2 : 4;
        rstore_exec_result *r = tkv_xrealloc(d->results, cap * sizeof(*r));
        d->results = r;
        d->cap_results = cap;
    }
    d->results[d->n_results++] = *res;
    memset(res, 0, sizeof(*res));
    d->report = true;
}

void rstore__apply_defer_cb(rstore_apply *a, rstore_cb *cb, Errorpb__Error *rerr)
{
    if (cb == NULL || cb->kind == RSTORE_CB_NONE) {
        stor_rerr_free(rerr);
        return;
    }
    if (a->n_done == a->cap_done) {
        size_t cap = a->cap_done ? a->cap_done * 2 : 256;
        a->done_cbs = tkv_xrealloc(a->done_cbs, cap * sizeof(*a->done_cbs));
        a->done_errs = tkv_xrealloc(a->done_errs, cap * sizeof(Errorpb__Error *));
        a->cap_done = cap;
    }
    a->done_cbs[a->n_done] = *cb;
    a->done_errs[a->n_done] = rerr;
    a->n_done++;
    cb->kind = RSTORE_CB_NONE;
}

void rstore__apply_mark_touched(rstore_apply *a, rstore_apply_delegate *d)
{
    if (d->dirty)
        return;
    d->dirty = true;
    if (a->n_touched == a->cap_touched) {
        size_t cap = a->cap_touched ? a->cap_touched * 2 : 64;
        a->touched = tkv_xrealloc(a->touched, cap * sizeof(rstore_apply_delegate *));
        a->cap_touched = cap;
    }
    a->touched[a->n_touched++] = d;
}

/* ---- rounds ------------------------------------------------------------------------- */

/* Sends @d's report (applied index and exec results) to its peer. */
static void report(rstore_apply *a, rstore_apply_delegate *d)
{
    rstore_apply_res *res = tkv_xcalloc(1, sizeof(*res));
    res->peer_id = d->peer_id;
    res->applied_index = d->st.applied_index;
    res->applied_term = d->applied_term;
    res->written_bytes = d->written_bytes;
    res->written_keys = d->written_keys;
    res->results = d->results;
    res->n_results = d->n_results;
    d->results = NULL;
    d->n_results = d->cap_results = 0;
    d->written_bytes = d->written_keys = 0;
    d->report = false;
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_APPLY_RES, d->region_id);
    m->u.apply_res = res;
    rstore__router_send_or_free(&a->store->router, m);
}

/* Writes the round's batch with every touched region's apply state, then answers
 * callbacks and reports. */
static void flush_round(rstore_apply *a)
{
    rstore *s = a->store;
    for (size_t i = 0; i < a->n_touched; i++) {
        rstore_apply_delegate *d = a->touched[i];
        if (rstore__put_apply_state(a->wb, d->region_id, &d->st) != 0) {
            TKV_LOG_FATAL("apply state batch failed");
            abort();
        }
    }
    if (eng_batch_count(a->wb) > 0) {
        uint64_t t0 = tkv_clock_mono_ns();
        rstore__must_write(s->opts.kv, a->wb, a->wb_sync, "apply");
        tkv_series_observe(s->m.apply_log_duration, (double)(tkv_clock_mono_ns() - t0) / 1e9);
        eng_batch_clear(a->wb);
    }
    a->wb_sync = false;
    while (a->compacts != NULL) {
        rstore_task *t = a->compacts;
        a->compacts = t->next;
        rstore__worker_push(&s->worker, t);
    }
    uint64_t now = tkv_clock_mono_ns();
    for (size_t i = 0; i < a->n_done; i++) {
        if (a->done_cbs[i].start_ns)
            tkv_series_observe(s->m.commit_log_duration,
                               (double)(now - a->done_cbs[i].start_ns) / 1e9);
        rstore__cb_done(&a->done_cbs[i], 0, a->done_errs[i]);
    }
    a->n_done = 0;
    for (size_t i = 0; i < a->n_touched; i++) {
        rstore_apply_delegate *d = a->touched[i];
        d->dirty = false;
        report(a, d);
    }
    a->n_touched = 0;
}

static void apply_entries(rstore_apply *a, rstore_apply_task *t)
{
    rstore_apply_delegate *d = rstore__apply_delegate_get(a, t->region_id);
    if (d == NULL || d->removed || d->peer_id != t->peer_id) {
        rstore__apply_task_free(t, 0);
        return;
    }
    for (size_t i = 0; i < t->entries.len; i++) {
        const raft_entry *e = &t->entries.items[i];
        if (e->index <= d->st.applied_index) {
            rstore__apply_defer_cb(a, &t->cbs[i], stor_rerr_stale_command());
            continue;
        }
        if (d->removed) {
            rstore__apply_defer_cb(a, &t->cbs[i], stor_rerr_region_not_found(d->region_id));
            continue;
        }
        rstore__apply_entry(a, d, e, &t->cbs[i]);
        d->st.applied_index = e->index;
        d->applied_term = e->term;
        rstore__apply_mark_touched(a, d);
        /* An admin command may have replaced the delegate's region; keep going. */
    }
    d->st.commit_index = TKV_MAX(d->st.commit_index, t->commit_index);
    d->st.commit_term = TKV_MAX(d->st.commit_term, t->commit_term);
    rstore__apply_task_free(t, 0);
}

static void send_result_now(rstore_apply *a, rstore_apply_delegate *d, rstore_exec_result *res)
{
    rstore__apply_add_result(d, res);
    report(a, d);
}

/* Installs a received snapshot: region data, region state and apply state in one synced
 * write. */
static void apply_snapshot(rstore_apply *a, rstore_apply_task *t)
{
    rstore *s = a->store;
    char path[512];
    rstore__snap_path(s, false, t->region_id, t->snap_term, t->snap_index, path, sizeof(path));
    eng_batch *b = a->wb;
    uint64_t t0 = tkv_clock_mono_ns();
    int rc = rstore__snap_load_into(s, path, t->region, b);
    rstore_apply_state st = {
        .applied_index = t->snap_index,
        .truncated_index = t->snap_index,
        .truncated_term = t->snap_term,
        .commit_index = TKV_MAX(t->commit_index, t->snap_index),
        .commit_term = t->snap_term,
    };
    if (rc == 0)
        rc = rstore__put_region_state(b, t->region, RAFT_SERVERPB__PEER_STATE__Normal);
    if (rc == 0)
        rc = rstore__put_apply_state(b, t->region_id, &st);
    if (rc != 0) {
        /* The file was checked when it arrived: failing now means the disk lost it. */
        TKV_LOG_FATAL("snapshot cannot be applied", TKV_LF_U64("region_id", t->region_id),
                      TKV_LF_ERR("err", rc));
        abort();
    }
    rstore__must_write(s->opts.kv, b, true, "snapshot");
    eng_batch_clear(b);
    TKV_IGNORE(sec_file_remove(rstore__snap_keys(s), path));
    TKV_LOG_INFO("snapshot data applied", TKV_LF_U64("region_id", t->region_id),
                 TKV_LF_U64("index", t->snap_index),
                 TKV_LF_U64("ms", (tkv_clock_mono_ns() - t0) / 1000000));
    rstore_apply_delegate *d = rstore__apply_delegate_add(a, t->region, t->peer_id, &st);
    d->applied_term = t->snap_term;
    rstore_exec_result res = {.type = RSTORE_EXEC_SNAPSHOT_APPLIED};
    res.region = rstore__region_dup(t->region);
    res.index = t->snap_index;
    res.term = t->snap_term;
    send_result_now(a, d, &res);
}

static void destroy(rstore_apply *a, rstore_apply_task *t)
{
    rstore *s = a->store;
    rstore_apply_delegate *d = rstore__apply_delegate_get(a, t->region_id);
    if (d && d->peer_id != t->peer_id)
        d = NULL; /* a newer replica of the region already lives here */
    eng_batch *b = a->wb;
    const Metapb__Region *region = d ? d->region : t->region;
    int rc = rstore__put_region_state(b, region, RAFT_SERVERPB__PEER_STATE__Tombstone);
    if (rc == 0 && d) {
        uint8_t key[11];
        tkv_keys_apply_state_key(key, t->region_id);
        rc = eng_batch_delete(b, ENG_CF_RAFT, tkv_slice_of(key, sizeof(key)));
    }
    if (rc == 0 && !t->keep_data && d)
        rc = rstore__delete_region_data(b, region);
    if (rc != 0) {
        TKV_LOG_FATAL("destroy batch failed", TKV_LF_ERR("err", rc));
        abort();
    }
    rstore__must_write(s->opts.kv, b, true, "destroy");
    eng_batch_clear(b);
    if (d)
        del_remove(a, d);
    rstore_apply_res *res = tkv_xcalloc(1, sizeof(*res));
    res->peer_id = t->peer_id;
    res->results = tkv_xcalloc(1, sizeof(rstore_exec_result));
    res->results[0].type = RSTORE_EXEC_DESTROYED;
    res->n_results = 1;
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_APPLY_RES, t->region_id);
    m->u.apply_res = res;
    rstore__router_send_or_free(&s->router, m);
}

/* Takes a kv snapshot at the region's applied index for the worker to serialize. */
static void gen_snapshot(rstore_apply *a, rstore_apply_task *t)
{
    rstore *s = a->store;
    rstore_apply_delegate *d = rstore__apply_delegate_get(a, t->region_id);
    if (d == NULL || d->removed) {
        rstore_msg *m = rstore__msg_new(RSTORE_MSG_SNAP_GEN, t->region_id);
        m->u.snap_gen = tkv_xcalloc(1, sizeof(rstore_snap_gen));
        m->u.snap_gen->rc = TKV_ENOTFOUND;
        rstore__router_send_or_free(&s->router, m);
        return;
    }
    eng_snap *es;
    int rc = eng_snap_open(s->opts.kv, &es);
    if (rc != 0) {
        rstore_msg *m = rstore__msg_new(RSTORE_MSG_SNAP_GEN, t->region_id);
        m->u.snap_gen = tkv_xcalloc(1, sizeof(rstore_snap_gen));
        m->u.snap_gen->rc = rc;
        rstore__router_send_or_free(&s->router, m);
        return;
    }
    rstore_task *w = rstore__task_new(RSTORE_TASK_GEN_SNAP, t->region_id);
    w->region = rstore__region_dup(d->region);
    w->snap = es;
    w->a = d->st.applied_index;
    w->b = d->applied_term;
    rstore__worker_push(&s->worker, w);
}

static void run_task(rstore_apply *a, rstore_apply_task *t)
{
    switch (t->type) {
    case RSTORE_APPLY_ENTRIES:
        apply_entries(a, t);
        return;
    case RSTORE_APPLY_REGISTER: {
        rstore_apply_delegate *d = rstore__apply_delegate_add(a, t->region, t->peer_id, &t->state);
        d->applied_term = t->term;
        break;
    }
    case RSTORE_APPLY_SNAPSHOT:
        flush_round(a);
        apply_snapshot(a, t);
        break;
    case RSTORE_APPLY_DESTROY:
        flush_round(a);
        destroy(a, t);
        break;
    case RSTORE_APPLY_GEN_SNAP:
        flush_round(a);
        gen_snapshot(a, t);
        break;
    }
    rstore__apply_task_free(t, 0);
}

static void *apply_main(void *arg)
{
    rstore_apply *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        while (a->head == NULL && !a->stop)
            pthread_cond_wait(&a->cv, &a->mu);
        rstore_apply_task *t = a->head;
        a->head = a->tail = NULL;
        bool stop = a->stop;
        pthread_mutex_unlock(&a->mu);
        if (t == NULL && stop)
            break;
        while (t) {
            rstore_apply_task *next = t->next;
            run_task(a, t);
            t = next;
        }
        flush_round(a);
    }
    return NULL;
}

int rstore__apply_init(rstore_apply *a, rstore *s)
{
    memset(a, 0, sizeof(*a));
    a->store = s;
    int rc = pthread_mutex_init(&a->mu, NULL);
    if (rc != 0)
        return -rc;
    pthread_cond_init(&a->cv, NULL);
    a->cap = 64;
    a->dels = tkv_xcalloc(a->cap, sizeof(rstore_apply_delegate *));
    tkv_buf_init(&a->kbuf);
    tkv_buf_init(&a->kbuf2);
    return eng_batch_new(s->opts.kv, &a->wb);
}

int rstore__apply_start(rstore_apply *a)
{
    int rc = pthread_create(&a->thread, NULL, apply_main, a);
    if (rc != 0)
        return -rc;
    pthread_setname_np(a->thread, "rstore-apply");
    a->started = true;
    return 0;
}

void rstore__apply_stop(rstore_apply *a)
{
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->started) {
        pthread_join(a->thread, NULL);
        a->started = false;
    }
}

void rstore__apply_deinit(rstore_apply *a)
{
    rstore_apply_task *t = a->head;
    while (t) {
        rstore_apply_task *next = t->next;
        rstore__apply_task_free(t, TKV_ECLOSED);
        t = next;
    }
    for (size_t i = 0; i < a->cap; i++)
        if (a->dels[i] && a->dels[i] != DEL_TOMB)
            del_free(a->dels[i]);
    tkv_free(a->dels);
    while (a->compacts != NULL) {
        rstore_task *c = a->compacts;
        a->compacts = c->next;
        rstore__task_free(c);
    }
    tkv_free(a->done_cbs);
    tkv_free(a->done_errs);
    tkv_free(a->touched);
    tkv_buf_deinit(&a->kbuf);
    tkv_buf_deinit(&a->kbuf2);
    eng_batch_free(a->wb);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    memset(a, 0, sizeof(*a));
}

void rstore__apply_push(rstore_apply *a, rstore_apply_task *head, rstore_apply_task *tail)
{
    if (head == NULL)
        return;
    tail->next = NULL;
    pthread_mutex_lock(&a->mu);
    if (a->tail)
        a->tail->next = head;
    else
        a->head = head;
    a->tail = tail;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}
