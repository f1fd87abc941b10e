/*
 * metrics.h: a Prometheus metrics registry (counters, gauges, histograms with labels).
 *
 * Owns: the process-wide registry of metric families and their series. Families are
 * registered once (usually at start-up) and live until tkv_metrics_reset(); series (one per
 * combination of label values) are created on first use and live as long as their family.
 * Threads: registering and looking up series takes a mutex; updating a series (add, set,
 * observe) is lock-free (C11 atomics), so hot paths look a series up once and keep the
 * pointer. Rendering takes the mutex and reads values atomically.
 * Errors: -ENOMEM, -EINVAL (bad name, wrong label count, type mismatch on re-registration).
 * Names follow TiKV's where TiKV has the metric (tikv_grpc_msg_duration_seconds, ...).
 * Dependencies: base.h.
 *
 * Usage:
 *     static tkv_metric *grpc_dur;
 *     grpc_dur = tkv_metric_histogram("tikv_grpc_msg_duration_seconds",
 *                                     "Bucketed histogram of grpc server messages", "type",
 *                                     NULL, 0);                // default latency buckets
 *     tkv_series *s = tkv_metric_with(grpc_dur, "raw_get");   // once, then cache it
 *     tkv_series_observe(s, seconds);
 *     tkv_buf out; tkv_buf_init(&out); tkv_metrics_render(&out);   // text format 0.0.4
 */
#ifndef TKV_METRICS_H
#define TKV_METRICS_H

#include "base/base.h"

typedef enum tkv_metric_type {
    TKV_METRIC_COUNTER,
    TKV_METRIC_GAUGE,
    TKV_METRIC_HISTOGRAM,
} tkv_metric_type;

/* A metric family: name, help, type, label names. */
typedef struct tkv_metric tkv_metric;
/* One series of a family: fixed label values and the value(s). */
typedef struct tkv_series tkv_series;

/* Most labels a family may have. */
#define TKV_METRIC_MAX_LABELS 4
/* Most buckets a histogram may have (plus the implicit +Inf). */
#define TKV_METRIC_MAX_BUCKETS 32

/* Returns the counter family @name, registering it on first call. @labels is a
 * comma-separated list of label names ("type,cf") or NULL. Registering the same name again
 * returns the same family if the type and labels match, else NULL. Returns NULL on -ENOMEM or
 * a bad name. */
tkv_metric *tkv_metric_counter(const char *name, const char *help, const char *labels);
/* Like tkv_metric_counter for a gauge. */
tkv_metric *tkv_metric_gauge(const char *name, const char *help, const char *labels);
/* Like tkv_metric_counter for a histogram with the ascending upper bounds @buckets[0..n); NULL
 * and 0 select exponential latency buckets from 50 us to about 26 s. */
tkv_metric *tkv_metric_histogram(const char *name, const char *help, const char *labels,
                                 const double *buckets, size_t n);

/* Returns the series of @m with the given label values (exactly as many as the family has
 * labels, as const char * arguments), creating it on first use. Returns NULL on -ENOMEM or a
 * NULL family. Lifetime: the series lives as long as its family. */
tkv_series *tkv_metric_with(tkv_metric *m, ...);

/* Adds @v (>= 0) to a counter, or @v (any sign) to a gauge. */
void tkv_series_add(tkv_series *s, double v);
/* Increments a counter or gauge by one. */
void tkv_series_inc(tkv_series *s);
/* Sets a gauge to @v. */
void tkv_series_set(tkv_series *s, double v);
/* Records @v in a histogram. */
void tkv_series_observe(tkv_series *s, double v);
/* Returns the current value of a counter or gauge, or the sample count of a histogram. */
double tkv_series_value(const tkv_series *s);

/* Appends every family in Prometheus text exposition format 0.0.4, sorted by name.
 * Errors: -ENOMEM (the buffer may hold a partial rendering). */
TKV_MUST_USE int tkv_metrics_render(tkv_buf *out);

/* Drops every family and series (tests, and process exit for a clean leak check). Any cached
 * tkv_metric or tkv_series pointer becomes invalid. Thread: no other thread may use metrics. */
void tkv_metrics_reset(void);

#endif /* TKV_METRICS_H */
