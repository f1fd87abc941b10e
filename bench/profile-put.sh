#!/usr/bin/env bash
# Profiles tikv-c's put path: starts a 3-store cluster (1 pd-server + 3 tikv-server from
# build/bin), runs tikv-bench's put workload at each concurrency level while `perf record -g`
# samples the three tikv-server processes, then saves the stores' own raftstore and gRPC
# histograms (/metrics: append_log = the raft log write with its fsync, commit_log = proposal
# to commit, apply_log) and prints the top of the profile.
#
#   bench/profile-put.sh [--clients 1,64] [--seconds 8] [--out DIR]
#
# Needs perf (linux-perf) and root or kernel.perf_event_paranoid <= 1. The output stays in
# --out (default build/bench/profile-<date>): perf-<clients>.data, put-<clients>.txt,
# metrics-<store pid>.txt, and report-<clients>.txt (by thread, by library, by symbol).
# Every process it starts is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="$ROOT/build/bin"
source "$ROOT/bench/cluster.sh"

CLIENTS="1,64"
SECONDS_PER_CELL=8
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --clients) CLIENTS="$2"; shift ;;
    --seconds) SECONDS_PER_CELL="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    -h | --help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "profile-put.sh: unknown option $1 (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done
if ! command -v perf >/dev/null 2>&1; then
    echo "profile-put.sh: perf is not installed (apt-get install linux-perf)" >&2
    exit 1
fi
for b in tikv-bench pd-server tikv-server; do
    if [ ! -x "$BIN/$b" ]; then
        echo "profile-put.sh: $BIN/$b is not built (make build)" >&2
        exit 1
    fi
done
[ -n "$OUT" ] || OUT="$ROOT/build/bench/profile-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/tikvc-profile.XXXXXX")"
bc_init "$BIN" "$DATA"
PERF_PID=""
cleanup() {
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
    fi
    bc_stop_all
    rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Prints the N heaviest lines of a perf profile sorted by KEYS (flat, no call chains).
top_of() { # DATA KEYS N
    perf report -i "$1" --no-children --sort "$2" --stdio 2>/dev/null >"$1.$2.txt" || true
    grep -E '^ +[0-9]' "$1.$2.txt" | head -n "$3" || true
}

bc_tikvc_start 3
stores=("${BC_TIKVC_PIDS[@]:1}")
spids="$(bc_join "${stores[@]}")"
# Preload the key space once; the measured cells overwrite it.
"$BIN/tikv-bench" --pd "$BC_PD_ENDPOINT" --driver tikv-raw --workloads put --clients 1 \
    --warmup 0.2 --seconds 0.5 --server-pids "$spids" >"$OUT/preload.txt"
IFS=, read -r -a levels <<<"$CLIENTS"
for c in "${levels[@]}"; do
    perf record -F 999 -g -o "$OUT/perf-$c.data" -p "$spids" \
        -- sleep "$(awk -v s="$SECONDS_PER_CELL" 'BEGIN {print s + 1}')" >"$OUT/perf-$c.log" 2>&1 &
    PERF_PID=$!
    sleep 0.3
    "$BIN/tikv-bench" --pd "$BC_PD_ENDPOINT" --driver tikv-raw --workloads put --clients "$c" \
        --no-preload --warmup 0.5 --seconds "$SECONDS_PER_CELL" --server-pids "$spids" \
        >"$OUT/put-$c.txt"
    wait "$PERF_PID" || true
    PERF_PID=""
    {
        echo "== put at $c clients: $(grep ' ops/s ' "$OUT/put-$c.txt" || true)"
        echo "== by thread"
        top_of "$OUT/perf-$c.data" comm 12
        echo "== by library"
        top_of "$OUT/perf-$c.data" dso 12
        echo "== by symbol"
        top_of "$OUT/perf-$c.data" comm,sym 30
    } >"$OUT/report-$c.txt"
    cat "$OUT/report-$c.txt"
done
# The stores' own histograms (cumulative over every cell above).
for p in "${stores[@]}"; do
    addr=$(tr '\0' ' ' <"/proc/$p/cmdline" | sed -E 's/.*--status-addr ([^ ]+).*/\1/')
    curl -fsS "http://$addr/metrics" >"$OUT/metrics-$p.txt" || true
    echo "== store pid $p:"
    grep -E '^tikv_raftstore_(append|commit|apply)_log_duration_seconds_(sum|count)|^tikv_raftstore_raft_ready_handled_total|^tikv_raftstore_proposal_total\{type="normal"\}|^tikv_server_grpc_req_batch_size_(sum|count)' \
        "$OUT/metrics-$p.txt" || true
done
echo "profile-put.sh: results in $OUT"
