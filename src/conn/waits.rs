//! The bounds on every wait of a connection, beyond the deadline each call gives (`stream` applies
//! them to each poll(2)):
//!
//! - **Sending** is bounded by the statement timeout: a server that stops reading makes the
//!   statement fail when its timeout passes (`PGSESS_QUERY_CANCELED`), and the connection, its
//!   message half sent, is closed. Reading is not: at the statement timeout the reader asks the
//!   server to cancel and waits for its answer, bounded as below.
//! - **A cancel the server ignores**: once a cancel request is sent for the running statement
//!   (by its statement timeout, `Session::cancel` or an asynchronous request's cancel, from any
//!   thread), every wait of that statement ends at the cancel grace after it
//!   (`SessionOptions::set_cancel_grace_ms`, default 5 s): the statement fails with
//!   `PGSESS_QUERY_CANCELED` and the connection is closed. So with or without a statement
//!   timeout, a silent live server holds a statement no longer than its caller asks.
//! - **Connecting** (`connect_within`): every wait while this thread opens a connection ends at
//!   the caller's deadline, whatever the number of hosts, the TLS negotiation or
//!   `target_session_attrs`' query: `pgsess_open` and a checkout give up at the checkout timeout.
//!
//! A cancel is recorded in the connection's `CancelSignal`, which its cancellers share. A wait
//! that begins after it is bounded by the grace; one already under way (a poll(2) without a
//! timeout, as libpq's) is ended at the grace by the process's alarm (`watchdog`), which shuts
//! the socket down if the statement is still running then. So the grace ends on time, and a
//! statement costs neither a timer per wait nor an extra descriptor.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{CancelKey, PgConn};
use crate::error::{Code, Error};

/// When no alarm thread can be started (`watchdog::arm`), a waiting statement looks at its
/// cancel signal this often instead.
const CHECK_CANCEL_WITHOUT_ALARM: Duration = Duration::from_millis(100);

/// Whether a cancel was asked for the statement running on one connection, shared by the
/// connection and everything that may cancel it (`Canceller`).
#[derive(Debug, Default)]
pub struct CancelSignal {
    /// Counts statements begun and ended (`begin_statement`, `end_statement`): while a
    /// statement runs, its number, odd; between statements an even one (0 before the first).
    /// Written only by the connection's user (one thread at a time), read by cancellers.
    statement: AtomicU64,
    /// The statement a cancel was asked for (0: none yet): a cancel meant for one statement is
    /// never taken by a later one.
    cancelled: AtomicU64,
    /// When that cancel was asked for. Written under this lock before `cancelled` is set; read
    /// only after `cancelled` is seen to name the running statement.
    cancelled_at: Mutex<Option<Instant>>,
    /// The running statement's cancel grace in nanoseconds (for the alarm `raise` arms).
    grace_ns: AtomicU64,
    /// The connection's socket while it is open, for the alarm to shut down; -1 before and after.
    fd: AtomicI32,
    /// The process that made the connection: only its threads lock `shut`.
    pid: AtomicU32,
    /// The statement whose socket the alarm shut down (0: none). The alarm looks at the running
    /// statement and shuts the socket under this lock; a cancelled statement's end and the
    /// descriptor's close take it, so the alarm never shuts down a later statement's socket or
    /// a descriptor number reused by another file.
    shut: Mutex<u64>,
    /// No alarm could be started for a cancel: waits look at the signal now and then instead.
    unalarmed: AtomicBool,
}

impl CancelSignal {
    /// The number of the statement running now (see `statement`).
    fn running(&self) -> u64 {
        self.statement.load(Ordering::Acquire)
    }

    /// Record that a cancel was asked for `statement`, if it is still the one running and the
    /// first cancel for it (the grace counts from the first).
    fn raise(self: &Arc<Self>, statement: u64) {
        if statement % 2 == 0 || self.running() != statement {
            return;
        }
        let mut at = self.cancelled_at.lock().unwrap_or_else(|p| p.into_inner());
        if self.cancelled.load(Ordering::SeqCst) != statement {
            let now = Instant::now();
            *at = Some(now);
            self.cancelled.store(statement, Ordering::SeqCst);
            drop(at);
            let grace = Duration::from_nanos(self.grace_ns.load(Ordering::Acquire));
            if self.fd.load(Ordering::Acquire) >= 0 && !super::watchdog::arm(self, statement, now + grace) {
                self.unalarmed.store(true, Ordering::Release);
            }
        }
    }

    /// Whether `statement` is still the one running.
    pub(super) fn is_running(&self, statement: u64) -> bool {
        self.running() == statement
    }

    /// For the alarm: shut the socket down if `statement` is still the one running on it.
    pub(super) fn shut_if_running(&self, statement: u64) {
        let mut shut = self.shut.lock().unwrap_or_else(|p| p.into_inner());
        let fd = self.fd.load(Ordering::SeqCst);
        if fd >= 0 && self.statement.load(Ordering::SeqCst) == statement {
            // SAFETY: `fd` is the connection's open socket: `closing` clears it under this lock
            // before the descriptor is closed.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            *shut = statement;
        }
    }

    /// The connection's socket, for the alarm (`fd`).
    pub(super) fn set_fd(&self, fd: i32) {
        self.pid.store(crate::process::current_pid(), Ordering::Relaxed);
        self.fd.store(fd, Ordering::SeqCst);
    }

    /// The socket is about to be closed: the alarm must not shut it down any more.
    pub(super) fn closing(&self) {
        if self.fd.load(Ordering::Acquire) < 0 {
            return;
        }
        if self.pid.load(Ordering::Relaxed) != crate::process::current_pid() {
            // A forked child's copy: the parent's alarm thread does not exist here, and a lock
            // it held at fork() would never be released.
            self.fd.store(-1, Ordering::SeqCst);
            return;
        }
        let _shut = self.shut.lock().unwrap_or_else(|p| p.into_inner());
        self.fd.store(-1, Ordering::SeqCst);
    }

    /// `statement` has ended (its number is already even): true when the alarm shut the socket
    /// down for it, the connection then unusable. Locks only after a cancel of that statement.
    fn ended(&self, statement: u64) -> bool {
        if self.cancelled.load(Ordering::SeqCst) != statement {
            return false;
        }
        if self.pid.load(Ordering::Relaxed) != crate::process::current_pid() {
            return false;
        }
        *self.shut.lock().unwrap_or_else(|p| p.into_inner()) == statement
    }

    /// When a cancel was asked for `statement`, if one was.
    fn cancelled_at(&self, statement: u64) -> Option<Instant> {
        if statement == 0 || self.cancelled.load(Ordering::Acquire) != statement {
            return None; // the common case: one atomic load
        }
        *self.cancelled_at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What cancels the statement running on one connection, from any thread: the server is sent a
/// cancel request, and the connection's waits for that statement end at its cancel grace.
#[derive(Clone, Debug)]
pub struct Canceller {
    key: Arc<CancelKey>,
    signal: Arc<CancelSignal>,
    /// The statement this cancels (an even number: none, only the server is asked).
    statement: u64,
}

impl Canceller {
    /// This connection's canceller for the statement running on it now.
    pub fn for_running(&self) -> Canceller {
        Canceller { statement: self.signal.running(), ..self.clone() }
    }

    /// Start the statement's cancel grace, then ask the server to cancel it (see
    /// `CancelKey::send`). The grace counts from this call, so the statement ends within it
    /// even when the request cannot be sent.
    pub fn send(&self) -> io::Result<()> {
        self.signal.raise(self.statement);
        self.key.send()
    }

    /// `send`, giving up sending by `deadline` (several cancels sent in turn share one bound).
    pub fn send_by(&self, deadline: Instant) -> io::Result<()> {
        self.signal.raise(self.statement);
        self.key.send_by(deadline)
    }
}

/// A stream's bounds (see the module comment), kept by the `Stream`.
#[derive(Debug)]
pub(super) struct Bounds {
    pub(super) signal: Arc<CancelSignal>,
    /// The running statement's number, as in `signal` (0: none, and no bound applies).
    statement: u64,
    /// When the running statement's timeout passes, and the timeout (for the error).
    statement_deadline: Option<(Instant, Duration)>,
    /// How long a cancelled statement may go on waiting.
    grace: Duration,
    /// The running statement is cancelled when a signal interrupts its wait for an answer.
    pub(super) cancel_on_signal: bool,
    /// A signal interrupted such a wait since the reader last looked (`Stream::take_interrupted`).
    pub(super) interrupted: std::cell::Cell<bool>,
    /// The most bytes the read buffer may hold while a send waits for the server to read:
    /// what it sends meanwhile is kept (else both sides could wait on each other), but not
    /// without bound (`read_while_sending`).
    pub(super) read_while_sending: usize,
}

/// `Bounds::read_while_sending` for a `max_result_bytes` setting: a result's worth plus the
/// largest description (a batch's replies arriving while the rest of the batch is sent); no
/// bound when results have none (0).
pub(super) fn read_while_sending(max_result_bytes: u64) -> usize {
    if max_result_bytes == 0 {
        return usize::MAX;
    }
    let bound = max_result_bytes.saturating_add(super::reader::MAX_DESCRIPTION_MESSAGE as u64);
    usize::try_from(bound).unwrap_or(usize::MAX)
}

/// What ended a wait early: the error it gives (an `io::Error` of kind `Other` carrying it,
/// which `PgConn::io_failure` turns into the statement's error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bound {
    /// The statement timeout passed while sending.
    StatementTimeout(Duration),
    /// The cancel grace passed after a cancel was asked for.
    CancelIgnored(Duration),
    /// The caller's bound on connecting (`connect_within`) passed.
    Connect(Duration),
    /// The server sent this many bytes while a send waited for it to read
    /// (`Bounds::read_while_sending`).
    ReadWhileSending(usize),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::StatementTimeout(t) => {
                write!(f, "timed out sending the statement (statement timeout {} ms)", t.as_millis())
            }
            Bound::CancelIgnored(g) => write!(f, "no answer to the cancel request within {} ms", g.as_millis()),
            Bound::Connect(b) => {
                write!(f, "timed out: no connection within the checkout timeout ({} ms)", b.as_millis())
            }
            Bound::ReadWhileSending(n) => write!(f, "{n} bytes arrived while the statement was being sent"),
        }
    }
}

impl std::error::Error for Bound {}

impl Bound {
    pub(super) fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// The bound an I/O error reports, if it is one.
    pub(super) fn of(e: &io::Error) -> Option<Bound> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Bound>()).copied()
    }

    /// The error of a statement (or connection attempt) that reached this bound on `host`.
    pub(super) fn error(self, host: &impl fmt::Display) -> Error {
        let canceled = |message: String| Error {
            client_sqlstate: Some("57014"),
            ..Error::new(Code::PGSESS_QUERY_CANCELED, message)
        };
        match self {
            Bound::StatementTimeout(t) => canceled(format!(
                "the statement timeout ({} ms) passed while the statement was still being sent: the server at {host} \
                 stopped reading; the connection is closed",
                t.as_millis()
            )),
            Bound::CancelIgnored(g) => canceled(format!(
                "the statement was cancelled, but the server at {host} did not answer within the cancel grace \
                 ({} ms): the statement is abandoned and its connection closed",
                g.as_millis()
            )),
            Bound::Connect(b) => Error::operational(
                "08001",
                format!(
                    "timed out waiting for the server at {host}: no connection within the checkout timeout ({} ms)",
                    b.as_millis()
                ),
            ),
            Bound::ReadWhileSending(n) => Error::operational(
                "54000",
                format!(
                    "the server at {host} sent {n} bytes without reading the statement being sent, more than \
                     max_result_bytes allows to keep meanwhile: the connection is closed"
                ),
            ),
        }
    }
}

/// Where one wait ends: `until` (when that passes, the wait fails with `bound`'s error, or
/// `TimedOut` when it is the caller's own deadline), and `check_at`, when to look at the
/// cancel signal again.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limit {
    pub(super) until: Option<Instant>,
    pub(super) bound: Option<Bound>,
    pub(super) check_at: Option<Instant>,
}

impl Limit {
    /// The deadline the next poll(2) gets.
    pub(super) fn poll_until(&self) -> Option<Instant> {
        match (self.until, self.check_at) {
            (Some(u), Some(c)) => Some(u.min(c)),
            (u, c) => u.or(c),
        }
    }

    /// The error once `until` has passed.
    pub(super) fn expired(&self) -> io::Error {
        match self.bound {
            Some(b) => b.into_io(),
            None => io::Error::new(io::ErrorKind::TimedOut, "timed out"),
        }
    }

    fn tighten(&mut self, at: Instant, bound: Bound) {
        // On a tie the caller's own deadline wins: its callers know what a timeout means there.
        if self.until.map_or(true, |u| at < u) {
            self.until = Some(at);
            self.bound = Some(bound);
        }
    }
}

impl Bounds {
    pub(super) fn new() -> Bounds {
        Bounds {
            signal: Arc::default(),
            statement: 0,
            statement_deadline: None,
            grace: crate::config::DEFAULT_CANCEL_GRACE,
            cancel_on_signal: false,
            interrupted: std::cell::Cell::new(false),
            read_while_sending: read_while_sending(crate::config::DEFAULT_MAX_RESULT_BYTES),
        }
    }

    /// The limit of a wait given `deadline`, for sending (bounded by the statement timeout) or
    /// reading (not: the reader cancels at the statement timeout and reads on).
    pub(super) fn limit(&self, deadline: Option<Instant>, sending: bool) -> Limit {
        let mut limit = Limit { until: deadline, bound: None, check_at: None };
        if let Some((at, budget)) = CONNECT_BUDGET.get() {
            limit.tighten(at, Bound::Connect(budget));
        }
        if self.statement == 0 {
            return limit;
        }
        if let (true, Some((at, timeout))) = (sending, self.statement_deadline) {
            limit.tighten(at, Bound::StatementTimeout(timeout));
        }
        match self.signal.cancelled_at(self.statement) {
            Some(at) => limit.tighten(at + self.grace, Bound::CancelIgnored(self.grace)),
            // Nothing to look at: a cancel arriving during the wait arms the alarm, which ends
            // it at the grace (`watchdog`), unless no alarm could be started.
            None if self.signal.unalarmed.load(Ordering::Relaxed) => {
                limit.check_at = Some(Instant::now() + CHECK_CANCEL_WITHOUT_ALARM.min(self.grace));
            }
            None => {}
        }
        limit
    }

    /// Whether the running statement was cancelled and its grace has passed: a wait the alarm
    /// woke (by shutting the socket down) fails with `CancelIgnored`, not as a lost server.
    pub(super) fn cancel_expired(&self) -> Option<Bound> {
        let at = self.signal.cancelled_at(self.statement)?; // one atomic load unless cancelled
        (Instant::now() >= at + self.grace).then_some(Bound::CancelIgnored(self.grace))
    }

    fn begin(&mut self, timeout: Option<Duration>, grace: Duration) {
        // The next odd number (one before that never ended is ended first), which cancellers see
        // from now. 2^63 statements do not happen.
        let last = self.signal.running();
        self.statement = last + 1 + (last & 1);
        self.signal.statement.store(self.statement, Ordering::Release);
        self.statement_deadline = timeout.map(|t| (Instant::now() + t, t));
        self.grace = grace;
        self.signal.grace_ns.store(u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX), Ordering::Release);
        self.cancel_on_signal = false;
        self.interrupted.set(false);
    }

    /// True when the alarm shut the socket down for the statement that ended (see `watchdog`).
    fn end(&mut self) -> bool {
        let mut shut = false;
        if self.statement != 0 {
            // Even again: a cancel meant for the statement that ended finds it gone.
            self.signal.statement.store(self.statement + 1, Ordering::SeqCst);
            shut = self.signal.ended(self.statement);
        }
        self.statement = 0;
        self.statement_deadline = None;
        self.cancel_on_signal = false;
        shut
    }
}

thread_local! {
    /// While this thread opens a connection under `connect_within`: when to give up, and the
    /// budget (for the error).
    static CONNECT_BUDGET: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
}

/// Run `f`, which opens a connection on this thread, with every wait of every stream it uses
/// ending at `deadline` (`budget` is what the error names): connecting to each host in turn,
/// TLS, startup, authentication and `target_session_attrs`' query all share the one bound.
pub fn connect_within<T>(deadline: Instant, budget: Duration, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<(Instant, Duration)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CONNECT_BUDGET.set(self.0);
        }
    }
    let _restore = Restore(CONNECT_BUDGET.replace(Some((deadline, budget))));
    f()
}

/// The bound `connect_within` set on this thread, if it is tighter than `deadline`: the
/// deadline to use, and the bound to report when it passes.
pub(super) fn connect_deadline(deadline: Instant) -> (Instant, Option<Bound>) {
    match CONNECT_BUDGET.get() {
        Some((at, budget)) if at < deadline => (at, Some(Bound::Connect(budget))),
        _ => (deadline, None),
    }
}

impl PgConn {
    /// A statement begins on this connection: past `timeout` the reader asks the server to
    /// cancel it, and sending it fails; once it is cancelled (by the timeout or by a
    /// `Canceller`), its waits end `grace` later. `end_statement` ends it.
    pub fn begin_statement(&mut self, timeout: Option<Duration>, grace: Duration) {
        self.set_statement_timeout(timeout);
        self.stream.bounds.begin(timeout, grace);
    }

    /// For the statement begun: whether a signal that interrupts its wait for the server's
    /// answer cancels it (`SessionOptions::set_cancel_on_signal`). Ends with the statement.
    pub fn cancel_on_signal(&mut self, on: bool) {
        self.stream.bounds.cancel_on_signal = on;
    }

    /// The statement begun by `begin_statement` has ended: no bound of its applies any more,
    /// and a cancel meant for it is not taken by the next.
    pub fn end_statement(&mut self) {
        if self.stream.bounds.end() {
            // The cancel grace's alarm shut the socket down as the statement ended.
            self.broken = true;
        }
    }

    /// What cancels the statement running on this connection now, from any thread (the
    /// statement's cancel key and signal: no allocation).
    pub fn canceller(&self) -> Canceller {
        let signal = self.stream.bounds.signal.clone();
        Canceller { key: self.cancel_key.clone(), statement: signal.running(), signal }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(timeout: Option<Duration>, grace: Duration) -> Bounds {
        let mut b = Bounds::new();
        b.begin(timeout, grace);
        b
    }

    #[test]
    fn between_statements_only_the_callers_deadline_applies() {
        let b = Bounds::new();
        let d = Instant::now() + Duration::from_secs(3);
        let l = b.limit(Some(d), true);
        assert_eq!((l.until, l.bound, l.check_at), (Some(d), None, None));
        assert!(b.limit(None, false).poll_until().is_none(), "no deadline, nothing to look at");
    }

    #[test]
    fn sending_is_bounded_by_the_statement_timeout_and_reading_is_not() {
        let b = bounds(Some(Duration::from_millis(300)), Duration::from_secs(5));
        let send = b.limit(None, true);
        assert_eq!(send.bound, Some(Bound::StatementTimeout(Duration::from_millis(300))));
        assert!(send.until.unwrap() <= Instant::now() + Duration::from_millis(300));
        let read = b.limit(None, false);
        assert_eq!((read.until, read.bound), (None, None), "the reader cancels at the timeout itself");
        assert!(read.check_at.is_none(), "nor looks at the cancel signal: a cancel arms the alarm");
        // A tighter deadline of the caller's wins, and reports a plain timeout.
        let soon = Instant::now() + Duration::from_millis(10);
        assert_eq!(b.limit(Some(soon), true).bound, None);
        assert_eq!(b.limit(Some(soon), true).expired().kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn a_cancel_bounds_the_statement_it_was_meant_for_by_the_grace() {
        let grace = Duration::from_millis(200);
        let mut b = bounds(None, grace);
        let key = Arc::new(CancelKey {
            host: crate::config::HostSpec::tcp("127.0.0.1", 1),
            backend_pid: 0,
            secret_key: 0,
            tls: None,
        });
        let template = Canceller { key, signal: b.signal.clone(), statement: 0 };
        let stale = template.for_running();
        b.end();
        b.begin(None, grace);
        stale.signal.raise(stale.statement);
        assert_eq!(b.limit(None, false).bound, None, "a cancel of the statement before is not this one's");
        let now = template.for_running();
        let before = Instant::now();
        now.signal.raise(now.statement);
        let l = b.limit(None, false);
        assert_eq!(l.bound, Some(Bound::CancelIgnored(grace)));
        assert!(l.until.unwrap() >= before + grace && l.until.unwrap() <= Instant::now() + grace);
        let first = l.until;
        std::thread::sleep(Duration::from_millis(5));
        now.signal.raise(now.statement);
        assert_eq!(b.limit(None, false).until, first, "the grace counts from the first cancel");
        let e = b.limit(None, false).expired();
        assert_eq!(Bound::of(&e), Some(Bound::CancelIgnored(grace)));
        let err = Bound::of(&e).unwrap().error(&"h:1");
        assert_eq!((err.code, err.sqlstate()), (Code::PGSESS_QUERY_CANCELED, Some("57014")));
        b.end();
        assert_eq!(b.limit(None, false).bound, None, "ended: no bound");
    }

    #[test]
    fn a_waiting_statement_has_no_timer_and_the_alarm_ends_its_grace() {
        use std::os::fd::AsRawFd;
        let (ours, server) = std::os::unix::net::UnixStream::pair().unwrap();
        let grace = Duration::from_millis(50);
        let mut b = bounds(None, grace);
        b.signal.set_fd(ours.as_raw_fd());
        assert!(b.limit(None, false).poll_until().is_none(), "nothing cancelled: no timer");
        let key = Arc::new(CancelKey {
            host: crate::config::HostSpec::tcp("127.0.0.1", 1),
            backend_pid: 0,
            secret_key: 0,
            tls: None,
        });
        let c = Canceller { key, signal: b.signal.clone(), statement: 0 }.for_running();
        let hup = |fd: i32, ms: i32| {
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, ms) == 1 && p.revents & (libc::POLLHUP | libc::POLLIN) != 0 }
        };
        // A cancel of a statement that then ends within its grace: the socket is left alone.
        c.signal.raise(c.statement);
        assert!(!b.end(), "ended before the grace");
        std::thread::sleep(grace * 3);
        assert!(!hup(ours.as_raw_fd(), 0), "the alarm found the statement gone");
        // A cancel the server ignores: the alarm shuts the socket down at the grace.
        b.begin(None, grace);
        let c = c.for_running();
        let asked = Instant::now();
        c.signal.raise(c.statement);
        assert!(b.cancel_expired().is_none());
        assert!(hup(ours.as_raw_fd(), 5000), "the alarm woke the wait");
        assert!(asked.elapsed() >= grace);
        assert_eq!(b.cancel_expired(), Some(Bound::CancelIgnored(grace)));
        assert!(b.end(), "the end of a statement whose socket was shut down says so");
        b.signal.closing();
        drop(server);
    }

    #[test]
    fn connecting_within_a_budget_bounds_every_wait_on_this_thread_only() {
        let far = Instant::now() + Duration::from_secs(60);
        let at = Instant::now() + Duration::from_millis(100);
        let budget = Duration::from_millis(100);
        connect_within(at, budget, || {
            assert_eq!(connect_deadline(far), (at, Some(Bound::Connect(budget))));
            let l = Bounds::new().limit(None, false);
            assert_eq!((l.until, l.bound), (Some(at), Some(Bound::Connect(budget))));
            std::thread::spawn(move || assert_eq!(connect_deadline(far), (far, None))).join().unwrap();
        });
        assert_eq!(connect_deadline(far), (far, None), "restored after");
    }
}
