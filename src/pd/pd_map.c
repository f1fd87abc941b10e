/*
 * pd_map.c: an open-addressing hash map from non-zero u64 ids to pointers (stores, regions,
 * operators are all keyed by their PD-allocated id, and 0 is never allocated).
 *
 * Linear probing with backward-shift deletion, so there are no tombstones and lookups stay
 * short after many deletions. The table doubles when it is 3/4 full.
 */
#include "pd/pd_int.h"

static size_t slot_of(uint64_t key, size_t cap)
{
    /* Fibonacci hashing spreads sequential ids over the table. */
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

void pd__map_init(pd_map *m)
{
    memset(m, 0, sizeof(*m));
}

void pd__map_deinit(pd_map *m)
{
    tkv_free(m->keys);
    tkv_free(m->vals);
    memset(m, 0, sizeof(*m));
}

void *pd__map_get(const pd_map *m, uint64_t key)
{
    if (m->cap == 0 || key == 0)
        return NULL;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key)
            return m->vals[i];
        if (m->keys[i] == 0)
            return NULL;
    }
}

static void insert_fresh(uint64_t *keys, void **vals, size_t cap, uint64_t key, void *val)
{
    size_t i = slot_of(key, cap);
    while (keys[i] != 0)
        i = (i + 1) & (cap - 1);
    keys[i] = key;
    vals[i] = val;
}

static int grow(pd_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    uint64_t *keys = tkv_calloc(cap, sizeof(*keys));
    void **vals = tkv_calloc(cap, sizeof(*vals));
    if (keys == NULL || vals == NULL) {
        tkv_free(keys);
        tkv_free(vals);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != 0)
            insert_fresh(keys, vals, cap, m->keys[i], m->vals[i]);
    tkv_free(m->keys);
    tkv_free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

int pd__map_put(pd_map *m, uint64_t key, void *val)
{
    if (key == 0)
        return -EINVAL;
    if (m->cap != 0) {
        for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
            if (m->keys[i] == key) {
                m->vals[i] = val;
                return 0;
            }
            if (m->keys[i] == 0)
                break;
        }
    }
    if ((m->len + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc != 0)
            return rc;
    }
    insert_fresh(m->keys, m->vals, m->cap, key, val);
    m->len++;
    return 0;
}

void *pd__map_del(pd_map *m, uint64_t key)
{
    if (m->cap == 0 || key == 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = slot_of(key, m->cap);
    while (m->keys[i] != key) {
        if (m->keys[i] == 0)
            return NULL;
        i = (i + 1) & mask;
    }
    void *val = m->vals[i];
    /* Backward shift: move later members of the probe run into the hole when their home
     * slot does not lie cyclically in (hole, their slot]. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
        size_t home = slot_of(m->keys[j], m->cap);
        bool stays = (hole <= j) ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->keys[hole] = 0;
    m->vals[hole] = NULL;
    m->len--;
    return val;
}

bool pd__map_next(const pd_map *m, size_t *pos, uint64_t *key, void **val)
{
    for (size_t i = *pos; i < m->cap; i++) {
        if (m->keys[i] != 0) {
            if (key != NULL)
                *key = m->keys[i];
            if (val != NULL)
                *val = m->vals[i];
            *pos = i + 1;
            return true;
        }
    }
    *pos = m->cap;
    return false;
}
