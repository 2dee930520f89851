//! Sending statements on one connection: simple and extended queries, pipelined batches, and
//! streams (one statement's reply read a chunk of rows at a time). Each operation writes its messages, then reads the
//! reply with `reader` (`collect_into`), which fills the statement's `ResultSet`.
//!
//! - With parameters: the unnamed statement of the extended protocol, sent in one write (Parse,
//!   Describe, Bind, Execute, Sync): one round trip, no named prepared statement (works behind
//!   PgBouncer in transaction mode), types inferred by the server as `PQexecParams` does, results
//!   in text format.
//! - Without parameters: the simple protocol, as `PQexec`, so a string of several statements runs
//!   and the last statement's result is returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BufMut;
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;

use super::cache;
use super::reader::{Stop, Want};
use super::{Exchange, PgConn, TxStatus};
use crate::config::ResetMode;
use crate::error::{Code, Error, Result};
use crate::rows::{Column, ResultSet, FORMAT_BINARY, FORMAT_TEXT};

/// The largest number of parameters the protocol can carry (a 16-bit count).
pub const MAX_PARAMS: usize = u16::MAX as usize;

/// Refuse a statement with more parameters than the protocol can carry (its Bind message counts
/// them in 16 bits), before anything is built or sent.
#[inline]
pub fn check_param_count(n: usize) -> Result<()> {
    if n > MAX_PARAMS {
        return Err(Error::interface(format!("too many parameters: {n} (the protocol allows {MAX_PARAMS})")));
    }
    Ok(())
}

/// How long returning a connection may spend rolling back an open transaction.
pub(super) const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `stream_abandon` reads the rest of a stream's reply before it asks the server to
/// cancel the statement, and how many rows it reads (and drops) at a time.
const ABANDON_PATIENCE: Duration = Duration::from_millis(20);
const ABANDON_CHUNK: u32 = 4096;

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
        self.ensure_usable_to_send()?;
        self.ensure_no_open_stream()?;
        self.note_sql(sql);
        frontend::query(sql, &mut self.write_buf).map_err(|_| Error::interface("the SQL text contains a NUL byte"))?;
        self.exchange = Exchange::Simple;
        self.expect_reply(Want::Any, 1);
        self.flush_writes(None).map_err(Error::mark_unsent)?;
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

    /// `query_params_into` with every result column in binary (`PQexecParams` with
    /// `resultFormat = 1`).
    pub fn query_binary_into(
        &mut self,
        sql: &str,
        types: &[u32],
        params: &[Param<'_>],
        set: &mut ResultSet,
    ) -> Result<()> {
        self.lend_spare_rows(set);
        self.run_extended_as(sql, types, params.iter().copied(), true, set)
    }

    /// `execute_into` with the columns of the types `rows::binary::prefers_binary` names in
    /// binary, once the statement cache knows the statement's result types (from its first
    /// reply on this connection; the first run's columns are all text). Without parameters, a
    /// string with one statement (`one_statement`) goes on the extended protocol to be cached,
    /// and any other on the simple protocol as `execute_into`. Without a statement cache
    /// this is `execute_into`: the unnamed statement's result types are not known before Bind.
    pub fn query_typed_into(&mut self, sql: &str, params: &[Option<&[u8]>], set: &mut ResultSet) -> Result<()> {
        let cached = self.cache.as_ref().is_some_and(cache::StatementCache::enabled);
        if !cached || (params.is_empty() && !one_statement(sql)) {
            return self.execute_into(sql, params, set);
        }
        self.lend_spare_rows(set);
        let given = params.len();
        let shape = Shape { typed: true, ..Shape::UNNAMED };
        let outcome = self.run_one(sql, &[], text_params(params), shape, set).map(drop);
        self.explain_param_mismatch(outcome, sql, &[], given)
    }

    /// One statement read through to ReadyForQuery: through the statement cache when the pool
    /// has one, else on the unnamed statement.
    fn run_extended<'p, P>(&mut self, sql: &str, types: &[u32], params: P, set: &mut ResultSet) -> Result<()>
    where
        P: ExactSizeIterator<Item = Param<'p>> + Clone,
    {
        self.run_extended_as(sql, types, params, false, set)
    }

    fn run_extended_as<'p, P>(
        &mut self,
        sql: &str,
        types: &[u32],
        params: P,
        binary: bool,
        set: &mut ResultSet,
    ) -> Result<()>
    where
        P: ExactSizeIterator<Item = Param<'p>> + Clone,
    {
        let given = params.len();
        let result = if binary { ResultFormats::Binary } else { ResultFormats::Text };
        let shape = Shape { result, ..Shape::UNNAMED };
        let outcome = self.run_one(sql, types, params, shape, set).map(drop);
        self.explain_param_mismatch(outcome, sql, types, given)
    }

    /// Send one statement shaped as `shape` and read its reply (to ReadyForQuery, or for a
    /// stream to its first chunk's last row): through the statement cache when the pool has
    /// one, else on the unnamed statement. True when it stopped early (a stream's reply has more
    /// rows).
    fn run_one<'p, P>(
        &mut self,
        sql: &str,
        types: &[u32],
        params: P,
        shape: Shape<'static>,
        set: &mut ResultSet,
    ) -> Result<bool>
    where
        P: ExactSizeIterator<Item = Param<'p>> + Clone,
    {
        if let Some(cache) = self.cache.as_mut().filter(|c| c.enabled()) {
            let first = cache.lookup(sql, types);
            return self.run_cached(sql, types, params, shape, first, set);
        }
        self.queue_extended(sql, types, params, shape)?;
        self.collect_into(set, false, None, shape.stop())
    }

    /// A statement through the cache (`cache`): Bind/Execute of its prepared statement, or
    /// Parse under a new name first, in one write. When the server says the cached statement is
    /// invalid, the pool forgets it, and outside a transaction block the statement is prepared
    /// again and run once more (it failed before running, and its implicit transaction rolled
    /// back, so nothing ran twice).
    fn run_cached<'p, P>(
        &mut self,
        sql: &str,
        types: &[u32],
        params: P,
        shape: Shape<'static>,
        mut how: cache::Use,
        set: &mut ResultSet,
    ) -> Result<bool>
    where
        P: ExactSizeIterator<Item = Param<'p>> + Clone,
    {
        let was_idle = self.tx_status == TxStatus::Idle;
        for attempt in 0.. {
            let sent = self.send_cached(sql, types, params.clone(), shape, &how);
            let outcome = sent.and_then(|()| self.collect_into(set, false, None, shape.stop()));
            if let Some(more) = self.after_cached(sql, types, &mut how, attempt, was_idle, outcome, set)? {
                return Ok(more);
            }
        }
        unreachable!("the loop returns")
    }

    /// One attempt of `run_cached`: queue what the cache closes, then send the statement as
    /// `how` says (Parse under its new name first, or Bind of the prepared one).
    fn send_cached<'p, P>(
        &mut self,
        sql: &str,
        types: &[u32],
        params: P,
        shape: Shape<'static>,
        how: &cache::Use,
    ) -> Result<()>
    where
        P: ExactSizeIterator<Item = Param<'p>> + Clone,
    {
        self.queue_closes();
        self.parse_completes = 0;
        let result = match how.typed() {
            Some(formats) if shape.typed && !formats.is_empty() => ResultFormats::Each(formats),
            _ => shape.result,
        };
        let parse = matches!(how, cache::Use::Prepare(_));
        let shape = Shape { statement: how.name(), parse, result, ..shape };
        self.queue_extended(sql, types, params, shape)
    }

    /// After one attempt of `run_cached` (`outcome`: sent and read, or why not): the cache
    /// learns what it says. `Some(more)` when the statement is done; `None` when it is to be
    /// sent again as `how` now says (a healed statement, outside a transaction block, once).
    #[allow(clippy::too_many_arguments)]
    fn after_cached(
        &mut self,
        sql: &str,
        types: &[u32],
        how: &mut cache::Use,
        attempt: u32,
        was_idle: bool,
        outcome: Result<bool>,
        set: &mut ResultSet,
    ) -> Result<Option<bool>> {
        let parse = matches!(how, cache::Use::Prepare(_));
        let cache = self.cache.as_mut().expect("run_cached runs with a cache");
        if parse {
            cache.prepared(sql, how.name(), self.parse_completes > 0);
        }
        let e = match outcome {
            Ok(more) => {
                if how.typed().is_none() {
                    cache.learn(sql, how.name(), set.columns());
                }
                return Ok(Some(more));
            }
            Err(e) => e,
        };
        let lost = match &e.server {
            Some(f) if !parse && !self.broken => {
                cache::invalidated(Some(&f.sqlstate), f.routine.as_deref(), &f.message)
            }
            _ => None,
        };
        let Some(lost) = lost else { return Err(e) };
        if !cache.heal(sql, how.name(), lost) {
            crate::log::warn(|| format!("connection to {}: {POOLER_LOST_STATEMENTS}", self.host));
            return Err(Error { message: format!("{} ({POOLER_LOST_STATEMENTS})", e.message), ..e });
        }
        if attempt > 0 || !was_idle || self.tx_status != TxStatus::Idle {
            return Err(Error { message: format!("{} ({IN_TRANSACTION_NO_RETRY})", e.message), ..e });
        }
        set.reset_statement();
        *how = cache.lookup(sql, types);
        Ok(None)
    }

    /// Send one statement as `query_params_into` (or `query_binary_into`, `binary`) does, and
    /// return without reading its reply: `poll_reply` reads what has arrived without blocking,
    /// `finish_statement` reads the rest into `set`. Nothing else may be sent on the connection
    /// in between. The statement timeout counts from the send. `staged`: everything is done
    /// but the write, which `send_staged` (or the first `poll_reply` or `finish_statement`)
    /// makes, so a caller can arm its wait for the reply before the reply can arrive.
    pub fn send_statement(
        &mut self,
        sql: &str,
        types: &[u32],
        params: &[Param<'_>],
        binary: bool,
        staged: bool,
        set: &mut ResultSet,
    ) -> Result<SentStatement> {
        self.lend_spare_rows(set);
        let result = if binary { ResultFormats::Binary } else { ResultFormats::Text };
        self.send_shaped(sql, types, params, Shape { result, deferred: staged, ..Shape::UNNAMED }, set)
    }

    /// `send_statement` for a stream (`stream_open`): `finish_statement` then reads its
    /// first chunk of `chunk_rows`, and `poll_reply` says it is in once that many rows (or the
    /// end of the reply) are buffered.
    pub fn send_stream(
        &mut self,
        sql: &str,
        params: &[Option<&[u8]>],
        chunk_rows: u32,
        typed: bool,
        staged: bool,
        set: &mut ResultSet,
    ) -> Result<SentStatement> {
        let params: Vec<Param<'_>> = text_params(params).collect();
        let shape = Shape { chunk: chunk_rows.max(1), typed, deferred: staged, ..Shape::UNNAMED };
        self.send_shaped(sql, &[], &params, shape, set)
    }

    fn send_shaped(
        &mut self,
        sql: &str,
        types: &[u32],
        params: &[Param<'_>],
        shape: Shape<'static>,
        set: &mut ResultSet,
    ) -> Result<SentStatement> {
        let how = self.cache.as_mut().filter(|c| c.enabled()).map(|cache| cache.lookup(sql, types));
        let was_idle = self.tx_status == TxStatus::Idle;
        let sent = match &how {
            Some(how) => self.send_cached(sql, types, params.iter().copied(), shape, how),
            None => self.queue_extended(sql, types, params.iter().copied(), shape),
        };
        let serial = self.replay.fill(sql, types, params, how.is_some());
        let mut statement = SentStatement {
            serial,
            sent_at: None,
            binary: matches!(shape.result, ResultFormats::Binary),
            chunk: shape.chunk,
            typed: shape.typed,
            how,
            was_idle,
            scan: ReplyScan::new(shape.chunk),
            staged: shape.deferred,
            failed: None,
        };
        if let Err(e) = sent {
            let outcome = match statement.how.as_mut() {
                Some(how) => self.after_cached(sql, types, how, 0, was_idle, Err(e), set).map(drop),
                None => Err(e),
            };
            return self.explain_param_mismatch(outcome, sql, types, params.len()).map(|()| statement);
        }
        // A staged statement's wait begins at its write (`send_staged`).
        statement.sent_at = (!shape.deferred).then(Instant::now);
        self.reply_since = statement.sent_at;
        // Its reply is on its way: until `finish_statement`, no other statement may be sent here
        // and no idle reader may take its bytes for unasked ones (`ensure_no_open_stream`).
        self.portal_open = true;
        Ok(statement)
    }

    /// Write a staged statement (`send_statement`'s `staged`); nothing for one already sent.
    /// `Sent::Failed` when the write failed: the connection is broken, and `finish_statement`
    /// returns the error. The statement timeout counts from here.
    ///
    /// Whether to read at once: when the server shares this CPU it is woken by the write, often
    /// takes the CPU during it, and has answered by the time it returns; a caller that waits
    /// first (an armed poller) would then wait for what is there. When the server runs on
    /// another CPU, a read now finds nothing and costs a system call. The connection learns
    /// which it is (`early_answers`): it reads at once while answers mostly come that early,
    /// and otherwise looks once in `LOOK_EVERY` writes, to notice a change.
    pub fn send_staged(&mut self, sent: &mut SentStatement) -> Sent {
        if !std::mem::take(&mut sent.staged) {
            return if sent.failed.is_some() { Sent::Failed } else { Sent::Waiting };
        }
        let start = Instant::now();
        if let Err(e) = self.flush_writes(None).map_err(Error::mark_unsent) {
            sent.failed = Some(e);
            return Sent::Failed;
        }
        self.reply_since = Some(start);
        sent.sent_at = Some(start);
        self.staged_writes = self.staged_writes.wrapping_add(1);
        if self.early_answers < EARLY_ANSWERS_USUAL && self.staged_writes % LOOK_EVERY != 0 {
            return Sent::Waiting;
        }
        let answered = self.poll_scan(&mut sent.scan);
        // Smoothed: each look weighs 1/8.
        let look = if answered { 1024 } else { 0 };
        self.early_answers = self.early_answers - self.early_answers / 8 + look / 8;
        if answered {
            Sent::Answered
        } else {
            Sent::Waiting
        }
    }

    /// Read, without blocking, what the server has sent in reply to `sent` (written first if
    /// staged). True when `finish_statement` will not wait for the server (see `poll_scan`).
    pub fn poll_reply(&mut self, sent: &mut SentStatement) -> bool {
        match self.send_staged(sent) {
            Sent::Failed | Sent::Answered => true,
            Sent::Waiting => self.poll_scan(&mut sent.scan),
        }
    }

    /// Read, without blocking, what has arrived, and look through it with `scan`: true when a
    /// read of the reply up to where `scan` stops will not wait for the server (its
    /// ReadyForQuery, or a stream's chunk of rows, is buffered), or what is buffered reached
    /// `PENDING_READ_LIMIT`, or the connection failed (the read then reports how).
    ///
    /// It reads until the socket is empty unless the scan is done first: a caller told "not
    /// yet" may wait on an edge-triggered poller, which wakes only for bytes that arrive after
    /// this; one told "done" never waits, and needs no read that finds nothing.
    pub fn poll_scan(&mut self, scan: &mut ReplyScan) -> bool {
        loop {
            if scan.scan(&self.read_buf) || self.read_buf.len() >= PENDING_READ_LIMIT {
                return true;
            }
            match self.stream.fill_nonblocking(&mut self.read_buf) {
                Ok(true) => {}
                Ok(false) => return false,
                Err(_) => return true,
            }
        }
    }

    /// Read the reply to `sent` into `set` (waiting for what has not arrived), as the blocking
    /// call would have: the statement cache learns from it, and a cached statement the server
    /// says is invalid is healed and, outside a transaction block, sent once more. True when a
    /// stream's reply has more rows (`stream_more` reads them).
    pub fn finish_statement(&mut self, mut sent: SentStatement, set: &mut ResultSet) -> Result<bool> {
        let _ = self.send_staged(&mut sent);
        // Taken for the reading (which needs `self`) and put back after, buffers and all.
        let mut replay = std::mem::take(&mut self.replay);
        let outcome = self.finish_sent(&replay, sent, set);
        replay.trim();
        self.replay = replay;
        outcome
    }

    /// `finish_statement`, with the SQL and parameters `sent` was sent with.
    fn finish_sent(&mut self, replay: &Replay, sent: SentStatement, set: &mut ResultSet) -> Result<bool> {
        let SentStatement { binary, chunk, typed, how, was_idle, failed, serial, .. } = sent;
        let (sql, types) = (&replay.sql[..], &replay.types[..]);
        let params = replay.params();
        // Not this statement's (it cannot be: one reply is outstanding at a time): never sent again.
        let how = how.filter(|_| replay.serial == serial);
        let result = if binary { ResultFormats::Binary } else { ResultFormats::Text };
        let shape = Shape { result, chunk, typed, ..Shape::UNNAMED };
        self.portal_open = false;
        let mut outcome = match failed {
            Some(e) => Err(e),
            None => self.collect_into(set, false, None, shape.stop()),
        };
        let outcome = match how {
            None => outcome,
            Some(mut how) => {
                let mut attempt = 0;
                loop {
                    match self.after_cached(sql, types, &mut how, attempt, was_idle, outcome, set) {
                        Ok(Some(more)) => break Ok(more),
                        Err(e) => break Err(e),
                        Ok(None) => {}
                    }
                    attempt += 1;
                    let sent = self.send_cached(sql, types, params.clone(), shape, &how);
                    outcome = sent.and_then(|()| self.collect_into(set, false, None, shape.stop()));
                }
            }
        };
        let outcome = self.explain_param_mismatch(outcome, sql, types, replay.given);
        if chunk > 0 {
            self.portal_open = matches!(outcome, Ok(true));
        }
        outcome
    }

    /// The wait for the next read of a reply began at `at` (a stream's next chunk waited for
    /// outside the library): its statement timeout counts from then.
    pub fn reply_wait_began(&mut self, at: Instant) {
        self.reply_since = Some(at);
    }

    /// Close, ahead of the next statement and in its write, what the cache evicted or forgot.
    fn queue_closes(&mut self) {
        let Some(cache) = self.cache.as_mut().filter(|c| c.has_closes()) else { return };
        for name in cache.take_closes() {
            frontend::close(b'S', &name, &mut self.write_buf).expect("generated names have no NUL");
        }
    }

    /// Use a statement cache of `capacity` statements on this connection, healing with the
    /// other connections of its pool through `shared`.
    pub fn use_statement_cache(&mut self, capacity: u32, shared: Arc<cache::CacheShared>) {
        self.cache = (capacity > 0).then(|| cache::StatementCache::new(capacity, shared));
    }

    /// Statements in this connection's cache (for tests and statistics).
    pub fn cached_statements(&self) -> usize {
        self.cache.as_ref().map_or(0, cache::StatementCache::len)
    }

    /// Pipelining: every statement sent in one write, each with its own Sync (so each is its own
    /// implicit transaction and one statement's error does not abort the others), then each
    /// result read in order. One round trip for the batch. The outer error is for the batch as a
    /// whole (the connection broke); the inner ones are per statement.
    pub fn pipeline(&mut self, statements: &[BatchStatement]) -> Result<Vec<Result<ResultSet>>> {
        for st in statements {
            let params = st.params.iter().map(|p| Param { value: p.as_deref(), binary: false });
            if let Err(e) = self.queue_extended(&st.sql, &[], params, Shape { batching: true, ..Shape::UNNAMED }) {
                self.write_buf.clear();
                return Err(e);
            }
        }
        // A Sync alone closes the batch: its bare ReadyForQuery proves the replies were read in
        // step (`Stop::BareSync`) before any of them is returned.
        frontend::sync(&mut self.write_buf);
        self.expect_reply(Want::All(FORMAT_TEXT), statements.len() + 1);
        self.flush_writes(None)?;
        let mut out = Vec::with_capacity(statements.len());
        for _ in statements {
            match self.collect(None, Stop::ReadyForQuery) {
                Ok((set, _)) => out.push(Ok(set)),
                Err(e) if self.broken => return Err(e),
                Err(e) => out.push(Err(e)),
            }
        }
        self.collect(None, Stop::BareSync)?;
        Ok(out)
    }

    /// Start a statement whose rows come `chunk_rows` at a time: the first chunk, and whether
    /// more rows remain (then the reply is still arriving, and only `stream_more` or
    /// `stream_abandon` may use the connection).
    ///
    /// The statement is sent whole (one Execute without a row limit, then Sync), as libpq's
    /// chunked-rows mode, pgx and lib/pq send it, and its rows are read from the socket a chunk
    /// at a time: the server produces the next rows while the caller handles these, memory holds
    /// one chunk (and one read), and a result that fits in the first chunk costs one round trip.
    /// (A portal suspended at each chunk's row limit costs a round trip per chunk, with server
    /// and client taking turns, and one more for the Sync when the result ends.) A caller that
    /// stops reading early leaves the server waiting on a full socket; `stream_abandon` ends it.
    ///
    /// `typed`: with the columns of the types `rows::binary::prefers_binary` names in binary
    /// once the statement cache knows the statement's result types, as `query_typed_into`
    /// (without a cache, all text).
    pub fn stream_open(
        &mut self,
        sql: &str,
        params: &[Option<&[u8]>],
        chunk_rows: u32,
        typed: bool,
    ) -> Result<(ResultSet, bool)> {
        let shape = Shape { chunk: chunk_rows.max(1), typed, ..Shape::UNNAMED };
        let mut set = ResultSet::default();
        let outcome = self.run_one(sql, &[], text_params(params), shape, &mut set);
        let outcome = outcome.map(|more| (set, more));
        let outcome = self.explain_param_mismatch(outcome, sql, &[], params.len());
        self.portal_open = matches!(outcome, Ok((_, true)));
        outcome
    }

    /// A statement on a connection whose stream is not finished would be read as its rows: refused, as libpq refuses a query while another is in progress.
    #[inline]
    pub(super) fn ensure_no_open_stream(&self) -> Result<()> {
        if self.copy.is_some() {
            return Err(Error::interface(
                "a COPY is in progress on this connection (a pinned or transaction's session): finish it \
                 (pgsess_copy_finish) or free it (pgsess_copy_free) before running another statement",
            ));
        }
        if self.portal_open {
            return Err(Error::interface(
                "a stream is still open on this connection (a pinned or transaction's session), or a statement sent \
                 without waiting is not finished: read it to the end or free it (pgsess_stream_free, \
                 pgsess_pending_finish) before running another statement",
            ));
        }
        Ok(())
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
            self.expect_reply(Want::All(FORMAT_TEXT), 1);
            self.flush_writes(None).ok()?;
            self.collect(None, Stop::SyncOnly).ok()?;
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

    /// The next chunk of an open stream whose rows have these columns: read from the reply
    /// already on its way, nothing sent.
    pub fn stream_more(&mut self, columns: &Arc<[Column]>, chunk_rows: u32) -> Result<(ResultSet, bool)> {
        self.ensure_usable()?;
        let mut set = ResultSet::default();
        set.begin_rows(columns.clone());
        let more = self.collect_into(&mut set, true, None, Stop::Rows(chunk_rows.max(1)));
        self.portal_open = matches!(more, Ok(true));
        Ok((set, more?))
    }

    /// End an open stream early: read the rest of its reply through to ReadyForQuery, dropping
    /// the rows, so the connection is in step for its next statement. A rest that is still
    /// coming after `ABANDON_PATIENCE` is cancelled on the server first (its error ends the
    /// reply); a connection that cannot be brought back in step within `RESET_TIMEOUT` is
    /// closed.
    pub fn stream_abandon(&mut self, columns: &Arc<[Column]>) {
        self.portal_open = false;
        if self.broken || self.inherited() {
            return;
        }
        let started = Instant::now();
        let deadline = Some(started + RESET_TIMEOUT);
        let mut cancelled = false;
        let mut set = ResultSet::default();
        loop {
            set.begin_rows(columns.clone());
            match self.collect_into(&mut set, true, deadline, Stop::Rows(ABANDON_CHUNK)) {
                Ok(true) => {}
                // ReadyForQuery read: in step (a cancel's 57014 included).
                Ok(false) | Err(_) if !self.broken => return,
                _ => {
                    self.broken = true;
                    return;
                }
            }
            if !cancelled && started.elapsed() >= ABANDON_PATIENCE {
                cancelled = true;
                if self.canceller().send().is_err() {
                    self.broken = true;
                    return;
                }
            }
            set = ResultSet::default();
        }
    }

    /// Parse (unless the statement is already prepared), Bind, Describe portal, Execute, then
    /// Sync: all in one write, sent unless `shape.batching` or `shape.deferred`.
    fn queue_extended<'p, P>(&mut self, sql: &str, types: &[u32], params: P, shape: Shape<'_>) -> Result<()>
    where
        P: ExactSizeIterator<Item = Param<'p>> + Clone,
    {
        self.ensure_usable_to_send()?;
        self.ensure_no_open_stream()?;
        check_param_count(params.len())?;
        self.note_sql(sql);
        // On an error only this statement's messages are taken back: the Closes queued ahead of
        // it, and a batch's earlier statements, stay.
        let start = self.write_buf.len();
        if shape.parse {
            if let Err(_nul) = frontend::parse(shape.statement, sql, types.iter().copied(), &mut self.write_buf) {
                self.write_buf.truncate(start);
                return Err(Error::interface("the SQL text contains a NUL byte"));
            }
        }
        self.exchange = if shape.batching { Exchange::Pipelined } else { Exchange::Extended };
        let all_text = params.clone().all(|p| !p.binary);
        let formats = params.clone().filter(|_| !all_text).map(|p| i16::from(p.binary));
        let result_formats = shape.result.codes().iter().copied();
        let bound = frontend::bind(
            "",
            shape.statement,
            formats,
            params,
            |p: Param<'_>, buf| match p.value {
                None => Ok::<_, Box<dyn std::error::Error + Sync + Send>>(IsNull::Yes),
                Some(bytes) => {
                    buf.put_slice(bytes);
                    Ok(IsNull::No)
                }
            },
            result_formats,
            &mut self.write_buf,
        );
        if bound.is_err() {
            self.write_buf.truncate(start);
            return Err(Error::interface("a parameter is too large to send (over 2 GiB)"));
        }
        frontend::describe(b'P', "", &mut self.write_buf).expect("empty name has no NUL");
        frontend::execute("", 0, &mut self.write_buf).expect("empty name has no NUL");
        if !shape.batching {
            self.expect_reply(shape.result.want(), 1);
        }
        frontend::sync(&mut self.write_buf);
        if shape.batching || shape.deferred {
            return Ok(());
        }
        self.flush_writes(None).map_err(Error::mark_unsent)
    }

    /// Keep the emptied row storage of a result for the next statement's rows.
    pub fn keep_row_storage(&mut self, storage: crate::rows::RowStorage) {
        self.spare_rows = Some(storage);
    }

    /// Mark the connection as changed when `sql` names something the tags do not show.
    #[inline]
    pub(super) fn note_sql(&mut self, sql: &str) {
        if !self.session_changed && super::state::sql_may_change_session(sql) {
            self.session_changed = true;
        }
    }

    /// Reset the connection before its next user whatever its statements looked like (`DIRTY`
    /// mode): a pinned session's connection, where state accumulates, when the session ends.
    pub fn mark_session_changed(&mut self) {
        self.session_changed = true;
    }

    /// Before a connection goes back to the pool: roll back any transaction left open or aborted,
    /// then, as `mode` says, undo session state with `DISCARD ALL` (both in one round trip).
    /// Returns false when the connection cannot be reused.
    #[inline]
    pub fn reset_for_reuse(&mut self, mode: ResetMode) -> bool {
        if self.broken || self.inherited() || self.copy.is_some() {
            return false;
        }
        if self.tx_status == TxStatus::Unknown {
            // The server's last ReadyForQuery had a status the protocol does not have: whether
            // a transaction is open cannot be known, so the connection is not reused.
            self.broken = true;
            return false;
        }
        self.clear_notifications();
        let rollback = self.tx_status != TxStatus::Idle;
        let discard = match mode {
            ResetMode::Always => true,
            ResetMode::Dirty => self.session_changed,
            ResetMode::Never => false,
        };
        if !rollback && !discard {
            return true;
        }
        self.reset(rollback, discard)
    }

    /// `reset_for_reuse`'s round trip: ROLLBACK, DISCARD ALL, or both.
    #[inline(never)]
    fn reset(&mut self, rollback: bool, discard: bool) -> bool {
        // Two Query messages in one write: DISCARD ALL may not run inside a transaction block,
        // and as its own message it runs after the ROLLBACK has ended it.
        if self.ensure_in_step().is_err() {
            // What arrived since the last statement would be read as the reset's answers.
            self.broken = true;
            return false;
        }
        let mut replies = 0;
        for (wanted, sql) in [(rollback, "ROLLBACK"), (discard, "DISCARD ALL")] {
            if wanted {
                frontend::query(sql, &mut self.write_buf).expect("no NUL");
                replies += 1;
            }
        }
        // And a Sync alone, whose bare ReadyForQuery shows the replies were read in step
        // (`Stop::BareSync`), as a batch's does.
        frontend::sync(&mut self.write_buf);
        self.exchange = Exchange::Simple;
        self.expect_reply(Want::Any, replies + 1);
        let deadline = Some(Instant::now() + RESET_TIMEOUT);
        let ok = self.flush_writes(deadline).is_ok()
            && (0..replies).all(|_| self.collect(deadline, Stop::ReadyForQuery).is_ok())
            && self.collect(deadline, Stop::BareSync).is_ok();
        if !ok || self.tx_status != TxStatus::Idle {
            self.broken = true;
        }
        if discard {
            // DISCARD ALL dropped every prepared statement (its tag clears the cache as it is
            // read; this covers a reply cut short).
            if let Some(cache) = self.cache.as_mut() {
                cache.clear();
            }
        }
        self.session_changed = false;
        !self.broken
    }

    /// `ensure_usable` before a statement is sent, `ensure_no_open_stream`, then
    /// `ensure_in_step`: on a connection known to be broken, or found out of step now, it fails
    /// without reaching the server (`Error::unsent`). An open COPY or stream is checked before
    /// the step: its rows are expected bytes, and the caller's mistake is an interface error
    /// that leaves the connection as it was.
    #[inline]
    pub(super) fn ensure_usable_to_send(&mut self) -> Result<()> {
        self.ensure_usable()
            .and_then(|()| self.ensure_no_open_stream())
            .and_then(|()| self.ensure_in_step())
            .map_err(|e| if self.broken { e.mark_unsent() } else { e })
    }

    /// What the reply to the exchange about to be sent must be like: its columns in `format`
    /// (`Want::Any`: text or binary, the simple protocol), `replies` ReadyForQuery messages in
    /// all.
    fn expect_reply(&mut self, format: Want, replies: usize) {
        self.guard.want_format = format;
        self.guard.more_replies = u32::try_from(replies.saturating_sub(1)).unwrap_or(u32::MAX);
    }

    pub(super) fn ensure_usable(&mut self) -> Result<()> {
        if self.broken {
            return Err(Error::operational("08003", format!("the connection to {} is broken", self.host)));
        }
        if self.inherited() {
            return Err(Error::interface("this connection was inherited across fork() and cannot be used"));
        }
        Ok(())
    }
}

/// How `queue_extended` sends one statement.
#[derive(Clone, Copy)]
struct Shape<'n> {
    /// Read the reply this many rows at a time (0: all at once): a stream's chunk
    /// (`Stop::Rows`). The statement still runs to its end on the server, in one Execute.
    chunk: u32,
    /// Queue only: the caller sends the whole batch.
    batching: bool,
    /// The result formats to bind.
    result: ResultFormats<'n>,
    /// Bind a cached statement's typed formats (`StatementCache::learn`) once they are known.
    typed: bool,
    /// The prepared statement to Bind ("" for the unnamed one).
    statement: &'n str,
    /// Send Parse for `statement` first.
    parse: bool,
    /// Queue it and expect its reply, but leave the write to `send_staged`.
    deferred: bool,
}

impl Shape<'_> {
    /// Where reading the reply stops.
    fn stop(&self) -> Stop {
        if self.chunk > 0 {
            Stop::Rows(self.chunk)
        } else {
            Stop::ReadyForQuery
        }
    }
}

impl Shape<'static> {
    /// The unnamed statement, parsed and run at once, text results, read to ReadyForQuery.
    const UNNAMED: Shape<'static> = Shape {
        chunk: 0,
        batching: false,
        result: ResultFormats::Text,
        typed: false,
        statement: "",
        parse: true,
        deferred: false,
    };
}

/// The result formats a statement binds.
#[derive(Clone, Copy)]
enum ResultFormats<'f> {
    /// Every column in text (no format codes sent).
    Text,
    /// Every column in binary (one code, 1).
    Binary,
    /// One code per column (a typed statement's).
    Each(&'f Arc<[i16]>),
}

impl ResultFormats<'_> {
    /// The format codes Bind sends.
    fn codes(&self) -> &[i16] {
        match self {
            ResultFormats::Text => &[],
            ResultFormats::Binary => &[FORMAT_BINARY],
            ResultFormats::Each(codes) => codes,
        }
    }

    /// What the reply's RowDescription must say.
    fn want(&self) -> Want {
        match self {
            ResultFormats::Text => Want::All(FORMAT_TEXT),
            ResultFormats::Binary => Want::All(FORMAT_BINARY),
            ResultFormats::Each(codes) => Want::Each(Arc::clone(codes)),
        }
    }
}

/// Appended to the error of a cached statement found invalid twice on one server connection.
const POOLER_LOST_STATEMENTS: &str = "the pool's connections found their prepared statements missing twice, so a \
    connection is not one server session: a pooler in transaction mode (PgBouncer without max_prepared_statements) \
    is in between. \
    The statement cache is now off for this pool; turn it off in the options (statement cache capacity 0)";

/// Appended to the error of a cached statement found invalid inside a transaction block.
const IN_TRANSACTION_NO_RETRY: &str = "the statement cache's prepared statement was invalid and has been forgotten \
    by every connection of the pool, but inside a transaction block the statement cannot be run again: roll back \
    and retry the transaction";

/// One parameter of `query_params`: its bytes (None for NULL) and whether they are binary.
#[derive(Clone, Copy, Debug)]
pub struct Param<'a> {
    pub value: Option<&'a [u8]>,
    pub binary: bool,
}

/// What `PgConn::send_staged` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Written; the answer is to be waited for (what arrived was read, if it looked).
    Waiting,
    /// Written, and the whole answer was in when it looked at once: `finish_statement` will not
    /// wait.
    Answered,
    /// The write failed (`finish_statement` says why).
    Failed,
}

/// `PgConn::send_staged` reads at once while at least this share (of 1024) of its looks found
/// the answer in; a half.
const EARLY_ANSWERS_USUAL: u32 = 512;

/// Otherwise it looks once in this many staged writes.
const LOOK_EVERY: u32 = 16;

/// How much of a pending statement's reply `PgConn::poll_reply` reads ahead before it leaves
/// the rest to `finish_statement` (which applies the reader's limits to what it keeps).
pub const PENDING_READ_LIMIT: usize = 256 * 1024;

/// A statement sent by `PgConn::send_statement` (or `send_stream`) whose reply is still to be
/// read: what `finish_statement` needs to read it. Its SQL and parameters, to send it once more
/// if the statement cache heals it, are kept by the connection (`Replay`).
pub struct SentStatement {
    binary: bool,
    /// A stream's chunk size (0: not a stream), and whether its columns are typed.
    chunk: u32,
    typed: bool,
    /// How the statement cache sent it (`None`: on the unnamed statement).
    how: Option<cache::Use>,
    /// The connection was outside a transaction block when it was sent.
    was_idle: bool,
    scan: ReplyScan,
    /// Queued, not yet written (`send_staged` writes it).
    staged: bool,
    /// Why the staged write failed (`finish_statement` returns it).
    failed: Option<Error>,
    /// Which of the connection's statements it is: the `Replay` it filled (`Replay::serial`).
    serial: u64,
    /// When it was written (`None` while staged): its statement timeout counts from then.
    sent_at: Option<Instant>,
}

/// A connection keeps at most this many bytes of its last statement's SQL or parameter values,
/// and this many of its parameters' entries (`Replay::trim`).
const REPLAY_KEEP: usize = 64 * 1024;
const REPLAY_KEEP_PARAMS: usize = 1024;

/// What `finish_statement` needs to send a statement once more (its SQL, parameter types and,
/// for a cached statement, its parameters), kept by the connection and refilled by each
/// statement sent, so that a statement costs no allocation for it once the buffers have grown.
/// A connection has one statement's reply outstanding at a time (`portal_open`), so one is
/// enough; `serial` ties it to its statement.
#[derive(Default)]
pub(super) struct Replay {
    serial: u64,
    sql: String,
    types: Vec<u32>,
    /// The parameters given (kept in `params` only for a cached statement, which may be sent again).
    given: usize,
    values: Vec<u8>,
    /// Per parameter: its value's range in `values` (`None`: NULL), and whether it is binary.
    params: Vec<(Option<std::ops::Range<usize>>, bool)>,
}

impl Replay {
    /// Keep `sql`, `types` and (with `with_params`) `params` for a new statement: its serial.
    fn fill(&mut self, sql: &str, types: &[u32], params: &[Param<'_>], with_params: bool) -> u64 {
        self.serial += 1;
        self.sql.clear();
        self.sql.push_str(sql);
        self.types.clear();
        self.types.extend_from_slice(types);
        self.given = params.len();
        self.values.clear();
        self.params.clear();
        if with_params {
            for p in params {
                let range = p.value.map(|v| {
                    let start = self.values.len();
                    self.values.extend_from_slice(v);
                    start..self.values.len()
                });
                self.params.push((range, p.binary));
            }
        }
        self.serial
    }

    /// Let go of buffers a large statement grew past `REPLAY_KEEP` (`REPLAY_KEEP_PARAMS`): the
    /// next statement allocates what it needs.
    fn trim(&mut self) {
        if self.values.capacity() > REPLAY_KEEP {
            self.values = Vec::new();
        }
        if self.sql.capacity() > REPLAY_KEEP {
            self.sql = String::new();
        }
        if self.params.capacity() > REPLAY_KEEP_PARAMS {
            self.params = Vec::new();
        }
        if self.types.capacity() > REPLAY_KEEP_PARAMS {
            self.types = Vec::new();
        }
    }

    /// The parameters kept, as they were given.
    fn params(&self) -> impl ExactSizeIterator<Item = Param<'_>> + Clone + '_ {
        self.params
            .iter()
            .map(|(range, binary)| Param { value: range.clone().map(|r| &self.values[r]), binary: *binary })
    }
}

impl SentStatement {
    /// Queued, not yet written (`PgConn::send_staged`).
    pub fn is_staged(&self) -> bool {
        self.staged
    }

    /// When it was written; `None` while staged.
    pub fn sent_at(&self) -> Option<Instant> {
        self.sent_at
    }
}

/// How far a buffered reply has been looked through without reading it (`PgConn::poll_scan`):
/// in whole messages, counting DataRows for a stream's chunk.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyScan {
    scanned: usize,
    rows: u32,
    /// Rows that make a chunk (0: only ReadyForQuery ends the scan).
    chunk: u32,
}

impl ReplyScan {
    /// A scan for the whole reply (`chunk` 0) or for a stream's next chunk of `chunk` rows.
    pub fn new(chunk: u32) -> ReplyScan {
        ReplyScan { scanned: 0, rows: 0, chunk }
    }

    /// Look through the whole messages of `buf` not yet looked at: true once a ReadyForQuery is
    /// among them, or a chunk's worth of DataRows, or a length is malformed (the reader reports
    /// it).
    fn scan(&mut self, buf: &[u8]) -> bool {
        while let [tag, a, b, c, d, ..] = *buf.get(self.scanned..).unwrap_or_default() {
            let len = u32::from_be_bytes([a, b, c, d]) as usize;
            if len < 4 {
                return true;
            }
            if buf.len() - self.scanned < 1 + len {
                return false;
            }
            self.scanned += 1 + len;
            match tag {
                b'Z' => return true,
                b'D' if self.chunk > 0 => {
                    self.rows += 1;
                    if self.rows >= self.chunk {
                        return true;
                    }
                }
                _ => {}
            }
        }
        false
    }
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

/// Whether `sql`, given without parameters, surely runs on the extended protocol as it would on
/// the simple one: one statement (the extended protocol refuses several), so no `;` but
/// trailing ones, something besides blanks, and no `$` (a `$1` would fail as a missing
/// parameter of the Bind, not as the simple protocol's "there is no parameter $1"). A `;` or
/// `$` anywhere, even in a literal, a comment or a dollar quote, keeps the simple protocol, so
/// a string this cannot read for certain runs as `pgsess_query` runs it.
fn one_statement(sql: &str) -> bool {
    let body = sql.trim_end_matches(|c: char| c == ';' || c.is_ascii_whitespace());
    !body.trim_start().is_empty() && !body.contains([';', '$'])
}

#[cfg(test)]
mod tests {
    use super::{one_statement, Param, Replay, ReplyScan, REPLAY_KEEP, REPLAY_KEEP_PARAMS};

    #[test]
    fn a_replay_gives_back_the_parameters_it_kept_and_lets_go_of_large_buffers() {
        let mut replay = Replay::default();
        let big = vec![7u8; REPLAY_KEEP + 1];
        let params = [
            Param { value: Some(b"12"), binary: false },
            Param { value: None, binary: false },
            Param { value: Some(&big), binary: true },
        ];
        let first = replay.fill("SELECT $1, $2, $3", &[23], &params, true);
        assert_eq!((&replay.sql[..], &replay.types[..], replay.given), ("SELECT $1, $2, $3", &[23][..], 3));
        let kept: Vec<_> = replay.params().map(|p| (p.value.map(<[u8]>::to_vec), p.binary)).collect();
        assert_eq!(kept, vec![(Some(b"12".to_vec()), false), (None, false), (Some(big.clone()), true)]);
        replay.trim();
        assert_eq!(replay.values.capacity(), 0, "a large statement's buffer is not kept");
        let many = vec![Param { value: None, binary: false }; REPLAY_KEEP_PARAMS + 1];
        replay.fill("SELECT", &[0; REPLAY_KEEP_PARAMS + 1], &many, true);
        replay.trim();
        assert_eq!((replay.params.capacity(), replay.types.capacity()), (0, 0), "nor its many parameters");
        // A statement that is not cached keeps no parameters, only their count.
        let second = replay.fill("SELECT 1", &[], &params[..1], false);
        assert!(second > first);
        assert_eq!((replay.params().len(), replay.given), (0, 1));
    }

    fn sent() -> ReplyScan {
        ReplyScan::new(0)
    }

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn a_pending_reply_is_in_once_its_ready_for_query_is_whole() {
        let mut reply = message(b'2', b"");
        reply.extend(message(b'D', &[0, 1, 0, 0, 0, 1, b'7']));
        reply.extend(message(b'C', b"SELECT 1\0"));
        reply.extend(message(b'Z', b"I"));
        // Byte by byte: never early, and each whole message looked at once.
        let mut s = sent();
        for end in 0..reply.len() {
            assert!(!s.scan(&reply[..end]), "in after {end} of {} bytes", reply.len());
            assert!(s.scanned <= end);
        }
        assert!(s.scan(&reply));
        // A stream's chunk of one row is in once its DataRow is.
        let mut s = ReplyScan::new(1);
        let first_row = reply.len() - message(b'Z', b"I").len() - message(b'C', b"SELECT 1\0").len();
        assert!(!s.scan(&reply[..first_row - 1]));
        assert!(s.scan(&reply[..first_row]));
        // A ReadyForQuery's tag inside another message's body is not one.
        let mut s = sent();
        let fake = message(b'D', &[b'Z', 0, 0, 0, 5, b'I']);
        assert!(!s.scan(&fake));
        assert_eq!(s.scanned, fake.len());
    }

    #[test]
    fn a_malformed_length_ends_the_wait_for_the_reader_to_report() {
        let mut s = sent();
        assert!(s.scan(&[b'D', 0, 0, 0, 3, 0, 0]));
        // A huge length only waits (the reader bounds what it keeps: `check_front`).
        let mut s = sent();
        assert!(!s.scan(&[b'D', 0x7f, 0xff, 0xff, 0xff, 0]));
    }

    #[test]
    fn only_a_surely_single_statement_leaves_the_simple_protocol() {
        for sql in ["SELECT 1", " SELECT 1 ;; \n", "SELECT 1 -- x;", "BEGIN"] {
            assert!(one_statement(sql), "{sql:?}");
        }
        for sql in
            ["", " ; ", "SELECT 1; SELECT 2", "SELECT ';'", "SELECT $1", "DO $$ BEGIN END $$", "SELECT 1 /* ; */"]
        {
            assert!(!one_statement(sql), "{sql:?}");
        }
    }
}
