/*
 * tc_int.h: libtikvc internals shared by its files (not API; nothing here is installed).
 *
 * The pieces, bottom up:
 *   - exec (tc_exec.c): two worker threads running jobs now or at a time (backoff sleeps,
 *     PD lookups that must not run on gRPC threads, a periodic timeout sweep).
 *   - cache (tc_cache.c): region caches (one for raw keys, one for transactional keys, whose
 *     boundaries PD keeps memcomparable-encoded) and the store table.
 *   - conn (tc_conn.c): per store, BatchCommands streams that multiplex calls by id, or
 *     unary calls; a tc_call is one attempt of one request.
 *   - engine (tc_engine.c): a tc_op is one user operation split into tc_tasks, one per
 *     region; the engine routes a task, sends it, reacts to region errors (update the cache,
 *     back off, resend or re-route) and finishes the op when its last task ends.
 *   - raw (tc_raw.c), transactions (tc_txn.c, tc_2pc.c, tc_lock.c), PD information
 *     (tc_admin.c) build on the engine.
 *
 * Threads: tasks move between the caller's thread, gRPC completion-queue threads (response
 * callbacks; never block there) and exec workers (where blocking PD calls are allowed).
 * Every hand-over is one owner at a time: a task belongs to exactly one of them.
 */
#ifndef TKV_CLIENT_TC_INT_H
#define TKV_CLIENT_TC_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/base.h"
#include "client/tikvc.h"
#include "errorpb.pb-c.h"
#include "kvrpcpb.pb-c.h"
#include "pdc/pdc.h"
#include "rpc/rpc.h"

/* ---- errors ----------------------------------------------------------------------------- */

/* Records @fmt as the calling thread's error message. */
void tikvc__set_errmsg(const char *fmt, ...) TKV_PRINTF(1, 2);
/* Records the message (format and arguments after @code) and evaluates to @code. A macro so
 * that the static analyzer sees the failure code on every error path. */
#define tikvc__fail(code, ...) (tikvc__set_errmsg(__VA_ARGS__), (code))
/* Maps a tikv-c error code (TKV_E*, -errno) to a TIKVC_E* code. */
int tikvc__code(int tkv_rc);
/* The calling thread's error message buffer. */
char *tikvc__errbuf(void);

/* ---- exec ------------------------------------------------------------------------------- */

typedef struct tc_job tc_job;
struct tc_job {
    void (*fn)(tc_job *j);
    uint64_t at_ms;  /* monotonic time it may run */
    size_t heap_idx; /* position in the heap while queued */
};

typedef struct tc_exec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tc_job **heap; /* min-heap on at_ms */
    size_t n, cap;
    pthread_t threads[4];
    int n_threads;
    bool stop;
    bool drain; /* run every job at once, whatever its time (closing) */
} tc_exec;

int tikvc__exec_start(tc_exec *x, int threads);
/* Runs @j on a worker after @delay_ms (0: as soon as a worker is free). */
void tikvc__exec_post(tc_exec *x, tc_job *j, uint64_t delay_ms);
/* From now on runs queued and future jobs at once (the client is closing). */
void tikvc__exec_drain(tc_exec *x);
/* Runs what is queued (at once, whatever its time), stops the workers and frees the queue.
 * Jobs must stop posting new ones by then (the client is closing). */
void tikvc__exec_stop(tc_exec *x);
/* True on an exec worker thread. */
bool tikvc__on_worker(void);

/* ---- regions and stores ----------------------------------------------------------------- */

/* A cached region: immutable but for its leader and its invalid mark. Reference counted:
 * the cache holds one reference, each task routed to it another. */
typedef struct tc_region {
    atomic_int refs;
    uint64_t id;
    uint64_t conf_ver;
    uint64_t version;
    tkv_buf start; /* in the cache's key space (decoded for transactional keys) */
    tkv_buf end;   /* empty: +infinity */
    size_t n_peers;
    uint64_t *peer_ids;
    uint64_t *store_ids;
    atomic_int leader; /* index into the peers */
    atomic_bool invalid;
} tc_region;

typedef struct tc_cache {
    pthread_rwlock_t lk;
    tc_region **v; /* sorted by start key, disjoint */
    size_t n, cap;
    bool codec; /* transactional: PD keys are memcomparable-encoded */
} tc_cache;

void tikvc__region_unref(tc_region *r);
/* True when @key lies in [start, end). */
bool tikvc__region_contains(const tc_region *r, tkv_slice key);
/* Builds a region from PD's (or a store's) message; with @codec its keys are decoded.
 * @leader_store selects the leader (0: the PD leader @leader, else the first peer).
 * Errors: TIKVC_ECORRUPT (keys that do not decode, no peers), TIKVC_ENOMEM. */
int tikvc__region_from_pb(bool codec, const Metapb__Region *m, const Metapb__Peer *leader,
                          uint64_t leader_store, tc_region **out);

void tikvc__cache_init(tc_cache *cc, bool codec);
void tikvc__cache_deinit(tc_cache *cc);
/* Returns the valid cached region containing @key (with @end_key: the one whose range holds
 * the keys just below @key, @key empty meaning +infinity), with a reference, or NULL. */
tc_region *tikvc__cache_find(tc_cache *cc, tkv_slice key, bool end_key);
/* Inserts @r (the cache takes its own reference), dropping cached regions it overlaps. */
int tikvc__cache_insert(tc_cache *cc, tc_region *r);
/* Marks @r invalid so the next lookup asks PD. */
void tikvc__cache_invalidate(tc_cache *cc, tc_region *r);
/* Number of regions cached (tests). */
size_t tikvc__cache_size(tc_cache *cc);

typedef struct tc_bstream tc_bstream;

typedef struct tc_store {
    uint64_t id;
    pthread_mutex_t mu;
    char *addr;      /* NULL until resolved */
    bool stale;      /* resolve again before the next use */
    tc_bstream **bs; /* conns_per_store BatchCommands streams, created lazily */
    atomic_uint rr;
} tc_store;

/* ---- commands --------------------------------------------------------------------------- */

typedef struct tc_cmd {
    const char *path; /* "/tikvpb.Tikv/RawGet" */
    int batch_field;  /* BatchCommands oneof number; 0: unary only */
    const ProtobufCMessageDescriptor *resp_desc;
} tc_cmd;

extern const tc_cmd tc_cmd_raw_get, tc_cmd_raw_batch_get, tc_cmd_raw_put, tc_cmd_raw_batch_put,
    tc_cmd_raw_delete, tc_cmd_raw_batch_delete, tc_cmd_raw_scan, tc_cmd_raw_delete_range,
    tc_cmd_raw_cas, tc_cmd_raw_get_ttl, tc_cmd_kv_get, tc_cmd_kv_batch_get, tc_cmd_kv_scan,
    tc_cmd_kv_prewrite, tc_cmd_kv_commit, tc_cmd_kv_batch_rollback, tc_cmd_kv_check_txn_status,
    tc_cmd_kv_resolve_lock;

/* ---- calls ------------------------------------------------------------------------------ */

typedef struct tc_call tc_call;
/* Completion of a call: @rc 0 with the response bytes @resp (borrowed), or a TIKVC_E* code
 * (transport failure, deadline, closing) with a message. */
typedef void (*tc_call_cb)(tc_call *call, int rc, const char *errmsg, tkv_slice resp);

struct tc_call {
    const tc_cmd *cmd;
    tkv_buf body; /* packed request */
    uint64_t id;
    uint64_t deadline_ms;
    tc_call_cb cb;
};

/* ---- client ----------------------------------------------------------------------------- */

struct tikvc_client {
    tikvc_opts opts; /* string fields not kept */
    rpc_client *rpc;
    pdc_client *pd;
    tc_cache raw_cache;
    tc_cache txn_cache;
    pthread_mutex_t stores_mu;
    tc_store **stores;
    size_t n_stores, cap_stores;
    tc_exec exec;
    tc_job sweep;
    pthread_rwlock_t send_lk; /* sends hold it shared; closing takes it exclusive */
    atomic_bool closing;
    atomic_long n_ops;
    pthread_mutex_t ops_mu;
    pthread_cond_t ops_cv;
    pthread_mutex_t rng_mu;
    tkv_rng rng;
};

/* Returns the store entry for @id, creating an unresolved one. Never NULL except -ENOMEM
 * (then NULL). */
tc_store *tikvc__store_get(tikvc_client *c, uint64_t id);
/* True when the store has a usable address. */
bool tikvc__store_ready(tc_store *s);
/* Asks PD for the store's address (blocking). */
int tikvc__store_resolve(tikvc_client *c, tc_store *s);
/* Marks the store for a new PD lookup (StoreNotMatch) and drops its streams. */
void tikvc__store_mark_stale(tikvc_client *c, tc_store *s);
/* Loads the region for @key from PD into @cc (blocking); returns it with a reference. */
int tikvc__cache_load(tikvc_client *c, tc_cache *cc, tkv_slice key, bool end_key, tc_region **out);

/* Sends @call to @s (its BatchCommands stream, or unary). 0: @call->cb runs exactly once
 * later (possibly before this returns, on another thread). Else an error and no callback. */
int tikvc__send(tikvc_client *c, tc_store *s, tc_call *call);
/* Fails calls past their deadline (run by the sweep job). */
void tikvc__conn_sweep(tikvc_client *c);
/* Cancels the streams of @s: their calls fail and the next send reconnects (the store's
 * address changed). */
void tikvc__store_close(tikvc_client *c, tc_store *s);
/* Frees @s's streams and fails their calls with TIKVC_ECLOSED (client close). */
void tikvc__store_shutdown(tikvc_client *c, tc_store *s);
/* Frees @s (after the exec stopped: nothing refers to it any more). */
void tikvc__store_free(tikvc_client *c, tc_store *s);

/* Returns a random value in [0, @n). */
uint64_t tikvc__rand(tikvc_client *c, uint64_t n);

/* ---- operations and tasks --------------------------------------------------------------- */

/* Backoff kinds (client-go's names and settings). */
enum {
    TC_BO_REGION_MISS,  /* 2 ms .. 500 ms */
    TC_BO_REGION_SCHED, /* not leader without a hint: 2 .. 500 */
    TC_BO_BUSY,         /* ServerIsBusy: opts (2 s .. 10 s) */
    TC_BO_TIKV_RPC,     /* transport failure: 100 .. 2000, jittered */
    TC_BO_STALE_CMD,    /* 2 .. 1000 */
    TC_BO_PD,           /* PD lookups: 500 .. 3000, jittered */
    TC_BO_TXN_LOCK,     /* a live lock: 100 .. 3000, jittered */
    TC_BO_TXN_NOT_FOUND,
    TC_BO_KINDS,
};

/* Budget shared by everything one user operation retries. */
typedef struct tc_backoff {
    uint64_t slept_ms;
    uint64_t max_ms;
    int attempts[TC_BO_KINDS];
} tc_backoff;

void tikvc__bo_init(tc_backoff *bo, const tikvc_client *c);
/* Returns the next sleep of kind @kind in *@sleep_ms (using @hint_ms when > 0), or
 * TIKVC_ETIMEDOUT-class failure when the budget is spent (code chosen by kind, message set
 * from @why). */
int tikvc__bo_next(tikvc_client *c, tc_backoff *bo, int kind, uint64_t hint_ms, const char *why,
                   uint64_t *sleep_ms);
/* Sleeps the next backoff of @kind on the calling thread (blocking callers). */
int tikvc__bo_sleep(tikvc_client *c, tc_backoff *bo, int kind, const char *why);

/* A waiter for blocking calls over the asynchronous machinery. */
typedef struct tc_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} tc_wait;

void tikvc__wait_init(tc_wait *w);
void tikvc__wait_deinit(tc_wait *w);
void tikvc__wait_signal(tc_wait *w);
void tikvc__wait(tc_wait *w);

typedef struct tc_op tc_op;
typedef struct tc_task tc_task;

typedef struct tc_op_vt {
    /* Packs @t's request with @ctx into @out. Errors: TIKVC_ENOMEM. */
    int (*build)(tc_task *t, Kvrpcpb__Context *ctx, tkv_buf *out);
    /* Handles a response without region error; the task ends after it (the handler may
     * spawn tasks with tikvc__task_new/tikvc__task_route, or fail the op). */
    void (*handle)(tc_task *t, ProtobufCMessage *resp);
    /* Re-routes the work of @t (its region changed) into new tasks; @t ends after it.
     * Returns TIKVC_OK, TC_WOULD_BLOCK (PD is needed and !may_block: nothing was done), or
     * an error (the op fails). */
    int (*reroute)(tc_task *t, bool may_block);
    /* Sends the op's first tasks (from the caller's thread, or any with !may_block). */
    void (*start)(tc_op *op, bool may_block);
    /* Frees the op. */
    void (*free)(tc_op *op);
} tc_op_vt;

#define TC_WOULD_BLOCK 1

struct tc_op {
    tikvc_client *c;
    const tc_op_vt *vt;
    const tc_cmd *cmd;
    tc_cache *cache;
    pthread_mutex_t mu;
    int pending; /* tasks alive */
    int rc;      /* first error */
    char errmsg[TKV_ERRMSG_LEN];
    tc_backoff bo;
    /* Context extras for transactional reads. */
    const uint64_t *resolved_locks;
    size_t n_resolved_locks;
    bool counted; /* included in c->n_ops */
    /* Completion: runs once when the last task ended (tikvc__op_run sets it for blocking
     * callers; asynchronous calls set their own and free the op in it). */
    void (*done)(tc_op *op);
    void *ud;
    tc_wait *wait;
};

typedef enum tc_step { TC_STEP_SEND, TC_STEP_REROUTE } tc_step;

struct tc_task {
    tc_job job;
    tc_call call;
    tc_op *op;
    tc_region *region; /* reference */
    tc_store *store;
    tc_step step;
    int quick_retries; /* retries without sleep in a row */
    int lead;          /* the peer index the last attempt went to */
    int unreachable;   /* peers of the region found unreachable in a row */
    /* Key-set operations: indices of the op's items this task carries. */
    size_t *items;
    size_t n_items;
    /* Scans: the request's own range and limit. */
    uint32_t limit;
};

/* Initializes @op (pending 0; the caller adds tasks, then calls tikvc__op_start). */
void tikvc__op_init(tc_op *op, tikvc_client *c, const tc_op_vt *vt, const tc_cmd *cmd,
                    tc_cache *cache);
void tikvc__op_deinit(tc_op *op);
/* Records @rc with a message as the op's error (the first one wins). */
void tikvc__op_fail(tc_op *op, int rc, const char *fmt, ...) TKV_PRINTF(3, 4);
/* Returns a new task of @op with a reference to @region (pending counts it). NULL: -ENOMEM
 * (recorded in the op). */
tc_task *tikvc__task_new(tc_op *op, tc_region *region);
/* Sends @t (routing its store first); after this the task belongs to the engine. */
void tikvc__task_send(tc_task *t, bool may_block);
/* Ends @t (and maybe the op). */
void tikvc__task_end(tc_task *t);
/* A guard while tasks are being added: the op cannot finish between hold and release (which
 * finishes it when nothing else is pending). */
void tikvc__op_hold(tc_op *op);
void tikvc__op_release(tc_op *op);
/* Starts @op and waits for it on the calling thread; returns the op's rc with the thread's
 * error message set. */
int tikvc__op_run(tc_op *op);
/* Starts @op asynchronously (counted for tikvc_close): when it ends, @fill completes the
 * result (code and message are set already), @cb runs, and the op is freed.
 * Errors (then nothing started; the caller still owns @op): TIKVC_ENOMEM. */
int tikvc__op_start_async(tc_op *op, void (*fill)(tc_op *op, tikvc_result *r), tikvc_cb cb,
                          void *ud);
/* Runs @t's reroute, on a worker when it needs PD. */
void tikvc__task_reroute(tc_task *t, bool may_block);
/* Locates @key in the op's cache (PD on a miss when @may_block) into *@out (reference).
 * Returns TC_WOULD_BLOCK on a miss without @may_block. */
int tikvc__locate(tc_op *op, tkv_slice key, bool end_key, bool may_block, tc_region **out);

/* ---- key-set operations (tc_kop.c) ------------------------------------------------------ */

/* One key of a key-set operation, with what the command needs and what it got back. */
typedef struct tc_item {
    tkv_slice key;
    tkv_slice value;
    int op;      /* kvrpcpb Op for prewrite mutations */
    bool found;  /* gets */
    tkv_buf out; /* gets: the value read */
    bool done;   /* answered */
    void *err;   /* transactional: a KeyError copy (Kvrpcpb__KeyError packed) */
} tc_item;

typedef struct tc_kop tc_kop;
typedef struct tc_kop_cmd {
    const tc_cmd *cmd;
    /* Packs a request for @n items @idx with @ctx. */
    int (*build)(tc_kop *k, const size_t *idx, size_t n, Kvrpcpb__Context *ctx, tkv_buf *out);
    /* Reads a response for the task's items. */
    void (*handle)(tc_kop *k, tc_task *t, ProtobufCMessage *resp);
    size_t max_keys;  /* per request */
    size_t max_bytes; /* per request (keys + values) */
} tc_kop_cmd;

struct tc_kop {
    tc_op op;
    const tc_kop_cmd *kc;
    tc_item *items;
    size_t n;
    tkv_buf arena; /* copies of keys and values */
    /* command parameters */
    uint64_t ttl_s;
    uint64_t start_ts;
    uint64_t commit_ts;
    uint64_t lock_ttl_ms;
    uint64_t txn_size;
    tkv_slice primary;
    uint64_t current_ts;
    uint64_t caller_ts; /* CheckTxnStatus: the start ts of the transaction asking */
    bool try_one_pc;    /* Prewrite: ask for 1PC when one request carries every item */
    bool rollback_if_not_exist;
    bool for_cas_prev_absent;
    tkv_slice cas_expected;
    /* results of single-key commands */
    bool swapped;
    uint64_t ttl_out;
    uint64_t lock_ttl_out;
    uint64_t commit_version_out;
    uint64_t one_pc_commit_ts; /* Prewrite: the store committed in one phase at this ts */
    int action_out;
    bool txn_not_found;
};

/* Creates a key-set op for @n items (keys and values copied when @copy). */
int tikvc__kop_new(tikvc_client *c, const tc_kop_cmd *kc, tc_cache *cache, size_t n, tc_kop **out);
/* Sets item @i (copying into the arena when @copy; else borrowed for the op's life). */
int tikvc__kop_set(tc_kop *k, size_t i, tkv_slice key, tkv_slice value, bool copy);
/* Runs @k to completion on the calling thread (blocking callers): tikvc__op_run. */
int tikvc__kop_run(tc_kop *k);
/* Returns the keys of items @idx[0..n) as protobuf bytes (tkv_free it; NULL: -ENOMEM). */
ProtobufCBinaryData *tikvc__kop_keys(tc_kop *k, const size_t *idx, size_t n);
/* Packs a request of type @desc whose `context` is @ctx and whose `keys` are the keys of
 * items @idx[0..n); @extra (may be NULL) sets the command's other fields. */
int tikvc__kop_pack_keys(tc_kop *k, const ProtobufCMessageDescriptor *desc, const size_t *idx,
                         size_t n, Kvrpcpb__Context *ctx,
                         void (*extra)(tc_kop *k, ProtobufCMessage *m), tkv_buf *out);
void tikvc__kop_free(tc_kop *k);
/* Records a KeyError (packed copy) for item @i. Under no lock: items of one task belong to
 * it alone. */
void tikvc__kop_key_error(tc_kop *k, size_t i, const Kvrpcpb__KeyError *e);

/* Counts @op among the asynchronous operations tikvc_close waits for. */
void tikvc__op_count(tikvc_client *c, tc_op *op);
/* An asynchronous operation counted by tikvc__op_count ended (after it was freed). */
void tikvc__op_done_count(tikvc_client *c);
/* Copies @b into a caller-owned tikvc_buf (replacing its contents). */
int tikvc__give_buf(tkv_buf *b, tikvc_buf *out);
/* Copies the items of @k that were found, in item order, into @out (replaced). */
int tikvc__found_pairs(tc_kop *k, tikvc_kvs *out);
/* Makes room for @need elements of @elem bytes in *@v (capacity *@cap, doubled as needed).
 * Returns TIKVC_ENOMEM (the array unchanged) or 0. */
int tikvc__grow(void **v, size_t *cap, size_t need, size_t elem);

/* ---- range walks (tc_scan.c) ------------------------------------------------------------ */

enum { TC_SCAN_RAW, TC_SCAN_TXN, TC_SCAN_DELETE_RANGE };

typedef struct tc_scan tc_scan;
struct tc_scan {
    tc_op op;
    int kind;
    bool reverse;
    bool key_only;
    tkv_buf lower;           /* inclusive */
    tkv_buf upper;           /* exclusive; empty: +infinity */
    tkv_buf cursor;          /* forward: the next key to read; reverse: the exclusive upper bound */
    bool cursor_inf;         /* reverse: the cursor is +infinity */
    size_t limit;            /* pairs wanted in all */
    uint32_t batch;          /* pairs per request (0: 10240) */
    uint64_t version;        /* transactional read timestamp */
    bool exhausted;          /* the whole range was read */
    Kvrpcpb__KeyError *lock; /* transactional: a lock stopped the walk at the cursor */
    tikvc_kvs out;
    size_t cap;
};

/* Creates a walk over [@lower, @upper) (@upper empty: to the end) of @kind. */
int tikvc__scan_new(tikvc_client *c, int kind, tkv_slice lower, tkv_slice upper, size_t limit,
                    unsigned flags, tc_scan **out);
/* Runs the walk to its end on the calling thread. */
int tikvc__scan_run(tc_scan *sc);
void tikvc__scan_free(tc_scan *sc);

/* ---- transactions ----------------------------------------------------------------------- */

/* Final statuses of other transactions learned while resolving their locks (commit ts, 0
 * for rolled back), so further locks of the same transaction skip CheckTxnStatus. */
typedef struct tc_status_cache {
    uint64_t lock_ts[16];
    uint64_t commit_ts[16];
    size_t n, next;
} tc_status_cache;

/* Resolves the lock @lock (met by a reader or writer at @caller_start_ts): asks the
 * primary's status (CheckTxnStatus, unless @known has it) and, when the owner committed or
 * is gone, commits or rolls back the lock (ResolveLock). *@ttl_left_ms > 0 when the owner is
 * alive and its lock must be waited for; *@bypass is set when the reader may ignore the lock
 * (the store pushed the owner's min_commit_ts past the reader). @known may be NULL.
 * Blocking. */
int tikvc__resolve_lock(tikvc_client *c, tc_backoff *bo, tc_status_cache *known,
                        const Kvrpcpb__LockInfo *lock, uint64_t caller_start_ts,
                        uint64_t *ttl_left_ms, bool *bypass);

/* Maps a KeyError to a TIKVC code with a message. */
int tikvc__key_error(const Kvrpcpb__KeyError *e, const char *what);

#endif /* TKV_CLIENT_TC_INT_H */
