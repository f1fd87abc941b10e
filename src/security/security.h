/*
 * security.h: the security building blocks of tikv-c (issue 9), one header per concept.
 *
 *   encryption.h  encryption at rest: key dictionary under a master key (AES-256-GCM), file
 *                 dictionary, the encrypting RocksDB environment (C++ shim), sec_file for our
 *                 own files, encryption meta without key material
 *   audit.h       hash-chained, append-only JSON-lines audit log and its verifier
 *   guard.h       per-address failure counting with bans (brute-force protection)
 *   datadir.h     private data directories and files, reserve-space, disk usage states,
 *                 open-file limit
 *   config.h      the [security] configuration with TiKV's key names, and the options each
 *                 block above takes from it
 *   runtime.h     what a server runs from them: private data directory, keys and encrypting
 *                 environment with timed data-key rotation, reserve-space placeholder and
 *                 the disk watcher behind the DiskFull region error
 * The certificate-name allow-lists (cert-allowed-cn, cert-allowed-san) live in the gRPC layer
 * (rpc.h, rpc_server_opts) with hooks this module plugs into.
 *
 * Owns: see each header. Threads: each header states its own; everything meant to be shared
 * between threads (sec_keys, sec_env, sec_audit, sec_guard) is thread-safe. Errors: 0 or a
 * negative TKV_E* / -errno code; open functions fill an error buffer with a clear cause and
 * never with key material. Dependencies: base, OpenSSL 3 (libcrypto, EVP only), jansson,
 * zlib (CRC-32), RocksDB's C++ API (the env shim only). Library: tkv_security.
 *
 * Usage (a server's start-up, in this order):
 *     sec_private_umask();
 *     sec_fd_limit_check(82920, &limit, &enough);
 *     tkv_cfg_bind(doc, sec_config_fields, SEC_CONFIG_N_FIELDS, &sc, NULL, NULL, err);
 *     sec_config_validate(&sc, err);
 *     sec_dir_create(data_dir); sec_dir_check_private(data_dir, &too_open);
 *     sec_reserve_space(data_dir, reserve_bytes);
 *     if (sec_config_audit_opts(&sc, &ao)) sec_audit_open(&ao, &audit, err);
 *     if (sec_config_encryption_on(&sc)) {
 *         sec_config_enc_opts(&sc, data_dir, &eo, err);
 *         sec_keys_open(&eo, &keys, err);
 *         sec_env_new(keys, &env);              // eng_options.rocksdb_env = sec_env_rocksdb(env)
 *     }
 *     sec_config_guard_opts(&sc, &go); sec_guard_new(&go, &guard);
 *     rpc_server_opts: cert_allowed_cn/san from sc, peer_gate -> sec_guard_allowed,
 *                      on_peer_rejected -> sec_guard_failure + sec_audit_log
 */
#ifndef TKV_SEC_SECURITY_H
#define TKV_SEC_SECURITY_H

#include "security/audit.h"
#include "security/config.h"
#include "security/datadir.h"
#include "security/encryption.h"
#include "security/guard.h"
#include "security/runtime.h"

#endif /* TKV_SEC_SECURITY_H */
