/*
 * kv_seam.c: the storage seam over raftstore (storage/kv.h): writes become proposals to the
 * region's peer, snapshots become lease reads or ReadIndex reads. Checks that need no peer
 * state (store id, entry size, an empty batch) happen here on the caller's thread; the
 * peer checks epoch, leadership and key range. A full mailbox answers ServerIsBusy.
 */
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

/* Header and framing bytes a proposal adds to the encoded requests. */
#define CMD_OVERHEAD 96

static Errorpb__Error *pre_check(rstore *s, const stor_ctx *ctx)
{
    if (ctx->has_peer && ctx->store_id != s->store_id)
        return stor_rerr_store_not_match(ctx->store_id, s->store_id);
    return NULL;
}

/* TiKV's disk-full gate for a write (Peer::check_normal_proposal_with_disk_full_opt, on this
 * store's own state): AlmostFull admits writes whose context allows it, AlreadyFull only
 * those allowed there. A batch of deletions only always passes: it is how an operator or
 * client frees space, and the placeholder released at AlreadyFull pays for its log record. */
static Errorpb__Error *disk_check(rstore *s, const stor_ctx *ctx, const stor_modify *mods, size_t n)
{
    sec_disk_state st = s->opts.sec != NULL ? sec_runtime_disk_state(s->opts.sec) : SEC_DISK_NORMAL;
    if (st == SEC_DISK_NORMAL || ctx->disk_full_opt == KVRPCPB__DISK_FULL_OPT__AllowedOnAlreadyFull)
        return NULL;
    if (st == SEC_DISK_ALMOST_FULL &&
        ctx->disk_full_opt == KVRPCPB__DISK_FULL_OPT__AllowedOnAlmostFull)
        return NULL;
    bool deletes_only = true;
    for (size_t i = 0; i < n && deletes_only; i++)
        deletes_only = mods[i].op == STOR_MODIFY_DELETE || mods[i].op == STOR_MODIFY_DELETE_RANGE;
    if (deletes_only)
        return NULL;
    atomic_fetch_add(&s->stat_disk_full_refused, 1);
    return stor_rerr_disk_full(s->store_id,
                               st == SEC_DISK_FULL ? "disk already full" : "disk almost full");
}

static Errorpb__Error *send_error(rstore *s, uint64_t region_id, int rc)
{
    (void)s;
    if (rc == TKV_ENOTFOUND)
        return stor_rerr_region_not_found(region_id);
    if (rc == TKV_EBUSY)
        return stor_rerr_server_is_busy("raftstore mailbox is full", 50);
    return NULL;
}

static int kv_write(void *impl, const stor_ctx *ctx, const stor_modify *mods, size_t n,
                    stor_write_cb cb, void *ud)
{
    rstore *s = impl;
    if (n == 0 || mods == NULL || cb == NULL || ctx == NULL)
        return -EINVAL;
    if (!atomic_load(&s->accepting))
        return TKV_ECLOSED;
    Errorpb__Error *err = pre_check(s, ctx);
    if (err == NULL)
        err = disk_check(s, ctx, mods, n);
    if (err) {
        cb(ud, 0, err);
        return 0;
    }
    rstore_write_req *w = tkv_calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->ctx = *ctx;
    tkv_buf_init(&w->cmd);
    tkv_buf_init(&w->min_key);
    tkv_buf_init(&w->max_key);
    tkv_buf_init(&w->max_end);
    int rc = rstore__cmd_encode_mods(mods, n, w);
    if (rc != 0) {
        rstore__write_req_free(w);
        return rc;
    }
    if (w->cmd.len + CMD_OVERHEAD > s->opts.raft_entry_max_size) {
        uint64_t size = w->cmd.len + CMD_OVERHEAD;
        rstore__write_req_free(w);
        cb(ud, 0, stor_rerr_raft_entry_too_large(ctx->region_id, size));
        return 0;
    }
    w->cb.kind = RSTORE_CB_WRITE;
    w->cb.fn.write = cb;
    w->cb.ud = ud;
    w->cb.start_ns = tkv_clock_mono_ns();
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_WRITE, ctx->region_id);
    m->u.write = w;
    rc = rstore__router_send(&s->router, m, true);
    if (rc == 0)
        return 0;
    w->cb.kind = RSTORE_CB_NONE;
    rstore__msg_free(m, TKV_ECLOSED);
    err = send_error(s, ctx->region_id, rc);
    if (err == NULL)
        return rc; /* closed: the callback never runs */
    cb(ud, 0, err);
    return 0;
}

static int kv_snapshot(void *impl, const stor_ctx *ctx, stor_snap_cb cb, void *ud)
{
    rstore *s = impl;
    if (cb == NULL || ctx == NULL)
        return -EINVAL;
    if (!atomic_load(&s->accepting))
        return TKV_ECLOSED;
    Errorpb__Error *err = pre_check(s, ctx);
    if (err) {
        cb(ud, 0, err, NULL);
        return 0;
    }
    if (rstore__local_read(s, ctx, cb, ud))
        return 0;
    rstore_read_req *r = tkv_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->ctx = *ctx;
    r->cb = cb;
    r->ud = ud;
    r->start_ns = tkv_clock_mono_ns();
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_READ, ctx->region_id);
    m->u.read = r;
    int rc = rstore__router_send(&s->router, m, true);
    if (rc == 0)
        return 0;
    m->u.read = NULL;
    rstore__msg_free(m, TKV_ECLOSED);
    tkv_free(r);
    err = send_error(s, ctx->region_id, rc);
    if (err == NULL)
        return rc;
    cb(ud, 0, err, NULL);
    return 0;
}

static void kv_free(void *impl)
{
    (void)impl; /* the store outlives its seams and frees itself */
}

static const stor_kv_ops rstore_kv_ops = {
    .write = kv_write,
    .snapshot = kv_snapshot,
    .free = kv_free,
};

int rstore_kv_new(rstore *s, stor_kv **out)
{
    stor_kv *kv = tkv_calloc(1, sizeof(*kv));
    if (kv == NULL)
        return -ENOMEM;
    kv->ops = &rstore_kv_ops;
    kv->impl = s;
    *out = kv;
    return 0;
}

/* ---- the split hook ----------------------------------------------------------------- */

int rstore_split_region(void *impl, const stor_ctx *ctx, const tkv_slice *keys, size_t n,
                        bool is_raw_kv, rstore_split_cb cb, void *ud)
{
    rstore *s = impl;
    (void)is_raw_kv;
    if (ctx == NULL || cb == NULL || (n > 0 && keys == NULL))
        return -EINVAL;
    if (!atomic_load(&s->accepting))
        return TKV_ECLOSED;
    Errorpb__Error *err = pre_check(s, ctx);
    if (err) {
        cb(ud, 0, err, NULL, 0);
        return 0;
    }
    rstore_split_req *r = tkv_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->ctx = *ctx;
    r->keys = tkv_calloc(n ? n : 1, sizeof(tkv_buf));
    if (r->keys == NULL) {
        tkv_free(r);
        return -ENOMEM;
    }
    r->n_keys = n;
    for (size_t i = 0; i < n; i++) {
        tkv_buf_init(&r->keys[i]);
        if (tkv_buf_set(&r->keys[i], keys[i].data, keys[i].len) != 0) {
            rstore__split_req_free(r);
            return -ENOMEM;
        }
    }
    r->cb.kind = RSTORE_CB_SPLIT;
    r->cb.fn.split = cb;
    r->cb.ud = ud;
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_SPLIT_REQ, ctx->region_id);
    m->u.split_req = r;
    int rc = rstore__router_send(&s->router, m, false);
    if (rc == 0)
        return 0;
    r->cb.kind = RSTORE_CB_NONE;
    rstore__msg_free(m, TKV_ECLOSED);
    err = send_error(s, ctx->region_id, rc);
    if (err == NULL)
        return rc;
    cb(ud, 0, err, NULL, 0);
    return 0;
}
