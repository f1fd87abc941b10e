/*
 * fuzz_raw_methods.c: the raw KV methods (src/storage/raw/) on untrusted requests.
 *
 * The first byte picks a method of stor_raw_methods, the second advances the TTL clock; the
 * rest is that method's request message. Whatever decodes is served by a storage with TTL on
 * over stor_kv_local and an in-memory engine kept across inputs, so reads and scans meet what
 * earlier inputs wrote. The request's context is replaced by one naming the local region, so
 * requests get past the region checks into the methods. Every accepted request must be
 * answered exactly once, with a response of the method's type that packs and unpacks; a
 * refused one must never be answered.
 */
#include <string.h>

#include "fuzz/fuzz.h"
#include "storage/storage.h"

static eng_db *db;
static stor_kv *kv;
static stor *st;
static uint64_t now_s = 1000;

static uint64_t fuzz_clock(void *arg)
{
    (void)arg;
    return now_s;
}

static void setup(void)
{
    if (st != NULL)
        return;
    FUZZ_CHECK(eng_mem_open(NULL, &db) == 0);
    FUZZ_CHECK(stor_kv_local_new(db, NULL, &kv) == 0);
    stor_opts o;
    stor_opts_init(&o);
    o.latch_slots = 64;
    o.enable_ttl = true;
    o.max_key_bytes = 256;
    o.max_value_bytes = 4096;
    o.max_batch_keys = 64;
    o.max_scan_limit = 256;
    o.ttl_clock_s = fuzz_clock;
    FUZZ_CHECK(stor_new(kv, &o, &st) == 0);
}

typedef struct answer {
    int calls;
    const ProtobufCMessageDescriptor *want;
} answer;

static void on_done(void *ud, const ProtobufCMessage *resp)
{
    answer *a = ud;
    a->calls++;
    FUZZ_CHECK(resp->descriptor == a->want);
    size_t len = protobuf_c_message_get_packed_size(resp);
    uint8_t *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf != NULL);
    FUZZ_CHECK(protobuf_c_message_pack(resp, buf) == len);
    ProtobufCMessage *back = protobuf_c_message_unpack(resp->descriptor, NULL, len, buf);
    FUZZ_CHECK(back != NULL);
    protobuf_c_message_free_unpacked(back, NULL);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    setup();
    size_t n = 0;
    while (stor_raw_methods[n].name != NULL)
        n++;
    if (n == 0)
        return 0;
    const stor_method *m = &stor_raw_methods[data[0] % n];
    now_s += data[1] % 8;
    ProtobufCMessage *req = protobuf_c_message_unpack(m->req_desc, NULL, size - 2, data + 2);
    if (req == NULL)
        return 0;
    /* Route every request to the local region (the original context is put back before the
     * request is freed). */
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->req_desc, "context");
    FUZZ_CHECK(f != NULL);
    void *slot = (char *)req + f->offset;
    Kvrpcpb__Context *orig, *mine;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): copies a pointer */
    memcpy(&orig, slot, sizeof(orig));
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    ctx.region_id = 1;
    if (orig != NULL)
        ctx.api_version = orig->api_version;
    mine = &ctx;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): copies a pointer */
    memcpy(slot, &mine, sizeof(mine));
    answer a = {0, m->resp_desc};
    int rc = m->fn(st, req, on_done, &a);
    FUZZ_CHECK(rc <= 0);
    FUZZ_CHECK(rc == 0 ? a.calls == 1 : a.calls == 0);
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): copies a pointer */
    memcpy(slot, &orig, sizeof(orig));
    protobuf_c_message_free_unpacked(req, NULL);
    return 0;
}
