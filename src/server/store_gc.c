/*
 * store_gc.c: tikv-server's GC: the storage GC worker fed with PD's safe point and the
 * regions raftstore leads here (see main_int.h).
 */
#include "base/log.h"
#include "server/main_int.h"

/* How long to wait for raftstore's answer about one region. */
#define REGION_INFO_TIMEOUT_MS 2000

struct srv_store_gc {
    rstore *rs;
    pdc_client *pd;
    stor_gc_worker *w;
    uint64_t last_seen; /* the safe point last read from PD (for the log) */
};

static uint64_t safe_point(void *ud)
{
    srv_store_gc *g = ud;
    uint64_t sp = 0;
    int rc = pdc_get_gc_safe_point(g->pd, &sp);
    if (rc != 0) {
        TKV_LOG_WARN("failed to get safe point from PD", TKV_LF_STR("err", pdc_errmsg(NULL)));
        return 0; /* nothing is collected this round */
    }
    if (sp != g->last_seen) {
        TKV_LOG_INFO("gc_worker: update safe point", TKV_LF_U64("safe_point", sp),
                     TKV_LF_U64("old_safe_point", g->last_seen));
        g->last_seen = sp;
    }
    return sp;
}

/* Lists the initialized regions this store leads, with their epochs and peers. */
static size_t regions(void *ud, stor_ctx *out, size_t cap)
{
    srv_store_gc *g = ud;
    size_t n_ids = rstore_region_ids(g->rs, NULL, 0);
    uint64_t *ids = tkv_calloc(n_ids ? n_ids : 1, sizeof(*ids));
    if (ids == NULL)
        return 0;
    n_ids = TKV_MIN(n_ids, rstore_region_ids(g->rs, ids, n_ids));
    size_t n = 0;
    for (size_t i = 0; i < n_ids; i++) {
        rstore_region_info info;
        if (rstore_region_info_get(g->rs, ids[i], REGION_INFO_TIMEOUT_MS, &info) != 0 ||
            !info.found || !info.is_leader || !info.initialized)
            continue;
        if (n < cap) {
            stor_ctx *c = &out[n];
            memset(c, 0, sizeof(*c));
            c->region_id = info.region_id;
            c->has_epoch = true;
            c->conf_ver = info.conf_ver;
            c->version = info.version;
            c->has_peer = true;
            c->peer_id = info.peer_id;
            c->store_id = rstore_store_id(g->rs);
        }
        n++;
    }
    tkv_free(ids);
    return n;
}

int srv_store_gc_start(stor *s, rstore *rs, pdc_client *pd, uint64_t interval_ms,
                       srv_store_gc **out)
{
    srv_store_gc *g = tkv_calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    g->rs = rs;
    g->pd = pd;
    stor_gc_opts o = {
        .safe_point = safe_point, .regions = regions, .ud = g, .interval_ms = interval_ms};
    int rc = stor_gc_worker_new(s, &o, &g->w);
    if (rc != 0) {
        tkv_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void srv_store_gc_stop(srv_store_gc *g)
{
    if (g == NULL)
        return;
    stor_gc_worker_free(g->w);
    tkv_free(g);
}
