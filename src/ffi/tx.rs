//! `pgsess_tx`: a transaction pinned to one pooled connection.

use std::ffi::c_char;
use std::ptr::null_mut;

use super::results::pgsess_results;
use super::{code_of, fallible, guard, handle, params_arg, pgsess_error, str_arg, typed_params_arg};
use crate::error::{Code, Error};
use crate::session::Transaction;

/// A transaction, from `pgsess_begin`. Owned by the caller and ended (and freed) by exactly one
/// call to `pgsess_commit` or `pgsess_rollback`. One thread at a time. Results from
/// `pgsess_tx_query` share the transaction's connection: it returns to the pool once the
/// transaction has ended and all of them are freed.
#[allow(non_camel_case_types)]
pub struct pgsess_tx {
    inner: Transaction,
}

impl pgsess_tx {
    pub(crate) fn into_raw(inner: Transaction) -> *mut pgsess_tx {
        Box::into_raw(Box::new(pgsess_tx { inner }))
    }
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
    fallible(err, null_mut(), || {
        let t = handle(tx, "tx")?;
        let sql = str_arg(sql, "sql")?;
        let params = params_arg(nparams, params, "params")?;
        Ok(pgsess_results::into_raw(t.inner.query(sql, &params)?))
    })
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
    fallible(err, null_mut(), || {
        let t = handle(tx, "tx")?;
        let sql = str_arg(sql, "sql")?;
        let (types, params) = typed_params_arg(nparams, param_types, param_values, param_lengths, param_formats)?;
        Ok(pgsess_results::into_raw(t.inner.query_params(sql, &types, &params)?))
    })
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
    fallible(err, null_mut(), || {
        let t = handle(tx, "tx")?;
        let name = str_arg(name, "name")?;
        let args = params_arg(nargs, args, "args")?;
        Ok(pgsess_results::into_raw(t.inner.callproc(name, &args)?))
    })
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
    fallible(err, null_mut(), || {
        let t = handle(tx, "tx")?;
        let name = str_arg(name, "name")?;
        let (types, args) = typed_params_arg(nargs, param_types, param_values, param_lengths, param_formats)?;
        Ok(pgsess_results::into_raw(t.inner.callproc_params(name, &types, &args)?))
    })
}

/// Commit and free the transaction handle (in every case: do not use `tx` afterwards). If a
/// statement in the transaction failed, the server rolls back instead and this returns
/// `PGSESS_TRANSACTION_ROLLBACK`. `PGSESS_INTERFACE_ERROR` for NULL.
///
/// # Safety
/// `tx` NULL or live; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_commit(tx: *mut pgsess_tx, err: *mut *mut pgsess_error) -> Code {
    code_of(err, || {
        if tx.is_null() {
            return Err(Error::interface("tx is NULL"));
        }
        Box::from_raw(tx).inner.commit()
    })
}

/// Roll back and free the transaction handle. NULL is ignored.
///
/// # Safety
/// `tx` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_rollback(tx: *mut pgsess_tx) {
    guard((), || {
        if !tx.is_null() {
            Box::from_raw(tx).inner.rollback();
        }
    })
}
