package pgsess

/*
#include "handles.h"
*/
import "C"

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ContextError is what a call with a context returns when the context ended first: while it
// waited for a connection (Err nil), or while its statement ran, which was then cancelled on the
// server (Err is the server's error, normally SQLSTATE 57014 "canceling statement due to user
// request", Code QueryCanceled).
//
// It wraps both: errors.Is(err, context.DeadlineExceeded) or errors.Is(err, context.Canceled)
// tells which ended the context, and errors.As(err, &pe) with pe a *pgsess.Error gives the
// server's error (IsQueryCanceled(err) is true for a cancelled statement).
type ContextError struct {
	Cause error  // ctx.Err(): context.DeadlineExceeded or context.Canceled
	Err   *Error // the statement's error after the cancel, or nil when none ran
}

func (e *ContextError) Error() string {
	if e.Err == nil {
		return "pgsess: " + e.Cause.Error()
	}
	return e.Err.Error() + " (" + e.Cause.Error() + ")"
}

// Unwrap gives the server's error when there is one, else the context's.
func (e *ContextError) Unwrap() error {
	if e.Err == nil {
		return e.Cause
	}
	return e.Err
}

// Is matches the context's error (context.DeadlineExceeded, context.Canceled) as well as what
// Unwrap gives.
func (e *ContextError) Is(target error) bool {
	return target == e.Cause
}

// contextError is the error of a call whose ctx ended; err is the statement's error, if any.
func contextError(ctx context.Context, err error) error {
	cause := ctx.Err()
	if cause == nil {
		cause = context.Canceled
	}
	var pe *Error
	if err != nil && !errors.As(err, &pe) {
		return err
	}
	return &ContextError{Cause: cause, Err: pe}
}

// cancelRetry is how often a watcher that fired sends its cancel again while the statement has
// not ended: a statement that was still waiting inside the library for its connection when the
// context ended had nothing to cancel yet. Not sooner: a cancel request is only sent, not
// confirmed, so one sent just as the statement ends may reach the server during the next
// statement on that connection; a second one sent while the first is still on its way is that
// risk.
const cancelRetry = time.Second

// cancelSettle is how long after sending a cancel request a watcher keeps its session from the
// next statement. The library sends a cancel request and returns without waiting for the server
// to close that connection (libpq's PQcancel waits for it, which means the postmaster has
// signalled the backend): a signal still on its way may then cancel the next statement on the
// same connection. Measured on a loaded machine: without a pause, up to 15% of extended-protocol
// statements sent at once after a cancelled one were cancelled too; with 20 ms, none. The pause
// only follows a cancel, and only delays the call whose context ended.
const cancelSettle = 25 * time.Millisecond

// watcher cancels one statement on the server when its context ends before the statement does.
type watcher struct {
	mu      sync.Mutex
	stopped bool
	fired   bool
	sentAt  time.Time // when the last cancel request was sent
	done    chan struct{}
}

// watch starts watching ctx for a statement about to run on cs, a session on which nothing else
// runs meanwhile (a per-call sub-session, a pinned session holding its turn, a transaction's
// session), so that pgsess_cancel(cs) reaches that statement alone. The returned stop must be
// called when the statement has returned: it reports whether a cancel was sent, and once it has
// returned no cancel is sent any more (one being sent has finished), so cs may be reused. For a
// context that can never end, watch does nothing.
func watch(ctx context.Context, cs *C.pgsess_session) (stop func() bool) {
	if ctx.Done() == nil {
		return func() bool { return false }
	}
	w := &watcher{done: make(chan struct{})}
	go w.run(ctx, cs)
	return w.stop
}

func (w *watcher) run(ctx context.Context, cs *C.pgsess_session) {
	select {
	case <-w.done:
		return
	case <-ctx.Done():
	}
	t := time.NewTicker(cancelRetry)
	defer t.Stop()
	for {
		w.mu.Lock()
		if w.stopped {
			w.mu.Unlock()
			return
		}
		w.fired = true
		C.pgsess_cancel(cs)
		w.sentAt = time.Now()
		w.mu.Unlock()
		select {
		case <-w.done:
			return
		case <-t.C:
		}
	}
}

func (w *watcher) stop() bool {
	w.mu.Lock()
	w.stopped = true
	fired, sentAt := w.fired, w.sentAt
	w.mu.Unlock()
	close(w.done)
	if fired {
		time.Sleep(time.Until(sentAt.Add(cancelSettle)))
	}
	return fired
}

// finish is the outcome of a statement run under watch: when the context ended while it ran,
// its error wraps the context's (ContextError).
func finish(ctx context.Context, fired bool, err error) error {
	if err == nil {
		return nil
	}
	if fired || ctx.Err() != nil {
		return contextError(ctx, err)
	}
	return err
}
