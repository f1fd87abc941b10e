/*
 * keys.h: TiKV's key layout in the kv and raft engines.
 *
 * Owns: nothing; builds keys into caller buffers.
 * Layout (TiKV's `keys` crate, so the same reasoning carries over):
 *   - data keys: 'z' + key. Everything a user or a transaction stores lives under 'z'.
 *   - local keys: 0x01 prefix.
 *       store ident          0x01 0x01
 *       prepare bootstrap    0x01 0x02
 *       raft log entry       0x01 0x02 region_id(8, BE) 0x01 index(8, BE)
 *       raft local state     0x01 0x02 region_id(8, BE) 0x02
 *       raft apply state     0x01 0x02 region_id(8, BE) 0x03
 *       region local state   0x01 0x03 region_id(8, BE) 0x01
 *   - MVCC keys: the memcomparable encoding of the user key, then for the write and default
 *     column families the timestamp as 8 descending bytes (newer versions sort first).
 * Threads: reentrant. Errors: -ENOMEM from the builders, TKV_ECORRUPT from parsers.
 * Dependencies: base.h, codec.h.
 */
#ifndef TKV_KEYS_H
#define TKV_KEYS_H

#include "base/base.h"

#define TKV_KEYS_DATA_PREFIX         'z'
#define TKV_KEYS_LOCAL_PREFIX        0x01
#define TKV_KEYS_REGION_RAFT_PREFIX  0x02
#define TKV_KEYS_REGION_META_PREFIX  0x03
#define TKV_KEYS_RAFT_LOG_SUFFIX     0x01
#define TKV_KEYS_RAFT_STATE_SUFFIX   0x02
#define TKV_KEYS_APPLY_STATE_SUFFIX  0x03
#define TKV_KEYS_REGION_STATE_SUFFIX 0x01

/* Length of a raft log key. */
#define TKV_KEYS_RAFT_LOG_KEY_LEN 19

/* The store ident key (2 bytes). */
extern const uint8_t tkv_keys_store_ident[2];
/* The prepare-bootstrap key (2 bytes). */
extern const uint8_t tkv_keys_prepare_bootstrap[2];

/* Appends 'z' + @key to @out. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_keys_data_key(tkv_buf *out, tkv_slice key);
/* Returns the data key bound for a region boundary: 'z' + @key, or the key just past every
 * data key ('z' + 1 = "{") when @key is empty and @is_end is true. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_keys_data_bound(tkv_buf *out, tkv_slice key, bool is_end);
/* Returns true when @key is a data key (starts with 'z'). */
bool tkv_keys_is_data_key(tkv_slice key);
/* Returns @key without the 'z' prefix. Errors: TKV_ECORRUPT when it is not a data key. */
TKV_MUST_USE int tkv_keys_origin_key(tkv_slice key, tkv_slice *origin);

/* Writes the raft log key of (@region_id, @index) into @dst (TKV_KEYS_RAFT_LOG_KEY_LEN). */
void tkv_keys_raft_log_key(uint8_t dst[TKV_KEYS_RAFT_LOG_KEY_LEN], uint64_t region_id,
                           uint64_t index);
/* Parses a raft log key. Errors: TKV_ECORRUPT. */
TKV_MUST_USE int tkv_keys_parse_raft_log_key(tkv_slice key, uint64_t *region_id, uint64_t *index);
/* Writes the 11-byte raft state, apply state or region state key of @region_id. */
void tkv_keys_raft_state_key(uint8_t dst[11], uint64_t region_id);
void tkv_keys_apply_state_key(uint8_t dst[11], uint64_t region_id);
void tkv_keys_region_state_key(uint8_t dst[11], uint64_t region_id);
/* Writes the 10-byte prefix shared by every raft-engine key of @region_id (log, raft state,
 * apply state): 0x01 0x02 region_id. */
void tkv_keys_region_raft_prefix(uint8_t dst[10], uint64_t region_id);

/* Appends the MVCC key: the memcomparable encoding of @user_key. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_keys_mvcc_encode(tkv_buf *out, tkv_slice user_key);
/* Appends the 8 descending bytes of @ts (to an encoded key). Errors: -ENOMEM. */
TKV_MUST_USE int tkv_keys_append_ts(tkv_buf *out, uint64_t ts);
/* Splits an encoded key with a timestamp into (@key without ts, @ts).
 * Errors: TKV_ECORRUPT when shorter than 8 bytes. */
TKV_MUST_USE int tkv_keys_split_ts(tkv_slice key, tkv_slice *without_ts, uint64_t *ts);

#endif /* TKV_KEYS_H */
