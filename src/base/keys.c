/*
 * keys.c: TiKV's engine key layout (see keys.h).
 */
#include "base/keys.h"

#include "base/codec.h"

const uint8_t tkv_keys_store_ident[2] = {TKV_KEYS_LOCAL_PREFIX, 0x01};
const uint8_t tkv_keys_prepare_bootstrap[2] = {TKV_KEYS_LOCAL_PREFIX, 0x02};

int tkv_keys_data_key(tkv_buf *out, tkv_slice key)
{
    int rc = tkv_buf_reserve(out, key.len + 1);
    if (rc != 0)
        return rc;
    out->data[out->len++] = TKV_KEYS_DATA_PREFIX;
    if (key.len > 0)
        memcpy(out->data + out->len, key.data, key.len);
    out->len += key.len;
    return 0;
}

int tkv_keys_data_bound(tkv_buf *out, tkv_slice key, bool is_end)
{
    if (is_end && key.len == 0)
        return tkv_buf_append_u8(out, TKV_KEYS_DATA_PREFIX + 1);
    return tkv_keys_data_key(out, key);
}

bool tkv_keys_is_data_key(tkv_slice key)
{
    return key.len > 0 && key.data[0] == TKV_KEYS_DATA_PREFIX;
}

int tkv_keys_origin_key(tkv_slice key, tkv_slice *origin)
{
    if (!tkv_keys_is_data_key(key))
        return TKV_ECORRUPT;
    *origin = tkv_slice_of(key.data + 1, key.len - 1);
    return 0;
}

static void region_key(uint8_t *dst, uint8_t kind, uint64_t region_id)
{
    dst[0] = TKV_KEYS_LOCAL_PREFIX;
    dst[1] = kind;
    tkv_codec_put_u64_be(dst + 2, region_id);
}

void tkv_keys_region_raft_prefix(uint8_t dst[10], uint64_t region_id)
{
    region_key(dst, TKV_KEYS_REGION_RAFT_PREFIX, region_id);
}

void tkv_keys_raft_log_key(uint8_t dst[TKV_KEYS_RAFT_LOG_KEY_LEN], uint64_t region_id,
                           uint64_t index)
{
    region_key(dst, TKV_KEYS_REGION_RAFT_PREFIX, region_id);
    dst[10] = TKV_KEYS_RAFT_LOG_SUFFIX;
    tkv_codec_put_u64_be(dst + 11, index);
}

int tkv_keys_parse_raft_log_key(tkv_slice key, uint64_t *region_id, uint64_t *index)
{
    if (key.len != TKV_KEYS_RAFT_LOG_KEY_LEN || key.data[0] != TKV_KEYS_LOCAL_PREFIX ||
        key.data[1] != TKV_KEYS_REGION_RAFT_PREFIX || key.data[10] != TKV_KEYS_RAFT_LOG_SUFFIX)
        return TKV_ECORRUPT;
    *region_id = tkv_codec_get_u64_be(key.data + 2);
    *index = tkv_codec_get_u64_be(key.data + 11);
    return 0;
}

void tkv_keys_raft_state_key(uint8_t dst[11], uint64_t region_id)
{
    region_key(dst, TKV_KEYS_REGION_RAFT_PREFIX, region_id);
    dst[10] = TKV_KEYS_RAFT_STATE_SUFFIX;
}

void tkv_keys_apply_state_key(uint8_t dst[11], uint64_t region_id)
{
    region_key(dst, TKV_KEYS_REGION_RAFT_PREFIX, region_id);
    dst[10] = TKV_KEYS_APPLY_STATE_SUFFIX;
}

void tkv_keys_region_state_key(uint8_t dst[11], uint64_t region_id)
{
    region_key(dst, TKV_KEYS_REGION_META_PREFIX, region_id);
    dst[10] = TKV_KEYS_REGION_STATE_SUFFIX;
}

int tkv_keys_mvcc_encode(tkv_buf *out, tkv_slice user_key)
{
    return tkv_codec_encode_bytes(out, user_key);
}

int tkv_keys_append_ts(tkv_buf *out, uint64_t ts)
{
    return tkv_codec_encode_u64_desc(out, ts);
}

int tkv_keys_split_ts(tkv_slice key, tkv_slice *without_ts, uint64_t *ts)
{
    if (key.len < 8)
        return TKV_ECORRUPT;
    *without_ts = tkv_slice_of(key.data, key.len - 8);
    *ts = ~tkv_codec_get_u64_be(key.data + key.len - 8);
    return 0;
}
