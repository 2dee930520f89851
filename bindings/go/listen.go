package pgsess

/*
#include <stdlib.h>
#include "handles.h"
*/
import "C"

import (
	"context"
	"errors"
	"log"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// Notification is one NOTIFY received by a listening session (Listen), or a gap marker.
//
// A gap marker (Gap true, Payload "", PID 0) says that notifications on Channel may have been
// missed: the session's listener connection was lost and, once it had reconnected and listened
// again, the library delivered one marker per channel; or more than 65,536 notifications waited
// unread and the oldest were dropped. Whatever a notification stands for (a row changed, a job
// queued) must then be resynchronised from the tables, as after a restart.
type Notification struct {
	Channel string // the channel, as NOTIFY named it (case kept)
	Payload string // the payload ("" when NOTIFY gave none, and for a gap marker)
	PID     int32  // the backend process id of the session that sent it; 0 for a gap marker
	Gap     bool   // a gap marker: notifications on Channel may have been missed
}

// Listen starts listening on channel. The name is quoted as an identifier, so its case is kept:
// Listen("Jobs") receives pg_notify('Jobs', ...) and NOTIFY "Jobs", not NOTIFY Jobs (which
// the server folds to jobs).
//
// The session listens through a dedicated listener connection, opened on the first Listen and
// not counted against the pool's max size, so a pooled session can listen too. If that
// connection is lost, the library reconnects with backoff, listens again on every channel and
// delivers one gap marker per channel (see Notification). Notifications wait, in arrival order,
// until WaitForNotification or Notifications takes them (at most 65,536; beyond that the oldest
// are dropped and a gap marker takes their place). Listening on a channel twice is harmless.
//
// On a pinned session, a plain LISTEN run with Exec listens on the session's own connection;
// those notifications are delivered by WaitForNotification on that session too.
func (s *Session) Listen(channel string) error {
	return s.listenCall(channel, true)
}

// Unlisten stops listening on channel (quoted as for Listen). Notifications already received stay
// queued.
func (s *Session) Unlisten(channel string) error {
	return s.listenCall(channel, false)
}

func (s *Session) listenCall(channel string, listen bool) error {
	cs, err := s.handle()
	if err != nil {
		return err
	}
	defer s.release()
	cch, err := cString(channel, "channel")
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cch))
	var cerr *C.pgsess_error
	if listen {
		if C.pgsess_listen(cs, cch, &cerr) != C.PGSESS_OK {
			return takeError(cerr, "pgsess_listen")
		}
		return nil
	}
	if C.pgsess_unlisten(cs, cch, &cerr) != C.PGSESS_OK {
		return takeError(cerr, "pgsess_unlisten")
	}
	return nil
}

// WaitForNotification returns the next notification (or gap marker) for the session, waiting
// until one arrives or ctx is done (then it returns ctx.Err(), also when one is waiting). It
// returns an InterfaceError once the session is closed. Several goroutines may wait on one
// session: each notification goes to one of them.
//
//	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//	defer cancel()
//	n, err := s.WaitForNotification(ctx)
//
// It waits in Go, on the session's notification descriptor (pgsess_notification_fd, polled by
// the Go runtime's network poller): a waiting goroutine holds no OS thread, and ctx or Close
// end the wait at once. Where that descriptor cannot be had it waits inside the library in
// slices of 100 ms instead.
func (s *Session) WaitForNotification(ctx context.Context) (*Notification, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := s.nextNotification(ctx, 0)
		if err != nil || n != nil {
			return n, err
		}
		ready, err := s.waitNotificationFD(ctx)
		if err != nil {
			return nil, err
		}
		if !ready {
			// No descriptor: wait inside the library, a slice at a time.
			wait := notifySlice
			if dl, ok := ctx.Deadline(); ok {
				if d := time.Until(dl); d < wait {
					wait = d
				}
			}
			ms := (wait + time.Millisecond - 1) / time.Millisecond
			if ms < 1 {
				ms = 1 // the deadline is now: ctx.Err() reports it on the next turn
			}
			n, err := s.nextNotification(ctx, int32(ms))
			if err != nil || n != nil {
				return n, err
			}
		}
	}
}

// notifySlice bounds each wait inside the library when WaitForNotification cannot wait in Go.
const notifySlice = 100 * time.Millisecond

// waitNotificationFD waits in Go until the session's notification descriptor is readable, ctx
// ends (its error) or the session is closed (an InterfaceError). False when there is no
// descriptor to wait on.
func (s *Session) waitNotificationFD(ctx context.Context) (bool, error) {
	if s.tx != nil {
		return false, nil // a transaction's session ends with it: wait in slices, which see that
	}
	dup, err := s.dupNotificationFD(ctx)
	if err != nil || dup < 0 {
		return false, err
	}
	closing := s.closingChan()
	f := os.NewFile(uintptr(dup), "pgsess notifications")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return false, nil
	}
	if dl, ok := ctx.Deadline(); ok {
		f.SetReadDeadline(dl)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-closing:
		case <-stop:
			return
		}
		f.SetReadDeadline(time.Now())
	}()
	first := true
	rerr := rc.Read(func(uintptr) bool {
		if first {
			first = false
			return readable(dup) // ready already, or wait for the poller
		}
		return true
	})
	select {
	case <-closing:
		return false, newError(InterfaceError, "session is closed")
	default:
	}
	if rerr != nil {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if errors.Is(rerr, os.ErrDeadlineExceeded) {
			return true, nil // the ctx deadline is now: the caller reports it
		}
		return false, nil
	}
	return true, nil
}

// dupNotificationFD returns a descriptor of the caller's own on the library's notification
// eventfd (the same open file, already non-blocking), for the runtime's poller, or -1 when there
// is none. Waiters take turns for it (notifyTurn), and the library is asked for its descriptor
// once per session: so a crowd of waiters makes no crowd of cgo calls, each of which could hold
// an OS thread while it waits for the CPU.
func (s *Session) dupNotificationFD(ctx context.Context) (int, error) {
	turn := s.notifyTurnChan()
	select {
	case turn <- struct{}{}:
	case <-ctx.Done():
		return -1, ctx.Err()
	case <-s.closingChan():
		return -1, newError(InterfaceError, "session is closed")
	}
	defer func() { <-turn }()
	cs, err := s.handle() // held while dup runs: Close cannot close the eventfd meanwhile
	if err != nil {
		return -1, err
	}
	defer s.release()
	if !s.notifyFDAsked {
		s.notifyFD = int(C.pgsess_notification_fd(cs))
		s.notifyFDAsked = true
	}
	if s.notifyFD < 0 {
		return -1, nil
	}
	dup, err := syscall.Dup(s.notifyFD)
	if err != nil {
		return -1, nil // no descriptor to spare: the caller waits inside the library instead
	}
	syscall.CloseOnExec(dup)
	return dup, nil
}

// readable reports whether fd is readable now (ppoll(2) without waiting).
func readable(fd int) bool {
	p := struct {
		fd             int32
		events, revent int16
	}{fd: int32(fd), events: 1} // POLLIN
	var ts syscall.Timespec
	n, _, e := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&p)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	return e == 0 && n > 0
}

// nextNotification is one pgsess_notification_next, holding the session only for its length;
// goroutines take turns for it in Go (notifyTurn), so a crowd of waiters holds no OS threads.
func (s *Session) nextNotification(ctx context.Context, timeoutMS int32) (*Notification, error) {
	turn := s.notifyTurnChan()
	select {
	case turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closingChan():
		return nil, newError(InterfaceError, "session is closed")
	}
	defer func() { <-turn }()
	cs, err := s.handle()
	if err != nil {
		return nil, err
	}
	defer s.release()
	var cerr *C.pgsess_error
	cn := C.pgsess_notification_next(cs, C.int32_t(timeoutMS), &cerr)
	if cn == nil {
		if cerr != nil {
			return nil, takeError(cerr, "pgsess_notification_next")
		}
		return nil, nil
	}
	defer C.pgsess_notification_free(cn)
	return &Notification{
		Channel: cstr(C.pgsess_notification_channel(cn)),
		Payload: cstr(C.pgsess_notification_payload(cn)),
		PID:     int32(C.pgsess_notification_pid(cn)),
		Gap:     bool(C.pgsess_notification_is_gap(cn)),
	}, nil
}

// Notifications returns a channel that a goroutine feeds with the session's notifications (and
// gap markers), in arrival order, until ctx is done or the session is closed; it then closes the
// channel. Call it once per consumer: several calls on one session share its notifications.
//
//	ctx, cancel := context.WithCancel(context.Background())
//	defer cancel()
//	for n := range s.Notifications(ctx) {
//		if n.Gap { resync(n.Channel); continue }
//		handle(n.Channel, n.Payload)
//	}
//
// The channel is unbuffered: notifications wait in the library's queue (in order, up to its
// limit) until the consumer takes them. Always end ctx when done reading, or close the session:
// otherwise the goroutine waits for ever. A library error, which WaitForNotification would
// return, also ends the channel; it is logged on the standard logger.
func (s *Session) Notifications(ctx context.Context) <-chan Notification {
	ch := make(chan Notification)
	go func() {
		defer close(ch)
		for {
			n, err := s.WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() == nil && !s.closed() && !errors.Is(err, ErrTxDone) {
					log.Printf("pgsess: Notifications on session %q ends: %v", s.name, err)
				}
				return
			}
			select {
			case ch <- *n:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// closed reports whether s can no longer be used: closed, or its transaction has ended.
func (s *Session) closed() bool {
	cs, err := s.handle()
	if err != nil {
		return true
	}
	s.release()
	return cs == nil
}
