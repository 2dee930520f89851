//! The pool's background work: closes idle connections the server has closed (a look at the
//! socket, no round trip), idle longer than `pool_idle_ttl` (keeping `pool_min_idle`) or past
//! their `pool_max_lifetime`, reports leaks, and opens connections in
//! the background: up to `pool_min_idle` idle ones, and, while connecting fails, one attempt per
//! tick so that a server that comes back is found without a caller having to wait for it.
//!
//! One thread per process wakes every `TICK` and looks at every pool's slots; a slot in use is
//! skipped without waiting for it. Opening is done by a short-lived thread per pool (one at a
//! time), so that a slow server delays neither the other pools nor the reaping. Started on first
//! use, and again in a forked child (threads do not survive fork()).
//! The watch list's lock is one of the process-wide locks the atfork handlers hold across fork()
//! (`crate::atfork`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::{lock, Pool, PoolShared};

const TICK: Duration = Duration::from_millis(250);

pub(crate) struct Watched {
    /// The process whose reaper thread serves `pools`.
    pid: u32,
    pools: Vec<Weak<Pool>>,
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
pub fn watch(pool: &Arc<Pool>) {
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
        let pools: Vec<Arc<Pool>> = {
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
            reap(&pool.shared);
            if needs_opening(&pool.shared) && !pool.shared.filling.swap(true, Ordering::AcqRel) {
                let filler = pool.clone();
                let spawned = std::thread::Builder::new().name("pgsess-open".into()).spawn(move || fill(&filler));
                if spawned.is_err() {
                    pool.shared.filling.store(false, Ordering::Release);
                }
            }
        }
    }
}

/// The idle connections to keep open: `pool_min_idle`, at most the pool's size.
fn min_idle(pool: &PoolShared) -> usize {
    pool.settings.min_idle.min(pool.max_size.load(Ordering::Relaxed)) as usize
}

/// Whether the pool needs connections opened in the background: connecting failing (attempts
/// at a pace `PoolShared::retry_due` sets, until one succeeds), or fewer than `pool_min_idle`
/// idle. Never during a drain, nor before the pool's first checkout has ended (`connect_first`
/// is opening them).
fn needs_opening(pool: &PoolShared) -> bool {
    if pool.draining.load(Ordering::Acquire) || pool.warming.load(Ordering::Relaxed) {
        return false;
    }
    if pool.failing() {
        return pool.retry_due();
    }
    pool.idle_open() < min_idle(pool)
}

/// Open connections into the idle list while `needs_opening` says so and a permit is spare (so
/// open connections stay within `pool_max_size`); stop at the first failure (the next tick
/// tries again).
fn fill(pool: &Pool) {
    let sh = &pool.shared;
    while needs_opening(sh) && sh.gate.try_acquire_spare(|| sh.idle.count_open()) {
        let opened = pool.manager.open(Some(Instant::now() + sh.settings.checkout_timeout));
        if let Ok(slot) = opened.as_ref() {
            sh.idle.put(slot.clone());
        }
        sh.gate.release();
        if opened.is_err() {
            break;
        }
    }
    sh.filling.store(false, Ordering::Release);
}

fn reap(pool: &PoolShared) {
    let ttl = pool.settings.idle_ttl;
    // Idle connections the TTL may close without going below pool_min_idle.
    let mut may_close = pool.idle_open().saturating_sub(min_idle(pool));
    let slots: Vec<_> = lock(&pool.slots).iter().filter_map(Weak::upgrade).collect();
    let now = Instant::now();
    for slot in slots {
        // A slot being used holds its lock for the statement: skip it rather than wait.
        let (closed, why) = {
            let Some(mut state) = slot.try_lock() else { continue };
            if state.leased || state.conn.is_none() {
                if state.leased {
                    report_leak(pool, &mut state);
                }
                continue;
            } else if !state.conn.as_mut().is_some_and(|c| c.check_idle_alive()) {
                // Closed by the server (pg_terminate_backend, a restart): gone now, not at the
                // next checkout, so that pool_min_idle is restored without waiting for one.
                pool.counters.discarded_dead.inc();
                (state.conn.take(), "the server had closed it")
            } else if state.expired(now) {
                pool.counters.closed_lifetime.inc();
                (state.conn.take(), "its pool_max_lifetime passed")
            } else if !ttl.is_zero() && may_close > 0 && state.idle_since.elapsed() >= ttl {
                may_close -= 1;
                pool.counters.expired.inc();
                (state.conn.take(), "it idled past pool_idle_ttl")
            } else {
                continue;
            }
        };
        crate::log::debug(|| format!("pool {}: closed a connection: {why}", pool.id));
        drop(closed); // sends Terminate
    }
    pool.idle.prune();
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
