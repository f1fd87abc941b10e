/*
 * pessimistic_lock.c: KvPessimisticLock (TiKV's commands/acquire_pessimistic_lock.rs,
 * normal wake-up mode). All keys are locked or none: the first key held by another
 * transaction stops the request. With a wait allowed (wait_timeout >= 0) the request then
 * waits in the lock manager: woken by the release of that lock it answers a WriteConflict
 * (PessimisticRetry), at its deadline the original `locked` error, and when waiting would
 * close a cycle the `deadlock` error.
 */
#include "storage/txn/txn_int.h"

typedef struct lock_state {
    mvcc_err locked; /* the lock we wait for */
    size_t key_index;
} lock_state;

static int one_error(txn_cmd *c, const mvcc_err *e)
{
    Kvrpcpb__PessimisticLockResponse *resp = (Kvrpcpb__PessimisticLockResponse *)c->resp;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    resp->errors = txn_arena_alloc(&c->arena, sizeof(*resp->errors));
    if (resp->errors == NULL || (resp->errors[0] = txn__key_error(c, e)) == NULL)
        return -ENOMEM;
    resp->n_errors = 1;
    resp->n_values = 0;
    resp->n_not_founds = 0;
    return 0;
}

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__PessimisticLockRequest *req = (const Kvrpcpb__PessimisticLockRequest *)c->req;
    Kvrpcpb__PessimisticLockResponse *resp = (Kvrpcpb__PessimisticLockResponse *)c->resp;
    lock_state *st = c->state;
    txn_pessimistic_props p = {
        .primary = tkv_slice_of(req->primary_lock.data, req->primary_lock.len),
        .lock_ttl = req->lock_ttl,
        .for_update_ts = req->for_update_ts,
        .min_commit_ts = req->min_commit_ts,
        .need_value = req->return_values,
        .need_check_existence = req->check_existence,
        .lock_only_if_exists = req->lock_only_if_exists,
    };
    size_t n = req->n_mutations;
    if (req->return_values) {
        resp->values = txn_arena_alloc(&c->arena, n * sizeof(*resp->values));
        if (resp->values == NULL && n > 0)
            return -ENOMEM;
    }
    if (req->return_values || req->check_existence) {
        resp->not_founds = txn_arena_alloc(&c->arena, n * sizeof(*resp->not_founds));
        if (resp->not_founds == NULL && n > 0)
            return -ENOMEM;
    }
    mvcc_err e;
    mvcc_err_init(&e);
    tkv_buf v;
    tkv_buf_init(&v);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const Kvrpcpb__Mutation *m = req->mutations[i];
        bool found = false;
        bool should_not_exist = m->assertion == KVRPCPB__ASSERTION__NotExist;
        /* An insert's existence check is a read at for_update_ts (TiKV raises max_ts for it,
         * for 1PC and async commit). */
        if (should_not_exist)
            txn_cm_update_max_ts(c->st->cm, req->for_update_ts);
        rc = txn_acquire_pessimistic_lock(c->txn, r, c->keys[i], &p, should_not_exist, &v, &found,
                                          &e);
        if (rc != 0)
            break;
        if (e.kind == MVCC_E_KEY_IS_LOCKED) {
            mvcc_txn_clear(c->txn);
            uint64_t wait_ms = txn_lock_mgr_wait_ms(c->st->lm, req->wait_timeout);
            if (wait_ms == 0) {
                rc = one_error(c, &e);
                break;
            }
            c->wait = true;
            c->wait_start_ts = req->start_version;
            c->wait_lock_ts = e.lock_ts;
            c->wait_key_hash = txn_key_hash(c->keys[i]);
            c->wait_ms = wait_ms;
            st->key_index = i;
            mvcc_err_move(&st->locked, &e);
            break;
        }
        if (e.kind != MVCC_OK) {
            mvcc_txn_clear(c->txn);
            rc = one_error(c, &e);
            break;
        }
        if (req->return_values) {
            resp->values[i] = txn_arena_bytes(&c->arena, tkv_buf_slice(&v), &rc);
            resp->n_values = i + 1;
        }
        if (req->return_values || req->check_existence) {
            resp->not_founds[i] = !found;
            resp->n_not_founds = i + 1;
        }
    }
    tkv_buf_deinit(&v);
    mvcc_err_deinit(&e);
    return rc;
}

static void wait_done(txn_cmd *c, txn_wait_outcome o, uint64_t commit_ts, uint64_t dl_hash)
{
    const Kvrpcpb__PessimisticLockRequest *req = (const Kvrpcpb__PessimisticLockRequest *)c->req;
    lock_state *st = c->state;
    mvcc_err e;
    mvcc_err_init(&e);
    int rc = 0;
    tkv_slice key = c->keys[st->key_index];
    switch (o) {
    case TXN_WAIT_TIMEOUT:
        rc = one_error(c, &st->locked);
        break;
    case TXN_WAIT_WOKEN:
        rc = mvcc_err_set_conflict(
            &e, key, tkv_slice_of(req->primary_lock.data, req->primary_lock.len),
            req->start_version, st->locked.lock_ts, commit_ts, MVCC_CONFLICT_PESSIMISTIC_RETRY);
        if (rc == 0)
            rc = one_error(c, &e);
        break;
    case TXN_WAIT_DEADLOCK:
        rc = mvcc_err_set(&e, MVCC_E_DEADLOCK, key, tkv_slice_of(NULL, 0), req->start_version,
                          st->locked.lock_ts, dl_hash);
        if (rc == 0)
            rc = one_error(c, &e);
        break;
    }
    if (rc != 0)
        txn__set_region_error(c, stor_rerr_message("storage error: %s", tkv_strerror(rc)));
    mvcc_err_deinit(&e);
}

static void cleanup(txn_cmd *c)
{
    lock_state *st = c->state;
    if (st != NULL)
        mvcc_err_deinit(&st->locked);
}

static const txn_cmd_def def = {
    .name = "KvPessimisticLock",
    .resp_desc = &kvrpcpb__pessimistic_lock_response__descriptor,
    .write = true,
    .process = process,
    .wait_done = wait_done,
    .cleanup = cleanup,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__PessimisticLockRequest *req = (const Kvrpcpb__PessimisticLockRequest *)c->req;
    lock_state *st = txn_arena_alloc(&c->arena, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    mvcc_err_init(&st->locked);
    c->state = st;
    return txn__set_mutation_keys(c, req->mutations, req->n_mutations);
}

int txn__kv_pessimistic_lock(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__PessimisticLockRequest *r = (const Kvrpcpb__PessimisticLockRequest *)req;
    return txn__submit(s, &def, req, r->context, r->start_version, setup, cb, ud);
}
