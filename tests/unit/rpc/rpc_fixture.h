/*
 * rpc_fixture.h: a test server with a set of methods that the rpc tests drive, and the small
 * synchronization helpers they share (no sleeps: every wait is on a condition with a
 * timeout that only bounds a failure).
 *
 * Methods served (all under "/tikvpb.Tikv/RawGet" or the test service "test.Svc"):
 *   /tikvpb.Tikv/RawGet    unary: RawGetRequest -> RawGetResponse{value = "v:" + key}
 *   /test.Svc/Echo         unary: answers the request bytes
 *   /test.Svc/Hold         unary: parks the call until the test releases it or it is
 *                          cancelled (on_cancel records the cancel code and finishes it)
 *   /test.Svc/HoldStream   bidi: like Hold, for client-side cancellation of streams
 *   /test.Svc/Worker       unary: a worker thread answers, not the completion-queue thread
 *   /test.Svc/Bidi         bidi: echoes each message; checks 8-byte sequence numbers
 *   /test.Svc/Sum          client-streaming: sums 8-byte numbers, answers the total
 *   /test.Svc/Count        server-streaming: request n (8 bytes), answers n numbered messages
 *   /test.Svc/Whoami       client-streaming: answers "<client certificate CN>|<value of the
 *                          x-tkv-test request metadata, or (none)>" at half-close
 */
#ifndef TKV_TEST_RPC_FIXTURE_H
#define TKV_TEST_RPC_FIXTURE_H

#include <pthread.h>

#include "base/base.h"
#include "rpc/rpc.h"
#include "testutil/test_pki.h"

#define FIX_MAX_HELD   64
#define FIX_TIMEOUT_MS 10000

typedef struct fixture {
    rpc_server *srv;
    int port;
    char addr[64];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Hold / HoldStream */
    rpc_call *held[FIX_MAX_HELD];
    int n_held;      /* parked, not yet released or cancelled */
    int n_arrived;   /* ever parked */
    int n_cancelled; /* on_cancel calls */
    rpc_code last_cancel_code;
    /* Bidi */
    uint64_t bidi_next;
    int bidi_out_of_order;
    int bidi_half_closed;
    /* Worker */
    rpc_call *work[FIX_MAX_HELD];
    int n_work;
    bool worker_stop;
    pthread_t worker;
    pthread_t cq_thread_seen; /* the thread that ran the Worker handler's callback */
    int worker_replies;
} fixture;

/* Server settings a test may change; zero values keep the defaults. */
typedef struct fix_cfg {
    const rpc_tls *tls;             /* NULL: plaintext */
    int max_recv;                   /* <= 0: unlimited */
    const char *const *allowed_cn;  /* NULL: any client */
    const char *const *allowed_san; /* NULL: none by SAN */
    /* rpc_server_opts hooks (NULL: none); ud is hook_ud. */
    bool (*peer_gate)(const char *peer, void *ud);
    void (*on_peer_rejected)(const rpc_peer_rejection *r, void *ud);
    void *hook_ud;
    int min_recv_ping_interval_ms; /* 0: rpc_server_opts_init's default */
    int max_concurrent_streams;    /* 0: unlimited */
    int max_connections;           /* connection gate; 0: unlimited */
    int max_connections_per_addr;  /* 0: unlimited */
} fix_cfg;

/* Starts a fixture server on 127.0.0.1:0 with @cfg (NULL: defaults). Fails the test on
 * error. */
void fix_start(fixture *f, const fix_cfg *cfg);
/* Shuts the server down with @grace_ms and frees everything. */
void fix_stop(fixture *f, int64_t grace_ms);

/* Calls RawGet("k") over @ch and returns the status code (fails the test on any other
 * error). */
rpc_code fix_raw_get(rpc_channel *ch);
/* Calls RawGet once through a new client, hence a new connection, to @f with @tls (NULL:
 * plaintext) and returns the status code. */
rpc_code fix_call_once(const fixture *f, const rpc_tls *tls);
/* Removes the temporary directory @dir and everything in it. */
void fix_rmdir(const char *dir);

/* Waits until *@counter >= @want under f->mu; returns false after FIX_TIMEOUT_MS. */
bool fix_wait_count(fixture *f, const int *counter, int want);
/* Answers every parked Hold call with OK ("released") and returns how many. */
int fix_release_held(fixture *f);

/* Encodes / decodes the 8-byte big-endian numbers the test methods use. */
void fix_put_u64(uint8_t out[8], uint64_t v);
uint64_t fix_get_u64(const uint8_t in[8]);

/* Returns a monotonic deadline FIX_TIMEOUT_MS from now for pthread_cond_timedwait. */
struct timespec fix_abs_deadline(int64_t ms);

#endif /* TKV_TEST_RPC_FIXTURE_H */
