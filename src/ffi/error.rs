//! `pgsess_error`: an error object returned through `pgsess_error **err` out-parameters.

use std::ffi::{c_char, CString};

use super::{c_string, guard};
use crate::error::{Code, Error};

/// An error. Created by the library on failure of a call that takes `pgsess_error **err`; owned by
/// the caller, who frees it with `pgsess_error_free`. Immutable: any number of threads may read it.
#[allow(non_camel_case_types)]
pub struct pgsess_error {
    error: Error,
    message: CString,
    sqlstate: Option<CString>,
    detail: Option<CString>,
    hint: Option<CString>,
}

pub(crate) fn into_raw(error: Error) -> *mut pgsess_error {
    Box::into_raw(boxed(error))
}

pub(crate) fn boxed(error: Error) -> Box<pgsess_error> {
    let message = c_string(&error.message);
    let sqlstate = error.sqlstate().map(c_string);
    let detail = error.detail().map(c_string);
    let hint = error.hint().map(c_string);
    Box::new(pgsess_error { error, message, sqlstate, detail, hint })
}

/// # Safety
/// `err` is NULL or a live error object from this library.
unsafe fn get<'a>(err: *const pgsess_error) -> Option<&'a pgsess_error> {
    err.as_ref()
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// The error's code. `PGSESS_INTERFACE_ERROR` for a NULL `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_code(err: *const pgsess_error) -> Code {
    guard(Code::PGSESS_INTERFACE_ERROR, || get(err).map_or(Code::PGSESS_INTERFACE_ERROR, |e| e.error.code))
}

/// The DB-API category of the error's code: the code itself, except `PGSESS_QUERY_CANCELED`,
/// `PGSESS_TRANSACTION_ROLLBACK` and `PGSESS_POOL_EXHAUSTED` (operational);
/// `PGSESS_CONFIG_ERROR`, `PGSESS_NULL_VALUE`, `PGSESS_TYPE_MISMATCH` and `PGSESS_OUT_OF_RANGE`
/// (interface); `PGSESS_VALUE_OVERFLOW` (data). `PGSESS_INTERFACE_ERROR` for a NULL `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_category(err: *const pgsess_error) -> Code {
    guard(Code::PGSESS_INTERFACE_ERROR, || get(err).map_or(Code::PGSESS_INTERFACE_ERROR, |e| e.error.category()))
}

/// The DB-API category of a code, as `pgsess_error_category` gives it for an error with that
/// code: the code itself, except `PGSESS_QUERY_CANCELED`, `PGSESS_TRANSACTION_ROLLBACK` and
/// `PGSESS_POOL_EXHAUSTED` (operational); `PGSESS_CONFIG_ERROR`, `PGSESS_NULL_VALUE`,
/// `PGSESS_TYPE_MISMATCH` and `PGSESS_OUT_OF_RANGE` (interface); `PGSESS_VALUE_OVERFLOW` (data);
/// `PGSESS_PANIC` (internal). Bindings map codes to their exception classes through this one
/// table. `PGSESS_INTERFACE_ERROR` for a value that is not a code. Any thread.
#[no_mangle]
pub extern "C" fn pgsess_code_category(code: super::pgsess_code_arg) -> Code {
    guard(Code::PGSESS_PANIC, || Code::from_raw(code).map_or(Code::PGSESS_INTERFACE_ERROR, Code::category))
}

/// The message (never contains a password). Owned by `err`, valid until it is freed; NULL for a
/// NULL `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_message(err: *const pgsess_error) -> *const c_char {
    guard(std::ptr::null(), || get(err).map_or(std::ptr::null(), |e| e.message.as_ptr()))
}

/// The five-character SQLSTATE: the server's, or the standard one for a client-side failure
/// (`08001` could not connect, `08006` connection lost, ...). NULL when there is none (pool
/// exhaustion, configuration and interface errors). Owned by `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_sqlstate(err: *const pgsess_error) -> *const c_char {
    guard(std::ptr::null(), || get(err).map_or(std::ptr::null(), |e| opt_ptr(&e.sqlstate)))
}

/// The server's DETAIL field, or NULL. Owned by `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_detail(err: *const pgsess_error) -> *const c_char {
    guard(std::ptr::null(), || get(err).map_or(std::ptr::null(), |e| opt_ptr(&e.detail)))
}

/// The server's HINT field, or NULL. Owned by `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_hint(err: *const pgsess_error) -> *const c_char {
    guard(std::ptr::null(), || get(err).map_or(std::ptr::null(), |e| opt_ptr(&e.hint)))
}

/// Free an error object. NULL is ignored. Each error once, from any thread.
///
/// # Safety
/// `err` is NULL or an error object from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_free(err: *mut pgsess_error) {
    guard((), || {
        if !err.is_null() {
            drop(Box::from_raw(err));
        }
    })
}
