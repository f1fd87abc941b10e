/*
 * raft_bench.c: raft-bench, the throughput of the Raft core alone: three nodes in one
 * process over raft_mem_storage, messages handed over in memory, the leader kept busy with
 * pipelined proposals of 100-byte entries. Prints the entries committed per second (counted
 * where the leader applies them) and the CPU time per entry. No disk and no network: this is
 * the ceiling the core puts on a Region, not a system benchmark.
 *
 *   raft-bench [--seconds S] [--window W] [--size B]
 *     --seconds  how long to run (default 3)
 *     --window   proposals in flight at the leader (default 256)
 *     --size     bytes per entry (default 100)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "raft/raft.h"

#define NODES 3

typedef struct bench_node {
    raft_node *r;
    raft_mem_storage *st;
    uint64_t applied;
    uint64_t applied_entries;
    raft_conf_state conf;
} bench_node;

typedef struct bench {
    bench_node n[NODES + 1];
    raft_message *q;
    size_t qlen, qcap;
} bench;

static void die(const char *what, int rc)
{
    fprintf(stderr, "raft-bench: %s: %s\n", what, tkv_strerror(rc));
    exit(1);
}

static void enqueue(bench *b, const raft_message *ms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b->qlen == b->qcap) {
            b->qcap = b->qcap ? b->qcap * 2 : 256;
            b->q = realloc(b->q, b->qcap * sizeof(raft_message));
            if (!b->q)
                die("queue", -ENOMEM);
        }
        int rc = raft_message_copy(&b->q[b->qlen++], &ms[i]);
        if (rc)
            die("copy message", rc);
    }
}

/* Persists, sends and applies one node's Ready, as raftstore would (minus the fsync). */
static void handle_ready(bench *b, uint64_t id)
{
    bench_node *bn = &b->n[id];
    raft_ready *rd;
    int rc = raft_node_ready(bn->r, &rd);
    if (rc)
        die("ready", rc);
    enqueue(b, rd->messages, rd->n_messages);
    if (rd->snapshot && (rc = raft_mem_storage_apply_snapshot(bn->st, rd->snapshot)) != 0)
        die("apply snapshot", rc);
    if ((rc = raft_mem_storage_append(bn->st, rd->entries, rd->n_entries)) != 0)
        die("append", rc);
    if (rd->has_hard_state)
        raft_mem_storage_set_hard_state(bn->st, &rd->hard_state);
    enqueue(b, rd->persisted_messages, rd->n_persisted_messages);
    for (size_t i = 0; i < rd->n_committed_entries; i++) {
        const raft_entry *e = &rd->committed_entries[i];
        bn->applied = e->index;
        bn->applied_entries += e->data_len > 0;
    }
    if ((rc = raft_node_advance(bn->r)) != 0)
        die("advance", rc);
}

static void pump(bench *b)
{
    for (int round = 0; round < 64; round++) {
        bool any = false;
        for (uint64_t id = 1; id <= NODES; id++)
            while (raft_node_has_ready(b->n[id].r)) {
                handle_ready(b, id);
                any = true;
            }
        raft_message *q = b->q;
        size_t n = b->qlen;
        b->q = NULL;
        b->qlen = b->qcap = 0;
        for (size_t i = 0; i < n; i++) {
            int rc = raft_node_step(b->n[q[i].to].r, &q[i]);
            if (rc)
                die("step", rc);
            raft_message_deinit(&q[i]);
            any = true;
        }
        free(q);
        if (!any)
            return;
    }
}

/* Keeps memory flat: snapshot and compact every node's log behind what it applied. */
static void compact(bench *b)
{
    for (uint64_t id = 1; id <= NODES; id++) {
        bench_node *bn = &b->n[id];
        uint64_t snap = raft_mem_storage_snapshot_ref(bn->st)->metadata.index;
        if (bn->applied < snap + 20000)
            continue;
        int rc = raft_mem_storage_create_snapshot(bn->st, bn->applied, &bn->conf, NULL, 0);
        if (rc == 0)
            rc = raft_mem_storage_compact(bn->st, bn->applied - 1000);
        if (rc)
            die("compact", rc);
    }
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses a whole-string decimal count into *@out; false when @s is not one. */
static bool arg_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-')
        return false;
    *out = v;
    return true;
}

/* Parses a whole-string decimal number into *@out; false when @s is not one. */
static bool arg_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    size_t window = 256, size = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        bool ok = (!strcmp(argv[i], "--seconds") && arg_double(argv[i + 1], &seconds)) ||
                  (!strcmp(argv[i], "--window") && arg_size(argv[i + 1], &window)) ||
                  (!strcmp(argv[i], "--size") && arg_size(argv[i + 1], &size));
        if (!ok) {
            fprintf(stderr, "usage: raft-bench [--seconds S] [--window W] [--size B]\n");
            return 2;
        }
    }
    if (window < 1 || seconds <= 0) {
        fprintf(stderr, "raft-bench: window and seconds must be positive\n");
        return 2;
    }
    bench b;
    memset(&b, 0, sizeof(b));
    raft_conf_state cs;
    memset(&cs, 0, sizeof(cs));
    for (uint64_t id = 1; id <= NODES; id++)
        cs.voters[cs.n_voters++] = id;
    for (uint64_t id = 1; id <= NODES; id++) {
        bench_node *bn = &b.n[id];
        bn->conf = cs;
        int rc = raft_mem_storage_new(&cs, &bn->st);
        if (rc)
            die("storage", rc);
        raft_config cfg;
        raft_config_default(&cfg, id);
        raft_storage st = raft_mem_storage_iface(bn->st);
        if ((rc = raft_node_new(&cfg, &st, &bn->r)) != 0)
            die("node", rc);
    }
    /* Elect a leader the normal way: ticks until an election timeout passes. */
    uint64_t lead = RAFT_NONE;
    int rc;
    for (int t = 0; t < 1000 && lead == RAFT_NONE; t++) {
        for (uint64_t id = 1; id <= NODES; id++)
            if ((rc = raft_node_tick(b.n[id].r)) != 0)
                die("tick", rc);
        pump(&b);
        for (uint64_t id = 1; id <= NODES; id++)
            if (raft_node_state(b.n[id].r) == RAFT_STATE_LEADER)
                lead = id;
    }
    if (lead == RAFT_NONE)
        die("election", TKV_ENOTLEADER);
    uint8_t *payload = malloc(size ? size : 1);
    if (!payload)
        die("payload", -ENOMEM);
    memset(payload, 'v', size);
    uint64_t start_entries = b.n[lead].applied_entries, proposed = 0;
    uint64_t t0 = tkv_clock_mono_ns();
    double c0 = cpu_seconds();
    uint64_t deadline = t0 + (uint64_t)(seconds * 1e9), now = t0;
    while (now < deadline) {
        for (int batch = 0; batch < 16; batch++) {
            uint64_t done = b.n[lead].applied_entries - start_entries;
            while (proposed - done < window) {
                payload[0] = (uint8_t)proposed;
                if ((rc = raft_node_propose(b.n[lead].r, payload, size, NULL, 0)) != 0)
                    die("propose", rc);
                proposed++;
            }
            pump(&b);
        }
        compact(&b);
        now = tkv_clock_mono_ns();
    }
    double wall = (double)(now - t0) / 1e9, cpu = cpu_seconds() - c0;
    uint64_t committed = b.n[lead].applied_entries - start_entries;
    printf("raft-bench: 3 in-memory nodes, %zu-byte entries, %zu proposals in flight, %.1f s\n",
           size, window, wall);
    for (uint64_t id = 1; id <= NODES; id++)
        if (id != lead)
            printf("follower %" PRIu64 " applied %" PRIu64 " entries\n", id,
                   b.n[id].applied_entries - start_entries);
    printf("entries committed per second: %.0f (%.2f us CPU per entry for all three nodes)\n",
           (double)committed / wall, committed ? cpu * 1e6 / (double)committed : 0.0);
    for (uint64_t id = 1; id <= NODES; id++) {
        raft_node_free(b.n[id].r);
        raft_mem_storage_free(b.n[id].st);
    }
    free(payload);
    free(b.q);
    return 0;
}
