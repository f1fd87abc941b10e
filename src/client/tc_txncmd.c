/*
 * tc_txncmd.c: the transactional commands as key-set operations (KvGet, KvBatchGet,
 * KvPrewrite, KvCommit, KvBatchRollback, KvCheckTxnStatus, KvResolveLock), and the mapping
 * of kvrpcpb.KeyError to TIKVC codes.
 */
#include <inttypes.h>
#include <stdio.h>

#include "client/tc_int.h"
#include "client/tc_txn.h"

static ProtobufCBinaryData bin(tkv_slice s)
{
    ProtobufCBinaryData b = {s.len, (uint8_t *)s.data};
    return b;
}

static int pack(const ProtobufCMessage *m, tkv_buf *out)
{
    return rpc_msg_pack(m, out) == 0 ? 0 : TIKVC_ENOMEM;
}

/* Returns the op-wide index of the task item whose key is @key, or SIZE_MAX. */
static size_t item_by_key(tc_kop *k, const tc_task *t, ProtobufCBinaryData key)
{
    for (size_t i = 0; i < t->n_items; i++) {
        if (tkv_slice_eq(k->items[t->items[i]].key, tkv_slice_of(key.data, key.len)))
            return t->items[i];
    }
    return SIZE_MAX;
}

int tikvc__key_error(const Kvrpcpb__KeyError *e, const char *what)
{
    if (e->locked != NULL)
        return tikvc__fail(TIKVC_ELOCKED, "%s: key is locked by transaction %" PRIu64, what,
                           e->locked->lock_version);
    if (e->conflict != NULL)
        return tikvc__fail(TIKVC_ECONFLICT,
                           "%s: write conflict (start_ts %" PRIu64 ", another transaction "
                           "committed at %" PRIu64 ")",
                           what, e->conflict->start_ts, e->conflict->conflict_commit_ts);
    if (e->deadlock != NULL)
        return tikvc__fail(TIKVC_ECONFLICT, "%s: deadlock", what);
    if (e->already_exist != NULL)
        return tikvc__fail(TIKVC_ESERVER, "%s: key already exists", what);
    if (e->txn_not_found != NULL)
        return tikvc__fail(TIKVC_EABORTED, "%s: transaction %" PRIu64 " not found", what,
                           e->txn_not_found->start_ts);
    if (e->abort != NULL && e->abort[0] != '\0')
        return tikvc__fail(TIKVC_EABORTED, "%s: %s", what, e->abort);
    if (e->retryable != NULL && e->retryable[0] != '\0')
        return tikvc__fail(TIKVC_EABORTED, "%s: %s", what, e->retryable);
    if (e->commit_ts_expired != NULL)
        return tikvc__fail(TIKVC_ESERVER, "%s: commit timestamp expired", what);
    return tikvc__fail(TIKVC_ESERVER, "%s: the store refused the request", what);
}

/* Fails the op with @e's code and message. */
static void fail_key_error(tc_kop *k, const Kvrpcpb__KeyError *e, const char *what)
{
    int rc = tikvc__key_error(e, what);
    tikvc__op_fail(&k->op, rc, "%s", tikvc_errmsg());
}

/* ---- KvGet ------------------------------------------------------------------------------ */

static int build_get(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    (void)n;
    Kvrpcpb__GetRequest r = KVRPCPB__GET_REQUEST__INIT;
    r.context = ctx;
    r.key = bin(k->items[idx[0]].key);
    r.version = k->start_ts;
    return pack(&r.base, o);
}

static void handle_get(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    Kvrpcpb__GetResponse *r = (Kvrpcpb__GetResponse *)m;
    tc_item *it = &k->items[t->items[0]];
    if (r->error != NULL) {
        tikvc__kop_key_error(k, t->items[0], r->error);
        return;
    }
    it->found = !r->not_found;
    if (it->found && tkv_buf_set(&it->out, r->value.data, r->value.len) != 0)
        tikvc__op_fail(&k->op, TIKVC_ENOMEM, "out of memory");
    it->done = true;
}

const tc_kop_cmd tc_kc_kv_get = {&tc_cmd_kv_get, build_get, handle_get, 1, SIZE_MAX};

/* ---- KvBatchGet ------------------------------------------------------------------------- */

static void set_version(tc_kop *k, ProtobufCMessage *m)
{
    ((Kvrpcpb__BatchGetRequest *)m)->version = k->start_ts;
}

static int build_batch_get(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx,
                           tkv_buf *o)
{
    return tikvc__kop_pack_keys(k, &kvrpcpb__batch_get_request__descriptor, idx, n, ctx,
                                set_version, o);
}

static void handle_batch_get(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    Kvrpcpb__BatchGetResponse *r = (Kvrpcpb__BatchGetResponse *)m;
    if (r->error != NULL) {
        fail_key_error(k, r->error, "batch get");
        return;
    }
    for (size_t i = 0; i < r->n_pairs; i++) {
        Kvrpcpb__KvPair *p = r->pairs[i];
        size_t at = item_by_key(k, t, p->key);
        if (at == SIZE_MAX)
            continue;
        if (p->error != NULL) {
            tikvc__kop_key_error(k, at, p->error);
            continue;
        }
        tc_item *it = &k->items[at];
        it->found = true;
        it->done = true;
        if (tkv_buf_set(&it->out, p->value.data, p->value.len) != 0)
            tikvc__op_fail(&k->op, TIKVC_ENOMEM, "out of memory");
    }
}

const tc_kop_cmd tc_kc_kv_batch_get = {&tc_cmd_kv_batch_get, build_batch_get, handle_batch_get, 256,
                                       SIZE_MAX};

/* ---- KvPrewrite ------------------------------------------------------------------------- */

static int build_prewrite(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    Kvrpcpb__Mutation *muts = tkv_calloc(n, sizeof(*muts));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    Kvrpcpb__Mutation **mp = tkv_calloc(n, sizeof(*mp));
    int rc = TIKVC_ENOMEM;
    if (muts != NULL && mp != NULL) {
        for (size_t i = 0; i < n; i++) {
            tc_item *it = &k->items[idx[i]];
            kvrpcpb__mutation__init(&muts[i]);
            muts[i].op = (Kvrpcpb__Op)it->op;
            muts[i].key = bin(it->key);
            muts[i].value = bin(it->value);
            mp[i] = &muts[i];
        }
        Kvrpcpb__PrewriteRequest r = KVRPCPB__PREWRITE_REQUEST__INIT;
        r.context = ctx;
        r.mutations = mp;
        r.n_mutations = n;
        r.primary_lock = bin(k->primary);
        r.start_version = k->start_ts;
        r.lock_ttl = k->lock_ttl_ms;
        r.txn_size = k->txn_size;
        /* 1PC only when this request is the whole transaction (one region, one batch). */
        r.try_one_pc = k->try_one_pc && n == k->n;
        rc = pack(&r.base, o);
    }
    tkv_free(muts);
    tkv_free(mp);
    return rc;
}

static void handle_prewrite(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    Kvrpcpb__PrewriteResponse *r = (Kvrpcpb__PrewriteResponse *)m;
    for (size_t i = 0; i < r->n_errors; i++) {
        Kvrpcpb__KeyError *e = r->errors[i];
        ProtobufCBinaryData key = {0, NULL};
        if (e->locked != NULL)
            key = e->locked->key;
        else if (e->conflict != NULL)
            key = e->conflict->key;
        size_t at = key.data != NULL ? item_by_key(k, t, key) : SIZE_MAX;
        if (at == SIZE_MAX && t->n_items > 0 && (e->locked != NULL || e->conflict != NULL))
            at = t->items[0];
        if (at == SIZE_MAX)
            fail_key_error(k, e, "prewrite");
        else
            tikvc__kop_key_error(k, at, e);
    }
    for (size_t i = 0; r->n_errors == 0 && i < t->n_items; i++)
        k->items[t->items[i]].done = true;
    /* Only a request that carried every item asked for 1PC (one task: no race). */
    if (r->n_errors == 0 && r->one_pc_commit_ts != 0 && t->n_items == k->n)
        k->one_pc_commit_ts = r->one_pc_commit_ts;
}

const tc_kop_cmd tc_kc_kv_prewrite = {&tc_cmd_kv_prewrite, build_prewrite, handle_prewrite, 2048,
                                      16 * 1024};

/* ---- KvCommit --------------------------------------------------------------------------- */

static void set_commit(tc_kop *k, ProtobufCMessage *m)
{
    Kvrpcpb__CommitRequest *r = (Kvrpcpb__CommitRequest *)m;
    r->start_version = k->start_ts;
    r->commit_version = k->commit_ts;
}

static int build_commit(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    return tikvc__kop_pack_keys(k, &kvrpcpb__commit_request__descriptor, idx, n, ctx, set_commit,
                                o);
}

static void handle_commit(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    (void)t;
    Kvrpcpb__CommitResponse *r = (Kvrpcpb__CommitResponse *)m;
    if (r->error != NULL)
        fail_key_error(k, r->error, "commit");
}

const tc_kop_cmd tc_kc_kv_commit = {&tc_cmd_kv_commit, build_commit, handle_commit, 2048, SIZE_MAX};

/* ---- KvBatchRollback -------------------------------------------------------------------- */

static void set_rollback(tc_kop *k, ProtobufCMessage *m)
{
    ((Kvrpcpb__BatchRollbackRequest *)m)->start_version = k->start_ts;
}

static int build_rollback(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    return tikvc__kop_pack_keys(k, &kvrpcpb__batch_rollback_request__descriptor, idx, n, ctx,
                                set_rollback, o);
}

static void handle_rollback(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    (void)t;
    Kvrpcpb__BatchRollbackResponse *r = (Kvrpcpb__BatchRollbackResponse *)m;
    if (r->error != NULL)
        fail_key_error(k, r->error, "rollback");
}

const tc_kop_cmd tc_kc_kv_rollback = {&tc_cmd_kv_batch_rollback, build_rollback, handle_rollback,
                                      2048, SIZE_MAX};

/* ---- KvCheckTxnStatus ------------------------------------------------------------------- */

static int build_check(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    (void)n;
    Kvrpcpb__CheckTxnStatusRequest r = KVRPCPB__CHECK_TXN_STATUS_REQUEST__INIT;
    r.context = ctx;
    r.primary_key = bin(k->items[idx[0]].key);
    r.lock_ts = k->start_ts;
    r.caller_start_ts = k->caller_ts;
    r.current_ts = k->current_ts;
    r.rollback_if_not_exist = k->rollback_if_not_exist;
    return pack(&r.base, o);
}

static void handle_check(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    (void)t;
    Kvrpcpb__CheckTxnStatusResponse *r = (Kvrpcpb__CheckTxnStatusResponse *)m;
    if (r->error != NULL) {
        if (r->error->txn_not_found != NULL)
            k->txn_not_found = true;
        else
            fail_key_error(k, r->error, "check transaction status");
        return;
    }
    k->lock_ttl_out = r->lock_ttl;
    k->commit_version_out = r->commit_version;
    k->action_out = (int)r->action;
}

const tc_kop_cmd tc_kc_kv_check = {&tc_cmd_kv_check_txn_status, build_check, handle_check, 1,
                                   SIZE_MAX};

/* ---- KvResolveLock ---------------------------------------------------------------------- */

static void set_resolve(tc_kop *k, ProtobufCMessage *m)
{
    Kvrpcpb__ResolveLockRequest *r = (Kvrpcpb__ResolveLockRequest *)m;
    r->start_version = k->start_ts;
    r->commit_version = k->commit_ts;
}

static int build_resolve(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *o)
{
    return tikvc__kop_pack_keys(k, &kvrpcpb__resolve_lock_request__descriptor, idx, n, ctx,
                                set_resolve, o);
}

static void handle_resolve(tc_kop *k, tc_task *t, ProtobufCMessage *m)
{
    (void)t;
    Kvrpcpb__ResolveLockResponse *r = (Kvrpcpb__ResolveLockResponse *)m;
    if (r->error != NULL)
        fail_key_error(k, r->error, "resolve lock");
}

const tc_kop_cmd tc_kc_kv_resolve = {&tc_cmd_kv_resolve_lock, build_resolve, handle_resolve, 2048,
                                     SIZE_MAX};
