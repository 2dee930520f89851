//! `pgsess_options`: settings for `pgsess_open`.

use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{arg_mut, call, give, pgsess_error, str_arg, take, Handle, NO_ERR};
use crate::config::{Host, NoticeHook, PasswordHook, ResetMode, SessionOptions};
use crate::error::{Code, Error};

/// Options for `pgsess_open`. Created by `pgsess_options_new`, owned by the caller, freed with
/// `pgsess_options_free`; `pgsess_open` only reads it. Not synchronised: one thread at a time.
#[allow(non_camel_case_types)]
pub struct pgsess_options {
    _opaque: [u8; 0],
}

impl Handle for pgsess_options {
    type Rust = SessionOptions;
}

/// New options with the defaults: no db_url (the environment is read), pool_max_size 25,
/// pool_idle_ttl 60 s, checkout_timeout 5000 ms, pool_max_lifetime 3600 s, pool_min_idle 0,
/// pool_health_check 30000 ms. Never NULL. Free with `pgsess_options_free`.
#[no_mangle]
pub extern "C" fn pgsess_options_new() -> *mut pgsess_options {
    call(NO_ERR, || Ok(give::<pgsess_options>(Box::default())))
}

/// Free options. NULL is ignored.
///
/// # Safety
/// `opts` is NULL or from `pgsess_options_new`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_free(opts: *mut pgsess_options) {
    call(NO_ERR, || {
        drop(take(opts));
        Ok(())
    })
}

/// Change the options behind `opts`.
///
/// # Safety
/// `opts` NULL or from `pgsess_options_new`, used by one thread at a time.
unsafe fn with_opts(opts: *mut pgsess_options, f: impl FnOnce(&mut SessionOptions) -> crate::Result<()>) -> Code {
    call(NO_ERR, || {
        f(arg_mut(opts, "opts")?)?;
        Ok(Code::PGSESS_OK)
    })
}

/// Use `url` (a connection string: a PostgreSQL URI or libpq's `key=value` pairs) instead of
/// the `PGSQL_*` environment variable. The string is copied. `PGSESS_INTERFACE_ERROR` for NULL
/// arguments or invalid UTF-8; the string itself is checked by `pgsess_open`.
///
/// # Safety
/// `opts` as for `pgsess_options_free`; `url` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_db_url(opts: *mut pgsess_options, url: *const c_char) -> Code {
    with_opts(opts, |o| {
        o.db_url = Some(str_arg(url, "url")?.to_owned());
        Ok(())
    })
}

/// The most connections the pool may hold open (1 to 10000; default 25). Sessions whose options
/// differ use different pools. `PGSESS_CONFIG_ERROR` when out of range.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_pool_max_size(opts: *mut pgsess_options, max_size: u32) -> Code {
    with_opts(opts, |o| o.set_pool_max_size(max_size))
}

/// Close connections idle longer than `seconds` (checked four times a second; default 60), but
/// never below `pool_min_idle`. 0 keeps idle connections open for the life of the pool.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_pool_idle_ttl(opts: *mut pgsess_options, seconds: u32) -> Code {
    with_opts(opts, |o| {
        o.set_pool_idle_ttl(seconds);
        Ok(())
    })
}

/// The statement cache: each connection of the pool keeps up to `capacity` parameterised
/// statements prepared under generated names (`pgsess_` and a random part), so a statement run
/// again is sent as Bind/Execute only, without being parsed and planned again. Least recently
/// used statements are closed when the cache is full. 0 (the default) turns it off: use 0 behind
/// PgBouncer in transaction mode unless it tracks prepared statements (`max_prepared_statements`).
/// The cache heals itself across the pool: when a statement's cached plan becomes invalid
/// (`ALTER TABLE`, a type dropped and created again: SQLSTATE 0A000 "cached plan must not change
/// result type", or 26000), every connection of the pool prepares it again before its next use,
/// and outside a transaction block the failed call is retried once, so the caller sees no error.
/// Inside a transaction block the error is returned (its message says why). Part of the pool
/// key. At most 65,536; `PGSESS_CONFIG_ERROR` above.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_statement_cache(opts: *mut pgsess_options, capacity: u32) -> Code {
    with_opts(opts, |o| o.set_statement_cache(capacity))
}

/// Bound every statement of sessions opened with these options: after `ms` the library asks
/// the server to cancel the statement, which then fails with `PGSESS_QUERY_CANCELED`; if the
/// server does not answer within the cancel grace more (`pgsess_options_set_cancel_grace_ms`,
/// default 5 s: a hung server or network), the statement fails with `PGSESS_QUERY_CANCELED`
/// all the same and its connection is discarded. Sending is bounded too: a statement still
/// being sent after `ms` (a server that stopped reading) fails with `PGSESS_QUERY_CANCELED`
/// and its connection is discarded. 0 (the default): no bound. Not part of the pool key:
/// sessions with different timeouts share a pool.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_statement_timeout_ms(opts: *mut pgsess_options, ms: u32) -> Code {
    with_opts(opts, |o| {
        o.set_statement_timeout_ms(ms);
        Ok(())
    })
}

/// Report through the log (level warn) any results handle, stream or transaction that keeps its
/// pooled connection longer than `ms`, naming the statement that produced it and how long it has
/// been held; checked every second, reported once per checkout. 0 (the default) turns it off.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_leak_threshold_ms(opts: *mut pgsess_options, ms: u32) -> Code {
    with_opts(opts, |o| {
        o.set_leak_threshold_ms(ms);
        Ok(())
    })
}

/// How long a statement waits for a pooled connection, including opening a new one (default
/// 5000 ms; at least 1). After it, the call fails with `PGSESS_POOL_EXHAUSTED` when every
/// connection is held, or with the last connection error when the server cannot be reached.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_checkout_timeout_ms(opts: *mut pgsess_options, ms: u32) -> Code {
    with_opts(opts, |o| o.set_checkout_timeout_ms(ms))
}

/// What a pool undoes before a connection goes to its next user (`pgsess_options_set_reset`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pgsess_reset {
    /// The default: one `DISCARD ALL` after a use that may have changed session state (README,
    /// "Sessions, connections and state", says exactly which); other uses cost nothing.
    PGSESS_RESET_DIRTY = 0,
    /// `DISCARD ALL` after every use (PgBouncer's `server_reset_query` in session mode).
    PGSESS_RESET_ALWAYS = 1,
    /// Only an open transaction is rolled back: session state passes from one user to the next.
    PGSESS_RESET_NEVER = 2,
}

/// The C type of a `pgsess_reset` argument, read as an integer so that a value outside the enum
/// is reported instead of being undefined behaviour. Declared as `pgsess_reset` in the header.
#[allow(non_camel_case_types)]
pub type pgsess_reset_arg = u32;

/// How the pool resets a connection between users (default `PGSESS_RESET_DIRTY`). Part of the
/// pool key: sessions with different modes on one URI use different pools.
/// `PGSESS_INTERFACE_ERROR` for NULL `opts` or a value that is not a mode.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_reset(opts: *mut pgsess_options, mode: pgsess_reset_arg) -> Code {
    with_opts(opts, |o| {
        o.pool.reset = match mode {
            0 => ResetMode::Dirty,
            1 => ResetMode::Always,
            2 => ResetMode::Never,
            _ => return Err(Error::interface(format!("{mode} is not a pgsess_reset mode"))),
        };
        Ok(())
    })
}

/// Make `pgsess_open` return a pinned session (as `pgsess_pin` does): one connection held for the
/// session's life, like sprockets.clients.postgresql's `Session` over one connection. Not part
/// of the pool key: pinned and pooled sessions of one URI share a pool.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_pinned(opts: *mut pgsess_options, pinned: bool) -> Code {
    with_opts(opts, |o| {
        o.pinned = pinned;
        Ok(())
    })
}

/// A notice callback: `(notice, user_data)`. `notice` is a view of one notice, valid during the
/// call only: read it with `pgsess_error_field` (and the other `pgsess_error_*` accessors), copy
/// what is needed, never free it. NULL means none.
#[allow(non_camel_case_types)]
pub type pgsess_notice_callback = Option<unsafe extern "C" fn(notice: *const pgsess_error, user_data: *mut c_void)>;

/// Deliver the notices of the statements of sessions opened with these options to `cb`: each
/// NoticeResponse the server sends while a statement runs (NOTICE, WARNING, INFO, DEBUG, LOG,
/// as `client_min_messages` lets through; `RAISE NOTICE` in PL/pgSQL, a `DROP ... IF EXISTS`
/// of nothing, a `ROLLBACK` outside a transaction) is given to `cb(notice, user_data)` once, in
/// arrival order, before the call that ran the statement returns, on the thread that reads the
/// statement's reply: the thread that called `pgsess_query` (or `pgsess_tx_query`, a stream's
/// or copy's call, ...), or the library's worker thread for an asynchronous request. The
/// notices are also kept with the results (`pgsess_results_notice`) as before. Notices of the
/// pool's own `ROLLBACK`/`DISCARD ALL` between users (which raise none in practice) come on the
/// thread that returns the connection; those that arrive while a connection is being opened or
/// sits idle are not delivered.
///
/// `notice` is a `pgsess_error` view valid only during the call, owned by the library (never
/// pass it to `pgsess_error_free`): `pgsess_error_field` gives each of the notice's fields as
/// libpq's `PQresultErrorField` does for a notice result (`'S'` `"NOTICE"` or `"WARNING"`...,
/// `'C'` `"00000"`/`"01000"`..., `'M'`, `'D'`, `'H'`, `'W'`, ...); `pgsess_error_message`
/// gives the message and `pgsess_error_sqlstate` the SQLSTATE. Its `pgsess_error_code` is that
/// of the SQLSTATE's class, as for an error (`PGSESS_DATABASE_ERROR` for 00000 and 01000): it
/// does not mean the statement failed.
///
/// Inside `cb`, call only the `pgsess_error_*` accessors on `notice` and functions that run no
/// statement (`pgsess_code_name`, ...): the statement that delivers the notice holds its
/// connection, so a call on the same session (or its transaction, stream or copy) waits for
/// itself forever, and one on another session of the same pool may wait for a connection until
/// the checkout timeout. `cb` must return (no `longjmp` out of it).
///
/// A NULL `cb` turns delivery off (the default). The callback and `user_data` are part of the
/// pool key: sessions with different callbacks, or the same callback with different
/// `user_data`, use different pools; with the same pair they share one. `user_data` is passed
/// as it is and must stay valid as long as such sessions run statements; `cb` may be called
/// from several threads at once when several threads use such sessions.
/// `PGSESS_INTERFACE_ERROR` for a NULL `opts`.
///
/// # Safety
/// `opts` as for `pgsess_options_free`; `cb` NULL or a function that may be called with
/// `user_data` as described.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_notice_callback(
    opts: *mut pgsess_options,
    cb: pgsess_notice_callback,
    user_data: *mut c_void,
) -> Code {
    with_opts(opts, |o| {
        o.set_notice_hook(cb.map(|cb| notice_hook(cb, user_data)));
        Ok(())
    })
}

/// The hook that calls `cb` with a `pgsess_error` view of each notice, identified by the
/// callback's and the user data's addresses.
fn notice_hook(cb: unsafe extern "C" fn(*const pgsess_error, *mut c_void), user_data: *mut c_void) -> NoticeHook {
    let data = user_data as usize;
    NoticeHook::new((cb as usize, data), move |notice| {
        // Making the view could only fail by panicking: that notice is then not delivered.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            super::error::with_notice_view(notice, |view| {
                // SAFETY: the application registered `cb` to be called with `user_data` so
                // (`pgsess_options_set_notice_callback`); `view` lives until the call returns.
                unsafe { cb(view, data as *mut c_void) }
            })
        }));
    })
}

/// The most bytes a password callback may write, its terminating NUL included: room for
/// cloud IAM tokens, which run to a few kilobytes.
const PASSWORD_BUFFER: usize = 16 * 1024;

/// A password callback: `(host, port, user, password, password_size, user_data)`, called for
/// each new connection. `host` is the host name (or IP address, or Unix socket directory) the
/// connection goes to, `user` the user name, both valid during the call only. The callback
/// writes the password, NUL-terminated, into `password` (`password_size` bytes, 16384) and
/// returns its length; or returns -1 to use the password configured otherwise (the connection
/// string, `PGPASSWORD`, the password file). Any other negative value, or a length of
/// `password_size` or more, fails the connection attempt (`PGSESS_OPERATIONAL_ERROR`).
/// NULL means none.
#[allow(non_camel_case_types)]
pub type pgsess_password_callback = Option<
    unsafe extern "C" fn(
        host: *const c_char,
        port: u16,
        user: *const c_char,
        password: *mut c_char,
        password_size: usize,
        user_data: *mut c_void,
    ) -> i32,
>;

/// Ask `cb` for the password of each new connection the pool of sessions opened with these
/// options opens (pgx's `BeforeConnect`, psycopg's callable conninfo, HikariCP's credentials
/// provider): so a rotated password or a short-lived token (cloud IAM authentication) is used
/// by the connections opened after the change, without reopening anything. It is called once
/// per connection attempt (each host tried is an attempt), before the startup message is sent,
/// on the thread that opens the connection: the one calling `pgsess_open` (which opens the
/// pool's first connection) or running a statement that needs a new connection, the library's
/// worker thread for an asynchronous request, or a pool's background thread. Several threads
/// may call it at once; it must be thread-safe and must not use pgsess sessions (the pool it
/// serves may be waiting for it). It must return (no `longjmp` out of it). What it writes is
/// never logged or shown in any message.
///
/// A NULL `cb` turns it off (the default). The callback and `user_data` are part of the pool
/// key, not what it returns: sessions with the same pair share one pool. `user_data` is passed
/// as it is and must stay valid as long as such sessions may open connections.
/// `PGSESS_INTERFACE_ERROR` for a NULL `opts`. One thread at a time per `opts`.
///
/// # Safety
/// `opts` as for `pgsess_options_free`; `cb` NULL or a function that may be called with
/// `user_data` as described.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_password_callback(
    opts: *mut pgsess_options,
    cb: pgsess_password_callback,
    user_data: *mut c_void,
) -> Code {
    with_opts(opts, |o| {
        o.set_password_hook(cb.map(|cb| password_hook(cb, user_data)));
        Ok(())
    })
}

/// The hook that calls `cb` with C strings and a buffer, identified by the callback's and the
/// user data's addresses.
fn password_hook(
    cb: unsafe extern "C" fn(*const c_char, u16, *const c_char, *mut c_char, usize, *mut c_void) -> i32,
    user_data: *mut c_void,
) -> PasswordHook {
    let data = user_data as usize;
    PasswordHook::new((cb as usize, data), move |host, user| {
        let name = match &host.host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(dir) => dir.display().to_string(),
        };
        let failed = |why: &str| Error::operational("08001", format!("the password callback for {host}: {why}"));
        let name = CString::new(name).map_err(|_| failed("the host name holds a NUL byte"))?;
        let user = CString::new(user).map_err(|_| failed("the user name holds a NUL byte"))?;
        let mut buf = vec![0u8; PASSWORD_BUFFER];
        // SAFETY: the application registered `cb` to be called so
        // (`pgsess_options_set_password_callback`); the strings and the buffer outlive the call.
        let n = unsafe {
            cb(name.as_ptr(), host.port, user.as_ptr(), buf.as_mut_ptr().cast(), buf.len(), data as *mut c_void)
        };
        let n = match usize::try_from(n) {
            Ok(n) if n < buf.len() => n,
            Ok(_) => return Err(failed("it returned a length that does not fit its buffer")),
            Err(_) if n == -1 => return Ok(None),
            Err(_) => return Err(failed(&format!("it returned {n}"))),
        };
        buf.truncate(n);
        let password = String::from_utf8(buf).map_err(|_| failed("the password is not UTF-8"))?;
        Ok(Some(password))
    })
}

/// How long a cancelled statement of sessions opened with these options may wait for the
/// server's answer (default 5000 ms). A statement is cancelled by its statement timeout
/// (`pgsess_options_set_statement_timeout_ms`), by `pgsess_cancel`, or by
/// `pgsess_request_cancel`; a server that answers the cancel within the grace fails it with
/// `PGSESS_QUERY_CANCELED` and the connection stays usable. One that does not (a hung server
/// or network, a server ignoring cancel requests) gets no longer: the statement fails with
/// `PGSESS_QUERY_CANCELED` and its connection is closed. So `pgsess_cancel` bounds a statement
/// even on a session without a statement timeout. `pgsess_close` waits as long for the
/// session's asynchronous requests still running. 0: no wait at all (the cancel request is
/// still sent, and the connection closed at once). Not part of the pool key.
/// `PGSESS_INTERFACE_ERROR` for a NULL `opts`. One thread at a time per `opts`.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_cancel_grace_ms(opts: *mut pgsess_options, ms: u32) -> Code {
    with_opts(opts, |o| {
        o.set_cancel_grace_ms(ms);
        Ok(())
    })
}

/// Whether a signal that interrupts a statement's wait for its answer (poll(2) failing with
/// EINTR on the thread running it) cancels the statement: the server is sent a cancel request,
/// and the call fails with `PGSESS_QUERY_CANCELED` (SQLSTATE 57014) as soon as the server has
/// cancelled it (within the cancel grace), on a connection that stays usable. For runtimes that
/// interrupt a blocked thread with a signal, as Ruby's Timeout, Thread#raise and Thread#kill do
/// (the Ruby binding turns it on), and for C programs that bound a call with alarm() and a
/// signal handler (installed without SA_RESTART or with it: poll(2) is never restarted). Only
/// the wait for an answer is cut short: sending a statement, waiting for a pooled connection
/// and connecting are not. Default off: a signal is retried over, as libpq does. Not part of
/// the pool key. `PGSESS_INTERFACE_ERROR` for a NULL `opts`. One thread at a time per `opts`.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_cancel_on_signal(opts: *mut pgsess_options, on: bool) -> Code {
    with_opts(opts, |o| {
        o.set_cancel_on_signal(on);
        Ok(())
    })
}

/// Bound each statement's result to `bytes` of row data: the DataRow messages of one result, or
/// of one chunk of a stream (COPY TO's data is bounded per message). 0 is no limit; the default
/// is 1 GiB (1073741824). A statement whose result grows past it fails with
/// `PGSESS_OPERATIONAL_ERROR`, SQLSTATE 54000, and an error that names the setting; the server
/// is asked to cancel the statement and the connection is discarded (the next statement gets
/// another). The bound is there so that no server, broken or hostile, can make the process
/// allocate without end; a declared message length is never allocated before its bytes arrive.
/// It also bounds what is kept of the server's output while a statement (or COPY data) is still
/// being sent and the server is not reading it: `bytes` plus 8 MiB, past which the statement fails
/// with SQLSTATE 54000 too and the connection is closed (with 0, no bound).
/// Part of the pool key: sessions with different bounds use different pools.
/// `PGSESS_INTERFACE_ERROR` for a NULL `opts`. One thread at a time per `opts`.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_max_result_bytes(opts: *mut pgsess_options, bytes: u64) -> Code {
    with_opts(opts, |o| {
        o.set_max_result_bytes(bytes);
        Ok(())
    })
}

/// Close a connection once it has been open `seconds` (default 3600; 0: no limit). Each
/// connection's limit is chosen within +-10% of it, so that connections opened together do not
/// all close together; a connection is closed when it is next idle (returned, or found by the
/// background reaper), never under a statement, and the pool opens another as it needs one.
/// Part of the pool key: sessions with different lifetimes use different pools.
/// `PGSESS_INTERFACE_ERROR` for a NULL `opts`. One thread at a time per `opts`.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_pool_max_lifetime(opts: *mut pgsess_options, seconds: u32) -> Code {
    with_opts(opts, |o| {
        o.set_pool_max_lifetime(seconds);
        Ok(())
    })
}

/// Keep at least `n` idle connections open (default 0; a value above `pool_max_size` keeps
/// `pool_max_size`): the `pgsess_open` that creates the pool opens them (within the checkout
/// timeout; the first must succeed, the others are retried in the background), and the pool
/// re-opens them in the background when they close (idle TTL, lifetime, server restarts,
/// `pg_terminate_backend`). The idle TTL never closes these. Part of the pool key.
/// `PGSESS_CONFIG_ERROR` above 10000; `PGSESS_INTERFACE_ERROR` for a NULL `opts`. One thread at
/// a time per `opts`.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_pool_min_idle(opts: *mut pgsess_options, n: u32) -> Code {
    with_opts(opts, |o| o.set_pool_min_idle(n))
}

/// Check a connection that has been idle for `ms` or longer (default 30000; 0: never) with a
/// round trip (an empty query) before it is handed out: a network that drops packets silently
/// is not visible to the socket check every checkout makes. A connection that does not answer
/// within a second is closed and another one used; the checkout still ends within its timeout.
/// Part of the pool key. `PGSESS_INTERFACE_ERROR` for a NULL `opts`. One thread at a time per
/// `opts`.
///
/// # Safety
/// `opts` as for `pgsess_options_free`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_options_set_pool_health_check_ms(opts: *mut pgsess_options, ms: u32) -> Code {
    with_opts(opts, |o| {
        o.set_pool_health_check_ms(ms);
        Ok(())
    })
}
