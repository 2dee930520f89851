package pgsess

/*
#cgo pkg-config: pgsess
#include <stdlib.h>
#include "handles.h"
*/
import "C"

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Version is the library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.pgsess_version()) }

type options struct {
	dbURL           *string
	poolMaxSize     *uint32
	poolIdleTTL     *uint32
	checkoutTimeout *uint32
	reset           *Reset
	pinned          bool
	statementCache  *uint32
	// statementTimeout bounds every statement in the library (pgsess_options_set_statement_timeout_ms).
	statementTimeout *uint32
	// fetchSize is how many rows a stream (Session.Stream, the database/sql driver's Rows)
	// reads per chunk; 0 means defaultFetchSize.
	fetchSize int
	err       error
	// The pool's lifetime (seconds), warm idle connections and health check threshold (ms).
	poolMaxLifetime   *uint32
	poolMinIdle       *uint32
	poolHealthCheckMS *uint32
	// password asks for each new connection's password (WithPasswordProvider).
	password *PasswordProvider
}

// Option configures Open. Sessions with equal URIs and pool options share one process-wide pool.
type Option func(*options)

// WithDBURL uses url (a PostgreSQL URI) instead of the PGSQL_* environment variable.
func WithDBURL(url string) Option {
	return func(o *options) { o.dbURL = &url }
}

// WithPoolMaxSize sets the most connections the pool opens (1 to 10000; default 25).
func WithPoolMaxSize(n int) Option {
	return func(o *options) {
		if n < 0 || n > math.MaxUint32 {
			o.err = errorf(ConfigError, "pool max size %d out of range (1 to 10000)", n)
			return
		}
		v := uint32(n)
		o.poolMaxSize = &v
	}
}

// WithPoolIdleTTL closes connections idle longer than d (whole seconds, rounded up; default
// 60 s). 0 keeps idle connections for the life of the pool.
func WithPoolIdleTTL(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.err = errorf(ConfigError, "pool idle TTL %v is negative", d)
			return
		}
		s := (d + time.Second - 1) / time.Second
		if s > math.MaxUint32 {
			s = math.MaxUint32
		}
		v := uint32(s)
		o.poolIdleTTL = &v
	}
}

// WithPoolMaxLifetime closes a connection once it has been open d (whole seconds, rounded up;
// each connection's limit within +-10% of it; default 1 h), when it is next idle, never under a
// statement. 0 sets no limit. Part of the pool key.
func WithPoolMaxLifetime(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.err = errorf(ConfigError, "pool max lifetime %v is negative", d)
			return
		}
		s := (d + time.Second - 1) / time.Second
		if s > math.MaxUint32 {
			s = math.MaxUint32
		}
		v := uint32(s)
		o.poolMaxLifetime = &v
	}
}

// WithPoolMinIdle keeps at least n idle connections open (default 0; at most 10000, a value
// above the pool's size keeps that many): Open opens them when it creates the pool, and the pool
// re-opens them in the background. Part of the pool key.
func WithPoolMinIdle(n int) Option {
	return func(o *options) {
		if n < 0 || n > math.MaxUint32 {
			o.err = errorf(ConfigError, "pool min idle %d out of range (0 to 10000)", n)
			return
		}
		v := uint32(n)
		o.poolMinIdle = &v
	}
}

// WithPoolHealthCheck gives a connection idle for d or longer (milliseconds, rounded up;
// default 30 s) a round trip before it is handed out; one that does not answer within a second
// is closed and another used. 0 turns the round trip off. Part of the pool key.
func WithPoolHealthCheck(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.err = errorf(ConfigError, "pool health check %v is negative", d)
			return
		}
		ms := (d + time.Millisecond - 1) / time.Millisecond
		if ms > math.MaxUint32 {
			ms = math.MaxUint32
		}
		v := uint32(ms)
		o.poolHealthCheckMS = &v
	}
}

// WithCheckoutTimeout sets how long a statement waits for a pooled connection, including
// opening one (milliseconds, rounded up, at least 1; default 5 s). After it the statement fails
// with PoolExhausted when every connection is held.
func WithCheckoutTimeout(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.err = errorf(ConfigError, "checkout timeout %v must be positive", d)
			return
		}
		ms := (d + time.Millisecond - 1) / time.Millisecond
		if ms > math.MaxUint32 {
			ms = math.MaxUint32
		}
		v := uint32(ms)
		o.checkoutTimeout = &v
	}
}

// WithStatementTimeout bounds every statement of the session in the library
// (pgsess_options_set_statement_timeout_ms; milliseconds, rounded up): after d the library asks
// the server to cancel it, and it fails with QueryCanceled. 0, the default, sets no bound. Not
// part of the pool key. A context deadline (QueryContext, ...) bounds one call instead.
func WithStatementTimeout(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.err = errorf(ConfigError, "statement timeout %v is negative", d)
			return
		}
		ms := (d + time.Millisecond - 1) / time.Millisecond
		if ms > math.MaxUint32 {
			ms = math.MaxUint32
		}
		v := uint32(ms)
		o.statementTimeout = &v
	}
}

// defaultFetchSize is how many rows a stream reads per chunk unless WithFetchSize says.
const defaultFetchSize = 1000

// WithFetchSize sets how many rows a stream (Session.Stream, and the Rows of the database/sql
// driver) asks the server for at a time (pgsess_query_stream's chunk_rows; default 1000): memory
// holds one chunk, whatever the size of the result, and each further chunk costs a round trip.
// Not part of the pool key.
func WithFetchSize(rows int) Option {
	return func(o *options) {
		if rows < 1 || rows > math.MaxUint32 {
			o.err = errorf(ConfigError, "fetch size %d out of range (1 to 4294967295)", rows)
			return
		}
		o.fetchSize = rows
	}
}

// Reset says what a pool undoes before a connection goes to its next user (WithReset).
type Reset int

const (
	// ResetDirty, the default: DISCARD ALL after a use that may have changed session state (a
	// SET, a temporary table, a setting the server reports changed, ...); other uses cost
	// nothing. State changed where the library cannot see it (inside a function) is not reset.
	ResetDirty Reset = C.PGSESS_RESET_DIRTY
	// ResetAlways: DISCARD ALL after every use.
	ResetAlways Reset = C.PGSESS_RESET_ALWAYS
	// ResetNever: only an open transaction is rolled back; settings, temporary tables and the
	// like pass from one user of a connection to the next.
	ResetNever Reset = C.PGSESS_RESET_NEVER
)

// String names the mode as its constant does, e.g. "ResetDirty".
func (r Reset) String() string {
	switch r {
	case ResetDirty:
		return "ResetDirty"
	case ResetAlways:
		return "ResetAlways"
	case ResetNever:
		return "ResetNever"
	}
	return fmt.Sprintf("Reset(%d)", int(r))
}

// WithReset sets how the pool resets a connection before its next user (default ResetDirty).
// It is part of the pool key: sessions with different modes on one URI use different pools. A
// value that is not one of the constants makes Open fail with InterfaceError.
func WithReset(mode Reset) Option {
	return func(o *options) { o.reset = &mode }
}

// WithPinned(true) makes Open return a pinned session, as Session.Pin does: one connection held
// for the session's life. It is not part of the pool key: pinned and pooled sessions of one URI
// share a pool.
func WithPinned(pinned bool) Option {
	return func(o *options) { o.pinned = pinned }
}

// WithStatementCache(n) turns on the statement cache with room for n statements per
// connection (pgsess_options_set_statement_cache; 0, the default, keeps it off; at most
// 65,536): a statement with arguments (Query, QueryBinary, Callproc with arguments) is
// prepared once per pooled connection under a generated name and then run with Bind/Execute
// only, without being parsed and planned again; the least recently used is closed when the
// cache is full. When a cached plan goes stale (ALTER TABLE, a type dropped and created again)
// every connection of the pool prepares the statement again, and outside a transaction the
// failed call is retried once, so the caller sees no error; inside one the error is returned.
// It is part of the pool key. Keep it off behind PgBouncer in transaction mode unless
// PgBouncer tracks prepared statements (max_prepared_statements).
func WithStatementCache(n int) Option {
	return func(o *options) {
		if n < 0 || n > math.MaxUint32 {
			o.err = errorf(ConfigError, "statement cache capacity %d out of range (0 to 65536)", n)
			return
		}
		v := uint32(n)
		o.statementCache = &v
	}
}

// Session is a session on a process-wide connection pool, from Open, Pin or Tx.Session. It is
// safe for concurrent use by any number of goroutines.
//
// A pooled session (the default) checks out a connection for each statement, so session state
// (SET, temporary tables, lastval(), ...) does not carry from one statement to the next. A
// pinned session (Pin, WithPinned) holds one connection until Close, so it does, and BEGIN ...
// COMMIT sent as separate Exec calls is one transaction; statements from several goroutines run
// on it one at a time. A transaction's session (Tx.Session) runs every call inside the
// transaction.
type Session struct {
	mu   sync.RWMutex // read-held by every call on s, write-held by Close
	s    *C.pgsess_session
	name string
	// tx is the transaction whose session this is (Tx.Session), else nil. Calls on such a
	// session hold tx.mu instead of mu: they take turns with the transaction's own calls, and
	// fail with ErrTxDone once it has ended, when s is no longer valid.
	tx *Tx

	opts options // what it was opened with: for the sub-sessions of a pooled session
	gate *gate   // its pool's gate (gate.go)
	// pin is a pinned session's gate slot, held until Close and its Results are closed; nil for
	// a pooled session and a transaction's.
	pin *slot
	// turn makes a pinned session's statements take turns in Go (a channel send, cancellable
	// by the caller's context) rather than inside the library, where a waiting goroutine would
	// hold an OS thread.
	turn chan struct{}

	// subs are idle pooled sessions on the same pool (pgsess_open again): a statement with a
	// context that can end runs on one of its own, so that pgsess_cancel on it cancels that
	// statement and no other goroutine's. Closed with s.
	subMu     sync.Mutex
	subs      []*C.pgsess_session
	subClosed bool
	// closing is closed by Close: goroutines waiting in Go for the session (notifications)
	// stop. Made on first use, under subMu.
	closing chan struct{}
	// notifyTurn makes goroutines reading notifications take turns in Go (a channel send,
	// cancellable by their context): inside the library they would queue on the session's lock,
	// each holding an OS thread. Made on first use, under subMu.
	notifyTurn chan struct{}
	// notifyFD is the library's notification descriptor (pgsess_notification_fd), asked for
	// once: it is the same for the session's life. notifyFDAsked says it has been asked for
	// (notifyFD is then -1 when there is none). Both are read and written holding notifyTurn.
	notifyFD      int
	notifyFDAsked bool
}

// notifyTurnChan is the channel whose one slot a notification read holds.
func (s *Session) notifyTurnChan() chan struct{} {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.notifyTurn == nil {
		s.notifyTurn = make(chan struct{}, 1)
	}
	return s.notifyTurn
}

// closingChan is a channel Close closes (already closed after Close).
func (s *Session) closingChan() <-chan struct{} {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.closing == nil {
		s.closing = make(chan struct{})
		if s.subClosed {
			close(s.closing)
		}
	}
	return s.closing
}

// maxIdleSubs bounds the idle sub-sessions a session keeps.
const maxIdleSubs = 64

// newCOptions builds the C options of o (never pinned: a pinned session is made by Pin, through
// the gate).
func newCOptions(o *options) (*C.pgsess_options, error) {
	copts := C.pgsess_options_new()
	fail := func(err error) (*C.pgsess_options, error) {
		C.pgsess_options_free(copts)
		return nil, err
	}
	if o.dbURL != nil {
		cu, err := cString(*o.dbURL, "db_url")
		if err != nil {
			return fail(err)
		}
		rc := C.pgsess_options_set_db_url(copts, cu)
		C.free(unsafe.Pointer(cu))
		if err := codeError(rc, "db_url option"); err != nil {
			return fail(err)
		}
	}
	if o.poolMaxSize != nil {
		if err := codeError(C.pgsess_options_set_pool_max_size(copts, C.uint32_t(*o.poolMaxSize)),
			fmt.Sprintf("pool max size %d", *o.poolMaxSize)); err != nil {
			return fail(err)
		}
	}
	if o.poolIdleTTL != nil {
		if err := codeError(C.pgsess_options_set_pool_idle_ttl(copts, C.uint32_t(*o.poolIdleTTL)),
			fmt.Sprintf("pool idle TTL %d s", *o.poolIdleTTL)); err != nil {
			return fail(err)
		}
	}
	if o.checkoutTimeout != nil {
		if err := codeError(C.pgsess_options_set_checkout_timeout_ms(copts, C.uint32_t(*o.checkoutTimeout)),
			fmt.Sprintf("checkout timeout %d ms", *o.checkoutTimeout)); err != nil {
			return fail(err)
		}
	}
	if o.statementTimeout != nil {
		if err := codeError(C.pgsess_options_set_statement_timeout_ms(copts, C.uint32_t(*o.statementTimeout)),
			fmt.Sprintf("statement timeout %d ms", *o.statementTimeout)); err != nil {
			return fail(err)
		}
	}
	if o.reset != nil {
		if *o.reset < 0 || *o.reset > math.MaxInt32 {
			return fail(errorf(InterfaceError, "reset mode %v is not a mode", *o.reset))
		}
		if err := codeError(C.pgsess_options_set_reset(copts, C.pgsess_reset(*o.reset)),
			fmt.Sprintf("reset mode %v", *o.reset)); err != nil {
			return fail(err)
		}
	}
	if o.statementCache != nil {
		if err := codeError(C.pgsess_options_set_statement_cache(copts, C.uint32_t(*o.statementCache)),
			fmt.Sprintf("statement cache capacity %d", *o.statementCache)); err != nil {
			return fail(err)
		}
	}
	if o.poolMaxLifetime != nil {
		if err := codeError(C.pgsess_options_set_pool_max_lifetime(copts, C.uint32_t(*o.poolMaxLifetime)),
			fmt.Sprintf("pool max lifetime %d s", *o.poolMaxLifetime)); err != nil {
			return fail(err)
		}
	}
	if o.poolMinIdle != nil {
		if err := codeError(C.pgsess_options_set_pool_min_idle(copts, C.uint32_t(*o.poolMinIdle)),
			fmt.Sprintf("pool min idle %d", *o.poolMinIdle)); err != nil {
			return fail(err)
		}
	}
	if o.poolHealthCheckMS != nil {
		if err := codeError(C.pgsess_options_set_pool_health_check_ms(copts, C.uint32_t(*o.poolHealthCheckMS)),
			fmt.Sprintf("pool health check %d ms", *o.poolHealthCheckMS)); err != nil {
			return fail(err)
		}
	}
	if o.password != nil {
		if err := setPassword(copts, o.password); err != nil {
			return fail(err)
		}
	}
	return copts, nil
}

// openC opens a pooled C session name with o.
func openC(name string, o *options) (*C.pgsess_session, error) {
	copts, err := newCOptions(o)
	if err != nil {
		return nil, err
	}
	defer C.pgsess_options_free(copts)
	cname, err := cString(name, "session name")
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cname))
	var cerr *C.pgsess_error
	cs := C.pgsess_open(cname, copts, &cerr)
	if cs == nil {
		return nil, takeError(cerr, "pgsess_open")
	}
	return cs, nil
}

// Open opens the session name: its URI is the environment variable "PGSQL_" + name upper-cased
// (Open("foo") reads PGSQL_FOO; "" reads PGSQL), unless WithDBURL is given. Creating a pool
// opens its first connection, so a wrong host or password fails here.
func Open(name string, opts ...Option) (*Session, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.err != nil {
		return nil, o.err
	}
	cs, err := openC(name, &o)
	if err != nil {
		return nil, err
	}
	s := &Session{s: cs, name: name, opts: o}
	var st C.pgsess_stats
	if code := C.pgsess_pool_stats(cs, &st); code != C.PGSESS_OK {
		C.pgsess_close(cs)
		return nil, newError(Code(code), "pgsess_pool_stats failed")
	}
	timeout := 5 * time.Second
	if o.checkoutTimeout != nil {
		timeout = time.Duration(*o.checkoutTimeout) * time.Millisecond
	}
	s.gate = gateFor(cstr(C.pgsess_pool_id(cs)), int(st.max_size), timeout)
	if o.pinned {
		defer s.Close()
		return s.Pin()
	}
	return s, nil
}

// Name is the name the session was opened with.
func (s *Session) Name() string { return s.name }

// Close closes the session. Results and transactions obtained from it stay valid and keep their
// connections until closed; the pool stays for other sessions. A pinned session's connection
// returns to the pool (once its Results are closed too), reset as WithReset says. It waits for
// statements running on s; calls on s afterwards fail with InterfaceError. Closing twice is a
// no-op, and so is closing a transaction's session (Tx.Session), which ends with its transaction.
func (s *Session) Close() error {
	if s.tx != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s != nil {
		C.pgsess_close(s.s)
		s.s = nil
		s.pin.unref()
		s.subMu.Lock()
		for _, sub := range s.subs {
			C.pgsess_close(sub)
		}
		s.subs, s.subClosed = nil, true
		if s.closing != nil {
			close(s.closing)
		}
		s.subMu.Unlock()
	}
	return nil
}

// handle locks s for a call and returns its C handle, or an error after Close (or, for a
// transaction's session, once the transaction has ended). The caller must call s.release.
func (s *Session) handle() (*C.pgsess_session, error) {
	if s.tx != nil {
		s.tx.mu.Lock()
		if s.tx.tx == nil {
			s.tx.mu.Unlock()
			return nil, ErrTxDone
		}
		return s.s, nil
	}
	s.mu.RLock()
	if s.s == nil {
		s.mu.RUnlock()
		return nil, newError(InterfaceError, "session is closed")
	}
	return s.s, nil
}

// release undoes a successful handle.
func (s *Session) release() {
	if s.tx != nil {
		s.tx.mu.Unlock()
		return
	}
	s.mu.RUnlock()
}

// takeSub gives an idle sub-session of s (a pooled session of its own on s's pool), opening one
// when none is idle. Called with s held (handle).
func (s *Session) takeSub() (*C.pgsess_session, error) {
	s.subMu.Lock()
	if n := len(s.subs); n > 0 {
		sub := s.subs[n-1]
		s.subs = s.subs[:n-1]
		s.subMu.Unlock()
		return sub, nil
	}
	s.subMu.Unlock()
	sub, err := openC(s.name, &s.opts)
	if err != nil {
		return nil, err
	}
	if cstr(C.pgsess_pool_id(sub)) != cstr(C.pgsess_pool_id(s.s)) {
		C.pgsess_close(sub)
		return nil, errorf(ConfigError, "session %q: opening it again gave another pool (did PGSQL_%s change?); "+
			"a call with a context needs a session of its own on the same pool", s.name, s.name)
	}
	return sub, nil
}

// putSub gives a sub-session back, or closes it (s closed, or enough idle).
func (s *Session) putSub(sub *C.pgsess_session) {
	if sub == nil {
		return
	}
	s.subMu.Lock()
	if s.subClosed || len(s.subs) >= maxIdleSubs {
		s.subMu.Unlock()
		C.pgsess_close(sub)
		return
	}
	s.subs = append(s.subs, sub)
	s.subMu.Unlock()
}

// stmt is one call's hold on a session: where its statement runs, the gate slot its results
// will share, and what to give back when it returns.
type stmt struct {
	s    *Session
	cs   *C.pgsess_session // where the statement runs (s's own handle, or a sub-session)
	slot *slot             // the slot the statement's results hold (a reference of the call's own)
	sub  *C.pgsess_session // a sub-session to give back, or nil
	turn bool              // holds s.turn
}

// enter prepares a call on s that takes a connection: it locks s (handle), then waits in Go for
// what the statement needs, until ctx ends: a gate slot (pooled session), the session's turn
// (pinned). With a context that can end, a pooled session's statement gets a sub-session of its
// own, so that the watcher cancels only it. ownSub forces a sub-session (for what lasts beyond
// the call: a transaction, a stream). The caller must call st.exit.
func (s *Session) enter(ctx context.Context, ownSub bool) (stmt, error) {
	if err := ctx.Err(); err != nil {
		return stmt{}, contextError(ctx, nil)
	}
	cs, err := s.handle()
	if err != nil {
		return stmt{}, err
	}
	st := stmt{s: s, cs: cs}
	switch {
	case s.tx != nil:
		st.slot = s.tx.slot.ref()
	case s.pin != nil:
		select {
		case s.turn <- struct{}{}:
		case <-ctx.Done():
			s.release()
			return stmt{}, contextError(ctx, nil)
		}
		st.turn = true
		st.slot = s.pin.ref()
	default:
		if st.slot, err = s.gate.acquire(ctx, cs); err != nil {
			s.release()
			return stmt{}, err
		}
		if ownSub || ctx.Done() != nil {
			if st.sub, err = s.takeSub(); err != nil {
				st.exit(false)
				return stmt{}, err
			}
			st.cs = st.sub
		}
	}
	return st, nil
}

// exit ends the call: gives back the turn and the sub-session (unless keepSub: a transaction or
// stream keeps it and gives it back with putSub), drops the call's slot reference unless
// keepSlot (its Results or Tx took it over), and unlocks s.
func (st *stmt) exit(keepSlot bool) {
	st.exitKeeping(keepSlot, false)
}

func (st *stmt) exitKeeping(keepSlot, keepSub bool) {
	if !keepSlot {
		st.slot.unref()
	}
	if !keepSub {
		st.s.putSub(st.sub)
	}
	st.endTurn()
	st.s.release()
}

// endTurn gives back a pinned session's turn early: for what goes on holding the session after
// its statement has started (a copy), during which the library refuses other statements there
// with InterfaceError rather than have them wait.
func (st *stmt) endTurn() {
	if st.turn {
		<-st.s.turn
		st.turn = false
	}
}

// Pin opens a new pinned session on s's pool: it checks out one connection now (waiting up to
// the checkout timeout; PoolExhausted when none comes free) and holds it until its Close, so
// session state (SET, SET ROLE, temporary tables, PREPARE, LISTEN, session advisory locks,
// lastval()) carries from one statement to the next as on one libpq connection, and BEGIN ...
// COMMIT sent as separate Exec calls is one transaction. Its Results share that connection.
// Statements from several goroutines run on it one at a time. If the connection dies, the
// statement in flight fails with an OperationalError saying the session's state was lost, and
// the next one runs on a new connection. Always Close it (defer p.Close()): until then the pool
// has one connection fewer. s itself is unchanged.
func (s *Session) Pin() (*Session, error) {
	return s.PinContext(context.Background())
}

// PinContext is Pin that stops waiting for a connection when ctx ends (a *ContextError).
func (s *Session) PinContext(ctx context.Context) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextError(ctx, nil)
	}
	cs, err := s.handle()
	if err != nil {
		return nil, err
	}
	defer s.release()
	sl, err := s.gate.acquire(ctx, cs)
	if err != nil {
		return nil, err
	}
	var cerr *C.pgsess_error
	p := C.pgsess_pin(cs, &cerr)
	if p == nil {
		sl.unref()
		return nil, takeError(cerr, "pgsess_pin")
	}
	return &Session{s: p, name: s.name, opts: s.opts, gate: s.gate, pin: sl, turn: make(chan struct{}, 1)}, nil
}

// IsPinned reports whether the session holds one connection for its life: from Pin, from Open
// with WithPinned(true), or a transaction's session. False after Close, and for a transaction's
// session once the transaction has ended.
func (s *Session) IsPinned() bool {
	cs, err := s.handle()
	if err != nil {
		return false
	}
	defer s.release()
	return bool(C.pgsess_is_pinned(cs))
}

// Query runs sql with args as $1..$n (see the package documentation for how Go values are
// sent). The returned Results hold a pooled connection until their Close: defer it.
func (s *Session) Query(sql string, args ...any) (*Results, error) {
	return s.QueryContext(context.Background(), sql, args...)
}

// QueryContext is Query with a context: when ctx ends while the call waits for a connection it
// returns at once, and when it ends while the statement runs the statement is cancelled on the
// server (pgsess_cancel, for that statement alone); either way the error is a *ContextError
// (errors.Is(err, context.DeadlineExceeded) or context.Canceled; after a cancel it also wraps the
// server's SQLSTATE 57014). The connection stays usable.
func (s *Session) QueryContext(ctx context.Context, sql string, args ...any) (*Results, error) {
	return s.runContext(ctx, sqlText, sql, args)
}

// QueryBinary runs sql like Query, but asks the server for every result column in binary
// (pgsess_query_binary, PQexecParams with resultFormat 1): the server skips its text output
// and Scan and Values decode the binary values in Go, giving the same Go values as Query
// does (see the package documentation, "Binary results"). Prefer it for typed scans of many
// rows. It is always one statement on the extended protocol, even without arguments.
func (s *Session) QueryBinary(sql string, args ...any) (*Results, error) {
	return s.QueryBinaryContext(context.Background(), sql, args...)
}

// QueryBinaryContext is QueryBinary with a context, as QueryContext.
func (s *Session) QueryBinaryContext(ctx context.Context, sql string, args ...any) (*Results, error) {
	return s.runContext(ctx, sqlBinary, sql, args)
}

// Exec runs sql like Query and closes its results at once, returning the number of rows
// affected (as libpq's PQcmdTuples).
func (s *Session) Exec(sql string, args ...any) (uint64, error) {
	return s.ExecContext(context.Background(), sql, args...)
}

// ExecContext is Exec with a context, as QueryContext.
func (s *Session) ExecContext(ctx context.Context, sql string, args ...any) (uint64, error) {
	res, err := s.QueryContext(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	defer res.Close()
	return res.RowsAffected(), nil
}

// Callproc calls a function: SELECT * FROM name($1, ...). name may be schema-qualified; each
// dot-separated part is quoted as an identifier (so it is case-sensitive), never spliced into SQL.
// Arguments and results as for Query: a []byte argument is sent as a binary parameter
// (pgsess_callproc_params), so a bytea argument arrives as its bytes.
func (s *Session) Callproc(name string, args ...any) (*Results, error) {
	return s.CallprocContext(context.Background(), name, args...)
}

// CallprocContext is Callproc with a context, as QueryContext.
func (s *Session) CallprocContext(ctx context.Context, name string, args ...any) (*Results, error) {
	return s.runContext(ctx, funcName, name, args)
}

// runContext runs one statement on s under ctx (enter, watch, run, exit).
func (s *Session) runContext(ctx context.Context, k kind, text string, args []any) (*Results, error) {
	st, err := s.enter(ctx, false)
	if err != nil {
		return nil, err
	}
	stop := watch(ctx, st.cs)
	res, err := run(st.cs, nil, k, text, args, st.slot)
	fired := stop()
	st.exit(err == nil)
	if err != nil {
		return nil, finish(ctx, fired, err)
	}
	return res, nil
}

// kind says what the text of a statement is: SQL, or the name of a function to call.
type kind int

const (
	sqlText   kind = iota // SELECT ..., as Query takes it
	sqlBinary             // SQL as for sqlText, every result column in binary (QueryBinary)
	funcName              // the name Callproc takes; the library quotes it and builds the SELECT
)

// run runs a statement on a session (cs) or in a transaction (ctx): through the library's
// PQexecParams-shaped call when an argument is binary, or when the results are (a
// transaction's binary query runs on its session, pgsess_tx_session). The results hold sl (the
// caller's reference) when the statement succeeds.
func run(cs *C.pgsess_session, ctx *C.pgsess_tx, k kind, text string, args []any, sl *slot) (*Results, error) {
	p, err := newParams(args)
	if err != nil {
		return nil, err
	}
	defer p.free()
	n, values, lengths, formats := C.size_t(p.n), p.valuesPtr(), p.lengthsPtr(), p.formatsPtr()
	b := getScratch()
	defer putScratch(b)
	sc := b.c
	cerr := &sc.cerr
	var r *C.pgsess_results
	if k == sqlBinary || (k == sqlText && n > 0) {
		// One statement on the extended protocol (pgsess_query with arguments is
		// pgsess_query_params with text ones): staged, sent once the wait in the netpoller is
		// armed, read (see waitStaged).
		if ctx != nil {
			cs = C.pgsess_tx_session(ctx)
		}
		format := C.int32_t(0)
		if k == sqlBinary {
			format = 1
		}
		csql, clen := sqlArg(text)
		pending := C.pgsess_stage_query_params(cs, csql, clen, n, nil, values, lengths, formats, format, &sc.sock, cerr)
		if pending != nil {
			waitStaged(pending, &sc.sock)
			r = C.pgsess_pending_finish(pending, cerr)
		}
		if r == nil {
			return nil, takeError(*cerr, "query")
		}
		return newResults(r, text, sl), nil
	}
	what := "SQL"
	if k == funcName {
		what = "function name"
	}
	ctext, err := cString(text, what)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(ctext))
	switch {
	// Without arguments (so never binary ones): the simple protocol, several statements allowed.
	case k == sqlText && ctx != nil:
		r = C.pgsess_tx_query(ctx, ctext, 0, nil, cerr)
	case k == sqlText:
		r = C.pgsess_query(cs, ctext, 0, nil, cerr)
	case ctx != nil && p.binary:
		r = C.pgsess_tx_callproc_params(ctx, ctext, n, nil, values, lengths, formats, cerr)
	case ctx != nil:
		r = C.pgsess_tx_callproc(ctx, ctext, n, values, cerr)
	case p.binary:
		r = C.pgsess_callproc_params(cs, ctext, n, nil, values, lengths, formats, cerr)
	default:
		r = C.pgsess_callproc(cs, ctext, n, values, cerr)
	}
	if r == nil {
		if k == funcName {
			return nil, takeError(*cerr, "callproc")
		}
		return nil, takeError(*cerr, "query")
	}
	return newResults(r, text, sl), nil
}

// BackendPID is the backend process id that ran the session's latest statement (with pool max
// size 1, the pool's one connection); 0 before any.
func (s *Session) BackendPID() int32 {
	cs, err := s.handle()
	if err != nil {
		return 0
	}
	defer s.release()
	return int32(C.pgsess_backend_pid(cs))
}

// PoolID is the pool's id: a salted hash of its configuration (never reveals the password).
// Sessions sharing a pool share it.
func (s *Session) PoolID() string {
	cs, err := s.handle()
	if err != nil {
		return ""
	}
	defer s.release()
	return cstr(C.pgsess_pool_id(cs))
}

// PoolStats is a snapshot of a pool's state and counters (C's pgsess_stats), how many pinned
// sessions hold one of its connections now (pgsess_pool_pinned_sessions) and how many COPY
// operations do (pgsess_pool_copies_open); those connections are counted in InUse too.
// Waiting and CheckoutTimeouts also count the goroutines of this process waiting in the Go-side
// gate (see WithCheckoutTimeout) and the waits there that timed out.
type PoolStats struct {
	MaxSize, Open, Idle, InUse, Waiting  uint32
	ResultsOutstanding, TransactionsOpen uint64
	Checkouts, CheckoutTimeouts          uint64
	Connects, ConnectFailures            uint64
	DiscardedDead, DiscardedExpired      uint64
	PinnedSessions                       uint64
	CopiesOpen                           uint64
}

// Stats reports the state of the session's pool: its size and use now, and counters since it
// was created.
func (s *Session) Stats() (PoolStats, error) {
	cs, err := s.handle()
	if err != nil {
		return PoolStats{}, err
	}
	defer s.release()
	var st C.pgsess_stats
	if code := C.pgsess_pool_stats(cs, &st); code != C.PGSESS_OK {
		return PoolStats{}, newError(Code(code), "pgsess_pool_stats failed")
	}
	var gateWaiting, gateTimeouts uint64
	if s.gate != nil {
		gateWaiting, gateTimeouts = uint64(s.gate.waiting()), atomic.LoadUint64(&s.gate.timeouts)
	}
	return PoolStats{
		MaxSize: uint32(st.max_size), Open: uint32(st.open), Idle: uint32(st.idle),
		InUse: uint32(st.in_use), Waiting: uint32(uint64(st.waiting) + gateWaiting),
		ResultsOutstanding: uint64(st.results_outstanding), TransactionsOpen: uint64(st.transactions_open),
		Checkouts: uint64(st.checkouts), CheckoutTimeouts: uint64(st.checkout_timeouts) + gateTimeouts,
		Connects: uint64(st.connects), ConnectFailures: uint64(st.connect_failures),
		DiscardedDead: uint64(st.discarded_dead), DiscardedExpired: uint64(st.discarded_expired),
		PinnedSessions: uint64(C.pgsess_pool_pinned_sessions(cs)),
		CopiesOpen:     uint64(C.pgsess_pool_copies_open(cs)),
	}, nil
}

// Encoding is the client encoding, always "UTF8".
func (s *Session) Encoding() string {
	cs, err := s.handle()
	if err != nil {
		return ""
	}
	defer s.release()
	return cstr(C.pgsess_encoding(cs))
}

// SetEncoding accepts UTF8 under any of PostgreSQL's spellings and changes nothing; any other
// encoding is NotSupportedError.
func (s *Session) SetEncoding(enc string) error {
	cs, err := s.handle()
	if err != nil {
		return err
	}
	defer s.release()
	cenc, err := cString(enc, "encoding")
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cenc))
	var cerr *C.pgsess_error
	if rc := C.pgsess_set_encoding(cs, cenc, &cerr); rc != C.PGSESS_OK {
		return takeError(cerr, "pgsess_set_encoding")
	}
	return nil
}

// Validate reports whether the session can get a connection and run SELECT 1.
func (s *Session) Validate() bool {
	cs, err := s.handle()
	if err != nil {
		return false
	}
	defer s.release()
	return bool(C.pgsess_validate(cs))
}

// Notices gives the session's last 50 notices, oldest first, each whole in libpq's form: the
// severity line as the server wrote it ("NOTICE:  text\n", translated under its lc_messages)
// and its DETAIL:/HINT: lines (pgsess_notice). Statements on other goroutines may add notices,
// dropping the oldest, while it reads them.
func (s *Session) Notices() []string {
	cs, err := s.handle()
	if err != nil {
		return nil
	}
	defer s.release()
	n := int(C.pgsess_notice_count(cs))
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		p := C.pgsess_notice(cs, C.size_t(i))
		if p == nil {
			break // the list shrank meanwhile
		}
		out = append(out, C.GoString(p))
		C.pgsess_string_free(p)
	}
	return out
}

// cString copies s into C memory (free with C.free); a string holding a zero byte cannot be
// passed to the library and is an InterfaceError.
// sqlArg gives s to C as a pointer and a length (the pgsess_stage_* calls), without a copy: the
// library reads it during the call only, and refuses a zero byte in it. The bytes hold no Go
// pointer, so cgo allows passing them.
func sqlArg(s string) (*C.char, C.size_t) {
	if len(s) == 0 {
		return &emptySQL[0], 0
	}
	return (*C.char)(*(*unsafe.Pointer)(unsafe.Pointer(&s))), C.size_t(len(s))
}

var emptySQL [1]C.char

func cString(s, what string) (*C.char, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return nil, errorf(InterfaceError, "%s contains a zero byte at offset %d", what, i)
		}
	}
	return C.CString(s), nil
}
