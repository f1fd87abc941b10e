/*
 * txn_fixture.c: see txn_fixture.h.
 */
#include "txn_fixture.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

txn_fx *fx_open(bool rocks)
{
    txn_fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->rocks = rocks;
    if (rocks) {
        snprintf(f->dir, sizeof(f->dir), "/tmp/tkv-txn-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        char err[TKV_ERRMSG_LEN];
        assert_int_equal(eng_rocks_open(f->dir, NULL, &f->db, err), 0);
    } else {
        assert_int_equal(eng_mem_open(NULL, &f->db), 0);
    }
    assert_int_equal(stor_kv_local_new(f->db, NULL, &f->kv), 0);
    stor_opts o;
    stor_opts_init(&o);
    o.latch_slots = 1024;
    assert_int_equal(stor_new(f->kv, &o, &f->s), 0);
    kvrpcpb__context__init(&f->ctx);
    f->ctx.region_id = 1;
    return f;
}

void fx_close(txn_fx *f)
{
    stor_free(f->s);
    stor_kv_free(f->kv);
    eng_close(f->db);
    if (f->rocks) {
        char err[TKV_ERRMSG_LEN];
        assert_int_equal(eng_rocks_destroy(f->dir, NULL, err), 0);
        rmdir(f->dir);
    }
    free(f);
}

struct fx_pending {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    ProtobufCMessage *resp;
};

static void on_done(void *ud, const ProtobufCMessage *resp)
{
    fx_pending *p = ud;
    /* The response is borrowed for the callback: keep a copy (pack, unpack). */
    size_t n = protobuf_c_message_get_packed_size(resp);
    uint8_t *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    protobuf_c_message_pack(resp, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(resp->descriptor, NULL, n, buf);
    free(buf);
    assert_non_null(copy);
    pthread_mutex_lock(&p->mu);
    p->resp = copy;
    p->done = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

/* Sets the context field (field 1 of every request) to the fixture's context. */
static void set_ctx(txn_fx *f, ProtobufCMessage *req)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "context");
    if (fd == NULL)
        return;
    void *field = (char *)req + fd->offset;
    Kvrpcpb__Context **slot = field;
    if (*slot == NULL)
        *slot = &f->ctx;
}

fx_pending *fx_start(txn_fx *f, const char *name, ProtobufCMessage *req)
{
    const stor_method *m = stor_method_find(name);
    assert_non_null(m);
    set_ctx(f, req);
    fx_pending *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    assert_int_equal(m->fn(f->s, req, on_done, p), 0);
    return p;
}

int fx_try_start(txn_fx *f, const stor_method *m, ProtobufCMessage *req, fx_pending **out)
{
    set_ctx(f, req);
    fx_pending *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    int rc = m->fn(f->s, req, on_done, p);
    if (rc != 0) {
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

bool fx_done(fx_pending *p)
{
    pthread_mutex_lock(&p->mu);
    bool d = p->done;
    pthread_mutex_unlock(&p->mu);
    return d;
}

void *fx_wait(fx_pending *p)
{
    pthread_mutex_lock(&p->mu);
    while (!p->done)
        pthread_cond_wait(&p->cond, &p->mu);
    pthread_mutex_unlock(&p->mu);
    void *r = p->resp;
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return r;
}

void *fx_call(txn_fx *f, const char *name, ProtobufCMessage *req)
{
    return fx_wait(fx_start(f, name, req));
}

void fx_free(void *resp)
{
    if (resp != NULL)
        protobuf_c_message_free_unpacked(resp, NULL);
}

ProtobufCBinaryData fx_bin(const char *s)
{
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}

bool fx_bin_eq(ProtobufCBinaryData b, const char *s)
{
    return b.len == strlen(s) && (b.len == 0 || memcmp(b.data, s, b.len) == 0);
}

Kvrpcpb__PrewriteResponse *fx_prewrite(txn_fx *f, const char *key, const char *value, int op,
                                       const char *primary, uint64_t start_ts)
{
    Kvrpcpb__Mutation m = KVRPCPB__MUTATION__INIT;
    m.op = (Kvrpcpb__Op)op;
    m.key = fx_bin(key);
    if (value != NULL)
        m.value = fx_bin(value);
    Kvrpcpb__Mutation *ms[1] = {&m};
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    req.n_mutations = 1;
    req.mutations = ms;
    req.primary_lock = fx_bin(primary);
    req.start_version = start_ts;
    req.lock_ttl = 3000;
    req.min_commit_ts = start_ts + 1;
    return fx_call(f, "KvPrewrite", &req.base);
}

void fx_must_prewrite_put(txn_fx *f, const char *key, const char *value, const char *primary,
                          uint64_t start_ts)
{
    Kvrpcpb__PrewriteResponse *r = fx_prewrite(f, key, value, KVRPCPB__OP__Put, primary, start_ts);
    assert_null(r->region_error);
    assert_int_equal(r->n_errors, 0);
    assert_int_equal(r->min_commit_ts, 0);
    assert_int_equal(r->one_pc_commit_ts, 0);
    fx_free(r);
}

Kvrpcpb__CommitResponse *fx_commit(txn_fx *f, const char *key, uint64_t start_ts,
                                   uint64_t commit_ts)
{
    ProtobufCBinaryData k = fx_bin(key);
    Kvrpcpb__CommitRequest req = KVRPCPB__COMMIT_REQUEST__INIT;
    req.n_keys = 1;
    req.keys = &k;
    req.start_version = start_ts;
    req.commit_version = commit_ts;
    return fx_call(f, "KvCommit", &req.base);
}

void fx_must_commit(txn_fx *f, const char *key, uint64_t start_ts, uint64_t commit_ts)
{
    Kvrpcpb__CommitResponse *r = fx_commit(f, key, start_ts, commit_ts);
    assert_null(r->region_error);
    assert_null(r->error);
    assert_int_equal(r->commit_version, commit_ts);
    fx_free(r);
}

Kvrpcpb__GetResponse *fx_get(txn_fx *f, const char *key, uint64_t ts)
{
    Kvrpcpb__GetRequest req = KVRPCPB__GET_REQUEST__INIT;
    req.key = fx_bin(key);
    req.version = ts;
    return fx_call(f, "KvGet", &req.base);
}

void fx_must_get(txn_fx *f, const char *key, uint64_t ts, const char *value)
{
    Kvrpcpb__GetResponse *r = fx_get(f, key, ts);
    assert_null(r->region_error);
    if (r->error != NULL)
        fail_msg("get %s at %llu: unexpected key error (abort %s, locked %d)", key,
                 (unsigned long long)ts, r->error->abort ? r->error->abort : "-",
                 r->error->locked != NULL);
    if (value == NULL) {
        assert_true(r->not_found);
    } else {
        assert_false(r->not_found);
        if (!fx_bin_eq(r->value, value))
            fail_msg("get %s at %llu: got %.*s, want %s", key, (unsigned long long)ts,
                     (int)r->value.len, (const char *)r->value.data, value);
    }
    fx_free(r);
}

void fx_must_get_locked(txn_fx *f, const char *key, uint64_t ts, uint64_t lock_ts)
{
    Kvrpcpb__GetResponse *r = fx_get(f, key, ts);
    assert_non_null(r->error);
    assert_non_null(r->error->locked);
    assert_int_equal(r->error->locked->lock_version, lock_ts);
    assert_true(fx_bin_eq(r->error->locked->key, key));
    fx_free(r);
}

Kvrpcpb__BatchRollbackResponse *fx_rollback(txn_fx *f, const char *key, uint64_t start_ts)
{
    ProtobufCBinaryData k = fx_bin(key);
    Kvrpcpb__BatchRollbackRequest req = KVRPCPB__BATCH_ROLLBACK_REQUEST__INIT;
    req.n_keys = 1;
    req.keys = &k;
    req.start_version = start_ts;
    return fx_call(f, "KvBatchRollback", &req.base);
}

Kvrpcpb__PessimisticLockResponse *fx_plock(txn_fx *f, const char *key, const char *primary,
                                           uint64_t start_ts, uint64_t for_update_ts,
                                           int64_t wait_timeout, bool return_values)
{
    Kvrpcpb__Mutation m = KVRPCPB__MUTATION__INIT;
    m.op = KVRPCPB__OP__PessimisticLock;
    m.key = fx_bin(key);
    Kvrpcpb__Mutation *mp = &m;
    Kvrpcpb__PessimisticLockRequest req = KVRPCPB__PESSIMISTIC_LOCK_REQUEST__INIT;
    req.n_mutations = 1;
    req.mutations = &mp;
    req.primary_lock = fx_bin(primary);
    req.start_version = start_ts;
    req.for_update_ts = for_update_ts;
    req.lock_ttl = 3000;
    req.wait_timeout = wait_timeout;
    req.return_values = return_values;
    return fx_call(f, "KvPessimisticLock", &req.base);
}
