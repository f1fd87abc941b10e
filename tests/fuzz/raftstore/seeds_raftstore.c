/*
 * seeds_raftstore.c: writes the seed recipes of the raftstore fuzz targets from real
 * encodings into CORPUS/raft_log_state, CORPUS/snap_meta and CORPUS/snap_recv (the directories
 * must exist):
 *   - raft_log_state: records made by rstore__region_state_encode, rstore__apply_state_encode,
 *     rstore__raft_state_encode, rstore__entry_encode and tkv_keys_raft_log_key for the states a
 *     store persists: a region just bootstrapped, a log being appended and applied, a truncated
 *     log, a region created by a split (no raft state), a raft state behind an applied
 *     snapshot, a tombstone, and a committed membership change not yet applied;
 *   - snap_meta: recipes that make the target run the real builder (rstore__snap_build) on
 *     records in every CF, inside and outside the region, intact, damaged, or with metadata
 *     forged over damaged bytes, and a raw recipe carrying a snapshot made here by the builder;
 *   - snap_recv: streams of a real snapshot (the target builds it and packs the real first
 *     RaftMessage) sent intact in chunks of several sizes, with each kind of altered first
 *     message, damaged metadata, a flipped, dropped, repeated or raw chunk, trailing bytes, and
 *     a cancelled stream.
 *
 *   seeds-raftstore CORPUS      (e.g. tests/fuzz/corpus; files are named seed-N)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/keys.h"
#include "raftstore/rstore_int.h"
#include "unit/raftstore/rs_testutil.h"

#define REGION_ID 7
#define STORE_ID  1

typedef struct recipe {
    uint8_t b[4096];
    size_t n;
} recipe;

static void u8(recipe *r, uint8_t v)
{
    if (r->n < sizeof(r->b))
        r->b[r->n++] = v;
}

/* A chunk as the targets read it (fuzz_bytes): its length byte, then its bytes. */
static void put_bytes(recipe *r, const void *p, size_t n)
{
    u8(r, (uint8_t)n);
    for (size_t i = 0; i < n; i++)
        u8(r, ((const uint8_t *)p)[i]);
}

static void put_str(recipe *r, const char *s)
{
    put_bytes(r, s, strlen(s));
}

/* A record of at most @max bytes (the target's limit for it). */
static void put_buf(recipe *r, const tkv_buf *v, size_t max)
{
    if (v->len > max) {
        fprintf(stderr, "seed record of %zu bytes over the recipe's %zu\n", v->len, max);
        exit(1);
    }
    put_bytes(r, v->data, v->len);
}

static void write_seed(const char *corpus, const char *target, int n, const recipe *r)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s/seed-%d", corpus, target, n);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(r->b, 1, r->n, f) != r->n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ---- raft_log_state ------------------------------------------------------------------------ */

static void region_state(recipe *r, int state, bool learner)
{
    Metapb__Peer p1 = METAPB__PEER__INIT, p2 = METAPB__PEER__INIT, *pp[2] = {&p1, &p2};
    p1.id = 3;
    p1.store_id = STORE_ID;
    p2.id = 4;
    p2.store_id = 2;
    p2.role = learner ? METAPB__PEER_ROLE__Learner : METAPB__PEER_ROLE__Voter;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    ep.conf_ver = 1;
    ep.version = 1;
    Metapb__Region reg = METAPB__REGION__INIT;
    reg.id = REGION_ID;
    reg.region_epoch = &ep;
    reg.peers = pp;
    reg.n_peers = learner ? 2 : 1;
    reg.end_key.data = (uint8_t *)"m";
    reg.end_key.len = 1;
    tkv_buf v;
    tkv_buf_init(&v);
    rstore__region_state_encode(&reg, state, &v);
    u8(r, 1); /* raw */
    put_buf(r, &v, 64);
    tkv_buf_deinit(&v);
}

static void apply_state(recipe *r, uint64_t applied, uint64_t trunc, uint64_t trunc_term)
{
    rstore_apply_state st = {.applied_index = applied,
                             .truncated_index = trunc,
                             .truncated_term = trunc_term,
                             .commit_index = applied,
                             .commit_term = trunc_term};
    tkv_buf v;
    tkv_buf_init(&v);
    rstore__apply_state_encode(&st, &v);
    u8(r, 1);
    put_buf(r, &v, 32);
    tkv_buf_deinit(&v);
}

static void raft_state(recipe *r, bool present, uint64_t term, uint64_t commit, uint64_t last)
{
    if (!present) {
        u8(r, 0);
        return;
    }
    rstore_raft_state st = {.hs = {.term = term, .vote = 3, .commit = commit}, .last_index = last};
    tkv_buf v;
    tkv_buf_init(&v);
    rstore__raft_state_encode(&st, &v);
    u8(r, 1);
    put_buf(r, &v, 32);
    tkv_buf_deinit(&v);
}

/* Entries [first, last] of @term (the one at @cc_index a membership change). */
static void entries(recipe *r, uint64_t first, uint64_t last, uint64_t term, uint64_t cc_index)
{
    u8(r, (uint8_t)(last >= first ? last - first + 1 : 0));
    tkv_buf v;
    tkv_buf_init(&v);
    for (uint64_t i = first; i <= last; i++) {
        const char *cmd = "\x0a\x02\x08\x07"; /* a few bytes of command */
        raft_entry e = {.entry_type = i == cc_index ? RAFT_ENTRY_CONF_CHANGE : RAFT_ENTRY_NORMAL,
                        .term = term,
                        .index = i,
                        .data = (uint8_t *)cmd,
                        .data_len = 4};
        if (rstore__entry_encode(&e, &v) != 0)
            exit(1);
        u8(r, 0);                                        /* raw */
        u8(r, (uint8_t)(i - RSTORE_INIT_LOG_INDEX - 1)); /* index */
        put_buf(r, &v, 48);
    }
    uint8_t key[TKV_KEYS_RAFT_LOG_KEY_LEN];
    tkv_keys_raft_log_key(key, REGION_ID, last);
    tkv_buf_reset(&v);
    if (tkv_buf_append(&v, key, sizeof(key)) != 0)
        exit(1);
    put_buf(r, &v, 24);
    tkv_buf_deinit(&v);
}

static void rls_save(const char *dir, int n, recipe *r)
{
    u8(r, 5);    /* rounds: 2 + 5 */
    u8(r, 0xff); /* proposals */
    u8(r, 0xff);
    u8(r, 0xff);
    write_seed(dir, "raft_log_state", n, r);
}

/* What a store persists for a region at some point of its life. The fields follow the order
 * the table below lists them in (positional initializers), not the tightest packing: the
 * table has a few dozen entries. */
/* NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding): see above */
typedef struct rls_scenario {
    int state;                              /* RaftServerpb__PeerState */
    bool learner;                           /* a second peer, a learner */
    uint64_t applied, trunc, trunc_term;    /* the apply state */
    bool has_raft;                          /* the raft state is there */
    uint64_t term, commit, last;            /* the raft state */
    uint64_t first, last_entry, entry_term; /* log entries [first, last_entry] */
    uint64_t cc_index;                      /* the membership change among them, or 0 */
} rls_scenario;

static void rls_seeds(const char *dir)
{
    const int normal = RAFT_SERVERPB__PEER_STATE__Normal;
    static const rls_scenario scenarios[] = {
        /* Bootstrapped: every state at the initial position. */
        {normal, false, 5, 5, 5, true, 5, 5, 5, 6, 5, 6, 0},
        /* A log 6..10 of term 6, committed to 10, applied to 8. */
        {normal, true, 8, 5, 5, true, 6, 10, 10, 6, 10, 6, 0},
        /* Truncated to 8 (term 6), log 9..12. */
        {normal, false, 11, 8, 6, true, 7, 12, 12, 9, 12, 7, 0},
        /* Created by a split: no raft state. */
        {normal, true, 5, 5, 5, false, 0, 0, 0, 6, 5, 6, 0},
        /* A snapshot at 14 (term 8) applied, the raft state written after it lost. */
        {normal, false, 14, 14, 8, true, 6, 9, 9, 6, 9, 6, 0},
        /* A tombstone. */
        {RAFT_SERVERPB__PEER_STATE__Tombstone, true, 9, 5, 5, true, 6, 9, 9, 6, 9, 6, 0},
        /* A membership change committed (9) but not applied (7). */
        {normal, true, 7, 5, 5, true, 6, 10, 11, 6, 11, 6, 9},
        /* Corrupt (refused at load; both were loaded before fuzzing found them): a hard state
         * older than the truncated term, and a last entry newer than the hard state. */
        {normal, false, 5, 5, 8, true, 6, 5, 5, 6, 5, 6, 0},
        {normal, false, 5, 5, 5, true, 6, 6, 6, 6, 6, 7, 0},
    };
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        const rls_scenario *c = &scenarios[i];
        recipe r;
        memset(&r, 0, sizeof(r));
        region_state(&r, c->state, c->learner);
        apply_state(&r, c->applied, c->trunc, c->trunc_term);
        raft_state(&r, c->has_raft, c->term, c->commit, c->last);
        entries(&r, c->first, c->last_entry, c->entry_term, c->cc_index);
        rls_save(dir, (int)i, &r);
    }
}

/* ---- snap_meta ------------------------------------------------------------------------------ */

/* Region [start, end): epoch version 1. */
static void sm_region(recipe *r, const char *start, const char *end)
{
    u8(r, 0);
    put_str(r, start);
    put_str(r, end);
}

/* Records: (cf byte, key, value); cf 0 default, 1 lock, 2 write, 4 raft. */
static void sm_records(recipe *r)
{
    static const struct {
        uint8_t cf;
        const char *k, *v;
    } recs[] = {{0, "a", "va"},  {0, "c", "vc"},   {1, "b", "lock"}, {2, "b1", "w"},
                {2, "q", "out"}, {4, "a", "raft"}, {0, "", "empty"}};
    u8(r, sizeof(recs) / sizeof(recs[0]));
    for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
        u8(r, recs[i].cf);
        put_str(r, recs[i].k);
        put_str(r, recs[i].v);
    }
}

/* A built recipe: @mode, region [@start, @end), the records. */
static void sm_start(recipe *r, uint8_t mode, const char *start, const char *end)
{
    memset(r, 0, sizeof(*r));
    u8(r, mode);
    sm_region(r, start, end);
    sm_records(r);
}

static void sm_save(const char *dir, int n, recipe *r)
{
    for (int i = 0; i < 8; i++)
        u8(r, (uint8_t)(i * 13 + 3)); /* piece sizes */
    write_seed(dir, "snap_meta", n, r);
}

/* A raw recipe with a real snapshot of a few records. */
static void sm_raw_real(recipe *r, const char *tmpdir)
{
    rstore *s = tkv_xcalloc(1, sizeof(*s));
    s->snap_dir = (char *)tmpdir;
    eng_db *kv;
    if (eng_mem_open(NULL, &kv) != 0)
        exit(1);
    tkv_buf key;
    tkv_buf_init(&key);
    const char *keys[] = {"a", "b", "k"};
    for (size_t i = 0; i < 3; i++) {
        tkv_buf_reset(&key);
        if (tkv_keys_data_key(&key, tkv_slice_of(keys[i], 1)) != 0 ||
            rs_engine_put(kv, i == 1 ? ENG_CF_WRITE : ENG_CF_DEFAULT, tkv_buf_slice(&key),
                          tkv_slice_of("value", 5)) != 0)
            exit(1);
    }
    Metapb__Region *reg = rs_region(9, tkv_slice_of(NULL, 0), tkv_slice_of("m", 1), 1);
    tkv_buf data;
    tkv_buf_init(&data);
    char path[512];
    if (rs_build_snapshot(s, kv, reg, &data, path, sizeof(path)) != 0)
        exit(1);
    uint8_t file[256];
    FILE *f = fopen(path, "rb");
    size_t len = f ? fread(file, 1, sizeof(file), f) : 0;
    if (f)
        fclose(f);
    unlink(path);
    u8(r, 3);
    put_bytes(r, data.data, data.len);
    put_bytes(r, file, len);
    tkv_buf_deinit(&data);
    tkv_buf_deinit(&key);
    rstore__region_free(reg);
    eng_close(kv);
    tkv_free(s);
}

static void sm_seeds(const char *dir)
{
    char tmp[] = "/tmp/seeds-snap-meta-XXXXXX";
    if (mkdtemp(tmp) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    int n = 0;
    recipe r;
    /* Intact, region [a, m) and [ , ): every record of the region comes back. */
    sm_start(&r, 0, "a", "m");
    u8(&r, 0); /* no damage */
    sm_save(dir, n++, &r);
    sm_start(&r, 0, "", "");
    u8(&r, 0);
    sm_save(dir, n++, &r);
    /* Damaged: a flipped byte, then a cut tail. */
    sm_start(&r, 1, "a", "m");
    u8(&r, 2);
    u8(&r, 0);
    u8(&r, 0);
    u8(&r, 5);
    u8(&r, 0x40);
    u8(&r, 1);
    u8(&r, 0);
    u8(&r, 9);
    sm_save(dir, n++, &r);
    /* Forged metadata over inserted garbage (a sender that computes the CRCs). */
    sm_start(&r, 2, "a", "m");
    u8(&r, 1);
    u8(&r, 2);
    u8(&r, 0);
    u8(&r, 3);
    put_bytes(&r, "\x00\x05zzzzz\x01", 8);
    sm_save(dir, n++, &r);
    /* Forged metadata over a region narrowed to [a, b): records past it. */
    sm_start(&r, 2, "a", "m");
    u8(&r, 1);
    u8(&r, 7);
    u8(&r, 0);
    u8(&r, 0);
    put_str(&r, "b");
    sm_save(dir, n++, &r);
    /* A real snapshot as raw bytes. */
    memset(&r, 0, sizeof(r));
    sm_raw_real(&r, tmp);
    sm_save(dir, n++, &r);
    rmdir(tmp);
}

/* ---- snap_recv ------------------------------------------------------------------------------ */

/* Mode, then five records in the three CFs and a region ending at "m". */
static void sr_start(recipe *r, uint8_t mode)
{
    memset(r, 0, sizeof(*r));
    u8(r, mode);
    u8(r, 5);
    const char *keys[] = {"a", "b", "c", "d", "x"};
    for (int i = 0; i < 5; i++) {
        u8(r, (uint8_t)i); /* CF i % 3 */
        put_str(r, keys[i]);
        put_str(r, "a value of some twenty bytes");
    }
    u8(r, 'm');
}

/* Chunks of @k bytes (op 7: sent as they are) until the file is through. */
static void sr_chunks(recipe *r, uint8_t first, uint8_t k)
{
    u8(r, first);
    for (int i = 0; i < 40; i++) {
        u8(r, 7);
        u8(r, (uint8_t)(k - 1));
    }
}

static void sr_seeds(const char *dir)
{
    int n = 0;
    recipe r;
    /* Intact: everything in the first chunk; in 16-byte chunks; in 1-byte chunks. */
    sr_start(&r, 0);
    sr_chunks(&r, 63, 128);
    write_seed(dir, "snap_recv", n++, &r);
    sr_start(&r, 0);
    sr_chunks(&r, 0, 16);
    write_seed(dir, "snap_recv", n++, &r);
    sr_start(&r, 0);
    sr_chunks(&r, 5, 1);
    write_seed(dir, "snap_recv", n++, &r);
    /* Each alteration of the first message. */
    for (uint8_t alter = 1; alter < 8; alter++) {
        sr_start(&r, 0x80);
        u8(&r, alter);
        sr_chunks(&r, 8, 32);
        write_seed(dir, "snap_recv", n++, &r);
    }
    /* Damaged metadata. */
    sr_start(&r, 0x40);
    put_str(&r, "\x10");
    u8(&r, 20);
    sr_chunks(&r, 8, 32);
    write_seed(dir, "snap_recv", n++, &r);
    /* A flipped, a raw, a dropped and a repeated chunk. */
    for (uint8_t op = 0; op < 4; op++) {
        sr_start(&r, 0);
        u8(&r, 8);
        u8(&r, op);
        u8(&r, 15);
        if (op == 0) {
            u8(&r, 0x20);
            u8(&r, 3);
        } else if (op == 1) {
            put_str(&r, "\x12\x03zzz");
        }
        for (int i = 0; i < 40; i++) {
            u8(&r, 7);
            u8(&r, 31);
        }
        write_seed(dir, "snap_recv", n++, &r);
    }
    /* Trailing bytes past the file; a cancelled stream. */
    sr_start(&r, 0x20);
    sr_chunks(&r, 8, 64);
    put_str(&r, "\x00\x01z\x00");
    write_seed(dir, "snap_recv", n++, &r);
    sr_start(&r, 0x10);
    sr_chunks(&r, 8, 64);
    write_seed(dir, "snap_recv", n++, &r);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS\n", argv[0]);
        return 2;
    }
    rls_seeds(argv[1]);
    sm_seeds(argv[1]);
    sr_seeds(argv[1]);
    return 0;
}
