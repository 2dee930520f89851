//! A primary and a streaming standby (made with `pg_basebackup -R`) behind one multi-host URI:
//! `target_session_attrs` picks the server as libpq does (any, read-write, read-only, primary,
//! standby, prefer-standby, and `load_balance_hosts=random`), and after the primary stops and the
//! standby is promoted, writes succeed again within seconds on the same session, with no
//! application restart.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use pgsess::{Code, Session, SessionOptions};
use support::Cluster;

const PRIMARY_SETTINGS: &[&str] = &["wal_level=replica", "max_wal_senders=5", "hot_standby=on"];

/// A primary with table `t`, and its hot standby (already replaying).
fn pair() -> (Cluster, Cluster) {
    let primary = Cluster::start_with(PRIMARY_SETTINGS);
    primary.allow_replication();
    primary.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v int NOT NULL)");
    let standby = primary.make_standby();
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    // pg_ctl -w returns once the standby accepts connections; its WAL receiver may need a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    while primary.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") != "1" {
        assert!(Instant::now() < deadline, "the standby is not streaming after 20 s:\n{}", standby.server_log());
        thread::sleep(Duration::from_millis(50));
    }
    (primary, standby)
}

/// `postgresql://pgsess:...@127.0.0.1:<first>,127.0.0.1:<second>/pgsess?<query>`
fn uri(first: &Cluster, second: &Cluster, query: &str) -> String {
    format!(
        "postgresql://pgsess:{}@127.0.0.1:{},127.0.0.1:{}/pgsess?connect_timeout=5&{query}",
        Cluster::password(),
        first.port(),
        second.port()
    )
}

fn open(url: &str, max: u32, checkout_ms: u32) -> Session {
    let mut o = SessionOptions { db_url: Some(url.to_owned()), ..Default::default() };
    o.set_pool_max_size(max).unwrap();
    o.set_checkout_timeout_ms(checkout_ms).unwrap();
    o.set_statement_timeout_ms(5_000);
    Session::open("x", &o).unwrap_or_else(|e| panic!("open {}: {e}", url.split('@').nth(1).unwrap_or("")))
}

/// The port of the server that runs a statement of `s`.
fn server_port(s: &Session) -> u16 {
    let r = s.query("SELECT current_setting('port')", &[]).unwrap();
    std::str::from_utf8(r.set.value(0, 0).unwrap()).unwrap().parse().unwrap()
}

fn insert(s: &Session, v: i64) -> Result<i64, pgsess::Error> {
    let v = v.to_string();
    let r = s.query("INSERT INTO t (v) VALUES ($1) RETURNING id", &[Some(v.as_bytes())])?;
    Ok(std::str::from_utf8(r.set.value(0, 0).unwrap()).unwrap().parse().unwrap())
}

#[test]
fn target_session_attrs_choose_the_server() {
    let (p, s) = pair();
    let (pp, sp) = (p.port(), s.port());

    // read-write skips the standby listed first.
    let rw = open(&uri(&s, &p, "target_session_attrs=read-write"), 2, 10_000);
    assert_eq!(server_port(&rw), pp, "read-write");
    insert(&rw, 1).expect("a write through target_session_attrs=read-write");
    // primary: the same choice.
    let prim = open(&uri(&s, &p, "target_session_attrs=primary"), 2, 10_000);
    assert_eq!(server_port(&prim), pp, "primary");
    // any: the first host that answers, even a standby.
    let any = open(&uri(&s, &p, "target_session_attrs=any"), 2, 10_000);
    assert_eq!(server_port(&any), sp, "any");
    // read-only, standby and prefer-standby skip the primary listed first.
    let ro = open(&uri(&p, &s, "target_session_attrs=read-only"), 2, 10_000);
    assert_eq!(server_port(&ro), sp, "read-only");
    let e = insert(&ro, 2).expect_err("a write on the standby");
    assert_eq!(e.sqlstate(), Some("25006"), "{e:?}");
    assert_eq!(server_port(&ro), sp, "read-only after a refused write");
    let sb = open(&uri(&p, &s, "target_session_attrs=standby"), 2, 3_000);
    assert_eq!(server_port(&sb), sp, "standby");
    let pref = open(&uri(&p, &s, "target_session_attrs=prefer-standby"), 2, 10_000);
    assert_eq!(server_port(&pref), sp, "prefer-standby");

    // load_balance_hosts=random spreads fresh connections over both servers.
    let n = 40;
    let lb = open(&uri(&s, &p, "target_session_attrs=any&load_balance_hosts=random"), n, 10_000);
    let held: Vec<_> = (0..n).map(|_| lb.query("SELECT current_setting('port')", &[]).unwrap()).collect();
    let mut spread: HashMap<u16, usize> = HashMap::new();
    for r in &held {
        *spread.entry(std::str::from_utf8(r.set.value(0, 0).unwrap()).unwrap().parse().unwrap()).or_default() += 1;
    }
    let (on_p, on_s) = (spread.get(&pp).copied().unwrap_or(0), spread.get(&sp).copied().unwrap_or(0));
    eprintln!("load_balance_hosts=random: {n} connections, {on_p} on the primary, {on_s} on the standby");
    assert_eq!(on_p + on_s, n as usize, "{spread:?}");
    assert!(on_p > 0 && on_s > 0, "load_balance_hosts=random put every connection on one server: {spread:?}");
    drop(held);
    assert_eq!(lb.pool_stats().in_use, 0);

    // With the standby down, prefer-standby falls back to the primary, both on the pool that had
    // standby connections and on a new one; standby and read-only have nowhere to go.
    s.stop();
    assert_eq!(server_port(&pref), pp, "prefer-standby, standby down (existing pool)");
    let pref2 = open(&uri(&p, &s, "target_session_attrs=prefer-standby&application_name=fallback"), 2, 10_000);
    assert_eq!(server_port(&pref2), pp, "prefer-standby, standby down (new pool)");
    let sb_short = open_err(&uri(&p, &s, "target_session_attrs=standby&application_name=nowhere"));
    assert_eq!(sb_short.category(), Code::PGSESS_OPERATIONAL_ERROR, "{sb_short:?}");
    let e = sb.query("SELECT 1", &[]).map(drop).expect_err("standby only, standby down");
    assert_eq!(e.category(), Code::PGSESS_OPERATIONAL_ERROR, "{e:?}");
    // The primary-bound sessions did not notice.
    insert(&rw, 3).unwrap();
    assert_eq!(server_port(&prim), pp);
    for sess in [&rw, &prim, &any, &ro, &sb, &pref, &pref2, &lb] {
        let st = sess.pool_stats();
        assert_eq!((st.in_use, st.results_outstanding, st.waiting), (0, 0, 0), "{st:?}");
    }
}

fn open_err(url: &str) -> pgsess::Error {
    let mut o = SessionOptions { db_url: Some(url.to_owned()), ..Default::default() };
    o.set_checkout_timeout_ms(3_000).unwrap();
    match Session::open("x", &o) {
        Ok(s) => panic!("expected no server to match, got a session on port {}", server_port(&s)),
        Err(e) => e,
    }
}

/// One writer's statement: when it started (since the test's start), how long it took, and its
/// outcome.
struct Call {
    started: Duration,
    took: Duration,
    outcome: Result<i64, pgsess::Error>,
}

#[test]
fn failover_to_a_promoted_standby() {
    const CHECKOUT_MS: u32 = 10_000;
    const WRITERS: usize = 2;
    let (p, s) = pair();
    let session = open(&uri(&p, &s, "target_session_attrs=read-write"), 4, CHECKOUT_MS);
    assert_eq!(server_port(&session), p.port());

    let epoch = Instant::now();
    let stop = AtomicBool::new(false);
    let calls: Mutex<Vec<Call>> = Mutex::new(Vec::new());
    let (stopping, stopped, promoted, recovered) = thread::scope(|scope| {
        for w in 0..WRITERS {
            let (session, stop, calls) = (session.clone(), &stop, &calls);
            scope.spawn(move || {
                let mut v = w as i64 * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    let started = epoch.elapsed();
                    let outcome = insert(&session, v);
                    calls.lock().unwrap().push(Call { started, took: epoch.elapsed() - started, outcome });
                    v += 1;
                    thread::sleep(Duration::from_millis(2));
                }
            });
        }
        thread::sleep(Duration::from_secs(1));
        let stopping = epoch.elapsed();
        p.stop(); // pg_ctl stop -m fast
        let stopped = epoch.elapsed();
        s.promote_standby();
        let promoted = epoch.elapsed();
        // Writes succeed again: the first success of a statement begun after the primary was down.
        let deadline = Instant::now() + Duration::from_secs(20);
        let recovered = loop {
            let first = calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.started >= stopped && c.outcome.is_ok())
                .map(|c| c.started + c.took)
                .min();
            if let Some(t) = first {
                break Some(t);
            }
            if Instant::now() > deadline {
                break None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        (stopping, stopped, promoted, recovered)
    });

    let calls = calls.into_inner().unwrap();
    let failed: Vec<&Call> = calls.iter().filter(|c| c.outcome.is_err()).collect();
    let longest = calls.iter().map(|c| c.took).max().unwrap();
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for c in &failed {
        let e = c.outcome.as_ref().unwrap_err();
        *kinds.entry(format!("{:?}/{}", e.code, e.sqlstate().unwrap_or("-"))).or_default() += 1;
    }
    eprintln!(
        "failover: {} statements, {} failed {kinds:?}; primary stop took {:?}, promote {:?}; \
         writes back {:?} after the stop began ({:?} after the promotion); longest call {longest:?}",
        calls.len(),
        failed.len(),
        stopped - stopping,
        promoted - stopped,
        recovered.map(|r| r - stopping),
        recovered.map(|r| r.saturating_sub(promoted)),
    );
    for c in failed.iter().take(3) {
        eprintln!("  failed at {:?} after {:?}: {}", c.started, c.took, c.outcome.as_ref().unwrap_err());
    }
    let recovered = recovered.unwrap_or_else(|| panic!("no write succeeded within 20 s of the primary stopping"));
    assert!(
        recovered - stopping < Duration::from_secs(15),
        "writes came back {:?} after the stop",
        recovered - stopping
    );
    // Every failure is operational (connection lost / no writable server), and none happened
    // before the primary began stopping or after the first write came back.
    for c in &failed {
        let e = c.outcome.as_ref().unwrap_err();
        assert_eq!(e.category(), Code::PGSESS_OPERATIONAL_ERROR, "{e:?}");
        assert!(c.started + c.took >= stopping, "a write failed before the primary stopped: {e}");
        assert!(c.started < recovered, "a write begun after recovery failed at {:?}: {e}", c.started);
    }
    // No call waited beyond its bound: checkout timeout (10 s) plus a little.
    assert!(longest < Duration::from_millis(u64::from(CHECKOUT_MS) + 2_000), "a call took {longest:?}");
    // The writes after recovery went to the promoted standby; nothing acknowledged was lost.
    assert_eq!(server_port(&session), s.port());
    let acked: Vec<i64> = calls.iter().filter_map(|c| c.outcome.as_ref().ok().copied()).collect();
    let present: std::collections::HashSet<i64> =
        s.psql("SELECT id FROM t").lines().map(|l| l.parse().unwrap()).collect();
    let lost: Vec<&i64> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(lost.is_empty(), "{} acknowledged rows are missing on the promoted standby: {lost:?}", lost.len());
    let st = session.pool_stats();
    eprintln!("failover pool stats: {st:?}");
    assert_eq!((st.in_use, st.results_outstanding, st.transactions_open, st.waiting), (0, 0, 0, 0), "{st:?}");
    assert!(st.open <= st.max_size, "{st:?}");
}
