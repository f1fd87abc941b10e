/*
 * pd_main.c: the pd-server executable: flags (which override the TOML file), logging,
 * signals (SIGTERM/SIGINT stop gracefully), and the server's lifetime.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/metrics.h"
#include "pd/pd.h"
#include "rpc/rpc.h"
#include "security/datadir.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: pd-server [options]\n"
        "\n"
        "  --name NAME            member name (default \"pd\")\n"
        "  --client-urls URL      gRPC URL for clients and stores (default "
        "http://127.0.0.1:2379)\n"
        "  --data-dir DIR         data directory (default default.<name>)\n"
        "  --http-addr ADDR       HTTP API and /metrics (default 127.0.0.1:2381; \"\" disables)\n"
        "  --config FILE          TOML file with PD's keys; flags override it\n"
        "  --log-level LEVEL      trace, debug, info, warn, error (default info)\n"
        "  --log-file FILE        log file (default stderr)\n"
        "  --cacert FILE --cert FILE --key FILE\n"
        "                         TLS (PEM) for gRPC and the HTTP API: mutual TLS, https://\n"
        "  --help                 this text\n"
        "\n"
        "TOML keys: name, data-dir, client-urls, http-addr, lease, tso-save-interval,\n"
        "grpc-max-connections (10000), grpc-max-connections-per-address (1000),\n"
        "log.level, log.file.filename, [schedule] max-store-down-time, leader-schedule-limit,\n"
        "region-schedule-limit, replica-schedule-limit, patrol-region-interval,\n"
        "split-merge-interval, max-snapshot-count, max-pending-peer-count,\n"
        "fast-operator-timeout, slow-operator-timeout, store-disconnect-time,\n"
        "[replication] max-replicas, location-labels,\n"
        "[security] cacert-path, cert-path, key-path, cert-allowed-cn, cert-allowed-san,\n"
        "audit-log.\n");
}

typedef struct flag {
    const char *name;
    char *dst;
    size_t cap;
} flag;

/* Returns the value of "--name value" or "--name=value" at argv[*i] (advancing *i), or NULL
 * when argv[*i] is not @name. Sets *@missing when the value is absent. */
static const char *flag_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (a == NULL || strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

int main(int argc, char **argv)
{
    sec_private_umask(); /* issue 9: every file and directory PD creates is private */
    pd_config cfg;
    pd_config_init(&cfg);
    char err[TKV_ERRMSG_LEN];
    bool data_dir_set = false;
    const char *config_path = NULL; /* issue 9: [security.encryption] is read from it too */

    /* The file first, wherever --config appears; then every flag on top of it. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        bool missing = false;
        const char *path = flag_value(argc, argv, &i, "--config", &missing);
        if (missing) {
            fprintf(stderr, "pd-server: --config needs a value\n");
            return 2;
        }
        if (path != NULL)
            config_path = path;
        if (path != NULL && pd_config_load_file(&cfg, path, err) != 0) {
            fprintf(stderr, "pd-server: config %s: %s\n", path, err);
            return 1;
        }
    }
    char ignored[1024];
    flag flags[] = {
        {"--name", cfg.name, sizeof(cfg.name)},
        {"--client-urls", cfg.client_urls, sizeof(cfg.client_urls)},
        {"--data-dir", cfg.data_dir, sizeof(cfg.data_dir)},
        {"--http-addr", cfg.http_addr, sizeof(cfg.http_addr)},
        {"--log-level", cfg.log_level, sizeof(cfg.log_level)},
        {"-L", cfg.log_level, sizeof(cfg.log_level)},
        {"--log-file", cfg.log_file, sizeof(cfg.log_file)},
        {"--config", ignored, sizeof(ignored)},
        /* TLS branch: PD's TLS flags ([security] cacert-path, cert-path, key-path) */
        {"--cacert", cfg.cacert_path, sizeof(cfg.cacert_path)},
        {"--cert", cfg.cert_path, sizeof(cfg.cert_path)},
        {"--key", cfg.key_path, sizeof(cfg.key_path)},
    };
    for (int i = 1; i < argc; i++) {
        bool matched = false;
        for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]) && !matched; f++) {
            bool missing = false;
            const char *v = flag_value(argc, argv, &i, flags[f].name, &missing);
            if (missing) {
                fprintf(stderr, "pd-server: %s needs a value\n", flags[f].name);
                return 2;
            }
            if (v == NULL)
                continue;
            if (strlen(v) >= flags[f].cap) {
                fprintf(stderr, "pd-server: %s: value too long\n", flags[f].name);
                return 2;
            }
            snprintf(flags[f].dst, flags[f].cap, "%s", v);
            data_dir_set = data_dir_set || flags[f].dst == cfg.data_dir;
            matched = true;
        }
        if (!matched) {
            fprintf(stderr, "pd-server: unknown argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (cfg.data_dir[0] == '\0' && !data_dir_set)
        snprintf(cfg.data_dir, sizeof(cfg.data_dir), "default.%s", cfg.name);

    tkv_log_level lvl;
    if (tkv_log_parse_level(cfg.log_level, &lvl) != 0) {
        fprintf(stderr, "pd-server: unknown log level '%s'\n", cfg.log_level);
        return 2;
    }
    tkv_log_set_level(lvl);
    if (cfg.log_file[0] != '\0') {
        int rc = tkv_log_open_file(cfg.log_file);
        if (rc != 0) {
            fprintf(stderr, "pd-server: open log file %s: %s\n", cfg.log_file, tkv_strerror(rc));
            return 1;
        }
    }

    /* Every thread inherits this mask; the main thread takes the signals with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    TKV_LOG_INFO("Welcome to tikv-c PD", TKV_LF_STR("name", cfg.name),
                 TKV_LF_STR("client_urls", cfg.client_urls), TKV_LF_STR("data_dir", cfg.data_dir),
                 TKV_LF_STR("http_addr", cfg.http_addr));
    rpc_init();
    pd_server *s = NULL;
    /* ---- issue 9: private data directory, encryption at rest of PD's store ---- */
    sec_runtime *sec = NULL;
    int rc = pd_security_open(config_path, cfg.data_dir, &sec, err);
    cfg.rocksdb_env = sec != NULL ? sec_runtime_rocksdb_env(sec) : NULL;
    /* ---- end issue 9 ---- */
    if (rc == 0)
        rc = pd_server_new(&cfg, &s, err);
    if (rc == 0)
        rc = pd_server_start(s, err);
    if (rc != 0) {
        TKV_LOG_FATAL("pd-server failed to start", TKV_LF_STR("error", err), TKV_LF_ERR("err", rc));
        fprintf(stderr, "pd-server: %s\n", err);
        pd_server_free(s);
        sec_runtime_close(sec); /* issue 9 */
        rpc_shutdown();
        tkv_metrics_reset();
        tkv_log_close();
        return 1;
    }
    int sig = 0;
    sigwait(&set, &sig);
    TKV_LOG_INFO("received signal, stopping",
                 TKV_LF_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    pd_server_stop(s);
    pd_server_free(s);
    sec_runtime_close(sec); /* issue 9: after the store that uses its environment */
    rpc_shutdown();
    tkv_metrics_reset();
    TKV_LOG_INFO("pd-server exited");
    tkv_log_close();
    return 0;
}
