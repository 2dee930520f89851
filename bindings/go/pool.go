package pgsess

/*
#include <stdint.h>
#include <stdlib.h>
#include "handles.h"

// The Go function of passwordcb.go; its exported prototype has char * where the callback type
// has const char *, so the pointer is converted here, in C.
extern int32_t goPasswordCallback(char *, uint16_t, char *, char *, size_t, void *);

static enum pgsess_code pgsess_go_set_password(pgsess_options *opts, uintptr_t handle) {
	return pgsess_options_set_password_callback(opts, (pgsess_password_callback)goPasswordCallback,
	                                            (void *)handle);
}
*/
import "C"

import (
	"runtime/cgo"
	"time"
	"unsafe"
)

// PoolStatsV2 is the pool's state and counters as pgsess_pool_stats_v2 fills them: sizes now,
// checkout waits (total and a histogram), and why connections were closed.
type PoolStatsV2 struct {
	MaxSize, Open, Idle, InUse, Waiting, MinIdle uint32
	ResultsOutstanding, TransactionsOpen         uint64
	PinnedSessions, CopiesOpen                   uint64
	Checkouts, CheckoutTimeouts                  uint64
	// CheckoutsFailedFast counts checkouts refused at once while the server was known to be down.
	CheckoutsFailedFast                       uint64
	Connects, ConnectFailures                 uint64
	ClosedDead, ClosedIdleTTL, ClosedLifetime uint64
	ClosedHealth, ClosedDrained               uint64
	WaitTotal                                 time.Duration
	WaitCount                                 uint64
	// WaitBuckets counts checkouts by wait: at most WaitBucketBounds[i], the last one longer.
	WaitBuckets [9]uint64
}

// WaitBucketBounds are the upper bounds of PoolStatsV2.WaitBuckets[0..7]; bucket 8 is longer.
var WaitBucketBounds = [8]time.Duration{
	time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 500 * time.Millisecond, time.Second, 5 * time.Second,
}

// PoolStatsV2 reports the pool's statistics, version 2 (pgsess_pool_stats_v2). Goroutines waiting
// in this binding's gate are not in Waiting; Stats adds them.
func (s *Session) PoolStatsV2() (PoolStatsV2, error) {
	cs, err := s.handle()
	if err != nil {
		return PoolStatsV2{}, err
	}
	defer s.release()
	var st C.pgsess_stats_v2
	if code := C.pgsess_pool_stats_v2(cs, &st, C.size_t(unsafe.Sizeof(st))); code != C.PGSESS_OK {
		return PoolStatsV2{}, newError(Code(code), "pgsess_pool_stats_v2 failed")
	}
	out := PoolStatsV2{
		MaxSize: uint32(st.max_size), Open: uint32(st.open), Idle: uint32(st.idle), InUse: uint32(st.in_use),
		Waiting: uint32(st.waiting), MinIdle: uint32(st.min_idle),
		ResultsOutstanding: uint64(st.results_outstanding), TransactionsOpen: uint64(st.transactions_open),
		PinnedSessions: uint64(st.pinned_sessions), CopiesOpen: uint64(st.copies_open),
		Checkouts: uint64(st.checkouts), CheckoutTimeouts: uint64(st.checkout_timeouts),
		CheckoutsFailedFast: uint64(st.checkouts_failed_fast),
		Connects:            uint64(st.connects), ConnectFailures: uint64(st.connect_failures),
		ClosedDead: uint64(st.closed_dead), ClosedIdleTTL: uint64(st.closed_idle_ttl),
		ClosedLifetime: uint64(st.closed_lifetime), ClosedHealth: uint64(st.closed_health),
		ClosedDrained: uint64(st.closed_drained),
		WaitTotal:     time.Duration(st.wait_total_us) * time.Microsecond, WaitCount: uint64(st.wait_count),
	}
	for i := range out.WaitBuckets {
		out.WaitBuckets[i] = uint64(st.wait_buckets[i])
	}
	return out, nil
}

// PoolStatsText is PoolStatsV2 in Prometheus' text exposition format, every sample labelled
// with the pool id (pgsess_pool_stats_text), ready to append to a /metrics response.
func (s *Session) PoolStatsText() (string, error) {
	cs, err := s.handle()
	if err != nil {
		return "", err
	}
	defer s.release()
	text := C.pgsess_pool_stats_text(cs)
	if text == nil {
		return "", newError(InterfaceError, "pgsess_pool_stats_text failed")
	}
	defer C.pgsess_string_free(text)
	return C.GoString(text), nil
}

// Drain stops the pool handing out connections, waits up to timeout for those in use, and
// closes them all (pgsess_pool_drain): for graceful shutdown, or after rotating credentials.
// Statements that need a connection meanwhile wait, then get a new one. A PoolExhausted error
// says what was still in use at the timeout (closed when it comes back). Do not call it while
// this goroutine holds a connection of the pool (a Tx, a pinned session, unclosed Results).
func (s *Session) Drain(timeout time.Duration) error {
	cs, err := s.handle()
	if err != nil {
		return err
	}
	defer s.release()
	ms := timeout.Milliseconds()
	if ms < 0 {
		ms = 0
	} else if ms > int64(^uint32(0)) {
		ms = int64(^uint32(0))
	}
	var cerr *C.pgsess_error
	if C.pgsess_pool_drain(cs, C.uint32_t(ms), &cerr) != C.PGSESS_OK {
		return takeError(cerr, "pgsess_pool_drain")
	}
	return nil
}

// Resize changes the pool's max size (1 to 10000) for every session on it (pgsess_pool_resize),
// and the Go-side gate that makes this package's goroutines wait in Go follows it. (A resize
// made through the C library directly, by other code in the process, is not seen by the gate.)
func (s *Session) Resize(maxSize int) error {
	if maxSize < 1 || maxSize > 10000 {
		return errorf(ConfigError, "pool max size %d out of range (1 to 10000)", maxSize)
	}
	cs, err := s.handle()
	if err != nil {
		return err
	}
	defer s.release()
	var cerr *C.pgsess_error
	if C.pgsess_pool_resize(cs, C.uint32_t(maxSize), &cerr) != C.PGSESS_OK {
		return takeError(cerr, "pgsess_pool_resize")
	}
	if s.gate != nil {
		s.gate.resize(maxSize)
	}
	return nil
}

// ConfigCheck checks a connection string (URI or key=value) or a session name (its PGSQL_<NAME>
// variable) as Open reads it, without connecting (pgsess_config_check): service and password
// files are looked up and every value checked. The error (ConfigError, NotSupportedError) never
// contains a password.
func ConfigCheck(uriOrConninfo string) error {
	c, err := cString(uriOrConninfo, "connection string")
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(c))
	var cerr *C.pgsess_error
	if C.pgsess_config_check(c, &cerr) != C.PGSESS_OK {
		return takeError(cerr, "pgsess_config_check")
	}
	return nil
}

// PasswordFunc returns the password for a new connection to host:port as user (a rotated
// password, a cloud IAM token), or ok false to use the configured one (the URI, PGPASSWORD, the
// password file). An error fails that connection attempt. It is called from library threads as
// well as from goroutines, possibly at once: it must be safe for concurrent use, should return
// promptly, and must not use pgsess sessions.
type PasswordFunc func(host string, port uint16, user string) (password string, ok bool, err error)

// PasswordProvider holds a PasswordFunc for WithPasswordProvider. Sessions opened with the same
// provider (and the same URI and options) share a pool; a provider is never freed, so make one
// per configuration (at start-up), not one per Open.
type PasswordProvider struct {
	fn     PasswordFunc
	handle cgo.Handle
}

// NewPasswordProvider wraps fn for WithPasswordProvider.
func NewPasswordProvider(fn PasswordFunc) *PasswordProvider {
	p := &PasswordProvider{fn: fn}
	p.handle = cgo.NewHandle(p)
	return p
}

// WithPasswordProvider asks p for the password of each new connection
// (pgsess_options_set_password_callback), so connections opened after a rotation use the new
// password without reopening anything.
func WithPasswordProvider(p *PasswordProvider) Option {
	return func(o *options) {
		if p == nil || p.fn == nil {
			o.err = errorf(InterfaceError, "password provider is nil (use NewPasswordProvider)")
			return
		}
		o.password = p
	}
}

// setPassword installs o's provider on copts.
func setPassword(copts *C.pgsess_options, p *PasswordProvider) error {
	return codeError(C.pgsess_go_set_password(copts, C.uintptr_t(p.handle)), "password provider")
}
