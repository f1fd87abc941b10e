/*
 * pd_etcd.c: the subset of etcd's KV service that real PD exposes through its embedded etcd
 * and that clients use on the PD port: Range, Put, DeleteRange (client-go's transaction
 * client keeps its GC safe point at /tidb/store/gcworker/saved_safe_point and reads it every
 * 10 s). Keys live in PD's storage under "e/"; each record is
 *   create_revision (8 bytes big-endian) | mod_revision | version | lease | value.
 * One revision counter, persisted with each write, numbers the writes as etcd does. Only
 * the latest value of a key is kept (no history, no watches, no leases, no Txn).
 */
#include <inttypes.h>

#include "base/log.h"
#include "etcdserverpb.pb-c.h"
#include "pd/pd_int.h"
#include "rpc/rpc.h"

#define REC_HDR 32

typedef struct rec {
    int64_t create, mod, version, lease;
    tkv_slice value;
} rec;

static int rec_decode(tkv_slice b, rec *r)
{
    if (b.len < REC_HDR)
        return TKV_ECORRUPT;
    r->create = (int64_t)tkv_codec_get_u64_be(b.data);
    r->mod = (int64_t)tkv_codec_get_u64_be(b.data + 8);
    r->version = (int64_t)tkv_codec_get_u64_be(b.data + 16);
    r->lease = (int64_t)tkv_codec_get_u64_be(b.data + 24);
    r->value = tkv_slice_of(b.data + REC_HDR, b.len - REC_HDR);
    return 0;
}

static int rec_encode(const rec *r, tkv_buf *out)
{
    uint8_t h[REC_HDR];
    tkv_codec_put_u64_be(h, (uint64_t)r->create);
    tkv_codec_put_u64_be(h + 8, (uint64_t)r->mod);
    tkv_codec_put_u64_be(h + 16, (uint64_t)r->version);
    tkv_codec_put_u64_be(h + 24, (uint64_t)r->lease);
    tkv_buf_reset(out);
    int rc = tkv_buf_append(out, h, REC_HDR);
    if (rc == 0)
        rc = tkv_buf_append(out, r->value.data, r->value.len);
    return rc;
}

static int storage_key(tkv_slice key, tkv_buf *out)
{
    tkv_buf_reset(out);
    int rc = tkv_buf_append(out, "e/", 2);
    if (rc == 0)
        rc = tkv_buf_append(out, key.data, key.len);
    return rc;
}

int pd__etcd_load(pd_server *s)
{
    bool found = false;
    uint64_t rev = 0;
    int rc = pd__storage_get_u64(s->st, PD_KEY_ETCD_REV, &rev, &found);
    s->etcd_rev = found ? (int64_t)rev : 1;
    return rc;
}

static void fill_header(pd_server *s, Etcdserverpb__ResponseHeader *h, int64_t rev)
{
    etcdserverpb__response_header__init(h);
    h->cluster_id = s->cluster_id;
    h->member_id = s->member_id;
    h->revision = rev;
    h->raft_term = 1;
}

/* Computes the storage range for etcd's (key, range_end): an empty range_end is the key
 * alone, "\0" is every key >= key, else [key, range_end). */
static int storage_range(tkv_slice key, tkv_slice end, tkv_buf *lo, tkv_buf *hi, bool *single)
{
    *single = end.len == 0;
    int rc = storage_key(key, lo);
    if (rc != 0)
        return rc;
    if (*single)
        return 0;
    if (end.len == 1 && end.data[0] == 0)
        return tkv_buf_set(hi, "e0", 2);
    return storage_key(end, hi);
}

typedef struct range_ctx {
    Mvccpb__KeyValue *kvs;
    size_t n, cap;
    int64_t limit;
    int64_t count;
    bool keys_only, count_only;
    tkv_buf *bufs; /* copies of keys and values, alive until the reply */
    size_t nbufs;
    int err;
} range_ctx;

static int keep(range_ctx *c, tkv_slice b, ProtobufCBinaryData *out)
{
    tkv_buf *nb = tkv_realloc(c->bufs, (c->nbufs + 1) * sizeof(*nb));
    if (nb == NULL)
        return -ENOMEM;
    c->bufs = nb;
    tkv_buf_init(&nb[c->nbufs]);
    if (tkv_buf_set(&nb[c->nbufs], b.data, b.len) != 0)
        return -ENOMEM;
    out->data = nb[c->nbufs].data;
    out->len = b.len;
    c->nbufs++;
    return 0;
}

static int range_visit(void *ud, tkv_slice key, tkv_slice val)
{
    range_ctx *c = ud;
    rec r;
    if (rec_decode(val, &r) != 0)
        return TKV_ECORRUPT;
    c->count++;
    if (c->count_only || (c->limit > 0 && (int64_t)c->n >= c->limit))
        return 0;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        Mvccpb__KeyValue *na = tkv_realloc(c->kvs, nc * sizeof(*na));
        if (na == NULL)
            return -ENOMEM;
        c->kvs = na;
        c->cap = nc;
    }
    Mvccpb__KeyValue *kv = &c->kvs[c->n];
    mvccpb__key_value__init(kv);
    int rc = keep(c, tkv_slice_of(key.data + 2, key.len - 2), &kv->key);
    if (rc == 0 && !c->keys_only)
        rc = keep(c, r.value, &kv->value);
    if (rc != 0)
        return rc;
    kv->create_revision = r.create;
    kv->mod_revision = r.mod;
    kv->version = r.version;
    kv->lease = r.lease;
    c->n++;
    return 0;
}

static void range_ctx_free(range_ctx *c)
{
    for (size_t i = 0; i < c->nbufs; i++)
        tkv_buf_deinit(&c->bufs[i]);
    tkv_free(c->bufs);
    tkv_free(c->kvs);
}

static void etcd_range(rpc_call *call, tkv_slice msg, void *ud)
{
    pd_server *s = ud;
    ProtobufCMessage *m;
    if (rpc_msg_unpack(&etcdserverpb__range_request__descriptor, msg, &m) != 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "RangeRequest does not decode");
        return;
    }
    const Etcdserverpb__RangeRequest *req = (const void *)m;
    pthread_mutex_lock(&s->etcd_mu);
    int64_t rev = s->etcd_rev;
    pthread_mutex_unlock(&s->etcd_mu);
    if (req->revision > rev) {
        rpc_msg_free(m);
        rpc_call_finish(call, RPC_OUT_OF_RANGE,
                        "etcdserver: mvcc: required revision is a future revision");
        return;
    }
    /* Sorting by key only; descending scans everything, then keeps the last keys. */
    bool desc = req->sort_order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    range_ctx c = {
        .limit = desc ? 0 : req->limit, .keys_only = req->keys_only, .count_only = req->count_only};
    tkv_buf lo, hi, val;
    tkv_buf_init(&lo);
    tkv_buf_init(&hi);
    tkv_buf_init(&val);
    bool single;
    int rc = storage_range(pd__bytes(req->key), pd__bytes(req->range_end), &lo, &hi, &single);
    if (rc == 0 && single) {
        bool found = false;
        rc = pd__storage_get(s->st, tkv_buf_slice(&lo), &val, &found);
        if (rc == 0 && found)
            rc = range_visit(&c, tkv_buf_slice(&lo), tkv_buf_slice(&val));
    } else if (rc == 0 && tkv_slice_cmp(tkv_buf_slice(&lo), tkv_buf_slice(&hi)) < 0) {
        rc = pd__storage_scan(s->st, tkv_buf_slice(&lo), tkv_buf_slice(&hi), range_visit, &c);
    }
    if (rc == 0 && desc) {
        for (size_t i = 0; i < c.n / 2; i++) {
            Mvccpb__KeyValue t = c.kvs[i];
            c.kvs[i] = c.kvs[c.n - 1 - i];
            c.kvs[c.n - 1 - i] = t;
        }
        if (req->limit > 0 && (int64_t)c.n > req->limit)
            c.n = (size_t)req->limit;
    }
    if (rc != 0) {
        rpc_call_finish(call, RPC_INTERNAL, "etcd range failed in pd storage");
    } else {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        Mvccpb__KeyValue **pkvs = tkv_calloc(c.n ? c.n : 1, sizeof(*pkvs));
        if (pkvs == NULL) {
            rpc_call_finish(call, RPC_INTERNAL, "out of memory");
        } else {
            for (size_t i = 0; i < c.n; i++)
                pkvs[i] = &c.kvs[i];
            Etcdserverpb__ResponseHeader h;
            fill_header(s, &h, rev);
            Etcdserverpb__RangeResponse resp = ETCDSERVERPB__RANGE_RESPONSE__INIT;
            resp.header = &h;
            resp.n_kvs = c.n;
            resp.kvs = pkvs;
            resp.count = c.count;
            resp.more = c.count > (int64_t)c.n && !req->count_only;
            TKV_IGNORE(rpc_call_reply_msg(call, &resp.base));
            tkv_free(pkvs);
        }
    }
    range_ctx_free(&c);
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
    tkv_buf_deinit(&val);
    rpc_msg_free(m);
}

/* Writes @value at etcd key @key (with @keep_value the previous value stays: only the
 * revision moves; the key must exist). Fills *@prev (pointing into @old) and *@found with what
 * was there and *@rev with the new revision. Errors: TKV_ENOTFOUND (keep_value on a missing
 * key), storage errors. */
static int etcd_store(pd_server *s, tkv_slice key, tkv_slice value, bool keep_value, tkv_buf *old,
                      rec *prev, bool *found, int64_t *rev_out)
{
    tkv_buf k, enc;
    tkv_buf_init(&k);
    tkv_buf_init(&enc);
    eng_batch *b = NULL;
    pthread_mutex_lock(&s->etcd_mu);
    *found = false;
    *prev = (rec){0};
    int rc = storage_key(key, &k);
    if (rc == 0)
        rc = pd__storage_get(s->st, tkv_buf_slice(&k), old, found);
    if (rc == 0 && *found)
        rc = rec_decode(tkv_buf_slice(old), prev);
    if (rc == 0 && keep_value && !*found)
        rc = TKV_ENOTFOUND;
    int64_t rev = s->etcd_rev + 1;
    rec r = {.create = *found ? prev->create : rev,
             .mod = rev,
             .version = *found ? prev->version + 1 : 1,
             .value = keep_value ? prev->value : value};
    uint8_t revb[8];
    tkv_codec_put_u64_be(revb, (uint64_t)rev);
    if (rc == 0)
        rc = rec_encode(&r, &enc);
    if (rc == 0)
        rc = pd__storage_batch_new(s->st, &b);
    if (rc == 0)
        rc = eng_batch_put(b, ENG_CF_DEFAULT, tkv_buf_slice(&k), tkv_buf_slice(&enc));
    if (rc == 0)
        rc =
            eng_batch_put(b, ENG_CF_DEFAULT, tkv_slice_str(PD_KEY_ETCD_REV), tkv_slice_of(revb, 8));
    if (rc == 0)
        rc = pd__storage_write(s->st, b, true);
    if (rc == 0)
        s->etcd_rev = rev;
    pthread_mutex_unlock(&s->etcd_mu);
    *rev_out = rev;
    eng_batch_free(b);
    tkv_buf_deinit(&k);
    tkv_buf_deinit(&enc);
    return rc;
}

int pd__etcd_put_value(pd_server *s, tkv_slice key, tkv_slice value)
{
    tkv_buf old;
    tkv_buf_init(&old);
    rec prev;
    bool found;
    int64_t rev;
    int rc = etcd_store(s, key, value, false, &old, &prev, &found, &rev);
    tkv_buf_deinit(&old);
    return rc;
}

int pd__etcd_get_value(pd_server *s, tkv_slice key, tkv_buf *value, bool *found)
{
    tkv_buf k, raw;
    tkv_buf_init(&k);
    tkv_buf_init(&raw);
    *found = false;
    int rc = storage_key(key, &k);
    if (rc == 0)
        rc = pd__storage_get(s->st, tkv_buf_slice(&k), &raw, found);
    rec r;
    if (rc == 0 && *found)
        rc = rec_decode(tkv_buf_slice(&raw), &r);
    if (rc == 0 && *found)
        rc = tkv_buf_append(value, r.value.data, r.value.len);
    tkv_buf_deinit(&k);
    tkv_buf_deinit(&raw);
    return rc;
}

static void etcd_put(rpc_call *call, tkv_slice msg, void *ud)
{
    pd_server *s = ud;
    ProtobufCMessage *m;
    if (rpc_msg_unpack(&etcdserverpb__put_request__descriptor, msg, &m) != 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "PutRequest does not decode");
        return;
    }
    const Etcdserverpb__PutRequest *req = (const void *)m;
    if (req->key.len == 0) {
        rpc_msg_free(m);
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "etcdserver: key is not provided");
        return;
    }
    if (req->lease != 0) {
        rpc_msg_free(m);
        rpc_call_finish(call, RPC_NOT_FOUND, "etcdserver: requested lease not found");
        return;
    }
    tkv_buf old;
    tkv_buf_init(&old);
    rec prev;
    bool found;
    int64_t rev;
    int rc = etcd_store(s, pd__bytes(req->key), pd__bytes(req->value), req->ignore_value, &old,
                        &prev, &found, &rev);
    if (rc == TKV_ENOTFOUND) {
        rpc_call_finish(call, RPC_NOT_FOUND, "etcdserver: key not found");
        goto out;
    }
    if (rc != 0) {
        rpc_call_finish(call, RPC_INTERNAL, "etcd put failed in pd storage");
        goto out;
    }
    Etcdserverpb__ResponseHeader h;
    fill_header(s, &h, rev);
    Etcdserverpb__PutResponse resp = ETCDSERVERPB__PUT_RESPONSE__INIT;
    resp.header = &h;
    Mvccpb__KeyValue pkv = MVCCPB__KEY_VALUE__INIT;
    if (req->prev_kv && found) {
        pkv.key = req->key;
        pkv.value.data = (uint8_t *)prev.value.data;
        pkv.value.len = prev.value.len;
        pkv.create_revision = prev.create;
        pkv.mod_revision = prev.mod;
        pkv.version = prev.version;
        resp.prev_kv = &pkv;
    }
    TKV_IGNORE(rpc_call_reply_msg(call, &resp.base));
out:
    tkv_buf_deinit(&old);
    rpc_msg_free(m);
}

typedef struct del_ctx {
    eng_batch *b;
    int64_t deleted;
    range_ctx prev; /* with prev_kv: the deleted pairs */
    bool want_prev;
} del_ctx;

static int del_visit(void *ud, tkv_slice key, tkv_slice val)
{
    del_ctx *d = ud;
    int rc = eng_batch_delete(d->b, ENG_CF_DEFAULT, key);
    if (rc != 0)
        return rc;
    d->deleted++;
    return d->want_prev ? range_visit(&d->prev, key, val) : 0;
}

static void etcd_delete_range(rpc_call *call, tkv_slice msg, void *ud)
{
    pd_server *s = ud;
    ProtobufCMessage *m;
    if (rpc_msg_unpack(&etcdserverpb__delete_range_request__descriptor, msg, &m) != 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "DeleteRangeRequest does not decode");
        return;
    }
    const Etcdserverpb__DeleteRangeRequest *req = (const void *)m;
    del_ctx d = {.want_prev = req->prev_kv};
    tkv_buf lo, hi, val;
    tkv_buf_init(&lo);
    tkv_buf_init(&hi);
    tkv_buf_init(&val);
    pthread_mutex_lock(&s->etcd_mu);
    bool single;
    int rc = storage_range(pd__bytes(req->key), pd__bytes(req->range_end), &lo, &hi, &single);
    if (rc == 0)
        rc = pd__storage_batch_new(s->st, &d.b);
    if (rc == 0 && single) {
        bool found = false;
        rc = pd__storage_get(s->st, tkv_buf_slice(&lo), &val, &found);
        if (rc == 0 && found)
            rc = del_visit(&d, tkv_buf_slice(&lo), tkv_buf_slice(&val));
    } else if (rc == 0 && tkv_slice_cmp(tkv_buf_slice(&lo), tkv_buf_slice(&hi)) < 0) {
        rc = pd__storage_scan(s->st, tkv_buf_slice(&lo), tkv_buf_slice(&hi), del_visit, &d);
    }
    int64_t rev = s->etcd_rev;
    if (rc == 0 && d.deleted > 0) {
        rev++;
        uint8_t revb[8];
        tkv_codec_put_u64_be(revb, (uint64_t)rev);
        rc = eng_batch_put(d.b, ENG_CF_DEFAULT, tkv_slice_str(PD_KEY_ETCD_REV),
                           tkv_slice_of(revb, 8));
        if (rc == 0)
            rc = pd__storage_write(s->st, d.b, true);
        if (rc == 0)
            s->etcd_rev = rev;
    }
    pthread_mutex_unlock(&s->etcd_mu);
    if (rc != 0) {
        rpc_call_finish(call, RPC_INTERNAL, "etcd delete failed in pd storage");
    } else {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        Mvccpb__KeyValue **pkvs = tkv_calloc(d.prev.n ? d.prev.n : 1, sizeof(*pkvs));
        if (pkvs == NULL) {
            rpc_call_finish(call, RPC_INTERNAL, "out of memory");
        } else {
            for (size_t i = 0; i < d.prev.n; i++)
                pkvs[i] = &d.prev.kvs[i];
            Etcdserverpb__ResponseHeader h;
            fill_header(s, &h, rev);
            Etcdserverpb__DeleteRangeResponse resp = ETCDSERVERPB__DELETE_RANGE_RESPONSE__INIT;
            resp.header = &h;
            resp.deleted = d.deleted;
            resp.n_prev_kvs = d.prev.n;
            resp.prev_kvs = pkvs;
            TKV_IGNORE(rpc_call_reply_msg(call, &resp.base));
            tkv_free(pkvs);
        }
    }
    eng_batch_free(d.b);
    range_ctx_free(&d.prev);
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
    tkv_buf_deinit(&val);
    rpc_msg_free(m);
}

int pd__etcd_register(pd_server *s)
{
    static const struct {
        const char *path;
        void (*fn)(rpc_call *, tkv_slice, void *);
    } methods[] = {
        {"/etcdserverpb.KV/Range", etcd_range},
        {"/etcdserverpb.KV/Put", etcd_put},
        {"/etcdserverpb.KV/DeleteRange", etcd_delete_range},
    };
    for (size_t i = 0; i < TKV_ARRAY_LEN(methods); i++) {
        rpc_handler h = {.type = RPC_UNARY, .on_request = methods[i].fn, .ud = s};
        int rc = rpc_server_add_method(s->rpc, methods[i].path, &h);
        if (rc != 0)
            return rc;
    }
    return 0;
}
