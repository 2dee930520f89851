//! Asynchronous statements for event-loop programs (the seed's TornadoSession, in C).
//!
//! A request is queued and returns at once. The session's workers take requests first in, first
//! out: there are `pool_max_size` of them, each running one statement at a time on a pooled
//! connection, so at most that many run while the rest wait in order. A queued request that is
//! not started within the checkout timeout fails with `PGSESS_POOL_EXHAUSTED`.
//!
//! Completions are queued for the event loop: an eventfd becomes readable, and `dispatch` runs
//! the ready callbacks on the thread that calls it. Every request's callback runs exactly once:
//! with its results (which hold their connection until freed, as everywhere) or its error.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::conn::CancelKey;
use crate::error::{Code, Error, Result};
use crate::results::Results;
use crate::session::Session;

/// What a request runs.
pub enum Statement {
    Query { sql: String, params: Vec<Option<Vec<u8>>> },
    Callproc { name: String, args: Vec<Option<Vec<u8>>> },
}

/// Called once with the request's outcome, on the thread that dispatches it.
pub type Completion = Box<dyn FnOnce(Result<Results>) + Send>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Finished,
}

struct RequestState {
    phase: Phase,
    cancel_requested: bool,
    /// The running statement's cancel key, once it has a connection.
    key: Option<Arc<CancelKey>>,
    /// The outcome, from when the request finishes until its callback runs.
    outcome: Option<Result<Results>>,
    callback: Option<Completion>,
}

/// One asynchronous request.
pub struct Request {
    statement: Statement,
    /// Must be started by then, or it fails as pool exhaustion.
    start_deadline: Instant,
    queued_at: Instant,
    state: Mutex<RequestState>,
    finished: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Request {
    pub fn new(statement: Statement, checkout_timeout: Duration, callback: Completion) -> Arc<Request> {
        let now = Instant::now();
        Arc::new(Request {
            statement,
            start_deadline: now + checkout_timeout,
            queued_at: now,
            state: Mutex::new(RequestState {
                phase: Phase::Queued,
                cancel_requested: false,
                key: None,
                outcome: None,
                callback: Some(callback),
            }),
            finished: Condvar::new(),
        })
    }

    fn cancelled_error() -> Error {
        Error {
            client_sqlstate: Some("57014"),
            ..Error::new(Code::PGSESS_QUERY_CANCELED, "the request was cancelled before it started")
        }
    }
}

struct Queue {
    waiting: VecDeque<Arc<Request>>,
    closing: bool,
}

/// The asynchronous engine of one session.
pub struct Engine {
    session: Mutex<Option<Session>>,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Finished requests whose callbacks have not run yet, in completion order.
    done: Mutex<VecDeque<Arc<Request>>>,
    /// Readable while `done` is not empty (an eventfd).
    fd: RawFd,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Start `workers` worker threads and the queue watcher for `session`.
    pub fn start(session: Session, workers: u32) -> Result<Arc<Engine>> {
        // SAFETY: creates a new descriptor owned by the engine.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::operational("58000", format!("eventfd failed: {}", std::io::Error::last_os_error())));
        }
        let engine = Arc::new(Engine {
            session: Mutex::new(Some(session)),
            queue: Mutex::new(Queue { waiting: VecDeque::new(), closing: false }),
            wake: Condvar::new(),
            done: Mutex::new(VecDeque::new()),
            fd,
            threads: Mutex::new(Vec::new()),
        });
        let mut threads = lock(&engine.threads);
        for i in 0..workers {
            let e = engine.clone();
            let spawned = std::thread::Builder::new().name(format!("pgsess-async-{i}")).spawn(move || e.work());
            threads.push(spawned.map_err(|err| Error::operational("58000", format!("cannot start a worker: {err}")))?);
        }
        let e = engine.clone();
        let watcher = std::thread::Builder::new().name("pgsess-async-watch".into()).spawn(move || e.watch());
        threads.push(watcher.map_err(|err| Error::operational("58000", format!("cannot start a worker: {err}")))?);
        drop(threads);
        Ok(engine)
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Queue a request. Fails only when the engine is shutting down.
    pub fn submit(&self, request: Arc<Request>) -> Result<()> {
        let mut q = lock(&self.queue);
        if q.closing {
            return Err(Error::interface("the session is closing: no new requests"));
        }
        q.waiting.push_back(request);
        self.wake.notify_all();
        Ok(())
    }

    /// Cancel a request: a queued one is dropped (its callback gets `PGSESS_QUERY_CANCELED`), a
    /// running one gets a server-side cancel. Finished requests are unaffected.
    pub fn cancel(&self, request: &Arc<Request>) {
        let removed = {
            let mut q = lock(&self.queue);
            let before = q.waiting.len();
            q.waiting.retain(|r| !Arc::ptr_eq(r, request));
            q.waiting.len() != before
        };
        if removed {
            self.finish(request, Err(Request::cancelled_error()));
            return;
        }
        let key = {
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
        let mut counter = 0u64;
        // SAFETY: reads 8 bytes from our eventfd into a u64 (resets it); EAGAIN when zero.
        unsafe { libc::read(self.fd, (&mut counter as *mut u64).cast(), 8) };
        let ready: Vec<Arc<Request>> = lock(&self.done).drain(..).collect();
        let n = ready.len();
        for request in ready {
            run_callback(&request);
        }
        n
    }

    /// Block until `request` has finished (up to `timeout`; `None` waits as long as it takes),
    /// then run its callback here if it has not run yet. True when it has run.
    pub fn wait(&self, request: &Arc<Request>, timeout: Option<Duration>) -> bool {
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
        lock(&self.done).retain(|r| !Arc::ptr_eq(r, request));
        run_callback(request);
        true
    }

    /// Cancel everything outstanding, stop the threads, and run every remaining callback on the
    /// calling thread (each exactly once). Idempotent.
    pub fn shutdown(&self) {
        let queued: Vec<Arc<Request>> = {
            let mut q = lock(&self.queue);
            q.closing = true;
            self.wake.notify_all();
            q.waiting.drain(..).collect()
        };
        for r in &queued {
            self.finish(r, Err(Request::cancelled_error()));
        }
        if let Some(s) = lock(&self.session).as_ref() {
            s.cancel();
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
        // Break the engine <-> session cycle.
        lock(&self.session).take();
        self.dispatch();
    }

    fn work(&self) {
        loop {
            let request = {
                let mut q = lock(&self.queue);
                loop {
                    if let Some(r) = q.waiting.pop_front() {
                        break r;
                    }
                    if q.closing {
                        return;
                    }
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            lock(&request.state).phase = Phase::Running;
            let Some(session) = lock(&self.session).clone() else { return };
            let started = |key: Arc<CancelKey>| {
                let mut st = lock(&request.state);
                if st.cancel_requested {
                    let _ = key.send();
                }
                st.key = Some(key);
            };
            let outcome = match &request.statement {
                Statement::Query { sql, params } => {
                    let params: Vec<Option<&[u8]>> = params.iter().map(|p| p.as_deref()).collect();
                    session.query_observed(sql, &params, started)
                }
                Statement::Callproc { name, args } => {
                    let args: Vec<Option<&[u8]>> = args.iter().map(|p| p.as_deref()).collect();
                    crate::session::callproc_sql(name, args.len())
                        .and_then(|sql| session.query_observed(&sql, &args, started))
                }
            };
            self.finish(&request, outcome);
        }
    }

    /// Fail queued requests whose start deadline has passed.
    fn watch(&self) {
        let mut q = lock(&self.queue);
        loop {
            if q.closing {
                return;
            }
            let now = Instant::now();
            let (expired, kept): (Vec<_>, Vec<_>) = q.waiting.drain(..).partition(|r| r.start_deadline <= now);
            q.waiting.extend(kept);
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
            let next = q.waiting.iter().map(|r| r.start_deadline).min();
            q = match next {
                Some(d) => {
                    self.wake.wait_timeout(q, d.saturating_duration_since(now)).unwrap_or_else(|p| p.into_inner()).0
                }
                None => self.wake.wait(q).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    fn finish(&self, request: &Arc<Request>, outcome: Result<Results>) {
        {
            let mut st = lock(&request.state);
            if st.phase == Phase::Finished {
                return;
            }
            st.phase = Phase::Finished;
            st.key = None;
            st.outcome = Some(outcome);
            request.finished.notify_all();
        }
        lock(&self.done).push_back(request.clone());
        let one: u64 = 1;
        // SAFETY: writes 8 bytes to our eventfd.
        unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
    }
}

/// Run the request's callback if it has not run yet.
fn run_callback(request: &Request) {
    let (callback, outcome) = {
        let mut st = lock(&request.state);
        (st.callback.take(), st.outcome.take())
    };
    if let (Some(callback), Some(outcome)) = (callback, outcome) {
        callback(outcome);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the engine owns its eventfd.
        unsafe { libc::close(self.fd) };
    }
}
