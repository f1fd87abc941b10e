/*
 * txn_methods.c: the transactional method table and the transactional state of a storage
 * (the scheduler's worker pool and the lock manager).
 */
#include "storage/txn/txn_int.h"

/* Scheduler workers: TiKV's scheduler-worker-pool-size is the core count; this machine class
 * has two cores. */
#define TXN_POOL_THREADS 2

#define M(nm, req, resp, batch, wr, adm, f)                                                        \
    {                                                                                              \
        .name = (nm), .req_desc = &(req), .resp_desc = &(resp), .batch_cmd = (batch),              \
        .write = (wr), .admin = (adm), .fn = (f)                                                   \
    }

const stor_method stor_txn_methods[] = {
    M("KvGet", kvrpcpb__get_request__descriptor, kvrpcpb__get_response__descriptor, 1, false, false,
      txn__kv_get),
    M("KvScan", kvrpcpb__scan_request__descriptor, kvrpcpb__scan_response__descriptor, 2, false,
      false, txn__kv_scan),
    M("KvPrewrite", kvrpcpb__prewrite_request__descriptor, kvrpcpb__prewrite_response__descriptor,
      3, true, false, txn__kv_prewrite),
    M("KvCommit", kvrpcpb__commit_request__descriptor, kvrpcpb__commit_response__descriptor, 4,
      true, false, txn__kv_commit),
    M("KvCleanup", kvrpcpb__cleanup_request__descriptor, kvrpcpb__cleanup_response__descriptor, 6,
      true, false, txn__kv_cleanup),
    M("KvBatchGet", kvrpcpb__batch_get_request__descriptor, kvrpcpb__batch_get_response__descriptor,
      7, false, false, txn__kv_batch_get),
    M("KvBatchRollback", kvrpcpb__batch_rollback_request__descriptor,
      kvrpcpb__batch_rollback_response__descriptor, 8, true, false, txn__kv_batch_rollback),
    M("KvScanLock", kvrpcpb__scan_lock_request__descriptor, kvrpcpb__scan_lock_response__descriptor,
      9, false, false, txn__kv_scan_lock),
    M("KvResolveLock", kvrpcpb__resolve_lock_request__descriptor,
      kvrpcpb__resolve_lock_response__descriptor, 10, true, false, txn__kv_resolve_lock),
    M("KvGC", kvrpcpb__gcrequest__descriptor, kvrpcpb__gcresponse__descriptor, 11, true, false,
      txn__kv_gc),
    M("KvDeleteRange", kvrpcpb__delete_range_request__descriptor,
      kvrpcpb__delete_range_response__descriptor, 12, true, false, txn__kv_delete_range),
    M("KvPessimisticLock", kvrpcpb__pessimistic_lock_request__descriptor,
      kvrpcpb__pessimistic_lock_response__descriptor, 23, true, false, txn__kv_pessimistic_lock),
    M("KVPessimisticRollback", kvrpcpb__pessimistic_rollback_request__descriptor,
      kvrpcpb__pessimistic_rollback_response__descriptor, 24, true, false,
      txn__kv_pessimistic_rollback),
    M("KvCheckTxnStatus", kvrpcpb__check_txn_status_request__descriptor,
      kvrpcpb__check_txn_status_response__descriptor, 25, true, false, txn__kv_check_txn_status),
    M("KvTxnHeartBeat", kvrpcpb__txn_heart_beat_request__descriptor,
      kvrpcpb__txn_heart_beat_response__descriptor, 26, true, false, txn__kv_txn_heart_beat),
    M("KvCheckSecondaryLocks", kvrpcpb__check_secondary_locks_request__descriptor,
      kvrpcpb__check_secondary_locks_response__descriptor, 33, true, false,
      txn__kv_check_secondary_locks),
    M("UnsafeDestroyRange", kvrpcpb__unsafe_destroy_range_request__descriptor,
      kvrpcpb__unsafe_destroy_range_response__descriptor, 0, true, true, txn__unsafe_destroy_range),
    {.name = NULL},
};

int stor__txn_init(stor *s)
{
    struct stor_txn *t = tkv_calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->s = s;
    int rc = txn_pool_new(TXN_POOL_THREADS, &t->pool);
    if (rc == 0) {
        rc = txn_lock_mgr_new(NULL, 0, &t->lm);
        if (rc != 0)
            txn_pool_free(t->pool);
    }
    if (rc == 0) {
        rc = txn_cm_new(&t->cm);
        if (rc != 0) {
            txn_lock_mgr_free(t->lm);
            txn_pool_free(t->pool);
        }
    }
    if (rc != 0) {
        tkv_free(t);
        return rc;
    }
    s->txn = t;
    return 0;
}

void stor_set_detector(stor *s, struct txn_detector *d)
{
    txn_lock_mgr_set_detector(s->txn->lm, d);
}

void stor_set_tso(stor *s, stor_tso_fn fn, void *arg)
{
    txn_cm_set_tso(s->txn->cm, fn, arg);
}

void stor__txn_deinit(stor *s)
{
    struct stor_txn *t = s->txn;
    if (t == NULL)
        return;
    /* Waits end first (they answer through the pool-free path), then queued work drains. */
    txn_lock_mgr_free(t->lm);
    txn_pool_free(t->pool);
    txn_cm_free(t->cm);
    tkv_free(t);
    s->txn = NULL;
}
