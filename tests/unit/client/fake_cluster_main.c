/*
 * fake_cluster_main.c: build/bin/fake-cluster, a fake PD and three fake stores (one region)
 * on 127.0.0.1 for tests that drive real programs (tikv-ctl, the libtikvc examples): prints
 * the PD address on its first line, then serves until its standard input closes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit/client/client_fixture.h"

int main(void)
{
    static fx f;
    fx_start_cluster(&f, 3, false, NULL, 0);
    printf("%s\n", f.pd.addr[0]);
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof(buf)) > 0) {
    }
    fx_stop(&f);
    return 0;
}
