/*
 * sec_tls.c: reloadable TLS identities and peer verification (contract in tls.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/log.h"
#include "security/tls.h"

/* Largest PEM file accepted. */
#define PEM_MAX_BYTES (1u << 20)
/* Verification results remembered (by leaf certificate). */
#define CACHE_SLOTS 64
/* How long a cached result is trusted before the chain is verified again (validity dates). */
#define CACHE_TTL_MS 60000

typedef struct file_id {
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_id;

/* One loaded set of files. */
typedef struct tls_set {
    char *ca, *cert, *key;
    X509_STORE *store; /* NULL without a CA */
} tls_set;

typedef struct cache_entry {
    uint8_t digest[32];
    uint64_t generation;
    uint64_t checked_ms;
    sec_tls_peer result;
} cache_entry;

struct sec_tls {
    char *paths[3]; /* ca, cert, key (NULL when not set) */
    char **allowed_cn;
    char **allowed_san;
    pthread_mutex_t mu;
    tls_set cur;
    file_id ids[3];
    file_id refused[3]; /* the last set that failed to load */
    bool have_refused;
    uint64_t generation;
    cache_entry cache[CACHE_SLOTS];
    unsigned cache_next;
};

static int fail(char err[TKV_ERRMSG_LEN], const char *fmt, ...) TKV_PRINTF(2, 3);

static int fail(char err[TKV_ERRMSG_LEN], const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, TKV_ERRMSG_LEN, fmt, ap);
        va_end(ap);
    }
    return TKV_ECONFIG;
}

/* ---- files ---------------------------------------------------------------------------- */

static void stat_id(const char *path, file_id *id)
{
    memset(id, 0, sizeof(*id));
    struct stat st;
    if (path == NULL || stat(path, &st) != 0)
        return;
    id->present = true;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
}

static bool same_id(const file_id *a, const file_id *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Reads the whole file at @path into a NUL-terminated heap string. */
static int read_text(const char *path, char **out, char err[TKV_ERRMSG_LEN])
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return fail(err, "open %s: %s", path, strerror(errno));
    tkv_buf b;
    tkv_buf_init(&b);
    char chunk[4096];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > PEM_MAX_BYTES)
            rc = fail(err, "read %s: larger than 1 MiB", path);
        else
            rc = tkv_buf_append(&b, chunk, n);
    }
    if (rc == 0 && ferror(f))
        rc = fail(err, "read %s: I/O error", path);
    fclose(f);
    if (rc == 0 && b.len == 0)
        rc = fail(err, "read %s: empty file", path);
    if (rc == 0)
        rc = tkv_buf_append_u8(&b, 0);
    if (rc != 0) {
        tkv_buf_deinit(&b);
        return rc;
    }
    size_t len;
    *out = (char *)tkv_buf_steal(&b, &len);
    return 0;
}

static void set_free(tls_set *s)
{
    if (s->key != NULL)
        OPENSSL_cleanse(s->key, strlen(s->key));
    tkv_free(s->ca);
    tkv_free(s->cert);
    tkv_free(s->key);
    X509_STORE_free(s->store);
    memset(s, 0, sizeof(*s));
}

/* Builds a store from every certificate in the PEM bundle @ca. */
static int build_store(const char *ca, const char *path, X509_STORE **out, char err[TKV_ERRMSG_LEN])
{
    BIO *bio = BIO_new_mem_buf(ca, -1);
    X509_STORE *store = X509_STORE_new();
    if (bio == NULL || store == NULL) {
        BIO_free(bio);
        X509_STORE_free(store);
        return -ENOMEM;
    }
    int n = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(store, x);
        X509_free(x);
        if (ok != 1) {
            BIO_free(bio);
            X509_STORE_free(store);
            ERR_clear_error();
            return fail(err, "%s: a CA certificate cannot be used", path);
        }
        n++;
    }
    ERR_clear_error(); /* the end of the bundle reads as an error */
    BIO_free(bio);
    if (n == 0) {
        X509_STORE_free(store);
        return fail(err, "%s: no PEM certificate in the file", path);
    }
    *out = store;
    return 0;
}

/* Checks that @cert holds a certificate and @key a private key that belongs to it. */
static int check_pair(const char *cert, const char *key, const char *cert_path,
                      const char *key_path, char err[TKV_ERRMSG_LEN])
{
    BIO *cb = BIO_new_mem_buf(cert, -1);
    BIO *kb = BIO_new_mem_buf(key, -1);
    X509 *x = cb != NULL ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb != NULL ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int rc = 0;
    if (cb == NULL || kb == NULL)
        rc = -ENOMEM;
    else if (x == NULL)
        rc = fail(err, "%s: no PEM certificate in the file", cert_path);
    else if (k == NULL)
        rc = fail(err, "%s: no PEM private key in the file (encrypted keys are not supported)",
                  key_path);
    else if (X509_check_private_key(x, k) != 1)
        rc = fail(err, "%s does not belong to the certificate in %s", key_path, cert_path);
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

/* Loads the files of @t into @s. */
static int load_set(const sec_tls *t, tls_set *s, char err[TKV_ERRMSG_LEN])
{
    memset(s, 0, sizeof(*s));
    int rc = 0;
    if (t->paths[0] != NULL)
        rc = read_text(t->paths[0], &s->ca, err);
    if (rc == 0 && t->paths[1] != NULL)
        rc = read_text(t->paths[1], &s->cert, err);
    if (rc == 0 && t->paths[2] != NULL)
        rc = read_text(t->paths[2], &s->key, err);
    if (rc == 0 && s->ca != NULL)
        rc = build_store(s->ca, t->paths[0], &s->store, err);
    if (rc == 0 && s->cert != NULL)
        rc = check_pair(s->cert, s->key, t->paths[1], t->paths[2], err);
    if (rc != 0)
        set_free(s);
    return rc;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void free_list(char **l)
{
    for (char **p = l; p != NULL && *p != NULL; p++)
        tkv_free(*p);
    tkv_free(l);
}

static int copy_list(const char *const *in, char ***out)
{
    *out = NULL;
    if (in == NULL || in[0] == NULL)
        return 0;
    size_t n = 0;
    while (in[n] != NULL)
        n++;
    char **l = tkv_calloc(n + 1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((l[i] = tkv_strdup(in[i])) == NULL) {
            free_list(l);
            return -ENOMEM;
        }
    }
    *out = l;
    return 0;
}

static int dup_path(const char *p, char **out)
{
    *out = NULL;
    if (p == NULL || p[0] == '\0')
        return 0;
    return (*out = tkv_strdup(p)) == NULL ? -ENOMEM : 0;
}

int sec_tls_new(const sec_tls_opts *o, sec_tls **out, char err[TKV_ERRMSG_LEN])
{
    if (o == NULL || out == NULL)
        return -EINVAL;
    bool cert = o->cert_path != NULL && o->cert_path[0] != '\0';
    bool key = o->key_path != NULL && o->key_path[0] != '\0';
    if (cert != key)
        return fail(err, "cert-path and key-path must be set together");
    sec_tls *t = tkv_calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    int rc = pthread_mutex_init(&t->mu, NULL) == 0 ? 0 : -ENOMEM;
    if (rc != 0) {
        tkv_free(t);
        return rc;
    }
    rc = dup_path(o->ca_path, &t->paths[0]);
    if (rc == 0)
        rc = dup_path(o->cert_path, &t->paths[1]);
    if (rc == 0)
        rc = dup_path(o->key_path, &t->paths[2]);
    if (rc == 0)
        rc = copy_list(o->allowed_cn, &t->allowed_cn);
    if (rc == 0)
        rc = copy_list(o->allowed_san, &t->allowed_san);
    if (rc == 0) {
        for (int i = 0; i < 3; i++)
            stat_id(t->paths[i], &t->ids[i]);
        rc = load_set(t, &t->cur, err);
    }
    if (rc != 0) {
        sec_tls_free(t);
        return rc;
    }
    t->generation = 1;
    *out = t;
    return 0;
}

void sec_tls_free(sec_tls *t)
{
    if (t == NULL)
        return;
    set_free(&t->cur);
    for (int i = 0; i < 3; i++)
        tkv_free(t->paths[i]);
    free_list(t->allowed_cn);
    free_list(t->allowed_san);
    pthread_mutex_destroy(&t->mu);
    tkv_free(t);
}

int sec_tls_refresh(sec_tls *t, char err[TKV_ERRMSG_LEN])
{
    file_id now[3];
    for (int i = 0; i < 3; i++)
        stat_id(t->paths[i], &now[i]);
    pthread_mutex_lock(&t->mu);
    bool changed = false, same_refused = t->have_refused;
    for (int i = 0; i < 3; i++) {
        changed = changed || !same_id(&now[i], &t->ids[i]);
        same_refused = same_refused && same_id(&now[i], &t->refused[i]);
    }
    pthread_mutex_unlock(&t->mu);
    if (!changed || same_refused)
        return 0;
    /* Load outside the lock: handshakes keep using the current set meanwhile. */
    tls_set s;
    int rc = load_set(t, &s, err);
    pthread_mutex_lock(&t->mu);
    if (rc != 0) {
        memcpy(t->refused, now, sizeof(now));
        t->have_refused = true;
    } else {
        tls_set old = t->cur;
        t->cur = s;
        memcpy(t->ids, now, sizeof(now));
        t->have_refused = false;
        t->generation++;
        s = old;
    }
    uint64_t gen = t->generation;
    pthread_mutex_unlock(&t->mu);
    if (rc != 0) {
        TKV_LOG_WARN("TLS files changed but cannot be used; keeping the previous ones",
                     TKV_LF_STR("cause", err != NULL ? err : ""));
        return rc;
    }
    set_free(&s);
    TKV_LOG_INFO("TLS certificates reloaded", TKV_LF_U64("generation", gen));
    return 1;
}

uint64_t sec_tls_generation(sec_tls *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t g = t->generation;
    pthread_mutex_unlock(&t->mu);
    return g;
}

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    return s == NULL || (*out = tkv_strdup(s)) != NULL ? 0 : -ENOMEM;
}

int sec_tls_material(sec_tls *t, char **ca, char **cert, char **key)
{
    pthread_mutex_lock(&t->mu);
    int rc = dup_opt(t->cur.ca, ca);
    if (rc == 0)
        rc = dup_opt(t->cur.cert, cert);
    if (rc == 0)
        rc = dup_opt(t->cur.key, key);
    pthread_mutex_unlock(&t->mu);
    if (rc != 0) {
        tkv_free(*ca);
        tkv_free(*cert);
        tkv_free(*key);
        *ca = *cert = *key = NULL;
    }
    return rc;
}

bool sec_tls_admits_any(const sec_tls *t)
{
    return t->allowed_cn == NULL && t->allowed_san == NULL;
}

/* ---- peers ------------------------------------------------------------------------------ */

static bool listed(char **list, const unsigned char *name, size_t len)
{
    for (char **p = list; p != NULL && *p != NULL; p++)
        if (strlen(*p) == len && memcmp(*p, name, len) == 0)
            return true;
    return false;
}

/* Writes the printable form of @s (len bytes) into @out. */
static void printable(const unsigned char *s, size_t len, char *out, size_t cap)
{
    size_t n = TKV_MIN(len, cap - 1);
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    out[n] = '\0';
}

/* Copies the first common name of @x into @out and reports whether any common name is in
 * @allowed. */
static bool cn_allowed(X509 *x, char **allowed, char *out, size_t cap)
{
    out[0] = '\0';
    X509_NAME *name = X509_get_subject_name(x);
    bool ok = false, first = true;
    for (int i = -1; (i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0;) {
        ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        const unsigned char *p = ASN1_STRING_get0_data(d);
        size_t len = (size_t)ASN1_STRING_length(d);
        if (first)
            printable(p, len, out, cap);
        first = false;
        ok = ok || listed(allowed, p, len);
    }
    return ok;
}

/* Reports whether a subject alternative name of @x (DNS, URI, email, or an IP address in
 * text form) is in @allowed. */
static bool san_allowed(X509 *x, char **allowed)
{
    if (allowed == NULL)
        return false;
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    bool ok = false;
    for (int i = 0; !ok && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS || g->type == GEN_URI || g->type == GEN_EMAIL) {
            const ASN1_IA5STRING *s = g->d.ia5;
            ok = listed(allowed, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
        } else if (g->type == GEN_IPADD) {
            char text[INET6_ADDRSTRLEN];
            int len = ASN1_STRING_length(g->d.ip);
            const unsigned char *b = ASN1_STRING_get0_data(g->d.ip);
            if ((len == 4 && inet_ntop(AF_INET, b, text, sizeof(text)) != NULL) ||
                (len == 16 && inet_ntop(AF_INET6, b, text, sizeof(text)) != NULL))
                ok = listed(allowed, (const unsigned char *)text, strlen(text));
        }
    }
    GENERAL_NAMES_free(names);
    return ok;
}

/* Verifies @leaf (with the untrusted intermediates @chain) against the current CA store and
 * the allow-lists, filling @out. */
static void check_x509(sec_tls *t, X509 *leaf, STACK_OF(X509) * chain, sec_tls_peer *out)
{
    pthread_mutex_lock(&t->mu);
    X509_STORE *store = t->cur.store;
    if (store != NULL)
        X509_STORE_up_ref(store);
    pthread_mutex_unlock(&t->mu);
    bool any = sec_tls_admits_any(t);
    bool name_ok = cn_allowed(leaf, t->allowed_cn, out->cn, sizeof(out->cn));
    if (!name_ok)
        name_ok = any || san_allowed(leaf, t->allowed_san);
    X509_STORE_CTX *ctx = store != NULL ? X509_STORE_CTX_new() : NULL;
    int ok = 0;
    if (ctx != NULL && X509_STORE_CTX_init(ctx, store, leaf, chain) == 1) {
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
        ok = X509_verify_cert(ctx);
    }
    if (ok != 1) {
        out->verdict = SEC_TLS_PEER_UNTRUSTED;
        const char *why = store == NULL ? "no CA configured to verify it"
                          : ctx == NULL
                              ? "out of memory"
                              : X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
        snprintf(out->reason, sizeof(out->reason), "client certificate not trusted: %s", why);
    } else if (!name_ok) {
        out->verdict = SEC_TLS_PEER_NAME;
        snprintf(out->reason, sizeof(out->reason), "client certificate name not allowed");
    } else {
        out->verdict = SEC_TLS_PEER_OK;
    }
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
}

/* Looks @digest up in the cache; returns true with @out filled on a fresh hit. */
static bool cache_get(sec_tls *t, const uint8_t digest[32], sec_tls_peer *out)
{
    uint64_t now = tkv_clock_mono_ms();
    bool hit = false;
    pthread_mutex_lock(&t->mu);
    for (unsigned i = 0; i < CACHE_SLOTS && !hit; i++) {
        const cache_entry *e = &t->cache[i];
        if (e->generation == t->generation && now - e->checked_ms < CACHE_TTL_MS &&
            memcmp(e->digest, digest, 32) == 0) {
            *out = e->result;
            hit = true;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return hit;
}

static void cache_put(sec_tls *t, const uint8_t digest[32], uint64_t generation,
                      const sec_tls_peer *r)
{
    pthread_mutex_lock(&t->mu);
    cache_entry *e = &t->cache[t->cache_next++ % CACHE_SLOTS];
    memcpy(e->digest, digest, 32);
    e->generation = generation;
    e->checked_ms = tkv_clock_mono_ms();
    e->result = *r;
    pthread_mutex_unlock(&t->mu);
}

static void set_no_cert(sec_tls_peer *out)
{
    memset(out, 0, sizeof(*out));
    out->verdict = SEC_TLS_PEER_NO_CERT;
    snprintf(out->reason, sizeof(out->reason), "no client certificate");
}

/* Runs the check on parsed certificates, with the cache keyed by @digest. */
static void check_cached(sec_tls *t, const uint8_t digest[32], X509 *leaf, STACK_OF(X509) * chain,
                         sec_tls_peer *out)
{
    uint64_t gen = sec_tls_generation(t);
    check_x509(t, leaf, chain, out);
    cache_put(t, digest, gen, out);
}

static void digest_of(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32])
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned n = 0;
    if (m == NULL || EVP_DigestInit_ex(m, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(m, a, alen) != 1 || EVP_DigestUpdate(m, b, blen) != 1 ||
        EVP_DigestFinal_ex(m, out, &n) != 1)
        memset(out, 0, 32); /* a zero digest never matches a cached one by accident: the
                               caller's check still runs, the cache entry is just useless */
    EVP_MD_CTX_free(m);
}

/* Verifies the parsed leaf @x with the chain @st (either may be NULL after a failure @rc)
 * into @out, then frees both. */
static void finish_check(sec_tls *t, const uint8_t digest[32], X509 *x, STACK_OF(X509) * st, int rc,
                         sec_tls_peer *out)
{
    ERR_clear_error();
    if (rc != 0 || st == NULL) {
        out->verdict = SEC_TLS_PEER_UNTRUSTED;
        snprintf(out->reason, sizeof(out->reason), "out of memory verifying the certificate");
    } else if (x == NULL) {
        out->verdict = SEC_TLS_PEER_UNTRUSTED;
        snprintf(out->reason, sizeof(out->reason), "client certificate does not parse");
    } else {
        check_cached(t, digest, x, st, out);
    }
    X509_free(x);
    sk_X509_pop_free(st, X509_free);
}

int sec_tls_check_peer_pem(sec_tls *t, const char *leaf, size_t leaf_len, const char *chain,
                           size_t chain_len, sec_tls_peer *out)
{
    if (leaf == NULL || leaf_len == 0) {
        set_no_cert(out);
        return 0;
    }
    memset(out, 0, sizeof(*out));
    uint8_t digest[32];
    digest_of(leaf, leaf_len, chain != NULL ? chain : "", chain != NULL ? chain_len : 0, digest);
    if (cache_get(t, digest, out))
        return 0;
    BIO *lb = BIO_new_mem_buf(leaf, (int)leaf_len);
    X509 *x = lb != NULL ? PEM_read_bio_X509(lb, NULL, NULL, NULL) : NULL;
    STACK_OF(X509) *st = sk_X509_new_null();
    int rc = lb == NULL || st == NULL ? -ENOMEM : 0;
    if (rc == 0 && chain != NULL && chain_len > 0) {
        BIO *cb = BIO_new_mem_buf(chain, (int)chain_len);
        X509 *c;
        while (cb != NULL && (c = PEM_read_bio_X509(cb, NULL, NULL, NULL)) != NULL)
            if (sk_X509_push(st, c) <= 0)
                X509_free(c);
        BIO_free(cb);
    }
    finish_check(t, digest, x, st, rc, out);
    BIO_free(lb);
    return rc;
}

int sec_tls_check_peer_der(sec_tls *t, const uint8_t *const *certs, const size_t *lens, size_t n,
                           sec_tls_peer *out)
{
    if (n == 0 || certs == NULL || lens[0] == 0) {
        set_no_cert(out);
        return 0;
    }
    memset(out, 0, sizeof(*out));
    uint8_t digest[32];
    digest_of(certs[0], lens[0], "", 0, digest);
    if (cache_get(t, digest, out))
        return 0;
    const unsigned char *p = certs[0];
    X509 *x = d2i_X509(NULL, &p, (long)lens[0]);
    STACK_OF(X509) *st = sk_X509_new_null();
    for (size_t i = 1; st != NULL && i < n; i++) {
        const unsigned char *q = certs[i];
        X509 *c = d2i_X509(NULL, &q, (long)lens[i]);
        if (c != NULL && sk_X509_push(st, c) <= 0)
            X509_free(c);
    }
    int rc = st == NULL ? -ENOMEM : 0;
    finish_check(t, digest, x, st, rc, out);
    return rc;
}
