/*
 * tb_hist.c: the latency histogram (log-linear buckets, as HdrHistogram lays them out).
 *
 * Below 2^TB_HIST_SUB_BITS every nanosecond has its bucket; above, each power of two
 * [2^m, 2^(m+1)) is cut into 2^(TB_HIST_SUB_BITS-1) equal sub-buckets, so a bucket is never
 * wider than 1/128 of the values it holds. Recording is a few shifts and one increment.
 */
#include "tb.h"

#define SUB_COUNT (1u << TB_HIST_SUB_BITS)
#define HALF      (1u << (TB_HIST_SUB_BITS - 1))

void tb_hist_reset(tb_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

unsigned tb_hist_index(uint64_t ns)
{
    if (ns < SUB_COUNT)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    if (msb > TB_HIST_MAX_BITS)
        return TB_HIST_BUCKETS - 1;
    unsigned shift = msb - (TB_HIST_SUB_BITS - 1);
    unsigned top = (unsigned)(ns >> shift); /* in [HALF, SUB_COUNT) */
    return SUB_COUNT + (msb - TB_HIST_SUB_BITS) * HALF + (top - HALF);
}

uint64_t tb_hist_bucket_high(unsigned idx)
{
    if (idx < SUB_COUNT)
        return idx;
    unsigned j = idx - SUB_COUNT;
    unsigned shift = j / HALF + 1;
    uint64_t low = (uint64_t)(HALF + j % HALF) << shift;
    return low + ((uint64_t)1 << shift) - 1;
}

void tb_hist_record(tb_hist *h, uint64_t ns)
{
    h->buckets[tb_hist_index(ns)]++;
    h->count++;
    h->sum_ns += ns;
    if (ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void tb_hist_merge(tb_hist *dst, const tb_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < TB_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum_ns += src->sum_ns;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

uint64_t tb_hist_percentile(const tb_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max_ns;
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < TB_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = tb_hist_bucket_high(i);
            return v > h->max_ns ? h->max_ns : v;
        }
    }
    return h->max_ns;
}

double tb_hist_mean(const tb_hist *h)
{
    return h->count == 0 ? 0.0 : (double)h->sum_ns / (double)h->count;
}
