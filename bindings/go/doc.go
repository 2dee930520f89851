// Package pgsess is the Go binding of libpgsess: pooled PostgreSQL sessions configured from
// the environment, the Go counterpart of the seed's sprockets.clients.postgresql Session.
//
//	s, err := pgsess.Open("foo") // reads PGSQL_FOO=postgresql://user:pass@host:port/db
//	if err != nil { ... }
//	defer s.Close()
//	res, err := s.Query("SELECT id, name FROM users WHERE id = $1", 42)
//	if err != nil { ... }
//	defer res.Close() // returns the pooled connection
//	for res.Next() {
//		var id int64
//		var name string
//		if err := res.Scan(&id, &name); err != nil { ... }
//	}
//
// # Building
//
// The package uses cgo and finds the library with pkg-config (`#cgo pkg-config: pgsess`): set
// PKG_CONFIG_PATH to PREFIX/lib/pkgconfig after `make install PREFIX=...`, and, for a prefix
// outside the loader's path, CGO_LDFLAGS=-Wl,-rpath,PREFIX/lib. It has no dependency outside
// the standard library.
//
// # Results hold a pooled connection
//
// A [Results] holds the pooled connection that ran its statement until [Results.Close], exactly
// as the C handle does until pgsess_results_free: always `defer res.Close()`. When every
// connection of a pool stays held, the next statement waits up to the checkout timeout and then
// fails with an [*Error] whose Code is [PoolExhausted] (see [IsPoolExhausted]) and whose message
// explains the pool's state. A Results that is garbage-collected without Close is reported on
// the standard logger, with its SQL; it is never freed behind the caller's back, so the leak
// stays visible.
//
// # Statements and parameters
//
// Query and Callproc take Go values and send them as text parameters $1..$n, which the server
// types as PQexecParams does: nil (and a nil pointer, nil []byte) is SQL NULL; string, bool,
// every integer and float kind, time.Time (RFC 3339 with nanoseconds and the time's own offset;
// a timestamp-without-time-zone parameter keeps the wall clock and ignores the offset, as
// PostgreSQL does), fmt.Stringer and database/sql/driver.Valuer values (sql.NullString, ...)
// are converted to text; []byte is sent as a binary parameter (pgsess_query_params or
// pgsess_callproc_params, no declared types), so bytea values keep zero bytes; json.RawMessage
// is sent as text. A string holding a zero byte, and any other type, is an InterfaceError. A statement with no arguments runs on
// the simple protocol, where one string may hold several statements (the last one's result is
// returned); with arguments it is one statement on the extended protocol.
//
// # Reading values
//
// Query's results are text: the server sends every value as its text (byte for byte what
// libpq's PQgetvalue gives); see "Binary results" for QueryBinary. Next
// fetches the cell pointers of a block of rows with one cgo call (pgsess_results_cells); Scan and
// Values then convert in Go, without further cgo calls (dates and times in the ISO DateStyle are
// parsed in Go too). Values types each cell by its column's type OID:
//
//	int2, int4, int8, oid           int64
//	float4, float8                  float64
//	numeric                         string (exact)
//	bool                            bool
//	bytea                           []byte (decoded)
//	timestamptz                     time.Time, the instant, in UTC
//	timestamp, date                 time.Time, the wall-clock time, in UTC
//	json, jsonb                     json.RawMessage
//	NULL                            nil
//	anything else                   string (the server's text form)
//
// The time types read PostgreSQL's ISO DateStyle (the default); 'infinity' and '-infinity' are
// returned by Values as the strings "infinity" and "-infinity", and are an error for Scan into
// *time.Time. A uuid column may also be scanned into a *[16]byte.
//
// # Binary results
//
// [Session.QueryBinary] (and [Tx.QueryBinary]) take Query's arguments and ask the server for
// every result column in binary (pgsess_query_binary): the server skips its text output, and
// Scan and Values decode in Go, from the cell bytes Next fetched, without a cgo call per cell:
// int2/int4/int8/oid, float4/float8, bool, date/timestamp/timestamptz (±infinity as above),
// bytea (its bytes), uuid, text/varchar/name/bpchar/json (the same bytes) and jsonb. Every
// Scan destination and Values give the same Go value as Query's text does (a float4 is the
// double nearest its shortest decimal, as its text reads). What needs a value's text (a
// numeric, a float or a time scanned into a *string, any other type) is rendered by
// pgsess_results_get_text, one cgo call per cell; numeric into *float64 is
// pgsess_results_get_double. The library renders only text that does not depend on session
// settings: a timestamptz as text needs TimeZone at offset zero, date and timestamp as text the
// ISO DateStyle, and types it does not know (interval, arrays, ranges, ...) fail with
// NotSupportedError; use Query for those. [Results.ColumnFormat] tells a column's format.
// Binary results pay off for typed scans of many rows; QueryBinary is always one statement on
// the extended protocol, even without arguments.
//
// # Session state
//
// A pooled session runs each statement on whichever pooled connection is free, and the pool
// resets a connection before its next user (see [WithReset]): a SET, a temporary table or
// lastval() does not carry from one statement to the next. For that, pin a session:
//
//	p, err := s.Pin() // holds one connection until p.Close()
//	if err != nil { ... }
//	defer p.Close()
//	p.Exec("SET search_path = app, public")
//	p.Exec("CREATE TEMP TABLE scratch (v int)") // still there for p's next statement
//
// [Session.Pin] (or [Open] with [WithPinned]) gives a session that behaves as one libpq
// connection, BEGIN ... COMMIT sent as separate Exec calls included. [Tx.Session] gives a
// *Session whose every call runs inside the transaction, for code written against a *Session.
//
// # COPY and LISTEN/NOTIFY
//
// [Session.CopyFrom] streams an io.Reader into COPY ... FROM STDIN and [Session.CopyTo] a
// COPY ... TO STDOUT into an io.Writer, byte for byte in any format (also on [Tx] and pinned
// sessions); [Session.Copy] does either, as the server takes the statement. [Session.Listen] listens on a channel through a listener connection of the
// session's own; [Session.WaitForNotification] and [Session.Notifications] deliver what arrives.
// A [Notification] with Gap set means notifications on its channel may have been missed (the
// listener reconnected): resynchronise.
//
// # Contexts
//
// Every call that waits has a Context form ([Session.QueryContext], [Session.ExecContext],
// [Session.BeginTx], [Session.PinContext], [Session.Stream], [Tx.QueryContext], the copies,
// [Session.WaitForNotification]). A goroutine waiting for a pooled connection waits in Go, in a
// per-pool gate of pool_max_size slots, never inside a cgo call; when its context ends it returns
// at once. A statement running when its context ends is cancelled on the server, for that
// statement alone, and the call returns a [*ContextError] wrapping ctx.Err() and the server's
// 57014; the connection is used again.
//
// # database/sql
//
// The package registers the database/sql driver "pgsess" (sql.Open("pgsess", "name") reads
// PGSQL_NAME; a postgres:// URI works too) and gives [NewConnector] for options. Each driver
// connection is a pinned session; set db.SetMaxOpenConns and db.SetMaxIdleConns to the pool's
// max size (see [Connector]). Rows stream ([Session.Stream]); [Numeric], [UUID], [Interval] and
// [Array] scan what database/sql cannot by itself.
//
// # Concurrency
//
// A [Session] is safe for any number of goroutines at once: each statement checks out its own
// pooled connection (on a pinned session they take turns on its one connection). Close may race
// with them: it waits for statements already running on the session, and later calls fail with
// InterfaceError. A [Results] is NOT safe for concurrent use: it has a cursor; give each
// goroutine its own. A [Tx] serialises its own calls and those of its [Tx.Session], but its
// statements run one at a time on one connection.
package pgsess
