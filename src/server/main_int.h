/*
 * main_int.h: what tikv-server's own files share (not API): the pieces of the executable
 * that need raftstore and the PD client, which the tkv_server library does not link.
 */
#ifndef TKV_SERVER_MAIN_INT_H
#define TKV_SERVER_MAIN_INT_H

#include "pdc/pdc.h"
#include "raftstore/raftstore.h"
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

#endif /* TKV_SERVER_MAIN_INT_H */
