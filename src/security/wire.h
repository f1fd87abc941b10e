/*
 * wire.h: the security controls of one server process switched on together: the audit log
 * ([security] audit-log), the brute-force guard, and the hooks that connect them to the gRPC
 * server (rpc.h) and the HTTP/HTTPS server (http.h).
 *
 *   - Every peer the gRPC or HTTP server refuses (no client certificate, one from another CA,
 *     a name outside cert-allowed-cn / cert-allowed-san, a banned address) becomes an audit
 *     record {"event":"peer_rejected","peer":...,"method":...,"reason":...,"details":"cn=..."}
 *     and one failure for the guard; an address that fails too often is refused for a while
 *     (record "peer_banned"). A failed TLS handshake seen by the gRPC connection gate is the
 *     same record with method "(handshake)" and reason "tls handshake failed or aborted", and
 *     one failure too; a connection the gate closed at accept (banned address, connection
 *     limit) is a record with method "(connection)", at most once a minute per address, and
 *     no failure.
 *   - Every change through the HTTP API (a method other than GET that succeeded: config,
 *     operators, store states, roles) becomes an "admin" record with the caller's address
 *     and certificate name.
 *   - With replication_cn, the replication methods (raft messages and snapshots) are refused
 *     to any other certificate name, even one cert-allowed-cn admits (clients).
 *   - sec_wire_new writes a "start" record, sec_wire_free a "stop" record and seals the log.
 *   - sec_wire_event lets the server add its own records (admin actions, refused requests).
 *
 * Owns: the audit log and the guard. Threads: the hooks and sec_wire_event are thread-safe;
 * new and free run once, before the servers start and after they stopped.
 * Errors: sec_wire_new returns the audit log's errors (TKV_ECORRUPT: an existing log fails
 * verification; -errno) or -ENOMEM, with @err. A record that cannot be written is logged as
 * an error; the request is still refused.
 * Dependencies: security (audit, guard), rpc, http. Library: tkv_security_wire.
 *
 * Usage:
 *     sec_wire_opts wo = {.component = "tikv-server", .audit_path = cfg.audit_log};
 *     sec_wire *w;
 *     if (sec_wire_new(&wo, &w, err) != 0) die(err);
 *     sec_wire_rpc(w, &rpc_opts);     // peer_gate, on_peer_rejected
 *     sec_wire_http(w, &http_opts);   // peer_gate, on_rejected
 *     ...
 *     sec_wire_free(w);               // after the servers stopped
 */
#ifndef TKV_SEC_WIRE_H
#define TKV_SEC_WIRE_H

#include "http/http.h"
#include "rpc/rpc.h"
#include "security/audit.h"
#include "security/guard.h"

typedef struct sec_wire_opts {
    const char *component;       /* "tikv-server", "pd-server": named in start/stop records */
    const char *audit_path;      /* the audit log; NULL or "" keeps audit records off */
    const sec_guard_opts *guard; /* NULL: the guard's defaults (on_ban is set here) */
    /* Certificate names allowed to call the replication methods (/tikvpb.Tikv/Raft,
     * BatchRaft, Snapshot); NULL-terminated, copied; NULL or empty: any allowed name. Needs
     * mutual TLS (rpc method_gate). */
    const char *const *replication_cn;
} sec_wire_opts;

typedef struct sec_wire sec_wire;

/* Opens the audit log (when configured), creates the guard, writes the "start" record.
 * Errors: TKV_ECORRUPT, -errno, -ENOMEM, -EINVAL, with @err. */
TKV_MUST_USE int sec_wire_new(const sec_wire_opts *o, sec_wire **out, char err[TKV_ERRMSG_LEN]);

/* Writes the "stop" record and closes (seals) the audit log; frees @w. NULL is a no-op. Call
 * it after every server using the hooks stopped. */
void sec_wire_free(sec_wire *w);

/* Sets @o's peer_gate, on_peer_rejected, method_gate and hook_ud to this wire. */
void sec_wire_rpc(sec_wire *w, rpc_server_opts *o);

/* Sets @o's peer_gate, on_rejected, on_served and hook_ud to this wire. */
void sec_wire_http(sec_wire *w, http_server_opts *o);

/* Records a peer refused outside the gRPC server's own checks (e.g. a replication stream
 * whose sender identity failed): a "peer_rejected" audit record with @cn in its details, one
 * failure for the brute-force guard and a warning. Strings may be NULL. Thread: any. */
void sec_wire_peer_rejected(sec_wire *w, const char *peer, const char *cn, const char *method,
                            const char *reason);

/* Appends @ev to the audit log (no-op without one). Thread: any. */
void sec_wire_event(sec_wire *w, const sec_audit_event *ev);

/* Returns true when an audit log is open. */
bool sec_wire_auditing(const sec_wire *w);

#endif /* TKV_SEC_WIRE_H */
