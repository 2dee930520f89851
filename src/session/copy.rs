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
    /// The rows copied, once it ended well.
    rows: Option<u64>,
}

impl Session {
    /// Start `COPY ... FROM STDIN` (`sql`, one statement): write the data with `Copy::write`,
    /// end it with `Copy::finish`. A statement that is not such a COPY still runs, and fails here.
    pub fn copy_in(&self, sql: &str) -> Result<Copy> {
        self.copy_start(sql, CopyDirection::In)
    }

    /// Start `COPY ... TO STDOUT` (`sql`, one statement): read its data with `Copy::read`.
    pub fn copy_out(&self, sql: &str) -> Result<Copy> {
        self.copy_start(sql, CopyDirection::Out)
    }

    fn copy_start(&self, sql: &str, direction: CopyDirection) -> Result<Copy> {
        let lease = self.shared_lease()?;
        let mut set = ResultSet::default();
        let outcome = self.run(&lease, |c| c.copy_start(sql, direction, &mut set));
        self.note_statement(outcome.as_ref().ok().map(|()| &set), &lease);
        outcome?;
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
        match self.direction {
            CopyDirection::In => {
                let lease = self.lease.as_ref().ok_or_else(ended)?;
                let (frames, set) = (&mut self.frames, &mut self.set);
                let outcome = self.session.run(lease, |c| c.copy_done(frames, set));
                self.end(outcome.is_ok());
                outcome
            }
            CopyDirection::Out if self.ended => Err(ended()),
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
