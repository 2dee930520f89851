//! Process-wide connection pools.
//!
//! - `registry`: one pool per (normalised URI, pool settings), found again by every session that
//!   opens the same configuration; forgets inherited pools after `fork()`.
//! - `manager`: the r2d2 manager that opens, checks and discards connections.
//! - `reaper`: closes connections idle past the TTL.
//! - `Lease` (here): a checked-out connection, returned (rolled back first if needed) when dropped.
//!
//! The pool keeps its own counts of leases, outstanding results and open transactions so that a
//! checkout that times out can say exactly why.

mod gate;
mod manager;
pub(crate) mod reaper;
pub mod registry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::config::{ConnectConfig, PoolSettings};
use crate::conn::PgConn;
use crate::error::{Code, Error, Result};
use manager::{Manager, Slot};

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
}

/// State shared by a pool, its manager, its leases and the reaper.
pub struct PoolShared {
    pub id: String,
    pub settings: PoolSettings,
    /// At most max_size leases; waiters served in arrival order.
    gate: gate::Gate,
    pub counters: Counters,
    pub last_connect_error: Mutex<Option<Error>>,
    slots: Mutex<Vec<Weak<Slot>>>,
    /// Connections opened outside r2d2 (the first one, by `Pool::connect_first`), taken by the
    /// manager before it dials a new one.
    adopted: Mutex<Vec<PgConn>>,
}

impl PoolShared {
    fn register_slot(&self, slot: &Arc<Slot>) {
        let mut slots = lock(&self.slots);
        slots.retain(|w| w.strong_count() > 0);
        slots.push(Arc::downgrade(slot));
    }

    /// Connections currently open (idle or leased).
    pub fn open_connections(&self) -> usize {
        lock(&self.slots).iter().filter_map(Weak::upgrade).filter(|s| s.lock().conn.is_some()).count()
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

pub struct Pool {
    /// Hex id derived from the configuration with a per-process salt; never reveals the password.
    pub id: String,
    pub settings: PoolSettings,
    inner: r2d2::Pool<Manager>,
    shared: Arc<PoolShared>,
    /// The same manager r2d2 has, for connecting outside it.
    manager: Manager,
    /// The process that built the pool; a forked child must build its own.
    owner_pid: u32,
}

impl Pool {
    fn new(
        id: String,
        config: ConnectConfig,
        settings: PoolSettings,
        threads: Arc<scheduled_thread_pool::ScheduledThreadPool>,
    ) -> Arc<Pool> {
        let shared = Arc::new(PoolShared {
            id: id.clone(),
            settings,
            gate: gate::Gate::new(settings.max_size),
            counters: Counters::default(),
            last_connect_error: Mutex::new(None),
            slots: Mutex::new(Vec::new()),
            adopted: Mutex::new(Vec::new()),
        });
        let manager = Manager { config, shared: shared.clone() };
        let idle_timeout = (!settings.idle_ttl.is_zero()).then_some(settings.idle_ttl);
        let inner = r2d2::Pool::builder()
            .max_size(settings.max_size)
            .min_idle(Some(0))
            .test_on_check_out(true)
            .connection_timeout(settings.checkout_timeout)
            // r2d2's reaper (every 30 s) also drops slots our reaper has emptied.
            .idle_timeout(idle_timeout)
            .max_lifetime(None)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .thread_pool(threads)
            .build_unchecked(manager.clone());
        let pool = Arc::new(Pool { id, settings, inner, shared, manager, owner_pid: crate::fork::current_pid() });
        reaper::watch(&pool.shared);
        pool
    }

    pub fn owned_by_this_process(&self) -> bool {
        self.owner_pid == crate::fork::current_pid()
    }

    /// Open the pool's first connection in the calling thread, so that a wrong address, user,
    /// password or database fails at once with the server's error instead of after the checkout
    /// timeout; the connection then joins the pool. Returns its backend pid.
    pub fn connect_first(&self) -> Result<i32> {
        let conn = self.manager.dial()?;
        let pid = conn.backend_pid();
        lock(&self.shared.adopted).push(conn);
        drop(self.checkout()?);
        Ok(pid)
    }

    /// Check out a connection, waiting up to the checkout timeout. A timeout says whether every
    /// connection is held (and by how many un-freed results) or the server cannot be reached.
    pub fn checkout(&self) -> Result<Lease> {
        let c = &self.shared.counters;
        c.waiting.inc();
        let started = Instant::now();
        let deadline = started + self.settings.checkout_timeout;
        let got = if self.shared.gate.acquire(deadline) {
            // A permit means a connection is idle or may be opened; r2d2 still bounds the wait
            // (opening one can be slow).
            let left = deadline.saturating_duration_since(Instant::now()).max(std::time::Duration::from_millis(1));
            self.inner.get_timeout(left).map_err(|_| self.shared.gate.release()).ok()
        } else {
            None
        };
        c.waiting.dec();
        match got {
            Some(conn) => {
                c.checkouts.inc();
                c.in_use.inc();
                Ok(Lease { conn: Some(conn), shared: self.shared.clone(), owner_pid: crate::fork::current_pid() })
            }
            None => {
                c.checkout_timeouts.inc();
                let e = self.checkout_failure(started.elapsed().as_millis());
                crate::log::warn(|| format!("checkout failed: {e}"));
                Err(e)
            }
        }
    }

    fn checkout_failure(&self, waited_ms: u128) -> Error {
        let s = self.stats();
        if s.in_use >= s.max_size {
            return Error::new(
                Code::PGSESS_POOL_EXHAUSTED,
                format!(
                    "pool {} exhausted: all {} connections are in use ({} in use, {} idle, {} open; {} results not yet freed, \
                     {} transactions open, {} other callers waiting); waited {} ms. Free results with pgsess_results_free \
                     and end transactions to return their connections, or raise pool_max_size / checkout_timeout_ms",
                    self.id, s.max_size, s.in_use, s.idle, s.open, s.results_outstanding, s.transactions_open, s.waiting, waited_ms
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
    conn: Option<r2d2::PooledConnection<Manager>>,
    shared: Arc<PoolShared>,
    /// The process that checked it out: in a forked child the lease is forgotten, not returned.
    owner_pid: u32,
}

impl Lease {
    /// Run `f` on the connection. Serialised: one statement at a time per connection.
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        if self.inherited() {
            return Err(Error::interface(
                "this connection was checked out by the parent process before fork(); it cannot be used in the child",
            ));
        }
        let pooled = self.conn.as_ref().expect("lease holds a connection until dropped");
        let mut state = pooled.slot.lock();
        match state.conn.as_mut() {
            Some(c) => f(c),
            None => Err(Error::operational("08003", "the connection was closed")),
        }
    }

    /// Whether this process is a fork of the one that checked the connection out.
    pub fn inherited(&self) -> bool {
        self.owner_pid != crate::fork::current_pid()
    }

    pub fn shared(&self) -> &Arc<PoolShared> {
        &self.shared
    }

    /// Say what holds this connection (for leak reports): e.g. the results of a statement.
    pub fn set_holder(&self, what: impl FnOnce() -> String) {
        if self.shared.settings.leak_threshold.is_some() {
            if let Some(pooled) = self.conn.as_ref() {
                pooled.slot.lock().holder = Some(what());
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pooled) = self.conn.take() {
            if self.inherited() {
                // The parent's pool and its locks are not ours to touch: forget the lease.
                std::mem::forget(pooled);
                return;
            }
            {
                let mut state = pooled.slot.lock();
                let reusable = state.conn.as_mut().is_some_and(|c| c.reset_for_reuse());
                if !reusable && state.conn.take().is_some() {
                    self.shared.counters.discarded_dead.inc();
                }
                state.leased = false;
                state.idle_since = Instant::now();
            }
            self.shared.counters.in_use.dec();
            drop(pooled); // r2d2 puts it back (or drops it if broken)
            self.shared.gate.release(); // then the next caller in line gets it
        }
    }
}
