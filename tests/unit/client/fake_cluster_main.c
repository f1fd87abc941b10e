/*
 * fake_cluster_main.c: build/bin/fake-cluster, a fake PD and three fake stores (one region)
 * on 127.0.0.1 for tests that drive real programs (tikv-ctl, the libtikvc examples): prints
 * the PD address on its first line, then serves until its standard input closes. With
 * FAKE_TLS_DIR set, every server speaks mutual TLS with server.pem, server.key and ca.pem
 * from that directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit/client/client_fixture.h"

int main(void)
{
    static fx f;
    static char ca[512], cert[512], key[512];
    static rpc_tls tls;
    const char *dir = getenv("FAKE_TLS_DIR");
    if (dir != NULL) {
        snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
        snprintf(cert, sizeof(cert), "%s/server.pem", dir);
        snprintf(key, sizeof(key), "%s/server.key", dir);
        tls = (rpc_tls){ca, cert, key};
        fpd_set_server_tls(&tls);
    }
    fx_start_cluster(&f, 3, false, NULL, 0);
    printf("%s\n", f.pd.addr[0]);
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof(buf)) > 0) {
    }
    fx_stop(&f);
    return 0;
}
