/*
 * tikv-audit: checks a tikv-c audit log.
 *
 *   tikv-audit verify FILE [--key-file PATH]
 *
 * Exit status: 0 when the log verifies, 1 when it does not (the first problem is printed),
 * 2 for usage errors. `tikv-ctl audit verify` runs the same command (sec_audit_verify_cmd).
 */
#include "security/audit.h"

int main(int argc, char **argv)
{
    return sec_audit_verify_cmd(argc - 1, argv + 1, "tikv-audit");
}
