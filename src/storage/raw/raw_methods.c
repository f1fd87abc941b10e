/*
 * raw_methods.c: the raw KV method table (API V1 and V1TTL), in kvproto's tikvpb.Tikv order.
 * batch_cmd is the method's oneof number in tikvpb.BatchCommandsRequest.Request; 0 marks
 * methods client-go always sends unary (RawGetKeyTTL, RawCompareAndSwap, RawChecksum).
 */
#include "storage/raw/raw_int.h"

#define RAW_METHOD(nm, req, resp, batch, is_write, impl)                                           \
    {                                                                                              \
        .name = (nm), .req_desc = &kvrpcpb__##req##__descriptor,                                   \
        .resp_desc = &kvrpcpb__##resp##__descriptor, .batch_cmd = (batch), .write = (is_write),    \
        .admin = false, .fn = (impl)                                                               \
    }

const stor_method stor_raw_methods[] = {
    RAW_METHOD("RawGet", raw_get_request, raw_get_response, 13, false, stor__raw_get),
    RAW_METHOD("RawBatchGet", raw_batch_get_request, raw_batch_get_response, 14, false,
               stor__raw_batch_get),
    RAW_METHOD("RawPut", raw_put_request, raw_put_response, 15, true, stor__raw_put),
    RAW_METHOD("RawBatchPut", raw_batch_put_request, raw_batch_put_response, 16, true,
               stor__raw_batch_put),
    RAW_METHOD("RawDelete", raw_delete_request, raw_delete_response, 17, true, stor__raw_delete),
    RAW_METHOD("RawBatchDelete", raw_batch_delete_request, raw_batch_delete_response, 18, true,
               stor__raw_batch_delete),
    RAW_METHOD("RawScan", raw_scan_request, raw_scan_response, 19, false, stor__raw_scan),
    RAW_METHOD("RawDeleteRange", raw_delete_range_request, raw_delete_range_response, 20, true,
               stor__raw_delete_range),
    RAW_METHOD("RawBatchScan", raw_batch_scan_request, raw_batch_scan_response, 21, false,
               stor__raw_batch_scan),
    RAW_METHOD("RawGetKeyTTL", raw_get_key_ttlrequest, raw_get_key_ttlresponse, 0, false,
               stor__raw_get_key_ttl),
    RAW_METHOD("RawCompareAndSwap", raw_casrequest, raw_casresponse, 0, true,
               stor__raw_compare_and_swap),
    RAW_METHOD("RawChecksum", raw_checksum_request, raw_checksum_response, 0, false,
               stor__raw_checksum),
    {.name = NULL},
};
