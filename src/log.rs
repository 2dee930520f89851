//! The library's log: a process-wide callback with levels, or stderr when the environment variable
//! `PGSESS_LOG` names a level (`error`, `warn`, `info`, `debug`). Messages never contain a
//! password: they are built from pool ids, hosts, users, databases and SQL text only.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{OnceLock, RwLock, RwLockWriteGuard};

/// Severity of a log message; lower is more severe.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    PGSESS_LOG_ERROR = 1,
    PGSESS_LOG_WARN = 2,
    PGSESS_LOG_INFO = 3,
    PGSESS_LOG_DEBUG = 4,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::PGSESS_LOG_ERROR => "error",
            Level::PGSESS_LOG_WARN => "warn",
            Level::PGSESS_LOG_INFO => "info",
            Level::PGSESS_LOG_DEBUG => "debug",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "error" => Level::PGSESS_LOG_ERROR,
            "warn" | "warning" => Level::PGSESS_LOG_WARN,
            "info" => Level::PGSESS_LOG_INFO,
            "debug" => Level::PGSESS_LOG_DEBUG,
            _ => return None,
        })
    }
}

/// A C log callback: `(user_data, level, message)`; the message is valid during the call only.
/// NULL means none.
pub type Callback = Option<unsafe extern "C" fn(user_data: *mut c_void, level: Level, message: *const c_char)>;

type CallbackFn = unsafe extern "C" fn(*mut c_void, Level, *const c_char);

#[derive(Clone, Copy)]
pub(crate) struct Sink {
    callback: CallbackFn,
    user_data: *mut c_void,
}

// SAFETY: the caller promises (in the header) that the callback may be called from any thread
// with its user data.
unsafe impl Send for Sink {}
unsafe impl Sync for Sink {}

/// Process-wide: taken by the atfork prepare handler (see `crate::fork`), and held only to copy
/// or replace the sink, never while the callback runs.
static SINK: RwLock<Option<Sink>> = RwLock::new(None);
/// The most verbose level delivered; 0 means none.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);

fn env_level() -> u8 {
    static ENV: OnceLock<u8> = OnceLock::new();
    *ENV.get_or_init(|| std::env::var("PGSESS_LOG").ok().and_then(|v| Level::parse(&v)).map_or(0, |l| l as u8))
}

/// Install (or with `None`, remove) the callback and the most verbose level it receives.
pub fn set_callback(callback: Callback, user_data: *mut c_void, max_level: Level) {
    let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
    *sink = callback.map(|callback| Sink { callback, user_data });
    MAX_LEVEL.store(if sink.is_some() { max_level as u8 } else { 0 }, Ordering::Relaxed);
}

/// Whether a message at `level` would go anywhere (so callers can skip formatting it).
pub fn enabled(level: Level) -> bool {
    (level as u8) <= MAX_LEVEL.load(Ordering::Relaxed).max(env_level())
}

pub fn log(level: Level, message: impl FnOnce() -> String) {
    if !enabled(level) {
        return;
    }
    let text = message();
    let sink = *SINK.read().unwrap_or_else(|p| p.into_inner());
    match sink {
        Some(s) if (level as u8) <= MAX_LEVEL.load(Ordering::Relaxed) => {
            let c = crate::ffi::c_string(&text);
            // SAFETY: the callback was registered by the application for exactly this use.
            let _ = std::panic::catch_unwind(|| unsafe { (s.callback)(s.user_data, level, c.as_ptr()) });
        }
        _ => {
            if (level as u8) <= env_level() {
                to_stderr(&format!("pgsess {}: {text}\n", level.name()));
            }
        }
    }
}

/// Print a line on stderr. A forked child bypasses std's stderr lock, which a parent thread may
/// have held at fork() time (it is not one of ours to take in the atfork handler), and writes
/// the whole line with write(2) directly.
fn to_stderr(line: &str) {
    if !crate::fork::forked() {
        eprint!("{line}");
        return;
    }
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        // SAFETY: writes from a live buffer of the given length.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n > 0 {
            rest = &rest[n as usize..];
        } else if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        } else {
            return;
        }
    }
}

/// Held by the atfork prepare handler until the parent and child handlers (see `crate::fork`).
pub(crate) type ForkGuard = RwLockWriteGuard<'static, Option<Sink>>;

/// Before fork(): read `PGSESS_LOG` now, so that a child never finds its one-time initialisation
/// left half done by a parent thread.
pub(crate) fn prepare_for_fork() {
    env_level();
}

pub(crate) fn lock_for_fork() -> ForkGuard {
    SINK.write().unwrap_or_else(|p| p.into_inner())
}

pub fn warn(message: impl FnOnce() -> String) {
    log(Level::PGSESS_LOG_WARN, message)
}

pub fn info(message: impl FnOnce() -> String) {
    log(Level::PGSESS_LOG_INFO, message)
}

pub fn debug(message: impl FnOnce() -> String) {
    log(Level::PGSESS_LOG_DEBUG, message)
}
