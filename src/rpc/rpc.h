/*
 * rpc.h: gRPC servers and clients on gRPC's C core, in protobuf-c message terms.
 *
 * Every tikv-c component talks through this module: tikv-server and pd-server serve their
 * gRPC services with rpc_server, the raft transport, PD client and libtikvc call out with
 * rpc_client. It speaks plain HTTP/2 gRPC, so the official TiKV clients work against it.
 *
 * Owns: gRPC core's process-wide state (rpc_init/rpc_shutdown, reference counted), servers
 * with their completion-queue threads and method tables, clients with their completion-queue
 * threads and channel caches, and every in-flight call and stream.
 *
 * Threads:
 *   - A server runs `cq_threads` completion-queue threads. Each call is bound to one of them,
 *     and all callbacks of one call (on_open, on_message, on_half_close, on_cancel) run on
 *     that thread, one at a time, never concurrently with each other. Callbacks must not
 *     block on disk, Raft or locks held for long: hand slow work to another thread and
 *     complete the call from there (rpc_call_send, rpc_call_reply, rpc_call_finish are
 *     thread-safe and may run concurrently with the call's callbacks).
 *   - A client runs `cq_threads` completion-queue threads for rpc_unary_async callbacks and
 *     stream callbacks; the same rule holds (one stream's callbacks never overlap). Blocking
 *     calls (rpc_unary, rpc_stream_read, rpc_stream_wait) run on the caller's thread and must
 *     not be made from a completion-queue thread.
 *   - rpc_client_channel, rpc_unary*, rpc_stream_* and rpc_server_set_health are thread-safe.
 *     Building a server (rpc_server_new, rpc_server_add_method, rpc_server_start) and
 *     freeing servers and clients happen on one thread.
 *
 * Errors: functions return 0 or a negative code: -EINVAL (bad argument), -ENOMEM, TKV_ECONFIG
 * (credentials or address rejected; the handle's errmsg says why), TKV_ECLOSED (the call or
 * stream is finished, cancelled or half-closed), TKV_ECORRUPT (a message does not decode),
 * TKV_ERPC (the call ended with a non-OK gRPC status, which is in the rpc_status out
 * parameter). A call's outcome is always an rpc_status: gRPC's code numbering plus a message.
 * gRPC core's own allocations abort on out-of-memory; ours return -ENOMEM.
 *
 * Ownership:
 *   - Server calls: the handler owns a call from the first callback it receives for it
 *     (on_request for unary and server-streaming methods, on_open for client-streaming and
 *     bidirectional methods) until it calls rpc_call_finish or rpc_call_reply* exactly once,
 *     from any thread. That is mandatory even when the call was cancelled (finishing a
 *     cancelled call costs nothing); the server cannot shut down while a handler still owns
 *     a call. After finishing, the handler must not touch the call again.
 *   - Message bytes handed to callbacks (tkv_slice) are borrowed for the callback only.
 *     Messages passed to send functions are copied (packed) before they return.
 *   - Clients own their channels (rpc_client_channel returns a borrowed pointer valid until
 *     rpc_client_free). Streams belong to the caller until rpc_stream_free.
 *   - Messages unpacked by rpc_msg_unpack are freed with rpc_msg_free; those unpacked by
 *     rpc_call_unpack and memory from rpc_call_alloc live in the call's arena and go with
 *     the call (CONVENTIONS: handlers allocate from the call's arena).
 *
 * Dependencies: base (errors, allocation, slices, log, clock), gRPC core (libgrpc), protobuf-c,
 * tkv_proto (the built-in grpc.health.v1 service).
 *
 * Usage (a server with one unary method, answered from the callback):
 *     static void raw_get(rpc_call *call, tkv_slice req, void *ud)
 *     {
 *         ProtobufCMessage *m;       // unpacked into the call's arena: never freed by hand
 *         if (rpc_call_unpack(call, &kvrpcpb__raw_get_request__descriptor, req, &m) != 0) {
 *             rpc_call_finish(call, RPC_INVALID_ARGUMENT, "bad RawGetRequest");
 *             return;
 *         }
 *         Kvrpcpb__RawGetResponse resp = KVRPCPB__RAW_GET_RESPONSE__INIT;
 *         resp.not_found = 1;        // or hand `call` to another thread and reply there
 *         TKV_IGNORE(rpc_call_reply_msg(call, &resp.base));
 *     }
 *     rpc_server_opts o;
 *     rpc_server_opts_init(&o);
 *     o.addr = "127.0.0.1:0";
 *     rpc_server *srv;
 *     rc = rpc_server_new(&o, &srv);
 *     rpc_handler h = {.type = RPC_UNARY, .on_request = raw_get};
 *     rc = rpc_server_add_method(srv, "/tikvpb.Tikv/RawGet", &h);
 *     rc = rpc_server_start(srv);          // rpc_server_port(srv) is the bound port
 *     ...
 *     rpc_server_shutdown(srv, 5000);      // finish calls in flight, cancel after 5 s
 *     rpc_server_free(srv);
 */
#ifndef TKV_RPC_H
#define TKV_RPC_H

#include <protobuf-c/protobuf-c.h>

#include "base/base.h"

struct grpc_byte_buffer;

/* ---- status -------------------------------------------------------------------------- */

/* gRPC status codes, with gRPC's numbering (they go on the wire as grpc-status). */
typedef enum rpc_code {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_OUT_OF_RANGE = 11,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_DATA_LOSS = 15,
    RPC_UNAUTHENTICATED = 16,
} rpc_code;

/* Longest status message kept (longer ones are truncated). */
#define RPC_STATUS_MSG_LEN 256

/* The outcome of a call: a code and a human-readable message ("" when none). Plain data. */
typedef struct rpc_status {
    rpc_code code;
    char message[RPC_STATUS_MSG_LEN];
} rpc_status;

/* Returns the upper-case gRPC name of @code ("OK", "DEADLINE_EXCEEDED", ...), or "UNKNOWN"
 * for numbers outside gRPC's range. */
const char *rpc_code_name(int code);

/* Sets @st to @code with a printf-formatted message (truncated to fit). */
void rpc_status_set(rpc_status *st, rpc_code code, const char *fmt, ...) TKV_PRINTF(3, 4);

/* ---- process-wide state -------------------------------------------------------------- */

/* Takes a reference on gRPC core's global state (grpc_init) and routes gRPC's own log lines
 * into tikv-c's log (errors only unless GRPC_VERBOSITY says otherwise). Servers and clients
 * take their own reference, so calling this is optional; a program that creates and frees
 * many of them keeps one reference to avoid re-initializing gRPC each time.
 * Thread: any, but balance every call with rpc_shutdown. */
void rpc_init(void);

/* Drops a reference taken by rpc_init. When it is the last one, gRPC shuts down in the
 * calling thread (grpc_shutdown_blocking), so a process that ends after its last rpc_shutdown
 * leaves nothing behind for LeakSanitizer. Must not run on a completion-queue thread. */
void rpc_shutdown(void);

/* ---- credentials --------------------------------------------------------------------- */

/* PEM file paths for TLS (TiKV's [security] ca-path, cert-path, key-path). A NULL pointer
 * to this struct, or all three paths NULL, means plaintext (h2c), which is what the official
 * clients use unless configured otherwise.
 *   server: cert_path and key_path are required for TLS; with ca_path, clients must present a
 *           certificate signed by that CA (mutual TLS), else the handshake fails.
 *   client: ca_path is required for TLS (it verifies the server); cert_path + key_path
 *           (both or neither) present a client certificate. */
typedef struct rpc_tls {
    const char *ca_path;
    const char *cert_path;
    const char *key_path;
} rpc_tls;

/* ---- messages ------------------------------------------------------------------------ */

/* Unpacks @bytes as a message of type @desc into *@out (free it with rpc_msg_free).
 * Errors: -EINVAL (NULL descriptor or out), TKV_ECORRUPT (the bytes do not decode as that
 * type, or an allocation failed while decoding: protobuf-c does not tell the two apart). */
TKV_MUST_USE int rpc_msg_unpack(const ProtobufCMessageDescriptor *desc, tkv_slice bytes,
                                ProtobufCMessage **out);

/* Frees a message unpacked by rpc_msg_unpack or rpc_msg_from_bb; NULL is a no-op. */
void rpc_msg_free(ProtobufCMessage *msg);

/* Replaces the contents of @out with the packed bytes of @msg. Errors: -ENOMEM (@out keeps
 * its old contents). */
TKV_MUST_USE int rpc_msg_pack(const ProtobufCMessage *msg, tkv_buf *out);

/* Packs @msg into a new gRPC byte buffer *@out (the caller owns it; grpc_byte_buffer_destroy).
 * For code that drives gRPC core directly. Errors: -EINVAL. */
TKV_MUST_USE int rpc_msg_to_bb(const ProtobufCMessage *msg, struct grpc_byte_buffer **out);

/* Unpacks the gRPC byte buffer @bb (borrowed; decompressed if needed) as @desc into *@out
 * (free with rpc_msg_free). Errors: -EINVAL, TKV_ECORRUPT. */
TKV_MUST_USE int rpc_msg_from_bb(const ProtobufCMessageDescriptor *desc,
                                 struct grpc_byte_buffer *bb, ProtobufCMessage **out);

/* ---- server -------------------------------------------------------------------------- */

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

/* How many messages each side of a method sends (the proto `stream` keyword). */
typedef enum rpc_method_type {
    RPC_UNARY = 0,            /* one request, one response */
    RPC_CLIENT_STREAMING = 1, /* many requests, one response (Raft, Snapshot) */
    RPC_SERVER_STREAMING = 2, /* one request, many responses */
    RPC_BIDI_STREAMING = 3,   /* many each way (BatchCommands, Tso, RegionHeartbeat) */
} rpc_method_type;

/* A method's handler. Callbacks run on the call's completion-queue thread (see Threads).
 *   on_request:    required. Unary and server-streaming: called once with the request, and
 *                  the handler owns the call from here. Client-streaming and bidi: called
 *                  for each request message, in order; once the handler finished the call
 *                  no further message is delivered, except one that raced with a finish
 *                  made on another thread (the call stays valid for that callback and its
 *                  sends return TKV_ECLOSED).
 *   on_open:       required for client-streaming and bidi, unused otherwise: the call
 *                  arrived, before any message; the handler owns the call from here.
 *   on_half_close: required for client-streaming and bidi: the client sent its last
 *                  message (not called when the call was cancelled instead).
 *   on_cancel:     optional: the call was cancelled (client cancel, deadline, connection
 *                  loss, server shutdown) while the handler owned it. Called at most once,
 *                  possibly while another thread is finishing the call. The handler must
 *                  still finish the call.
 *   ud:            passed to every callback. */
typedef struct rpc_handler {
    rpc_method_type type;
    void (*on_request)(rpc_call *call, tkv_slice msg, void *ud);
    void (*on_open)(rpc_call *call, void *ud);
    void (*on_half_close)(rpc_call *call, void *ud);
    void (*on_cancel)(rpc_call *call, void *ud);
    void *ud;
} rpc_handler;

/* Answers of the built-in grpc.health.v1.Health/Check (HealthCheckResponse.ServingStatus). */
typedef enum rpc_health {
    RPC_HEALTH_UNKNOWN = 0,
    RPC_HEALTH_SERVING = 1,
    RPC_HEALTH_NOT_SERVING = 2,
} rpc_health;

/* What was refused (rpc_peer_rejection.kind). */
typedef enum rpc_reject_kind {
    RPC_REJECT_CALL = 0,      /* a call: gate, client certificate or allow-list */
    RPC_REJECT_HANDSHAKE = 1, /* with TLS, a connection went away without a call within the
                               * handshake timeout: failed or aborted handshake (counts as an
                               * authentication failure) */
    RPC_REJECT_CONNECTION = 2 /* closed at accept: banned address or connection limit (not a
                               * failure of its own; reported once a minute per address) */
} rpc_reject_kind;

/* A call or connection refused before any handler saw it (rpc_server_opts.on_peer_rejected).
 * Strings are borrowed for the hook's duration. */
typedef struct rpc_peer_rejection {
    const char *peer;    /* gRPC peer address, "ipv4:127.0.0.1:5555" */
    const char *cert_cn; /* the client certificate's common name, "" when none */
    const char *method;  /* full method path, "" for connections */
    rpc_code code;       /* PERMISSION_DENIED or UNAUTHENTICATED; connections refused for a
                          * limit: RESOURCE_EXHAUSTED */
    const char *reason;  /* the status message sent to the client, or what happened */
    rpc_reject_kind kind;
} rpc_peer_rejection;

typedef struct rpc_server_opts {
    /* "host:port" to listen on (IPv4, [IPv6] or a name); port 0 picks a free port. */
    const char *addr;
    /* Completion-queue threads (TiKV's server.grpc-concurrency). */
    int cq_threads;
    /* Largest message accepted / sent, in bytes; <= 0 means unlimited (TiKV's default, since
     * clients send big BatchCommands frames). Larger messages fail the call with
     * RESOURCE_EXHAUSTED. */
    int max_recv_msg_bytes;
    int max_send_msg_bytes;
    /* The server pings a connection idle this long and closes it when no answer comes
     * within keepalive_timeout_ms (TiKV's grpc-keepalive-time / -timeout). */
    int keepalive_time_ms;
    int keepalive_timeout_ms;
    /* Client pings closer together than this (without data) count as bad pings; bad pings
     * are never punished (ping strikes off), so official clients that ping every 10 s on
     * idle streams are not disconnected. */
    int min_recv_ping_interval_ms;
    /* Outstanding accepted-call slots per completion queue. */
    int accept_slots;
    /* TLS; NULL means plaintext. The files are watched: a changed certificate, key or CA
     * bundle is used for new connections (checked at every new connection; a set whose key
     * does not match its certificate is ignored until the files agree).
     * With ca_path (mutual TLS) every call must come with a client certificate that the CA
     * signed (chain and validity checked with OpenSSL per call, cached per certificate); a
     * call without one, or with one from another CA, is refused with UNAUTHENTICATED before
     * any handler runs. The TLS handshake itself accepts such clients so that the refusal
     * is seen with its peer address and method (on_peer_rejected). */
    const rpc_tls *tls;
    /* With mutual TLS: NULL-terminated lists of client certificate names that may call
     * (TiKV's security.cert-allowed-cn, and cert-allowed-san for subject alternative names:
     * DNS, URI, email or IP entries). A call is admitted when the certificate's common name
     * equals an entry of cert_allowed_cn or one of its SANs equals an entry of
     * cert_allowed_san, byte for byte: "tikv" does not admit "evil-tikv-client" (TiKV matches
     * more loosely; we do not). Others get PERMISSION_DENIED. Both NULL (or empty) admit any
     * client the CA verified. Copied. */
    const char *const *cert_allowed_cn;
    const char *const *cert_allowed_san;
    /* Optional hooks, run on the call's completion-queue thread (they must not block):
     *   peer_gate:        asked first with the gRPC peer address ("ipv4:127.0.0.1:5555");
     *                     false refuses the call with PERMISSION_DENIED (brute-force bans).
     *   on_peer_rejected: told about every call refused by the gate, for a missing or
     *                     untrusted client certificate, or by the allow-lists (for the audit
     *                     log and the failure counters), and about the connection gate's
     *                     refusals and failed handshakes (rpc_reject_kind; those run on the
     *                     gate's sweeper thread). The peer gate is also asked at accept: a
     *                     banned address's connections are closed at once. */
    bool (*peer_gate)(const char *peer, void *ud);
    void (*on_peer_rejected)(const struct rpc_peer_rejection *r, void *ud);
    /*   method_gate:      with mutual TLS, asked after the certificate passed, with the
     *                     method path and the certificate's common name; false refuses the
     *                     call with PERMISSION_DENIED and @reason (told to on_peer_rejected):
     *                     e.g. replication methods only for the stores' own names. */
    bool (*method_gate)(const char *method, const char *cn, char *reason, size_t cap, void *ud);
    void *hook_ud;
    /* Hardening; 0 keeps gRPC's default (unlimited unless said otherwise):
     *   max_concurrent_streams:  calls open at once on one connection (TiKV's
     *                            server.grpc-concurrent-stream); more are refused by HTTP/2.
     *   max_metadata_bytes:      request header size (gRPC's default 8 KiB); larger calls
     *                            fail with RESOURCE_EXHAUSTED.
     *   handshake_timeout_ms:    a connection that has not finished its TCP+TLS+HTTP/2
     *                            handshake in time is closed (gRPC's default 120 s).
     *   memory_quota_bytes:      gRPC resource quota for the server's buffers and calls
     *                            (TiKV's server.grpc-memory-pool-quota): under pressure gRPC
     *                            reads less and refuses new calls instead of growing.
     *   max_connection_idle_ms:  a connection without calls for this long is closed (GOAWAY).
     *   max_connection_age_ms:   connections are closed after this long, calls in flight
     *                            get max_connection_age_grace_ms (default a tenth) to finish. */
    int max_concurrent_streams;
    int max_metadata_bytes;
    int handshake_timeout_ms;
    int64_t memory_quota_bytes;
    int max_connection_idle_ms;
    int max_connection_age_ms;
    int max_connection_age_grace_ms;
    /* Connection gate (gRPC core has no connection limit; see rpc_gate.c for how it works):
     *   max_connections:          connections open at once; one more is closed as soon as it
     *                             is accepted (0: unlimited).
     *   max_connections_per_addr: the same from one source address (0: unlimited).
     * The gate runs when either is set, with TLS (failed handshakes are counted and told to
     * on_peer_rejected) or with a peer_gate (banned addresses are refused at accept). */
    int max_connections;
    int max_connections_per_addr;
} rpc_server_opts;

/* Fills @o with defaults: addr "127.0.0.1:20160", 2 completion-queue threads, unlimited
 * message sizes, keepalive 10 s / 3 s, minimum ping interval 1 s, 16 accept slots,
 * plaintext. */
void rpc_server_opts_init(rpc_server_opts *o);

/* Creates a server from @o (copied) into *@out; it does not listen until rpc_server_start.
 * Errors: -EINVAL (NULL arguments, addr NULL, cq_threads < 1), TKV_ECONFIG (TLS files
 * unreadable or incomplete: message in *@out's errmsg is lost, so it is logged as well),
 * -ENOMEM. */
TKV_MUST_USE int rpc_server_new(const rpc_server_opts *o, rpc_server **out);

/* Adds a method under its full path ("/tikvpb.Tikv/RawGet"); @h is copied. The service name
 * ("tikvpb.Tikv") becomes known to the health service as SERVING. Registering the health
 * path "/grpc.health.v1.Health/Check" replaces the built-in one.
 * Errors: -EINVAL (bad path, missing required callback, server already started),
 * TKV_EEXIST (path already registered), -ENOMEM. */
TKV_MUST_USE int rpc_server_add_method(rpc_server *s, const char *path, const rpc_handler *h);

/* Sets what Health/Check answers for @service ("" is the whole server; by default SERVING,
 * as is every service that has a method). Unknown services answer NOT_FOUND.
 * Thread: any, at any time. Errors: -EINVAL, -ENOMEM. */
TKV_MUST_USE int rpc_server_set_health(rpc_server *s, const char *service, rpc_health status);

/* Binds the address, starts the completion-queue threads and begins accepting calls.
 * Errors: TKV_ECONFIG (the address could not be bound: in use, bad host), -EINVAL (already
 * started), -ENOMEM, -errno (thread creation). On failure the server is left unstarted and
 * must still be freed. */
TKV_MUST_USE int rpc_server_start(rpc_server *s);

/* Returns the bound TCP port after a successful rpc_server_start, else 0. */
int rpc_server_port(const rpc_server *s);

/* Stops accepting calls, lets calls in flight finish for up to @grace_ms (< 0: wait as long
 * as they take), then cancels the rest (their handlers see on_cancel and must finish them),
 * waits until every call is gone and stops the completion-queue threads. Idempotent.
 * Thread: not a completion-queue thread of this server. */
void rpc_server_shutdown(rpc_server *s, int64_t grace_ms);

/* Shuts the server down (grace 0) if it still runs and frees it; NULL is a no-op. */
void rpc_server_free(rpc_server *s);

/* Returns the message of the last failure of a server call (valid until the next call). */
const char *rpc_server_errmsg(const rpc_server *s);

/* Counters of a server's connection gate (all zero when the gate is off). */
typedef struct rpc_gate_stats {
    uint64_t open;               /* connections open now (as of the last sweep) */
    uint64_t accepted;           /* connections admitted */
    uint64_t refused_banned;     /* closed at accept: the peer gate refused the address */
    uint64_t refused_limit;      /* closed at accept: max_connections reached */
    uint64_t refused_addr_limit; /* closed at accept: max_connections_per_addr reached */
    uint64_t handshake_failures; /* TLS connections gone without a call (failed handshakes) */
    uint64_t unserved;           /* open connections with neither a call nor (with TLS) a
                                  * completed handshake seen yet */
} rpc_gate_stats;

/* Fills @out with @s's gate counters. The same figures are exported as the metrics
 * tikv_server_grpc_connections, tikv_server_grpc_connections_refused_total{reason} and
 * tikv_server_tls_handshake_failures_total (summed over the process's servers).
 * Thread: any. */
void rpc_server_gate_stats(const rpc_server *s, rpc_gate_stats *out);

/* ---- server calls (used by handlers) ------------------------------------------------- */

/* Queues a response message (packed copy of @msg) on a streaming call. Messages go out in
 * the order queued, one at a time; responses for unary methods use rpc_call_reply instead.
 * Thread: any. Errors: TKV_ECLOSED (already finished by the handler, or cancelled: the
 * message is dropped), -ENOMEM. */
TKV_MUST_USE int rpc_call_send(rpc_call *call, tkv_slice msg);
/* As rpc_call_send, with a protobuf-c message. */
TKV_MUST_USE int rpc_call_send_msg(rpc_call *call, const ProtobufCMessage *msg);

/* Ends the call with @code and @message (NULL for none) after every queued message, and
 * releases the handler's ownership: @call must not be used afterwards. Calling it twice is
 * a bug (asserted). Thread: any. */
void rpc_call_finish(rpc_call *call, rpc_code code, const char *message);

/* Sends @msg as the response and ends the call with OK (one message + status in one write);
 * the handler's ownership ends as with rpc_call_finish, whatever the result. Errors:
 * TKV_ECLOSED (the call was cancelled: nothing is sent), -ENOMEM (the call ends with INTERNAL
 * instead). Thread: any. */
TKV_MUST_USE int rpc_call_reply(rpc_call *call, tkv_slice msg);
/* As rpc_call_reply, with a protobuf-c message. */
TKV_MUST_USE int rpc_call_reply_msg(rpc_call *call, const ProtobufCMessage *msg);

/* Returns true once the call was cancelled (client cancel, deadline, transport loss, server
 * shutdown). Thread: any, while the handler owns the call. */
bool rpc_call_is_cancelled(const rpc_call *call);

/* Returns why a cancelled call was cancelled: RPC_DEADLINE_EXCEEDED when its deadline had
 * passed (or was less than 100 ms away: the client's clock started the deadline before the
 * call reached the server), else RPC_CANCELLED; RPC_OK when it is not cancelled. (gRPC core
 * reports only "cancelled" to servers; the deadline comparison is ours.) */
rpc_code rpc_call_cancel_code(const rpc_call *call);

/* Returns the milliseconds left before the client's deadline (<= 0 once passed), or
 * INT64_MAX when the client set none. */
int64_t rpc_call_remaining_ms(const rpc_call *call);

/* Returns the call's full method path ("/tikvpb.Tikv/RawGet"); valid while the handler owns
 * the call. */
const char *rpc_call_method(const rpc_call *call);

/* Returns the common name of the client certificate that was verified for the call, or ""
 * without mutual TLS. Valid while the handler owns the call. */
const char *rpc_call_peer_cn(const rpc_call *call);

/* Copies the call's peer address ("ipv4:127.0.0.1:5555") into @buf (truncated to @cap). */
void rpc_call_peer(const rpc_call *call, char *buf, size_t cap);

/* Copies the value of the client's request metadata @key (lower case) into @buf (truncated
 * to @cap, NUL-terminated) and returns true, or returns false when the call has none. */
bool rpc_call_metadata(const rpc_call *call, const char *key, char *buf, size_t cap);

/* Returns how many response messages are queued and not yet handed to the transport, for
 * back-pressure on streams. Thread: any. */
size_t rpc_call_pending_sends(rpc_call *call);

/* Returns @size bytes from the call's arena (gRPC's per-call memory), aligned for any type,
 * or NULL when @size is 0. Nothing is freed individually: the arena goes with the call.
 * Lifetime: until the handler finishes the call. Thread: any, while the handler owns it.
 * gRPC aborts the process when it cannot allocate. The arena only grows, so long-lived
 * streams (BatchCommands, heartbeats) should use rpc_msg_unpack / rpc_msg_free per message. */
void *rpc_call_alloc(rpc_call *call, size_t size);

/* Unpacks @bytes as @desc into *@out with every allocation in the call's arena, so the
 * message needs no rpc_msg_free. Lifetime: as rpc_call_alloc. Errors: -EINVAL,
 * TKV_ECORRUPT (the bytes do not decode as that type). */
TKV_MUST_USE int rpc_call_unpack(rpc_call *call, const ProtobufCMessageDescriptor *desc,
                                 tkv_slice bytes, ProtobufCMessage **out);

/* Attaches handler data to the call (e.g. per-stream state) and returns it. */
void rpc_call_set_data(rpc_call *call, void *data);
void *rpc_call_data(const rpc_call *call);

/* ---- client -------------------------------------------------------------------------- */

typedef struct rpc_client rpc_client;
typedef struct rpc_channel rpc_channel;
typedef struct rpc_stream rpc_stream;

typedef struct rpc_client_opts {
    /* Completion-queue threads for async callbacks and streams. */
    int cq_threads;
    /* As for the server; <= 0 means unlimited. */
    int max_recv_msg_bytes;
    int max_send_msg_bytes;
    /* Client keepalive pings (client-go uses 10 s / 3 s); <= 0 for keepalive_time_ms turns
     * them off. */
    int keepalive_time_ms;
    int keepalive_timeout_ms;
    /* How long one connection attempt (TCP, TLS and HTTP/2 handshakes) may take. */
    int connect_timeout_ms;
    /* Backoff between failed connection attempts: first delay and cap. */
    int initial_reconnect_backoff_ms;
    int max_reconnect_backoff_ms;
    /* TLS; NULL means plaintext. The files are re-read every tls_refresh_s seconds (<= 0:
     * 5) and new connections use what was read last, so a rotated client certificate is
     * picked up on reconnect. */
    const rpc_tls *tls;
    int tls_refresh_s;
} rpc_client_opts;

/* Fills @o with defaults: 2 threads, unlimited message sizes, keepalive 10 s / 3 s,
 * connect timeout 5 s, reconnect backoff 100 ms to 3 s, plaintext. */
void rpc_client_opts_init(rpc_client_opts *o);

/* Creates a client from @o (copied). Errors: -EINVAL, TKV_ECONFIG (TLS files unreadable or
 * incomplete; logged), -ENOMEM, -errno (threads). */
TKV_MUST_USE int rpc_client_new(const rpc_client_opts *o, rpc_client **out);

/* Cancels the async calls still in flight and waits for their callbacks, then frees the
 * client and its channels. Every stream must have been freed with rpc_stream_free before
 * (asserted). NULL is a no-op. Thread: not a completion-queue thread of this client. */
void rpc_client_free(rpc_client *c);

/* Returns in *@out the channel to @target ("host:port", no scheme) with connection index
 * @conn_idx: the same (target, index) always gives the same channel, created on first use;
 * different indexes to one target are separate HTTP/2 connections (like client-go's
 * grpc-connection-count). Connecting is lazy and retried with backoff.
 * Lifetime: until rpc_client_free. Thread: any. Errors: -EINVAL, -ENOMEM. */
TKV_MUST_USE int rpc_client_channel(rpc_client *c, const char *target, unsigned conn_idx,
                                    rpc_channel **out);

/* Returns the channel's target as given to rpc_client_channel. */
const char *rpc_channel_target(const rpc_channel *ch);

/* Calls unary method @method ("/pdpb.PD/GetMembers") with the request bytes @req, waiting
 * at most @timeout_ms (<= 0: no deadline). On OK the response replaces the contents of
 * @resp. *@st always receives the outcome.
 * Errors: TKV_ERPC (non-OK status: DEADLINE_EXCEEDED, UNAVAILABLE, ... in *@st), -EINVAL,
 * -ENOMEM, -EDEADLK (called on a completion-queue thread, where blocking would stall every
 * call bound to it). */
TKV_MUST_USE int rpc_unary(rpc_channel *ch, const char *method, tkv_slice req, int64_t timeout_ms,
                           tkv_buf *resp, rpc_status *st);

/* As rpc_unary with messages: packs @req, and on OK unpacks the response as @resp_desc into
 * *@resp (free with rpc_msg_free). Errors: as rpc_unary, plus TKV_ECORRUPT (the response
 * does not decode; *@st then says INTERNAL). */
TKV_MUST_USE int rpc_unary_msg(rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                               ProtobufCMessage **resp, rpc_status *st);

/* Completion of rpc_unary_async: @st is the outcome, @resp the response bytes when
 * st->code is RPC_OK (borrowed for the callback). Runs on a client completion-queue
 * thread. */
typedef void (*rpc_unary_cb)(const rpc_status *st, tkv_slice resp, void *ud);

/* Starts a unary call and returns at once; @cb runs exactly once when it ends (success,
 * error, deadline, or client shutdown). Errors (then @cb never runs): -EINVAL, -ENOMEM. */
TKV_MUST_USE int rpc_unary_async(rpc_channel *ch, const char *method, tkv_slice req,
                                 int64_t timeout_ms, rpc_unary_cb cb, void *ud);

/* Callbacks of a stream in callback mode; they run on a client completion-queue thread and
 * never overlap for one stream.
 *   on_message: each response message, in order (bytes borrowed for the callback).
 *   on_done:    once, last, with the final status (after every message was delivered).
 *   on_sent:    optional: a queued message (or the half-close) was handed to the transport,
 *               so the sending side can take more. A caller that keeps one message queued at
 *               a time and gathers what comes meanwhile into the next one batches like
 *               client-go's BatchCommands sender.
 * Any callback may call rpc_stream_free for its own stream; no callback follows then. */
typedef struct rpc_stream_cbs {
    void (*on_message)(rpc_stream *s, tkv_slice msg, void *ud);
    void (*on_done)(rpc_stream *s, const rpc_status *st, void *ud);
    void *ud;
    void (*on_sent)(rpc_stream *s, void *ud);
} rpc_stream_cbs;

/* Opens a stream to @method (any streaming type; for a server-streaming method send one
 * message and close the sending side). @timeout_ms bounds the whole stream (<= 0: none).
 * With @cbs (copied) responses arrive through callbacks; with NULL the caller reads them
 * with rpc_stream_read. Errors: -EINVAL, -ENOMEM. */
TKV_MUST_USE int rpc_stream_open(rpc_channel *ch, const char *method, int64_t timeout_ms,
                                 const rpc_stream_cbs *cbs, rpc_stream **out);

/* One request metadata entry (lower-case key, printable value). */
typedef struct rpc_md {
    const char *key;
    const char *value;
} rpc_md;

/* As rpc_stream_open, sending the @n_md entries of @md (copied) as request metadata. */
TKV_MUST_USE int rpc_stream_open_md(rpc_channel *ch, const char *method, int64_t timeout_ms,
                                    const rpc_md *md, size_t n_md, const rpc_stream_cbs *cbs,
                                    rpc_stream **out);

/* Queues a message (a copy of @msg) on the stream; messages go out in order. Thread: any.
 * Errors: TKV_ECLOSED (sending side closed, stream ended or cancelled), -ENOMEM. */
TKV_MUST_USE int rpc_stream_send(rpc_stream *s, tkv_slice msg);
/* As rpc_stream_send, with a protobuf-c message. */
TKV_MUST_USE int rpc_stream_send_msg(rpc_stream *s, const ProtobufCMessage *msg);

/* Closes the sending side (half-close) after the queued messages; responses keep coming.
 * Errors: TKV_ECLOSED (already closed or ended). Thread: any. */
TKV_MUST_USE int rpc_stream_close_send(rpc_stream *s);

/* Cancels the stream: queued messages are dropped and it ends with CANCELLED (unless it
 * already ended). Thread: any. */
void rpc_stream_cancel(rpc_stream *s);

/* Returns how many messages are queued and not yet handed to the transport. */
size_t rpc_stream_pending_sends(rpc_stream *s);

/* Reads the next response (streams opened without callbacks), waiting at most @timeout_ms
 * (< 0: as long as it takes). Returns 0 with the message in @out; TKV_ECLOSED when the
 * stream has ended (no more messages), with the final status in *@st; -ETIMEDOUT when
 * nothing arrived in time (the read stays pending: call again). Errors: -EINVAL (callback
 * mode or a concurrent reader), -ENOMEM. Thread: one reader at a time. */
TKV_MUST_USE int rpc_stream_read(rpc_stream *s, int64_t timeout_ms, tkv_buf *out, rpc_status *st);

/* Waits until the stream has ended, at most @timeout_ms (< 0: as long as it takes), and
 * puts the final status in *@st. In read mode, unread messages are discarded first.
 * Errors: -ETIMEDOUT. Thread: not one of the stream's own callbacks. */
TKV_MUST_USE int rpc_stream_wait(rpc_stream *s, int64_t timeout_ms, rpc_status *st);

/* Cancels the stream if it still runs and frees it. From outside the stream's callbacks it
 * waits until no callback of the stream runs and none will; from inside one of them it
 * returns at once and no further callback runs. NULL is a no-op. */
void rpc_stream_free(rpc_stream *s);

#endif /* TKV_RPC_H */
