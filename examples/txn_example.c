/*
 * txn_example.c: a money transfer between two accounts in a libtikvc transaction, retried
 * when another transaction wrote the same keys first (TIKVC_ECONFLICT).
 * Usage: txn_example [PD_ADDR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tikvc.h>

/* Reads an integer balance (absent: 0). */
static int balance(tikvc_txn *t, const char *account, long *out)
{
    tikvc_buf v = {0};
    bool found = false;
    char text[32] = "0";
    int rc = tikvc_txn_get(t, account, 1, &v, &found);
    if (rc == TIKVC_OK && found && v.len < sizeof(text)) {
        memcpy(text, v.data, v.len);
        text[v.len] = '\0';
    }
    tikvc_buf_free(&v);
    *out = strtol(text, NULL, 10);
    return rc;
}

static int put_balance(tikvc_txn *t, const char *account, long amount)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld", amount);
    return tikvc_txn_set(t, account, 1, text, (size_t)n);
}

/* Moves @amount from @from to @to in one transaction. */
static int transfer(tikvc_client *c, const char *from, const char *to, long amount)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        tikvc_txn *t;
        int rc = tikvc_txn_begin(c, &t);
        if (rc != TIKVC_OK)
            return rc;
        long a = 0, b = 0;
        if ((rc = balance(t, from, &a)) == TIKVC_OK && (rc = balance(t, to, &b)) == TIKVC_OK &&
            (rc = put_balance(t, from, a - amount)) == TIKVC_OK &&
            (rc = put_balance(t, to, b + amount)) == TIKVC_OK)
            rc = tikvc_txn_commit(t);
        tikvc_txn_free(t);
        if (rc != TIKVC_ECONFLICT)
            return rc;
    }
    return TIKVC_ECONFLICT;
}

int main(int argc, char **argv)
{
    tikvc_client *c;
    if (tikvc_connect(argc > 1 ? argv[1] : "127.0.0.1:2379", &c) != TIKVC_OK) {
        fprintf(stderr, "connect: %s\n", tikvc_errmsg());
        return 1;
    }
    int rc = transfer(c, "A", "B", 10);
    if (rc != TIKVC_OK) {
        fprintf(stderr, "transfer: %s: %s\n", tikvc_strerror(rc), tikvc_errmsg());
        tikvc_close(c);
        return 1;
    }
    /* Read both balances back in a new transaction: they always sum to what they did. */
    tikvc_txn *t;
    long a = 0, b = 0;
    rc = tikvc_txn_begin(c, &t);
    if (rc == TIKVC_OK && (rc = balance(t, "A", &a)) == TIKVC_OK)
        rc = balance(t, "B", &b);
    if (rc == TIKVC_OK)
        printf("transferred 10: A = %ld, B = %ld (start ts %llu)\n", a, b,
               (unsigned long long)tikvc_txn_start_ts(t));
    else
        fprintf(stderr, "read: %s\n", tikvc_errmsg());
    tikvc_txn_free(t);
    tikvc_close(c);
    return rc == TIKVC_OK ? 0 : 1;
}
