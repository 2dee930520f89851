#!/usr/bin/env bash
# bench/ruby.sh PREFIX      (run by `make bench` after bench/go.sh)
#
# The Ruby binding against the pg gem (Debian's ruby-pg), and its Sequel adapter against Sequel's
# postgres adapter (Debian's ruby-sequel), in one process on one server,
# interleaved round by round (bench/ruby/bench.rb says what each workload is). Prints the table;
# never writes BENCHMARKS.md. Installs ruby-pg with apt-get when it is missing and run as root.
#
# Environment: PGSQL_BENCH, PGSESS_BENCH_POSTMASTER_PID, PGSESS_BENCH_PLACEMENT as for
# bench/run.sh; PGSESS_RBBENCH_ROUNDS (default 5); PGSESS_RBBENCH_ONLY=roundtrip,typed,... runs only
# those workloads.
set -u

[[ $# -eq 1 ]] || { echo "usage: $0 PREFIX" >&2; exit 2; }
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "ruby.sh: PREFIX $1 does not exist" >&2; exit 2; }

# shellcheck source=bench/common.sh
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

if ! ruby -e 'require "pg"; require "ffi"; require "sequel"' >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "ruby.sh: installing ruby-pg, ruby-ffi and ruby-sequel"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ruby ruby-dev ruby-pg ruby-ffi ruby-sequel >/dev/null || exit 2
    else
        echo "ruby.sh: needs ruby with the pg and ffi gems (apt-get install ruby-dev ruby-pg ruby-ffi ruby-sequel)" >&2
        exit 2
    fi
fi

bench_server || exit 1
bench_placement || exit 2
echo "placement: $placement_text"
echo "ruby $(ruby -e 'print RUBY_VERSION'), pg $(ruby -rpg -e 'print PG::VERSION') (libpq $(ruby -rpg -e 'print PG.library_version'))"
# The binding as gem install builds it: with its C accelerator (ext/pgsess_ext).
ext=$BENCH_TMP/rbext
mkdir -p "$ext" || exit 2
if ! (cd "$ext" && ruby "$BENCH_ROOT/bindings/ruby/ext/pgsess_ext/extconf.rb" && make) >"$ext/build.log" 2>&1 ||
    ! mkdir -p "$ext/lib/pgsess" || ! cp "$ext/pgsess_ext.so" "$ext/lib/pgsess/"; then
    cat "$ext/build.log" >&2
    echo "ruby.sh: the binding's accelerator did not build (apt-get install ruby-dev)" >&2
    exit 2
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
PGSESS_LIB="$prefix/lib/libpgsess.so" timeout 900 "${pin[@]}" ruby -I"$ext/lib" -I"$BENCH_ROOT/bindings/ruby/lib" \
    "$BENCH_HERE/ruby/bench.rb" || { echo "ruby.sh: the benchmark failed" >&2; exit 1; }
echo "ruby.sh: load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
