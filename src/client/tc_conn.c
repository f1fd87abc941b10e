/*
 * tc_conn.c: calls to stores: BatchCommands streams, or unary calls.
 *
 * BatchCommands (tikvpb.Tikv/BatchCommands, protocol.md 3.3): a long-lived bidirectional
 * stream per connection. Each request gets a stream-local id; a BatchCommandsRequest carries
 * parallel lists `requests` (a oneof wrapping the kvrpcpb request) and `request_ids`, and the
 * server answers in BatchCommandsResponse messages with parallel `responses` and
 * `request_ids`, in any grouping and order.
 *
 * Batching follows client-go: at most one BatchCommandsRequest waits in the gRPC send queue
 * per stream; requests arriving meanwhile are appended to the next one, which goes out when
 * the previous was handed to the transport (rpc's on_sent). Under load requests batch by
 * themselves; alone, a request goes out at once.
 *
 * The wire work is done by hand: the request wrapper is a tag and a length around the packed
 * kvrpcpb request, and responses are split without decoding the inner messages (the task
 * that sent a request decodes its own response). Bytes from the network are checked, never
 * trusted.
 *
 * Timeouts: the sweep job (every 100 ms) fails calls past their deadline; the server is not
 * told (client-go does not cancel single ids either).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/codec.h"
#include "base/log.h"
#include "client/tc_int.h"
#include "tikvpb.pb-c.h"

struct tc_bstream {
    tikvc_client *c;
    tc_store *st;
    unsigned idx;
    pthread_mutex_t mu;
    rpc_stream *s;   /* NULL: not open (opened by the next send) */
    bool sending;    /* one BatchCommandsRequest is in the gRPC send queue */
    tkv_buf reqs;    /* encoded `requests` entries for the next message */
    tkv_buf ids;     /* packed `request_ids` for the next message */
    tkv_buf scratch; /* the message being assembled */
    uint64_t next_id;
    tc_call **slots; /* in flight, at id % cap */
    size_t cap;
    size_t live;
};

#define BATCH_METHOD "/tikvpb.Tikv/BatchCommands"

/* ---- id map ----------------------------------------------------------------------------- */

/* Inserts @call; when its slot is taken, grows the table until every live call and @call
 * have a slot of their own. Under bs->mu. */
static int slots_put(tc_bstream *bs, tc_call *call)
{
    if (bs->cap != 0 && bs->slots[call->id & (bs->cap - 1)] == NULL) {
        bs->slots[call->id & (bs->cap - 1)] = call;
        bs->live++;
        return 0;
    }
    for (size_t cap = bs->cap ? bs->cap * 2 : 256; cap <= ((size_t)1 << 24); cap *= 2) {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        tc_call **v = tkv_calloc(cap, sizeof(*v));
        if (v == NULL)
            return TIKVC_ENOMEM;
        bool ok = true;
        for (size_t i = 0; i < bs->cap && ok; i++) {
            tc_call *o = bs->slots[i];
            if (o == NULL)
                continue;
            if (v[o->id & (cap - 1)] != NULL)
                ok = false;
            else
                v[o->id & (cap - 1)] = o;
        }
        if (ok && v[call->id & (cap - 1)] == NULL) {
            v[call->id & (cap - 1)] = call;
            tkv_free(bs->slots);
            bs->slots = v;
            bs->cap = cap;
            bs->live++;
            return 0;
        }
        tkv_free(v);
    }
    return TIKVC_ENOMEM;
}

/* Removes and returns the call with @id, or NULL. Under bs->mu. */
static tc_call *slots_take(tc_bstream *bs, uint64_t id)
{
    if (bs->cap == 0)
        return NULL;
    tc_call **slot = &bs->slots[id & (bs->cap - 1)];
    tc_call *call = *slot;
    if (call == NULL || call->id != id)
        return NULL;
    *slot = NULL;
    bs->live--;
    return call;
}

/* Takes every call (or only those past @deadline when non-zero) into a list. Under mu. */
static size_t slots_drain(tc_bstream *bs, uint64_t deadline, tc_call ***out)
{
    *out = NULL;
    if (bs->live == 0)
        return 0;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    tc_call **list = tkv_calloc(bs->live, sizeof(*list));
    if (list == NULL)
        return 0; /* retried by the next sweep */
    size_t n = 0;
    for (size_t i = 0; i < bs->cap && n < bs->live; i++) {
        tc_call *c = bs->slots[i];
        if (c != NULL && (deadline == 0 || c->deadline_ms <= deadline)) {
            list[n++] = c;
            bs->slots[i] = NULL;
        }
    }
    bs->live -= n;
    *out = list;
    return n;
}

static void fail_calls(tc_call **list, size_t n, int rc, const char *msg)
{
    for (size_t i = 0; i < n; i++)
        list[i]->cb(list[i], rc, msg, tkv_slice_of(NULL, 0));
    tkv_free(list);
}

/* ---- wire helpers ----------------------------------------------------------------------- */

static int put_tag_len(tkv_buf *b, uint32_t field, size_t len)
{
    uint8_t tmp[2 * TKV_VARINT_MAX_LEN];
    size_t n = tkv_codec_put_uvarint(tmp, ((uint64_t)field << 3) | 2);
    n += tkv_codec_put_uvarint(tmp + n, len);
    return tkv_buf_append(b, tmp, n);
}

/* Reads one field header: number and wire type. */
static int read_tag(tkv_slice *in, uint32_t *field, uint32_t *wt)
{
    uint64_t t;
    if (tkv_codec_decode_uvarint(in, &t) != 0 || (t >> 3) == 0 || (t >> 3) > UINT32_MAX)
        return TKV_ECORRUPT;
    *field = (uint32_t)(t >> 3);
    *wt = (uint32_t)(t & 7);
    return 0;
}

/* Reads a length-delimited payload. */
static int read_len(tkv_slice *in, tkv_slice *out)
{
    uint64_t n;
    if (tkv_codec_decode_uvarint(in, &n) != 0 || n > in->len)
        return TKV_ECORRUPT;
    *out = tkv_slice_of(in->data, (size_t)n);
    in->data += n;
    in->len -= (size_t)n;
    return 0;
}

/* Skips @n bytes. */
static int skip_bytes(tkv_slice *in, size_t n)
{
    if (in->len < n)
        return TKV_ECORRUPT;
    in->data += n;
    in->len -= n;
    return 0;
}

/* Skips a field of wire type @wt. */
static int skip_field(tkv_slice *in, uint32_t wt)
{
    uint64_t v;
    tkv_slice s;
    switch (wt) {
    case 0:
        return tkv_codec_decode_uvarint(in, &v);
    case 1:
        return skip_bytes(in, 8);
    case 2:
        return read_len(in, &s);
    case 5:
        return skip_bytes(in, 4);
    default:
        return TKV_ECORRUPT;
    }
}

/* One answered id: which oneof arm and its bytes. */
typedef struct answer {
    uint64_t id;
    uint32_t field;
    tkv_slice body;
} answer;

/* Splits a BatchCommandsResponse into answers (ids paired with responses by position).
 * Returns the count, or -1 when the bytes break the protocol. *@out must be freed. */
static long split_response(tkv_slice in, answer **out)
{
    *out = NULL;
    size_t n_resp = 0, n_ids = 0, cap = 0;
    answer *a = NULL;
    uint64_t *ids = NULL;
    size_t ids_cap = 0;
    long rc = -1;
    while (in.len > 0) {
        uint32_t field, wt;
        if (read_tag(&in, &field, &wt) != 0)
            goto out;
        if (field == 1 && wt == 2) {
            tkv_slice resp;
            if (read_len(&in, &resp) != 0)
                goto out;
            if (tikvc__grow((void **)&a, &cap, n_resp + 1, sizeof(*a)) != 0)
                goto out;
            /* Response: exactly one oneof arm, length-delimited. */
            answer *x = &a[n_resp++];
            x->field = 0;
            x->body = tkv_slice_of(NULL, 0);
            while (resp.len > 0) {
                uint32_t f, w;
                if (read_tag(&resp, &f, &w) != 0)
                    goto out;
                if (w == 2 && x->field == 0) {
                    x->field = f;
                    if (read_len(&resp, &x->body) != 0)
                        goto out;
                } else if (skip_field(&resp, w) != 0) {
                    goto out;
                }
            }
        } else if (field == 2 && (wt == 0 || wt == 2)) {
            tkv_slice packed;
            if (wt == 2) {
                if (read_len(&in, &packed) != 0)
                    goto out;
            } else {
                packed = in;
            }
            do {
                uint64_t id;
                if (tkv_codec_decode_uvarint(&packed, &id) != 0)
                    goto out;
                if (tikvc__grow((void **)&ids, &ids_cap, n_ids + 1, sizeof(*ids)) != 0)
                    goto out;
                ids[n_ids++] = id;
            } while (wt == 2 && packed.len > 0);
            if (wt == 0)
                in = packed;
        } else if (skip_field(&in, wt) != 0) {
            goto out;
        }
    }
    if (n_ids != n_resp)
        goto out;
    for (size_t i = 0; i < n_resp; i++)
        a[i].id = ids[i];
    *out = a;
    a = NULL;
    rc = (long)n_resp;
out:
    free(a);
    free(ids);
    return rc;
}

/* ---- streams ---------------------------------------------------------------------------- */

static void bs_on_message(rpc_stream *s, tkv_slice msg, void *ud);
static void bs_on_done(rpc_stream *s, const rpc_status *st, void *ud);
static void bs_on_sent(rpc_stream *s, void *ud);

/* Sends the gathered requests as one BatchCommandsRequest. Under bs->mu, stream open. */
static int flush_locked(tc_bstream *bs)
{
    tkv_buf *m = &bs->scratch;
    tkv_buf_reset(m);
    int rc = tkv_buf_append(m, bs->reqs.data, bs->reqs.len);
    if (rc == 0)
        rc = put_tag_len(m, 2, bs->ids.len);
    if (rc == 0)
        rc = tkv_buf_append(m, bs->ids.data, bs->ids.len);
    if (rc == 0)
        rc = rpc_stream_send(bs->s, tkv_buf_slice(m));
    if (rc != 0)
        return rc; /* the stream is ending: on_done fails the calls */
    tkv_buf_reset(&bs->reqs);
    tkv_buf_reset(&bs->ids);
    bs->sending = true;
    /* Keep big one-off buffers from staying around forever. */
    if (m->cap > (1u << 20)) {
        tkv_buf_deinit(m);
        tkv_buf_init(m);
    }
    return 0;
}

static void bs_on_sent(rpc_stream *s, void *ud)
{
    tc_bstream *bs = ud;
    pthread_mutex_lock(&bs->mu);
    if (bs->s == s) {
        if (bs->reqs.len > 0)
            TKV_IGNORE(flush_locked(bs));
        else
            bs->sending = false;
    }
    pthread_mutex_unlock(&bs->mu);
}

static void bs_on_message(rpc_stream *s, tkv_slice msg, void *ud)
{
    tc_bstream *bs = ud;
    answer *a = NULL;
    long n = split_response(msg, &a);
    if (n < 0) {
        TKV_LOG_WARN("BatchCommandsResponse breaks the protocol; dropping the stream",
                     TKV_LF_U64("store_id", bs->st->id));
        rpc_stream_cancel(s);
        return;
    }
    tc_call *stack[64];
    tc_call **calls =
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        (size_t)n <= TKV_ARRAY_LEN(stack) ? stack : tkv_calloc((size_t)n, sizeof(*calls));
    if (calls == NULL) {
        rpc_stream_cancel(s);
        free(a);
        return;
    }
    pthread_mutex_lock(&bs->mu);
    for (long i = 0; i < n; i++)
        calls[i] = slots_take(bs, a[i].id); /* unknown ids (timed out) are dropped */
    pthread_mutex_unlock(&bs->mu);
    for (long i = 0; i < n; i++) {
        tc_call *call = calls[i];
        if (call == NULL)
            continue;
        if (a[i].field != (uint32_t)call->cmd->batch_field)
            call->cb(call, TIKVC_ECORRUPT, "BatchCommands answered with another command",
                     tkv_slice_of(NULL, 0));
        else
            call->cb(call, 0, NULL, a[i].body);
    }
    if (calls != stack)
        tkv_free(calls);
    free(a);
}

static void bs_on_done(rpc_stream *s, const rpc_status *st, void *ud)
{
    tc_bstream *bs = ud;
    pthread_mutex_lock(&bs->mu);
    if (bs->s != s) {
        pthread_mutex_unlock(&bs->mu);
        return;
    }
    bs->s = NULL;
    bs->sending = false;
    tkv_buf_reset(&bs->reqs);
    tkv_buf_reset(&bs->ids);
    tc_call **list;
    size_t n = slots_drain(bs, 0, &list);
    pthread_mutex_unlock(&bs->mu);
    rpc_stream_free(s); /* from its own callback: released once it winds down */
    char msg[RPC_STATUS_MSG_LEN + 64];
    snprintf(msg, sizeof(msg), "BatchCommands stream to store %" PRIu64 " ended: %s: %s",
             bs->st->id, rpc_code_name(st->code), st->message);
    TKV_LOG_DEBUG("BatchCommands stream ended", TKV_LF_U64("store_id", bs->st->id),
                  TKV_LF_STR("code", rpc_code_name(st->code)));
    fail_calls(list, n, TIKVC_EUNAVAILABLE, msg);
}

/* Opens the stream if needed. Under bs->mu. */
static int open_locked(tc_bstream *bs, const char *addr)
{
    if (bs->s != NULL)
        return 0;
    rpc_channel *ch;
    int rc = rpc_client_channel(bs->c->rpc, addr, bs->idx, &ch);
    if (rc != 0)
        return rc;
    rpc_stream_cbs cbs = {
        .on_message = bs_on_message, .on_done = bs_on_done, .on_sent = bs_on_sent, .ud = bs};
    return rpc_stream_open(ch, BATCH_METHOD, 0, &cbs, &bs->s);
}

static tc_bstream *bs_get(tikvc_client *c, tc_store *st)
{
    unsigned n = (unsigned)c->opts.conns_per_store;
    unsigned i = atomic_fetch_add(&st->rr, 1) % n;
    pthread_mutex_lock(&st->mu);
    tc_bstream *bs = st->bs[i];
    if (bs == NULL) {
        bs = tkv_calloc(1, sizeof(*bs));
        if (bs != NULL) {
            bs->c = c;
            bs->st = st;
            bs->idx = i;
            bs->next_id = 1;
            TKV_ASSERT(pthread_mutex_init(&bs->mu, NULL) == 0);
            tkv_buf_init(&bs->reqs);
            tkv_buf_init(&bs->ids);
            tkv_buf_init(&bs->scratch);
            st->bs[i] = bs;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return bs;
}

static int send_batched(tikvc_client *c, tc_store *st, const char *addr, tc_call *call)
{
    tc_bstream *bs = bs_get(c, st);
    if (bs == NULL)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    pthread_mutex_lock(&bs->mu);
    int rc = open_locked(bs, addr);
    if (rc != 0) {
        pthread_mutex_unlock(&bs->mu);
        return tikvc__fail(tikvc__code(rc), "cannot open BatchCommands to %s", addr);
    }
    call->id = bs->next_id++;
    size_t mark_r = bs->reqs.len, mark_i = bs->ids.len;
    uint8_t tmp[2 * TKV_VARINT_MAX_LEN];
    size_t inner = call->body.len;
    size_t th = tkv_codec_put_uvarint(tmp, ((uint64_t)call->cmd->batch_field << 3) | 2);
    th += tkv_codec_put_uvarint(tmp + th, inner);
    rc = put_tag_len(&bs->reqs, 1, th + inner);
    if (rc == 0)
        rc = tkv_buf_append(&bs->reqs, tmp, th);
    if (rc == 0)
        rc = tkv_buf_append(&bs->reqs, call->body.data, call->body.len);
    if (rc == 0)
        rc = tkv_codec_encode_uvarint(&bs->ids, call->id);
    if (rc == 0)
        rc = slots_put(bs, call);
    if (rc != 0) {
        bs->reqs.len = mark_r;
        bs->ids.len = mark_i;
        pthread_mutex_unlock(&bs->mu);
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    }
    if (!bs->sending && flush_locked(bs) != 0) {
        /* The stream is ending; its on_done fails this call with the others. */
    }
    pthread_mutex_unlock(&bs->mu);
    return 0;
}

/* ---- unary ------------------------------------------------------------------------------ */

static void on_unary_done(const rpc_status *st, tkv_slice resp, void *ud)
{
    tc_call *call = ud;
    if (st->code == RPC_OK) {
        call->cb(call, 0, NULL, resp);
        return;
    }
    char msg[RPC_STATUS_MSG_LEN + 64];
    if (st->code == RPC_DEADLINE_EXCEEDED)
        snprintf(msg, sizeof(msg), "no answer from the store in time (%s)", st->message);
    else
        snprintf(msg, sizeof(msg), "%s: %s", rpc_code_name(st->code), st->message);
    int rc = st->code == RPC_DEADLINE_EXCEEDED ? TIKVC_ETIMEDOUT
             : st->code == RPC_UNIMPLEMENTED || st->code == RPC_INVALID_ARGUMENT ||
                     st->code == RPC_RESOURCE_EXHAUSTED
                 ? TIKVC_ESERVER
                 : TIKVC_EUNAVAILABLE;
    call->cb(call, rc, msg, tkv_slice_of(NULL, 0));
}

static int send_unary(tikvc_client *c, const char *addr, tc_call *call)
{
    rpc_channel *ch;
    int rc = rpc_client_channel(c->rpc, addr, 0, &ch);
    if (rc == 0) {
        uint64_t now = tkv_clock_mono_ms();
        int64_t left = call->deadline_ms > now ? (int64_t)(call->deadline_ms - now) : 1;
        rc = rpc_unary_async(ch, call->cmd->path, tkv_buf_slice(&call->body), left, on_unary_done,
                             call);
    }
    return rc == 0 ? 0 : tikvc__fail(tikvc__code(rc), "cannot call %s", addr);
}

/* ---- entry points ----------------------------------------------------------------------- */

static int send_locked(tikvc_client *c, tc_store *st, tc_call *call);

int tikvc__send(tikvc_client *c, tc_store *st, tc_call *call)
{
    pthread_rwlock_rdlock(&c->send_lk);
    int rc = atomic_load(&c->closing) ? tikvc__fail(TIKVC_ECLOSED, "the client is closing")
                                      : send_locked(c, st, call);
    pthread_rwlock_unlock(&c->send_lk);
    return rc;
}

static int send_locked(tikvc_client *c, tc_store *st, tc_call *call)
{
    call->deadline_ms = tkv_clock_mono_ms() + (uint64_t)c->opts.rpc_timeout_ms;
    char addr[256];
    pthread_mutex_lock(&st->mu);
    bool ok = st->addr != NULL;
    if (ok)
        snprintf(addr, sizeof(addr), "%s", st->addr);
    pthread_mutex_unlock(&st->mu);
    if (!ok)
        return tikvc__fail(TIKVC_EUNAVAILABLE, "store %" PRIu64 " has no address", st->id);
    if (c->opts.batch_commands && call->cmd->batch_field != 0)
        return send_batched(c, st, addr, call);
    return send_unary(c, addr, call);
}

/* Cancels the streams of @st (each fails its calls from on_done). */
static void reset_streams(tikvc_client *c, tc_store *st)
{
    for (int i = 0; i < c->opts.conns_per_store; i++) {
        pthread_mutex_lock(&st->mu);
        tc_bstream *bs = st->bs[i];
        pthread_mutex_unlock(&st->mu);
        if (bs == NULL)
            continue;
        pthread_mutex_lock(&bs->mu);
        rpc_stream *s = bs->s;
        if (s != NULL)
            rpc_stream_cancel(s);
        pthread_mutex_unlock(&bs->mu);
    }
}

void tikvc__store_close(tikvc_client *c, tc_store *st)
{
    reset_streams(c, st);
}

void tikvc__store_shutdown(tikvc_client *c, tc_store *st)
{
    for (int i = 0; i < c->opts.conns_per_store; i++) {
        pthread_mutex_lock(&st->mu);
        tc_bstream *bs = st->bs[i];
        pthread_mutex_unlock(&st->mu);
        if (bs == NULL)
            continue;
        pthread_mutex_lock(&bs->mu);
        rpc_stream *s = bs->s;
        bs->s = NULL;
        tc_call **list;
        size_t n = slots_drain(bs, 0, &list);
        pthread_mutex_unlock(&bs->mu);
        /* Not from a callback: waits until the stream's callbacks are over. */
        rpc_stream_free(s);
        fail_calls(list, n, TIKVC_ECLOSED, "the client is closing");
    }
}

void tikvc__store_free(tikvc_client *c, tc_store *st)
{
    for (int i = 0; i < c->opts.conns_per_store; i++) {
        tc_bstream *bs = st->bs[i];
        if (bs == NULL)
            continue;
        tkv_buf_deinit(&bs->reqs);
        tkv_buf_deinit(&bs->ids);
        tkv_buf_deinit(&bs->scratch);
        tkv_free(bs->slots);
        pthread_mutex_destroy(&bs->mu);
        tkv_free(bs);
        st->bs[i] = NULL;
    }
    tkv_free(st->bs);
    tkv_free(st->addr);
    pthread_mutex_destroy(&st->mu);
    tkv_free(st);
}

void tikvc__conn_sweep(tikvc_client *c)
{
    uint64_t now = tkv_clock_mono_ms();
    pthread_mutex_lock(&c->stores_mu);
    size_t n_stores = c->n_stores;
    pthread_mutex_unlock(&c->stores_mu);
    for (size_t k = 0; k < n_stores; k++) {
        pthread_mutex_lock(&c->stores_mu);
        tc_store *st = c->stores[k];
        pthread_mutex_unlock(&c->stores_mu);
        for (int i = 0; i < c->opts.conns_per_store; i++) {
            pthread_mutex_lock(&st->mu);
            tc_bstream *bs = st->bs[i];
            pthread_mutex_unlock(&st->mu);
            if (bs == NULL)
                continue;
            pthread_mutex_lock(&bs->mu);
            tc_call **list;
            size_t n = slots_drain(bs, now, &list);
            pthread_mutex_unlock(&bs->mu);
            if (n > 0)
                fail_calls(list, n, TIKVC_ETIMEDOUT, "no answer from the store in time");
            else
                tkv_free(list);
        }
    }
}
