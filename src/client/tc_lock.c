/*
 * tc_lock.c: resolving locks of other transactions (Percolator's crash recovery, as
 * client-go's LockResolver does it for optimistic, non-async-commit transactions):
 *
 *   1. Ask the lock's primary for the transaction's status (KvCheckTxnStatus with a fresh
 *      current_ts): committed (commit_version), rolled back (nothing), or alive (lock_ttl;
 *      its owner may still commit). A primary lock whose TTL has run out is rolled back by
 *      the store as part of the check.
 *   2. "Transaction not found" (no primary lock and no record): the owner may still be
 *      prewriting the primary. Once the lock's own TTL has passed, ask again with
 *      rollback_if_not_exist (which writes a rollback record so a late prewrite fails);
 *      before that, back off and ask again.
 *   3. Committed or rolled back: commit or roll back the lock itself (KvResolveLock with the
 *      lock's key); the primary needs nothing more.
 *   4. Alive: report the time left, and whether the reader may pass the lock (the store
 *      pushed the owner's min_commit_ts above the reader).
 */
#include <inttypes.h>
#include <stdio.h>

#include "client/tc_int.h"
#include "client/tc_txn.h"

/* Runs one transactional command on one key. */
static int one_key(tikvc_client *c, const tc_kop_cmd *kc, tkv_slice key, tc_kop **out)
{
    int rc = tikvc__kop_new(c, kc, &c->txn_cache, 1, out);
    if (rc == 0)
        rc = tikvc__kop_set(*out, 0, key, tkv_slice_of(NULL, 0), false);
    return rc;
}

/* Commits (@commit_ts) or rolls back (0) the lock of @lock's transaction on its key. */
static int resolve_key(tikvc_client *c, const Kvrpcpb__LockInfo *lock, uint64_t commit_ts)
{
    tc_kop *k = NULL;
    int rc = one_key(c, &tc_kc_kv_resolve, tkv_slice_of(lock->key.data, lock->key.len), &k);
    if (rc == 0) {
        k->start_ts = lock->lock_version;
        k->commit_ts = commit_ts;
        rc = tikvc__kop_run(k);
    }
    tikvc__kop_free(k);
    return rc;
}

static bool cache_get(const tc_status_cache *sc, uint64_t lock_ts, uint64_t *commit_ts)
{
    for (size_t i = 0; sc != NULL && i < sc->n; i++) {
        if (sc->lock_ts[i] == lock_ts) {
            *commit_ts = sc->commit_ts[i];
            return true;
        }
    }
    return false;
}

static void cache_put(tc_status_cache *sc, uint64_t lock_ts, uint64_t commit_ts)
{
    if (sc == NULL)
        return;
    size_t i = sc->n < TKV_ARRAY_LEN(sc->lock_ts) ? sc->n++ : sc->next++ % sc->n;
    sc->lock_ts[i] = lock_ts;
    sc->commit_ts[i] = commit_ts;
}

int tikvc__resolve_lock(tikvc_client *c, tc_backoff *bo, tc_status_cache *known,
                        const Kvrpcpb__LockInfo *lock, uint64_t caller_start_ts,
                        uint64_t *ttl_left_ms, bool *bypass)
{
    *ttl_left_ms = 0;
    *bypass = false;
    uint64_t final_ts;
    if (cache_get(known, lock->lock_version, &final_ts))
        return resolve_key(c, lock, final_ts);
    uint64_t current_ts;
    if (pdc_tso(c->pd, 0, &current_ts) != 0)
        return tikvc__fail(TIKVC_EUNAVAILABLE, "timestamp for lock resolution: %s",
                           pdc_errmsg(NULL));
    tkv_slice primary = tkv_slice_of(lock->primary_lock.data, lock->primary_lock.len);
    tkv_slice key = tkv_slice_of(lock->key.data, lock->key.len);
    bool rollback_if_not_exist = false;
    for (;;) {
        tc_kop *k = NULL;
        int rc = one_key(c, &tc_kc_kv_check, primary, &k);
        if (rc == 0) {
            k->start_ts = lock->lock_version;
            k->caller_ts = caller_start_ts;
            k->current_ts = current_ts;
            k->rollback_if_not_exist = rollback_if_not_exist;
            rc = tikvc__kop_run(k);
        }
        if (rc != 0) {
            tikvc__kop_free(k);
            return rc;
        }
        bool not_found = k->txn_not_found;
        uint64_t ttl = k->lock_ttl_out, commit_ts = k->commit_version_out;
        int action = k->action_out;
        tikvc__kop_free(k);
        if (not_found) {
            uint64_t lock_phys = pdc_ts_physical(lock->lock_version);
            if (pdc_ts_physical(current_ts) >= lock_phys + lock->lock_ttl) {
                rollback_if_not_exist = true;
                continue;
            }
            rc = tikvc__bo_sleep(c, bo, TC_BO_TXN_NOT_FOUND,
                                 "the lock's primary is not written yet");
            if (rc != 0)
                return rc;
            continue;
        }
        if (ttl != 0) {
            /* The owner is alive. */
            uint64_t elapsed =
                pdc_ts_physical(current_ts) -
                TKV_MIN(pdc_ts_physical(current_ts), pdc_ts_physical(lock->lock_version));
            *ttl_left_ms = ttl > elapsed ? ttl - elapsed : 1;
            *bypass = action == KVRPCPB__ACTION__MinCommitTSPushed;
            return 0;
        }
        cache_put(known, lock->lock_version, commit_ts);
        /* The check settled the primary itself; a secondary is resolved on its key. */
        return tkv_slice_eq(key, primary) ? 0 : resolve_key(c, lock, commit_ts);
    }
}
