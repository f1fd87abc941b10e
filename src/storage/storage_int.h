/*
 * storage_int.h: what the parts of the storage layer share (not API).
 */
#ifndef TKV_STORAGE_INT_H
#define TKV_STORAGE_INT_H

#include "storage/storage.h"

struct stor_txn; /* transactional state (storage/txn/): lock manager, GC, ... */

struct stor {
    stor_kv *kv;
    stor_opts opts;
    stor_latches *latches;
    struct stor_txn *txn;
    stor_destroy_range_fn destroy_range; /* store-wide UnsafeDestroyRange, may be NULL */
    void *destroy_range_arg;
};

/* Sets up and tears down the transactional part (storage/txn/); called by stor_new and
 * stor_free. Errors: -ENOMEM. */
TKV_MUST_USE int stor__txn_init(stor *s);
void stor__txn_deinit(stor *s);

#endif /* TKV_STORAGE_INT_H */
