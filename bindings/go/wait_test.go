package pgsess

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Statements with arguments wait for their answers in the netpoller, not in cgo: while 32 of
// them are in flight on a pool of 32, their goroutines are parked for I/O ("IO wait" in a
// goroutine dump), none inside a cgo call ("syscall").
func TestStatementsInFlightWaitInTheNetpoller(t *testing.T) {
	const n = 32
	s := openTest(t, WithPoolMaxSize(n), WithCheckoutTimeout(60*time.Second))
	var wg sync.WaitGroup
	for i := 0; i < n; i++ { // every connection open first
		wg.Add(1)
		go func() { defer wg.Done(); s.Exec("SELECT $1::int", 1) }()
	}
	wg.Wait()
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res, err := s.Query("SELECT $1::int4, pg_sleep(0.5)", i)
			if err == nil {
				var got int
				res.Next()
				err = res.Scan(&got, nil)
				res.Close()
				if err == nil && got != i {
					err = errors.New("another statement's answer")
				}
			}
			errs <- err
		}(i)
	}
	time.Sleep(250 * time.Millisecond)
	buf := make([]byte, 1<<22)
	dump := string(buf[:runtime.Stack(buf, true)])
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	ioWait, inCgo := 0, 0
	for _, g := range strings.Split(dump, "\n\n") {
		if !strings.Contains(g, "TestStatementsInFlightWaitInTheNetpoller.func") {
			continue
		}
		switch {
		case strings.Contains(g, "[IO wait"):
			ioWait++
		case strings.Contains(g, "[syscall"):
			inCgo++
		}
	}
	t.Logf("%d statements in flight: %d goroutines parked for I/O, %d in a cgo call", n, ioWait, inCgo)
	if ioWait < n*3/4 || inCgo > n/8 {
		t.Errorf("%d parked for I/O and %d in cgo of %d statements in flight", ioWait, inCgo, n)
	}
}

// A deadline while the statement waits in the netpoller cancels it on the server, and the
// statement timeout (which the library enforces after the netpoller's wait ends at it) too.
func TestWaitInNetpollerEndsAtDeadlineAndStatementTimeout(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(1), WithStatementTimeout(400*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.QueryContext(ctx, "SELECT pg_sleep($1::float8)", 3)
	if !errors.Is(err, context.DeadlineExceeded) || !IsQueryCanceled(err) {
		t.Fatalf("deadline: %v", err)
	}
	if d := time.Since(start); d > 150*time.Millisecond+time.Second {
		t.Errorf("the deadline's cancel took %v", d)
	}
	start = time.Now()
	_, err = s.Query("SELECT pg_sleep($1::float8)", 3)
	if !IsQueryCanceled(err) {
		t.Fatalf("statement timeout: %v", err)
	}
	if d := time.Since(start); d < 350*time.Millisecond || d > 2500*time.Millisecond {
		t.Errorf("the statement timeout ended the statement after %v (timeout 400 ms)", d)
	}
	var got string
	res, err := s.Query("SELECT $1::text", "reused")
	if err != nil {
		t.Fatal(err)
	}
	res.Next()
	res.Scan(&got)
	res.Close()
	if got != "reused" {
		t.Errorf("after the cancels: %q", got)
	}
}

// A connection closed by the server and replaced: the new connection gets a duplicate of its
// own (a new serial), and the statement after the failure runs.
func TestWaitAfterReconnect(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(1))
	var pid int32
	res, err := s.Query("SELECT pg_backend_pid() + $1::int", 0)
	if err != nil {
		t.Fatal(err)
	}
	res.Next()
	res.Scan(&pid)
	res.Close()
	killer := openTest(t, WithPoolMaxSize(2)) // another pool, so another connection
	if _, err := killer.Exec("SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 3; i++ {
		res, err = s.Query("SELECT pg_backend_pid() + $1::int", 0)
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after the reconnect: %v", err)
	}
	var pid2 int32
	res.Next()
	res.Scan(&pid2)
	res.Close()
	if pid2 == pid || pid2 == 0 {
		t.Errorf("backend %d, then %d", pid, pid2)
	}
}
