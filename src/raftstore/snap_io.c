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

/* ---- receiving ----------------------------------------------------------------------- */

/* One incoming snapshot stream. Kept on the store's list until the store is freed: gRPC
 * may still run a cancel callback for the call while the worker finishes it. */
typedef struct snap_recv {
    struct snap_recv *next;
    rstore *s;
    rpc_call *call;
    RaftServerpb__RaftMessage *msg; /* from the first chunk; handed to the peer at the end */
    char path[512];
    char tmp[600];
    sec_file *f;
    int rc;              /* first failure */
    bool finished;       /* the worker finished the call (worker only) */
    atomic_bool seen;    /* the first chunk arrived (cq thread only) */
    uint64_t from_store; /* the sending store, as checked when the stream opened */
    uint64_t bytes;
} snap_recv;

enum { RECV_DATA = 0, RECV_END = 1, RECV_ABORT = 2 };

static void recv_finish(snap_recv *r, int rc, const char *why)
{
    if (r->finished)
        return;
    r->finished = true;
    if (r->f) {
        TKV_IGNORE(sec_file_close(r->f));
        r->f = NULL;
    }
    if (rc != 0) {
        TKV_IGNORE(sec_file_remove(rstore__snap_keys(r->s), r->tmp));
        if (r->call)
            rpc_call_finish(r->call, RPC_INTERNAL, why);
        TKV_LOG_WARN("receiving snapshot failed", TKV_LF_STR("why", why), TKV_LF_ERR("err", rc));
    } else {
        RaftServerpb__Done done = RAFT_SERVERPB__DONE__INIT;
        TKV_IGNORE(rpc_call_reply_msg(r->call, &done.base));
    }
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
    if (r->rc == 0 && r->msg == NULL)
        r->rc = TKV_ECORRUPT;
    sec_keys *keys = rstore__snap_keys(s);
    if (t->c == RECV_DATA) {
        /* Written through the dictionary: encrypted on disk when encryption is on. */
        if (r->rc == 0 && r->f == NULL)
            r->rc = sec_file_open_write(keys, r->tmp, &r->f);
        if (r->rc == 0 && t->buf.len)
            r->rc = sec_file_write(r->f, t->buf.data, t->buf.len);
        r->bytes += t->buf.len;
        return;
    }
    /* RECV_END */
    if (r->rc == 0 && r->f == NULL)
        r->rc = sec_file_open_write(keys, r->tmp, &r->f); /* an empty region: an empty file */
    if (r->rc == 0)
        r->rc = sec_file_sync(r->f);
    if (r->f) {
        int crc = sec_file_close(r->f);
        if (r->rc == 0)
            r->rc = crc;
        r->f = NULL;
    }
    const Eraftpb__Snapshot *snap = r->rc == 0 ? r->msg->message->snapshot : NULL;
    if (r->rc == 0)
        r->rc = rstore__snap_check_file(s, r->tmp, tkv_slice_of(snap->data.data, snap->data.len));
    if (r->rc == 0)
        r->rc = sec_file_rename(keys, r->tmp, r->path);
    if (r->rc != 0) {
        recv_finish(r, r->rc, "snapshot file does not match its metadata");
        return;
    }
    atomic_fetch_add(&s->stat_snap_received, 1);
    tkv_series_inc(s->m.snapshot_received);
    TKV_LOG_INFO("snapshot received", TKV_LF_U64("region_id", r->msg->region_id),
                 TKV_LF_U64("index", snap->metadata->index), TKV_LF_U64("bytes", r->bytes));
    RaftServerpb__RaftMessage *rm = r->msg;
    r->msg = NULL;
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
    pthread_mutex_lock(&s->snap_recv_mu);
    r->next = s->snap_recvs;
    s->snap_recvs = r;
    pthread_mutex_unlock(&s->snap_recv_mu);
    atomic_fetch_add(&s->snaps_receiving, 1);
    rpc_call_set_data(call, r);
}

static void on_snap_chunk(rpc_call *call, tkv_slice bytes, void *ud)
{
    rstore *s = ud;
    snap_recv *r = rpc_call_data(call);
    RaftServerpb__SnapshotChunk *c =
        raft_serverpb__snapshot_chunk__unpack(NULL, bytes.len, bytes.data);
    if (c == NULL) {
        push_recv(r, RECV_ABORT, tkv_slice_of(NULL, 0));
        return;
    }
    if (!atomic_load(&r->seen)) {
        atomic_store(&r->seen, true);
        RaftServerpb__RaftMessage *m = c->message;
        bool ok = m && m->message && m->message->snapshot && m->message->snapshot->metadata &&
                  m->to_peer && m->to_peer->store_id == s->store_id &&
                  m->message->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot;
        uint64_t from = m && m->from_peer ? m->from_peer->store_id : 0;
        if (ok && from != r->from_store) {
            /* Dropped: no message, so the worker refuses the file and ends the stream. */
            char reason[160];
            snprintf(reason, sizeof(reason),
                     "snapshot from a peer of store %llu on store %llu's stream",
                     (unsigned long long)from, (unsigned long long)r->from_store);
            rstore__refused(s, call, r->from_store, reason, false);
            ok = false;
        }
        if (ok) {
            const Eraftpb__SnapshotMetadata *md = m->message->snapshot->metadata;
            rstore__snap_path(s, false, m->region_id, md->term, md->index, r->path,
                              sizeof(r->path));
            snprintf(r->tmp, sizeof(r->tmp), "%s.%llu.tmp", r->path,
                     (unsigned long long)atomic_fetch_add(&s->snap_seq, 1));
            r->msg = m;
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
        if (r->f)
            TKV_IGNORE(sec_file_close(r->f));
        if (r->msg)
            protobuf_c_message_free_unpacked(&r->msg->base, NULL);
        tkv_free(r);
    }
    pthread_mutex_unlock(&s->snap_recv_mu);
}
