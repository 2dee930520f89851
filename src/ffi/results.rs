//! `pgsess_results`: the buffered rows of one statement.

use std::ffi::c_char;
use std::ptr::null;

use super::guard;
use crate::results::Results;

/// The buffered result of one statement. Returned by `pgsess_query`, `pgsess_callproc` and
/// `pgsess_tx_query`; owned by the caller and freed with `pgsess_results_free`, which returns the
/// pooled connection it holds. Read-only: any number of threads may read one results handle at
/// once. Every pointer it returns stays valid until it is freed.
#[allow(non_camel_case_types)]
pub struct pgsess_results {
    inner: Results,
}

impl pgsess_results {
    pub(crate) fn into_raw(inner: Results) -> *mut pgsess_results {
        Box::into_raw(Box::new(pgsess_results { inner }))
    }
}

/// # Safety
/// `r` is NULL or a live results handle.
unsafe fn get<'a>(r: *const pgsess_results) -> Option<&'a Results> {
    r.as_ref().map(|r| &r.inner)
}

/// Free results and return the pooled connection they hold (waking a caller waiting for one).
/// NULL is ignored. Each handle once; any thread.
///
/// # Safety
/// `results` NULL or a live results handle.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_free(results: *mut pgsess_results) {
    guard((), || {
        if !results.is_null() {
            drop(Box::from_raw(results));
        }
    })
}

/// Number of rows (0 for a command without rows, or NULL).
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_nrows(results: *const pgsess_results) -> usize {
    guard(0, || get(results).map_or(0, |r| r.set.nrows()))
}

/// Number of columns (0 for a command without rows, or NULL).
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_ncols(results: *const pgsess_results) -> usize {
    guard(0, || get(results).map_or(0, |r| r.set.ncols()))
}

/// Name of column `col`, or NULL when out of range.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_name(results: *const pgsess_results, col: usize) -> *const c_char {
    guard(null(), || get(results).and_then(|r| r.set.columns.get(col)).map_or(null(), |c| c.name.as_ptr()))
}

/// Type OID of column `col` (as `PQftype`: 23 int4, 25 text, ...), or 0 when out of range.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_type(results: *const pgsess_results, col: usize) -> u32 {
    guard(0, || get(results).and_then(|r| r.set.columns.get(col)).map_or(0, |c| c.type_oid))
}

/// Index of the first column named exactly `name` (case-sensitive), or -1.
///
/// # Safety
/// `results` NULL or live; `name` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_index(results: *const pgsess_results, name: *const c_char) -> i64 {
    guard(-1, || {
        if name.is_null() {
            return -1;
        }
        let name = std::ffi::CStr::from_ptr(name).to_bytes();
        get(results).and_then(|r| r.set.column_index(name)).map_or(-1, |i| i as i64)
    })
}

/// The value at (`row`, `col`) as NUL-terminated text, exactly as libpq's `PQgetvalue` gives it
/// (the server's text output). NULL for SQL NULL and for an out-of-range index. Owned by the
/// results.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_value(results: *const pgsess_results, row: usize, col: usize) -> *const c_char {
    guard(null(), || get(results).and_then(|r| r.set.value_with_nul(row, col)).map_or(null(), |v| v.as_ptr().cast()))
}

/// Length in bytes of the value at (`row`, `col`), without the NUL; 0 for SQL NULL or out of range.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_value_length(results: *const pgsess_results, row: usize, col: usize) -> usize {
    guard(0, || get(results).and_then(|r| r.set.value(row, col)).map_or(0, <[u8]>::len))
}

/// Whether the value at (`row`, `col`) is SQL NULL; false when out of range.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_is_null(results: *const pgsess_results, row: usize, col: usize) -> bool {
    guard(false, || get(results).is_some_and(|r| r.set.is_null(row, col)))
}

/// Rows affected, as libpq's `PQcmdTuples` reads the command tag: INSERT, UPDATE, DELETE, MERGE,
/// SELECT, MOVE, FETCH and COPY give their count; any other command 0.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_rows_affected(results: *const pgsess_results) -> u64 {
    guard(0, || get(results).map_or(0, |r| r.set.rows_affected()))
}

/// The backend process id of the connection that ran the statement; 0 for NULL.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_backend_pid(results: *const pgsess_results) -> i32 {
    guard(0, || get(results).map_or(0, |r| r.set.backend_pid))
}

/// Number of notices (NOTICE, WARNING, ...) the statement raised.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_notice_count(results: *const pgsess_results) -> usize {
    guard(0, || get(results).map_or(0, |r| r.set.notices.len()))
}

/// Notice `index` in libpq's form (`"NOTICE:  text\n"`), or NULL when out of range. Owned by the
/// results.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_notice(results: *const pgsess_results, index: usize) -> *const c_char {
    guard(null(), || get(results).and_then(|r| r.set.notices.get(index)).map_or(null(), |n| n.as_ptr()))
}
