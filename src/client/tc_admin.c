/*
 * tc_admin.c: cluster information from PD for tools (tikv-ctl): regions, stores, members,
 * timestamps, converted from protobuf into the plain structs of tikvc.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/codec.h"
#include "client/tc_int.h"

static int pd_fail(int rc, const char *what)
{
    return tikvc__fail(rc == TKV_ENOTFOUND ? TIKVC_EREGION : tikvc__code(rc), "%s: %s", what,
                       pdc_errmsg(NULL));
}

static int check(tikvc_client *c, const void *out)
{
    if (c == NULL || out == NULL)
        return tikvc__fail(TIKVC_EINVAL, "NULL argument");
    return 0;
}

static int copy_bytes(tikvc_buf *b, const void *p, size_t n)
{
    b->data = malloc(n ? n : 1);
    if (b->data == NULL)
        return TIKVC_ENOMEM;
    if (n > 0)
        memcpy(b->data, p, n);
    b->len = n;
    return 0;
}

static char *copy_str(const char *s)
{
    return strdup(s != NULL ? s : "");
}

/* Converts a PD region (keys decoded in transactional mode). */
static int region_out(const Metapb__Region *m, const Metapb__Peer *leader, int mode,
                      tikvc_region *out)
{
    memset(out, 0, sizeof(*out));
    tc_region *r = NULL;
    int rc = tikvc__region_from_pb(mode == TIKVC_MODE_TXN, m, leader, 0, &r);
    if (rc != 0)
        return rc;
    out->id = r->id;
    out->conf_ver = r->conf_ver;
    out->version = r->version;
    out->peers = calloc(m->n_peers ? m->n_peers : 1, sizeof(*out->peers));
    rc = out->peers == NULL ? TIKVC_ENOMEM : 0;
    if (rc == 0)
        rc = copy_bytes(&out->start, r->start.data, r->start.len);
    if (rc == 0)
        rc = copy_bytes(&out->end, r->end.data, r->end.len);
    for (size_t i = 0; rc == 0 && i < m->n_peers; i++) {
        out->peers[i].id = m->peers[i]->id;
        out->peers[i].store_id = m->peers[i]->store_id;
        out->peers[i].role = (int)m->peers[i]->role;
    }
    out->n_peers = m->n_peers;
    if (leader != NULL && leader->id != 0) {
        out->leader_peer_id = leader->id;
        out->leader_store_id = leader->store_id;
    }
    tikvc__region_unref(r);
    if (rc != 0) {
        tikvc_region_free(out);
        return tikvc__fail(rc, "out of memory");
    }
    return 0;
}

void tikvc_region_free(tikvc_region *r)
{
    if (r == NULL)
        return;
    tikvc_buf_free(&r->start);
    tikvc_buf_free(&r->end);
    free(r->peers);
    r->peers = NULL;
    r->n_peers = 0;
}

void tikvc_regions_free(tikvc_region *r, size_t n)
{
    for (size_t i = 0; r != NULL && i < n; i++)
        tikvc_region_free(&r[i]);
    free(r);
}

int tikvc_pd_region_by_key(tikvc_client *c, const void *key, size_t key_len, int mode,
                           tikvc_region *out)
{
    int rc = check(c, out);
    if (rc != 0)
        return rc;
    tkv_buf enc;
    tkv_buf_init(&enc);
    tkv_slice k = tkv_slice_of(key, key_len);
    if (mode == TIKVC_MODE_TXN) {
        if (tkv_codec_encode_bytes(&enc, k) != 0)
            return tikvc__fail(TIKVC_ENOMEM, "out of memory");
        k = tkv_buf_slice(&enc);
    }
    Pdpb__GetRegionResponse *r = NULL;
    rc = pdc_get_region(c->pd, k, &r);
    tkv_buf_deinit(&enc);
    if (rc != 0)
        return pd_fail(rc, "region by key");
    rc = region_out(r->region, r->leader, mode, out);
    pdc_msg_free(r);
    return rc;
}

int tikvc_pd_region_by_id(tikvc_client *c, uint64_t id, int mode, tikvc_region *out)
{
    int rc = check(c, out);
    if (rc != 0)
        return rc;
    Pdpb__GetRegionResponse *r = NULL;
    rc = pdc_get_region_by_id(c->pd, id, &r);
    if (rc != 0)
        return pd_fail(rc, "region by id");
    rc = region_out(r->region, r->leader, mode, out);
    pdc_msg_free(r);
    return rc;
}

int tikvc_pd_scan_regions(tikvc_client *c, const void *start, size_t start_len, const void *end,
                          size_t end_len, size_t limit, int mode, tikvc_region **out, size_t *n)
{
    int rc = check(c, out);
    if (rc != 0 || n == NULL)
        return rc != 0 ? rc : tikvc__fail(TIKVC_EINVAL, "NULL argument");
    tkv_buf es, ee;
    tkv_buf_init(&es);
    tkv_buf_init(&ee);
    tkv_slice s = tkv_slice_of(start, start_len), e = tkv_slice_of(end, end_len);
    if (mode == TIKVC_MODE_TXN) {
        if (tkv_codec_encode_bytes(&es, s) != 0 ||
            (e.len > 0 && tkv_codec_encode_bytes(&ee, e) != 0)) {
            tkv_buf_deinit(&es);
            tkv_buf_deinit(&ee);
            return tikvc__fail(TIKVC_ENOMEM, "out of memory");
        }
        s = tkv_buf_slice(&es);
        if (e.len > 0)
            e = tkv_buf_slice(&ee);
    }
    Pdpb__ScanRegionsResponse *r = NULL;
    rc = pdc_scan_regions(c->pd, s, e, limit > INT32_MAX ? 0 : (int32_t)limit, &r);
    tkv_buf_deinit(&es);
    tkv_buf_deinit(&ee);
    if (rc != 0)
        return pd_fail(rc, "scan regions");
    size_t cnt = r->n_regions ? r->n_regions : r->n_region_metas;
    tikvc_region *v = calloc(cnt ? cnt : 1, sizeof(*v));
    if (v == NULL) {
        pdc_msg_free(r);
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    }
    size_t got = 0;
    for (size_t i = 0; rc == 0 && i < cnt; i++) {
        const Metapb__Region *m = r->n_regions ? r->regions[i]->region : r->region_metas[i];
        const Metapb__Peer *l =
            r->n_regions ? r->regions[i]->leader : (i < r->n_leaders ? r->leaders[i] : NULL);
        if (m == NULL)
            continue;
        rc = region_out(m, l, mode, &v[got]);
        if (rc == 0)
            got++;
    }
    pdc_msg_free(r);
    if (rc != 0) {
        tikvc_regions_free(v, got);
        return rc;
    }
    *out = v;
    *n = got;
    return 0;
}

static int store_out(const Metapb__Store *s, tikvc_store *out)
{
    memset(out, 0, sizeof(*out));
    out->id = s->id;
    out->state = (int)s->state;
    out->last_heartbeat_ns = s->last_heartbeat;
    out->address = copy_str(s->address);
    out->status_address = copy_str(s->status_address);
    out->version = copy_str(s->version);
    if (out->address == NULL || out->status_address == NULL || out->version == NULL) {
        tikvc_store_free(out);
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    }
    return 0;
}

void tikvc_store_free(tikvc_store *s)
{
    if (s == NULL)
        return;
    free(s->address);
    free(s->status_address);
    free(s->version);
    s->address = s->status_address = s->version = NULL;
}

void tikvc_stores_free(tikvc_store *s, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        tikvc_store_free(&s[i]);
    free(s);
}

int tikvc_pd_store(tikvc_client *c, uint64_t id, tikvc_store *out)
{
    int rc = check(c, out);
    if (rc != 0)
        return rc;
    Pdpb__GetStoreResponse *r = NULL;
    rc = pdc_get_store(c->pd, id, &r);
    if (rc != 0)
        return tikvc__fail(rc == TKV_ENOTFOUND ? TIKVC_EINVAL : tikvc__code(rc), "store: %s",
                           pdc_errmsg(NULL));
    rc = store_out(r->store, out);
    pdc_msg_free(r);
    return rc;
}

int tikvc_pd_stores(tikvc_client *c, tikvc_store **out, size_t *n)
{
    int rc = check(c, out);
    if (rc != 0 || n == NULL)
        return rc != 0 ? rc : tikvc__fail(TIKVC_EINVAL, "NULL argument");
    Pdpb__GetAllStoresResponse *r = NULL;
    rc = pdc_get_all_stores(c->pd, false, &r);
    if (rc != 0)
        return pd_fail(rc, "stores");
    tikvc_store *v = calloc(r->n_stores ? r->n_stores : 1, sizeof(*v));
    rc = v == NULL ? tikvc__fail(TIKVC_ENOMEM, "out of memory") : 0;
    size_t got = 0;
    for (size_t i = 0; rc == 0 && i < r->n_stores; i++) {
        rc = store_out(r->stores[i], &v[i]);
        if (rc == 0)
            got++;
    }
    pdc_msg_free(r);
    if (rc != 0) {
        tikvc_stores_free(v, got);
        return rc;
    }
    *out = v;
    *n = got;
    return 0;
}

void tikvc_members_free(tikvc_member *m, size_t n)
{
    for (size_t i = 0; m != NULL && i < n; i++) {
        free(m[i].name);
        free(m[i].client_url);
    }
    free(m);
}

int tikvc_pd_members(tikvc_client *c, uint64_t *cluster_id, tikvc_member **out, size_t *n)
{
    int rc = check(c, out);
    if (rc != 0 || n == NULL)
        return rc != 0 ? rc : tikvc__fail(TIKVC_EINVAL, "NULL argument");
    Pdpb__GetMembersResponse *r = NULL;
    rc = pdc_get_members(c->pd, &r);
    if (rc != 0)
        return pd_fail(rc, "members");
    tikvc_member *v = calloc(r->n_members ? r->n_members : 1, sizeof(*v));
    rc = v == NULL ? tikvc__fail(TIKVC_ENOMEM, "out of memory") : 0;
    for (size_t i = 0; rc == 0 && i < r->n_members; i++) {
        const Pdpb__Member *m = r->members[i];
        v[i].id = m->member_id;
        v[i].leader = r->leader != NULL && r->leader->member_id == m->member_id;
        v[i].name = copy_str(m->name);
        v[i].client_url = copy_str(m->n_client_urls ? m->client_urls[0] : "");
        if (v[i].name == NULL || v[i].client_url == NULL)
            rc = tikvc__fail(TIKVC_ENOMEM, "out of memory");
    }
    size_t cnt = r->n_members;
    pdc_msg_free(r);
    if (rc != 0) {
        tikvc_members_free(v, cnt);
        return rc;
    }
    if (cluster_id != NULL)
        *cluster_id = pdc_cluster_id(c->pd);
    *out = v;
    *n = cnt;
    return 0;
}

int tikvc_pd_tso(tikvc_client *c, uint64_t *ts)
{
    int rc = check(c, ts);
    if (rc != 0)
        return rc;
    rc = pdc_tso(c->pd, 0, ts);
    return rc == 0 ? 0 : pd_fail(rc, "timestamp");
}
