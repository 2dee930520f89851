#!/usr/bin/env bash
# bench/run.sh PREFIX [roundtrip args...]
#
# Builds bench/roundtrip.c against the pgsess library installed under PREFIX
# (and the system libpq), via pkg-config, then runs it with the client pinned
# to CPU 0 when taskset is available.
#
# Environment:
#   PGSQL_BENCH                  PostgreSQL URI (required)
#   PGSESS_BENCH_POSTMASTER_PID  if set, pin that postmaster and all its
#                                threads/children to CPU 1 first
#   CC                           compiler (default cc)
set -u

[ $# -ge 1 ] || { echo "usage: $0 PREFIX [BLOCKS [ITERATIONS [WARMUP]]]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "run.sh: PREFIX $1 does not exist" >&2; exit 2; }
shift

if [ -z "${PGSQL_BENCH:-}" ]; then
    echo "bench/run.sh: PGSQL_BENCH is not set; export it to a PostgreSQL URI" >&2
    exit 2
fi
export PGSQL_BENCH

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
flags=$(pkg-config --cflags --libs pgsess libpq) || {
    echo "bench/run.sh: pkg-config cannot find pgsess (under $prefix/lib/pkgconfig) and/or libpq" >&2
    exit 2
}

build=$(mktemp -d "${TMPDIR:-/tmp}/pgsess-bench.XXXXXX") || exit 2
trap 'rm -rf "$build"' EXIT
# shellcheck disable=SC2086
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Werror -pedantic "$here/roundtrip.c" -o "$build/roundtrip" \
    $flags -Wl,-rpath,"$prefix/lib" || exit 1

pin=()
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if command -v taskset >/dev/null 2>&1 && [ "$ncpu" -ge 2 ]; then
    pin=(taskset -c 0)
    if [ -n "${PGSESS_BENCH_POSTMASTER_PID:-}" ]; then
        taskset -a -p -c 1 "$PGSESS_BENCH_POSTMASTER_PID" >/dev/null || {
            echo "bench/run.sh: could not pin postmaster $PGSESS_BENCH_POSTMASTER_PID to CPU 1" >&2
            exit 1
        }
        echo "note: pinned postmaster $PGSESS_BENCH_POSTMASTER_PID to CPU 1; client runs on CPU 0"
    else
        echo "note: client runs on CPU 0; for stable numbers pin the server to CPU 1:"
        echo "      taskset -a -p -c 1 <postmaster pid>   (or set PGSESS_BENCH_POSTMASTER_PID)"
    fi
else
    echo "note: taskset unavailable or a single CPU; running unpinned"
fi

"${pin[@]}" "$build/roundtrip" "$@"
