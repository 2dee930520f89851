//! Asynchronous messages: what a server sends outside any exchange (NotificationResponse for a
//! channel this connection LISTENs on, NoticeResponse, ParameterStatus) and how a connection with
//! no statement running reads them.
//!
//! Notifications that arrive during a statement are kept by the reader (`reader`) in arrival
//! order; those that arrive while the connection is idle are read by `read_async`. Either way
//! they wait in the connection's queue until `take_notifications` (a session moves them into
//! its own queue after each statement, or its watcher does while the connection is idle).

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::RawFd;

use postgres_protocol::message::backend::{Message, NotificationResponseBody};

use super::reader::buffered_message;
use super::PgConn;
use crate::error::{Error, Result};

/// How many notifications one connection keeps before the session takes them (the oldest are
/// dropped past this, and the loss is reported by `take_notifications`).
pub const NOTIFICATIONS_PER_CONNECTION: usize = 65_536;

/// One notification (NOTIFY), or a marker that some may have been lost (`gap`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub channel: CString,
    /// Empty for a gap marker.
    pub payload: CString,
    /// The notifying backend's pid; 0 for a gap marker.
    pub pid: i32,
    /// Notifications on `channel` may have been missed just before this point: the listener lost
    /// its connection and listened again, or a queue bound was exceeded.
    pub gap: bool,
}

impl Notification {
    /// The marker for a possible loss on `channel`.
    pub fn gap(channel: CString) -> Notification {
        Notification { channel, payload: CString::default(), pid: 0, gap: true }
    }

    /// Bytes this notification holds (for the queues' byte bounds).
    pub fn size(&self) -> usize {
        self.channel.as_bytes().len() + self.payload.as_bytes().len() + 48
    }

    fn from_body(body: &NotificationResponseBody) -> Notification {
        // The server sends C strings, so neither can hold a NUL; a non-UTF-8 name or payload (a
        // server in another encoding) is kept as its bytes.
        let c = |s: std::io::Result<&str>| CString::new(s.unwrap_or_default()).unwrap_or_default();
        Notification { channel: c(body.channel()), payload: c(body.message()), pid: body.process_id(), gap: false }
    }
}

impl PgConn {
    /// Keep a notification that arrived on this connection (at most
    /// `NOTIFICATIONS_PER_CONNECTION`; the oldest goes first).
    pub(super) fn push_notification(&mut self, body: &NotificationResponseBody) {
        if self.notifications.len() >= NOTIFICATIONS_PER_CONNECTION {
            if let Some(old) = self.notifications.pop_front() {
                self.notifications_lost.push(old.channel);
            }
        }
        self.notifications.push_back(Notification::from_body(body));
    }

    /// Whether notifications wait in this connection's queue (cheap: no lock, no system call).
    #[inline]
    pub fn has_notifications(&self) -> bool {
        !self.notifications.is_empty() || !self.notifications_lost.is_empty()
    }

    /// The notifications received so far, oldest first, and the channels of those dropped
    /// because the connection's queue was full (one entry per drop).
    pub fn take_notifications(&mut self) -> (VecDeque<Notification>, Vec<CString>) {
        (std::mem::take(&mut self.notifications), std::mem::take(&mut self.notifications_lost))
    }

    /// Forget queued notifications (the connection goes back to the pool for another user).
    #[inline]
    pub(super) fn clear_notifications(&mut self) {
        if self.has_notifications() {
            self.notifications.clear();
            self.notifications_lost.clear();
        }
    }

    /// The socket's descriptor, for a watcher to poll(2) while the connection is idle. Never read
    /// from it directly: `read_async` does.
    pub fn socket_fd(&self) -> RawFd {
        self.stream.fd()
    }

    /// Whether a COPY is in progress (the connection is in copy mode and speaks of nothing
    /// else), or a stream's reply is still arriving: what the socket holds then is not
    /// unasked.
    pub fn in_copy(&self) -> bool {
        self.copy.is_some() || self.portal_open
    }

    /// Read, without waiting, what the server has sent while no statement runs: notifications go
    /// into the queue, ParameterStatus updates the parameters. An error means the connection is
    /// gone (a FATAL error such as a restart's 57P01, end of file, or anything else a server does
    /// not send unasked): it is then broken. Does nothing during a COPY (its data is the
    /// server's to send and `copy` reads it) or an open stream (its rows are the stream's).
    pub fn read_async(&mut self) -> Result<()> {
        self.ensure_usable()?;
        if self.in_copy() {
            return Ok(());
        }
        self.take_async_messages()?;
        while self.stream.readable_now() {
            self.read_ready()?;
            self.take_async_messages()?;
        }
        Ok(())
    }

    /// `read_async` once the socket has polled readable: one read (no poll(2) before or
    /// after it; what is left makes the socket poll readable again).
    pub fn read_async_ready(&mut self) -> Result<()> {
        self.ensure_usable()?;
        if self.in_copy() {
            return Ok(());
        }
        self.read_ready()?;
        self.take_async_messages()
    }

    /// `read_async` without reading the socket: only what is buffered already (what came in
    /// with a statement's last read, after its ReadyForQuery). A failure leaves the connection
    /// broken, for its next statement to find.
    #[inline]
    pub fn read_buffered_async(&mut self) {
        if !self.read_buf.is_empty() && !self.in_copy() && !self.broken {
            let _ = self.take_async_messages();
        }
    }

    /// Handle every complete message at the front of the read buffer as one a server sends
    /// unasked.
    fn take_async_messages(&mut self) -> Result<()> {
        while buffered_message(&self.read_buf).is_some() {
            match self.decode_front()? {
                Message::ParameterStatus(body) => self.store_parameter(&body)?,
                Message::NotificationResponse(body) => self.push_notification(&body),
                Message::NoticeResponse(_) => {} // no statement to attach it to
                Message::ErrorResponse(body) => {
                    // Unasked, only a FATAL error comes (the server then closes the connection).
                    self.broken = true;
                    return Err(Error::from_server(super::server_fields(body.fields())));
                }
                _ => return Err(self.protocol_violation("unexpected message while the connection was idle")),
            }
        }
        Ok(())
    }
}

/// Whether an error left by `take_async_messages` came from the server closing the connection
/// (for log messages: a restart or a terminated backend is expected, a protocol violation not).
pub fn is_connection_loss(e: &Error) -> bool {
    matches!(e.sqlstate(), Some(s) if s.starts_with("08") || s.starts_with("57"))
}
