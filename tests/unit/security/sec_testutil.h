/*
 * sec_testutil.h: fixtures shared by the security tests: a heap fixture whose first member
 * is its temporary directory, removed with everything in it at teardown.
 */
#ifndef TKV_SEC_TESTUTIL_H
#define TKV_SEC_TESTUTIL_H

#include <stddef.h>

/* Every fixture struct starts with this member. */
#define SEC_TEST_DIR_LEN 64

/* Returns a zeroed fixture of @size bytes whose first member (char[SEC_TEST_DIR_LEN]) holds a
 * fresh directory "/tmp/tkv-<@name>-XXXXXX". Fails the test on error. */
void *sec_test_fixture_new(size_t size, const char *name);

/* cmocka teardown: removes the fixture's directory tree and frees *@state. */
int sec_test_fixture_free(void **state);

#endif /* TKV_SEC_TESTUTIL_H */
