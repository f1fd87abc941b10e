/*
 * audit.h: the audit log (TiKV-style `[security] audit-log = PATH`).
 *
 * An append-only file of JSON lines, one per event (rejected peer or request, admin action,
 * start, stop), each carrying a hash chained to the record before it:
 *   {"seq":7,"time":"2026-11-27T04:58:45.123Z","event":"peer_rejected","peer":"ipv4:...",
 *    "method":"/tikvpb.Tikv/RawPut","reason":"...","details":"...","prev":"<64 hex>",
 *    "hash":"<64 hex>"}
 * hash = SHA-256(previous record's hash bytes || the line up to, not including, ',"hash"')
 * (HMAC-SHA256 under a key when one is configured); the first record's prev is 64 zeros.
 * A sidecar "<path>.head" holds the sequence number and hash of the last record written, and
 * a clean close appends an "audit_log_sealed" record.
 *
 * What verification detects: an edited, inserted, deleted or reordered record anywhere (the
 * chain breaks); the loss of records at the end when the head file or the seal says more was
 * written; a log that ends without seal and without head (truncation cannot be ruled out,
 * reported as a failure). What it cannot detect without a key: someone with write access to
 * both files who rewrites the whole chain and head consistently; with a key (HMAC) they can
 * no longer forge records but can still cut the log back to an earlier record and rewrite
 * the head to match it. Defeating that needs a copy of the head outside the host: the servers
 * log each seal's hash in their own log, and operators can ship it off-host.
 *
 * Owns: the open log file, its head file, the chain state. Threads: sec_audit_log is
 * thread-safe (one mutex; each record is one write(2)). Errors: 0 or negative: -errno for
 * I/O, TKV_ECORRUPT (an existing log fails verification at open), -ENOMEM, -EINVAL.
 * Dependencies: base, OpenSSL (SHA-256, HMAC), jansson.
 *
 * Usage:
 *     sec_audit_opts o;
 *     sec_audit_opts_init(&o);
 *     o.path = "/data/tikv/audit.log";
 *     sec_audit *a;
 *     if (sec_audit_open(&o, &a, err) != 0) die(err);
 *     sec_audit_event ev = {.type = "peer_rejected", .peer = addr, .method = path,
 *                           .reason = "certificate name not allowed"};
 *     rc = sec_audit_log(a, &ev);
 *     sec_audit_close(a);      // appends the seal
 */
#ifndef TKV_SEC_AUDIT_H
#define TKV_SEC_AUDIT_H

#include "base/base.h"

typedef enum sec_audit_sync {
    SEC_AUDIT_SYNC_ALWAYS = 0,   /* fdatasync after every record (default) */
    SEC_AUDIT_SYNC_INTERVAL = 1, /* fdatasync when the last one is older than the interval */
    SEC_AUDIT_SYNC_OFF = 2,      /* leave it to the OS (close still syncs) */
} sec_audit_sync;

typedef struct sec_audit_opts {
    const char *path;          /* the log file, created 0600 */
    sec_audit_sync sync;       /* fsync policy */
    uint64_t sync_interval_ms; /* for SEC_AUDIT_SYNC_INTERVAL */
    /* Optional chain key (HMAC-SHA256 instead of SHA-256); copied. NULL: unkeyed. */
    const uint8_t *key;
    size_t key_len;
    /* Clock in Unix milliseconds; NULL uses the real clock. */
    uint64_t (*now_ms)(void *ud);
    void *clock_ud;
} sec_audit_opts;

/* Fills @o with defaults: sync always, interval 1000 ms, unkeyed, real clock, path NULL. */
void sec_audit_opts_init(sec_audit_opts *o);

/* One event. type is required; the others may be NULL (left out of the record). Strings are
 * written as JSON strings (escaped), never interpreted. */
typedef struct sec_audit_event {
    const char *type;    /* "peer_rejected", "request_rejected", "admin", "start", "stop" */
    const char *peer;    /* gRPC peer ("ipv4:127.0.0.1:5555") and/or certificate name */
    const char *method;  /* gRPC method or admin action */
    const char *reason;  /* why it was refused, or what was done */
    const char *details; /* free text */
} sec_audit_event;

typedef struct sec_audit sec_audit;

/* Opens (creating 0600) the audit log at @o->path and stores it in *@out. An existing log is
 * verified first and the chain continues from its last record; a partial last line (a crash
 * mid-write) is cut off and an unsealed end is noted in an "audit_log_recovered" record.
 * Appends an "audit_log_opened" record.
 * Errors: TKV_ECORRUPT (the existing log fails verification: edited, reordered or truncated;
 * the operator must move it aside), -errno, -ENOMEM, -EINVAL. @err (may be NULL) gets the
 * cause. */
TKV_MUST_USE int sec_audit_open(const sec_audit_opts *o, sec_audit **out, char err[TKV_ERRMSG_LEN]);

/* Appends one record for @ev (durable per the sync policy when this returns).
 * Thread: any. Errors: -EINVAL (no type), -errno (write or sync; the chain is left as it
 * was: a partial write is cut back), -ENOMEM. */
TKV_MUST_USE int sec_audit_log(sec_audit *a, const sec_audit_event *ev);

/* Appends the seal record, syncs and closes the log. NULL is a no-op. */
void sec_audit_close(sec_audit *a);

/* Returns how many records the log holds (including those from earlier runs). */
uint64_t sec_audit_records(sec_audit *a);

/* What sec_audit_verify found. Plain data. */
typedef struct sec_audit_report {
    uint64_t records;             /* complete records that verified */
    bool sealed;                  /* the last record is a seal */
    bool head_present;            /* a head file exists */
    uint64_t head_seq;            /* its sequence number */
    size_t torn_bytes;            /* bytes of a partial last line (no newline) */
    uint64_t bad_line;            /* 1-based line of the first problem, 0 if none */
    uint8_t last_hash[32];        /* hash of the last verified record (zeros when none) */
    char problem[TKV_ERRMSG_LEN]; /* "" when the log verifies */
} sec_audit_report;

/* Verifies the audit log at @path (and its head file) with the chain key @key (NULL for an
 * unkeyed log) and fills @r. Returns 0 when every record chains to the one before, the head
 * agrees with the last record and the log is sealed or has a head; a partial last line alone
 * is reported in torn_bytes but is no failure (a crash). Errors: TKV_ECORRUPT (the first
 * problem in r->problem and r->bad_line: a bad line, a broken chain, a sequence gap, records
 * missing at the end, no seal and no head), -errno (the log cannot be read). */
TKV_MUST_USE int sec_audit_verify(const char *path, const uint8_t *key, size_t key_len,
                                  sec_audit_report *r);

/* The command `audit verify FILE [--key-file PATH]` (argv[0] is "verify"; @prog names the
 * program in messages): prints "OK: N records, ..." or "FAILED: problem (line N)" on stdout.
 * Returns the exit status: 0 the log verifies, 1 it does not (edited, reordered, truncated),
 * 2 usage error or unreadable key file. Used by tikv-ctl and tikv-audit. */
int sec_audit_verify_cmd(int argc, char **argv, const char *prog);

#endif /* TKV_SEC_AUDIT_H */
