/*
 * test_runtime.c: a server's storage-side security controls at run time: the private data
 * directory, encryption keys and environment with timed rotation, the reserve-space
 * placeholder and the disk watcher's states (on an injected file system measurement, so the
 * states are driven without filling a disk).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sec_testutil.h"
#include "security/runtime.h"

#define MiB (1024ull * 1024)

typedef struct fx {
    char dir[SEC_TEST_DIR_LEN]; /* first: see sec_testutil.h */
    char data[160];
    char mk[160];
    uint64_t fs_capacity, fs_available; /* what the fake measurement answers */
    uint64_t now_s;                     /* the key clock */
} fx;

static int setup(void **state)
{
    fx *f = sec_test_fixture_new(sizeof(*f), "runtime");
    snprintf(f->data, sizeof(f->data), "%s/a/data", f->dir);
    snprintf(f->mk, sizeof(f->mk), "%s/master.key", f->dir);
    FILE *k = fopen(f->mk, "w");
    assert_non_null(k);
    fputs("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", k);
    fclose(k);
    f->now_s = 1700000000;
    *state = f;
    return 0;
}

static int fake_space(void *ud, const char *dir, uint64_t *capacity, uint64_t *available)
{
    fx *f = ud;
    (void)dir;
    *capacity = f->fs_capacity;
    *available = f->fs_available;
    return 0;
}

static uint64_t fake_now(void *ud)
{
    return ((fx *)ud)->now_s;
}

static void opts_for(fx *f, sec_runtime_opts *o)
{
    sec_runtime_opts_init(o);
    o->name = "test";
    o->data_dir = f->data;
    o->space = fake_space;
    o->space_ud = f;
    o->now_s = fake_now;
    o->clock_ud = f;
}

static bool placeholder_exists(const fx *f)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", f->data, SEC_RESERVE_FILE);
    return access(p, F_OK) == 0;
}

static void test_the_data_directory_is_created_private_without_extras(void **state)
{
    fx *f = *state;
    f->fs_capacity = 100 * MiB;
    f->fs_available = 50 * MiB;
    sec_runtime_opts o;
    opts_for(f, &o);
    sec_runtime *r;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    struct stat st;
    assert_int_equal(stat(f->data, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_null(sec_runtime_keys(r));
    assert_null(sec_runtime_rocksdb_env(r));
    assert_false(placeholder_exists(f));
    assert_int_equal(sec_runtime_reserved_bytes(r), 0);
    /* Without a reserve the watcher never leaves Normal, however full the disk. */
    f->fs_available = 0;
    sec_runtime_tick(r);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_NORMAL);
    sec_disk_usage u;
    sec_runtime_disk_usage(r, &u);
    assert_true(u.capacity_bytes == 100 * MiB);
    assert_true(u.available_bytes == 0);
    sec_runtime_close(r);
    /* A missing data directory is required. */
    o.data_dir = NULL;
    assert_int_equal(sec_runtime_open(&o, &r, err), -EINVAL);
}

static void test_the_watcher_goes_almost_full_then_full_releasing_the_placeholder(void **state)
{
    fx *f = *state;
    f->fs_capacity = 100 * MiB;
    f->fs_available = 50 * MiB;
    sec_runtime_opts o;
    opts_for(f, &o);
    o.reserve_space_bytes = 10 * MiB; /* above 5% of 100 MiB, so it is the reserve */
    sec_runtime *r;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    assert_true(sec_runtime_reserved_bytes(r) == 10 * MiB);
    assert_true(sec_runtime_placeholder_bytes(r) == 2 * MiB);
    assert_true(placeholder_exists(f));
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_NORMAL);

    f->fs_available = 8 * MiB; /* below the reserve: AlmostFull, the placeholder stays */
    sec_runtime_tick(r);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_ALMOST_FULL);
    assert_true(placeholder_exists(f));

    f->fs_available = 4 * MiB; /* below half of it: AlreadyFull, the placeholder goes */
    sec_runtime_tick(r);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_FULL);
    assert_false(placeholder_exists(f));
    assert_true(sec_runtime_placeholder_bytes(r) == 0);

    f->fs_available = 6 * MiB;
    sec_runtime_tick(r);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_ALMOST_FULL);
    /* Normal again, but not enough room to take the placeholder back without leaving it. */
    f->fs_available = 11 * MiB;
    sec_runtime_tick(r);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_NORMAL);
    assert_false(placeholder_exists(f));
    f->fs_available = 30 * MiB;
    sec_runtime_tick(r);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_NORMAL);
    assert_true(placeholder_exists(f));
    sec_runtime_close(r);

    /* A restart on a disk without room: no placeholder, a warning, and the state at once. */
    f->fs_available = 7 * MiB;
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    assert_false(placeholder_exists(f));
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_ALMOST_FULL);
    sec_runtime_close(r);
}

static void test_the_reserve_is_at_least_five_percent_of_the_capacity(void **state)
{
    fx *f = *state;
    f->fs_capacity = 1000 * MiB;
    f->fs_available = 900 * MiB;
    sec_runtime_opts o;
    opts_for(f, &o);
    o.reserve_space_bytes = 1 * MiB;
    sec_runtime *r;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    assert_true(sec_runtime_reserved_bytes(r) == 50 * MiB);
    assert_true(sec_runtime_placeholder_bytes(r) == 10 * MiB);
    sec_runtime_close(r);
}

static void test_the_reserve_leaves_the_engines_headroom_when_writes_stop(void **state)
{
    fx *f = *state;
    f->fs_capacity = 1000 * MiB;
    f->fs_available = 900 * MiB;
    sec_runtime_opts o;
    opts_for(f, &o);
    o.reserve_space_bytes = 64 * MiB;
    /* The engines may flush and compact 80 MiB at once: the reserve becomes 160 MiB, so
     * AlreadyFull (half of it) still leaves them that room. */
    o.engine_headroom_bytes = 80 * MiB;
    sec_runtime *r;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    assert_true(sec_runtime_reserved_bytes(r) == 160 * MiB);
    f->fs_available = 150 * MiB; /* above the configured 64 MiB, inside the headroom */
    sec_runtime_tick(r);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_ALMOST_FULL);
    f->fs_available = 79 * MiB;
    sec_runtime_tick(r);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_FULL);
    sec_runtime_close(r);

    /* A headroom below the configured reserve changes nothing; without a reserve there are
     * no thresholds at all, whatever the headroom. */
    f->fs_available = 900 * MiB;
    o.engine_headroom_bytes = 10 * MiB;
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    assert_true(sec_runtime_reserved_bytes(r) == 64 * MiB);
    sec_runtime_close(r);
    o.reserve_space_bytes = 0;
    o.engine_headroom_bytes = 80 * MiB;
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    assert_true(sec_runtime_reserved_bytes(r) == 0);
    sec_runtime_close(r);
}

static void test_a_configured_capacity_counts_the_data_directory(void **state)
{
    fx *f = *state;
    f->fs_capacity = 1000 * MiB;
    f->fs_available = 900 * MiB;
    sec_runtime_opts o;
    opts_for(f, &o);
    o.capacity_bytes = 8 * MiB;
    o.reserve_space_bytes = 2 * MiB;
    sec_runtime *r;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_NORMAL);
    sec_disk_usage u;
    sec_runtime_disk_usage(r, &u);
    assert_true(u.capacity_bytes == 8 * MiB);
    /* 7 MiB of data in an 8 MiB store leaves less than half the reserve. */
    char p[256];
    snprintf(p, sizeof(p), "%s/blob", f->data);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(posix_fallocate(fd, 0, (off_t)(7 * MiB)), 0);
    close(fd);
    sec_runtime_tick(r);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_FULL);
    assert_int_equal(unlink(p), 0);
    sec_runtime_tick(r);
    assert_int_equal(sec_runtime_disk_state(r), SEC_DISK_NORMAL);
    sec_runtime_close(r);
}

/* Binds @toml into @c (released by the caller with tkv_cfg_unbind). */
static void bind_security(const char *toml, sec_config *c)
{
    tkv_cfg_doc *doc;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(tkv_cfg_parse(toml, strlen(toml), "tikv.toml", &doc, err), 0);
    assert_int_equal(tkv_cfg_bind(doc, sec_config_fields, SEC_CONFIG_N_FIELDS, c, NULL, NULL, err),
                     0);
    tkv_cfg_free(doc);
}

static void test_encryption_opens_keys_and_rotates_them_on_the_timer(void **state)
{
    fx *f = *state;
    f->fs_capacity = 100 * MiB;
    f->fs_available = 50 * MiB;
    char toml[512];
    snprintf(toml, sizeof(toml),
             "[security.encryption]\ndata-encryption-method = \"aes256-ctr\"\n"
             "data-key-rotation-period = \"1h\"\n"
             "[security.encryption.master-key]\ntype = \"file\"\npath = \"%s\"\n",
             f->mk);
    sec_config c;
    bind_security(toml, &c);
    sec_runtime_opts o;
    opts_for(f, &o);
    o.config = &c;
    sec_runtime *r;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    assert_non_null(sec_runtime_keys(r));
    assert_non_null(sec_runtime_rocksdb_env(r));
    uint64_t first = sec_keys_current_id(sec_runtime_keys(r));
    assert_true(first != 0);
    sec_runtime_tick(r);
    assert_true(sec_keys_current_id(sec_runtime_keys(r)) == first);
    f->now_s += 2 * 3600;
    sec_runtime_tick(r);
    uint64_t second = sec_keys_current_id(sec_runtime_keys(r));
    assert_true(second != 0 && second != first);
    /* The thread does the same; starting and stopping it is clean. */
    assert_int_equal(sec_runtime_start(r), 0);
    sec_runtime_close(r);
    tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &c);

    /* The same directory without a master key is refused, naming the setting. */
    sec_config plain;
    bind_security("[security]\n", &plain);
    o.config = &plain;
    assert_int_equal(sec_runtime_open(&o, &r, err), TKV_ECONFIG);
    assert_non_null(strstr(err, "master-key"));
    o.config = NULL;
    assert_int_equal(sec_runtime_open(&o, &r, err), TKV_ECONFIG);
    tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &plain);

    /* A wrong master key fails start-up without printing key material. */
    FILE *k = fopen(f->mk, "w");
    assert_non_null(k);
    fputs("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n", k);
    fclose(k);
    bind_security(toml, &c);
    o.config = &c;
    assert_int_equal(sec_runtime_open(&o, &r, err), TKV_ECONFIG);
    assert_non_null(strstr(err, "wrong master key"));
    assert_null(strstr(err, "ffff"));
    tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &c);
}

static void test_the_open_file_limit_is_raised_and_checked(void **state)
{
    fx *f = *state;
    f->fs_capacity = 100 * MiB;
    f->fs_available = 50 * MiB;
    sec_runtime_opts o;
    opts_for(f, &o);
    o.min_open_files = 1;
    sec_runtime *r;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    bool enough = false;
    uint64_t limit = sec_runtime_open_files_limit(r, &enough);
    assert_true(limit >= 1 && enough);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_true(rl.rlim_cur == rl.rlim_max); /* raised to the hard limit */
    sec_runtime_close(r);

    o.min_open_files = UINT64_MAX; /* more than any limit: a WARN, and the server starts */
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    assert_true(sec_runtime_open_files_limit(r, &enough) == limit);
    assert_true(enough == (limit == UINT64_MAX)); /* only an unlimited limit is enough */
    sec_runtime_close(r);

    o.min_open_files = 0; /* not checked */
    assert_int_equal(sec_runtime_open(&o, &r, err), 0);
    assert_true(sec_runtime_open_files_limit(r, &enough) == 0);
    sec_runtime_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_the_data_directory_is_created_private_without_extras,
                                        setup, sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(
            test_the_watcher_goes_almost_full_then_full_releasing_the_placeholder, setup,
            sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_the_reserve_is_at_least_five_percent_of_the_capacity,
                                        setup, sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(
            test_the_reserve_leaves_the_engines_headroom_when_writes_stop, setup,
            sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_a_configured_capacity_counts_the_data_directory, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_encryption_opens_keys_and_rotates_them_on_the_timer,
                                        setup, sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_the_open_file_limit_is_raised_and_checked, setup,
                                        sec_test_fixture_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
