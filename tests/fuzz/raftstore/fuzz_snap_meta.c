/*
 * fuzz_snap_meta.c: snapshot metadata (raft_serverpb.RaftSnapshotData: region, format
 * version, per-CF sections with sizes and CRC-32) and the snapshot file it describes
 * (issue 9): rstore__snap_meta_decode, rstore__snap_check_file (what a receiver runs before a
 * snapshot may be stepped) and rstore__snap_load_into (what the apply thread runs after, and
 * aborts on failure).
 *
 * The input is a recipe (fuzz_in). A snapshot is either built by the real builder
 * (rstore__snap_build over an in-memory kv engine holding fuzzed records, some outside the
 * region) and then possibly damaged (bytes flipped, cut, inserted; metadata fields changed;
 * or, as a malicious sender would, the metadata's sizes and CRCs recomputed over the damaged
 * file), or it is raw fuzzed metadata and file bytes. Checks:
 *   - the metadata decoder refuses with TKV_ECORRUPT only, and what it accepts is consistent
 *     (sections named default, lock, write, sizes adding up, a sane region) and re-encodes to
 *     the same metadata;
 *   - an undamaged snapshot is accepted and loads exactly the region's records of the source
 *     engine (a round trip through the file);
 *   - whatever the check accepts loads without error, with one put per record: the apply path
 *     never meets a file it cannot apply;
 *   - the incremental parser gives the same verdict and records however the bytes are split
 *     (as chunks arrive over the network).
 */
#include <string.h>

#include "base/keys.h"
#include "base/log.h"
#include "fuzz/fuzz.h"
#include "raftstore/rstore_int.h"
#include "unit/raftstore/rs_testutil.h"

#define MAX_FILE 4096

static const eng_cf data_cfs[3] = {ENG_CF_DEFAULT, ENG_CF_LOCK, ENG_CF_WRITE};

/* ---- the metadata on its own ------------------------------------------------------------ */

/* Encodes @m as RaftSnapshotData (what the builder writes) into @out. */
static void encode_meta(const rstore_snap_meta *m, uint64_t version, tkv_buf *out)
{
    RaftServerpb__SnapshotCFFile files[3], *fp[3];
    for (size_t i = 0; i < 3; i++) {
        raft_serverpb__snapshot_cffile__init(&files[i]);
        files[i].cf = (char *)eng_cf_name(data_cfs[i]);
        files[i].size = m->sizes[i];
        files[i].checksum = m->crcs[i];
        fp[i] = &files[i];
    }
    RaftServerpb__SnapshotMeta meta = RAFT_SERVERPB__SNAPSHOT_META__INIT;
    meta.cf_files = fp;
    meta.n_cf_files = 3;
    RaftServerpb__RaftSnapshotData sd = RAFT_SERVERPB__RAFT_SNAPSHOT_DATA__INIT;
    sd.region = m->region;
    sd.file_size = m->file_size;
    sd.version = version;
    sd.meta = &meta;
    rstore__pack(&sd.base, out);
}

static bool regions_equal(const Metapb__Region *a, const Metapb__Region *b)
{
    tkv_buf x, y;
    tkv_buf_init(&x);
    tkv_buf_init(&y);
    rstore__pack(&a->base, &x);
    rstore__pack(&b->base, &y);
    bool eq = x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
    tkv_buf_deinit(&x);
    tkv_buf_deinit(&y);
    return eq;
}

/* Decodes @data; accepted metadata is consistent and round-trips. Returns the decoder's rc. */
static int check_meta(tkv_slice data, rstore_snap_meta *out)
{
    int rc = rstore__snap_meta_decode(data, out);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (rc != 0) {
        FUZZ_CHECK(out->region == NULL);
        return rc;
    }
    FUZZ_CHECK(rstore__region_is_sane(out->region));
    uint64_t sum = 0;
    for (size_t i = 0; i < 3; i++) {
        FUZZ_CHECK(out->sizes[i] <= UINT64_MAX - sum);
        sum += out->sizes[i];
    }
    FUZZ_CHECK(sum == out->file_size);
    tkv_buf again;
    tkv_buf_init(&again);
    encode_meta(out, 1, &again);
    rstore_snap_meta m2;
    FUZZ_CHECK(rstore__snap_meta_decode(tkv_buf_slice(&again), &m2) == 0);
    FUZZ_CHECK(m2.file_size == out->file_size && regions_equal(m2.region, out->region));
    FUZZ_CHECK(memcmp(m2.sizes, out->sizes, sizeof(m2.sizes)) == 0);
    FUZZ_CHECK(memcmp(m2.crcs, out->crcs, sizeof(m2.crcs)) == 0);
    rstore__snap_meta_deinit(&m2);
    tkv_buf_deinit(&again);
    return 0;
}

/* ---- the file ----------------------------------------------------------------------------- */

typedef struct collected {
    eng_db *db; /* records put here (data keys), when not NULL */
    uint64_t n;
} collected;

static int collect(void *ud, eng_cf cf, tkv_slice key, tkv_slice value)
{
    collected *c = ud;
    FUZZ_CHECK(cf == ENG_CF_DEFAULT || cf == ENG_CF_LOCK || cf == ENG_CF_WRITE);
    c->n++;
    (void)key;
    (void)value;
    return 0;
}

/* Parses @file with @meta in pieces whose sizes the recipe picks; returns the verdict. */
static int parse_in_pieces(fuzz_in *in, const rstore_snap_meta *meta, const uint8_t *file,
                           size_t len, uint64_t *records)
{
    collected c = {0};
    rstore_snap_parser p;
    rstore__snap_parser_init(&p, meta->region, meta, collect, &c);
    size_t off = 0;
    int rc = 0;
    while (off < len) {
        size_t k = 1 + fuzz_u8(in) % 64;
        if (k > len - off)
            k = len - off;
        rc = rstore__snap_parser_feed(&p, file + off, k);
        off += k;
        if (rc != 0)
            break;
    }
    int rc2 = rstore__snap_parser_finish(&p);
    FUZZ_CHECK(rc == 0 || rc2 == rc); /* failures are sticky */
    FUZZ_CHECK(p.records == c.n);
    *records = c.n;
    rstore__snap_parser_deinit(&p);
    return rc2;
}

/* Compares the data CFs of @a and @b inside @region's range. */
static void check_same_data(eng_db *a, eng_db *b, const Metapb__Region *region)
{
    tkv_buf lo, hi;
    FUZZ_CHECK(rstore__region_data_bounds(region, &lo, &hi) == 0);
    for (size_t i = 0; i < 3; i++) {
        eng_iter *x, *y;
        FUZZ_CHECK(eng_iter_new(a, data_cfs[i], tkv_buf_slice(&lo), tkv_buf_slice(&hi), &x) == 0);
        FUZZ_CHECK(eng_iter_new(b, data_cfs[i], tkv_buf_slice(&lo), tkv_buf_slice(&hi), &y) == 0);
        bool okx = eng_iter_seek_to_first(x), oky = eng_iter_seek_to_first(y);
        while (okx && oky) {
            FUZZ_CHECK(tkv_slice_cmp(eng_iter_key(x), eng_iter_key(y)) == 0);
            FUZZ_CHECK(tkv_slice_cmp(eng_iter_value(x), eng_iter_value(y)) == 0);
            okx = eng_iter_next(x);
            oky = eng_iter_next(y);
        }
        FUZZ_CHECK(!okx && !oky);
        eng_iter_free(x);
        eng_iter_free(y);
    }
    tkv_buf_deinit(&lo);
    tkv_buf_deinit(&hi);
}

/* The receiver's check, then (when it accepts) the apply thread's load. */
static void check_and_load(fuzz_in *in, rstore *s, tkv_slice data, const uint8_t *file, size_t len,
                           bool intact, eng_db *source)
{
    char path[512];
    rstore__snap_path(s, false, 9, 6, 10, path, sizeof(path));
    fuzz_write_file(path, file, len);
    int rc = rstore__snap_check_file(s, path, data);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    rstore_snap_meta meta;
    int mrc = check_meta(data, &meta);
    if (mrc != 0) {
        FUZZ_CHECK(rc != 0);
        FUZZ_CHECK(!intact);
        return;
    }
    uint64_t records = 0;
    int prc = parse_in_pieces(in, &meta, file, len, &records);
    if (getenv("FUZZ_TRACE"))
        fprintf(stderr, "snapshot of %zu bytes: check %d, %llu records, intact %d\n", len, rc,
                (unsigned long long)records, intact);
    FUZZ_CHECK(prc == rc); /* the same verdict however the bytes arrive */
    FUZZ_CHECK(!intact || rc == 0);
    if (rc == 0) {
        eng_db *db;
        FUZZ_CHECK(eng_mem_open(NULL, &db) == 0);
        eng_batch *b;
        FUZZ_CHECK(eng_batch_new(db, &b) == 0);
        /* apply_snapshot aborts when this fails: it must not, for a checked file. */
        FUZZ_CHECK(rstore__snap_load_into(s, path, meta.region, b) == 0);
        FUZZ_CHECK(eng_batch_count(b) == 3 + records); /* 3 range deletions, the records */
        FUZZ_CHECK(eng_write(db, b, false) == 0);
        eng_batch_free(b);
        if (intact && source)
            check_same_data(source, db, meta.region);
        eng_close(db);
    }
    rstore__snap_meta_deinit(&meta);
    TKV_IGNORE(remove(path));
}

/* ---- building ----------------------------------------------------------------------------- */

static Metapb__Region *build_region(fuzz_in *in)
{
    uint64_t version = 1 + fuzz_u8(in) % 3;
    size_t sl, el;
    const uint8_t *sk = fuzz_bytes(in, 2, &sl), *ek = fuzz_bytes(in, 2, &el);
    tkv_slice start = tkv_slice_of(sk, sl), end = tkv_slice_of(ek, el);
    if (el > 0 && tkv_slice_cmp(start, end) >= 0)
        end.len = 0; /* keep it sane: the builder runs on real regions */
    return rs_region(9, start, end, version);
}

/* Fills @kv with up to 15 records (data keys) in every CF, inside the region or not. */
static void fill(fuzz_in *in, eng_db *kv)
{
    eng_batch *b;
    FUZZ_CHECK(eng_batch_new(kv, &b) == 0);
    size_t n = fuzz_u8(in) % 16;
    tkv_buf key;
    tkv_buf_init(&key);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = fuzz_u8(in);
        eng_cf cf = c % 5 == 4 ? ENG_CF_RAFT : data_cfs[c % 5 % 3];
        size_t kl, vl;
        const uint8_t *k = fuzz_bytes(in, 3, &kl), *v = fuzz_bytes(in, 8, &vl);
        tkv_buf_reset(&key);
        FUZZ_CHECK(tkv_keys_data_key(&key, tkv_slice_of(k, kl)) == 0);
        FUZZ_CHECK(eng_batch_put(b, cf, tkv_buf_slice(&key), tkv_slice_of(v, vl)) == 0);
    }
    FUZZ_CHECK(eng_write(kv, b, false) == 0);
    eng_batch_free(b);
    tkv_buf_deinit(&key);
}

/* Damages the file (@file, *@len) or the metadata @m per the recipe; returns whether anything
 * changed. */
static bool damage(fuzz_in *in, uint8_t *file, size_t *len, rstore_snap_meta *m, uint64_t *version)
{
    size_t n = fuzz_u8(in) % 4;
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t kind = fuzz_u8(in) % 8;
        size_t off = *len ? (size_t)fuzz_uint(in, 2) % *len : 0;
        switch (kind) {
        case 0: { /* flip a byte */
            uint8_t x = fuzz_u8(in);
            if (*len && x) {
                file[off] ^= x;
                changed = true;
            }
            break;
        }
        case 1: /* cut the tail */
            if (off < *len) {
                *len = off;
                changed = true;
            }
            break;
        case 2: { /* insert bytes */
            size_t k;
            const uint8_t *p = fuzz_bytes(in, 16, &k);
            if (k && *len + k <= MAX_FILE) {
                memmove(file + off + k, file + off, *len - off);
                memcpy(file + off, p, k);
                *len += k;
                changed = true;
            }
            break;
        }
        case 3: /* a section size */
            m->sizes[fuzz_u8(in) % 3] += 1 + fuzz_u8(in) % 3;
            changed = true;
            break;
        case 4: /* a section CRC */
            m->crcs[fuzz_u8(in) % 3] ^= 1u << (fuzz_u8(in) % 32);
            changed = true;
            break;
        case 5: /* the file size */
            m->file_size = fuzz_u8(in) & 1 ? m->file_size + 1 : fuzz_uint(in, 8);
            changed = true;
            break;
        case 6: /* the format version */
            *version = fuzz_u8(in);
            changed |= *version != 1;
            break;
        default: { /* narrow the region: records may now lie outside it */
            size_t k;
            const uint8_t *p = fuzz_bytes(in, 2, &k);
            Metapb__Region *r = m->region;
            tkv_slice end = tkv_slice_of(p, k);
            if (k > 0 &&
                tkv_slice_cmp(tkv_slice_of(r->start_key.data, r->start_key.len), end) < 0) {
                uint8_t *nk = malloc(k);
                FUZZ_CHECK(nk != NULL);
                memcpy(nk, p, k);
                free(r->end_key.data);
                r->end_key.data = nk;
                r->end_key.len = k;
                changed = true;
            }
            break;
        }
        }
    }
    return changed;
}

/* Recomputes the metadata over the (damaged) file as a malicious sender would: the sections
 * keep their sizes where the file still has them, the last takes the rest, CRCs match. */
static void forge(uint8_t *file, size_t len, rstore_snap_meta *m)
{
    size_t off = 0;
    for (size_t i = 0; i < 3; i++) {
        uint64_t sz = i == 2 ? len - off : TKV_MIN(m->sizes[i], (uint64_t)(len - off));
        m->sizes[i] = sz;
        m->crcs[i] = rstore__crc32(0, file + off, (size_t)sz);
        off += (size_t)sz;
    }
    m->file_size = len;
}

static void built(fuzz_in *in, rstore *s, bool forged)
{
    eng_db *kv;
    FUZZ_CHECK(eng_mem_open(NULL, &kv) == 0);
    Metapb__Region *region = build_region(in);
    fill(in, kv);
    tkv_buf data;
    tkv_buf_init(&data);
    char path[512];
    FUZZ_CHECK(rs_build_snapshot(s, kv, region, &data, path, sizeof(path)) == 0);
    static uint8_t file[MAX_FILE];
    size_t len = fuzz_read_file(path, file, sizeof(file));
    FUZZ_CHECK(remove(path) == 0);
    rstore_snap_meta m;
    FUZZ_CHECK(rstore__snap_meta_decode(tkv_buf_slice(&data), &m) == 0);
    FUZZ_CHECK(m.file_size == len && regions_equal(m.region, region));
    uint64_t version = 1;
    bool changed = damage(in, file, &len, &m, &version);
    if (forged)
        forge(file, len, &m);
    encode_meta(&m, version, &data);
    check_and_load(in, s, tkv_buf_slice(&data), file, len, !changed, kv);
    rstore__snap_meta_deinit(&m);
    tkv_buf_deinit(&data);
    rstore__region_free(region);
    eng_close(kv);
}

static void raw(fuzz_in *in, rstore *s)
{
    size_t ml, fl;
    const uint8_t *meta = fuzz_bytes(in, 255, &ml);
    const uint8_t *file = fuzz_bytes(in, 255, &fl);
    check_and_load(in, s, tkv_slice_of(meta, ml), file, fl, false, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rstore *s;
    if (s == NULL) {
        tkv_log_set_level(TKV_LOG_OFF);
        s = tkv_xcalloc(1, sizeof(*s));
        s->snap_dir = (char *)fuzz_tmpdir("snap_meta"); /* the store's fields the files use */
    }
    fuzz_in in = fuzz_in_of(data, size);
    switch (fuzz_u8(&in) % 4) {
    case 0:
    case 1:
        built(&in, s, false);
        break;
    case 2:
        built(&in, s, true);
        break;
    default:
        raw(&in, s);
        break;
    }
    return 0;
}
