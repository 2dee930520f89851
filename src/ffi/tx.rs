//! `pgsess_tx`: a transaction pinned to one pooled connection.

use std::ffi::c_char;
use std::ptr::null_mut;

use super::results::pgsess_results;
use super::session::{self, pgsess_session};
use super::{arg, call, lend, pgsess_error, take, Handle, NO_ERR};
use crate::error::{Code, Error};
use crate::session::Transaction;

/// A transaction, from `pgsess_begin`. Owned by the caller and ended (and freed) by exactly one
/// call to `pgsess_commit` or `pgsess_rollback`. One thread at a time. Results from
/// `pgsess_tx_query` share the transaction's connection: it returns to the pool once the
/// transaction has ended and all of them are freed.
#[allow(non_camel_case_types)]
pub struct pgsess_tx {
    _opaque: [u8; 0],
}

impl Handle for pgsess_tx {
    type Rust = Transaction;
}

/// The transaction's session, for the calls that run a session call inside it; `None`, with
/// `*err` set, for a NULL `tx`.
///
/// # Safety
/// `tx` NULL or live; `err` NULL or writable.
unsafe fn session_of(tx: *mut pgsess_tx, err: *mut *mut pgsess_error) -> Option<*mut pgsess_session> {
    let s = call(err, || Ok(lend::<pgsess_session>(arg(tx, "tx")?.session()).cast_mut()));
    (!s.is_null()).then_some(s)
}

/// A session bound to the transaction: every session call on it (`pgsess_query`,
/// `pgsess_query_params`, `pgsess_callproc`, `pgsess_query_stream`, `pgsess_batch_run`, the
/// asynchronous calls, ...) runs inside the transaction, on its connection, and is committed or
/// rolled back with it. Borrowed from `tx`: it lives until `pgsess_commit` or `pgsess_rollback`
/// (which first cancel its outstanding asynchronous requests and run their callbacks), and
/// `pgsess_close` on it does nothing. Repeated calls return the same session. `pgsess_begin`
/// on it fails (use `SAVEPOINT`). NULL for NULL. One thread at a time, as `tx`.
///
/// # Safety
/// `tx` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_tx_session(tx: *mut pgsess_tx) -> *mut pgsess_session {
    call(NO_ERR, || Ok(lend::<pgsess_session>(arg(tx, "tx")?.session()).cast_mut()))
}

/// Run a statement inside the transaction; arguments and results as for `pgsess_query`. After a
/// failed statement the server refuses further statements (SQLSTATE 25P02) until rollback.
///
/// # Safety
/// `tx` NULL or live; other arguments as for `pgsess_query`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_tx_query(
    tx: *mut pgsess_tx,
    sql: *const c_char,
    nparams: usize,
    params: *const *const c_char,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    match session_of(tx, err) {
        Some(s) => session::pgsess_query(s, sql, nparams, params, err),
        None => null_mut(),
    }
}

/// `pgsess_query_params` inside the transaction.
///
/// # Safety
/// `tx` NULL or live; other arguments as for `pgsess_query_params`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_tx_query_params(
    tx: *mut pgsess_tx,
    sql: *const c_char,
    nparams: usize,
    param_types: *const u32,
    param_values: *const *const c_char,
    param_lengths: *const i32,
    param_formats: *const i32,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    match session_of(tx, err) {
        Some(s) => {
            session::pgsess_query_params(s, sql, nparams, param_types, param_values, param_lengths, param_formats, err)
        }
        None => null_mut(),
    }
}

/// `pgsess_callproc` inside the transaction.
///
/// # Safety
/// `tx` NULL or live; other arguments as for `pgsess_callproc`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_tx_callproc(
    tx: *mut pgsess_tx,
    name: *const c_char,
    nargs: usize,
    args: *const *const c_char,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    match session_of(tx, err) {
        Some(s) => session::pgsess_callproc(s, name, nargs, args, err),
        None => null_mut(),
    }
}

/// `pgsess_callproc_params` inside the transaction.
///
/// # Safety
/// `tx` NULL or live; other arguments as for `pgsess_callproc_params`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_tx_callproc_params(
    tx: *mut pgsess_tx,
    name: *const c_char,
    nargs: usize,
    param_types: *const u32,
    param_values: *const *const c_char,
    param_lengths: *const i32,
    param_formats: *const i32,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    match session_of(tx, err) {
        Some(s) => session::pgsess_callproc_params(
            s,
            name,
            nargs,
            param_types,
            param_values,
            param_lengths,
            param_formats,
            err,
        ),
        None => null_mut(),
    }
}

/// Commit and free the transaction handle (in every case: do not use `tx` afterwards). If a
/// statement in the transaction failed, the server rolls back instead and this returns
/// `PGSESS_TRANSACTION_ROLLBACK`. `PGSESS_INTERFACE_ERROR` for NULL.
///
/// # Safety
/// `tx` NULL or live; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_commit(tx: *mut pgsess_tx, err: *mut *mut pgsess_error) -> Code {
    call(err, || {
        take(tx).ok_or_else(|| Error::interface("tx is NULL"))?.commit()?;
        Ok(Code::PGSESS_OK)
    })
}

/// Roll back and free the transaction handle. NULL is ignored.
///
/// # Safety
/// `tx` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_rollback(tx: *mut pgsess_tx) {
    call(NO_ERR, || {
        if let Some(tx) = take(tx) {
            tx.rollback();
        }
        Ok(())
    })
}
