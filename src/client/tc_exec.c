/*
 * tc_exec.c: libtikvc's worker threads: a min-heap of jobs ordered by the time they may run.
 *
 * Jobs are embedded in the objects they continue (a task's backoff, a PD lookup that must
 * not run on a gRPC thread, the periodic timeout sweep), so posting never allocates except
 * when the heap grows. While the client closes, every job runs at once.
 */
#include <stdio.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "client/tc_int.h"

static __thread bool tls_on_worker;

bool tikvc__on_worker(void)
{
    return tls_on_worker;
}

static void heap_swap(tc_exec *x, size_t a, size_t b)
{
    tc_job *t = x->heap[a];
    x->heap[a] = x->heap[b];
    x->heap[b] = t;
    x->heap[a]->heap_idx = a;
    x->heap[b]->heap_idx = b;
}

static void heap_up(tc_exec *x, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (x->heap[p]->at_ms <= x->heap[i]->at_ms)
            break;
        heap_swap(x, i, p);
        i = p;
    }
}

static void heap_down(tc_exec *x, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < x->n && x->heap[l]->at_ms < x->heap[m]->at_ms)
            m = l;
        if (r < x->n && x->heap[r]->at_ms < x->heap[m]->at_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(x, i, m);
        i = m;
    }
}

static tc_job *heap_pop(tc_exec *x)
{
    tc_job *top = x->heap[0];
    x->n--;
    if (x->n > 0) {
        x->heap[0] = x->heap[x->n];
        x->heap[0]->heap_idx = 0;
        heap_down(x, 0);
    }
    return top;
}

static void wait_until(tc_exec *x, uint64_t at_ms)
{
    uint64_t now = tkv_clock_mono_ms();
    if (at_ms <= now)
        return;
    uint64_t d = at_ms - now;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(d / 1000);
    ts.tv_nsec += (long)(d % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&x->cv, &x->mu, &ts);
}

static void *worker_main(void *arg)
{
    tc_exec *x = arg;
    tls_on_worker = true;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        if (x->n == 0) {
            /* Stopping waits for the queue to run dry (every job ends its task). */
            if (x->stop)
                break;
            pthread_cond_wait(&x->cv, &x->mu);
            continue;
        }
        uint64_t now = tkv_clock_mono_ms();
        if (!x->drain && x->heap[0]->at_ms > now) {
            wait_until(x, x->heap[0]->at_ms);
            continue;
        }
        tc_job *j = heap_pop(x);
        pthread_mutex_unlock(&x->mu);
        j->fn(j);
        pthread_mutex_lock(&x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

int tikvc__exec_start(tc_exec *x, int threads)
{
    memset(x, 0, sizeof(*x));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    TKV_ASSERT(pthread_mutex_init(&x->mu, NULL) == 0);
    TKV_ASSERT(pthread_cond_init(&x->cv, &ca) == 0);
    pthread_condattr_destroy(&ca);
    x->cap = 64;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
    x->heap = tkv_calloc(x->cap, sizeof(*x->heap));
    if (x->heap == NULL)
        return -ENOMEM;
    if (threads > (int)TKV_ARRAY_LEN(x->threads))
        threads = (int)TKV_ARRAY_LEN(x->threads);
    for (int i = 0; i < threads; i++) {
        int rc = pthread_create(&x->threads[i], NULL, worker_main, x);
        if (rc != 0) {
            tikvc__exec_stop(x);
            return -rc;
        }
        x->n_threads++;
    }
    return 0;
}

void tikvc__exec_post(tc_exec *x, tc_job *j, uint64_t delay_ms)
{
    pthread_mutex_lock(&x->mu);
    if (x->n == x->cap) {
        /* Growing can fail; then the job runs now on this thread, after a plain sleep of
         * the delay if we are allowed to block here, which keeps it correct if slower. */
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of struct pointers */
        tc_job **h = tkv_realloc(x->heap, 2 * x->cap * sizeof(*h));
        if (h == NULL) {
            pthread_mutex_unlock(&x->mu);
            TKV_LOG_ERROR("libtikvc job queue cannot grow: running the job inline");
            j->fn(j);
            return;
        }
        x->heap = h;
        x->cap *= 2;
    }
    j->at_ms = tkv_clock_mono_ms() + delay_ms;
    j->heap_idx = x->n;
    x->heap[x->n++] = j;
    heap_up(x, j->heap_idx);
    /* Wake a worker only when this job is now the earliest (others keep their timers). */
    if (j->heap_idx == 0)
        pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

void tikvc__exec_drain(tc_exec *x)
{
    pthread_mutex_lock(&x->mu);
    x->drain = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

void tikvc__exec_stop(tc_exec *x)
{
    pthread_mutex_lock(&x->mu);
    x->stop = true;
    x->drain = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    for (int i = 0; i < x->n_threads; i++)
        pthread_join(x->threads[i], NULL);
    x->n_threads = 0;
    TKV_ASSERT(x->n == 0);
    tkv_free(x->heap);
    x->heap = NULL;
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
}
