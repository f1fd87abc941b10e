#!/usr/bin/env bash
# bench/onepc-bench.sh: one-phase commit on and off, side by side. For each of RUNS runs
# (default 3), a fresh 3-store tikv-c cluster (1 pd-server + 3 tikv-server, bench/cluster.sh)
# is measured by tikv-bench's tikv-txn driver (txn-put and 4-key transfer at concurrency 1
# and 16) with 1PC (the default), then another fresh one with --no-1pc. Fresh clusters keep
# one mode's MVCC garbage out of the other's figures.
#   bench/onepc-bench.sh [BIN_DIR (default build/bin)]   (run it under nice -n 19 here)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$(cd "${1:-$ROOT/build/bin}" && pwd)"
RUNS="${RUNS:-3}"
OUT="$(mktemp -d /tmp/onepc-bench.XXXXXX)"
# shellcheck source=bench/cluster.sh
source "$ROOT/bench/cluster.sh"
bc_init "$BIN" "$OUT/data"
trap bc_stop_all EXIT
for run in $(seq 1 "$RUNS"); do
    for mode in 1pc 2pc; do
        bc_tikvc_start 3
        args=(--pd "$BC_PD_ENDPOINT" --driver tikv-txn --workloads txn-put,transfer
            --clients 1,16 --keys 20000 --accounts 2000 --warmup 1 --seconds 4
            --json "$OUT/$mode-$run.json")
        [ "$mode" = 2pc ] && args+=(--no-1pc)
        echo "== run $run $mode (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        "$BIN/tikv-bench" "${args[@]}" >"$OUT/$mode-$run.log" 2>&1 || tail -n 3 "$OUT/$mode-$run.log"
        grep -E ' ops/s ' "$OUT/$mode-$run.log" || true
        bc_tikvc_stop
    done
done
echo "logs and JSON: $OUT"
