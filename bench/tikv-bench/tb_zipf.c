/*
 * tb_zipf.c: key choice. YCSB's zipfian generator (Gray et al. 1994) and its "scrambled"
 * form, which draws from ten billion items and hashes the item into the key space, so the
 * popular keys are spread over it instead of clustering at its start.
 */
#include <math.h>

#include "tb.h"

/* Terms summed one by one before the Euler-Maclaurin tail takes over. */
#define ZETA_EXACT_TERMS 1000000ull

double tb_zeta(uint64_t n, double theta)
{
    uint64_t m = n < ZETA_EXACT_TERMS ? n : ZETA_EXACT_TERMS;
    double sum = 0.0;
    /* Smallest terms first, so the rounding errors stay small. */
    for (uint64_t i = m; i >= 1; i--)
        sum += pow((double)i, -theta);
    if (n == m)
        return sum;
    /* sum_{i=m+1..n} f(i) = integral_m^n f + (f(n) - f(m)) / 2 + (f'(n) - f'(m)) / 12 + ...,
     * with f(x) = x^-theta; the next term is below m^-4. */
    double dm = (double)m, dn = (double)n;
    double integral = (pow(dn, 1.0 - theta) - pow(dm, 1.0 - theta)) / (1.0 - theta);
    double ends = (pow(dn, -theta) - pow(dm, -theta)) / 2.0;
    double slopes = (-theta * pow(dn, -theta - 1.0) + theta * pow(dm, -theta - 1.0)) / 12.0;
    return sum + integral + ends + slopes;
}

void tb_zipf_init(tb_zipf *z, uint64_t items, double theta)
{
    z->items = items;
    z->theta = theta;
    z->zetan = tb_zeta(items, theta);
    double zeta2 = tb_zeta(2, theta);
    z->alpha = 1.0 / (1.0 - theta);
    z->eta = (1.0 - pow(2.0 / (double)items, 1.0 - theta)) / (1.0 - zeta2 / z->zetan);
    z->half_pow_theta = pow(0.5, theta);
}

double tb_rng_double(tkv_rng *r)
{
    return (double)(tkv_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t tb_zipf_next(const tb_zipf *z, tkv_rng *r)
{
    double u = tb_rng_double(r);
    double uz = u * z->zetan;
    if (uz < 1.0)
        return 0;
    if (uz < 1.0 + z->half_pow_theta)
        return 1;
    double v = (double)z->items * pow(z->eta * u - z->eta + 1.0, z->alpha);
    uint64_t item = (uint64_t)v;
    return item < z->items ? item : z->items - 1;
}

uint64_t tb_fnv64(uint64_t v)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        v >>= 8;
        h *= 1099511628211ull;
    }
    /* Java's Math.abs on a long; the most negative value stays as it is (2^63 unsigned). */
    if ((int64_t)h < 0 && h != (1ull << 63))
        h = (uint64_t)(-(int64_t)h);
    return h;
}

uint64_t tb_zipf_scrambled(const tb_zipf *z, tkv_rng *r, uint64_t n_keys)
{
    return tb_fnv64(tb_zipf_next(z, r)) % n_keys;
}
