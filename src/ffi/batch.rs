//! `pgsess_batch`: many statements in one round trip.

use std::ffi::c_char;
use std::ptr::null;

use super::boundary::{lend_checked, unlend};
use super::error::{pgsess_error, CError};
use super::results::pgsess_results;
use super::session::pgsess_session;
use super::{arg, arg_mut, call, give, params_arg, read_arg, str_arg, take, Handle, NO_ERR};
use crate::conn::BatchStatement;
use crate::error::Code;
use crate::results::Results;

/// A list of statements to run together with `pgsess_batch_run`. Created by `pgsess_batch_new`,
/// owned by the caller, freed with `pgsess_batch_free`; it copies what is added. One thread at
/// a time; reusable (run it any number of times). Checked: after `pgsess_batch_free`, a call
/// with it fails (`PGSESS_INTERFACE_ERROR`, or 0), and a second free does nothing.
#[allow(non_camel_case_types)]
pub struct pgsess_batch {
    _opaque: [u8; 0],
}

impl Handle for pgsess_batch {
    type Rust = Vec<BatchStatement>;
}

/// The outcome of each statement of a batch, in order. Owned by the caller, freed with
/// `pgsess_batch_results_free`, which also returns the pooled connection the successful results
/// hold. Read-only: any number of threads may read it. Checked: after `pgsess_batch_results_free`
/// it, and every results and error handle it gave, are ended handles, and any call with them
/// is `PGSESS_INTERFACE_ERROR` (or NULL, 0, false).
#[allow(non_camel_case_types)]
pub struct pgsess_batch_results {
    _opaque: [u8; 0],
}

impl Handle for pgsess_batch_results {
    type Rust = BatchResults;
}

/// Each statement's outcome, with the checked handles C reads them through (made once, so
/// repeated calls give the same handle; ended when this is dropped).
pub struct BatchResults {
    items: Vec<Result<Results, CError>>,
    /// Per item: its `pgsess_results` or `pgsess_error` handle, as an address.
    handles: Vec<usize>,
}

impl BatchResults {
    fn new(items: Vec<Result<Results, CError>>) -> Box<BatchResults> {
        let mut b = Box::new(BatchResults { items, handles: Vec::new() });
        // The items stay where they are (the Vec is never changed again) until drop.
        b.handles = b
            .items
            .iter()
            .map(|item| match item {
                Ok(r) => lend_checked::<pgsess_results>(r) as usize,
                Err(e) => lend_checked::<pgsess_error>(e) as usize,
            })
            .collect();
        b
    }
}

impl Drop for BatchResults {
    fn drop(&mut self) {
        for (item, &h) in self.items.iter().zip(&self.handles) {
            match item {
                Ok(_) => unlend(h as *const pgsess_results),
                Err(_) => unlend(h as *const pgsess_error),
            }
        }
    }
}

/// A new, empty batch. Never NULL.
#[no_mangle]
pub extern "C" fn pgsess_batch_new() -> *mut pgsess_batch {
    call(NO_ERR, || Ok(give::<pgsess_batch>(Box::default())))
}

/// Append a statement with `nparams` text parameters (as for `pgsess_query`; NULL is SQL NULL).
/// The SQL and parameters are copied. `PGSESS_INTERFACE_ERROR` for NULL arguments, invalid UTF-8
/// or more than 65535 parameters.
///
/// # Safety
/// `batch` NULL or a handle from this library (live or ended); `sql` NULL or NUL-terminated;
/// `params` as for `pgsess_query`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_batch_add(
    batch: *mut pgsess_batch,
    sql: *const c_char,
    nparams: usize,
    params: *const *const c_char,
) -> Code {
    call(NO_ERR, || {
        let b = arg_mut(batch, "batch")?;
        let sql = str_arg(sql, "sql")?.to_owned();
        let params = params_arg(nparams, params, "params")?.to_owned_vec();
        b.push(BatchStatement { sql, params });
        Ok(Code::PGSESS_OK)
    })
}

/// Number of statements in the batch (0 for NULL).
///
/// # Safety
/// `batch` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_batch_len(batch: *const pgsess_batch) -> usize {
    read_arg(batch, "batch", |v| v.len())
}

/// Free a batch. NULL is ignored.
///
/// # Safety
/// `batch` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_batch_free(batch: *mut pgsess_batch) {
    call(NO_ERR, || {
        drop(take(batch));
        Ok(())
    })
}

/// Run every statement of `batch` on one pooled connection in a single round trip (pipelined).
/// Each entry must be one statement (no `;`-separated lists) and runs as its own implicit
/// transaction, so one statement's error does not stop the others (inside an explicit `BEGIN`
/// sent as part of the batch, the server's usual aborted-transaction rules apply). Returns the outcome of every statement, or NULL with `*err` set when the batch as a
/// whole failed (no connection, or the connection broke). Any thread.
///
/// # Safety
/// `session` and `batch` NULL or a handle from this library (live or ended); `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_batch_run(
    session: *mut pgsess_session,
    batch: *const pgsess_batch,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_batch_results {
    call(err, || {
        let s = arg(session, "session")?;
        let b = arg(batch, "batch")?;
        let items = s.batch(b)?.into_iter().map(|r| r.map_err(CError::new)).collect();
        Ok(give::<pgsess_batch_results>(BatchResults::new(items)))
    })
}

/// Number of statement outcomes (the batch's length); 0 for NULL.
///
/// # Safety
/// `results` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_batch_results_count(results: *const pgsess_batch_results) -> usize {
    read_arg(results, "results", |v| v.items.len())
}

/// The results of statement `index`, or NULL when it failed (see `pgsess_batch_results_error`)
/// or `index` is out of range. Owned by the batch results: read it with the `pgsess_results_*`
/// accessors (the same handle for the same `index`; `pgsess_results_free` on it does nothing).
/// It ends with the batch results: after `pgsess_batch_results_free` the accessors report it
/// as an ended handle.
///
/// # Safety
/// `results` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_batch_results_get(
    results: *const pgsess_batch_results,
    index: usize,
) -> *const pgsess_results {
    call(NO_ERR, || {
        let b = arg(results, "results")?;
        Ok(match b.items.get(index) {
            Some(Ok(_)) => b.handles[index] as *const pgsess_results,
            _ => null(),
        })
    })
}

/// The error of statement `index`, or NULL when it succeeded or `index` is out of range. Owned by
/// the batch results: read it with the `pgsess_error_*` accessors (`pgsess_error_free` on it
/// does nothing); it ends with the batch results, as for `pgsess_batch_results_get`.
///
/// # Safety
/// `results` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_batch_results_error(
    results: *const pgsess_batch_results,
    index: usize,
) -> *const pgsess_error {
    call(NO_ERR, || {
        let b = arg(results, "results")?;
        Ok(match b.items.get(index) {
            Some(Err(_)) => b.handles[index] as *const pgsess_error,
            _ => null(),
        })
    })
}

/// Free batch results, returning the pooled connection. NULL is ignored.
///
/// # Safety
/// `results` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_batch_results_free(results: *mut pgsess_batch_results) {
    call(NO_ERR, || {
        drop(take(results));
        Ok(())
    })
}
