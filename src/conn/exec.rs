//! Running statements on one connection and collecting their rows as text.
//!
//! - With parameters: the unnamed statement of the extended protocol, sent in one write (Parse,
//!   Describe, Bind, Execute, Sync): one round trip, no named prepared statement (works behind
//!   PgBouncer in transaction mode), types inferred by the server as `PQexecParams` does, results
//!   in text format.
//! - Without parameters: the simple protocol, as `PQexec`, so a string of several statements runs
//!   and the last statement's result is returned.
//!
//! Every exchange is read through to ReadyForQuery, so the connection stays in step even when a
//! statement fails; a FATAL error or an I/O failure marks it broken instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;

use super::{server_fields, Exchange, PgConn, TxStatus};
use crate::config::ResetMode;
use crate::error::{Code, Error, Result};
use crate::rows::typed::oid;
use crate::rows::{Column, CommandTag, ResultSet};

/// The length (type byte included) of the message at the front of `buf` when it is of type
/// `tag` and wholly in `buf`. A length field under 4 (it counts itself) is no message: `None`,
/// and the message decoder reports it.
#[inline]
fn complete_message(buf: &[u8], tag: u8) -> Option<usize> {
    match *buf {
        [t, a, b, c, d, ..] if t == tag => {
            let total = 1 + u32::from_be_bytes([a, b, c, d]) as usize;
            (total >= 5 && buf.len() >= total).then_some(total)
        }
        _ => None,
    }
}

/// The largest number of parameters the protocol can carry (a 16-bit count).
pub const MAX_PARAMS: usize = u16::MAX as usize;

/// Refuse a statement with more parameters than the protocol can carry (its Bind message counts
/// them in 16 bits), before anything is built or sent.
pub fn check_param_count(n: usize) -> Result<()> {
    if n > MAX_PARAMS {
        return Err(Error::interface(format!("too many parameters: {n} (the protocol allows {MAX_PARAMS})")));
    }
    Ok(())
}

/// How long returning a connection may spend rolling back an open transaction.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

impl PgConn {
    /// Run `sql`, the extended protocol when there are parameters, the simple one otherwise, its
    /// rows going into `set` (filled in place: a statement's results are built where they will
    /// stay, never copied on the way up).
    pub fn execute_into(&mut self, sql: &str, params: &[Option<&[u8]>], set: &mut ResultSet) -> Result<()> {
        self.lend_spare_rows(set);
        if params.is_empty() {
            self.simple_query_into(sql, set)
        } else {
            self.run_extended(sql, &[], text_params(params), set)
        }
    }

    /// `PQexec`: one Query message, any number of statements, the last one's result.
    pub fn simple_query(&mut self, sql: &str) -> Result<ResultSet> {
        let mut set = ResultSet::default();
        self.simple_query_into(sql, &mut set)?;
        Ok(set)
    }

    fn simple_query_into(&mut self, sql: &str, set: &mut ResultSet) -> Result<()> {
        self.ensure_usable()?;
        self.note_sql(sql);
        frontend::query(sql, &mut self.write_buf).map_err(|_| Error::interface("the SQL text contains a NUL byte"))?;
        self.exchange = Exchange::Simple;
        self.flush_writes(None)?;
        self.collect_into(set, false, None, Stop::ReadyForQuery).map(drop)
    }

    /// `PQexecParams` in full: declared parameter types (0 lets the server infer one), text or
    /// binary parameters; results in text, into `set`.
    pub fn query_params_into(
        &mut self,
        sql: &str,
        types: &[u32],
        params: &[Param<'_>],
        set: &mut ResultSet,
    ) -> Result<()> {
        self.lend_spare_rows(set);
        self.run_extended(sql, types, params.iter().copied(), set)
    }

    /// Give `set` the row storage a freed result left with this connection. Only for the
    /// statements whose results can give it back (`Results::drop` of a single statement's
    /// results): a BEGIN's or a reset's result would only free it.
    fn lend_spare_rows(&mut self, set: &mut ResultSet) {
        if let Some(storage) = self.spare_rows.take() {
            set.reuse_storage(storage);
        }
    }

    /// One statement on the unnamed statement and portal, read through to ReadyForQuery.
    fn run_extended<'p, P>(&mut self, sql: &str, types: &[u32], params: P, set: &mut ResultSet) -> Result<()>
    where
        P: ExactSizeIterator<Item = Param<'p>> + Clone,
    {
        let given = params.len();
        self.send_extended(sql, types, params, 0, false)?;
        let outcome = self.collect_into(set, false, None, Stop::ReadyForQuery).map(drop);
        self.explain_param_mismatch(outcome, sql, types, given)
    }

    /// Pipelining: every statement sent in one write, each with its own Sync (so each is its own
    /// implicit transaction and one statement's error does not abort the others), then each
    /// result read in order. One round trip for the batch. The outer error is for the batch as a
    /// whole (the connection broke); the inner ones are per statement.
    pub fn pipeline(&mut self, statements: &[BatchStatement]) -> Result<Vec<Result<ResultSet>>> {
        for st in statements {
            let params = st.params.iter().map(|p| Param { value: p.as_deref(), binary: false });
            if let Err(e) = self.queue_extended(&st.sql, &[], params, 0, false, true) {
                self.write_buf.clear();
                return Err(e);
            }
        }
        self.flush_writes(None)?;
        let mut out = Vec::with_capacity(statements.len());
        for _ in statements {
            match self.collect(None, Stop::ReadyForQuery) {
                Ok((set, _)) => out.push(Ok(set)),
                Err(e) if self.broken => return Err(e),
                Err(e) => out.push(Err(e)),
            }
        }
        Ok(out)
    }

    /// Start a statement whose rows come `chunk_rows` at a time: the first chunk, and whether
    /// more rows remain (the portal is suspended until `stream_more` or `stream_abandon`).
    pub fn stream_open(&mut self, sql: &str, params: &[Option<&[u8]>], chunk_rows: u32) -> Result<(ResultSet, bool)> {
        self.send_extended(sql, &[], text_params(params), chunk_rows, true)?;
        let outcome = self.collect(None, Stop::PortalSuspended);
        self.explain_param_mismatch(outcome, sql, &[], params.len())
    }

    /// A Bind with the wrong number of values fails with 08P01. Only then, ask the server how
    /// many parameters the statement takes (one more round trip, on the error path alone) and
    /// say plainly what was wrong.
    fn explain_param_mismatch<T>(&mut self, outcome: Result<T>, sql: &str, types: &[u32], given: usize) -> Result<T> {
        let e = match outcome {
            Err(e) if e.sqlstate() == Some("08P01") && !self.broken => e,
            other => return other,
        };
        let expected = (|| {
            frontend::parse("", sql, types.iter().copied(), &mut self.write_buf).ok()?;
            frontend::describe(b'S', "", &mut self.write_buf).ok()?;
            frontend::sync(&mut self.write_buf);
            self.flush_writes(None).ok()?;
            self.collect(None, Stop::ReadyForQuery).ok()?;
            self.last_param_count.take()
        })();
        match expected {
            Some(expected) if expected != given => Err(Error {
                code: Code::PGSESS_INTERFACE_ERROR,
                message: format!("the statement takes {expected} parameter(s) but {given} were given"),
                ..e
            }),
            _ => Err(e),
        }
    }

    /// The next chunk of a suspended portal whose rows have these columns.
    pub fn stream_more(&mut self, columns: &Arc<[Column]>, chunk_rows: u32) -> Result<(ResultSet, bool)> {
        self.ensure_usable()?;
        frontend::execute("", max_rows(chunk_rows), &mut self.write_buf).expect("empty name has no NUL");
        frontend::flush(&mut self.write_buf);
        self.flush_writes(None)?;
        let mut set = ResultSet::default();
        set.begin_rows(columns.clone());
        let more = self.collect_into(&mut set, true, None, Stop::PortalSuspended)?;
        Ok((set, more))
    }

    /// Close a suspended portal early: Sync ends it and the implicit transaction.
    pub fn stream_abandon(&mut self) {
        if self.broken || self.inherited() {
            return;
        }
        frontend::sync(&mut self.write_buf);
        let deadline = Some(Instant::now() + RESET_TIMEOUT);
        if self.flush_writes(deadline).is_err() || self.collect(deadline, Stop::ReadyForQuery).is_err() {
            self.broken = true;
        }
    }

    /// Parse (unnamed), Describe statement, Bind, Execute, then Sync, or Flush when the portal is
    /// to stay open for more chunks: all in one write.
    fn send_extended<'p, P>(&mut self, sql: &str, types: &[u32], params: P, rows: u32, keep_open: bool) -> Result<()>
    where
        P: ExactSizeIterator<Item = Param<'p>> + Clone,
    {
        self.queue_extended(sql, types, params, rows, keep_open, false)
    }

    /// Queue Parse/Bind/Describe/Execute and Sync (or Flush); send unless `batching`.
    fn queue_extended<'p, P>(
        &mut self,
        sql: &str,
        types: &[u32],
        params: P,
        rows: u32,
        keep_open: bool,
        batching: bool,
    ) -> Result<()>
    where
        P: ExactSizeIterator<Item = Param<'p>> + Clone,
    {
        self.ensure_usable()?;
        check_param_count(params.len())?;
        self.note_sql(sql);
        frontend::parse("", sql, types.iter().copied(), &mut self.write_buf)
            .map_err(|_| Error::interface("the SQL text contains a NUL byte"))?;
        self.exchange = if batching { Exchange::Pipelined } else { Exchange::Extended };
        let all_text = params.clone().all(|p| !p.binary);
        let formats = params.clone().filter(|_| !all_text).map(|p| i16::from(p.binary));
        let bound = frontend::bind(
            "",
            "",
            formats,
            params,
            |p: Param<'_>, buf| match p.value {
                None => Ok::<_, Box<dyn std::error::Error + Sync + Send>>(IsNull::Yes),
                Some(bytes) => {
                    buf.put_slice(bytes);
                    Ok(IsNull::No)
                }
            },
            std::iter::empty::<i16>(),
            &mut self.write_buf,
        );
        if bound.is_err() {
            self.write_buf.clear();
            return Err(Error::interface("a parameter is too large to send (over 2 GiB)"));
        }
        frontend::describe(b'P', "", &mut self.write_buf).expect("empty name has no NUL");
        frontend::execute("", max_rows(rows), &mut self.write_buf).expect("empty name has no NUL");
        if keep_open {
            frontend::flush(&mut self.write_buf);
        } else {
            frontend::sync(&mut self.write_buf);
        }
        if batching {
            return Ok(());
        }
        self.flush_writes(None)
    }

    /// Keep the emptied row storage of a result for the next statement's rows.
    pub fn keep_row_storage(&mut self, storage: crate::rows::RowStorage) {
        self.spare_rows = Some(storage);
    }

    /// Mark the connection as changed when `sql` names something the tags do not show.
    #[inline]
    fn note_sql(&mut self, sql: &str) {
        if !self.session_changed && super::state::sql_may_change_session(sql) {
            self.session_changed = true;
        }
    }

    /// Whether a statement since the last reset may have changed session state.
    pub fn session_changed(&self) -> bool {
        self.session_changed
    }

    /// Before a connection goes back to the pool: roll back any transaction left open or aborted,
    /// then, as `mode` says, undo session state with `DISCARD ALL` (both in one round trip).
    /// Returns false when the connection cannot be reused.
    pub fn reset_for_reuse(&mut self, mode: ResetMode) -> bool {
        if self.broken || self.inherited() {
            return false;
        }
        let rollback = self.tx_status != TxStatus::Idle;
        let discard = match mode {
            ResetMode::Always => true,
            ResetMode::Dirty => self.session_changed,
            ResetMode::Never => false,
        };
        if !rollback && !discard {
            return true;
        }
        // Two Query messages in one write: DISCARD ALL may not run inside a transaction block,
        // and as its own message it runs after the ROLLBACK has ended it.
        let mut replies = 0;
        for (wanted, sql) in [(rollback, "ROLLBACK"), (discard, "DISCARD ALL")] {
            if wanted {
                frontend::query(sql, &mut self.write_buf).expect("no NUL");
                replies += 1;
            }
        }
        self.exchange = Exchange::Simple;
        let deadline = Some(Instant::now() + RESET_TIMEOUT);
        let ok = self.flush_writes(deadline).is_ok()
            && (0..replies).all(|_| self.collect(deadline, Stop::ReadyForQuery).is_ok());
        if !ok || self.tx_status != TxStatus::Idle {
            self.broken = true;
        }
        self.session_changed = false;
        !self.broken
    }

    fn ensure_usable(&mut self) -> Result<()> {
        if self.broken {
            return Err(Error::operational("08003", format!("the connection to {} is broken", self.host)));
        }
        if self.inherited() {
            return Err(Error::interface("this connection was inherited across fork() and cannot be used"));
        }
        Ok(())
    }

    /// Read one exchange through to ReadyForQuery (or, for `Stop::PortalSuspended`, to the end
    /// of a chunk). `nparams` is the number of parameters sent on the extended path, to explain
    /// a parameter count mismatch. The flag is true when a suspended portal has more rows.
    fn collect(&mut self, deadline: Option<Instant>, stop: Stop) -> Result<(ResultSet, bool)> {
        let mut set = ResultSet::default();
        let more = self.collect_into(&mut set, false, deadline, stop)?;
        Ok((set, more))
    }

    /// `collect`, into `set`.
    fn collect_into(
        &mut self,
        set: &mut ResultSet,
        mut rows_started: bool,
        deadline: Option<Instant>,
        mut stop: Stop,
    ) -> Result<bool> {
        set.backend_pid = self.backend_pid;
        let mut error: Option<Error> = None;
        let mut empty_query = false;
        let mut suspended = false;
        let mut deadline = deadline;
        let mut cancel_at = self.statement_timeout.map(|t| Instant::now() + t);
        // The raw bytes of a RowDescription about to be decoded, to cache with its columns.
        let mut new_row_description: Option<Vec<u8>> = None;
        loop {
            let wake = match (deadline, cancel_at) {
                (Some(d), Some(c)) => Some(d.min(c)),
                (d, c) => d.or(c),
            };
            if self.read_buf.is_empty() {
                // Wait for the answer here, so that the fast paths below see its first messages
                // (a timeout is handled when read_message_until finds the deadline passed).
                self.read_more_until(wake)?;
            }
            self.take_data_rows(set)?;
            self.skip_completions();
            if let [b'Z', 0, 0, 0, 5, status, ..] = self.read_buf[..] {
                // ReadyForQuery, the end of every exchange, read without decoding a Message.
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
                // A RowDescription equal to the last one on this connection (the same statement
                // run again, as pooled services do) reuses its columns.
                if let Some((raw, columns)) = &self.last_row_description {
                    if raw[..] == self.read_buf[..total] {
                        set.begin_rows(columns.clone());
                        rows_started = true;
                        self.read_buf.advance(total);
                        continue;
                    }
                }
                new_row_description = Some(self.read_buf[..total].to_vec());
            }
            let msg = match self.read_message_until(wake)? {
                Some(msg) => msg,
                None if cancel_at.is_some_and(|c| Instant::now() >= c) => {
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
                None => {
                    let e = self.io_failure(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"));
                    return Err(Error {
                        message: format!("{} (no answer after the statement was cancelled)", e.message),
                        ..e
                    });
                }
            };
            match msg {
                Message::DataRow(body) => {
                    // A row completed inside read_message_until: the same parser as take_data_rows.
                    let ncols = set.columns().len();
                    if body.ranges().count().ok() != Some(ncols) || !set.push_raw_row(body.buffer(), ncols) {
                        return Err(self.protocol_violation("data row does not match the row description"));
                    }
                }
                Message::RowDescription(body) => {
                    let mut columns = Vec::new();
                    let mut fields = body.fields();
                    while let Some(f) =
                        fields.next().map_err(|_| self.protocol_violation("malformed row description"))?
                    {
                        let name = std::ffi::CString::new(f.name()).unwrap_or_default();
                        columns.push(Column { name, type_oid: f.type_oid() });
                    }
                    let columns: Arc<[Column]> = columns.into();
                    if let Some(raw) = new_row_description.take() {
                        self.last_row_description = Some((raw, columns.clone()));
                    }
                    set.begin_rows(columns);
                    rows_started = true;
                }
                Message::CommandComplete(body) => {
                    let tag = CommandTag::new(body.tag().unwrap_or_default());
                    self.command_complete(set, tag, &mut rows_started, &mut stop, deadline)?;
                    empty_query = false;
                }
                Message::EmptyQueryResponse => {
                    set.reset_statement();
                    empty_query = true;
                    self.end_chunked_exchange(&mut stop, deadline)?;
                }
                Message::ParameterDescription(body) => self.last_param_count = body.parameters().count().ok(),
                Message::PortalSuspended if stop == Stop::PortalSuspended => {
                    suspended = true;
                    break;
                }
                Message::ParseComplete
                | Message::BindComplete
                | Message::NoData
                | Message::CloseComplete
                | Message::PortalSuspended => {}
                Message::NoticeResponse(body) => {
                    let text = server_fields(body.fields()).libpq_text();
                    set.notices.push(std::ffi::CString::new(text).unwrap_or_default());
                }
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
                Message::NotificationResponse(_) => {}
                Message::ErrorResponse(body) => {
                    let fields = server_fields(body.fields());
                    let fatal = fields.is_fatal();
                    let e = Error::from_server(fields);
                    if fatal {
                        // The server closes the connection after a FATAL error: no ReadyForQuery follows.
                        self.broken = true;
                        return Err(e);
                    }
                    error.get_or_insert(e);
                    self.end_chunked_exchange(&mut stop, deadline)?;
                }
                Message::CopyInResponse(_) => {
                    let refused = || Error::not_supported("COPY ... FROM STDIN is not supported by pgsess");
                    if self.exchange == Exchange::Pipelined {
                        // The server, now in copy-in mode, takes the batch's later statements for
                        // bad copy data: their answers cannot be matched up any more. Discard the
                        // connection (the batch fails as a whole).
                        self.broken = true;
                        return Err(refused());
                    }
                    frontend::copy_fail("COPY FROM STDIN is not supported by pgsess", &mut self.write_buf)
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
                    error.get_or_insert_with(|| Error::not_supported("COPY ... TO STDOUT is not supported by pgsess"));
                }
                Message::ReadyForQuery(body) => {
                    self.tx_status = TxStatus::from_indicator(body.status());
                    break;
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
        Ok(suspended)
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
        if !self.session_changed && super::state::tag_changes_session(tag.as_c_str().to_bytes()) {
            self.session_changed = true;
        }
        set.command_tag = tag;
        self.end_chunked_exchange(stop, deadline)
    }

    /// Drop the bodiless acknowledgements (ParseComplete, BindComplete, CloseComplete, NoData) at
    /// the front of the read buffer: every extended-protocol statement gets two or three, and
    /// they need no decoding.
    fn skip_completions(&mut self) {
        while let [b'1' | b'2' | b'3' | b'n', 0, 0, 0, 4, ..] = self.read_buf[..] {
            self.read_buf.advance(5);
        }
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
enum Stop {
    ReadyForQuery,
    PortalSuspended,
}

/// One parameter of `query_params`: its bytes (None for NULL) and whether they are binary.
#[derive(Clone, Copy, Debug)]
pub struct Param<'a> {
    pub value: Option<&'a [u8]>,
    pub binary: bool,
}

/// One statement of a pipelined batch: SQL and text parameters (None is NULL).
#[derive(Clone, Debug, Default)]
pub struct BatchStatement {
    pub sql: String,
    pub params: Vec<Option<Vec<u8>>>,
}

/// Text parameters as `Param`s, without collecting them.
fn text_params<'p>(params: &'p [Option<&'p [u8]>]) -> impl ExactSizeIterator<Item = Param<'p>> + Clone + 'p {
    params.iter().map(|&value| Param { value, binary: false })
}

/// Execute's row limit: 0 means all rows.
fn max_rows(rows: u32) -> i32 {
    rows.min(i32::MAX as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::complete_message;

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
}
