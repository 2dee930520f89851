//! Process-wide connection pools.
//!
//! - `registry`: one pool per (normalised URI, pool settings), found again by every session that
//!   opens the same configuration; forgets inherited pools after `fork()`.
//! - `gate`: at most `pool_max_size` callers hold (or are opening) a connection; waiters are
//!   served first come, first served.
//! - `manager`: opens, checks and discards connections, for both backends below.
//! - `local`: the pool core of forked children.
//! - `reaper`: closes connections idle past the TTL, reports leaks.
//! - `Lease` (here): a checked-out connection, returned (rolled back first if needed) when dropped.
//!
//! The pool keeps its own counts of leases, outstanding results and open transactions so that a
//! checkout that times out can say exactly why.
//!
//! # Two backends, one pool
//!
//! The pool of the process that loaded the library is r2d2 (`Backend::R2d2`). A process created
//! by `fork()` cannot use r2d2, nor anything else built on parking_lot: parking_lot_core keeps
//! one process-wide hashtable of bucket locks that every parking_lot Mutex and Condvar uses
//! whenever a thread parks or unparks, and a parent thread inside such a critical section at the
//! instant of fork() leaves a bucket locked forever in the child, whose threads then hang the
//! first time they park (in `parking_lot_core::grow_hashtable -> WordLock::lock`). r2d2 and
//! scheduled-thread-pool take those locks inside their own code, so no atfork handler of ours can
//! make them safe.
//! A forked child's pools therefore run on `local` (`Backend::Local`): the same gate, manager,
//! slots, leases, counters, statistics, leak reports and reaper, with idle connections in a list
//! of our own and connections opened in the calling thread.
//!
//! So the two backends differ only in where idle connections wait and who opens new ones;
//! everything a caller can observe (errors, statistics, FIFO service, rollback on return, dead
//! connection discard, TTL) is shared code. Tests run the pool's contract against both
//! (`Session::open_with_local_pool`).

mod gate;
mod local;
mod manager;
pub(crate) mod reaper;
pub mod registry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::config::{ConnectConfig, PoolSettings};
use crate::conn::PgConn;
use crate::error::{Code, Error, Result};
use manager::{Manager, PooledConn, Slot};

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Monotonic counters and gauges of one pool.
#[derive(Default)]
pub struct Counters {
    pub checkouts: Counter,
    pub checkout_timeouts: Counter,
    pub connects: Counter,
    pub connect_failures: Counter,
    pub discarded_dead: Counter,
    pub expired: Counter,
    /// Gauges.
    pub in_use: Counter,
    pub waiting: Counter,
    pub results_outstanding: Counter,
    pub transactions_open: Counter,
    /// Pinned sessions holding a connection.
    pub pinned_sessions: Counter,
    /// COPY handles holding a connection.
    pub copies_open: Counter,
}

/// State shared by a pool, its manager, its leases and the reaper.
pub struct PoolShared {
    pub id: String,
    pub settings: PoolSettings,
    /// At most max_size leases; waiters served in arrival order.
    gate: gate::Gate,
    pub counters: Counters,
    pub last_connect_error: Mutex<Option<Error>>,
    /// Every connection's slot, for statistics, the reaper and, after fork(), `Pool::abandon`.
    slots: Mutex<Vec<Weak<Slot>>>,
    /// The connection `Pool::connect_first` opened, taken by the manager before it dials a new
    /// one.
    adopted: Mutex<Vec<PgConn>>,
    /// What the connections' statement caches share to heal together (`conn::CacheShared`).
    pub statements: Arc<crate::conn::CacheShared>,
}

impl PoolShared {
    fn register_slot(&self, slot: &Arc<Slot>) {
        let mut slots = lock(&self.slots);
        slots.retain(|w| w.strong_count() > 0);
        slots.push(Arc::downgrade(slot));
    }

    /// Connections currently open (idle or leased). Never waits for a slot: a statement holds
    /// its slot's lock while it runs (for as long as it runs), and its connection is open.
    pub fn open_connections(&self) -> usize {
        let open = |s: &Arc<Slot>| s.try_lock().map_or(true, |state| state.conn.is_some());
        lock(&self.slots).iter().filter_map(Weak::upgrade).filter(open).count()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A snapshot of a pool's state and counters (`pgsess_stats` in C, filled by
/// `pgsess_pool_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// `pool_max_size`.
    pub max_size: u32,
    /// Connections open now (idle + in use).
    pub open: u32,
    /// Connections open and not checked out.
    pub idle: u32,
    /// Connections checked out (held by statements, results, streams or transactions).
    pub in_use: u32,
    /// Callers waiting for a connection now.
    pub waiting: u32,
    /// Results handles (and stream chunks) not yet freed.
    pub results_outstanding: u64,
    /// Transactions begun and not yet ended.
    pub transactions_open: u64,
    /// Successful checkouts since the pool was created.
    pub checkouts: u64,
    /// Checkouts that gave up after the checkout timeout.
    pub checkout_timeouts: u64,
    /// Connections opened.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Connections discarded because the server had closed them or they broke.
    pub discarded_dead: u64,
    /// Connections closed after idling past `pool_idle_ttl`.
    pub discarded_expired: u64,
}

/// Where idle connections wait and who opens new ones: the only difference between the two
/// backends (see the module comment).
enum Backend {
    /// The original process's pool.
    R2d2(r2d2::Pool<Manager>),
    /// A forked child's pool (and, in tests, any pool opened with `local`).
    Local(local::Idle),
}

/// What `Pool::new` builds.
pub(crate) enum NewBackend {
    /// r2d2 with the process's connecting threads.
    R2d2(Arc<scheduled_thread_pool::ScheduledThreadPool>),
    Local,
}

pub struct Pool {
    /// Hex id derived from the configuration with a random salt (a forked child keeps its
    /// parent's, so a configuration's id survives fork()); never reveals the password.
    pub id: String,
    pub settings: PoolSettings,
    backend: Backend,
    shared: Arc<PoolShared>,
    /// Opens and checks connections: the same manager r2d2 has, used directly by the local core
    /// and by `connect_first`.
    manager: Manager,
}

impl Pool {
    fn new(id: String, config: ConnectConfig, settings: PoolSettings, backend: NewBackend) -> Arc<Pool> {
        let shared = Arc::new(PoolShared {
            id: id.clone(),
            settings,
            gate: gate::Gate::new(settings.max_size),
            counters: Counters::default(),
            last_connect_error: Mutex::new(None),
            slots: Mutex::new(Vec::new()),
            adopted: Mutex::new(Vec::new()),
            statements: Arc::default(),
        });
        let manager = Manager { config, shared: shared.clone() };
        let backend = match backend {
            NewBackend::R2d2(threads) => {
                let idle_timeout = (!settings.idle_ttl.is_zero()).then_some(settings.idle_ttl);
                Backend::R2d2(
                    r2d2::Pool::builder()
                        .max_size(settings.max_size)
                        .min_idle(Some(0))
                        .test_on_check_out(true)
                        .connection_timeout(settings.checkout_timeout)
                        // r2d2's reaper (every 30 s) also drops slots our reaper has emptied.
                        .idle_timeout(idle_timeout)
                        .max_lifetime(None)
                        .error_handler(Box::new(r2d2::NopErrorHandler))
                        .thread_pool(threads)
                        .build_unchecked(manager.clone()),
                )
            }
            NewBackend::Local => Backend::Local(local::Idle::new(settings.max_size)),
        };
        let pool = Arc::new(Pool { id, settings, backend, shared, manager });
        reaper::watch(&pool.shared);
        pool
    }

    /// Whether this pool runs on the local core rather than r2d2.
    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local(_))
    }

    /// Open the pool's first connection in the calling thread, so that a wrong address, user,
    /// password or database fails at once with the server's error instead of after the checkout
    /// timeout; the connection then joins the pool. Returns its backend pid.
    pub fn connect_first(self: &Arc<Self>) -> Result<i32> {
        let conn = self.manager.dial()?;
        let pid = conn.backend_pid();
        lock(&self.shared.adopted).push(conn);
        drop(self.checkout()?);
        Ok(pid)
    }

    /// A new connection with this pool's configuration that the pool neither keeps nor counts
    /// against `pool_max_size`: a session's listener connection (LISTEN/NOTIFY), which must
    /// stay open however busy the pool is. Its connects and failures are counted as the pool's.
    pub fn dial_unpooled(&self) -> Result<PgConn> {
        let conn = self.manager.dial()?;
        self.shared.counters.connects.inc();
        Ok(conn)
    }

    /// Check out a connection, waiting up to the checkout timeout. A timeout says whether every
    /// connection is held (and by how many un-freed results) or the server cannot be reached.
    pub fn checkout(self: &Arc<Self>) -> Result<Lease> {
        let c = &self.shared.counters;
        c.waiting.inc();
        let started = Instant::now();
        let deadline = started + self.settings.checkout_timeout;
        // The time left once a permit is held: all of it when one was free at once.
        let left = if self.shared.gate.try_acquire() {
            Some(self.settings.checkout_timeout)
        } else if self.shared.gate.acquire(deadline) {
            Some(deadline.saturating_duration_since(Instant::now()))
        } else {
            None
        };
        let got = if let Some(left) = left {
            // A permit means a connection is idle or may be opened.
            let got = match &self.backend {
                Backend::R2d2(pool) => {
                    // r2d2 still bounds the wait (opening one can be slow).
                    pool.get_timeout(left.max(std::time::Duration::from_millis(1))).ok().map(Checked::R2d2)
                }
                Backend::Local(idle) => idle.get(&self.manager, deadline).map(Checked::Local),
            };
            if got.is_none() {
                self.shared.gate.release();
            }
            got
        } else {
            None
        };
        c.waiting.dec();
        match got {
            Some(conn) => {
                c.checkouts.inc();
                c.in_use.inc();
                Ok(Lease {
                    conn: Some(conn),
                    row_storage: None,
                    pool: self.clone(),
                    owner_pid: crate::process::current_pid(),
                })
            }
            None => {
                c.checkout_timeouts.inc();
                let e = self.checkout_failure(started.elapsed().as_millis());
                crate::log::warn(|| format!("checkout failed: {e}"));
                Err(e)
            }
        }
    }

    /// In a forked child, for a pool of the parent: close this process's copies of the pool's
    /// sockets, so that a connection the parent closes (or loses) is really closed rather than
    /// kept open by its children. Nothing is sent (the parent's connections stay open: it holds
    /// its own descriptors), and only locks that are free are taken: a connection a parent
    /// thread was using at the instant of fork() is left as it is. Returns how many were closed.
    pub(crate) fn abandon(&self) -> usize {
        let mut closed = 0;
        let slots: Vec<Arc<Slot>> = match self.shared.slots.try_lock() {
            Ok(slots) => slots.iter().filter_map(Weak::upgrade).collect(),
            Err(_) => Vec::new(),
        };
        for slot in slots {
            if let Some(conn) = slot.try_lock().and_then(|mut state| state.conn.take()) {
                debug_assert!(conn.inherited());
                drop(conn); // an inherited connection only closes its descriptor
                closed += 1;
            }
        }
        if let Ok(mut adopted) = self.shared.adopted.try_lock() {
            closed += adopted.len();
            adopted.clear();
        }
        closed
    }

    fn checkout_failure(&self, waited_ms: u128) -> Error {
        let s = self.stats();
        if s.in_use >= s.max_size {
            return Error::new(
                Code::PGSESS_POOL_EXHAUSTED,
                format!(
                    "pool {} exhausted: all {} connections are in use ({} in use, {} idle, {} open; {} results not yet freed, \
                     {} transactions open, {} pinned sessions, {} copies open, {} other callers waiting); waited {} ms. \
                     Free results with pgsess_results_free, end transactions, finish or free copies and close pinned \
                     sessions to return their connections, or raise pool_max_size / checkout_timeout_ms",
                    self.id,
                    s.max_size,
                    s.in_use,
                    s.idle,
                    s.open,
                    s.results_outstanding,
                    s.transactions_open,
                    self.shared.counters.pinned_sessions.get(),
                    self.shared.counters.copies_open.get(),
                    s.waiting,
                    waited_ms
                ),
            );
        }
        let last = lock(&self.shared.last_connect_error).clone();
        match last {
            Some(e) => e.context(format!(
                "pool {}: could not open a connection within {} ms ({} in use of {}); last attempt failed",
                self.id, waited_ms, s.in_use, s.max_size
            )),
            None => Error::operational(
                "08001",
                format!(
                    "pool {}: no connection became available within {} ms ({} in use of {}, {} open): the server is slow to accept connections",
                    self.id, waited_ms, s.in_use, s.max_size, s.open
                ),
            ),
        }
    }

    /// The cancel keys of the statements of session `session` running now (see `Lease::run_for`).
    pub fn running_cancel_keys(&self, session: u64) -> Vec<Arc<crate::conn::CancelKey>> {
        let slots: Vec<Arc<Slot>> = lock(&self.shared.slots).iter().filter_map(Weak::upgrade).collect();
        slots.iter().filter_map(|s| s.cancel_key_if_running_for(session)).collect()
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub fn stats(&self) -> PoolStats {
        let c = &self.shared.counters;
        let open = self.shared.open_connections() as u32;
        let in_use = c.in_use.get() as u32;
        PoolStats {
            max_size: self.settings.max_size,
            open,
            idle: open.saturating_sub(in_use),
            in_use,
            waiting: c.waiting.get() as u32,
            results_outstanding: c.results_outstanding.get(),
            transactions_open: c.transactions_open.get(),
            checkouts: c.checkouts.get(),
            checkout_timeouts: c.checkout_timeouts.get(),
            connects: c.connects.get(),
            connect_failures: c.connect_failures.get(),
            discarded_dead: c.discarded_dead.get(),
            discarded_expired: c.expired.get(),
        }
    }
}

/// A checked-out connection. Dropping it rolls back a transaction left open (or discards the
/// connection if that fails) and returns it to the pool, waking one waiter.
pub struct Lease {
    conn: Option<Checked>,
    /// Row storage handed back by the lease's results, given to the connection on return.
    row_storage: Option<crate::rows::RowStorage>,
    pool: Arc<Pool>,
    /// The process that checked it out: in a forked child the lease is forgotten, not returned.
    owner_pid: u32,
}

/// A leased connection, as its backend handed it out.
enum Checked {
    R2d2(r2d2::PooledConnection<Manager>),
    Local(Arc<Slot>),
}

impl Checked {
    fn slot(&self) -> &Slot {
        match self {
            Checked::R2d2(pooled) => {
                let pooled: &PooledConn = pooled;
                &pooled.slot
            }
            Checked::Local(slot) => slot,
        }
    }
}

impl Lease {
    /// Run `f` on the connection. Serialised: one statement at a time per connection.
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        if self.inherited() {
            return Err(Error::interface(
                "this connection was checked out by the parent process before fork(); it cannot be used in the child",
            ));
        }
        let checked = self.conn.as_ref().expect("lease holds a connection until dropped");
        let mut state = checked.slot().lock();
        match state.conn.as_mut() {
            Some(c) => f(c),
            None => Err(Error::operational("08003", "the connection was closed")),
        }
    }

    /// Run `f` on the connection as a statement of session `session` (an id other than 0), which
    /// `Pool::running_cancel_keys` finds while it runs.
    pub fn run_for<T>(&self, session: u64, f: impl FnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        struct Running<'a>(&'a Slot);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.set_running_for(0); // also when `f` panics
            }
        }
        self.with_conn(|c| {
            let slot = self.conn.as_ref().expect("lease holds a connection until dropped").slot();
            slot.set_running_for(session);
            let _running = Running(slot);
            f(c)
        })
    }

    /// Whether this process is a fork of the one that checked the connection out.
    pub fn inherited(&self) -> bool {
        self.owner_pid != crate::process::current_pid()
    }

    pub fn shared(&self) -> &Arc<PoolShared> {
        &self.pool.shared
    }

    /// Row storage for the connection to reuse once the lease returns it.
    pub fn keep_row_storage(&mut self, storage: crate::rows::RowStorage) {
        self.row_storage = Some(storage);
    }

    /// Say what holds this connection (for leak reports): e.g. the results of a statement.
    pub fn set_holder(&self, what: impl FnOnce() -> String) {
        if self.pool.settings.leak_threshold.is_some() && !self.inherited() {
            if let Some(checked) = self.conn.as_ref() {
                checked.slot().lock().holder = Some(what());
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(checked) = self.conn.take() else { return };
        if self.inherited() {
            // The parent's pool and its locks are not ours to touch: forget the lease, and keep
            // a count on the pool so that its last reference is never dropped in this process.
            std::mem::forget(checked);
            std::mem::forget(self.pool.clone());
            return;
        }
        let reusable = {
            let mut state = checked.slot().lock();
            let reset = self.pool.settings.reset;
            let reusable = state.conn.as_mut().is_some_and(|c| c.reset_for_reuse(reset));
            if let (true, Some(c), Some(storage)) = (reusable, state.conn.as_mut(), self.row_storage.take()) {
                c.keep_row_storage(storage);
            }
            if !reusable && state.conn.take().is_some() {
                self.pool.shared.counters.discarded_dead.inc();
            }
            state.leased = false;
            state.idle_since = Instant::now();
            reusable
        };
        self.pool.shared.counters.in_use.dec();
        match (checked, &self.pool.backend) {
            // r2d2 puts it back, or drops it if broken (`Manager::has_broken`).
            (Checked::R2d2(pooled), _) => drop(pooled),
            (Checked::Local(slot), Backend::Local(idle)) if reusable => idle.put(slot),
            (Checked::Local(slot), _) => drop(slot), // discarded: its connection is already gone
        }
        // Then the next caller in line gets it.
        self.pool.shared.gate.release();
    }
}
