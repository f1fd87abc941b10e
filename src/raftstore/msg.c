/*
 * msg.c: mailbox messages and the callbacks they carry: allocation, release, and answering
 * requests that cannot be served (region gone, store stopping).
 */
#include <stdlib.h>

#include "base/log.h"
#include "raftstore/rstore_int.h"

void rstore__cb_done(rstore_cb *cb, int rc, Errorpb__Error *rerr)
{
    rstore_cb c = *cb;
    cb->kind = RSTORE_CB_NONE;
    switch (c.kind) {
    case RSTORE_CB_WRITE:
        c.fn.write(c.ud, rc, rerr);
        return;
    case RSTORE_CB_SPLIT:
        if (rc == 0 && rerr == NULL)
            c.fn.split(c.ud, 0, NULL, (const Metapb__Region *const *)c.regions, c.n_regions);
        else
            c.fn.split(c.ud, rc, rerr, NULL, 0);
        break;
    case RSTORE_CB_NONE:
        stor_rerr_free(rerr);
        break;
    }
    for (size_t i = 0; i < c.n_regions; i++)
        rstore__region_free(c.regions[i]);
    tkv_free(c.regions);
    cb->regions = NULL;
    cb->n_regions = 0;
}

rstore_msg *rstore__msg_new(rstore_msg_type type, uint64_t region_id)
{
    rstore_msg *m = tkv_xcalloc(1, sizeof(*m));
    m->type = type;
    m->region_id = region_id;
    return m;
}

void rstore__write_req_free(rstore_write_req *w)
{
    if (w == NULL)
        return;
    tkv_buf_deinit(&w->cmd);
    tkv_buf_deinit(&w->min_key);
    tkv_buf_deinit(&w->max_key);
    tkv_buf_deinit(&w->max_end);
    tkv_free(w);
}

static void free_keys(tkv_buf *keys, size_t n)
{
    for (size_t i = 0; keys && i < n; i++)
        tkv_buf_deinit(&keys[i]);
    tkv_free(keys);
}

void rstore__split_check_free(rstore_split_check *c)
{
    if (c == NULL)
        return;
    free_keys(c->split_keys, c->n_split_keys);
    tkv_free(c);
}

void rstore__split_ids_free(rstore_split_ids *s)
{
    if (s == NULL)
        return;
    free_keys(s->keys, s->n_keys);
    tkv_free(s->new_region_ids);
    tkv_free(s->new_peer_ids);
    tkv_free(s);
}

void rstore__split_req_free(rstore_split_req *s)
{
    if (s == NULL)
        return;
    free_keys(s->keys, s->n_keys);
    tkv_free(s);
}

void rstore__exec_result_deinit(rstore_exec_result *e)
{
    rstore__region_free(e->region);
    for (size_t i = 0; i < e->n_regions; i++)
        rstore__region_free(e->regions[i]);
    tkv_free(e->regions);
    memset(e, 0, sizeof(*e));
}

void rstore__apply_res_free(rstore_apply_res *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_results; i++)
        rstore__exec_result_deinit(&r->results[i]);
    tkv_free(r->results);
    tkv_free(r);
}

/* The region error for a request that found no peer: RegionNotFound, or nothing when @rc
 * says why. */
static Errorpb__Error *not_found_error(uint64_t region_id, int rc)
{
    return rc == 0 ? stor_rerr_region_not_found(region_id) : NULL;
}

void rstore__msg_free(rstore_msg *m, int rc)
{
    if (m == NULL)
        return;
    switch (m->type) {
    case RSTORE_MSG_RAFT:
    case RSTORE_MSG_SNAP_RECEIVED:
        if (m->u.raft)
            protobuf_c_message_free_unpacked(&m->u.raft->base, NULL);
        break;
    case RSTORE_MSG_WRITE:
        if (m->u.write) {
            rstore__cb_done(&m->u.write->cb, rc, not_found_error(m->region_id, rc));
            rstore__write_req_free(m->u.write);
        }
        break;
    case RSTORE_MSG_READ:
        if (m->u.read) {
            rstore_read_req *r = m->u.read;
            r->cb(r->ud, rc, not_found_error(m->region_id, rc), NULL);
            tkv_free(r);
        }
        break;
    case RSTORE_MSG_APPLY_RES:
        rstore__apply_res_free(m->u.apply_res);
        break;
    case RSTORE_MSG_SNAP_GEN:
        if (m->u.snap_gen) {
            raft_snapshot_deinit(&m->u.snap_gen->snap);
            tkv_free(m->u.snap_gen);
        }
        break;
    case RSTORE_MSG_SPLIT_CHECK:
        rstore__split_check_free(m->u.split_check);
        break;
    case RSTORE_MSG_SPLIT_IDS:
        if (m->u.split_ids) {
            rstore__cb_done(&m->u.split_ids->cb, rc, not_found_error(m->region_id, rc));
            rstore__split_ids_free(m->u.split_ids);
        }
        break;
    case RSTORE_MSG_SPLIT_REQ:
        if (m->u.split_req) {
            rstore__cb_done(&m->u.split_req->cb, rc, not_found_error(m->region_id, rc));
            rstore__split_req_free(m->u.split_req);
        }
        break;
    case RSTORE_MSG_PD_OP:
        if (m->u.pd_op)
            protobuf_c_message_free_unpacked(&m->u.pd_op->base, NULL);
        break;
    case RSTORE_MSG_QUERY:
        if (m->u.query) {
            rstore_query *q = m->u.query;
            pthread_mutex_lock(&q->mu);
            q->done = true;
            bool last = --q->refs == 0;
            pthread_cond_signal(&q->cv);
            pthread_mutex_unlock(&q->mu);
            if (last) {
                pthread_mutex_destroy(&q->mu);
                pthread_cond_destroy(&q->cv);
                tkv_free(q);
            }
        }
        break;
    default:
        break;
    }
    tkv_free(m);
}
