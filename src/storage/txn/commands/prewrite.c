/*
 * prewrite.c: KvPrewrite, optimistic and pessimistic (TiKV's commands/prewrite.rs).
 *
 * Every mutation is prewritten against one snapshot. Locks of other transactions are
 * collected and all reported (nothing is written then); any other refusal is reported alone.
 * A write conflict or a locked key may also mean this very prewrite already succeeded and
 * the transaction committed (a retried request): then the answer is success. Async commit
 * and 1PC are not supported, so min_commit_ts and one_pc_commit_ts are always 0.
 */
#include "storage/txn/txn_int.h"

/* Answers success when the transaction already committed on @key. */
static int committed_already(txn_cmd *c, mvcc_reader *r, tkv_slice key, bool *yes)
{
    uint64_t commit_ts;
    return txn_committed_record(r, key, mvcc_txn_start_ts(c->txn), yes, &commit_ts);
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
            rc = committed_already(c, r, m.enc_key, &committed);
            if (rc == 0 && committed) {
                mvcc_txn_clear(c->txn);
                resp->n_errors = 0;
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
    resp->min_commit_ts = 0;
    resp->one_pc_commit_ts = 0;
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
