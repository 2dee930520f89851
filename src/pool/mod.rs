//! Process-wide connection pools.
//!
//! - `registry`: one pool per (normalised URI, pool settings), found again by every session that
//!   opens the same configuration; forgets inherited pools after `fork()`.
//! - `gate`: at most `pool_max_size` callers hold (or are opening) a connection; waiters are
//!   served first come, first served.
//! - `idle`: where idle connections wait, and how a permit becomes a connection (an idle one, or
//!   one the caller opens itself).
//! - `manager`: opens, checks and discards connections.
//! - `reaper`: the background part: closes connections idle past the TTL or past their lifetime,
//!   reports leaks, keeps `pool_min_idle` open and retries connecting while the server is down.
//! - `Lease` (here): a checked-out connection, returned (rolled back first if needed) when dropped.
//!
//! The pool keeps its own counts of leases, outstanding results and open transactions so that a
//! checkout that times out can say exactly why.
//!
//! # One core, also in forked children
//!
//! A process created by `fork()` cannot run anything built on parking_lot: parking_lot_core
//! keeps one process-wide hashtable of bucket locks that every parking_lot Mutex and Condvar uses
//! whenever a thread parks or unparks, and a parent thread inside such a critical section at the
//! instant of fork() leaves a bucket locked forever in the child, whose threads then hang the
//! first time they park. The pool therefore uses std's locks and thread parking only (futex-based
//! on Linux), and opens connections in the calling thread: the same code runs in the process
//! that loaded the library and in its forked children (whose pools are new ones, see
//! `registry`). `Session::open_with_local_pool` still gives a pool of its own, as a forked child
//! gets, for the tests that check a child's behaviour without forking.

mod gate;
mod idle;
mod manager;
pub(crate) mod reaper;
pub mod registry;
mod stats;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::config::{ConnectConfig, PoolSettings};
use crate::conn::PgConn;
use crate::error::{Code, Error, Result};
use manager::{Manager, Slot};
pub use stats::{PoolStatsV2, WAIT_BUCKETS};

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
    /// Connections closed because they outlived `pool_max_lifetime`.
    pub closed_lifetime: Counter,
    /// Connections closed because the health check's round trip failed.
    pub closed_health: Counter,
    /// Connections closed by `Pool::drain`.
    pub closed_drained: Counter,
    /// Checkouts that failed at once because the server was known to be down.
    pub fail_fast: Counter,
    /// Microseconds callers spent in checkouts (successful or not), and the checkouts by how
    /// long they took (`WAIT_BUCKETS_MS`, the last one unbounded).
    pub wait_total_us: Counter,
    pub wait_buckets: [Counter; WAIT_BUCKETS_MS.len() + 1],
}

/// Upper bounds (milliseconds) of the checkout wait histogram's buckets.
pub const WAIT_BUCKETS_MS: [u64; 8] = [1, 5, 10, 50, 100, 500, 1000, 5000];

impl Counters {
    fn record_wait(&self, waited: Duration) {
        self.wait_total_us.0.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        let ms = waited.as_micros().div_ceil(1000) as u64;
        let bucket = WAIT_BUCKETS_MS.iter().position(|&b| ms <= b).unwrap_or(WAIT_BUCKETS_MS.len());
        self.wait_buckets[bucket].inc();
    }
}

/// When connecting started failing and last failed, without a success since.
#[derive(Default)]
struct Down {
    since: Option<Instant>,
    last: Option<Instant>,
}

/// The least time between two connection attempts by checkouts while the server is known down.
const PROBE_SPACING: Duration = Duration::from_millis(20);

/// A failed connect attempt this long after the one before starts a new failing period.
fn retry_gap(checkout_timeout: Duration) -> Duration {
    (checkout_timeout * 2).max(Duration::from_secs(2))
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
    /// Idle connections.
    idle: idle::Idle,
    /// `pool_max_size` now (`Pool::resize` changes it).
    max_size: AtomicU32,
    /// How long connecting has been failing (`known_down`).
    down: Mutex<Down>,
    /// A checkout is making the one quick attempt allowed while the server is known down.
    pub(crate) probing: AtomicBool,
    /// The reaper's background opener is running for this pool.
    filling: AtomicBool,
    /// No checkout has ended yet: the session creating the pool is opening its first (and
    /// `pool_min_idle`) connections in `connect_first`, so the reaper opens none meanwhile.
    warming: AtomicBool,
    /// Bumped by each drain: a connection of an older generation is closed, not reused.
    generation: AtomicU64,
    /// A drain is under way: checkouts wait (`wait_drained`); `drain_cv` wakes them, and the
    /// drain itself when a lease returns.
    draining: AtomicBool,
    drain_state: Mutex<bool>,
    drain_cv: Condvar,
    /// One drain at a time.
    drain_one: Mutex<()>,
    /// What the connections' statement caches share to heal together (`conn::CacheShared`).
    pub statements: Arc<crate::conn::CacheShared>,
}

impl PoolShared {
    fn register_slot(&self, slot: &Arc<Slot>) {
        let mut slots = lock(&self.slots);
        slots.retain(|w| w.strong_count() > 0);
        slots.push(Arc::downgrade(slot));
    }

    /// A connection attempt failed.
    fn connect_failed(&self) {
        let now = Instant::now();
        let mut d = lock(&self.down);
        let gap = retry_gap(self.settings.checkout_timeout);
        if d.last.map_or(true, |last| now.duration_since(last) > gap) {
            d.since = Some(now);
        }
        d.last = Some(now);
    }

    /// A connection attempt succeeded: whatever failed before is over.
    fn connected(&self) {
        *lock(&self.down) = Down::default();
    }

    /// Connecting has failed for longer than the checkout timeout and is still failing: a
    /// checkout that finds no idle connection fails at once (after one quick attempt by one
    /// caller at a time) instead of waiting the checkout timeout for nothing.
    pub fn known_down(&self) -> Option<Duration> {
        let d = lock(&self.down);
        let (since, last) = (d.since?, d.last?);
        let failing_for = last.duration_since(since);
        let recent = last.elapsed() <= retry_gap(self.settings.checkout_timeout);
        (recent && failing_for >= self.settings.checkout_timeout).then(|| since.elapsed())
    }

    /// The last connect attempt failed recently: the reaper keeps trying in the background.
    fn failing(&self) -> bool {
        lock(&self.down).last.is_some_and(|last| last.elapsed() <= retry_gap(self.settings.checkout_timeout))
    }

    /// Whether the background may try connecting again while it fails: after a pause that
    /// grows with how long it has been failing (a quarter of it), up to half of `retry_gap`, so
    /// that attempts stay frequent enough for `known_down` and the log is not flooded.
    fn retry_due(&self) -> bool {
        let d = lock(&self.down);
        let (Some(since), Some(last)) = (d.since, d.last) else { return true };
        let pause = (last.duration_since(since) / 4).min(retry_gap(self.settings.checkout_timeout) / 2);
        last.elapsed() >= pause
    }

    /// For a checkout while the server is known down: whether it may make the one quick attempt
    /// (`idle::Idle::probe`): one caller at a time, and no sooner than `PROBE_SPACING` after the
    /// last attempt failed, so that callers arriving in a loop do not hammer the server.
    pub(crate) fn claim_probe(&self) -> bool {
        let recent = lock(&self.down).last.is_some_and(|last| last.elapsed() < PROBE_SPACING);
        !recent && !self.probing.swap(true, Ordering::AcqRel)
    }

    /// Wait while a drain is under way; false if it still is at `deadline`.
    fn wait_drained(&self, deadline: Instant) -> bool {
        if !self.draining.load(Ordering::Acquire) {
            return true;
        }
        let mut draining = lock(&self.drain_state);
        while *draining {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            draining = self.drain_cv.wait_timeout(draining, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    /// Idle connections open now, not counting slots the reaper has emptied.
    fn idle_open(&self) -> usize {
        self.idle.count_open()
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

pub struct Pool {
    /// Hex id derived from the configuration with a random salt (a forked child keeps its
    /// parent's, so a configuration's id survives fork()); never reveals the password.
    pub id: String,
    pub settings: PoolSettings,
    shared: Arc<PoolShared>,
    /// Opens and checks connections.
    manager: Manager,
    /// Made for `Session::open_with_local_pool` or in a forked child (see the module comment).
    local: bool,
}

impl Pool {
    fn new(id: String, config: ConnectConfig, settings: PoolSettings, local: bool) -> Arc<Pool> {
        let shared = Arc::new(PoolShared {
            id: id.clone(),
            settings,
            gate: gate::Gate::new(settings.max_size),
            counters: Counters::default(),
            last_connect_error: Mutex::new(None),
            slots: Mutex::new(Vec::new()),
            idle: idle::Idle::new(settings.max_size),
            max_size: AtomicU32::new(settings.max_size),
            down: Mutex::new(Down::default()),
            probing: AtomicBool::new(false),
            filling: AtomicBool::new(false),
            warming: AtomicBool::new(true),
            generation: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            drain_state: Mutex::new(false),
            drain_cv: Condvar::new(),
            drain_one: Mutex::new(()),
            statements: Arc::default(),
        });
        let manager = Manager { config, shared: shared.clone() };
        let pool = Arc::new(Pool { id, settings, shared, manager, local });
        reaper::watch(&pool);
        pool
    }

    /// Whether this pool was made for `Session::open_with_local_pool` or in a forked child.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Open the pool's first connection in the calling thread, so that a wrong address, user,
    /// password or database fails at once with the server's error instead of after the checkout
    /// timeout; the connection then joins the pool. Returns its backend pid. Bounded by the
    /// checkout timeout, whatever the hosts and however the server answers (`Manager::dial_by`).
    /// With `pool_min_idle`, the rest of the warm connections are opened here too, within the
    /// same bound; those that fail are left to the reaper, which keeps trying.
    pub fn connect_first(self: &Arc<Self>) -> Result<i32> {
        let started = Instant::now();
        let deadline = started + self.settings.checkout_timeout;
        let conn = self.manager.dial_by(deadline)?;
        let pid = conn.backend_pid();
        self.shared.idle.put(self.manager.adopt(conn, started));
        let warm = self.settings.min_idle.min(self.settings.max_size);
        for _ in 1..warm {
            match self.manager.open(Some(deadline)) {
                Ok(slot) => self.shared.idle.put(slot),
                Err(_) => break,
            }
        }
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
        let permit = self.shared.gate.try_acquire() || self.shared.gate.acquire(deadline);
        let got = if permit {
            // A permit means a connection is idle or may be opened.
            let got = self.shared.idle.get(&self.manager, deadline);
            if got.is_err() {
                self.shared.gate.release();
            }
            got
        } else {
            Err(idle::NoConnection::Deadline)
        };
        c.waiting.dec();
        // The wait ended at the connection's check (its lease's start), read for the check.
        let waited = match &got {
            Ok(conn) => conn.lock().leased_since.saturating_duration_since(started),
            Err(_) => started.elapsed(),
        };
        c.record_wait(waited);
        if self.shared.warming.load(Ordering::Relaxed) {
            self.shared.warming.store(false, Ordering::Relaxed);
        }
        match got {
            Ok(conn) => {
                c.checkouts.inc();
                c.in_use.inc();
                Ok(Lease {
                    conn: Some(conn),
                    row_storage: None,
                    pool: self.clone(),
                    owner_pid: crate::process::current_pid(),
                })
            }
            Err(why) => {
                let e = match why {
                    idle::NoConnection::Deadline => {
                        c.checkout_timeouts.inc();
                        self.checkout_failure(started.elapsed().as_millis())
                    }
                    idle::NoConnection::Down(down_for) => {
                        c.fail_fast.inc();
                        self.down_failure(down_for)
                    }
                    idle::NoConnection::Draining => {
                        c.checkout_timeouts.inc();
                        Error::new(
                            Code::PGSESS_POOL_EXHAUSTED,
                            format!(
                                "pool {} is being drained (pgsess_pool_drain): no connection is handed out until the \
                                 drain ends; waited {} ms",
                                self.id,
                                started.elapsed().as_millis()
                            ),
                        )
                    }
                };
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
        closed
    }

    /// The error of a checkout that failed at once because the server is known to be down.
    fn down_failure(&self, down_for: Duration) -> Error {
        let context = format!(
            "pool {}: connecting has failed for {} ms, longer than the checkout timeout ({} ms): failing at once \
             while the pool keeps trying in the background; last attempt failed",
            self.id,
            down_for.as_millis(),
            self.settings.checkout_timeout.as_millis()
        );
        match lock(&self.shared.last_connect_error).clone() {
            Some(e) => e.context(context),
            None => Error::operational("08001", context),
        }
    }

    /// Stop handing out connections, wait up to `timeout` for those in use to come back, and
    /// close every connection; then the pool opens new ones as it is used again (with the
    /// configuration it has: the password file is read again for each). Checkouts
    /// wait while it runs (within their checkout timeout). A connection still in use at the
    /// timeout is closed when it comes back, and the drain fails saying how many were left.
    pub fn drain(&self, timeout: Duration) -> Result<()> {
        let sh = &self.shared;
        let _one = lock(&sh.drain_one);
        let started = Instant::now();
        let deadline = started + timeout;
        *lock(&sh.drain_state) = true;
        sh.draining.store(true, Ordering::Release);
        sh.generation.fetch_add(1, Ordering::AcqRel);
        let mut closed = self.close_idle();
        {
            let mut guard = lock(&sh.drain_state);
            while sh.counters.in_use.get() > 0 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let wait = (deadline - now).min(Duration::from_millis(10));
                guard = sh.drain_cv.wait_timeout(guard, wait).unwrap_or_else(|p| p.into_inner()).0;
            }
        }
        closed += self.close_idle();
        let left = sh.counters.in_use.get();
        *lock(&sh.drain_state) = false;
        sh.draining.store(false, Ordering::Release);
        sh.drain_cv.notify_all();
        crate::log::info(|| {
            format!(
                "pool {}: drained in {} ms: closed {closed} idle connections, {left} still in use",
                self.id,
                started.elapsed().as_millis()
            )
        });
        if left > 0 {
            return Err(Error::new(
                Code::PGSESS_POOL_EXHAUSTED,
                format!(
                    "pool {}: drain timed out after {} ms with {left} connections still in use ({} results not yet \
                     freed, {} transactions open, {} pinned sessions); they are closed when they come back",
                    self.id,
                    timeout.as_millis(),
                    sh.counters.results_outstanding.get(),
                    sh.counters.transactions_open.get(),
                    sh.counters.pinned_sessions.get()
                ),
            ));
        }
        Ok(())
    }

    /// Close the idle connections of an older generation than the pool's (all of them, during
    /// a drain). Returns how many were closed.
    fn close_idle(&self) -> usize {
        let generation = self.shared.generation.load(Ordering::Acquire);
        let mut closed = 0;
        for slot in self.shared.idle.take_all() {
            if slot.generation() == generation {
                self.shared.idle.put(slot);
            } else if slot.lock().conn.take().is_some() {
                self.shared.counters.closed_drained.inc();
                closed += 1;
            }
        }
        closed
    }

    /// Change `pool_max_size` of this pool (every session on it sees the change): more callers
    /// may hold a connection at once from now on, or fewer as connections come back (idle ones
    /// past the new size are closed at once, leased ones when they come back).
    pub fn resize(&self, max_size: u32) -> Result<()> {
        if max_size == 0 || max_size > crate::config::MAX_POOL_MAX_SIZE {
            return Err(Error::config(format!(
                "pool_max_size must be between 1 and {}, got {max_size}",
                crate::config::MAX_POOL_MAX_SIZE
            )));
        }
        let sh = &self.shared;
        let _one = lock(&sh.drain_one);
        let old = sh.max_size.swap(max_size, Ordering::AcqRel);
        sh.gate.resize(old, max_size);
        if max_size < old {
            let in_use = sh.counters.in_use.get() as usize;
            let mut idle = sh.idle.take_all();
            while !idle.is_empty() && idle.len() + in_use > max_size as usize {
                let slot = idle.remove(0); // the least recently used go first
                drop(slot.lock().conn.take());
            }
            for slot in idle {
                sh.idle.put(slot);
            }
        }
        crate::log::info(|| format!("pool {}: pool_max_size {old} -> {max_size}", self.id));
        Ok(())
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

    /// What cancels each statement of session `session` running now (see `Lease::run_for`).
    pub fn running_cancellers(&self, session: u64) -> Vec<crate::conn::Canceller> {
        let slots: Vec<Arc<Slot>> = lock(&self.shared.slots).iter().filter_map(Weak::upgrade).collect();
        slots.iter().filter_map(|s| s.canceller_if_running_for(session)).collect()
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub fn stats(&self) -> PoolStats {
        let c = &self.shared.counters;
        let open = self.shared.open_connections() as u32;
        let in_use = c.in_use.get() as u32;
        PoolStats {
            max_size: self.shared.max_size.load(Ordering::Relaxed),
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
    conn: Option<Arc<Slot>>,
    /// Row storage handed back by the lease's results, given to the connection on return.
    row_storage: Option<crate::rows::RowStorage>,
    pool: Arc<Pool>,
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
        let checked = self.conn.as_ref().expect("lease holds a connection until dropped");
        let mut state = checked.lock();
        match state.conn.as_mut() {
            Some(c) => f(c),
            None => Err(Error::operational("08003", "the connection was closed")),
        }
    }

    /// Run `f` on the connection as a statement of session `session` (an id other than 0), which
    /// `Pool::running_cancellers` finds while it runs.
    pub fn run_for<T>(&self, session: u64, f: impl FnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        struct Running<'a>(&'a Slot);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.set_running_for(0); // also when `f` panics
            }
        }
        self.with_conn(|c| {
            let slot: &Slot = self.conn.as_ref().expect("lease holds a connection until dropped");
            slot.set_running_for(session);
            let _running = Running(slot);
            f(c)
        })
    }

    /// Mark the connection as running a statement of session `session` (0: none any more) for
    /// longer than one `run_for`: a statement sent by one call and read by another
    /// (`Session::send_statement`), which `Pool::running_cancellers` finds in between.
    pub fn set_running_for(&self, session: u64) {
        if let Some(slot) = self.conn.as_ref() {
            slot.set_running_for(session);
        }
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
                checked.lock().holder = Some(what());
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
        let mut retired = None;
        let reusable = {
            let mut state = checked.lock();
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
            let sh = &self.pool.shared;
            let max_size = sh.max_size.load(Ordering::Relaxed);
            let retire = reusable
                && if checked.generation() != sh.generation.load(Ordering::Acquire) {
                    sh.counters.closed_drained.inc();
                    true
                } else if state.expired(state.idle_since) {
                    sh.counters.closed_lifetime.inc();
                    true
                } else {
                    // Past a pool_max_size made smaller by `resize` (counted only then).
                    max_size != self.pool.settings.max_size && sh.open_connections() > max_size as usize
                };
            if retire {
                retired = state.conn.take();
            }
            reusable && !retire
        };
        let sh = &self.pool.shared;
        sh.counters.in_use.dec();
        if reusable {
            sh.idle.put(checked);
        }
        // Then the next caller in line gets it.
        sh.gate.release();
        if sh.draining.load(Ordering::Acquire) {
            let _g = lock(&sh.drain_state);
            sh.drain_cv.notify_all();
        }
        drop(retired); // closed (Terminate sent) after the permit went to the next caller
    }
}
