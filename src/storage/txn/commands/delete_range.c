/*
 * delete_range.c: KvDeleteRange and UnsafeDestroyRange: every version, lock and value of
 * the keys in [start_key, end_key) goes, in all three transactional column families, as
 * range deletions written through the kv seam. notify_only (KvDeleteRange) deletes nothing
 * (TiKV then only tells observers). UnsafeDestroyRange is meant to act on the whole store
 * below Raft; through the seam it acts on the region the context names (see the report).
 */
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

int txn__unsafe_destroy_range(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__UnsafeDestroyRangeRequest *r = (const Kvrpcpb__UnsafeDestroyRangeRequest *)req;
    return txn__submit(s, &destroy_def, req, r->context, 0, NULL, cb, ud);
}
