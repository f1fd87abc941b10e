#!/usr/bin/env bash
# Static analysis of tikv-c's own sources: clang-tidy (the checks in .clang-tidy, each disabled
# one with its reason there) and cppcheck. Exits 1 on any finding, 2 when a tool is missing.
# Generated code (protobuf-c output in the build tree) and fuzz corpora are not analysed.
#
#   scripts/lint.sh            every C/C++ source of ours that the build compiles
#   scripts/lint.sh FILE...    just these files
#
# TKV_LINT_BUILD picks the build tree whose compile_commands.json is used (default build/).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${TKV_LINT_BUILD:-build}
JOBS=${JOBS:-2}
for tool in clang-tidy cppcheck python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "lint: $tool is not installed (apt-get install clang-tidy cppcheck)" >&2
        exit 2
    fi
done

# The compilation database, and the generated headers our sources include.
if [ ! -f "$BUILD/compile_commands.json" ]; then
    gen=$(command -v ninja >/dev/null 2>&1 && echo Ninja || echo "Unix Makefiles")
    cmake -S . -B "$BUILD" -G "$gen" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" --target tkv_proto -j "$JOBS" >/dev/null

# Our sources: what the build compiles, minus generated files.
if [ $# -gt 0 ]; then
    files=("$@")
else
    mapfile -t files < <(python3 - "$BUILD" "$PWD" <<'PY'
import json, os, sys
build, root = sys.argv[1], sys.argv[2]
seen = set()
for entry in json.load(open(os.path.join(build, "compile_commands.json"))):
    path = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
    rel = os.path.relpath(path, root)
    if rel.startswith(("src/", "tools/", "tests/", "bench/")) and rel not in seen:
        seen.add(rel)
        print(rel)
PY
    )
fi
if [ ${#files[@]} -eq 0 ]; then
    echo "lint: no sources found" >&2
    exit 2
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0

echo "lint: clang-tidy on ${#files[@]} files"
if ! printf '%s\n' "${files[@]}" |
    xargs -P "$JOBS" -n 4 clang-tidy -p "$BUILD" --quiet >"$out" 2>/dev/null; then
    status=1
fi
grep -E '(warning|error):' "$out" || true

echo "lint: cppcheck"
c_files=()
for f in "${files[@]}"; do
    case "$f" in *.c) c_files+=("$f") ;; esac
done
# protobuf-c's version macros come from a system header that cppcheck does not read; so do
# jansson's iteration macros, which scripts/cppcheck-jansson.cfg defines.
if ! cppcheck --quiet --std=c11 --language=c -D_GNU_SOURCE -DTKV_TESTING=1 \
    --library=scripts/cppcheck-jansson.cfg \
    -DPROTOBUF_C_VERSION_NUMBER=1004001 -DPROTOBUF_C_MIN_COMPILER_VERSION=1000000 \
    -I src -I tests -I "$BUILD/proto/gen" \
    --enable=warning,performance,portability --inline-suppr \
    --suppress=missingIncludeSystem --error-exitcode=1 -j "$JOBS" "${c_files[@]}"; then
    status=1
fi

if [ "$status" -ne 0 ]; then
    echo "lint: findings above (fix them, or disable a check in .clang-tidy with its reason)"
    exit 1
fi
echo "lint: ok"
