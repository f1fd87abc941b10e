/*
 * pd_tso.c: the timestamp oracle.
 *
 * A timestamp is (physical milliseconds, logical counter); composed as physical << 18 |
 * logical, so logical stays below 2^18. The oracle hands out strictly increasing timestamps:
 *   - physical follows the wall clock while the clock moves forward, and never moves back
 *     (a clock that steps back leaves physical where it is and the logical counter goes on);
 *   - when the logical space of a millisecond runs out, physical moves one millisecond ahead
 *     of the clock;
 *   - only physical values below the persisted upper bound ("limit") are handed out. The
 *     updater thread keeps the limit about one window (tso-save-interval, 3 s) ahead of
 *     max(clock, physical) and persists it with fsync before raising it in memory. A restart
 *     starts at max(clock, limit), which is above every timestamp handed out before.
 * A request that would need a physical value at or past the limit (the clock jumped forward
 * by more than a window, or the updater fell behind) waits for the updater, at most 3 s.
 */
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "pd/pd_int.h"

#define TSO_UPDATE_INTERVAL_MS 50
#define TSO_WAIT_LIMIT_MS      3000

struct pd_tso {
    pthread_mutex_t mu;
    pthread_cond_t raised; /* the limit went up, or saving failed */
    pthread_cond_t wake;   /* wakes the updater early */
    pthread_mutex_t save_mu;
    pd_storage *st;
    pd_tso_opts o;
    int64_t physical;
    int64_t next_logical;
    uint64_t limit_ms;
    uint64_t saves;
    int last_err;
    bool stop;
    bool has_thread;
    pthread_t thread;
};

static uint64_t clock_now(const pd_tso *t)
{
    return t->o.clock_ms != NULL ? t->o.clock_ms(t->o.clock_ud) : tkv_clock_real_ms();
}

void pd__tso_opts_init(pd_tso_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->window_ms = 3000;
    o->start_thread = true;
}

/* Persists a limit one window above max(clock, physical) when the current limit is less than
 * two thirds of a window ahead (or unconditionally with @force). Serialized by save_mu so
 * that the persisted value only grows. */
static int save_ahead(pd_tso *t, bool force)
{
    pthread_mutex_lock(&t->save_mu);
    pthread_mutex_lock(&t->mu);
    uint64_t now = clock_now(t);
    uint64_t base = now > (uint64_t)t->physical ? now : (uint64_t)t->physical;
    bool need = force || t->limit_ms < base + (t->o.window_ms * 2) / 3;
    uint64_t limit = base + t->o.window_ms;
    pthread_mutex_unlock(&t->mu);
    int rc = 0;
    if (need) {
        rc = pd__storage_put_u64(t->st, PD_KEY_TSO, limit, true);
        pthread_mutex_lock(&t->mu);
        if (rc == 0) {
            if (limit > t->limit_ms)
                t->limit_ms = limit;
            t->saves++;
            t->last_err = 0;
        } else {
            t->last_err = rc;
            TKV_LOG_ERROR("persist tso upper bound", TKV_LF_ERR("err", rc),
                          TKV_LF_STR("cause", pd__storage_errmsg(t->st)));
        }
        pthread_cond_broadcast(&t->raised);
        pthread_mutex_unlock(&t->mu);
    }
    pthread_mutex_unlock(&t->save_mu);
    return rc;
}

int pd__tso_tick(pd_tso *t)
{
    return save_ahead(t, false);
}

static void *updater_main(void *arg)
{
    pd_tso *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec ts;
        pd__deadline(&ts, TSO_UPDATE_INTERVAL_MS);
        pthread_cond_timedwait(&t->wake, &t->mu, &ts);
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->mu);
        TKV_IGNORE(save_ahead(t, false));
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int pd__tso_open(pd_storage *st, const pd_tso_opts *opts, pd_tso **out)
{
    pd_tso *t = tkv_calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    if (opts != NULL)
        t->o = *opts;
    else
        pd__tso_opts_init(&t->o);
    if (t->o.window_ms < 3)
        t->o.window_ms = 3;
    t->st = st;
    bool found = false;
    uint64_t last = 0;
    int rc = pd__storage_get_u64(st, PD_KEY_TSO, &last, &found);
    if (rc != 0) {
        tkv_free(t);
        return rc;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->save_mu, NULL);
    pthread_cond_init(&t->raised, &ca);
    pthread_cond_init(&t->wake, &ca);
    pthread_condattr_destroy(&ca);
    uint64_t now = clock_now(t);
    /* Every timestamp handed out before had physical < last: starting at last is above all. */
    t->physical = (int64_t)(now > last ? now : last);
    t->next_logical = 0;
    t->limit_ms = (uint64_t)t->physical;
    rc = save_ahead(t, true);
    if (rc == 0 && t->o.start_thread) {
        rc = -pthread_create(&t->thread, NULL, updater_main, t);
        t->has_thread = rc == 0;
    }
    if (rc != 0) {
        pd__tso_close(t);
        return rc;
    }
    TKV_LOG_INFO("tso ready", TKV_LF_U64("physical", (uint64_t)t->physical),
                 TKV_LF_U64("persisted_bound", last), TKV_LF_U64("limit", t->limit_ms));
    *out = t;
    return 0;
}

void pd__tso_close(pd_tso *t)
{
    if (t == NULL)
        return;
    if (t->has_thread) {
        pthread_mutex_lock(&t->mu);
        t->stop = true;
        pthread_cond_broadcast(&t->wake);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
    }
    pthread_cond_destroy(&t->raised);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->save_mu);
    tkv_free(t);
}

int pd__tso_get(pd_tso *t, uint32_t count, int64_t *physical, int64_t *logical)
{
    if (count == 0 || count > PD_TSO_MAX_LOGICAL)
        return -EINVAL;
    uint64_t waited_from = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        uint64_t now = clock_now(t);
        int64_t p = t->physical;
        int64_t nl = t->next_logical;
        if ((int64_t)now > p) {
            p = (int64_t)now;
            nl = 0;
        }
        if (nl + (int64_t)count > PD_TSO_MAX_LOGICAL) {
            p++;
            nl = 0;
        }
        if ((uint64_t)p < t->limit_ms) {
            t->physical = p;
            t->next_logical = nl + count;
            *physical = p;
            *logical = nl + count - 1;
            pthread_mutex_unlock(&t->mu);
            return 0;
        }
        /* The limit must go up first. */
        if (!t->has_thread) {
            pthread_mutex_unlock(&t->mu);
            int rc = save_ahead(t, true);
            if (rc != 0)
                return rc;
            pthread_mutex_lock(&t->mu);
            continue;
        }
        uint64_t mono = tkv_clock_mono_ms();
        if (waited_from == 0)
            waited_from = mono;
        if (mono - waited_from >= TSO_WAIT_LIMIT_MS) {
            int err = t->last_err;
            uint64_t limit = t->limit_ms;
            pthread_mutex_unlock(&t->mu);
            TKV_LOG_WARN("tso limit not raised in time", TKV_LF_U64("limit", limit),
                         TKV_LF_ERR("save_err", err));
            return TKV_EUNAVAILABLE;
        }
        pthread_cond_signal(&t->wake);
        struct timespec ts;
        pd__deadline(&ts, 100);
        pthread_cond_timedwait(&t->raised, &t->mu, &ts);
    }
}

uint64_t pd__tso_limit(pd_tso *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t v = t->limit_ms;
    pthread_mutex_unlock(&t->mu);
    return v;
}

uint64_t pd__tso_compose(int64_t physical, int64_t logical)
{
    return ((uint64_t)physical << PD_TSO_LOGICAL_BITS) | (uint64_t)logical;
}
