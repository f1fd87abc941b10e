/*
 * tls.h: TLS identities for the servers: the PEM files of [security] ca-path, cert-path and
 * key-path, reloaded when they change on disk, and the verification of a peer's certificate
 * chain and name, shared by the gRPC layer (src/rpc) and the HTTPS status and API servers
 * (src/http).
 *
 *   - A sec_tls holds the current CA bundle, certificate chain and private key as PEM text,
 *     with an OpenSSL X509_STORE built from the CA bundle. sec_tls_refresh() stats the three
 *     files and, when one changed, loads and checks the new set (every file parses, the key
 *     matches the certificate) before it replaces the old one: a half-written rotation (new
 *     certificate, old key) is refused and the old set stays in use until the files agree.
 *   - sec_tls_check_peer_*() verifies a peer's leaf certificate against the CA bundle with
 *     OpenSSL (chain, validity dates, purpose TLS client) and matches its names against the
 *     exact allow-lists: the subject common name against allowed_cn, the subject alternative
 *     names (DNS, URI, email, IP in text form) against allowed_san, byte for byte, whole names
 *     only ("tikv" does not admit "evil-tikv-client"). Results are cached per leaf certificate
 *     (SHA-256) and generation of the files, so a long-lived client costs one verification.
 *
 * Why verification is ours and not the TLS library's: the servers accept a handshake from a
 * client without a certificate, or with one the CA did not sign, and refuse its calls
 * instead. Only then does the refusal have a peer address, a method and a certificate name
 * for the audit log and the brute-force guard; a failed handshake reaches no application
 * code in gRPC's C core. No call or request is served before this check passed.
 *
 * Owns: the PEM texts, the X509_STORE, the name lists (copied) and the cache.
 * Threads: every function is thread-safe (one mutex; verification runs outside it).
 * Errors: 0 or negative: TKV_ECONFIG (a file is missing, unreadable, not PEM, or the key does
 * not match the certificate: @err says which), -ENOMEM, -EINVAL.
 * Dependencies: base, OpenSSL libcrypto (X509, PEM, EVP). Library: tkv_security_tls (no
 * RocksDB), so clients and the rpc module can link it alone.
 */
#ifndef TKV_SEC_TLS_H
#define TKV_SEC_TLS_H

#include "base/base.h"

typedef struct sec_tls sec_tls;

typedef struct sec_tls_opts {
    const char *ca_path;   /* CA bundle verifying peers (required for peer checks) */
    const char *cert_path; /* our certificate chain (required with key_path) */
    const char *key_path;  /* our private key */
    /* Exact-name allow-lists, NULL-terminated, copied; both NULL admit any verified peer. */
    const char *const *allowed_cn;
    const char *const *allowed_san;
} sec_tls_opts;

/* Loads the files named by @o (each must exist and parse; cert and key together) into a new
 * sec_tls. Errors: TKV_ECONFIG (@err names the file and the problem), -ENOMEM, -EINVAL. */
TKV_MUST_USE int sec_tls_new(const sec_tls_opts *o, sec_tls **out, char err[TKV_ERRMSG_LEN]);

/* Frees @t; NULL is a no-op. */
void sec_tls_free(sec_tls *t);

/* Stats the files and reloads them when one changed (size, modification time, inode).
 * Returns 1 when a new set was loaded, 0 when nothing changed, or a negative code when the
 * files changed but the new set is unusable (the old set stays; @err says why, and the same
 * unusable set is reported once, then answered with 0 until the files change again). */
int sec_tls_refresh(sec_tls *t, char err[TKV_ERRMSG_LEN]);

/* Returns how many times the set was (re)loaded: 1 after sec_tls_new. */
uint64_t sec_tls_generation(sec_tls *t);

/* Copies the current PEM texts into heap strings (*@ca may be NULL when no CA is configured;
 * free each with tkv_free). Errors: -ENOMEM. */
TKV_MUST_USE int sec_tls_material(sec_tls *t, char **ca, char **cert, char **key);

/* Returns true when the allow-lists are empty (any verified peer may call). */
bool sec_tls_admits_any(const sec_tls *t);

/* What a peer check found. Plain data. */
typedef enum sec_tls_verdict {
    SEC_TLS_PEER_OK = 0,
    SEC_TLS_PEER_NO_CERT = 1,   /* the peer presented no certificate */
    SEC_TLS_PEER_UNTRUSTED = 2, /* the chain does not verify against the CA bundle */
    SEC_TLS_PEER_NAME = 3,      /* verified, but no name is in an allow-list */
} sec_tls_verdict;

typedef struct sec_tls_peer {
    sec_tls_verdict verdict;
    char cn[128];     /* the leaf's first common name, printable ASCII ('?' for others) */
    char reason[160]; /* why it was refused ("" when OK) */
} sec_tls_peer;

/* Checks a peer given as PEM: @leaf (its certificate) and @chain (what it sent, possibly with
 * the leaf again; may be empty). Lengths are explicit: the texts need no NUL. A @leaf_len of
 * 0 means no certificate. Fills @out; returns 0, or -ENOMEM (@out says UNTRUSTED). */
int sec_tls_check_peer_pem(sec_tls *t, const char *leaf, size_t leaf_len, const char *chain,
                           size_t chain_len, sec_tls_peer *out);

/* As sec_tls_check_peer_pem with the certificates in DER, leaf first (@n 0: none). */
int sec_tls_check_peer_der(sec_tls *t, const uint8_t *const *certs, const size_t *lens, size_t n,
                           sec_tls_peer *out);

#endif /* TKV_SEC_TLS_H */
