/*
 * test_datadir.c: private directories and files, the reserve-space placeholder, disk usage
 * classification and the open-file limit check.
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
#include "security/datadir.h"
#include "unit/engine/eng_testutil.h"

typedef struct fx {
    char dir[SEC_TEST_DIR_LEN]; /* first: see sec_testutil.h */
} fx;

static int setup(void **state)
{
    fx *f = sec_test_fixture_new(sizeof(*f), "datadir");
    *state = f;
    return 0;
}

static unsigned mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 0777);
}

static void test_directories_are_created_private_whatever_the_umask(void **state)
{
    fx *f = *state;
    mode_t old = umask(022);
    char p[160];
    snprintf(p, sizeof(p), "%s/a/b/c", f->dir);
    assert_int_equal(sec_dir_create(p), 0);
    assert_int_equal(mode_of(p), 0700);
    snprintf(p, sizeof(p), "%s/a", f->dir);
    assert_int_equal(mode_of(p), 0700);
    /* Again: existing directories are fine; a file in the way is not. */
    snprintf(p, sizeof(p), "%s/a/b/c", f->dir);
    assert_int_equal(sec_dir_create(p), 0);
    char file[160];
    snprintf(file, sizeof(file), "%s/plain", f->dir);
    int fd = sec_file_create_private(file, O_TRUNC);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mode_of(file), 0600);
    snprintf(p, sizeof(p), "%s/plain/sub", f->dir);
    assert_int_equal(sec_dir_create(p), -ENOTDIR);
    umask(old);
}

static void test_open_directories_are_reported(void **state)
{
    fx *f = *state;
    bool open_dir = true;
    assert_int_equal(chmod(f->dir, 0700), 0);
    assert_int_equal(sec_dir_check_private(f->dir, &open_dir), 0);
    assert_false(open_dir);
    assert_int_equal(chmod(f->dir, 0750), 0);
    assert_int_equal(sec_dir_check_private(f->dir, &open_dir), 0);
    assert_true(open_dir);
    assert_int_equal(chmod(f->dir, 0701), 0);
    assert_int_equal(sec_dir_check_private(f->dir, &open_dir), 0);
    assert_true(open_dir);
    assert_int_equal(chmod(f->dir, 0700), 0);
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none", f->dir);
    assert_int_equal(sec_dir_check_private(missing, &open_dir), -ENOENT);
}

static void test_existing_files_become_private(void **state)
{
    fx *f = *state;
    char file[160];
    snprintf(file, sizeof(file), "%s/loose", f->dir);
    int fd = open(file, O_WRONLY | O_CREAT, 0666);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(file, 0644), 0);
    fd = sec_file_create_private(file, O_APPEND);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mode_of(file), 0600);
}

static void test_reserve_space_occupies_real_blocks_and_releases_them(void **state)
{
    fx *f = *state;
    char p[160];
    snprintf(p, sizeof(p), "%s/" SEC_RESERVE_FILE, f->dir);
    sec_disk_usage before, after;
    assert_int_equal(sec_disk_check(f->dir, 0, 0, &before), 0);
    assert_int_equal(sec_reserve_space(f->dir, 8u << 20), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 8u << 20);
    assert_true((uint64_t)st.st_blocks * 512 >= 8u << 20);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sec_disk_check(f->dir, 0, 0, &after), 0);
    assert_true(after.capacity_bytes > 0);
    /* Idempotent, and resizable. */
    assert_int_equal(sec_reserve_space(f->dir, 8u << 20), 0);
    assert_int_equal(sec_reserve_space(f->dir, 1u << 20), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 1u << 20);
    uint64_t freed = 0;
    assert_int_equal(sec_reserve_release(f->dir, &freed), 0);
    assert_int_equal(freed, 1u << 20);
    assert_int_equal(stat(p, &st), -1);
    assert_int_equal(sec_reserve_release(f->dir, &freed), 0);
    assert_int_equal(freed, 0);
    /* A reservation larger than the file system fails and leaves nothing behind. */
    assert_int_equal(sec_reserve_space(f->dir, before.capacity_bytes * 4), -ENOSPC);
    assert_int_equal(stat(p, &st), -1);
}

static void test_disk_states_follow_the_thresholds(void **state)
{
    (void)state;
    assert_int_equal(sec_disk_classify(100, 10, 20), SEC_DISK_NORMAL);
    assert_int_equal(sec_disk_classify(20, 10, 20), SEC_DISK_NORMAL);
    assert_int_equal(sec_disk_classify(19, 10, 20), SEC_DISK_ALMOST_FULL);
    assert_int_equal(sec_disk_classify(10, 10, 20), SEC_DISK_ALMOST_FULL);
    assert_int_equal(sec_disk_classify(9, 10, 20), SEC_DISK_FULL);
    assert_int_equal(sec_disk_classify(0, 0, 0), SEC_DISK_NORMAL);
    sec_disk_usage u;
    assert_int_equal(sec_disk_check("/", UINT64_MAX, UINT64_MAX, &u), 0);
    assert_int_equal(u.state, SEC_DISK_FULL);
    assert_int_equal(sec_disk_check("/nonexistent/x", 0, 0, &u), -ENOENT);
}

static void test_fd_limit_is_raised_to_the_hard_limit(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    struct rlimit lowered = rl;
    if (rl.rlim_max > 256)
        lowered.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lowered), 0);
    uint64_t limit = 0;
    bool enough = false;
    assert_int_equal(sec_fd_limit_check(64, &limit, &enough), 0);
    assert_true(enough);
    assert_int_equal(limit, rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_max);
    assert_int_equal(sec_fd_limit_check(UINT64_MAX, &limit, &enough), 0);
    assert_true(limit == UINT64_MAX ? enough : !enough);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_directories_are_created_private_whatever_the_umask,
                                        setup, sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_open_directories_are_reported, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_existing_files_become_private, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_reserve_space_occupies_real_blocks_and_releases_them,
                                        setup, sec_test_fixture_free),
        cmocka_unit_test(test_disk_states_follow_the_thresholds),
        cmocka_unit_test(test_fd_limit_is_raised_to_the_hard_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
