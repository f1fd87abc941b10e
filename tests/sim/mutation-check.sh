#!/bin/sh
# mutation-check.sh: shows that the simulator catches each disabled Raft safety rule within
# the seed set ctest runs (tests/sim/CMakeLists.txt). For every mutation it builds raft-sim in
# its own directory (build-mut-<name>/, never the default builds) with -DTKV_RAFT_MUTATION,
# runs the seed set and prints the first failures. Exits 1 if a mutation goes unnoticed.
#
#   tests/sim/mutation-check.sh [mutation...]   (default: all three)
set -eu
cd "$(dirname "$0")/../.."
gen=$(command -v ninja >/dev/null 2>&1 && echo Ninja || echo "Unix Makefiles")
muts=${*:-COMMIT_OLD_TERM NO_UPTODATE_CHECK NO_CHECKQUORUM_STEPDOWN}
status=0
for m in $muts; do
    dir=build-mut-$(echo "$m" | tr 'A-Z_' 'a-z-')
    cmake -S . -B "$dir" -G "$gen" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTKV_RAFT_MUTATION="$m" \
        >/dev/null 2>&1
    cmake --build "$dir" -j 2 --target raft-sim >/dev/null
    caught=0
    out=$(mktemp)
    for run in "3 1 250" "3 251 250" "5 1 150" "5 151 150"; do
        set -- $run
        if ! "$dir/bin/raft-sim" --nodes "$1" --seed "$2" --count "$3" >"$out" 2>&1; then
            n=$(grep -c '^seed .* FAILED' "$out" || true)
            caught=$((caught + n))
            grep '^seed .* FAILED' "$out" | head -2 | sed "s/^/  [$1 nodes] /"
        fi
    done
    rm -f "$out"
    if [ "$caught" -gt 0 ]; then
        echo "$m: caught by $caught of 800 seeds"
    else
        echo "$m: NOT caught"
        status=1
    fi
done
exit $status
