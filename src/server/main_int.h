/*
 * main_int.h: what tikv-server's own files share (not API): the pieces of the executable
 * that need raftstore and the PD client, which the tkv_server library does not link.
 */
#ifndef TKV_SERVER_MAIN_INT_H
#define TKV_SERVER_MAIN_INT_H

#include <pthread.h>

#include "pdc/pdc.h"
#include "raftstore/raftstore.h"
#include "server/server.h"
#include "storage/gc/gc.h"

/* The store's MVCC garbage collection (TiKV's GcManager): a storage GC worker that polls
 * PD's GC safe point (GetGCSafePoint, which clients such as client-go's KVStore.GC advance
 * after resolving older locks) every @interval_ms and, when it advances, collects the
 * regions this store leads through KvGC. */
typedef struct srv_store_gc srv_store_gc;

/* Starts the GC over storage @s, raftstore @rs and PD client @pd (all borrowed: they must
 * outlive it). Errors: -ENOMEM, -errno (thread). */
TKV_MUST_USE int srv_store_gc_start(stor *s, rstore *rs, pdc_client *pd, uint64_t interval_ms,
                                    srv_store_gc **out);

/* Stops the GC thread (a region being collected finishes first) and frees it. Call before
 * raftstore stops. NULL is a no-op. */
void srv_store_gc_stop(srv_store_gc *g);

/* Where the cluster-wide deadlock detector runs, for srv_deadlock (TiKV asks PD for the
 * leader of the region holding the empty key): this store when raftstore says it leads that
 * region, else the leader PD names, at the address PD has for its store. */
typedef struct srv_detector_source {
    pthread_mutex_t mu;
    bool closed;
    rstore *rs;
    pdc_client *pd;
} srv_detector_source;

/* Prepares @src over @rs and @pd (borrowed until srv_detector_source_close). */
void srv_detector_source_init(srv_detector_source *src, rstore *rs, pdc_client *pd);

/* A srv_deadlock_leader_fn over a srv_detector_source (@ud). Answers "unknown" once the
 * source is closed. */
void srv_detector_leader(void *ud, srv_deadlock_leader *out);

/* Stops answering: waits for a question in progress, after which raftstore and the PD client
 * may go. Idempotent. */
void srv_detector_source_close(srv_detector_source *src);

/* Releases @src (after srv_detector_source_close and once the detector is freed). */
void srv_detector_source_deinit(srv_detector_source *src);

#endif /* TKV_SERVER_MAIN_INT_H */
