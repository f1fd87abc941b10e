/*
 * gc.c: removing the versions of one key that no read at or above the safe point can see
 * (TiKV's actions/gc.rs).
 */
#include "storage/txn/actions/actions.h"

static int delete_version(mvcc_txn *t, tkv_slice enc_key, const txn_write *w, uint64_t commit_ts,
                          size_t *deleted)
{
    int rc = 0;
    if (w->type == TXN_WRITE_PUT && !w->has_short_value)
        rc = mvcc_txn_delete_value(t, enc_key, w->start_ts);
    if (rc == 0)
        rc = mvcc_txn_delete_write(t, enc_key, commit_ts);
    if (rc == 0)
        (*deleted)++;
    return rc;
}

int txn_gc_key(mvcc_txn *t, mvcc_reader *r, tkv_slice enc_key, uint64_t safe_point, size_t *deleted)
{
    txn_write w;
    tkv_buf wbuf;
    tkv_buf_init(&wbuf);
    bool remove_older = false;
    uint64_t seek = TXN_TS_MAX;
    int rc = 0;
    for (;;) {
        uint64_t commit_ts;
        bool found;
        rc = mvcc_seek_write(r, enc_key, seek, &commit_ts, &w, &wbuf, &found);
        if (rc != 0 || !found)
            break;
        if (commit_ts <= safe_point) {
            if (!remove_older && w.type == TXN_WRITE_PUT) {
                /* The version every read at the safe point sees: keep it, drop the rest. */
                remove_older = true;
            } else {
                /* Below the kept version everything goes. Otherwise: reads at the safe point
                 * see nothing past a delete, so it and all below it go; Lock and Rollback
                 * records carry no data. */
                if (w.type == TXN_WRITE_DELETE)
                    remove_older = true;
                rc = delete_version(t, enc_key, &w, commit_ts, deleted);
            }
            if (rc != 0)
                break;
        }
        if (commit_ts == 0)
            break;
        seek = commit_ts - 1;
    }
    tkv_buf_deinit(&wbuf);
    return rc;
}
