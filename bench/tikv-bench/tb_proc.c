/*
 * tb_proc.c: what the server processes spent, from /proc: CPU time (utime + stime of
 * /proc/PID/stat, in clock ticks) and resident memory (VmRSS and VmHWM of /proc/PID/status).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tb.h"

int tb_proc_parse_stat(const char *text, uint64_t *ticks)
{
    /* The command name (field 2) is in parentheses and may hold spaces or ')': fields are
     * counted from the last ')'. After it come field 3 (state) onwards; utime and stime are
     * fields 14 and 15. */
    const char *p = strrchr(text, ')');
    if (p == NULL)
        return -1;
    p++;
    int field = 2;
    uint64_t ut = 0, st = 0;
    while (*p != '\0' && field < 15) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        field++;
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (field == 14)
            ut = v;
        else if (field == 15)
            st = v;
        if (field >= 14 && end == p)
            return -1;
        p = end;
        while (*p != ' ' && *p != '\0')
            p++;
    }
    if (field < 15)
        return -1;
    *ticks = ut + st;
    return 0;
}

int tb_proc_parse_status(const char *text, const char *field, uint64_t *bytes)
{
    size_t fl = strlen(field);
    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            char *end;
            unsigned long long kb = strtoull(line + fl + 1, &end, 10);
            if (end == line + fl + 1)
                return -1;
            *bytes = (uint64_t)kb * 1024;
            return 0;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

static int read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return len > 0 ? 0 : -1;
}

void tb_proc_sample_pids(const pid_t *pids, int n, tb_proc_sample *out)
{
    memset(out, 0, sizeof(*out));
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    char path[64], buf[4096];
    for (int i = 0; i < n; i++) {
        uint64_t ticks, rss, hwm;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[i]);
        if (read_text(path, buf, sizeof(buf)) != 0 || tb_proc_parse_stat(buf, &ticks) != 0) {
            out->missing++;
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pids[i]);
        if (read_text(path, buf, sizeof(buf)) != 0 ||
            tb_proc_parse_status(buf, "VmRSS", &rss) != 0 ||
            tb_proc_parse_status(buf, "VmHWM", &hwm) != 0) {
            out->missing++;
            continue;
        }
        out->cpu_s += (double)ticks / (double)hz;
        out->rss_bytes += rss;
        out->hwm_bytes += hwm;
    }
}
