/*
 * storage.h: TiKV's storage layer: raw KV and Percolator transactions over the kv seam.
 *
 * Owns: a stor (the storage instance) with its latches and its raw and transactional parts.
 * It serves kvrpcpb requests: the gRPC service (src/server) unpacks a request, looks its
 * method up in the method tables below, calls the method, and packs the response the method
 * hands to its completion callback. The same tables drive BatchCommands (batch_cmd is the
 * oneof number of the command in tikvpb.BatchCommandsRequest.Request) and, later,
 * authorization (write/admin flags).
 * Threads: a stor is thread-safe. Methods return at once; their callbacks run on a kv seam
 * thread, a storage worker, or the calling thread.
 * Errors: a method returns 0 when it took the request (its callback then runs exactly once)
 * or a negative code when it did not (the service answers with a gRPC error; the callback
 * never runs). Everything a client can act on (region errors, key errors, "not found") is in
 * the response message, as TiKV puts it there.
 * Ownership: the request message is borrowed until the callback has run (the service keeps
 * it alive). The response passed to the callback is borrowed for the callback only: the
 * service packs it before returning.
 * Dependencies: base, engine, the kv seam (kv.h), latches (latch.h), tkv_proto.
 */
#ifndef TKV_STORAGE_H
#define TKV_STORAGE_H

#include <protobuf-c/protobuf-c.h>

#include "storage/kv.h"
#include "storage/latch.h"

typedef struct stor stor;

/* Storage settings (TiKV's [storage] keys where TiKV has one). Plain data. */
typedef struct stor_opts {
    bool enable_ttl;        /* storage.enable-ttl: raw values carry an expiry (API V1TTL) */
    size_t latch_slots;     /* storage.scheduler-concurrency (default 2048000; tests less) */
    size_t max_key_bytes;   /* largest key accepted (default 8 KiB, TiKV's max-key-size) */
    size_t max_value_bytes; /* largest raw value accepted (default 8 MiB) */
    size_t max_batch_keys;  /* most keys or pairs in one batch request (default 100000) */
    size_t max_scan_limit;  /* most rows one scan returns (default 100000) */
    uint64_t store_id;      /* this store, for messages */
    /* Seconds since the Unix epoch that TTL expiry is measured against (TiKV's
     * ttl_current_ts); NULL uses the wall clock. Tests inject a clock so they never sleep.
     * Called from any thread. */
    uint64_t (*ttl_clock_s)(void *arg);
    void *ttl_clock_arg;
} stor_opts;

/* Fills @o with the defaults. */
void stor_opts_init(stor_opts *o);

/* Creates a storage over @kv (borrowed: it must outlive the storage) with options @o
 * (copied; NULL for defaults). Errors: -ENOMEM, -EINVAL. */
TKV_MUST_USE int stor_new(stor_kv *kv, const stor_opts *o, stor **out);

/* Stops background work, waits for it, and frees the storage. Every method callback must
 * have run. NULL is a no-op. */
void stor_free(stor *s);

/* Returns the kv seam the storage writes through. */
stor_kv *stor_get_kv(stor *s);

/* Returns the storage's latch table (write commands on overlapping keys are serialized by
 * it: transactional write commands and raw compare-and-swap). */
stor_latches *stor_get_latches(stor *s);

/* Returns the options the storage runs with. */
const stor_opts *stor_get_opts(const stor *s);

/* Deletes every version, lock and value of the transactional keys in [@start, @end) (both
 * memcomparable-encoded storage keys; an empty @end means the end of the key space) from
 * this whole store, below replication, as TiKV's UnsafeDestroyRange does. Runs on a storage
 * worker thread and may block on disk. Returns 0 or a negative code (@errmsg says why). */
typedef int (*stor_destroy_range_fn)(void *arg, tkv_slice start, tkv_slice end,
                                     char errmsg[TKV_ERRMSG_LEN]);

/* Installs the store-wide range destruction UnsafeDestroyRange uses (tikv-server deletes on
 * its kv engine). Without one, UnsafeDestroyRange deletes through the kv seam in the region
 * its context names, which is what a single-region storage (stor_kv_local) needs.
 * Thread: call before the storage serves requests. */
void stor_set_destroy_range(stor *s, stor_destroy_range_fn fn, void *arg);

/* Installs @d (a deadlock detector, storage/txn/lock_manager.h; owned by the storage from
 * now on) in place of the per-store one: tikv-server's cluster-wide detector. Thread: call
 * before the storage serves requests. */
struct txn_detector;
void stor_set_detector(stor *s, struct txn_detector *d);

/* A timestamp source (PD's TSO): queues one request and returns 0, then @cb(@ud, rc, ts)
 * runs exactly once on any thread (rc 0 with the timestamp, or an error); or returns a
 * negative code and @cb never runs. */
typedef int (*stor_tso_fn)(void *arg, void (*cb)(void *ud, int rc, uint64_t ts), void *ud);

/* Installs the timestamp source that re-syncs the store's max_ts after a leader change
 * (storage/txn/concurrency.h): until a region's max_ts is synced for its current term, 1PC
 * prewrites there fall back to 2PC. Without one, only term-0 (local) snapshots do 1PC.
 * @fn's callbacks must have run before stor_free returns (it waits for them).
 * Thread: call before the storage serves requests. */
void stor_set_tso(stor *s, stor_tso_fn fn, void *arg);

/* A stor_destroy_range_fn for a kv engine with TiKV's layout (@arg is the eng_db): range
 * deletions of the data keys ('z' + key) in the default, lock and write column families,
 * written with sync. Errors: engine errors (@errmsg has the engine's message), -ENOMEM. */
TKV_MUST_USE int stor_destroy_range_engine(void *arg, tkv_slice start, tkv_slice end,
                                           char errmsg[TKV_ERRMSG_LEN]);

/* ---- methods --------------------------------------------------------------------------- */

/* Hands a method's response to the service; @resp is borrowed for the call. */
typedef void (*stor_done_cb)(void *ud, const ProtobufCMessage *resp);

/* Serves one request. See "Errors" and "Ownership" above. */
typedef int (*stor_method_fn)(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud);

/* One kvrpcpb method. */
typedef struct stor_method {
    const char *name;                           /* "RawGet": path "/tikvpb.Tikv/RawGet" */
    const ProtobufCMessageDescriptor *req_desc; /* request type */
    const ProtobufCMessageDescriptor *resp_desc;
    int batch_cmd; /* BatchCommands oneof number, 0 when not batchable */
    bool write;    /* changes data */
    bool admin;    /* needs the admin role (UnsafeDestroyRange, SplitRegion, ...) */
    stor_method_fn fn;
} stor_method;

/* The raw KV methods (storage/raw*.c) and the transactional methods (storage/txn/), each a
 * table ending with an entry whose name is NULL. */
extern const stor_method stor_raw_methods[];
extern const stor_method stor_txn_methods[];

/* Returns the method called @name in either table, or NULL. */
const stor_method *stor_method_find(const char *name);

/* Returns the method with BatchCommands oneof number @batch_cmd, or NULL. */
const stor_method *stor_method_find_batch(int batch_cmd);

#endif /* TKV_STORAGE_H */
