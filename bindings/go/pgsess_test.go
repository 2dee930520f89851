package pgsess

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"math/rand"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The server comes from PGSQL_GOTEST (session name "gotest"); bindings/go/run.sh always sets it.
func openTest(t testing.TB, opts ...Option) *Session {
	t.Helper()
	if os.Getenv("PGSQL_GOTEST") == "" {
		t.Skip("PGSQL_GOTEST is not set")
	}
	s, err := Open("gotest", opts...)
	if err != nil {
		t.Fatalf("Open(gotest): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// uniq makes table names that concurrent test runs on one server do not share.
func uniq(base string) string {
	return fmt.Sprintf("%s_%d_%d", base, os.Getpid(), time.Now().UnixNano()%1000000)
}

func mustQuery(t testing.TB, q interface {
	Query(string, ...any) (*Results, error)
}, sql string, args ...any) *Results {
	t.Helper()
	res, err := q.Query(sql, args...)
	if err != nil {
		t.Fatalf("Query(%q): %v", sql, err)
	}
	return res
}

func exec(t testing.TB, s *Session, sql string, args ...any) {
	t.Helper()
	if _, err := s.Exec(sql, args...); err != nil {
		t.Fatalf("Exec(%q): %v", sql, err)
	}
}

// one runs a query that returns one row and scans it.
func one(t testing.TB, s *Session, sql string, args []any, dest ...any) {
	t.Helper()
	res := mustQuery(t, s, sql, args...)
	defer res.Close()
	if !res.Next() {
		t.Fatalf("%q: no row", sql)
	}
	if err := res.Scan(dest...); err != nil {
		t.Fatalf("%q: Scan: %v", sql, err)
	}
	if res.Next() {
		t.Fatalf("%q: more than one row", sql)
	}
}

type stringerArg struct{ v string }

func (s stringerArg) String() string { return "str:" + s.v }

type myInt int16

func TestQueryParamsAndNull(t *testing.T) {
	s := openTest(t)
	var sum int64
	var txt string
	var isNull bool
	one(t, s, "SELECT $1::int + 1, $2::text, $3::text IS NULL", []any{41, "héllo wörld", nil}, &sum, &txt, &isNull)
	if sum != 42 || txt != "héllo wörld" || !isNull {
		t.Fatalf("got %d %q %v", sum, txt, isNull)
	}

	ts := time.Date(2024, 2, 29, 12, 34, 56, 123456000, time.FixedZone("x", 2*3600))
	var nilPtr *int
	seven := 7
	args := []any{
		int8(-8), int16(-16), int32(-32), int64(math.MinInt64), uint8(8), uint16(16), uint32(math.MaxUint32),
		uint64(math.MaxUint64), uint(5), float32(1.5), 0.1, true, false, ts, stringerArg{"x"},
		sql.NullString{String: "ns", Valid: true}, sql.NullInt64{}, nilPtr, &seven, myInt(12), []byte(nil),
		math.Inf(-1), math.NaN(),
	}
	res := mustQuery(t, s, `SELECT $1::int2, $2::int2, $3::int4, $4::int8, $5::int2, $6::int4, $7::int8,
		$8::numeric, $9::int8, $10::float4, $11::float8, $12::bool, $13::bool, $14::timestamptz, $15::text,
		$16::text, $17::int8 IS NULL, $18::int4 IS NULL, $19::int4, $20::int2, $21::bytea IS NULL,
		$22::float8, $23::float8`, args...)
	defer res.Close()
	if !res.Next() {
		t.Fatal("no row")
	}
	vals, err := res.Values()
	if err != nil {
		t.Fatal(err)
	}
	want := []any{int64(-8), int64(-16), int64(-32), int64(math.MinInt64), int64(8), int64(16), int64(math.MaxUint32),
		"18446744073709551615", int64(5), 1.5, 0.1, true, false, ts.UTC(), "str:x", "ns", true, true,
		int64(7), int64(12), true, math.Inf(-1)}
	for i, w := range want {
		if fmt.Sprint(vals[i]) != fmt.Sprint(w) {
			t.Errorf("$%d: got %#v, want %#v", i+1, vals[i], w)
		}
	}
	if f, ok := vals[22].(float64); !ok || !math.IsNaN(f) {
		t.Errorf("NaN: got %#v", vals[22])
	}

	// Arguments that cannot be sent are InterfaceErrors naming the argument.
	_, err = s.Query("SELECT $1", struct{}{})
	if CodeOf(err) != InterfaceError || !strings.Contains(err.Error(), "$1") {
		t.Errorf("struct argument: %v", err)
	}
	_, err = s.Query("SELECT $1::text", "a\x00b")
	if CodeOf(err) != InterfaceError {
		t.Errorf("zero byte in text: %v", err)
	}
	// Without arguments several statements may run (simple protocol): the last result is returned.
	var n int
	one(t, s, "SELECT 1; SELECT 2", nil, &n)
	if n != 2 {
		t.Errorf("multi-statement: %d", n)
	}
}

func TestScanKinds(t *testing.T) {
	s := openTest(t)
	res := mustQuery(t, s, `SELECT 1::int2, 2::int4, 3::int8, 4.5::float8, 1.25::float4, true, 'txt'::text,
		'\x00ff00'::bytea, '2024-01-02 03:04:05.678901+00'::timestamptz, '2024-01-02'::date,
		'2024-01-02 03:04:05'::timestamp, '{"a": 1}'::jsonb, 12.50::numeric, NULL::int, NULL::text,
		99::oid, 7::int4, 'x'::varchar, NULL::bytea, 5::int8, 6::int4`)
	defer res.Close()
	if err := res.Scan(new(int)); err == nil {
		t.Fatal("Scan before Next succeeded")
	}
	if !res.Next() {
		t.Fatal("no row")
	}
	var (
		i16   int16
		i32   int32
		i64   int64
		f64   float64
		f32   float32
		b     bool
		str   string
		by    []byte
		tstz  time.Time
		date  time.Time
		ts    time.Time
		js    json.RawMessage
		num   string
		nullp *int64
		nulls sql.NullString
		oid   uint32
		anyv  any
		vc    *string
		nullb []byte
		ni    sql.NullInt64
		mi    myInt
	)
	nullb = []byte("not nil")
	if err := res.Scan(&i16, &i32, &i64, &f64, &f32, &b, &str, &by, &tstz, &date, &ts, &js, &num, &nullp, &nulls,
		&oid, &anyv, &vc, &nullb, &ni, &mi); err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	check("int2", i16, 1)
	check("int4", i32, 2)
	check("int8", i64, 3)
	check("float8", f64, 4.5)
	check("float4", f32, 1.25)
	check("bool", b, true)
	check("text", str, "txt")
	check("bytea", by, []byte{0, 255, 0})
	check("timestamptz", tstz, time.Date(2024, 1, 2, 3, 4, 5, 678901000, time.UTC))
	check("date", date, time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC))
	check("timestamp", ts, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	check("jsonb", string(js), `{"a": 1}`)
	check("numeric", num, "12.50")
	if nullp != nil {
		t.Errorf("NULL into **int64: %v", *nullp)
	}
	check("NULL into sql.NullString", nulls.Valid, false)
	check("oid", oid, 99)
	check("int4 into *any", anyv, int64(7))
	if vc == nil || *vc != "x" {
		t.Errorf("varchar into **string: %v", vc)
	}
	if nullb != nil {
		t.Errorf("NULL bytea into *[]byte: %v", nullb)
	}
	check("int8 into sql.NullInt64", ni, sql.NullInt64{Int64: 5, Valid: true})
	check("int4 into named int16", mi, 6)

	// Conversions that cannot be done.
	row := func(sql string, dest any) error {
		r := mustQuery(t, s, sql)
		defer r.Close()
		r.Next()
		return r.Scan(dest)
	}
	if err := row("SELECT NULL::int", new(int64)); !IsNull(err) {
		t.Errorf("NULL into *int64: %v", err)
	}
	if err := row("SELECT 'abc'::text", new(int64)); CodeOf(err) != TypeMismatch {
		t.Errorf("text into *int64: %v", err)
	}
	if err := row("SELECT 40000::int4", new(int16)); CodeOf(err) != ValueOverflow {
		t.Errorf("40000 into *int16: %v", err)
	}
	if err := row("SELECT true", new(int)); CodeOf(err) != TypeMismatch {
		t.Errorf("bool into *int: %v", err)
	}
	if err := row("SELECT 1", new(time.Time)); CodeOf(err) != TypeMismatch {
		t.Errorf("int into *time.Time: %v", err)
	}
	if err := row("SELECT 'infinity'::timestamptz", new(time.Time)); CodeOf(err) != ValueOverflow {
		t.Errorf("infinity into *time.Time: %v", err)
	}
	if err := row("SELECT 1", new(struct{})); CodeOf(err) != TypeMismatch {
		t.Errorf("into *struct{}: %v", err)
	}
	if err := row("SELECT 1", 5); CodeOf(err) != InterfaceError {
		t.Errorf("into a non-pointer: %v", err)
	}
	r := mustQuery(t, s, "SELECT 1, 2")
	r.Next()
	if err := r.Scan(new(int)); err == nil {
		t.Error("Scan with too few destinations succeeded")
	}
	var a int
	if err := r.Scan(&a, nil); err != nil || a != 1 {
		t.Errorf("Scan with a nil destination: %v %d", err, a)
	}
	r.Close()
	if err := r.Scan(&a, nil); err == nil {
		t.Error("Scan after Close succeeded")
	}
	if r.Next() {
		t.Error("Next after Close")
	}
}

func TestValuesAndMaps(t *testing.T) {
	s := openTest(t)
	res := mustQuery(t, s, `SELECT i AS id, 'n' || i AS name, i * 1.5::float8 AS f, (i % 2 = 0) AS even,
		CASE WHEN i = 2 THEN NULL ELSE i::numeric / 4 END AS q, '\xdead'::bytea AS b,
		json_build_object('i', i) AS j, 'infinity'::timestamptz AS inf, '-infinity'::date AS ninf,
		'1999-12-31 23:59:59.5'::timestamp AS ts, interval '1 day' AS iv
		FROM generate_series(1, 3) AS i`)
	defer res.Close()
	if res.Rows() != 3 || len(res.Columns()) != 11 {
		t.Fatalf("rows %d columns %d", res.Rows(), len(res.Columns()))
	}
	wantCols := []Column{{"id", OIDInt4}, {"name", OIDText}, {"f", OIDFloat8}, {"even", OIDBool},
		{"q", OIDNumeric}, {"b", OIDBytea}, {"j", OIDJSON}, {"inf", OIDTimestampTZ}, {"ninf", OIDDate},
		{"ts", OIDTimestamp}, {"iv", 1186}}
	for i, c := range res.Columns() {
		if c != wantCols[i] {
			t.Errorf("column %d: %+v, want %+v", i, c, wantCols[i])
		}
	}
	if _, err := res.Values(); err == nil {
		t.Error("Values before Next succeeded")
	}
	res.Next()
	res.Next() // row 2 (i = 2)
	vals, err := res.Values()
	if err != nil {
		t.Fatal(err)
	}
	want := []any{int64(2), "n2", 3.0, true, nil, []byte{0xde, 0xad}, json.RawMessage(`{"i" : 2}`),
		"infinity", "-infinity", time.Date(1999, 12, 31, 23, 59, 59, 500000000, time.UTC), "1 day"}
	for i := range want {
		if fmt.Sprintf("%#v", vals[i]) != fmt.Sprintf("%#v", want[i]) {
			t.Errorf("Values[%d] = %#v, want %#v", i, vals[i], want[i])
		}
	}
	maps, err := res.Maps()
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 3 || maps[0]["id"] != int64(1) || maps[2]["name"] != "n3" || maps[0]["q"] != "0.25000000000000000000" || maps[1]["q"] != nil {
		t.Errorf("Maps: %v", maps)
	}
	// Maps leaves the cursor where it was.
	var id int
	var rest [10]any
	dest := []any{&id}
	for i := range rest {
		dest = append(dest, &rest[i])
	}
	if err := res.Scan(dest...); err != nil || id != 2 {
		t.Errorf("after Maps, current row id %d (%v)", id, err)
	}
	m, err := res.Map()
	if err != nil || m["name"] != "n2" {
		t.Errorf("Map: %v %v", m, err)
	}
	if _, err := res.AsDict(); CodeOf(err) != InterfaceError {
		t.Errorf("AsDict of 3 rows: %v", err)
	}
	js, err := res.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var decoded []map[string]any
	if err := json.Unmarshal(js, &decoded); err != nil || len(decoded) != 3 || decoded[1]["id"] != 2.0 {
		t.Errorf("JSON: %s (%v)", js, err)
	}
	if txt, ok := res.Text(0, 1); !ok || txt != "n1" {
		t.Errorf("Text(0, 1) = %q %v", txt, ok)
	}
	if _, ok := res.Text(1, 4); ok {
		t.Error("Text of NULL ok")
	}
	res.Seek(0)
	n := 0
	for res.Next() {
		n++
	}
	if n != 3 {
		t.Errorf("after Seek(0), %d rows", n)
	}

	one1 := mustQuery(t, s, "SELECT 1 AS a, 'x' AS b")
	defer one1.Close()
	d, err := one1.AsDict()
	if err != nil || d["a"] != int64(1) || d["b"] != "x" {
		t.Errorf("AsDict: %v %v", d, err)
	}
}

func TestBytesRoundTrip(t *testing.T) {
	s := openTest(t)
	table := uniq("gotest_bytes")
	exec(t, s, "CREATE TABLE "+table+" (id int PRIMARY KEY, b bytea)")
	defer exec(t, s, "DROP TABLE "+table)

	payloads := [][]byte{{0}, {0, 1, 2, 0, 255, 0}, {}, bytes.Repeat([]byte{0, 0x5c, 'x', 0xff}, 1000)}
	big := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(big)
	payloads = append(payloads, big)
	for i, p := range payloads {
		n, err := s.Exec("INSERT INTO "+table+" VALUES ($1, $2)", i, p)
		if err != nil || n != 1 {
			t.Fatalf("insert %d: %d %v", i, n, err)
		}
	}
	if _, err := s.Exec("INSERT INTO "+table+" VALUES ($1, $2)", 100, []byte(nil)); err != nil {
		t.Fatal(err)
	}
	check := func(res *Results, how string) {
		t.Helper()
		defer res.Close()
		for res.Next() {
			var id int
			var b []byte
			var l int
			if err := res.Scan(&id, &b, &l); err != nil {
				t.Fatal(err)
			}
			if id == 100 {
				if b != nil || l != -1 {
					t.Errorf("%s: NULL bytea read as %v (%d)", how, b, l)
				}
				continue
			}
			if !bytes.Equal(b, payloads[id]) || l != len(payloads[id]) {
				t.Errorf("%s: payload %d: %d bytes (server says %d), want %d", how, id, len(b), l, len(payloads[id]))
			}
		}
	}
	check(mustQuery(t, s, "SELECT id, b, coalesce(octet_length(b), -1) FROM "+table+" ORDER BY id"), "hex")
	// The escape output format is decoded by the library (pgsess_results_get_bytes).
	err := s.InTx(func(tx *Tx) error {
		if _, err := tx.Exec("SET LOCAL bytea_output = 'escape'"); err != nil {
			return err
		}
		check(mustQuery(t, tx, "SELECT id, b, coalesce(octet_length(b), -1) FROM "+table+" ORDER BY id"), "escape")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A binary parameter echoed back.
	var echo []byte
	one(t, s, "SELECT $1::bytea", []any{[]byte{0, 'a', 0}}, &echo)
	if !bytes.Equal(echo, []byte{0, 'a', 0}) {
		t.Errorf("echo: %v", echo)
	}
	// Mixed binary and text parameters, in a transaction too.
	err = s.InTx(func(tx *Tx) error {
		res, err := tx.Query("SELECT octet_length($1::bytea), $2::int + 1, $3::text IS NULL", []byte{0, 0, 0}, 1, nil)
		if err != nil {
			return err
		}
		defer res.Close()
		res.Next()
		var l, n int
		var isNull bool
		if err := res.Scan(&l, &n, &isNull); err != nil {
			return err
		}
		if l != 3 || n != 2 || !isNull {
			t.Errorf("mixed parameters: %d %d %v", l, n, isNull)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	s := openTest(t)
	_, err := s.Query("SELECT 1 / $1::int", 0)
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("division by zero: %T %v", err, err)
	}
	if pe.Code != DataError || pe.Category != DataError || pe.SQLState != "22012" || !IsDataError(err) {
		t.Errorf("division by zero: %+v", pe)
	}
	if !strings.Contains(pe.Message, "division by zero") || !strings.Contains(err.Error(), "SQLSTATE 22012") ||
		!strings.Contains(err.Error(), "PGSESS_DATA_ERROR") {
		t.Errorf("message: %q / %q", pe.Message, err.Error())
	}
	if !errors.Is(err, &Error{Code: DataError}) || !errors.Is(err, &Error{Code: DataError, SQLState: "22012"}) ||
		errors.Is(err, &Error{Code: IntegrityError}) {
		t.Error("errors.Is by code")
	}
	wrapped := fmt.Errorf("outer: %w", err)
	if SQLStateOf(wrapped) != "22012" || CodeOf(wrapped) != DataError {
		t.Error("wrapped error")
	}

	table := uniq("gotest_uniq")
	exec(t, s, "CREATE TABLE "+table+" (id int PRIMARY KEY)")
	defer exec(t, s, "DROP TABLE "+table)
	exec(t, s, "INSERT INTO "+table+" VALUES (1)")
	_, err = s.Exec("INSERT INTO "+table+" VALUES ($1)", 1)
	if !errors.As(err, &pe) || pe.Code != IntegrityError || pe.SQLState != "23505" || !IsIntegrityError(err) ||
		!strings.Contains(pe.Detail, "already exists") {
		t.Errorf("unique violation: %+v", pe)
	}

	_, err = s.Query("SELEC 1")
	if !errors.As(err, &pe) || pe.Code != ProgrammingError || pe.SQLState != "42601" || !IsProgrammingError(err) {
		t.Errorf("syntax error: %v", err)
	}
	_, err = s.Query("SELECT * FROM no_such_table_gotest")
	if SQLStateOf(err) != "42P01" {
		t.Errorf("undefined table: %v", err)
	}
	_, err = s.Query("DO $$BEGIN RAISE EXCEPTION 'boom' USING HINT = 'try again', DETAIL = 'the detail'; END$$")
	if !errors.As(err, &pe) || pe.Code != InternalError || pe.SQLState != "P0001" || pe.Hint != "try again" ||
		pe.Detail != "the detail" || pe.Message != "boom" {
		t.Errorf("raise exception: %+v", pe)
	}
	if !strings.Contains(pe.Context, "PL/pgSQL function") || !strings.Contains(err.Error(), "; context: PL/pgSQL") {
		t.Errorf("raise exception's context: %q in %q", pe.Context, err.Error())
	}
	// SET LOCAL, so that the setting does not stay on a pooled connection.
	err = s.InTx(func(tx *Tx) error {
		if _, err := tx.Exec("SET LOCAL statement_timeout = 50"); err != nil {
			t.Fatal(err)
		}
		_, err := tx.Exec("SELECT pg_sleep(2)")
		return err
	})
	if !IsQueryCanceled(err) || !IsOperational(err) || SQLStateOf(err) != "57014" {
		t.Errorf("statement timeout: %v", err)
	}

	// Configuration errors.
	_, err = Open("no_such_gotest_variable")
	if !IsConfigError(err) || !strings.Contains(err.Error(), "PGSQL_NO_SUCH_GOTEST_VARIABLE") {
		t.Errorf("missing variable: %v", err)
	}
	if !errors.As(err, &pe) || pe.Category != InterfaceError {
		t.Errorf("config error category: %+v", pe)
	}
	_, err = Open("x", WithDBURL("mysql://nope"))
	if !IsConfigError(err) {
		t.Errorf("bad URL: %v", err)
	}
	_, err = Open("gotest", WithPoolMaxSize(0))
	if !IsConfigError(err) {
		t.Errorf("pool size 0: %v", err)
	}
	_, err = Open("gotest", WithCheckoutTimeout(-time.Second))
	if !IsConfigError(err) {
		t.Errorf("negative timeout: %v", err)
	}
	// WithDBURL wins over the environment.
	s3, err := Open("no_such_gotest_variable", WithDBURL(os.Getenv("PGSQL_GOTEST")))
	if err != nil {
		t.Fatalf("WithDBURL: %v", err)
	}
	s3.Close()
	s3.Close() // idempotent
	if _, err := s3.Query("SELECT 1"); CodeOf(err) != InterfaceError {
		t.Errorf("query on a closed session: %v", err)
	}

}

// Every code's name and category come from the library (pgsess_code_name, pgsess_code_category);
// the errors the binding raises itself carry that category too.
func TestCodeCategories(t *testing.T) {
	want := map[Code]Code{
		OK: OK, InterfaceError: InterfaceError, ConfigError: InterfaceError,
		OperationalError: OperationalError, PoolExhausted: OperationalError,
		QueryCanceled: OperationalError, TransactionRollback: OperationalError,
		ProgrammingError: ProgrammingError, IntegrityError: IntegrityError, DataError: DataError,
		InternalError: InternalError, NotSupportedError: NotSupportedError, DatabaseError: DatabaseError,
		NullValue: InterfaceError, TypeMismatch: InterfaceError, OutOfRange: InterfaceError,
		ValueOverflow: DataError, Panic: InternalError,
	}
	for c := OK; c <= Panic; c++ {
		cat, ok := want[c]
		if !ok {
			t.Errorf("code %d has no constant", int(c))
			continue
		}
		if got := c.Category(); got != cat {
			t.Errorf("%s.Category() = %s, want %s", c, got, cat)
		}
		if c.String() == "PGSESS_UNKNOWN_CODE" || !strings.HasPrefix(c.String(), "PGSESS_") {
			t.Errorf("code %d: name %q", int(c), c)
		}
	}
	if Panic.String() != "PGSESS_PANIC" || PoolExhausted.String() != "PGSESS_POOL_EXHAUSTED" {
		t.Errorf("names: %s %s", Panic, PoolExhausted)
	}
	past := Panic + 1
	if past.String() != "PGSESS_UNKNOWN_CODE" || past.Category() != InterfaceError {
		t.Errorf("past the last code: %s, category %s", past, past.Category())
	}
	if e := newError(PoolExhausted, "x"); e.Category != OperationalError || !IsOperational(e) {
		t.Errorf("binding's own error: %+v", e)
	}
	if e := newError(Panic, "x"); e.Category != InternalError || !errors.Is(e, &Error{Code: Panic}) {
		t.Errorf("panic error: %+v", e)
	}
}

func TestTransactions(t *testing.T) {
	s := openTest(t)
	table := uniq("gotest_tx")
	exec(t, s, "CREATE TABLE "+table+" (id int PRIMARY KEY, v text)")
	defer exec(t, s, "DROP TABLE "+table)
	count := func() int {
		var n int
		one(t, s, "SELECT count(*) FROM "+table, nil, &n)
		return n
	}

	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO "+table+" VALUES ($1, $2)", 1, "one"); err != nil {
		t.Fatal(err)
	}
	res := mustQuery(t, tx, "SELECT v FROM "+table+" WHERE id = $1", 1)
	if !res.Next() {
		t.Fatal("own insert not visible inside the transaction")
	}
	res.Close()
	if count() != 0 {
		t.Error("uncommitted row visible outside")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if count() != 1 {
		t.Error("committed row not visible")
	}
	if err := tx.Commit(); err != ErrTxDone {
		t.Errorf("second commit: %v", err)
	}
	if _, err := tx.Query("SELECT 1"); err != ErrTxDone {
		t.Errorf("query after commit: %v", err)
	}

	tx, _ = s.Begin()
	tx.Exec("INSERT INTO " + table + " VALUES (2, 'two')")
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if count() != 1 {
		t.Error("rolled-back row visible")
	}
	if err := tx.Rollback(); err != ErrTxDone {
		t.Errorf("second rollback: %v", err)
	}

	// InTx commits on nil, rolls back on error and on panic.
	if err := s.InTx(func(tx *Tx) error {
		_, err := tx.Exec("INSERT INTO " + table + " VALUES (3, 'three')")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sentinel := errors.New("sentinel")
	if err := s.InTx(func(tx *Tx) error {
		tx.Exec("INSERT INTO " + table + " VALUES (4, 'four')")
		return sentinel
	}); err != sentinel {
		t.Errorf("InTx error: %v", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "oops" {
				t.Errorf("InTx panic: %v", r)
			}
		}()
		s.InTx(func(tx *Tx) error {
			tx.Exec("INSERT INTO " + table + " VALUES (5, 'five')")
			panic("oops")
		})
	}()
	if count() != 2 {
		t.Errorf("after InTx: %d rows, want 2", count())
	}

	// A failed statement turns the commit into a rollback.
	err = s.InTx(func(tx *Tx) error {
		tx.Exec("INSERT INTO " + table + " VALUES (6, 'six')")
		if _, err := tx.Exec("INSERT INTO " + table + " VALUES (1, 'dup')"); !IsIntegrityError(err) {
			t.Errorf("duplicate inside tx: %v", err)
		}
		_, err := tx.Exec("SELECT 1")
		if SQLStateOf(err) != "25P02" {
			t.Errorf("statement after failure: %v", err)
		}
		return nil
	})
	if !IsTransactionRollback(err) {
		t.Errorf("commit after failure: %v", err)
	}
	if count() != 2 {
		t.Errorf("after failed transaction: %d rows, want 2", count())
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(4))
	const goroutines, perG = 16, 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	pids := map[int32]bool{}
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perG; i++ {
				n := g*10000 + i
				tag := fmt.Sprintf("g%d-i%d", g, i)
				res, err := s.Query("SELECT $1::int8 * 2, $2::text || '!', pg_backend_pid()", n, tag)
				if err != nil {
					errs <- fmt.Errorf("goroutine %d query %d: %w", g, i, err)
					return
				}
				var got int64
				var txt string
				var pid int32
				ok := res.Next()
				err = res.Scan(&got, &txt, &pid)
				res.Close()
				if !ok || err != nil || got != int64(2*n) || txt != tag+"!" || pid != res.BackendPID() {
					errs <- fmt.Errorf("goroutine %d query %d: got %d %q pid %d/%d (%v)", g, i, got, txt, pid, res.BackendPID(), err)
					return
				}
				mu.Lock()
				pids[pid] = true
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(pids) > 4 || len(pids) == 0 {
		t.Errorf("%d distinct backends for a pool of 4", len(pids))
	}
	t.Logf("%d queries on %d backends", goroutines*perG, len(pids))
}

func TestPoolExhausted(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(1), WithCheckoutTimeout(200*time.Millisecond))
	held := mustQuery(t, s, "SELECT 1")
	start := time.Now()
	_, err := s.Query("SELECT 2")
	waited := time.Since(start)
	if !IsPoolExhausted(err) || !IsOperational(err) {
		t.Fatalf("second query with the only connection held: %v", err)
	}
	var pe *Error
	errors.As(err, &pe)
	if pe.SQLState != "" || !strings.Contains(pe.Message, "exhausted") || !strings.Contains(pe.Message, "1 results not yet freed") {
		t.Errorf("exhaustion error: %+v", pe)
	}
	if waited < 190*time.Millisecond || waited > 3*time.Second {
		t.Errorf("waited %v for a 200 ms checkout timeout", waited)
	}
	// The pool's statistics say why.
	st, err := s.Stats()
	if err != nil || st.MaxSize != 1 || st.InUse != 1 || st.ResultsOutstanding != 1 || st.CheckoutTimeouts < 1 {
		t.Errorf("Stats with the only connection held: %+v, %v", st, err)
	}
	// A transaction cannot start either, and one waiting statement is woken by Close.
	if _, err := s.Begin(); !IsPoolExhausted(err) {
		t.Errorf("Begin with the pool exhausted: %v", err)
	}
	done := make(chan error)
	s2 := openTest(t, WithPoolMaxSize(1), WithCheckoutTimeout(3*time.Second))
	held2 := mustQuery(t, s2, "SELECT 1")
	go func() {
		res, err := s2.Query("SELECT 3")
		if err == nil {
			res.Close()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start = time.Now()
	held2.Close()
	if err := <-done; err != nil {
		t.Errorf("waiting statement after Close: %v", err)
	}
	if w := time.Since(start); w > time.Second {
		t.Errorf("waiter woke %v after Close", w)
	}

	held.Close()
	held.Close() // idempotent
	var n int
	one(t, s, "SELECT 4", nil, &n)
	if n != 4 {
		t.Error(n)
	}
}

// Tx.Callproc runs in the transaction: what the function does is rolled back with it.
func TestTxCallproc(t *testing.T) {
	s := openTest(t)
	table := uniq("gotest_txcall")
	fn := table + "_put"
	exec(t, s, "CREATE TABLE "+table+" (b bytea)")
	defer exec(t, s, "DROP TABLE "+table)
	exec(t, s, "CREATE FUNCTION "+fn+"(v bytea) RETURNS int LANGUAGE sql AS 'INSERT INTO "+table+
		" VALUES (v) RETURNING octet_length(b)'")
	defer exec(t, s, "DROP FUNCTION "+fn+"(bytea)")
	count := func(q interface {
		Query(string, ...any) (*Results, error)
	}) int {
		t.Helper()
		res := mustQuery(t, q, "SELECT count(*) FROM "+table)
		defer res.Close()
		var n int
		if !res.Next() || res.Scan(&n) != nil {
			t.Fatal("count")
		}
		return n
	}
	call := func(tx *Tx, arg any) int {
		t.Helper()
		res, err := tx.Callproc(fn, arg)
		if err != nil {
			t.Fatalf("Callproc(%v): %v", arg, err)
		}
		defer res.Close()
		var n int
		if !res.Next() || res.Scan(&n) != nil {
			t.Fatal("no result")
		}
		return n
	}

	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if n := call(tx, []byte{0, 0xff}); n != 2 { // binary: pgsess_tx_callproc_params
		t.Errorf("binary argument: %d bytes", n)
	}
	if n := call(tx, `\x00ff00`); n != 3 { // text: pgsess_tx_callproc
		t.Errorf("text argument: %d bytes", n)
	}
	if n := count(tx); n != 2 {
		t.Errorf("inside the transaction: %d rows", n)
	}
	if n := count(s); n != 0 {
		t.Errorf("outside the open transaction: %d rows", n)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Callproc(fn, []byte{1}); !errors.Is(err, ErrTxDone) {
		t.Errorf("after Rollback: %v", err)
	}
	if n := count(s); n != 0 {
		t.Errorf("after Rollback: %d rows", n)
	}

	err = s.InTx(func(tx *Tx) error {
		call(tx, []byte{0, 0xff})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var hexs string
	one(t, s, "SELECT encode(b, 'hex') FROM "+table, nil, &hexs)
	if hexs != "00ff" {
		t.Errorf("after commit: %q", hexs)
	}
}

// Session.Notices gives each notice whole: its DETAIL and HINT lines stay with it, whatever the
// server's lc_messages.
func TestNoticesWhole(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(1))
	if n := s.Notices(); len(n) != 0 {
		t.Errorf("a new session has notices: %q", n)
	}
	res := mustQuery(t, s, "DO $$ BEGIN RAISE NOTICE 'x' USING DETAIL = 'd', HINT = 'h'; RAISE WARNING 'w'; END $$")
	notes := res.Notices()
	res.Close()
	const whole = "NOTICE:  x\nDETAIL:  d\nHINT:  h\n"
	if len(notes) != 2 || notes[0] != whole {
		t.Errorf("results notices: %q", notes)
	}
	sn := s.Notices()
	if len(sn) != 2 || sn[0] != whole || sn[1] != "WARNING:  w\n" {
		t.Errorf("session notices: %q", sn)
	}

	// Translated severity words: still one element per notice. Skipped where the server cannot
	// switch (no such locale, or not allowed).
	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("SET LOCAL lc_messages = 'de_DE.UTF-8'"); err != nil {
		t.Logf("lc_messages cannot be set here, translation not checked: %v", err)
		return
	}
	if _, err := tx.Exec("DO $$ BEGIN RAISE NOTICE 'x' USING DETAIL = 'd', HINT = 'h'; END $$"); err != nil {
		t.Fatal(err)
	}
	sn = s.Notices()
	if len(sn) != 3 || !strings.Contains(sn[2], "x\n") || !strings.Contains(sn[2], "d\n") ||
		!strings.Contains(sn[2], "h\n") {
		t.Errorf("translated notices: %q", sn)
	}
}

func TestCallproc(t *testing.T) {
	s := openTest(t)
	fn := uniq("gotest_add")
	exec(t, s, "CREATE FUNCTION "+fn+"(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b'")
	defer exec(t, s, "DROP FUNCTION "+fn+"(int, int)")
	res, err := s.Callproc(fn, 2, 40)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if !res.Next() || res.Scan(&n) != nil || n != 42 {
		t.Errorf("%s(2, 40) = %d", fn, n)
	}
	res.Close()

	res, err = s.Callproc("pg_catalog.regexp_split_to_table", "a,b,c", ",")
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows() != 3 || res.SQL() != "pg_catalog.regexp_split_to_table" {
		t.Errorf("regexp_split_to_table: %d rows, SQL %q", res.Rows(), res.SQL())
	}
	res.Close()

	// []byte arguments travel as binary parameters (pgsess_callproc_params): a zero byte and
	// 0xff arrive as bytes.
	var hexs string
	res, err = s.Callproc("encode", []byte{0, 1, 0xff}, "hex")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Next() || res.Scan(&hexs) != nil || hexs != "0001ff" {
		t.Errorf("encode(bytea) = %q", hexs)
	}
	res.Close()
	octets := uniq("gotest_octets")
	exec(t, s, "CREATE FUNCTION "+octets+"(b bytea) RETURNS int LANGUAGE sql AS 'SELECT octet_length(b)'")
	defer exec(t, s, "DROP FUNCTION "+octets+"(bytea)")
	res, err = s.Callproc(octets, []byte{0, 0xff})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Next() || res.Scan(&n) != nil || n != 2 {
		t.Errorf("octet_length of 00ff = %d", n)
	}
	res.Close()

	var lower *string
	res, err = s.Callproc("lower", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Next() || res.Scan(&lower) != nil || lower != nil {
		t.Errorf("lower(NULL) = %v", lower)
	}
	res.Close()

	// The name is quoted, never spliced: upper case is another function, injection is harmless.
	if _, err := s.Callproc("LOWER", "x"); SQLStateOf(err) != "42883" {
		t.Errorf("LOWER: %v", err)
	}
	if _, err := s.Callproc("lower(1); DROP TABLE x; --"); SQLStateOf(err) != "42883" {
		t.Errorf("injection attempt: %v", err)
	}
}

func TestMetadataAndNotices(t *testing.T) {
	s := openTest(t)
	table := uniq("gotest_meta")
	res := mustQuery(t, s, "CREATE TABLE "+table+" (id int)")
	if res.Status() != "CREATE TABLE" || res.Count() != -1 || res.RowsAffected() != 0 || res.Rows() != 0 ||
		len(res.Columns()) != 0 || res.Next() {
		t.Errorf("CREATE TABLE: %q %d %d", res.Status(), res.Count(), res.RowsAffected())
	}
	res.Close()
	defer exec(t, s, "DROP TABLE "+table)
	res = mustQuery(t, s, "INSERT INTO "+table+" SELECT generate_series(1, $1::int)", 5)
	res.Close() // metadata stays readable after Close
	if res.Status() != "INSERT 0 5" || res.RowsAffected() != 5 || res.Count() != 5 || res.BackendPID() == 0 {
		t.Errorf("INSERT: %q %d %d pid %d", res.Status(), res.RowsAffected(), res.Count(), res.BackendPID())
	}
	if n, err := s.Exec("UPDATE "+table+" SET id = id + 1 WHERE id > $1", 2); err != nil || n != 3 {
		t.Errorf("UPDATE: %d %v", n, err)
	}
	res = mustQuery(t, s, "DO $$BEGIN RAISE NOTICE 'hello %', 'gotest'; RAISE WARNING 'careful'; END$$")
	notes := res.Notices()
	res.Close()
	if len(notes) != 2 || notes[0] != "NOTICE:  hello gotest\n" || notes[1] != "WARNING:  careful\n" {
		t.Errorf("results notices: %q", notes)
	}
	sn := s.Notices()
	if len(sn) < 2 || sn[len(sn)-2] != "NOTICE:  hello gotest\n" || sn[len(sn)-1] != "WARNING:  careful\n" {
		t.Errorf("session notices: %q", sn)
	}
	if s.BackendPID() == 0 || s.Encoding() != "UTF8" || len(s.PoolID()) == 0 || !s.Validate() {
		t.Errorf("session: pid %d encoding %q pool %q", s.BackendPID(), s.Encoding(), s.PoolID())
	}
	if err := s.SetEncoding("utf-8"); err != nil {
		t.Error(err)
	}
	if err := s.SetEncoding("LATIN1"); CodeOf(err) != NotSupportedError {
		t.Errorf("LATIN1: %v", err)
	}
	if Version() == "" {
		t.Error("no version")
	}

	// Results stay valid after their session is closed.
	s2, err := Open("gotest")
	if err != nil {
		t.Fatal(err)
	}
	r := mustQuery(t, s2, "SELECT 'still here'")
	s2.Close()
	var v string
	if !r.Next() || r.Scan(&v) != nil || v != "still here" {
		t.Errorf("results after session close: %q", v)
	}
	r.Close()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestLeakedResultsAreReported(t *testing.T) {
	// A pool of its own (the idle TTL makes it distinct): the leaked results keep its only
	// connection for the rest of the process.
	s := openTest(t, WithPoolMaxSize(1), WithPoolIdleTTL(17*time.Second), WithCheckoutTimeout(200*time.Millisecond))
	var buf syncBuffer
	log.SetOutput(&buf)
	defer log.SetOutput(os.Stderr)
	// A closed one is never reported.
	func() {
		res := mustQuery(t, s, "SELECT 'closed properly'")
		res.Close()
	}()
	func() {
		res := mustQuery(t, s, "SELECT 'leaked on purpose' AS gotest_leak")
		_ = res.Rows()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(buf.String(), "leaked on purpose") {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	out := buf.String()
	if !strings.Contains(out, "LEAK") || !strings.Contains(out, "SELECT 'leaked on purpose' AS gotest_leak") {
		t.Errorf("no leak report: %q", out)
	}
	if strings.Contains(out, "closed properly") {
		t.Errorf("closed results reported: %q", out)
	}
	// Reported, not freed behind the caller's back: the connection is still held.
	_, err := s.Query("SELECT 1")
	if !IsPoolExhausted(err) || !strings.Contains(err.Error(), "1 results not yet freed") {
		t.Errorf("after the leak report: %v", err)
	}
}

const rowCostSQL = `SELECT i, i * 2 AS j, 'row ' || i AS s, i / 3.0::float8 AS f, i % 2 = 0 AS b
	FROM generate_series(1, 200000) AS i`

// readAll reads every row through Next/Scan and returns a checksum.
func readAll(tb testing.TB, res *Results) int64 {
	var (
		i, j int64
		s    string
		f    float64
		b    bool
		sum  int64
	)
	res.Seek(0)
	for res.Next() {
		if err := res.Scan(&i, &j, &s, &f, &b); err != nil {
			tb.Fatal(err)
		}
		sum += i + j + int64(len(s))
		if b {
			sum++
		}
	}
	return sum
}

// TestRowCost reads a 200,000 x 5 result through Next/Scan and logs the cost per row, and the
// cost of Next alone (one cgo call per block of rows, pgsess_results_cells).
func TestRowCost(t *testing.T) {
	s := openTest(t)
	res := mustQuery(t, s, rowCostSQL)
	defer res.Close()
	if res.Rows() != 200000 {
		t.Fatalf("%d rows", res.Rows())
	}
	var want int64
	for i := int64(1); i <= 200000; i++ {
		want += 3*i + int64(len(fmt.Sprint("row ", i)))
		if i%2 == 0 {
			want++
		}
	}
	best, bestNext := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for k := 0; k < 5; k++ {
		start := time.Now()
		if got := readAll(t, res); got != want {
			t.Fatalf("checksum %d, want %d", got, want)
		}
		if d := time.Since(start); d < best {
			best = d
		}
		start = time.Now()
		res.Seek(0)
		for res.Next() {
		}
		if d := time.Since(start); d < bestNext {
			bestNext = d
		}
	}
	note := ""
	if raceEnabled {
		note = " (race detector on: not representative)"
	}
	fmt.Printf("go row cost: Next+Scan(int8,int8,text,float8,bool) %.1f ns/row; Next alone (one cgo call per block of rows) %.1f ns/row%s\n",
		float64(best.Nanoseconds())/200000, float64(bestNext.Nanoseconds())/200000, note)
}

// BenchmarkRowCGOCalls: ns/row of Next+Scan over the 200,000 x 5 result.
func BenchmarkRowCGOCalls(b *testing.B) {
	s := openTest(b)
	res := mustQuery(b, s, rowCostSQL)
	defer res.Close()
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n++ {
		readAll(b, res)
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/200000, "ns/row")
}

// BenchmarkRowNextOnly: ns/row of Next alone (one cgo call per block of rows).
func BenchmarkRowNextOnly(b *testing.B) {
	s := openTest(b)
	res := mustQuery(b, s, rowCostSQL)
	defer res.Close()
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n++ {
		res.Seek(0)
		for res.Next() {
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/200000, "ns/row")
}

// BenchmarkRowValues: ns/row of Next+Values.
func BenchmarkRowValues(b *testing.B) {
	s := openTest(b)
	res := mustQuery(b, s, rowCostSQL)
	defer res.Close()
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n++ {
		res.Seek(0)
		for res.Next() {
			if _, err := res.Values(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/200000, "ns/row")
}

// scalar returns the first value of sql on q as text ("NULL" for SQL NULL).
func scalar(t testing.TB, q interface {
	Query(string, ...any) (*Results, error)
}, query string, args ...any) string {
	t.Helper()
	res := mustQuery(t, q, query, args...)
	defer res.Close()
	if !res.Next() {
		t.Fatalf("%q: no row", query)
	}
	var v sql.NullString
	if err := res.Scan(&v); err != nil {
		t.Fatalf("%q: Scan: %v", query, err)
	}
	if !v.Valid {
		return "NULL"
	}
	return v.String
}

// backendOf runs SELECT pg_backend_pid() on s and checks it against the results' backend pid.
func backendOf(t testing.TB, s *Session) int32 {
	t.Helper()
	res := mustQuery(t, s, "SELECT pg_backend_pid()")
	defer res.Close()
	var pid int32
	if !res.Next() || res.Scan(&pid) != nil || pid != res.BackendPID() || pid == 0 {
		t.Fatalf("pg_backend_pid() %d, results' backend %d", pid, res.BackendPID())
	}
	return pid
}

func mustPin(t testing.TB, s *Session) *Session {
	t.Helper()
	p, err := s.Pin()
	if err != nil {
		t.Fatalf("Pin: %v", err)
	}
	return p
}

// A pinned session keeps SET, a temporary table and lastval() from one call to the next, on one
// backend; the pooled session it came from sees none of it.
func TestPinnedSessionKeepsState(t *testing.T) {
	s := openTest(t)
	defaultPath := scalar(t, s, "SHOW search_path")
	p := mustPin(t, s)
	defer p.Close()
	if !p.IsPinned() || s.IsPinned() || p.PoolID() != s.PoolID() || p.Name() != s.Name() {
		t.Errorf("pinned %v, base pinned %v, pools %q %q", p.IsPinned(), s.IsPinned(), p.PoolID(), s.PoolID())
	}
	pid := backendOf(t, p)
	if _, err := p.Exec("SET search_path = pgsess_go_schema, public"); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, p, "SHOW search_path"); got != "pgsess_go_schema, public" {
		t.Errorf("search_path on the pinned session: %q", got)
	}
	if _, err := p.Exec("CREATE TEMP TABLE go_pinned (id serial, v int)"); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Exec("INSERT INTO go_pinned (v) VALUES ($1), ($2)", 7, 8); err != nil || n != 2 {
		t.Fatalf("insert into the temp table: %d %v", n, err)
	}
	if got := scalar(t, p, "SELECT lastval()"); got != "2" {
		t.Errorf("lastval(): %q", got)
	}
	if got := scalar(t, p, "SELECT sum(v) FROM go_pinned"); got != "15" {
		t.Errorf("sum: %q", got)
	}
	for i := 0; i < 5; i++ {
		if got := backendOf(t, p); got != pid {
			t.Errorf("statement %d ran on backend %d, not %d", i, got, pid)
		}
	}
	// Its Results share its connection: holding one does not stop the next statement.
	held := mustQuery(t, p, "SELECT 'held'")
	if got := scalar(t, p, "SELECT count(*) FROM go_pinned"); got != "2" || held.BackendPID() != pid {
		t.Errorf("with a results held: count %q, backend %d", got, held.BackendPID())
	}
	held.Close()
	if got := scalar(t, s, "SHOW search_path"); got != defaultPath {
		t.Errorf("pooled session's search_path: %q, want %q", got, defaultPath)
	}
	if got := scalar(t, s, "SELECT to_regclass('go_pinned') IS NULL"); got != "true" {
		t.Errorf("pooled session sees the temp table: %q", got)
	}
	p.Close()
	if p.IsPinned() {
		t.Error("IsPinned after Close")
	}
	if _, err := p.Exec("SELECT 1"); CodeOf(err) != InterfaceError {
		t.Errorf("statement after Close: %v", err)
	}
}

// BEGIN, INSERT and ROLLBACK sent as separate calls on a pinned session are one transaction.
func TestPinnedTransactionAsCalls(t *testing.T) {
	s := openTest(t)
	table := uniq("gotest_pinned_tx")
	exec(t, s, "CREATE TABLE "+table+" (id int PRIMARY KEY)")
	defer exec(t, s, "DROP TABLE "+table)
	count := func(q interface {
		Query(string, ...any) (*Results, error)
	}) string {
		return scalar(t, q, "SELECT count(*) FROM "+table)
	}
	p := mustPin(t, s)
	for _, sql := range []string{"BEGIN", "INSERT INTO " + table + " VALUES (1)"} {
		if _, err := p.Exec(sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if count(p) != "1" || count(s) != "0" {
		t.Errorf("inside the transaction: %s on the pinned session, %s outside", count(p), count(s))
	}
	if _, err := p.Exec("ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if count(p) != "0" || count(s) != "0" {
		t.Errorf("after ROLLBACK: %s, %s", count(p), count(s))
	}
	for _, sql := range []string{"BEGIN", "INSERT INTO " + table + " VALUES (2)", "COMMIT",
		"BEGIN", "INSERT INTO " + table + " VALUES (3)"} {
		if _, err := p.Exec(sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	p.Close() // the open transaction is rolled back
	if got := scalar(t, s, "SELECT string_agg(id::text, ',') FROM "+table); got != "2" {
		t.Errorf("rows after Close with a transaction open: %q", got)
	}
}

// On a pool of 1 the pinned session holds the only connection; once it is closed the next pooled
// caller gets that connection back with none of its state.
func TestPinnedPoolOfOne(t *testing.T) {
	opts := []Option{WithPoolMaxSize(1), WithCheckoutTimeout(300 * time.Millisecond)}
	s := openTest(t, opts...)
	path, app := scalar(t, s, "SHOW search_path"), scalar(t, s, "SHOW application_name")
	pid := backendOf(t, s)
	if st, err := s.Stats(); err != nil || st.PinnedSessions != 0 {
		t.Errorf("Stats before Pin: %+v %v", st, err)
	}
	p := mustPin(t, s)
	if st, err := s.Stats(); err != nil || st.PinnedSessions != 1 || st.InUse != 1 {
		t.Errorf("Stats while pinned: %+v %v", st, err)
	}
	if got := backendOf(t, p); got != pid {
		t.Errorf("pinned on backend %d, the pool's one is %d", got, pid)
	}
	for _, sql := range []string{"SET search_path = pgsess_go_schema", "SET application_name = 'pgsess_go_pinned'",
		"CREATE TEMP TABLE go_one (v int)"} {
		if _, err := p.Exec(sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if _, err := s.Query("SELECT 1"); !IsPoolExhausted(err) {
		t.Errorf("pooled statement while the only connection is pinned: %v", err)
	}
	if _, err := s.Pin(); !IsPoolExhausted(err) {
		t.Errorf("second Pin on a pool of 1: %v", err)
	}
	p.Close()
	if st, err := s.Stats(); err != nil || st.PinnedSessions != 0 {
		t.Errorf("Stats after Close: %+v %v", st, err)
	}
	if got := backendOf(t, s); got != pid {
		t.Errorf("after Close the pooled session ran on backend %d, not %d", got, pid)
	}
	if got := scalar(t, s, "SHOW search_path"); got != path {
		t.Errorf("search_path after the pinned session: %q, want %q", got, path)
	}
	if got := scalar(t, s, "SHOW application_name"); got != app {
		t.Errorf("application_name after the pinned session: %q, want %q", got, app)
	}
	if got := scalar(t, s, "SELECT to_regclass('go_one') IS NULL"); got != "true" {
		t.Errorf("temp table after the pinned session: %q", got)
	}

	// WithPinned: Open returns a pinned session, on the same pool.
	po, err := Open("gotest", append(opts, WithPinned(true))...)
	if err != nil {
		t.Fatal(err)
	}
	if !po.IsPinned() || po.PoolID() != s.PoolID() {
		t.Errorf("WithPinned: pinned %v, pool %q, want %q", po.IsPinned(), po.PoolID(), s.PoolID())
	}
	exec(t, po, "SET application_name = 'pgsess_go_option'")
	if got := scalar(t, po, "SHOW application_name"); got != "pgsess_go_option" {
		t.Errorf("application_name on the WithPinned session: %q", got)
	}
	po.Close()
	if got := scalar(t, s, "SHOW application_name"); got != app {
		t.Errorf("application_name after the WithPinned session: %q, want %q", got, app)
	}
}

// ResetNever lets a SET reach the next caller on a pool of 1; ResetDirty (the default) does not.
func TestResetModes(t *testing.T) {
	never := openTest(t, WithPoolMaxSize(1), WithReset(ResetNever))
	dirty := openTest(t, WithPoolMaxSize(1), WithReset(ResetDirty))
	deflt := openTest(t, WithPoolMaxSize(1))
	if dirty.PoolID() != deflt.PoolID() || never.PoolID() == dirty.PoolID() {
		t.Errorf("pool ids: never %q dirty %q default %q", never.PoolID(), dirty.PoolID(), deflt.PoolID())
	}
	app := scalar(t, dirty, "SHOW application_name")

	pid := backendOf(t, never)
	exec(t, never, "SET application_name = 'pgsess_go_never'")
	if got := scalar(t, never, "SHOW application_name"); got != "pgsess_go_never" {
		t.Errorf("ResetNever: the next caller sees application_name %q", got)
	}
	if got := backendOf(t, never); got != pid {
		t.Errorf("ResetNever: backend %d, not %d", got, pid)
	}
	exec(t, never, "RESET application_name")

	pid = backendOf(t, dirty)
	exec(t, dirty, "SET application_name = 'pgsess_go_dirty'")
	if got := scalar(t, dirty, "SHOW application_name"); got != app {
		t.Errorf("ResetDirty: the next caller sees application_name %q, want %q", got, app)
	}
	if got := backendOf(t, dirty); got != pid {
		t.Errorf("ResetDirty: backend %d, not %d", got, pid)
	}

	if ResetAlways.String() != "ResetAlways" || Reset(7).String() != "Reset(7)" {
		t.Errorf("String: %v %v", ResetAlways, Reset(7))
	}
	for _, bad := range []Reset{7, -1} {
		if s, err := Open("gotest", WithReset(bad)); CodeOf(err) != InterfaceError {
			t.Errorf("WithReset(%v): %v", bad, err)
			if s != nil {
				s.Close()
			}
		}
	}
}

// Code written for a *Session takes part in a transaction through Tx.Session.
func insertThrough(s *Session, table string, id int) error {
	_, err := s.Exec("INSERT INTO "+table+" VALUES ($1)", id)
	return err
}

// A transaction's session runs every call inside the transaction; its Close does nothing.
func TestTxSession(t *testing.T) {
	s := openTest(t)
	table := uniq("gotest_txsession")
	exec(t, s, "CREATE TABLE "+table+" (id int PRIMARY KEY)")
	defer exec(t, s, "DROP TABLE "+table)
	count := func(q interface {
		Query(string, ...any) (*Results, error)
	}) string {
		return scalar(t, q, "SELECT count(*) FROM "+table)
	}

	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	ts := tx.Session()
	if ts != tx.Session() || !ts.IsPinned() || ts.PoolID() != s.PoolID() || ts.Name() != s.Name() {
		t.Errorf("tx session: same %v, pinned %v, pool %q", ts == tx.Session(), ts.IsPinned(), ts.PoolID())
	}
	if err := insertThrough(ts, table, 1); err != nil {
		t.Fatal(err)
	}
	if count(tx) != "1" || count(ts) != "1" || count(s) != "0" {
		t.Errorf("counts: tx %s, tx session %s, outside %s", count(tx), count(ts), count(s))
	}
	if a, b := scalar(t, tx, "SELECT txid_current()"), scalar(t, ts, "SELECT txid_current()"); a != b {
		t.Errorf("txid: %s in the transaction, %s on its session", a, b)
	}
	if _, err := ts.Begin(); CodeOf(err) != InterfaceError {
		t.Errorf("Begin on a transaction's session: %v", err)
	}
	if err := ts.Close(); err != nil {
		t.Error(err)
	}
	if err := insertThrough(ts, table, 2); err != nil { // Close did nothing
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if count(s) != "0" {
		t.Errorf("rows after rollback: %s", count(s))
	}
	if _, err := ts.Exec("SELECT 1"); err != ErrTxDone {
		t.Errorf("tx session after rollback: %v", err)
	}
	if ts.IsPinned() || tx.Session() != ts {
		t.Error("tx session after rollback")
	}

	// Inside InTx, committed with the transaction; concurrent goroutines take turns with it.
	err = s.InTx(func(tx *Tx) error {
		ts := tx.Session()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if i%2 == 0 {
					errs <- insertThrough(ts, table, 10+i)
				} else {
					_, err := tx.Exec("INSERT INTO "+table+" VALUES ($1)", 10+i)
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
		ts.Close()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count(s) != "4" {
		t.Errorf("rows after InTx: %s", count(s))
	}
	// A transaction's session asked for after the end fails the same way.
	tx, _ = s.Begin()
	tx.Commit()
	if _, err := tx.Session().Exec("SELECT 1"); err != ErrTxDone {
		t.Errorf("Session of an ended transaction: %v", err)
	}
}

// Goroutines sharing one pinned session take turns on its one connection.
func TestPinnedConcurrentGoroutines(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(3))
	p := mustPin(t, s)
	defer p.Close()
	pid := backendOf(t, p)
	const goroutines, perG = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perG; i++ {
				n := g*1000 + i
				res, err := p.Query("SELECT $1::int * 3, pg_backend_pid()", n)
				if err != nil {
					errs <- err
					return
				}
				var got int
				var backend int32
				ok := res.Next() && res.Scan(&got, &backend) == nil
				res.Close()
				if !ok || got != 3*n || backend != pid {
					errs <- fmt.Errorf("goroutine %d statement %d: %d on backend %d", g, i, got, backend)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPoolOptionsWarmThePool(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(3), WithCheckoutTimeout(1500*time.Millisecond),
		WithPoolMaxLifetime(10*time.Minute), WithPoolMinIdle(2), WithPoolHealthCheck(time.Second))
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Open != 2 || st.Idle != 2 {
		t.Fatalf("min idle 2: %+v", st)
	}
	if _, err := Open("gotest", WithPoolMinIdle(10001)); CodeOf(err) != ConfigError {
		t.Fatalf("min idle 10001: %v", err)
	}
	if _, err := Open("gotest", WithPoolMaxLifetime(-time.Second)); err == nil {
		t.Fatal("a negative lifetime was accepted")
	}
}
