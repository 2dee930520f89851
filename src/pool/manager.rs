//! The connection manager: how a pool opens, checks and discards connections.
//!
//! Each pooled connection lives in a `Slot` shared with the pool's bookkeeping, so the reaper
//! (`super::reaper`) can close a connection that has sat idle past the TTL or its lifetime
//! without waiting for a checkout to find it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::PoolShared;
use crate::config::ConnectConfig;
use crate::conn::{Canceller, PgConn};
use crate::error::Error;

/// One pooled connection's place. `conn` is `None` once the reaper has closed it.
pub struct Slot {
    state: Mutex<SlotState>,
    /// The session whose statement runs on the connection now (0: none), and what cancels the
    /// connection's statements: read without the state lock, which a running statement holds,
    /// so that `Session::cancel` finds its statements without the statements taking any shared
    /// lock.
    running_for: AtomicU64,
    canceller: Canceller,
    /// The pool's generation when the connection was opened (`Pool::drain` bumps it).
    generation: u64,
}

pub struct SlotState {
    pub conn: Option<PgConn>,
    /// Checked out (between `is_valid` at checkout and the lease's return).
    pub leased: bool,
    pub idle_since: Instant,
    pub leased_since: Instant,
    /// What holds the lease (results of a statement, a transaction), for leak reports.
    pub holder: Option<String>,
    pub leak_reported: bool,
    /// When the connection is closed instead of being handed out or returned to the idle list
    /// (`pool_max_lifetime`, with its jitter); `None`: no limit.
    pub expires_at: Option<Instant>,
}

impl SlotState {
    /// Whether the connection has outlived its `pool_max_lifetime`.
    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// How long the health check's round trip may take before the connection is closed.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

impl Slot {
    /// The pool's generation when the connection was opened.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Mark the connection as running a statement of session `id` (0: none any more).
    pub fn set_running_for(&self, id: u64) {
        self.running_for.store(id, Ordering::Release);
    }

    /// What cancels the statement of session `id` running on this connection, if one is.
    pub fn canceller_if_running_for(&self, id: u64) -> Option<Canceller> {
        let running = || self.running_for.load(Ordering::Acquire) == id;
        if !running() {
            return None;
        }
        let canceller = self.canceller.for_running();
        // Still the session's statement (it did not end while we looked).
        running().then_some(canceller)
    }

    /// Lock the slot unless another thread holds it.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, SlotState>> {
        match self.state.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => {
                let mut g = p.into_inner();
                g.conn = None;
                Some(g)
            }
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Lock the slot. A panic while it was held leaves the connection in an unknown state: mark
    /// it for discarding instead of propagating the poison.
    pub fn lock(&self) -> MutexGuard<'_, SlotState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                g.conn = None;
                g
            }
        }
    }
}

/// Opens, checks and leases connections for one pool. Everything a connection goes through
/// between the server and a lease is here: counters, logs, the last connect error, slot
/// registration, the checkout check.
#[derive(Clone)]
pub struct Manager {
    pub config: ConnectConfig,
    pub shared: Arc<PoolShared>,
}

impl Manager {
    /// Open a new connection, recording a failure for the pool's checkout errors and counters.
    pub fn dial(&self) -> Result<PgConn, Error> {
        PgConn::connect(&self.config).inspect_err(|e| self.record_failure(e))
    }

    fn record_failure(&self, e: &Error) {
        self.shared.connect_failed();
        self.shared.counters.connect_failures.inc();
        crate::log::warn(|| format!("pool {}: connecting failed: {e}", self.shared.id));
        *self.shared.last_connect_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
    }

    /// Open a new connection giving up by `deadline`, the checkout's: every host tried, and
    /// every wait of each attempt (TLS, startup, authentication, `target_session_attrs`' query)
    /// share it, and no host gets more than `connect_timeout`. A failure is recorded as `dial`
    /// records it, unless it came from the deadline: an attempt cut short is not the server's
    /// answer, so it does not replace the last attempt's error (a checkout error should say why
    /// connecting fails, not that time ran out).
    pub fn dial_by(&self, deadline: Instant) -> Result<PgConn, Error> {
        let budget = self.shared.settings.checkout_timeout;
        crate::conn::connect_within(deadline, budget, || PgConn::connect(&self.config)).inspect_err(|e| {
            if Instant::now() < deadline {
                self.record_failure(e);
            } else {
                self.shared.connect_failed();
                crate::log::debug(|| {
                    format!("pool {}: gave up connecting at the checkout deadline: {e}", self.shared.id)
                });
            }
        })
    }

    /// A new connection for the pool in a new slot. With a `deadline`, connecting gives up by
    /// then (`dial_by`).
    pub fn open(&self, deadline: Option<Instant>) -> Result<Arc<Slot>, Error> {
        let started = Instant::now();
        let conn = match deadline {
            Some(deadline) => self.dial_by(deadline)?,
            None => self.dial()?,
        };
        Ok(self.adopt(conn, started))
    }

    /// Put a connection just opened into a new slot of the pool (idle, not listed anywhere yet).
    pub fn adopt(&self, mut conn: PgConn, started: Instant) -> Arc<Slot> {
        conn.set_notice_hook(self.shared.settings.notice_hook);
        conn.set_max_result_bytes(self.shared.settings.max_result_bytes);
        self.shared.counters.connects.inc();
        conn.use_statement_cache(self.shared.settings.statement_cache, self.shared.statements.clone());
        crate::log::info(|| {
            format!(
                "pool {}: connected to {} as {} (backend pid {}) in {} ms",
                self.shared.id,
                conn.host(),
                self.config.user,
                conn.backend_pid(),
                started.elapsed().as_millis()
            )
        });
        *self.shared.last_connect_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.shared.connected();
        let canceller = conn.canceller();
        let slot = Arc::new(Slot {
            running_for: AtomicU64::new(0),
            canceller,
            generation: self.shared.generation.load(Ordering::Acquire),
            state: Mutex::new(SlotState {
                conn: Some(conn),
                leased: false,
                idle_since: Instant::now(),
                leased_since: Instant::now(),
                holder: None,
                leak_reported: false,
                expires_at: jittered(self.shared.settings.max_lifetime).map(|d| Instant::now() + d),
            }),
        });
        self.shared.register_slot(&slot);
        slot
    }

    /// The check at every checkout: a look at the socket (see `PgConn::check_idle_alive`), and a
    /// round trip only for a connection idle for longer than `pool_health_check`. A connection
    /// closed by the reaper, past its lifetime, from before a drain, or found dead is refused
    /// (and closed and counted); the caller then tries another or opens a new one. A connection
    /// that passes is marked leased.
    pub fn check_out(&self, slot: &Slot) -> Result<(), Error> {
        let mut state = slot.lock();
        let now = Instant::now();
        if state.conn.is_none() {
            return Err(Error::operational("08003", "connection closed after idling past pool_idle_ttl"));
        }
        if slot.generation != self.shared.generation.load(Ordering::Acquire) {
            state.conn = None;
            self.shared.counters.closed_drained.inc();
            return Err(Error::operational("08003", "connection closed by a drain"));
        }
        if state.expired(now) {
            state.conn = None;
            self.shared.counters.closed_lifetime.inc();
            return Err(Error::operational("08003", "connection closed after pool_max_lifetime"));
        }
        let check = self.shared.settings.health_check;
        let round_trip = !check.is_zero() && now.duration_since(state.idle_since) >= check;
        let Some(conn) = state.conn.as_mut() else { unreachable!("checked above") };
        let alive = conn.check_idle_alive();
        if alive && round_trip && !health_check(conn) {
            self.shared.counters.closed_health.inc();
            crate::log::warn(|| {
                format!(
                    "pool {}: a connection idle for {} ms did not answer the health check within {} ms; closed",
                    self.shared.id,
                    now.duration_since(state.idle_since).as_millis(),
                    HEALTH_CHECK_TIMEOUT.as_millis()
                )
            });
            state.conn = None;
            return Err(Error::operational("08006", "pooled connection failed its health check; closed"));
        }
        if !alive {
            self.shared.counters.discarded_dead.inc();
            crate::log::warn(|| {
                format!("pool {}: discarded a pooled connection the server had closed", self.shared.id)
            });
            state.conn = None;
            return Err(Error::operational("08006", "pooled connection found closed by the server; discarded"));
        }
        mark_leased(&mut state, now);
        Ok(())
    }

    /// Lease a connection just opened (it needs no check).
    pub fn lease_new(&self, slot: &Slot) {
        mark_leased(&mut slot.lock(), Instant::now());
    }
}

/// One round trip (an empty query), bounded by `HEALTH_CHECK_TIMEOUT`: past it the connection
/// is broken (no cancel grace), so a server or network that no longer answers fails it.
fn health_check(conn: &mut PgConn) -> bool {
    conn.begin_statement(Some(HEALTH_CHECK_TIMEOUT), Duration::ZERO);
    let answered = conn.simple_query("").is_ok();
    conn.end_statement();
    conn.set_statement_timeout(None); // each statement of a session sets its own
    answered && !conn.is_broken()
}

/// `now`: the time of the checkout's check (read once for it).
fn mark_leased(state: &mut SlotState, now: Instant) {
    state.leased = true;
    state.leased_since = now;
    state.holder = None;
    state.leak_reported = false;
}

/// A connection's lifetime: `max_lifetime` within +-10%, chosen at random per connection so that
/// connections opened together do not all close together. `None` for zero (no limit).
fn jittered(max_lifetime: std::time::Duration) -> Option<std::time::Duration> {
    use std::hash::BuildHasher;
    if max_lifetime.is_zero() {
        return None;
    }
    // RandomState's keys come from the OS's randomness; hashing the time makes each call differ.
    let r = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    let factor = 0.9 + (r % 20_001) as f64 / 100_000.0; // 0.9 ..= 1.1
    Some(max_lifetime.mul_f64(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_spread_within_ten_percent() {
        assert_eq!(jittered(Duration::ZERO), None);
        let hour = Duration::from_secs(3600);
        let all: Vec<Duration> = (0..200).map(|_| jittered(hour).unwrap()).collect();
        assert!(all.iter().all(|d| *d >= hour.mul_f64(0.9) && *d <= hour.mul_f64(1.1)), "{all:?}");
        let (lo, hi) = (all.iter().min().unwrap(), all.iter().max().unwrap());
        assert!(*hi - *lo > Duration::from_secs(300), "spread {lo:?}..{hi:?}");
    }
}
