//! COPY: `COPY ... FROM STDIN` (the client sends CopyData, then CopyDone or CopyFail) and
//! `COPY ... TO STDOUT` (the server sends CopyData, then CopyDone), on the simple protocol as
//! libpq's `PQexec` starts them.
//!
//! The data never passes through `write_buf` or a `Message`: a COPY FROM's writes are framed by
//! the caller into a `CopyFrames` buffer and sent `COPY_FLUSH_AT` bytes at a time in one
//! send(2); a COPY TO's complete CopyData messages are copied out of the read buffer in one
//! piece and handed out one at a time. After each send the server's side is looked at without
//! waiting, so a bad row's ErrorResponse stops a long COPY FROM at once.
//!
//! While a COPY is in progress (`PgConn::copy`) every other statement on the connection is
//! refused, and a connection returned to the pool in copy mode is discarded.

use std::time::{Duration, Instant};

use bytes::Buf;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::reader::{buffered_message, complete_message, Stop};
use super::{Exchange, PgConn};
use crate::error::{Error, Result};
use crate::rows::ResultSet;

/// A COPY FROM's buffered data is sent once it reaches this many bytes.
pub const COPY_FLUSH_AT: usize = 64 * 1024;

/// How much a COPY TO's receive gathers while the socket has more at once.
const COPY_RECEIVE_TARGET: usize = 1 << 20;

/// The largest CopyData message written: a longer write is split (rows may span messages).
const MAX_COPY_MESSAGE: usize = 1 << 20;

/// How long freeing a COPY TO not read to the end may spend reading the rest; past it the
/// connection is closed instead (a cancel request could reach the connection's next statement).
const COPY_OUT_DRAIN: Duration = Duration::from_millis(100);

/// Which way a COPY's data goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyDirection {
    /// COPY ... FROM STDIN: the client sends.
    In,
    /// COPY ... TO STDOUT: the server sends.
    Out,
}

/// CopyData messages, whole (type byte and length included), built or read without the
/// connection.
#[derive(Debug, Default)]
pub struct CopyFrames {
    buf: Vec<u8>,
    /// For received messages: where the next one starts.
    pos: usize,
    /// For messages being written: where the last one starts (later writes extend it).
    open: Option<usize>,
}

impl CopyFrames {
    /// Append `data` to the COPY's byte stream: into the last CopyData message while it stays
    /// within `MAX_COPY_MESSAGE` bytes, else in new ones (nothing for empty `data`). A COPY's
    /// data is one byte stream however it is split into messages, and the server does less work
    /// per byte for fewer, larger messages than for one per row.
    #[inline]
    pub fn push(&mut self, mut data: &[u8]) {
        if let Some(start) = self.open {
            let len = self.buf.len() - start - 5;
            let room = MAX_COPY_MESSAGE - len;
            let now = data.len().min(room);
            self.buf.extend_from_slice(&data[..now]);
            self.buf[start + 1..start + 5].copy_from_slice(&(4 + (len + now) as u32).to_be_bytes());
            data = &data[now..];
        }
        for piece in data.chunks(MAX_COPY_MESSAGE) {
            self.buf.reserve(5 + piece.len());
            self.open = Some(self.buf.len());
            self.buf.push(b'd');
            self.buf.extend_from_slice(&(4 + piece.len() as u32).to_be_bytes());
            self.buf.extend_from_slice(piece);
        }
    }

    /// Bytes buffered.
    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data of the next received message (`PgConn::copy_receive` put only whole CopyData
    /// messages here).
    #[inline]
    pub fn next_message(&mut self) -> Option<&[u8]> {
        let rest = &self.buf[self.pos..];
        let [b'd', a, b, c, d, ..] = *rest else {
            self.clear();
            return None;
        };
        let total = 1 + u32::from_be_bytes([a, b, c, d]) as usize;
        let start = self.pos + 5;
        self.pos += total;
        Some(&self.buf[start..self.pos])
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.open = None;
    }
}

impl PgConn {
    /// Send `sql` (one Query message) and read until the server enters copy mode, in
    /// `direction` when given, else in either; the direction it took. Notices and anything
    /// before the COPY go into `set`. A statement that is no COPY (of that direction) still
    /// runs, and fails here.
    pub fn copy_start(
        &mut self,
        sql: &str,
        direction: Option<CopyDirection>,
        set: &mut ResultSet,
    ) -> Result<CopyDirection> {
        // As every statement: nothing is sent on a connection found out of step.
        self.ensure_usable_to_send()?;
        self.note_sql(sql);
        frontend::query(sql, &mut self.write_buf).map_err(|_| Error::interface("the SQL text contains a NUL byte"))?;
        self.exchange = Exchange::Simple;
        self.flush_writes(None)?;
        let stop = match direction {
            Some(CopyDirection::In) => Stop::CopyIn,
            Some(CopyDirection::Out) => Stop::CopyOut,
            None => Stop::Copy,
        };
        self.collect_into(set, false, None, stop)?;
        match self.copy {
            Some(started) => Ok(started),
            None => Err(Error::interface(match direction {
                Some(CopyDirection::In) => "the statement ran but is not a COPY ... FROM STDIN",
                Some(CopyDirection::Out) => "the statement ran but is not a COPY ... TO STDOUT",
                None => "the statement ran but is not a COPY ... FROM STDIN or TO STDOUT",
            })),
        }
    }

    /// End a COPY in progress whatever its direction, leaving the connection in step (a COPY
    /// FROM's CopyFail says `why`): before a transaction it runs in ends.
    pub fn abort_copy(&mut self, why: &str) {
        match self.copy {
            Some(CopyDirection::In) => self.copy_fail(why),
            Some(CopyDirection::Out) => self.copy_abandon_out(),
            None => {}
        }
    }

    /// Send the CopyData messages in `frames` (emptied), then look, without waiting, at what
    /// the server said meanwhile: an error (a bad row) ends the COPY and is returned.
    pub fn copy_send(&mut self, frames: &mut CopyFrames, set: &mut ResultSet) -> Result<()> {
        self.expect_copy(CopyDirection::In)?;
        let sent = self.stream.send_all(&frames.buf, &mut self.read_buf, None);
        frames.clear();
        sent.map_err(|e| self.io_failure(e))?;
        self.copy_in_check(set)
    }

    /// End a COPY FROM: the rest of `frames` and CopyDone in one write, then the outcome; the
    /// rows copied.
    pub fn copy_done(&mut self, frames: &mut CopyFrames, set: &mut ResultSet) -> Result<u64> {
        self.expect_copy(CopyDirection::In)?;
        frames.buf.extend_from_slice(&[b'c', 0, 0, 0, 4]);
        frames.open = None;
        self.copy = None;
        let sent = self.stream.send_all(&frames.buf, &mut self.read_buf, None);
        frames.clear();
        sent.map_err(|e| self.io_failure(e))?;
        self.collect_into(set, false, None, Stop::ReadyForQuery)?;
        Ok(set.rows_affected())
    }

    /// Abort a COPY FROM (CopyFail with `why`): the server rolls it back. Nothing to do when it
    /// already ended; a connection that does not answer is broken.
    pub fn copy_fail(&mut self, why: &str) {
        let _ = self.copy_fail_with(why, &mut ResultSet::default());
    }

    /// `copy_fail`, returning the server's answer (`COPY from stdin failed: why`, 57014), its
    /// notices into `set`.
    pub fn copy_fail_with(&mut self, why: &str, set: &mut ResultSet) -> Result<()> {
        self.expect_copy(CopyDirection::In)?;
        self.copy = None;
        let why = why.replace('\0', " ");
        frontend::copy_fail(&why, &mut self.write_buf).expect("no NUL left");
        let deadline = Some(Instant::now() + super::exec::RESET_TIMEOUT);
        if let Err(e) = self.flush_writes(deadline) {
            self.broken = true;
            return Err(e);
        }
        match self.collect_into(set, false, deadline, Stop::ReadyForQuery) {
            Ok(_) => Err(self.protocol_violation("the server took a CopyFail as success")),
            // 57014, or the error that had ended the COPY already (a bad row not yet seen):
            // either way read through to ReadyForQuery, in step (a connection that gave no
            // answer in time is broken by `collect_into`).
            Err(e) => Err(e),
        }
    }

    /// The next CopyData messages of a COPY TO, appended whole to `frames`: true. As many as
    /// have arrived, at least one (waiting for it), and while the socket has more at once, up
    /// to `COPY_RECEIVE_TARGET` bytes: a caller paying per call (a binding) makes few calls.
    /// False when the COPY ended (its tag in `set`); an error ends it too. Waits for the server,
    /// until `deadline` when given (then: broken).
    pub fn copy_receive(
        &mut self,
        frames: &mut CopyFrames,
        set: &mut ResultSet,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        self.expect_copy(CopyDirection::Out)?;
        loop {
            let mut end = 0;
            while let Some(total) = complete_message(&self.read_buf[end..], b'd') {
                end += total;
            }
            if end > 0 {
                frames.buf.extend_from_slice(&self.read_buf[..end]);
                self.read_buf.advance(end);
                if frames.len() < COPY_RECEIVE_TARGET && self.read_more_now()? {
                    continue;
                }
                return Ok(true);
            }
            if !frames.is_empty() {
                return Ok(true); // what follows is not data: the next call handles it
            }
            if let [b'c', 0, 0, 0, 4, ..] = self.read_buf[..] {
                // CopyDone; CommandComplete and ReadyForQuery follow.
                self.read_buf.advance(5);
                self.copy = None;
                self.collect_into(set, false, deadline, Stop::ReadyForQuery)?;
                return Ok(false);
            }
            if buffered_message(&self.read_buf).is_some() {
                self.copy_async_message(set)?;
                continue;
            }
            if !self.read_rest_of_message(deadline)? {
                return Err(self.io_failure(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")));
            }
        }
    }

    /// A COPY TO left before its end: read the rest for a moment, else close the connection.
    pub fn copy_abandon_out(&mut self) {
        if self.copy != Some(CopyDirection::Out) || self.broken || self.inherited() {
            return;
        }
        let deadline = Some(Instant::now() + COPY_OUT_DRAIN);
        let mut scratch = CopyFrames::default();
        let mut set = ResultSet::default();
        loop {
            scratch.clear();
            match self.copy_receive(&mut scratch, &mut set, deadline) {
                Ok(true) => {}
                Ok(false) => return,
                Err(_) => {
                    // A server error ended it in step (then the connection is fine), or the
                    // time ran out (then it is broken).
                    self.copy = None;
                    return;
                }
            }
        }
    }

    /// Read what the socket has now, without waiting: true when something came.
    fn read_more_now(&mut self) -> Result<bool> {
        if !self.stream.readable_now() {
            return Ok(false);
        }
        let before = self.read_buf.len();
        self.read_ready()?;
        Ok(self.read_buf.len() > before)
    }

    fn expect_copy(&mut self, direction: CopyDirection) -> Result<()> {
        self.ensure_usable()?;
        if self.copy != Some(direction) {
            return Err(Error::interface("the COPY has ended"));
        }
        Ok(())
    }

    /// During a COPY FROM the server speaks only to end it with an error (or with a notice, a
    /// notification, a parameter change): handle what it has sent, without waiting.
    fn copy_in_check(&mut self, set: &mut ResultSet) -> Result<()> {
        loop {
            if buffered_message(&self.read_buf).is_some() {
                self.copy_async_message(set)?;
                continue;
            }
            if !self.read_more_now()? {
                return Ok(());
            }
        }
    }

    /// One whole message during a COPY other than its data: an ErrorResponse ends the COPY
    /// (read through to ReadyForQuery, the error returned); notices, notifications and
    /// parameter changes are kept; anything else is a protocol violation.
    fn copy_async_message(&mut self, set: &mut ResultSet) -> Result<()> {
        if self.read_buf.first() == Some(&b'E') {
            self.copy = None;
            self.collect_into(set, false, None, Stop::ReadyForQuery)?;
            return Err(self.protocol_violation("the server ended a COPY without saying why"));
        }
        match self.decode_front()? {
            Message::NoticeResponse(body) => self.take_notice(set, &body),
            Message::NotificationResponse(body) => self.push_notification(&body),
            Message::ParameterStatus(body) => self.handle_parameter_status(&body),
            _ => return Err(self.protocol_violation("unexpected message during a COPY")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_join_into_messages_up_to_the_largest() {
        let mut f = CopyFrames::default();
        f.push(b"1\tone\n");
        f.push(b"");
        assert_eq!(f.buf, b"d\0\0\0\x0a1\tone\n", "an empty write adds nothing");
        f.push(b"2\ttwo\n");
        assert_eq!(f.buf, b"d\0\0\0\x101\tone\n2\ttwo\n", "joined into one message");
        let big = vec![7u8; MAX_COPY_MESSAGE + 3];
        let mut g = CopyFrames::default();
        g.push(b"ab");
        g.push(&big);
        g.push(b"z");
        assert_eq!(g.len(), 2 * 5 + 2 + big.len() + 1);
        let first = g.next_message().unwrap().to_vec();
        assert_eq!((first.len(), &first[..3]), (MAX_COPY_MESSAGE, &b"ab\x07"[..]));
        assert_eq!(g.next_message(), Some(&[7u8, 7, 7, 7, 7, b'z'][..]));
        assert_eq!(g.next_message(), None);
        assert!(g.is_empty());
        g.push(b"new");
        assert_eq!(g.buf, b"d\0\0\0\x07new", "after clear, a new message");
    }

    #[test]
    fn received_frames_are_handed_out_in_order() {
        let mut f = CopyFrames::default();
        f.buf.extend_from_slice(b"d\0\0\0\x06abd\0\0\0\x04d\0\0\0\x05z");
        assert_eq!(f.next_message(), Some(&b"ab"[..]));
        assert_eq!(f.next_message(), Some(&b""[..]));
        assert_eq!(f.next_message(), Some(&b"z"[..]));
        assert_eq!(f.next_message(), None);
    }
}
