/*
 * base.h: the ground every tikv-c module stands on.
 *
 * Owns: error codes and their names, the allocator with its fault-injection hook, byte
 * slices (borrowed) and buffers (owned), assertions, and a small seeded PRNG.
 * Threads: everything here is thread-safe; the allocator hook is a process-wide setting meant
 * for tests (set it before threads start).
 * Errors: fallible functions return 0 or a negative TKV_E* code; system errors are -errno,
 * ours are below -1000. tkv_strerror() names each.
 * Ownership: tkv_slice never owns its bytes; tkv_buf owns its heap block and is released with
 * tkv_buf_deinit().
 * Dependencies: libc only.
 *
 * Usage:
 *     tkv_buf b;
 *     tkv_buf_init(&b);
 *     int rc = tkv_buf_append(&b, "abc", 3);
 *     if (rc != 0) return rc;           // -ENOMEM when the allocator fails
 *     use(tkv_buf_slice(&b));
 *     tkv_buf_deinit(&b);
 */
#ifndef TKV_BASE_H
#define TKV_BASE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- attributes ---------------------------------------------------------------------- */

#define TKV_MUST_USE          __attribute__((warn_unused_result))
#define TKV_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define TKV_NORETURN          __attribute__((noreturn))
#define TKV_UNUSED            __attribute__((unused))

/* A deliberate drop of a TKV_MUST_USE result: gcc rejects the `(void)f()` spelling. */
#define TKV_IGNORE(expr)                                                                           \
    do {                                                                                           \
        if (expr) {                                                                                \
        }                                                                                          \
    } while (0)

#define TKV_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TKV_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define TKV_MAX(a, b)    ((a) > (b) ? (a) : (b))

/* ---- errors ---------------------------------------------------------------------------- */

enum {
    TKV_OK = 0,
    /* Our own codes live below -1000 so they never collide with -errno. */
    TKV_ECORRUPT = -1001,     /* bytes from disk or network do not decode */
    TKV_ECLOSED = -1002,      /* the object was closed or is shutting down */
    TKV_ECOMPACTED = -1003,   /* the requested raft log index was compacted away */
    TKV_EUNAVAILABLE = -1004, /* temporarily unavailable (a snapshot being built, ...) */
    TKV_ENOTFOUND = -1005,    /* a lookup found nothing where something was required */
    TKV_EENGINE = -1006,      /* the storage engine failed; its message is in errmsg */
    TKV_ERPC = -1007,         /* an RPC failed; details in errmsg */
    TKV_ENOTLEADER = -1008,   /* this raft node is not the leader */
    TKV_EDROPPED = -1009,     /* a raft proposal was dropped (no leader, transfer, ...) */
    TKV_ECONFIG = -1010,      /* configuration is invalid; details in errmsg */
    TKV_ETOOLARGE = -1011,    /* an input exceeds a configured limit */
    TKV_EBUSY = -1012,        /* overloaded; retry later */
    TKV_ESTALE = -1013,       /* an epoch, term or version is older than the current one */
    TKV_EEXIST = -1014,       /* the object already exists */
    TKV_EUNSUPPORTED = -1015, /* the operation or option is not supported */
};

/* Longest message a long-lived handle keeps in its errmsg buffer. */
#define TKV_ERRMSG_LEN 256

/* Returns a static, human-readable name for the error code @err (0, -errno or TKV_E*). */
const char *tkv_strerror(int err);

/* ---- assertions ------------------------------------------------------------------------ */

TKV_NORETURN void tkv__assert_fail(const char *expr, const char *file, int line);

/* Cheap invariant checks that stay on in release builds: crashing beats corrupting. Never
 * assert on bytes from the network or the disk; return TKV_ECORRUPT instead. */
#define TKV_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0))                                                          \
            tkv__assert_fail(#cond, __FILE__, __LINE__);                                           \
    } while (0)

/* Costly checks, on only in test builds (TKV_TESTING) and debug builds. */
#if defined(TKV_TESTING) || !defined(NDEBUG)
#define TKV_DASSERT(cond) TKV_ASSERT(cond)
#else
#define TKV_DASSERT(cond)                                                                          \
    do {                                                                                           \
    } while (0)
#endif

/* ---- allocation ------------------------------------------------------------------------ */

/* Returns a block of @size bytes, or NULL when the allocator (or the fault hook) fails.
 * tkv_malloc(0) returns a valid, unique pointer. */
TKV_MUST_USE void *tkv_malloc(size_t size);
/* Returns a zeroed block of @n * @size bytes, or NULL (also on multiplication overflow). */
TKV_MUST_USE void *tkv_calloc(size_t n, size_t size);
/* Resizes @p to @size bytes; on failure returns NULL and leaves @p untouched. */
TKV_MUST_USE void *tkv_realloc(void *p, size_t size);
/* Releases a block from the functions above; NULL is a no-op. */
void tkv_free(void *p);
/* Returns a heap copy of the NUL-terminated @s, or NULL. */
TKV_MUST_USE char *tkv_strdup(const char *s);
/* Returns a heap copy of @len bytes at @p (NULL only on failure; @len 0 gives a valid block). */
TKV_MUST_USE void *tkv_memdup(const void *p, size_t len);

/* Variants for server binaries: they log and abort instead of returning NULL (Redis zmalloc). */
void *tkv_xmalloc(size_t size);
void *tkv_xcalloc(size_t n, size_t size);
void *tkv_xrealloc(void *p, size_t size);
char *tkv_xstrdup(const char *s);

/* Fault injection for tests: after @n more successful allocations, every later tkv_malloc,
 * tkv_calloc, tkv_realloc, tkv_strdup and tkv_memdup fails until tkv_alloc_fault_clear().
 * @n < 0 disables the hook. Thread: a process-wide setting; set it from the test thread. */
void tkv_alloc_fail_after(long n);
/* Disables the fault hook. */
void tkv_alloc_fault_clear(void);
/* Returns how many allocations failed because of the hook since the last clear. */
long tkv_alloc_fault_count(void);

/* ---- bytes ----------------------------------------------------------------------------- */

/* Borrowed bytes: never owns data, never NUL-terminated by contract. */
typedef struct tkv_slice {
    const uint8_t *data;
    size_t len;
} tkv_slice;

/* Owned, growable bytes. data is NULL only while cap is 0. */
typedef struct tkv_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} tkv_buf;

/* Returns a slice over @len bytes at @p. */
static inline tkv_slice tkv_slice_of(const void *p, size_t len)
{
    tkv_slice s = {(const uint8_t *)p, len};
    return s;
}

/* Returns a slice over the NUL-terminated string @s (without the NUL). */
static inline tkv_slice tkv_slice_str(const char *s)
{
    return tkv_slice_of(s, strlen(s));
}

/* Returns <0, 0 or >0 as @a sorts before, equal to or after @b (bytewise, shorter first on a
 * common prefix). */
int tkv_slice_cmp(tkv_slice a, tkv_slice b);
/* Returns true when @a and @b hold the same bytes. */
bool tkv_slice_eq(tkv_slice a, tkv_slice b);

/* Initializes an empty buffer (no allocation). */
void tkv_buf_init(tkv_buf *b);
/* Releases the buffer's memory and leaves it empty; safe to call twice. */
void tkv_buf_deinit(tkv_buf *b);
/* Ensures room for @extra more bytes. Errors: -ENOMEM (the buffer is unchanged). */
TKV_MUST_USE int tkv_buf_reserve(tkv_buf *b, size_t extra);
/* Appends @len bytes at @p. Errors: -ENOMEM (the buffer is unchanged). */
TKV_MUST_USE int tkv_buf_append(tkv_buf *b, const void *p, size_t len);
/* Appends one byte. Errors: -ENOMEM. */
TKV_MUST_USE int tkv_buf_append_u8(tkv_buf *b, uint8_t v);
/* Replaces the contents with @len bytes at @p. Errors: -ENOMEM (the buffer is unchanged). */
TKV_MUST_USE int tkv_buf_set(tkv_buf *b, const void *p, size_t len);
/* Empties the buffer, keeping its memory. */
static inline void tkv_buf_reset(tkv_buf *b)
{
    b->len = 0;
}
/* Returns a slice over the buffer's bytes, valid until the buffer next changes. */
static inline tkv_slice tkv_buf_slice(const tkv_buf *b)
{
    return tkv_slice_of(b->data, b->len);
}
/* Moves ownership of the buffer's block to the caller and leaves @b empty. */
uint8_t *tkv_buf_steal(tkv_buf *b, size_t *len);

/* ---- deterministic PRNG ---------------------------------------------------------------- */

/* xoshiro256** state. Plain data: copy it to fork a stream. Not thread-safe. */
typedef struct tkv_rng {
    uint64_t s[4];
} tkv_rng;

/* Seeds @r from @seed (splitmix64 expansion; every seed, 0 included, is valid). */
void tkv_rng_seed(tkv_rng *r, uint64_t seed);
/* Returns the next 64 random bits. */
uint64_t tkv_rng_next(tkv_rng *r);
/* Returns a uniform value in [0, @n); @n must be > 0. */
uint64_t tkv_rng_below(tkv_rng *r, uint64_t n);
/* Returns true with probability @num / @den. */
bool tkv_rng_chance(tkv_rng *r, uint64_t num, uint64_t den);

#endif /* TKV_BASE_H */
