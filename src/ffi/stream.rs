//! `pgsess_stream`: a large result received in chunks.

use std::ptr::null_mut;

use super::results::pgsess_results;
use super::{arg, arg_mut, call, call_or, give, pgsess_error, take, Handle, NO_ERR};
use crate::session::RowStream;

/// Rows of one statement arriving in chunks, from `pgsess_query_stream`. Owned by the caller,
/// freed with `pgsess_stream_free`; holds its pooled connection until then. One thread at a time.
/// Checked: after `pgsess_stream_free`, `pgsess_stream_next` with it fails with
/// `PGSESS_INTERFACE_ERROR`, and a second free does nothing.
#[allow(non_camel_case_types)]
pub struct pgsess_stream {
    _opaque: [u8; 0],
}

impl Handle for pgsess_stream {
    type Rust = RowStream;
}

/// The next chunk as a results handle of at most `chunk_rows` rows (free it with
/// `pgsess_results_free`; it also holds the connection until freed). Returns NULL with `*err`
/// left NULL when every row has been returned, and NULL with `*err` set on failure (the stream
/// then has no more rows). The last chunk's `pgsess_results_status` is the command tag.
///
/// # Safety
/// `stream` NULL or a handle from this library (live or ended); `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_stream_next(
    stream: *mut pgsess_stream,
    err: *mut *mut pgsess_error,
) -> *mut pgsess_results {
    call(err, || {
        let chunk = arg_mut(stream, "stream")?.next_chunk()?;
        Ok(chunk.map_or(null_mut(), |r| give::<pgsess_results>(Box::new(r))))
    })
}

/// The socket the stream's rows arrive on, to wait on before `pgsess_stream_next` as for a
/// pending statement (`pgsess_pending_fd`: the same descriptor rules and serial number); -1
/// when `stream` is not a live handle.
///
/// # Safety
/// `stream` NULL or a live handle; `serial` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_stream_fd(stream: *const pgsess_stream, serial: *mut u64) -> i32 {
    call_or(|_| -1, NO_ERR, || super::pending::socket_out(arg(stream, "stream")?.socket()?, serial))
}

/// Read what has arrived without blocking: 1 when `pgsess_stream_next` will not wait for the
/// server (the next chunk's rows or the end of the result are in, the stream has ended, or
/// the connection failed, which `pgsess_stream_next` then reports), 0 when more is to come
/// (everything that had arrived was read: wait for the socket again), -1 when `stream` is not a
/// live handle.
///
/// # Safety
/// `stream` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn pgsess_stream_poll(stream: *mut pgsess_stream) -> i32 {
    call_or(|_| -1, NO_ERR, || Ok(i32::from(arg_mut(stream, "stream")?.poll())))
}

/// How many milliseconds the caller may wait for the socket before calling `pgsess_stream_next`
/// anyway (the statement timeout of the chunk's read, counted from the first
/// `pgsess_stream_poll` for it); -1 without a statement timeout (or for a handle that is not
/// live).
///
/// # Safety
/// `stream` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn pgsess_stream_wait_ms(stream: *const pgsess_stream) -> i64 {
    call_or(|_| -1, NO_ERR, || Ok(super::pending::wait_ms(arg(stream, "stream")?.wait_limit())))
}

/// Free a stream. Rows not yet fetched are discarded (the server stops sending them) and the
/// connection returns to the pool once every chunk is freed too. NULL is ignored.
///
/// # Safety
/// `stream` NULL or a handle from this library (live or ended).
#[no_mangle]
pub unsafe extern "C" fn pgsess_stream_free(stream: *mut pgsess_stream) {
    call(NO_ERR, || {
        drop(take(stream));
        Ok(())
    })
}
