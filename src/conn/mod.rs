//! One connection to a PostgreSQL server, speaking the wire protocol through `postgres-protocol`.
//!
//! Why not `postgres::Client`: it hides what the C API must expose (the backend pid, the command
//! tag, the transaction status, ParameterStatus, notices per statement) and always asks for binary
//! results, so every value would have to be re-rendered as the server's text. Speaking the protocol
//! directly, results arrive in text format: `pgsess_results_value` is then byte for byte what
//! libpq's `PQgetvalue` returns, for every type and under every session setting.
//!
//! A `PgConn` is used by one thread at a time (the pool hands it out exclusively).
//!
//! - `connect`: opening a connection (hosts, TLS negotiation, authentication, target_session_attrs).
//! - `copy`: COPY FROM STDIN and COPY TO STDOUT.
//! - `exec`: sending statements (simple and extended queries, pipelines, streams) and resetting a
//!   connection for reuse.
//! - `notify`: what a server sends unasked (notifications) and reading it while idle.
//! - `reader`: reading a statement's reply through to ReadyForQuery, into a `ResultSet`.
//! - `resolve`: host name lookups and Unix-domain connects, bounded by the attempt's deadline.
//! - `stream`: the socket under a connection, plain or TLS, with deadlines.
//! - `tls`: TLS configuration and libpq's certificate checks.
//! - `waits`: the bounds on every wait (statement timeout for sending, cancel grace, connecting).

mod cache;
mod connect;
mod copy;
mod exec;
mod notify;
mod reader;
mod resolve;
pub mod state;
mod stream;
mod tls;
mod waits;
pub(crate) mod watchdog;

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{ErrorFields, Message};
use postgres_protocol::message::frontend;

use crate::config::HostSpec;
use crate::error::{Error, ServerFields};
pub use cache::CacheShared;
pub use copy::{CopyDirection, CopyFrames, COPY_FLUSH_AT};
pub use exec::{check_param_count, BatchStatement, Param, ReplyScan, Sent, SentStatement, MAX_PARAMS};
pub use notify::{is_connection_loss, Notification, NOTIFICATIONS_PER_CONNECTION};
use reader::buffered_message;
pub use reader::{
    DEFAULT_MAX_RESULT_BYTES, MAX_DESCRIPTION_MESSAGE, MAX_MESSAGE, MAX_PARAMETERS, MAX_PARAMETER_BYTES,
    MAX_REPORT_MESSAGE,
};
pub use stream::Stream;
pub use waits::{connect_within, CancelSignal, Canceller};

/// How the exchange being read was sent: what answering a COPY FROM STDIN takes depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exchange {
    /// A simple Query message.
    Simple,
    /// One statement on the extended protocol, ended by its Sync.
    Extended,
    /// One of several statements sent together (`pipeline`).
    Pipelined,
}

/// Transaction status from the last ReadyForQuery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    Failed,
    /// A status byte the protocol does not have (libpq's `PQTRANS_UNKNOWN`): whether a
    /// transaction is open is not known, so the connection is discarded when it is returned,
    /// never reused.
    Unknown,
}

impl TxStatus {
    /// From ReadyForQuery's status byte: `I` idle, `T` in a transaction, `E` in a failed one,
    /// anything else unknown.
    pub fn from_indicator(status: u8) -> TxStatus {
        match status {
            b'I' => TxStatus::Idle,
            b'T' => TxStatus::InTransaction,
            b'E' => TxStatus::Failed,
            _ => TxStatus::Unknown,
        }
    }
}

pub struct PgConn {
    stream: Stream,
    read_buf: BytesMut,
    write_buf: BytesMut,
    backend_pid: i32,
    secret_key: i32,
    parameters: HashMap<String, String>,
    tx_status: TxStatus,
    /// The SQLSTATE and message of the latest error that failed a transaction block (the first
    /// error after the block was last good): what COMMIT reports while `tx_status` is `Failed`.
    tx_failure: Option<Box<(String, String)>>,
    /// Set after any I/O or protocol failure or a FATAL error: the connection must be discarded.
    broken: bool,
    /// Set when a statement may have changed session state (`state`): the pool resets the
    /// connection before its next user (`ResetMode::Dirty`).
    session_changed: bool,
    /// A stream's reply is still arriving here: only that stream may read until it ends.
    portal_open: bool,
    /// A COPY is in progress (`copy`): until it ends, the connection speaks only of it.
    copy: Option<CopyDirection>,
    /// Notifications received and not yet taken (`notify`), oldest first.
    notifications: std::collections::VecDeque<Notification>,
    /// The channels of notifications dropped from a full `notifications`.
    notifications_lost: Vec<std::ffi::CString>,
    /// The process that opened the socket: after fork() a child must not speak on it.
    owner_pid: u32,
    host: HostSpec,
    opened_at: Instant,
    /// Client-enforced bound on each statement (see `set_statement_timeout`).
    statement_timeout: Option<Duration>,
    /// This connection's number in the process (`share_socket`).
    serial: u64,
    /// When the wait for the next reply began, if not when its reading begins: a pending
    /// statement's send (`send_statement`). Taken by the reader.
    reply_since: Option<Instant>,
    /// How often a staged statement's answer was in as soon as its write returned (the server
    /// shares this CPU and answered during it), smoothed over the last few: 0 never, 1024
    /// always; and the staged writes counted, for the occasional look (`PgConn::send_staged`).
    early_answers: u32,
    staged_writes: u32,
    /// Set once the startup's BackendKeyData is in.
    cancel_key: Arc<CancelKey>,
    /// The parameter count of the last ParameterDescription received.
    last_param_count: Option<usize>,
    /// How the current exchange was sent.
    exchange: Exchange,
    /// The last RowDescription message received, whole, and its decoded columns.
    last_row_description: Option<(Vec<u8>, Arc<[crate::rows::Column]>)>,
    /// The emptied row storage of this connection's last small result, for the next one.
    spare_rows: Option<crate::rows::RowStorage>,
    /// The session needs a writable server (target_session_attrs read-write or primary): a
    /// connection whose server turns read-only is discarded.
    require_writable: bool,
    /// The statement cache, when the pool has one (`use_statement_cache`).
    cache: Option<cache::StatementCache>,
    /// The SQL and parameters of the statement whose reply is outstanding (`send_statement`).
    replay: exec::Replay,
    /// ParseComplete messages read in the current exchange (whether a cached statement's
    /// Parse succeeded).
    parse_completes: u32,
    /// Called with each notice a statement receives (`set_notice_hook`).
    notice_hook: Option<crate::config::NoticeHook>,
    /// The reader's limits and the state of the exchange being read (`reader`).
    guard: reader::Guard,
}

/// Identifies a running statement for a CancelRequest.
#[derive(Clone, Debug)]
pub struct CancelKey {
    host: HostSpec,
    backend_pid: i32,
    secret_key: i32,
    /// Set when the connection uses TLS: the cancel request then goes over TLS too, checked
    /// the same way.
    tls: Option<Arc<tls::TlsSetup>>,
}

impl CancelKey {
    /// Ask the server to cancel the statement running on that backend (a new short connection,
    /// as libpq's PQcancel). Best effort: the server does not reply.
    ///
    /// A connection that uses TLS sends its cancel request over TLS with the same certificate
    /// checks, as libpq 17's PQcancelBlocking does (the older PQcancel always sent it in plain
    /// text, exposing the cancel key on the network).
    pub fn send(&self) -> io::Result<()> {
        self.send_by(Instant::now() + CANCEL_CONNECT_TIMEOUT)
    }

    /// `send`, giving up by `deadline` (at most `CANCEL_CONNECT_TIMEOUT` from now).
    pub fn send_by(&self, deadline: Instant) -> io::Result<()> {
        let mut buf = BytesMut::with_capacity(16);
        frontend::cancel_request(self.backend_pid, self.secret_key, &mut buf);
        let deadline = deadline.min(Instant::now() + CANCEL_CONNECT_TIMEOUT);
        let mut stream = Stream::connect_plain(&self.host, deadline)?;
        if let Some(setup) = &self.tls {
            if !setup.direct && stream.ssl_request(deadline)? != b'S' {
                return Err(io::Error::other("the server refused TLS for the cancel request"));
            }
            let conn = setup.connection().map_err(io::Error::other)?;
            stream.start_tls(conn, deadline).map_err(|e| match e {
                stream::HandshakeError::Io(e) => e,
                stream::HandshakeError::Tls(e) => io::Error::other(setup.describe(&e)),
            })?;
        }
        stream.send_all(&buf, &mut BytesMut::new(), Some(deadline))?;
        // As libpq's PQcancel: wait for the server to close the cancel connection, which it does
        // once the cancel has been delivered to the backend. Returning earlier lets the caller
        // send its next statement before the signal lands, and the cancel then ends that
        // statement instead (seen from Go: up to 15% of statements sent right after a cancelled
        // one). Bounded: a server that keeps the connection open costs CANCEL_CONFIRM at most.
        let confirm_by = deadline.min(Instant::now() + CANCEL_CONFIRM);
        let mut sink = BytesMut::with_capacity(64);
        while Instant::now() < confirm_by {
            sink.clear();
            if stream.fill_until(&mut sink, Some(confirm_by)).is_err() {
                break; // closed (the answer we wait for), or the bound passed
            }
        }
        Ok(())
    }
}

/// How long a cancel request waits for the server to close its connection (the sign that the
/// cancel reached the backend) before `CancelKey::send_by` returns anyway.
pub const CANCEL_CONFIRM: Duration = Duration::from_secs(1);

/// How long a cancel request may take to connect and send.
pub const CANCEL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a cancelled statement has to end before its connection is declared broken, unless
/// the session says otherwise (`PgConn::begin_statement`).
pub const CANCEL_GRACE: Duration = crate::config::DEFAULT_CANCEL_GRACE;

impl PgConn {
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    pub fn tx_status(&self) -> TxStatus {
        self.tx_status
    }

    /// While the transaction block is failed (`tx_status`), the SQLSTATE and message of the
    /// error that failed it.
    pub fn transaction_failure(&self) -> Option<(&str, &str)> {
        match (&self.tx_failure, self.tx_status) {
            (Some(f), TxStatus::Failed) => Some((f.0.as_str(), f.1.as_str())),
            _ => None,
        }
    }

    /// The socket's descriptor, for a host runtime that waits for it to become readable on a
    /// `dup(2)` of it (`Stream::share`), and this connection's serial number: unique in the
    /// process, never reused, so a cache of duplicates keyed by it never confuses two
    /// connections that had the same descriptor number.
    pub fn share_socket(&mut self) -> (std::os::fd::RawFd, u64) {
        self.stream.share();
        (self.stream.fd(), self.serial)
    }

    /// Abandon the connection: it is closed when it goes back to the pool (a pending
    /// statement dropped before its reply was read leaves it out of step).
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    pub fn host(&self) -> &HostSpec {
        &self.host
    }

    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// A server parameter as last reported (TimeZone, DateStyle, server_version, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// True when the connection was opened by another process (we are a forked child).
    pub fn inherited(&self) -> bool {
        self.owner_pid != crate::process::current_pid()
    }

    /// Cheap liveness check for an idle connection, no round trip: an idle server sends nothing, so
    /// anything readable is either an asynchronous message (handled) or the server going away (a
    /// FATAL error such as 57P01 from a restart or pg_terminate_backend, or EOF). Anything else,
    /// whole or in part (a reply out of step, bytes injected into the connection, a message
    /// cut short), fails the check and breaks the connection: it would be read as the next
    /// statement's answer.
    #[inline]
    pub fn check_idle_alive(&mut self) -> bool {
        if self.broken || self.inherited() {
            return false;
        }
        // The common case, at every checkout: nothing buffered, nothing to read.
        if self.read_buf.is_empty() && !self.stream.readable_now() {
            self.guard.idle_checked = true;
            return true;
        }
        self.check_idle_slow()
    }

    /// `check_idle_alive` when something was buffered or readable.
    #[cold]
    fn check_idle_slow(&mut self) -> bool {
        // Something arrived since the last look: `ensure_in_step` must read it, not trust that
        // look.
        self.guard.idle_checked = false;
        let ok = self.copy.is_none() && self.ensure_in_step().is_ok() && !self.broken;
        if !ok {
            self.broken = true;
        }
        self.guard.idle_checked = ok;
        ok
    }

    /// Bound each result (its DataRow bytes, a stream's chunk) of the statements run from now
    /// on to `bytes`; 0 is no bound. Past it the statement fails and the connection is
    /// cancelled and discarded (see `reader`).
    pub fn set_max_result_bytes(&mut self, bytes: u64) {
        self.guard.max_result_bytes = bytes;
        self.stream.bounds.read_while_sending = waits::read_while_sending(bytes);
    }

    /// Read the next backend message, waiting until `deadline` at most.
    fn read_message(&mut self, deadline: Option<Instant>) -> Result<Message, Error> {
        match self.read_message_until(deadline)? {
            Some(m) => Ok(m),
            None => Err(self.io_failure(io::Error::new(io::ErrorKind::TimedOut, "timed out"))),
        }
    }

    /// Read the next backend message; `None` when `deadline` passes first (the connection is
    /// still in step: a partial message stays buffered).
    ///
    /// Its length is checked before any room is made for it (`reader::check_front`), and a
    /// ParameterStatus refused since the last read (`handle_parameter_status`) is returned
    /// here as the error.
    fn read_message_until(&mut self, deadline: Option<Instant>) -> Result<Option<Message>, Error> {
        loop {
            if let Some(e) = self.guard.refused.take() {
                return Err(e);
            }
            if buffered_message(&self.read_buf).is_some() {
                return self.decode_front().map(Some);
            }
            if !self.read_rest_of_message(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Wait for more bytes from the server (one read) until `deadline`, after a sleep of
    /// `pause` when there is one (`Stream::fill_after_pause`); false when `deadline` passed.
    fn read_more_until(&mut self, deadline: Option<Instant>, pause: Option<Duration>) -> Result<bool, Error> {
        if stream::remaining(deadline).is_err() {
            return Ok(false);
        }
        let read = match pause {
            Some(pause) => self.stream.fill_after_pause(&mut self.read_buf, deadline, pause),
            None => self.stream.fill_until(&mut self.read_buf, deadline),
        };
        match read {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(self.io_failure(e)),
        }
        Ok(true)
    }

    /// Read what the socket has after poll(2) said it is readable: one read under a short
    /// timeout, appended to the read buffer (a timeout, or TLS bringing no plaintext yet, adds
    /// nothing). Used where no exchange waits for an answer: notifications while idle, a COPY's
    /// server side between sends, a COPY TO's next messages.
    fn read_ready(&mut self) -> Result<(), Error> {
        if let Err(e) = self.stream.set_read_timeout(Some(Duration::from_millis(50))) {
            return Err(self.io_failure(e));
        }
        match self.stream.fill(&mut self.read_buf) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(self.io_failure(e)),
        }
        // A message not all in yet is held to its type's length before the buffer grows
        // further for it.
        if buffered_message(&self.read_buf).is_none() {
            self.check_front()?;
        }
        Ok(())
    }

    /// Call `hook` with each notice the statements run from now on receive (`None`: none).
    /// Notices are kept in the statement's `ResultSet` either way.
    pub fn set_notice_hook(&mut self, hook: Option<crate::config::NoticeHook>) {
        self.notice_hook = hook;
    }

    /// What it takes to cancel this connection's running statement from another connection.
    /// Shared, so recording the running statement of a session costs no allocation.
    pub fn cancel_key(&self) -> Arc<CancelKey> {
        self.cancel_key.clone()
    }

    /// Bound the statements run from now on: past `timeout` the server is asked to cancel the
    /// statement (it then fails with 57014); if the server does not answer within the cancel
    /// grace more (`begin_statement`), the connection is declared broken. `None`: no bound.
    pub fn set_statement_timeout(&mut self, timeout: Option<Duration>) {
        self.statement_timeout = timeout;
    }

    /// Send everything in `write_buf`. While the socket cannot take more, read what the server
    /// sends meanwhile into `read_buf`: a server answering a large batch (a Parse with thousands
    /// of parameters gets a large ParameterDescription) stops reading when its own output is not
    /// read, and two blocked writers would wait for each other forever.
    fn flush_writes(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        self.guard.idle_checked = false;
        let result = self.stream.send_all(&self.write_buf, &mut self.read_buf, deadline);
        self.write_buf.clear();
        result.map_err(|e| self.io_failure(e))
    }

    /// Mark the connection broken and describe the I/O failure as an operational error.
    fn io_failure(&mut self, e: io::Error) -> Error {
        self.broken = true;
        if let Some(bound) = waits::Bound::of(&e) {
            return bound.error(&self.host); // a bound of `waits` ended the wait
        }
        if let Some(bound) = self.stream.bounds.cancel_expired() {
            // The cancel grace's alarm shut the socket down (`watchdog`): a send or read that
            // was not waiting at that instant fails on the socket instead of waking.
            return bound.error(&self.host);
        }
        let what = match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out waiting for the server".to_string(),
            io::ErrorKind::UnexpectedEof => "server closed the connection unexpectedly".to_string(),
            _ => format!("connection to the server failed: {e}"),
        };
        Error::operational("08006", format!("{what} ({})", self.host))
    }

    /// A ParameterStatus where the caller has no error to return (start-up, a COPY): kept
    /// (`store_parameter`), or, when refused, the connection is broken and the refusal waits
    /// for the next read to return it (`read_message_until`, or the next statement).
    fn handle_parameter_status(&mut self, body: &postgres_protocol::message::backend::ParameterStatusBody) {
        if let Err(e) = self.store_parameter(body) {
            self.guard.refused.get_or_insert(e);
        }
        self.session_changed = true; // cleared once start-up (or a reset) is done
    }

    /// Close politely: Terminate, then drop the socket. A forked child never writes on an
    /// inherited socket (that would end the parent's session); it only closes its descriptor.
    fn terminate(&mut self) {
        if self.broken || self.inherited() {
            return;
        }
        frontend::terminate(&mut self.write_buf);
        if self.flush_writes(Some(Instant::now() + Duration::from_millis(200))).is_ok() {
            self.stream.close_notify();
        }
        self.broken = true;
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Parse an ErrorResponse/NoticeResponse body into its fields.
///
/// Severity, SQLSTATE and message are marked missing until seen (`ServerFields::field` then
/// gives `None` for them, never an empty string the server did not send).
pub(crate) fn server_fields(mut fields: ErrorFields<'_>) -> ServerFields {
    use crate::error::{MISSING_MESSAGE, MISSING_SEVERITY, MISSING_SQLSTATE};
    let mut f = ServerFields { missing: MISSING_SEVERITY | MISSING_SQLSTATE | MISSING_MESSAGE, ..Default::default() };
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    while let Ok(Some(field)) = fields.next() {
        let v = field.value_bytes();
        match field.type_() {
            b'S' => {
                f.severity = text(v);
                f.missing &= !MISSING_SEVERITY;
            }
            b'V' => f.severity_nonlocalized = Some(text(v)),
            b'C' => {
                f.sqlstate = text(v);
                f.missing &= !MISSING_SQLSTATE;
            }
            b'M' => {
                f.message = text(v);
                f.missing &= !MISSING_MESSAGE;
            }
            b'D' => f.detail = Some(text(v)),
            b'H' => f.hint = Some(text(v)),
            b'P' => f.position = Some(text(v)),
            b'W' => f.where_ = Some(text(v)),
            b's' => f.schema = Some(text(v)),
            b't' => f.table = Some(text(v)),
            b'c' => f.column = Some(text(v)),
            b'd' => f.datatype = Some(text(v)),
            b'n' => f.constraint = Some(text(v)),
            b'p' => f.internal_position = Some(text(v)),
            b'q' => f.internal_query = Some(text(v)),
            b'F' => f.file = Some(text(v)),
            b'L' => f.line = Some(text(v)),
            b'R' => f.routine = Some(text(v)),
            _ => {}
        }
    }
    f
}
