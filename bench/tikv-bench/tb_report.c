/*
 * tb_report.c: results as JSON, and the report that merges several runs into one table.
 *
 * A result file is {"tool": "tikv-bench", "results": [ {...}, ... ]}, one object per cell
 * (the Go client writes the same shape). The report groups results by (system, workload,
 * clients, keys), takes the median of each figure over the runs, and prints one table in
 * which each row (workload, clients, keys) lists tikv-c, client-go and etcd, then the ratios
 * tikv-c / etcd (and client-go / etcd). Rows with more preloaded keys than the base show
 * their cost relative to the same row at the base key count.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tb.h"

static const char *const g_workloads[TB_W__COUNT] = {
    "put", "get", "get-ser", "ycsb-a", "ycsb-b", "ycsb-c", "scan", "txn-put", "transfer",
};

const char *tb_workload_name(tb_workload w)
{
    return w < TB_W__COUNT ? g_workloads[w] : "?";
}

int tb_workload_parse(const char *name)
{
    for (int i = 0; i < TB_W__COUNT; i++)
        if (strcmp(name, g_workloads[i]) == 0)
            return i;
    return -1;
}

double tb_median(double *v, int n)
{
    if (n <= 0)
        return NAN;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

int tb_result_to_json(const tb_result *r, void *results)
{
    json_t *o = json_object();
    if (o == NULL)
        return -ENOMEM;
    double ops_s = r->seconds > 0 ? (double)r->ops / r->seconds : 0;
    int rc = 0;
    rc |= json_object_set_new(o, "system", json_string(r->system));
    rc |= json_object_set_new(o, "driver", json_string(r->driver));
    rc |= json_object_set_new(o, "workload", json_string(tb_workload_name(r->workload)));
    rc |= json_object_set_new(o, "clients", json_integer(r->clients));
    rc |= json_object_set_new(o, "keys", json_integer((json_int_t)r->keys));
    rc |= json_object_set_new(o, "mode", json_string(r->mode));
    rc |= json_object_set_new(o, "seconds", json_real(r->seconds));
    rc |= json_object_set_new(o, "ops", json_integer((json_int_t)r->ops));
    rc |= json_object_set_new(o, "total_ops", json_integer((json_int_t)r->total_ops));
    rc |= json_object_set_new(o, "errors", json_integer((json_int_t)r->errors));
    rc |= json_object_set_new(o, "retries", json_integer((json_int_t)r->retries));
    rc |= json_object_set_new(o, "ops_per_sec", json_real(ops_s));
    rc |= json_object_set_new(o, "p50_ms", json_real(ms(tb_hist_percentile(&r->hist, 50))));
    rc |= json_object_set_new(o, "p99_ms", json_real(ms(tb_hist_percentile(&r->hist, 99))));
    rc |= json_object_set_new(o, "p999_ms", json_real(ms(tb_hist_percentile(&r->hist, 99.9))));
    rc |= json_object_set_new(o, "mean_ms", json_real(tb_hist_mean(&r->hist) / 1e6));
    rc |= json_object_set_new(o, "max_ms", json_real(ms(r->hist.max_ns)));
    if (r->server_cpu_s >= 0 && r->ops > 0) {
        rc |= json_object_set_new(o, "server_cpu_s_per_1k",
                                  json_real(r->server_cpu_s * 1000.0 / (double)r->ops));
        rc |= json_object_set_new(o, "server_rss_bytes",
                                  json_integer((json_int_t)r->server_rss_bytes));
        rc |= json_object_set_new(o, "server_rss_peak_bytes",
                                  json_integer((json_int_t)r->server_hwm_bytes));
    }
    if (r->ops > 0)
        rc |= json_object_set_new(o, "client_cpu_s_per_1k",
                                  json_real(r->client_cpu_s * 1000.0 / (double)r->ops));
    json_t *errs = json_array();
    for (int i = 0; errs != NULL && i < r->n_errs; i++)
        rc |= json_array_append_new(errs, json_string(r->errs[i]));
    rc |= json_object_set_new(o, "error_samples", errs);
    rc |= json_array_append_new((json_t *)results, o);
    return rc != 0 ? -ENOMEM : 0;
}

/* ---- merging -------------------------------------------------------------------------- */

enum { F_OPS, F_P50, F_P99, F_P999, F_CPU, F_RSS, F__COUNT };
static const char *const g_fields[F__COUNT] = {
    "ops_per_sec", "p50_ms", "p99_ms", "p999_ms", "server_cpu_s_per_1k", "server_rss_bytes"};

#define MAX_RUNS 32

typedef struct group {
    char system[16];
    int workload; /* index into g_workloads, or TB_W__COUNT for unknown names */
    char workload_name[24];
    int clients;
    uint64_t keys;
    double v[F__COUNT][MAX_RUNS];
    int n[F__COUNT];
    int runs;
    uint64_t errors;
    double med[F__COUNT]; /* NAN when no run had the figure */
} group;

typedef struct table {
    group *g;
    size_t n, cap;
} table;

static group *find_group(table *t, const char *system, const char *workload, int clients,
                         uint64_t keys)
{
    for (size_t i = 0; i < t->n; i++) {
        group *g = &t->g[i];
        if (strcmp(g->system, system) == 0 && strcmp(g->workload_name, workload) == 0 &&
            g->clients == clients && g->keys == keys)
            return g;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        group *ng = tkv_realloc(t->g, cap * sizeof(*ng));
        if (ng == NULL)
            return NULL;
        t->g = ng;
        t->cap = cap;
    }
    group *g = &t->g[t->n++];
    memset(g, 0, sizeof(*g));
    snprintf(g->system, sizeof(g->system), "%s", system);
    snprintf(g->workload_name, sizeof(g->workload_name), "%s", workload);
    int w = tb_workload_parse(workload);
    g->workload = w < 0 ? TB_W__COUNT : w;
    g->clients = clients;
    g->keys = keys;
    return g;
}

static int load_file(table *t, const char *path)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (root == NULL) {
        fprintf(stderr, "tikv-bench report: %s:%d: %s\n", path, je.line, je.text);
        return -1;
    }
    json_t *results = json_object_get(root, "results");
    if (!json_is_array(results)) {
        fprintf(stderr, "tikv-bench report: %s: no \"results\" array\n", path);
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r)
    {
        const char *system = json_string_value(json_object_get(r, "system"));
        const char *workload = json_string_value(json_object_get(r, "workload"));
        json_t *clients = json_object_get(r, "clients");
        json_t *keys = json_object_get(r, "keys");
        if (system == NULL || workload == NULL || !json_is_integer(clients) ||
            !json_is_integer(keys)) {
            fprintf(stderr,
                    "tikv-bench report: %s: result %zu lacks system/workload/clients/keys\n", path,
                    i);
            json_decref(root);
            return -1;
        }
        group *g = find_group(t, system, workload, (int)json_integer_value(clients),
                              (uint64_t)json_integer_value(keys));
        if (g == NULL) {
            json_decref(root);
            return -1;
        }
        g->errors += (uint64_t)json_integer_value(json_object_get(r, "errors"));
        if (g->runs < MAX_RUNS) {
            g->runs++;
            for (int f = 0; f < F__COUNT; f++) {
                json_t *v = json_object_get(r, g_fields[f]);
                if (json_is_number(v))
                    g->v[f][g->n[f]++] = json_number_value(v);
            }
        }
    }
    json_decref(root);
    return 0;
}

static int group_order(const void *pa, const void *pb)
{
    const group *a = pa, *b = pb;
    if (a->keys != b->keys)
        return a->keys < b->keys ? -1 : 1;
    if (a->workload != b->workload)
        return a->workload - b->workload;
    int c = strcmp(a->workload_name, b->workload_name);
    if (c != 0)
        return c;
    return a->clients - b->clients;
}

static const group *lookup(const table *t, const char *system, int workload, int clients,
                           uint64_t keys)
{
    for (size_t i = 0; i < t->n; i++) {
        const group *g = &t->g[i];
        if (strcmp(g->system, system) == 0 && g->workload == workload && g->clients == clients &&
            g->keys == keys)
            return g;
    }
    return NULL;
}

static void fmt_count(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "-");
        return;
    }
    char digits[32];
    snprintf(digits, sizeof(digits), "%.0f", v);
    size_t len = strlen(digits), o = 0;
    for (size_t i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

static void fmt_ms(char *out, size_t cap, double v)
{
    if (isnan(v))
        snprintf(out, cap, "-");
    else if (v < 10)
        snprintf(out, cap, "%.3f", v);
    else if (v < 100)
        snprintf(out, cap, "%.2f", v);
    else
        snprintf(out, cap, "%.1f", v);
}

static void fmt_ratio(char *out, size_t cap, double a, double b)
{
    if (isnan(a) || isnan(b) || b == 0)
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.2fx", a / b);
}

static void fmt_keys(char *out, size_t cap, uint64_t k)
{
    if (k >= 1000000 && k % 1000000 == 0)
        snprintf(out, cap, "%" PRIu64 "M", k / 1000000);
    else if (k >= 1000 && k % 1000 == 0)
        snprintf(out, cap, "%" PRIu64 "k", k / 1000);
    else
        snprintf(out, cap, "%" PRIu64, k);
}

#define ROW_FMT "%-9s %7s %5s  %-22s %10s %8s %8s %9s %10s %8s %4s\n"

static void print_group(FILE *f, const group *g, const char *label)
{
    char keys[32], ops[32], p50[16], p99[16], p999[16], cpu[32], rss[32], runs[32];
    fmt_keys(keys, sizeof(keys), g->keys);
    fmt_count(ops, sizeof(ops), g->med[F_OPS]);
    fmt_ms(p50, sizeof(p50), g->med[F_P50]);
    fmt_ms(p99, sizeof(p99), g->med[F_P99]);
    fmt_ms(p999, sizeof(p999), g->med[F_P999]);
    if (isnan(g->med[F_CPU]))
        snprintf(cpu, sizeof(cpu), "-");
    else
        snprintf(cpu, sizeof(cpu), "%.3f", g->med[F_CPU]);
    if (isnan(g->med[F_RSS]))
        snprintf(rss, sizeof(rss), "-");
    else
        snprintf(rss, sizeof(rss), "%.0f", g->med[F_RSS] / (1024.0 * 1024.0));
    snprintf(runs, sizeof(runs), "%d%s", g->runs, g->errors > 0 ? "!" : "");
    char clients[16];
    snprintf(clients, sizeof(clients), "%d", g->clients);
    fprintf(f, ROW_FMT, g->workload_name, clients, keys, label, ops, p50, p99, p999, cpu, rss,
            runs);
}

static json_t *ratio_json(const group *a, const group *b)
{
    json_t *o = json_object();
    for (int f = 0; f < F__COUNT; f++) {
        double x = a->med[f], y = b->med[f];
        if (!isnan(x) && !isnan(y) && y != 0)
            json_object_set_new(o, g_fields[f], json_real(x / y));
    }
    return o;
}

static void print_ratio(FILE *f, const group *a, const group *b, const char *label, json_t *row,
                        const char *json_name)
{
    char ops[16], p50[16], p99[16], p999[16], cpu[16], rss[16];
    fmt_ratio(ops, sizeof(ops), a->med[F_OPS], b->med[F_OPS]);
    fmt_ratio(p50, sizeof(p50), a->med[F_P50], b->med[F_P50]);
    fmt_ratio(p99, sizeof(p99), a->med[F_P99], b->med[F_P99]);
    fmt_ratio(p999, sizeof(p999), a->med[F_P999], b->med[F_P999]);
    fmt_ratio(cpu, sizeof(cpu), a->med[F_CPU], b->med[F_CPU]);
    fmt_ratio(rss, sizeof(rss), a->med[F_RSS], b->med[F_RSS]);
    fprintf(f, ROW_FMT, "", "", "", label, ops, p50, p99, p999, cpu, rss, "");
    if (row != NULL)
        json_object_set_new(row, json_name, ratio_json(a, b));
}

static json_t *group_json(const group *g)
{
    json_t *o = json_object();
    json_object_set_new(o, "runs", json_integer(g->runs));
    json_object_set_new(o, "errors", json_integer((json_int_t)g->errors));
    for (int f = 0; f < F__COUNT; f++)
        if (!isnan(g->med[f]))
            json_object_set_new(o, g_fields[f], json_real(g->med[f]));
    return o;
}

static const char *const g_systems[] = {"tikv-c", "client-go", "etcd"};

int tb_report(const char *const *paths, int n, uint64_t base_keys, FILE *f, const char *json_out)
{
    table t = {0};
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = load_file(&t, paths[i]);
    if (rc != 0) {
        tkv_free(t.g);
        return -1;
    }
    for (size_t i = 0; i < t.n; i++)
        for (int fl = 0; fl < F__COUNT; fl++)
            t.g[i].med[fl] = tb_median(t.g[i].v[fl], t.g[i].n[fl]);
    if (t.n > 1)
        qsort(t.g, t.n, sizeof(*t.g), group_order);

    json_t *rows = json_array();
    fprintf(f, ROW_FMT, "workload", "clients", "keys", "system", "ops/s", "p50 ms", "p99 ms",
            "p99.9 ms", "CPU s/1k", "RSS MiB", "runs");
    /* Each distinct (workload, clients, keys) is one row of the table. */
    for (size_t i = 0; i < t.n; i++) {
        const group *g = &t.g[i];
        bool first = true;
        for (size_t j = 0; j < i; j++)
            if (t.g[j].workload == g->workload && t.g[j].clients == g->clients &&
                t.g[j].keys == g->keys && strcmp(t.g[j].workload_name, g->workload_name) == 0)
                first = false;
        if (!first)
            continue;
        json_t *row = json_object();
        json_object_set_new(row, "workload", json_string(g->workload_name));
        json_object_set_new(row, "clients", json_integer(g->clients));
        json_object_set_new(row, "keys", json_integer((json_int_t)g->keys));
        const group *by[3] = {NULL, NULL, NULL};
        for (int s = 0; s < 3; s++) {
            by[s] = lookup(&t, g_systems[s], g->workload, g->clients, g->keys);
            if (by[s] != NULL && g->workload == TB_W__COUNT)
                by[s] = NULL;
        }
        if (g->workload == TB_W__COUNT)
            by[0] = g; /* unknown workload names are printed as they are */
        for (size_t j = 0; j < t.n; j++) {
            const group *o = &t.g[j];
            if (o->workload == g->workload && o->clients == g->clients && o->keys == g->keys &&
                strcmp(o->workload_name, g->workload_name) == 0) {
                print_group(f, o, o->system);
                json_object_set_new(row, o->system, group_json(o));
            }
        }
        const group *etcd = by[2];
        if (by[0] != NULL && etcd != NULL)
            print_ratio(f, by[0], etcd, "ratio tikv-c/etcd", row, "ratio_tikv_c_etcd");
        if (by[1] != NULL && etcd != NULL)
            print_ratio(f, by[1], etcd, "ratio client-go/etcd", row, "ratio_client_go_etcd");
        /* etcd's serializable get has no tikv-c twin (tikv-c reads are linearizable): set
         * it against tikv-c's get. */
        if (g->workload == TB_W_GET_SER && etcd != NULL) {
            const group *tg = lookup(&t, "tikv-c", TB_W_GET, g->clients, g->keys);
            if (tg != NULL)
                print_ratio(f, tg, etcd, "ratio tikv-c get/etcd", row, "ratio_tikv_c_get_etcd");
        }
        /* Scale rows: the same row at the base key count. */
        if (g->keys != base_keys && base_keys > 0) {
            for (int s = 0; s < 3; s++) {
                const group *big = lookup(&t, g_systems[s], g->workload, g->clients, g->keys);
                const group *base = lookup(&t, g_systems[s], g->workload, g->clients, base_keys);
                if (big == NULL || base == NULL)
                    continue;
                char label[64], bk[32];
                fmt_keys(bk, sizeof(bk), base_keys);
                snprintf(label, sizeof(label), "%s vs %s keys", g_systems[s], bk);
                char jn[48];
                snprintf(jn, sizeof(jn), "ratio_%s_vs_base", g_systems[s]);
                print_ratio(f, big, base, label, row, jn);
            }
        }
        json_array_append_new(rows, row);
    }
    fprintf(f, "Figures are medians over the runs; RSS is the servers' summed VmRSS at the end of "
               "the window; CPU is the servers' utime+stime per 1,000 operations; '!' marks "
               "rows with failed operations.\n");
    if (json_out != NULL) {
        json_t *root = json_object();
        json_object_set_new(root, "tool", json_string("tikv-bench report"));
        json_object_set_new(root, "base_keys", json_integer((json_int_t)base_keys));
        json_object_set_new(root, "rows", rows);
        if (json_dump_file(root, json_out, JSON_INDENT(1)) != 0) {
            fprintf(stderr, "tikv-bench report: cannot write %s\n", json_out);
            rc = -1;
        }
        json_decref(root);
    } else {
        json_decref(rows);
    }
    tkv_free(t.g);
    return rc;
}
