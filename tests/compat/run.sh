#!/usr/bin/env bash
# Runs the Go compatibility suite (official client-go v2.0.4 against tikv-c).
# Usage: run.sh BIN_DIR [go test args...]
# Finds Go (PATH, then /usr/local/go/bin, else installs Debian's golang-go), downloads the
# modules pinned in go.sum from the Go module proxy, and runs the tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="$(cd "$1" && pwd)"
shift

if ! command -v go >/dev/null 2>&1; then
    if [ -x /usr/local/go/bin/go ]; then
        export PATH="/usr/local/go/bin:$PATH"
    else
        "$here/../../scripts/install-deps.sh" golang-go
    fi
fi
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export TKV_BIN_DIR="$bin_dir"
cd "$here"
go mod download
exec go test -count=1 -timeout 20m "$@" ./...
