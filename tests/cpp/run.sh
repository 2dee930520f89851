#!/usr/bin/env bash
# tests/cpp/run.sh PREFIX [BUILD_DIR]
#
# Tests the C++ layer and the packaging of the pgsess library INSTALLED under PREFIX, the way a
# user consumes it:
#   1. <pgsess.hpp> compiles cleanly on its own under strict warnings (C++17 and C++20; g++, and
#      clang++ when present);
#   2. tests/cpp/test_pgsess.cpp, built through `pkg-config --cflags --libs pgsess`, passes under
#      valgrind (no memory errors, no definite leaks: moved-from objects free nothing twice);
#      with clang++ it is built and run again (without valgrind);
#   3. examples/cpp/demo.cpp builds the same way and runs (PGSQL_DEMO is set to PGSQL_CTEST);
#   4. tests/cmake builds with find_package(pgsess) + pgsess::pgsess and runs: shared (the
#      default), static (-Dpgsess_USE_STATIC_LIBS=ON), and from a copy of the installed tree at
#      another path (the CMake package is relocatable); find_package honours the version file;
#   5. a C program links libpgsess.a statically through `pkg-config --static` and runs.
# Prints a summary and "N passed, M failed"; exits non-zero when anything failed.
#
# Environment:
#   PGSQL_CTEST             PostgreSQL URI the programs connect to (required)
#   PGSESS_NO_VALGRIND=1    run the test program without valgrind
#   PGSESS_CPPTEST_BUILD_DIR  build directory (default: BUILD_DIR, else a fresh mktemp directory)
#   CC, CXX, CLANGXX        compilers (default cc, g++, clang++; clang++ is skipped when missing)
set -u

usage() { echo "usage: $0 PREFIX [BUILD_DIR]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "run.sh: PREFIX $1 does not exist" >&2; exit 2; }
build=${2:-${PGSESS_CPPTEST_BUILD_DIR:-}}
if [ -z "$build" ]; then
    build=$(mktemp -d "${TMPDIR:-/tmp}/pgsess-cpptests.XXXXXX") || exit 2
fi
mkdir -p "$build" || exit 2
build=$(cd "$build" && pwd)

if [ -z "${PGSQL_CTEST:-}" ]; then
    echo "run.sh: PGSQL_CTEST is not set; export it to a PostgreSQL URI (e.g. postgresql://user@host/db)" >&2
    exit 2
fi
export PGSQL_CTEST

CC=${CC:-cc}
CXX=${CXX:-g++}
CLANGXX=${CLANGXX:-clang++}
missing=()
for tool in "$CC" "$CXX" pkg-config cmake; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
use_valgrind=1
if [ "${PGSESS_NO_VALGRIND:-0}" = 1 ]; then
    use_valgrind=0
elif ! command -v valgrind >/dev/null 2>&1; then
    missing+=(valgrind)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "run.sh: missing tools: ${missing[*]} (install them, e.g. apt-get install cmake g++ valgrind pkg-config)" >&2
    exit 2
fi
have_clang=0
command -v "$CLANGXX" >/dev/null 2>&1 && have_clang=1

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
if ! pkg-config --exists pgsess; then
    echo "run.sh: pkg-config cannot find pgsess under $prefix/lib/pkgconfig" >&2
    exit 2
fi
pc_flags=$(pkg-config --cflags --libs pgsess) || exit 2
pc_static_cflags=$(pkg-config --static --cflags pgsess) || exit 2
pc_static_libs=$(pkg-config --static --libs pgsess) || exit 2

runner=()
if [ $use_valgrind = 1 ]; then
    runner=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
            --show-leak-kinds=definite -q)
fi
timeout_cmd=()
if command -v timeout >/dev/null 2>&1; then
    timeout_cmd=(timeout "${PGSESS_CPPTEST_TIMEOUT:-600}")
fi

cxxflags=(-std=c++17 -Wall -Wextra -pedantic -Werror -g -O1)
strict=(-Wshadow -Wconversion -Wsign-conversion -Wold-style-cast -Wnon-virtual-dtor
        -Wzero-as-null-pointer-constant -Wundef)

echo "pgsess C++ and packaging tests: prefix=$prefix build=$build valgrind=$([ $use_valgrind = 1 ] && echo yes || echo no)"
echo "pkg-config pgsess: $pc_flags"
echo "pkg-config --static pgsess: $pc_static_libs"

passed=0
failed=0
results=()
record() { # name PASS|FAIL [detail]
    if [ "$2" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    results+=("$(printf '%-26s %s%s' "$1" "$2" "${3:+ ($3)}")")
}
# step NAME LOG COMMAND...: run a build step quietly; on failure show its log and record it.
step() {
    local name=$1 log=$2
    shift 2
    if "$@" > "$log" 2>&1; then
        return 0
    fi
    cat "$log"
    record "$name" FAIL "see $log"
    return 1
}
# check_run NAME LOG COMMAND...: run a program (output shown and logged); it passes when it exits
# 0 and its last line is "N passed, 0 failed".
check_run() {
    local name=$1 log=$2 start secs rc last
    shift 2
    start=$(date +%s)
    "${timeout_cmd[@]}" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    secs=$(( $(date +%s) - start ))
    last=$(tail -n 1 "$log")
    if [ "$rc" = 0 ] && [[ "$last" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
        record "$name" PASS "$last, ${secs}s"
    elif [ "$rc" = 99 ]; then
        record "$name" FAIL "valgrind errors, exit 99; $last"
    elif [ "$rc" = 124 ]; then
        record "$name" FAIL "timed out"
    else
        record "$name" FAIL "exit $rc; $last"
    fi
}

# 1. The header alone, under strict warnings.
if [ ! -f "$prefix/include/pgsess.hpp" ]; then
    record "installed pgsess.hpp" FAIL "$prefix/include/pgsess.hpp missing: make install must install it"
else
    cat > "$build/header_only.cpp" <<'EOF'
#include <pgsess.hpp>
#include <pgsess.hpp> // include guard
int main() {
    pgsess::Session s;
    try {
        auto r = s.query("SELECT $1, $2, $3", 1, "x", std::nullopt);
        for (auto row : r)
            (void)row[0];
    } catch (const pgsess::Error &e) {
        return e.code() == PGSESS_INTERFACE_ERROR ? 0 : 1;
    }
    return 1;
}
EOF
    compilers=("$CXX")
    [ $have_clang = 1 ] && compilers+=("$CLANGXX")
    for cxx in "${compilers[@]}"; do
        for std in c++17 c++20; do
            name="header $(basename "$cxx") $std"
            log="$build/header_$(basename "$cxx")_$std.log"
            # shellcheck disable=SC2086
            if step "$name" "$log" "$cxx" "-std=$std" -Wall -Wextra -pedantic -Werror "${strict[@]}" \
                    "$build/header_only.cpp" -o "$build/header_only" $pc_flags -Wl,-rpath,"$prefix/lib" \
               && step "$name" "$log.run" "$build/header_only"; then
                record "$name" PASS
            fi
        done
    done
fi
[ $have_clang = 1 ] || echo "note: $CLANGXX not found; clang++ builds skipped"

# 2. The C++ test program, through pkg-config, under valgrind.
echo "== test_pgsess ($CXX)"
# shellcheck disable=SC2086
if step "test_pgsess build" "$build/test_pgsess.build.log" "$CXX" "${cxxflags[@]}" "$here/test_pgsess.cpp" \
        -o "$build/test_pgsess" $pc_flags -Wl,-rpath,"$prefix/lib" -pthread; then
    check_run "test_pgsess$([ $use_valgrind = 1 ] && echo ' (valgrind)')" "$build/test_pgsess.log" \
        "${runner[@]}" "$build/test_pgsess"
fi
if [ $have_clang = 1 ]; then
    echo "== test_pgsess ($CLANGXX)"
    # shellcheck disable=SC2086
    if step "test_pgsess clang++ build" "$build/test_pgsess_clang.build.log" "$CLANGXX" "${cxxflags[@]}" \
            "$here/test_pgsess.cpp" -o "$build/test_pgsess_clang" $pc_flags -Wl,-rpath,"$prefix/lib" -pthread; then
        check_run "test_pgsess (clang++)" "$build/test_pgsess_clang.log" "$build/test_pgsess_clang"
    fi
fi

# 3. The demo.
echo "== examples/cpp/demo"
# shellcheck disable=SC2086
if step "demo build" "$build/demo.build.log" "$CXX" "${cxxflags[@]}" "$root/examples/cpp/demo.cpp" \
        -o "$build/demo" $pc_flags -Wl,-rpath,"$prefix/lib"; then
    PGSQL_DEMO=$PGSQL_CTEST "${timeout_cmd[@]}" "$build/demo" 2>&1 | tee "$build/demo.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" = 0 ] && [ "$(tail -n 1 "$build/demo.log")" = "demo finished" ]; then
        record "demo" PASS
    else
        record "demo" FAIL "exit $rc, see $build/demo.log"
    fi
fi

# 4. The CMake package.
cmake_consumer() { # NAME PREFIX_PATH BUILD_SUBDIR EXTRA_CMAKE_ARGS...
    local name=$1 pp=$2 dir=$build/$3
    shift 3
    rm -rf "$dir"
    echo "== $name"
    step "$name" "$dir.configure.log" cmake -S "$root/tests/cmake" -B "$dir" -DCMAKE_PREFIX_PATH="$pp" \
            -DCMAKE_CXX_COMPILER="$CXX" "$@" || return 1
    step "$name" "$dir.build.log" cmake --build "$dir" || return 1
    return 0
}
if cmake_consumer "cmake shared" "$prefix" cmake-shared; then
    needed=$(readelf -d "$build/cmake-shared/app" 2>/dev/null | grep NEEDED)
    resolved=$(ldd "$build/cmake-shared/app" | grep libpgsess)
    if ! grep -q 'libpgsess\.so\.[0-9]' <<< "$needed" || ! grep -q "$prefix/lib/libpgsess" <<< "$resolved"; then
        record "cmake shared" FAIL "app does not load libpgsess.so.N from $prefix/lib: $resolved"
    else
        check_run "cmake shared" "$build/cmake-shared.log" "$build/cmake-shared/app"
    fi
fi
if cmake_consumer "cmake static" "$prefix" cmake-static -Dpgsess_USE_STATIC_LIBS=ON; then
    if readelf -d "$build/cmake-static/app" | grep -q 'NEEDED.*libpgsess'; then
        record "cmake static" FAIL "app needs libpgsess.so although pgsess_USE_STATIC_LIBS=ON"
    else
        check_run "cmake static" "$build/cmake-static.log" "$build/cmake-static/app"
    fi
fi
# Relocated: a copy of the installed tree elsewhere (the static library is not copied: the
# package must still work for shared linking without it).
moved=$build/moved-prefix
rm -rf "$moved"
mkdir -p "$moved/lib" "$moved/include"
if cp -a "$prefix/include/." "$moved/include/" && cp -a "$prefix"/lib/libpgsess.so* "$moved/lib/" \
   && cp -a "$prefix/lib/cmake" "$moved/lib/" 2>/dev/null; then
    if cmake_consumer "cmake relocated" "$moved" cmake-moved; then
        resolved=$(ldd "$build/cmake-moved/app" | grep libpgsess)
        if ! grep -q "$moved/lib/libpgsess" <<< "$resolved"; then
            record "cmake relocated" FAIL "app does not load libpgsess from the moved tree: $resolved"
        else
            check_run "cmake relocated" "$build/cmake-moved.log" "$build/cmake-moved/app"
        fi
    fi
else
    record "cmake relocated" FAIL "could not copy the installed tree (is lib/cmake/pgsess installed?)"
fi
# The version file: this version and lower minors of the same major are accepted, the next major
# and a higher minor are not.
version=$(pkg-config --modversion pgsess)
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
mkdir -p "$build/cmake-version"
cat > "$build/cmake-version/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.14)
project(pgsess_version_check LANGUAGES NONE)
foreach(request "$version EXACT" "$major.0" "$major" "$((major + 1)).0" "$major.$((minor + 1))")
  separate_arguments(args UNIX_COMMAND "\${request}")
  find_package(pgsess \${args} QUIET)
  message(STATUS "find_package(pgsess \${request}): found=\${pgsess_FOUND}")
  unset(pgsess_FOUND)
  unset(pgsess_DIR CACHE)
endforeach()
EOF
if step "cmake version file" "$build/cmake-version.log" cmake -S "$build/cmake-version" \
        -B "$build/cmake-version/build" -DCMAKE_PREFIX_PATH="$prefix"; then
    got=$(sed -n 's/^-- find_package(pgsess \(.*\)): found=\(.*\)$/\1=\2/p' "$build/cmake-version.log" | tr '\n' ' ')
    want="$version EXACT=1 $major.0=1 $major=1 $((major + 1)).0=0 $major.$((minor + 1))=0 "
    if [ "$got" = "$want" ]; then
        record "cmake version file" PASS
    else
        record "cmake version file" FAIL "got: $got; want: $want"
    fi
fi

# 5. Static linking of a C program through pkg-config --static.
echo "== static C link"
cat > "$build/static_link.c" <<'EOF'
#include <pgsess.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    pgsess_error *err = NULL;
    pgsess_session *s = pgsess_open("ctest", NULL, &err);
    pgsess_results *r;
    const char *params[] = {"41"};
    int ok;
    printf("pgsess %s, statically linked\n", pgsess_version());
    if (s == NULL) {
        printf("open failed: %s\n0 passed, 1 failed\n", pgsess_error_message(err));
        pgsess_error_free(err);
        return 1;
    }
    r = pgsess_query(s, "SELECT $1::int + 1", 1, params, &err);
    ok = r != NULL && pgsess_results_value(r, 0, 0) != NULL && strcmp(pgsess_results_value(r, 0, 0), "42") == 0;
    if (r == NULL) {
        printf("query failed: %s\n", pgsess_error_message(err));
        pgsess_error_free(err);
    }
    pgsess_results_free(r);
    pgsess_close(s);
    printf("%d passed, %d failed\n", ok, !ok);
    return ok ? 0 : 1;
}
EOF
# Force the archive: -Wl,-Bstatic around -lpgsess, the system libraries of Libs.private stay dynamic.
static_libs=${pc_static_libs/-lpgsess/-Wl,-Bstatic -lpgsess -Wl,-Bdynamic}
# shellcheck disable=SC2086
if step "static C link" "$build/static_link.build.log" "$CC" -std=c99 -Wall -Wextra -pedantic -Werror \
        $pc_static_cflags "$build/static_link.c" -o "$build/static_link" $static_libs; then
    if readelf -d "$build/static_link" | grep -q 'NEEDED.*libpgsess'; then
        record "static C link" FAIL "the program needs libpgsess.so: not linked statically"
    else
        check_run "static C link" "$build/static_link.log" "$build/static_link"
    fi
fi

echo
echo "Summary (logs in $build):"
for line in "${results[@]}"; do echo "  $line"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
