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

/* ---- metadata -------------------------------------------------------------------------- */

int rstore__snap_meta_decode(tkv_slice data, rstore_snap_meta *out)
{
    memset(out, 0, sizeof(*out));
    RaftServerpb__RaftSnapshotData *sd =
        raft_serverpb__raft_snapshot_data__unpack(NULL, data.len, data.data);
    if (sd == NULL)
        return TKV_ECORRUPT;
    bool ok = sd->version == SNAP_FORMAT_VERSION && sd->meta != NULL && sd->meta->n_cf_files == 3 &&
              sd->region != NULL && rstore__region_canonical(&sd->region) == 0 &&
              rstore__region_is_sane(sd->region);
    uint64_t total = 0;
    for (size_t i = 0; ok && i < 3; i++) {
        const RaftServerpb__SnapshotCFFile *f = sd->meta->cf_files[i];
        /* The sections in the order the builder writes them, named as TiKV names CFs. */
        ok = f->cf != NULL && strcmp(f->cf, eng_cf_name(snap_cfs[i])) == 0 &&
             f->size <= UINT64_MAX - total;
        if (ok) {
            out->sizes[i] = f->size;
            out->crcs[i] = f->checksum;
            total += f->size;
        }
    }
    if (!ok || total != sd->file_size) {
        protobuf_c_message_free_unpacked(&sd->base, NULL);
        memset(out, 0, sizeof(*out));
        return TKV_ECORRUPT;
    }
    out->file_size = sd->file_size;
    out->region = sd->region;
    sd->region = NULL; /* detached: the caller's now */
    protobuf_c_message_free_unpacked(&sd->base, NULL);
    return 0;
}

void rstore__snap_meta_deinit(rstore_snap_meta *m)
{
    rstore__region_free(m->region);
    memset(m, 0, sizeof(*m));
}

/* ---- parsing the file ------------------------------------------------------------------- */

enum { PS_CF, PS_KEY_LEN, PS_KEY, PS_VALUE_LEN, PS_VALUE };

void rstore__snap_parser_init(rstore_snap_parser *p, const Metapb__Region *region,
                              const rstore_snap_meta *meta, rstore_snap_record_fn on_record,
                              void *ud)
{
    memset(p, 0, sizeof(*p));
    p->region = region;
    p->meta = meta;
    p->on_record = on_record;
    p->ud = ud;
    p->state = PS_CF;
    tkv_buf_init(&p->key);
    tkv_buf_init(&p->value);
    if (meta)
        p->section_left = meta->sizes[0];
}

void rstore__snap_parser_deinit(rstore_snap_parser *p)
{
    tkv_buf_deinit(&p->key);
    tkv_buf_deinit(&p->value);
}

/* Ends the sections that are complete (empty ones included): each must end between records
 * and match its CRC. */
static int end_sections(rstore_snap_parser *p)
{
    while (p->meta && p->section < 3 && p->section_left == 0) {
        if (p->state != PS_CF || p->crc != p->meta->crcs[p->section])
            return TKV_ECORRUPT;
        p->section++;
        p->crc = 0;
        if (p->section < 3)
            p->section_left = p->meta->sizes[p->section];
    }
    return 0;
}

/* A complete record: its key must lie in the region. */
static int emit_record(rstore_snap_parser *p)
{
    tkv_slice key = tkv_buf_slice(&p->key);
    if (!rstore__key_in_region(p->region, key))
        return TKV_ECORRUPT;
    p->records++;
    int rc = p->on_record ? p->on_record(p->ud, (eng_cf)p->cf, key, tkv_buf_slice(&p->value)) : 0;
    p->state = PS_CF;
    tkv_buf_reset(&p->key);
    tkv_buf_reset(&p->value);
    return rc;
}

/* Continues a uvarint with byte @c; *@done when it is complete. */
static int varint_byte(rstore_snap_parser *p, uint8_t c, bool *done)
{
    if (p->shift == 63 && c > 1)
        return TKV_ECORRUPT; /* past 64 bits */
    p->varint |= (uint64_t)(c & 0x7f) << p->shift;
    p->shift += 7;
    *done = !(c & 0x80);
    if (!*done && p->shift > 63)
        return TKV_ECORRUPT;
    return 0;
}

/* Parses @n bytes of the current section. */
static int parse(rstore_snap_parser *p, const uint8_t *b, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int rc = 0;
        bool done = false;
        switch (p->state) {
        case PS_CF: {
            uint8_t c = b[i++];
            if (c != ENG_CF_DEFAULT && c != ENG_CF_LOCK && c != ENG_CF_WRITE)
                return TKV_ECORRUPT;
            if (p->meta && c != snap_cfs[p->section])
                return TKV_ECORRUPT; /* each section holds its own CF */
            p->cf = c;
            p->state = PS_KEY_LEN;
            p->varint = 0;
            p->shift = 0;
            break;
        }
        case PS_KEY_LEN:
        case PS_VALUE_LEN:
            rc = varint_byte(p, b[i++], &done);
            if (rc != 0)
                return rc;
            if (!done)
                break;
            if (p->varint > RSTORE_SNAP_MAX_FIELD)
                return TKV_ECORRUPT;
            p->want = p->varint;
            p->state = p->state == PS_KEY_LEN ? PS_KEY : PS_VALUE;
            if (p->want == 0 && p->state == PS_VALUE) {
                rc = emit_record(p);
                if (rc != 0)
                    return rc;
            } else if (p->want == 0) {
                p->state = PS_VALUE_LEN;
                p->varint = 0;
                p->shift = 0;
            }
            break;
        case PS_KEY:
        case PS_VALUE: {
            size_t k = (size_t)TKV_MIN((uint64_t)(n - i), p->want);
            /* Values are kept only for a caller that takes them: a check holds one key. */
            if (p->state == PS_KEY || p->on_record != NULL)
                rc = tkv_buf_append(p->state == PS_KEY ? &p->key : &p->value, b + i, k);
            if (rc != 0)
                return rc;
            i += k;
            p->want -= k;
            if (p->want > 0)
                break;
            if (p->state == PS_KEY) {
                p->state = PS_VALUE_LEN;
                p->varint = 0;
                p->shift = 0;
            } else {
                rc = emit_record(p);
                if (rc != 0)
                    return rc;
            }
            break;
        }
        default:
            return TKV_ECORRUPT;
        }
    }
    return 0;
}

int rstore__snap_parser_feed(rstore_snap_parser *p, const void *data, size_t n)
{
    const uint8_t *b = data;
    if (p->rc == 0)
        p->rc = end_sections(p);
    while (p->rc == 0 && n > 0) {
        size_t k = n;
        if (p->meta) {
            if (p->section == 3) {
                p->rc = TKV_ECORRUPT; /* longer than announced */
                break;
            }
            k = (size_t)TKV_MIN((uint64_t)n, p->section_left);
            p->crc = rstore__crc32(p->crc, b, k);
            p->section_left -= k;
        }
        p->rc = parse(p, b, k);
        p->bytes += k;
        b += k;
        n -= k;
        if (p->rc == 0)
            p->rc = end_sections(p);
    }
    return p->rc;
}

int rstore__snap_parser_finish(rstore_snap_parser *p)
{
    if (p->rc == 0)
        p->rc = end_sections(p);
    if (p->rc == 0 && p->state != PS_CF)
        p->rc = TKV_ECORRUPT; /* a torn record */
    if (p->rc == 0 && p->meta && (p->section != 3 || p->bytes != p->meta->file_size))
        p->rc = TKV_ECORRUPT; /* shorter than announced */
    return p->rc;
}

/* Feeds the whole file at @path to @p. */
static int parse_file(rstore *s, const char *path, rstore_snap_parser *p)
{
    snap_reader *f;
    int rc = reader_open(s, path, &f);
    if (rc != 0)
        return rc;
    while (rc == 0 && reader_fill(f))
        rc = rstore__snap_parser_feed(p, f->buf, f->len);
    if (rc == 0)
        rc = f->rc;
    if (rc == 0)
        rc = rstore__snap_parser_finish(p);
    reader_close(f);
    return rc;
}

/* ---- checking ----------------------------------------------------------------------------- */

int rstore__snap_check_file(rstore *s, const char *path, tkv_slice data)
{
    rstore_snap_meta meta;
    int rc = rstore__snap_meta_decode(data, &meta);
    if (rc != 0)
        return rc;
    rstore_snap_parser p;
    rstore__snap_parser_init(&p, meta.region, &meta, NULL, NULL);
    rc = parse_file(s, path, &p);
    rstore__snap_parser_deinit(&p);
    rstore__snap_meta_deinit(&meta);
    return rc;
}

/* ---- loading ------------------------------------------------------------------------------ */

typedef struct load_ctx {
    eng_batch *b;
    tkv_buf dkey;
} load_ctx;

static int load_record(void *ud, eng_cf cf, tkv_slice key, tkv_slice value)
{
    load_ctx *c = ud;
    tkv_buf_reset(&c->dkey);
    int rc = tkv_keys_data_key(&c->dkey, key);
    return rc ? rc : eng_batch_put(c->b, cf, tkv_buf_slice(&c->dkey), value);
}

int rstore__snap_load_into(rstore *s, const char *path, const Metapb__Region *region, eng_batch *b)
{
    int rc = rstore__delete_region_data(b, region);
    if (rc != 0)
        return rc;
    load_ctx c = {.b = b};
    tkv_buf_init(&c.dkey);
    rstore_snap_parser p;
    rstore__snap_parser_init(&p, region, NULL, load_record, &c);
    rc = parse_file(s, path, &p);
    rstore__snap_parser_deinit(&p);
    tkv_buf_deinit(&c.dkey);
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
