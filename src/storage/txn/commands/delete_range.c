/*
 * delete_range.c: KvDeleteRange and UnsafeDestroyRange: every version, lock and value of
 * the keys in [start_key, end_key) goes, in all three transactional column families.
 * KvDeleteRange writes range deletions through the kv seam in the request's region (clients
 * clamp the range to it); notify_only deletes nothing (TiKV then only tells observers).
 * UnsafeDestroyRange acts on the whole store below replication, as TiKV's does (clients send
 * it to every store, without a region): through the store-wide hook when one is installed
 * (stor_set_destroy_range), else through the seam in the region the context names.
 */
#include <stdio.h>

#include "base/keys.h"
#include "storage/txn/txn_int.h"

static int delete_ranges(txn_cmd *c, ProtobufCBinaryData start_raw, ProtobufCBinaryData end_raw)
{
    int rc = 0;
    tkv_slice start = txn__encode(c, start_raw, &rc);
    tkv_slice end = end_raw.len ? txn__encode(c, end_raw, &rc) : tkv_slice_of(NULL, 0);
    if (rc != 0)
        return rc;
    if (end.len > 0 && tkv_slice_cmp(start, end) >= 0)
        return 0;
    static const eng_cf cfs[] = {ENG_CF_DEFAULT, ENG_CF_LOCK, ENG_CF_WRITE};
    for (size_t i = 0; i < TKV_ARRAY_LEN(cfs) && rc == 0; i++)
        rc = mvcc_txn_delete_range(c->txn, cfs[i], start, end);
    return rc;
}

static int process_delete_range(txn_cmd *c, mvcc_reader *r)
{
    (void)r;
    const Kvrpcpb__DeleteRangeRequest *req = (const Kvrpcpb__DeleteRangeRequest *)c->req;
    if (req->notify_only)
        return 0;
    return delete_ranges(c, req->start_key, req->end_key);
}

static int process_destroy(txn_cmd *c, mvcc_reader *r)
{
    (void)r;
    const Kvrpcpb__UnsafeDestroyRangeRequest *req =
        (const Kvrpcpb__UnsafeDestroyRangeRequest *)c->req;
    return delete_ranges(c, req->start_key, req->end_key);
}

static const txn_cmd_def delete_range_def = {
    .name = "KvDeleteRange",
    .resp_desc = &kvrpcpb__delete_range_response__descriptor,
    .write = true,
    .process = process_delete_range,
};

static const txn_cmd_def destroy_def = {
    .name = "UnsafeDestroyRange",
    .resp_desc = &kvrpcpb__unsafe_destroy_range_response__descriptor,
    .write = true,
    .process = process_destroy,
};

int txn__kv_delete_range(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__DeleteRangeRequest *r = (const Kvrpcpb__DeleteRangeRequest *)req;
    return txn__submit(s, &delete_range_def, req, r->context, 0, NULL, cb, ud);
}

int stor_destroy_range_engine(void *arg, tkv_slice start, tkv_slice end,
                              char errmsg[TKV_ERRMSG_LEN])
{
    eng_db *db = arg;
    static const eng_cf cfs[] = {ENG_CF_DEFAULT, ENG_CF_LOCK, ENG_CF_WRITE};
    tkv_buf lo, hi;
    tkv_buf_init(&lo);
    tkv_buf_init(&hi);
    eng_batch *b = NULL;
    int rc = tkv_keys_data_bound(&lo, start, false);
    if (rc == 0)
        rc = tkv_keys_data_bound(&hi, end, true);
    if (rc == 0)
        rc = eng_batch_new(db, &b);
    for (size_t i = 0; rc == 0 && i < TKV_ARRAY_LEN(cfs); i++)
        rc = eng_batch_delete_range(b, cfs[i], tkv_buf_slice(&lo), tkv_buf_slice(&hi));
    if (rc == 0)
        rc = eng_write(db, b, true);
    if (rc != 0)
        snprintf(errmsg, TKV_ERRMSG_LEN, "%s", rc == -ENOMEM ? tkv_strerror(rc) : eng_errmsg(db));
    eng_batch_free(b);
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
    return rc;
}

/* A store-wide UnsafeDestroyRange on a storage worker. */
typedef struct destroy_task {
    stor *s;
    const Kvrpcpb__UnsafeDestroyRangeRequest *req;
    stor_done_cb cb;
    void *ud;
} destroy_task;

static void run_destroy(void *arg)
{
    destroy_task *t = arg;
    const Kvrpcpb__UnsafeDestroyRangeRequest *req = t->req;
    char err[TKV_ERRMSG_LEN] = "";
    tkv_buf start, end;
    tkv_buf_init(&start);
    tkv_buf_init(&end);
    int rc = txn_key_encode(&start, tkv_slice_of(req->start_key.data, req->start_key.len));
    if (rc == 0 && req->end_key.len > 0)
        rc = txn_key_encode(&end, tkv_slice_of(req->end_key.data, req->end_key.len));
    if (rc != 0)
        snprintf(err, sizeof(err), "encode range: %s", tkv_strerror(rc));
    else if (end.len == 0 || tkv_slice_cmp(tkv_buf_slice(&start), tkv_buf_slice(&end)) < 0)
        rc = t->s->destroy_range(t->s->destroy_range_arg, tkv_buf_slice(&start),
                                 tkv_buf_slice(&end), err);
    Kvrpcpb__UnsafeDestroyRangeResponse resp = KVRPCPB__UNSAFE_DESTROY_RANGE_RESPONSE__INIT;
    char msg[TKV_ERRMSG_LEN + 32];
    if (rc != 0) {
        snprintf(msg, sizeof(msg), "unsafe destroy range: %s", err[0] ? err : tkv_strerror(rc));
        resp.error = msg;
    }
    tkv_buf_deinit(&start);
    tkv_buf_deinit(&end);
    t->cb(t->ud, &resp.base);
    tkv_free(t);
}

int txn__unsafe_destroy_range(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__UnsafeDestroyRangeRequest *r = (const Kvrpcpb__UnsafeDestroyRangeRequest *)req;
    if (s == NULL || req == NULL || cb == NULL || s->txn == NULL)
        return -EINVAL;
    if (s->destroy_range == NULL)
        return txn__submit(s, &destroy_def, req, r->context, 0, NULL, cb, ud);
    destroy_task *t = tkv_malloc(sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    *t = (destroy_task){.s = s, .req = r, .cb = cb, .ud = ud};
    int rc = txn_pool_submit(s->txn->pool, run_destroy, t);
    if (rc != 0)
        tkv_free(t);
    return rc;
}
