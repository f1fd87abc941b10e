/*
 * sec_audit_cli.c: the `audit verify FILE [--key-file PATH]` command shared by tikv-ctl and
 * tikv-audit (see audit.h).
 */
#include <stdio.h>
#include <string.h>

#include "security/audit.h"
#include "security/encryption.h"

int sec_audit_verify_cmd(int argc, char **argv, const char *prog)
{
    if (argc < 2 || strcmp(argv[0], "verify") != 0) {
        fprintf(stderr, "usage: %s audit verify FILE [--key-file PATH]\n", prog);
        return 2;
    }
    const char *file = argv[1];
    const char *key_file = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc) {
            key_file = argv[++i];
        } else {
            fprintf(stderr, "%s: audit verify: unexpected argument '%s'\n", prog, argv[i]);
            return 2;
        }
    }
    uint8_t key[32];
    char err[TKV_ERRMSG_LEN];
    if (key_file != NULL && sec_master_key_load(key_file, key, err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
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
