package pgsess

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// notify sends pg_notify(channel, payload) from s and returns the backend that sent it.
func notify(t testing.TB, s *Session, channel, payload string) int32 {
	t.Helper()
	res := mustQuery(t, s, "SELECT pg_notify($1, $2)", channel, payload)
	defer res.Close()
	return res.BackendPID()
}

// waitFor waits up to d for s's next notification.
func waitFor(t testing.TB, s *Session, d time.Duration) *Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	n, err := s.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("WaitForNotification (%v): %v", d, err)
	}
	return n
}

// expectNone checks that no notification arrives within d.
func expectNone(t testing.TB, s *Session, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if n, err := s.WaitForNotification(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expected no notification within %v: %+v, %v", d, n, err)
	}
}

// A NOTIFY from another session reaches a listening pooled session with its channel (case kept),
// payload and sender's pid; after Unlisten nothing more arrives.
func TestListenNotify(t *testing.T) {
	l := openTest(t)
	s := openTest(t)
	ch := uniq("GoChan")
	if err := l.Listen(ch); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(ch); err != nil { // twice is harmless
		t.Fatal(err)
	}
	pid := notify(t, s, ch, "héllo, wörld")
	n := waitFor(t, l, 5*time.Second)
	if *n != (Notification{Channel: ch, Payload: "héllo, wörld", PID: pid}) || pid == 0 {
		t.Fatalf("got %+v, want channel %q from pid %d", n, ch, pid)
	}
	// The name is quoted: the folded-case channel is another channel.
	notify(t, s, strings.ToLower(ch), "folded")
	notify(t, s, ch, "")
	if n := waitFor(t, l, 5*time.Second); n.Channel != ch || n.Payload != "" || n.Gap {
		t.Fatalf("empty payload: %+v", n)
	}

	// A done context returns at once, and a deadline is kept.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.WaitForNotification(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitForNotification with a cancelled context: %v", err)
	}
	start := time.Now()
	expectNone(t, l, 300*time.Millisecond)
	if el := time.Since(start); el < 290*time.Millisecond || el > 2*time.Second {
		t.Errorf("a 300 ms deadline returned after %v", el)
	}

	if err := l.Unlisten(ch); err != nil {
		t.Fatal(err)
	}
	notify(t, s, ch, "after unlisten")
	expectNone(t, l, 500*time.Millisecond)
	if err := l.Listen("bad\x00name"); CodeOf(err) != InterfaceError {
		t.Errorf("channel with a zero byte: %v", err)
	}

	l.Close()
	if _, err := l.WaitForNotification(context.Background()); CodeOf(err) != InterfaceError {
		t.Errorf("WaitForNotification after Close: %v", err)
	}
	if err := l.Listen(ch); CodeOf(err) != InterfaceError {
		t.Errorf("Listen after Close: %v", err)
	}
}

// recv takes one notification from ch within d; ok is false when ch was closed.
func recv(t testing.TB, ch <-chan Notification, d time.Duration) (Notification, bool) {
	t.Helper()
	select {
	case n, ok := <-ch:
		return n, ok
	case <-time.After(d):
		t.Fatalf("nothing on the Notifications channel within %v", d)
	}
	return Notification{}, false
}

// Notifications delivers in order and closes its channel when ctx ends, or when the session is
// closed.
func TestNotificationsChannel(t *testing.T) {
	l := openTest(t)
	s := openTest(t)
	chA, chB := uniq("go_chan_a"), uniq("go_chan_b")
	for _, c := range []string{chA, chB} {
		if err := l.Listen(c); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notes := l.Notifications(ctx)
	// 200 notifications from one statement, interleaved on two channels, then one more.
	res := mustQuery(t, s, "SELECT pg_notify(CASE WHEN i % 3 = 0 THEN $2 ELSE $1 END, i::text) FROM generate_series(1, 200) AS i", chA, chB)
	pid := res.BackendPID()
	res.Close()
	last := notify(t, s, chA, "last")
	for i := 1; i <= 200; i++ {
		n, ok := recv(t, notes, 5*time.Second)
		want := Notification{Channel: chA, Payload: strconv.Itoa(i), PID: pid}
		if i%3 == 0 {
			want.Channel = chB
		}
		if !ok || n != want {
			t.Fatalf("notification %d: %+v (open %v), want %+v", i, n, ok, want)
		}
	}
	if n, ok := recv(t, notes, 5*time.Second); !ok || n.Payload != "last" || n.PID != last {
		t.Fatalf("the last notification: %+v (open %v)", n, ok)
	}
	start := time.Now()
	cancel()
	for {
		if _, ok := recv(t, notes, 2*time.Second); !ok {
			break
		}
	}
	t.Logf("channel closed %v after cancel", time.Since(start))
	// The session still works; what arrives meanwhile waits for the next reader.
	notify(t, s, chB, "queued")
	if n := waitFor(t, l, 5*time.Second); n.Channel != chB || n.Payload != "queued" {
		t.Errorf("after the channel closed: %+v", n)
	}

	// Closing the session closes the channel too.
	l2, err := Open("gotest")
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Listen(chA); err != nil {
		t.Fatal(err)
	}
	notes2 := l2.Notifications(context.Background())
	notify(t, s, chA, "to l2")
	if n, ok := recv(t, notes2, 5*time.Second); !ok || n.Payload != "to l2" {
		t.Fatalf("l2: %+v (open %v)", n, ok)
	}
	l2.Close()
	if _, ok := recv(t, notes2, 2*time.Second); ok {
		t.Fatal("Notifications channel still open after Close")
	}
}

// When the listener connection is killed, the library reconnects, listens again and delivers a
// gap marker for the channel; notifications sent afterwards arrive.
func TestNotificationGap(t *testing.T) {
	l := openTest(t)
	s := openTest(t)
	ch := uniq("go_gap")
	if err := l.Listen(ch); err != nil {
		t.Fatal(err)
	}
	notify(t, s, ch, "before")
	if n := waitFor(t, l, 5*time.Second); n.Payload != "before" || n.Gap {
		t.Fatalf("before the kill: %+v", n)
	}
	killed := scalar(t, s, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "+
		"WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()")
	if killed == "0" {
		t.Fatal("no listener connection found in pg_stat_activity")
	}
	start := time.Now()
	n := waitFor(t, l, 15*time.Second)
	if *n != (Notification{Channel: ch, Gap: true}) {
		t.Fatalf("after killing %s listener(s): %+v, want a gap marker for %q", killed, n, ch)
	}
	t.Logf("gap marker %v after the kill", time.Since(start))
	notify(t, s, ch, "after")
	if n := waitFor(t, l, 10*time.Second); n.Payload != "after" || n.Gap || n.Channel != ch {
		t.Fatalf("after the gap marker: %+v", n)
	}
	expectNone(t, l, 300*time.Millisecond) // one marker per channel, not more
}

// A plain LISTEN on a pinned session's own connection is delivered by WaitForNotification on it.
func TestListenPinnedSQL(t *testing.T) {
	s := openTest(t)
	p := mustPin(t, s)
	defer p.Close()
	ch := uniq("go_pinned_listen")
	exec(t, p, fmt.Sprintf(`LISTEN "%s"`, ch))
	pid := notify(t, s, ch, "to the pinned session")
	n := waitFor(t, p, 5*time.Second)
	if *n != (Notification{Channel: ch, Payload: "to the pinned session", PID: pid}) {
		t.Fatalf("got %+v", n)
	}
	// Also while it is busy with a statement of its own.
	go func() {
		time.Sleep(200 * time.Millisecond)
		if _, err := s.Exec("SELECT pg_notify($1, 'during')", ch); err != nil {
			t.Error(err)
		}
	}()
	exec(t, p, "SELECT pg_sleep(0.5)")
	if n := waitFor(t, p, 5*time.Second); n.Payload != "during" {
		t.Fatalf("notification during a statement: %+v", n)
	}
}

// Goroutines waiting for notifications wait in Go: 200 of them hold no OS thread each, every one
// gets a notification, and Close wakes the rest at once.
func TestWaitForNotificationWaitsInGo(t *testing.T) {
	l := openTest(t)
	s := openTest(t)
	ch := uniq("GoWaiters")
	if err := l.Listen(ch); err != nil {
		t.Fatal(err)
	}
	base := osThreads(t)
	const waiters = 200
	got := make(chan *Notification, waiters)
	errs := make(chan error, waiters)
	for i := 0; i < waiters; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			n, err := l.WaitForNotification(ctx)
			if err != nil {
				errs <- err
				return
			}
			got <- n
		}()
	}
	time.Sleep(200 * time.Millisecond)
	n := osThreads(t)
	t.Logf("OS threads: %d before, %d with %d waiters", base, n, waiters)
	if n > base+20 {
		t.Errorf("%d goroutines waiting for notifications: %d OS threads (%d before)", waiters, n, base)
	}
	for i := 0; i < waiters-10; i++ {
		notify(t, s, ch, strconv.Itoa(i))
	}
	seen := map[string]bool{}
	sent := time.Now()
	for i := 0; i < waiters-10; i++ {
		select {
		case n := <-got:
			seen[n.Payload] = true
		case err := <-errs:
			t.Fatalf("waiter: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d notifications delivered", i, waiters-10)
		}
	}
	t.Logf("%d notifications delivered %v after the last was sent", waiters-10, time.Since(sent))
	if len(seen) != waiters-10 {
		t.Errorf("%d distinct payloads", len(seen))
	}
	start := time.Now()
	l.Close()
	for i := 0; i < 10; i++ {
		select {
		case err := <-errs:
			if CodeOf(err) != InterfaceError {
				t.Errorf("waiter after Close: %v", err)
			}
		case n := <-got:
			t.Errorf("a notification after Close: %+v", n)
		case <-time.After(5 * time.Second):
			t.Fatalf("Close did not wake the waiters")
		}
	}
	if w := time.Since(start); w > time.Second {
		t.Errorf("Close woke the waiters after %v", w)
	}
}
