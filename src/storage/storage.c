/*
 * storage.c: the storage instance and its method tables (see storage.h).
 */
#include "storage/storage_int.h"

void stor_opts_init(stor_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->latch_slots = 2048000;
    o->max_key_bytes = 8 * 1024;
    o->max_value_bytes = 8 * 1024 * 1024;
    o->max_batch_keys = 100000;
    o->max_scan_limit = 100000;
}

int stor_new(stor_kv *kv, const stor_opts *o, stor **out)
{
    if (kv == NULL || out == NULL)
        return -EINVAL;
    stor *s = tkv_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->kv = kv;
    if (o != NULL)
        s->opts = *o;
    else
        stor_opts_init(&s->opts);
    int rc = stor_latches_new(s->opts.latch_slots ? s->opts.latch_slots : 4096, &s->latches);
    if (rc == 0) {
        rc = stor__txn_init(s);
        if (rc != 0)
            stor_latches_free(s->latches);
    }
    if (rc != 0) {
        tkv_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void stor_free(stor *s)
{
    if (s == NULL)
        return;
    stor__txn_deinit(s);
    stor_latches_free(s->latches);
    tkv_free(s);
}

stor_kv *stor_get_kv(stor *s)
{
    return s->kv;
}

stor_latches *stor_get_latches(stor *s)
{
    return s->latches;
}

void stor_set_destroy_range(stor *s, stor_destroy_range_fn fn, void *arg)
{
    s->destroy_range = fn;
    s->destroy_range_arg = arg;
}

const stor_opts *stor_get_opts(const stor *s)
{
    return &s->opts;
}

static const stor_method *const tables[] = {stor_raw_methods, stor_txn_methods};

const stor_method *stor_method_find(const char *name)
{
    for (size_t t = 0; t < TKV_ARRAY_LEN(tables); t++) {
        for (const stor_method *m = tables[t]; m->name != NULL; m++) {
            if (strcmp(m->name, name) == 0)
                return m;
        }
    }
    return NULL;
}

const stor_method *stor_method_find_batch(int batch_cmd)
{
    if (batch_cmd <= 0)
        return NULL;
    for (size_t t = 0; t < TKV_ARRAY_LEN(tables); t++) {
        for (const stor_method *m = tables[t]; m->name != NULL; m++) {
            if (m->batch_cmd == batch_cmd)
                return m;
        }
    }
    return NULL;
}
