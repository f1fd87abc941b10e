/*
 * eng_testutil.h: helpers shared by the engine tests: temporary directories, a fixture that
 * opens either engine, and short ways to write and read string keys.
 *
 * Owns: the temporary directory of each fixture (created with mkdtemp under /tmp, removed
 * with everything in it at teardown). Threads: the fixture is set up and torn down by the
 * test thread; the helpers are as thread-safe as the engine they call.
 * Errors: helpers fail the running cmocka test instead of returning codes.
 * Dependencies: engine.h, cmocka (the caller includes it).
 */
#ifndef TKV_ENG_TESTUTIL_H
#define TKV_ENG_TESTUTIL_H

#include "engine/engine.h"

typedef struct eng_fx {
    bool rocks;     /* eng_rocks when true, eng_mem otherwise */
    char dir[64];   /* temporary directory, always created (SST files live here too) */
    char path[128]; /* the RocksDB database directory inside dir */
    eng_db *db;
} eng_fx;

/* Creates a temporary directory from @tmpl ("/tmp/name-XXXXXX", rewritten in place) and
 * returns 0, or -errno. */
int eng_test_mkdtemp(char *tmpl);

/* Removes @path and everything below it; returns 0 or -errno. */
int eng_test_rmtree(const char *path);

/* cmocka setup/teardown: *state becomes an eng_fx with an open engine. */
int eng_fx_setup_rocks(void **state);
int eng_fx_setup_mem(void **state);
int eng_fx_teardown(void **state);

/* Closes and reopens the fixture's engine (RocksDB keeps its data; eng_mem starts empty). */
void eng_fx_reopen(eng_fx *fx);

/* Writes one put (@v non-NULL) or delete (@v NULL) of string key @k in @cf, synced. */
void eng_test_put(eng_db *db, eng_cf cf, const char *k, const char *v);
void eng_test_del(eng_db *db, eng_cf cf, const char *k);

/* Asserts that @k in @cf reads @want (NULL: absent), at the latest state or at @snap. */
void eng_test_expect(eng_db *db, eng_cf cf, const char *k, const char *want);
void eng_test_expect_snap(const eng_snap *snap, eng_cf cf, const char *k, const char *want);

/* Scans @it forward from seek_to_first (or backward from seek_to_last) and returns the keys
 * joined with ',' in @out (which has @cap bytes). Asserts the scan ended without error. */
const char *eng_test_scan(eng_iter *it, bool reverse, char *out, size_t cap);

/* Returns a slice over the C string @s (NULL gives an empty slice). */
tkv_slice eng_test_s(const char *s);

#endif /* TKV_ENG_TESTUTIL_H */
