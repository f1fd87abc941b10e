/*
 * tc_scan.c: range operations that walk regions one after another: raw scans (forward and
 * reverse), transactional scan batches (KvScan), and raw delete-range.
 *
 * One task at a time: a task covers the part of the range inside one region. The store
 * answers with min(limit, rows left in that part); fewer rows than asked means the region is
 * done and the walk moves to the next region (forward: from the region's end; reverse: from
 * its start), else the walk goes on after the last key. The cursor only moves on answers, so
 * a region error (a split in the middle of the scan, a leader change) re-routes from the
 * cursor and no key is missed or returned twice.
 */
#include <stdlib.h>

#include "client/tc_int.h"

#define MAX_SCAN_BATCH 10240

static ProtobufCBinaryData bin(tkv_slice s)
{
    ProtobufCBinaryData b = {s.len, (uint8_t *)s.data};
    return b;
}

/* The part of the scan's range inside @r for the next request: [*lo, *hi) (forward and
 * delete-range) or the reverse request's start (exclusive upper bound) and end. */
static void request_range(tc_scan *sc, const tc_region *r, tkv_slice *start, tkv_slice *end)
{
    if (!sc->reverse) {
        *start = tkv_buf_slice(&sc->cursor);
        *end = tkv_buf_slice(&sc->upper);
        if (r->end.len > 0 && (sc->upper.len == 0 || tkv_slice_cmp(tkv_buf_slice(&r->end),
                                                                   tkv_buf_slice(&sc->upper)) < 0))
            *end = tkv_buf_slice(&r->end);
        return;
    }
    /* Reverse: start_key is the exclusive upper bound, end_key the inclusive lower one. An
     * empty start_key (the last region, nothing above) means the end of the key space. */
    *start = sc->cursor_inf ? tkv_buf_slice(&r->end) : tkv_buf_slice(&sc->cursor);
    *end = tkv_buf_slice(&sc->lower);
    if (tkv_slice_cmp(tkv_buf_slice(&r->start), *end) > 0)
        *end = tkv_buf_slice(&r->start);
}

static int scan_build(tc_task *t, Kvrpcpb__Context *ctx, tkv_buf *out)
{
    tc_scan *sc = (tc_scan *)t->op;
    tkv_slice start, end;
    request_range(sc, t->region, &start, &end);
    int rc;
    if (sc->kind == TC_SCAN_DELETE_RANGE) {
        Kvrpcpb__RawDeleteRangeRequest r = KVRPCPB__RAW_DELETE_RANGE_REQUEST__INIT;
        r.context = ctx;
        r.start_key = bin(start);
        r.end_key = bin(end);
        rc = rpc_msg_pack(&r.base, out);
    } else if (sc->kind == TC_SCAN_RAW) {
        Kvrpcpb__RawScanRequest r = KVRPCPB__RAW_SCAN_REQUEST__INIT;
        r.context = ctx;
        r.start_key = bin(start);
        r.end_key = bin(end);
        r.limit = t->limit;
        r.key_only = sc->key_only;
        r.reverse = sc->reverse;
        rc = rpc_msg_pack(&r.base, out);
    } else {
        Kvrpcpb__ScanRequest r = KVRPCPB__SCAN_REQUEST__INIT;
        r.context = ctx;
        r.start_key = bin(start);
        r.end_key = bin(end);
        r.limit = t->limit;
        r.key_only = sc->key_only;
        r.reverse = sc->reverse;
        r.version = sc->version;
        rc = rpc_msg_pack(&r.base, out);
    }
    return rc == 0 ? 0 : TIKVC_ENOMEM;
}

/* Appends a pair to the results. */
static int append(tc_scan *sc, ProtobufCBinaryData key, ProtobufCBinaryData value)
{
    if (tikvc__grow((void **)&sc->out.items, &sc->cap, sc->out.len + 1, sizeof(tikvc_kv)) != 0)
        return TIKVC_ENOMEM;
    tikvc_kv *kv = &sc->out.items[sc->out.len];
    kv->key.data = malloc(key.len ? key.len : 1);
    kv->value.data = malloc(value.len ? value.len : 1);
    if (kv->key.data == NULL || kv->value.data == NULL) {
        free(kv->key.data);
        free(kv->value.data);
        return TIKVC_ENOMEM;
    }
    if (key.len > 0)
        memcpy(kv->key.data, key.data, key.len);
    kv->key.len = key.len;
    if (value.len > 0)
        memcpy(kv->value.data, value.data, value.len);
    kv->value.len = value.len;
    sc->out.len++;
    return 0;
}

static int scan_next(tc_scan *sc, bool may_block);

/* Moves the cursor after an answer of @got rows for a request of @t->limit. */
static void advance(tc_scan *sc, tc_task *t, size_t got, bool stopped)
{
    const tc_region *r = t->region;
    if (stopped)
        return;
    if (sc->kind == TC_SCAN_DELETE_RANGE || got < t->limit) {
        /* The region's part of the range is done. */
        if (!sc->reverse) {
            if (r->end.len == 0 ||
                (sc->upper.len > 0 &&
                 tkv_slice_cmp(tkv_buf_slice(&r->end), tkv_buf_slice(&sc->upper)) >= 0))
                sc->exhausted = true;
            else if (tkv_buf_set(&sc->cursor, r->end.data, r->end.len) != 0)
                tikvc__op_fail(&sc->op, TIKVC_ENOMEM, "out of memory");
        } else {
            if (r->start.len == 0 ||
                tkv_slice_cmp(tkv_buf_slice(&r->start), tkv_buf_slice(&sc->lower)) <= 0) {
                sc->exhausted = true;
            } else {
                sc->cursor_inf = false;
                if (tkv_buf_set(&sc->cursor, r->start.data, r->start.len) != 0)
                    tikvc__op_fail(&sc->op, TIKVC_ENOMEM, "out of memory");
            }
        }
        return;
    }
    /* A full answer: go on after the last key. */
    tikvc_buf *last = &sc->out.items[sc->out.len - 1].key;
    int rc = tkv_buf_set(&sc->cursor, last->data, last->len);
    if (rc == 0 && !sc->reverse)
        rc = tkv_buf_append_u8(&sc->cursor, 0);
    sc->cursor_inf = false;
    if (rc != 0)
        tikvc__op_fail(&sc->op, TIKVC_ENOMEM, "out of memory");
}

static void scan_handle(tc_task *t, ProtobufCMessage *m)
{
    tc_scan *sc = (tc_scan *)t->op;
    size_t got = 0;
    bool stopped = false;
    int rc = 0;
    if (sc->kind == TC_SCAN_DELETE_RANGE) {
        Kvrpcpb__RawDeleteRangeResponse *r = (Kvrpcpb__RawDeleteRangeResponse *)m;
        if (r->error != NULL && r->error[0] != '\0') {
            tikvc__op_fail(&sc->op, TIKVC_ESERVER, "store: %s", r->error);
            return;
        }
    } else if (sc->kind == TC_SCAN_RAW) {
        Kvrpcpb__RawScanResponse *r = (Kvrpcpb__RawScanResponse *)m;
        for (size_t i = 0; i < r->n_kvs && rc == 0 && sc->out.len < sc->limit; i++, got++)
            rc = append(sc, r->kvs[i]->key, r->kvs[i]->value);
        if (r->n_kvs > t->limit)
            rc = TIKVC_ECORRUPT;
    } else {
        Kvrpcpb__ScanResponse *r = (Kvrpcpb__ScanResponse *)m;
        if (r->error != NULL) {
            rc = tikvc__key_error(r->error, "scan");
            if (r->error->locked != NULL) {
                sc->lock = r->error;
                r->error = NULL; /* kept: freed with the scan */
                rc = 0;
                stopped = true;
            }
        }
        for (size_t i = 0; !stopped && i < r->n_pairs && rc == 0 && sc->out.len < sc->limit;
             i++, got++) {
            Kvrpcpb__KvPair *p = r->pairs[i];
            if (p->error != NULL) {
                if (p->error->locked == NULL) {
                    rc = tikvc__key_error(p->error, "scan");
                    break;
                }
                /* Stop at the lock: the caller resolves it and scans on from this key. */
                sc->lock = p->error;
                p->error = NULL;
                stopped = true;
                int sr = tkv_buf_set(&sc->cursor, p->key.data, p->key.len);
                if (sr == 0 && sc->reverse)
                    sr = tkv_buf_append_u8(&sc->cursor, 0);
                sc->cursor_inf = false;
                if (sr != 0)
                    rc = TIKVC_ENOMEM;
                break;
            }
            rc = append(sc, p->key, p->value);
        }
        if (r->n_pairs > t->limit)
            rc = TIKVC_ECORRUPT;
    }
    if (rc != 0) {
        tikvc__op_fail(&sc->op, rc,
                       rc == TIKVC_ECORRUPT ? "a store answered a scan with more rows than asked"
                       : rc == TIKVC_ENOMEM ? "out of memory"
                                            : "%s",
                       tikvc_errmsg());
        return;
    }
    advance(sc, t, got, stopped);
    if (!stopped)
        TKV_IGNORE(scan_next(sc, false));
}

static int scan_reroute(tc_task *t, bool may_block)
{
    return scan_next((tc_scan *)t->op, may_block);
}

static void scan_start(tc_op *op, bool may_block);

static void scan_free(tc_op *op)
{
    tikvc__scan_free((tc_scan *)op);
}

static const tc_op_vt scan_vt = {.build = scan_build,
                                 .handle = scan_handle,
                                 .reroute = scan_reroute,
                                 .start = scan_start,
                                 .free = scan_free};

/* Sends the next task from the cursor (nothing when the scan is complete). */
static int scan_next(tc_scan *sc, bool may_block)
{
    pthread_mutex_lock(&sc->op.mu);
    bool failed = sc->op.rc != 0;
    pthread_mutex_unlock(&sc->op.mu);
    if (failed || sc->exhausted || sc->out.len >= sc->limit || sc->lock != NULL)
        return 0;
    /* A forward cursor past the range's end finishes the walk. */
    if (!sc->reverse && sc->upper.len > 0 &&
        tkv_slice_cmp(tkv_buf_slice(&sc->cursor), tkv_buf_slice(&sc->upper)) >= 0) {
        sc->exhausted = true;
        return 0;
    }
    tkv_slice key =
        sc->reverse && sc->cursor_inf ? tkv_slice_of(NULL, 0) : tkv_buf_slice(&sc->cursor);
    tc_region *r = NULL;
    int rc = tikvc__locate(&sc->op, key, sc->reverse, may_block, &r);
    if (rc == TC_WOULD_BLOCK) {
        tc_task *t = tikvc__task_new(&sc->op, NULL);
        if (t == NULL)
            return TIKVC_ENOMEM;
        t->step = TC_STEP_REROUTE;
        tikvc__exec_post(&sc->op.c->exec, &t->job, 0);
        return 0;
    }
    if (rc != 0) {
        tikvc__op_fail(&sc->op, rc, "%s", tikvc_errmsg());
        return rc;
    }
    tc_task *t = tikvc__task_new(&sc->op, r);
    if (t == NULL)
        return TIKVC_ENOMEM;
    size_t left = sc->limit - sc->out.len;
    size_t batch = sc->batch ? sc->batch : (size_t)sc->op.c->opts.scan_batch;
    t->limit = (uint32_t)TKV_MIN(left, TKV_MIN(batch, (size_t)MAX_SCAN_BATCH));
    tikvc__task_send(t, may_block);
    return 0;
}

int tikvc__scan_new(tikvc_client *c, int kind, tkv_slice lower, tkv_slice upper, size_t limit,
                    unsigned flags, tc_scan **out)
{
    tc_scan *sc = tkv_calloc(1, sizeof(*sc));
    if (sc == NULL)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    const tc_cmd *cmd = kind == TC_SCAN_RAW            ? &tc_cmd_raw_scan
                        : kind == TC_SCAN_DELETE_RANGE ? &tc_cmd_raw_delete_range
                                                       : &tc_cmd_kv_scan;
    tikvc__op_init(&sc->op, c, &scan_vt, cmd, kind == TC_SCAN_TXN ? &c->txn_cache : &c->raw_cache);
    sc->kind = kind;
    sc->reverse = (flags & TIKVC_SCAN_REVERSE) != 0 && kind != TC_SCAN_DELETE_RANGE;
    sc->key_only = (flags & TIKVC_SCAN_KEY_ONLY) != 0;
    sc->limit = kind == TC_SCAN_DELETE_RANGE ? SIZE_MAX : limit;
    tkv_buf_init(&sc->lower);
    tkv_buf_init(&sc->upper);
    tkv_buf_init(&sc->cursor);
    int rc = tkv_buf_set(&sc->lower, lower.data, lower.len);
    if (rc == 0)
        rc = tkv_buf_set(&sc->upper, upper.data, upper.len);
    if (rc == 0) {
        if (sc->reverse) {
            sc->cursor_inf = upper.len == 0;
            rc = tkv_buf_set(&sc->cursor, upper.data, upper.len);
        } else {
            rc = tkv_buf_set(&sc->cursor, lower.data, lower.len);
        }
    }
    if (rc != 0) {
        tikvc__scan_free(sc);
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    }
    /* An empty or inverted range has nothing in it. */
    if (upper.len > 0 && tkv_slice_cmp(lower, upper) >= 0)
        sc->exhausted = true;
    *out = sc;
    return 0;
}

void tikvc__scan_free(tc_scan *sc)
{
    if (sc == NULL)
        return;
    tikvc_kvs_free(&sc->out);
    if (sc->lock != NULL)
        rpc_msg_free(&sc->lock->base);
    tkv_buf_deinit(&sc->lower);
    tkv_buf_deinit(&sc->upper);
    tkv_buf_deinit(&sc->cursor);
    tikvc__op_deinit(&sc->op);
    tkv_free(sc);
}

static void scan_start(tc_op *op, bool may_block)
{
    tc_scan *sc = (tc_scan *)op;
    tikvc__op_hold(&sc->op);
    TKV_IGNORE(scan_next(sc, may_block));
    tikvc__op_release(&sc->op);
}

int tikvc__scan_run(tc_scan *sc)
{
    return tikvc__op_run(&sc->op);
}

/* ---- raw API ---------------------------------------------------------------------------- */

static int check_range(tikvc_client *c, const void *start, size_t start_len, const void *end,
                       size_t end_len)
{
    if (c == NULL || (start == NULL && start_len > 0) || (end == NULL && end_len > 0))
        return tikvc__fail(TIKVC_EINVAL, "NULL argument");
    if (atomic_load(&c->closing))
        return tikvc__fail(TIKVC_ECLOSED, "the client is closing");
    return 0;
}

int tikvc_raw_scan(tikvc_client *c, const void *start, size_t start_len, const void *end,
                   size_t end_len, size_t limit, unsigned flags, tikvc_kvs *out)
{
    int rc = check_range(c, start, start_len, end, end_len);
    if (rc != 0)
        return rc;
    if (out == NULL)
        return tikvc__fail(TIKVC_EINVAL, "NULL output");
    tc_scan *sc = NULL;
    rc = tikvc__scan_new(c, TC_SCAN_RAW, tkv_slice_of(start, start_len), tkv_slice_of(end, end_len),
                         limit, flags, &sc);
    if (rc == 0)
        rc = tikvc__scan_run(sc);
    if (rc == 0) {
        tikvc_kvs_free(out);
        *out = sc->out;
        memset(&sc->out, 0, sizeof(sc->out));
    }
    tikvc__scan_free(sc);
    return rc;
}

int tikvc_raw_delete_range(tikvc_client *c, const void *start, size_t start_len, const void *end,
                           size_t end_len)
{
    int rc = check_range(c, start, start_len, end, end_len);
    if (rc != 0)
        return rc;
    tc_scan *sc = NULL;
    rc = tikvc__scan_new(c, TC_SCAN_DELETE_RANGE, tkv_slice_of(start, start_len),
                         tkv_slice_of(end, end_len), 0, 0, &sc);
    if (rc == 0)
        rc = tikvc__scan_run(sc);
    tikvc__scan_free(sc);
    return rc;
}

static void scan_fill(tc_op *op, tikvc_result *r)
{
    r->kvs = &((tc_scan *)op)->out;
}

int tikvc_raw_scan_async(tikvc_client *c, const void *start, size_t start_len, const void *end,
                         size_t end_len, size_t limit, unsigned flags, tikvc_cb cb, void *ud)
{
    int rc = check_range(c, start, start_len, end, end_len);
    if (rc != 0)
        return rc;
    if (cb == NULL)
        return tikvc__fail(TIKVC_EINVAL, "NULL callback");
    tc_scan *sc = NULL;
    rc = tikvc__scan_new(c, TC_SCAN_RAW, tkv_slice_of(start, start_len), tkv_slice_of(end, end_len),
                         limit, flags, &sc);
    if (rc != 0)
        return rc;
    rc = tikvc__op_start_async(&sc->op, scan_fill, cb, ud);
    if (rc != 0)
        tikvc__scan_free(sc);
    return rc;
}
