/*
 * rpc_int.h: internals shared by the rpc module's files (not API).
 *
 * Completion-queue events carry an rpc__tag: a function pointer embedded in the object that
 * started the batch; the completion-queue thread calls it with the batch's success flag.
 * rpc__cq_pool runs one thread per completion queue. rpc__sendq serializes the sending side
 * of a call (gRPC core allows one SEND_MESSAGE in flight per call). Credentials are built
 * from PEM files here for both sides.
 */
#ifndef TKV_RPC_INT_H
#define TKV_RPC_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "rpc/rpc.h"
#include "security/tls.h"

/* ---- completion-queue events --------------------------------------------------------- */

typedef struct rpc__tag rpc__tag;
struct rpc__tag {
    void (*fn)(rpc__tag *tag, bool ok);
};

#define RPC__CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* One thread per completion queue, each looping on grpc_completion_queue_next. */
typedef struct rpc__cq_pool {
    int n;
    int started; /* threads running */
    grpc_completion_queue **cqs;
    pthread_t *threads;
    atomic_uint next;
} rpc__cq_pool;

/* Creates @n completion queues (not yet polled). Errors: -ENOMEM (nothing left allocated). */
int rpc__cq_pool_init(rpc__cq_pool *p, int n);
/* Starts one polling thread per queue, named "<prefix><i>". Errors: -errno (threads already
 * started keep running; rpc__cq_pool_deinit stops them). */
int rpc__cq_pool_start(rpc__cq_pool *p, const char *prefix);
/* Returns the next queue, round-robin. */
grpc_completion_queue *rpc__cq_pool_pick(rpc__cq_pool *p);
/* Shuts every queue down, lets its thread drain the remaining events, joins the threads and
 * destroys the queues. */
void rpc__cq_pool_deinit(rpc__cq_pool *p);

/* True on a thread of any rpc completion-queue pool (blocking calls refuse to run there). */
bool rpc__on_cq_thread(void);

/* ---- byte buffers -------------------------------------------------------------------- */

/* Returns a byte buffer holding a copy of @msg. */
grpc_byte_buffer *rpc__bb_from_slice(tkv_slice msg);
/* Returns a byte buffer holding the packed @msg. */
grpc_byte_buffer *rpc__bb_from_msg(const ProtobufCMessage *msg);
/* Reads @bb into one contiguous slice (*@out; grpc_slice_unref it). Errors: TKV_ECORRUPT
 * (decompression failed). */
int rpc__bb_read(grpc_byte_buffer *bb, grpc_slice *out);
/* Returns a tkv_slice over a grpc_slice. */
static inline tkv_slice rpc__slice(grpc_slice s)
{
    return tkv_slice_of(GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
}

/* ---- send queue ---------------------------------------------------------------------- */

typedef struct rpc__sq_item {
    struct rpc__sq_item *next;
    grpc_byte_buffer *bb;
} rpc__sq_item;

/* The sending side of one call. Every function runs under the owner's mutex. Server calls
 * end with a status (send_status_from_server), client streams with a half-close. */
typedef struct rpc__sendq {
    bool server;
    bool md_sent;     /* server: initial metadata went out */
    bool in_flight;   /* a send batch is running */
    bool end_queued;  /* a status / half-close was queued */
    bool end_started; /* ... and its batch started */
    bool broken;      /* a send failed: the call is dead, everything queued was dropped */
    rpc__sq_item *head, *tail;
    size_t len;
    size_t bytes; /* message bytes queued (not counting the one in flight) */
    grpc_byte_buffer *flight_bb;
    grpc_status_code end_code;
    grpc_slice end_details;
} rpc__sendq;

void rpc__sendq_init(rpc__sendq *q, bool server);
/* Drops everything still queued (the call is gone). */
void rpc__sendq_deinit(rpc__sendq *q);
/* Queues @bb (ownership passes to the queue). Errors: -ENOMEM (@bb destroyed). */
int rpc__sendq_push(rpc__sendq *q, grpc_byte_buffer *bb);
/* Queues the end of the sending side (status for servers). */
void rpc__sendq_end(rpc__sendq *q, grpc_status_code code, const char *details);
/* Starts the next batch on @call when none is running and there is work; returns true when
 * a batch started (the caller then holds one more pending-op reference). */
bool rpc__sendq_kick(rpc__sendq *q, grpc_call *call, rpc__tag *tag);
/* Records the completion of the running batch; a failed batch breaks the queue. */
void rpc__sendq_done(rpc__sendq *q, bool ok);
/* Drops queued messages and marks the queue broken (cancellation). */
void rpc__sendq_break(rpc__sendq *q);

/* ---- credentials and channel args ---------------------------------------------------- */

/* Returns true when @tls asks for TLS (non-NULL with any path set). */
bool rpc__tls_enabled(const rpc_tls *tls);

/* A server's TLS: its credentials and, with TLS, the reloadable identity that the
 * credentials' fetcher and the per-call check read. */
typedef struct rpc__server_tls {
    grpc_server_credentials *creds;
    sec_tls *id; /* NULL for plaintext */
    bool mtls;   /* a CA is configured: every call needs a verified client certificate */
    atomic_bool fetched;
} rpc__server_tls;

/* Builds @st from @tls (plaintext when disabled) and the allow-lists (copied).
 * Errors: TKV_ECONFIG with the reason in @err, -ENOMEM. */
int rpc__server_tls_init(rpc__server_tls *st, const rpc_tls *tls, const char *const *allowed_cn,
                         const char *const *allowed_san, char *err, size_t errlen);
/* Releases @st (after the gRPC server is destroyed). */
void rpc__server_tls_deinit(rpc__server_tls *st);
/* Checks the client certificate of @call (mutual TLS only; RPC_OK otherwise): OK, or
 * UNAUTHENTICATED (none, or not signed by the CA), or PERMISSION_DENIED (name not allowed),
 * with @peer describing the certificate. */
rpc_code rpc__server_tls_check(rpc__server_tls *st, grpc_call *call, sec_tls_peer *peer);

/* Builds channel credentials from @tls (plaintext when disabled) into *@out; the files are
 * re-read every @refresh_s seconds for new connections. Errors: TKV_ECONFIG with the reason
 * in @err. */
int rpc__channel_creds(const rpc_tls *tls, int refresh_s, grpc_channel_credentials **out, char *err,
                       size_t errlen);

/* A small builder for integer channel arguments (keys are static strings). */
typedef struct rpc__args {
    grpc_arg arg[24];
    grpc_channel_args args;
} rpc__args;

void rpc__args_init(rpc__args *a);
void rpc__args_int(rpc__args *a, const char *key, int value);
/* Adds a pointer argument with its vtable (gRPC copies it through the vtable). */
void rpc__args_ptr(rpc__args *a, const char *key, void *p, const grpc_arg_pointer_vtable *vt);
/* Adds what servers and clients share: message size limits (<= 0: unlimited) and keepalive
 * pings (time <= 0: off). */
void rpc__args_common(rpc__args *a, int max_recv, int max_send, int keepalive_time_ms,
                      int keepalive_timeout_ms);

/* ---- connection gate (rpc_gate.c) ---------------------------------------------------- */

typedef struct rpc__gate rpc__gate;

typedef struct rpc__gate_opts {
    int max_connections;          /* 0: unlimited */
    int max_connections_per_addr; /* 0: unlimited */
    int handshake_timeout_ms;     /* <= 0: gRPC's 120 s */
    bool count_failures;          /* TLS: unserved short-lived connections are failures */
    bool use_channelz;            /* connections gRPC's channelz lists count as served */
    bool (*peer_gate)(const char *peer, void *ud);
    void (*on_peer_rejected)(const rpc_peer_rejection *r, void *ud);
    void *hook_ud;
    uint64_t (*now_ms)(void *ud); /* monotonic clock for tests; NULL: tkv_clock_mono_ms */
    void *clock_ud;
} rpc__gate_opts;

/* rpc__gate_admit's verdicts. */
enum { RPC__ADMIT_OK = 0, RPC__ADMIT_BANNED = 1, RPC__ADMIT_LIMIT = 2, RPC__ADMIT_ADDR_LIMIT = 3 };

void rpc__gate_opts_init(rpc__gate_opts *o);
/* Creates a gate (not yet attached to a port). Errors: -EINVAL, -ENOMEM. */
int rpc__gate_new(const rpc__gate_opts *o, rpc__gate **out);
/* Detaches and frees @g; NULL is a no-op. */
void rpc__gate_free(rpc__gate *g);
/* Gates connections accepted on @port from now on and starts the sweeper thread.
 * Errors: -EINVAL, TKV_EEXIST (port gated already), -ENOSPC (too many gated ports), -errno. */
int rpc__gate_listen(rpc__gate *g, int port);
/* Stops gating the port and joins the sweeper thread (idempotent). */
void rpc__gate_unlisten(rpc__gate *g);
/* Decides on the accepted socket @fd from @peer: RPC__ADMIT_OK (now tracked) or the reason
 * to refuse it (the caller closes it). Thread-safe. */
int rpc__gate_admit(rpc__gate *g, int fd, const struct sockaddr *peer);
/* True while some tracked connection has not carried a call yet (only then does
 * rpc__gate_served need the call's peer). */
bool rpc__gate_wants_peer(const rpc__gate *g);
/* Marks the connection of a call from @peer ("ipv4:1.2.3.4:5") as served. */
void rpc__gate_served(rpc__gate *g, const char *peer);
/* Finds the connections that went away and hands pending reports to on_peer_rejected on
 * the calling thread (the sweeper does this every second). */
void rpc__gate_sweep(rpc__gate *g);
/* Fills @out (zeros for NULL). */
void rpc__gate_stats(rpc__gate *g, rpc_gate_stats *out);

/* ---- waiting ------------------------------------------------------------------------- */

/* Waits once on @cv (holding @mu) until woken or @deadline_ms (monotonic; UINT64_MAX: no
 * deadline). Returns false when the deadline had already passed (no wait happened). */
bool rpc__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ms);
/* Returns the monotonic deadline @timeout_ms from now; UINT64_MAX when @timeout_ms < 0. */
uint64_t rpc__deadline_after(int64_t timeout_ms);

/* ---- status -------------------------------------------------------------------------- */

/* Fills @st from a finished client call's status code, details and debug string. */
void rpc__status_from_call(rpc_status *st, grpc_status_code code, grpc_slice details,
                           const char *error_string);

/* Returns a monotonic deadline @timeout_ms from now, or infinity when <= 0. */
gpr_timespec rpc__deadline(int64_t timeout_ms);

#endif /* TKV_RPC_INT_H */
