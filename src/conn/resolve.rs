//! The two steps of reaching a server that have no timeout of their own, bounded by the
//! connection attempt's deadline:
//!
//! - Host name lookup. getaddrinfo(3) cannot be given one, and a resolver that does not answer
//!   takes its own retries' time (`resolv.conf`'s timeout × attempts × servers, often 30 s or
//!   more). A name that is not a numeric address is looked up on a thread of its own while the
//!   caller waits at most until the deadline; a lookup still running then is left to finish alone
//!   (its answer dropped). At most `MAX_LOOKUPS` such lookups run at once in the process, so a
//!   resolver that hangs cannot make connection attempts pile up threads: past that, connecting
//!   by name fails at once and says why.
//! - Connecting to a Unix-domain socket. A blocking connect(2) to a server whose listen queue
//!   is full waits until the server accepts; a non-blocking one fails with EAGAIN instead, and
//!   is retried every few milliseconds until the deadline.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The most host name lookups that may be running at once in the process.
pub(super) const MAX_LOOKUPS: usize = 16;

/// How long a Unix-domain connect waits between tries while the server's queue is full.
const UNIX_RETRY: Duration = Duration::from_millis(5);

static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

/// The addresses of `name` at `port`, found by `deadline` at the latest. A numeric address
/// (IPv4 or IPv6) is used as it is, without a lookup.
pub(super) fn resolve(name: &str, port: u16, deadline: Instant) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    resolve_with(name, port, deadline, |name, port| (name, port).to_socket_addrs().map(Iterator::collect))
}

/// `resolve` with the lookup itself given (tested with a lookup that hangs).
fn resolve_with(
    name: &str,
    port: u16,
    deadline: Instant,
    lookup: impl FnOnce(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + 'static,
) -> io::Result<Vec<SocketAddr>> {
    let timed_out =
        || io::Error::new(io::ErrorKind::TimedOut, format!("timed out looking up the host name \"{name}\""));
    if Instant::now() >= deadline {
        return Err(timed_out());
    }
    if LOOKUPS.fetch_add(1, Ordering::AcqRel) >= MAX_LOOKUPS {
        LOOKUPS.fetch_sub(1, Ordering::AcqRel);
        return Err(io::Error::other(format!(
            "cannot look up the host name \"{name}\": {MAX_LOOKUPS} lookups are already waiting for the resolver"
        )));
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let owned = name.to_owned();
    let spawned = thread::Builder::new().name("pgsess-resolve".into()).spawn(move || {
        let found = lookup(&owned, port);
        LOOKUPS.fetch_sub(1, Ordering::AcqRel);
        let _ = tx.send(found); // the caller may have stopped waiting
    });
    if let Err(e) = spawned {
        LOOKUPS.fetch_sub(1, Ordering::AcqRel);
        return Err(e);
    }
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(found) => found,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(timed_out()),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(io::Error::other(format!("the lookup of the host name \"{name}\" ended without an answer")))
        }
    }
}

/// Connect to the Unix-domain socket at `path` by `deadline` (see the module comment). The
/// stream returned is blocking, as `UnixStream::connect` gives.
pub(super) fn connect_unix(path: &Path, deadline: Instant) -> io::Result<UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid (empty) value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the Unix-domain socket path \"{}\" is too long or contains a NUL byte", path.display()),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    loop {
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes, alive for the call.
        let rc = unsafe { libc::connect(raw, std::ptr::addr_of!(addr).cast(), len) };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("timed out connecting to \"{}\": the server's listen queue is full", path.display()),
                    ));
                }
                thread::sleep(UNIX_RETRY.min(deadline - now));
            }
            _ => return Err(e),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numeric_address_is_not_looked_up() {
        let at = Instant::now(); // a deadline already passed: a lookup would time out
        assert_eq!(resolve("127.0.0.1", 5432, at).unwrap(), ["127.0.0.1:5432".parse().unwrap()]);
        assert_eq!(resolve("::1", 5433, at).unwrap(), ["[::1]:5433".parse().unwrap()]);
    }

    #[test]
    fn a_lookup_that_hangs_ends_at_the_deadline_and_the_answer_of_one_that_does_not_is_used() {
        let t = Instant::now();
        let hangs = |_: &str, _: u16| {
            thread::sleep(Duration::from_secs(3));
            Ok(Vec::new())
        };
        let e = resolve_with("hangs.example", 5432, t + Duration::from_millis(200), hangs).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("hangs.example"), "{e}");
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(190) && took < Duration::from_millis(1500), "{took:?}");

        let answers = |_: &str, port: u16| Ok(vec![SocketAddr::from(([10, 0, 0, 1], port))]);
        let found = resolve_with("answers.example", 7, Instant::now() + Duration::from_secs(5), answers).unwrap();
        assert_eq!(found, [SocketAddr::from(([10, 0, 0, 1], 7))]);
    }

    #[test]
    fn a_unix_connect_to_a_full_queue_ends_at_the_deadline() {
        let dir = std::env::temp_dir().join(format!("pgsess-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".s.PGSQL.1");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // A listen queue of one (Linux takes backlog + 1), never accepted: fill it.
        // SAFETY: listen(2) on a descriptor the listener owns.
        assert_eq!(unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 0) }, 0);
        let mut held = Vec::new();
        let full = loop {
            match connect_unix(&path, Instant::now()) {
                Ok(s) => held.push(s),
                Err(e) => break e,
            }
            assert!(held.len() < 64, "the queue never filled");
        };
        assert_eq!(full.kind(), io::ErrorKind::TimedOut, "{full}");
        let t = Instant::now();
        let e = connect_unix(&path, t + Duration::from_millis(200)).unwrap_err();
        let took = t.elapsed();
        assert!(e.to_string().contains("listen queue is full"), "{e}");
        assert!(took >= Duration::from_millis(190) && took < Duration::from_millis(1500), "{took:?}");
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
