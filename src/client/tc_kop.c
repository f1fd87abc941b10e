/*
 * tc_kop.c: key-set operations: a command over a set of keys (one key for point calls),
 * grouped by region into tasks, each re-grouped from the region cache when its region
 * changed under it. Raw reads and writes and the transactional commands (prewrite, commit,
 * rollback, resolve lock, check txn status, point and batch get) are all key-set operations
 * with their own build and handle functions (tc_kop_cmd).
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "client/tc_int.h"

/* Item key/value storage: copies live in the op's arena; since the arena may move while
 * items are set, a copied item keeps offsets until the op starts. */
#define COPIED_FLAG ((const uint8_t *)1)

static int kop_build(tc_task *t, Kvrpcpb__Context *ctx, tkv_buf *out)
{
    tc_kop *k = (tc_kop *)t->op;
    return k->kc->build(k, t->items, t->n_items, ctx, out);
}

static void kop_handle(tc_task *t, ProtobufCMessage *resp)
{
    tc_kop *k = (tc_kop *)t->op;
    k->kc->handle(k, t, resp);
}

static int route_items(tc_kop *k, const size_t *idx, size_t n, bool may_block);

static int kop_reroute(tc_task *t, bool may_block)
{
    return route_items((tc_kop *)t->op, t->items, t->n_items, may_block);
}

static void kop_start(tc_op *op, bool may_block);

static void kop_free(tc_op *op)
{
    tikvc__kop_free((tc_kop *)op);
}

static const tc_op_vt kop_vt = {.build = kop_build,
                                .handle = kop_handle,
                                .reroute = kop_reroute,
                                .start = kop_start,
                                .free = kop_free};

int tikvc__kop_new(tikvc_client *c, const tc_kop_cmd *kc, tc_cache *cache, size_t n, tc_kop **out)
{
    tc_kop *k = tkv_calloc(1, sizeof(*k));
    if (k == NULL || (k->items = tkv_calloc(n ? n : 1, sizeof(tc_item))) == NULL) {
        tkv_free(k);
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    }
    tikvc__op_init(&k->op, c, &kop_vt, kc->cmd, cache);
    k->kc = kc;
    k->n = n;
    tkv_buf_init(&k->arena);
    for (size_t i = 0; i < n; i++)
        tkv_buf_init(&k->items[i].out);
    *out = k;
    return 0;
}

void tikvc__kop_free(tc_kop *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->n; i++) {
        tkv_buf_deinit(&k->items[i].out);
        if (k->items[i].err != NULL)
            rpc_msg_free(k->items[i].err);
    }
    tkv_free(k->items);
    tkv_buf_deinit(&k->arena);
    tikvc__op_deinit(&k->op);
    tkv_free(k);
}

int tikvc__kop_set(tc_kop *k, size_t i, tkv_slice key, tkv_slice value, bool copy)
{
    tc_item *it = &k->items[i];
    if (!copy) {
        it->key = key;
        it->value = value;
        return 0;
    }
    size_t at = k->arena.len;
    if (tkv_buf_append(&k->arena, key.data, key.len) != 0 ||
        tkv_buf_append(&k->arena, value.data, value.len) != 0)
        return tikvc__fail(TIKVC_ENOMEM, "out of memory");
    /* Offsets for now (data == COPIED_FLAG marks them); pointers at start. */
    it->key = tkv_slice_of(COPIED_FLAG, key.len);
    it->value = tkv_slice_of((const uint8_t *)(uintptr_t)at, value.len);
    return 0;
}

static void fix_copies(tc_kop *k)
{
    for (size_t i = 0; i < k->n; i++) {
        tc_item *it = &k->items[i];
        if (it->key.data != COPIED_FLAG)
            continue;
        size_t at = (size_t)(uintptr_t)it->value.data;
        it->key.data = k->arena.data + at;
        it->value.data = k->arena.data + at + it->key.len;
    }
}

void tikvc__kop_key_error(tc_kop *k, size_t i, const Kvrpcpb__KeyError *e)
{
    tkv_buf b;
    tkv_buf_init(&b);
    ProtobufCMessage *copy = NULL;
    if (rpc_msg_pack(&e->base, &b) == 0 &&
        rpc_msg_unpack(&kvrpcpb__key_error__descriptor, tkv_buf_slice(&b), &copy) == 0) {
        if (k->items[i].err != NULL)
            rpc_msg_free(k->items[i].err);
        k->items[i].err = copy;
    } else {
        tikvc__op_fail(&k->op, TIKVC_ENOMEM, "out of memory keeping a key error");
    }
    tkv_buf_deinit(&b);
}

/* ---- routing ---------------------------------------------------------------------------- */

static int cmp_items(const void *a, const void *b, void *arg)
{
    const tc_kop *k = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = tkv_slice_cmp(k->items[x].key, k->items[y].key);
    return c != 0 ? c : (x < y ? -1 : x > y);
}

/* Posts the items @idx[0..n) to a worker, which routes them with PD's help. */
static int route_later(tc_kop *k, const size_t *idx, size_t n)
{
    tc_task *t = tikvc__task_new(&k->op, NULL);
    if (t == NULL)
        return TIKVC_ENOMEM;
    t->items = tkv_memdup(idx, n * sizeof(*idx));
    if (t->items == NULL) {
        tikvc__op_fail(&k->op, TIKVC_ENOMEM, "out of memory");
        tikvc__task_end(t);
        return TIKVC_ENOMEM;
    }
    t->n_items = n;
    t->step = TC_STEP_REROUTE;
    tikvc__exec_post(&k->op.c->exec, &t->job, 0);
    return 0;
}

/* Groups the (sorted) items by region and sends a task per group (split further by the
 * command's size limits). */
static int route_items(tc_kop *k, const size_t *idx, size_t n, bool may_block)
{
    size_t i = 0;
    while (i < n) {
        tc_region *r = NULL;
        int rc = tikvc__locate(&k->op, k->items[idx[i]].key, false, may_block, &r);
        if (rc == TC_WOULD_BLOCK)
            return route_later(k, idx + i, n - i);
        if (rc != 0)
            return rc;
        size_t j = i, bytes = 0;
        while (j < n && tikvc__region_contains(r, k->items[idx[j]].key) &&
               (j == i || (j - i < k->kc->max_keys && bytes < k->kc->max_bytes))) {
            bytes += k->items[idx[j]].key.len + k->items[idx[j]].value.len;
            j++;
        }
        tc_task *t = tikvc__task_new(&k->op, r);
        if (t == NULL)
            return TIKVC_ENOMEM;
        t->items = tkv_memdup(idx + i, (j - i) * sizeof(*idx));
        if (t->items == NULL) {
            tikvc__op_fail(&k->op, TIKVC_ENOMEM, "out of memory");
            tikvc__task_end(t);
            return TIKVC_ENOMEM;
        }
        t->n_items = j - i;
        tikvc__task_send(t, may_block);
        i = j;
    }
    return 0;
}

static void kop_start(tc_op *op, bool may_block)
{
    tc_kop *k = (tc_kop *)op;
    fix_copies(k);
    if (k->n == 0) {
        tikvc__op_hold(&k->op);
        tikvc__op_release(&k->op);
        return;
    }
    size_t *idx = tkv_calloc(k->n, sizeof(*idx));
    tikvc__op_hold(&k->op);
    if (idx == NULL) {
        tikvc__op_fail(&k->op, TIKVC_ENOMEM, "out of memory");
    } else {
        for (size_t i = 0; i < k->n; i++)
            idx[i] = i;
        if (k->n > 1)
            qsort_r(idx, k->n, sizeof(*idx), cmp_items, k);
        int rc = route_items(k, idx, k->n, may_block);
        if (rc != 0)
            tikvc__op_fail(&k->op, rc, "%s", tikvc_errmsg());
        tkv_free(idx);
    }
    tikvc__op_release(&k->op);
}

int tikvc__kop_run(tc_kop *k)
{
    return tikvc__op_run(&k->op);
}

int tikvc__kop_pack_keys(tc_kop *k, const ProtobufCMessageDescriptor *desc, const size_t *idx,
                         size_t n, Kvrpcpb__Context *ctx,
                         void (*extra)(tc_kop *k, ProtobufCMessage *m), tkv_buf *out)
{
    ProtobufCBinaryData *keys = tikvc__kop_keys(k, idx, n);
    ProtobufCMessage *m = tkv_calloc(1, desc->sizeof_message);
    int rc = TIKVC_ENOMEM;
    if (keys != NULL && m != NULL) {
        desc->message_init(m);
        const ProtobufCFieldDescriptor *fc =
            protobuf_c_message_descriptor_get_field_by_name(desc, "context");
        const ProtobufCFieldDescriptor *fk =
            protobuf_c_message_descriptor_get_field_by_name(desc, "keys");
        TKV_ASSERT(fc != NULL && fk != NULL && fk->label == PROTOBUF_C_LABEL_REPEATED);
        *(Kvrpcpb__Context **)((char *)m + fc->offset) = ctx;
        *(size_t *)((char *)m + fk->quantifier_offset) = n;
        *(ProtobufCBinaryData **)((char *)m + fk->offset) = keys;
        if (extra != NULL)
            extra(k, m);
        rc = rpc_msg_pack(m, out) == 0 ? 0 : TIKVC_ENOMEM;
    }
    tkv_free(m);
    tkv_free(keys);
    return rc;
}

ProtobufCBinaryData *tikvc__kop_keys(tc_kop *k, const size_t *idx, size_t n)
{
    ProtobufCBinaryData *keys = tkv_calloc(n ? n : 1, sizeof(*keys));
    for (size_t i = 0; keys != NULL && i < n; i++) {
        keys[i].data = (uint8_t *)k->items[idx[i]].key.data;
        keys[i].len = k->items[idx[i]].key.len;
    }
    return keys;
}
