/*
 * raw_write.c: building and proposing raw writes (puts, deletes, range deletes), plainly or,
 * for client-go's atomic mode (for_cas), under latches like TiKV's RawAtomicStore.
 */
#include "storage/raw/raw_int.h"

static void mods_init(raw_mods *m)
{
    memset(m, 0, sizeof(*m));
    tkv_buf_init(&m->vals);
}

static void mods_deinit(raw_mods *m)
{
    tkv_free(m->mods);
    tkv_free(m->voffs);
    tkv_buf_deinit(&m->vals);
}

static stor_modify *mods_next(raw_mods *m)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4;
        stor_modify *mods = tkv_realloc(m->mods, cap * sizeof(*mods));
        if (mods == NULL)
            return NULL;
        m->mods = mods;
        size_t *offs = tkv_realloc(m->voffs, cap * sizeof(*offs));
        if (offs == NULL)
            return NULL;
        m->voffs = offs;
        m->cap = cap;
    }
    stor_modify *x = &m->mods[m->n];
    memset(x, 0, sizeof(*x));
    m->voffs[m->n] = 0;
    return x;
}

int stor__raw_mods_put(raw_op *op, raw_mods *m, tkv_slice key, tkv_slice v, uint64_t ttl)
{
    stor_modify *x = mods_next(m);
    if (x == NULL)
        return -ENOMEM;
    size_t off = m->vals.len;
    int rc = stor__raw_encode_value(op->s, v, ttl, op->now_s, &m->vals);
    if (rc != 0)
        return rc;
    x->op = STOR_MODIFY_PUT;
    x->cf = op->cf;
    x->key = key;
    /* The value's bytes may still move as vals grows: point at them in mods_finish. */
    x->value = tkv_slice_of(NULL, m->vals.len - off);
    m->voffs[m->n] = off;
    m->n++;
    return 0;
}

int stor__raw_mods_delete(raw_op *op, raw_mods *m, tkv_slice key)
{
    stor_modify *x = mods_next(m);
    if (x == NULL)
        return -ENOMEM;
    x->op = STOR_MODIFY_DELETE;
    x->cf = op->cf;
    x->key = key;
    m->n++;
    return 0;
}

int stor__raw_mods_delete_range(raw_op *op, raw_mods *m, tkv_slice start, tkv_slice end)
{
    stor_modify *x = mods_next(m);
    if (x == NULL)
        return -ENOMEM;
    x->op = STOR_MODIFY_DELETE_RANGE;
    x->cf = op->cf;
    x->key = start;
    x->end_key = end;
    m->n++;
    return 0;
}

static void mods_finish(raw_mods *m)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->mods[i].op == STOR_MODIFY_PUT)
            m->mods[i].value.data = m->vals.data + m->voffs[i];
    }
}

int stor__raw_write_built(raw_op *op)
{
    raw_mods m;
    mods_init(&m);
    int rc = op->build(op, &m);
    if (rc == 0) {
        mods_finish(&m);
        if (m.n == 0)
            stor__raw_reply_ok(op);
        else
            rc = stor__raw_write(op, m.mods, m.n);
    }
    mods_deinit(&m);
    return rc;
}

static void write_latched(raw_op *op)
{
    int rc = stor__raw_write_built(op);
    if (rc != 0)
        stor__raw_reply_error(op, "write refused: %s", tkv_strerror(rc));
}

int stor__raw_run_mods(raw_op *op, raw_build_fn build, raw_key_at_fn latch_key_at, size_t n)
{
    op->build = build;
    int rc;
    if (latch_key_at == NULL) {
        rc = stor__raw_write_built(op);
    } else {
        tkv_slice *keys = tkv_calloc(n ? n : 1, sizeof(*keys));
        if (keys == NULL) {
            rc = -ENOMEM;
        } else {
            for (size_t i = 0; i < n; i++)
                keys[i] = latch_key_at(op->req, i);
            rc = stor__raw_latch(op, keys, n, write_latched);
            tkv_free(keys);
        }
    }
    if (rc != 0)
        stor__raw_op_free(op);
    return rc;
}
