//! pgsess: environment-configured, pooled PostgreSQL sessions for C, C++, Go and Ruby programs.
//!
//! Layers, each depending only on those below it:
//! - `ffi`: the C ABI (the only C-facing code): checks pointers, converts strings, catches panics.
//! - `session`: `Session` and `Transaction`, the port of the seed's Session API.
//! - `pool`: process-wide pools (r2d2 with our own connection manager; our own core in forked
//!   children), leases, idle reaping.
//! - `results`: buffered statement results (text values in an arena).
//! - `conn`: one connection speaking the PostgreSQL protocol.
//! - `config`: environment lookup, URI parsing, pool settings.
//! - `error`: the error type and the SQLSTATE-class table.

pub mod config;
pub mod conn;
pub mod error;
pub mod ffi;
mod fork;
pub mod log;
pub mod pool;
pub mod requests;
pub mod results;
pub mod session;
mod text;

pub use config::SessionOptions;
pub use error::{Code, Error, Result};
pub use results::{ResultSet, Results};
pub use session::{Session, Transaction};

/// For the test suite: whether the fork() handlers were registered by the library's load-time
/// constructor (before the program could fork or start threads).
#[doc(hidden)]
pub fn fork_handlers_registered_at_load() -> bool {
    fork::registered_at_load()
}
