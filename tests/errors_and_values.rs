//! Errors are classified by SQLSTATE class as psycopg2 does, with their fields; values are the
//! server's text, byte for byte what libpq gives (checked against psql, which uses libpq).

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

/// (expression, settings) pairs covering the types the core issue lists, compared with libpq.
const EXPRESSIONS: &[&str] = &[
    "1::int2",
    "(-32768)::int2",
    "2147483647::int4",
    "(-9223372036854775808)::int8",
    "4294967295::oid",
    "1.5::float4",
    "0.1::float4",
    "'NaN'::float4",
    "'-Infinity'::float8",
    "3.141592653589793::float8",
    "1e300::float8",
    "1e-310::float8",
    "123456789012345678901234567890.000000000001::numeric",
    "'NaN'::numeric",
    "(-0.00)::numeric(5,2)",
    "true",
    "false",
    "'héllo wörld ✓'::text",
    "''::text",
    "'a\"b\\c'::varchar(10)",
    "'ab'::char(5)",
    "'pg_class'::name",
    "'\\x00ff10'::bytea",
    "convert_to('quote''s', 'UTF8')",
    "'2024-02-29'::date",
    "'4713-01-01 BC'::date",
    "'infinity'::date",
    "'23:59:59.999999'::time",
    "'2024-07-01 12:34:56.789'::timestamp",
    "'2024-07-01 12:34:56.789+02'::timestamptz",
    "'2024-01-15 03:00:00+00'::timestamptz",
    "'-infinity'::timestamptz",
    "'1 year 2 mons 3 days 04:05:06.7'::interval",
    "'-1 day -00:00:01'::interval",
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
    "'{\"a\": [1, 2.50, null], \"b\": \"x\"}'::json",
    "'{\"a\": [1, 2.50, null], \"b\": \"x\"}'::jsonb",
    "ARRAY[1,2,NULL]::int4[]",
    "ARRAY['a b','c\"d',NULL,'']::text[]",
    "ARRAY[1.5,NULL]::float8[]",
    "ARRAY['2024-01-01 00:00:00+00']::timestamptz[]",
    "ARRAY[true,false]",
    "ARRAY['\\x01'::bytea]",
    "'{}'::int[]",
];

const SETTINGS: &[&str] = &[
    "SET TimeZone = 'UTC'",
    "SET TimeZone = 'America/New_York'",
    "SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'SQL, DMY'",
    "SET DateStyle = 'German'; SET IntervalStyle = 'sql_standard'; SET extra_float_digits = 0",
    "SET bytea_output = 'escape'; SET IntervalStyle = 'iso_8601'; SET extra_float_digits = -3",
];

#[test]
fn values_equal_libpq_text_under_session_settings() {
    let c = support::shared();
    // Pool of one: SET applies to the session's one connection, as in the seed's Session.
    let s = session(1);
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for settings in SETTINGS {
        s.query("RESET ALL", &[]).unwrap();
        s.query(settings, &[]).unwrap();
        for expr in EXPRESSIONS {
            let sql = format!("SELECT {expr}");
            let ours = s.query(&sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let ours = String::from_utf8(ours.set.value(0, 0).unwrap().to_vec()).unwrap();
            let libpq = c.psql(&format!("{settings}; {sql}"));
            if ours != libpq {
                mismatches.push(format!("{settings} | {expr}: pgsess {ours:?} libpq {libpq:?}"));
            }
            compared += 1;
        }
    }
    assert!(mismatches.is_empty(), "{} of {compared} differ:\n{}", mismatches.len(), mismatches.join("\n"));
    // Column types are the server's OIDs, as PQftype gives them.
    let r = s.query("SELECT 1::int2, 1::int8, 't'::bool, 'x'::text, now(), '{}'::jsonb, NULL::uuid", &[]).unwrap();
    let oids: Vec<u32> = r.set.columns.iter().map(|c| c.type_oid).collect();
    assert_eq!(oids, vec![21, 20, 16, 25, 1184, 3802, 2950]);
    assert!(r.set.is_null(0, 6) && r.set.value(0, 6).is_none());
}
