package pgsess

/*
#include <stdlib.h>
#include "handles.h"
*/
import "C"

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// A statement with arguments runs in short cgo calls around a wait in Go's netpoller
// (pgsess_stage_query_params, then pgsess_pending_send once the wait is armed,
// pgsess_pending_poll each time the socket is readable, then pgsess_pending_finish) instead of
// one cgo call that blocks until the answer arrives. A
// blocking cgo call keeps its OS thread and, once the runtime's monitor notices (after 20 us
// or more), makes the scheduler hand its P to another thread: with GOMAXPROCS=1 the other
// goroutines wait meanwhile, and every statement costs thread hand-offs. Parked in the
// netpoller, the goroutine costs no thread, and its P runs the other goroutines at once, as with
// pgx.

// pollFile is a duplicate of one connection's socket, registered with the netpoller.
type pollFile struct {
	f        *os.File
	rc       syscall.RawConn
	used     uint64      // fdCache.tick when last handed out
	deadline atomic.Bool // a read deadline is set on f
	// What the wait in progress polls: a pending statement or a stream (set by get, for the
	// goroutine that holds the connection), and ready bound to it once, so a wait allocates
	// nothing.
	pending *C.pgsess_pending
	stream  *C.pgsess_stream
	// The pending statement is staged: the wait's first call sends it instead of polling.
	unsent bool
	ready  func(uintptr) bool
}

// poll asks the library whether the answer waited for is in (see waitSocket). For a staged
// statement, the first call (the wait armed) sends it instead: its answer cannot have arrived
// before, so there is nothing to read yet.
func (pf *pollFile) poll(uintptr) bool {
	if pf.pending != nil {
		if pf.unsent {
			pf.unsent = false
			return C.pgsess_pending_send(pf.pending) != 0
		}
		return C.pgsess_pending_poll(pf.pending) != 0
	}
	return C.pgsess_stream_poll(pf.stream) != 0
}

// cScratch holds one call's out-parameters for C (an error, a serial number, a result's
// summary and column descriptions). It lives in C memory: an address passed to C then costs
// neither an allocation (a Go address passed to C escapes to the heap) nor cgo's check of Go
// pointers (which walks what the address points to). Reused through a pool.
type cScratch struct {
	cerr   *C.pgsess_error
	serial C.uint64_t
	sock   C.pgsess_pending_socket
	sum    C.pgsess_results_info
	infos  [16]C.pgsess_column_info
}

// scratchBox owns one cScratch: the pool keeps boxes, and a box the garbage collector takes
// from the pool frees its C memory (its finalizer, set once when it is made).
type scratchBox struct{ c *cScratch }

var scratchPool = sync.Pool{New: func() any {
	b := &scratchBox{c: (*cScratch)(C.calloc(1, C.size_t(unsafe.Sizeof(cScratch{}))))}
	if b.c == nil {
		panic("pgsess: out of memory")
	}
	runtime.SetFinalizer(b, func(b *scratchBox) { C.free(unsafe.Pointer(b.c)) })
	return b
}}

// getScratch takes a scratch from the pool (its error cleared); putScratch gives it back.
func getScratch() *scratchBox {
	b := scratchPool.Get().(*scratchBox)
	b.c.cerr = nil
	return b
}

func putScratch(b *scratchBox) { scratchPool.Put(b) }

// fdCache keeps one pollFile per library connection (by its serial number, which the library
// never reuses), so that a statement costs no dup(2) and no epoll registration. The library
// shuts a connection's socket down when it closes it, so a duplicate left here holds only a
// descriptor number; the least recently used is closed once more than fdCacheMax are kept.
type fdCache struct {
	mu    sync.Mutex
	files map[uint64]*pollFile
	tick  uint64
}

// fdCacheMax bounds the duplicates kept: more connections in use at once than this still
// work, waiting in the netpoller on a duplicate made again (and one made for a statement in
// flight and closed by another's eviction makes that statement finish inside the library).
const fdCacheMax = 64

var pollFiles = fdCache{files: map[uint64]*pollFile{}}

// get gives the pollFile of connection serial whose socket is fd (the library's descriptor),
// making it on first use; nil when the socket cannot be registered (then the statement's
// answer is waited for inside the library).
func (c *fdCache) get(fd int, serial uint64, pending *C.pgsess_pending, stream *C.pgsess_stream) *pollFile {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	if p := c.files[serial]; p != nil {
		p.used = c.tick
		p.pending, p.stream, p.unsent = pending, stream, false
		return p
	}
	d, err := syscall.Dup(fd)
	if err != nil {
		return nil
	}
	syscall.CloseOnExec(d)
	// O_NONBLOCK on the shared description: the library's reads and writes tolerate it
	// (pgsess_pending_fd), and os.NewFile registers only non-blocking descriptors.
	if err := syscall.SetNonblock(d, true); err != nil {
		syscall.Close(d)
		return nil
	}
	f := os.NewFile(uintptr(d), "pgsess-connection")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	if len(c.files) >= fdCacheMax {
		var oldest uint64
		var old *pollFile
		for s, p := range c.files {
			if old == nil || p.used < old.used {
				oldest, old = s, p
			}
		}
		delete(c.files, oldest)
		old.f.Close()
	}
	p := &pollFile{f: f, rc: rc, used: c.tick, pending: pending, stream: stream}
	p.ready = p.poll
	c.files[serial] = p
	return p
}

// waitStaged sends a staged statement (pgsess_stage_query_params, whose socket is sock) once
// its wait in the netpoller is armed, and waits there until its answer is in, or its statement
// timeout passes (pgsess_pending_finish then cancels and waits at most the cancel grace
// itself). Returning without sending is safe: pgsess_pending_finish sends a statement still
// staged, and waits in the library. The connection is this goroutine's until finished, so its
// pollFile is too.
func waitStaged(p *C.pgsess_pending, sock *C.pgsess_pending_socket) {
	if sock.fd < 0 {
		return
	}
	if pf := pollFiles.get(int(sock.fd), uint64(sock.serial), p, nil); pf != nil {
		pf.unsent = true
		waitSocket(pf, int64(sock.wait_ms))
	}
}

// waitChunk is waitStaged for a stream's next chunk, already sent (pgsess_stream_poll, pgsess_stream_wait_ms).
func waitChunk(st *C.pgsess_stream) {
	if C.pgsess_stream_poll(st) != 0 {
		return
	}
	b := getScratch()
	defer putScratch(b)
	sc := b.c
	fd := int(C.pgsess_stream_fd(st, &sc.serial))
	if fd < 0 {
		return
	}
	if pf := pollFiles.get(fd, uint64(sc.serial), nil, st); pf != nil {
		waitSocket(pf, int64(C.pgsess_stream_wait_ms(st)))
	}
}

// waitSocket parks in the netpoller on pf until its poll says the library will not wait, or ms
// (-1: no bound) passes. Returning early is always safe: the library's call then waits itself.
func waitSocket(pf *pollFile, ms int64) {
	if ms >= 0 {
		if ms == 0 {
			return
		}
		pf.f.SetReadDeadline(time.Now().Add(time.Duration(ms) * time.Millisecond))
		pf.deadline.Store(true)
	} else if pf.deadline.Load() {
		pf.f.SetReadDeadline(time.Time{})
		pf.deadline.Store(false)
	}
	// The first call reads at once (the socket is edge-triggered: what arrived before the
	// registration is read here); each later one after the netpoller saw new input. An error
	// (the deadline, a duplicate closed by eviction) leaves the rest to the library's call.
	_ = pf.rc.Read(pf.ready)
}
