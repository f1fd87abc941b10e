/*
 * rpc_tls.c: credentials for both sides and the server's per-call peer check.
 *
 * Server: SSL credentials whose certificate config comes from a fetcher that gRPC calls at
 * every new connection; the fetcher stats the PEM files (sec_tls_refresh) and hands gRPC a
 * new config when they changed, so rotated certificates and CA bundles take effect for new
 * connections without a restart. With a CA the server requests a client certificate but lets
 * the handshake finish without one (GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY):
 * every call is then checked here (chain, names) before any handler runs, so refusals carry
 * the peer address and method (see security/tls.h for why).
 *
 * Client: TLS credentials over gRPC's file-watcher certificate provider, which re-reads the
 * CA, certificate and key every few seconds; new connections use what it read last. The
 * server's certificate and host name are verified by gRPC as with plain SSL credentials.
 */
#include <stdio.h>

#include <grpc/support/alloc.h>

#include "base/log.h"
#include "rpc/rpc_int.h"

bool rpc__tls_enabled(const rpc_tls *tls)
{
    return tls != NULL && (tls->ca_path != NULL || tls->cert_path != NULL || tls->key_path != NULL);
}

/* ---- server ---------------------------------------------------------------------------- */

static grpc_ssl_certificate_config_reload_status
fetch_config(void *ud, grpc_ssl_server_certificate_config **c)
{
    rpc__server_tls *st = ud;
    char err[TKV_ERRMSG_LEN];
    bool first = !atomic_exchange(&st->fetched, true);
    int changed = sec_tls_refresh(st->id, err);
    if (!first && changed <= 0)
        return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    char *ca = NULL, *cert = NULL, *key = NULL;
    if (sec_tls_material(st->id, &ca, &cert, &key) != 0) {
        atomic_store(&st->fetched, !first);
        return first ? GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL
                     : GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    *c = grpc_ssl_server_certificate_config_create(ca, &pair, 1);
    if (key != NULL)
        memset(key, 0, strlen(key));
    tkv_free(ca);
    tkv_free(cert);
    tkv_free(key);
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

int rpc__server_tls_init(rpc__server_tls *st, const rpc_tls *tls, const char *const *allowed_cn,
                         const char *const *allowed_san, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    atomic_init(&st->fetched, false);
    if (!rpc__tls_enabled(tls)) {
        st->creds = grpc_insecure_server_credentials_create();
        return 0;
    }
    if (tls->cert_path == NULL || tls->key_path == NULL) {
        snprintf(err, errlen, "a TLS server needs cert-path and key-path");
        return TKV_ECONFIG;
    }
    sec_tls_opts o = {.ca_path = tls->ca_path,
                      .cert_path = tls->cert_path,
                      .key_path = tls->key_path,
                      .allowed_cn = allowed_cn,
                      .allowed_san = allowed_san};
    char e[TKV_ERRMSG_LEN];
    int rc = sec_tls_new(&o, &st->id, e);
    if (rc != 0) {
        snprintf(err, errlen, "%s", rc == -ENOMEM ? "out of memory" : e);
        return rc;
    }
    st->mtls = tls->ca_path != NULL;
    grpc_ssl_server_credentials_options *so =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(
            st->mtls ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY
                     : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            fetch_config, st);
    st->creds = so != NULL ? grpc_ssl_server_credentials_create_with_options(so) : NULL;
    if (st->creds == NULL) {
        snprintf(err, errlen, "gRPC rejected the TLS server credentials");
        sec_tls_free(st->id);
        st->id = NULL;
        return TKV_ECONFIG;
    }
    return 0;
}

void rpc__server_tls_deinit(rpc__server_tls *st)
{
    if (st->creds != NULL)
        grpc_server_credentials_release(st->creds);
    sec_tls_free(st->id);
    memset(st, 0, sizeof(*st));
}

/* Returns the first value of property @name in @ctx (not NUL-terminated), or NULL. */
static const char *auth_prop(grpc_auth_context *ctx, const char *name, size_t *len)
{
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, name);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    *len = p != NULL ? p->value_length : 0;
    return p != NULL ? p->value : NULL;
}

rpc_code rpc__server_tls_check(rpc__server_tls *st, grpc_call *call, sec_tls_peer *peer)
{
    memset(peer, 0, sizeof(*peer));
    if (!st->mtls)
        return RPC_OK;
    grpc_auth_context *ctx = grpc_call_auth_context(call);
    size_t leaf_len = 0, chain_len = 0;
    const char *leaf =
        ctx != NULL ? auth_prop(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME, &leaf_len) : NULL;
    const char *chain =
        ctx != NULL ? auth_prop(ctx, GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME, &chain_len) : NULL;
    if (sec_tls_check_peer_pem(st->id, leaf, leaf_len, chain, chain_len, peer) != 0)
        peer->verdict = SEC_TLS_PEER_UNTRUSTED;
    if (ctx != NULL)
        grpc_auth_context_release(ctx);
    switch (peer->verdict) {
    case SEC_TLS_PEER_OK:
        return RPC_OK;
    case SEC_TLS_PEER_NAME:
        return RPC_PERMISSION_DENIED;
    case SEC_TLS_PEER_NO_CERT:
    case SEC_TLS_PEER_UNTRUSTED:
        break;
    }
    return RPC_UNAUTHENTICATED;
}

/* ---- client ---------------------------------------------------------------------------- */

int rpc__channel_creds(const rpc_tls *tls, int refresh_s, grpc_channel_credentials **out, char *err,
                       size_t errlen)
{
    if (!rpc__tls_enabled(tls)) {
        *out = grpc_insecure_credentials_create();
        return 0;
    }
    if (tls->ca_path == NULL) {
        snprintf(err, errlen, "a TLS client needs ca-path to verify the server");
        return TKV_ECONFIG;
    }
    /* Check the files now, so a typo fails at start-up rather than at every connection. */
    sec_tls_opts so = {
        .ca_path = tls->ca_path, .cert_path = tls->cert_path, .key_path = tls->key_path};
    sec_tls *probe;
    char e[TKV_ERRMSG_LEN];
    int rc = sec_tls_new(&so, &probe, e);
    if (rc != 0) {
        snprintf(err, errlen, "%s", rc == -ENOMEM ? "out of memory" : e);
        return rc;
    }
    sec_tls_free(probe);
    grpc_tls_credentials_options *o = grpc_tls_credentials_options_create();
    grpc_tls_certificate_provider *p = grpc_tls_certificate_provider_file_watcher_create(
        tls->key_path, tls->cert_path, tls->ca_path, (unsigned)(refresh_s > 0 ? refresh_s : 5));
    grpc_tls_credentials_options_set_certificate_provider(o, p);
    grpc_tls_credentials_options_watch_root_certs(o);
    if (tls->cert_path != NULL)
        grpc_tls_credentials_options_watch_identity_key_cert_pairs(o);
    *out = grpc_tls_credentials_create(o);
    grpc_tls_certificate_provider_release(p);
    if (*out == NULL) {
        snprintf(err, errlen, "gRPC rejected the TLS client credentials");
        return TKV_ECONFIG;
    }
    return 0;
}
