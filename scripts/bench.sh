#!/usr/bin/env bash
# Benchmarks tikv-c against etcd on this machine, in one run, and prints one table.
#
#   scripts/bench.sh [--quick | --long] [--runs N] [--scale-keys N | --no-scale] [--no-go]
#                    [--no-micro] [--out DIR] [--keep]
#
# What it does (`make bench` runs it after building):
#   1. installs etcd (Debian's etcd-server, etcd-client) and builds tikv-c and the Go client
#      program (bench/go-ycsb-lite, client-go v2.0.4) when Go is at hand;
#   2. N runs (default 3); each run starts a fresh 3-store tikv-c cluster (1 pd-server +
#      3 tikv-server) and measures it with tikv-bench (drivers tikv-raw and tikv-txn) and
#      go-ycsb-lite, stops it, then starts a fresh 3-member etcd cluster and measures it
#      with tikv-bench (driver etcd), stops it: the systems alternate inside the run, since
#      this machine's disk drifts. The matrix: put, get (etcd also serializable get), YCSB
#      A/B/C (zipfian), scan of 100 keys, single-key transaction puts and 4-key transfers,
#      each at 1, 16, 64 and 256 clients, 0.5 s warm-up and a 3 s window per cell (--long:
#      2 s + 6 s; --quick: every workload, but only put and get at all four levels, the
#      others at one or two, 0.5 s + 1.5 s). Everything listens on 127.0.0.1 (free ports),
#      data lives under one temporary directory on the same disk, and both systems keep
#      their default durability (tikv-c syncs its raft log; etcd fsyncs its WAL);
#   3. the scale rows: put and get on a tikv-c cluster preloaded with --scale-keys keys
#      (10,000,000; 1,000,000 with --quick), N runs on one cluster;
#   4. the micro-figures: rpc-bench (1 and 64 clients), raft-bench, pd-bench tso (batch 1
#      and 100), each N times;
#   5. prints one table (`tikv-bench report`): per system and workload ops/s, p50, p99,
#      p99.9, server CPU seconds per 1,000 operations, server RSS, each the median of the
#      runs, the ratio tikv-c / etcd per row, and the scale rows against 100k keys; then the
#      micro-figures. Results stay in --out (default build/bench/<date>).
# Every process it starts is stopped by PID on exit (also on Ctrl-C or failure). Exits 1
# when a cell failed (a wrong read, a failed operation, no operation completed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="$ROOT/build/bin"
source "$ROOT/bench/cluster.sh"

RUNS=3
QUICK=0
LONG=0
SCALE_KEYS=""
NO_SCALE=0
NO_GO=0
NO_MICRO=0
OUT=""
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --long) LONG=1 ;;
    --runs) RUNS="$2"; shift ;;
    --scale-keys) SCALE_KEYS="$2"; shift ;;
    --no-scale) NO_SCALE=1 ;;
    --no-go) NO_GO=1 ;;
    --no-micro) NO_MICRO=1 ;;
    --out) OUT="$2"; shift ;;
    --keep) KEEP=1 ;;
    -h | --help)
        sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench.sh: unknown option $1 (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done
if ! [[ "$RUNS" =~ ^[1-9][0-9]*$ ]]; then
    echo "bench.sh: --runs takes a positive number" >&2
    exit 2
fi
if [ "$RUNS" -lt 3 ]; then
    echo "bench.sh: warning: $RUNS run(s); the figures are medians only with 3 or more" >&2
fi
if [ -z "$SCALE_KEYS" ]; then
    SCALE_KEYS=$([ "$QUICK" = 1 ] && echo 1000000 || echo 10000000)
fi
BENCH_ARGS=()
[ "$QUICK" = 1 ] && BENCH_ARGS+=(--quick)
[ "$LONG" = 1 ] && BENCH_ARGS+=(--long)
# The Go client runs YCSB A and C at the same concurrency levels and windows as tikv-bench.
GO_ARGS=()
if [ "$QUICK" = 1 ]; then
    GO_ARGS+=(--quick --clients 64)
elif [ "$LONG" = 1 ]; then
    GO_ARGS+=(--clients 1,16,64,256 --warmup 2 --seconds 6)
else
    GO_ARGS+=(--clients 1,16,64,256 --warmup 0.5 --seconds 3)
fi
started=$(date +%s)

say() {
    echo "[bench $(date +%H:%M:%S)] $*" >&2
}

# ---- 1. dependencies and builds ---------------------------------------------------------
if ! scripts/install-deps.sh etcd-server etcd-client; then
    echo "bench.sh: apt could not install etcd-server and etcd-client (the peer system);" \
        "install them (apt-get install etcd-server etcd-client) and run again" >&2
    exit 1
fi
if ! command -v etcd >/dev/null 2>&1; then
    echo "bench.sh: etcd-server is installed but no etcd binary is on PATH" >&2
    exit 1
fi
make -s build >/dev/null
for b in tikv-bench rpc-bench raft-bench pd-bench; do
    if [ ! -x "$BIN/$b" ]; then
        echo "bench.sh: $BIN/$b was not built" >&2
        exit 1
    fi
done
HAVE_TIKVC=1
if [ ! -x "$BIN/pd-server" ] || [ ! -x "$BIN/tikv-server" ]; then
    HAVE_TIKVC=0
    say "pd-server or tikv-server is not built: the tikv-c rows are left out"
fi

GO_BIN=""
if [ "$NO_GO" = 0 ] && [ "$HAVE_TIKVC" = 1 ]; then
    if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
        export PATH="/usr/local/go/bin:$PATH"
    fi
    if ! command -v go >/dev/null 2>&1; then
        scripts/install-deps.sh golang-go || true
    fi
    if command -v go >/dev/null 2>&1; then
        say "building bench/go-ycsb-lite (client-go v2.0.4)"
        if (cd bench/go-ycsb-lite && GOFLAGS="${GOFLAGS:-} -mod=mod" go build -o "$BIN/go-ycsb-lite" .); then
            GO_BIN="$BIN/go-ycsb-lite"
        else
            say "go-ycsb-lite did not build: the client-go rows are left out"
        fi
    else
        say "no Go toolchain: the client-go rows are left out"
    fi
fi

if [ -z "$OUT" ]; then
    OUT="$ROOT/build/bench/$(date +%Y%m%d-%H%M%S)"
fi
mkdir -p "$OUT"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/tikvc-bench.XXXXXX")"
bc_init "$BIN" "$DATA"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    bc_stop_all
    if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
        say "data and logs kept in $DATA"
    else
        rm -rf "$DATA"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FAILED=0
# Runs a measuring command, logging to FILE; a failure marks the run but keeps going.
measure() { # LOG CMD...
    local log="$1"
    shift
    if ! "$@" >"$log" 2>&1; then
        FAILED=1
        say "FAILED: $* (log $log):"
        grep -E 'error|FAILED|ERRORS' "$log" | head -n 10 >&2 || tail -n 10 "$log" >&2
    fi
    grep -E ' ops/s ' "$log" | sed 's/^/    /' >&2 || true
}

# ---- 2. the main table: tikv-c and etcd alternating -------------------------------------
for run in $(seq 1 "$RUNS"); do
    if [ "$HAVE_TIKVC" = 1 ]; then
        say "run $run/$RUNS: tikv-c (1 pd-server + 3 tikv-server)"
        bc_tikvc_start 3
        pids="$(bc_join "${BC_TIKVC_PIDS[@]}")"
        measure "$OUT/tikvc-$run.log" "$BIN/tikv-bench" --pd "$BC_PD_ENDPOINT" \
            --server-pids "$pids" --json "$OUT/tikvc-$run.json" "${BENCH_ARGS[@]}"
        if [ -n "$GO_BIN" ]; then
            measure "$OUT/client-go-$run.log" "$GO_BIN" --pd "$BC_PD_ENDPOINT" \
                --server-pids "$pids" --json "$OUT/client-go-$run.json" "${GO_ARGS[@]}"
        fi
        bc_tikvc_stop
    fi
    say "run $run/$RUNS: etcd (3 members)"
    bc_etcd_start 3
    measure "$OUT/etcd-$run.log" "$BIN/tikv-bench" --etcd "$BC_ETCD_ENDPOINTS" \
        --server-pids "$(bc_join "${BC_ETCD_PIDS[@]}")" --json "$OUT/etcd-$run.json" \
        "${BENCH_ARGS[@]}"
    bc_etcd_stop
done

# ---- 3. scale rows: tikv-c with many more keys ------------------------------------------
if [ "$HAVE_TIKVC" = 1 ] && [ "$NO_SCALE" = 0 ]; then
    say "scale: tikv-c with $SCALE_KEYS preloaded keys"
    bc_tikvc_start 3
    pids="$(bc_join "${BC_TIKVC_PIDS[@]}")"
    levels=$([ "$QUICK" = 1 ] && echo 1,64 || echo 1,16,64,256)
    for run in $(seq 1 "$RUNS"); do
        preload=()
        [ "$run" -gt 1 ] && preload=(--no-preload)
        measure "$OUT/scale-$run.log" "$BIN/tikv-bench" --pd "$BC_PD_ENDPOINT" \
            --driver tikv-raw --workloads put,get --clients "$levels" --keys "$SCALE_KEYS" \
            --server-pids "$pids" --json "$OUT/scale-$run.json" "${preload[@]}" \
            "${BENCH_ARGS[@]}"
        grep -E 'preloaded' "$OUT/scale-$run.log" | sed 's/^/    /' >&2 || true
    done
    du -sh "$BC_TIKVC_DIR" 2>/dev/null | sed 's/^/    data on disk: /' >&2 || true
    bc_tikvc_stop
fi

# ---- 4. micro-figures --------------------------------------------------------------------
MICRO="$OUT/micro.txt"
: >"$MICRO"
if [ "$NO_MICRO" = 0 ]; then
    secs=$([ "$QUICK" = 1 ] && echo 1 || echo 3)
    say "micro-figures: rpc-bench, raft-bench, pd-bench tso ($RUNS runs each)"
    for run in $(seq 1 "$RUNS"); do
        "$BIN/rpc-bench" --seconds "$secs" --concurrency 1,64 >"$OUT/rpc-$run.log" 2>&1 || FAILED=1
        "$BIN/raft-bench" --seconds "$secs" >"$OUT/raft-$run.log" 2>&1 || FAILED=1
        "$BIN/pd-bench" tso --batch 1,100 --seconds "$secs" >"$OUT/pd-$run.log" 2>&1 || FAILED=1
    done
    median() { sort -n | awk '{v[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
    {
        echo "Micro-figures (median of $RUNS runs; every run's line is in $OUT):"
        for c in 1 64; do
            rps=$(cat "$OUT"/rpc-*.log | grep -E "concurrency=$c " | sed -E 's/.* rps=([0-9]+).*/\1/' | median)
            line=$(grep -hE "concurrency=$c " "$OUT"/rpc-1.log | sed -E 's/.*(p50_us.*)/\1/')
            printf '  rpc-bench  unary, %3d clients    %10s requests/s   (run 1: %s)\n' "$c" "$rps" "$line"
        done
        eps=$(cat "$OUT"/raft-*.log | grep 'entries committed per second' | sed -E 's/.*: ([0-9]+) .*/\1/' | median)
        cpu=$(grep -h 'entries committed per second' "$OUT"/raft-1.log | sed -E 's/.*\((.*)\)/\1/')
        printf '  raft-bench 3 nodes in memory    %10s entries/s    (run 1: %s)\n' "$eps" "$cpu"
        for b in 1 100; do
            rq=$(cat "$OUT"/pd-*.log | awk -v b="$b" '$1 == b {print $2}' | median)
            ts=$(cat "$OUT"/pd-*.log | awk -v b="$b" '$1 == b {print $3}' | median)
            lat=$(awk -v b="$b" '$1 == b {print "p50 " $4 " us, p99 " $5 " us"}' "$OUT"/pd-1.log)
            printf '  pd-bench   tso, batch %3d       %10s requests/s, %s timestamps/s (run 1: %s)\n' "$b" "$rq" "$ts" "$lat"
        done
    } >"$MICRO"
fi

# ---- 5. the table ------------------------------------------------------------------------
shopt -s nullglob
files=("$OUT"/tikvc-*.json "$OUT"/client-go-*.json "$OUT"/etcd-*.json "$OUT"/scale-*.json)
echo
echo "tikv-c vs etcd on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), $RUNS runs" \
    "($([ "$QUICK" = 1 ] && echo quick || echo full)); etcd $(etcd --version 2>/dev/null | head -n 1 | awk '{print $3}')"
if [ "${#files[@]}" -gt 0 ]; then
    "$BIN/tikv-bench" report --json "$OUT/report.json" "${files[@]}" | tee "$OUT/table.txt"
else
    echo "no results"
    FAILED=1
fi
echo
cat "$MICRO"
echo
echo "Results, logs and report.json: $OUT ($(($(date +%s) - started)) s)"
if [ "$FAILED" != 0 ]; then
    echo "bench.sh: some measurements FAILED (see the logs above)" >&2
    exit 1
fi
