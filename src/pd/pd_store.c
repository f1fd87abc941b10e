/*
 * pd_store.c: a store as PD sees it: its meta (from PutStore/Bootstrap), its last
 * heartbeat's statistics, and the state derived from both.
 *
 * metapb's state is Up, Offline or Tombstone (set by PutStore and the HTTP API). An Up store
 * is further Disconnected when it has not heartbeaten for store-disconnect-time (20 s), and
 * Down after max-store-down-time (30 min): a Down store's peers get replaced. After a PD
 * restart every store starts with a fresh grace period (heartbeat age counts from the
 * start), so a restarted PD does not declare the cluster down.
 */
#include "pd/pd_int.h"
#include "rpc/rpc.h"

pd_store_status pd__store_status(const pd_store *s, uint64_t now_ms, const pd_sched_cfg *cfg)
{
    switch (s->meta->state) {
    case METAPB__STORE_STATE__Offline:
        return PD_STORE_OFFLINE;
    case METAPB__STORE_STATE__Tombstone:
        return PD_STORE_TOMBSTONE;
    default:
        break;
    }
    uint64_t age = now_ms > s->last_heartbeat_ms ? now_ms - s->last_heartbeat_ms : 0;
    if (age > cfg->max_store_down_time_ms)
        return PD_STORE_DOWN;
    if (age > cfg->store_disconnect_ms)
        return PD_STORE_DISCONNECTED;
    return PD_STORE_UP;
}

const char *pd__store_status_name(pd_store_status st)
{
    switch (st) {
    case PD_STORE_UP:
        return "Up";
    case PD_STORE_DISCONNECTED:
        return "Disconnected";
    case PD_STORE_DOWN:
        return "Down";
    case PD_STORE_OFFLINE:
        return "Offline";
    case PD_STORE_TOMBSTONE:
        return "Tombstone";
    }
    return "Unknown";
}

const char *pd__store_label(const pd_store *s, const char *key)
{
    for (size_t i = 0; i < s->meta->n_labels; i++) {
        const Metapb__StoreLabel *l = s->meta->labels[i];
        if (l->key != NULL && strcmp(l->key, key) == 0)
            return l->value != NULL ? l->value : "";
    }
    return NULL;
}

void pd__store_free(pd_store *s)
{
    if (s == NULL)
        return;
    rpc_msg_free(&s->meta->base);
    if (s->stats != NULL)
        rpc_msg_free(&s->stats->base);
    tkv_free(s);
}
