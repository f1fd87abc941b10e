/*
 * apply_exec.c: executing one committed entry on the apply thread (TiKV's ApplyDelegate):
 * data writes (Put, Delete, DeleteRange) with the region epoch and key range checked at
 * apply time, membership changes (ChangePeer), splits (BatchSplit) and log compaction
 * (CompactLog). Writes go into the round's batch under a save point, so a command that
 * fails a check writes nothing. Admin commands make the round's write synced.
 */
#include <stdlib.h>

#include "base/keys.h"
#include "base/log.h"
#include "raftstore/rstore_int.h"

static int cf_from_name(const char *name, eng_cf *cf)
{
    if (name == NULL || name[0] == '\0' || strcmp(name, "default") == 0)
        *cf = ENG_CF_DEFAULT;
    else if (strcmp(name, "lock") == 0)
        *cf = ENG_CF_LOCK;
    else if (strcmp(name, "write") == 0)
        *cf = ENG_CF_WRITE;
    else
        return -EINVAL;
    return 0;
}

static tkv_slice bslice(ProtobufCBinaryData b)
{
    return tkv_slice_of(b.data, b.len);
}

static Errorpb__Error *epoch_error(const Metapb__Region *region)
{
    return stor_rerr_epoch_not_match(&region, 1);
}

/* ---- data writes -------------------------------------------------------------------- */

/* Queues a compaction of the range in a->kbuf..a->kbuf2 of @cf for after the round's write:
 * a range tombstone frees no space until compaction drops what it covers, and freeing space
 * is what a delete range on a full disk is for (TiKV compacts deleted ranges too). A command
 * rolled back later still compacts its range, which changes no data. */
static void queue_compaction(rstore_apply *a, uint64_t region_id, eng_cf cf)
{
    rstore_task *t = rstore__task_new(RSTORE_TASK_COMPACT_RANGE, region_id);
    t->a = a->kbuf.len;
    t->b = (uint64_t)cf;
    if (tkv_buf_append(&t->buf, a->kbuf.data, a->kbuf.len) != 0 ||
        tkv_buf_append(&t->buf, a->kbuf2.data, a->kbuf2.len) != 0) {
        rstore__task_free(t); /* out of memory: the range is compacted later by RocksDB */
        return;
    }
    t->next = a->compacts;
    a->compacts = t;
}

/* Adds one request to the batch. Returns a region error, or NULL with *@rc set. */
static Errorpb__Error *exec_request(rstore_apply *a, rstore_apply_delegate *d,
                                    const RaftCmdpb__Request *r, int *rc, uint64_t *bytes)
{
    const Metapb__Region *region = d->region;
    eng_cf cf;
    *rc = 0;
    switch (r->cmd_type) {
    case RAFT_CMDPB__CMD_TYPE__Put: {
        if (r->put == NULL || cf_from_name(r->put->cf, &cf) != 0) {
            *rc = -EINVAL;
            return NULL;
        }
        tkv_slice key = bslice(r->put->key);
        if (!rstore__key_in_region(region, key))
            return stor_rerr_key_not_in_region(key, region);
        tkv_buf_reset(&a->kbuf);
        *rc = tkv_keys_data_key(&a->kbuf, key);
        if (*rc == 0)
            *rc = eng_batch_put(a->wb, cf, tkv_buf_slice(&a->kbuf), bslice(r->put->value));
        *bytes += key.len + r->put->value.len;
        return NULL;
    }
    case RAFT_CMDPB__CMD_TYPE__Delete: {
        if (r->delete_ == NULL || cf_from_name(r->delete_->cf, &cf) != 0) {
            *rc = -EINVAL;
            return NULL;
        }
        tkv_slice key = bslice(r->delete_->key);
        if (!rstore__key_in_region(region, key))
            return stor_rerr_key_not_in_region(key, region);
        tkv_buf_reset(&a->kbuf);
        *rc = tkv_keys_data_key(&a->kbuf, key);
        if (*rc == 0)
            *rc = eng_batch_delete(a->wb, cf, tkv_buf_slice(&a->kbuf));
        *bytes += key.len;
        return NULL;
    }
    case RAFT_CMDPB__CMD_TYPE__DeleteRange: {
        const RaftCmdpb__DeleteRangeRequest *dr = r->delete_range;
        if (dr == NULL || cf_from_name(dr->cf, &cf) != 0) {
            *rc = -EINVAL;
            return NULL;
        }
        tkv_slice start = bslice(dr->start_key), end = bslice(dr->end_key);
        tkv_slice rend = bslice(region->end_key);
        if (!rstore__key_in_region(region, start))
            return stor_rerr_key_not_in_region(start, region);
        /* An empty end means the end of the region; an end past it is clamped. */
        if (end.len == 0 || (rend.len && tkv_slice_cmp(end, rend) > 0))
            end = rend;
        tkv_buf_reset(&a->kbuf);
        tkv_buf_reset(&a->kbuf2);
        *rc = tkv_keys_data_key(&a->kbuf, start);
        if (*rc == 0)
            *rc = tkv_keys_data_bound(&a->kbuf2, end, true);
        if (*rc == 0 && tkv_slice_cmp(tkv_buf_slice(&a->kbuf), tkv_buf_slice(&a->kbuf2)) < 0) {
            *rc = eng_batch_delete_range(a->wb, cf, tkv_buf_slice(&a->kbuf),
                                         tkv_buf_slice(&a->kbuf2));
            if (*rc == 0)
                queue_compaction(a, d->region_id, cf);
        }
        return NULL;
    }
    default:
        *rc = -EINVAL;
        return NULL;
    }
}

static void exec_write(rstore_apply *a, rstore_apply_delegate *d,
                       const RaftCmdpb__RaftCmdRequest *req, rstore_cb *cb)
{
    const RaftCmdpb__RaftRequestHeader *h = req->header;
    if (h->region_epoch && h->region_epoch->version != d->region->region_epoch->version) {
        rstore__apply_defer_cb(a, cb, epoch_error(d->region));
        return;
    }
    if (eng_batch_set_save_point(a->wb) != 0) {
        TKV_LOG_FATAL("out of memory in the apply batch");
        abort();
    }
    Errorpb__Error *err = NULL;
    int rc = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < req->n_requests && err == NULL && rc == 0; i++)
        err = exec_request(a, d, req->requests[i], &rc, &bytes);
    if (err != NULL || rc != 0) {
        TKV_IGNORE(eng_batch_rollback_to_save_point(a->wb));
        if (rc == -ENOMEM) {
            TKV_LOG_FATAL("out of memory in the apply batch");
            abort();
        }
        if (err == NULL)
            err = stor_rerr_message("invalid raft command: %s", tkv_strerror(rc));
        rstore__apply_defer_cb(a, cb, err);
        return;
    }
    TKV_IGNORE(eng_batch_pop_save_point(a->wb));
    d->written_bytes += bytes;
    d->written_keys += req->n_requests;
    rstore__apply_defer_cb(a, cb, NULL);
}

/* ---- membership --------------------------------------------------------------------- */

static void conf_change_result(rstore_apply_delegate *d, const raft_conf_change *cc, bool ok)
{
    rstore_exec_result res = {.type = RSTORE_EXEC_CONF_CHANGE};
    res.cc = *cc;
    res.cc.context = tkv_slice_of(NULL, 0);
    res.change_ok = ok;
    res.region = ok ? rstore__region_dup(d->region) : NULL;
    rstore__apply_add_result(d, &res);
}

/* Decodes a conf change entry: the raft change into @cc and its RaftCmdRequest context into
 * *@req (owned; NULL on failure). Returns the ChangePeer request, or NULL with *@why set. */
static const RaftCmdpb__ChangePeerRequest *decode_change(const raft_entry *e, raft_conf_change *cc,
                                                         RaftCmdpb__RaftCmdRequest **req,
                                                         const char **why)
{
    *req = NULL;
    if (raft_conf_change_decode(tkv_slice_of(e->data, e->data_len), cc) != 0) {
        memset(cc, 0, sizeof(*cc));
        *why = "conf change does not decode";
        return NULL;
    }
    RaftCmdpb__RaftCmdRequest *r =
        raft_cmdpb__raft_cmd_request__unpack(NULL, cc->context.len, cc->context.data);
    *req = r;
    if (r == NULL || r->header == NULL || r->admin_request == NULL ||
        r->admin_request->change_peer == NULL || r->admin_request->change_peer->peer == NULL) {
        *why = "conf change command does not decode";
        return NULL;
    }
    return r->admin_request->change_peer;
}

static void exec_conf_change(rstore_apply *a, rstore_apply_delegate *d, const raft_entry *e,
                             rstore_cb *cb)
{
    raft_conf_change cc;
    RaftCmdpb__RaftCmdRequest *req = NULL;
    const char *why = NULL;
    const RaftCmdpb__ChangePeerRequest *cp = decode_change(e, &cc, &req, &why);
    const Metapb__Region *region = d->region;
    uint64_t conf_ver = region->region_epoch->conf_ver;
    uint64_t version = region->region_epoch->version;
    if (cp && req->header->region_epoch && req->header->region_epoch->conf_ver != conf_ver)
        why = "stale epoch";
    if (cp && !why && cp->peer->id != cc.node_id)
        why = "peer does not match the raft change";
    /* Build the new member list. */
    Metapb__Peer **peers = tkv_xcalloc(region->n_peers + 1, sizeof(Metapb__Peer *));
    Metapb__Peer added = METAPB__PEER__INIT;
    Metapb__Peer promoted = METAPB__PEER__INIT;
    size_t n = 0;
    bool found = false;
    for (size_t i = 0; !why && i < region->n_peers; i++) {
        Metapb__Peer *p = region->peers[i];
        if (p->id != cc.node_id) {
            peers[n++] = p;
            continue;
        }
        found = true;
        if (cc.change_type == RAFT_CONF_REMOVE_NODE)
            continue;
        if (cc.change_type == RAFT_CONF_ADD_NODE && p->role == METAPB__PEER_ROLE__Learner) {
            promoted = *p;
            promoted.role = METAPB__PEER_ROLE__Voter;
            peers[n++] = &promoted;
        } else {
            why = "peer already a member";
        }
    }
    if (!why && !found) {
        if (cc.change_type == RAFT_CONF_REMOVE_NODE) {
            why = "peer is not a member";
        } else if (rstore__region_store_peer(region, cp->peer->store_id)) {
            why = "store already has a peer of the region";
        } else {
            added.id = cp->peer->id;
            added.store_id = cp->peer->store_id;
            added.role = cc.change_type == RAFT_CONF_ADD_LEARNER_NODE ? METAPB__PEER_ROLE__Learner
                                                                      : METAPB__PEER_ROLE__Voter;
            peers[n++] = &added;
        }
    }
    if (why) {
        TKV_LOG_WARN("conf change rejected at apply", TKV_LF_U64("region_id", d->region_id),
                     TKV_LF_U64("index", e->index), TKV_LF_STR("why", why));
        conf_change_result(d, &cc, false);
        rstore__apply_defer_cb(a, cb, stor_rerr_message("conf change rejected: %s", why));
    } else {
        Metapb__Region *nr =
            rstore__region_with(region, peers, n, conf_ver + 1, version, bslice(region->start_key),
                                bslice(region->end_key), region->id);
        rstore__reader_invalidate_region(a->store, d->region_id);
        rstore__region_free(d->region);
        d->region = nr;
        if (rstore__put_region_state(a->wb, nr, RAFT_SERVERPB__PEER_STATE__Normal) != 0) {
            TKV_LOG_FATAL("out of memory in the apply batch");
            abort();
        }
        a->wb_sync = true;
        if (cc.change_type == RAFT_CONF_REMOVE_NODE && cc.node_id == d->peer_id)
            d->removed = true;
        conf_change_result(d, &cc, true);
        rstore__apply_defer_cb(a, cb, NULL);
    }
    tkv_free(peers);
    if (req)
        protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* ---- split -------------------------------------------------------------------------- */

static Errorpb__Error *check_split(const rstore_apply_delegate *d,
                                   const RaftCmdpb__BatchSplitRequest *bs)
{
    const Metapb__Region *region = d->region;
    if (bs == NULL || bs->n_requests == 0)
        return stor_rerr_message("empty split");
    for (size_t i = 0; i < bs->n_requests; i++) {
        const RaftCmdpb__SplitRequest *r = bs->requests[i];
        tkv_slice k = bslice(r->split_key);
        if (!rstore__key_in_region(region, k) || k.len == 0 ||
            tkv_slice_eq(k, bslice(region->start_key)))
            return stor_rerr_key_not_in_region(k, region);
        if (i > 0 && tkv_slice_cmp(bslice(bs->requests[i - 1]->split_key), k) >= 0)
            return stor_rerr_message("split keys are not in ascending order");
        if (r->n_new_peer_ids != region->n_peers || r->new_region_id == 0)
            return stor_rerr_message("split ids do not match the region's peers");
    }
    return NULL;
}

/* Returns whether region @id already has a replica here that is newer than the split would
 * make it (created by a snapshot before this store applied the split). */
static bool region_exists_here(rstore_apply *a, uint64_t id)
{
    if (rstore__apply_delegate_get(a, id))
        return true;
    Metapb__Region *r = NULL;
    int state;
    bool found;
    int rc = rstore__get_region_state(a->store->opts.kv, id, &r, &state, &found);
    bool exists =
        rc != 0 ||
        (found && (state == RAFT_SERVERPB__PEER_STATE__Tombstone || (r && r->n_peers > 0)));
    rstore__region_free(r);
    return exists;
}

static void exec_batch_split(rstore_apply *a, rstore_apply_delegate *d,
                             const RaftCmdpb__RaftCmdRequest *req, rstore_cb *cb)
{
    rstore *s = a->store;
    const Metapb__Region *region = d->region;
    const RaftCmdpb__BatchSplitRequest *bs = req->admin_request->splits;
    const Metapb__RegionEpoch *ep = req->header->region_epoch;
    Errorpb__Error *err = NULL;
    if (ep && (ep->version != region->region_epoch->version ||
               ep->conf_ver != region->region_epoch->conf_ver))
        err = epoch_error(region);
    if (err == NULL)
        err = check_split(d, bs);
    if (err != NULL) {
        rstore__apply_defer_cb(a, cb, err);
        return;
    }
    size_t n = bs->n_requests;
    uint64_t version = region->region_epoch->version + n;
    uint64_t conf_ver = region->region_epoch->conf_ver;
    Metapb__Region **out = tkv_xcalloc(n + 1, sizeof(Metapb__Region *));
    Metapb__Peer *peer_buf = tkv_xcalloc(region->n_peers, sizeof(*peer_buf));
    Metapb__Peer **peer_ptrs = tkv_xcalloc(region->n_peers, sizeof(Metapb__Peer *));
    tkv_slice prev = bslice(region->start_key);
    /* right_derive: new regions on the left, the parent keeps the rightmost range. */
    size_t first_new = bs->right_derive ? 0 : 1;
    for (size_t i = 0; i < n; i++) {
        const RaftCmdpb__SplitRequest *r = bs->requests[i];
        tkv_slice start, end;
        if (bs->right_derive) {
            start = i == 0 ? bslice(region->start_key) : bslice(bs->requests[i - 1]->split_key);
            end = bslice(r->split_key);
        } else {
            start = bslice(r->split_key);
            end = i + 1 < n ? bslice(bs->requests[i + 1]->split_key) : bslice(region->end_key);
        }
        for (size_t j = 0; j < region->n_peers; j++) {
            peer_buf[j] = *region->peers[j];
            peer_buf[j].id = r->new_peer_ids[j];
            peer_ptrs[j] = &peer_buf[j];
        }
        out[first_new + i] = rstore__region_with(region, peer_ptrs, region->n_peers, conf_ver,
                                                 version, start, end, r->new_region_id);
    }
    tkv_slice dstart, dend;
    if (bs->right_derive) {
        dstart = bslice(bs->requests[n - 1]->split_key);
        dend = bslice(region->end_key);
    } else {
        dstart = prev;
        dend = bslice(bs->requests[0]->split_key);
    }
    Metapb__Region *derived = rstore__region_with(region, region->peers, region->n_peers, conf_ver,
                                                  version, dstart, dend, region->id);
    out[bs->right_derive ? n : 0] = derived;
    tkv_free(peer_buf);
    tkv_free(peer_ptrs);
    int rc = 0;
    for (size_t i = 0; i <= n && rc == 0; i++) {
        Metapb__Region *r = out[i];
        if (r->id == region->id) {
            rc = rstore__put_region_state(a->wb, r, RAFT_SERVERPB__PEER_STATE__Normal);
            continue;
        }
        if (region_exists_here(a, r->id)) {
            TKV_LOG_INFO("split region already exists here", TKV_LF_U64("region_id", r->id));
            continue;
        }
        rc = rstore__write_initial_states(a->wb, NULL, r);
        if (rc != 0)
            break;
        const Metapb__Peer *mine = rstore__region_store_peer(r, s->store_id);
        rstore_apply_state st = {
            .applied_index = RSTORE_INIT_LOG_INDEX,
            .truncated_index = RSTORE_INIT_LOG_INDEX,
            .truncated_term = RSTORE_INIT_LOG_TERM,
            .commit_index = RSTORE_INIT_LOG_INDEX,
            .commit_term = RSTORE_INIT_LOG_TERM,
        };
        if (mine) {
            rstore_apply_delegate *nd = rstore__apply_delegate_add(a, r, mine->id, &st);
            nd->applied_term = RSTORE_INIT_LOG_TERM;
        }
    }
    if (rc != 0) {
        TKV_LOG_FATAL("split batch failed", TKV_LF_ERR("err", rc));
        abort();
    }
    a->wb_sync = true;
    /* The range shrinks now: no lease read may serve the old range any more. */
    rstore__reader_invalidate_region(s, d->region_id);
    rstore__region_free(d->region);
    d->region = rstore__region_dup(derived);
    rstore_exec_result res = {.type = RSTORE_EXEC_SPLIT};
    res.regions = out;
    res.n_regions = n + 1;
    if (cb->kind == RSTORE_CB_SPLIT) {
        cb->regions = tkv_xcalloc(n + 1, sizeof(Metapb__Region *));
        for (size_t i = 0; i <= n; i++)
            cb->regions[i] = rstore__region_dup(out[i]);
        cb->n_regions = n + 1;
    }
    rstore__apply_add_result(d, &res);
    rstore__apply_defer_cb(a, cb, NULL);
}

/* ---- admin -------------------------------------------------------------------------- */

static void exec_compact_log(rstore_apply *a, rstore_apply_delegate *d,
                             const RaftCmdpb__CompactLogRequest *cl, rstore_cb *cb)
{
    if (cl == NULL) {
        rstore__apply_defer_cb(a, cb, stor_rerr_message("compact log without a request"));
        return;
    }
    /* The entry itself is not applied yet: compact at most to what was applied before it. */
    if (cl->compact_index <= d->st.truncated_index || cl->compact_index > d->st.applied_index) {
        rstore__apply_defer_cb(a, cb, NULL);
        return;
    }
    d->st.truncated_index = cl->compact_index;
    d->st.truncated_term = cl->compact_term;
    /* Synced: the log is dropped only once everything it held is durable in the kv engine. */
    a->wb_sync = true;
    rstore_exec_result res = {.type = RSTORE_EXEC_COMPACT_LOG};
    res.index = cl->compact_index;
    res.term = cl->compact_term;
    rstore__apply_add_result(d, &res);
    rstore__apply_defer_cb(a, cb, NULL);
}

static void exec_admin(rstore_apply *a, rstore_apply_delegate *d,
                       const RaftCmdpb__RaftCmdRequest *req, rstore_cb *cb)
{
    const RaftCmdpb__AdminRequest *admin = req->admin_request;
    switch (admin->cmd_type) {
    case RAFT_CMDPB__ADMIN_CMD_TYPE__CompactLog:
        exec_compact_log(a, d, admin->compact_log, cb);
        return;
    case RAFT_CMDPB__ADMIN_CMD_TYPE__BatchSplit:
        exec_batch_split(a, d, req, cb);
        return;
    default:
        rstore__apply_defer_cb(
            a, cb, stor_rerr_message("unsupported admin command %d", (int)admin->cmd_type));
        return;
    }
}

void rstore__apply_entry(rstore_apply *a, rstore_apply_delegate *d, const raft_entry *e,
                         rstore_cb *cb)
{
    if (e->entry_type == RAFT_ENTRY_CONF_CHANGE) {
        exec_conf_change(a, d, e, cb);
        return;
    }
    if (e->data_len == 0) {
        /* A new leader's empty entry. */
        rstore__apply_defer_cb(a, cb, NULL);
        return;
    }
    RaftCmdpb__RaftCmdRequest *req =
        raft_cmdpb__raft_cmd_request__unpack(NULL, e->data_len, e->data);
    if (req == NULL || req->header == NULL) {
        TKV_LOG_ERROR("raft command does not decode", TKV_LF_U64("region_id", d->region_id),
                      TKV_LF_U64("index", e->index));
        rstore__apply_defer_cb(a, cb, stor_rerr_message("raft command does not decode"));
        if (req)
            protobuf_c_message_free_unpacked(&req->base, NULL);
        return;
    }
    if (req->admin_request)
        exec_admin(a, d, req, cb);
    else
        exec_write(a, d, req, cb);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}
