/*
 * snap_io.c: snapshots over the wire, /tikvpb.Tikv/Snapshot (client streaming
 * raft_serverpb.SnapshotChunk, answered with Done). The first chunk carries the RaftMessage
 * (MsgSnapshot with RaftSnapshotData), the following chunks the file's bytes.
 *
 * Sending runs on the snap sender thread: it streams the generated file with bounded
 * buffering and reports the outcome to the peer (MsgSnapStatus). Receiving: gRPC
 * completion-queue threads only parse and queue; the worker writes the file, checks it
 * against the sizes and CRCs the message announces, and only then hands the RaftMessage to
 * the peer, so Raft never sees a snapshot whose data is not on disk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/codec.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

#define CHUNK_BYTES  (1u << 20)
#define MAX_INFLIGHT 8
#define SNAP_TIMEOUT 600000 /* ms for one snapshot stream */

/* ---- sending ------------------------------------------------------------------------- */

static void report_status(rstore *s, uint64_t region_id, uint64_t to_peer, int rc)
{
    rstore_msg *m = rstore__msg_new(RSTORE_MSG_SNAP_STATUS, region_id);
    m->u64a = to_peer;
    m->u64b = rc != 0;
    m->flags = rc == -ENOENT ? 1u : 0u;
    rstore__router_send_or_free(&s->router, m);
}

/* Appends field @tag (length-delimited) with @p[0..n) to @out. */
static int put_field(tkv_buf *out, uint8_t tag, const void *p, size_t n)
{
    int rc = tkv_buf_append_u8(out, tag);
    if (rc == 0)
        rc = tkv_codec_encode_uvarint(out, n);
    return rc ? rc : tkv_buf_append(out, p, n);
}

static int wait_room(rstore *s, rpc_stream *st)
{
    uint64_t deadline = tkv_clock_mono_ms() + SNAP_TIMEOUT;
    while (rpc_stream_pending_sends(st) >= MAX_INFLIGHT) {
        if (atomic_load(&s->accepting) == false || tkv_clock_mono_ms() > deadline)
            return TKV_ECLOSED;
        tkv_sleep_ms(1);
    }
    return 0;
}

/* Streams the snapshot file of task @t. Returns 0 when the receiver acknowledged it. */
static int send_snapshot(rstore *s, rstore_task *t)
{
    char addr[128];
    if (!rstore__transport_addr(&s->transport, t->a, addr, sizeof(addr)))
        return TKV_ENOTFOUND;
    char path[512];
    rstore__snap_path(s, true, t->region_id, t->c, t->d, path, sizeof(path));
    /* Read through the dictionary: the stream carries the plaintext records (the CRCs the
     * receiver checks are over them); TLS protects them on the wire when it is on. */
    sec_file *f;
    int rc = sec_file_open_read(rstore__snap_keys(s), path, &f);
    if (rc != 0)
        return rc;
    rpc_channel *ch;
    rc = rpc_client_channel(s->transport.client, addr, 1, &ch);
    rpc_stream *st = NULL;
    rstore_stream_md md;
    rstore__stream_md(s, &md);
    if (rc == 0)
        rc = rpc_stream_open_md(ch, "/tikvpb.Tikv/Snapshot", SNAP_TIMEOUT, md.md, 2, NULL, &st);
    tkv_buf msg;
    tkv_buf_init(&msg);
    uint8_t *chunk = tkv_xmalloc(CHUNK_BYTES);
    if (rc == 0)
        rc = put_field(&msg, 0x0a, t->buf.data, t->buf.len); /* SnapshotChunk.message */
    if (rc == 0)
        rc = rpc_stream_send(st, tkv_buf_slice(&msg));
    uint64_t sent = 0;
    while (rc == 0) {
        size_t n = 0;
        rc = sec_file_read(f, chunk, CHUNK_BYTES, &n);
        if (rc != 0 || n == 0)
            break;
        tkv_buf_reset(&msg);
        rc = put_field(&msg, 0x12, chunk, n); /* SnapshotChunk.data */
        if (rc == 0)
            rc = wait_room(s, st);
        if (rc == 0)
            rc = rpc_stream_send(st, tkv_buf_slice(&msg));
        sent += n;
    }
    TKV_IGNORE(sec_file_close(f));
    tkv_free(chunk);
    tkv_buf_deinit(&msg);
    if (rc == 0)
        rc = rpc_stream_close_send(st);
    if (rc == 0) {
        rpc_status status;
        rc = rpc_stream_wait(st, SNAP_TIMEOUT, &status);
        if (rc == 0 && status.code != RPC_OK) {
            TKV_LOG_WARN("snapshot refused by receiver", TKV_LF_U64("region_id", t->region_id),
                         TKV_LF_STR("status", status.message));
            rc = TKV_ERPC;
        }
    }
    rpc_stream_free(st);
    if (rc == 0)
        TKV_LOG_INFO("snapshot sent", TKV_LF_U64("region_id", t->region_id),
                     TKV_LF_U64("to_store", t->a), TKV_LF_U64("index", t->d),
                     TKV_LF_U64("bytes", sent));
    return rc;
}

void rstore__run_snap_task(rstore *s, rstore_task *t)
{
    if (t->type != RSTORE_TASK_SEND_SNAP)
        return;
    atomic_fetch_add(&s->snaps_sending, 1);
    int rc = send_snapshot(s, t);
    atomic_fetch_sub(&s->snaps_sending, 1);
    if (rc != 0)
        TKV_LOG_WARN("sending snapshot failed", TKV_LF_U64("region_id", t->region_id),
                     TKV_LF_U64("to_store", t->a), TKV_LF_ERR("err", rc));
    else {
        atomic_fetch_add(&s->stat_snap_sent, 1);
        tkv_series_inc(s->m.snapshot_sent);
    }
    report_status(s, t->region_id, t->b, rc);
}

/* ---- receiving: one stream, apart from gRPC and the worker ---------------------------- */

void rstore__snap_rx_init(rstore_snap_rx *rx, rstore *s)
{
    memset(rx, 0, sizeof(*rx));
    rx->s = s;
}

void rstore__snap_rx_begin(rstore_snap_rx *rx, RaftServerpb__RaftMessage *m)
{
    rstore *s = rx->s;
    rx->begun = true;
    bool ok = m && m->message && m->message->snapshot && m->message->snapshot->metadata &&
              m->to_peer && m->to_peer->store_id == s->store_id &&
              m->message->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot;
    const Eraftpb__Snapshot *snap = ok ? m->message->snapshot : NULL;
    /* The metadata says what the file must be: decoded now, the data is checked as it
     * arrives and never written past what it announces. */
    ok = ok &&
         rstore__snap_meta_decode(tkv_slice_of(snap->data.data, snap->data.len), &rx->meta) == 0;
    if (ok && rx->meta.region->id != m->region_id) {
        rstore__snap_meta_deinit(&rx->meta);
        ok = false;
    }
    if (!ok) {
        if (m)
            protobuf_c_message_free_unpacked(&m->base, NULL);
        rx->rc = TKV_ECORRUPT;
        return;
    }
    rx->msg = m;
    rstore__snap_path(s, false, m->region_id, snap->metadata->term, snap->metadata->index, rx->path,
                      sizeof(rx->path));
    snprintf(rx->tmp, sizeof(rx->tmp), "%s.%llu.tmp", rx->path,
             (unsigned long long)atomic_fetch_add(&s->snap_seq, 1));
    rstore__snap_parser_init(&rx->parser, rx->meta.region, &rx->meta, NULL, NULL);
    rx->parsing = true;
}

int rstore__snap_rx_data(rstore_snap_rx *rx, tkv_slice data)
{
    if (rx->rc == 0 && rx->msg == NULL)
        rx->rc = TKV_ECORRUPT; /* data before a valid first chunk */
    if (rx->rc == 0 && data.len)
        rx->rc = rstore__snap_parser_feed(&rx->parser, data.data, data.len);
    /* Written through the dictionary: encrypted on disk when encryption is on. */
    sec_keys *keys = rstore__snap_keys(rx->s);
    if (rx->rc == 0 && rx->f == NULL)
        rx->rc = sec_file_open_write(keys, rx->tmp, &rx->f);
    if (rx->rc == 0 && data.len)
        rx->rc = sec_file_write(rx->f, data.data, data.len);
    if (rx->rc == 0)
        rx->bytes += data.len;
    return rx->rc;
}

int rstore__snap_rx_end(rstore_snap_rx *rx, RaftServerpb__RaftMessage **msg)
{
    *msg = NULL;
    int rc = rstore__snap_rx_data(rx, tkv_slice_of(NULL, 0)); /* an empty region: empty file */
    if (rc == 0)
        rc = rstore__snap_parser_finish(&rx->parser);
    if (rc == 0)
        rc = sec_file_sync(rx->f);
    if (rx->f) {
        int crc = sec_file_close(rx->f);
        rx->f = NULL;
        if (rc == 0)
            rc = crc;
    }
    /* Read back what reached the disk, as the peer will before stepping it. */
    const Eraftpb__Snapshot *snap = rc == 0 ? rx->msg->message->snapshot : NULL;
    if (rc == 0)
        rc = rstore__snap_check_file(rx->s, rx->tmp, tkv_slice_of(snap->data.data, snap->data.len));
    if (rc == 0)
        rc = sec_file_rename(rstore__snap_keys(rx->s), rx->tmp, rx->path);
    rx->rc = rc;
    if (rc == 0) {
        rx->done = true;
        *msg = rx->msg;
        rx->msg = NULL;
    }
    return rc;
}

void rstore__snap_rx_deinit(rstore_snap_rx *rx)
{
    if (rx->f)
        TKV_IGNORE(sec_file_close(rx->f));
    if (!rx->done && rx->tmp[0])
        TKV_IGNORE(sec_file_remove(rstore__snap_keys(rx->s), rx->tmp));
    if (rx->msg)
        protobuf_c_message_free_unpacked(&rx->msg->base, NULL);
    if (rx->parsing)
        rstore__snap_parser_deinit(&rx->parser);
    rstore__snap_meta_deinit(&rx->meta);
    memset(rx, 0, sizeof(*rx));
}

/* ---- receiving over gRPC -------------------------------------------------------------- */

/* One incoming snapshot stream. Kept on the store's list until the store is freed: gRPC
 * may still run a cancel callback for the call while the worker finishes it. */
typedef struct snap_recv {
    struct snap_recv *next;
    rstore *s;
    rpc_call *call;
    RaftServerpb__RaftMessage *first; /* the first chunk's message (cq thread), for the worker */
    rstore_snap_rx rx;                /* worker only */
    bool finished;                    /* the worker finished the call (worker only) */
    atomic_bool seen;                 /* the first chunk arrived (cq thread only) */
    uint64_t from_store;              /* the sending store, as checked when the stream opened */
} snap_recv;

enum { RECV_DATA = 0, RECV_END = 1, RECV_ABORT = 2 };

static void recv_finish(snap_recv *r, int rc, const char *why)
{
    if (r->finished)
        return;
    r->finished = true;
    if (rc != 0) {
        if (r->call)
            rpc_call_finish(r->call, RPC_INTERNAL, why);
        TKV_LOG_WARN("receiving snapshot failed", TKV_LF_STR("why", why), TKV_LF_ERR("err", rc));
    } else {
        RaftServerpb__Done done = RAFT_SERVERPB__DONE__INIT;
        TKV_IGNORE(rpc_call_reply_msg(r->call, &done.base));
    }
    rstore__snap_rx_deinit(&r->rx); /* removes a partial file */
    r->call = NULL;
    atomic_fetch_sub(&r->s->snaps_receiving, 1);
}

/* Worker side: one chunk, the end, or an abort. */
static void recv_task(rstore *s, rstore_task *t)
{
    snap_recv *r = t->p;
    if (r->finished)
        return;
    if (t->c == RECV_ABORT) {
        recv_finish(r, TKV_ECLOSED, "cancelled");
        return;
    }
    if (!r->rx.begun) {
        rstore__snap_rx_begin(&r->rx, r->first);
        r->first = NULL;
    }
    if (t->c == RECV_DATA) {
        if (rstore__snap_rx_data(&r->rx, tkv_buf_slice(&t->buf)) != 0)
            recv_finish(r, r->rx.rc, "snapshot data does not match its metadata");
        return;
    }
    /* RECV_END */
    RaftServerpb__RaftMessage *rm;
    if (rstore__snap_rx_end(&r->rx, &rm) != 0) {
        recv_finish(r, r->rx.rc, "snapshot file does not match its metadata");
        return;
    }
    atomic_fetch_add(&s->stat_snap_received, 1);
    tkv_series_inc(s->m.snapshot_received);
    TKV_LOG_INFO("snapshot received", TKV_LF_U64("region_id", rm->region_id),
                 TKV_LF_U64("index", rm->message->snapshot->metadata->index),
                 TKV_LF_U64("bytes", r->rx.bytes));
    recv_finish(r, 0, NULL);
    rstore__route_raft_message(s, rm);
}

static void push_recv(snap_recv *r, int kind, tkv_slice data)
{
    rstore_task *t = rstore__task_new(RSTORE_TASK_RECV_CHUNK, 0);
    t->p = r;
    t->c = (uint64_t)kind;
    if (data.len && tkv_buf_set(&t->buf, data.data, data.len) != 0) {
        TKV_LOG_FATAL("out of memory receiving a snapshot");
        abort();
    }
    rstore__worker_push(&r->s->worker, t);
}

static void on_snap_open(rpc_call *call, void *ud)
{
    rstore *s = ud;
    uint64_t sid;
    if (!rstore__admit_stream(s, call, &sid))
        return;
    snap_recv *r = tkv_xcalloc(1, sizeof(*r));
    r->s = s;
    r->from_store = sid;
    r->call = call;
    rstore__snap_rx_init(&r->rx, s);
    pthread_mutex_lock(&s->snap_recv_mu);
    r->next = s->snap_recvs;
    s->snap_recvs = r;
    pthread_mutex_unlock(&s->snap_recv_mu);
    atomic_fetch_add(&s->snaps_receiving, 1);
    rpc_call_set_data(call, r);
}

static void on_snap_chunk(rpc_call *call, tkv_slice bytes, void *ud)
{
    (void)ud;
    snap_recv *r = rpc_call_data(call);
    RaftServerpb__SnapshotChunk *c =
        raft_serverpb__snapshot_chunk__unpack(NULL, bytes.len, bytes.data);
    if (c == NULL) {
        push_recv(r, RECV_ABORT, tkv_slice_of(NULL, 0));
        return;
    }
    if (!atomic_load(&r->seen)) {
        /* Checked by the worker (rstore__snap_rx_begin) before any data is written. */
        atomic_store(&r->seen, true);
        RaftServerpb__RaftMessage *m = c->message;
        uint64_t from = m && m->from_peer ? m->from_peer->store_id : 0;
        if (m != NULL && from != r->from_store) {
            /* Dropped: no message, so the worker refuses the file and ends the stream. */
            char reason[160];
            snprintf(reason, sizeof(reason),
                     "snapshot from a peer of store %llu on store %llu's stream",
                     (unsigned long long)from, (unsigned long long)r->from_store);
            rstore__refused(r->s, call, r->from_store, reason, false);
        } else {
            r->first = m;
            c->message = NULL;
        }
    }
    push_recv(r, RECV_DATA, tkv_slice_of(c->data.data, c->data.len));
    protobuf_c_message_free_unpacked(&c->base, NULL);
}

static void on_snap_half_close(rpc_call *call, void *ud)
{
    (void)ud;
    push_recv(rpc_call_data(call), RECV_END, tkv_slice_of(NULL, 0));
}

static void on_snap_cancel(rpc_call *call, void *ud)
{
    (void)ud;
    push_recv(rpc_call_data(call), RECV_ABORT, tkv_slice_of(NULL, 0));
}

void rstore__run_recv_task(rstore *s, rstore_task *t)
{
    recv_task(s, t);
}

int rstore__snap_register(rstore *s, rpc_server *rs)
{
    rpc_handler h = {
        .type = RPC_CLIENT_STREAMING,
        .on_open = on_snap_open,
        .on_request = on_snap_chunk,
        .on_half_close = on_snap_half_close,
        .on_cancel = on_snap_cancel,
        .ud = s,
    };
    return rpc_server_add_method(rs, "/tikvpb.Tikv/Snapshot", &h);
}

void rstore__snap_recv_free_all(rstore *s)
{
    pthread_mutex_lock(&s->snap_recv_mu);
    while (s->snap_recvs) {
        snap_recv *r = s->snap_recvs;
        s->snap_recvs = r->next;
        rstore__snap_rx_deinit(&r->rx);
        if (r->first)
            protobuf_c_message_free_unpacked(&r->first->base, NULL);
        tkv_free(r);
    }
    pthread_mutex_unlock(&s->snap_recv_mu);
}
