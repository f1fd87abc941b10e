/*
 * raw_scan.c: RawScan and RawBatchScan (TiKV's Storage::raw_scan, raw_batch_scan over
 * RawStore::forward_raw_scan / reverse_raw_scan).
 *
 * Scans are clipped to the region and return exactly min(limit, live rows left in the region
 * and the range): client-go moves on to the next region when a scan returns fewer than it
 * asked for, so a scan must never stop early. Expired rows are skipped and do not count.
 */
#include "storage/raw/raw_int.h"

static const raw_cmd RAW_SCAN = {"raw_scan", &kvrpcpb__raw_scan_response__descriptor};
static const raw_cmd RAW_BATCH_SCAN = {"raw_batch_scan",
                                       &kvrpcpb__raw_batch_scan_response__descriptor};

bool stor__raw_scan_seekable(const stor_snap *snap, tkv_slice key)
{
    tkv_slice start = raw_bin(snap->region->start_key), end = raw_bin(snap->region->end_key);
    if (tkv_slice_cmp(key, start) < 0)
        return false;
    return end.len == 0 || tkv_slice_cmp(key, end) <= 0;
}

int stor__raw_scan_range(raw_op *op, stor_snap *snap, tkv_slice start, tkv_slice end,
                         uint64_t limit, bool key_only, bool reverse, raw_pairs *out)
{
    if (limit == 0)
        return 0;
    /* Forward: [start, end). Reverse: [end, start), read downward. Empty bounds are the
     * region's (stor_snap_iter_new clips both sides to the region). */
    tkv_slice lower = reverse ? end : start, upper = reverse ? start : end;
    stor_iter *it;
    int rc = stor_snap_iter_new(snap, op->cf, lower, upper, &it);
    if (rc != 0)
        return rc;
    bool ok = reverse ? stor_iter_seek_to_last(it) : stor_iter_seek_to_first(it);
    uint64_t n = 0;
    while (ok && n < limit) {
        tkv_slice user;
        uint64_t expire;
        bool live;
        rc = stor__raw_decode_value(op->s, stor_iter_value(it), op->now_s, &user, &expire, &live);
        if (rc != 0)
            break;
        if (live) {
            rc = stor__raw_pairs_add(out, stor_iter_key(it),
                                     key_only ? tkv_slice_of(NULL, 0) : user);
            if (rc != 0)
                break;
            n++;
        }
        ok = reverse ? stor_iter_prev(it) : stor_iter_next(it);
    }
    if (rc == 0)
        rc = stor_iter_status(it);
    stor_iter_free(it);
    return rc;
}

/* Checks that a scan may start at @start (reverse scans from an empty start key begin at the
 * region's end); if not, releases @snap and answers KeyNotInRegion. */
static bool check_scan_start(raw_op *op, stor_snap *snap, tkv_slice start, bool reverse)
{
    if ((reverse && start.len == 0) || stor__raw_scan_seekable(snap, start))
        return true;
    stor__raw_reply_not_in_region(op, snap, start);
    return false;
}

/* Answers with the collected pairs (field @kvs of a scan response), or the scan's error. */
static void reply_pairs(raw_op *op, int rc, raw_pairs *pairs, ProtobufCMessage *resp,
                        Kvrpcpb__KvPair ***kvs, size_t *n_kvs)
{
    if (rc == 0)
        rc = stor__raw_pairs_build(pairs, kvs, n_kvs);
    if (rc != 0)
        stor__raw_reply_read_error(op, rc);
    else
        stor__raw_reply(op, resp);
    stor__raw_pairs_deinit(pairs);
}

static void scan_on_snap(raw_op *op, stor_snap *snap)
{
    const Kvrpcpb__RawScanRequest *req = op->req;
    if (!check_scan_start(op, snap, raw_bin(req->start_key), req->reverse))
        return;
    raw_pairs pairs;
    stor__raw_pairs_init(&pairs);
    int rc = stor__raw_scan_range(op, snap, raw_bin(req->start_key), raw_bin(req->end_key),
                                  req->limit, req->key_only, req->reverse, &pairs);
    stor_snap_release(snap);
    Kvrpcpb__RawScanResponse resp = KVRPCPB__RAW_SCAN_RESPONSE__INIT;
    reply_pairs(op, rc, &pairs, &resp.base, &resp.kvs, &resp.n_kvs);
}

int stor__raw_scan(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawScanRequest *req = (const Kvrpcpb__RawScanRequest *)m;
    raw_op *op = stor__raw_op_new(s, &RAW_SCAN, req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_key(op, req->start_key) ||
        !stor__raw_check_key(op, req->end_key) || !stor__raw_check_scan_limit(op, req->limit) ||
        !stor__raw_check_cf(op, req->cf))
        return 0;
    return stor__raw_run_read(op, scan_on_snap);
}

/* The end of range @i: its own end key, or when empty the next range's start key (the last
 * range's empty end is unbounded), as TiKV reads them. */
static tkv_slice range_end(const Kvrpcpb__RawBatchScanRequest *req, size_t i)
{
    tkv_slice end = raw_bin(req->ranges[i]->end_key);
    if (end.len == 0 && i + 1 < req->n_ranges)
        end = raw_bin(req->ranges[i + 1]->start_key);
    return end;
}

/* TiKV's check_key_ranges: every range is non-empty in the scan's direction. */
static bool ranges_valid(const Kvrpcpb__RawBatchScanRequest *req)
{
    for (size_t i = 0; i < req->n_ranges; i++) {
        tkv_slice start = raw_bin(req->ranges[i]->start_key), end = range_end(req, i);
        if (end.len == 0)
            continue;
        int c = tkv_slice_cmp(start, end);
        if ((!req->reverse && c >= 0) || (req->reverse && c <= 0))
            return false;
    }
    return true;
}

static void batch_scan_on_snap(raw_op *op, stor_snap *snap)
{
    const Kvrpcpb__RawBatchScanRequest *req = op->req;
    for (size_t i = 0; i < req->n_ranges; i++) {
        if (!check_scan_start(op, snap, raw_bin(req->ranges[i]->start_key), req->reverse))
            return;
    }
    raw_pairs pairs;
    stor__raw_pairs_init(&pairs);
    int rc = 0;
    for (size_t i = 0; i < req->n_ranges && rc == 0; i++)
        rc = stor__raw_scan_range(op, snap, raw_bin(req->ranges[i]->start_key), range_end(req, i),
                                  req->each_limit, req->key_only, req->reverse, &pairs);
    stor_snap_release(snap);
    Kvrpcpb__RawBatchScanResponse resp = KVRPCPB__RAW_BATCH_SCAN_RESPONSE__INIT;
    reply_pairs(op, rc, &pairs, &resp.base, &resp.kvs, &resp.n_kvs);
}

int stor__raw_batch_scan(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawBatchScanRequest *req = (const Kvrpcpb__RawBatchScanRequest *)m;
    raw_op *op = stor__raw_op_new(s, &RAW_BATCH_SCAN, req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_batch(op, req->n_ranges) ||
        !stor__raw_check_scan_limit(op, req->each_limit) || !stor__raw_check_cf(op, req->cf))
        return 0;
    for (size_t i = 0; i < req->n_ranges; i++) {
        if (!stor__raw_check_key(op, req->ranges[i]->start_key) ||
            !stor__raw_check_key(op, req->ranges[i]->end_key))
            return 0;
    }
    if (!ranges_valid(req)) {
        stor__raw_reply_error(op, "Invalid KeyRanges");
        return 0;
    }
    return stor__raw_run_read(op, batch_scan_on_snap);
}
