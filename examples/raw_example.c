/* raw_example.c: libtikvc in ten lines: connect, put, get. Usage: raw_example [PD_ADDR] */
#include <stdio.h>
#include <tikvc.h>

int main(int argc, char **argv)
{
    tikvc_client *c;
    if (tikvc_connect(argc > 1 ? argv[1] : "127.0.0.1:2379", &c) != TIKVC_OK)
        return fprintf(stderr, "connect: %s\n", tikvc_errmsg()), 1;
    tikvc_buf v = {0};
    bool found = false;
    int rc = tikvc_raw_put(c, "hello", 5, "world", 5, 0);
    if (rc == TIKVC_OK)
        rc = tikvc_raw_get(c, "hello", 5, &v, &found);
    printf("%s: hello = %.*s\n", rc ? tikvc_errmsg() : "ok", (int)v.len, (char *)v.data);
    tikvc_buf_free(&v);
    tikvc_close(c);
    return rc == TIKVC_OK && found ? 0 : 1;
}
