#!/usr/bin/env bash
# End-to-end checks of the programs built on libtikvc, against build/bin/fake-cluster (a fake
# PD and three fake stores on 127.0.0.1): tikv-ctl's commands, output forms and exit codes,
# the two examples, and libtikvc installed with `cmake --install` and compiled against through
# pkg-config, as a user would.
# Usage: e2e_client.sh FAKE_CLUSTER TIKV_CTL RAW_EXAMPLE TXN_EXAMPLE BUILD_DIR SRC_DIR "CFLAGS"
set -euo pipefail
FAKE="$1" CTL="$2" RAW_EX="$3" TXN_EX="$4" BUILD="$5" SRC="$6" EXTRA_CFLAGS="$7"
TMP="$(mktemp -d /tmp/tikvc-e2e.XXXXXX)"
FAKE_PID=""
cleanup() {
    exec 7>&- 2>/dev/null || true
    if [ -n "$FAKE_PID" ]; then
        wait "$FAKE_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

mkfifo "$TMP/in"
"$FAKE" <"$TMP/in" >"$TMP/addr" 2>"$TMP/fake.log" &
FAKE_PID=$!
exec 7>"$TMP/in"
for _ in $(seq 1 200); do
    [ -s "$TMP/addr" ] && break
    sleep 0.05
done
PD="$(head -1 "$TMP/addr")"
[ -n "$PD" ] || { echo "fake cluster did not start"; cat "$TMP/fake.log"; exit 1; }

fails=0
# check NAME EXPECTED_RC EXPECTED_SUBSTRING -- command...
check() {
    local name="$1" want_rc="$2" want="$3"
    shift 4
    local out rc=0
    out="$("$@" 2>&1)" || rc=$?
    if [ "$rc" != "$want_rc" ] || ! grep -qF -- "$want" <<<"$out"; then
        echo "FAIL $name: rc=$rc (want $want_rc), output:"
        echo "$out" | sed 's/^/    /'
        fails=$((fails + 1))
    else
        echo "ok   $name"
    fi
}

c=("$CTL" --pd "$PD")
check "raw put" 0 "ok" -- "${c[@]}" raw put k1 v1
check "raw get" 0 "v1" -- "${c[@]}" raw get k1
check "raw get missing" 1 "key not found" -- "${c[@]}" raw get nope
check "raw get json" 0 '"found": true' -- "${c[@]}" --json raw get k1
check "raw put ttl" 0 "ok" -- "${c[@]}" raw put k2 'x\x00y' --ttl 100
check "raw scan" 0 "(2 pairs)" -- "${c[@]}" raw scan
check "raw scan escapes" 0 'x\x00y' -- "${c[@]}" raw scan --from k2
check "raw scan reverse" 0 "k2" -- "${c[@]}" --json raw scan --reverse --limit 1
check "raw delete" 0 "ok" -- "${c[@]}" raw delete k1
check "raw get deleted" 1 "not found" -- "${c[@]}" raw get k1
check "raw delete-range" 0 "ok" -- "${c[@]}" raw delete-range --from a --to z
check "raw scan empty" 0 "(0 pairs)" -- "${c[@]}" raw scan
check "hex keys" 0 "ok" -- "${c[@]}" --hex raw put 6b33 7633
check "hex read" 0 "v3" -- "${c[@]}" raw get k3
check "txn put" 0 "committed at ts" -- "${c[@]}" txn put t1 tv1
check "txn get" 0 "tv1" -- "${c[@]}" txn get t1
check "txn scan" 0 "t1" -- "${c[@]}" txn scan
check "txn delete" 0 "committed at ts" -- "${c[@]}" txn delete t1
check "txn get deleted" 1 "not found" -- "${c[@]}" txn get t1
check "region by key" 0 "leader store: 1" -- "${c[@]}" region k1
check "region by id" 0 '"id": 2' -- "${c[@]}" --json region --id 2
check "region unknown" 4 "failed" -- "${c[@]}" region --id 999
# A rejected key frees its buffer (LeakSanitizer fails the run otherwise).
check "region bad hex key" 2 "is not hex" -- "${c[@]}" --hex region 7z
check "raw get bad hex key" 2 "is not hex" -- "${c[@]}" --hex raw get 7z
check "stores" 0 "ADDRESS" -- "${c[@]}" store
check "one store json" 0 '"id": 3' -- "${c[@]}" --json store 3
check "cluster" 0 "regions: 1" -- "${c[@]}" cluster
check "cluster json" 0 '"region_count": 1' -- "${c[@]}" --json cluster
check "bench put" 0 "raw-put" -- "${c[@]}" bench raw-put --concurrency 4 --seconds 1 --keys 500
check "bench get" 0 "0 with a wrong value" -- "${c[@]}" bench raw-get --concurrency 4 --seconds 1 --keys 500
check "no batch" 0 "v3" -- "${c[@]}" --no-batch raw get k3
check "help" 0 "exit codes" -- "$CTL" --help
check "usage" 2 "unknown command" -- "$CTL" bogus
check "bad option" 2 "unknown option" -- "$CTL" --bogus raw get x
check "missing args" 2 "wrong number" -- "${c[@]}" raw put onlykey
check "no pd" 3 "cannot connect to PD" -- "$CTL" --pd 127.0.0.1:1 --timeout 300 raw get x
check "raw example" 0 "ok: hello = world" -- "$RAW_EX" "$PD"
check "txn example" 0 "A = -10, B = 10" -- "$TXN_EX" "$PD"

# Installed as a user gets it: header, library and pkg-config file.
cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null
PKG_CONFIG_PATH="$TMP/prefix/lib/pkgconfig:$TMP/prefix/lib64/pkgconfig:$TMP/prefix/lib/x86_64-linux-gnu/pkgconfig"
export PKG_CONFIG_PATH
# shellcheck disable=SC2086
cc -std=c11 $EXTRA_CFLAGS "$SRC/examples/raw_example.c" -o "$TMP/user_example" \
    $(pkg-config --cflags --libs libtikvc) \
    -Wl,-rpath,"$(pkg-config --variable=libdir libtikvc)"
check "installed library" 0 "ok: hello = world" -- "$TMP/user_example" "$PD"

exec 7>&-
wait "$FAKE_PID"
FAKE_PID=""

# TLS: a fake cluster that speaks mutual TLS, reached with tikv-ctl's TLS flags.
PKI="$TMP/pki"
mkdir -p "$PKI"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
(
    cd "$PKI"
    # shellcheck disable=SC2086
    openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj '/CN=e2e CA' 2>/dev/null
    for leaf in server client; do
        # shellcheck disable=SC2086
        openssl req $ec -keyout $leaf.key -out $leaf.csr -subj "/CN=$leaf" 2>/dev/null
        if [ $leaf = server ]; then
            echo "subjectAltName=IP:127.0.0.1" >$leaf.ext
        else
            echo "extendedKeyUsage=clientAuth" >$leaf.ext
        fi
        openssl x509 -req -in $leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out $leaf.pem -days 2 -extfile $leaf.ext 2>/dev/null
    done
)
rm -f "$TMP/in" "$TMP/addr"
mkfifo "$TMP/in"
FAKE_TLS_DIR="$PKI" "$FAKE" <"$TMP/in" >"$TMP/addr" 2>"$TMP/fake-tls.log" &
FAKE_PID=$!
exec 7>"$TMP/in"
for _ in $(seq 1 200); do
    [ -s "$TMP/addr" ] && break
    sleep 0.05
done
PD="$(head -1 "$TMP/addr")"
t=("$CTL" --pd "$PD" --ca-path "$PKI/ca.pem" --cert-path "$PKI/client.pem"
    --key-path "$PKI/client.key")
check "tls put" 0 "ok" -- "${t[@]}" raw put tk tv
check "tls get" 0 "tv" -- "${t[@]}" raw get tk
check "tls txn" 0 "committed at ts" -- "${t[@]}" txn put tt tv
check "plaintext refused" 3 "cannot connect" -- "$CTL" --pd "$PD" --timeout 500 raw get tk
check "bad ca path" 3 "cannot connect" -- "$CTL" --pd "$PD" --ca-path /nonexistent/ca.pem raw get tk
exec 7>&-
wait "$FAKE_PID"
FAKE_PID=""

if [ "$fails" != 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all checks passed"
