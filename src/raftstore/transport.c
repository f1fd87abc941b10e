/*
 * transport.c: raft messages between stores. Outgoing messages are batched per destination
 * store (one raft_serverpb.RaftMessage after another in a tikvpb.BatchRaftMessage) and sent
 * on one long-lived /tikvpb.Tikv/BatchRaft client stream per store, once per poller round.
 * Store addresses come from PD (GetStore, on the PD worker) and are cached. A message that
 * cannot be sent (no address yet, broken or congested stream) is dropped and its peer told
 * (MsgUnreachable), so Raft probes again. Incoming streams (Raft, BatchRaft) are parsed on
 * the gRPC thread and routed to the peers' mailboxes.
 */
#include <stdlib.h>

#include "base/clock.h"
#include "base/codec.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

/* Messages queued on one stream beyond this mean the receiver is not keeping up. */
#define CONGESTED      256
#define FLUSH_BYTES    (4u << 20)
#define RESOLVE_RETRY  1000
#define RERESOLVE_IDLE 3000

int rstore__transport_init(rstore_transport *t, rstore *s)
{
    memset(t, 0, sizeof(*t));
    t->store = s;
    int rc = pthread_mutex_init(&t->mu, NULL);
    if (rc != 0)
        return -rc;
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    o.cq_threads = 1;
    o.connect_timeout_ms = 2000;
    o.initial_reconnect_backoff_ms = 100;
    o.max_reconnect_backoff_ms = 1000;
    o.tls = s->opts.tls;
    rc = rpc_client_new(&o, &t->client);
    if (rc != 0) {
        pthread_mutex_destroy(&t->mu);
        return rc;
    }
    tkv_buf_init(&t->scratch);
    return 0;
}

void rstore__transport_deinit(rstore_transport *t)
{
    for (size_t i = 0; i < t->n_conns; i++) {
        rstore_conn *c = t->conns[i];
        rpc_stream_free(c->stream);
        tkv_buf_deinit(&c->batch);
        tkv_free(c->targets);
        tkv_free(c);
    }
    tkv_free(t->conns);
    rpc_client_free(t->client);
    tkv_free(t->addrs);
    tkv_buf_deinit(&t->scratch);
    pthread_mutex_destroy(&t->mu);
    memset(t, 0, sizeof(*t));
}

/* ---- addresses ------------------------------------------------------------------------ */

void rstore__transport_set_addr(rstore_transport *t, uint64_t store_id, const char *addr,
                                bool tombstone)
{
    pthread_mutex_lock(&t->mu);
    size_t i;
    for (i = 0; i < t->n_addrs; i++)
        if (t->addrs[i].store_id == store_id)
            break;
    if (i == t->n_addrs) {
        if (t->n_addrs == t->cap_addrs) {
            size_t cap = t->cap_addrs ? t->cap_addrs * 2 : 8;
            t->addrs = tkv_xrealloc(t->addrs, cap * sizeof(*t->addrs));
            t->cap_addrs = cap;
        }
        memset(&t->addrs[i], 0, sizeof(t->addrs[i]));
        t->addrs[i].store_id = store_id;
        t->n_addrs++;
    }
    if (strcmp(t->addrs[i].addr, addr) != 0 || t->addrs[i].tombstone != tombstone)
        t->addrs[i].generation++;
    snprintf(t->addrs[i].addr, sizeof(t->addrs[i].addr), "%s", addr);
    t->addrs[i].tombstone = tombstone;
    pthread_mutex_unlock(&t->mu);
}

bool rstore__transport_addr(rstore_transport *t, uint64_t store_id, char *buf, size_t cap)
{
    bool ok = false;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n_addrs; i++) {
        if (t->addrs[i].store_id == store_id && !t->addrs[i].tombstone && t->addrs[i].addr[0]) {
            snprintf(buf, cap, "%s", t->addrs[i].addr);
            ok = true;
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static void request_resolve(rstore_transport *t, rstore_conn *c)
{
    rstore *s = t->store;
    uint64_t now = tkv_clock_mono_ms();
    if (s->opts.pd == NULL || now < c->resolved_ms + RESOLVE_RETRY)
        return;
    c->resolved_ms = now;
    rstore_task *task = rstore__task_new(RSTORE_TASK_RESOLVE, 0);
    task->a = c->store_id;
    rstore__worker_push(&s->pd_worker, task);
}

/* ---- outgoing ------------------------------------------------------------------------- */

static rstore_conn *conn_get(rstore_transport *t, uint64_t store_id)
{
    for (size_t i = 0; i < t->n_conns; i++)
        if (t->conns[i]->store_id == store_id)
            return t->conns[i];
    if (t->n_conns == t->cap_conns) {
        size_t cap = t->cap_conns ? t->cap_conns * 2 : 8;
        t->conns = tkv_xrealloc(t->conns, cap * sizeof(rstore_conn *));
        t->cap_conns = cap;
    }
    rstore_conn *c = tkv_xcalloc(1, sizeof(*c));
    c->store_id = store_id;
    atomic_init(&c->broken, false);
    tkv_buf_init(&c->batch);
    t->conns[t->n_conns++] = c;
    return c;
}

static void on_stream_message(rpc_stream *st, tkv_slice msg, void *ud)
{
    (void)st;
    (void)msg;
    (void)ud; /* BatchRaft answers only Done, at the end */
}

static void on_stream_done(rpc_stream *st, const rpc_status *status, void *ud)
{
    (void)st;
    rstore_conn *c = ud;
    atomic_store(&c->broken, true);
    if (status->code != RPC_OK && status->code != RPC_CANCELLED)
        TKV_LOG_DEBUG("raft stream ended", TKV_LF_U64("store_id", c->store_id),
                      TKV_LF_STR("status", rpc_code_name(status->code)));
}

/* Tells every peer whose message in @c's batch is dropped. */
static void report_unreachable(rstore_transport *t, rstore_conn *c)
{
    uint64_t last_region = 0, last_peer = 0;
    for (size_t i = 0; i < c->n_batch; i++) {
        uint64_t region = c->targets[i][0], peer = c->targets[i][1];
        if (region == last_region && peer == last_peer)
            continue;
        last_region = region;
        last_peer = peer;
        rstore_msg *m = rstore__msg_new(RSTORE_MSG_UNREACHABLE, region);
        m->u64a = peer;
        rstore__router_send_or_free(&t->store->router, m);
    }
}

static void clear_batch(rstore_conn *c)
{
    tkv_buf_reset(&c->batch);
    c->n_batch = 0;
}

static void flush_conn(rstore_transport *t, rstore_conn *c)
{
    if (c->n_batch == 0)
        return;
    char addr[128];
    bool known = rstore__transport_addr(t, c->store_id, addr, sizeof(addr));
    if (!known) {
        request_resolve(t, c);
        report_unreachable(t, c);
        clear_batch(c);
        return;
    }
    if (c->stream && (atomic_load(&c->broken) || strcmp(addr, c->addr) != 0)) {
        rpc_stream_free(c->stream);
        c->stream = NULL;
        request_resolve(t, c); /* the store may have moved */
    }
    if (c->stream == NULL) {
        rpc_channel *ch;
        rpc_stream_cbs cbs = {.on_message = on_stream_message, .on_done = on_stream_done, .ud = c};
        atomic_store(&c->broken, false);
        snprintf(c->addr, sizeof(c->addr), "%s", addr);
        if (rpc_client_channel(t->client, addr, 0, &ch) != 0 ||
            rpc_stream_open(ch, "/tikvpb.Tikv/BatchRaft", 0, &cbs, &c->stream) != 0) {
            c->stream = NULL;
            report_unreachable(t, c);
            clear_batch(c);
            return;
        }
    }
    if (rpc_stream_pending_sends(c->stream) > CONGESTED ||
        rpc_stream_send(c->stream, tkv_buf_slice(&c->batch)) != 0) {
        report_unreachable(t, c);
        atomic_store(&c->broken, rpc_stream_pending_sends(c->stream) <= CONGESTED);
    }
    clear_batch(c);
}

void rstore__transport_send(rstore_transport *t, uint64_t store_id, uint64_t region_id,
                            uint64_t to_peer, tkv_slice packed)
{
    rstore_conn *c = conn_get(t, store_id);
    if (tkv_buf_append_u8(&c->batch, 0x0a) != 0 ||
        tkv_codec_encode_uvarint(&c->batch, packed.len) != 0 ||
        tkv_buf_append(&c->batch, packed.data, packed.len) != 0) {
        TKV_LOG_FATAL("out of memory batching raft messages");
        abort();
    }
    if (c->n_batch == c->cap_targets) {
        size_t cap = c->cap_targets ? c->cap_targets * 2 : 64;
        c->targets = tkv_xrealloc(c->targets, cap * sizeof(*c->targets));
        c->cap_targets = cap;
    }
    c->targets[c->n_batch][0] = region_id;
    c->targets[c->n_batch][1] = to_peer;
    c->n_batch++;
    if (c->batch.len >= FLUSH_BYTES)
        flush_conn(t, c);
}

void rstore__transport_flush(rstore_transport *t)
{
    for (size_t i = 0; i < t->n_conns; i++)
        flush_conn(t, t->conns[i]);
}

/* ---- incoming ------------------------------------------------------------------------- */

void rstore__route_raft_message(rstore *s, RaftServerpb__RaftMessage *rm)
{
    if (!atomic_load(&s->accepting) || rm->to_peer == NULL || rm->from_peer == NULL ||
        rm->to_peer->store_id != s->store_id) {
        protobuf_c_message_free_unpacked(&rm->base, NULL);
        return;
    }
    bool snap = rm->message && rm->message->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot;
    rstore_msg *m =
        rstore__msg_new(snap ? RSTORE_MSG_SNAP_RECEIVED : RSTORE_MSG_RAFT, rm->region_id);
    m->u.raft = rm;
    int rc = rstore__router_send(&s->router, m, false);
    if (rc == TKV_ENOTFOUND)
        rstore__poller_send_ctl(&s->poller, m);
    else if (rc != 0)
        rstore__msg_free(m, rc);
}

/* Routes one packed RaftMessage. A MsgSnapshot only counts when it came with its file
 * through the Snapshot stream, which calls rstore__route_raft_message itself. */
static void route_packed(rstore *s, tkv_slice b)
{
    RaftServerpb__RaftMessage *rm = raft_serverpb__raft_message__unpack(NULL, b.len, b.data);
    if (rm == NULL)
        return;
    if (rm->message && rm->message->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot) {
        protobuf_c_message_free_unpacked(&rm->base, NULL);
        return;
    }
    rstore__route_raft_message(s, rm);
}

static void on_raft(rpc_call *call, tkv_slice msg, void *ud)
{
    (void)call;
    route_packed(ud, msg);
}

static void on_batch_raft(rpc_call *call, tkv_slice msg, void *ud)
{
    (void)call;
    rstore *s = ud;
    /* BatchRaftMessage { repeated RaftMessage msgs = 1; }: walk the fields without unpacking
     * the whole batch, so each message is owned on its own. */
    tkv_slice in = msg;
    while (in.len > 0) {
        uint64_t key, len;
        if (tkv_codec_decode_uvarint(&in, &key) != 0)
            return;
        unsigned wt = (unsigned)(key & 7);
        if (wt == 2) {
            if (tkv_codec_decode_uvarint(&in, &len) != 0 || len > in.len)
                return;
            if ((key >> 3) == 1)
                route_packed(s, tkv_slice_of(in.data, (size_t)len));
            in.data += len;
            in.len -= len;
        } else if (wt == 0) {
            uint64_t v;
            if (tkv_codec_decode_uvarint(&in, &v) != 0)
                return;
        } else {
            return; /* nothing else belongs in a BatchRaftMessage */
        }
    }
}

static void on_raft_open(rpc_call *call, void *ud)
{
    (void)call;
    (void)ud;
}

static void on_raft_half_close(rpc_call *call, void *ud)
{
    (void)ud;
    RaftServerpb__Done done = RAFT_SERVERPB__DONE__INIT;
    TKV_IGNORE(rpc_call_reply_msg(call, &done.base));
}

static void on_raft_cancel(rpc_call *call, void *ud)
{
    (void)ud;
    rpc_call_finish(call, RPC_CANCELLED, "cancelled");
}

int rstore_register_service(rstore *s, rpc_server *rs)
{
    rpc_handler h = {
        .type = RPC_CLIENT_STREAMING,
        .on_open = on_raft_open,
        .on_request = on_raft,
        .on_half_close = on_raft_half_close,
        .on_cancel = on_raft_cancel,
        .ud = s,
    };
    int rc = rpc_server_add_method(rs, "/tikvpb.Tikv/Raft", &h);
    if (rc != 0)
        return rc;
    h.on_request = on_batch_raft;
    rc = rpc_server_add_method(rs, "/tikvpb.Tikv/BatchRaft", &h);
    if (rc != 0)
        return rc;
    return rstore__snap_register(s, rs);
}
