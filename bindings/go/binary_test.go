package pgsess

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// binaryCases are the types of the text/binary comparison, each a column of rows (SQL
// literals, NULL included) with edge values: extremes, -0, NaN and the infinities, fractions,
// BC dates, a timestamp past the 64-bit microsecond range, empty strings and zero bytes.
var binaryCases = []struct {
	typ  string
	vals []string
}{
	{"int2", []string{"0", "-32768", "32767", "NULL"}},
	{"int4", []string{"-2147483648", "2147483647", "42", "-1"}},
	{"int8", []string{"-9223372036854775808", "9223372036854775807", "1", "NULL"}},
	{"oid", []string{"0", "4294967295", "127"}},
	{"float4", []string{"0.1", "-0", "'NaN'", "'Infinity'", "'-Infinity'", "3.4028235e38", "1e-45",
		"1.17549435e-38", "16777217", "1", "-2.5", "NULL"}},
	{"float8", []string{"0.1", "1e300", "'NaN'", "'-Infinity'", "5e-324", "-0", "1e20",
		"123456789012345678", "3", "1e-7", "4e38", "NULL"}},
	{"numeric", []string{"1.5", "-0.0001", "12345678901234567890.123456789", "'NaN'", "0", "42",
		"1e-20", "9e400", "-7.00", "NULL"}},
	{"bool", []string{"true", "false", "NULL"}},
	{"date", []string{"'2024-02-29'", "'infinity'", "'-infinity'", "'0001-01-01'", "'4713-01-01 BC'",
		"'5874897-12-31'", "'1970-01-01'", "NULL"}},
	{"timestamp", []string{"'2024-02-29 12:34:56.123456'", "'infinity'", "'-infinity'",
		"'1999-12-31 23:59:59.999999'", "'4713-01-01 00:00:00 BC'", "'294276-12-31 23:59:59.999999'", "NULL"}},
	{"timestamptz", []string{"'2024-02-29 12:34:56.123456+02'", "'infinity'", "'-infinity'",
		"'2000-01-01 00:00:00+00'", "'1900-06-01 01:02:03-03'", "NULL"}},
	{"time", []string{"'12:34:56.789'", "'00:00'", "'24:00:00'", "NULL"}},
	{"bytea", []string{`'\x00ff10'`, `''`, `'\x'`, "NULL"}},
	{"uuid", []string{"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'00000000-0000-0000-0000-000000000000'", "NULL"}},
	{"text", []string{"'héllo wörld'", "''", "'42'", "'t'", "'1.5'", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "NULL"}},
	{"varchar(10)", []string{"'abc'", "'-7'", "NULL"}},
	{"name", []string{"'nm'", "NULL"}},
	{"char(4)", []string{"'ab'", "NULL"}},
	{`"char"`, []string{"'x'", "NULL"}},
	{"json", []string{`'{"a": [1, 2], "b": "é"}'`, "'3'", "'null'", "NULL"}},
	{"jsonb", []string{`'{"b": 1, "a": [1, 2.50]}'`, `'"s"'`, "'12'", "NULL"}},
}

type binaryDest struct {
	name string
	make func() any
}

// binaryDests are the Scan destinations compared; each gets a fresh pointer per cell.
var binaryDests = []binaryDest{
	{"string", func() any { return new(string) }},
	{"[]byte", func() any { return new([]byte) }},
	{"json.RawMessage", func() any { return new(json.RawMessage) }},
	{"int64", func() any { return new(int64) }},
	{"int32", func() any { return new(int32) }},
	{"int16", func() any { return new(int16) }},
	{"int8", func() any { return new(int8) }},
	{"int", func() any { return new(int) }},
	{"uint64", func() any { return new(uint64) }},
	{"uint32", func() any { return new(uint32) }},
	{"uint", func() any { return new(uint) }},
	{"float64", func() any { return new(float64) }},
	{"float32", func() any { return new(float32) }},
	{"bool", func() any { return new(bool) }},
	{"time.Time", func() any { return new(time.Time) }},
	{"[16]byte", func() any { return new([16]byte) }},
	{"any", func() any { return new(any) }},
	{"*string", func() any { return new(*string) }},
	{"*int64", func() any { return new(*int64) }},
	{"*float64", func() any { return new(*float64) }},
	{"*time.Time", func() any { return new(*time.Time) }},
	{"sql.NullString", func() any { return new(sql.NullString) }},
	{"sql.NullInt64", func() any { return new(sql.NullInt64) }},
	{"sql.NullFloat64", func() any { return new(sql.NullFloat64) }},
	{"sql.NullBool", func() any { return new(sql.NullBool) }},
	{"sql.NullTime", func() any { return new(sql.NullTime) }},
	{"myInt", func() any { return new(myInt) }},
	{"myString", func() any { return new(myString) }},
	{"myFloat", func() any { return new(myFloat) }},
}

type myString string
type myFloat float32

// scanned is what a Scan into dest gave: the value (formatted so that NaN equals NaN and -0
// differs from 0) or the error's code.
func scanned(dest any, err error) string {
	if err != nil {
		return "error " + CodeOf(err).String()
	}
	return showValue(reflect.ValueOf(dest).Elem().Interface())
}

func showValue(v any) string {
	switch x := v.(type) {
	case float64:
		return fmt.Sprintf("float64(%v, bits %x)", x, math.Float64bits(x))
	case float32:
		return fmt.Sprintf("float32(%v, bits %x)", x, math.Float32bits(x))
	case myFloat:
		return fmt.Sprintf("myFloat(%v, bits %x)", x, math.Float32bits(float32(x)))
	case sql.NullFloat64:
		return fmt.Sprintf("NullFloat64(%v, %s)", x.Valid, showValue(x.Float64))
	case *float64:
		if x == nil {
			return "(*float64)(nil)"
		}
		return "&" + showValue(*x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = showValue(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return "&" + showValue(rv.Elem().Interface())
	}
	return fmt.Sprintf("%T(%#v)", v, v)
}

// cellResults runs sql through Query and QueryBinary on q.
func bothFormats(t *testing.T, q *Session, sql string, args ...any) (text, bin *Results) {
	t.Helper()
	text = mustQuery(t, q, sql, args...)
	bin, err := q.QueryBinary(sql, args...)
	if err != nil {
		text.Close()
		t.Fatalf("QueryBinary(%q): %v", sql, err)
	}
	t.Cleanup(func() { text.Close(); bin.Close() })
	return text, bin
}

// Every typed scan gives the same Go value (or the same error code) from Query's text and from
// QueryBinary's binary values, for every type and destination of the tables above.
func TestBinaryScansMatchText(t *testing.T) {
	p := mustPin(t, openTest(t))
	// The settings the library renders binary values as text under (the server's defaults but
	// for TimeZone, which a test cluster may take from its host).
	exec(t, p, "SET TimeZone = 'UTC'")
	exec(t, p, "SET DateStyle = 'ISO, MDY'")
	for _, c := range binaryCases {
		rows := make([]string, len(c.vals))
		for i, v := range c.vals {
			rows[i] = fmt.Sprintf("(%d, (%s)::%s)", i, v, c.typ)
		}
		sql := "SELECT v FROM (VALUES " + strings.Join(rows, ", ") + ") AS t(i, v) ORDER BY i"
		text, bin := bothFormats(t, p, sql)
		if text.ColumnFormat(0) != 0 || bin.ColumnFormat(0) != 1 || bin.ColumnFormat(1) != -1 {
			t.Fatalf("%s: formats text %d, binary %d", c.typ, text.ColumnFormat(0), bin.ColumnFormat(0))
		}
		if !reflect.DeepEqual(text.Columns(), bin.Columns()) || bin.Rows() != len(c.vals) {
			t.Fatalf("%s: columns %v / %v, rows %d", c.typ, text.Columns(), bin.Columns(), bin.Rows())
		}
		for i, v := range c.vals {
			if !text.Next() || !bin.Next() {
				t.Fatalf("%s: row %d missing", c.typ, i)
			}
			tv, terr := text.Values()
			bv, berr := bin.Values()
			if gt, gb := scanned(&tv, terr), scanned(&bv, berr); gt != gb {
				t.Errorf("%s %s: Values text %s, binary %s", c.typ, v, gt, gb)
			}
			for _, d := range binaryDests {
				td, bd := d.make(), d.make()
				gt, gb := scanned(td, text.Scan(td)), scanned(bd, bin.Scan(bd))
				if gt != gb {
					t.Errorf("%s %s into *%s: text %s, binary %s", c.typ, v, d.name, gt, gb)
				}
			}
			tt, tok := text.Text(i, 0)
			bt, bok := bin.Text(i, 0)
			if tt != bt || tok != bok {
				t.Errorf("%s %s: Text text %q %v, binary %q %v", c.typ, v, tt, tok, bt, bok)
			}
		}
		tm, err1 := text.Maps()
		bm, err2 := bin.Maps()
		if showValue(tm) != showValue(bm) || (err1 == nil) != (err2 == nil) {
			t.Errorf("%s: Maps text %s (%v), binary %s (%v)", c.typ, showValue(tm), err1, showValue(bm), err2)
		}
	}
}

// A few conversions spelled out, so that a change that broke both formats alike still fails.
func TestBinaryValues(t *testing.T) {
	s := openTest(t)
	res, err := s.QueryBinary(`SELECT 7::int2, -8::int4, 9000000000::int8, 4000000000::oid, 0.1::float4,
		0.1::float8, 't'::bool, '\x0001ff'::bytea, '2024-02-29'::date, '2024-02-29 12:34:56.5'::timestamp,
		'2024-02-29 12:34:56.5+01'::timestamptz, 'infinity'::timestamptz,
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 'héllo'::text, '{"a": 1}'::json, '{"a": 1}'::jsonb,
		123.450::numeric, NULL::int4`)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if !res.Next() {
		t.Fatal("no row")
	}
	vals, err := res.Values()
	if err != nil {
		t.Fatal(err)
	}
	want := []any{int64(7), int64(-8), int64(9000000000), int64(4000000000), 0.1, 0.1, true,
		[]byte{0, 1, 0xff}, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 34, 56, 500000000, time.UTC), time.Date(2024, 2, 29, 11, 34, 56, 500000000, time.UTC),
		"infinity", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "héllo", json.RawMessage(`{"a": 1}`),
		json.RawMessage(`{"a": 1}`), "123.450", nil}
	if !reflect.DeepEqual(vals, want) {
		t.Fatalf("Values:\n got %s\nwant %s", showValue(vals), showValue(want))
	}
	var u [16]byte
	var n int16
	var f32 float32
	var num float64
	var ts time.Time
	dests := make([]any, len(want))
	dests[0], dests[4], dests[12], dests[16], dests[10] = &n, &f32, &u, &num, &ts
	if err := res.Scan(dests...); err != nil {
		t.Fatal(err)
	}
	if n != 7 || f32 != 0.1 || u != [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9,
		0xbd, 0x38, 0x0a, 0x11} || num != 123.45 || !ts.Equal(time.Date(2024, 2, 29, 11, 34, 56, 500000000, time.UTC)) {
		t.Fatalf("Scan: %d %v %x %v %v", n, f32, u, num, ts)
	}
	var small int8
	dests = make([]any, len(want))
	dests[2] = &small
	if err := res.Scan(dests...); CodeOf(err) != ValueOverflow {
		t.Fatalf("int8 9000000000 into *int8: %v", err)
	}
	dests[2] = nil
	dests[11] = &ts
	if err := res.Scan(dests...); CodeOf(err) != ValueOverflow {
		t.Fatalf("infinity into *time.Time: %v", err)
	}
	dests[11] = nil
	var null int32
	dests[17] = &null
	if err := res.Scan(dests...); CodeOf(err) != NullValue {
		t.Fatalf("NULL into *int32: %v", err)
	}
}

// What the library cannot render as text (a type it does not know, or a timestamptz under a
// TimeZone away from UTC) fails with NotSupportedError and says to use Query, while the typed
// reads keep working.
func TestBinaryTextRefused(t *testing.T) {
	p := mustPin(t, openTest(t))
	exec(t, p, "SET TimeZone = 'Europe/Paris'")
	res, err := p.QueryBinary("SELECT '1 day'::interval, '2024-02-29 12:00:00+00'::timestamptz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	res.Next()
	var iv string
	err = res.Scan(&iv, nil)
	if CodeOf(err) != NotSupportedError || !strings.Contains(err.Error(), "Query") {
		t.Fatalf("interval into *string: %v", err)
	}
	if _, err := res.Values(); CodeOf(err) != NotSupportedError {
		t.Fatalf("Values with an interval: %v", err)
	}
	var ts time.Time
	if err := res.Scan(nil, &ts); err != nil || !ts.Equal(time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("timestamptz into *time.Time: %v %v", ts, err)
	}
	var tss string
	if err := res.Scan(nil, &tss); CodeOf(err) != NotSupportedError {
		t.Fatalf("timestamptz into *string under Europe/Paris: %q %v", tss, err)
	}
	if _, ok := res.Text(0, 0); ok {
		t.Fatal("Text of a binary interval")
	}
}

// QueryBinary wherever Query is: on a transaction, its session and a pinned session, with
// arguments (a []byte one binary) and without.
func TestQueryBinaryEverywhere(t *testing.T) {
	s := openTest(t)
	table := uniq("gobin")
	exec(t, s, "CREATE TABLE "+table+" (id int PRIMARY KEY, b bytea)")
	t.Cleanup(func() { s.Exec("DROP TABLE IF EXISTS " + table) })

	readBack := func(q interface {
		QueryBinary(string, ...any) (*Results, error)
	}, id int) (b []byte, found bool) {
		t.Helper()
		res, err := q.QueryBinary("SELECT b FROM "+table+" WHERE id = $1", id)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		if res.ColumnFormat(0) != 1 {
			t.Fatalf("format %d", res.ColumnFormat(0))
		}
		if !res.Next() {
			return nil, false
		}
		if err := res.Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b, true
	}

	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO "+table+" VALUES ($1, $2)", 1, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if b, ok := readBack(tx, 1); !ok || !reflect.DeepEqual(b, []byte{0, 1, 2}) {
		t.Fatalf("Tx.QueryBinary: %v %v", b, ok)
	}
	if b, ok := readBack(tx.Session(), 1); !ok || !reflect.DeepEqual(b, []byte{0, 1, 2}) {
		t.Fatalf("Tx.Session().QueryBinary: %v %v", b, ok)
	}
	if _, ok := readBack(s, 1); ok {
		t.Fatal("uncommitted row seen outside the transaction")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.QueryBinary("SELECT 1"); err != ErrTxDone {
		t.Fatalf("QueryBinary after Rollback: %v", err)
	}
	if _, err := tx.Session().QueryBinary("SELECT 1"); err != ErrTxDone {
		t.Fatalf("Tx.Session().QueryBinary after Rollback: %v", err)
	}

	p := mustPin(t, s)
	exec(t, p, "CREATE TEMP TABLE gobin_tmp (v int8)")
	exec(t, p, "INSERT INTO gobin_tmp VALUES (1), (2), (3)")
	res, err := p.QueryBinary("SELECT sum(v)::int8, $1::bytea FROM gobin_tmp", []byte{0xff, 0})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var sum int64
	var raw []byte
	if !res.Next() || res.Scan(&sum, &raw) != nil || sum != 6 || !reflect.DeepEqual(raw, []byte{0xff, 0}) {
		t.Fatalf("pinned QueryBinary: %d %v", sum, raw)
	}
	if _, err := s.QueryBinary("SELECT 1; SELECT 2"); err == nil {
		t.Fatal("QueryBinary ran two statements")
	}
	p.Close()
	if _, err := p.QueryBinary("SELECT 1"); CodeOf(err) != InterfaceError {
		t.Fatalf("QueryBinary after Close: %v", err)
	}
}

// cachedCount is how many of the pinned session's prepared statements have this text.
func cachedCount(t *testing.T, p *Session, sql string) int64 {
	t.Helper()
	var n int64
	one(t, p, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1 AND name LIKE 'pgsess%'",
		[]any{sql}, &n)
	return n
}

// WithStatementCache: a statement with arguments is prepared once per connection (the pinned
// session's pg_prepared_statements shows it), text and binary runs share it, and the cache
// heals after ALTER TABLE from another connection. Off by default; out of range refused.
func TestStatementCache(t *testing.T) {
	if _, err := Open("gotest", WithStatementCache(-1)); CodeOf(err) != ConfigError {
		t.Fatalf("WithStatementCache(-1): %v", err)
	}
	if _, err := Open("gotest", WithStatementCache(1<<20)); CodeOf(err) != ConfigError {
		t.Fatalf("WithStatementCache(1<<20): %v", err)
	}
	const q = "SELECT $1::int8 * 2 AS twice"
	plain := mustPin(t, openTest(t))
	var n int64
	one(t, plain, q, []any{21}, &n)
	if n != 42 || cachedCount(t, plain, q) != 0 {
		t.Fatalf("without the cache: %d, %d prepared", n, cachedCount(t, plain, q))
	}

	s := openTest(t, WithStatementCache(8))
	if s.PoolID() == plain.PoolID() {
		t.Fatal("the cache option is not part of the pool key")
	}
	p := mustPin(t, s)
	for i := 0; i < 3; i++ {
		one(t, p, q, []any{i}, &n)
		if n != int64(2*i) {
			t.Fatalf("%d * 2 = %d", i, n)
		}
	}
	res, err := p.QueryBinary(q, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Next() || res.Scan(&n) != nil || n != 10 {
		t.Fatalf("binary through the cache: %d", n)
	}
	res.Close()
	if c := cachedCount(t, p, q); c != 1 {
		t.Fatalf("%q prepared %d times on the pinned connection", q, c)
	}

	table := uniq("gocache")
	exec(t, plain, "CREATE TABLE "+table+" (id int PRIMARY KEY)")
	t.Cleanup(func() { plain.Exec("DROP TABLE IF EXISTS " + table) })
	exec(t, plain, "INSERT INTO "+table+" VALUES (1)")
	sel := "SELECT * FROM " + table + " WHERE id = $1"
	res = mustQuery(t, p, sel, 1)
	if len(res.Columns()) != 1 {
		t.Fatalf("columns %v", res.Columns())
	}
	res.Close()
	exec(t, plain, "ALTER TABLE "+table+" ADD COLUMN note text DEFAULT 'added'")
	res = mustQuery(t, p, sel, 1) // healed: prepared again and retried, no error
	defer res.Close()
	var id int32
	var note string
	if !res.Next() || res.Scan(&id, &note) != nil || id != 1 || note != "added" {
		t.Fatalf("after ALTER TABLE: %v %d %q", res.Columns(), id, note)
	}
}

// BenchmarkRowScanBinary: ns/row of Next+Scan over the 200,000 x 5 result of QueryBinary (as
// BenchmarkRowCGOCalls reads Query's).
func BenchmarkRowScanBinary(b *testing.B) {
	s := openTest(b)
	res, err := s.QueryBinary(rowCostSQL)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Close()
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n++ {
		readAll(b, res)
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/200000, "ns/row")
}

// benchFetchScan: ns/row of running the 200,000 x 5 statement and reading it with Next+Scan,
// the server's output and the transfer included.
func benchFetchScan(b *testing.B, query func(string, ...any) (*Results, error)) {
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n++ {
		res, err := query(rowCostSQL)
		if err != nil {
			b.Fatal(err)
		}
		readAll(b, res)
		res.Close()
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/200000, "ns/row")
}

// BenchmarkRowFetchScanText and BenchmarkRowFetchScanBinary: the whole statement and scan,
// Query against QueryBinary.
func BenchmarkRowFetchScanText(b *testing.B) { benchFetchScan(b, openTest(b).Query) }

func BenchmarkRowFetchScanBinary(b *testing.B) { benchFetchScan(b, openTest(b).QueryBinary) }
