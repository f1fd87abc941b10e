#!/usr/bin/env bash
# Runs the bank test (real pd-server and tikv-server processes, client-go transactions,
# kill -9 of a store every 15 s) with Go.
# Usage: run.sh BIN_DIR [go test args...]; TKV_BANK_SECONDS changes the length (default 65).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="$(cd "$1" && pwd)"
shift
if ! command -v go >/dev/null 2>&1; then
    if [ -x /usr/local/go/bin/go ]; then
        export PATH="/usr/local/go/bin:$PATH"
    else
        "$here/../../../scripts/install-deps.sh" golang-go
    fi
fi
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export TKV_BIN_DIR="$bin_dir"
cd "$here"
go mod download
exec go test -count=1 -timeout 10m "$@" ./...
