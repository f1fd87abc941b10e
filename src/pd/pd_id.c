/*
 * pd_id.c: the ID allocator (store, region and peer ids).
 *
 * IDs come from batches: the end of the current batch is persisted (with fsync) before any
 * id of the batch is handed out, so a restart resumes after the persisted end and never
 * hands out an id twice. Up to one batch of ids is skipped per restart, as in PD.
 */
#include "base/log.h"
#include "pd/pd_int.h"

int pd__id_init(pd_id_alloc *a, pd_storage *st, uint64_t step)
{
    memset(a, 0, sizeof(*a));
    a->st = st;
    a->step = step ? step : PD_ID_STEP;
    bool found = false;
    uint64_t end = 0;
    int rc = pd__storage_get_u64(st, PD_KEY_ALLOC_ID, &end, &found);
    if (rc != 0)
        return rc;
    a->base = a->end = found ? end : 0;
    pthread_mutex_init(&a->mu, NULL);
    return 0;
}

void pd__id_deinit(pd_id_alloc *a)
{
    pthread_mutex_destroy(&a->mu);
}

int pd__id_alloc_n(pd_id_alloc *a, size_t n, uint64_t *ids)
{
    pthread_mutex_lock(&a->mu);
    int rc = 0;
    size_t have = (size_t)(a->end - a->base);
    if (have < n) {
        uint64_t want = n - have;
        uint64_t batches = (want + a->step - 1) / a->step;
        uint64_t new_end = a->end + batches * a->step;
        rc = pd__storage_put_u64(a->st, PD_KEY_ALLOC_ID, new_end, true);
        if (rc != 0) {
            TKV_LOG_ERROR("persist id allocator bound", TKV_LF_ERR("err", rc),
                          TKV_LF_STR("cause", pd__storage_errmsg(a->st)));
        } else {
            TKV_LOG_DEBUG("id allocator bound persisted", TKV_LF_U64("end", new_end));
            a->end = new_end;
        }
    }
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            ids[i] = ++a->base;
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int pd__id_alloc(pd_id_alloc *a, uint64_t *id)
{
    return pd__id_alloc_n(a, 1, id);
}

uint64_t pd__id_current(pd_id_alloc *a)
{
    pthread_mutex_lock(&a->mu);
    uint64_t v = a->base;
    pthread_mutex_unlock(&a->mu);
    return v;
}
