//! Session configuration and the pool's contract, against a real server: environment naming,
//! db_url precedence, percent-encoded credentials, pool sharing and ids, exhaustion and the free
//! contract, concurrency, reset on return, idle TTL. The pool's contract runs on both kinds
//! of pool (shared, and one of its own as a forked child makes).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgsess::{Code, Session, SessionOptions};
use support::{Backend, Cluster};

on_both_backends!(
    sessions_share_one_pool_per_normalised_uri_and_settings,
    exhaustion_waits_for_the_timeout_then_explains_and_a_free_wakes_a_waiter,
    exhaustion_and_statistics_do_not_wait_for_running_statements,
    waiters_are_served_first_come_first_served,
    eight_threads_share_one_session_with_a_pool_of_four,
    connections_return_outside_any_transaction,
    idle_connections_close_after_the_ttl,
);

fn opts(uri: &str, max: u32, timeout_ms: u32) -> SessionOptions {
    let mut o = SessionOptions { db_url: Some(uri.to_string()), ..SessionOptions::default() };
    o.set_pool_max_size(max).unwrap();
    o.set_checkout_timeout_ms(timeout_ms).unwrap();
    o
}

fn exec(s: &Session, sql: &str) {
    s.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn scalar(s: &Session, sql: &str, params: &[Option<&[u8]>]) -> String {
    let r = s.query(sql, params).unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8(r.set.value(0, 0).expect("a value").to_vec()).unwrap()
}

/// Connections the server has for `application_name` (a unique one per test isolates them).
fn backends(c: &Cluster, app: &str) -> i64 {
    c.psql(&format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'")).parse().unwrap()
}

fn with_app(uri: &str, app: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}application_name={app}")
}

#[test]
fn environment_variable_naming() {
    let c = support::shared();
    // SAFETY (edition 2021 set_var): each test uses variable names no other test reads.
    std::env::set_var("PGSQL_STRASSE_ENV", c.uri());
    std::env::set_var("PGSQL_MY-DB.ENV", c.uri());
    let s = Session::open("straße_env", &SessionOptions::default()).expect("straße_env reads PGSQL_STRASSE_ENV");
    assert_eq!(scalar(&s, "SELECT 1", &[]), "1");
    let s = Session::open("my-db.env", &SessionOptions::default()).expect("no character is substituted");
    assert_eq!(scalar(&s, "SELECT 2", &[]), "2");

    let e = Session::open("no_such_db_xyz", &SessionOptions::default()).err().unwrap();
    assert_eq!(e.code, Code::PGSESS_CONFIG_ERROR);
    assert!(e.message.contains("PGSQL_NO_SUCH_DB_XYZ"), "{}", e.message);
}

#[test]
fn empty_name_reads_pgsql_and_db_url_wins() {
    let c = support::shared();
    // The bare PGSQL variable is read for an empty name (the FFI maps NULL to empty).
    std::env::set_var("PGSQL", c.uri());
    let s = Session::open("", &SessionOptions::default()).unwrap();
    assert_eq!(scalar(&s, "SELECT 3", &[]), "3");

    // db_url wins: the variable points nowhere and is never read.
    std::env::set_var("PGSQL_DBURL_WINS", "postgresql://nobody:x@127.0.0.1:1/none");
    let s = Session::open("dburl_wins", &opts(&c.uri(), 2, 2000)).unwrap();
    assert_eq!(scalar(&s, "SELECT 4", &[]), "4");
    // And a missing variable does not matter when db_url is set.
    assert!(Session::open("never_set_anywhere", &opts(&c.uri(), 2, 2000)).is_ok());
}

#[test]
fn percent_encoded_user_password_and_dbname() {
    let c = support::shared();
    let (user, password, db) = ("we@ird:us/er", "p@ss:w/rd?%&#x", "db name/é");
    c.psql(&format!("CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'"));
    c.psql(&format!("CREATE DATABASE \"{db}\" OWNER \"{user}\""));
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let uri = format!("postgresql://{}:{}@127.0.0.1:{}/{}", enc(user), enc(password), c.port(), enc(db));
    let s = Session::open("x", &opts(&uri, 1, 5000)).expect("decoded credentials authenticate");
    assert_eq!(scalar(&s, "SELECT current_user", &[]), user);
    assert_eq!(scalar(&s, "SELECT current_database()", &[]), db);
    assert!(!s.pool_id().contains(password) && !s.pool_id().contains(&enc(password)));

    // A wrong password fails at open, with an operational error that does not echo the password.
    let bad = format!("postgresql://{}:{}@127.0.0.1:{}/{}", enc(user), "wrong-secret-123", c.port(), enc(db));
    let e = Session::open("x", &opts(&bad, 1, 3000)).err().unwrap();
    assert_eq!(e.code, Code::PGSESS_OPERATIONAL_ERROR, "{e}");
    assert_eq!(e.sqlstate(), Some("28P01"), "{e}");
    assert!(!e.message.contains("wrong-secret-123") && !e.to_string().contains(password), "{e}");
}

fn sessions_share_one_pool_per_normalised_uri_and_settings(b: Backend) {
    let c = support::shared();
    let app = &format!("share_pool_{}", b.tag());
    let a = b.open("x", &opts(&with_app(&c.uri(), app), 3, 2000)).unwrap();
    assert_eq!(backends(c, app), 1, "creating the pool opened its first connection");
    // The same URI spelled differently shares the pool and opens nothing new.
    let respelled = with_app(&c.uri().replacen("postgresql://", "postgres://", 1), app);
    let same = b.open("y", &opts(&respelled, 3, 2000)).unwrap();
    assert_eq!(a.pool_id(), same.pool_id());
    assert_eq!(backends(c, app), 1);
    // Different pool settings make a different pool.
    let d = b.open("z", &opts(&with_app(&c.uri(), app), 4, 2000)).unwrap();
    assert_ne!(a.pool_id(), d.pool_id());
    assert!(!a.pool_id().contains(Cluster::password()));
}

fn exhaustion_waits_for_the_timeout_then_explains_and_a_free_wakes_a_waiter(b: Backend) {
    let c = support::shared();
    let s = b.open("x", &opts(&with_app(&c.uri(), "exhaust"), 2, 400)).unwrap();
    let r1 = s.query("SELECT 1", &[]).unwrap();
    let r2 = s.query("SELECT 2", &[]).unwrap();
    let t = Instant::now();
    let e = s.query("SELECT 3", &[]).expect_err("all connections are held");
    let waited = t.elapsed();
    assert_eq!(e.code, Code::PGSESS_POOL_EXHAUSTED, "{e}");
    assert_eq!(e.category(), Code::PGSESS_OPERATIONAL_ERROR);
    assert!(waited >= Duration::from_millis(380) && waited < Duration::from_millis(3000), "{waited:?}");
    for needle in ["2 in use", "0 idle", "2 results not yet freed", "pgsess_results_free"] {
        assert!(e.message.contains(needle), "missing {needle:?} in {}", e.message);
    }
    drop(r1);
    assert_eq!(scalar(&s, "SELECT 4", &[]), "4", "a freed connection serves the next statement");

    // A waiter is woken by a free, not by its timeout.
    let long = b.open("x", &opts(&with_app(&c.uri(), "exhaust"), 2, 10_000)).unwrap();
    let h1 = long.query("SELECT 1", &[]).unwrap();
    let h2 = long.query("SELECT 2", &[]).unwrap();
    let waiter = {
        let long = long.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = long.query("SELECT 5", &[]).map(|r| r.set.value(0, 0).unwrap().to_vec());
            (r, t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    drop(h1);
    let (r, waited) = waiter.join().unwrap();
    assert_eq!(r.unwrap(), b"5");
    assert!(waited < Duration::from_millis(2000), "woken by the free, not the 10 s timeout: {waited:?}");
    drop((h2, r2));
}

/// A checkout that times out while every connection is running a long statement fails at its
/// timeout, and statistics answer at once: neither waits for a statement to end (they once
/// read each connection's state under the lock a running statement holds).
fn exhaustion_and_statistics_do_not_wait_for_running_statements(b: Backend) {
    let c = support::shared();
    let s = b.open("x", &opts(&with_app(&c.uri(), "exhaust_running"), 1, 300)).unwrap();
    let sleeper = {
        let s = s.clone();
        std::thread::spawn(move || s.query("SELECT pg_sleep(3)", &[]).map(|r| r.set.nrows()))
    };
    let t = Instant::now();
    while s.pool_stats().in_use == 0 {
        std::thread::sleep(Duration::from_millis(10));
        assert!(t.elapsed() < Duration::from_secs(2), "the statement never started");
    }
    std::thread::sleep(Duration::from_millis(100)); // inside pg_sleep by now
    let t = Instant::now();
    let stats = s.pool_stats();
    assert!(t.elapsed() < Duration::from_millis(500), "pool_stats waited {:?}", t.elapsed());
    assert_eq!((stats.open, stats.in_use), (1, 1));
    let t = Instant::now();
    let e = s.query("SELECT 1", &[]).expect_err("the only connection is busy");
    assert_eq!(e.code, Code::PGSESS_POOL_EXHAUSTED, "{e}");
    assert!(t.elapsed() < Duration::from_millis(1500), "the checkout error waited {:?}", t.elapsed());
    // A running statement is not a result that was not freed.
    for needle in ["1 in use", "0 results not yet freed"] {
        assert!(e.message.contains(needle), "missing {needle:?} in {}", e.message);
    }
    assert_eq!(s.pool_stats().results_outstanding, 0);
    assert_eq!(sleeper.join().unwrap().unwrap(), 1);
}

/// With one connection, every caller waiting for it gets it in the order it asked.
fn waiters_are_served_first_come_first_served(b: Backend) {
    let c = support::shared();
    let s = b.open("x", &opts(&with_app(&c.uri(), "fifo"), 1, 10_000)).unwrap();
    let held = s.query("SELECT 'held'", &[]).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let waiters: Vec<_> = (0..5)
        .map(|i| {
            let (mine, order) = (s.clone(), order.clone());
            let waiter = std::thread::spawn(move || {
                let r = mine.query("SELECT $1::int", &[Some(i.to_string().as_bytes())]).unwrap();
                order.lock().unwrap().push(i);
                drop(r);
            });
            // Arrive in order 0, 1, 2, 3, 4: each waits in line before the next comes.
            let t = Instant::now();
            while s.pool_stats().waiting < i + 1 {
                assert!(t.elapsed() < Duration::from_secs(5), "waiter {i} never queued");
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(20)); // from counted to in line
            waiter
        })
        .collect();
    drop(held);
    for w in waiters {
        w.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    let stats = s.pool_stats();
    assert_eq!((stats.open, stats.in_use, stats.waiting, stats.checkout_timeouts), (1, 0, 0, 0), "{stats:?}");
}

fn eight_threads_share_one_session_with_a_pool_of_four(b: Backend) {
    let c = support::shared();
    let app = &format!("eight_threads_{}", b.tag());
    let s = b.open("x", &opts(&with_app(&c.uri(), app), 4, 10_000)).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let v = (t * 1000 + i).to_string();
                    let r = s.query("SELECT $1::int * 2, pg_backend_pid()", &[Some(v.as_bytes())]).unwrap();
                    let want = ((t * 1000 + i) * 2).to_string();
                    assert_eq!(r.set.value(0, 0), Some(want.as_bytes()));
                    assert_eq!(r.set.value(0, 1).unwrap(), r.set.backend_pid.to_string().as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = s.pool_stats();
    assert!(stats.open <= 4 && backends(c, app) <= 4, "{stats:?}");
    assert_eq!(stats.in_use, 0);
    assert_eq!(stats.results_outstanding, 0);
    assert!(stats.checkouts >= 4000, "{stats:?}");
}

fn connections_return_outside_any_transaction(b: Backend) {
    let c = support::shared();
    let s = b.open("x", &opts(&with_app(&c.uri(), "reset"), 1, 3000)).unwrap();
    let t = format!("reset_{}", b.tag()); // the backends' tests run at once
                                          // A raw BEGIN through query: the connection goes back rolled back, the insert undone.
    exec(&s, &format!("CREATE TABLE IF NOT EXISTS {t} (x int)"));
    drop(s.query(&format!("BEGIN; INSERT INTO {t} VALUES (1)"), &[]).unwrap());
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}"), &[]), "0");
    assert_eq!(scalar(&s, "SELECT now() = statement_timestamp()", &[]), "t", "not inside a transaction");
    // An aborted transaction is rolled back too, and the connection is reusable.
    drop(s.query("BEGIN", &[]).unwrap());
    assert!(s.query("SELECT 1/0", &[]).is_err());
    assert_eq!(scalar(&s, "SELECT 7", &[]), "7");
    // A Transaction dropped without commit rolls back at once.
    let tx = s.begin().unwrap();
    drop(tx.query(&format!("INSERT INTO {t} VALUES (2)"), &[]).unwrap());
    drop(tx);
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}"), &[]), "0");
    // Commit makes rows visible; a failed statement turns commit into TRANSACTION_ROLLBACK.
    let tx = s.begin().unwrap();
    drop(tx.query(&format!("INSERT INTO {t} VALUES ($1)"), &[Some(b"3")]).unwrap());
    tx.commit().unwrap();
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}"), &[]), "1");
    let tx = s.begin().unwrap();
    drop(tx.query(&format!("INSERT INTO {t} VALUES (4)"), &[]).unwrap());
    assert!(tx.query("SELECT 1/0", &[]).is_err());
    assert_eq!(tx.commit().err().unwrap().code, Code::PGSESS_TRANSACTION_ROLLBACK);
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}"), &[]), "1");
    exec(&s, &format!("DROP TABLE {t}"));
    assert_eq!(s.pool_stats().discarded_dead, 0, "every connection came back reusable");
}

fn idle_connections_close_after_the_ttl(b: Backend) {
    let c = support::shared();
    let app = &format!("idle_ttl_{}", b.tag());
    let mut o = opts(&with_app(&c.uri(), app), 3, 3000);
    o.set_pool_idle_ttl(2);
    let s = b.open("x", &o).unwrap();
    let held: Vec<_> = (0..3).map(|_| s.query("SELECT 1", &[]).unwrap()).collect();
    drop(held);
    assert_eq!(backends(c, app), 3);
    let t = Instant::now();
    while backends(c, app) > 0 {
        assert!(t.elapsed() < Duration::from_secs(6), "idle connections still open {:?} after a 2 s TTL", t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(t.elapsed() >= Duration::from_millis(1500), "closed before the TTL: {:?}", t.elapsed());
    assert_eq!(s.pool_stats().discarded_expired, 3);
    assert_eq!(scalar(&s, "SELECT 8", &[]), "8", "the pool reconnects on demand");
}

#[test]
fn the_password_file_supplies_a_missing_password() {
    use std::os::unix::fs::PermissionsExt;
    let c = support::shared();
    let file = c.dir().join("test-pgpass");
    std::fs::write(&file, format!("127.0.0.1:{}:pgsess:pgsess:{}\n", c.port(), Cluster::password())).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let uri = format!("postgresql://pgsess@127.0.0.1:{}/pgsess?passfile={}", c.port(), file.display());
    let s = Session::open("x", &opts(&uri, 1, 3000)).expect("the password comes from the file");
    assert_eq!(scalar(&s, "SELECT current_user", &[]), "pgsess");
    // Without a matching entry the server's request for a password is explained.
    std::fs::write(&file, "otherhost:*:*:*:nope\n").unwrap();
    let uri = format!(
        "postgresql://pgsess@127.0.0.1:{}/pgsess?passfile={}&application_name=nopass",
        c.port(),
        file.display()
    );
    let e = Session::open("x", &opts(&uri, 1, 3000)).expect_err("no password");
    assert!(e.message.contains("password file"), "{e}");
}
