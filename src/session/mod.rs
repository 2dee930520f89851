//! A session: a handle on a shared pool plus what sprockets.clients.postgresql's `Session` exposes about it (the
//! backend pid of the latest statement, the last 50 notices). Any number of threads may use one
//! session at once; each statement checks out its own connection.
//!
//! After `fork()` a session goes on working in the child: its first call there finds the
//! session's per-process part (`PerProcess`) made by another process and installs one of the
//! child's own, on the child's own pool. The parent's part is never locked (a parent thread may
//! have held one of its locks at the instant of fork()) nor dropped: it is kept untouched.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

mod copy;
mod notify;
mod pending;
mod tx;

pub use copy::Copy;
pub use notify::{NOTIFICATIONS_KEPT, NOTIFICATION_BYTES_KEPT};
pub use pending::PendingStatement;
pub use tx::{savepoint_ident, Isolation, Transaction, TxOptions, DEFAULT_TX_ATTEMPTS};

use crate::config::{self, ConnectConfig, PoolSettings, ProcessEnvironment, SessionOptions};
use crate::conn::{BatchStatement, Canceller, Param, PgConn};
use crate::error::{Code, Error, Result};
use crate::pool::{registry, Lease, Pool, PoolStats};
use crate::requests::{Completion, Engine, Job, Pending, Request};
use crate::results::{Hold, Results};
use crate::rows::{Column, ResultSet};

/// How many notices a session keeps (psycopg2's `CONN_NOTICES_LIMIT`).
pub const NOTICES_KEPT: usize = 50;

/// Session ids, for `SessionInner::id` (never 0, which marks a connection running nothing).
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// Where a session's statements get their connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binding {
    /// Each statement checks out a connection of its own (and its results hold it).
    Pooled,
    /// One connection for the session's life, as a libpq connection: state carries from one
    /// statement to the next. A connection that dies is replaced by the next statement.
    Pinned,
    /// The connection of one transaction (`Transaction::session`): every statement runs inside
    /// it, until it ends.
    Transaction,
}

/// A pinned session's connection (counted in its pool's `pinned_sessions` while held), or a
/// transaction's (counted as the transaction).
struct Pin {
    lease: Arc<Lease>,
    counted: bool,
}

impl Pin {
    fn pinned(lease: Arc<Lease>) -> Pin {
        lease.shared().counters.pinned_sessions.inc();
        lease.set_holder(|| "a pinned session".to_owned());
        Pin { lease, counted: true }
    }

    fn transaction(lease: Arc<Lease>) -> Pin {
        Pin { lease, counted: false }
    }
}

impl Drop for Pin {
    /// A pinned session's end: its connection gets a full reset (unless the pool's mode is
    /// NEVER), since state a statement rule cannot see accumulates over a whole session.
    fn drop(&mut self) {
        if self.counted {
            self.lease.shared().counters.pinned_sessions.dec();
            let _ = self.lease.with_conn(|c| {
                c.mark_session_changed();
                Ok(())
            });
        }
    }
}

/// What a session has in one process: its pool, its latest backend pid and notices, its
/// asynchronous engine (its running statements are marked on their connections' slots, see
/// `Lease::run_for`). Immutable apart from its atomics and locks, which only threads of process
/// `pid` ever use. A statement takes none of the session's locks unless it raised notices.
struct PerProcess {
    pid: u32,
    pool: Arc<Pool>,
    /// The pool's id for C, for as long as this part lives.
    pool_id: CString,
    /// The backend of the session's latest statement.
    last_backend_pid: AtomicI32,
    /// The latest notices, oldest first.
    notices: Mutex<VecDeque<String>>,
    /// Asynchronous requests (started on first use).
    requests: OnceLock<Arc<Engine>>,
    /// Serialises making `requests` and `notifier` on first use.
    init: Mutex<()>,
    /// A pinned or transaction-bound session's connection (`Binding`); always `None` for a
    /// pooled one. Locked only to take or replace it, never while a statement runs. Shared
    /// (weakly) with the watcher that reads notifications while the connection is idle.
    pin: Arc<Mutex<Option<Pin>>>,
    /// Notifications (`notify`), made on first use.
    notifier: OnceLock<Arc<notify::Notifier>>,
    /// The COPYs open on a pinned or transaction's session's connection.
    copies: Mutex<Vec<std::sync::Weak<copy::CopyHold>>>,
    /// Notices of the session's statements not kept: dropped by their results
    /// (`ResultSet::notices_dropped`) or past `NOTICES_KEPT` here.
    notices_dropped: AtomicU64,
}

impl PerProcess {
    fn new(pool: Arc<Pool>) -> PerProcess {
        PerProcess {
            pin: Arc::new(Mutex::new(None)),
            notifier: OnceLock::new(),
            copies: Mutex::new(Vec::new()),
            pid: crate::process::current_pid(),
            pool_id: CString::new(pool.id.as_str()).unwrap_or_default(),
            pool,
            last_backend_pid: AtomicI32::new(0),
            notices: Mutex::new(VecDeque::new()),
            requests: OnceLock::new(),
            init: Mutex::new(()),
            notices_dropped: AtomicU64::new(0),
        }
    }
}

/// What bounds a session's statements (`SessionOptions`).
#[derive(Clone, Copy, Debug)]
struct Waits {
    /// Past it, the statement is cancelled (and sending it fails).
    statement_timeout: Option<Duration>,
    /// A cancelled statement's wait for the server's answer; closing the session waits as long
    /// for its asynchronous requests.
    cancel_grace: Duration,
    /// A signal interrupting the wait for an answer cancels the statement.
    cancel_on_signal: bool,
}

pub(crate) struct SessionInner {
    config: ConnectConfig,
    settings: PoolSettings,
    waits: Waits,
    /// Runs on the local pool core even in the original process (tests).
    local_pool: bool,
    /// Distinguishes the session's statements from others on the same pool (for `cancel`). A
    /// transaction's session has the id of the session that began the transaction, so that
    /// session's `cancel` reaches the transaction's statements.
    id: u64,
    binding: Binding,
    /// For a transaction's session: the session that began the transaction, which records its
    /// statements' backend and notices too.
    parent: Option<Session>,
    /// This process's part: never null; replaced (never freed) in a forked child by its first
    /// call; freed with the session by the process it belongs to.
    here: AtomicPtr<PerProcess>,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        let here = *self.here.get_mut();
        // SAFETY: `here` came from Box::into_raw and nothing else refers to it any more (the
        // session is being dropped); a parent's part is kept, not freed.
        let here = unsafe { Box::from_raw(here) };
        if here.pid != crate::process::current_pid() {
            crate::process::keep(here);
        }
    }
}

/// A session on a process-wide pool. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Session(Arc<SessionInner>);

impl std::fmt::Debug for Session {
    /// The configuration without the password, and the pool id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("config", &self.0.config).field("pool", &self.here().pool.id).finish()
    }
}

/// Lock one of this process's locks; they guard nothing a panic could leave half-updated.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// Open a session named `dbname`: the URI comes from `options.db_url` when set, else from the
    /// environment variable `PGSQL_<DBNAME>` (see `config::env_var_name`). Attaching to an
    /// existing pool opens no connection; creating a pool opens its first connection so that a
    /// wrong address or password fails here, not at the first query.
    pub fn open(dbname: &str, options: &SessionOptions) -> Result<Session> {
        Session::open_on(dbname, options, false)
    }

    /// `open` on a pool of its own, made as a forked child makes its pools. For the test suite,
    /// which runs the pool's contract on both kinds.
    #[doc(hidden)]
    pub fn open_with_local_pool(dbname: &str, options: &SessionOptions) -> Result<Session> {
        Session::open_on(dbname, options, true)
    }

    fn open_on(dbname: &str, options: &SessionOptions, local_pool: bool) -> Result<Session> {
        let mut config = match &options.db_url {
            Some(url) => config::parse_uri(url, &ProcessEnvironment).map_err(|e| e.context("db_url"))?,
            None => {
                let uri = config::uri_from_env(dbname)?;
                let var = config::env_var_name(dbname);
                config::parse_uri(&uri, &ProcessEnvironment)
                    .map_err(|e| e.context(format!("environment variable {var}")))?
            }
        };
        config.password_hook = options.password_hook.clone();
        crate::atfork::register();
        let (pool, created) = registry::get_or_create(&config, options.pool, local_pool);
        let waits = Waits {
            statement_timeout: options.statement_timeout,
            cancel_grace: options.cancel_grace(),
            cancel_on_signal: options.cancel_on_signal,
        };
        let session = Session::on_pool(
            config,
            options.pool,
            waits,
            local_pool,
            Binding::Pooled,
            None,
            PerProcess::new(pool.clone()),
        );
        if created {
            match pool.connect_first() {
                Ok(pid) => session.here().last_backend_pid.store(pid, Ordering::Relaxed),
                Err(e) => {
                    registry::remove(&pool);
                    return Err(e);
                }
            }
        }
        if options.pinned {
            return session.pin();
        }
        Ok(session)
    }

    /// A session on `here`'s pool. A transaction's session (`parent` given) takes its parent's
    /// id; any other gets a new one.
    fn on_pool(
        config: ConnectConfig,
        settings: PoolSettings,
        waits: Waits,
        local_pool: bool,
        binding: Binding,
        parent: Option<Session>,
        here: PerProcess,
    ) -> Session {
        let id = parent.as_ref().map_or_else(|| NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed), |p| p.0.id);
        Session(Arc::new(SessionInner {
            config,
            settings,
            waits,
            local_pool,
            id,
            binding,
            parent,
            here: AtomicPtr::new(Box::into_raw(Box::new(here))),
        }))
    }

    /// A new pinned session on this session's pool: it checks out one connection now (waiting
    /// up to the checkout timeout) and keeps it until dropped, so every statement of it runs on
    /// that connection, one at a time, and session state (settings, temporary tables, prepared
    /// statements, LISTEN) carries from one to the next. Dropping it returns the connection,
    /// reset as the pool's reset mode says, once its results are dropped too.
    pub fn pin(&self) -> Result<Session> {
        let pinned = self.sibling(Binding::Pinned, None);
        let lease = pinned.pinned_lease()?;
        let pid = lease.with_conn(|c| Ok(c.backend_pid())).unwrap_or(0);
        pinned.here().last_backend_pid.store(pid, Ordering::Relaxed);
        Ok(pinned)
    }

    /// A new session with this one's configuration, on its pool in this process, bound as
    /// `binding` says (to `pin`'s connection when given).
    fn sibling(&self, binding: Binding, pin: Option<Pin>) -> Session {
        let inner = &self.0;
        let here = PerProcess::new(self.pool().clone());
        *lock(&here.pin) = pin;
        let parent = (binding == Binding::Transaction).then(|| self.clone());
        Session::on_pool(inner.config.clone(), inner.settings, inner.waits, inner.local_pool, binding, parent, here)
    }

    /// Whether the session holds one connection for its life (`pin`, or a transaction's).
    pub fn is_pinned(&self) -> bool {
        self.0.binding != Binding::Pooled
    }

    /// Whether this is a transaction's session (`Transaction::session`), which the transaction
    /// owns: closing it does nothing.
    pub fn is_transaction_bound(&self) -> bool {
        self.0.binding == Binding::Transaction
    }

    /// A connection from the pool. When none could be opened (the server is unreachable, or
    /// shutting down or starting up), the error is marked unsent (`Error::unsent`): no statement
    /// reached a server. Pool exhaustion and refused logins are not.
    fn checkout(&self) -> Result<Lease> {
        self.pool().checkout().map_err(|e| match e.sqlstate() {
            Some(s) if e.code == Code::PGSESS_OPERATIONAL_ERROR && could_not_connect(s) => e.mark_unsent(),
            _ => e,
        })
    }

    /// The connection a statement runs on, as what its results hold: a new checkout for a
    /// pooled session, the session's own connection otherwise.
    fn hold(&self) -> Result<Hold> {
        match self.0.binding {
            Binding::Pooled => Ok(Hold::Lease(self.checkout()?)),
            Binding::Pinned | Binding::Transaction => Ok(Hold::Shared(self.pinned_lease()?)),
        }
    }

    /// `hold`, for what shares its connection with several results (streams, batches,
    /// transactions).
    fn shared_lease(&self) -> Result<Arc<Lease>> {
        match self.0.binding {
            Binding::Pooled => Ok(Arc::new(self.checkout()?)),
            Binding::Pinned | Binding::Transaction => self.pinned_lease(),
        }
    }

    /// A pinned session's connection: checked out on first use and again after it was lost.
    fn pinned_lease(&self) -> Result<Arc<Lease>> {
        let here = self.here();
        let mut pin = lock(&here.pin);
        if let Some(pin) = pin.as_ref() {
            return Ok(pin.lease.clone());
        }
        if self.0.binding == Binding::Transaction {
            return Err(Error::interface(
                "this transaction's session can no longer be used: its transaction has ended, or was begun before \
                 fork() by the parent process (whose connection a child never uses)",
            ));
        }
        let lease = Arc::new(self.checkout()?);
        *pin = Some(Pin::pinned(lease.clone()));
        Ok(lease)
    }

    /// After a statement of a pinned session failed: if its connection is gone, say so in the
    /// error (the session's state went with it) and let the next statement check out another.
    fn after_pinned_failure(&self, lease: &Lease, e: Error) -> Error {
        let lost = lease.with_conn(|c| Ok(c.is_broken())).unwrap_or(true);
        if !lost {
            return e;
        }
        let here = self.here();
        let mut pin = lock(&here.pin);
        let ours = pin.as_ref().is_some_and(|p| std::ptr::eq(&*p.lease, lease));
        match self.0.binding {
            Binding::Pinned => {
                if ours {
                    pin.take();
                }
                let message = format!(
                    "{}; this pinned session's connection is lost, and with it the session's state (settings, \
                     temporary tables, prepared statements, cursors, listened channels, advisory locks); its next \
                     statement runs on a new connection",
                    e.message
                );
                Error { message, ..e }
            }
            Binding::Transaction | Binding::Pooled => e,
        }
    }

    /// This process's part of the session: one atomic load and a comparison with the cached
    /// process id; in a forked child's first call, a new part.
    #[inline]
    fn here(&self) -> &PerProcess {
        // SAFETY: `here` is never null and what it points to is never freed before the session
        // (a replaced part is kept forever).
        let here = unsafe { &*self.0.here.load(Ordering::Acquire) };
        if here.pid == crate::process::current_pid() {
            here
        } else {
            self.here_after_fork()
        }
    }

    /// This process's part if it has one already (`None` in a forked child before its first
    /// call: there is nothing of the child's to act on yet).
    fn here_if_made(&self) -> Option<&PerProcess> {
        // SAFETY: as in `here`.
        let here = unsafe { &*self.0.here.load(Ordering::Acquire) };
        (here.pid == crate::process::current_pid()).then_some(here)
    }

    /// The first call in a forked child (or several racing ones, if the child started threads
    /// first): install a part for this process, on this process's pool for the configuration.
    /// Only process-wide locks are taken (the registry's), which the atfork handlers keep
    /// consistent; the parent's part is not locked, not dropped, and its engine's eventfd (this
    /// process's copy) is closed.
    #[cold]
    fn here_after_fork(&self) -> &PerProcess {
        let me = crate::process::current_pid();
        let pool = registry::get_or_create(&self.0.config, self.0.settings, self.0.local_pool).0;
        let fresh = Box::into_raw(Box::new(PerProcess::new(pool)));
        let mut seen = self.0.here.load(Ordering::Acquire);
        loop {
            // SAFETY: as in `here`.
            let current = unsafe { &*seen };
            if current.pid == me {
                // Another thread of this process got there first.
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                return current;
            }
            match self.0.here.compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    // SAFETY: replaced, so no longer reachable from the session; threads of this
                    // process that loaded it only read `pid` and move on.
                    let parents = unsafe { Box::from_raw(seen) };
                    if let Some(engine) = parents.requests.get() {
                        engine.abandon();
                    }
                    if let Some(notifier) = parents.notifier.get() {
                        notifier.abandon();
                    }
                    crate::process::keep(parents);
                    // SAFETY: just installed; freed only with the session.
                    return unsafe { &*fresh };
                }
                Err(now) => seen = now,
            }
        }
    }

    /// The session's pool in this process.
    fn pool(&self) -> &Arc<Pool> {
        &self.here().pool
    }

    pub fn pool_id(&self) -> String {
        self.pool().id.clone()
    }

    /// The pool's id as a C string, valid until the session is dropped (in a forked child, the
    /// child's pool's id; the parent's stays valid too, since that part is kept).
    pub fn pool_id_c(&self) -> &CStr {
        &self.here().pool_id
    }

    /// Whether the session's pool in this process was made in a forked child or for
    /// `open_with_local_pool`.
    #[doc(hidden)]
    pub fn uses_local_pool(&self) -> bool {
        self.pool().is_local()
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.pool().stats()
    }

    /// Pinned sessions holding a connection of this session's pool now.
    pub fn pinned_sessions(&self) -> u64 {
        self.pool().counters().pinned_sessions.get()
    }

    /// This session's pool's statistics, version 2 (`PoolStatsV2`).
    pub fn pool_stats_v2(&self) -> crate::pool::PoolStatsV2 {
        self.pool().stats_v2()
    }

    /// This session's pool's statistics in Prometheus' text exposition format.
    pub fn pool_stats_text(&self) -> String {
        self.pool().stats_text()
    }

    /// Drain this session's pool (shared by every session of its configuration): see
    /// `Pool::drain`.
    pub fn pool_drain(&self, timeout: Duration) -> Result<()> {
        self.pool().drain(timeout)
    }

    /// Change this session's pool's `pool_max_size` (every session on the pool sees it): see
    /// `Pool::resize`.
    pub fn pool_resize(&self, max_size: u32) -> Result<()> {
        self.pool().resize(max_size)
    }

    /// Remember a COPY on this pinned or transaction's session's connection.
    fn register_copy(&self, hold: &Arc<copy::CopyHold>) {
        let mut copies = lock(&self.here().copies);
        copies.retain(|w| w.strong_count() > 0);
        copies.push(Arc::downgrade(hold));
    }

    /// The connection `lease` leaves a transaction: the COPYs open on it let it go now.
    fn release_copies_on(&self, lease: &Lease) {
        let Some(here) = self.here_if_made() else { return };
        let copies: Vec<_> = lock(&here.copies).drain(..).filter_map(|w| w.upgrade()).collect();
        let mut kept = Vec::new();
        for hold in copies {
            if hold.is_on(lease) {
                hold.release();
            } else {
                kept.push(Arc::downgrade(&hold));
            }
        }
        lock(&here.copies).extend(kept);
    }

    /// COPY handles holding a connection of this session's pool now.
    pub fn copies_open(&self) -> u64 {
        self.pool().counters().copies_open.get()
    }

    /// Run one statement (see `PgConn::execute`); the results keep the connection until dropped.
    pub fn query(&self, sql: &str, params: &[Option<&[u8]>]) -> Result<Box<Results>> {
        self.query_observed(sql, params, |_| true)
    }

    /// `query` with the columns of the types `rows::binary::prefers_binary` names in binary
    /// once the pool's statement cache knows the statement (see `PgConn::query_typed_into`).
    pub fn query_typed(&self, sql: &str, params: &[Option<&[u8]>]) -> Result<Box<Results>> {
        self.statement(self.hold()?, sql, |c, set| c.query_typed_into(sql, params, set))
    }

    /// `query`, calling `started` with what cancels the statement once it has a connection and
    /// is about to be sent; when `started` returns false the statement is not sent and the call
    /// fails with `PGSESS_QUERY_CANCELED` (the asynchronous API cancels single requests so: a
    /// server-side cancel that arrives before the statement does would be ignored).
    fn query_observed(
        &self,
        sql: &str,
        params: &[Option<&[u8]>],
        started: impl FnOnce(Canceller) -> bool,
    ) -> Result<Box<Results>> {
        self.statement(self.hold()?, sql, |c, set| {
            if !started(c.canceller()) {
                return Err(crate::requests::cancelled_error());
            }
            c.execute_into(sql, params, set)
        })
    }

    /// The session's asynchronous request engine, started on first use.
    /// In a forked child, a new engine of the child's own (the parent's worker threads do not
    /// exist there).
    pub fn requests(&self) -> Result<Arc<Engine>> {
        let here = self.here();
        if let Some(e) = here.requests.get() {
            return Ok(e.clone());
        }
        let _guard = lock(&here.init);
        if let Some(e) = here.requests.get() {
            return Ok(e.clone());
        }
        let engine = Engine::start(self.0.settings.max_size)?;
        let _ = here.requests.set(engine.clone());
        Ok(engine)
    }

    /// Queue `sql` with owned parameters on the session's asynchronous engine (see
    /// `crate::requests`); `callback` receives the outcome exactly once. Returns the engine and
    /// the request, for cancelling or waiting on it.
    pub fn query_async(&self, sql: String, params: Vec<Option<Vec<u8>>>, callback: Completion) -> Result<Pending> {
        let session = self.clone();
        self.submit(
            Box::new(move |started| {
                let params: Vec<Option<&[u8]>> = params.iter().map(|p| p.as_deref()).collect();
                session.query_observed(&sql, &params, started)
            }),
            callback,
        )
    }

    /// `callproc` on the asynchronous engine; otherwise as `query_async` (a bad function name
    /// fails here, before anything is queued).
    pub fn callproc_async(&self, name: &str, args: Vec<Option<Vec<u8>>>, callback: Completion) -> Result<Pending> {
        self.query_async(callproc_sql(name, args.len())?, args, callback)
    }

    fn submit(&self, job: Job, callback: Completion) -> Result<Pending> {
        let engine = self.requests()?;
        let request = Request::new(job, self.checkout_timeout(), callback);
        engine.submit(request.clone())?;
        Ok(Pending { engine, request })
    }

    /// Stop this process's asynchronous engine if it was started: outstanding requests are
    /// cancelled and every remaining callback runs on the calling thread. Running statements
    /// have the cancel grace to end; those that have not fail with `PGSESS_QUERY_CANCELED` (see
    /// `Engine::shutdown`).
    pub fn close_requests(&self) {
        if let Some(e) = self.here_if_made().and_then(|here| here.requests.get()) {
            e.shutdown(self.0.waits.cancel_grace);
        }
    }

    /// How long a cancelled statement of this session waits for the server's answer
    /// (`SessionOptions::set_cancel_grace_ms`).
    pub fn cancel_grace(&self) -> Duration {
        self.0.waits.cancel_grace
    }

    pub fn checkout_timeout(&self) -> Duration {
        self.0.settings.checkout_timeout
    }

    /// `PQexecParams` in full: declared parameter types (0 = inferred) and binary parameters.
    /// Always one statement on the extended protocol, even without parameters.
    pub fn query_params(&self, sql: &str, types: &[u32], params: &[Param<'_>]) -> Result<Box<Results>> {
        self.statement(self.hold()?, sql, |c, set| c.query_params_into(sql, types, params, set))
    }

    /// `query_params` with every result column in binary (`PQexecParams` with `resultFormat`
    /// 1): the values are the server's binary bytes, which the typed getters decode.
    pub fn query_binary(&self, sql: &str, types: &[u32], params: &[Param<'_>]) -> Result<Box<Results>> {
        self.statement(self.hold()?, sql, |c, set| c.query_binary_into(sql, types, params, set))
    }

    /// Run `sql` and receive its rows `chunk_rows` at a time; memory is bounded by one chunk.
    /// The stream (and each chunk's results) holds the connection until dropped.
    pub fn query_stream(&self, sql: &str, params: &[Option<&[u8]>], chunk_rows: u32) -> Result<RowStream> {
        self.query_stream_as(sql, params, chunk_rows, false)
    }

    /// `query_stream` with the columns of the types `rows::binary::prefers_binary` names in
    /// binary once the pool's statement cache knows the statement (`PgConn::stream_open`).
    pub fn query_stream_typed(&self, sql: &str, params: &[Option<&[u8]>], chunk_rows: u32) -> Result<RowStream> {
        self.query_stream_as(sql, params, chunk_rows, true)
    }

    fn query_stream_as(&self, sql: &str, params: &[Option<&[u8]>], chunk_rows: u32, typed: bool) -> Result<RowStream> {
        if chunk_rows == 0 {
            return Err(Error::interface("chunk_rows must be at least 1"));
        }
        let lease = self.shared_lease()?;
        let outcome = self.run(&lease, |c| c.stream_open(sql, params, chunk_rows, typed));
        let (first, more) = match outcome {
            Ok((set, more)) => (Ok(set), more),
            Err(e) => (Err(e), false),
        };
        self.note_statement(first.as_ref().ok(), &lease);
        let first = first?;
        lease.set_holder(|| format!("a stream of \"{}\"", abbreviate(sql)));
        Ok(RowStream::new(self.clone(), lease, first, more, chunk_rows, sql))
    }

    /// Run many statements in one round trip (pipelined, each its own implicit transaction): one
    /// outcome per statement, in order. The outer error means no statement result could be read
    /// (checkout failed, or the connection broke). Successful results share the connection.
    pub fn batch(&self, statements: &[BatchStatement]) -> Result<Vec<Result<Results>>> {
        let lease = self.shared_lease()?;
        let outcomes = self.run(&lease, |c| c.pipeline(statements))?;
        let mut out = Vec::with_capacity(outcomes.len());
        for (st, outcome) in statements.iter().zip(outcomes) {
            self.statement_ended(&lease, &st.sql, outcome.as_ref().ok());
            out.push(outcome.map(|set| Results::new(set, &st.sql, Hold::Shared(lease.clone()))));
        }
        Ok(out)
    }

    /// sprockets.clients.postgresql's `callproc`: `SELECT * FROM name($1, ...)`, the name quoted
    /// as an identifier.
    pub fn callproc(&self, name: &str, args: &[Option<&[u8]>]) -> Result<Box<Results>> {
        let sql = callproc_sql(name, args.len())?;
        self.query(&sql, args)
    }

    /// `callproc` with arguments in `PQexecParams` form (declared types, binary arguments).
    pub fn callproc_params(&self, name: &str, types: &[u32], args: &[Param<'_>]) -> Result<Box<Results>> {
        let sql = callproc_sql(name, args.len())?;
        self.query_params(&sql, types, args)
    }

    /// Whether a connection can be had and answers a trivial statement.
    pub fn validate(&self) -> bool {
        self.query("SELECT 1", &[]).is_ok_and(|r| r.set.value(0, 0) == Some(b"1"))
    }

    /// The client encoding: always UTF8 (see `set_encoding`).
    pub fn encoding(&self) -> &'static CStr {
        c"UTF8"
    }

    /// pgsess always speaks UTF8 to the server and returns UTF-8 text; other encodings would
    /// corrupt text, so only UTF8's spellings are accepted.
    pub fn set_encoding(&self, encoding: &str) -> Result<()> {
        if crate::text::is_utf8_alias(encoding) {
            Ok(())
        } else {
            Err(Error::not_supported(format!(
                "client encoding \"{encoding}\" is not supported: pgsess sessions always use UTF8 and return UTF-8 text; \
                 convert in the application instead"
            )))
        }
    }

    /// Run `f` on the lease's connection as one of this session's statements: bounded by the
    /// session's statement timeout (sending too), and cancellable by `cancel` while it runs;
    /// once cancelled, it waits for the server at most the cancel grace.
    fn run<T>(&self, lease: &Lease, f: impl FnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        let outcome = lease.run_for(self.0.id, |c| {
            let waits = self.0.waits;
            c.begin_statement(waits.statement_timeout, waits.cancel_grace);
            c.cancel_on_signal(waits.cancel_on_signal);
            let outcome = f(c);
            c.end_statement();
            if self.0.binding != Binding::Pooled {
                self.after_pinned_statement(c);
            }
            outcome
        });
        match outcome {
            Err(e) if self.0.binding != Binding::Pooled => Err(self.after_pinned_failure(lease, e)),
            outcome => outcome,
        }
    }

    /// After a statement of a pinned or transaction's session: a plain LISTEN on its connection
    /// makes what arrived the session's. Out of line: a pooled statement's path stays small.
    #[inline(never)]
    fn after_pinned_statement(&self, c: &mut PgConn) {
        c.read_buffered_async();
        if c.has_notifications() {
            self.take_connection_notifications(c);
        }
    }

    /// Ask the server to cancel every statement this session is running now (from any thread);
    /// each fails with `PGSESS_QUERY_CANCELED`: with the server's answer, or at the cancel grace
    /// if the server gives none (its connection is then closed), even when the request could
    /// not be sent. Returns (requests sent, statements running).
    pub fn cancel(&self) -> (usize, usize) {
        let Some(here) = self.here_if_made() else { return (0, 0) };
        let cancellers = here.pool.running_cancellers(self.0.id);
        // One after another, within one bound for all.
        let deadline = std::time::Instant::now() + crate::conn::CANCEL_CONNECT_TIMEOUT;
        (cancellers.iter().filter(|k| k.send_by(deadline).is_ok()).count(), cancellers.len())
    }

    /// `cancel`, as one outcome: an operational error unless a cancel request reached the server
    /// for every statement that was running.
    pub fn cancel_running(&self) -> Result<()> {
        let (sent, running) = self.cancel();
        if sent == running {
            Ok(())
        } else {
            Err(Error::operational(
                "08006",
                format!("{} of {running} cancel requests could not be sent to the server", running - sent),
            ))
        }
    }

    /// The backend pid that ran this session's latest statement (0 before the first).
    pub fn backend_pid(&self) -> i32 {
        self.here_if_made().map_or(0, |here| here.last_backend_pid.load(Ordering::Relaxed))
    }

    /// The session's last 50 notices, oldest first, each in libpq's form (`NOTICE:  text\n`).
    pub fn notices(&self) -> String {
        self.here_if_made().map_or_else(String::new, |here| lock(&here.notices).iter().map(String::as_str).collect())
    }

    /// How many notices the session keeps now (at most `NOTICES_KEPT`).
    pub fn notice_count(&self) -> usize {
        self.here_if_made().map_or(0, |here| lock(&here.notices).len())
    }

    /// The session's notice `index` (0 is the oldest kept), whole: its severity line and any
    /// DETAIL and HINT lines, in libpq's form.
    pub fn notice(&self, index: usize) -> Option<String> {
        self.here_if_made().and_then(|here| lock(&here.notices).get(index).cloned())
    }

    /// Record a statement's backend and notices: `set` is its result, `None` when it failed.
    fn note_statement(&self, set: Option<&ResultSet>, lease: &Lease) {
        // A result carries its backend pid; only a failure needs to ask the connection.
        let pid = match set {
            Some(set) => set.backend_pid,
            None => lease.with_conn(|c| Ok(c.backend_pid())).unwrap_or(0),
        };
        let here = self.here();
        if pid != 0 {
            here.last_backend_pid.store(pid, Ordering::Relaxed);
        }
        // Only statements that raised notices take the session's lock.
        if let Some(set) = set.filter(|set| !set.notices.is_empty()) {
            let mut notices = lock(&here.notices);
            let mut dropped = set.notices_dropped;
            for n in &set.notices {
                if notices.len() == NOTICES_KEPT {
                    notices.pop_front();
                    dropped += 1;
                }
                notices.push_back(n.to_string_lossy().into_owned());
            }
            here.notices_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if let Some(parent) = &self.0.parent {
            parent.note_statement(set, lease);
        }
    }

    /// Record a statement's end (`set` is its result, `None` when it failed) and, when it
    /// succeeded, that its results now hold the connection (for leak reports).
    fn statement_ended(&self, lease: &Lease, sql: &str, set: Option<&ResultSet>) {
        self.note_statement(set, lease);
        if set.is_some() {
            lease.set_holder(|| format!("the results of \"{}\"", abbreviate(sql)));
        }
    }

    /// Run one statement on `hold`'s connection (see `run`), its rows going straight into the
    /// results that will keep them: they are built in place, never copied on the way to C.
    fn statement(
        &self,
        hold: Hold,
        sql: &str,
        f: impl FnOnce(&mut PgConn, &mut ResultSet) -> Result<()>,
    ) -> Result<Box<Results>> {
        let mut results = Results::boxed(sql, hold);
        let (lease, set) = results.lease_and_set();
        let lease = lease.expect("a statement's results hold its lease");
        let outcome = self.run(lease, |c| f(c, set));
        self.statement_ended(lease, sql, outcome.as_ref().ok().map(|()| &*set));
        outcome?; // on failure the lease drops with the results: the connection goes back at once
        results.statement_done();
        Ok(results)
    }

    /// How many notices of this session's statements were not kept: beyond the last
    /// `NOTICES_KEPT` the session keeps, or beyond what a statement's results keep
    /// (`ResultSet::notices_dropped`). 0 in a forked child before its first call.
    pub fn notices_dropped(&self) -> u64 {
        self.here_if_made().map_or(0, |here| here.notices_dropped.load(Ordering::Relaxed))
    }
}

/// Rows of one statement arriving in chunks (its reply read a chunk at a time from one pooled
/// connection).
pub struct RowStream {
    session: Session,
    lease: Arc<Lease>,
    columns: Arc<[Column]>,
    first: Option<ResultSet>,
    more: bool,
    chunk_rows: u32,
    sql: String,
    /// How far the next chunk's rows have arrived (`poll`), and since when they were first
    /// waited for outside the library (the statement timeout of that read counts from then).
    scan: crate::conn::ReplyScan,
    wait_began: Option<std::time::Instant>,
}

impl RowStream {
    /// The next chunk (at most `chunk_rows` rows), or `None` when every row has been returned.
    /// Only the first chunk may be empty (a result with no rows).
    fn new(session: Session, lease: Arc<Lease>, first: ResultSet, more: bool, chunk_rows: u32, sql: &str) -> RowStream {
        RowStream {
            session,
            columns: first.columns().clone(),
            first: Some(first),
            more,
            chunk_rows,
            lease,
            sql: sql.to_owned(),
            scan: crate::conn::ReplyScan::new(chunk_rows),
            wait_began: None,
        }
    }

    /// Read what has arrived without blocking: true when `next_chunk` will not wait for the
    /// server (its rows, or the end of the reply, are buffered; or the stream has ended; or
    /// the connection failed, which `next_chunk` reports).
    pub fn poll(&mut self) -> bool {
        if self.first.is_some() || !self.more {
            return true;
        }
        self.wait_began.get_or_insert_with(std::time::Instant::now);
        let scan = &mut self.scan;
        let ready = self.lease.with_conn(|c| Ok(c.poll_scan(scan))).unwrap_or(true);
        if !ready {
            // The statement runs on while its caller waits outside the library: `cancel` must
            // find it (`next_chunk`'s `run` ends the mark).
            self.lease.set_running_for(self.session.0.id);
        }
        ready
    }

    /// The connection's socket and serial number, to wait on for the next chunk (see
    /// `PendingStatement::socket`).
    pub fn socket(&self) -> Result<(std::os::fd::RawFd, u64)> {
        self.lease.with_conn(|c| Ok(c.share_socket()))
    }

    /// How long the caller may wait for the socket before calling `next_chunk` anyway (the
    /// statement timeout of the chunk's read, counted from the first `poll` for it); `None`:
    /// no bound.
    pub fn wait_limit(&self) -> Option<Duration> {
        let timeout = self.session.0.waits.statement_timeout?;
        let began = self.wait_began.unwrap_or_else(std::time::Instant::now);
        Some((began + timeout).saturating_duration_since(std::time::Instant::now()))
    }

    pub fn next_chunk(&mut self) -> Result<Option<Results>> {
        if let Some(set) = self.first.take() {
            return Ok(Some(Results::new(set, &self.sql, Hold::Shared(self.lease.clone()))));
        }
        if !self.more {
            return Ok(None);
        }
        self.scan = crate::conn::ReplyScan::new(self.chunk_rows);
        let began = self.wait_began.take();
        let (set, more) = self
            .session
            .run(&self.lease, |c| {
                if let Some(at) = began {
                    c.reply_wait_began(at);
                }
                c.stream_more(&self.columns, self.chunk_rows)
            })
            .inspect_err(|_| {
                self.more = false;
            })?;
        self.more = more;
        if set.nrows() == 0 && !more {
            // The row count was a multiple of the chunk size: the server only finds it has no
            // more rows on the next Execute. That empty remainder is not a chunk.
            return Ok(None);
        }
        Ok(Some(Results::new(set, &self.sql, Hold::Shared(self.lease.clone()))))
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
}

impl Drop for RowStream {
    fn drop(&mut self) {
        if self.more {
            let _ = self.session.run(&self.lease, |c| {
                c.stream_abandon(&self.columns);
                Ok(())
            });
        }
    }
}

/// Whether a checkout's SQLSTATE says no connection could be had: a connection exception
/// (class 08), or a server shutting down or starting up (57P01-57P03).
fn could_not_connect(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03")
}

/// SQL text for log messages: one line, at most 200 characters.
fn abbreviate(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}

/// Build the callproc statement. Each dot-separated part of `name` is taken literally and quoted
/// as an identifier (so `public.my_func` and `"Odd Name"` both work and nothing is spliced).
pub fn callproc_sql(name: &str, nargs: usize) -> Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    if name.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(Error::interface("callproc needs a function name, optionally schema-qualified (schema.function)"));
    }
    let quoted: Vec<String> = parts.iter().map(|p| format!("\"{}\"", p.replace('"', "\"\""))).collect();
    let args: Vec<String> = (1..=nargs).map(|i| format!("${i}")).collect();
    Ok(format!("SELECT * FROM {}({})", quoted.join("."), args.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callproc_quotes_every_part() {
        assert_eq!(callproc_sql("mod", 2).unwrap(), "SELECT * FROM \"mod\"($1, $2)");
        assert_eq!(callproc_sql("pg_catalog.lower", 1).unwrap(), "SELECT * FROM \"pg_catalog\".\"lower\"($1)");
        assert_eq!(callproc_sql("a\"; DROP TABLE x; --", 0).unwrap(), "SELECT * FROM \"a\"\"; DROP TABLE x; --\"()");
        assert!(callproc_sql("", 0).is_err());
        assert!(callproc_sql("a..b", 0).is_err());
        assert!(callproc_sql("a.b.c.d", 0).is_err());
    }
}
