/*
 * tc_txn.h: libtikvc's transaction internals (not API): the transaction object, its write
 * buffer, and the transactional key-set commands.
 */
#ifndef TKV_CLIENT_TC_TXN_H
#define TKV_CLIENT_TC_TXN_H

#include "client/tc_int.h"

extern const tc_kop_cmd tc_kc_kv_get, tc_kc_kv_batch_get, tc_kc_kv_prewrite, tc_kc_kv_commit,
    tc_kc_kv_rollback, tc_kc_kv_check, tc_kc_kv_resolve;

/* One buffered write. */
typedef struct tc_mut {
    tkv_buf key;
    tkv_buf value;
    bool del;
} tc_mut;

enum { TXN_ACTIVE, TXN_COMMITTED, TXN_ROLLED_BACK, TXN_FAILED };

struct tikvc_txn {
    tikvc_client *c;
    uint64_t start_ts;
    uint64_t commit_ts;
    int state;
    tc_mut *muts; /* sorted by key, one per key */
    size_t n_muts, cap_muts;
    uint64_t *resolved; /* transactions whose locks this one's reads may pass */
    size_t n_resolved, cap_resolved;
    tc_status_cache known; /* final statuses of transactions whose locks it met */
};

/* Returns the index of the first buffered write with key >= @key. */
size_t tikvc__txn_lower_bound(const tikvc_txn *t, tkv_slice key);

/* Runs a transactional read key-set op @k (its items set) until no lock blocks it: locks are
 * resolved, waited for while alive, or passed when their owner allows. */
int tikvc__txn_read(tikvc_txn *t, tc_kop *k);

/* Remembers that reads may pass locks of transaction @lock_ts. */
int tikvc__txn_add_resolved(tikvc_txn *t, uint64_t lock_ts);

/* Two-phase commit of the buffered writes (tc_2pc.c). */
int tikvc__txn_commit(tikvc_txn *t);

#endif /* TKV_CLIENT_TC_TXN_H */
