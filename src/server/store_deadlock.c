/*
 * store_deadlock.c: where tikv-server's deadlock detector runs (see main_int.h).
 */
#include <stdio.h>

#include "server/main_int.h"

/* How long raftstore may take to say whether this store leads the first region. */
#define REGION_INFO_TIMEOUT_MS 1000

void srv_detector_source_init(srv_detector_source *src, rstore *rs, pdc_client *pd)
{
    memset(src, 0, sizeof(*src));
    pthread_mutex_init(&src->mu, NULL);
    src->rs = rs;
    src->pd = pd;
}

/* Asks PD and raftstore. Under src->mu. */
static void ask(srv_detector_source *src, srv_deadlock_leader *out)
{
    Pdpb__GetRegionResponse *r = NULL;
    if (pdc_get_region(src->pd, tkv_slice_of(NULL, 0), &r) != 0 || r->region == NULL) {
        pdc_msg_free(r);
        return;
    }
    uint64_t region_id = r->region->id;
    uint64_t leader_store = r->leader != NULL ? r->leader->store_id : 0;
    pdc_msg_free(r);
    /* This store's own view wins: PD learns about a new leader a heartbeat later. */
    rstore_region_info info;
    if (rstore_region_info_get(src->rs, region_id, REGION_INFO_TIMEOUT_MS, &info) == 0 &&
        info.found && info.is_leader) {
        out->known = true;
        out->local = true;
        return;
    }
    if (leader_store == 0 || leader_store == rstore_store_id(src->rs))
        return; /* PD still names us, or nobody: unknown until the next refresh */
    Pdpb__GetStoreResponse *s = NULL;
    if (pdc_get_store(src->pd, leader_store, &s) == 0 && s->store != NULL &&
        s->store->address != NULL && s->store->address[0] != '\0') {
        out->known = true;
        snprintf(out->addr, sizeof(out->addr), "%s", s->store->address);
    }
    pdc_msg_free(s);
}

void srv_detector_leader(void *ud, srv_deadlock_leader *out)
{
    srv_detector_source *src = ud;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&src->mu);
    if (!src->closed)
        ask(src, out);
    pthread_mutex_unlock(&src->mu);
}

void srv_detector_source_close(srv_detector_source *src)
{
    pthread_mutex_lock(&src->mu);
    src->closed = true;
    pthread_mutex_unlock(&src->mu);
}

void srv_detector_source_deinit(srv_detector_source *src)
{
    pthread_mutex_destroy(&src->mu);
}
