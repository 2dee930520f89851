//! Behind PgBouncer (the distribution's package) in transaction mode: parameterised statements
//! from many threads, including statements returning enums and composites, run with zero errors,
//! because pgsess never creates a named prepared statement; transactions stay on one server
//! connection.

mod support;

use std::thread;
use std::time::Instant;

use pgsess::{Session, SessionOptions};
use support::servers::Bouncer;
use support::Cluster;

const THREADS: usize = 8;
const STATEMENTS: usize = 1_000;
const MOODS: [&str; 3] = ["sad", "ok", "happy"];

fn text(r: &pgsess::Results, row: usize, col: usize) -> String {
    String::from_utf8(r.set.value(row, col).unwrap_or_else(|| panic!("NULL at ({row}, {col})")).to_vec()).unwrap()
}

fn setup() -> (Cluster, Bouncer) {
    let c = Cluster::start();
    c.psql(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TYPE pair AS (n int, t text);
         CREATE TABLE diary (id int PRIMARY KEY, m mood NOT NULL, p pair NOT NULL);
         INSERT INTO diary SELECT i, (ARRAY['sad', 'ok', 'happy'])[1 + i % 3]::mood, ROW(i, 'day ' || i)::pair
           FROM generate_series(0, 99) i;",
    );
    let b = Bouncer::start(&c, "transaction", 4);
    (c, b)
}

fn session(b: &Bouncer, max: u32) -> Session {
    let mut o = SessionOptions { db_url: Some(b.uri()), ..Default::default() };
    o.set_pool_max_size(max).unwrap();
    o.set_checkout_timeout_ms(10_000).unwrap();
    o.set_statement_timeout_ms(10_000);
    Session::open("x", &o).unwrap_or_else(|e| panic!("open through pgbouncer: {e}\n{}", b.log()))
}

/// One statement of the mix, its answer checked; Err describes what went wrong.
fn one(s: &Session, t: usize, i: usize) -> Result<(), String> {
    let n = (t * STATEMENTS + i) as i64;
    let ns = n.to_string();
    let check = |got: String, want: String, what: &str| {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what}: got {got:?}, want {want:?}"))
        }
    };
    let err = |e: pgsess::Error| format!("{:?} ({:?}, {:?}): {}", e.code, e.category(), e.sqlstate(), e.message);
    match i % 4 {
        0 => {
            let r = s.query("SELECT $1::int + 1", &[Some(ns.as_bytes())]).map_err(err)?;
            check(text(&r, 0, 0), (n + 1).to_string(), "int")
        }
        1 => {
            let m = MOODS[i % 3];
            let r = s.query("SELECT $1::mood, $1::mood > 'sad'", &[Some(m.as_bytes())]).map_err(err)?;
            check(text(&r, 0, 0), m.to_string(), "enum")?;
            check(text(&r, 0, 1), if m == "sad" { "f" } else { "t" }.to_string(), "enum comparison")
        }
        2 => {
            let word = format!("w{n} x");
            let r = s
                .query("SELECT ROW($1::int, $2::text)::pair", &[Some(ns.as_bytes()), Some(word.as_bytes())])
                .map_err(err)?;
            check(text(&r, 0, 0), format!("({n},\"{word}\")"), "composite")
        }
        _ => {
            let id = (n % 100).to_string();
            let r = s.query("SELECT id, m, p, (p).t FROM diary WHERE id = $1", &[Some(id.as_bytes())]).map_err(err)?;
            if r.set.nrows() != 1 {
                return Err(format!("diary row {id}: {} rows", r.set.nrows()));
            }
            let k = n % 100;
            check(text(&r, 0, 0), id.clone(), "table id")?;
            check(text(&r, 0, 1), MOODS[(k % 3) as usize].to_string(), "table enum")?;
            check(text(&r, 0, 2), format!("({k},\"day {k}\")"), "table composite")?;
            check(text(&r, 0, 3), format!("day {k}"), "composite field")
        }
    }
}

#[test]
fn transaction_mode_threads_enums_composites() {
    let (c, b) = setup();
    let s = session(&b, THREADS as u32);
    let start = Instant::now();
    let errors: Vec<String> = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let s = s.clone();
                scope.spawn(move || {
                    (0..STATEMENTS)
                        .filter_map(|i| one(&s, t, i).err().map(|e| format!("thread {t} #{i}: {e}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed();
    eprintln!(
        "pgbouncer transaction mode: {} statements from {THREADS} threads in {elapsed:?}, {} errors",
        THREADS * STATEMENTS,
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} of {} statements failed through pgbouncer; first ones:\n{}\n--- pgbouncer log (tail) ---\n{}",
        errors.len(),
        THREADS * STATEMENTS,
        errors.iter().take(10).cloned().collect::<Vec<_>>().join("\n"),
        tail(&b.log())
    );
    let log = b.log();
    assert!(log.contains("login attempt: db=pgsess user=pgsess"), "the clients did not go through pgbouncer:\n{log}");
    let stats = s.pool_stats();
    assert_eq!((stats.in_use, stats.results_outstanding, stats.transactions_open), (0, 0, 0), "{stats:?}");
    assert!(stats.open <= THREADS as u32, "{stats:?}");
    // PgBouncer multiplexed those clients onto at most default_pool_size server connections.
    let servers: i64 = c
        .psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgsess' AND backend_type = 'client backend'")
        .parse()
        .unwrap();
    assert!(servers <= 4, "{servers} server connections behind a default_pool_size of 4");
    drop(s);
}

#[test]
fn transaction_through_pgbouncer() {
    let (c, b) = setup();
    let s = session(&b, 4);
    // Keep other clients busy meanwhile, so that server connections are shared.
    let stop = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|scope| {
        for t in 0..3 {
            let (s, stop) = (s.clone(), &stop);
            scope.spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    one(&s, t, i % STATEMENTS).unwrap();
                    i += 1;
                }
            });
        }
        for k in 0..20 {
            let tx = s.begin().unwrap();
            let word = format!("tx {k}");
            let id = (1000 + k).to_string();
            let r1 = tx
                .query(
                    "INSERT INTO diary VALUES ($1::int, 'happy', ROW($1::int, $2::text)) RETURNING pg_backend_pid(), m",
                    &[Some(id.as_bytes()), Some(word.as_bytes())],
                )
                .unwrap();
            let r2 = tx.query("SELECT pg_backend_pid(), p FROM diary WHERE id = $1", &[Some(id.as_bytes())]).unwrap();
            assert_eq!(text(&r1, 0, 1), "happy");
            assert_eq!(text(&r2, 0, 1), format!("({id},\"{word}\")"));
            assert_eq!(text(&r1, 0, 0), text(&r2, 0, 0), "a transaction's statements ran on two server connections");
            drop((r1, r2));
            tx.commit().unwrap();
            // A rolled-back transaction leaves nothing behind.
            let tx = s.begin().unwrap();
            let gone = (2000 + k).to_string();
            drop(tx.query("INSERT INTO diary VALUES ($1::int, 'sad', ROW(0, '')) ", &[Some(gone.as_bytes())]).unwrap());
            tx.rollback();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(c.psql("SELECT count(*) FROM diary WHERE id >= 1000 AND id < 2000"), "20");
    assert_eq!(c.psql("SELECT count(*) FROM diary WHERE id >= 2000"), "0");
    let stats = s.pool_stats();
    assert_eq!((stats.in_use, stats.results_outstanding, stats.transactions_open), (0, 0, 0), "{stats:?}");
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
