#!/usr/bin/env bash
# The Go binding's checks, against a library installed in PREFIX and the server in PGSQL_CTEST:
#   go vet, gofmt, `go test -race` (PGSQL_GOTEST=$PGSQL_CTEST), the per-row cost benchmark with
#   its C comparison (testdata/rowcost.c), the COPY TO benchmark (per message vs chunked), and the
#   example in examples/go (PGSQL_DEMO=$PGSQL_CTEST).
# The last line is "N passed, M failed" (go tests plus the other checks); exits non-zero on any
# failure.
#
#   bindings/go/run.sh PREFIX        (after `make install PREFIX=PREFIX`)
#
# Builds offline: the module has no dependency outside the standard library (GOPROXY=off). The Go
# build cache and GOPATH live under build/go in the repository (or $PGSESS_GO_BUILD), so HOME may
# be unset. Needs Debian's Go (golang-go, 1.19 or later); installed with apt-get when missing and
# run as root.
set -uo pipefail
# shellcheck disable=SC2016 # the bash -c scripts expand their own arguments

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=${1:?usage: bindings/go/run.sh PREFIX}
prefix=$(cd "$prefix" && pwd) || { echo "run.sh: no such PREFIX: $1" >&2; exit 2; }
: "${PGSQL_CTEST:?run.sh needs PGSQL_CTEST (a PostgreSQL URI)}"

if ! command -v go >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "run.sh: installing golang-go"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null ||
            { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null; }
    fi
    command -v go >/dev/null 2>&1 || { echo "run.sh: go not found (apt-get install golang-go)" >&2; echo "0 passed, 1 failed"; exit 1; }
fi

build=${PGSESS_GO_BUILD:-$root/build/go}
mkdir -p "$build/cache" "$build/gopath" "$build/tmp"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export CGO_ENABLED=1
export CGO_LDFLAGS="-Wl,-rpath,$prefix/lib${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
export GOFLAGS=-mod=mod GOPROXY=off GOENV=off GOTOOLCHAIN=local
export GOCACHE="$build/cache" GOPATH="$build/gopath" GOTMPDIR="$build/tmp"
export PGSQL_GOTEST="$PGSQL_CTEST" PGSQL_DEMO="$PGSQL_CTEST"

passed=0
failed=0
check() { # check NAME CMD...: run a step, count it
    local name=$1; shift
    echo "== $name"
    if "$@"; then
        echo "ok: $name"
        passed=$((passed + 1))
    else
        echo "FAILED: $name"
        failed=$((failed + 1))
    fi
}

echo "go: $(go version); pgsess $(pkg-config --modversion pgsess 2>/dev/null || echo 'NOT FOUND by pkg-config')"

gofmt_clean() {
    local out
    out=$(gofmt -l "$here" "$root/examples/go") || return 1
    [[ -z $out ]] || { echo "gofmt would change: $out"; return 1; }
}
check "go vet (bindings/go)" bash -c 'cd "$1" && go vet ./...' _ "$here"
check "go vet (examples/go)" bash -c 'cd "$1" && go vet ./...' _ "$root/examples/go"
check "gofmt -l" gofmt_clean

# go test: -race when this Go supports it; each top-level test counts.
race=-race
(cd "$here" && go test -race -count=1 -run '^$' . >/dev/null 2>&1) || { race=; echo "(-race unsupported here: running without it)"; }
log="$build/go-test.log"
echo "== go test -count=1 $race -v ./..."
(cd "$here" && go test -count=1 $race -v ./...) 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
tp=$(grep -c '^--- PASS' "$log")
tf=$(grep -c '^--- FAIL' "$log")
if [[ $rc -ne 0 && $tf -eq 0 ]]; then
    tf=1 # a build failure, panic or timeout with no FAIL line
fi
echo "go test: $tp passed, $tf failed (exit $rc)"
passed=$((passed + tp))
failed=$((failed + tf))

# Without the race detector: the per-row cost, Go (one cgo call per row) then C, and the Go
# round trip's allocations (TestRoundTripAllocations).
check "go per-row benchmark (200,000 x 5) and round-trip allocations" bash -c \
    'set -o pipefail; cd "$1" && go test -count=1 -v -run "^(TestRowCost|TestRoundTripAllocations)$" -bench "^BenchmarkRow" -benchtime 5x . | grep -E "row cost|ns/row|^--- |^ok"' _ "$here"
# COPY TO of 1,000,000 rows: one cgo call per message (row) against one per chunk.
check "go COPY TO benchmark (1,000,000 rows: per message vs chunked)" bash -c \
    'set -o pipefail; cd "$1" && go test -count=1 -run "^$" -bench "^BenchmarkCopyTo$" -benchtime 3x . | grep -E "ns/row|^ok"' _ "$here"
rowcost_c() {
    # shellcheck disable=SC2046
    cc -O2 -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -o "$build/rowcost" "$here/testdata/rowcost.c" \
        $(pkg-config --cflags --libs pgsess) -Wl,-rpath,"$prefix/lib" && "$build/rowcost"
}
check "C per-row comparison (testdata/rowcost.c)" rowcost_c

check "example (examples/go, PGSQL_DEMO)" bash -c \
    'cd "$1" && go build -o "$2/demo" . && "$2/demo"' _ "$root/examples/go" "$build"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
