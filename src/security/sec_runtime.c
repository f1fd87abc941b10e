/*
 * sec_runtime.c: a server's storage-side security controls at run time: data directory,
 * encryption keys and environment with rotation, reserve-space placeholder and disk watcher
 * (contract in runtime.h).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "security/runtime.h"

/* Directory levels the used-space walk descends (RocksDB and snapshot trees are shallow). */
#define WALK_MAX_DEPTH 8

struct sec_runtime {
    char name[32];
    char dir[PATH_MAX];
    uint64_t capacity_cfg;
    uint64_t interval_ms;
    sec_space_fn space;
    void *space_ud;
    /* Thresholds, from the reserve (all 0 when no reserve is set). */
    uint64_t reserved;    /* AlmostFull below this */
    uint64_t full_below;  /* AlreadyFull below this */
    uint64_t placeholder; /* the placeholder's size */
    uint64_t fd_limit;    /* the open-file limit found at open, 0 if not checked */
    bool fd_enough;
    atomic_bool placeholder_present; /* written by the watcher, read by any thread */
    /* The last measurement. */
    atomic_int state;
    _Atomic uint64_t capacity;
    _Atomic uint64_t available;
    /* Encryption. */
    sec_keys *keys;
    sec_env *env;
    /* The thread. */
    pthread_t thread;
    bool running;
    bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void set_err(char *err, const char *fmt, ...) TKV_PRINTF(2, 3);
static void set_err(char *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, TKV_ERRMSG_LEN, fmt, ap);
    va_end(ap);
}

void sec_runtime_opts_init(sec_runtime_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->name = "server";
    o->check_interval_ms = 1000;
}

static int statvfs_space(void *ud, const char *dir, uint64_t *capacity, uint64_t *available)
{
    (void)ud;
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return -errno;
    *capacity = (uint64_t)sv.f_blocks * sv.f_frsize;
    *available = (uint64_t)sv.f_bavail * sv.f_frsize;
    return 0;
}

/* Adds the allocated bytes of every file under @path to *@total (symbolic links are not
 * followed; what cannot be read is skipped: the total is an estimate for the watcher). */
static void walk_used(const char *path, int depth, uint64_t *total)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *de;
    char child[PATH_MAX];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (snprintf(child, sizeof(child), "%s/%s", path, de->d_name) >= (int)sizeof(child))
            continue;
        struct stat st;
        if (lstat(child, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < WALK_MAX_DEPTH)
                walk_used(child, depth + 1, total);
        } else if (S_ISREG(st.st_mode)) {
            *total += (uint64_t)st.st_blocks * 512;
        }
    }
    closedir(d);
}

/* Measures capacity and available space as TiKV counts them: with a configured capacity
 * below the file system's, available = min(capacity - used, file system's available). */
static int measure(sec_runtime *r, uint64_t *capacity, uint64_t *available)
{
    uint64_t fs_cap, fs_avail;
    int rc = r->space(r->space_ud, r->dir, &fs_cap, &fs_avail);
    if (rc != 0)
        return rc;
    *capacity = fs_cap;
    *available = fs_avail;
    if (r->capacity_cfg > 0 && r->capacity_cfg < fs_cap) {
        uint64_t used = 0;
        walk_used(r->dir, 0, &used);
        *capacity = r->capacity_cfg;
        uint64_t left = used < r->capacity_cfg ? r->capacity_cfg - used : 0;
        *available = TKV_MIN(left, fs_avail);
    }
    return 0;
}

static const char *state_name(sec_disk_state s)
{
    switch (s) {
    case SEC_DISK_NORMAL:
        return "normal";
    case SEC_DISK_ALMOST_FULL:
        return "almost_full";
    case SEC_DISK_FULL:
        return "already_full";
    }
    return "unknown";
}

/* Allocates the placeholder when it is missing and the disk has room for it beyond the
 * reserved amount, so that allocating it cannot by itself change the disk state. */
static void placeholder_restore(sec_runtime *r, uint64_t available)
{
    if (r->placeholder == 0 || atomic_load(&r->placeholder_present) ||
        available <= r->reserved + r->placeholder)
        return;
    int rc = sec_reserve_space(r->dir, r->placeholder);
    if (rc == 0) {
        atomic_store(&r->placeholder_present, true);
        TKV_LOG_INFO("space placeholder allocated", TKV_LF_STR("server", r->name),
                     TKV_LF_U64("bytes", r->placeholder));
    }
}

static void watch_disk(sec_runtime *r)
{
    uint64_t capacity, available;
    int rc = measure(r, &capacity, &available);
    if (rc != 0) {
        TKV_LOG_WARN("cannot measure the data directory's disk", TKV_LF_STR("server", r->name),
                     TKV_LF_STR("path", r->dir), TKV_LF_ERR("err", rc));
        return;
    }
    atomic_store(&r->capacity, capacity);
    atomic_store(&r->available, available);
    if (r->reserved == 0)
        return;
    sec_disk_state now = sec_disk_classify(available, r->full_below, r->reserved);
    sec_disk_state old = (sec_disk_state)atomic_exchange(&r->state, (int)now);
    if (now != old) {
        if (now == SEC_DISK_NORMAL)
            TKV_LOG_INFO("disk usage back to normal: writes accepted again",
                         TKV_LF_STR("server", r->name), TKV_LF_STR("from", state_name(old)),
                         TKV_LF_U64("available", available));
        else
            TKV_LOG_WARN("disk space low: writes refused with DiskFull, reads go on",
                         TKV_LF_STR("server", r->name), TKV_LF_STR("state", state_name(now)),
                         TKV_LF_STR("from", state_name(old)), TKV_LF_U64("available", available),
                         TKV_LF_U64("reserved", r->reserved));
    }
    if (now == SEC_DISK_FULL && atomic_load(&r->placeholder_present)) {
        uint64_t freed = 0;
        rc = sec_reserve_release(r->dir, &freed);
        if (rc == 0)
            atomic_store(&r->placeholder_present,
                         false); /* sec_reserve_release logs what it freed */
        else
            TKV_LOG_WARN("cannot release the space placeholder", TKV_LF_STR("server", r->name),
                         TKV_LF_ERR("err", rc));
    } else if (now == SEC_DISK_NORMAL) {
        placeholder_restore(r, available);
    }
}

static void rotate_keys(sec_runtime *r)
{
    if (r->keys == NULL || sec_keys_method(r->keys) == SEC_PLAINTEXT)
        return;
    bool rotated = false;
    int rc = sec_keys_rotate_if_due(r->keys, &rotated);
    if (rc != 0)
        TKV_LOG_WARN("data key rotation failed; the current key stays in use",
                     TKV_LF_STR("server", r->name), TKV_LF_ERR("err", rc));
    else if (rotated)
        TKV_LOG_INFO("data key rotated", TKV_LF_STR("server", r->name),
                     TKV_LF_U64("key_id", sec_keys_current_id(r->keys)));
}

void sec_runtime_tick(sec_runtime *r)
{
    watch_disk(r);
    rotate_keys(r);
}

static void *runtime_main(void *arg)
{
    sec_runtime *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        pthread_mutex_unlock(&r->mu);
        sec_runtime_tick(r);
        pthread_mutex_lock(&r->mu);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (r->interval_ms % 1000) * 1000000u;
        until.tv_sec += (time_t)(r->interval_ms / 1000 + ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Refuses a data directory with a key dictionary when no master key is configured: its
 * encrypted files would be read as garbage. */
static int check_unconfigured_dict(const char *dir, char *err)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/key.dict", dir);
    if (access(path, F_OK) != 0)
        return 0;
    set_err(err,
            "%.200s holds an encryption key dictionary but [security.encryption.master-key] "
            "is not configured: set it to read the encrypted files",
            dir);
    return TKV_ECONFIG;
}

static int open_encryption(sec_runtime *r, const sec_runtime_opts *o, char *err)
{
    if (o->config == NULL || !sec_config_encryption_on(o->config))
        return check_unconfigured_dict(r->dir, err);
    sec_enc_opts eo;
    int rc = sec_config_enc_opts(o->config, r->dir, &eo, err);
    if (rc != 0)
        return rc;
    eo.now_s = o->now_s;
    eo.clock_ud = o->clock_ud;
    rc = sec_keys_open(&eo, &r->keys, err);
    if (rc != 0)
        return rc;
    rc = sec_env_new(r->keys, &r->env);
    if (rc != 0) {
        set_err(err, "create the encrypting environment: %s", tkv_strerror(rc));
        return rc;
    }
    TKV_LOG_INFO("encryption at rest on", TKV_LF_STR("server", r->name),
                 TKV_LF_STR("method", sec_method_name(sec_keys_method(r->keys))),
                 TKV_LF_U64("current_key_id", sec_keys_current_id(r->keys)));
    return 0;
}

/* Sets the thresholds and the placeholder as TiKV does at start. */
static int open_reserve(sec_runtime *r, uint64_t reserve_cfg, uint64_t headroom, char *err)
{
    uint64_t freed;
    int rc = sec_reserve_release(r->dir, &freed);
    uint64_t capacity = 0, available = 0;
    if (rc == 0)
        rc = measure(r, &capacity, &available);
    if (rc != 0) {
        set_err(err, "measure %.200s: %s", r->dir, tkv_strerror(rc));
        return rc;
    }
    atomic_store(&r->capacity, capacity);
    atomic_store(&r->available, available);
    if (reserve_cfg == 0)
        return 0;
    r->reserved = TKV_MAX(reserve_cfg, capacity / 20);
    if (headroom > UINT64_MAX / 2)
        headroom = UINT64_MAX / 2;
    if (2 * headroom > r->reserved) {
        TKV_LOG_INFO("reserve raised to twice the engines' flush and compaction headroom",
                     TKV_LF_STR("server", r->name), TKV_LF_U64("reserve_space", reserve_cfg),
                     TKV_LF_U64("headroom", headroom), TKV_LF_U64("reserved", 2 * headroom));
        r->reserved = 2 * headroom;
    }
    if (r->reserved >= capacity)
        TKV_LOG_WARN("the disk reserve is not smaller than the disk: writes are refused",
                     TKV_LF_STR("server", r->name), TKV_LF_U64("capacity", capacity),
                     TKV_LF_U64("reserved", r->reserved));
    r->full_below = r->reserved / 2;
    r->placeholder = r->reserved / 5;
    if (available > r->reserved) {
        rc = sec_reserve_space(r->dir, r->placeholder);
        if (rc != 0) {
            set_err(err, "reserve %llu bytes in %.200s: %s", (unsigned long long)r->placeholder,
                    r->dir, tkv_strerror(rc));
            return rc;
        }
        atomic_store(&r->placeholder_present, true);
        available -= TKV_MIN(available, r->placeholder);
    } else {
        TKV_LOG_WARN("not enough disk space for the space placeholder",
                     TKV_LF_STR("server", r->name), TKV_LF_U64("available", available),
                     TKV_LF_U64("reserved", r->reserved));
    }
    atomic_store(&r->state, (int)sec_disk_classify(available, r->full_below, r->reserved));
    return 0;
}

int sec_runtime_open(const sec_runtime_opts *o, sec_runtime **out, char err[TKV_ERRMSG_LEN])
{
    if (err != NULL)
        err[0] = '\0';
    if (o == NULL || out == NULL || o->data_dir == NULL || o->data_dir[0] == '\0') {
        set_err(err, "sec_runtime_open: a data directory is required");
        return -EINVAL;
    }
    if (strlen(o->data_dir) >= PATH_MAX - 64) {
        set_err(err, "data directory path is too long");
        return -ENAMETOOLONG;
    }
    sec_runtime *r = tkv_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    snprintf(r->name, sizeof(r->name), "%s", o->name != NULL ? o->name : "server");
    snprintf(r->dir, sizeof(r->dir), "%s", o->data_dir);
    r->capacity_cfg = o->capacity_bytes;
    r->interval_ms = o->check_interval_ms > 0 ? o->check_interval_ms : 1000;
    r->space = o->space != NULL ? o->space : statvfs_space;
    r->space_ud = o->space_ud;
    atomic_init(&r->state, SEC_DISK_NORMAL);
    TKV_ASSERT(pthread_mutex_init(&r->mu, NULL) == 0);
    pthread_condattr_t ca;
    TKV_ASSERT(pthread_condattr_init(&ca) == 0);
    TKV_ASSERT(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0);
    TKV_ASSERT(pthread_cond_init(&r->cv, &ca) == 0);
    pthread_condattr_destroy(&ca);

    int rc = sec_dir_create(r->dir);
    if (rc != 0)
        set_err(err, "create data directory %.200s: %s", r->dir, tkv_strerror(rc));
    bool too_open = false;
    if (rc == 0 && (rc = sec_dir_check_private(r->dir, &too_open)) != 0)
        set_err(err, "examine data directory %.200s: %s", r->dir, tkv_strerror(rc));
    if (rc == 0 && o->min_open_files > 0) {
        /* A limit that cannot be read or raised is worth a WARN, not a refusal to start. */
        int frc = sec_fd_limit_check(o->min_open_files, &r->fd_limit, &r->fd_enough);
        if (frc != 0)
            TKV_LOG_WARN("cannot check the open-file limit", TKV_LF_STR("server", r->name),
                         TKV_LF_ERR("err", frc));
    }
    if (rc == 0)
        rc = open_encryption(r, o, err);
    if (rc == 0)
        rc = open_reserve(r, o->reserve_space_bytes, o->engine_headroom_bytes, err);
    if (rc != 0) {
        sec_runtime_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int sec_runtime_start(sec_runtime *r)
{
    if (r->running)
        return 0;
    r->stop = false;
    int rc = pthread_create(&r->thread, NULL, runtime_main, r);
    if (rc != 0)
        return -rc;
    r->running = true;
    return 0;
}

void sec_runtime_close(sec_runtime *r)
{
    if (r == NULL)
        return;
    if (r->running) {
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    sec_env_free(r->env);
    sec_keys_close(r->keys);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    tkv_free(r);
}

sec_keys *sec_runtime_keys(sec_runtime *r)
{
    return r->keys;
}

void *sec_runtime_rocksdb_env(sec_runtime *r)
{
    return r->env != NULL ? sec_env_rocksdb(r->env) : NULL;
}

sec_disk_state sec_runtime_disk_state(const sec_runtime *r)
{
    return (sec_disk_state)atomic_load(&r->state);
}

void sec_runtime_disk_usage(const sec_runtime *r, sec_disk_usage *u)
{
    u->capacity_bytes = atomic_load(&r->capacity);
    u->available_bytes = atomic_load(&r->available);
    u->state = sec_runtime_disk_state(r);
}

uint64_t sec_runtime_placeholder_bytes(const sec_runtime *r)
{
    return atomic_load(&r->placeholder_present) ? r->placeholder : 0;
}

uint64_t sec_runtime_open_files_limit(const sec_runtime *r, bool *enough)
{
    if (enough != NULL)
        *enough = r->fd_enough;
    return r->fd_limit;
}

uint64_t sec_runtime_reserved_bytes(const sec_runtime *r)
{
    return r->reserved;
}
