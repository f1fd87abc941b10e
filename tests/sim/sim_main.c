/*
 * sim_main.c: raft-sim, the command line of the deterministic simulator.
 *
 *   raft-sim --seed S --count N [--nodes 3|5] [--steps K] [--trace]
 *
 * Runs seeds S .. S+N-1, prints each failing seed with the command that replays it and the
 * trace of its last events, and ends with the line "P passed, F failed"; exits 1 if any seed
 * failed. --trace prints the trace tail of passing seeds too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static void usage(void)
{
    fprintf(stderr, "usage: raft-sim --seed S --count N [--nodes 3|5] [--steps K] [--trace]\n");
    exit(2);
}

static uint64_t parse_u64(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end)
        usage();
    return (uint64_t)v;
}

int main(int argc, char **argv)
{
    sim_opts o = {0, 3, 3000, false};
    uint64_t count = 1;
    bool have_seed = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--trace")) {
            o.trace = true;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--seed")) {
            o.seed = parse_u64(v);
            have_seed = true;
        } else if (!strcmp(a, "--count")) {
            count = parse_u64(v);
        } else if (!strcmp(a, "--nodes")) {
            o.nodes = (int)parse_u64(v);
        } else if (!strcmp(a, "--steps")) {
            o.steps = (int)parse_u64(v);
        } else {
            usage();
        }
    }
    if (!have_seed || (o.nodes != 3 && o.nodes != 5) || o.steps < 1)
        usage();
    sim *s = calloc(1, sizeof(*s));
    if (!s)
        return 2;
    uint64_t passed = 0, failed = 0;
    uint64_t acked = 0, reads = 0, crashes = 0, snaps = 0, ccs = 0, transfers = 0;
    for (uint64_t k = 0; k < count; k++) {
        sim_opts run = o;
        run.seed = o.seed + k;
        sim_trace_reset();
        bool ok = sim_run(&run, s);
        acked += s->n_acked;
        reads += s->n_reads_done;
        crashes += s->n_crashes;
        snaps += s->n_snapshots;
        ccs += s->n_conf_changes;
        transfers += s->n_transfers;
        if (ok) {
            passed++;
            if (o.trace)
                sim_trace_dump(SIM_TRACE_CAP);
            continue;
        }
        failed++;
        printf("seed %" PRIu64 " FAILED: %s\n", run.seed, s->why);
        printf("replay: raft-sim --seed %" PRIu64 " --count 1 --nodes %d --steps %d --trace\n",
               run.seed, run.nodes, run.steps);
        /* Replay with tracing on (the run is deterministic) and show its last events. */
        run.trace = true;
        sim_trace_reset();
        sim_run(&run, s);
        printf("last events:\n");
        sim_trace_dump(o.trace ? SIM_TRACE_CAP : 80);
    }
    printf("writes acked %" PRIu64 ", reads checked %" PRIu64 ", crashes %" PRIu64
           ", snapshots installed %" PRIu64 ", conf changes %" PRIu64 ", transfers %" PRIu64 "\n",
           acked, reads, crashes, snaps, ccs, transfers);
    printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
    free(s);
    return failed ? 1 : 0;
}
