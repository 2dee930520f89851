//! COPY on a session: `Session::copy_in` (COPY ... FROM STDIN) and `Session::copy_out` (COPY ...
//! TO STDOUT). A `Copy` holds its connection (a new checkout on a pooled session, the session's
//! own on a pinned or transaction's one) until it ends: finished, failed, or dropped.
//!
//! Writes are framed into the handle's own buffer and sent `COPY_FLUSH_AT` bytes at a time;
//! reads take every CopyData message the connection has buffered in one step and hand them out
//! one per call. So the connection (and its lock) is touched once per 64 KiB, not once per row.

use std::sync::Arc;

use super::{abbreviate, Session};
use crate::conn::{CopyDirection, CopyFrames, COPY_FLUSH_AT};
use crate::error::{Error, Result};
use crate::pool::Lease;
use crate::rows::ResultSet;

/// A COPY in progress (see the module comment). One thread at a time.
pub struct Copy {
    session: Session,
    /// The connection, until the COPY ends.
    lease: Option<Arc<Lease>>,
    direction: CopyDirection,
    /// COPY FROM: data framed and not yet sent. COPY TO: messages received and not yet read.
    frames: CopyFrames,
    /// Notices, and the command tag once it has ended.
    set: ResultSet,
    /// A COPY TO has been read to its end.
    ended: bool,
    /// `read_chunk`'s concatenated data.
    chunk: Vec<u8>,
    /// The rows copied, once it ended well.
    rows: Option<u64>,
}

impl Session {
    /// Start `COPY ... FROM STDIN` (`sql`, one statement): write the data with `Copy::write`,
    /// end it with `Copy::finish`. A statement that is not such a COPY still runs, and fails here.
    pub fn copy_in(&self, sql: &str) -> Result<Copy> {
        self.copy_start(sql, Some(CopyDirection::In))
    }

    /// Start `COPY ... TO STDOUT` (`sql`, one statement): read its data with `Copy::read`.
    pub fn copy_out(&self, sql: &str) -> Result<Copy> {
        self.copy_start(sql, Some(CopyDirection::Out))
    }

    /// Start a COPY of either direction (libpq's `PQexec` answering `PGRES_COPY_IN` or
    /// `PGRES_COPY_OUT`): `Copy::direction` says which the server took.
    pub fn copy(&self, sql: &str) -> Result<Copy> {
        self.copy_start(sql, None)
    }

    fn copy_start(&self, sql: &str, direction: Option<CopyDirection>) -> Result<Copy> {
        let lease = self.shared_lease()?;
        let mut set = ResultSet::default();
        let outcome = self.run(&lease, |c| c.copy_start(sql, direction, &mut set));
        self.note_statement(outcome.as_ref().ok().map(|_| &set), &lease);
        let direction = outcome?;
        lease.shared().counters.copies_open.inc();
        lease.set_holder(|| format!("a COPY of \"{}\"", abbreviate(sql)));
        set.notices.clear(); // recorded on the session already
        Ok(Copy {
            session: self.clone(),
            lease: Some(lease),
            direction,
            frames: CopyFrames::default(),
            set,
            ended: false,
            chunk: Vec::new(),
            rows: None,
        })
    }
}

impl Copy {
    /// Which way the data goes.
    pub fn direction(&self) -> CopyDirection {
        self.direction
    }

    /// Add `data` to a COPY FROM (any split: rows may span writes). Buffered; sent in large
    /// chunks. A server error (a bad row) is returned by the first write after it arrived, and
    /// ends the COPY.
    #[inline]
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.direction != CopyDirection::In {
            return Err(Error::interface("this is a COPY ... TO STDOUT: read it with pgsess_copy_read"));
        }
        if self.lease.is_none() {
            return Err(ended());
        }
        self.frames.push(data);
        if self.frames.len() >= COPY_FLUSH_AT {
            return self.flush();
        }
        Ok(())
    }

    /// Send the buffered data.
    #[inline(never)]
    fn flush(&mut self) -> Result<()> {
        let lease = self.lease.as_ref().ok_or_else(ended)?;
        let (frames, set) = (&mut self.frames, &mut self.set);
        let outcome = self.session.run(lease, |c| c.copy_send(frames, set));
        if outcome.is_err() {
            self.end(false);
        }
        outcome
    }

    /// The next message of a COPY TO (a row, for text and CSV), valid until the next call;
    /// `None` at the end.
    #[inline]
    pub fn read(&mut self) -> Result<Option<&[u8]>> {
        if self.direction != CopyDirection::Out {
            return Err(Error::interface("this is a COPY ... FROM STDIN: write it with pgsess_copy_write"));
        }
        if self.frames.is_empty() && !self.receive()? {
            return Ok(None);
        }
        Ok(self.frames.next_message())
    }

    /// Every message of a COPY TO buffered now (waiting for one when none is), their data
    /// concatenated into one piece valid until the next call (the COPY's data is one byte
    /// stream, however the server split it); `None` at the end. For bindings, whose every call
    /// into the library has a price of its own.
    pub fn read_chunk(&mut self) -> Result<Option<&[u8]>> {
        if self.direction != CopyDirection::Out {
            return Err(Error::interface("this is a COPY ... FROM STDIN: write it with pgsess_copy_write"));
        }
        if self.frames.is_empty() && !self.receive()? {
            return Ok(None);
        }
        self.chunk.clear();
        while let Some(data) = self.frames.next_message() {
            self.chunk.extend_from_slice(data);
        }
        Ok(Some(&self.chunk))
    }

    /// Abort a COPY FROM with `why` (libpq: `PQputCopyEnd(conn, why)`): the server fails it
    /// (`COPY from stdin failed: why`, in its log and, inside a transaction, failing the
    /// transaction); nothing of it is kept. An error is returned only when the abort did not go
    /// as asked: the COPY had failed already (that error), or the connection was lost. For a
    /// COPY TO, as dropping it (the rest is discarded). Nothing to do once it ended.
    pub fn abort(&mut self, why: &str) -> Result<()> {
        let Some(lease) = self.lease.as_ref() else { return Ok(()) };
        let outcome = match self.direction {
            CopyDirection::In => {
                let set = &mut self.set;
                self.session.run(lease, |c| c.copy_fail_with(why, set))
            }
            CopyDirection::Out => self.session.run(lease, |c| {
                c.copy_abandon_out();
                Ok(())
            }),
        };
        self.frames.clear();
        self.end(false);
        match outcome {
            Err(e) if e.sqlstate() == Some("57014") => Ok(()),
            other => other,
        }
    }

    /// Take the next messages from the connection: false at the end.
    #[inline(never)]
    fn receive(&mut self) -> Result<bool> {
        if self.ended {
            return Ok(false);
        }
        let lease = self.lease.as_ref().ok_or_else(ended)?;
        self.frames.clear();
        let (frames, set) = (&mut self.frames, &mut self.set);
        match self.session.run(lease, |c| c.copy_receive(frames, set, None)) {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.ended = true;
                self.end(true);
                Ok(false)
            }
            Err(e) => {
                self.end(false);
                Err(e)
            }
        }
    }

    /// End a COPY FROM (the rest of the data, then CopyDone) or check that a COPY TO was read to
    /// its end; the rows copied. The connection goes back either way.
    pub fn finish(&mut self) -> Result<u64> {
        if let Some(rows) = self.rows {
            return Ok(rows);
        }
        let Some(lease) = self.lease.as_ref() else {
            return Err(ended()); // it failed
        };
        match self.direction {
            CopyDirection::In => {
                let (frames, set) = (&mut self.frames, &mut self.set);
                let outcome = self.session.run(lease, |c| c.copy_done(frames, set));
                self.end(outcome.is_ok());
                outcome
            }
            CopyDirection::Out => Err(Error::interface(
                "the COPY ... TO STDOUT has more data: read it with pgsess_copy_read until it returns NULL first",
            )),
        }
    }

    /// The COPY is over: record its outcome on the session and let the connection go.
    fn end(&mut self, ok: bool) {
        let Some(lease) = self.lease.take() else { return };
        if ok {
            self.rows = Some(self.set.rows_affected());
        }
        self.session.note_statement(ok.then_some(&self.set), &lease);
        lease.shared().counters.copies_open.dec();
    }
}

impl Drop for Copy {
    /// A COPY FROM not finished is aborted (CopyFail): none of its rows is kept. A COPY TO not
    /// read to its end has the rest read for a moment, else its connection is closed.
    fn drop(&mut self) {
        if let Some(lease) = &self.lease {
            let direction = self.direction;
            let _ = self.session.run(lease, |c| {
                match direction {
                    CopyDirection::In => c.copy_fail("COPY abandoned: pgsess_copy_free before pgsess_copy_finish"),
                    CopyDirection::Out => c.copy_abandon_out(),
                }
                Ok(())
            });
            self.end(false);
        }
    }
}

fn ended() -> Error {
    Error::interface("the COPY has ended (finished, failed or read to its end)")
}
