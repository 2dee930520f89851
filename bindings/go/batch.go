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
	"unsafe"
)

// Batch is a list of statements to run in one round trip (Session.SendBatch), pipelined, each
// its own implicit transaction: one statement's error does not stop the others. Build it with
// Queue; it can be sent any number of times. Not safe for concurrent use.
type Batch struct {
	items []batchItem
}

type batchItem struct {
	sql  string
	args []any
}

// Queue appends a statement (one statement: no ;-separated list) with its arguments, as for
// Query. Arguments travel as text, a []byte as bytea's hex text ('\x...'), so it must be a
// bytea parameter.
func (b *Batch) Queue(sql string, args ...any) {
	b.items = append(b.items, batchItem{sql: sql, args: args})
}

// Len is the number of statements queued.
func (b *Batch) Len() int { return len(b.items) }

// BatchResults are the outcomes of a batch, in order. They hold the batch's connection until
// Close: always close them.
type BatchResults struct {
	br      *C.pgsess_batch_results
	results []*Results
	errs    []error
	slot    *slot
}

// SendBatch runs every statement of b on one connection in one round trip
// (pgsess_batch_run). The error is for the batch as a whole (no connection, the connection
// broke, ctx ended: then the statements are cancelled on the server); each statement's own
// outcome is BatchResults.Results(i).
func (s *Session) SendBatch(ctx context.Context, b *Batch) (*BatchResults, error) {
	cb := C.pgsess_batch_new()
	defer C.pgsess_batch_free(cb)
	for i, it := range b.items {
		if err := batchAdd(cb, it); err != nil {
			return nil, errorf(CodeOf(err), "batch statement %d: %v", i, err)
		}
	}
	st, err := s.enter(ctx, false)
	if err != nil {
		return nil, err
	}
	stop := watch(ctx, st.cs)
	var cerr *C.pgsess_error
	br := C.pgsess_batch_run(st.cs, cb, &cerr)
	fired := stop()
	st.exit(br != nil)
	if br == nil {
		return nil, finish(ctx, fired, takeError(cerr, "pgsess_batch_run"))
	}
	out := &BatchResults{br: br, slot: st.slot}
	n := int(C.pgsess_batch_results_count(br))
	out.results = make([]*Results, n)
	out.errs = make([]error, n)
	for i := 0; i < n; i++ {
		if r := C.pgsess_batch_results_get(br, C.size_t(i)); r != nil {
			res := newResults(r, b.items[i].sql, nil)
			res.borrowed = true
			runtime.SetFinalizer(res, nil)
			out.results[i] = res
			continue
		}
		if e := C.pgsess_batch_results_error(br, C.size_t(i)); e != nil {
			out.errs[i] = finish(ctx, fired, convertError(e))
		} else {
			out.errs[i] = newError(InterfaceError, "the batch gave neither a result nor an error")
		}
	}
	runtime.SetFinalizer(out, func(b *BatchResults) {
		reportLeak(&Results{sql: "a batch of " + strconv.Itoa(len(b.results)) + " statements"})
	})
	return out, nil
}

// batchAdd appends one statement, its arguments as text.
func batchAdd(cb *C.pgsess_batch, it batchItem) error {
	args := append([]any(nil), it.args...)
	for i, a := range args {
		if b, ok := a.([]byte); ok && b != nil {
			hex := make([]byte, 2+2*len(b))
			copy(hex, `\x`)
			const digits = "0123456789abcdef"
			for j, c := range b {
				hex[2+2*j], hex[3+2*j] = digits[c>>4], digits[c&15]
			}
			args[i] = string(hex)
		}
	}
	p, err := newParams(args)
	if err != nil {
		return err
	}
	defer p.free()
	csql, err := cString(it.sql, "SQL")
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(csql))
	return codeError(C.pgsess_batch_add(cb, csql, C.size_t(p.n), p.valuesPtr()), "pgsess_batch_add")
}

// Len is the number of statements.
func (br *BatchResults) Len() int { return len(br.results) }

// Results gives statement i's results, or its error. The Results belong to br: they are valid
// until br.Close, and their own Close does nothing.
func (br *BatchResults) Results(i int) (*Results, error) {
	if i < 0 || i >= len(br.results) {
		return nil, errorf(InterfaceError, "batch result %d out of range (%d statements)", i, len(br.results))
	}
	if br.br == nil {
		return nil, newError(InterfaceError, "batch results are closed")
	}
	if br.errs[i] != nil {
		return nil, br.errs[i]
	}
	return br.results[i], nil
}

// Close frees every result of the batch and returns its connection. Idempotent.
func (br *BatchResults) Close() error {
	if br.br == nil {
		return nil
	}
	for _, r := range br.results {
		if r != nil {
			r.drop()
		}
	}
	C.pgsess_batch_results_free(br.br)
	br.br = nil
	br.slot.unref()
	br.slot = nil
	runtime.SetFinalizer(br, nil)
	return nil
}
