//! Closes pooled connections that have been idle longer than their pool's `pool_idle_ttl`.
//!
//! One thread per process wakes every second and looks at every pool's slots; a slot in use is
//! skipped without waiting for it. Started on first use, and again in a forked child (threads do
//! not survive fork()). Serves both pool backends: it works on the slots every pool lists.
//! The watch list's lock is one of the process-wide locks the atfork handlers hold across fork()
//! (`crate::atfork`).

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::{lock, PoolShared};

const TICK: Duration = Duration::from_secs(1);

pub(crate) struct Watched {
    /// The process whose reaper thread serves `pools`.
    pid: u32,
    pools: Vec<Weak<PoolShared>>,
}

static WATCHED: Mutex<Option<Watched>> = Mutex::new(None);

fn watched() -> MutexGuard<'static, Option<Watched>> {
    WATCHED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held by the atfork prepare handler until the parent and child handlers (see `crate::atfork`).
pub(crate) type ForkGuard = MutexGuard<'static, Option<Watched>>;

pub(crate) fn lock_for_fork() -> ForkGuard {
    watched()
}

/// Put a pool under the reaper's watch, starting the reaper thread if this process has none.
pub fn watch(pool: &Arc<PoolShared>) {
    if pool.settings.idle_ttl.is_zero() && pool.settings.leak_threshold.is_none() {
        return;
    }
    let mut w = watched();
    let pid = crate::process::current_pid();
    let fresh = !matches!(&*w, Some(existing) if existing.pid == pid);
    if fresh {
        *w = Some(Watched { pid, pools: Vec::new() });
        let spawned = std::thread::Builder::new().name("pgsess-reaper".into()).spawn(run);
        if spawned.is_err() {
            // Without the thread, idle connections simply stay open; nothing else depends on it.
            *w = None;
            return;
        }
    }
    if let Some(w) = w.as_mut() {
        w.pools.push(Arc::downgrade(pool));
    }
}

fn run() {
    let me = crate::process::current_pid();
    loop {
        std::thread::sleep(TICK);
        let pools: Vec<Arc<PoolShared>> = {
            let mut w = watched();
            match w.as_mut() {
                Some(w) if w.pid == me => {
                    w.pools.retain(|p| p.strong_count() > 0);
                    w.pools.iter().filter_map(Weak::upgrade).collect()
                }
                _ => return,
            }
        };
        for pool in pools {
            reap(&pool);
        }
    }
}

fn reap(pool: &PoolShared) {
    let ttl = pool.settings.idle_ttl;
    let slots: Vec<_> = lock(&pool.slots).iter().filter_map(Weak::upgrade).collect();
    for slot in slots {
        // A slot being used holds its lock for the statement: skip it rather than wait.
        let expired = {
            let Some(mut state) = slot.try_lock() else { continue };
            if state.leased {
                report_leak(pool, &mut state);
                None
            } else if !ttl.is_zero() && state.conn.is_some() && state.idle_since.elapsed() >= ttl {
                state.conn.take()
            } else {
                None
            }
        };
        if let Some(conn) = expired {
            pool.counters.expired.inc();
            crate::log::debug(|| format!("pool {}: closed a connection idle for {} s", pool.id, ttl.as_secs()));
            drop(conn); // sends Terminate
        }
    }
}

/// Log, once per checkout, a connection held longer than the pool's leak threshold.
fn report_leak(pool: &PoolShared, state: &mut super::manager::SlotState) {
    let Some(threshold) = pool.settings.leak_threshold else { return };
    let held = state.leased_since.elapsed();
    if state.leak_reported || held < threshold {
        return;
    }
    state.leak_reported = true;
    let holder = state.holder.as_deref().unwrap_or("a statement still running");
    crate::log::warn(|| {
        format!(
            "pool {}: possible leak: a connection has been held for {} ms (threshold {} ms) by {holder}; \
             free results with pgsess_results_free and end transactions",
            pool.id,
            held.as_millis(),
            threshold.as_millis()
        )
    });
}
