/*
 * ctl.h: tikv-ctl's shared pieces: parsed options, key escaping, output helpers.
 *
 * tikv-ctl is a command-line client on libtikvc: raw and transactional reads and writes,
 * region, store and cluster information from PD, and a small closed-loop benchmark.
 * Exit codes: 0 success, 1 key not found (get), 2 usage error, 3 cannot connect (PD),
 * 4 the request failed.
 */
#ifndef TKV_TOOLS_CTL_H
#define TKV_TOOLS_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/tikvc.h"

#define TKV_CTL_MIN(a, b) ((a) < (b) ? (a) : (b))

enum { CTL_OK = 0, CTL_NOT_FOUND = 1, CTL_USAGE = 2, CTL_CONNECT = 3, CTL_FAILED = 4 };

typedef struct ctl_opts {
    const char *pd;
    const char *ca_path, *cert_path, *key_path;
    bool json;
    bool hex;       /* keys and values on the command line are hex */
    int timeout_ms; /* per request; 0: library default */
    /* command options */
    const char *from, *to;
    bool has_from, has_to;
    long long limit;
    bool reverse, key_only, txn_keys;
    uint64_t ttl;
    uint64_t id;
    bool has_id;
    int concurrency;
    int seconds;
    int value_size;
    long long keys;
    bool batch_commands_off;
    bool one_pc_off; /* --no-1pc: transactions always commit in two phases */
    /* offline commands (encryption-meta, issue 9) */
    const char *config_path; /* --config: the store's TOML */
    const char *data_dir;    /* --data-dir */
    const char *enc_path;    /* --path: one file for encryption-meta dump-file */
    /* positionals */
    const char *pos[8];
    int n_pos;
} ctl_opts;

/* Decodes a key or value given on the command line (escapes like \x00, or hex with --hex)
 * into a malloc'd buffer. Returns false (message printed, @out left empty) when malformed. */
bool ctl_decode(const ctl_opts *o, const char *in, tikvc_buf *out);

/* Returns a malloc'd printable form of @p: printable ASCII as is, backslash doubled, other
 * bytes as \xHH. */
char *ctl_escape(const void *p, size_t n);

/* Prints the library's error for @what and returns CTL_FAILED. */
int ctl_fail(const char *what);

/* Connects a client with the options. Returns CTL_OK or CTL_CONNECT (message printed). */
int ctl_connect(const ctl_opts *o, tikvc_client **out);

/* The benchmark subcommand: `bench raw-put|raw-get`. */
int ctl_bench(const ctl_opts *o, tikvc_client *c, const char *what);

/* `encryption-meta [dump-key | dump-file [--path FILE]]`: the data directory's key and file
 * dictionaries as JSON, without key material (offline; needs --config, and --data-dir unless
 * the configuration has storage.data-dir). Returns a CTL_* code (message printed). */
int ctl_encryption_meta(const ctl_opts *o);

#endif /* TKV_TOOLS_CTL_H */
