# shellcheck shell=bash
# Helpers shared by bench/run.sh and bench/callgrind.sh (sourced, not run).
#
#   bench_build PREFIX         compile bench/bench.c through pkg-config against PREFIX's pgsess
#                              and the system libpq; sets BENCH_BIN (in BENCH_TMP, removed on exit)
#   bench_server               PGSQL_BENCH set: use it. Unset: start a throwaway cluster with
#                              scripts/pg-cluster (stopped on exit) and export PGSQL_BENCH.
#                              Sets BENCH_PM_PID (postmaster pid, empty when unknown) and BENCH_SERVER.
#   bench_pin_server CPU       pin the postmaster and its existing children (all threads) to CPU
#   bench_cleanup              the EXIT trap: stop our cluster, remove BENCH_TMP

BENCH_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(dirname "$BENCH_HERE")
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgsess-bench.XXXXXX") || exit 2
BENCH_CLUSTER=
BENCH_PM_PID=
# Read by the scripts that source this file:
# shellcheck disable=SC2034
BENCH_SERVER='' BENCH_BUILD_CMD='' BENCH_BIN=''

bench_cleanup() {
    if [[ -n "$BENCH_CLUSTER" ]]; then
        "$BENCH_ROOT/scripts/pg-cluster" stop "$BENCH_CLUSTER" >/dev/null 2>&1 || true
        BENCH_CLUSTER=
    fi
    rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_build() {
    local prefix=$1 flags
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    flags=$(pkg-config --cflags --libs pgsess libpq) || {
        echo "bench: pkg-config cannot find pgsess (under $prefix/lib/pkgconfig) and/or libpq" >&2
        return 2
    }
    BENCH_BIN="$BENCH_TMP/bench"
    # -g keeps symbols for callgrind; -O2 as a user would build.
    # shellcheck disable=SC2086
    ${CC:-cc} -std=c99 -O2 -g -Wall -Wextra -pedantic "$BENCH_HERE/bench.c" -o "$BENCH_BIN" \
        $flags -pthread -Wl,-rpath,"$prefix/lib" || return 1
    # shellcheck disable=SC2034
    BENCH_BUILD_CMD="${CC:-cc} -std=c99 -O2 -g bench/bench.c \$(pkg-config --cflags --libs pgsess libpq) -pthread"
}

bench_server() {
    if [[ -n "${PGSQL_BENCH:-}" ]]; then
        export PGSQL_BENCH
        BENCH_PM_PID=${PGSESS_BENCH_POSTMASTER_PID:-}
        # shellcheck disable=SC2034
        BENCH_SERVER="PGSQL_BENCH as given"
        return 0
    fi
    BENCH_CLUSTER="$BENCH_TMP/pg"
    echo "PGSQL_BENCH is not set: starting a throwaway PostgreSQL cluster in $BENCH_CLUSTER"
    "$BENCH_ROOT/scripts/pg-cluster" start "$BENCH_CLUSTER" >/dev/null || {
        echo "bench: scripts/pg-cluster start failed" >&2
        return 1
    }
    # shellcheck disable=SC1091 # written by pg-cluster start
    . "$BENCH_CLUSTER/env"
    export PGSQL_BENCH="$PGSQL_TEST" # Unix socket, SCRAM password
    BENCH_PM_PID=$(head -n 1 "$BENCH_CLUSTER/data/postmaster.pid")
    # shellcheck disable=SC2034
    BENCH_SERVER="throwaway cluster (scripts/pg-cluster: fsync=off, synchronous_commit=off), Unix socket, SCRAM"
}

bench_pin_server() {
    local cpu=$1 child
    [[ -n "$BENCH_PM_PID" ]] || return 1
    taskset -a -p -c "$cpu" "$BENCH_PM_PID" >/dev/null || return 1
    for child in $(ps -o pid= --ppid "$BENCH_PM_PID"); do
        taskset -a -p -c "$cpu" "$child" >/dev/null 2>&1 || true
    done
}

# Placement: pin before comparing round trips (unpinned, the same code measured a 6.6x "ratio"
# against itself; pinned, 1.00-1.02). Sets `pin`
# (the command prefix for the client) and `placement_text`, from PGSESS_BENCH_PLACEMENT
# (split: server on CPU 1, client on CPU 0; same: both on CPU 0; none).
bench_placement() {
    local client_cpu server_cpu ncpu
    placement=${PGSESS_BENCH_PLACEMENT:-split}
    pin=()
    placement_text=
    ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
    if [[ $placement != none ]] && ! { command -v taskset >/dev/null 2>&1 && [[ $ncpu -ge 2 ]]; }; then
        placement=none
        placement_text="unpinned (taskset unavailable or a single CPU)"
    fi
    case $placement in
    split | same)
        client_cpu=0
        server_cpu=1
        [[ $placement == same ]] && server_cpu=0
        pin=(taskset -c "$client_cpu")
        if bench_pin_server "$server_cpu"; then
            placement_text="server (postmaster, its children and new backends) on CPU $server_cpu, client on CPU $client_cpu"
        else
            placement_text="client on CPU $client_cpu; server NOT pinned (set PGSESS_BENCH_POSTMASTER_PID to pin it)"
        fi
        ;;
    none) placement_text=${placement_text:-"unpinned (PGSESS_BENCH_PLACEMENT=none)"} ;;
    *)
        echo "PGSESS_BENCH_PLACEMENT must be split, same or none" >&2
        return 2
        ;;
    esac
}
