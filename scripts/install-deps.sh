#!/usr/bin/env bash
# Installs every Debian package that the build, the tests and the tools need.
# Idempotent: packages already present are skipped, and `apt-get update` runs at
# most once per invocation (only when something is missing).
set -euo pipefail

PKGS=(
    build-essential cmake ninja-build pkg-config
    librocksdb-dev
    libgrpc-dev
    libprotobuf-c-dev protobuf-c-compiler
    libssl-dev
    libmicrohttpd-dev
    libgnutls28-dev
    libjansson-dev
    libcmocka-dev
    clang-format clang-tidy cppcheck
    zlib1g-dev
    libcurl4-openssl-dev curl ca-certificates openssl
)
# Extra packages asked for by the caller (for example the benchmark's etcd).
PKGS+=("$@")

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
