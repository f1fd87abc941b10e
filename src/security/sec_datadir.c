/*
 * sec_datadir.c: private permissions, the reserve-space placeholder, free-space checks and the
 * open-file limit (contract in datadir.h).
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/log.h"
#include "security/datadir.h"
#include "security/sec_int.h"

unsigned sec_private_umask(void)
{
    return (unsigned)umask(077);
}

int sec_dir_create(const char *path)
{
    char buf[PATH_MAX];
    if (path == NULL || path[0] == '\0')
        return -EINVAL;
    if (strlen(path) >= sizeof(buf))
        return -ENAMETOOLONG;
    strcpy(buf, path);
    /* Each prefix ending before a '/', then the whole path. */
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0700) != 0) {
            int err = errno;
            struct stat st;
            if (err != EEXIST)
                return -err;
            if (stat(buf, &st) != 0)
                return -errno;
            if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    return 0;
}

int sec_dir_check_private(const char *path, bool *too_open)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    *too_open = (st.st_mode & 077) != 0;
    if (*too_open) {
        char mode[8];
        snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
        TKV_LOG_WARN("data directory is accessible by group or others; chmod 700 it",
                     TKV_LF_STR("path", path), TKV_LF_STR("mode", mode));
    }
    return 0;
}

int sec_file_create_private(const char *path, int flags)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);
    if (fd < 0)
        return -errno;
    if (fchmod(fd, 0600) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

static int reserve_path(const char *dir, char *out, size_t cap)
{
    if (snprintf(out, cap, "%s/%s", dir, SEC_RESERVE_FILE) >= (int)cap)
        return -ENAMETOOLONG;
    return 0;
}

int sec_reserve_space(const char *dir, uint64_t bytes)
{
    char path[PATH_MAX];
    int rc = reserve_path(dir, path, sizeof(path));
    if (rc != 0)
        return rc;
    if (bytes == 0) {
        uint64_t freed;
        return sec_reserve_release(dir, &freed);
    }
    struct stat st;
    if (stat(path, &st) == 0 && (uint64_t)st.st_size == bytes &&
        (uint64_t)st.st_blocks * 512 >= bytes)
        return 0;
    /* Never try what cannot fit: a failing fallocate may hold the blocks it got until the
     * file is removed, filling the disk for everyone in the meantime. */
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return -errno;
    uint64_t have = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (stat(path, &st) == 0)
        have += (uint64_t)st.st_blocks * 512;
    if (bytes > have)
        return -ENOSPC;
    int fd = sec_file_create_private(path, O_TRUNC);
    if (fd < 0)
        return fd;
    /* posix_fallocate returns the error instead of setting errno. */
    int err = posix_fallocate(fd, 0, (off_t)bytes);
    rc = -err;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0)
        rc = sec__fsync_parent(path);
    if (rc != 0) {
        unlink(path);
        TKV_LOG_WARN("could not reserve space", TKV_LF_STR("path", path),
                     TKV_LF_U64("bytes", bytes), TKV_LF_ERR("error", rc));
    }
    return rc;
}

int sec_reserve_release(const char *dir, uint64_t *freed)
{
    char path[PATH_MAX];
    *freed = 0;
    int rc = reserve_path(dir, path, sizeof(path));
    if (rc != 0)
        return rc;
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (unlink(path) != 0)
        return -errno;
    *freed = (uint64_t)st.st_size;
    TKV_LOG_WARN("reserved space released", TKV_LF_STR("path", path), TKV_LF_U64("bytes", *freed));
    return 0;
}

sec_disk_state sec_disk_classify(uint64_t available, uint64_t full_below_bytes,
                                 uint64_t almost_below_bytes)
{
    if (available < full_below_bytes)
        return SEC_DISK_FULL;
    if (available < almost_below_bytes)
        return SEC_DISK_ALMOST_FULL;
    return SEC_DISK_NORMAL;
}

int sec_disk_check(const char *path, uint64_t full_below_bytes, uint64_t almost_below_bytes,
                   sec_disk_usage *u)
{
    struct statvfs sv;
    if (statvfs(path, &sv) != 0)
        return -errno;
    u->capacity_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    u->available_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    u->state = sec_disk_classify(u->available_bytes, full_below_bytes, almost_below_bytes);
    return 0;
}

int sec_fd_limit_check(uint64_t min_fds, uint64_t *limit, bool *enough)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -errno;
        TKV_LOG_INFO("raised the open-file limit", TKV_LF_U64("from", old),
                     TKV_LF_U64("to", rl.rlim_cur));
    }
    *limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    *enough = *limit >= min_fds;
    if (!*enough)
        TKV_LOG_WARN("open-file limit is below what the server needs; raise ulimit -n",
                     TKV_LF_U64("limit", *limit), TKV_LF_U64("expected", min_fds));
    return 0;
}
