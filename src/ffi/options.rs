//! `pgsess_options`: settings for `pgsess_open`.

use std::ffi::c_char;

use super::{arg_mut, call, give, str_arg, take, Handle, NO_ERR};
use crate::config::{ResetMode, SessionOptions};
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
/// pool_idle_ttl 60 s, checkout_timeout 5000 ms. Never NULL. Free with `pgsess_options_free`.
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

/// Use `url` (a PostgreSQL URI) instead of the `PGSQL_*` environment variable. The string is
/// copied. `PGSESS_INTERFACE_ERROR` for NULL arguments or invalid UTF-8; the URI itself is
/// checked by `pgsess_open`.
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

/// Close connections idle longer than `seconds` (checked every second; default 60). 0 keeps idle
/// connections open for the life of the pool.
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
/// server does not answer within 5 s more (a hung server or network), the statement fails with
/// `PGSESS_OPERATIONAL_ERROR` and its connection is discarded. 0 (the default): no bound. Not
/// part of the pool key: sessions with different timeouts share a pool.
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
