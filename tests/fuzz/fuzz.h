/*
 * fuzz.h: what every fuzz target shares (CONVENTIONS.md section 11).
 *
 * A target is tests/fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput. It checks meaning,
 * not only the absence of crashes: every property it expects is a FUZZ_CHECK, which prints
 * the failed condition and aborts, so libFuzzer saves the input and the replay test fails.
 * The same source builds into a libFuzzer binary (fuzz-<name>, clang, -DTKV_FUZZ=ON) and into
 * replay-<name> (any compiler) with replay_main.c, which ctest runs over
 * tests/fuzz/corpus/<name>/.
 * Dependencies: libc.
 */
#ifndef TKV_FUZZ_H
#define TKV_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif /* TKV_FUZZ_H */
