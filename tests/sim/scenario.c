/*
 * scenario.c: scenario scripts in the style of etcd's interaction tests (CONVENTIONS 9). Each
 * file in tests/sim/testdata/ is a sequence of commands against a small cluster, each
 * followed by "----" and the exact output it produces: the tracer lines of the nodes, every
 * message with its fate, entries applied and read states answered. A changed behaviour shows
 * up as a diff; TKV_REWRITE=1 regenerates the files (review the diff before committing).
 *
 * Commands (ids are node ids, the cluster's nodes are 1..N):
 *   cluster voters=N [prevote] [checkquorum] [lease]   start the cluster (first command)
 *   campaign ID | propose ID DATA | read ID CTX | transfer LEADER TO
 *   tick ID [K] | tick-all [K]                         K ticks, settling after each
 *   isolate ID | rejoin ID | cut A B | heal            network
 *   crash ID | restart ID | compact ID                 disks
 *   add-learner AT ID | add-voter AT ID | remove AT ID membership, proposed at AT
 *   status                                             one line per node
 * Every command but status lets the cluster settle (all Readies handled, all messages
 * delivered) before its output is taken.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../unit/raft/raft_test_net.h"

typedef struct runner {
    tn_net *net;
    size_t applied_seen[TN_MAX + 1];
    size_t reads_seen[TN_MAX + 1];
    raft_config tweak; /* the flags from the cluster command */
} runner;

static void out_printf(tkv_buf *b, const char *fmt, ...) TKV_PRINTF(2, 3);
static void out_printf(tkv_buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(line));
    assert_int_equal(tkv_buf_append(b, line, (size_t)n), 0);
}

static void observe(const raft_message *m, bool delivered, void *arg)
{
    tn_net *net = arg;
    tkv_buf *b = &net->trace;
    out_printf(b, "%llu->%llu %s term=%llu", (unsigned long long)m->from, (unsigned long long)m->to,
               raft_message_type_name(m->msg_type), (unsigned long long)m->term);
    if (m->msg_type == RAFT_MSG_APPEND || m->msg_type == RAFT_MSG_REQUEST_VOTE ||
        m->msg_type == RAFT_MSG_REQUEST_PRE_VOTE)
        out_printf(b, " log=%llu/%llu", (unsigned long long)m->index,
                   (unsigned long long)m->log_term);
    else if (m->msg_type == RAFT_MSG_APPEND_RESPONSE || m->msg_type == RAFT_MSG_READ_INDEX_RESP)
        out_printf(b, " index=%llu", (unsigned long long)m->index);
    if (m->msg_type == RAFT_MSG_APPEND || m->msg_type == RAFT_MSG_HEARTBEAT)
        out_printf(b, " commit=%llu", (unsigned long long)m->commit);
    if (m->msg_type == RAFT_MSG_APPEND && m->n_entries) {
        out_printf(b, " entries=");
        for (size_t i = 0; i < m->n_entries; i++)
            out_printf(b, "%s%llu/%llu", i ? "," : "", (unsigned long long)m->entries[i].index,
                       (unsigned long long)m->entries[i].term);
    }
    if (m->snapshot)
        out_printf(b, " snapshot=%llu/%llu", (unsigned long long)m->snapshot->metadata.index,
                   (unsigned long long)m->snapshot->metadata.term);
    if (m->reject)
        out_printf(b, " reject");
    if (m->reject && m->msg_type == RAFT_MSG_APPEND_RESPONSE)
        out_printf(b, " hint=%llu/%llu", (unsigned long long)m->reject_hint,
                   (unsigned long long)m->log_term);
    out_printf(b, "%s\n", delivered ? "" : " DROPPED");
}

static void tweak(raft_config *cfg, void *arg)
{
    const raft_config *t = arg;
    cfg->pre_vote = t->pre_vote;
    cfg->check_quorum = t->check_quorum;
    cfg->read_only_option = t->read_only_option;
}

static uint64_t id_arg(const char *s)
{
    assert_non_null(s);
    unsigned long v = strtoul(s, NULL, 10);
    assert_true(v >= 1 && v <= TN_MAX);
    return v;
}

/* A whole-string decimal count for script arguments; a bad one fails the test. */
static int count_arg(const char *s)
{
    assert_non_null(s);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX) {
        fail_msg("bad count \"%s\"", s);
        return 0;
    }
    return (int)v;
}

static void result(tkv_buf *out, const char *what, int rc)
{
    if (rc != 0)
        out_printf(out, "%s: %s\n", what, tkv_strerror(rc));
}

static void conf_change(runner *rn, tkv_buf *out, raft_conf_change_type t, char *at, char *id)
{
    uint64_t node = id_arg(id);
    if (t != RAFT_CONF_REMOVE_NODE && !rn->net->nodes[node].present)
        tn_add(rn->net, node, NULL);
    raft_conf_change cc = {t, node, {NULL, 0}};
    result(out, "conf change", raft_node_propose_conf_change(tn_r(rn->net, id_arg(at)), &cc));
}

static void status(runner *rn, tkv_buf *out)
{
    for (uint64_t id = 1; id <= TN_MAX; id++) {
        tn_node *nd = &rn->net->nodes[id];
        if (!nd->present)
            continue;
        if (nd->down) {
            out_printf(out, "%llu: down\n", (unsigned long long)id);
            continue;
        }
        raft_status st;
        raft_node_status(nd->r, &st);
        out_printf(
            out, "%llu: %s term=%llu lead=%llu commit=%llu applied=%llu log=%llu..%llu voters=",
            (unsigned long long)id, raft_state_name(st.soft_state.raft_state),
            (unsigned long long)st.hard_state.term, (unsigned long long)st.soft_state.leader_id,
            (unsigned long long)st.hard_state.commit, (unsigned long long)st.applied,
            (unsigned long long)st.first_index, (unsigned long long)st.last_index);
        for (size_t i = 0; i < st.conf_state.n_voters; i++)
            out_printf(out, "%s%llu", i ? "," : "", (unsigned long long)st.conf_state.voters[i]);
        if (st.conf_state.n_learners) {
            out_printf(out, " learners=");
            for (size_t i = 0; i < st.conf_state.n_learners; i++)
                out_printf(out, "%s%llu", i ? "," : "",
                           (unsigned long long)st.conf_state.learners[i]);
        }
        out_printf(out, "\n");
    }
}

/* Appends what happened since the last command: trace and message lines, then new applied
 * entries and read states. */
static void collect(runner *rn, tkv_buf *out)
{
    tn_net *net = rn->net;
    assert_int_equal(tkv_buf_append(out, net->trace.data, net->trace.len), 0);
    tkv_buf_reset(&net->trace);
    for (uint64_t id = 1; id <= TN_MAX; id++) {
        tn_node *nd = &net->nodes[id];
        if (!nd->present)
            continue;
        if (nd->applied.len < rn->applied_seen[id])
            rn->applied_seen[id] = 0; /* restarted: applies again */
        for (size_t i = rn->applied_seen[id]; i < nd->applied.len; i++) {
            const raft_entry *e = &nd->applied.items[i];
            out_printf(out, "%llu applied %llu/%llu %.*s\n", (unsigned long long)id,
                       (unsigned long long)e->index, (unsigned long long)e->term, (int)e->data_len,
                       (const char *)e->data);
        }
        rn->applied_seen[id] = nd->applied.len;
        for (size_t i = rn->reads_seen[id]; i < nd->n_reads; i++)
            out_printf(out, "%llu read %c at index %llu\n", (unsigned long long)id, nd->read_ctx[i],
                       (unsigned long long)nd->reads[i].index);
        rn->reads_seen[id] = nd->n_reads;
    }
}

static void run_command(runner *rn, char *line, tkv_buf *out)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " ", &save);
    char *a = strtok_r(NULL, " ", &save);
    char *b = strtok_r(NULL, " ", &save);
    if (!strcmp(cmd, "cluster")) {
        assert_null(rn->net);
        size_t voters = 3;
        raft_config_default(&rn->tweak, 1);
        rn->tweak.pre_vote = rn->tweak.check_quorum = false;
        for (char *arg = a; arg; arg = (arg == a ? b : strtok_r(NULL, " ", &save))) {
            if (!strncmp(arg, "voters=", 7))
                voters = (size_t)count_arg(arg + 7);
            else if (!strcmp(arg, "prevote"))
                rn->tweak.pre_vote = true;
            else if (!strcmp(arg, "checkquorum"))
                rn->tweak.check_quorum = true;
            else if (!strcmp(arg, "lease"))
                rn->tweak.read_only_option = RAFT_READ_ONLY_LEASE_BASED;
            else
                fail_msg("unknown cluster option %s", arg);
        }
        rn->net = tn_new(voters, tweak, &rn->tweak);
        rn->net->observe = observe;
        rn->net->observe_arg = rn->net;
        tkv_buf_reset(&rn->net->trace);
        out_printf(out, "%zu voters\n", voters);
        return;
    }
    if (rn->net == NULL) {
        fail_msg("\"%s\" before \"cluster\"", cmd);
        return;
    }
    tn_net *net = rn->net;
    if (!strcmp(cmd, "status")) {
        status(rn, out);
        return;
    }
    if (!strcmp(cmd, "campaign")) {
        result(out, "campaign", raft_node_campaign(tn_r(net, id_arg(a))));
    } else if (!strcmp(cmd, "propose")) {
        assert_non_null(b);
        result(out, "propose", raft_node_propose(tn_r(net, id_arg(a)), b, strlen(b), NULL, 0));
    } else if (!strcmp(cmd, "read")) {
        assert_non_null(b);
        result(out, "read", raft_node_read_index(tn_r(net, id_arg(a)), b, 1));
    } else if (!strcmp(cmd, "transfer")) {
        result(out, "transfer", raft_node_transfer_leader(tn_r(net, id_arg(a)), id_arg(b)));
    } else if (!strcmp(cmd, "tick")) {
        tn_tick(net, id_arg(a), b ? count_arg(b) : 1);
    } else if (!strcmp(cmd, "tick-all")) {
        tn_tick_all(net, a ? count_arg(a) : 1);
    } else if (!strcmp(cmd, "isolate") || !strcmp(cmd, "rejoin")) {
        tn_isolate(net, id_arg(a), cmd[0] == 'i');
    } else if (!strcmp(cmd, "cut")) {
        tn_cut(net, id_arg(a), id_arg(b), true);
    } else if (!strcmp(cmd, "heal")) {
        tn_heal(net);
    } else if (!strcmp(cmd, "crash")) {
        tn_crash(net, id_arg(a));
    } else if (!strcmp(cmd, "restart")) {
        tn_restart(net, id_arg(a));
    } else if (!strcmp(cmd, "compact")) {
        tn_node *nd = &net->nodes[id_arg(a)];
        assert_int_equal(
            raft_mem_storage_create_snapshot(nd->st, nd->applied_index, &nd->conf, "snap", 4), 0);
        assert_int_equal(raft_mem_storage_compact(nd->st, nd->applied_index), 0);
        out_printf(out, "%s: compacted to %llu\n", a, (unsigned long long)nd->applied_index);
    } else if (!strcmp(cmd, "add-learner")) {
        conf_change(rn, out, RAFT_CONF_ADD_LEARNER_NODE, a, b);
    } else if (!strcmp(cmd, "add-voter")) {
        conf_change(rn, out, RAFT_CONF_ADD_NODE, a, b);
    } else if (!strcmp(cmd, "remove")) {
        conf_change(rn, out, RAFT_CONF_REMOVE_NODE, a, b);
    } else {
        fail_msg("unknown command %s", cmd);
    }
    tn_flush(net);
    collect(rn, out);
}

/* ---- the script format ------------------------------------------------------------------ */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* Returns the next line of *@p (without its newline) and advances past it; NULL at the end. */
static char *next_line(char **p)
{
    if (!**p)
        return NULL;
    char *line = *p, *nl = strchr(line, '\n');
    if (nl) {
        *nl = 0;
        *p = nl + 1;
    } else {
        *p += strlen(line);
    }
    return line;
}

static void run_script(void **state)
{
    const char *path = *state;
    char *text = read_file(path);
    const char *rewrite_env = getenv("TKV_REWRITE");
    bool rewrite = rewrite_env != NULL && !strcmp(rewrite_env, "1");
    runner rn;
    memset(&rn, 0, sizeof(rn));
    tkv_buf rewritten, actual, expected;
    tkv_buf_init(&rewritten);
    tkv_buf_init(&actual);
    tkv_buf_init(&expected);
    char *p = text, *line;
    int mismatches = 0;
    while ((line = next_line(&p)) != NULL) {
        if (line[0] == 0 || line[0] == '#') {
            out_printf(&rewritten, "%s\n", line);
            continue;
        }
        char cmdline[256];
        snprintf(cmdline, sizeof(cmdline), "%s", line);
        char *sep = next_line(&p);
        if (!sep || strcmp(sep, "----") != 0)
            fail_msg("%s: command \"%s\" is not followed by ----", path, cmdline);
        tkv_buf_reset(&expected);
        while (*p && *p != '\n') {
            char *e = next_line(&p);
            out_printf(&expected, "%s\n", e);
        }
        char work[256];
        snprintf(work, sizeof(work), "%s", cmdline);
        tkv_buf_reset(&actual);
        run_command(&rn, work, &actual);
        if (actual.len != expected.len ||
            (actual.len && memcmp(actual.data, expected.data, actual.len) != 0)) {
            mismatches++;
            if (!rewrite)
                printf("%s: \"%s\"\n--- expected\n%.*s--- actual\n%.*s", path, cmdline,
                       (int)expected.len, expected.len ? (const char *)expected.data : "",
                       (int)actual.len, actual.len ? (const char *)actual.data : "");
        }
        out_printf(&rewritten, "%s\n----\n", cmdline);
        assert_int_equal(tkv_buf_append(&rewritten, actual.data, actual.len), 0);
    }
    if (rewrite && mismatches) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(rewritten.data, 1, rewritten.len, f), rewritten.len);
        fclose(f);
        printf("%s: rewritten (%d blocks changed)\n", path, mismatches);
        mismatches = 0;
    }
    if (rn.net)
        tn_free(rn.net);
    tkv_buf_deinit(&rewritten);
    tkv_buf_deinit(&actual);
    tkv_buf_deinit(&expected);
    free(text);
    if (mismatches)
        fail_msg("%s: %d blocks differ (TKV_REWRITE=1 regenerates)", path, mismatches);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    const char *src = getenv("TKV_SRC_DIR");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/sim/testdata", src ? src : ".");
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", dir);
        return 1;
    }
    char *paths[128] = {NULL};
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 128) {
        size_t len = strlen(de->d_name);
        if (len > 4 && !strcmp(de->d_name + len - 4, ".txt")) {
            paths[n] = malloc(strlen(dir) + len + 2);
            sprintf(paths[n], "%s/%s", dir, de->d_name);
            n++;
        }
    }
    closedir(d);
    qsort(paths, n, sizeof(paths[0]), by_name);
    struct CMUnitTest *tests = calloc(n ? n : 1, sizeof(*tests));
    for (size_t i = 0; i < n; i++) {
        tests[i].name = strrchr(paths[i], '/') + 1;
        tests[i].test_func = run_script;
        tests[i].initial_state = paths[i];
    }
    int rc = _cmocka_run_group_tests("raft_scenarios", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(tests);
    return rc ? 1 : 0;
}
