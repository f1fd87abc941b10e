/*
 * status.c: tikv-server's status HTTP server (TiKV's status_server): /metrics, /status and
 * /config (see server.h).
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "base/cfg.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "http/http.h"
#include "security/wire.h"
#include "server/server.h"

#ifndef TKV_SERVER_VERSION
#define TKV_SERVER_VERSION "0.0.0"
#endif
#ifndef TKV_SERVER_GIT_HASH
#define TKV_SERVER_GIT_HASH ""
#endif

struct srv_status {
    http_server *http;
    pthread_mutex_t mu; /* config_json */
    char *config_json;
    char version[64];
    char git_hash[64];
    uint64_t start_real_ms;
    uint64_t start_mono_ms;
};

const char *srv_version(void)
{
    return TKV_SERVER_VERSION;
}

const char *srv_git_hash(void)
{
    return TKV_SERVER_GIT_HASH;
}

static void on_metrics(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    (void)ud;
    rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (tkv_metrics_render(&rs->body) != 0)
        http_error(rs, 500, "out of memory rendering metrics");
}

/* Appends the UTC time @ms (Unix milliseconds) in RFC 3339 to the JSON object @o as @key. */
static void set_time(json_t *o, const char *key, uint64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(o, key, json_string(buf));
}

static void reply_json(http_response *rs, json_t *o)
{
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (text == NULL) {
        http_error(rs, 500, "out of memory");
        return;
    }
    if (tkv_buf_append(&rs->body, text, strlen(text)) != 0)
        http_error(rs, 500, "out of memory");
    free(text);
}

static void on_status(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    srv_status *st = ud;
    uint64_t up_ms = tkv_clock_mono_ms() - st->start_mono_ms;
    char uptime[TKV_CFG_FMT_LEN];
    tkv_cfg_format_duration(up_ms, uptime, sizeof(uptime));
    json_t *o = json_object();
    if (o != NULL) {
        json_object_set_new(o, "version", json_string(st->version));
        json_object_set_new(o, "git_hash", json_string(st->git_hash));
        set_time(o, "start_time", st->start_real_ms);
        json_object_set_new(o, "start_timestamp",
                            json_integer((json_int_t)(st->start_real_ms / 1000)));
        json_object_set_new(o, "uptime", json_string(uptime));
        json_object_set_new(o, "uptime_seconds", json_integer((json_int_t)(up_ms / 1000)));
    }
    reply_json(rs, o);
}

static void on_config(const http_request *rq, http_response *rs, void *ud)
{
    (void)rq;
    srv_status *st = ud;
    pthread_mutex_lock(&st->mu);
    const char *json = st->config_json != NULL ? st->config_json : "{}";
    if (tkv_buf_append(&rs->body, json, strlen(json)) != 0)
        http_error(rs, 500, "out of memory");
    pthread_mutex_unlock(&st->mu);
}

int srv_status_start(const srv_status_opts *o, srv_status **out, char *errmsg)
{
    if (o == NULL || o->addr == NULL || out == NULL) {
        if (errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "status server: no address");
        return -EINVAL;
    }
    srv_status *st = tkv_calloc(1, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        tkv_free(st);
        return -ENOMEM;
    }
    snprintf(st->version, sizeof(st->version), "%s", o->version ? o->version : srv_version());
    snprintf(st->git_hash, sizeof(st->git_hash), "%s", o->git_hash ? o->git_hash : srv_git_hash());
    st->start_real_ms = tkv_clock_real_ms();
    st->start_mono_ms = tkv_clock_mono_ms();
    int rc = srv_status_set_config(st, o->config_json != NULL ? o->config_json : "{}");
    if (rc == 0) {
        static const http_route routes[] = {
            {"GET", "/metrics", false, on_metrics},
            {"GET", "/status", false, on_status},
            {"GET", "/config", false, on_config},
        };
        http_server_opts ho = {.addr = o->addr,
                               .routes = routes,
                               .nroutes = TKV_ARRAY_LEN(routes),
                               .ud = st,
                               .allowed_cn = o->allowed_cn,
                               .allowed_san = o->allowed_san};
        if (o->tls != NULL) {
            ho.ca_path = o->tls->ca_path;
            ho.cert_path = o->tls->cert_path;
            ho.key_path = o->tls->key_path;
        }
        if (o->wire != NULL)
            sec_wire_http(o->wire, &ho);
        rc = http_server_start(&ho, &st->http, errmsg);
    }
    if (rc != 0) {
        srv_status_stop(st);
        return rc;
    }
    *out = st;
    return 0;
}

uint16_t srv_status_port(const srv_status *st)
{
    return http_server_port(st->http);
}

int srv_status_set_config(srv_status *st, const char *json)
{
    char *copy = tkv_strdup(json);
    if (copy == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&st->mu);
    char *old = st->config_json;
    st->config_json = copy;
    pthread_mutex_unlock(&st->mu);
    tkv_free(old);
    return 0;
}

void srv_status_stop(srv_status *st)
{
    if (st == NULL)
        return;
    http_server_stop(st->http);
    tkv_free(st->config_json);
    pthread_mutex_destroy(&st->mu);
    tkv_free(st);
}
