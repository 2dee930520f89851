//! pgsess: environment-configured, pooled PostgreSQL sessions for C, C++, Go and Ruby programs.
//!
//! Layers, each depending only on those below it:
//! - `ffi`: the C ABI (the only C-facing code): checks pointers, converts strings, catches panics.
//! - `session`: `Session` and `Transaction`, the port of the seed's Session API.
//! - `pool`: process-wide pools (r2d2 with our own connection manager), leases, idle reaping.
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

pub use config::SessionOptions;
pub use error::{Code, Error, Result};
pub use results::{ResultSet, Results};
pub use session::{Session, Transaction};
