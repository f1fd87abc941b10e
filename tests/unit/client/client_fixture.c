/*
 * client_fixture.c: see client_fixture.h.
 */
#include "unit/client/client_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "base/codec.h"

static char endpoint[96];

void fx_opts(fx *f, tikvc_opts *o)
{
    tikvc_opts_init(o);
    snprintf(endpoint, sizeof(endpoint), "http://%s", f->pd.addr[0]);
    o->pd_endpoints = endpoint;
    o->max_backoff_ms = 5000;
    o->busy_backoff_base_ms = 10;
    o->busy_backoff_cap_ms = 40;
    o->rpc_timeout_ms = 5000;
}

void fx_start_cluster(fx *f, int n_stores, bool txn, const char *const *splits, size_t n_splits)
{
    memset(f, 0, sizeof(*f));
    f->txn = txn;
    fake_pd_start(&f->pd, 1, 4242);
    fake_cluster_start(&f->fc, &f->pd, n_stores);
    f->fc.txn_encoded = txn;
    uint64_t stores[FPD_MAX_PEERS];
    for (size_t r = 0; r <= n_splits; r++) {
        tkv_buf s, e;
        tkv_buf_init(&s);
        tkv_buf_init(&e);
        if (r > 0) {
            tkv_slice k = tkv_slice_str(splits[r - 1]);
            assert_int_equal(txn ? tkv_codec_encode_bytes(&s, k) : tkv_buf_set(&s, k.data, k.len),
                             0);
        }
        if (r < n_splits) {
            tkv_slice k = tkv_slice_str(splits[r]);
            assert_int_equal(txn ? tkv_codec_encode_bytes(&e, k) : tkv_buf_set(&e, k.data, k.len),
                             0);
        }
        /* Leader first: fake_pd_add_region makes index 0 the leader. */
        for (int i = 0; i < n_stores && i < FPD_MAX_PEERS; i++)
            stores[i] = (uint64_t)((r + (size_t)i) % (size_t)n_stores) + 1;
        fake_pd_add_region(&f->pd, r + 2, tkv_buf_slice(&s), tkv_buf_slice(&e), stores,
                           (size_t)TKV_MIN(n_stores, FPD_MAX_PEERS));
        tkv_buf_deinit(&s);
        tkv_buf_deinit(&e);
    }
}

void fx_start(fx *f, int n_stores, bool txn, const char *const *splits, size_t n_splits,
              const tikvc_opts *o)
{
    fx_start_cluster(f, n_stores, txn, splits, n_splits);
    tikvc_opts d;
    if (o == NULL) {
        fx_opts(f, &d);
        o = &d;
    }
    int rc = tikvc_open(o, &f->c);
    if (rc != 0)
        printf("# tikvc_open: %s\n", tikvc_errmsg());
    assert_int_equal(rc, TIKVC_OK);
}

void fx_stop(fx *f)
{
    tikvc_close(f->c);
    f->c = NULL;
    fake_cluster_stop(&f->fc);
    fake_pd_stop(&f->pd);
}

uint64_t fx_region_of(fx *f, const char *key)
{
    tkv_buf k;
    tkv_buf_init(&k);
    tkv_slice raw = tkv_slice_str(key);
    assert_int_equal(f->txn ? tkv_codec_encode_bytes(&k, raw) : tkv_buf_set(&k, raw.data, raw.len),
                     0);
    uint64_t id = 0;
    pthread_mutex_lock(&f->pd.mu);
    for (size_t i = 0; i < f->pd.n_regions; i++) {
        fpd_region *g = &f->pd.regions[i];
        if (tkv_slice_cmp(tkv_slice_of(g->start, g->start_len), tkv_buf_slice(&k)) <= 0 &&
            (g->end_len == 0 ||
             tkv_slice_cmp(tkv_buf_slice(&k), tkv_slice_of(g->end, g->end_len)) < 0))
            id = g->id;
    }
    pthread_mutex_unlock(&f->pd.mu);
    tkv_buf_deinit(&k);
    return id;
}

void fx_reopen(fx *f, const tikvc_opts *o)
{
    tikvc_close(f->c);
    f->c = NULL;
    int rc = tikvc_open(o, &f->c);
    if (rc != 0)
        printf("# tikvc_open: %s\n", tikvc_errmsg());
    assert_int_equal(rc, TIKVC_OK);
}

void fx_check_read(int rc, tikvc_buf *b, bool found, const char *key, const char *want)
{
    if (rc != 0)
        printf("# read %s: %s\n", key, tikvc_errmsg());
    assert_int_equal(rc, TIKVC_OK);
    if (want == NULL) {
        assert_false(found);
    } else {
        assert_true(found);
        assert_int_equal(b->len, strlen(want));
        assert_memory_equal(b->data, want, b->len);
    }
    tikvc_buf_free(b);
}
