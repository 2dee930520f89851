//! `pgsess_results`: the buffered rows of one statement.

use std::ffi::c_char;
use std::ptr::null;

use super::{arg, c_string, call, call_or, pgsess_error, read_arg, take, Handle, NO_ERR};
use crate::error::{Code, Error};
use crate::results::Results;
use crate::rows::typed::{Form, FormOf, GetError};

/// The buffered result of one statement. Returned by `pgsess_query`, `pgsess_query_params`,
/// `pgsess_query_binary`, `pgsess_callproc` and `pgsess_tx_query`; owned by the caller and freed with `pgsess_results_free`, which returns the
/// pooled connection it holds. Read-only: any number of threads may read one results handle at
/// once. Every pointer it returns stays valid until it is freed.
//
// In Rust, an opaque name for `Results`, never instantiated: a handle is a pointer to a
// `Results` (as rustls-ffi's handles point to their Rust types), so the results a statement built
// on the heap become the handle without being copied.
#[allow(non_camel_case_types)]
pub struct pgsess_results {
    _opaque: [u8; 0],
}

impl Handle for pgsess_results {
    type Rust = Results;
}

/// Run a typed getter and store its value in `*out` only on success.
///
/// # Safety
/// `results` NULL or live; `out` NULL or writable.
unsafe fn typed<T: Copy>(
    results: *const pgsess_results,
    out: *mut T,
    read: impl FnOnce(&Results) -> Result<T, GetError>,
) -> Code {
    if out.is_null() {
        return out_is_null();
    }
    read_arg(results, "results", |r| match read(r) {
        Ok(v) => {
            // SAFETY: not NULL (checked), and writable by the caller's promise.
            unsafe { *out = v };
            Code::PGSESS_OK
        }
        Err(e) => crate::results::getter_code(e),
    })
}

/// A typed getter's code for a NULL `out`.
#[cold]
#[inline(never)]
fn out_is_null() -> Code {
    Error::interface("out is NULL").code
}

/// Free results and return the pooled connection they hold (waking a caller waiting for one).
/// NULL is ignored. Each handle once; any thread.
///
/// # Safety
/// `results` NULL or a live results handle.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_free(results: *mut pgsess_results) {
    call(NO_ERR, || {
        drop(take(results));
        Ok(())
    })
}

/// Number of rows (0 for a command without rows, or NULL).
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_nrows(results: *const pgsess_results) -> usize {
    read_arg(results, "results", |r| r.set.nrows())
}

/// Number of columns (0 for a command without rows, or NULL).
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_ncols(results: *const pgsess_results) -> usize {
    read_arg(results, "results", |r| r.set.ncols())
}

/// Name of column `col`, or NULL when out of range.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_name(results: *const pgsess_results, col: usize) -> *const c_char {
    read_arg(results, "results", |r| r.set.columns().get(col).map_or(null(), |c| c.name.as_ptr()))
}

/// Type OID of column `col` (as `PQftype`: 23 int4, 25 text, ...), or 0 when out of range.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_type(results: *const pgsess_results, col: usize) -> u32 {
    read_arg(results, "results", |r| r.set.columns().get(col).map_or(0, |c| c.type_oid))
}

/// The type modifier of column `col`, as `PQfmod`: varchar(n) and char(n) give n + 4,
/// numeric(p,s) gives ((p << 16) | s) + 4, timestamp(p), time(p) and interval's precision p; -1
/// when the type has none, for NULL `results` or `col` out of range. Any thread.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_typmod(results: *const pgsess_results, col: usize) -> i32 {
    call_or(|_| -1, NO_ERR, || Ok(arg(results, "results")?.set.columns().get(col).map_or(-1, |c| c.type_modifier)))
}

/// The size of column `col`'s type, as `PQfsize`: pg_type.typlen (4 for int4), negative for
/// variable-length types (-1 text, -2 cstring); 0 for NULL `results` or `col` out of range.
/// Any thread.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_size(results: *const pgsess_results, col: usize) -> i32 {
    read_arg(results, "results", |r| r.set.columns().get(col).map_or(0, |c| i32::from(c.type_size)))
}

/// The OID of the table column `col` comes from, as `PQftable`: 0 when it is not a plain
/// column of a table (an expression, a view's computed column), for NULL `results` or `col`
/// out of range. Any thread.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_table(results: *const pgsess_results, col: usize) -> u32 {
    read_arg(results, "results", |r| r.set.columns().get(col).map_or(0, |c| c.table_oid))
}

/// The attribute number of column `col` in the table `pgsess_results_column_table` names, as
/// `PQftablecol` (1 for its first column); 0 when there is none, for NULL `results` or `col`
/// out of range. Any thread.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_table_column(results: *const pgsess_results, col: usize) -> i32 {
    read_arg(results, "results", |r| r.set.columns().get(col).map_or(0, |c| i32::from(c.table_column)))
}

/// The format of column `col`'s values, as `PQfformat`: 0 text (the server's text output), 1
/// binary (the type's binary send form: every column of `pgsess_query_binary`). -1 for NULL
/// `results` or `col` out of range. Any thread.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_format(results: *const pgsess_results, col: usize) -> i32 {
    call_or(|_| -1, NO_ERR, || Ok(arg(results, "results")?.set.columns().get(col).map_or(-1, |c| i32::from(c.format))))
}

/// Index of the first column named exactly `name` (case-sensitive), or -1.
///
/// # Safety
/// `results` NULL or live; `name` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_column_index(results: *const pgsess_results, name: *const c_char) -> i64 {
    call_or(
        |_| -1,
        NO_ERR,
        || {
            let r = arg(results, "results")?;
            let name = name.as_ref().ok_or_else(|| Error::interface("name is NULL"))?;
            Ok(r.set.column_index(std::ffi::CStr::from_ptr(name).to_bytes()).map_or(-1, |i| i as i64))
        },
    )
}

/// The value at (`row`, `col`), exactly as libpq's `PQgetvalue` gives it: the server's text
/// output, NUL-terminated; in a binary column (`pgsess_results_column_format` 1) the server's
/// binary bytes (`pgsess_results_value_length` of them, which may include NULs), followed by a
/// NUL. NULL for SQL NULL and for an out-of-range index. Owned by the results.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_value(results: *const pgsess_results, row: usize, col: usize) -> *const c_char {
    read_arg(results, "results", |r| r.set.value_with_nul(row, col).map_or(null(), |v| v.as_ptr().cast()))
}

/// Length in bytes of the value at (`row`, `col`), without the NUL (`PQgetlength`; in a binary
/// column the length of its binary form); 0 for SQL NULL or out of range.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_value_length(results: *const pgsess_results, row: usize, col: usize) -> usize {
    read_arg(results, "results", |r| r.set.value(row, col).map_or(0, <[u8]>::len))
}

/// Whether the value at (`row`, `col`) is SQL NULL; false when out of range.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_is_null(results: *const pgsess_results, row: usize, col: usize) -> bool {
    read_arg(results, "results", |r| r.set.is_null(row, col))
}

/// Rows affected, as libpq's `PQcmdTuples` reads the command tag: INSERT, UPDATE, DELETE, MERGE,
/// SELECT, MOVE, FETCH and COPY give their count; any other command 0. A count that does not fit
/// 64 bits (only a broken server sends one) is `UINT64_MAX`: `pgsess_results_rows_affected_text`
/// has its digits.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_rows_affected(results: *const pgsess_results) -> u64 {
    read_arg(results, "results", |r| r.set.rows_affected())
}

/// The backend process id of the connection that ran the statement; 0 for NULL.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_backend_pid(results: *const pgsess_results) -> i32 {
    read_arg(results, "results", |r| r.set.backend_pid)
}

/// Number of notices (NOTICE, WARNING, ...) the statement raised and the results keep: the
/// last 1000 at most, and at most 1 MiB of their text (the newest is always kept); those
/// dropped are counted by `pgsess_results_notices_dropped`.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_notice_count(results: *const pgsess_results) -> usize {
    read_arg(results, "results", |r| r.set.notices.len())
}

/// Notice `index` in libpq's form (`"NOTICE:  text\n"`), or NULL when out of range. Owned by the
/// results.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_notice(results: *const pgsess_results, index: usize) -> *const c_char {
    read_arg(results, "results", |r| r.set.notices.get(index).map_or(null(), |n| n.as_ptr()))
}

/// The command tag (sprockets.clients.postgresql's `status`): `"SELECT 3"`, `"INSERT 0 2"`, `"CREATE TABLE"`; empty
/// when there is none. Owned by the results; NULL for NULL.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_status(results: *const pgsess_results) -> *const c_char {
    read_arg(results, "results", |r| r.set.command_tag.as_c_str().as_ptr())
}

/// The SQL text that produced the results (sprockets.clients.postgresql's `query`). Owned by the results; NULL for NULL.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_query(results: *const pgsess_results) -> *const c_char {
    read_arg(results, "results", |r| r.sql_c().as_ptr())
}

/// What `pgsess_results_summary` gives in one call: the values of `pgsess_results_nrows`,
/// `_ncols`, `_rows_affected`, `_count`, `_backend_pid`, `_notice_count` and `_status`. The
/// status string is owned by the results.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct pgsess_results_info {
    /// `pgsess_results_nrows`.
    pub nrows: usize,
    /// `pgsess_results_ncols`.
    pub ncols: usize,
    /// `pgsess_results_rows_affected`.
    pub rows_affected: u64,
    /// `pgsess_results_count`.
    pub count: i64,
    /// `pgsess_results_backend_pid`.
    pub backend_pid: i32,
    /// `pgsess_results_notice_count`.
    pub notice_count: usize,
    /// `pgsess_results_status`, owned by the results.
    pub status: *const c_char,
}

/// One column as `pgsess_results_summary` describes it: the values of
/// `pgsess_results_column_name` (owned by the results), `_column_type`, `_column_typmod` and
/// `_column_format`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct pgsess_column_info {
    /// `pgsess_results_column_name`, owned by the results.
    pub name: *const c_char,
    /// `pgsess_results_column_type`.
    pub type_oid: u32,
    /// `pgsess_results_column_typmod`.
    pub typmod: i32,
    /// `pgsess_results_column_format`.
    pub format: i32,
}

/// Everything a binding reads about a result before its rows, in one call instead of one per
/// value (a foreign call costs more than the read: 100-200 ns from Go): the summary into
/// `*summary`, and the first `min(ncols, columns_len)` columns into `columns` (NULL when
/// `columns_len` is 0). `PGSESS_INTERFACE_ERROR` when `results` is not a live handle or
/// `summary` is NULL. Any thread, as the other read-only calls.
///
/// # Safety
/// `results` NULL or live; `summary` NULL or writable; `columns` NULL or `columns_len` writable
/// elements.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_summary(
    results: *const pgsess_results,
    summary: *mut pgsess_results_info,
    columns: *mut pgsess_column_info,
    columns_len: usize,
) -> Code {
    call(NO_ERR, || {
        let r = arg(results, "results")?;
        let out = summary.as_mut().ok_or_else(|| Error::interface("summary is NULL"))?;
        let set = &r.set;
        *out = pgsess_results_info {
            nrows: set.nrows(),
            ncols: set.ncols(),
            rows_affected: set.rows_affected(),
            count: set.count(),
            backend_pid: set.backend_pid,
            notice_count: set.notices.len(),
            status: set.command_tag.as_c_str().as_ptr(),
        };
        if columns_len > 0 {
            if columns.is_null() {
                return Err(Error::interface("columns is NULL"));
            }
            let out = std::slice::from_raw_parts_mut(columns, columns_len);
            for (o, c) in out.iter_mut().zip(set.columns().iter()) {
                *o = pgsess_column_info {
                    name: c.name.as_ptr(),
                    type_oid: c.type_oid,
                    typmod: c.type_modifier,
                    format: i32::from(c.format),
                };
            }
        }
        Ok(Code::PGSESS_OK)
    })
}

/// sprockets.clients.postgresql's `count()` (psycopg2's `rowcount`): rows returned or affected, -1 for commands
/// without a count (DDL, SET, BEGIN, DO). -1 for NULL.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_count(results: *const pgsess_results) -> i64 {
    call_or(|_| -1, NO_ERR, || Ok(arg(results, "results")?.set.count()))
}

/// Fill the row's value pointers (NULL for SQL NULL) and, when `lengths` is not NULL, their
/// lengths, for the first `min(n, ncols)` columns: one call per row instead of one per cell.
/// Returns how many columns were filled; 0 for an out-of-range row, NULL `results` or NULL
/// `values`. The pointers are owned by the results.
///
/// # Safety
/// `results` NULL or live; `values` NULL or room for `n` pointers; `lengths` NULL or room for `n`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_row(
    results: *const pgsess_results,
    row: usize,
    values: *mut *const c_char,
    lengths: *mut usize,
    n: usize,
) -> usize {
    call(NO_ERR, || {
        let r = arg(results, "results")?;
        if values.is_null() {
            return Err(Error::interface("values is NULL"));
        }
        Ok(r.set.for_each_in_row(row, n, |col, v| {
            *values.add(col) = v.map_or(null(), |v| v.as_ptr().cast());
            if !lengths.is_null() {
                *lengths.add(col) = v.map_or(0, |v| v.len() - 1);
            }
        }))
    })
}

/// The value as a 64-bit integer, for int2, int4, int8 and oid columns. Returns `PGSESS_OK` and
/// sets `*out`, or leaves `*out` untouched and returns `PGSESS_NULL_VALUE`,
/// `PGSESS_TYPE_MISMATCH` (another type), `PGSESS_OUT_OF_RANGE` (bad index) or
/// `PGSESS_INTERFACE_ERROR` (NULL `results` or `out`).
///
/// Every typed getter reads text and binary columns (`pgsess_query_binary`) alike, by the
/// column's format, and gives the same value for both; a binary value of the wrong length for
/// its type is `PGSESS_TYPE_MISMATCH`, never a misread. Any thread.
///
/// # Safety
/// `results` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_int64(
    results: *const pgsess_results,
    row: usize,
    col: usize,
    out: *mut i64,
) -> Code {
    typed(results, out, |r| r.set.get_int64(row, col))
}

/// The value as a double, for float4, float8 and numeric columns (numeric rounded to the nearest
/// double; NaN and infinities as such; a numeric beyond the double range is
/// `PGSESS_VALUE_OVERFLOW`). Codes and `*out` as for `pgsess_results_get_int64`. The text is
/// exact with the default `extra_float_digits`; lower settings round on the server. Binary
/// values are exact under any setting; a float4 gives the double nearest its shortest decimal
/// (`0.1::float4` is 0.1), as its text does.
///
/// # Safety
/// `results` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_double(
    results: *const pgsess_results,
    row: usize,
    col: usize,
    out: *mut f64,
) -> Code {
    typed(results, out, |r| r.set.get_double(row, col))
}

/// The value of a bool column. Codes and `*out` as for `pgsess_results_get_int64`.
///
/// # Safety
/// `results` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_bool(
    results: *const pgsess_results,
    row: usize,
    col: usize,
    out: *mut bool,
) -> Code {
    typed(results, out, |r| r.set.get_bool(row, col))
}

/// Microseconds since 1970-01-01 00:00:00 UTC for a timestamptz column; since that wall-clock
/// time for timestamp, and to midnight for date; since midnight for time. `infinity` and
/// `-infinity` are INT64_MAX and INT64_MIN (PostgreSQL's own representation); a finite value
/// past the 64-bit range (after the year 294246) is `PGSESS_VALUE_OVERFLOW`. Reads the ISO text
/// form: under another DateStyle a text date or timestamp returns `PGSESS_NOT_SUPPORTED_ERROR`
/// (binary values read under any DateStyle). Other codes and `*out` as for
/// `pgsess_results_get_int64`.
///
/// # Safety
/// `results` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_epoch_micros(
    results: *const pgsess_results,
    row: usize,
    col: usize,
    out: *mut i64,
) -> Code {
    typed(results, out, |r| r.set.get_epoch_micros(row, col))
}

/// The value as a 32-bit integer, for int2 and int4 columns, and int8 and oid values that fit
/// (others are `PGSESS_VALUE_OVERFLOW`). Codes and `*out` as for `pgsess_results_get_int64`.
///
/// # Safety
/// `results` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_int32(
    results: *const pgsess_results,
    row: usize,
    col: usize,
    out: *mut i32,
) -> Code {
    typed(results, out, |r| r.set.get_int32(row, col))
}

/// The 16 bytes of a uuid column's value (in network order, as `uuid_send` writes them), from
/// its text or its binary form, into `out[0..16]`. Codes and `out` as for
/// `pgsess_results_get_int64` (`out` is left untouched on failure).
///
/// # Safety
/// `results` NULL or live; `out` NULL or 16 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_uuid(
    results: *const pgsess_results,
    row: usize,
    col: usize,
    out: *mut u8,
) -> Code {
    typed(results, out.cast::<[u8; 16]>(), |r| r.set.get_uuid(row, col))
}

/// Column `col` of `count` rows from row `first`, each read as `pgsess_results_get_int64`
/// reads it, into `out[0..count]`: one call for a block of rows instead of one per value (a
/// columnar reader's, or a binding's scan of many rows). `nulls` NULL or `count` writable
/// bools: a SQL NULL sets `nulls[i]` true and `out[i]` 0, and without `nulls` is
/// `PGSESS_NULL_VALUE`. Returns `PGSESS_OK` when every row was read; otherwise the code the
/// per-value getter gives for the first row that failed, with `out` (and `nulls`) written for
/// the rows before it and `*read` (when not NULL) their number. Rows past the end (`first +
/// count` over `pgsess_results_nrows`) or a bad column are `PGSESS_OUT_OF_RANGE` before any row
/// is read. `count` 0 reads nothing and is `PGSESS_OK`. Any thread.
///
/// # Safety
/// `results` NULL or live; `out` NULL or `count` writable elements; `nulls` NULL or `count`
/// writable bools; `read` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_int64_column(
    results: *const pgsess_results,
    col: usize,
    first: usize,
    count: usize,
    out: *mut i64,
    nulls: *mut bool,
    read: *mut usize,
) -> Code {
    typed_column(results, col, first, count, out, nulls, read, crate::rows::ResultSet::int64_form)
}

/// `pgsess_results_get_int64_column` for `pgsess_results_get_double`'s values.
///
/// # Safety
/// As for `pgsess_results_get_int64_column`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_double_column(
    results: *const pgsess_results,
    col: usize,
    first: usize,
    count: usize,
    out: *mut f64,
    nulls: *mut bool,
    read: *mut usize,
) -> Code {
    typed_column(results, col, first, count, out, nulls, read, crate::rows::ResultSet::double_form)
}

/// `pgsess_results_get_int64_column` for `pgsess_results_get_bool`'s values (false for NULL).
///
/// # Safety
/// As for `pgsess_results_get_int64_column`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_bool_column(
    results: *const pgsess_results,
    col: usize,
    first: usize,
    count: usize,
    out: *mut bool,
    nulls: *mut bool,
    read: *mut usize,
) -> Code {
    typed_column(results, col, first, count, out, nulls, read, crate::rows::ResultSet::bool_form)
}

/// `pgsess_results_get_int64_column` for `pgsess_results_get_epoch_micros`' values.
///
/// # Safety
/// As for `pgsess_results_get_int64_column`.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_epoch_micros_column(
    results: *const pgsess_results,
    col: usize,
    first: usize,
    count: usize,
    out: *mut i64,
    nulls: *mut bool,
    read: *mut usize,
) -> Code {
    typed_column(results, col, first, count, out, nulls, read, crate::rows::ResultSet::epoch_micros_form)
}

/// The `pgsess_results_get_*_column` calls: the arguments checked, then `ResultSet::get_column`.
///
/// # Safety
/// As for `pgsess_results_get_int64_column`.
#[allow(clippy::too_many_arguments)]
unsafe fn typed_column<F: Form>(
    results: *const pgsess_results,
    col: usize,
    first: usize,
    count: usize,
    out: *mut F::Value,
    nulls: *mut bool,
    read: *mut usize,
    form: FormOf<F>,
) -> Code {
    call(NO_ERR, || {
        if !read.is_null() {
            *read = 0;
        }
        let r = arg(results, "results")?;
        if count == 0 {
            return Ok(Code::PGSESS_OK);
        }
        if out.is_null() {
            return Err(Error::interface("out is NULL"));
        }
        // Checked before the slices are made: `count` is then at most the rows held in memory.
        if !r.set.holds_block(col, first, count) {
            return Ok(Code::PGSESS_OUT_OF_RANGE);
        }
        // SAFETY: the caller gives `count` writable elements at `out` (and at `nulls`).
        let out = std::slice::from_raw_parts_mut(out, count);
        let nulls = (!nulls.is_null()).then(|| std::slice::from_raw_parts_mut(nulls, count));
        let (done, outcome) = r.set.get_column(col, first, out, nulls, form);
        if !read.is_null() {
            *read = done;
        }
        Ok(outcome.map_or_else(crate::results::getter_code, |()| Code::PGSESS_OK))
    })
}

/// The value as the server's text, for a column of either format: sets `*out` to a
/// NUL-terminated string owned by the results (valid until `pgsess_results_free`) and returns
/// `PGSESS_OK`.
///
/// A text column's value is returned as it is (the same pointer as `pgsess_results_value`). A
/// binary value is rendered as the text the server prints for it, where that text does not
/// depend on session settings: int2/int4/int8, oid, xid, cid, bool (`t`/`f`), text, varchar,
/// bpchar, name, json (the same bytes), jsonb and jsonpath (without their version byte), "char",
/// uuid, numeric (exact, to its scale), float4/float8 (the shortest text that reads back as the
/// value, as PostgreSQL 12+ prints it with `extra_float_digits` > 0, the default), bytea (hex,
/// `\x...`, as printed with `bytea_output = hex`, the default: the server does not report
/// `bytea_output` or `extra_float_digits`, so a session that changed them prints other text
/// than this), time and timetz; date and timestamp only under DateStyle ISO (the default),
/// timestamptz only under DateStyle ISO and a TimeZone at offset zero (UTC, GMT, Etc/UTC, ...);
/// ±infinity always. Any other type, or those under other settings, is refused with
/// `PGSESS_NOT_SUPPORTED_ERROR` and `*err` saying why (use `pgsess_query_params` for the server's
/// own text there). SQL NULL is `PGSESS_NULL_VALUE`; a malformed binary value
/// `PGSESS_TYPE_MISMATCH`; a bad index `PGSESS_OUT_OF_RANGE`; NULL `results` or `out`
/// `PGSESS_INTERFACE_ERROR`. On failure `*out` is untouched and `*err` (when `err` is not NULL)
/// is set to an error with the returned code, for the caller to free. Any thread.
///
/// # Safety
/// `results` NULL or live; `out` NULL or writable; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_text(
    results: *const pgsess_results,
    row: usize,
    col: usize,
    out: *mut *const c_char,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        let r = arg(results, "results")?;
        let out = out.as_mut().ok_or_else(|| Error::interface("out is NULL"))?;
        let text = r.text(row, col).map_err(|e| Error::new(crate::results::getter_code(e.error), e.message))?;
        *out = text.as_ptr().cast();
        Ok(Code::PGSESS_OK)
    })
}

/// A bytea value decoded to its bytes (any other type: its text bytes, without the NUL; in a
/// binary column every type's binary bytes as the server sent them, so a bytea is its bytes and
/// a uuid its 16 bytes). Sets `*len` (when not NULL) and returns a pointer owned by the results;
/// returns NULL and leaves `*len` untouched for SQL NULL, an out-of-range index or NULL
/// `results`.
///
/// # Safety
/// `results` NULL or live; `len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_get_bytes(
    results: *const pgsess_results,
    row: usize,
    col: usize,
    len: *mut usize,
) -> *const u8 {
    call(NO_ERR, || match arg(results, "results")?.bytes(row, col) {
        Ok(bytes) => {
            if !len.is_null() {
                *len = bytes.len();
            }
            Ok(bytes.as_ptr())
        }
        Err(_) => Ok(null()),
    })
}

/// The whole result as JSON, sprockets.clients.postgresql's RealDictCursor rows: `[{"col": value, ...}, ...]`.
/// Numbers as numbers (NaN and infinities as strings), bool as true/false, json and jsonb
/// embedded, NULL as null, every other type as a string; a duplicated column name keeps its
/// first position and the last value. A new string freed with `pgsess_string_free`; NULL for NULL.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_json(results: *const pgsess_results) -> *mut c_char {
    call(NO_ERR, || Ok(c_string(&arg(results, "results")?.set.to_json()).into_raw()))
}

/// sprockets.clients.postgresql's `items()`: the same as `pgsess_results_json`.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_items(results: *const pgsess_results) -> *mut c_char {
    pgsess_results_json(results)
}

/// One row as a JSON object (see `pgsess_results_json`), or NULL when the row is out of range.
/// A new string freed with `pgsess_string_free`.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_row_json(results: *const pgsess_results, row: usize) -> *mut c_char {
    call(NO_ERR, || {
        Ok(arg(results, "results")?.set.row_json(row).map_or(std::ptr::null_mut(), |j| c_string(&j).into_raw()))
    })
}

/// sprockets.clients.postgresql's `as_dict()`: the only row as a JSON object. A result with no row or with more than
/// one is `PGSESS_INTERFACE_ERROR` saying how many rows it has. A new string freed with
/// `pgsess_string_free`, or NULL with `*err` set.
///
/// # Safety
/// `results` NULL or live; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_as_dict(
    results: *const pgsess_results,
    err: *mut *mut pgsess_error,
) -> *mut c_char {
    call(err, || Ok(c_string(&arg(results, "results")?.as_dict()?).into_raw()))
}

/// How many notices the statement raised beyond those the results keep (see
/// `pgsess_results_notice_count`): the oldest are dropped first, so that a server sending
/// notices without end (a `RAISE NOTICE` in a long loop) costs bounded memory. A notice callback
/// (`pgsess_options_set_notice_callback`) still receives every one. 0 for NULL. Any thread.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_notices_dropped(results: *const pgsess_results) -> u64 {
    read_arg(results, "results", |r| r.set.notices_dropped)
}

/// The row count of the command tag as text, exactly as libpq's `PQcmdTuples` gives it: the
/// digits of INSERT, UPDATE, DELETE, MERGE, SELECT, MOVE, FETCH and COPY tags (`"3"`), whatever
/// their number (so a count too large for `pgsess_results_rows_affected` is still told
/// exactly); `""` for any other command, or a tag whose count is not digits. Owned by the
/// results, valid until they are freed; NULL for NULL. Any thread.
///
/// # Safety
/// `results` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_results_rows_affected_text(results: *const pgsess_results) -> *const c_char {
    read_arg(results, "results", |r| r.set.rows_affected_digits().as_ptr())
}
