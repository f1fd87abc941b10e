/*
 * rs_testutil.h: helpers for the raftstore tests: synchronous writes and reads through the
 * kv seam, and waiting for a condition with a deadline (no sleeps for correctness).
 */
#ifndef TKV_TEST_RS_TESTUTIL_H
#define TKV_TEST_RS_TESTUTIL_H

#include "raftstore/raftstore.h"

/* The outcome of a seam call. */
typedef struct rs_result {
    int rc;               /* local failure, or 0 */
    Errorpb__Error *rerr; /* region error (owned), or NULL */
    bool found;           /* reads */
    tkv_buf value;        /* reads */
} rs_result;

/* Writes @key = @value (PUT) or deletes @key (@value NULL) in region @ctx and waits. */
int rs_put(stor_kv *kv, const stor_ctx *ctx, const char *key, const char *value, rs_result *out);
/* Runs the write @mods[0..n) and waits. */
int rs_write(stor_kv *kv, const stor_ctx *ctx, const stor_modify *mods, size_t n, rs_result *out);
/* Reads @key through a snapshot of region @ctx and waits. */
int rs_get(stor_kv *kv, const stor_ctx *ctx, const char *key, rs_result *out);
/* Releases what @r holds. */
void rs_result_deinit(rs_result *r);
/* Returns a context for @region_id (no epoch, no peer). */
stor_ctx rs_ctx(uint64_t region_id);
/* Polls @cond(@arg) every few milliseconds until it holds or @timeout_ms passes. */
bool rs_wait_for(bool (*cond)(void *arg), void *arg, uint64_t timeout_ms);
/* Makes a fresh temporary directory into @buf. */
void rs_tmpdir(char *buf, size_t cap);
/* Removes a directory tree. */
void rs_rmtree(const char *path);

#endif
