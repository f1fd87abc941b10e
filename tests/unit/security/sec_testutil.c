/*
 * sec_testutil.c: fixtures shared by the security tests.
 */
#include "sec_testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "unit/engine/eng_testutil.h"

void *sec_test_fixture_new(size_t size, const char *name)
{
    char *f = calloc(1, size);
    assert_non_null(f);
    snprintf(f, SEC_TEST_DIR_LEN, "/tmp/tkv-%s-XXXXXX", name);
    assert_int_equal(eng_test_mkdtemp(f), 0);
    return f;
}

int sec_test_fixture_free(void **state)
{
    char *f = *state;
    assert_int_equal(eng_test_rmtree(f), 0);
    free(f);
    return 0;
}
