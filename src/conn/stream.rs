//! The byte stream under one connection: a TCP or Unix-domain socket, with deadlines applied per
//! read and write and TCP keepalive options set the way libpq sets them.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::config::{ConnectConfig, Host, HostSpec};

pub struct Stream {
    socket: Socket,
    /// The timeouts last set on the socket, so unchanged ones cost no system call.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

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
        Stream { socket, read_timeout: None, write_timeout: None }
    }

    /// Connect without the TCP options of a configuration (for a cancel request).
    pub fn connect_plain(spec: &HostSpec, deadline: Instant) -> io::Result<Stream> {
        match &spec.host {
            Host::Unix(dir) => {
                Ok(Stream::new(Socket::Unix(UnixStream::connect(dir.join(format!(".s.PGSQL.{}", spec.port)))?)))
            }
            Host::Tcp(name) => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolved to no address");
                for addr in (name.as_str(), spec.port).to_socket_addrs()? {
                    let left = remaining(Some(deadline))?.unwrap_or_default();
                    match TcpStream::connect_timeout(&addr, left) {
                        Ok(s) => return Ok(Stream::new(Socket::Tcp(s))),
                        Err(e) => last = e,
                    }
                }
                Err(last)
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

    pub fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        if t != self.write_timeout {
            match &self.socket {
                Socket::Tcp(s) => s.set_write_timeout(t)?,
                Socket::Unix(s) => s.set_write_timeout(t)?,
            }
            self.write_timeout = t;
        }
        Ok(())
    }

    /// Whether the peer has sent something (or closed) without blocking: an idle connection should
    /// have nothing to read.
    pub fn readable_now(&self) -> bool {
        let mut pfd = libc::pollfd { fd: self.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n != 0
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match &self.socket {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.socket {
            Socket::Tcp(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
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
