//! The connection manager: how a pool opens, checks and discards connections (for both backends,
//! see `super`).
//!
//! Each pooled connection lives in a `Slot` shared with the pool's bookkeeping, so the idle reaper
//! (`super::reaper`) can close a connection that has sat idle past the TTL within about a second,
//! which r2d2's own reaper (fixed at a 30 s rate) cannot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::PoolShared;
use crate::config::ConnectConfig;
use crate::conn::{CancelKey, PgConn};
use crate::error::Error;

/// One pooled connection's place. `conn` is `None` once the reaper has closed it.
pub struct Slot {
    state: Mutex<SlotState>,
    /// The session whose statement runs on the connection now (0: none), and the connection's
    /// cancel key: read without the state lock, which a running statement holds, so that
    /// `Session::cancel` finds its statements without the statements taking any shared lock.
    running_for: AtomicU64,
    cancel_key: Arc<CancelKey>,
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
}

impl Slot {
    /// Mark the connection as running a statement of session `id` (0: none any more).
    pub fn set_running_for(&self, id: u64) {
        self.running_for.store(id, Ordering::Release);
    }

    /// The cancel key of the statement of session `id` running on this connection, if one is.
    pub fn cancel_key_if_running_for(&self, id: u64) -> Option<Arc<CancelKey>> {
        (self.running_for.load(Ordering::Acquire) == id).then(|| self.cancel_key.clone())
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

/// What r2d2 stores: a handle on the slot.
pub struct PooledConn {
    pub slot: Arc<Slot>,
}

/// Opens, checks and leases connections for one pool; r2d2's `ManageConnection` in the original
/// process, called directly by the local core (`super::local`) in a forked child. Everything a
/// connection goes through between the server and a lease is here, so both backends behave the
/// same: counters, logs, the last connect error, slot registration, the checkout check.
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
        self.shared.counters.connect_failures.inc();
        crate::log::warn(|| format!("pool {}: connecting failed: {e}", self.shared.id));
        *self.shared.last_connect_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
    }

    /// A connection for the pool in a new slot: the one `Pool::connect_first` opened if it is
    /// still waiting, else a new one. With a `deadline`, connecting gives up by then (each host
    /// tried gets at most the time left, and never more than `connect_timeout`).
    pub fn open(&self, deadline: Option<Instant>) -> Result<Arc<Slot>, Error> {
        let started = Instant::now();
        let adopted = self.shared.adopted.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match adopted {
            Some(conn) => conn,
            None => match deadline.map(|d| (d, d.saturating_duration_since(started))) {
                Some((deadline, left)) if left < self.config.connect_timeout => {
                    let mut bounded = self.config.clone();
                    bounded.connect_timeout = left.max(Duration::from_millis(1));
                    PgConn::connect(&bounded).inspect_err(|e| {
                        if Instant::now() < deadline {
                            self.record_failure(e);
                        } else {
                            // Cut short by the caller's checkout deadline: not the server's
                            // answer, so it does not replace the last attempt's error (a checkout
                            // error should say why connecting fails, not that time ran out).
                            crate::log::debug(|| {
                                format!("pool {}: gave up connecting at the checkout deadline: {e}", self.shared.id)
                            });
                        }
                    })?
                }
                _ => self.dial()?,
            },
        };
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
        let cancel_key = conn.cancel_key();
        let slot = Arc::new(Slot {
            running_for: AtomicU64::new(0),
            cancel_key,
            state: Mutex::new(SlotState {
                conn: Some(conn),
                leased: false,
                idle_since: Instant::now(),
                leased_since: Instant::now(),
                holder: None,
                leak_reported: false,
            }),
        });
        self.shared.register_slot(&slot);
        Ok(slot)
    }

    /// The check at every checkout: no round trip, just a look at the socket (see
    /// `PgConn::check_idle_alive`). A connection closed by the reaper or found dead is refused
    /// (and a dead one closed and counted); the caller then tries another or opens a new one.
    /// A connection that passes is marked leased.
    pub fn check_out(&self, slot: &Slot) -> Result<(), Error> {
        let mut state = slot.lock();
        let alive = match state.conn.as_mut() {
            None => return Err(Error::operational("08003", "connection closed after idling past pool_idle_ttl")),
            Some(c) => c.check_idle_alive(),
        };
        if !alive {
            self.shared.counters.discarded_dead.inc();
            crate::log::warn(|| {
                format!("pool {}: discarded a pooled connection the server had closed", self.shared.id)
            });
            state.conn = None;
            return Err(Error::operational("08006", "pooled connection found closed by the server; discarded"));
        }
        mark_leased(&mut state);
        Ok(())
    }

    /// Lease a connection just opened (it needs no check).
    pub fn lease_new(&self, slot: &Slot) {
        mark_leased(&mut slot.lock());
    }
}

fn mark_leased(state: &mut SlotState) {
    state.leased = true;
    state.leased_since = Instant::now();
    state.holder = None;
    state.leak_reported = false;
}

impl r2d2::ManageConnection for Manager {
    type Connection = PooledConn;
    type Error = Error;

    fn connect(&self) -> Result<PooledConn, Error> {
        self.open(None).map(|slot| PooledConn { slot })
    }

    /// Runs at every checkout (see `Manager::check_out`); r2d2 discards a refused connection and
    /// tries the next one or opens a new one.
    fn is_valid(&self, conn: &mut PooledConn) -> Result<(), Error> {
        self.check_out(&conn.slot)
    }

    fn has_broken(&self, conn: &mut PooledConn) -> bool {
        let mut state = conn.slot.lock();
        let broken = state.conn.as_ref().map_or(true, |c| c.is_broken());
        if broken && state.conn.take().is_some() {
            self.shared.counters.discarded_dead.inc();
        }
        broken
    }
}
