//! `pgsess_pending`: a statement sent and not yet read, for a caller that waits for the socket
//! itself (Go's netpoller, an event loop) rather than inside the library.

use std::ffi::c_char;

use super::boundary::take_checked;
use super::results::pgsess_results;
use super::session::pgsess_session;
use super::stream::pgsess_stream;
use super::{
    arg, arg_mut, call, call_or, give, params_arg, pgsess_error, str_arg, str_len_arg, take, typed_params_arg, Handle,
    NO_ERR,
};
use crate::error::Error;
use crate::session::PendingStatement;

/// A statement sent with `pgsess_send_query_params` (or `pgsess_send_query_stream`), or staged
/// to be sent with `pgsess_stage_query_params` (`pgsess_stage_query_stream`), whose answer has
/// not been read. Owned by
/// the caller and ended by exactly one of `pgsess_pending_finish` (which gives its results) or
/// `pgsess_pending_free` (which abandons it). It holds its pooled connection (as results do)
/// until then; on a pinned session (or a transaction's) any other statement meanwhile fails
/// with `PGSESS_INTERFACE_ERROR`, as libpq refuses a query while another is in progress. One
/// thread at a time; any thread.
///
/// The usual loop, as with libpq's `PQsendQueryParams`/`PQconsumeInput`/`PQisBusy`: wait until
/// `pgsess_pending_fd` is readable (poll(2), epoll, a runtime's poller), then call
/// `pgsess_pending_poll`; when it says the answer is in, `pgsess_pending_finish` returns without
/// waiting for the server. Bound the wait with `pgsess_pending_wait_ms`: when it passes, call
/// `pgsess_pending_finish`, which then enforces the statement timeout (cancel, cancel grace)
/// itself. `pgsess_cancel` on the session cancels a pending statement as any other.
#[allow(non_camel_case_types)]
pub struct pgsess_pending {
    _opaque: [u8; 0],
}

impl Handle for pgsess_pending {
    type Rust = PendingStatement;
}

/// Send one statement, as `pgsess_query_params` (`result_format` 0) or `pgsess_query_binary`
/// (`result_format` 1) would, and return without waiting for its answer. The connection is
/// checked out first (waiting up to the checkout timeout when the pool has none free, as every
/// statement does). Arguments as for `pgsess_query_params`; the library keeps what it needs of
/// them, so they may be freed once this returns. Returns NULL with `*err` set when the statement
/// could not be sent (its error is the one `pgsess_query_params` would have returned).
///
/// # Safety
/// As for `pgsess_query_params`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn pgsess_send_query_params(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    param_types: *const u32,
    param_values: *const *const c_char,
    param_lengths: *const i32,
    param_formats: *const i32,
    result_format: i32,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_pending {
    call(err, || {
        let s = arg(session, "session")?;
        let sql = str_arg(sql, "sql")?;
        let binary = binary_results_arg(result_format)?;
        let (types, params) = typed_params_arg(nparams, param_types, param_values, param_lengths, param_formats)?;
        Ok(give::<pgsess_pending>(Box::new(s.send_statement(sql, &types, &params, binary, false)?)))
    })
}

/// A result format argument: 0 text, 1 binary (true).
fn binary_results_arg(result_format: i32) -> crate::error::Result<bool> {
    match result_format {
        0 => Ok(false),
        1 => Ok(true),
        f => Err(Error::interface(format!("result_format {f}: 0 (text) or 1 (binary)"))),
    }
}

/// Send a stream's statement, as `pgsess_query_stream` (`typed` false) or
/// `pgsess_query_stream_typed` (`typed` true) would, and return without waiting for its first
/// chunk. Wait as for `pgsess_send_query_params` (`pgsess_pending_poll` says the first chunk
/// is in once `chunk_rows` rows, or the end of the result, have arrived), then
/// `pgsess_pending_finish_stream` gives the stream. Arguments, ownership and errors as for
/// `pgsess_query_stream`.
///
/// # Safety
/// As for `pgsess_query_stream`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_send_query_stream(
    session: *mut pgsess_session,
    sql: *const c_char,
    nparams: usize,
    params: *const *const c_char,
    chunk_rows: u32,
    typed: bool,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_pending {
    call(err, || {
        let s = arg(session, "session")?;
        let sql = str_arg(sql, "sql")?;
        let params = params_arg(nparams, params, "params")?;
        Ok(give::<pgsess_pending>(Box::new(s.send_stream(sql, &params, chunk_rows, typed, false)?)))
    })
}

/// Where to wait for a staged statement's answer, and how long (`pgsess_stage_query_params`):
/// what `pgsess_pending_fd` and `pgsess_pending_wait_ms` give, filled in by the call that
/// stages it.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct pgsess_pending_socket {
    /// The connection's socket, with the rules of `pgsess_pending_fd`.
    pub fd: i32,
    /// The connection's serial number, unique in the process and never reused.
    pub serial: u64,
    /// The session's whole statement timeout in milliseconds (it counts from the send); -1:
    /// none.
    pub wait_ms: i64,
}

/// `pgsess_send_query_params` without the write: the connection is checked out and checked,
/// the statement built and the statement cache consulted, but nothing is sent until
/// `pgsess_pending_send` (or the first `pgsess_pending_poll`, or `pgsess_pending_finish`).
/// The SQL is `sql_len` bytes at `sql`, not NUL-terminated (a binding passes its string as it
/// is; from C, pass `strlen(sql)`); a zero byte in it is refused.
///
/// For a caller whose poller must be armed before the answer can arrive: an edge-triggered one
/// that forgets what arrived before it was armed (Go's netpoller does), or a caller that wants
/// to skip the first non-blocking read. Stage, arm the wait on `socket->fd`, send, wait: no
/// answer can arrive before the send, so there is nothing to read before the first wait.
/// `*socket` (when not NULL) receives the socket, the connection's serial and the wait bound,
/// which saves the calls of `pgsess_pending_fd` and `pgsess_pending_wait_ms`. Arguments, errors
/// and ownership as for `pgsess_send_query_params`; freed before it is sent, the pending
/// statement closes its connection as an abandoned one does.
///
/// # Safety
/// As for `pgsess_query_params`; `socket` NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn pgsess_stage_query_params(
    session: *mut pgsess_session,
    sql: *const c_char,
    sql_len: usize,
    nparams: usize,
    param_types: *const u32,
    param_values: *const *const c_char,
    param_lengths: *const i32,
    param_formats: *const i32,
    result_format: i32,
    socket: *mut pgsess_pending_socket,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_pending {
    call(err, || {
        let s = arg(session, "session")?;
        let sql = str_len_arg(sql, sql_len, "sql")?;
        let binary = binary_results_arg(result_format)?;
        let (types, params) = typed_params_arg(nparams, param_types, param_values, param_lengths, param_formats)?;
        let pending = s.send_statement(sql, &types, &params, binary, true)?;
        staged_out(pending, socket)
    })
}

/// `pgsess_send_query_stream` without the write, as `pgsess_stage_query_params` is
/// `pgsess_send_query_params` without it (the SQL given by its length too); finish it with
/// `pgsess_pending_finish_stream`.
///
/// # Safety
/// As for `pgsess_query_stream`; `socket` NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn pgsess_stage_query_stream(
    session: *mut pgsess_session,
    sql: *const c_char,
    sql_len: usize,
    nparams: usize,
    params: *const *const c_char,
    chunk_rows: u32,
    typed: bool,
    socket: *mut pgsess_pending_socket,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_pending {
    call(err, || {
        let s = arg(session, "session")?;
        let sql = str_len_arg(sql, sql_len, "sql")?;
        let params = params_arg(nparams, params, "params")?;
        let pending = s.send_stream(sql, &params, chunk_rows, typed, true)?;
        staged_out(pending, socket)
    })
}

/// A staged statement's handle, its socket into `*socket` unless that is NULL.
///
/// # Safety
/// `socket` NULL or writable.
unsafe fn staged_out(
    pending: PendingStatement,
    socket: *mut pgsess_pending_socket,
) -> crate::error::Result<*mut pgsess_pending> {
    if let Some(out) = socket.as_mut() {
        let (fd, serial) = pending.socket()?;
        *out = pgsess_pending_socket { fd, serial, wait_ms: wait_ms(pending.wait_limit()) };
    }
    Ok(give::<pgsess_pending>(Box::new(pending)))
}

/// Send a staged statement (`pgsess_stage_query_params`). Returns 0 when it is sent (or was
/// already): wait for the socket, then `pgsess_pending_poll`; 1 when `pgsess_pending_finish`
/// will not wait for the server: the write failed (finish returns the error), or the answer is
/// in already; -1 when `pending` is NULL or not a live handle. The statement timeout counts from
/// the send. Whether it reads after the write depends on what the connection has seen: where
/// the server shares the CPU it usually answers during the write, and then the send reads until
/// the socket is empty, as `pgsess_pending_poll` does; elsewhere it reads only once in 16 sends
/// (to notice a change), so the first wait comes with no read that finds nothing.
///
/// # Safety
/// `pending` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pending_send(pending: *mut pgsess_pending) -> i32 {
    call_or(|_| -1, NO_ERR, || Ok(i32::from(arg_mut(pending, "pending")?.send())))
}

/// The socket the answer arrives on, to wait on for readability; -1 when `pending` is NULL or
/// not a live handle. The descriptor stays the library's: do not close it, read from it or change
/// its flags, except that a `dup(2)` of it may be set `O_NONBLOCK` and registered with a poller
/// (every read and write of the library tolerates that). A duplicate keeps the socket's file
/// description alive, not the connection: when the library closes the connection it shuts the
/// socket down first, so a duplicate then reads end-of-file. `*serial` (when not NULL) receives
/// the connection's serial number, unique in the process and never reused, so a caller may
/// keep one duplicate per serial instead of one per statement.
///
/// # Safety
/// `pending` NULL or a live handle; `serial` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pending_fd(pending: *const pgsess_pending, serial: *mut u64) -> i32 {
    call_or(|_| -1, NO_ERR, || socket_out(arg(pending, "pending")?.socket()?, serial))
}

/// A connection's socket as `pgsess_pending_fd` and `pgsess_stream_fd` give it: the descriptor,
/// and its serial number into `*serial` unless that is NULL.
///
/// # Safety
/// `serial` NULL or writable.
pub(super) unsafe fn socket_out((fd, number): (i32, u64), serial: *mut u64) -> crate::error::Result<i32> {
    if let Some(out) = serial.as_mut() {
        *out = number;
    }
    Ok(fd)
}

/// A wait bound in milliseconds as `pgsess_pending_wait_ms` and `pgsess_stream_wait_ms` give it
/// (-1: none).
pub(super) fn wait_ms(limit: Option<std::time::Duration>) -> i64 {
    limit.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Read what the server has sent so far without blocking (a staged statement is sent first, as
/// `pgsess_pending_send` sends it). Returns 1 when the answer is in (or the connection failed): `pgsess_pending_finish` will not wait for the server; 0 when more is
/// to come (wait for the socket again: everything that had arrived has been read, so an
/// edge-triggered poller wakes for what comes next); -1 when `pending` is NULL or not a live
/// handle.
///
/// # Safety
/// `pending` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pending_poll(pending: *mut pgsess_pending) -> i32 {
    call_or(|_| -1, NO_ERR, || Ok(i32::from(arg_mut(pending, "pending")?.poll())))
}

/// How many milliseconds the caller may wait for the socket before it should call
/// `pgsess_pending_finish` anyway (the statement timeout passes then; finish asks the server to
/// cancel and waits at most the cancel grace); -1 when the session has no statement timeout (or
/// `pending` is not a live handle), 0 when it has passed.
///
/// # Safety
/// `pending` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pending_wait_ms(pending: *const pgsess_pending) -> i64 {
    call_or(|_| -1, NO_ERR, || Ok(wait_ms(arg(pending, "pending")?.wait_limit())))
}

/// End a pending statement and give its results, as `pgsess_query_params` would have (free them
/// with `pgsess_results_free`), or NULL with `*err` set to its error. Reads whatever of the
/// answer has not arrived, waiting for the server as a blocking statement does. `pending` is
/// consumed either way (even when NULL is returned); NULL or a handle already ended is
/// `PGSESS_INTERFACE_ERROR`.
///
/// # Safety
/// `pending` NULL or a handle from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pending_finish(
    pending: *mut pgsess_pending,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    call(err, || {
        let p = take_checked(pending, "pending")?;
        Ok(give::<pgsess_results>(p.finish()?))
    })
}

/// `pgsess_pending_finish` for a statement sent with `pgsess_send_query_stream`: reads its first
/// chunk (waiting for what has not arrived) and gives the stream, as `pgsess_query_stream`
/// returns it (free it with `pgsess_stream_free`), or NULL with `*err` set. `pending` is
/// consumed either way; finishing a stream's statement with `pgsess_pending_finish`, or another
/// with this, is `PGSESS_INTERFACE_ERROR` (and consumes it too).
///
/// # Safety
/// `pending` NULL or a handle from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pending_finish_stream(
    pending: *mut pgsess_pending,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_stream {
    call(err, || {
        let p = take_checked(pending, "pending")?;
        Ok(give::<pgsess_stream>(Box::new(p.finish_stream()?)))
    })
}

/// Abandon a pending statement without reading its answer: its connection is closed (the
/// server ends the statement when it sees that) instead of going back to the pool, and on a
/// pinned session the next statement runs on a new connection. NULL is ignored.
///
/// # Safety
/// `pending` NULL or a handle from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pending_free(pending: *mut pgsess_pending) {
    call(NO_ERR, || {
        drop(take(pending));
        Ok(())
    })
}
