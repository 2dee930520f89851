//! The library's log, for C: `pgsess_set_log_callback` installs a C function as the log's sink.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::{c_string, call, NO_ERR};
use crate::error::{Code, Error};
use crate::log::Level;

/// Severity of a log message; lower is more severe.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pgsess_log_level {
    PGSESS_LOG_ERROR = 1,
    PGSESS_LOG_WARN = 2,
    PGSESS_LOG_INFO = 3,
    PGSESS_LOG_DEBUG = 4,
}

impl pgsess_log_level {
    fn from_raw(raw: u32) -> Option<Level> {
        Some(match raw {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            _ => return None,
        })
    }

    fn of(level: Level) -> pgsess_log_level {
        match level {
            Level::Error => pgsess_log_level::PGSESS_LOG_ERROR,
            Level::Warn => pgsess_log_level::PGSESS_LOG_WARN,
            Level::Info => pgsess_log_level::PGSESS_LOG_INFO,
            Level::Debug => pgsess_log_level::PGSESS_LOG_DEBUG,
        }
    }
}

/// The C type of a `pgsess_log_level` argument, read as an integer so that a value outside the
/// enum is reported instead of being undefined behaviour. Declared as `pgsess_log_level` in the
/// header.
#[allow(non_camel_case_types)]
pub type pgsess_log_level_arg = u32;

/// A C log callback: `(user_data, level, message)`; the message is valid during the call only.
/// NULL means none.
#[allow(non_camel_case_types)]
pub type pgsess_log_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: pgsess_log_level, message: *const c_char)>;

/// The callback and its user data; the caller promised (`pgsess_set_log_callback`) that it may
/// be called from any thread.
struct CSink {
    callback: unsafe extern "C" fn(*mut c_void, pgsess_log_level, *const c_char),
    user_data: *mut c_void,
}

// SAFETY: the caller promises (in the header) that the callback may be called from any thread
// with its user data.
unsafe impl Send for CSink {}
unsafe impl Sync for CSink {}

impl CSink {
    fn deliver(&self, level: Level, message: &str) {
        let c = c_string(message);
        // SAFETY: the callback was registered by the application for exactly this use.
        unsafe { (self.callback)(self.user_data, pgsess_log_level::of(level), c.as_ptr()) }
    }
}

/// Send the library's log to `callback` for messages at `max_level` or more severe
/// (`PGSESS_LOG_ERROR` < `WARN` < `INFO` < `DEBUG`); a NULL callback removes it. Without a
/// callback, setting the environment variable `PGSESS_LOG` to `error`, `warn`, `info` or `debug`
/// prints the log to stderr. The callback is called from any thread (including the library's
/// own), must be thread-safe, must not call back into pgsess, and gets a message valid only
/// during the call; messages never contain a password. Call it at start-up, before other threads
/// use the library.
///
/// Returns `PGSESS_OK`, or `PGSESS_INTERFACE_ERROR` for a level outside the enum.
///
/// # Safety
/// `callback` NULL or a function that may be called with `user_data` from any thread.
#[no_mangle]
pub unsafe extern "C" fn pgsess_set_log_callback(
    callback: pgsess_log_callback,
    user_data: *mut c_void,
    max_level: pgsess_log_level_arg,
) -> Code {
    call(NO_ERR, || {
        let level =
            pgsess_log_level::from_raw(max_level).ok_or_else(|| Error::interface("max_level is not a level"))?;
        let sink = callback.map(|callback| {
            let sink = CSink { callback, user_data };
            Arc::new(move |level: Level, message: &str| sink.deliver(level, message)) as crate::log::Sink
        });
        crate::log::set_sink(sink, level);
        Ok(Code::PGSESS_OK)
    })
}
