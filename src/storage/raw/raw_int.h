/*
 * raw_int.h: what the raw KV files share (not API): the request in flight, replies, request
 * checks, the API V1TTL value format, and the key-value pair lists of scans.
 *
 * Flow of every raw method (TiKV's storage/mod.rs raw_* functions over tikv_kv::Engine):
 *   1. check the request (API version, column family, limits, TTL) and answer with the error
 *      TiKV gives when it fails (in the response's `error` field, or as a KvPair error for
 *      responses that have none);
 *   2. reads take a snapshot of the region through the kv seam and run on it; writes build
 *      stor_modify lists and hand them to the seam; atomic commands (compare-and-swap and
 *      the for_cas writes) first take latches on their keys;
 *   3. region errors from the seam go into region_error unchanged.
 * Each step ends in exactly one reply through the method's stor_done_cb.
 * Threads: a raw_op is used by one thread at a time: the caller's, then the seam's or the
 * latch releaser's for continuations.
 */
#ifndef TKV_STORAGE_RAW_INT_H
#define TKV_STORAGE_RAW_INT_H

#include "storage/storage_int.h"

/* A raw command kind: TiKV's CommandKind name (used in messages) and the response type. */
typedef struct raw_cmd {
    const char *kind;
    const ProtobufCMessageDescriptor *resp_desc;
} raw_cmd;

typedef struct raw_op raw_op;

/* Continuations. Each must end in a reply (stor__raw_reply*). */
typedef void (*raw_snap_fn)(raw_op *op, stor_snap *snap); /* owns @snap */
typedef void (*raw_step_fn)(raw_op *op);
typedef struct raw_mods raw_mods;
/* Builds the modifications of a write from op->req. Errors: -ENOMEM. */
typedef int (*raw_build_fn)(raw_op *op, raw_mods *out);

/* One raw request in flight. */
struct raw_op {
    stor *s;
    const raw_cmd *cmd;
    stor_done_cb cb;
    void *ud;
    const void *req; /* the request message, borrowed until the reply */
    stor_ctx ctx;
    eng_cf cf;
    uint64_t now_s;    /* TTL clock reading taken when the request arrived */
    stor_latch *latch; /* held by atomic commands until the reply */
    raw_snap_fn on_snap;
    raw_step_fn on_written; /* NULL: reply with an empty response */
    raw_step_fn on_latched;
    raw_build_fn build; /* writes: builds the modifications from the request */
    /* Compare-and-swap state between its read and its write. */
    tkv_buf prev;
    bool prev_found;
    bool succeed;
};

/* ---- lifecycle and replies (raw_op.c) -------------------------------------------------- */

/* Returns a new op for @cmd with the context @pbctx (NULL for none), or NULL on -ENOMEM. */
raw_op *stor__raw_op_new(stor *s, const raw_cmd *cmd, const Kvrpcpb__Context *pbctx,
                         const void *req, stor_done_cb cb, void *ud);

/* Frees @op without replying (the method refuses the request). */
void stor__raw_op_free(raw_op *op);

/* Hands @resp to the service, releases the latch and frees @op. */
void stor__raw_reply(raw_op *op, const ProtobufCMessage *resp);

/* Replies with an empty response of the command's type. */
void stor__raw_reply_ok(raw_op *op);

/* Replies with region error @rerr (taken over). */
void stor__raw_reply_rerr(raw_op *op, Errorpb__Error *rerr);

/* Replies with an error message where TiKV puts it: the response's `error` string, or, for
 * responses without one (RawBatchGet, RawScan, RawBatchScan), a single KvPair whose
 * KeyError.abort holds it. */
void stor__raw_reply_error(raw_op *op, const char *fmt, ...) TKV_PRINTF(2, 3);

/* Takes a snapshot of the request's region; @fn runs on it (or the op is answered with the
 * region error or the failure). Returns 0, or the seam's refusal (the op is untouched). */
TKV_MUST_USE int stor__raw_read(raw_op *op, raw_snap_fn fn);

/* Proposes @mods; on success op->on_written runs (or an empty response goes out), else the op
 * is answered with the region error or the failure. Returns 0, or the seam's refusal (the op
 * is untouched). @mods are copied before this returns. */
TKV_MUST_USE int stor__raw_write(raw_op *op, const stor_modify *mods, size_t n);

/* Method entry point: like stor__raw_read, but a refused request also frees the op, so the
 * method can return the code (the service answers it with a gRPC status). */
TKV_MUST_USE int stor__raw_run_read(raw_op *op, raw_snap_fn fn);

/* Takes latches on @keys (copied), then runs @fn, on this thread when they are free at once,
 * else on the thread that frees them. The latches are held until the reply. A request whose
 * deadline passed while it waited is answered with ServerIsBusy instead. Returns 0 or
 * -ENOMEM (the op is untouched). */
TKV_MUST_USE int stor__raw_latch(raw_op *op, const tkv_slice *keys, size_t n, raw_step_fn fn);

/* Releases @snap and answers KeyNotInRegion for @key (the op is gone). */
void stor__raw_reply_not_in_region(raw_op *op, stor_snap *snap, tkv_slice key);

/* Returns whether @key lies in @snap's region; if not, releases @snap and answers with
 * KeyNotInRegion (the op is gone). */
bool stor__raw_check_in_region(raw_op *op, stor_snap *snap, tkv_slice key);

/* Reads @key of op->cf at @snap through the V1TTL layout: *@found is true only for a live
 * value, whose user bytes are *@user (inside @buf) and expiry time *@expire_s (0: none).
 * Errors: TKV_ECORRUPT (a stored value does not decode), engine errors. */
TKV_MUST_USE int stor__raw_snap_get(raw_op *op, const stor_snap *snap, tkv_slice key, tkv_buf *buf,
                                    tkv_slice *user, uint64_t *expire_s, bool *found);

/* The outcome of a point read: found is true only for a live value, whose user bytes (inside
 * buf) and expiry time (0: none) follow. */
typedef struct raw_point {
    tkv_buf buf;
    tkv_slice user;
    uint64_t expire_s;
    bool found;
} raw_point;

/* Point read of one request key: initializes @out, checks that @key is in @snap's region,
 * reads it with stor__raw_snap_get and releases @snap. Returns true with the result, or false
 * when the op was answered instead (KeyNotInRegion, a read failure). The caller releases
 * out->buf either way. */
bool stor__raw_read_key(raw_op *op, stor_snap *snap, tkv_slice key, raw_point *out);

/* Answers a failed read (stor__raw_snap_get or a scan) with its message. */
void stor__raw_reply_read_error(raw_op *op, int rc);

/* ---- writes (raw_write.c) ---------------------------------------------------------------- */

/* The modifications of one write, with the stored forms of their values. */
struct raw_mods {
    stor_modify *mods;
    size_t n, cap;
    tkv_buf vals;  /* stored values, back to back */
    size_t *voffs; /* where each PUT's value starts in vals (fixed up before the write) */
};

/* Appends a PUT of @key with user value @v living @ttl seconds (stored in the V1TTL layout
 * when TTL is on), a DELETE of @key, or a DELETE_RANGE [@start, @end), all in op->cf.
 * Keys are borrowed (they live in the request). Errors: -ENOMEM. */
TKV_MUST_USE int stor__raw_mods_put(raw_op *op, raw_mods *m, tkv_slice key, tkv_slice v,
                                    uint64_t ttl);
TKV_MUST_USE int stor__raw_mods_delete(raw_op *op, raw_mods *m, tkv_slice key);
TKV_MUST_USE int stor__raw_mods_delete_range(raw_op *op, raw_mods *m, tkv_slice start,
                                             tkv_slice end);

/* Builds op's write with op->build and proposes it (no modifications: answered at once).
 * Returns 0 when the op is answered or will be, else the refusal with the op untouched. */
TKV_MUST_USE int stor__raw_write_built(raw_op *op);

/* Returns key @i of the request @req (the keys an atomic write latches). */
typedef tkv_slice (*raw_key_at_fn)(const void *req, size_t i);

/* Builds the write with @build and proposes it. With @latch_key_at (the for_cas writes of
 * client-go's atomic mode) it first takes latches on the @n keys it names, so the write is
 * serialized with RawCompareAndSwap on those keys (TiKV's RawAtomicStore); NULL writes at
 * once. A write with no modifications is answered at once. Returns 0, or a refusal (-ENOMEM,
 * the seam's codes) after freeing the op. */
TKV_MUST_USE int stor__raw_run_mods(raw_op *op, raw_build_fn build, raw_key_at_fn latch_key_at,
                                    size_t n);

/* ---- request checks (raw_check.c): each replies with TiKV's error and returns false ---- */

/* API version: storage V1 (or V1TTL with storage.enable-ttl) accepts requests of V1 only. */
bool stor__raw_check_api(raw_op *op, const Kvrpcpb__Context *pbctx);
/* Column family "" / "default" / "lock" / "write"; sets op->cf. */
bool stor__raw_check_cf(raw_op *op, const char *cf);
/* Key size against storage.max-key-size. */
bool stor__raw_check_key(raw_op *op, ProtobufCBinaryData key);
/* The number of keys, then the size of each. */
bool stor__raw_check_keys(raw_op *op, const ProtobufCBinaryData *keys, size_t n);
/* Value size against the value limit. */
bool stor__raw_check_value(raw_op *op, ProtobufCBinaryData value);
/* Number of keys, pairs or ranges in one request. */
bool stor__raw_check_batch(raw_op *op, size_t n);
/* Rows asked of one scan. */
bool stor__raw_check_scan_limit(raw_op *op, uint64_t limit);
/* A non-zero TTL needs storage.enable-ttl. */
bool stor__raw_check_ttl(raw_op *op, uint64_t ttl);

/* ---- API V1TTL values (raw_value.c) ----------------------------------------------------- */

/* Returns the TTL clock (seconds since the Unix epoch). */
uint64_t stor__raw_now_s(const stor *s);

/* Appends the stored form of user value @v with @ttl seconds to live (0: forever) read at
 * @now_s: @v itself, or with storage.enable-ttl @v followed by the expiry time in seconds as
 * 8 big-endian bytes (0: none), TiKV's API V1TTL layout. Errors: -ENOMEM. */
TKV_MUST_USE int stor__raw_encode_value(const stor *s, tkv_slice v, uint64_t ttl, uint64_t now_s,
                                        tkv_buf *out);

/* Splits a stored value into the user value (a prefix of @stored) and its expiry time (0:
 * none), and sets *@live to whether it is still visible at @now_s. Without TTL the value is
 * the user value and always live. Errors: TKV_ECORRUPT (shorter than the expiry suffix). */
TKV_MUST_USE int stor__raw_decode_value(const stor *s, tkv_slice stored, uint64_t now_s,
                                        tkv_slice *user, uint64_t *expire_s, bool *live);

/* The message for a stored value that does not decode. */
#define RAW_CORRUPT_VALUE_MSG "corrupted raw value: shorter than its 8-byte TTL suffix"

/* ---- pair lists (raw_value.c) ----------------------------------------------------------- */

/* Key-value pairs collected while iterating (iterator slices die when it moves), turned into
 * a kvrpcpb KvPair array at the end. */
typedef struct raw_pairs {
    tkv_buf bytes;
    struct raw_pair_ent {
        size_t koff, klen, voff, vlen;
    } * ents;
    size_t n, cap;
    Kvrpcpb__KvPair *msgs; /* built by stor__raw_pairs_build */
    Kvrpcpb__KvPair **ptrs;
} raw_pairs;

void stor__raw_pairs_init(raw_pairs *p);
void stor__raw_pairs_deinit(raw_pairs *p);
/* Appends a copy of (@k, @v). Errors: -ENOMEM. */
TKV_MUST_USE int stor__raw_pairs_add(raw_pairs *p, tkv_slice k, tkv_slice v);
/* Builds the KvPair messages; *@out and *@n go into a response's repeated field. Lifetime:
 * until stor__raw_pairs_deinit. Errors: -ENOMEM. */
TKV_MUST_USE int stor__raw_pairs_build(raw_pairs *p, Kvrpcpb__KvPair ***out, size_t *n);

/* ---- scans (raw_scan.c) ---------------------------------------------------------------- */

/* Appends to @out at most @limit live pairs of op->cf from @snap: forward over [@start, @end),
 * or with @reverse downward over [@end, @start) (an empty @start then means the region's end).
 * Bounds are clipped to the region; an empty @end means the region's bound. With @key_only
 * values are left empty. Returns 0, TKV_ECORRUPT (a stored value does not decode) or an
 * engine error. */
TKV_MUST_USE int stor__raw_scan_range(raw_op *op, stor_snap *snap, tkv_slice start, tkv_slice end,
                                      uint64_t limit, bool key_only, bool reverse, raw_pairs *out);

/* Returns whether a scan may start at @key in @snap's region (TiKV's inclusive check:
 * start <= key <= end). */
bool stor__raw_scan_seekable(const stor_snap *snap, tkv_slice key);

/* ---- checksums (raw_checksum.c) ---------------------------------------------------------- */

/* Returns the CRC-64/XZ (ECMA-182 polynomial, reflected, init and final XOR all ones: what
 * TiKV's crc64fast and Go's hash/crc64 with the ECMA table compute) of @crc's input followed
 * by @n bytes at @p; start with 0. */
uint64_t stor__crc64(uint64_t crc, const void *p, size_t n);

/* ---- the methods (one file per concept; the table is in raw_methods.c) ------------------ */

int stor__raw_get(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_batch_get(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_put(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_batch_put(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_delete(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_batch_delete(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_delete_range(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_scan(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_batch_scan(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_get_key_ttl(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_compare_and_swap(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);
int stor__raw_checksum(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud);

/* ---- helpers ----------------------------------------------------------------------------- */

static inline tkv_slice raw_bin(ProtobufCBinaryData b)
{
    return tkv_slice_of(b.data, b.len);
}

#endif /* TKV_STORAGE_RAW_INT_H */
