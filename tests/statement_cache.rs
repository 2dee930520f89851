//! The statement cache against real servers: statements prepared once per connection and run
//! with Bind/Execute only, LRU eviction, healing across the whole pool after `ALTER TABLE` and
//! after a type is dropped and created again, the error inside a transaction block, and behind
//! PgBouncer in transaction mode (off: works as without; on, against a PgBouncer that does not
//! track prepared statements: an error that says to turn it off, never a loop or a wrong answer).

mod support;

use pgsess::{Session, SessionOptions};
use support::servers::Bouncer;
use support::Cluster;

fn text(r: &pgsess::Results, row: usize, col: usize) -> String {
    String::from_utf8(r.set.value(row, col).unwrap_or_else(|| panic!("NULL at ({row}, {col})")).to_vec()).unwrap()
}

/// The first value of a one-parameter statement, its results freed.
fn one(s: &Session, sql: &str, param: &str) -> String {
    text(&s.query(sql, &[Some(param.as_bytes())]).unwrap(), 0, 0)
}

fn options(uri: String, pool: u32, cache: u32) -> SessionOptions {
    let mut o = SessionOptions { db_url: Some(uri), ..Default::default() };
    o.set_pool_max_size(pool).unwrap();
    o.set_statement_cache(cache).unwrap();
    o.set_checkout_timeout_ms(10_000).unwrap();
    o.set_statement_timeout_ms(10_000);
    o
}

/// The generated statements prepared on the session's connection, with how often each ran
/// (PostgreSQL 14+ counts a prepared statement's executions as generic plus custom plans).
fn prepared(s: &Session) -> Vec<(String, i64)> {
    let r = s
        .query(
            "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements \
             WHERE name LIKE 'pgsess\\_%' AND from_sql = false ORDER BY statement",
            &[],
        )
        .unwrap();
    (0..r.set.nrows()).map(|i| (text(&r, i, 0), text(&r, i, 1).parse().unwrap())).collect()
}

#[test]
fn a_statement_run_again_is_bound_not_parsed_and_lru_statements_are_closed() {
    let c = support::shared();
    let s = Session::open("x", &options(c.uri(), 1, 2)).unwrap();
    for i in 0..10 {
        assert_eq!(one(&s, "SELECT $1::int + 1", &i.to_string()), (i + 1).to_string());
    }
    // One prepared statement, run ten times (the listing itself runs unparameterised).
    assert_eq!(prepared(&s), vec![("SELECT $1::int + 1".to_owned(), 10)]);

    // Capacity 2: a third statement closes the least recently used one.
    s.query("SELECT $1::int * 2", &[Some(b"4")]).unwrap();
    s.query("SELECT $1::int + 1", &[Some(b"4")]).unwrap();
    assert_eq!(one(&s, "SELECT $1::text || 'x'", "a"), "ax");
    let names: Vec<String> = prepared(&s).into_iter().map(|(sql, _)| sql).collect();
    assert_eq!(names, vec!["SELECT $1::int + 1".to_owned(), "SELECT $1::text || 'x'".to_owned()]);
    // The evicted one is prepared again when it comes back.
    assert_eq!(one(&s, "SELECT $1::int * 2", "21"), "42");

    // A failing statement (an error at Parse) is not cached; one failing at run time is.
    assert!(s.query("SELEC $1", &[Some(b"1")]).is_err());
    assert!(s.query("SELECT 1 / $1::int", &[Some(b"0")]).is_err());
    assert_eq!(one(&s, "SELECT 1 / $1::int", "1"), "1");
    // The types declared are part of the statement (query_params).
    let p = pgsess::conn::Param { value: Some(b"7"), binary: false };
    assert_eq!(text(&s.query_params("SELECT $1", &[23], &[p]).unwrap(), 0, 0), "7");
    assert_eq!(text(&s.query_params("SELECT $1", &[25], &[p]).unwrap(), 0, 0), "7");
}

#[test]
fn discard_all_and_deallocate_all_empty_the_cache_without_errors() {
    let c = support::shared();
    let s = Session::open("x", &options(c.uri(), 1, 8)).unwrap().pin().unwrap();
    s.query("SELECT $1::int", &[Some(b"1")]).unwrap();
    assert_eq!(prepared(&s).len(), 1);
    s.query("DEALLOCATE ALL", &[]).unwrap();
    assert_eq!(text(&s.query("SELECT $1::int", &[Some(b"2")]).unwrap(), 0, 0), "2");
    s.query("DISCARD ALL", &[]).unwrap();
    assert_eq!(text(&s.query("SELECT $1::int", &[Some(b"3")]).unwrap(), 0, 0), "3");
    assert_eq!(prepared(&s).len(), 1);
}

/// Four pinned sessions on one pool of four: four connections, each with the statement cached.
fn four_connections(c: &Cluster, cache: u32) -> (Session, Vec<Session>) {
    let pool = Session::open("x", &options(c.uri(), 4, cache)).unwrap();
    let pinned: Vec<Session> = (0..4).map(|_| pool.pin().unwrap()).collect();
    let mut pids: Vec<i32> = pinned.iter().map(Session::backend_pid).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 4, "four connections");
    (pool, pinned)
}

#[test]
fn alter_table_heals_every_connection_of_the_pool_without_an_error() {
    let c = support::shared();
    c.psql("DROP TABLE IF EXISTS heal_alter; CREATE TABLE heal_alter (a int); INSERT INTO heal_alter VALUES (1);");
    let sql = "SELECT * FROM heal_alter WHERE a = $1";
    let (_pool, pinned) = four_connections(c, 16);
    for s in &pinned {
        assert_eq!(s.query(sql, &[Some(b"1")]).unwrap().set.ncols(), 1);
    }
    c.psql("ALTER TABLE heal_alter ADD COLUMN b text DEFAULT 'new'");
    // The first connection finds its plan invalid, re-prepares and retries: no error.
    let r = pinned[0].query(sql, &[Some(b"1")]).unwrap();
    assert_eq!((r.set.ncols(), text(&r, 0, 1)), (2, "new".to_owned()));
    drop(r);
    // The others forgot the statement before their next use: even inside a transaction block,
    // where a cached statement that fails could not be retried, they do not fail.
    for s in &pinned[1..] {
        s.query("BEGIN", &[]).unwrap();
        let r = s.query(sql, &[Some(b"1")]).unwrap_or_else(|e| panic!("not healed across the pool: {e}"));
        assert_eq!(r.set.ncols(), 2);
        drop(r);
        s.query("COMMIT", &[]).unwrap();
    }
}

#[test]
fn a_type_dropped_and_created_again_heals_and_inside_a_transaction_the_error_says_why() {
    let c = support::shared();
    c.psql("DROP TYPE IF EXISTS heal_pair CASCADE; CREATE TYPE heal_pair AS (n int, t text);");
    let sql = "SELECT ROW($1::int, 'x')::heal_pair AS p";
    // A cache size of its own: a pool of its own (tests run at once).
    let (_pool, pinned) = four_connections(c, 17);
    for s in &pinned {
        assert_eq!(text(&s.query(sql, &[Some(b"5")]).unwrap(), 0, 0), "(5,x)");
    }
    c.psql("DROP TYPE heal_pair; CREATE TYPE heal_pair AS (n int, t text);");
    // Inside a transaction block the first connection to find it gets the error, with why.
    let s = &pinned[0];
    s.query("BEGIN", &[]).unwrap();
    let e = s.query(sql, &[Some(b"6")]).expect_err("the cached plan's result type changed");
    assert!(matches!(e.sqlstate(), Some("0A000" | "42704")), "{e}");
    assert!(e.message.contains("inside a transaction block"), "{}", e.message);
    s.query("ROLLBACK", &[]).unwrap();
    // Healed: that connection and every other run it again, outside and inside transactions.
    assert_eq!(text(&s.query(sql, &[Some(b"6")]).unwrap(), 0, 0), "(6,x)");
    for s in &pinned[1..] {
        s.query("BEGIN", &[]).unwrap();
        assert_eq!(text(&s.query(sql, &[Some(b"7")]).unwrap(), 0, 0), "(7,x)");
        s.query("COMMIT", &[]).unwrap();
    }
}

#[test]
fn the_cache_is_part_of_the_pool_key() {
    let c = support::shared();
    let off = Session::open("x", &options(c.uri(), 2, 0)).unwrap();
    let on = Session::open("x", &options(c.uri(), 2, 4)).unwrap();
    assert_ne!(off.pool_id(), on.pool_id());
    let p = off.pin().unwrap();
    p.query("SELECT $1::int", &[Some(b"1")]).unwrap();
    assert!(prepared(&p).is_empty(), "the cache is off by default");
}

#[test]
fn behind_pgbouncer_in_transaction_mode() {
    let c = Cluster::start();
    let b = Bouncer::start(&c, "transaction", 2);

    // Off (the default): parameterised statements work from two client connections at once.
    let off = Session::open("x", &options(b.uri(), 2, 0)).unwrap();
    std::thread::scope(|scope| {
        for t in 0..2 {
            let off = &off;
            scope.spawn(move || {
                for i in 0..200 {
                    let n = t * 1000 + i;
                    let r = off.query("SELECT $1::int + 1", &[Some(n.to_string().as_bytes())]).unwrap();
                    assert_eq!(text(&r, 0, 0), (n + 1).to_string());
                }
            });
        }
    });

    // On, against a PgBouncer that does not track prepared statements: four client connections
    // at once move between the two server connections, and a statement prepared on one is
    // run on the other.
    let on = Session::open("y", &options(b.uri(), 4, 8)).unwrap();
    let failed = std::sync::atomic::AtomicBool::new(false);
    let errors: Vec<pgsess::Error> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (on, failed) = (&on, &failed);
                scope.spawn(move || {
                    let mut errors = Vec::new();
                    let mut after = 0;
                    for i in 0..5000 {
                        let seen_failure = failed.load(std::sync::atomic::Ordering::SeqCst);
                        let n = t * 10_000 + i;
                        match on.query("SELECT $1::int + 1", &[Some(n.to_string().as_bytes())]) {
                            Ok(r) => assert_eq!(text(&r, 0, 0), (n + 1).to_string(), "never a wrong answer"),
                            Err(e) => {
                                assert!(!seen_failure, "an error after the cache was turned off: {e}");
                                failed.store(true, std::sync::atomic::Ordering::SeqCst);
                                errors.push(e);
                            }
                        }
                        after += usize::from(seen_failure);
                        if after == 100 {
                            break;
                        }
                    }
                    errors
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    // The pool's first loss is healed (prepared again where it landed); the second fails with
    // what to do and turns the pool's cache off. Connections that found theirs missing at the
    // same moment fail the same way: at most one error per connection, and none after.
    assert!((1..=4).contains(&errors.len()), "{} errors: {errors:?}", errors.len());
    for e in &errors {
        assert_eq!(e.sqlstate(), Some("26000"), "{e}");
        assert!(e.message.contains("PgBouncer") && e.message.contains("turn it off"), "{}", e.message);
    }
    for i in 0..50 {
        assert_eq!(one(&on, "SELECT $1::int + 1", &i.to_string()), (i + 1).to_string());
    }
}

#[test]
fn streams_use_the_cache_and_heal_too() {
    let c = support::shared();
    c.psql(
        "DROP TABLE IF EXISTS heal_stream; CREATE TABLE heal_stream AS SELECT i AS a FROM generate_series(1, 50) i;",
    );
    let s = Session::open("x", &options(c.uri(), 1, 8)).unwrap().pin().unwrap();
    let sql = "SELECT * FROM heal_stream WHERE a <= $1 ORDER BY a";
    let rows = |s: &Session| -> (usize, usize) {
        let mut stream = s.query_stream(sql, &[Some(b"30")], 7).unwrap();
        let (mut n, mut cols) = (0, 0);
        while let Some(chunk) = stream.next_chunk().unwrap() {
            n += chunk.set.nrows();
            cols = cols.max(chunk.set.ncols());
        }
        (n, cols)
    };
    for _ in 0..3 {
        assert_eq!(rows(&s), (30, 1));
    }
    assert_eq!(prepared(&s), vec![(sql.to_owned(), 3)]);
    c.psql("ALTER TABLE heal_stream ADD COLUMN b int");
    assert_eq!(rows(&s), (30, 2), "healed and retried, no error");
}

/// The columns' formats and each value as the server's text (`get_text` reads both formats).
fn formats_and_texts(r: &pgsess::Results) -> (Vec<i16>, Vec<Option<String>>) {
    let formats = r.set.columns().iter().map(|c| c.format).collect();
    let texts = (0..r.set.ncols())
        .map(|col| {
            let text = |_| r.set.get_text(0, col).unwrap_or_else(|e| panic!("column {col}: {e:?}")).into_owned();
            r.set.value(0, col).map(text)
        })
        .collect();
    (formats, texts)
}

#[test]
fn typed_statements_read_the_cheaper_types_in_binary_from_their_second_run() {
    let c = support::shared();
    let typed_sql = "SELECT $1::int8 AS i8, 'x'::text AS t, 2.5::float8 AS f8, '2024-05-06 07:08:09.5+02'::timestamptz AS tz, true AS b, \
        '2024-02-29'::date AS d, '00112233-4455-6677-8899-aabbccddeeff'::uuid AS u, '\\x0102'::bytea AS y, \
        1.25::numeric AS n, 1.5::float4 AS f4, '2024-01-02 03:04:05'::timestamp AS ts, NULL::int4 AS nul, \
        7::int2 AS i2, 8::int4 AS i4, 9::oid AS o";
    let s = Session::open("x", &options(c.uri(), 1, 18)).unwrap().pin().unwrap();
    s.query("SET TimeZone TO 'UTC'", &[]).unwrap();
    let first = s.query_typed(typed_sql, &[Some(b"42")]).unwrap();
    let (f1, t1) = formats_and_texts(&first);
    drop(first);
    assert!(f1.iter().all(|&f| f == 0), "the first run is all text: {f1:?}");
    let second = s.query_typed(typed_sql, &[Some(b"42")]).unwrap();
    let (f2, t2) = formats_and_texts(&second);
    drop(second);
    assert_eq!(f2, vec![1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(t1[1..], t2[1..], "the same values in either format");
    assert_eq!(t2[0].as_deref(), Some("42"));
    // query (not typed) on the same cached statement stays all text.
    let r = s.query(typed_sql, &[Some(b"1")]).unwrap();
    assert!(r.set.columns().iter().all(|c| c.format == 0));
    drop(r);

    // Without parameters: one statement is cached and typed; several keep the simple protocol.
    let one = "SELECT 5::int8 AS v;";
    assert_eq!(s.query_typed(one, &[]).unwrap().set.columns()[0].format, 0);
    let r = s.query_typed(one, &[]).unwrap();
    assert_eq!((r.set.columns()[0].format, r.set.get_int64(0, 0)), (1, Ok(5)));
    drop(r);
    assert!(prepared(&s).iter().any(|(sql, _)| sql == one), "cached on the extended protocol");
    for _ in 0..2 {
        let r = s.query_typed("SELECT 1; SELECT 6::int8 AS v", &[]).unwrap();
        assert_eq!((r.set.columns()[0].format, text(&r, 0, 0)), (0, "6".to_owned()), "the last statement's result");
        drop(r);
        let r = s.query_typed("SELECT ';'::text || 7::int8", &[]).unwrap();
        assert_eq!(text(&r, 0, 0), ";7");
    }
    assert!(!prepared(&s).iter().any(|(sql, _)| sql.contains("SELECT 1;")), "not prepared");
    let as_query = |sql| s.query(sql, &[]).map(|r| r.set.nrows()).map_err(|e| e.message);
    for sql in ["", "SELECT $1::int", "-- a comment"] {
        let typed = s.query_typed(sql, &[]).map(|r| r.set.nrows()).map_err(|e| e.message);
        assert_eq!(typed, as_query(sql), "{sql:?}: the same answer as query");
    }

    // Without the cache, typed statements are all text, as query's.
    let off = Session::open("x", &options(c.uri(), 1, 0)).unwrap();
    for _ in 0..2 {
        let r = off.query_typed(typed_sql, &[Some(b"3")]).unwrap();
        assert!(r.set.columns().iter().all(|c| c.format == 0));
    }
}

#[test]
fn a_typed_statement_whose_result_types_change_heals_and_learns_them_again() {
    let c = support::shared();
    c.psql("DROP TABLE IF EXISTS heal_typed; CREATE TABLE heal_typed (a int8, b int8); INSERT INTO heal_typed VALUES (1, 2);");
    let sql = "SELECT * FROM heal_typed";
    let s = Session::open("x", &options(c.uri(), 1, 19)).unwrap();
    for _ in 0..2 {
        s.query_typed(sql, &[]).unwrap();
    }
    let r = s.query_typed(sql, &[]).unwrap();
    assert_eq!(r.set.columns().iter().map(|c| c.format).collect::<Vec<_>>(), vec![1, 1]);
    drop(r);
    c.psql("ALTER TABLE heal_typed ALTER COLUMN b TYPE text, ADD COLUMN c int8 DEFAULT 3");
    // Re-prepared and run again (text: the new types are learned from this reply), then typed.
    let r = s.query_typed(sql, &[]).unwrap();
    assert_eq!((r.set.ncols(), text(&r, 0, 1), text(&r, 0, 2)), (3, "2".to_owned(), "3".to_owned()));
    drop(r);
    let r = s.query_typed(sql, &[]).unwrap();
    assert_eq!(r.set.columns().iter().map(|c| c.format).collect::<Vec<_>>(), vec![1, 0, 1]);
    assert_eq!((r.set.get_int64(0, 0), text(&r, 0, 1), r.set.get_int64(0, 2)), (Ok(1), "2".to_owned(), Ok(3)));
}

#[test]
fn a_pending_statement_healed_by_the_cache_is_sent_again_with_its_own_parameters() {
    let c = support::shared();
    c.psql(
        "DROP TABLE IF EXISTS heal_pending; CREATE TABLE heal_pending (a int, b text); \
         INSERT INTO heal_pending VALUES (1, 'one'), (2, 'two');",
    );
    let sql = "SELECT *, $2::text IS NULL FROM heal_pending WHERE a = $1 AND b = $3";
    // A pool of its own (capacity 9): its statements stay prepared on its connection, where
    // another test's count of prepared statements would see them.
    let s = Session::open("x", &options(c.uri(), 1, 9)).unwrap();
    let run = |a: i32, b: &str, staged: bool| {
        let a = a.to_be_bytes();
        let params = [
            pgsess::conn::Param { value: Some(&a), binary: true },
            pgsess::conn::Param { value: None, binary: false },
            pgsess::conn::Param { value: Some(b.as_bytes()), binary: false },
        ];
        let mut pending = s.send_statement(sql, &[23, 25, 25], &params, false, staged).unwrap();
        pending.send();
        pending.finish().unwrap()
    };
    let r = run(1, "one", true);
    assert_eq!((r.set.ncols(), text(&r, 0, 1), text(&r, 0, 2)), (3, "one".to_owned(), "t".to_owned()));
    drop(r);
    // Another statement between: the connection's copy of the SQL and parameters is its own.
    assert_eq!(one(&s, "SELECT $1::text || '!'", "x"), "x!");
    c.psql("ALTER TABLE heal_pending ADD COLUMN c text DEFAULT 'new'");
    for staged in [true, false] {
        // Invalid after the ALTER: prepared again and sent again with these parameters.
        let r = run(2, "two", staged);
        let row: Vec<String> = (0..r.set.ncols()).map(|i| text(&r, 0, i)).collect();
        assert_eq!(row, ["2", "two", "new", "t"], "staged: {staged}");
        drop(r);
        c.psql("ALTER TABLE heal_pending DROP COLUMN c; ALTER TABLE heal_pending ADD COLUMN c text DEFAULT 'new'");
    }
}
