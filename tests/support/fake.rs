//! A scripted fake PostgreSQL server, for the bytes a real server never sends (`support::fake`).
//!
//! [`FakeServer::start`] listens on 127.0.0.1:<free port> and runs a script for every connection a
//! client opens. Before the script runs the harness has answered any SSLRequest and
//! GSSENCRequest with `N` and read the StartupMessage; a CancelRequest is counted
//! ([`FakeServer::cancels`]) and never reaches a script. The script then writes what it likes:
//! [`FakeConn::trust`] for an honest start, [`be`] for any backend message (well formed or not),
//! [`FakeConn::next_exchange`] to read what the client asked, and [`FakeConn::reply_normally`] /
//! [`FakeConn::serve_rest`] to answer honestly, so a test can check that the statement after a
//! hostile one gets its own answer.
//!
//! The honest server understands just enough SQL for the tests: `SELECT 'literal'` (a text
//! column), `SELECT $1` (the first parameter, as text), `SELECT <integer>` (an int4 column),
//! and any other statement as its command tag (`BEGIN`, `COMMIT`, `SET`, `DISCARD ALL`...), with
//! the transaction status following BEGIN/COMMIT/ROLLBACK. Binary result formats are honoured for
//! these (text bytes are the same in both formats; int4 is four big-endian bytes).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The password the fake's URIs carry (the fake never checks it unless a script does).
pub const PASSWORD: &str = "secret";
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;
const PROTOCOL_3: i32 = 196_608;

type Script = dyn Fn(&mut FakeConn) -> io::Result<()> + Send + Sync;

#[derive(Default)]
struct Shared {
    connections: AtomicUsize,
    cancels: AtomicUsize,
    stop: AtomicBool,
    /// Errors scripts returned (other than the client going away), for [`FakeServer::script_errors`].
    errors: Mutex<Vec<String>>,
    /// The (process id, secret key) of each CancelRequest not yet taken by a script
    /// ([`FakeConn::wait_for_cancel`]).
    cancel_requests: Mutex<Vec<(i32, i32)>>,
}

/// A listening fake server; stops accepting when dropped (connections already open run on
/// until their script returns or the client goes away).
pub struct FakeServer {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
}

impl FakeServer {
    /// Listen and run `script` for every connection, each on its own thread.
    pub fn start(script: impl Fn(&mut FakeConn) -> io::Result<()> + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake server");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let script: Arc<Script> = Arc::new(script);
        let s = shared.clone();
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (s, script) = (s.clone(), script.clone());
                thread::spawn(move || serve(stream, s, script));
            }
        });
        FakeServer { port, shared, accept: Some(accept) }
    }

    /// A server that answers every connection honestly.
    pub fn honest() -> FakeServer {
        FakeServer::start(|c| {
            c.trust()?;
            c.serve_rest()
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgresql://fake:secret@127.0.0.1:PORT/fake` with no query string: the library's defaults
    /// (sslmode=prefer: the fake answers `N`).
    pub fn base_uri(&self) -> String {
        format!("postgresql://fake:{PASSWORD}@127.0.0.1:{}/fake", self.port)
    }

    /// [`FakeServer::base_uri`] with `?sslmode=disable` (plain text by choice, so a trust start is
    /// acceptable to the client).
    pub fn uri(&self) -> String {
        format!("{}?sslmode=disable", self.base_uri())
    }

    /// Connections that reached the script (CancelRequests not counted).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// CancelRequests received.
    pub fn cancels(&self) -> usize {
        self.shared.cancels.load(Ordering::SeqCst)
    }

    /// What scripts failed with, other than the client closing the connection.
    pub fn script_errors(&self) -> Vec<String> {
        self.shared.errors.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, shared: Arc<Shared>, script: Arc<Script>) {
    let _ = stream.set_nodelay(true);
    let startup = match read_startup(&mut stream, &shared) {
        Ok(Some(params)) => params,
        _ => return,
    };
    let index = shared.connections.fetch_add(1, Ordering::SeqCst);
    let mut conn = FakeConn {
        stream,
        index,
        startup,
        statements: HashMap::new(),
        portals: HashMap::new(),
        tx: b'I',
        pid: 4242 + index as i32,
        shared: shared.clone(),
    };
    if let Err(e) = script(&mut conn) {
        if !matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            shared.errors.lock().unwrap().push(format!("connection {index}: {e}"));
        }
    }
    let _ = conn.stream.shutdown(Shutdown::Both);
}

/// Answer SSL/GSS requests with `N`, count a CancelRequest (None), return the startup parameters.
fn read_startup(stream: &mut TcpStream, shared: &Shared) -> io::Result<Option<HashMap<String, String>>> {
    loop {
        let mut head = [0u8; 8];
        stream.read_exact(&mut head)?;
        let len = i32::from_be_bytes(head[0..4].try_into().unwrap());
        let code = i32::from_be_bytes(head[4..8].try_into().unwrap());
        if !(8..=10_000).contains(&len) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad startup length"));
        }
        let mut body = vec![0u8; len as usize - 8];
        stream.read_exact(&mut body)?;
        match code {
            SSL_REQUEST | GSSENC_REQUEST => stream.write_all(b"N")?,
            CANCEL_REQUEST => {
                shared.cancels.fetch_add(1, Ordering::SeqCst);
                if let [a, b, c, d, e, f, g, h, ..] = body[..] {
                    let key = (i32::from_be_bytes([a, b, c, d]), i32::from_be_bytes([e, f, g, h]));
                    shared.cancel_requests.lock().unwrap().push(key);
                }
                return Ok(None);
            }
            PROTOCOL_3 => {
                let mut params = HashMap::new();
                let mut parts = body.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
                while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                    if k.is_empty() {
                        break;
                    }
                    params.insert(k, v);
                }
                return Ok(Some(params));
            }
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "unknown startup code")),
        }
    }
}

/// One message from the client, decoded as far as the honest server needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Frontend {
    Query(String),
    Parse {
        name: String,
        sql: String,
    },
    Bind {
        portal: String,
        statement: String,
        params: Vec<Option<Vec<u8>>>,
        result_formats: Vec<i16>,
    },
    Describe {
        kind: u8,
        name: String,
    },
    Execute {
        portal: String,
        max_rows: i32,
    },
    Close {
        kind: u8,
        name: String,
    },
    Sync,
    Flush,
    Terminate,
    /// Anything else (password, SASL, COPY messages...): its type byte and body.
    Other(u8, Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExchangeKind {
    /// A Query message.
    Simple,
    /// Extended-protocol messages up to and including a Sync.
    Extended,
    /// The client sent Terminate or closed the connection.
    End,
}

/// What the client sent for one round trip.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub kind: ExchangeKind,
    pub messages: Vec<Frontend>,
    /// The SQL of the first statement (the Query text, the first Parse, or the statement a Bind
    /// names), "" when there is none.
    sql: String,
}

impl Exchange {
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The parameters of the first Bind.
    pub fn params(&self) -> Vec<Option<Vec<u8>>> {
        self.messages
            .iter()
            .find_map(|m| match m {
                Frontend::Bind { params, .. } => Some(params.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// One accepted connection, after its StartupMessage.
pub struct FakeConn {
    stream: TcpStream,
    index: usize,
    startup: HashMap<String, String>,
    /// Prepared statement name -> SQL (so a cached statement's Bind is answered).
    statements: HashMap<String, String>,
    /// Portal name -> (SQL, parameters, result formats).
    portals: HashMap<String, Portal>,
    tx: u8,
    pid: i32,
    /// The server's counters and CancelRequests, for [`FakeConn::wait_for_cancel`].
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Portal {
    sql: String,
    params: Vec<Option<Vec<u8>>>,
    formats: Vec<i16>,
}

impl FakeConn {
    /// 0 for the first connection the server accepted, then 1, 2...
    pub fn index(&self) -> usize {
        self.index
    }

    /// The StartupMessage's parameters (user, database, application_name...).
    pub fn startup(&self) -> &HashMap<String, String> {
        &self.startup
    }

    /// The underlying socket (for timeouts, shutdown, or reading raw bytes).
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// AuthenticationOk, a real server's ParameterStatus set, BackendKeyData, ReadyForQuery 'I'.
    pub fn trust(&mut self) -> io::Result<()> {
        let mut out = be::auth_ok();
        out.extend(self.after_auth());
        self.send(&out)
    }

    /// What a server sends after a successful authentication: ParameterStatus set,
    /// BackendKeyData, ReadyForQuery 'I'.
    pub fn after_auth(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in [
            ("server_version", "16.4"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("integer_datetimes", "on"),
            ("IntervalStyle", "postgres"),
            ("standard_conforming_strings", "on"),
            ("TimeZone", "UTC"),
            ("is_superuser", "off"),
            ("session_authorization", "fake"),
            ("application_name", self.startup.get("application_name").map(String::as_str).unwrap_or("")),
        ] {
            out.extend(be::parameter_status(k, v));
        }
        out.extend(be::backend_key_data(self.pid, 0x5eed));
        out.extend(be::ready(b'I'));
        out
    }

    /// Read one frontend message (type byte and body).
    pub fn read_raw(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.stream.read_exact(&mut head)?;
        let len = i32::from_be_bytes(head[1..5].try_into().unwrap());
        if !(4..=(1 << 30)).contains(&len) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad frontend length {len}")));
        }
        let mut body = vec![0u8; len as usize - 4];
        self.stream.read_exact(&mut body)?;
        Ok((head[0], body))
    }

    /// Read and decode one frontend message; EOF reads as Terminate.
    pub fn read_frontend(&mut self) -> io::Result<Frontend> {
        let (tag, body) = match self.read_raw() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Frontend::Terminate),
            Err(e) => return Err(e),
        };
        decode_frontend(tag, &body)
    }

    /// Read messages up to a Query or a Sync (or the end of the connection).
    pub fn next_exchange(&mut self) -> io::Result<Exchange> {
        let mut messages = Vec::new();
        loop {
            let m = self.read_frontend()?;
            let kind = match &m {
                Frontend::Query(_) => Some(ExchangeKind::Simple),
                Frontend::Sync => Some(ExchangeKind::Extended),
                Frontend::Terminate => Some(ExchangeKind::End),
                _ => None,
            };
            messages.push(m);
            if let Some(kind) = kind {
                let sql = self.first_sql(&messages);
                return Ok(Exchange { kind, messages, sql });
            }
        }
    }

    fn first_sql(&self, messages: &[Frontend]) -> String {
        for m in messages {
            match m {
                Frontend::Query(sql) | Frontend::Parse { sql, .. } => return sql.clone(),
                Frontend::Bind { statement, .. } => {
                    if let Some(sql) = self.statements.get(statement) {
                        return sql.clone();
                    }
                }
                _ => {}
            }
        }
        String::new()
    }

    /// The honest reply to `ex`, ending with ReadyForQuery (nothing for an End exchange).
    pub fn honest_reply(&mut self, ex: &Exchange) -> Vec<u8> {
        let mut out = Vec::new();
        match ex.kind {
            ExchangeKind::End => {}
            ExchangeKind::Simple => {
                let sql = ex.sql.clone();
                let statements = split_statements(&sql);
                if statements.is_empty() {
                    out.extend(be::empty_query());
                }
                for stmt in statements {
                    let answer = answer(&stmt, &[]);
                    if let Some(cols) = &answer.columns {
                        out.extend(be::row_description_formats(cols, &[]));
                    }
                    for row in &answer.rows {
                        out.extend(be::data_row_owned(row));
                    }
                    out.extend(be::command_complete(&answer.tag));
                    self.follow_tx(&answer.tag);
                }
                out.extend(be::ready(self.tx));
            }
            ExchangeKind::Extended => {
                for m in &ex.messages {
                    match m {
                        Frontend::Parse { name, sql } => {
                            self.statements.insert(name.clone(), sql.clone());
                            out.extend(be::parse_complete());
                        }
                        Frontend::Bind { portal, statement, params, result_formats } => {
                            let sql = self.statements.get(statement).cloned().unwrap_or_default();
                            let p = Portal { sql, params: params.clone(), formats: result_formats.clone() };
                            self.portals.insert(portal.clone(), p);
                            out.extend(be::bind_complete());
                        }
                        Frontend::Describe { kind: b'S', name } => {
                            let sql = self.statements.get(name).cloned().unwrap_or_default();
                            let n = count_params(&sql);
                            out.extend(be::parameter_description(&vec![25; n]));
                            match answer(&sql, &[]).columns {
                                Some(cols) => out.extend(be::row_description_formats(&cols, &[])),
                                None => out.extend(be::no_data()),
                            }
                        }
                        Frontend::Describe { name, .. } => {
                            let p = self.portals.get(name).cloned();
                            let p = p.unwrap_or(Portal { sql: String::new(), params: vec![], formats: vec![] });
                            match answer(&p.sql, &p.params).columns {
                                Some(cols) => out.extend(be::row_description_formats(&cols, &p.formats)),
                                None => out.extend(be::no_data()),
                            }
                        }
                        Frontend::Execute { portal, .. } => {
                            let p = self.portals.get(portal).cloned();
                            let p = p.unwrap_or(Portal { sql: String::new(), params: vec![], formats: vec![] });
                            if p.sql.trim().is_empty() {
                                out.extend(be::empty_query());
                                continue;
                            }
                            let a = answer(&p.sql, &p.params);
                            for row in &a.rows {
                                let cols = a.columns.as_deref().unwrap_or(&[]);
                                out.extend(be::data_row_owned(&encode_row(row, cols, &p.formats)));
                            }
                            out.extend(be::command_complete(&a.tag));
                            self.follow_tx(&a.tag);
                        }
                        Frontend::Close { kind, name } => {
                            if *kind == b'S' {
                                self.statements.remove(name);
                            } else {
                                self.portals.remove(name);
                            }
                            out.extend(be::close_complete());
                        }
                        Frontend::Sync => out.extend(be::ready(self.tx)),
                        _ => {}
                    }
                }
            }
        }
        out
    }

    /// Send the honest reply to `ex`.
    pub fn reply_normally(&mut self, ex: &Exchange) -> io::Result<()> {
        let out = self.honest_reply(ex);
        self.send(&out)
    }

    /// Answer every exchange honestly until the client terminates or goes away.
    pub fn serve_rest(&mut self) -> io::Result<()> {
        loop {
            let ex = self.next_exchange()?;
            if ex.kind == ExchangeKind::End {
                return Ok(());
            }
            self.reply_normally(&ex)?;
        }
    }

    /// Read (and discard) whatever the client sends until it goes away, answering nothing: a
    /// server gone silent.
    pub fn go_silent(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Stop reading and sleep for `d` (a server whose receive window fills up), then close.
    pub fn stall(&mut self, d: Duration) -> io::Result<()> {
        thread::sleep(d);
        Ok(())
    }

    fn follow_tx(&mut self, tag: &str) {
        let word = tag.split(' ').next().unwrap_or("");
        match word {
            "BEGIN" | "START" => self.tx = b'T',
            "COMMIT" | "ROLLBACK" if !tag.starts_with("ROLLBACK TO") => self.tx = b'I',
            _ => {}
        }
    }

    /// The process id this connection announces in [`FakeConn::trust`]'s BackendKeyData (the
    /// one a client's CancelRequest names).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The transaction status the honest server is in ('I', 'T'), as its next ReadyForQuery
    /// would say.
    pub fn tx_status(&self) -> u8 {
        self.tx
    }

    /// [`FakeConn::next_exchange`], also ending at a Flush (a stream asks for a chunk with
    /// Execute and Flush, and waits for it before it sends a Sync), and at a CopyFail or CopyDone
    /// that nothing follows within a few milliseconds (a simple query's COPY aborted by the
    /// client: it sends no Sync). Such an exchange is of kind `Extended`;
    /// [`FakeConn::honest_reply`] answers the messages before the Flush (without a
    /// ReadyForQuery, as a real server does) and nothing for the CopyFail or CopyDone.
    pub fn next_exchange_or_flush(&mut self) -> io::Result<Exchange> {
        let mut messages = Vec::new();
        loop {
            let m = self.read_frontend()?;
            let kind = match &m {
                Frontend::Query(_) => Some(ExchangeKind::Simple),
                Frontend::Sync | Frontend::Flush => Some(ExchangeKind::Extended),
                Frontend::Other(b'f' | b'c', _) if !self.more_within(Duration::from_millis(5))? => {
                    Some(ExchangeKind::Extended)
                }
                Frontend::Terminate => Some(ExchangeKind::End),
                _ => None,
            };
            messages.push(m);
            if let Some(kind) = kind {
                let sql = self.first_sql(&messages);
                return Ok(Exchange { kind, messages, sql });
            }
        }
    }

    /// Whether the client sends anything more within `d` (nothing is consumed; a closed
    /// connection counts as more: the next read reports it).
    fn more_within(&mut self, d: Duration) -> io::Result<bool> {
        self.stream.set_read_timeout(Some(d))?;
        let mut byte = [0u8; 1];
        let more = match self.stream.peek(&mut byte) {
            Ok(_) => true,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => false,
            Err(e) => return Err(e),
        };
        self.stream.set_read_timeout(None)?;
        Ok(more)
    }

    /// Wait, reading nothing, until a CancelRequest names process `pid` (true; that request is
    /// taken, so each one is seen once), or `max` passes (false). Fails with `UnexpectedEof`
    /// when the client closes the connection first. A silent server that honours cancels
    /// answers `57014` after this returns true.
    pub fn wait_for_cancel(&mut self, pid: i32, max: Duration) -> io::Result<bool> {
        let until = std::time::Instant::now() + max;
        let mut byte = [0u8; 1];
        let outcome = loop {
            {
                let mut requests = self.shared.cancel_requests.lock().unwrap();
                if let Some(i) = requests.iter().position(|(p, _)| *p == pid) {
                    requests.remove(i);
                    break Ok(true);
                }
            }
            let now = std::time::Instant::now();
            if now >= until {
                break Ok(false);
            }
            self.stream.set_read_timeout(Some((until - now).min(Duration::from_millis(2))))?;
            match self.stream.peek(&mut byte) {
                Ok(0) => break Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the client closed the connection")),
                // The client sent something: left for the script to read; keep waiting.
                Ok(_) => thread::sleep(Duration::from_millis(2)),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) => break Err(e),
            }
        };
        self.stream.set_read_timeout(None)?;
        outcome
    }
}

struct Answer {
    /// (name, type oid) per column; None: the statement returns no rows (NoData).
    columns: Option<Vec<(String, u32)>>,
    rows: Vec<Vec<Option<Vec<u8>>>>,
    tag: String,
}

/// The honest server's understanding of one statement.
fn answer(sql: &str, params: &[Option<Vec<u8>>]) -> Answer {
    let s = sql.trim().trim_end_matches(';').trim();
    let col = |oid| Some(vec![("?column?".to_string(), oid)]);
    let upper = s.to_ascii_uppercase();
    if let Some(rest) = upper.strip_prefix("SELECT ") {
        let rest_orig = s[7..].trim();
        let value = rest_orig.trim_end_matches("::text").trim();
        if let Some(lit) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            let row = vec![Some(lit.replace("''", "'").into_bytes())];
            return Answer { columns: col(25), rows: vec![row], tag: "SELECT 1".into() };
        }
        if value == "$1" {
            let row = vec![params.first().cloned().flatten()];
            return Answer { columns: col(25), rows: vec![row], tag: "SELECT 1".into() };
        }
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit() || b == b'-') && value.parse::<i32>().is_ok() {
            return Answer {
                columns: col(23),
                rows: vec![vec![Some(value.as_bytes().to_vec())]],
                tag: "SELECT 1".into(),
            };
        }
        let _ = rest;
        return Answer { columns: col(25), rows: vec![], tag: "SELECT 0".into() };
    }
    let words: Vec<&str> = upper.split_whitespace().collect();
    let tag = match words.as_slice() {
        [] => String::new(),
        ["START", "TRANSACTION", ..] => "START TRANSACTION".into(),
        ["DISCARD", w, ..] | ["DEALLOCATE", w, ..] if *w == "ALL" => format!("{} ALL", words[0]),
        ["ROLLBACK", "TO", ..] => "ROLLBACK".into(),
        ["END", ..] => "COMMIT".into(),
        ["ABORT", ..] => "ROLLBACK".into(),
        ["INSERT", ..] => "INSERT 0 1".into(),
        ["UPDATE", ..] | ["DELETE", ..] => format!("{} 1", words[0]),
        [w, ..] => w.to_string(),
    };
    // A ROLLBACK TO keeps the transaction open: report it under its own tag word.
    let tag = if upper.starts_with("ROLLBACK TO") { "ROLLBACK TO SAVEPOINT".to_string() } else { tag };
    Answer { columns: None, rows: vec![], tag }
}

fn encode_row(row: &[Option<Vec<u8>>], cols: &[(String, u32)], formats: &[i16]) -> Vec<Option<Vec<u8>>> {
    row.iter()
        .enumerate()
        .map(|(i, v)| {
            let binary = match formats.len() {
                0 => false,
                1 => formats[0] == 1,
                _ => formats.get(i) == Some(&1),
            };
            match (v, cols.get(i)) {
                (Some(v), Some((_, 23))) if binary => {
                    let n: i32 = std::str::from_utf8(v).unwrap().parse().unwrap();
                    Some(n.to_be_bytes().to_vec())
                }
                _ => v.clone(),
            }
        })
        .collect()
}

fn count_params(sql: &str) -> usize {
    (1..=100).take_while(|i| sql.contains(&format!("${i}"))).count()
}

/// Split on `;` outside single quotes; empty pieces dropped.
fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in sql.chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                cur.push(ch);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

fn cstr(body: &[u8], at: &mut usize) -> io::Result<String> {
    let rest = body.get(*at..).ok_or_else(|| bad("short message"))?;
    let end = rest.iter().position(|b| *b == 0).ok_or_else(|| bad("unterminated string"))?;
    *at += end + 1;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn int16(body: &[u8], at: &mut usize) -> io::Result<i16> {
    let b = body.get(*at..*at + 2).ok_or_else(|| bad("short message"))?;
    *at += 2;
    Ok(i16::from_be_bytes([b[0], b[1]]))
}

fn int32(body: &[u8], at: &mut usize) -> io::Result<i32> {
    let b = body.get(*at..*at + 4).ok_or_else(|| bad("short message"))?;
    *at += 4;
    Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn decode_frontend(tag: u8, body: &[u8]) -> io::Result<Frontend> {
    let mut at = 0;
    let at = &mut at;
    Ok(match tag {
        b'Q' => Frontend::Query(cstr(body, at)?),
        b'P' => Frontend::Parse { name: cstr(body, at)?, sql: cstr(body, at)? },
        b'B' => {
            let portal = cstr(body, at)?;
            let statement = cstr(body, at)?;
            let nf = int16(body, at)?;
            for _ in 0..nf {
                int16(body, at)?;
            }
            let np = int16(body, at)?;
            let mut params = Vec::new();
            for _ in 0..np {
                let len = int32(body, at)?;
                if len < 0 {
                    params.push(None);
                } else {
                    let v = body.get(*at..*at + len as usize).ok_or_else(|| bad("short Bind"))?;
                    *at += len as usize;
                    params.push(Some(v.to_vec()));
                }
            }
            let nr = int16(body, at)?;
            let mut result_formats = Vec::new();
            for _ in 0..nr {
                result_formats.push(int16(body, at)?);
            }
            Frontend::Bind { portal, statement, params, result_formats }
        }
        b'D' => {
            let kind = *body.first().ok_or_else(|| bad("short Describe"))?;
            *at = 1;
            Frontend::Describe { kind, name: cstr(body, at)? }
        }
        b'E' => Frontend::Execute { portal: cstr(body, at)?, max_rows: int32(body, at)? },
        b'C' => {
            let kind = *body.first().ok_or_else(|| bad("short Close"))?;
            *at = 1;
            Frontend::Close { kind, name: cstr(body, at)? }
        }
        b'S' => Frontend::Sync,
        b'H' => Frontend::Flush,
        b'X' => Frontend::Terminate,
        other => Frontend::Other(other, body.to_vec()),
    })
}

/// Backend messages, well formed unless the name says otherwise.
pub mod be {
    /// A message with its length computed from `body`.
    pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(((body.len() + 4) as i32).to_be_bytes());
        out.extend(body);
        out
    }

    /// A message whose length field says `len` whatever `body` holds (-1, 2^31-1, too short...).
    pub fn raw(tag: u8, len: i32, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(len.to_be_bytes());
        out.extend(body);
        out
    }

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend(s.as_bytes());
        out.push(0);
    }

    pub fn auth(code: i32, extra: &[u8]) -> Vec<u8> {
        let mut body = code.to_be_bytes().to_vec();
        body.extend(extra);
        msg(b'R', &body)
    }

    pub fn auth_ok() -> Vec<u8> {
        auth(0, &[])
    }

    pub fn auth_cleartext() -> Vec<u8> {
        auth(3, &[])
    }

    pub fn auth_md5(salt: [u8; 4]) -> Vec<u8> {
        auth(5, &salt)
    }

    /// AuthenticationSASL listing `mechanisms`.
    pub fn auth_sasl(mechanisms: &[&str]) -> Vec<u8> {
        let mut extra = Vec::new();
        for m in mechanisms {
            cstr(&mut extra, m);
        }
        extra.push(0);
        auth(10, &extra)
    }

    pub fn auth_sasl_continue(data: &[u8]) -> Vec<u8> {
        auth(11, data)
    }

    pub fn auth_sasl_final(data: &[u8]) -> Vec<u8> {
        auth(12, data)
    }

    pub fn parameter_status(name: &str, value: &str) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, name);
        cstr(&mut body, value);
        msg(b'S', &body)
    }

    pub fn backend_key_data(pid: i32, key: i32) -> Vec<u8> {
        let mut body = pid.to_be_bytes().to_vec();
        body.extend(key.to_be_bytes());
        msg(b'K', &body)
    }

    /// ReadyForQuery with transaction status `status` (b'I', b'T', b'E', or anything).
    pub fn ready(status: u8) -> Vec<u8> {
        msg(b'Z', &[status])
    }

    /// RowDescription of text-format columns (name, type oid).
    pub fn row_description(columns: &[(&str, u32)]) -> Vec<u8> {
        let cols: Vec<(String, u32)> = columns.iter().map(|(n, o)| (n.to_string(), *o)).collect();
        row_description_formats(&cols, &[])
    }

    /// RowDescription with Bind-style result formats (none: text; one: all; else per column).
    pub fn row_description_formats(columns: &[(String, u32)], formats: &[i16]) -> Vec<u8> {
        let mut body = (columns.len() as i16).to_be_bytes().to_vec();
        for (i, (name, oid)) in columns.iter().enumerate() {
            let format = match formats.len() {
                0 => 0,
                1 => formats[0],
                _ => formats.get(i).copied().unwrap_or(0),
            };
            cstr(&mut body, name);
            body.extend(0i32.to_be_bytes()); // table oid
            body.extend(0i16.to_be_bytes()); // attribute number
            body.extend(oid.to_be_bytes());
            body.extend((-1i16).to_be_bytes()); // type size
            body.extend((-1i32).to_be_bytes()); // type modifier
            body.extend(format.to_be_bytes());
        }
        msg(b'T', &body)
    }

    pub fn data_row(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut body = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            match v {
                Some(v) => {
                    body.extend((v.len() as i32).to_be_bytes());
                    body.extend(*v);
                }
                None => body.extend((-1i32).to_be_bytes()),
            }
        }
        msg(b'D', &body)
    }

    pub fn data_row_owned(values: &[Option<Vec<u8>>]) -> Vec<u8> {
        let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
        data_row(&refs)
    }

    pub fn command_complete(tag: &str) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, tag);
        msg(b'C', &body)
    }

    fn fields(tag: u8, fields: &[(u8, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (code, value) in fields {
            body.push(*code);
            cstr(&mut body, value);
        }
        body.push(0);
        msg(tag, &body)
    }

    /// ErrorResponse with exactly these fields (b'S', b'V', b'C', b'M', ...).
    pub fn error_fields(f: &[(u8, &str)]) -> Vec<u8> {
        fields(b'E', f)
    }

    /// An ordinary ERROR with `sqlstate` and `message`.
    pub fn error(sqlstate: &str, message: &str) -> Vec<u8> {
        fields(b'E', &[(b'S', "ERROR"), (b'V', "ERROR"), (b'C', sqlstate), (b'M', message)])
    }

    /// A FATAL error (the server closes after it).
    pub fn fatal(sqlstate: &str, message: &str) -> Vec<u8> {
        fields(b'E', &[(b'S', "FATAL"), (b'V', "FATAL"), (b'C', sqlstate), (b'M', message)])
    }

    /// NoticeResponse with exactly these fields.
    pub fn notice_fields(f: &[(u8, &str)]) -> Vec<u8> {
        fields(b'N', f)
    }

    /// An ordinary NOTICE (00000) with `message`.
    pub fn notice(message: &str) -> Vec<u8> {
        fields(b'N', &[(b'S', "NOTICE"), (b'V', "NOTICE"), (b'C', "00000"), (b'M', message)])
    }

    pub fn notification(pid: i32, channel: &str, payload: &str) -> Vec<u8> {
        let mut body = pid.to_be_bytes().to_vec();
        cstr(&mut body, channel);
        cstr(&mut body, payload);
        msg(b'A', &body)
    }

    pub fn parse_complete() -> Vec<u8> {
        msg(b'1', &[])
    }

    pub fn bind_complete() -> Vec<u8> {
        msg(b'2', &[])
    }

    pub fn close_complete() -> Vec<u8> {
        msg(b'3', &[])
    }

    pub fn no_data() -> Vec<u8> {
        msg(b'n', &[])
    }

    pub fn portal_suspended() -> Vec<u8> {
        msg(b's', &[])
    }

    pub fn empty_query() -> Vec<u8> {
        msg(b'I', &[])
    }

    pub fn parameter_description(oids: &[u32]) -> Vec<u8> {
        let mut body = (oids.len() as i16).to_be_bytes().to_vec();
        for o in oids {
            body.extend(o.to_be_bytes());
        }
        msg(b't', &body)
    }

    /// The complete honest reply to a simple `SELECT '<value>'` (text column "?column?").
    pub fn simple_select(value: &str) -> Vec<u8> {
        let mut out = row_description(&[("?column?", 25)]);
        out.extend(data_row(&[Some(value.as_bytes())]));
        out.extend(command_complete("SELECT 1"));
        out.extend(ready(b'I'));
        out
    }
}
