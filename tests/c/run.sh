#!/usr/bin/env bash
# tests/c/run.sh PREFIX [BUILD_DIR]
#
# Builds every tests/c/*.c against the pgsess library INSTALLED under PREFIX,
# through pkg-config exactly as a user would, checks that <pgsess.h> compiles
# as C++11, and runs each program under valgrind. A program that needs another
# library names its pkg-config modules in a line `/* ctest-pkg-config: libpq */`.
#
# Environment:
#   PGSQL_CTEST          PostgreSQL URI the tests connect to (required)
#   PGSESS_NO_VALGRIND=1 run without valgrind
#   PGSESS_CTEST_BUILD_DIR  build directory (default: BUILD_DIR argument, else
#                        a fresh mktemp directory)
#   CC, CXX              compilers (default cc, g++)
set -u

usage() { echo "usage: $0 PREFIX [BUILD_DIR]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage

here=$(cd "$(dirname "$0")" && pwd)
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "run.sh: PREFIX $1 does not exist" >&2; exit 2; }
build=${2:-${PGSESS_CTEST_BUILD_DIR:-}}
if [ -z "$build" ]; then
    build=$(mktemp -d "${TMPDIR:-/tmp}/pgsess-ctests.XXXXXX") || exit 2
fi
mkdir -p "$build" || exit 2

if [ -z "${PGSQL_CTEST:-}" ]; then
    echo "run.sh: PGSQL_CTEST is not set; export it to a PostgreSQL URI (e.g. postgresql://user@host/db)" >&2
    exit 2
fi
export PGSQL_CTEST

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
if ! pkg-config --exists pgsess; then
    echo "run.sh: pkg-config cannot find pgsess under $prefix/lib/pkgconfig" >&2
    exit 2
fi
pc_flags=$(pkg-config --cflags --libs pgsess) || exit 2

CC=${CC:-cc}
CXX=${CXX:-g++}
cflags=(-std=c99 -Wall -Wextra -Werror -pedantic -g -O1)

use_valgrind=1
if [ "${PGSESS_NO_VALGRIND:-0}" = 1 ]; then
    use_valgrind=0
elif ! command -v valgrind >/dev/null 2>&1; then
    echo "run.sh: valgrind not found; install it or set PGSESS_NO_VALGRIND=1" >&2
    exit 2
fi
runner=()
if [ $use_valgrind = 1 ]; then
    runner=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
            --show-leak-kinds=definite -q)
fi
timeout_cmd=()
if command -v timeout >/dev/null 2>&1; then
    timeout_cmd=(timeout "${PGSESS_CTEST_TIMEOUT:-900}")
fi

echo "pgsess C tests: prefix=$prefix build=$build valgrind=$([ $use_valgrind = 1 ] && echo yes || echo no)"
echo "pkg-config pgsess: $pc_flags"

passed=0
failed=0
results=()
record() { # name status detail
    if [ "$2" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    results+=("$(printf '%-14s %s%s' "$1" "$2" "${3:+ ($3)}")")
}

# C++: the installed header must compile (and link) as C++11.
if command -v "$CXX" >/dev/null 2>&1; then
    cat > "$build/header_cxx.cpp" <<'EOF'
#include <pgsess.h>
#include <pgsess.h> /* include guard */
int main() {
    pgsess_code c = PGSESS_OK;
    pgsess_error *err = 0;
    pgsess_options *o = pgsess_options_new();
    pgsess_options_free(o);
    pgsess_error_free(err);
    return (pgsess_version() != 0 && pgsess_code_name(c) != 0) ? 0 : 1;
}
EOF
    # shellcheck disable=SC2086
    if "$CXX" -std=c++11 -Wall -Wextra -pedantic -Werror "$build/header_cxx.cpp" -o "$build/header_cxx" \
           $pc_flags -Wl,-rpath,"$prefix/lib" > "$build/header_cxx.log" 2>&1 \
       && "$build/header_cxx" >> "$build/header_cxx.log" 2>&1; then
        record "c++ header" PASS
    else
        cat "$build/header_cxx.log"
        record "c++ header" FAIL "does not compile/link/run as C++11, see $build/header_cxx.log"
    fi
else
    echo "note: $CXX not found; skipping the C++ header check"
fi

for src in "$here"/*.c; do
    name=$(basename "$src" .c)
    exe="$build/$name"
    log="$build/$name.log"
    echo "== $name"
    # A program that also links other libraries (libpq, to compare with it) names their
    # pkg-config modules on a " * pkg-config: MODULE..." line of its header comment.
    extra=$(sed -n 's/^ \* pkg-config: *//p' "$src" | head -n 1)
    extra_flags=""
    # shellcheck disable=SC2086
    if [ -n "$extra" ] && ! extra_flags=$(pkg-config --cflags --libs $extra); then
        record "$name" FAIL "pkg-config cannot find $extra"
        continue
    fi
    # shellcheck disable=SC2086
    if ! "$CC" "${cflags[@]}" -I"$here" "$src" -o "$exe" $pc_flags $extra_flags -Wl,-rpath,"$prefix/lib" -lpthread \
           > "$build/$name.build.log" 2>&1; then
        cat "$build/$name.build.log"
        record "$name" FAIL "build failed"
        continue
    fi
    start=$(date +%s)
    "${timeout_cmd[@]}" "${runner[@]}" "$exe" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    secs=$(( $(date +%s) - start ))
    # The program's own summary line, as run-sanitizers.sh reads it: a pool's background
    # thread (opening a connection) may still log a line after it.
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    [ -n "$last" ] || last=$(tail -n 1 "$log")
    if [ "$rc" = 0 ] && [[ "$last" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
        record "$name" PASS "$last, ${secs}s"
    elif [ "$rc" = 99 ]; then
        record "$name" FAIL "valgrind errors, exit 99; $last"
    elif [ "$rc" = 124 ]; then
        record "$name" FAIL "timed out"
    else
        record "$name" FAIL "exit $rc; $last"
    fi
done

echo
echo "Summary (logs in $build):"
for line in "${results[@]}"; do echo "  $line"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
