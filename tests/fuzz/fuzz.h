/*
 * fuzz.h: what every fuzz target shares (CONVENTIONS.md section 11).
 *
 * A target is tests/fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput. It checks meaning,
 * not only the absence of crashes: every property it expects is a FUZZ_CHECK, which prints
 * the failed condition and aborts, so libFuzzer saves the input and the replay test fails.
 * The same source builds into a libFuzzer binary (fuzz-<name>, clang, -DTKV_FUZZ=ON) and into
 * replay-<name> (any compiler) with replay_main.c, which ctest runs over
 * tests/fuzz/corpus/<name>/.
 * Dependencies: libc (POSIX nftw, mkdtemp).
 */
#ifndef TKV_FUZZ_H
#define TKV_FUZZ_H

#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Runs one input; returns 0 (libFuzzer reserves other values). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the failed condition when @cond is false. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz check failed: %s at %s:%d\n", #cond, __FILE__, __LINE__);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A cursor over the input for targets that read it as a recipe (a sequence of choices).
 * Reading past the end gives zeros, so every input, however short, is a complete recipe. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
} fuzz_in;

static inline fuzz_in fuzz_in_of(const uint8_t *data, size_t size)
{
    fuzz_in in = {data, size};
    return in;
}

/* Returns the next byte (0 at the end). */
static inline uint8_t fuzz_u8(fuzz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

/* Returns the next @bytes bytes (at most 8) as a big-endian number. */
static inline uint64_t fuzz_uint(fuzz_in *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | fuzz_u8(in);
    return v;
}

/* Returns a number below @n (@n > 0) read from one or two bytes. */
static inline uint64_t fuzz_below(fuzz_in *in, uint64_t n)
{
    return (n <= 256 ? fuzz_u8(in) : fuzz_uint(in, 2)) % n;
}

/* Returns the next chunk: a length byte (at most @max) and that many bytes of the input (fewer
 * at the end). The chunk points into the input. */
static inline const uint8_t *fuzz_bytes(fuzz_in *in, size_t max, size_t *len)
{
    size_t want = fuzz_u8(in) % (max + 1);
    if (want > in->n)
        want = in->n;
    const uint8_t *p = in->p;
    in->p += want;
    in->n -= want;
    *len = want;
    return p;
}

static inline int fuzz__rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes the tree at @path (nothing when it does not exist). */
static inline void fuzz_rmtree(const char *path)
{
    nftw(path, fuzz__rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static inline char *fuzz__tmp_root(void)
{
    static char root[256];
    return root;
}

static inline void fuzz__tmp_cleanup(void)
{
    fuzz_rmtree(fuzz__tmp_root());
}

/* Returns the process's scratch directory, created on the first call as
 * /dev/shm/tkv-fuzz-@name-XXXXXX (under /tmp without /dev/shm) and removed at exit. */
static inline const char *fuzz_tmpdir(const char *name)
{
    char *root = fuzz__tmp_root();
    if (root[0] == '\0') {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(root, 256, "%s/tkv-fuzz-%s-XXXXXX", base, name);
        FUZZ_CHECK(mkdtemp(root) != NULL);
        atexit(fuzz__tmp_cleanup);
    }
    return root;
}

/* Replaces the file at @path with @len bytes of @data. */
static inline void fuzz_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(len == 0 || fwrite(data, 1, len, f) == len);
    FUZZ_CHECK(fclose(f) == 0);
}

/* Reads at most @cap bytes of the file at @path into @buf; returns how many (0 when the file
 * does not exist). */
static inline size_t fuzz_read_file(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

#endif /* TKV_FUZZ_H */
