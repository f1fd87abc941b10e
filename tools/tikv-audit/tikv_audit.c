/*
 * tikv-audit: checks a tikv-c audit log.
 *
 *   tikv-audit verify FILE [--key-file PATH]
 *
 * Exit status: 0 when the log verifies, 1 when it does not (the first problem is printed),
 * 2 for usage errors. tikv-ctl's `audit verify` subcommand calls the same sec_audit_verify.
 */
#include <stdio.h>
#include <string.h>

#include "security/audit.h"
#include "security/encryption.h"

static int usage(void)
{
    fprintf(stderr, "usage: tikv-audit verify FILE [--key-file PATH]\n"
                    "  --key-file  the chain key (64 hex digits) of a keyed audit log\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "verify") != 0)
        return usage();
    const char *file = argv[2];
    const char *key_file = NULL;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc)
            key_file = argv[++i];
        else
            return usage();
    }
    uint8_t key[32];
    char err[TKV_ERRMSG_LEN];
    if (key_file != NULL && sec_master_key_load(key_file, key, err) != 0) {
        fprintf(stderr, "tikv-audit: %s\n", err);
        return 2;
    }
    sec_audit_report r;
    int rc = sec_audit_verify(file, key_file != NULL ? key : NULL, key_file != NULL ? 32 : 0, &r);
    memset(key, 0, sizeof(key));
    if (rc != 0) {
        if (r.bad_line > 0)
            printf("FAILED: %s (line %llu)\n", r.problem, (unsigned long long)r.bad_line);
        else
            printf("FAILED: %s\n", r.problem[0] != '\0' ? r.problem : tkv_strerror(rc));
        return 1;
    }
    printf("OK: %llu records, %s", (unsigned long long)r.records,
           r.sealed ? "sealed (clean shutdown)" : "not sealed (the writer is running or crashed)");
    if (r.torn_bytes > 0)
        printf(", %zu bytes of a partial last record", r.torn_bytes);
    printf("\n");
    return 0;
}
