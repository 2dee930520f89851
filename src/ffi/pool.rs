//! The C ABI of a session's pool as operators run it: drain, resize, statistics that can grow
//! (`pgsess_stats_v2`) and their Prometheus text. `pgsess_pool_stats` (version 1) and the other
//! per-pool counters are in `session.rs`.

use std::ffi::c_char;
use std::time::Duration;

use super::session::pgsess_session;
use super::{arg, c_string, call, pgsess_error, NO_ERR};
use crate::error::{Code, Error};
use crate::pool::PoolStatsV2;

/// Drain the session's pool (shared by every session opened with the same configuration and
/// pool options): stop handing out connections, wait up to `timeout_ms` for those in use to come
/// back, and close every connection. Then the pool is usable again and opens new connections as
/// it is used: for a graceful shutdown, and after rotating credentials (the password file is
/// read again for each new connection; a password in the URI is the one the pool was created
/// with). Calls that need a
/// connection meanwhile wait for the drain (within their checkout timeout), then get a new
/// connection. A pinned session, an open transaction, COPY or unfreed results hold their
/// connection: the drain waits for them too. `PGSESS_OK` when all were closed;
/// `PGSESS_POOL_EXHAUSTED` when some were still in use at the timeout (the error says how many
/// and what holds them; they are closed when they come back); `PGSESS_INTERFACE_ERROR` for a
/// NULL session. One drain at a time per pool (a second waits for the first); any thread, but
/// not one holding a connection of the pool (a transaction's thread would wait for itself).
///
/// # Safety
/// `session` NULL or live; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pool_drain(
    session: *mut pgsess_session,
    timeout_ms: u32,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        arg(session, "session")?.pool_drain(Duration::from_millis(timeout_ms.into()))?;
        Ok(Code::PGSESS_OK)
    })
}

/// Change the `pool_max_size` of the session's pool to `max_size` (1 to 10000): every session on
/// the pool sees it, and `pgsess_stats.max_size` reports it. Growing serves waiting callers at
/// once; shrinking closes idle connections past the new size at once, and connections in use
/// past it when they come back. The pool's key does not change: a session opened later with the
/// original `pool_max_size` option still finds this pool. `PGSESS_CONFIG_ERROR` out of range,
/// `PGSESS_INTERFACE_ERROR` for a NULL session. Any thread.
///
/// # Safety
/// `session` NULL or live; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pool_resize(
    session: *mut pgsess_session,
    max_size: u32,
    err: *mut *mut pgsess_error,
) -> Code {
    call(err, || {
        arg(session, "session")?.pool_resize(max_size)?;
        Ok(Code::PGSESS_OK)
    })
}

/// Fill `*out` with the state and counters of the session's pool, version 2. `size` is the size
/// of the struct the caller has, `sizeof(struct pgsess_stats_v2)` as compiled: the library fills
/// the fields that fit in it (a caller built against an older, shorter version gets the fields it
/// knows; fields are only ever added at the end) and sets `out->size` to the bytes it filled.
/// `PGSESS_INTERFACE_ERROR` for NULL arguments or a `size` smaller than `size_t`. Any thread;
/// never waits for a running statement.
///
/// # Safety
/// `session` NULL or live; `out` NULL or `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pool_stats_v2(
    session: *const pgsess_session,
    out: *mut PoolStatsV2,
    size: usize,
) -> Code {
    call(NO_ERR, || {
        let s = arg(session, "session")?;
        if out.is_null() {
            return Err(Error::interface("out is NULL"));
        }
        if size < std::mem::size_of::<usize>() {
            return Err(Error::interface(format!("size {size} is too small for pgsess_stats_v2's size field")));
        }
        let mut stats = s.pool_stats_v2();
        let filled = size.min(std::mem::size_of::<PoolStatsV2>());
        stats.size = filled;
        // SAFETY: `out` has `size` writable bytes (the caller's promise), and `filled` is at most
        // that and at most the struct's size; the two do not overlap (ours is on the stack).
        std::ptr::copy_nonoverlapping((&stats as *const PoolStatsV2).cast::<u8>(), out.cast::<u8>(), filled);
        Ok(Code::PGSESS_OK)
    })
}

/// The statistics of `pgsess_pool_stats_v2` in Prometheus' text exposition format (version
/// 0.0.4: `# HELP`/`# TYPE` lines, gauges, counters and the checkout wait histogram in seconds),
/// every sample labelled `pool="<pool id>"` (`pgsess_pool_id`), ready to append to a scrape
/// response. A string the caller frees with `pgsess_string_free`; NULL for NULL. Any thread.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pgsess_pool_stats_text(session: *const pgsess_session) -> *mut c_char {
    call(NO_ERR, || Ok(c_string(&arg(session, "session")?.pool_stats_text()).into_raw()))
}
