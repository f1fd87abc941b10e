/*
 * log.h: logging in TiKV's line format.
 *
 *   [2026/11/27 03:39:47.123 +00:00] [INFO] [peer.c:120] ["became leader"] [region_id=2] [term=7]
 *
 * Owns: the process-wide logger (level, target file descriptor, redaction mode). Configure it
 * once at start-up, before threads start; logging itself is thread-safe (each line is built in
 * a local buffer and written with one write(2)).
 * Messages are constant and greppable; variable parts go into typed key=value fields built
 * with the TKV_LF_* macros. User keys and values go only through TKV_LF_KEY / TKV_LF_VALUE,
 * which honour the redaction mode (TiKV's `security.redact-info-log`: off prints the bytes,
 * on prints "?", marker prints them between ‹ and ›).
 * Errors: tkv_log_open_file returns -errno; logging never fails visibly (a failed write is
 * dropped).
 * Dependencies: base.h.
 *
 * Usage:
 *     TKV_LOG_INFO("became leader", TKV_LF_U64("region_id", id), TKV_LF_U64("term", term));
 *     TKV_LOG_WARN("write rejected", TKV_LF_KEY("key", key.data, key.len));
 */
#ifndef TKV_LOG_H
#define TKV_LOG_H

#include "base/base.h"

typedef enum tkv_log_level {
    TKV_LOG_TRACE = 0,
    TKV_LOG_DEBUG = 1,
    TKV_LOG_INFO = 2,
    TKV_LOG_WARN = 3,
    TKV_LOG_ERROR = 4,
    TKV_LOG_FATAL = 5,
    TKV_LOG_OFF = 6,
} tkv_log_level;

typedef enum tkv_log_redact {
    TKV_REDACT_OFF = 0,    /* print user data */
    TKV_REDACT_ON = 1,     /* replace user data with "?" */
    TKV_REDACT_MARKER = 2, /* wrap user data in ‹ › so a later tool can strip it */
} tkv_log_redact;

typedef enum tkv_log_field_type {
    TKV_LF_T_U64,
    TKV_LF_T_I64,
    TKV_LF_T_STR,
    TKV_LF_T_BOOL,
    TKV_LF_T_F64,
    TKV_LF_T_USER, /* user data: redacted per the mode, hex when not printable */
    TKV_LF_T_ERR,  /* a TKV_E* / -errno code, printed by name */
} tkv_log_field_type;

/* One key=value field. Plain data; borrowed pointers must live until the macro returns. */
typedef struct tkv_log_field {
    const char *key;
    tkv_log_field_type type;
    union {
        uint64_t u;
        int64_t i;
        double f;
        const char *s;
        struct {
            const void *p;
            size_t n;
        } b;
    } v;
} tkv_log_field;

#define TKV_LF_U64(k, x)  ((tkv_log_field){.key = (k), .type = TKV_LF_T_U64, .v.u = (uint64_t)(x)})
#define TKV_LF_I64(k, x)  ((tkv_log_field){.key = (k), .type = TKV_LF_T_I64, .v.i = (int64_t)(x)})
#define TKV_LF_STR(k, x)  ((tkv_log_field){.key = (k), .type = TKV_LF_T_STR, .v.s = (x)})
#define TKV_LF_BOOL(k, x) ((tkv_log_field){.key = (k), .type = TKV_LF_T_BOOL, .v.u = (x) ? 1 : 0})
#define TKV_LF_F64(k, x)  ((tkv_log_field){.key = (k), .type = TKV_LF_T_F64, .v.f = (double)(x)})
#define TKV_LF_ERR(k, x)  ((tkv_log_field){.key = (k), .type = TKV_LF_T_ERR, .v.i = (int64_t)(x)})
/* User keys and values: always through these, so redaction applies. */
#define TKV_LF_KEY(k, p, n)   ((tkv_log_field){.key = (k), .type = TKV_LF_T_USER, .v.b = {(p), (n)}})
#define TKV_LF_VALUE(k, p, n) TKV_LF_KEY(k, p, n)

/* Returns true when lines at @level are written (cheap; check before costly field setup). */
bool tkv_log_enabled(tkv_log_level level);
/* Sets the minimum level written. */
void tkv_log_set_level(tkv_log_level level);
/* Parses "trace", "debug", "info", "warn"/"warning", "error", "fatal", "off".
 * Errors: -EINVAL. */
TKV_MUST_USE int tkv_log_parse_level(const char *name, tkv_log_level *level);
/* Sets the redaction mode for user data. */
void tkv_log_set_redact(tkv_log_redact mode);
/* Parses TiKV's redact-info-log values "false", "true", "marker". Errors: -EINVAL. */
TKV_MUST_USE int tkv_log_parse_redact(const char *value, tkv_log_redact *mode);
/* Sends log lines to the file at @path (appending, created 0600), replacing the current
 * target. Errors: -errno from open(2); the previous target stays. */
TKV_MUST_USE int tkv_log_open_file(const char *path);
/* Sends log lines to the file descriptor @fd (not owned; stderr by default). */
void tkv_log_set_fd(int fd);
/* Closes a file opened by tkv_log_open_file and returns to stderr. */
void tkv_log_close(void);

/* Formats one line into @out (no trailing NUL guarantee beyond @cap) and returns its length;
 * exposed for tests. */
size_t tkv_log_format(char *out, size_t cap, tkv_log_level level, const char *file, int line,
                      const char *msg, const tkv_log_field *fields, size_t nfields);

void tkv__log_write(tkv_log_level level, const char *file, int line, const char *msg,
                    const tkv_log_field *fields, size_t nfields);

#define TKV_LOG(level, msg, ...)                                                                   \
    do {                                                                                           \
        if (tkv_log_enabled(level)) {                                                              \
            const tkv_log_field tkv__lf[] = {{.key = NULL}, ##__VA_ARGS__};                        \
            tkv__log_write(level, __FILE__, __LINE__, msg, tkv__lf + 1,                            \
                           TKV_ARRAY_LEN(tkv__lf) - 1);                                            \
        }                                                                                          \
    } while (0)

#define TKV_LOG_TRACE(msg, ...) TKV_LOG(TKV_LOG_TRACE, msg, ##__VA_ARGS__)
#define TKV_LOG_DEBUG(msg, ...) TKV_LOG(TKV_LOG_DEBUG, msg, ##__VA_ARGS__)
#define TKV_LOG_INFO(msg, ...)  TKV_LOG(TKV_LOG_INFO, msg, ##__VA_ARGS__)
#define TKV_LOG_WARN(msg, ...)  TKV_LOG(TKV_LOG_WARN, msg, ##__VA_ARGS__)
#define TKV_LOG_ERROR(msg, ...) TKV_LOG(TKV_LOG_ERROR, msg, ##__VA_ARGS__)
#define TKV_LOG_FATAL(msg, ...) TKV_LOG(TKV_LOG_FATAL, msg, ##__VA_ARGS__)

#endif /* TKV_LOG_H */
