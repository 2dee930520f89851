package pgsess

/*
#include <stdlib.h>
#include <pgsess.h>
*/
import "C"

import (
	"context"
	"errors"
	"log"
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

// notifySlice bounds each wait inside the library, so that WaitForNotification sees ctx end and
// Close can go ahead within that time. A notification that arrives during a wait is returned at
// once: the slice costs no latency.
const notifySlice = 100 * time.Millisecond

// WaitForNotification returns the next notification (or gap marker) for the session, waiting
// until one arrives or ctx is done (then it returns ctx.Err(), also when one is waiting). It
// returns an InterfaceError once the session is closed. Several goroutines may wait on one
// session: each notification goes to one of them.
//
//	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//	defer cancel()
//	n, err := s.WaitForNotification(ctx)
//
// It waits inside the library in slices of 100 ms (pgsess_notification_next), so ctx and Close
// are noticed within that time; each waiting goroutine occupies an OS thread meanwhile.
func (s *Session) WaitForNotification(ctx context.Context) (*Notification, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
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
		n, err := s.nextNotification(int32(ms))
		if err != nil || n != nil {
			return n, err
		}
	}
}

// nextNotification is one pgsess_notification_next, holding the session only for its length.
func (s *Session) nextNotification(timeoutMS int32) (*Notification, error) {
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
