//! Transactions as users write them, against a real server: the options `begin_with` sends with
//! BEGIN (in effect, in one statement), which errors are retryable (40001, 40P01, a statement that
//! never reached the server), the commit that reports a serialization failure's own SQLSTATE,
//! the retry runner (8 threads incrementing one counter under SERIALIZABLE end with the exact
//! count), and savepoints with quoted names.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pgsess::{Code, Error, Isolation, Session, SessionOptions, Transaction, TxOptions};
use support::Cluster;

fn opts(uri: &str, max: u32) -> SessionOptions {
    let mut o = SessionOptions { db_url: Some(uri.to_string()), ..SessionOptions::default() };
    o.set_pool_max_size(max).unwrap();
    o.set_checkout_timeout_ms(10_000).unwrap();
    o
}

fn open(uri: &str, max: u32) -> Session {
    Session::open("tx_options", &opts(uri, max)).unwrap()
}

fn exec(s: &Session, sql: &str) {
    s.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn scalar(s: &Session, sql: &str) -> String {
    let r = s.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8(r.set.value(0, 0).expect("a value").to_vec()).unwrap()
}

fn tx_scalar(tx: &Transaction, sql: &str) -> String {
    scalar(tx.session(), sql)
}

fn options(isolation: Isolation, read_only: bool, deferrable: bool) -> TxOptions {
    TxOptions { isolation, read_only, deferrable }
}

/// A table of its own for each test (they run at once on one server).
fn table(s: &Session, name: &str, columns: &str) -> String {
    exec(s, &format!("DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({columns})"));
    name.to_owned()
}

/// An error the server would send with `sqlstate`, as the runner's function passes it on.
fn server_like(sqlstate: &'static str) -> Error {
    Error { client_sqlstate: Some(sqlstate), ..Error::new(Code::from_sqlstate(sqlstate), "as the server says") }
}

#[test]
fn begin_with_puts_the_options_in_effect() {
    let s = open(&support::shared().uri(), 2);
    let cases = [
        (options(Isolation::Default, false, false), "read committed", "off", "off"),
        (options(Isolation::ReadCommitted, false, false), "read committed", "off", "off"),
        (options(Isolation::RepeatableRead, false, false), "repeatable read", "off", "off"),
        (options(Isolation::Serializable, false, false), "serializable", "off", "off"),
        (options(Isolation::RepeatableRead, true, false), "repeatable read", "on", "off"),
        (options(Isolation::Serializable, true, true), "serializable", "on", "on"),
        // Passed through as asked: the server accepts DEFERRABLE with any level (it only acts
        // on SERIALIZABLE READ ONLY).
        (options(Isolation::ReadCommitted, false, true), "read committed", "off", "on"),
    ];
    for (o, isolation, read_only, deferrable) in cases {
        let tx = s.begin_with(o).unwrap_or_else(|e| panic!("{o:?}: {e}"));
        assert_eq!(tx_scalar(&tx, "SHOW transaction_isolation"), isolation, "{o:?}");
        assert_eq!(tx_scalar(&tx, "SHOW transaction_read_only"), read_only, "{o:?}");
        assert_eq!(tx_scalar(&tx, "SHOW transaction_deferrable"), deferrable, "{o:?}");
        tx.commit().unwrap();
    }
    // READ ONLY is enforced.
    let tx = s.begin_with(options(Isolation::Default, true, false)).unwrap();
    let e = tx.query("CREATE TEMP TABLE never (x int)", &[]).err().unwrap();
    assert_eq!(e.sqlstate(), Some("25006"), "{e}");
    tx.rollback();
    // A plain begin is a plain BEGIN, and the server's defaults apply to it.
    let pinned = s.pin().unwrap();
    exec(&pinned, "SET default_transaction_isolation = 'repeatable read'");
    let tx = pinned.begin().unwrap();
    assert_eq!(tx_scalar(&tx, "SHOW transaction_isolation"), "repeatable read");
    tx.commit().unwrap();
    let tx = pinned.begin_with(options(Isolation::Default, false, false)).unwrap();
    assert_eq!(tx_scalar(&tx, "SHOW transaction_isolation"), "repeatable read");
    tx.rollback();
}

/// A cluster that logs every statement, to see what the server received.
fn logging_cluster() -> Cluster {
    Cluster::start_with(&["log_statement=all"])
}

#[test]
fn begin_with_is_one_statement() {
    let c = support::shared_with(logging_cluster);
    let s = open(&c.uri(), 1);
    let tx = s.begin_with(options(Isolation::Serializable, true, true)).unwrap();
    let pid = s.backend_pid(); // the BEGIN's
    assert_eq!(tx_scalar(&tx, "SELECT 'marker_after_begin'"), "marker_after_begin");
    tx.commit().unwrap();
    let log = c.server_log();
    let ours: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("[{pid}]")) && l.contains("statement: "))
        .map(|l| l.split("statement: ").nth(1).unwrap())
        .collect();
    let begin = ours.iter().position(|l| l.starts_with("BEGIN")).unwrap_or_else(|| panic!("no BEGIN in {ours:?}"));
    assert_eq!(
        &ours[begin..begin + 3],
        ["BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", "SELECT 'marker_after_begin'", "COMMIT"],
        "one statement begins the transaction, with its options"
    );
}

#[test]
fn which_errors_are_retryable() {
    assert!(server_like("40001").is_retryable());
    assert!(server_like("40P01").is_retryable());
    for state in ["40000", "40002", "40003", "23505", "22012", "57014", "08006", "25P02"] {
        assert!(!server_like(state).is_retryable(), "{state}");
    }
    assert!(Error::operational("08006", "lost while sending").mark_unsent().is_retryable());
    assert!(!Error::interface("misuse").is_retryable());

    let s = open(&support::shared().uri(), 2);
    let e = s.query("SELECT 1/0", &[]).err().unwrap();
    assert!(!e.is_retryable(), "{e}");
    let e =
        s.query("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'serialization_failure'; END $$", &[]).err().unwrap();
    assert!(e.is_retryable() && e.sqlstate() == Some("40001"), "{e}");
    let e = s.query("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'deadlock_detected'; END $$", &[]).err().unwrap();
    assert!(e.is_retryable() && e.sqlstate() == Some("40P01"), "{e}");
}

#[test]
fn commit_after_a_serialization_failure_carries_40001() {
    let s = open(&support::shared().uri(), 3);
    let t = table(&s, "tx_after_40001", "id int PRIMARY KEY, n int");
    exec(&s, &format!("INSERT INTO {t} VALUES (1, 0)"));
    // REPEATABLE READ: the row changed (and committed) after this transaction's snapshot, so
    // updating it fails with 40001.
    let tx = s.begin_with(options(Isolation::RepeatableRead, false, false)).unwrap();
    assert_eq!(tx_scalar(&tx, &format!("SELECT n FROM {t}")), "0");
    exec(&s, &format!("UPDATE {t} SET n = 10"));
    let e = tx.query(&format!("UPDATE {t} SET n = n + 1"), &[]).err().unwrap();
    assert_eq!(e.sqlstate(), Some("40001"), "{e}");
    assert!(e.is_retryable());
    // The transaction is failed now: further statements get 25P02, and commit reports 40001.
    let e = tx.query("SELECT 1", &[]).err().unwrap();
    assert_eq!(e.sqlstate(), Some("25P02"), "{e}");
    let e = tx.commit().unwrap_err();
    assert_eq!((e.code, e.sqlstate()), (Code::PGSESS_TRANSACTION_ROLLBACK, Some("40001")), "{e}");
    assert!(e.is_retryable(), "{e}");
    assert!(e.message.contains("serialization failure") && e.message.contains("could not serialize"), "{e}");
    assert_eq!(scalar(&s, &format!("SELECT n FROM {t}")), "10");

    // A deadlock's SQLSTATE carries over the same way.
    let tx = s.begin().unwrap();
    let e = tx
        .query("DO $$ BEGIN RAISE EXCEPTION 'deadlock here' USING ERRCODE = 'deadlock_detected'; END $$", &[])
        .err()
        .unwrap();
    assert_eq!(e.sqlstate(), Some("40P01"));
    let e = tx.commit().unwrap_err();
    assert_eq!(e.sqlstate(), Some("40P01"), "{e}");
    assert!(e.is_retryable() && e.message.contains("deadlock"), "{e}");

    // Any other failure is 40000, not retryable, and says what failed.
    let tx = s.begin().unwrap();
    assert!(tx.query("SELECT 1/0", &[]).is_err());
    let e = tx.commit().unwrap_err();
    assert_eq!((e.code, e.sqlstate()), (Code::PGSESS_TRANSACTION_ROLLBACK, Some("40000")), "{e}");
    assert!(!e.is_retryable());
    assert!(e.message.contains("22012: division by zero"), "{e}");

    // The first error fails the transaction: a later 40001-like error does not change the cause.
    let tx = s.begin().unwrap();
    assert!(tx.query("SELECT 1/0", &[]).is_err());
    assert!(tx.query("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'serialization_failure'; END $$", &[]).is_err());
    assert_eq!(tx.commit().unwrap_err().sqlstate(), Some("40000"));

    // A batch's failing statement is what fails the transaction too.
    let tx = s.begin().unwrap();
    let batch = [
        pgsess::conn::BatchStatement {
            sql: "DO $$ BEGIN RAISE EXCEPTION 'in a batch' USING ERRCODE = 'serialization_failure'; END $$".into(),
            params: vec![],
        },
        pgsess::conn::BatchStatement { sql: "SELECT 1".into(), params: vec![] },
    ];
    let outcomes = tx.session().batch(&batch).unwrap();
    assert_eq!(outcomes[0].as_ref().err().and_then(Error::sqlstate), Some("40001"));
    assert_eq!(outcomes[1].as_ref().err().and_then(Error::sqlstate), Some("25P02"));
    drop(outcomes);
    assert_eq!(tx.commit().unwrap_err().sqlstate(), Some("40001"));
    exec(&s, &format!("DROP TABLE {t}"));
}

#[test]
fn a_serialization_failure_found_at_commit_is_40001() {
    // PostgreSQL's own write-skew example (the SSI wiki's "black and white"): both updates
    // read the whole table; the second transaction to commit fails, at its COMMIT.
    let s = open(&support::shared().uri(), 3);
    let t = table(&s, "tx_dots", "id int, color text");
    exec(
        &s,
        &format!(
            "INSERT INTO {t} SELECT i, CASE WHEN i % 2 = 0 THEN 'black' ELSE 'white' END FROM generate_series(1, 10) i"
        ),
    );
    let serializable = options(Isolation::Serializable, false, false);
    let t1 = s.begin_with(serializable).unwrap();
    let t2 = s.begin_with(serializable).unwrap();
    drop(t1.query(&format!("UPDATE {t} SET color = 'black' WHERE color = 'white'"), &[]).unwrap());
    drop(t2.query(&format!("UPDATE {t} SET color = 'white' WHERE color = 'black'"), &[]).unwrap());
    t2.commit().unwrap();
    let e = t1.commit().unwrap_err();
    assert_eq!((e.code, e.sqlstate()), (Code::PGSESS_TRANSACTION_ROLLBACK, Some("40001")), "{e}");
    assert!(e.server.is_some(), "the server's own error, from the COMMIT: {e}");
    assert!(e.is_retryable());
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t} WHERE color = 'white'")), "10");
    exec(&s, &format!("DROP TABLE {t}"));
}

#[test]
fn eight_threads_increment_one_counter_under_serializable_to_the_exact_count() {
    const THREADS: u32 = 8;
    const EACH: u32 = 50;
    let s = open(&support::shared().uri(), THREADS);
    let t = table(&s, "tx_counter", "id int PRIMARY KEY, n int NOT NULL");
    exec(&s, &format!("INSERT INTO {t} VALUES (1, 0)"));
    let attempts = AtomicU32::new(0);
    let most = AtomicU32::new(0);
    let serializable = options(Isolation::Serializable, false, false);
    let started = Instant::now();
    let start = std::sync::Barrier::new(THREADS as usize);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                start.wait();
                for _ in 0..EACH {
                    let mine = AtomicU32::new(0);
                    // Read, then write what was read plus one: lost updates would show in the count.
                    s.run_in_tx(serializable, 100, |tx| {
                        mine.fetch_add(1, Ordering::Relaxed);
                        attempts.fetch_add(1, Ordering::Relaxed);
                        let n: i64 = tx_scalar(tx, &format!("SELECT n FROM {t} WHERE id = 1")).parse().unwrap();
                        // Long enough for the others to read the same value: they conflict.
                        std::thread::sleep(Duration::from_millis(1));
                        tx.query_params(
                            &format!("UPDATE {t} SET n = $1 WHERE id = 1"),
                            &[],
                            &[pgsess::conn::Param { value: Some((n + 1).to_string().as_bytes()), binary: false }],
                        )?;
                        Ok(())
                    })
                    .unwrap_or_else(|e| panic!("run_in_tx gave up: {e}"));
                    most.fetch_max(mine.into_inner(), Ordering::Relaxed);
                }
            });
        }
    });
    let attempts = attempts.into_inner();
    eprintln!(
        "{} increments in {:?}: {attempts} attempts ({} retried), at most {} for one",
        THREADS * EACH,
        started.elapsed(),
        attempts - THREADS * EACH,
        most.load(Ordering::Relaxed)
    );
    assert_eq!(scalar(&s, &format!("SELECT n FROM {t}")), (THREADS * EACH).to_string());
    assert!(attempts > THREADS * EACH, "the threads conflicted and were retried");
    assert_eq!(s.pool_stats().transactions_open, 0);
    exec(&s, &format!("DROP TABLE {t}"));
}

#[test]
fn the_runner_commits_rolls_back_and_stops_retrying() {
    let s = open(&support::shared().uri(), 2);
    let t = table(&s, "tx_runner", "x int");
    // A result is returned, and the work is committed.
    let v = s
        .run_in_tx(TxOptions::default(), 1, |tx| {
            drop(tx.query(&format!("INSERT INTO {t} VALUES (1)"), &[])?);
            Ok(tx_scalar(tx, "SELECT 42"))
        })
        .unwrap();
    assert_eq!(v, "42");
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}")), "1");

    // A non-retryable failure rolls back and runs once.
    let calls = AtomicU32::new(0);
    let e = s
        .run_in_tx(TxOptions::default(), 5, |tx| {
            calls.fetch_add(1, Ordering::Relaxed);
            drop(tx.query(&format!("INSERT INTO {t} VALUES (2)"), &[])?);
            tx.query("SELECT 1/0", &[]).map(drop)
        })
        .unwrap_err();
    assert_eq!((e.sqlstate(), calls.load(Ordering::Relaxed)), (Some("22012"), 1), "{e}");
    assert_eq!(e.message, "division by zero", "passed on as it was");
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}")), "1", "rolled back");

    // A retryable failure runs again; the one that succeeds is committed, the others rolled back.
    let calls = AtomicU32::new(0);
    s.run_in_tx(options(Isolation::Serializable, false, false), 5, |tx| {
        drop(tx.query(&format!("INSERT INTO {t} VALUES (3)"), &[])?);
        if calls.fetch_add(1, Ordering::Relaxed) < 2 {
            return Err(server_like("40001"));
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t} WHERE x = 3")), "1");

    // The function may leave the transaction failed: the commit's 40001 is retried too.
    let calls = AtomicU32::new(0);
    s.run_in_tx(TxOptions::default(), 3, |tx| {
        if calls.fetch_add(1, Ordering::Relaxed) == 0 {
            let failed =
                tx.query("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'serialization_failure'; END $$", &[]);
            assert!(failed.is_err()); // and not passed on
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 2);

    // max_attempts bounds the attempts (0, the default, is checked in the unit tests: its
    // waits add up to seconds). The last error says it gave up.
    for (max, expected) in [(1, 1), (4, 4)] {
        let calls = AtomicU32::new(0);
        let e = s
            .run_in_tx(TxOptions::default(), max, |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                Err::<(), _>(server_like("40P01"))
            })
            .unwrap_err();
        assert_eq!(calls.load(Ordering::Relaxed), expected, "max_attempts {max}");
        assert_eq!(e.sqlstate(), Some("40P01"));
        if expected > 1 {
            assert!(e.message.contains(&format!("given up after {expected} attempts")), "{e}");
        } else {
            assert_eq!(e.message, "as the server says");
        }
    }
    assert_eq!(s.pool_stats().transactions_open, 0);
    exec(&s, &format!("DROP TABLE {t}"));
}

#[test]
fn savepoints_with_quoted_names() {
    let s = open(&support::shared().uri(), 2);
    let t = table(&s, "tx_savepoints", "x int");
    let tx = s.begin().unwrap();
    let insert = |x: i32| drop(tx.query(&format!("INSERT INTO {t} VALUES ({x})"), &[]).unwrap());
    let name = "it's a \"quoted\" name";
    insert(1);
    tx.savepoint(name).unwrap();
    insert(2);
    tx.rollback_to(name).unwrap();
    assert_eq!(tx_scalar(&tx, &format!("SELECT string_agg(x::text, ',') FROM {t}")), "1");
    // The savepoint stays after a rollback to it; a failed statement is undone by one.
    insert(3);
    assert!(tx.query("SELECT 1/0", &[]).is_err());
    assert_eq!(tx.query("SELECT 1", &[]).err().unwrap().sqlstate(), Some("25P02"));
    tx.rollback_to(name).unwrap();
    insert(4);
    tx.savepoint("a; b").unwrap();
    insert(5);
    tx.release("a; b").unwrap();
    let e = tx.rollback_to("a; b").unwrap_err();
    assert_eq!(e.sqlstate(), Some("3B001"), "released: {e}");
    tx.rollback_to(name).unwrap(); // the outer savepoint makes the transaction good again
    insert(6);
    // Commit commits: its "failed before" is the server's status, not a flag left by the errors.
    tx.commit().unwrap();
    assert_eq!(scalar(&s, &format!("SELECT string_agg(x::text, ',' ORDER BY x) FROM {t}")), "1,6");
    // Names are quoted: a name cannot end the statement, and case is kept.
    let tx = s.begin().unwrap();
    tx.savepoint("x\"; ROLLBACK; SELECT \"").unwrap();
    tx.savepoint("Case").unwrap();
    assert_eq!(tx.release("case").unwrap_err().sqlstate(), Some("3B001"));
    tx.rollback();
    let tx = s.begin().unwrap();
    assert_eq!(tx.savepoint("").unwrap_err().code, Code::PGSESS_INTERFACE_ERROR);
    assert_eq!(tx.savepoint("a\0b").unwrap_err().code, Code::PGSESS_INTERFACE_ERROR);
    assert_eq!(tx.rollback_to("").unwrap_err().code, Code::PGSESS_INTERFACE_ERROR);
    assert_eq!(tx.release("").unwrap_err().code, Code::PGSESS_INTERFACE_ERROR);
    tx.commit().unwrap(); // refused names sent nothing: the transaction is still good
    exec(&s, &format!("DROP TABLE {t}"));
}

#[test]
fn connection_loss_is_retryable_only_before_the_statement_was_sent() {
    let c = Cluster::start(); // its own: this test kills connections and stops the server
    let wait_gone = |pid: i32| {
        let t = Instant::now();
        while c.psql(&format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}")) != "0" {
            assert!(t.elapsed() < Duration::from_secs(10), "backend {pid} still there");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50)); // its socket closed with it
    };
    // Over a Unix socket, writing to a connection the server has closed fails at once: the
    // statement never reached it.
    let s = open(&c.uri(), 2).pin().unwrap();
    let pid = s.backend_pid();
    c.psql(&format!("SELECT pg_terminate_backend({pid})"));
    wait_gone(pid);
    let e = s.query("SELECT 1", &[]).err().unwrap();
    assert!(e.unsent && e.is_retryable(), "{e}");
    assert_eq!(scalar(&s, "SELECT 2"), "2", "the pinned session reconnected");

    // Over TCP the write is taken and the loss shows when reading the answer: the statement
    // may have run (from the client's side), so it is not retryable.
    let s = open(&c.tcp_uri(), 2).pin().unwrap();
    let pid = s.backend_pid();
    c.psql(&format!("SELECT pg_terminate_backend({pid})"));
    wait_gone(pid);
    let e = s.query("SELECT 1", &[]).err().unwrap();
    assert!(!e.unsent && !e.is_retryable(), "{e}");

    // A transaction whose connection is known broken: the next statement and the commit are
    // never sent, so the runner retries (on a new connection).
    let s = open(&c.uri(), 2);
    let calls = AtomicU32::new(0);
    s.run_in_tx(TxOptions::default(), 3, |tx| {
        if calls.fetch_add(1, Ordering::Relaxed) == 0 {
            let pid: i32 = tx_scalar(tx, "SELECT pg_backend_pid()").parse().unwrap();
            c.psql(&format!("SELECT pg_terminate_backend({pid})"));
            wait_gone(pid);
        }
        tx.query("SELECT 1", &[]).map(drop)
    })
    .unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 2);

    // No server: checkouts cannot connect, nothing is sent, and the runner gives up after its
    // attempts.
    let mut o = opts(&c.uri(), 1);
    o.set_checkout_timeout_ms(300).unwrap();
    let s = Session::open("tx_options", &o).unwrap();
    c.stop();
    let e = s.query("SELECT 1", &[]).err().unwrap();
    assert!(e.unsent && e.is_retryable(), "{e}");
    let calls = AtomicU32::new(0);
    let e = s.run_in_tx(TxOptions::default(), 2, |_| Ok(calls.fetch_add(1, Ordering::Relaxed))).unwrap_err();
    assert!(e.is_retryable() && e.message.contains("given up after 2 attempts"), "{e}");
    assert_eq!(calls.load(Ordering::Relaxed), 0, "never began");
    c.start_again();
    // The pool may take a moment to reconnect: that is what the runner is for.
    assert_eq!(s.run_in_tx(TxOptions::default(), 0, |tx| Ok(tx_scalar(tx, "SELECT 3"))).unwrap(), "3");
}
