package pgsess

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// copyRow is one row of the COPY tests' table: id int8, name text, note text (NULL when nil),
// amount numeric(12,2), flag bool.
type copyRow struct {
	id     int
	name   string
	note   *string
	amount string
	flag   bool
}

const copyTable = "(id int8 PRIMARY KEY, name text, note text, amount numeric(12,2), flag bool)"

// copyRows makes n rows whose text needs every kind of escaping and quoting COPY does: tabs,
// newlines, carriage returns, backslashes, commas, quotes, empty strings, NULLs, non-ASCII text.
func copyRows(n int) []copyRow {
	rows := make([]copyRow, n)
	for i := range rows {
		id := i + 1
		r := copyRow{id: id, name: fmt.Sprintf("row %d ünïcødé", id), amount: fmt.Sprintf("%d.%02d", id, id%100), flag: id%2 == 0}
		switch id % 7 {
		case 1:
			r.name += "\ttab"
		case 2:
			r.name += "\nnew line\r\n"
		case 3:
			r.name += ` back\slash \N`
		case 4:
			r.name += `, comma "quoted"`
		case 5:
			r.name = ""
		}
		if id%5 != 0 {
			note := fmt.Sprintf("note %d", id*7)
			if id%11 == 0 {
				note = ""
			}
			r.note = &note
		}
		rows[i] = r
	}
	return rows
}

// copyText is the rows in COPY's text format exactly as the server writes it.
func copyText(rows []copyRow) []byte {
	esc := strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)
	var b bytes.Buffer
	for _, r := range rows {
		note := `\N`
		if r.note != nil {
			note = esc.Replace(*r.note)
		}
		flag := "f"
		if r.flag {
			flag = "t"
		}
		fmt.Fprintf(&b, "%d\t%s\t%s\t%s\t%s\n", r.id, esc.Replace(r.name), note, r.amount, flag)
	}
	return b.Bytes()
}

// csvField quotes a CSV value as the server's COPY TO does: only when it must (an empty string,
// a comma, a quote, a line break), NULL being the unquoted empty field.
func csvField(v *string) string {
	if v == nil {
		return ""
	}
	if *v == "" || strings.ContainsAny(*v, ",\"\r\n") {
		return `"` + strings.ReplaceAll(*v, `"`, `""`) + `"`
	}
	return *v
}

// copyCSV is the rows in COPY's CSV format exactly as the server writes it.
func copyCSV(rows []copyRow) []byte {
	var b bytes.Buffer
	for _, r := range rows {
		flag := "f"
		if r.flag {
			flag = "t"
		}
		name := r.name
		fmt.Fprintf(&b, "%d,%s,%s,%s,%s\n", r.id, csvField(&name), csvField(r.note), r.amount, flag)
	}
	return b.Bytes()
}

func countRows(t testing.TB, q interface {
	Query(string, ...any) (*Results, error)
}, table string) string {
	t.Helper()
	return scalar(t, q, "SELECT count(*) FROM "+table)
}

// 100,000 rows in, then out, byte for byte: text, CSV, and binary (out, in again, out again).
func TestCopyRoundTrip(t *testing.T) {
	s := openTest(t)
	rows := copyRows(100000)
	for _, format := range []struct {
		name, option string
		data         []byte
	}{
		{"text", "", copyText(rows)},
		{"csv", " (FORMAT csv)", copyCSV(rows)},
	} {
		t.Run(format.name, func(t *testing.T) {
			table := uniq("gotest_copy_" + format.name)
			exec(t, s, "CREATE TABLE "+table+" "+copyTable)
			defer exec(t, s, "DROP TABLE "+table)
			start := time.Now()
			n, err := s.CopyFrom("COPY "+table+" FROM STDIN"+format.option, bytes.NewReader(format.data))
			if err != nil || n != int64(len(rows)) {
				t.Fatalf("CopyFrom: %d rows, %v", n, err)
			}
			t.Logf("CopyFrom: %d rows, %d bytes in %v", n, len(format.data), time.Since(start))
			if got := countRows(t, s, table); got != fmt.Sprint(len(rows)) {
				t.Fatalf("count(*) after CopyFrom: %s", got)
			}
			var spot string
			one(t, s, "SELECT name FROM "+table+" WHERE id = 2", nil, &spot)
			if spot != rows[1].name {
				t.Errorf("row 2's name: %q, want %q", spot, rows[1].name)
			}
			var out bytes.Buffer
			start = time.Now()
			n, err = s.CopyTo("COPY (SELECT * FROM "+table+" ORDER BY id) TO STDOUT"+format.option, &out)
			if err != nil || n != int64(len(rows)) {
				t.Fatalf("CopyTo: %d rows, %v", n, err)
			}
			t.Logf("CopyTo: %d rows, %d bytes in %v", n, out.Len(), time.Since(start))
			if !bytes.Equal(out.Bytes(), format.data) {
				t.Fatalf("CopyTo gave %d bytes, not the %d sent; first difference at %d", out.Len(), len(format.data),
					firstDiff(out.Bytes(), format.data))
			}
		})
	}

	t.Run("binary", func(t *testing.T) {
		a, b := uniq("gotest_copy_bin_a"), uniq("gotest_copy_bin_b")
		exec(t, s, "CREATE TABLE "+a+" "+copyTable)
		defer exec(t, s, "DROP TABLE "+a)
		exec(t, s, "CREATE TABLE "+b+" "+copyTable)
		defer exec(t, s, "DROP TABLE "+b)
		if _, err := s.CopyFrom("COPY "+a+" FROM STDIN", bytes.NewReader(copyText(rows))); err != nil {
			t.Fatal(err)
		}
		var bin1, bin2 bytes.Buffer
		if n, err := s.CopyTo("COPY (SELECT * FROM "+a+" ORDER BY id) TO STDOUT (FORMAT binary)", &bin1); err != nil || n != int64(len(rows)) {
			t.Fatalf("CopyTo binary: %d, %v", n, err)
		}
		if n, err := s.CopyFrom("COPY "+b+" FROM STDIN (FORMAT binary)", bytes.NewReader(bin1.Bytes())); err != nil || n != int64(len(rows)) {
			t.Fatalf("CopyFrom binary: %d, %v", n, err)
		}
		if n, err := s.CopyTo("COPY (SELECT * FROM "+b+" ORDER BY id) TO STDOUT (FORMAT binary)", &bin2); err != nil || n != int64(len(rows)) {
			t.Fatalf("CopyTo binary again: %d, %v", n, err)
		}
		if !bytes.Equal(bin1.Bytes(), bin2.Bytes()) || !bytes.HasPrefix(bin1.Bytes(), []byte("PGCOPY\n\xff\r\n\x00")) {
			t.Fatalf("binary round trip: %d bytes then %d bytes, first difference at %d", bin1.Len(), bin2.Len(),
				firstDiff(bin1.Bytes(), bin2.Bytes()))
		}
	})
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) == len(b) {
		return -1
	}
	if len(a) < len(b) {
		return len(a)
	}
	return len(b)
}

// openOne is a session on a pool of one connection, so that a copy that kept its connection
// would make the next statement fail with PoolExhausted.
func openOne(t testing.TB) *Session {
	return openTest(t, WithPoolMaxSize(1), WithCheckoutTimeout(2*time.Second))
}

func stillUsable(t testing.TB, s *Session, after string) {
	t.Helper()
	if got := scalar(t, s, "SELECT 'usable'"); got != "usable" {
		t.Fatalf("after %s: %q", after, got)
	}
}

// A bad row in the middle of 100,000 fails the copy with the server's error, naming its line;
// no row is committed and the connection goes back to the pool.
func TestCopyFromBadRow(t *testing.T) {
	s := openOne(t)
	table := uniq("gotest_copy_bad")
	exec(t, s, "CREATE TABLE "+table+" "+copyTable)
	defer exec(t, s, "DROP TABLE "+table)
	data := copyText(copyRows(100000))
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines[50000] = []byte("abc\tbad\t\\N\t1.00\tt\n") // line 50001
	n, err := s.CopyFrom("COPY "+table+" FROM STDIN", bytes.NewReader(bytes.Join(lines, nil)))
	var pe *Error
	if !errors.As(err, &pe) || pe.SQLState != "22P02" || pe.Code != DataError || n != 0 {
		t.Fatalf("CopyFrom with a bad row: %d, %v", n, err)
	}
	if !strings.Contains(pe.Context, "line 50001") || !strings.Contains(pe.Context, `"abc"`) ||
		!strings.Contains(err.Error(), pe.Context) || !strings.Contains(pe.Message, `"abc"`) {
		t.Errorf("the error does not name the bad line: %v (context %q)", err, pe.Context)
	}
	t.Logf("bad row: %v", err)
	stillUsable(t, s, "a bad row")
	if got := countRows(t, s, table); got != "0" {
		t.Errorf("rows after the failed copy: %s", got)
	}

	// Statements that are not the copy asked for fail without running a copy.
	if _, err := s.CopyFrom("SELECT 1", strings.NewReader("1\n")); CodeOf(err) != InterfaceError {
		t.Errorf("CopyFrom(SELECT 1): %v", err)
	}
	if _, err := s.CopyFrom("COPY "+table+" TO STDOUT", strings.NewReader("")); CodeOf(err) != NotSupportedError {
		t.Errorf("CopyFrom(COPY ... TO STDOUT): %v", err)
	}
	if _, err := s.CopyTo("COPY "+table+" FROM STDIN", io.Discard); CodeOf(err) != NotSupportedError {
		t.Errorf("CopyTo(COPY ... FROM STDIN): %v", err)
	}
	if _, err := s.CopyTo("COPY no_such_table_gotest TO STDOUT", io.Discard); SQLStateOf(err) != "42P01" {
		t.Errorf("CopyTo of a missing table: %v", err)
	}
	if _, err := s.CopyFrom("COPY x FROM STDIN\x00", strings.NewReader("")); CodeOf(err) != InterfaceError {
		t.Errorf("SQL with a zero byte: %v", err)
	}
	stillUsable(t, s, "refused copies")
}

// failingReader gives the first `after` bytes of data, in small reads, then fails.
type failingReader struct {
	data  []byte
	after int
	err   error
	hook  func() // called once when the failure point is reached, if set
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.after <= 0 {
		if r.hook != nil {
			r.hook()
			r.hook = nil
			return 0, nil
		}
		return 0, r.err
	}
	n := len(p)
	if n > 8192 {
		n = 8192
	}
	if n > r.after {
		n = r.after
	}
	n = copy(p, r.data[:n])
	r.data, r.after = r.data[n:], r.after-n
	return n, nil
}

// A reader that fails half-way aborts the copy: its error comes back as it is, nothing is
// committed (though much was already sent), and the connection goes back to the pool. A context
// cancelled half-way does the same.
func TestCopyFromReaderError(t *testing.T) {
	s := openOne(t)
	table := uniq("gotest_copy_rerr")
	exec(t, s, "CREATE TABLE "+table+" "+copyTable)
	defer exec(t, s, "DROP TABLE "+table)
	data := copyText(copyRows(100000))
	boom := errors.New("disk on fire")
	var during PoolStats
	r := &failingReader{data: data, after: len(data) / 2, err: boom}
	r.hook = func() { during, _ = s.Stats() } // then fails
	n, err := s.CopyFrom("COPY "+table+" FROM STDIN", r)
	if err != boom || n != 0 {
		t.Fatalf("CopyFrom with a failing reader: %d, %v", n, err)
	}
	if during.CopiesOpen != 1 || during.InUse != 1 {
		t.Errorf("Stats during the copy: %+v", during)
	}
	if st, err := s.Stats(); err != nil || st.CopiesOpen != 0 || st.InUse != 0 {
		t.Errorf("Stats after the aborted copy: %+v %v", st, err)
	}
	stillUsable(t, s, "a reader error")
	if got := countRows(t, s, table); got != "0" {
		t.Errorf("rows after the aborted copy: %s", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err = s.CopyFromContext(ctx, "COPY "+table+" FROM STDIN",
		&failingReader{data: data, after: len(data) / 2, err: io.EOF, hook: cancel})
	if !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("CopyFromContext cancelled half-way: %d, %v", n, err)
	}
	stillUsable(t, s, "a cancelled copy")
	if got := countRows(t, s, table); got != "0" {
		t.Errorf("rows after the cancelled copy: %s", got)
	}
	if _, err := s.CopyFromContext(ctx, "COPY "+table+" FROM STDIN", bytes.NewReader(data)); !errors.Is(err, context.Canceled) {
		t.Errorf("CopyFromContext with a done context: %v", err)
	}

	// A complete copy through the context variant, for contrast.
	if n, err := s.CopyFromContext(context.Background(), "COPY "+table+" FROM STDIN", bytes.NewReader(data)); err != nil || n != 100000 {
		t.Fatalf("CopyFromContext: %d, %v", n, err)
	}
}

// failingWriter accepts `room` bytes, then fails.
type failingWriter struct {
	room   int
	err    error
	writes int
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.writes++
	if len(p) > w.room {
		n := w.room
		w.room = 0
		return n, w.err
	}
	w.room -= len(p)
	return len(p), nil
}

// A writer that fails stops CopyTo with its error; the copy is cancelled and the connection goes
// back to the pool. Rows reach the writer in large chunks.
func TestCopyToWriterError(t *testing.T) {
	s := openOne(t)
	table := uniq("gotest_copy_werr")
	exec(t, s, "CREATE TABLE "+table+" "+copyTable)
	defer exec(t, s, "DROP TABLE "+table)
	data := copyText(copyRows(100000))
	if _, err := s.CopyFrom("COPY "+table+" FROM STDIN", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	full := &failingWriter{room: len(data) + 1}
	if n, err := s.CopyTo("COPY "+table+" TO STDOUT", full); err != nil || n != 100000 {
		t.Fatalf("CopyTo: %d, %v", n, err)
	}
	if max := len(data)/copyChunk + 2; full.writes > max {
		t.Errorf("CopyTo made %d writes for %d bytes (at most %d expected)", full.writes, len(data), max)
	}

	full2 := errors.New("pipe closed")
	w := &failingWriter{room: len(data) / 3, err: full2}
	if n, err := s.CopyTo("COPY "+table+" TO STDOUT", w); err != full2 || n != 0 {
		t.Fatalf("CopyTo with a failing writer: %d, %v", n, err)
	}
	stillUsable(t, s, "a writer error")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.CopyToContext(ctx, "COPY "+table+" TO STDOUT", io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("CopyToContext with a done context: %v", err)
	}
	// Cancelled half-way by the writer itself.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	cw := writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil })
	if _, err := s.CopyToContext(ctx, "COPY "+table+" TO STDOUT", cw); !errors.Is(err, context.Canceled) {
		t.Errorf("CopyToContext cancelled half-way: %v", err)
	}
	stillUsable(t, s, "a cancelled CopyTo")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// COPY inside a transaction: the rows are visible in it, not outside, and a rollback removes
// them; committed through Tx.Session in InTx. A failed copy leaves the transaction failed.
func TestCopyInTransaction(t *testing.T) {
	s := openTest(t)
	table := uniq("gotest_copy_tx")
	exec(t, s, "CREATE TABLE "+table+" "+copyTable)
	defer exec(t, s, "DROP TABLE "+table)
	rows := copyRows(1000)
	data := copyText(rows)

	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if n, err := tx.CopyFrom("COPY "+table+" FROM STDIN", bytes.NewReader(data)); err != nil || n != 1000 {
		t.Fatalf("Tx.CopyFrom: %d, %v", n, err)
	}
	if in, out := countRows(t, tx, table), countRows(t, s, table); in != "1000" || out != "0" {
		t.Errorf("after Tx.CopyFrom: %s rows inside the transaction, %s outside", in, out)
	}
	var back bytes.Buffer
	if n, err := tx.CopyTo("COPY (SELECT * FROM "+table+" ORDER BY id) TO STDOUT", &back); err != nil || n != 1000 ||
		!bytes.Equal(back.Bytes(), data) {
		t.Errorf("Tx.CopyTo: %d rows, %d bytes, %v", n, back.Len(), err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := countRows(t, s, table); got != "0" {
		t.Errorf("rows after Rollback: %s", got)
	}
	if _, err := tx.CopyFrom("COPY "+table+" FROM STDIN", bytes.NewReader(data)); err != ErrTxDone {
		t.Errorf("CopyFrom after Rollback: %v", err)
	}

	err = s.InTx(func(tx *Tx) error {
		_, err := tx.Session().CopyFrom("COPY "+table+" FROM STDIN (FORMAT csv)", bytes.NewReader(copyCSV(rows)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := countRows(t, s, table); got != "1000" {
		t.Errorf("rows after InTx: %s", got)
	}

	// A copy that fails in a transaction fails the transaction, like any statement.
	tx, err = s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.CopyFrom("COPY "+table+" FROM STDIN", strings.NewReader("1\tdup\t\\N\t1.00\tt\n")); !IsIntegrityError(err) {
		t.Errorf("duplicate key in Tx.CopyFrom: %v", err)
	}
	if _, err := tx.Exec("SELECT 1"); SQLStateOf(err) != "25P02" {
		t.Errorf("statement after a failed copy in the transaction: %v", err)
	}
	tx.Rollback()
}

// A pinned session copies into its own temporary table; while the copy runs, another statement
// on that session is refused rather than run in the middle of it.
func TestCopyPinned(t *testing.T) {
	s := openTest(t)
	p := mustPin(t, s)
	defer p.Close()
	exec(t, p, "CREATE TEMP TABLE go_copy_pinned "+copyTable)
	rows := copyRows(5000)
	data := copyCSV(rows)
	var inner error
	r := &failingReader{data: data, after: len(data) / 2, err: io.EOF}
	r.hook = func() {
		_, inner = p.Exec("SELECT 1")
		r.after = len(r.data) // then the rest
	}
	if n, err := p.CopyFrom("COPY go_copy_pinned FROM STDIN (FORMAT csv)", r); err != nil || n != 5000 {
		t.Fatalf("pinned CopyFrom: %d, %v", n, err)
	}
	if CodeOf(inner) != InterfaceError {
		t.Errorf("a statement on the pinned session during its copy: %v", inner)
	}
	var out bytes.Buffer
	// ORDER BY: a heap's order is not its insertion order (a COPY fills free space on earlier
	// pages with later short rows).
	if n, err := p.CopyTo("COPY (SELECT * FROM go_copy_pinned ORDER BY id) TO STDOUT (FORMAT csv)", &out); err != nil || n != 5000 ||
		!bytes.Equal(out.Bytes(), data) {
		t.Fatalf("pinned CopyTo: %d rows, %d bytes (want %d), %v; first difference at %d", n, out.Len(), len(data), err,
			firstDiff(out.Bytes(), data))
	}
	p.Close()
	if _, err := p.CopyTo("COPY go_copy_pinned TO STDOUT", io.Discard); CodeOf(err) != InterfaceError {
		t.Errorf("CopyTo after Close: %v", err)
	}
}

// Copy takes the direction the server started (pgsess_copy_start): r for a COPY ... FROM STDIN,
// w for a COPY ... TO STDOUT, whatever the SQL text looks like. A nil side the server needs
// aborts the copy; a statement that is no COPY runs, then fails.
func TestCopyEitherDirection(t *testing.T) {
	s := openOne(t)
	table := uniq("gotest_copy_either")
	exec(t, s, "CREATE TABLE "+table+" "+copyTable)
	defer exec(t, s, "DROP TABLE "+table)
	rows := copyRows(3000)
	data := copyText(rows)
	// A nested comment (PostgreSQL nests them): "TO STDOUT" is still inside it.
	if n, err := s.Copy("COPY "+table+" FROM STDIN /* a /* nested */ TO STDOUT */", bytes.NewReader(data), nil); err != nil || n != 3000 {
		t.Fatalf("Copy in: %d, %v", n, err)
	}
	var out bytes.Buffer
	if n, err := s.Copy("COPY (SELECT * FROM "+table+" ORDER BY id) TO STDOUT -- FROM STDIN", nil, &out); err != nil || n != 3000 ||
		!bytes.Equal(out.Bytes(), data) {
		t.Fatalf("Copy out: %d rows, %d bytes (want %d), %v", n, out.Len(), len(data), err)
	}
	out.Reset()
	// Both given: the server's direction picks one.
	if n, err := s.Copy("COPY (SELECT 1, NULL) TO STDOUT WITH (FORMAT csv, NULL E'\\' from stdin ')", strings.NewReader("unused"), &out); err != nil ||
		n != 1 || out.String() != "1,' from stdin \n" {
		t.Errorf("Copy out with an E'' string: %d, %q, %v", n, out.String(), err)
	}
	if _, err := s.Copy("COPY "+table+" FROM STDIN", nil, &out); CodeOf(err) != InterfaceError || !strings.Contains(err.Error(), "r is nil") {
		t.Errorf("Copy in with a nil reader: %v", err)
	}
	if _, err := s.Copy("COPY "+table+" TO STDOUT", strings.NewReader(""), nil); CodeOf(err) != InterfaceError || !strings.Contains(err.Error(), "w is nil") {
		t.Errorf("Copy out with a nil writer: %v", err)
	}
	if _, err := s.Copy("INSERT INTO "+table+" (id) VALUES (0)", nil, nil); CodeOf(err) != InterfaceError {
		t.Errorf("Copy(INSERT): %v", err)
	}
	if got := countRows(t, s, table); got != "3001" {
		t.Errorf("rows after the INSERT given to Copy (it runs, as on libpq): %s", got)
	}
	if st, err := s.Stats(); err != nil || st.CopiesOpen != 0 || st.InUse != 0 {
		t.Errorf("Stats after the copies: %+v %v", st, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.CopyContext(ctx, "COPY "+table+" TO STDOUT", nil, io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("CopyContext with a done context: %v", err)
	}

	// In a transaction: rolled back with it.
	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tx.Copy("COPY "+table+" FROM STDIN (FORMAT csv)", strings.NewReader("-1,in tx,,1.00,t\n"), nil); err != nil || n != 1 {
		t.Errorf("Tx.Copy: %d, %v", n, err)
	}
	out.Reset()
	if n, err := tx.Copy("COPY (SELECT name FROM "+table+" WHERE id = -1) TO STDOUT", nil, &out); err != nil || n != 1 || out.String() != "in tx\n" {
		t.Errorf("Tx.Copy out: %d, %q, %v", n, out.String(), err)
	}
	tx.Rollback()
	if got := countRows(t, s, table); got != "3001" {
		t.Errorf("rows after the rollback: %s", got)
	}
	stillUsable(t, s, "Copy")
}

// copyBenchSQL is 1,000,000 short rows (about 17 MB of text).
const copyBenchSQL = "COPY (SELECT g, 'row ' || g, g % 7 = 0 FROM generate_series(1, 1000000) g) TO STDOUT"

// countingWriter counts bytes and writes.
type countingWriter struct{ bytes, writes int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.bytes += len(p)
	w.writes++
	return len(p), nil
}

// Reading one message per cgo call (as CopyTo did) and a chunk per call give the same bytes.
func TestCopyToChunkedSameAsPerMessage(t *testing.T) {
	s := openTest(t)
	sql := "COPY (SELECT * FROM (VALUES (1, 'a\tb'), (2, E'new\\nline'), (3, NULL)) v, generate_series(1, 20000) g) TO STDOUT"
	var perMessage, chunked bytes.Buffer
	n1, err1 := s.copyTo(context.Background(), sql, &perMessage, true)
	n2, err2 := s.CopyTo(sql, &chunked)
	if err1 != nil || err2 != nil || n1 != 60000 || n2 != 60000 || !bytes.Equal(perMessage.Bytes(), chunked.Bytes()) {
		t.Fatalf("per message %d rows, %d bytes, %v; chunked %d rows, %d bytes, %v", n1, perMessage.Len(), err1, n2, chunked.Len(), err2)
	}
}

// clientCPU is this process's user+system CPU time (the server's is not in it).
func clientCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCopyTo: CopyTo of 1,000,000 rows into a discarding writer, reading one CopyData
// message (row) per cgo call (pgsess_copy_read, as CopyTo did) against a chunk per call
// (pgsess_copy_read_chunk). ns/row is wall time (the server's work included), cpu-ns/row this
// process's CPU time (the client's cost alone).
func BenchmarkCopyTo(b *testing.B) {
	s := openTest(b)
	for _, c := range []struct {
		name       string
		perMessage bool
	}{{"per-message", true}, {"chunked", false}} {
		b.Run(c.name, func(b *testing.B) {
			var w countingWriter
			start, cpu := time.Now(), clientCPU()
			for i := 0; i < b.N; i++ {
				n, err := s.copyTo(context.Background(), copyBenchSQL, &w, c.perMessage)
				if err != nil || n != 1000000 {
					b.Fatalf("%d rows, %v", n, err)
				}
			}
			rows := float64(b.N) * 1e6
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/rows, "ns/row")
			b.ReportMetric(float64((clientCPU()-cpu).Nanoseconds())/rows, "cpu-ns/row")
			b.ReportMetric(float64(w.writes)/float64(b.N), "writes/op")
		})
	}
}
