package pgsess

/*
#include "handles.h"
*/
import "C"

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// A gate is the Go side of a pool's checkout: one slot per connection the pool may hold
// (pool_max_size). Every call of this package that takes a pooled connection (a statement on a
// pooled session, Begin, Pin, a copy, a stream, the database/sql driver's Connect) takes a slot
// first, and the slot is given back when the connection is (when the Results, the Tx, the pinned
// session, the copy or the stream that holds it is closed). So a goroutine waiting for a
// connection waits here, on a channel, parked by the Go scheduler and cancellable by its
// context, never inside a cgo call that would pin an OS thread for the length of the wait: a
// thousand goroutines on a pool of eight run on a handful of threads.
//
// Waiters are served in arrival order (a Go channel's senders are queued FIFO). A wait is
// bounded by the pool's checkout timeout, after which it fails with PoolExhausted, as the
// library's own wait does.
//
// The slots count what this process's Go code holds; a C or Rust caller in the same process
// sharing the pool is not counted, and a statement that passed the gate then waits inside the
// library for that connection (still bounded by the checkout timeout).
//
// The channel's capacity is the largest pool_max_size, and the slots beyond the pool's size are
// held by the gate itself (tokens of a chan struct{} are only a count), so Session.Resize can
// give slots up or take them back without a new channel: growing receives tokens at once,
// shrinking sends them as holders give theirs back.
type gate struct {
	slots    chan struct{} // a send takes a slot, a receive gives one back
	timeout  time.Duration // the pool's checkout timeout
	max      int32         // the pool's size as this gate knows it (atomic; resize holds mu)
	mu       sync.Mutex    // serialises resize
	waiters  int32         // goroutines blocked in acquire now
	timeouts uint64        // acquires that gave up after the checkout timeout (added to Stats)
}

// gateCapacity is the library's largest pool_max_size.
const gateCapacity = 10000

var (
	gatesMu sync.Mutex
	gates   = map[string]*gate{} // by pool id
)

// gateFor is the gate of the pool with id poolID, made on first use with max slots.
func gateFor(poolID string, max int, timeout time.Duration) *gate {
	gatesMu.Lock()
	defer gatesMu.Unlock()
	if g, ok := gates[poolID]; ok {
		return g
	}
	if max < 1 {
		max = 1
	} else if max > gateCapacity {
		max = gateCapacity
	}
	g := &gate{slots: make(chan struct{}, gateCapacity), timeout: timeout, max: int32(max)}
	for i := max; i < gateCapacity; i++ {
		g.slots <- struct{}{}
	}
	gates[poolID] = g
	return g
}

// resize makes the gate n slots wide (1 to gateCapacity). Growing frees slots at once;
// shrinking takes slots back as their holders return them, in the background, so it never
// blocks (meanwhile a waiter past the gate waits inside the library, within the checkout
// timeout, as a C caller sharing the pool would).
func (g *gate) resize(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := int(atomic.LoadInt32(&g.max))
	atomic.StoreInt32(&g.max, int32(n))
	for i := old; i < n; i++ {
		select {
		case <-g.slots:
		default: // only when a shrink's tokens have not all landed: it is owed fewer then
		}
	}
	if n < old {
		go func(k int) {
			for i := 0; i < k; i++ {
				g.slots <- struct{}{}
			}
		}(old - n)
	}
}

// acquire takes a slot, waiting until one is free, ctx is done (a *ContextError wrapping
// ctx.Err()) or the checkout timeout passes (PoolExhausted, its message built from the pool's
// statistics as the library's own is: cs is a live session on the pool).
func (g *gate) acquire(ctx context.Context, cs *C.pgsess_session) (*slot, error) {
	select {
	case g.slots <- struct{}{}:
		return &slot{g: g, refs: 1}, nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, contextError(ctx, nil)
	}
	atomic.AddInt32(&g.waiters, 1)
	defer atomic.AddInt32(&g.waiters, -1)
	t := time.NewTimer(g.timeout)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return &slot{g: g, refs: 1}, nil
	case <-ctx.Done():
		return nil, contextError(ctx, nil)
	case <-t.C:
		atomic.AddUint64(&g.timeouts, 1)
		return nil, g.exhausted(cs)
	}
}

// exhausted is the error of a wait that timed out, in the words of the library's own.
func (g *gate) exhausted(cs *C.pgsess_session) error {
	var st C.pgsess_stats
	C.pgsess_pool_stats(cs, &st)
	return errorf(PoolExhausted, "pool %s exhausted: all %d connections are in use (%d in use, %d idle, %d open; "+
		"%d results not yet freed, %d transactions open, %d pinned sessions, %d copies open, %d other callers waiting); "+
		"waited %d ms. Close Results and Rows, end transactions, finish copies and close pinned sessions and "+
		"database/sql connections to return their connections, or raise WithPoolMaxSize / WithCheckoutTimeout",
		cstr(C.pgsess_pool_id(cs)), atomic.LoadInt32(&g.max), uint32(st.in_use), uint32(st.idle), uint32(st.open),
		uint64(st.results_outstanding), uint64(st.transactions_open), uint64(C.pgsess_pool_pinned_sessions(cs)),
		uint64(C.pgsess_pool_copies_open(cs)), g.waiting()-1+int(st.waiting), g.timeout.Milliseconds())
}

// waiting is how many goroutines wait for a slot now.
func (g *gate) waiting() int {
	return int(atomic.LoadInt32(&g.waiters))
}

// slot is one taken slot of a gate, shared by everything that holds its connection (a Tx and
// its Results, a pinned session and its Results, a stream and its chunks): the last release
// gives it back.
type slot struct {
	g    *gate
	refs int32
}

// ref adds a holder.
func (s *slot) ref() *slot {
	if s != nil {
		atomic.AddInt32(&s.refs, 1)
	}
	return s
}

// unref drops a holder; the last one gives the slot back to its gate.
func (s *slot) unref() {
	if s == nil {
		return
	}
	switch n := atomic.AddInt32(&s.refs, -1); {
	case n == 0:
		<-s.g.slots
	case n < 0:
		panic(fmt.Sprintf("pgsess: gate slot released %d times too often", -n))
	}
}
