/*
 * fuzz_raft_log_state.c: the raft log and the state records raftstore persists (issue 9):
 * RaftLocalState (raft engine), RaftApplyState and RegionLocalState (kv engine, raft CF),
 * eraftpb.Entry values under raft log keys, and the load path a restarting store runs on them
 * (rstore__get_region_state, rstore__ps_load, then a Raft node over the peer storage, as
 * rstore__peer_create makes it).
 *
 * The input is a recipe (fuzz_in): each record is absent, built from fuzzed fields with the
 * real encoder, or raw fuzzed bytes; they are written under their real keys into in-memory
 * engines (eng_mem). Checks:
 *   - every decoder refuses with TKV_ECORRUPT only; what it accepts re-encodes to a fixed point
 *     that decodes to the same record; built records are accepted exactly when they satisfy
 *     the rules documented in rstore_int.h, and decode to what was built;
 *   - raft log keys parse exactly when they are raft log keys, and rebuild byte for byte;
 *   - a loaded peer storage is consistent (truncated <= applied <= last, commit <= last, the
 *     last entry's term between the truncated term and the hard state's term, all below
 *     Raft's limits), a Raft node always starts on it (TKV_ECONFIG only for the region's own
 *     membership), and a single-voter node on it elects itself, appends, commits and hands out
 *     committed entries in order, persisting through rstore__ps_append, without tripping an
 *     assertion; a log entry that does not read back is an error, never a crash.
 */
#include <string.h>

#include "base/keys.h"
#include "base/log.h"
#include "fuzz/fuzz.h"
#include "raftstore/rstore_int.h"
#include "unit/raftstore/rs_testutil.h"

#define REGION_ID 7
#define STORE_ID  1

/* A term or index: mostly near the initial log position, sometimes at the limits. */
static uint64_t pick_pos(fuzz_in *in)
{
    switch (fuzz_u8(in) % 10) {
    case 0:
        return 0;
    case 1:
        return RAFT_INDEX_LIMIT - 1;
    case 2:
        return RAFT_INDEX_LIMIT;
    case 3:
        return UINT64_MAX;
    case 4:
        return fuzz_uint(in, 8);
    default:
        return RSTORE_INIT_LOG_INDEX + fuzz_u8(in) % 12;
    }
}

static bool packed_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    tkv_buf x, y;
    tkv_buf_init(&x);
    tkv_buf_init(&y);
    rstore__pack(a, &x);
    rstore__pack(b, &y);
    bool eq = x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
    tkv_buf_deinit(&x);
    tkv_buf_deinit(&y);
    return eq;
}

static bool buf_eq(const tkv_buf *a, const tkv_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* ---- the decoders on their own ------------------------------------------------------------ */

static bool raft_state_valid(const rstore_raft_state *st)
{
    return st->hs.term < RAFT_TERM_LIMIT && st->last_index < RAFT_INDEX_LIMIT &&
           st->hs.commit <= st->last_index;
}

static bool apply_state_valid(const rstore_apply_state *st)
{
    return st->truncated_index <= st->applied_index && st->applied_index < RAFT_INDEX_LIMIT &&
           st->truncated_term < RAFT_TERM_LIMIT && st->commit_index < RAFT_INDEX_LIMIT &&
           st->commit_term < RAFT_TERM_LIMIT;
}

/* The two fixed-size state records, for the checks they share. */
typedef struct state_codec {
    size_t size;
    eng_cf cf;
    bool raft_engine; /* in the raft engine (else the kv engine) */
    void (*key)(uint8_t key[11], uint64_t region_id);
    void (*encode)(const void *st, tkv_buf *out);
    int (*decode)(tkv_slice v, void *st);
    bool (*valid)(const void *st);
    void (*build)(fuzz_in *in, void *st); /* from the recipe */
} state_codec;

static void raft_encode(const void *st, tkv_buf *out)
{
    rstore__raft_state_encode(st, out);
}

static int raft_decode(tkv_slice v, void *st)
{
    return rstore__raft_state_decode(v, st);
}

static bool raft_valid(const void *st)
{
    return raft_state_valid(st);
}

static void raft_build(fuzz_in *in, void *p)
{
    rstore_raft_state *st = p;
    st->hs.term = pick_pos(in);
    st->hs.commit = pick_pos(in);
    st->last_index = pick_pos(in);
    st->hs.vote = fuzz_u8(in) % 8;
}

static void apply_encode(const void *st, tkv_buf *out)
{
    rstore__apply_state_encode(st, out);
}

static int apply_decode(tkv_slice v, void *st)
{
    return rstore__apply_state_decode(v, st);
}

static bool apply_valid(const void *st)
{
    return apply_state_valid(st);
}

static void apply_build(fuzz_in *in, void *p)
{
    rstore_apply_state *st = p;
    st->applied_index = pick_pos(in);
    st->truncated_index = pick_pos(in);
    st->truncated_term = pick_pos(in);
    st->commit_index = pick_pos(in);
    st->commit_term = pick_pos(in);
}

static const state_codec raft_codec = {
    sizeof(rstore_raft_state),
    ENG_CF_DEFAULT,
    true,
    tkv_keys_raft_state_key,
    raft_encode,
    raft_decode,
    raft_valid,
    raft_build,
};
static const state_codec apply_codec = {
    sizeof(rstore_apply_state),
    ENG_CF_RAFT,
    false,
    tkv_keys_apply_state_key,
    apply_encode,
    apply_decode,
    apply_valid,
    apply_build,
};

/* Decodes @v with @c; accepted records are valid and re-encode to a fixed point that decodes
 * to the same record. */
static void check_state(const state_codec *c, tkv_slice v)
{
    uint64_t st[8], st2[8]; /* room for either record */
    int rc = c->decode(v, st);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (rc != 0)
        return;
    FUZZ_CHECK(c->valid(st));
    tkv_buf a, b;
    tkv_buf_init(&a);
    tkv_buf_init(&b);
    c->encode(st, &a);
    FUZZ_CHECK(c->decode(tkv_buf_slice(&a), st2) == 0);
    FUZZ_CHECK(memcmp(st, st2, c->size) == 0);
    c->encode(st2, &b);
    FUZZ_CHECK(buf_eq(&a, &b));
    tkv_buf_deinit(&a);
    tkv_buf_deinit(&b);
}

static void check_region_state(tkv_slice v)
{
    Metapb__Region *r, *r2;
    int state, state2;
    int rc = rstore__region_state_decode(v, REGION_ID, &r, &state);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (rc != 0) {
        FUZZ_CHECK(r == NULL);
        return;
    }
    FUZZ_CHECK(rstore__region_is_sane(r) && r->id == REGION_ID);
    FUZZ_CHECK(state == RAFT_SERVERPB__PEER_STATE__Normal ||
               state == RAFT_SERVERPB__PEER_STATE__Tombstone);
    tkv_buf a, b;
    tkv_buf_init(&a);
    tkv_buf_init(&b);
    rstore__region_state_encode(r, state, &a);
    FUZZ_CHECK(rstore__region_state_decode(tkv_buf_slice(&a), REGION_ID, &r2, &state2) == 0);
    FUZZ_CHECK(state2 == state && packed_equal(&r->base, &r2->base));
    rstore__region_state_encode(r2, state2, &b);
    FUZZ_CHECK(buf_eq(&a, &b));
    /* Under another region's key it is refused. */
    Metapb__Region *r3;
    FUZZ_CHECK(rstore__region_state_decode(tkv_buf_slice(&a), REGION_ID + 1, &r3, &state2) ==
               TKV_ECORRUPT);
    FUZZ_CHECK(r3 == NULL);
    tkv_buf_deinit(&a);
    tkv_buf_deinit(&b);
    rstore__region_free(r);
    rstore__region_free(r2);
}

static bool entries_equal(const raft_entry *a, const raft_entry *b)
{
    return a->entry_type == b->entry_type && a->term == b->term && a->index == b->index &&
           a->data_len == b->data_len && a->context_len == b->context_len &&
           (a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0) &&
           (a->context_len == 0 || memcmp(a->context, b->context, a->context_len) == 0);
}

static void check_entry(tkv_slice v)
{
    raft_entry e, e2;
    int rc = rstore__entry_decode(v, &e);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (rc != 0)
        return;
    FUZZ_CHECK(e.entry_type == RAFT_ENTRY_NORMAL || e.entry_type == RAFT_ENTRY_CONF_CHANGE);
    tkv_buf a, b;
    tkv_buf_init(&a);
    tkv_buf_init(&b);
    FUZZ_CHECK(rstore__entry_encode(&e, &a) == 0);
    FUZZ_CHECK(rstore__entry_decode(tkv_buf_slice(&a), &e2) == 0);
    FUZZ_CHECK(entries_equal(&e, &e2));
    FUZZ_CHECK(rstore__entry_encode(&e2, &b) == 0);
    FUZZ_CHECK(buf_eq(&a, &b));
    tkv_buf_deinit(&a);
    tkv_buf_deinit(&b);
    raft_entry_deinit(&e);
    raft_entry_deinit(&e2);
}

static void check_log_key(tkv_slice k)
{
    uint64_t region_id, index;
    int rc = tkv_keys_parse_raft_log_key(k, &region_id, &index);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (rc != 0)
        return;
    uint8_t again[TKV_KEYS_RAFT_LOG_KEY_LEN];
    tkv_keys_raft_log_key(again, region_id, index);
    FUZZ_CHECK(k.len == sizeof(again) && memcmp(k.data, again, sizeof(again)) == 0);
}

/* ---- building the engines' contents ------------------------------------------------------ */

typedef struct world {
    eng_db *kv, *raft;
} world;

static void put(eng_db *db, eng_cf cf, tkv_slice key, tkv_slice value)
{
    FUZZ_CHECK(rs_engine_put(db, cf, key, value) == 0);
}

/* Returns a region built from the recipe (owned): mostly a sane one with this store's peer. */
static Metapb__Region *build_region(fuzz_in *in)
{
    uint8_t flags = fuzz_u8(in);
    Metapb__Region r = METAPB__REGION__INIT;
    Metapb__RegionEpoch ep = METAPB__REGION_EPOCH__INIT;
    r.id = flags & 1 ? fuzz_u8(in) % 9 : REGION_ID;
    ep.conf_ver = fuzz_u8(in) % 4;
    ep.version = fuzz_u8(in) % 4;
    r.region_epoch = flags & 2 ? NULL : &ep;
    size_t sl, el;
    const uint8_t *sk = fuzz_bytes(in, 4, &sl), *ek = fuzz_bytes(in, 4, &el);
    r.start_key.data = (uint8_t *)sk;
    r.start_key.len = sl;
    r.end_key.data = (uint8_t *)ek;
    r.end_key.len = el;
    Metapb__Peer peers[RAFT_MAX_MEMBERS + 2], *pp[RAFT_MAX_MEMBERS + 2];
    size_t n = fuzz_u8(in) % 5;
    for (size_t i = 0; i < n; i++) {
        metapb__peer__init(&peers[i]);
        uint8_t b = fuzz_u8(in);
        peers[i].id = b & 7;
        peers[i].store_id = (b >> 3) & 3;
        peers[i].role = b & 0x20 ? METAPB__PEER_ROLE__Learner : METAPB__PEER_ROLE__Voter;
        pp[i] = &peers[i];
    }
    r.peers = pp;
    r.n_peers = n;
    return rstore__region_dup(&r);
}

/* Writes the region state (absent, built or raw). */
static void write_region_state(fuzz_in *in, world *w)
{
    uint8_t key[11];
    tkv_keys_region_state_key(key, REGION_ID);
    uint8_t how = fuzz_u8(in) % 4;
    if (how == 0)
        return;
    if (how == 1) {
        size_t len;
        const uint8_t *p = fuzz_bytes(in, 64, &len);
        check_region_state(tkv_slice_of(p, len));
        put(w->kv, ENG_CF_RAFT, tkv_slice_of(key, sizeof(key)), tkv_slice_of(p, len));
        return;
    }
    Metapb__Region *r = build_region(in);
    int state = fuzz_u8(in) % 8 < 6 ? RAFT_SERVERPB__PEER_STATE__Normal : fuzz_u8(in) % 6;
    tkv_buf v;
    tkv_buf_init(&v);
    rstore__region_state_encode(r, state, &v);
    Metapb__Region *got;
    int got_state;
    int rc = rstore__region_state_decode(tkv_buf_slice(&v), REGION_ID, &got, &got_state);
    bool valid = rstore__region_is_sane(r) && r->id == REGION_ID &&
                 (state == RAFT_SERVERPB__PEER_STATE__Normal ||
                  state == RAFT_SERVERPB__PEER_STATE__Tombstone);
    FUZZ_CHECK((rc == 0) == valid);
    if (rc == 0) {
        FUZZ_CHECK(got_state == state && packed_equal(&got->base, &r->base));
        rstore__region_free(got);
    }
    check_region_state(tkv_buf_slice(&v));
    put(w->kv, ENG_CF_RAFT, tkv_slice_of(key, sizeof(key)), tkv_buf_slice(&v));
    tkv_buf_deinit(&v);
    rstore__region_free(r);
}

/* Writes the record of @c: absent, raw bytes, or built from the recipe, which decodes to
 * itself exactly when it is valid. */
static void write_state(fuzz_in *in, world *w, const state_codec *c)
{
    uint8_t key[11];
    c->key(key, REGION_ID);
    eng_db *db = c->raft_engine ? w->raft : w->kv;
    uint8_t how = fuzz_u8(in) % 4;
    if (how == 0)
        return;
    if (how == 1) {
        size_t len;
        const uint8_t *p = fuzz_bytes(in, 32, &len);
        check_state(c, tkv_slice_of(p, len));
        put(db, c->cf, tkv_slice_of(key, sizeof(key)), tkv_slice_of(p, len));
        return;
    }
    uint64_t st[8] = {0}, got[8];
    c->build(in, st);
    tkv_buf v;
    tkv_buf_init(&v);
    c->encode(st, &v);
    int rc = c->decode(tkv_buf_slice(&v), got);
    FUZZ_CHECK((rc == 0) == c->valid(st));
    FUZZ_CHECK(rc != 0 || memcmp(got, st, c->size) == 0);
    check_state(c, tkv_buf_slice(&v));
    put(db, c->cf, tkv_slice_of(key, sizeof(key)), tkv_buf_slice(&v));
    tkv_buf_deinit(&v);
}

/* Writes up to 12 log entries around the initial log position. */
static void write_entries(fuzz_in *in, world *w)
{
    size_t n = fuzz_u8(in) % 13;
    tkv_buf v;
    tkv_buf_init(&v);
    for (size_t i = 0; i < n; i++) {
        uint8_t how = fuzz_u8(in);
        uint64_t index = RSTORE_INIT_LOG_INDEX + 1 + fuzz_u8(in) % 16;
        uint8_t key[TKV_KEYS_RAFT_LOG_KEY_LEN];
        tkv_keys_raft_log_key(key, REGION_ID, index);
        check_log_key(tkv_slice_of(key, sizeof(key)));
        if (how % 4 == 0) {
            size_t len;
            const uint8_t *p = fuzz_bytes(in, 48, &len);
            check_entry(tkv_slice_of(p, len));
            put(w->raft, ENG_CF_DEFAULT, tkv_slice_of(key, sizeof(key)), tkv_slice_of(p, len));
            continue;
        }
        size_t dl;
        const uint8_t *d = fuzz_bytes(in, 16, &dl);
        raft_entry e = {
            .entry_type = how & 4 ? RAFT_ENTRY_CONF_CHANGE : RAFT_ENTRY_NORMAL,
            .term = how & 8 ? pick_pos(in) : (uint64_t)RSTORE_INIT_LOG_TERM + fuzz_u8(in) % 4,
            .index = how & 16 ? pick_pos(in) : index,
            .data = (uint8_t *)d,
            .data_len = dl,
        };
        FUZZ_CHECK(rstore__entry_encode(&e, &v) == 0);
        raft_entry got;
        FUZZ_CHECK(rstore__entry_decode(tkv_buf_slice(&v), &got) == 0);
        FUZZ_CHECK(entries_equal(&got, &e));
        raft_entry_deinit(&got);
        put(w->raft, ENG_CF_DEFAULT, tkv_slice_of(key, sizeof(key)), tkv_buf_slice(&v));
    }
    tkv_buf_deinit(&v);
    /* Raw keys through the log key parser too. */
    size_t kl;
    const uint8_t *k = fuzz_bytes(in, 24, &kl);
    check_log_key(tkv_slice_of(k, kl));
}

/* ---- the load path ------------------------------------------------------------------------ */

/* Persists @rd's entries and hard state as the poller does and checks what it hands out. */
static void persist_ready(rstore_peer_storage *ps, eng_db *raft, const raft_ready *rd,
                          uint64_t *applied)
{
    FUZZ_CHECK(rd->snapshot == NULL); /* a single voter never receives one */
    eng_batch *b;
    FUZZ_CHECK(eng_batch_new(raft, &b) == 0);
    for (size_t i = 1; i < rd->n_entries; i++)
        FUZZ_CHECK(rd->entries[i].index == rd->entries[i - 1].index + 1 &&
                   rd->entries[i].term >= rd->entries[i - 1].term);
    if (rd->n_entries) {
        FUZZ_CHECK(rd->entries[0].index > ps->truncated_index);
        FUZZ_CHECK(rstore__ps_append(ps, rd->entries, rd->n_entries, b) == 0);
    }
    if (rd->has_hard_state)
        ps->hs = rd->hard_state;
    FUZZ_CHECK(ps->hs.commit <= ps->last_index);
    rstore_raft_state st = rstore__ps_raft_state(ps);
    FUZZ_CHECK(rstore__put_raft_state(b, REGION_ID, &st) == 0);
    FUZZ_CHECK(eng_write(raft, b, true) == 0);
    eng_batch_free(b);
    rstore__ps_appended(ps, rd->entries, rd->n_entries);
    for (size_t i = 0; i < rd->n_committed_entries; i++) {
        const raft_entry *e = &rd->committed_entries[i];
        FUZZ_CHECK(e->index == *applied + 1);
        FUZZ_CHECK(e->index <= ps->hs.commit);
        *applied = e->index;
    }
}

/* Runs a single-voter node @id over @ps: it must start, elect itself, and commit. */
static void run_single_voter(fuzz_in *in, rstore_peer_storage *ps, eng_db *raft, uint64_t id)
{
    memset(&ps->cs, 0, sizeof(ps->cs));
    ps->cs.voters[0] = id;
    ps->cs.n_voters = 1;
    raft_config cfg;
    raft_config_default(&cfg, id);
    cfg.applied = ps->applied_index;
    cfg.check_quorum = true;
    cfg.pre_vote = true;
    cfg.seed = 1;
    raft_storage st = rstore__ps_iface(ps);
    raft_node *node;
    int rc = raft_node_new(&cfg, &st, &node);
    FUZZ_CHECK(rc == 0); /* ps_load accepted the state: Raft must run on it */
    uint64_t term0 = raft_node_term(node);
    FUZZ_CHECK(term0 == ps->hs.term);
    uint64_t applied = ps->applied_index;
    size_t rounds = 2 + fuzz_u8(in) % 6;
    bool stuck = false;
    for (size_t i = 0; i < rounds && !stuck; i++) {
        /* Refused while a committed conf change is not applied: the first Ready hands the
         * committed entries out (the harness applies them by advancing). */
        FUZZ_CHECK(raft_node_campaign(node) == 0);
        if (fuzz_u8(in) & 1) {
            uint8_t d = (uint8_t)i;
            rc = raft_node_propose(node, &d, 1, NULL, 0);
            FUZZ_CHECK(rc == 0 || rc == TKV_EDROPPED);
        }
        while (raft_node_has_ready(node)) {
            raft_ready *rd;
            rc = raft_node_ready(node, &rd);
            if (rc != 0) {
                /* An entry that does not read back (corrupt or missing in the engine). */
                FUZZ_CHECK(rc == TKV_ECORRUPT || rc == TKV_EUNAVAILABLE);
                stuck = true;
                break;
            }
            persist_ready(ps, raft, rd, &applied);
            FUZZ_CHECK(raft_node_advance(node) == 0);
        }
    }
    if (getenv("FUZZ_TRACE"))
        fprintf(stderr, "single voter: term %llu -> %llu, last %llu, commit %llu, stuck %d\n",
                (unsigned long long)term0, (unsigned long long)raft_node_term(node),
                (unsigned long long)ps->last_index, (unsigned long long)ps->hs.commit, stuck);
    /* Raft refuses terms and indexes past its limits: near them it cannot elect or append. */
    bool room = term0 + 2 < RAFT_TERM_LIMIT && ps->last_index + 16 < RAFT_INDEX_LIMIT;
    if (!stuck && room) {
        FUZZ_CHECK(raft_node_state(node) == RAFT_STATE_LEADER);
        FUZZ_CHECK(raft_node_term(node) > term0);
        FUZZ_CHECK(ps->hs.commit == ps->last_index); /* a single voter commits what it has */
    }
    raft_node_free(node);
}

static void load(fuzz_in *in, world *w)
{
    rstore *s = tkv_xcalloc(1, sizeof(*s));
    s->opts.kv = w->kv;
    s->opts.raft = w->raft;
    s->store_id = STORE_ID;
    Metapb__Region *region;
    int state;
    bool found;
    int rc = rstore__get_region_state(w->kv, REGION_ID, &region, &state, &found);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (rc != 0 || !found || state == RAFT_SERVERPB__PEER_STATE__Tombstone)
        goto out;
    const Metapb__Peer *mine = rstore__region_store_peer(region, STORE_ID);
    if (mine == NULL)
        goto out;
    rstore_peer_storage ps;
    rstore__ps_init(&ps, s, NULL, REGION_ID);
    rc = rstore__ps_load(&ps, region);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT);
    if (rc == 0) {
        FUZZ_CHECK(ps.truncated_index <= ps.applied_index);
        FUZZ_CHECK(ps.applied_index <= ps.last_index);
        FUZZ_CHECK(ps.hs.commit <= ps.last_index);
        FUZZ_CHECK(ps.last_index < RAFT_INDEX_LIMIT && ps.hs.term < RAFT_TERM_LIMIT);
        FUZZ_CHECK(ps.truncated_term <= ps.last_term && ps.last_term <= ps.hs.term);
        raft_storage st = rstore__ps_iface(&ps);
        FUZZ_CHECK(st.first_index(st.ctx) == ps.truncated_index + 1);
        FUZZ_CHECK(st.last_index(st.ctx) == ps.last_index);
        /* The Raft node as rstore__peer_create makes it, with the region's own members. */
        raft_config cfg;
        raft_config_default(&cfg, mine->id);
        cfg.applied = ps.applied_index;
        cfg.check_quorum = true;
        cfg.pre_vote = true;
        cfg.seed = 1;
        raft_node *node;
        rc = raft_node_new(&cfg, &st, &node);
        FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
        raft_node_free(node);
        /* The terms of every index the node could ask about. */
        for (uint64_t i = ps.truncated_index; i <= ps.last_index && i < ps.truncated_index + 24;
             i++) {
            uint64_t t;
            rc = st.term(st.ctx, i, &t);
            FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT || rc == TKV_EUNAVAILABLE);
        }
        if (mine->id != 0)
            run_single_voter(in, &ps, w->raft, mine->id);
    }
    rstore__ps_deinit(&ps);
out:
    rstore__region_free(region);
    tkv_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        tkv_log_set_level(TKV_LOG_OFF); /* unreadable entries log errors */
        init = true;
    }
    fuzz_in in = fuzz_in_of(data, size);
    world w = {0};
    FUZZ_CHECK(eng_mem_open(NULL, &w.kv) == 0);
    FUZZ_CHECK(eng_mem_open(NULL, &w.raft) == 0);
    write_region_state(&in, &w);
    write_state(&in, &w, &apply_codec);
    write_state(&in, &w, &raft_codec);
    write_entries(&in, &w);
    load(&in, &w);
    eng_close(w.kv);
    eng_close(w.raft);
    return 0;
}
