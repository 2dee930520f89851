//! The process-wide registry: one pool per (normalised connection settings, pool settings).
//!
//! Pools stay registered for the life of the process (idle connections expire by TTL), so opening
//! and closing sessions on a warm pool costs no connection. After `fork()` the child starts an
//! empty registry: the parent's pools, their threads and sockets are left untouched (never dropped,
//! since dropping could write on the parent's sockets or wait on the parent's threads).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::Mutex;

use scheduled_thread_pool::ScheduledThreadPool;
use sha2::{Digest, Sha256};

use super::Pool;
use crate::config::{ConnectConfig, PoolSettings};

/// Threads r2d2 uses to open connections, shared by every pool of the process.
const CONNECT_THREADS: usize = 8;

struct Registry {
    pid: u32,
    salt: [u8; 16],
    pools: HashMap<String, Arc<Pool>>,
    threads: Arc<ScheduledThreadPool>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Pools of a parent process, kept alive and untouched in a forked child.
static INHERITED: Mutex<Vec<Arc<Pool>>> = Mutex::new(Vec::new());

fn random_salt() -> [u8; 16] {
    // RandomState is seeded from the OS's randomness once per process.
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let h = RandomState::new().hash_one((i, std::process::id()));
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    out
}

fn registry_key(config: &ConnectConfig, settings: &PoolSettings) -> String {
    format!("{}|{settings:?}", config.canonical_key())
}

/// The pool for this configuration, created if needed. The flag is true when this call created it.
pub fn get_or_create(config: &ConnectConfig, settings: PoolSettings) -> (Arc<Pool>, bool) {
    let key = registry_key(config, &settings);
    crate::fork::enter();
    let mut guard = REGISTRY.lock();
    let pid = crate::fork::current_pid();
    if let Some(old) = guard.take_if(|r| r.pid != pid) {
        // Forked child: keep the parent's pools alive but unused.
        let mut inherited = INHERITED.lock();
        inherited.extend(old.pools.into_values());
        std::mem::forget(old.threads);
    }
    let reg = guard.get_or_insert_with(|| Registry {
        pid,
        salt: random_salt(),
        pools: HashMap::new(),
        threads: Arc::new(
            ScheduledThreadPool::builder()
                .num_threads(CONNECT_THREADS)
                .thread_name_pattern("pgsess-connect-{}")
                .build(),
        ),
    });
    if let Some(pool) = reg.pools.get(&key) {
        return (pool.clone(), false);
    }
    let mut hasher = Sha256::new();
    hasher.update(reg.salt);
    hasher.update(key.as_bytes());
    let id: String = hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    let pool = Pool::new(id, config.clone(), settings, reg.threads.clone());
    reg.pools.insert(key, pool.clone());
    (pool, true)
}

/// Unregister `pool` if it is still the registered one for its key (a pool whose first connection
/// failed is not kept).
pub fn remove(pool: &Arc<Pool>) {
    crate::fork::enter();
    let mut guard = REGISTRY.lock();
    if let Some(reg) = guard.as_mut() {
        reg.pools.retain(|_, p| !Arc::ptr_eq(p, pool));
    }
}

/// In a forked child: release the registry's locks if a parent thread held them at fork().
///
/// # Safety
/// Only from `fork::enter`, the child's first call.
pub(crate) unsafe fn after_fork() {
    crate::fork::unlock_inherited(&REGISTRY);
    crate::fork::unlock_inherited(&INHERITED);
}
