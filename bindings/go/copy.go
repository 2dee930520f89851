package pgsess

/*
#include <stdlib.h>
#include "handles.h"
*/
import "C"

import (
	"context"
	"io"
	"math"
	"unsafe"
)

// copyChunk is how much CopyFrom reads from its reader per pgsess_copy_write, and how much
// CopyTo gathers before each Write to its writer: large enough that the cgo call and the
// writer's own cost (a system call for a file or socket) are paid per 64 KiB, not per row.
const copyChunk = 64 << 10

// CopyFrom runs sql, a COPY ... FROM STDIN statement (text, CSV or binary format), and sends it
// what r yields, byte for byte, until io.EOF. It returns the number of rows copied.
//
//	n, err := s.CopyFrom("COPY items (id, name) FROM STDIN (FORMAT csv)", f)
//
// The copy holds one pooled connection (on a pinned session or a transaction's session, the
// session's connection, where other statements are refused with InterfaceError until it ends).
// A bad row fails with the server's error (SQLSTATE 22P02 and the like; its Context names the
// line); an error from r (other than io.EOF) aborts the copy and is returned as it is. Either
// way no row of the copy is committed. Close waits for a copy running on the session.
//
// sql must be a COPY ... FROM STDIN: any other statement still runs (as on libpq), and then
// CopyFrom fails with InterfaceError (NotSupportedError for a COPY ... TO STDOUT).
//
// r is read in 64 KiB chunks and each chunk is handed to the library as it comes
// (pgsess_copy_write, which buffers and sends in large messages), so memory stays bounded
// whatever the size of the input.
func (s *Session) CopyFrom(sql string, r io.Reader) (int64, error) {
	return s.CopyFromContext(context.Background(), sql, r)
}

// CopyFromContext is CopyFrom that stops when ctx is done: it checks ctx before each chunk it
// reads from r (every 64 KiB), aborts the copy (nothing is committed) and returns ctx.Err(). A
// Read that blocks is not interrupted: give r a way to end too (a deadline on a connection, a
// reader that watches ctx). Once r is at its end, the server's commit is not interrupted.
func (s *Session) CopyFromContext(ctx context.Context, sql string, r io.Reader) (int64, error) {
	cp, release, done, err := s.startCopy(ctx, sql, copyIn)
	if err != nil {
		return 0, err
	}
	defer release()
	n, err := copyFromReader(ctx, cp, r)
	return n, done(err)
}

// The three ways to start a copy: the direction the caller asks for, or the server's.
const (
	copyIn = iota
	copyOut
	copyEither
)

// startCopy locks s and starts a COPY of sql (pgsess_copy_in, pgsess_copy_out or
// pgsess_copy_start, as how says), waiting for a connection as QueryContext does. While the copy
// runs, ctx ending cancels it on the server too (a COPY TO of a slow query, a COPY FROM's
// commit), besides the checks between chunks. release frees the copy (which aborts or cancels it
// unless it was finished) and unlocks s; done turns an error of the copy into a *ContextError
// when ctx ended.
func (s *Session) startCopy(ctx context.Context, sql string, how int) (cp *C.pgsess_copy, release func(), done func(error) error, err error) {
	st, err := s.enter(ctx, false)
	if err != nil {
		return nil, nil, nil, err
	}
	csql, err := cString(sql, "SQL")
	if err != nil {
		st.exit(false)
		return nil, nil, nil, err
	}
	defer C.free(unsafe.Pointer(csql))
	stop := watch(ctx, st.cs)
	var cerr *C.pgsess_error
	switch how {
	case copyIn:
		cp = C.pgsess_copy_in(st.cs, csql, &cerr)
	case copyOut:
		cp = C.pgsess_copy_out(st.cs, csql, &cerr)
	default:
		cp = C.pgsess_copy_start(st.cs, csql, &cerr)
	}
	if cp == nil {
		fired := stop()
		st.exit(false)
		err := takeError(cerr, [...]string{"pgsess_copy_in", "pgsess_copy_out", "pgsess_copy_start"}[how])
		return nil, nil, nil, finish(ctx, fired, err)
	}
	st.endTurn()
	// Freeing a copy that was not finished aborts it (CopyFail) or cancels it: every early
	// return of the caller, and a panic in r.Read or w.Write, leaves nothing committed.
	release = func() {
		C.pgsess_copy_free(cp)
		stop()
		st.exit(false)
	}
	done = func(err error) error {
		if err == nil {
			return nil
		}
		if err == ctx.Err() {
			return contextError(ctx, nil)
		}
		return finish(ctx, false, err) // a ContextError whenever ctx has ended
	}
	return cp, release, done, nil
}

// copyFromReader sends what r yields to the COPY FROM STDIN cp, checking ctx before each read,
// and finishes it. On an error from r or ctx the copy is aborted with that error as its reason
// (pgsess_copy_abort: "COPY from stdin failed: ..." in the server's log), as pg's copy_data does.
func copyFromReader(ctx context.Context, cp *C.pgsess_copy, r io.Reader) (int64, error) {
	var cerr *C.pgsess_error
	buf := make([]byte, copyChunk)
	for {
		if err := ctx.Err(); err != nil {
			abortCopy(cp, err)
			return 0, err
		}
		n, rerr := r.Read(buf)
		if rerr != nil && rerr != io.EOF {
			abortCopy(cp, rerr)
			return 0, rerr
		}
		if n > 0 {
			if C.pgsess_copy_write(cp, unsafe.Pointer(&buf[0]), C.size_t(n), &cerr) != C.PGSESS_OK {
				return 0, takeError(cerr, "pgsess_copy_write")
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	return finishCopy(cp)
}

// abortCopy aborts a COPY FROM STDIN with why's text as the reason, ignoring the outcome: the
// caller returns why, and a copy that had failed already is over anyway.
func abortCopy(cp *C.pgsess_copy, why error) {
	reason, err := cString("pgsess (Go): "+why.Error(), "reason")
	if err != nil {
		reason = nil // a NUL byte in the message: the library's default reason
	} else {
		defer C.free(unsafe.Pointer(reason))
	}
	var cerr *C.pgsess_error
	if C.pgsess_copy_abort(cp, reason, &cerr) != C.PGSESS_OK && cerr != nil {
		C.pgsess_error_free(cerr)
	}
}

// finishCopy ends a copy and converts its row count (UINT64_MAX on error).
func finishCopy(cp *C.pgsess_copy) (int64, error) {
	var cerr *C.pgsess_error
	rows := uint64(C.pgsess_copy_finish(cp, &cerr))
	if rows == math.MaxUint64 || cerr != nil {
		return 0, takeError(cerr, "pgsess_copy_finish")
	}
	if rows > math.MaxInt64 {
		return math.MaxInt64, nil
	}
	return int64(rows), nil
}

// CopyTo runs sql, a COPY ... TO STDOUT statement (COPY table or COPY (SELECT ...); text, CSV or
// binary format), and writes everything the server sends to w, byte for byte. It returns the
// number of rows copied.
//
//	var buf bytes.Buffer
//	n, err := s.CopyTo("COPY (SELECT * FROM items ORDER BY id) TO STDOUT (FORMAT csv)", &buf)
//
// The data is read a chunk at a time (pgsess_copy_read_chunk: every message the library has
// buffered, typically 64 KiB when the server is ahead, so one cgo call per chunk rather than per
// row), copied into Go memory and written in pieces of at least 64 KiB (w sees large chunks,
// not one Write per row; the last may be smaller). An error from w stops the copy and is returned
// as it is; a short write without an error is io.ErrShortWrite. A copy stopped early has the rest
// of its data read and dropped for up to 100 ms, after which the library closes its connection
// rather than return it to the pool in copy mode. The connection is held as for CopyFrom; sql
// must be a COPY ... TO STDOUT (another statement still runs, then fails as for CopyFrom).
func (s *Session) CopyTo(sql string, w io.Writer) (int64, error) {
	return s.CopyToContext(context.Background(), sql, w)
}

// CopyToContext is CopyTo that stops when ctx is done: it checks ctx before each chunk it reads,
// cancels the copy and returns ctx.Err(). A wait for data the server has not sent yet (a slow
// COPY (SELECT ...)) is not interrupted.
func (s *Session) CopyToContext(ctx context.Context, sql string, w io.Writer) (int64, error) {
	return s.copyTo(ctx, sql, w, false)
}

// copyTo is CopyToContext; perMessage reads one CopyData message per cgo call, as CopyTo did
// before pgsess_copy_read_chunk (for the test and the benchmark that compare the two).
func (s *Session) copyTo(ctx context.Context, sql string, w io.Writer, perMessage bool) (int64, error) {
	cp, release, done, err := s.startCopy(ctx, sql, copyOut)
	if err != nil {
		return 0, err
	}
	defer release()
	n, err := copyToWriter(ctx, cp, w, perMessage)
	return n, done(err)
}

// copyToWriter writes the data of the COPY TO STDOUT cp to w, checking ctx before each read, and
// finishes it. It reads with pgsess_copy_read_chunk; perMessage reads with pgsess_copy_read (one
// cgo call per CopyData message, a row), as CopyTo once did: for the benchmark that compares them.
func copyToWriter(ctx context.Context, cp *C.pgsess_copy, w io.Writer, perMessage bool) (int64, error) {
	var cerr *C.pgsess_error
	buf := make([]byte, 0, copyChunk)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		n, err := w.Write(buf)
		if err == nil && n != len(buf) {
			err = io.ErrShortWrite
		}
		buf = buf[:0]
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		var n C.size_t
		var p unsafe.Pointer
		what := "pgsess_copy_read_chunk"
		if perMessage {
			p, what = C.pgsess_copy_read(cp, &n, &cerr), "pgsess_copy_read"
		} else {
			p = C.pgsess_copy_read_chunk(cp, &n, &cerr)
		}
		if p == nil {
			if cerr != nil {
				return 0, takeError(cerr, what)
			}
			break
		}
		// The data is valid until the next call on cp: copy it out now (w is never handed the
		// library's memory, which a Writer that kept it would see reused).
		buf = append(buf, unsafe.Slice((*byte)(p), int(n))...)
		if len(buf) >= copyChunk {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return finishCopy(cp)
}

// Copy runs sql, a COPY of either direction, and moves its data the way the server took
// (pgsess_copy_start, as libpq's PQexec answering PGRES_COPY_IN or PGRES_COPY_OUT): for COPY ...
// FROM STDIN it sends r's data as CopyFrom does, for COPY ... TO STDOUT it writes the data to w as
// CopyTo does. It returns the number of rows copied. For SQL the program did not write itself
// (a user's COPY command, say); with a direction known, CopyFrom and CopyTo say so. Either of r
// and w may be nil when that direction is not expected: a copy that would need it is aborted
// (nothing is committed) and Copy fails with InterfaceError. A statement that is no COPY FROM
// STDIN or TO STDOUT still runs, then fails with InterfaceError.
func (s *Session) Copy(sql string, r io.Reader, w io.Writer) (int64, error) {
	return s.CopyContext(context.Background(), sql, r, w)
}

// CopyContext is Copy with a context, checked as by CopyFromContext or CopyToContext.
func (s *Session) CopyContext(ctx context.Context, sql string, r io.Reader, w io.Writer) (int64, error) {
	cp, release, done, err := s.startCopy(ctx, sql, copyEither)
	if err != nil {
		return 0, err
	}
	defer release()
	if C.pgsess_copy_is_in(cp) {
		if r == nil {
			err := newError(InterfaceError, "Copy: the server started a COPY ... FROM STDIN, and r is nil")
			abortCopy(cp, err)
			return 0, err
		}
		n, err := copyFromReader(ctx, cp, r)
		return n, done(err)
	}
	if w == nil {
		return 0, newError(InterfaceError, "Copy: the server started a COPY ... TO STDOUT, and w is nil")
	}
	n, err := copyToWriter(ctx, cp, w, false)
	return n, done(err)
}

// CopyFrom runs a COPY ... FROM STDIN inside the transaction (as Session.CopyFrom): its rows are
// committed or rolled back with the transaction. A copy that fails (a bad row, an error from r,
// ctx for CopyFromContext) fails the transaction as any failed statement does: roll it back.
//
// Other calls on the transaction and on its Session wait until the copy ends, so r must not make
// any (it would wait for itself).
func (tx *Tx) CopyFrom(sql string, r io.Reader) (int64, error) {
	return tx.Session().CopyFromContext(context.Background(), sql, r)
}

// CopyFromContext is CopyFrom with a context, as Session.CopyFromContext.
func (tx *Tx) CopyFromContext(ctx context.Context, sql string, r io.Reader) (int64, error) {
	return tx.Session().CopyFromContext(ctx, sql, r)
}

// CopyTo runs a COPY ... TO STDOUT inside the transaction (as Session.CopyTo), so it sees the
// transaction's own changes. As for Tx.CopyFrom, w must not make calls on the transaction.
func (tx *Tx) CopyTo(sql string, w io.Writer) (int64, error) {
	return tx.Session().CopyToContext(context.Background(), sql, w)
}

// CopyToContext is CopyTo with a context, as Session.CopyToContext.
func (tx *Tx) CopyToContext(ctx context.Context, sql string, w io.Writer) (int64, error) {
	return tx.Session().CopyToContext(ctx, sql, w)
}

// Copy runs a COPY of either direction inside the transaction (as Session.Copy).
func (tx *Tx) Copy(sql string, r io.Reader, w io.Writer) (int64, error) {
	return tx.Session().CopyContext(context.Background(), sql, r, w)
}

// CopyContext is Copy with a context, as Session.CopyContext.
func (tx *Tx) CopyContext(ctx context.Context, sql string, r io.Reader, w io.Writer) (int64, error) {
	return tx.Session().CopyContext(ctx, sql, r, w)
}
