/*
 * mvcc_int.h: what the MVCC files share (not API).
 */
#ifndef TKV_STORAGE_MVCC_INT_H
#define TKV_STORAGE_MVCC_INT_H

#include "storage/mvcc/mvcc.h"

/* Returns whether @ts is one of @set[0..n). */
bool mvcc__ts_in(const uint64_t *set, size_t n, uint64_t ts);

/* Finds the newest visible Put/Delete of @enc_key at @ts (skipping Lock and Rollback
 * records and stale GC-fenced Puts): *@found is set for a Put, whose record is in @w (bytes
 * in @wbuf). */
TKV_MUST_USE int mvcc__find_visible(mvcc_reader *r, tkv_slice enc_key, uint64_t ts, txn_write *w,
                                    tkv_buf *wbuf, bool *found);

#endif /* TKV_STORAGE_MVCC_INT_H */
