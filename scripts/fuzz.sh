#!/usr/bin/env bash
# Builds one libFuzzer target with clang in build-fuzz/ and runs it.
#
#   scripts/fuzz.sh TARGET [SECONDS]        e.g. scripts/fuzz.sh toml 300   (default 60 s)
#
# The run starts from the committed seeds in tests/fuzz/corpus/TARGET/ and keeps what it finds
# in build-fuzz/corpus/TARGET/; a crash is saved under build-fuzz/artifacts/TARGET/ (turn it
# into a seed and a unit test). tests/fuzz/TARGET.dict is used when it exists.
# Environment:
#   FUZZ_MERGE=1   afterwards, merge build-fuzz/corpus/TARGET into the committed seeds, adding
#                  only inputs that reach new edges (libFuzzer -merge=1 -use_counters=0, which
#                  keeps the committed corpus small: hit counts alone do not earn a seed)
#   FUZZ_ARGS      extra libFuzzer flags, e.g. FUZZ_ARGS="-max_len=8192"
# Needs clang and its runtime (Debian: clang libclang-rt-14-dev), installed through
# scripts/install-deps.sh when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
secs=${2:-60}

# clang and its sanitizer/libFuzzer runtime are needed only here, so they are asked for here.
scripts/install-deps.sh clang libclang-rt-14-dev
if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi
if [ ! -d "tests/fuzz/corpus/$target" ]; then
    echo "fuzz: no target '$target' (no tests/fuzz/corpus/$target/)" >&2
    exit 1
fi

gen=()
if command -v ninja >/dev/null 2>&1; then
    gen=(-G Ninja)
fi
if [ ! -f build-fuzz/CMakeCache.txt ]; then
    cmake -S . -B build-fuzz "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DTKV_FUZZ=ON
fi
cmake --build build-fuzz -j 2 --target "fuzz-$target"

seeds="tests/fuzz/corpus/$target"
work="build-fuzz/corpus/$target"
artifacts="build-fuzz/artifacts/$target"
mkdir -p "$work" "$artifacts"
args=(-max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts/")
if [ -f "tests/fuzz/$target.dict" ]; then
    args+=(-dict="tests/fuzz/$target.dict")
fi
# shellcheck disable=SC2206
args+=(${FUZZ_ARGS:-})

echo "fuzz: $target for ${secs}s (corpus $work, seeds $seeds)"
"build-fuzz/bin/fuzz-$target" "${args[@]}" "$work" "$seeds"

if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    before=$(find "$seeds" -type f | wc -l)
    "build-fuzz/bin/fuzz-$target" -merge=1 -use_counters=0 "$seeds" "$work"
    after=$(find "$seeds" -type f | wc -l)
    echo "fuzz: merge added $((after - before)) seeds to $seeds"
fi
