//! COPY FROM STDIN and COPY TO STDOUT: every format byte for byte, a bad row's error at once,
//! aborts that keep nothing, and a connection never left in copy mode, on both pool backends.

mod support;

use pgsess::session::Copy;
use pgsess::{Code, Session, SessionOptions};
use support::Backend;

on_both_backends!(
    a_million_rows_round_trip_in_text_csv_and_binary,
    a_bad_row_stops_the_copy_at_once_with_its_line,
    freeing_unfinished_copies_keeps_nothing_and_the_connection_works,
    copy_in_a_transaction_and_on_a_pinned_session,
    a_copy_holds_its_connection_until_it_ends,
    a_connection_killed_mid_copy_is_discarded,
    statements_that_are_not_the_copy_asked_for,
    either_direction_chunks_aborts_and_a_transaction_ending_first,
);

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

/// Everything a COPY TO sends, concatenated, and its row count.
fn read_all(mut copy: Copy) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    while let Some(chunk) = copy.read().unwrap() {
        out.extend_from_slice(chunk);
    }
    assert!(copy.read().unwrap().is_none(), "the end stays the end");
    let rows = copy.finish().unwrap();
    (out, rows)
}

/// Write `data` in pieces of irregular sizes (rows split anywhere), then finish.
fn write_all(mut copy: Copy, data: &[u8]) -> pgsess::Result<u64> {
    let mut at = 0;
    let mut step = 1;
    while at < data.len() {
        let end = (at + step).min(data.len());
        copy.write(&data[at..end])?;
        at = end;
        step = step * 7 % 65_521 + 1;
    }
    copy.finish()
}

fn rows_text(n: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(n * 40);
    for i in 0..n {
        data.extend_from_slice(
            format!("{i}\trow {i} \\\\ tab\\there\t{}\n", if i % 10 == 0 { "\\N" } else { "x" }).as_bytes(),
        );
    }
    data
}

fn a_million_rows_round_trip_in_text_csv_and_binary(b: Backend) {
    let c = support::shared();
    let s = b.open("x", &opts(&c.uri(), &format!("copy_big_{}", b.tag()), 2)).unwrap();
    let t = format!("copy_big_{}", b.tag());
    exec(&s, &format!("DROP TABLE IF EXISTS {t}, {t}_csv, {t}_bin; CREATE TABLE {t} (n int, s text, z text)"));
    exec(&s, &format!("CREATE TABLE {t}_csv (LIKE {t}); CREATE TABLE {t}_bin (LIKE {t})"));
    let data = rows_text(1_000_000);
    assert_eq!(write_all(s.copy_in(&format!("COPY {t} FROM STDIN")).unwrap(), &data).unwrap(), 1_000_000);
    let (back, rows) = read_all(s.copy_out(&format!("COPY (SELECT * FROM {t} ORDER BY n) TO STDOUT")).unwrap());
    assert_eq!(rows, 1_000_000);
    assert!(back == data, "text round trip is byte for byte");

    let (csv, _) =
        read_all(s.copy_out(&format!("COPY (SELECT * FROM {t} ORDER BY n) TO STDOUT (FORMAT csv)")).unwrap());
    assert_eq!(
        write_all(s.copy_in(&format!("COPY {t}_csv FROM STDIN (FORMAT csv)")).unwrap(), &csv).unwrap(),
        1_000_000
    );
    let (csv2, _) =
        read_all(s.copy_out(&format!("COPY (SELECT * FROM {t}_csv ORDER BY n) TO STDOUT (FORMAT csv)")).unwrap());
    assert!(csv2 == csv, "CSV round trip is byte for byte");

    let (bin, _) =
        read_all(s.copy_out(&format!("COPY (SELECT * FROM {t} ORDER BY n) TO STDOUT (FORMAT binary)")).unwrap());
    assert!(bin.starts_with(b"PGCOPY\n\xff\r\n\0"), "binary COPY's signature");
    assert_eq!(
        write_all(s.copy_in(&format!("COPY {t}_bin FROM STDIN (FORMAT binary)")).unwrap(), &bin).unwrap(),
        1_000_000
    );
    let (bin2, _) =
        read_all(s.copy_out(&format!("COPY (SELECT * FROM {t}_bin ORDER BY n) TO STDOUT (FORMAT binary)")).unwrap());
    assert!(bin2 == bin, "binary round trip is byte for byte");
    assert_eq!(scalar(&s, &format!("SELECT count(*) FILTER (WHERE z IS NULL) FROM {t}_bin")), "100000");
    let st = s.pool_stats();
    assert_eq!((st.in_use, s.copies_open()), (0, 0), "every copy gave its connection back");
    exec(&s, &format!("DROP TABLE {t}, {t}_csv, {t}_bin"));
}

fn a_bad_row_stops_the_copy_at_once_with_its_line(b: Backend) {
    let c = support::shared();
    let s = b.open("x", &opts(&c.uri(), &format!("copy_bad_{}", b.tag()), 2)).unwrap();
    let t = format!("copy_bad_{}", b.tag());
    exec(&s, &format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (n int, s text)"));
    let mut copy = s.copy_in(&format!("COPY {t} FROM STDIN")).unwrap();
    let mut failed_at = None;
    for i in 1..=1_000_000u32 {
        let row = if i == 700_000 { "oops\tbad\n".to_string() } else { format!("{i}\tgood\n") };
        if let Err(e) = copy.write(row.as_bytes()) {
            failed_at = Some((i, e));
            break;
        }
    }
    let (at, e) = failed_at.expect("a write fails after the bad row reaches the server");
    assert!((700_000..760_000).contains(&at), "stopped at once (row {at}), not after the last write");
    assert_eq!(e.sqlstate(), Some("22P02"), "{e}");
    assert!(e.message.contains("oops"), "{e}");
    let context = e.server.as_ref().and_then(|f| f.where_.clone()).unwrap_or_default();
    assert!(context.contains("line 700000"), "the CONTEXT names the row: {context:?}");
    assert_eq!(copy.write(b"1\tx\n").unwrap_err().code, Code::PGSESS_INTERFACE_ERROR, "the copy has ended");
    assert_eq!(copy.finish().unwrap_err().code, Code::PGSESS_INTERFACE_ERROR);
    assert_eq!(s.pool_stats().in_use, 0, "the error gave the connection back before the handle is dropped");
    drop(copy);
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}")), "0", "nothing was kept");
    // The bad row in the very last buffer: finish reports it.
    let mut copy = s.copy_in(&format!("COPY {t} FROM STDIN")).unwrap();
    copy.write(b"1\tone\n2\n").unwrap();
    let e = copy.finish().unwrap_err();
    assert_eq!(e.sqlstate(), Some("22P04"), "missing data for column: {e}");
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}")), "0");
    exec(&s, &format!("DROP TABLE {t}"));
}

fn freeing_unfinished_copies_keeps_nothing_and_the_connection_works(b: Backend) {
    let c = support::shared();
    let s = b.open("x", &opts(&c.uri(), &format!("copy_free_{}", b.tag()), 1)).unwrap();
    let t = format!("copy_free_{}", b.tag());
    exec(&s, &format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (n int)"));
    let pid = scalar(&s, "SELECT pg_backend_pid()");
    let mut copy = s.copy_in(&format!("COPY {t} FROM STDIN")).unwrap();
    for i in 0..200_000 {
        copy.write(format!("{i}\n").as_bytes()).unwrap();
    }
    drop(copy);
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}")), "0", "an aborted COPY FROM keeps nothing");
    assert_eq!(scalar(&s, "SELECT pg_backend_pid()"), pid, "the connection came back in step, not replaced");
    // A COPY TO freed after one row of a few: the rest is read, the connection kept.
    exec(&s, &format!("INSERT INTO {t} SELECT generate_series(1, 10)"));
    let mut copy = s.copy_out(&format!("COPY {t} TO STDOUT")).unwrap();
    assert_eq!(copy.read().unwrap(), Some(&b"1\n"[..]));
    drop(copy);
    assert_eq!(scalar(&s, "SELECT pg_backend_pid()"), pid, "a short remainder is read, the connection kept");
    // A COPY TO freed with millions of rows to go: its connection is closed, never pooled in copy mode.
    let mut copy = s.copy_out("COPY (SELECT generate_series(1, 50000000)) TO STDOUT").unwrap();
    assert!(copy.read().unwrap().is_some());
    drop(copy);
    assert_eq!(scalar(&s, "SELECT 42"), "42", "the pool works after a COPY TO abandoned half-way");
    let st = s.pool_stats();
    assert_eq!((st.in_use, s.copies_open()), (0, 0));
    exec(&s, &format!("DROP TABLE {t}"));
}

fn copy_in_a_transaction_and_on_a_pinned_session(b: Backend) {
    let c = support::shared();
    let s = b.open("x", &opts(&c.uri(), &format!("copy_tx_{}", b.tag()), 2)).unwrap();
    let t = format!("copy_tx_{}", b.tag());
    exec(&s, &format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (n int)"));
    let tx = s.begin().unwrap();
    assert_eq!(write_all(tx.session().copy_in(&format!("COPY {t} FROM STDIN")).unwrap(), b"1\n2\n3\n").unwrap(), 3);
    let r = tx.query(&format!("SELECT count(*) FROM {t}"), &[]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"3"[..]), "the rows are in the transaction");
    drop(r);
    tx.rollback();
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}")), "0", "rolled back with the transaction");
    let tx = s.begin().unwrap();
    write_all(tx.session().copy_in(&format!("COPY {t} FROM STDIN")).unwrap(), b"7\n").unwrap();
    tx.commit().unwrap();
    assert_eq!(scalar(&s, &format!("SELECT sum(n) FROM {t}")), "7");

    // A pinned session: the COPY sees its temporary table; other statements wait their turn.
    let p = s.pin().unwrap();
    exec(&p, "CREATE TEMP TABLE copy_tmp (n int)");
    let mut copy = p.copy_in("COPY copy_tmp FROM STDIN").unwrap();
    copy.write(b"5\n6\n").unwrap();
    let e = p.query("SELECT 1", &[]).unwrap_err();
    assert_eq!(e.code, Code::PGSESS_INTERFACE_ERROR, "refused while the copy runs: {e}");
    assert!(e.message.contains("COPY"), "{e}");
    assert_eq!(copy.finish().unwrap(), 2);
    assert_eq!(scalar(&p, "SELECT sum(n) FROM copy_tmp"), "11", "the session's connection, free again");
    drop(copy);
    let (out, rows) = read_all(p.copy_out("COPY copy_tmp TO STDOUT").unwrap());
    assert_eq!((out.as_slice(), rows), (&b"5\n6\n"[..], 2));
    // A COPY TO left open: its data is already arriving, which is no reason to drop the
    // connection; the statement is refused as the caller's mistake and the session goes on.
    let open = p.copy_out("COPY (SELECT generate_series(1, 100000)) TO STDOUT").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let e = p.query("SELECT 1", &[]).unwrap_err();
    assert_eq!(e.code, Code::PGSESS_INTERFACE_ERROR, "refused while the copy out is open: {e}");
    drop(open);
    assert_eq!(scalar(&p, "SELECT sum(n) FROM copy_tmp"), "11", "the temporary table (same connection) is still there");
    drop(p);
    exec(&s, &format!("DROP TABLE {t}"));
}

fn a_copy_holds_its_connection_until_it_ends(b: Backend) {
    let c = support::shared();
    let mut o = opts(&c.uri(), &format!("copy_hold_{}", b.tag()), 1);
    o.set_checkout_timeout_ms(300).unwrap();
    let s = b.open("x", &o).unwrap();
    let t = format!("copy_hold_{}", b.tag());
    exec(&s, &format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (n int)"));
    let mut copy = s.copy_in(&format!("COPY {t} FROM STDIN")).unwrap();
    assert_eq!((s.pool_stats().in_use, s.copies_open()), (1, 1));
    let e = s.query("SELECT 1", &[]).unwrap_err();
    assert_eq!(e.code, Code::PGSESS_POOL_EXHAUSTED, "{e}");
    assert!(e.message.contains("1 copies open"), "the exhaustion message counts the copy: {e}");
    copy.write(b"1\n").unwrap();
    assert_eq!(copy.finish().unwrap(), 1);
    assert_eq!((s.pool_stats().in_use, s.copies_open()), (0, 0), "finish gave it back before the handle is freed");
    assert_eq!(scalar(&s, "SELECT 1"), "1");
    drop(copy);
    exec(&s, &format!("DROP TABLE {t}"));
}

fn a_connection_killed_mid_copy_is_discarded(b: Backend) {
    let c = support::shared();
    let app = format!("copy_kill_{}", b.tag());
    let s = b.open("x", &opts(&c.uri(), &app, 1)).unwrap();
    let t = format!("copy_kill_{}", b.tag());
    exec(&s, &format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (n int)"));
    let mut copy = s.copy_in(&format!("COPY {t} FROM STDIN")).unwrap();
    copy.write(b"1\n").unwrap();
    c.psql(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"));
    let mut failed = None;
    for i in 0..2_000_000 {
        if let Err(e) = copy.write(format!("{i}\n").as_bytes()) {
            failed = Some(e);
            break;
        }
    }
    let e = match failed {
        Some(e) => e,
        None => copy.finish().unwrap_err(),
    };
    assert!(matches!(e.code, Code::PGSESS_OPERATIONAL_ERROR), "{e}");
    drop(copy);
    assert_eq!(scalar(&s, "SELECT 1"), "1", "a new connection replaces the dead one");
    let st = s.pool_stats();
    assert!(st.discarded_dead >= 1, "{st:?}");
    // The same during a COPY TO.
    let mut copy = s.copy_out("COPY (SELECT generate_series(1, 50000000)) TO STDOUT").unwrap();
    assert!(copy.read().unwrap().is_some());
    c.psql(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"));
    let e = loop {
        match copy.read() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the COPY cannot have ended"),
            Err(e) => break e,
        }
    };
    assert!(matches!(e.code, Code::PGSESS_OPERATIONAL_ERROR | Code::PGSESS_QUERY_CANCELED), "{e}");
    drop(copy);
    assert_eq!(scalar(&s, "SELECT 1"), "1");
    assert_eq!(s.pool_stats().in_use, 0);
    exec(&s, &format!("DROP TABLE {t}"));
}

fn statements_that_are_not_the_copy_asked_for(b: Backend) {
    let c = support::shared();
    let s = b.open("x", &opts(&c.uri(), &format!("copy_wrong_{}", b.tag()), 1)).unwrap();
    let t = format!("copy_wrong_{}", b.tag());
    exec(&s, &format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (n int); INSERT INTO {t} VALUES (1), (2)"));
    let e = s.copy_in("SELECT 1").map(drop).unwrap_err();
    assert_eq!(e.code, Code::PGSESS_INTERFACE_ERROR, "{e}");
    let e = s.copy_out(&format!("COPY {t} FROM STDIN")).map(drop).unwrap_err();
    assert!(e.message.contains("pgsess_copy_in"), "{e}");
    let e = s.copy_in(&format!("COPY {t} TO STDOUT")).map(drop).unwrap_err();
    assert!(e.message.contains("pgsess_copy_out"), "{e}");
    let e = s.query(&format!("COPY {t} FROM STDIN"), &[]).unwrap_err();
    assert!(e.message.contains("pgsess_copy_in"), "{e}");
    let e = s.query(&format!("COPY {t} TO STDOUT"), &[]).unwrap_err();
    assert!(e.message.contains("pgsess_copy_out"), "{e}");
    let e = s.copy_in(&format!("COPY no_such_{t} FROM STDIN")).map(drop).unwrap_err();
    assert_eq!(e.sqlstate(), Some("42P01"), "{e}");
    let mut out = s.copy_out(&format!("COPY {t} TO STDOUT")).unwrap();
    assert_eq!(out.write(b"x").unwrap_err().code, Code::PGSESS_INTERFACE_ERROR);
    assert_eq!(out.finish().unwrap_err().code, Code::PGSESS_INTERFACE_ERROR, "not read to the end yet");
    let (data, rows) = read_all(out);
    assert_eq!((data.as_slice(), rows), (&b"1\n2\n"[..], 2));
    assert_eq!(scalar(&s, &format!("SELECT count(*) FROM {t}")), "2", "the connection is in step after all that");
    assert_eq!(s.pool_stats().connects, 1, "and it is still the first one");
    exec(&s, &format!("DROP TABLE {t}"));
}

fn either_direction_chunks_aborts_and_a_transaction_ending_first(b: Backend) {
    use pgsess::conn::CopyDirection;
    let c = support::shared();
    let s = b.open("x", &opts(&c.uri(), &format!("copy_any_{}", b.tag()), 1)).unwrap();
    let t = format!("copy_any_{}", b.tag());
    exec(&s, &format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (n int)"));
    // Either direction, as the server takes it.
    let mut copy = s.copy(&format!("COPY {t} FROM STDIN")).unwrap();
    assert_eq!(copy.direction(), CopyDirection::In);
    copy.write(b"1\n2\n3\n").unwrap();
    assert_eq!(copy.finish().unwrap(), 3);
    drop(copy);
    let sql = "COPY (SELECT g, repeat('x', g % 50) FROM generate_series(1, 100000) g) TO STDOUT";
    let (rows, _) = read_all(s.copy_out(sql).unwrap());
    let mut copy = s.copy(sql).unwrap();
    assert_eq!(copy.direction(), CopyDirection::Out);
    let mut chunks = Vec::new();
    let mut calls = 0;
    while let Some(chunk) = copy.read_chunk().unwrap() {
        chunks.extend_from_slice(chunk);
        calls += 1;
    }
    assert!(chunks == rows, "chunks joined are the rows");
    assert!(calls < 2000, "many rows per call: {calls} calls");
    assert_eq!(copy.finish().unwrap(), 100_000);
    drop(copy);
    let e = s.copy("SELECT 1").map(drop).unwrap_err();
    assert_eq!(e.code, Code::PGSESS_INTERFACE_ERROR, "{e}");

    // Abort with a reason: nothing kept, the connection in step.
    let mut copy = s.copy_in(&format!("COPY {t} FROM STDIN")).unwrap();
    copy.write(b"10\n11\n").unwrap();
    copy.abort("changed my mind").unwrap();
    assert_eq!(copy.write(b"12\n").unwrap_err().code, Code::PGSESS_INTERFACE_ERROR, "ended");
    assert_eq!(copy.finish().unwrap_err().code, Code::PGSESS_INTERFACE_ERROR);
    drop(copy);
    assert_eq!(scalar(&s, &format!("SELECT sum(n) FROM {t}")), "6");
    // A bad row still in the buffer is dropped with it: the abort goes as asked.
    let mut copy = s.copy_in(&format!("COPY {t} FROM STDIN")).unwrap();
    copy.write(b"x\n").unwrap();
    copy.abort("never sent").unwrap();
    copy.abort("twice").unwrap();
    drop(copy);

    // A transaction that ends while its COPY is open: the COPY is aborted first.
    let tx = s.begin().unwrap();
    let mut copy = tx.session().copy_in(&format!("COPY {t} FROM STDIN")).unwrap();
    copy.write(b"100\n").unwrap();
    let e = tx.commit().unwrap_err();
    assert_eq!(e.code, Code::PGSESS_TRANSACTION_ROLLBACK, "the commit says it rolled back: {e}");
    assert_eq!((s.pool_stats().in_use, s.copies_open()), (0, 0), "the connection is back at once");
    assert_eq!(copy.write(b"101\n").unwrap_err().code, Code::PGSESS_INTERFACE_ERROR, "ended");
    assert_eq!(copy.finish().unwrap_err().code, Code::PGSESS_INTERFACE_ERROR, "no row count for rows never kept");
    drop(copy);
    let tx = s.begin().unwrap();
    let mut copy = tx.session().copy_out(&format!("COPY {t} TO STDOUT")).unwrap();
    assert!(copy.read().unwrap().is_some());
    tx.rollback();
    drop(copy);
    assert_eq!(scalar(&s, &format!("SELECT sum(n) FROM {t}")), "6");
    assert_eq!((s.pool_stats().in_use, s.copies_open()), (0, 0));
    exec(&s, &format!("DROP TABLE {t}"));
}
