//! The process-wide registry: one pool per (normalised connection settings, pool settings).
//!
//! Pools stay registered for the life of the process (idle connections expire by TTL), so opening
//! and closing sessions on a warm pool costs no connection. After `fork()` the child's first call
//! starts an empty registry: the parent's pools are kept alive and never used or dropped (dropping
//! could write on the parent's sockets or wait on the parent's threads and locks); the child only
//! closes its own copies of their sockets (`Pool::abandon`). The registry's lock is one of the
//! process-wide locks the atfork handlers hold across fork() (`crate::atfork`), so the child always
//! finds it free.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::Pool;
use crate::config::{ConnectConfig, PoolSettings};

pub(crate) struct Registry {
    pid: u32,
    salt: [u8; 16],
    pools: HashMap<String, Arc<Pool>>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Registry>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held by the atfork prepare handler until the parent and child handlers (see `crate::atfork`).
pub(crate) type ForkGuard = MutexGuard<'static, Option<Registry>>;

pub(crate) fn lock_for_fork() -> ForkGuard {
    lock()
}

fn random_salt() -> [u8; 16] {
    // RandomState is seeded from the OS's randomness once per process.
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let h = RandomState::new().hash_one((i, std::process::id()));
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    out
}

fn registry_key(config: &ConnectConfig, settings: &PoolSettings, local: bool) -> String {
    let backend = if local { "|local" } else { "" };
    format!("{}|{settings:?}{backend}", config.canonical_key())
}

/// The pool for this configuration, created if needed. The flag is true when this call created it.
///
/// `local` asks for a pool of its own, as a forked child's are (for tests); such a pool is never
/// shared with sessions that did not ask for it.
pub fn get_or_create(config: &ConnectConfig, settings: PoolSettings, local: bool) -> (Arc<Pool>, bool) {
    let key = registry_key(config, &settings, local);
    let mut forgot = None;
    let got = {
        let mut guard = lock();
        let pid = crate::process::current_pid();
        let mut inherited_salt = None;
        if let Some(old) = guard.take_if(|r| r.pid != pid) {
            // A forked child's first call: the parent's pools and threads are not ours.
            let (pools, mut closed) = (old.pools.len(), 0);
            for pool in old.pools.into_values() {
                closed += pool.abandon();
                crate::process::keep(pool);
            }
            // The same salt: a configuration keeps its pool id across fork() (the ids that
            // `pgsess_pool_id` handed out before fork() still name the child's pools).
            inherited_salt = Some(old.salt);
            forgot = Some((pools, closed));
        }
        let reg = guard.get_or_insert_with(|| Registry {
            pid,
            salt: inherited_salt.unwrap_or_else(random_salt),
            pools: HashMap::new(),
        });
        match reg.pools.get(&key) {
            Some(pool) => (pool.clone(), false),
            None => (create(reg, key, config, settings, local), true),
        }
    };
    // Logged outside the registry's lock: a log callback is the application's code.
    if let Some((pools, closed)) = forgot {
        crate::log::debug(|| {
            format!(
                "forked child {}: left the parent's {pools} pools alone, closed this process's copies of {closed} of \
                 their sockets",
                crate::process::current_pid()
            )
        });
    }
    got
}

fn create(reg: &mut Registry, key: String, config: &ConnectConfig, settings: PoolSettings, local: bool) -> Arc<Pool> {
    let mut hasher = Sha256::new();
    hasher.update(reg.salt);
    hasher.update(key.as_bytes());
    let id: String = hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    let pool = Pool::new(id, config.clone(), settings, local || crate::process::forked());
    reg.pools.insert(key, pool.clone());
    pool
}

/// Unregister `pool` if it is still the registered one for its key (a pool whose first connection
/// failed is not kept).
pub fn remove(pool: &Arc<Pool>) {
    let mut guard = lock();
    if let Some(reg) = guard.as_mut().filter(|r| r.pid == crate::process::current_pid()) {
        reg.pools.retain(|_, p| !Arc::ptr_eq(p, pool));
    }
}
