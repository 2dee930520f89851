//! Where a pool's idle connections wait, and how a caller holding a permit of the gate
//! (`super::gate`) turns it into a connection: the most recently returned idle one that passes
//! the checkout check, else one it opens itself, inline, within its checkout deadline.
//!
//! No thread, no timer, only std's futex-based locks: the same code serves the process that
//! loaded the library and every forked child (see `super` for why a child cannot run code built
//! on parking_lot).
//!
//! Open connections never exceed `pool_max_size`, and a burst of N callers opens at most N: only
//! a permit holder opens a connection, and only when no idle one is listed; a lease pushes its
//! connection onto the idle list before it releases its permit. So idle connections never
//! outnumber the permits not yet turned into a connection, and idle + leased + being opened <=
//! permits held by callers. A caller never waits for a connection someone else is opening, and a
//! connection returned while a caller opens one stays idle for the next caller: nothing is opened
//! on a waiter's behalf that it then does not use.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::manager::{Manager, Slot};

/// The first pause after a failed connection attempt; each failure doubles it, up to
/// `MAX_RETRY_PAUSE`.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A pool's idle connections.
pub struct Idle {
    /// The most recently returned last, and taken first: busy periods reuse warm connections
    /// and the surplus ages out by `pool_idle_ttl`. Connections the reaper has closed stay
    /// listed as empty slots until a checkout drops them.
    list: Mutex<Vec<Arc<Slot>>>,
}

/// How long the one quick connection attempt of a checkout may take while the server is known
/// to be down: such a checkout fails within about this much (a refused connection fails in far
/// less), and one that finds the server back succeeds.
const PROBE_BUDGET: Duration = Duration::from_millis(40);

/// Why a permit holder got no connection.
pub enum NoConnection {
    /// The checkout deadline passed (connecting kept failing, or was slow).
    Deadline,
    /// Connecting has been failing this long, longer than the checkout timeout
    /// (`PoolShared::known_down`): failed at once.
    Down(Duration),
    /// A drain was still under way at the deadline.
    Draining,
}

impl Idle {
    pub fn new(max_size: u32) -> Idle {
        Idle { list: Mutex::new(Vec::with_capacity(max_size as usize)) }
    }

    fn list(&self) -> MutexGuard<'_, Vec<Arc<Slot>>> {
        // Pushes and pops cannot be left half done by a panic.
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// For a caller holding a permit: an idle connection that passes the checkout check, else
    /// one opened here. A failed attempt is retried after a pause (idle connections are looked
    /// at again first: another caller may have returned one) until `deadline`, the failure
    /// having been recorded for the checkout error.
    ///
    /// While the server is known to be down, a caller that finds no idle connection does not
    /// wait: it makes one quick attempt (`PROBE_BUDGET`) unless another caller is making one,
    /// and fails at once if that does not connect.
    pub fn get(&self, manager: &Manager, deadline: Instant) -> Result<Arc<Slot>, NoConnection> {
        if !manager.shared.wait_drained(deadline) {
            return Err(NoConnection::Draining);
        }
        let mut pause = FIRST_RETRY_PAUSE;
        let mut attempted = false;
        loop {
            if let Some(slot) = self.take_checked(manager) {
                return Ok(slot);
            }
            if let Some(down_for) = manager.shared.known_down() {
                return Self::probe(manager, deadline).ok_or(NoConnection::Down(down_for));
            }
            if attempted && Instant::now() >= deadline {
                return Err(NoConnection::Deadline);
            }
            attempted = true;
            if let Ok(slot) = manager.open(Some(deadline)) {
                manager.lease_new(&slot);
                return Ok(slot);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NoConnection::Deadline);
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    /// One quick connection attempt while the server is known to be down, by one caller at a
    /// time and not in a tight loop (`PoolShared::claim_probe`; the others fail at once).
    fn probe(manager: &Manager, deadline: Instant) -> Option<Arc<Slot>> {
        if !manager.shared.claim_probe() {
            return None;
        }
        let opened = manager.open(Some(deadline.min(Instant::now() + PROBE_BUDGET)));
        manager.shared.probing.store(false, Ordering::Release);
        let slot = opened.ok()?;
        manager.lease_new(&slot);
        Some(slot)
    }

    /// The most recently returned idle connection that passes the checkout check (those that
    /// fail it are dropped from the list).
    fn take_checked(&self, manager: &Manager) -> Option<Arc<Slot>> {
        loop {
            let slot = self.list().pop()?;
            if manager.check_out(&slot).is_ok() {
                return Some(slot);
            }
            // Closed by the reaper or found dead (and closed): the slot goes.
        }
    }

    /// Take back a returned connection (a lease, before it releases its permit), or a new idle
    /// one.
    pub fn put(&self, slot: Arc<Slot>) {
        self.list().push(slot);
    }

    /// Listed idle connections still open (a slot another thread holds locked counts as open).
    pub fn count_open(&self) -> usize {
        let open = |s: &&Arc<Slot>| s.try_lock().map_or(true, |state| state.conn.is_some());
        self.list().iter().filter(open).count()
    }

    /// Drop from the list the slots whose connection has been closed (by the reaper), so that
    /// the list's length counts open connections.
    pub fn prune(&self) {
        self.list().retain(|s| s.try_lock().map_or(true, |state| state.conn.is_some()));
    }

    /// Take every listed connection off the list.
    pub fn take_all(&self) -> Vec<Arc<Slot>> {
        std::mem::take(&mut *self.list())
    }
}
