package pgsess

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// openDB opens a database/sql DB on the test server through a Connector (pool of poolSize,
// database/sql's limits set to it: the recommended settings).
func openDB(t testing.TB, poolSize int, opts ...Option) (*sql.DB, *Connector) {
	t.Helper()
	if os.Getenv("PGSQL_GOTEST") == "" {
		t.Skip("PGSQL_GOTEST is not set")
	}
	c, err := NewConnector("gotest", append([]Option{WithPoolMaxSize(poolSize)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(poolSize)
	db.SetMaxIdleConns(poolSize)
	t.Cleanup(func() { db.Close() })
	return db, c
}

func TestDriverOpenByNameAndURI(t *testing.T) {
	uri := os.Getenv("PGSQL_GOTEST")
	if uri == "" {
		t.Skip("PGSQL_GOTEST is not set")
	}
	for _, dsn := range []string{"gotest", uri} {
		db, err := sql.Open("pgsess", dsn)
		if err != nil {
			t.Fatalf("sql.Open(%q): %v", dsn, err)
		}
		var n int
		var s string
		if err := db.QueryRow("SELECT $1::int * 2, $2::text", 21, "x").Scan(&n, &s); err != nil || n != 42 || s != "x" {
			t.Errorf("%q: %d %q %v", dsn, n, s, err)
		}
		if err := db.Ping(); err != nil {
			t.Errorf("Ping: %v", err)
		}
		db.Close()
	}
	// The binding's URI parameter pgbouncer=true turns the statement cache off and is not passed on.
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	db, err := sql.Open("pgsess", uri+sep+"pgbouncer=true")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("SELECT $1::int", 1); err != nil {
		t.Errorf("pgbouncer=true: %v", err)
	}
	if _, err := sql.Open("pgsess", uri+sep+"pgbouncer=maybe"); err == nil {
		// sql.Open calls OpenConnector, which checks the URI.
		t.Errorf("pgbouncer=maybe accepted")
	}
	// A missing variable fails at the first use, with the library's message.
	db2, err := sql.Open("pgsess", "no_such_session_for_gotest")
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.Ping(); !IsConfigError(err) {
		t.Errorf("missing PGSQL_ variable: %v", err)
	}
}

func TestDriverValues(t *testing.T) {
	db, _ := openDB(t, 2)
	var (
		i8    int64
		i2    int16
		f     float64
		b     bool
		txt   string
		by    []byte
		ts    time.Time
		d     time.Time
		num   string
		numN  Numeric
		js    json.RawMessage
		u     UUID
		iv    Interval
		null  sql.NullString
		nullI sql.NullInt64
		ptr   *string
		inf   string
	)
	err := db.QueryRow(`SELECT 9223372036854775807::int8, -3::int2, 0.25::float8, true, 'héllo', '\x00ff'::bytea,
		'2024-02-29 12:34:56.789012+02'::timestamptz, '0044-03-15 BC'::date, 12345678901234567890.5::numeric,
		12.50::numeric, '{"a": [1, 2]}'::jsonb, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid,
		'1 day 02:03:04.5'::interval, NULL::text, NULL::int, NULL::text, 'infinity'::timestamptz::text`).Scan(
		&i8, &i2, &f, &b, &txt, &by, &ts, &d, &num, &numN, &js, &u, &iv, &null, &nullI, &ptr, &inf)
	if err != nil {
		t.Fatal(err)
	}
	if i8 != math.MaxInt64 || i2 != -3 || f != 0.25 || !b || txt != "héllo" || string(by) != "\x00\xff" {
		t.Errorf("scalars: %d %d %v %v %q %q", i8, i2, f, b, txt, by)
	}
	if want := time.Date(2024, 2, 29, 10, 34, 56, 789012000, time.UTC); !ts.Equal(want) {
		t.Errorf("timestamptz %v, want %v", ts, want)
	}
	if want := time.Date(-43, 3, 15, 0, 0, 0, 0, time.UTC); !d.Equal(want) {
		t.Errorf("BC date %v, want %v", d, want)
	}
	if num != "12345678901234567890.5" || numN != "12.50" {
		t.Errorf("numeric %q %q", num, numN)
	}
	var m map[string][]int
	if err := json.Unmarshal(js, &m); err != nil || len(m["a"]) != 2 {
		t.Errorf("jsonb %s: %v", js, err)
	}
	if u.String() != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" {
		t.Errorf("uuid %v", u)
	}
	if dur, err := iv.Duration(); err != nil || dur != 26*time.Hour+3*time.Minute+4500*time.Millisecond {
		t.Errorf("interval %+v: %v %v", iv, dur, err)
	}
	if null.Valid || nullI.Valid || ptr != nil || inf != "infinity" {
		t.Errorf("NULLs: %+v %+v %v; %q", null, nullI, ptr, inf)
	}
	// An infinite time is the string "infinity" as a driver value: it fails into time.Time.
	if err := db.QueryRow("SELECT 'infinity'::timestamptz").Scan(&ts); err == nil {
		t.Errorf("infinity into time.Time accepted")
	}

	// Parameters: every kind database/sql users pass, arrays included.
	var out string
	err = db.QueryRow(`SELECT concat_ws('|', $1::int8, $2::numeric, $3::float4, $4::bool, $5::bytea, $6::timestamptz,
		$7::interval, $8::int4[], $9::text[], $10::uuid, $11::numeric, $12::jsonb, $13::interval, $14::int8 IS NULL)`,
		int8(-5), uint64(math.MaxUint64), float32(1.5), false, []byte{0, 1}, time.Date(2000, 1, 2, 3, 4, 5, 0, time.UTC),
		90*time.Minute+time.Microsecond, []int64{1, 2, 3}, []string{`a "b"`, `c\d`, "NULL"}, u, Numeric("0.10"),
		json.RawMessage(`{"k": true}`), Interval{Months: 14, Days: 3, Microseconds: 1}, (*int)(nil)).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	want := `-5|18446744073709551615|1.5|f|\x0001|2000-01-02 03:04:05+00|01:30:00.000001|{1,2,3}|{"a \"b\"","c\\d","NULL"}|` +
		`a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|0.10|{"k": true}|1 year 2 mons 3 days 00:00:00.000001|t`
	if out != want {
		t.Errorf("parameters:\n got %s\nwant %s", out, want)
	}
	// Arrays back, through Array (database/sql's Scan) and NULL elements into pointers.
	var ints []int64
	var strs []string
	var fl []*float64
	var bools []bool
	var bys [][]byte
	if err := db.QueryRow(`SELECT ARRAY[1,2,3]::int8[], ARRAY['x y', 'q"uote', 'back\slash', ''], ARRAY[1.5, NULL]::float8[],
		ARRAY[true, false], ARRAY['\x00'::bytea, '\xabcd']`).Scan(
		Array(&ints), Array(&strs), Array(&fl), Array(&bools), Array(&bys)); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ints) != "[1 2 3]" || len(strs) != 4 || strs[1] != `q"uote` || strs[2] != `back\slash` || strs[3] != "" ||
		len(fl) != 2 || *fl[0] != 1.5 || fl[1] != nil || fmt.Sprint(bools) != "[true false]" ||
		len(bys) != 2 || string(bys[0]) != "\x00" || string(bys[1]) != "\xab\xcd" {
		t.Errorf("arrays: %v %q %v %v %q", ints, strs, fl, bools, bys)
	}
	var idsFound int
	if err := db.QueryRow("SELECT count(*) FROM generate_series(1, 10) AS i WHERE i = ANY($1)", Array([]int{2, 4, 99})).Scan(&idsFound); err != nil || idsFound != 2 {
		t.Errorf("ANY($1) with Array: %d %v", idsFound, err)
	}
	// Named arguments are refused (PostgreSQL has $n only).
	if err := db.QueryRow("SELECT $1::int", sql.Named("x", 1)).Scan(&i8); err == nil || !strings.Contains(err.Error(), "positional") {
		t.Errorf("named argument: %v", err)
	}
}

// The native API takes and gives arrays and intervals too.
func TestNativeArraysAndIntervals(t *testing.T) {
	s := openTest(t)
	var ints []int64
	var strs []*string
	var d time.Duration
	var iv Interval
	one(t, s, "SELECT $1::int8[], ARRAY['a', NULL], $2::interval, '1 mon 1 day'::interval", []any{[]int{5, 6}, 1500 * time.Millisecond},
		&ints, &strs, &d, &iv)
	if fmt.Sprint(ints) != "[5 6]" || len(strs) != 2 || *strs[0] != "a" || strs[1] != nil || d != 1500*time.Millisecond ||
		iv != (Interval{Months: 1, Days: 1}) {
		t.Errorf("got %v %v %v %+v", ints, strs, d, iv)
	}
	res := mustQuery(t, s, "SELECT '1 mon'::interval")
	defer res.Close()
	res.Next()
	if err := res.Scan(&d); err == nil {
		t.Errorf("a month into time.Duration accepted: %v", d)
	}
}

// Arrays go through the library's pgsess_array_literal and pgsess_array_split: text that needs
// quoting survives the round trip element by element, lower bounds are skipped, bytea elements
// travel as hex, and a two-dimensional array is refused with a reason.
func TestArraysThroughLibrary(t *testing.T) {
	s := openTest(t)
	a, b, null, empty, brace, spaced, nul := `a "b"`, `c\d`, "NULL", "", "{,}", " x ", "é"
	in := []*string{&a, &b, &null, nil, &empty, &brace, &spaced, &nul}
	var out []*string
	var n int64
	one(t, s, "SELECT $1::text[], cardinality($1::text[])", []any{in}, &out, &n)
	if len(out) != len(in) || n != int64(len(in)) {
		t.Fatalf("got %d elements (server counts %d), want %d", len(out), n, len(in))
	}
	for i := range in {
		if (in[i] == nil) != (out[i] == nil) || (in[i] != nil && *in[i] != *out[i]) {
			t.Errorf("element %d: got %v, want %v", i, out[i], in[i])
		}
	}
	var lb []int64
	var bys [][]byte
	one(t, s, "SELECT '[0:1]={5,6}'::int8[], $1::bytea[]", []any{[][]byte{{0, 0xff}, {}}}, &lb, &bys)
	if fmt.Sprint(lb) != "[5 6]" || len(bys) != 2 || string(bys[0]) != "\x00\xff" || len(bys[1]) != 0 {
		t.Errorf("got %v %q", lb, bys)
	}
	res := mustQuery(t, s, "SELECT '{{1,2},{3,4}}'::int[]")
	defer res.Close()
	res.Next()
	var grid []int64
	if err := res.Scan(&grid); err == nil || !strings.Contains(err.Error(), "2-dimensional") {
		t.Errorf("a 2-dimensional array scanned into a slice: %v %v", grid, err)
	}
}

// The Go parser of ISO times gives what the library's pgsess_results_get_epoch_micros gives.
func TestTimeTextParserMatchesLibrary(t *testing.T) {
	s := openTest(t)
	exec(t, s, "SET TimeZone = 'Asia/Kolkata'")
	res := mustQuery(t, s, `SELECT v::timestamptz, v::timestamp, v::date FROM (VALUES
		('2024-02-29 12:34:56.789012+02'), ('1999-12-31 23:59:59.999999-08'), ('0001-01-01 00:00:00+00'),
		('0044-03-15 12:00:00+00 BC'), ('10000-01-01 00:00:00+00'), ('1900-01-01 00:00:00+00'),
		('2020-06-01 00:00:00.5+00'), ('1970-01-01 00:00:00+00')) AS t(v)`)
	defer res.Close()
	for res.Next() {
		for col := 0; col < 3; col++ {
			text, _ := res.view(col)
			got, inf, ok := parseTimeText(text, col == 0)
			if !ok || inf != 0 {
				t.Errorf("%q: not parsed", text)
				continue
			}
			us, libOK := res.libEpochMicros(col)
			if !libOK {
				t.Errorf("%q: library failed", text)
				continue
			}
			if got.UnixMicro() != us {
				t.Errorf("%q: Go %v (%d µs), library %d µs", text, got, got.UnixMicro(), us)
			}
		}
	}
	for _, bad := range []string{"2024-2-29", "12/31/1999", "2024-02-29T12:00:00", "2024-02-29 12:00", "Sat Feb 29"} {
		if _, _, ok := parseTimeText(bad, true); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A deadline cancels a running statement within 100 ms, the error wraps
// context.DeadlineExceeded and carries 57014, and the connection is used again.
func TestDriverDeadlineCancelsStatement(t *testing.T) {
	db, c := openDB(t, 1)
	var pid0 int
	if err := db.QueryRow("SELECT pg_backend_pid()").Scan(&pid0); err != nil {
		t.Fatal(err)
	}
	s, _ := c.Session()
	before, _ := s.Stats()
	for _, how := range []string{"QueryRowContext", "ExecContext", "Tx.ExecContext"} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		var err error
		switch how {
		case "QueryRowContext":
			var x string
			err = db.QueryRowContext(ctx, "SELECT pg_sleep(3)::text").Scan(&x)
		case "ExecContext":
			_, err = db.ExecContext(ctx, "SELECT pg_sleep(3)")
		case "Tx.ExecContext":
			tx, berr := db.BeginTx(context.Background(), nil)
			if berr != nil {
				t.Fatal(berr)
			}
			_, err = tx.ExecContext(ctx, "SELECT pg_sleep(3)")
			tx.Rollback()
		}
		late := time.Since(start) - 300*time.Millisecond
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || SQLStateOf(err) != "57014" {
			t.Errorf("%s: %v (SQLSTATE %q)", how, err, SQLStateOf(err))
		}
		if late > 100*time.Millisecond {
			t.Errorf("%s: returned %v after the deadline", how, late)
		}
		var pid int
		if err := db.QueryRow("SELECT pg_backend_pid()").Scan(&pid); err != nil || pid != pid0 {
			t.Errorf("%s: next statement on backend %d (%v), want the same connection %d", how, pid, err, pid0)
		}
	}
	after, _ := s.Stats()
	if after.Connects != before.Connects || after.DiscardedDead != before.DiscardedDead {
		t.Errorf("cancels cost connections: before %+v after %+v", before, after)
	}
	// A cancel while rows stream: the Rows end with the context's error.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT i, repeat('x', CASE WHEN i > 1000 THEN 9000 ELSE 1 END), "+
		"pg_sleep(CASE WHEN i > 1000 THEN 0.01 ELSE 0 END) FROM generate_series(1, 3000) AS i")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if !errors.Is(rows.Err(), context.DeadlineExceeded) && !errors.Is(rows.Err(), context.Canceled) {
		t.Errorf("rows past the deadline: %d rows, err %v", n, rows.Err())
	}
	rows.Close()
	if err := db.QueryRow("SELECT pg_backend_pid()").Scan(&pid0); err != nil {
		t.Errorf("after the cancelled rows: %v", err)
	}
}

// database/sql transactions with every isolation level (and read-only).
func TestDriverIsolationLevels(t *testing.T) {
	db, _ := openDB(t, 2)
	for _, c := range []struct {
		level sql.IsolationLevel
		want  string // "" when PostgreSQL has no such level
	}{
		{sql.LevelDefault, "read committed"},
		{sql.LevelReadUncommitted, "read uncommitted"},
		{sql.LevelReadCommitted, "read committed"},
		{sql.LevelWriteCommitted, ""},
		{sql.LevelRepeatableRead, "repeatable read"},
		{sql.LevelSnapshot, "repeatable read"},
		{sql.LevelSerializable, "serializable"},
		{sql.LevelLinearizable, ""},
	} {
		for _, ro := range []bool{false, true} {
			tx, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: c.level, ReadOnly: ro})
			if c.want == "" {
				if CodeOf(err) != NotSupportedError {
					t.Errorf("%v: %v", c.level, err)
				}
				if tx != nil {
					tx.Rollback()
				}
				continue
			}
			if err != nil {
				t.Fatalf("%v: %v", c.level, err)
			}
			var iso, rdonly string
			if err := tx.QueryRow("SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&iso, &rdonly); err != nil {
				t.Fatal(err)
			}
			if iso != c.want || (rdonly == "on") != ro {
				t.Errorf("%v read-only %v: %q %q", c.level, ro, iso, rdonly)
			}
			_, err = tx.Exec("CREATE TEMP TABLE iso_probe (x int)")
			if ro && SQLStateOf(err) != "25006" {
				t.Errorf("%v read-only: a write gave %v", c.level, err)
			} else if !ro && err != nil {
				t.Errorf("%v: %v", c.level, err)
			}
			if err := tx.Rollback(); err != nil {
				t.Errorf("rollback: %v", err)
			}
		}
	}
	// Commit and rollback take effect; a failed transaction's commit reports the rollback.
	table := uniq("gotest_drv_tx")
	if _, err := db.Exec("CREATE TABLE " + table + " (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	defer db.Exec("DROP TABLE " + table)
	tx, _ := db.Begin()
	tx.Exec("INSERT INTO "+table+" VALUES ($1)", 1)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tx, _ = db.Begin()
	tx.Exec("INSERT INTO "+table+" VALUES ($1)", 2)
	tx.Rollback()
	tx, _ = db.Begin()
	if _, err := tx.Exec("INSERT INTO "+table+" VALUES ($1)", 1); !IsIntegrityError(err) {
		t.Errorf("duplicate: %v", err)
	}
	if err := tx.Commit(); !IsTransactionRollback(err) {
		t.Errorf("commit after a failed statement: %v", err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d rows, %v", n, err)
	}
	// Serializable conflicts come back retryable.
	var pe *Error
	tx1, _ := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelSerializable})
	tx2, _ := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelSerializable})
	tx1.QueryRow("SELECT count(*) FROM " + table).Scan(&n)
	tx2.QueryRow("SELECT count(*) FROM " + table).Scan(&n)
	tx1.Exec("INSERT INTO "+table+" VALUES ($1)", 10)
	tx2.Exec("INSERT INTO "+table+" VALUES ($1)", 11)
	err1 := tx1.Commit()
	err2 := tx2.Commit()
	if err1 != nil || !errors.As(err2, &pe) || pe.SQLState != "40001" || !pe.Retryable() {
		t.Errorf("serializable conflict: %v / %v", err1, err2)
	}
}

// errors.As gives every field of the server's report.
func TestDriverErrorFields(t *testing.T) {
	db, _ := openDB(t, 1)
	table := uniq("gotest_drv_err")
	if _, err := db.Exec("CREATE TABLE " + table + " (id int CONSTRAINT " + table + "_pos CHECK (id > 0), v text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	defer db.Exec("DROP TABLE " + table)
	_, err := db.Exec("INSERT INTO "+table+" VALUES ($1, 'x')", -1)
	var pe *Error
	if !errors.As(err, &pe) || pe.SQLState != "23514" || pe.ConstraintName != table+"_pos" || pe.TableName != table ||
		pe.SchemaName != "public" || pe.Severity != "ERROR" {
		t.Errorf("check violation: %+v", pe)
	}
	_, err = db.Exec("INSERT INTO "+table+" VALUES ($1, NULL)", 1)
	if !errors.As(err, &pe) || pe.SQLState != "23502" || pe.ColumnName != "v" {
		t.Errorf("not null violation: %+v", pe)
	}
	_, err = db.Exec("SELECT nosuchcolumn FROM " + table)
	if !errors.As(err, &pe) || pe.Position != "8" || pe.Routine == "" || pe.File == "" || pe.Line == "" {
		t.Errorf("undefined column: %+v", pe)
	}
}

// 1,000 goroutines through database/sql on a pool of 8 stay under 40 OS threads.
func TestDriverThousandGoroutinesFewThreads(t *testing.T) {
	db, _ := openDB(t, 8, WithCheckoutTimeout(60*time.Second))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); db.Exec("SELECT pg_sleep(0.05)") }()
	}
	wg.Wait()
	stop := make(chan struct{})
	most := maxThreads(t, stop)
	var failed int64
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var n int
			if err := db.QueryRowContext(ctx, "SELECT $1::int FROM pg_sleep(0.002)", i).Scan(&n); err != nil || n != i {
				if atomic.AddInt64(&failed, 1) < 5 {
					t.Errorf("goroutine %d: %d %v", i, n, err)
				}
			}
		}(i)
	}
	wg.Wait()
	close(stop)
	n := <-most
	t.Logf("database/sql, 1000 goroutines on pool 8: at most %d OS threads", n)
	if n >= 40 {
		t.Errorf("%d OS threads (want under 40)", n)
	}
}

// The recommended settings: database/sql's pool sized as pgsess's. Server connections stay
// within the pool size, nothing waits past the checkout timeout, and database/sql closing its
// connections costs no new server connection. A database/sql limit above the pool's makes the
// excess wait in Go and fail with PoolExhausted at the checkout timeout.
func TestDriverRecommendedSettings(t *testing.T) {
	db, c := openDB(t, 4)
	s, _ := c.Session()
	var wg sync.WaitGroup
	var mu sync.Mutex
	pids := map[int]bool{}
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				var pid int
				if err := db.QueryRow("SELECT pg_backend_pid()").Scan(&pid); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				pids[pid] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st, _ := s.Stats()
	if len(pids) > 4 || st.Open > 4 || st.CheckoutTimeouts != 0 {
		t.Errorf("%d backends, stats %+v", len(pids), st)
	}
	// database/sql closes its idle connections: the pool keeps the server connections.
	connects := st.Connects
	db.SetMaxIdleConns(0)
	db.SetMaxIdleConns(4)
	for i := 0; i < 10; i++ {
		var x int
		db.QueryRow("SELECT 1").Scan(&x)
	}
	st, _ = s.Stats()
	if st.Connects != connects {
		t.Errorf("database/sql's reconnects opened %d server connections", st.Connects-connects)
	}
	if st.InUse > 1 || st.PinnedSessions > 1 {
		t.Errorf("idle database/sql connections: %+v", st)
	}

	// Misconfigured: database/sql may open 8 on a pool of 4.
	db2, c2 := openDB(t, 4, WithCheckoutTimeout(200*time.Millisecond), WithPoolIdleTTL(30*time.Second))
	db2.SetMaxOpenConns(8)
	s2, _ := c2.Session()
	var conns []*sql.Conn
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	for i := 0; i < 4; i++ {
		cn, err := db2.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
	}
	start := time.Now()
	_, err := db2.Conn(context.Background())
	if !IsPoolExhausted(err) || time.Since(start) > time.Second {
		t.Errorf("a fifth connection on a pool of 4: %v after %v", err, time.Since(start))
	}
	st2, _ := s2.Stats()
	if st2.CheckoutTimeouts == 0 {
		t.Errorf("the gate's timeout is not counted: %+v", st2)
	}
}

// Rows stream: a large result is read with bounded memory (one chunk at a time).
func TestDriverRowsStream(t *testing.T) {
	db, _ := openDB(t, 1, WithFetchSize(1000))
	rss := func() int64 {
		b, err := os.ReadFile("/proc/self/statm")
		if err != nil {
			t.Skip("no /proc/self/statm")
		}
		f := strings.Fields(string(b))
		n, _ := strconv.ParseInt(f[1], 10, 64)
		return n * int64(os.Getpagesize())
	}
	rows, err := db.Query("SELECT i, repeat('x', 200) FROM generate_series(1, $1::int) AS i", 300000)
	if err != nil {
		t.Fatal(err)
	}
	before := rss()
	var n, sum int64
	var pad string
	for rows.Next() {
		var i int64
		if err := rows.Scan(&i, &pad); err != nil {
			t.Fatal(err)
		}
		n++
		sum += i
	}
	grew := rss() - before
	if err := rows.Err(); err != nil || n != 300000 || sum != 300000*300001/2 {
		t.Errorf("%d rows, %v", n, err)
	}
	rows.Close()
	t.Logf("300,000 rows of 200 bytes (60 MB) read; RSS grew %d KiB", grew/1024)
	if grew > 30<<20 && !raceEnabled { // the race detector's shadow memory grows with the Go garbage

		t.Errorf("RSS grew %d MiB while streaming 60 MB: not bounded by the chunk", grew>>20)
	}
}

func TestDriverColumnTypes(t *testing.T) {
	db, _ := openDB(t, 1)
	rows, err := db.Query(`SELECT 1::int4 AS a, 'x'::text AS b, 1.5::numeric(10,2) AS c, now() AS d, '{1}'::int4[] AS e,
		'x'::varchar(10) AS f, true AS g, '\x00'::bytea AS h, 2::numeric AS i, 'ab'::char(3) AS j,
		'y'::varchar AS k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, db string
		scan     reflect.Type
		length   int64
		lenOK    bool
		p, s     int64
		decOK    bool
	}{
		{"a", "INT4", reflect.TypeOf(int64(0)), 0, false, 0, 0, false},
		{"b", "TEXT", reflect.TypeOf(""), math.MaxInt64, true, 0, 0, false},
		{"c", "NUMERIC", reflect.TypeOf(""), 0, false, 10, 2, true},
		{"d", "TIMESTAMPTZ", reflect.TypeOf(time.Time{}), 0, false, 0, 0, false},
		{"e", "_INT4", reflect.TypeOf(""), math.MaxInt64, true, 0, 0, false},
		{"f", "VARCHAR", reflect.TypeOf(""), 10, true, 0, 0, false},
		{"g", "BOOL", reflect.TypeOf(false), 0, false, 0, 0, false},
		{"h", "BYTEA", reflect.TypeOf([]byte(nil)), math.MaxInt64, true, 0, 0, false},
		{"i", "NUMERIC", reflect.TypeOf(""), 0, false, 0, 0, false},
		{"j", "BPCHAR", reflect.TypeOf(""), 3, true, 0, 0, false},
		{"k", "VARCHAR", reflect.TypeOf(""), math.MaxInt64, true, 0, 0, false},
	}
	for i, w := range want {
		ct := cts[i]
		l, lok := ct.Length()
		_, nok := ct.Nullable()
		p, s, dok := ct.DecimalSize()
		if ct.Name() != w.name || ct.DatabaseTypeName() != w.db || ct.ScanType() != w.scan || l != w.length ||
			lok != w.lenOK || nok || p != w.p || s != w.s || dok != w.decOK {
			t.Errorf("column %d: %s %s %v len %d %v nullable-known %v decimal %d,%d %v", i, ct.Name(),
				ct.DatabaseTypeName(), ct.ScanType(), l, lok, nok, p, s, dok)
		}
	}
}

// scanStruct is sqlx-style struct scanning, written here as a user would (no new module): each
// column goes to the field whose `db` tag (or lower-cased name) matches it.
func scanStruct(rows *sql.Rows, dest any) error {
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	v := reflect.ValueOf(dest).Elem()
	byName := map[string]int{}
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		name := f.Tag.Get("db")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		byName[name] = i
	}
	ptrs := make([]any, len(cols))
	for i, c := range cols {
		fi, ok := byName[c]
		if !ok {
			return fmt.Errorf("missing destination for column %q", c)
		}
		ptrs[i] = v.Field(fi).Addr().Interface()
	}
	return rows.Scan(ptrs...)
}

func TestDriverStructScanning(t *testing.T) {
	db, _ := openDB(t, 2)
	type user struct {
		ID      int64            `db:"id"`
		Name    string           `db:"name"`
		Email   sql.NullString   `db:"email"`
		Score   *float64         `db:"score"`
		Created time.Time        `db:"created_at"`
		Tags    []string         `db:"-"`
		Meta    *json.RawMessage `db:"meta"`
		Active  bool
	}
	table := uniq("gotest_drv_users")
	if _, err := db.Exec(`CREATE TABLE ` + table + ` (id bigserial PRIMARY KEY, name text NOT NULL, email text,
		score float8, created_at timestamptz NOT NULL DEFAULT now(), meta jsonb, active bool NOT NULL DEFAULT true);
		INSERT INTO ` + table + ` (name, email, score, meta) VALUES ('ada', 'ada@example.org', 9.5, '{"lang": "en"}'),
		('grace', NULL, NULL, NULL)`); err != nil {
		t.Fatal(err)
	}
	defer db.Exec("DROP TABLE " + table)
	stmt, err := db.Prepare("SELECT id, name, email, score, created_at, meta, active FROM " + table + " WHERE id >= $1 ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	for round := 0; round < 3; round++ { // the prepared statement runs again (statement cache)
		rows, err := stmt.Query(0)
		if err != nil {
			t.Fatal(err)
		}
		var users []user
		for rows.Next() {
			var u user
			if err := scanStruct(rows, &u); err != nil {
				t.Fatal(err)
			}
			users = append(users, u)
		}
		rows.Close()
		if len(users) != 2 || users[0].Name != "ada" || !users[0].Email.Valid || users[0].Score == nil || *users[0].Score != 9.5 ||
			users[0].Meta == nil || string(*users[0].Meta) != `{"lang": "en"}` || !users[0].Active || time.Since(users[0].Created) > time.Hour ||
			users[1].Email.Valid || users[1].Score != nil || users[1].Meta != nil {
			t.Errorf("round %d: %+v", round, users)
		}
	}
	// Exec without arguments runs a whole script (the simple protocol), as migration tools need.
	if _, err := db.Exec("UPDATE " + table + " SET active = false WHERE id = 1; UPDATE " + table + " SET active = false WHERE id = 2"); err != nil {
		t.Errorf("script: %v", err)
	}
	var active int
	db.QueryRow("SELECT count(*) FROM " + table + " WHERE active").Scan(&active)
	if active != 0 {
		t.Errorf("%d still active", active)
	}
}

// A connection whose server connection is lost is discarded, and database/sql goes on with
// another.
func TestDriverLostConnection(t *testing.T) {
	db, _ := openDB(t, 2)
	ctx := context.Background()
	cn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := cn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	var x int
	err = cn.QueryRowContext(ctx, "SELECT 1").Scan(&x)
	if err == nil {
		t.Errorf("a statement on a terminated backend succeeded")
	}
	if !errors.Is(err, driver.ErrBadConn) && !IsOperational(err) {
		t.Errorf("lost connection: %v", err)
	}
	cn.Close()
	for i := 0; i < 3; i++ {
		var pid2 int
		if err := db.QueryRow("SELECT pg_backend_pid()").Scan(&pid2); err != nil || pid2 == pid {
			t.Errorf("after the loss: backend %d, %v", pid2, err)
		}
	}
}
