//! Where `fork()` is handled: the `pthread_atfork` handlers, registered when the library is
//! loaded, and the order in which they take every process-wide lock.
//!
//! A child process gets a copy of the parent's memory: its pools, sockets and the state of every
//! lock. It does not get the parent's other threads, so a lock one of them held at the moment of
//! fork() stays locked in the child forever. pgsess handles the two kinds of lock differently:
//!
//! - Process-wide locks (the pool registry, the reaper's list, the kept list of
//!   `crate::process`, the cancel alarms' list, the log sink) are std locks made safe the POSIX
//!   way: the `prepare` handler takes them all, in a fixed order, before fork() copies the
//!   process, and the parent and child handlers release them. Both copies therefore start with them free and consistent.
//! - Per-session and per-pool locks are never taken in a child on an object the parent made: the
//!   child replaces such objects (`Session`'s per-process part, the registry's pools, the request
//!   engine) instead of locking them, and leaves the parent's copies alone forever
//!   (`process::keep`).
//!
//! No parking_lot code may run in a child: parking_lot_core keeps one process-wide table of
//! bucket locks that every parking_lot Mutex or Condvar uses when a thread parks or unparks, and
//! a parent thread inside such a critical section at the instant of fork() leaves a bucket locked
//! forever in the child. The pool is therefore the library's own (`pool::idle`), and all of the
//! library's locks are std's (futex-based on Linux: no shared table).
//!
//! Everything else fork() touches, by file:
//! - `process.rs`: the cached pid, the "forked" flag, the kept list;
//! - `pool/registry.rs`: a child's pools replace the parent's (which are kept, never dropped);
//! - `pool/reaper.rs`: the idle reaper thread exists only in the process that started it;
//! - `conn/watchdog.rs`: so does the cancel grace's alarm thread (its list is held like the
//!   reaper's, taken after it, and never while the registry or the reaper's list is);
//! - `conn/mod.rs`, `pool/mod.rs`: a connection or lease of another process is never used;
//! - `session/mod.rs`: a session's per-process part is replaced on its first call in a child
//!   (its listener's socket is closed in the child, `session/notify.rs`: the listener and
//!   watcher threads exist only in the process that started them);
//! - `requests.rs`: the parent's request engine is abandoned, a child starts its own;
//! - `log.rs`: a child writes to stderr without std's lock.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::pool::{reaper, registry};

/// 0: handlers not registered; 1: being registered; 2: registered.
static REGISTERED: AtomicU8 = AtomicU8::new(0);

/// Registers the atfork handlers when the library is loaded, before the program can fork (or
/// start threads that might): a registration racing with fork() could leave a child unaware that
/// it is one.
#[used]
#[link_section = ".init_array"]
static REGISTER_AT_LOAD: extern "C" fn() = register_at_load;

/// Set by the constructor, so a test can check that it was linked in and ran.
static REGISTERED_AT_LOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn register_at_load() {
    register();
    REGISTERED_AT_LOAD.store(true, Ordering::Release);
}

/// Whether the handlers were registered by the load-time constructor (for tests).
pub fn registered_at_load() -> bool {
    REGISTERED_AT_LOAD.load(Ordering::Acquire)
}

/// Register the atfork handlers once (the load-time constructor does; opening a session does
/// again, in case a program's loader skipped it). Lock-free: a caller that loses the race does
/// not wait. Until registration, `process::current_pid` asks the kernel on every call, so a
/// child forked meanwhile is never mistaken for its parent.
pub fn register() {
    if REGISTERED.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        // SAFETY: registers plain functions; they only take and release the library's own locks
        // and store into atomics.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        debug_assert_eq!(rc, 0);
        crate::process::cache_pid();
        REGISTERED.store(2, Ordering::Release);
    }
}

/// The process-wide locks, held from the prepare handler to the parent or child handler.
struct Held {
    _registry: registry::ForkGuard,
    _kept: crate::process::ForkGuard,
    _reaper: reaper::ForkGuard,
    _alarms: crate::conn::watchdog::ForkGuard,
    _log: crate::log::ForkGuard,
}

thread_local! {
    /// The prepare, parent and child handlers all run on the thread that calls fork().
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Before fork(): take every process-wide lock, in the order the library nests them (registry,
/// then the kept list and the reaper's list, which are taken while the registry is held; the
/// alarms' list, taken alone; the log sink last, since anything may log). Waits only for
/// critical sections that do no I/O.
extern "C" fn prepare() {
    crate::log::prepare_for_fork();
    let held = Held {
        _registry: registry::lock_for_fork(),
        _kept: crate::process::lock_for_fork(),
        _reaper: reaper::lock_for_fork(),
        _alarms: crate::conn::watchdog::lock_for_fork(),
        _log: crate::log::lock_for_fork(),
    };
    HELD.with(|h| *h.borrow_mut() = Some(held));
}

fn release() {
    let held = HELD.with(|h| h.borrow_mut().take());
    drop(held);
}

extern "C" fn parent() {
    release();
}

extern "C" fn child() {
    crate::process::note_child();
    release();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_when_the_library_was_loaded() {
        // The load-time constructor ran before any test: the handlers are in place and the pid
        // is known without a system call.
        assert!(registered_at_load());
        assert_eq!(REGISTERED.load(Ordering::Acquire), 2);
        assert_eq!(crate::process::current_pid(), std::process::id());
        assert!(!crate::process::forked());
    }
}
