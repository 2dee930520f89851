#!/usr/bin/env bash
# bench/async.sh PREFIX [-q] [BLOCKS]
#
# Builds bench/async.c through pkg-config against the pgsess installed under PREFIX and the system
# libpq, and measures the throughput of 1,000 `SELECT $1::int * 2` three ways, interleaved in
# blocks (A B C A B C ...): pgsess_query_async on one epoll thread (pool 8); 8 threads with the
# blocking pgsess_query on one session (pool 8); libpq with 8 nonblocking connections
# (PQsendQueryParams) on one epoll thread. Prints the per-block numbers and a small table
# (medians, and the ratios async/threads and async/libpq). Writes no file.
#
# Environment (as bench/run.sh):
#   PGSQL_BENCH                   PostgreSQL URI to use; unset: a throwaway cluster is started
#                                 (scripts/pg-cluster) and stopped afterwards
#   PGSESS_BENCH_POSTMASTER_PID   with PGSQL_BENCH: the server's postmaster, to pin it
#   PGSESS_BENCH_PLACEMENT        split (default): server on CPU 1, client on CPU 0
#                                 same: server and client both on CPU 0
#                                 none: no pinning
#   CC                            compiler (default cc)
set -u

usage() { echo "usage: bench/async.sh PREFIX [-q] [BLOCKS]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
command_line="bench/async.sh $*"
[[ -n "${PGSESS_BENCH_PLACEMENT:-}" ]] && command_line="PGSESS_BENCH_PLACEMENT=$PGSESS_BENCH_PLACEMENT $command_line"
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "async.sh: PREFIX $1 does not exist" >&2; exit 2; }
shift
args=()
for a in "$@"; do
    case $a in
    -q | [1-9] | [1-9][0-9] | [1-9][0-9][0-9]) args+=("$a") ;;
    *) usage ;;
    esac
done

# shellcheck source=bench/common.sh
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
started=$(date +%s)

# ---- build (bench_build in common.sh builds bench.c; the same flags for async.c)
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
flags=$(pkg-config --cflags --libs pgsess libpq) || {
    echo "async.sh: pkg-config cannot find pgsess (under $prefix/lib/pkgconfig) and/or libpq" >&2
    exit 2
}
bin="$BENCH_TMP/async"
# shellcheck disable=SC2086
${CC:-cc} -std=c99 -O2 -g -Wall -Wextra -pedantic "$BENCH_HERE/async.c" -o "$bin" $flags -pthread \
    -Wl,-rpath,"$prefix/lib" || exit 1
build_cmd="${CC:-cc} -std=c99 -O2 -g bench/async.c \$(pkg-config --cflags --libs pgsess libpq) -pthread"

bench_server || exit 1

bench_placement || exit 2

out="$BENCH_TMP/out.txt"
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
timeout 290 "${pin[@]}" "$bin" "${args[@]}" >"$out" 2>&1
status=$?
elapsed=$(($(date +%s) - started))
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
sed '/^RESULTS-TABLE-BEGIN$/,$d' "$out"
if [[ $status -ne 0 ]]; then
    echo "bench/async.sh: the benchmark failed (exit $status) after ${elapsed}s" >&2
    exit 1
fi

echo "- command: \`$command_line\` (from the repository root; took ${elapsed} s)"
echo "- built with: \`$build_cmd\`"
echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r)"
echo "- server: $BENCH_SERVER"
echo "- placement: $placement_text"
echo "- load average (1, 5, 15 min) before: $load_before; after: $load_after"
echo
sed -n '/^RESULTS-TABLE-BEGIN$/,/^RESULTS-TABLE-END$/p' "$out" | sed '1d;$d'
echo
echo "Throughput: higher is better; a ratio above 1 means the async loop is faster."
