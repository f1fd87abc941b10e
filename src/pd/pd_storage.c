/*
 * pd_storage.c: PD's own RocksDB (through engine.h), holding everything PD must remember
 * across restarts. Layout, all in the default column family:
 *
 *   m/cluster_id        u64 big-endian: the cluster id, chosen at first start
 *   m/member_id         u64: this member's id
 *   m/cluster           packed metapb.Cluster: present once the cluster is bootstrapped
 *   m/alloc_id          u64: the end of the last persisted ID batch
 *   m/tso               u64: the TSO upper bound (physical milliseconds)
 *   m/gc_safe_point     u64: the GC safe point (UpdateGCSafePoint)
 *   m/config            JSON object: schedule and replication settings changed at run time
 *   m/etcd_revision     u64: the etcd KV subset's revision counter
 *   s/<u64 store id>    packed metapb.Store
 *   r/<u64 region id>   packed pdpb.Region (region meta and its last known leader)
 *   e/<etcd key>        an etcd KV record (pd_etcd.c)
 */
#include <sys/stat.h>

#include "pd/pd_int.h"
#include "rpc/rpc.h"

struct pd_storage {
    eng_db *db;
};

int pd__storage_open(const char *dir, pd_storage **out, char errmsg[TKV_ERRMSG_LEN])
{
    return pd__storage_open_env(dir, NULL, out, errmsg);
}

int pd__storage_open_env(const char *dir, void *rocksdb_env, pd_storage **out,
                         char errmsg[TKV_ERRMSG_LEN])
{
    pd_storage *st = tkv_calloc(1, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    eng_options o;
    eng_options_init(&o);
    o.name = "pd";
    o.block_cache_bytes = 8u << 20;
    o.rocksdb_env = rocksdb_env;
    int rc;
    if (dir == NULL) {
        rc = eng_mem_open(&o, &st->db);
        if (rc != 0 && errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "open in-memory pd storage: %s", tkv_strerror(rc));
    } else {
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            rc = -errno;
            if (errmsg != NULL)
                snprintf(errmsg, TKV_ERRMSG_LEN, "create data dir %s: %s", dir, strerror(errno));
            tkv_free(st);
            return rc;
        }
        char path[4096];
        snprintf(path, sizeof(path), "%s/db", dir);
        char err[TKV_ERRMSG_LEN];
        rc = eng_rocks_open(path, &o, &st->db, err);
        if (rc != 0 && errmsg != NULL)
            snprintf(errmsg, TKV_ERRMSG_LEN, "open pd storage: %.200s", err);
    }
    if (rc != 0) {
        tkv_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void pd__storage_close(pd_storage *st)
{
    if (st == NULL)
        return;
    eng_close(st->db);
    tkv_free(st);
}

const char *pd__storage_errmsg(const pd_storage *st)
{
    return eng_errmsg(st->db);
}

int pd__storage_get(pd_storage *st, tkv_slice key, tkv_buf *val, bool *found)
{
    return eng_get(st->db, ENG_CF_DEFAULT, key, val, found);
}

int pd__storage_get_u64(pd_storage *st, const char *key, uint64_t *v, bool *found)
{
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = eng_get(st->db, ENG_CF_DEFAULT, tkv_slice_str(key), &b, found);
    if (rc == 0 && *found) {
        if (b.len != 8)
            rc = TKV_ECORRUPT;
        else
            *v = tkv_codec_get_u64_be(b.data);
    }
    tkv_buf_deinit(&b);
    return rc;
}

/* Writes one put (or delete when @val is NULL) as its own batch. */
static int write_one(pd_storage *st, tkv_slice key, const tkv_slice *val, bool sync)
{
    eng_batch *b;
    int rc = eng_batch_new(st->db, &b);
    if (rc != 0)
        return rc;
    rc = val != NULL ? eng_batch_put(b, ENG_CF_DEFAULT, key, *val)
                     : eng_batch_delete(b, ENG_CF_DEFAULT, key);
    if (rc == 0)
        rc = eng_write(st->db, b, sync);
    eng_batch_free(b);
    return rc;
}

int pd__storage_put(pd_storage *st, tkv_slice key, tkv_slice val, bool sync)
{
    return write_one(st, key, &val, sync);
}

int pd__storage_delete(pd_storage *st, tkv_slice key, bool sync)
{
    return write_one(st, key, NULL, sync);
}

int pd__storage_put_u64(pd_storage *st, const char *key, uint64_t v, bool sync)
{
    uint8_t b[8];
    tkv_codec_put_u64_be(b, v);
    tkv_slice val = tkv_slice_of(b, 8);
    return write_one(st, tkv_slice_str(key), &val, sync);
}

int pd__storage_put_msg(pd_storage *st, tkv_slice key, const ProtobufCMessage *m, bool sync)
{
    tkv_buf b;
    tkv_buf_init(&b);
    int rc = rpc_msg_pack(m, &b);
    if (rc == 0)
        rc = write_one(st, key, &(tkv_slice){b.data, b.len}, sync);
    tkv_buf_deinit(&b);
    return rc;
}

int pd__storage_scan(pd_storage *st, tkv_slice start, tkv_slice end, pd_scan_fn fn, void *ud)
{
    eng_iter *it;
    int rc = eng_iter_new(st->db, ENG_CF_DEFAULT, start, end, &it);
    if (rc != 0)
        return rc;
    for (bool ok = eng_iter_seek_to_first(it); ok; ok = eng_iter_next(it)) {
        rc = fn(ud, eng_iter_key(it), eng_iter_value(it));
        if (rc != 0)
            break;
    }
    if (rc == 0)
        rc = eng_iter_status(it);
    eng_iter_free(it);
    return rc;
}

int pd__storage_batch_new(pd_storage *st, eng_batch **out)
{
    return eng_batch_new(st->db, out);
}

int pd__storage_write(pd_storage *st, eng_batch *b, bool sync)
{
    return eng_write(st->db, b, sync);
}

tkv_slice pd__key_id(uint8_t out[PD_KEY_ID_LEN], char prefix, uint64_t id)
{
    out[0] = (uint8_t)prefix;
    out[1] = '/';
    tkv_codec_put_u64_be(out + 2, id);
    return tkv_slice_of(out, PD_KEY_ID_LEN);
}
