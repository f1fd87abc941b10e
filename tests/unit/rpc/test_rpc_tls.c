/*
 * test_rpc_tls.c: TLS files that change on disk: server certificates and CA bundles are used
 * for new connections without a restart, a half-written rotation keeps the previous set, a
 * client picks up its rotated certificate when it reconnects; request metadata and the
 * verified certificate name reach handlers. Certificates are made with the openssl CLI.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "kvrpcpb.pb-c.h"
#include "rpc/rpc.h"
#include "rpc_fixture.h"

typedef struct pki {
    char dir[64];
    char live[96]; /* the server's files: ca.pem, server.pem, server.key */
} pki;

static int setup(void **state)
{
    pki *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    snprintf(p->dir, sizeof(p->dir), "/tmp/tkv-rpc-tls-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->live, sizeof(p->live), "%s/live", p->dir);
    const char *san = "subjectAltName=IP:127.0.0.1,DNS:localhost";
    const char *client = "extendedKeyUsage=clientAuth";
    tpki_ca(p->dir, "ca1", "first CA");
    tpki_ca(p->dir, "ca2", "second CA");
    tpki_cert(p->dir, "ca1", "server1", "server", san);
    tpki_cert(p->dir, "ca2", "server2", "server", san);
    tpki_cert(p->dir, "ca1", "tikv1", "tikv", client);
    tpki_cert(p->dir, "ca2", "tikv2", "tikv", client);
    tpki_cert(p->dir, "ca1", "rogue1", "rogue", client);
    tpki_live(p->dir, p->live, "ca1", "server1");
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    pki *p = *state;
    fix_rmdir(p->dir);
    free(p);
    return 0;
}

/* Calls RawGet once through a new client trusting <@ca>.pem and presenting <@cert>.pem. */
static rpc_code call_once(const pki *p, const fixture *f, const char *ca, const char *cert)
{
    char cap[128], cp[128], kp[128];
    snprintf(cap, sizeof(cap), "%s/%s.pem", p->dir, ca);
    snprintf(cp, sizeof(cp), "%s/%s.pem", p->dir, cert);
    snprintf(kp, sizeof(kp), "%s/%s.key", p->dir, cert);
    rpc_tls tls = {cap, cp, kp};
    return fix_call_once(f, &tls);
}

static void start_live(const pki *p, fixture *f, rpc_tls *tls, char paths[3][128],
                       const char *const *allowed)
{
    snprintf(paths[0], 128, "%s/ca.pem", p->live);
    snprintf(paths[1], 128, "%s/server.pem", p->live);
    snprintf(paths[2], 128, "%s/server.key", p->live);
    *tls = (rpc_tls){paths[0], paths[1], paths[2]};
    fix_start(f, &(fix_cfg){.tls = tls, .allowed_cn = allowed});
}

static void test_rotated_server_certificate_and_ca_serve_new_connections(void **state)
{
    pki *p = *state;
    fixture f;
    rpc_tls tls;
    char paths[3][128];
    start_live(p, &f, &tls, paths, NULL);
    assert_int_equal(call_once(p, &f, "ca1", "tikv1"), RPC_OK);
    /* A client of the second CA does not trust the server's first certificate. */
    assert_int_equal(call_once(p, &f, "ca2", "tikv2"), RPC_UNAVAILABLE);

    /* Rotate everything to the second CA: the running server picks it up. */
    tpki_replace(p->dir, "server2.pem", p->live, "server.pem");
    tpki_replace(p->dir, "server2.key", p->live, "server.key");
    tpki_replace(p->dir, "ca2.pem", p->live, "ca.pem");
    assert_int_equal(call_once(p, &f, "ca2", "tikv2"), RPC_OK);
    /* The first CA's clients no longer trust the server, and their certificates are no
     * longer trusted by it. */
    assert_int_equal(call_once(p, &f, "ca1", "tikv1"), RPC_UNAVAILABLE);

    /* Half a rotation (a key that does not belong to the certificate) is ignored: the server
     * keeps presenting the last good set. */
    tpki_replace(p->dir, "server1.key", p->live, "server.key");
    assert_int_equal(call_once(p, &f, "ca2", "tikv2"), RPC_OK);
    /* Completing it takes effect. */
    tpki_replace(p->dir, "server1.pem", p->live, "server.pem");
    tpki_replace(p->dir, "ca1.pem", p->live, "ca.pem");
    assert_int_equal(call_once(p, &f, "ca1", "tikv1"), RPC_OK);
    fix_stop(&f, 1000);
}

static void test_a_client_presents_its_rotated_certificate_after_reconnecting(void **state)
{
    pki *p = *state;
    fixture f;
    rpc_tls tls;
    char paths[3][128];
    const char *allowed[] = {"tikv", NULL};
    start_live(p, &f, &tls, paths, allowed);

    char dir[128];
    snprintf(dir, sizeof(dir), "%s/client", p->dir);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    tpki_run(cmd);
    tpki_replace(p->dir, "ca1.pem", dir, "ca.pem");
    tpki_replace(p->dir, "rogue1.pem", dir, "client.pem");
    tpki_replace(p->dir, "rogue1.key", dir, "client.key");
    char ca[160], cert[160], key[160];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/client.pem", dir);
    snprintf(key, sizeof(key), "%s/client.key", dir);
    rpc_tls ctls = {ca, cert, key};
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    o.tls = &ctls;
    o.tls_refresh_s = 1;
    rpc_client *c;
    assert_int_equal(rpc_client_new(&o, &c), 0);

    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    rpc_status st;
    rpc_channel *ch;
    assert_int_equal(rpc_client_channel(c, f.addr, 0, &ch), 0);
    assert_int_equal(rpc_unary_msg(ch, "/tikvpb.Tikv/RawGet", &req.base,
                                   &kvrpcpb__raw_get_response__descriptor, 10000, &resp, &st),
                     TKV_ERPC);
    assert_int_equal(st.code, RPC_PERMISSION_DENIED);

    tpki_replace(p->dir, "tikv1.key", dir, "client.key");
    tpki_replace(p->dir, "tikv1.pem", dir, "client.pem");
    /* Each attempt uses a new connection (a new connection index); the file watcher rereads
     * the files every second, so within a few seconds a connection presents "tikv". */
    uint64_t deadline = tkv_clock_mono_ms() + FIX_TIMEOUT_MS;
    rpc_code last = RPC_PERMISSION_DENIED;
    for (unsigned idx = 1; last != RPC_OK && tkv_clock_mono_ms() < deadline; idx++) {
        assert_int_equal(rpc_client_channel(c, f.addr, idx, &ch), 0);
        int rc = rpc_unary_msg(ch, "/tikvpb.Tikv/RawGet", &req.base,
                               &kvrpcpb__raw_get_response__descriptor, 10000, &resp, &st);
        rpc_msg_free(resp);
        resp = NULL;
        last = rc == 0 ? RPC_OK : st.code;
        if (last != RPC_OK)
            tkv_sleep_ms(100); /* paces the retries; the deadline bounds the wait */
    }
    assert_int_equal(last, RPC_OK);
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

/* Opens Whoami with @md and returns the answer in @out. */
static void whoami(rpc_channel *ch, const rpc_md *md, size_t n, char *out, size_t cap)
{
    rpc_stream *s;
    assert_int_equal(rpc_stream_open_md(ch, "/test.Svc/Whoami", 10000, md, n, NULL, &s), 0);
    assert_int_equal(rpc_stream_send(s, tkv_slice_of("x", 1)), 0);
    assert_int_equal(rpc_stream_close_send(s), 0);
    tkv_buf b;
    tkv_buf_init(&b);
    rpc_status st;
    assert_int_equal(rpc_stream_read(s, FIX_TIMEOUT_MS, &b, &st), 0);
    snprintf(out, cap, "%.*s", (int)b.len, (const char *)b.data);
    tkv_buf_deinit(&b);
    assert_int_equal(rpc_stream_wait(s, FIX_TIMEOUT_MS, &st), 0);
    assert_int_equal(st.code, RPC_OK);
    rpc_stream_free(s);
}

static void test_metadata_and_certificate_name_reach_the_handler(void **state)
{
    pki *p = *state;
    fixture f;
    rpc_tls tls;
    char paths[3][128];
    start_live(p, &f, &tls, paths, NULL);
    char ca[128], cert[128], key[128];
    snprintf(ca, sizeof(ca), "%s/ca1.pem", p->dir);
    snprintf(cert, sizeof(cert), "%s/tikv1.pem", p->dir);
    snprintf(key, sizeof(key), "%s/tikv1.key", p->dir);
    rpc_tls ctls = {ca, cert, key};
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    o.tls = &ctls;
    rpc_client *c;
    assert_int_equal(rpc_client_new(&o, &c), 0);
    rpc_channel *ch;
    assert_int_equal(rpc_client_channel(c, f.addr, 0, &ch), 0);
    char answer[128];
    rpc_md md[] = {{"x-tkv-test", "hello"}, {"x-other", "1"}};
    whoami(ch, md, 2, answer, sizeof(answer));
    assert_string_equal(answer, "tikv|hello");
    whoami(ch, NULL, 0, answer, sizeof(answer));
    assert_string_equal(answer, "tikv|(none)");
    rpc_client_free(c);
    fix_stop(&f, 1000);

    /* Without TLS there is no certificate name. */
    fix_start(&f, NULL);
    rpc_client_opts_init(&o);
    assert_int_equal(rpc_client_new(&o, &c), 0);
    assert_int_equal(rpc_client_channel(c, f.addr, 0, &ch), 0);
    whoami(ch, md, 1, answer, sizeof(answer));
    assert_string_equal(answer, "|hello");
    rpc_client_free(c);
    fix_stop(&f, 1000);
}

static void test_a_key_that_does_not_match_its_certificate_is_refused(void **state)
{
    pki *p = *state;
    char ca[128], cert[128], key[128];
    snprintf(ca, sizeof(ca), "%s/ca1.pem", p->dir);
    snprintf(cert, sizeof(cert), "%s/server1.pem", p->dir);
    snprintf(key, sizeof(key), "%s/server2.key", p->dir);
    rpc_tls tls = {ca, cert, key};
    rpc_server_opts o;
    rpc_server_opts_init(&o);
    o.addr = "127.0.0.1:0";
    o.tls = &tls;
    rpc_server *s = NULL;
    assert_int_equal(rpc_server_new(&o, &s), TKV_ECONFIG);
    assert_null(s);
    rpc_client_opts co;
    rpc_client_opts_init(&co);
    co.tls = &tls;
    rpc_client *c = NULL;
    assert_int_equal(rpc_client_new(&co, &c), TKV_ECONFIG);
    assert_null(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotated_server_certificate_and_ca_serve_new_connections),
        cmocka_unit_test(test_a_client_presents_its_rotated_certificate_after_reconnecting),
        cmocka_unit_test(test_metadata_and_certificate_name_reach_the_handler),
        cmocka_unit_test(test_a_key_that_does_not_match_its_certificate_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
