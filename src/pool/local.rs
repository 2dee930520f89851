//! The library's own pool core, used instead of r2d2 by every pool of a forked child (see
//! `super` for why a child cannot run r2d2). Pre-fork servers (unicorn, puma, prefork C daemons)
//! run on it for the life of their workers.
//!
//! What it shares with the r2d2 backend (`super`): the gate, which bounds the callers holding or
//! opening a connection to `pool_max_size` and serves waiters in arrival order (only a caller
//! holding a permit gets here); the `Manager`, which opens, checks (at every checkout) and leases
//! connections, counting and logging as it goes; the `Lease`, which rolls back and returns a
//! connection and then releases its permit; the reaper, which closes connections idle past the
//! TTL and reports leaks. What is its own: where idle connections wait (a list), and who opens a
//! connection when none is idle (the caller, inline, within its checkout deadline). No thread,
//! no timer, and only std's futex-based locks.
//!
//! Open connections never exceed `pool_max_size`: a lease pushes its connection onto the idle
//! list before it releases its permit, and a permit holder takes an idle connection whenever one
//! is listed, opening a new one only when the list is empty. So idle connections never outnumber
//! the permits not yet turned into a connection, and idle + leased + being opened <= permits.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::manager::{Manager, Slot};

/// The first pause after a failed connection attempt; each failure doubles it, up to
/// `MAX_RETRY_PAUSE` (as r2d2 retries in its connecting threads).
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A pool's idle connections.
pub struct Idle {
    /// The most recently returned last, and taken first: busy periods reuse warm connections
    /// and the surplus ages out by `pool_idle_ttl`. Connections the reaper has closed stay
    /// listed as empty slots until a checkout drops them.
    list: Mutex<Vec<Arc<Slot>>>,
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
    /// at again first: another caller may have returned one) until `deadline`; `None` then, the
    /// failure having been recorded for the checkout error.
    pub fn get(&self, manager: &Manager, deadline: Instant) -> Option<Arc<Slot>> {
        let mut pause = FIRST_RETRY_PAUSE;
        let mut attempted = false;
        loop {
            loop {
                let Some(slot) = self.list().pop() else { break };
                if manager.check_out(&slot).is_ok() {
                    return Some(slot);
                }
                // Closed by the reaper or found dead (and closed): the slot goes.
            }
            if attempted && Instant::now() >= deadline {
                return None;
            }
            attempted = true;
            if let Ok(slot) = manager.open(Some(deadline)) {
                manager.lease_new(&slot);
                return Some(slot);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    /// Take back a returned connection (a lease, before it releases its permit).
    pub fn put(&self, slot: Arc<Slot>) {
        self.list().push(slot);
    }
}
