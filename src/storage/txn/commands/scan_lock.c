/*
 * scan_lock.c: KvScanLock (TiKV's Storage::scan_lock): the locks in [start_key, end_key) of
 * the region with start_ts <= max_version, at most limit of them (0: no limit).
 */
#include "storage/txn/txn_int.h"

typedef struct scan_ctx {
    txn_cmd *c;
    size_t cap;
    tkv_buf raw;
    int rc;
} scan_ctx;

static int add_lock(void *ud, tkv_slice enc_key, const txn_lock *lock)
{
    scan_ctx *s = ud;
    Kvrpcpb__ScanLockResponse *resp = (Kvrpcpb__ScanLockResponse *)s->c->resp;
    if (resp->n_locks == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        Kvrpcpb__LockInfo **locks = txn_arena_alloc(&s->c->arena, cap * sizeof(*locks));
        if (locks == NULL)
            return -ENOMEM;
        if (resp->n_locks)
            /* NOLINTNEXTLINE(bugprone-sizeof-expression): copies a pointer */
            memcpy(locks, resp->locks, resp->n_locks * sizeof(*locks));
        resp->locks = locks;
        s->cap = cap;
    }
    int rc = txn_key_decode(enc_key, &s->raw);
    if (rc != 0)
        return rc;
    Kvrpcpb__LockInfo *li = txn__lock_info(s->c, lock, tkv_buf_slice(&s->raw));
    if (li == NULL)
        return -ENOMEM;
    resp->locks[resp->n_locks++] = li;
    return 0;
}

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__ScanLockRequest *req = (const Kvrpcpb__ScanLockRequest *)c->req;
    tkv_slice start, end;
    int rc = txn__encode_range(c, req->start_key, req->end_key, &start, &end);
    if (rc != 0)
        return rc;
    scan_ctx s = {.c = c};
    tkv_buf_init(&s.raw);
    /* max_version 0 would match nothing in TiKV's filter (lock.ts <= 0). */
    if (req->max_version > 0)
        rc = mvcc_scan_locks(r, start, end, req->max_version, req->limit, add_lock, &s);
    tkv_buf_deinit(&s.raw);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvScanLock",
    .resp_desc = &kvrpcpb__scan_lock_response__descriptor,
    .process = process,
};

int txn__kv_scan_lock(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__ScanLockRequest *r = (const Kvrpcpb__ScanLockRequest *)req;
    return txn__submit(s, &def, req, r->context, r->max_version, NULL, cb, ud);
}
