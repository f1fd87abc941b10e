/*
 * prewrite.c: KvPrewrite, optimistic and pessimistic (TiKV's commands/prewrite.rs), with
 * one-phase commit.
 *
 * Every mutation is prewritten against one snapshot. Locks of other transactions are
 * collected and all reported (nothing is written then); any other refusal is reported alone.
 * A write conflict or a locked key may also mean this very prewrite already succeeded and
 * the transaction committed (a retried request): then the answer is success (with the
 * commit_ts in one_pc_commit_ts when 1PC was asked for, since only 1PC commits there).
 *
 * 1PC (try_one_pc; the client sends it only when the whole transaction is this one
 * request): the locks are not written; the store takes commit_ts = max(max_ts, start_ts,
 * for_update_ts) + 1 (at least the locks' min_commit_ts) through the concurrency manager,
 * which registers the keys in memory until the write is applied, and writes commit records
 * (and removes the transaction's pessimistic locks) in the same raft write; the answer
 * carries one_pc_commit_ts. It falls back to plain 2PC (locks written, one_pc_commit_ts 0,
 * as TiKV does for CommitTsTooLarge) when the commit_ts would exceed max_commit_ts, when
 * max_ts is not yet synced with PD after a leader change (TiKV answers
 * MaxTimestampNotSynced there; falling back keeps old clients going), when a key already
 * holds this transaction's prewrite lock (a retried request that fell back before), or when
 * a record already sits at some key's commit_ts. Async commit is not supported:
 * min_commit_ts is always 0.
 */
#include "base/metrics.h"
#include "storage/txn/txn_int.h"

/* Answers success when the transaction already committed on @key. */
static int committed_already(txn_cmd *c, mvcc_reader *r, tkv_slice key, bool *yes,
                             uint64_t *commit_ts)
{
    return txn_committed_record(r, key, mvcc_txn_start_ts(c->txn), yes, commit_ts);
}

static int one_error(txn_cmd *c, const mvcc_err *e)
{
    Kvrpcpb__PrewriteResponse *resp = (Kvrpcpb__PrewriteResponse *)c->resp;
    mvcc_txn_clear(c->txn);
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    resp->errors = txn_arena_alloc(&c->arena, sizeof(*resp->errors));
    if (resp->errors == NULL || (resp->errors[0] = txn__key_error(c, e)) == NULL)
        return -ENOMEM;
    resp->n_errors = 1;
    return 0;
}

/* Returns in *@free whether no record sits at exactly @commit_ts on @key; *@overlap is set
 * when that record is another transaction's rollback (kept by flagging our record). */
static int commit_ts_free(mvcc_reader *r, tkv_slice key, uint64_t commit_ts, bool *free,
                          bool *overlap)
{
    txn_write w;
    tkv_buf wbuf;
    tkv_buf_init(&wbuf);
    uint64_t found_ts;
    bool found;
    int rc = mvcc_seek_write(r, key, commit_ts, &found_ts, &w, &wbuf, &found);
    *overlap = rc == 0 && found && found_ts == commit_ts && w.type == TXN_WRITE_ROLLBACK;
    *free = rc == 0 && (!found || found_ts != commit_ts || *overlap);
    tkv_buf_deinit(&wbuf);
    return rc;
}

/* Writes the commit records of the collected locks at @commit_ts. Returns 0 with *@ok false
 * (nothing added) when a key's commit_ts slot is taken by another commit. */
static int write_1pc(txn_cmd *c, mvcc_reader *r, const txn_1pc_locks *l, uint64_t commit_ts,
                     bool *ok)
{
    *ok = true;
    uint64_t start_ts = mvcc_txn_start_ts(c->txn);
    bool *overlap = txn_arena_alloc(&c->arena, l->n * sizeof(bool));
    if (overlap == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < l->n; i++) {
        bool free;
        int rc = commit_ts_free(r, l->items[i].enc_key, commit_ts, &free, &overlap[i]);
        if (rc != 0)
            return rc;
        if (!free) {
            *ok = false;
            return 0;
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        const txn_1pc_lock *k = &l->items[i];
        txn_write w;
        txn_write_init(&w, txn_write_type_of_lock(k->lock.type), start_ts);
        w.has_short_value = k->lock.has_short_value;
        w.short_value = k->lock.short_value;
        w.has_overlapped_rollback = overlap[i];
        int rc = mvcc_txn_put_write(c->txn, k->enc_key, commit_ts, &w);
        if (rc == 0 && k->had_pessimistic_lock)
            rc = mvcc_txn_unlock_key(c->txn, k->enc_key, start_ts, true);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Commits the prewrite's collected locks in one phase, or writes them as 2PC locks. */
static int finish_1pc(txn_cmd *c, mvcc_reader *r, const txn_1pc_locks *l)
{
    const Kvrpcpb__PrewriteRequest *req = (const Kvrpcpb__PrewriteRequest *)c->req;
    Kvrpcpb__PrewriteResponse *resp = (Kvrpcpb__PrewriteResponse *)c->resp;
    uint64_t start_ts = mvcc_txn_start_ts(c->txn);
    const Metapb__Region *region = c->snap->region;
    uint64_t version = region->region_epoch ? region->region_epoch->version : 0;
    int rc = 0;
    bool ok = !l->own_lock_found && txn_cm_synced(c->st->cm, region->id, c->snap_term, version);
    uint64_t commit_ts = 0;
    if (ok) {
        uint64_t min_commit_ts = req->min_commit_ts;
        for (size_t i = 0; i < l->n; i++)
            min_commit_ts = TKV_MAX(min_commit_ts, l->items[i].lock.min_commit_ts);
        /* The latches of every key are held: no other command can touch them until the
         * write is applied and the guard released. */
        rc = txn_cm_lock_1pc(c->st->cm, c->keys, c->n_keys, start_ts, req->for_update_ts,
                             min_commit_ts, req->max_commit_ts, &commit_ts, &c->guard);
        ok = rc == 0 && c->guard != NULL;
    }
    if (ok)
        rc = write_1pc(c, r, l, commit_ts, &ok);
    if (rc != 0)
        return rc;
    tkv_metric *m = tkv_metric_counter(
        "tikv_storage_one_pc_total",
        "Prewrites that asked for 1PC, by outcome (committed, or fallback to 2PC)", "result");
    tkv_series_inc(tkv_metric_with(m, ok ? "committed" : "fallback"));
    if (ok) {
        resp->one_pc_commit_ts = commit_ts;
        c->release_commit_ts = commit_ts;
        return 0;
    }
    txn_cm_release(c->st->cm, c->guard);
    c->guard = NULL;
    for (size_t i = 0; i < l->n && rc == 0; i++)
        rc = mvcc_txn_put_lock(c->txn, l->items[i].enc_key, &l->items[i].lock);
    return rc;
}

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__PrewriteRequest *req = (const Kvrpcpb__PrewriteRequest *)c->req;
    Kvrpcpb__PrewriteResponse *resp = (Kvrpcpb__PrewriteResponse *)c->resp;
    txn_prewrite_props p = {
        .primary = tkv_slice_of(req->primary_lock.data, req->primary_lock.len),
        .lock_ttl = req->lock_ttl,
        .txn_size = req->txn_size,
        .for_update_ts = req->for_update_ts,
        .min_commit_ts = req->min_commit_ts,
        .skip_constraint_check = req->skip_constraint_check,
        .assertion_level = req->assertion_level,
    };
    txn_1pc_locks one_pc = {0};
    if (req->try_one_pc) {
        one_pc.items = txn_arena_alloc(&c->arena, req->n_mutations * sizeof(*one_pc.items));
        if (one_pc.items == NULL)
            return -ENOMEM;
        p.one_pc = &one_pc;
    }
    bool done = false;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    resp->errors = txn_arena_alloc(&c->arena, req->n_mutations * sizeof(*resp->errors));
    if (resp->errors == NULL && req->n_mutations > 0)
        return -ENOMEM;
    mvcc_err e;
    mvcc_err_init(&e);
    int rc = 0;
    for (size_t i = 0; i < req->n_mutations && rc == 0; i++) {
        const Kvrpcpb__Mutation *mu = req->mutations[i];
        txn_mutation m = {.op = mu->op,
                          .enc_key = c->keys[i],
                          .value = tkv_slice_of(mu->value.data, mu->value.len),
                          .assertion = mu->assertion};
        int action = i < req->n_pessimistic_actions ? (int)req->pessimistic_actions[i]
                                                    : TXN_SKIP_PESSIMISTIC_CHECK;
        mvcc_err_reset(&e);
        rc = txn_prewrite(c->txn, r, &p, &m, action, &e);
        if (rc != 0 || e.kind == MVCC_OK)
            continue;
        bool retry_check = e.kind == MVCC_E_KEY_IS_LOCKED ||
                           e.kind == MVCC_E_PESSIMISTIC_LOCK_NOT_FOUND ||
                           (e.kind == MVCC_E_WRITE_CONFLICT && e.conflict_commit_ts > e.start_ts);
        if (retry_check) {
            bool committed;
            uint64_t commit_ts = 0;
            rc = committed_already(c, r, m.enc_key, &committed, &commit_ts);
            if (rc == 0 && committed) {
                mvcc_txn_clear(c->txn);
                resp->n_errors = 0;
                if (req->try_one_pc)
                    resp->one_pc_commit_ts = commit_ts;
                done = true;
                break;
            }
        }
        if (rc == 0 && e.kind == MVCC_E_KEY_IS_LOCKED) {
            resp->errors[resp->n_errors] = txn__key_error(c, &e);
            if (resp->errors[resp->n_errors++] == NULL)
                rc = -ENOMEM;
            continue;
        }
        if (rc == 0) {
            rc = one_error(c, &e);
            break;
        }
    }
    /* Locked keys: the client resolves them and retries; nothing is written meanwhile. */
    if (resp->n_errors > 0)
        mvcc_txn_clear(c->txn);
    else if (rc == 0 && req->try_one_pc && !done)
        rc = finish_1pc(c, r, &one_pc);
    resp->min_commit_ts = 0;
    mvcc_err_deinit(&e);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvPrewrite",
    .resp_desc = &kvrpcpb__prewrite_response__descriptor,
    .write = true,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__PrewriteRequest *req = (const Kvrpcpb__PrewriteRequest *)c->req;
    return txn__set_mutation_keys(c, req->mutations, req->n_mutations);
}

int txn__kv_prewrite(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__PrewriteRequest *r = (const Kvrpcpb__PrewriteRequest *)req;
    return txn__submit(s, &def, req, r->context, r->start_version, setup, cb, ud);
}
