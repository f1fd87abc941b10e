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
/* Writes @key = @value into @cf of @db in a batch of its own. Errors: the engine's. */
int rs_engine_put(eng_db *db, eng_cf cf, tkv_slice key, tkv_slice value);
/* Returns region @id of [@start, @end) with epoch (1, @version) and one voter, peer 2 on store
 * 1 (free with rstore__region_free). */
Metapb__Region *rs_region(uint64_t id, tkv_slice start, tkv_slice end, uint64_t version);
/* Builds the snapshot of @region from @kv with the real builder (rstore__snap_build at index 10,
 * term 6) in store @s's snap_dir and moves the file to the received-snapshot path, written to
 * @path (@cap bytes); its RaftSnapshotData goes to @data. Only @s's snap_dir and key dictionary
 * (opts.sec, NULL for plaintext) are used. Errors: the builder's, -errno. */
int rs_build_snapshot(struct rstore *s, eng_db *kv, const Metapb__Region *region, tkv_buf *data,
                      char *path, size_t cap);
/* Makes a fresh temporary directory into @buf. */
void rs_tmpdir(char *buf, size_t cap);
/* Removes a directory tree. */
void rs_rmtree(const char *path);

#endif
