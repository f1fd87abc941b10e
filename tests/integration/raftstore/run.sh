#!/usr/bin/env bash
# Runs the raftstore integration tests (real pd-server and tikv-server processes on
# 127.0.0.1, random ports, temporary directories) with Go.
# Usage: [TKV_GO_TEST_DIR=DIR] run.sh BIN_DIR [go test args...]
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
cd "${TKV_GO_TEST_DIR:-$here}" # another test module may reuse this script
go mod download
exec go test -count=1 -timeout 25m "$@" ./...
