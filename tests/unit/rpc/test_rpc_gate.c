/*
 * test_rpc_gate.c: the gRPC servers' connection gate (rpc_gate.c): its bookkeeping on real
 * sockets with a test clock (limits, per-address caps, served connections, failed handshakes,
 * rate-limited refusal reports), then against real servers: a connection limit under raw TCP
 * connections held open, a client that fails the TLS handshake from 127.0.0.2 getting that
 * address refused while a good client from 127.0.0.1 keeps being served, TCP
 * connect-and-close floods, and clients that make calls never being counted.
 * Linux routes all of 127/8 to the loopback interface, so binding a client socket to
 * 127.0.0.2 or 127.0.0.3 gives it a source address of its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "kvrpcpb.pb-c.h"
#include "rpc/rpc_int.h"
#include "rpc_fixture.h"

/* ---- hook recorder and a small guard: N handshake failures ban an address ---------------- */

#define MAX_SEEN 64

typedef struct seen {
    pthread_mutex_t mu;
    int n;
    rpc_peer_rejection r[MAX_SEEN]; /* strings point into the copies below */
    char peer[MAX_SEEN][64];
    char reason[MAX_SEEN][128];
    int ban_after;      /* handshake failures that ban an address (0: never) */
    char banned[8][64]; /* banned addresses, "ipv4:a.b.c.d" without port */
    int n_banned;
    uint64_t now_ms; /* the test clock */
} seen;

static void addr_of(const char *peer, char *out, size_t cap)
{
    snprintf(out, cap, "%s", peer);
    char *colon = strrchr(out, ':');
    if (colon != NULL && colon > out + 5)
        *colon = '\0';
}

static int count_kind_locked(const seen *s, rpc_reject_kind kind, const char *addr)
{
    int n = 0;
    for (int i = 0; i < s->n && i < MAX_SEEN; i++) {
        char a[64];
        addr_of(s->peer[i], a, sizeof(a));
        if (s->r[i].kind == kind && (addr == NULL || strcmp(a, addr) == 0))
            n++;
    }
    return n;
}

static void on_rejected(const rpc_peer_rejection *r, void *ud)
{
    seen *s = ud;
    pthread_mutex_lock(&s->mu);
    if (s->n < MAX_SEEN) {
        int i = s->n;
        snprintf(s->peer[i], sizeof(s->peer[i]), "%s", r->peer);
        snprintf(s->reason[i], sizeof(s->reason[i]), "%s", r->reason);
        s->r[i] = *r;
        s->r[i].peer = s->peer[i];
        s->r[i].reason = s->reason[i];
    }
    s->n++;
    char a[64];
    addr_of(r->peer, a, sizeof(a));
    if (r->kind == RPC_REJECT_HANDSHAKE && s->ban_after > 0 && s->n_banned < 8 &&
        count_kind_locked(s, RPC_REJECT_HANDSHAKE, a) >= s->ban_after)
        snprintf(s->banned[s->n_banned++], 64, "%s", a);
    pthread_mutex_unlock(&s->mu);
}

static bool gate(const char *peer, void *ud)
{
    seen *s = ud;
    char a[64];
    addr_of(peer, a, sizeof(a));
    pthread_mutex_lock(&s->mu);
    bool ok = true;
    for (int i = 0; i < s->n_banned; i++)
        if (strcmp(s->banned[i], a) == 0)
            ok = false;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static int seen_kind(seen *s, rpc_reject_kind kind, const char *addr)
{
    pthread_mutex_lock(&s->mu);
    int n = count_kind_locked(s, kind, addr);
    pthread_mutex_unlock(&s->mu);
    return n;
}

static uint64_t test_clock(void *ud)
{
    seen *s = ud;
    pthread_mutex_lock(&s->mu);
    uint64_t t = s->now_ms;
    pthread_mutex_unlock(&s->mu);
    return t;
}

static void advance(seen *s, uint64_t ms)
{
    pthread_mutex_lock(&s->mu);
    s->now_ms += ms;
    pthread_mutex_unlock(&s->mu);
}

static void seen_init(seen *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(pthread_mutex_init(&s->mu, NULL), 0);
    s->now_ms = 1000000;
}

/* ---- bookkeeping on socketpairs with the test clock -------------------------------------- */

static struct sockaddr_in sa4(const char *ip, int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

/* A connected socket to stand for an accepted connection (its pair is closed at once). */
static int new_sock(void)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    return sv[0];
}

static int admit(rpc__gate *g, int fd, const char *ip, int port)
{
    struct sockaddr_in a = sa4(ip, port);
    return rpc__gate_admit(g, fd, (const struct sockaddr *)&a);
}

static rpc__gate *new_gate(seen *s, int max, int per_addr, bool count_failures)
{
    rpc__gate_opts o;
    rpc__gate_opts_init(&o);
    o.max_connections = max;
    o.max_connections_per_addr = per_addr;
    o.handshake_timeout_ms = 10000;
    o.count_failures = count_failures;
    o.peer_gate = gate;
    o.on_peer_rejected = on_rejected;
    o.hook_ud = s;
    o.now_ms = test_clock;
    o.clock_ud = s;
    rpc__gate *g;
    assert_int_equal(rpc__gate_new(&o, &g), 0);
    return g;
}

static rpc_gate_stats stats_of(rpc__gate *g)
{
    rpc_gate_stats st;
    rpc__gate_stats(g, &st);
    return st;
}

static void gate_done(rpc__gate *g, seen *s)
{
    rpc__gate_free(g);
    pthread_mutex_destroy(&s->mu);
}

static void test_gate_refuses_past_the_limit_until_a_connection_closes(void **state)
{
    (void)state;
    seen s;
    seen_init(&s);
    rpc__gate *g = new_gate(&s, 2, 0, true);
    int a = new_sock(), b = new_sock(), c = new_sock();
    assert_int_equal(admit(g, a, "10.0.0.1", 1000), RPC__ADMIT_OK);
    assert_int_equal(admit(g, b, "10.0.0.2", 1000), RPC__ADMIT_OK);
    assert_int_equal(admit(g, c, "10.0.0.3", 1000), RPC__ADMIT_LIMIT);
    rpc_gate_stats st = stats_of(g);
    assert_int_equal(st.open, 2);
    assert_int_equal(st.refused_limit, 1);
    /* One closes: the next admission sweeps (at most every 100 ms) and finds room. */
    close(a);
    advance(&s, 100);
    assert_int_equal(admit(g, c, "10.0.0.3", 1000), RPC__ADMIT_OK);
    st = stats_of(g);
    assert_int_equal(st.open, 2);
    assert_int_equal(st.accepted, 3);
    rpc__gate_sweep(g);
    /* The refusal was reported once; the closed connection was a failed handshake. */
    assert_int_equal(seen_kind(&s, RPC_REJECT_CONNECTION, "ipv4:10.0.0.3"), 1);
    assert_int_equal(seen_kind(&s, RPC_REJECT_HANDSHAKE, "ipv4:10.0.0.1"), 1);
    assert_int_equal(s.r[0].code, RPC_RESOURCE_EXHAUSTED);
    close(b);
    close(c);
    gate_done(g, &s);
}

static void test_gate_caps_connections_per_address(void **state)
{
    (void)state;
    seen s;
    seen_init(&s);
    rpc__gate *g = new_gate(&s, 0, 2, false);
    int fd[4];
    for (int i = 0; i < 4; i++)
        fd[i] = new_sock();
    assert_int_equal(admit(g, fd[0], "10.0.0.1", 1), RPC__ADMIT_OK);
    assert_int_equal(admit(g, fd[1], "10.0.0.1", 2), RPC__ADMIT_OK);
    assert_int_equal(admit(g, fd[2], "10.0.0.1", 3), RPC__ADMIT_ADDR_LIMIT);
    assert_int_equal(admit(g, fd[3], "10.0.0.2", 1), RPC__ADMIT_OK);
    rpc_gate_stats st = stats_of(g);
    assert_int_equal(st.refused_addr_limit, 1);
    assert_int_equal(st.open, 3);
    for (int i = 0; i < 4; i++)
        close(fd[i]);
    rpc__gate_sweep(g);
    st = stats_of(g);
    assert_int_equal(st.open, 0);
    /* Without TLS nothing counts as a failed handshake. */
    assert_int_equal(st.handshake_failures, 0);
    assert_int_equal(seen_kind(&s, RPC_REJECT_HANDSHAKE, NULL), 0);
    gate_done(g, &s);
}

static void test_served_connections_never_count_as_failed_handshakes(void **state)
{
    (void)state;
    seen s;
    seen_init(&s);
    rpc__gate *g = new_gate(&s, 0, 0, true);
    int a = new_sock(), b = new_sock(), c = new_sock();
    assert_int_equal(admit(g, a, "127.0.0.1", 5000), RPC__ADMIT_OK);
    assert_int_equal(admit(g, b, "127.0.0.1", 5001), RPC__ADMIT_OK);
    struct sockaddr_in6 six;
    memset(&six, 0, sizeof(six));
    six.sin6_family = AF_INET6;
    six.sin6_port = htons(7);
    assert_int_equal(inet_pton(AF_INET6, "::1", &six.sin6_addr), 1);
    assert_int_equal(rpc__gate_admit(g, c, (const struct sockaddr *)&six), RPC__ADMIT_OK);
    assert_true(rpc__gate_wants_peer(g));
    rpc__gate_served(g, "ipv4:127.0.0.1:5000");
    rpc__gate_served(g, "ipv4:127.0.0.1:5001");
    rpc__gate_served(g, "ipv6:%5B::1%5D:7");
    assert_false(rpc__gate_wants_peer(g));
    rpc__gate_served(g, "not a peer");
    close(a);
    close(b);
    close(c);
    rpc__gate_sweep(g);
    rpc_gate_stats st = stats_of(g);
    assert_int_equal(st.open, 0);
    assert_int_equal(st.handshake_failures, 0);
    assert_int_equal(s.n, 0);
    gate_done(g, &s);
}

static void test_short_unserved_connections_count_and_long_idle_ones_do_not(void **state)
{
    (void)state;
    seen s;
    seen_init(&s);
    rpc__gate *g = new_gate(&s, 0, 0, true);
    int quick = new_sock(), idle = new_sock();
    assert_int_equal(admit(g, idle, "10.1.1.1", 1), RPC__ADMIT_OK);
    advance(&s, 60000); /* far past the 10 s handshake timeout */
    assert_int_equal(admit(g, quick, "10.2.2.2", 1), RPC__ADMIT_OK);
    advance(&s, 50);
    close(quick);
    close(idle);
    rpc__gate_sweep(g);
    assert_int_equal(seen_kind(&s, RPC_REJECT_HANDSHAKE, "ipv4:10.2.2.2"), 1);
    assert_int_equal(seen_kind(&s, RPC_REJECT_HANDSHAKE, "ipv4:10.1.1.1"), 0);
    assert_int_equal(s.r[0].code, RPC_UNAUTHENTICATED);
    assert_string_equal(s.r[0].reason, "tls handshake failed or aborted");
    assert_string_equal(s.r[0].peer, "ipv4:10.2.2.2:1");
    gate_done(g, &s);
}

static void test_a_reused_fd_number_ends_the_old_connection(void **state)
{
    (void)state;
    seen s;
    seen_init(&s);
    rpc__gate *g = new_gate(&s, 0, 0, true);
    int fd = new_sock();
    assert_int_equal(admit(g, fd, "10.0.0.5", 9), RPC__ADMIT_OK);
    /* gRPC closes it and the number comes back for another socket (another inode). */
    int other = new_sock();
    assert_int_equal(dup2(other, fd), fd);
    close(other);
    rpc__gate_sweep(g);
    rpc_gate_stats st = stats_of(g);
    assert_int_equal(st.open, 0);
    assert_int_equal(st.handshake_failures, 1);
    close(fd);
    gate_done(g, &s);
}

static void test_banned_addresses_are_refused_and_reported_once_a_minute(void **state)
{
    (void)state;
    seen s;
    seen_init(&s);
    snprintf(s.banned[0], 64, "ipv4:10.9.9.9");
    s.n_banned = 1;
    rpc__gate *g = new_gate(&s, 0, 0, true);
    int fd = new_sock();
    for (int i = 0; i < 5; i++)
        assert_int_equal(admit(g, fd, "10.9.9.9", 100 + i), RPC__ADMIT_BANNED);
    rpc__gate_sweep(g);
    assert_int_equal(seen_kind(&s, RPC_REJECT_CONNECTION, "ipv4:10.9.9.9"), 1);
    assert_int_equal(s.r[0].code, RPC_PERMISSION_DENIED);
    assert_non_null(strstr(s.r[0].reason, "temporarily refused"));
    advance(&s, 60000);
    assert_int_equal(admit(g, fd, "10.9.9.9", 200), RPC__ADMIT_BANNED);
    rpc__gate_sweep(g);
    assert_int_equal(seen_kind(&s, RPC_REJECT_CONNECTION, "ipv4:10.9.9.9"), 2);
    rpc_gate_stats st = stats_of(g);
    assert_int_equal(st.refused_banned, 6);
    assert_int_equal(st.open, 0);
    close(fd);
    gate_done(g, &s);
}

/* A flood from one address is all found in one sweep: failures stop being reported once the
 * address is banned (the guard has what it needs). */
static void test_failures_of_a_banned_address_are_not_reported_again(void **state)
{
    (void)state;
    seen s;
    seen_init(&s);
    s.ban_after = 3;
    rpc__gate *g = new_gate(&s, 0, 0, true);
    for (int i = 0; i < 20; i++) {
        int fd = new_sock();
        assert_int_equal(admit(g, fd, "10.3.3.3", 1000 + i), RPC__ADMIT_OK);
        close(fd);
    }
    rpc__gate_sweep(g);
    rpc_gate_stats st = stats_of(g);
    assert_int_equal(st.handshake_failures, 20);
    assert_int_equal(seen_kind(&s, RPC_REJECT_HANDSHAKE, "ipv4:10.3.3.3"), 3);
    gate_done(g, &s);
}

static void test_many_connections_grow_the_tables(void **state)
{
    (void)state;
    seen s;
    seen_init(&s);
    rpc__gate *g = new_gate(&s, 0, 0, true);
    enum { N = 300 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = new_sock();
        char ip[32];
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 200, i % 200 + 1);
        assert_int_equal(admit(g, fds[i], ip, 40000 + i), RPC__ADMIT_OK);
    }
    for (int i = 0; i < N; i += 2) {
        char peer[64];
        snprintf(peer, sizeof(peer), "ipv4:10.0.%d.%d:%d", i / 200, i % 200 + 1, 40000 + i);
        rpc__gate_served(g, peer);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    rpc__gate_sweep(g);
    rpc_gate_stats st = stats_of(g);
    assert_int_equal(st.open, 0);
    assert_int_equal(st.handshake_failures, N / 2);
    assert_false(rpc__gate_wants_peer(g));
    gate_done(g, &s);
}

/* ---- real servers ------------------------------------------------------------------------ */

typedef struct pki {
    char dir[64];
} pki;

static int setup(void **state)
{
    pki *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    snprintf(p->dir, sizeof(p->dir), "/tmp/tkv-rpc-gate-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    tpki_ca(p->dir, "ca", "tikv-c test CA");
    tpki_ca(p->dir, "other-ca", "another CA");
    tpki_cert(p->dir, "ca", "server", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost");
    tpki_cert(p->dir, "ca", "client", "tikv", "extendedKeyUsage=clientAuth");
    tpki_cert(p->dir, "other-ca", "foreign", "tikv", "extendedKeyUsage=clientAuth");
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

typedef struct paths {
    char ca[128], cert[128], key[128];
    rpc_tls tls;
} paths;

static void server_paths(const pki *p, paths *ps)
{
    snprintf(ps->ca, sizeof(ps->ca), "%s/ca.pem", p->dir);
    snprintf(ps->cert, sizeof(ps->cert), "%s/server.pem", p->dir);
    snprintf(ps->key, sizeof(ps->key), "%s/server.key", p->dir);
    ps->tls = (rpc_tls){ps->ca, ps->cert, ps->key};
}

/* Polls @cond every 10 ms until true or FIX_TIMEOUT_MS passed. */
static bool wait_until(bool (*cond)(void *), void *arg)
{
    uint64_t deadline = tkv_clock_mono_ms() + FIX_TIMEOUT_MS;
    while (!cond(arg)) {
        if (tkv_clock_mono_ms() > deadline)
            return false;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return true;
}

/* A TCP connection to the fixture from @src ("127.0.0.2"). */
static int raw_connect(const fixture *f, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in local = sa4(src, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&local, sizeof(local)), 0);
    struct sockaddr_in to = sa4("127.0.0.1", f->port);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
    return fd;
}

/* True when the server closed @fd (EOF or reset) within @ms. */
static bool closed_by_server(int fd, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) != 1)
        return false;
    char b[64];
    ssize_t n = recv(fd, b, sizeof(b), 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* One RawGet over a fresh client (a new connection), with the good client certificate or
 * in plaintext; returns its code. */
static rpc_code call_once(const pki *p, const fixture *f, bool tls)
{
    char ca[128], cert[128], key[128];
    snprintf(ca, sizeof(ca), "%s/ca.pem", p->dir);
    snprintf(cert, sizeof(cert), "%s/client.pem", p->dir);
    snprintf(key, sizeof(key), "%s/client.key", p->dir);
    rpc_tls t = {ca, cert, key};
    return fix_call_once(f, tls ? &t : NULL);
}

typedef struct stat_wait {
    fixture *f;
    uint64_t want;
    size_t field; /* offsetof(rpc_gate_stats, x) */
    bool exact;   /* wait for == want instead of >= want */
} stat_wait;

static bool stat_reached(void *arg)
{
    stat_wait *w = arg;
    rpc_gate_stats st;
    rpc_server_gate_stats(w->f->srv, &st);
    uint64_t v;
    memcpy(&v, (const char *)&st + w->field, sizeof(v));
    return w->exact ? v == w->want : v >= w->want;
}

/* Waits until the server's gate counter @name is at least (exactly: WAIT_STAT_IS) @value. */
#define WAIT_STAT(fx, name, value)                                                                 \
    assert_true(wait_until(stat_reached,                                                           \
                           &(stat_wait){(fx), (value), offsetof(rpc_gate_stats, name), false}))
#define WAIT_STAT_IS(fx, name, value)                                                              \
    assert_true(wait_until(stat_reached,                                                           \
                           &(stat_wait){(fx), (value), offsetof(rpc_gate_stats, name), true}))

typedef struct seen_wait {
    seen *s;
    rpc_reject_kind kind;
    const char *addr;
    int want;
} seen_wait;

static bool seen_reached(void *arg)
{
    seen_wait *w = arg;
    return seen_kind(w->s, w->kind, w->addr) >= w->want;
}

static void test_a_tls_server_closes_connections_past_its_limit_at_once(void **state)
{
    pki *p = *state;
    paths ps;
    server_paths(p, &ps);
    seen s;
    seen_init(&s);
    fixture f;
    fix_start(&f, &(fix_cfg){.tls = &ps.tls,
                             .max_connections = 4,
                             .on_peer_rejected = on_rejected,
                             .hook_ud = &s});
    enum { N = 4, EXTRA = 3 };
    int fds[N + EXTRA];
    for (int i = 0; i < N; i++)
        fds[i] = raw_connect(&f, "127.0.0.1");
    WAIT_STAT(&f, accepted, N); /* the backlog is FIFO: these N are the ones admitted */
    for (int i = N; i < N + EXTRA; i++)
        fds[i] = raw_connect(&f, "127.0.0.1");
    for (int i = N; i < N + EXTRA; i++)
        assert_true(closed_by_server(fds[i], FIX_TIMEOUT_MS));
    rpc_gate_stats st;
    rpc_server_gate_stats(f.srv, &st);
    assert_int_equal(st.refused_limit, EXTRA);
    assert_int_equal(st.open, N);
    /* One report for the address (the audit record), not one per connection. */
    assert_true(
        wait_until(seen_reached, &(seen_wait){&s, RPC_REJECT_CONNECTION, "ipv4:127.0.0.1", 1}));
    assert_int_equal(seen_kind(&s, RPC_REJECT_CONNECTION, "ipv4:127.0.0.1"), 1);
    /* Once the held connections close, a normal client is served. */
    for (int i = 0; i < N + EXTRA; i++)
        close(fds[i]);
    WAIT_STAT_IS(&f, open, 0);
    assert_int_equal(call_once(p, &f, true), RPC_OK);
    fix_stop(&f, 1000);
    pthread_mutex_destroy(&s.mu);
}

/* Runs one TLS handshake from @src with a client that trusts only other-ca and presents the
 * certificate other-ca signed; returns true when the handshake failed (as it must). */
static bool foreign_handshake(const pki *p, const fixture *f, const char *src)
{
    char ca[128], cert[128], key[128];
    snprintf(ca, sizeof(ca), "%s/other-ca.pem", p->dir);
    snprintf(cert, sizeof(cert), "%s/foreign.pem", p->dir);
    snprintf(key, sizeof(key), "%s/foreign.key", p->dir);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    assert_int_equal(SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    const unsigned char alpn[] = "\x02h2";
    assert_int_equal(SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1), 0);
    int fd = raw_connect(f, src);
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    SSL_set_fd(ssl, fd);
    bool failed = SSL_connect(ssl) != 1;
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return failed;
}

static void test_failed_handshakes_get_only_the_offending_address_refused(void **state)
{
    pki *p = *state;
    paths ps;
    server_paths(p, &ps);
    seen s;
    seen_init(&s);
    s.ban_after = 3;
    fixture f;
    fix_start(
        &f, &(fix_cfg){
                .tls = &ps.tls, .peer_gate = gate, .on_peer_rejected = on_rejected, .hook_ud = &s});
    /* A good client from 127.0.0.1 works before, during and after. */
    assert_int_equal(call_once(p, &f, true), RPC_OK);
    for (int i = 0; i < 3; i++) {
        assert_true(foreign_handshake(p, &f, "127.0.0.2"));
        assert_true(wait_until(seen_reached,
                               &(seen_wait){&s, RPC_REJECT_HANDSHAKE, "ipv4:127.0.0.2", i + 1}));
        assert_int_equal(call_once(p, &f, true), RPC_OK);
    }
    /* Banned now: the next connection from 127.0.0.2 is closed before any TLS byte. */
    int fd = raw_connect(&f, "127.0.0.2");
    assert_true(closed_by_server(fd, FIX_TIMEOUT_MS));
    close(fd);
    WAIT_STAT(&f, refused_banned, 1);
    assert_true(
        wait_until(seen_reached, &(seen_wait){&s, RPC_REJECT_CONNECTION, "ipv4:127.0.0.2", 1}));
    /* The good client is served at once, and never counted. */
    uint64_t t0 = tkv_clock_mono_ms();
    assert_int_equal(call_once(p, &f, true), RPC_OK);
    assert_true(tkv_clock_mono_ms() - t0 < 2000);
    assert_int_equal(seen_kind(&s, RPC_REJECT_HANDSHAKE, "ipv4:127.0.0.1"), 0);
    fix_stop(&f, 1000);
    pthread_mutex_destroy(&s.mu);
}

static void test_tcp_connect_and_close_floods_count_as_failed_handshakes(void **state)
{
    pki *p = *state;
    paths ps;
    server_paths(p, &ps);
    seen s;
    seen_init(&s);
    s.ban_after = 5;
    fixture f;
    fix_start(
        &f, &(fix_cfg){
                .tls = &ps.tls, .peer_gate = gate, .on_peer_rejected = on_rejected, .hook_ud = &s});
    for (int i = 0; i < 40; i++)
        close(raw_connect(&f, "127.0.0.3"));
    assert_true(
        wait_until(seen_reached, &(seen_wait){&s, RPC_REJECT_HANDSHAKE, "ipv4:127.0.0.3", 5}));
    WAIT_STAT(&f, open, 0);
    rpc_gate_stats st;
    rpc_server_gate_stats(f.srv, &st);
    /* Connections refused after the ban are not failures of their own. */
    assert_true(st.handshake_failures + st.refused_banned <= 40);
    assert_true(st.handshake_failures >= 5);
    assert_int_equal(seen_kind(&s, RPC_REJECT_HANDSHAKE, "ipv4:127.0.0.3"), 5);
    assert_int_equal(call_once(p, &f, true), RPC_OK);
    fix_stop(&f, 1000);
    pthread_mutex_destroy(&s.mu);
}

static void test_clients_that_make_calls_are_never_counted(void **state)
{
    pki *p = *state;
    paths ps;
    server_paths(p, &ps);
    seen s;
    seen_init(&s);
    fixture f;
    fix_start(&f, &(fix_cfg){.tls = &ps.tls,
                             .max_connections = 100,
                             .max_connections_per_addr = 50,
                             .peer_gate = gate,
                             .on_peer_rejected = on_rejected,
                             .hook_ud = &s});
    enum { CLIENTS = 20 };
    for (int i = 0; i < CLIENTS; i++)
        assert_int_equal(call_once(p, &f, true), RPC_OK);
    WAIT_STAT_IS(&f, open, 0);
    rpc_gate_stats st;
    rpc_server_gate_stats(f.srv, &st);
    assert_true(st.accepted >= CLIENTS);
    assert_int_equal(st.handshake_failures, 0);
    assert_int_equal(st.refused_limit + st.refused_addr_limit + st.refused_banned, 0);
    assert_int_equal(s.n, 0);
    fix_stop(&f, 1000);
    pthread_mutex_destroy(&s.mu);
}

/* A client that completes the TLS handshake and keeps its connection idle without a call
 * (a pooled connection) is not a failure when it closes. */
static void test_an_idle_connection_after_a_good_handshake_is_not_counted(void **state)
{
    pki *p = *state;
    paths ps;
    server_paths(p, &ps);
    seen s;
    seen_init(&s);
    fixture f;
    fix_start(
        &f, &(fix_cfg){
                .tls = &ps.tls, .peer_gate = gate, .on_peer_rejected = on_rejected, .hook_ud = &s});
    char cert[128], key[128];
    snprintf(cert, sizeof(cert), "%s/client.pem", p->dir);
    snprintf(key, sizeof(key), "%s/client.key", p->dir);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ps.ca, NULL), 1);
    assert_int_equal(SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    const unsigned char alpn[] = "\x02h2";
    assert_int_equal(SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1), 0);
    int fd = raw_connect(&f, "127.0.0.5");
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    SSL_set_fd(ssl, fd);
    assert_int_equal(SSL_connect(ssl), 1);
    WAIT_STAT(&f, accepted, 1);
    WAIT_STAT_IS(&f, unserved, 0); /* seen established, without any call */
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    WAIT_STAT_IS(&f, open, 0);
    rpc_gate_stats st;
    rpc_server_gate_stats(f.srv, &st);
    assert_int_equal(st.handshake_failures, 0);
    assert_int_equal(seen_kind(&s, RPC_REJECT_HANDSHAKE, NULL), 0);
    fix_stop(&f, 1000);
    pthread_mutex_destroy(&s.mu);
}

static void test_a_plaintext_server_still_limits_connections(void **state)
{
    pki *p = *state;
    seen s;
    seen_init(&s);
    fixture f;
    fix_start(
        &f,
        &(fix_cfg){.max_connections_per_addr = 2, .on_peer_rejected = on_rejected, .hook_ud = &s});
    int a = raw_connect(&f, "127.0.0.4"), b = raw_connect(&f, "127.0.0.4");
    WAIT_STAT(&f, accepted, 2);
    int c = raw_connect(&f, "127.0.0.4");
    assert_true(closed_by_server(c, FIX_TIMEOUT_MS));
    close(c);
    /* Another address is not affected. */
    assert_int_equal(call_once(p, &f, false), RPC_OK);
    close(a);
    close(b);
    WAIT_STAT_IS(&f, open, 0);
    rpc_gate_stats st;
    rpc_server_gate_stats(f.srv, &st);
    assert_int_equal(st.refused_addr_limit, 1);
    assert_int_equal(st.handshake_failures, 0); /* no TLS: nothing to count */
    /* A call marks its connection served, from the peer gRPC reports for it. */
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    rpc_client *cli;
    assert_int_equal(rpc_client_new(&o, &cli), 0);
    rpc_channel *ch;
    assert_int_equal(rpc_client_channel(cli, f.addr, 0, &ch), 0);
    assert_int_equal(fix_raw_get(ch), RPC_OK);
    rpc_server_gate_stats(f.srv, &st);
    assert_int_equal(st.open, 1);
    assert_int_equal(st.unserved, 0);
    rpc_client_free(cli);
    fix_stop(&f, 1000);
    pthread_mutex_destroy(&s.mu);
}

int main(void)
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_gate_refuses_past_the_limit_until_a_connection_closes),
        cmocka_unit_test(test_gate_caps_connections_per_address),
        cmocka_unit_test(test_served_connections_never_count_as_failed_handshakes),
        cmocka_unit_test(test_short_unserved_connections_count_and_long_idle_ones_do_not),
        cmocka_unit_test(test_a_reused_fd_number_ends_the_old_connection),
        cmocka_unit_test(test_banned_addresses_are_refused_and_reported_once_a_minute),
        cmocka_unit_test(test_failures_of_a_banned_address_are_not_reported_again),
        cmocka_unit_test(test_many_connections_grow_the_tables),
    };
    const struct CMUnitTest servers[] = {
        cmocka_unit_test(test_a_tls_server_closes_connections_past_its_limit_at_once),
        cmocka_unit_test(test_failed_handshakes_get_only_the_offending_address_refused),
        cmocka_unit_test(test_tcp_connect_and_close_floods_count_as_failed_handshakes),
        cmocka_unit_test(test_clients_that_make_calls_are_never_counted),
        cmocka_unit_test(test_an_idle_connection_after_a_good_handshake_is_not_counted),
        cmocka_unit_test(test_a_plaintext_server_still_limits_connections),
    };
    int rc = cmocka_run_group_tests_name("gate bookkeeping", unit, NULL, NULL);
    return rc + cmocka_run_group_tests_name("gate on servers", servers, setup, teardown);
}
