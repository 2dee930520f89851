//! fork(): a child's first call notices the new process, forgets every inherited connection
//! without sending anything on it, and opens its own; the parent's sessions keep working.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgsess::{Session, SessionOptions};

/// Run `child` in a forked process; its return value becomes the exit status (0 = success).
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `child` and then _exit()s, never returning into the test
    // harness; glibc resets its own allocator locks in the child.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        unsafe { libc::_exit(code) };
    }
    let started = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 };
        }
        if started.elapsed() > Duration::from_secs(20) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the child hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Known bug (issue 4, open): a child sometimes hangs (about 1 run in 4 here) because a parent
// thread held parking_lot_core's global hashtable lock at fork() time; r2d2 and the pool gate
// use parking_lot, and the child's new threads wait on that lock forever (gdb: grow_hashtable ->
// WordLock::lock). Run it with `cargo test --test fork -- --ignored` while fixing it.
#[test]
#[ignore = "known bug: parking_lot_core's global lock can be inherited locked across fork (issue 4)"]
fn a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone() {
    let c = support::shared();
    let mut o =
        SessionOptions { db_url: Some(format!("{}?application_name=fork_test", c.uri())), ..Default::default() };
    o.set_pool_max_size(2).unwrap();
    let s = Session::open("x", &o).unwrap();
    // Results checked out by the parent, holding one connection: each child drops its copy.
    let first = s.query("SELECT 'held across fork'", &[]).unwrap();
    let second = s.query("SELECT 2", &[]).unwrap();
    let parent_pids = [first.set.backend_pid, second.set.backend_pid];
    drop(second);
    let held = std::cell::RefCell::new(Some(first));

    // The parent keeps querying from another thread the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (s, stop, done) = (s.clone(), stop.clone(), done.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = s.query("SELECT $1::int + 1", &[Some(b"41")]).expect("the parent's statements keep working");
                assert_eq!(r.set.value(0, 0), Some(&b"42"[..]));
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(100));

    for round in 0..3 {
        let status = in_child(|| {
            // The inherited session works in the child, on connections of the child's own.
            let r = s.query("SELECT pg_backend_pid(), $1::text", &[Some(b"child")]).unwrap();
            let pid: i32 = std::str::from_utf8(r.set.value(0, 0).unwrap()).unwrap().parse().unwrap();
            if parent_pids.contains(&pid) || r.set.value(0, 1) != Some(&b"child"[..]) {
                return 2;
            }
            drop(r);
            // The parent's results handle can be dropped here without touching the parent's pool.
            drop(held.borrow_mut().take());
            let tx = s.begin().unwrap();
            tx.query("SELECT 1", &[]).unwrap();
            tx.commit().unwrap();
            0
        });
        assert_eq!(status, 0, "child {round} failed");
    }

    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert!(done.load(Ordering::Relaxed) > 10);
    // The parent's connections survived: the children sent nothing on them, not even when
    // dropping the parent's results.
    assert_eq!(s.pool_stats().discarded_dead, 0);
    drop(held);
    let again = [s.query("SELECT 1", &[]).unwrap(), s.query("SELECT 2", &[]).unwrap()];
    let mut now: Vec<i32> = again.iter().map(|r| r.set.backend_pid).collect();
    now.sort();
    let mut before = parent_pids.to_vec();
    before.sort();
    assert_eq!(now, before, "the parent still uses its own two connections");
    let alive = c.psql(&format!("SELECT count(*) FROM pg_stat_activity WHERE pid IN ({}, {})", before[0], before[1]));
    assert_eq!(alive, "2");
    assert_eq!(running_statements(&s), 0);
}

/// Statements left running for this session (none once the children are gone).
fn running_statements(s: &Session) -> usize {
    s.cancel().1
}
