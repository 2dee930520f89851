//! Reading a statement's reply: the backend messages of one exchange, read through to
//! ReadyForQuery (or, for a stream's chunk, to its last row), their rows going straight into a
//! `ResultSet`. `exec` sends the statements; everything the server answers is read here.
//!
//! Every exchange is read through to ReadyForQuery, so the connection stays in step even when a
//! statement fails; a FATAL error or an I/O failure marks it broken instead.
//!
//! # What the reader accepts
//!
//! The server's bytes are not trusted to keep the connection in step or its memory bounded (a
//! broken server, a broken proxy, or a man in the middle on a plain-text connection write them).
//! Anything outside the protocol is a protocol violation (`PGSESS_OPERATIONAL_ERROR`, SQLSTATE
//! 08P01): the statement fails and the connection is marked broken, so it is discarded, never
//! reused one answer behind.
//! - The reply must be the statement's: a ReadyForQuery with no answer before it (no
//!   CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse), a second
//!   CommandComplete (or a RowDescription after the first) in a one-statement exchange, a
//!   DataRow outside a result's rows, a RowDescription whose format codes are not those the
//!   statement asked for, or a PortalSuspended (no statement is sent with a row limit) are
//!   violations.
//! - After the exchange's last ReadyForQuery only what a server sends unasked may follow in the
//!   read buffer (NoticeResponse, NotificationResponse, ParameterStatus, or a FATAL
//!   ErrorResponse, which breaks the connection but leaves the statement's own answer
//!   standing); anything else, whole or in part, is a violation (`take_unasked`). Before a
//!   statement is sent, what arrived since is held to the same rule (`ensure_in_step`), and so
//!   is an idle connection at checkout.
//! - Lengths: a message is never given room before its bytes arrive (the buffer grows as they
//!   do). A length field under 4 or over 2^31-1 is a violation; so is a message longer than its
//!   type can be (`MAX_MESSAGE`, `MAX_REPORT_MESSAGE`, `MAX_DESCRIPTION_MESSAGE`), which means
//!   the reader lost sync, as libpq judges it. DataRow and CopyData are bounded by
//!   `max_result_bytes` instead: a result that outgrows it fails the statement, and the
//!   connection is cancelled and discarded.
//! - A stream's chunk holds at most Execute's row limit, whatever the server sends.
//! - Notices kept per result (`ResultSet::push_notice`) and ParameterStatus entries kept per
//!   connection (`MAX_PARAMETERS`, `MAX_PARAMETER_BYTES`) are bounded; a `client_encoding`
//!   other than UTF8 is refused wherever it is announced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Buf;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{Message, NoticeResponseBody, ParameterStatusBody};
use postgres_protocol::message::frontend;

use super::{server_fields, Exchange, PgConn, TxStatus};
use crate::error::{Code, Error, Result};
use crate::rows::typed::oid;
use crate::rows::{Column, CommandTag, ResultSet, FORMAT_BINARY, FORMAT_TEXT};

/// The longest message (its length field, which counts itself) of a type without a limit of
/// its own: longer means the reader has lost sync with the server (libpq's rule, and its
/// number).
pub const MAX_MESSAGE: usize = 30_000;
/// The longest ErrorResponse, NoticeResponse or NotificationResponse: a real server's reports
/// can carry long detail or context text, but not this much.
pub const MAX_REPORT_MESSAGE: usize = 1 << 20;
/// The longest RowDescription or ParameterDescription: 65,535 columns (the protocol's 16-bit
/// count) of 63-byte names fit.
pub const MAX_DESCRIPTION_MESSAGE: usize = 8 << 20;
/// The most ParameterStatus names one connection keeps: a real server reports a few dozen.
/// More is a protocol violation.
pub const MAX_PARAMETERS: usize = 512;
/// The most bytes of ParameterStatus names and values one connection keeps; more is a protocol
/// violation.
pub const MAX_PARAMETER_BYTES: usize = 256 * 1024;
/// How long the start of a message a server sends unasked, buffered before a statement is sent
/// (or at checkout), may wait for its rest before the connection counts as out of step.
const PARTIAL_GRACE: Duration = Duration::from_millis(100);
/// A result's rows past this many bytes are read in coalesced waits (`PgConn::coalesced_pause`).
const COALESCE_AFTER_BYTES: u64 = 256 * 1024;
/// The longest pause before one of those waits.
const COALESCE_MAX_PAUSE: Duration = Duration::from_micros(200);
/// The default `max_result_bytes`: the DataRow bytes one result (or one stream chunk) may take.
pub const DEFAULT_MAX_RESULT_BYTES: u64 = crate::config::DEFAULT_MAX_RESULT_BYTES;

/// The reader's limits and the state of the exchange in progress (`PgConn::guard`).
pub(crate) struct Guard {
    /// DataRow bytes one result may take (0: no limit), from the pool's settings.
    pub(super) max_result_bytes: u64,
    /// DataRow bytes of the result being read.
    row_bytes: u64,
    /// DataRow bytes of a stream's earlier chunks, when the result being read is a stream's
    /// next chunk (`coalesced_pause`).
    earlier_chunks_bytes: u64,
    /// When the rows of the result being read (a stream's, across its chunks) passed
    /// `COALESCE_AFTER_BYTES` (`coalesced_pause`).
    big_since: Option<Instant>,
    /// The formats the columns of a RowDescription must have.
    pub(super) want_format: Want,
    /// ReadyForQuery messages still to come in the exchange after the one being read (a
    /// pipeline's, or a reset's two statements).
    pub(super) more_replies: u32,
    /// Set when the connection was found idle and in step (`check_idle_alive`) and nothing was
    /// sent since: the next statement need not look at the socket again.
    pub(super) idle_checked: bool,
    /// A ParameterStatus refused where no error could be returned at once
    /// (`handle_parameter_status`): the next read returns it.
    pub(super) refused: Option<Error>,
    /// Bytes of the names and values in `PgConn::parameters`.
    parameter_bytes: usize,
}

/// The formats a reply's columns must come in (`Guard::want_format`).
#[derive(Clone, Debug, Default)]
pub(crate) enum Want {
    /// Text or binary, as the simple protocol's binary cursors may give.
    #[default]
    Any,
    /// Every column in this format.
    All(i16),
    /// Each column in its own format, as bound (a typed statement's, `PgConn::query_typed_into`).
    Each(Arc<[i16]>),
}

impl Default for Guard {
    fn default() -> Guard {
        Guard {
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            row_bytes: 0,
            earlier_chunks_bytes: 0,
            big_since: None,
            want_format: Want::Any,
            more_replies: 0,
            idle_checked: false,
            refused: None,
            parameter_bytes: 0,
        }
    }
}

/// The length (type byte included) of the message at the front of `buf` when it is of type
/// `tag` and wholly in `buf`. A length field under 4 (it counts itself) is no message: `None`,
/// and the message decoder reports it.
#[inline]
pub(super) fn complete_message(buf: &[u8], tag: u8) -> Option<usize> {
    match *buf {
        [t, a, b, c, d, ..] if t == tag => {
            let total = 1 + u32::from_be_bytes([a, b, c, d]) as usize;
            (total >= 5 && buf.len() >= total).then_some(total)
        }
        _ => None,
    }
}

/// The length (type byte included) of the message at the front of `buf` when all of it is there,
/// whatever its type. A length field under 4 comes back as it is: the decoder reports it.
#[inline]
pub(super) fn buffered_message(buf: &[u8]) -> Option<usize> {
    match *buf {
        [_, a, b, c, d, ..] => {
            let total = 1 + u32::from_be_bytes([a, b, c, d]) as usize;
            (buf.len() >= total).then_some(total)
        }
        _ => None,
    }
}

/// A message type byte for an error text: the character when printable, else its escape.
fn tag_text(tag: u8) -> String {
    char::from(tag).escape_default().to_string()
}

/// Whether a server may send a message of this type unasked, between exchanges: NoticeResponse,
/// NotificationResponse, ParameterStatus, and ErrorResponse (a FATAL one, before it closes).
#[inline]
fn sent_unasked(tag: u8) -> bool {
    matches!(tag, b'N' | b'A' | b'S' | b'E')
}

impl PgConn {
    /// Read one exchange through to ReadyForQuery (or, for `Stop::Rows`, to the end of a
    /// chunk; for `Stop::CopyIn`/`CopyOut`, to the start of the copy), into a new
    /// `ResultSet`. The flag is true when it stopped early: a stream's reply has more rows, or
    /// the COPY has begun.
    pub(super) fn collect(&mut self, deadline: Option<Instant>, stop: Stop) -> Result<(ResultSet, bool)> {
        let mut set = ResultSet::default();
        let more = self.collect_into(&mut set, false, deadline, stop)?;
        Ok((set, more))
    }

    /// `collect`, into `set`. `rows_started`: `set` already has the columns of the rows that
    /// come (a stream's next chunk).
    pub(super) fn collect_into(
        &mut self,
        set: &mut ResultSet,
        rows_started: bool,
        deadline: Option<Instant>,
        stop: Stop,
    ) -> Result<bool> {
        set.backend_pid = self.backend_pid;
        let mut error: Option<Error> = None;
        let mut empty_query = false;
        // Stopped before ReadyForQuery: a stream's chunk is full, or a COPY has begun (`stop`).
        let mut stopped_early = false;
        let mut deadline = deadline;
        // The statement timeout counts from when the wait began: a pending statement's
        // (`send_statement`) began when it was sent.
        let since = self.reply_since.take();
        let mut cancel_at = self.statement_timeout.map(|t| since.unwrap_or_else(Instant::now) + t);
        // A signal interrupted the wait and the server was asked to cancel (once per statement).
        let mut cancelled_on_signal = false;
        // DataRows belong to the rows a RowDescription (or a stream's first chunk) began, until
        // the CommandComplete (or error, or suspension) that ends them.
        let mut rows_open = rows_started;
        // Answers to the statement read so far: CommandComplete, EmptyQueryResponse and
        // PortalSuspended; and errors. One statement's exchange has one answer; a simple
        // Query of several statements one per statement.
        let mut answers = 0u32;
        let mut errors = 0u32;
        let one_statement = self.exchange != Exchange::Simple;
        if rows_started {
            // A stream's next chunk: its rows go on with the same result.
            self.guard.earlier_chunks_bytes += self.guard.row_bytes;
        } else {
            self.guard.earlier_chunks_bytes = 0;
            self.guard.big_since = None;
        }
        self.guard.row_bytes = 0;
        loop {
            if stop == Stop::BareSync {
                // Only ReadyForQuery, or what a server sends unasked, may answer a Sync alone.
                if let Some(&tag) = self.read_buf.first() {
                    if !matches!(tag, b'Z' | b'N' | b'A' | b'S' | b'E') {
                        let what = format!(
                            "the server answered the exchange's closing Sync with a '{}' message (a reply out of \
                             step, or bytes injected into the connection)",
                            tag_text(tag)
                        );
                        return Err(self.protocol_violation(&what));
                    }
                }
            }
            // The messages of every statement's reply, read in place once all of a message is in.
            let cap = match stop {
                Stop::Rows(n) => n as usize,
                _ => usize::MAX,
            };
            self.take_data_rows(set, rows_open, cap)?;
            if rows_open && set.nrows() >= cap {
                // A stream's chunk is full; the reply goes on in the socket, read by the next
                // chunk's call (`rows_started`).
                stopped_early = true;
                break;
            }
            self.skip_completions();
            if let [b'Z', 0, 0, 0, 5, status, ..] = self.read_buf[..] {
                // ReadyForQuery, the end of every exchange.
                self.read_buf.advance(6);
                self.tx_status = TxStatus::from_indicator(status);
                if answers + errors == 0 && !matches!(stop, Stop::SyncOnly | Stop::BareSync) {
                    return Err(self.protocol_violation(
                        "the server sent ReadyForQuery without an answer to the statement (a reply out of step)",
                    ));
                }
                if answers + errors > 0 && stop == Stop::BareSync {
                    return Err(self.protocol_violation(
                        "the server answered the exchange's closing Sync with a statement's answer (a reply out of step)",
                    ));
                }
                self.end_of_reply()?;
                break;
            }
            if self.read_buf.len() >= 5 {
                self.check_front()?;
            }
            if let Some(total) = complete_message(&self.read_buf, b'C') {
                // CommandComplete, its tag read in place.
                if one_statement && answers > 0 {
                    return Err(self.protocol_violation("the server sent a second CommandComplete for one statement"));
                }
                let Some(tag) = CommandTag::from_message_body(&self.read_buf[5..total]) else {
                    return Err(self.protocol_violation("the server sent a malformed CommandComplete"));
                };
                self.read_buf.advance(total);
                self.command_complete(set, tag, &mut rows_open)?;
                answers += 1;
                empty_query = false;
                continue;
            }
            if let Some(total) = complete_message(&self.read_buf, b'T') {
                if one_statement && answers > 0 {
                    return Err(self
                        .protocol_violation("the server sent a RowDescription after the statement's CommandComplete"));
                }
                self.row_description(set, total)?;
                rows_open = true;
                continue;
            }
            // Any other message is decoded as a `Message`, once all of it is in; so is one whose
            // length is wrong for its type (the decoder reports it). A message not all in yet,
            // of whatever type, is read and then looked at again from the top.
            if buffered_message(&self.read_buf).is_none() {
                let wake = match (deadline, cancel_at) {
                    (Some(d), Some(c)) => Some(d.min(c)),
                    (d, c) => d.or(c),
                };
                let pause = self.coalesced_pause(rows_open);
                if self.read_rest_of_message_after(wake, pause)? {
                    if self.stream.take_interrupted() && !cancelled_on_signal {
                        // `cancel_on_signal`: the caller's runtime wants its thread back (Ruby's
                        // Timeout and Thread#raise signal it): cancel, and wait for the answer
                        // within the cancel grace as after a statement timeout.
                        cancelled_on_signal = true;
                        if self.canceller().send().is_err() {
                            deadline = Some(Instant::now());
                        }
                    }
                    continue;
                }
                if cancel_at.is_some_and(|c| Instant::now() >= c) {
                    // The statement timeout passed: ask the server to cancel. Its waits then
                    // end at the cancel grace (`waits`): the statement fails with 57014 whether
                    // the server answers in time or not, and the connection is closed if not.
                    cancel_at = None;
                    if self.canceller().send().is_err() {
                        deadline = Some(Instant::now());
                    }
                    continue;
                }
                let e = self.io_failure(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"));
                return Err(Error {
                    message: format!("{} (no answer after the statement was cancelled)", e.message),
                    ..e
                });
            }
            let front = self.read_buf[0];
            match self.decode_front()? {
                Message::EmptyQueryResponse => {
                    if one_statement && answers > 0 {
                        return Err(self.protocol_violation(
                            "the server sent an EmptyQueryResponse after the statement's CommandComplete",
                        ));
                    }
                    answers += 1;
                    rows_open = false;
                    set.reset_statement();
                    empty_query = true;
                }
                Message::ParameterDescription(body) => self.last_param_count = body.parameters().count().ok(),
                Message::PortalSuspended => {
                    return Err(self.protocol_violation("the server suspended a portal that had no row limit"));
                }
                Message::NoticeResponse(body) => self.take_notice(set, &body),
                Message::ParameterStatus(body) => {
                    self.session_changed = true;
                    self.store_parameter(&body)?;
                }
                Message::NotificationResponse(body) => self.push_notification(&body),
                Message::ErrorResponse(body) => {
                    let fields = server_fields(body.fields());
                    let fatal = fields.is_fatal();
                    let e = Error::from_server(fields);
                    if fatal {
                        // The server closes the connection after a FATAL error: no ReadyForQuery follows.
                        self.broken = true;
                        return Err(e);
                    }
                    if self.tx_status != TxStatus::Failed {
                        // An error in a good transaction block fails it: kept for COMMIT to report.
                        let failure = (e.sqlstate().unwrap_or_default().to_owned(), e.message.clone());
                        self.tx_failure = Some(Box::new(failure));
                    }
                    errors += 1;
                    rows_open = false;
                    error.get_or_insert(e);
                }
                Message::CopyInResponse(_) if matches!(stop, Stop::CopyIn | Stop::Copy) => {
                    self.copy = Some(super::CopyDirection::In);
                    stopped_early = true;
                    break;
                }
                Message::CopyOutResponse(_) if matches!(stop, Stop::CopyOut | Stop::Copy) => {
                    self.copy = Some(super::CopyDirection::Out);
                    stopped_early = true;
                    break;
                }
                Message::CopyInResponse(_) => {
                    let wanted_out = stop == Stop::CopyOut;
                    let refused = || {
                        Error::not_supported(if wanted_out {
                            "this statement is a COPY ... FROM STDIN: run it with pgsess_copy_in"
                        } else {
                            "COPY ... FROM STDIN runs through pgsess_copy_in (pgsess_query cannot send its data)"
                        })
                    };
                    if self.exchange == Exchange::Pipelined {
                        // The server, now in copy-in mode, takes the batch's later statements for
                        // bad copy data: their answers cannot be matched up any more. Discard the
                        // connection (the batch fails as a whole).
                        self.broken = true;
                        return Err(refused());
                    }
                    frontend::copy_fail("COPY FROM STDIN runs through pgsess_copy_in", &mut self.write_buf)
                        .expect("no NUL");
                    if self.exchange == Exchange::Extended {
                        // The Sync sent with the statement was ignored in copy-in mode, and after
                        // the CopyFail the server waits for one; a simple Query gets its
                        // ReadyForQuery without (a Sync there would answer with a second one and
                        // leave the connection a reply behind), as libpq does.
                        frontend::sync(&mut self.write_buf);
                    }
                    self.flush_writes(deadline)?;
                    error.get_or_insert_with(refused);
                }
                Message::CopyOutResponse(_) | Message::CopyData(_) | Message::CopyDone => {
                    // Read through and dropped: the statement's answer is the error.
                    error.get_or_insert_with(|| {
                        Error::not_supported(if stop == Stop::CopyIn {
                            "this statement is a COPY ... TO STDOUT: run it with pgsess_copy_out"
                        } else {
                            "COPY ... TO STDOUT runs through pgsess_copy_out (pgsess_query does not return its data)"
                        })
                    });
                }
                _ => {
                    let what = format!("the server sent an unexpected '{}' message in a reply", tag_text(front));
                    return Err(self.protocol_violation(&what));
                }
            }
        }
        if self.require_writable && self.server_turned_read_only(error.as_ref()) {
            // target_session_attrs asked for a writable server and this one is not (any more):
            // finish this exchange, then discard the connection so the pool reconnects.
            self.broken = true;
        }
        if let Some(e) = error {
            return Err(e);
        }
        if empty_query {
            return Err(Error::new(Code::PGSESS_PROGRAMMING_ERROR, "can't execute an empty query"));
        }
        // Only the date getters read this: skip the lookup for results without such columns.
        set.non_iso_dates =
            set.columns().iter().any(|c| matches!(c.type_oid, oid::DATE | oid::TIMESTAMP | oid::TIMESTAMPTZ))
                && !self.parameter("DateStyle").unwrap_or("ISO").starts_with("ISO");
        // Only rendering a binary timestamptz as text reads this.
        set.utc_time_zone = set.columns().iter().any(|c| c.type_oid == oid::TIMESTAMPTZ && c.is_binary())
            && self.parameter("TimeZone").is_some_and(crate::rows::binary::is_utc_zone_name);
        Ok(stopped_early)
    }

    /// A NoticeResponse of the statement being read: kept in `set` in libpq's text form, and
    /// given to the notice hook when there is one (on this thread, in arrival order).
    pub(super) fn take_notice(&mut self, set: &mut ResultSet, body: &NoticeResponseBody) {
        let fields = server_fields(body.fields());
        set.push_notice(std::ffi::CString::new(fields.libpq_text()).unwrap_or_default());
        if let Some(hook) = &self.notice_hook {
            hook.call(&fields);
        }
    }

    /// Append every complete DataRow at the front of the read buffer to `set`, parsing them in
    /// place: the bulk of a large result never becomes a `Message`. `rows_open`: a
    /// RowDescription began rows that have not ended; a DataRow anywhere else is a protocol
    /// violation, as is one past `max_result_bytes`. At most `cap` rows in `set` (a stream's
    /// chunk): the rest stay buffered for the next call.
    fn take_data_rows(&mut self, set: &mut ResultSet, rows_open: bool, cap: usize) -> Result<()> {
        let ncols = set.columns().len();
        while set.nrows() < cap {
            let Some(total) = complete_message(&self.read_buf, b'D') else { break };
            if !rows_open {
                return Err(self.protocol_violation(
                    "the server sent a DataRow outside a result's rows (after its CommandComplete, or before its \
                     RowDescription)",
                ));
            }
            if total < 7 {
                return Err(self.protocol_violation("the server sent a malformed DataRow (too short)"));
            }
            let count = u16::from_be_bytes([self.read_buf[5], self.read_buf[6]]) as usize;
            if count != ncols {
                let what =
                    format!("the server sent a DataRow of {count} values for a RowDescription of {ncols} columns");
                return Err(self.protocol_violation(&what));
            }
            self.guard.row_bytes += total as u64;
            if self.guard.max_result_bytes != 0 && self.guard.row_bytes > self.guard.max_result_bytes {
                return Err(self.result_too_large());
            }
            if !set.push_raw_row(&self.read_buf[7..total], ncols) {
                return Err(self.protocol_violation(
                    "the server sent a malformed DataRow (a value runs past the end of the message, or bytes follow \
                     the last value)",
                ));
            }
            self.read_buf.advance(total);
        }
        Ok(())
    }

    /// A statement's CommandComplete: its tag.
    fn command_complete(&mut self, set: &mut ResultSet, tag: CommandTag, rows_open: &mut bool) -> Result<()> {
        if !*rows_open {
            set.reset_statement();
        }
        *rows_open = false;
        let tag_bytes = tag.as_c_str().to_bytes();
        if !self.session_changed && super::state::tag_changes_session(tag_bytes) {
            self.session_changed = true;
        }
        if matches!(tag_bytes, b"DISCARD ALL" | b"DEALLOCATE ALL") {
            // The server dropped every prepared statement: so does the cache.
            if let Some(cache) = self.cache.as_mut() {
                cache.clear();
            }
        }
        set.command_tag = tag;
        Ok(())
    }

    /// Drop the bodiless acknowledgements (ParseComplete, BindComplete, CloseComplete, NoData) at
    /// the front of the read buffer: every extended-protocol statement gets two or three, and
    /// they need no decoding.
    fn skip_completions(&mut self) {
        while let [t @ (b'1' | b'2' | b'3' | b'n'), 0, 0, 0, 4, ..] = self.read_buf[..] {
            self.parse_completes += u32::from(t == b'1');
            self.read_buf.advance(5);
        }
    }

    /// Wait for more of the message at the front of the read buffer; false when `wake` passed
    /// first (the partial message stays buffered). Its length is checked first
    /// (`check_front`), and room is made for at most as many bytes again as are buffered (at
    /// least a read's worth): the buffer grows with the bytes that arrive, never to a length a
    /// message only claims, yet a large message is read with few copies.
    pub(super) fn read_rest_of_message(&mut self, wake: Option<Instant>) -> Result<bool> {
        self.read_rest_of_message_after(wake, None)
    }

    /// `read_rest_of_message`, the wait after a sleep of `pause` when there is one
    /// (`coalesced_pause`).
    fn read_rest_of_message_after(&mut self, wake: Option<Instant>, pause: Option<Duration>) -> Result<bool> {
        if self.read_buf.len() >= 5 {
            self.check_front()?;
            let [_, a, b, c, d, ..] = self.read_buf[..] else { unreachable!("five bytes are buffered") };
            let total = 1 + u32::from_be_bytes([a, b, c, d]) as usize;
            let missing = total.saturating_sub(self.read_buf.len());
            let step = self.read_buf.len().max(super::stream::READ_CHUNK);
            self.read_buf.reserve(missing.min(step));
        }
        self.read_more_until(wake, pause)
    }

    /// The pause before the next wait for more of a result's rows (`Stream::fill_after_pause`):
    /// none until the result's rows (a stream's, over all its chunks) have taken
    /// `COALESCE_AFTER_BYTES`, then a sixteenth of the time since they did, at most
    /// `COALESCE_MAX_PAUSE`. A large result is then read several of the server's sends at a
    /// time, and its end arrives late by at most about a sixteenth of the time it took; a small
    /// one is read as before.
    fn coalesced_pause(&mut self, rows_open: bool) -> Option<Duration> {
        if !rows_open || self.guard.earlier_chunks_bytes + self.guard.row_bytes < COALESCE_AFTER_BYTES {
            return None;
        }
        let now = Instant::now();
        let since = *self.guard.big_since.get_or_insert(now);
        Some(((now - since) / 16).min(COALESCE_MAX_PAUSE)).filter(|p| !p.is_zero())
    }

    /// Decode the message at the front of the read buffer, all of it there (`buffered_message`).
    /// A message whose length is wrong for its type, or whose body does not parse, is a
    /// protocol violation.
    pub(super) fn decode_front(&mut self) -> Result<Message> {
        self.check_front()?;
        let tag = self.read_buf[0];
        match Message::parse(&mut self.read_buf) {
            Ok(Some(msg)) => Ok(msg),
            Ok(None) => Err(self.protocol_violation("a message was decoded before all of it had arrived")),
            Err(e) => {
                Err(self.protocol_violation(&format!("the server sent a malformed '{}' message: {e}", tag_text(tag))))
            }
        }
    }

    /// Check the length of the message at the front of the read buffer (at least its first five
    /// bytes in) against what its type may take, before any room is made for it: a length
    /// under 4 or over 2^31-1, or longer than its type's limit (`MAX_MESSAGE` and the others),
    /// is a protocol violation; a DataRow that would take the result past `max_result_bytes`
    /// (or a CopyData longer than it) fails the statement and discards the connection
    /// (`result_too_large`).
    pub(super) fn check_front(&mut self) -> Result<()> {
        let [tag, a, b, c, d, ..] = self.read_buf[..] else { return Ok(()) };
        let len = u32::from_be_bytes([a, b, c, d]);
        if !(4..=i32::MAX as u32).contains(&len) {
            let what = format!("the server sent a '{}' message of length {} (lost sync)", tag_text(tag), len as i32);
            return Err(self.protocol_violation(&what));
        }
        let len = u64::from(len);
        let max = self.guard.max_result_bytes;
        let limit = match tag {
            b'D' => {
                if max != 0 && self.guard.row_bytes + 1 + len > max {
                    return Err(self.result_too_large());
                }
                return Ok(());
            }
            b'd' => {
                if max != 0 && 1 + len > max {
                    return Err(self.result_too_large());
                }
                return Ok(());
            }
            b'E' | b'N' | b'A' => MAX_REPORT_MESSAGE,
            b'T' | b't' => MAX_DESCRIPTION_MESSAGE,
            _ => MAX_MESSAGE,
        };
        if len > limit as u64 {
            let what = format!(
                "the server sent a '{}' message of {len} bytes, longer than such a message can be ({limit}): the \
                 connection lost sync",
                tag_text(tag)
            );
            return Err(self.protocol_violation(&what));
        }
        Ok(())
    }

    /// The result outgrew `max_result_bytes`: ask the server to cancel the statement (best
    /// effort, so it stops producing rows) and discard the connection, whose reply is not read
    /// to its end.
    #[cold]
    fn result_too_large(&mut self) -> Error {
        self.broken = true;
        // Best effort, and briefly: the connection is closed either way.
        let _ = self.cancel_key().send_by(Instant::now() + std::time::Duration::from_secs(1));
        Error::operational(
            "54000",
            format!(
                "the statement's result is larger than max_result_bytes ({} bytes): the statement was cancelled and \
                 its connection closed (raise the limit with pgsess_options_set_max_result_bytes, 0 for none, or \
                 read the rows in chunks with a stream)",
                self.guard.max_result_bytes
            ),
        )
    }

    /// A ReadyForQuery was read: unless more replies of the exchange follow, the exchange is
    /// over, and only what a server sends unasked may be left in the read buffer.
    fn end_of_reply(&mut self) -> Result<()> {
        if self.guard.more_replies > 0 {
            self.guard.more_replies -= 1;
            return Ok(());
        }
        self.guard.want_format = Want::Any;
        self.take_unasked(true)
    }

    /// Handle the messages at the front of the read buffer that a server sends unasked
    /// (notifications go into the queue, ParameterStatus updates the parameters, a notice with no
    /// statement to belong to is dropped, a FATAL error breaks the connection); anything else
    /// there is a protocol violation: a reply out of step, or bytes injected into the
    /// connection. A message not all in yet is allowed when `partial_ok` and it is of a type a
    /// server sends unasked (the rest arrives later); otherwise it is a violation too.
    pub(super) fn take_unasked(&mut self, partial_ok: bool) -> Result<()> {
        while let Some(&tag) = self.read_buf.first() {
            if self.read_buf.len() >= 5 {
                self.check_front()?;
            }
            if buffered_message(&self.read_buf).is_none() {
                if partial_ok && sent_unasked(tag) {
                    return Ok(());
                }
                let what = format!(
                    "the server sent part of a '{}' message outside any exchange (a reply out of step, or bytes \
                     injected into the connection)",
                    tag_text(tag)
                );
                return Err(self.protocol_violation(&what));
            }
            match self.decode_front()? {
                Message::NoticeResponse(_) => {} // no statement to attach it to
                Message::NotificationResponse(body) => self.push_notification(&body),
                Message::ParameterStatus(body) => self.store_parameter(&body)?,
                Message::ErrorResponse(body) if server_fields(body.fields()).is_fatal() => {
                    // The server ends the session (a shutdown, pg_terminate_backend): the
                    // connection is done with, the answer before it stands.
                    self.broken = true;
                    self.read_buf.clear();
                    return Ok(());
                }
                _ => {
                    let what = format!(
                        "the server sent a '{}' message outside any exchange (a reply out of step, or bytes injected \
                         into the connection)",
                        tag_text(tag)
                    );
                    return Err(self.protocol_violation(&what));
                }
            }
        }
        Ok(())
    }

    /// Before a statement is sent: what the server sent since the last exchange (or the
    /// checkout) must be messages it sends unasked, wholly arrived (`take_unasked`); anything
    /// else means the connection is out of step, and nothing is sent on it. Costs a poll(2)
    /// unless the checkout just looked (`Guard::idle_checked`).
    pub(super) fn ensure_in_step(&mut self) -> Result<()> {
        if self.read_buf.is_empty() && (self.guard.idle_checked || !self.stream.readable_now()) {
            return Ok(());
        }
        // The start of an unasked message (a notification split across reads) may wait this
        // long for its rest, which a real server sends at once.
        let give_up = Instant::now() + PARTIAL_GRACE;
        // A bounded number of reads: a server that never stops sending unasked messages does
        // not hold the statement here.
        for _ in 0..64 {
            self.take_unasked(true)?;
            if self.broken {
                break;
            }
            if self.read_buf.is_empty() {
                if !self.stream.readable_now() {
                    break;
                }
                self.read_ready()?;
            } else if !self.read_more_until(Some(give_up), None)? {
                break;
            }
        }
        self.take_unasked(false)?;
        if self.broken {
            return Err(Error::operational("08006", format!("the server at {} closed the connection", self.host)));
        }
        // In step until the next write (a batch's later statements need not look again).
        self.guard.idle_checked = true;
        Ok(())
    }

    /// Record a ParameterStatus: a `client_encoding` other than UTF8 is refused (pgsess speaks
    /// only UTF8); so is a parameter past `MAX_PARAMETERS` names or `MAX_PARAMETER_BYTES`
    /// bytes (a protocol violation). Either way the connection is broken. A name or value that
    /// is not UTF-8 is not kept.
    pub(super) fn store_parameter(&mut self, body: &ParameterStatusBody) -> Result<()> {
        let (name, value) = (body.name(), body.value());
        if name.as_deref().ok() == Some("client_encoding") && !value.as_deref().is_ok_and(crate::text::is_utf8_alias) {
            self.broken = true;
            let shown: String = value.as_deref().unwrap_or("(not UTF-8)").chars().take(64).collect();
            return Err(Error::not_supported(format!(
                "the server changed client_encoding to \"{}\"; pgsess only speaks UTF8, so this connection is \
                 closed",
                shown.escape_default()
            )));
        }
        let (Ok(name), Ok(value)) = (name, value) else { return Ok(()) };
        let old = self.parameters.get(name).map_or(0, |v| name.len() + v.len());
        let bytes = self.guard.parameter_bytes.saturating_sub(old) + name.len() + value.len();
        if (old == 0 && self.parameters.len() >= MAX_PARAMETERS) || bytes > MAX_PARAMETER_BYTES {
            let what = format!(
                "the server reported more parameters than a server has ({} names, {bytes} bytes; at most \
                 {MAX_PARAMETERS} names and {MAX_PARAMETER_BYTES} bytes are kept)",
                self.parameters.len() + usize::from(old == 0)
            );
            return Err(self.protocol_violation(&what));
        }
        self.guard.parameter_bytes = bytes;
        if let Some(v) = self.parameters.get_mut(name) {
            v.clear();
            v.push_str(value);
        } else {
            self.parameters.insert(name.to_owned(), value.to_owned());
        }
        Ok(())
    }

    /// The RowDescription at the front of the read buffer (`total` bytes): the columns of the
    /// rows that follow. One equal to the last on this connection (the same statement run again,
    /// as pooled services do) reuses its columns; another is decoded and becomes the last.
    fn row_description(&mut self, set: &mut ResultSet, total: usize) -> Result<()> {
        if let Some((raw, columns)) = &self.last_row_description {
            if raw[..] == self.read_buf[..total] {
                let columns = columns.clone();
                self.check_formats(&columns)?;
                set.begin_rows(columns);
                self.read_buf.advance(total);
                return Ok(());
            }
        }
        let raw = self.read_buf[..total].to_vec();
        let Message::RowDescription(body) = self.decode_front()? else {
            unreachable!("a message of type 'T' is a RowDescription")
        };
        let mut columns = Vec::new();
        let mut fields = body.fields();
        while let Some(f) = fields.next().map_err(|_| self.protocol_violation("malformed row description"))? {
            let name = std::ffi::CString::new(f.name()).unwrap_or_default();
            columns.push(Column {
                name,
                type_oid: f.type_oid(),
                format: f.format(),
                type_modifier: f.type_modifier(),
                table_oid: f.table_oid(),
                table_column: f.column_id(),
                type_size: f.type_size(),
            });
        }
        let columns: Arc<[Column]> = columns.into();
        self.check_formats(&columns)?;
        self.last_row_description = Some((raw, columns.clone()));
        set.begin_rows(columns);
        Ok(())
    }

    /// The columns of a RowDescription must come in the formats the statement asked for
    /// (`Guard::want_format`), or, for the simple protocol, in text or binary (a binary
    /// cursor's rows): any other format code, or a column count other than the one bound, is a
    /// protocol violation, so values are never read as a format they are not in.
    fn check_formats(&mut self, columns: &[Column]) -> Result<()> {
        let mismatch = match &self.guard.want_format {
            Want::Any => columns.iter().find(|c| c.format != FORMAT_TEXT && c.format != FORMAT_BINARY).map(|c| {
                format!(
                    "the server sent a column in format {} where the statement asked for text (0) or binary (1)",
                    c.format
                )
            }),
            Want::All(w) => columns.iter().find(|c| c.format != *w).map(|c| {
                let asked = if *w == FORMAT_BINARY { "binary (1)" } else { "text (0)" };
                format!("the server sent a column in format {} where the statement asked for {asked}", c.format)
            }),
            Want::Each(w) if w.len() != columns.len() => Some(format!(
                "the server sent {} columns where the statement bound formats for {}",
                columns.len(),
                w.len()
            )),
            Want::Each(w) => columns.iter().zip(w.iter()).position(|(c, f)| c.format != *f).map(|i| {
                format!(
                    "the server sent column {i} in format {} where the statement asked for {}",
                    columns[i].format, w[i]
                )
            }),
        };
        match mismatch {
            Some(what) => Err(self.protocol_violation(&what)),
            None => Ok(()),
        }
    }

    /// Whether the server reported it can no longer write: SQLSTATE 25006, or (PostgreSQL 14+)
    /// `in_hot_standby` / `default_transaction_read_only` turned on.
    fn server_turned_read_only(&self, error: Option<&Error>) -> bool {
        error.and_then(Error::sqlstate) == Some("25006")
            || self.parameter("in_hot_standby") == Some("on")
            || self.parameter("default_transaction_read_only") == Some("on")
    }
}

/// Where a read of backend messages ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    ReadyForQuery,
    /// At ReadyForQuery, answering a Sync alone or a Describe: no statement's answer comes
    /// before it.
    SyncOnly,
    /// At ReadyForQuery answering the Sync that closes a many-reply exchange (a batch, a reset):
    /// nothing but ReadyForQuery and messages a server sends unasked may come. A reply injected
    /// anywhere in the exchange shifts every later reply by one, so this one then starts with a
    /// statement's answer and the shift is caught before any of the exchange's answers is used,
    /// however the bytes were split across reads.
    BareSync,
    /// At ReadyForQuery, or once the result holds this many rows with the reply still coming
    /// (a stream's chunk: the rest is read by the next call, with nothing sent in between).
    Rows(u32),
    /// At CopyInResponse: the server waits for COPY FROM STDIN's data.
    CopyIn,
    /// At CopyOutResponse: COPY TO STDOUT's data follows.
    CopyOut,
    /// At either.
    Copy,
}

#[cfg(test)]
mod tests {
    use super::{buffered_message, complete_message};

    #[test]
    fn a_message_is_complete_only_with_a_sane_length_and_all_its_bytes() {
        assert_eq!(complete_message(b"C\0\0\0\x0dSELECT 1\0Z", b'C'), Some(14));
        assert_eq!(complete_message(b"C\0\0\0\x0dSELECT", b'C'), None, "not all in yet");
        assert_eq!(complete_message(b"1\0\0\0\x04", b'1'), Some(5), "a bodiless message");
        assert_eq!(complete_message(b"C\0\0\0\x0dSELECT 1\0", b'D'), None, "another type");
        for bad in [&b"C\0\0\0\0"[..], b"C\0\0\0\x03xyz"] {
            assert_eq!(complete_message(bad, b'C'), None, "length field under 4: {bad:?}");
        }
        assert_eq!(complete_message(b"C\0\0", b'C'), None);
    }

    #[test]
    fn a_message_is_buffered_once_all_its_bytes_are_in_whatever_its_type() {
        assert_eq!(buffered_message(b"S\0\0\0\x08abcdZ"), Some(9));
        assert_eq!(buffered_message(b"S\0\0\0\x08abc"), None, "not all in yet");
        assert_eq!(buffered_message(b"S\0\0"), None, "no length yet");
        assert_eq!(buffered_message(b"S\0\0\0\x02"), Some(3), "a bad length is left to the decoder");
    }
}
