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
