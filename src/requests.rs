//! Asynchronous statements for event-loop programs (sprockets.clients.postgresql's
//! TornadoSession, in C).
//!
//! A request is a job (a closure that runs one statement, given by the session) queued with the
//! callback that receives its outcome; submitting returns at once. The engine knows nothing of
//! sessions: it runs the jobs it is given. A session's workers take requests first in, first
//! out: there are `pool_max_size` of them, each running one statement at a time on a pooled
//! connection, so at most that many run while the rest wait in order. A queued request that is
//! not started within the checkout timeout fails with `PGSESS_POOL_EXHAUSTED`. Cancelling a
//! running request (or closing the engine) asks the server to cancel its statement, which then
//! ends within the session's cancel grace (see `conn::Canceller`).
//!
//! Completions are queued for the event loop: an eventfd becomes readable, and `dispatch` runs
//! the ready callbacks on the thread that calls it. Every request's callback runs exactly once:
//! with its results (which hold their connection until freed, as everywhere) or its error.
//!
//! An engine belongs to the process that started it: its workers do not exist in a forked child.
//! A child's session starts an engine of its own (with its own eventfd); the parent's engine,
//! reachable in the child only through request handles made before fork(), is never locked
//! there: cancelling such a request does nothing and waiting for it returns false at once (its
//! callback runs, if ever, in the parent).

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::conn::Canceller;
use crate::error::{Code, Error, Result};
use crate::results::Results;

/// Told what cancels the running statement once it has a connection and is about to be sent;
/// returns false when the request was cancelled meanwhile (the statement is then not sent).
pub type Started<'a> = &'a mut dyn FnMut(Canceller) -> bool;

/// What a request runs, on a worker thread: one statement, reporting to `Started` before it sends.
pub type Job = Box<dyn FnOnce(Started<'_>) -> Result<Box<Results>> + Send>;

/// Called once with the request's outcome, on the thread that dispatches it.
pub type Completion = Box<dyn FnOnce(Result<Box<Results>>) + Send>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Finished,
}

struct RequestState {
    phase: Phase,
    /// Set by a cancel (or a close) while running: a statement not yet sent is not sent.
    cancel_requested: bool,
    /// What cancels the running statement, once it has a connection.
    key: Option<Canceller>,
    /// Until a worker takes it, or the request finishes without running.
    job: Option<Job>,
    /// The outcome, from when the request finishes until its callback runs.
    outcome: Option<Result<Box<Results>>>,
    callback: Option<Completion>,
}

/// One asynchronous request.
pub struct Request {
    /// Must be started by then, or it fails as pool exhaustion.
    start_deadline: Instant,
    queued_at: Instant,
    state: Mutex<RequestState>,
    finished: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The error of a request cancelled before its statement reached the server.
pub fn cancelled_error() -> Error {
    Error {
        client_sqlstate: Some("57014"),
        ..Error::new(Code::PGSESS_QUERY_CANCELED, "the request was cancelled before it ran")
    }
}

/// The error of a running request that a closing engine stopped waiting for: its statement was
/// cancelled and had not ended within the cancel grace.
fn abandoned_error(grace: Duration) -> Error {
    Error {
        client_sqlstate: Some("57014"),
        ..Error::new(
            Code::PGSESS_QUERY_CANCELED,
            format!(
                "the session was closed: the request's statement was cancelled and had not ended within the cancel \
                 grace ({} ms)",
                grace.as_millis()
            ),
        )
    }
}

impl Request {
    pub fn new(job: Job, checkout_timeout: Duration, callback: Completion) -> Arc<Request> {
        let now = Instant::now();
        Arc::new(Request {
            start_deadline: now + checkout_timeout,
            queued_at: now,
            state: Mutex::new(RequestState {
                phase: Phase::Queued,
                cancel_requested: false,
                key: None,
                job: Some(job),
                outcome: None,
                callback: Some(callback),
            }),
            finished: Condvar::new(),
        })
    }
}

/// A submitted request with the engine it runs on: what its submitter cancels or waits on.
pub struct Pending {
    pub engine: Arc<Engine>,
    pub request: Arc<Request>,
}

impl Pending {
    /// See `Engine::cancel`.
    pub fn cancel(&self) {
        self.engine.cancel(&self.request);
    }

    /// See `Engine::wait`.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.engine.wait(&self.request, timeout)
    }
}

struct Queue {
    /// Waiting requests in submission order; their start deadlines are in the same order (one
    /// checkout timeout per session), so the first to expire is always at the front.
    waiting: VecDeque<Arc<Request>>,
    /// Taken by a worker and not finished yet.
    running: Vec<Arc<Request>>,
    closing: bool,
}

/// The asynchronous engine of one session.
pub struct Engine {
    queue: Mutex<Queue>,
    /// Wakes one worker per submitted request.
    work: Condvar,
    /// Wakes the watcher when the front of the queue changes, and `shutdown` when a request
    /// finishes.
    changed: Condvar,
    /// Finished requests whose callbacks have not run yet, in completion order.
    done: Mutex<VecDeque<Arc<Request>>>,
    /// Readable while `done` is not empty (an eventfd).
    fd: RawFd,
    /// The process whose threads run this engine.
    pid: u32,
}

impl Engine {
    /// Start `workers` worker threads and the queue watcher.
    pub fn start(workers: u32) -> Result<Arc<Engine>> {
        // SAFETY: creates a new descriptor owned by the engine.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::operational("58000", format!("eventfd failed: {}", std::io::Error::last_os_error())));
        }
        let engine = Arc::new(Engine {
            queue: Mutex::new(Queue { waiting: VecDeque::new(), running: Vec::new(), closing: false }),
            work: Condvar::new(),
            changed: Condvar::new(),
            done: Mutex::new(VecDeque::new()),
            fd,
            pid: crate::process::current_pid(),
        });
        let spawn = |name: String, f: fn(&Engine)| {
            let e = engine.clone();
            std::thread::Builder::new()
                .name(name)
                .spawn(move || f(&e))
                .map(drop)
                .map_err(|err| Error::operational("58000", format!("cannot start a worker thread: {err}")))
        };
        for i in 0..workers {
            spawn(format!("pgsess-async-{i}"), Engine::work)?;
        }
        spawn("pgsess-async-watch".into(), Engine::watch)?;
        Ok(engine)
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// False in a forked child for its parent's engine, whose locks must not be taken there (a
    /// parent thread may have held one at the instant of fork()).
    fn ours(&self) -> bool {
        self.pid == crate::process::current_pid()
    }

    /// In a forked child, for its parent's engine: close this process's copy of the eventfd (the
    /// parent's completions must not wake the child's event loop). The engine is never used nor
    /// dropped here afterwards.
    pub(crate) fn abandon(&self) {
        if !self.ours() {
            // SAFETY: this process's copy of the parent's descriptor; nothing in this process
            // uses it (every entry checks `ours` first, and the engine is never dropped here).
            unsafe { libc::close(self.fd) };
        }
    }

    /// Queue a request. Fails only when the engine is shutting down.
    pub fn submit(&self, request: Arc<Request>) -> Result<()> {
        if !self.ours() {
            return Err(Error::interface("this request engine belongs to the parent process"));
        }
        let mut q = lock(&self.queue);
        if q.closing {
            return Err(Error::interface("the session is closing: no new requests"));
        }
        q.waiting.push_back(request);
        if q.waiting.len() == 1 {
            self.changed.notify_all(); // a new front: the watcher's next deadline
        }
        self.work.notify_one();
        Ok(())
    }

    /// Cancel a request: a queued one is dropped (its callback gets `PGSESS_QUERY_CANCELED`); a
    /// running one whose statement has not been sent yet is not sent; a running statement gets
    /// a server-side cancel. Finished requests are unaffected.
    pub fn cancel(&self, request: &Arc<Request>) {
        if !self.ours() {
            return; // a request of the parent's
        }
        let key = {
            let mut q = lock(&self.queue);
            let before = q.waiting.len();
            q.waiting.retain(|r| !Arc::ptr_eq(r, request));
            if q.waiting.len() != before {
                drop(q);
                self.finish(request, Err(cancelled_error()));
                return;
            }
            // Not queued: running (marked under this same lock when taken) or finished.
            let mut st = lock(&request.state);
            if st.phase != Phase::Running {
                return;
            }
            st.cancel_requested = true;
            st.key.clone()
        };
        if let Some(key) = key {
            let _ = key.send();
        }
    }

    /// Run the callbacks of every finished request on this thread; returns how many ran.
    pub fn dispatch(&self) -> usize {
        if !self.ours() {
            return 0;
        }
        let ready: Vec<Arc<Request>> = {
            let mut done = lock(&self.done);
            self.clear_fd();
            done.drain(..).collect()
        };
        ready.iter().filter(|r| run_callback(r)).count()
    }

    /// Reset the eventfd. Called with `done` locked and about to be empty: completions push and
    /// signal under that lock, so readiness is neither lost nor left stale.
    fn clear_fd(&self) {
        let mut counter = 0u64;
        // SAFETY: reads 8 bytes from our eventfd into a u64 (resets it); EAGAIN when zero.
        unsafe { libc::read(self.fd, (&mut counter as *mut u64).cast(), 8) };
    }

    /// Block until `request` has finished (up to `timeout`; `None` waits as long as it takes),
    /// then run its callback here if it has not run yet. True when it has run.
    pub fn wait(&self, request: &Arc<Request>, timeout: Option<Duration>) -> bool {
        if !self.ours() {
            return false; // a request of the parent's: it finishes, if ever, in the parent
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = lock(&request.state);
        while st.phase != Phase::Finished {
            st = match deadline {
                None => request.finished.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    request.finished.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
        drop(st);
        // `finish` put it on `done` before marking it finished: take it off so no dispatch
        // counts it again.
        {
            let mut done = lock(&self.done);
            done.retain(|r| !Arc::ptr_eq(r, request));
            if done.is_empty() {
                self.clear_fd(); // no stale wakeup for the request just handled
            }
        }
        run_callback(request);
        true
    }

    /// Cancel everything outstanding and run every remaining callback on the calling thread
    /// (each exactly once). Requests still waiting for a connection are finished as cancelled at
    /// once (their workers drop whatever they get later); running statements get a server-side
    /// cancel, and have `grace` to end: those still running then fail with
    /// `PGSESS_QUERY_CANCELED` (their workers drop whatever they get later; their statements'
    /// own waits end at the same grace). Returns within `grace`, or the time it takes to send
    /// the cancel requests when that is longer (at most `conn::CancelKey::send`'s 5 s in all).
    /// Idempotent.
    pub fn shutdown(&self, grace: Duration) {
        if !self.ours() {
            return;
        }
        let (queued, running) = {
            let mut q = lock(&self.queue);
            q.closing = true;
            self.work.notify_all();
            self.changed.notify_all();
            (q.waiting.drain(..).collect::<Vec<_>>(), q.running.clone())
        };
        let started = Instant::now();
        let deadline = started + grace;
        for r in &queued {
            self.finish(r, Err(cancelled_error()));
        }
        let mut cancellers = Vec::new();
        for r in &running {
            let key = {
                let mut st = lock(&r.state);
                st.cancel_requested = true;
                st.key.clone()
            };
            match key {
                Some(key) => cancellers.push(key),
                None => self.finish(r, Err(cancelled_error())),
            }
        }
        // The cancel requests, one after another, share one bound for sending.
        let send_by = started + grace.max(crate::conn::CANCEL_CONNECT_TIMEOUT);
        for key in &cancellers {
            let _ = key.send_by(send_by);
        }
        // Every accepted request finishes as soon as its cancelled statement returns, or at the
        // grace.
        let mut q = lock(&self.queue);
        while !q.running.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            q = self.changed.wait_timeout(q, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        let late = q.running.clone();
        drop(q);
        for r in &late {
            self.finish(r, Err(abandoned_error(grace)));
        }
        self.dispatch();
    }

    fn work(&self) {
        loop {
            let request = {
                let mut q = lock(&self.queue);
                loop {
                    if q.closing {
                        return;
                    }
                    if let Some(r) = q.waiting.pop_front() {
                        // Marked running under the queue lock: a cancel sees it queued or running.
                        lock(&r.state).phase = Phase::Running;
                        q.running.push(r.clone());
                        self.changed.notify_all();
                        break r;
                    }
                    q = self.work.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            let Some(job) = lock(&request.state).job.take() else {
                continue; // finished (cancelled) before it could run
            };
            let mut started = |key: Canceller| {
                let mut st = lock(&request.state);
                st.key = Some(key);
                !st.cancel_requested && st.phase == Phase::Running
            };
            let run = || job(&mut started);
            // A panic (a bug) fails this request like any error: the worker lives on, and the
            // request's callback still runs exactly once, so no caller waits forever.
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| Err(Error::panic()));
            self.finish(&request, outcome);
        }
    }

    /// Fail queued requests whose start deadline has passed; the earliest is always at the front.
    fn watch(&self) {
        let mut q = lock(&self.queue);
        loop {
            if q.closing {
                return;
            }
            let now = Instant::now();
            let mut expired = Vec::new();
            while q.waiting.front().is_some_and(|r| r.start_deadline <= now) {
                expired.extend(q.waiting.pop_front());
            }
            if !expired.is_empty() {
                drop(q);
                for r in expired {
                    let waited = r.queued_at.elapsed().as_millis();
                    self.finish(
                        &r,
                        Err(Error::new(
                            Code::PGSESS_POOL_EXHAUSTED,
                            format!(
                                "the request waited {waited} ms in the queue without a free connection (all workers busy); \
                                 free results with pgsess_results_free, or raise pool_max_size / checkout_timeout_ms"
                            ),
                        )),
                    );
                }
                q = lock(&self.queue);
                continue;
            }
            q = match q.waiting.front().map(|r| r.start_deadline) {
                Some(d) => {
                    self.changed.wait_timeout(q, d.saturating_duration_since(now)).unwrap_or_else(|p| p.into_inner()).0
                }
                None => self.changed.wait(q).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    /// Record the outcome (the first one wins), queue the callback and signal the fd.
    fn finish(&self, request: &Arc<Request>, outcome: Result<Box<Results>>) {
        let unrun = {
            let mut st = lock(&request.state);
            if st.phase == Phase::Finished {
                return;
            }
            st.phase = Phase::Finished;
            st.key = None;
            st.outcome = Some(outcome);
            // On `done` (and the fd signalled, under the same lock, so that the fd's counter and
            // `done` always agree for `dispatch` and `wait`) before anyone can see it finished.
            let mut done = lock(&self.done);
            done.push_back(request.clone());
            let one: u64 = 1;
            // SAFETY: writes 8 bytes to our eventfd.
            unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
            drop(done);
            request.finished.notify_all();
            st.job.take()
        };
        // A job that never ran holds what it would have run with (its session among them):
        // dropped here, outside every lock.
        drop(unrun);
        let mut q = lock(&self.queue);
        q.running.retain(|r| !Arc::ptr_eq(r, request));
        self.changed.notify_all();
    }
}

/// Run the request's callback if it has not run yet; true when it ran now.
fn run_callback(request: &Request) -> bool {
    let (callback, outcome) = {
        let mut st = lock(&request.state);
        (st.callback.take(), st.outcome.take())
    };
    match (callback, outcome) {
        (Some(callback), Some(outcome)) => {
            callback(outcome);
            true
        }
        _ => false,
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.ours() {
            // SAFETY: the engine owns its eventfd.
            unsafe { libc::close(self.fd) };
        }
    }
}
