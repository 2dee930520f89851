//! A statement sent by one call and read by another, so that the caller's runtime can wait for
//! its answer the way it waits for any socket (Go's netpoller, an event loop) instead of inside
//! the library: `Session::send_statement` sends it and returns, `PendingStatement::poll` reads
//! what has arrived without blocking, `finish` gives its results.
//!
//! Between the calls the statement is what `Session::statement` runs in one call: the lease is
//! held by its results-to-be, the connection counts as running one of the session's statements
//! (`Session::cancel` finds it), and its bounds (statement timeout, cancel grace) apply from the
//! send. A pending statement dropped unfinished closes its connection (the reply would be out
//! of step with the next statement).

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::{Binding, Session};
use crate::conn::{Param, SentStatement};
use crate::error::{Error, Result};
use crate::results::Results;

/// A statement sent whose reply has not been read (`Session::send_statement`).
pub struct PendingStatement {
    session: Session,
    /// The results being built: they hold the statement's connection (`None` once `finish`
    /// gave them away).
    results: Option<Box<Results>>,
    /// The statement's SQL (for the leak report of its results).
    sql: Box<str>,
    /// `None` once finished (or when the send failed).
    sent: Option<SentStatement>,
    /// When the statement was sent, and its statement timeout, if any.
    sent_at: Instant,
    timeout: Option<Duration>,
    /// `poll` said the reply is in.
    ready: bool,
}

impl Session {
    /// Send one statement as `query_params` (`binary`: as `query_binary`) does and return
    /// without waiting for its answer (see the module comment). The connection is checked out
    /// (waiting up to the checkout timeout, as for any statement) before the send.
    pub fn send_statement(
        &self,
        sql: &str,
        types: &[u32],
        params: &[Param<'_>],
        binary: bool,
    ) -> Result<PendingStatement> {
        let mut results = Results::boxed(sql, self.hold()?);
        let (lease, set) = results.lease_and_set();
        let lease = lease.expect("a statement's results hold its lease");
        let waits = self.0.waits;
        let sent = lease.with_conn(|c| {
            c.begin_statement(waits.statement_timeout, waits.cancel_grace);
            let sent = c.send_statement(sql, types, params, binary, set);
            if sent.is_err() {
                c.end_statement();
            }
            sent
        });
        let sent = match sent {
            Ok(sent) => sent,
            Err(e) => {
                let e = if self.0.binding != Binding::Pooled { self.after_pinned_failure(lease, e) } else { e };
                self.statement_ended(lease, sql, None);
                return Err(e);
            }
        };
        lease.set_running_for(self.0.id);
        Ok(PendingStatement {
            session: self.clone(),
            results: Some(results),
            sql: sql.into(),
            sent: Some(sent),
            sent_at: Instant::now(),
            timeout: waits.statement_timeout,
            ready: false,
        })
    }
}

impl PendingStatement {
    fn lease(&self) -> &crate::pool::Lease {
        self.results.as_ref().and_then(|r| r.hold_lease()).expect("a pending statement's results hold its lease")
    }

    /// The connection's socket and serial number (`PgConn::share_socket`): the caller may wait
    /// for the socket to become readable on a duplicate of it, keyed by the serial.
    pub fn socket(&self) -> Result<(RawFd, u64)> {
        self.lease().with_conn(|c| Ok(c.share_socket()))
    }

    /// Read what has arrived without blocking; true once `finish` will not wait for the server
    /// (see `PgConn::poll_reply`), or when the connection cannot be read (`finish` says why).
    /// Stays true once it was.
    pub fn poll(&mut self) -> bool {
        if self.ready {
            return true;
        }
        let Some(sent) = self.sent.as_mut() else { return true };
        let lease = self.results.as_ref().and_then(|r| r.hold_lease()).expect("pending results hold a lease");
        self.ready = lease.with_conn(|c| Ok(c.poll_reply(sent))).unwrap_or(true);
        self.ready
    }

    /// How long the caller may wait for the socket before it should call `finish` anyway (the
    /// statement timeout passes then, and `finish` asks the server to cancel); `None`: no bound.
    pub fn wait_limit(&self) -> Option<Duration> {
        self.timeout.map(|t| (self.sent_at + t).saturating_duration_since(Instant::now()))
    }

    /// Read the rest of the reply (waiting for the server if `poll` did not say it is in) and
    /// give the statement's results, or its error, as `Session::query_params` would have.
    pub fn finish(mut self) -> Result<Box<Results>> {
        let sent = self.sent.take().expect("a pending statement is finished once");
        let mut results = self.results.take().expect("a pending statement's results are taken once");
        let session = &self.session;
        let (lease, set) = results.lease_and_set();
        let lease = lease.expect("a statement's results hold its lease");
        let outcome = lease.with_conn(|c| {
            let outcome = c.finish_statement(sent, set);
            c.end_statement();
            if session.0.binding != Binding::Pooled {
                session.after_pinned_statement(c);
            }
            outcome
        });
        lease.set_running_for(0);
        let outcome = match outcome {
            Err(e) if session.0.binding != Binding::Pooled => Err(session.after_pinned_failure(lease, e)),
            outcome => outcome,
        };
        session.statement_ended(lease, &self.sql, outcome.as_ref().ok().map(|()| &*set));
        outcome?; // on failure the lease drops with the results: the connection goes back at once
        results.statement_done();
        Ok(results)
    }
}

impl Drop for PendingStatement {
    /// Unfinished: the reply is never read, so the connection is closed when it goes back.
    fn drop(&mut self) {
        if self.sent.take().is_none() {
            return;
        }
        if let Some(lease) = self.results.as_ref().and_then(|r| r.hold_lease()) {
            let _ = lease.with_conn(|c| {
                c.end_statement();
                c.mark_broken();
                Ok(())
            });
            lease.set_running_for(0);
            let e = Error::interface("the pending statement was freed before its results were read");
            if self.session.0.binding != Binding::Pooled {
                let _ = self.session.after_pinned_failure(lease, e);
            }
        }
    }
}
