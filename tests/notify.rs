//! LISTEN/NOTIFY: the listener connection, its reconnects and gap markers, a pinned session's own
//! LISTEN, the queue's order and bound, and the descriptor for event loops.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgsess::conn::Notification;
use pgsess::{Session, SessionOptions};
use support::Cluster;

fn opts(uri: &str, app: &str, max: u32) -> SessionOptions {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let mut o = SessionOptions { db_url: Some(format!("{uri}{sep}application_name={app}")), ..Default::default() };
    o.set_pool_max_size(max).unwrap();
    o.set_checkout_timeout_ms(3000).unwrap();
    o
}

fn exec(s: &Session, sql: &str) {
    drop(s.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")));
}

fn scalar(s: &Session, sql: &str) -> String {
    let r = s.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8(r.set.value(0, 0).expect("a value").to_vec()).unwrap()
}

fn notify(s: &Session, channel: &str, payload: &str) {
    let r = s.query("SELECT pg_notify($1, $2)", &[Some(channel.as_bytes()), Some(payload.as_bytes())]).unwrap();
    drop(r);
}

fn next(s: &Session, ms: u64) -> Option<Notification> {
    s.next_notification(Some(Duration::from_millis(ms))).unwrap()
}

fn text(n: &Notification) -> (&str, &str) {
    (n.channel.to_str().unwrap(), n.payload.to_str().unwrap())
}

#[test]
fn a_notification_arrives_with_its_channel_payload_and_sender() {
    let c = support::shared();
    let s = Session::open("x", &opts(&c.uri(), "notify_basic", 2)).unwrap();
    let other = Session::open("x", &opts(&c.uri(), "notify_basic_sender", 1)).unwrap();
    s.listen("basic").unwrap();
    s.listen("Odd \"Name\"").unwrap();
    assert!(next(&s, 0).is_none(), "nothing yet: NULL at once");
    let sender_pid = scalar(&other, "SELECT pg_backend_pid()").parse::<i32>().unwrap();
    notify(&other, "basic", "hello");
    let n = next(&s, 5000).expect("delivered");
    assert_eq!((text(&n), n.pid, n.gap), (("basic", "hello"), sender_pid, false));
    notify(&other, "Odd \"Name\"", "");
    notify(&other, "odd \"name\"", "not ours");
    let n = next(&s, 5000).expect("delivered");
    assert_eq!(text(&n), ("Odd \"Name\"", ""), "the name is taken literally, case and quotes kept");
    assert!(next(&s, 200).is_none(), "another case is another channel");
    // A session's own statements can NOTIFY it too.
    notify(&s, "basic", "self");
    assert_eq!(text(&next(&s, 5000).unwrap()), ("basic", "self"));
    s.unlisten("basic").unwrap();
    s.unlisten("never listened").unwrap();
    notify(&other, "basic", "after unlisten");
    assert!(next(&s, 300).is_none(), "unlisten stops delivery");
    assert_eq!(s.pool_stats().in_use, 0, "the listener holds no pooled connection");
}

#[test]
fn the_listener_is_not_counted_against_the_pool() {
    let c = support::shared();
    let s = Session::open("x", &opts(&c.uri(), "notify_outside", 1)).unwrap();
    s.listen("outside").unwrap();
    let held = s.query("SELECT 1", &[]).unwrap(); // the pool's only connection
    let other = Session::open("x", &opts(&c.uri(), "notify_outside_sender", 1)).unwrap();
    notify(&other, "outside", "while the pool is full");
    assert_eq!(text(&next(&s, 5000).unwrap()), ("outside", "while the pool is full"));
    drop(held);
    let n: u32 = scalar(
        &other,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'notify_outside' AND query LIKE 'LISTEN%'",
    )
    .parse()
    .unwrap();
    assert_eq!(n, 1, "one listener connection");
}

#[test]
fn ten_thousand_from_four_threads_each_once_in_each_senders_order() {
    let c = support::shared();
    let s = Session::open("x", &opts(&c.uri(), "notify_many", 1)).unwrap();
    s.listen("many").unwrap();
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let uri = c.uri();
            std::thread::spawn(move || {
                let o = Session::open("x", &opts(&uri, &format!("notify_many_{t}"), 1)).unwrap();
                for i in 0..2500 {
                    notify(&o, "many", &format!("{t}:{i}"));
                }
            })
        })
        .collect();
    let mut last = [-1i64; 4];
    for _ in 0..10_000 {
        let n = next(&s, 20_000).expect("every notification arrives");
        assert!(!n.gap);
        let (t, i) = n.payload.to_str().unwrap().split_once(':').unwrap();
        let (t, i): (usize, i64) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, last[t] + 1, "sender {t}'s in order, none lost or repeated");
        last[t] = i;
    }
    for h in senders {
        h.join().unwrap();
    }
    assert_eq!(last, [2499; 4]);
    assert!(next(&s, 100).is_none(), "no duplicates");
}

#[test]
fn a_full_queue_drops_the_oldest_behind_a_gap_marker() {
    let c = support::shared();
    let s = Session::open("x", &opts(&c.uri(), "notify_full", 1)).unwrap();
    s.listen("full").unwrap();
    let total = pgsess::session::NOTIFICATIONS_KEPT + 1000;
    exec(&s, &format!("SELECT pg_notify('full', g::text) FROM generate_series(1, {total}) g"));
    // All of them arrive together at commit; wait until the queue has taken them in.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    std::thread::sleep(Duration::from_millis(1500));
    while let Some(n) = next(&s, 500) {
        got.push(n);
        assert!(Instant::now() < deadline);
    }
    assert!(got[0].gap, "the first delivered says some were dropped");
    assert_eq!(got[0].channel.to_str().unwrap(), "full");
    let payloads: Vec<u64> = got[1..].iter().map(|n| n.payload.to_str().unwrap().parse().unwrap()).collect();
    assert_eq!(payloads.len(), pgsess::session::NOTIFICATIONS_KEPT, "the bound holds");
    assert_eq!(*payloads.last().unwrap(), total as u64, "the newest are kept");
    assert!(payloads.windows(2).all(|w| w[1] == w[0] + 1), "in order");
}

#[test]
fn the_listener_survives_a_terminated_backend_and_a_restart() {
    let c = Cluster::start();
    let s = Session::open("x", &opts(&c.uri(), "notify_survive", 1)).unwrap();
    s.listen("a").unwrap();
    s.listen("b").unwrap();
    c.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'");
    let mut gaps = Vec::new();
    while gaps.len() < 2 {
        let n = next(&s, 15_000).expect("gap markers after reconnecting");
        assert!(n.gap && n.pid == 0 && n.payload.is_empty(), "{n:?}");
        gaps.push(n.channel.to_str().unwrap().to_owned());
    }
    gaps.sort();
    assert_eq!(gaps, ["a", "b"], "one per channel");
    c.psql("NOTIFY a, 'after the reconnect'");
    assert_eq!(text(&next(&s, 5000).unwrap()), ("a", "after the reconnect"));

    c.restart("fast");
    let mut gaps = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while gaps < 2 {
        assert!(Instant::now() < deadline, "gap markers after the restart");
        if let Some(n) = next(&s, 1000) {
            assert!(n.gap, "{n:?}");
            gaps += 1;
        }
    }
    c.psql("NOTIFY b, 'after the restart'");
    assert_eq!(text(&next(&s, 5000).unwrap()), ("b", "after the restart"));

    // Channels given and taken back while the server is down take effect once it is back.
    c.stop();
    s.listen("late").expect("recorded while the listener reconnects");
    s.unlisten("b").unwrap();
    c.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the listener comes back");
        c.psql("NOTIFY late, 'probe'; NOTIFY b, 'unlistened'");
        match next(&s, 500) {
            Some(n) if !n.gap => {
                assert_eq!(text(&n), ("late", "probe"));
                break;
            }
            _ => {}
        }
    }
    while let Some(n) = next(&s, 300) {
        assert!(n.gap || text(&n) == ("late", "probe"), "nothing on the channel taken back: {n:?}");
    }
}

#[test]
fn a_pinned_sessions_plain_listen_delivers_during_statements_and_while_idle() {
    let c = support::shared();
    let s = Session::open("x", &opts(&c.uri(), "notify_pinned", 2)).unwrap();
    let p = s.pin().unwrap();
    let other = Session::open("x", &opts(&c.uri(), "notify_pinned_sender", 1)).unwrap();
    exec(&p, "LISTEN pinned_chan");
    // Arriving while a statement runs.
    let sender = {
        let uri = c.uri();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let o = Session::open("x", &opts(&uri, "notify_pinned_sender", 1)).unwrap();
            notify(&o, "pinned_chan", "during");
        })
    };
    exec(&p, "SELECT pg_sleep(0.8)");
    sender.join().unwrap();
    assert_eq!(text(&next(&p, 0).expect("moved into the queue with the statement")), ("pinned_chan", "during"));
    // Arriving while idle.
    notify(&other, "pinned_chan", "idle");
    assert_eq!(text(&next(&p, 5000).expect("read by the watcher")), ("pinned_chan", "idle"));
    exec(&p, "UNLISTEN pinned_chan");
    notify(&other, "pinned_chan", "gone");
    assert!(next(&p, 300).is_none());
    // Statements on the pinned session still work with the watcher reading its connection.
    for i in 0..200 {
        assert_eq!(scalar(&p, &format!("SELECT {i}")), i.to_string());
    }
    drop(p);
    assert_eq!(s.pinned_sessions(), 0);
}

#[test]
fn the_descriptor_is_readable_exactly_while_a_notification_waits() {
    let c = support::shared();
    let s = Arc::new(Session::open("x", &opts(&c.uri(), "notify_fd", 1)).unwrap());
    let fd = s.notification_fd().unwrap();
    s.listen("fdchan").unwrap();
    let readable = |ms: i32| {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    };
    assert!(!readable(0));
    // SAFETY: epoll on a descriptor we only watch.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 7 };
    assert_eq!(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }, 0);
    let other = Session::open("x", &opts(&c.uri(), "notify_fd_sender", 1)).unwrap();
    notify(&other, "fdchan", "one");
    notify(&other, "fdchan", "two");
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
    let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 4, 5000) };
    assert_eq!((n, { events[0].u64 }), (1, 7), "the loop wakes");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(text(&next(&s, 0).unwrap()), ("fdchan", "one"));
    assert!(readable(0), "still readable: one more waits");
    assert_eq!(text(&next(&s, 0).unwrap()), ("fdchan", "two"));
    assert!(!readable(0), "not readable once all are taken");
    unsafe { libc::close(ep) };
}

#[test]
fn a_waiter_is_woken_without_a_notification() {
    let c = support::shared();
    let s = Arc::new(Session::open("x", &opts(&c.uri(), "notify_wake", 1)).unwrap());
    s.listen("wake").unwrap();
    let waiter = {
        let s = s.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let n = s.next_notification(None).unwrap();
            (n, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    s.wake_notification_waiters();
    let (n, waited) = waiter.join().unwrap();
    assert!(n.is_none(), "woken, not notified");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    notify(&s, "wake", "still works");
    assert_eq!(text(&next(&s, 5000).unwrap()), ("wake", "still works"));
}
