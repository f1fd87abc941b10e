#!/usr/bin/env bash
# Starts a local cluster on 127.0.0.1 (1 PD + 3 TiKV, like `tiup playground`) in the
# foreground, waits until it serves, prints its endpoints, and stops every process it started
# (by PID) on Ctrl-C. Data lives in a temporary directory removed at exit unless
# PLAYGROUND_DATA is set (then it is kept and reused).
#
# Environment: PLAYGROUND_DATA (data directory), PD_PORT (2379), TIKV_PORT (20160, then +1
# per store), STATUS_PORT (20180, +1 per store), PD_HTTP_PORT (2381), STORES (3).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/build/bin"
STORES="${STORES:-3}"
PD_PORT="${PD_PORT:-2379}"
PD_HTTP_PORT="${PD_HTTP_PORT:-2381}"
TIKV_PORT="${TIKV_PORT:-20160}"
STATUS_PORT="${STATUS_PORT:-20180}"

if [ ! -x "$BIN/pd-server" ]; then
    echo "playground: pd-server is not built yet; nothing to start (started 0 processes)."
    exit 0
fi

if [ -n "${PLAYGROUND_DATA:-}" ]; then
    DATA="$PLAYGROUND_DATA"
    KEEP=1
    mkdir -p "$DATA"
else
    DATA="$(mktemp -d /tmp/tikvc-playground.XXXXXX)"
    KEEP=0
fi
chmod 700 "$DATA"

pids=()
names=()
cleanup() {
    trap - INT TERM EXIT
    echo
    echo "playground: stopping ${#pids[@]} processes"
    for i in "${!pids[@]}"; do
        kill -TERM "${pids[$i]}" 2>/dev/null || true
    done
    for i in "${!pids[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "${pids[$i]}" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "${pids[$i]}" 2>/dev/null || true
    done
    if [ "$KEEP" = 0 ]; then
        rm -rf "$DATA"
    else
        echo "playground: data kept in $DATA"
    fi
}
trap cleanup INT TERM EXIT

start() { # name logfile binary args...
    local name="$1" log="$2"
    shift 2
    "$@" >"$log" 2>&1 &
    pids+=("$!")
    names+=("$name")
}

start pd "$DATA/pd.log" "$BIN/pd-server" --name pd1 --client-urls "http://127.0.0.1:$PD_PORT" \
    --data-dir "$DATA/pd" --http-addr "127.0.0.1:$PD_HTTP_PORT"

if [ ! -x "$BIN/tikv-server" ]; then
    echo "playground: tikv-server is not built yet; started only pd-server (pid ${pids[0]})."
else
    for i in $(seq 1 "$STORES"); do
        start "tikv$i" "$DATA/tikv$i.log" "$BIN/tikv-server" --pd "127.0.0.1:$PD_PORT" \
            --addr "127.0.0.1:$((TIKV_PORT + i - 1))" \
            --status-addr "127.0.0.1:$((STATUS_PORT + i - 1))" --data-dir "$DATA/tikv$i"
    done
fi

# Wait until PD answers and every store is up (through PD's HTTP API).
echo "playground: waiting for the cluster to serve..."
want=$(( ${#pids[@]} - 1 ))
ready=0
for _ in $(seq 1 300); do
    for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[$i]}" 2>/dev/null; then
            echo "playground: ${names[$i]} exited; its log:"
            tail -20 "$DATA/${names[$i]}.log"
            exit 1
        fi
    done
    if out=$(curl -fsS "http://127.0.0.1:$PD_HTTP_PORT/pd/api/v1/stores" 2>/dev/null); then
        # grep finds nothing until a store is up: not an error under pipefail.
        up=$(printf '%s' "$out" | grep -o '"state_name": *"Up"' | wc -l) || up=0
        if [ "$up" -ge "$want" ]; then
            ready=1
            break
        fi
    fi
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    echo "playground: the cluster did not come up in 60 s; logs are in $DATA"
    KEEP=1
    exit 1
fi

echo
echo "tikv-c playground is up ($want stores)."
echo "  PD endpoint:    127.0.0.1:$PD_PORT      (clients: --pd 127.0.0.1:$PD_PORT)"
echo "  PD HTTP API:    http://127.0.0.1:$PD_HTTP_PORT/pd/api/v1/stores"
for i in $(seq 1 "$want"); do
    echo "  TiKV store $i:   127.0.0.1:$((TIKV_PORT + i - 1))    status/metrics: http://127.0.0.1:$((STATUS_PORT + i - 1))/metrics"
done
echo "  data and logs:  $DATA"
echo "  try:            build/bin/tikv-ctl --pd 127.0.0.1:$PD_PORT raw put hello world"
echo "Press Ctrl-C to stop."
wait
