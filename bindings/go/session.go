package pgsess

/*
#cgo pkg-config: pgsess
#include <stdlib.h>
#include <pgsess.h>
*/
import "C"

import (
	"fmt"
	"math"
	"sync"
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
	err             error
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
	copts := C.pgsess_options_new()
	defer C.pgsess_options_free(copts)
	if o.dbURL != nil {
		cu, err := cString(*o.dbURL, "db_url")
		if err != nil {
			return nil, err
		}
		rc := C.pgsess_options_set_db_url(copts, cu)
		C.free(unsafe.Pointer(cu))
		if err := codeError(rc, "db_url option"); err != nil {
			return nil, err
		}
	}
	if o.poolMaxSize != nil {
		if err := codeError(C.pgsess_options_set_pool_max_size(copts, C.uint32_t(*o.poolMaxSize)),
			fmt.Sprintf("pool max size %d", *o.poolMaxSize)); err != nil {
			return nil, err
		}
	}
	if o.poolIdleTTL != nil {
		if err := codeError(C.pgsess_options_set_pool_idle_ttl(copts, C.uint32_t(*o.poolIdleTTL)),
			fmt.Sprintf("pool idle TTL %d s", *o.poolIdleTTL)); err != nil {
			return nil, err
		}
	}
	if o.checkoutTimeout != nil {
		if err := codeError(C.pgsess_options_set_checkout_timeout_ms(copts, C.uint32_t(*o.checkoutTimeout)),
			fmt.Sprintf("checkout timeout %d ms", *o.checkoutTimeout)); err != nil {
			return nil, err
		}
	}
	if o.reset != nil {
		if *o.reset < 0 || *o.reset > math.MaxInt32 {
			return nil, errorf(InterfaceError, "reset mode %v is not a mode", *o.reset)
		}
		if err := codeError(C.pgsess_options_set_reset(copts, C.pgsess_reset(*o.reset)),
			fmt.Sprintf("reset mode %v", *o.reset)); err != nil {
			return nil, err
		}
	}
	if o.pinned {
		if err := codeError(C.pgsess_options_set_pinned(copts, true), "pinned option"); err != nil {
			return nil, err
		}
	}
	if o.statementCache != nil {
		if err := codeError(C.pgsess_options_set_statement_cache(copts, C.uint32_t(*o.statementCache)),
			fmt.Sprintf("statement cache capacity %d", *o.statementCache)); err != nil {
			return nil, err
		}
	}
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
	return &Session{s: cs, name: name}, nil
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
	cs, err := s.handle()
	if err != nil {
		return nil, err
	}
	defer s.release()
	var cerr *C.pgsess_error
	p := C.pgsess_pin(cs, &cerr)
	if p == nil {
		return nil, takeError(cerr, "pgsess_pin")
	}
	return &Session{s: p, name: s.name}, nil
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
	cs, err := s.handle()
	if err != nil {
		return nil, err
	}
	defer s.release()
	return run(cs, nil, sqlText, sql, args)
}

// QueryBinary runs sql like Query, but asks the server for every result column in binary
// (pgsess_query_binary, PQexecParams with resultFormat 1): the server skips its text output
// and Scan and Values decode the binary values in Go, giving the same Go values as Query
// does (see the package documentation, "Binary results"). Prefer it for typed scans of many
// rows. It is always one statement on the extended protocol, even without arguments.
func (s *Session) QueryBinary(sql string, args ...any) (*Results, error) {
	cs, err := s.handle()
	if err != nil {
		return nil, err
	}
	defer s.release()
	return run(cs, nil, sqlBinary, sql, args)
}

// Exec runs sql like Query and closes its results at once, returning the number of rows
// affected (as libpq's PQcmdTuples).
func (s *Session) Exec(sql string, args ...any) (uint64, error) {
	res, err := s.Query(sql, args...)
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
	cs, err := s.handle()
	if err != nil {
		return nil, err
	}
	defer s.release()
	return run(cs, nil, funcName, name, args)
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
// transaction's binary query runs on its session, pgsess_tx_session).
func run(cs *C.pgsess_session, ctx *C.pgsess_tx, k kind, text string, args []any) (*Results, error) {
	p, err := newParams(args)
	if err != nil {
		return nil, err
	}
	defer p.free()
	what := "SQL"
	if k == funcName {
		what = "function name"
	}
	ctext, err := cString(text, what)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(ctext))
	n, values, lengths, formats := C.size_t(p.n), p.valuesPtr(), p.lengthsPtr(), p.formatsPtr()
	var cerr *C.pgsess_error
	var r *C.pgsess_results
	switch {
	case k == sqlBinary:
		if ctx != nil {
			cs = C.pgsess_tx_session(ctx)
		}
		r = C.pgsess_query_binary(cs, ctext, n, nil, values, lengths, formats, &cerr)
	case k == sqlText && ctx != nil && p.binary:
		r = C.pgsess_tx_query_params(ctx, ctext, n, nil, values, lengths, formats, &cerr)
	case k == sqlText && ctx != nil:
		r = C.pgsess_tx_query(ctx, ctext, n, values, &cerr)
	case k == sqlText && p.binary:
		r = C.pgsess_query_params(cs, ctext, n, nil, values, lengths, formats, &cerr)
	case k == sqlText:
		r = C.pgsess_query(cs, ctext, n, values, &cerr)
	case ctx != nil && p.binary:
		r = C.pgsess_tx_callproc_params(ctx, ctext, n, nil, values, lengths, formats, &cerr)
	case ctx != nil:
		r = C.pgsess_tx_callproc(ctx, ctext, n, values, &cerr)
	case p.binary:
		r = C.pgsess_callproc_params(cs, ctext, n, nil, values, lengths, formats, &cerr)
	default:
		r = C.pgsess_callproc(cs, ctext, n, values, &cerr)
	}
	if r == nil {
		if k == funcName {
			return nil, takeError(cerr, "callproc")
		}
		return nil, takeError(cerr, "query")
	}
	return newResults(r, text)
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
	return PoolStats{
		MaxSize: uint32(st.max_size), Open: uint32(st.open), Idle: uint32(st.idle),
		InUse: uint32(st.in_use), Waiting: uint32(st.waiting),
		ResultsOutstanding: uint64(st.results_outstanding), TransactionsOpen: uint64(st.transactions_open),
		Checkouts: uint64(st.checkouts), CheckoutTimeouts: uint64(st.checkout_timeouts),
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
func cString(s, what string) (*C.char, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return nil, errorf(InterfaceError, "%s contains a zero byte at offset %d", what, i)
		}
	}
	return C.CString(s), nil
}
