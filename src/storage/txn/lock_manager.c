/*
 * lock_manager.c: waiters, their deadlines and wake-ups (see lock_manager.h).
 */
#include "storage/txn/lock_manager.h"

#include <pthread.h>
#include <time.h>

#include "base/clock.h"

typedef struct waiter {
    struct waiter *next;
    uint64_t start_ts, lock_ts, key_hash;
    uint64_t deadline_ms;
    txn_wait_cb cb;
    void *ud;
} waiter;

struct txn_lock_mgr {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t timer;
    bool stop;
    waiter *waiters; /* unordered; waits are few */
    size_t n;
    uint64_t default_timeout_ms;
    txn_detector *detector;
};

static void *timer_main(void *arg);

int txn_lock_mgr_new(txn_detector *d, uint64_t default_timeout_ms, txn_lock_mgr **out)
{
    int rc = 0;
    if (d == NULL)
        rc = txn_detector_local_new(&d);
    if (rc != 0)
        return rc;
    txn_lock_mgr *lm = tkv_calloc(1, sizeof(*lm));
    if (lm == NULL) {
        txn_detector_free(d);
        return -ENOMEM;
    }
    lm->detector = d;
    lm->default_timeout_ms = default_timeout_ms ? default_timeout_ms : TXN_DEFAULT_WAIT_TIMEOUT_MS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = -pthread_cond_init(&lm->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc == 0) {
        rc = -pthread_mutex_init(&lm->mu, NULL);
        if (rc != 0)
            pthread_cond_destroy(&lm->cond);
    }
    if (rc == 0) {
        rc = -pthread_create(&lm->timer, NULL, timer_main, lm);
        if (rc != 0) {
            pthread_cond_destroy(&lm->cond);
            pthread_mutex_destroy(&lm->mu);
        }
    }
    if (rc != 0) {
        txn_detector_free(d);
        tkv_free(lm);
        return rc;
    }
    *out = lm;
    return 0;
}

/* Ends @w: the detector forgets its edge, then its callback runs. Called without mu. */
static void finish(txn_lock_mgr *lm, waiter *w, txn_wait_outcome o, uint64_t commit_ts,
                   uint64_t dl_hash)
{
    lm->detector->ops->clean_up_wait_for(lm->detector->impl, w->start_ts, w->lock_ts, w->key_hash);
    w->cb(w->ud, o, commit_ts, dl_hash);
    tkv_free(w);
}

void txn_lock_mgr_free(txn_lock_mgr *lm)
{
    if (lm == NULL)
        return;
    pthread_mutex_lock(&lm->mu);
    lm->stop = true;
    pthread_cond_broadcast(&lm->cond);
    pthread_mutex_unlock(&lm->mu);
    pthread_join(lm->timer, NULL);
    waiter *w = lm->waiters;
    lm->waiters = NULL;
    while (w != NULL) {
        waiter *next = w->next;
        finish(lm, w, TXN_WAIT_TIMEOUT, 0, 0);
        w = next;
    }
    txn_detector_free(lm->detector);
    pthread_cond_destroy(&lm->cond);
    pthread_mutex_destroy(&lm->mu);
    tkv_free(lm);
}

uint64_t txn_lock_mgr_wait_ms(const txn_lock_mgr *lm, int64_t wait_timeout)
{
    if (wait_timeout < 0)
        return 0;
    if (wait_timeout == 0)
        return lm->default_timeout_ms;
    return TKV_MIN((uint64_t)wait_timeout, lm->default_timeout_ms);
}

int txn_lock_mgr_wait_for(txn_lock_mgr *lm, uint64_t start_ts, uint64_t lock_ts, uint64_t key_hash,
                          uint64_t timeout_ms, txn_wait_cb cb, void *ud)
{
    waiter *w = tkv_calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->start_ts = start_ts;
    w->lock_ts = lock_ts;
    w->key_hash = key_hash;
    w->deadline_ms = tkv_clock_mono_ms() + timeout_ms;
    w->cb = cb;
    w->ud = ud;
    pthread_mutex_lock(&lm->mu);
    w->next = lm->waiters;
    lm->waiters = w;
    lm->n++;
    pthread_cond_signal(&lm->cond);
    pthread_mutex_unlock(&lm->mu);
    /* Outside the mutex: a local detector reports a deadlock right away. */
    lm->detector->ops->detect(lm->detector->impl, lm, start_ts, lock_ts, key_hash);
    return 0;
}

/* Unlinks and returns the first waiter matching @match, or NULL. Called with mu held. */
static waiter *take(txn_lock_mgr *lm, bool (*match)(const waiter *w, const void *arg),
                    const void *arg)
{
    for (waiter **pp = &lm->waiters; *pp != NULL; pp = &(*pp)->next) {
        if (match(*pp, arg)) {
            waiter *w = *pp;
            *pp = w->next;
            lm->n--;
            return w;
        }
    }
    return NULL;
}

typedef struct key_match {
    uint64_t lock_ts, key_hash, start_ts;
} key_match;

static bool match_exact(const waiter *w, const void *arg)
{
    const key_match *k = arg;
    return w->start_ts == k->start_ts && w->lock_ts == k->lock_ts && w->key_hash == k->key_hash;
}

void txn_lock_mgr_wake_up(txn_lock_mgr *lm, uint64_t lock_ts, const uint64_t *hashes, size_t n,
                          uint64_t commit_ts, bool pessimistic_txn)
{
    /* The releasing transaction waits for nothing any more (only pessimistic ones ever do;
     * the cluster detector would otherwise get a message for every commit). */
    if (pessimistic_txn)
        lm->detector->ops->clean_up(lm->detector->impl, lock_ts);
    if (n == 0)
        return;
    waiter *woken = NULL;
    pthread_mutex_lock(&lm->mu);
    uint64_t now = tkv_clock_mono_ms();
    for (size_t i = 0; i < n && lm->waiters != NULL; i++) {
        /* The oldest transaction waiting for this key goes first; the others retry after a
         * short delay (TiKV's wake-up-delay-duration). */
        waiter *best = NULL;
        for (waiter *w = lm->waiters; w != NULL; w = w->next) {
            if (w->lock_ts == lock_ts && w->key_hash == hashes[i] &&
                (best == NULL || w->start_ts < best->start_ts))
                best = w;
        }
        if (best == NULL)
            continue;
        key_match k = {lock_ts, hashes[i], best->start_ts};
        waiter *w = take(lm, match_exact, &k);
        w->next = woken;
        woken = w;
        for (waiter *o = lm->waiters; o != NULL; o = o->next) {
            if (o->lock_ts == lock_ts && o->key_hash == hashes[i])
                o->deadline_ms = TKV_MIN(o->deadline_ms, now + TXN_WAKE_UP_DELAY_MS);
        }
    }
    pthread_cond_signal(&lm->cond);
    pthread_mutex_unlock(&lm->mu);
    while (woken != NULL) {
        waiter *next = woken->next;
        finish(lm, woken, TXN_WAIT_WOKEN, commit_ts, 0);
        woken = next;
    }
}

void txn_lock_mgr_on_deadlock(txn_lock_mgr *lm, uint64_t txn_ts, uint64_t lock_ts,
                              uint64_t key_hash, uint64_t deadlock_key_hash)
{
    key_match k = {lock_ts, key_hash, txn_ts};
    pthread_mutex_lock(&lm->mu);
    waiter *w = take(lm, match_exact, &k);
    pthread_mutex_unlock(&lm->mu);
    if (w != NULL)
        finish(lm, w, TXN_WAIT_DEADLOCK, 0, deadlock_key_hash);
}

void txn_lock_mgr_set_detector(txn_lock_mgr *lm, txn_detector *d)
{
    pthread_mutex_lock(&lm->mu);
    txn_detector *old = lm->detector;
    lm->detector = d;
    pthread_mutex_unlock(&lm->mu);
    txn_detector_free(old);
}

size_t txn_lock_mgr_waiter_count(txn_lock_mgr *lm)
{
    pthread_mutex_lock(&lm->mu);
    size_t n = lm->n;
    pthread_mutex_unlock(&lm->mu);
    return n;
}

static bool match_expired(const waiter *w, const void *arg)
{
    return w->deadline_ms <= *(const uint64_t *)arg;
}

static void *timer_main(void *arg)
{
    txn_lock_mgr *lm = arg;
    pthread_mutex_lock(&lm->mu);
    while (!lm->stop) {
        uint64_t now = tkv_clock_mono_ms();
        waiter *w = take(lm, match_expired, &now);
        if (w != NULL) {
            pthread_mutex_unlock(&lm->mu);
            finish(lm, w, TXN_WAIT_TIMEOUT, 0, 0);
            pthread_mutex_lock(&lm->mu);
            continue;
        }
        uint64_t next = UINT64_MAX;
        for (waiter *x = lm->waiters; x != NULL; x = x->next)
            next = TKV_MIN(next, x->deadline_ms);
        if (next == UINT64_MAX) {
            pthread_cond_wait(&lm->cond, &lm->mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait_ms = next > now ? next - now : 0;
        ts.tv_sec += (time_t)(wait_ms / 1000);
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&lm->cond, &lm->mu, &ts);
    }
    pthread_mutex_unlock(&lm->mu);
    return NULL;
}
