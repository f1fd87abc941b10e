/*
 * runtime.h: the storage-side security controls a server switches on at start-up and keeps
 * running, in one object each server holds (tikv-server and pd-server):
 *
 *   - its data directory, created 0700 (with missing parents), with a WARN when group or
 *     others may read or enter it;
 *   - encryption at rest from [security.encryption]: the key dictionary in the data
 *     directory, the encrypting RocksDB environment for every engine the server opens, and
 *     data-key rotation on a timer (sec_keys_rotate_if_due once a second);
 *   - TiKV's storage.reserve-space: the reserved amount is max(reserve-space, 5% of the
 *     capacity, twice the engines' headroom) (0 switches it off; the headroom term is ours:
 *     writes stop at half the reserve, and what is left must hold the memtable flushes and
 *     compaction outputs the engines may still allocate at once, see eng_headroom_bytes), a
 * placeholder file of a fifth of it (space_placeholder_file) is allocated at start when the disk
 * has room, and a watcher classifies the free space once a second as TiKV does: AlmostFull below
 * the reserved amount, AlreadyFull below half of it. On AlreadyFull the placeholder is deleted to
 * give compaction and recovery room; back to Normal with room to spare, it is allocated again. The
 * capacity is the file system's size, or raftstore.capacity when that is smaller (the used space is
 * then the data directory's size, as TiKV counts it);
 *   - the open-file limit, raised to the hard limit and checked against what the server
 *     needs (a WARN when it stays below).
 *
 * The process umask is not touched here: call sec_private_umask() first thing in main.
 *
 * Owns: the key dictionary, the RocksDB environment, the watcher thread. Every engine opened
 * with sec_runtime_rocksdb_env must be closed before sec_runtime_close.
 * Threads: one background thread ("sec-runtime") after sec_runtime_start. The getters are
 * thread-safe (sec_runtime_disk_state is one atomic load, cheap enough for every write).
 * Errors: 0 or negative: TKV_ECONFIG (bad [security.encryption] settings, wrong master key,
 * a data directory holding encrypted files while no master key is configured), -errno (the
 * data directory cannot be created or examined), the errors of sec_keys_open, -ENOMEM. The
 * cause goes to the caller's @err buffer; key material never appears in it.
 * Dependencies: base (log, clock), encryption.h, datadir.h, config.h.
 *
 * Usage (tikv-server's start-up):
 *     sec_private_umask();
 *     sec_runtime_opts o;
 *     sec_runtime_opts_init(&o);
 *     o.name = "tikv"; o.data_dir = dir; o.config = &cfg.sec;
 *     o.reserve_space_bytes = cfg.storage.reserve_space_bytes;
 *     sec_runtime *sr;
 *     if (sec_runtime_open(&o, &sr, err) != 0) die(err);
 *     eng_opts.rocksdb_env = sec_runtime_rocksdb_env(sr);      // NULL when encryption is off
 *     ... open engines; raftstore writes its snapshot files with sec_runtime_keys(sr) ...
 *     sec_runtime_start(sr);
 *     ... writes check sec_runtime_disk_state(sr) ...
 *     ... close engines ...
 *     sec_runtime_close(sr);
 */
#ifndef TKV_SEC_RUNTIME_H
#define TKV_SEC_RUNTIME_H

#include "security/config.h"
#include "security/datadir.h"
#include "security/encryption.h"

/* How the watcher measures a file system (tests inject their own). Fills the total size and
 * the bytes available to unprivileged users of the file system holding @dir. Errors: -errno. */
typedef int (*sec_space_fn)(void *ud, const char *dir, uint64_t *capacity, uint64_t *available);

/* Settings of a runtime. Plain data; strings are borrowed for the sec_runtime_open call. */
typedef struct sec_runtime_opts {
    const char *name;     /* "tikv", "pd": in log lines */
    const char *data_dir; /* required */
    /* The [security] section; NULL, or encryption not configured: no key dictionary (a data
     * directory holding one is then refused). Borrowed for the open call. */
    const sec_config *config;
    uint64_t reserve_space_bytes; /* storage.reserve-space; 0: no placeholder, no watcher */
    uint64_t capacity_bytes;      /* raftstore.capacity; 0: the file system's size */
    /* What the engines may allocate at once when writes have stopped (the sum of
     * eng_headroom_bytes over the engines on this disk); the reserve is raised to twice it,
     * so AlreadyFull (half the reserve) still leaves that much free. 0: not considered. */
    uint64_t engine_headroom_bytes;
    uint64_t check_interval_ms; /* watcher period, default 1000 (TiKV's) */
    sec_space_fn space;         /* NULL: statvfs */
    void *space_ud;             /* for @space */
    /* The open-file limit the server needs (TiKV checks for 82920); 0: not checked. The soft
     * limit is raised to the hard one and a WARN names a limit still below this. */
    uint64_t min_open_files;
    uint64_t (*now_s)(void *ud); /* key clock (see sec_enc_opts); NULL: real time */
    void *clock_ud;              /* for @now_s */
} sec_runtime_opts;

/* Fills @o with defaults: 1 s checks, no reserve, real space and clock, the rest NULL/0. */
void sec_runtime_opts_init(sec_runtime_opts *o);

typedef struct sec_runtime sec_runtime;

/* Creates the data directory (0700) and checks its permissions, opens the key dictionary and
 * the encrypting environment when encryption is configured, removes a placeholder left from
 * the last run and allocates it again when the disk has room (a WARN otherwise), measures
 * the disk once, and stores the runtime in *@out. No thread runs yet.
 * Errors: see the header; @err (may be NULL) receives the cause. */
TKV_MUST_USE int sec_runtime_open(const sec_runtime_opts *o, sec_runtime **out,
                                  char err[TKV_ERRMSG_LEN]);

/* Starts the background thread: the disk watcher (when a reserve is set) and data-key
 * rotation (when encryption is on), every check interval. Errors: -errno (thread). */
TKV_MUST_USE int sec_runtime_start(sec_runtime *r);

/* Runs one round of the background work on the calling thread: measures the disk (and acts
 * on the placeholder) and rotates the data key when it is due. The thread calls this; tests
 * call it directly. Thread: not concurrently with itself (the thread must not be running). */
void sec_runtime_tick(sec_runtime *r);

/* Stops the thread, frees the environment and closes the dictionary. Every engine opened
 * with the environment must be closed. NULL is a no-op. */
void sec_runtime_close(sec_runtime *r);

/* Returns the key dictionary, or NULL when encryption is off. Lifetime: until close. */
sec_keys *sec_runtime_keys(sec_runtime *r);

/* Returns the opaque rocksdb_env_t * for eng_options.rocksdb_env, or NULL when encryption is
 * off (the default environment). Lifetime: until close. */
void *sec_runtime_rocksdb_env(sec_runtime *r);

/* Returns the disk state as of the last measurement (SEC_DISK_NORMAL when no reserve is
 * set). Thread: any. */
sec_disk_state sec_runtime_disk_state(const sec_runtime *r);

/* Fills @u with the last measurement (capacity and available as the watcher counts them).
 * Thread: any. */
void sec_runtime_disk_usage(const sec_runtime *r, sec_disk_usage *u);

/* Returns the size of the placeholder file the runtime keeps (0 when none), and the reserved
 * amount the thresholds derive from. */
uint64_t sec_runtime_placeholder_bytes(const sec_runtime *r);
/* Returns the open-file limit found at open (0 when min_open_files was 0 or it could not be
 * read) and sets *@enough (may be NULL) to whether it reaches min_open_files. */
uint64_t sec_runtime_open_files_limit(const sec_runtime *r, bool *enough);
uint64_t sec_runtime_reserved_bytes(const sec_runtime *r);

#endif /* TKV_SEC_RUNTIME_H */
