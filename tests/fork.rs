//! fork(): a child's first call notices the new process, forgets every inherited connection
//! without sending anything on it, and opens its own; the parent's sessions keep working.
//!
//! The parent keeps querying from another thread throughout, so fork() often happens while a
//! parent thread is inside the pool (our gate and locks, a connection being opened); a child
//! that inherited one of their locks held would hang, which `in_child` reports as a failure.
//! The tests in this file run at the same time in one process and fork concurrently too.

mod support;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pgsess::{Code, Session, SessionOptions};

/// Print from a child: its stderr through the test harness's capture would be lost.
fn child_say(text: &str) {
    let line = format!("[child {}] {text}\n", std::process::id());
    // SAFETY: writes a live buffer to stderr.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// Run `child` in a forked process and return its exit status (0 = success; 101 = it panicked,
/// and the panic message was printed). A child still running after `limit` is killed and the
/// call panics: it hung.
fn in_child(limit: Duration, child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `child` and then _exit()s, never returning into the test
    // harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            child_say(&format!("panicked: {msg}"));
            101
        });
        // SAFETY: ends the child without running the harness's exit code.
        unsafe { libc::_exit(code) };
    }
    let started = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
        }
        if started.elapsed() > limit {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::waitpid(pid, &mut status, 0) };
            panic!("child {pid} hung (killed after {limit:?})");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn options(app: &str, max: u32) -> SessionOptions {
    let uri = format!("{}?application_name={app}", support::shared().uri());
    let mut o = SessionOptions { db_url: Some(uri), ..Default::default() };
    o.set_pool_max_size(max).unwrap();
    o.set_checkout_timeout_ms(10_000).unwrap();
    o
}

fn backend_pid(s: &Session) -> i32 {
    let r = s.query("SELECT pg_backend_pid()", &[]).unwrap();
    let pid: i32 = std::str::from_utf8(r.set.value(0, 0).unwrap()).unwrap().parse().unwrap();
    assert_eq!(pid, r.set.backend_pid);
    pid
}

/// Threads querying `s` until `stop`, each statement's answer checked; `done` counts them.
struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(s: &Session, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let threads = (0..threads)
            .map(|t| {
                let (s, stop, done) = (s.clone(), stop.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let v = (t as u64 * 1_000_000 + i).to_string();
                        let r =
                            s.query("SELECT $1::bigint + 1", &[Some(v.as_bytes())]).expect("statements go on working");
                        assert_eq!(r.set.value(0, 0), Some((t as u64 * 1_000_000 + i + 1).to_string().as_bytes()));
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        Load { stop, done, threads }
    }

    /// Wait until at least `n` more statements have run.
    fn progress(&self, n: usize) {
        let target = self.done.load(Ordering::Relaxed) + n;
        let started = Instant::now();
        while self.done.load(Ordering::Relaxed) < target {
            assert!(started.elapsed() < Duration::from_secs(20), "the load stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stop and join; panics if a thread failed. Returns the statements run.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("a load thread failed");
        }
        self.done.load(Ordering::Relaxed)
    }
}

#[test]
fn the_fork_handlers_are_registered_when_the_library_loads() {
    assert!(pgsess::fork_handlers_registered_at_load());
}

#[test]
fn a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone() {
    let c = support::shared();
    let s = Session::open("x", &options("fork_test", 2)).unwrap();
    assert!(!s.uses_local_pool(), "the original process shares its pools between sessions");
    // Results checked out by the parent, holding one connection: each child drops its copy.
    let first = s.query("SELECT 'held across fork'", &[]).unwrap();
    let second = s.query("SELECT 2", &[]).unwrap();
    let parent_pids = [first.set.backend_pid, second.set.backend_pid];
    drop(second);
    let held = RefCell::new(Some(first));

    // The parent keeps querying from another thread the whole time.
    let load = Load::start(&s, 1);
    load.progress(20);

    for round in 0..5 {
        let status = in_child(Duration::from_secs(60), || {
            assert!(pgsess::fork_handlers_registered_at_load());
            // The inherited session works in the child, on connections of the child's own.
            let r = s.query("SELECT pg_backend_pid(), $1::text", &[Some(b"child")]).unwrap();
            let pid: i32 = std::str::from_utf8(r.set.value(0, 0).unwrap()).unwrap().parse().unwrap();
            assert!(!parent_pids.contains(&pid), "the child used a parent's connection");
            assert_eq!(r.set.value(0, 1), Some(&b"child"[..]));
            assert!(s.uses_local_pool(), "a forked child makes pools of its own");
            drop(r);
            // The parent's results handle is still readable here, and dropping it touches
            // neither the parent's pool nor its connection.
            assert_eq!(held.borrow().as_ref().unwrap().set.value(0, 0), Some(&b"held across fork"[..]));
            drop(held.borrow_mut().take());
            // Transactions, and the asynchronous engine (a new one: the parent's workers are
            // not in this process).
            let tx = s.begin().unwrap();
            assert!(!parent_pids.contains(&backend_pid_in(&tx)));
            tx.commit().unwrap();
            let (sent, answer) = mpsc::channel();
            let callback = Box::new(move |outcome: pgsess::Result<Box<pgsess::Results>>| {
                let _ = sent.send(outcome.map(|r| r.set.backend_pid).map_err(|e| e.to_string()));
            });
            let pending = s.query_async("SELECT pg_backend_pid()".into(), vec![], callback).unwrap();
            assert!(pending.wait(Some(Duration::from_secs(10))), "the child's request ran");
            let pid = answer.recv().unwrap().unwrap();
            assert!(!parent_pids.contains(&pid));
            s.close_requests();
            let stats = s.pool_stats();
            assert_eq!((stats.in_use, stats.results_outstanding, stats.discarded_dead), (0, 0, 0), "{stats:?}");
            assert!(stats.open >= 1 && stats.open <= 2, "{stats:?}");
            0
        });
        assert_eq!(status, 0, "child {round} failed");
        load.progress(5);
    }

    let done = load.finish();
    assert!(done > 30, "{done}");
    // The parent's connections survived: the children sent nothing on them, not even when
    // dropping the parent's results.
    let held = held.into_inner().expect("the parent's results are the parent's");
    assert_eq!(held.set.value(0, 0), Some(&b"held across fork"[..]));
    drop(held);
    let stats = s.pool_stats();
    assert_eq!((stats.discarded_dead, stats.in_use, stats.results_outstanding), (0, 0, 0), "{stats:?}");
    let again = [s.query("SELECT 1", &[]).unwrap(), s.query("SELECT 2", &[]).unwrap()];
    let mut now: Vec<i32> = again.iter().map(|r| r.set.backend_pid).collect();
    now.sort();
    let mut before = parent_pids.to_vec();
    before.sort();
    assert_eq!(now, before, "the parent still uses its own two connections");
    let alive = c.psql(&format!("SELECT count(*) FROM pg_stat_activity WHERE pid IN ({}, {})", before[0], before[1]));
    assert_eq!(alive, "2");
    assert_eq!(s.cancel().1, 0, "no statement left running");
}

fn backend_pid_in(tx: &pgsess::Transaction) -> i32 {
    let r = tx.query("SELECT pg_backend_pid()", &[]).unwrap();
    std::str::from_utf8(r.set.value(0, 0).unwrap()).unwrap().parse().unwrap()
}

#[test]
fn children_of_children_and_forks_while_the_childs_own_threads_query() {
    let s = Session::open("x", &options("fork_generations", 3)).unwrap();
    let load = Load::start(&s, 2);
    load.progress(20);
    let parent_pid = backend_pid(&s);
    for round in 0..3 {
        let status = in_child(Duration::from_secs(90), || {
            // The child's first calls come from several threads at once.
            let load = Load::start(&s, 3);
            load.progress(30);
            let child_pid = backend_pid(&s);
            assert_ne!(child_pid, parent_pid);
            assert!(s.uses_local_pool());
            for _ in 0..3 {
                // Fork while this child's threads are inside its (local) pool.
                let status = in_child(Duration::from_secs(30), || {
                    let mine = backend_pid(&s);
                    assert!(mine != child_pid && mine != parent_pid, "the grandchild used an inherited connection");
                    // And a generation further, while this one's threads query.
                    let load = Load::start(&s, 2);
                    load.progress(10);
                    let status = in_child(Duration::from_secs(20), || {
                        let deeper = backend_pid(&s);
                        assert!(deeper != mine && deeper != child_pid && deeper != parent_pid);
                        Load::start(&s, 2).progress(10);
                        0
                    });
                    assert_eq!(status, 0, "a great-grandchild failed");
                    load.progress(5);
                    load.finish();
                    0
                });
                if status != 0 {
                    child_say(&format!("a grandchild failed with status {status}"));
                    return 3;
                }
                load.progress(10);
            }
            let done = load.finish();
            assert!(done >= 60, "{done}");
            let stats = s.pool_stats();
            assert!(stats.open <= 3 && stats.in_use == 0 && stats.discarded_dead == 0, "{stats:?}");
            0
        });
        assert_eq!(status, 0, "child {round} failed");
        load.progress(5);
    }
    load.finish();
    let stats = s.pool_stats();
    assert_eq!((stats.discarded_dead, stats.in_use), (0, 0), "{stats:?}");
    assert!(stats.open <= 3, "{stats:?}");
}

#[test]
fn the_parents_transactions_streams_and_requests_in_a_child() {
    let c = support::shared();
    let s = Session::open("x", &options("fork_handles", 4)).unwrap();
    let table = format!("fork_handles_{}", std::process::id());
    s.query(&format!("CREATE TABLE {table} (x int)"), &[]).unwrap();
    // Open across fork(): a transaction with a row in it, a stream half read, a running request.
    let tx = s.begin().unwrap();
    drop(tx.query(&format!("INSERT INTO {table} VALUES (1)"), &[]).unwrap());
    let mut stream = s.query_stream("SELECT generate_series(1, 10)", &[], 3).unwrap();
    assert_eq!(stream.next_chunk().unwrap().unwrap().set.nrows(), 3);
    let (sent, answer) = mpsc::channel();
    let callback = Box::new(move |outcome: pgsess::Result<Box<pgsess::Results>>| {
        let _ = sent.send(outcome.map(|r| r.set.value(0, 1).map(<[u8]>::to_vec)).map_err(|e| e.to_string()));
    });
    let pgsess::requests::Pending { engine, request } =
        s.query_async("SELECT pg_sleep(0.5), 'from the parent'".into(), vec![], callback).unwrap();
    let tx = RefCell::new(Some(tx));
    let stream = RefCell::new(Some(stream));

    let status = in_child(Duration::from_secs(60), || {
        // The parent's transaction is the parent's: using it fails at once, sending nothing,
        // and dropping it sends no ROLLBACK.
        let tx = tx.borrow_mut().take().unwrap();
        let e = tx.query("SELECT 1", &[]).expect_err("the parent's connection");
        assert_eq!(e.code, Code::PGSESS_INTERFACE_ERROR, "{e}");
        assert!(e.message.contains("fork"), "{e}");
        drop(tx);
        // The stream likewise.
        let mut stream = stream.borrow_mut().take().unwrap();
        assert_eq!(stream.next_chunk().expect_err("the parent's stream").code, Code::PGSESS_INTERFACE_ERROR);
        drop(stream);
        // The parent's request: cancel does nothing, waiting returns at once.
        engine.cancel(&request);
        let t = Instant::now();
        assert!(!engine.wait(&request, None), "the parent's request never completes here");
        assert!(t.elapsed() < Duration::from_secs(1));
        // The session's own engine in this process is a new one.
        let mine = s.requests().unwrap();
        assert!(!Arc::ptr_eq(&mine, &engine));
        assert_ne!(mine.fd(), -1);
        assert_eq!(mine.dispatch(), 0);
        // Nothing of the parent's is visible or changed.
        let r = s.query(&format!("SELECT count(*) FROM {table}"), &[]).unwrap();
        assert_eq!(r.set.value(0, 0), Some(&b"0"[..]), "the parent's transaction is not committed");
        s.close_requests();
        0
    });
    assert_eq!(status, 0, "the child failed");

    // Everything the child left alone goes on in the parent.
    let mut stream = stream.into_inner().unwrap();
    let mut rows = 3;
    while let Some(chunk) = stream.next_chunk().unwrap() {
        rows += chunk.set.nrows();
    }
    assert_eq!(rows, 10);
    drop(stream);
    let tx = tx.into_inner().unwrap();
    drop(tx.query(&format!("INSERT INTO {table} VALUES (2)"), &[]).unwrap());
    tx.commit().unwrap();
    assert!(engine.wait(&request, Some(Duration::from_secs(10))));
    assert_eq!(answer.recv().unwrap().unwrap().as_deref(), Some(&b"from the parent"[..]));
    let r = s.query(&format!("SELECT count(*) FROM {table}"), &[]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"2"[..]));
    drop(r);
    s.close_requests();
    let stats = s.pool_stats();
    assert_eq!((stats.discarded_dead, stats.in_use, stats.transactions_open), (0, 0, 0), "{stats:?}");
    c.psql(&format!("DROP TABLE {table}"));
}

/// A COPY and a listener of the parent, across fork(): the child freeing the parent's COPY
/// handle sends nothing on the parent's connection, a COPY the child starts and abandons by
/// dying keeps nothing, and each process's listener hears its own channels.
#[test]
fn copies_and_listeners_across_fork() {
    let s = Session::open("x", &options("fork_copy", 2)).unwrap();
    drop(s.query("DROP TABLE IF EXISTS fork_copy; CREATE TABLE fork_copy (who text, n int)", &[]).unwrap());
    s.listen("fork_parent").unwrap();
    let mut copy = s.copy_in("COPY fork_copy FROM STDIN").unwrap();
    for i in 0..1000 {
        copy.write(format!("parent\t{i}\n").as_bytes()).unwrap();
    }
    let inherited: *mut pgsess::session::Copy = &mut copy;
    let code = in_child(Duration::from_secs(60), || {
        // SAFETY: the child's copy of the parent's handle, dropped once, in the child only.
        unsafe { std::ptr::drop_in_place(inherited) };
        s.listen("fork_child").unwrap();
        drop(s.query("NOTIFY fork_child, 'to the child'", &[]).unwrap());
        let n = s.next_notification(Some(Duration::from_secs(10))).unwrap().expect("the child's own listener");
        assert_eq!(n.payload.to_str().unwrap(), "to the child");
        let mut mine = s.copy_in("COPY fork_copy FROM STDIN").unwrap();
        for i in 0..100_000 {
            mine.write(format!("child\t{i}\n").as_bytes()).unwrap();
        }
        // SAFETY: ends the child mid-COPY, as a crash would.
        unsafe { libc::_exit(0) }
    });
    assert_eq!(code, 0);
    for i in 1000..2000 {
        copy.write(format!("parent\t{i}\n").as_bytes()).unwrap();
    }
    assert_eq!(copy.finish().unwrap(), 2000, "the parent's COPY went on undisturbed");
    drop(copy);
    let r = s.query("SELECT count(*), count(*) FILTER (WHERE who = 'child') FROM fork_copy", &[]).unwrap();
    assert_eq!((r.set.value(0, 0), r.set.value(0, 1)), (Some(&b"2000"[..]), Some(&b"0"[..])));
    drop(r);
    drop(s.query("NOTIFY fork_parent, 'to the parent'; NOTIFY fork_child, 'not ours'", &[]).unwrap());
    let n = s.next_notification(Some(Duration::from_secs(10))).unwrap().expect("the parent's listener");
    assert_eq!(n.payload.to_str().unwrap(), "to the parent");
    assert!(s.next_notification(Some(Duration::from_millis(300))).unwrap().is_none());
    drop(s.query("DROP TABLE fork_copy", &[]).unwrap());
}
