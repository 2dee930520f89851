//! pgsess: environment-configured, pooled PostgreSQL sessions for C, C++, Go and Ruby programs.
//!
//! # Layers
//!
//! Each module uses only the modules listed before it, never one listed after it
//! (`tests/layers.rs` reads this list and checks every `crate::` path in `src/`):
//!
//! 1. `text`: UTF-8 checks and the server's names for UTF8.
//! 2. `process`: this process's id, whether it was forked, what it inherited and keeps.
//! 3. `error`: the error type, the codes and their categories.
//! 4. `rows`: a statement's buffered rows (columns, cells, command tag, typed getters, JSON).
//! 5. `config`: connection settings: URI parsing, the environment, passfiles, TLS, pool options.
//! 6. `log`: the process-wide log and its sink.
//! 7. `conn`: one connection speaking the PostgreSQL protocol.
//! 8. `pool`: process-wide pools (a FIFO gate, an idle list, the connection manager; the same
//!    core in forked children), leases, the reaper.
//! 9. `atfork`: the `pthread_atfork` handlers and the order they take the process-wide locks.
//! 10. `results`: the results handle: rows plus the pooled connection they hold until freed.
//! 11. `requests`: the asynchronous request engine (queue, workers, completions for an event
//!     loop); it runs the closures it is given.
//! 12. `session`: `Session` and `Transaction`, the API of sprockets.clients.postgresql.
//! 13. `ffi`: the C ABI (the only C-facing code): checks pointers, converts strings, catches
//!     panics, and calls one Rust method.
//!
//! `docs/architecture.md` follows one statement and one asynchronous request through them.

mod atfork;
pub mod config;
pub mod conn;
pub mod error;
pub mod ffi;
pub mod log;
pub mod pool;
mod process;
pub mod requests;
pub mod results;
pub mod rows;
pub mod session;
mod text;

pub use config::SessionOptions;
pub use error::{Code, Error, Result};
pub use results::Results;
pub use rows::ResultSet;
pub use session::{Isolation, Session, Transaction, TxOptions};

/// For the test suite: whether the fork() handlers were registered by the library's load-time
/// constructor (before the program could fork or start threads).
#[doc(hidden)]
pub fn fork_handlers_registered_at_load() -> bool {
    atfork::registered_at_load()
}
