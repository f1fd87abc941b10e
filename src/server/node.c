/*
 * node.c: tikv-server's front end in one object: storage, gRPC server with the tikv service,
 * and status server, built from the configuration (see server.h).
 */
#include <stdio.h>

#include "base/log.h"
#include "security/wire.h"
#include "server/server.h"

struct srv_node {
    stor *storage;
    rpc_server *rs;
    srv_service *svc;
    srv_status *status;
    sec_wire *wire;
    rpc_tls tls;
    const char *const *allowed_cn, *const *allowed_san; /* the status server's, as gRPC's */
    char *status_addr;
    tkv_buf config_json;
    bool started, stopped;
};

int srv_node_new(const srv_config *cfg, stor_kv *kv, const srv_admin_hooks *admin, srv_node **out,
                 char *errmsg)
{
    if (cfg == NULL || kv == NULL || out == NULL)
        return -EINVAL;
    srv_node *n = tkv_calloc(1, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    tkv_buf_init(&n->config_json);
    const char *step = "configuration";
    int rc = srv_config_to_json(cfg, &n->config_json);
    n->status_addr = rc == 0 ? tkv_strdup(cfg->server.status_addr) : NULL;
    if (rc == 0 && n->status_addr == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        step = "storage";
        stor_opts so;
        srv_config_stor_opts(cfg, &so);
        rc = stor_new(kv, &so, &n->storage);
    }
    if (rc == 0) {
        step = "audit log";
        sec_guard_opts go;
        sec_config_guard_opts(&cfg->sec, &go);
        sec_wire_opts wo = {.component = "tikv-server",
                            .audit_path = cfg->sec.audit_log,
                            .guard = &go,
                            .replication_cn = cfg->security.cert_allowed_peer_cn_nt};
        char werr[TKV_ERRMSG_LEN];
        rc = sec_wire_new(&wo, &n->wire, werr);
        if (rc != 0 && errmsg != NULL) {
            snprintf(errmsg, TKV_ERRMSG_LEN, "open audit log: %.200s", werr);
            srv_node_free(n);
            return rc;
        }
    }
    if (rc == 0) {
        step = "gRPC server";
        rpc_server_opts ro;
        srv_config_rpc_opts(cfg, &ro, &n->tls);
        sec_wire_rpc(n->wire, &ro);
        n->allowed_cn = ro.cert_allowed_cn;
        n->allowed_san = ro.cert_allowed_san;
        rc = rpc_server_new(&ro, &n->rs);
    }
    if (rc == 0) {
        step = "tikv service";
        rc = srv_service_new(n->rs, n->storage, admin, &n->svc);
        if (rc == 0)
            srv_service_set_wire(n->svc, n->wire);
    }
    if (rc != 0) {
        if (errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "create %s: %s", step, tkv_strerror(rc));
        srv_node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

rpc_server *srv_node_rpc(srv_node *n)
{
    return n->rs;
}

sec_wire *srv_node_wire(srv_node *n)
{
    return n->wire;
}

stor *srv_node_storage(srv_node *n)
{
    return n->storage;
}

srv_service *srv_node_service(srv_node *n)
{
    return n->svc;
}

int srv_node_start(srv_node *n, char *errmsg)
{
    if (n->started)
        return -EINVAL;
    n->started = true;
    int rc = rpc_server_start(n->rs);
    if (rc != 0) {
        if (errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "start gRPC server: %s", rpc_server_errmsg(n->rs));
        return rc;
    }
    srv_status_opts so = {.addr = n->status_addr,
                          .config_json = (const char *)n->config_json.data,
                          .tls = n->tls.cert_path != NULL ? &n->tls : NULL,
                          .allowed_cn = n->allowed_cn,
                          .allowed_san = n->allowed_san,
                          .wire = n->wire};
    return srv_status_start(&so, &n->status, errmsg);
}

int srv_node_port(const srv_node *n)
{
    return n->started ? rpc_server_port(n->rs) : 0;
}

uint16_t srv_node_status_port(const srv_node *n)
{
    return n->status != NULL ? srv_status_port(n->status) : 0;
}

void srv_node_stop(srv_node *n, int64_t grace_ms)
{
    if (n->stopped)
        return;
    n->stopped = true;
    if (n->svc != NULL)
        srv_service_shutdown(n->svc);
    if (n->rs != NULL)
        rpc_server_shutdown(n->rs, grace_ms);
    srv_status_stop(n->status);
    n->status = NULL;
}

void srv_node_free(srv_node *n)
{
    if (n == NULL)
        return;
    srv_node_stop(n, 0);
    srv_service_free(n->svc);
    rpc_server_free(n->rs);
    stor_free(n->storage);
    sec_wire_free(n->wire);
    tkv_free(n->status_addr);
    tkv_buf_deinit(&n->config_json);
    tkv_free(n);
}
