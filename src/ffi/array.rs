//! `pgsess_array_split` and `pgsess_array_literal`: arrays in their text form, for the bindings
//! (a Go slice, a Ruby Array, a C++ vector) so that the quoting rules live once, here.

use std::ffi::c_char;
use std::ptr::null;

use super::{c_string, call, pgsess_error};
use crate::error::{Code, Error};
use crate::rows::array;
use crate::text;

/// Split the text of an array value as the server prints it (`{1,2,NULL}`,
/// `{"a b","c\"d"}`, `{{1,2},{3,4}}`, `[0:1]={5,6}`; what `array_in` reads for a rectangular
/// array) into its elements, in row-major order. `delim` separates elements: `','` for every
/// built-in type but `box` (`';'`). Each element's text, unquoted and unescaped, is written to
/// `buf` followed by a NUL; `elems[i]` points at it (NULL for SQL NULL) and `lens[i]` gives its
/// length (0 for NULL). `dims` (room for 6, PostgreSQL's most, or NULL) receives the
/// elements per dimension, outermost first, and `*ndims` their number (0 for the empty array
/// `{}`); the lower bounds of a `[lo:hi]=` decoration are skipped. `*nelems` is set to the
/// element count.
///
/// `buf_size >= len + 1` and `max_elems >= len / 2 + 1` always suffice. With less room the call
/// returns `PGSESS_INTERFACE_ERROR` and still sets `*nelems` to the count it needs; text that is
/// not an array gives `PGSESS_DATA_ERROR` saying where. The text is read as bytes (any
/// encoding), `len` of them (it need not be NUL-terminated). A pure function: any thread.
///
/// # Safety
/// `text` NULL or `len` readable bytes; `buf` NULL or `buf_size` writable bytes; `elems` and
/// `lens` NULL or room for `max_elems`; `dims` NULL or room for 6;
/// `nelems`, `ndims` and `err` NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn pgsess_array_split(
    text: *const c_char,
    len: usize,
    delim: c_char,
    buf: *mut c_char,
    buf_size: usize,
    elems: *mut *const c_char,
    lens: *mut usize,
    max_elems: usize,
    nelems: *mut usize,
    dims: *mut usize,
    ndims: *mut usize,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        if !nelems.is_null() {
            *nelems = 0;
        }
        if !ndims.is_null() {
            *ndims = 0;
        }
        if text.is_null() || buf.is_null() || elems.is_null() || lens.is_null() || nelems.is_null() || ndims.is_null() {
            return Err(Error::interface("text, buf, elems, lens, nelems or ndims is NULL"));
        }
        let text = std::slice::from_raw_parts(text.cast::<u8>(), len);
        let a = array::split(text, delim as u8)
            .map_err(|e| Error::new(Code::PGSESS_DATA_ERROR, format!("not an array: {}", e.0)))?;
        *nelems = a.elems.len();
        let need: usize = a.elems.iter().map(|e| e.as_ref().map_or(0, |e| e.len() + 1)).sum();
        if a.elems.len() > max_elems || need > buf_size {
            return Err(Error::interface(format!(
                "the array has {} elements needing {need} bytes: room for {max_elems} and {buf_size} given",
                a.elems.len()
            )));
        }
        let mut at = 0;
        for (i, e) in a.elems.iter().enumerate() {
            match e {
                None => {
                    *elems.add(i) = null();
                    *lens.add(i) = 0;
                }
                Some(e) => {
                    let dst = buf.add(at);
                    std::ptr::copy_nonoverlapping(e.as_ptr().cast::<c_char>(), dst, e.len());
                    *dst.add(e.len()) = 0;
                    *elems.add(i) = dst;
                    *lens.add(i) = e.len();
                    at += e.len() + 1;
                }
            }
        }
        if !dims.is_null() {
            for (i, d) in a.dims.iter().enumerate() {
                *dims.add(i) = *d;
            }
        }
        *ndims = a.dims.len();
        Ok(Code::PGSESS_OK)
    })
}

/// The array literal of `n` elements, for a parameter the server converts to its array type:
/// `elems[i]` the element's text (`lens[i]` bytes of UTF-8, NUL bytes refused) or NULL for SQL
/// NULL; `dims` (`ndims` entries, elements per dimension outermost first; NULL or 0 for one
/// dimension of all `n`) shapes a multi-dimensional array. Every element is quoted with `"` and
/// `\` escaped, so any text survives: `{"1","a b",NULL}`, `{{"1","2"},{"3","4"}}`, `{}` for none.
/// A new string freed with `pgsess_string_free`; NULL with `*err` set when `dims` does not
/// multiply to `n`, has more than 6 entries, or an element is not UTF-8
/// or holds a NUL (`PGSESS_INTERFACE_ERROR`). A pure function: any thread.
///
/// # Safety
/// `elems` NULL (only when `n` is 0) or `n` pointers, each NULL or `lens[i]` readable bytes;
/// `lens` NULL (only when `n` is 0) or `n` lengths; `dims` NULL or `ndims` entries; `err` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_array_literal(
    elems: *const *const c_char,
    lens: *const usize,
    n: usize,
    dims: *const usize,
    ndims: usize,
    err: *mut *mut pgsess_error,
) -> *mut c_char {
    call(err, || {
        if n > 0 && (elems.is_null() || lens.is_null()) {
            return Err(Error::interface("elems or lens is NULL"));
        }
        let mut list: Vec<Option<&[u8]>> = Vec::with_capacity(n);
        for i in 0..n {
            let p = *elems.add(i);
            if p.is_null() {
                list.push(None);
                continue;
            }
            let e = std::slice::from_raw_parts(p.cast::<u8>(), *lens.add(i));
            if e.contains(&0) || text::utf8(e).is_none() {
                return Err(Error::interface(format!("array element {} is not UTF-8 without NUL bytes", i + 1)));
            }
            list.push(Some(e));
        }
        let dims: &[usize] = if dims.is_null() || ndims == 0 { &[] } else { std::slice::from_raw_parts(dims, ndims) };
        let lit = array::literal(&list, dims).map_err(|e| Error::interface(format!("array literal: {}", e.0)))?;
        // UTF-8 elements between ASCII punctuation: UTF-8 without NUL.
        Ok(c_string(text::utf8(&lit).ok_or_else(|| Error::interface("array literal: not UTF-8"))?).into_raw())
    })
}
