/*
 * test_pki.h: test certificates made with the openssl CLI, for the TLS tests of several
 * modules (rpc, http, server). Not a library: test CMakeLists add test_pki.c to their
 * sources.
 *
 * Keys are EC P-256, certificates valid 2 days. Every helper fails the running cmocka test
 * when openssl fails.
 */
#ifndef TKV_TEST_PKI_H
#define TKV_TEST_PKI_H

/* Writes <@base>.pem and <@base>.key in @dir: a self-signed CA named @cn. */
void tpki_ca(const char *dir, const char *base, const char *cn);

/* Writes <@base>.pem and <@base>.key in @dir, signed by the CA <@ca>.pem/<@ca>.key, with
 * subject CN=@cn and the extension line @ext ("subjectAltName=DNS:x",
 * "extendedKeyUsage=clientAuth"). */
void tpki_cert(const char *dir, const char *ca, const char *base, const char *cn, const char *ext);

/* Replaces @dst_dir/@dst with @src_dir/@src by copy and rename (a new inode, atomically, as
 * an operator rotating a certificate would). */
void tpki_replace(const char *src_dir, const char *src, const char *dst_dir, const char *dst);

/* Creates @live and puts a server's files in it: ca.pem, server.pem and server.key, copied
 * from <@ca>.pem, <@server>.pem and <@server>.key in @dir. */
void tpki_live(const char *dir, const char *live, const char *ca, const char *server);

/* Runs a shell command and fails the test unless it exits 0. */
void tpki_run(const char *cmd);

#endif /* TKV_TEST_PKI_H */
