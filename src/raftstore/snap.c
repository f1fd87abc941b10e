/*
 * snap.c: region snapshot files.
 *
 * A snapshot is a kv-engine snapshot of the region's data column families taken by the apply
 * thread at its applied index, serialized by the worker into one file with a section per
 * column family (default, lock, write), each a sequence of records
 *     cf (1 byte) | key length (uvarint) | key (without the 'z' prefix) | value length | value
 * The Raft message carries raft_serverpb.RaftSnapshotData: the region, the total size, the
 * format version, and per section its size and CRC-32 (SnapshotMeta.cf_files, as TiKV lists
 * its per-CF SST files), so the receiver checks the file before the peer may use it. The
 * file travels over /tikvpb.Tikv/Snapshot in chunks (snap_io.c) and is applied in one kv
 * write batch together with the region and apply states (apply.c).
 * On disk the files go through the store's key dictionary (sec_file): encrypted with the
 * current data key when encryption at rest is on. In flight they are the plaintext records
 * (the CRCs are over those), protected by TLS when the cluster runs it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/codec.h"
#include "base/keys.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

/* Our snapshot file format (RaftSnapshotData.version). */
#define SNAP_FORMAT_VERSION 1

static const eng_cf snap_cfs[3] = {ENG_CF_DEFAULT, ENG_CF_LOCK, ENG_CF_WRITE};

uint32_t rstore__crc32(uint32_t crc, const void *p, size_t len)
{
    static uint32_t table[256];
    static atomic_bool ready;
    if (!atomic_load(&ready)) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        atomic_store(&ready, true);
    }
    const uint8_t *b = p;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

void rstore__snap_path(const rstore *s, bool gen, uint64_t region_id, uint64_t term, uint64_t index,
                       char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s_%llu_%llu_%llu.snap", s->snap_dir, gen ? "gen" : "rev",
             (unsigned long long)region_id, (unsigned long long)term, (unsigned long long)index);
}

int rstore__delete_region_data(eng_batch *b, const Metapb__Region *region)
{
    tkv_buf lo, hi;
    int rc = rstore__region_data_bounds(region, &lo, &hi);
    for (size_t i = 0; i < 3 && rc == 0; i++)
        rc = eng_batch_delete_range(b, snap_cfs[i], tkv_buf_slice(&lo), tkv_buf_slice(&hi));
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
    return rc;
}

/* ---- files ---------------------------------------------------------------------------- */

/* Snapshot files go through the store's key dictionary: encrypted with the current data key
 * when encryption at rest is on, plaintext otherwise (and when they were written before). */
sec_keys *rstore__snap_keys(const rstore *s)
{
    return s->opts.sec != NULL ? sec_runtime_keys(s->opts.sec) : NULL;
}

#define SNAP_IO_BUF (64u * 1024)

/* A buffered reader over a sec_file (records are read a byte at a time). */
typedef struct snap_reader {
    sec_file *f;
    size_t pos, len;
    int rc; /* first read error */
    uint8_t buf[SNAP_IO_BUF];
} snap_reader;

static int reader_open(rstore *s, const char *path, snap_reader **out)
{
    snap_reader *r = tkv_malloc(sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->pos = r->len = 0;
    r->rc = 0;
    int rc = sec_file_open_read(rstore__snap_keys(s), path, &r->f);
    if (rc != 0) {
        tkv_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static void reader_close(snap_reader *r)
{
    if (r == NULL)
        return;
    TKV_IGNORE(sec_file_close(r->f));
    tkv_free(r);
}

/* Refills the buffer; returns false at the end of the file or on an error (r->rc). */
static bool reader_fill(snap_reader *r)
{
    if (r->rc != 0)
        return false;
    size_t got = 0;
    r->rc = sec_file_read(r->f, r->buf, sizeof(r->buf), &got);
    r->pos = 0;
    r->len = r->rc == 0 ? got : 0;
    return r->len > 0;
}

/* Returns the next byte, or -1 at the end (or on an error). */
static int reader_getc(snap_reader *r)
{
    if (r->pos == r->len && !reader_fill(r))
        return -1;
    return r->buf[r->pos++];
}

/* Reads up to @n bytes into @p; returns how many (fewer only at the end or on an error). */
static size_t reader_read(snap_reader *r, void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        if (r->pos == r->len && !reader_fill(r))
            break;
        size_t k = TKV_MIN(n - done, r->len - r->pos);
        memcpy((uint8_t *)p + done, r->buf + r->pos, k);
        r->pos += k;
        done += k;
    }
    return done;
}

/* ---- building ------------------------------------------------------------------------- */

typedef struct out_file {
    sec_file *f;
    uint64_t size;
    uint32_t crc;
    size_t n; /* bytes waiting in buf */
    uint8_t buf[SNAP_IO_BUF];
} out_file;

static int out_flush(out_file *o)
{
    int rc = o->n > 0 ? sec_file_write(o->f, o->buf, o->n) : 0;
    o->n = 0;
    return rc;
}

static int out_write(out_file *o, const void *p, size_t n)
{
    o->size += n;
    o->crc = rstore__crc32(o->crc, p, n);
    if (o->n + n > sizeof(o->buf)) {
        int rc = out_flush(o);
        if (rc != 0)
            return rc;
        if (n > sizeof(o->buf))
            return sec_file_write(o->f, p, n);
    }
    memcpy(o->buf + o->n, p, n);
    o->n += n;
    return 0;
}

static int out_record(out_file *o, uint8_t cf, tkv_slice key, tkv_slice value)
{
    uint8_t hdr[1 + 10 + 10];
    size_t n = 0;
    hdr[n++] = cf;
    n += tkv_codec_put_uvarint(hdr + n, key.len);
    int rc = out_write(o, hdr, n);
    if (rc == 0)
        rc = out_write(o, key.data, key.len);
    n = tkv_codec_put_uvarint(hdr, value.len);
    if (rc == 0)
        rc = out_write(o, hdr, n);
    if (rc == 0)
        rc = out_write(o, value.data, value.len);
    return rc;
}

/* Writes the region's data CFs from @snap into @o, recording each section's size and CRC. */
static int write_sections(out_file *o, eng_snap *snap, const Metapb__Region *region,
                          uint64_t sizes[3], uint32_t crcs[3])
{
    tkv_buf lo, hi;
    int rc = rstore__region_data_bounds(region, &lo, &hi);
    uint64_t prev = 0;
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        o->crc = 0;
        eng_iter *it;
        rc = eng_snap_iter_new(snap, snap_cfs[i], tkv_buf_slice(&lo), tkv_buf_slice(&hi), &it);
        if (rc != 0)
            break;
        for (bool ok = eng_iter_seek_to_first(it); ok && rc == 0; ok = eng_iter_next(it)) {
            tkv_slice k = eng_iter_key(it);
            rc = out_record(o, (uint8_t)snap_cfs[i], tkv_slice_of(k.data + 1, k.len - 1),
                            eng_iter_value(it));
        }
        if (rc == 0)
            rc = eng_iter_status(it);
        eng_iter_free(it);
        sizes[i] = o->size - prev;
        prev = o->size;
        crcs[i] = o->crc;
    }
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
    if (rc == 0)
        rc = out_flush(o);
    if (rc == 0)
        rc = sec_file_sync(o->f);
    return rc;
}

int rstore__snap_build(rstore *s, eng_snap *snap, const Metapb__Region *region, uint64_t index,
                       uint64_t term, tkv_buf *data)
{
    char path[512], tmp[600];
    rstore__snap_path(s, true, region->id, term, index, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    sec_keys *keys = rstore__snap_keys(s);
    out_file *o = tkv_calloc(1, sizeof(*o));
    if (o == NULL)
        return -ENOMEM;
    int rc = sec_file_open_write(keys, tmp, &o->f);
    if (rc != 0) {
        tkv_free(o);
        return rc;
    }
    uint64_t sizes[3] = {0};
    uint32_t crcs[3] = {0};
    rc = write_sections(o, snap, region, sizes, crcs);
    int crc_close = sec_file_close(o->f);
    if (rc == 0)
        rc = crc_close;
    uint64_t file_size = o->size;
    tkv_free(o);
    if (rc == 0)
        rc = sec_file_rename(keys, tmp, path);
    if (rc != 0) {
        TKV_IGNORE(sec_file_remove(keys, tmp));
        return rc;
    }
    RaftServerpb__SnapshotCFFile files[3], *fptrs[3];
    for (size_t i = 0; i < 3; i++) {
        raft_serverpb__snapshot_cffile__init(&files[i]);
        files[i].cf = (char *)eng_cf_name(snap_cfs[i]);
        files[i].size = sizes[i];
        files[i].checksum = crcs[i];
        fptrs[i] = &files[i];
    }
    RaftServerpb__SnapshotMeta meta = RAFT_SERVERPB__SNAPSHOT_META__INIT;
    meta.cf_files = fptrs;
    meta.n_cf_files = 3;
    RaftServerpb__RaftSnapshotData sd = RAFT_SERVERPB__RAFT_SNAPSHOT_DATA__INIT;
    sd.region = (Metapb__Region *)region;
    sd.file_size = file_size;
    sd.version = SNAP_FORMAT_VERSION;
    sd.meta = &meta;
    rstore__pack(&sd.base, data);
    return 0;
}

/* ---- checking ----------------------------------------------------------------------------- */

int rstore__snap_check_file(rstore *s, const char *path, tkv_slice data)
{
    RaftServerpb__RaftSnapshotData *sd =
        raft_serverpb__raft_snapshot_data__unpack(NULL, data.len, data.data);
    if (sd == NULL)
        return TKV_ECORRUPT;
    int rc = 0;
    if (sd->version != SNAP_FORMAT_VERSION || sd->meta == NULL || sd->meta->n_cf_files != 3)
        rc = TKV_ECORRUPT;
    snap_reader *f = NULL;
    if (rc == 0)
        rc = reader_open(s, path, &f);
    uint8_t buf[64 * 1024];
    uint64_t total = 0;
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        uint64_t left = sd->meta->cf_files[i]->size;
        uint32_t crc = 0;
        while (left > 0) {
            size_t want = left < sizeof(buf) ? (size_t)left : sizeof(buf);
            size_t got = reader_read(f, buf, want);
            if (got != want) {
                rc = f->rc != 0 ? f->rc : TKV_ECORRUPT;
                break;
            }
            crc = rstore__crc32(crc, buf, got);
            left -= got;
        }
        total += sd->meta->cf_files[i]->size;
        if (rc == 0 && crc != sd->meta->cf_files[i]->checksum)
            rc = TKV_ECORRUPT;
    }
    if (rc == 0 && (reader_getc(f) != -1 || total != sd->file_size))
        rc = f->rc != 0 ? f->rc : TKV_ECORRUPT; /* longer than announced */
    reader_close(f);
    protobuf_c_message_free_unpacked(&sd->base, NULL);
    return rc;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Reads a uvarint from @f. */
static int read_uvarint(snap_reader *f, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        int c = reader_getc(f);
        if (c < 0)
            return f->rc != 0 ? f->rc : TKV_ECORRUPT;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return 0;
    }
    return TKV_ECORRUPT;
}

static int read_exact(snap_reader *f, tkv_buf *b, uint64_t n)
{
    if (n > (256u << 20))
        return TKV_ECORRUPT;
    tkv_buf_reset(b);
    int rc = tkv_buf_reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    if (n && reader_read(f, b->data, (size_t)n) != n)
        return f->rc != 0 ? f->rc : TKV_ECORRUPT;
    b->len = (size_t)n;
    return 0;
}

int rstore__snap_load_into(rstore *s, const char *path, const Metapb__Region *region, eng_batch *b)
{
    snap_reader *f;
    int rc = reader_open(s, path, &f);
    if (rc != 0)
        return rc;
    rc = rstore__delete_region_data(b, region);
    tkv_buf key, val, dkey;
    tkv_buf_init(&key);
    tkv_buf_init(&val);
    tkv_buf_init(&dkey);
    int c;
    while (rc == 0 && (c = reader_getc(f)) >= 0) {
        uint64_t n;
        if (c != ENG_CF_DEFAULT && c != ENG_CF_LOCK && c != ENG_CF_WRITE) {
            rc = TKV_ECORRUPT;
            break;
        }
        rc = read_uvarint(f, &n);
        if (rc == 0)
            rc = read_exact(f, &key, n);
        if (rc == 0)
            rc = read_uvarint(f, &n);
        if (rc == 0)
            rc = read_exact(f, &val, n);
        if (rc == 0 && !rstore__key_in_region(region, tkv_buf_slice(&key)))
            rc = TKV_ECORRUPT;
        if (rc == 0) {
            tkv_buf_reset(&dkey);
            rc = tkv_keys_data_key(&dkey, tkv_buf_slice(&key));
        }
        if (rc == 0)
            rc = eng_batch_put(b, (eng_cf)c, tkv_buf_slice(&dkey), tkv_buf_slice(&val));
    }
    if (rc == 0)
        rc = f->rc;
    tkv_buf_deinit(&key);
    tkv_buf_deinit(&val);
    tkv_buf_deinit(&dkey);
    reader_close(f);
    return rc;
}

/* ---- cleanup ------------------------------------------------------------------------------- */

/* Removes snapshot files (and partial ones) older than @max_age_s seconds. */
void rstore__snap_clean(rstore *s, uint64_t max_age_s)
{
    DIR *d = opendir(s->snap_dir);
    if (d == NULL)
        return;
    time_t now = time(NULL);
    struct dirent *de;
    char path[1024];
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "gen_", 4) != 0 && strncmp(de->d_name, "rev_", 4) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", s->snap_dir, de->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && (uint64_t)(now - st.st_mtime) > max_age_s)
            TKV_IGNORE(sec_file_remove(rstore__snap_keys(s), path));
    }
    closedir(d);
}
