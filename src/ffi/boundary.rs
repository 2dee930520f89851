//! The one idiom every export follows (after rustls-ffi): how a pointer becomes a Rust reference
//! or box, and what an export returns when it cannot do its work.
//!
//! - Every handle type is an opaque C name for one Rust type (`Handle::Rust`): a handle pointer
//!   points at that Rust value itself, so making a handle is `Box::into_raw` and nothing is
//!   copied on the way to C.
//! - `arg`, `arg_mut` and `take` turn a handle pointer into `&T`, `&mut T` or `Box<T>`; a NULL
//!   pointer is an interface error that names the argument.
//! - `call` runs an export's body: it clears `*err`, catches panics (`PGSESS_PANIC`), stores an
//!   error in `*err`, and returns the return type's `Fallback` (NULL, 0, false, or the error's
//!   code) when the body fails.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{null, null_mut};

use super::error::{into_raw as error_into_raw, pgsess_error};
use crate::error::{Code, Error, Result};

/// A C handle type: an opaque name whose pointers point at a `Rust` value made by this library.
pub(crate) trait Handle {
    type Rust;
}

/// The value an export returns when its body fails (a NULL or invalid argument, an error, a
/// caught panic): what the header documents as that function's failure value.
pub(crate) trait Fallback {
    fn fallback(error: &Error) -> Self;
}

impl<T> Fallback for *mut T {
    fn fallback(_: &Error) -> Self {
        null_mut()
    }
}

impl<T> Fallback for *const T {
    fn fallback(_: &Error) -> Self {
        null()
    }
}

/// A `pgsess_code` result is the failure's own code.
impl Fallback for Code {
    fn fallback(error: &Error) -> Self {
        error.code
    }
}

macro_rules! fallback_zero {
    ($($t:ty),*) => {$(
        impl Fallback for $t {
            fn fallback(_: &Error) -> Self {
                Default::default()
            }
        }
    )*};
}
fallback_zero!(bool, usize, u32, u64, i32, ());

/// For exports that take no `pgsess_error **err`.
pub(crate) const NO_ERR: *mut *mut pgsess_error = null_mut();

/// Run an export's body. `err` is NULL or writable: it is set to NULL on entry and to a new error
/// on failure. A panic becomes a `PGSESS_PANIC` error; none crosses the boundary. Inlined into
/// every export, with the failure path out of line: a per-cell accessor pays only for its own
/// work on success.
#[inline(always)]
pub(crate) fn call<T: Fallback>(err: *mut *mut pgsess_error, body: impl FnOnce() -> Result<T>) -> T {
    call_or(T::fallback, err, body)
}

/// `call` for an export whose failure value is not its type's `Fallback` (-1 for an index or a
/// file descriptor).
#[inline(always)]
pub(crate) fn call_or<T>(
    fallback: impl FnOnce(&Error) -> T,
    err: *mut *mut pgsess_error,
    body: impl FnOnce() -> Result<T>,
) -> T {
    if !err.is_null() {
        // SAFETY: the caller passes either NULL (checked) or a pointer to writable storage.
        unsafe { *err = null_mut() };
    }
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => failed(fallback, err, e),
        Err(_) => failed(fallback, err, Error::panic()),
    }
}

/// The failure path of `call_or`: store the error, return the fallback.
#[cold]
#[inline(never)]
fn failed<T>(fallback: impl FnOnce(&Error) -> T, err: *mut *mut pgsess_error, e: Error) -> T {
    let value = fallback(&e);
    if !err.is_null() {
        // SAFETY: as in `call_or`.
        unsafe { *err = error_into_raw(e) };
    }
    value
}

#[cold]
#[inline(never)]
fn null_argument(name: &str) -> Error {
    Error::interface(format!("{name} is NULL"))
}

/// Borrow a handle argument.
///
/// # Safety
/// `p` is NULL or a live handle of type `H` from this library, not freed during `'a`.
#[inline(always)]
pub(crate) unsafe fn arg<'a, H: Handle>(p: *const H, name: &str) -> Result<&'a H::Rust> {
    match p.cast::<H::Rust>().as_ref() {
        Some(r) => Ok(r),
        None => Err(null_argument(name)),
    }
}

/// Borrow a handle argument for change (handles documented "one thread at a time").
///
/// # Safety
/// As for `arg`, and nothing else uses the handle during `'a`.
#[inline(always)]
pub(crate) unsafe fn arg_mut<'a, H: Handle>(p: *mut H, name: &str) -> Result<&'a mut H::Rust> {
    match p.cast::<H::Rust>().as_mut() {
        Some(r) => Ok(r),
        None => Err(null_argument(name)),
    }
}

/// Take back ownership of a handle (to free, close, commit or roll back); `None` for NULL.
///
/// # Safety
/// `p` is NULL or a handle of type `H` made by `give` and not taken back since.
pub(crate) unsafe fn take<H: Handle>(p: *mut H) -> Option<Box<H::Rust>> {
    (!p.is_null()).then(|| Box::from_raw(p.cast::<H::Rust>()))
}

/// Make a handle the caller owns.
pub(crate) fn give<H: Handle>(value: Box<H::Rust>) -> *mut H {
    Box::into_raw(value).cast()
}

/// A handle to a value something else owns (the caller reads it, never frees it).
pub(crate) fn lend<H: Handle>(value: &H::Rust) -> *const H {
    (value as *const H::Rust).cast()
}
