#!/usr/bin/env bash
# bench/callgrind.sh PREFIX [RT_CALLS [BULK_FETCHES]]
#
# Client CPU cost in instructions, which do not drift with machine load: runs workloads 1 (round
# trip) and 2 (bulk fetch; and pgsess's row accessor as an extra) for each side separately under valgrind --tool=callgrind, counting only
# the client's instructions inside bench.c's measured_loop() (--collect-atstart=no
# --toggle-collect=measured_loop: connecting, SCRAM and warm-up are not counted), and reports
# instructions per call (workload 1) and per row (workload 2) and the ratio pgsess/libpq, the
# code workload 1 runs on every call in cache lines and pages (bench/footprint.awk), then
# pgsess's most expensive functions for workload 2. Rewrites the "Client CPU" section of
# BENCHMARKS.md (unless PGSESS_BENCH_NO_WRITE=1).
#
# Defaults: 2000 round trips, 1 bulk fetch of 200,000 rows (after one warm-up call/fetch).
# Server: PGSQL_BENCH, or a throwaway cluster as in bench/run.sh.
set -u

[[ $# -ge 1 && $# -le 3 ]] || { echo "usage: $0 PREFIX [RT_CALLS [BULK_FETCHES]]" >&2; exit 2; }
command_line="bench/callgrind.sh $*"
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "callgrind.sh: PREFIX $1 does not exist" >&2; exit 2; }
rt_calls=${2:-2000}
bulk_fetches=${3:-1}
command -v valgrind >/dev/null 2>&1 || { echo "callgrind.sh: valgrind is not installed" >&2; exit 2; }

# shellcheck source=bench/common.sh
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
started=$(date +%s)
bench_build "$prefix" || exit 1
bench_server || exit 1

declare -A ir rows
for workload in rt bulk bulkrow; do
    n=$rt_calls
    [[ $workload == bulk* ]] && n=$bulk_fetches
    sides="pgsess libpq"
    [[ $workload == bulkrow ]] && sides=pgsess # the row accessor; libpq has no counterpart
    for side in $sides; do
        f="$BENCH_TMP/callgrind.$workload.$side"
        echo "callgrind: $workload $side x $n ..."
        # For the round trip, each instruction's own count too (bench/footprint.awk).
        per_instr=()
        [[ $workload == rt ]] && per_instr=(--dump-instr=yes --compress-pos=no --compress-strings=no)
        timeout 600 valgrind --tool=callgrind --collect-atstart=no --toggle-collect=measured_loop "${per_instr[@]}" \
            --callgrind-out-file="$f" "$BENCH_BIN" cg "$workload" "$side" "$n" >"$f.out" 2>"$f.log" || {
            echo "callgrind.sh: valgrind run failed ($workload $side); log:" >&2
            tail -n 20 "$f.log" >&2
            exit 1
        }
        ir[$workload.$side]=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f" | head -n 1)
        [[ -n "${ir[$workload.$side]}" ]] || ir[$workload.$side]=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$f" | head -n 1)
        rows[$workload.$side]=$(sed -n 's/^CG .* rows=\([0-9]*\).*/\1/p' "$f.out")
    done
done

per() { # per WORKLOAD SIDE N -> instructions per call or per row
    awk -v t="${ir[$1.$2]}" -v n="$3" -v r="${rows[$1.$2]}" 'BEGIN { printf "%.0f", t / (n * r) }'
}
rt_a=$(per rt pgsess "$rt_calls"); rt_b=$(per rt libpq "$rt_calls")
bk_a=$(per bulk pgsess "$bulk_fetches"); bk_b=$(per bulk libpq "$bulk_fetches")
bk_w=$(per bulkrow pgsess "$bulk_fetches")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# The code run on every round trip: "LINES PAGES LIB_LINES LIB_PAGES" (bench/footprint.awk).
footprint() { # SIDE LIBRARY
    awk -v calls="$rt_calls" -v lib="$2" -f "$BENCH_ROOT/bench/footprint.awk" "$BENCH_TMP/callgrind.rt.$1"
}
read -r fp_a fpp_a fl_a flp_a <<<"$(footprint pgsess libpgsess)"
# How much of src/hot-symbols.txt the library still has (stale names are skipped by the linker).
hot_list="$BENCH_ROOT/src/hot-symbols.txt"
hot_total=$(grep -vc '^#' "$hot_list" 2>/dev/null)
hot_found=$(nm "$prefix/lib/libpgsess.so" 2>/dev/null | awk 'NR == FNR { if ($0 !~ /^#/) want[$0] = 1; next }
    ($NF in want) && !seen[$NF]++ { n++ } END { print n + 0 }' "$hot_list" - 2>/dev/null)
read -r fp_b fpp_b fl_b flp_b <<<"$(footprint libpq libpq)"

table=$(
    echo "| workload (client instructions, valgrind callgrind) | pgsess | libpq | ratio pgsess/libpq |"
    echo "|---|---:|---:|---:|"
    echo "| 1. round trip \`SELECT \$1::int + 1\`: instructions per call ($rt_calls calls) | $rt_a | $rt_b | $(ratio "$rt_a" "$rt_b") |"
    echo "| 1. the same: code run on every call, 64-byte lines (4 KiB pages), whole process | $fp_a ($fpp_a) | $fp_b ($fpp_b) | $(ratio "$fp_a" "$fp_b") |"
    echo "| 1. the same, the library alone (libpgsess / libpq) | $fl_a ($flp_a) | $fl_b ($flp_b) | $(ratio "$fl_a" "$fl_b") |"
    echo "| 2. bulk fetch, every value read: instructions per row (${rows[bulk.pgsess]} rows x 5 columns, $bulk_fetches fetch(es)) | $bk_a | $bk_b | $(ratio "$bk_a" "$bk_b") |"
    echo "| 2. (extra) the same, pgsess reading with \`pgsess_results_row\` (one call per row) | $bk_w | $bk_b | $(ratio "$bk_w" "$bk_b") |"
)
# The function lines of callgrind_annotate's listing (after the "Ir  file:function" header).
top_functions() { # FILE COUNT
    callgrind_annotate --inclusive=no "$1" 2>/dev/null |
        awk '/file:function/ { on = 1; getline; next } on && NF' | head -n "$2" |
        sed -e 's|/rustc/[0-9a-f]*/library/|rust:|' -e 's|/root/.cargo/registry/src/[^/]*/||' \
            -e 's|\[/tmp/pgsess-bench[^]]*\]||' -e "s|\\[$prefix/lib/|[|" | cut -c1-180
}
total_of() { sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$1" | head -n 1; }
top=$(top_functions "$BENCH_TMP/callgrind.bulk.pgsess" 20)
top_rt=$(top_functions "$BENCH_TMP/callgrind.rt.pgsess" 16)
echo
echo "$table"
echo
echo "src/hot-symbols.txt: ${hot_found:-0} of ${hot_total:-0} names are in the library (bench/hot-symbols.sh writes the list again)"
echo
echo "pgsess, workload 2: top functions by exclusive instructions (whole measured loop: $(total_of "$BENCH_TMP/callgrind.bulk.pgsess") in total)"
echo "$top"
echo
echo "pgsess, workload 1: top functions by exclusive instructions ($(total_of "$BENCH_TMP/callgrind.rt.pgsess") in total)"
echo "$top_rt"
elapsed=$(($(date +%s) - started))
echo
echo "bench/callgrind.sh: ${elapsed}s"

[[ "${PGSESS_BENCH_NO_WRITE:-}" == 1 ]] && exit 0
md="$BENCH_ROOT/BENCHMARKS.md"
section="$BENCH_TMP/section.md"
{
    echo "## Client CPU: instructions (bench/callgrind.sh)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); command: \`$command_line\` (took ${elapsed} s)"
    echo "- counted: the client process's instructions inside \`measured_loop()\` only (the loop of calls,"
    echo "  each value read and checked; connecting and warm-up excluded); the C loop's own work (snprintf,"
    echo "  strcmp, strlen) is the same on both sides and included in both"
    echo
    echo "$table"
    echo
    echo "<details><summary>pgsess's top functions (exclusive instructions), workload 2 and workload 1</summary>"
    echo
    echo '```'
    echo "workload 2 ($(total_of "$BENCH_TMP/callgrind.bulk.pgsess") instructions in total):"
    echo "$top"
    echo
    echo "workload 1 ($(total_of "$BENCH_TMP/callgrind.rt.pgsess") instructions in total):"
    echo "$top_rt"
    echo '```'
    echo
    echo "</details>"
    echo
} >"$section"
if [[ -f "$md" ]] && grep -q '^## Client CPU' "$md"; then
    # Replace the old section (up to the next "## " heading).
    awk -v f="$section" '
        /^## Client CPU/ { while ((getline l < f) > 0) print l; skip = 1; next }
        skip && /^## / { skip = 0 }
        !skip' "$md" >"$BENCH_TMP/md" && mv "$BENCH_TMP/md" "$md"
elif [[ -f "$md" ]] && grep -q '^## Latest results' "$md"; then
    awk -v f="$section" '
        /^## Latest results/ { while ((getline l < f) > 0) print l }
        { print }' "$md" >"$BENCH_TMP/md" && mv "$BENCH_TMP/md" "$md"
else
    cat "$section" >>"$md"
fi
echo "bench/callgrind.sh: wrote $md"
