//! Asynchronous requests: order, cancellation, restarts with requests in flight, close with
//! requests outstanding; every callback exactly once.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgsess::requests::Request;
use pgsess::{Code, Session, SessionOptions};

fn session(uri: &str, pool: u32, app: &str) -> Session {
    let mut o = SessionOptions { db_url: Some(format!("{uri}?application_name={app}")), ..Default::default() };
    o.set_pool_max_size(pool).unwrap();
    Session::open("x", &o).unwrap()
}

type Log = Arc<Mutex<Vec<(usize, Result<String, Code>)>>>;

/// Submit `SELECT $1::int` with value i; the outcome is logged as (i, value or code).
fn submit(s: &Session, sql: &str, i: usize, log: &Log) -> Arc<Request> {
    let log = log.clone();
    let callback = Box::new(move |outcome: pgsess::Result<Box<pgsess::Results>>| {
        let entry = outcome
            .map(|r| String::from_utf8(r.set.value(0, 0).unwrap_or_default().to_vec()).unwrap())
            .map_err(|e| e.code);
        log.lock().unwrap().push((i, entry));
    });
    s.query_async(sql.into(), vec![Some(i.to_string().into_bytes())], callback).unwrap().request
}

/// Dispatch until `n` callbacks ran, polling the fd as an event loop would.
fn dispatch_until(s: &Session, log: &Log, n: usize, limit: Duration) {
    let engine = s.requests().unwrap();
    let started = Instant::now();
    while log.lock().unwrap().len() < n {
        assert!(started.elapsed() < limit, "only {} of {n} callbacks after {limit:?}", log.lock().unwrap().len());
        let mut pfd = libc::pollfd { fd: engine.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        engine.dispatch();
    }
}

#[test]
fn a_thousand_requests_over_a_pool_of_eight_on_one_thread() {
    let s = session(&support::shared().uri(), 8, "async_1000");
    let log: Log = Arc::default();
    for i in 0..1000 {
        submit(&s, "SELECT $1::int * 2", i, &log);
    }
    dispatch_until(&s, &log, 1000, Duration::from_secs(60));
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1000, "exactly one callback each");
    for (i, outcome) in log.iter() {
        assert_eq!(outcome.as_deref(), Ok((i * 2).to_string().as_str()), "request {i}");
    }
    assert!(s.pool_stats().open <= 8);
}

#[test]
fn waiting_requests_run_in_submission_order() {
    let s = session(&support::shared().uri(), 1, "async_order");
    let log: Log = Arc::default();
    for i in 0..50 {
        submit(&s, "SELECT $1::int", i, &log);
    }
    dispatch_until(&s, &log, 50, Duration::from_secs(30));
    let order: Vec<usize> = log.lock().unwrap().iter().map(|(i, _)| *i).collect();
    assert_eq!(order, (0..50).collect::<Vec<_>>());
}

#[test]
fn cancel_queued_and_running_requests() {
    let s = session(&support::shared().uri(), 1, "async_cancel");
    let engine = s.requests().unwrap();
    let log: Log = Arc::default();
    let running = submit(&s, "SELECT pg_sleep(10)::text || $1", 0, &log);
    let queued = submit(&s, "SELECT $1::int", 1, &log);
    let after = submit(&s, "SELECT $1::int", 2, &log);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    engine.cancel(&queued);
    engine.cancel(&running);
    dispatch_until(&s, &log, 3, Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(5), "cancel took {:?}", t.elapsed());
    let log = log.lock().unwrap();
    let outcome = |i: usize| log.iter().find(|(j, _)| *j == i).map(|(_, o)| o.clone()).unwrap();
    assert_eq!(outcome(0), Err(Code::PGSESS_QUERY_CANCELED));
    assert_eq!(outcome(1), Err(Code::PGSESS_QUERY_CANCELED));
    assert_eq!(outcome(2), Ok("2".into()));
    engine.cancel(&after); // finished: nothing happens, no second callback
    assert_eq!(engine.dispatch(), 0);
}

#[test]
fn close_with_requests_outstanding_runs_every_callback_once() {
    let s = session(&support::shared().uri(), 2, "async_close");
    let calls = Arc::new(AtomicUsize::new(0));
    for i in 0..40 {
        let calls = calls.clone();
        let sql = if i < 2 { "SELECT pg_sleep(10)::text || $1" } else { "SELECT $1::int" };
        let callback = Box::new(move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
        });
        s.query_async(sql.into(), vec![Some(i.to_string().into_bytes())], callback).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    s.close_requests();
    assert!(t.elapsed() < Duration::from_secs(5), "close waited {:?}", t.elapsed());
    assert_eq!(calls.load(Ordering::SeqCst), 40);
    // Nothing more runs, and new requests are refused.
    assert!(s.query_async("SELECT 1".into(), vec![], Box::new(|_| {})).is_err());
}

#[test]
fn a_restart_with_requests_in_flight_loses_none() {
    let c = support::Cluster::start();
    let s = session(&c.uri(), 4, "async_restart");
    let log: Log = Arc::default();
    for i in 0..200 {
        submit(&s, "SELECT pg_sleep(0.005)::text || $1", i, &log);
    }
    std::thread::sleep(Duration::from_millis(50));
    c.restart("fast");
    for i in 200..300 {
        submit(&s, "SELECT pg_sleep(0.001)::text || $1", i, &log);
    }
    dispatch_until(&s, &log, 300, Duration::from_secs(60));
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 300);
    let mut ids: Vec<usize> = log.iter().map(|(i, _)| *i).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300, "each request completed exactly once");
    for (i, outcome) in log.iter() {
        match outcome {
            Ok(v) => assert_eq!(v, &i.to_string()),
            Err(code) => assert_eq!(code.category(), Code::PGSESS_OPERATIONAL_ERROR, "request {i}: {code:?}"),
        }
    }
    let failed = log.iter().filter(|(_, o)| o.is_err()).count();
    assert!(log.iter().filter(|(i, _)| *i >= 200).all(|(_, o)| o.is_ok()), "requests after the restart succeed");
    eprintln!("restart with 200 requests in flight: {failed} failed (operational), all 300 completed once");
}
