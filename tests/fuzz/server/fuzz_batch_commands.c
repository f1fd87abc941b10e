/*
 * fuzz_batch_commands.c: the hand-written BatchCommandsRequest decoder (src/server/
 * batch_wire.c) against protobuf-c's decoder of the same message.
 *
 * The input is an untrusted BatchCommandsRequest. The decoder may reject it; when it accepts,
 * every inner request must lie inside the input, and an Empty command's payload must decode or
 * be rejected without harm. Whenever protobuf-c accepts a canonical encoding, ours must too;
 * whenever both accept, they must read the same number of requests and the same ids in the
 * same order, and for every Request whose oneof protobuf-c recognizes (with nothing unknown
 * beside it), the same command number. Encoding an answer for every decoded id must give a
 * BatchCommandsResponse that protobuf-c decodes with the ids in order.
 */
#include <string.h>

#include "fuzz/fuzz.h"
#include "fuzz/fuzz_pb.h"
#include "server/srv_int.h"
#include "tikvpb.pb-c.h"

static bool inside(tkv_slice part, const uint8_t *data, size_t size)
{
    if (part.len == 0)
        return true;
    return part.data >= data && part.data + part.len <= data + size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srv_batch_req r;
    srv__batch_req_init(&r);
    int rc = srv__batch_decode(tkv_slice_of(data, size), &r);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (rc == 0) {
        for (size_t i = 0; i < r.n; i++) {
            FUZZ_CHECK(inside(r.inner[i], data, size));
            FUZZ_CHECK(r.cmds[i] >= 0);
            uint64_t test_id;
            if (r.cmds[i] == 255) {
                int e = srv__batch_decode_empty(r.inner[i], &test_id);
                FUZZ_CHECK(e == 0 || e == TKV_ECORRUPT);
            }
        }
    }

    Tikvpb__BatchCommandsRequest *pb = tikvpb__batch_commands_request__unpack(NULL, size, data);
    /* A canonical encoding must be accepted. (protobuf-c also accepts some non-conforming
     * inputs, such as tags over 32 bits, field 0 spelled in two bytes and varints over 64 bits,
     * which ours rejects as the protobuf spec says.) */
    if (pb != NULL && fuzz_pb_canonical(&pb->base, data, size))
        FUZZ_CHECK(rc == 0);
    if (pb != NULL && rc == 0) {
        /* Both accepted: they must read the same requests and ids. */
        FUZZ_CHECK(r.n == pb->n_requests);
        FUZZ_CHECK(r.n_ids == pb->n_request_ids);
        for (size_t i = 0; i < r.n_ids; i++)
            FUZZ_CHECK(r.ids[i] == pb->request_ids[i]);
        for (size_t i = 0; i < r.n; i++) {
            int known = (int)pb->requests[i]->cmd_case;
            /* protobuf-c keeps fields it does not know aside; ours answers them by number. */
            if (known != 0 && pb->requests[i]->base.n_unknown_fields == 0)
                FUZZ_CHECK(r.cmds[i] == known);
        }
    }
    if (pb != NULL)
        tikvpb__batch_commands_request__free_unpacked(pb, NULL);

    if (rc == 0) {
        tkv_buf out;
        tkv_buf_init(&out);
        int e = 0;
        for (size_t i = 0; e == 0 && i < r.n; i++) {
            tkv_buf inner;
            tkv_buf_init(&inner);
            e = srv__batch_encode_region_error(&inner, "fuzz");
            if (e == 0)
                e = srv__batch_encode_resp(&out, r.cmds[i] == 255 ? 0 : r.cmds[i],
                                           tkv_buf_slice(&inner));
            tkv_buf_deinit(&inner);
        }
        if (e == 0)
            e = srv__batch_encode_ids(&out, r.ids, r.n_ids);
        FUZZ_CHECK(e == 0);
        Tikvpb__BatchCommandsResponse *resp =
            tikvpb__batch_commands_response__unpack(NULL, out.len, out.data);
        FUZZ_CHECK(resp != NULL);
        FUZZ_CHECK(resp->n_responses == r.n && resp->n_request_ids == r.n_ids);
        for (size_t i = 0; i < r.n_ids; i++)
            FUZZ_CHECK(resp->request_ids[i] == r.ids[i]);
        tikvpb__batch_commands_response__free_unpacked(resp, NULL);
        tkv_buf_deinit(&out);
    }
    srv__batch_req_deinit(&r);
    return 0;
}
