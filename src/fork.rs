//! `fork()` support. A child process inherits the parent's pools, sockets and the state of every
//! lock, but not its other threads: a lock one of them held at the moment of fork stays locked
//! forever. The child therefore
//! - forgets inherited pools and connections without writing on them (see `registry`, `Lease`),
//! - and, on its first call, unlocks the library's locks that were inherited in the locked state.
//!
//! The library's own state is checked on every entry that takes a process-wide lock; each
//! session checks its own. The first call in a child should come before the child starts threads
//! that share the same session.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// The process that last used the process-wide state.
static PROCESS: AtomicU32 = AtomicU32::new(0);

/// This process's id, kept current across fork() by an atfork handler, so checking "am I a
/// forked child?" on every statement costs a load instead of a getpid() system call.
static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn refresh_pid_in_child() {
    // SAFETY: getpid is async-signal-safe, as an atfork child handler requires.
    PID.store(unsafe { libc::getpid() } as u32, Ordering::Release);
}

/// The current process id.
pub fn current_pid() -> u32 {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        PID.store(std::process::id(), Ordering::Release);
        // SAFETY: registers a handler that only stores getpid() into an atomic.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(refresh_pid_in_child)) };
        debug_assert_eq!(rc, 0);
    });
    PID.load(Ordering::Acquire)
}

/// Call before taking a process-wide lock: in a freshly forked child, releases the ones inherited
/// locked.
pub fn enter() {
    let me = current_pid();
    let seen = PROCESS.load(Ordering::Acquire);
    if seen != me && PROCESS.compare_exchange(seen, me, Ordering::AcqRel, Ordering::Acquire).is_ok() && seen != 0 {
        // SAFETY: we are the only thread of a new child process (the first call after fork);
        // whoever held these locks does not exist here.
        unsafe {
            crate::pool::registry::after_fork();
            crate::pool::reaper::after_fork();
        }
    }
}

/// Release a lock inherited in the locked state from a thread that does not exist in this
/// process.
///
/// # Safety
/// Only in a forked child, before any thread of the child takes `m`.
pub unsafe fn unlock_inherited<T>(m: &parking_lot::Mutex<T>) {
    if m.is_locked() {
        m.force_unlock();
    }
}
