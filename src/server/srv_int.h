/*
 * srv_int.h: what the gRPC service files share (not API).
 */
#ifndef TKV_SERVER_SRV_INT_H
#define TKV_SERVER_SRV_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/metrics.h"
#include "server/server.h"

/* Longest method name we serve ("KvPrepareFlashbackToVersion" is the longest in kvproto). */
#define SRV_NAME_LEN 48

/* One served method with its metric series. */
typedef struct srv_method {
    srv_service *svc;
    const stor_method *m; /* NULL for the service's own methods */
    char name[SRV_NAME_LEN];
    char label[SRV_NAME_LEN];
    tkv_series *dur;  /* tikv_grpc_msg_duration_seconds{type=label} */
    tkv_series *fail; /* tikv_grpc_msg_fail_total{type=label} */
} srv_method;

typedef struct srv_bstream srv_bstream;

/* BatchCommands oneof numbers go up to 255 (Empty). */
#define SRV_BATCH_CMDS  256
#define SRV_BATCH_EMPTY 255

struct srv_service {
    rpc_server *rs;
    stor *s;
    atomic_bool stopping;
    pthread_mutex_t mu; /* admin hooks and the stream pool */
    srv_admin_hooks admin;
    srv_method *methods; /* the storage methods, then the service's own */
    size_t n_methods;
    srv_method *batch[SRV_BATCH_CMDS]; /* batchable storage methods by oneof number */
    srv_method *m_split, *m_safe_ts, *m_batch, *m_invalid;
    tkv_metric *grpc_dur;        /* tikv_grpc_msg_duration_seconds */
    tkv_metric *grpc_fail;       /* tikv_grpc_msg_fail_total */
    tkv_series *req_batch_size;  /* tikv_server_grpc_req_batch_size */
    tkv_series *resp_batch_size; /* tikv_server_grpc_resp_batch_size */
    srv_bstream *free_streams;   /* stream states ready for reuse */
    srv_bstream *all_streams;    /* every stream state made, freed with the service */
    srv_authz *authz;            /* key-range authorization, NULL: off */
    atomic_long inflight;        /* storage requests dispatched and not answered */
    struct sec_wire *wire;       /* audit records of admin requests; NULL: none */
};

/* With authorization on, checks @req of method @sm for @call's certificate name. Returns
 * true to go on; false after answering: through @deny (batch) or by finishing @call. */
bool srv__authorized(const srv_method *sm, rpc_call *call, const ProtobufCMessage *req,
                     char *reason, size_t cap);
/* Writes an "admin" audit record for an admin request (split, delete range, destroy range)
 * of @sm by @call's peer; other methods are not recorded. */
void srv__audit_admin(const srv_method *sm, rpc_call *call);
/* Answers a unary request the policy refused: its response with the error field set, else
 * PERMISSION_DENIED. */
void srv__deny(const srv_method *sm, rpc_call *call, const char *reason);

/* Records a served request's duration (from @start_ns, tkv_clock_mono_ns). */
void srv__observe(const srv_method *sm, uint64_t start_ns);

/* Maps a method's refusal code to the gRPC status the client gets. */
rpc_code srv__code_for(int rc);

/* Finishes @call with the status for refusal @rc of method @sm, counting the failure. */
void srv__refuse(const srv_method *sm, rpc_call *call, int rc);

/* Starts serving a unary request of method @sm: returns the request decoded as @desc (free
 * it with rpc_msg_free), or NULL after finishing @call with the right status (shutting down,
 * undecodable bytes). */
ProtobufCMessage *srv__accept(const srv_method *sm, rpc_call *call, tkv_slice msg,
                              const ProtobufCMessageDescriptor *desc);

/* Sends @resp as the reply of @call and records the request's duration since @start_ns. */
void srv__reply(const srv_method *sm, rpc_call *call, const ProtobufCMessage *resp,
                uint64_t start_ns);

/* Registers /tikvpb.Tikv/BatchCommands (batch.c). Errors: as rpc_server_add_method. */
TKV_MUST_USE int srv__batch_register(srv_service *svc);

/* Frees every BatchCommands stream state (the server has stopped). */
void srv__batch_free_all(srv_service *svc);

/* Registers SplitRegion and GetStoreSafeTS (admin.c). Errors: as rpc_server_add_method. */
TKV_MUST_USE int srv__admin_register(srv_service *svc);

/* ---- BatchCommands wire format (batch_wire.c) ------------------------------------------ */

/* One decoded BatchCommandsRequest: requests[i] (its oneof number and the bytes of the inner
 * request, borrowed from the input) carries request_ids[i]. */
typedef struct srv_batch_req {
    size_t n;
    int *cmds;        /* oneof number, 0 when the Request sets none */
    tkv_slice *inner; /* the inner request message */
    uint64_t *ids;
    size_t n_ids; /* may differ from n in a malformed message */
    size_t cap, cap_ids;
} srv_batch_req;

void srv__batch_req_init(srv_batch_req *r);
void srv__batch_req_deinit(srv_batch_req *r);

/* Decodes a BatchCommandsRequest from @msg into @r (emptied first). Accepts packed and
 * unpacked request_ids and skips unknown fields; the last oneof field of a Request wins, as in
 * protobuf. Errors: TKV_ECORRUPT (malformed wire data), -ENOMEM. */
TKV_MUST_USE int srv__batch_decode(tkv_slice msg, srv_batch_req *r);

/* Appends one BatchCommandsResponse.responses entry (field 1) whose Response carries oneof
 * @cmd with the packed inner response @inner; @cmd 0 appends an empty Response.
 * Errors: -ENOMEM (@out unchanged). */
TKV_MUST_USE int srv__batch_encode_resp(tkv_buf *out, int cmd, tkv_slice inner);

/* Like srv__batch_encode_resp, packing the message @inner straight into @out. */
TKV_MUST_USE int srv__batch_encode_resp_msg(tkv_buf *out, int cmd, const ProtobufCMessage *inner);

/* Appends the request_ids field (2, packed) for @ids[0..n). Errors: -ENOMEM. */
TKV_MUST_USE int srv__batch_encode_ids(tkv_buf *out, const uint64_t *ids, size_t n);

/* Appends an inner response that carries only region_error{message = @msg} (every response
 * type of the oneof has region_error as field 1). Errors: -ENOMEM. */
TKV_MUST_USE int srv__batch_encode_region_error(tkv_buf *out, const char *msg);
/* Appends an inner response whose region_error is ServerIsBusy{reason} (with @reason as the
 * message too). Errors: -ENOMEM. */
TKV_MUST_USE int srv__batch_encode_busy(tkv_buf *out, const char *reason);

/* Commands and unary requests in flight at most, over all connections: past it BatchCommands
 * answers ServerIsBusy and unary calls RESOURCE_EXHAUSTED (memory stays bounded whatever
 * clients send; client-go backs off and retries). */
#define SRV_MAX_INFLIGHT 16384

/* Decodes BatchCommandsEmptyRequest's test_id (field 1). Errors: TKV_ECORRUPT. */
TKV_MUST_USE int srv__batch_decode_empty(tkv_slice inner, uint64_t *test_id);

#endif /* TKV_SERVER_SRV_INT_H */
