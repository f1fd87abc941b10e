/*
 * txn_fixture.h: a storage over stor_kv_local on eng_mem or eng_rocks, and helpers that call
 * the transactional methods synchronously (the tests of issue 7).
 */
#ifndef TKV_TEST_TXN_FIXTURE_H
#define TKV_TEST_TXN_FIXTURE_H

#include "kvrpcpb.pb-c.h"
#include "storage/storage.h"
#include "storage/txn_types.h"

typedef struct txn_fx {
    bool rocks;
    char dir[64];
    eng_db *db;
    stor_kv *kv;
    stor *s;
    Kvrpcpb__Context ctx;
} txn_fx;

/* Opens a fixture on eng_rocks (@rocks) or eng_mem. Aborts the test on failure. */
txn_fx *fx_open(bool rocks);
/* Closes and removes everything. */
void fx_close(txn_fx *f);

/* Calls method @name with @req (its context is set to the fixture's) and returns a copy of
 * the response that the caller frees with fx_free. */
void *fx_call(txn_fx *f, const char *name, ProtobufCMessage *req);
/* Starts method @name and returns at once; fx_wait gets the response. */
typedef struct fx_pending fx_pending;
fx_pending *fx_start(txn_fx *f, const char *name, ProtobufCMessage *req);
/* Like fx_start but returns the method's code instead of asserting it is 0 (*@out is set
 * only on 0). */
int fx_try_start(txn_fx *f, const stor_method *m, ProtobufCMessage *req, fx_pending **out);
/* Returns whether the call finished. */
bool fx_done(fx_pending *p);
/* Waits for the call and returns its response (fx_free it). */
void *fx_wait(fx_pending *p);
/* Frees a response. */
void fx_free(void *resp);

/* Shortcuts. Keys and values are C strings (no NUL inside). */
Kvrpcpb__PrewriteResponse *fx_prewrite(txn_fx *f, const char *key, const char *value, int op,
                                       const char *primary, uint64_t start_ts);
void fx_must_prewrite_put(txn_fx *f, const char *key, const char *value, const char *primary,
                          uint64_t start_ts);
void fx_must_commit(txn_fx *f, const char *key, uint64_t start_ts, uint64_t commit_ts);
Kvrpcpb__CommitResponse *fx_commit(txn_fx *f, const char *key, uint64_t start_ts,
                                   uint64_t commit_ts);
Kvrpcpb__GetResponse *fx_get(txn_fx *f, const char *key, uint64_t ts);
/* Asserts that a read of @key at @ts returns @value (NULL: not found). */
void fx_must_get(txn_fx *f, const char *key, uint64_t ts, const char *value);
/* Asserts that a read of @key at @ts is blocked by the lock of @lock_ts. */
void fx_must_get_locked(txn_fx *f, const char *key, uint64_t ts, uint64_t lock_ts);
Kvrpcpb__BatchRollbackResponse *fx_rollback(txn_fx *f, const char *key, uint64_t start_ts);
/* KvPessimisticLock of one key (wait_timeout as in the request: -1 no wait). */
Kvrpcpb__PessimisticLockResponse *fx_plock(txn_fx *f, const char *key, const char *primary,
                                           uint64_t start_ts, uint64_t for_update_ts,
                                           int64_t wait_timeout, bool return_values);

/* Returns a binary field over a C string (borrowed). */
ProtobufCBinaryData fx_bin(const char *s);
/* Returns whether binary @b holds C string @s. */
bool fx_bin_eq(ProtobufCBinaryData b, const char *s);

#endif /* TKV_TEST_TXN_FIXTURE_H */
