//! Library-wide calls: the version, code names, and freeing the strings the library returns.

use std::ffi::{c_char, CString};

use super::{call, call_or, pgsess_code_arg, NO_ERR};
use crate::error::{Code, Error};

/// The library version, e.g. `"0.1.0"`.
///
/// Returns a static string; never NULL. Any thread.
#[no_mangle]
pub extern "C" fn pgsess_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of a code as written in this header, e.g. `"PGSESS_POOL_EXHAUSTED"`.
///
/// Returns a static string; `"PGSESS_UNKNOWN_CODE"` for a value that is not a code. Any thread.
#[no_mangle]
pub extern "C" fn pgsess_code_name(code: pgsess_code_arg) -> *const c_char {
    call_or(
        |_| c"PGSESS_UNKNOWN_CODE".as_ptr(),
        NO_ERR,
        || {
            let code = Code::from_raw(code).ok_or_else(|| Error::interface("not a code"))?;
            Ok(code.c_name().as_ptr())
        },
    )
}

/// Free a string this library returned as `char *` (`pgsess_notices`). NULL is ignored.
///
/// Any thread; each string once.
///
/// # Safety
/// `s` is NULL or a string returned by this library as `char *` and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn pgsess_string_free(s: *mut c_char) {
    call(NO_ERR, || {
        if !s.is_null() {
            drop(CString::from_raw(s));
        }
        Ok(())
    })
}
