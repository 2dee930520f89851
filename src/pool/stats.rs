//! Statistics that can grow: `PoolStatsV2` (`pgsess_stats_v2` in C), which a caller compiled
//! against an older, shorter version of the struct can still ask for, and the same figures in
//! Prometheus' text exposition format.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::{Pool, WAIT_BUCKETS_MS};

/// Buckets of the checkout wait histogram: one per bound of `WAIT_BUCKETS_MS`, then one for
/// longer waits.
pub const WAIT_BUCKETS: usize = 9;
const _: () = assert!(WAIT_BUCKETS == WAIT_BUCKETS_MS.len() + 1);

/// A snapshot of a pool's state and counters, version 2 (`pgsess_stats_v2` in C, filled by
/// `pgsess_pool_stats_v2`). Fields are only ever added at the end: a caller passes the size of
/// the struct it was compiled with, and gets the fields that fit in it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatsV2 {
    /// Set by the library: how many bytes of the struct it filled (the size the caller passed,
    /// or this version's whole size if the caller's is larger). A field at or past this offset
    /// was not filled.
    pub size: usize,
    /// `pool_max_size` now (`pgsess_pool_resize` changes it).
    pub max_size: u32,
    /// Connections open now (idle + in use).
    pub open: u32,
    /// Connections open and not checked out.
    pub idle: u32,
    /// Connections checked out (held by statements, results, streams, transactions, pinned
    /// sessions or COPY handles).
    pub in_use: u32,
    /// Callers waiting for a connection now.
    pub waiting: u32,
    /// `pool_min_idle`.
    pub min_idle: u32,
    /// Results handles (and stream chunks) not yet freed.
    pub results_outstanding: u64,
    /// Transactions begun and not yet ended.
    pub transactions_open: u64,
    /// Pinned sessions holding a connection now.
    pub pinned_sessions: u64,
    /// COPY handles holding a connection now.
    pub copies_open: u64,
    /// Successful checkouts since the pool was created.
    pub checkouts: u64,
    /// Checkouts that gave up after the checkout timeout (or during a drain).
    pub checkout_timeouts: u64,
    /// Checkouts that failed at once because connecting had been failing for longer than the
    /// checkout timeout.
    pub checkouts_failed_fast: u64,
    /// Connections opened.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Connections closed because the server had closed them or they broke.
    pub closed_dead: u64,
    /// Connections closed after idling past `pool_idle_ttl`.
    pub closed_idle_ttl: u64,
    /// Connections closed after `pool_max_lifetime`.
    pub closed_lifetime: u64,
    /// Connections closed because they failed the health check's round trip.
    pub closed_health: u64,
    /// Connections closed by `pgsess_pool_drain`.
    pub closed_drained: u64,
    /// Microseconds spent in all checkouts (successful or not) since the pool was created.
    pub wait_total_us: u64,
    /// Checkouts counted in `wait_total_us` and `wait_buckets`.
    pub wait_count: u64,
    /// Checkouts by how long they waited: at most 1, 5, 10, 50, 100, 500, 1000, 5000 ms, and
    /// longer (not cumulative: each checkout is counted in one bucket).
    pub wait_buckets: [u64; 9], // WAIT_BUCKETS, spelled out for the header
}

impl Pool {
    /// The pool's statistics, version 2.
    pub fn stats_v2(&self) -> PoolStatsV2 {
        let v1 = self.stats();
        let c = &self.shared.counters;
        let mut buckets = [0u64; WAIT_BUCKETS];
        for (out, counter) in buckets.iter_mut().zip(&c.wait_buckets) {
            *out = counter.get();
        }
        PoolStatsV2 {
            size: std::mem::size_of::<PoolStatsV2>(),
            max_size: v1.max_size,
            open: v1.open,
            idle: v1.idle,
            in_use: v1.in_use,
            waiting: v1.waiting,
            min_idle: self.settings.min_idle.min(self.shared.max_size.load(Ordering::Relaxed)),
            results_outstanding: v1.results_outstanding,
            transactions_open: v1.transactions_open,
            pinned_sessions: c.pinned_sessions.get(),
            copies_open: c.copies_open.get(),
            checkouts: v1.checkouts,
            checkout_timeouts: v1.checkout_timeouts,
            checkouts_failed_fast: c.fail_fast.get(),
            connects: v1.connects,
            connect_failures: v1.connect_failures,
            closed_dead: v1.discarded_dead,
            closed_idle_ttl: v1.discarded_expired,
            closed_lifetime: c.closed_lifetime.get(),
            closed_health: c.closed_health.get(),
            closed_drained: c.closed_drained.get(),
            wait_total_us: c.wait_total_us.get(),
            wait_count: buckets.iter().sum(),
            wait_buckets: buckets,
        }
    }

    /// The pool's statistics in Prometheus' text exposition format (version 0.0.4), every
    /// sample labelled `pool="<pool id>"`.
    pub fn stats_text(&self) -> String {
        let s = self.stats_v2();
        let pool = &self.id; // hex: nothing to escape
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP pgsess_pool_{name} {help}\n# TYPE pgsess_pool_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "pgsess_pool_{name}{{pool=\"{pool}\"{labels}}} {value}");
            }
        };
        let gauge = |v: u32| u64::from(v);
        metric("max_size", "gauge", "pool_max_size now.", &[("", gauge(s.max_size))]);
        metric("min_idle", "gauge", "pool_min_idle.", &[("", gauge(s.min_idle))]);
        metric(
            "connections",
            "gauge",
            "Connections open now, by state.",
            &[(",state=\"idle\"", gauge(s.idle)), (",state=\"in_use\"", gauge(s.in_use))],
        );
        metric("waiting", "gauge", "Callers waiting for a connection now.", &[("", gauge(s.waiting))]);
        metric("results_outstanding", "gauge", "Results handles not yet freed.", &[("", s.results_outstanding)]);
        metric("transactions_open", "gauge", "Transactions begun and not yet ended.", &[("", s.transactions_open)]);
        metric("pinned_sessions", "gauge", "Pinned sessions holding a connection.", &[("", s.pinned_sessions)]);
        metric("copies_open", "gauge", "COPY handles holding a connection.", &[("", s.copies_open)]);
        metric("checkouts_total", "counter", "Successful checkouts.", &[("", s.checkouts)]);
        metric(
            "checkout_failures_total",
            "counter",
            "Checkouts that failed, by reason.",
            &[(",reason=\"timeout\"", s.checkout_timeouts), (",reason=\"server_down\"", s.checkouts_failed_fast)],
        );
        metric("connects_total", "counter", "Connections opened.", &[("", s.connects)]);
        metric("connect_failures_total", "counter", "Connection attempts that failed.", &[("", s.connect_failures)]);
        metric(
            "closed_total",
            "counter",
            "Connections closed by the pool, by reason.",
            &[
                (",reason=\"dead\"", s.closed_dead),
                (",reason=\"idle_ttl\"", s.closed_idle_ttl),
                (",reason=\"lifetime\"", s.closed_lifetime),
                (",reason=\"health_check\"", s.closed_health),
                (",reason=\"drain\"", s.closed_drained),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP pgsess_pool_checkout_wait_seconds Time spent in checkouts.\n\
             # TYPE pgsess_pool_checkout_wait_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, n) in s.wait_buckets.iter().enumerate() {
            cumulative += n;
            let le = match WAIT_BUCKETS_MS.get(i) {
                Some(ms) => format!("{}", *ms as f64 / 1000.0),
                None => "+Inf".to_string(),
            };
            let _ =
                writeln!(out, "pgsess_pool_checkout_wait_seconds_bucket{{pool=\"{pool}\",le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "pgsess_pool_checkout_wait_seconds_sum{{pool=\"{pool}\"}} {}",
            s.wait_total_us as f64 / 1_000_000.0
        );
        let _ = writeln!(out, "pgsess_pool_checkout_wait_seconds_count{{pool=\"{pool}\"}} {}", s.wait_count);
        out
    }
}
