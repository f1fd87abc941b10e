/*
 * pdc.c: the PD client's core: endpoints, members and the leader, the retrying unary call,
 * per-thread errors, and the background thread.
 *
 * Member discovery follows PD's Go client: ask every known endpoint for GetMembers until one
 * answers with the cluster id and a leader; the endpoint list becomes the union of the
 * members' client URLs, and calls go to the leader's first client URL. A gRPC failure on a
 * call triggers a refresh (one refresh at a time; callers that failed on the same leader
 * wait for it) and the call is retried until its deadline.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "pdc/pdc_int.h"

/* ---- per-thread errors ------------------------------------------------------------------ */

static __thread char tls_errmsg[TKV_ERRMSG_LEN];
static __thread int tls_pd_type;

int pdc__fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_errmsg, sizeof(tls_errmsg), fmt, ap);
    va_end(ap);
    tls_pd_type = 0;
    return rc;
}

const char *pdc_errmsg(const pdc_client *c)
{
    (void)c;
    return tls_errmsg;
}

int pdc_err_pd_type(void)
{
    return tls_pd_type;
}

void pdc_msg_free(void *msg)
{
    rpc_msg_free((ProtobufCMessage *)msg);
}

/* ---- options and endpoints -------------------------------------------------------------- */

void pdc_opts_init(pdc_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->timeout_ms = 3000;
    o->member_refresh_ms = 60000;
    o->tso_max_batch = 10000;
}

/* Returns a heap copy of @url without its scheme and path ("http://h:p/x" -> "h:p"), or NULL
 * when it is not of the form [scheme://]host:port. */
static char *normalize_url(const char *url)
{
    const char *p = strstr(url, "://");
    p = p != NULL ? p + 3 : url;
    size_t n = strcspn(p, "/");
    if (n == 0 || n >= 256)
        return NULL;
    char *out = tkv_malloc(n + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, p, n);
    out[n] = '\0';
    /* A port is required: "host:port" or "[v6]:port". */
    const char *colon = strrchr(out, ':');
    const char *bracket = strrchr(out, ']');
    if (colon == NULL || colon[1] == '\0' || (bracket != NULL && bracket > colon) ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        tkv_free(out);
        return NULL;
    }
    return out;
}

static void free_urls(char **urls, size_t n)
{
    if (urls == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        tkv_free(urls[i]);
    tkv_free(urls);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Copies the endpoint list under c->mu. */
static int copy_urls(pdc_client *c, char ***out, size_t *n_out)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n_urls;
    char **v = tkv_calloc(n ? n : 1, sizeof(*v));
    int rc = v == NULL ? -ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        v[i] = tkv_strdup(c->urls[i]);
        if (v[i] == NULL)
            rc = -ENOMEM;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc != 0) {
        free_urls(v, n);
        return pdc__fail(rc, "out of memory copying PD endpoints");
    }
    *out = v;
    *n_out = n;
    return 0;
}

/* ---- members ---------------------------------------------------------------------------- */

/* Builds the sorted, de-duplicated union of the members' client URLs. */
static int member_urls(const Pdpb__GetMembersResponse *r, char ***out, size_t *n_out)
{
    size_t cap = 0;
    for (size_t i = 0; i < r->n_members; i++)
        cap += r->members[i]->n_client_urls;
    char **v = tkv_calloc(cap ? cap : 1, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < r->n_members; i++) {
        for (size_t j = 0; j < r->members[i]->n_client_urls; j++) {
            char *u = normalize_url(r->members[i]->client_urls[j]);
            if (u != NULL)
                v[n++] = u;
        }
    }
    qsort(v, n, sizeof(*v), cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w > 0 && strcmp(v[w - 1], v[i]) == 0)
            tkv_free(v[i]);
        else
            v[w++] = v[i];
    }
    *out = v;
    *n_out = w;
    return 0;
}

/* Applies a good GetMembers answer. */
static int apply_members(pdc_client *c, const Pdpb__GetMembersResponse *r, const char *from)
{
    char *leader = normalize_url(r->leader->client_urls[0]);
    if (leader == NULL)
        return pdc__fail(TKV_ERPC, "PD %s: leader client URL '%s' is not host:port", from,
                         r->leader->client_urls[0]);
    char **urls;
    size_t n_urls;
    int rc = member_urls(r, &urls, &n_urls);
    if (rc != 0) {
        tkv_free(leader);
        return pdc__fail(rc, "out of memory applying PD members");
    }
    rpc_channel *ch;
    rc = rpc_client_channel(c->rpc, leader, 0, &ch);
    if (rc != 0) {
        tkv_free(leader);
        free_urls(urls, n_urls);
        return pdc__fail(rc, "cannot create a channel to PD leader %s", leader);
    }
    pthread_mutex_lock(&c->mu);
    if (c->cluster_id == 0)
        c->cluster_id = r->header->cluster_id;
    if (n_urls > 0) {
        free_urls(c->urls, c->n_urls);
        c->urls = urls;
        c->n_urls = n_urls;
        urls = NULL;
    }
    bool changed = c->leader == NULL || strcmp(c->leader, leader) != 0;
    if (changed) {
        tkv_free(c->leader);
        c->leader = leader;
        c->leader_ch = ch;
        c->gen++;
        leader = NULL;
    }
    c->refresh_done++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (changed)
        TKV_LOG_INFO("PD leader found", TKV_LF_STR("leader", c->leader),
                     TKV_LF_U64("cluster_id", c->cluster_id));
    free_urls(urls, n_urls);
    tkv_free(leader);
    return 0;
}

/* Asks one endpoint for members; returns 0 when the answer was usable and applied. */
static int ask_members(pdc_client *c, const char *url, int64_t timeout_ms)
{
    rpc_channel *ch;
    int rc = rpc_client_channel(c->rpc, url, 0, &ch);
    if (rc != 0)
        return pdc__fail(rc, "cannot create a channel to PD %s", url);
    Pdpb__GetMembersRequest req = PDPB__GET_MEMBERS_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    rpc_status st;
    rc = rpc_unary_msg(ch, "/pdpb.PD/GetMembers", &req.base,
                       &pdpb__get_members_response__descriptor, timeout_ms, &m, &st);
    if (rc != 0) {
        if (rc == TKV_ERPC && st.code == RPC_DEADLINE_EXCEEDED)
            return pdc__fail(-ETIMEDOUT, "PD %s: GetMembers timed out", url);
        return pdc__fail(rc == TKV_ERPC ? TKV_ERPC : rc, "PD %s: GetMembers: %s: %s", url,
                         rpc_code_name(st.code), st.message);
    }
    Pdpb__GetMembersResponse *r = (Pdpb__GetMembersResponse *)m;
    uint64_t known;
    pthread_mutex_lock(&c->mu);
    known = c->cluster_id;
    pthread_mutex_unlock(&c->mu);
    if (r->header == NULL || r->header->cluster_id == 0) {
        rc = pdc__fail(TKV_ERPC, "PD %s: GetMembers answered without a cluster id", url);
    } else if (r->header->error != NULL && r->header->error->type != PDPB__ERROR_TYPE__OK) {
        rc = pdc__fail(TKV_ERPC, "PD %s: GetMembers: %s", url,
                       r->header->error->message ? r->header->error->message : "error");
    } else if (known != 0 && r->header->cluster_id != known) {
        rc = pdc__fail(TKV_ECONFIG, "PD %s belongs to cluster %" PRIu64 ", not %" PRIu64, url,
                       r->header->cluster_id, known);
    } else if (r->leader == NULL || r->leader->n_client_urls == 0) {
        rc = pdc__fail(TKV_ERPC, "PD %s: GetMembers answered without a leader", url);
    } else {
        rc = apply_members(c, r, url);
    }
    rpc_msg_free(m);
    return rc;
}

int pdc__update_members(pdc_client *c, int64_t timeout_ms)
{
    char **urls = NULL;
    size_t n = 0;
    int rc = copy_urls(c, &urls, &n);
    if (rc != 0)
        return rc;
    uint64_t deadline = tkv_clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
    rc = pdc__fail(TKV_ERPC, "no PD endpoint");
    int last = rc;
    char last_msg[TKV_ERRMSG_LEN];
    last_msg[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        uint64_t now = tkv_clock_mono_ms();
        if (now >= deadline && i > 0)
            break;
        /* Each endpoint gets a fair share of what is left, at least 200 ms. */
        int64_t left = (int64_t)(deadline > now ? deadline - now : 1);
        int64_t slice = left / (int64_t)(n - i);
        if (slice < 200)
            slice = TKV_MIN(left, 200);
        rc = ask_members(c, urls[i], slice);
        if (rc == 0)
            break;
        /* Keep the most telling failure: another cluster beats a timeout. */
        if (last != TKV_ECONFIG) {
            last = rc;
            snprintf(last_msg, sizeof(last_msg), "%s", tls_errmsg);
        }
    }
    free_urls(urls, n);
    if (rc != 0 && last_msg[0] != '\0')
        rc = pdc__fail(last, "%s", last_msg);
    return rc;
}

rpc_channel *pdc__leader(pdc_client *c, uint64_t *gen)
{
    pthread_mutex_lock(&c->mu);
    rpc_channel *ch = c->leader_ch;
    if (gen != NULL)
        *gen = c->gen;
    pthread_mutex_unlock(&c->mu);
    return ch;
}

/* Waits on c->cv until the monotonic time @deadline_ms; returns false once it passed. */
static bool cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ms)
{
    uint64_t now = tkv_clock_mono_ms();
    if (now >= deadline_ms)
        return false;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t wait = deadline_ms - now;
    ts.tv_sec += (time_t)(wait / 1000);
    ts.tv_nsec += (long)(wait % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
    return true;
}

/* Refreshes members; the caller set c->refreshing, which this clears. */
static int refresh_owned(pdc_client *c, int64_t timeout_ms)
{
    int rc = pdc__update_members(c, timeout_ms);
    pthread_mutex_lock(&c->mu);
    c->refreshing = false;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    /* The streams follow the leader: let the background thread look. */
    pdc__wake(c, false);
    return rc;
}

/* Refreshes members after a failure seen on leader generation @gen: when another thread
 * already moved to a new leader or is refreshing, waits for that instead. */
static int refresh_after_failure(pdc_client *c, uint64_t gen, uint64_t deadline_ms)
{
    pthread_mutex_lock(&c->mu);
    if (c->gen != gen) {
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    if (c->refreshing) {
        uint64_t done = c->refresh_done;
        while (c->refreshing && c->refresh_done == done && !c->stop &&
               cond_wait_until(&c->cv, &c->mu, deadline_ms)) {
        }
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    c->refreshing = true;
    pthread_mutex_unlock(&c->mu);
    uint64_t now = tkv_clock_mono_ms();
    return refresh_owned(c, deadline_ms > now ? (int64_t)(deadline_ms - now) : 1);
}

/* Returns the ProtobufCMessage* field @name of @m by descriptor, or NULL. */
static ProtobufCMessage **msg_field(ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return (ProtobufCMessage **)((char *)m + f->offset);
}

/* Maps a PD header error to our code and records it. */
static int pd_header_error(const Pdpb__Error *e, const char *method)
{
    int rc;
    switch (e->type) {
    case PDPB__ERROR_TYPE__ALREADY_BOOTSTRAPPED:
        rc = TKV_EEXIST;
        break;
    case PDPB__ERROR_TYPE__REGION_NOT_FOUND:
    case PDPB__ERROR_TYPE__ENTRY_NOT_FOUND:
        rc = TKV_ENOTFOUND;
        break;
    case PDPB__ERROR_TYPE__STORE_TOMBSTONE:
        rc = TKV_ESTALE;
        break;
    default:
        rc = TKV_ERPC;
        break;
    }
    const char *msg = e->message != NULL && e->message[0] != '\0' ? e->message : "error";
    /* PD says "invalid store ID %d, not found" for stores it does not know. */
    if (rc == TKV_ERPC && strstr(msg, "not found") != NULL)
        rc = TKV_ENOTFOUND;
    pdc__fail(rc, "PD %s: %s", method, msg);
    tls_pd_type = (int)e->type;
    return rc;
}

static bool retryable(rpc_code code)
{
    switch (code) {
    case RPC_UNAVAILABLE:
    case RPC_UNKNOWN:
    case RPC_CANCELLED:
    case RPC_INTERNAL:
    case RPC_ABORTED:
    case RPC_RESOURCE_EXHAUSTED:
        return true;
    default:
        return false;
    }
}

int pdc__call(pdc_client *c, const char *method, ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, bool pd_header,
              ProtobufCMessage **out)
{
    if (timeout_ms <= 0)
        timeout_ms = c->opts.timeout_ms;
    uint64_t deadline = tkv_clock_mono_ms() + (uint64_t)timeout_ms;
    Pdpb__RequestHeader hdr = PDPB__REQUEST_HEADER__INIT;
    if (pd_header) {
        ProtobufCMessage **slot = msg_field(req, "header");
        TKV_ASSERT(slot != NULL);
        pthread_mutex_lock(&c->mu);
        hdr.cluster_id = c->cluster_id;
        pthread_mutex_unlock(&c->mu);
        hdr.sender_id = atomic_load(&c->sender_id);
        *slot = &hdr.base;
    }
    const char *name = strrchr(method, '/') + 1;
    uint64_t backoff = 20;
    for (;;) {
        uint64_t gen;
        rpc_channel *ch = pdc__leader(c, &gen);
        uint64_t now = tkv_clock_mono_ms();
        if (now >= deadline)
            return pdc__fail(-ETIMEDOUT, "PD %s: timed out after %" PRId64 " ms", name, timeout_ms);
        ProtobufCMessage *m = NULL;
        rpc_status st;
        int rc = rpc_unary_msg(ch, method, req, resp_desc, (int64_t)(deadline - now), &m, &st);
        if (rc == 0) {
            if (pd_header) {
                ProtobufCMessage **h = msg_field(m, "header");
                Pdpb__ResponseHeader *rh = h != NULL ? (Pdpb__ResponseHeader *)*h : NULL;
                if (rh != NULL && rh->error != NULL && rh->error->type != PDPB__ERROR_TYPE__OK) {
                    rc = pd_header_error(rh->error, name);
                    rpc_msg_free(m);
                    return rc;
                }
            }
            *out = m;
            return 0;
        }
        if (rc != TKV_ERPC)
            return pdc__fail(rc, "PD %s: %s (%s)", name, tkv_strerror(rc), st.message);
        if (st.code == RPC_DEADLINE_EXCEEDED)
            return pdc__fail(-ETIMEDOUT, "PD %s: timed out after %" PRId64 " ms", name, timeout_ms);
        if (!retryable(st.code))
            return pdc__fail(TKV_ERPC, "PD %s: %s: %s", name, rpc_code_name(st.code), st.message);
        TKV_LOG_DEBUG("PD call failed, refreshing members", TKV_LF_STR("method", name),
                      TKV_LF_STR("code", rpc_code_name(st.code)));
        char why[RPC_STATUS_MSG_LEN + 64];
        snprintf(why, sizeof(why), "%s: %s", rpc_code_name(st.code), st.message);
        TKV_IGNORE(refresh_after_failure(c, gen, deadline));
        now = tkv_clock_mono_ms();
        if (now + backoff >= deadline)
            return pdc__fail(-ETIMEDOUT, "PD %s: no answer within %" PRId64 " ms (last: %s)", name,
                             timeout_ms, why);
        tkv_sleep_ms(backoff);
        backoff = TKV_MIN(backoff * 2, 500);
    }
}

/* ---- background thread ------------------------------------------------------------------ */

void pdc__wake(pdc_client *c, bool refresh)
{
    pthread_mutex_lock(&c->mu);
    if (refresh)
        c->refresh_wanted = true;
    c->kicked = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void *bg_main(void *arg)
{
    pdc_client *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        c->kicked = false;
        uint64_t now = tkv_clock_mono_ms();
        if (c->refresh_wanted || now >= c->next_refresh_ms) {
            c->refresh_wanted = false;
            bool busy = c->refreshing;
            c->refreshing = true;
            pthread_mutex_unlock(&c->mu);
            int rc = busy ? 0 : pdc__update_members(c, c->opts.timeout_ms);
            if (rc != 0)
                TKV_LOG_WARN("PD members refresh failed", TKV_LF_STR("cause", tls_errmsg));
            pthread_mutex_lock(&c->mu);
            if (!busy)
                c->refreshing = false;
            pthread_cond_broadcast(&c->cv);
            now = tkv_clock_mono_ms();
            c->next_refresh_ms = now + (uint64_t)(rc == 0 ? c->opts.member_refresh_ms : 1000);
        }
        pthread_mutex_unlock(&c->mu);
        uint64_t wake = TKV_MIN(c->next_refresh_ms, now + 1000);
        pdc__tso_tick(c, now, &wake);
        pdc__hb_tick(c, now, &wake);
        pthread_mutex_lock(&c->mu);
        if (!c->stop && !c->refresh_wanted && !c->kicked)
            cond_wait_until(&c->cv, &c->mu, wake);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- open and close --------------------------------------------------------------------- */

static void client_free(pdc_client *c)
{
    pdc__tso_deinit(c);
    pdc__hb_deinit(c);
    if (c->own_rpc)
        rpc_client_free(c->rpc);
    free_urls(c->urls, c->n_urls);
    tkv_free(c->leader);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    tkv_free(c);
}

int pdc_open(const pdc_opts *o, pdc_client **out)
{
    if (o == NULL || out == NULL)
        return pdc__fail(-EINVAL, "pdc_open: NULL argument");
    if (o->n_endpoints == 0 || o->endpoints == NULL)
        return pdc__fail(TKV_ECONFIG, "no PD endpoint given");
    pdc_client *c = tkv_calloc(1, sizeof(*c));
    if (c == NULL)
        return pdc__fail(-ENOMEM, "out of memory");
    c->opts = *o;
    atomic_init(&c->sender_id, o->sender_id);
    c->opts.endpoints = NULL;
    c->opts.tls = NULL;
    if (c->opts.timeout_ms <= 0)
        c->opts.timeout_ms = 3000;
    if (c->opts.member_refresh_ms <= 0)
        c->opts.member_refresh_ms = 60000;
    if (c->opts.tso_max_batch == 0)
        c->opts.tso_max_batch = 10000;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    TKV_ASSERT(pthread_mutex_init(&c->mu, NULL) == 0);
    TKV_ASSERT(pthread_cond_init(&c->cv, &ca) == 0);
    pthread_condattr_destroy(&ca);
    pdc__tso_init(c);
    pdc__hb_init(c);

    int rc = 0;
    c->urls = tkv_calloc(o->n_endpoints, sizeof(char *));
    if (c->urls == NULL)
        rc = pdc__fail(-ENOMEM, "out of memory");
    for (size_t i = 0; c->urls != NULL && rc == 0 && i < o->n_endpoints; i++) {
        const char *e = o->endpoints[i];
        c->urls[i] = e != NULL ? normalize_url(e) : NULL;
        if (c->urls[i] == NULL)
            rc = pdc__fail(TKV_ECONFIG, "bad PD endpoint '%s' (want host:port or http://host:port)",
                           e != NULL ? e : "(null)");
        else
            c->n_urls = i + 1;
    }
    if (rc == 0) {
        if (o->rpc != NULL) {
            c->rpc = o->rpc;
        } else {
            rpc_client_opts ro;
            rpc_client_opts_init(&ro);
            ro.tls = o->tls;
            ro.cq_threads = 1;
            rc = rpc_client_new(&ro, &c->rpc);
            if (rc != 0)
                rc = pdc__fail(rc, "PD client: cannot create the gRPC client (%s)",
                               tkv_strerror(rc));
            c->own_rpc = rc == 0;
        }
    }
    if (rc == 0)
        rc = pdc__update_members(c, c->opts.timeout_ms);
    if (rc == 0) {
        c->next_refresh_ms = tkv_clock_mono_ms() + (uint64_t)c->opts.member_refresh_ms;
        rc = -pthread_create(&c->bg, NULL, bg_main, c);
        if (rc != 0)
            rc = pdc__fail(rc, "PD client: cannot start its thread");
        c->bg_started = rc == 0;
    }
    if (rc != 0) {
        char keep[TKV_ERRMSG_LEN];
        snprintf(keep, sizeof(keep), "%s", tls_errmsg);
        client_free(c);
        return pdc__fail(rc, "%s", keep);
    }
    *out = c;
    return 0;
}

void pdc_close(pdc_client *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->bg_started)
        pthread_join(c->bg, NULL);
    pdc__tso_stop(c);
    pdc__hb_stop(c);
    client_free(c);
}

void pdc_set_sender_id(pdc_client *c, uint64_t sender_id)
{
    atomic_store(&c->sender_id, sender_id);
}

uint64_t pdc_cluster_id(const pdc_client *c)
{
    return c->cluster_id;
}

void pdc_leader_addr(pdc_client *c, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    pthread_mutex_lock(&c->mu);
    snprintf(buf, cap, "%s", c->leader != NULL ? c->leader : "");
    pthread_mutex_unlock(&c->mu);
}

int pdc_refresh_members(pdc_client *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->refreshing)
        pthread_cond_wait(&c->cv, &c->mu);
    c->refreshing = true;
    pthread_mutex_unlock(&c->mu);
    return refresh_owned(c, c->opts.timeout_ms);
}

int pdc_get_members(pdc_client *c, Pdpb__GetMembersResponse **out)
{
    if (c == NULL || out == NULL)
        return pdc__fail(-EINVAL, "pdc_get_members: NULL argument");
    Pdpb__GetMembersRequest req = PDPB__GET_MEMBERS_REQUEST__INIT;
    return pdc__call(c, "/pdpb.PD/GetMembers", &req.base, &pdpb__get_members_response__descriptor,
                     0, true, (ProtobufCMessage **)out);
}
