/*
 * transport.c: raft messages between stores. Outgoing messages are batched per destination
 * store (one raft_serverpb.RaftMessage after another in a tikvpb.BatchRaftMessage) and sent
 * on one long-lived /tikvpb.Tikv/BatchRaft client stream per store, once per poller round.
 * Store addresses come from PD (GetStore, on the PD worker) and are cached. A message that
 * cannot be sent (no address yet, broken or congested stream) is dropped and its peer told
 * (MsgUnreachable), so Raft probes again. Incoming streams (Raft, BatchRaft) are parsed on
 * the gRPC thread and routed to the peers' mailboxes.
 *
 * Sender identity: every stream a store opens to another (BatchRaft here, Snapshot in
 * snap_io.c) carries its cluster id and store id as request metadata (RSTORE_MD_CLUSTER_ID,
 * RSTORE_MD_STORE_ID). The receiver checks them once, when the stream opens, against its own
 * cluster id and PD's record of the sending store (up, not a tombstone, and with mutual TLS
 * the certificate name PD recorded when the store registered), and then only compares each
 * message's from_peer.store_id with the stream's store id: one integer comparison per
 * message. Refusals are counted and told to rstore_opts.on_refused once per stream.
 */
#include <errno.h>
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
/* An incoming stream re-asks PD about its sending store when the cached answer is older
 * than this (the stream itself is judged on the cached answer). */
#define PEER_REFRESH_UP    10000
#define PEER_REFRESH_OTHER 1000
/* Stores remembered at most (ids claimed by refused streams count too). */
#define MAX_STORES 4096

int rstore__transport_init(rstore_transport *t, rstore *s)
{
    memset(t, 0, sizeof(*t));
    t->store = s;
    atomic_init(&t->refused_streams, 0);
    atomic_init(&t->forged_messages, 0);
    atomic_init(&t->resolve_wanted, false);
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

/* Returns the index of @store_id in t->addrs, adding an entry (PENDING) when @add and there
 * is room; -1 otherwise. Mutex held. */
static ssize_t store_slot(rstore_transport *t, uint64_t store_id, bool add)
{
    for (size_t i = 0; i < t->n_addrs; i++)
        if (t->addrs[i].store_id == store_id)
            return (ssize_t)i;
    if (!add || t->n_addrs >= MAX_STORES)
        return -1;
    if (t->n_addrs == t->cap_addrs) {
        size_t cap = t->cap_addrs ? t->cap_addrs * 2 : 8;
        t->addrs = tkv_xrealloc(t->addrs, cap * sizeof(*t->addrs));
        t->cap_addrs = cap;
    }
    size_t i = t->n_addrs++;
    memset(&t->addrs[i], 0, sizeof(t->addrs[i]));
    t->addrs[i].store_id = store_id;
    return (ssize_t)i;
}

void rstore__transport_set_store(rstore_transport *t, uint64_t store_id, const char *addr,
                                 const char *cert_name, rstore_store_state state)
{
    pthread_mutex_lock(&t->mu);
    ssize_t i = store_slot(t, store_id, true);
    if (i >= 0) {
        if (strcmp(t->addrs[i].addr, addr) != 0 || t->addrs[i].state != state)
            t->addrs[i].generation++;
        snprintf(t->addrs[i].addr, sizeof(t->addrs[i].addr), "%s", addr);
        snprintf(t->addrs[i].cert_name, sizeof(t->addrs[i].cert_name), "%s", cert_name);
        t->addrs[i].state = state;
        t->addrs[i].resolved_ms = tkv_clock_mono_ms();
    }
    pthread_mutex_unlock(&t->mu);
}

rstore_store_state rstore__transport_peer_store(rstore_transport *t, uint64_t store_id, char *cert,
                                                size_t cap)
{
    rstore *s = t->store;
    uint64_t now = tkv_clock_mono_ms();
    bool ask = false;
    rstore_store_state st = RSTORE_STORE_UNKNOWN;
    cert[0] = '\0';
    pthread_mutex_lock(&t->mu);
    ssize_t i = store_slot(t, store_id, s->opts.pd != NULL);
    if (i >= 0) {
        st = t->addrs[i].state;
        snprintf(cert, cap, "%s", t->addrs[i].cert_name);
        uint64_t refresh = st == RSTORE_STORE_UP ? PEER_REFRESH_UP : PEER_REFRESH_OTHER;
        uint64_t last = t->addrs[i].resolved_ms > t->addrs[i].resolve_ms ? t->addrs[i].resolved_ms
                                                                         : t->addrs[i].resolve_ms;
        if (last == 0 || now >= last + refresh) {
            t->addrs[i].resolve_ms = now;
            t->addrs[i].wanted = true;
            ask = true;
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (ask) {
        /* The poller queues it (push_wanted) at once rather than at its next tick. */
        atomic_store(&t->resolve_wanted, true);
        rstore__poller_send_ctl(&s->poller, rstore__msg_new(RSTORE_MSG_WAKE, 0));
    }
    return st;
}

/* Queues the resolves incoming streams asked for (poller thread: the PD worker runs while
 * the poller does, which is not true of the gRPC threads that asked). */
static void push_wanted(rstore_transport *t)
{
    if (!atomic_exchange(&t->resolve_wanted, false))
        return;
    uint64_t ids[64];
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n_addrs; i++) {
        if (!t->addrs[i].wanted)
            continue;
        if (n == TKV_ARRAY_LEN(ids)) {
            atomic_store(&t->resolve_wanted, true); /* the rest next round */
            break;
        }
        t->addrs[i].wanted = false;
        ids[n++] = t->addrs[i].store_id;
    }
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < n; i++) {
        rstore_task *task = rstore__task_new(RSTORE_TASK_RESOLVE, 0);
        task->a = ids[i];
        rstore__worker_push(&t->store->pd_worker, task);
    }
}

bool rstore__transport_addr(rstore_transport *t, uint64_t store_id, char *buf, size_t cap)
{
    bool ok = false;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n_addrs; i++) {
        if (t->addrs[i].store_id == store_id && t->addrs[i].state == RSTORE_STORE_UP &&
            t->addrs[i].addr[0]) {
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
        rstore_stream_md md;
        rstore__stream_md(t->store, &md);
        if (rpc_client_channel(t->client, addr, 0, &ch) != 0 ||
            rpc_stream_open_md(ch, "/tikvpb.Tikv/BatchRaft", 0, md.md, 2, &cbs, &c->stream) != 0) {
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
    push_wanted(t);
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

/* ---- sender identity ------------------------------------------------------------------ */

void rstore__stream_md(const rstore *s, rstore_stream_md *out)
{
    snprintf(out->cluster_id, sizeof(out->cluster_id), "%llu", (unsigned long long)s->cluster_id);
    snprintf(out->store_id, sizeof(out->store_id), "%llu", (unsigned long long)s->store_id);
    out->md[0] = (rpc_md){RSTORE_MD_CLUSTER_ID, out->cluster_id};
    out->md[1] = (rpc_md){RSTORE_MD_STORE_ID, out->store_id};
}

/* Parses metadata @key of @call as a decimal u64 into *@v; false when absent or not a
 * number. */
static bool md_u64(const rpc_call *call, const char *key, uint64_t *v)
{
    char buf[32];
    if (!rpc_call_metadata(call, key, buf, sizeof(buf)) || buf[0] < '0' || buf[0] > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(buf, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *v = x;
    return true;
}

void rstore__refused(rstore *s, rpc_call *call, uint64_t store_id, const char *reason, bool stream)
{
    if (stream) {
        atomic_fetch_add(&s->transport.refused_streams, 1);
        tkv_series_inc(s->m.raft_refused_stream);
    } else {
        atomic_fetch_add(&s->transport.forged_messages, 1);
        tkv_series_inc(s->m.raft_refused_message);
    }
    char peer[128];
    rpc_call_peer(call, peer, sizeof(peer));
    const char *cn = rpc_call_peer_cn(call);
    TKV_LOG_WARN("replication stream refused", TKV_LF_STR("peer", peer), TKV_LF_STR("cn", cn),
                 TKV_LF_STR("method", rpc_call_method(call)), TKV_LF_U64("store_id", store_id),
                 TKV_LF_STR("reason", reason));
    if (s->opts.on_refused == NULL)
        return;
    rstore_refusal r = {.peer = peer,
                        .cert_cn = cn,
                        .method = rpc_call_method(call),
                        .store_id = store_id,
                        .reason = reason};
    s->opts.on_refused(&r, s->opts.refused_ud);
}

/* Checks an incoming replication stream's sender: returns RPC_OK with the sender's store id
 * in *@store_id, or the code to refuse it with and @reason (RPC_UNAVAILABLE: not serving yet
 * or the sender is being looked up: not an offence). Never blocks (PD lookups are queued). */
static rpc_code check_stream(rstore *s, rpc_call *call, uint64_t *store_id, char *reason,
                             size_t cap)
{
    *store_id = 0;
    if (!atomic_load(&s->accepting)) {
        snprintf(reason, cap, "store %llu is not serving yet", (unsigned long long)s->store_id);
        return RPC_UNAVAILABLE;
    }
    uint64_t cid, sid;
    if (!md_u64(call, RSTORE_MD_CLUSTER_ID, &cid)) {
        snprintf(reason, cap, "replication stream without a valid %s", RSTORE_MD_CLUSTER_ID);
        return RPC_UNAUTHENTICATED;
    }
    if (!md_u64(call, RSTORE_MD_STORE_ID, &sid) || sid == 0) {
        snprintf(reason, cap, "replication stream without a valid %s", RSTORE_MD_STORE_ID);
        return RPC_UNAUTHENTICATED;
    }
    *store_id = sid;
    if (cid != s->cluster_id) {
        snprintf(reason, cap, "cluster id %llu is not this cluster's (%llu)",
                 (unsigned long long)cid, (unsigned long long)s->cluster_id);
        return RPC_PERMISSION_DENIED;
    }
    if (sid == s->store_id) {
        snprintf(reason, cap, "store id %llu is this store's own", (unsigned long long)sid);
        return RPC_PERMISSION_DENIED;
    }
    char cert[RSTORE_CERT_NAME_LEN];
    switch (rstore__transport_peer_store(&s->transport, sid, cert, sizeof(cert))) {
    case RSTORE_STORE_PENDING:
        snprintf(reason, cap, "store %llu is being looked up in PD, retry",
                 (unsigned long long)sid);
        return RPC_UNAVAILABLE;
    case RSTORE_STORE_UNKNOWN:
        snprintf(reason, cap, "store %llu is unknown to PD", (unsigned long long)sid);
        return RPC_PERMISSION_DENIED;
    case RSTORE_STORE_TOMBSTONE:
        snprintf(reason, cap, "store %llu is a tombstone", (unsigned long long)sid);
        return RPC_PERMISSION_DENIED;
    case RSTORE_STORE_UP:
        break;
    }
    const char *cn = rpc_call_peer_cn(call);
    if (cn[0] != '\0' && cert[0] == '\0') {
        snprintf(reason, cap, "store %llu registered no certificate name with PD",
                 (unsigned long long)sid);
        return RPC_PERMISSION_DENIED;
    }
    if (cn[0] != '\0' && strcmp(cn, cert) != 0) {
        snprintf(reason, cap, "certificate name is not the one store %llu registered (%.64s)",
                 (unsigned long long)sid, cert);
        return RPC_PERMISSION_DENIED;
    }
    return RPC_OK;
}

/* One incoming Raft or BatchRaft stream: the sender it proved to be. In the call's arena. */
typedef struct raft_in {
    uint64_t store_id;
} raft_in;

/* Drops the message from another store's peer on @call's stream and ends the stream. */
static void forged(rstore *s, rpc_call *call, const raft_in *in, uint64_t from_store)
{
    char reason[160];
    snprintf(reason, sizeof(reason), "message from a peer of store %llu on store %llu's stream",
             (unsigned long long)from_store, (unsigned long long)in->store_id);
    rstore__refused(s, call, in->store_id, reason, false);
    rpc_call_finish(call, RPC_PERMISSION_DENIED, reason);
}

/* Routes one packed RaftMessage of @call's stream. A MsgSnapshot only counts when it came
 * with its file through the Snapshot stream, which calls rstore__route_raft_message itself.
 * Returns false when the message was forged: the stream is finished then. */
static bool route_packed(rstore *s, rpc_call *call, tkv_slice b)
{
    const raft_in *in = rpc_call_data(call);
    RaftServerpb__RaftMessage *rm = raft_serverpb__raft_message__unpack(NULL, b.len, b.data);
    if (rm == NULL)
        return true;
    uint64_t from = rm->from_peer ? rm->from_peer->store_id : 0;
    if (from != in->store_id) {
        protobuf_c_message_free_unpacked(&rm->base, NULL);
        forged(s, call, in, from);
        return false;
    }
    if (rm->message && rm->message->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot) {
        protobuf_c_message_free_unpacked(&rm->base, NULL);
        return true;
    }
    rstore__route_raft_message(s, rm);
    return true;
}

static void on_raft(rpc_call *call, tkv_slice msg, void *ud)
{
    TKV_IGNORE(route_packed(ud, call, msg));
}

static void on_batch_raft(rpc_call *call, tkv_slice msg, void *ud)
{
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
            if ((key >> 3) == 1 && !route_packed(s, call, tkv_slice_of(in.data, (size_t)len)))
                return;
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

bool rstore__admit_stream(rstore *s, rpc_call *call, uint64_t *store_id)
{
    char reason[200];
    rpc_code code = check_stream(s, call, store_id, reason, sizeof(reason));
    if (code == RPC_OK)
        return true;
    if (code != RPC_UNAVAILABLE)
        rstore__refused(s, call, *store_id, reason, true);
    rpc_call_finish(call, code, reason);
    return false;
}

static void on_raft_open(rpc_call *call, void *ud)
{
    uint64_t sid;
    if (!rstore__admit_stream(ud, call, &sid))
        return;
    raft_in *in = rpc_call_alloc(call, sizeof(*in));
    in->store_id = sid;
    rpc_call_set_data(call, in);
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
