package pgsess

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoolStatsV2TextResizeDrain(t *testing.T) {
	s := openTest(t, WithPoolMaxSize(2), WithCheckoutTimeout(3*time.Second), WithPoolIdleTTL(59*time.Second))
	mustQuery(t, s, "SELECT 1").Close()
	st, err := s.PoolStatsV2()
	if err != nil {
		t.Fatal(err)
	}
	if st.MaxSize != 2 || st.Checkouts < 1 || st.Open < 1 || st.WaitCount < 1 {
		t.Fatalf("stats: %+v", st)
	}
	var inBuckets uint64
	for _, n := range st.WaitBuckets {
		inBuckets += n
	}
	if inBuckets != st.WaitCount {
		t.Fatalf("buckets %d, waits %d", inBuckets, st.WaitCount)
	}
	text, err := s.PoolStatsText()
	if err != nil || !strings.Contains(text, `pool="`+s.PoolID()+`"`) || !strings.Contains(text, "# TYPE") {
		t.Fatalf("stats text %q: %v", text, err)
	}

	// Resize up: 4 goroutines hold a connection each at once (pg_sleep), through the Go gate.
	if err := s.Resize(4); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.PoolStatsV2(); st.MaxSize != 4 {
		t.Fatalf("max size after resize: %d", st.MaxSize)
	}
	var wg sync.WaitGroup
	var failed int32
	start := time.Now()
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Query("SELECT pg_sleep(0.5)")
			if err != nil {
				atomic.AddInt32(&failed, 1)
				return
			}
			r.Close()
		}()
	}
	wg.Wait()
	if failed != 0 || time.Since(start) > 1400*time.Millisecond {
		t.Fatalf("4 sleeps on pool 4: %d failed, took %v (not concurrent)", failed, time.Since(start))
	}
	if err := s.Resize(0); err == nil {
		t.Fatal("resize to 0 accepted")
	}
	if err := s.Resize(2); err != nil {
		t.Fatal(err)
	}

	// Drain with a statement in flight: it finishes, then everything is closed; the pool serves
	// again afterwards.
	done := make(chan error, 1)
	go func() {
		r, err := s.Query("SELECT pg_sleep(0.3)")
		if err == nil {
			r.Close()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := s.Drain(5 * time.Second); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("statement in flight during drain: %v", err)
	}
	st, _ = s.PoolStatsV2()
	if st.Open != 0 || st.ClosedDrained < 1 {
		t.Fatalf("after drain: %+v", st)
	}
	mustQuery(t, s, "SELECT 2").Close()
}

func TestPasswordProviderAndConfigCheck(t *testing.T) {
	var calls int32
	var seenUser atomic.Value
	p := NewPasswordProvider(func(host string, port uint16, user string) (string, bool, error) {
		atomic.AddInt32(&calls, 1)
		seenUser.Store(user)
		return "", false, nil // the configured password
	})
	s := openTest(t, WithPasswordProvider(p), WithPoolMaxSize(3))
	mustQuery(t, s, "SELECT 1").Close()
	if atomic.LoadInt32(&calls) < 1 || seenUser.Load() == nil || seenUser.Load().(string) == "" {
		t.Fatalf("provider calls %d, user %v", calls, seenUser.Load())
	}
	// A provider that fails makes the connection attempt fail, with no panic across cgo.
	bad := NewPasswordProvider(func(string, uint16, string) (string, bool, error) {
		return "", false, errors.New("vault is down")
	})
	if _, err := Open("gotest", WithPasswordProvider(bad), WithCheckoutTimeout(2*time.Second)); err == nil {
		t.Fatal("a failing password provider still connected")
	}
	panicky := NewPasswordProvider(func(string, uint16, string) (string, bool, error) { panic("boom") })
	if _, err := Open("gotest", WithPasswordProvider(panicky), WithCheckoutTimeout(2*time.Second)); err == nil {
		t.Fatal("a panicking password provider still connected")
	}
	if _, err := Open("gotest", WithPasswordProvider(nil)); err == nil {
		t.Fatal("a nil provider accepted")
	}

	if err := ConfigCheck("host=localhost port=5432 dbname=x"); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if err := ConfigCheck("host=localhost sslmode=maybe"); !errors.As(err, &e) || e.Code != ConfigError {
		t.Fatalf("bad sslmode: %v", err)
	}
	if err := ConfigCheck("gssencmode=require"); !errors.As(err, &e) || e.Code != NotSupportedError {
		t.Fatalf("gssencmode=require: %v", err)
	}
	if err := ConfigCheck("postgresql://u:hunter2@h/db?sslmode=bogus"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("password in error or none: %v", err)
	}
}
