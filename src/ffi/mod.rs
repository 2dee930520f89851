//! The C ABI. This module and its children are the only C-facing code: they check every pointer,
//! convert C strings and arrays, catch panics so none crosses the boundary, and call one Rust
//! method. One file per C "class", declared below in the order the header presents them (the
//! order a reader meets them); `boundary` holds the idiom every export follows.
//!
//! Conventions for every export (repeated in the header):
//! - A function that can fail takes `pgsess_error **err`. NULL is allowed. When it is not NULL,
//!   `*err` is set to NULL on entry and to a new error object on failure; the caller frees that
//!   with `pgsess_error_free`.
//! - Every `*_free`/`close` function accepts NULL.
//! - Strings passed in must be NUL-terminated UTF-8; strings returned as `const char *` are owned
//!   by the object they come from and live until it is freed; strings returned as `char *` are
//!   the caller's, freed with `pgsess_string_free`.

mod boundary;

pub mod session;

pub mod options;

pub mod pool;

pub mod config;

pub mod results;

pub mod cells;

pub mod array;

pub mod tx;

pub mod stream;

pub mod pending;

pub mod batch;

pub mod copy;

pub mod notify;

pub mod requests;

pub mod error;

pub mod log;

pub mod library;

use std::ffi::{c_char, CStr, CString};

use crate::error::{Error, Result};
pub(crate) use boundary::{arg, arg_mut, call, call_or, give, lend, read_arg, take, Handle, NO_ERR};
pub use error::pgsess_error;

/// The C type of a `pgsess_code` argument: read as a plain integer so that a value outside the
/// enum is reported instead of being undefined behaviour. Declared as `pgsess_code` in the header.
#[allow(non_camel_case_types)]
pub type pgsess_code_arg = u32;

/// Borrow a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
#[inline]
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::interface(format!("{what} is NULL")));
    }
    crate::text::utf8(CStr::from_ptr(p).to_bytes())
        .ok_or_else(|| Error::interface(format!("{what} is not valid UTF-8")))
}

/// `str_arg` for a string given as a pointer and a length in bytes (not NUL-terminated; a zero
/// byte inside is refused, as SQL cannot hold one).
///
/// # Safety
/// `p` NULL or readable for `len` bytes.
pub(crate) unsafe fn str_len_arg<'a>(p: *const c_char, len: usize, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::interface(format!("{what} is NULL")));
    }
    if isize::try_from(len).is_err() {
        return Err(Error::interface(format!("{what}: a length of {len} bytes is too long")));
    }
    let bytes = std::slice::from_raw_parts(p.cast::<u8>(), len);
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(Error::interface(format!("{what} contains a zero byte at offset {at}")));
    }
    crate::text::utf8(bytes).ok_or_else(|| Error::interface(format!("{what} is not valid UTF-8")))
}

/// Parameters that fit on the stack stay there: a statement's parameter list costs no allocation.
const INLINE_PARAMS: usize = 16;

/// Borrowed text parameters (a NULL element is SQL NULL), held inline up to `INLINE_PARAMS`.
/// The inline variant is large on purpose: it lives on the stack for one call, instead of the
/// heap.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Params<'a> {
    Inline([Option<&'a [u8]>; INLINE_PARAMS], usize),
    Heap(Vec<Option<&'a [u8]>>),
}

impl Params<'_> {
    /// Copies of the parameters, for work that outlives the call (queued requests, batches).
    pub(crate) fn to_owned_vec(&self) -> Vec<Option<Vec<u8>>> {
        self.iter().map(|p| p.map(<[u8]>::to_vec)).collect()
    }
}

impl<'a> std::ops::Deref for Params<'a> {
    type Target = [Option<&'a [u8]>];
    fn deref(&self) -> &Self::Target {
        match self {
            Params::Inline(array, n) => &array[..*n],
            Params::Heap(v) => v,
        }
    }
}

/// Borrow `n` text parameters; a NULL element is SQL NULL.
///
/// # Safety
/// When `n > 0`, `p` is NULL or points to `n` pointers, each NULL or a NUL-terminated string.
#[inline]
pub(crate) unsafe fn params_arg<'a>(n: usize, p: *const *const c_char, what: &str) -> Result<Params<'a>> {
    if n == 0 {
        return Ok(Params::Inline([None; INLINE_PARAMS], 0));
    }
    if p.is_null() {
        return Err(Error::interface(format!("{what} is NULL but its count is {n}")));
    }
    crate::conn::check_param_count(n)?;
    let ptrs = std::slice::from_raw_parts(p, n);
    let param = |i: usize, v: *const c_char| -> Result<Option<&'a [u8]>> {
        if v.is_null() {
            return Ok(None);
        }
        let bytes = CStr::from_ptr(v).to_bytes();
        crate::text::utf8(bytes).ok_or_else(|| Error::interface(format!("parameter ${} is not valid UTF-8", i + 1)))?;
        Ok(Some(bytes))
    };
    if n <= INLINE_PARAMS {
        let mut array = [None; INLINE_PARAMS];
        for (i, &v) in ptrs.iter().enumerate() {
            array[i] = param(i, v)?;
        }
        return Ok(Params::Inline(array, n));
    }
    ptrs.iter().enumerate().map(|(i, &v)| param(i, v)).collect::<Result<_>>().map(Params::Heap)
}

/// Borrow `n` parameters in `PQexecParams` form: `formats[i]` 1 is binary (`lengths[i]` bytes,
/// `lengths` then required), 0 or a NULL `formats` is text (NUL-terminated UTF-8); a NULL value is
/// SQL NULL. `types` (NULL: all inferred) declares parameter type OIDs, 0 meaning inferred.
///
/// # Safety
/// Each non-NULL array has `n` elements; text values are NUL-terminated; binary values have at
/// least `lengths[i]` bytes.
pub(crate) unsafe fn typed_params_arg<'a>(
    n: usize,
    types: *const u32,
    values: *const *const c_char,
    lengths: *const i32,
    formats: *const i32,
) -> Result<(Vec<u32>, Vec<crate::conn::Param<'a>>)> {
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    if values.is_null() {
        return Err(Error::interface(format!("param_values is NULL but nparams is {n}")));
    }
    crate::conn::check_param_count(n)?;
    let types = if types.is_null() { Vec::new() } else { std::slice::from_raw_parts(types, n).to_vec() };
    let values = std::slice::from_raw_parts(values, n);
    let mut params = Vec::with_capacity(n);
    for (i, &v) in values.iter().enumerate() {
        let binary = !formats.is_null() && *formats.add(i) != 0;
        let value = if v.is_null() {
            None
        } else if binary {
            if lengths.is_null() {
                return Err(Error::interface(format!("parameter ${} is binary but param_lengths is NULL", i + 1)));
            }
            let len = usize::try_from(*lengths.add(i))
                .map_err(|_| Error::interface(format!("parameter ${} has a negative length", i + 1)))?;
            Some(std::slice::from_raw_parts(v.cast::<u8>(), len))
        } else {
            let bytes = CStr::from_ptr(v).to_bytes();
            std::str::from_utf8(bytes)
                .map_err(|_| Error::interface(format!("parameter ${} is not valid UTF-8", i + 1)))?;
            Some(bytes)
        };
        params.push(crate::conn::Param { value, binary });
    }
    Ok((types, params))
}

/// A C string from Rust text; interior NULs (never produced by the server) become U+FFFD.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| CString::new(s.replace('\0', "\u{FFFD}")).expect("no NUL left"))
}
