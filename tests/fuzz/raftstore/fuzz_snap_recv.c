/*
 * fuzz_snap_recv.c: the receiving side of /tikvpb.Tikv/Snapshot (issue 9): a sequence of
 * SnapshotChunk messages, the first carrying the RaftMessage with the snapshot metadata, the
 * rest the file's bytes, fed the way snap_io.c's handlers feed them (unpack on the gRPC
 * thread, then rstore__snap_rx_begin / _data / _end on the worker) into a store whose snapshot
 * directory is a temporary directory.
 *
 * The input is a recipe (fuzz_in): a real snapshot (rstore__snap_build over an in-memory kv
 * engine with fuzzed records) and a real first message, possibly altered (another store,
 * region or message type, parts missing), cut into chunks at fuzzed points, with chunks
 * damaged, inserted, dropped or raw, and the stream ended or cancelled. Checks:
 *   - refusals are TKV_ECORRUPT (and sticky); a malformed chunk cancels the stream;
 *   - at no point does the file on disk grow past the size the metadata announces;
 *   - an unaltered stream is accepted; an accepted stream hands out a MsgSnapshot for this
 *     store, leaves exactly the received file, which passes rstore__snap_check_file (what the
 *     peer runs before stepping it) and loads (what the apply thread runs, aborting on
 *     failure) with its records;
 *   - a refused or cancelled stream leaves no file behind.
 */
#include <dirent.h>
#include <string.h>

#include "base/keys.h"
#include "base/log.h"
#include "fuzz/fuzz.h"
#include "raftstore/rstore_int.h"
#include "unit/raftstore/rs_testutil.h"

#define STORE_ID  1
#define REGION_ID 9
#define MAX_FILE  4096

static const eng_cf data_cfs[3] = {ENG_CF_DEFAULT, ENG_CF_LOCK, ENG_CF_WRITE};

/* Returns how many files the directory holds. */
static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    FUZZ_CHECK(d != NULL);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Builds a real snapshot of region REGION_ID holding fuzzed records: its RaftSnapshotData into
 * @data, the file into @file. Returns the file's length. */
static size_t build(fuzz_in *in, rstore *s, tkv_buf *data, uint8_t *file)
{
    eng_db *kv;
    FUZZ_CHECK(eng_mem_open(NULL, &kv) == 0);
    eng_batch *b;
    FUZZ_CHECK(eng_batch_new(kv, &b) == 0);
    size_t n = fuzz_u8(in) % 12;
    tkv_buf key;
    tkv_buf_init(&key);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = fuzz_u8(in);
        size_t kl, vl;
        const uint8_t *k = fuzz_bytes(in, 3, &kl), *v = fuzz_bytes(in, 40, &vl);
        tkv_buf_reset(&key);
        FUZZ_CHECK(tkv_keys_data_key(&key, tkv_slice_of(k, kl)) == 0);
        FUZZ_CHECK(eng_batch_put(b, data_cfs[c % 3], tkv_buf_slice(&key), tkv_slice_of(v, vl)) ==
                   0);
    }
    tkv_buf_deinit(&key);
    FUZZ_CHECK(eng_write(kv, b, false) == 0);
    eng_batch_free(b);
    uint8_t end = fuzz_u8(in);
    Metapb__Region *r =
        rs_region(REGION_ID, tkv_slice_of(NULL, 0), tkv_slice_of(&end, end ? 1 : 0), 1);
    char path[512];
    FUZZ_CHECK(rs_build_snapshot(s, kv, r, data, path, sizeof(path)) == 0);
    rstore__region_free(r);
    eng_close(kv);
    size_t len = fuzz_read_file(path, file, MAX_FILE);
    FUZZ_CHECK(file_size(path) == len); /* records are small: the file fits */
    FUZZ_CHECK(remove(path) == 0);
    return len;
}

/* Packs the first chunk: the RaftMessage (altered per @alter) carrying @data. */
static void first_chunk(uint8_t alter, tkv_slice data, tkv_slice payload, tkv_buf *out)
{
    Eraftpb__SnapshotMetadata md = ERAFTPB__SNAPSHOT_METADATA__INIT;
    md.index = 10;
    md.term = 6;
    Eraftpb__Snapshot snap = ERAFTPB__SNAPSHOT__INIT;
    snap.metadata = alter == 1 ? NULL : &md;
    snap.data.data = (uint8_t *)data.data;
    snap.data.len = data.len;
    Eraftpb__Message m = ERAFTPB__MESSAGE__INIT;
    m.msg_type = alter == 2 ? ERAFTPB__MESSAGE_TYPE__MsgAppend : ERAFTPB__MESSAGE_TYPE__MsgSnapshot;
    m.to = 2;
    m.from = 3;
    m.term = 6;
    m.snapshot = alter == 3 ? NULL : &snap;
    Metapb__Peer to = METAPB__PEER__INIT, from = METAPB__PEER__INIT;
    to.id = 2;
    to.store_id = alter == 4 ? STORE_ID + 1 : STORE_ID;
    from.id = 3;
    from.store_id = 3;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    ep.conf_ver = 1;
    ep.version = 1;
    RaftServerpb__RaftMessage rm = RAFT_SERVERPB__RAFT_MESSAGE__INIT;
    rm.region_id = alter == 5 ? REGION_ID + 1 : REGION_ID;
    rm.from_peer = &from;
    rm.to_peer = alter == 6 ? NULL : &to;
    rm.message = &m;
    rm.region_epoch = &ep;
    RaftServerpb__SnapshotChunk c = RAFT_SERVERPB__SNAPSHOT_CHUNK__INIT;
    c.message = alter == 7 ? NULL : &rm;
    c.data.data = (uint8_t *)payload.data;
    c.data.len = payload.len;
    rstore__pack(&c.base, out);
}

static void data_chunk(tkv_slice payload, tkv_buf *out)
{
    RaftServerpb__SnapshotChunk c = RAFT_SERVERPB__SNAPSHOT_CHUNK__INIT;
    c.data.data = (uint8_t *)payload.data;
    c.data.len = payload.len;
    rstore__pack(&c.base, out);
}

typedef struct stream {
    rstore *s;
    rstore_snap_rx rx;
    bool seen, cancelled;
    uint64_t limit; /* the announced file size once the first chunk was taken */
} stream;

/* One chunk as snap_io.c's on_snap_chunk and the worker's recv_task take it. */
static void feed(stream *st, tkv_slice bytes)
{
    if (st->cancelled || (st->rx.rc != 0 && st->rx.begun))
        return; /* the call is finished: later chunks are ignored */
    RaftServerpb__SnapshotChunk *c =
        raft_serverpb__snapshot_chunk__unpack(NULL, bytes.len, bytes.data);
    if (c == NULL) {
        st->cancelled = true; /* RECV_ABORT */
        return;
    }
    RaftServerpb__RaftMessage *first = NULL;
    if (!st->seen) {
        st->seen = true;
        first = c->message;
        c->message = NULL;
    }
    if (!st->rx.begun) {
        rstore__snap_rx_begin(&st->rx, first);
        FUZZ_CHECK(st->rx.rc == 0 || st->rx.rc == TKV_ECORRUPT);
        if (st->rx.rc == 0)
            st->limit = st->rx.meta.file_size;
    }
    int rc = rstore__snap_rx_data(&st->rx, tkv_slice_of(c->data.data, c->data.len));
    if (getenv("FUZZ_TRACE"))
        fprintf(stderr, "chunk of %zu bytes (%zu data): rc %d\n", bytes.len, c->data.len, rc);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (st->rx.tmp[0])
        FUZZ_CHECK(file_size(st->rx.tmp) <= st->limit); /* never past what was announced */
    protobuf_c_message_free_unpacked(&c->base, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size)
{
    static rstore *s;
    static uint8_t file[MAX_FILE];
    if (s == NULL) {
        tkv_log_set_level(TKV_LOG_OFF);
        s = tkv_xcalloc(1, sizeof(*s));
        s->snap_dir = (char *)fuzz_tmpdir("snap_recv");
        s->store_id = STORE_ID;
    }
    fuzz_in in = fuzz_in_of(input, size);
    uint8_t mode = fuzz_u8(&in);
    tkv_buf data, chunk;
    tkv_buf_init(&data);
    tkv_buf_init(&chunk);
    size_t len = build(&in, s, &data, file);
    stream st = {.s = s};
    rstore__snap_rx_init(&st.rx, s);
    uint8_t alter = mode & 0x80 ? fuzz_u8(&in) % 8 : 0;
    if (mode & 0x40) {
        /* Metadata that does not match the file (a size or a CRC off). */
        size_t k;
        const uint8_t *p = fuzz_bytes(&in, 4, &k);
        if (k && data.len) {
            data.data[fuzz_u8(&in) % data.len] ^= p[0] | 1;
            alter = 8; /* marks the stream as altered */
        }
    }
    bool intact = alter == 0;
    /* The file in chunks: the first chunk may carry data too. */
    size_t off = 0;
    size_t first_len = fuzz_u8(&in) % 64;
    if (first_len > len)
        first_len = len;
    first_chunk(alter, tkv_buf_slice(&data), tkv_slice_of(file, first_len), &chunk);
    feed(&st, tkv_buf_slice(&chunk));
    off = first_len;
    size_t steps = 0;
    while (off < len && steps++ < 64) {
        uint8_t op = fuzz_u8(&in);
        size_t k = 1 + fuzz_u8(&in) % 128;
        if (k > len - off)
            k = len - off;
        if (k == 0)
            break; /* cannot happen (off < len); tells the analyzer the modulo below is safe */
        uint8_t copy[256];
        memcpy(copy, file + off, k);
        switch (op % 8) {
        case 0: { /* a flipped byte */
            uint8_t x = fuzz_u8(&in) | 1;
            copy[fuzz_u8(&in) % k] ^= x;
            intact = false;
            break;
        }
        case 1: { /* a raw chunk before this one */
            size_t rl;
            const uint8_t *r = fuzz_bytes(&in, 32, &rl);
            feed(&st, tkv_slice_of(r, rl));
            intact = false;
            break;
        }
        case 2: /* dropped */
            off += k;
            intact = false;
            continue;
        case 3: /* sent twice */
            data_chunk(tkv_slice_of(copy, k), &chunk);
            feed(&st, tkv_buf_slice(&chunk));
            intact = false;
            break;
        default:
            break;
        }
        data_chunk(tkv_slice_of(copy, k), &chunk);
        feed(&st, tkv_buf_slice(&chunk));
        off += k;
    }
    if (off < len)
        intact = false; /* the recipe ran out of steps */
    /* Trailing bytes past the file, or an empty chunk. */
    if (mode & 0x20) {
        size_t tl;
        const uint8_t *t = fuzz_bytes(&in, 16, &tl);
        data_chunk(tkv_slice_of(t, tl), &chunk);
        feed(&st, tkv_buf_slice(&chunk));
        intact &= tl == 0;
    }
    bool cancel = mode & 0x10;
    if (!st.seen)
        FUZZ_CHECK(false); /* the first chunk was always fed */
    if (cancel || st.cancelled) {
        rstore__snap_rx_deinit(&st.rx);
        FUZZ_CHECK(count_files(s->snap_dir) == 0);
    } else {
        RaftServerpb__RaftMessage *msg;
        int rc = st.rx.begun ? rstore__snap_rx_end(&st.rx, &msg) : TKV_ECORRUPT;
        if (getenv("FUZZ_TRACE"))
            fprintf(stderr, "stream of %zu bytes: begun %d, end %d, intact %d, written %llu\n", len,
                    st.rx.begun, rc, intact, (unsigned long long)st.rx.bytes);
        FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
        FUZZ_CHECK(!intact || rc == 0);
        if (rc == 0) {
            FUZZ_CHECK(msg != NULL && msg->message != NULL);
            FUZZ_CHECK(msg->message->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot);
            FUZZ_CHECK(msg->to_peer != NULL && msg->to_peer->store_id == STORE_ID);
            const Eraftpb__Snapshot *snap = msg->message->snapshot;
            tkv_slice sd = tkv_slice_of(snap->data.data, snap->data.len);
            char path[512];
            rstore__snap_path(s, false, msg->region_id, snap->metadata->term, snap->metadata->index,
                              path, sizeof(path));
            FUZZ_CHECK(strcmp(path, st.rx.path) == 0);
            FUZZ_CHECK(count_files(s->snap_dir) == 1 && file_size(path) == st.limit);
            FUZZ_CHECK(rstore__snap_check_file(s, path, sd) == 0);
            rstore_snap_meta meta;
            FUZZ_CHECK(rstore__snap_meta_decode(sd, &meta) == 0);
            FUZZ_CHECK(meta.region->id == msg->region_id);
            eng_db *db;
            FUZZ_CHECK(eng_mem_open(NULL, &db) == 0);
            eng_batch *b;
            FUZZ_CHECK(eng_batch_new(db, &b) == 0);
            FUZZ_CHECK(rstore__snap_load_into(s, path, meta.region, b) == 0);
            FUZZ_CHECK(eng_batch_count(b) == 3 + st.rx.parser.records);
            eng_batch_free(b);
            eng_close(db);
            rstore__snap_meta_deinit(&meta);
            protobuf_c_message_free_unpacked(&msg->base, NULL);
            FUZZ_CHECK(remove(path) == 0);
        }
        rstore__snap_rx_deinit(&st.rx);
        FUZZ_CHECK(count_files(s->snap_dir) == 0);
    }
    tkv_buf_deinit(&data);
    tkv_buf_deinit(&chunk);
    return 0;
}
