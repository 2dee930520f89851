//! Asynchronous requests for event loops: submit without blocking, get an fd to poll, dispatch
//! callbacks on the loop's thread.

use std::ffi::{c_char, c_int, c_void};
use std::ptr::null_mut;
use std::time::Duration;

use super::error::{into_raw as error_into_raw, pgsess_error};
use super::results::pgsess_results;
use super::session::pgsess_session;
use super::{arg, call, call_or, give, params_arg, str_arg, take, Handle, NO_ERR};
use crate::error::{Code, Error, Result};
use crate::requests::{Completion, Pending};

/// Receives a request's outcome: exactly one of `results` and `error` is non-NULL, and the
/// callback owns it (free it with `pgsess_results_free` or `pgsess_error_free`). Runs on the
/// thread that calls `pgsess_async_dispatch`, `pgsess_request_wait` or `pgsess_close`, exactly
/// once per request. It may submit new requests, but must not close the session.
#[allow(non_camel_case_types)]
pub type pgsess_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, results: *mut pgsess_results, error: *mut pgsess_error)>;

/// A submitted request, for cancelling or waiting on it. Owned by the caller, freed with
/// `pgsess_request_free` at any time (freeing neither cancels the request nor stops its
/// callback). One thread at a time.
#[allow(non_camel_case_types)]
pub struct pgsess_request {
    _opaque: [u8; 0],
}

impl Handle for pgsess_request {
    type Rust = Pending;
}

struct CallbackTarget {
    callback: unsafe extern "C" fn(*mut c_void, *mut pgsess_results, *mut pgsess_error),
    user_data: *mut c_void,
}

// SAFETY: the application hands us the callback and user data to be called on the thread that
// dispatches; we only carry them there.
unsafe impl Send for CallbackTarget {}

impl CallbackTarget {
    fn call(self, results: *mut pgsess_results, error: *mut pgsess_error) {
        // SAFETY: a callback the application registered for this request.
        unsafe { (self.callback)(self.user_data, results, error) }
    }
}

fn completion(target: CallbackTarget) -> Completion {
    Box::new(move |outcome: Result<Box<crate::results::Results>>| {
        let (results, error) = match outcome {
            Ok(r) => (give::<pgsess_results>(r), null_mut()),
            Err(e) => (null_mut(), error_into_raw(e)),
        };
        target.call(results, error);
    })
}

/// `pgsess_query` without blocking: queues the statement and returns at once. It runs on a pooled
/// connection when one is free (at most `pool_max_size` at a time; the rest wait in order, each
/// failing with `PGSESS_POOL_EXHAUSTED` if not started within the checkout timeout), and
/// `callback(user_data, results, error)` runs from `pgsess_async_dispatch` once it is done. The
/// SQL and parameters are copied. Returns a request handle (free it with
/// `pgsess_request_free`), or NULL with `*err` set for misuse (NULL session, SQL or callback,
/// invalid UTF-8), in which case the callback never runs. Any thread.
///
/// # Safety
/// As for `pgsess_query`; `user_data` is passed to the callback untouched.
#[no_mangle]
pub unsafe extern "C" fn pgsess_query_async(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    params: *const *const c_char,
    callback: pgsess_callback,
    user_data: *mut c_void,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_request {
    call(err, || {
        let s = arg(session, "session")?;
        let callback = callback.ok_or_else(|| Error::interface("callback is NULL"))?;
        let sql = str_arg(sql, "sql")?.to_owned();
        let params = params_arg(nparams, params, "params")?.to_owned_vec();
        let pending = s.query_async(sql, params, completion(CallbackTarget { callback, user_data }))?;
        Ok(give::<pgsess_request>(Box::new(pending)))
    })
}

/// `pgsess_callproc` without blocking; otherwise as `pgsess_query_async`.
///
/// # Safety
/// As for `pgsess_callproc`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_callproc_async(
    session: *mut pgsess_session,
    name: *const c_char,
    nargs: usize,
    args: *const *const c_char,
    callback: pgsess_callback,
    user_data: *mut c_void,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_request {
    call(err, || {
        let s = arg(session, "session")?;
        let callback = callback.ok_or_else(|| Error::interface("callback is NULL"))?;
        let name = str_arg(name, "name")?;
        let args = params_arg(nargs, args, "args")?.to_owned_vec();
        let pending = s.callproc_async(name, args, completion(CallbackTarget { callback, user_data }))?;
        Ok(give::<pgsess_request>(Box::new(pending)))
    })
}

/// A file descriptor that becomes readable when completions are ready: add it to the event
/// loop's poller (epoll, libuv, libevent, asio) for reading and call `pgsess_async_dispatch`
/// when it fires. Owned by the session (do not close it); the same for the session's life in one
/// process (a child created by fork() gets a new one: its own engine's). Starts the session's
/// request engine if needed. -1 for NULL or when the engine cannot start.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_async_fd(session: *mut pgsess_session) -> c_int {
    call_or(|_| -1, NO_ERR, || Ok(arg(session, "session")?.requests()?.fd()))
}

/// Run the callbacks of every finished request on the calling thread and clear the fd's
/// readiness. Returns how many callbacks ran (0 for NULL or when nothing was ready). Call it from
/// one thread at a time (the event loop's).
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_async_dispatch(session: *mut pgsess_session) -> usize {
    call(NO_ERR, || Ok(arg(session, "session")?.requests()?.dispatch()))
}

/// Cancel a request: if it is still queued it is dropped and its callback gets
/// `PGSESS_QUERY_CANCELED`; if it is running the server is asked to cancel it (it then fails
/// with `PGSESS_QUERY_CANCELED`, at the latest at the cancel grace, see
/// `pgsess_options_set_cancel_grace_ms`); a finished request is unaffected. The callback still runs
/// exactly once. `PGSESS_INTERFACE_ERROR` for NULL. Any thread. In a child created by fork(), a
/// request its parent submitted is the parent's: cancelling it there does nothing.
///
/// # Safety
/// `request` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_request_cancel(request: *mut pgsess_request) -> Code {
    call(NO_ERR, || {
        arg(request, "request")?.cancel();
        Ok(Code::PGSESS_OK)
    })
}

/// Block until the request has finished, then run its callback on the calling thread (unless a
/// dispatch already ran it). `timeout_ms` 0 waits as long as it takes. True when the callback
/// has run; false on timeout or for NULL. For simple programs and tests. In a child created by
/// fork(), false at once for a request its parent submitted (it completes, if ever, in the
/// parent).
///
/// # Safety
/// `request` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_request_wait(request: *mut pgsess_request, timeout_ms: u32) -> bool {
    call(NO_ERR, || {
        let timeout = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms.into()));
        Ok(arg(request, "request")?.wait(timeout))
    })
}

/// Free a request handle. The request itself goes on and its callback still runs. NULL is
/// ignored.
///
/// # Safety
/// `request` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_request_free(request: *mut pgsess_request) {
    call(NO_ERR, || {
        drop(take(request));
        Ok(())
    })
}
