//! `pgsess_stream`: a large result received in chunks.

use std::ptr::null_mut;

use super::results::pgsess_results;
use super::{arg_mut, call, give, pgsess_error, take, Handle, NO_ERR};
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
