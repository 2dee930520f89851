// Command gobench measures the Go binding side by side with what a Go user would pick instead:
// pgx v4 (pgxpool, its default statement cache) and lib/pq through database/sql, on one server,
// in one process, interleaved round by round (bench/go.sh builds and runs it; `make bench`
// calls that). Workloads, as issue 18 states them:
//
//	roundtrip  one SELECT $1::int4 with an argument, scanned into an int (one goroutine)
//	bulk       200,000 rows of (int8, text, float8, timestamptz, bool) scanned into typed values
//	pool8of4   8 goroutines sharing a pool of 4, each running the round trip
//
// Each round runs every workload for every driver (in a rotating order) and prints one line per
// (workload, driver) with its time per operation; the summary gives, per workload, each driver's
// ratio to pgx as min/median/max over the rounds. `gobench -rss DRIVER` runs the bulk fetch
// alone and prints the process's peak RSS (run once per driver, in separate processes).
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v4/pgxpool"
	_ "github.com/lib/pq"
	pgsess "github.com/pgsess/pgsess/bindings/go"
)

const bulkSQL = `SELECT g::int8, 'row ' || g, g * 0.5::float8, timestamptz '2024-01-01' + g * interval '1 s', g % 2 = 0
	FROM generate_series(1, 200000) g`

// A driver under test: the three workloads, each returning how many operations it ran.
type driver struct {
	name      string
	roundtrip func(n int) error
	bulk      func() (int, error)
	pool      func(goroutines, each int) error
	close     func()
}

type row struct {
	id   int64
	name string
	f    float64
	at   time.Time
	even bool
}

func pgsessNative(uri string, pool int) (*driver, error) {
	s, err := pgsess.Open("gobench", pgsess.WithDBURL(uri), pgsess.WithPoolMaxSize(pool), pgsess.WithStatementCache(256))
	if err != nil {
		return nil, err
	}
	one := func(i int) error {
		res, err := s.QueryBinary("SELECT $1::int4", i)
		if err != nil {
			return err
		}
		var n int
		res.Next()
		err = res.Scan(&n)
		res.Close()
		if err == nil && n != i {
			err = fmt.Errorf("got %d, want %d", n, i)
		}
		return err
	}
	return &driver{
		name:      "pgsess",
		roundtrip: func(n int) error { return repeat(n, one) },
		bulk: func() (int, error) {
			rows, err := s.Stream(context.Background(), bulkSQL)
			if err != nil {
				return 0, err
			}
			defer rows.Close()
			return scanAll(rows)
		},
		pool:  func(g, each int) error { return fanOut(g, each, one) },
		close: func() { s.Close() },
	}, nil
}

func databaseSQL(name, driverName, dsn string, pool int) (*driver, error) {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(pool)
	db.SetMaxIdleConns(pool)
	one := func(i int) error {
		var n int
		if err := db.QueryRow("SELECT $1::int4", i).Scan(&n); err != nil {
			return err
		}
		if n != i {
			return fmt.Errorf("got %d, want %d", n, i)
		}
		return nil
	}
	return &driver{
		name:      name,
		roundtrip: func(n int) error { return repeat(n, one) },
		bulk: func() (int, error) {
			rows, err := db.Query(bulkSQL)
			if err != nil {
				return 0, err
			}
			defer rows.Close()
			return scanAll(rows)
		},
		pool:  func(g, each int) error { return fanOut(g, each, one) },
		close: func() { db.Close() },
	}, nil
}

func pgxPool(uri string, pool int) (*driver, error) {
	cfg, err := pgxpool.ParseConfig(keyValueDSN(uri))
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(pool)
	p, err := pgxpool.ConnectConfig(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	one := func(i int) error {
		var n int
		if err := p.QueryRow(ctx, "SELECT $1::int4", i).Scan(&n); err != nil {
			return err
		}
		if n != i {
			return fmt.Errorf("got %d, want %d", n, i)
		}
		return nil
	}
	return &driver{
		name:      "pgx",
		roundtrip: func(n int) error { return repeat(n, one) },
		bulk: func() (int, error) {
			rows, err := p.Query(ctx, bulkSQL)
			if err != nil {
				return 0, err
			}
			defer rows.Close()
			return scanAll(rows)
		},
		pool:  func(g, each int) error { return fanOut(g, each, one) },
		close: p.Close,
	}, nil
}

// repeat runs one(0) ... one(n-1), stopping at the first error.
func repeat(n int, one func(int) error) error {
	for i := 0; i < n; i++ {
		if err := one(i); err != nil {
			return err
		}
	}
	return nil
}

// scanner is what the three drivers' rows have in common.
type scanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanAll scans every row of the bulk statement into typed values; the rows scanned.
func scanAll(rows scanner) (int, error) {
	var r row
	n := 0
	for rows.Next() {
		if err := rows.Scan(&r.id, &r.name, &r.f, &r.at, &r.even); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// fanOut runs one(i) each times on each of g goroutines at once.
func fanOut(g, each int, one func(int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, g)
	for k := 0; k < g; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := one(k*each + i); err != nil {
					errs <- err
					return
				}
			}
		}(k)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func open(kind, uri string, pool int) (*driver, error) {
	switch kind {
	case "pgsess":
		return pgsessNative(uri, pool)
	case "pgsess-sql":
		return databaseSQL("pgsess-sql", "pgsess", uri, pool)
	case "pgx":
		return pgxPool(uri, pool)
	case "libpq":
		return databaseSQL("lib/pq", "postgres", keyValueDSN(uri), pool)
	}
	return nil, fmt.Errorf("unknown driver %q", kind)
}

// keyValueDSN is a postgresql:// URI (one host) in libpq's key=value form, which pgx and lib/pq
// read whatever the host: their URL parsers refuse a Unix socket directory written %2F... as the
// host, which libpq (and pgsess) accept. lib/pq also wants sslmode stated (its default is require).
func keyValueDSN(uri string) string {
	rest := uri[strings.Index(uri, "://")+3:]
	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	kv := []string{}
	add := func(k, v string) {
		v, _ = url.PathUnescape(v)
		kv = append(kv, k+"='"+strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)+"'")
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		user := rest[:i]
		rest = rest[i+1:]
		if j := strings.IndexByte(user, ':'); j >= 0 {
			add("password", user[j+1:])
			user = user[:j]
		}
		add("user", user)
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		add("dbname", rest[i+1:])
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		add("port", rest[i+1:])
		rest = rest[:i]
	}
	add("host", rest)
	sslmode := false
	for _, p := range strings.Split(query, "&") {
		if k, v, ok := strings.Cut(p, "="); ok {
			add(k, v)
			sslmode = sslmode || k == "sslmode"
		}
	}
	if !sslmode {
		add("sslmode", "disable")
	}
	return strings.Join(kv, " ")
}

func peakRSSKiB() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return ru.Maxrss
}

func main() {
	rounds := flag.Int("rounds", 5, "rounds (each runs every workload for every driver)")
	rtN := flag.Int("roundtrips", 20000, "round trips per measurement")
	poolEach := flag.Int("pool-each", 4000, "round trips per goroutine in pool8of4")
	rss := flag.String("rss", "", "run the bulk fetch alone with this driver and print the peak RSS")
	only := flag.String("drivers", "pgsess,pgx,libpq,pgsess-sql", "drivers to compare")
	workloads := flag.String("workloads", "roundtrip,bulk,pool8of4", "workloads to run (for profiling one)")
	flag.Parse()
	uri := os.Getenv("PGSQL_BENCH")
	if uri == "" {
		fmt.Fprintln(os.Stderr, "gobench: PGSQL_BENCH (a PostgreSQL URI) is not set")
		os.Exit(2)
	}
	if *rss != "" {
		d, err := open(*rss, uri, 4)
		if err != nil {
			fail(err)
		}
		before := peakRSSKiB()
		n, err := d.bulk()
		if err != nil || n != 200000 {
			fail(fmt.Errorf("bulk: %d rows, %v", n, err))
		}
		fmt.Printf("rss %s: peak %d KiB (before the fetch %d KiB)\n", *rss, peakRSSKiB(), before)
		return
	}
	names := strings.Split(*only, ",")
	single := map[string]*driver{}
	pooled := map[string]*driver{}
	for _, n := range names {
		d, err := open(n, uri, 1)
		if err != nil {
			fail(fmt.Errorf("%s: %v", n, err))
		}
		single[n] = d
		p, err := open(n, uri, 4)
		if err != nil {
			fail(fmt.Errorf("%s pool 4: %v", n, err))
		}
		pooled[n] = p
	}
	// results[workload][driver] = per-round ns per operation
	results := map[string]map[string][]float64{"roundtrip": {}, "bulk": {}, "pool8of4": {}}
	measure := func(w, name string, ops int, f func() error) {
		if !strings.Contains(","+*workloads+",", ","+w+",") {
			return
		}
		start := time.Now()
		if err := f(); err != nil {
			fail(fmt.Errorf("%s %s: %v", w, name, err))
		}
		ns := float64(time.Since(start).Nanoseconds()) / float64(ops)
		results[w][name] = append(results[w][name], ns)
		fmt.Printf("round %d  %-9s %-11s %12.1f ns/op\n", len(results[w][name]), w, name, ns)
	}
	// Warm-up: each driver's connections open and statements prepared.
	for _, n := range names {
		_ = single[n].roundtrip(200)
		_, _ = single[n].bulk()
		_ = pooled[n].pool(8, 50)
	}
	for r := 0; r < *rounds; r++ {
		for k := range names {
			n := names[(k+r)%len(names)] // rotate the order so no driver always goes first
			d, p := single[n], pooled[n]
			measure("roundtrip", n, *rtN, func() error { return d.roundtrip(*rtN) })
			measure("bulk", n, 200000, func() error {
				got, err := d.bulk()
				if err == nil && got != 200000 {
					err = fmt.Errorf("%d rows", got)
				}
				return err
			})
			measure("pool8of4", n, 8**poolEach, func() error { return p.pool(8, *poolEach) })
		}
	}
	fmt.Println()
	fmt.Println("ratio to pgx per round (min / median / max), lower is faster:")
	for _, w := range []string{"roundtrip", "bulk", "pool8of4"} {
		base := results[w]["pgx"]
		for _, n := range names {
			if n == "pgx" || base == nil {
				continue
			}
			var ratios []float64
			for i, v := range results[w][n] {
				if i < len(base) {
					ratios = append(ratios, v/base[i])
				}
			}
			sort.Float64s(ratios)
			if len(ratios) == 0 {
				continue
			}
			fmt.Printf("  %-9s %-11s %.2f / %.2f / %.2f   (pgx median %.0f ns/op)\n", w, n, ratios[0],
				ratios[len(ratios)/2], ratios[len(ratios)-1], median(base))
		}
	}
	for _, n := range names {
		single[n].close()
		pooled[n].close()
	}
}

func median(v []float64) float64 {
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	return c[len(c)/2]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gobench:", err)
	os.Exit(1)
}
