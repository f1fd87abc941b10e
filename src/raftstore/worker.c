/*
 * worker.c: background threads with a FIFO task queue (TiKV's workers: split check, region
 * worker for snapshots, raft log GC), and the general worker's tasks.
 */
#include <stdlib.h>

#include "base/keys.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

rstore_task *rstore__task_new(rstore_task_type type, uint64_t region_id)
{
    rstore_task *t = tkv_xcalloc(1, sizeof(*t));
    t->type = type;
    t->region_id = region_id;
    tkv_buf_init(&t->buf);
    return t;
}

void rstore__task_free(rstore_task *t)
{
    if (t == NULL)
        return;
    rstore__region_free(t->region);
    for (size_t i = 0; i < t->n_regions; i++)
        rstore__region_free(t->regions[i]);
    tkv_free(t->regions);
    if (t->snap)
        eng_snap_close(t->snap);
    if (t->p && t->free_p)
        t->free_p(t->p);
    if (t->split) {
        rstore__cb_done(&t->split->cb, TKV_ECLOSED, NULL);
        rstore__split_ids_free(t->split);
    }
    tkv_buf_deinit(&t->buf);
    tkv_free(t);
}

static void *worker_main(void *arg)
{
    rstore_worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->head == NULL && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        rstore_task *t = w->head;
        if (t) {
            w->head = t->next;
            if (w->head == NULL)
                w->tail = NULL;
            w->len--;
        }
        pthread_mutex_unlock(&w->mu);
        if (t == NULL)
            break; /* stopping and drained */
        w->run(w->store, t);
        rstore__task_free(t);
    }
    return NULL;
}

int rstore__worker_start(rstore_worker *w, rstore *s, const char *name,
                         void (*run)(rstore *, rstore_task *))
{
    memset(w, 0, sizeof(*w));
    w->store = s;
    w->name = name;
    w->run = run;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        return -rc;
    }
    pthread_setname_np(w->thread, name);
    w->started = true;
    return 0;
}

void rstore__worker_push(rstore_worker *w, rstore_task *t)
{
    t->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (!w->started || w->stop) {
        pthread_mutex_unlock(&w->mu);
        rstore__task_free(t);
        return;
    }
    if (w->tail)
        w->tail->next = t;
    else
        w->head = t;
    w->tail = t;
    w->len++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

size_t rstore__worker_len(rstore_worker *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->len;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void rstore__worker_stop(rstore_worker *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->started = false;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

/* ---- the general worker's tasks ------------------------------------------------------ */

/* Deletes raft log entries [lo, hi] of a region with point deletes (range deletions slow
 * RocksDB down badly when they pile up), in batches, plus the raft state if asked. */
static void delete_log(rstore *s, uint64_t region_id, uint64_t lo, uint64_t hi, bool state)
{
    eng_batch *b;
    if (eng_batch_new(s->opts.raft, &b) != 0)
        return;
    uint8_t key[TKV_KEYS_RAFT_LOG_KEY_LEN];
    for (uint64_t i = lo; i <= hi && hi != 0; i++) {
        tkv_keys_raft_log_key(key, region_id, i);
        if (eng_batch_delete(b, ENG_CF_DEFAULT, tkv_slice_of(key, sizeof(key))) != 0)
            break;
        if (eng_batch_count(b) >= 4096) {
            rstore__must_write(s->opts.raft, b, false, "raft log gc");
            eng_batch_clear(b);
        }
    }
    if (state) {
        uint8_t sk[11];
        tkv_keys_raft_state_key(sk, region_id);
        TKV_IGNORE(eng_batch_delete(b, ENG_CF_DEFAULT, tkv_slice_of(sk, sizeof(sk))));
    }
    if (eng_batch_count(b) > 0)
        rstore__must_write(s->opts.raft, b, state, "raft log gc");
    eng_batch_free(b);
}

static void gen_snap(rstore *s, rstore_task *t)
{
    rstore_snap_gen *g = tkv_xcalloc(1, sizeof(*g));
    tkv_buf data;
    tkv_buf_init(&data);
    g->rc = rstore__snap_build(s, t->snap, t->region, t->a, t->b, &data);
    if (g->rc == 0) {
        g->snap.metadata.index = t->a;
        g->snap.metadata.term = t->b;
        rstore__region_conf_state(t->region, &g->snap.metadata.conf_state);
        g->version = t->region->region_epoch->version;
        g->conf_ver = t->region->region_epoch->conf_ver;
        size_t len;
        g->snap.data = tkv_buf_steal(&data, &len);
        g->snap.data_len = len;
        TKV_LOG_INFO("snapshot generated", TKV_LF_U64("region_id", t->region_id),
                     TKV_LF_U64("index", t->a), TKV_LF_U64("term", t->b));
    } else {
        TKV_LOG_WARN("snapshot generation failed", TKV_LF_U64("region_id", t->region_id),
                     TKV_LF_ERR("err", g->rc));
    }
    tkv_buf_deinit(&data);
    eng_snap_close(t->snap);
    t->snap = NULL;
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_SNAP_GEN, t->region_id);
    m->u.snap_gen = g;
    rstore__router_send_or_free(&s->router, m);
}

static void split_check(rstore *s, rstore_task *t)
{
    rstore_split_check *c = tkv_xcalloc(1, sizeof(*c));
    rstore__split_check(s, t->region, t->a != 0, c);
    c->version = t->region->region_epoch->version;
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_SPLIT_CHECK, t->region_id);
    m->u.split_check = c;
    rstore__router_send_or_free(&s->router, m);
}

/* Compacts a range a DeleteRange emptied, so its space comes back. */
static void compact_range(rstore *s, rstore_task *t)
{
    if (t->a > t->buf.len)
        return;
    tkv_slice start = tkv_slice_of(t->buf.data, (size_t)t->a);
    tkv_slice end = tkv_slice_of(t->buf.data + t->a, t->buf.len - (size_t)t->a);
    int rc = eng_compact_range(s->opts.kv, (eng_cf)t->b, start, end);
    if (rc != 0) {
        TKV_LOG_WARN("compacting a deleted range failed", TKV_LF_U64("region_id", t->region_id),
                     TKV_LF_ERR("err", rc));
        return;
    }
    atomic_fetch_add(&s->stat_range_compactions, 1);
}

void rstore__run_worker_task(rstore *s, rstore_task *t)
{
    switch (t->type) {
    case RSTORE_TASK_SPLIT_CHECK:
        split_check(s, t);
        break;
    case RSTORE_TASK_GEN_SNAP:
        gen_snap(s, t);
        break;
    case RSTORE_TASK_GC_LOG:
        delete_log(s, t->region_id, t->a, t->b, false);
        break;
    case RSTORE_TASK_DESTROY_LOG:
        delete_log(s, t->region_id, t->a, t->b, true);
        break;
    case RSTORE_TASK_RECV_CHUNK:
        rstore__run_recv_task(s, t);
        break;
    case RSTORE_TASK_CLEAN_SNAPS:
        rstore__snap_clean(s, t->a);
        break;
    case RSTORE_TASK_COMPACT_RANGE:
        compact_range(s, t);
        break;
    default:
        break;
    }
}
