//! `pgsess_error`: an error object returned through `pgsess_error **err` out-parameters.

use std::ffi::{c_char, CString};
use std::ptr::null;

use super::{arg, c_string, call, give, lend, pgsess_code_arg, read_arg, take, Handle, NO_ERR};
use crate::error::{Code, Error, ServerFields};

/// An error. Created by the library on failure of a call that takes `pgsess_error **err`; owned by
/// the caller, who frees it with `pgsess_error_free`. Immutable: any number of threads may read it.
#[allow(non_camel_case_types)]
pub struct pgsess_error {
    _opaque: [u8; 0],
}

impl Handle for pgsess_error {
    type Rust = CError;
}

/// An error with its text fields as C strings, made once so the accessors return pointers that
/// live as long as the error object.
pub(crate) struct CError {
    pub(crate) error: Error,
    message: CString,
    sqlstate: Option<CString>,
    /// The server's fields by protocol code (`pgsess_error_field`, and DETAIL and HINT); empty
    /// for a client error.
    fields: Box<[(u8, CString)]>,
}

impl CError {
    pub(crate) fn new(error: Error) -> CError {
        let message = c_string(&error.message);
        let sqlstate = error.sqlstate().map(c_string);
        let fields = error.server.as_deref().map_or_else(Default::default, |f| {
            crate::error::ServerFields::FIELD_CODES
                .iter()
                .filter_map(|&code| f.field(code).map(|v| (code, c_string(v))))
                .collect()
        });
        CError { error, message, sqlstate, fields }
    }

    /// The server's field `code`, or NULL.
    fn field(&self, code: u8) -> *const c_char {
        self.fields.iter().find(|(c, _)| *c == code).map_or(null(), |(_, v)| v.as_ptr())
    }
}

/// A new error handle the caller owns.
pub(crate) fn into_raw(error: Error) -> *mut pgsess_error {
    give::<pgsess_error>(Box::new(CError::new(error)))
}

/// Run `f` with a `pgsess_error` view of a notice: made for the call, lent to it, dropped after
/// (a notice callback's argument; the callee never frees it).
pub(crate) fn with_notice_view(notice: &ServerFields, f: impl FnOnce(*const pgsess_error)) {
    let view = CError::new(Error::from_server(notice.clone()));
    f(lend::<pgsess_error>(&view));
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(null(), |s| s.as_ptr())
}

/// The error's code. `PGSESS_INTERFACE_ERROR` for a NULL `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_code(err: *const pgsess_error) -> Code {
    read_arg(err, "err", |v| v.error.code)
}

/// The DB-API category of the error's code (as `pgsess_code_category` gives it).
/// `PGSESS_INTERFACE_ERROR` for a NULL `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_category(err: *const pgsess_error) -> Code {
    read_arg(err, "err", |v| v.error.category())
}

/// The DB-API category of a code: the code itself, except `PGSESS_QUERY_CANCELED`,
/// `PGSESS_TRANSACTION_ROLLBACK` and `PGSESS_POOL_EXHAUSTED` (operational); `PGSESS_CONFIG_ERROR`,
/// `PGSESS_NULL_VALUE`, `PGSESS_TYPE_MISMATCH` and `PGSESS_OUT_OF_RANGE` (interface);
/// `PGSESS_VALUE_OVERFLOW` (data); `PGSESS_PANIC` (internal). Bindings map codes to their
/// exception classes through this one table. `PGSESS_INTERFACE_ERROR` for a value that is not a
/// code. Any thread.
#[no_mangle]
pub extern "C" fn pgsess_code_category(code: pgsess_code_arg) -> Code {
    call(NO_ERR, || Ok(Code::from_raw(code).ok_or_else(|| Error::interface("not a code"))?.category()))
}

/// The message (never contains a password). Owned by `err`, valid until it is freed; NULL for a
/// NULL `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_message(err: *const pgsess_error) -> *const c_char {
    read_arg(err, "err", |v| v.message.as_ptr())
}

/// The five-character SQLSTATE: the server's, or the standard one for a client-side failure
/// (`08001` could not connect, `08006` connection lost, `08P01` protocol violation, ...). NULL
/// when there is none: pool exhaustion, configuration and interface errors, and a server error
/// report that carries no SQLSTATE (or an empty one: only a broken server sends either), never
/// `""`. Owned by `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_sqlstate(err: *const pgsess_error) -> *const c_char {
    call(NO_ERR, || Ok(opt_ptr(&arg(err, "err")?.sqlstate)))
}

/// The server's DETAIL field, or NULL. Owned by `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_detail(err: *const pgsess_error) -> *const c_char {
    read_arg(err, "err", |v| v.field(b'D'))
}

/// The server's HINT field, or NULL. Owned by `err`.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_hint(err: *const pgsess_error) -> *const c_char {
    read_arg(err, "err", |v| v.field(b'H'))
}

/// One field of the server's error report, by libpq's `PG_DIAG_*` code: `'S'` severity, `'V'`
/// its non-localised form, `'C'` SQLSTATE, `'M'` message, `'D'` detail, `'H'` hint, `'P'`
/// position, `'p'` internal position, `'q'` internal query, `'W'` context (`PG_DIAG_CONTEXT`:
/// for a COPY, the line, e.g. `COPY t, line 700000, column n: "x"`), `'s'` schema, `'t'` table,
/// `'c'` column, `'d'` data type, `'n'` constraint, `'F'` file, `'L'` line, `'R'` routine. As
/// libpq's `PQresultErrorField` gives it for the same error: the server's text (`""` for a
/// field the server sent empty), or NULL when the server sent no such field, for an unknown
/// code, for an error the client raised (no server reached, pool exhaustion, a connection lost
/// without a report from the server: as libpq's own errors, these have no fields; see
/// `pgsess_error_sqlstate`) and for a NULL `err`. A server that refuses a connection (a FATAL
/// report during startup, where libpq has only `PQerrorMessage`'s text) gives its fields too.
/// Also on a notice given to a notice callback (`pgsess_options_set_notice_callback`). Owned by
/// `err`. Any thread.
///
/// # Safety
/// `err` is NULL or a live error object from this library.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_field(err: *const pgsess_error, field: std::ffi::c_int) -> *const c_char {
    call(NO_ERR, || {
        let e = arg(err, "err")?;
        Ok(u8::try_from(field).map_or(null(), |code| e.field(code)))
    })
}

/// Free an error object. NULL is ignored. Each error once, from any thread.
///
/// # Safety
/// `err` is NULL or an error object from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn pgsess_error_free(err: *mut pgsess_error) {
    call(NO_ERR, || {
        drop(take(err));
        Ok(())
    })
}
