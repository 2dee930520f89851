#!/usr/bin/env bash
# bench/hot-symbols.sh PREFIX
#
# Writes src/hot-symbols.txt: the library's functions that run on every statement, which
# build.rs hands the linker as a symbol ordering file so that they sit side by side in the
# shared library. Why: when the server (or anything else) runs on the client's CPU between a
# statement's steps, the client's code is evicted from the instruction caches and TLB, and each
# page and line it runs is fetched again. Packed, the round trip's code spans 19 pages of the
# library instead of 52 (bench/callgrind.sh reports the count).
#
# The functions are read from callgrind profiles of bench.c's loops, pgsess side, counting only
# measured_loop() (as bench/callgrind.sh does): the round trip with and without the statement
# cache, then the bulk fetch read per cell and into C types. Each workload's functions come in
# the order its profile lists them, after those of the workloads before it. A function is taken
# when one of its instructions ran at least once per call (per row for the fetches).
#
# Run it again after renaming or moving a hot function, or on a new Rust toolchain: the names
# are the mangled ones, which change then (and a stale name is skipped by the linker, silently).
# A name ending in .llvm.<number> (a local function ThinLTO made visible to its neighbours)
# changes too when anything in its code unit does, and with the checkout's directory (the
# source paths are part of the unit): a clean clone elsewhere matched 76 of 87 names.
# bench/callgrind.sh counts the names the library still has.
# Server: PGSQL_BENCH, or a throwaway cluster as in bench/run.sh.
set -u

[[ $# -eq 1 ]] || { echo "usage: $0 PREFIX" >&2; exit 2; }
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "hot-symbols.sh: PREFIX $1 does not exist" >&2; exit 2; }
command -v valgrind >/dev/null 2>&1 || { echo "hot-symbols.sh: valgrind is not installed" >&2; exit 2; }

# shellcheck source=bench/common.sh
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
bench_build "$prefix" || exit 1
bench_server || exit 1

out="$BENCH_ROOT/src/hot-symbols.txt"
list="$BENCH_TMP/hot"
: >"$list"
# workload, calls, how many times an instruction must run to count as run per call
for spec in "rt 2000 1800" "rtc 2000 1800" "bulk 1 180000" "typed 1 180000" "typedcol 1 180000"; do
    read -r workload n least <<<"$spec"
    f="$BENCH_TMP/callgrind.$workload"
    echo "callgrind: $workload pgsess x $n ..."
    timeout 600 valgrind --tool=callgrind --collect-atstart=no --toggle-collect=measured_loop --demangle=no \
        --dump-instr=yes --compress-pos=no --compress-strings=no \
        --callgrind-out-file="$f" "$BENCH_BIN" cg "$workload" pgsess "$n" >"$f.out" 2>"$f.log" || {
        echo "hot-symbols.sh: valgrind run failed ($workload); log:" >&2
        tail -n 20 "$f.log" >&2
        exit 1
    }
    # A cost line right after calls= is the call's inclusive cost, not the function's own code.
    awk -v least="$least" '
        /^ob=/ { ours = index($0, "libpgsess") > 0; next }
        /^fn=/ { fn = substr($0, 4); next }
        /^calls=/ { skip = 1; next }
        /^0x/ { if (skip) { skip = 0; next } if (ours && $3 + 0 >= least && !(fn in seen)) { seen[fn] = 1; print fn } next }
        { skip = 0 }' "$f" >>"$list"
done
{
    echo "# The functions run on every statement, packed together by the linker (see build.rs)."
    echo "# Written by bench/hot-symbols.sh with $(${RUSTC:-rustc} -V 2>/dev/null || echo rustc); do not edit by hand."
    awk '!seen[$0]++' "$list"
} >"$out"
echo "hot-symbols.sh: wrote $(($(wc -l <"$out") - 2)) names to $out"
