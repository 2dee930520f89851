//! The real connection code against a fake server whose answers the input scripts
//! (`server_script.rs` has the format): a fake server thread on loopback (tests/support/fake.rs),
//! the library connecting through `pgsess::Session::open`, running simple, parameterised and
//! binary statements, streams, pipelined batches and transactions. Each input makes a server of
//! its own, so a pool of its own; the pool is taken out of the registry when the input ends.
//!
//! The input runs in two parts:
//! 1. Hostile: the scripted connections answer as the script says (any bytes, well formed or not,
//!    in one write or in pieces, late, or not at all), while the client runs the script's ops.
//! 2. Honest: the server is told to answer every exchange honestly from now on, the target waits
//!    until everything the script sent has reached the client's sockets, then runs, three times,
//!    a statement of each kind, a pipelined batch and a transaction on the hostile session and on
//!    a new session of the same pool, each with its own answer.
//!
//! Properties (a panic is a finding):
//! - nothing panics (the library, or the target's checks below);
//! - no wrong answer: in the honest part each statement returns exactly its own answer or an
//!   error, and the last round has no errors (the pool has recovered); in both parts, while the
//!   server has written every reply in one small write, no statement succeeds before the server
//!   has begun answering it, and no COMMIT reports success before the server answered a COMMIT
//!   (`racy` says when that cannot be told apart from a late reply, and the check is skipped);
//! - no chunk of a stream has more rows than it asked for;
//! - the JSON of every result parses;
//! - no call waits past its bound: opening within the checkout timeout, any other call within
//!   the checkout timeout, statement timeout, cancel grace (set small here) and reset timeout
//!   added up (plus slack for a loaded machine under AddressSanitizer);
//! - the library's heap stays within a bound of the bytes the server sent (a message's declared
//!   length is no reason to allocate), and within what its caps allow whatever the server sends
//!   (max_result_bytes set small here, the notices and parameters kept): counted by this
//!   target's allocator, apart from the fake server's threads; libFuzzer's -malloc_limit_mb and
//!   -rss_limit_mb (fuzz/fuzz_targets/server.args) catch a single huge allocation.
#![no_main]

#[path = "../../tests/support/fake.rs"]
mod fake;
#[allow(dead_code)] // encode() is the seed writer's
mod server_script;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake::{be, Exchange, ExchangeKind, FakeConn, FakeServer, Frontend};
use libfuzzer_sys::fuzz_target;
use pgsess::conn::{BatchStatement, Param};
use pgsess::session::RowStream;
use pgsess::{Results, Session, SessionOptions, Transaction};
use server_script::{Field, Op, Script, Step, MAX_REPLY_BYTES, OIDS, PARAMS, TAGS};

/// The client's settings: small, so that every bound is short.
const STATEMENT_TIMEOUT: Duration = Duration::from_millis(200);
const CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a cancelled statement may wait for the server's answer (the cancel grace setting).
const CANCEL_GRACE: Duration = Duration::from_millis(300);
/// The most row data one result (or stream chunk) may hold (the max_result_bytes setting).
const MAX_RESULT_BYTES: u64 = 4 << 20;
/// How long returning a connection may spend rolling back (the library's RESET_TIMEOUT).
const RESET_TIMEOUT: Duration = Duration::from_secs(5);
/// Scheduling slack on a loaded machine under AddressSanitizer.
const SLACK: Duration = Duration::from_millis(1000);
/// Opening a session (its pool's first connection) is bounded by the checkout timeout.
const OPEN_BOUND: Duration = CHECKOUT_TIMEOUT.saturating_add(SLACK);
/// Any other call: a checkout, a statement (timeout and cancel grace), a reset on return.
const CALL_BOUND: Duration = CHECKOUT_TIMEOUT
    .saturating_add(STATEMENT_TIMEOUT)
    .saturating_add(CANCEL_GRACE)
    .saturating_add(RESET_TIMEOUT)
    .saturating_add(SLACK);
/// A write at most this large arrives whole, in one piece, before the server reads on.
const SMALL_WRITE: usize = 16 << 10;
/// The library's heap may grow by this much plus `HEAP_PER_BYTE_SENT` times what the server sent.
const HEAP_FIXED: isize = 64 << 20;
const HEAP_PER_BYTE_SENT: isize = 8;
/// Whatever the server sends, the library's heap stays under this: the results alive at once
/// (at most six: two held, an op's, a batch's three; each within max_result_bytes, a cell's
/// bookkeeping and a buffer's doubling at most four times that), the notices a session keeps
/// (50, each at most a report message's 1 MiB, kept twice: as sent and as text), the largest
/// message of another type (8 MiB) and the rest.
const HEAP_CAPPED: isize =
    6 * 4 * MAX_RESULT_BYTES as isize + 2 * pgsess::session::NOTICES_KEPT as isize * (1 << 20) + (8 << 20) + HEAP_FIXED;
/// The highest SCRAM iteration count the fake sends: the client pays for each (as libpq does),
/// so a count of billions would make every input a timeout.
const MAX_SCRAM_ITERATIONS: u32 = 1 << 16;
/// Results larger than this are not rendered as JSON (a time bound, not a property).
const JSON_CELLS: usize = 1 << 16;

// ---------------------------------------------------------------------------------------------
// Heap accounting.

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Set on the fake server's threads (and around the target's own big allocations): their
    /// heap is not the library's.
    static UNCOUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    !UNCOUNTED.try_with(Cell::get).unwrap_or(true)
}

fn uncounted<T>(f: impl FnOnce() -> T) -> T {
    let before = UNCOUNTED.with(|u| u.replace(true));
    let out = f();
    UNCOUNTED.with(|u| u.set(before));
    out
}

// SAFETY: every call goes to the system allocator; the counters are only atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() && counted() {
            let live = LIVE.fetch_add(layout.size() as isize, SeqCst) + layout.size() as isize;
            PEAK.fetch_max(live, SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if counted() {
            LIVE.fetch_sub(layout.size() as isize, SeqCst);
        }
        System.dealloc(p, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() && counted() {
            let live = LIVE.fetch_add(layout.size() as isize, SeqCst) + layout.size() as isize;
            PEAK.fetch_max(live, SeqCst);
        }
        p
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = System.realloc(p, layout, new_size);
        if !q.is_null() && counted() {
            let delta = new_size as isize - layout.size() as isize;
            let live = LIVE.fetch_add(delta, SeqCst) + delta;
            PEAK.fetch_max(live, SeqCst);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// The fake server's side.

/// One connection the fake accepted, for the target to wait on or close.
struct Live {
    stream: TcpStream,
    /// Writing (or about to write) a reply, rather than waiting for the client.
    busy: Arc<AtomicBool>,
    /// Its script has returned.
    ended: Arc<AtomicBool>,
}

struct ServerState {
    script: Script,
    /// Answer everything honestly from now on.
    honest: AtomicBool,
    /// Some reply came in pieces, late or large: a statement may then legitimately take bytes
    /// the server wrote before it read the statement, and the answer-order checks are off.
    racy: AtomicBool,
    /// Exchanges the server began answering (counted before the first byte is written).
    answered: AtomicUsize,
    /// Of those, COMMITs.
    commits_answered: AtomicUsize,
    bytes_sent: AtomicU64,
    conns: Mutex<Vec<Live>>,
}

/// Marks a connection's handler idle and ended when its script returns, however it returns.
struct EndGuard(Arc<AtomicBool>, Arc<AtomicBool>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.store(false, SeqCst);
        self.1.store(true, SeqCst);
    }
}

/// How a reply ended.
enum Sent {
    /// `ready`: the last bytes written were a ReadyForQuery (so the server is idle, as far as it
    /// knows); `wrote`: the reply wrote anything at all.
    More { ready: bool, wrote: bool },
    /// A CLOSE step: the script ends the connection.
    Closed,
}

/// Writes one reply's bytes, keeping the counts the checks need.
struct Sender<'a> {
    srv: &'a ServerState,
    /// An exchange's reply (counted in `answered`) rather than the startup's.
    exchange: bool,
    commit: bool,
    writes: usize,
    /// The last bytes written (up to a ReadyForQuery's 6).
    tail: Vec<u8>,
}

impl Sender<'_> {
    fn flush(&mut self, c: &mut FakeConn, out: &mut Vec<u8>) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        if self.exchange && self.writes == 0 {
            if self.commit {
                // Gives a client that took an earlier reply for the COMMIT's time to be seen.
                std::thread::sleep(Duration::from_millis(1));
                self.srv.commits_answered.fetch_add(1, SeqCst);
            }
            self.srv.answered.fetch_add(1, SeqCst);
        }
        if out.len() > SMALL_WRITE {
            self.srv.racy.store(true, SeqCst);
        }
        self.writes += 1;
        self.tail.extend(&out[out.len().saturating_sub(6)..]);
        self.tail.drain(..self.tail.len().saturating_sub(6));
        self.srv.bytes_sent.fetch_add(out.len() as u64, SeqCst);
        let sent = c.send(out);
        out.clear();
        sent
    }
}

fn cstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend(s);
    out.push(0);
}

fn error_message(kind: u8, rep: u32) -> Vec<u8> {
    let f = |fields: &[(u8, &str)]| be::error_fields(fields);
    match kind % 13 {
        0 => be::error("42601", "syntax error at or near \"x\""),
        1 => f(&[(b'S', "ERROR"), (b'M', "an error without a SQLSTATE")]),
        2 => be::fatal("57P01", "terminating connection due to administrator command"),
        3 => be::msg(b'E', &[0]),
        4 => be::error("57014", "canceling statement due to user request"),
        5 => be::error("40001", "could not serialize access due to concurrent update"),
        6 => be::error("25006", "cannot execute INSERT in a read-only transaction"),
        7 => be::error("XX000", &"e".repeat(65_536 + rep as usize % 1024)),
        8 => f(&[(b'S', "PANIC"), (b'V', "PANIC"), (b'C', "XX000"), (b'M', "panic")]),
        9 => be::msg(b'E', b"SERROR\0C42601\0Munterminated"),
        10 => f(&[
            (b'S', "ERROR"),
            (b'V', "ERROR"),
            (b'C', "0A000"),
            (b'M', "cached plan must not change result type"),
            (b'R', "RevalidateCachedQuery"),
        ]),
        11 => be::error("26000", "prepared statement \"pgsess_1\" does not exist"),
        _ => be::error("08P01", "bind message supplies 1 parameters, but prepared statement requires 2"),
    }
}

fn small_message(which: u8) -> Vec<u8> {
    match which % 16 {
        0 => be::parse_complete(),
        1 => be::bind_complete(),
        2 => be::close_complete(),
        3 => be::no_data(),
        4 => be::portal_suspended(),
        5 => be::empty_query(),
        6 => be::parameter_description(&[25]),
        7 => be::msg(b'G', &[0, 0, 1, 0, 0]),
        8 => be::msg(b'H', &[0, 0, 1, 0, 0]),
        9 => be::msg(b'd', b"x\n"),
        10 => be::msg(b'c', &[]),
        11 => be::msg(b'W', &[0, 0, 0]),
        12 => be::msg(b'V', &[0, 0, 0, 1, b'x']),
        13 => be::msg(b'v', &[0, 0, 0, 0, 0, 0, 0, 0]),
        14 => be::msg(b'Q', &[]),
        _ => be::raw(b'Z', 4, &[]),
    }
}

fn auth_message(kind: u8) -> Vec<u8> {
    match kind % 13 {
        0 => be::auth_ok(),
        1 => be::auth_cleartext(),
        2 => be::auth_md5(*b"salt"),
        3 => be::auth_sasl(&["SCRAM-SHA-256"]),
        4 => be::auth_sasl(&["SCRAM-SHA-256-PLUS"]),
        5 => be::auth_sasl(&["X-UNKNOWN"]),
        6 => be::auth_sasl_continue(b"r=,s=,i=x"),
        7 => be::auth_sasl_final(b"v=AAAA"),
        8 => be::auth(7, &[]),
        9 => be::auth(9, &[]),
        10 => be::auth(2, &[]),
        11 => be::auth(99, &[1, 2, 3]),
        _ => be::auth_sasl(&[]),
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Read the client's SASLInitialResponse; answer with a server-first message.
fn scram_first(c: &mut FakeConn, iterations: u32, salt_len: u8, out: &mut Vec<u8>) -> io::Result<()> {
    let (_, body) = c.read_raw()?;
    let text = String::from_utf8_lossy(&body);
    let nonce = text.split(',').find_map(|p| p.strip_prefix("r=")).unwrap_or("").trim_end_matches('\0');
    let salt: Vec<u8> = (0..salt_len).collect();
    let first = format!("r={nonce}fakeservernonce,s={},i={}", base64(&salt), iterations.min(MAX_SCRAM_ITERATIONS));
    out.extend(be::auth_sasl_continue(first.as_bytes()));
    Ok(())
}

/// A step that builds bytes, for the `rep`-th time (0 the first).
fn build(step: &Step, rep: u32, c: &FakeConn, honest: &[u8], out: &mut Vec<u8>) {
    match step {
        Step::Honest => out.extend(honest),
        Step::Msg { tag, body } => out.extend(be::msg(*tag, body)),
        Step::RawLen { tag, len, body } => out.extend(be::raw(*tag, *len, body)),
        Step::Raw(b) => out.extend(b),
        Step::Ready(s) => out.extend(be::ready(*s)),
        Step::Complete { which, raw } => match raw {
            Some(raw) => {
                let mut body = raw.clone();
                body.push(0);
                out.extend(be::msg(b'C', &body));
            }
            None => out.extend(be::command_complete(TAGS[*which as usize % TAGS.len()])),
        },
        Step::RowDesc { ncols, pattern } => {
            let mut body = ncols.to_be_bytes().to_vec();
            for i in 0..*ncols as usize {
                let (oid, format) = pattern[i % pattern.len()];
                cstr(&mut body, format!("c{i}").as_bytes());
                body.extend(0i32.to_be_bytes());
                body.extend(0i16.to_be_bytes());
                body.extend(OIDS[oid as usize % OIDS.len()].to_be_bytes());
                body.extend((-1i16).to_be_bytes());
                body.extend((-1i32).to_be_bytes());
                body.extend(format.to_be_bytes());
            }
            out.extend(be::msg(b'T', &body));
        }
        Step::DataRow { ncols, delta, pattern } => {
            let count = (*ncols as i16).wrapping_add(i16::from(*delta));
            let mut body = count.to_be_bytes().to_vec();
            for i in 0..*ncols as usize {
                match &pattern[i % pattern.len()] {
                    Field::Null => body.extend((-1i32).to_be_bytes()),
                    Field::Text(n) => {
                        body.extend(i32::from(*n).to_be_bytes());
                        let letter = b'a' + ((i + rep as usize) % 26) as u8;
                        body.extend(vec![letter; *n as usize]);
                    }
                    Field::Short { len, have } => {
                        body.extend(i32::from(*len).to_be_bytes());
                        body.extend(vec![b's'; usize::from(*have).min(usize::from(*len).saturating_sub(1))]);
                        break; // the message ends inside this field
                    }
                    Field::Negative => body.extend((-2i32 - rep as i32 % 7).to_be_bytes()),
                    Field::Invalid(n) => {
                        body.extend(i32::from(*n).to_be_bytes());
                        body.extend((0..*n).map(|k| [0xff, 0xfe, 0xc3, 0x28, b'"', b'\\'][k as usize % 6]));
                    }
                }
            }
            out.extend(be::msg(b'D', &body));
        }
        Step::Error(kind) => out.extend(error_message(*kind, rep)),
        Step::Notice { size, scale } => {
            let len = *size as usize * if *scale == 1 { 1024 } else { 1 };
            let text = format!("{rep} {}", "n".repeat(len));
            out.extend(be::notice(&text));
        }
        Step::ParamStatus(which) => {
            let (name, value) = PARAMS[*which as usize % PARAMS.len()];
            if *which as usize % PARAMS.len() == PARAMS.len() - 1 {
                out.extend(be::parameter_status(&format!("{name}{rep}"), value));
            } else {
                out.extend(be::parameter_status(name, value));
            }
        }
        Step::KeyData { forged } => out.extend(be::backend_key_data(forged.unwrap_or(c.pid()), 0x5eed)),
        Step::Notify => out.extend(be::notification(c.pid(), "chan", &format!("payload {rep}"))),
        Step::Small(which) => out.extend(small_message(*which)),
        Step::Auth(kind) => out.extend(auth_message(*kind)),
        Step::Read
        | Step::ScramFirst { .. }
        | Step::Repeat(_)
        | Step::Pause(_)
        | Step::Silence
        | Step::Close
        | Step::Flip { .. }
        | Step::Cut(_) => {}
    }
}

/// Send one scripted reply. `exchange`: the exchange it answers and the honest answer to it;
/// None for the answer to the StartupMessage (whose honest answer is a trust start).
fn run_steps(
    c: &mut FakeConn,
    srv: &ServerState,
    steps: &[Step],
    exchange: Option<(&Exchange, &[u8])>,
) -> io::Result<Sent> {
    let startup_honest;
    let honest = match exchange {
        Some((_, honest)) => honest,
        None => {
            startup_honest = [be::auth_ok(), c.after_auth()].concat();
            &startup_honest[..]
        }
    };
    let commit = exchange.is_some_and(|(ex, _)| ex.sql().trim().eq_ignore_ascii_case("COMMIT"));
    let mut tx = Sender { srv, exchange: exchange.is_some(), commit, writes: 0, tail: Vec::new() };
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Repeat(n) => {
                // The last step that builds bytes, again (a REPEAT of a REPEAT repeats it too).
                let Some(prev) = steps[..i].iter().rev().find(|s| !matches!(s, Step::Repeat(_))) else { continue };
                for rep in 1..=*n {
                    if out.len() > MAX_REPLY_BYTES {
                        break;
                    }
                    build(prev, rep, c, honest, &mut out);
                }
            }
            Step::Pause(ms) => {
                srv.racy.store(true, SeqCst);
                tx.flush(c, &mut out)?;
                std::thread::sleep(Duration::from_millis(u64::from(*ms)));
            }
            Step::Silence => {
                srv.racy.store(true, SeqCst);
                tx.flush(c, &mut out)?;
                if c.wait_for_cancel(c.pid(), Duration::from_secs(1))? {
                    let status = if c.tx_status() == b'I' { b'I' } else { b'E' };
                    out.extend(be::error("57014", "canceling statement due to user request"));
                    out.extend(be::ready(status));
                }
            }
            Step::Close => {
                tx.flush(c, &mut out)?;
                return Ok(Sent::Closed);
            }
            Step::Read if exchange.is_none() => {
                tx.flush(c, &mut out)?;
                c.read_raw()?;
            }
            Step::ScramFirst { iterations, salt_len } if exchange.is_none() => {
                tx.flush(c, &mut out)?;
                scram_first(c, *iterations, *salt_len, &mut out)?;
            }
            Step::Flip { offset, xor } => {
                if !out.is_empty() {
                    let at = *offset as usize % out.len();
                    out[at] ^= xor;
                }
            }
            Step::Cut(n) => out.truncate(out.len().saturating_sub(*n as usize)),
            step => {
                if out.len() <= MAX_REPLY_BYTES {
                    build(step, 0, c, honest, &mut out);
                }
            }
        }
    }
    tx.flush(c, &mut out)?;
    let ready = matches!(tx.tail[..], [b'Z', 0, 0, 0, 5, _]);
    Ok(Sent::More { ready, wrote: tx.writes > 0 })
}

/// The honest answer to an exchange (keeping the honest server's state: prepared statements,
/// portals, transaction status, as it would have been had it answered honestly).
fn honest_answer(c: &mut FakeConn, ex: &Exchange) -> Vec<u8> {
    let mut out = c.honest_reply(ex);
    match ex.messages.last() {
        Some(Frontend::Other(b'f', _)) => {
            out.extend(be::error("57014", "COPY from stdin failed"));
            out.extend(be::ready(c.tx_status()));
        }
        Some(Frontend::Other(b'c', _)) => {
            out.extend(be::command_complete("COPY 0"));
            out.extend(be::ready(c.tx_status()));
        }
        _ => {}
    }
    out
}

fn serve(c: &mut FakeConn, srv: &ServerState) -> io::Result<()> {
    UNCOUNTED.with(|u| u.set(true));
    let busy = Arc::new(AtomicBool::new(true));
    let ended = Arc::new(AtomicBool::new(false));
    if let Ok(stream) = c.stream().try_clone() {
        srv.conns.lock().unwrap().push(Live { stream, busy: busy.clone(), ended: ended.clone() });
    }
    let _guard = EndGuard(busy.clone(), ended);
    let script = if srv.honest.load(SeqCst) { None } else { srv.script.conns.get(c.index()) };
    match script.map(|s| &s.startup[..]).filter(|s| !s.is_empty()) {
        Some(steps) => {
            if let Sent::Closed = run_steps(c, srv, steps, None)? {
                return Ok(());
            }
        }
        None => {
            let start = [be::auth_ok(), c.after_auth()].concat();
            srv.bytes_sent.fetch_add(start.len() as u64, SeqCst);
            c.send(&start)?;
        }
    }
    let mut replies = script.map(|s| s.replies.iter());
    // The last reply (of a Query or a Sync) did not end with ReadyForQuery: the client may still
    // be waiting for it, and a CancelRequest for it is answered as a server still running the
    // statement would (in the hostile part only: the honest server's replies are whole, and a
    // cancel that comes after one is ignored, as a real server ignores it).
    let mut running: Option<bool> = None;
    loop {
        busy.store(false, SeqCst);
        if let Some(wrote) = running.take().filter(|_| !srv.honest.load(SeqCst)) {
            if wait_for_cancel_or_client(c)? {
                busy.store(true, SeqCst);
                srv.racy.store(true, SeqCst);
                if !wrote {
                    srv.answered.fetch_add(1, SeqCst);
                }
                let status = if c.tx_status() == b'I' { b'I' } else { b'E' };
                let answer =
                    [be::error("57014", "canceling statement due to user request"), be::ready(status)].concat();
                srv.bytes_sent.fetch_add(answer.len() as u64, SeqCst);
                c.send(&answer)?;
                continue;
            }
        }
        // Busy from the moment the client's bytes are there, before they are read: `settle`
        // then never sees an idle server that is about to answer.
        let mut byte = [0u8; 1];
        c.stream().peek(&mut byte)?;
        busy.store(true, SeqCst);
        let ex = c.next_exchange_or_flush()?;
        if ex.kind == ExchangeKind::End {
            return Ok(());
        }
        // Cancels that came for an earlier statement are too late for this one.
        while c.wait_for_cancel(c.pid(), Duration::ZERO)? {}
        let flushed = ex.messages.last() == Some(&Frontend::Flush);
        let honest = honest_answer(c, &ex);
        let steps = match replies.as_mut() {
            Some(r) if !srv.honest.load(SeqCst) => r.next().filter(|s| !s.is_empty()),
            _ => None,
        };
        let steps = steps.map(Vec::as_slice).unwrap_or(&[Step::Honest]);
        match run_steps(c, srv, steps, Some((&ex, &honest)))? {
            Sent::Closed => return Ok(()),
            // After a Flush the client waits for the chunk only: it has it whatever the end.
            Sent::More { ready, wrote } => running = (!ready && !flushed).then_some(wrote),
        }
    }
}

/// Wait until the client sends something (false) or a CancelRequest names this connection
/// (true). Nothing is read.
fn wait_for_cancel_or_client(c: &mut FakeConn) -> io::Result<bool> {
    let mut byte = [0u8; 1];
    loop {
        if c.wait_for_cancel(c.pid(), Duration::ZERO)? {
            return Ok(true);
        }
        c.stream().set_read_timeout(Some(Duration::from_millis(2)))?;
        let peeked = c.stream().peek(&mut byte);
        c.stream().set_read_timeout(None)?;
        match peeked {
            Ok(_) => return Ok(false), // data, or the end of the connection: the next read sees it
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
}

/// A socket's TIOCOUTQ (bytes written and not yet acknowledged by the peer) or FIONREAD (bytes
/// received and not yet read).
fn queued(stream: &TcpStream, request: libc::c_ulong) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: both requests write one int through the pointer given.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), request, &mut n) };
    if rc == 0 {
        n
    } else {
        0
    }
}

/// Wait until no connection's script is writing or has the client's bytes to answer, and what
/// they wrote has reached the client's sockets, so that the honest part cannot race the hostile
/// part's bytes. A connection still
/// writing after half a second (a flood into a connection the client does not read) is closed.
fn settle(srv: &ServerState) {
    let until = Instant::now() + Duration::from_millis(500);
    loop {
        let conns = srv.conns.lock().unwrap();
        let pending = |l: &Live| {
            !l.ended.load(SeqCst)
                && (l.busy.load(SeqCst)
                    || queued(&l.stream, libc::TIOCOUTQ) > 0
                    || queued(&l.stream, libc::FIONREAD) > 0)
        };
        if !conns.iter().any(pending) {
            return;
        }
        if Instant::now() >= until {
            for l in conns.iter().filter(|l| pending(l)) {
                let _ = l.stream.shutdown(Shutdown::Both);
            }
            return;
        }
        drop(conns);
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------------
// The client's side.

/// What an op left alive (dropped at the end of its op unless an OP_HOLD keeps it).
#[allow(dead_code)] // only ever dropped
enum Kept {
    Results(Box<Results>),
    Batch(Vec<Results>),
    Stream(Box<RowStream>),
}

struct Client<'a> {
    srv: &'a ServerState,
    /// Calls that succeeded having read a reply (not batches: a pipelined batch's statements
    /// are all sent before any is answered).
    ok_calls: usize,
    ok_commits: usize,
}

/// With PGSESS_FUZZ_TRACE set, what the client did and got is printed (to triage an input:
/// `PGSESS_FUZZ_TRACE=1 fuzz/target/*/release/server INPUT`).
fn trace(what: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("PGSESS_FUZZ_TRACE").is_some()) {
        uncounted(|| eprintln!("server fuzz: {}", what()));
    }
}

fn outcome<T>(r: &pgsess::Result<T>, ok: impl FnOnce(&T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => format!("error {:?} {:?}: {}", e.code, e.sqlstate(), e.message),
    }
}

fn rows(r: &Results) -> String {
    let first: Vec<_> = (0..r.set.nrows().min(3)).map(|i| r.set.value(i, 0).map(String::from_utf8_lossy)).collect();
    format!("{} rows x {} columns, {first:?}, tag {:?}", r.set.nrows(), r.set.ncols(), r.set.command_tag.as_str())
}

fn timed<T>(what: &str, bound: Duration, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    trace(|| format!("{what}: {took:?}"));
    assert!(took <= bound, "{what} took {took:?}, past its bound of {bound:?}");
    out
}

fn check_json(r: &Results) {
    if r.set.nrows().saturating_mul(r.set.ncols().max(1)) > JSON_CELLS {
        return;
    }
    let json = uncounted(|| r.set.to_json());
    let parsed = uncounted(|| serde_json::from_str::<serde::de::IgnoredAny>(&json).map(drop));
    if let Err(e) = parsed {
        let start: String = json.chars().take(300).collect();
        panic!("the JSON of a result does not parse ({e}): {start}");
    }
}

impl Client<'_> {
    /// A call that succeeded by reading a reply: the server must have begun answering as many
    /// exchanges, unless some reply came late or in pieces.
    fn succeeded(&mut self, what: &str) {
        self.ok_calls += 1;
        let answered = self.srv.answered.load(SeqCst);
        if !self.srv.racy.load(SeqCst) {
            assert!(
                self.ok_calls <= answered,
                "{what} succeeded, but the server has begun answering only {answered} exchanges for {} calls that \
                 succeeded: a statement took an answer that was not its own",
                self.ok_calls
            );
        }
    }

    fn committed(&mut self) {
        self.succeeded("COMMIT");
        self.ok_commits += 1;
        let answered = self.srv.commits_answered.load(SeqCst);
        if !self.srv.racy.load(SeqCst) {
            assert!(
                self.ok_commits <= answered,
                "COMMIT reported success {} times, but the server has answered COMMIT {answered} times",
                self.ok_commits
            );
        }
    }

    fn results(&mut self, what: &str, r: pgsess::Result<Box<Results>>) -> Option<Kept> {
        trace(|| format!("{what}: {}", outcome(&r, |r| rows(r))));
        let r = r.ok()?;
        self.succeeded(what);
        check_json(&r);
        Some(Kept::Results(r))
    }

    /// One op of the hostile part.
    fn hostile(&mut self, session: &Session, tx: &mut Option<Transaction>, op: &Op) -> Option<Kept> {
        let on = tx.as_ref().map_or(session, |t| t.session());
        match op {
            Op::Query(form) => match form % 8 {
                0 => self.results("SELECT 'h0'", on.query("SELECT 'h0'", &[])),
                1 => self.results("two statements", on.query("SELECT 'h1'; SELECT 'h2'", &[])),
                2 => self.results("SELECT $1", on.query("SELECT $1", &[Some(b"h3")])),
                3 => self.results("query_binary", on.query_binary("SELECT 7", &[], &[])),
                4 => {
                    let p = [Param { value: Some(b"\0\x01h4"), binary: true }];
                    self.results("query_params", on.query_params("SELECT $1", &[25], &p))
                }
                5 => self.results("BEGIN as a statement", on.query("BEGIN", &[])),
                6 => self.results("an empty statement", on.query("", &[])),
                _ => self.results("callproc", on.callproc("f", &[Some(b"1")])),
            },
            Op::Stream { chunk_rows, chunks } => {
                let stream = on.query_stream("SELECT 'h5'", &[], u32::from(*chunk_rows));
                trace(|| format!("query_stream: {}", outcome(&stream, |_| "open".into())));
                let mut stream = stream.ok()?;
                self.succeeded("query_stream");
                for i in 0..*chunks {
                    let chunk = timed("a stream's next chunk", CALL_BOUND, || stream.next_chunk());
                    trace(|| format!("chunk {i}: {}", outcome(&chunk, |c| c.as_ref().map_or("end".into(), rows))));
                    match chunk {
                        Ok(Some(r)) => {
                            assert!(
                                r.set.nrows() <= usize::from(*chunk_rows),
                                "a stream chunk has {} rows, more than the {chunk_rows} asked for",
                                r.set.nrows()
                            );
                            if i > 0 {
                                self.succeeded("a stream's next chunk");
                            }
                            check_json(&r);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                Some(Kept::Stream(Box::new(stream)))
            }
            Op::Begin => {
                if tx.is_none() {
                    let t = session.begin();
                    trace(|| format!("BEGIN: {}", outcome(&t, |_| "ok".into())));
                    if let Ok(t) = t {
                        self.succeeded("BEGIN");
                        *tx = Some(t);
                    }
                }
                None
            }
            Op::Commit => {
                if let Some(t) = tx.take() {
                    let done = t.commit();
                    trace(|| format!("COMMIT: {}", outcome(&done, |_| "ok".into())));
                    if done.is_ok() {
                        self.committed();
                    }
                }
                None
            }
            Op::Rollback => {
                if let Some(t) = tx.take() {
                    t.rollback();
                }
                None
            }
            Op::Batch(n) => {
                let statements: Vec<BatchStatement> =
                    (0..*n).map(|i| BatchStatement { sql: format!("SELECT 'hb{i}'"), params: Vec::new() }).collect();
                let outcomes = on.batch(&statements);
                trace(|| format!("batch: {}", outcome(&outcomes, |o| format!("{} outcomes", o.len()))));
                let outcomes = outcomes.ok()?;
                let kept: Vec<Results> = outcomes.into_iter().filter_map(Result::ok).collect();
                for r in &kept {
                    check_json(r);
                }
                Some(Kept::Batch(kept))
            }
            Op::Hold => None,
        }
    }

    /// The honest part's check of one statement: its own answer, or (`may_fail`) an error.
    fn own_answer(&mut self, what: &str, r: pgsess::Result<Box<Results>>, want: &[u8], may_fail: bool) {
        trace(|| format!("check {what}: {}", outcome(&r, |r| rows(r))));
        match r {
            Ok(r) => {
                self.succeeded(what);
                let got: Vec<Option<&[u8]>> = (0..r.set.nrows()).map(|i| r.set.value(i, 0)).collect();
                assert!(
                    r.set.ncols() == 1 && got == [Some(want)],
                    "wrong answer: {what} returned {} columns and {:?}, not {:?} (tag {:?})",
                    r.set.ncols(),
                    got.iter().map(|v| v.map(String::from_utf8_lossy)).collect::<Vec<_>>(),
                    String::from_utf8_lossy(want),
                    r.set.command_tag.as_str()
                );
            }
            Err(e) => assert!(may_fail, "{what} failed after the server had recovered: {e}"),
        }
    }

    /// One round of the honest part on `s`: a statement of each kind and a transaction.
    fn honest_round(&mut self, s: &Session, tag: &str, may_fail: bool) {
        let want = format!("{tag}a");
        let r = timed("a check", CALL_BOUND, || s.query(&format!("SELECT '{want}'"), &[]));
        self.own_answer(&format!("SELECT '{want}'"), r, want.as_bytes(), may_fail);

        let want = format!("{tag}b");
        let r = timed("a check", CALL_BOUND, || s.query("SELECT $1", &[Some(want.as_bytes())]));
        self.own_answer(&format!("SELECT $1 ({want})"), r, want.as_bytes(), may_fail);

        let want = format!("{tag}c");
        let sql = format!("SELECT '{want}'");
        timed("a check stream", CALL_BOUND, || match s.query_stream(&sql, &[], 1) {
            Ok(mut stream) => {
                self.succeeded("a check stream");
                let mut rows = Vec::new();
                for _ in 0..4 {
                    match stream.next_chunk() {
                        Ok(Some(r)) => {
                            assert!(r.set.nrows() <= 1, "a stream chunk has {} rows, more than 1", r.set.nrows());
                            rows.extend((0..r.set.nrows()).map(|i| r.set.value(i, 0).map(<[u8]>::to_vec)));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            assert!(may_fail, "{sql} as a stream failed after the server had recovered: {e}");
                            return;
                        }
                    }
                }
                assert!(
                    rows == [Some(want.clone().into_bytes())],
                    "wrong answer: {sql} as a stream returned {rows:?}, not {want:?}"
                );
            }
            Err(e) => assert!(may_fail, "{sql} as a stream failed after the server had recovered: {e}"),
        });

        let wants: Vec<String> = (0..3).map(|i| format!("{tag}e{i}")).collect();
        let statements: Vec<BatchStatement> =
            wants.iter().map(|w| BatchStatement { sql: format!("SELECT '{w}'"), params: Vec::new() }).collect();
        timed("a check batch", CALL_BOUND, || match s.batch(&statements) {
            Ok(outcomes) => {
                self.succeeded("a check batch");
                assert_eq!(outcomes.len(), wants.len(), "a batch of {} gave {} outcomes", wants.len(), outcomes.len());
                for (o, want) in outcomes.iter().zip(&wants) {
                    match o {
                        Ok(r) => assert!(
                            r.set.nrows() == 1 && r.set.value(0, 0) == Some(want.as_bytes()),
                            "wrong answer: SELECT '{want}' in a batch returned {}",
                            rows(r)
                        ),
                        Err(e) => {
                            assert!(may_fail, "SELECT '{want}' in a batch failed after the server had recovered: {e}")
                        }
                    }
                }
            }
            Err(e) => assert!(may_fail, "a check batch failed after the server had recovered: {e}"),
        });

        let want = format!("{tag}d");
        let sql = format!("SELECT '{want}'");
        timed("a check transaction", CALL_BOUND.saturating_mul(3), || match s.begin() {
            Ok(tx) => {
                self.succeeded("a check BEGIN");
                let r = tx.query(&sql, &[]);
                self.own_answer(&format!("{sql} in a transaction"), r, want.as_bytes(), may_fail);
                match tx.commit() {
                    Ok(()) => self.committed(),
                    Err(e) => assert!(may_fail, "a check COMMIT failed after the server had recovered: {e}"),
                }
            }
            Err(e) => assert!(may_fail, "a check BEGIN failed after the server had recovered: {e}"),
        });
    }
}

fn run(script: Script) {
    let srv = Arc::new(ServerState {
        script,
        honest: AtomicBool::new(false),
        racy: AtomicBool::new(false),
        answered: AtomicUsize::new(0),
        commits_answered: AtomicUsize::new(0),
        bytes_sent: AtomicU64::new(0),
        conns: Mutex::new(Vec::new()),
    });
    let server = uncounted(|| {
        let s = srv.clone();
        FakeServer::start(move |c| serve(c, &s))
    });
    let mut options = SessionOptions {
        db_url: Some(format!("{}&connect_timeout=2", server.uri())),
        statement_timeout: Some(STATEMENT_TIMEOUT),
        ..Default::default()
    };
    options.pool.checkout_timeout = CHECKOUT_TIMEOUT;
    options.set_cancel_grace_ms(CANCEL_GRACE.as_millis() as u32);
    options.set_max_result_bytes(MAX_RESULT_BYTES);
    options.pool.max_size = if srv.script.pool_two || srv.script.pinned { 2 } else { 1 };
    if srv.script.statement_cache {
        options.set_statement_cache(4).expect("a small statement cache");
    }
    let hostile_options = SessionOptions { pinned: srv.script.pinned, ..options.clone() };

    let baseline = LIVE.load(SeqCst);
    PEAK.store(baseline, SeqCst);
    let mut client = Client { srv: &srv, ok_calls: 0, ok_commits: 0 };

    // 1. Hostile.
    let session = timed("Session::open", OPEN_BOUND, || Session::open("fuzz", &hostile_options));
    if let Ok(session) = &session {
        let mut tx = None;
        let mut held = Vec::new();
        let mut last = None;
        for op in &srv.script.ops {
            if *op == Op::Hold {
                if held.len() < 2 {
                    held.extend(last.take());
                }
                continue;
            }
            timed("dropping an op's results", CALL_BOUND, || drop(last.take()));
            // Each call of the op within the call bound (a stream's chunks are calls of their own).
            let calls = match op {
                Op::Stream { chunks, .. } => 1 + u32::from(*chunks),
                _ => 1,
            };
            last = timed(&format!("{op:?}"), CALL_BOUND.saturating_mul(calls), || client.hostile(session, &mut tx, op));
        }
        timed("dropping the results held", CALL_BOUND.saturating_mul(3), || drop((last, held)));
        timed("dropping an open transaction", CALL_BOUND, || drop(tx));
    }

    // 2. Honest.
    srv.honest.store(true, SeqCst);
    settle(&srv);
    let mut fresh = None;
    for round in 0..3 {
        let may_fail = round < 2;
        if !may_fail {
            // While the server is known down a pool fails a checkout at once unless it may make
            // its one quick attempt, at most one every 20 ms (PROBE_SPACING): a connect the
            // hostile part began may have failed just now. Past that, the next call's attempt
            // reaches the honest server, and from then on every call must succeed.
            std::thread::sleep(Duration::from_millis(50));
        }
        let tag = format!("r{round}");
        if let Ok(s) = &session {
            client.honest_round(s, &format!("{tag}h"), may_fail);
        }
        if fresh.is_none() {
            match timed("Session::open", OPEN_BOUND, || Session::open("fuzz", &options)) {
                Ok(s) => fresh = Some(s),
                Err(e) => assert!(may_fail, "no session could be opened after the server had recovered: {e}"),
            }
        }
        if let Some(s) = &fresh {
            client.honest_round(s, &format!("{tag}f"), may_fail);
        }
    }

    let peak = PEAK.load(SeqCst) - baseline;
    let sent = srv.bytes_sent.load(SeqCst);
    let bound = HEAP_FIXED.saturating_add(HEAP_PER_BYTE_SENT.saturating_mul(sent as isize));
    assert!(
        peak <= bound,
        "the library's heap grew by {peak} bytes while the server sent {sent} bytes (bound {bound})"
    );
    assert!(
        peak <= HEAP_CAPPED,
        "the library's heap grew by {peak} bytes, past what its caps allow ({HEAP_CAPPED}; the server sent {sent} bytes)"
    );

    // Clean up: the sessions, then the pool (out of the registry, so each input has a pool of
    // its own and the process does not accumulate them), then the fake's connections.
    timed("dropping the sessions", CALL_BOUND.saturating_mul(2), || drop((session, fresh)));
    if let Some(url) = &options.db_url {
        if let Ok(config) = pgsess::config::parse_uri(url, &pgsess::config::ProcessEnvironment) {
            let (pool, _) = pgsess::pool::registry::get_or_create(&config, options.pool, false);
            pgsess::pool::registry::remove(&pool);
            drop(pool);
        }
    }
    uncounted(|| {
        drop(server);
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            let conns = srv.conns.lock().unwrap();
            if conns.iter().all(|l| l.ended.load(SeqCst)) || Instant::now() >= until {
                break;
            }
            for l in conns.iter() {
                let _ = l.stream.shutdown(Shutdown::Both);
            }
            drop(conns);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let script = uncounted(|| Script::decode(data));
    run(script);
});
