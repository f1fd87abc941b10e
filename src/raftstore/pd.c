/*
 * pd.c: the PD worker (TiKV's pd_worker): store heartbeats with capacity and usage, region
 * heartbeats for leaders, AskBatchSplit / ReportBatchSplit, and store address resolution.
 * PD's answers on the region heartbeat stream (operators) arrive on a gRPC thread and are
 * routed to the region's peer.
 */
#include <stdlib.h>
#include <sys/statvfs.h>

#include "base/log.h"
#include "raftstore/rstore_int.h"

void rstore__on_pd_heartbeat(void *ud, const Pdpb__RegionHeartbeatResponse *resp)
{
    rstore *s = ud;
    if (resp->region_id == 0 || !atomic_load(&s->accepting))
        return;
    if (!resp->change_peer && !resp->transfer_leader && !resp->split_region &&
        !resp->change_peer_v2)
        return;
    /* Copy: the response is borrowed for this call only. */
    tkv_buf b;
    tkv_buf_init(&b);
    rstore__pack(&resp->base, &b);
    Pdpb__RegionHeartbeatResponse *copy =
        pdpb__region_heartbeat_response__unpack(NULL, b.len, b.data);
    tkv_buf_deinit(&b);
    if (copy == NULL)
        return;
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_PD_OP, resp->region_id);
    m->u.pd_op = copy;
    rstore__router_send_or_free(&s->router, m);
}

void rstore__schedule_store_heartbeat(rstore *s, size_t regions, size_t leaders)
{
    tkv_series_set(s->m.region_count, (double)regions);
    tkv_series_set(s->m.leader_count, (double)leaders);
    rstore_task *t = rstore__task_new(RSTORE_TASK_STORE_HB, 0);
    t->a = regions;
    t->b = leaders;
    rstore__worker_push(&s->pd_worker, t);
}

/* Returns the bytes @db occupies (SST files and memtables of every column family), and
 * updates tikv_engine_size_bytes for it. */
static uint64_t engine_size(rstore *s, eng_db *db, int which)
{
    uint64_t total = 0;
    for (int cf = 0; cf < ENG_CF_COUNT; cf++) {
        uint64_t sst = 0, mem = 0;
        TKV_IGNORE(eng_property_u64(db, (eng_cf)cf, ENG_PROP_TOTAL_SST_FILES_SIZE, &sst));
        TKV_IGNORE(eng_property_u64(db, (eng_cf)cf, ENG_PROP_CUR_SIZE_ALL_MEM_TABLES, &mem));
        if (s->m.engine_size[which][cf])
            tkv_series_set(s->m.engine_size[which][cf], (double)(sst + mem));
        total += sst + mem;
    }
    return total;
}

static void store_heartbeat(rstore *s, rstore_task *t)
{
    uint64_t used = engine_size(s, s->opts.kv, 0);
    if (s->opts.raft != s->opts.kv)
        used += engine_size(s, s->opts.raft, 1);
    uint64_t capacity = 0, available = 0;
    struct statvfs vfs;
    const char *dir = s->data_dir ? s->data_dir : s->snap_dir;
    if (statvfs(dir, &vfs) == 0) {
        capacity = (uint64_t)vfs.f_blocks * vfs.f_frsize;
        available = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    }
    if (s->opts.capacity_bytes) {
        capacity = s->opts.capacity_bytes;
        uint64_t left = capacity > used ? capacity - used : 0;
        available = TKV_MIN(available, left);
    }
    tkv_series_set(s->m.store_capacity, (double)capacity);
    tkv_series_set(s->m.store_available, (double)available);
    tkv_series_set(s->m.store_used, (double)used);
    if (s->opts.pd == NULL)
        return;
    Pdpb__StoreStats st = PDPB__STORE_STATS__INIT;
    st.store_id = s->store_id;
    st.capacity = capacity;
    st.available = available;
    st.used_size = used;
    st.region_count = (uint32_t)t->a;
    st.sending_snap_count = (uint32_t)atomic_load(&s->snaps_sending);
    st.receiving_snap_count = (uint32_t)atomic_load(&s->snaps_receiving);
    st.applying_snap_count = (uint32_t)atomic_load(&s->stat_applying);
    st.start_time = (uint32_t)s->start_time_s;
    int rc = pdc_store_heartbeat(s->opts.pd, &st, NULL);
    if (rc != 0)
        TKV_LOG_WARN("store heartbeat failed", TKV_LF_ERR("err", rc),
                     TKV_LF_STR("cause", pdc_errmsg(s->opts.pd)));
}

static void region_heartbeat(rstore *s, rstore_task *t)
{
    Pdpb__RegionHeartbeatRequest *hb =
        pdpb__region_heartbeat_request__unpack(NULL, t->buf.len, t->buf.data);
    if (hb == NULL)
        return;
    int rc = pdc_region_heartbeat_send(s->opts.pd, hb);
    if (rc != 0 && rc != TKV_EUNAVAILABLE)
        TKV_LOG_DEBUG("region heartbeat not sent", TKV_LF_U64("region_id", t->region_id),
                      TKV_LF_ERR("err", rc));
    protobuf_c_message_free_unpacked(&hb->base, NULL);
}

static void ask_split(rstore *s, rstore_task *t)
{
    rstore_split_ids *ids = t->split;
    t->split = NULL;
    Pdpb__AskBatchSplitResponse *resp = NULL;
    int rc = pdc_ask_batch_split(s->opts.pd, t->region, (uint32_t)ids->n_keys, &resp);
    if (rc == 0 && resp->n_ids != ids->n_keys)
        rc = TKV_ERPC;
    if (rc == 0) {
        size_t np = t->region->n_peers;
        ids->n_peers = np;
        ids->new_region_ids = tkv_xcalloc(ids->n_keys, sizeof(uint64_t));
        ids->new_peer_ids = tkv_xcalloc(ids->n_keys * (np ? np : 1), sizeof(uint64_t));
        for (size_t i = 0; i < ids->n_keys && rc == 0; i++) {
            const Pdpb__SplitID *sid = resp->ids[i];
            if (sid->n_new_peer_ids != np || sid->new_region_id == 0) {
                rc = TKV_ERPC;
                break;
            }
            ids->new_region_ids[i] = sid->new_region_id;
            memcpy(&ids->new_peer_ids[i * np], sid->new_peer_ids, np * sizeof(uint64_t));
        }
    }
    if (rc != 0)
        TKV_LOG_WARN("ask batch split failed", TKV_LF_U64("region_id", t->region_id),
                     TKV_LF_ERR("err", rc), TKV_LF_STR("cause", pdc_errmsg(s->opts.pd)));
    pdc_msg_free(resp);
    ids->rc = rc;
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_SPLIT_IDS, t->region_id);
    m->u.split_ids = ids;
    rstore__router_send_or_free(&s->router, m);
}

static void report_split(rstore *s, rstore_task *t)
{
    int rc =
        pdc_report_batch_split(s->opts.pd, (const Metapb__Region *const *)t->regions, t->n_regions);
    if (rc != 0)
        TKV_LOG_WARN("report batch split failed", TKV_LF_U64("region_id", t->region_id),
                     TKV_LF_ERR("err", rc));
}

static void resolve(rstore *s, rstore_task *t)
{
    Pdpb__GetStoreResponse *resp = NULL;
    int rc = pdc_get_store(s->opts.pd, t->a, &resp);
    if (rc == 0 && resp->store) {
        const Metapb__Store *st = resp->store;
        bool tomb = st->state == METAPB__STORE_STATE__Tombstone;
        const char *cert = "";
        for (size_t i = 0; i < st->n_labels; i++)
            if (st->labels[i]->key && strcmp(st->labels[i]->key, RSTORE_CERT_NAME_LABEL) == 0)
                cert = st->labels[i]->value ? st->labels[i]->value : "";
        rstore__transport_set_store(&s->transport, t->a, st->address ? st->address : "", cert,
                                    tomb ? RSTORE_STORE_TOMBSTONE : RSTORE_STORE_UP);
    } else if (rc == TKV_ESTALE) {
        rstore__transport_set_store(&s->transport, t->a, "", "", RSTORE_STORE_TOMBSTONE);
    } else if (rc == TKV_ENOTFOUND) {
        rstore__transport_set_store(&s->transport, t->a, "", "", RSTORE_STORE_UNKNOWN);
    } else {
        TKV_LOG_DEBUG("store address not resolved", TKV_LF_U64("store_id", t->a),
                      TKV_LF_ERR("err", rc));
    }
    pdc_msg_free(resp);
}

void rstore__run_pd_task(rstore *s, rstore_task *t)
{
    if (!atomic_load(&s->accepting))
        return; /* stopping: PD may be gone, do not wait for it */
    switch (t->type) {
    case RSTORE_TASK_STORE_HB:
        store_heartbeat(s, t);
        break;
    case RSTORE_TASK_REGION_HB:
        if (s->opts.pd)
            region_heartbeat(s, t);
        break;
    case RSTORE_TASK_ASK_SPLIT:
        if (s->opts.pd)
            ask_split(s, t);
        break;
    case RSTORE_TASK_REPORT_SPLIT:
        if (s->opts.pd)
            report_split(s, t);
        break;
    case RSTORE_TASK_RESOLVE:
        if (s->opts.pd)
            resolve(s, t);
        break;
    default:
        break;
    }
}
