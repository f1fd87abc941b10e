/*
 * txn_types.c: Lock and Write records and MVCC keys in TiKV's formats (see txn_types.h).
 */
#include "storage/txn_types.h"

#include "base/codec.h"
#include "base/keys.h"

#define PREFIX_SHORT_VALUE     'v'
#define PREFIX_FOR_UPDATE_TS   'f'
#define PREFIX_TXN_SIZE        't'
#define PREFIX_MIN_COMMIT_TS   'c'
#define PREFIX_ASYNC_COMMIT    'a'
#define PREFIX_ROLLBACK_TS     'r'
#define PREFIX_LAST_CHANGE     'l'
#define PREFIX_LOCK_TXN_SOURCE 's'
#define PREFIX_LOCK_CONFLICT   'F'

#define FLAG_OVERLAPPED_ROLLBACK 'R'
#define PREFIX_GC_FENCE          'F'
#define PREFIX_WRITE_TXN_SOURCE  'S'

/* ---- shared field codecs ---------------------------------------------------------------- */

static int put_u64_field(tkv_buf *out, uint8_t prefix, uint64_t v)
{
    int rc = tkv_buf_append_u8(out, prefix);
    return rc ? rc : tkv_codec_encode_u64(out, v);
}

static int put_short_value(tkv_buf *out, tkv_slice v)
{
    if (v.len > TXN_SHORT_VALUE_MAX_LEN)
        return -EINVAL;
    int rc = tkv_buf_append_u8(out, PREFIX_SHORT_VALUE);
    if (rc == 0)
        rc = tkv_buf_append_u8(out, (uint8_t)v.len);
    if (rc == 0)
        rc = tkv_buf_append(out, v.data, v.len);
    return rc;
}

static int get_u8(tkv_slice *in, uint8_t *v)
{
    if (in->len < 1)
        return TKV_ECORRUPT;
    *v = in->data[0];
    in->data++;
    in->len--;
    return 0;
}

static int get_short_value(tkv_slice *in, tkv_slice *v)
{
    uint8_t len;
    if (get_u8(in, &len) != 0 || in->len < len)
        return TKV_ECORRUPT;
    *v = tkv_slice_of(in->data, len);
    in->data += len;
    in->len -= len;
    return 0;
}

static int put_last_change(tkv_buf *out, uint64_t ts, uint64_t versions)
{
    int rc = put_u64_field(out, PREFIX_LAST_CHANGE, ts);
    return rc ? rc : tkv_codec_encode_uvarint(out, versions);
}

/* ---- locks ---------------------------------------------------------------------------- */

void txn_lock_init(txn_lock *l, txn_lock_type type, tkv_slice primary, uint64_t start_ts,
                   uint64_t ttl)
{
    memset(l, 0, sizeof(*l));
    l->type = type;
    l->primary = primary;
    l->start_ts = start_ts;
    l->ttl = ttl;
}

void txn_lock_deinit(txn_lock *l)
{
    tkv_free(l->secondaries);
    tkv_free(l->rollback_ts);
    l->secondaries = NULL;
    l->rollback_ts = NULL;
    l->n_secondaries = 0;
    l->n_rollback_ts = 0;
}

static bool lock_type_valid(uint8_t b)
{
    return b == TXN_LOCK_PUT || b == TXN_LOCK_DELETE || b == TXN_LOCK_LOCK ||
           b == TXN_LOCK_PESSIMISTIC;
}

int txn_lock_encode(const txn_lock *l, tkv_buf *out)
{
    size_t old = out->len;
    int rc = tkv_buf_append_u8(out, (uint8_t)l->type);
    if (rc == 0)
        rc = tkv_codec_encode_compact_bytes(out, l->primary);
    if (rc == 0)
        rc = tkv_codec_encode_uvarint(out, l->start_ts);
    if (rc == 0)
        rc = tkv_codec_encode_uvarint(out, l->ttl);
    if (rc == 0 && l->has_short_value)
        rc = put_short_value(out, l->short_value);
    if (rc == 0 && l->for_update_ts != 0)
        rc = put_u64_field(out, PREFIX_FOR_UPDATE_TS, l->for_update_ts);
    if (rc == 0 && l->txn_size != 0)
        rc = put_u64_field(out, PREFIX_TXN_SIZE, l->txn_size);
    if (rc == 0 && l->min_commit_ts != 0)
        rc = put_u64_field(out, PREFIX_MIN_COMMIT_TS, l->min_commit_ts);
    if (rc == 0 && l->use_async_commit) {
        rc = tkv_buf_append_u8(out, PREFIX_ASYNC_COMMIT);
        if (rc == 0)
            rc = tkv_codec_encode_uvarint(out, l->n_secondaries);
        for (size_t i = 0; rc == 0 && i < l->n_secondaries; i++)
            rc = tkv_codec_encode_compact_bytes(out, l->secondaries[i]);
    }
    if (rc == 0 && l->n_rollback_ts > 0) {
        rc = tkv_buf_append_u8(out, PREFIX_ROLLBACK_TS);
        if (rc == 0)
            rc = tkv_codec_encode_uvarint(out, l->n_rollback_ts);
        for (size_t i = 0; rc == 0 && i < l->n_rollback_ts; i++)
            rc = tkv_codec_encode_u64(out, l->rollback_ts[i]);
    }
    if (rc == 0 && (l->last_change_ts != 0 || l->versions_to_last_change != 0))
        rc = put_last_change(out, l->last_change_ts, l->versions_to_last_change);
    if (rc == 0 && l->txn_source != 0) {
        rc = tkv_buf_append_u8(out, PREFIX_LOCK_TXN_SOURCE);
        if (rc == 0)
            rc = tkv_codec_encode_uvarint(out, l->txn_source);
    }
    if (rc == 0 && l->is_locked_with_conflict)
        rc = tkv_buf_append_u8(out, PREFIX_LOCK_CONFLICT);
    if (rc != 0)
        out->len = old;
    return rc;
}

/* Decodes the async-commit secondaries: a varint count then compact-bytes keys. The count
 * is bounded by the bytes left (each key takes at least one byte), so garbage cannot ask
 * for a huge allocation. */
static int decode_secondaries(tkv_slice *in, txn_lock *l)
{
    uint64_t n;
    if (tkv_codec_decode_uvarint(in, &n) != 0 || n > in->len)
        return TKV_ECORRUPT;
    tkv_free(l->secondaries);
    l->secondaries = NULL;
    l->n_secondaries = 0;
    if (n == 0)
        return 0;
    l->secondaries = tkv_malloc(n * sizeof(tkv_slice));
    if (l->secondaries == NULL)
        return -ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        if (tkv_codec_decode_compact_bytes(in, &l->secondaries[i]) != 0)
            return TKV_ECORRUPT;
        l->n_secondaries++;
    }
    return 0;
}

static int decode_rollback_ts(tkv_slice *in, txn_lock *l)
{
    uint64_t n;
    if (tkv_codec_decode_uvarint(in, &n) != 0 || n > in->len / 8)
        return TKV_ECORRUPT;
    tkv_free(l->rollback_ts);
    l->rollback_ts = NULL;
    l->n_rollback_ts = 0;
    if (n == 0)
        return 0;
    l->rollback_ts = tkv_malloc(n * sizeof(uint64_t));
    if (l->rollback_ts == NULL)
        return -ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        if (tkv_codec_decode_u64(in, &l->rollback_ts[i]) != 0)
            return TKV_ECORRUPT;
        l->n_rollback_ts++;
    }
    return 0;
}

static int decode_lock_fields(tkv_slice *in, txn_lock *l)
{
    while (in->len > 0) {
        uint8_t prefix = in->data[0];
        tkv_slice rest = tkv_slice_of(in->data + 1, in->len - 1);
        int rc = 0;
        switch (prefix) {
        case PREFIX_SHORT_VALUE:
            l->has_short_value = true;
            rc = get_short_value(&rest, &l->short_value);
            break;
        case PREFIX_FOR_UPDATE_TS:
            rc = tkv_codec_decode_u64(&rest, &l->for_update_ts);
            break;
        case PREFIX_TXN_SIZE:
            rc = tkv_codec_decode_u64(&rest, &l->txn_size);
            break;
        case PREFIX_MIN_COMMIT_TS:
            rc = tkv_codec_decode_u64(&rest, &l->min_commit_ts);
            break;
        case PREFIX_ASYNC_COMMIT:
            l->use_async_commit = true;
            rc = decode_secondaries(&rest, l);
            break;
        case PREFIX_ROLLBACK_TS:
            rc = decode_rollback_ts(&rest, l);
            break;
        case PREFIX_LAST_CHANGE:
            rc = tkv_codec_decode_u64(&rest, &l->last_change_ts);
            if (rc == 0)
                rc = tkv_codec_decode_uvarint(&rest, &l->versions_to_last_change);
            break;
        case PREFIX_LOCK_TXN_SOURCE:
            rc = tkv_codec_decode_uvarint(&rest, &l->txn_source);
            break;
        case PREFIX_LOCK_CONFLICT:
            l->is_locked_with_conflict = true;
            break;
        default:
            /* A field from a newer version: everything after it is unknown too. */
            return 0;
        }
        if (rc != 0)
            return rc == -ENOMEM ? rc : TKV_ECORRUPT;
        *in = rest;
    }
    return 0;
}

int txn_lock_decode(tkv_slice in, txn_lock *l)
{
    memset(l, 0, sizeof(*l));
    uint8_t type;
    if (get_u8(&in, &type) != 0 || !lock_type_valid(type))
        return TKV_ECORRUPT;
    l->type = (txn_lock_type)type;
    if (tkv_codec_decode_compact_bytes(&in, &l->primary) != 0 ||
        tkv_codec_decode_uvarint(&in, &l->start_ts) != 0)
        return TKV_ECORRUPT;
    if (in.len > 0 && tkv_codec_decode_uvarint(&in, &l->ttl) != 0)
        return TKV_ECORRUPT;
    int rc = decode_lock_fields(&in, l);
    if (rc != 0)
        txn_lock_deinit(l);
    return rc;
}

void txn_lock_holder_init(txn_lock_holder *h)
{
    tkv_buf_init(&h->raw);
    memset(&h->lock, 0, sizeof(h->lock));
}

void txn_lock_holder_deinit(txn_lock_holder *h)
{
    txn_lock_deinit(&h->lock);
    tkv_buf_deinit(&h->raw);
}

int txn_lock_holder_set(txn_lock_holder *h, tkv_slice bytes)
{
    txn_lock_deinit(&h->lock);
    int rc = tkv_buf_set(&h->raw, bytes.data, bytes.len);
    if (rc != 0)
        return rc;
    return txn_lock_decode(tkv_buf_slice(&h->raw), &h->lock);
}

/* ---- writes --------------------------------------------------------------------------- */

void txn_write_init(txn_write *w, txn_write_type type, uint64_t start_ts)
{
    memset(w, 0, sizeof(*w));
    w->type = type;
    w->start_ts = start_ts;
}

static const uint8_t protected_value[1] = {TXN_PROTECTED_ROLLBACK_VALUE};

void txn_write_init_rollback(txn_write *w, uint64_t start_ts, bool protected_rollback)
{
    txn_write_init(w, TXN_WRITE_ROLLBACK, start_ts);
    if (protected_rollback) {
        w->has_short_value = true;
        w->short_value = tkv_slice_of(protected_value, 1);
    }
}

bool txn_write_is_protected(const txn_write *w)
{
    return w->type == TXN_WRITE_ROLLBACK && w->has_short_value && w->short_value.len == 1 &&
           w->short_value.data[0] == TXN_PROTECTED_ROLLBACK_VALUE;
}

bool txn_write_check_gc_fence(const txn_write *w, uint64_t read_ts)
{
    return !(w->has_gc_fence && w->gc_fence != 0 && w->gc_fence <= read_ts);
}

static bool write_type_valid(uint8_t b)
{
    return b == TXN_WRITE_PUT || b == TXN_WRITE_DELETE || b == TXN_WRITE_LOCK ||
           b == TXN_WRITE_ROLLBACK;
}

int txn_write_encode(const txn_write *w, tkv_buf *out)
{
    size_t old = out->len;
    int rc = tkv_buf_append_u8(out, (uint8_t)w->type);
    if (rc == 0)
        rc = tkv_codec_encode_uvarint(out, w->start_ts);
    if (rc == 0 && w->has_short_value)
        rc = put_short_value(out, w->short_value);
    if (rc == 0 && w->has_overlapped_rollback)
        rc = tkv_buf_append_u8(out, FLAG_OVERLAPPED_ROLLBACK);
    if (rc == 0 && w->has_gc_fence)
        rc = put_u64_field(out, PREFIX_GC_FENCE, w->gc_fence);
    if (rc == 0 && (w->last_change_ts != 0 || w->versions_to_last_change != 0))
        rc = put_last_change(out, w->last_change_ts, w->versions_to_last_change);
    if (rc == 0 && w->txn_source != 0) {
        rc = tkv_buf_append_u8(out, PREFIX_WRITE_TXN_SOURCE);
        if (rc == 0)
            rc = tkv_codec_encode_uvarint(out, w->txn_source);
    }
    if (rc != 0)
        out->len = old;
    return rc;
}

int txn_write_decode(tkv_slice in, txn_write *w)
{
    memset(w, 0, sizeof(*w));
    uint8_t type;
    if (get_u8(&in, &type) != 0 || !write_type_valid(type))
        return TKV_ECORRUPT;
    w->type = (txn_write_type)type;
    if (tkv_codec_decode_uvarint(&in, &w->start_ts) != 0)
        return TKV_ECORRUPT;
    while (in.len > 0) {
        uint8_t prefix = in.data[0];
        tkv_slice rest = tkv_slice_of(in.data + 1, in.len - 1);
        int rc = 0;
        switch (prefix) {
        case PREFIX_SHORT_VALUE:
            w->has_short_value = true;
            rc = get_short_value(&rest, &w->short_value);
            break;
        case FLAG_OVERLAPPED_ROLLBACK:
            w->has_overlapped_rollback = true;
            break;
        case PREFIX_GC_FENCE:
            w->has_gc_fence = true;
            rc = tkv_codec_decode_u64(&rest, &w->gc_fence);
            break;
        case PREFIX_LAST_CHANGE:
            rc = tkv_codec_decode_u64(&rest, &w->last_change_ts);
            if (rc == 0)
                rc = tkv_codec_decode_uvarint(&rest, &w->versions_to_last_change);
            break;
        case PREFIX_WRITE_TXN_SOURCE:
            rc = tkv_codec_decode_uvarint(&rest, &w->txn_source);
            break;
        default:
            return 0; /* a newer field: stop, as TiKV does */
        }
        if (rc != 0)
            return TKV_ECORRUPT;
        in = rest;
    }
    return 0;
}

txn_write_type txn_write_type_of_lock(txn_lock_type type)
{
    switch (type) {
    case TXN_LOCK_PUT:
        return TXN_WRITE_PUT;
    case TXN_LOCK_DELETE:
        return TXN_WRITE_DELETE;
    case TXN_LOCK_LOCK:
    case TXN_LOCK_PESSIMISTIC:
        return TXN_WRITE_LOCK;
    }
    return TXN_WRITE_LOCK;
}

/* ---- keys ----------------------------------------------------------------------------- */

int txn_key_encode(tkv_buf *out, tkv_slice user_key)
{
    return tkv_keys_mvcc_encode(out, user_key);
}

int txn_key_versioned(tkv_buf *out, tkv_slice enc_key, uint64_t ts)
{
    size_t old = out->len;
    int rc = tkv_buf_append(out, enc_key.data, enc_key.len);
    if (rc == 0)
        rc = tkv_keys_append_ts(out, ts);
    if (rc != 0)
        out->len = old;
    return rc;
}

int txn_key_decode(tkv_slice enc_key, tkv_buf *out)
{
    tkv_slice in = enc_key;
    int rc = tkv_codec_decode_bytes(&in, out);
    if (rc == 0 && in.len != 0)
        return TKV_ECORRUPT;
    return rc;
}

int txn_key_split_ts(tkv_slice versioned, tkv_slice *enc_key, uint64_t *ts)
{
    return tkv_keys_split_ts(versioned, enc_key, ts);
}

uint64_t txn_key_hash(tkv_slice enc_key)
{
    /* FNV-1a, then a final avalanche so nearby keys spread over the whole range. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < enc_key.len; i++) {
        h ^= enc_key.data[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}
