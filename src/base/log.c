/*
 * log.c: TiKV-format log lines (see log.h).
 */
#include "base/log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = TKV_LOG_INFO;
static atomic_int log_redact = TKV_REDACT_OFF;
static atomic_int log_fd = STDERR_FILENO;
static int log_owned_fd = -1;

bool tkv_log_enabled(tkv_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void tkv_log_set_level(tkv_log_level level)
{
    atomic_store(&log_level, (int)level);
}

int tkv_log_parse_level(const char *name, tkv_log_level *level)
{
    static const struct {
        const char *name;
        tkv_log_level level;
    } names[] = {
        {"trace", TKV_LOG_TRACE}, {"debug", TKV_LOG_DEBUG},    {"info", TKV_LOG_INFO},
        {"warn", TKV_LOG_WARN},   {"warning", TKV_LOG_WARN},   {"error", TKV_LOG_ERROR},
        {"fatal", TKV_LOG_FATAL}, {"critical", TKV_LOG_FATAL}, {"off", TKV_LOG_OFF},
    };
    for (size_t i = 0; i < TKV_ARRAY_LEN(names); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *level = names[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

void tkv_log_set_redact(tkv_log_redact mode)
{
    atomic_store(&log_redact, (int)mode);
}

int tkv_log_parse_redact(const char *value, tkv_log_redact *mode)
{
    if (strcmp(value, "false") == 0 || strcmp(value, "off") == 0)
        *mode = TKV_REDACT_OFF;
    else if (strcmp(value, "true") == 0 || strcmp(value, "on") == 0)
        *mode = TKV_REDACT_ON;
    else if (strcmp(value, "marker") == 0)
        *mode = TKV_REDACT_MARKER;
    else
        return -EINVAL;
    return 0;
}

int tkv_log_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int old = log_owned_fd;
    log_owned_fd = fd;
    atomic_store(&log_fd, fd);
    if (old >= 0)
        close(old);
    return 0;
}

void tkv_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

void tkv_log_close(void)
{
    atomic_store(&log_fd, STDERR_FILENO);
    if (log_owned_fd >= 0) {
        close(log_owned_fd);
        log_owned_fd = -1;
    }
}

/* A bounded line writer: output past the capacity is dropped, never overflows. */
typedef struct line {
    char *p;
    size_t len;
    size_t cap;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (l->len >= l->cap)
        return;
    size_t room = l->cap - l->len;
    if (n > room)
        n = room;
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void putc_(line *l, char c)
{
    put(l, &c, 1);
}

TKV_PRINTF(2, 3) static void putf(line *l, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* True when a string can be written bare in a field (TiKV quotes anything else). */
static bool bare_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7F || c == '"' || c == '=' || c == '[' || c == ']' || c == '\\')
            return false;
    }
    return true;
}

/* Writes @s JSON-quoted. */
static void put_quoted(line *l, const char *s, size_t n)
{
    putc_(l, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            puts_(l, "\\\"");
            break;
        case '\\':
            puts_(l, "\\\\");
            break;
        case '\n':
            puts_(l, "\\n");
            break;
        case '\r':
            puts_(l, "\\r");
            break;
        case '\t':
            puts_(l, "\\t");
            break;
        default:
            if (c < 0x20 || c == 0x7F)
                putf(l, "\\u%04x", c);
            else
                putc_(l, (char)c);
        }
    }
    putc_(l, '"');
}

static void put_str_value(line *l, const char *s, size_t n)
{
    if (bare_ok(s, n))
        put(l, s, n);
    else
        put_quoted(l, s, n);
}

/* User bytes: printable ASCII as a string, anything else as upper-case hex (TiKV logs keys
 * with hex_encode_upper). */
static void put_user(line *l, const void *p, size_t n, tkv_log_redact mode)
{
    if (mode == TKV_REDACT_ON) {
        putc_(l, '?');
        return;
    }
    const unsigned char *b = p;
    bool printable = true;
    for (size_t i = 0; i < n; i++) {
        if (b[i] < 0x20 || b[i] >= 0x7F) {
            printable = false;
            break;
        }
    }
    if (mode == TKV_REDACT_MARKER)
        puts_(l, "\xE2\x80\xB9"); /* ‹ */
    if (printable) {
        put_str_value(l, (const char *)b, n);
    } else {
        static const char hex[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n; i++) {
            putc_(l, hex[b[i] >> 4]);
            putc_(l, hex[b[i] & 15]);
        }
    }
    if (mode == TKV_REDACT_MARKER)
        puts_(l, "\xE2\x80\xBA"); /* › */
}

static const char *level_name(tkv_log_level level)
{
    switch (level) {
    case TKV_LOG_TRACE:
        return "TRACE";
    case TKV_LOG_DEBUG:
        return "DEBUG";
    case TKV_LOG_INFO:
        return "INFO";
    case TKV_LOG_WARN:
        return "WARN";
    case TKV_LOG_ERROR:
        return "ERROR";
    case TKV_LOG_FATAL:
        return "FATAL";
    default:
        return "OFF";
    }
}

size_t tkv_log_format(char *out, size_t cap, tkv_log_level level, const char *file, int lineno,
                      const char *msg, const tkv_log_field *fields, size_t nfields)
{
    line l = {out, 0, cap > 0 ? cap - 1 : 0}; /* keep room for the newline */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    putf(&l, "[%04d/%02d/%02d %02d:%02d:%02d.%03ld %c%02ld:%02ld] ", tm.tm_year + 1900,
         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000),
         sign, off / 3600, (off % 3600) / 60);
    putc_(&l, '[');
    puts_(&l, level_name(level));
    puts_(&l, "] [");
    const char *base = strrchr(file, '/');
    puts_(&l, base ? base + 1 : file);
    putf(&l, ":%d] [", lineno);
    put_quoted(&l, msg, strlen(msg));
    putc_(&l, ']');
    tkv_log_redact mode = (tkv_log_redact)atomic_load_explicit(&log_redact, memory_order_relaxed);
    for (size_t i = 0; i < nfields; i++) {
        const tkv_log_field *f = &fields[i];
        puts_(&l, " [");
        puts_(&l, f->key);
        putc_(&l, '=');
        switch (f->type) {
        case TKV_LF_T_U64:
            putf(&l, "%llu", (unsigned long long)f->v.u);
            break;
        case TKV_LF_T_I64:
            putf(&l, "%lld", (long long)f->v.i);
            break;
        case TKV_LF_T_F64:
            putf(&l, "%g", f->v.f);
            break;
        case TKV_LF_T_BOOL:
            puts_(&l, f->v.u ? "true" : "false");
            break;
        case TKV_LF_T_STR: {
            const char *s = f->v.s ? f->v.s : "";
            put_str_value(&l, s, strlen(s));
            break;
        }
        case TKV_LF_T_ERR: {
            const char *name = tkv_strerror((int)f->v.i);
            put_str_value(&l, name, strlen(name));
            break;
        }
        case TKV_LF_T_USER:
            put_user(&l, f->v.b.p, f->v.b.n, mode);
            break;
        }
        putc_(&l, ']');
    }
    if (cap > 0)
        out[l.len++] = '\n';
    return l.len;
}

void tkv__log_write(tkv_log_level level, const char *file, int lineno, const char *msg,
                    const tkv_log_field *fields, size_t nfields)
{
    char buf[4096];
    size_t n = tkv_log_format(buf, sizeof(buf), level, file, lineno, msg, fields, nfields);
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    ssize_t w = write(fd, buf, n);
    (void)w;
}
