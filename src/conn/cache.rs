//! The statement cache: parameterised statements prepared once per connection under generated
//! names, then run with Bind/Execute only (as pgx and asyncpg do). Opt-in per pool
//! (`statement_cache` capacity; 0, the default, is off, so PgBouncer in transaction mode stays
//! safe).
//!
//! - Each connection keeps at most `capacity` statements, least recently used evicted first with
//!   a Close sent ahead of the next statement (in the same write, no extra round trip).
//! - The cache heals itself across the pool: when a connection finds a cached statement invalid
//!   (the server says "cached plan must not change result type", 0A000, or that the prepared
//!   statement does not exist, 26000), it forgets the statement and tells the pool's
//!   `CacheShared`, which every other connection of the pool reads (one atomic load per
//!   statement) before its next use: they close and re-prepare that statement instead of
//!   failing on it too.
//! - Names are unique to the connection (a random per-connection part), so behind a pooler
//!   that moves a client between server connections a Bind can only ever find no statement,
//!   never another client's statement of the same name.
//! - A server does not lose a connection's prepared statements unless told to (DEALLOCATE or
//!   DISCARD, whose tags the connection sees). A pool whose connections find their statements
//!   missing twice is behind a pooler in transaction mode that does not track prepared
//!   statements: the pool's cache is then switched off for good, with an error that says so.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustc_hash::FxBuildHasher;

use crate::rows::binary::prefers_binary;
use crate::rows::{Column, FORMAT_BINARY, FORMAT_TEXT};

/// At most this many statements are remembered as forgotten (`CacheShared::forget`); past it
/// the record is cleared and every connection drops its whole cache once.
const FORGOTTEN_MAX: usize = 4096;

/// What one pool's connections share about their caches.
#[derive(Debug, Default)]
pub struct CacheShared {
    /// Bumped by every `forget`: a connection that has seen this value has nothing to drop.
    epoch: AtomicU64,
    /// The SQL texts forgotten, each with the epoch it was forgotten at.
    forgotten: Mutex<Forgotten>,
    /// Set when the server connections proved not to keep our statements (see the module doc).
    disabled: AtomicBool,
    /// Statements the pool's connections found missing (26000) without a cause they saw.
    lost: AtomicU32,
}

#[derive(Debug, Default)]
struct Forgotten {
    by_sql: HashMap<Box<str>, u64>,
    /// Every statement prepared before this epoch is forgotten (the record overflowed).
    all_before: u64,
}

impl CacheShared {
    /// Every connection of the pool must re-prepare `sql` before its next use.
    pub fn forget(&self, sql: &str) {
        let mut f = self.forgotten.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        if f.by_sql.len() >= FORGOTTEN_MAX && !f.by_sql.contains_key(sql) {
            f.by_sql.clear();
            f.all_before = epoch;
        } else {
            f.by_sql.insert(sql.into(), epoch);
        }
    }

    /// Whether the pool's cache was switched off (see the module doc).
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Acquire)
    }

    fn disable(&self) {
        self.disabled.store(true, Ordering::Release);
    }
}

/// One cached statement.
#[derive(Debug)]
struct Entry {
    types: Box<[u32]>,
    /// Shared with each `Use` that names it: a lookup clones no string.
    name: Arc<str>,
    /// The pool epoch when it was prepared (`CacheShared::forget` after that drops it).
    epoch: u64,
    last_used: u64,
    /// Parse has succeeded (false while the first use's reply is being read).
    prepared: bool,
    /// The result formats a typed statement binds (`StatementCache::learn`), once a reply has
    /// shown the statement's result types: fixed for the prepared statement's life, as the
    /// server refuses to run it with others (0A000, which heals the cache). Empty: all text.
    typed: Option<Arc<[i16]>>,
}

/// How a statement is to be sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Use {
    /// Run the prepared statement of this name (Bind only), with the result formats a typed
    /// statement binds when they are known (`Entry::typed`).
    Cached(Arc<str>, Option<Arc<[i16]>>),
    /// Prepare it under this name in the same write, then Bind.
    Prepare(Arc<str>),
}

impl Use {
    pub fn name(&self) -> &str {
        match self {
            Use::Cached(n, _) | Use::Prepare(n) => n,
        }
    }

    /// The result formats of a typed statement, when known.
    pub fn typed(&self) -> Option<&Arc<[i16]>> {
        match self {
            Use::Cached(_, typed) => typed.as_ref(),
            Use::Prepare(_) => None,
        }
    }
}

/// One connection's cache.
#[derive(Debug)]
pub struct StatementCache {
    capacity: usize,
    shared: Arc<CacheShared>,
    /// The pool epoch this cache has caught up with.
    seen_epoch: u64,
    /// FxHash (see Cargo.toml): looked up on every statement.
    by_sql: HashMap<Box<str>, Vec<Entry>, FxBuildHasher>,
    len: usize,
    clock: u64,
    /// The connection's random part of every name.
    prefix: u64,
    next_id: u64,
    /// Statements to Close ahead of the next statement.
    to_close: Vec<Arc<str>>,
}

impl StatementCache {
    pub fn new(capacity: u32, shared: Arc<CacheShared>) -> StatementCache {
        let seen_epoch = shared.epoch.load(Ordering::Acquire);
        let prefix = RandomState::new().hash_one((std::process::id(), std::time::Instant::now()));
        StatementCache {
            capacity: capacity.max(1) as usize,
            shared,
            seen_epoch,
            by_sql: HashMap::default(),
            len: 0,
            clock: 0,
            prefix,
            next_id: 0,
            to_close: Vec::new(),
        }
    }

    /// Whether statements should go through the cache at all.
    pub fn enabled(&self) -> bool {
        !self.shared.is_disabled()
    }

    /// How to send `sql` with these declared types: its cached statement, or a new name to
    /// prepare it under (evicting the least recently used statement when full).
    pub fn lookup(&mut self, sql: &str, types: &[u32]) -> Use {
        self.catch_up();
        self.clock += 1;
        let clock = self.clock;
        if let Some(entries) = self.by_sql.get_mut(sql) {
            if let Some(e) = entries.iter_mut().find(|e| *e.types == *types) {
                e.last_used = clock;
                return if e.prepared {
                    Use::Cached(e.name.clone(), e.typed.clone())
                } else {
                    Use::Prepare(e.name.clone())
                };
            }
        }
        if self.len >= self.capacity {
            self.evict_lru();
        }
        self.next_id += 1;
        let name: Arc<str> = format!("pgsess_{:016x}_{}", self.prefix, self.next_id).into();
        let entry = Entry {
            types: types.into(),
            name: name.clone(),
            epoch: self.seen_epoch,
            last_used: clock,
            prepared: false,
            typed: None,
        };
        self.by_sql.entry(sql.into()).or_default().push(entry);
        self.len += 1;
        Use::Prepare(name)
    }

    /// The reply to a `Use::Prepare` was read: whether the server's ParseComplete came (the name
    /// now exists on the server) or not (it failed before; the entry goes).
    pub fn prepared(&mut self, sql: &str, name: &str, ok: bool) {
        if ok {
            if let Some(e) = self.by_sql.get_mut(sql).and_then(|v| v.iter_mut().find(|e| &*e.name == name)) {
                e.prepared = true;
            }
        } else {
            self.remove(sql, name, false);
        }
    }

    /// A reply of the statement prepared as `name` showed its result columns: remember the
    /// formats a typed statement binds for them (binary for the types
    /// `rows::binary::prefers_binary` names, text for the rest).
    pub fn learn(&mut self, sql: &str, name: &str, columns: &[Column]) {
        let Some(e) = self.by_sql.get_mut(sql).and_then(|v| v.iter_mut().find(|e| &*e.name == name)) else {
            return;
        };
        if e.typed.is_none() {
            let formats: Vec<i16> =
                columns.iter().map(|c| if prefers_binary(c.type_oid) { FORMAT_BINARY } else { FORMAT_TEXT }).collect();
            let any_binary = formats.contains(&FORMAT_BINARY);
            e.typed = Some(if any_binary { formats.into() } else { Arc::from([]) });
        }
    }

    /// This connection found `name` invalid: forget it here (closing it on the server) and
    /// across the pool. Returns false when the pool's connections have now found their
    /// statements missing twice (`lost` says the server reported this one missing): the pool's
    /// cache is then switched off.
    pub fn heal(&mut self, sql: &str, name: &str, lost: bool) -> bool {
        self.remove(sql, name, !lost);
        self.shared.forget(sql);
        if lost && self.shared.lost.fetch_add(1, Ordering::AcqRel) >= 1 {
            self.shared.disable();
            self.clear();
            return false;
        }
        true
    }

    /// The server dropped every prepared statement (DISCARD ALL, DEALLOCATE ALL): nothing to Close.
    pub fn clear(&mut self) {
        self.by_sql.clear();
        self.len = 0;
        self.to_close.clear();
    }

    /// The names to Close ahead of the next statement, taken.
    pub fn take_closes(&mut self) -> Vec<Arc<str>> {
        std::mem::take(&mut self.to_close)
    }

    pub fn has_closes(&self) -> bool {
        !self.to_close.is_empty()
    }

    /// Statements cached (prepared or being prepared).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Drop what other connections forgot since this one last looked.
    fn catch_up(&mut self) {
        let now = self.shared.epoch.load(Ordering::Acquire);
        if now == self.seen_epoch {
            return;
        }
        let (stale, all_before) = {
            let f = self.shared.forgotten.lock().unwrap_or_else(|p| p.into_inner());
            let stale: Vec<(Box<str>, u64)> =
                self.by_sql.keys().filter_map(|sql| f.by_sql.get(sql).map(|&at| (sql.clone(), at))).collect();
            (stale, f.all_before)
        };
        for (sql, at) in stale {
            self.drop_prepared_before(&sql, at);
        }
        if all_before > self.seen_epoch {
            let keys: Vec<Box<str>> = self.by_sql.keys().cloned().collect();
            for sql in keys {
                self.drop_prepared_before(&sql, all_before);
            }
        }
        self.seen_epoch = now;
    }

    /// Drop (and Close) the entries of `sql` prepared before `epoch`.
    fn drop_prepared_before(&mut self, sql: &str, epoch: u64) {
        let Some(entries) = self.by_sql.get_mut(sql) else { return };
        let before = entries.len();
        let to_close = &mut self.to_close;
        entries.retain(|e| {
            let keep = e.epoch >= epoch;
            if !keep {
                to_close.push(e.name.clone());
            }
            keep
        });
        self.len -= before - entries.len();
        if entries.is_empty() {
            self.by_sql.remove(sql);
        }
    }

    fn evict_lru(&mut self) {
        let victim = self
            .by_sql
            .iter()
            .flat_map(|(sql, v)| v.iter().map(move |e| (e.last_used, sql, &e.name)))
            .min_by_key(|(used, _, _)| *used)
            .map(|(_, sql, name)| (sql.clone(), name.clone()));
        if let Some((sql, name)) = victim {
            self.remove(&sql, &name, true);
        }
    }

    fn remove(&mut self, sql: &str, name: &str, close: bool) {
        let Some(entries) = self.by_sql.get_mut(sql) else { return };
        if let Some(i) = entries.iter().position(|e| &*e.name == name) {
            let e = entries.swap_remove(i);
            self.len -= 1;
            if close {
                self.to_close.push(e.name);
            }
        }
        if entries.is_empty() {
            self.by_sql.remove(sql);
        }
    }
}

/// Whether a statement's error means its cached statement is invalid, and if so whether the
/// server said it does not exist (26000) rather than that it no longer fits the schema: its
/// result type changed (0A000 from the plan cache's revalidation, "cached plan must not change
/// result type"), or a type it was planned with was dropped (42704 "type with OID ... does not
/// exist" from the type cache; XX000 "cache lookup failed for type"), as after a type is dropped
/// and created again. The routine (a field the server never localises) is checked first.
pub fn invalidated(sqlstate: Option<&str>, routine: Option<&str>, message: &str) -> Option<bool> {
    match sqlstate {
        Some("26000") => Some(true),
        Some("0A000")
            if routine == Some("RevalidateCachedQuery")
                || message.contains("cached plan must not change result type") =>
        {
            Some(false)
        }
        Some("42704") if routine == Some("lookup_type_cache") || message.starts_with("type with OID ") => Some(false),
        Some("XX000") if message.starts_with("cache lookup failed for type ") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_evicts_and_heals_across_connections() {
        let shared = Arc::new(CacheShared::default());
        let mut a = StatementCache::new(2, shared.clone());
        let mut b = StatementCache::new(2, shared.clone());
        let Use::Prepare(n1) = a.lookup("select $1", &[]) else { panic!() };
        a.prepared("select $1", &n1, true);
        assert_eq!(a.lookup("select $1", &[]), Use::Cached(n1.clone(), None));
        assert!(matches!(a.lookup("select $1", &[23]), Use::Prepare(_)), "types are part of the key");
        let n2: Box<str> = a.lookup("select $1", &[23]).name().into();
        a.prepared("select $1", &n2, true);
        // Full: a third statement evicts the least recently used (select $1 with no types).
        let _ = a.lookup("select $1", &[23]);
        let Use::Prepare(n3) = a.lookup("select 2", &[]) else { panic!() };
        assert_eq!(a.take_closes(), vec![n1.clone()]);
        a.prepared("select 2", &n3, true);
        assert_eq!(a.len(), 2);

        let Use::Prepare(m) = b.lookup("select 2", &[]) else { panic!() };
        b.prepared("select 2", &m, true);
        assert!(a.heal("select 2", &n3, false));
        // b drops its statement before its next use of it, and closes it.
        let Use::Prepare(m2) = b.lookup("select 2", &[]) else { panic!() };
        assert_ne!(m, m2);
        assert_eq!(b.take_closes(), vec![m]);
        assert_eq!(a.take_closes(), vec![n3], "a 0A000 statement still exists: closed");
    }

    #[test]
    fn a_failed_parse_is_not_cached_and_two_losses_turn_the_pool_off() {
        let shared = Arc::new(CacheShared::default());
        let mut a = StatementCache::new(8, shared.clone());
        let n: Box<str> = a.lookup("bad", &[]).name().into();
        a.prepared("bad", &n, false);
        assert_eq!(a.len(), 0);
        let n: Box<str> = a.lookup("s", &[]).name().into();
        a.prepared("s", &n, true);
        assert!(a.heal("s", &n, true));
        assert!(a.enabled());
        let n: Box<str> = a.lookup("s", &[]).name().into();
        a.prepared("s", &n, true);
        assert!(!a.heal("s", &n, true));
        assert!(!a.enabled() && shared.is_disabled());
    }

    #[test]
    fn typed_formats_are_learned_once_per_prepared_statement() {
        let col = |type_oid| Column { type_oid, ..Column::default() };
        let mut a = StatementCache::new(4, Arc::new(CacheShared::default()));
        let n: Arc<str> = a.lookup("q", &[]).name().into();
        a.prepared("q", &n, true);
        assert_eq!(a.lookup("q", &[]), Use::Cached(n.clone(), None), "not known before a reply");
        a.learn("q", &n, &[col(20), col(25), col(1184)]);
        let formats: Arc<[i16]> = Arc::from([1, 0, 1]);
        assert_eq!(a.lookup("q", &[]), Use::Cached(n.clone(), Some(formats.clone())));
        a.learn("q", &n, &[col(25)]);
        assert_eq!(a.lookup("q", &[]).typed(), Some(&formats), "fixed for the statement's life");
        let t: Box<str> = a.lookup("t", &[]).name().into();
        a.prepared("t", &t, true);
        a.learn("t", &t, &[col(25), col(1700)]);
        assert_eq!(a.lookup("t", &[]).typed().map(|f| f.len()), Some(0), "all text: nothing to bind");
    }

    #[test]
    fn classification() {
        assert_eq!(invalidated(Some("26000"), None, ""), Some(true));
        assert_eq!(invalidated(Some("0A000"), Some("RevalidateCachedQuery"), "x"), Some(false));
        assert_eq!(invalidated(Some("0A000"), None, "cached plan must not change result type"), Some(false));
        assert_eq!(invalidated(Some("0A000"), Some("other"), "unsupported"), None);
        assert_eq!(invalidated(Some("23505"), None, ""), None);
        assert_eq!(
            invalidated(Some("42704"), Some("lookup_type_cache"), "type with OID 1 does not exist"),
            Some(false)
        );
        assert_eq!(invalidated(Some("42704"), Some("typenameType"), "type \"x\" does not exist"), None);
    }
}
