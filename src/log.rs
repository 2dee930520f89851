//! The library's log: a process-wide callback with levels, or stderr when the environment variable
//! `PGSESS_LOG` names a level (`error`, `warn`, `info`, `debug`). Messages never contain a
//! password: they are built from pool ids, hosts, users, databases and SQL text only.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockWriteGuard};

/// Severity of a log message; lower is more severe. The values are those of the C enum
/// `pgsess_log_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }
}

/// Where messages go instead of stderr: called from any thread, with a message that lives for
/// the call only.
pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// Process-wide: taken by the atfork prepare handler (see `crate::atfork`), and held only to copy
/// or replace the sink, never while the sink runs.
static SINK: RwLock<Option<Sink>> = RwLock::new(None);
/// The most verbose level delivered; 0 means none.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);

fn env_level() -> u8 {
    static ENV: OnceLock<u8> = OnceLock::new();
    *ENV.get_or_init(|| std::env::var("PGSESS_LOG").ok().and_then(|v| Level::parse(&v)).map_or(0, |l| l as u8))
}

/// Install (or with `None`, remove) the sink and the most verbose level it receives.
pub fn set_sink(sink: Option<Sink>, max_level: Level) {
    let mut current = SINK.write().unwrap_or_else(|p| p.into_inner());
    *current = sink;
    MAX_LEVEL.store(if current.is_some() { max_level as u8 } else { 0 }, Ordering::Relaxed);
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
    let sink = SINK.read().unwrap_or_else(|p| p.into_inner()).clone();
    match sink {
        Some(sink) if (level as u8) <= MAX_LEVEL.load(Ordering::Relaxed) => {
            // A sink that panics loses its message; the statement that logged goes on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(level, &text)));
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
    if !crate::process::forked() {
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

/// Held by the atfork prepare handler until the parent and child handlers (see `crate::atfork`).
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
    log(Level::Warn, message)
}

pub fn info(message: impl FnOnce() -> String) {
    log(Level::Info, message)
}

pub fn debug(message: impl FnOnce() -> String) {
    log(Level::Debug, message)
}
