/*
 * fuzz_raft_conf_change.c: raft_conf_change_decode / raft_conf_change_encode (src/raft) on
 * untrusted bytes, the data of every RAFT_ENTRY_CONF_CHANGE entry a node applies.
 *
 * Each input is used twice. As untrusted bytes it goes to the decoder, which may refuse it
 * (TKV_ECORRUPT only); what it accepts has a node id, a known change type and a context inside
 * the input, encodes to bytes that decode to the same change, and agrees with protobuf-c's
 * decoder of eraftpb.ConfChange on every field both read. Whenever the input is a canonical
 * encoding of known fields that protobuf-c accepts with a node id and a known type, ours must
 * accept it too.
 * As a recipe it builds a change (type, node id and context from the input) whose encoding
 * decodes, with both decoders, to exactly that change.
 */
#include <string.h>

#include "eraftpb.pb-c.h"
#include "fuzz/fuzz.h"
#include "fuzz/fuzz_pb.h"
#include "raft/raft.h"

static bool cc_eq(const raft_conf_change *a, const raft_conf_change *b)
{
    return a->change_type == b->change_type && a->node_id == b->node_id &&
           tkv_slice_eq(a->context, b->context);
}

/* Encodes @cc, decodes it again with both decoders and checks both give @cc back. */
static void check_round_trip(const raft_conf_change *cc)
{
    tkv_buf b;
    tkv_buf_init(&b);
    FUZZ_CHECK(raft_conf_change_encode(cc, &b) == 0);
    raft_conf_change back;
    FUZZ_CHECK(raft_conf_change_decode(tkv_buf_slice(&b), &back) == 0);
    FUZZ_CHECK(cc_eq(cc, &back));
    /* Stable: the decoded change encodes to the same bytes. */
    tkv_buf again;
    tkv_buf_init(&again);
    FUZZ_CHECK(raft_conf_change_encode(&back, &again) == 0);
    FUZZ_CHECK(tkv_slice_eq(tkv_buf_slice(&b), tkv_buf_slice(&again)));
    tkv_buf_deinit(&again);
    Eraftpb__ConfChange *pb = eraftpb__conf_change__unpack(NULL, b.len, b.data);
    FUZZ_CHECK(pb != NULL);
    FUZZ_CHECK((uint64_t)pb->change_type == (uint64_t)cc->change_type);
    FUZZ_CHECK(pb->node_id == cc->node_id);
    FUZZ_CHECK(pb->context.len == cc->context.len);
    FUZZ_CHECK(cc->context.len == 0 ||
               memcmp(pb->context.data, cc->context.data, cc->context.len) == 0);
    eraftpb__conf_change__free_unpacked(pb, NULL);
    tkv_buf_deinit(&b);
}

static void check_bytes(const uint8_t *data, size_t size)
{
    raft_conf_change cc;
    int rc = raft_conf_change_decode(tkv_slice_of(data, size), &cc);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (rc == 0) {
        FUZZ_CHECK(cc.node_id != RAFT_NONE);
        FUZZ_CHECK((unsigned)cc.change_type <= RAFT_CONF_ADD_LEARNER_NODE);
        FUZZ_CHECK(cc.context.len == 0 ||
                   (cc.context.data >= data && cc.context.data + cc.context.len <= data + size));
        check_round_trip(&cc);
    }
    Eraftpb__ConfChange *pb = eraftpb__conf_change__unpack(NULL, size, data);
    if (pb == NULL)
        return;
    bool known = pb->node_id != 0 && (unsigned)pb->change_type <= RAFT_CONF_ADD_LEARNER_NODE;
    /* protobuf-c keeps unknown fields verbatim (varints over 64 bits included, which the
     * protobuf spec forbids and ours refuses), so only inputs without them count. */
    if (pb->base.n_unknown_fields == 0 && fuzz_pb_canonical(&pb->base, data, size))
        FUZZ_CHECK(rc == 0 || !known);
    if (rc == 0 && pb->base.n_unknown_fields == 0) {
        /* Both accepted: the same change (the last occurrence of a field wins in both). */
        FUZZ_CHECK((uint64_t)pb->change_type == (uint64_t)cc.change_type);
        FUZZ_CHECK(pb->node_id == cc.node_id);
        FUZZ_CHECK(pb->context.len == cc.context.len);
        FUZZ_CHECK(cc.context.len == 0 ||
                   memcmp(pb->context.data, cc.context.data, cc.context.len) == 0);
    }
    eraftpb__conf_change__free_unpacked(pb, NULL);
}

static void check_recipe(const uint8_t *data, size_t size)
{
    if (size < 9)
        return;
    raft_conf_change cc;
    cc.change_type = (raft_conf_change_type)(data[0] % 3);
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = id << 8 | data[1 + i];
    cc.node_id = id ? id : 1;
    cc.context = tkv_slice_of(data + 9, size - 9);
    check_round_trip(&cc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_bytes(data, size);
    check_recipe(data, size);
    return 0;
}
