/*
 * kv.c: request contexts, region errors, snapshots and iterators of the storage seam (kv.h).
 */
#include "storage/kv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/keys.h"

void stor_ctx_from_pb(stor_ctx *c, const Kvrpcpb__Context *pb)
{
    memset(c, 0, sizeof(*c));
    if (pb == NULL)
        return;
    c->region_id = pb->region_id;
    if (pb->region_epoch != NULL) {
        c->has_epoch = true;
        c->conf_ver = pb->region_epoch->conf_ver;
        c->version = pb->region_epoch->version;
    }
    if (pb->peer != NULL) {
        c->has_peer = true;
        c->peer_id = pb->peer->id;
        c->store_id = pb->peer->store_id;
    }
    c->term = pb->term;
    c->replica_read = pb->replica_read;
    c->stale_read = pb->stale_read;
    c->disk_full_opt = (int)pb->disk_full_opt;
    if (pb->max_execution_duration_ms > 0)
        c->deadline_ms = tkv_clock_mono_ms() + pb->max_execution_duration_ms;
}

/* ---- region errors --------------------------------------------------------------------- */

void stor_rerr_free(Errorpb__Error *e)
{
    if (e != NULL)
        protobuf_c_message_free_unpacked(&e->base, NULL);
}

/* Deep-copies a message built on the stack (with borrowed pointers) into a heap tree that
 * protobuf-c's default allocator owns: pack, then unpack. Region errors are rare, so the
 * round trip costs nothing that matters and keeps every constructor trivially correct. */
static ProtobufCMessage *deep_copy(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t small[512];
    uint8_t *buf = len <= sizeof(small) ? small : malloc(len);
    if (buf == NULL)
        return NULL;
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    if (buf != small)
        free(buf);
    return copy;
}

static Errorpb__Error *finish(Errorpb__Error *e)
{
    return (Errorpb__Error *)deep_copy(&e->base);
}

Errorpb__Error *stor_rerr_not_leader(uint64_t region_id, const Metapb__Peer *leader)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "peer is not leader for region %llu", (unsigned long long)region_id);
    Errorpb__NotLeader nl = ERRORPB__NOT_LEADER__INIT;
    nl.region_id = region_id;
    nl.leader = (Metapb__Peer *)leader;
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    e.message = msg;
    e.not_leader = &nl;
    return finish(&e);
}

Errorpb__Error *stor_rerr_region_not_found(uint64_t region_id)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "region %llu is missing", (unsigned long long)region_id);
    Errorpb__RegionNotFound nf = ERRORPB__REGION_NOT_FOUND__INIT;
    nf.region_id = region_id;
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    e.message = msg;
    e.region_not_found = &nf;
    return finish(&e);
}

Errorpb__Error *stor_rerr_key_not_in_region(tkv_slice key, const Metapb__Region *region)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "key is not in region %llu",
             (unsigned long long)(region ? region->id : 0));
    Errorpb__KeyNotInRegion kr = ERRORPB__KEY_NOT_IN_REGION__INIT;
    kr.key.data = (uint8_t *)key.data;
    kr.key.len = key.len;
    if (region != NULL) {
        kr.region_id = region->id;
        kr.start_key = region->start_key;
        kr.end_key = region->end_key;
    }
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    e.message = msg;
    e.key_not_in_region = &kr;
    return finish(&e);
}

Errorpb__Error *stor_rerr_epoch_not_match(const Metapb__Region *const *regions, size_t n)
{
    Errorpb__EpochNotMatch em = ERRORPB__EPOCH_NOT_MATCH__INIT;
    em.n_current_regions = n;
    em.current_regions = (Metapb__Region **)regions;
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    e.message = "epoch not match";
    e.epoch_not_match = &em;
    return finish(&e);
}

Errorpb__Error *stor_rerr_server_is_busy(const char *reason, uint64_t backoff_ms)
{
    Errorpb__ServerIsBusy sb = ERRORPB__SERVER_IS_BUSY__INIT;
    sb.reason = (char *)(reason ? reason : "");
    sb.backoff_ms = backoff_ms;
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    e.message = "server is busy";
    e.server_is_busy = &sb;
    return finish(&e);
}

Errorpb__Error *stor_rerr_stale_command(void)
{
    Errorpb__StaleCommand sc = ERRORPB__STALE_COMMAND__INIT;
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    e.message = "stale command";
    e.stale_command = &sc;
    return finish(&e);
}

Errorpb__Error *stor_rerr_store_not_match(uint64_t request_store_id, uint64_t actual_store_id)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "store not match: request for store %llu, this is store %llu",
             (unsigned long long)request_store_id, (unsigned long long)actual_store_id);
    Errorpb__StoreNotMatch sm = ERRORPB__STORE_NOT_MATCH__INIT;
    sm.request_store_id = request_store_id;
    sm.actual_store_id = actual_store_id;
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    e.message = msg;
    e.store_not_match = &sm;
    return finish(&e);
}

Errorpb__Error *stor_rerr_raft_entry_too_large(uint64_t region_id, uint64_t entry_size)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "raft entry of %llu bytes is too large for region %llu",
             (unsigned long long)entry_size, (unsigned long long)region_id);
    Errorpb__RaftEntryTooLarge tl = ERRORPB__RAFT_ENTRY_TOO_LARGE__INIT;
    tl.region_id = region_id;
    tl.entry_size = entry_size;
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    e.message = msg;
    e.raft_entry_too_large = &tl;
    return finish(&e);
}

Errorpb__Error *stor_rerr_disk_full(uint64_t store_id, const char *reason)
{
    Errorpb__DiskFull df = ERRORPB__DISK_FULL__INIT;
    df.n_store_id = 1;
    df.store_id = &store_id;
    df.reason = (char *)(reason ? reason : "");
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    e.message = "disk full";
    e.disk_full = &df;
    return finish(&e);
}

Errorpb__Error *stor_rerr_message(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    e.message = msg;
    return finish(&e);
}

Metapb__Region *stor_region_dup(const Metapb__Region *r)
{
    return (Metapb__Region *)deep_copy(&r->base);
}

/* ---- snapshots ------------------------------------------------------------------------- */

int stor_snap_new(eng_snap *eng, const Metapb__Region *region, stor_snap **out)
{
    stor_snap *s = tkv_calloc(1, sizeof(*s));
    Metapb__Region *copy = stor_region_dup(region);
    if (s == NULL || copy == NULL) {
        tkv_free(s);
        if (copy != NULL)
            protobuf_c_message_free_unpacked(&copy->base, NULL);
        eng_snap_close(eng);
        return -ENOMEM;
    }
    s->eng = eng;
    s->region = copy;
    *out = s;
    return 0;
}

void stor_snap_release(stor_snap *s)
{
    if (s == NULL)
        return;
    if (s->on_release != NULL)
        s->on_release(s, s->release_arg);
    eng_snap_close(s->eng);
    protobuf_c_message_free_unpacked(&s->region->base, NULL);
    tkv_free(s);
}

static tkv_slice bin(ProtobufCBinaryData b)
{
    return tkv_slice_of(b.data, b.len);
}

bool stor_snap_key_in_region(const stor_snap *s, tkv_slice key)
{
    tkv_slice start = bin(s->region->start_key), end = bin(s->region->end_key);
    if (tkv_slice_cmp(key, start) < 0)
        return false;
    return end.len == 0 || tkv_slice_cmp(key, end) < 0;
}

int stor_snap_get(const stor_snap *s, eng_cf cf, tkv_slice key, tkv_buf *value, bool *found)
{
    uint8_t small[256];
    tkv_buf dk;
    tkv_buf_init(&dk);
    tkv_slice k;
    if (key.len + 1 <= sizeof(small)) {
        small[0] = TKV_KEYS_DATA_PREFIX;
        if (key.len)
            memcpy(small + 1, key.data, key.len);
        k = tkv_slice_of(small, key.len + 1);
    } else {
        int rc = tkv_keys_data_key(&dk, key);
        if (rc != 0)
            return rc;
        k = tkv_buf_slice(&dk);
    }
    int rc = eng_snap_get(s->eng, cf, k, value, found);
    tkv_buf_deinit(&dk);
    return rc;
}

struct stor_iter {
    eng_iter *it;
    tkv_buf seek; /* scratch for prefixed seek keys */
    int err;      /* -ENOMEM when building a seek key failed */
};

int stor_snap_iter_new(const stor_snap *s, eng_cf cf, tkv_slice lower, tkv_slice upper,
                       stor_iter **out)
{
    tkv_slice rstart = bin(s->region->start_key), rend = bin(s->region->end_key);
    /* Intersect [lower, upper) with the region; empty means unbounded on that side. */
    tkv_slice lo = tkv_slice_cmp(lower, rstart) > 0 ? lower : rstart;
    tkv_slice hi = upper;
    if (hi.len == 0 || (rend.len != 0 && tkv_slice_cmp(rend, hi) < 0))
        hi = rend;
    stor_iter *it = tkv_calloc(1, sizeof(*it));
    if (it == NULL)
        return -ENOMEM;
    tkv_buf_init(&it->seek);
    tkv_buf lb, ub;
    tkv_buf_init(&lb);
    tkv_buf_init(&ub);
    int rc = tkv_keys_data_bound(&lb, lo, false);
    if (rc == 0)
        rc = tkv_keys_data_bound(&ub, hi, true);
    if (rc == 0)
        rc = eng_snap_iter_new(s->eng, cf, tkv_buf_slice(&lb), tkv_buf_slice(&ub), &it->it);
    tkv_buf_deinit(&lb);
    tkv_buf_deinit(&ub);
    if (rc != 0) {
        tkv_free(it);
        return rc;
    }
    *out = it;
    return 0;
}

/* Builds 'z' + @key in the iterator's scratch buffer; NULL slice data on -ENOMEM. */
static bool prefixed(stor_iter *it, tkv_slice key, tkv_slice *out)
{
    tkv_buf_reset(&it->seek);
    if (tkv_keys_data_key(&it->seek, key) != 0) {
        it->err = -ENOMEM;
        return false;
    }
    *out = tkv_buf_slice(&it->seek);
    return true;
}

bool stor_iter_seek(stor_iter *it, tkv_slice key)
{
    tkv_slice k;
    if (!prefixed(it, key, &k))
        return false;
    return eng_iter_seek(it->it, k);
}

bool stor_iter_seek_for_prev(stor_iter *it, tkv_slice key)
{
    tkv_slice k;
    if (!prefixed(it, key, &k))
        return false;
    return eng_iter_seek_for_prev(it->it, k);
}

bool stor_iter_seek_to_first(stor_iter *it)
{
    return eng_iter_seek_to_first(it->it);
}

bool stor_iter_seek_to_last(stor_iter *it)
{
    return eng_iter_seek_to_last(it->it);
}

bool stor_iter_next(stor_iter *it)
{
    return eng_iter_next(it->it);
}

bool stor_iter_prev(stor_iter *it)
{
    return eng_iter_prev(it->it);
}

bool stor_iter_valid(const stor_iter *it)
{
    return eng_iter_valid(it->it);
}

tkv_slice stor_iter_key(const stor_iter *it)
{
    tkv_slice k = eng_iter_key(it->it);
    return tkv_slice_of(k.data + 1, k.len - 1);
}

tkv_slice stor_iter_value(const stor_iter *it)
{
    return eng_iter_value(it->it);
}

int stor_iter_status(const stor_iter *it)
{
    if (it->err != 0)
        return it->err;
    return eng_iter_status(it->it);
}

void stor_iter_free(stor_iter *it)
{
    if (it == NULL)
        return;
    eng_iter_free(it->it);
    tkv_buf_deinit(&it->seek);
    tkv_free(it);
}

void stor_kv_free(stor_kv *kv)
{
    if (kv == NULL)
        return;
    if (kv->ops->free != NULL)
        kv->ops->free(kv->impl);
    tkv_free(kv);
}
