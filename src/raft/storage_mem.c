/*
 * storage_mem.c: raft_mem_storage, a raft_storage kept in memory (etcd MemoryStorage). The
 * entry array starts with a marker at the snapshot's index and term (no data), so the term of
 * first_index - 1 stays known after compaction.
 */
#include "raft/raft_int.h"

struct raft_mem_storage {
    raft_hard_state hs;
    raft_snapshot snap; /* metadata.conf_state is the initial conf state before any snapshot */
    raft_entry *ents;   /* ents[0] is the marker */
    size_t n;
    size_t cap;
};

static uint64_t ms_offset(const raft_mem_storage *s)
{
    return s->ents[0].index;
}

static uint64_t ms_last(const raft_mem_storage *s)
{
    return s->ents[0].index + s->n - 1;
}

int raft_mem_storage_new(const raft_conf_state *cs, raft_mem_storage **out)
{
    *out = NULL;
    raft_mem_storage *s = tkv_calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->ents = tkv_calloc(16, sizeof(raft_entry));
    if (!s->ents) {
        tkv_free(s);
        return -ENOMEM;
    }
    s->cap = 16;
    s->n = 1;
    if (cs) {
        /* Bootstrap as TiKV does: the initial members come in a snapshot, so that a member
         * added later learns them from the snapshot it is sent. */
        s->snap.metadata.conf_state = *cs;
        s->snap.metadata.index = RAFT_MEM_BOOTSTRAP_INDEX;
        s->snap.metadata.term = RAFT_MEM_BOOTSTRAP_INDEX;
        s->ents[0].index = RAFT_MEM_BOOTSTRAP_INDEX;
        s->ents[0].term = RAFT_MEM_BOOTSTRAP_INDEX;
        s->hs.term = RAFT_MEM_BOOTSTRAP_INDEX;
        s->hs.commit = RAFT_MEM_BOOTSTRAP_INDEX;
    }
    *out = s;
    return 0;
}

void raft_mem_storage_free(raft_mem_storage *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        raft_entry_deinit(&s->ents[i]);
    tkv_free(s->ents);
    raft_snapshot_deinit(&s->snap);
    tkv_free(s);
}

/* ---- the raft_storage interface ---------------------------------------------------------- */

static int ms_initial_state(void *ctx, raft_hard_state *hs, raft_conf_state *cs)
{
    raft_mem_storage *s = ctx;
    *hs = s->hs;
    *cs = s->snap.metadata.conf_state;
    return 0;
}

static int ms_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes, raft_entry_vec *out)
{
    raft_mem_storage *s = ctx;
    uint64_t off = ms_offset(s);
    if (lo <= off)
        return TKV_ECOMPACTED;
    if (hi > ms_last(s) + 1 || lo > hi)
        return TKV_EUNAVAILABLE;
    return raft__push_limited(out, out->len, 0, &s->ents[lo - off], (size_t)(hi - lo), max_bytes);
}

static int ms_term(void *ctx, uint64_t index, uint64_t *term)
{
    raft_mem_storage *s = ctx;
    uint64_t off = ms_offset(s);
    if (index < off)
        return TKV_ECOMPACTED;
    if (index - off >= s->n)
        return TKV_EUNAVAILABLE;
    *term = s->ents[index - off].term;
    return 0;
}

static uint64_t ms_first_index(void *ctx)
{
    return ms_offset(ctx) + 1;
}

static uint64_t ms_last_index(void *ctx)
{
    return ms_last(ctx);
}

static int ms_snapshot(void *ctx, uint64_t request_index, raft_snapshot *out)
{
    raft_mem_storage *s = ctx;
    (void)request_index;
    return raft_snapshot_copy(out, &s->snap);
}

raft_storage raft_mem_storage_iface(raft_mem_storage *s)
{
    raft_storage st = {
        s, ms_initial_state, ms_entries, ms_term, ms_first_index, ms_last_index, ms_snapshot};
    return st;
}

/* ---- writing ------------------------------------------------------------------------- */

static int ms_reserve(raft_mem_storage *s, size_t want)
{
    if (want <= s->cap)
        return 0;
    size_t cap = s->cap * 2;
    while (cap < want)
        cap *= 2;
    raft_entry *grown = tkv_realloc(s->ents, cap * sizeof(raft_entry));
    if (!grown)
        return -ENOMEM;
    s->ents = grown;
    s->cap = cap;
    return 0;
}

int raft_mem_storage_append(raft_mem_storage *s, const raft_entry *ents, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 1; i < n; i++)
        if (ents[i].index != ents[0].index + i)
            return TKV_ECORRUPT;
    uint64_t first = ms_offset(s) + 1;
    uint64_t last = ents[0].index + n - 1;
    if (last < first)
        return 0; /* all already covered by the snapshot */
    if (first > ents[0].index) {
        size_t skip = (size_t)(first - ents[0].index);
        ents += skip;
        n -= skip;
    }
    uint64_t at = ents[0].index - ms_offset(s);
    if (at > s->n)
        return TKV_ECORRUPT; /* a gap after last_index */
    if (ms_reserve(s, (size_t)at + n) != 0)
        return -ENOMEM;
    raft_entry *copies = raft__entries_dup(ents, n);
    if (!copies)
        return -ENOMEM;
    for (size_t i = (size_t)at; i < s->n; i++)
        raft_entry_deinit(&s->ents[i]);
    memcpy(&s->ents[at], copies, n * sizeof(raft_entry));
    s->n = (size_t)at + n;
    tkv_free(copies);
    return 0;
}

void raft_mem_storage_set_hard_state(raft_mem_storage *s, const raft_hard_state *hs)
{
    s->hs = *hs;
}

raft_hard_state raft_mem_storage_hard_state(const raft_mem_storage *s)
{
    return s->hs;
}

int raft_mem_storage_apply_snapshot(raft_mem_storage *s, const raft_snapshot *snap)
{
    if (snap->metadata.index <= s->snap.metadata.index)
        return TKV_ESTALE;
    raft_snapshot copy;
    if (raft_snapshot_copy(&copy, snap) != 0)
        return -ENOMEM;
    for (size_t i = 0; i < s->n; i++)
        raft_entry_deinit(&s->ents[i]);
    s->n = 1;
    s->ents[0].index = snap->metadata.index;
    s->ents[0].term = snap->metadata.term;
    raft_snapshot_deinit(&s->snap);
    s->snap = copy;
    if (s->hs.commit < snap->metadata.index)
        s->hs.commit = snap->metadata.index;
    return 0;
}

int raft_mem_storage_create_snapshot(raft_mem_storage *s, uint64_t index, const raft_conf_state *cs,
                                     const void *data, size_t len)
{
    if (index <= s->snap.metadata.index)
        return TKV_ESTALE;
    if (index < ms_offset(s))
        return TKV_ECOMPACTED;
    if (index > ms_last(s))
        return TKV_ENOTFOUND;
    uint8_t *copy;
    if (raft__bytes_dup(data, len, &copy) != 0)
        return -ENOMEM;
    raft_snapshot_deinit(&s->snap);
    s->snap.metadata.index = index;
    s->snap.metadata.term = s->ents[index - ms_offset(s)].term;
    s->snap.metadata.conf_state = *cs;
    s->snap.data = copy;
    s->snap.data_len = copy ? len : 0;
    return 0;
}

int raft_mem_storage_compact(raft_mem_storage *s, uint64_t compact_index)
{
    uint64_t off = ms_offset(s);
    if (compact_index <= off)
        return TKV_ECOMPACTED;
    if (compact_index > ms_last(s))
        return TKV_ENOTFOUND;
    size_t i = (size_t)(compact_index - off);
    raft_entry marker = {RAFT_ENTRY_NORMAL, s->ents[i].term, s->ents[i].index, NULL, 0, NULL, 0};
    for (size_t k = 0; k <= i; k++)
        raft_entry_deinit(&s->ents[k]);
    memmove(&s->ents[1], &s->ents[i + 1], (s->n - i - 1) * sizeof(raft_entry));
    s->n -= i;
    s->ents[0] = marker;
    return 0;
}

const raft_snapshot *raft_mem_storage_snapshot_ref(const raft_mem_storage *s)
{
    return &s->snap;
}

int raft_mem_storage_clone(const raft_mem_storage *src, raft_mem_storage **dst)
{
    *dst = NULL;
    raft_mem_storage *s = tkv_calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->hs = src->hs;
    s->ents = tkv_calloc(src->cap, sizeof(raft_entry));
    if (!s->ents || raft_snapshot_copy(&s->snap, &src->snap) != 0) {
        tkv_free(s->ents);
        tkv_free(s);
        return -ENOMEM;
    }
    s->cap = src->cap;
    for (size_t i = 0; i < src->n; i++) {
        if (raft_entry_copy(&s->ents[i], &src->ents[i]) != 0) {
            s->n = i;
            raft_mem_storage_free(s);
            return -ENOMEM;
        }
    }
    s->n = src->n;
    *dst = s;
    return 0;
}
