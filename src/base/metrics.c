/*
 * metrics.c: the Prometheus registry (see metrics.h).
 */
#include "base/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct tkv_series {
    struct tkv_series *next;
    const tkv_metric *family;
    char *values[TKV_METRIC_MAX_LABELS];
    _Atomic uint64_t value_bits; /* counter/gauge value, or histogram sum, as double bits */
    _Atomic uint64_t count;      /* histogram sample count */
    _Atomic uint64_t buckets[TKV_METRIC_MAX_BUCKETS + 1]; /* per-bucket (not cumulative) */
};

struct tkv_metric {
    struct tkv_metric *next;
    char *name;
    char *help;
    tkv_metric_type type;
    size_t nlabels;
    char *labels[TKV_METRIC_MAX_LABELS];
    size_t nbuckets;
    double bounds[TKV_METRIC_MAX_BUCKETS];
    tkv_series *series;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static tkv_metric *families;

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void atomic_add_double(_Atomic uint64_t *bits, double v)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, d2u(u2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

static bool valid_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static void family_free(tkv_metric *m)
{
    tkv_series *s = m->series;
    while (s) {
        tkv_series *next = s->next;
        for (size_t i = 0; i < m->nlabels; i++)
            tkv_free(s->values[i]);
        tkv_free(s);
        s = next;
    }
    for (size_t i = 0; i < m->nlabels; i++)
        tkv_free(m->labels[i]);
    tkv_free(m->name);
    tkv_free(m->help);
    tkv_free(m);
}

/* Splits "a,b" into m->labels. Returns 0 or -EINVAL/-ENOMEM. */
static int parse_labels(tkv_metric *m, const char *labels)
{
    if (labels == NULL || *labels == '\0')
        return 0;
    const char *p = labels;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (m->nlabels == TKV_METRIC_MAX_LABELS || len == 0)
            return -EINVAL;
        char *name = tkv_malloc(len + 1);
        if (name == NULL)
            return -ENOMEM;
        memcpy(name, p, len);
        name[len] = '\0';
        m->labels[m->nlabels++] = name;
        if (!valid_name(name))
            return -EINVAL;
        p = comma ? comma + 1 : p + len;
    }
    return 0;
}

static bool same_shape(const tkv_metric *a, const tkv_metric *b)
{
    if (a->type != b->type || a->nlabels != b->nlabels || a->nbuckets != b->nbuckets)
        return false;
    for (size_t i = 0; i < a->nlabels; i++) {
        if (strcmp(a->labels[i], b->labels[i]) != 0)
            return false;
    }
    for (size_t i = 0; i < a->nbuckets; i++) {
        if (a->bounds[i] != b->bounds[i])
            return false;
    }
    return true;
}

static tkv_metric *register_family(const char *name, const char *help, tkv_metric_type type,
                                   const char *labels, const double *buckets, size_t nbuckets)
{
    if (!valid_name(name) || nbuckets > TKV_METRIC_MAX_BUCKETS)
        return NULL;
    tkv_metric *m = tkv_calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->type = type;
    m->name = tkv_strdup(name);
    m->help = tkv_strdup(help ? help : "");
    if (m->name == NULL || m->help == NULL || parse_labels(m, labels) != 0) {
        family_free(m);
        return NULL;
    }
    if (type == TKV_METRIC_HISTOGRAM) {
        if (buckets == NULL || nbuckets == 0) {
            /* 50 us doubling up to ~26 s: covers fsync, RPC and raft latencies. */
            nbuckets = 20;
            double b = 0.00005;
            for (size_t i = 0; i < nbuckets; i++) {
                m->bounds[i] = b;
                b *= 2;
            }
        } else {
            for (size_t i = 0; i < nbuckets; i++) {
                if (i > 0 && !(buckets[i] > buckets[i - 1])) {
                    family_free(m);
                    return NULL;
                }
                m->bounds[i] = buckets[i];
            }
        }
        m->nbuckets = nbuckets;
    }
    pthread_mutex_lock(&reg_mu);
    for (tkv_metric *f = families; f; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            tkv_metric *found = same_shape(f, m) ? f : NULL;
            pthread_mutex_unlock(&reg_mu);
            family_free(m);
            return found;
        }
    }
    m->next = families;
    families = m;
    pthread_mutex_unlock(&reg_mu);
    return m;
}

tkv_metric *tkv_metric_counter(const char *name, const char *help, const char *labels)
{
    return register_family(name, help, TKV_METRIC_COUNTER, labels, NULL, 0);
}

tkv_metric *tkv_metric_gauge(const char *name, const char *help, const char *labels)
{
    return register_family(name, help, TKV_METRIC_GAUGE, labels, NULL, 0);
}

tkv_metric *tkv_metric_histogram(const char *name, const char *help, const char *labels,
                                 const double *buckets, size_t n)
{
    return register_family(name, help, TKV_METRIC_HISTOGRAM, labels, buckets, n);
}

tkv_series *tkv_metric_with(tkv_metric *m, ...)
{
    if (m == NULL)
        return NULL;
    const char *vals[TKV_METRIC_MAX_LABELS];
    va_list ap;
    va_start(ap, m);
    for (size_t i = 0; i < m->nlabels; i++) {
        vals[i] = va_arg(ap, const char *);
        if (vals[i] == NULL)
            vals[i] = "";
    }
    va_end(ap);
    pthread_mutex_lock(&reg_mu);
    for (tkv_series *s = m->series; s; s = s->next) {
        size_t i = 0;
        while (i < m->nlabels && strcmp(s->values[i], vals[i]) == 0)
            i++;
        if (i == m->nlabels) {
            pthread_mutex_unlock(&reg_mu);
            return s;
        }
    }
    tkv_series *s = tkv_calloc(1, sizeof(*s));
    if (s != NULL) {
        s->family = m;
        for (size_t i = 0; i < m->nlabels; i++) {
            s->values[i] = tkv_strdup(vals[i]);
            if (s->values[i] == NULL) {
                for (size_t j = 0; j < i; j++)
                    tkv_free(s->values[j]);
                tkv_free(s);
                s = NULL;
                break;
            }
        }
    }
    if (s != NULL) {
        s->next = m->series;
        m->series = s;
    }
    pthread_mutex_unlock(&reg_mu);
    return s;
}

void tkv_series_add(tkv_series *s, double v)
{
    if (s == NULL)
        return;
    if (s->family->type == TKV_METRIC_COUNTER && !(v >= 0))
        return; /* counters never go down */
    atomic_add_double(&s->value_bits, v);
}

void tkv_series_inc(tkv_series *s)
{
    tkv_series_add(s, 1.0);
}

void tkv_series_set(tkv_series *s, double v)
{
    if (s == NULL || s->family->type != TKV_METRIC_GAUGE)
        return;
    atomic_store_explicit(&s->value_bits, d2u(v), memory_order_relaxed);
}

void tkv_series_observe(tkv_series *s, double v)
{
    if (s == NULL || s->family->type != TKV_METRIC_HISTOGRAM)
        return;
    const tkv_metric *m = s->family;
    size_t i = 0;
    while (i < m->nbuckets && v > m->bounds[i])
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    atomic_add_double(&s->value_bits, v);
}

double tkv_series_value(const tkv_series *s)
{
    if (s == NULL)
        return 0;
    if (s->family->type == TKV_METRIC_HISTOGRAM)
        return (double)atomic_load(&((tkv_series *)s)->count);
    return u2d(atomic_load(&((tkv_series *)s)->value_bits));
}

/* ---- rendering ------------------------------------------------------------------------- */

typedef struct out {
    tkv_buf *b;
    int rc;
} out;

TKV_PRINTF(2, 3) static void outf(out *o, const char *fmt, ...)
{
    if (o->rc != 0)
        return;
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->rc = -EINVAL;
        return;
    }
    if ((size_t)n < sizeof(tmp)) {
        o->rc = tkv_buf_append(o->b, tmp, (size_t)n);
        return;
    }
    o->rc = tkv_buf_reserve(o->b, (size_t)n + 1);
    if (o->rc != 0)
        return;
    va_start(ap, fmt);
    vsnprintf((char *)o->b->data + o->b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o->b->len += (size_t)n;
}

static void out_escaped(out *o, const char *s, bool quote)
{
    for (; *s && o->rc == 0; s++) {
        if (*s == '\\')
            outf(o, "\\\\");
        else if (*s == '\n')
            outf(o, "\\n");
        else if (quote && *s == '"')
            outf(o, "\\\"");
        else
            outf(o, "%c", *s);
    }
}

static void out_number(out *o, double v)
{
    if (isnan(v))
        outf(o, "NaN");
    else if (isinf(v))
        outf(o, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(int64_t)v && fabs(v) < 1e15)
        outf(o, "%lld", (long long)v);
    else
        outf(o, "%.17g", v);
}

/* Writes {a="x",b="y"[,le="..."]} (nothing when there are no labels and no le). */
static void out_labels(out *o, const tkv_metric *m, const tkv_series *s, const char *le)
{
    if (m->nlabels == 0 && le == NULL)
        return;
    outf(o, "{");
    for (size_t i = 0; i < m->nlabels; i++) {
        outf(o, "%s%s=\"", i ? "," : "", m->labels[i]);
        out_escaped(o, s->values[i], true);
        outf(o, "\"");
    }
    if (le != NULL)
        outf(o, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    outf(o, "}");
}

static int cmp_family(const void *a, const void *b)
{
    const tkv_metric *x = *(const tkv_metric *const *)a, *y = *(const tkv_metric *const *)b;
    return strcmp(x->name, y->name);
}

static void render_family(out *o, tkv_metric *m)
{
    static const char *type_names[] = {"counter", "gauge", "histogram"};
    outf(o, "# HELP %s ", m->name);
    out_escaped(o, m->help, false);
    outf(o, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
    for (tkv_series *s = m->series; s; s = s->next) {
        if (m->type != TKV_METRIC_HISTOGRAM) {
            outf(o, "%s", m->name);
            out_labels(o, m, s, NULL);
            outf(o, " ");
            out_number(o, u2d(atomic_load(&s->value_bits)));
            outf(o, "\n");
            continue;
        }
        uint64_t cum = 0;
        for (size_t i = 0; i <= m->nbuckets; i++) {
            cum += atomic_load(&s->buckets[i]);
            char le[48];
            if (i == m->nbuckets)
                snprintf(le, sizeof(le), "+Inf");
            else
                snprintf(le, sizeof(le), "%g", m->bounds[i]);
            outf(o, "%s_bucket", m->name);
            out_labels(o, m, s, le);
            outf(o, " %llu\n", (unsigned long long)cum);
        }
        outf(o, "%s_sum", m->name);
        out_labels(o, m, s, NULL);
        outf(o, " ");
        out_number(o, u2d(atomic_load(&s->value_bits)));
        outf(o, "\n%s_count", m->name);
        out_labels(o, m, s, NULL);
        /* The count line uses the bucket total so the exposition is self-consistent even
         * while observations race with rendering. */
        outf(o, " %llu\n", (unsigned long long)cum);
    }
}

int tkv_metrics_render(tkv_buf *b)
{
    out o = {b, 0};
    pthread_mutex_lock(&reg_mu);
    size_t n = 0;
    for (tkv_metric *m = families; m; m = m->next)
        n++;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    tkv_metric **sorted = tkv_calloc(n ? n : 1, sizeof(*sorted));
    if (sorted == NULL) {
        pthread_mutex_unlock(&reg_mu);
        return -ENOMEM;
    }
    size_t i = 0;
    for (tkv_metric *m = families; m; m = m->next)
        sorted[i++] = m;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    qsort(sorted, n, sizeof(*sorted), cmp_family);
    for (i = 0; i < n && o.rc == 0; i++)
        render_family(&o, sorted[i]);
    pthread_mutex_unlock(&reg_mu);
    tkv_free(sorted);
    return o.rc;
}

void tkv_metrics_reset(void)
{
    pthread_mutex_lock(&reg_mu);
    tkv_metric *m = families;
    families = NULL;
    pthread_mutex_unlock(&reg_mu);
    while (m) {
        tkv_metric *next = m->next;
        family_free(m);
        m = next;
    }
}
