#!/usr/bin/env bash
# Keeps tikv-bench working: starts a small cluster (SYSTEM etcd: 3 etcd members; tikvc:
# pd-server + 3 tikv-server from BIN_DIR), runs every workload of tikv-bench for about a
# second per cell, and fails unless every cell completed operations without a single
# failed operation or wrong read (tikv-bench's own checks: each value read back was
# written for that key and is not older than an acknowledged write; accounts keep their
# sum). It checks that the tool works, not how fast anything is. Against tikv-c it also
# runs the libtikvc examples and tikv-ctl on the same cluster.
# Usage: run_smoke.sh etcd|tikvc BIN_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
system="$1"
bin="$(cd "$2" && pwd)"
source "$here/../../../bench/cluster.sh"

data="$(mktemp -d /tmp/tikv-bench-smoke.XXXXXX)"
bc_init "$bin" "$data"
cleanup() {
    bc_stop_all
    rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

common=(--quick --warmup 0.3 --seconds 1 --keys 2000 --accounts 200 --clients 1,16
        --timeout-ms 30000 --json "$data/result.json")
case "$system" in
etcd)
    bc_etcd_start 3
    "$bin/tikv-bench" --etcd "$BC_ETCD_ENDPOINTS" \
        --server-pids "$(bc_join "${BC_ETCD_PIDS[@]}")" "${common[@]}"
    ;;
tikvc)
    bc_tikvc_start 3
    "$bin/tikv-bench" --pd "$BC_PD_ENDPOINT" \
        --server-pids "$(bc_join "${BC_TIKVC_PIDS[@]}")" "${common[@]}"
    # The README's libtikvc examples and tikv-ctl against the same real cluster.
    out="$("$bin/raw_example" "$BC_PD_ENDPOINT")"
    grep -qF "ok: hello = world" <<<"$out" || { echo "raw example: $out"; exit 1; }
    out="$("$bin/txn_example" "$BC_PD_ENDPOINT")"
    grep -qF "A = -10, B = 10" <<<"$out" || { echo "txn example: $out"; exit 1; }
    "$bin/tikv-ctl" --pd "$BC_PD_ENDPOINT" raw put smoke-key smoke-value >/dev/null
    out="$("$bin/tikv-ctl" --pd "$BC_PD_ENDPOINT" raw get smoke-key)"
    grep -qF "smoke-value" <<<"$out" || { echo "tikv-ctl raw get: $out"; exit 1; }
    echo "examples and tikv-ctl against the cluster: ok"
    ;;
*)
    echo "usage: run_smoke.sh etcd|tikvc BIN_DIR" >&2
    exit 2
    ;;
esac
# The report reads what the run wrote.
"$bin/tikv-bench" report "$data/result.json" | grep -q "put"
echo "bench smoke ($system): ok"
