/*
 * sched.c: the transaction scheduler (TiKV's txn::Scheduler): latches, snapshots, the
 * worker pool, one write per command, lock waits, and the response arena.
 */
#include <pthread.h>
#include <stdio.h>

#include "base/codec.h"
#include "storage/txn/txn_int.h"

/* ---- arena ------------------------------------------------------------------------------ */

typedef struct txn_chunk {
    struct txn_chunk *next;
    max_align_t data[];
} txn_chunk;

void *txn_arena_alloc(txn_arena *a, size_t n)
{
    txn_chunk *c = tkv_calloc(1, sizeof(txn_chunk) + (n ? n : 1));
    if (c == NULL)
        return NULL;
    c->next = a->head;
    a->head = c;
    return c->data;
}

ProtobufCBinaryData txn_arena_bytes(txn_arena *a, tkv_slice s, int *rc)
{
    ProtobufCBinaryData b = {0, NULL};
    if (s.len == 0)
        return b;
    uint8_t *p = txn_arena_alloc(a, s.len);
    if (p == NULL) {
        *rc = -ENOMEM;
        return b;
    }
    memcpy(p, s.data, s.len);
    b.data = p;
    b.len = s.len;
    return b;
}

char *txn_arena_str(txn_arena *a, const char *s)
{
    size_t n = strlen(s);
    char *p = txn_arena_alloc(a, n + 1);
    if (p != NULL)
        memcpy(p, s, n + 1);
    return p;
}

void txn_arena_free(txn_arena *a)
{
    txn_chunk *c = a->head;
    while (c != NULL) {
        txn_chunk *next = c->next;
        tkv_free(c);
        c = next;
    }
    a->head = NULL;
}

/* ---- pool ------------------------------------------------------------------------------- */

typedef struct task {
    struct task *next;
    txn_task_fn fn;
    void *arg;
} task;

struct txn_pool {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    task *head, *tail;
    bool stop;
    size_t n;
    pthread_t threads[];
};

static void *pool_main(void *arg)
{
    txn_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stop)
            pthread_cond_wait(&p->cond, &p->mu);
        task *t = p->head;
        if (t == NULL)
            break; /* stopping and drained */
        p->head = t->next;
        if (p->head == NULL)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        t->fn(t->arg);
        tkv_free(t);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int txn_pool_new(size_t threads, txn_pool **out)
{
    txn_pool *p = tkv_calloc(1, sizeof(*p) + threads * sizeof(pthread_t));
    if (p == NULL)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    for (size_t i = 0; i < threads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, pool_main, p);
        if (rc != 0) {
            txn_pool_free(p);
            return -rc;
        }
        p->n++;
    }
    *out = p;
    return 0;
}

void txn_pool_free(txn_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    tkv_free(p);
}

int txn_pool_submit(txn_pool *p, txn_task_fn fn, void *arg)
{
    task *t = tkv_malloc(sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->next = NULL;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->stop) {
        pthread_mutex_unlock(&p->mu);
        tkv_free(t);
        return TKV_ECLOSED;
    }
    if (p->tail)
        p->tail->next = t;
    else
        p->head = t;
    p->tail = t;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* ---- responses -------------------------------------------------------------------------- */

void txn__set_region_error(txn_cmd *c, Errorpb__Error *rerr)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(c->def->resp_desc, "region_error");
    void *field = (char *)c->resp + f->offset; /* protobuf-c keeps fields aligned */
    Errorpb__Error **slot = field;
    if (*slot != NULL)
        stor_rerr_free(*slot);
    *slot = rerr;
}

/* Region errors are built with the system allocator (kv.h); the response owns its one
 * region error until the command ends. */
static void free_region_error(txn_cmd *c)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(c->def->resp_desc, "region_error");
    void *field = (char *)c->resp + f->offset; /* protobuf-c keeps fields aligned */
    Errorpb__Error **slot = field;
    stor_rerr_free(*slot);
    *slot = NULL;
}

static void fail_rc(txn_cmd *c, int rc)
{
    /* Engine failures have no KeyError of their own; clients retry on a region error. */
    txn__set_region_error(c, stor_rerr_message("storage error: %s", tkv_strerror(rc)));
}

tkv_slice txn__encode(txn_cmd *c, ProtobufCBinaryData raw, int *rc)
{
    size_t n = tkv_codec_encoded_bytes_len(raw.len);
    uint8_t *p = txn_arena_alloc(&c->arena, n);
    if (p == NULL) {
        *rc = -ENOMEM;
        return tkv_slice_of(NULL, 0);
    }
    tkv_buf b;
    tkv_buf_init(&b);
    int r = txn_key_encode(&b, tkv_slice_of(raw.data, raw.len));
    if (r != 0) {
        *rc = r;
        tkv_buf_deinit(&b);
        return tkv_slice_of(NULL, 0);
    }
    memcpy(p, b.data, n);
    tkv_buf_deinit(&b);
    return tkv_slice_of(p, n);
}

int txn__encode_range(txn_cmd *c, ProtobufCBinaryData start, ProtobufCBinaryData end, tkv_slice *s,
                      tkv_slice *e)
{
    int rc = 0;
    *s = start.len ? txn__encode(c, start, &rc) : tkv_slice_of(NULL, 0);
    *e = end.len ? txn__encode(c, end, &rc) : tkv_slice_of(NULL, 0);
    return rc;
}

int txn__set_keys(txn_cmd *c, const ProtobufCBinaryData *raw, size_t n)
{
    if (n > c->s->opts.max_batch_keys)
        return -EINVAL;
    int rc = 0;
    c->keys = txn_arena_alloc(&c->arena, n * sizeof(tkv_slice));
    if (c->keys == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++)
        c->keys[i] = txn__encode(c, raw[i], &rc);
    c->n_keys = rc == 0 ? n : 0;
    return rc;
}

int txn__set_mutation_keys(txn_cmd *c, Kvrpcpb__Mutation *const *m, size_t n)
{
    if (n > c->s->opts.max_batch_keys)
        return -EINVAL;
    c->keys = txn_arena_alloc(&c->arena, n * sizeof(tkv_slice));
    if (c->keys == NULL)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (m[i] == NULL)
            return -EINVAL;
        c->keys[i] = txn__encode(c, m[i]->key, &rc);
    }
    c->n_keys = rc == 0 ? n : 0;
    return rc;
}

int txn__refuse(txn_cmd *c, Kvrpcpb__KeyError **slot, const mvcc_err *e)
{
    mvcc_txn_clear(c->txn);
    *slot = txn__key_error(c, e);
    return *slot != NULL ? 0 : -ENOMEM;
}

Kvrpcpb__KvPair *txn__kv_pair(txn_cmd *c, const mvcc_err *e, tkv_slice raw_key, tkv_slice value,
                              bool key_only)
{
    Kvrpcpb__KvPair *p = txn_arena_alloc(&c->arena, sizeof(*p));
    if (p == NULL)
        return NULL;
    kvrpcpb__kv_pair__init(p);
    if (e->kind != MVCC_OK) {
        p->error = txn__key_error(c, e);
        return p->error ? p : NULL;
    }
    int rc = 0;
    p->key = txn_arena_bytes(&c->arena, raw_key, &rc);
    if (!key_only)
        p->value = txn_arena_bytes(&c->arena, value, &rc);
    return rc == 0 ? p : NULL;
}

Kvrpcpb__LockInfo *txn__lock_info(txn_cmd *c, const txn_lock *lock, tkv_slice raw_key)
{
    Kvrpcpb__LockInfo *li = txn_arena_alloc(&c->arena, sizeof(*li));
    if (li == NULL)
        return NULL;
    kvrpcpb__lock_info__init(li);
    int rc = 0;
    li->primary_lock = txn_arena_bytes(&c->arena, lock->primary, &rc);
    li->lock_version = lock->start_ts;
    li->key = txn_arena_bytes(&c->arena, raw_key, &rc);
    li->lock_ttl = lock->ttl;
    li->txn_size = lock->txn_size;
    switch (lock->type) {
    case TXN_LOCK_PUT:
        li->lock_type = KVRPCPB__OP__Put;
        break;
    case TXN_LOCK_DELETE:
        li->lock_type = KVRPCPB__OP__Del;
        break;
    case TXN_LOCK_LOCK:
        li->lock_type = KVRPCPB__OP__Lock;
        break;
    case TXN_LOCK_PESSIMISTIC:
        li->lock_type = KVRPCPB__OP__PessimisticLock;
        break;
    }
    li->lock_for_update_ts = lock->for_update_ts;
    li->use_async_commit = lock->use_async_commit;
    li->min_commit_ts = lock->min_commit_ts;
    if (lock->n_secondaries > 0) {
        li->secondaries =
            txn_arena_alloc(&c->arena, lock->n_secondaries * sizeof(ProtobufCBinaryData));
        if (li->secondaries == NULL)
            return NULL;
        li->n_secondaries = lock->n_secondaries;
        for (size_t i = 0; i < lock->n_secondaries; i++)
            li->secondaries[i] = txn_arena_bytes(&c->arena, lock->secondaries[i], &rc);
    }
    return rc == 0 ? li : NULL;
}

/* Prints a key for an error message: printable bytes as they are, others as \xNN. */
static void key_text(char *dst, size_t cap, tkv_slice k)
{
    size_t o = 0;
    for (size_t i = 0; i < k.len && o + 5 < cap; i++) {
        uint8_t b = k.data[i];
        if (b >= 0x20 && b < 0x7f && b != '\\')
            dst[o++] = (char)b;
        else
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", b);
    }
    dst[o] = 0;
}

Kvrpcpb__KeyError *txn__key_error(txn_cmd *c, const mvcc_err *e)
{
    Kvrpcpb__KeyError *ke = txn_arena_alloc(&c->arena, sizeof(*ke));
    if (ke == NULL)
        return NULL;
    kvrpcpb__key_error__init(ke);
    int rc = 0;
    tkv_slice key = tkv_buf_slice(&e->key), primary = tkv_buf_slice(&e->primary);
    char kt[96], msg[320];
    key_text(kt, sizeof(kt), key);
    switch (e->kind) {
    case MVCC_OK:
        return ke;
    case MVCC_E_KEY_IS_LOCKED:
        ke->locked = txn__lock_info(c, &e->lock.lock, key);
        return ke->locked ? ke : NULL;
    case MVCC_E_WRITE_CONFLICT: {
        Kvrpcpb__WriteConflict *wc = txn_arena_alloc(&c->arena, sizeof(*wc));
        if (wc == NULL)
            return NULL;
        kvrpcpb__write_conflict__init(wc);
        wc->start_ts = e->start_ts;
        wc->conflict_ts = e->conflict_start_ts;
        wc->conflict_commit_ts = e->conflict_commit_ts;
        wc->key = txn_arena_bytes(&c->arena, key, &rc);
        wc->primary = txn_arena_bytes(&c->arena, primary, &rc);
        wc->reason = (Kvrpcpb__WriteConflict__Reason)e->reason;
        ke->conflict = wc;
        /* TiKV also fills retryable for older clients. */
        snprintf(msg, sizeof(msg),
                 "WriteConflict { start_ts: %llu, conflict_start_ts: %llu, conflict_commit_ts: "
                 "%llu, key: %s }",
                 (unsigned long long)e->start_ts, (unsigned long long)e->conflict_start_ts,
                 (unsigned long long)e->conflict_commit_ts, kt);
        ke->retryable = txn_arena_str(&c->arena, msg);
        return rc == 0 && ke->retryable ? ke : NULL;
    }
    case MVCC_E_ALREADY_EXIST: {
        Kvrpcpb__AlreadyExist *ae = txn_arena_alloc(&c->arena, sizeof(*ae));
        if (ae == NULL)
            return NULL;
        kvrpcpb__already_exist__init(ae);
        ae->key = txn_arena_bytes(&c->arena, key, &rc);
        ke->already_exist = ae;
        return rc == 0 ? ke : NULL;
    }
    case MVCC_E_TXN_LOCK_NOT_FOUND:
        snprintf(msg, sizeof(msg),
                 "TxnLockNotFound { start_ts: %llu, commit_ts: %llu, key: %s }: txn lock not "
                 "found",
                 (unsigned long long)e->start_ts, (unsigned long long)e->commit_ts, kt);
        ke->retryable = txn_arena_str(&c->arena, msg);
        return ke->retryable ? ke : NULL;
    case MVCC_E_TXN_NOT_FOUND: {
        Kvrpcpb__TxnNotFound *nf = txn_arena_alloc(&c->arena, sizeof(*nf));
        if (nf == NULL)
            return NULL;
        kvrpcpb__txn_not_found__init(nf);
        nf->start_ts = e->start_ts;
        nf->primary_key = txn_arena_bytes(&c->arena, primary, &rc);
        ke->txn_not_found = nf;
        return rc == 0 ? ke : NULL;
    }
    case MVCC_E_COMMIT_TS_EXPIRED: {
        Kvrpcpb__CommitTsExpired *ce = txn_arena_alloc(&c->arena, sizeof(*ce));
        if (ce == NULL)
            return NULL;
        kvrpcpb__commit_ts_expired__init(ce);
        ce->start_ts = e->start_ts;
        ce->attempted_commit_ts = e->commit_ts;
        ce->key = txn_arena_bytes(&c->arena, key, &rc);
        ce->min_commit_ts = e->min_commit_ts;
        ke->commit_ts_expired = ce;
        return rc == 0 ? ke : NULL;
    }
    case MVCC_E_DEADLOCK: {
        Kvrpcpb__Deadlock *dl = txn_arena_alloc(&c->arena, sizeof(*dl));
        if (dl == NULL)
            return NULL;
        kvrpcpb__deadlock__init(dl);
        dl->lock_ts = e->lock_ts;
        dl->lock_key = txn_arena_bytes(&c->arena, key, &rc);
        dl->deadlock_key_hash = e->deadlock_key_hash;
        ke->deadlock = dl;
        return rc == 0 ? ke : NULL;
    }
    case MVCC_E_ASSERTION_FAILED: {
        Kvrpcpb__AssertionFailed *af = txn_arena_alloc(&c->arena, sizeof(*af));
        if (af == NULL)
            return NULL;
        kvrpcpb__assertion_failed__init(af);
        af->start_ts = e->start_ts;
        af->key = txn_arena_bytes(&c->arena, key, &rc);
        af->assertion = (Kvrpcpb__Assertion)e->assertion;
        af->existing_start_ts = e->existing_start_ts;
        af->existing_commit_ts = e->existing_commit_ts;
        ke->assertion_failed = af;
        return rc == 0 ? ke : NULL;
    }
    case MVCC_E_COMMITTED:
        snprintf(msg, sizeof(msg), "Committed { start_ts: %llu, commit_ts: %llu, key: %s }",
                 (unsigned long long)e->start_ts, (unsigned long long)e->commit_ts, kt);
        break;
    case MVCC_E_PESSIMISTIC_LOCK_NOT_FOUND:
        snprintf(msg, sizeof(msg), "PessimisticLockNotFound { start_ts: %llu, key: %s }",
                 (unsigned long long)e->start_ts, kt);
        break;
    case MVCC_E_PESSIMISTIC_LOCK_ROLLED_BACK:
        snprintf(msg, sizeof(msg), "PessimisticLockRolledBack { start_ts: %llu, key: %s }",
                 (unsigned long long)e->start_ts, kt);
        break;
    case MVCC_E_LOCK_TYPE_NOT_MATCH:
        snprintf(msg, sizeof(msg), "LockTypeNotMatch { start_ts: %llu, key: %s }",
                 (unsigned long long)e->start_ts, kt);
        break;
    case MVCC_E_INVALID_TXN_TSO:
        snprintf(msg, sizeof(msg), "InvalidTxnTso { start_ts: %llu, commit_ts: %llu }",
                 (unsigned long long)e->start_ts, (unsigned long long)e->commit_ts);
        break;
    case MVCC_E_DEFAULT_NOT_FOUND:
        snprintf(msg, sizeof(msg), "DefaultNotFound { key: %s }", kt);
        break;
    case MVCC_E_OTHER:
        snprintf(msg, sizeof(msg), "%s", e->msg);
        break;
    }
    /* Everything else aborts the transaction (TiKV's catch-all). */
    ke->abort = txn_arena_str(&c->arena, msg);
    return ke->abort ? ke : NULL;
}

/* ---- the command lifecycle -------------------------------------------------------------- */

static void start_run(txn_cmd *c);

static void cmd_free(txn_cmd *c)
{
    if (c->def->cleanup != NULL)
        c->def->cleanup(c);
    free_region_error(c);
    mvcc_txn_free(c->txn);
    stor_snap_release(c->snap);
    txn_arena_free(&c->arena);
    tkv_free(c);
}

static void release_latch(txn_cmd *c)
{
    if (c->latch != NULL) {
        stor_latch_release(c->s->latches, c->latch);
        c->latch = NULL;
    }
}

/* Answers and frees the command. */
static void complete(txn_cmd *c)
{
    /* A 1PC write is applied (or refused) by now: readers it held back may go on. */
    txn_cm_release(c->st->cm, c->guard);
    c->guard = NULL;
    release_latch(c);
    stor_snap_release(c->snap);
    c->snap = NULL;
    c->cb(c->ud, c->resp);
    cmd_free(c);
}

static void complete_rc(txn_cmd *c, int rc)
{
    fail_rc(c, rc);
    complete(c);
}

/* After a run: another run, or the answer. */
static void next_or_complete(txn_cmd *c)
{
    if (c->again) {
        c->again = false;
        release_latch(c);
        start_run(c);
        return;
    }
    complete(c);
}

static void wake_up_released(txn_cmd *c)
{
    size_t n;
    const mvcc_released *rel = mvcc_txn_released(c->txn, &n);
    size_t i = 0;
    while (i < n) {
        /* One call per releasing transaction. */
        uint64_t ts = rel[i].lock_ts;
        uint64_t hashes[64];
        size_t k = 0;
        bool pessimistic = false;
        while (i < n && rel[i].lock_ts == ts && k < TKV_ARRAY_LEN(hashes)) {
            pessimistic |= rel[i].pessimistic_txn;
            hashes[k++] = rel[i++].key_hash;
        }
        txn_lock_mgr_wake_up(c->st->lm, ts, hashes, k, c->release_commit_ts, pessimistic);
    }
}

static void on_written(void *ud, int rc, Errorpb__Error *rerr)
{
    txn_cmd *c = ud;
    if (rerr != NULL) {
        txn__set_region_error(c, rerr);
        complete(c);
        return;
    }
    if (rc != 0) {
        complete_rc(c, rc);
        return;
    }
    /* Latches are still held: waiters woken now retry after the write is visible. */
    wake_up_released(c);
    next_or_complete(c);
}

static void on_wait_done(void *ud, txn_wait_outcome o, uint64_t commit_ts, uint64_t dl_hash)
{
    txn_cmd *c = ud;
    c->def->wait_done(c, o, commit_ts, dl_hash);
    complete(c);
}

/* Checks every key of the command against the snapshot's region (TiKV answers
 * KeyNotInRegion before touching anything). */
static bool keys_in_region(txn_cmd *c)
{
    for (size_t i = 0; i < c->n_keys; i++) {
        if (!stor_snap_key_in_region(c->snap, c->keys[i])) {
            txn__set_region_error(c, stor_rerr_key_not_in_region(c->keys[i], c->snap->region));
            return false;
        }
    }
    return true;
}

static void run_process(void *arg)
{
    txn_cmd *c = arg;
    if (!keys_in_region(c)) {
        complete(c);
        return;
    }
    mvcc_reader *r;
    int rc = mvcc_reader_new(c->snap, &r);
    if (rc == 0) {
        mvcc_txn_clear(c->txn);
        c->wait = false;
        rc = c->def->process(c, r);
        mvcc_reader_free(r);
    }
    stor_snap_release(c->snap);
    c->snap = NULL;
    if (rc != 0) {
        complete_rc(c, rc);
        return;
    }
    if (c->wait) {
        /* Register before the latch goes: the holder cannot release its lock (it needs
         * this key's latch) until we are queued, so no wake-up is missed. */
        stor_latch *l = c->latch;
        stor_latches *latches = c->s->latches;
        c->latch = NULL;
        rc = txn_lock_mgr_wait_for(c->st->lm, c->wait_start_ts, c->wait_lock_ts, c->wait_key_hash,
                                   c->wait_ms, on_wait_done, c);
        if (rc != 0) {
            c->latch = l;
            c->def->wait_done(c, TXN_WAIT_TIMEOUT, 0, 0);
            complete(c);
            return;
        }
        /* The waiter owns c now (it may even be answered already): only the local latch
         * pointer is touched from here. */
        if (l != NULL)
            stor_latch_release(latches, l);
        return;
    }
    if (c->def->write && mvcc_txn_count(c->txn) > 0) {
        const stor_modify *mods;
        size_t n;
        rc = mvcc_txn_modifies(c->txn, &mods, &n);
        /* The write was computed from a view served in snap_term: a leader of a later term
         * must not apply it (TiKV puts the snapshot's term into the write's context). */
        stor_ctx wctx = c->ctx;
        if (c->snap_term != 0)
            wctx.term = c->snap_term;
        if (rc == 0)
            rc = stor_kv_write(c->s->kv, &wctx, mods, n, on_written, c);
        if (rc != 0)
            complete_rc(c, rc);
        return;
    }
    next_or_complete(c);
}

static void on_snapshot(void *ud, int rc, Errorpb__Error *rerr, stor_snap *snap)
{
    txn_cmd *c = ud;
    if (rerr != NULL) {
        txn__set_region_error(c, rerr);
        complete(c);
        return;
    }
    if (rc != 0) {
        complete_rc(c, rc);
        return;
    }
    c->snap = snap;
    c->snap_term = snap->term;
    /* Snapshot callbacks may run on a replication thread: process on the pool. */
    rc = txn_pool_submit(c->st->pool, run_process, c);
    if (rc != 0)
        complete_rc(c, rc);
}

static void run_snapshot(void *arg)
{
    txn_cmd *c = arg;
    int rc = stor_kv_snapshot(c->s->kv, &c->ctx, on_snapshot, c);
    if (rc != 0)
        complete_rc(c, rc);
}

static void on_latched(void *arg)
{
    txn_cmd *c = arg;
    int rc = txn_pool_submit(c->st->pool, run_snapshot, c);
    if (rc != 0)
        complete_rc(c, rc);
}

static void retry_read(void *arg)
{
    start_run(arg);
}

/* A snapshot read raises max_ts before its snapshot is taken, and waits for 1PC writes that
 * may commit at or below its ts (concurrency.h). Returns 0 with *@queued when it waits. */
static int begin_snapshot_read(txn_cmd *c, bool *queued)
{
    *queued = false;
    if (!c->def->snapshot_read || c->ropts.iso == MVCC_ISO_RC)
        return 0;
    txn_cm_read r = {
        .ts = c->read_ts,
        .keys = c->keys,
        .n_keys = c->n_keys,
        .range = c->read_range,
        .lower = c->read_lower,
        .upper = c->read_upper,
        .bypass = c->ropts.bypass_locks,
        .n_bypass = c->ropts.n_bypass_locks,
    };
    return txn_cm_begin_read(c->st->cm, &r, retry_read, c, queued);
}

static void start_run(txn_cmd *c)
{
    int rc;
    bool queued = false;
    if (c->def->write && c->n_keys > 0) {
        rc = stor_latch_new(c->s->latches, c->keys, c->n_keys, &c->latch);
        if (rc == 0) {
            rc = stor_latch_acquire(c->s->latches, c->latch, on_latched, c);
            if (rc != 0) {
                stor_latch_free(c->latch);
                c->latch = NULL;
            }
        }
    } else {
        rc = begin_snapshot_read(c, &queued);
        if (rc == 0 && !queued)
            rc = txn_pool_submit(c->st->pool, run_snapshot, c);
    }
    if (rc != 0)
        complete_rc(c, rc);
}

static void read_opts_from_pb(txn_cmd *c, const Kvrpcpb__Context *pb)
{
    memset(&c->ropts, 0, sizeof(c->ropts));
    if (pb == NULL)
        return;
    switch (pb->isolation_level) {
    case KVRPCPB__ISOLATION_LEVEL__RC:
        c->ropts.iso = MVCC_ISO_RC;
        break;
    case KVRPCPB__ISOLATION_LEVEL__RCCheckTS:
        c->ropts.iso = MVCC_ISO_RC_CHECK_TS;
        break;
    default:
        c->ropts.iso = MVCC_ISO_SI;
        break;
    }
    c->ropts.bypass_locks = pb->resolved_locks;
    c->ropts.n_bypass_locks = pb->n_resolved_locks;
    c->ropts.access_locks = pb->committed_locks;
    c->ropts.n_access_locks = pb->n_committed_locks;
}

int txn__submit(stor *s, const txn_cmd_def *def, const ProtobufCMessage *req,
                const Kvrpcpb__Context *pbctx, uint64_t start_ts, int (*setup)(txn_cmd *c),
                stor_done_cb cb, void *ud)
{
    if (s == NULL || req == NULL || cb == NULL || s->txn == NULL)
        return -EINVAL;
    txn_cmd *c = tkv_calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->s = s;
    c->st = s->txn;
    c->def = def;
    c->req = req;
    c->cb = cb;
    c->ud = ud;
    stor_ctx_from_pb(&c->ctx, pbctx);
    read_opts_from_pb(c, pbctx);
    c->read_ts = start_ts;
    int rc = mvcc_txn_new(start_ts, &c->txn);
    c->resp = rc == 0 ? txn_arena_alloc(&c->arena, def->resp_desc->sizeof_message) : NULL;
    if (c->resp == NULL) {
        mvcc_txn_free(c->txn);
        txn_arena_free(&c->arena);
        tkv_free(c);
        return -ENOMEM;
    }
    protobuf_c_message_init(def->resp_desc, c->resp);
    if (setup != NULL && (rc = setup(c)) != 0) {
        cmd_free(c);
        return rc;
    }
    start_run(c);
    return 0;
}
