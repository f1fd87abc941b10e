/*
 * base.c: errors, allocator with fault injection, byte buffers, PRNG.
 */
#include "base/base.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- errors ---------------------------------------------------------------------------- */

const char *tkv_strerror(int err)
{
    switch (err) {
    case TKV_OK:
        return "ok";
    case TKV_ECORRUPT:
        return "corrupt data";
    case TKV_ECLOSED:
        return "closed";
    case TKV_ECOMPACTED:
        return "log compacted";
    case TKV_EUNAVAILABLE:
        return "temporarily unavailable";
    case TKV_ENOTFOUND:
        return "not found";
    case TKV_EENGINE:
        return "storage engine error";
    case TKV_ERPC:
        return "rpc error";
    case TKV_ENOTLEADER:
        return "not leader";
    case TKV_EDROPPED:
        return "proposal dropped";
    case TKV_ECONFIG:
        return "invalid configuration";
    case TKV_ETOOLARGE:
        return "too large";
    case TKV_EBUSY:
        return "busy";
    case TKV_ESTALE:
        return "stale";
    case TKV_EEXIST:
        return "already exists";
    case TKV_EUNSUPPORTED:
        return "unsupported";
    default:
        break;
    }
    if (err < 0 && err > -1000) {
        /* strerror() is not thread-safe; these are the codes we actually produce. */
        switch (-err) {
        case ENOMEM:
            return "out of memory";
        case EINVAL:
            return "invalid argument";
        case ENOENT:
            return "no such file or directory";
        case EIO:
            return "input/output error";
        case ETIMEDOUT:
            return "timed out";
        case ECANCELED:
            return "canceled";
        case EAGAIN:
            return "try again";
        case EEXIST:
            return "file exists";
        case ENOSPC:
            return "no space left on device";
        case EACCES:
            return "permission denied";
        case ERANGE:
            return "out of range";
        case ECONNREFUSED:
            return "connection refused";
        case EADDRINUSE:
            return "address in use";
        default:
            return "system error";
        }
    }
    return "unknown error";
}

void tkv__assert_fail(const char *expr, const char *file, int line)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "assertion failed: %s at %s:%d\n", expr, file, line);
    if (n > 0) {
        size_t len = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
        ssize_t w = write(STDERR_FILENO, msg, len);
        (void)w;
    }
    abort();
}

/* ---- allocation ------------------------------------------------------------------------ */

/* Remaining successful allocations before the hook fails them; < 0 means the hook is off. */
static atomic_long alloc_budget = -1;
static atomic_long alloc_failures = 0;

static bool alloc_should_fail(void)
{
    long b = atomic_load_explicit(&alloc_budget, memory_order_relaxed);
    if (b < 0)
        return false;
    for (;;) {
        if (b == 0) {
            atomic_fetch_add(&alloc_failures, 1);
            return true;
        }
        if (atomic_compare_exchange_weak(&alloc_budget, &b, b - 1))
            return false;
        if (b < 0)
            return false;
    }
}

void tkv_alloc_fail_after(long n)
{
    atomic_store(&alloc_failures, 0);
    atomic_store(&alloc_budget, n < 0 ? -1 : n);
}

void tkv_alloc_fault_clear(void)
{
    atomic_store(&alloc_budget, -1);
}

long tkv_alloc_fault_count(void)
{
    return atomic_load(&alloc_failures);
}

void *tkv_malloc(size_t size)
{
    if (alloc_should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *tkv_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    if (alloc_should_fail())
        return NULL;
    if (n == 0 || size == 0)
        return calloc(1, 1);
    return calloc(n, size);
}

void *tkv_realloc(void *p, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    return realloc(p, size ? size : 1);
}

void tkv_free(void *p)
{
    free(p);
}

char *tkv_strdup(const char *s)
{
    return tkv_memdup(s, strlen(s) + 1);
}

void *tkv_memdup(const void *p, size_t len)
{
    void *q = tkv_malloc(len);
    if (q != NULL && len > 0)
        memcpy(q, p, len);
    return q;
}

static TKV_NORETURN void oom(size_t size)
{
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "[FATAL] out of memory allocating %zu bytes\n", size);
    if (n > 0) {
        ssize_t w =
            write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
        (void)w;
    }
    abort();
}

void *tkv_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        oom(size);
    return p;
}

void *tkv_xcalloc(size_t n, size_t size)
{
    void *p = tkv_calloc(n, size);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *tkv_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        oom(size);
    return q;
}

char *tkv_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = tkv_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* ---- bytes ----------------------------------------------------------------------------- */

int tkv_slice_cmp(tkv_slice a, tkv_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.data, b.data, n) : 0;
    if (c != 0)
        return c;
    return a.len < b.len ? -1 : (a.len > b.len ? 1 : 0);
}

bool tkv_slice_eq(tkv_slice a, tkv_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

void tkv_buf_init(tkv_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void tkv_buf_deinit(tkv_buf *b)
{
    tkv_free(b->data);
    tkv_buf_init(b);
}

int tkv_buf_reserve(tkv_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return -ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 32;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = tkv_realloc(b->data, cap);
    if (p == NULL)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int tkv_buf_append(tkv_buf *b, const void *p, size_t len)
{
    int rc = tkv_buf_reserve(b, len);
    if (rc != 0)
        return rc;
    if (len > 0)
        memcpy(b->data + b->len, p, len);
    b->len += len;
    return 0;
}

int tkv_buf_append_u8(tkv_buf *b, uint8_t v)
{
    return tkv_buf_append(b, &v, 1);
}

int tkv_buf_set(tkv_buf *b, const void *p, size_t len)
{
    if (len > b->cap) {
        size_t old = b->len;
        b->len = 0;
        int rc = tkv_buf_reserve(b, len);
        if (rc != 0) {
            b->len = old;
            return rc;
        }
    }
    if (len > 0)
        memmove(b->data, p, len);
    b->len = len;
    return 0;
}

uint8_t *tkv_buf_steal(tkv_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len != NULL)
        *len = b->len;
    tkv_buf_init(b);
    return p;
}

/* ---- PRNG ------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void tkv_rng_seed(tkv_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t tkv_rng_next(tkv_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t tkv_rng_below(tkv_rng *r, uint64_t n)
{
    TKV_ASSERT(n > 0);
    /* Rejection sampling keeps the distribution uniform (Lemire's threshold). */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = tkv_rng_next(r);
        if (x >= threshold)
            return x % n;
    }
}

bool tkv_rng_chance(tkv_rng *r, uint64_t num, uint64_t den)
{
    if (num == 0)
        return false;
    if (num >= den)
        return true;
    return tkv_rng_below(r, den) < num;
}
