# bench/cluster.sh: start and stop local clusters for benchmarks and their smoke tests.
# Sourced (not run) by scripts/bench.sh and tests/integration/bench/run_smoke.sh.
#
#   bc_init BIN_DIR DATA_DIR      where the binaries are, where data and logs go
#   bc_etcd_start N               N-member etcd cluster on free 127.0.0.1 ports (Debian's etcd,
#                                 its defaults: fsync on); sets BC_ETCD_ENDPOINTS, BC_ETCD_PIDS
#   bc_tikvc_start N              pd-server + N tikv-server (defaults: sync-log on); waits until
#                                 every region has N voters and a leader; sets BC_PD_ENDPOINT,
#                                 BC_TIKVC_PIDS
#   bc_stop_all                   stops every process started here, by PID (TERM, then KILL)
#
# Every started process is remembered in BC_PIDS; callers trap EXIT to call bc_stop_all.

BC_PIDS=()
BC_NAMES=()

bc_init() { # BIN_DIR DATA_DIR
    BC_BIN="$1"
    BC_DATA="$2"
    mkdir -p "$BC_DATA"
}

bc_log() {
    echo "[cluster] $*" >&2
}

# Starts "$@" in the background with output in LOG; remembers its PID in BC_LAST_PID.
bc_spawn() { # NAME LOG CMD...
    local name="$1" log="$2"
    shift 2
    "$@" >"$log" 2>&1 &
    BC_LAST_PID=$!
    BC_PIDS+=("$BC_LAST_PID")
    BC_NAMES+=("$name")
}

# Stops the processes with the given PIDs (all started here) and forgets them.
bc_stop_pids() { # PID...
    local p
    for p in "$@"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "$@"; do
        for _ in $(seq 1 150); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$p" 2>/dev/null; then
            bc_log "pid $p did not stop in 15 s; killing it"
            kill -KILL "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
    done
    local keep_p=() keep_n=() i
    for i in "${!BC_PIDS[@]}"; do
        local gone=0
        for p in "$@"; do
            [ "${BC_PIDS[$i]}" = "$p" ] && gone=1
        done
        if [ "$gone" = 0 ]; then
            keep_p+=("${BC_PIDS[$i]}")
            keep_n+=("${BC_NAMES[$i]}")
        fi
    done
    BC_PIDS=("${keep_p[@]+"${keep_p[@]}"}")
    BC_NAMES=("${keep_n[@]+"${keep_n[@]}"}")
}

bc_stop_all() {
    if [ "${#BC_PIDS[@]}" -gt 0 ]; then
        bc_stop_pids "${BC_PIDS[@]}"
    fi
}

# Prints N free ports (bound and released by tikv-bench; a small race remains).
bc_ports() { # N
    "$BC_BIN/tikv-bench" ports "$1"
}

# Fails when one of the PIDs has exited, after printing the tail of its log.
bc_check_alive() { # DIR PID...
    local dir="$1" p
    shift
    for p in "$@"; do
        if ! kill -0 "$p" 2>/dev/null; then
            bc_log "process $p exited; logs in $dir:"
            tail -n 20 "$dir"/*.log >&2 || true
            return 1
        fi
    done
}

bc_etcd_start() { # N
    local n="$1" i dir ports cluster="" token
    dir="$(mktemp -d "$BC_DATA/etcd.XXXXXX")"
    mapfile -t ports < <(bc_ports $((2 * n)))
    token="tikv-bench-$$-$RANDOM"
    for i in $(seq 0 $((n - 1))); do
        cluster+="${cluster:+,}m$i=http://127.0.0.1:${ports[$((2 * i + 1))]}"
    done
    BC_ETCD_ENDPOINTS=""
    BC_ETCD_PIDS=()
    for i in $(seq 0 $((n - 1))); do
        local cport="${ports[$((2 * i))]}" pport="${ports[$((2 * i + 1))]}"
        bc_spawn "etcd-m$i" "$dir/m$i.log" etcd --name "m$i" --data-dir "$dir/m$i" \
            --listen-client-urls "http://127.0.0.1:$cport" \
            --advertise-client-urls "http://127.0.0.1:$cport" \
            --listen-peer-urls "http://127.0.0.1:$pport" \
            --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
            --initial-cluster "$cluster" --initial-cluster-token "$token" \
            --initial-cluster-state new
        BC_ETCD_PIDS+=("$BC_LAST_PID")
        BC_ETCD_ENDPOINTS+="${BC_ETCD_ENDPOINTS:+,}127.0.0.1:$cport"
    done
    BC_ETCD_DIR="$dir"
    local ok=0
    for _ in $(seq 1 300); do
        bc_check_alive "$dir" "${BC_ETCD_PIDS[@]}" || return 1
        ok=1
        for i in $(seq 0 $((n - 1))); do
            if ! curl -fsS "http://127.0.0.1:${ports[$((2 * i))]}/health" 2>/dev/null |
                grep -q '"health":"true"'; then
                ok=0
                break
            fi
        done
        [ "$ok" = 1 ] && break
        sleep 0.1
    done
    if [ "$ok" != 1 ]; then
        bc_log "etcd did not become healthy in 30 s; logs in $dir"
        return 1
    fi
    bc_log "etcd: $n members at $BC_ETCD_ENDPOINTS (pids ${BC_ETCD_PIDS[*]}, data $dir)"
}

bc_etcd_stop() {
    bc_stop_pids "${BC_ETCD_PIDS[@]}"
    rm -rf "$BC_ETCD_DIR"
}

bc_tikvc_start() { # N
    local n="$1" i dir ports
    if [ ! -x "$BC_BIN/pd-server" ] || [ ! -x "$BC_BIN/tikv-server" ]; then
        bc_log "pd-server or tikv-server is not built in $BC_BIN"
        return 2
    fi
    dir="$(mktemp -d "$BC_DATA/tikvc.XXXXXX")"
    mapfile -t ports < <(bc_ports $((2 + 2 * n)))
    BC_PD_ENDPOINT="127.0.0.1:${ports[0]}"
    BC_TIKVC_PIDS=()
    bc_spawn pd "$dir/pd.log" "$BC_BIN/pd-server" --name pd1 \
        --client-urls "http://$BC_PD_ENDPOINT" --data-dir "$dir/pd" \
        --http-addr "127.0.0.1:${ports[1]}"
    BC_TIKVC_PIDS+=("$BC_LAST_PID")
    for i in $(seq 1 "$n"); do
        bc_spawn "tikv$i" "$dir/tikv$i.log" "$BC_BIN/tikv-server" --pd "$BC_PD_ENDPOINT" \
            --addr "127.0.0.1:${ports[$((2 * i))]}" \
            --status-addr "127.0.0.1:${ports[$((2 * i + 1))]}" --data-dir "$dir/tikv$i"
        BC_TIKVC_PIDS+=("$BC_LAST_PID")
    done
    BC_TIKVC_DIR="$dir"
    if ! "$BC_BIN/tikv-bench" wait-cluster --pd "$BC_PD_ENDPOINT" --replicas "$n" \
        --timeout 120; then
        bc_check_alive "$dir" "${BC_TIKVC_PIDS[@]}" || true
        bc_log "tikv-c did not become ready; logs in $dir"
        tail -n 20 "$dir"/*.log >&2 || true
        return 1
    fi
    bc_check_alive "$dir" "${BC_TIKVC_PIDS[@]}" || return 1
    bc_log "tikv-c: pd $BC_PD_ENDPOINT + $n stores (pids ${BC_TIKVC_PIDS[*]}, data $dir)"
}

bc_tikvc_stop() {
    # The stores first, so they do not spend their shutdown retrying a stopped PD.
    bc_stop_pids "${BC_TIKVC_PIDS[@]:1}"
    bc_stop_pids "${BC_TIKVC_PIDS[0]}"
    rm -rf "$BC_TIKVC_DIR"
}

# Joins the arguments with commas.
bc_join() {
    local IFS=,
    echo "$*"
}
