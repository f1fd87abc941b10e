/*
 * test_audit.c: the hash-chained audit log: records verify, edits, reorders, deletions and
 * truncation are detected, a crash's partial record is recovered, concurrent writers keep
 * one chain, and the tikv-audit CLI reports the same.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sec_testutil.h"
#include "security/audit.h"
#include "security/sec_int.h"
#include "unit/engine/eng_testutil.h"

typedef struct fx {
    char dir[SEC_TEST_DIR_LEN]; /* first: see sec_testutil.h */
    char log[128];
    char head[140];
    uint64_t now;
} fx;

static uint64_t fx_now(void *ud)
{
    return ((fx *)ud)->now;
}

static int setup(void **state)
{
    fx *f = sec_test_fixture_new(sizeof(*f), "audit");
    snprintf(f->log, sizeof(f->log), "%s/audit.log", f->dir);
    snprintf(f->head, sizeof(f->head), "%s.head", f->log);
    f->now = 1764219525123ull;
    *state = f;
    return 0;
}

static sec_audit *open_log(fx *f, const uint8_t *key, size_t key_len)
{
    sec_audit_opts o;
    sec_audit_opts_init(&o);
    o.path = f->log;
    o.key = key;
    o.key_len = key_len;
    o.now_ms = fx_now;
    o.clock_ud = f;
    sec_audit *a = NULL;
    char err[TKV_ERRMSG_LEN];
    int rc = sec_audit_open(&o, &a, err);
    if (rc != 0)
        fail_msg("sec_audit_open: %s (%s)", tkv_strerror(rc), err);
    return a;
}

static void log_n(sec_audit *a, int n)
{
    for (int i = 0; i < n; i++) {
        char reason[64];
        snprintf(reason, sizeof(reason), "certificate name not allowed #%d", i);
        sec_audit_event ev = {.type = "peer_rejected",
                              .peer = "ipv4:127.0.0.1:40000 cn=evil-tikv-client",
                              .method = "/tikvpb.Tikv/RawPut",
                              .reason = reason};
        assert_int_equal(sec_audit_log(a, &ev), 0);
    }
}

/* Reads the log's lines into a heap array of heap strings (with their newlines). */
static size_t read_lines(const char *path, char ***out)
{
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(sec__read_file(path, 1 << 24, &b), 0);
    char **lines = NULL;
    size_t n = 0, off = 0;
    while (off < b.len) {
        const uint8_t *nl = memchr(b.data + off, '\n', b.len - off);
        size_t len = nl != NULL ? (size_t)(nl - (b.data + off)) + 1 : b.len - off;
        char **grown = realloc(lines, (n + 1) * sizeof(*lines));
        assert_non_null(grown);
        lines = grown;
        lines[n] = strndup((const char *)b.data + off, len);
        assert_non_null(lines[n]);
        n++;
        off += len;
    }
    tkv_buf_deinit(&b);
    *out = lines;
    return n;
}

/* Writes @lines back, skipping index @skip (SIZE_MAX: none), and frees them. */
static void write_lines(const char *path, char **lines, size_t n, size_t skip)
{
    tkv_buf b;
    tkv_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        if (i != skip)
            assert_int_equal(tkv_buf_append(&b, lines[i], strlen(lines[i])), 0);
        free(lines[i]);
    }
    free(lines);
    assert_int_equal(sec__write_atomic(path, b.data, b.len), 0);
    tkv_buf_deinit(&b);
}

static int verify(const char *path, sec_audit_report *r)
{
    return sec_audit_verify(path, NULL, 0, r);
}

static void copy_file(const char *from, const char *to)
{
    tkv_buf b;
    tkv_buf_init(&b);
    assert_int_equal(sec__read_file(from, 1 << 24, &b), 0);
    assert_int_equal(sec__write_atomic(to, b.data, b.len), 0);
    tkv_buf_deinit(&b);
}

static void test_records_chain_verify_and_are_private(void **state)
{
    fx *f = *state;
    sec_audit *a = open_log(f, NULL, 0);
    log_n(a, 5);
    sec_audit_event odd = {.type = "admin", .details = "quote \" newline \n tab \t done"};
    assert_int_equal(sec_audit_log(a, &odd), 0);
    assert_int_equal(sec_audit_records(a), 7);
    sec_audit_close(a);
    sec_audit_report r;
    assert_int_equal(verify(f->log, &r), 0);
    assert_int_equal(r.records, 8); /* opened + 5 + admin + sealed */
    assert_true(r.sealed);
    assert_true(r.head_present);
    assert_int_equal(r.head_seq, 7);
    struct stat st;
    assert_int_equal(stat(f->log, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char **lines;
    size_t n = read_lines(f->log, &lines);
    assert_int_equal(n, 8); /* the escaped newline did not split a record */
    assert_non_null(strstr(lines[1], "\"event\":\"peer_rejected\""));
    assert_non_null(strstr(lines[1], "\"time\":\"2025-11-27T04:58:45.123Z\""));
    assert_non_null(strstr(lines[7], "audit_log_sealed"));
    write_lines(f->log, lines, n, SIZE_MAX);
}

static void test_reopen_continues_the_chain(void **state)
{
    fx *f = *state;
    sec_audit *a = open_log(f, NULL, 0);
    log_n(a, 2);
    sec_audit_close(a);
    a = open_log(f, NULL, 0);
    assert_int_equal(sec_audit_records(a), 5);
    log_n(a, 2);
    sec_audit_close(a);
    sec_audit_report r;
    assert_int_equal(verify(f->log, &r), 0);
    assert_int_equal(r.records, 8); /* 2 runs x (opened + 2 + sealed) */
    assert_true(r.sealed);
}

static void test_an_edited_record_is_detected(void **state)
{
    fx *f = *state;
    sec_audit *a = open_log(f, NULL, 0);
    log_n(a, 4);
    sec_audit_close(a);
    char **lines;
    size_t n = read_lines(f->log, &lines);
    char *p = strstr(lines[2], "not allowed");
    assert_non_null(p);
    memcpy(p, "NOT allowed", 11);
    write_lines(f->log, lines, n, SIZE_MAX);
    sec_audit_report r;
    assert_int_equal(verify(f->log, &r), TKV_ECORRUPT);
    assert_int_equal(r.bad_line, 3);
    assert_non_null(strstr(r.problem, "altered"));

    /* The server refuses to append to a tampered log. */
    sec_audit_opts o;
    sec_audit_opts_init(&o);
    o.path = f->log;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_audit_open(&o, &a, err), TKV_ECORRUPT);
    assert_non_null(strstr(err, "fails verification"));
}

static void test_reordered_and_deleted_records_are_detected(void **state)
{
    fx *f = *state;
    sec_audit *a = open_log(f, NULL, 0);
    log_n(a, 4);
    sec_audit_close(a);
    char **lines;
    size_t n = read_lines(f->log, &lines);
    char *t = lines[2];
    lines[2] = lines[3];
    lines[3] = t;
    write_lines(f->log, lines, n, SIZE_MAX);
    sec_audit_report r;
    assert_int_equal(verify(f->log, &r), TKV_ECORRUPT);
    assert_int_equal(r.bad_line, 3);

    /* Put them back, then delete one in the middle. */
    n = read_lines(f->log, &lines);
    t = lines[2];
    lines[2] = lines[3];
    lines[3] = t;
    write_lines(f->log, lines, n, SIZE_MAX);
    assert_int_equal(verify(f->log, &r), 0);
    n = read_lines(f->log, &lines);
    write_lines(f->log, lines, n, 2);
    assert_int_equal(verify(f->log, &r), TKV_ECORRUPT);
    assert_non_null(strstr(r.problem, "seq"));
}

static void test_truncation_at_the_end_is_detected(void **state)
{
    fx *f = *state;
    sec_audit *a = open_log(f, NULL, 0);
    log_n(a, 3);
    sec_audit_close(a);
    a = open_log(f, NULL, 0); /* a second run, also sealed */
    log_n(a, 3);
    sec_audit_close(a);

    /* Cut back to the first run's seal: a sealed, chaining log, but the head knows more. */
    char **lines;
    size_t n = read_lines(f->log, &lines);
    assert_int_equal(n, 10);
    for (size_t i = 5; i < n; i++) {
        free(lines[i]);
    }
    write_lines(f->log, lines, 5, SIZE_MAX);
    sec_audit_report r;
    assert_int_equal(verify(f->log, &r), TKV_ECORRUPT);
    assert_non_null(strstr(r.problem, "missing at the end"));
    /* Without the head file truncation cannot be ruled out, and that is a failure too. */
    assert_int_equal(unlink(f->head), 0);
    assert_int_equal(verify(f->log, &r), TKV_ECORRUPT);
    assert_non_null(strstr(r.problem, "head file is missing"));
}

static void test_a_crash_leaves_a_verifiable_log_that_reopens(void **state)
{
    fx *f = *state;
    char crash[160], crash_head[170];
    snprintf(crash, sizeof(crash), "%s/crash.log", f->dir);
    snprintf(crash_head, sizeof(crash_head), "%s.head", crash);
    sec_audit *a = open_log(f, NULL, 0);
    log_n(a, 3);
    /* The image a crash would leave: both files as they are now, plus half a record. */
    copy_file(f->log, crash);
    copy_file(f->head, crash_head);
    sec_audit_close(a);
    int fd = open(crash, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"seq\":4,\"ti", 12), 12);
    close(fd);

    sec_audit_report r;
    assert_int_equal(verify(crash, &r), 0);
    assert_false(r.sealed);
    assert_int_equal(r.torn_bytes, 12);
    assert_int_equal(r.records, 4);

    sec_audit_opts o;
    sec_audit_opts_init(&o);
    o.path = crash;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_audit_open(&o, &a, err), 0);
    sec_audit_close(a);
    assert_int_equal(verify(crash, &r), 0);
    assert_true(r.sealed);
    assert_int_equal(r.torn_bytes, 0);
    char **lines;
    size_t n = read_lines(crash, &lines);
    assert_int_equal(n, 7); /* 4 + recovered + opened + sealed */
    assert_non_null(strstr(lines[4], "audit_log_recovered"));
    write_lines(crash, lines, n, SIZE_MAX);
}

static void test_a_keyed_chain_verifies_only_with_its_key(void **state)
{
    fx *f = *state;
    uint8_t key[32];
    memset(key, 0x5a, sizeof(key));
    sec_audit *a = open_log(f, key, sizeof(key));
    log_n(a, 2);
    sec_audit_close(a);
    sec_audit_report r;
    assert_int_equal(sec_audit_verify(f->log, key, sizeof(key), &r), 0);
    assert_int_equal(verify(f->log, &r), TKV_ECORRUPT);
    key[0] ^= 1;
    assert_int_equal(sec_audit_verify(f->log, key, sizeof(key), &r), TKV_ECORRUPT);
}

static void test_bad_events_are_refused_and_leave_the_chain_intact(void **state)
{
    fx *f = *state;
    sec_audit *a = open_log(f, NULL, 0);
    sec_audit_event no_type = {.reason = "x"};
    assert_int_equal(sec_audit_log(a, &no_type), -EINVAL);
    sec_audit_event bad_utf8 = {.type = "admin", .details = "\xff\xfe"};
    assert_int_equal(sec_audit_log(a, &bad_utf8), -EINVAL);
    log_n(a, 1);
    sec_audit_close(a);
    sec_audit_report r;
    assert_int_equal(verify(f->log, &r), 0);
    assert_int_equal(r.records, 3);
}

typedef struct writer_arg {
    sec_audit *a;
    int n;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    for (int i = 0; i < w->n; i++) {
        sec_audit_event ev = {.type = "request_rejected", .method = "/tikvpb.Tikv/RawGet"};
        if (sec_audit_log(w->a, &ev) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_writers_keep_one_chain(void **state)
{
    fx *f = *state;
    sec_audit_opts o;
    sec_audit_opts_init(&o);
    o.path = f->log;
    o.sync = SEC_AUDIT_SYNC_OFF;
    sec_audit *a;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(sec_audit_open(&o, &a, err), 0);
    pthread_t t[4];
    writer_arg w = {a, 200};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, &w), 0);
    for (int i = 0; i < 4; i++) {
        void *res;
        assert_int_equal(pthread_join(t[i], &res), 0);
        assert_null(res);
    }
    sec_audit_close(a);
    sec_audit_report r;
    assert_int_equal(verify(f->log, &r), 0);
    assert_int_equal(r.records, 802);
}

static int run_cli(const char *file, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s verify %s", TKV_AUDIT_BIN, file);
    /* The test runs the real CLI on purpose; the path comes from the build. */
    FILE *p = popen(cmd, "r"); /* NOLINT(cert-env33-c) */
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_the_cli_reports_good_and_tampered_logs(void **state)
{
    fx *f = *state;
    sec_audit *a = open_log(f, NULL, 0);
    log_n(a, 3);
    sec_audit_close(a);
    char out[512];
    assert_int_equal(run_cli(f->log, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "OK: 5 records, sealed"));
    char **lines;
    size_t n = read_lines(f->log, &lines);
    write_lines(f->log, lines, n, n - 1); /* drop the seal */
    assert_int_equal(run_cli(f->log, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "FAILED"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_chain_verify_and_are_private, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_reopen_continues_the_chain, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_an_edited_record_is_detected, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_reordered_and_deleted_records_are_detected, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_truncation_at_the_end_is_detected, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_a_crash_leaves_a_verifiable_log_that_reopens, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_a_keyed_chain_verifies_only_with_its_key, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_bad_events_are_refused_and_leave_the_chain_intact,
                                        setup, sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_keep_one_chain, setup,
                                        sec_test_fixture_free),
        cmocka_unit_test_setup_teardown(test_the_cli_reports_good_and_tampered_logs, setup,
                                        sec_test_fixture_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
