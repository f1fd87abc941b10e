#!/usr/bin/env bash
# Runs the storage-security integration tests (encryption at rest, disk full) with Go, the
# way ../raftstore/run.sh runs its own (same Go lookup and module download).
# Usage: run.sh BIN_DIR [go test args...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
TKV_GO_TEST_DIR="$here" exec "$here/../raftstore/run.sh" "$@"
