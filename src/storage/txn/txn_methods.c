/*
 * txn_methods.c: the transactional method table and state (issue 7 fills them).
 */
#include "storage/storage_int.h"

const stor_method stor_txn_methods[] = {
    {.name = NULL},
};

int stor__txn_init(stor *s)
{
    s->txn = NULL; /* no transactional state yet */
    return 0;
}

void stor__txn_deinit(stor *s)
{
    (void)s;
}
