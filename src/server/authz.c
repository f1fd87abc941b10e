/*
 * authz.c: tikv-server's check of every storage request against the key-range authorization
 * policy (security/authz.h) kept in PD: a thread refreshes the policy; each request's method
 * names the permission it needs and its keys and ranges are read from the decoded protobuf
 * message (see server.h, srv_authz).
 */
#include "security/authz.h"

#include <pthread.h>
#include <stdio.h>

#include "base/clock.h"
#include "base/log.h"
#include "security/wire.h"
#include "server/srv_int.h"

struct srv_authz {
    srv_authz_fetch_fn fetch;
    void *fetch_ud;
    uint64_t refresh_ms;
    sec_wire *wire;
    pthread_rwlock_t lock; /* policy */
    sec_authz *policy;     /* NULL until the first fetch: everything is refused */
    tkv_buf doc;           /* the document policy was parsed from */
    pthread_mutex_t mu;    /* stop, cv */
    pthread_cond_t cv;
    bool stop;
    pthread_t thread;
    bool started;
};

/* ---- policy refresh ---------------------------------------------------------------------- */

int srv_authz_refresh(srv_authz *a)
{
    tkv_buf doc;
    tkv_buf_init(&doc);
    bool found = false;
    int rc = a->fetch(a->fetch_ud, &doc, &found);
    if (rc != 0) {
        tkv_buf_deinit(&doc);
        return rc;
    }
    pthread_rwlock_rdlock(&a->lock);
    bool same = a->policy != NULL && doc.len == a->doc.len &&
                (doc.len == 0 || memcmp(doc.data, a->doc.data, doc.len) == 0);
    pthread_rwlock_unlock(&a->lock);
    if (same) {
        tkv_buf_deinit(&doc);
        return 0;
    }
    char err[TKV_ERRMSG_LEN];
    sec_authz *p = NULL;
    rc = sec_authz_parse((const char *)doc.data, doc.len, &p, err);
    if (rc != 0) {
        /* PD validates what it stores; keep the last good policy. */
        TKV_LOG_ERROR("authorization policy from PD does not parse, keeping the previous one",
                      TKV_LF_STR("cause", err));
        tkv_buf_deinit(&doc);
        return rc;
    }
    pthread_rwlock_wrlock(&a->lock);
    sec_authz *old = a->policy;
    tkv_buf old_doc = a->doc;
    a->policy = p;
    a->doc = doc;
    pthread_rwlock_unlock(&a->lock);
    sec_authz_free(old);
    tkv_buf_deinit(&old_doc);
    TKV_LOG_INFO("authorization policy loaded", TKV_LF_U64("bytes", doc.len));
    return 0;
}

static void *refresher(void *arg)
{
    srv_authz *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        pthread_mutex_unlock(&a->mu);
        int rc = srv_authz_refresh(a);
        if (rc != 0)
            TKV_LOG_WARN("authorization policy refresh failed", TKV_LF_ERR("err", rc));
        pthread_mutex_lock(&a->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (a->refresh_ms % 1000) * 1000000u;
        ts.tv_sec += (time_t)(a->refresh_ms / 1000 + ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        if (!a->stop)
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int srv_authz_new(srv_authz_fetch_fn fetch, void *ud, uint64_t refresh_ms, sec_wire *wire,
                  srv_authz **out)
{
    if (fetch == NULL || out == NULL || refresh_ms == 0)
        return -EINVAL;
    srv_authz *a = tkv_calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->fetch = fetch;
    a->fetch_ud = ud;
    a->refresh_ms = refresh_ms;
    a->wire = wire;
    tkv_buf_init(&a->doc);
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    int rc = pthread_create(&a->thread, NULL, refresher, a);
    if (rc != 0) {
        srv_authz_free(a);
        return -rc;
    }
    a->started = true;
    *out = a;
    return 0;
}

void srv_authz_free(srv_authz *a)
{
    if (a == NULL)
        return;
    if (a->started) {
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    sec_authz_free(a->policy);
    tkv_buf_deinit(&a->doc);
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    tkv_free(a);
}

/* ---- what a request needs ---------------------------------------------------------------- */

static bool in_list(const char *name, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(name, *list) == 0)
            return true;
    return false;
}

static sec_perm srv_authz_perm(const char *method)
{
    static const char *const reads[] = {"RawGet",
                                        "RawBatchGet",
                                        "RawScan",
                                        "RawBatchScan",
                                        "RawGetKeyTTL",
                                        "RawChecksum",
                                        "KvGet",
                                        "KvBatchGet",
                                        "KvScan",
                                        "Coprocessor",
                                        "CoprocessorStream",
                                        "KvScanLock",
                                        "MvccGetByKey",
                                        NULL};
    static const char *const admins[] = {
        "RawDeleteRange", "UnsafeDestroyRange", "SplitRegion", "KvDeleteRange", "DeleteRange",
        "KvGC",           "MvccGetByStartTs",   NULL};
    if (in_list(method, reads))
        return SEC_PERM_READ;
    if (in_list(method, admins))
        return SEC_PERM_ADMIN;
    return SEC_PERM_WRITE;
}

int srv_authz_perm_of(const char *method)
{
    return (int)srv_authz_perm(method);
}

/* The keys and ranges a request touches. */
typedef struct span {
    tkv_slice start, end; /* [start, end); an empty end: no upper bound */
    bool point;           /* a single key: end is start + "\0" */
} span;

typedef struct spans {
    span v[64];
    size_t n;
    bool overflow; /* more than fit: checked as the whole key space */
} spans;

static void add_span(spans *s, tkv_slice start, tkv_slice end, bool point)
{
    if (s->n == TKV_ARRAY_LEN(s->v)) {
        s->overflow = true;
        return;
    }
    s->v[s->n++] = (span){start, end, point};
}

static bool is_point_field(const char *name)
{
    static const char *const names[] = {"key",       "keys",       "primary_lock", "primary_key",
                                        "split_key", "split_keys", "secondaries",  NULL};
    return in_list(name, names);
}

static tkv_slice bytes_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, size_t i)
{
    const char *base = (const char *)m + f->offset;
    const ProtobufCBinaryData *b = f->label == PROTOBUF_C_LABEL_REPEATED
                                       ? &(*(ProtobufCBinaryData *const *)base)[i]
                                       : (const ProtobufCBinaryData *)base;
    return tkv_slice_of(b->data, b->len);
}

static size_t count_of(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)((const char *)m + f->quantifier_offset);
    return 1;
}

/* Collects the spans of @m and its sub-messages (depth-limited; "context" is skipped). */
static void collect(const ProtobufCMessage *m, spans *s, int depth)
{
    if (m == NULL || depth > 3)
        return;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    tkv_slice start = {0}, end = {0};
    bool ranged = false, reverse = false;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (strcmp(f->name, "context") == 0)
            continue;
        size_t n = count_of(m, f);
        if (f->type == PROTOBUF_C_TYPE_BYTES) {
            if (strcmp(f->name, "start_key") == 0 && f->label != PROTOBUF_C_LABEL_REPEATED) {
                start = bytes_at(m, f, 0);
                ranged = true;
            } else if (strcmp(f->name, "end_key") == 0 && f->label != PROTOBUF_C_LABEL_REPEATED) {
                end = bytes_at(m, f, 0);
                ranged = true;
            } else if (is_point_field(f->name)) {
                for (size_t j = 0; j < n; j++)
                    add_span(s, bytes_at(m, f, j), (tkv_slice){0}, true);
            }
        } else if (f->type == PROTOBUF_C_TYPE_BOOL && strcmp(f->name, "reverse") == 0) {
            reverse = *(const protobuf_c_boolean *)((const char *)m + f->offset);
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const char *base = (const char *)m + f->offset;
            for (size_t j = 0; j < n; j++) {
                const ProtobufCMessage *sub = f->label == PROTOBUF_C_LABEL_REPEATED
                                                  ? (*(ProtobufCMessage *const *const *)base)[j]
                                                  : *(ProtobufCMessage *const *)base;
                collect(sub, s, depth + 1);
            }
        }
    }
    if (ranged) {
        /* A reverse scan reads from end_key (lower bound) up to start_key. */
        if (reverse)
            add_span(s, end, start, false);
        else
            add_span(s, start, end, false);
    }
}

bool srv_authz_check(srv_authz *a, const char *cn, const char *method, const ProtobufCMessage *req,
                     char *reason, size_t cap)
{
    sec_perm perm = srv_authz_perm(method);
    spans s = {.n = 0};
    collect(req, &s, 0);
    if (s.n == 0 || s.overflow) {
        s.n = 0;
        add_span(&s, (tkv_slice){0}, (tkv_slice){0}, false); /* no keys: the whole space */
    }
    bool ok = true;
    pthread_rwlock_rdlock(&a->lock);
    bool loaded = a->policy != NULL;
    for (size_t i = 0; ok && i < s.n; i++) {
        uint8_t next[512];
        tkv_slice end = s.v[i].end;
        if (s.v[i].point) {
            /* [k, k+"\0"); keys longer than the buffer need the range up to no bound. */
            if (s.v[i].start.len < sizeof(next)) {
                if (s.v[i].start.len > 0)
                    memcpy(next, s.v[i].start.data, s.v[i].start.len);
                next[s.v[i].start.len] = 0;
                end = tkv_slice_of(next, s.v[i].start.len + 1);
            } else {
                end = (tkv_slice){0};
            }
        }
        ok = loaded && sec_authz_allows(a->policy, cn, perm, s.v[i].start, end);
        if (!ok)
            snprintf(reason, cap, "permission denied: %s needs %s on the key%s it touches", method,
                     sec_perm_name(perm), s.v[i].point ? "" : " range");
    }
    pthread_rwlock_unlock(&a->lock);
    if (!ok) {
        sec_audit_event ev = {.type = "request_rejected",
                              .peer = cn,
                              .method = method,
                              .reason = reason,
                              .details = loaded ? NULL : "no policy loaded yet"};
        sec_wire_event(a->wire, &ev);
    }
    return ok;
}

/* ---- the refusal as a response ------------------------------------------------------------ */

static const ProtobufCFieldDescriptor *field(const ProtobufCMessageDescriptor *d, const char *name)
{
    return protobuf_c_message_descriptor_get_field_by_name(d, name);
}

int srv_authz_denied_response(const ProtobufCMessageDescriptor *d, const char *msg,
                              ProtobufCMessage **out)
{
    const ProtobufCFieldDescriptor *f = field(d, "error");
    if (f == NULL)
        f = field(d, "errors");
    if (f == NULL)
        return TKV_ENOTFOUND;
    /* One allocation: the response, a KeyError and its pointer array. */
    const ProtobufCMessageDescriptor *kd =
        f->type == PROTOBUF_C_TYPE_MESSAGE ? f->descriptor : NULL;
    size_t size = d->sizeof_message + (kd != NULL ? kd->sizeof_message + sizeof(void *) : 0);
    char *mem = tkv_calloc(1, size + 16);
    if (mem == NULL)
        return -ENOMEM;
    ProtobufCMessage *m = (ProtobufCMessage *)mem;
    protobuf_c_message_init(d, m);
    char *slot = mem + f->offset;
    if (f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED) {
        *(const char **)slot = msg;
    } else if (kd != NULL && field(kd, "abort") != NULL) {
        size_t koff = (d->sizeof_message + 15) & ~(size_t)15;
        ProtobufCMessage *ke = (ProtobufCMessage *)(mem + koff);
        protobuf_c_message_init(kd, ke);
        *(const char **)((char *)ke + field(kd, "abort")->offset) = msg;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            ProtobufCMessage **arr = (ProtobufCMessage **)(mem + koff + kd->sizeof_message);
            arr[0] = ke;
            *(ProtobufCMessage ***)slot = arr;
            *(size_t *)(mem + f->quantifier_offset) = 1;
        } else {
            *(ProtobufCMessage **)slot = ke;
        }
    } else {
        tkv_free(mem);
        return TKV_ENOTFOUND;
    }
    *out = m;
    return 0;
}
