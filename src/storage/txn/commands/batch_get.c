/*
 * batch_get.c: KvBatchGet, point reads of several keys at one version. Absent keys are
 * omitted; a locked key comes back as a pair carrying its KeyError.
 */
#include "storage/txn/txn_int.h"

static int process(txn_cmd *c, mvcc_reader *r)
{
    const Kvrpcpb__BatchGetRequest *req = (const Kvrpcpb__BatchGetRequest *)c->req;
    Kvrpcpb__BatchGetResponse *resp = (Kvrpcpb__BatchGetResponse *)c->resp;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    resp->pairs = txn_arena_alloc(&c->arena, c->n_keys * sizeof(*resp->pairs));
    if (resp->pairs == NULL && c->n_keys > 0)
        return -ENOMEM;
    mvcc_err e;
    mvcc_err_init(&e);
    tkv_buf v;
    tkv_buf_init(&v);
    int rc = 0;
    for (size_t i = 0; i < c->n_keys && rc == 0; i++) {
        bool found;
        mvcc_err_reset(&e);
        rc = mvcc_point_get(r, c->keys[i], req->version, &c->ropts, &v, &found, &e);
        if (rc != 0 || (!found && e.kind == MVCC_OK))
            continue;
        Kvrpcpb__KvPair *p = txn__kv_pair(c, &e, tkv_slice_of(req->keys[i].data, req->keys[i].len),
                                          tkv_buf_slice(&v), false);
        if (p == NULL) {
            rc = -ENOMEM;
            break;
        }
        resp->pairs[resp->n_pairs++] = p;
    }
    tkv_buf_deinit(&v);
    mvcc_err_deinit(&e);
    return rc;
}

static const txn_cmd_def def = {
    .name = "KvBatchGet",
    .snapshot_read = true,
    .resp_desc = &kvrpcpb__batch_get_response__descriptor,
    .process = process,
};

static int setup(txn_cmd *c)
{
    const Kvrpcpb__BatchGetRequest *req = (const Kvrpcpb__BatchGetRequest *)c->req;
    return txn__set_keys(c, req->keys, req->n_keys);
}

int txn__kv_batch_get(stor *s, const ProtobufCMessage *req, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__BatchGetRequest *r = (const Kvrpcpb__BatchGetRequest *)req;
    return txn__submit(s, &def, req, r->context, r->version, setup, cb, ud);
}
