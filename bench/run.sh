#!/usr/bin/env bash
# bench/run.sh PREFIX [-q]      (what `make bench` runs)
#
# Builds bench/bench.c through pkg-config against the pgsess installed under PREFIX and the
# system libpq, runs every workload of the performance issue with pgsess and libpq interleaved in
# blocks, prints the result table and rewrites the "Latest results" section of BENCHMARKS.md.
#
# Environment:
#   PGSQL_BENCH                   PostgreSQL URI to use; unset: a throwaway cluster is started
#                                 (scripts/pg-cluster) and stopped afterwards
#   PGSESS_BENCH_POSTMASTER_PID   with PGSQL_BENCH: the server's postmaster, to pin it
#   PGSESS_BENCH_PLACEMENT        split (default): server on CPU 1, client on CPU 0
#                                 same: server and client both on CPU 0
#                                 none: no pinning
#   PGSESS_BENCH_NO_WRITE=1       do not touch BENCHMARKS.md (-q never writes it)
#   PGSESS_BENCH_ONLY=bulk,...    run only these workloads (roundtrip, roundtrip_cached, bulk, bulk_typed, concurrency, connect,
#                                 memory, writes, dirty, copy_in, copy_out, notify); never writes
#                                 BENCHMARKS.md
#   CC                            compiler (default cc)
set -u

[[ $# -ge 1 ]] || { echo "usage: $0 PREFIX [-q]" >&2; exit 2; }
command_line="bench/run.sh $*"
[[ -n "${PGSESS_BENCH_PLACEMENT:-}" ]] && command_line="PGSESS_BENCH_PLACEMENT=$PGSESS_BENCH_PLACEMENT $command_line"
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "run.sh: PREFIX $1 does not exist" >&2; exit 2; }
shift
quick=
if [[ "${1:-}" == -q ]]; then quick=-q; shift; fi
[[ $# -eq 0 ]] || { echo "usage: bench/run.sh PREFIX [-q]" >&2; exit 2; }

# shellcheck source=bench/common.sh
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
started=$(date +%s)

bench_build "$prefix" || exit 1
bench_server || exit 1

bench_placement || exit 2
echo "placement: $placement_text"

out="$BENCH_TMP/out.txt"
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
# Bounded: the whole run takes about 1.5-2 minutes on the 2-core development machines (the COPY
# workloads move 5 x 12 + 3 x 12 copies of a million rows, warm-up included).
timeout 290 "${pin[@]}" "$BENCH_BIN" all $quick | tee "$out"
status=${PIPESTATUS[0]}
elapsed=$(($(date +%s) - started))
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
if [[ $status -ne 0 ]]; then
    echo "bench/run.sh: the benchmark failed (exit $status) after ${elapsed}s" >&2
    exit 1
fi
echo "bench/run.sh: ${elapsed}s in total (build, server start, all workloads); load average $load_before before, $load_after after"

[[ -n "$quick" || "${PGSESS_BENCH_NO_WRITE:-}" == 1 || -n "${PGSESS_BENCH_ONLY:-}" ]] && exit 0

# ---- BENCHMARKS.md: keep everything above "## Latest results", rewrite the rest.
md="$BENCH_ROOT/BENCHMARKS.md"
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
server_version=$(sed -n 's/.* server \([^;]*\); .*/\1/p' "$out" | head -n 1)
libpq_version=$(sed -n 's/.* vs libpq \([0-9]*\); .*/\1/p' "$out" | head -n 1)
pgsess_version=$(sed -n 's/^pgsess \([^ ]*\) vs .*/\1/p' "$out" | head -n 1)
{
    if [[ -f "$md" ]]; then
        sed '/^## Latest results/,$d' "$md"
    else
        printf '# Benchmarks\n\nSee bench/bench.c for the method.\n\n'
    fi
    echo "## Latest results"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- command: \`$command_line\` (from the repository root; took ${elapsed} s)"
    echo "- built with: \`$BENCH_BUILD_CMD\`"
    echo "- machine: $(nproc) CPUs, $cpu_model, Linux $(uname -r)"
    echo "- PostgreSQL server $server_version ($BENCH_SERVER); libpq $libpq_version; pgsess $pgsess_version"
    echo "- placement: $placement_text"
    echo "- load average (1, 5, 15 min) before: $load_before; after: $load_after (other jobs on the machine add noise)"
    echo
    sed -n '/^RESULTS-TABLE-BEGIN$/,/^RESULTS-TABLE-END$/p' "$out" | sed '1d;$d'
    echo
    echo "Ratios are pgsess/libpq: below 1 means pgsess takes less time (or memory); for throughput,"
    echo "above 1 means pgsess is faster. Targets are the performance issue's."
    echo
    echo "<details><summary>Full output</summary>"
    echo
    echo '```'
    sed '/^RESULTS-TABLE-BEGIN$/,$d' "$out"
    echo '```'
    echo
    echo "</details>"
} >"$BENCH_TMP/BENCHMARKS.md" && mv "$BENCH_TMP/BENCHMARKS.md" "$md"
echo "bench/run.sh: wrote $md"
