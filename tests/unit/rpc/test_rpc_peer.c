/*
 * test_rpc_peer.c: who may call a mutual-TLS server: exact certificate-name allow-lists
 * (cert-allowed-cn, cert-allowed-san), the peer gate, and the rejection hook that feeds the
 * audit log. Certificates are made with the openssl CLI in a temporary directory.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "kvrpcpb.pb-c.h"
#include "rpc/rpc.h"
#include "rpc_fixture.h"

typedef struct pki {
    char dir[64];
} pki;

/* Rejections seen by the hook. */
typedef struct seen {
    pthread_mutex_t mu;
    int n;
    rpc_code last_code;
    char last_cn[128];
    char last_peer[128];
    char last_method[128];
    bool gate_open;
} seen;

static void on_rejected(const rpc_peer_rejection *r, void *ud)
{
    seen *s = ud;
    pthread_mutex_lock(&s->mu);
    s->n++;
    s->last_code = r->code;
    snprintf(s->last_cn, sizeof(s->last_cn), "%s", r->cert_cn);
    snprintf(s->last_peer, sizeof(s->last_peer), "%s", r->peer);
    snprintf(s->last_method, sizeof(s->last_method), "%s", r->method);
    pthread_mutex_unlock(&s->mu);
}

static bool gate(const char *peer, void *ud)
{
    seen *s = ud;
    (void)peer;
    pthread_mutex_lock(&s->mu);
    bool open = s->gate_open;
    pthread_mutex_unlock(&s->mu);
    return open;
}

static int seen_count(seen *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* One CA with a server certificate and clients named tikv, evil-tikv-client, tikv-evil, a
 * SAN-only one, and a second CA with its own "tikv". */
static int setup(void **state)
{
    pki *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    snprintf(p->dir, sizeof(p->dir), "/tmp/tkv-rpc-peer-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    tpki_ca(p->dir, "ca", "tikv-c test CA");
    tpki_ca(p->dir, "other-ca", "another CA");
    tpki_cert(p->dir, "ca", "server", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost");
    const char *client_ext = "extendedKeyUsage=clientAuth";
    tpki_cert(p->dir, "ca", "tikv", "tikv", client_ext);
    tpki_cert(p->dir, "ca", "evil", "evil-tikv-client", client_ext);
    tpki_cert(p->dir, "ca", "suffix", "tikv-evil", client_ext);
    tpki_cert(p->dir, "ca", "san", "some-node",
              "subjectAltName=DNS:tikv.cluster.local,URI:spiffe://cluster/tikv");
    tpki_cert(p->dir, "ca", "san-evil", "other-node", "subjectAltName=DNS:evil.tikv.cluster.local");
    tpki_cert(p->dir, "other-ca", "foreign", "tikv", client_ext);
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

/* Calls RawGet once with a client presenting <@base>.pem (NULL: no certificate; "" no TLS)
 * and returns the status code. */
static rpc_code call_as(const pki *p, const fixture *f, const char *base)
{
    char ca[128], cert[128], key[128];
    snprintf(ca, sizeof(ca), "%s/ca.pem", p->dir);
    snprintf(cert, sizeof(cert), "%s/%s.pem", p->dir, base != NULL ? base : "");
    snprintf(key, sizeof(key), "%s/%s.key", p->dir, base != NULL ? base : "");
    rpc_tls tls = {ca, base != NULL ? cert : NULL, base != NULL ? key : NULL};
    return fix_call_once(f, base != NULL && base[0] == '\0' ? NULL : &tls);
}

static void start(const pki *p, fixture *f, seen *s, const char *const *cn, const char *const *san)
{
    static char ca[128], cert[128], key[128];
    snprintf(ca, sizeof(ca), "%s/ca.pem", p->dir);
    snprintf(cert, sizeof(cert), "%s/server.pem", p->dir);
    snprintf(key, sizeof(key), "%s/server.key", p->dir);
    static rpc_tls tls;
    tls = (rpc_tls){ca, cert, key};
    assert_int_equal(pthread_mutex_init(&s->mu, NULL), 0);
    fix_start(f, &(fix_cfg){.tls = &tls,
                            .allowed_cn = cn,
                            .allowed_san = san,
                            .peer_gate = gate,
                            .on_peer_rejected = on_rejected,
                            .hook_ud = s});
}

static void stop(fixture *f, seen *s)
{
    fix_stop(f, 1000);
    pthread_mutex_destroy(&s->mu);
}

static void test_cn_allow_list_matches_whole_names_only(void **state)
{
    pki *p = *state;
    const char *allowed[] = {"tikv", NULL};
    fixture f;
    seen s = {.gate_open = true};
    start(p, &f, &s, allowed, NULL);

    assert_int_equal(call_as(p, &f, "tikv"), RPC_OK);
    assert_int_equal(seen_count(&s), 0);

    /* A superstring of an allowed name is refused, and the refusal is reported. */
    assert_int_equal(call_as(p, &f, "evil"), RPC_PERMISSION_DENIED);
    assert_int_equal(seen_count(&s), 1);
    assert_int_equal(s.last_code, RPC_PERMISSION_DENIED);
    assert_string_equal(s.last_cn, "evil-tikv-client");
    assert_string_equal(s.last_method, "/tikvpb.Tikv/RawGet");
    assert_non_null(strstr(s.last_peer, "127.0.0.1"));

    assert_int_equal(call_as(p, &f, "suffix"), RPC_PERMISSION_DENIED);
    assert_int_equal(seen_count(&s), 2);
    /* A SAN-only certificate has no allowed CN. */
    assert_int_equal(call_as(p, &f, "san"), RPC_PERMISSION_DENIED);

    /* "tikv" from another CA and no certificate at all: the handshake completes, the call
     * is refused as unauthenticated and reported with the name the certificate claims. */
    assert_int_equal(call_as(p, &f, "foreign"), RPC_UNAUTHENTICATED);
    assert_int_equal(seen_count(&s), 4);
    assert_int_equal(s.last_code, RPC_UNAUTHENTICATED);
    assert_string_equal(s.last_cn, "tikv");
    assert_int_equal(call_as(p, &f, NULL), RPC_UNAUTHENTICATED);
    assert_int_equal(seen_count(&s), 5);
    assert_string_equal(s.last_cn, "");
    /* Plaintext to a TLS port never becomes a call: nobody can see it. */
    assert_int_equal(call_as(p, &f, ""), RPC_UNAVAILABLE);
    assert_int_equal(seen_count(&s), 5);
    stop(&f, &s);
}

static void test_san_allow_list_admits_exact_subject_alternative_names(void **state)
{
    pki *p = *state;
    const char *san[] = {"tikv.cluster.local", NULL};
    fixture f;
    seen s = {.gate_open = true};
    start(p, &f, &s, NULL, san);
    assert_int_equal(call_as(p, &f, "san"), RPC_OK);
    assert_int_equal(call_as(p, &f, "san-evil"), RPC_PERMISSION_DENIED);
    /* The CN list is empty here: a CN equal to a SAN entry does not count. */
    assert_int_equal(call_as(p, &f, "tikv"), RPC_PERMISSION_DENIED);
    assert_int_equal(seen_count(&s), 2);
    stop(&f, &s);

    /* A URI SAN matches as a whole too; both lists together admit either. */
    const char *uri[] = {"spiffe://cluster/tikv", NULL};
    const char *cn[] = {"tikv", NULL};
    seen s2 = {.gate_open = true};
    start(p, &f, &s2, cn, uri);
    assert_int_equal(call_as(p, &f, "san"), RPC_OK);
    assert_int_equal(call_as(p, &f, "tikv"), RPC_OK);
    assert_int_equal(call_as(p, &f, "evil"), RPC_PERMISSION_DENIED);
    stop(&f, &s2);
}

static void set_gate(seen *s, bool open)
{
    pthread_mutex_lock(&s->mu);
    s->gate_open = open;
    pthread_mutex_unlock(&s->mu);
}

/* A closed gate refuses new connections at accept (the client sees UNAVAILABLE, the hook a
 * RPC_REJECT_CONNECTION), and calls on a connection opened before it closed. */
static void test_a_closed_gate_refuses_even_allowed_peers(void **state)
{
    pki *p = *state;
    const char *allowed[] = {"tikv", NULL};
    fixture f;
    seen s = {.gate_open = false};
    start(p, &f, &s, allowed, NULL);
    assert_int_equal(call_as(p, &f, "tikv"), RPC_UNAVAILABLE);
    uint64_t deadline = tkv_clock_mono_ms() + FIX_TIMEOUT_MS;
    while (seen_count(&s) == 0 && tkv_clock_mono_ms() < deadline)
        usleep(10000);
    assert_true(seen_count(&s) >= 1);
    set_gate(&s, true);
    assert_int_equal(call_as(p, &f, "tikv"), RPC_OK);

    char ca[128], cert[128], key[128];
    snprintf(ca, sizeof(ca), "%s/ca.pem", p->dir);
    snprintf(cert, sizeof(cert), "%s/tikv.pem", p->dir);
    snprintf(key, sizeof(key), "%s/tikv.key", p->dir);
    rpc_tls tls = {ca, cert, key};
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    o.tls = &tls;
    rpc_client *c;
    assert_int_equal(rpc_client_new(&o, &c), 0);
    rpc_channel *ch;
    assert_int_equal(rpc_client_channel(c, f.addr, 0, &ch), 0);
    assert_int_equal(fix_raw_get(ch), RPC_OK);
    int before = seen_count(&s);
    set_gate(&s, false);
    assert_int_equal(fix_raw_get(ch), RPC_PERMISSION_DENIED);
    assert_int_equal(seen_count(&s), before + 1);
    rpc_client_free(c);
    stop(&f, &s);
}

static void test_allow_lists_need_mutual_tls(void **state)
{
    (void)state;
    const char *san[] = {"x", NULL};
    rpc_server_opts o;
    rpc_server_opts_init(&o);
    o.addr = "127.0.0.1:0";
    o.cert_allowed_san = san;
    rpc_server *srv = NULL;
    assert_int_equal(rpc_server_new(&o, &srv), TKV_ECONFIG);
    assert_null(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cn_allow_list_matches_whole_names_only),
        cmocka_unit_test(test_san_allow_list_admits_exact_subject_alternative_names),
        cmocka_unit_test(test_a_closed_gate_refuses_even_allowed_peers),
        cmocka_unit_test(test_allow_lists_need_mutual_tls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
