/*
 * clock.h: time sources.
 *
 * Owns: nothing. Threads: all functions are thread-safe.
 * The monotonic clock is for durations and deadlines (never steps back); the real-time clock
 * is for TSO physical time and TTLs (may step back: callers that need monotonic real time,
 * like the TSO, guard against that themselves).
 * Dependencies: base.h.
 */
#ifndef TKV_CLOCK_H
#define TKV_CLOCK_H

#include "base/base.h"

/* Returns monotonic nanoseconds since an arbitrary origin. */
uint64_t tkv_clock_mono_ns(void);
/* Returns monotonic milliseconds since an arbitrary origin. */
uint64_t tkv_clock_mono_ms(void);
/* Returns wall-clock milliseconds since the Unix epoch. */
uint64_t tkv_clock_real_ms(void);
/* Sleeps for @ms milliseconds (restarting on signals). Not for correctness in tests. */
void tkv_sleep_ms(uint64_t ms);

struct timespec;
/* Sets @ts to CLOCK_MONOTONIC now plus @ms, the absolute deadline pthread_cond_timedwait
 * takes for a condition variable created with pthread_condattr_setclock(CLOCK_MONOTONIC). */
void tkv_clock_mono_deadline(struct timespec *ts, uint64_t ms);

#endif /* TKV_CLOCK_H */
