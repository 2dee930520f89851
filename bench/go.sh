#!/usr/bin/env bash
# bench/go.sh PREFIX      (run by `make bench` after bench/run.sh)
#
# The Go binding against pgx v4 (pgxpool) and lib/pq, side by side in one process on one server,
# interleaved round by round (bench/go/main.go says what each workload is), then the bulk
# fetch's peak RSS per driver, each in a process of its own. Prints the table; never writes
# BENCHMARKS.md (its Go section is written by hand from these runs).
#
# pgx and lib/pq come from Debian's packages (golang-github-jackc-pgx-v4-dev,
# golang-github-lib-pq-dev, installed with apt-get when missing and run as root), built in
# GOPATH mode from /usr/share/gocode: nothing is downloaded.
#
# Environment: PGSQL_BENCH, PGSESS_BENCH_POSTMASTER_PID, PGSESS_BENCH_PLACEMENT as for
# bench/run.sh; PGSESS_GOBENCH_ROUNDS (default 5).
set -u

[[ $# -eq 1 ]] || { echo "usage: $0 PREFIX" >&2; exit 2; }
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "go.sh: PREFIX $1 does not exist" >&2; exit 2; }

# shellcheck source=bench/common.sh
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

if ! command -v go >/dev/null 2>&1 || [[ ! -d /usr/share/gocode/src/github.com/jackc/pgx/v4 ]] ||
    [[ ! -d /usr/share/gocode/src/github.com/lib/pq ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "go.sh: installing golang-go, golang-github-jackc-pgx-v4-dev, golang-github-lib-pq-dev"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-jackc-pgx-v4-dev \
            golang-github-lib-pq-dev >/dev/null || exit 2
    else
        echo "go.sh: needs go and Debian's pgx v4 and lib/pq sources (apt-get install golang-go" \
            "golang-github-jackc-pgx-v4-dev golang-github-lib-pq-dev)" >&2
        exit 2
    fi
fi

# GOPATH mode: the binding under its module path, pgx and lib/pq from Debian's GOPATH.
gopath="$BENCH_TMP/gopath"
mkdir -p "$gopath/src/github.com/pgsess/pgsess/bindings" "$gopath/src/gobench"
ln -s "$BENCH_ROOT/bindings/go" "$gopath/src/github.com/pgsess/pgsess/bindings/go"
cp "$BENCH_HERE/go/main.go" "$gopath/src/gobench/"
export GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOPROXY=off
export GOCACHE="${PGSESS_GO_BUILD:-$BENCH_ROOT/build/go}/cache"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export CGO_LDFLAGS="-Wl,-rpath,$prefix/lib"
bin="$BENCH_TMP/gobench"
(cd "$gopath/src/gobench" && go build -o "$bin" .) || { echo "go.sh: the benchmark does not build" >&2; exit 1; }

bench_server || exit 1
bench_placement || exit 2
echo "placement: $placement_text"
echo "go: $(go version | cut -d" " -f3)"
dpkg-query -W -f='packages: ${Package} ${Version}\n' golang-github-jackc-pgx-v4-dev golang-github-lib-pq-dev 2>/dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
timeout 600 "${pin[@]}" "$bin" -rounds "${PGSESS_GOBENCH_ROUNDS:-5}" || { echo "go.sh: the benchmark failed" >&2; exit 1; }
echo
echo "peak RSS of the 200,000-row fetch (one process per driver, 3 runs each):"
for d in pgsess pgx libpq; do
    for _ in 1 2 3; do
        timeout 120 "${pin[@]}" "$bin" -rss "$d" || exit 1
    done
done
echo "go.sh: load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
