#!/usr/bin/env bash
# tests/c/run-sanitizers.sh PREFIX [BUILD_DIR]
#
# Builds every tests/c/*.c with clang under AddressSanitizer (+ LeakSanitizer) and
# UndefinedBehaviorSanitizer against the pgsess library INSTALLED under PREFIX
# (pkg-config, rpath), and runs each program. The same programs as tests/c/run.sh,
# which runs them under valgrind.
#
# The library itself is Rust and not instrumented, but the sanitizer runtime replaces
# malloc/free process-wide, so:
#   - LeakSanitizer reports memory the library malloc'd for a handle the test never freed;
#   - a double free or a free of a foreign pointer through a pgsess_*_free call is reported;
#   - reads and writes by the C test code past the end of library-owned buffers
#     (heap redzones) are reported.
# LeakSanitizer is conservative: a stale copy of a pointer left on a stack can hide a leak, never
# invent one. No suppressions are needed today (nothing of Rust's own is reported); if one ever is,
# put narrow, commented entries in tests/c/lsan.supp, which is used when it exists.
#
# Environment:
#   PGSQL_CTEST              PostgreSQL URI the tests connect to (required)
#   PGSESS_CTEST_BUILD_DIR   build directory (default: BUILD_DIR argument, else mktemp)
#   PGSESS_CTEST_TIMEOUT     seconds per program (default 900)
#   CLANG                    compiler (default clang)
# Needs clang and its sanitizer runtimes (Debian: apt-get install clang libclang-rt-14-dev).
# Prints a summary whose last line is "N passed, M failed"; exits non-zero on any failure.
set -u

usage() { echo "usage: $0 PREFIX [BUILD_DIR]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi

here=$(cd "$(dirname "$0")" && pwd)
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "run-sanitizers.sh: PREFIX $1 does not exist" >&2; exit 2; }
build=${2:-${PGSESS_CTEST_BUILD_DIR:-}}
if [ -z "$build" ]; then
    build=$(mktemp -d "${TMPDIR:-/tmp}/pgsess-ctests-san.XXXXXX") || exit 2
fi
mkdir -p "$build" || exit 2

if [ -z "${PGSQL_CTEST:-}" ]; then
    echo "run-sanitizers.sh: PGSQL_CTEST is not set; export it to a PostgreSQL URI (e.g. postgresql://user@host/db)" >&2
    exit 2
fi
export PGSQL_CTEST

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
if ! pkg-config --exists pgsess; then
    echo "run-sanitizers.sh: pkg-config cannot find pgsess under $prefix/lib/pkgconfig" >&2
    exit 2
fi
pc_flags=$(pkg-config --cflags --libs pgsess) || exit 2

CLANG=${CLANG:-clang}
# shellcheck disable=SC2054 # the commas are part of -fsanitize=address,undefined
san_flags=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g)
# Same language flags as run.sh; -Werror is left out because clang warns about other things than gcc
# and this suite is about run-time errors, not lint (run.sh builds with -Werror).
cflags=(-std=c99 -Wall -Wextra -pedantic -O1)

# clang and its sanitizer runtimes (Debian splits them into libclang-rt-<major>-dev) must be there
# for the link to succeed: probe once; as root with apt, install what is missing, as ensure-deps does.
probe="$build/.probe"
printf 'int main(void){return 0;}\n' > "$probe.c"
san_link_ok() {
    command -v "$CLANG" >/dev/null 2>&1 &&
        "$CLANG" "${san_flags[@]}" "$probe.c" -o "$probe" > "$probe.log" 2>&1 && "$probe"
}
if ! san_link_ok && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$CLANG" = clang ]; then
    echo "run-sanitizers.sh: installing clang and its sanitizer runtimes with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! command -v clang >/dev/null 2>&1; then
        { apt-get update -qq && apt-get install -y -qq clang; } > "$build/apt.log" 2>&1
    fi
    major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
    if [ -n "$major" ] && ! san_link_ok; then
        apt-get install -y -qq "libclang-rt-$major-dev" >> "$build/apt.log" 2>&1 ||
            { apt-get update -qq && apt-get install -y -qq "libclang-rt-$major-dev"; } >> "$build/apt.log" 2>&1
    fi
fi
if ! san_link_ok; then
    cat "$probe.log" >&2 2>/dev/null
    echo "run-sanitizers.sh: $CLANG cannot build -fsanitize=address,undefined programs; install clang and its" \
         "runtimes (Debian 12: apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi

supp="$here/lsan.supp"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [ -f "$supp" ]; then
    export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0"
fi
# Rust's std prints a backtrace on a panic that would cross into C; make it useful if one happens.
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

timeout_cmd=()
if command -v timeout >/dev/null 2>&1; then
    timeout_cmd=(timeout "${PGSESS_CTEST_TIMEOUT:-900}")
fi

echo "pgsess C tests under ASan+LSan+UBSan: prefix=$prefix build=$build compiler=$("$CLANG" --version | head -1)"
echo "pkg-config pgsess: $pc_flags"
echo "ASAN_OPTIONS=$ASAN_OPTIONS UBSAN_OPTIONS=$UBSAN_OPTIONS LSAN_OPTIONS=${LSAN_OPTIONS:-}"

passed=0
failed=0
results=()
record() { # name status detail
    if [ "$2" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    results+=("$(printf '%-14s %s%s' "$1" "$2" "${3:+ ($3)}")")
}

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
    if ! "$CLANG" "${san_flags[@]}" "${cflags[@]}" -I"$here" "$src" -o "$exe" $pc_flags $extra_flags \
           -Wl,-rpath,"$prefix/lib" -lpthread > "$build/$name.build.log" 2>&1; then
        cat "$build/$name.build.log"
        record "$name" FAIL "build failed"
        continue
    fi
    start=$(date +%s)
    "${timeout_cmd[@]}" "$exe" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    secs=$(( $(date +%s) - start ))
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    # A sanitizer report fails the program whatever its exit status.
    san=""
    grep -q 'ERROR: AddressSanitizer' "$log" && san+=" AddressSanitizer"
    grep -q 'ERROR: LeakSanitizer' "$log" && san+=" LeakSanitizer"
    grep -q 'runtime error:' "$log" && san+=" UndefinedBehaviorSanitizer"
    if [ -n "$san" ]; then
        record "$name" FAIL "${san# } report, exit $rc${last:+; $last}"
    elif [ "$rc" = 124 ]; then
        record "$name" FAIL "timed out"
    elif [ "$rc" = 0 ] && [[ "$last" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
        record "$name" PASS "$last, ${secs}s"
    else
        record "$name" FAIL "exit $rc${last:+; $last}"
    fi
done

echo
echo "Summary (sanitizers; logs in $build):"
for line in "${results[@]}"; do echo "  $line"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
