/*
 * test_pd_region_tree.c: the region tree: lookups by key, previous region, scans, splits
 * reported in any order, stale heartbeats rejected, overlapping regions replaced, and a
 * random model check (seeded by TKV_SEED).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pd_testutil.h"

/* Builds a region [start, end) with epoch (version, conf_ver) and one peer. */
static pd_region *mk(uint64_t id, const char *start, const char *end, uint64_t version,
                     uint64_t conf_ver)
{
    Metapb__Peer p = METAPB__PEER__INIT;
    p.id = id * 100;
    p.store_id = 1;
    Metapb__Peer *peers[] = {&p};
    Metapb__RegionEpoch e = METAPB__REGION_EPOCH__INIT;
    e.version = version;
    e.conf_ver = conf_ver;
    Metapb__Region m = METAPB__REGION__INIT;
    m.id = id;
    m.start_key.data = (uint8_t *)start;
    m.start_key.len = strlen(start);
    m.end_key.data = (uint8_t *)end;
    m.end_key.len = strlen(end);
    m.region_epoch = &e;
    m.n_peers = 1;
    m.peers = peers;
    pd_region *r;
    assert_int_equal(pd__region_new(&m, &p, NULL, 0, NULL, 0, &r), 0);
    return r;
}

/* Checks @r and, when not stale, puts it; returns the check result. Removed regions are
 * freed. */
static int offer(pd_region_tree *t, pd_region *r)
{
    int rc = pd__rt_check(t, pd__region_meta(r), 0, NULL);
    if (rc != 0) {
        pd__region_free(r);
        return rc;
    }
    pd_region **removed;
    size_t n;
    assert_int_equal(pd__rt_put(t, r, &removed, &n), 0);
    for (size_t i = 0; i < n; i++)
        pd__region_free(removed[i]);
    tkv_free(removed);
    return 0;
}

static uint64_t id_at(pd_region_tree *t, const char *key)
{
    pd_region *r = pd__rt_find(t, tkv_slice_str(key));
    return r ? pd__region_id(r) : 0;
}

static void test_tree_finds_regions_by_key_and_walks_in_order(void **state)
{
    (void)state;
    pd_region_tree t;
    assert_int_equal(pd__rt_init(&t), 0);
    assert_int_equal(offer(&t, mk(1, "", "b", 2, 1)), 0);
    assert_int_equal(offer(&t, mk(2, "b", "d", 2, 1)), 0);
    assert_int_equal(offer(&t, mk(3, "f", "", 2, 1)), 0); /* a hole at [d, f) */
    assert_int_equal(pd__rt_count(&t), 3);
    assert_int_equal(id_at(&t, ""), 1);
    assert_int_equal(id_at(&t, "a"), 1);
    assert_int_equal(id_at(&t, "b"), 2);
    assert_int_equal(id_at(&t, "c\xff"), 2);
    assert_int_equal(id_at(&t, "d"), 0);
    assert_int_equal(id_at(&t, "e"), 0);
    assert_int_equal(id_at(&t, "f"), 3);
    assert_int_equal(id_at(&t, "zzzz"), 3);
    /* seek lands on the next region after a hole */
    assert_int_equal(pd__region_id(pd__rt_seek(&t, tkv_slice_str("e"))), 3);
    /* previous region: only when adjacent */
    assert_int_equal(pd__region_id(pd__rt_prev_adjacent(&t, tkv_slice_str("c"))), 1);
    assert_null(pd__rt_prev_adjacent(&t, tkv_slice_str("a")));
    assert_null(pd__rt_prev_adjacent(&t, tkv_slice_str("g")));
    /* in-order walk both ways */
    uint64_t ids[3] = {0};
    size_t n = 0;
    for (pd_region *r = pd__rt_first(&t); r; r = pd__rt_next(&t, r))
        ids[n++] = pd__region_id(r);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[2], 3);
    assert_int_equal(pd__region_id(pd__rt_prev(&t, pd__rt_get(&t, 3))), 2);
    assert_null(pd__rt_prev(&t, pd__rt_get(&t, 1)));
    pd_region **ov;
    assert_int_equal(pd__rt_overlaps(&t, tkv_slice_str("a"), tkv_slice_str("g"), &ov, &n), 0);
    assert_int_equal(n, 3);
    tkv_free(ov);
    assert_int_equal(pd__rt_overlaps(&t, tkv_slice_str("d"), tkv_slice_str("f"), &ov, &n), 0);
    assert_int_equal(n, 0);
    tkv_free(ov);
    pd__rt_deinit(&t);
}

static void test_tree_split_reported_by_the_new_region_first(void **state)
{
    (void)state;
    pd_region_tree t;
    assert_int_equal(pd__rt_init(&t), 0);
    assert_int_equal(offer(&t, mk(1, "", "", 1, 1)), 0);
    /* TiKV splits [ "", "" ) at "m": the new region 2 takes [ "", "m"), region 1 keeps
     * ["m", ""). Region 2's heartbeat comes first and replaces the old region 1. */
    assert_int_equal(offer(&t, mk(2, "", "m", 2, 1)), 0);
    assert_int_equal(pd__rt_count(&t), 1);
    assert_int_equal(id_at(&t, "a"), 2);
    assert_int_equal(id_at(&t, "z"), 0);
    assert_int_equal(offer(&t, mk(1, "m", "", 2, 1)), 0);
    assert_int_equal(pd__rt_count(&t), 2);
    assert_int_equal(id_at(&t, "z"), 1);
    /* A late heartbeat of region 1 from before the split is stale. */
    assert_int_equal(offer(&t, mk(1, "", "", 1, 1)), TKV_ESTALE);
    assert_int_equal(id_at(&t, "a"), 2);
    pd__rt_deinit(&t);
}

static void test_tree_split_reported_by_the_old_region_first(void **state)
{
    (void)state;
    pd_region_tree t;
    assert_int_equal(pd__rt_init(&t), 0);
    assert_int_equal(offer(&t, mk(1, "", "", 1, 1)), 0);
    assert_int_equal(offer(&t, mk(1, "m", "", 2, 1)), 0);
    assert_int_equal(id_at(&t, "a"), 0); /* a hole until region 2 reports */
    assert_int_equal(offer(&t, mk(2, "", "m", 2, 1)), 0);
    assert_int_equal(id_at(&t, "a"), 2);
    assert_int_equal(id_at(&t, "m"), 1);
    pd__rt_deinit(&t);
}

static void test_tree_rejects_stale_epochs_and_replaces_overlaps(void **state)
{
    (void)state;
    pd_region_tree t;
    assert_int_equal(pd__rt_init(&t), 0);
    assert_int_equal(offer(&t, mk(1, "a", "c", 5, 5)), 0);
    assert_int_equal(offer(&t, mk(2, "c", "e", 5, 5)), 0);
    assert_int_equal(offer(&t, mk(1, "a", "c", 5, 4)), TKV_ESTALE); /* conf_ver behind */
    assert_int_equal(offer(&t, mk(1, "a", "c", 4, 6)), TKV_ESTALE); /* version behind */
    assert_int_equal(offer(&t, mk(1, "a", "c", 5, 6)), 0);          /* conf change */
    /* A new region overlapping both with an older version is stale... */
    assert_int_equal(offer(&t, mk(3, "b", "d", 4, 1)), TKV_ESTALE);
    /* ...with a newer version (a merge) it replaces both. */
    assert_int_equal(offer(&t, mk(3, "a", "e", 6, 1)), 0);
    assert_int_equal(pd__rt_count(&t), 1);
    assert_null(pd__rt_get(&t, 1));
    assert_null(pd__rt_get(&t, 2));
    assert_int_equal(id_at(&t, "d"), 3);
    /* Raft term behind is stale too. */
    pd_region *r = pd__rt_get(&t, 3);
    r->term = 9;
    pd_region *older = mk(3, "a", "e", 6, 1);
    assert_int_equal(pd__rt_check(&t, pd__region_meta(older), 8, NULL), TKV_ESTALE);
    assert_int_equal(pd__rt_check(&t, pd__region_meta(older), 9, NULL), 0);
    pd__region_free(older);
    pd__rt_deinit(&t);
}

static void test_tree_refuses_empty_ranges(void **state)
{
    (void)state;
    pd_region_tree t;
    assert_int_equal(pd__rt_init(&t), 0);
    assert_int_equal(offer(&t, mk(1, "t", "", 2, 1)), 0);
    /* [t, t) would share its start key with region 1 and break the order. */
    pd_region *empty = mk(2, "t", "t", 3, 1);
    pd_region **removed;
    size_t n;
    assert_int_equal(pd__rt_put(&t, empty, &removed, &n), -EINVAL);
    pd__region_free(empty);
    pd_region *inverted = mk(3, "z", "a", 3, 1);
    assert_int_equal(pd__rt_put(&t, inverted, &removed, &n), -EINVAL);
    pd__region_free(inverted);
    assert_int_equal(pd__rt_count(&t), 1);
    assert_int_equal(id_at(&t, "t"), 1);
    pd__rt_deinit(&t);
}

/* ---- random model check -------------------------------------------------------------- */

#define MODEL_KEYS 64

/* The model: owner[k] is the region id covering key k (two-letter keys "k00".."k63"), 0 for
 * none. Regions only split and change conf_ver, so every heartbeat sent is newest. */
typedef struct mregion {
    uint64_t id;
    int lo, hi; /* key indexes [lo, hi), hi == MODEL_KEYS means unbounded */
    uint64_t version, conf_ver;
} mregion;

static void key_name(int i, char *out)
{
    if (i <= 0 || i >= MODEL_KEYS)
        out[0] = '\0'; /* the unbounded ends */
    else
        snprintf(out, 8, "k%02d", i);
}

static void test_tree_matches_a_model_under_random_splits_and_late_reports(void **state)
{
    (void)state;
    tkv_rng rng;
    tkv_rng_seed(&rng, pdt_seed());
    pd_region_tree t;
    assert_int_equal(pd__rt_init(&t), 0);
    mregion regs[MODEL_KEYS];
    size_t nregs = 1;
    regs[0] = (mregion){.id = 1, .lo = 0, .hi = MODEL_KEYS, .version = 1, .conf_ver = 1};
    uint64_t next_id = 2;
    assert_int_equal(offer(&t, mk(1, "", "", 1, 1)), 0);
    /* Pending (unreported) halves of splits. */
    mregion pending[MODEL_KEYS];
    size_t npending = 0;
    for (int step = 0; step < 400; step++) {
        int what = (int)tkv_rng_below(&rng, 3);
        if (what == 0 && nregs < MODEL_KEYS - 1) {
            size_t i = tkv_rng_below(&rng, nregs);
            mregion *r = &regs[i];
            if (r->hi - r->lo < 2)
                continue;
            int mid = r->lo + 1 + (int)tkv_rng_below(&rng, (uint64_t)(r->hi - r->lo - 1));
            mregion left = {.id = next_id++,
                            .lo = r->lo,
                            .hi = mid,
                            .version = r->version + 1,
                            .conf_ver = r->conf_ver};
            r->lo = mid;
            r->version++;
            regs[nregs++] = left;
            /* Report one half now, the other later, in random order. */
            mregion now = tkv_rng_below(&rng, 2) ? left : *r;
            mregion later = now.id == left.id ? *r : left;
            char a[8], b[8];
            key_name(now.lo, a);
            key_name(now.hi, b);
            assert_int_equal(offer(&t, mk(now.id, a, b, now.version, now.conf_ver)), 0);
            pending[npending++] = later;
        } else if (what == 1 && npending > 0) {
            size_t i = tkv_rng_below(&rng, npending);
            mregion m = pending[i];
            pending[i] = pending[--npending];
            /* Only report if it is still the current shape of that region. */
            bool current = false;
            for (size_t j = 0; j < nregs; j++)
                current =
                    current || (regs[j].id == m.id && regs[j].lo == m.lo && regs[j].hi == m.hi &&
                                regs[j].version == m.version && regs[j].conf_ver == m.conf_ver);
            char a[8], b[8];
            key_name(m.lo, a);
            key_name(m.hi, b);
            int rc = offer(&t, mk(m.id, a, b, m.version, m.conf_ver));
            if (current)
                assert_int_equal(rc, 0);
        } else if (what == 2) {
            size_t i = tkv_rng_below(&rng, nregs);
            regs[i].conf_ver++;
            char a[8], b[8];
            key_name(regs[i].lo, a);
            key_name(regs[i].hi, b);
            assert_int_equal(offer(&t, mk(regs[i].id, a, b, regs[i].version, regs[i].conf_ver)), 0);
            /* A stale copy with the old conf_ver is refused. */
            assert_int_equal(offer(&t, mk(regs[i].id, a, b, regs[i].version, regs[i].conf_ver - 1)),
                             TKV_ESTALE);
        }
    }
    /* Report everything still pending, then the tree must equal the model exactly. */
    for (size_t j = 0; j < nregs; j++) {
        char a[8], b[8];
        key_name(regs[j].lo, a);
        key_name(regs[j].hi, b);
        assert_int_equal(offer(&t, mk(regs[j].id, a, b, regs[j].version, regs[j].conf_ver)), 0);
    }
    assert_int_equal(pd__rt_count(&t), nregs);
    for (int k = 0; k < MODEL_KEYS; k++) {
        char key[8];
        if (k == 0)
            key[0] = '\0';
        else
            snprintf(key, sizeof(key), "k%02d", k);
        uint64_t want = 0;
        for (size_t j = 0; j < nregs; j++)
            if (regs[j].lo <= k && k < regs[j].hi)
                want = regs[j].id;
        assert_int_equal(id_at(&t, key), want);
    }
    pd__rt_deinit(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_finds_regions_by_key_and_walks_in_order),
        cmocka_unit_test(test_tree_split_reported_by_the_new_region_first),
        cmocka_unit_test(test_tree_split_reported_by_the_old_region_first),
        cmocka_unit_test(test_tree_rejects_stale_epochs_and_replaces_overlaps),
        cmocka_unit_test(test_tree_refuses_empty_ranges),
        cmocka_unit_test(test_tree_matches_a_model_under_random_splits_and_late_reports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
