//! `pgsess_copy`: COPY ... FROM STDIN and COPY ... TO STDOUT.

use std::ffi::c_char;
use std::ptr::null;

use super::session::pgsess_session;
use super::{arg, arg_mut, call, call_or, give, pgsess_error, read_arg, str_arg, take, Handle, NO_ERR};
use crate::error::{Code, Error};
use crate::session::Copy;

/// A COPY in progress, from `pgsess_copy_in` or `pgsess_copy_out`. Owned by the caller, freed
/// with `pgsess_copy_free` (always, also after `pgsess_copy_finish`). It holds its connection
/// (a pooled session's checkout, or a pinned or transaction's session's own connection) until
/// the COPY ends: `pgsess_copy_finish`, an error, the end of a COPY TO's data, or
/// `pgsess_copy_free`. While it does, the pool counts it in exhaustion messages and
/// `pgsess_pool_copies_open`, and a pinned or transaction's session refuses other statements
/// with `PGSESS_INTERFACE_ERROR`. One thread at a time. Checked: after `pgsess_copy_free`, any
/// call with it fails with `PGSESS_INTERFACE_ERROR` (`pgsess_copy_is_in` gives false), and a
/// second free does nothing.
#[allow(non_camel_case_types)]
pub struct pgsess_copy {
    _opaque: [u8; 0],
}

impl Handle for pgsess_copy {
    type Rust = Copy;
}

/// Start `COPY ... FROM STDIN` (libpq: `PQexec` returning `PGRES_COPY_IN`). `sql` is one
/// statement, sent on the simple protocol; text, CSV and binary formats all work (the data
/// passes through byte for byte). Write the data with `pgsess_copy_write`, then end it with
/// `pgsess_copy_finish`. Works on pooled sessions (a connection is checked out, waiting up to
/// the checkout timeout), pinned sessions and a transaction's session (`pgsess_tx_session`:
/// the rows are then part of the transaction). A statement that is not a COPY FROM STDIN still
/// runs, and fails here with `PGSESS_INTERFACE_ERROR` (a COPY TO STDOUT: `PGSESS_NOT_SUPPORTED_ERROR`
/// naming `pgsess_copy_out`). Returns a new handle, or NULL with `*err` set. Any thread.
///
/// # Safety
/// `session` NULL or a handle from this library (live or ended); `sql` NULL or NUL-terminated; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_copy_in(
    session: *mut pgsess_session,
    sql: *const c_char,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_copy {
    call(err, || {
        let copy = arg(session, "session")?.copy_in(str_arg(sql, "sql")?)?;
        Ok(give::<pgsess_copy>(Box::new(copy)))
    })
}

/// Add `len` bytes of a COPY FROM's data (libpq: `PQputCopyData`); `data` may be NULL when
/// `len` is 0. Rows may be split across calls in any way. Writes are buffered and sent 64 KiB at
/// a time, so a small write costs no system call. After each send the server's side is
/// checked without waiting: a server error (a bad row) is returned by the first write after it
/// arrived, with its SQLSTATE, message and CONTEXT line (`pgsess_error_field(err, 'W')`, e.g.
/// `COPY t, line 700000, column n: "x"`), and ends the COPY (nothing it wrote is kept; the
/// connection goes back); later writes then fail with `PGSESS_INTERFACE_ERROR`. Returns
/// `PGSESS_OK` or the failure's code.
///
/// # Safety
/// `copy` NULL or a handle from this library (live or ended); `data` NULL or `len` readable bytes;
/// `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_copy_write(
    copy: *mut pgsess_copy,
    data: *const std::ffi::c_void,
    len: usize,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        let copy = arg_mut(copy, "copy")?;
        let data = match (data.is_null(), len) {
            (_, 0) => &[][..],
            (true, _) => return Err(Error::interface(format!("data is NULL but len is {len}"))),
            (false, _) => std::slice::from_raw_parts(data.cast::<u8>(), len),
        };
        copy.write(data)?;
        Ok(Code::PGSESS_OK)
    })
}

/// End a COPY FROM STDIN: the buffered data and CopyDone are sent and the server's outcome read
/// (libpq: `PQputCopyEnd` and `PQgetResult`). For a COPY TO STDOUT, check that it was read to
/// its end (`pgsess_copy_read` returned NULL with `*err` NULL). Returns the rows copied (the
/// `COPY n` tag; the same number again if called twice), or `UINT64_MAX` with `*err` set. The
/// connection goes back to the pool (or to its pinned session) either way; the handle itself
/// must still be freed with `pgsess_copy_free`.
///
/// # Safety
/// `copy` NULL or a handle from this library (live or ended); `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_copy_finish(copy: *mut pgsess_copy, err: *mut *mut pgsess_error) -> u64 {
    call_or(|_| u64::MAX, err, || arg_mut(copy, "copy")?.finish())
}

/// Start `COPY ... TO STDOUT` (libpq: `PQexec` returning `PGRES_COPY_OUT`); read its data with
/// `pgsess_copy_read`. Otherwise as `pgsess_copy_in` (a COPY FROM STDIN given here is aborted
/// and fails with `PGSESS_NOT_SUPPORTED_ERROR` naming `pgsess_copy_in`).
///
/// # Safety
/// `session` NULL or a handle from this library (live or ended); `sql` NULL or NUL-terminated; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_copy_out(
    session: *mut pgsess_session,
    sql: *const c_char,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_copy {
    call(err, || {
        let copy = arg(session, "session")?.copy_out(str_arg(sql, "sql")?)?;
        Ok(give::<pgsess_copy>(Box::new(copy)))
    })
}

/// The next CopyData message of a COPY TO STDOUT (libpq: `PQgetCopyData` with async 0): for text
/// and CSV, one row with its newline; for binary, as the server split it. `*len` is set to its
/// length (0 at the end or on error). The bytes are owned by `copy` and valid until the next call
/// on it; they are not NUL-terminated. Returns NULL at the end (with `*err` left NULL; the
/// connection has gone back; `pgsess_copy_finish` then gives the row count), or NULL with
/// `*err` set on failure (the COPY is over). Unlike `PQgetCopyData`, nothing is to be freed per
/// row: messages come out of a buffer filled 64 KiB or more at a time. A wait for the server
/// here (or in `pgsess_copy_finish`) can be cancelled from another thread with `pgsess_cancel`
/// on the session: the COPY then fails with `PGSESS_QUERY_CANCELED`.
///
/// # Safety
/// `copy` NULL or a handle from this library (live or ended); `len` NULL or writable; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_copy_read(
    copy: *mut pgsess_copy,
    len: *mut usize,
    err: *mut *mut pgsess_error,
) -> *const std::ffi::c_void {
    read_with(copy, len, err, Copy::read)
}

/// The body of `pgsess_copy_read` and `pgsess_copy_read_chunk`: `*len` zeroed first, then set to
/// the length of what `read` gives.
///
/// # Safety
/// As for those two.
unsafe fn read_with(
    copy: *mut pgsess_copy,
    len: *mut usize,
    err: *mut *mut pgsess_error,
    read: impl FnOnce(&mut Copy) -> crate::error::Result<Option<&[u8]>>,
) -> *const std::ffi::c_void {
    if !len.is_null() {
        *len = 0;
    }
    call(err, || {
        if len.is_null() {
            return Err(Error::interface("len is NULL"));
        }
        match read(arg_mut(copy, "copy")?)? {
            Some(data) => {
                *len = data.len();
                Ok(data.as_ptr().cast())
            }
            None => Ok(null()),
        }
    })
}

/// Start a COPY of either direction, as libpq's `PQexec` does (answering `PGRES_COPY_IN` or
/// `PGRES_COPY_OUT`): for a binding that is given SQL it did not write. `pgsess_copy_is_in`
/// then says which the server started; otherwise as `pgsess_copy_in`. A statement that is no
/// COPY FROM STDIN or TO STDOUT still runs, and fails here with `PGSESS_INTERFACE_ERROR`.
///
/// # Safety
/// `session` NULL or a handle from this library (live or ended); `sql` NULL or NUL-terminated; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_copy_start(
    session: *mut pgsess_session,
    sql: *const c_char,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_copy {
    call(err, || {
        let copy = arg(session, "session")?.copy(str_arg(sql, "sql")?)?;
        Ok(give::<pgsess_copy>(Box::new(copy)))
    })
}

/// True for a COPY FROM STDIN (write it), false for a COPY TO STDOUT (read it) and for NULL.
///
/// # Safety
/// `copy` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_copy_is_in(copy: *const pgsess_copy) -> bool {
    read_arg(copy, "copy", |v| v.direction() == crate::conn::CopyDirection::In)
}

/// `pgsess_copy_read`, but every CopyData message the library has buffered at once (waiting for
/// one when none is), their data concatenated into one piece: a COPY's data is one byte stream
/// however the server splits it into messages, so the pieces joined are the same bytes. For
/// bindings that pay per call into C (a Ruby thread giving up its lock, a Go call from a
/// goroutine): typically 64 KiB or more per call instead of one row. Valid until the next call
/// on `copy`; NULL at the end (`*err` left NULL) or on error (`*err` set). Calls may be mixed
/// with `pgsess_copy_read`.
///
/// # Safety
/// `copy` NULL or a handle from this library (live or ended); `len` NULL or writable; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_copy_read_chunk(
    copy: *mut pgsess_copy,
    len: *mut usize,
    err: *mut *mut pgsess_error,
) -> *const std::ffi::c_void {
    read_with(copy, len, err, Copy::read_chunk)
}

/// Abort a COPY FROM STDIN now, with `why` as the reason (libpq: `PQputCopyEnd(conn, why)`;
/// NULL: a default reason): the buffered data is dropped and the server fails the COPY with
/// `COPY from stdin failed: why`, so nothing of it is kept (inside a transaction, the
/// transaction is failed too, as on libpq). Returns `PGSESS_OK` when it was aborted so; an error
/// when the COPY had failed already (that failure's error, a bad row say) or the connection was
/// lost. For a COPY TO STDOUT, the rest is discarded as by `pgsess_copy_free`. Nothing to do
/// (`PGSESS_OK`) once the COPY has ended. The handle must still be freed.
///
/// # Safety
/// `copy` NULL or a handle from this library (live or ended); `why` NULL or NUL-terminated; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_copy_abort(
    copy: *mut pgsess_copy,
    why: *const c_char,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        let why = if why.is_null() { "aborted by the client (pgsess_copy_abort)" } else { str_arg(why, "why")? };
        arg_mut(copy, "copy")?.abort(why)?;
        Ok(Code::PGSESS_OK)
    })
}

/// Free a COPY handle. NULL is ignored. A COPY FROM not finished is aborted (CopyFail): none of
/// its rows is kept, and the connection goes back in step. A COPY TO not read to its end has its
/// rest read for up to 100 ms, after which its connection is closed instead (the pool opens
/// another): a connection is never returned in copy mode.
///
/// # Safety
/// `copy` NULL or a handle from this library (live or freed already: a second free does nothing).
#[no_mangle]
pub unsafe extern "C" fn pgsess_copy_free(copy: *mut pgsess_copy) {
    call(NO_ERR, || {
        drop(take(copy));
        Ok(())
    })
}
