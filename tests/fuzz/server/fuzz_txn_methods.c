/*
 * fuzz_txn_methods.c: the transactional KV methods (stor_txn_methods: KvGet, KvScan,
 * KvPrewrite, KvCommit, KvCleanup, KvBatchGet, KvBatchRollback, KvScanLock, KvResolveLock,
 * KvGC, KvDeleteRange, KvPessimisticLock, KVPessimisticRollback, KvCheckTxnStatus,
 * KvTxnHeartBeat, KvCheckSecondaryLocks, UnsafeDestroyRange) on untrusted requests, over a
 * fresh storage on stor_kv_local and an in-memory engine per input.
 *
 * The input is a sequence of requests, each either its method's request message decoded from
 * the input's bytes (anything a client may send) or one built from the input's choices over a
 * few keys and timestamps (so that transactions actually prewrite, lock, commit, roll back,
 * resolve and collide). The request's context is replaced by one naming the local region. Per
 * request:
 *   - an accepted request is answered exactly once with a response of the method's type that
 *     packs and unpacks; a refused one is never answered;
 *   - a prewrite or commit answered with an error wrote nothing (every key or none);
 *   - the column families stay consistent: every lock and write record decodes, write keys
 *     carry a commit timestamp (above the start timestamp for commits, equal to it for
 *     rollbacks), and every committed or locked value too long to live inline is in the
 *     default CF (no torn write).
 * At the end, for every key and several read timestamps, KvGet, KvBatchGet and KvScan
 * (forward and reverse) agree on what is there (a value, nothing, or a blocking lock), and
 * every value read is one that some request wrote to that key.
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "base/keys.h"
#include "fuzz/fuzz.h"
#include "kvrpcpb.pb-c.h"
#include "storage/storage.h"
#include "storage/txn_types.h"

#define NKEYS    6
#define MAX_VALS 512

static const char *const key_names[NKEYS] = {"a", "b", "c", "d", "e", "f"};

typedef struct fx {
    eng_db *db;
    stor_kv *kv;
    stor *s;
    uint64_t vals[MAX_VALS]; /* hashes of (key, value) pairs some request wrote */
    size_t nvals;
} fx;

static uint64_t hash_kv(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < kl; i++)
        h = (h ^ k[i]) * 0x100000001b3ULL;
    h = (h ^ 0xff) * 0x100000001b3ULL ^ kl;
    for (size_t i = 0; i < vl; i++)
        h = (h ^ v[i]) * 0x100000001b3ULL;
    return h ^ (vl << 32);
}

static void note_value(fx *f, ProtobufCBinaryData k, ProtobufCBinaryData v)
{
    if (f->nvals < MAX_VALS)
        f->vals[f->nvals++] = hash_kv(k.data, k.len, v.data, v.len);
}

static bool was_written(const fx *f, ProtobufCBinaryData k, ProtobufCBinaryData v)
{
    uint64_t h = hash_kv(k.data, k.len, v.data, v.len);
    for (size_t i = 0; i < f->nvals; i++)
        if (f->vals[i] == h)
            return true;
    return f->nvals == MAX_VALS; /* forgot some: cannot tell */
}

/* ---- calling a method and waiting for its answer --------------------------------------- */

typedef struct answer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    const ProtobufCMessageDescriptor *want;
    ProtobufCMessage *copy;
} answer;

static void on_done(void *ud, const ProtobufCMessage *resp)
{
    answer *a = ud;
    FUZZ_CHECK(resp->descriptor == a->want);
    size_t len = protobuf_c_message_get_packed_size(resp);
    uint8_t *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf != NULL);
    FUZZ_CHECK(protobuf_c_message_pack(resp, buf) == len);
    ProtobufCMessage *back = protobuf_c_message_unpack(resp->descriptor, NULL, len, buf);
    FUZZ_CHECK(back != NULL);
    free(buf);
    pthread_mutex_lock(&a->mu);
    a->calls++;
    a->copy = back;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* Runs @m on @req with the local region's context; returns the response (free it with
 * protobuf_c_message_free_unpacked), or NULL when the method refused the request. */
static ProtobufCMessage *call(fx *f, const stor_method *m, ProtobufCMessage *req)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(m->req_desc, "context");
    FUZZ_CHECK(fd != NULL);
    void *slot = (char *)req + fd->offset;
    Kvrpcpb__Context *orig, *mine;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): copies a pointer */
    memcpy(&orig, slot, sizeof(orig));
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    ctx.region_id = 1;
    mine = &ctx;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): copies a pointer */
    memcpy(slot, &mine, sizeof(mine));
    answer a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, m->resp_desc, NULL};
    int rc = m->fn(f->s, req, on_done, &a);
    FUZZ_CHECK(rc <= 0);
    if (rc == 0) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 30;
        pthread_mutex_lock(&a.mu);
        while (a.calls == 0)
            FUZZ_CHECK(pthread_cond_timedwait(&a.cv, &a.mu, &dl) == 0); /* answered in time */
        pthread_mutex_unlock(&a.mu);
    }
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): copies a pointer */
    memcpy(slot, &orig, sizeof(orig));
    /* Exactly once, and only when taken (a late second answer would land here too). */
    pthread_mutex_lock(&a.mu);
    FUZZ_CHECK(rc == 0 ? a.calls == 1 : a.calls == 0);
    pthread_mutex_unlock(&a.mu);
    return a.copy;
}

static const stor_method *method(const char *name)
{
    const stor_method *m = stor_method_find(name);
    FUZZ_CHECK(m != NULL);
    return m;
}

/* ---- the column families ---------------------------------------------------------------- */

/* A fingerprint of every CF, to tell whether a request wrote anything. */
static uint64_t fingerprint(fx *f)
{
    uint64_t h = 0;
    for (eng_cf cf = ENG_CF_DEFAULT; cf <= ENG_CF_WRITE; cf++) {
        eng_iter *it;
        FUZZ_CHECK(eng_iter_new(f->db, cf, tkv_slice_of(NULL, 0), tkv_slice_of(NULL, 0), &it) == 0);
        for (bool ok = eng_iter_seek_to_first(it); ok; ok = eng_iter_next(it)) {
            tkv_slice k = eng_iter_key(it), v = eng_iter_value(it);
            h = h * 31 + hash_kv(k.data, k.len, v.data, v.len) + (uint64_t)cf;
        }
        FUZZ_CHECK(eng_iter_status(it) == 0);
        eng_iter_free(it);
    }
    return h;
}

static bool default_has(fx *f, tkv_slice enc_key, uint64_t start_ts)
{
    tkv_buf k, v;
    tkv_buf_init(&k);
    tkv_buf_init(&v);
    FUZZ_CHECK(tkv_buf_append_u8(&k, TKV_KEYS_DATA_PREFIX) == 0);
    FUZZ_CHECK(txn_key_versioned(&k, enc_key, start_ts) == 0);
    bool found;
    FUZZ_CHECK(eng_get(f->db, ENG_CF_DEFAULT, tkv_buf_slice(&k), &v, &found) == 0);
    tkv_buf_deinit(&k);
    tkv_buf_deinit(&v);
    return found;
}

static void check_cfs(fx *f)
{
    eng_iter *it;
    FUZZ_CHECK(
        eng_iter_new(f->db, ENG_CF_LOCK, tkv_slice_of(NULL, 0), tkv_slice_of(NULL, 0), &it) == 0);
    for (bool ok = eng_iter_seek_to_first(it); ok; ok = eng_iter_next(it)) {
        tkv_slice k = eng_iter_key(it);
        FUZZ_CHECK(tkv_keys_is_data_key(k));
        tkv_slice enc = tkv_slice_of(k.data + 1, k.len - 1);
        tkv_buf raw;
        tkv_buf_init(&raw);
        FUZZ_CHECK(txn_key_decode(enc, &raw) == 0);
        tkv_buf_deinit(&raw);
        txn_lock l;
        FUZZ_CHECK(txn_lock_decode(eng_iter_value(it), &l) == 0);
        if (l.type == TXN_LOCK_PUT && !l.has_short_value)
            FUZZ_CHECK(default_has(f, enc, l.start_ts));
        txn_lock_deinit(&l);
    }
    eng_iter_free(it);
    FUZZ_CHECK(
        eng_iter_new(f->db, ENG_CF_WRITE, tkv_slice_of(NULL, 0), tkv_slice_of(NULL, 0), &it) == 0);
    for (bool ok = eng_iter_seek_to_first(it); ok; ok = eng_iter_next(it)) {
        tkv_slice k = eng_iter_key(it);
        FUZZ_CHECK(tkv_keys_is_data_key(k));
        tkv_slice enc;
        uint64_t commit_ts;
        FUZZ_CHECK(txn_key_split_ts(tkv_slice_of(k.data + 1, k.len - 1), &enc, &commit_ts) == 0);
        txn_write w;
        FUZZ_CHECK(txn_write_decode(eng_iter_value(it), &w) == 0);
        if (w.type == TXN_WRITE_ROLLBACK)
            FUZZ_CHECK(commit_ts == w.start_ts);
        else
            FUZZ_CHECK(commit_ts > w.start_ts ||
                       (commit_ts == w.start_ts && w.has_overlapped_rollback));
        if (w.type == TXN_WRITE_PUT && !w.has_short_value)
            FUZZ_CHECK(default_has(f, enc, w.start_ts)); /* a committed value is never torn */
    }
    eng_iter_free(it);
}

/* ---- building requests ------------------------------------------------------------------ */

static ProtobufCBinaryData key_of(fuzz_in *in)
{
    const char *k = key_names[fuzz_below(in, NKEYS)];
    return (ProtobufCBinaryData){strlen(k), (uint8_t *)k};
}

static uint64_t ts_of(fuzz_in *in)
{
    return 1 + fuzz_below(in, 40);
}

/* Storage for one built request's parts. */
typedef struct parts {
    Kvrpcpb__Mutation mut[4], *pmut[4];
    ProtobufCBinaryData keys[4];
    uint8_t val[4][300];
    Kvrpcpb__PrewriteRequest__PessimisticAction acts[4];
    Kvrpcpb__TxnInfo info, *pinfo[1];
} parts;

static size_t gen_mutations(fx *f, fuzz_in *in, parts *p, bool pessimistic)
{
    size_t n = 1 + fuzz_below(in, 4);
    for (size_t i = 0; i < n; i++) {
        Kvrpcpb__Mutation *m = &p->mut[i];
        kvrpcpb__mutation__init(m);
        uint8_t b = fuzz_u8(in);
        static const Kvrpcpb__Op ops[] = {KVRPCPB__OP__Put,      KVRPCPB__OP__Put,
                                          KVRPCPB__OP__Del,      KVRPCPB__OP__Lock,
                                          KVRPCPB__OP__Insert,   KVRPCPB__OP__CheckNotExists,
                                          KVRPCPB__OP__Rollback, KVRPCPB__OP__PessimisticLock};
        m->op = pessimistic ? (b & 1 ? KVRPCPB__OP__PessimisticLock : KVRPCPB__OP__Put)
                            : ops[b % TKV_ARRAY_LEN(ops)];
        m->key = key_of(in);
        /* A short value lives in the lock and write records; a long one in the default CF. */
        size_t len = b & 0x40 ? 256 + fuzz_below(in, 40) : fuzz_below(in, 8);
        memset(p->val[i], 'a' + (int)(b % 26), len);
        if (len > 0)
            p->val[i][0] = (uint8_t)fuzz_u8(in);
        m->value = (ProtobufCBinaryData){len, p->val[i]};
        m->assertion = (Kvrpcpb__Assertion)((b >> 3) % 3);
        p->pmut[i] = m;
        if (m->op == KVRPCPB__OP__Put || m->op == KVRPCPB__OP__Insert)
            note_value(f, m->key, m->value);
    }
    return n;
}

static size_t gen_keys(fuzz_in *in, parts *p)
{
    size_t n = 1 + fuzz_below(in, 4);
    for (size_t i = 0; i < n; i++)
        p->keys[i] = key_of(in);
    return n;
}

/* Builds and runs one request of method @name from the input's choices. */
static ProtobufCMessage *built(fx *f, fuzz_in *in, const stor_method *m)
{
    parts p;
    memset(&p, 0, sizeof(p));
    const char *name = m->name;
    uint64_t start = ts_of(in);
    ProtobufCMessage *resp = NULL;
    if (strcmp(name, "KvPrewrite") == 0) {
        Kvrpcpb__PrewriteRequest r = KVRPCPB__PREWRITE_REQUEST__INIT;
        uint8_t b = fuzz_u8(in);
        bool pess = b & 1;
        r.n_mutations = gen_mutations(f, in, &p, false);
        r.mutations = p.pmut;
        r.primary_lock = p.mut[0].key;
        r.start_version = start;
        r.lock_ttl = b & 2 ? 0 : 3000;
        if (pess) {
            r.for_update_ts = start + fuzz_below(in, 4);
            for (size_t i = 0; i < r.n_mutations; i++)
                p.acts[i] = (Kvrpcpb__PrewriteRequest__PessimisticAction)(fuzz_u8(in) % 3);
            r.pessimistic_actions = p.acts;
            r.n_pessimistic_actions = r.n_mutations;
        }
        r.min_commit_ts = b & 4 ? start + 1 : 0;
        r.use_async_commit = b & 8;
        if (r.use_async_commit) {
            r.n_secondaries = gen_keys(in, &p);
            r.secondaries = p.keys;
        }
        r.try_one_pc = b & 16;
        r.max_commit_ts = b & 32 ? start + fuzz_below(in, 8) : 0;
        r.skip_constraint_check = b & 64;
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvCommit") == 0) {
        Kvrpcpb__CommitRequest r = KVRPCPB__COMMIT_REQUEST__INIT;
        r.start_version = start;
        r.commit_version = start + fuzz_below(in, 6);
        r.n_keys = gen_keys(in, &p);
        r.keys = p.keys;
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvPessimisticLock") == 0) {
/* The initializer sets the deprecated field `force` (clang warns about that, gcc does not). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        Kvrpcpb__PessimisticLockRequest r = KVRPCPB__PESSIMISTIC_LOCK_REQUEST__INIT;
#pragma GCC diagnostic pop
        r.n_mutations = gen_mutations(f, in, &p, true);
        r.mutations = p.pmut;
        r.primary_lock = p.mut[0].key;
        r.start_version = start;
        r.for_update_ts = start + fuzz_below(in, 4);
        r.lock_ttl = 3000;
        uint8_t b = fuzz_u8(in);
        r.is_first_lock = b & 1;
        r.return_values = b & 2;
        r.check_existence = b & 4;
        r.lock_only_if_exists = b & 8;
        r.wait_timeout = -1;
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KVPessimisticRollback") == 0) {
        Kvrpcpb__PessimisticRollbackRequest r = KVRPCPB__PESSIMISTIC_ROLLBACK_REQUEST__INIT;
        r.start_version = start;
        r.for_update_ts = start + fuzz_below(in, 4);
        r.n_keys = gen_keys(in, &p);
        r.keys = p.keys;
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvBatchRollback") == 0) {
        Kvrpcpb__BatchRollbackRequest r = KVRPCPB__BATCH_ROLLBACK_REQUEST__INIT;
        r.start_version = start;
        r.n_keys = gen_keys(in, &p);
        r.keys = p.keys;
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvCleanup") == 0) {
        Kvrpcpb__CleanupRequest r = KVRPCPB__CLEANUP_REQUEST__INIT;
        r.key = key_of(in);
        r.start_version = start;
        r.current_ts = fuzz_below(in, 2) ? 0 : ts_of(in);
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvCheckTxnStatus") == 0) {
        Kvrpcpb__CheckTxnStatusRequest r = KVRPCPB__CHECK_TXN_STATUS_REQUEST__INIT;
        r.primary_key = key_of(in);
        r.lock_ts = start;
        r.caller_start_ts = ts_of(in);
        r.current_ts = fuzz_u8(in) & 1 ? UINT64_MAX >> 20 : ts_of(in);
        uint8_t b = fuzz_u8(in);
        r.rollback_if_not_exist = b & 1;
        r.force_sync_commit = b & 2;
        r.resolving_pessimistic_lock = b & 4;
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvTxnHeartBeat") == 0) {
        Kvrpcpb__TxnHeartBeatRequest r = KVRPCPB__TXN_HEART_BEAT_REQUEST__INIT;
        r.primary_lock = key_of(in);
        r.start_version = start;
        r.advise_lock_ttl = fuzz_uint(in, 2);
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvCheckSecondaryLocks") == 0) {
        Kvrpcpb__CheckSecondaryLocksRequest r = KVRPCPB__CHECK_SECONDARY_LOCKS_REQUEST__INIT;
        r.n_keys = gen_keys(in, &p);
        r.keys = p.keys;
        r.start_version = start;
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvResolveLock") == 0) {
        Kvrpcpb__ResolveLockRequest r = KVRPCPB__RESOLVE_LOCK_REQUEST__INIT;
        uint8_t b = fuzz_u8(in);
        r.start_version = start;
        r.commit_version = b & 1 ? 0 : start + fuzz_below(in, 6);
        if (b & 2) {
            r.n_keys = gen_keys(in, &p);
            r.keys = p.keys;
        }
        if (b & 4) {
            kvrpcpb__txn_info__init(&p.info);
            p.info.txn = ts_of(in);
            p.info.status = b & 8 ? 0 : p.info.txn + 1;
            p.pinfo[0] = &p.info;
            r.txn_infos = p.pinfo;
            r.n_txn_infos = 1;
        }
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvGC") == 0) {
        Kvrpcpb__GCRequest r = KVRPCPB__GCREQUEST__INIT;
        r.safe_point = start;
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvDeleteRange") == 0 || strcmp(name, "UnsafeDestroyRange") == 0) {
        ProtobufCBinaryData a = key_of(in), b = key_of(in);
        if (strcmp(name, "KvDeleteRange") == 0) {
            Kvrpcpb__DeleteRangeRequest r = KVRPCPB__DELETE_RANGE_REQUEST__INIT;
            r.start_key = a;
            r.end_key = b;
            r.notify_only = fuzz_u8(in) % 8 == 0;
            resp = call(f, m, &r.base);
        } else {
            Kvrpcpb__UnsafeDestroyRangeRequest r = KVRPCPB__UNSAFE_DESTROY_RANGE_REQUEST__INIT;
            r.start_key = a;
            r.end_key = b;
            resp = call(f, m, &r.base);
        }
    } else if (strcmp(name, "KvScanLock") == 0) {
        Kvrpcpb__ScanLockRequest r = KVRPCPB__SCAN_LOCK_REQUEST__INIT;
        r.max_version = start;
        r.start_key = key_of(in);
        r.limit = (uint32_t)fuzz_below(in, 8);
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvGet") == 0) {
        Kvrpcpb__GetRequest r = KVRPCPB__GET_REQUEST__INIT;
        r.key = key_of(in);
        r.version = start;
        resp = call(f, m, &r.base);
    } else if (strcmp(name, "KvBatchGet") == 0) {
        Kvrpcpb__BatchGetRequest r = KVRPCPB__BATCH_GET_REQUEST__INIT;
        r.n_keys = gen_keys(in, &p);
        r.keys = p.keys;
        r.version = start;
        resp = call(f, m, &r.base);
    } else {
        FUZZ_CHECK(strcmp(name, "KvScan") == 0);
        Kvrpcpb__ScanRequest r = KVRPCPB__SCAN_REQUEST__INIT;
        r.start_key = key_of(in);
        r.limit = (uint32_t)fuzz_below(in, 8);
        r.version = start;
        r.reverse = fuzz_u8(in) & 1;
        resp = call(f, m, &r.base);
    }
    return resp;
}

/* Whether @resp reports a failure: a region error, a key error or errors. */
static bool failed(const ProtobufCMessage *resp)
{
    static const char *const fields[] = {"region_error", "error", "errors"};
    for (size_t i = 0; i < TKV_ARRAY_LEN(fields); i++) {
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field_by_name(resp->descriptor, fields[i]);
        if (fd == NULL)
            continue;
        const char *slot = (const char *)resp + fd->offset;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            memcpy(&n, (const char *)resp + fd->quantifier_offset, sizeof(n));
            if (n > 0)
                return true;
        } else {
            const void *p;
            memcpy(&p, slot, sizeof(p));
            if (p != NULL)
                return true;
        }
    }
    return false;
}

static void step(fx *f, fuzz_in *in)
{
    size_t n = 0;
    while (stor_txn_methods[n].name != NULL)
        n++;
    if (n == 0)
        return;
    uint8_t b = fuzz_u8(in);
    const stor_method *m = &stor_txn_methods[b % n];
    bool atomic = strcmp(m->name, "KvPrewrite") == 0 || strcmp(m->name, "KvCommit") == 0;
    uint64_t before = atomic ? fingerprint(f) : 0;
    ProtobufCMessage *resp;
    if (b & 0x80) {
        size_t len;
        const uint8_t *p = fuzz_bytes(in, 255, &len);
        ProtobufCMessage *req = protobuf_c_message_unpack(m->req_desc, NULL, len, p);
        if (req == NULL)
            return;
        if (strcmp(m->name, "KvPessimisticLock") == 0) /* never wait for a lock here */
            ((Kvrpcpb__PessimisticLockRequest *)req)->wait_timeout = -1;
        if (strcmp(m->name, "KvPrewrite") == 0) {
            const Kvrpcpb__PrewriteRequest *pr = (const void *)req;
            for (size_t i = 0; i < pr->n_mutations; i++)
                note_value(f, pr->mutations[i]->key, pr->mutations[i]->value);
        }
        resp = call(f, m, req);
        protobuf_c_message_free_unpacked(req, NULL);
    } else {
        resp = built(f, in, m);
    }
    if (resp == NULL)
        return;
    if (atomic && failed(resp))
        FUZZ_CHECK(fingerprint(f) == before); /* every key or none */
    protobuf_c_message_free_unpacked(resp, NULL);
    check_cfs(f);
}

/* ---- reads agree --------------------------------------------------------------------------- */

typedef enum seen { SEEN_ABSENT, SEEN_VALUE, SEEN_LOCKED, SEEN_UNKNOWN } seen;

typedef struct view {
    seen what[NKEYS];
    ProtobufCBinaryData val[NKEYS];
} view;

/* The key a row is about: a locked row carries it in its LockInfo (TiKV leaves the row's own
 * key empty then). */
static ProtobufCBinaryData row_key(const Kvrpcpb__KvPair *p)
{
    if (p->error != NULL) {
        FUZZ_CHECK(p->error->locked != NULL);
        return p->error->locked->key;
    }
    return p->key;
}

static int key_index(ProtobufCBinaryData k)
{
    for (int i = 0; i < NKEYS; i++)
        if (k.len == 1 && k.data[0] == (uint8_t)key_names[i][0])
            return i;
    return -1;
}

static void check_value(const fx *f, int k, ProtobufCBinaryData v)
{
    ProtobufCBinaryData key = {1, (uint8_t *)key_names[k]};
    FUZZ_CHECK(was_written(f, key, v)); /* never a value nobody wrote */
}

static void check_reads(fx *f, uint64_t ts)
{
    view g;
    ProtobufCBinaryData all[NKEYS];
    for (int i = 0; i < NKEYS; i++) {
        all[i] = (ProtobufCBinaryData){1, (uint8_t *)key_names[i]};
        Kvrpcpb__GetRequest r = KVRPCPB__GET_REQUEST__INIT;
        r.key = all[i];
        r.version = ts;
        Kvrpcpb__GetResponse *resp = (void *)call(f, method("KvGet"), &r.base);
        FUZZ_CHECK(resp != NULL && resp->region_error == NULL);
        g.what[i] = resp->error != NULL ? SEEN_LOCKED : resp->not_found ? SEEN_ABSENT : SEEN_VALUE;
        if (g.what[i] == SEEN_LOCKED)
            FUZZ_CHECK(resp->error->locked != NULL);
        g.val[i] = resp->value;
        if (g.what[i] == SEEN_VALUE)
            check_value(f, i, resp->value);
        uint8_t *copy = malloc(resp->value.len ? resp->value.len : 1);
        FUZZ_CHECK(copy != NULL);
        if (resp->value.len > 0)
            memcpy(copy, resp->value.data, resp->value.len);
        g.val[i].data = copy;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    /* BatchGet of every key. */
    Kvrpcpb__BatchGetRequest br = KVRPCPB__BATCH_GET_REQUEST__INIT;
    br.keys = all;
    br.n_keys = NKEYS;
    br.version = ts;
    Kvrpcpb__BatchGetResponse *bresp = (void *)call(f, method("KvBatchGet"), &br.base);
    FUZZ_CHECK(bresp != NULL && bresp->region_error == NULL);
    bool in_batch[NKEYS] = {false};
    for (size_t i = 0; i < bresp->n_pairs; i++) {
        const Kvrpcpb__KvPair *p = bresp->pairs[i];
        int k = key_index(row_key(p));
        FUZZ_CHECK(k >= 0 && !in_batch[k]);
        in_batch[k] = true;
        if (p->error != NULL)
            FUZZ_CHECK(g.what[k] == SEEN_LOCKED);
        else
            FUZZ_CHECK(g.what[k] == SEEN_VALUE &&
                       tkv_slice_eq(tkv_slice_of(p->value.data, p->value.len),
                                    tkv_slice_of(g.val[k].data, g.val[k].len)));
    }
    for (int k = 0; k < NKEYS; k++)
        FUZZ_CHECK(in_batch[k] || g.what[k] == SEEN_ABSENT || (bresp->error != NULL));
    protobuf_c_message_free_unpacked(&bresp->base, NULL);
    /* Scans both ways over everything. */
    for (int rev = 0; rev < 2; rev++) {
        Kvrpcpb__ScanRequest sr = KVRPCPB__SCAN_REQUEST__INIT;
        sr.start_key = rev ? (ProtobufCBinaryData){1, (uint8_t *)"z"} : all[0];
        sr.end_key = rev ? all[0] : (ProtobufCBinaryData){1, (uint8_t *)"z"};
        sr.limit = 100;
        sr.version = ts;
        sr.reverse = rev;
        Kvrpcpb__ScanResponse *sresp = (void *)call(f, method("KvScan"), &sr.base);
        FUZZ_CHECK(sresp != NULL && sresp->region_error == NULL && sresp->error == NULL);
        bool in_scan[NKEYS] = {false};
        int last = rev ? NKEYS : -1;
        for (size_t i = 0; i < sresp->n_pairs; i++) {
            const Kvrpcpb__KvPair *p = sresp->pairs[i];
            int k = key_index(row_key(p));
            FUZZ_CHECK(k >= 0 && !in_scan[k]);
            FUZZ_CHECK(rev ? k < last : k > last); /* in key order */
            last = k;
            in_scan[k] = true;
            if (p->error != NULL)
                FUZZ_CHECK(g.what[k] == SEEN_LOCKED);
            else
                FUZZ_CHECK(g.what[k] == SEEN_VALUE &&
                           tkv_slice_eq(tkv_slice_of(p->value.data, p->value.len),
                                        tkv_slice_of(g.val[k].data, g.val[k].len)));
        }
        for (int k = 0; k < NKEYS; k++)
            FUZZ_CHECK(in_scan[k] || g.what[k] == SEEN_ABSENT);
        protobuf_c_message_free_unpacked(&sresp->base, NULL);
    }
    for (int i = 0; i < NKEYS; i++)
        free(g.val[i].data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fx *f = calloc(1, sizeof(*f));
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(eng_mem_open(NULL, &f->db) == 0);
    FUZZ_CHECK(stor_kv_local_new(f->db, NULL, &f->kv) == 0);
    stor_opts o;
    stor_opts_init(&o);
    o.latch_slots = 64;
    o.max_key_bytes = 256;
    o.max_batch_keys = 64;
    o.max_scan_limit = 256;
    FUZZ_CHECK(stor_new(f->kv, &o, &f->s) == 0);
    fuzz_in in = fuzz_in_of(data, size);
    for (int i = 0; i < 48 && in.n > 0; i++)
        step(f, &in);
    static const uint64_t read_ts[] = {1, 7, 15, 30, 60, UINT64_MAX >> 1};
    for (size_t i = 0; i < TKV_ARRAY_LEN(read_ts); i++)
        check_reads(f, read_ts[i]);
    stor_free(f->s);
    stor_kv_free(f->kv);
    eng_close(f->db);
    free(f);
    return 0;
}
