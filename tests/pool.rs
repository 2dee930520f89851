//! The pool as operators run it, against real servers: it grows only as demand needs, fails
//! fast while the server is known to be down (and rides out a short restart), recycles
//! connections by lifetime, keeps `pool_min_idle` open, checks long-idle connections, drains and
//! resizes, and reports statistics that can grow.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pgsess::{Code, Session, SessionOptions};
use support::Cluster;

fn opts(uri: &str, app: &str) -> SessionOptions {
    let sep = if uri.contains('?') { '&' } else { '?' };
    SessionOptions { db_url: Some(format!("{uri}{sep}application_name={app}")), ..SessionOptions::default() }
}

/// Connections the server has for `application_name` (a unique one per test isolates them).
fn backends(c: &Cluster, app: &str) -> i64 {
    c.psql(&format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'")).parse().unwrap()
}

fn one(s: &Session) -> Result<String, pgsess::Error> {
    s.query("SELECT 42", &[]).map(|r| String::from_utf8(r.set.value(0, 0).unwrap().to_vec()).unwrap())
}

/// `threads` threads each run `rounds` statements on `s` at once (released together); the most
/// connections the pool had open at any moment, as the pool's statistics saw it.
fn burst(s: &Session, threads: usize, rounds: usize, sql: &'static str) -> u32 {
    let start = Arc::new(Barrier::new(threads + 1));
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU32::new(0));
    let watcher = {
        let (s, done, peak) = (s.clone(), done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(s.pool_stats().open, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (s, start) = (s.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..rounds {
                    s.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
            })
        })
        .collect();
    start.wait();
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    peak.fetch_max(s.pool_stats().open, Ordering::Relaxed);
    peak.load(Ordering::Relaxed)
}

#[test]
fn a_burst_of_eight_callers_opens_at_most_eight_connections() {
    let c = support::shared();
    let app = "pool_grow8";
    let s = Session::open("x", &opts(&c.uri(), app)).unwrap();
    assert_eq!(s.pool_stats().max_size, 25, "the default pool");
    for round in 0..5 {
        let peak = burst(&s, 8, 200, "SELECT 1");
        let stats = s.pool_stats();
        assert!(peak <= 8, "round {round}: {peak} connections open at once for 8 callers: {stats:?}");
        assert!(stats.connects <= 8, "round {round}: {stats:?}");
        assert!(backends(c, app) <= 8, "round {round}: the server has {} connections", backends(c, app));
    }
    // With statements that take time, each of the 8 callers ends up holding one connection.
    let peak = burst(&s, 8, 20, "SELECT pg_sleep(0.005)");
    assert!(peak <= 8, "{peak}: {:?}", s.pool_stats());
    assert!(s.pool_stats().connects <= 8, "{:?}", s.pool_stats());
}

#[test]
fn a_burst_of_sixty_four_callers_opens_exactly_the_pool_size() {
    let c = support::shared();
    let app = "pool_grow64";
    let s = Session::open("x", &opts(&c.uri(), app)).unwrap();
    let peak = burst(&s, 64, 20, "SELECT pg_sleep(0.01)");
    let stats = s.pool_stats();
    assert_eq!(peak, 25, "{stats:?}");
    assert_eq!(stats.connects, 25, "a connection opened for a waiter that then took another: {stats:?}");
    assert_eq!(backends(c, app), 25);
    assert_eq!((stats.open, stats.in_use, stats.waiting), (25, 0, 0), "{stats:?}");
}

fn small(uri: &str, app: &str, max: u32, timeout_ms: u32) -> SessionOptions {
    let mut o = opts(uri, app);
    o.set_pool_max_size(max).unwrap();
    o.set_checkout_timeout_ms(timeout_ms).unwrap();
    o
}

fn pid(s: &Session) -> i32 {
    s.query("SELECT 1", &[]).unwrap().set.backend_pid
}

/// Wait up to `limit` for `ok`, checking every 20 ms.
fn eventually(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ok()
}

#[test]
fn a_server_down_longer_than_the_checkout_timeout_fails_calls_at_once_until_it_is_back() {
    let c = Cluster::start();
    let s = Session::open("x", &small(&c.uri(), "pool_down", 4, 1000)).unwrap();
    assert_eq!(one(&s).unwrap(), "42");
    c.stop();
    // At first the pool waits for the server, as through a restart.
    let t = Instant::now();
    let first = one(&s).unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(900), "{:?}: {first}", t.elapsed());
    // Once connecting has failed for longer than the checkout timeout, calls fail at once with
    // the last connect error.
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..20 {
        let t = Instant::now();
        let e = one(&s).unwrap_err();
        let took = t.elapsed();
        assert!(took < Duration::from_millis(50), "call {i} took {took:?}: {e}");
        assert_eq!(e.code, Code::PGSESS_OPERATIONAL_ERROR, "{e}");
        assert!(e.message.contains("failing at once") && e.message.contains("last attempt failed"), "{e}");
        assert!(!e.message.contains(Cluster::password()), "{e}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = s.pool_stats_v2();
    assert!(stats.checkouts_failed_fast >= 20, "{stats:?}");
    // The first call once the server is back succeeds.
    c.start_again();
    let t = Instant::now();
    assert_eq!(one(&s).unwrap_or_else(|e| panic!("first call after the server is back: {e}")), "42");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let t = Instant::now();
    for _ in 0..10 {
        assert_eq!(one(&s).unwrap(), "42");
    }
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn the_pool_keeps_trying_in_the_background_while_the_server_is_down() {
    let c = Cluster::start();
    let s = Session::open("x", &small(&c.uri(), "pool_bg", 4, 500)).unwrap();
    // Every connection the pool may open is idle when the server goes (and then closed).
    let held: Vec<_> = (0..4).map(|_| s.query("SELECT 1", &[]).unwrap()).collect();
    drop(held);
    c.stop();
    assert!(one(&s).is_err());
    let failures = s.pool_stats_v2().connect_failures;
    std::thread::sleep(Duration::from_millis(1500));
    assert!(s.pool_stats_v2().connect_failures > failures, "no attempt without callers: {:?}", s.pool_stats_v2());
    c.start_again();
    // Without any call, the pool finds the server back and has a connection ready.
    assert!(eventually(Duration::from_secs(5), || s.pool_stats_v2().idle >= 1), "{:?}", s.pool_stats_v2());
    let t = Instant::now();
    assert_eq!(one(&s).unwrap(), "42");
    assert!(t.elapsed() < Duration::from_millis(200), "{:?}", t.elapsed());
}

#[test]
fn a_stop_shorter_than_the_checkout_timeout_is_ridden_out() {
    let c = Cluster::start();
    let s = Session::open("x", &small(&c.uri(), "pool_short", 4, 8000)).unwrap();
    assert_eq!(one(&s).unwrap(), "42");
    c.stop();
    let down = Instant::now();
    // Calls made while the server is down wait for it and succeed.
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || one(&s))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    c.start_again();
    assert!(down.elapsed() < Duration::from_secs(8), "the stop took {:?}", down.elapsed());
    for caller in callers {
        assert_eq!(caller.join().unwrap().unwrap_or_else(|e| panic!("a call during a short stop: {e}")), "42");
    }
    assert_eq!(s.pool_stats_v2().checkouts_failed_fast, 0);
}

#[test]
fn connections_past_their_lifetime_are_replaced_under_load_without_a_failed_statement() {
    let c = support::shared();
    let app = "pool_lifetime";
    let mut o = small(&c.uri(), app, 4, 5000);
    o.set_pool_max_lifetime(1);
    let s = Session::open("x", &o).unwrap();
    let pids = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let until = Instant::now() + Duration::from_millis(3500);
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (s, pids) = (s.clone(), pids.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while Instant::now() < until {
                    let r = s.query("SELECT pg_sleep(0.002)", &[]).unwrap_or_else(|e| panic!("statement {n}: {e}"));
                    pids.lock().unwrap().insert(r.set.backend_pid);
                    n += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let stats = s.pool_stats_v2();
    assert!(stats.closed_lifetime >= 8, "{stats:?}");
    assert!(pids.lock().unwrap().len() >= 12, "{} backends", pids.lock().unwrap().len());
    assert!(stats.open <= 4 && backends(c, app) <= 4, "{stats:?}");
    assert_eq!(stats.closed_dead, 0, "{stats:?}");
}

#[test]
fn min_idle_connections_are_opened_at_open_and_restored_after_pg_terminate_backend() {
    let c = support::shared();
    let app = "pool_min_idle";
    let mut o = small(&c.uri(), app, 6, 5000);
    o.set_pool_min_idle(3).unwrap();
    let s = Session::open("x", &o).unwrap();
    let stats = s.pool_stats_v2();
    assert_eq!((stats.open, stats.idle, stats.min_idle), (3, 3, 3), "warm at open: {stats:?}");
    assert_eq!(backends(c, app), 3);
    let mut ctl = c.control();
    let before: Vec<i32> = ctl
        .query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for p in &before {
        let terminated: bool = ctl.query_one("SELECT pg_terminate_backend($1)", &[p]).unwrap().get(0);
        assert!(terminated);
    }
    // Without any call, the pool notices and opens three new ones.
    let restored = eventually(Duration::from_secs(5), || {
        let now: Vec<i32> = ctl
            .query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", &[&app])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        // (A backend shows before the pool has finished opening it: wait for both.)
        now.len() == 3 && now.iter().all(|p| !before.contains(p)) && s.pool_stats_v2().idle == 3
    });
    assert!(restored, "{:?}", s.pool_stats_v2());
    assert!(!before.contains(&pid(&s)));
}

#[test]
fn a_connection_idle_past_the_health_threshold_is_checked_with_a_round_trip() {
    let c = Cluster::start();
    let mut o = small(&c.uri(), "pool_health", 2, 5000);
    o.set_pool_health_check_ms(200);
    let s = Session::open("x", &o).unwrap();
    let stopped = pid(&s);
    // The backend stops answering without closing its socket, as after a silent network drop.
    // SAFETY: kill() with a pid of our own test server's backend.
    assert_eq!(unsafe { libc::kill(stopped, libc::SIGSTOP) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let r = s.query("SELECT 1", &[]);
    // SAFETY: as above.
    unsafe { libc::kill(stopped, libc::SIGCONT) };
    let r = r.unwrap_or_else(|e| panic!("the call after a failed health check: {e}"));
    assert_ne!(r.set.backend_pid, stopped);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    drop(r);
    assert_eq!(s.pool_stats_v2().closed_health, 1, "{:?}", s.pool_stats_v2());
    // A connection used within the threshold gets no round trip.
    for _ in 0..5 {
        pid(&s);
    }
    assert_eq!(s.pool_stats_v2().closed_health, 1);
}

#[test]
fn drain_waits_for_statements_in_flight_then_closes_every_connection() {
    let c = support::shared();
    let app = "pool_drain";
    let s = Session::open("x", &small(&c.uri(), app, 4, 5000)).unwrap();
    let before: Vec<i32> = {
        let held: Vec<_> = (0..4).map(|_| s.query("SELECT 1", &[]).unwrap()).collect();
        held.iter().map(|r| r.set.backend_pid).collect()
    };
    let running: Vec<_> = (0..3)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || s.query("SELECT pg_sleep(0.5)", &[]).map(drop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    let t = Instant::now();
    // A call made during the drain waits for it, then gets a new connection.
    let during = {
        let s = s.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            pid(&s)
        })
    };
    s.pool_drain(Duration::from_secs(5)).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(250), "did not wait for the statements: {:?}", t.elapsed());
    for r in running {
        r.join().unwrap().unwrap_or_else(|e| panic!("a statement in flight during the drain: {e}"));
    }
    let stats = s.pool_stats_v2();
    assert_eq!(stats.closed_drained, 4, "{stats:?}");
    assert!(!before.contains(&during.join().unwrap()));
    assert!(eventually(Duration::from_secs(2), || backends(c, app) <= 1), "{} left", backends(c, app));
    assert!(!before.contains(&pid(&s)), "the pool is usable again, on new connections");
}

#[test]
fn a_drain_that_times_out_says_what_holds_connections_which_close_when_they_come_back() {
    let c = support::shared();
    let app = "pool_drain_timeout";
    let s = Session::open("x", &small(&c.uri(), app, 4, 5000)).unwrap();
    let held = s.query("SELECT 1", &[]).unwrap();
    let t = Instant::now();
    let e = s.pool_drain(Duration::from_millis(200)).unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(200) && t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(e.code, Code::PGSESS_POOL_EXHAUSTED);
    assert!(e.message.contains("1 connections still in use") && e.message.contains("1 results"), "{e}");
    let old = held.set.backend_pid;
    drop(held);
    assert_eq!(s.pool_stats_v2().open, 0, "{:?}", s.pool_stats_v2());
    assert_ne!(pid(&s), old);
}

#[test]
fn resize_grows_at_once_and_shrinks_as_connections_come_back() {
    let c = support::shared();
    let app = "pool_resize";
    let s = Session::open("x", &small(&c.uri(), app, 2, 300)).unwrap();
    let mut held: Vec<_> = (0..2).map(|_| s.query("SELECT 1", &[]).unwrap()).collect();
    assert_eq!(s.query("SELECT 1", &[]).unwrap_err().code, Code::PGSESS_POOL_EXHAUSTED);
    s.pool_resize(4).unwrap();
    held.extend((0..2).map(|_| s.query("SELECT 1", &[]).unwrap()));
    assert_eq!(s.pool_stats_v2().max_size, 4);
    s.pool_resize(1).unwrap();
    assert_eq!(s.pool_stats_v2().max_size, 1);
    assert_eq!(s.query("SELECT 1", &[]).unwrap_err().code, Code::PGSESS_POOL_EXHAUSTED);
    held.clear();
    let stats = s.pool_stats_v2();
    assert!(stats.open <= 1, "{stats:?}");
    let _one = s.query("SELECT 1", &[]).unwrap();
    assert_eq!(s.query("SELECT 1", &[]).unwrap_err().code, Code::PGSESS_POOL_EXHAUSTED);
    assert_eq!(s.pool_resize(0).unwrap_err().code, Code::PGSESS_CONFIG_ERROR);
}

#[test]
fn statistics_v2_count_waits_and_read_as_prometheus_text() {
    let c = support::shared();
    let s = Session::open("x", &small(&c.uri(), "pool_text", 2, 5000)).unwrap();
    burst(&s, 4, 10, "SELECT pg_sleep(0.002)");
    let st = s.pool_stats_v2();
    assert_eq!(st.size, std::mem::size_of::<pgsess::pool::PoolStatsV2>());
    assert_eq!(st.wait_count, st.checkouts + st.checkout_timeouts + st.checkouts_failed_fast, "{st:?}");
    assert_eq!(st.wait_buckets.iter().sum::<u64>(), st.wait_count);
    assert!(st.wait_total_us > 0);
    let text = s.pool_stats_text();
    let id = s.pool_id();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert!(text.contains(&format!("pgsess_pool_max_size{{pool=\"{id}\"}} 2")), "{text}");
    assert!(text.contains("# TYPE pgsess_pool_checkout_wait_seconds histogram"), "{text}");
    let count: u64 = line("pgsess_pool_checkout_wait_seconds_count").parse().unwrap();
    let inf: u64 =
        line(&format!("pgsess_pool_checkout_wait_seconds_bucket{{pool=\"{id}\",le=\"+Inf\"}}")).parse().unwrap();
    assert!(count >= st.wait_count && inf == count, "{text}");
    // Every sample line is `name{labels} value` with the pool's label.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(l.starts_with("pgsess_pool_") && l.contains(&format!("pool=\"{id}\"")), "{l}");
        l.rsplit(' ').next().unwrap().parse::<f64>().unwrap_or_else(|_| panic!("{l}"));
    }
}

#[test]
fn after_a_password_rotation_a_drain_makes_the_pool_connect_with_the_new_password() {
    use std::os::unix::fs::PermissionsExt;
    let c = support::shared();
    let mut ctl = c.control();
    ctl.batch_execute("DROP ROLE IF EXISTS pool_rotated; CREATE ROLE pool_rotated LOGIN PASSWORD 'hunter2'").unwrap();
    let file = c.dir().join("pool-rotation-pgpass");
    let write = |password: &str| {
        std::fs::write(&file, format!("127.0.0.1:{}:pgsess:pool_rotated:{password}\n", c.port())).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write("hunter2");
    let uri = format!("postgresql://pool_rotated@127.0.0.1:{}/pgsess?passfile={}", c.port(), file.display());
    let s = Session::open("x", &small(&uri, "pool_rotation", 2, 2000)).unwrap();
    let old = pid(&s);
    // The password changes on the server and in the password file; the open connection goes on.
    ctl.batch_execute("ALTER ROLE pool_rotated PASSWORD 'never-shown'").unwrap();
    write("never-shown");
    assert_eq!(pid(&s), old, "the pooled connection stays open");
    s.pool_drain(Duration::from_secs(2)).unwrap();
    let new = s.query("SELECT current_user", &[]).unwrap_or_else(|e| panic!("after the drain: {e}"));
    assert_eq!(new.set.value(0, 0), Some(&b"pool_rotated"[..]));
    assert_ne!(new.set.backend_pid, old, "a new connection, authenticated with the new password");
}
