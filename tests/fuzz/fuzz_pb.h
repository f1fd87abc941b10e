/*
 * fuzz_pb.h: protobuf helpers for the fuzz targets that compare a hand-written decoder with
 * protobuf-c's (fuzz_raft_conf_change.c, server/fuzz_batch_commands.c).
 * Dependencies: protobuf-c, fuzz.h.
 */
#ifndef TKV_FUZZ_PB_H
#define TKV_FUZZ_PB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "fuzz/fuzz.h"

/* Returns whether protobuf-c packs @pb back into exactly the @size bytes at @data: the input
 * was the canonical encoding, which any conforming decoder must accept. */
static inline bool fuzz_pb_canonical(const ProtobufCMessage *pb, const uint8_t *data, size_t size)
{
    size_t len = protobuf_c_message_get_packed_size(pb);
    if (len != size)
        return false;
    uint8_t *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf != NULL);
    protobuf_c_message_pack(pb, buf);
    bool same = len == 0 || memcmp(buf, data, len) == 0;
    free(buf);
    return same;
}

#endif /* TKV_FUZZ_PB_H */
