/*
 * raw_checksum.c: RawChecksum (TiKV's Storage::raw_checksum over RawStore::raw_checksum_ranges
 * and coprocessor::checksum_crc64_xor).
 *
 * For every live pair of the default column family in the ranges (each clipped to the
 * region): a fresh CRC-64/XZ digest over the user key then the user value (with TTL on, the
 * value without its expiry suffix), XORed into the checksum; total_kvs counts the pairs and
 * total_bytes adds key and value lengths. XOR makes the result independent of order, so a
 * client XORs the answers of all regions together.
 */
#include <pthread.h>

#include "storage/raw/raw_int.h"

static const raw_cmd RAW_CHECKSUM = {"raw_checksum", &kvrpcpb__raw_checksum_response__descriptor};

/* ECMA-182's polynomial, bit-reflected. */
#define CRC64_ECMA_REFLECTED 0xC96C5795D7870F42ULL

static uint64_t crc64_table[8][256];
static pthread_once_t crc64_once = PTHREAD_ONCE_INIT;

static void crc64_init(void)
{
    for (int i = 0; i < 256; i++) {
        uint64_t c = (uint64_t)i;
        for (int b = 0; b < 8; b++)
            c = (c & 1) ? (c >> 1) ^ CRC64_ECMA_REFLECTED : c >> 1;
        crc64_table[0][i] = c;
    }
    /* Slicing-by-8: table[k][i] is the CRC of byte i followed by k zero bytes. */
    for (int i = 0; i < 256; i++) {
        uint64_t c = crc64_table[0][i];
        for (int k = 1; k < 8; k++) {
            c = crc64_table[0][c & 0xff] ^ (c >> 8);
            crc64_table[k][i] = c;
        }
    }
}

uint64_t stor__crc64(uint64_t crc, const void *p, size_t n)
{
    pthread_once(&crc64_once, crc64_init);
    const uint8_t *b = p;
    crc = ~crc;
    while (n >= 8) {
        uint64_t x = crc ^ ((uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
                            (uint64_t)b[3] << 24 | (uint64_t)b[4] << 32 | (uint64_t)b[5] << 40 |
                            (uint64_t)b[6] << 48 | (uint64_t)b[7] << 56);
        crc = crc64_table[7][x & 0xff] ^ crc64_table[6][(x >> 8) & 0xff] ^
              crc64_table[5][(x >> 16) & 0xff] ^ crc64_table[4][(x >> 24) & 0xff] ^
              crc64_table[3][(x >> 32) & 0xff] ^ crc64_table[2][(x >> 40) & 0xff] ^
              crc64_table[1][(x >> 48) & 0xff] ^ crc64_table[0][x >> 56];
        b += 8;
        n -= 8;
    }
    while (n-- > 0)
        crc = crc64_table[0][(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

typedef struct checksum_acc {
    uint64_t checksum, kvs, bytes;
} checksum_acc;

static int checksum_range(raw_op *op, stor_snap *snap, tkv_slice start, tkv_slice end,
                          checksum_acc *acc)
{
    stor_iter *it;
    int rc = stor_snap_iter_new(snap, op->cf, start, end, &it);
    if (rc != 0)
        return rc;
    for (bool ok = stor_iter_seek_to_first(it); ok; ok = stor_iter_next(it)) {
        tkv_slice key = stor_iter_key(it), user;
        uint64_t expire;
        bool live;
        rc = stor__raw_decode_value(op->s, stor_iter_value(it), op->now_s, &user, &expire, &live);
        if (rc != 0)
            break;
        if (!live)
            continue;
        uint64_t crc = stor__crc64(0, key.data, key.len);
        acc->checksum ^= stor__crc64(crc, user.data, user.len);
        acc->kvs++;
        acc->bytes += key.len + user.len;
    }
    if (rc == 0)
        rc = stor_iter_status(it);
    stor_iter_free(it);
    return rc;
}

static void checksum_on_snap(raw_op *op, stor_snap *snap)
{
    const Kvrpcpb__RawChecksumRequest *req = op->req;
    for (size_t i = 0; i < req->n_ranges; i++) {
        tkv_slice start = raw_bin(req->ranges[i]->start_key);
        if (!stor__raw_scan_seekable(snap, start)) {
            stor__raw_reply_not_in_region(op, snap, start);
            return;
        }
    }
    checksum_acc acc = {0};
    int rc = 0;
    for (size_t i = 0; i < req->n_ranges && rc == 0; i++)
        rc = checksum_range(op, snap, raw_bin(req->ranges[i]->start_key),
                            raw_bin(req->ranges[i]->end_key), &acc);
    stor_snap_release(snap);
    if (rc != 0) {
        stor__raw_reply_read_error(op, rc);
        return;
    }
    Kvrpcpb__RawChecksumResponse resp = KVRPCPB__RAW_CHECKSUM_RESPONSE__INIT;
    resp.checksum = acc.checksum;
    resp.total_kvs = acc.kvs;
    resp.total_bytes = acc.bytes;
    stor__raw_reply(op, &resp.base);
}

int stor__raw_checksum(stor *s, const ProtobufCMessage *m, stor_done_cb cb, void *ud)
{
    const Kvrpcpb__RawChecksumRequest *req = (const Kvrpcpb__RawChecksumRequest *)m;
    raw_op *op = stor__raw_op_new(s, &RAW_CHECKSUM, req->context, req, cb, ud);
    if (op == NULL)
        return -ENOMEM;
    if (req->algorithm != KVRPCPB__CHECKSUM_ALGORITHM__Crc64_Xor) {
        stor__raw_reply_error(op, "unknown checksum algorithm %d", (int)req->algorithm);
        return 0;
    }
    if (!stor__raw_check_api(op, req->context) || !stor__raw_check_batch(op, req->n_ranges))
        return 0;
    for (size_t i = 0; i < req->n_ranges; i++) {
        if (!stor__raw_check_key(op, req->ranges[i]->start_key) ||
            !stor__raw_check_key(op, req->ranges[i]->end_key))
            return 0;
    }
    /* TiKV checksums the default column family whatever the client uses. */
    op->cf = ENG_CF_DEFAULT;
    return stor__raw_run_read(op, checksum_on_snap);
}
