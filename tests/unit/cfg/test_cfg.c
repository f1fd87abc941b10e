/*
 * test_cfg.c: the TOML parser, lookups, dump, TiKV sizes and durations, command-line overrides,
 * struct binding, and allocation failure paths (src/base/cfg.h).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/cfg.h"

/* ---- helpers --------------------------------------------------------------------------- */

static tkv_cfg_doc *parse_ok(const char *text)
{
    tkv_cfg_doc *doc = NULL;
    char err[TKV_ERRMSG_LEN];
    int rc = tkv_cfg_parse(text, strlen(text), "t.toml", &doc, err);
    if (rc != 0)
        fail_msg("parse failed (%d): %s\n--- input ---\n%s", rc, err, text);
    return doc;
}

static const char *str_at(const tkv_cfg_doc *doc, const char *path)
{
    const char *s = NULL;
    int rc = tkv_cfg_get_str(doc, path, &s, NULL);
    if (rc != 0)
        fail_msg("get_str(%s) = %d", path, rc);
    return s;
}

static int64_t int_at(const tkv_cfg_doc *doc, const char *path)
{
    int64_t v = 0;
    int rc = tkv_cfg_get_int(doc, path, &v);
    if (rc != 0)
        fail_msg("get_int(%s) = %d", path, rc);
    return v;
}

static double float_at(const tkv_cfg_doc *doc, const char *path)
{
    double v = 0;
    int rc = tkv_cfg_get_float(doc, path, &v);
    if (rc != 0)
        fail_msg("get_float(%s) = %d", path, rc);
    return v;
}

/* Dumps @doc, reparses the text and checks the two documents are equal. */
static void assert_round_trips(const tkv_cfg_doc *doc)
{
    tkv_buf out;
    tkv_buf_init(&out);
    assert_int_equal(tkv_cfg_dump(doc, &out), 0);
    tkv_cfg_doc *again = NULL;
    char err[TKV_ERRMSG_LEN];
    int rc = tkv_cfg_parse((const char *)out.data, out.len, "dump", &again, err);
    if (rc != 0)
        fail_msg("dump does not reparse: %s\n%.*s", err, (int)out.len, (const char *)out.data);
    assert_true(tkv_cfg_equal(tkv_cfg_root(doc), tkv_cfg_root(again)));
    /* Dumping the reparsed document gives the same text. */
    tkv_buf out2;
    tkv_buf_init(&out2);
    assert_int_equal(tkv_cfg_dump(again, &out2), 0);
    assert_int_equal(out.len, out2.len);
    assert_memory_equal(out.data, out2.data, out.len);
    tkv_buf_deinit(&out2);
    tkv_buf_deinit(&out);
    tkv_cfg_free(again);
}

/* One bad input and the exact message it must produce. */
typedef struct err_case {
    const char *in;
    const char *msg;
} err_case;

/* Runs @in through the function under test, checks its own side conditions, and returns its
 * result code with the message in @err. */
typedef int (*err_fn)(const char *in, char *err, void *arg);

/* Checks that every case fails with TKV_ECONFIG and exactly its message. */
static void check_errors(const err_case *cases, size_t n, err_fn fn, void *arg)
{
    for (size_t i = 0; i < n; i++) {
        char err[TKV_ERRMSG_LEN] = "";
        int rc = fn(cases[i].in, err, arg);
        if (rc != TKV_ECONFIG || strcmp(err, cases[i].msg) != 0)
            fail_msg("case %zu \"%s\": rc %d\n  got:  %s\n  want: %s", i, cases[i].in, rc, err,
                     cases[i].msg);
    }
}

/* ---- scalars --------------------------------------------------------------------------- */

static void test_parse_reads_basic_and_literal_strings_with_escapes(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("plain = \"hello\"\n"
                                "esc = \"tab\\there \\\"q\\\" back\\\\slash \\b\\f\\n\\r\"\n"
                                "uni = \"\\u00e9 \\U0001F600 \\u0041 \\u20AC\"\n"
                                "lit = 'C:\\Users\\tikv'\n"
                                "empty = \"\"\n"
                                "nul = \"a\\u0000b\"\n"
                                "raw_utf8 = \"日本\"\n");
    assert_string_equal(str_at(doc, "plain"), "hello");
    assert_string_equal(str_at(doc, "esc"), "tab\there \"q\" back\\slash \b\f\n\r");
    assert_string_equal(str_at(doc, "uni"), "\xC3\xA9 \xF0\x9F\x98\x80 A \xE2\x82\xAC");
    assert_string_equal(str_at(doc, "lit"), "C:\\Users\\tikv");
    assert_string_equal(str_at(doc, "empty"), "");
    assert_string_equal(str_at(doc, "raw_utf8"), "日本");
    const char *s;
    size_t len;
    assert_int_equal(tkv_cfg_get_str(doc, "nul", &s, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 3);
    assert_round_trips(doc);
    tkv_cfg_free(doc);
}

static void test_parse_reads_multi_line_strings(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("a = \"\"\"\nline one\nline two\"\"\"\n"
                                "b = \"\"\"The quick \\\n\n    brown \\\n    fox.\"\"\"\n"
                                "c = '''\n  raw \\n text\n'''\n"
                                "d = \"\"\"two quotes at the end\"\"\"\"\"\n"
                                "e = '''one quote at the end''''\n"
                                "f = \"\"\"crlf\r\nline\"\"\"\n"
                                "g = \"\"\"has \"\" inside\"\"\"\n");
    assert_string_equal(str_at(doc, "a"), "line one\nline two");
    assert_string_equal(str_at(doc, "b"), "The quick brown fox.");
    assert_string_equal(str_at(doc, "c"), "  raw \\n text\n");
    assert_string_equal(str_at(doc, "d"), "two quotes at the end\"\"");
    assert_string_equal(str_at(doc, "e"), "one quote at the end'");
    assert_string_equal(str_at(doc, "f"), "crlf\nline");
    assert_string_equal(str_at(doc, "g"), "has \"\" inside");
    assert_round_trips(doc);
    tkv_cfg_free(doc);
}

static void test_parse_reads_integers_in_every_base(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("a = 42\nb = +17\nc = -5\nd = 0\ne = -0\n"
                                "f = 1_000_000\ng = 0xDEAD_beef\nh = 0o755\ni = 0b1101_0110\n"
                                "max = 9223372036854775807\nmin = -9223372036854775808\n"
                                "hmax = 0x7FFFFFFFFFFFFFFF\n");
    assert_int_equal(int_at(doc, "a"), 42);
    assert_int_equal(int_at(doc, "b"), 17);
    assert_int_equal(int_at(doc, "c"), -5);
    assert_int_equal(int_at(doc, "d"), 0);
    assert_int_equal(int_at(doc, "e"), 0);
    assert_int_equal(int_at(doc, "f"), 1000000);
    assert_int_equal(int_at(doc, "g"), 0xDEADBEEF);
    assert_int_equal(int_at(doc, "h"), 0755);
    assert_int_equal(int_at(doc, "i"), 0xD6);
    assert_true(int_at(doc, "max") == INT64_MAX);
    assert_true(int_at(doc, "min") == INT64_MIN);
    assert_true(int_at(doc, "hmax") == INT64_MAX);
    assert_round_trips(doc);
    tkv_cfg_free(doc);
}

static void test_parse_reads_floats_booleans_and_special_values(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("a = 1.5\nb = -0.01\nc = 5e+22\nd = 1e06\ne = -2E-2\n"
                                "f = 6.626e-34\ng = 224_617.445_991_228\nh = -0.0\n"
                                "i = inf\nj = -inf\nk = nan\nl = +nan\nm = 0.1\n"
                                "t = true\nu = false\n");
    assert_true(float_at(doc, "a") == 1.5);
    assert_true(float_at(doc, "b") == -0.01);
    assert_true(float_at(doc, "c") == 5e22);
    assert_true(float_at(doc, "d") == 1e6);
    assert_true(float_at(doc, "e") == -2e-2);
    assert_true(float_at(doc, "f") == 6.626e-34);
    assert_true(float_at(doc, "g") == 224617.445991228);
    assert_true(float_at(doc, "h") == 0.0 && signbit(float_at(doc, "h")));
    assert_true(isinf(float_at(doc, "i")) && float_at(doc, "i") > 0);
    assert_true(isinf(float_at(doc, "j")) && float_at(doc, "j") < 0);
    assert_true(isnan(float_at(doc, "k")));
    assert_true(isnan(float_at(doc, "l")));
    bool t = false, u = true;
    assert_int_equal(tkv_cfg_get_bool(doc, "t", &t), 0);
    assert_int_equal(tkv_cfg_get_bool(doc, "u", &u), 0);
    assert_true(t);
    assert_false(u);
    /* get_float converts integers; get_int does not convert floats. */
    tkv_cfg_doc *d2 = parse_ok("n = 3\n");
    assert_true(float_at(d2, "n") == 3.0);
    int64_t i;
    assert_int_equal(tkv_cfg_get_int(doc, "a", &i), TKV_ECONFIG);
    assert_round_trips(doc);
    tkv_cfg_free(d2);
    tkv_cfg_free(doc);
}

static void test_parse_keeps_date_times_as_text(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("odt1 = 1979-05-27T07:32:00Z\n"
                                "odt2 = 1979-05-27T00:32:00.999999-07:00\n"
                                "odt3 = 1979-05-27 07:32:00+05:30\n"
                                "ldt = 1979-05-27T07:32:00\n"
                                "ld = 2024-02-29\n"
                                "lt = 00:32:00.5\n"
                                "arr = [1979-05-27, 07:32:00]\n");
    const tkv_cfg_value *v = tkv_cfg_get(doc, "odt2");
    assert_non_null(v);
    assert_int_equal(tkv_cfg_type_of(v), TKV_CFG_DATETIME);
    assert_string_equal(tkv_cfg_str(v, NULL), "1979-05-27T00:32:00.999999-07:00");
    assert_string_equal(tkv_cfg_str(tkv_cfg_get(doc, "odt3"), NULL), "1979-05-27 07:32:00+05:30");
    assert_string_equal(tkv_cfg_str(tkv_cfg_get(doc, "ld"), NULL), "2024-02-29");
    assert_string_equal(tkv_cfg_str(tkv_cfg_get(doc, "lt"), NULL), "00:32:00.5");
    assert_int_equal(tkv_cfg_type_of(tkv_cfg_get(doc, "ldt")), TKV_CFG_DATETIME);
    /* A date-time is not a string to the typed getter. */
    const char *s;
    assert_int_equal(tkv_cfg_get_str(doc, "ld", &s, NULL), TKV_ECONFIG);
    assert_round_trips(doc);
    tkv_cfg_free(doc);
}

/* ---- structure ------------------------------------------------------------------------- */

static void test_parse_builds_tables_from_headers_and_dotted_keys(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("# TiKV-style file\n"
                                "log-level = \"info\"  # trailing comment\n"
                                "\n"
                                "[server]\n"
                                "addr = \"127.0.0.1:20160\"\n"
                                "labels.zone = \"z1\"\n"
                                "\n"
                                "[security.encryption.master-key]\n"
                                "type = \"file\"\n"
                                "\n"
                                "[ \"quoted key\" . 'lit.key' . bare ]\n"
                                "x = 1\n"
                                "\n"
                                "[fruit]\n"
                                "apple.color = \"red\"\n"
                                "apple.taste.sweet = true\n"
                                "[fruit.apple.texture]\n"
                                "smooth = true\n"
                                "\n"
                                "[x.y.z]\n"
                                "[x]\n"
                                "w = 2\n"
                                "\r\n"
                                "[\"\"]\n"
                                "empty-table-key = 3\n");
    assert_string_equal(str_at(doc, "log-level"), "info");
    assert_string_equal(str_at(doc, "server.addr"), "127.0.0.1:20160");
    assert_string_equal(str_at(doc, "server.labels.zone"), "z1");
    assert_string_equal(str_at(doc, "security.encryption.master-key.type"), "file");
    assert_int_equal(int_at(doc, "\"quoted key\".\"lit.key\".bare.x"), 1);
    assert_string_equal(str_at(doc, "fruit.apple.color"), "red");
    bool b = false;
    assert_int_equal(tkv_cfg_get_bool(doc, "fruit.apple.taste.sweet", &b), 0);
    assert_true(b);
    assert_int_equal(tkv_cfg_get_bool(doc, "fruit.apple.texture.smooth", &b), 0);
    assert_int_equal(int_at(doc, "x.w"), 2);
    const tkv_cfg_value *t;
    assert_int_equal(tkv_cfg_get_table(doc, "x.y.z", &t), 0);
    assert_int_equal(tkv_cfg_len(t), 0);
    assert_int_equal(int_at(doc, "\"\".empty-table-key"), 3);
    assert_round_trips(doc);
    tkv_cfg_free(doc);
}

static void test_parse_reads_nested_mixed_arrays_and_inline_tables(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("endpoints = [\"127.0.0.1:2379\", \"127.0.0.1:2380\",]\n"
                                "nested = [[1, 2], [\"a\", [true]], []]\n"
                                "mixed = [1, 2.5, \"x\", {k = \"v\"}, 1979-05-27]\n"
                                "multi = [\n"
                                "  1, # one\n"
                                "  2\n"
                                "  , 3\n"
                                "]\n"
                                "point = { x = 1, y = -2, sub.z = 3, sub.w = 4 }\n"
                                "empty = {}\n");
    const tkv_cfg_value *a;
    assert_int_equal(tkv_cfg_get_array(doc, "endpoints", &a), 0);
    assert_int_equal(tkv_cfg_len(a), 2);
    assert_string_equal(tkv_cfg_str(tkv_cfg_at(a, 1), NULL), "127.0.0.1:2380");
    assert_null(tkv_cfg_at(a, 2));
    assert_int_equal(tkv_cfg_get_array(doc, "nested", &a), 0);
    assert_int_equal(tkv_cfg_len(a), 3);
    const tkv_cfg_value *inner = tkv_cfg_at(tkv_cfg_at(a, 1), 1);
    assert_int_equal(tkv_cfg_type_of(inner), TKV_CFG_ARRAY);
    assert_true(tkv_cfg_bool(tkv_cfg_at(inner, 0)));
    assert_int_equal(tkv_cfg_len(tkv_cfg_at(a, 2)), 0);
    assert_int_equal(tkv_cfg_get_array(doc, "mixed", &a), 0);
    assert_int_equal(tkv_cfg_type_of(tkv_cfg_at(a, 1)), TKV_CFG_FLOAT);
    assert_int_equal(tkv_cfg_type_of(tkv_cfg_at(a, 3)), TKV_CFG_TABLE);
    assert_string_equal(tkv_cfg_str(tkv_cfg_lookup(tkv_cfg_at(a, 3), "k"), NULL), "v");
    assert_int_equal(tkv_cfg_get_array(doc, "multi", &a), 0);
    assert_int_equal(tkv_cfg_len(a), 3);
    assert_int_equal(tkv_cfg_int(tkv_cfg_at(a, 2)), 3);
    assert_int_equal(int_at(doc, "point.y"), -2);
    assert_int_equal(int_at(doc, "point.sub.w"), 4);
    const tkv_cfg_value *t;
    assert_int_equal(tkv_cfg_get_table(doc, "empty", &t), 0);
    assert_int_equal(tkv_cfg_len(t), 0);
    assert_round_trips(doc);
    tkv_cfg_free(doc);
}

static void test_parse_builds_arrays_of_tables(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("[[store]]\n"
                                "id = 1\n"
                                "[store.labels]\n"
                                "zone = \"a\"\n"
                                "[[store.peers]]\n"
                                "id = 10\n"
                                "[[store.peers]]\n"
                                "id = 11\n"
                                "\n"
                                "[[store]]\n"
                                "id = 2\n"
                                "[[store.peers]]\n"
                                "id = 20\n");
    const tkv_cfg_value *a;
    assert_int_equal(tkv_cfg_get_array(doc, "store", &a), 0);
    assert_int_equal(tkv_cfg_len(a), 2);
    const tkv_cfg_value *s0 = tkv_cfg_at(a, 0), *s1 = tkv_cfg_at(a, 1);
    assert_int_equal(tkv_cfg_int(tkv_cfg_lookup(s0, "id")), 1);
    assert_string_equal(tkv_cfg_str(tkv_cfg_lookup(s0, "labels.zone"), NULL), "a");
    assert_int_equal(tkv_cfg_len(tkv_cfg_lookup(s0, "peers")), 2);
    assert_int_equal(tkv_cfg_int(tkv_cfg_lookup(tkv_cfg_at(tkv_cfg_lookup(s0, "peers"), 1), "id")),
                     11);
    assert_int_equal(tkv_cfg_int(tkv_cfg_lookup(s1, "id")), 2);
    assert_int_equal(tkv_cfg_len(tkv_cfg_lookup(s1, "peers")), 1);
    assert_null(tkv_cfg_lookup(s1, "labels"));
    assert_round_trips(doc);
    tkv_cfg_free(doc);
}

static void test_table_iteration_lists_keys_in_written_order(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("[server]\nzeta = 1\nalpha = 2\n\"with space\" = 3\nmid.x = 4\n");
    const tkv_cfg_value *t;
    assert_int_equal(tkv_cfg_get_table(doc, "server", &t), 0);
    const char *want[] = {"zeta", "alpha", "with space", "mid"};
    assert_int_equal(tkv_cfg_len(t), 4);
    for (size_t i = 0; i < 4; i++) {
        size_t len;
        assert_string_equal(tkv_cfg_key_at(t, i, &len), want[i]);
        assert_int_equal(len, strlen(want[i]));
    }
    assert_null(tkv_cfg_key_at(t, 4, NULL));
    assert_int_equal(tkv_cfg_int(tkv_cfg_at(t, 1)), 2);
    assert_null(tkv_cfg_key_at(tkv_cfg_at(t, 0), 0, NULL)); /* not a table */
    unsigned line, col;
    assert_string_equal(tkv_cfg_origin(tkv_cfg_at(t, 2), &line, &col), "t.toml");
    assert_int_equal(line, 4);
    assert_int_equal(col, 16);
    tkv_cfg_free(doc);
}

static void test_lookups_report_missing_wrong_type_and_bad_paths(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("[server]\naddr = \"x\"\nn = 1\n[a]\n\"b.c\" = 5\n");
    const char *s = "untouched";
    int64_t i = 77;
    assert_int_equal(tkv_cfg_get_str(doc, "server.missing", &s, NULL), TKV_ENOTFOUND);
    assert_int_equal(tkv_cfg_get_str(doc, "nope.addr", &s, NULL), TKV_ENOTFOUND);
    assert_int_equal(tkv_cfg_get_str(doc, "server.addr.deeper", &s, NULL), TKV_ENOTFOUND);
    assert_int_equal(tkv_cfg_get_str(doc, "server.n", &s, NULL), TKV_ECONFIG);
    assert_string_equal(s, "untouched");
    assert_int_equal(tkv_cfg_get_int(doc, "server..n", &i), -EINVAL);
    assert_int_equal(tkv_cfg_get_int(doc, "server.n.", &i), -EINVAL);
    assert_int_equal(tkv_cfg_get_int(doc, "", &i), -EINVAL);
    assert_int_equal(tkv_cfg_get_int(doc, "server.\"n", &i), -EINVAL);
    assert_int_equal(i, 77);
    assert_int_equal(tkv_cfg_get_int(doc, "a.\"b.c\"", &i), 0);
    assert_int_equal(i, 5);
    assert_int_equal(tkv_cfg_get_int(doc, " a . 'b.c' ", &i), 0);
    assert_null(tkv_cfg_get(doc, "a.b.c"));
    assert_null(tkv_cfg_lookup(tkv_cfg_get(doc, "server.n"), "x"));
    assert_string_equal(tkv_cfg_type_name(TKV_CFG_TABLE), "table");
    tkv_cfg_free(doc);
}

/* ---- errors ---------------------------------------------------------------------------- */

static int run_parse(const char *in, char *err, void *arg)
{
    (void)arg;
    tkv_cfg_doc *doc = (tkv_cfg_doc *)0x1;
    int rc = tkv_cfg_parse(in, strlen(in), "t.toml", &doc, err);
    if (rc != 0)
        assert_null(doc);
    tkv_cfg_free(rc == 0 ? doc : NULL);
    return rc;
}

static void test_parse_errors_name_line_column_and_cause(void **state)
{
    (void)state;
    static const err_case cases[] = {
        {"[server]\naddr = \"a\"\naddr = \"b\"\n", "t.toml:3:1: duplicate key 'addr'"},
        {"a.b = 1\na.b = 2\n", "t.toml:2:3: duplicate key 'a.b'"},
        {"[server]\nx = 1\n\n[server]\n", "t.toml:4:1: table 'server' is defined twice"},
        {"a.b = 1\n[a]\n", "t.toml:2:1: table 'a' is already defined by dotted keys"},
        {"[a.b]\nz = 1\n[a]\nb.t = 2\n",
         "t.toml:4:1: table 'b' is already defined; dotted keys cannot add to it"},
        {"a = {x = 1}\na.y = 2\n", "t.toml:2:1: cannot add keys to the inline table 'a'"},
        {"a = {x = 1}\n[a.b]\n", "t.toml:2:2: cannot add to the inline table 'a'"},
        {"a = [1]\n[[a]]\n", "t.toml:2:1: 'a' is already an array, not an array of tables"},
        {"[[a]]\n[a]\n", "t.toml:2:1: 'a' is already an array of tables, not a table"},
        {"a = 1\n[a.b]\n", "t.toml:2:2: 'a' is an integer, not a table"},
        {"s = \"bad \\q escape\"\n", "t.toml:1:10: invalid escape sequence '\\q'"},
        {"s = \"\\uD800\"\n", "t.toml:1:6: escape \\uD800 is not a Unicode scalar value"},
        {"s = \"\\u12\"\n", "t.toml:1:6: escape \\u needs 4 hex digits"},
        {"s = \"open\nx = 1\n", "t.toml:1:10: line ending inside a single-line string"},
        {"s = \"\"\"never closed\n", "t.toml:1:5: unterminated string"},
        {"n = 012\n", "t.toml:1:5: leading zeros are not allowed in '012'"},
        {"n = 9223372036854775808\n",
         "t.toml:1:5: integer '9223372036854775808' does not fit in 64 bits"},
        {"n = 1__0\n", "t.toml:1:5: invalid number '1__0'"},
        {"n = 1.\n", "t.toml:1:5: invalid float '1.'"},
        {"n = 1e400\n", "t.toml:1:5: float '1e400' is out of range"},
        {"n = -0x10\n", "t.toml:1:5: invalid integer '-0x10'"},
        {"d = 2023-02-29\n", "t.toml:1:5: date out of range"},
        {"d = 1979-05-27T25:00:00\n", "t.toml:1:5: time out of range"},
        {"t = 07:32\n", "t.toml:1:5: invalid time (expected HH:MM:SS)"},
        {"key \"v\"\n", "t.toml:1:5: expected '=' after a key, found '\"'"},
        {"key = \n", "t.toml:1:7: expected a value, found end of line"},
        {"key = tru\n", "t.toml:1:7: expected a value, found 't'"},
        {"a = 1 b = 2\n", "t.toml:1:7: expected the end of the line after a value, found 'b'"},
        {"[a\n", "t.toml:1:3: expected ']' to end the header, found end of line"},
        {"[[a]\n", "t.toml:1:4: expected ']]' to end the header, found ']'"},
        {"[]\n", "t.toml:1:2: expected a key, found ']'"},
        {"a = [1, 2\n", "t.toml:1:5: unterminated array"},
        {"a = [1 2]\n", "t.toml:1:8: expected ',' or ']' in an array, found '2'"},
        {"a = {x = 1,}\n", "t.toml:1:12: trailing comma in an inline table"},
        {"a = {x = 1\n}\n",
         "t.toml:1:11: line ending inside an inline table (TOML 1.0 inline tables are one line)"},
        {"# ok\nx = 1 # bad \x01 char\n", "t.toml:2:13: control character U+0001 in a comment"},
        {"s = \"tab\tok, bell \x07 not\"\n",
         "t.toml:1:19: control character U+0007 in a string (use an escape)"},
        {"x = 1\n\xC3\xA9 = 2\n", "t.toml:2:1: expected a key, found U+00E9"},
        {"x = \"\xC3\x28\"\n", "t.toml:1:6: invalid UTF-8"},
        {"x = 1\ry = 2\n",
         "t.toml:1:6: expected the end of the line after a value, found a carriage return "
         "without a line feed"},
        {"\"\"\"k\"\"\" = 1\n", "t.toml:1:1: a multi-line string cannot be a key"},
        {"a = 1979-05-27T07:32:00+25:00\n", "t.toml:1:5: time offset out of range"},
        {"s = \"\"\"a\"\"\"\"\"\"\n", "t.toml:1:14: too many quotes at the end of a string"},
        {"s = \"\"\"a \\  x\"\"\"\n",
         "t.toml:1:10: a backslash followed by spaces must end the line"},
        {"n = 0x8000000000000000\n",
         "t.toml:1:5: integer '0x8000000000000000' does not fit in 64 bits"},
        {"f = 1.5e\n", "t.toml:1:5: invalid float '1.5e'"},
        {"d = 1979-5-27\n", "t.toml:1:5: invalid date (expected YYYY-MM-DD)"},
        {"t = 1979-05-27T07:32:00.\n",
         "t.toml:1:5: invalid time: a fraction of a second needs digits"},
        {"t = 1979-05-27T07:32:00+07\n", "t.toml:1:5: invalid time offset (expected +HH:MM)"},
        {"a = {x = 1", "t.toml:1:5: unterminated inline table"},
        {"a = {x = 1 y = 2}\n", "t.toml:1:12: expected ',' or '}' in an inline table, found 'y'"},
        {"a = [1,\n", "t.toml:1:5: unterminated array"},
        {"x = \"\xED\xA0\x80\"\n", "t.toml:1:6: invalid UTF-8"},     /* a surrogate */
        {"x = \"\xF4\x90\x80\x80\"\n", "t.toml:1:6: invalid UTF-8"}, /* past U+10FFFF */
        {"x = \"\xE0\x80\x80\"\n", "t.toml:1:6: invalid UTF-8"},     /* overlong */
        {"x = \"\xF8\"\n", "t.toml:1:6: invalid UTF-8"},             /* no such lead byte */
        {"x = \"\xC3", "t.toml:1:6: invalid UTF-8"},                 /* cut short */
    };
    check_errors(cases, TKV_ARRAY_LEN(cases), run_parse, NULL);
}

static void test_error_columns_count_characters_not_bytes(void **state)
{
    (void)state;
    const char *text = "name = \"日本語\" oops\n";
    tkv_cfg_doc *doc;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(tkv_cfg_parse(text, strlen(text), "c.toml", &doc, err), TKV_ECONFIG);
    assert_string_equal(err, "c.toml:1:14: expected the end of the line after a value, found 'o'");
}

static void test_nesting_depth_is_bounded_without_recursing_unboundedly(void **state)
{
    (void)state;
    char text[512];
    tkv_cfg_doc *doc;
    char err[TKV_ERRMSG_LEN];
    /* a is at depth 1; 63 nested arrays put the innermost element at depth 64. */
    size_t n = 0;
    n += (size_t)snprintf(text, sizeof(text), "a = ");
    for (int i = 0; i < 63; i++)
        text[n++] = '[';
    text[n++] = '1';
    for (int i = 0; i < 63; i++)
        text[n++] = ']';
    assert_int_equal(tkv_cfg_parse(text, n, "d", &doc, err), 0);
    assert_round_trips(doc);
    tkv_cfg_free(doc);
    n = (size_t)snprintf(text, sizeof(text), "a = ");
    for (int i = 0; i < 64; i++)
        text[n++] = '[';
    text[n++] = '1';
    for (int i = 0; i < 64; i++)
        text[n++] = ']';
    assert_int_equal(tkv_cfg_parse(text, n, "d", &doc, err), TKV_ECONFIG);
    assert_string_equal(err, "d:1:69: values nested deeper than 64 levels");
    /* A megabyte of brackets and of braces stops at the limit, not at the stack's end. */
    size_t big = 1 << 20;
    char *deep = malloc(big);
    assert_non_null(deep);
    memcpy(deep, "a = ", 4);
    memset(deep + 4, '[', big - 4);
    assert_int_equal(tkv_cfg_parse(deep, big, "d", &doc, err), TKV_ECONFIG);
    for (size_t i = 4; i + 6 < big; i += 6)
        memcpy(deep + i, "{ a = ", 6);
    assert_int_equal(tkv_cfg_parse(deep, big, "d", &doc, err), TKV_ECONFIG);
    free(deep);
    /* Dotted keys and headers count too. */
    n = (size_t)snprintf(text, sizeof(text), "[a");
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, ".b");
    n += (size_t)snprintf(text + n, sizeof(text) - n, "]\n");
    assert_int_equal(tkv_cfg_parse(text, n, "d", &doc, err), TKV_ECONFIG);
    assert_string_equal(err, "d:1:130: key has more than 64 parts");
}

static void test_nesting_depth_counts_arrays_of_tables_and_header_paths(void **state)
{
    (void)state;
    tkv_cfg_doc *doc;
    char err[TKV_ERRMSG_LEN];
    /* Each [[a.a...]] level adds an array and a table: level 32 reaches depth 64. */
    tkv_buf text;
    tkv_buf_init(&text);
    for (int level = 1; level <= 33; level++) {
        assert_int_equal(tkv_buf_append(&text, "[[a", 3), 0);
        for (int i = 1; i < level; i++)
            assert_int_equal(tkv_buf_append(&text, ".a", 2), 0);
        assert_int_equal(tkv_buf_append(&text, "]]\n", 3), 0);
        if (level == 32) {
            assert_int_equal(tkv_cfg_parse((const char *)text.data, text.len, "t", &doc, err), 0);
            assert_round_trips(doc);
            tkv_cfg_free(doc);
        }
    }
    assert_int_equal(tkv_cfg_parse((const char *)text.data, text.len, "t", &doc, err), TKV_ECONFIG);
    assert_string_equal(err, "t:33:1: tables nested deeper than 64 levels");
    /* A header path below an array-of-tables element: x's element is at depth 2. */
    tkv_buf_reset(&text);
    assert_int_equal(tkv_buf_append(&text, "[[x]]\n[x", 8), 0);
    for (int i = 0; i < 63; i++)
        assert_int_equal(tkv_buf_append(&text, ".a", 2), 0);
    assert_int_equal(tkv_buf_append(&text, "]\n", 2), 0);
    assert_int_equal(tkv_cfg_parse((const char *)text.data, text.len, "t", &doc, err), TKV_ECONFIG);
    assert_string_equal(err, "t:2:128: tables nested deeper than 64 levels");
    tkv_buf_deinit(&text);
}

static void test_too_large_input_is_rejected_before_parsing(void **state)
{
    (void)state;
    tkv_cfg_doc *doc;
    char err[TKV_ERRMSG_LEN];
    /* The length check comes first, so the bytes are never read. */
    assert_int_equal(tkv_cfg_parse("", (size_t)TKV_CFG_MAX_TEXT_LEN + 1, "big.toml", &doc, err),
                     TKV_ETOOLARGE);
    assert_string_equal(err, "big.toml: larger than 16777216 bytes");
    assert_null(doc);
}

/* ---- dump and equality ----------------------------------------------------------------- */

static void test_dump_writes_headers_and_reparses_equal(void **state)
{
    (void)state;
    tkv_cfg_doc *doc =
        parse_ok("title = \"x\"\n"
                 "[server]\naddr = \"a\"\nlabels = { zone = \"z\", \"odd key\" = 1 }\n"
                 "[[s]]\nid = 1\n[[s]]\nid = 2\nsub.k = 0.1\n"
                 "[\"we\\\"ird\"]\nv = [{a = 1}, 2]\n"
                 "tbl_arr = [{a = 1}, {b = 2}]\n");
    tkv_buf out;
    tkv_buf_init(&out);
    assert_int_equal(tkv_cfg_dump(doc, &out), 0);
    const char *want = "title = \"x\"\n"
                       "\n[server]\naddr = \"a\"\n"
                       "\n[server.labels]\nzone = \"z\"\n\"odd key\" = 1\n"
                       "\n[[s]]\nid = 1\n"
                       "\n[[s]]\nid = 2\n"
                       "\n[s.sub]\nk = 0.1\n"
                       "\n[\"we\\\"ird\"]\nv = [{ a = 1 }, 2]\n"
                       "\n[[\"we\\\"ird\".tbl_arr]]\na = 1\n"
                       "\n[[\"we\\\"ird\".tbl_arr]]\nb = 2\n";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    tkv_buf_deinit(&out);
    assert_round_trips(doc);
    tkv_cfg_free(doc);
}

static void test_equal_compares_data_not_layout(void **state)
{
    (void)state;
    tkv_cfg_doc *a = parse_ok("[t]\nx = 1\ny = 2\n");
    tkv_cfg_doc *b = parse_ok("t = { y = 2, x = 1 }\n");
    tkv_cfg_doc *c = parse_ok("t.x = 1\nt.y = 3\n");
    tkv_cfg_doc *z1 = parse_ok("f = 0.0\nn = nan\n");
    tkv_cfg_doc *z2 = parse_ok("f = -0.0\nn = -nan\n");
    tkv_cfg_doc *z3 = parse_ok("f = 0.0\nn = nan\n");
    tkv_cfg_doc *i1 = parse_ok("f = 1\n");
    tkv_cfg_doc *f1 = parse_ok("f = 1.0\n");
    assert_true(tkv_cfg_equal(tkv_cfg_root(a), tkv_cfg_root(b)));
    assert_false(tkv_cfg_equal(tkv_cfg_root(a), tkv_cfg_root(c)));
    assert_false(tkv_cfg_equal(tkv_cfg_root(z1), tkv_cfg_root(z2)));
    assert_true(tkv_cfg_equal(tkv_cfg_root(z1), tkv_cfg_root(z3)));
    assert_false(tkv_cfg_equal(tkv_cfg_root(i1), tkv_cfg_root(f1)));
    assert_true(tkv_cfg_equal(tkv_cfg_get(z2, "n"), tkv_cfg_get(z1, "n")));
    assert_true(tkv_cfg_equal(NULL, NULL));
    assert_false(tkv_cfg_equal(tkv_cfg_root(a), NULL));
    tkv_cfg_doc *docs[] = {a, b, c, z1, z2, z3, i1, f1};
    for (size_t i = 0; i < TKV_ARRAY_LEN(docs); i++) {
        assert_round_trips(docs[i]);
        tkv_cfg_free(docs[i]);
    }
}

static void test_dump_writes_floats_that_read_back_exactly(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("a = 0.1\nb = 1e300\nc = 5e-324\nd = 123456789.123\ne = 2.0\n"
                                "f = -1.7976931348623157e308\n");
    tkv_buf out;
    tkv_buf_init(&out);
    assert_int_equal(tkv_cfg_dump(doc, &out), 0);
    const char *want = "a = 0.1\nb = 1e+300\nc = 4.94065645841247e-324\nd = 123456789.123\n"
                       "e = 2.0\nf = -1.7976931348623157e+308\n";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    tkv_buf_deinit(&out);
    assert_round_trips(doc);
    tkv_cfg_free(doc);
}

/* ---- sizes and durations --------------------------------------------------------------- */

static void test_size_parses_tikv_units_as_powers_of_1024(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"96MiB", 96ull << 20},
        {"96MB", 96ull << 20},
        {"96M", 96ull << 20},
        {"1GB", 1ull << 30},
        {"512KB", 512ull << 10},
        {"512KiB", 512ull << 10},
        {"3K", 3ull << 10},
        {"0", 0},
        {"0KiB", 0},
        {"1234", 1234},
        {"1234B", 1234},
        {"1.5GiB", 3ull << 29},
        {"0.5KB", 512},
        {"1.0009765625KiB", 1025},
        {".5MB", 512ull << 10},
        {"5.MB", 5ull << 20},
        {" 2 TB ", 2ull << 40},
        {"3PiB", 3ull << 50},
        {"0.3B", 0},
        {"16383PiB", 16383ull << 50},
        {"18446744073709551615", UINT64_MAX},
        {"18446744073709551615B", UINT64_MAX},
        /* exactly 2^-50 PiB: one byte, which a 64-bit float would lose */
        {"0.00000000000000088817841970012523233890533447265625PB", 1},
    };
    for (size_t i = 0; i < TKV_ARRAY_LEN(ok); i++) {
        uint64_t v = 7;
        char err[TKV_ERRMSG_LEN];
        int rc = tkv_cfg_parse_size(ok[i].s, strlen(ok[i].s), &v, err);
        if (rc != 0 || v != ok[i].v)
            fail_msg("size \"%s\": rc %d (%s), got %llu want %llu", ok[i].s, rc, err,
                     (unsigned long long)v, (unsigned long long)ok[i].v);
    }
}

static int run_size(const char *in, char *err, void *arg)
{
    (void)arg;
    uint64_t v = 7;
    int rc = tkv_cfg_parse_size(in, strlen(in), &v, err);
    if (rc != 0)
        assert_true(v == 7);
    return rc;
}

static void test_size_rejects_bad_units_numbers_and_overflow(void **state)
{
    (void)state;
    static const err_case bad[] = {
        {"", "empty size"},
        {"   ", "empty size"},
        {"96XB", "invalid size \"96XB\": unknown unit \"XB\" (use B, KB, KiB, MB, MiB, GB, GiB, "
                 "TB, TiB, PB or PiB)"},
        {"96mb", "invalid size \"96mb\": unknown unit \"mb\" (use B, KB, KiB, MB, MiB, GB, GiB, "
                 "TB, TiB, PB or PiB)"},
        {"-1KB", "invalid size \"-1KB\": unknown unit \"-1KB\" (use B, KB, KiB, MB, MiB, GB, "
                 "GiB, TB, TiB, PB or PiB)"},
        {"1e3", "invalid size \"1e3\": unknown unit \"e3\" (use B, KB, KiB, MB, MiB, GB, GiB, "
                "TB, TiB, PB or PiB)"},
        {"KB", "invalid size \"KB\": no digits"},
        {".KB", "invalid size \".KB\": no digits"},
        {"1.2.3MB", "invalid size \"1.2.3MB\": more than one '.'"},
        {"16384PiB", "invalid size \"16384PiB\": more than 2^64-1 bytes"},
        {"18446744073709551616", "invalid size \"18446744073709551616\": more than 2^64-1 bytes"},
        {"99999999999999999999999KB",
         "invalid size \"99999999999999999999999KB\": more than 2^64-1 bytes"},
        {"1.00000000000000000000000000000000000000000000000000000000000000001KB",
         "invalid size \"1.00000000000000000000000000000000000000000000000000000000000000001KB"
         "\": too many fraction digits"},
    };
    check_errors(bad, TKV_ARRAY_LEN(bad), run_size, NULL);
    uint64_t v;
    assert_int_equal(tkv_cfg_parse_size("x", 1, &v, NULL), TKV_ECONFIG);
}

static void test_duration_parses_tikv_forms_in_milliseconds(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t ms;
    } ok[] = {
        {"10s", 10000},
        {"1m30s", 90000},
        {"500ms", 500},
        {"1h", 3600000},
        {"1d", 86400000},
        {"1.5h", 5400000},
        {"1h 30m", 5400000},
        {" 2m ", 120000},
        {"0s", 0},
        {"0ms", 0},
        {"1d2h3m4s5ms", 93784005},
        {"0.5ms", 0},
        {"1.0015s", 1001},
        {"213503982334d14h25m51s615ms", UINT64_MAX},
    };
    for (size_t i = 0; i < TKV_ARRAY_LEN(ok); i++) {
        uint64_t v = 7;
        char err[TKV_ERRMSG_LEN];
        int rc = tkv_cfg_parse_duration(ok[i].s, strlen(ok[i].s), &v, err);
        if (rc != 0 || v != ok[i].ms)
            fail_msg("duration \"%s\": rc %d (%s), got %llu want %llu", ok[i].s, rc, err,
                     (unsigned long long)v, (unsigned long long)ok[i].ms);
    }
}

static int run_duration(const char *in, char *err, void *arg)
{
    (void)arg;
    uint64_t v = 7;
    int rc = tkv_cfg_parse_duration(in, strlen(in), &v, err);
    if (rc != 0)
        assert_true(v == 7);
    return rc;
}

static void test_duration_rejects_bad_units_order_and_overflow(void **state)
{
    (void)state;
    static const err_case bad[] = {
        {"", "empty duration (use units d, h, m, s, ms: \"10s\")"},
        {"10", "invalid duration \"10\": a number without a unit (use d, h, m, s, ms)"},
        {"10x", "invalid duration \"10x\": a number without a unit (use d, h, m, s, ms)"},
        {"1s1m", "invalid duration \"1s1m\": units must appear once each, from d to ms"},
        {"1m1m", "invalid duration \"1m1m\": units must appear once each, from d to ms"},
        {"1ms1s", "invalid duration \"1ms1s\": units must appear once each, from d to ms"},
        {"-1s", "invalid duration \"-1s\": bad number before a unit"},
        {"s", "invalid duration \"s\": bad number before a unit"},
        {"1.2.3s", "invalid duration \"1.2.3s\": bad number before a unit"},
        {"1x1s", "invalid duration \"1x1s\": bad number before a unit"},
        {"10s5", "invalid duration \"10s5\": a number without a unit (use d, h, m, s, ms)"},
        {"213503982335d", "invalid duration \"213503982335d\": more than 2^64-1 ms"},
        /* Each part fits; only their sum overflows (the reason once read an unset pointer). */
        {"213503982334d15h", "invalid duration \"213503982334d15h\": more than 2^64-1 ms"},
        {"213503982334d14h25m51s616ms",
         "invalid duration \"213503982334d14h25m51s616ms\": more than 2^64-1 ms"},
    };
    check_errors(bad, TKV_ARRAY_LEN(bad), run_duration, NULL);
}

static void test_format_size_and_duration_read_back(void **state)
{
    (void)state;
    char b[TKV_CFG_FMT_LEN];
    struct {
        uint64_t v;
        const char *s;
    } sizes[] = {{0, "0KiB"},
                 {1000, "1000B"},
                 {1024, "1KiB"},
                 {96ull << 20, "96MiB"},
                 {3ull << 29, "1536MiB"},
                 {1ull << 50, "1PiB"},
                 {UINT64_MAX, "18446744073709551615B"}};
    for (size_t i = 0; i < TKV_ARRAY_LEN(sizes); i++) {
        size_t n = tkv_cfg_format_size(sizes[i].v, b, sizeof(b));
        assert_string_equal(b, sizes[i].s);
        assert_int_equal(n, strlen(sizes[i].s));
        uint64_t back;
        assert_int_equal(tkv_cfg_parse_size(b, n, &back, NULL), 0);
        assert_true(back == sizes[i].v);
    }
    struct {
        uint64_t v;
        const char *s;
    } durs[] = {{0, "0s"},
                {500, "500ms"},
                {90000, "1m30s"},
                {5400000, "1h30m"},
                {93784005, "1d2h3m4s5ms"},
                {UINT64_MAX, "213503982334d14h25m51s615ms"}};
    for (size_t i = 0; i < TKV_ARRAY_LEN(durs); i++) {
        size_t n = tkv_cfg_format_duration(durs[i].v, b, sizeof(b));
        assert_string_equal(b, durs[i].s);
        uint64_t back;
        assert_int_equal(tkv_cfg_parse_duration(b, n, &back, NULL), 0);
        assert_true(back == durs[i].v);
    }
}

/* ---- overrides ------------------------------------------------------------------------- */

static void test_set_overrides_replace_and_create_values(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("[raftstore]\nregion-split-size = \"144MiB\"\n"
                                "[server]\naddr = \"127.0.0.1:20160\"\nlabels = {zone = \"a\"}\n");
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(tkv_cfg_set(doc, "raftstore.region-split-size=\"96MiB\"", err), 0);
    assert_string_equal(str_at(doc, "raftstore.region-split-size"), "96MiB");
    assert_int_equal(tkv_cfg_set(doc, "server.grpc-concurrency = 8", err), 0);
    assert_int_equal(int_at(doc, "server.grpc-concurrency"), 8);
    assert_int_equal(tkv_cfg_set(doc, "security.encryption.master-key.type=\"file\"", err), 0);
    assert_string_equal(str_at(doc, "security.encryption.master-key.type"), "file");
    assert_int_equal(tkv_cfg_set(doc, "pd.endpoints=[\"a:2379\", \"b:2379\"]", err), 0);
    const tkv_cfg_value *a;
    assert_int_equal(tkv_cfg_get_array(doc, "pd.endpoints", &a), 0);
    assert_int_equal(tkv_cfg_len(a), 2);
    /* Inline tables may be extended and whole tables replaced by an override. */
    assert_int_equal(tkv_cfg_set(doc, "server.labels.host=\"h1\"", err), 0);
    assert_string_equal(str_at(doc, "server.labels.host"), "h1");
    assert_int_equal(tkv_cfg_set(doc, "server.labels={rack = \"r1\"}", err), 0);
    assert_null(tkv_cfg_get(doc, "server.labels.zone"));
    assert_string_equal(str_at(doc, "server.labels.rack"), "r1");
    assert_int_equal(tkv_cfg_set(doc, "\"quoted.key\".x=1", err), 0);
    assert_int_equal(int_at(doc, "\"quoted.key\".x"), 1);
    unsigned line, col;
    assert_string_equal(tkv_cfg_origin(tkv_cfg_get(doc, "server.grpc-concurrency"), &line, &col),
                        "--set");
    assert_int_equal(line, 1);
    assert_int_equal(col, 27);
    assert_round_trips(doc);
    tkv_cfg_free(doc);
}

/* @arg: the document and an unchanged copy of it. */
static int run_set(const char *in, char *err, void *arg)
{
    tkv_cfg_doc **docs = arg;
    int rc = tkv_cfg_set(docs[0], in, err);
    assert_true(tkv_cfg_equal(tkv_cfg_root(docs[0]), tkv_cfg_root(docs[1])));
    return rc;
}

static void test_set_rejects_bad_overrides_and_leaves_document_unchanged(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("[server]\naddr = \"x\"\n[[store]]\nid = 1\n");
    tkv_cfg_doc *copy = parse_ok("[server]\naddr = \"x\"\n[[store]]\nid = 1\n");
    static const err_case bad[] = {
        {"server.addr=127.0.0.1:20160",
         "--set:1:13: invalid number '127.0.0.1' (strings need quotes: key=\"text\")"},
        {"log-level=info", "--set:1:11: invalid number 'info' (strings need quotes: key=\"text\")"},
        {"log-level=warn",
         "--set:1:11: expected a value, found 'w' (strings need quotes: key=\"text\")"},
        {"server.addr.x=1", "--set:1:8: 'server.addr' is a string, not a table"},
        {"store.id=2", "--set:1:1: 'store' is an array of tables, not a table"},
        {"server.addr", "--set:1:12: expected '=' after the key, found end of input (use --set "
                        "key=value)"},
        {"=1", "--set:1:1: expected a key, found '='"},
        {"a=1 b=2", "--set:1:5: unexpected 'b' after the value"},
        {"a=\"unterminated", "--set:1:3: unterminated string (strings need quotes: key=\"text\")"},
    };
    tkv_cfg_doc *docs[2] = {doc, copy};
    check_errors(bad, TKV_ARRAY_LEN(bad), run_set, docs);
    tkv_cfg_free(copy);
    tkv_cfg_free(doc);
}

/* ---- binding --------------------------------------------------------------------------- */

/* A small server configuration, standing in for tikv-server's. */
typedef struct demo_cfg {
    char *addr;
    int grpc_concurrency;
    bool enable_tls;
    uint64_t region_split_size;
    uint64_t raft_base_tick_ms;
    int64_t offset;
    uint64_t capacity_count;
    double ratio;
    tkv_cfg_strlist endpoints;
    char *data_dir;
} demo_cfg;

static int check_positive_int(const void *field, char *msg, size_t cap)
{
    int v;
    memcpy(&v, field, sizeof(v));
    if (v > 0)
        return 0;
    snprintf(msg, cap, "must be at least 1, got %d", v);
    return 1;
}

static int check_split_size(const void *field, char *msg, size_t cap)
{
    uint64_t v;
    memcpy(&v, field, sizeof(v));
    if (v >= (1u << 20))
        return 0;
    snprintf(msg, cap, "must be at least 1MiB");
    return 1;
}

static const tkv_cfg_field demo_fields[] = {
    TKV_CFG_FIELD("server.addr", STR, demo_cfg, addr, "\"127.0.0.1:20160\"", NULL),
    TKV_CFG_FIELD("server.grpc-concurrency", INT, demo_cfg, grpc_concurrency, "5",
                  check_positive_int),
    TKV_CFG_FIELD("security.enable-tls", BOOL, demo_cfg, enable_tls, "false", NULL),
    TKV_CFG_FIELD("raftstore.region-split-size", SIZE, demo_cfg, region_split_size, "\"96MiB\"",
                  check_split_size),
    TKV_CFG_FIELD("raftstore.raft-base-tick-interval", DURATION, demo_cfg, raft_base_tick_ms,
                  "\"1s\"", NULL),
    TKV_CFG_FIELD("demo.offset", I64, demo_cfg, offset, "-3", NULL),
    TKV_CFG_FIELD("demo.capacity-count", U64, demo_cfg, capacity_count, NULL, NULL),
    TKV_CFG_FIELD("demo.ratio", F64, demo_cfg, ratio, "0.5", NULL),
    TKV_CFG_FIELD("pd.endpoints", STRLIST, demo_cfg, endpoints, "[\"127.0.0.1:2379\"]", NULL),
    TKV_CFG_FIELD("storage.data-dir", STR, demo_cfg, data_dir, NULL, NULL),
};

typedef struct warnings {
    char lines[8][TKV_ERRMSG_LEN];
    int n;
} warnings;

static void collect_warning(void *arg, const char *msg)
{
    warnings *w = arg;
    if (w->n < 8)
        snprintf(w->lines[w->n], TKV_ERRMSG_LEN, "%s", msg);
    w->n++;
}

static void test_bind_uses_defaults_without_a_document(void **state)
{
    (void)state;
    demo_cfg c;
    memset(&c, 0xAB, sizeof(c));
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(
        tkv_cfg_bind(NULL, demo_fields, TKV_ARRAY_LEN(demo_fields), &c, NULL, NULL, err), 0);
    assert_string_equal(c.addr, "127.0.0.1:20160");
    assert_int_equal(c.grpc_concurrency, 5);
    assert_false(c.enable_tls);
    assert_true(c.region_split_size == 96ull << 20);
    assert_true(c.raft_base_tick_ms == 1000);
    assert_true(c.offset == -3);
    assert_true(c.capacity_count == 0);
    assert_true(c.ratio == 0.5);
    assert_int_equal(c.endpoints.len, 1);
    assert_string_equal(c.endpoints.items[0], "127.0.0.1:2379");
    assert_null(c.data_dir);
    tkv_cfg_unbind(demo_fields, TKV_ARRAY_LEN(demo_fields), &c);
    assert_null(c.addr);
    assert_null(c.endpoints.items);
    tkv_cfg_unbind(demo_fields, TKV_ARRAY_LEN(demo_fields), &c);
}

static void test_bind_takes_file_values_and_overrides_and_warns_on_unknown_keys(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok("[server]\n"
                                "addr = \"0.0.0.0:20160\"\n"
                                "adr = \"typo\"\n"
                                "[raftstore]\n"
                                "region-split-size = 2097152\n"
                                "raft-base-tick-interval = \"100ms\"\n"
                                "[demo]\n"
                                "ratio = 2\n"
                                "capacity-count = 9\n"
                                "[pd]\n"
                                "endpoints = [\"a:2379\", \"b:2379\"]\n"
                                "[coprocessor]\n"
                                "x = 1\n"
                                "y = 2\n");
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(tkv_cfg_set(doc, "server.grpc-concurrency=12", err), 0);
    assert_int_equal(tkv_cfg_set(doc, "storage.data-dir=\"/data/tikv\"", err), 0);
    assert_int_equal(tkv_cfg_set(doc, "raftstore.region-split-size=\"64MiB\"", err), 0);
    assert_int_equal(tkv_cfg_set(doc, "server.extra=true", err), 0);
    demo_cfg c;
    warnings w = {.n = 0};
    assert_int_equal(
        tkv_cfg_bind(doc, demo_fields, TKV_ARRAY_LEN(demo_fields), &c, collect_warning, &w, err),
        0);
    assert_string_equal(c.addr, "0.0.0.0:20160");
    assert_int_equal(c.grpc_concurrency, 12);
    assert_true(c.region_split_size == 64ull << 20);
    assert_true(c.raft_base_tick_ms == 100);
    assert_true(c.ratio == 2.0);
    assert_true(c.capacity_count == 9);
    assert_int_equal(c.endpoints.len, 2);
    assert_string_equal(c.endpoints.items[1], "b:2379");
    assert_string_equal(c.data_dir, "/data/tikv");
    assert_int_equal(w.n, 3);
    assert_string_equal(w.lines[0], "t.toml:3:7: unknown configuration key 'server.adr'");
    assert_string_equal(w.lines[1], "--set:1:14: unknown configuration key 'server.extra'");
    assert_string_equal(w.lines[2], "t.toml:12:2: unknown configuration key 'coprocessor'");
    tkv_cfg_unbind(demo_fields, TKV_ARRAY_LEN(demo_fields), &c);
    /* Without a callback the warnings go to the log; binding still succeeds. */
    assert_int_equal(
        tkv_cfg_bind(doc, demo_fields, TKV_ARRAY_LEN(demo_fields), &c, NULL, NULL, err), 0);
    tkv_cfg_unbind(demo_fields, TKV_ARRAY_LEN(demo_fields), &c);
    tkv_cfg_free(doc);
}

static int run_bind(const char *in, char *err, void *arg)
{
    (void)arg;
    tkv_cfg_doc *doc = parse_ok(in);
    demo_cfg c;
    int rc = tkv_cfg_bind(doc, demo_fields, TKV_ARRAY_LEN(demo_fields), &c, NULL, NULL, err);
    if (rc != 0) {
        /* Nothing is left allocated after a failed bind. */
        assert_null(c.addr);
        assert_null(c.endpoints.items);
        assert_null(c.data_dir);
    } else {
        tkv_cfg_unbind(demo_fields, TKV_ARRAY_LEN(demo_fields), &c);
    }
    tkv_cfg_free(doc);
    return rc;
}

typedef struct redact_cfg {
    char *redact;
} redact_cfg;

static const tkv_cfg_field redact_fields[] = {
    TKV_CFG_FIELD("security.redact-info-log", BOOLSTR, redact_cfg, redact, "false", NULL),
};

/* Binds security.redact-info-log from @in; returns the code and leaves the text in @out. */
static int bind_redact(const char *in, char *out, size_t cap, char *err)
{
    tkv_cfg_doc *doc = parse_ok(in);
    redact_cfg c;
    int rc = tkv_cfg_bind(doc, redact_fields, 1, &c, NULL, NULL, err);
    if (rc == 0) {
        snprintf(out, cap, "%s", c.redact);
        tkv_cfg_unbind(redact_fields, 1, &c);
        assert_null(c.redact);
    } else {
        assert_null(c.redact);
    }
    tkv_cfg_free(doc);
    return rc;
}

static void test_bind_boolstr_takes_a_boolean_or_a_string(void **state)
{
    (void)state;
    char v[32], err[TKV_ERRMSG_LEN];
    assert_int_equal(bind_redact("", v, sizeof(v), err), 0);
    assert_string_equal(v, "false");
    assert_int_equal(bind_redact("[security]\nredact-info-log = true\n", v, sizeof(v), err), 0);
    assert_string_equal(v, "true");
    assert_int_equal(bind_redact("[security]\nredact-info-log = \"marker\"\n", v, sizeof(v), err),
                     0);
    assert_string_equal(v, "marker");
    assert_int_equal(bind_redact("[security]\nredact-info-log = 1\n", v, sizeof(v), err),
                     TKV_ECONFIG);
    assert_non_null(strstr(err, "security.redact-info-log: expected a boolean or a string"));
}

static void test_bind_errors_name_origin_key_and_reason(void **state)
{
    (void)state;
    static const err_case bad[] = {
        {"[server]\naddr = 5\n", "t.toml:2:8: server.addr: expected a string, got integer"},
        {"[server]\ngrpc-concurrency = \"8\"\n",
         "t.toml:2:20: server.grpc-concurrency: expected an integer, got string"},
        {"[server]\ngrpc-concurrency = 3000000000\n",
         "t.toml:2:20: server.grpc-concurrency: 3000000000 is out of range [-2147483648, "
         "2147483647]"},
        {"[server]\ngrpc-concurrency = 0\n",
         "t.toml:2:20: server.grpc-concurrency: must be at least 1, got 0"},
        {"[security]\nenable-tls = \"yes\"\n",
         "t.toml:2:14: security.enable-tls: expected a boolean, got string"},
        {"[raftstore]\nregion-split-size = \"96XB\"\n",
         "t.toml:2:21: raftstore.region-split-size: invalid size \"96XB\": unknown unit \"XB\" "
         "(use B, KB, KiB, MB, MiB, GB, GiB, TB, TiB, PB or PiB)"},
        {"[raftstore]\nregion-split-size = -1\n",
         "t.toml:2:21: raftstore.region-split-size: a size cannot be negative (-1)"},
        {"[raftstore]\nregion-split-size = \"512KiB\"\n",
         "t.toml:2:21: raftstore.region-split-size: must be at least 1MiB"},
        {"[raftstore]\nregion-split-size = true\n",
         "t.toml:2:21: raftstore.region-split-size: expected a size (\"96MiB\" or a number of "
         "bytes), got boolean"},
        {"[raftstore]\nraft-base-tick-interval = 1000\n",
         "t.toml:2:27: raftstore.raft-base-tick-interval: expected a duration string (\"10s\", "
         "\"1m30s\", \"500ms\"), got integer"},
        {"[raftstore]\nraft-base-tick-interval = \"1s1m\"\n",
         "t.toml:2:27: raftstore.raft-base-tick-interval: invalid duration \"1s1m\": units must "
         "appear once each, from d to ms"},
        {"[demo]\ncapacity-count = -4\n", "t.toml:2:18: demo.capacity-count: -4 is negative"},
        {"[demo]\nratio = \"half\"\n", "t.toml:2:9: demo.ratio: expected a number, got string"},
        {"[pd]\nendpoints = [\"a\", 1]\n",
         "t.toml:2:13: pd.endpoints: expected an array of strings, element 1 is integer"},
        {"[pd]\nendpoints = \"a\"\n",
         "t.toml:2:13: pd.endpoints: expected an array of strings, got string"},
        {"[server]\naddr = \"a\\u0000b\"\n",
         "t.toml:2:8: server.addr: strings cannot hold NUL characters"},
        {"server = 1\n", "t.toml:1:10: server.addr: 'server' must be a table, got integer"},
        {"[raftstore]\n[demo]\nratio = 1.5\noffset = 1979-05-27\n",
         "t.toml:4:10: demo.offset: expected an integer, got datetime"},
    };
    check_errors(bad, TKV_ARRAY_LEN(bad), run_bind, NULL);
}

static void test_bind_reports_bad_defaults(void **state)
{
    (void)state;
    typedef struct {
        int n;
        uint64_t sz;
    } small;
    const tkv_cfg_field bad_syntax[] = {TKV_CFG_FIELD("a.n", INT, small, n, "4x", NULL)};
    const tkv_cfg_field bad_type[] = {TKV_CFG_FIELD("a.n", INT, small, n, "\"4\"", NULL)};
    const tkv_cfg_field bad_size[] = {TKV_CFG_FIELD("a.sz", SIZE, small, sz, "\"4QB\"", NULL)};
    const tkv_cfg_field bad_check[] = {
        TKV_CFG_FIELD("a.n", INT, small, n, "0", check_positive_int)};
    small s;
    char err[TKV_ERRMSG_LEN];
    assert_int_equal(tkv_cfg_bind(NULL, bad_syntax, 1, &s, NULL, NULL, err), TKV_ECONFIG);
    assert_string_equal(err, "default of a.n:1:1: invalid number '4x'");
    assert_int_equal(tkv_cfg_bind(NULL, bad_type, 1, &s, NULL, NULL, err), TKV_ECONFIG);
    assert_string_equal(err, "default: a.n: expected an integer, got string");
    assert_int_equal(tkv_cfg_bind(NULL, bad_size, 1, &s, NULL, NULL, err), TKV_ECONFIG);
    assert_string_equal(err, "default: a.sz: invalid size \"4QB\": unknown unit \"QB\" (use B, KB, "
                             "KiB, MB, MiB, GB, GiB, TB, TiB, PB or PiB)");
    assert_int_equal(tkv_cfg_bind(NULL, bad_check, 1, &s, NULL, NULL, err), TKV_ECONFIG);
    assert_string_equal(err, "default: a.n: must be at least 1, got 0");
}

/* ---- files ----------------------------------------------------------------------------- */

static void test_load_reads_a_file_and_names_it_in_errors(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[256];
    snprintf(path, sizeof(path), "%s/tkv-cfg-XXXXXX", tmp);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[server]\naddr = \"127.0.0.1:1\"\naddr = \"dup\"\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    tkv_cfg_doc *doc;
    char err[TKV_ERRMSG_LEN], want[TKV_ERRMSG_LEN + 64];
    assert_int_equal(tkv_cfg_load(path, &doc, err), TKV_ECONFIG);
    snprintf(want, sizeof(want), "%s:3:1: duplicate key 'addr'", path);
    assert_string_equal(err, want);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[server]\naddr = \"127.0.0.1:1\"\n", f);
    fclose(f);
    assert_int_equal(tkv_cfg_load(path, &doc, err), 0);
    assert_string_equal(str_at(doc, "server.addr"), "127.0.0.1:1");
    assert_string_equal(tkv_cfg_origin(tkv_cfg_get(doc, "server.addr"), NULL, NULL), path);
    tkv_cfg_free(doc);
    unlink(path);
    assert_int_equal(tkv_cfg_load(path, &doc, err), -ENOENT);
    snprintf(want, sizeof(want), "%s: cannot open: no such file or directory", path);
    assert_string_equal(err, want);
    assert_null(doc);
    tkv_cfg_free(NULL);
}

/* ---- allocation failures --------------------------------------------------------------- */

static const char *oom_text = "title = \"oom\"\n"
                              "[server]\naddr = \"127.0.0.1:20160\"\nlabels = {zone = \"a\"}\n"
                              "a.b.c = [1, [2.5, \"x\"], {k = 1979-05-27}]\n"
                              "[[store]]\nid = 1\n[store.sub]\nx = '''lit'''\n[[store]]\nid = 2\n"
                              "[x.y.z]\n[x]\nw = \"\"\"multi\nline\"\"\"\n";

static void test_parse_returns_enomem_on_every_failed_allocation(void **state)
{
    (void)state;
    tkv_cfg_doc *want = parse_ok(oom_text);
    int failures_seen = 0;
    for (long n = 0;; n++) {
        tkv_cfg_doc *doc = (tkv_cfg_doc *)0x1;
        char err[TKV_ERRMSG_LEN];
        tkv_alloc_fail_after(n);
        int rc = tkv_cfg_parse(oom_text, strlen(oom_text), "oom.toml", &doc, err);
        tkv_alloc_fault_clear();
        if (rc == 0) {
            assert_true(tkv_cfg_equal(tkv_cfg_root(doc), tkv_cfg_root(want)));
            tkv_cfg_free(doc);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_string_equal(err, "oom.toml: out of memory");
        assert_null(doc);
        failures_seen++;
    }
    assert_true(failures_seen > 30);
    tkv_cfg_free(want);
}

static void test_set_dump_and_bind_return_enomem_without_leaks_or_changes(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = parse_ok(oom_text);
    tkv_cfg_doc *copy = parse_ok(oom_text);
    const char *sets[] = {"server.addr=\"x\"", "new.deep.path.key=[1, {a = 2}]", "top=1",
                          "\"q.k\".x=1"};
    for (size_t i = 0; i < TKV_ARRAY_LEN(sets); i++) {
        for (long n = 0;; n++) {
            char err[TKV_ERRMSG_LEN];
            tkv_alloc_fail_after(n);
            int rc = tkv_cfg_set(doc, sets[i], err);
            tkv_alloc_fault_clear();
            if (rc == 0)
                break;
            assert_int_equal(rc, -ENOMEM);
            assert_true(tkv_cfg_equal(tkv_cfg_root(doc), tkv_cfg_root(copy)));
        }
        /* Apply the same override to the copy so both stay in step. */
        char err[TKV_ERRMSG_LEN];
        assert_int_equal(tkv_cfg_set(copy, sets[i], err), 0);
        assert_true(tkv_cfg_equal(tkv_cfg_root(doc), tkv_cfg_root(copy)));
    }
    tkv_buf out;
    tkv_buf_init(&out);
    assert_int_equal(tkv_buf_append(&out, "keep", 4), 0);
    for (long n = 0;; n++) {
        tkv_alloc_fail_after(n);
        int rc = tkv_cfg_dump(doc, &out);
        tkv_alloc_fault_clear();
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(out.len, 4);
    }
    assert_memory_equal(out.data, "keep", 4);
    tkv_buf_deinit(&out);
    tkv_cfg_doc *bdoc = parse_ok("[pd]\nendpoints = [\"a\", \"b\", \"c\"]\n[server]\naddr = \"s\"\n"
                                 "[storage]\ndata-dir = \"/d\"\n");
    for (long n = 0;; n++) {
        demo_cfg c;
        char err[TKV_ERRMSG_LEN];
        tkv_alloc_fail_after(n);
        int rc = tkv_cfg_bind(bdoc, demo_fields, TKV_ARRAY_LEN(demo_fields), &c, NULL, NULL, err);
        tkv_alloc_fault_clear();
        if (rc == 0) {
            assert_int_equal(c.endpoints.len, 3);
            tkv_cfg_unbind(demo_fields, TKV_ARRAY_LEN(demo_fields), &c);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_null(c.addr);
        assert_null(c.endpoints.items);
        assert_null(c.data_dir);
    }
    for (long n = 0;; n++) {
        int64_t v = 0;
        tkv_alloc_fail_after(n);
        int rc = tkv_cfg_get_int(doc, "\"q.k\".x", &v);
        tkv_alloc_fault_clear();
        if (rc == 0) {
            assert_int_equal(v, 1);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
    }
    /* Plain dotted lookups allocate nothing. */
    tkv_alloc_fail_after(0);
    const tkv_cfg_value *v = tkv_cfg_get(doc, "server.addr");
    tkv_alloc_fault_clear();
    assert_non_null(v);
    tkv_cfg_free(bdoc);
    tkv_cfg_free(copy);
    tkv_cfg_free(doc);
}

static void test_new_and_load_return_enomem(void **state)
{
    (void)state;
    tkv_cfg_doc *doc = (tkv_cfg_doc *)0x1;
    tkv_alloc_fail_after(0);
    assert_int_equal(tkv_cfg_new(&doc), -ENOMEM);
    tkv_alloc_fault_clear();
    assert_null(doc);
    tkv_alloc_fail_after(1);
    assert_int_equal(tkv_cfg_new(&doc), -ENOMEM);
    tkv_alloc_fault_clear();
    assert_int_equal(tkv_cfg_new(&doc), 0);
    assert_int_equal(tkv_cfg_len(tkv_cfg_root(doc)), 0);
    tkv_cfg_free(doc);
    /* The file opens, then the read buffer cannot be allocated. */
    char err[TKV_ERRMSG_LEN];
    tkv_alloc_fail_after(0);
    assert_int_equal(tkv_cfg_load("/proc/self/status", &doc, err), -ENOMEM);
    tkv_alloc_fault_clear();
    assert_string_equal(err, "/proc/self/status: out of memory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_reads_basic_and_literal_strings_with_escapes),
        cmocka_unit_test(test_parse_reads_multi_line_strings),
        cmocka_unit_test(test_parse_reads_integers_in_every_base),
        cmocka_unit_test(test_parse_reads_floats_booleans_and_special_values),
        cmocka_unit_test(test_parse_keeps_date_times_as_text),
        cmocka_unit_test(test_parse_builds_tables_from_headers_and_dotted_keys),
        cmocka_unit_test(test_parse_reads_nested_mixed_arrays_and_inline_tables),
        cmocka_unit_test(test_parse_builds_arrays_of_tables),
        cmocka_unit_test(test_table_iteration_lists_keys_in_written_order),
        cmocka_unit_test(test_lookups_report_missing_wrong_type_and_bad_paths),
        cmocka_unit_test(test_parse_errors_name_line_column_and_cause),
        cmocka_unit_test(test_error_columns_count_characters_not_bytes),
        cmocka_unit_test(test_nesting_depth_is_bounded_without_recursing_unboundedly),
        cmocka_unit_test(test_nesting_depth_counts_arrays_of_tables_and_header_paths),
        cmocka_unit_test(test_too_large_input_is_rejected_before_parsing),
        cmocka_unit_test(test_dump_writes_headers_and_reparses_equal),
        cmocka_unit_test(test_equal_compares_data_not_layout),
        cmocka_unit_test(test_dump_writes_floats_that_read_back_exactly),
        cmocka_unit_test(test_size_parses_tikv_units_as_powers_of_1024),
        cmocka_unit_test(test_size_rejects_bad_units_numbers_and_overflow),
        cmocka_unit_test(test_duration_parses_tikv_forms_in_milliseconds),
        cmocka_unit_test(test_duration_rejects_bad_units_order_and_overflow),
        cmocka_unit_test(test_format_size_and_duration_read_back),
        cmocka_unit_test(test_set_overrides_replace_and_create_values),
        cmocka_unit_test(test_set_rejects_bad_overrides_and_leaves_document_unchanged),
        cmocka_unit_test(test_bind_uses_defaults_without_a_document),
        cmocka_unit_test(test_bind_takes_file_values_and_overrides_and_warns_on_unknown_keys),
        cmocka_unit_test(test_bind_errors_name_origin_key_and_reason),
        cmocka_unit_test(test_bind_boolstr_takes_a_boolean_or_a_string),
        cmocka_unit_test(test_bind_reports_bad_defaults),
        cmocka_unit_test(test_load_reads_a_file_and_names_it_in_errors),
        cmocka_unit_test(test_parse_returns_enomem_on_every_failed_allocation),
        cmocka_unit_test(test_set_dump_and_bind_return_enomem_without_leaks_or_changes),
        cmocka_unit_test(test_new_and_load_return_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
