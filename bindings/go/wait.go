package pgsess

/*
#include <pgsess.h>
*/
import "C"

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A statement with arguments runs in three short cgo calls around a wait in Go's netpoller
// (pgsess_send_query_params, then pgsess_pending_poll each time the socket is readable, then
// pgsess_pending_finish) instead of one cgo call that blocks until the answer arrives. A
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
	ready   func(uintptr) bool
}

// poll asks the library whether the answer waited for is in (see waitSocket).
func (pf *pollFile) poll(uintptr) bool {
	if pf.pending != nil {
		return C.pgsess_pending_poll(pf.pending) != 0
	}
	return C.pgsess_stream_poll(pf.stream) != 0
}

// cScratch holds one call's out-parameters for C (an error, a serial number, a result's
// summary and column descriptions). Passing an address to C makes what it points to escape to
// the heap; reused through a pool, these cost no allocation per statement. No Go pointers in
// it, so C may be given addresses inside it.
type cScratch struct {
	cerr   *C.pgsess_error
	serial C.uint64_t
	sum    C.pgsess_results_info
	infos  [16]C.pgsess_column_info
}

var scratchPool = sync.Pool{New: func() any { return new(cScratch) }}

func getScratch() *cScratch {
	sc := scratchPool.Get().(*cScratch)
	sc.cerr = nil
	return sc
}

func putScratch(sc *cScratch) { scratchPool.Put(sc) }

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
		p.pending, p.stream = pending, stream
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

// waitReply waits in the netpoller until the pending statement's answer is in, or its
// statement timeout passes (pgsess_pending_wait_ms; pgsess_pending_finish then cancels and
// waits at most the cancel grace itself). The connection is this goroutine's until finished, so
// its pollFile is too.
func waitReply(p *C.pgsess_pending) {
	sc := getScratch()
	defer putScratch(sc)
	fd := int(C.pgsess_pending_fd(p, &sc.serial))
	if fd < 0 {
		return
	}
	if pf := pollFiles.get(fd, uint64(sc.serial), p, nil); pf != nil {
		waitSocket(pf, int64(C.pgsess_pending_wait_ms(p)))
	}
}

// waitChunk is waitReply for a stream's next chunk (pgsess_stream_poll, pgsess_stream_wait_ms).
func waitChunk(st *C.pgsess_stream) {
	if C.pgsess_stream_poll(st) != 0 {
		return
	}
	sc := getScratch()
	defer putScratch(sc)
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
