/*
 * eng_mem_sst.c: eng_mem's SST files, so that raft snapshots work the same on both engines.
 *
 * File layout (all ours; never trusted when read back):
 *   magic "TKVMSST1" (8 bytes)
 *   records: tag (1 put, 2 delete), varint key length, key, [varint value length, value]
 *   tag 0, entry count (8 bytes big-endian)
 *   CRC-32C of every byte before it (4 bytes big-endian)
 * Keys are strictly increasing. Ingesting checks all of this and returns TKV_ECORRUPT for a
 * file that does not hold, then applies the entries as one write batch.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/codec.h"
#include "engine/eng_int.h"

static const uint8_t sst_magic[8] = {'T', 'K', 'V', 'M', 'S', 'S', 'T', '1'};

enum { REC_END = 0, REC_PUT = 1, REC_DEL = 2 };

#define SST_TRAILER_LEN 13 /* end tag, count, CRC */

/* ---- CRC-32C (Castagnoli, reflected) ---------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (n-- > 0)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- writer ----------------------------------------------------------------------------- */

typedef struct mem_sst {
    eng_sst_writer base;
    FILE *f;
    uint32_t crc;
    uint64_t bytes;
} mem_sst;

static mem_sst *S(eng_sst_writer *w)
{
    return (mem_sst *)w;
}

static int sst_out(mem_sst *s, const void *p, size_t n)
{
    if (n > 0 && fwrite(p, 1, n, s->f) != n)
        return errno != 0 ? -errno : -EIO;
    s->crc = crc32c(s->crc, p, n);
    s->bytes += n;
    return 0;
}

int eng__mem_sst_writer_new(eng_db *db, const char *path, eng_sst_writer **out)
{
    mem_sst *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        return eng__errorf(db, -ENOMEM, "sst writer: out of memory");
    s->f = fopen(path, "wb");
    int rc = s->f == NULL ? -errno : sst_out(s, sst_magic, sizeof(sst_magic));
    if (rc != 0) {
        if (s->f != NULL)
            fclose(s->f);
        tkv_free(s);
        return eng__errorf(db, rc, "sst writer: create %s: %s", path, tkv_strerror(rc));
    }
    *out = &s->base;
    return 0;
}

static int sst_record(eng_sst_writer *w, uint8_t tag, tkv_slice key, tkv_slice value)
{
    mem_sst *s = S(w);
    uint8_t hdr[1 + TKV_VARINT_MAX_LEN];
    hdr[0] = tag;
    size_t n = 1 + tkv_codec_put_uvarint(hdr + 1, key.len);
    int rc = sst_out(s, hdr, n);
    if (rc == 0)
        rc = sst_out(s, key.data, key.len);
    if (rc == 0 && tag == REC_PUT) {
        n = tkv_codec_put_uvarint(hdr, value.len);
        rc = sst_out(s, hdr, n);
        if (rc == 0)
            rc = sst_out(s, value.data, value.len);
    }
    if (rc != 0)
        return eng__sst_fail(w, rc, "sst writer %s: write: %s", w->path, tkv_strerror(rc));
    return 0;
}

int eng__mem_sst_put(eng_sst_writer *w, tkv_slice key, tkv_slice value)
{
    return sst_record(w, REC_PUT, key, value);
}

int eng__mem_sst_delete(eng_sst_writer *w, tkv_slice key)
{
    return sst_record(w, REC_DEL, key, tkv_slice_of(NULL, 0));
}

int eng__mem_sst_finish(eng_sst_writer *w, uint64_t *file_bytes)
{
    mem_sst *s = S(w);
    uint8_t tail[9];
    tail[0] = REC_END;
    tkv_codec_put_u64_be(tail + 1, w->count);
    int rc = sst_out(s, tail, sizeof(tail));
    if (rc == 0) {
        uint8_t crc[4] = {(uint8_t)(s->crc >> 24), (uint8_t)(s->crc >> 16), (uint8_t)(s->crc >> 8),
                          (uint8_t)s->crc};
        if (fwrite(crc, 1, sizeof(crc), s->f) != sizeof(crc))
            rc = errno != 0 ? -errno : -EIO;
    }
    /* Like RocksDB's writer, the file is durable when finish returns. */
    if (rc == 0 && (fflush(s->f) != 0 || fsync(fileno(s->f)) != 0))
        rc = -errno;
    int closed = fclose(s->f);
    s->f = NULL;
    if (rc == 0 && closed != 0)
        rc = -errno;
    if (rc != 0)
        return eng__sst_fail(w, rc, "sst writer %s: finish: %s", w->path, tkv_strerror(rc));
    *file_bytes = s->bytes + 4;
    return 0;
}

void eng__mem_sst_free(eng_sst_writer *w)
{
    if (S(w)->f != NULL)
        fclose(S(w)->f);
    tkv_free(w);
}

/* ---- ingest ----------------------------------------------------------------------------- */

/* Reads the whole file at @path into *@data. */
static int read_file(eng_db *db, const char *path, uint8_t **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        return eng__errorf(db, rc, "ingest %s: %s", path, tkv_strerror(rc));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return eng__errorf(db, rc, "ingest %s: %s", path, tkv_strerror(rc));
    }
    if ((uint64_t)st.st_size > SIZE_MAX / 2) {
        close(fd);
        return eng__errorf(db, -ENOMEM, "ingest %s: file too large", path);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = tkv_malloc(size);
    if (buf == NULL) {
        close(fd);
        return eng__errorf(db, -ENOMEM, "ingest %s: out of memory", path);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int rc = r < 0 ? -errno : TKV_ECORRUPT;
            close(fd);
            tkv_free(buf);
            return eng__errorf(db, rc, "ingest %s: %s", path,
                               r < 0 ? tkv_strerror(rc) : "file shrank while read");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *len = size;
    return 0;
}

static int corrupt(eng_db *db, const char *path, const char *why)
{
    return eng__errorf(db, TKV_ECORRUPT, "ingest %s: %s", path, why);
}

static int take_field(tkv_slice *in, tkv_slice *out)
{
    uint64_t len = 0;
    if (tkv_codec_decode_uvarint(in, &len) != 0 || len > in->len)
        return TKV_ECORRUPT;
    *out = tkv_slice_of(in->data, (size_t)len);
    in->data += len;
    in->len -= (size_t)len;
    return 0;
}

/* Checks the file image @data and adds its entries to @b. */
static int parse_file(eng_db *db, const char *path, const uint8_t *data, size_t len, eng_cf cf,
                      eng_batch *b)
{
    if (len < sizeof(sst_magic) + SST_TRAILER_LEN ||
        memcmp(data, sst_magic, sizeof(sst_magic)) != 0)
        return corrupt(db, path, "not an eng_mem SST file (bad magic)");
    const uint8_t *c = data + len - 4;
    uint32_t want = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
    if (crc32c(0, data, len - 4) != want)
        return corrupt(db, path, "checksum mismatch");
    tkv_slice in = tkv_slice_of(data + sizeof(sst_magic), len - sizeof(sst_magic) - 4);
    tkv_slice prev = tkv_slice_of(NULL, 0);
    uint64_t count = 0;
    for (;;) {
        if (in.len == 0)
            return corrupt(db, path, "truncated");
        uint8_t tag = in.data[0];
        in.data++;
        in.len--;
        if (tag == REC_END) {
            if (in.len != 8 || tkv_codec_get_u64_be(in.data) != count)
                return corrupt(db, path, "bad trailer");
            break;
        }
        if (tag != REC_PUT && tag != REC_DEL)
            return corrupt(db, path, "unknown record type");
        tkv_slice key, value = tkv_slice_of(NULL, 0);
        if (take_field(&in, &key) != 0 || (tag == REC_PUT && take_field(&in, &value) != 0))
            return corrupt(db, path, "truncated record");
        if (count > 0 && tkv_slice_cmp(key, prev) <= 0)
            return corrupt(db, path, "keys out of order");
        int rc = tag == REC_PUT ? eng_batch_put(b, cf, key, value) : eng_batch_delete(b, cf, key);
        if (rc != 0)
            return eng__errorf(db, rc, "ingest %s: out of memory", path);
        prev = key;
        count++;
    }
    if (count == 0)
        return corrupt(db, path, "no entries");
    return 0;
}

int eng__mem_ingest(eng_db *db, eng_cf cf, const char *const *paths, size_t n)
{
    eng_batch *b = NULL;
    int rc = eng_batch_new(db, &b);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        rc = read_file(db, paths[i], &data, &len);
        if (rc == 0)
            rc = parse_file(db, paths[i], data, len, cf, b);
        tkv_free(data);
    }
    /* One batch: the files' keys appear together, at one new sequence number. */
    if (rc == 0)
        rc = eng_write(db, b, false);
    eng_batch_free(b);
    if (rc != 0)
        return rc;
    /* The files now live in the engine, as with RocksDB's move_files. */
    for (size_t i = 0; i < n; i++)
        TKV_IGNORE(unlink(paths[i]) != 0);
    return 0;
}
