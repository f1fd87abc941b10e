/*
 * raw_value.c: raw values as stored (TiKV's API V1 and V1TTL layouts) and the pair lists that
 * scans and batch gets answer with.
 */
#include "base/clock.h"
#include "base/codec.h"
#include "storage/raw/raw_int.h"

/* Length of the expiry suffix of API V1TTL values. */
#define RAW_TTL_SUFFIX 8

uint64_t stor__raw_now_s(const stor *s)
{
    if (s->opts.ttl_clock_s != NULL)
        return s->opts.ttl_clock_s(s->opts.ttl_clock_arg);
    return tkv_clock_real_ms() / 1000;
}

int stor__raw_encode_value(const stor *s, tkv_slice v, uint64_t ttl, uint64_t now_s, tkv_buf *out)
{
    if (!s->opts.enable_ttl)
        return tkv_buf_append(out, v.data, v.len);
    /* TiKV's ttl_to_expire_ts: no TTL is 0; otherwise now + ttl, saturating. */
    uint64_t expire = 0;
    if (ttl != 0)
        expire = ttl > UINT64_MAX - now_s ? UINT64_MAX : now_s + ttl;
    int rc = tkv_buf_reserve(out, v.len + RAW_TTL_SUFFIX);
    if (rc != 0)
        return rc;
    rc = tkv_buf_append(out, v.data, v.len);
    if (rc == 0)
        rc = tkv_codec_encode_u64(out, expire);
    return rc;
}

int stor__raw_decode_value(const stor *s, tkv_slice stored, uint64_t now_s, tkv_slice *user,
                           uint64_t *expire_s, bool *live)
{
    if (!s->opts.enable_ttl) {
        *user = stored;
        *expire_s = 0;
        *live = true;
        return 0;
    }
    if (stored.len < RAW_TTL_SUFFIX)
        return TKV_ECORRUPT;
    size_t n = stored.len - RAW_TTL_SUFFIX;
    uint64_t expire = tkv_codec_get_u64_be(stored.data + n);
    *user = tkv_slice_of(stored.data, n);
    *expire_s = expire;
    /* TiKV's is_ttl_expired: expired once the expiry time is reached. */
    *live = expire == 0 || expire > now_s;
    return 0;
}

/* ---- pair lists ----------------------------------------------------------------------- */

void stor__raw_pairs_init(raw_pairs *p)
{
    memset(p, 0, sizeof(*p));
    tkv_buf_init(&p->bytes);
}

void stor__raw_pairs_deinit(raw_pairs *p)
{
    tkv_buf_deinit(&p->bytes);
    tkv_free(p->ents);
    tkv_free(p->msgs);
    tkv_free(p->ptrs);
    memset(p, 0, sizeof(*p));
}

int stor__raw_pairs_add(raw_pairs *p, tkv_slice k, tkv_slice v)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        void *e = tkv_realloc(p->ents, cap * sizeof(*p->ents));
        if (e == NULL)
            return -ENOMEM;
        p->ents = e;
        p->cap = cap;
    }
    struct raw_pair_ent *e = &p->ents[p->n];
    size_t start = p->bytes.len;
    int rc = tkv_buf_reserve(&p->bytes, k.len + v.len);
    if (rc == 0)
        rc = tkv_buf_append(&p->bytes, k.data, k.len);
    if (rc == 0)
        rc = tkv_buf_append(&p->bytes, v.data, v.len);
    if (rc != 0) {
        p->bytes.len = start;
        return rc;
    }
    e->koff = start;
    e->klen = k.len;
    e->voff = start + k.len;
    e->vlen = v.len;
    p->n++;
    return 0;
}

int stor__raw_pairs_build(raw_pairs *p, Kvrpcpb__KvPair ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (p->n == 0)
        return 0;
    p->msgs = tkv_calloc(p->n, sizeof(*p->msgs));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    p->ptrs = tkv_calloc(p->n, sizeof(*p->ptrs));
    if (p->msgs == NULL || p->ptrs == NULL)
        return -ENOMEM;
    /* bytes.data is NULL when every key and value is empty (a key-only scan of the empty key). */
    uint8_t *base = p->bytes.data;
    for (size_t i = 0; i < p->n; i++) {
        Kvrpcpb__KvPair *m = &p->msgs[i];
        kvrpcpb__kv_pair__init(m);
        m->key.data = base != NULL ? base + p->ents[i].koff : NULL;
        m->key.len = p->ents[i].klen;
        m->value.data = base != NULL ? base + p->ents[i].voff : NULL;
        m->value.len = p->ents[i].vlen;
        p->ptrs[i] = m;
    }
    *out = p->ptrs;
    *n = p->n;
    return 0;
}
