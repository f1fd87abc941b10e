/*
 * raft_log.c: the replicated log as one node sees it: the caller's storage (persisted
 * entries, possibly compacted behind a snapshot) followed by the unstable tail that was
 * appended or received but not yet handed to the caller for persisting.
 */
#include "raft/raft_int.h"

/* ---- the unstable tail ----------------------------------------------------------------- */

static bool unstable_term(const raft__unstable *u, uint64_t i, uint64_t *term)
{
    if (i < u->offset) {
        if (u->snapshot && u->snapshot->metadata.index == i) {
            *term = u->snapshot->metadata.term;
            return true;
        }
        return false;
    }
    if (i - u->offset >= u->n)
        return false;
    *term = u->ents[i - u->offset].term;
    return true;
}

static void unstable_free_entries(raft__unstable *u, size_t from)
{
    for (size_t i = from; i < u->n; i++)
        raft_entry_deinit(&u->ents[i]);
    if (from < u->n)
        u->n = from;
}

/* ---- construction -------------------------------------------------------------------- */

int raft__log_init(raft__log *l, const raft_storage *storage, uint64_t max_committed_size)
{
    memset(l, 0, sizeof(*l));
    l->storage = *storage;
    l->max_committed_size_per_ready = max_committed_size;
    uint64_t first = storage->first_index(storage->ctx);
    uint64_t last = storage->last_index(storage->ctx);
    if (first == 0 || last + 1 < first)
        return TKV_ECONFIG;
    l->u.offset = last + 1;
    /* Everything up to the snapshot is committed and applied by definition. */
    l->committed = first - 1;
    l->applied = first - 1;
    return 0;
}

void raft__log_deinit(raft__log *l)
{
    unstable_free_entries(&l->u, 0);
    tkv_free(l->u.ents);
    if (l->u.snapshot) {
        raft_snapshot_deinit(l->u.snapshot);
        tkv_free(l->u.snapshot);
    }
    memset(l, 0, sizeof(*l));
}

/* ---- indexes and terms ----------------------------------------------------------------- */

uint64_t raft__log_first_index(const raft__log *l)
{
    if (l->u.snapshot)
        return l->u.snapshot->metadata.index + 1;
    return l->storage.first_index(l->storage.ctx);
}

uint64_t raft__log_last_index(const raft__log *l)
{
    if (l->u.n)
        return l->u.offset + l->u.n - 1;
    if (l->u.snapshot)
        return l->u.snapshot->metadata.index;
    return l->storage.last_index(l->storage.ctx);
}

uint64_t raft__log_persisted_index(const raft__log *l)
{
    if (l->u.snapshot)
        return 0; /* nothing after the old storage state is known to agree with the log */
    uint64_t stored = l->storage.last_index(l->storage.ctx);
    if (l->u.n && l->u.offset - 1 < stored)
        return l->u.offset - 1;
    return stored;
}

int raft__log_term(const raft__log *l, uint64_t i, uint64_t *term)
{
    *term = 0;
    uint64_t dummy = raft__log_first_index(l) - 1;
    if (i < dummy)
        return TKV_ECOMPACTED;
    if (i > raft__log_last_index(l))
        return 0;
    if (unstable_term(&l->u, i, term))
        return 0;
    int rc = l->storage.term(l->storage.ctx, i, term);
    if (rc != 0)
        *term = 0;
    return rc;
}

uint64_t raft__log_term_or_zero(const raft__log *l, uint64_t i)
{
    uint64_t t;
    return raft__log_term(l, i, &t) == 0 ? t : 0;
}

uint64_t raft__log_last_term(const raft__log *l)
{
    return raft__log_term_or_zero(l, raft__log_last_index(l));
}

bool raft__log_match_term(const raft__log *l, uint64_t i, uint64_t term)
{
    uint64_t t;
    /* Past the last entry there is nothing to match (raft__log_term answers 0 there, which a
     * message claiming term 0 would otherwise match: a forged snapshot or append of term 0
     * then committed past the end of the log). */
    if (i > raft__log_last_index(l) || raft__log_term(l, i, &t) != 0)
        return false;
    return t == term;
}

bool raft__log_is_up_to_date(const raft__log *l, uint64_t last_index, uint64_t last_term)
{
    /* Raft paper 5.4.1: the later last term wins; on a tie, the longer log. */
    uint64_t our_term = raft__log_last_term(l);
    return last_term > our_term || (last_term == our_term && last_index >= raft__log_last_index(l));
}

/* ---- reading entries ----------------------------------------------------------------- */

int raft__log_slice(const raft__log *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                    raft_entry_vec *out)
{
    if (lo >= hi)
        return 0;
    if (lo < raft__log_first_index(l))
        return TKV_ECOMPACTED;
    uint64_t last = raft__log_last_index(l);
    if (hi > last + 1)
        hi = last + 1;
    if (lo >= hi)
        return 0;
    size_t start = out->len;
    uint64_t size = 0;
    if (lo < l->u.offset) {
        uint64_t shi = TKV_MIN(hi, l->u.offset);
        int rc = l->storage.entries(l->storage.ctx, lo, shi, max_bytes, out);
        if (rc != 0) {
            raft_entry_vec_truncate(out, start);
            return rc;
        }
        for (size_t i = start; i < out->len; i++)
            size += raft_entry_size(&out->items[i]);
        if (out->len - start < shi - lo)
            return 0; /* the size limit stopped the storage part */
    }
    uint64_t from = TKV_MAX(lo, l->u.offset);
    if (from >= hi)
        return 0;
    return raft__push_limited(out, start, size, &l->u.ents[from - l->u.offset], (size_t)(hi - from),
                              max_bytes);
}

/* ---- appending ----------------------------------------------------------------------- */

int raft__log_append(raft__log *l, const raft_entry *ents, size_t n)
{
    if (n == 0)
        return 0;
    raft__unstable *u = &l->u;
    uint64_t after = ents[0].index;
    if (after > u->offset + u->n)
        return TKV_ECORRUPT; /* a gap after the last entry */
    /* Copy first, so that a failed allocation leaves the log as it was. */
    raft_entry *copies = raft__entries_dup(ents, n);
    if (!copies)
        return -ENOMEM;
    size_t keep;
    if (after <= u->offset) {
        /* The new entries replace the whole unstable part and perhaps part of storage; the
         * caller's persist step overwrites the stored tail. */
        keep = 0;
    } else {
        keep = (size_t)(after - u->offset);
    }
    if (keep + n > u->cap) {
        size_t cap = u->cap ? u->cap : 16;
        while (cap < keep + n)
            cap *= 2;
        raft_entry *grown = tkv_realloc(u->ents, cap * sizeof(raft_entry));
        if (!grown) {
            raft__entries_free(copies, n);
            return -ENOMEM;
        }
        u->ents = grown;
        u->cap = cap;
    }
    unstable_free_entries(u, keep);
    if (keep == 0)
        u->offset = after;
    memcpy(&u->ents[keep], copies, n * sizeof(raft_entry));
    u->n = keep + n;
    tkv_free(copies);
    return 0;
}

uint64_t raft__log_find_conflict(const raft__log *l, const raft_entry *ents, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!raft__log_match_term(l, ents[i].index, ents[i].term))
            return ents[i].index;
    return 0;
}

uint64_t raft__log_find_conflict_by_term(const raft__log *l, uint64_t index, uint64_t term)
{
    uint64_t last = raft__log_last_index(l);
    if (index > last)
        return index;
    for (; index > 0; index--) {
        uint64_t t;
        if (raft__log_term(l, index, &t) != 0 || t <= term)
            break;
    }
    return index;
}

int raft__log_maybe_append(raft__log *l, uint64_t index, uint64_t log_term, uint64_t commit,
                           const raft_entry *ents, size_t n, bool *ok, uint64_t *last_new)
{
    *ok = false;
    *last_new = 0;
    for (size_t i = 0; i < n; i++)
        if (ents[i].index != index + 1 + i || ents[i].term == 0)
            return TKV_ECORRUPT; /* a leader sends consecutive entries after (index, term) */
    /* Raft paper 5.3, receiver rule 2: reply false unless the log has (index, log_term). */
    if (!raft__log_match_term(l, index, log_term))
        return 0;
    uint64_t lastnew = index + n;
    /* Rules 3 and 4: delete a conflicting suffix, append what is new. */
    uint64_t ci = raft__log_find_conflict(l, ents, n);
    if (ci != 0) {
        if (ci <= l->committed)
            return TKV_ECORRUPT; /* committed entries never change (Log Matching) */
        int rc = raft__log_append(l, ents + (ci - index - 1), n - (size_t)(ci - index - 1));
        if (rc != 0)
            return rc;
    }
    /* Rule 5: commit = min(leader commit, index of last new entry). */
    raft__log_commit_to(l, TKV_MIN(commit, lastnew));
    *ok = true;
    *last_new = lastnew;
    return 0;
}

/* ---- commit and apply ------------------------------------------------------------------ */

void raft__log_commit_to(raft__log *l, uint64_t commit)
{
    if (commit > l->committed) {
        TKV_ASSERT(commit <= raft__log_last_index(l));
        l->committed = commit;
    }
}

bool raft__log_maybe_commit(raft__log *l, uint64_t max_index, uint64_t term)
{
    if (max_index <= l->committed)
        return false;
    /* Raft paper 5.4.2 (Figure 8): a leader commits only entries of its own term by counting
     * replicas; earlier entries become committed indirectly. */
    if (!TKV_RAFT_MUTATION_COMMIT_OLD_TERM && raft__log_term_or_zero(l, max_index) != term)
        return false;
    raft__log_commit_to(l, max_index);
    return true;
}

void raft__log_applied_to(raft__log *l, uint64_t i)
{
    if (i == 0 || i <= l->applied)
        return;
    TKV_ASSERT(i <= l->committed);
    l->applied = i;
}

bool raft__log_has_next_committed(const raft__log *l)
{
    uint64_t off = TKV_MAX(l->applied + 1, raft__log_first_index(l));
    return l->committed + 1 > off;
}

int raft__log_next_committed(const raft__log *l, raft_entry_vec *out)
{
    uint64_t off = TKV_MAX(l->applied + 1, raft__log_first_index(l));
    if (l->committed + 1 <= off)
        return 0;
    uint64_t max = l->max_committed_size_per_ready ? l->max_committed_size_per_ready : UINT64_MAX;
    return raft__log_slice(l, off, l->committed + 1, max, out);
}

/* ---- snapshots and persistence ----------------------------------------------------------- */

int raft__log_restore(raft__log *l, const raft_snapshot *s)
{
    raft_snapshot *copy = tkv_malloc(sizeof(*copy));
    if (!copy)
        return -ENOMEM;
    if (raft_snapshot_copy(copy, s) != 0) {
        tkv_free(copy);
        return -ENOMEM;
    }
    raft__unstable *u = &l->u;
    unstable_free_entries(u, 0);
    if (u->snapshot) {
        raft_snapshot_deinit(u->snapshot);
        tkv_free(u->snapshot);
    }
    u->snapshot = copy;
    u->offset = s->metadata.index + 1;
    l->committed = s->metadata.index;
    return 0;
}

void raft__log_stable_to(raft__log *l, uint64_t i, uint64_t t)
{
    raft__unstable *u = &l->u;
    uint64_t gt;
    /* Only if the entry is still the one that was persisted (it may have been replaced). */
    if (i < u->offset || !unstable_term(u, i, &gt) || gt != t)
        return;
    size_t drop = (size_t)(i + 1 - u->offset);
    for (size_t k = 0; k < drop; k++)
        raft_entry_deinit(&u->ents[k]);
    memmove(u->ents, u->ents + drop, (u->n - drop) * sizeof(raft_entry));
    u->n -= drop;
    u->offset = i + 1;
    if (u->n == 0 && u->cap > 1024) {
        /* Give back the memory of a burst. */
        tkv_free(u->ents);
        u->ents = NULL;
        u->cap = 0;
    }
}

void raft__log_stable_snap_to(raft__log *l, uint64_t i)
{
    raft__unstable *u = &l->u;
    if (u->snapshot && u->snapshot->metadata.index == i) {
        raft_snapshot_deinit(u->snapshot);
        tkv_free(u->snapshot);
        u->snapshot = NULL;
    }
}

int raft__log_snapshot(const raft__log *l, uint64_t request_index, raft_snapshot *out)
{
    if (l->u.snapshot)
        return raft_snapshot_copy(out, l->u.snapshot);
    memset(out, 0, sizeof(*out));
    return l->storage.snapshot(l->storage.ctx, request_index, out);
}
