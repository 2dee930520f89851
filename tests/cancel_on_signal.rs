//! `SessionOptions::set_cancel_on_signal` (`pgsess_options_set_cancel_on_signal`): a signal that
//! interrupts a statement's wait for its answer cancels the statement on the server, which then
//! fails with `PGSESS_QUERY_CANCELED` at once, on a connection that stays usable. This is what a
//! runtime that interrupts a blocked thread with a signal needs (Ruby's Timeout and Thread#raise
//! signal the thread, and a libpq-style C program's alarm()). Without the option a signal is
//! retried over, as libpq does, and the statement runs to its end.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgsess::{Code, Session, SessionOptions};

extern "C" fn ignore(_: libc::c_int) {}

/// SIGUSR1 with a handler that does nothing (so it interrupts a poll(2) without killing us).
fn install_handler() {
    // SAFETY: a zeroed sigaction with a plain handler; no flags (poll is never restarted).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

fn open(app: &str, on: bool) -> Session {
    let c = support::shared();
    let mut o = SessionOptions { db_url: Some(format!("{}?application_name={app}", c.uri())), ..Default::default() };
    o.set_cancel_on_signal(on);
    Session::open("sig", &o).unwrap()
}

/// Run `sql` on a thread of its own, signal that thread (SIGUSR1) every 100 ms from 200 ms on,
/// as Ruby's timer does until the thread returns; the statement's outcome and how long it took.
fn run_signalled(s: &Session, sql: &'static str) -> (pgsess::Result<String>, Duration) {
    install_handler();
    let s = s.clone();
    let tid = Arc::new(AtomicU64::new(0));
    let seen = tid.clone();
    let worker = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        seen.store(unsafe { libc::pthread_self() } as u64, Ordering::SeqCst);
        let started = Instant::now();
        let r = s.query(sql, &[]).map(|r| String::from_utf8_lossy(r.set.value(0, 0).unwrap_or(b"NULL")).into_owned());
        (r, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    let thread = tid.load(Ordering::SeqCst) as libc::pthread_t;
    while !worker.is_finished() {
        // SAFETY: the worker thread is alive until is_finished says otherwise; a signal to a
        // thread that has just ended is harmless on Linux (it is not reused while joinable).
        unsafe { libc::pthread_kill(thread, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(100));
    }
    worker.join().unwrap()
}

#[test]
fn a_signal_cancels_the_statement_and_the_session_stays_usable() {
    let s = open("sig-on", true);
    let (r, took) = run_signalled(&s, "SELECT pg_sleep(5)::text");
    let e = r.unwrap_err();
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert_eq!(e.sqlstate(), Some("57014"), "{e}");
    assert!(took < Duration::from_millis(1500), "took {took:?}: the signal at 200 ms did not end it");
    let pid = |s: &Session| s.query("SELECT pg_backend_pid()", &[]).unwrap().set.backend_pid;
    let before = pid(&s);
    let r = s.query("SELECT 'after'", &[]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"after"[..]));
    assert_eq!(r.set.backend_pid, before, "the connection stayed in the pool");
    eprintln!("cancelled on signal after {took:?}");
}

#[test]
fn without_the_option_a_signal_is_retried_over() {
    let s = open("sig-off", false);
    let (r, took) = run_signalled(&s, "SELECT pg_sleep(0.8)::text");
    assert_eq!(r.unwrap(), "");
    assert!(took >= Duration::from_millis(750), "took {took:?}");
}

#[test]
fn a_statement_without_a_signal_is_unaffected_and_sends_are_not_cut_short() {
    let s = open("sig-on-quiet", true);
    assert_eq!(s.query("SELECT 'quiet'", &[]).unwrap().set.value(0, 0), Some(&b"quiet"[..]));
    // A large statement, signalled while it is sent and answered: it completes (a send is never
    // interrupted; the answer comes quickly, before any cancel could matter).
    let big: &'static str = Box::leak(format!("SELECT length('{}')::text", "x".repeat(8 << 20)).into_boxed_str());
    let (r, _) = run_signalled(&s, big);
    match r {
        Ok(v) => assert_eq!(v, (8 << 20).to_string()),
        Err(e) => assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "only a cancel may end it: {e}"),
    }
    assert_eq!(s.query("SELECT 'still'", &[]).unwrap().set.value(0, 0), Some(&b"still"[..]));
}

#[test]
fn a_signal_cancels_a_large_result_while_its_rows_stream_in() {
    // Past its first 256 KiB a result's rows are waited for after a short sleep that the
    // socket does not end (`Stream::fill_after_pause`); a signal during that sleep cancels as
    // one during poll(2) does. The statement would stream 10 GB: only the cancel ends it early.
    let s = open("sig-on-stream", true);
    let (r, took) = run_signalled(&s, "SELECT repeat('x', 1000) FROM generate_series(1, 10000000)");
    let e = r.unwrap_err();
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert!(took < Duration::from_millis(3000), "took {took:?}: the signals from 200 ms on did not end it");
    assert_eq!(s.query("SELECT 'after'", &[]).unwrap().set.value(0, 0), Some(&b"after"[..]));
    eprintln!("a streaming result cancelled on signal after {took:?}");
}
