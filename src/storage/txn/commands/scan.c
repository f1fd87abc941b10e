/*
 * scan.c: KvScan, forward over [start_key, end_key) or reverse over [end_key, start_key)
 * from the top, at one version, clamped to the region. Exactly `limit` rows come back unless
 * the range runs out (clients take a short answer as the end of the region). A locked key is
 * a row carrying its KeyError; any other failure fails the whole scan (response error).
 */
#include "storage/txn/txn_int.h"

static int process(txn_cmd *c, mvcc_reader *r)
{
    (void)r;
    const Kvrpcpb__ScanRequest *req = (const Kvrpcpb__ScanRequest *)c->req;
    Kvrpcpb__ScanResponse *resp = (Kvrpcpb__ScanResponse *)c->resp;
    size_t limit = TKV_MIN((size_t)req->limit, c->s->opts.max_scan_limit);
    if (limit == 0)
        return 0;
    mvcc_scan_opts o = {.ts = req->version, .desc = req->reverse, .read = c->ropts};
    o.read.key_only = req->key_only;
    o.lower = c->read_lower; /* set up by setup() */
    o.upper = c->read_upper;
    mvcc_scanner *sc;
    int rc = mvcc_scanner_new(c->snap, &o, &sc);
    if (rc != 0)
        return rc;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    resp->pairs = txn_arena_alloc(&c->arena, limit * sizeof(*resp->pairs));
    mvcc_err e;
    mvcc_err_init(&e);
    tkv_buf k, v, raw;
    tkv_buf_init(&k);
    tkv_buf_init(&v);
    tkv_buf_init(&raw);
    if (resp->pairs == NULL)
        rc = -ENOMEM;
    while (rc == 0 && resp->n_pairs < limit) {
        bool done;
        rc = mvcc_scanner_next(sc, &done, &k, &v, &e);
        if (rc != 0 || done)
            break;
        if (e.kind != MVCC_OK && e.kind != MVCC_E_KEY_IS_LOCKED) {
            resp->n_pairs = 0;
            resp->error = txn__key_error(c, &e);
            rc = resp->error ? 0 : -ENOMEM;
            break;
        }
        if (e.kind == MVCC_OK && (rc = txn_key_decode(tkv_buf_slice(&k), &raw)) != 0)
            break;
        Kvrpcpb__KvPair *p =
            txn__kv_pair(c, &e, tkv_buf_slice(&raw), tkv_buf_slice(&v), req->key_only);
        if (p == NULL) {
            rc = -ENOMEM;
            break;
        }
        resp->pairs[resp->n_pairs++] = p;
    }
    tkv_buf_deinit(&k);
    tkv_buf_deinit(&v);
    tkv_buf_deinit(&raw);
    mvcc_err_deinit(&e);
    mvcc_scanner_free(sc);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvScan",
    .snapshot_read = true,
    .resp_desc = &kvrpcpb__scan_response__descriptor,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__ScanRequest *req = (const Kvrpcpb__ScanRequest *)c->req;
    /* The range the scan reads, also the range for 1PC writes it must wait for (bounds taken
     * inclusive there: waiting a little too often is harmless). */
    tkv_slice start, end;
    int rc = txn__encode_range(c, req->start_key, req->end_key, &start, &end);
    if (rc != 0)
        return rc;
    c->read_range = true;
    c->read_lower = req->reverse ? end : start;
    c->read_upper = req->reverse ? start : end;
    /* A forward scan must start inside the region (TiKV: KeyNotInRegion). */
    if (!req->reverse && req->start_key.len > 0)
        return txn__set_keys(c, &req->start_key, 1);
    return 0;
}

int txn__kv_scan(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__ScanRequest *r = (const Kvrpcpb__ScanRequest *)req;
    return txn__submit(s, &def, req, r->context, r->version, setup, cb, ud);
}
