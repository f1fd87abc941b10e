/*
 * codec.h: TiKV's byte and number encodings.
 *
 * Owns: nothing; pure functions over caller buffers.
 * Encodings (the same bytes TiKV writes, so reasoning and tools carry over):
 *   - memcomparable bytes: the input in groups of 8 bytes, the last group padded with 0x00,
 *     each group followed by the marker 0xFF - pad_count (so 0xFF means "more groups follow").
 *     An empty input encodes as 8 zero bytes and 0xF7. Encoded strings compare bytewise in
 *     the same order as the raw strings, and no encoding is a prefix of another.
 *   - descending bytes: the ascending encoding with every byte inverted (reverse order).
 *   - u64: 8 bytes big-endian (ascending); descending is the big-endian of ~v.
 *   - i64: big-endian with the sign bit flipped, so negative numbers sort first.
 *   - varint: protobuf's base-128 unsigned varint; signed varints use zigzag.
 *   - compact bytes: a zigzag varint length then the bytes (TiKV's encode_compact_bytes).
 * Threads: all functions are reentrant.
 * Errors: encoders return -ENOMEM (the output buffer keeps what it had); decoders return
 * TKV_ECORRUPT on malformed or truncated input and never read past the input.
 * Decoders take a tkv_slice *in, consume what they decode and advance it.
 * Dependencies: base.h.
 */
#ifndef TKV_CODEC_H
#define TKV_CODEC_H

#include "base/base.h"

#define TKV_ENC_GROUP_SIZE 8
#define TKV_ENC_MARKER     0xFF
#define TKV_ENC_PAD        0x00

/* Returns the length of the memcomparable encoding of @len raw bytes. */
size_t tkv_codec_encoded_bytes_len(size_t len);

/* Appends the ascending memcomparable encoding of @raw to @out. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_codec_encode_bytes(tkv_buf *out, tkv_slice raw);
/* Appends the descending memcomparable encoding of @raw to @out. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_codec_encode_bytes_desc(tkv_buf *out, tkv_slice raw);
/* Decodes one ascending memcomparable string from @in into @out (replacing its contents) and
 * advances @in past it. Errors: TKV_ECORRUPT (bad marker, non-zero padding, truncated input;
 * @in is then unchanged), -ENOMEM. */
TKV_MUST_USE int tkv_codec_decode_bytes(tkv_slice *in, tkv_buf *out);
/* Like tkv_codec_decode_bytes for the descending encoding. */
TKV_MUST_USE int tkv_codec_decode_bytes_desc(tkv_slice *in, tkv_buf *out);
/* Returns the length of the ascending encoded string at the start of @in without decoding it,
 * or TKV_ECORRUPT. */
TKV_MUST_USE int tkv_codec_encoded_prefix_len(tkv_slice in, size_t *len);

/* Writes @v big-endian into @dst[0..8). */
void tkv_codec_put_u64_be(uint8_t *dst, uint64_t v);
/* Returns the big-endian u64 at @src[0..8). */
uint64_t tkv_codec_get_u64_be(const uint8_t *src);

/* Appends @v as 8 ascending (big-endian) bytes. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_codec_encode_u64(tkv_buf *out, uint64_t v);
/* Appends @v as 8 descending bytes (big-endian of ~v). Errors: -ENOMEM. */
TKV_MUST_USE int tkv_codec_encode_u64_desc(tkv_buf *out, uint64_t v);
/* Appends @v as 8 ascending bytes with the sign bit flipped. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_codec_encode_i64(tkv_buf *out, int64_t v);
/* Decoders for the three fixed-width forms. Errors: TKV_ECORRUPT when fewer than 8 bytes. */
TKV_MUST_USE int tkv_codec_decode_u64(tkv_slice *in, uint64_t *v);
TKV_MUST_USE int tkv_codec_decode_u64_desc(tkv_slice *in, uint64_t *v);
TKV_MUST_USE int tkv_codec_decode_i64(tkv_slice *in, int64_t *v);

/* Longest varint encoding of a u64. */
#define TKV_VARINT_MAX_LEN 10

/* Writes the unsigned varint of @v to @dst (room for TKV_VARINT_MAX_LEN) and returns its
 * length. */
size_t tkv_codec_put_uvarint(uint8_t *dst, uint64_t v);
/* Appends the unsigned varint of @v. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_codec_encode_uvarint(tkv_buf *out, uint64_t v);
/* Appends the zigzag varint of @v. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_codec_encode_varint(tkv_buf *out, int64_t v);
/* Decodes an unsigned varint. Errors: TKV_ECORRUPT (truncated, longer than 10 bytes, or
 * overflowing 64 bits). */
TKV_MUST_USE int tkv_codec_decode_uvarint(tkv_slice *in, uint64_t *v);
/* Decodes a zigzag varint. Errors: TKV_ECORRUPT. */
TKV_MUST_USE int tkv_codec_decode_varint(tkv_slice *in, int64_t *v);

/* Appends a compact-bytes field: zigzag varint length, then @raw. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_codec_encode_compact_bytes(tkv_buf *out, tkv_slice raw);
/* Decodes a compact-bytes field into a slice borrowing from @in's bytes.
 * Errors: TKV_ECORRUPT (negative or oversized length). */
TKV_MUST_USE int tkv_codec_decode_compact_bytes(tkv_slice *in, tkv_slice *raw);

/* Returns the value of the hex digit @c (0-9, a-f, A-F), or -1. */
int tkv_codec_hex_digit(int c);

#endif /* TKV_CODEC_H */
