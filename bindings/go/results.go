package pgsess

/*
#include <stdint.h>
#include <stdlib.h>
#include "handles.h"

// The cell pointers and lengths of up to `rows` rows from `first` into a C block of rows*ncols
// pointers followed by as many lengths (pgsess_results_cells). The block is passed as an
// integer so that cgo adds no pointer check (nor an allocation) per call.
static size_t gopgsess_cells(const pgsess_results *r, size_t first, size_t rows, uintptr_t block, size_t ncols) {
	const char **values = (const char **)block;
	return pgsess_results_cells(r, first, rows, values, (size_t *)(values + rows * ncols));
}
*/
import "C"

import (
	"encoding/json"
	"log"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Type OIDs that Values and Scan treat specially (PostgreSQL's pg_type.oid).
const (
	OIDBool        uint32 = 16
	OIDBytea       uint32 = 17
	OIDName        uint32 = 19
	OIDInt8        uint32 = 20
	OIDInt2        uint32 = 21
	OIDInt4        uint32 = 23
	OIDText        uint32 = 25
	OIDOid         uint32 = 26
	OIDJSON        uint32 = 114
	OIDFloat4      uint32 = 700
	OIDFloat8      uint32 = 701
	OIDBpchar      uint32 = 1042
	OIDVarchar     uint32 = 1043
	OIDDate        uint32 = 1082
	OIDTimestamp   uint32 = 1114
	OIDTimestampTZ uint32 = 1184
	OIDNumeric     uint32 = 1700
	OIDUUID        uint32 = 2950
	OIDJSONB       uint32 = 3802
)

// Column describes one result column.
type Column struct {
	Name    string
	TypeOID uint32 // as libpq's PQftype: 23 int4, 25 text, ...; a domain reports its base type
}

// Results is the buffered result of one statement. It holds the pooled connection that ran the
// statement until Close, which must be called (defer res.Close()).
//
// Next/Scan walk the rows like database/sql's Rows; Values and Map give the current row typed by
// column type; Maps gives every row. The metadata (Rows, Columns, Status, RowsAffected, Count,
// BackendPID, Notices, SQL) stays readable after Close; row data does not.
//
// A Results is not safe for concurrent use by several goroutines (it has a cursor).
type Results struct {
	r      *C.pgsess_results
	sql    string
	nrows  int
	cols   []Column
	status string
	nrAff  uint64
	count  int64
	pid    int32
	notes  []string
	bin    []bool  // per column: its values are binary (QueryBinary)
	mods   []int32 // per column: the type modifier (PQfmod; -1 none)

	row   int            // current row; -1 before the first Next
	valid bool           // vals/lens hold row `row`
	cmem  unsafe.Pointer // C block: blockRows*ncols value pointers then as many lengths
	vals  []*C.char      // the current row's part of allVals
	lens  []C.size_t     // the current row's part of allLens
	// The block of rows whose cells cmem holds: rows blockFirst..blockFirst+blockN-1, read with
	// one cgo call (pgsess_results_cells), so Next costs a cgo call per block, not per row.
	allVals    []*C.char
	allLens    []C.size_t
	blockRows  int
	blockFirst int
	blockN     int

	// slot is the gate slot of the connection these results hold (nil when they hold none the
	// gate counts); Close gives back its reference.
	slot *slot
	// borrowed results belong to a BatchResults, which frees them: their Close does nothing.
	borrowed bool
	// inl holds the column metadata of a result with few columns.
	inl struct {
		cols [2]Column
		bin  [2]bool
		mods [2]int32
	}
}

// smallBlock is the size of the C blocks smallBlocks keeps: the cells of a small result (32
// cells), a statement's parameters up to that size; a block for more is malloc'd and freed as
// it is.
const smallBlock = 512

// smallBlocks keeps freed small C blocks (smallBlock bytes) for the next results' cells and
// statements' parameters, so that these cost no malloc and free (two cgo calls each). At most
// 64 are kept.
var smallBlocks blockList

type blockList struct {
	mu   sync.Mutex
	free []unsafe.Pointer
}

// get gives a C block of at least size bytes.
func (l *blockList) get(size uintptr) unsafe.Pointer {
	if size > smallBlock {
		return C.malloc(C.size_t(size))
	}
	l.mu.Lock()
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		l.mu.Unlock()
		return b
	}
	l.mu.Unlock()
	return C.malloc(smallBlock)
}

// put gives back a block from get(size). One of more than smallBlock bytes is freed.
func (l *blockList) put(b unsafe.Pointer, size uintptr) {
	if size > smallBlock {
		C.free(b)
		return
	}
	l.mu.Lock()
	if len(l.free) < 64 {
		l.free = append(l.free, b)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	C.free(b)
}

// internMax is the longest C string internC keeps; internSlots how many it keeps.
const (
	internMax   = 63
	internSlots = 256
)

// interned holds recently seen short strings from the library (column names, command
// statuses), one per hash slot, so that a statement run again makes no new string for them.
var interned [internSlots]atomic.Pointer[string]

// internC is cstr without an allocation when p's text was seen recently.
func internC(p *C.char) string {
	if p == nil {
		return ""
	}
	b := (*[internMax + 1]byte)(unsafe.Pointer(p))
	h, n := uint32(2166136261), 0
	for ; n <= internMax && b[n] != 0; n++ {
		h = (h ^ uint32(b[n])) * 16777619
	}
	if n > internMax {
		return C.GoString(p)
	}
	slot := &interned[h%internSlots]
	if s := slot.Load(); s != nil && *s == string(b[:n]) {
		return *s
	}
	s := string(b[:n])
	slot.Store(&s)
	return s
}

// blockCells is how many cells a Results reads per cgo call (rows of a block times columns).
const blockCells = 2048

func newResults(r *C.pgsess_results, sql string, sl *slot) *Results {
	// Everything but the rows in one cgo call (two for more than 16 columns).
	b := getScratch()
	defer putScratch(b)
	sc := b.c
	sum := &sc.sum
	infos := sc.infos[:]
	first := &sc.infos[0] // C memory: nothing for cgo to check
	C.pgsess_results_summary(r, sum, first, C.size_t(len(infos)))
	ncols := int(sum.ncols)
	if ncols > len(infos) {
		infos = make([]C.pgsess_column_info, ncols)
		C.pgsess_results_summary(r, sum, &infos[0], C.size_t(ncols))
	}
	res := &Results{
		slot:   sl,
		r:      r,
		sql:    sql,
		nrows:  int(sum.nrows),
		status: internC(sum.status),
		nrAff:  uint64(sum.rows_affected),
		count:  int64(sum.count),
		pid:    int32(sum.backend_pid),
		row:    -1,
	}
	if ncols <= len(res.inl.cols) {
		// Few columns (a round trip's usual result): no allocation of their own.
		res.cols, res.bin, res.mods = res.inl.cols[:ncols:ncols], res.inl.bin[:ncols:ncols], res.inl.mods[:ncols:ncols]
	} else {
		res.cols = make([]Column, ncols)
		res.bin = make([]bool, ncols)
		res.mods = make([]int32, ncols)
	}
	for i := range res.cols {
		in := &infos[i]
		res.mods[i] = int32(in.typmod)
		res.cols[i] = Column{Name: internC(in.name), TypeOID: uint32(in.type_oid)}
		res.bin[i] = in.format == 1
	}
	if nn := int(sum.notice_count); nn > 0 {
		res.notes = make([]string, nn)
		for i := range res.notes {
			res.notes[i] = cstr(C.pgsess_results_notice(r, C.size_t(i)))
		}
	}
	if ncols > 0 && res.nrows > 0 {
		rows := blockCells / ncols
		if rows < 1 {
			rows = 1
		}
		if rows > res.nrows {
			rows = res.nrows
		}
		cells := rows * ncols
		ptrSize := unsafe.Sizeof((*C.char)(nil))
		lenSize := unsafe.Sizeof(C.size_t(0))
		res.cmem = smallBlocks.get(uintptr(cells) * (ptrSize + lenSize))
		res.allVals = unsafe.Slice((**C.char)(res.cmem), cells)
		res.allLens = unsafe.Slice((*C.size_t)(unsafe.Add(res.cmem, uintptr(cells)*ptrSize)), cells)
		res.blockRows = rows
	}
	runtime.SetFinalizer(res, reportLeak)
	return res
}

// reportLeak runs when a Results is garbage-collected without Close. It reports and does NOT
// free: the pooled connection stays held, so the leak keeps showing (as pool exhaustion) rather
// than being hidden by the garbage collector's timing.
func reportLeak(res *Results) {
	sql := res.sql
	if len(sql) > 200 {
		sql = sql[:200] + "..."
	}
	log.Printf("pgsess: LEAK: Results of %q (backend pid %d) was garbage-collected without Close; "+
		"its pooled connection stays held. Call res.Close() (e.g. defer res.Close()) after Query.", sql, res.pid)
}

// Close frees the results and returns the pooled connection they hold (waking a statement
// waiting for one). Idempotent; always returns nil.
func (res *Results) Close() error {
	if res == nil || res.r == nil || res.borrowed {
		return nil
	}
	C.pgsess_results_free(res.r)
	res.drop()
	return nil
}

// drop forgets the library's handle (freed by the caller) and frees the binding's own memory.
func (res *Results) drop() {
	res.r = nil
	res.slot.unref()
	res.slot = nil
	if res.cmem != nil {
		smallBlocks.put(res.cmem, uintptr(len(res.allVals))*(unsafe.Sizeof((*C.char)(nil))+unsafe.Sizeof(C.size_t(0))))
		res.cmem, res.vals, res.lens, res.allVals, res.allLens = nil, nil, nil, nil, nil
		res.blockN = 0
	}
	res.valid = false
	runtime.SetFinalizer(res, nil)
}

// Rows is the number of rows (0 for a command without rows).
func (res *Results) Rows() int { return res.nrows }

// Columns describes the columns (none for a command without rows). The slice is shared: do not
// modify it.
func (res *Results) Columns() []Column { return res.cols }

// ColumnFormat is the format of column col's values, as libpq's PQfformat: 0 text (Query), 1
// binary (QueryBinary); -1 for an index out of range. It stays readable after Close.
func (res *Results) ColumnFormat(col int) int {
	if col < 0 || col >= len(res.cols) {
		return -1
	}
	if res.bin[col] {
		return 1
	}
	return 0
}

// ColumnTypeMod is column i's type modifier, as libpq's PQfmod: varchar(n) and char(n) give
// n + 4, numeric(p,s) ((p << 16) | s) + 4, timestamp(p) and time(p) p; -1 when there is none or
// i is out of range.
func (res *Results) ColumnTypeMod(i int) int32 {
	if i < 0 || i >= len(res.mods) {
		return -1
	}
	return res.mods[i]
}

// RowsAffected is the count in the command tag, as libpq's PQcmdTuples: INSERT, UPDATE, DELETE,
// MERGE, SELECT, MOVE, FETCH and COPY give their count; any other command 0.
func (res *Results) RowsAffected() uint64 { return res.nrAff }

// Count is the seed's count() (psycopg2's rowcount): rows returned or affected, -1 for commands
// without a count (DDL, SET, BEGIN, DO).
func (res *Results) Count() int64 { return res.count }

// Status is the command tag, e.g. "SELECT 3", "INSERT 0 2", "CREATE TABLE".
func (res *Results) Status() string { return res.status }

// SQL is the statement text (for Callproc, the function name).
func (res *Results) SQL() string { return res.sql }

// BackendPID is the backend process id of the connection that ran the statement.
func (res *Results) BackendPID() int32 { return res.pid }

// Notices are the notices (NOTICE, WARNING, ...) the statement raised, in libpq's form
// ("NOTICE:  text\n").
func (res *Results) Notices() []string { return res.notes }

// Next advances to the next row, fetching all its cells with one call into the library; it
// returns false after the last row or once the results are closed.
func (res *Results) Next() bool {
	if res.r == nil || res.row+1 >= res.nrows {
		res.row = res.nrows
		res.valid = false
		return false
	}
	res.row++
	res.fetch(res.row)
	return true
}

// fetch points vals/lens at row's cells, reading the block of rows from row on (one cgo call)
// when row is not in the block read last.
func (res *Results) fetch(row int) {
	ncols := len(res.cols)
	if ncols > 0 {
		if row < res.blockFirst || row >= res.blockFirst+res.blockN {
			n := C.gopgsess_cells(res.r, C.size_t(row), C.size_t(res.blockRows), C.uintptr_t(uintptr(res.cmem)), C.size_t(ncols))
			res.blockFirst, res.blockN = row, int(n)
		}
		i := (row - res.blockFirst) * ncols
		res.vals = res.allVals[i : i+ncols : i+ncols]
		res.lens = res.allLens[i : i+ncols : i+ncols]
	}
	res.valid = true
}

// Seek positions the cursor before row (0 rewinds), so that the next Next reads it.
func (res *Results) Seek(row int) {
	if row < 0 {
		row = 0
	}
	if row > res.nrows {
		row = res.nrows
	}
	res.row = row - 1
	res.valid = false
}

// Row is the index of the current row (-1 before the first Next).
func (res *Results) Row() int { return res.row }

func (res *Results) current() error {
	if res.r == nil {
		return newError(InterfaceError, "results are closed")
	}
	if !res.valid || res.row < 0 || res.row >= res.nrows {
		return newError(InterfaceError, "no current row: call Next first (and check that it returned true)")
	}
	return nil
}

// view is the current row's cell col as a transient string over the library's memory (nil-ness
// in ok). It must not outlive the Results: only parse it or copy it.
func (res *Results) view(col int) (s string, ok bool) {
	p := res.vals[col]
	if p == nil {
		return "", false
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(p)), int(res.lens[col]))
	return *(*string)(unsafe.Pointer(&b)), true // unsafe.String, which Go 1.19 lacks
}

// Scan copies the current row's columns into dest, one per column, converting by the column's
// type. Supported destinations:
//
//	*string, *[]byte, *json.RawMessage   the text form (bytea: the decoded bytes for []byte)
//	*int, *int8..*int64, *uint..*uint64  integer text (int2/4/8, oid, numeric without fraction, ...)
//	*float32, *float64                   float and numeric text
//	*bool                                bool
//	*time.Time                           date, timestamp, timestamptz (see Values)
//	*[16]byte                            uuid
//	*any                                 as Values
//	sql.Scanner (sql.NullString, ...)    given the Values value
//	**T for any T above                  nil for NULL, else a new T
//	nil                                  skips the column
//
// NULL into a destination that cannot hold it is an error with Code NullValue; *[]byte,
// *json.RawMessage and *any become nil. Binary columns (QueryBinary) give the same values (see
// the package documentation, "Binary results").
func (res *Results) Scan(dest ...any) error {
	if err := res.current(); err != nil {
		return err
	}
	if len(dest) != len(res.cols) {
		return errorf(InterfaceError, "Scan: %d destinations for %d columns", len(dest), len(res.cols))
	}
	for i, d := range dest {
		if err := res.scanCol(i, d); err != nil {
			return err
		}
	}
	return nil
}

// Values gives the current row's values typed by column type (see the package documentation).
func (res *Results) Values() ([]any, error) {
	if err := res.current(); err != nil {
		return nil, err
	}
	out := make([]any, len(res.cols))
	for i := range res.cols {
		v, err := res.value(i)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// Map gives the current row as a map from column name to Values' value; with duplicated column
// names the last one wins.
func (res *Results) Map() (map[string]any, error) {
	if err := res.current(); err != nil {
		return nil, err
	}
	m := make(map[string]any, len(res.cols))
	for i, c := range res.cols {
		v, err := res.value(i)
		if err != nil {
			return nil, err
		}
		m[c.Name] = v
	}
	return m, nil
}

// Maps gives every row as a map (the seed's dict rows, psycopg2's RealDictCursor), whatever the
// cursor's position, which it leaves unchanged.
func (res *Results) Maps() ([]map[string]any, error) {
	if res.r == nil {
		return nil, newError(InterfaceError, "results are closed")
	}
	saved, savedValid := res.row, res.valid
	defer func() {
		res.row, res.valid = saved, false
		if savedValid {
			res.fetch(saved)
		}
	}()
	out := make([]map[string]any, 0, res.nrows)
	for row := 0; row < res.nrows; row++ {
		res.row = row
		res.fetch(row)
		m, err := res.Map()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// AsDict is the seed's as_dict(): the only row as a map; a result without exactly one row is an
// InterfaceError.
func (res *Results) AsDict() (map[string]any, error) {
	if res.r != nil && res.nrows != 1 {
		return nil, errorf(InterfaceError, "as_dict needs exactly one row, the result has %d", res.nrows)
	}
	rows, err := res.Maps()
	if err != nil {
		return nil, err
	}
	return rows[0], nil
}

// JSON is the whole result as the library's JSON (pgsess_results_json): an array of objects
// keyed by column name, numbers, bools and json values keeping their JSON types.
func (res *Results) JSON() (json.RawMessage, error) {
	if res.r == nil {
		return nil, newError(InterfaceError, "results are closed")
	}
	p := C.pgsess_results_json(res.r)
	if p == nil {
		return nil, newError(InterfaceError, "pgsess_results_json returned NULL")
	}
	defer C.pgsess_string_free(p)
	return json.RawMessage(C.GoString(p)), nil
}

// Text gives the server's text form of any cell (false for NULL or an index out of range),
// without moving the cursor: one cgo call per cell. In a binary column (QueryBinary) it is the
// value rendered as text by pgsess_results_get_text, and false also for a value the library
// does not render (see Scan).
func (res *Results) Text(row, col int) (string, bool) {
	if res.r == nil || row < 0 || col < 0 || row >= res.nrows || col >= len(res.cols) {
		return "", false
	}
	if res.bin[col] {
		s, ok, err := res.libText(row, col)
		if err != nil || !ok {
			return "", false
		}
		return strings.Clone(s), true
	}
	p := C.pgsess_results_value(res.r, C.size_t(row), C.size_t(col))
	if p == nil {
		return "", false
	}
	return C.GoStringN(p, C.int(C.pgsess_results_value_length(res.r, C.size_t(row), C.size_t(col)))), true
}

func (res *Results) colErr(c Code, col int, format string, args ...any) error {
	e := errorf(c, format, args...)
	e.Message = "column " + strconv.Quote(res.cols[col].Name) + " (row " + strconv.Itoa(res.row) + "): " + e.Message
	return e
}

func (res *Results) nullErr(col int, dest any) error {
	return res.colErr(NullValue, col, "NULL cannot be scanned into %T (scan into a pointer to a pointer, *any or a sql.Null* type)", dest)
}

// value is Values' conversion of cell col of the current row.
func (res *Results) value(col int) (any, error) {
	s, ok := res.view(col)
	if !ok {
		return nil, nil
	}
	if res.bin[col] {
		return res.binValue(col, s)
	}
	switch res.cols[col].TypeOID {
	case OIDInt2, OIDInt4, OIDInt8, OIDOid:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, res.colErr(ValueOverflow, col, "%v", err)
		}
		return n, nil
	case OIDFloat4, OIDFloat8:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, res.colErr(TypeMismatch, col, "%v", err)
		}
		return f, nil
	case OIDBool:
		return s == "t", nil
	case OIDBytea:
		return res.bytea(col, s)
	case OIDDate, OIDTimestamp, OIDTimestampTZ:
		t, inf, err := res.timeValue(col)
		if err != nil {
			return nil, err
		}
		if inf != 0 {
			if inf > 0 {
				return "infinity", nil
			}
			return "-infinity", nil
		}
		return t, nil
	case OIDJSON, OIDJSONB:
		return json.RawMessage(s), nil // the conversion copies
	}
	return strings.Clone(s), nil // copy out of the library's memory
}

// binValue is value for a binary cell (s, not NULL): the same Go value as the text gives.
func (res *Results) binValue(col int, s string) (any, error) {
	oid := res.cols[col].TypeOID
	if n, handled, err := res.binInt(col, s); handled {
		if err != nil {
			return nil, err
		}
		return n, nil
	}
	if f, handled, err := res.binFloat(col, s); handled {
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	switch oid {
	case OIDBool:
		b, err := res.binBool(col, s)
		if err != nil {
			return nil, err
		}
		return b, nil
	case OIDBytea:
		return []byte(s), nil
	case OIDDate, OIDTimestamp, OIDTimestampTZ:
		t, inf, err := res.timeValue(col)
		if err != nil {
			return nil, err
		}
		if inf != 0 {
			if inf > 0 {
				return "infinity", nil
			}
			return "-infinity", nil
		}
		return t, nil
	case OIDJSON:
		return json.RawMessage(s), nil
	case OIDJSONB:
		j, err := res.binJSONB(col, s)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(j), nil
	}
	t, _, err := res.binText(col)
	if err != nil {
		return nil, err
	}
	return strings.Clone(t), nil
}

// bytea decodes a bytea cell: a binary value is its bytes; text in the hex form is decoded in
// Go, the escape form (bytea_output=escape) by the library.
func (res *Results) bytea(col int, s string) ([]byte, error) {
	if res.bin[col] {
		return []byte(s), nil
	}
	if len(s) >= 2 && s[0] == '\\' && s[1] == 'x' {
		b, ok := decodeHex(s[2:])
		if !ok {
			return nil, res.colErr(TypeMismatch, col, "bad bytea hex text")
		}
		return b, nil
	}
	var n C.size_t
	p := C.pgsess_results_get_bytes(res.r, C.size_t(res.row), C.size_t(col), &n)
	if p == nil {
		return nil, res.colErr(InterfaceError, col, "pgsess_results_get_bytes returned NULL")
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n)), nil
}

// timeValue reads a date/timestamp/timestamptz cell: its ISO text or binary value in Go, any
// other text through pgsess_results_get_epoch_micros; inf is +1/-1 for 'infinity'/'-infinity'.
func (res *Results) timeValue(col int) (t time.Time, inf int, err error) {
	if res.bin[col] {
		s, _ := res.view(col)
		us, inf, err := res.binMicros(col, s)
		if err != nil || inf != 0 {
			return t, inf, err
		}
		return time.UnixMicro(us).UTC(), 0, nil
	}
	if s, ok := res.view(col); ok {
		if t, inf, ok := parseTimeText(s, res.cols[col].TypeOID == OIDTimestampTZ); ok {
			return t, inf, nil
		}
	}
	var us C.int64_t
	rc := C.pgsess_results_get_epoch_micros(res.r, C.size_t(res.row), C.size_t(col), &us)
	if rc != C.PGSESS_OK {
		s, _ := res.view(col)
		return t, 0, res.colErr(Code(rc), col, "cannot read %q as a time (%s; the ISO DateStyle is required)", s, Code(rc))
	}
	switch int64(us) {
	case math.MaxInt64:
		return t, 1, nil
	case math.MinInt64:
		return t, -1, nil
	}
	return time.UnixMicro(int64(us)).UTC(), 0, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeHex decodes hex digits from a string without copying it first.
func decodeHex(s string) ([]byte, bool) {
	if len(s)%2 != 0 {
		return nil, false
	}
	b := make([]byte, len(s)/2)
	for i := range b {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return nil, false
		}
		b[i] = hi<<4 | lo
	}
	return b, true
}

// libEpochMicros is the library's reading of a time cell of the current row
// (pgsess_results_get_epoch_micros), for the test that compares the Go parser with it.
func (res *Results) libEpochMicros(col int) (int64, bool) {
	var us C.int64_t
	rc := C.pgsess_results_get_epoch_micros(res.r, C.size_t(res.row), C.size_t(col), &us)
	return int64(us), rc == C.PGSESS_OK
}
