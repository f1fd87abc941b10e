/*
 * test_pki.c: test certificates with the openssl CLI (see test_pki.h).
 */
#include "testutil/test_pki.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

void tpki_run(const char *cmd)
{
    /* Tests drive the openssl CLI through the shell on purpose; commands are built from
     * fixed strings and temporary paths. */
    int rc = system(cmd); /* NOLINT(cert-env33-c) */
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

#define TPKI_EC_KEY "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

void tpki_ca(const char *dir, const char *base, const char *cn)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && openssl req -x509 " TPKI_EC_KEY " -keyout %s.key -out %s.pem -days 2 "
             "-subj '/CN=%s' 2>/dev/null",
             dir, base, base, cn);
    tpki_run(cmd);
}

void tpki_cert(const char *dir, const char *ca, const char *base, const char *cn, const char *ext)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && openssl req " TPKI_EC_KEY " -keyout %s.key -out %s.csr -subj '/CN=%s' "
             "2>/dev/null && printf '%%s\\n' '%s' > %s.ext && "
             "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial "
             "-out %s.pem -days 2 -extfile %s.ext 2>/dev/null",
             dir, base, base, cn, ext, base, base, ca, ca, base, base);
    tpki_run(cmd);
}

void tpki_replace(const char *src_dir, const char *src, const char *dst_dir, const char *dst)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cp '%s/%s' '%s/.%s.tmp' && mv '%s/.%s.tmp' '%s/%s'", src_dir, src,
             dst_dir, dst, dst_dir, dst, dst_dir, dst);
    tpki_run(cmd);
}

void tpki_live(const char *dir, const char *live, const char *ca, const char *server)
{
    char cmd[512], name[128];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", live);
    tpki_run(cmd);
    snprintf(name, sizeof(name), "%s.pem", ca);
    tpki_replace(dir, name, live, "ca.pem");
    snprintf(name, sizeof(name), "%s.pem", server);
    tpki_replace(dir, name, live, "server.pem");
    snprintf(name, sizeof(name), "%s.key", server);
    tpki_replace(dir, name, live, "server.key");
}
