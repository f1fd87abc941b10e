/*
 * raw_op.c: a raw request in flight: its replies, and the snapshot, write and latch steps that
 * lead to them (see raw_int.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "base/clock.h"
#include "storage/raw/raw_int.h"

raw_op *stor__raw_op_new(stor *s, const raw_cmd *cmd, const Kvrpcpb__Context *pbctx,
                         const void *req, stor_done_cb cb, void *ud)
{
    raw_op *op = tkv_calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->s = s;
    op->cmd = cmd;
    op->cb = cb;
    op->ud = ud;
    op->req = req;
    op->cf = ENG_CF_DEFAULT;
    stor_ctx_from_pb(&op->ctx, pbctx);
    if (s->opts.enable_ttl)
        op->now_s = stor__raw_now_s(s);
    tkv_buf_init(&op->prev);
    return op;
}

void stor__raw_op_free(raw_op *op)
{
    if (op == NULL)
        return;
    if (op->latch != NULL)
        stor_latch_release(op->s->latches, op->latch);
    tkv_buf_deinit(&op->prev);
    tkv_free(op);
}

void stor__raw_reply(raw_op *op, const ProtobufCMessage *resp)
{
    /* Answer first, then let the next command on these keys in: its latch callback may run
     * on this thread, inside stor_latch_release. */
    op->cb(op->ud, resp);
    stor__raw_op_free(op);
}

/* Room for any raw response struct (the largest is well under this). */
typedef union raw_resp_buf {
    ProtobufCMessage base;
    uint64_t words[48];
} raw_resp_buf;

/* Stores @size bytes at @val into the member at @offset of message @m (reflection). */
static void set_member(ProtobufCMessage *m, unsigned offset, const void *val, size_t size)
{
    memcpy((char *)m + offset, val, size);
}

static ProtobufCMessage *empty_resp(raw_op *op, raw_resp_buf *buf)
{
    const ProtobufCMessageDescriptor *d = op->cmd->resp_desc;
    TKV_ASSERT(d->sizeof_message <= sizeof(*buf));
    protobuf_c_message_init(d, buf);
    return &buf->base;
}

void stor__raw_reply_ok(raw_op *op)
{
    raw_resp_buf buf;
    stor__raw_reply(op, empty_resp(op, &buf));
}

void stor__raw_reply_rerr(raw_op *op, Errorpb__Error *rerr)
{
    raw_resp_buf buf;
    ProtobufCMessage *resp = empty_resp(op, &buf);
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(resp->descriptor, "region_error");
    TKV_ASSERT(f != NULL && f->descriptor == &errorpb__error__descriptor);
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): copies a pointer */
    set_member(resp, f->offset, &rerr, sizeof(rerr));
    stor__raw_reply(op, resp);
    stor_rerr_free(rerr);
}

/* Returns the repeated KvPair field of @d, or NULL. */
static const ProtobufCFieldDescriptor *pairs_field(const ProtobufCMessageDescriptor *d)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_MESSAGE &&
            f->descriptor == &kvrpcpb__kv_pair__descriptor)
            return f;
    }
    return NULL;
}

void stor__raw_reply_error(raw_op *op, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    raw_resp_buf buf;
    ProtobufCMessage *resp = empty_resp(op, &buf);
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(resp->descriptor, "error");
    Kvrpcpb__KeyError ke = KVRPCPB__KEY_ERROR__INIT;
    Kvrpcpb__KvPair pair = KVRPCPB__KV_PAIR__INIT;
    Kvrpcpb__KvPair *pairs[1] = {&pair};
    if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED) {
        char *text = msg;
        set_member(resp, f->offset, &text, sizeof(text));
    } else {
        /* TiKV's extract_kv_pairs: a failed scan or batch get is one pair with an error. */
        f = pairs_field(resp->descriptor);
        TKV_ASSERT(f != NULL);
        ke.abort = msg;
        pair.error = &ke;
        size_t one = 1;
        Kvrpcpb__KvPair **list = pairs;
        set_member(resp, f->quantifier_offset, &one, sizeof(one));
        set_member(resp, f->offset, &list, sizeof(list));
    }
    stor__raw_reply(op, resp);
}

/* ---- snapshot ------------------------------------------------------------------------- */

static void on_snap(void *ud, int rc, Errorpb__Error *rerr, stor_snap *snap)
{
    raw_op *op = ud;
    if (rerr != NULL) {
        stor_snap_release(snap);
        stor__raw_reply_rerr(op, rerr);
    } else if (rc != 0) {
        stor_snap_release(snap);
        stor__raw_reply_error(op, "get snapshot failed: %s", tkv_strerror(rc));
    } else {
        op->on_snap(op, snap);
    }
}

int stor__raw_read(raw_op *op, raw_snap_fn fn)
{
    op->on_snap = fn;
    return stor_kv_snapshot(op->s->kv, &op->ctx, on_snap, op);
}

/* ---- write ---------------------------------------------------------------------------- */

static void on_written(void *ud, int rc, Errorpb__Error *rerr)
{
    raw_op *op = ud;
    if (rerr != NULL) {
        stor__raw_reply_rerr(op, rerr);
    } else if (rc == TKV_ECLOSED) {
        /* TiKV answers a closing storage with a region error so clients go elsewhere. */
        Errorpb__Error *e = stor_rerr_message("TiKV is Closing");
        if (e != NULL)
            stor__raw_reply_rerr(op, e);
        else
            stor__raw_reply_error(op, "TiKV is Closing");
    } else if (rc != 0) {
        stor__raw_reply_error(op, "write failed: %s", tkv_strerror(rc));
    } else if (op->on_written != NULL) {
        op->on_written(op);
    } else {
        stor__raw_reply_ok(op);
    }
}

int stor__raw_write(raw_op *op, const stor_modify *mods, size_t n)
{
    return stor_kv_write(op->s->kv, &op->ctx, mods, n, on_written, op);
}

int stor__raw_run_read(raw_op *op, raw_snap_fn fn)
{
    int rc = stor__raw_read(op, fn);
    if (rc != 0)
        stor__raw_op_free(op);
    return rc;
}

/* ---- latches -------------------------------------------------------------------------- */

static void on_latched(void *ud)
{
    raw_op *op = ud;
    if (op->ctx.deadline_ms != 0 && tkv_clock_mono_ms() >= op->ctx.deadline_ms) {
        /* TiKV's DeadlineExceeded: ServerIsBusy, so the client backs off and retries. */
        Errorpb__Error *e = stor_rerr_server_is_busy("deadline is exceeded", 0);
        if (e != NULL)
            stor__raw_reply_rerr(op, e);
        else
            stor__raw_reply_error(op, "Deadline is exceeded");
        return;
    }
    op->on_latched(op);
}

int stor__raw_latch(raw_op *op, const tkv_slice *keys, size_t n, raw_step_fn fn)
{
    stor_latch *l;
    int rc = stor_latch_new(op->s->latches, keys, n, &l);
    if (rc != 0)
        return rc;
    op->latch = l;
    op->on_latched = fn;
    rc = stor_latch_acquire(op->s->latches, l, on_latched, op);
    if (rc != 0) {
        /* Not queued: the callback never runs. */
        op->latch = NULL;
        stor_latch_free(l);
    }
    return rc;
}

/* ---- reads ---------------------------------------------------------------------------- */

void stor__raw_reply_not_in_region(raw_op *op, stor_snap *snap, tkv_slice key)
{
    Errorpb__Error *e = stor_rerr_key_not_in_region(key, snap->region);
    stor_snap_release(snap);
    if (e != NULL)
        stor__raw_reply_rerr(op, e);
    else
        stor__raw_reply_error(op, "key is not in region");
}

bool stor__raw_check_in_region(raw_op *op, stor_snap *snap, tkv_slice key)
{
    if (stor_snap_key_in_region(snap, key))
        return true;
    stor__raw_reply_not_in_region(op, snap, key);
    return false;
}

int stor__raw_snap_get(raw_op *op, const stor_snap *snap, tkv_slice key, tkv_buf *buf,
                       tkv_slice *user, uint64_t *expire_s, bool *found)
{
    bool present;
    int rc = stor_snap_get(snap, op->cf, key, buf, &present);
    if (rc != 0)
        return rc;
    *found = false;
    *expire_s = 0;
    *user = tkv_slice_of(NULL, 0);
    if (!present)
        return 0;
    bool live;
    rc = stor__raw_decode_value(op->s, tkv_buf_slice(buf), op->now_s, user, expire_s, &live);
    if (rc != 0)
        return rc;
    *found = live;
    return 0;
}

bool stor__raw_read_key(raw_op *op, stor_snap *snap, tkv_slice key, raw_point *out)
{
    memset(out, 0, sizeof(*out));
    tkv_buf_init(&out->buf);
    if (!stor__raw_check_in_region(op, snap, key))
        return false;
    int rc = stor__raw_snap_get(op, snap, key, &out->buf, &out->user, &out->expire_s, &out->found);
    stor_snap_release(snap);
    if (rc != 0) {
        stor__raw_reply_read_error(op, rc);
        return false;
    }
    return true;
}

void stor__raw_reply_read_error(raw_op *op, int rc)
{
    if (rc == TKV_ECORRUPT)
        stor__raw_reply_error(op, RAW_CORRUPT_VALUE_MSG);
    else
        stor__raw_reply_error(op, "engine read failed: %s", tkv_strerror(rc));
}
