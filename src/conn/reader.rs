//! Reading a statement's reply: the backend messages of one exchange, read through to
//! ReadyForQuery (or, for a stream's chunk, to PortalSuspended), their rows going straight into a
//! `ResultSet`. `exec` sends the statements; everything the server answers is read here.
//!
//! Every exchange is read through to ReadyForQuery, so the connection stays in step even when a
//! statement fails; a FATAL error or an I/O failure marks it broken instead.

use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{Message, NoticeResponseBody};
use postgres_protocol::message::frontend;

use super::{server_fields, Exchange, PgConn, TxStatus};
use crate::error::{Code, Error, Result};
use crate::rows::typed::oid;
use crate::rows::{Column, CommandTag, ResultSet};

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

impl PgConn {
    /// Read one exchange through to ReadyForQuery (or, for `Stop::PortalSuspended`, to the end
    /// of a chunk; for `Stop::CopyIn`/`CopyOut`, to the start of the copy), into a new
    /// `ResultSet`. The flag is true when it stopped early: a suspended portal has more rows, or
    /// the COPY has begun.
    pub(super) fn collect(&mut self, deadline: Option<Instant>, stop: Stop) -> Result<(ResultSet, bool)> {
        let mut set = ResultSet::default();
        let more = self.collect_into(&mut set, false, deadline, stop)?;
        Ok((set, more))
    }

    /// `collect`, into `set`.
    pub(super) fn collect_into(
        &mut self,
        set: &mut ResultSet,
        mut rows_started: bool,
        deadline: Option<Instant>,
        mut stop: Stop,
    ) -> Result<bool> {
        set.backend_pid = self.backend_pid;
        let mut error: Option<Error> = None;
        let mut empty_query = false;
        // Stopped before ReadyForQuery: at PortalSuspended or at the start of a COPY (`stop`).
        let mut stopped_early = false;
        let mut deadline = deadline;
        let mut cancel_at = self.statement_timeout.map(|t| Instant::now() + t);
        loop {
            // The messages of every statement's reply, read in place once all of a message is in.
            self.take_data_rows(set)?;
            self.skip_completions();
            if let [b'Z', 0, 0, 0, 5, status, ..] = self.read_buf[..] {
                // ReadyForQuery, the end of every exchange.
                self.read_buf.advance(6);
                self.tx_status = TxStatus::from_indicator(status);
                break;
            }
            if let Some(total) = complete_message(&self.read_buf, b'C') {
                // CommandComplete, its tag read in place.
                let tag = CommandTag::from_message_body(&self.read_buf[5..total]).unwrap_or_default();
                self.read_buf.advance(total);
                self.command_complete(set, tag, &mut rows_started, &mut stop, deadline)?;
                empty_query = false;
                continue;
            }
            if let Some(total) = complete_message(&self.read_buf, b'T') {
                self.row_description(set, total)?;
                rows_started = true;
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
                if self.read_rest_of_message(wake)? {
                    continue;
                }
                if cancel_at.is_some_and(|c| Instant::now() >= c) {
                    // The statement timeout passed: ask the server to cancel, then give it a
                    // grace period to answer (with 57014) before declaring the connection dead.
                    cancel_at = None;
                    let grace = Instant::now() + super::CANCEL_GRACE;
                    deadline = Some(deadline.map_or(grace, |d| d.min(grace)));
                    if self.cancel_key().send().is_err() {
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
            match self.decode_front()? {
                Message::EmptyQueryResponse => {
                    set.reset_statement();
                    empty_query = true;
                    self.end_chunked_exchange(&mut stop, deadline)?;
                }
                Message::ParameterDescription(body) => self.last_param_count = body.parameters().count().ok(),
                Message::PortalSuspended if stop == Stop::PortalSuspended => {
                    stopped_early = true;
                    break;
                }
                Message::PortalSuspended => {}
                Message::NoticeResponse(body) => self.take_notice(set, &body),
                Message::ParameterStatus(body) => {
                    self.handle_parameter_status(&body);
                    if body.name().ok() == Some("client_encoding") && body.value().ok() != Some("UTF8") {
                        self.broken = true;
                        error.get_or_insert_with(|| {
                            Error::not_supported(
                                "client_encoding was changed away from UTF8; pgsess only speaks UTF8, so this connection is closed",
                            )
                        });
                    }
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
                    error.get_or_insert(e);
                    self.end_chunked_exchange(&mut stop, deadline)?;
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
                        // leave the connection a reply behind), as libpq does. A stream's
                        // exchange (ended by Flush) takes the Sync that ends it, once.
                        if stop == Stop::PortalSuspended {
                            self.end_chunked_exchange(&mut stop, deadline)?;
                        } else {
                            frontend::sync(&mut self.write_buf);
                        }
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
                _ => return Err(self.protocol_violation("unexpected message while reading a result")),
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
        set.notices.push(std::ffi::CString::new(fields.libpq_text()).unwrap_or_default());
        if let Some(hook) = &self.notice_hook {
            hook.call(&fields);
        }
    }

    /// Append every complete DataRow at the front of the read buffer to `set`, parsing them in
    /// place: the bulk of a large result never becomes a `Message`.
    fn take_data_rows(&mut self, set: &mut ResultSet) -> Result<()> {
        let ncols = set.columns().len();
        while let Some(total) = complete_message(&self.read_buf, b'D') {
            if total < 7 {
                break; // too short to be a DataRow: the message decoder reports it
            }
            let count = u16::from_be_bytes([self.read_buf[5], self.read_buf[6]]) as usize;
            if count != ncols || !set.push_raw_row(&self.read_buf[7..total], ncols) {
                return Err(self.protocol_violation("data row does not match the row description"));
            }
            self.read_buf.advance(total);
        }
        Ok(())
    }

    /// A statement's CommandComplete: its tag, and the end of a chunked exchange.
    fn command_complete(
        &mut self,
        set: &mut ResultSet,
        tag: CommandTag,
        rows_started: &mut bool,
        stop: &mut Stop,
        deadline: Option<Instant>,
    ) -> Result<()> {
        if !*rows_started {
            set.reset_statement();
        }
        *rows_started = false;
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
        self.end_chunked_exchange(stop, deadline)
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

    /// Wait for more of the message at the front of the read buffer, with room reserved for all
    /// of it (a large message is not read into a buffer grown a chunk at a time); false when
    /// `wake` passed first (the partial message stays buffered).
    pub(super) fn read_rest_of_message(&mut self, wake: Option<Instant>) -> Result<bool> {
        if let [_, a, b, c, d, ..] = self.read_buf[..] {
            let total = 1 + u32::from_be_bytes([a, b, c, d]) as usize;
            self.read_buf.reserve(total.saturating_sub(self.read_buf.len()));
        }
        self.read_more_until(wake)
    }

    /// Decode the message at the front of the read buffer, all of it there (`buffered_message`).
    pub(super) fn decode_front(&mut self) -> Result<Message> {
        match Message::parse(&mut self.read_buf) {
            Ok(Some(msg)) => Ok(msg),
            Ok(None) => unreachable!("the whole message is buffered"),
            Err(e) => Err(self.io_failure(e)),
        }
    }

    /// The RowDescription at the front of the read buffer (`total` bytes): the columns of the
    /// rows that follow. One equal to the last on this connection (the same statement run again,
    /// as pooled services do) reuses its columns; another is decoded and becomes the last.
    fn row_description(&mut self, set: &mut ResultSet, total: usize) -> Result<()> {
        if let Some((raw, columns)) = &self.last_row_description {
            if raw[..] == self.read_buf[..total] {
                set.begin_rows(columns.clone());
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
            columns.push(Column { name, type_oid: f.type_oid(), format: f.format() });
        }
        let columns: Arc<[Column]> = columns.into();
        self.last_row_description = Some((raw, columns.clone()));
        set.begin_rows(columns);
        Ok(())
    }

    /// Whether the server reported it can no longer write: SQLSTATE 25006, or (PostgreSQL 14+)
    /// `in_hot_standby` / `default_transaction_read_only` turned on.
    fn server_turned_read_only(&self, error: Option<&Error>) -> bool {
        error.and_then(Error::sqlstate) == Some("25006")
            || self.parameter("in_hot_standby") == Some("on")
            || self.parameter("default_transaction_read_only") == Some("on")
    }

    /// A chunked exchange (sent with Flush) has ended: send the Sync that ends it and read on to
    /// ReadyForQuery.
    fn end_chunked_exchange(&mut self, stop: &mut Stop, deadline: Option<Instant>) -> Result<()> {
        if *stop == Stop::PortalSuspended {
            *stop = Stop::ReadyForQuery;
            frontend::sync(&mut self.write_buf);
            self.flush_writes(deadline)?;
        }
        Ok(())
    }
}

/// Where a read of backend messages ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    ReadyForQuery,
    PortalSuspended,
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
