//! The cancel grace's alarm: what ends the wait of a cancelled statement whose server does not
//! answer, so that a waiting statement needs no timer of its own.
//!
//! A statement waits for its answer in poll(2) with no timeout unless something bounds it (the
//! caller's deadline, the statement timeout, a cancel already asked for): a poll with a timeout
//! arms a kernel timer on every call, which costs a round trip about 0.4 us of CPU, and libpq's
//! waits have none either. A cancel asked for from another thread (`Canceller::send`) while the
//! statement waits therefore arms this alarm: one thread per process, started at the first
//! cancel, which at the end of the statement's grace shuts the connection's socket down
//! (shutdown(2)) if that statement is still running. The waiting poll(2) wakes at once, sees the
//! grace passed (`Bounds::cancel_expired`) and fails the statement with `CancelIgnored`, as a
//! timed wait did before. A server that answers the cancel (the usual case) ends the statement
//! first, and the alarm finds it gone.
//!
//! The socket is never shut down once its statement has ended or its descriptor closed: the
//! alarm looks and shuts under the signal's lock, which `CancelSignal::ended` (after a
//! cancelled statement) and `CancelSignal::closing` (before the descriptor is closed) take too.
//! The list's lock is one of the process-wide locks the atfork handlers hold across fork()
//! (`crate::atfork`); a forked child starts its own thread at its first cancel.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

use super::waits::CancelSignal;

pub(crate) struct Alarms {
    /// The process whose thread serves `due`.
    pid: u32,
    /// Each cancelled statement (its signal and number) and when its grace ends.
    due: Vec<(Instant, Weak<CancelSignal>, u64)>,
}

static ALARMS: Mutex<Option<Alarms>> = Mutex::new(None);
static RING: Condvar = Condvar::new();

fn alarms() -> MutexGuard<'static, Option<Alarms>> {
    ALARMS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held by the atfork prepare handler until the parent and child handlers (see `crate::atfork`).
pub(crate) type ForkGuard = MutexGuard<'static, Option<Alarms>>;

pub(crate) fn lock_for_fork() -> ForkGuard {
    alarms()
}

/// At `at`, shut down the socket of `signal`'s connection if `statement` is still running on
/// it. False when no alarm thread could be started: the caller then bounds its own waits.
pub(super) fn arm(signal: &Arc<CancelSignal>, statement: u64, at: Instant) -> bool {
    let mut a = alarms();
    let pid = crate::process::current_pid();
    if !matches!(&*a, Some(existing) if existing.pid == pid) {
        if std::thread::Builder::new().name("pgsess-grace".into()).spawn(run).is_err() {
            return false;
        }
        *a = Some(Alarms { pid, due: Vec::new() });
    }
    if let Some(a) = a.as_mut() {
        a.due.push((at, Arc::downgrade(signal), statement));
    }
    RING.notify_all();
    true
}

fn run() {
    let me = crate::process::current_pid();
    let mut a = alarms();
    loop {
        let Some(list) = a.as_mut().filter(|l| l.pid == me) else { return };
        let now = Instant::now();
        let mut fired = Vec::new();
        list.due.retain(|(at, signal, statement)| {
            if *at > now {
                // A statement that ended (the usual case: the server answered the cancel) or a
                // connection gone needs no alarm: the list holds only statements still running.
                return signal.upgrade().is_some_and(|s| s.is_running(*statement));
            }
            fired.push((signal.clone(), *statement));
            false
        });
        let next = list.due.iter().map(|(at, _, _)| *at).min();
        if !fired.is_empty() {
            drop(a);
            for (signal, statement) in fired {
                if let Some(signal) = signal.upgrade() {
                    signal.shut_if_running(statement);
                }
            }
            a = alarms();
            continue;
        }
        a = match next {
            Some(at) => RING.wait_timeout(a, at.saturating_duration_since(now)).unwrap_or_else(|p| p.into_inner()).0,
            None => RING.wait(a).unwrap_or_else(|p| p.into_inner()),
        };
    }
}
