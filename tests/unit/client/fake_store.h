/*
 * fake_store.h: fake TiKV stores for the libtikvc tests, on rpc_server, routing by the fake
 * PD's truth (fake_pd.h).
 *
 * Each store checks a request's Context like TiKV does (region known and on this store,
 * peer's store, leader, epoch, keys inside the region) and answers with the errorpb.Error a
 * real store would: RegionNotFound, StoreNotMatch, NotLeader (with the leader), EpochNotMatch
 * (with the current regions), KeyNotInRegion. Tests can inject ServerIsBusy, StaleCommand or
 * NotLeader-without-a-hint answers, and split a region in the middle of a scan.
 *
 * Data lives once for the whole fake cluster (a region's data is wherever its leader is):
 *   - raw: sorted key -> value with an optional expiry (TTL);
 *   - transactional: a minimal Percolator: per key a lock and a list of writes (put, delete,
 *     rollback records with their start and commit timestamps). KvGet/KvBatchGet/KvScan,
 *     KvPrewrite (write conflicts, other transactions' locks, all-or-nothing per request),
 *     KvCommit, KvBatchRollback, KvCheckTxnStatus (TTL expiry on the caller's current_ts),
 *     KvResolveLock.
 * Every transactional write call is logged in order (method, store, keys) so tests check the
 * order 2PC used. Served unary and inside BatchCommands.
 *
 * Transactional region boundaries are memcomparable-encoded (as PD keeps them for client-go's
 * CodecPDClient) when `txn_encoded` is set: the stores then compare encoded keys.
 *
 * Threads: handlers run on the stores' completion-queue threads; all state is under the fake
 * PD's mutex (one lock for the whole fake cluster).
 */
#ifndef TKV_TEST_FAKE_STORE_H
#define TKV_TEST_FAKE_STORE_H

#include "base/base.h"
#include "unit/pdc/fake_pd.h"

#define FS_MAX_STORES 4
#define FS_MAX_LOG    4096

/* Injected answers, consumed one per request on the store. */
typedef struct fs_inject {
    int busy;              /* ServerIsBusy */
    uint64_t busy_hint_ms; /* its backoff_ms */
    int stale_command;
    int not_leader_no_hint;
    int store_not_match;
    int key_not_in_region;
    int drop;             /* never answer (the client's deadline must fire) */
    char drop_method[32]; /* with drop: only this method ("" for any) */
} fs_inject;

typedef struct fs_log {
    uint64_t store_id;
    char method[32];
    char key[32]; /* first key of the request, printable part */
    size_t n_keys;
    uint64_t start_ts;
    uint64_t commit_ts;
} fs_log;

typedef struct fake_cluster fake_cluster;

typedef struct fake_store {
    fake_cluster *fc;
    uint64_t id;
    rpc_server *srv;
    char addr[64];
    fs_inject inj;
    int requests;         /* answered kvrpcpb requests (unary and batched) */
    int batch_messages;   /* BatchCommandsRequest messages received */
    int batch_streams;    /* BatchCommands streams opened */
    int batched_requests; /* requests that came inside them */
} fake_store;

typedef struct fs_raw fs_raw;
typedef struct fs_tkey fs_tkey;

struct fake_cluster {
    fake_pd *pd;
    fake_store stores[FS_MAX_STORES];
    int n_stores;
    bool txn_encoded;
    /* raw data */
    fs_raw *raw;
    size_t n_raw, cap_raw;
    /* transactional data */
    fs_tkey *tk;
    size_t n_tk, cap_tk;
    /* log of transactional writes */
    fs_log log[FS_MAX_LOG];
    size_t n_log;
    /* split region `split_region` at `split_key` (as new region `split_new_id`) right after
     * answering the `split_after`-th scan request (counted from when it was set). */
    int split_after;
    uint64_t split_region;
    uint8_t split_key[FPD_MAX_KEY];
    size_t split_key_len;
    uint64_t split_new_id;
    int scans_seen;
    int epoch_not_match; /* EpochNotMatch answers given */
    /* calls per method name (RawGet, KvPrewrite, ...) */
    struct {
        char name[32];
        int n;
    } counts[48];
    size_t n_counts;
    rpc_call *dropped[64]; /* parked by fs_inject.drop, finished at stop */
    size_t n_dropped;
};

/* Starts @n stores (ids 1..n) registered in @pd. Fails the test on error. */
void fake_cluster_start(fake_cluster *fc, fake_pd *pd, int n);
/* Stops the stores and frees the data. */
void fake_cluster_stop(fake_cluster *fc);
/* Stops store @id's server (connections to it are refused from now on). */
void fake_cluster_kill_store(fake_cluster *fc, uint64_t id);
/* Returns the store with @id. */
fake_store *fake_cluster_store(fake_cluster *fc, uint64_t id);
/* Returns how many requests of @method (e.g. "RawGet") the stores answered. */
int fake_cluster_count(fake_cluster *fc, const char *method);

/* Raw data helpers (take the lock). */
void fake_cluster_raw_put(fake_cluster *fc, tkv_slice key, tkv_slice value);
bool fake_cluster_raw_get(fake_cluster *fc, tkv_slice key, tkv_buf *value);
size_t fake_cluster_raw_count(fake_cluster *fc);

/* Transactional helpers (take the lock). */
/* Leaves a lock as a crashed transaction would (prewritten, never committed). */
void fake_cluster_put_lock(fake_cluster *fc, tkv_slice key, tkv_slice primary, uint64_t start_ts,
                           uint64_t ttl_ms, tkv_slice value);
/* Commits @key's lock of @start_ts at @commit_ts (as if its owner committed only it). */
void fake_cluster_commit_key(fake_cluster *fc, tkv_slice key, uint64_t start_ts,
                             uint64_t commit_ts);
/* Returns true when @key has a lock. */
bool fake_cluster_has_lock(fake_cluster *fc, tkv_slice key);
/* Reads @key's newest committed value at @ts (true when found). */
bool fake_cluster_txn_read(fake_cluster *fc, tkv_slice key, uint64_t ts, tkv_buf *value);

#endif /* TKV_TEST_FAKE_STORE_H */
