/*
 * fuzz_pd.h: what the fuzz targets over PD share (fuzz_cfg_bind.c, pd/fuzz_pd_grpc.c,
 * pd/fuzz_pd_http.c).
 * Dependencies: src/pd (pd_int.h).
 */
#ifndef TKV_FUZZ_PD_H
#define TKV_FUZZ_PD_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pd/pd_int.h"

/* Returns whether two scheduling configurations hold the same settings. */
static inline bool fuzz_pd_sched_equal(const pd_sched_cfg *a, const pd_sched_cfg *b)
{
    return a->max_store_down_time_ms == b->max_store_down_time_ms &&
           a->leader_schedule_limit == b->leader_schedule_limit &&
           a->region_schedule_limit == b->region_schedule_limit &&
           a->replica_schedule_limit == b->replica_schedule_limit &&
           a->patrol_region_interval_ms == b->patrol_region_interval_ms &&
           a->split_merge_interval_ms == b->split_merge_interval_ms &&
           a->max_snapshot_count == b->max_snapshot_count &&
           a->max_pending_peer_count == b->max_pending_peer_count &&
           a->fast_operator_timeout_ms == b->fast_operator_timeout_ms &&
           a->slow_operator_timeout_ms == b->slow_operator_timeout_ms &&
           a->store_disconnect_ms == b->store_disconnect_ms && a->max_replicas == b->max_replicas &&
           strcmp(a->location_labels, b->location_labels) == 0;
}

/* A cluster clock for pd__cluster_new: reads the uint64_t (milliseconds) at @ud. */
static inline uint64_t fuzz_pd_read_now(void *ud)
{
    return *(const uint64_t *)ud;
}

#endif /* TKV_FUZZ_PD_H */
