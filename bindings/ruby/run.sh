#!/usr/bin/env bash
# bindings/ruby/run.sh PREFIX
#
# Tests the Ruby binding against the pgsess library INSTALLED under PREFIX:
#   0. the C accelerator ext/pgsess_ext builds (extconf.rb, as gem install runs it) with no
#      compiler warning;
#   1. test/test_pgsess.rb and test/test_sequel.rb (minitest, ruby -w) with PGSQL_RBTEST and
#      PGSQL_RBSEQUEL=$PGSQL_CTEST and PGSESS_LIB=PREFIX/lib/libpgsess.so, with the
#      accelerator; test_pgsess.rb again in pure Ruby (PGSESS_RUBY_PURE=1); every test counts,
#      and the runs must print no leak warning and no Ruby warning from lib/;
#   2. without PGSESS_LIB the library is found through pkg-config (PKG_CONFIG_PATH=PREFIX/...);
#   3. examples/ruby/demo.rb runs with PGSQL_DEMO=$PGSQL_CTEST;
#   4. the gem builds from pgsess.gemspec, installs into a scratch GEM_HOME and works from there
#      (the binding with its accelerator, and Sequel.connect("pgsess://...") loading the gem's
#      adapter).
# Prints minitest's summary and a final line "N passed, M failed"; exits non-zero on failure.
#
# Needs: PGSQL_CTEST (a PostgreSQL URI), ruby with its headers, the ffi gem and Sequel (Debian:
# apt-get install ruby ruby-dev ruby-ffi ruby-sequel), a C compiler.
set -u

usage() { echo "usage: $0 PREFIX" >&2; exit 2; }
[ $# -eq 1 ] || usage

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "run.sh: PREFIX $1 does not exist" >&2; exit 2; }

if [ -z "${PGSQL_CTEST:-}" ]; then
    echo "run.sh: PGSQL_CTEST is not set; export it to a PostgreSQL URI (e.g. postgresql://user@host/db)" >&2
    exit 2
fi
if ! command -v ruby >/dev/null 2>&1 || ! ruby -e 'require "ffi"' >/dev/null 2>&1; then
    echo "run.sh: needs ruby and the ffi gem (e.g. apt-get install ruby ruby-dev ruby-ffi)" >&2
    exit 2
fi

lib="$prefix/lib/libpgsess.so"
[ -e "$lib" ] || { echo "run.sh: $lib not found (make install PREFIX=$prefix)" >&2; exit 2; }
export PGSESS_LIB="$lib"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

work=$(mktemp -d "${TMPDIR:-/tmp}/pgsess-rbtests.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
ko() { failed=$((failed + 1)); echo "FAILED: $*"; }

# 0. the C accelerator, built out of the tree as gem install builds it
echo "== ext/pgsess_ext"
mkdir -p "$work/ext/build" "$work/ext/lib/pgsess"
if (cd "$work/ext/build" && ruby "$here/ext/pgsess_ext/extconf.rb" && make V=1) >"$work/ext.log" 2>&1 &&
    cp "$work/ext/build/pgsess_ext.so" "$work/ext/lib/pgsess/"; then
    if grep -E "warning:|pgsess: building without" "$work/ext.log"; then
        ko "ext/pgsess_ext built with warnings"
    else
        ok "ext/pgsess_ext built"
    fi
else
    cat "$work/ext.log"
    ko "ext/pgsess_ext did not build (needs ruby-dev and a C compiler)"
fi

# 1. minitest: the binding (with the accelerator, then in pure Ruby), and the Sequel adapter
# (Sequel from Debian's ruby-sequel)
minitest() { # minitest LABEL FILE VAR [NAME=VALUE...]: runs test/FILE with VAR=$PGSQL_CTEST, counts its runs
    local label=$1 file=$2 var=$3
    shift 3
    echo "== minitest: test/$file ($label)"
    (cd "$here" && env "$var=$PGSQL_CTEST" "$@" ruby -w -I"$work/ext/lib" -Ilib "test/$file") >"$work/$label.log" 2>&1
    local rc=$? summary runs fails errs skips
    cat "$work/$label.log"
    cat "$work/$label.log" >>"$work/minitest.log"
    summary=$(grep -E '^[0-9]+ runs, [0-9]+ assertions, [0-9]+ failures, [0-9]+ errors, [0-9]+ skips' "$work/$label.log" | tail -1)
    if [ -n "$summary" ]; then
        read -r runs _ _ _ fails _ errs _ skips _ <<<"$summary"
        passed=$((passed + runs - fails - errs - skips))
        failed=$((failed + fails + errs))
        if [ "$rc" -ne 0 ] && [ $((fails + errs)) -eq 0 ]; then
            ko "test/$file ($label) exited $rc"
        fi
    else
        ko "test/$file ($label) printed no summary (exit $rc)"
    fi
}
: >"$work/minitest.log"
minitest accelerated test_pgsess.rb PGSQL_RBTEST PGSESS_RBTEST_EXT=1
minitest pure-ruby test_pgsess.rb PGSQL_RBTEST PGSESS_RUBY_PURE=1
if ruby -e 'require "sequel"' >/dev/null 2>&1; then
    minitest sequel test_sequel.rb PGSQL_RBSEQUEL PGSESS_RBTEST_EXT=1
else
    ko "Sequel is not installed (apt-get install ruby-sequel; scripts/ensure-deps does)"
fi
# 1b. the accelerator's C under valgrind: its tests (blocks, values, hashes, getvalue, typed
# conversions) with no memory error whose top frames are in pgsess_ext or libpgsess. Ruby's
# conservative GC makes valgrind report reads of its own stack, and uses of uninitialised memory
# inside libruby when the C calls into Ruby; those are not counted.
echo "== valgrind: the accelerator's tests"
if command -v valgrind >/dev/null 2>&1; then
    (cd "$here" && env PGSQL_RBTEST="$PGSQL_CTEST" PGSESS_RBTEST_EXT=1 valgrind --error-limit=no --num-callers=12 \
        --log-file="$work/vg.%p" ruby -I"$work/ext/lib" -Ilib test/test_pgsess.rb \
        -n "/accelerator|rows_read_in_blocks|getvalue|typed|values|each|hash/") >"$work/vg-run.log" 2>&1
    vg_rc=$?
    ours=$(ruby -e '
        n = 0
        ARGV.each do |f|
          File.read(f).split(/^==\d+== \n/).each do |rec|
            next unless rec =~ /Invalid|uninitialised|Mismatched|free\(\)/
            frames = rec.lines.grep(/ (at|by) 0x/).first(4)
            next unless frames.any? { |l| l =~ /pgsess_ext|libpgsess/ }
            # A use of uninitialised memory inside libruby (its GC marking, its raise) reached
            # through a call of ours into Ruby is the same noise as above; in our code, or in
            # what ours called directly (memcpy, strlen), it counts.
            next if rec =~ /uninitialised/ && rec !~ /Invalid|Mismatched|free\(\)/ && frames.first =~ /libruby/
            n += 1
            warn rec if n <= 3
          end
        end
        puts n' "$work"/vg.*)
    if [ "$vg_rc" -ne 0 ]; then
        cat "$work/vg-run.log"
        ko "the accelerator's tests under valgrind exited $vg_rc"
    elif [ "$ours" != 0 ]; then
        ko "valgrind: $ours memory errors in pgsess_ext or libpgsess frames"
    else
        ok "valgrind: no memory error in pgsess_ext or libpgsess frames ($(grep -Eo '[0-9]+ runs' "$work/vg-run.log" | tail -1))"
    fi
else
    ko "valgrind is not installed (scripts/ensure-deps installs it)"
fi
if grep -q 'pgsess: leaked' "$work/minitest.log"; then
    ko "leak warnings during the tests"
else
    ok "no leak warnings during the tests"
fi
if grep -E "lib/(pgsess|sequel)[^:]*\.rb:[0-9]+: warning:" "$work/minitest.log"; then
    ko "ruby -w warnings from lib/"
else
    ok "no ruby -w warnings from lib/"
fi

# 2. pkg-config discovery
echo "== library found through pkg-config"
if found=$(cd "$here" && env -u PGSESS_LIB ruby -Ilib -e 'require "pgsess"; puts PGSess::Native.library_path, PGSess.library_version' 2>&1) &&
    [ "$(echo "$found" | head -1)" = "$prefix/lib/libpgsess.so" ]; then
    ok "pkg-config: $(echo "$found" | tr '\n' ' ')"
else
    ko "pkg-config discovery: $found"
fi

# 3. the example
echo "== examples/ruby/demo.rb"
if PGSQL_DEMO="$PGSQL_CTEST" ruby -w -I"$here/lib" "$root/examples/ruby/demo.rb"; then
    ok "examples/ruby/demo.rb"
else
    ko "examples/ruby/demo.rb"
fi

# 4. the gem: builds, installs (locally, into a scratch GEM_HOME) and loads from outside the tree
echo "== gem build + install"
gem_path="$work/gems:$(ruby -e 'print Gem.path.join(":")')"
# shellcheck disable=SC2016 # the Ruby program is single-quoted on purpose
if (cd "$here" && gem build pgsess.gemspec --output "$work/pgsess.gem") >"$work/gem.log" 2>&1 &&
    GEM_HOME="$work/gems" GEM_PATH="$gem_path" gem install --local --no-document "$work/pgsess.gem" >>"$work/gem.log" 2>&1 &&
    (cd "$work" && GEM_HOME="$work/gems" GEM_PATH="$gem_path" PGSQL_RBGEM="$PGSQL_CTEST" ruby -e '
        require "pgsess"
        abort "loaded from #{$LOADED_FEATURES.grep(/pgsess\.rb/)}" unless $LOADED_FEATURES.any? { |f| f.include?("/gems/pgsess-") }
        abort "the gem was installed without its accelerator" unless PGSess.accelerated?
        abort "accelerator loaded from #{$LOADED_FEATURES.grep(/pgsess_ext/)}" unless $LOADED_FEATURES.any? { |f| f.include?("/gems/pgsess-") && f.end_with?("pgsess_ext.so") } || $LOADED_FEATURES.any? { |f| f.include?("/extensions/") && f.end_with?("pgsess_ext.so") }
        abort "wrong value" unless PGSess::Session.open("rbgem") { |s| s.query("SELECT 41 + 1 AS n") { |r| r[0]["n"] } } == 42
        require "sequel"
        abort "Sequel: wrong value" unless Sequel.connect("pgsess://rbgem") { |db| db.get(Sequel.lit("41 + 1")) } == 42
        abort "adapter loaded from #{$LOADED_FEATURES.grep(/adapters\/pgsess/)}" unless $LOADED_FEATURES.any? { |f| f.include?("/gems/pgsess-") && f.end_with?("sequel/adapters/pgsess.rb") }
    ') >>"$work/gem.log" 2>&1; then
    ok "gem build, install and require"
else
    cat "$work/gem.log"
    ko "gem build, install and require"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
