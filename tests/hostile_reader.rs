//! Issue 17, the reader's cases: a fake server (`support::fake`) sends the bytes a real server
//! never sends, and each test asserts the outcome: the error code (and SQLSTATE), whether the
//! connection was discarded (the fake's `connections()` grows on the next statement), that the
//! next statement gets its own answer, and that nothing waits past its bound.
//!
//! Cases: a second ReadyForQuery or an unrequested reply in the same read as a real reply, or
//! arriving while idle, in and out of a transaction (COMMIT is never reported without its own
//! reply); message lengths of -1, 2^31-1, under 4 and over a type's limit; a partial message at
//! the end of a reply and while idle (with no statement timeout); floods of notices and of
//! ParameterStatus names; a stream whose server sends every row at once, abandoned early; `max_result_bytes`;
//! an unknown ReadyForQuery status; client_encoding changes in a reply, while idle and at
//! start-up; an ErrorResponse without SQLSTATE (NULL from the C accessor); a row count beyond 64
//! bits; a second CommandComplete, a DataRow after CommandComplete, wrong format codes, a field
//! cut short, a ReadyForQuery with no answer; and what a server may legitimately send after a
//! reply (notices, notifications, ParameterStatus, a FATAL error).
mod support;

use std::ffi::{CStr, CString};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use pgsess::{Code, Error, Session, SessionOptions};
use support::fake::{be, FakeConn, FakeServer, Frontend};

/// How much slower than native this run is: 40 under valgrind (which `scripts/check` runs these
/// tests under), else 1. Every bound below is multiplied by it, and floods are made smaller.
fn slowdown() -> u32 {
    static SLOW: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *SLOW.get_or_init(|| {
        let valgrind = std::env::var("LD_PRELOAD").is_ok_and(|v| v.contains("vgpreload"));
        if valgrind || std::env::var_os("PGSESS_TEST_SLOW").is_some() {
            40
        } else {
            1
        }
    })
}

/// Every case here ends well under this: the reader never waits for bytes it does not need.
fn fast() -> Duration {
    Duration::from_millis(1500) * slowdown()
}

/// Options for a pool of one connection on `server`, with a statement timeout as a safety net
/// (the cases assert they end far sooner).
fn options(server: &FakeServer) -> SessionOptions {
    let mut o = SessionOptions { db_url: Some(server.uri()), ..Default::default() };
    o.set_pool_max_size(1).unwrap();
    o.set_statement_timeout_ms(3000 * slowdown());
    o
}

fn open(server: &FakeServer) -> Session {
    Session::open("fake", &options(server)).expect("open a session on the fake server")
}

/// A server whose first connection runs `hostile` after an honest start, then answers
/// honestly; every later connection is honest throughout.
fn hostile_first(hostile: impl Fn(&mut FakeConn) -> io::Result<()> + Send + Sync + 'static) -> FakeServer {
    FakeServer::start(move |c| {
        c.trust()?;
        if c.index() == 0 {
            hostile(c)?;
        }
        c.serve_rest()
    })
}

/// The honest reply to the next exchange, with `extra` appended in the same write.
fn reply_with(c: &mut FakeConn, extra: &[u8]) -> io::Result<()> {
    let ex = c.next_exchange()?;
    let mut out = c.honest_reply(&ex);
    out.extend_from_slice(extra);
    c.send(&out)
}

/// Answer the next exchange with exactly `bytes`.
fn answer_with(c: &mut FakeConn, bytes: &[u8]) -> io::Result<()> {
    c.next_exchange()?;
    c.send(bytes)
}

/// `SELECT '<value>'`'s rows and tag, without ReadyForQuery.
fn rows_of(value: &str) -> Vec<u8> {
    let mut out = be::row_description(&[("?column?", 25)]);
    out.extend(be::data_row(&[Some(value.as_bytes())]));
    out.extend(be::command_complete("SELECT 1"));
    out
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn value(s: &Session, sql: &str) -> pgsess::Result<String> {
    let r = s.query(sql, &[])?;
    Ok(String::from_utf8(r.set.value(0, 0).unwrap_or_default().to_vec()).unwrap())
}

/// The statement failed as a protocol violation (operational, 08P01) saying `what`.
#[track_caller]
fn assert_violation(e: &Error, what: &str) {
    assert_eq!(e.code, Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    assert_eq!(e.sqlstate(), Some("08P01"), "{e}");
    assert!(e.message.contains("protocol violation"), "{e}");
    assert!(e.message.contains(what), "wanted {what:?} in: {e}");
    assert!(!e.message.contains(support::fake::PASSWORD), "{e}");
}

/// The next statement gets its own answer, and the server has seen `connections` connections
/// (2 after a discarded first one).
#[track_caller]
fn assert_next_right(s: &Session, server: &FakeServer, connections: usize) {
    for word in ["next", "after"] {
        let t = Instant::now();
        assert_eq!(value(s, &format!("SELECT '{word}'")).unwrap(), word);
        assert!(t.elapsed() < fast(), "{:?}", t.elapsed());
    }
    assert_eq!(server.connections(), connections, "connections the server saw");
    assert!(server.script_errors().is_empty(), "{:?}", server.script_errors());
}

/// A flag a script raises once it has sent what arrives while the connection is idle, and the
/// wait for it (plus a moment for the bytes to land), so a loaded machine does not make the
/// client look before they are there.
#[derive(Clone, Default)]
struct Sent(Arc<AtomicBool>);

impl Sent {
    fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    #[track_caller]
    fn wait(&self) {
        let t = Instant::now();
        while !self.0.load(Ordering::SeqCst) {
            assert!(t.elapsed() < Duration::from_secs(20), "the script never sent");
            sleep(Duration::from_millis(5));
        }
        sleep(Duration::from_millis(200) * slowdown());
    }
}

/// Run `f`, asserting it ended within `fast()`.
#[track_caller]
fn quick<T>(f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    assert!(t.elapsed() < fast(), "took {:?}", t.elapsed());
    out
}

// Item 1: wrong answers.

#[test]
fn a_second_ready_for_query_in_the_same_read_fails_the_statement_and_discards_the_connection() {
    let server = hostile_first(|c| reply_with(c, &be::ready(b'I')));
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_violation(&e, "a 'Z' message outside any exchange");
    assert_next_right(&s, &server, 2);
}

#[test]
fn an_unrequested_reply_in_the_same_read_fails_the_statement_and_discards_the_connection() {
    let server = hostile_first(|c| reply_with(c, &be::simple_select("INJECTED")));
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_violation(&e, "a 'T' message outside any exchange");
    assert_next_right(&s, &server, 2);
}

#[test]
fn an_unrequested_reply_arriving_while_idle_is_caught_at_checkout() {
    let sent = Sent::default();
    let raised = sent.clone();
    let server = hostile_first(move |c| {
        reply_with(c, &[])?;
        sleep(Duration::from_millis(50));
        c.send(&be::simple_select("INJECTED"))?;
        raised.raise();
        Ok(())
    });
    let s = open(&server);
    assert_eq!(value(&s, "SELECT 'one'").unwrap(), "one");
    sent.wait();
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_ready_for_query_with_no_answer_before_it_is_a_violation() {
    let server = hostile_first(|c| answer_with(c, &be::ready(b'I')));
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_violation(&e, "ReadyForQuery without an answer");
    assert_next_right(&s, &server, 2);
}

/// A script for a transaction: BEGIN answered honestly, then `after_begin`, then honest
/// answers, noting whether a COMMIT ever arrived.
fn in_transaction(
    committed: Arc<AtomicBool>,
    after_begin: impl Fn(&mut FakeConn) -> io::Result<()> + Send + Sync + 'static,
) -> FakeServer {
    FakeServer::start(move |c| {
        c.trust()?;
        if c.index() == 0 {
            reply_with(c, &[])?; // BEGIN
            after_begin(c)?;
        }
        loop {
            let ex = c.next_exchange()?;
            if ex.kind == support::fake::ExchangeKind::End {
                return Ok(());
            }
            if c.index() == 0 && ex.sql().eq_ignore_ascii_case("COMMIT") {
                committed.store(true, Ordering::SeqCst);
            }
            c.reply_normally(&ex)?;
        }
    })
}

#[test]
fn in_a_transaction_a_second_ready_for_query_fails_the_statement_and_commit_is_never_reported() {
    let committed = Arc::new(AtomicBool::new(false));
    let server = in_transaction(committed.clone(), |c| reply_with(c, &be::ready(b'T')));
    let s = open(&server);
    let tx = s.begin().unwrap();
    let e = quick(|| tx.query("SELECT 'two'", &[]).unwrap_err());
    assert_violation(&e, "a 'Z' message outside any exchange");
    let e = quick(|| tx.commit().unwrap_err());
    assert_eq!(e.category(), Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    assert!(!committed.load(Ordering::SeqCst), "COMMIT must not be sent on a connection out of step");
    assert_next_right(&s, &server, 2);
}

#[test]
fn in_a_transaction_a_reply_arriving_before_commit_is_found_before_commit_is_sent() {
    let committed = Arc::new(AtomicBool::new(false));
    let sent = Sent::default();
    let raised = sent.clone();
    let server = in_transaction(committed.clone(), move |c| {
        reply_with(c, &[])?; // SELECT 'two', honestly
        sleep(Duration::from_millis(50));
        // What a second reply to it would leave: a stale ReadyForQuery for COMMIT to read.
        c.send(&be::ready(b'I'))?;
        raised.raise();
        Ok(())
    });
    let s = open(&server);
    let tx = s.begin().unwrap();
    assert_eq!(tx.query("SELECT 'two'", &[]).unwrap().set.value(0, 0), Some(&b"two"[..]));
    sent.wait();
    let e = quick(|| tx.commit().unwrap_err());
    assert_violation(&e, "a 'Z' message outside any exchange");
    assert!(e.is_retryable(), "nothing was sent: {e:?}");
    assert!(!committed.load(Ordering::SeqCst), "COMMIT must not be sent on a connection out of step");
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_copy_on_a_pinned_connection_is_not_sent_after_an_unrequested_reply() {
    // A pinned session's connection is not checked out again, so the check before sending is
    // the only one: COPY must make it as every statement does.
    let copied = Arc::new(AtomicBool::new(false));
    let sent = Sent::default();
    let raised = sent.clone();
    let saw_copy = copied.clone();
    let server = FakeServer::start(move |c| {
        c.trust()?;
        if c.index() == 0 {
            reply_with(c, &[])?; // SELECT 'one', honestly
            sleep(Duration::from_millis(50));
            c.send(&be::simple_select("INJECTED"))?;
            raised.raise();
        }
        loop {
            let ex = c.next_exchange()?;
            if ex.kind == support::fake::ExchangeKind::End {
                return Ok(());
            }
            if c.index() == 0 && ex.sql().to_ascii_uppercase().starts_with("COPY") {
                saw_copy.store(true, Ordering::SeqCst);
            }
            c.reply_normally(&ex)?;
        }
    });
    let s = open(&server);
    let pinned = s.pin().unwrap();
    assert_eq!(value(&pinned, "SELECT 'one'").unwrap(), "one");
    sent.wait();
    let Err(e) = quick(|| pinned.copy_out("COPY t TO STDOUT")) else { panic!("COPY started out of step") };
    assert_violation(&e, "");
    assert!(!copied.load(Ordering::SeqCst), "COPY must not be sent on a connection out of step");
    drop(pinned);
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_commit_answered_by_a_bare_ready_for_query_is_not_reported_committed() {
    // COMMIT is sent here; what matters is that its reply without a CommandComplete is not
    // taken for a commit.
    let server = FakeServer::start(|c| {
        c.trust()?;
        if c.index() == 0 {
            reply_with(c, &[])?; // BEGIN
            answer_with(c, &be::ready(b'I'))?; // COMMIT: no CommandComplete
        }
        c.serve_rest()
    });
    let s = open(&server);
    let tx = s.begin().unwrap();
    let e = quick(|| tx.commit().unwrap_err());
    assert_violation(&e, "ReadyForQuery without an answer");
    assert!(!e.is_retryable(), "the COMMIT was sent: whether it committed is unknown: {e:?}");
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_batch_followed_by_a_stray_ready_for_query_fails_and_an_honest_batch_is_unaffected() {
    let honest = FakeServer::honest();
    let s = open(&honest);
    let statements: Vec<pgsess::conn::BatchStatement> = ["a", "b", "c"]
        .iter()
        .map(|w| pgsess::conn::BatchStatement { sql: "SELECT $1".into(), params: vec![Some(w.as_bytes().to_vec())] })
        .collect();
    let out = s.batch(&statements).unwrap();
    let got: Vec<_> = out.iter().map(|r| r.as_ref().unwrap().set.value(0, 0).unwrap().to_vec()).collect();
    assert_eq!(got, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    drop(out);
    assert_next_right(&s, &honest, 1);

    // The stray ReadyForQuery is taken for the answer to the batch's closing Sync; the real one
    // then arrives in the same read, outside any exchange.
    let server = hostile_first(|c| {
        reply_with(c, &[])?;
        reply_with(c, &[])?;
        let third = c.next_exchange()?;
        let closing = c.next_exchange()?;
        let mut out = c.honest_reply(&third);
        out.extend(be::ready(b'I'));
        out.extend(c.honest_reply(&closing));
        c.send(&out)
    });
    let s = open(&server);
    let e = quick(|| s.batch(&statements[..3]).map(drop).unwrap_err());
    assert_violation(&e, "a 'Z' message outside any exchange");
    assert_next_right(&s, &server, 2);
}

/// A complete reply injected before a batch's first answer shifts every answer by one; the
/// batch's last real answer arrives in a later read. The batch's closing Sync catches it: the
/// batch fails as a whole (none of its shifted answers is returned) and the next statement gets
/// its own answer.
#[test]
fn a_reply_injected_into_a_batch_fails_the_batch_however_the_replies_are_split() {
    let statements: Vec<pgsess::conn::BatchStatement> = ["a", "b", "c"]
        .iter()
        .map(|w| pgsess::conn::BatchStatement { sql: "SELECT $1".into(), params: vec![Some(w.as_bytes().to_vec())] })
        .collect();
    let server = hostile_first(|c| {
        let first = c.next_exchange()?;
        let mut out = concat(&[&be::parse_complete(), &be::bind_complete(), &rows_of("INJECTED"), &be::ready(b'I')]);
        out.extend(c.honest_reply(&first));
        c.send(&out)?;
        reply_with(c, &[])?;
        let third = c.next_exchange()?;
        std::thread::sleep(Duration::from_millis(150));
        c.reply_normally(&third)
    });
    let s = open(&server);
    let e = quick(|| s.batch(&statements).map(drop).unwrap_err());
    assert_violation(&e, "closing Sync");
    assert_next_right(&s, &server, 2);
}

// Item 2: lengths.

/// One case of a hostile length: what follows the statement's reply begins, and what the
/// error says.
fn length_case(name: &str, bytes: Vec<u8>, sqlstate: &str, what: &str) {
    let sent = bytes.clone();
    let server = hostile_first(move |c| {
        answer_with(c, &sent)?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_eq!(e.sqlstate(), Some(sqlstate), "{name}: {e}");
    assert_eq!(e.code, Code::PGSESS_OPERATIONAL_ERROR, "{name}: {e}");
    assert!(e.message.contains(what), "{name}: wanted {what:?} in {e}");
    assert_next_right(&s, &server, 2);
}

#[test]
fn negative_absurd_and_short_lengths_are_protocol_violations_found_before_any_allocation() {
    let t = be::row_description(&[("?column?", 25)]);
    length_case("CommandComplete -1", be::raw(b'C', -1, &[]), "08P01", "of length -1");
    length_case("DataRow -1", concat(&[&t, &be::raw(b'D', -1, &[])]), "08P01", "of length -1");
    length_case("ErrorResponse 2^31-1", be::raw(b'E', i32::MAX, b"SERROR\0"), "08P01", "longer than");
    length_case("CommandComplete 2^31-1", be::raw(b'C', i32::MAX, b"SELECT"), "08P01", "lost sync");
    length_case("RowDescription 2^31-1", be::raw(b'T', i32::MAX, &[0, 1]), "08P01", "longer than");
    length_case("NoticeResponse 2^31-1", be::raw(b'N', i32::MAX, &[]), "08P01", "longer than");
    length_case("ReadyForQuery length 3", be::raw(b'Z', 3, &[]), "08P01", "of length 3");
    length_case("CommandComplete length 0", be::raw(b'C', 0, &[]), "08P01", "of length 0");
    let long_status = be::parameter_status("application_name", &"x".repeat(40_000));
    length_case("ParameterStatus of 40 kB", concat(&[&t, &long_status]), "08P01", "longer than");
    // A DataRow claiming 2 GiB goes past the default max_result_bytes (1 GiB) at once.
    length_case("DataRow 2^31-1", concat(&[&t, &be::raw(b'D', i32::MAX, &[0, 1])]), "54000", "max_result_bytes");
}

#[test]
fn a_long_error_report_within_its_limit_is_read_whole() {
    let detail = "d".repeat(500_000);
    let server = hostile_first(move |c| {
        let e = be::error_fields(&[(b'S', "ERROR"), (b'V', "ERROR"), (b'C', "22000"), (b'M', "long"), (b'D', &detail)]);
        answer_with(c, &concat(&[&e, &be::ready(b'I')]))
    });
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_eq!(
        (e.code, e.sqlstate(), e.detail().map(str::len)),
        (Code::PGSESS_DATA_ERROR, Some("22000"), Some(500_000))
    );
    assert_next_right(&s, &server, 1);
}

#[test]
fn with_no_result_limit_a_huge_declared_row_is_read_only_as_its_bytes_arrive() {
    // max_result_bytes 0: the 2 GiB DataRow is allowed, but room is made only for what
    // arrives (1 MiB here, then the server closes): no 2 GiB reservation, no abort.
    let server = hostile_first(|c| {
        c.next_exchange()?;
        let mut out = be::row_description(&[("?column?", 25)]);
        out.extend(be::raw(b'D', i32::MAX, &[0, 1, 0x7f, 0xff, 0xff, 0xf9]));
        out.extend(vec![b'x'; 1 << 20]);
        c.send(&out)?;
        sleep(Duration::from_millis(100));
        Err(io::Error::new(io::ErrorKind::UnexpectedEof, "close"))
    });
    let mut o = options(&server);
    o.set_max_result_bytes(0);
    let s = Session::open("fake", &o).unwrap();
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_eq!((e.code, e.sqlstate()), (Code::PGSESS_OPERATIONAL_ERROR, Some("08006")), "{e}");
    assert!(e.message.contains("server closed the connection unexpectedly"), "{e}");
    assert_next_right(&s, &server, 2);
}

// Item 4: a partial message.

#[test]
fn a_partial_message_while_idle_fails_the_checkout_check_even_without_a_statement_timeout() {
    for partial in [&b"T\0\0\0\x20ab"[..], b"A\0\0\0\x40\0\0", b"S\0", b"Z"] {
        let bytes = partial.to_vec();
        let sent = Sent::default();
        let raised = sent.clone();
        let server = hostile_first(move |c| {
            reply_with(c, &[])?;
            sleep(Duration::from_millis(50));
            c.send(&bytes)?;
            raised.raise();
            c.go_silent()
        });
        let mut o = options(&server);
        o.set_statement_timeout_ms(0);
        let s = Session::open("fake", &o).unwrap();
        assert_eq!(value(&s, "SELECT 'one'").unwrap(), "one");
        sent.wait();
        assert_next_right(&s, &server, 2);
    }
}

#[test]
fn a_partial_message_after_a_reply_is_a_violation_unless_it_may_be_the_start_of_an_unasked_one() {
    let server = hostile_first(|c| {
        reply_with(c, b"Z\0\0")?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_violation(&e, "part of a 'Z' message");
    assert_next_right(&s, &server, 2);

    // The start of a notice may be followed by its rest later: the statement stands, and the
    // connection, found with half a message at the next checkout, is discarded then.
    let server = hostile_first(|c| {
        reply_with(c, b"N\0\0\0\x40SNOT")?;
        c.go_silent()
    });
    let mut o = options(&server);
    o.set_statement_timeout_ms(0);
    let s = Session::open("fake", &o).unwrap();
    assert_eq!(quick(|| value(&s, "SELECT 'one'").unwrap()), "one");
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_notification_split_across_writes_after_a_reply_is_waited_for_not_refused() {
    let server = hostile_first(|c| {
        let n = be::notification(77, "chan", "payload");
        let (head, rest) = n.split_at(7);
        reply_with(c, head)?;
        sleep(Duration::from_millis(30));
        c.send(rest)
    });
    let s = open(&server);
    assert_eq!(quick(|| value(&s, "SELECT 'one'").unwrap()), "one");
    assert_next_right(&s, &server, 1);
}

// Item 5: memory.

#[test]
fn a_flood_of_notices_keeps_the_last_thousand_and_counts_the_rest() {
    let n: usize = 50_000 / slowdown() as usize;
    let server = hostile_first(move |c| {
        let ex = c.next_exchange()?;
        let mut out = Vec::with_capacity(n * 48);
        for i in 0..n {
            out.extend(be::notice(&format!("n{i}")));
        }
        out.extend(c.honest_reply(&ex));
        c.send(&out)
    });
    let s = open(&server);
    let r = quick(|| s.query("SELECT 'one'", &[]).unwrap());
    assert_eq!(r.set.value(0, 0), Some(&b"one"[..]));
    assert_eq!(r.set.notices.len(), pgsess::rows::NOTICES_PER_RESULT);
    assert_eq!(r.set.notices_dropped, (n - pgsess::rows::NOTICES_PER_RESULT) as u64);
    assert_eq!(r.set.notices.back().unwrap().to_str().unwrap(), format!("NOTICE:  n{}\n", n - 1));
    let results: *const pgsess::ffi::results::pgsess_results = (&*r as *const pgsess::Results).cast();
    // SAFETY: `r` is live; a results handle is a pointer to its `Results`.
    unsafe {
        assert_eq!(pgsess::ffi::results::pgsess_results_notices_dropped(results), (n - 1000) as u64);
        assert_eq!(pgsess::ffi::results::pgsess_results_notice_count(results), 1000);
        assert_eq!(pgsess::ffi::results::pgsess_results_notices_dropped(std::ptr::null()), 0);
    }
    assert_eq!(s.notice_count(), 50);
    assert_eq!(s.notices_dropped(), (n - 50) as u64);
    drop(r);
    assert_next_right(&s, &server, 1);
}

#[test]
fn large_notices_are_kept_within_a_byte_bound_and_one_too_large_is_a_violation() {
    let server = hostile_first(|c| {
        let ex = c.next_exchange()?;
        let mut out = Vec::new();
        for i in 0..10 {
            out.extend(be::notice(&format!("{i}{}", "x".repeat(900_000))));
        }
        out.extend(c.honest_reply(&ex));
        c.send(&out)?;
        answer_with(c, &be::notice(&"y".repeat(1_500_000)))?;
        c.go_silent()
    });
    let s = open(&server);
    let r = quick(|| s.query("SELECT 'one'", &[]).unwrap());
    assert_eq!((r.set.notices.len(), r.set.notices_dropped), (1, 9));
    assert!(r.set.notices[0].to_str().unwrap().starts_with("NOTICE:  9x"));
    drop(r);
    let e = quick(|| value(&s, "SELECT 'two'").unwrap_err());
    assert_violation(&e, "longer than");
    assert_next_right(&s, &server, 2);
}

/// `n` ParameterStatus messages of distinct names.
fn parameter_flood(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| be::parameter_status(&format!("p{i}"), "v")).collect()
}

#[test]
fn a_flood_of_parameter_names_is_a_violation_in_a_reply_and_while_idle() {
    let server = hostile_first(|c| {
        let ex = c.next_exchange()?;
        let mut out = parameter_flood(100_000);
        out.extend(c.honest_reply(&ex));
        c.send(&out)?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_violation(&e, "more parameters than a server has");
    assert_next_right(&s, &server, 2);

    let sent = Sent::default();
    let raised = sent.clone();
    let server = hostile_first(move |c| {
        let flood = parameter_flood(100_000);
        reply_with(c, &[])?;
        sleep(Duration::from_millis(50));
        c.send(&flood)?;
        raised.raise();
        c.go_silent()
    });
    let s = open(&server);
    assert_eq!(value(&s, "SELECT 'one'").unwrap(), "one");
    sent.wait();
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_stream_keeps_to_its_chunk_size_and_an_abandoned_one_is_read_through() {
    let server = hostile_first(move |c| {
        // Parse, Bind, Describe, Execute (no row limit), Sync: then every row at once.
        let ex = c.next_exchange()?;
        assert!(ex.messages.iter().any(|m| matches!(m, Frontend::Execute { max_rows: 0, .. })), "{ex:?}");
        let mut out = concat(&[&be::parse_complete(), &be::bind_complete(), &be::row_description(&[("x", 25)])]);
        for i in 0..100_000 {
            out.extend(be::data_row(&[Some(format!("{i}").as_bytes())]));
        }
        out.extend(be::command_complete("SELECT 100000"));
        out.extend(be::ready(b'I'));
        c.send(&out)
    });
    let s = open(&server);
    let mut stream = quick(|| s.query_stream("SELECT x FROM big", &[Some(&b"1"[..])], 100).unwrap());
    for _ in 0..3 {
        let chunk = stream.next_chunk().unwrap().unwrap();
        assert_eq!(chunk.set.nrows(), 100);
    }
    // Dropped early: the rest of the reply is read through, the connection stays in step.
    quick(|| drop(stream));
    assert_next_right(&s, &server, 1);
}

#[test]
fn a_result_past_max_result_bytes_fails_cancels_and_discards_the_connection() {
    let server = hostile_first(|c| {
        let ex = c.next_exchange()?;
        // Within the bound: 5 rows of 1000 bytes.
        let row = vec![b'r'; 1000];
        let mut out = be::row_description(&[("?column?", 25)]);
        for _ in 0..5 {
            out.extend(be::data_row(&[Some(&row[..])]));
        }
        out.extend(be::command_complete("SELECT 5"));
        out.extend(be::ready(b'I'));
        c.send(&out)?;
        let _ = ex;
        // Past it: 100 rows of 1000 bytes.
        c.next_exchange()?;
        let mut out = be::row_description(&[("?column?", 25)]);
        for _ in 0..100 {
            out.extend(be::data_row(&[Some(&row[..])]));
        }
        out.extend(be::command_complete("SELECT 100"));
        out.extend(be::ready(b'I'));
        c.send(&out)?;
        c.go_silent()
    });
    let mut o = options(&server);
    o.set_max_result_bytes(10_000);
    let s = Session::open("fake", &o).unwrap();
    assert_eq!(s.query("SELECT 'five'", &[]).unwrap().set.nrows(), 5);
    let e = quick(|| value(&s, "SELECT 'hundred'").unwrap_err());
    assert_eq!((e.code, e.sqlstate()), (Code::PGSESS_OPERATIONAL_ERROR, Some("54000")), "{e}");
    assert!(e.message.contains("max_result_bytes (10000 bytes)"), "{e}");
    let t = Instant::now();
    while server.cancels() == 0 && t.elapsed() < fast() {
        sleep(Duration::from_millis(10));
    }
    assert_eq!(server.cancels(), 1, "the statement is cancelled on the server");
    assert_next_right(&s, &server, 2);

    // A row whose declared length alone passes the bound fails before its bytes arrive.
    let server = hostile_first(|c| {
        let t = be::row_description(&[("?column?", 25)]);
        answer_with(c, &concat(&[&t, &be::raw(b'D', 1_000_000, &[0, 1])]))?;
        c.go_silent()
    });
    let mut o = options(&server);
    o.set_max_result_bytes(10_000);
    let s = Session::open("fake", &o).unwrap();
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_eq!(e.sqlstate(), Some("54000"), "{e}");
    assert_next_right(&s, &server, 2);
}

// Item 8, the reader's parts.

#[test]
fn an_unknown_transaction_status_leaves_the_answer_but_discards_the_connection_at_return() {
    let server = hostile_first(|c| answer_with(c, &concat(&[&rows_of("one"), &be::ready(b'X')])));
    let s = open(&server);
    assert_eq!(quick(|| value(&s, "SELECT 'one'").unwrap()), "one");
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_client_encoding_change_in_a_reply_fails_the_statement_and_discards_the_connection() {
    let server = hostile_first(|c| {
        let status = be::parameter_status("client_encoding", "LATIN1");
        answer_with(c, &concat(&[&rows_of("one"), &status, &be::ready(b'I')]))?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_eq!(e.code, Code::PGSESS_NOT_SUPPORTED_ERROR, "{e}");
    assert!(e.message.contains("client_encoding to \"LATIN1\""), "{e}");
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_client_encoding_change_while_idle_is_refused_at_checkout() {
    let sent = Sent::default();
    let raised = sent.clone();
    let server = hostile_first(move |c| {
        reply_with(c, &[])?;
        sleep(Duration::from_millis(50));
        c.send(&be::parameter_status("client_encoding", "SQL_ASCII"))?;
        raised.raise();
        Ok(())
    });
    let s = open(&server);
    assert_eq!(value(&s, "SELECT 'one'").unwrap(), "one");
    sent.wait();
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_client_encoding_other_than_utf8_at_start_up_refuses_the_connection() {
    let server = FakeServer::start(|c| {
        let mut out = be::auth_ok();
        out.extend(be::parameter_status("client_encoding", "LATIN1"));
        out.extend(be::backend_key_data(1, 2));
        out.extend(be::ready(b'I'));
        c.send(&out)?;
        c.serve_rest()
    });
    let mut o = options(&server);
    o.set_checkout_timeout_ms(500).unwrap();
    let e = quick(|| Session::open("fake", &o).map(drop).unwrap_err());
    assert!(e.message.contains("client_encoding to \"LATIN1\""), "{e}");
    assert_eq!(e.code, Code::PGSESS_NOT_SUPPORTED_ERROR, "{e}");
}

#[test]
fn utf8_announced_again_is_accepted() {
    let server = hostile_first(|c| {
        let status = be::parameter_status("client_encoding", "UTF8");
        answer_with(c, &concat(&[&rows_of("one"), &status, &be::ready(b'I')]))
    });
    let s = open(&server);
    assert_eq!(quick(|| value(&s, "SELECT 'one'").unwrap()), "one");
    assert_next_right(&s, &server, 1);
}

/// Run `sql` through the C API on a session of `server`, returning the results (NULL on
/// failure) and the error (NULL on success). The caller frees both, and the session.
unsafe fn c_query(
    server: &FakeServer,
    sql: &str,
) -> (
    *mut pgsess::ffi::session::pgsess_session,
    *mut pgsess::ffi::results::pgsess_results,
    *mut pgsess::ffi::pgsess_error,
) {
    use pgsess::ffi::{options::*, session::*};
    let opts = pgsess_options_new();
    let url = CString::new(server.uri()).unwrap();
    assert_eq!(pgsess_options_set_db_url(opts, url.as_ptr()), Code::PGSESS_OK);
    assert_eq!(pgsess_options_set_max_result_bytes(opts, 1 << 20), Code::PGSESS_OK);
    let mut err = std::ptr::null_mut();
    let session = pgsess_open(c"fake".as_ptr(), opts, &mut err);
    pgsess_options_free(opts);
    assert!(!session.is_null());
    let sql = CString::new(sql).unwrap();
    let results = pgsess_query(session, sql.as_ptr(), 0, std::ptr::null(), &mut err);
    (session, results, err)
}

#[test]
fn an_error_report_without_sqlstate_gives_null_from_the_c_accessor() {
    let server = hostile_first(|c| {
        let e = be::error_fields(&[(b'S', "ERROR"), (b'V', "ERROR"), (b'M', "no sqlstate here")]);
        answer_with(c, &concat(&[&e, &be::ready(b'I')]))
    });
    use pgsess::ffi::error::*;
    // SAFETY: every handle is used while live and freed once.
    unsafe {
        let (session, results, err) = c_query(&server, "SELECT 'one'");
        assert!(results.is_null() && !err.is_null());
        assert_eq!(pgsess_error_code(err), Code::PGSESS_DATABASE_ERROR);
        assert!(pgsess_error_sqlstate(err).is_null(), "NULL, not \"\"");
        assert!(pgsess_error_field(err, b'C'.into()).is_null());
        assert_eq!(CStr::from_ptr(pgsess_error_field(err, b'M'.into())).to_str().unwrap(), "no sqlstate here");
        assert_eq!(CStr::from_ptr(pgsess_error_message(err)).to_str().unwrap(), "no sqlstate here");
        pgsess_error_free(err);
        pgsess::ffi::session::pgsess_close(session);
    }
    assert_eq!(server.connections(), 1, "the connection stays in step: an ordinary error");
}

#[test]
fn a_row_count_beyond_64_bits_keeps_its_digits() {
    const DIGITS: &str = "123456789012345678901234567890";
    let server = hostile_first(|c| {
        answer_with(c, &concat(&[&be::command_complete(&format!("INSERT 0 {DIGITS}")), &be::ready(b'I')]))
    });
    use pgsess::ffi::results::*;
    // SAFETY: every handle is used while live and freed once.
    unsafe {
        let (session, results, err) = c_query(&server, "INSERT INTO t VALUES (1)");
        assert!(err.is_null() && !results.is_null());
        assert_eq!(pgsess_results_rows_affected(results), u64::MAX);
        assert_eq!(CStr::from_ptr(pgsess_results_rows_affected_text(results)).to_str().unwrap(), DIGITS);
        assert_eq!(pgsess_results_count(results), i64::MAX);
        assert!(pgsess_results_rows_affected_text(std::ptr::null()).is_null());
        pgsess_results_free(results);
        pgsess::ffi::session::pgsess_close(session);
    }
    let s = open(&server);
    let r = s.query("SELECT 'x'", &[]).unwrap();
    assert_eq!(r.set.rows_affected_digits().to_str().unwrap(), "1", "the honest tag SELECT 1");
    drop(r);
    let r = s.query("BEGIN", &[]).unwrap();
    assert_eq!(r.set.rows_affected_digits().to_str().unwrap(), "", "no count: \"\" as PQcmdTuples");
}

#[test]
fn a_second_command_complete_for_one_statement_is_a_violation_and_a_simple_string_of_two_is_not() {
    let server = hostile_first(|c| {
        let mut out = concat(&[&be::parse_complete(), &be::bind_complete()]);
        out.extend(rows_of("one"));
        out.extend(be::command_complete("SELECT 0"));
        out.extend(be::ready(b'I'));
        answer_with(c, &out)?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| s.query("SELECT $1", &[Some(&b"one"[..])]).map(drop).unwrap_err());
    assert_violation(&e, "a second CommandComplete");
    assert_next_right(&s, &server, 2);
    // Several statements in one simple Query: one CommandComplete each, the last one's rows.
    assert_eq!(value(&s, "SELECT 'a'; SELECT 'b'").unwrap(), "b");
    assert_eq!(server.connections(), 2);
}

#[test]
fn a_data_row_after_command_complete_is_a_violation() {
    let server = hostile_first(|c| {
        let extra = be::data_row(&[Some(&b"APPENDED"[..])]);
        answer_with(c, &concat(&[&rows_of("one"), &extra, &be::ready(b'I')]))?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_violation(&e, "a DataRow outside a result's rows");
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_format_code_other_than_the_one_asked_for_is_a_violation() {
    let cols = vec![("?column?".to_string(), 25)];
    // Text asked for (a parameterised statement), binary described.
    let binary = be::row_description_formats(&cols, &[1]);
    let server = hostile_first(move |c| {
        let mut out = concat(&[&be::parse_complete(), &be::bind_complete(), &binary]);
        out.extend(be::data_row(&[Some(&b"one"[..])]));
        out.extend(be::command_complete("SELECT 1"));
        out.extend(be::ready(b'I'));
        answer_with(c, &out)?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| s.query("SELECT $1", &[Some(&b"one"[..])]).map(drop).unwrap_err());
    assert_violation(&e, "format 1 where the statement asked for text (0)");
    assert_next_right(&s, &server, 2);

    // A format code the protocol does not have, on the simple protocol.
    let odd = be::row_description_formats(&[("?column?".to_string(), 25)], &[7]);
    let server = hostile_first(move |c| {
        let row = be::data_row(&[Some(&b"one"[..])]);
        answer_with(c, &concat(&[&odd, &row, &be::command_complete("SELECT 1"), &be::ready(b'I')]))?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_violation(&e, "format 7 where the statement asked for text (0) or binary (1)");
    assert_next_right(&s, &server, 2);

    // Binary asked for, text described; the honest binary answer still reads.
    let text = be::row_description(&[("?column?", 23)]);
    let server = hostile_first(move |c| {
        let mut out = concat(&[&be::parse_complete(), &be::bind_complete(), &text]);
        out.extend(be::data_row(&[Some(&b"1"[..])]));
        out.extend(be::command_complete("SELECT 1"));
        out.extend(be::ready(b'I'));
        answer_with(c, &out)?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| s.query_binary("SELECT 1", &[], &[]).map(drop).unwrap_err());
    assert_violation(&e, "format 0 where the statement asked for binary (1)");
    let r = s.query_binary("SELECT 7", &[], &[]).unwrap();
    assert_eq!(r.set.get_int64(0, 0), Ok(7));
    drop(r);
    assert_next_right(&s, &server, 2);
}

#[test]
fn a_typed_statement_s_columns_must_come_in_the_formats_it_bound() {
    // The first run learns the statement's types (int4: bound in binary from the second run);
    // the second is answered with the column in text, then with two columns for one format.
    for (hostile, what) in [
        (
            be::row_description_formats(&[("v".to_string(), 23)], &[0]),
            "column 0 in format 0 where the statement asked for 1",
        ),
        (
            be::row_description_formats(&[("v".to_string(), 23), ("w".to_string(), 23)], &[1, 1]),
            "the server sent 2 columns where the statement bound formats for 1",
        ),
    ] {
        let server = hostile_first(move |c| {
            reply_with(c, &[])?;
            let mut out = concat(&[&be::bind_complete(), &hostile]);
            out.extend(be::data_row(&[Some(&b"7"[..])]));
            out.extend(be::command_complete("SELECT 1"));
            out.extend(be::ready(b'I'));
            answer_with(c, &out)?;
            c.go_silent()
        });
        let mut o = options(&server);
        o.set_statement_cache(4).unwrap();
        let s = Session::open("fake", &o).unwrap();
        assert_eq!(s.query_typed("SELECT 7", &[]).unwrap().set.get_int64(0, 0), Ok(7));
        let e = quick(|| s.query_typed("SELECT 7", &[]).map(drop).unwrap_err());
        assert_violation(&e, what);
        // A new connection: learns again, then reads binary.
        for _ in 0..2 {
            assert_eq!(s.query_typed("SELECT 7", &[]).unwrap().set.get_int64(0, 0), Ok(7));
        }
        assert_next_right(&s, &server, 2);
    }
}

#[test]
fn a_field_cut_short_in_a_data_row_is_a_malformed_data_row() {
    let server = hostile_first(|c| {
        // One value claiming 10 bytes, 3 present, inside a well-framed message.
        let mut body = 1i16.to_be_bytes().to_vec();
        body.extend(10i32.to_be_bytes());
        body.extend(b"abc");
        let t = be::row_description(&[("?column?", 25)]);
        answer_with(c, &concat(&[&t, &be::msg(b'D', &body), &be::command_complete("SELECT 1"), &be::ready(b'I')]))?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_violation(&e, "the server sent a malformed DataRow");
    assert_next_right(&s, &server, 2);

    // A DataRow with more values than the RowDescription has columns.
    let server = hostile_first(|c| {
        let t = be::row_description(&[("?column?", 25)]);
        let d = be::data_row(&[Some(&b"a"[..]), Some(&b"b"[..])]);
        answer_with(c, &concat(&[&t, &d, &be::command_complete("SELECT 1"), &be::ready(b'I')]))?;
        c.go_silent()
    });
    let s = open(&server);
    let e = quick(|| value(&s, "SELECT 'one'").unwrap_err());
    assert_violation(&e, "a DataRow of 2 values for a RowDescription of 1 columns");
    assert_next_right(&s, &server, 2);
}

#[test]
fn what_a_server_sends_unasked_after_a_reply_is_accepted_and_a_fatal_error_ends_the_connection() {
    let server = hostile_first(|c| {
        let extra = concat(&[
            &be::notification(77, "chan", "payload"),
            &be::notice("after the reply"),
            &be::parameter_status("application_name", "renamed"),
        ]);
        reply_with(c, &extra)
    });
    let s = open(&server);
    assert_eq!(quick(|| value(&s, "SELECT 'one'").unwrap()), "one");
    assert_next_right(&s, &server, 1);

    let server = hostile_first(|c| {
        reply_with(c, &be::fatal("57P01", "terminating connection due to administrator command"))?;
        c.go_silent()
    });
    let s = open(&server);
    assert_eq!(quick(|| value(&s, "SELECT 'one'").unwrap()), "one", "the answer before the FATAL stands");
    assert_next_right(&s, &server, 2);
}
