/*
 * metrics.c: raftstore's Prometheus series, under TiKV's metric names and labels.
 */
#include "raftstore/rstore_int.h"

void rstore__metrics_init(rstore_metrics *m)
{
    memset(m, 0, sizeof(*m));
    tkv_metric *prop = tkv_metric_counter("tikv_raftstore_proposal_total",
                                          "Total number of proposal made.", "type");
    m->proposal_all = tkv_metric_with(prop, "all");
    m->proposal_normal = tkv_metric_with(prop, "normal");
    m->proposal_conf_change = tkv_metric_with(prop, "conf_change");
    m->proposal_read_index = tkv_metric_with(prop, "read_index");
    m->proposal_local_read = tkv_metric_with(prop, "local_read");
    m->proposal_transfer_leader = tkv_metric_with(prop, "transfer_leader");
    m->apply_log_duration = tkv_metric_with(
        tkv_metric_histogram("tikv_raftstore_apply_log_duration_seconds",
                             "Bucketed histogram of peer applying log duration.", NULL, NULL, 0));
    m->append_log_duration = tkv_metric_with(
        tkv_metric_histogram("tikv_raftstore_append_log_duration_seconds",
                             "Bucketed histogram of peer appending log duration.", NULL, NULL, 0));
    m->commit_log_duration = tkv_metric_with(
        tkv_metric_histogram("tikv_raftstore_commit_log_duration_seconds",
                             "Bucketed histogram of peer commits logs duration.", NULL, NULL, 0));
    tkv_metric *rc = tkv_metric_gauge("tikv_raftstore_region_count",
                                      "Number of regions collected in region_collector.", "type");
    m->region_count = tkv_metric_with(rc, "region");
    m->leader_count = tkv_metric_with(rc, "leader");
    tkv_metric *ss = tkv_metric_gauge("tikv_store_size_bytes", "Size of storage.", "type");
    m->store_capacity = tkv_metric_with(ss, "capacity");
    m->store_available = tkv_metric_with(ss, "available");
    m->store_used = tkv_metric_with(ss, "used");
    tkv_metric *es =
        tkv_metric_gauge("tikv_engine_size_bytes", "Sizes of each column families", "db,type");
    const char *dbs[2] = {"kv", "raft"};
    for (int d = 0; d < 2; d++)
        for (int cf = 0; cf < ENG_CF_COUNT; cf++)
            m->engine_size[d][cf] = tkv_metric_with(es, dbs[d], eng_cf_name((eng_cf)cf));
    tkv_metric *sent = tkv_metric_counter("tikv_raftstore_raft_sent_message_total",
                                          "Total number of raft ready sent messages.", "type");
    for (int t = 0; t < RAFT_MSG_TYPE_COUNT; t++)
        m->raft_sent[t] = tkv_metric_with(sent, raft_message_type_name((raft_message_type)t));
    tkv_metric *snap = tkv_metric_counter("tikv_raftstore_snapshot_traffic_total",
                                          "Total number of raftstore snapshot traffic.", "type");
    m->snapshot_sent = tkv_metric_with(snap, "sent");
    m->snapshot_received = tkv_metric_with(snap, "received");
    m->snapshot_applied = tkv_metric_with(snap, "applied");
    tkv_metric *refused = tkv_metric_counter(
        "tikv_raftstore_raft_refused_total",
        "Incoming replication streams refused and forged raft messages dropped.", "type");
    m->raft_refused_stream = tkv_metric_with(refused, "stream");
    m->raft_refused_message = tkv_metric_with(refused, "message");
    m->raft_ready_handled = tkv_metric_with(tkv_metric_counter(
        "tikv_raftstore_raft_ready_handled_total", "Total number of raft ready handled.", NULL));
}
