/*
 * pd_proc.c: see pd_proc.h.
 */
#include "pd_proc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "pdpb.pb-c.h"

int pdp_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

void pdp_init(pdp *p, const char *toml)
{
    memset(p, 0, sizeof(*p));
    const char *bin = getenv("TKV_PD_SERVER");
    if (bin == NULL)
        fail_msg("TKV_PD_SERVER is not set (the path of pd-server)");
    snprintf(p->bin, sizeof(p->bin), "%s", bin);
    assert_int_equal(access(p->bin, X_OK), 0);
    snprintf(p->dir, sizeof(p->dir), "/tmp/pd-it-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    p->grpc_port = pdp_free_port();
    do
        p->http_port = pdp_free_port();
    while (p->http_port == p->grpc_port);
    snprintf(p->grpc_addr, sizeof(p->grpc_addr), "127.0.0.1:%d", p->grpc_port);
    snprintf(p->http_addr, sizeof(p->http_addr), "127.0.0.1:%d", p->http_port);
    if (toml != NULL) {
        snprintf(p->config, sizeof(p->config), "%s/pd.toml", p->dir);
        FILE *f = fopen(p->config, "w");
        assert_non_null(f);
        fputs(toml, f);
        fclose(f);
    }
}

/* Returns true once GetMembers answers with a cluster id. */
static bool answers(const pdp *p)
{
    rpc_client_opts o;
    rpc_client_opts_init(&o);
    o.connect_timeout_ms = 500;
    rpc_client *cli;
    if (rpc_client_new(&o, &cli) != 0)
        return false;
    rpc_channel *ch;
    bool ok = false;
    if (rpc_client_channel(cli, p->grpc_addr, 0, &ch) == 0) {
        Pdpb__GetMembersRequest req = PDPB__GET_MEMBERS_REQUEST__INIT;
        ProtobufCMessage *resp;
        rpc_status st;
        if (rpc_unary_msg(ch, "/pdpb.PD/GetMembers", &req.base,
                          &pdpb__get_members_response__descriptor, 1000, &resp, &st) == 0) {
            Pdpb__GetMembersResponse *r = (Pdpb__GetMembersResponse *)resp;
            ok = r->header != NULL && r->header->cluster_id != 0;
            rpc_msg_free(resp);
        }
    }
    rpc_client_free(cli);
    return ok;
}

void pdp_start(pdp *p)
{
    char data[300], log[300], url[100];
    snprintf(data, sizeof(data), "%s/data", p->dir);
    snprintf(log, sizeof(log), "%s/pd.log", p->dir);
    snprintf(url, sizeof(url), "http://%s", p->grpc_addr);
    char *argv[16];
    int n = 0;
    argv[n++] = p->bin;
    argv[n++] = "--name";
    argv[n++] = "pd-it";
    argv[n++] = "--client-urls";
    argv[n++] = url;
    argv[n++] = "--data-dir";
    argv[n++] = data;
    argv[n++] = "--http-addr";
    argv[n++] = p->http_addr;
    if (p->config[0] != '\0') {
        argv[n++] = "--config";
        argv[n++] = p->config;
    }
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    p->pid = pid;
    uint64_t deadline = tkv_clock_mono_ms() + 20000;
    while (!answers(p)) {
        int status;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            pdp_dump_log(p);
            fail_msg("pd-server exited during start-up (status %d)", status);
        }
        if (tkv_clock_mono_ms() > deadline) {
            pdp_dump_log(p);
            fail_msg("pd-server did not answer within 20 s");
        }
        tkv_sleep_ms(50);
    }
}

int pdp_stop(pdp *p)
{
    if (p->pid <= 0)
        return p->exit_status;
    kill(p->pid, SIGTERM);
    uint64_t deadline = tkv_clock_mono_ms() + 20000;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            break;
        if (tkv_clock_mono_ms() > deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            status = -1;
            break;
        }
        tkv_sleep_ms(20);
    }
    p->pid = 0;
    p->exit_status = (status >= 0 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
    return p->exit_status;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void pdp_cleanup(pdp *p)
{
    pdp_stop(p);
    if (p->dir[0] != '\0')
        nftw(p->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void pdp_dump_log(const pdp *p)
{
    char log[300];
    snprintf(log, sizeof(log), "%s/pd.log", p->dir);
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return;
    char line[2048];
    static char last[40][2048];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        snprintf(last[n++ % 40], sizeof(last[0]), "%s", line);
    fclose(f);
    fprintf(stderr, "---- pd.log (last lines) ----\n");
    for (int i = n > 40 ? n - 40 : 0; i < n; i++)
        fputs(last[i % 40], stderr);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    tkv_buf *out = ud;
    return tkv_buf_append(out, data, size * nmemb) == 0 ? size * nmemb : 0;
}

long pdp_http(const pdp *p, const char *method, const char *path, const char *body, tkv_buf *out)
{
    tkv_buf_reset(out);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return 0;
    char url[512];
    snprintf(url, sizeof(url), "http://%s%s", p->http_addr, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    TKV_IGNORE(tkv_buf_append_u8(out, 0));
    out->len--;
    return code;
}

int pdp_run(char *const argv[], tkv_buf *out)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    tkv_buf_reset(out);
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0)
        if (tkv_buf_append(out, buf, (size_t)n) != 0)
            break;
    close(fds[0]);
    TKV_IGNORE(tkv_buf_append_u8(out, 0));
    out->len--;
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}
