/*
 * pd_region_tree.c: every known region, ordered by start key (a skiplist: O(log n) lookups,
 * inserts and deletes, in-order walks both ways) and indexed by id (a hash map).
 *
 * Invariant: the regions in the tree never overlap, so start keys are distinct and the
 * region containing a key is the one with the greatest start key <= key, if its end key is
 * beyond the key. An insert removes every region that overlaps the new one (and the old
 * version of the same id); pd__rt_check decides beforehand whether the new one may win
 * (PD's rule: a heartbeat is stale when its epoch is older than the region with its id, or
 * its version older than any region it overlaps).
 *
 * Levels are drawn from a PRNG seeded at init, so the shape is deterministic per sequence of
 * operations.
 */
#include "pd/pd_int.h"

struct pd_rt_node {
    pd_region *r;
    struct pd_rt_node *prev; /* level-0 predecessor (the head for the first node) */
    int level;
    struct pd_rt_node *next[];
};

static tkv_slice node_start(const pd_rt_node *n)
{
    return pd__region_start(n->r);
}

int pd__rt_init(pd_region_tree *t)
{
    memset(t, 0, sizeof(*t));
    t->head = tkv_calloc(1, sizeof(pd_rt_node) + PD_RT_MAX_LEVEL * sizeof(pd_rt_node *));
    if (t->head == NULL)
        return -ENOMEM;
    t->head->level = PD_RT_MAX_LEVEL;
    t->level = 1;
    tkv_rng_seed(&t->rng, 0x5eed5eedull);
    pd__map_init(&t->by_id);
    return 0;
}

void pd__rt_deinit(pd_region_tree *t)
{
    if (t->head == NULL)
        return;
    pd_rt_node *n = t->head->next[0];
    while (n != NULL) {
        pd_rt_node *next = n->next[0];
        pd__region_free(n->r);
        tkv_free(n);
        n = next;
    }
    tkv_free(t->head);
    pd__map_deinit(&t->by_id);
    memset(t, 0, sizeof(*t));
}

/* Fills @update[l] with the last node at level l whose start key is < @key (or <= @key with
 * @inclusive), and returns the level-0 node after update[0]. */
static pd_rt_node *search(const pd_region_tree *t, tkv_slice key, bool inclusive,
                          pd_rt_node **update)
{
    pd_rt_node *x = t->head;
    /* Above the tree's level the predecessor is the head. */
    for (int l = 0; update != NULL && l < PD_RT_MAX_LEVEL; l++)
        update[l] = t->head;
    for (int l = t->level - 1; l >= 0; l--) {
        for (;;) {
            pd_rt_node *nx = x->next[l];
            if (nx == NULL)
                break;
            int c = tkv_slice_cmp(node_start(nx), key);
            if (c < 0 || (inclusive && c == 0))
                x = nx;
            else
                break;
        }
        if (update != NULL)
            update[l] = x;
    }
    return x;
}

/* Returns the node with the greatest start key <= @key, or NULL. */
static pd_rt_node *find_le(const pd_region_tree *t, tkv_slice key)
{
    pd_rt_node *x = search(t, key, true, NULL);
    return x == t->head ? NULL : x;
}

static bool contains(const pd_region *r, tkv_slice key)
{
    tkv_slice end = pd__region_end(r);
    return tkv_slice_cmp(pd__region_start(r), key) <= 0 &&
           (end.len == 0 || tkv_slice_cmp(key, end) < 0);
}

pd_region *pd__rt_get(const pd_region_tree *t, uint64_t id)
{
    return pd__map_get(&t->by_id, id);
}

pd_region *pd__rt_find(const pd_region_tree *t, tkv_slice key)
{
    pd_rt_node *n = find_le(t, key);
    return (n != NULL && contains(n->r, key)) ? n->r : NULL;
}

pd_region *pd__rt_seek(const pd_region_tree *t, tkv_slice key)
{
    pd_rt_node *n = find_le(t, key);
    if (n != NULL && contains(n->r, key))
        return n->r;
    n = n != NULL ? n->next[0] : t->head->next[0];
    return n != NULL ? n->r : NULL;
}

pd_region *pd__rt_first(const pd_region_tree *t)
{
    pd_rt_node *n = t->head->next[0];
    return n != NULL ? n->r : NULL;
}

pd_region *pd__rt_next(const pd_region_tree *t, const pd_region *r)
{
    (void)t;
    pd_rt_node *n = r->node->next[0];
    return n != NULL ? n->r : NULL;
}

pd_region *pd__rt_prev(const pd_region_tree *t, const pd_region *r)
{
    pd_rt_node *p = r->node->prev;
    return p != t->head ? p->r : NULL;
}

pd_region *pd__rt_prev_adjacent(const pd_region_tree *t, tkv_slice key)
{
    pd_region *cur = pd__rt_find(t, key);
    if (cur == NULL)
        return NULL;
    pd_region *prev = pd__rt_prev(t, cur);
    if (prev == NULL || !tkv_slice_eq(pd__region_end(prev), pd__region_start(cur)))
        return NULL;
    return prev;
}

size_t pd__rt_count(const pd_region_tree *t)
{
    return t->count;
}

/* Appends @r to the growable array *@arr of *@n elements. */
static int push(pd_region ***arr, size_t *n, size_t *cap, pd_region *r)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        pd_region **na = tkv_realloc(*arr, nc * sizeof(*na));
        if (na == NULL)
            return -ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = r;
    return 0;
}

int pd__rt_overlaps(const pd_region_tree *t, tkv_slice start, tkv_slice end, pd_region ***out,
                    size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    pd_rt_node *x = find_le(t, start);
    if (x == NULL || !contains(x->r, start))
        x = x != NULL ? x->next[0] : t->head->next[0];
    for (; x != NULL; x = x->next[0]) {
        if (end.len != 0 && tkv_slice_cmp(node_start(x), end) >= 0)
            break;
        int rc = push(out, n, &cap, x->r);
        if (rc != 0) {
            tkv_free(*out);
            *out = NULL;
            *n = 0;
            return rc;
        }
    }
    return 0;
}

int pd__rt_check(const pd_region_tree *t, const Metapb__Region *incoming, uint64_t term,
                 pd_region **origin_out)
{
    const Metapb__RegionEpoch *e = incoming->region_epoch;
    uint64_t version = e ? e->version : 0, conf_ver = e ? e->conf_ver : 0;
    pd_region *origin = pd__rt_get(t, incoming->id);
    if (origin_out != NULL)
        *origin_out = origin;
    tkv_slice start = tkv_slice_of(incoming->start_key.data, incoming->start_key.len);
    tkv_slice end = tkv_slice_of(incoming->end_key.data, incoming->end_key.len);
    if (origin == NULL || !tkv_slice_eq(pd__region_start(origin), start) ||
        !tkv_slice_eq(pd__region_end(origin), end)) {
        pd_region **ov;
        size_t nov;
        int rc = pd__rt_overlaps(t, start, end, &ov, &nov);
        if (rc != 0)
            return rc;
        bool stale = false;
        for (size_t i = 0; i < nov && !stale; i++)
            stale = version < pd__region_version(ov[i]);
        tkv_free(ov);
        if (stale)
            return TKV_ESTALE;
    }
    if (origin != NULL) {
        bool term_behind = term > 0 && term < origin->term;
        if (term_behind || version < pd__region_version(origin) ||
            conf_ver < pd__region_conf_ver(origin))
            return TKV_ESTALE;
    }
    return 0;
}

static int random_level(pd_region_tree *t)
{
    int l = 1;
    while (l < PD_RT_MAX_LEVEL && (tkv_rng_next(&t->rng) & 3) == 0)
        l++;
    return l;
}

/* Unlinks @n (found through a fresh search) and frees the node, not its region. */
static void unlink_node(pd_region_tree *t, pd_rt_node *n)
{
    pd_rt_node *update[PD_RT_MAX_LEVEL];
    search(t, node_start(n), false, update);
    for (int l = 0; l < n->level; l++) {
        TKV_ASSERT(update[l]->next[l] == n);
        update[l]->next[l] = n->next[l];
    }
    if (n->next[0] != NULL)
        n->next[0]->prev = n->prev;
    while (t->level > 1 && t->head->next[t->level - 1] == NULL)
        t->level--;
    n->r->node = NULL;
    TKV_IGNORE(pd__map_del(&t->by_id, pd__region_id(n->r)) == NULL);
    t->count--;
    tkv_free(n);
}

void pd__rt_remove(pd_region_tree *t, pd_region *r)
{
    if (r->node != NULL)
        unlink_node(t, r->node);
}

int pd__rt_put(pd_region_tree *t, pd_region *r, pd_region ***removed, size_t *nremoved)
{
    *removed = NULL;
    *nremoved = 0;
    size_t cap = 0;
    /* An empty range would share its start key with a neighbour and break the order. */
    tkv_slice end = pd__region_end(r);
    if (end.len != 0 && tkv_slice_cmp(pd__region_start(r), end) >= 0)
        return -EINVAL;
    /* Reserve everything that can fail before changing the tree. */
    int level = random_level(t);
    pd_rt_node *n = tkv_calloc(1, sizeof(*n) + (size_t)level * sizeof(pd_rt_node *));
    if (n == NULL)
        return -ENOMEM;
    pd_region **ov;
    size_t nov;
    int rc = pd__rt_overlaps(t, pd__region_start(r), pd__region_end(r), &ov, &nov);
    if (rc != 0) {
        tkv_free(n);
        return rc;
    }
    pd_region *same = pd__rt_get(t, pd__region_id(r));
    bool same_in_ov = false;
    for (size_t i = 0; i < nov; i++)
        same_in_ov = same_in_ov || ov[i] == same;
    /* Make room in the id map now so that the insert below cannot fail. */
    rc = pd__map_put(&t->by_id, pd__region_id(r), same != NULL ? same : r);
    if (rc == 0 && same != NULL && !same_in_ov)
        rc = push(&ov, &nov, &cap, same);
    if (rc != 0) {
        if (same == NULL)
            TKV_IGNORE(pd__map_del(&t->by_id, pd__region_id(r)) == NULL);
        tkv_free(ov);
        tkv_free(n);
        return rc;
    }
    for (size_t i = 0; i < nov; i++)
        unlink_node(t, ov[i]->node);
    TKV_ASSERT(pd__map_put(&t->by_id, pd__region_id(r), r) == 0);

    pd_rt_node *update[PD_RT_MAX_LEVEL];
    pd_rt_node *x = search(t, pd__region_start(r), false, update);
    if (level > t->level)
        t->level = level;
    n->r = r;
    n->level = level;
    for (int l = 0; l < level; l++) {
        n->next[l] = update[l]->next[l];
        update[l]->next[l] = n;
    }
    n->prev = x;
    if (n->next[0] != NULL)
        n->next[0]->prev = n;
    r->node = n;
    t->count++;
    *removed = ov;
    *nremoved = nov;
    if (nov == 0) {
        tkv_free(ov);
        *removed = NULL;
    }
    return 0;
}
