//! `fork()` support.
//!
//! A child process gets a copy of the parent's memory: its pools, sockets and the state of every
//! lock. It does not get the parent's other threads, so a lock one of them held at the moment of
//! fork() stays locked in the child forever. pgsess handles the two kinds of lock differently:
//!
//! - Process-wide locks (the pool registry, the reaper's list, the list below, the log sink) are
//!   std locks made safe the POSIX way: the `prepare` handler registered with `pthread_atfork`
//!   takes them all, in a fixed order, before fork() copies the process, and the parent and child
//!   handlers release them. Both copies therefore start with them free and consistent.
//! - Per-session and per-pool locks are never taken in a child on an object the parent made: the
//!   child replaces such objects (`Session`'s per-process part, the registry's pools, the request
//!   engine) instead of locking them, and leaves the parent's copies alone forever (`keep`).
//!
//! No parking_lot code may run in a child: parking_lot_core keeps one process-wide table of
//! bucket locks that every parking_lot Mutex or Condvar uses when a thread parks or unparks, and
//! a parent thread inside such a critical section at the instant of fork() leaves a bucket locked
//! forever in the child (gdb on a hung child: `grow_hashtable -> WordLock::lock`). r2d2 and
//! scheduled-thread-pool use parking_lot internally, so a forked child's pools run on the
//! library's own pool core (`pool::Backend::Local`), and all of the library's locks are std's
//! (futex-based on Linux: no shared table).
//!
//! The process id is kept in an atomic by the same atfork child handler, so "is this object the
//! parent's?" costs a load on every statement, not a getpid() system call.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

/// This process's id, kept current across fork() by the atfork child handler; 0 until set.
static PID: AtomicU32 = AtomicU32::new(0);

/// Set in every process created by fork() from a process that had the library loaded.
static FORKED: AtomicBool = AtomicBool::new(false);

/// 0: handlers not registered; 1: being registered; 2: registered.
static REGISTERED: AtomicU8 = AtomicU8::new(0);

/// What a child inherited from its parent and must neither use nor drop (dropping could write on
/// the parent's sockets or wait on the parent's locks and threads); kept reachable for the life
/// of the process, so leak checkers see it as still reachable rather than lost.
static KEPT: Mutex<Vec<Box<dyn Any + Send>>> = Mutex::new(Vec::new());

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

/// Register the atfork handlers once. Lock-free: a caller that loses the race does not wait.
fn register() {
    if REGISTERED.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        // SAFETY: registers plain functions; they only take and release the library's own locks
        // and store into atomics.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        debug_assert_eq!(rc, 0);
        // From here on the child handler keeps PID current in every child.
        PID.store(std::process::id(), Ordering::Release);
        REGISTERED.store(2, Ordering::Release);
    }
}

/// The current process id.
#[inline]
pub fn current_pid() -> u32 {
    match PID.load(Ordering::Acquire) {
        0 => current_pid_slow(),
        pid => pid,
    }
}

/// Before registration (only if the load-time constructor did not run): register, and until the
/// handlers are in place ask the kernel, so a child forked meanwhile is never mistaken for its
/// parent.
#[cold]
fn current_pid_slow() -> u32 {
    register();
    match PID.load(Ordering::Acquire) {
        0 => std::process::id(),
        pid => pid,
    }
}

/// Whether this process was created by fork() from one that had the library loaded. Such a
/// process must never run parking_lot code (see the module comment).
#[inline]
pub fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

/// Keep `what` (inherited from the parent) alive and untouched for the life of this process.
pub fn keep<T: Send + 'static>(what: T) {
    KEPT.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(what));
}

/// The process-wide locks, held from the prepare handler to the parent or child handler.
struct Held {
    _registry: crate::pool::registry::ForkGuard,
    _kept: MutexGuard<'static, Vec<Box<dyn Any + Send>>>,
    _reaper: crate::pool::reaper::ForkGuard,
    _log: crate::log::ForkGuard,
}

thread_local! {
    /// The prepare, parent and child handlers all run on the thread that calls fork().
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Before fork(): take every process-wide lock, in the order the library nests them (registry,
/// then the kept list and the reaper's list, which are taken while the registry is held; the log
/// sink last, since anything may log). Waits only for critical sections that do no I/O.
extern "C" fn prepare() {
    crate::log::prepare_for_fork();
    let held = Held {
        _registry: crate::pool::registry::lock_for_fork(),
        _kept: KEPT.lock().unwrap_or_else(|p| p.into_inner()),
        _reaper: crate::pool::reaper::lock_for_fork(),
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
    // SAFETY: getpid has no preconditions.
    PID.store(unsafe { libc::getpid() } as u32, Ordering::Release);
    FORKED.store(true, Ordering::Release);
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
        assert_eq!(current_pid(), std::process::id());
        assert!(!forked());
    }
}
