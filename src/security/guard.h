/*
 * guard.h: brute-force protection for the servers' listeners.
 *
 * Counts failed TLS handshakes and refused certificates per source address with a token
 * bucket: an address may fail `max_failures` times in a burst and then at most
 * max_failures per window_ms on average; one more failure bans it for ban_ms, during which
 * sec_guard_allowed answers false (the gRPC server's peer gate refuses its calls). Other
 * addresses are untouched, so a well-behaved client elsewhere is not slowed.
 * Memory is O(1) per address and bounded: at most max_addrs addresses are tracked, the least
 * recently seen one is evicted first (an unbanned one when one of the 8 least recent is
 * unbanned), so an attacker flooding from more than max_addrs sources can shorten bans;
 * that flood is a network-level problem this block does not claim to solve.
 * Addresses are gRPC peer strings ("ipv4:10.0.0.1:5555", "ipv6:[::1]:5555"); the port is
 * dropped so one host is one address.
 *
 * Metrics: tikv_server_peer_auth_failures_total (failures recorded) and
 * tikv_server_peer_bans_total (bans started). The on_ban hook lets the server write an audit
 * record.
 *
 * Owns: the address table. Threads: every function is thread-safe (one mutex; each call is
 * O(1)). The hook runs with the mutex released. Errors: -EINVAL, -ENOMEM at creation only.
 * Dependencies: base (allocation, clock, metrics).
 *
 * Usage:
 *     sec_guard_opts o;
 *     sec_guard_opts_init(&o);
 *     sec_guard *g;
 *     rc = sec_guard_new(&o, &g);
 *     server_opts.peer_gate = gate_fn;           // calls sec_guard_allowed(g, peer)
 *     server_opts.on_peer_rejected = reject_fn;  // calls sec_guard_failure(g, r->peer)
 */
#ifndef TKV_SEC_GUARD_H
#define TKV_SEC_GUARD_H

#include "base/base.h"

typedef struct sec_guard_opts {
    uint32_t max_failures; /* bucket size: failures tolerated in a burst (default 10) */
    uint64_t window_ms;    /* the bucket refills max_failures tokens per window (60 s) */
    uint64_t ban_ms;       /* how long a ban lasts (300 s) */
    size_t max_addrs;      /* addresses tracked at most (65536) */
    /* Clock in milliseconds (monotonic); NULL uses tkv_clock_mono_ms. */
    uint64_t (*now_ms)(void *ud);
    void *clock_ud;
    /* Called when an address gets banned (@addr is the address without port). */
    void (*on_ban)(const char *addr, uint64_t ban_ms, void *ud);
    void *hook_ud;
} sec_guard_opts;

/* Fills @o with the defaults above. */
void sec_guard_opts_init(sec_guard_opts *o);

typedef struct sec_guard sec_guard;

/* Creates a guard (its table is allocated up front). Errors: -EINVAL (zero sizes or window),
 * -ENOMEM. */
TKV_MUST_USE int sec_guard_new(const sec_guard_opts *o, sec_guard **out);

/* Frees @g. NULL is a no-op. */
void sec_guard_free(sec_guard *g);

/* Returns false while @peer's address is banned. Cheap; call it for every new call or
 * connection. */
bool sec_guard_allowed(sec_guard *g, const char *peer);

/* Records one failure (failed handshake, refused certificate) from @peer's address and
 * returns true when this failure started a ban. */
bool sec_guard_failure(sec_guard *g, const char *peer);

/* Returns how many addresses are tracked. */
size_t sec_guard_size(sec_guard *g);

/* Writes @peer's address without scheme and port into @out ("ipv4:10.0.0.1:5555" ->
 * "10.0.0.1", "ipv6:[::1]:80" -> "::1"); other strings are copied (truncated to @cap). */
void sec_guard_addr(const char *peer, char *out, size_t cap);

#endif /* TKV_SEC_GUARD_H */
