/*
 * rpc_gate.c: the connection gate of the gRPC servers: a bounded connection count, refusal
 * of banned source addresses at accept time, and failed TLS handshakes counted per source
 * address (contract of the internal API in rpc_int.h, options in rpc.h).
 *
 * Why an accept hook here. gRPC core 1.51 (Debian's libgrpc, C core) offers no accept or
 * handshake callback to applications: grpc_server_add_channel_from_fd refuses secure
 * credentials, GRPC_ARG_SOCKET_MUTATOR needs gRPC's internal grpc_socket_mutator struct, and
 * failed handshakes are logged and dropped inside the security connector. Its POSIX TCP
 * server (iomgr tcp_server_posix, the only listener in 1.51) accepts with
 * accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC) through the PLT of libgrpc.so (it
 * never calls accept), loops until accept4 fails with EAGAIN and then re-arms its
 * edge-triggered poller. So this file defines accept4 itself: a definition in an object
 * linked into the executable precedes libc's in the global lookup scope (ELF
 * interposition), so libgrpc's calls land here; the real accept4 is found with
 * dlsym(RTLD_NEXT), which is the sanitizer runtime's interceptor under gcc's ASan/TSan
 * (libasan.so follows the executable in the scope) and libc's otherwise; a failed dlsym
 * falls back to the raw system call. CMakeLists exports the symbol explicitly.
 *
 * Only sockets accepted on a port registered by a running rpc_server are gated (the
 * accepted socket's local port is its listener's): every other accept4 caller (the HTTP
 * server, tests) gets the real result after one atomic load. For a gated socket: its peer
 * address is refused at once (closed with SO_LINGER 0, so no TIME_WAIT is left behind)
 * when the peer gate says the address is banned, when the server holds max_connections
 * already, or when that address holds max_connections_per_addr; then the next pending
 * connection is accepted in the same call, and EAGAIN is returned when none is left, as
 * the real accept4 would.
 *
 * Connection lifetime without interposing close(): each admitted connection is remembered
 * as (peer ip:port, fd, socket inode, accept time, served flag) and the table is swept
 * lazily (by a sweeper thread every second, sooner when accepts arrive, and inline when a
 * limit is reached, at most every max(10 ms, 1 ms per 100 connections tracked)): an entry whose fd
 * is closed or now names another inode is gone. A call that reaches the server marks its connection
 * served (rpc__gate_served, from the peer string gRPC reports for the call; nothing happens per
 * call while no connection is unserved, which is the steady state). A connection whose TLS
 * handshake completed is served as well, calls or not: gRPC core creates a channelz socket node
 * ("chttp2 <peer>") for a connection only once its handshake is done, so each sweep that finds
 * unserved connections reads the established ones from grpc_channelz_get_server_sockets (public
 * API). With TLS, a connection that goes away unserved within the handshake timeout (plus
 * the sweep's slack) counts as a failed handshake for its source address: a client that did
 * not trust our certificate, a plaintext or garbage client, a TCP connect-and-close, a
 * handshake cut short. It is reported through on_peer_rejected (kind RPC_REJECT_HANDSHAKE,
 * reason "tls handshake failed or aborted"), which feeds the same brute-force guard and
 * audit log as refused certificates. Limits: a client that completes the handshake and
 * closes without a call within one sweep (under a second) counts, and so does a TCP health
 * probe that connects and closes, so probes must stay below the guard's rate (10 per minute
 * at the defaults); an unserved connection that lived longer than the handshake timeout is
 * not counted.
 *
 * Refusals at accept are counted per reason and reported to on_peer_rejected (kind
 * RPC_REJECT_CONNECTION) at most once per address per RATE_WINDOW_MS, so a flood from one
 * address writes one audit record a minute, not one per connection. Hooks run on the
 * sweeper thread, never under the gate's mutex and never on gRPC's poller thread.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <grpc/support/alloc.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "rpc/rpc_int.h"

#define SWEEP_INTERVAL_MS   1000   /* the sweeper's period */
#define SWEEP_MIN_GAP_MS    100    /* early sweeps (sweeper woken by accepts) at most this often */
#define SWEEP_INLINE_MIN_MS 10     /* a limit reached sweeps inline at most this often */
#define SWEEP_SLACK_MS      2000   /* lifetimes are measured at sweeps: this late at most */
#define GRPC_HANDSHAKE_MS   120000 /* gRPC's own handshake timeout when none is set */
#define RATE_SLOTS          256    /* accept refusals: one report per address per window */
#define RATE_WINDOW_MS      60000
#define REPORT_RING         256 /* reports waiting for the sweeper (more are dropped) */
#define REGISTRY_MAX        64  /* gated listening ports in one process */
#define PEER_LEN            64
#define HANDSHAKE_REASON    "tls handshake failed or aborted"

/* ---- keys and tables ------------------------------------------------------------------ */

/* A source address: IPv4 in ip[0..4) (IPv4-mapped IPv6 addresses count as IPv4), IPv6 in
 * ip[0..16); port 0 in the per-address table. Always fully zeroed before use (memcmp). */
typedef struct gkey {
    uint8_t ip[16];
    uint16_t port;
    uint8_t v6;
    uint8_t pad;
} gkey;

typedef struct gslot {
    gkey key;
    bool used;
    bool served;    /* connections: a call reached the server */
    int fd;         /* connections */
    uint32_t count; /* addresses: open connections from it */
    uint64_t ino;   /* connections: the socket's inode at accept */
    uint64_t accept_ms;
} gslot;

/* Linear probing with backward-shift deletion; grows at half load. */
typedef struct gtab {
    gslot *s;
    size_t cap; /* a power of two, or 0 */
    size_t n;
} gtab;

#define NONE SIZE_MAX

static uint64_t key_hash(const gkey *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    const uint8_t *p = (const uint8_t *)k;
    for (size_t i = 0; i < sizeof(*k); i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static size_t tab_find(const gtab *t, const gkey *k)
{
    if (t->cap == 0)
        return NONE;
    for (size_t i = key_hash(k) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->s[i].used)
            return NONE;
        if (memcmp(&t->s[i].key, k, sizeof(*k)) == 0)
            return i;
    }
}

static size_t tab_put_slot(gtab *t, const gkey *k)
{
    size_t i = key_hash(k) & (t->cap - 1);
    while (t->s[i].used)
        i = (i + 1) & (t->cap - 1);
    memset(&t->s[i], 0, sizeof(t->s[i]));
    t->s[i].key = *k;
    t->s[i].used = true;
    t->n++;
    return i;
}

/* Inserts @k (not present) and returns its slot, or NONE without memory. */
static size_t tab_insert(gtab *t, const gkey *k)
{
    if ((t->n + 1) * 2 > t->cap) {
        size_t cap = t->cap != 0 ? t->cap * 2 : 64;
        gslot *s = tkv_calloc(cap, sizeof(*s));
        if (s == NULL)
            return NONE;
        gtab nt = {.s = s, .cap = cap, .n = 0};
        for (size_t i = 0; i < t->cap; i++) {
            if (t->s[i].used) {
                size_t j = tab_put_slot(&nt, &t->s[i].key);
                nt.s[j] = t->s[i];
            }
        }
        tkv_free(t->s);
        *t = nt;
    }
    return tab_put_slot(t, k);
}

/* Removes slot @i; later entries of its cluster move back, so slot @i may hold another
 * entry afterwards. */
static void tab_delete(gtab *t, size_t i)
{
    size_t mask = t->cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->s[j].used)
            break;
        size_t home = key_hash(&t->s[j].key) & mask;
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->s[i] = t->s[j];
            i = j;
        }
    }
    t->s[i].used = false;
    t->n--;
}

static bool key_of_sockaddr(const struct sockaddr *sa, gkey *k)
{
    memset(k, 0, sizeof(*k));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memcpy(k->ip, &in->sin_addr, 4);
        k->port = ntohs(in->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(k->ip, &in6->sin6_addr.s6_addr[12], 4);
        } else {
            memcpy(k->ip, &in6->sin6_addr, 16);
            k->v6 = 1;
        }
        k->port = ntohs(in6->sin6_port);
        return true;
    }
    return false;
}

/* Parses gRPC's peer strings: "ipv4:10.0.0.1:5555", "ipv6:[::1]:5555" (or %5B..%5D). */
static bool key_of_peer(const char *peer, gkey *k)
{
    memset(k, 0, sizeof(*k));
    char ip[INET6_ADDRSTRLEN];
    const char *colon = strrchr(peer, ':');
    if (colon == NULL)
        return false;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port > 65535)
        return false;
    k->port = (uint16_t)port;
    const char *p;
    size_t n;
    if (strncmp(peer, "ipv4:", 5) == 0) {
        p = peer + 5;
        n = (size_t)(colon - p);
    } else if (strncmp(peer, "ipv6:", 5) == 0) {
        p = peer + 5;
        size_t open = p[0] == '[' ? 1 : strncmp(p, "%5B", 3) == 0 ? 3 : 0;
        size_t close = colon[-1] == ']'                                        ? 1
                       : (colon - p >= 3 && strncmp(colon - 3, "%5D", 3) == 0) ? 3
                                                                               : 0;
        if (open == 0 || close == 0 || (size_t)(colon - p) < open + close)
            return false;
        n = (size_t)(colon - p) - open - close;
        p += open;
        k->v6 = 1;
    } else {
        return false;
    }
    if (n == 0 || n >= sizeof(ip))
        return false;
    memcpy(ip, p, n);
    ip[n] = '\0';
    uint8_t buf[16];
    if (inet_pton(k->v6 ? AF_INET6 : AF_INET, ip, buf) != 1)
        return false;
    if (k->v6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)buf)) {
        memcpy(k->ip, buf + 12, 4);
        k->v6 = 0;
    } else {
        memcpy(k->ip, buf, k->v6 ? 16 : 4);
    }
    return true;
}

static void format_peer(const gkey *k, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (inet_ntop(k->v6 ? AF_INET6 : AF_INET, k->ip, ip, sizeof(ip)) == NULL)
        snprintf(ip, sizeof(ip), "?");
    if (k->v6)
        snprintf(out, cap, "ipv6:[%s]:%u", ip, (unsigned)k->port);
    else
        snprintf(out, cap, "ipv4:%s:%u", ip, (unsigned)k->port);
}

/* ---- the gate ------------------------------------------------------------------------- */

typedef struct report {
    rpc_reject_kind kind;
    int reason; /* RPC__ADMIT_* for connection refusals */
    char peer[PEER_LEN];
} report;

typedef struct rate_slot {
    gkey addr;
    uint64_t last_ms;
    bool used;
} rate_slot;

struct rpc__gate {
    rpc__gate_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gtab conns; /* by peer ip:port */
    gtab addrs; /* by peer ip, port 0 */
    atomic_long unserved;
    uint64_t last_sweep_ms;
    bool kicked;
    bool stop;
    bool thread_started;
    pthread_t thread;
    int port; /* registered listening port, 0 when none */

    report ring[REPORT_RING];
    size_t ring_head, ring_len;
    rate_slot rate[RATE_SLOTS];

    atomic_ulong accepted, refused[4], failures, dropped_reports;
    tkv_series *m_open, *m_refused[4], *m_failures;
};

static const char *const refusal_names[4] = {"", "banned", "limit", "address_limit"};

static uint64_t gate_now(const rpc__gate *g)
{
    return g->o.now_ms != NULL ? g->o.now_ms(g->o.clock_ud) : tkv_clock_mono_ms();
}

void rpc__gate_opts_init(rpc__gate_opts *o)
{
    memset(o, 0, sizeof(*o));
}

int rpc__gate_new(const rpc__gate_opts *o, rpc__gate **out)
{
    if (o == NULL || out == NULL || o->max_connections < 0 || o->max_connections_per_addr < 0)
        return -EINVAL;
    rpc__gate *g = tkv_calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    g->o = *o;
    if (g->o.handshake_timeout_ms <= 0)
        g->o.handshake_timeout_ms = GRPC_HANDSHAKE_MS;
    TKV_ASSERT(pthread_mutex_init(&g->mu, NULL) == 0);
    TKV_ASSERT(pthread_cond_init(&g->cv, NULL) == 0);
    tkv_metric *open =
        tkv_metric_gauge("tikv_server_grpc_connections",
                         "gRPC connections open (tracked by the connection gate)", NULL);
    tkv_metric *refused = tkv_metric_counter(
        "tikv_server_grpc_connections_refused_total",
        "gRPC connections closed at accept: banned address, connection limit, per-address limit",
        "reason");
    tkv_metric *fails = tkv_metric_counter(
        "tikv_server_tls_handshake_failures_total",
        "TLS connections that went away without a call within the handshake timeout", NULL);
    g->m_open = open != NULL ? tkv_metric_with(open) : NULL;
    for (int r = 1; r < 4; r++)
        g->m_refused[r] = refused != NULL ? tkv_metric_with(refused, refusal_names[r]) : NULL;
    g->m_failures = fails != NULL ? tkv_metric_with(fails) : NULL;
    *out = g;
    return 0;
}

static void kick_locked(rpc__gate *g)
{
    if (!g->kicked) {
        g->kicked = true;
        pthread_cond_signal(&g->cv);
    }
}

static void push_report_locked(rpc__gate *g, rpc_reject_kind kind, int reason, const char *peer)
{
    if (g->ring_len == REPORT_RING) {
        atomic_fetch_add(&g->dropped_reports, 1);
        return;
    }
    report *r = &g->ring[(g->ring_head + g->ring_len) % REPORT_RING];
    r->kind = kind;
    r->reason = reason;
    snprintf(r->peer, sizeof(r->peer), "%s", peer);
    g->ring_len++;
    kick_locked(g);
}

/* The connection in slot @i went away: per-address count, served bookkeeping, and with TLS a
 * failed handshake when it never carried a call and was short-lived. */
static void conn_gone_locked(rpc__gate *g, size_t i, uint64_t now)
{
    gslot e = g->conns.s[i];
    tab_delete(&g->conns, i);
    gkey ak = e.key;
    ak.port = 0;
    size_t a = tab_find(&g->addrs, &ak);
    if (a != NONE && --g->addrs.s[a].count == 0)
        tab_delete(&g->addrs, a);
    if (g->m_open != NULL)
        tkv_series_add(g->m_open, -1);
    if (e.served)
        return;
    atomic_fetch_sub(&g->unserved, 1);
    uint64_t lived = now >= e.accept_ms ? now - e.accept_ms : 0;
    if (!g->o.count_failures || lived > (uint64_t)g->o.handshake_timeout_ms + SWEEP_SLACK_MS)
        return;
    atomic_fetch_add(&g->failures, 1);
    if (g->m_failures != NULL)
        tkv_series_inc(g->m_failures);
    char peer[PEER_LEN];
    format_peer(&e.key, peer, sizeof(peer));
    push_report_locked(g, RPC_REJECT_HANDSHAKE, 0, peer);
}

static bool conn_alive(const gslot *e)
{
    struct stat st;
    return fstat(e->fd, &st) == 0 && S_ISSOCK(st.st_mode) && (uint64_t)st.st_ino == e->ino;
}

static void sweep_locked(rpc__gate *g, uint64_t now)
{
    g->last_sweep_ms = now;
    for (size_t i = 0; i < g->conns.cap;) {
        if (g->conns.s[i].used && !conn_alive(&g->conns.s[i]))
            conn_gone_locked(g, i, now); /* slot i may hold a moved entry: look again */
        else
            i++;
    }
}

/* True when @g is over a limit for the address @ak. */
static int over_limit_locked(const rpc__gate *g, const gkey *ak)
{
    if (g->o.max_connections > 0 && g->conns.n >= (size_t)g->o.max_connections)
        return RPC__ADMIT_LIMIT;
    if (g->o.max_connections_per_addr > 0) {
        size_t a = tab_find(&g->addrs, ak);
        if (a != NONE && g->addrs.s[a].count >= (uint32_t)g->o.max_connections_per_addr)
            return RPC__ADMIT_ADDR_LIMIT;
    }
    return RPC__ADMIT_OK;
}

static int refuse(rpc__gate *g, const gkey *k, const char *peer, int reason)
{
    atomic_fetch_add(&g->refused[reason], 1);
    if (g->m_refused[reason] != NULL)
        tkv_series_inc(g->m_refused[reason]);
    gkey ak = *k;
    ak.port = 0;
    pthread_mutex_lock(&g->mu);
    uint64_t now = gate_now(g);
    rate_slot *r = &g->rate[key_hash(&ak) % RATE_SLOTS];
    if (!r->used || memcmp(&r->addr, &ak, sizeof(ak)) != 0 || now - r->last_ms >= RATE_WINDOW_MS) {
        r->used = true;
        r->addr = ak;
        r->last_ms = now;
        push_report_locked(g, RPC_REJECT_CONNECTION, reason, peer);
    }
    pthread_mutex_unlock(&g->mu);
    return reason;
}

/* How long after a sweep a limit may sweep again inline: long enough that sweeping (about
 * a microsecond per tracked connection) takes a few percent of the accepting thread at most
 * (1 ms per 100 connections), short enough that a burst of short-lived connections from one
 * client (thousands a second) is not refused for entries that are already closed. */
static uint64_t inline_sweep_gap_ms(const rpc__gate *g)
{
    return TKV_MAX((uint64_t)SWEEP_INLINE_MIN_MS, (uint64_t)g->conns.n / 100);
}

int rpc__gate_admit(rpc__gate *g, int fd, const struct sockaddr *peer_sa)
{
    gkey k;
    struct stat st;
    if (!key_of_sockaddr(peer_sa, &k) || fstat(fd, &st) != 0)
        return RPC__ADMIT_OK; /* not TCP/IP, or already gone: nothing to track */
    char peer[PEER_LEN];
    format_peer(&k, peer, sizeof(peer));
    if (g->o.peer_gate != NULL && !g->o.peer_gate(peer, g->o.hook_ud))
        return refuse(g, &k, peer, RPC__ADMIT_BANNED);
    gkey ak = k;
    ak.port = 0;
    pthread_mutex_lock(&g->mu);
    uint64_t now = gate_now(g);
    int over = over_limit_locked(g, &ak);
    if (over != RPC__ADMIT_OK && now - g->last_sweep_ms >= inline_sweep_gap_ms(g)) {
        sweep_locked(g, now);
        over = over_limit_locked(g, &ak);
    }
    if (over != RPC__ADMIT_OK) {
        kick_locked(g); /* swept too recently here: let the sweeper look again at once */
        pthread_mutex_unlock(&g->mu);
        return refuse(g, &k, peer, over);
    }
    /* The same peer ip:port again: the previous connection is gone. */
    size_t old = tab_find(&g->conns, &k);
    if (old != NONE)
        conn_gone_locked(g, old, now);
    size_t a = tab_find(&g->addrs, &ak);
    if (a == NONE)
        a = tab_insert(&g->addrs, &ak);
    size_t i = a != NONE ? tab_insert(&g->conns, &k) : NONE;
    if (i == NONE) {
        if (a != NONE && g->addrs.s[a].count == 0)
            tab_delete(&g->addrs, a);
        pthread_mutex_unlock(&g->mu);
        return RPC__ADMIT_OK; /* out of memory: admit untracked rather than refuse */
    }
    g->addrs.s[a].count++; /* inserting into conns leaves addrs' slots in place */
    gslot *e = &g->conns.s[i];
    e->fd = fd;
    e->ino = (uint64_t)st.st_ino;
    e->accept_ms = now;
    atomic_fetch_add(&g->unserved, 1);
    atomic_fetch_add(&g->accepted, 1);
    if (g->m_open != NULL)
        tkv_series_add(g->m_open, 1);
    if (now - g->last_sweep_ms >= SWEEP_MIN_GAP_MS)
        kick_locked(g);
    pthread_mutex_unlock(&g->mu);
    return RPC__ADMIT_OK;
}

bool rpc__gate_wants_peer(const rpc__gate *g)
{
    return atomic_load_explicit(&g->unserved, memory_order_relaxed) > 0;
}

static void mark_served(rpc__gate *g, const gkey *k);

void rpc__gate_served(rpc__gate *g, const char *peer)
{
    gkey k;
    if (key_of_peer(peer, &k))
        mark_served(g, &k);
}

/* Marks the connection keyed @k served (nothing when it is not tracked). */
static void mark_served(rpc__gate *g, const gkey *k)
{
    pthread_mutex_lock(&g->mu);
    size_t i = tab_find(&g->conns, k);
    if (i != NONE && !g->conns.s[i].served) {
        g->conns.s[i].served = true;
        atomic_fetch_sub(&g->unserved, 1);
    }
    pthread_mutex_unlock(&g->mu);
}

/* Reads the decimal after each @field ("\"socketId\":\"") in @js and returns the largest,
 * or -1. */
static intptr_t max_id(const char *js, const char *field)
{
    intptr_t best = -1;
    size_t n = strlen(field);
    for (const char *p = js; (p = strstr(p, field)) != NULL;) {
        p += n;
        long long v = strtoll(p, NULL, 10);
        if (v > best)
            best = (intptr_t)v;
    }
    return best;
}

/* The id fields of channelz's server and socket listings. */
static const char cz_server_id[] = "\"serverId\":\"";
static const char cz_socket_id[] = "\"socketId\":\"";

/* One page of a channelz listing under @parent (a server id, or unused), from id @start on:
 * gpr-allocated JSON, or NULL. */
typedef char *(*channelz_page_fn)(intptr_t parent, intptr_t start);

static char *servers_page(intptr_t parent, intptr_t start)
{
    (void)parent;
    return grpc_channelz_get_servers(start);
}

static char *server_sockets_page(intptr_t server, intptr_t start)
{
    return grpc_channelz_get_server_sockets(server, start, 0);
}

/* Hands every page of a channelz listing to @visit: the first starts at id 0, each next one
 * after the largest @id_field (cz_server_id, cz_socket_id) of the last, until a page says it is the
 * end (or ids stop growing). */
static void channelz_each_page(rpc__gate *g, channelz_page_fn page, intptr_t parent,
                               const char *id_field, void (*visit)(rpc__gate *g, const char *js))
{
    for (intptr_t start = 0;;) {
        char *js = page(parent, start);
        if (js == NULL)
            return;
        visit(g, js);
        intptr_t last = max_id(js, id_field);
        bool end = strstr(js, "\"end\":true") != NULL;
        gpr_free(js);
        if (end || last < start)
            return;
        start = last + 1;
    }
}

/* Marks served every tracked connection listed on one page of a server's sockets: gRPC
 * creates a socket's channelz node once its handshake (TLS, and HTTP/2 setup) is done, named
 * "chttp2 <peer>". */
static void mark_established_sockets(rpc__gate *g, const char *js)
{
    static const char tag[] = "\"name\":\"chttp2 ";
    for (const char *p = js; (p = strstr(p, tag)) != NULL;) {
        p += sizeof(tag) - 1;
        const char *q = strchr(p, '"');
        if (q == NULL || q - p >= PEER_LEN)
            break;
        char peer[PEER_LEN];
        memcpy(peer, p, (size_t)(q - p));
        peer[q - p] = '\0';
        gkey k;
        if (key_of_peer(peer, &k))
            mark_served(g, &k);
    }
}

/* Walks the sockets of every server listed on one page of channelz's servers. */
static void mark_established_servers(rpc__gate *g, const char *js)
{
    for (const char *p = js; (p = strstr(p, cz_server_id)) != NULL;) {
        p += sizeof(cz_server_id) - 1;
        channelz_each_page(g, server_sockets_page, (intptr_t)strtoll(p, NULL, 10), cz_socket_id,
                           mark_established_sockets);
    }
}

/* With TLS, a connection whose handshake completed is never a failed handshake, even
 * without calls (an idle pooled connection). gRPC core tells no one about handshakes, but
 * its channelz registry lists the established connections of every server in the process
 * (peers are unique per connection, so which server does not matter). Asked only while some
 * tracked connection is unserved; each one found is then served and not asked about again. */
static void mark_established(rpc__gate *g)
{
    if (!g->o.use_channelz || !rpc__gate_wants_peer(g))
        return;
    channelz_each_page(g, servers_page, 0, cz_server_id, mark_established_servers);
}

/* Hands the queued reports to on_peer_rejected, outside the mutex. A failed handshake from
 * an address that is banned already is not reported again (a flood is detected in one sweep;
 * only the failures up to the ban matter). */
static void deliver(rpc__gate *g)
{
    for (;;) {
        pthread_mutex_lock(&g->mu);
        if (g->ring_len == 0) {
            pthread_mutex_unlock(&g->mu);
            return;
        }
        report r = g->ring[g->ring_head];
        g->ring_head = (g->ring_head + 1) % REPORT_RING;
        g->ring_len--;
        pthread_mutex_unlock(&g->mu);
        if (g->o.on_peer_rejected == NULL)
            continue;
        if (r.kind == RPC_REJECT_HANDSHAKE && g->o.peer_gate != NULL &&
            !g->o.peer_gate(r.peer, g->o.hook_ud))
            continue;
        const char *reason = HANDSHAKE_REASON;
        if (r.kind == RPC_REJECT_CONNECTION)
            reason = r.reason == RPC__ADMIT_BANNED
                         ? "connection refused: address temporarily refused after repeated "
                           "failures"
                     : r.reason == RPC__ADMIT_LIMIT
                         ? "connection refused: server connection limit reached"
                         : "connection refused: per-address connection limit reached";
        rpc_peer_rejection rej = {.peer = r.peer,
                                  .cert_cn = "",
                                  .method = "",
                                  .code = r.kind == RPC_REJECT_HANDSHAKE  ? RPC_UNAUTHENTICATED
                                          : r.reason == RPC__ADMIT_BANNED ? RPC_PERMISSION_DENIED
                                                                          : RPC_RESOURCE_EXHAUSTED,
                                  .reason = reason,
                                  .kind = r.kind};
        g->o.on_peer_rejected(&rej, g->o.hook_ud);
    }
}

void rpc__gate_sweep(rpc__gate *g)
{
    if (g->o.count_failures)
        mark_established(g);
    pthread_mutex_lock(&g->mu);
    sweep_locked(g, gate_now(g));
    pthread_mutex_unlock(&g->mu);
    deliver(g);
}

void rpc__gate_stats(rpc__gate *g, rpc_gate_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    out->open = g->conns.n;
    pthread_mutex_unlock(&g->mu);
    out->accepted = atomic_load(&g->accepted);
    out->refused_banned = atomic_load(&g->refused[RPC__ADMIT_BANNED]);
    out->refused_limit = atomic_load(&g->refused[RPC__ADMIT_LIMIT]);
    out->refused_addr_limit = atomic_load(&g->refused[RPC__ADMIT_ADDR_LIMIT]);
    out->handshake_failures = atomic_load(&g->failures);
    long unserved = atomic_load(&g->unserved);
    out->unserved = unserved > 0 ? (uint64_t)unserved : 0;
}

static void *sweeper_main(void *arg)
{
    rpc__gate *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        if (!g->kicked)
            TKV_IGNORE(
                rpc__cond_wait_until(&g->cv, &g->mu, tkv_clock_mono_ms() + SWEEP_INTERVAL_MS));
        if (g->stop)
            break;
        g->kicked = false;
        pthread_mutex_unlock(&g->mu);
        rpc__gate_sweep(g);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* ---- accept4 interposition ------------------------------------------------------------ */

typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);

static struct {
    pthread_rwlock_t lk;
    int n;
    struct {
        int port;
        rpc__gate *g;
    } e[REGISTRY_MAX];
} registry = {.lk = PTHREAD_RWLOCK_INITIALIZER};
static atomic_int registry_n;

static accept4_fn real_accept4;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static int sys_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    return (int)syscall(SYS_accept4, fd, addr, len, flags);
}

static void resolve_real_accept4(void)
{
    void *p = dlsym(RTLD_NEXT, "accept4");
    if (p == NULL || p == (void *)accept4)
        real_accept4 = sys_accept4;
    else
        *(void **)&real_accept4 = p; /* POSIX's way to store a dlsym result */
}

static int local_port(int fd)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)&ss)->sin6_port);
    return -1;
}

/* Runs the gate for a freshly accepted @fd; a refused one is closed here. */
static bool gate_accepted(int fd)
{
    int port = local_port(fd);
    if (port <= 0)
        return true;
    int verdict = RPC__ADMIT_OK;
    pthread_rwlock_rdlock(&registry.lk);
    for (int i = 0; i < registry.n; i++) {
        if (registry.e[i].port != port)
            continue;
        struct sockaddr_storage peer;
        memset(&peer, 0, sizeof(peer));
        socklen_t len = sizeof(peer);
        if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0)
            verdict = rpc__gate_admit(registry.e[i].g, fd, (const struct sockaddr *)&peer);
        break;
    }
    pthread_rwlock_unlock(&registry.lk);
    if (verdict == RPC__ADMIT_OK)
        return true;
    struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* reset: no TIME_WAIT left here */
    TKV_IGNORE(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
    close(fd);
    return false;
}

/* Interposes libc's accept4 for the whole process (see the file comment). */
int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    TKV_IGNORE(pthread_once(&real_once, resolve_real_accept4));
    for (;;) {
        int c = real_accept4(fd, addr, addrlen, flags);
        if (c < 0 || atomic_load_explicit(&registry_n, memory_order_acquire) == 0)
            return c;
        if (gate_accepted(c))
            return c;
    }
}

int rpc__gate_listen(rpc__gate *g, int port)
{
    if (port <= 0 || g->port != 0)
        return -EINVAL;
    pthread_rwlock_wrlock(&registry.lk);
    int rc = 0;
    for (int i = 0; i < registry.n && rc == 0; i++)
        if (registry.e[i].port == port)
            rc = TKV_EEXIST;
    if (rc == 0 && registry.n == REGISTRY_MAX)
        rc = -ENOSPC;
    if (rc == 0) {
        registry.e[registry.n].port = port;
        registry.e[registry.n].g = g;
        registry.n++;
        atomic_store_explicit(&registry_n, registry.n, memory_order_release);
        g->port = port;
    }
    pthread_rwlock_unlock(&registry.lk);
    if (rc != 0)
        return rc;
    rc = -pthread_create(&g->thread, NULL, sweeper_main, g);
    if (rc == 0) {
        g->thread_started = true;
        return 0;
    }
    rpc__gate_unlisten(g);
    return rc;
}

void rpc__gate_unlisten(rpc__gate *g)
{
    if (g == NULL || g->port == 0)
        return;
    pthread_rwlock_wrlock(&registry.lk);
    for (int i = 0; i < registry.n; i++) {
        if (registry.e[i].g == g) {
            registry.e[i] = registry.e[registry.n - 1];
            registry.n--;
            break;
        }
    }
    atomic_store_explicit(&registry_n, registry.n, memory_order_release);
    pthread_rwlock_unlock(&registry.lk);
    g->port = 0;
    if (g->thread_started) {
        pthread_mutex_lock(&g->mu);
        g->stop = true;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->thread, NULL);
        g->thread_started = false;
    }
}

void rpc__gate_free(rpc__gate *g)
{
    if (g == NULL)
        return;
    rpc__gate_unlisten(g);
    if (g->m_open != NULL)
        tkv_series_add(g->m_open, -(double)g->conns.n);
    tkv_free(g->conns.s);
    tkv_free(g->addrs.s);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    tkv_free(g);
}
