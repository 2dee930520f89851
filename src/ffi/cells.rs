//! `pgsess_results_cells`: the cells of many rows in one call, for bindings (Go through cgo,
//! Ruby through its FFI) whose every call into the library has a fixed cost.

use std::ffi::c_char;
use std::ptr::null;

use super::results::pgsess_results;
use super::{arg, call, NO_ERR};
use crate::error::Error;

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
        Ok(r.set.for_each_cell_in_rows(first_row, max_rows, |i, v| {
            *values.add(i) = v.map_or(null(), |v| v.as_ptr().cast());
            if !lengths.is_null() {
                *lengths.add(i) = v.map_or(0, |v| v.len() - 1);
            }
        }))
    })
}
