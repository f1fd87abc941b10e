/*
 * test_storage.c: the storage instance and method lookup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "storage/storage.h"

static void test_storage_lifecycle_and_lookup(void **state)
{
    (void)state;
    eng_db *db;
    assert_int_equal(eng_mem_open(NULL, &db), 0);
    stor_kv *kv;
    assert_int_equal(stor_kv_local_new(db, NULL, &kv), 0);
    stor_opts o;
    stor_opts_init(&o);
    o.latch_slots = 1024;
    o.enable_ttl = true;
    stor *s;
    assert_int_equal(stor_new(kv, &o, &s), 0);
    assert_ptr_equal(stor_get_kv(s), kv);
    assert_non_null(stor_get_latches(s));
    assert_true(stor_get_opts(s)->enable_ttl);
    assert_int_equal(stor_get_opts(s)->max_key_bytes, 8 * 1024);
    assert_null(stor_method_find("NoSuchMethod"));
    assert_null(stor_method_find_batch(0));
    assert_null(stor_method_find_batch(-1));
    /* Every method in the tables is findable by name and, when batchable, by number. */
    const stor_method *tables[] = {stor_raw_methods, stor_txn_methods};
    for (size_t t = 0; t < 2; t++) {
        for (const stor_method *m = tables[t]; m->name; m++) {
            assert_ptr_equal(stor_method_find(m->name), m);
            if (m->batch_cmd)
                assert_ptr_equal(stor_method_find_batch(m->batch_cmd), m);
            assert_non_null(m->req_desc);
            assert_non_null(m->resp_desc);
            assert_non_null(m->fn);
        }
    }
    tkv_alloc_fail_after(0);
    stor *fail;
    assert_int_equal(stor_new(kv, &o, &fail), -ENOMEM);
    tkv_alloc_fault_clear();
    stor_free(s);
    stor_free(NULL);
    stor_kv_free(kv);
    eng_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storage_lifecycle_and_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
