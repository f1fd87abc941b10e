/*
 * client_fixture.h: a fake cluster (fake PD + fake stores) with a libtikvc client on it, for
 * the libtikvc tests.
 */
#ifndef TKV_TEST_CLIENT_FIXTURE_H
#define TKV_TEST_CLIENT_FIXTURE_H

#include "client/tikvc.h"
#include "unit/client/fake_store.h"
#include "unit/pdc/fake_pd.h"

typedef struct fx {
    fake_pd pd;
    fake_cluster fc;
    tikvc_client *c;
    bool txn; /* region boundaries are memcomparable-encoded */
} fx;

/* Starts a cluster of @n_stores stores whose key space is split at @splits (raw keys, or
 * user keys encoded into PD's form when @txn), region ids 2, 3, ...; every region has a
 * peer on every store and its leader on store (i % n) + 1. Connects a client with @o (NULL:
 * defaults with small backoffs for tests). */
void fx_start(fx *f, int n_stores, bool txn, const char *const *splits, size_t n_splits,
              const tikvc_opts *o);
void fx_stop(fx *f);
/* fx_start without the client (f->c stays NULL). */
void fx_start_cluster(fx *f, int n_stores, bool txn, const char *const *splits, size_t n_splits);

/* Fills @o with test defaults: backoff budget 5 s, busy backoff 10..40 ms. */
void fx_opts(fx *f, tikvc_opts *o);

/* Closes the client and connects a new one with @o. */
void fx_reopen(fx *f, const tikvc_opts *o);

/* Checks a read's outcome: @rc OK and @key found with @want (NULL: absent). Frees @b. */
void fx_check_read(int rc, tikvc_buf *b, bool found, const char *key, const char *want);

/* Returns the id of the region holding the user key @key in the fake PD's truth. */
uint64_t fx_region_of(fx *f, const char *key);

#endif /* TKV_TEST_CLIENT_FIXTURE_H */
