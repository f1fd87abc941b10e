/*
 * pd_hbstream.c: the RegionHeartbeat streams. A store opens one (or more, after
 * reconnecting); the newest stream that carried a heartbeat from a store is where PD's
 * commands for regions led by that store go (PD's heartbeat stream binding). Sends only
 * queue (rpc_call_send_msg), so they may happen under the cluster mutex; a stream with more
 * than PD_HB_MAX_QUEUED undelivered messages drops new ones (the next heartbeat re-sends
 * the current step anyway).
 */
#include "base/log.h"
#include "pd/pd_int.h"
#include "rpc/rpc.h"

#define PD_HB_MAX_QUEUED 1024

void pd__hb_init(pd_hbstreams *hb, uint64_t cluster_id)
{
    memset(hb, 0, sizeof(*hb));
    pthread_mutex_init(&hb->mu, NULL);
    pd__map_init(&hb->by_store);
    hb->cluster_id = cluster_id;
}

void pd__hb_deinit(pd_hbstreams *hb)
{
    TKV_ASSERT(hb->list == NULL);
    pd__map_deinit(&hb->by_store);
    pthread_mutex_destroy(&hb->mu);
}

int pd__hb_open(pd_hbstreams *hb, rpc_call *call, pd_hb_stream **out)
{
    pd_hb_stream *st = tkv_calloc(1, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    st->call = call;
    pthread_mutex_lock(&hb->mu);
    st->next = hb->list;
    hb->list = st;
    pthread_mutex_unlock(&hb->mu);
    *out = st;
    return 0;
}

void pd__hb_bind(pd_hbstreams *hb, pd_hb_stream *st, uint64_t store_id)
{
    if (store_id == 0)
        return;
    pthread_mutex_lock(&hb->mu);
    if (pd__map_get(&hb->by_store, store_id) != st) {
        if (pd__map_put(&hb->by_store, store_id, st) == 0) {
            st->store_id = store_id;
            TKV_LOG_INFO("region heartbeat stream bound", TKV_LF_U64("store_id", store_id));
        }
    }
    pthread_mutex_unlock(&hb->mu);
}

/* Queues @m on @st; hb->mu held. */
static void send_locked(pd_hbstreams *hb, pd_hb_stream *st, const Pdpb__RegionHeartbeatResponse *m)
{
    if (st->finished || rpc_call_pending_sends(st->call) >= PD_HB_MAX_QUEUED ||
        rpc_call_send_msg(st->call, &m->base) != 0)
        hb->dropped++;
}

void pd__hb_send_on(pd_hbstreams *hb, pd_hb_stream *st, const Pdpb__RegionHeartbeatResponse *m)
{
    pthread_mutex_lock(&hb->mu);
    send_locked(hb, st, m);
    pthread_mutex_unlock(&hb->mu);
}

void pd__hb_send(void *ud, uint64_t store_id, const Pdpb__RegionHeartbeatResponse *m)
{
    pd_hbstreams *hb = ud;
    pthread_mutex_lock(&hb->mu);
    pd_hb_stream *st = pd__map_get(&hb->by_store, store_id);
    if (st != NULL)
        send_locked(hb, st, m);
    else
        hb->dropped++;
    pthread_mutex_unlock(&hb->mu);
}

void pd__hb_close(pd_hbstreams *hb, pd_hb_stream *st, int code, const char *msg)
{
    pthread_mutex_lock(&hb->mu);
    if (st->store_id != 0 && pd__map_get(&hb->by_store, st->store_id) == st)
        TKV_IGNORE(pd__map_del(&hb->by_store, st->store_id) == NULL);
    for (pd_hb_stream **pp = &hb->list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == st) {
            *pp = st->next;
            break;
        }
    }
    st->finished = true;
    rpc_call_finish(st->call, (rpc_code)code, msg);
    pthread_mutex_unlock(&hb->mu);
    tkv_free(st);
}
