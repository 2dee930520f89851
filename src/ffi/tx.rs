//! `pgsess_tx`: a transaction pinned to one pooled connection; its options, savepoints, and the
//! retry runner `pgsess_run_in_tx`.

use std::ffi::{c_char, c_void};
use std::ptr::null_mut;

use super::boundary::{lend_child, lend_scoped, take_checked};
use super::results::pgsess_results;
use super::session::{self, pgsess_session};
use super::{arg, call, give, lend, pgsess_code_arg, pgsess_error, read_arg, str_arg, take, Handle, NO_ERR};
use crate::error::{Code, Error, Result};
use crate::session::{Isolation, Transaction, TxOptions};

/// A transaction, from `pgsess_begin` or `pgsess_begin_with`. Owned by the caller and ended (and
/// freed) by exactly one call to `pgsess_commit` or `pgsess_rollback`; one given to a
/// `pgsess_run_in_tx` function is the runner's, which ends it. One thread at a time. Results
/// from `pgsess_tx_query` share the transaction's connection: it returns to the pool once the
/// transaction has ended and all of them are freed.
///
/// Checked: once it has ended (`pgsess_commit`, `pgsess_rollback`, or the end of the
/// `pgsess_run_in_tx` function it was given to), any call with it, and with its session
/// (`pgsess_tx_session`), fails with `PGSESS_INTERFACE_ERROR` (or returns NULL, 0 or false where
/// a call has no error), and a second commit or rollback is refused or ignored: no undefined
/// behaviour.
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
/// `tx` NULL or a handle from this library (live or ended); `err` NULL or writable.
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
/// on it fails (use `SAVEPOINT`). After the transaction has ended, every call with this session
/// fails with `PGSESS_INTERFACE_ERROR`. NULL for NULL and for an ended `tx`. One thread at a
/// time, as `tx`.
///
/// # Safety
/// `tx` NULL or a handle from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_tx_session(tx: *mut pgsess_tx) -> *mut pgsess_session {
    call(NO_ERR, || Ok(lend_child::<pgsess_session, pgsess_tx>(tx, arg(tx, "tx")?.session())))
}

/// Run a statement inside the transaction; arguments and results as for `pgsess_query`. After a
/// failed statement the server refuses further statements (SQLSTATE 25P02) until rollback.
///
/// # Safety
/// `tx` NULL or a handle from this library (live or ended); other arguments as for `pgsess_query`.
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
/// `tx` NULL or a handle from this library (live or ended); other arguments as for `pgsess_query_params`.
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
/// `tx` NULL or a handle from this library (live or ended); other arguments as for `pgsess_callproc`.
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
/// `tx` NULL or a handle from this library (live or ended); other arguments as for `pgsess_callproc_params`.
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
/// statement in the transaction failed (and no `pgsess_rollback_to` undid it), the server rolls
/// back instead and this returns `PGSESS_TRANSACTION_ROLLBACK`, with SQLSTATE 40001 or 40P01 when
/// the statement that failed the transaction was a serialization failure or a deadlock (the
/// error is then retryable, `pgsess_error_is_retryable`), else 40000. A serialization failure
/// found by the COMMIT itself (SERIALIZABLE) is the server's 40001 error.
/// `PGSESS_INTERFACE_ERROR` for NULL, for a transaction that has ended already (a second
/// commit, a commit after a rollback), and for the transaction of a `pgsess_run_in_tx`
/// function, which is left as it is (its function commits by returning `PGSESS_OK`).
///
/// # Safety
/// `tx` NULL or a handle from this library (live or ended); `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_commit(tx: *mut pgsess_tx, err: *mut *mut pgsess_error) -> Code {
    call(err, || {
        if !tx.is_null() && arg(tx, "tx")?.is_run_by_runner() {
            return Err(Error::interface(
                "this transaction belongs to pgsess_run_in_tx, which commits it when its function returns PGSESS_OK",
            ));
        }
        take_checked(tx, "tx")?.commit()?;
        Ok(Code::PGSESS_OK)
    })
}

/// Roll back and free the transaction handle. NULL is ignored, and so are a transaction that
/// has ended already and the transaction of a `pgsess_run_in_tx` function (its function rolls
/// back by returning another code than `PGSESS_OK`).
///
/// # Safety
/// `tx` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_rollback(tx: *mut pgsess_tx) {
    call(NO_ERR, || {
        if !tx.is_null() && arg(tx, "tx")?.is_run_by_runner() {
            return Ok(());
        }
        if let Some(tx) = take(tx) {
            tx.rollback();
        }
        Ok(())
    })
}

/// A transaction's isolation level, for `pgsess_begin_with` and `pgsess_run_in_tx`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pgsess_isolation {
    /// Say nothing: the server's `default_transaction_isolation` applies (READ COMMITTED unless
    /// configured otherwise).
    PGSESS_ISOLATION_DEFAULT = 0,
    /// `ISOLATION LEVEL READ COMMITTED`.
    PGSESS_READ_COMMITTED = 1,
    /// `ISOLATION LEVEL REPEATABLE READ`.
    PGSESS_REPEATABLE_READ = 2,
    /// `ISOLATION LEVEL SERIALIZABLE`.
    PGSESS_SERIALIZABLE = 3,
}

/// The C type of a `pgsess_isolation` argument, read as an integer so that a value outside the
/// enum is reported instead of being undefined behaviour. Declared as `pgsess_isolation` in the
/// header.
#[allow(non_camel_case_types)]
pub type pgsess_isolation_arg = u32;

/// An isolation argument; a value that is not a `pgsess_isolation` is an interface error.
fn isolation_arg(isolation: pgsess_isolation_arg) -> Result<Isolation> {
    match isolation {
        0 => Ok(Isolation::Default),
        1 => Ok(Isolation::ReadCommitted),
        2 => Ok(Isolation::RepeatableRead),
        3 => Ok(Isolation::Serializable),
        n => Err(Error::interface(format!("{n} is not a pgsess_isolation"))),
    }
}

/// Begin a transaction with options, sent with the `BEGIN` itself in one round trip, e.g.
/// `BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE`. Only what is asked is said:
/// `PGSESS_ISOLATION_DEFAULT` leaves the isolation level to the server's
/// `default_transaction_isolation`, and `read_only` or `deferrable` false leave those to
/// `default_transaction_read_only` and `default_transaction_deferrable`. `deferrable` is sent
/// whenever asked, as libpq would send it; the server accepts it with any level and it only has
/// an effect on a `SERIALIZABLE READ ONLY` transaction (which then waits for a snapshot that
/// cannot fail with a serialization error). Otherwise as `pgsess_begin`: checks out one pooled
/// connection and holds it until `pgsess_commit` or `pgsess_rollback`; the caller owns the
/// transaction. Returns NULL with `*err` set on failure: `PGSESS_INTERFACE_ERROR` for a NULL
/// `session` or an `isolation` that is not a `pgsess_isolation`. Any thread.
///
/// # Safety
/// `session` NULL or a handle from this library (live or ended); `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_begin_with(
    session: *mut pgsess_session,
    isolation: pgsess_isolation_arg,
    read_only: bool,
    deferrable: bool,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_tx {
    call(err, || {
        let s = arg(session, "session")?;
        let options = TxOptions { isolation: isolation_arg(isolation)?, read_only, deferrable };
        Ok(give::<pgsess_tx>(Box::new(s.begin_with(options)?)))
    })
}

/// Whether the failed work can safely be run again, and may then succeed: true for a
/// serialization failure (SQLSTATE 40001) and a deadlock (40P01), whose transaction the server
/// rolled back (also when `pgsess_commit` reports that rollback), and for a statement that never
/// reached the server (its connection could not be opened, was already broken, or failed while
/// the statement was being sent). False for everything else, including a connection lost after
/// the statement was sent (it may have run; a COMMIT may have committed) and pool exhaustion;
/// false for NULL. `pgsess_run_in_tx` retries exactly these. Any thread.
///
/// # Safety
/// `err` NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_is_retryable(err: *const pgsess_error) -> bool {
    read_arg(err, "err", |v| v.error.is_retryable())
}

/// The function `pgsess_run_in_tx` runs in a transaction. `tx` is the runner's: run statements
/// with `pgsess_tx_query` and the like, on `pgsess_tx_session(tx)`, and with savepoints, but do
/// not commit, roll back or keep it (`pgsess_commit` and `pgsess_rollback` on it are refused and
/// ignored; once `fn` has returned, it and its session are ended handles, and any call with
/// them is `PGSESS_INTERFACE_ERROR`), and free every result before returning. Return `PGSESS_OK` to commit; any other
/// code rolls back, with `*err` set to an error from this library (pass on the error of the
/// statement that failed: a 40001 is what makes the runner retry) or left NULL. `*err` is NULL
/// on entry. The function may run several times: it should have no effect outside the
/// transaction that cannot be repeated.
#[allow(non_camel_case_types)]
pub type pgsess_tx_fn = Option<
    unsafe extern "C" fn(tx: *mut pgsess_tx, user_data: *mut c_void, err: *mut *mut pgsess_error) -> pgsess_code_arg,
>;

/// Run `fn(tx, user_data, &fn_err)` in a transaction begun with `isolation` (as
/// `pgsess_begin_with(session, isolation, false, false)`) and commit it when `fn` returns
/// `PGSESS_OK`; otherwise roll it back. When `fn`, the commit or the begin fails with a
/// retryable error (`pgsess_error_is_retryable`: a serialization failure, a deadlock, a
/// statement that never reached the server), the whole of it runs again, in a new transaction,
/// after a random wait (full jitter: between 0 and 2 ms, the bound doubling with each attempt
/// up to 1 s), at most `max_attempts` times in all; 0 means 30. The calling thread sleeps
/// between attempts, and `fn` runs on it.
///
/// Returns `PGSESS_OK` once a commit succeeded. Otherwise the last attempt's failure: when it
/// was `fn`'s, `fn`'s code, with `*err` set to `fn`'s error (its code made `fn`'s; an error
/// saying `fn` set none when it left `*err` NULL); else the begin's or commit's error. When
/// every attempt failed with a retryable error, the message says how many were made.
/// An error `fn` leaves in `*err` while returning `PGSESS_OK` is freed. `PGSESS_INTERFACE_ERROR`
/// for a NULL `session` or `fn`, an `isolation` that is not a `pgsess_isolation`, or a `fn`
/// return value that is not a `pgsess_code` (which rolls back). Any thread, as the session.
///
/// # Safety
/// `session` NULL or a handle from this library (live or ended); `fn` NULL or a function as
/// `pgsess_tx_fn` says; `err` NULL or
/// writable. `user_data` is passed to `fn` untouched.
#[no_mangle]
pub unsafe extern "C" fn pgsess_run_in_tx(
    session: *mut pgsess_session,
    isolation: pgsess_isolation_arg,
    max_attempts: u32,
    r#fn: pgsess_tx_fn,
    user_data: *mut c_void,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        let s = arg(session, "session")?;
        let options = TxOptions { isolation: isolation_arg(isolation)?, ..TxOptions::default() };
        let f = r#fn.ok_or_else(|| Error::interface("fn is NULL"))?;
        s.run_in_tx(options, max_attempts, |tx| {
            let mut fn_err: *mut pgsess_error = null_mut();
            // The handle ends when `f` returns: kept and used later, it is an interface error.
            let code = lend_scoped::<pgsess_tx, _>(tx, |tx| f(tx, user_data, &mut fn_err));
            // The error is one this library made (the function's contract): its own again.
            let fn_error = take(fn_err).map(|e| e.error);
            match Code::from_raw(code) {
                Some(Code::PGSESS_OK) => Ok(()),
                Some(code) => Err(match fn_error {
                    Some(e) => Error { code, ..e },
                    None => Error::new(
                        code,
                        format!("the pgsess_run_in_tx function returned {} without setting *err", code.name()),
                    ),
                }),
                None => Err(Error::interface(format!(
                    "the pgsess_run_in_tx function returned {code}, which is not a pgsess_code (rolled back)"
                ))),
            }
        })?;
        Ok(Code::PGSESS_OK)
    })
}

/// `SAVEPOINT name` in the transaction, on its connection. The name is taken literally and
/// quoted as an identifier (`"..."`, a `"` doubled), so any text works and none is spliced into
/// the statement (names over 63 bytes are truncated by the server). `PGSESS_INTERFACE_ERROR` for
/// a NULL `tx` or `name`, an empty name, or one that is not UTF-8. One thread at a time, as `tx`.
///
/// # Safety
/// `tx` NULL or a handle from this library (live or ended); `name` NULL or a NUL-terminated string;
/// `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_savepoint(
    tx: *mut pgsess_tx,
    name: *const c_char,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        arg(tx, "tx")?.savepoint(str_arg(name, "name")?)?;
        Ok(Code::PGSESS_OK)
    })
}

/// `ROLLBACK TO SAVEPOINT name`: undoes what ran in the transaction since the savepoint, which
/// stays. After a failed statement it makes the transaction usable again, and `pgsess_commit`
/// then commits what ran before the savepoint and after the rollback. The name as for
/// `pgsess_savepoint`; an unknown one fails (SQLSTATE 3B001) and fails the transaction.
///
/// # Safety
/// As for `pgsess_savepoint`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_rollback_to(
    tx: *mut pgsess_tx,
    name: *const c_char,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        arg(tx, "tx")?.rollback_to(str_arg(name, "name")?)?;
        Ok(Code::PGSESS_OK)
    })
}

/// `RELEASE SAVEPOINT name`: forgets the savepoint (and any made after it), keeping what ran
/// since. The name as for `pgsess_savepoint`.
///
/// # Safety
/// As for `pgsess_savepoint`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_release(tx: *mut pgsess_tx, name: *const c_char, err: *mut *mut pgsess_error) -> Code {
    call(err, || {
        arg(tx, "tx")?.release(str_arg(name, "name")?)?;
        Ok(Code::PGSESS_OK)
    })
}
