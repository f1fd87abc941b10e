#!/usr/bin/env bash
# Starts a local cluster on 127.0.0.1 (1 PD + 3 TiKV) in the foreground, prints its endpoints
# and stops every process it started (by PID) on Ctrl-C.
# While a component is not built yet, the playground says so and starts what exists.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin

started=()
if [ ! -x "$BIN/pd-server" ]; then
    echo "playground: pd-server is not built yet (issue 5); nothing to start."
    echo "playground: started 0 processes."
    exit 0
fi
