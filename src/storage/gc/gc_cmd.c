/*
 * gc_cmd.c: KvGC (TiKV's GC command): removes the versions below the safe point from every
 * key of the region, in batches of GC_BATCH keys, each batch one write.
 */
#include "base/metrics.h"
#include "storage/gc/gc.h"
#include "storage/txn/txn_int.h"

#define GC_BATCH 256

typedef struct gc_state {
    tkv_buf next; /* where the next batch starts (encoded user key) */
    size_t deleted;
} gc_state;

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__GCRequest *req = (const Kvrpcpb__GCRequest *)c->req;
    gc_state *st = c->state;
    stor_iter *it;
    int rc = stor_snap_iter_new(c->snap, ENG_CF_WRITE, tkv_buf_slice(&st->next),
                                tkv_slice_of(NULL, 0), &it);
    if (rc != 0)
        return rc;
    tkv_buf prev;
    tkv_buf_init(&prev);
    size_t keys = 0;
    bool more = false;
    size_t deleted_before = st->deleted;
    for (bool ok = stor_iter_seek_to_first(it); ok && rc == 0; ok = stor_iter_next(it)) {
        tkv_slice user;
        uint64_t ts;
        rc = txn_key_split_ts(stor_iter_key(it), &user, &ts);
        if (rc != 0 || (keys > 0 && tkv_slice_eq(user, tkv_buf_slice(&prev))))
            continue;
        if (keys == GC_BATCH) {
            more = true;
            rc = tkv_buf_set(&st->next, user.data, user.len);
            break;
        }
        rc = tkv_buf_set(&prev, user.data, user.len);
        if (rc == 0)
            rc = txn_gc_key(c->txn, r, tkv_buf_slice(&prev), req->safe_point, &st->deleted);
        keys++;
    }
    if (rc == 0)
        rc = stor_iter_status(it);
    stor_iter_free(it);
    tkv_buf_deinit(&prev);
    if (rc == 0 && st->deleted > deleted_before) {
        /* TiKV's series for versions the GC removes from the write column family. */
        tkv_metric *m = tkv_metric_counter("tikv_gcworker_gc_keys",
                                           "Counter of keys affected during gc", "cf,tag");
        tkv_series_add(tkv_metric_with(m, "write", "deleted"),
                       (double)(st->deleted - deleted_before));
    }
    c->again = rc == 0 && more;
    return rc;
}

static void cleanup(txn_cmd *c)
{
    gc_state *st = c->state;
    if (st != NULL)
        tkv_buf_deinit(&st->next);
}

static const txn_cmd_def def = {
    .name = "KvGC",
    .resp_desc = &kvrpcpb__gcresponse__descriptor,
    .write = true,
    .process = process,
    .cleanup = cleanup,
};

static int setup(txn_cmd *c)
{
    gc_state *st = txn_arena_alloc(&c->arena, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    tkv_buf_init(&st->next);
    c->state = st;
    return 0;
}

int txn__kv_gc(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__GCRequest *r = (const Kvrpcpb__GCRequest *)req;
    return txn__submit(s, &def, req, r->context, r->safe_point, setup, cb, ud);
}
