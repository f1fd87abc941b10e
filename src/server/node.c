/*
 * node.c: tikv-server's front end in one object: storage, gRPC server with the tikv service,
 * and status server, built from the configuration (see server.h).
 */
#include <stdio.h>

#include "server/server.h"

struct srv_node {
    stor *storage;
    rpc_server *rs;
    srv_service *svc;
    srv_status *status;
    rpc_tls tls;
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
        step = "gRPC server";
        rpc_server_opts ro;
        srv_config_rpc_opts(cfg, &ro, &n->tls);
        rc = rpc_server_new(&ro, &n->rs);
    }
    if (rc == 0) {
        step = "tikv service";
        rc = srv_service_new(n->rs, n->storage, admin, &n->svc);
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
    srv_status_opts so = {.addr = n->status_addr, .config_json = (const char *)n->config_json.data};
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
    tkv_free(n->status_addr);
    tkv_buf_deinit(&n->config_json);
    tkv_free(n);
}
