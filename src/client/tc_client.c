/*
 * tc_client.c: the client handle: options, connect and close, per-thread errors, the
 * periodic timeout sweep, and the output helpers of the public API.
 *
 * Closing: the send lock makes "closing" and "a send in progress" exclusive, so once the
 * flag is up no stream opens again; queued jobs then run at once and fail their tasks, the
 * stores' streams are freed (failing their calls), the gRPC client cancels unary calls, and
 * close waits for every counted asynchronous operation to end before the threads stop.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "client/tc_int.h"

#define SWEEP_MS 100

/* ---- errors ----------------------------------------------------------------------------- */

static __thread char tls_errmsg[TKV_ERRMSG_LEN];

void tikvc__set_errmsg(const char *fmt, ...)
{
    char tmp[TKV_ERRMSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    memcpy(tls_errmsg, tmp, sizeof(tmp));
}

char *tikvc__errbuf(void)
{
    return tls_errmsg;
}

const char *tikvc_errmsg(void)
{
    return tls_errmsg;
}

int tikvc__code(int rc)
{
    switch (rc) {
    case 0:
        return TIKVC_OK;
    case -ENOMEM:
        return TIKVC_ENOMEM;
    case -EINVAL:
        return TIKVC_EINVAL;
    case -ETIMEDOUT:
        return TIKVC_ETIMEDOUT;
    case TKV_ECLOSED:
        return TIKVC_ECLOSED;
    case TKV_ECORRUPT:
        return TIKVC_ECORRUPT;
    case TKV_ECONFIG:
        return TIKVC_ECONFIG;
    case TKV_ENOTFOUND:
        return TIKVC_EREGION;
    case TKV_ETOOLARGE:
        return TIKVC_ETOOLARGE;
    case TKV_EBUSY:
        return TIKVC_EBUSY;
    default:
        return TIKVC_EUNAVAILABLE;
    }
}

const char *tikvc_strerror(int code)
{
    switch (code) {
    case TIKVC_OK:
        return "TIKVC_OK";
    case TIKVC_EINVAL:
        return "TIKVC_EINVAL";
    case TIKVC_ENOMEM:
        return "TIKVC_ENOMEM";
    case TIKVC_ETIMEDOUT:
        return "TIKVC_ETIMEDOUT";
    case TIKVC_EUNAVAILABLE:
        return "TIKVC_EUNAVAILABLE";
    case TIKVC_EREGION:
        return "TIKVC_EREGION";
    case TIKVC_EBUSY:
        return "TIKVC_EBUSY";
    case TIKVC_ESERVER:
        return "TIKVC_ESERVER";
    case TIKVC_ECONFLICT:
        return "TIKVC_ECONFLICT";
    case TIKVC_ELOCKED:
        return "TIKVC_ELOCKED";
    case TIKVC_EABORTED:
        return "TIKVC_EABORTED";
    case TIKVC_EUNDETERMINED:
        return "TIKVC_EUNDETERMINED";
    case TIKVC_ECLOSED:
        return "TIKVC_ECLOSED";
    case TIKVC_ECORRUPT:
        return "TIKVC_ECORRUPT";
    case TIKVC_ECONFIG:
        return "TIKVC_ECONFIG";
    case TIKVC_ETOOLARGE:
        return "TIKVC_ETOOLARGE";
    default:
        return "TIKVC_UNKNOWN";
    }
}

/* ---- outputs ---------------------------------------------------------------------------- */

void tikvc_buf_free(tikvc_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

void tikvc_kvs_free(tikvc_kvs *kvs)
{
    if (kvs == NULL)
        return;
    for (size_t i = 0; i < kvs->len; i++) {
        free(kvs->items[i].key.data);
        free(kvs->items[i].value.data);
    }
    free(kvs->items);
    kvs->items = NULL;
    kvs->len = 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

int tikvc__grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    /* tkv_realloc is realloc with the fault hook: arrays handed to callers stay free()able. */
    void *p = tkv_realloc(*v, n * elem);
    if (p == NULL)
        return TIKVC_ENOMEM;
    *v = p;
    *cap = n;
    return 0;
}

uint64_t tikvc__rand(tikvc_client *c, uint64_t n)
{
    if (n == 0)
        return 0;
    pthread_mutex_lock(&c->rng_mu);
    uint64_t v = tkv_rng_below(&c->rng, n);
    pthread_mutex_unlock(&c->rng_mu);
    return v;
}

void tikvc__op_count(tikvc_client *c, tc_op *op)
{
    op->counted = true;
    atomic_fetch_add(&c->n_ops, 1);
}

void tikvc__op_done_count(tikvc_client *c)
{
    pthread_mutex_lock(&c->ops_mu);
    if (atomic_fetch_sub(&c->n_ops, 1) == 1)
        pthread_cond_broadcast(&c->ops_cv);
    pthread_mutex_unlock(&c->ops_mu);
}

static void sweep_run(tc_job *j)
{
    tikvc_client *c = (tikvc_client *)((char *)j - offsetof(tikvc_client, sweep));
    tikvc__conn_sweep(c);
    if (!atomic_load(&c->closing))
        tikvc__exec_post(&c->exec, &c->sweep, SWEEP_MS);
}

/* ---- open and close --------------------------------------------------------------------- */

void tikvc_opts_init(tikvc_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->rpc_timeout_ms = 20000;
    o->pd_timeout_ms = 3000;
    o->max_backoff_ms = 20000;
    o->busy_backoff_base_ms = 2000;
    o->busy_backoff_cap_ms = 10000;
    o->batch_commands = 1;
    o->conns_per_store = 2;
    o->grpc_threads = 2;
    o->txn_lock_ttl_ms = 3000;
    o->scan_batch = 10240;
    o->txn_one_pc = 1;
    o->log_level = TKV_LOG_WARN;
}

/* Splits the comma-separated endpoint list into @eps (pointers into @buf). */
static size_t split_endpoints(char *buf, const char **eps, size_t cap)
{
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok != NULL && n < cap;
         tok = strtok_r(NULL, ", ", &save))
        eps[n++] = tok;
    return n;
}

static void client_free(tikvc_client *c)
{
    for (size_t i = 0; i < c->n_stores; i++)
        tikvc__store_free(c, c->stores[i]);
    tkv_free(c->stores);
    tikvc__cache_deinit(&c->raw_cache);
    tikvc__cache_deinit(&c->txn_cache);
    pdc_close(c->pd);
    pthread_rwlock_destroy(&c->send_lk);
    pthread_mutex_destroy(&c->stores_mu);
    pthread_mutex_destroy(&c->rng_mu);
    pthread_cond_destroy(&c->ops_cv);
    pthread_mutex_destroy(&c->ops_mu);
    tkv_free(c);
}

int tikvc_open(const tikvc_opts *o, tikvc_client **out)
{
    if (o == NULL || out == NULL)
        return tikvc__fail(TIKVC_EINVAL, "tikvc_open: NULL argument");
    if (o->pd_endpoints == NULL || o->pd_endpoints[0] == '\0')
        return tikvc__fail(TIKVC_ECONFIG, "no PD endpoints given");
    tikvc_opts d;
    tikvc_opts_init(&d);
    tikvc_client *c = tkv_calloc(1, sizeof(*c));
    char *eps_buf = tkv_strdup(o->pd_endpoints);
    if (c == NULL || eps_buf == NULL) {
        tkv_free(c);
        tkv_free(eps_buf);
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    }
    c->opts = *o;
#define DEFAULT_IF_ZERO(f)                                                                         \
    if (c->opts.f <= 0)                                                                            \
    c->opts.f = d.f
    DEFAULT_IF_ZERO(rpc_timeout_ms);
    DEFAULT_IF_ZERO(pd_timeout_ms);
    DEFAULT_IF_ZERO(max_backoff_ms);
    DEFAULT_IF_ZERO(busy_backoff_base_ms);
    DEFAULT_IF_ZERO(busy_backoff_cap_ms);
    DEFAULT_IF_ZERO(conns_per_store);
    DEFAULT_IF_ZERO(grpc_threads);
    DEFAULT_IF_ZERO(txn_lock_ttl_ms);
    DEFAULT_IF_ZERO(scan_batch);
#undef DEFAULT_IF_ZERO
    if (c->opts.busy_backoff_cap_ms < c->opts.busy_backoff_base_ms)
        c->opts.busy_backoff_cap_ms = c->opts.busy_backoff_base_ms;
    if (o->log_level >= TKV_LOG_TRACE && o->log_level <= TKV_LOG_OFF)
        tkv_log_set_level((tkv_log_level)o->log_level);
    c->opts.pd_endpoints = NULL;
    c->opts.ca_path = c->opts.cert_path = c->opts.key_path = NULL;
    TKV_ASSERT(pthread_rwlock_init(&c->send_lk, NULL) == 0);
    TKV_ASSERT(pthread_mutex_init(&c->stores_mu, NULL) == 0);
    TKV_ASSERT(pthread_mutex_init(&c->rng_mu, NULL) == 0);
    TKV_ASSERT(pthread_mutex_init(&c->ops_mu, NULL) == 0);
    TKV_ASSERT(pthread_cond_init(&c->ops_cv, NULL) == 0);
    tikvc__cache_init(&c->raw_cache, false);
    tikvc__cache_init(&c->txn_cache, true);
    tkv_rng_seed(&c->rng, tkv_clock_mono_ns() ^ (uint64_t)(uintptr_t)c);

    rpc_tls tls = {o->ca_path, o->cert_path, o->key_path};
    bool use_tls = o->ca_path != NULL || o->cert_path != NULL || o->key_path != NULL;
    const char *eps[16];
    size_t n_eps = split_endpoints(eps_buf, eps, TKV_ARRAY_LEN(eps));
    int rc = 0;
    if (n_eps == 0)
        rc = tikvc__fail(TIKVC_ECONFIG, "no PD endpoints given");
    if (rc == 0) {
        pdc_opts po;
        pdc_opts_init(&po);
        po.endpoints = eps;
        po.n_endpoints = n_eps;
        po.tls = use_tls ? &tls : NULL;
        po.timeout_ms = c->opts.pd_timeout_ms;
        int prc = pdc_open(&po, &c->pd);
        if (prc != 0)
            rc = tikvc__fail(tikvc__code(prc), "connect to PD: %s", pdc_errmsg(NULL));
    }
    tkv_free(eps_buf);
    if (rc == 0) {
        rpc_client_opts ro;
        rpc_client_opts_init(&ro);
        ro.cq_threads = c->opts.grpc_threads;
        ro.tls = use_tls ? &tls : NULL;
        int rrc = rpc_client_new(&ro, &c->rpc);
        if (rrc != 0)
            rc = tikvc__fail(tikvc__code(rrc), "cannot create the gRPC client (TLS files?)");
    }
    if (rc == 0) {
        int erc = tikvc__exec_start(&c->exec, 2);
        if (erc != 0) {
            rc = tikvc__fail(tikvc__code(erc), "cannot start the worker threads");
        } else {
            c->sweep.fn = sweep_run;
            tikvc__exec_post(&c->exec, &c->sweep, SWEEP_MS);
        }
    }
    if (rc != 0) {
        char keep[TKV_ERRMSG_LEN];
        snprintf(keep, sizeof(keep), "%s", tls_errmsg);
        if (c->exec.heap != NULL) {
            atomic_store(&c->closing, true);
            tikvc__exec_stop(&c->exec);
        }
        rpc_client_free(c->rpc);
        client_free(c);
        return tikvc__fail(rc, "%s", keep);
    }
    *out = c;
    return 0;
}

int tikvc_connect(const char *pd_endpoints, tikvc_client **out)
{
    tikvc_opts o;
    tikvc_opts_init(&o);
    o.pd_endpoints = pd_endpoints;
    return tikvc_open(&o, out);
}

void tikvc_close(tikvc_client *c)
{
    if (c == NULL)
        return;
    pthread_rwlock_wrlock(&c->send_lk);
    atomic_store(&c->closing, true);
    pthread_rwlock_unlock(&c->send_lk);
    tikvc__exec_drain(&c->exec);
    pthread_mutex_lock(&c->stores_mu);
    size_t n = c->n_stores;
    pthread_mutex_unlock(&c->stores_mu);
    for (size_t i = 0; i < n; i++)
        tikvc__store_shutdown(c, c->stores[i]);
    /* Cancels unary calls in flight and waits for their callbacks. */
    rpc_client_free(c->rpc);
    c->rpc = NULL;
    pthread_mutex_lock(&c->ops_mu);
    while (atomic_load(&c->n_ops) > 0)
        pthread_cond_wait(&c->ops_cv, &c->ops_mu);
    pthread_mutex_unlock(&c->ops_mu);
    /* Jobs still queued (the sweep) run at once and end. */
    tikvc__exec_stop(&c->exec);
    client_free(c);
}
