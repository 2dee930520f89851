//! Which process this is: its id, whether it was made by `fork()`, and what it inherited and must
//! leave alone. A leaf that everything may ask; the `pthread_atfork` wiring that keeps these
//! facts true across `fork()` is `crate::atfork`.
//!
//! The process id is kept in an atomic (by the atfork child handler), so "is this object the
//! parent's?" costs a load on every statement, not a getpid() system call.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

/// This process's id once the atfork handlers are in place (so it stays current); 0 before.
static PID: AtomicU32 = AtomicU32::new(0);

/// Set in every process created by fork() from a process that had the library loaded.
static FORKED: AtomicBool = AtomicBool::new(false);

/// What a child inherited from its parent and must neither use nor drop (dropping could write on
/// the parent's sockets or wait on the parent's locks and threads); kept reachable for the life
/// of the process, so leak checkers see it as still reachable rather than lost.
static KEPT: Mutex<Vec<Box<dyn Any + Send>>> = Mutex::new(Vec::new());

/// The current process id.
#[inline]
pub fn current_pid() -> u32 {
    match PID.load(Ordering::Acquire) {
        0 => std::process::id(),
        pid => pid,
    }
}

/// Whether this process was created by fork() from one that had the library loaded. Such a
/// process must never run parking_lot code (see `crate::atfork`).
#[inline]
pub fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

/// Keep `what` (inherited from the parent) alive and untouched for the life of this process.
pub fn keep<T: Send + 'static>(what: T) {
    KEPT.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(what));
}

/// Held by the atfork prepare handler until the parent and child handlers.
pub(crate) type ForkGuard = MutexGuard<'static, Vec<Box<dyn Any + Send>>>;

pub(crate) fn lock_for_fork() -> ForkGuard {
    KEPT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Called once the atfork handlers are registered: from then on `note_child` keeps the cached id
/// current, so it may be cached.
pub(crate) fn cache_pid() {
    PID.store(std::process::id(), Ordering::Release);
}

/// In the atfork child handler: this is a new process, made by fork().
pub(crate) fn note_child() {
    // SAFETY: getpid has no preconditions.
    PID.store(unsafe { libc::getpid() } as u32, Ordering::Release);
    FORKED.store(true, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_pid_is_this_process() {
        assert_eq!(current_pid(), std::process::id());
        assert!(!forked());
    }
}
