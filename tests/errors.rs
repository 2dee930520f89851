//! Errors are classified by SQLSTATE class as psycopg2 does, and carry the server's fields.

mod support;

use pgsess::{Code, Session, SessionOptions};

fn session(pool: u32) -> Session {
    let mut o = SessionOptions { db_url: Some(support::shared().uri()), ..Default::default() };
    o.set_pool_max_size(pool).unwrap();
    Session::open("x", &o).unwrap()
}

#[test]
fn every_sqlstate_class_maps_to_its_code() {
    use Code::*;
    let s = session(2);
    let table = [
        ("08006", PGSESS_OPERATIONAL_ERROR),
        ("0A000", PGSESS_NOT_SUPPORTED_ERROR),
        ("20000", PGSESS_PROGRAMMING_ERROR),
        ("21000", PGSESS_PROGRAMMING_ERROR),
        ("22012", PGSESS_DATA_ERROR),
        ("23505", PGSESS_INTEGRITY_ERROR),
        ("24000", PGSESS_INTERNAL_ERROR),
        ("25001", PGSESS_INTERNAL_ERROR),
        ("26000", PGSESS_OPERATIONAL_ERROR),
        ("27000", PGSESS_OPERATIONAL_ERROR),
        ("28000", PGSESS_OPERATIONAL_ERROR),
        ("2B000", PGSESS_INTERNAL_ERROR),
        ("2D000", PGSESS_INTERNAL_ERROR),
        ("2F000", PGSESS_INTERNAL_ERROR),
        ("34000", PGSESS_OPERATIONAL_ERROR),
        ("38000", PGSESS_INTERNAL_ERROR),
        ("39000", PGSESS_INTERNAL_ERROR),
        ("3B000", PGSESS_INTERNAL_ERROR),
        ("3D000", PGSESS_PROGRAMMING_ERROR),
        ("3F000", PGSESS_PROGRAMMING_ERROR),
        ("40001", PGSESS_TRANSACTION_ROLLBACK),
        ("40P01", PGSESS_TRANSACTION_ROLLBACK),
        ("42601", PGSESS_PROGRAMMING_ERROR),
        ("44000", PGSESS_PROGRAMMING_ERROR),
        ("53300", PGSESS_OPERATIONAL_ERROR),
        ("54000", PGSESS_OPERATIONAL_ERROR),
        ("55000", PGSESS_OPERATIONAL_ERROR),
        ("57000", PGSESS_OPERATIONAL_ERROR),
        ("57014", PGSESS_QUERY_CANCELED),
        ("58000", PGSESS_OPERATIONAL_ERROR),
        ("F0000", PGSESS_INTERNAL_ERROR),
        ("HV000", PGSESS_OPERATIONAL_ERROR),
        ("P0001", PGSESS_INTERNAL_ERROR),
        ("XX000", PGSESS_INTERNAL_ERROR),
        ("01000", PGSESS_DATABASE_ERROR),
        ("02000", PGSESS_DATABASE_ERROR),
        ("0B000", PGSESS_DATABASE_ERROR),
        ("ZZ999", PGSESS_DATABASE_ERROR),
    ];
    for (state, code) in table {
        let sql = format!(
            "DO $$BEGIN RAISE EXCEPTION 'raised %', '{state}' USING ERRCODE = '{state}', DETAIL = 'd-{state}', HINT = 'h-{state}'; END$$"
        );
        let e = s.query(&sql, &[]).err().unwrap_or_else(|| panic!("{state} raised nothing"));
        assert_eq!((e.code, e.sqlstate()), (code, Some(state)), "{state}: {e}");
        assert_eq!(e.message, format!("raised {state}"));
        assert_eq!(e.detail(), Some(format!("d-{state}").as_str()));
        assert_eq!(e.hint(), Some(format!("h-{state}").as_str()));
    }
    // Real server errors, not only raised ones; the connection stays usable after each.
    for (sql, code, state) in [
        ("SELEC 1", PGSESS_PROGRAMMING_ERROR, "42601"),
        ("SELECT 1/0", PGSESS_DATA_ERROR, "22012"),
        ("SELECT * FROM no_such_table", PGSESS_PROGRAMMING_ERROR, "42P01"),
        ("SET statement_timeout = 50; SELECT pg_sleep(2)", PGSESS_QUERY_CANCELED, "57014"),
    ] {
        let e = s.query(sql, &[]).err().unwrap();
        assert_eq!((e.code, e.sqlstate()), (code, Some(state)), "{sql}: {e}");
    }
    s.query("SET statement_timeout = 0", &[]).unwrap();
    s.query("SET statement_timeout = 0", &[]).unwrap();
    // Empty statements and parameter count mistakes are explained, not sent as garbage.
    assert_eq!(s.query("", &[]).err().unwrap().code, PGSESS_PROGRAMMING_ERROR);
    let e = s.query("SELECT $1::int + $2::int", &[Some(b"1")]).err().unwrap();
    assert_eq!(e.code, PGSESS_INTERFACE_ERROR, "{e}");
    assert!(e.message.contains("2 parameter(s) but 1"), "{e}");
    assert_eq!(s.query("SELECT 1", &[]).unwrap().set.value(0, 0), Some(&b"1"[..]));
}

/// COPY ... FROM STDIN is refused on every path, and the connection stays in step: the next
/// statement gets its own answer (a Sync too many after a simple Query's CopyFail once left the
/// connection one reply behind).
#[test]
fn copy_from_stdin_is_refused_and_the_connection_stays_in_step() {
    use pgsess::conn::{BatchStatement, Param};
    let mut o = SessionOptions {
        db_url: Some(format!("{}?application_name=copy_in_step", support::shared().uri())),
        ..Default::default()
    };
    o.set_pool_max_size(1).unwrap();
    let s = Session::open("x", &o).unwrap();
    drop(s.query("CREATE TABLE IF NOT EXISTS copy_in_step (i int)", &[]).unwrap());
    let copy = "COPY copy_in_step FROM STDIN";
    let next = |n: &str| {
        let sql = format!("SELECT {n}");
        let r = s.query(&sql, &[]).unwrap();
        assert_eq!(r.set.value(0, 0), Some(n.as_bytes()), "after a refused COPY, {sql} got another answer");
    };
    let refused = |r: pgsess::Result<Box<pgsess::Results>>| {
        let e = r.expect_err("COPY FROM STDIN must be refused");
        assert_eq!(e.code, Code::PGSESS_NOT_SUPPORTED_ERROR, "{e:?}");
    };

    refused(s.query(copy, &[])); // simple protocol
    next("41");
    next("42");
    refused(s.query_params(copy, &[], &[] as &[Param<'_>])); // extended protocol
    next("43");
    refused(s.query(&format!("SELECT 1; {copy}; SELECT 2"), &[])); // within a multi-statement string
    next("44");
    refused(s.query_stream(copy, &[], 10).map(|_| unreachable!("a stream of COPY FROM STDIN")));
    next("45");

    // In a transaction: the statement fails and aborts it, exactly once.
    let tx = s.begin().unwrap();
    refused(tx.query(copy, &[]));
    let e = tx.query("SELECT 46", &[]).expect_err("the transaction is aborted");
    assert_eq!(e.sqlstate(), Some("25P02"), "{e:?}");
    tx.rollback();
    next("47");

    // In a batch the answers of later statements cannot be matched up: the batch fails as a
    // whole and the connection is replaced.
    let batch = [
        BatchStatement { sql: "SELECT 1".into(), params: vec![] },
        BatchStatement { sql: copy.into(), params: vec![] },
        BatchStatement { sql: "SELECT 3".into(), params: vec![] },
    ];
    match s.batch(&batch) {
        Err(e) => assert_eq!(e.code, Code::PGSESS_NOT_SUPPORTED_ERROR, "{e:?}"),
        Ok(outcomes) => panic!("a batch with COPY FROM STDIN succeeded: {} outcomes", outcomes.len()),
    }
    next("48");
    next("49");
    drop(s.query("DROP TABLE copy_in_step", &[]).unwrap());
}
