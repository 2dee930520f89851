//! Streams against a real server: the statement is sent whole and its rows read from the socket
//! a chunk at a time (chunks never larger than asked, the count exact, a result that fits in one
//! chunk in one round trip), and a stream dropped early on a large result is cancelled and read
//! through, its connection reused at once.

mod support;

use std::time::{Duration, Instant};

use pgsess::{Session, SessionOptions};

fn session(pool: u32, cache: u32) -> Session {
    let c = support::shared();
    let mut o = SessionOptions { db_url: Some(c.uri()), ..Default::default() };
    o.set_pool_max_size(pool).unwrap();
    o.set_statement_cache(cache).unwrap();
    o.set_statement_timeout_ms(30_000);
    Session::open("streams", &o).unwrap()
}

fn pid(s: &Session) -> String {
    let r = s.query("SELECT pg_backend_pid()", &[]).unwrap();
    String::from_utf8(r.set.value(0, 0).unwrap().to_vec()).unwrap()
}

#[test]
fn chunks_hold_at_most_their_size_and_every_row_once() {
    for (cache, typed) in [(0, false), (8, false), (8, true), (8, true)] {
        let s = session(1, cache);
        let sql = "SELECT i, repeat('x', i % 50) FROM generate_series(1, $1::int) i";
        let open = |n: &[u8]| {
            if typed {
                s.query_stream_typed(sql, &[Some(n)], 1000).unwrap()
            } else {
                s.query_stream(sql, &[Some(n)], 1000).unwrap()
            }
        };
        let mut stream = open(b"25000");
        let (mut rows, mut chunks, mut last) = (0usize, 0, 0i64);
        while let Some(chunk) = stream.next_chunk().unwrap() {
            assert!(chunk.set.nrows() <= 1000 && chunk.set.nrows() > 0);
            for r in 0..chunk.set.nrows() {
                let i = match chunk.set.value(r, 0).unwrap() {
                    v if v.len() == 4 && chunk.set.columns()[0].is_binary() => {
                        i32::from_be_bytes(v.try_into().unwrap()) as i64
                    }
                    v => std::str::from_utf8(v).unwrap().parse().unwrap(),
                };
                assert_eq!(i, last + 1);
                last = i;
            }
            rows += chunk.set.nrows();
            chunks += 1;
        }
        assert_eq!((rows, chunks), (25000, 25));
        drop(stream);
        // A result that fits in one chunk: done after the first.
        let mut stream = open(b"3");
        assert_eq!(stream.next_chunk().unwrap().unwrap().set.nrows(), 3);
        assert!(stream.next_chunk().unwrap().is_none());
    }
}

#[test]
fn a_stream_dropped_early_is_cancelled_and_its_connection_reused() {
    let s = session(1, 0);
    let before = pid(&s);
    // In the target list the set-returning function streams its rows (in FROM it would
    // materialise all of them first).
    let mut stream = s.query_stream("SELECT generate_series(1, 100000000)", &[], 100).unwrap();
    assert_eq!(stream.next_chunk().unwrap().unwrap().set.nrows(), 100);
    let t = Instant::now();
    drop(stream);
    assert!(t.elapsed() < Duration::from_secs(4), "abandoning took {:?}", t.elapsed());
    assert_eq!(pid(&s), before, "the same connection, in step");
    // A statement error in a later chunk ends the stream with it.
    let mut stream = s.query_stream("SELECT 1 / (5000 - i) FROM generate_series(1, 10000) i", &[], 100).unwrap();
    let mut err = None;
    for _ in 0..200 {
        match stream.next_chunk() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert_eq!(err.expect("division by zero").sqlstate(), Some("22012"));
    drop(stream);
    assert_eq!(pid(&s), before);
}
