package pgsess

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// osThreads is how many OS threads the process has now.
func osThreads(t testing.TB) int {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("cannot count threads: %v", err)
	}
	return len(entries)
}

// maxThreads samples osThreads every millisecond until stop is closed, and returns the most seen.
func maxThreads(t testing.TB, stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		most := 0
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if n := osThreads(t); n > most {
				most = n
			}
			select {
			case <-stop:
				out <- most
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// checkCanceled asserts err is a deadline's (or cancel's) ContextError wrapping the server's 57014.
func checkCanceled(t testing.TB, err error, cause error) {
	t.Helper()
	if !errors.Is(err, cause) {
		t.Errorf("error does not wrap %v: %v", cause, err)
	}
	if !IsQueryCanceled(err) || SQLStateOf(err) != "57014" {
		t.Errorf("error does not carry the server's 57014: %v (code %v, SQLSTATE %q)", err, CodeOf(err), SQLStateOf(err))
	}
	var ce *ContextError
	if !errors.As(err, &ce) || ce.Err == nil {
		t.Errorf("not a *ContextError with the server's error: %#v", err)
	}
}

// A deadline cancels the running statement on the server within 100 ms of the deadline, and the
// connection is used again (the pool's one connection, same backend).
func TestQueryContextDeadlineCancelsRunningStatement(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(1))
	var pid0 int32
	one(t, s, "SELECT pg_backend_pid()", nil, &pid0)
	before, _ := s.Stats()
	for _, d := range []time.Duration{300 * time.Millisecond, 50 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		start := time.Now()
		_, err := s.QueryContext(ctx, "SELECT pg_sleep(3)")
		late := time.Since(start) - d
		cancel()
		checkCanceled(t, err, context.DeadlineExceeded)
		if late > 100*time.Millisecond || late < 0 {
			t.Errorf("deadline %v: returned %v after it (want within 100 ms)", d, late)
		}
		var pid int32
		one(t, s, "SELECT pg_backend_pid()", nil, &pid)
		if pid != pid0 {
			t.Errorf("after the cancel the statement ran on backend %d, not %d: the connection was not reused", pid, pid0)
		}
	}
	after, _ := s.Stats()
	if after.DiscardedDead != before.DiscardedDead || after.Connects != before.Connects {
		t.Errorf("a cancel cost a connection: before %+v, after %+v", before, after)
	}
	// ExecContext, QueryBinaryContext and CallprocContext too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := s.ExecContext(ctx, "SELECT pg_sleep(3)")
	checkCanceled(t, err, context.DeadlineExceeded)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err = s.QueryBinaryContext(ctx2, "SELECT pg_sleep(3)")
	checkCanceled(t, err, context.DeadlineExceeded)
	ctx3, cancel3 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel3()
	_, err = s.CallprocContext(ctx3, "pg_sleep", 3)
	checkCanceled(t, err, context.DeadlineExceeded)
}

// A context that ends before the call returns its error at once, and a context that does not end
// changes nothing.
func TestQueryContextDoneBeforeAndNever(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.QueryContext(ctx, "SELECT 1"); !errors.Is(err, context.Canceled) || CodeOf(err) == QueryCanceled {
		t.Errorf("cancelled context: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := s.QueryContext(ctx, "SELECT $1::int + 1", 41)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var n int
	if !res.Next() || res.Scan(&n) != nil || n != 42 {
		t.Errorf("got %d", n)
	}
}

// Cancelling one goroutine's statement leaves the others' on the same session alone.
func TestQueryContextCancelsOnlyItsStatement(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(4))
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := s.QueryContext(ctx, "SELECT pg_sleep(0.6)")
			if err == nil {
				res.Close()
			}
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := s.QueryContext(ctx, "SELECT pg_sleep(3)")
	checkCanceled(t, err, context.Canceled)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("another goroutine's statement: %v", err)
		}
	}
}

// A context ends the wait for a connection at once (in Go: no cgo call waits).
func TestContextStopsWaitForConnection(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(1), WithCheckoutTimeout(5*time.Second))
	held := mustQuery(t, s, "SELECT 1")
	defer held.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.QueryContext(ctx, "SELECT 2")
	if w := time.Since(start); w > 150*time.Millisecond {
		t.Errorf("waited %v for a 50 ms deadline", w)
	}
	if !errors.Is(err, context.DeadlineExceeded) || IsPoolExhausted(err) {
		t.Errorf("wait for a connection with a deadline: %v", err)
	}
	var ce *ContextError
	if !errors.As(err, &ce) || ce.Err != nil {
		t.Errorf("no statement ran, so no server error: %#v", err)
	}
	// Begin, Pin, Stream and copies wait the same way.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := s.BeginTx(ctx2, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("BeginTx: %v", err)
	}
	if _, err := s.PinContext(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("PinContext: %v", err)
	}
	if _, err := s.Stream(ctx2, "SELECT 1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stream: %v", err)
	}
	if _, err := s.CopyToContext(ctx2, "COPY (SELECT 1) TO STDOUT", &strings.Builder{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CopyToContext: %v", err)
	}
	// Without a context the wait ends at the checkout timeout, with the library's kind of message.
	s2 := openTest(t, WithPoolMaxSize(1), WithCheckoutTimeout(100*time.Millisecond))
	held2 := mustQuery(t, s2, "SELECT 1")
	defer held2.Close()
	_, err = s2.Query("SELECT 2")
	if !IsPoolExhausted(err) || !strings.Contains(err.Error(), "1 results not yet freed") {
		t.Errorf("checkout timeout: %v", err)
	}
}

// 1,000 goroutines on a pool of 8 wait in Go, not in cgo: the process stays under 40 OS threads.
func TestThousandGoroutinesFewThreads(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(8), WithCheckoutTimeout(60*time.Second))
	// Warm the pool: 8 connections open.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.Exec("SELECT pg_sleep(0.05)") }()
	}
	wg.Wait()
	base := osThreads(t)
	stop := make(chan struct{})
	most := maxThreads(t, stop)
	var failures, done int64
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var err error
			if i%2 == 0 {
				_, err = s.ExecContext(ctx, "SELECT pg_sleep(0.002)")
			} else {
				_, err = s.Exec("SELECT pg_sleep(0.002)")
			}
			if err != nil {
				if atomic.AddInt64(&failures, 1) < 5 {
					t.Errorf("statement %d: %v", i, err)
				}
			}
			atomic.AddInt64(&done, 1)
		}(i)
	}
	wg.Wait()
	close(stop)
	n := <-most
	t.Logf("1000 goroutines on pool 8: at most %d OS threads (%d before)", n, base)
	if n >= 40 {
		t.Errorf("%d OS threads for 1000 goroutines on pool 8 (want under 40)", n)
	}
	if done != 1000 || failures != 0 {
		t.Errorf("%d done, %d failed", done, failures)
	}
	st, _ := s.Stats()
	if st.InUse != 0 || st.Waiting != 0 {
		t.Errorf("after: %+v", st)
	}
}

// BeginTx sends every isolation level and read-only with BEGIN; a transaction's statement is
// cancelled by its context alone, and the transaction must then be rolled back.
func TestBeginTxOptionsAndContext(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(2))
	for _, c := range []struct {
		iso  Isolation
		ro   bool
		want string
	}{
		{IsolationDefault, false, "read committed"},
		{ReadUncommitted, false, "read uncommitted"},
		{ReadCommitted, true, "read committed"},
		{RepeatableRead, false, "repeatable read"},
		{Serializable, true, "serializable"},
	} {
		tx, err := s.BeginTx(context.Background(), &TxOptions{Isolation: c.iso, ReadOnly: c.ro})
		if err != nil {
			t.Fatalf("%v: %v", c.iso, err)
		}
		res := mustQuery(t, tx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')")
		var iso, ro string
		if !res.Next() || res.Scan(&iso, &ro) != nil {
			t.Fatal("no row")
		}
		res.Close()
		if iso != c.want || (ro == "on") != c.ro {
			t.Errorf("%v read-only %v: server says %q, read only %q", c.iso, c.ro, iso, ro)
		}
		if err := tx.Commit(); err != nil {
			t.Errorf("commit: %v", err)
		}
	}
	if _, err := s.BeginTx(context.Background(), &TxOptions{Isolation: Isolation(42)}); CodeOf(err) != InterfaceError {
		t.Errorf("bad isolation: %v", err)
	}

	tx, err := s.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = tx.ExecContext(ctx, "SELECT pg_sleep(3)")
	checkCanceled(t, err, context.DeadlineExceeded)
	if w := time.Since(start); w > 300*time.Millisecond {
		t.Errorf("took %v", w)
	}
	if _, err := tx.Exec("SELECT 1"); SQLStateOf(err) != "25P02" {
		t.Errorf("after a cancelled statement the transaction is aborted: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Error(err)
	}
	st, _ := s.Stats()
	if st.InUse != 0 || st.TransactionsOpen != 0 {
		t.Errorf("after rollback: %+v", st)
	}
}

// A pinned session's statements take turns in Go: a waiting one stops at its context, and a
// running one is cancelled by its own.
func TestPinnedContext(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(2))
	p, err := s.Pin()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	exec(t, p, "SET application_name = 'pinned ctx'")
	running := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		defer cancel()
		_, err := p.ExecContext(ctx, "SELECT pg_sleep(3)")
		running <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := p.ExecContext(ctx, "SELECT 1"); !errors.Is(err, context.DeadlineExceeded) || CodeOf(err) == QueryCanceled {
		t.Errorf("waiting for the pinned session's turn: %v", err)
	}
	if w := time.Since(start); w > 150*time.Millisecond {
		t.Errorf("waited %v for its turn with a 50 ms deadline", w)
	}
	checkCanceled(t, <-running, context.DeadlineExceeded)
	var name string
	one(t, p, "SHOW application_name", nil, &name)
	if name != "pinned ctx" {
		t.Errorf("the pinned session lost its state: %q", name)
	}
}

// Stream reads a large result a chunk at a time; a deadline stops it mid-way.
func TestStream(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(2), WithFetchSize(500))
	rows, err := s.Stream(context.Background(), "SELECT i, 'row ' || i FROM generate_series(1, $1::int) AS i", 12345)
	if err != nil {
		t.Fatal(err)
	}
	var n, sum int64
	for rows.Next() {
		var i int64
		var txt string
		if err := rows.Scan(&i, &txt); err != nil {
			t.Fatal(err)
		}
		if txt != fmt.Sprintf("row %d", i) {
			t.Fatalf("row %d: %q", i, txt)
		}
		n++
		sum += i
	}
	if err := rows.Err(); err != nil || n != 12345 || sum != 12345*12346/2 {
		t.Errorf("%d rows, sum %d, err %v", n, sum, err)
	}
	if rows.Status() != "SELECT 12345" || rows.RowsAffected() != 12345 {
		t.Errorf("status %q", rows.Status())
	}
	rows.Close()
	st, _ := s.Stats()
	if st.InUse != 0 {
		t.Errorf("after the stream: %+v", st)
	}

	// A []byte argument: buffered, same interface.
	rows, err = s.Stream(context.Background(), "SELECT length($1::bytea)", []byte{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	var l int
	if !rows.Next() || rows.Scan(&l) != nil || l != 3 || rows.Next() {
		t.Errorf("bytea argument: %d", l)
	}
	rows.Close()

	// An error in the statement.
	if _, err := s.Stream(context.Background(), "SELECT 1/0"); SQLStateOf(err) != "22012" {
		t.Errorf("1/0: %v", err)
	}

	// A deadline while rows still come: the server is asked to cancel, Next stops. (The server
	// sends its output 8 KB at a time: each slow row is larger, so the rows before it are not
	// held back waiting for a full packet.)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	rows, err = s.Stream(ctx, "SELECT i, repeat('x', CASE WHEN i > 500 THEN 9000 ELSE 1 END), "+
		"pg_sleep(CASE WHEN i > 500 THEN 0.01 ELSE 0 END) FROM generate_series(1, 1000) AS i")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	seen := 0
	for rows.Next() {
		seen++
	}
	if seen != 500 {
		t.Errorf("%d rows before the deadline, want the first chunk's 500", seen)
	}
	if !errors.Is(rows.Err(), context.DeadlineExceeded) {
		t.Errorf("stream past its deadline: %v", rows.Err())
	}
	if w := time.Since(start); w > time.Second {
		t.Errorf("the stream went on %v after its deadline", w)
	}
	rows.Close()
	var one1 int
	one(t, s, "SELECT 1", nil, &one1)
	st, _ = s.Stats()
	if st.InUse != 0 {
		t.Errorf("after the cancelled stream: %+v", st)
	}
}

// CopyToContext's deadline cancels a COPY whose query is slow, on the server.
func TestCopyContextCancelsOnServer(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.CopyToContext(ctx, "COPY (SELECT pg_sleep(3)) TO STDOUT", &strings.Builder{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("copy past its deadline: %v", err)
	}
	if w := time.Since(start); w > 500*time.Millisecond {
		t.Errorf("copy returned %v after start, deadline 200 ms", w)
	}
}

// A cancel is for its statement only: the next statement on the same connection (here the
// pool's one), sent at once, is not cancelled by a signal still on its way (cancelSettle).
func TestCancelDoesNotReachNextStatement(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(1))
	hit := 0
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := s.ExecContext(ctx, "SELECT pg_sleep(3)")
		cancel()
		checkCanceled(t, err, context.DeadlineExceeded)
		res, err := s.QueryBinary("SELECT pg_sleep(0.05)")
		if err != nil {
			hit++
			t.Logf("statement %d after a cancelled one: %v", i, err)
			continue
		}
		res.Close()
	}
	if hit > 0 {
		t.Errorf("%d of 20 statements sent after a cancelled one were cancelled too", hit)
	}
}
