/*
 * tb.h: tikv-bench, the load generator that measures tikv-c and etcd the same way.
 *
 * One program drives both systems with closed-loop clients (each client sends its next
 * request when the previous one answered) and reports, per workload and concurrency, the
 * throughput, latency percentiles from a log-linear histogram, and what the servers spent
 * (CPU seconds per 1,000 operations and resident memory, read from /proc).
 *
 * Pieces (one file each):
 *   tb_hist.c   HdrHistogram-style latency histogram (log-linear buckets, mergeable);
 *   tb_zipf.c   YCSB's scrambled zipfian key chooser (constant 0.99) and uniform choice;
 *   tb_data.c   key and value layout, and the key-space ledger that proves every value read
 *               back was written for that key and is not older than the last write that
 *               finished before the read started;
 *   tb_run.c    the closed loop: N client slots, driven by an async driver's completions
 *               or by N threads, warm-up, measured window, stop;
 *   tb_proc.c   server CPU and RSS from /proc/PID/{stat,status};
 *   tb_drv_etcd.c, tb_drv_tikv.c   the drivers (etcd's KV API over src/rpc; libtikvc's raw and
 *               transactional APIs);
 *   tb_report.c results as JSON, and the report that merges runs (medians) into one table.
 *
 * Owns: everything it allocates; drivers own their connections.
 * Threads: a driver's completion callbacks run on the driver's library threads; the runner
 * keeps per-slot state touched by one operation at a time, so slots need no locks; the
 * ledger is lock-free (C11 atomics per key).
 * Errors: functions return 0 or a negative TKV_E* / -errno code; a failed operation is a
 * counted error with its message kept (the first few are printed), and a run with errors or
 * without completed operations exits non-zero.
 * Dependencies: base, rpc, tkv_proto (etcd), libtikvc (tkv_client), jansson.
 */
#ifndef TKV_TB_H
#define TKV_TB_H

#include <stdatomic.h>
#include <stdio.h>
#include <sys/types.h>

#include "base/base.h"

/* ---- latency histogram --------------------------------------------------------------- */

/* Values below 2^TB_HIST_SUB_BITS nanoseconds are exact; above, every power of two is split
 * into 2^(TB_HIST_SUB_BITS-1) linear sub-buckets (relative error below 0.8%). Values up to
 * 2^TB_HIST_MAX_BITS ns (about 39 hours) are kept; larger ones count in the last bucket. */
#define TB_HIST_SUB_BITS 8
#define TB_HIST_MAX_BITS 47
#define TB_HIST_BUCKETS                                                                            \
    ((1u << TB_HIST_SUB_BITS) +                                                                    \
     (TB_HIST_MAX_BITS - TB_HIST_SUB_BITS + 1) * (1u << (TB_HIST_SUB_BITS - 1)))

/* A latency histogram in nanoseconds. Plain data; not thread-safe. */
typedef struct tb_hist {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t min_ns;
    uint64_t max_ns;
    uint64_t buckets[TB_HIST_BUCKETS];
} tb_hist;

/* Empties @h. */
void tb_hist_reset(tb_hist *h);
/* Returns the bucket index of @ns. */
unsigned tb_hist_index(uint64_t ns);
/* Returns the largest value that falls in bucket @idx (HdrHistogram's "highest equivalent
 * value"). */
uint64_t tb_hist_bucket_high(unsigned idx);
/* Counts one value of @ns nanoseconds. */
void tb_hist_record(tb_hist *h, uint64_t ns);
/* Adds every value counted in @src to @dst. */
void tb_hist_merge(tb_hist *dst, const tb_hist *src);
/* Returns the value at percentile @p (0 < p <= 100): the highest equivalent value of the
 * bucket holding the ceil(p/100 * count)-th smallest value (exact max for p = 100); 0 when
 * empty. */
uint64_t tb_hist_percentile(const tb_hist *h, double p);
/* Returns the mean in nanoseconds (0 when empty). */
double tb_hist_mean(const tb_hist *h);

/* ---- key choice ---------------------------------------------------------------------- */

/* YCSB's zipfian constant. */
#define TB_ZIPF_THETA 0.99
/* YCSB's scrambled zipfian draws from this many items, then hashes into the key space. */
#define TB_ZIPF_ITEMS 10000000000ull

/* Returns the generalized harmonic number sum_{i=1..n} 1/i^theta (exact summation of the
 * first million terms, Euler-Maclaurin for the rest). */
double tb_zeta(uint64_t n, double theta);

/* A zipfian generator over [0, items) (Gray et al., "Quickly generating billion-record
 * synthetic databases", as YCSB implements it): item 0 is the most popular. Read-only
 * after tb_zipf_init, so threads may share it. */
typedef struct tb_zipf {
    uint64_t items;
    double theta;
    double zetan;
    double alpha;
    double eta;
    double half_pow_theta;
} tb_zipf;

/* Prepares @z for @items items with constant @theta (0 < theta < 1). */
void tb_zipf_init(tb_zipf *z, uint64_t items, double theta);
/* Returns the next item, drawn with the uniform random bits of @r. */
uint64_t tb_zipf_next(const tb_zipf *z, tkv_rng *r);
/* Returns YCSB's 64-bit FNV-1a hash of @v's eight bytes, least significant first, made
 * non-negative as a Java long (Math.abs). */
uint64_t tb_fnv64(uint64_t v);
/* Returns a key index in [0, @n_keys) from YCSB's scrambled zipfian: a zipfian item over
 * TB_ZIPF_ITEMS hashed with tb_fnv64, modulo @n_keys. @z must be initialised for
 * TB_ZIPF_ITEMS items. */
uint64_t tb_zipf_scrambled(const tb_zipf *z, tkv_rng *r, uint64_t n_keys);
/* Returns a uniform double in [0, 1). */
double tb_rng_double(tkv_rng *r);

/* ---- keys, values and the ledger ------------------------------------------------------ */

#define TB_KEY_LEN   16
#define TB_VALUE_LEN 100
/* Key prefixes: raw and etcd key space, transactional writes, accounts of the transfer
 * workload. Each key is the 4-byte prefix and a 12-digit decimal index (so keys sort by
 * index). */
#define TB_PREFIX_KV      "tkvb"
#define TB_PREFIX_TXN     "tkvt"
#define TB_PREFIX_ACCOUNT "tkva"
/* Every account starts with this balance; transfers keep the sum. */
#define TB_ACCOUNT_START 1000

/* Writes the key of @prefix (4 bytes) and @idx (< 10^12) into @out. */
void tb_key(const char *prefix, uint64_t idx, uint8_t out[TB_KEY_LEN]);

/* What a value says about itself. */
typedef struct tb_value_info {
    uint32_t epoch;   /* the tikv-bench invocation that wrote it */
    uint32_t version; /* per-key write number within that invocation (1 = preload) */
    int64_t balance;  /* accounts only (0 elsewhere) */
} tb_value_info;

/* Builds the 100-byte value for @key: the key, epoch, version, balance, a filler derived
 * from them, and a checksum over all of it. */
void tb_value_make(const uint8_t key[TB_KEY_LEN], uint32_t epoch, uint32_t version, int64_t balance,
                   uint8_t out[TB_VALUE_LEN]);
/* Parses @v as a value written for @key. Returns 0 and fills @info, or -1 with a reason in
 * @why (wrong length, checksum mismatch, written for another key). */
int tb_value_parse(const void *v, size_t len, const uint8_t key[TB_KEY_LEN], tb_value_info *info,
                   char *why, size_t why_len);

/* Per-key state of one key space (C11 atomics): versions handed out, the floor a
 * linearizable read must reach, and writes in flight. */
typedef struct tb_key_state {
    _Atomic uint32_t issued;
    _Atomic uint32_t floor;
    _Atomic uint32_t inflight;
} tb_key_state;

/* The ledger of one key space: it hands out write versions and checks reads.
 *
 * A write takes version v = ++issued (tb_ledger_write_begin). When it succeeds and it ran
 * alone on its key (no write of the key was in flight when it started, none started
 * before it finished), every later read must return v or newer: `floor` becomes v.
 * Writes that overlapped others set no floor, because the server may order them either
 * way. A read checks that the value was written for the key, that its version was handed
 * out (<= issued), and, when linearizable, that it is >= the floor seen when the read
 * started. Values of another epoch (an earlier invocation) are accepted only while this
 * invocation has set no floor on the key. */
typedef struct tb_ledger {
    char prefix[5];
    uint64_t n;
    uint32_t epoch;
    tb_key_state *keys;
} tb_ledger;

/* Allocates the ledger of @n keys under @prefix for invocation @epoch. Errors: -ENOMEM. */
TKV_MUST_USE int tb_ledger_init(tb_ledger *l, const char *prefix, uint64_t n, uint32_t epoch);
void tb_ledger_deinit(tb_ledger *l);

/* A write in progress (filled by tb_ledger_write_begin). */
typedef struct tb_write {
    uint64_t idx;
    uint32_t version;
    bool solo;
} tb_write;

/* Starts a write of key @idx: returns its version in @w. */
void tb_ledger_write_begin(tb_ledger *l, uint64_t idx, tb_write *w);
/* Ends the write @w; @ok when the server acknowledged it (it is then known to be applied),
 * false when it certainly was not applied (a rolled-back transaction). */
void tb_ledger_write_end(tb_ledger *l, const tb_write *w, bool ok);
/* Marks every key as written by this epoch with version @version, acknowledged and alone
 * (after a preload). */
void tb_ledger_set_all(tb_ledger *l, uint32_t version);
/* Returns the floor of key @idx, to be taken before a read is sent. */
uint32_t tb_ledger_read_begin(const tb_ledger *l, uint64_t idx);
/* Checks value @v read for key @idx (found: @v non-NULL). @floor is what tb_ledger_read_begin
 * returned; @linearizable asks for the floor check. Fills @info when non-NULL. Returns 0, or
 * -1 with the reason in @why. */
int tb_ledger_check(const tb_ledger *l, uint64_t idx, uint32_t floor, bool linearizable,
                    const void *v, size_t len, tb_value_info *info, char *why, size_t why_len);
/* Fills @key with the key of index @idx in @l's key space. */
void tb_ledger_key(const tb_ledger *l, uint64_t idx, uint8_t key[TB_KEY_LEN]);

/* A pair read back (borrowed bytes). */
typedef struct tb_pair {
    tkv_slice key;
    tkv_slice value;
} tb_pair;

/* Checks the @n pairs a range read returned: they must be exactly the keys @first,
 * @first+1, ... of @l (@want of them, in order), each value valid for its key and, read
 * linearizably, not below @floors[i] (taken before the read). Adds the accounts' balances to
 * *@sum when it is non-NULL. Returns 0, or -1 with the reason in @why. */
int tb_ledger_check_range(const tb_ledger *l, uint64_t first, uint64_t want, const uint32_t *floors,
                          const tb_pair *pairs, size_t n, int64_t *sum, char *why, size_t why_len);

/* Fills @end with the 4-byte key just past every key of @l's prefix (the prefix with its
 * last byte incremented): [key 0, @end) covers the whole key space. */
void tb_ledger_end(const tb_ledger *l, uint8_t end[4]);

/* Returns every key's floor (tkv_free it), taken before a read of the whole key space, or
 * NULL when out of memory. */
uint32_t *tb_ledger_floors(const tb_ledger *l);

/* Checks a read of all accounts: tb_ledger_check_range over the whole ledger, and the
 * balances must sum to n * TB_ACCOUNT_START. Returns 0, or -1 with the reason in @why. */
int tb_ledger_check_accounts(const tb_ledger *l, const uint32_t *floors, const tb_pair *pairs,
                             size_t n, char *why, size_t why_len);

/* ---- workloads and operations -------------------------------------------------------- */

typedef enum tb_workload {
    TB_W_PUT = 0,  /* put a uniformly chosen key */
    TB_W_GET,      /* linearizable get of a uniformly chosen key */
    TB_W_GET_SER,  /* serializable get (etcd only: it may be stale) */
    TB_W_YCSB_A,   /* zipfian keys, 50% get 50% put */
    TB_W_YCSB_B,   /* 95% get 5% put */
    TB_W_YCSB_C,   /* 100% get */
    TB_W_SCAN,     /* 100 consecutive keys from a uniformly chosen start */
    TB_W_TXN_PUT,  /* a transaction writing one key (etcd: Txn with a compare) */
    TB_W_TRANSFER, /* read 4 accounts, move money between them, write them back */
    TB_W__COUNT,
} tb_workload;

/* Returns the workload's name ("put", "ycsb-a", ...). */
const char *tb_workload_name(tb_workload w);
/* Returns the workload named @name, or -1. */
int tb_workload_parse(const char *name);

typedef enum tb_op_kind {
    TB_OP_PUT = 0,
    TB_OP_GET,
    TB_OP_GET_SER,
    TB_OP_SCAN,
    TB_OP_TXN_PUT,
    TB_OP_TRANSFER,
} tb_op_kind;

#define TB_SCAN_LEN    100
#define TB_TRANSFER_N  4
#define TB_ERR_MSG_LEN 256

/* One operation of one client slot: the runner fills the request part, the driver answers
 * through tb_op_done. */
typedef struct tb_op {
    tb_op_kind kind;
    uint64_t idx[TB_TRANSFER_N]; /* key index (scans: first key; transfers: 4 accounts) */
    int64_t amount[2];           /* transfer: moved from idx[0] to idx[1], idx[2] to idx[3] */
    uint64_t start_ns;
    /* Answer. */
    int rc;           /* 0 or an error */
    uint32_t retries; /* transaction conflicts retried inside the operation */
    char err[TB_ERR_MSG_LEN];
    /* Driver's scratch space for multi-step operations. */
    void *drv_state;
    int client; /* the slot's number, 0..clients-1 */
    struct tb_slot *slot;
    struct tb_waiter *waiter; /* set by tb_exec_one instead of slot */
} tb_op;

/* ---- drivers ------------------------------------------------------------------------- */

typedef struct tb_driver tb_driver;

/* What every driver gets at open. */
typedef struct tb_env {
    const char *endpoints; /* PD endpoints (tikv) or etcd client endpoints (etcd) */
    tb_ledger *kv;         /* TB_PREFIX_KV key space (preloaded) */
    tb_ledger *txn;        /* TB_PREFIX_TXN key space (written by txn-put) */
    tb_ledger *accounts;   /* TB_PREFIX_ACCOUNT key space (transfer) */
    int conns;             /* connections to open where the driver decides (etcd) */
    int timeout_ms;        /* per request */
    bool no_one_pc;        /* tikv-txn: always two-phase commit (libtikvc txn_one_pc = 0) */
} tb_env;

typedef struct tb_driver_ops {
    const char *name;   /* "tikv-raw", "tikv-txn", "etcd" */
    const char *system; /* "tikv-c" or "etcd" */
    /* Connects. Errors: a negative code with the message in @err. */
    int (*open)(const tb_env *env, tb_driver **out, char *err, size_t err_len);
    void (*close)(tb_driver *d);
    /* Whether the driver runs workload @w. */
    bool (*supports)(const tb_driver *d, tb_workload w);
    /* Writes every key of the ledger @l (version 1) with @threads concurrent requests. */
    int (*preload)(tb_driver *d, tb_ledger *l, int threads, char *err, size_t err_len);
    /* Starts @op and returns at once; tb_op_done(op) is called exactly once later, from any
     * thread, but never from inside submit itself (NULL when the driver only has the
     * blocking form). Returns 0, or an error when the operation could not start (tb_op_done
     * is then not called). */
    int (*submit)(tb_driver *d, tb_op *op);
    /* Runs @op on the calling thread and sets op->rc / op->err (NULL when only async). */
    void (*exec)(tb_driver *d, tb_op *op);
    /* Reads every account in one consistent snapshot and checks that the balances sum to
     * n * TB_ACCOUNT_START and every value is valid (NULL: no transfer workload). */
    int (*check_accounts)(tb_driver *d, char *err, size_t err_len);
    /* Frees what the driver keeps in op->drv_state (NULL: nothing), after the cell. */
    void (*op_release)(tb_driver *d, tb_op *op);
} tb_driver_ops;

extern const tb_driver_ops tb_drv_etcd;
extern const tb_driver_ops tb_drv_tikv_raw;
extern const tb_driver_ops tb_drv_tikv_txn;

/* Returns the driver named @name, or NULL. */
const tb_driver_ops *tb_driver_find(const char *name);

/* Sets @op's error: rc and a formatted message. */
void tb_op_fail(tb_op *op, int rc, const char *fmt, ...) TKV_PRINTF(3, 4);

/* ---- /proc sampling ------------------------------------------------------------------ */

#define TB_MAX_PIDS 16

/* CPU and memory of a set of processes at one instant. */
typedef struct tb_proc_sample {
    double cpu_s;       /* utime + stime, summed */
    uint64_t rss_bytes; /* VmRSS, summed */
    uint64_t hwm_bytes; /* VmHWM (peak RSS), summed */
    int missing;        /* processes that could not be read (exited) */
} tb_proc_sample;

/* Samples the processes @pids[0..n). Processes that cannot be read count in ->missing. */
void tb_proc_sample_pids(const pid_t *pids, int n, tb_proc_sample *out);
/* Parses utime + stime (clock ticks) from the contents of /proc/PID/stat. Returns 0 or -1. */
int tb_proc_parse_stat(const char *text, uint64_t *ticks);
/* Parses the value in kB of @field ("VmRSS") from the contents of /proc/PID/status into
 * bytes. Returns 0 or -1. */
int tb_proc_parse_status(const char *text, const char *field, uint64_t *bytes);

/* ---- the closed loop ----------------------------------------------------------------- */

typedef enum tb_mode {
    TB_MODE_AUTO = 0, /* async when the driver has submit, else threads */
    TB_MODE_ASYNC,    /* one in-flight operation per slot, driven by completions */
    TB_MODE_THREADS,  /* one thread per slot */
} tb_mode;

/* One cell of the matrix. */
typedef struct tb_cell {
    tb_workload workload;
    int clients;
    uint64_t warmup_ms;
    uint64_t measure_ms;
    tb_mode mode;
    uint64_t seed;
    const pid_t *pids; /* server processes (may be NULL) */
    int n_pids;
} tb_cell;

#define TB_MAX_ERRS_KEPT 5

/* What a cell measured. */
typedef struct tb_result {
    char system[16];
    char driver[16];
    tb_workload workload;
    int clients;
    uint64_t keys;
    const char *mode;    /* "async" or "threads" */
    double seconds;      /* measured window */
    uint64_t ops;        /* completed in the window */
    uint64_t total_ops;  /* completed in warm-up, window and drain */
    uint64_t errors;     /* failed operations, whole run */
    uint64_t retries;    /* transaction conflicts retried, in the window */
    tb_hist hist;        /* latencies of the window's operations */
    double server_cpu_s; /* -1 without pids */
    uint64_t server_rss_bytes;
    uint64_t server_hwm_bytes;
    double client_cpu_s;
    char errs[TB_MAX_ERRS_KEPT][TB_ERR_MSG_LEN];
    int n_errs;
} tb_result;

/* Runs @cell on driver @d with the ledgers in @env and fills @out. Returns 0 when the cell
 * ran (its operations may still have failed: out->errors), or an error when it could not
 * start. */
int tb_run_cell(const tb_driver_ops *ops, tb_driver *d, const tb_env *env, const tb_cell *cell,
                tb_result *out);

/* Called by drivers when @op finished (async drivers, from their threads). */
void tb_op_done(tb_op *op);

/* Runs @op alone on the calling thread (the driver's blocking form, or submit and wait) and
 * returns its rc; for probes outside a cell. op->client must be set. */
int tb_exec_one(const tb_driver_ops *ops, tb_driver *d, tb_op *op);

/* An op_release for drivers whose op->drv_state is one tkv_malloc'd block. */
void tb_op_release_state(tb_driver *d, tb_op *op);

/* Work function of tb_parallel_chunks: handles indexes [@lo, @hi); returns 0 or an error
 * with its message in @err. */
typedef int (*tb_chunk_fn)(void *arg, uint64_t lo, uint64_t hi, char *err, size_t err_len);

/* Runs @fn over [0, @n) in chunks of @chunk on @threads threads; the first error stops the
 * rest and is returned with its message. */
int tb_parallel_chunks(uint64_t n, uint64_t chunk, int threads, tb_chunk_fn fn, void *arg,
                       char *err, size_t err_len);

/* ---- results and the report ---------------------------------------------------------- */

/* Appends @r to the JSON array @results (a json_t *, opaque here to keep jansson out of the
 * header). Returns 0 or -ENOMEM. */
TKV_MUST_USE int tb_result_to_json(const tb_result *r, void *results);

/* Merges the result files @paths[0..n) (written by --json, or by the Go client) into one
 * table: each figure is the median over the files; rows pair tikv-c, client-go and etcd on
 * the same workload and concurrency with tikv-c / etcd ratios, and rows with more keys than
 * @base_keys show their cost relative to the same row at @base_keys. Prints to @f; with
 * @json_out, also writes the merged table there. Returns 0, or -1 with a message on stderr. */
int tb_report(const char *const *paths, int n, uint64_t base_keys, FILE *f, const char *json_out);

/* Returns the median of @v[0..n) (sorts @v). */
double tb_median(double *v, int n);

#endif /* TKV_TB_H */
