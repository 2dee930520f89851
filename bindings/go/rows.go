package pgsess

/*
#include <stdlib.h>
#include "handles.h"
*/
import "C"

import (
	"context"
	"runtime"
	"strconv"
	"strings"
)

// Rows are the rows of one statement read a chunk at a time (Session.Stream, Tx.Stream, and the
// Rows of the database/sql driver): memory holds one chunk of rows (WithFetchSize, default
// 1000), whatever the size of the result. Each chunk is read with pgsess_stream_next, its cells
// a block at a time (pgsess_results_cells), so a row costs no cgo call of its own.
//
// Rows hold their connection until Close (or until Next returned false): always close them.
// On a pinned session, or a transaction's, no other statement may run there until then (it
// fails with InterfaceError). Rows are not safe for concurrent use.
type Rows struct {
	s      *Session
	ctx    context.Context
	sql    string
	cs     *C.pgsess_session // what pgsess_cancel targets while a chunk is read
	st     *C.pgsess_stream  // nil when every chunk has been read, or for a buffered statement
	cur    *Results          // the chunk being read
	cols   []Column
	bin    []bool
	mods   []int32           // the columns' type modifiers (ColumnTypeMod)
	slot   *slot             // the stream's reference to its connection's gate slot
	sub    *C.pgsess_session // the sub-session it runs on (pooled sessions), given back at Close
	status string
	nrAff  uint64
	total  uint64 // rows in the chunks read so far
	err    error
	closed bool
}

// Stream runs sql (arguments as for Query) and returns its rows to be read a chunk at a time,
// through pgsess_query_stream: for results too large to hold at once. ctx bounds the wait for a
// connection and each chunk's reading: when it ends the statement is cancelled on the server and
// Next returns false with Err a *ContextError. Close the Rows when done (defer rows.Close()).
//
// The stream's parameters travel as text; a statement with a []byte argument (a binary
// parameter) is run with pgsess_query_params instead and its whole result is held at once.
// Results are text, as Query's. Streaming costs a round trip per chunk, and one more to end a
// result that fits in one chunk: for small results Query is faster.
func (s *Session) Stream(ctx context.Context, sql string, args ...any) (*Rows, error) {
	st, err := s.enter(ctx, true)
	if err != nil {
		return nil, err
	}
	defer st.exitKeeping(true, true)
	r := &Rows{s: s, ctx: ctx, sql: sql, cs: st.cs, slot: st.slot, sub: st.sub}
	if err := r.open(args); err != nil {
		r.slot.unref()
		s.putSub(r.sub)
		return nil, finish(ctx, false, err)
	}
	runtime.SetFinalizer(r, func(r *Rows) { reportLeakRows(r) })
	return r, nil
}

// Stream runs a statement inside the transaction and returns its rows a chunk at a time, as
// Session.Stream: until the Rows are closed or read to the end, the transaction refuses other
// statements (and Commit) with InterfaceError.
func (tx *Tx) Stream(ctx context.Context, sql string, args ...any) (*Rows, error) {
	return tx.Session().Stream(ctx, sql, args...)
}

func reportLeakRows(r *Rows) {
	if !r.closed {
		reportLeak(&Results{sql: r.sql})
	}
}

// open starts the statement and reads its first chunk.
func (r *Rows) open(args []any) error {
	p, err := newParams(args)
	if err != nil {
		return err
	}
	defer p.free()
	if p.binary {
		res, err := runWatched(r.ctx, r.cs, func() (*Results, error) {
			return run(r.cs, nil, sqlText, r.sql, args, r.slot.ref())
		})
		if err != nil {
			r.slot.unref()
			return err
		}
		r.cur = res
		r.cols, r.bin, r.mods = res.cols, res.bin, res.mods
		r.status, r.nrAff = res.status, res.nrAff
		return nil
	}
	fetch := r.s.opts.fetchSize
	if fetch <= 0 {
		fetch = defaultFetchSize
	}
	stop := watch(r.ctx, r.cs)
	b := getScratch()
	defer putScratch(b)
	sc := b.c
	cerr := &sc.cerr
	// Staged, sent once the wait in the netpoller is armed, its first chunk then read (see
	// waitStaged).
	var st *C.pgsess_stream
	csql, clen := sqlArg(r.sql)
	pending := C.pgsess_stage_query_stream(r.cs, csql, clen, C.size_t(p.n), p.valuesPtr(), C.uint32_t(fetch), true,
		&sc.sock, cerr)
	if pending != nil {
		waitStaged(pending, &sc.sock)
		st = C.pgsess_pending_finish_stream(pending, cerr)
	}
	fired := stop()
	if st == nil {
		return finish(r.ctx, fired, takeError(*cerr, "pgsess_query_stream"))
	}
	r.st = st
	if !r.nextChunk() {
		if r.err != nil {
			err := r.err
			r.Close()
			return err
		}
	}
	return nil
}

// runWatched runs f (a statement on cs) under a watcher of ctx.
func runWatched(ctx context.Context, cs *C.pgsess_session, f func() (*Results, error)) (*Results, error) {
	stop := watch(ctx, cs)
	res, err := f()
	fired := stop()
	return res, finish(ctx, fired, err)
}

// nextChunk reads the next chunk into r.cur; false at the end (r.st freed) or on an error
// (r.err).
func (r *Rows) nextChunk() bool {
	if r.st == nil {
		return false
	}
	if err := r.ctx.Err(); err != nil {
		r.err = contextError(r.ctx, nil)
		r.endStream()
		return false
	}
	// A pooled session's stream runs on its own sub-session; a pinned or transaction's session's
	// handle is only used (to cancel) while the session is held.
	cs := r.cs
	held := false
	if r.sub == nil {
		if _, err := r.s.handle(); err == nil {
			held = true
		} else {
			cs = nil
		}
	}
	stop := func() bool { return false }
	if cs != nil {
		stop = watch(r.ctx, cs)
	}
	var cerr *C.pgsess_error
	waitChunk(r.st)
	chunk := C.pgsess_stream_next(r.st, &cerr)
	fired := stop()
	if held {
		r.s.release()
	}
	if chunk == nil {
		if cerr != nil {
			r.err = finish(r.ctx, fired, takeError(cerr, "pgsess_stream_next"))
		}
		r.endStream()
		return false
	}
	r.cur = newResults(chunk, r.sql, r.slot.ref())
	if r.cols == nil {
		r.cols, r.bin, r.mods = r.cur.cols, r.cur.bin, r.cur.mods
	}
	r.total += uint64(r.cur.nrows)
	if r.cur.status != "" {
		r.status, r.nrAff = r.cur.status, r.cur.nrAff
		// A suspended portal's CommandComplete counts the rows of its last Execute only.
		if strings.HasPrefix(r.status, "SELECT ") {
			r.status, r.nrAff = "SELECT "+strconv.FormatUint(r.total, 10), r.total
		}
	}
	return true
}

// endStream frees the stream (its connection returns once the chunks are closed too).
func (r *Rows) endStream() {
	if r.st != nil {
		C.pgsess_stream_free(r.st)
		r.st = nil
	}
}

// Next advances to the next row, reading the next chunk when the current one is done; false
// at the end or on an error (see Err). After the last row the connection is let go at once.
func (r *Rows) Next() bool {
	if r.closed {
		return false
	}
	for {
		if r.cur != nil {
			if r.cur.Next() {
				return true
			}
			r.cur.Close()
			r.cur = nil
		}
		if !r.nextChunk() {
			r.Close()
			return false
		}
	}
}

// Err is the error that ended Next early, or nil (also after Close).
func (r *Rows) Err() error { return r.err }

// Close frees the rows not read yet (the server stops sending them) and lets the connection
// go. Idempotent; returns nil.
func (r *Rows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
	r.endStream()
	r.slot.unref()
	r.slot = nil
	r.s.putSub(r.sub)
	r.sub = nil
	runtime.SetFinalizer(r, nil)
	return nil
}

// Columns describes the columns (known once the first chunk has arrived, which Stream waits
// for). The slice is shared: do not modify it.
func (r *Rows) Columns() []Column { return r.cols }

// ColumnTypeMod is column i's type modifier, as Results.ColumnTypeMod (-1 when none, before the
// first chunk, or out of range).
func (r *Rows) ColumnTypeMod(i int) int32 {
	if i < 0 || i >= len(r.mods) {
		return -1
	}
	return r.mods[i]
}

// ColumnFormat is 0 (text) or 1 (binary) for column col; -1 out of range.
func (r *Rows) ColumnFormat(col int) int {
	if col < 0 || col >= len(r.bin) {
		return -1
	}
	if r.bin[col] {
		return 1
	}
	return 0
}

// Status is the command tag ("SELECT 1000000"), known once every row has been read.
func (r *Rows) Status() string { return r.status }

// RowsAffected is the tag's count (as Results.RowsAffected), known once every row has been read.
func (r *Rows) RowsAffected() uint64 { return r.nrAff }

func (r *Rows) current() (*Results, error) {
	if r.cur == nil {
		if r.closed {
			return nil, newError(InterfaceError, "rows are closed")
		}
		return nil, newError(InterfaceError, "no current row: call Next first (and check that it returned true)")
	}
	return r.cur, nil
}

// Scan copies the current row's columns into dest, as Results.Scan.
func (r *Rows) Scan(dest ...any) error {
	cur, err := r.current()
	if err != nil {
		return err
	}
	return cur.Scan(dest...)
}

// Values gives the current row's values typed by column type, as Results.Values.
func (r *Rows) Values() ([]any, error) {
	cur, err := r.current()
	if err != nil {
		return nil, err
	}
	return cur.Values()
}
