/*
 * pdc_int.h: internals shared by the PD client's files (not API).
 *
 * Locking: c->mu guards the member state (endpoints, leader, generation) and the background
 * thread's wake-up flags; c->tso.mu guards the timestamp queues and the Tso stream pointer;
 * c->hb.mu guards the heartbeat stream. Lock order: never hold two of them, except
 * tso.mu -> mu and hb.mu -> mu for the wake-up flags (pdc__wake).
 */
#ifndef TKV_PDC_INT_H
#define TKV_PDC_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "pdc/pdc.h"

/* One queued or in-flight timestamp request. */
typedef struct pdc__tso_req {
    struct pdc__tso_req *next;
    uint64_t deadline_ms; /* monotonic */
    pdc_tso_cb cb;
    void *ud;
} pdc__tso_req;

typedef struct pdc__tso {
    pthread_mutex_t mu;
    rpc_stream *stream;    /* NULL while down */
    bool broken;           /* the stream ended: the background thread replaces it */
    uint64_t stream_gen;   /* member generation the stream was opened for */
    pdc__tso_req *pending; /* FIFO, not yet sent */
    pdc__tso_req **pending_tail;
    size_t n_pending;
    pdc__tso_req *inflight; /* the batch on the wire, in request order */
    size_t n_inflight;
    uint64_t inflight_since_ms;
    uint64_t last_ts;     /* largest timestamp handed out */
    uint64_t retry_at_ms; /* do not reopen before this (backoff after failures) */
    int64_t backoff_ms;
} pdc__tso;

typedef struct pdc__hb {
    pthread_mutex_t mu;
    pdc_heartbeat_cb cb;
    void *ud;
    bool started;
    rpc_stream *stream;
    bool broken;
    uint64_t stream_gen;
    uint64_t retry_at_ms;
    int64_t backoff_ms;
} pdc__hb;

struct pdc_client {
    pdc_opts opts;              /* endpoints/tls pointers not kept: see urls */
    _Atomic uint64_t sender_id; /* header.sender_id (pdc_set_sender_id) */
    rpc_client *rpc;
    bool own_rpc;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* background thread wake-ups and refresh completion */
    char **urls;       /* "host:port", the endpoints to ask for members */
    size_t n_urls;
    uint64_t cluster_id;
    char *leader;           /* "host:port" of the leader */
    rpc_channel *leader_ch; /* channel to it (owned by the rpc client) */
    uint64_t gen;           /* bumped when the leader changes */
    uint64_t refresh_done;  /* completed refreshes */
    bool refresh_wanted;
    bool refreshing;
    bool kicked; /* pdc__wake ran: the background thread looks at the streams again */
    bool stop;
    uint64_t next_refresh_ms;
    pthread_t bg;
    bool bg_started;

    pdc__tso tso;
    pdc__hb hb;
};

/* Records an error for the calling thread and returns @rc. */
int pdc__fail(int rc, const char *fmt, ...) TKV_PRINTF(2, 3);

/* Returns the current leader channel and generation under c->mu. */
rpc_channel *pdc__leader(pdc_client *c, uint64_t *gen);

/* Asks the background thread to refresh members (and reconnect streams). */
void pdc__wake(pdc_client *c, bool refresh);

/* Refreshes the members from the known endpoints (blocking, caller's thread).
 * Errors: as pdc_open. */
int pdc__update_members(pdc_client *c, int64_t timeout_ms);

/* Calls a pdpb unary method on the leader with retries until @timeout_ms: fills the
 * request's header, checks the response's header.error. @pd_header false skips both (etcd).
 * On success *@out holds the response. */
int pdc__call(pdc_client *c, const char *method, ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, bool pd_header,
              ProtobufCMessage **out);

/* Timestamp and heartbeat stream maintenance, run by the background thread. */
void pdc__tso_init(pdc_client *c);
void pdc__tso_deinit(pdc_client *c);
void pdc__tso_tick(pdc_client *c, uint64_t now_ms, uint64_t *next_wake_ms);
void pdc__tso_stop(pdc_client *c);
void pdc__hb_init(pdc_client *c);
void pdc__hb_deinit(pdc_client *c);
void pdc__hb_tick(pdc_client *c, uint64_t now_ms, uint64_t *next_wake_ms);
void pdc__hb_stop(pdc_client *c);

#endif /* TKV_PDC_INT_H */
