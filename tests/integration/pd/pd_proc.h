/*
 * pd_proc.h: running the real pd-server binary from tests: free ports on 127.0.0.1, temp
 * data directories, start with a log file, stop by PID (SIGTERM, then SIGKILL after a
 * bound), wait until it answers, HTTP GET/POST against its API (libcurl), and running a
 * program (pd-ctl) to completion with its output captured.
 *
 * Owns: the child process (pdp_stop reaps it) and the temp directory (pdp_cleanup removes
 * it). Single-threaded.
 */
#ifndef TKV_TEST_PD_PROC_H
#define TKV_TEST_PD_PROC_H

#include <sys/types.h>

#include "base/base.h"
#include "rpc/rpc.h"

typedef struct pdp {
    char bin[1024];   /* pd-server path ($TKV_PD_SERVER) */
    char dir[256];    /* temp directory: data in dir/data, log in dir/pd.log */
    char config[512]; /* dir/pd.toml when written */
    int grpc_port, http_port;
    char grpc_addr[64], http_addr[64];
    pid_t pid;
    int exit_status; /* of the last stop */
} pdp;

/* Returns a port that was free on 127.0.0.1 a moment ago. */
int pdp_free_port(void);
/* Prepares @p: binary from $TKV_PD_SERVER, a temp dir, two free ports. Fails the test when
 * the binary is missing. @toml (may be NULL) is written as the config file. */
void pdp_init(pdp *p, const char *toml);
/* Starts pd-server and waits (at most 20 s) until GetMembers answers. */
void pdp_start(pdp *p);
/* Stops it by PID: SIGTERM and wait (at most 20 s), else SIGKILL. Returns the exit status
 * (0 for a clean exit). */
int pdp_stop(pdp *p);
/* Stops if running and removes the temp directory. */
void pdp_cleanup(pdp *p);
/* Prints the last lines of the log (for failures). */
void pdp_dump_log(const pdp *p);

/* HTTP request to the API: @method "GET"/"POST"/"DELETE", @path "/pd/api/v1/stores", @body
 * may be NULL. Returns the HTTP status (0 on transport failure); the body goes to @out. */
long pdp_http(const pdp *p, const char *method, const char *path, const char *body, tkv_buf *out);

/* Runs @argv (argv[0] is the program path) to completion with stdout captured in @out;
 * returns its exit status, or -1. */
int pdp_run(char *const argv[], tkv_buf *out);

#endif /* TKV_TEST_PD_PROC_H */
