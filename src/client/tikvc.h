/*
 * tikvc.h: libtikvc, a C client for TiKV and tikv-c (TiKV's gRPC protocol).
 *
 * What it does (as TiKV's Go client, client-go, does it):
 *   - Routing: a region cache filled from PD (key -> region, its leader, the leader store's
 *     address), refreshed when a store answers with a region error (not leader, epoch not
 *     match, region not found, key not in region, store not match, stale command) and
 *     retried with bounded exponential backoff; ServerIsBusy is backed off and retried.
 *   - Transport: per store, a few long-lived BatchCommands streams on which requests are
 *     multiplexed by id and batched while the previous batch goes out; unary calls when
 *     BatchCommands is switched off (tikvc_opts.batch_commands = 0).
 *   - Raw API (TiKV API v1): get, batch get, put (with TTL), batch put, delete, batch delete,
 *     scan and reverse scan across regions (the limit holds for the whole scan), delete
 *     range, compare-and-swap.
 *   - Transactions (Percolator, optimistic): begin at a PD timestamp, get, set, delete, scan
 *     and iterate (forward and reverse) with the transaction's own writes merged in, commit
 *     with two-phase commit (prewrite grouped per region, primary committed first, then the
 *     secondaries; commit timestamp from PD) or, when all writes fit one prewrite request to
 *     one region, one-phase commit (TiKV's 1PC, tikvc_opts.txn_one_pc), rollback, and
 *     resolution of locks left by crashed transactions when a read meets them. Keys sent to
 *     PD are memcomparable-encoded in transactional mode, exactly as client-go's
 *     CodecPDClient does.
 *
 * Owns: a tikvc_client: a PD client, gRPC connections, the region and store caches, one
 * timer thread and two worker threads (for PD lookups and backoff). Requests are
 * asynchronous inside: no thread per request; the blocking functions wait for the
 * asynchronous machinery on the caller's thread.
 *
 * Threads: a tikvc_client is thread-safe: any number of threads may use one handle. A
 * tikvc_txn (and a tikvc_iter) belongs to one thread at a time. Callbacks of the *_async
 * functions run on a library thread: they must not block and must not call the blocking
 * functions (they may start further *_async calls).
 *
 * Errors: functions return TIKVC_OK (0) or a negative TIKVC_E* code; the calling thread's
 * last error message is tikvc_errmsg(). Expected outcomes are results, not errors: a missing
 * key sets *found = false.
 *
 * Ownership: inputs are borrowed for the call (the *_async functions copy what they need).
 * Outputs in tikvc_buf / tikvc_kvs belong to the caller: free them with tikvc_buf_free /
 * tikvc_kvs_free. Results handed to callbacks are borrowed for the callback.
 *
 * Example:
 *     tikvc_client *c;
 *     if (tikvc_connect("127.0.0.1:2379", &c) != TIKVC_OK)
 *         errx(1, "connect: %s", tikvc_errmsg());
 *     tikvc_raw_put(c, "k", 1, "v", 1, 0);
 *     tikvc_buf v = {0};
 *     bool found;
 *     if (tikvc_raw_get(c, "k", 1, &v, &found) == TIKVC_OK && found)
 *         printf("%.*s\n", (int)v.len, (char *)v.data);
 *     tikvc_buf_free(&v);
 *     tikvc_close(c);
 */
#ifndef TIKVC_H
#define TIKVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ----------------------------------------------------------------------------- */

enum {
    TIKVC_OK = 0,
    TIKVC_EINVAL = -1,         /* bad argument (NULL, empty key where one is needed, ...) */
    TIKVC_ENOMEM = -2,         /* out of memory */
    TIKVC_ETIMEDOUT = -3,      /* no answer within the deadline, retries included */
    TIKVC_EUNAVAILABLE = -4,   /* PD or the stores could not be reached */
    TIKVC_EREGION = -5,        /* region errors outlasted the backoff budget */
    TIKVC_EBUSY = -6,          /* stores answered ServerIsBusy beyond the backoff budget */
    TIKVC_ESERVER = -7,        /* the store refused the request (its message is kept) */
    TIKVC_ECONFLICT = -8,      /* transaction: write conflict; retry the transaction */
    TIKVC_ELOCKED = -9,        /* transaction: a lock that did not go away in time */
    TIKVC_EABORTED = -10,      /* transaction: rolled back (by itself or a lock resolver) */
    TIKVC_EUNDETERMINED = -11, /* transaction: the commit's outcome is unknown */
    TIKVC_ECLOSED = -12,       /* the client is closing, or the transaction is finished */
    TIKVC_ECORRUPT = -13,      /* a response did not decode or broke the protocol */
    TIKVC_ECONFIG = -14,       /* bad options: endpoints, TLS files */
    TIKVC_ETOOLARGE = -15,     /* a request exceeded a limit of the server */
};

/* Returns a static name for @code ("TIKVC_ETIMEDOUT", ...). */
const char *tikvc_strerror(int code);

/* Returns the message of the calling thread's last failed tikvc call ("" when none). Valid
 * until the thread's next failing call. */
const char *tikvc_errmsg(void);

/* ---- bytes ------------------------------------------------------------------------------ */

/* Borrowed input bytes. */
typedef struct tikvc_slice {
    const void *data;
    size_t len;
} tikvc_slice;

/* Owned output bytes (malloc'd); free with tikvc_buf_free. Starts as {0}. */
typedef struct tikvc_buf {
    uint8_t *data;
    size_t len;
} tikvc_buf;

typedef struct tikvc_kv {
    tikvc_buf key;
    tikvc_buf value;
} tikvc_kv;

/* A list of pairs; free with tikvc_kvs_free. Starts as {0}. */
typedef struct tikvc_kvs {
    tikvc_kv *items;
    size_t len;
} tikvc_kvs;

/* Frees @b's bytes and empties it; NULL is a no-op. */
void tikvc_buf_free(tikvc_buf *b);
/* Frees every pair of @kvs and empties it; NULL is a no-op. */
void tikvc_kvs_free(tikvc_kvs *kvs);

/* ---- client ----------------------------------------------------------------------------- */

typedef struct tikvc_client tikvc_client;

typedef struct tikvc_opts {
    /* PD endpoints, comma-separated: "127.0.0.1:2379,127.0.0.1:2382" (http:// allowed). */
    const char *pd_endpoints;
    /* TLS (PEM files; all NULL: plaintext). ca_path alone verifies the servers; with
     * cert_path and key_path the client presents a certificate (mutual TLS). */
    const char *ca_path;
    const char *cert_path;
    const char *key_path;
    /* Deadline of one RPC to a store, in ms (default 20000). */
    int rpc_timeout_ms;
    /* Deadline of one PD call, in ms (default 3000). */
    int pd_timeout_ms;
    /* Total backoff sleep one operation may spend on retries, in ms (default 20000). */
    int max_backoff_ms;
    /* ServerIsBusy backoff: first sleep and cap, in ms (default 2000 and 10000, client-go's). */
    int busy_backoff_base_ms;
    int busy_backoff_cap_ms;
    /* 1 (default): BatchCommands streams; 0: one unary call per request. */
    int batch_commands;
    /* BatchCommands streams (HTTP/2 connections) per store (default 2). */
    int conns_per_store;
    /* gRPC completion-queue threads (default 2). */
    int grpc_threads;
    /* Transactions: lock TTL in ms written with prewrites (default 3000). */
    int txn_lock_ttl_ms;
    /* Most pairs one scan request asks a store for (default 10240). */
    int scan_batch;
    /* Transactions whose writes fit one prewrite request to one region commit in one phase
     * (TiKV's 1PC: the store picks the commit timestamp, no commit round trip; it may fall
     * back to two phases): 1 (default) on, 0 off (always two-phase commit). */
    int txn_one_pc;
    /* The library's log lines at this level and above go to stderr: 0 trace, 1 debug,
     * 2 info, 3 warn (default), 4 error, 6 off. A process-wide setting. */
    int log_level;
} tikvc_opts;

/* Fills @o with the defaults (pd_endpoints NULL). */
void tikvc_opts_init(tikvc_opts *o);

/* Connects to the cluster behind @o->pd_endpoints into *@out (PD must answer; stores are
 * dialed on first use). Errors: TIKVC_EINVAL, TIKVC_ECONFIG (no or bad endpoints, TLS
 * files), TIKVC_EUNAVAILABLE / TIKVC_ETIMEDOUT (PD did not answer), TIKVC_ENOMEM. */
int tikvc_open(const tikvc_opts *o, tikvc_client **out);

/* tikvc_open with default options and @pd_endpoints. */
int tikvc_connect(const char *pd_endpoints, tikvc_client **out);

/* Fails whatever is still in flight with TIKVC_ECLOSED (their callbacks run), stops the
 * library's threads and frees the client. Transactions must be freed before. NULL is a
 * no-op. Thread: not a library callback. */
void tikvc_close(tikvc_client *c);

/* ---- raw API ---------------------------------------------------------------------------- */

/* Scan flags. */
#define TIKVC_SCAN_REVERSE  1u /* newest-first: from the end of the range downward */
#define TIKVC_SCAN_KEY_ONLY 2u /* values are left empty */

/* Reads @key: *@found tells whether it exists; @value receives its value (replaced). */
int tikvc_raw_get(tikvc_client *c, const void *key, size_t key_len, tikvc_buf *value, bool *found);

/* Reads @n keys; @out receives the pairs that exist, in the order of @keys. */
int tikvc_raw_batch_get(tikvc_client *c, const tikvc_slice *keys, size_t n, tikvc_kvs *out);

/* Writes @key = @value; @ttl_s > 0 makes it expire after that many seconds (the server must
 * have TTL enabled). */
int tikvc_raw_put(tikvc_client *c, const void *key, size_t key_len, const void *value,
                  size_t value_len, uint64_t ttl_s);

/* Writes @n pairs (grouped per region; not atomic across regions). */
int tikvc_raw_batch_put(tikvc_client *c, const tikvc_slice *keys, const tikvc_slice *values,
                        size_t n, uint64_t ttl_s);

/* Deletes @key (deleting a missing key succeeds). */
int tikvc_raw_delete(tikvc_client *c, const void *key, size_t key_len);

/* Deletes @n keys. */
int tikvc_raw_batch_delete(tikvc_client *c, const tikvc_slice *keys, size_t n);

/* Returns in @out (replaced) at most @limit pairs with keys in [@start, @end) (@end empty:
 * to the end of the key space), ascending, or descending with TIKVC_SCAN_REVERSE; the scan
 * crosses regions and the limit counts for the whole scan. */
int tikvc_raw_scan(tikvc_client *c, const void *start, size_t start_len, const void *end,
                   size_t end_len, size_t limit, unsigned flags, tikvc_kvs *out);

/* Deletes every key in [@start, @end) (@end empty: to the end), region by region. */
int tikvc_raw_delete_range(tikvc_client *c, const void *start, size_t start_len, const void *end,
                           size_t end_len);

/* Compare-and-swap: writes @key = @value only when its current value is @expected (or,
 * with @expect_absent, when it does not exist). *@swapped tells whether it wrote; @previous
 * (may be NULL) receives the value before, *@previous_found whether there was one (may be
 * NULL). @ttl_s as for tikvc_raw_put. */
int tikvc_raw_cas(tikvc_client *c, const void *key, size_t key_len, const void *expected,
                  size_t expected_len, bool expect_absent, const void *value, size_t value_len,
                  uint64_t ttl_s, bool *swapped, tikvc_buf *previous, bool *previous_found);

/* Returns the TTL left of @key in *@ttl_s (0: no TTL) and whether it exists. */
int tikvc_raw_get_ttl(tikvc_client *c, const void *key, size_t key_len, uint64_t *ttl_s,
                      bool *found);

/* ---- asynchronous raw API --------------------------------------------------------------- */

/* The outcome of an asynchronous call, borrowed for the callback. */
typedef struct tikvc_result {
    int code;             /* TIKVC_OK or an error */
    const char *errmsg;   /* "" on success */
    bool found;           /* get: the key exists */
    tikvc_slice value;    /* get: its value */
    const tikvc_kvs *kvs; /* scan: the pairs (never NULL for scans) */
} tikvc_result;

typedef void (*tikvc_cb)(void *ud, const tikvc_result *r);

/* The asynchronous calls return at once: TIKVC_OK means @cb runs exactly once later, on a
 * library thread (possibly while the call is still returning); an error means @cb never runs.
 * Keys and values are copied. tikvc_close fails the calls still in flight with
 * TIKVC_ECLOSED (their callbacks run). */

/* Reads @key; the result has found and value. */
int tikvc_raw_get_async(tikvc_client *c, const void *key, size_t key_len, tikvc_cb cb, void *ud);
/* Writes @key = @value (with @ttl_s as tikvc_raw_put). */
int tikvc_raw_put_async(tikvc_client *c, const void *key, size_t key_len, const void *value,
                        size_t value_len, uint64_t ttl_s, tikvc_cb cb, void *ud);
/* Deletes @key. */
int tikvc_raw_delete_async(tikvc_client *c, const void *key, size_t key_len, tikvc_cb cb, void *ud);
/* Scans as tikvc_raw_scan; the result's kvs holds the pairs (borrowed for the callback). */
int tikvc_raw_scan_async(tikvc_client *c, const void *start, size_t start_len, const void *end,
                         size_t end_len, size_t limit, unsigned flags, tikvc_cb cb, void *ud);

/* ---- transactions ----------------------------------------------------------------------- */

typedef struct tikvc_txn tikvc_txn;
typedef struct tikvc_iter tikvc_iter;

/* Starts an optimistic transaction at a fresh PD timestamp. */
int tikvc_txn_begin(tikvc_client *c, tikvc_txn **out);

/* Returns the transaction's start timestamp. */
uint64_t tikvc_txn_start_ts(const tikvc_txn *t);

/* Returns the commit timestamp once tikvc_txn_commit succeeded, else 0. */
uint64_t tikvc_txn_commit_ts(const tikvc_txn *t);

/* Reads @key as of the start timestamp, seeing the transaction's own writes. Locks of
 * other transactions are resolved (committed or rolled back) when their owner crashed, and
 * waited for while it is alive. Errors: TIKVC_ELOCKED (still locked after the backoff
 * budget), the common ones. */
int tikvc_txn_get(tikvc_txn *t, const void *key, size_t key_len, tikvc_buf *value, bool *found);

/* Reads @n keys; @out receives the pairs that exist, in the order of @keys. */
int tikvc_txn_batch_get(tikvc_txn *t, const tikvc_slice *keys, size_t n, tikvc_kvs *out);

/* Buffers a write of @key = @value (sent at commit). */
int tikvc_txn_set(tikvc_txn *t, const void *key, size_t key_len, const void *value,
                  size_t value_len);

/* Buffers a delete of @key. */
int tikvc_txn_delete(tikvc_txn *t, const void *key, size_t key_len);

/* Returns at most @limit pairs in [@start, @end) (@end empty: to the end) as the
 * transaction sees them (its own writes merged in); flags as for tikvc_raw_scan. */
int tikvc_txn_scan(tikvc_txn *t, const void *start, size_t start_len, const void *end,
                   size_t end_len, size_t limit, unsigned flags, tikvc_kvs *out);

/* Opens an iterator over [@start, @end) (flags: TIKVC_SCAN_REVERSE), positioned on the first
 * pair (check tikvc_iter_valid). It reads in batches as it goes. The transaction must stay
 * alive and unchanged while it is used. */
int tikvc_txn_iter(tikvc_txn *t, const void *start, size_t start_len, const void *end,
                   size_t end_len, unsigned flags, tikvc_iter **out);
/* Returns true while the iterator is on a pair. */
bool tikvc_iter_valid(const tikvc_iter *it);
/* Returns the current key, valid until the next tikvc_iter_next. */
tikvc_slice tikvc_iter_key(const tikvc_iter *it);
/* Returns the current value, valid until the next tikvc_iter_next. */
tikvc_slice tikvc_iter_value(const tikvc_iter *it);
/* Moves to the next pair (it may read the next batch). */
int tikvc_iter_next(tikvc_iter *it);
/* Frees the iterator; NULL is a no-op. */
void tikvc_iter_free(tikvc_iter *it);

/* Commits with two-phase commit: prewrite every key (grouped per region; the first key is
 * the primary), take a commit timestamp, commit the primary, then the secondaries. A
 * transaction without writes commits at once. With txn_one_pc, writes that fit one prewrite
 * request to one region are committed by that request (the store picks the commit
 * timestamp; tikvc_txn_commit_ts tells it). Errors: TIKVC_ECONFLICT (another transaction
 * wrote one of the keys after this one started: everything is rolled back),
 * TIKVC_EUNDETERMINED (the primary's commit, or a one-phase prewrite, was sent but its
 * answer was lost), TIKVC_ECLOSED
 * (already committed or rolled back), the common ones. */
int tikvc_txn_commit(tikvc_txn *t);

/* Discards the buffered writes (nothing was sent before commit, so nothing is undone on the
 * stores). Errors: TIKVC_ECLOSED (already finished). */
int tikvc_txn_rollback(tikvc_txn *t);

/* Frees the transaction, rolling it back if unfinished; NULL is a no-op. */
void tikvc_txn_free(tikvc_txn *t);

/* ---- cluster information (from PD) ------------------------------------------------------ */

/* Key modes for region lookups: raw keys, or transactional keys (memcomparable on PD). */
#define TIKVC_MODE_RAW 0
#define TIKVC_MODE_TXN 1

typedef struct tikvc_peer {
    uint64_t id;
    uint64_t store_id;
    int role; /* metapb PeerRole: 0 voter, 1 learner */
} tikvc_peer;

typedef struct tikvc_region {
    uint64_t id;
    tikvc_buf start; /* in the chosen mode's key space; empty: -infinity */
    tikvc_buf end;   /* empty: +infinity */
    uint64_t conf_ver;
    uint64_t version;
    tikvc_peer *peers;
    size_t n_peers;
    uint64_t leader_store_id; /* 0 when PD knows no leader */
    uint64_t leader_peer_id;
} tikvc_region;

typedef struct tikvc_store {
    uint64_t id;
    char *address;
    char *status_address;
    char *version;
    int state; /* metapb StoreState: 0 Up, 1 Offline, 2 Tombstone */
    int64_t last_heartbeat_ns;
} tikvc_store;

typedef struct tikvc_member {
    char *name;
    uint64_t id;
    char *client_url; /* first client URL */
    bool leader;
} tikvc_member;

/* Returns the region holding @key (in @mode's key space) into *@out (free with
 * tikvc_region_free). */
int tikvc_pd_region_by_key(tikvc_client *c, const void *key, size_t key_len, int mode,
                           tikvc_region *out);
/* Returns region @id. */
int tikvc_pd_region_by_id(tikvc_client *c, uint64_t id, int mode, tikvc_region *out);
/* Returns up to @limit regions (0: all) intersecting [@start, @end) in *@out (an array of
 * *@n; free with tikvc_regions_free). */
int tikvc_pd_scan_regions(tikvc_client *c, const void *start, size_t start_len, const void *end,
                          size_t end_len, size_t limit, int mode, tikvc_region **out, size_t *n);
/* Returns store @id. */
int tikvc_pd_store(tikvc_client *c, uint64_t id, tikvc_store *out);
/* Returns every store (tombstones included) in *@out (array of *@n; tikvc_stores_free). */
int tikvc_pd_stores(tikvc_client *c, tikvc_store **out, size_t *n);
/* Returns PD's members and the cluster id. */
int tikvc_pd_members(tikvc_client *c, uint64_t *cluster_id, tikvc_member **out, size_t *n);
/* Returns a fresh timestamp from PD. */
int tikvc_pd_tso(tikvc_client *c, uint64_t *ts);

/* Frees what tikvc_pd_region_by_key / _by_id put in *@r (not @r itself); NULL is a no-op. */
void tikvc_region_free(tikvc_region *r);
/* Frees an array from tikvc_pd_scan_regions; NULL is a no-op. */
void tikvc_regions_free(tikvc_region *r, size_t n);
/* Frees what tikvc_pd_store put in *@s (not @s itself); NULL is a no-op. */
void tikvc_store_free(tikvc_store *s);
/* Frees an array from tikvc_pd_stores; NULL is a no-op. */
void tikvc_stores_free(tikvc_store *s, size_t n);
/* Frees an array from tikvc_pd_members; NULL is a no-op. */
void tikvc_members_free(tikvc_member *m, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* TIKVC_H */
