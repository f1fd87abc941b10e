/*
 * rs_testutil.c: see rs_testutil.h.
 */
#include "rs_testutil.h"

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "raftstore/rstore_int.h"

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    rs_result *out;
    const char *key;
} waiter;

static void waiter_init(waiter *w, rs_result *out, const char *key)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = false;
    w->out = out;
    w->key = key;
    memset(out, 0, sizeof(*out));
    tkv_buf_init(&out->value);
}

static void waiter_wait(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void signal_done(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_write(void *ud, int rc, Errorpb__Error *rerr)
{
    waiter *w = ud;
    w->out->rc = rc;
    w->out->rerr = rerr;
    signal_done(w);
}

static void on_snap(void *ud, int rc, Errorpb__Error *rerr, stor_snap *snap)
{
    waiter *w = ud;
    w->out->rc = rc;
    w->out->rerr = rerr;
    if (snap) {
        w->out->rc = stor_snap_get(snap, ENG_CF_DEFAULT, tkv_slice_str(w->key), &w->out->value,
                                   &w->out->found);
        stor_snap_release(snap);
    }
    signal_done(w);
}

int rs_write(stor_kv *kv, const stor_ctx *ctx, const stor_modify *mods, size_t n, rs_result *out)
{
    waiter w;
    waiter_init(&w, out, NULL);
    int rc = stor_kv_write(kv, ctx, mods, n, on_write, &w);
    if (rc != 0) {
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
        return rc;
    }
    waiter_wait(&w);
    return 0;
}

int rs_put(stor_kv *kv, const stor_ctx *ctx, const char *key, const char *value, rs_result *out)
{
    stor_modify m = {.op = value ? STOR_MODIFY_PUT : STOR_MODIFY_DELETE,
                     .cf = ENG_CF_DEFAULT,
                     .key = tkv_slice_str(key),
                     .value = value ? tkv_slice_str(value) : tkv_slice_of(NULL, 0)};
    return rs_write(kv, ctx, &m, 1, out);
}

int rs_get(stor_kv *kv, const stor_ctx *ctx, const char *key, rs_result *out)
{
    waiter w;
    waiter_init(&w, out, key);
    int rc = stor_kv_snapshot(kv, ctx, on_snap, &w);
    if (rc != 0) {
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
        return rc;
    }
    waiter_wait(&w);
    return 0;
}

void rs_result_deinit(rs_result *r)
{
    stor_rerr_free(r->rerr);
    r->rerr = NULL;
    tkv_buf_deinit(&r->value);
}

stor_ctx rs_ctx(uint64_t region_id)
{
    stor_ctx c;
    memset(&c, 0, sizeof(c));
    c.region_id = region_id;
    return c;
}

bool rs_wait_for(bool (*cond)(void *arg), void *arg, uint64_t timeout_ms)
{
    uint64_t deadline = tkv_clock_mono_ms() + timeout_ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (tkv_clock_mono_ms() > deadline)
            return false;
        tkv_sleep_ms(5);
    }
}

void rs_tmpdir(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/tkv-rstore-XXXXXX");
    if (mkdtemp(buf) == NULL)
        abort();
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void rs_rmtree(const char *path)
{
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "# could not remove %s\n", path);
}

int rs_engine_put(eng_db *db, eng_cf cf, tkv_slice key, tkv_slice value)
{
    eng_batch *b;
    int rc = eng_batch_new(db, &b);
    if (rc != 0)
        return rc;
    rc = eng_batch_put(b, cf, key, value);
    if (rc == 0)
        rc = eng_write(db, b, false);
    eng_batch_free(b);
    return rc;
}

Metapb__Region *rs_region(uint64_t id, tkv_slice start, tkv_slice end, uint64_t version)
{
    Metapb__Region r = METAPB__REGION__INIT;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    Metapb__Peer peer = METAPB__PEER__INIT, *pp = &peer;
    ep.conf_ver = 1;
    ep.version = version;
    peer.id = 2;
    peer.store_id = 1;
    r.id = id;
    r.region_epoch = &ep;
    r.peers = &pp;
    r.n_peers = 1;
    r.start_key.data = (uint8_t *)start.data;
    r.start_key.len = start.len;
    r.end_key.data = (uint8_t *)end.data;
    r.end_key.len = end.len;
    return rstore__region_dup(&r);
}

int rs_build_snapshot(rstore *s, eng_db *kv, const Metapb__Region *region, tkv_buf *data,
                      char *path, size_t cap)
{
    eng_snap *snap;
    int rc = eng_snap_open(kv, &snap);
    if (rc != 0)
        return rc;
    rc = rstore__snap_build(s, snap, region, 10, 6, data);
    eng_snap_close(snap);
    if (rc != 0)
        return rc;
    char gen[512];
    rstore__snap_path(s, true, region->id, 6, 10, gen, sizeof(gen));
    rstore__snap_path(s, false, region->id, 6, 10, path, cap);
    return rename(gen, path) == 0 ? 0 : -errno;
}
