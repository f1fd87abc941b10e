/*
 * tb_data.c: key and value layout, and the ledger that checks every value read back.
 *
 * A value (100 bytes) carries its own provenance, so a read can be checked without asking
 * anyone:
 *   [0, 16)   the key it was written for
 *   [16, 20)  epoch: the tikv-bench invocation that wrote it (big-endian)
 *   [20, 24)  version: the per-key write number in that invocation (big-endian)
 *   [24, 32)  balance (accounts), two's complement big-endian
 *   [32, 96)  filler derived from the bytes above
 *   [96, 100) FNV-1a 32-bit checksum of [0, 96)
 */
#include <inttypes.h>
#include <stdio.h>

#include "tb.h"

#define OFF_EPOCH   16
#define OFF_VERSION 20
#define OFF_BALANCE 24
#define OFF_FILLER  32
#define OFF_SUM     96

void tb_key(const char *prefix, uint64_t idx, uint8_t out[TB_KEY_LEN])
{
    memcpy(out, prefix, 4);
    for (int i = TB_KEY_LEN - 1; i >= 4; i--) {
        out[i] = (uint8_t)('0' + idx % 10);
        idx /= 10;
    }
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t fnv32(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill(uint8_t v[TB_VALUE_LEN])
{
    uint64_t s = (uint64_t)fnv32(v, OFF_FILLER) << 32 | fnv32(v + 8, OFF_FILLER - 8);
    for (int off = OFF_FILLER; off < OFF_SUM; off += 8)
        put_be(v + off, splitmix(&s), 8);
}

void tb_value_make(const uint8_t key[TB_KEY_LEN], uint32_t epoch, uint32_t version, int64_t balance,
                   uint8_t out[TB_VALUE_LEN])
{
    memcpy(out, key, TB_KEY_LEN);
    put_be(out + OFF_EPOCH, epoch, 4);
    put_be(out + OFF_VERSION, version, 4);
    put_be(out + OFF_BALANCE, (uint64_t)balance, 8);
    fill(out);
    put_be(out + OFF_SUM, fnv32(out, OFF_SUM), 4);
}

int tb_value_parse(const void *v, size_t len, const uint8_t key[TB_KEY_LEN], tb_value_info *info,
                   char *why, size_t why_len)
{
    const uint8_t *p = v;
    if (len != TB_VALUE_LEN) {
        snprintf(why, why_len, "value of %.16s has %zu bytes, want %d", (const char *)key, len,
                 TB_VALUE_LEN);
        return -1;
    }
    if (get_be(p + OFF_SUM, 4) != fnv32(p, OFF_SUM)) {
        snprintf(why, why_len, "value of %.16s: checksum mismatch (not a value tikv-bench wrote)",
                 (const char *)key);
        return -1;
    }
    if (memcmp(p, key, TB_KEY_LEN) != 0) {
        snprintf(why, why_len, "value read for %.16s was written for %.16s", (const char *)key,
                 (const char *)p);
        return -1;
    }
    uint8_t want[TB_VALUE_LEN];
    memcpy(want, p, OFF_FILLER);
    fill(want);
    if (memcmp(want + OFF_FILLER, p + OFF_FILLER, OFF_SUM - OFF_FILLER) != 0) {
        snprintf(why, why_len, "value of %.16s: filler bytes differ", (const char *)key);
        return -1;
    }
    info->epoch = (uint32_t)get_be(p + OFF_EPOCH, 4);
    info->version = (uint32_t)get_be(p + OFF_VERSION, 4);
    info->balance = (int64_t)get_be(p + OFF_BALANCE, 8);
    return 0;
}

int tb_ledger_init(tb_ledger *l, const char *prefix, uint64_t n, uint32_t epoch)
{
    memset(l, 0, sizeof(*l));
    memcpy(l->prefix, prefix, 4);
    l->n = n;
    l->epoch = epoch;
    if (n == 0)
        return 0;
    l->keys = tkv_calloc(n, sizeof(*l->keys));
    return l->keys == NULL ? -ENOMEM : 0;
}

void tb_ledger_deinit(tb_ledger *l)
{
    tkv_free(l->keys);
    l->keys = NULL;
    l->n = 0;
}

void tb_ledger_key(const tb_ledger *l, uint64_t idx, uint8_t key[TB_KEY_LEN])
{
    tb_key(l->prefix, idx, key);
}

void tb_ledger_write_begin(tb_ledger *l, uint64_t idx, tb_write *w)
{
    tb_key_state *k = &l->keys[idx];
    w->idx = idx;
    w->solo = atomic_fetch_add(&k->inflight, 1) == 0;
    w->version = atomic_fetch_add(&k->issued, 1) + 1;
}

void tb_ledger_write_end(tb_ledger *l, const tb_write *w, bool ok)
{
    tb_key_state *k = &l->keys[w->idx];
    /* Alone from start to finish: no write of the key was in flight when this one began
     * (all earlier ones were acknowledged, so ordered before it), and no later one was
     * handed a version (issued is still ours). */
    if (ok && w->solo && atomic_load(&k->issued) == w->version) {
        uint32_t cur = atomic_load(&k->floor);
        while (cur < w->version && !atomic_compare_exchange_weak(&k->floor, &cur, w->version)) {
        }
    }
    atomic_fetch_sub(&k->inflight, 1);
}

void tb_ledger_set_all(tb_ledger *l, uint32_t version)
{
    for (uint64_t i = 0; i < l->n; i++) {
        atomic_store(&l->keys[i].issued, version);
        atomic_store(&l->keys[i].floor, version);
    }
}

uint32_t tb_ledger_read_begin(const tb_ledger *l, uint64_t idx)
{
    return atomic_load(&l->keys[idx].floor);
}

int tb_ledger_check(const tb_ledger *l, uint64_t idx, uint32_t floor, bool linearizable,
                    const void *v, size_t len, tb_value_info *info, char *why, size_t why_len)
{
    uint8_t key[TB_KEY_LEN];
    tb_ledger_key(l, idx, key);
    if (v == NULL) {
        snprintf(why, why_len, "%.16s not found (every key was written)", (const char *)key);
        return -1;
    }
    tb_value_info vi;
    if (tb_value_parse(v, len, key, &vi, why, why_len) != 0)
        return -1;
    if (info != NULL)
        *info = vi;
    if (vi.epoch != l->epoch) {
        if (linearizable && floor > 0) {
            snprintf(why, why_len,
                     "stale read of %.16s: a value of an earlier run, after version %" PRIu32
                     " was acknowledged",
                     (const char *)key, floor);
            return -1;
        }
        return 0;
    }
    uint32_t issued = atomic_load(&l->keys[idx].issued);
    if (vi.version > issued) {
        snprintf(why, why_len, "%.16s: version %" PRIu32 " was never written (last %" PRIu32 ")",
                 (const char *)key, vi.version, issued);
        return -1;
    }
    if (linearizable && vi.version < floor) {
        snprintf(why, why_len,
                 "stale read of %.16s: version %" PRIu32 " after version %" PRIu32
                 " was acknowledged",
                 (const char *)key, vi.version, floor);
        return -1;
    }
    return 0;
}

int tb_ledger_check_range(const tb_ledger *l, uint64_t first, uint64_t want, const uint32_t *floors,
                          const tb_pair *pairs, size_t n, int64_t *sum, char *why, size_t why_len)
{
    if (n != want) {
        snprintf(why, why_len, "range from %s key %" PRIu64 ": %zu pairs, want %" PRIu64, l->prefix,
                 first, n, want);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t key[TB_KEY_LEN];
        tb_ledger_key(l, first + i, key);
        const tb_pair *p = &pairs[i];
        if (p->key.len != TB_KEY_LEN || memcmp(p->key.data, key, TB_KEY_LEN) != 0) {
            snprintf(why, why_len, "range: pair %zu has key %.*s, want %.16s", i,
                     (int)TKV_MIN(p->key.len, 64), (const char *)p->key.data, (const char *)key);
            return -1;
        }
        tb_value_info vi;
        if (tb_ledger_check(l, first + i, floors[i], true, p->value.data, p->value.len, &vi, why,
                            why_len) != 0)
            return -1;
        if (sum != NULL)
            *sum += vi.balance;
    }
    return 0;
}

void tb_ledger_end(const tb_ledger *l, uint8_t end[4])
{
    memcpy(end, l->prefix, 4);
    end[3]++;
}

uint32_t *tb_ledger_floors(const tb_ledger *l)
{
    uint32_t *f = tkv_calloc(l->n + 1, sizeof(*f));
    for (uint64_t i = 0; f != NULL && i < l->n; i++)
        f[i] = tb_ledger_read_begin(l, i);
    return f;
}

int tb_ledger_check_accounts(const tb_ledger *l, const uint32_t *floors, const tb_pair *pairs,
                             size_t n, char *why, size_t why_len)
{
    int64_t sum = 0;
    if (tb_ledger_check_range(l, 0, l->n, floors, pairs, n, &sum, why, why_len) != 0)
        return -1;
    if (sum != (int64_t)l->n * TB_ACCOUNT_START) {
        snprintf(why, why_len, "accounts sum to %" PRId64 ", want %" PRId64, sum,
                 (int64_t)l->n * TB_ACCOUNT_START);
        return -1;
    }
    return 0;
}
