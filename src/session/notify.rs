//! LISTEN/NOTIFY on a session.
//!
//! Every session that receives notifications has a `Notifier`: a queue in arrival order, a
//! condition variable for `next_notification`, and an eventfd that is readable while the queue
//! is not empty (a semaphore eventfd: one count per queued entry), for event loops.
//!
//! Two sources fill it:
//! - `Session::listen` uses the session's *listener*: one connection of the session's
//!   configuration opened on first use, outside the pool (it is not counted against
//!   `pool_max_size`: a listener must stay open however busy the pool is), read by a background
//!   thread that blocks in poll(2) on it. When the connection is lost (a restart, a terminated
//!   backend, a failover) the thread reconnects with backoff, listens on every channel again,
//!   and then queues one gap marker per channel: notifications sent in between were missed.
//! - A pinned (or transaction's) session's own connection: a plain `LISTEN` run through
//!   `query` works as on libpq. Notifications that arrive during a statement are moved into the
//!   queue when it ends; those that arrive while the connection is idle are read by a watcher
//!   thread, started by the first `next_notification` or `notification_fd` call.
//!
//! The queue keeps at most `NOTIFICATIONS_KEPT` entries and `NOTIFICATION_BYTES_KEPT` bytes;
//! past either, the oldest are dropped with a logged warning, and a gap marker for each channel
//! that lost some is delivered before the rest.
//!
//! The threads hold the notifier weakly: when the session goes, its notifier goes, and they stop.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::{lock, Pin, Session};
use crate::conn::{is_connection_loss, Notification, PgConn};
use crate::error::{Error, Result};
use crate::pool::{Lease, Pool};

/// How many notifications a session keeps before dropping the oldest.
pub const NOTIFICATIONS_KEPT: usize = 65_536;
/// How many bytes of notifications (channels and payloads) a session keeps.
pub const NOTIFICATION_BYTES_KEPT: usize = 64 << 20;

/// How long after waiters stop reading the listener's socket themselves the listener thread
/// takes it back.
const READER_GRACE_MS: u64 = 50;

/// The first and the longest wait before the listener tries to reconnect.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// An eventfd, shared with the thread that polls it (it is closed only when both let go, so a
/// thread never polls or reads a number reused by another file).
struct EventFd(OwnedFd);

impl EventFd {
    fn new(semaphore: bool) -> Result<Arc<EventFd>> {
        EventFd::owned(semaphore).map(Arc::new)
    }

    fn owned(semaphore: bool) -> Result<EventFd> {
        let flags = libc::EFD_NONBLOCK | libc::EFD_CLOEXEC | if semaphore { libc::EFD_SEMAPHORE } else { 0 };
        // SAFETY: eventfd(2) with valid flags; the descriptor is owned from here on.
        let fd = unsafe { libc::eventfd(0, flags) };
        if fd < 0 {
            return Err(Error::operational("58000", format!("eventfd failed: {}", std::io::Error::last_os_error())));
        }
        // SAFETY: a new descriptor nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn add(&self, n: u64) {
        // SAFETY: writes 8 bytes from a live u64 to our eventfd (it cannot overflow: counts
        // are bounded by the queue's bounds).
        let _ = unsafe { libc::write(self.fd(), (&n as *const u64).cast(), 8) };
    }

    /// Take one count (a semaphore eventfd) or all (another); nothing when zero.
    fn take(&self) {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN when the count is zero.
        let _ = unsafe { libc::read(self.fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// The queue of one session's notifications (see the module comment).
#[derive(Default)]
struct Queue {
    items: VecDeque<Notification>,
    /// Channels that lost notifications to the bounds: a gap marker each, delivered first.
    lost: Vec<CString>,
    bytes: usize,
    /// A drop was logged since the queue was last empty.
    warned: bool,
    /// Counts `wake_waiters` calls: a waiter that sees it change returns.
    wakes: u64,
    /// `Notifier::fd` has been handed out: from then on it counts the entries (until then it
    /// costs no system call per notification).
    fd_on: bool,
    /// A waiter is reading the listener's socket itself (`Notifier::read_as_waiter`): a
    /// delivery from elsewhere, or a wake, must interrupt its poll(2) (`reader_wake`).
    reading: bool,
    /// Waiters on the condition variable (it is signalled only when there are some).
    waiting: usize,
}

pub(crate) struct Notifier {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Readable while `queue` holds something.
    fd: Arc<EventFd>,
    /// Becomes readable, for good, when the notifier goes: its threads then stop. Never read.
    stopped: Arc<EventFd>,
    stop: Arc<AtomicBool>,
    listener: Mutex<Option<Arc<Listener>>>,
    watcher_started: AtomicBool,
    /// Held by the one waiter reading the listener's socket itself.
    reader: Mutex<()>,
    /// Interrupts that waiter's poll(2) (see `Queue::reading`).
    reader_wake: EventFd,
    /// When a waiter last stopped reading (ms since `created`): the listener thread leaves the
    /// socket to waiters while they come and go (`reader_recent`).
    reader_left_ms: AtomicU64,
    created: Instant,
}

impl Notifier {
    pub(crate) fn new() -> Result<Notifier> {
        Ok(Notifier {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            fd: EventFd::new(true)?,
            stopped: EventFd::new(false)?,
            stop: Arc::new(AtomicBool::new(false)),
            listener: Mutex::new(None),
            watcher_started: AtomicBool::new(false),
            reader: Mutex::new(()),
            reader_wake: EventFd::owned(false)?,
            reader_left_ms: AtomicU64::new(0),
            created: Instant::now(),
        })
    }

    /// Queue what a connection received, oldest first, after gap markers for what it dropped.
    pub(crate) fn deliver(&self, items: VecDeque<Notification>, lost: Vec<CString>) {
        self.deliver_from(items, lost, false);
    }

    /// `deliver`; `by_reader` when the waiter reading the socket delivers (it needs no wake).
    /// Only what is needed: no system call when nobody waits.
    fn deliver_from(&self, items: VecDeque<Notification>, lost: Vec<CString>, by_reader: bool) {
        if items.is_empty() && lost.is_empty() {
            return;
        }
        let mut q = lock(&self.queue);
        for channel in lost {
            q.mark_lost(channel, &self.fd);
        }
        for n in items {
            q.push(n, &self.fd);
        }
        if q.reading && !by_reader {
            self.reader_wake.add(1);
        }
        let waiting = q.waiting > 0;
        drop(q);
        if waiting {
            self.ready.notify_all();
        }
    }

    /// The next notification, waiting up to `timeout` (`None`: for ever) or until `wake`.
    ///
    /// While nothing is queued, one waiter reads the listener's socket itself, as a libpq
    /// program's own loop does: a notification then reaches the application with no hand-over
    /// between threads (the listener thread leaves the socket to waiters while they keep
    /// coming, and takes it back when they stop). Other waiters wait on the condition variable.
    pub(crate) fn next(&self, timeout: Option<Duration>) -> Option<Notification> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut q = lock(&self.queue);
        let woken = q.wakes;
        loop {
            if let Some(n) = q.pop(&self.fd) {
                return Some(n);
            }
            if q.wakes != woken {
                return None;
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => return None,
                    left => Some(left),
                },
            };
            let listener = lock(&self.listener).clone();
            if let (Some(listener), Ok(_reading)) = (listener, self.reader.try_lock()) {
                q.reading = true;
                drop(q);
                self.read_as_waiter(&listener, left);
                q = lock(&self.queue);
                q.reading = false;
                self.reader_left_ms.store(self.created.elapsed().as_millis() as u64, Ordering::Release);
                if q.waiting > 0 {
                    self.ready.notify_one(); // another waiter may take over the reading
                }
                continue;
            }
            q.waiting += 1;
            q = match left {
                None => self.ready.wait(q).unwrap_or_else(|p| p.into_inner()),
                Some(left) => self.ready.wait_timeout(q, left).unwrap_or_else(|p| p.into_inner()).0,
            };
            q.waiting -= 1;
        }
    }

    /// One wait of `next` on the listener's socket, up to `left`: what arrives is read and
    /// queued here. A lost connection is left to the listener thread (nudged) to reconnect.
    fn read_as_waiter(&self, listener: &Listener, left: Option<Duration>) {
        let fd = lock(&listener.conn).as_ref().filter(|c| !c.is_broken()).map(PgConn::socket_fd);
        let timeout = match fd {
            Some(_) => left.unwrap_or(Duration::from_secs(60)),
            None => left.map_or(BACKOFF_FIRST, |l| l.min(BACKOFF_FIRST)), // reconnecting
        };
        // Two descriptors, not three: the notifier cannot stop while a waiter borrows it.
        let mut fds = [
            libc::pollfd { fd: self.reader_wake.fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: fd.unwrap_or(-1), events: libc::POLLIN, revents: 0 },
        ];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: two valid pollfd entries (a negative fd is ignored by poll).
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) } <= 0 {
            return;
        }
        if fds[0].revents != 0 {
            self.reader_wake.take();
        }
        if fds[1].revents == 0 {
            return;
        }
        let mut conn = lock(&listener.conn);
        let Some(c) = conn.as_mut() else { return };
        let outcome = c.read_async_ready();
        let (items, lost) = c.take_notifications();
        // Queued before the connection is let go: the listener thread may read it next, and
        // what it reads must queue after this.
        self.deliver_from(items, lost, true);
        drop(conn);
        if outcome.is_err() {
            listener.nudge.add(1);
        }
    }

    /// Whether waiters have been reading the listener's socket themselves just now.
    fn reader_recent(&self) -> bool {
        let left = self.reader_left_ms.load(Ordering::Acquire);
        lock(&self.queue).reading || (self.created.elapsed().as_millis() as u64).saturating_sub(left) < READER_GRACE_MS
    }

    /// The descriptor, counting from now on (see `Queue::fd_on`).
    pub(crate) fn enable_fd(&self) -> RawFd {
        let mut q = lock(&self.queue);
        if !q.fd_on {
            q.fd_on = true;
            let queued = (q.items.len() + q.lost.len()) as u64;
            if queued > 0 {
                self.fd.add(queued);
            }
        }
        self.fd.fd()
    }

    /// Make every `next` waiting now return (`None` if nothing is queued).
    pub(crate) fn wake_waiters(&self) {
        let mut q = lock(&self.queue);
        q.wakes += 1;
        if q.reading {
            self.reader_wake.add(1);
        }
        let waiting = q.waiting > 0;
        drop(q);
        if waiting {
            self.ready.notify_all();
        }
    }

    /// In a forked child, for its parent's notifier: close this process's copy of the listener
    /// socket, without a word on it (the parent's listener goes on; its threads are not here).
    pub(crate) fn abandon(&self) {
        if let Ok(Some(listener)) = self.listener.try_lock().map(|l| l.clone()) {
            if let Ok(mut conn) = listener.conn.try_lock() {
                drop(conn.take()); // an inherited connection only closes its descriptor
            }
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.stopped.add(1);
    }
}

impl Queue {
    fn count(&self, fd: &EventFd) {
        if self.fd_on {
            fd.add(1);
        }
    }

    fn uncount(&self, fd: &EventFd) {
        if self.fd_on {
            fd.take();
        }
    }

    fn push(&mut self, n: Notification, fd: &EventFd) {
        while !self.items.is_empty()
            && (self.items.len() >= NOTIFICATIONS_KEPT || self.bytes + n.size() > NOTIFICATION_BYTES_KEPT)
        {
            let old = self.items.pop_front().expect("not empty");
            self.bytes -= old.size();
            self.uncount(fd);
            if !self.warned {
                self.warned = true;
                crate::log::warn(|| {
                    format!(
                        "notifications are not being taken fast enough: more than {NOTIFICATIONS_KEPT} (or \
                         {NOTIFICATION_BYTES_KEPT} bytes) queued; the oldest are dropped and a gap marker is delivered \
                         for each channel that lost some"
                    )
                });
            }
            self.mark_lost(old.channel, fd);
        }
        self.bytes += n.size();
        self.items.push_back(n);
        self.count(fd);
    }

    fn mark_lost(&mut self, channel: CString, fd: &EventFd) {
        if !self.lost.contains(&channel) {
            self.lost.push(channel);
            self.count(fd);
        }
    }

    fn pop(&mut self, fd: &EventFd) -> Option<Notification> {
        let n = if self.lost.is_empty() {
            let n = self.items.pop_front()?;
            self.bytes -= n.size();
            n
        } else {
            Notification::gap(self.lost.remove(0))
        };
        self.uncount(fd);
        if self.items.is_empty() && self.lost.is_empty() {
            self.warned = false;
        }
        Some(n)
    }
}

/// A session's listener connection (see the module comment).
struct Listener {
    /// `None` while the thread reconnects.
    conn: Mutex<Option<PgConn>>,
    /// The channels listened on, as given.
    channels: Mutex<BTreeSet<String>>,
    /// Tells the thread the connection was found lost (it reconnects at once).
    nudge: Arc<EventFd>,
    pool: Arc<Pool>,
}

/// `LISTEN "channel"` (the name quoted as an identifier), or UNLISTEN.
fn listen_sql(verb: &str, channel: &str) -> String {
    format!("{verb} \"{}\"", channel.replace('"', "\"\""))
}

impl Session {
    /// The session's notifier in this process, made on first use.
    pub(crate) fn notifier(&self) -> Result<Arc<Notifier>> {
        let here = self.here();
        if let Some(n) = here.notifier.get() {
            return Ok(n.clone());
        }
        let _guard = lock(&here.init);
        if let Some(n) = here.notifier.get() {
            return Ok(n.clone());
        }
        let n = Arc::new(Notifier::new()?);
        let _ = here.notifier.set(n.clone());
        Ok(n)
    }

    /// Listen on `channel` (taken literally, quoted as an identifier) through the session's
    /// listener connection, opened now if it is not open yet (a failure to connect is returned).
    /// While the listener reconnects the channel is recorded, and listened on once it is back.
    pub fn listen(&self, channel: &str) -> Result<()> {
        if channel.is_empty() {
            return Err(Error::interface("the channel name is empty"));
        }
        let notifier = self.notifier()?;
        let listener = self.listener(&notifier)?;
        // The channel set changes under the connection's lock (see `install`).
        let mut conn = lock(&listener.conn);
        if let Some(c) = conn.as_mut().filter(|c| !c.is_broken()) {
            let outcome = c.simple_query(&listen_sql("LISTEN", channel));
            let (items, lost) = c.take_notifications();
            notifier.deliver(items, lost);
            if let Err(e) = outcome {
                if !c.is_broken() {
                    return Err(e); // the server refused it: not recorded
                }
            }
        }
        lock(&listener.channels).insert(channel.to_owned());
        if !conn.as_ref().is_some_and(|c| !c.is_broken()) {
            listener.nudge.add(1); // lost: the thread reconnects and listens again
        }
        Ok(())
    }

    /// Stop listening on `channel` (no error if the session was not listening on it).
    pub fn unlisten(&self, channel: &str) -> Result<()> {
        let Some(listener) = self.here_if_made().and_then(|h| h.notifier.get()).and_then(|n| lock(&n.listener).clone())
        else {
            return Ok(());
        };
        let mut conn = lock(&listener.conn); // see `install`
        lock(&listener.channels).remove(channel);
        if let Some(c) = conn.as_mut().filter(|c| !c.is_broken()) {
            let outcome = c.simple_query(&listen_sql("UNLISTEN", channel));
            if let Err(e) = outcome {
                if !c.is_broken() {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The session's listener, opened (and its thread started) on first use.
    fn listener(&self, notifier: &Arc<Notifier>) -> Result<Arc<Listener>> {
        let mut slot = lock(&notifier.listener);
        if let Some(l) = slot.as_ref() {
            return Ok(l.clone());
        }
        let pool = self.pool().clone();
        let conn = pool.dial_unpooled()?;
        let listener = Arc::new(Listener {
            conn: Mutex::new(Some(conn)),
            channels: Mutex::new(BTreeSet::new()),
            nudge: EventFd::new(false)?,
            pool,
        });
        let (l, n, stopped, stop) =
            (listener.clone(), Arc::downgrade(notifier), notifier.stopped.clone(), notifier.stop.clone());
        std::thread::Builder::new()
            .name("pgsess-listen".into())
            .spawn(move || listen_loop(l, n, stopped, stop))
            .map_err(|e| Error::operational("58000", format!("could not start the listener thread: {e}")))?;
        *slot = Some(listener.clone());
        Ok(listener)
    }

    /// The next notification for this session, waiting up to `timeout` (`None`: for ever).
    pub fn next_notification(&self, timeout: Option<Duration>) -> Result<Option<Notification>> {
        let notifier = self.notifier()?;
        self.watch_pinned(&notifier)?;
        Ok(notifier.next(timeout))
    }

    /// Make every `next_notification` waiting on this session now return `None` at once (as on
    /// a timeout), for a binding's cancellation or close.
    pub fn wake_notification_waiters(&self) {
        if let Some(n) = self.here_if_made().and_then(|h| h.notifier.get()) {
            n.wake_waiters();
        }
    }

    /// A descriptor readable while a notification is ready (see the module comment).
    pub fn notification_fd(&self) -> Result<RawFd> {
        let notifier = self.notifier()?;
        self.watch_pinned(&notifier)?;
        Ok(notifier.enable_fd())
    }

    /// Move what the connection of a pinned or transaction's session received during a
    /// statement into the session's queue.
    pub(super) fn take_connection_notifications(&self, c: &mut PgConn) {
        let (items, lost) = c.take_notifications();
        if let Ok(n) = self.notifier() {
            n.deliver(items, lost);
        }
    }

    /// On a pinned (or transaction's) session, start the thread that reads what its connection
    /// receives while idle (once).
    fn watch_pinned(&self, notifier: &Arc<Notifier>) -> Result<()> {
        if !self.is_pinned() || notifier.watcher_started.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let pin = Arc::downgrade(&self.here().pin);
        let (n, stopped, stop) = (Arc::downgrade(notifier), notifier.stopped.clone(), notifier.stop.clone());
        std::thread::Builder::new()
            .name("pgsess-watch".into())
            .spawn(move || watch_loop(pin, n, stopped, stop))
            .map(drop)
            .map_err(|e| {
                notifier.watcher_started.store(false, Ordering::Release);
                Error::operational("58000", format!("could not start the notification thread: {e}"))
            })
    }
}

/// Wait until `fd` (when given) is readable, `stopped` or `nudge` is signalled, or `timeout`
/// passes; true when `fd` is readable (or hung up). A nudge is taken; `stopped` stays readable
/// (every thread of the notifier must see it).
fn wait_readable(fd: Option<RawFd>, stopped: &EventFd, nudge: Option<&EventFd>, timeout: Duration) -> bool {
    let mut fds = [
        libc::pollfd { fd: stopped.fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: nudge.map_or(-1, EventFd::fd), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: fd.unwrap_or(-1), events: libc::POLLIN, revents: 0 },
    ];
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: three valid pollfd entries (a negative fd is ignored by poll).
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, ms) };
    if n <= 0 {
        return false;
    }
    if let (Some(nudge), true) = (nudge, fds[1].revents != 0) {
        nudge.take();
    }
    fds[0].revents == 0 && fds[2].revents != 0
}

/// The listener thread: read notifications as they arrive; reconnect when the connection is lost.
fn listen_loop(listener: Arc<Listener>, notifier: Weak<Notifier>, stopped: Arc<EventFd>, stop: Arc<AtomicBool>) {
    let mut backoff = BACKOFF_FIRST;
    while !stop.load(Ordering::Acquire) {
        let fd = lock(&listener.conn).as_ref().filter(|c| !c.is_broken()).map(PgConn::socket_fd);
        let Some(fd) = fd else {
            // Lost: reconnect, listen again, and report the gap.
            lock(&listener.conn).take();
            match reconnect(&listener) {
                Ok((conn, channels)) => {
                    let Some(n) = notifier.upgrade() else { return };
                    install(&listener, conn, &channels, &n);
                    drop(n);
                    backoff = BACKOFF_FIRST;
                    crate::log::info(|| {
                        format!(
                            "pool {}: the listener reconnected; listening again on {} channels",
                            listener.pool.id,
                            channels.len()
                        )
                    });
                }
                Err(e) => {
                    crate::log::warn(|| {
                        format!(
                            "pool {}: the listener could not reconnect ({e}); trying again in {backoff:?}",
                            listener.pool.id
                        )
                    });
                    wait_readable(None, &stopped, Some(&listener.nudge), backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            continue;
        };
        if notifier.upgrade().is_some_and(|n| n.reader_recent()) {
            // Waiters read the socket themselves (`Notifier::next`): stay out of their way,
            // looking again shortly.
            wait_readable(None, &stopped, Some(&listener.nudge), Duration::from_millis(READER_GRACE_MS));
            continue;
        }
        if !wait_readable(Some(fd), &stopped, Some(&listener.nudge), Duration::from_secs(60)) {
            continue;
        }
        let mut conn = lock(&listener.conn);
        let Some(c) = conn.as_mut() else { continue };
        let outcome = c.read_async_ready();
        let (items, lost) = c.take_notifications();
        // Queued under the connection's lock, as every reader of it does (a waiter may read it
        // next): notifications queue in the order they were read.
        if let Some(n) = notifier.upgrade() {
            n.deliver(items, lost);
        }
        drop(conn);
        if let Err(e) = outcome {
            let expected = is_connection_loss(&e);
            let id = &listener.pool.id;
            let say = || format!("pool {id}: the listener connection was lost ({e}); reconnecting");
            if expected {
                crate::log::info(say);
            } else {
                crate::log::warn(say);
            }
        }
    }
}

/// A new listener connection, listening on every recorded channel; and those channels.
fn reconnect(listener: &Listener) -> Result<(PgConn, Vec<String>)> {
    let mut conn = listener.pool.dial_unpooled()?;
    let channels: Vec<String> = lock(&listener.channels).iter().cloned().collect();
    if !channels.is_empty() {
        let sql: Vec<String> = channels.iter().map(|c| listen_sql("LISTEN", c)).collect();
        conn.simple_query(&sql.join("; "))?;
    }
    Ok((conn, channels))
}

/// Put a reconnected listener connection in place. Under the connection's lock, which
/// `listen` and `unlisten` hold while they change the channel set: the channels added or removed
/// while it was reconnecting (after `reconnect` read the set) are listened or unlistened here.
///
/// The gap markers (one per channel listened on before) are queued here too, before the
/// connection is in place: nothing read from it can be queued ahead of them.
fn install(listener: &Listener, mut conn: PgConn, listened: &[String], notifier: &Notifier) {
    let mut slot = lock(&listener.conn);
    let gaps = listened.iter().map(|c| Notification::gap(CString::new(c.as_str()).unwrap_or_default()));
    notifier.deliver(gaps.collect(), Vec::new());
    let now = lock(&listener.channels).clone();
    let added = now.iter().filter(|c| !listened.contains(c)).map(|c| listen_sql("LISTEN", c));
    let removed = listened.iter().filter(|c| !now.contains(*c)).map(|c| listen_sql("UNLISTEN", c));
    let sql: Vec<String> = added.chain(removed).collect();
    if !sql.is_empty() {
        // A failure leaves it broken: the loop reconnects again.
        let _ = conn.simple_query(&sql.join("; "));
    }
    *slot = Some(conn);
}

/// The watcher of a pinned session's connection: read what arrives while it is idle.
fn watch_loop(pin: Weak<Mutex<Option<Pin>>>, notifier: Weak<Notifier>, stopped: Arc<EventFd>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        let Some(pin) = pin.upgrade() else { return };
        let lease: Option<Weak<Lease>> = lock(&pin).as_ref().map(|p| Arc::downgrade(&p.lease));
        drop(pin);
        let state = lease
            .as_ref()
            .and_then(Weak::upgrade)
            .and_then(|l| l.with_conn(|c| Ok((c.socket_fd(), c.in_copy() || c.is_broken() || c.inherited()))).ok());
        match state {
            Some((fd, false)) => {
                if !wait_readable(Some(fd), &stopped, None, Duration::from_secs(60)) {
                    continue;
                }
            }
            // No connection now, or one that cannot be read from here: look again shortly.
            _ => {
                wait_readable(None, &stopped, None, Duration::from_millis(50));
                continue;
            }
        }
        let Some(lease) = lease.as_ref().and_then(Weak::upgrade) else { continue };
        let _ = lease.with_conn(|c| {
            let outcome = c.read_async();
            let (items, lost) = c.take_notifications();
            if let Some(n) = notifier.upgrade() {
                n.deliver(items, lost);
            }
            if outcome.is_err() {
                // Broken: its session finds out at its next statement; until then, nothing to read.
                std::thread::sleep(Duration::from_millis(50));
            }
            outcome
        });
    }
}
