/*
 * prewrite.c: the first phase of Percolator's two-phase commit for one key (TiKV's
 * actions/prewrite.rs and check_data_constraint.rs).
 */
#include <stdio.h>

#include "storage/txn/actions/actions.h"

static const tkv_slice none = {NULL, 0};

/* Insert and CheckNotExists need the key absent: a visible Put (directly, or below Lock and
 * Rollback records) is AlreadyExist. */
static int check_data_constraint(mvcc_reader *r, bool should_not_exist, const txn_write *w,
                                 uint64_t commit_ts, tkv_slice enc_key, mvcc_err *e)
{
    if (!should_not_exist || w->type == TXN_WRITE_DELETE)
        return 0;
    bool exists = w->type == TXN_WRITE_PUT;
    if (!exists && commit_ts > 0) {
        int rc = mvcc_exists(r, enc_key, commit_ts - 1, &exists);
        if (rc != 0)
            return rc;
    }
    if (exists)
        return mvcc_err_set(e, MVCC_E_ALREADY_EXIST, enc_key, none, 0, 0, 0);
    return 0;
}

/* Assertions (kvrpcpb.Assertion) against the newest committed version. */
static int check_assertion(mvcc_reader *r, const txn_mutation *m, uint64_t start_ts, mvcc_err *e)
{
    if (m->assertion == TXN_ASSERT_NONE)
        return 0;
    txn_write w;
    tkv_buf wbuf;
    tkv_buf_init(&wbuf);
    bool exists = false;
    uint64_t seek = TXN_TS_MAX, existing_start = 0, existing_commit = 0;
    int rc = 0;
    for (;;) {
        uint64_t cts;
        bool found;
        rc = mvcc_seek_write(r, m->enc_key, seek, &cts, &w, &wbuf, &found);
        if (rc != 0 || !found)
            break;
        if (w.type == TXN_WRITE_PUT || w.type == TXN_WRITE_DELETE) {
            exists = w.type == TXN_WRITE_PUT;
            existing_start = w.start_ts;
            existing_commit = cts;
            break;
        }
        if (cts == 0)
            break;
        seek = cts - 1;
    }
    tkv_buf_deinit(&wbuf);
    if (rc != 0)
        return rc;
    if ((m->assertion == TXN_ASSERT_EXIST && !exists) ||
        (m->assertion == TXN_ASSERT_NOT_EXIST && exists)) {
        rc = mvcc_err_set(e, MVCC_E_ASSERTION_FAILED, m->enc_key, none, start_ts, existing_start,
                          existing_commit);
        e->assertion = m->assertion;
    }
    return rc;
}

/* A write newer than start_ts, or this txn's own rollback, refuses the prewrite. */
static int check_for_newer_version(mvcc_reader *r, const txn_prewrite_props *p,
                                   const txn_mutation *m, uint64_t start_ts, bool should_not_exist,
                                   mvcc_err *e)
{
    txn_write w;
    tkv_buf wbuf;
    tkv_buf_init(&wbuf);
    uint64_t commit_ts;
    bool found;
    int rc = mvcc_seek_write(r, m->enc_key, TXN_TS_MAX, &commit_ts, &w, &wbuf, &found);
    if (rc == 0 && found) {
        if (commit_ts > start_ts) {
            rc = mvcc_err_set_conflict(e, m->enc_key, p->primary, start_ts, w.start_ts, commit_ts,
                                       MVCC_CONFLICT_OPTIMISTIC);
        } else if (commit_ts == start_ts &&
                   (w.type == TXN_WRITE_ROLLBACK || w.has_overlapped_rollback)) {
            /* Percolator: a rollback record stops the late prewrite of a rolled-back txn. */
            rc = mvcc_err_set_conflict(e, m->enc_key, p->primary, start_ts, w.start_ts, commit_ts,
                                       MVCC_CONFLICT_SELF_ROLLED_BACK);
        } else {
            rc = check_data_constraint(r, should_not_exist, &w, commit_ts, m->enc_key, e);
        }
    }
    tkv_buf_deinit(&wbuf);
    return rc;
}

/* A pessimistic prewrite whose lock is gone may still go on if nothing was committed since
 * the transaction started (TiKV amends the lock in that case). */
static int amend_pessimistic_lock(mvcc_reader *r, const txn_mutation *m, uint64_t start_ts,
                                  mvcc_err *e)
{
    txn_write w;
    tkv_buf wbuf;
    tkv_buf_init(&wbuf);
    uint64_t commit_ts;
    bool found;
    int rc = mvcc_seek_write(r, m->enc_key, TXN_TS_MAX, &commit_ts, &w, &wbuf, &found);
    if (rc == 0 && found && commit_ts >= start_ts)
        rc = mvcc_err_set(e, MVCC_E_PESSIMISTIC_LOCK_NOT_FOUND, m->enc_key, none, start_ts, 0, 0);
    tkv_buf_deinit(&wbuf);
    return rc;
}

static int lock_type_of(int op, txn_lock_type *type)
{
    switch (op) {
    case TXN_OP_PUT:
    case TXN_OP_INSERT:
        *type = TXN_LOCK_PUT;
        return 0;
    case TXN_OP_DEL:
        *type = TXN_LOCK_DELETE;
        return 0;
    case TXN_OP_LOCK:
        *type = TXN_LOCK_LOCK;
        return 0;
    default:
        return -EINVAL;
    }
}

int txn_prewrite(mvcc_txn *t, mvcc_reader *r, const txn_prewrite_props *p, const txn_mutation *m,
                 int pessimistic_action, mvcc_err *e)
{
    uint64_t start_ts = mvcc_txn_start_ts(t);
    bool pessimistic_txn = p->for_update_ts != 0;
    bool should_not_write = m->op == TXN_OP_CHECK_NOT_EXISTS;
    bool should_not_exist = m->op == TXN_OP_INSERT || should_not_write;
    bool is_pessimistic_lock = pessimistic_txn && pessimistic_action == TXN_DO_PESSIMISTIC_CHECK;
    txn_lock_type type = TXN_LOCK_LOCK;
    if (!should_not_write && lock_type_of(m->op, &type) != 0) {
        int rc = mvcc_err_set(e, MVCC_E_OTHER, m->enc_key, none, start_ts, 0, 0);
        snprintf(e->msg, sizeof(e->msg), "invalid op %d in prewrite", m->op);
        return rc;
    }
    if (pessimistic_txn && should_not_write) {
        int rc = mvcc_err_set(e, MVCC_E_OTHER, m->enc_key, none, start_ts, 0, 0);
        snprintf(e->msg, sizeof(e->msg), "cannot handle checkNotExists in pessimistic prewrite");
        return rc;
    }
    uint64_t lock_ttl = p->lock_ttl, min_commit_ts = p->min_commit_ts;
    bool lock_amended = false, had_pessimistic_lock = false;

    txn_lock_holder h;
    txn_lock_holder_init(&h);
    bool has_lock;
    int rc = mvcc_load_lock(r, m->enc_key, &h, &has_lock);
    if (rc == 0 && has_lock) {
        if (h.lock.start_ts != start_ts) {
            if (is_pessimistic_lock) {
                rc = mvcc_err_set(e, MVCC_E_PESSIMISTIC_LOCK_NOT_FOUND, m->enc_key, none, start_ts,
                                  0, 0);
            } else {
                rc = mvcc_err_set_locked(e, &h.lock, m->enc_key);
                /* Pessimistic txns resolve such locks at once: report a TTL of 0. */
                if (rc == 0 && pessimistic_txn)
                    e->lock.lock.ttl = 0;
            }
        } else if (h.lock.type == TXN_LOCK_PESSIMISTIC) {
            if (!pessimistic_txn) {
                rc = mvcc_err_set(e, MVCC_E_LOCK_TYPE_NOT_MATCH, m->enc_key, none, start_ts, 0, 0);
            } else {
                /* Our own pessimistic lock: overwrite it, keeping a pushed TTL or
                 * min_commit_ts. */
                lock_ttl = TKV_MAX(lock_ttl, h.lock.ttl);
                min_commit_ts = TKV_MAX(min_commit_ts, h.lock.min_commit_ts);
                had_pessimistic_lock = true;
            }
        } else {
            /* Our own prewrite lock: a duplicated command, nothing to do. */
            txn_lock_holder_deinit(&h);
            if (p->one_pc != NULL)
                p->one_pc->own_lock_found = true;
            return 0;
        }
    } else if (rc == 0 && is_pessimistic_lock) {
        rc = amend_pessimistic_lock(r, m, start_ts, e);
        lock_amended = true;
    }
    txn_lock_holder_deinit(&h);
    if (rc != 0 || e->kind != MVCC_OK)
        return rc;

    bool skip_constraint =
        pessimistic_txn ? pessimistic_action != TXN_DO_CONSTRAINT_CHECK : p->skip_constraint_check;
    if (!skip_constraint) {
        rc = check_for_newer_version(r, p, m, start_ts, should_not_exist, e);
        if (rc != 0 || e->kind != MVCC_OK)
            return rc;
    }
    if (!lock_amended && p->assertion_level != TXN_ASSERT_LEVEL_OFF &&
        (!skip_constraint || p->assertion_level == TXN_ASSERT_LEVEL_STRICT)) {
        rc = check_assertion(r, m, start_ts, e);
        if (rc != 0 || e->kind != MVCC_OK)
            return rc;
    }
    if (should_not_write)
        return 0;

    txn_lock lock;
    txn_lock_init(&lock, type, p->primary, start_ts, lock_ttl);
    lock.for_update_ts = p->for_update_ts;
    lock.txn_size = p->txn_size;
    lock.min_commit_ts = min_commit_ts;
    if (type == TXN_LOCK_PUT) {
        if (m->value.len <= TXN_SHORT_VALUE_MAX_LEN) {
            lock.has_short_value = true;
            lock.short_value = m->value;
        } else {
            rc = mvcc_txn_put_value(t, m->enc_key, start_ts, m->value);
            if (rc != 0)
                return rc;
        }
    }
    if (p->one_pc != NULL) {
        txn_1pc_lock *l = &p->one_pc->items[p->one_pc->n++];
        l->enc_key = m->enc_key;
        l->lock = lock;
        l->had_pessimistic_lock = had_pessimistic_lock;
        return 0;
    }
    return mvcc_txn_put_lock(t, m->enc_key, &lock);
}

int txn_committed_record(mvcc_reader *r, tkv_slice enc_key, uint64_t start_ts, bool *committed,
                         uint64_t *commit_ts)
{
    mvcc_commit_record c;
    mvcc_commit_record_init(&c);
    int rc = mvcc_get_txn_commit_record(r, enc_key, start_ts, &c);
    *committed = rc == 0 && c.kind == MVCC_COMMIT_SINGLE && c.write.type != TXN_WRITE_ROLLBACK;
    if (*committed)
        *commit_ts = c.commit_ts;
    mvcc_commit_record_deinit(&c);
    return rc;
}
