//! Values: every type as the server writes it. Each expression of the table is read through
//! pgsess and through psql (libpq) under each combination of session settings; the two texts
//! must be equal byte for byte, and the column type OID must be the expression's type.
//! Then typed getters, row access, JSON, the seed's Results members, PQexecParams-shaped
//! parameters and streaming.

mod support;

use pgsess::conn::Param;
use pgsess::rows::typed::GetError;
use pgsess::{Code, Session, SessionOptions};
use support::fidelity::{setup, EXPRESSIONS};

/// A session on a pool of its own (tests run in parallel; `SET` must not cross between them).
fn session(pool: u32, test: &str) -> Session {
    let uri = format!("{}?application_name={test}", support::shared().uri());
    let mut o = SessionOptions { db_url: Some(uri), ..Default::default() };
    o.set_pool_max_size(pool).unwrap();
    Session::open("x", &o).unwrap()
}

/// Session settings the table runs under (applied with SET on the session's one connection).
const SETTINGS: &[&str] = &[
    "RESET ALL",
    "SET TimeZone = 'America/New_York'",
    "SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'SQL, DMY'",
    "SET TimeZone = 'Australia/Lord_Howe'; SET DateStyle = 'Postgres, MDY'",
    "SET DateStyle = 'German'; SET IntervalStyle = 'sql_standard'; SET extra_float_digits = 0",
    "SET bytea_output = 'escape'; SET IntervalStyle = 'iso_8601'; SET extra_float_digits = -15",
    "SET IntervalStyle = 'postgres_verbose'; SET extra_float_digits = 3; SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, DMY'; SET TimeZone = 'Pacific/Chatham'; SET extra_float_digits = 2",
    "SET TimeZone = 'America/St_Johns'; SET DateStyle = 'SQL, MDY'; SET IntervalStyle = 'postgres'",
    "SET DateStyle = 'Postgres, DMY'; SET TimeZone = 'Europe/Berlin'; SET bytea_output = 'hex'",
];

#[test]
fn every_value_equals_libpq_under_every_setting() {
    setup();
    assert!(EXPRESSIONS.len() >= 120 && SETTINGS.len() >= 8);
    let c = support::shared();
    // Pinned: SET applies to every later statement of the session, as on a libpq connection.
    let s = session(1, "fidelity").pin().unwrap();
    let select = format!("SELECT {}", EXPRESSIONS.join(", "));
    let type_oids = c.psql_row(&format!(
        "SELECT {}",
        // RowDescription (and so PQftype) names a domain's base type.
        EXPRESSIONS
            .iter()
            .map(|e| format!(
                "(SELECT CASE typtype WHEN 'd' THEN typbasetype ELSE oid END FROM pg_type WHERE oid = pg_typeof({e}))"
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut diffs = Vec::new();
    for settings in SETTINGS {
        s.query("RESET ALL", &[]).unwrap();
        s.query(settings, &[]).unwrap();
        let ours = s.query(&select, &[]).unwrap_or_else(|e| panic!("{settings}: {e}"));
        let libpq = c.psql_row(&format!("{settings}; {select}"));
        assert_eq!(libpq.len(), EXPRESSIONS.len());
        for (i, expr) in EXPRESSIONS.iter().enumerate() {
            let v = String::from_utf8(ours.set.value(0, i).expect("not NULL").to_vec()).unwrap();
            if v != libpq[i] {
                diffs.push(format!("[{settings}] {expr}: pgsess {v:?} libpq {:?}", libpq[i]));
            }
            if ours.set.columns()[i].type_oid.to_string() != type_oids[i] {
                diffs.push(format!(
                    "{expr}: type oid {} but pg_typeof says {}",
                    ours.set.columns()[i].type_oid,
                    type_oids[i]
                ));
            }
        }
    }
    let total = EXPRESSIONS.len() * SETTINGS.len();
    assert!(diffs.is_empty(), "{} of {total} values differ:\n{}", diffs.len(), diffs.join("\n"));
    eprintln!(
        "fidelity: {} expressions x {} settings = {total} values equal to libpq",
        EXPRESSIONS.len(),
        SETTINGS.len()
    );
}

#[test]
fn typed_getters_convert_by_type_and_refuse_what_does_not_fit() {
    setup();
    let s = session(2, "getters");
    let r = s
        .query(
            "SELECT 42::int2, -7::int8, 4294967295::oid, 2.5::float4, 1e308::float8, 12.25::numeric, \
             'NaN'::numeric, true, '\\x00ff00'::bytea, 'text'::text, NULL::int4, \
             '2000-01-01 02:00:00.5+02'::timestamptz, '1970-01-02'::date, 'infinity'::timestamp, \
             1e400::numeric, '99999999999999999999'::numeric",
            &[],
        )
        .unwrap();
    let set = &r.set;
    assert_eq!(set.get_int64(0, 0), Ok(42));
    assert_eq!(set.get_int64(0, 1), Ok(-7));
    assert_eq!(set.get_int64(0, 2), Ok(4_294_967_295));
    assert_eq!(set.get_double(0, 3), Ok(2.5));
    assert_eq!(set.get_double(0, 4), Ok(1e308));
    assert_eq!(set.get_double(0, 5), Ok(12.25));
    assert!(set.get_double(0, 6).unwrap().is_nan());
    assert_eq!(set.get_bool(0, 7), Ok(true));
    assert_eq!(r.bytes(0, 8), Ok(&[0u8, 255, 0][..]));
    assert_eq!(r.bytes(0, 9), Ok(&b"text"[..]));
    assert_eq!(set.get_epoch_micros(0, 11), Ok(946_684_800_500_000));
    assert_eq!(set.get_epoch_micros(0, 12), Ok(86_400_000_000));
    assert_eq!(set.get_epoch_micros(0, 13), Ok(i64::MAX));
    // Refusals, each distinct.
    assert_eq!(set.get_int64(0, 10), Err(GetError::Null));
    assert_eq!(set.get_int64(0, 9), Err(GetError::TypeMismatch));
    assert_eq!(set.get_bool(0, 0), Err(GetError::TypeMismatch));
    assert_eq!(set.get_int64(1, 0), Err(GetError::OutOfRange));
    assert_eq!(set.get_int64(0, 99), Err(GetError::OutOfRange));
    assert_eq!(set.get_double(0, 14), Err(GetError::Overflow));
    assert_eq!(set.get_int64(0, 15), Err(GetError::TypeMismatch), "numeric is not an integer type");
    // A DateStyle other than ISO is reported, not misread.
    let one = session(1, "getters_datestyle").pin().unwrap();
    one.query("SET DateStyle = 'German'", &[]).unwrap();
    let g = one.query("SELECT '2024-07-01'::date", &[]).unwrap();
    assert_eq!(g.set.get_epoch_micros(0, 0), Err(GetError::Unsupported));
    drop(g); // results hold the pool's one connection until dropped
    one.query("RESET DateStyle", &[]).unwrap();
}

#[test]
fn seed_results_members_and_json() {
    setup();
    let s = session(2, "seed");
    let r = s
        .query("SELECT 1 AS a, 'x' AS b, 2 AS a, '{\"k\": [1]}'::jsonb AS j, NULL::text AS n, 'NaN'::float8 AS f", &[])
        .unwrap();
    assert_eq!(r.set.to_json(), r#"[{"a":2,"b":"x","j":{"k": [1]},"n":null,"f":"NaN"}]"#);
    assert_eq!(r.set.command_tag, "SELECT 1");
    assert_eq!(r.set.count(), 1);
    drop(r);
    let r = s.query("CREATE TEMP TABLE seed_t (x int)", &[]).unwrap();
    assert_eq!((r.set.command_tag.as_str(), r.set.count(), r.set.to_json()), ("CREATE TABLE", -1, "[]".to_string()));
    drop(r);
    let r = s.query("SELECT 1 WHERE false", &[]).unwrap();
    assert_eq!((r.set.count(), r.set.to_json(), r.set.row_json(0)), (0, "[]".to_string(), None));
    assert_eq!(r.sql(), "SELECT 1 WHERE false");
}

#[test]
fn pqexecparams_shape_binary_bytea_and_declared_types() {
    setup();
    let s = session(2, "params");
    let blob: &[u8] = &[0, 1, 0, 255, b'\\', 0];
    let r = s
        .query_params(
            "SELECT $1::bytea, length($1::bytea), pg_typeof($2)::text, $2 + 1, $3::text IS NULL",
            &[0, 20, 0],
            &[
                Param { value: Some(blob), binary: true },
                Param { value: Some(b"41"), binary: false },
                Param { value: None, binary: false },
            ],
        )
        .unwrap();
    assert_eq!(r.bytes(0, 0), Ok(blob));
    assert_eq!(r.set.value(0, 1), Some(&b"6"[..]));
    assert_eq!(r.set.value(0, 2), Some(&b"bigint"[..]), "the declared type is used");
    assert_eq!(r.set.value(0, 3), Some(&b"42"[..]));
    assert_eq!(r.set.value(0, 4), Some(&b"t"[..]));
    drop(r);
    // Binary int4 (network order) with its declared type.
    let r =
        s.query_params("SELECT $1 * 2", &[23], &[Param { value: Some(&7i32.to_be_bytes()), binary: true }]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"14"[..]));
    drop(r);
    // No parameters: still one statement on the extended protocol.
    assert_eq!(s.query_params("SELECT 1; SELECT 2", &[], &[]).err().unwrap().code, Code::PGSESS_PROGRAMMING_ERROR);
}

#[test]
fn streaming_holds_one_chunk_at_a_time() {
    setup();
    let s = session(1, "stream");
    let total = 250_000usize;
    let chunk = 1_000u32;
    let mut stream = s
        .query_stream(
            "SELECT i, repeat('x', 50) FROM generate_series(1, $1::int) i",
            &[Some(total.to_string().as_bytes())],
            chunk,
        )
        .unwrap();
    let (mut seen, mut chunks, mut max_bytes) = (0usize, 0usize, 0usize);
    while let Some(part) = stream.next_chunk().unwrap() {
        assert!(part.set.nrows() <= chunk as usize);
        for row in 0..part.set.nrows() {
            seen += 1;
            assert_eq!(part.set.value(row, 0), Some(seen.to_string().as_bytes()));
        }
        max_bytes = max_bytes.max(part.set.heap_bytes());
        chunks += 1;
    }
    assert_eq!((seen, chunks), (total, total / chunk as usize), "no empty trailing chunk");
    assert!(max_bytes < 512 * 1024, "a chunk held {max_bytes} bytes");
    drop(stream);
    // The connection is back and clean: a pool of one serves the next statement.
    assert_eq!(s.query("SELECT 5", &[]).unwrap().set.value(0, 0), Some(&b"5"[..]));

    // Abandoned half way: the rest is discarded, the connection reused.
    let mut stream = s.query_stream("SELECT generate_series(1, 100000)", &[], 100).unwrap();
    let first = stream.next_chunk().unwrap().unwrap();
    assert_eq!(first.set.nrows(), 100);
    drop(first);
    drop(stream);
    assert_eq!(s.query("SELECT 6", &[]).unwrap().set.value(0, 0), Some(&b"6"[..]));

    // An error in the first chunk fails the call; one in a later chunk fails that chunk.
    assert!(s.query_stream("SELECT 1/0", &[], 10).is_err());
    let mut stream = s.query_stream("SELECT 10 / (5 - i) FROM generate_series(1, 10) i", &[], 2).unwrap();
    assert_eq!(stream.next_chunk().unwrap().unwrap().set.nrows(), 2);
    let e = loop {
        match stream.next_chunk() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("division by zero was not reported"),
            Err(e) => break e,
        }
    };
    assert_eq!(e.code, Code::PGSESS_DATA_ERROR);
    assert!(stream.next_chunk().unwrap().is_none());
    drop(stream);
    assert_eq!(s.query("SELECT 7", &[]).unwrap().set.value(0, 0), Some(&b"7"[..]));
}

/// A connection reuses the columns of a RowDescription equal to its last one: the same
/// statement again shares them; any difference (name, type, count) gets its own.
#[test]
fn repeated_row_descriptions_share_columns_and_changed_ones_do_not() {
    let s = session(1, "row_description_cache");
    let columns = |sql: &str| {
        let r = s.query(sql, &[]).unwrap();
        let cols: Vec<(String, u32)> =
            r.set.columns().iter().map(|c| (c.name.to_string_lossy().into_owned(), c.type_oid)).collect();
        (r.set.columns().clone(), cols, r.set.value(0, 0).map(<[u8]>::to_vec))
    };
    let (a1, c1, v1) = columns("SELECT 1 AS a");
    let (a2, c2, v2) = columns("SELECT 2 AS a");
    assert!(std::sync::Arc::ptr_eq(&a1, &a2), "the same RowDescription again shares its columns");
    assert_eq!(
        (c1, v1, c2, v2),
        (vec![("a".into(), 23)], Some(b"1".to_vec()), vec![("a".into(), 23)], Some(b"2".to_vec()))
    );
    for (sql, want, value) in [
        ("SELECT 'x'::text AS a", vec![("a".to_owned(), 25)], &b"x"[..]),
        ("SELECT 3 AS b", vec![("b".to_owned(), 23)], &b"3"[..]),
        ("SELECT 4 AS a, 5 AS b", vec![("a".to_owned(), 23), ("b".to_owned(), 23)], &b"4"[..]),
        ("SELECT 6 AS a", vec![("a".to_owned(), 23)], &b"6"[..]),
    ] {
        let (_, cols, v) = columns(sql);
        assert_eq!((cols, v.as_deref()), (want, Some(value)), "{sql}");
    }
    // A statement without rows in between, then a stream's chunks: still right.
    s.query("SET application_name = 'row_description_cache2'", &[]).unwrap();
    let mut stream = s.query_stream("SELECT i AS a FROM generate_series(1, 5) i", &[], 2).unwrap();
    let mut seen = Vec::new();
    while let Some(chunk) = stream.next_chunk().unwrap() {
        assert_eq!(chunk.set.columns()[0].type_oid, 23);
        seen.extend((0..chunk.set.nrows()).map(|r| chunk.set.value(r, 0).unwrap().to_vec()));
    }
    assert_eq!(seen, ["1", "2", "3", "4", "5"].map(|v| v.as_bytes().to_vec()));
}

/// A small result's row storage goes back to its connection when freed and the next statement's
/// rows are written into it; values stay right whatever the shapes, sizes and NULLs, and a big
/// result's storage is not kept.
#[test]
fn freed_small_results_lend_their_storage_to_the_next_statement() {
    let s = session(1, "row_storage_reuse");
    let first_value_at = |sql: &str| {
        let r = s.query(sql, &[]).unwrap();
        r.set.value(0, 0).unwrap().as_ptr() as usize
    };
    let a = first_value_at("SELECT 'a'");
    let b = first_value_at("SELECT 'b'");
    assert_eq!(a, b, "the second result reuses the first one's storage");

    let wide = "x".repeat(3000);
    let cases: Vec<(String, Vec<Vec<Option<String>>>)> = vec![
        ("SELECT 1, NULL::text, 'two'".into(), vec![vec![Some("1".into()), None, Some("two".into())]]),
        ("SELECT i FROM generate_series(1, 3) i WHERE false".into(), vec![]),
        (
            "SELECT i, repeat('y', i) FROM generate_series(1, 40) i".into(),
            (1..=40).map(|i| vec![Some(i.to_string()), Some("y".repeat(i))]).collect(),
        ),
        (format!("SELECT '{wide}'"), vec![vec![Some(wide.clone())]]),
        ("SELECT i FROM generate_series(1, 20000) i".into(), (1..=20000).map(|i| vec![Some(i.to_string())]).collect()),
        ("SELECT NULL, NULL".into(), vec![vec![None, None]]),
        ("SELECT 'c'".into(), vec![vec![Some("c".into())]]),
    ];
    for _ in 0..2 {
        for (sql, want) in &cases {
            let r = s.query(sql, &[]).unwrap();
            let got: Vec<Vec<Option<String>>> = (0..r.set.nrows())
                .map(|row| {
                    (0..r.set.ncols())
                        .map(|col| r.set.value(row, col).map(|v| String::from_utf8(v.to_vec()).unwrap()))
                        .collect()
                })
                .collect();
            drop(r);
            assert!(got == *want, "{sql}: rows differ");
            assert!(s.query("SELECT 1/0", &[]).is_err(), "a failed statement in between");
        }
    }
}
