//! Binary results (`Session::query_binary`, `pgsess_query_binary`): every value of the
//! fidelity table comes back as exactly the bytes the server sends (checked against an
//! independent client, the `postgres` crate, which reads every column in binary); every typed
//! getter gives the same answer for a binary result as for the text one; `get_text` on a binary
//! value equals the server's text for each type it renders, and refuses the others saying why.

mod support;

use pgsess::conn::Param;
use pgsess::rows::typed::{oid, GetError};
use pgsess::rows::FORMAT_BINARY;
use pgsess::{Results, Session, SessionOptions};
use postgres::types::{FromSql, Type};
use support::fidelity::{setup, EXPRESSIONS};

/// A session on a pool of its own (tests run in parallel; `SET` must not cross between them).
fn session(pool: u32, test: &str) -> Session {
    let uri = format!("{}?application_name={test}", support::shared().uri());
    let mut o = SessionOptions { db_url: Some(uri), ..Default::default() };
    o.set_pool_max_size(pool).unwrap();
    Session::open("x", &o).unwrap()
}

/// A column's raw binary value as the `postgres` crate received it, whatever its type.
struct Raw(Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Raw, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }
    fn from_sql_null(_: &Type) -> Result<Raw, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The type OIDs whose binary values `get_text` renders as the server's text (under DateStyle
/// ISO and TimeZone UTC, with the default extra_float_digits and bytea_output).
const RENDERED: &[u32] = &[
    oid::INT2,
    oid::INT4,
    oid::INT8,
    oid::OID,
    oid::XID,
    oid::CID,
    oid::XID8,
    oid::BOOL,
    oid::TEXT,
    oid::VARCHAR,
    oid::BPCHAR,
    oid::NAME,
    oid::CHAR,
    oid::JSON,
    oid::JSONB,
    oid::JSONPATH,
    oid::UUID,
    oid::NUMERIC,
    oid::FLOAT4,
    oid::FLOAT8,
    oid::BYTEA,
    oid::TIME,
    oid::TIMETZ,
    oid::DATE,
    oid::TIMESTAMP,
    oid::TIMESTAMPTZ,
];

/// The table's expressions whose type has a binary send function (aclitem has none: the
/// server refuses a binary result with it, for libpq too).
fn binary_expressions() -> &'static [&'static str] {
    static LIST: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        setup();
        let sendable = support::shared().psql_row(&format!(
            "SELECT {}",
            EXPRESSIONS
                .iter()
                .map(|e| format!("(SELECT typsend <> 0 FROM pg_type WHERE oid = pg_typeof({e}))"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let list: Vec<_> = EXPRESSIONS.iter().zip(&sendable).filter(|(_, ok)| *ok == "t").map(|(e, _)| *e).collect();
        assert_eq!(list.len(), EXPRESSIONS.len() - 1, "only aclitem lacks a send function");
        list
    })
}

fn select_all() -> String {
    format!("SELECT {}", binary_expressions().join(", "))
}

fn binary(s: &Session, sql: &str) -> Box<Results> {
    s.query_binary(sql, &[], &[]).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn every_value_is_the_bytes_the_server_sends() {
    setup();
    let s = session(2, "binary_bytes");
    let select = select_all();
    let ours = binary(&s, &select);
    let mut control = support::shared().control();
    let row = control.query_one(select.as_str(), &[]).unwrap();
    assert_eq!(ours.set.ncols(), binary_expressions().len());
    let mut diffs = Vec::new();
    for (i, expr) in binary_expressions().iter().enumerate() {
        let Raw(theirs) = row.get::<_, Raw>(i);
        let column = &ours.set.columns()[i];
        if column.format != FORMAT_BINARY {
            diffs.push(format!("{expr}: format {}", column.format));
        }
        if ours.set.value(0, i).map(<[u8]>::to_vec) != theirs {
            diffs.push(format!("{expr}: pgsess {:?} postgres crate {theirs:?}", ours.set.value(0, i)));
        }
        // Each value is followed by a NUL, as libpq's are.
        let with_nul = ours.set.value_with_nul(0, i).unwrap();
        assert_eq!(with_nul.last(), Some(&0), "{expr}");
        if column.type_oid != row.columns()[i].type_().oid() {
            diffs.push(format!("{expr}: type {} vs {}", column.type_oid, row.columns()[i].type_().oid()));
        }
    }
    assert!(diffs.is_empty(), "{} of {} values differ:\n{}", diffs.len(), binary_expressions().len(), diffs.join("\n"));
    // The same bytes as the types' send functions give, for a few (as hex text).
    drop(ours);
    let sends = s
        .query(
            "SELECT int4send(-2), int8send(9223372036854775807), float8send(0.1::float8), \
             numeric_send(-1234.5670), date_send('2024-02-29'), timestamptz_send('2024-07-01 12:34:56.789+02'), \
             uuid_send('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), boolsend(true), byteasend('\\x00ff'::bytea)",
            &[],
        )
        .unwrap();
    let b = binary(
        &s,
        "SELECT -2::int4, 9223372036854775807::int8, 0.1::float8, -1234.5670::numeric, '2024-02-29'::date, \
         '2024-07-01 12:34:56.789+02'::timestamptz, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, true, \
         '\\x00ff'::bytea",
    );
    for i in 0..sends.set.ncols() {
        let hex: String = b.set.value(0, i).unwrap().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(format!("\\x{hex}").as_bytes(), sends.set.value(0, i).unwrap(), "column {i}");
    }
}

/// Every getter's answer for one cell, printed so two can be compared (doubles by their bits,
/// every NaN alike).
fn getters(r: &Results, col: usize) -> Vec<(&'static str, String)> {
    let set = &r.set;
    let double = set.get_double(0, col).map(|d| if d.is_nan() { u64::MAX } else { d.to_bits() });
    let mut out = vec![
        ("int64", format!("{:?}", set.get_int64(0, col))),
        ("int32", format!("{:?}", set.get_int32(0, col))),
        ("double", format!("{double:?}")),
        ("bool", format!("{:?}", set.get_bool(0, col))),
        ("epoch_micros", format!("{:?}", set.get_epoch_micros(0, col))),
        ("uuid", format!("{:?}", set.get_uuid(0, col))),
    ];
    if set.columns()[col].type_oid == oid::BYTEA {
        out.push(("bytes", format!("{:?}", r.bytes(0, col))));
    }
    out
}

#[test]
fn every_getter_agrees_on_binary_and_text_results() {
    setup();
    let s = session(1, "binary_getters").pin().unwrap();
    let select = select_all();
    let mut diffs = Vec::new();
    let mut typed_ok = 0;
    // Settings that leave every text form readable (DateStyle ISO, extra_float_digits default).
    for settings in ["RESET ALL", "SET TimeZone = 'America/New_York'", "SET TimeZone = 'Asia/Kolkata'"] {
        s.query("RESET ALL", &[]).unwrap();
        s.query(settings, &[]).unwrap();
        let text = s.query(&select, &[]).unwrap();
        let bin = binary(&s, &select);
        for (i, expr) in binary_expressions().iter().enumerate() {
            let (t, b) = (getters(&text, i), getters(&bin, i));
            typed_ok += t.iter().filter(|(_, v)| v.starts_with("Ok")).count();
            for ((name, tv), (_, bv)) in t.iter().zip(&b) {
                if tv != bv {
                    diffs.push(format!("[{settings}] {expr}: {name}: text {tv} binary {bv}"));
                }
            }
        }
    }
    assert!(diffs.is_empty(), "{} getters differ:\n{}", diffs.len(), diffs.join("\n"));
    assert!(typed_ok > 150, "only {typed_ok} typed values were read");

    // Binary date/time values read under any DateStyle, and equal what ISO text gives.
    s.query("RESET ALL", &[]).unwrap();
    let iso = s.query(&select, &[]).unwrap();
    s.query("SET DateStyle = 'German'", &[]).unwrap();
    let german = binary(&s, &select);
    for (i, expr) in binary_expressions().iter().enumerate() {
        assert_eq!(german.set.get_epoch_micros(0, i), iso.set.get_epoch_micros(0, i), "{expr}");
    }
    drop((iso, german));

    // NULLs, several rows, parameters of both formats and declared types.
    let r = s
        .query_binary(
            "SELECT i, i::float8 / 4, NULL::int4, $1::bytea, $2 + i FROM generate_series(1, 3) i",
            &[0, 20],
            &[Param { value: Some(&[0, 1, 0]), binary: true }, Param { value: Some(b"40"), binary: false }],
        )
        .unwrap();
    assert_eq!(r.set.nrows(), 3);
    for row in 0..3 {
        assert_eq!(r.set.get_int32(row, 0), Ok(row as i32 + 1));
        assert_eq!(r.set.get_double(row, 1), Ok((row as f64 + 1.0) / 4.0));
        assert_eq!(
            (r.set.get_int64(row, 2), r.set.value(row, 2), r.set.is_null(row, 2)),
            (Err(GetError::Null), None, true)
        );
        assert_eq!(r.bytes(row, 3), Ok(&[0u8, 1, 0][..]));
        assert_eq!(r.set.value(row, 4), Some(&(41 + row as i64).to_be_bytes()[..]), "int8 sent as 8 bytes");
    }
    assert_eq!(r.set.get_int64(3, 0), Err(GetError::OutOfRange));
    assert_eq!(r.set.get_int64(0, 9), Err(GetError::OutOfRange));
    drop(r);
    // int8 and oid into 32 bits: the ones that fit, else an overflow, in both formats.
    for sql in ["SELECT 2147483647::int8, 2147483648::int8, 7::oid, 4294967295::oid, (-2147483648)::int8"] {
        let (t, b) = (s.query(sql, &[]).unwrap(), binary(&s, sql));
        for r in [&t, &b] {
            assert_eq!(r.set.get_int32(0, 0), Ok(i32::MAX));
            assert_eq!(r.set.get_int32(0, 1), Err(GetError::Overflow));
            assert_eq!(r.set.get_int32(0, 2), Ok(7));
            assert_eq!(r.set.get_int32(0, 3), Err(GetError::Overflow));
            assert_eq!(r.set.get_int32(0, 4), Ok(i32::MIN));
        }
    }
    // A statement error is an error, and the connection goes on.
    assert!(s.query_binary("SELECT 1/0", &[], &[]).is_err());
    assert_eq!(binary(&s, "SELECT 5").set.get_int64(0, 0), Ok(5));
}

#[test]
fn get_text_renders_the_servers_text_or_says_why_not() {
    setup();
    let s = session(1, "binary_text").pin().unwrap();
    let select = select_all();
    let mut diffs = Vec::new();
    let mut rendered = 0;
    for settings in ["SET TimeZone = 'UTC'", "SET TimeZone = 'Etc/GMT'; SET DateStyle = 'ISO, DMY'"] {
        s.query("RESET ALL", &[]).unwrap();
        s.query(settings, &[]).unwrap();
        let text = s.query(&select, &[]).unwrap();
        let bin = binary(&s, &select);
        for (i, expr) in binary_expressions().iter().enumerate() {
            let want = std::str::from_utf8(text.set.value(0, i).unwrap()).unwrap();
            assert_eq!(text.set.get_text(0, i).as_deref(), Ok(want), "a text value is itself");
            let ty = bin.set.columns()[i].type_oid;
            match bin.set.get_text(0, i) {
                Ok(got) if got == want && RENDERED.contains(&ty) => rendered += 1,
                Ok(got) => diffs.push(format!("[{settings}] {expr} (type {ty}): rendered {got:?}, server {want:?}")),
                Err(e) if RENDERED.contains(&ty) => diffs.push(format!("[{settings}] {expr}: refused: {e:?}")),
                Err(e) => {
                    assert_eq!(e.error, GetError::Unsupported, "{expr}");
                    assert!(e.message.contains("pgsess_query_params"), "{expr}: {}", e.message);
                }
            }
            // The results handle's text: the same, NUL-terminated, kept with the results.
            if let Ok(t) = bin.text(0, i) {
                assert_eq!(&t[..t.len() - 1], bin.set.get_text(0, i).unwrap().as_bytes());
                assert_eq!(t.last(), Some(&0));
                assert_eq!(bin.text(0, i).unwrap().as_ptr(), t.as_ptr(), "rendered once");
            }
        }
    }
    assert!(diffs.is_empty(), "{} texts differ:\n{}", diffs.len(), diffs.join("\n"));
    assert!(rendered >= 2 * 60, "only {rendered} values rendered");

    // Settings the text depends on: refused, saying which, unless the value is ±infinity.
    let refused = |sql: &str| {
        let r = binary(&s, sql);
        let e = r.set.get_text(0, 0).unwrap_err();
        assert_eq!(e.error, GetError::Unsupported, "{sql}");
        e.message.into_owned()
    };
    s.query("RESET ALL", &[]).unwrap();
    s.query("SET TimeZone = 'Europe/London'", &[]).unwrap();
    assert!(refused("SELECT '2024-07-01 00:00+00'::timestamptz").contains("TimeZone"));
    assert_eq!(binary(&s, "SELECT 'infinity'::timestamptz").set.get_text(0, 0).as_deref(), Ok("infinity"));
    assert_eq!(
        binary(&s, "SELECT '2024-07-01 12:00'::timestamp").set.get_text(0, 0).as_deref(),
        Ok("2024-07-01 12:00:00")
    );
    s.query("SET DateStyle = 'German'", &[]).unwrap();
    assert!(refused("SELECT '2024-07-01'::date").contains("DateStyle"));
    assert!(refused("SELECT '2024-07-01 12:00'::timestamp").contains("DateStyle"));
    assert_eq!(binary(&s, "SELECT '-infinity'::date").set.get_text(0, 0).as_deref(), Ok("-infinity"));
    assert!(refused("SELECT '1 day'::interval").contains("type OID 1186"));
    assert_eq!(binary(&s, "SELECT NULL::int4").set.get_text(0, 0).unwrap_err().error, GetError::Null);
    s.query("RESET ALL", &[]).unwrap();
}

/// Random floats, numerics and timestamps: each binary value rendered equals the server's text,
/// and the getters agree.
#[test]
fn many_values_render_exactly() {
    let s = session(1, "binary_many").pin().unwrap();
    s.query("SET TimeZone = 'UTC'", &[]).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut f8 = Vec::new();
    let mut f4 = Vec::new();
    let mut nums = Vec::new();
    while f8.len() < 4000 {
        let d = f64::from_bits(next());
        if d.is_finite() {
            f8.push(format!("'{d:e}'"));
        }
        let f = f32::from_bits(next() as u32);
        if f.is_finite() {
            f4.push(format!("'{f:e}'"));
        }
        let digits = next() % 40 + 1;
        let mut n: String = (0..digits).map(|_| char::from(b'0' + (next() % 10) as u8)).collect();
        let point = (next() % (digits + 1)) as usize;
        if point < n.len() {
            n.insert(point, '.');
        }
        let sign = if next() % 2 == 0 { "-" } else { "" };
        nums.push(format!("'{sign}{n}e{}'", (next() % 60) as i64 - 30));
    }
    // Small and round values, where the fixed/exponent layout switches.
    for e in -8..20 {
        for m in ["1", "1.5", "9.999", "123456789012345678"] {
            f8.push(format!("'{m}e{e}'"));
            f4.push(format!("'{m}e{e}'"));
        }
    }
    let list = |v: &[String], ty: &str| format!("SELECT v::{ty} FROM unnest(ARRAY[{}]) v", v.join(","));
    let mut checked = 0;
    for sql in [
        list(&f8, "float8"),
        list(&f4, "float4"),
        list(&nums, "numeric"),
        "SELECT '2000-01-01'::timestamp + (random() * 1e17 - 5e16)::int8 * interval '1 microsecond' \
         FROM generate_series(1, 3000)"
            .into(),
        "SELECT ('2000-01-01'::timestamp + (random() * 1e17 - 5e16)::int8 * interval '1 microsecond')::timestamptz \
         FROM generate_series(1, 3000)"
            .into(),
        "SELECT '2000-01-01'::date + (random() * 4000000 - 2000000)::int FROM generate_series(1, 3000)".into(),
        "SELECT (random() * 86400e6)::int8 * interval '1 microsecond' + '00:00'::time FROM generate_series(1, 3000)"
            .into(),
    ] {
        // One statement, two formats: a table keeps the random values the same for both.
        s.query("DROP TABLE IF EXISTS pg_temp.many", &[]).unwrap();
        s.query(&format!("CREATE TEMP TABLE many AS {sql}"), &[]).unwrap();
        let text = s.query("SELECT * FROM many", &[]).unwrap();
        let bin = binary(&s, "SELECT * FROM many");
        assert_eq!(text.set.nrows(), bin.set.nrows());
        for row in 0..text.set.nrows() {
            let want = std::str::from_utf8(text.set.value(row, 0).unwrap()).unwrap();
            assert_eq!(bin.set.get_text(row, 0).as_deref(), Ok(want), "{}", &sql[..40]);
            let d = |r: &Results| r.set.get_double(row, 0).map(f64::to_bits);
            assert_eq!(d(&bin), d(&text), "{want}");
            assert_eq!(bin.set.get_epoch_micros(row, 0), text.set.get_epoch_micros(row, 0), "{want}");
            checked += 1;
        }
    }
    assert!(checked > 20_000, "{checked}");
}

#[test]
fn json_rows_of_binary_results_equal_the_text_ones() {
    let s = session(1, "binary_json").pin().unwrap();
    s.query("SET TimeZone = 'UTC'", &[]).unwrap();
    let sql = "SELECT 1 AS a, 'x' AS b, 2.50::numeric AS n, '{\"k\": [1]}'::jsonb AS j, NULL::text AS z, \
               'NaN'::float8 AS f, true AS t, '2024-07-01 00:00+00'::timestamptz AS ts";
    let text = s.query(sql, &[]).unwrap().set.to_json();
    assert_eq!(binary(&s, sql).set.to_json(), text);
    // A type whose text cannot be rendered: its binary bytes in hex.
    assert_eq!(
        binary(&s, "SELECT '1 day'::interval AS i").set.to_json(),
        r#"[{"i":"\\x00000000000000000000000100000000"}]"#
    );
}

/// Through the statement cache: one prepared statement serves text and binary calls alike, each
/// with its own result format.
#[test]
fn a_cached_statement_serves_both_formats() {
    let uri = format!("{}?application_name=binary_cache", support::shared().uri());
    let mut o = SessionOptions { db_url: Some(uri), ..Default::default() };
    o.set_pool_max_size(1).unwrap();
    o.set_statement_cache(8).unwrap();
    let s = Session::open("x", &o).unwrap();
    let sql = "SELECT $1::int4 * 2 AS n, 'x'::text AS t";
    for i in 0..6i32 {
        let v = i.to_string();
        let params = [Param { value: Some(v.as_bytes()), binary: false }];
        let r = if i % 2 == 0 { s.query_binary(sql, &[], &params) } else { s.query_params(sql, &[], &params) }.unwrap();
        let want_format = if i % 2 == 0 { FORMAT_BINARY } else { 0 };
        assert!(r.set.columns().iter().all(|c| c.format == want_format), "call {i}");
        assert_eq!(r.set.get_int32(0, 0), Ok(i * 2));
        assert_eq!(r.set.get_text(0, 1).as_deref(), Ok("x"));
        let want = if i % 2 == 0 { (i * 2).to_be_bytes().to_vec() } else { (i * 2).to_string().into_bytes() };
        assert_eq!(r.set.value(0, 0), Some(&want[..]));
    }
}

/// tests/c/binary.c compares the same table with libpq: its copy must be this one, line for line.
#[test]
fn the_c_test_has_the_same_fidelity_table() {
    let read = |path: &str| std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let between = |text: &str, start: &str, end: &str| {
        let from = text.find(start).unwrap_or_else(|| panic!("no {start:?}")) + start.len();
        let to = from + text[from..].find(end).unwrap_or_else(|| panic!("no {end:?}"));
        text[from..to].trim_matches('\n').to_string()
    };
    let rust = between(&read("tests/support/fidelity.rs"), "pub const EXPRESSIONS: &[&str] = &[", "];");
    let c = between(&read("tests/c/binary.c"), "/* BEGIN FIDELITY TABLE */", "/* END FIDELITY TABLE */");
    assert!(rust == c, "tests/c/binary.c's table differs from tests/support/fidelity.rs's: copy it again");
    assert!(rust.lines().count() > EXPRESSIONS.len());
}
