/*
 * txn.c: the modifications one command accumulates (TiKV's MvccTxn).
 *
 * Keys and values are appended to one byte buffer and referenced by offset, so growing it
 * never invalidates earlier entries; mvcc_txn_modifies turns them into stor_modify values.
 */
#include "storage/mvcc/mvcc_int.h"

typedef struct mod_ent {
    stor_modify_op op;
    eng_cf cf;
    size_t key_off, key_len;
    size_t val_off, val_len; /* PUT: value; DELETE_RANGE: end key */
} mod_ent;

struct mvcc_txn {
    uint64_t start_ts;
    mod_ent *ents;
    size_t n, cap;
    tkv_buf data;
    stor_modify *out; /* built by mvcc_txn_modifies */
    size_t out_cap;
    mvcc_released *released;
    size_t n_released, cap_released;
    tkv_buf scratch;
};

int mvcc_txn_new(uint64_t start_ts, mvcc_txn **out)
{
    mvcc_txn *t = tkv_calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->start_ts = start_ts;
    tkv_buf_init(&t->data);
    tkv_buf_init(&t->scratch);
    *out = t;
    return 0;
}

void mvcc_txn_free(mvcc_txn *t)
{
    if (t == NULL)
        return;
    tkv_free(t->ents);
    tkv_free(t->out);
    tkv_free(t->released);
    tkv_buf_deinit(&t->data);
    tkv_buf_deinit(&t->scratch);
    tkv_free(t);
}

uint64_t mvcc_txn_start_ts(const mvcc_txn *t)
{
    return t->start_ts;
}

void mvcc_txn_set_start_ts(mvcc_txn *t, uint64_t start_ts)
{
    t->start_ts = start_ts;
}

static int add(mvcc_txn *t, stor_modify_op op, eng_cf cf, tkv_slice key, tkv_slice val)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        mod_ent *e = tkv_realloc(t->ents, cap * sizeof(*e));
        if (e == NULL)
            return -ENOMEM;
        t->ents = e;
        t->cap = cap;
    }
    size_t old = t->data.len;
    int rc = tkv_buf_append(&t->data, key.data, key.len);
    if (rc == 0)
        rc = tkv_buf_append(&t->data, val.data, val.len);
    if (rc != 0) {
        t->data.len = old;
        return rc;
    }
    t->ents[t->n++] = (mod_ent){.op = op,
                                .cf = cf,
                                .key_off = old,
                                .key_len = key.len,
                                .val_off = old + key.len,
                                .val_len = val.len};
    return 0;
}

static const tkv_slice empty = {NULL, 0};

int mvcc_txn_put_lock(mvcc_txn *t, tkv_slice enc_key, const txn_lock *lock)
{
    tkv_buf_reset(&t->scratch);
    int rc = txn_lock_encode(lock, &t->scratch);
    return rc ? rc : add(t, STOR_MODIFY_PUT, ENG_CF_LOCK, enc_key, tkv_buf_slice(&t->scratch));
}

int mvcc_txn_unlock_key(mvcc_txn *t, tkv_slice enc_key, uint64_t lock_ts, bool pessimistic_txn)
{
    if (t->n_released == t->cap_released) {
        size_t cap = t->cap_released ? t->cap_released * 2 : 8;
        mvcc_released *r = tkv_realloc(t->released, cap * sizeof(*r));
        if (r == NULL)
            return -ENOMEM;
        t->released = r;
        t->cap_released = cap;
    }
    int rc = add(t, STOR_MODIFY_DELETE, ENG_CF_LOCK, enc_key, empty);
    if (rc != 0)
        return rc;
    t->released[t->n_released++] = (mvcc_released){
        .lock_ts = lock_ts, .key_hash = txn_key_hash(enc_key), .pessimistic_txn = pessimistic_txn};
    return 0;
}

static int versioned(mvcc_txn *t, tkv_slice enc_key, uint64_t ts)
{
    tkv_buf_reset(&t->scratch);
    return txn_key_versioned(&t->scratch, enc_key, ts);
}

int mvcc_txn_put_value(mvcc_txn *t, tkv_slice enc_key, uint64_t start_ts, tkv_slice value)
{
    int rc = versioned(t, enc_key, start_ts);
    return rc ? rc : add(t, STOR_MODIFY_PUT, ENG_CF_DEFAULT, tkv_buf_slice(&t->scratch), value);
}

int mvcc_txn_delete_value(mvcc_txn *t, tkv_slice enc_key, uint64_t start_ts)
{
    int rc = versioned(t, enc_key, start_ts);
    return rc ? rc : add(t, STOR_MODIFY_DELETE, ENG_CF_DEFAULT, tkv_buf_slice(&t->scratch), empty);
}

int mvcc_txn_put_write(mvcc_txn *t, tkv_slice enc_key, uint64_t commit_ts, const txn_write *w)
{
    tkv_buf val;
    tkv_buf_init(&val);
    int rc = txn_write_encode(w, &val);
    if (rc == 0)
        rc = versioned(t, enc_key, commit_ts);
    if (rc == 0)
        rc = add(t, STOR_MODIFY_PUT, ENG_CF_WRITE, tkv_buf_slice(&t->scratch), tkv_buf_slice(&val));
    tkv_buf_deinit(&val);
    return rc;
}

int mvcc_txn_delete_write(mvcc_txn *t, tkv_slice enc_key, uint64_t commit_ts)
{
    int rc = versioned(t, enc_key, commit_ts);
    return rc ? rc : add(t, STOR_MODIFY_DELETE, ENG_CF_WRITE, tkv_buf_slice(&t->scratch), empty);
}

int mvcc_txn_delete_range(mvcc_txn *t, eng_cf cf, tkv_slice start, tkv_slice end)
{
    return add(t, STOR_MODIFY_DELETE_RANGE, cf, start, end);
}

size_t mvcc_txn_count(const mvcc_txn *t)
{
    return t->n;
}

void mvcc_txn_clear(mvcc_txn *t)
{
    t->n = 0;
    t->n_released = 0;
    tkv_buf_reset(&t->data);
}

int mvcc_txn_modifies(mvcc_txn *t, const stor_modify **mods, size_t *n)
{
    if (t->n > t->out_cap) {
        stor_modify *o = tkv_realloc(t->out, t->n * sizeof(*o));
        if (o == NULL)
            return -ENOMEM;
        t->out = o;
        t->out_cap = t->n;
    }
    for (size_t i = 0; i < t->n; i++) {
        const mod_ent *e = &t->ents[i];
        tkv_slice key = tkv_slice_of(t->data.data + e->key_off, e->key_len);
        tkv_slice val = tkv_slice_of(t->data.data + e->val_off, e->val_len);
        t->out[i] = (stor_modify){.op = e->op, .cf = e->cf, .key = key};
        if (e->op == STOR_MODIFY_PUT)
            t->out[i].value = val;
        else if (e->op == STOR_MODIFY_DELETE_RANGE)
            t->out[i].end_key = val;
    }
    *mods = t->out;
    *n = t->n;
    return 0;
}

const mvcc_released *mvcc_txn_released(const mvcc_txn *t, size_t *n)
{
    *n = t->n_released;
    return t->released;
}
