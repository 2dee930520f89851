//! The byte stream under one connection: a TCP or Unix-domain socket, with deadlines applied per
//! read and write and TCP keepalive options set the way libpq sets them, optionally carrying TLS.
//!
//! Plain text reads straight from the socket into the connection's buffer and writes straight
//! from it: TLS adds one branch per read or flush to that path. With TLS, rustls's
//! `ClientConnection` sits between the same system calls and the same buffers: records are read
//! with `read_tls`, decrypted by `process_new_packets`, and the plaintext is appended to the read
//! buffer; writes go through `writer()` (bounded by rustls's buffer limit) and `write_tls` with
//! non-blocking sends, still reading while the socket is full.
//!
//! Every wait here is a poll(2) bounded by the caller's deadline and by the stream's `Bounds`
//! (`waits`): the statement timeout for sending, the cancel grace once a cancel was asked for,
//! and the caller's bound on connecting.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rustls::ClientConnection;

use super::resolve;
use super::waits::{self, Bound, Bounds};
use crate::config::{ConnectConfig, Host, HostSpec};

pub struct Stream {
    socket: Socket,
    /// Set once a TLS handshake has completed; every byte then goes through it.
    tls: Option<Box<ClientConnection>>,
    /// The timeouts last set on the socket, so unchanged ones cost no system call.
    read_timeout: Option<Duration>,
    /// The last read filled all the space it was given: more is probably waiting in the socket,
    /// so the next `fill_until` reads before it polls.
    more_waiting: bool,
    /// What bounds every wait beyond the caller's deadline (`waits`).
    pub(super) bounds: Bounds,
    /// A duplicate of the descriptor is held elsewhere (`share`), by this process: shut the
    /// socket down before closing it (never in a forked child, whose parent still uses it).
    shared_by: Option<u32>,
}

/// Why a TLS handshake did not complete.
#[derive(Debug)]
pub enum HandshakeError {
    Io(io::Error),
    Tls(rustls::Error),
}

/// How much the read buffer grows by when it runs short, and its size when a connection starts.
pub(super) const READ_CHUNK: usize = 64 * 1024;

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Time left until `deadline`, or a `TimedOut` error when it has passed. `None` means no limit.
pub fn remaining(deadline: Option<Instant>) -> io::Result<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
            } else {
                Ok(Some(left))
            }
        }
    }
}

impl Stream {
    /// Connect to one host, bounded by `deadline` (every resolved address shares it), with the
    /// configuration's TCP options.
    pub fn connect(spec: &HostSpec, config: &ConnectConfig, deadline: Instant) -> io::Result<Stream> {
        let stream = Stream::connect_plain(spec, deadline)?;
        if let Socket::Tcp(s) = &stream.socket {
            s.set_nodelay(true)?;
            set_tcp_options(s, config)?;
        }
        Ok(stream)
    }

    fn new(socket: Socket) -> Stream {
        let stream = Stream {
            socket,
            tls: None,
            read_timeout: None,
            more_waiting: false,
            bounds: Bounds::new(),
            shared_by: None,
        };
        stream.bounds.signal.set_fd(stream.socket_fd());
        stream
    }

    /// Connect without the TCP options of a configuration (for a cancel request).
    pub fn connect_plain(spec: &HostSpec, deadline: Instant) -> io::Result<Stream> {
        let (deadline, bound) = waits::connect_deadline(deadline);
        match &spec.host {
            Host::Unix(dir) => {
                let path = dir.join(format!(".s.PGSQL.{}", spec.port));
                let socket = resolve::connect_unix(&path, deadline).map_err(|e| reached(bound, e))?;
                Ok(Stream::new(Socket::Unix(socket)))
            }
            Host::Tcp(name) => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolved to no address");
                // libpq's hostaddr: that address, no look-up.
                let addrs: Vec<std::net::SocketAddr> = match spec.addr {
                    Some(ip) => vec![(ip, spec.port).into()],
                    None => resolve::resolve(name, spec.port, deadline).map_err(|e| reached(bound, e))?,
                };
                for addr in addrs {
                    let left = remaining(Some(deadline)).map_err(|e| reached(bound, e))?.unwrap_or_default();
                    match TcpStream::connect_timeout(&addr, left) {
                        Ok(s) => return Ok(Stream::new(Socket::Tcp(s))),
                        Err(e) => last = e,
                    }
                }
                Err(if Instant::now() >= deadline { reached(bound, last) } else { last })
            }
        }
    }

    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        if t != self.read_timeout {
            match &self.socket {
                Socket::Tcp(s) => s.set_read_timeout(t)?,
                Socket::Unix(s) => s.set_read_timeout(t)?,
            }
            self.read_timeout = t;
        }
        Ok(())
    }

    /// The ALPN protocol the server selected in the TLS handshake (`None` in plain text, or when
    /// it selected none).
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.tls.as_ref().and_then(|t| t.alpn_protocol())
    }

    /// Whether a signal interrupted a wait for the running statement's answer since the last
    /// call (`Bounds::cancel_on_signal`), clearing it.
    pub fn take_interrupted(&self) -> bool {
        self.bounds.interrupted.replace(false)
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The server's end-entity certificate (DER), once TLS is up.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        self.tls.as_ref()?.peer_certificates()?.first().map(|c| c.as_ref())
    }

    /// Send an SSLRequest and read the server's one-byte answer ('S', 'N', or 'E' for an error
    /// message that follows). Exactly one byte is read: anything the server sent after it stays
    /// in the socket and, if it is not TLS, fails the handshake (libpq refuses "unencrypted data
    /// after SSL response").
    pub fn ssl_request(&mut self, deadline: Instant) -> io::Result<u8> {
        let (deadline, bound) = waits::connect_deadline(deadline);
        self.ssl_request_by(deadline).map_err(|e| reached(bound, e))
    }

    fn ssl_request_by(&mut self, deadline: Instant) -> io::Result<u8> {
        let mut request = BytesMut::with_capacity(8);
        postgres_protocol::message::frontend::ssl_request(&mut request);
        let mut scratch = BytesMut::new();
        self.send_all(&request, &mut scratch, Some(deadline))?;
        let mut byte = [0u8; 1];
        loop {
            self.set_read_timeout(remaining(Some(deadline))?)?;
            match FdIo(self.socket_fd()).read(&mut byte) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection unexpectedly (in answer to the SSL request)",
                    ))
                }
                Ok(_) => return Ok(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Run the TLS handshake on this socket with `conn`, bounded by `deadline`. On success every
    /// later byte is encrypted.
    pub fn start_tls(&mut self, conn: ClientConnection, deadline: Instant) -> Result<(), HandshakeError> {
        let (deadline, bound) = waits::connect_deadline(deadline);
        self.start_tls_by(conn, deadline).map_err(|e| match e {
            HandshakeError::Io(e) => HandshakeError::Io(reached(bound, e)),
            tls => tls,
        })
    }

    fn start_tls_by(&mut self, mut conn: ClientConnection, deadline: Instant) -> Result<(), HandshakeError> {
        let fd = self.socket_fd();
        loop {
            while conn.wants_write() {
                match conn.write_tls(&mut FdIo(fd)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        wait_fd(fd, libc::POLLOUT, Some(deadline)).map_err(HandshakeError::Io)?;
                    }
                    Err(e) => return Err(HandshakeError::Io(e)),
                }
            }
            if !conn.is_handshaking() {
                break;
            }
            self.set_read_timeout(remaining(Some(deadline)).map_err(HandshakeError::Io)?)
                .map_err(HandshakeError::Io)?;
            match conn.read_tls(&mut FdIo(fd)) {
                Ok(0) => {
                    return Err(HandshakeError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection during the TLS handshake",
                    )))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(HandshakeError::Io(e)),
            }
            if let Err(e) = conn.process_new_packets() {
                // Tell the server why (the alert rustls queued), best effort.
                let _ = conn.write_tls(&mut FdIo(fd));
                return Err(HandshakeError::Tls(e));
            }
        }
        self.tls = Some(Box::new(conn));
        Ok(())
    }

    /// Wait until the server sends something or `deadline` passes (`TimedOut`), then read what
    /// it sent into `buf` (with TLS, possibly no plaintext yet: the caller reads again).
    ///
    /// The wait is libpq's (`pqWait` then `pqReadData`): poll(2) for input, then a read that
    /// cannot block. A reader blocked in read(2) on a Unix socket is also woken when the server
    /// consumes what was sent (the write-space wakeup shares the socket's wait queue and read(2)
    /// does not filter it), so a statement waiting in read(2) is often woken twice; poll(2) is
    /// woken only for input. When the last read filled all the space it was given, the socket
    /// probably holds more: then the read comes first, and poll(2) only if it finds nothing.
    pub fn fill_until(&mut self, buf: &mut BytesMut, deadline: Option<Instant>) -> io::Result<()> {
        let fd = self.socket_fd();
        if let Some(tls) = &mut self.tls {
            // rustls decrypts every complete record it is given and `tls_fill` takes all the
            // plaintext, so nothing is left inside it to wait for but the socket.
            wait_bounded(fd, &self.bounds, libc::POLLIN, deadline, false)?;
            return tls_fill(tls, fd, buf, libc::MSG_DONTWAIT);
        }
        loop {
            if !self.more_waiting {
                self.wait(libc::POLLIN, deadline, false)?;
            }
            match self.read_plain(buf, libc::MSG_DONTWAIT) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.more_waiting = false,
                done => return done,
            }
        }
    }

    /// `fill_until`, after a sleep of `pause` (cut short by `deadline`) that the socket does not
    /// end, unless the socket is known to hold more already: the read after it takes whatever
    /// arrived meanwhile, and poll(2) waits only if nothing did. For a large result streaming
    /// in (`PgConn::coalesced_pause`): a reader waiting in poll(2) is woken by every send of
    /// the server, and on a server that sends faster than the client reads that wake-up is the
    /// server's cost (an inter-processor interrupt per 8 KiB send when the two are on different
    /// CPUs); a reader that sleeps is woken by its own timer and reads several sends at once.
    /// A signal during the sleep ends the wait as one during poll(2) does (`Bounds`).
    pub fn fill_after_pause(
        &mut self,
        buf: &mut BytesMut,
        deadline: Option<Instant>,
        pause: Duration,
    ) -> io::Result<()> {
        if !self.more_waiting {
            let pause = remaining(deadline)?.map_or(pause, |left| left.min(pause));
            let ts = libc::timespec { tv_sec: pause.as_secs() as libc::time_t, tv_nsec: pause.subsec_nanos() as _ };
            // SAFETY: a valid timespec; the remainder is not wanted.
            if unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) } != 0 && self.bounds.cancel_on_signal {
                // EINTR, the only failure a valid timespec can have.
                self.bounds.interrupted.set(true);
                return Err(io::Error::new(io::ErrorKind::TimedOut, "interrupted by a signal"));
            }
            // Read first; poll(2) only when the socket turns out empty. (With TLS, poll(2)
            // comes first and returns at once when records are in; `more_waiting` stays unset.)
            self.more_waiting = self.tls.is_none();
        }
        self.fill_until(buf, deadline)
    }

    /// Read whatever the socket has (at least one byte from the socket) into `buf`, honouring
    /// the socket's read timeout. With TLS, a read may bring no plaintext (a partial record, a
    /// session ticket): that is `Ok` with nothing appended, and the caller reads again.
    #[inline]
    pub fn fill(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        let fd = self.socket_fd();
        if let Some(tls) = &mut self.tls {
            return tls_fill(tls, fd, buf, 0);
        }
        self.read_plain(buf, 0)
    }

    /// One recv(2) into the spare capacity of `buf` with `flags` (`MSG_DONTWAIT`: never
    /// blocks, `WouldBlock` when the socket is empty).
    #[inline]
    fn read_plain(&mut self, buf: &mut BytesMut, flags: libc::c_int) -> io::Result<()> {
        let fd = self.socket_fd();
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let spare = buf.spare_capacity_mut();
        let n = loop {
            // SAFETY: recv(2) writes at most `spare.len()` bytes into the spare capacity, which
            // we own; no Rust reference to uninitialised bytes is created.
            let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), spare.len(), flags) };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection unexpectedly"));
        }
        self.more_waiting = n == spare.len();
        // SAFETY: the kernel initialised `n` bytes after the current length.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(())
    }

    /// Send all of `data`. While the socket cannot take more, read what the server sends
    /// meanwhile into `read_buf`: a server answering a large batch stops reading when its own
    /// output is not read, and two blocked writers would wait for each other forever. A wait for
    /// the socket is bounded by `deadline` and by the running statement's timeout (`waits`).
    pub fn send_all(&mut self, data: &[u8], read_buf: &mut BytesMut, deadline: Option<Instant>) -> io::Result<()> {
        if self.tls.is_some() {
            return self.tls_send_all(data, read_buf, deadline);
        }
        let fd = self.socket_fd();
        let mut sent = 0;
        loop {
            if sent == data.len() {
                return Ok(());
            }
            let rest = &data[sent..];
            // SAFETY: sends from a live buffer; MSG_NOSIGNAL keeps a closed peer from raising
            // SIGPIPE in the host program.
            let n =
                unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if n >= 0 {
                sent += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {}
                _ => return Err(e),
            }
            if self.wait(libc::POLLOUT | libc::POLLIN, deadline, true)? & libc::POLLIN != 0 {
                self.fill_while_sending(read_buf)?;
            }
        }
    }

    /// `fill`, while a send waits: within `Bounds::read_while_sending`. Nothing to read after
    /// all (poll(2) woke for a hang-up, or another user of the descriptor set `O_NONBLOCK`,
    /// `Stream::share`) is not an error: the send goes on.
    fn fill_while_sending(&mut self, read_buf: &mut BytesMut) -> io::Result<()> {
        let bound = self.bounds.read_while_sending;
        if read_buf.len() >= bound {
            return Err(super::waits::Bound::ReadWhileSending(read_buf.len()).into_io());
        }
        match self.fill(read_buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            done => done,
        }
    }

    /// One read that never blocks: `Ok(true)` when it appended to `buf` (with TLS, possibly
    /// nothing yet: a partial record), `Ok(false)` when the socket had nothing (`WouldBlock`).
    /// A caller that waits on an edge-triggered poller (Go's netpoller) reads until `Ok(false)`
    /// before it waits, or it may not be woken for what is already there. A closed or failed
    /// socket is the error a blocking read would give.
    pub fn fill_nonblocking(&mut self, buf: &mut BytesMut) -> io::Result<bool> {
        let fd = self.socket_fd();
        let read = match &mut self.tls {
            Some(tls) => tls_fill(tls, fd, buf, libc::MSG_DONTWAIT),
            None => self.read_plain(buf, libc::MSG_DONTWAIT),
        };
        match read {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.more_waiting = false;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Another owner of this socket's open file description waits on it (a host runtime's
    /// poller on a `dup(2)` of the descriptor, `pgsess_pending_fd`): from now on, closing the
    /// connection shuts the socket down first, so the server sees it end even while that
    /// duplicate stays open. The duplicate may also have set `O_NONBLOCK`, which every read
    /// and write here tolerates (they poll(2) first, or treat `WouldBlock` as nothing read).
    pub fn share(&mut self) {
        self.shared_by = Some(crate::process::current_pid());
    }

    fn tls_send_all(&mut self, data: &[u8], read_buf: &mut BytesMut, deadline: Option<Instant>) -> io::Result<()> {
        let fd = self.socket_fd();
        let mut accepted = 0;
        loop {
            let tls = self.tls.as_mut().expect("TLS stream");
            // Encrypt as much as rustls's outgoing buffer limit takes, then push it out.
            if accepted < data.len() {
                accepted += tls.writer().write(&data[accepted..])?;
            }
            let mut blocked = false;
            while tls.wants_write() {
                match tls.write_tls(&mut FdIo(fd)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        blocked = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !blocked {
                if accepted == data.len() {
                    return Ok(());
                }
                continue;
            }
            if self.wait(libc::POLLOUT | libc::POLLIN, deadline, true)? & libc::POLLIN != 0 {
                self.fill_while_sending(read_buf)?;
            }
        }
    }

    /// End TLS politely (close_notify), without waiting: the socket is closed next.
    pub fn close_notify(&mut self) {
        let fd = self.socket_fd();
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = tls.write_tls(&mut FdIo(fd));
        }
    }

    /// Whether the peer has sent something (or closed) without blocking: an idle connection should
    /// have nothing to read. (TLS leaves no decrypted plaintext behind: `fill` takes all of it.)
    pub fn readable_now(&self) -> bool {
        let mut pfd = libc::pollfd { fd: self.socket_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n != 0
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Before the socket's descriptor is closed (its fields are dropped after this).
        self.bounds.signal.closing();
        if self.shared_by == Some(crate::process::current_pid()) {
            // SAFETY: our own open socket; shutdown(2) ends it for every descriptor of it.
            unsafe { libc::shutdown(self.socket_fd(), libc::SHUT_RDWR) };
        }
    }
}

impl Stream {
    /// Wait until the socket has one of `events` (or an error or hang-up), bounded by `deadline`
    /// (then `TimedOut`) and by the stream's bounds for a send or a read (then the error of the
    /// bound that passed, see `waits::Bound`). Without a deadline or a bound the poll has no
    /// timeout: a cancel during it is ended at its grace by the alarm (`watchdog`).
    fn wait(&self, events: libc::c_short, deadline: Option<Instant>, sending: bool) -> io::Result<libc::c_short> {
        wait_bounded(self.socket_fd(), &self.bounds, events, deadline, sending)
    }

    /// The socket's descriptor (for poll(2) by a watcher of an idle connection).
    #[inline]
    pub fn fd(&self) -> RawFd {
        self.socket_fd()
    }

    #[inline]
    fn socket_fd(&self) -> RawFd {
        match &self.socket {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// `Stream::wait` on `fd` with `bounds`.
fn wait_bounded(
    fd: RawFd,
    bounds: &Bounds,
    events: libc::c_short,
    deadline: Option<Instant>,
    sending: bool,
) -> io::Result<libc::c_short> {
    // A signal interrupting the wait for an answer ends the wait, for the reader to cancel the
    // statement (`Bounds::cancel_on_signal`); a send is never cut short by one.
    let interruptible = !sending && bounds.cancel_on_signal;
    loop {
        let limit = bounds.limit(deadline, sending);
        match wait_fd_interruptible(fd, events, limit.poll_until(), interruptible) {
            // Woken by the cancel grace's alarm (or ready just as the grace ended): the grace's
            // error, not the socket's.
            Ok(revents) => return bounds.cancel_expired().map_or(Ok(revents), |b| Err(b.into_io())),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                if limit.until.is_some_and(|until| Instant::now() >= until) {
                    return Err(limit.expired());
                }
                // Only the time to look at the cancel signal again.
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                bounds.interrupted.set(true);
                return Err(io::Error::new(io::ErrorKind::TimedOut, "interrupted by a signal"));
            }
            Err(e) => return Err(e),
        }
    }
}

/// `e`, or the error of `bound` when `e` says a wait timed out and `bound` is what bounded it.
fn reached(bound: Option<Bound>, e: io::Error) -> io::Error {
    match bound {
        Some(b) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => b.into_io(),
        _ => e,
    }
}

/// Read TLS records until some plaintext or nothing more is at hand; append the plaintext.
/// `flags` are recv(2)'s: `MSG_DONTWAIT` after poll(2), 0 to read under the socket's timeout.
fn tls_fill(tls: &mut ClientConnection, fd: RawFd, buf: &mut BytesMut, flags: libc::c_int) -> io::Result<()> {
    let n = tls.read_tls(&mut FdRecv(fd, flags))?;
    let state = match tls.process_new_packets() {
        Ok(state) => state,
        Err(e) => {
            let _ = tls.write_tls(&mut FdIo(fd)); // the alert, best effort
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("TLS error: {e}")));
        }
    };
    // Whatever TLS itself has to say back (a key update), without waiting.
    while tls.wants_write() {
        if tls.write_tls(&mut FdIo(fd)).is_err() {
            break;
        }
    }
    let plain = state.plaintext_bytes_to_read();
    if plain > 0 {
        let start = buf.len();
        buf.resize(start + plain, 0);
        tls.reader().read_exact(&mut buf[start..])?;
        return Ok(());
    }
    if n == 0 || state.peer_has_closed() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection unexpectedly"));
    }
    Ok(())
}

/// Wait until `fd` has one of `events` (or an error or hang-up), bounded by `deadline`;
/// returns the events seen.
fn wait_fd(fd: RawFd, events: libc::c_short, deadline: Option<Instant>) -> io::Result<libc::c_short> {
    wait_fd_interruptible(fd, events, deadline, false)
}

/// `wait_fd`; with `interruptible`, a signal (EINTR) ends the wait with `Interrupted` instead of
/// polling again.
fn wait_fd_interruptible(
    fd: RawFd,
    events: libc::c_short,
    deadline: Option<Instant>,
    interruptible: bool,
) -> io::Result<libc::c_short> {
    loop {
        let timeout_ms = match remaining(deadline)? {
            None => -1,
            Some(left) => left.as_millis().clamp(1, i32::MAX as u128) as i32,
        };
        let mut pfd = libc::pollfd { fd, events, revents: 0 };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ready > 0 {
            return Ok(pfd.revents);
        }
        if ready == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted || interruptible {
            return Err(e);
        }
    }
}

/// The socket as rustls reads it for `tls_fill`: one recv(2) with the given flags.
struct FdRecv(RawFd, libc::c_int);

impl Read for FdRecv {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: receives into a live, initialised buffer of that length.
            let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), self.1) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// The socket as rustls sees it: blocking reads honouring the socket's read timeout (a timeout
/// is `WouldBlock`), and non-blocking vectored sends without SIGPIPE.
struct FdIo(RawFd);

impl Read for FdIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: reads into a live, initialised buffer of that length.
            let n = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Write for FdIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        loop {
            // SAFETY: an msghdr pointing at the caller's live IoSlices (layout-compatible with
            // iovec), no address and no control data.
            let n = unsafe {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
                libc::sendmsg(self.0, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Keepalives on unless `keepalives=0`, with libpq's optional idle/interval/count and
/// `tcp_user_timeout` (milliseconds, as in libpq).
fn set_tcp_options(s: &TcpStream, c: &ConnectConfig) -> io::Result<()> {
    let fd = s.as_raw_fd();
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, c.keepalives as libc::c_int)?;
    if c.keepalives {
        let clamp = |v: u32| v.min(i32::MAX as u32) as libc::c_int;
        if let Some(v) = c.keepalives_idle {
            setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, clamp(v.max(1)))?;
        }
        if let Some(v) = c.keepalives_interval {
            setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, clamp(v.max(1)))?;
        }
        if let Some(v) = c.keepalives_count {
            setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, clamp(v.max(1)))?;
        }
    }
    if let Some(ms) = c.tcp_user_timeout_ms {
        setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms.min(i32::MAX as u32) as libc::c_int)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    extern "C" fn ignore(_: libc::c_int) {}

    /// SIGUSR2 with a handler that does nothing and no SA_RESTART: it interrupts a sleep.
    fn install_handler() {
        // SAFETY: a zeroed sigaction with a plain handler.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
        }
    }

    #[test]
    fn a_pause_reads_what_arrived_meanwhile_and_a_signal_during_it_ends_the_wait_when_signals_cancel() {
        install_handler();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut stream = Stream::new(Socket::Unix(ours));
        let mut buf = BytesMut::new();

        // Bytes sent during the pause are read after it, with no wait of their own.
        theirs.write_all(b"early").unwrap();
        let started = Instant::now();
        stream.fill_after_pause(&mut buf, None, Duration::from_millis(50)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50), "the pause is slept through");
        assert_eq!(&buf[..], b"early");

        // A signal during the pause ends the wait when the statement cancels on signal.
        stream.bounds.cancel_on_signal = true;
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() } as u64;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let signaller = std::thread::spawn(move || {
            // Every 100 ms until the wait ends: one signal may come before the sleep begins.
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                // SAFETY: the test thread is alive until this thread is joined.
                unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR2) };
            }
        });
        let started = Instant::now();
        let e = stream.fill_after_pause(&mut buf, None, Duration::from_secs(10)).unwrap_err();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        signaller.join().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(stream.take_interrupted());
        assert!(started.elapsed() < Duration::from_secs(5), "the signal did not end the pause");

        // A deadline cuts the pause short; the wait after it is bounded by the same deadline.
        stream.bounds.cancel_on_signal = false;
        let started = Instant::now();
        let deadline = Some(started + Duration::from_millis(100));
        assert!(stream.fill_after_pause(&mut buf, deadline, Duration::from_secs(10)).is_err());
        assert!(started.elapsed() < Duration::from_secs(5), "the deadline did not bound the pause");
        assert_eq!(&buf[..], b"early", "nothing more was read");
    }
}
