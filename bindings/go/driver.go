package pgsess

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"
)

// DriverName is the name the database/sql driver is registered under: sql.Open("pgsess", dsn).
const DriverName = "pgsess"

func init() {
	sql.Register(DriverName, &Driver{})
}

// Driver is the database/sql driver (registered as "pgsess"). Its data source name is a session
// name, read from PGSQL_<NAME> as Open reads it, or a PostgreSQL URI (postgres:// or
// postgresql://):
//
//	db, err := sql.Open("pgsess", "foo")                              // PGSQL_FOO
//	db, err := sql.Open("pgsess", "postgresql://app@db.internal/app")
//	db := sql.OpenDB(pgsess.NewConnector("foo", pgsess.WithPoolMaxSize(8)))
//
// See NewConnector for what a driver connection is and how database/sql's pool and the
// library's pool work together.
type Driver struct{}

// Open opens one connection for name (database/sql calls it when no Connector is used).
func (d *Driver) Open(name string) (driver.Conn, error) {
	c, err := d.OpenConnector(name)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

// OpenConnector gives a Connector for name, as NewConnector(name) does.
func (d *Driver) OpenConnector(name string) (driver.Connector, error) {
	return NewConnector(name)
}

// defaultDriverStatementCache is the statement cache the driver turns on unless the URI says
// pgbouncer=true or an option sets one.
const defaultDriverStatementCache = 256

// Connector makes the database/sql driver's connections (sql.OpenDB(connector)). Each driver
// connection is a pinned session (Session.Pin) on one process-wide pgsess pool: it holds one
// server connection from the pool for as long as database/sql keeps it, so a sql.Conn or sql.Tx
// has one server session (SET, temporary tables, advisory locks carry from statement to
// statement as with lib/pq or pgx). When database/sql closes a driver connection (SetMaxIdleConns,
// SetConnMaxLifetime, SetConnMaxIdleTime) its server connection goes back to the pgsess pool,
// reset with DISCARD ALL, and stays open there for the next one (until WithPoolIdleTTL), so
// database/sql's churn costs no new server connection.
//
// Recommended settings: a pgsess pool of N (WithPoolMaxSize(N), the bound on server
// connections), and db.SetMaxOpenConns(N), db.SetMaxIdleConns(N). Then database/sql's pool and
// pgsess's agree: database/sql hands out at most N connections and queues the rest of its
// callers in Go; pgsess keeps the server connections. With SetMaxOpenConns above N, a Connect
// beyond N waits (in Go) for a pgsess connection up to the checkout timeout, or its context, and
// then fails with PoolExhausted; with it unlimited (database/sql's default) the same happens to
// whichever callers exceed N. SetConnMaxLifetime is not needed for freshness (the library
// replaces connections that broke) but is harmless.
//
// Statements: the statement cache is on (256 statements per connection) unless an option says
// otherwise (WithStatementCache) or the URI has pgbouncer=true (PgBouncer in transaction mode
// without max_prepared_statements cannot keep prepared statements): statements with arguments
// are prepared once per server connection and then only bound and executed. Prepare
// (ConnPrepareContext) does not contact the server: the statement is prepared by its first
// execution, through that cache, and its errors are returned then.
type Connector struct {
	name string
	opts []Option

	mu   sync.Mutex
	base *Session // the pooled session the connections are pinned from, opened by the first Connect
}

// NewConnector gives a Connector for name (a session name or a URI, as for Driver) with the
// options of Open (WithPoolMaxSize, WithCheckoutTimeout, WithStatementCache, WithFetchSize, ...;
// WithPinned is implied). Nothing is opened until the first Connect.
func NewConnector(name string, opts ...Option) (*Connector, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.err != nil {
		return nil, o.err
	}
	uri, isURI := "", strings.HasPrefix(name, "postgres://") || strings.HasPrefix(name, "postgresql://")
	if isURI {
		uri = name
		name = ""
	} else if v, ok := os.LookupEnv(envVarName(name)); ok && strings.Contains(v, "pgbouncer") {
		uri = v
	}
	all := append([]Option(nil), opts...)
	if uri != "" {
		stripped, bouncer, err := takePgBouncer(uri)
		if err != nil {
			return nil, err
		}
		if o.dbURL == nil {
			all = append([]Option{WithDBURL(stripped)}, all...)
		}
		if bouncer && o.statementCache == nil {
			all = append(all, WithStatementCache(0))
		}
	}
	if o.statementCache == nil {
		all = append([]Option{WithStatementCache(defaultDriverStatementCache)}, all...)
	}
	return &Connector{name: name, opts: all}, nil
}

// envVarName is Open's variable for a session name, for the ASCII names the binding reads
// itself (only to find pgbouncer=true in them).
func envVarName(name string) string {
	if name == "" {
		return "PGSQL"
	}
	return "PGSQL_" + strings.ToUpper(name)
}

// takePgBouncer removes the binding's own URI parameter pgbouncer (true/false, 1/0, on/off,
// yes/no) from uri, which the library would refuse, and says whether it was true.
func takePgBouncer(uri string) (string, bool, error) {
	q := strings.IndexByte(uri, '?')
	if q < 0 {
		return uri, false, nil
	}
	params := strings.Split(uri[q+1:], "&")
	kept := params[:0]
	bouncer := false
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		if k != "pgbouncer" {
			kept = append(kept, p)
			continue
		}
		v, err := url.QueryUnescape(v)
		if err == nil {
			switch strings.ToLower(v) {
			case "1", "true", "on", "yes":
				bouncer = true
				continue
			case "0", "false", "off", "no":
				continue
			}
		}
		return "", false, errorf(ConfigError, "URI parameter pgbouncer=%q is not a boolean", v)
	}
	out := uri[:q]
	if len(kept) > 0 {
		out += "?" + strings.Join(kept, "&")
	}
	return out, bouncer, nil
}

// Connect gives a new driver connection: a pinned session, waiting (in Go, until ctx ends or the
// checkout timeout passes) for a connection of the pool. The first Connect opens the pool.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	base, err := c.session()
	if err != nil {
		return nil, err
	}
	p, err := base.PinContext(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{s: p}, nil
}

// session is the pooled session connections are pinned from, opened on first use.
func (c *Connector) session() (*Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base != nil {
		return c.base, nil
	}
	s, err := Open(c.name, c.opts...)
	if err != nil {
		return nil, err
	}
	c.base = s
	return s, nil
}

// Driver gives the Driver (driver.Connector).
func (c *Connector) Driver() driver.Driver { return &Driver{} }

// Session is the pooled session on the connector's pool (for Stats, Listen, CopyFrom and the
// rest of the native API beside database/sql), opened if need be. It is the connector's: do not
// close it.
func (c *Connector) Session() (*Session, error) { return c.session() }

// Close closes the connector's session (database/sql's DB.Close calls it, Go 1.17 and later);
// the pool stays for other sessions, its idle connections closing after the idle TTL.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base != nil {
		c.base.Close()
		c.base = nil
	}
	return nil
}

// conn is one driver connection: a pinned session.
type conn struct {
	s   *Session
	tx  *Tx
	bad bool // its server connection was lost: database/sql must not use it again
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ io.Closer                 = (*Connector)(nil)
)

// check turns a statement's error into what database/sql expects: driver.ErrBadConn when the
// connection was found broken before the statement reached the server (database/sql then
// retries on another connection); for a connection lost later, the error itself, and the
// connection is marked bad so that database/sql discards it.
func (c *conn) check(err error) error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) && pe.Code == OperationalError {
		c.bad = true
		var ce *ContextError
		if pe.retryable && !errors.As(err, &ce) {
			return driver.ErrBadConn
		}
	}
	return err
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext gives a statement without contacting the server (see Connector).
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &driverStmt{c: c, query: query}, nil
}

// Close ends the pinned session: its server connection goes back to the pool.
func (c *conn) Close() error {
	if c.tx != nil {
		_ = c.tx.Rollback()
		c.tx = nil
	}
	return c.s.Close()
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// isolationOf maps database/sql's levels to PostgreSQL's: Snapshot is REPEATABLE READ (which is
// snapshot isolation in PostgreSQL); WriteCommitted and Linearizable have no PostgreSQL level.
func isolationOf(l sql.IsolationLevel) (Isolation, error) {
	switch l {
	case sql.LevelDefault:
		return IsolationDefault, nil
	case sql.LevelReadUncommitted:
		return ReadUncommitted, nil
	case sql.LevelReadCommitted:
		return ReadCommitted, nil
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		return RepeatableRead, nil
	case sql.LevelSerializable:
		return Serializable, nil
	}
	return 0, errorf(NotSupportedError, "isolation level %v is not supported by PostgreSQL "+
		"(use ReadCommitted, RepeatableRead, Snapshot or Serializable)", l)
}

// BeginTx begins a transaction on the connection, its options sent with BEGIN.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.tx != nil {
		return nil, newError(InterfaceError, "a transaction is already open on this connection")
	}
	iso, err := isolationOf(sql.IsolationLevel(opts.Isolation))
	if err != nil {
		return nil, err
	}
	tx, err := c.s.BeginTx(ctx, &TxOptions{Isolation: iso, ReadOnly: opts.ReadOnly})
	if err != nil {
		return nil, c.check(err)
	}
	c.tx = tx
	return &driverTx{c: c, tx: tx}, nil
}

// driverTx is a database/sql transaction: its statements run on the connection (the pinned
// session), inside it.
type driverTx struct {
	c  *conn
	tx *Tx
}

func (t *driverTx) Commit() error {
	t.c.tx = nil
	return t.c.check(t.tx.Commit())
}

func (t *driverTx) Rollback() error {
	t.c.tx = nil
	return t.tx.Rollback()
}

// args converts database/sql's arguments: positional only ($1..$n).
func args(named []driver.NamedValue) ([]any, error) {
	out := make([]any, len(named))
	for i, nv := range named {
		if nv.Name != "" {
			return nil, errorf(InterfaceError, "named argument %q: PostgreSQL takes positional arguments $1..$n only", nv.Name)
		}
		if nv.Ordinal != i+1 {
			return nil, errorf(InterfaceError, "argument %d has ordinal %d", i+1, nv.Ordinal)
		}
		out[i] = nv.Value
	}
	return out, nil
}

// QueryContext runs a statement and streams its rows (Session.Stream): memory holds one chunk
// (WithFetchSize), a deadline or cancel of ctx cancels the statement on the server.
func (c *conn) QueryContext(ctx context.Context, query string, named []driver.NamedValue) (driver.Rows, error) {
	a, err := args(named)
	if err != nil {
		return nil, err
	}
	r, err := c.s.Stream(ctx, query, a...)
	if err != nil {
		return nil, c.check(err)
	}
	return &driverRows{r: r, c: c}, nil
}

// ExecContext runs a statement and gives its row count (no LastInsertId: use RETURNING). Without
// arguments it runs on the simple protocol, so a string of several statements (a migration) runs
// whole.
func (c *conn) ExecContext(ctx context.Context, query string, named []driver.NamedValue) (driver.Result, error) {
	a, err := args(named)
	if err != nil {
		return nil, err
	}
	n, err := c.s.ExecContext(ctx, query, a...)
	if err != nil {
		return nil, c.check(err)
	}
	if n > math.MaxInt64 {
		n = math.MaxInt64
	}
	return driver.RowsAffected(int64(n)), nil
}

// Ping runs SELECT 1 on the connection (one round trip).
func (c *conn) Ping(ctx context.Context) error {
	if c.bad {
		return driver.ErrBadConn
	}
	_, err := c.s.ExecContext(ctx, "SELECT 1")
	return c.check(err)
}

// ResetSession is called by database/sql before it hands the connection to its next user: a
// connection found broken is refused (driver.ErrBadConn), and a transaction left open (it never
// is through database/sql) rolled back. Session state (SET, temporary tables) is kept, as lib/pq
// and pgx keep it; run DISCARD ALL yourself on a sql.Conn that must not pass state on.
func (c *conn) ResetSession(ctx context.Context) error {
	if c.bad {
		return driver.ErrBadConn
	}
	if c.tx != nil {
		_ = c.tx.Rollback()
		c.tx = nil
	}
	return nil
}

// IsValid reports whether database/sql may keep the connection in its pool.
func (c *conn) IsValid() bool { return !c.bad }

// CheckNamedValue takes the values this binding sends itself (see the package documentation:
// every integer and float type including uint64, string, []byte, bool, time.Time, time.Duration
// as an interval, json.RawMessage, slices as arrays, Interval, UUID, Numeric) as they are; others
// go through database/sql's default conversion (driver.Valuer, named types).
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	switch v := nv.Value.(type) {
	case nil, string, []byte, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64,
		float32, float64, time.Time, time.Duration, json.RawMessage, Interval, UUID, Numeric:
		return nil
	case driver.Valuer:
		return driver.ErrSkip
	default:
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() != reflect.Uint8 {
			return nil // an array parameter
		}
	}
	return driver.ErrSkip
}

// driverStmt is a prepared statement as database/sql sees it: its SQL, prepared on the server by its
// first execution (through the statement cache).
type driverStmt struct {
	c     *conn
	query string
}

func (s *driverStmt) Close() error  { return nil }
func (s *driverStmt) NumInput() int { return -1 }

func (s *driverStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), valuesToNamed(args))
}

func (s *driverStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), valuesToNamed(args))
}

func (s *driverStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, args)
}

func (s *driverStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
}

func (s *driverStmt) CheckNamedValue(nv *driver.NamedValue) error { return s.c.CheckNamedValue(nv) }

func valuesToNamed(args []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, v := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}

// driverRows are database/sql's rows: a stream (Rows).
type driverRows struct {
	r     *Rows
	c     *conn
	names []string
}

var (
	_ driver.RowsColumnTypeDatabaseTypeName = (*driverRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*driverRows)(nil)
	_ driver.RowsColumnTypeLength           = (*driverRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*driverRows)(nil)
	_ driver.RowsColumnTypeScanType         = (*driverRows)(nil)
)

func (d *driverRows) Columns() []string {
	if d.names == nil {
		d.names = make([]string, len(d.r.cols))
		for i, c := range d.r.cols {
			d.names[i] = c.Name
		}
	}
	return d.names
}

func (d *driverRows) Close() error { return d.r.Close() }

func (d *driverRows) Next(dest []driver.Value) error {
	if !d.r.Next() {
		if err := d.r.Err(); err != nil {
			return d.c.check(err)
		}
		return io.EOF
	}
	for i := range dest {
		v, err := d.r.cur.driverValue(i)
		if err != nil {
			return err
		}
		dest[i] = v
	}
	return nil
}

// ColumnTypeDatabaseTypeName is the type's name in upper case, as lib/pq and pgx give it
// ("INT4", "TEXT", "TIMESTAMPTZ", "_INT4" for int4[]); "" for a type the binding does not name.
func (d *driverRows) ColumnTypeDatabaseTypeName(i int) string {
	return strings.ToUpper(typeNames[d.r.cols[i].TypeOID])
}

// ColumnTypeNullable: the protocol does not say whether a result column may be NULL, so ok is
// always false.
func (d *driverRows) ColumnTypeNullable(i int) (nullable, ok bool) { return true, false }

// ColumnTypeLength is n for varchar(n) and char(n) (from the column's type modifier, as lib/pq
// and pgx give it), math.MaxInt64 for the unbounded variable-length types (text, bytea, json,
// jsonb, xml, arrays, and varchar without a bound); ok is false for the fixed-size types.
func (d *driverRows) ColumnTypeLength(i int) (length int64, ok bool) {
	switch oid := d.r.cols[i].TypeOID; {
	case oid == oidVarchar || oid == oidBpchar:
		if mod := d.r.ColumnTypeMod(i); mod >= 4 {
			return int64(mod - 4), true
		}
		return math.MaxInt64, true
	case oid == OIDText || oid == OIDBytea || oid == OIDJSON || oid == OIDJSONB || oid == oidXML:
		return math.MaxInt64, true
	case strings.HasPrefix(typeNames[oid], "_"):
		return math.MaxInt64, true
	}
	return 0, false
}

// ColumnTypePrecisionScale is numeric(p,s)'s precision and scale, from the column's type
// modifier (as lib/pq and pgx give them); ok is false for a numeric without them and for every
// other type.
func (d *driverRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if d.r.cols[i].TypeOID != OIDNumeric {
		return 0, 0, false
	}
	mod := d.r.ColumnTypeMod(i)
	if mod < 4 {
		return 0, 0, false
	}
	mod -= 4
	return int64(mod>>16) & 0xffff, int64(mod) & 0xffff, true
}

// ColumnTypeScanType is the Go type of the column's driver values (Next): int64, float64, bool,
// []byte, time.Time, or string (also for numeric, uuid, interval, arrays); a time column may
// also give the string "infinity".
func (d *driverRows) ColumnTypeScanType(i int) reflect.Type {
	switch d.r.cols[i].TypeOID {
	case OIDInt2, OIDInt4, OIDInt8, OIDOid:
		return reflect.TypeOf(int64(0))
	case OIDFloat4, OIDFloat8:
		return reflect.TypeOf(float64(0))
	case OIDBool:
		return reflect.TypeOf(false)
	case OIDBytea, OIDJSON, OIDJSONB:
		return reflect.TypeOf([]byte(nil))
	case OIDDate, OIDTimestamp, OIDTimestampTZ:
		return reflect.TypeOf(time.Time{})
	}
	return reflect.TypeOf("")
}

const (
	oidXML     uint32 = 142
	oidBpchar  uint32 = 1042
	oidVarchar uint32 = 1043
)

// typeNames are pg_type.typname of the built-in types a driver user meets (an array type is
// its element's name with a leading underscore, as in pg_type).
var typeNames = map[uint32]string{
	16: "bool", 17: "bytea", 18: "char", 19: "name", 20: "int8", 21: "int2", 23: "int4", 24: "regproc",
	25: "text", 26: "oid", 27: "tid", 28: "xid", 29: "cid", 114: "json", 142: "xml", 600: "point",
	601: "lseg", 602: "path", 603: "box", 604: "polygon", 628: "line", 650: "cidr", 700: "float4",
	701: "float8", 718: "circle", 774: "macaddr8", 790: "money", 829: "macaddr", 869: "inet",
	1033: "aclitem", 1042: "bpchar", 1043: "varchar", 1082: "date", 1083: "time", 1114: "timestamp",
	1184: "timestamptz", 1186: "interval", 1266: "timetz", 1560: "bit", 1562: "varbit", 1700: "numeric",
	1790: "refcursor", 2205: "regclass", 2206: "regtype", 2249: "record", 2278: "void", 2950: "uuid",
	3220: "pg_lsn", 3614: "tsvector", 3615: "tsquery", 3802: "jsonb", 3904: "int4range",
	3906: "numrange", 3908: "tsrange", 3910: "tstzrange", 3912: "daterange", 3926: "int8range",
	4072: "jsonpath", 705: "unknown",
	1000: "_bool", 1001: "_bytea", 1002: "_char", 1003: "_name", 1016: "_int8", 1005: "_int2",
	1007: "_int4", 1009: "_text", 1028: "_oid", 199: "_json", 143: "_xml", 1021: "_float4",
	1022: "_float8", 1014: "_bpchar", 1015: "_varchar", 1182: "_date", 1183: "_time",
	1115: "_timestamp", 1185: "_timestamptz", 1187: "_interval", 1270: "_timetz", 1231: "_numeric",
	2951: "_uuid", 3807: "_jsonb", 1041: "_inet", 651: "_cidr", 1040: "_macaddr",
}
