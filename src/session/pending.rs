//! A statement sent by one call and read by another, so that the caller's runtime can wait for
//! its answer the way it waits for any socket (Go's netpoller, an event loop) instead of inside
//! the library: `Session::send_statement` (or `send_stream`) sends it and returns,
//! `PendingStatement::poll` reads what has arrived without blocking, `finish` (or
//! `finish_stream`) gives its results (or its stream, with the first chunk read).
//!
//! Between the calls the statement is what `Session::statement` runs in one call: the lease is
//! held by its results-to-be, the connection counts as running one of the session's statements
//! (`Session::cancel` finds it), and its bounds (statement timeout, cancel grace) apply from the
//! send. A pending statement dropped unfinished closes its connection (the reply would be out
//! of step with the next statement).

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{abbreviate, Binding, RowStream, Session};
use crate::conn::{Param, PgConn, Sent, SentStatement};
use crate::error::{Error, Result};
use crate::pool::Lease;
use crate::results::Results;
use crate::rows::ResultSet;

/// A statement sent whose reply has not been read (`Session::send_statement`).
pub struct PendingStatement {
    session: Session,
    /// What the reply goes into (`None` once finished).
    target: Option<Target>,
    /// A stream's SQL (for the leak report of what holds the connection); results keep their own.
    stream_sql: Option<Box<str>>,
    /// `None` once finished.
    sent: Option<SentStatement>,
    /// Its statement timeout, if any (counted from the write: `SentStatement::sent_at`).
    timeout: Option<Duration>,
    /// `poll` said the reply is in.
    ready: bool,
}

/// What a pending statement's reply is read into.
enum Target {
    /// Results, which hold the connection.
    Results(Box<Results>),
    /// A stream's first chunk; the stream will share the lease with its chunks.
    Stream { lease: Arc<Lease>, set: ResultSet, chunk_rows: u32 },
}

impl Target {
    fn lease(&self) -> &Lease {
        match self {
            Target::Results(r) => r.hold_lease().expect("a statement's results hold its lease"),
            Target::Stream { lease, .. } => lease,
        }
    }
}

impl Session {
    /// Send one statement as `query_params` (`binary`: as `query_binary`) does and return
    /// without waiting for its answer (see the module comment). The connection is checked out
    /// (waiting up to the checkout timeout, as for any statement) before the send. `staged`:
    /// all but the write, which `PendingStatement::send` (or the first `poll`, or `finish`)
    /// makes.
    pub fn send_statement(
        &self,
        sql: &str,
        types: &[u32],
        params: &[Param<'_>],
        binary: bool,
        staged: bool,
    ) -> Result<PendingStatement> {
        let mut results = Results::boxed(sql, self.hold()?);
        let (lease, set) = results.lease_and_set();
        let lease = lease.expect("a statement's results hold its lease");
        let sent = self.send_on(lease, sql, |c| c.send_statement(sql, types, params, binary, staged, set))?;
        Ok(self.pending(Target::Results(results), sql, sent))
    }

    /// Send a stream's statement as `query_stream` (`typed`: `query_stream_typed`) does and
    /// return without waiting for its first chunk (`PendingStatement::finish_stream`);
    /// `staged` as for `send_statement`.
    pub fn send_stream(
        &self,
        sql: &str,
        params: &[Option<&[u8]>],
        chunk_rows: u32,
        typed: bool,
        staged: bool,
    ) -> Result<PendingStatement> {
        if chunk_rows == 0 {
            return Err(Error::interface("chunk_rows must be at least 1"));
        }
        let lease = self.shared_lease()?;
        let mut set = ResultSet::default();
        let sent = self.send_on(&lease, sql, |c| c.send_stream(sql, params, chunk_rows, typed, staged, &mut set))?;
        Ok(self.pending(Target::Stream { lease, set, chunk_rows }, sql, sent))
    }

    /// Begin a statement on `lease` and send it with `send`; on failure, end it as a blocking
    /// statement's failure ends.
    fn send_on(
        &self,
        lease: &Lease,
        sql: &str,
        send: impl FnOnce(&mut PgConn) -> Result<SentStatement>,
    ) -> Result<SentStatement> {
        let waits = self.0.waits;
        let sent = lease.with_conn(|c| {
            c.begin_statement(waits.statement_timeout, waits.cancel_grace);
            let sent = send(c);
            if sent.is_err() {
                c.end_statement();
            }
            sent
        });
        match sent {
            Ok(sent) => {
                lease.set_running_for(self.0.id);
                Ok(sent)
            }
            Err(e) => {
                let e = if self.0.binding != Binding::Pooled { self.after_pinned_failure(lease, e) } else { e };
                self.statement_ended(lease, sql, None);
                Err(e)
            }
        }
    }

    fn pending(&self, target: Target, sql: &str, sent: SentStatement) -> PendingStatement {
        PendingStatement {
            session: self.clone(),
            stream_sql: matches!(target, Target::Stream { .. }).then(|| sql.into()),
            target: Some(target),
            sent: Some(sent),
            timeout: self.0.waits.statement_timeout,
            ready: false,
        }
    }
}

impl PendingStatement {
    fn lease(&self) -> &Lease {
        self.target.as_ref().expect("an unfinished pending statement has its target").lease()
    }

    /// The connection's socket and serial number (`PgConn::share_socket`): the caller may wait
    /// for the socket to become readable on a duplicate of it, keyed by the serial.
    pub fn socket(&self) -> Result<(RawFd, u64)> {
        self.lease().with_conn(|c| Ok(c.share_socket()))
    }

    /// Write a staged statement (`Session::send_statement`'s `staged`); for one already sent,
    /// whether `poll` said its answer is in. True when `finish` will not wait for the server:
    /// the write failed (`finish` says why), or the answer was in when it looked at once (see
    /// `PgConn::send_staged`). The statement timeout counts from the write.
    pub fn send(&mut self) -> bool {
        let (Some(sent), Some(target)) = (self.sent.as_mut(), self.target.as_ref()) else { return true };
        if !sent.is_staged() {
            return self.ready;
        }
        let outcome = target.lease().with_conn(|c| Ok(c.send_staged(sent))).unwrap_or(Sent::Failed);
        self.ready = outcome != Sent::Waiting;
        self.ready
    }

    /// Read what has arrived without blocking (a staged statement is written first); true once
    /// `finish` will not wait for the server (see `PgConn::poll_reply`), or when the connection
    /// cannot be read or written (`finish` says why). Stays true once it was.
    pub fn poll(&mut self) -> bool {
        if self.ready {
            return true;
        }
        if self.sent.as_ref().is_some_and(SentStatement::is_staged) {
            // Written now; read whatever came meanwhile (a failed write makes this true).
            let _ = self.send();
            if self.ready {
                return true;
            }
        }
        let (Some(sent), Some(target)) = (self.sent.as_mut(), self.target.as_ref()) else { return true };
        self.ready = target.lease().with_conn(|c| Ok(c.poll_reply(sent))).unwrap_or(true);
        self.ready
    }

    /// How long the caller may wait for the socket before it should call `finish` anyway (the
    /// statement timeout passes then, and `finish` asks the server to cancel); `None`: no bound.
    /// Counted from the write; for a statement still staged, the whole statement timeout.
    pub fn wait_limit(&self) -> Option<Duration> {
        match self.sent.as_ref().and_then(SentStatement::sent_at) {
            None => self.timeout,
            Some(at) => self.timeout.map(|t| (at + t).saturating_duration_since(Instant::now())),
        }
    }

    /// Read the rest of the reply into `set` on `lease`, ending the statement as
    /// `Session::run` ends one. True when a stream has more rows.
    fn read_reply(session: &Session, lease: &Lease, sent: SentStatement, set: &mut ResultSet) -> Result<bool> {
        let outcome = lease.with_conn(|c| {
            let outcome = c.finish_statement(sent, set);
            c.end_statement();
            if session.0.binding != Binding::Pooled {
                session.after_pinned_statement(c);
            }
            outcome
        });
        lease.set_running_for(0);
        match outcome {
            Err(e) if session.0.binding != Binding::Pooled => Err(session.after_pinned_failure(lease, e)),
            outcome => outcome,
        }
    }

    /// Read the rest of the reply (waiting for the server if `poll` did not say it is in) and
    /// give the statement's results, or its error, as `Session::query_params` would have.
    pub fn finish(mut self) -> Result<Box<Results>> {
        let Some(Target::Results(mut results)) = self.target.take_if(|t| matches!(t, Target::Results(_))) else {
            return Err(Error::interface("this pending statement is a stream's: finish it as a stream"));
        };
        let sent = self.sent.take().expect("a pending statement is finished once");
        let (lease, set, sql) = results.lease_set_and_sql();
        let lease = lease.expect("a statement's results hold its lease");
        let outcome = Self::read_reply(&self.session, lease, sent, set);
        self.session.statement_ended(lease, sql, outcome.as_ref().ok().map(|_| &*set));
        outcome?; // on failure the lease drops with the results: the connection goes back at once
        results.statement_done();
        Ok(results)
    }

    /// `finish` for a stream's statement (`Session::send_stream`): its first chunk read, the
    /// stream as `Session::query_stream` returns it.
    pub fn finish_stream(mut self) -> Result<RowStream> {
        let Some(Target::Stream { lease, mut set, chunk_rows }) =
            self.target.take_if(|t| matches!(t, Target::Stream { .. }))
        else {
            return Err(Error::interface("this pending statement is not a stream's: finish it for its results"));
        };
        let sent = self.sent.take().expect("a pending statement is finished once");
        let outcome = Self::read_reply(&self.session, &lease, sent, &mut set);
        self.session.note_statement(outcome.as_ref().ok().map(|_| &set), &lease);
        let more = outcome?;
        let sql = self.stream_sql.as_deref().unwrap_or_default();
        lease.set_holder(|| format!("a stream of \"{}\"", abbreviate(sql)));
        Ok(RowStream::new(self.session.clone(), lease, set, more, chunk_rows, sql))
    }
}

impl Drop for PendingStatement {
    /// Unfinished: the reply is never read, so the connection is closed when it goes back.
    fn drop(&mut self) {
        if self.sent.take().is_none() {
            return;
        }
        if let Some(target) = self.target.as_ref() {
            let lease = target.lease();
            let _ = lease.with_conn(|c| {
                c.end_statement();
                c.mark_broken();
                Ok(())
            });
            lease.set_running_for(0);
            if self.session.0.binding != Binding::Pooled {
                let e = Error::interface("the pending statement was freed before its results were read");
                let _ = self.session.after_pinned_failure(lease, e);
            }
        }
    }
}
