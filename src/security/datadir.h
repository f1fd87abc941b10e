/*
 * datadir.h: data directory hygiene for the servers.
 *
 *   - Private files: data directories are created 0700 and our files 0600; a process-wide
 *     umask of 077 makes RocksDB's own files private too. A data directory that group or
 *     others can read or enter is reported (the server warns and goes on).
 *   - storage.reserve-space (TiKV): a placeholder file filled to a size at start-up, that
 *     the operator (or the server, once writes are refused for lack of room) deletes to
 *     get room back for compaction and recovery.
 *   - Free-space check (statvfs) classified as TiKV's disk usage states, which the raftstore
 *     turns into the DiskFull region error for writes while reads go on.
 *   - The open-file limit at start (RLIMIT_NOFILE): raise the soft limit to the hard one and
 *     report when it stays below what the server needs.
 *
 * Owns: nothing (files and directories on disk). Threads: all functions are thread-safe
 * except sec_private_umask (process-wide; call it at start-up). Errors: -errno; messages go
 * to the log at WARN where the operator should act.
 * Dependencies: base (log).
 */
#ifndef TKV_SEC_DATADIR_H
#define TKV_SEC_DATADIR_H

#include "base/base.h"

/* Sets the process umask to 077 so every file and directory created afterwards (RocksDB's
 * included) is private to the server's user, and returns the previous mask. */
unsigned sec_private_umask(void);

/* Creates @path and any missing parents with mode 0700 (existing directories are left as they
 * are). Errors: -errno (-ENOTDIR when a component is a file). */
TKV_MUST_USE int sec_dir_create(const char *path);

/* Sets *@too_open to whether the directory @path can be read, written or entered by group or
 * others, and logs a WARN naming it when so. Errors: -errno from stat, -ENOTDIR. */
TKV_MUST_USE int sec_dir_check_private(const char *path, bool *too_open);

/* Opens @path for writing with mode 0600 (@flags adds to O_WRONLY | O_CREAT | O_CLOEXEC, e.g.
 * O_TRUNC or O_APPEND); an existing file is set to 0600 too. Returns the descriptor or
 * -errno. */
TKV_MUST_USE int sec_file_create_private(const char *path, int flags);

/* The placeholder's name inside the data directory (TiKV's). */
#define SEC_RESERVE_FILE "space_placeholder_file"

/* Makes <@dir>/space_placeholder_file occupy @bytes (allocated blocks, not a sparse file),
 * 0600, synced; 0 removes it. A placeholder of another size is resized. Errors: -errno
 * (-ENOSPC when the free space cannot hold it, checked before anything is allocated, so the
 * disk is never filled by the attempt). */
TKV_MUST_USE int sec_reserve_space(const char *dir, uint64_t bytes);

/* Deletes the placeholder to give its room back and returns how many bytes it held (0 when
 * there was none). Errors: -errno. */
TKV_MUST_USE int sec_reserve_release(const char *dir, uint64_t *freed);

/* TiKV's disk usage states (kvproto disk_usage: Normal, AlmostFull, AlreadyFull). */
typedef enum sec_disk_state {
    SEC_DISK_NORMAL = 0,
    SEC_DISK_ALMOST_FULL = 1, /* admin and deletes only (TiKV rejects ordinary writes) */
    SEC_DISK_FULL = 2,        /* writes refused with DiskFull; reads go on */
} sec_disk_state;

/* The space on the file system holding a path. Plain data. */
typedef struct sec_disk_usage {
    uint64_t capacity_bytes;
    uint64_t available_bytes; /* for unprivileged users (f_bavail) */
    sec_disk_state state;
} sec_disk_usage;

/* Returns the state for @available bytes: FULL below @full_below_bytes, ALMOST_FULL below
 * @almost_below_bytes, else NORMAL (pure; the thresholds are the server's policy, e.g. the
 * reserve-space size and twice it). */
sec_disk_state sec_disk_classify(uint64_t available, uint64_t full_below_bytes,
                                 uint64_t almost_below_bytes);

/* Fills @u for the file system holding @path (statvfs) with the state from
 * sec_disk_classify. Errors: -errno. */
TKV_MUST_USE int sec_disk_check(const char *path, uint64_t full_below_bytes,
                                uint64_t almost_below_bytes, sec_disk_usage *u);

/* Raises the soft RLIMIT_NOFILE to the hard limit, puts the resulting soft limit in *@limit
 * and sets *@enough to whether it is at least @min_fds; logs a WARN when it is not (TiKV
 * checks for 82920 descriptors). Errors: -errno from getrlimit/setrlimit. */
TKV_MUST_USE int sec_fd_limit_check(uint64_t min_fds, uint64_t *limit, bool *enough);

#endif /* TKV_SEC_DATADIR_H */
