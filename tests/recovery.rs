//! Dead connections are discarded, never handed out: after a server restart or
//! pg_terminate_backend, statements that were not in flight succeed; statements in flight fail
//! with an operational-category error. Runs on both kinds of pool (shared, and one of its own
//! as forked children make) where the pool's part matters.

mod support;

use std::time::{Duration, Instant};

use pgsess::{Code, Session, SessionOptions};
use support::{Backend, Cluster};

on_both_backends!(
    restart_fast_and_immediate_with_idle_connections,
    terminated_backends_idle_and_busy,
    server_down_then_back,
    a_stopped_backend_fails_the_statement_within_bounds,
    a_server_turning_read_only_is_evicted_for_read_write_sessions,
    restart_under_load_fails_only_statements_in_flight,
);

fn session(c: &Cluster, max: u32) -> Session {
    session_on(Backend::Shared, c, max)
}

fn session_on(b: Backend, c: &Cluster, max: u32) -> Session {
    let mut o = SessionOptions { db_url: Some(format!("{}?application_name=recovery", c.uri())), ..Default::default() };
    o.set_pool_max_size(max).unwrap();
    o.set_checkout_timeout_ms(10_000).unwrap();
    b.open("x", &o).unwrap()
}

/// Check out `n` connections at once so the pool holds `n` idle ones afterwards.
fn warm(s: &Session, n: usize) -> Vec<i32> {
    let held: Vec<_> = (0..n).map(|_| s.query("SELECT 1", &[]).unwrap()).collect();
    held.iter().map(|r| r.set.backend_pid).collect()
}

fn one(s: &Session) -> Result<String, pgsess::Error> {
    s.query("SELECT 42", &[]).map(|r| String::from_utf8(r.set.value(0, 0).unwrap().to_vec()).unwrap())
}

fn restart_fast_and_immediate_with_idle_connections(b: Backend) {
    let c = Cluster::start();
    let s = session_on(b, &c, 4);
    for mode in ["fast", "immediate"] {
        let before = warm(&s, 4);
        c.restart(mode);
        let t = Instant::now();
        assert_eq!(one(&s).unwrap_or_else(|e| panic!("first statement after a {mode} restart: {e}")), "42");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let after = warm(&s, 4);
        assert!(after.iter().all(|p| !before.contains(p)), "{mode}: a dead connection was reused");
        let stats = s.pool_stats();
        assert_eq!((stats.in_use, stats.results_outstanding), (0, 0), "{stats:?}");
    }
    assert!(s.pool_stats().discarded_dead >= 8, "{:?}", s.pool_stats());
}

fn terminated_backends_idle_and_busy(b: Backend) {
    let c = Cluster::start();
    let s = session_on(b, &c, 3);
    let pids = warm(&s, 3);
    // Idle in the pool: terminated, then found dead at checkout: no statement fails.
    let mut ctl = c.control();
    for pid in &pids {
        ctl.execute("SELECT pg_terminate_backend($1)", &[pid]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..6 {
        assert_eq!(one(&s).expect("no statement fails after idle backends are terminated"), "42");
    }

    // Busy: the statement in flight fails with an operational error; the next one succeeds.
    let busy = {
        let s = s.clone();
        std::thread::spawn(move || s.query("SELECT pg_sleep(30)", &[]).err())
    };
    let victim = loop {
        let rows = ctl
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name='recovery' AND query LIKE 'SELECT pg_sleep%'",
                &[],
            )
            .unwrap();
        if let Some(r) = rows.first() {
            break r.get::<_, i32>(0);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    ctl.execute("SELECT pg_terminate_backend($1)", &[&victim]).unwrap();
    let e = busy.join().unwrap().expect("the statement in flight fails");
    assert_eq!(e.category(), Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    assert_eq!(one(&s).unwrap(), "42");
    let stats = s.pool_stats();
    assert_eq!((stats.in_use, stats.results_outstanding), (0, 0), "{stats:?}");
}

fn server_down_then_back(b: Backend) {
    let c = Cluster::start();
    let mut o = SessionOptions { db_url: Some(c.uri()), ..Default::default() };
    o.set_checkout_timeout_ms(700).unwrap();
    o.set_pool_max_size(2).unwrap();
    let s = b.open("x", &o).unwrap();
    warm(&s, 2);
    c.stop();
    let t = Instant::now();
    let e = one(&s).expect_err("no server");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(e.category(), Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    assert_ne!(e.code, Code::PGSESS_POOL_EXHAUSTED, "server down is not exhaustion: {e}");
    assert!(e.message.contains("could not"), "{e}");
    assert!(!e.to_string().contains(Cluster::password()));
    c.start_again();
    let t = Instant::now();
    loop {
        match one(&s) {
            Ok(v) => break assert_eq!(v, "42"),
            Err(e) => assert!(t.elapsed() < Duration::from_secs(10), "no recovery: {e}"),
        }
    }
}

#[test]
fn statement_timeout_and_cancel_report_query_canceled() {
    let c = Cluster::start();
    let mut o = SessionOptions { db_url: Some(c.uri()), ..Default::default() };
    o.set_pool_max_size(2).unwrap();
    o.set_statement_timeout_ms(300);
    let s = Session::open("x", &o).unwrap();
    let t = Instant::now();
    let e = s.query("SELECT pg_sleep(10)", &[]).expect_err("cancelled by the statement timeout");
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert_eq!(e.sqlstate(), Some("57014"));
    assert!(t.elapsed() >= Duration::from_millis(290) && t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(one(&s).unwrap(), "42", "the connection is still good");
    assert_eq!(s.pool_stats().discarded_dead, 0);
    // The same with another connection in use: the statement then waits for its answer in
    // poll(2) rather than read(2) (`ReplyWait`), and the timeout holds there too.
    let held = s.query("SELECT 1", &[]).unwrap();
    let t = Instant::now();
    let e = s.query("SELECT pg_sleep(10)", &[]).expect_err("cancelled by the statement timeout");
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert!(t.elapsed() >= Duration::from_millis(290) && t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    drop(held);
    assert_eq!(one(&s).unwrap(), "42");

    // pgsess_cancel from another thread, on a session without a timeout. Another session on the
    // same pool runs a statement meanwhile: cancel is per session, so that one completes.
    let s = session(&c, 2);
    let bystander = session(&c, 2);
    assert_eq!(s.pool_id(), bystander.pool_id(), "one pool for both sessions");
    let other = std::thread::spawn(move || bystander.query("SELECT pg_sleep(1.5)", &[]).map(|r| r.set.nrows()));
    let runner = {
        let s = s.clone();
        std::thread::spawn(move || s.query("SELECT pg_sleep(10)", &[]).expect_err("cancelled"))
    };
    let t = Instant::now();
    while s.pool_stats().in_use < 2 {
        std::thread::sleep(Duration::from_millis(20));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let (sent, running) = s.cancel();
        assert!(running <= 1, "only this session's statement is cancelled, not the other session's");
        if sent > 0 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5));
    }
    let e = runner.join().unwrap();
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(s.cancel(), (0, 0), "nothing is running any more");
    assert_eq!(other.join().unwrap().expect("the other session's statement was not cancelled"), 1);
}

fn a_stopped_backend_fails_the_statement_within_bounds(b: Backend) {
    let c = Cluster::start();
    let mut o = SessionOptions { db_url: Some(c.uri()), ..Default::default() };
    o.set_pool_max_size(2).unwrap();
    o.set_statement_timeout_ms(300);
    let s = b.open("x", &o).unwrap();
    let pid = s.query("SELECT pg_backend_pid()", &[]).unwrap().set.backend_pid;
    // SAFETY: signalling a server process this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let t = Instant::now();
    let e = s.query("SELECT 1", &[]).expect_err("the backend never answers");
    let took = t.elapsed();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(e.category(), Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    assert!(took < Duration::from_secs(8), "bounded by the timeout plus the cancel grace: {took:?}");
    assert_eq!(one(&s).unwrap(), "42", "a fresh connection serves the next statement");
}

fn a_server_turning_read_only_is_evicted_for_read_write_sessions(b: Backend) {
    let c = Cluster::start();
    let mut o = SessionOptions {
        db_url: Some(format!("{}?target_session_attrs=read-write", c.tcp_uri())),
        ..Default::default()
    };
    o.set_pool_max_size(1).unwrap();
    o.set_checkout_timeout_ms(1000).unwrap();
    let s = b.open("x", &o).unwrap();
    let first = s.query("SELECT pg_backend_pid()", &[]).unwrap().set.backend_pid;
    c.psql("ALTER SYSTEM SET default_transaction_read_only = on");
    c.psql("SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(300));
    // The next statement learns the server is read-only (ParameterStatus) and the connection
    // is discarded afterwards; new connections are refused by target_session_attrs.
    let _ = s.query("SELECT 1", &[]);
    let e = one(&s).expect_err("no writable server");
    assert!(e.message.contains("read-only"), "{e}");
    c.psql("ALTER SYSTEM RESET default_transaction_read_only");
    c.psql("SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(300));
    let r = s.query("SELECT pg_backend_pid()", &[]).unwrap();
    assert_ne!(r.set.backend_pid, first, "the read-only connection was not reused");
}

fn restart_under_load_fails_only_statements_in_flight(b: Backend) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let c = Cluster::start();
    let mut o =
        SessionOptions { db_url: Some(format!("{}?application_name=under_load", c.uri())), ..Default::default() };
    o.set_pool_max_size(4).unwrap();
    o.set_checkout_timeout_ms(10_000).unwrap();
    let s = b.open("x", &o).unwrap();
    for mode in ["fast", "immediate"] {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let slowest = Arc::new(std::sync::Mutex::new(Duration::ZERO));
        let workers: Vec<_> = (0..8)
            .map(|t| {
                let (s, stop, ok, failed, slowest) =
                    (s.clone(), stop.clone(), ok.clone(), failed.clone(), slowest.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let v = (t * 100_000 + i).to_string();
                        let started = Instant::now();
                        match s.query("SELECT $1::int + 0", &[Some(v.as_bytes())]) {
                            Ok(r) => {
                                assert_eq!(r.set.value(0, 0), Some(v.as_bytes()));
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                assert_eq!(e.category(), Code::PGSESS_OPERATIONAL_ERROR, "{e}");
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        let took = started.elapsed();
                        let mut m = slowest.lock().unwrap();
                        *m = (*m).max(took);
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let before = ok.load(Ordering::Relaxed);
        let restart = Instant::now();
        c.restart(mode);
        let restarted = restart.elapsed();
        // The first statement after the server accepts again succeeds.
        assert_eq!(one(&s).unwrap_or_else(|e| panic!("first statement after a {mode} restart: {e}")), "42");
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
        assert!(ok > before, "work resumed after the restart");
        assert!(failed <= 8, "{mode}: {failed} statements failed; at most the 8 in flight may");
        let slowest = *slowest.lock().unwrap();
        assert!(slowest < Duration::from_secs(10), "{mode}: a call blocked {slowest:?}");
        let st = s.pool_stats();
        assert_eq!((st.in_use, st.results_outstanding, st.waiting), (0, 0, 0), "{st:?}");
        assert!(st.open <= 4, "{st:?}");
        eprintln!(
            "restart {mode} under load ({b:?}): {failed} failed, {ok} succeeded, restart took {restarted:?}, slowest call {slowest:?}"
        );
    }
}

#[test]
fn a_peer_that_accepts_and_never_answers_fails_within_the_connect_timeout() {
    // A listener whose backlog completes TCP handshakes but never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let uri = format!("postgresql://u:never-shown@127.0.0.1:{port}/db?connect_timeout=2");
    let mut o = SessionOptions { db_url: Some(uri), ..Default::default() };
    o.set_checkout_timeout_ms(10_000).unwrap();
    let t = Instant::now();
    let e = Session::open("x", &o).expect_err("nobody answers");
    let took = t.elapsed();
    assert_eq!(e.category(), Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(4), "took {took:?}: {e}");
    assert!(e.message.contains("timed out") && !e.message.contains("never-shown"), "{e}");
    drop(listener);
}

/// A cancel that arrives as its statement ends must not cancel the next statement on the
/// connection: `cancel` returns only once the server has closed the cancel connection (libpq's
/// PQcancel does the same), so the signal has landed before the next statement is sent.
#[test]
fn a_late_cancel_never_cancels_the_next_statement() {
    let c = support::shared();
    let s = session(c, 1);
    let mut cancelled = 0;
    for i in 0..60u64 {
        let runner = {
            let s = s.clone();
            std::thread::spawn(move || s.query("SELECT pg_sleep(0.005)", &[]).map(drop))
        };
        // Around the statement's end: sometimes while it runs, sometimes just after.
        std::thread::sleep(Duration::from_micros(3_000 + (i % 8) * 600));
        let (sent, _) = s.cancel();
        let outcome = runner.join().unwrap();
        if sent > 0 && outcome.is_err() {
            cancelled += 1;
        }
        let next = s.query("SELECT $1::int", &[Some(b"1")]);
        assert!(next.is_ok(), "round {i}: the statement after a cancel was hit by it: {:?}", next.err());
    }
    eprintln!("{cancelled} of 60 statements cancelled while running");
}
