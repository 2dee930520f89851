//! `pgsess_notification`: LISTEN/NOTIFY.

use std::ffi::c_char;
use std::ptr::null_mut;
use std::time::Duration;

use super::session::pgsess_session;
use super::{arg, call, call_or, give, pgsess_error, read_arg, str_arg, take, Handle, NO_ERR};
use crate::conn::Notification;
use crate::error::Code;

/// One notification (`NOTIFY channel, 'payload'` or `pg_notify`), or a gap marker
/// (`pgsess_notification_is_gap`). From `pgsess_notification_next`; owned by the caller, freed
/// with `pgsess_notification_free`. Immutable: any thread may read it. Checked: after
/// `pgsess_notification_free` its accessors give NULL, 0 or false, and a second free does
/// nothing.
#[allow(non_camel_case_types)]
pub struct pgsess_notification {
    _opaque: [u8; 0],
}

impl Handle for pgsess_notification {
    type Rust = Notification;
}

/// Listen on `channel` (libpq: `LISTEN`), taken literally and quoted as an identifier, so its
/// case and any character are kept (`NOTIFY "Chan"` reaches `"Chan"`, `NOTIFY chan` reaches
/// `"chan"`).
///
/// It runs on the session's *listener*: one connection of the session's configuration, opened on
/// the first `pgsess_listen` (a failure to connect is returned here), kept outside the pool and
/// not counted against `pool_max_size` (so a busy pool never delays notifications; it is one
/// more server connection per listening session). A background thread reads it as soon as
/// anything arrives. When the connection is lost (server restart, `pg_terminate_backend`,
/// failover), the library reconnects with backoff (50 ms doubling to 5 s), listens on every
/// channel again, and then delivers one gap marker per channel: notifications sent while it was
/// down were missed, so resynchronise (re-read the state the channel reports on). A channel
/// given while it is reconnecting is listened on once it is back. This is so for every kind of
/// session; a pinned session's own connection can also LISTEN with `pgsess_query` (see
/// `pgsess_notification_next`). Returns `PGSESS_OK` or the failure's code. Any thread.
///
/// # Safety
/// `session` NULL or a handle from this library (live or ended); `channel` NULL or NUL-terminated;
/// `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_listen(
    session: *mut pgsess_session,
    channel: *const c_char,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        arg(session, "session")?.listen(str_arg(channel, "channel")?)?;
        Ok(Code::PGSESS_OK)
    })
}

/// Stop listening on `channel` (libpq: `UNLISTEN`); not listening on it is no error.
/// Notifications already queued stay. Returns `PGSESS_OK` or the failure's code. Any thread.
///
/// # Safety
/// `session` NULL or a handle from this library (live or ended); `channel` NULL or NUL-terminated;
/// `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_unlisten(
    session: *mut pgsess_session,
    channel: *const c_char,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        arg(session, "session")?.unlisten(str_arg(channel, "channel")?)?;
        Ok(Code::PGSESS_OK)
    })
}

/// The session's next notification, oldest first (libpq: `PQconsumeInput` and `PQnotifies`),
/// waiting up to `timeout_ms` milliseconds for one: 0 does not wait, -1 (any negative value)
/// waits for ever. Returns NULL with `*err` left NULL when none came in time; the caller frees a
/// notification with `pgsess_notification_free`.
///
/// Notifications come from the session's listener (`pgsess_listen`) and, on a pinned or a
/// transaction's session, from its own connection: a plain `LISTEN x` run with `pgsess_query`
/// works as on libpq, whether they arrive during a statement or while it is idle. They are kept
/// in arrival order, at most 65,536 (and 64 MiB) per session: past that the oldest are dropped,
/// with a logged warning and one gap marker per channel that lost some, delivered first. Any
/// thread; several threads may wait at once (each notification goes to one of them).
///
/// # Safety
/// `session` NULL or a handle from this library (live or ended); `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_notification_next(
    session: *mut pgsess_session,
    timeout_ms: i32,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_notification {
    call(err, || {
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let next = arg(session, "session")?.next_notification(timeout)?;
        Ok(next.map_or(null_mut(), |n| give::<pgsess_notification>(Box::new(n))))
    })
}

/// Make every `pgsess_notification_next` waiting on `session` right now return at once, with
/// NULL and `*err` left NULL as on a timeout (a notification already queued is still returned
/// to the next caller). For a binding's cancellation (a Go context, a Ruby interrupt) and for
/// waking waiters before `pgsess_close`, which must not race with them. NULL is ignored. Any
/// thread.
///
/// # Safety
/// `session` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_notification_wake(session: *mut pgsess_session) {
    call(NO_ERR, || {
        if !session.is_null() {
            arg(session, "session")?.wake_notification_waiters();
        }
        Ok(())
    })
}

/// A file descriptor that is readable while a notification is ready for
/// `pgsess_notification_next` (an eventfd the session owns), for epoll, libuv or any event loop:
/// when it polls readable, call `pgsess_notification_next(session, 0, ...)` until it returns
/// NULL. Do not read, write or close it; it is valid until `pgsess_close`. On a pinned session
/// this also starts the thread that reads its connection while idle. -1 for NULL (or if the
/// eventfd could not be made). Any thread.
///
/// # Safety
/// `session` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_notification_fd(session: *mut pgsess_session) -> std::ffi::c_int {
    call_or(|_| -1, NO_ERR, || arg(session, "session")?.notification_fd())
}

/// The channel notified (for a gap marker, the channel that may have missed notifications).
/// Owned by `n`. NULL for NULL.
///
/// # Safety
/// `n` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_notification_channel(n: *const pgsess_notification) -> *const c_char {
    read_arg(n, "notification", |v| v.channel.as_ptr())
}

/// The payload (`""` when none was given, and for a gap marker). Owned by `n`. NULL for NULL.
///
/// # Safety
/// `n` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_notification_payload(n: *const pgsess_notification) -> *const c_char {
    read_arg(n, "notification", |v| v.payload.as_ptr())
}

/// The process id of the notifying server backend (libpq's `be_pid`); 0 for a gap marker and
/// for NULL.
///
/// # Safety
/// `n` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_notification_pid(n: *const pgsess_notification) -> i32 {
    read_arg(n, "notification", |v| v.pid)
}

/// True for a gap marker: delivered after the listener lost its connection and listened again
/// (or after the session's queue overflowed), so notifications on this channel may have been
/// missed just before it: resynchronise. False for NULL.
///
/// # Safety
/// `n` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_notification_is_gap(n: *const pgsess_notification) -> bool {
    read_arg(n, "notification", |v| v.gap)
}

/// Free a notification. NULL is ignored. Any thread.
///
/// # Safety
/// `n` NULL or a handle from this library (live or freed already: a second free does nothing).
#[no_mangle]
pub unsafe extern "C" fn pgsess_notification_free(n: *mut pgsess_notification) {
    call(NO_ERR, || {
        drop(take(n));
        Ok(())
    })
}
