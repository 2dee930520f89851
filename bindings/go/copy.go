package pgsess

/*
#include <stdlib.h>
#include <pgsess.h>
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
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cs, err := s.handle()
	if err != nil {
		return 0, err
	}
	defer s.release()
	csql, err := cString(sql, "SQL")
	if err != nil {
		return 0, err
	}
	defer C.free(unsafe.Pointer(csql))
	var cerr *C.pgsess_error
	cp := C.pgsess_copy_in(cs, csql, &cerr)
	if cp == nil {
		return 0, takeError(cerr, "pgsess_copy_in")
	}
	// Freeing a copy that was not finished aborts it (CopyFail): every early return below, and
	// a panic in r.Read, leaves nothing committed.
	defer C.pgsess_copy_free(cp)
	buf := make([]byte, copyChunk)
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, rerr := r.Read(buf)
		if rerr != nil && rerr != io.EOF {
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
// Rows are gathered into 64 KiB writes (w sees large chunks, not one Write per row; a row larger
// than that is written whole). An error from w stops the copy and is returned as it is; a short
// write without an error is io.ErrShortWrite. A copy stopped early has the rest of its data
// read and dropped for up to 100 ms, after which the library closes its connection rather than
// return it to the pool in copy mode. The connection is held as for CopyFrom; sql must be a
// COPY ... TO STDOUT (another statement still runs, then fails as for CopyFrom).
func (s *Session) CopyTo(sql string, w io.Writer) (int64, error) {
	return s.CopyToContext(context.Background(), sql, w)
}

// CopyToContext is CopyTo that stops when ctx is done: it checks ctx before each row it reads,
// cancels the copy and returns ctx.Err(). A wait for a row the server has not sent yet (a slow
// COPY (SELECT ...)) is not interrupted.
func (s *Session) CopyToContext(ctx context.Context, sql string, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cs, err := s.handle()
	if err != nil {
		return 0, err
	}
	defer s.release()
	csql, err := cString(sql, "SQL")
	if err != nil {
		return 0, err
	}
	defer C.free(unsafe.Pointer(csql))
	var cerr *C.pgsess_error
	cp := C.pgsess_copy_out(cs, csql, &cerr)
	if cp == nil {
		return 0, takeError(cerr, "pgsess_copy_out")
	}
	// Freeing a copy not read to its end cancels it: every early return below.
	defer C.pgsess_copy_free(cp)
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
		p := C.pgsess_copy_read(cp, &n, &cerr)
		if p == nil {
			if cerr != nil {
				return 0, takeError(cerr, "pgsess_copy_read")
			}
			break
		}
		// The chunk is valid until the next call on cp: copy it out now.
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
