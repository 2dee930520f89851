//! Hostile servers, item 6 of issue 17: every wait is bounded by a setting, even with no
//! statement timeout. Fake servers that go silent after the query, ignore cancel requests, stop
//! reading a large statement, or accept a connection and never answer; each test asserts the
//! error code, that the connection was discarded (or kept), that the next statement gets its own
//! answer, and the elapsed time against the settings.

mod support;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pgsess::{Code, Session, SessionOptions};
use support::fake::{be, FakeConn, FakeServer};

/// Scheduling noise on a loaded machine: the most a bound may be overshot (30 s under valgrind,
/// where a 64 MiB statement alone costs seconds of client CPU).
fn slack() -> Duration {
    if slow() {
        Duration::from_secs(30)
    } else {
        Duration::from_millis(1000)
    }
}

/// Under valgrind (scripts/hostile-valgrind sets PGSESS_TEST_SLOW, or valgrind's preload is in
/// LD_PRELOAD) the client's own CPU work runs 20-50 times slower: bounds about that work widen.
fn slow() -> bool {
    std::env::var_os("PGSESS_TEST_SLOW").is_some() || std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn open(uri: &str, set: impl FnOnce(&mut SessionOptions)) -> Session {
    let mut o = SessionOptions { db_url: Some(uri.to_owned()), ..Default::default() };
    o.set_pool_max_size(2).unwrap();
    set(&mut o);
    Session::open("x", &o).expect("the fake server's first connection")
}

/// The first value of `SELECT '<value>'`.
fn select(s: &Session, value: &str) -> pgsess::Result<String> {
    let r = s.query(&format!("SELECT '{value}'"), &[])?;
    Ok(String::from_utf8(r.set.value(0, 0).expect("one value").to_vec()).unwrap())
}

/// Assert `took` is within [`at_least`, `at_least` + slack()).
fn assert_took(took: Duration, at_least: Duration, what: &str) {
    eprintln!("{what}: {took:?} (bound {at_least:?})");
    assert!(took + ms(20) >= at_least, "{what}: ended after {took:?}, before its bound {at_least:?}");
    assert!(took < at_least + slack(), "{what}: waited {took:?}, past its bound {at_least:?}");
}

/// Wait (briefly) until the server has counted `n` cancel requests.
fn assert_cancels(server: &FakeServer, n: usize) {
    let t = Instant::now();
    while server.cancels() < n && t.elapsed() < ms(2000) {
        thread::sleep(ms(10));
    }
    assert_eq!(server.cancels(), n, "cancel requests received");
}

/// Connection 0 runs `first` (after an honest start); every later one is served honestly.
fn first_connection(first: impl Fn(&mut FakeConn) -> std::io::Result<()> + Send + Sync + 'static) -> FakeServer {
    FakeServer::start(move |c| {
        c.trust()?;
        if c.index() == 0 {
            first(c)
        } else {
            c.serve_rest()
        }
    })
}

/// The next statement gets its own answer on a new connection: the one that failed was
/// discarded.
fn assert_discarded_and_next_right(s: &Session, server: &FakeServer) {
    assert_eq!(select(s, "next").unwrap(), "next", "the next statement's own answer");
    assert_eq!(server.connections(), 2, "the failed connection was discarded, a new one serves");
    assert!(s.pool_stats().discarded_dead >= 1);
}

/// Case: a server that reads the statement, then goes silent and ignores the cancel request;
/// the session has a statement timeout. Bound: the timeout plus the cancel grace (also a grace
/// of 0: the statement fails at its timeout).
#[test]
fn silent_after_the_query_with_a_statement_timeout_fails_at_timeout_plus_grace() {
    for (timeout, grace) in [(300, 300), (200, 0)] {
        let server = first_connection(|c| {
            c.next_exchange()?;
            c.go_silent()
        });
        let s = open(&server.uri(), |o| {
            o.set_statement_timeout_ms(timeout);
            o.set_cancel_grace_ms(grace);
        });
        let t = Instant::now();
        let e = select(&s, "never").expect_err("the server never answers");
        assert_took(t.elapsed(), ms((timeout + grace).into()), "statement timeout + grace");
        assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
        assert_eq!(e.sqlstate(), Some("57014"), "{e}");
        assert!(e.message.contains("cancel grace"), "{e}");
        assert!(!e.to_string().contains(support::fake::PASSWORD));
        assert_cancels(&server, 1);
        assert_discarded_and_next_right(&s, &server);
    }
}

/// Case: no statement timeout, a silent server ignoring cancels; `pgsess_cancel` (Session::cancel)
/// from another thread. Bound: the cancel plus the cancel grace.
#[test]
fn silent_without_a_statement_timeout_ends_at_the_cancel_grace_after_cancel() {
    let server = first_connection(|c| {
        c.next_exchange()?;
        c.go_silent()
    });
    let s = open(&server.uri(), |o| o.set_cancel_grace_ms(300));
    let canceller = {
        let s = s.clone();
        thread::spawn(move || {
            thread::sleep(ms(200));
            s.cancel()
        })
    };
    let t = Instant::now();
    let e = select(&s, "never").expect_err("cancelled");
    let took = t.elapsed();
    assert_eq!(canceller.join().unwrap(), (1, 1), "one statement running, its cancel request sent");
    assert_took(took, ms(500), "cancel at 200 ms + grace 300 ms");
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert!(e.message.contains("cancel grace (300 ms)"), "{e}");
    assert_cancels(&server, 1);
    assert_discarded_and_next_right(&s, &server);
    assert_eq!(s.cancel(), (0, 0), "nothing runs any more");
}

/// Case: a server that answers the cancel (57014) within the grace: the statement fails with the
/// server's error and the connection stays in the pool.
#[test]
fn a_cancel_answered_within_the_grace_keeps_the_connection() {
    let server = first_connection(|c| {
        c.next_exchange()?;
        thread::sleep(ms(400));
        let mut out = be::error("57014", "canceling statement due to statement timeout");
        out.extend(be::ready(b'I'));
        c.send(&out)?;
        c.serve_rest()
    });
    let s = open(&server.uri(), |o| {
        o.set_statement_timeout_ms(200);
        o.set_cancel_grace_ms(2000);
    });
    let t = Instant::now();
    let e = select(&s, "slow").expect_err("cancelled by the server");
    assert_took(t.elapsed(), ms(400), "the server's answer");
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert!(e.server.is_some(), "the server's own error: {e}");
    assert_eq!(select(&s, "next").unwrap(), "next");
    assert_eq!(server.connections(), 1, "the connection was kept");
    assert_eq!(s.pool_stats().discarded_dead, 0);
}

/// Case: a server that takes longer than the cancel grace to answer, with nobody cancelling:
/// the grace never applies (no statement is cut short by the checks of its cancel signal).
#[test]
fn a_slow_answer_without_a_cancel_is_waited_for() {
    let server = first_connection(|c| {
        let ex = c.next_exchange()?;
        thread::sleep(ms(1200));
        c.reply_normally(&ex)?;
        c.serve_rest()
    });
    let s = open(&server.uri(), |o| o.set_cancel_grace_ms(50));
    let t = Instant::now();
    assert_eq!(select(&s, "late").unwrap(), "late");
    assert!(t.elapsed() >= ms(1200));
    assert_eq!(server.connections(), 1);
    assert_eq!(server.cancels(), 0);
}

/// A server that stops reading: 64 MiB of statement fill the socket buffers and the send blocks.
/// It stalls longer than the client can take to prepare the statement (seconds of CPU under
/// valgrind), so the send is what waits.
fn stops_reading() -> FakeServer {
    let stall = if slow() { Duration::from_secs(90) } else { Duration::from_secs(6) };
    first_connection(move |c| c.stall(stall))
}

fn big_literal() -> String {
    "x".repeat(64 << 20)
}

/// Case: a 64 MiB statement to a server that stopped reading, with a statement timeout of
/// 1500 ms and `tcp_user_timeout=0` (no help from TCP). Bound: the statement timeout. (Long
/// enough for what the client does with 64 MiB of SQL before sending, about 0.9 s in a debug
/// build on a loaded machine: the bound is on waiting.)
#[test]
fn a_statement_the_server_does_not_read_fails_at_the_statement_timeout() {
    let server = stops_reading();
    let s = open(&format!("{}&tcp_user_timeout=0", server.uri()), |o| o.set_statement_timeout_ms(1500));
    let sql = format!("SELECT '{}'", big_literal());
    let t = Instant::now();
    let e = s.query(&sql, &[]).map(drop).expect_err("the server never reads it");
    assert_took(t.elapsed(), ms(1500), "statement timeout while sending");
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert_eq!(e.sqlstate(), Some("57014"));
    assert!(e.message.contains("still being sent"), "{e}");
    assert!(e.unsent && e.is_retryable(), "the server never had all of it: {e}");
    assert_eq!(server.cancels(), 0, "a cancel cannot stop a statement the server is still reading");
    assert_discarded_and_next_right(&s, &server);
}

/// Case: the same with parameters (extended protocol), no statement timeout, and `pgsess_cancel`
/// from another thread. Bound: the cancel plus the cancel grace.
#[test]
fn a_blocked_send_ends_at_the_cancel_grace_after_cancel() {
    let server = stops_reading();
    let s = open(&format!("{}&tcp_user_timeout=0", server.uri()), |o| o.set_cancel_grace_ms(300));
    let big = big_literal();
    let canceller = {
        let s = s.clone();
        thread::spawn(move || {
            thread::sleep(ms(200));
            s.cancel()
        })
    };
    let t = Instant::now();
    let e = s.query("SELECT $1", &[Some(big.as_bytes())]).map(drop).expect_err("cancelled");
    let took = t.elapsed();
    assert_eq!(canceller.join().unwrap(), (1, 1));
    assert_took(took, ms(500), "cancel at 200 ms + grace 300 ms");
    assert_eq!(e.code, Code::PGSESS_QUERY_CANCELED, "{e}");
    assert!(e.message.contains("cancel grace"), "{e}");
    assert_discarded_and_next_right(&s, &server);
}

/// Case: a server that stops reading a 64 MiB statement and sends notices meanwhile, 64 of
/// 512 KiB. The client reads them while its send waits (else both sides would wait on each other),
/// but keeps at most max_result_bytes (1 MiB here) plus the largest description (8 MiB): past it
/// the statement fails with 54000 and the connection is closed, well before 32 MiB are kept.
#[test]
fn what_arrives_while_a_send_waits_is_kept_within_a_bound() {
    let server = first_connection(|c| {
        use std::io::Read;
        let mut start = [0u8; 5];
        c.stream().read_exact(&mut start)?; // the statement is being sent
        let notice = be::notice(&"n".repeat(512 << 10));
        for _ in 0..64 {
            c.send(&notice)?;
        }
        c.stall(Duration::from_secs(if slow() { 90 } else { 6 }))
    });
    let s = open(&format!("{}&tcp_user_timeout=0", server.uri()), |o| {
        o.set_max_result_bytes(1 << 20);
        o.set_statement_timeout_ms(if slow() { 60_000 } else { 4_000 });
    });
    let sql = format!("SELECT '{}'", big_literal());
    let e = s.query(&sql, &[]).map(drop).expect_err("the server never reads it");
    assert_eq!(e.code, Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    assert_eq!(e.sqlstate(), Some("54000"), "{e}");
    assert!(e.message.contains("without reading the statement being sent"), "{e}");
    let kept: usize = e.message.split_whitespace().find_map(|w| w.parse().ok()).expect("a byte count");
    // The bound, overshot by at most the one read into the buffer's spare room.
    assert!((9 << 20..18 << 20).contains(&kept), "bytes kept while sending: {kept}");
    assert_discarded_and_next_right(&s, &server);
}

type Outcomes = Arc<Mutex<Vec<(usize, Result<String, Code>)>>>;

fn submit(s: &Session, value: usize, outcomes: &Outcomes) {
    let outcomes = outcomes.clone();
    let callback = Box::new(move |r: pgsess::Result<Box<pgsess::Results>>| {
        let r = r.map(|r| String::from_utf8_lossy(r.set.value(0, 0).unwrap_or_default()).into_owned());
        outcomes.lock().unwrap().push((value, r.map_err(|e| e.code)));
    });
    s.query_async(format!("SELECT '{value}'"), vec![], callback).unwrap();
}

/// Case: `pgsess_close` (Session::close_requests) with an asynchronous request running on a
/// silent server that ignores the cancel, and another queued behind it (pool of 1). Bound: the
/// cancel grace; both callbacks get `PGSESS_QUERY_CANCELED`, once each.
#[test]
fn close_with_a_request_on_a_silent_server_returns_at_the_cancel_grace() {
    let asked = Arc::new(AtomicBool::new(false));
    let flag = asked.clone();
    let server = first_connection(move |c| {
        c.next_exchange()?;
        flag.store(true, Ordering::SeqCst);
        c.go_silent()
    });
    let mut o = SessionOptions { db_url: Some(server.uri()), ..Default::default() };
    o.set_pool_max_size(1).unwrap();
    o.set_cancel_grace_ms(400);
    let s = Session::open("x", &o).unwrap();
    let outcomes: Outcomes = Arc::default();
    submit(&s, 1, &outcomes);
    submit(&s, 2, &outcomes);
    let t = Instant::now();
    while !asked.load(Ordering::SeqCst) {
        assert!(t.elapsed() < ms(3000), "the request never reached the server");
        thread::sleep(ms(5));
    }
    let t = Instant::now();
    s.close_requests();
    assert_took(t.elapsed(), ms(400), "close: the cancel grace");
    let mut got = outcomes.lock().unwrap().clone();
    got.sort_by_key(|(i, _)| *i);
    assert_eq!(got, vec![(1, Err(Code::PGSESS_QUERY_CANCELED)), (2, Err(Code::PGSESS_QUERY_CANCELED))]);
    assert_cancels(&server, 1);
    // The abandoned statement ends at the same grace on its worker: its connection is closed.
    let t = Instant::now();
    while s.pool_stats().discarded_dead == 0 {
        assert!(t.elapsed() < slack(), "the abandoned statement's connection was not closed");
        thread::sleep(ms(10));
    }
    assert_eq!(select(&s, "next").unwrap(), "next", "the session's own statements still work");
    assert_eq!(server.connections(), 2);
}

/// Case: the same through the C ABI: `pgsess_options_set_cancel_grace_ms`, `pgsess_open`,
/// `pgsess_query_async`, `pgsess_close`.
#[test]
fn pgsess_close_through_the_c_abi_returns_at_the_cancel_grace() {
    use pgsess::ffi::{options::*, requests::*, session::*};
    use std::ffi::{c_void, CString};
    use std::sync::atomic::AtomicUsize;

    let asked = Arc::new(AtomicBool::new(false));
    let flag = asked.clone();
    let server = first_connection(move |c| {
        c.next_exchange()?;
        flag.store(true, Ordering::SeqCst);
        c.go_silent()
    });
    static CANCELED: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn done(
        _: *mut c_void,
        r: *mut pgsess::ffi::results::pgsess_results,
        e: *mut pgsess::ffi::pgsess_error,
    ) {
        assert!(r.is_null() && !e.is_null());
        if pgsess::ffi::error::pgsess_error_code(e) == Code::PGSESS_QUERY_CANCELED {
            CANCELED.fetch_add(1, Ordering::SeqCst);
        }
        pgsess::ffi::error::pgsess_error_free(e);
    }
    let url = CString::new(server.uri()).unwrap();
    // SAFETY: every pointer is live and from the library; the callback frees what it owns.
    unsafe {
        assert_eq!(pgsess_options_set_cancel_grace_ms(std::ptr::null_mut(), 1), Code::PGSESS_INTERFACE_ERROR);
        let opts = pgsess_options_new();
        assert_eq!(pgsess_options_set_db_url(opts, url.as_ptr()), Code::PGSESS_OK);
        assert_eq!(pgsess_options_set_cancel_grace_ms(opts, 300), Code::PGSESS_OK);
        let s = pgsess_open(std::ptr::null(), opts, std::ptr::null_mut());
        pgsess_options_free(opts);
        assert!(!s.is_null());
        let sql = CString::new("SELECT 'x'").unwrap();
        let rq = pgsess_query_async(
            s,
            sql.as_ptr(),
            0,
            std::ptr::null(),
            Some(done),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        assert!(!rq.is_null());
        pgsess_request_free(rq);
        let t = Instant::now();
        while !asked.load(Ordering::SeqCst) {
            assert!(t.elapsed() < ms(3000), "the request never reached the server");
            thread::sleep(ms(5));
        }
        let t = Instant::now();
        pgsess_close(s);
        assert!(t.elapsed() < ms(300) + slack(), "pgsess_close waited {:?}", t.elapsed());
    }
    assert_eq!(CANCELED.load(Ordering::SeqCst), 1, "the callback ran once, with PGSESS_QUERY_CANCELED");
}

/// A listener that accepts connections and never reads or answers (kept open by the returned
/// thread's list until the process ends).
fn accepts_and_never_answers() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.extend(s.ok());
        }
    });
    port
}

fn open_fails_within_the_checkout_timeout(uri: &str, what: &str) {
    let mut o = SessionOptions { db_url: Some(uri.to_owned()), ..Default::default() };
    o.set_checkout_timeout_ms(300).unwrap();
    let t = Instant::now();
    let e = Session::open("x", &o).expect_err("nothing answers");
    assert_took(t.elapsed(), ms(300), what);
    assert_eq!(e.code, Code::PGSESS_OPERATIONAL_ERROR, "{what}: {e}");
    assert!(e.message.contains("checkout timeout (300 ms)"), "{what}: {e}");
    assert!(!e.to_string().contains(support::fake::PASSWORD), "{what}: {e}");
}

/// Case: `pgsess_open` on a Unix-domain socket whose listen queue is full (a server that stopped
/// accepting): a blocking connect(2) would wait until it accepts. Bound: the checkout timeout.
#[test]
fn pgsess_open_on_a_unix_socket_that_never_accepts_is_bounded_by_the_checkout_timeout() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::{UnixListener, UnixStream};
    let dir = std::env::temp_dir().join(format!("pgsess-full-queue-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(".s.PGSQL.7");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    // SAFETY: listen(2) on the listener's own descriptor: a queue of one, never accepted.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let mut held = Vec::new();
    while held.len() < 64 {
        let s = nonblocking_connect(&path);
        match s {
            Some(s) => held.push(s),
            None => break,
        }
    }
    assert!(held.len() < 64, "the queue never filled");
    let uri = format!("postgresql:///fake?host={}&port=7&user=fake&sslmode=disable", dir.display());
    open_fails_within_the_checkout_timeout(&uri, "a Unix socket whose queue is full");
    drop(held);
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);

    /// A non-blocking connect: None once the queue is full (EAGAIN).
    fn nonblocking_connect(path: &std::path::Path) -> Option<UnixStream> {
        // SAFETY: a new socket, owned by the stream made from it, or closed.
        unsafe {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0);
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
            for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
                *d = *s as libc::c_char;
            }
            let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
            if libc::connect(fd, std::ptr::addr_of!(addr).cast(), len) == 0 {
                Some(<UnixStream as std::os::fd::FromRawFd>::from_raw_fd(fd))
            } else {
                libc::close(fd);
                None
            }
        }
    }
}

/// Case: `pgsess_open` on a server that accepts TCP and never answers, with the default
/// connect_timeout (10 s): the SSL request with the default sslmode=prefer, the startup with
/// sslmode=disable, two such hosts, and a server that answers the startup but not
/// target_session_attrs' query. Bound: the checkout timeout (300 ms), for each.
#[test]
fn pgsess_open_is_bounded_by_the_checkout_timeout() {
    let (a, b) = (accepts_and_never_answers(), accepts_and_never_answers());
    open_fails_within_the_checkout_timeout(
        &format!("postgresql://fake:{}@127.0.0.1:{a}/fake", support::fake::PASSWORD),
        "no answer to the SSL request",
    );
    let silent = FakeServer::start(|c| c.go_silent());
    open_fails_within_the_checkout_timeout(&silent.uri(), "no answer to the startup");
    open_fails_within_the_checkout_timeout(
        &format!("postgresql://fake:{}@127.0.0.1:{a},127.0.0.1:{b}/fake", support::fake::PASSWORD),
        "two hosts that never answer",
    );
    let no_query = FakeServer::start(|c| {
        c.trust()?;
        c.go_silent()
    });
    open_fails_within_the_checkout_timeout(
        &format!("{}&target_session_attrs=read-write", no_query.uri()),
        "no answer to target_session_attrs' query",
    );
    assert_eq!(no_query.connections(), 1);
    // A server that answers still opens, and the bound does not outlive the opening.
    let honest = FakeServer::honest();
    let mut o = SessionOptions { db_url: Some(honest.uri()), ..Default::default() };
    o.set_checkout_timeout_ms(300).unwrap();
    let s = Session::open("x", &o).unwrap();
    thread::sleep(ms(350));
    assert_eq!(select(&s, "after").unwrap(), "after", "statements are not bound by the opening's deadline");
}
