/*
 * tb_drv_etcd.c: the etcd driver. etcd's own KV API (etcdserverpb.KV: Put, Range, Txn) over
 * src/rpc's asynchronous unary calls, to the leader (found with Maintenance/Status: the
 * member whose id is the leader id it reports), spread over `conns` HTTP/2 connections.
 *
 * Operations:
 *   put        KV/Put
 *   get        KV/Range of one key, linearizable (etcd's default: a ReadIndex round)
 *   get-ser    KV/Range with serializable = true (the member's local state, maybe stale)
 *   scan       KV/Range over [k_i, k_{i+100}) with limit 100
 *   txn-put    KV/Txn{compare mod_revision(k) < max, success: put k}: one conditional write
 *   transfer   KV/Txn reading the 4 accounts at one revision, then KV/Txn{compare each
 *              mod_revision == the one read, success: 4 puts}; a failed compare re-reads
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "etcdserverpb.pb-c.h"
#include "rpc/rpc.h"
#include "tb.h"

#define M_PUT    "/etcdserverpb.KV/Put"
#define M_RANGE  "/etcdserverpb.KV/Range"
#define M_TXN    "/etcdserverpb.KV/Txn"
#define M_STATUS "/etcdserverpb.Maintenance/Status"

/* etcd's default --max-txn-ops. */
#define PRELOAD_BATCH   128
#define MAX_CONNS       64
#define MAX_TXN_RETRIES 1000
#define LEADER_WAIT_MS  20000

struct tb_driver {
    const tb_env *env;
    rpc_client *cl;
    rpc_channel *ch[MAX_CONNS];
    int n_ch;
    char leader[128];
};

/* Per-slot state of multi-step operations. */
typedef struct etcd_op {
    tb_driver *d;
    int step; /* transfer: 0 read, 1 write */
    tb_write w[TB_TRANSFER_N];
    uint32_t floors[TB_SCAN_LEN];
    int64_t mod_rev[TB_TRANSFER_N];
    int64_t balance[TB_TRANSFER_N];
} etcd_op;

static rpc_channel *chan_for(tb_driver *d, const tb_op *op)
{
    return d->ch[(unsigned)op->client % (unsigned)d->n_ch];
}

static const char *kind_name(tb_op_kind k)
{
    static const char *const names[] = {"Put",          "Range",         "Range (serializable)",
                                        "Range (scan)", "Txn (txn-put)", "Txn (transfer)"};
    return names[k];
}

/* Packs @m and starts the call; @op comes back to on_reply. */
static void on_reply(const rpc_status *st, tkv_slice resp, void *ud);

static int call_async(tb_driver *d, tb_op *op, const char *method, const ProtobufCMessage *m)
{
    uint8_t stack[1024];
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = n <= sizeof(stack) ? stack : tkv_malloc(n);
    if (buf == NULL)
        return -ENOMEM;
    protobuf_c_message_pack(m, buf);
    int rc = rpc_unary_async(chan_for(d, op), method, tkv_slice_of(buf, n), d->env->timeout_ms,
                             on_reply, op);
    if (buf != stack)
        tkv_free(buf);
    return rc;
}

/* ---- requests ------------------------------------------------------------------------ */

static int send_put(tb_driver *d, tb_op *op, etcd_op *eo)
{
    uint8_t key[TB_KEY_LEN], val[TB_VALUE_LEN];
    tb_ledger *l = d->env->kv;
    tb_ledger_write_begin(l, op->idx[0], &eo->w[0]);
    tb_ledger_key(l, op->idx[0], key);
    tb_value_make(key, l->epoch, eo->w[0].version, 0, val);
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){TB_KEY_LEN, key};
    req.value = (ProtobufCBinaryData){TB_VALUE_LEN, val};
    int rc = call_async(d, op, M_PUT, &req.base);
    if (rc != 0)
        tb_ledger_write_end(l, &eo->w[0], false);
    return rc;
}

static int send_range(tb_driver *d, tb_op *op, etcd_op *eo)
{
    tb_ledger *l = d->env->kv;
    uint8_t key[TB_KEY_LEN], end[TB_KEY_LEN];
    tb_ledger_key(l, op->idx[0], key);
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){TB_KEY_LEN, key};
    if (op->kind == TB_OP_SCAN) {
        tb_ledger_key(l, op->idx[0] + TB_SCAN_LEN, end);
        req.range_end = (ProtobufCBinaryData){TB_KEY_LEN, end};
        req.limit = TB_SCAN_LEN;
        for (uint64_t i = 0; i < TB_SCAN_LEN && op->idx[0] + i < l->n; i++)
            eo->floors[i] = tb_ledger_read_begin(l, op->idx[0] + i);
    } else {
        eo->floors[0] = tb_ledger_read_begin(l, op->idx[0]);
        req.serializable = op->kind == TB_OP_GET_SER;
    }
    return call_async(d, op, M_RANGE, &req.base);
}

static int send_txn_put(tb_driver *d, tb_op *op, etcd_op *eo)
{
    tb_ledger *l = d->env->txn;
    uint8_t key[TB_KEY_LEN], val[TB_VALUE_LEN];
    tb_ledger_write_begin(l, op->idx[0], &eo->w[0]);
    tb_ledger_key(l, op->idx[0], key);
    tb_value_make(key, l->epoch, eo->w[0].version, 0, val);
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    cmp.key = (ProtobufCBinaryData){TB_KEY_LEN, key};
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    cmp.mod_revision = INT64_MAX;
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key = cmp.key;
    put.value = (ProtobufCBinaryData){TB_VALUE_LEN, val};
    Etcdserverpb__RequestOp rop = ETCDSERVERPB__REQUEST_OP__INIT;
    rop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    rop.request_put = &put;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__RequestOp *rops[1] = {&rop};
    Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
    req.n_compare = 1;
    req.compare = cmps;
    req.n_success = 1;
    req.success = rops;
    int rc = call_async(d, op, M_TXN, &req.base);
    if (rc != 0)
        tb_ledger_write_end(l, &eo->w[0], false);
    return rc;
}

/* Transfer, step 0: one Txn reading the 4 accounts at one revision. */
static int send_transfer_read(tb_driver *d, tb_op *op, etcd_op *eo)
{
    tb_ledger *l = d->env->accounts;
    uint8_t keys[TB_TRANSFER_N][TB_KEY_LEN];
    Etcdserverpb__RangeRequest rr[TB_TRANSFER_N];
    Etcdserverpb__RequestOp rop[TB_TRANSFER_N];
    Etcdserverpb__RequestOp *rops[TB_TRANSFER_N];
    for (int i = 0; i < TB_TRANSFER_N; i++) {
        tb_ledger_key(l, op->idx[i], keys[i]);
        eo->floors[i] = tb_ledger_read_begin(l, op->idx[i]);
        etcdserverpb__range_request__init(&rr[i]);
        rr[i].key = (ProtobufCBinaryData){TB_KEY_LEN, keys[i]};
        etcdserverpb__request_op__init(&rop[i]);
        rop[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
        rop[i].request_range = &rr[i];
        rops[i] = &rop[i];
    }
    Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
    req.n_success = TB_TRANSFER_N;
    req.success = rops;
    eo->step = 0;
    return call_async(d, op, M_TXN, &req.base);
}

/* Transfer, step 1: write the new balances if no account changed since the read. */
static int send_transfer_write(tb_driver *d, tb_op *op, etcd_op *eo)
{
    tb_ledger *l = d->env->accounts;
    uint8_t keys[TB_TRANSFER_N][TB_KEY_LEN], vals[TB_TRANSFER_N][TB_VALUE_LEN];
    Etcdserverpb__Compare cmp[TB_TRANSFER_N];
    Etcdserverpb__Compare *cmps[TB_TRANSFER_N];
    Etcdserverpb__PutRequest put[TB_TRANSFER_N];
    Etcdserverpb__RequestOp rop[TB_TRANSFER_N];
    Etcdserverpb__RequestOp *rops[TB_TRANSFER_N];
    for (int i = 0; i < TB_TRANSFER_N; i++) {
        int64_t delta = op->amount[i / 2] * (i % 2 == 0 ? -1 : 1);
        tb_ledger_key(l, op->idx[i], keys[i]);
        tb_ledger_write_begin(l, op->idx[i], &eo->w[i]);
        tb_value_make(keys[i], l->epoch, eo->w[i].version, eo->balance[i] + delta, vals[i]);
        etcdserverpb__compare__init(&cmp[i]);
        cmp[i].result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
        cmp[i].target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
        cmp[i].key = (ProtobufCBinaryData){TB_KEY_LEN, keys[i]};
        cmp[i].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        cmp[i].mod_revision = eo->mod_rev[i];
        cmps[i] = &cmp[i];
        etcdserverpb__put_request__init(&put[i]);
        put[i].key = cmp[i].key;
        put[i].value = (ProtobufCBinaryData){TB_VALUE_LEN, vals[i]};
        etcdserverpb__request_op__init(&rop[i]);
        rop[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        rop[i].request_put = &put[i];
        rops[i] = &rop[i];
    }
    Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
    req.n_compare = TB_TRANSFER_N;
    req.compare = cmps;
    req.n_success = TB_TRANSFER_N;
    req.success = rops;
    eo->step = 1;
    int rc = call_async(d, op, M_TXN, &req.base);
    if (rc != 0)
        for (int i = 0; i < TB_TRANSFER_N; i++)
            tb_ledger_write_end(l, &eo->w[i], false);
    return rc;
}

/* ---- replies ------------------------------------------------------------------------- */

static void end_writes(tb_ledger *l, etcd_op *eo, int n, bool ok)
{
    for (int i = 0; i < n; i++)
        tb_ledger_write_end(l, &eo->w[i], ok);
}

/* Checks one Range answer for a single key (kvs empty: not found). */
static void check_one(tb_op *op, tb_ledger *l, uint64_t idx, uint32_t floor, bool lin,
                      const Etcdserverpb__RangeResponse *rr, tb_value_info *info, int64_t *rev)
{
    if (rr->n_kvs == 0) {
        TKV_IGNORE(tb_ledger_check(l, idx, floor, lin, NULL, 0, info, op->err, sizeof(op->err)));
        op->rc = -EIO;
        return;
    }
    const Mvccpb__KeyValue *kv = rr->kvs[0];
    if (tb_ledger_check(l, idx, floor, lin, kv->value.data, kv->value.len, info, op->err,
                        sizeof(op->err)) != 0)
        op->rc = -EIO;
    if (rev != NULL)
        *rev = kv->mod_revision;
}

/* Points @pairs at the key-value pairs of @rr (at most TB_SCAN_LEN used by scans). */
static void range_pairs(const Etcdserverpb__RangeResponse *rr, tb_pair *pairs, size_t cap)
{
    for (size_t i = 0; i < rr->n_kvs && i < cap; i++) {
        pairs[i].key = tkv_slice_of(rr->kvs[i]->key.data, rr->kvs[i]->key.len);
        pairs[i].value = tkv_slice_of(rr->kvs[i]->value.data, rr->kvs[i]->value.len);
    }
}

static void check_scan(tb_op *op, tb_ledger *l, etcd_op *eo, const Etcdserverpb__RangeResponse *rr)
{
    uint64_t want = l->n - op->idx[0] < TB_SCAN_LEN ? l->n - op->idx[0] : TB_SCAN_LEN;
    tb_pair pairs[TB_SCAN_LEN];
    range_pairs(rr, pairs, TB_SCAN_LEN);
    if (tb_ledger_check_range(l, op->idx[0], want, eo->floors, pairs,
                              TKV_MIN(rr->n_kvs, (size_t)TB_SCAN_LEN), NULL, op->err,
                              sizeof(op->err)) != 0 ||
        rr->n_kvs > TB_SCAN_LEN)
        op->rc = -EIO;
}

/* Handles the transfer's answers; returns true when the operation is finished. */
static bool transfer_reply(tb_driver *d, tb_op *op, etcd_op *eo, const Etcdserverpb__TxnResponse *r)
{
    tb_ledger *l = d->env->accounts;
    if (eo->step == 1) {
        end_writes(l, eo, TB_TRANSFER_N, r->succeeded);
        if (r->succeeded)
            return true;
        /* An account changed since the read: read again. */
        if (++op->retries > MAX_TXN_RETRIES) {
            tb_op_fail(op, -EAGAIN, "transfer: %d conflicts in a row", MAX_TXN_RETRIES);
            return true;
        }
        int rc = send_transfer_read(d, op, eo);
        if (rc != 0) {
            tb_op_fail(op, rc, "etcd Txn: %s", tkv_strerror(rc));
            return true;
        }
        return false;
    }
    if (r->n_responses != TB_TRANSFER_N) {
        tb_op_fail(op, -EIO, "transfer read: %zu responses, want %d", r->n_responses,
                   TB_TRANSFER_N);
        return true;
    }
    for (int i = 0; i < TB_TRANSFER_N; i++) {
        const Etcdserverpb__ResponseOp *ro = r->responses[i];
        if (ro->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE) {
            tb_op_fail(op, -EIO, "transfer read: response %d is not a range", i);
            return true;
        }
        tb_value_info vi;
        check_one(op, l, op->idx[i], eo->floors[i], true, ro->response_range, &vi, &eo->mod_rev[i]);
        if (op->rc != 0)
            return true;
        eo->balance[i] = vi.balance;
    }
    int rc = send_transfer_write(d, op, eo);
    if (rc != 0) {
        tb_op_fail(op, rc, "etcd Txn: %s", tkv_strerror(rc));
        return true;
    }
    return false;
}

static void on_reply(const rpc_status *st, tkv_slice resp, void *ud)
{
    tb_op *op = ud;
    etcd_op *eo = op->drv_state;
    tb_driver *d = eo->d;
    const ProtobufCMessageDescriptor *desc;
    tb_ledger *wl = NULL; /* the ledger of this reply's writes, if any */
    int n_writes = 0;
    switch (op->kind) {
    case TB_OP_PUT:
        desc = &etcdserverpb__put_response__descriptor;
        wl = d->env->kv;
        n_writes = 1;
        break;
    case TB_OP_GET:
    case TB_OP_GET_SER:
    case TB_OP_SCAN:
        desc = &etcdserverpb__range_response__descriptor;
        break;
    case TB_OP_TXN_PUT:
        desc = &etcdserverpb__txn_response__descriptor;
        wl = d->env->txn;
        n_writes = 1;
        break;
    default:
        desc = &etcdserverpb__txn_response__descriptor;
        if (eo->step == 1) {
            wl = d->env->accounts;
            n_writes = TB_TRANSFER_N;
        }
        break;
    }
    if (st->code != RPC_OK) {
        if (wl != NULL)
            end_writes(wl, eo, n_writes, false);
        tb_op_fail(op, TKV_ERPC, "etcd %s: %s %s", kind_name(op->kind), rpc_code_name(st->code),
                   st->message);
        tb_op_done(op);
        return;
    }
    ProtobufCMessage *m = NULL;
    if (rpc_msg_unpack(desc, resp, &m) != 0) {
        if (wl != NULL)
            end_writes(wl, eo, n_writes, false);
        tb_op_fail(op, TKV_ECORRUPT, "etcd: response does not decode as %s", desc->name);
        tb_op_done(op);
        return;
    }
    bool finished = true;
    switch (op->kind) {
    case TB_OP_PUT:
        end_writes(wl, eo, 1, true);
        break;
    case TB_OP_GET:
    case TB_OP_GET_SER:
        check_one(op, d->env->kv, op->idx[0], eo->floors[0], op->kind == TB_OP_GET,
                  (Etcdserverpb__RangeResponse *)m, NULL, NULL);
        break;
    case TB_OP_SCAN:
        check_scan(op, d->env->kv, eo, (Etcdserverpb__RangeResponse *)m);
        break;
    case TB_OP_TXN_PUT: {
        bool ok = ((Etcdserverpb__TxnResponse *)m)->succeeded;
        end_writes(wl, eo, 1, ok);
        if (!ok)
            tb_op_fail(op, -EIO, "txn-put: the compare mod_revision < max failed");
        break;
    }
    case TB_OP_TRANSFER:
        finished = transfer_reply(d, op, eo, (Etcdserverpb__TxnResponse *)m);
        break;
    }
    rpc_msg_free(m);
    if (finished)
        tb_op_done(op);
}

static int etcd_submit(tb_driver *d, tb_op *op)
{
    etcd_op *eo = op->drv_state;
    if (eo == NULL) {
        eo = tkv_calloc(1, sizeof(*eo));
        if (eo == NULL)
            return -ENOMEM;
        eo->d = d;
        op->drv_state = eo;
    }
    switch (op->kind) {
    case TB_OP_PUT:
        return send_put(d, op, eo);
    case TB_OP_GET:
    case TB_OP_GET_SER:
    case TB_OP_SCAN:
        return send_range(d, op, eo);
    case TB_OP_TXN_PUT:
        return send_txn_put(d, op, eo);
    case TB_OP_TRANSFER:
        return send_transfer_read(d, op, eo);
    }
    return -EINVAL;
}

/* ---- leader, preload, accounts check ------------------------------------------------- */

/* Copies the next endpoint of the comma-separated list at *@p into @out (scheme dropped). */
static bool next_endpoint(const char **p, char *out, size_t cap)
{
    while (**p == ',' || **p == ' ')
        (*p)++;
    if (**p == '\0')
        return false;
    const char *e = strchr(*p, ',');
    size_t n = e != NULL ? (size_t)(e - *p) : strlen(*p);
    const char *s = *p;
    *p += n;
    if (n > 7 && strncmp(s, "http://", 7) == 0) {
        s += 7;
        n -= 7;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static int find_leader(tb_driver *d, char *err, size_t err_len)
{
    uint64_t deadline = tkv_clock_mono_ms() + LEADER_WAIT_MS;
    char last[512] = "no endpoint answered";
    for (;;) {
        const char *p = d->env->endpoints;
        char ep[128];
        while (next_endpoint(&p, ep, sizeof(ep))) {
            rpc_channel *ch;
            if (rpc_client_channel(d->cl, ep, 0, &ch) != 0)
                continue;
            Etcdserverpb__StatusRequest req = ETCDSERVERPB__STATUS_REQUEST__INIT;
            ProtobufCMessage *m = NULL;
            rpc_status st;
            if (rpc_unary_msg(ch, M_STATUS, &req.base, &etcdserverpb__status_response__descriptor,
                              2000, &m, &st) != 0) {
                snprintf(last, sizeof(last), "%s: %s %s", ep, rpc_code_name(st.code), st.message);
                continue;
            }
            Etcdserverpb__StatusResponse *r = (Etcdserverpb__StatusResponse *)m;
            bool leads = r->header != NULL && r->leader != 0 && r->header->member_id == r->leader;
            rpc_msg_free(m);
            if (leads) {
                snprintf(d->leader, sizeof(d->leader), "%s", ep);
                return 0;
            }
            snprintf(last, sizeof(last), "%s answered but does not lead", ep);
        }
        if (tkv_clock_mono_ms() >= deadline)
            break;
        tkv_sleep_ms(200);
    }
    snprintf(err, err_len, "no etcd leader among %s within %d s (%s)", d->env->endpoints,
             LEADER_WAIT_MS / 1000, last);
    return TKV_EUNAVAILABLE;
}

static int etcd_open(const tb_env *env, tb_driver **out, char *err, size_t err_len)
{
    tb_driver *d = tkv_calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->env = env;
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    int rc = rpc_client_new(&o, &d->cl);
    if (rc != 0) {
        snprintf(err, err_len, "rpc client: %s", tkv_strerror(rc));
        tkv_free(d);
        return rc;
    }
    if ((rc = find_leader(d, err, err_len)) != 0) {
        rpc_client_free(d->cl);
        tkv_free(d);
        return rc;
    }
    d->n_ch = env->conns < 1 ? 1 : env->conns > MAX_CONNS ? MAX_CONNS : env->conns;
    for (int i = 0; i < d->n_ch; i++) {
        if ((rc = rpc_client_channel(d->cl, d->leader, (unsigned)i + 1, &d->ch[i])) != 0) {
            snprintf(err, err_len, "channel to %s: %s", d->leader, tkv_strerror(rc));
            rpc_client_free(d->cl);
            tkv_free(d);
            return rc;
        }
    }
    *out = d;
    return 0;
}

static void etcd_close(tb_driver *d)
{
    if (d == NULL)
        return;
    rpc_client_free(d->cl);
    tkv_free(d);
}

static bool etcd_supports(const tb_driver *d, tb_workload w)
{
    (void)d;
    return w < TB_W__COUNT;
}

typedef struct preload_ctx {
    tb_driver *d;
    tb_ledger *l;
} preload_ctx;

/* Writes keys [lo, hi) of the ledger in one Txn (version 1). */
static int preload_chunk(void *arg, uint64_t lo, uint64_t hi, char *err, size_t err_len)
{
    preload_ctx *c = arg;
    tb_ledger *l = c->l;
    size_t n = (size_t)(hi - lo);
    uint8_t(*keys)[TB_KEY_LEN] = tkv_calloc(n, TB_KEY_LEN);
    uint8_t(*vals)[TB_VALUE_LEN] = tkv_calloc(n, TB_VALUE_LEN);
    Etcdserverpb__PutRequest *puts = tkv_calloc(n, sizeof(*puts));
    Etcdserverpb__RequestOp *rop = tkv_calloc(n, sizeof(*rop));
    Etcdserverpb__RequestOp **rops = tkv_calloc(n, sizeof(Etcdserverpb__RequestOp *));
    int rc = -ENOMEM;
    if (keys == NULL || vals == NULL || puts == NULL || rop == NULL || rops == NULL) {
        snprintf(err, err_len, "preload: out of memory");
        goto out;
    }
    bool accounts = strcmp(l->prefix, TB_PREFIX_ACCOUNT) == 0;
    for (size_t i = 0; i < n; i++) {
        tb_ledger_key(l, lo + i, keys[i]);
        tb_value_make(keys[i], l->epoch, 1, accounts ? TB_ACCOUNT_START : 0, vals[i]);
        etcdserverpb__put_request__init(&puts[i]);
        puts[i].key = (ProtobufCBinaryData){TB_KEY_LEN, keys[i]};
        puts[i].value = (ProtobufCBinaryData){TB_VALUE_LEN, vals[i]};
        etcdserverpb__request_op__init(&rop[i]);
        rop[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        rop[i].request_put = &puts[i];
        rops[i] = &rop[i];
    }
    Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
    req.n_success = n;
    req.success = rops;
    ProtobufCMessage *m = NULL;
    rpc_status st;
    rc = rpc_unary_msg(c->d->ch[lo / PRELOAD_BATCH % (uint64_t)c->d->n_ch], M_TXN, &req.base,
                       &etcdserverpb__txn_response__descriptor, c->d->env->timeout_ms, &m, &st);
    if (rc != 0)
        snprintf(err, err_len, "preload Txn: %s %s", rpc_code_name(st.code), st.message);
    rpc_msg_free(m);
out:
    tkv_free(keys);
    tkv_free(vals);
    tkv_free(puts);
    tkv_free(rop);
    tkv_free(rops);
    return rc;
}

static int etcd_preload(tb_driver *d, tb_ledger *l, int threads, char *err, size_t err_len)
{
    preload_ctx c = {.d = d, .l = l};
    return tb_parallel_chunks(l->n, PRELOAD_BATCH, threads, preload_chunk, &c, err, err_len);
}

static int etcd_check_accounts(tb_driver *d, char *err, size_t err_len)
{
    tb_ledger *l = d->env->accounts;
    uint8_t start[TB_KEY_LEN];
    tb_ledger_key(l, 0, start);
    uint8_t end[4];
    tb_ledger_end(l, end);
    uint32_t *floors = tb_ledger_floors(l);
    if (floors == NULL)
        return -ENOMEM;
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){TB_KEY_LEN, start};
    req.range_end = (ProtobufCBinaryData){sizeof(end), end};
    ProtobufCMessage *m = NULL;
    rpc_status st;
    int rc = rpc_unary_msg(d->ch[0], M_RANGE, &req.base, &etcdserverpb__range_response__descriptor,
                           d->env->timeout_ms, &m, &st);
    if (rc != 0) {
        snprintf(err, err_len, "accounts Range: %s %s", rpc_code_name(st.code), st.message);
        tkv_free(floors);
        return rc;
    }
    Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)m;
    tb_pair *pairs = tkv_calloc(r->n_kvs + 1, sizeof(*pairs));
    if (pairs == NULL) {
        rc = -ENOMEM;
    } else {
        range_pairs(r, pairs, r->n_kvs);
        rc = tb_ledger_check_accounts(l, floors, pairs, r->n_kvs, err, err_len) == 0 ? 0 : -EIO;
    }
    tkv_free(pairs);
    rpc_msg_free(m);
    tkv_free(floors);
    return rc;
}

const tb_driver_ops tb_drv_etcd = {
    .name = "etcd",
    .system = "etcd",
    .open = etcd_open,
    .close = etcd_close,
    .supports = etcd_supports,
    .preload = etcd_preload,
    .submit = etcd_submit,
    .exec = NULL,
    .check_accounts = etcd_check_accounts,
    .op_release = tb_op_release_state,
};
