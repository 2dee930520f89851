//! `pgsess_results_cells`: the cells of many rows in one call, for bindings (Go through cgo,
//! Ruby through its FFI) whose every call into the library has a fixed cost.

use std::ffi::c_char;
use std::ptr::null;

use super::results::pgsess_results;
use super::{arg, call, NO_ERR};
use crate::error::Error;

/// Store cell `i` (its value with its NUL, `None` for SQL NULL) for C: its pointer in
/// `values[i]` (NULL for SQL NULL) and, when `lengths` is not NULL, its length without the NUL
/// in `lengths[i]` (0 for SQL NULL).
///
/// # Safety
/// `values` and `lengths` (when not NULL) have room for index `i`.
#[inline(always)]
unsafe fn put_cell(values: *mut *const c_char, lengths: *mut usize, i: usize, v: Option<&[u8]>) {
    *values.add(i) = v.map_or(null(), |v| v.as_ptr().cast());
    if !lengths.is_null() {
        *lengths.add(i) = v.map_or(0, |v| v.len() - 1);
    }
}

/// Fill the value pointers (NULL for SQL NULL) and, when `lengths` is not NULL, their lengths of
/// up to `max_rows` rows starting at row `first_row`, row after row: the cell of row
/// `first_row + r` and column `c` goes to index `r * ncols + c`, where `ncols` is
/// `pgsess_results_ncols`. One call per block of rows instead of one per row
/// (`pgsess_results_row`) or per cell. Returns how many rows were filled: `max_rows`, or fewer at
/// the end of the results; 0 for `first_row` out of range, NULL `results` or NULL `values`, or
/// when `max_rows * ncols` does not fit a `size_t`. A result without columns fills nothing and
/// still counts its rows. The pointers are owned by the results and valid until
/// `pgsess_results_free`; each value is followed by a NUL byte (not counted in its length). Any
/// thread, as for every reader of a results handle.
///
/// # Safety
/// `results` NULL or live; `values` NULL or room for `max_rows * ncols` pointers; `lengths`
/// NULL or room for `max_rows * ncols` lengths.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_cells(
    results: *const pgsess_results,
    first_row: usize,
    max_rows: usize,
    values: *mut *const c_char,
    lengths: *mut usize,
) -> usize {
    call(NO_ERR, || {
        let r = arg(results, "results")?;
        if values.is_null() {
            return Err(Error::interface("values is NULL"));
        }
        if max_rows.checked_mul(r.set.columns().len()).is_none() {
            return Err(Error::interface("max_rows * ncols does not fit a size_t"));
        }
        Ok(r.set.for_each_cell_in_rows(first_row, max_rows, |i, v| put_cell(values, lengths, i, v)))
    })
}

/// Fill the value pointers (NULL for SQL NULL) and, when `lengths` is not NULL, the lengths of
/// column `col` of up to `max_rows` rows starting at row `first_row`: row `first_row + r` goes
/// to index `r`. `pgsess_results_cells` for one column, as a columnar reader takes a text or
/// bytea column beside the typed ones (`pgsess_results_get_int64_column` and the others).
/// Returns how many rows were filled: `max_rows`, or fewer at the end of the results; 0 for
/// `first_row` or `col` out of range, NULL `results` or NULL `values`. The pointers are owned by
/// the results and valid until `pgsess_results_free`; each value is followed by a NUL byte (not
/// counted in its length). Any thread, as for every reader of a results handle.
///
/// # Safety
/// `results` NULL or live; `values` NULL or room for `max_rows` pointers; `lengths` NULL or
/// room for `max_rows` lengths.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_cells(
    results: *const pgsess_results,
    col: usize,
    first_row: usize,
    max_rows: usize,
    values: *mut *const c_char,
    lengths: *mut usize,
) -> usize {
    call(NO_ERR, || {
        let r = arg(results, "results")?;
        if values.is_null() {
            return Err(Error::interface("values is NULL"));
        }
        let rows = max_rows.min(r.set.nrows().saturating_sub(first_row));
        Ok(r.set.for_each_in_column(col, first_row, rows, |i, v| {
            put_cell(values, lengths, i, v);
            Some(())
        }))
    })
}

/// Copy the bytes of up to `max_rows` rows' cells, from row `first_row`, back to back into
/// `buf` (`buf_size` bytes, without NUL terminators), each cell's length into `lengths` in the
/// order of `pgsess_results_cells` (`SIZE_MAX` for SQL NULL), whole rows only: for a binding
/// that builds its strings from one copy of a block (a Ruby or Python string per cell sliced
/// from one buffer) instead of one pointer object per cell. `lengths` has room for `max_rows *
/// ncols` lengths. Returns how many rows were copied and sets `*bytes` to the bytes written;
/// when not even the first row fits in `buf`, returns 0 and sets `*bytes` to the size that row
/// needs (grow `buf` and call again). 0 with `*bytes` 0 for `first_row` out of range, NULL
/// `results`, `buf`, `lengths` or `bytes`, or when `max_rows * ncols` does not fit a `size_t`.
/// Any thread, as for every reader of a results handle.
///
/// # Safety
/// `results` NULL or live; `buf` NULL or `buf_size` writable bytes; `lengths` NULL or room for
/// `max_rows * ncols` lengths; `bytes` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_copy_cells(
    results: *const pgsess_results,
    first_row: usize,
    max_rows: usize,
    buf: *mut c_char,
    buf_size: usize,
    lengths: *mut usize,
    bytes: *mut usize,
) -> usize {
    call(NO_ERR, || {
        if !bytes.is_null() {
            *bytes = 0;
        }
        let r = arg(results, "results")?;
        if buf.is_null() || lengths.is_null() || bytes.is_null() {
            return Err(Error::interface("buf, lengths or bytes is NULL"));
        }
        let cells = max_rows
            .checked_mul(r.set.columns().len())
            .filter(|&n| n <= isize::MAX as usize / std::mem::size_of::<usize>() && buf_size <= isize::MAX as usize)
            .ok_or_else(|| Error::interface("max_rows * ncols, or buf_size, is too large"))?;
        let buf = std::slice::from_raw_parts_mut(buf.cast::<std::mem::MaybeUninit<u8>>(), buf_size);
        let lengths = std::slice::from_raw_parts_mut(lengths, cells);
        let (rows, used) = r.set.copy_cells(first_row, max_rows, buf, lengths);
        *bytes = used;
        Ok(rows)
    })
}
