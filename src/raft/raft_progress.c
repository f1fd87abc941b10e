/*
 * raft_progress.c: what a leader knows about each member's log (Raft paper 5.3: nextIndex
 * and matchIndex), the flow control around it (etcd's probe / replicate / snapshot states and
 * a bounded window of appends in flight), and the quorum arithmetic over the voters.
 */
#include "raft/raft_int.h"

/* ---- in-flight window ---------------------------------------------------------------- */

int raft__inflights_init(raft__inflights *in, size_t cap)
{
    memset(in, 0, sizeof(*in));
    in->buf = tkv_malloc(cap * sizeof(uint64_t));
    if (!in->buf)
        return -ENOMEM;
    in->cap = cap;
    return 0;
}

void raft__inflights_deinit(raft__inflights *in)
{
    tkv_free(in->buf);
    memset(in, 0, sizeof(*in));
}

bool raft__inflights_full(const raft__inflights *in)
{
    return in->count == in->cap;
}

void raft__inflights_add(raft__inflights *in, uint64_t last)
{
    TKV_ASSERT(in->count < in->cap);
    in->buf[(in->start + in->count) % in->cap] = last;
    in->count++;
}

void raft__inflights_free_to(raft__inflights *in, uint64_t to)
{
    /* Appends are acknowledged in order of their last index: free every one up to @to. */
    while (in->count > 0 && in->buf[in->start] <= to) {
        in->start = (in->start + 1) % in->cap;
        in->count--;
    }
    if (in->count == 0)
        in->start = 0;
}

void raft__inflights_reset(raft__inflights *in)
{
    in->start = 0;
    in->count = 0;
}

/* ---- progress states ------------------------------------------------------------------- */

static void progress_reset_state(raft__progress *pr, raft__pr_state st)
{
    pr->probe_sent = false;
    pr->pending_snapshot = 0;
    pr->state = st;
    raft__inflights_reset(&pr->ins);
}

void raft__progress_become_probe(raft__progress *pr)
{
    if (pr->state == RAFT__PR_SNAPSHOT) {
        /* The snapshot may or may not have been installed: resume after whichever is later. */
        uint64_t pending = pr->pending_snapshot;
        progress_reset_state(pr, RAFT__PR_PROBE);
        pr->next = TKV_MAX(pr->match + 1, pending + 1);
    } else {
        progress_reset_state(pr, RAFT__PR_PROBE);
        pr->next = pr->match + 1;
    }
}

void raft__progress_become_replicate(raft__progress *pr)
{
    progress_reset_state(pr, RAFT__PR_REPLICATE);
    pr->next = pr->match + 1;
}

void raft__progress_become_snapshot(raft__progress *pr, uint64_t snapshot_index)
{
    progress_reset_state(pr, RAFT__PR_SNAPSHOT);
    pr->pending_snapshot = snapshot_index;
}

bool raft__progress_maybe_update(raft__progress *pr, uint64_t n)
{
    bool updated = false;
    if (pr->match < n) {
        pr->match = n;
        updated = true;
        pr->probe_sent = false;
    }
    if (pr->next < n + 1)
        pr->next = n + 1;
    return updated;
}

bool raft__progress_maybe_decr_to(raft__progress *pr, uint64_t rejected, uint64_t match_hint)
{
    if (pr->state == RAFT__PR_REPLICATE) {
        /* A rejection at or below match is stale (reordered); otherwise restart probing just
         * after what we know matches. */
        if (rejected <= pr->match)
            return false;
        pr->next = pr->match + 1;
        return true;
    }
    /* Probing: only the answer to the probe we sent (at next - 1) counts. */
    if (pr->next == 0 || pr->next - 1 != rejected)
        return false;
    /* Raft paper 5.3 with the thesis' fast backtracking: jump to the follower's hint. */
    pr->next = TKV_MAX(TKV_MIN(rejected, match_hint + 1), pr->match + 1);
    pr->probe_sent = false;
    return true;
}

bool raft__progress_is_paused(const raft__progress *pr)
{
    switch (pr->state) {
    case RAFT__PR_PROBE:
        return pr->probe_sent;
    case RAFT__PR_REPLICATE:
        return raft__inflights_full(&pr->ins);
    case RAFT__PR_SNAPSHOT:
        return true;
    }
    return true;
}

/* ---- the tracker --------------------------------------------------------------------- */

void raft__tracker_init(raft__tracker *t, size_t max_inflight)
{
    memset(t, 0, sizeof(*t));
    t->max_inflight = max_inflight;
}

void raft__tracker_deinit(raft__tracker *t)
{
    for (size_t i = 0; i < t->n; i++)
        raft__inflights_deinit(&t->prs[i].ins);
    t->n = 0;
}

raft__progress *raft__tracker_get(raft__tracker *t, uint64_t id)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->prs[i].id == id)
            return &t->prs[i];
    return NULL;
}

int raft__tracker_add(raft__tracker *t, uint64_t id, bool learner, uint64_t next)
{
    if (t->n == RAFT_MAX_MEMBERS)
        return TKV_ETOOLARGE;
    raft__progress *pr = &t->prs[t->n];
    memset(pr, 0, sizeof(*pr));
    int rc = raft__inflights_init(&pr->ins, t->max_inflight);
    if (rc != 0)
        return rc;
    pr->id = id;
    pr->is_learner = learner;
    pr->next = next;
    pr->state = RAFT__PR_PROBE;
    /* A new member counts as active so that check-quorum does not depose the leader before
     * it has had a chance to answer. */
    pr->recent_active = true;
    t->n++;
    return 0;
}

void raft__tracker_remove(raft__tracker *t, uint64_t id)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->prs[i].id == id) {
            raft__inflights_deinit(&t->prs[i].ins);
            memmove(&t->prs[i], &t->prs[i + 1], (t->n - i - 1) * sizeof(raft__progress));
            t->n--;
            return;
        }
    }
}

size_t raft__tracker_voter_count(const raft__tracker *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += !t->prs[i].is_learner;
    return n;
}

bool raft__tracker_is_voter(raft__tracker *t, uint64_t id)
{
    raft__progress *pr = raft__tracker_get(t, id);
    return pr && !pr->is_learner;
}

void raft__tracker_conf_state(const raft__tracker *t, raft_conf_state *cs)
{
    memset(cs, 0, sizeof(*cs));
    for (size_t i = 0; i < t->n; i++) {
        if (t->prs[i].is_learner)
            cs->learners[cs->n_learners++] = t->prs[i].id;
        else
            cs->voters[cs->n_voters++] = t->prs[i].id;
    }
}

/* Returns the value that at least a quorum of @vals (n of them) reach: the (n/2+1)-th
 * largest. */
static uint64_t quorum_value(uint64_t *vals, size_t n)
{
    if (n == 0)
        return 0;
    /* Insertion sort, descending: n is at most RAFT_MAX_MEMBERS. */
    for (size_t i = 1; i < n; i++) {
        uint64_t v = vals[i];
        size_t j = i;
        while (j > 0 && vals[j - 1] < v) {
            vals[j] = vals[j - 1];
            j--;
        }
        vals[j] = v;
    }
    return vals[n / 2];
}

uint64_t raft__tracker_committed(const raft__tracker *t)
{
    uint64_t vals[RAFT_MAX_MEMBERS];
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (!t->prs[i].is_learner)
            vals[n++] = t->prs[i].match;
    return quorum_value(vals, n);
}

uint64_t raft__tracker_quorum_ack(const raft__tracker *t, uint64_t self, uint64_t now)
{
    uint64_t vals[RAFT_MAX_MEMBERS];
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (!t->prs[i].is_learner)
            vals[n++] = t->prs[i].id == self ? now : t->prs[i].lease_ack_tick;
    return quorum_value(vals, n);
}

int raft__tracker_tally(const raft__tracker *t)
{
    size_t voters = 0, granted = 0, rejected = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->prs[i].is_learner)
            continue;
        voters++;
        granted += t->prs[i].vote > 0;
        rejected += t->prs[i].vote < 0;
    }
    size_t q = voters / 2 + 1;
    if (granted >= q)
        return 1;
    if (voters - rejected < q)
        return -1;
    return 0;
}

void raft__tracker_reset_votes(raft__tracker *t)
{
    for (size_t i = 0; i < t->n; i++)
        t->prs[i].vote = 0;
}

bool raft__tracker_quorum_active(const raft__tracker *t, uint64_t self)
{
    size_t voters = 0, active = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->prs[i].is_learner)
            continue;
        voters++;
        active += t->prs[i].recent_active || t->prs[i].id == self;
    }
    return voters > 0 && active >= voters / 2 + 1;
}
