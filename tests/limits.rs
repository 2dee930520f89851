//! Input at and past the protocol's limits gets a correct answer or a clear error, never a crash.

mod support;

use pgsess::{Code, Session, SessionOptions};

fn session() -> Session {
    let mut o = SessionOptions {
        db_url: Some(format!("{}?application_name=limits", support::shared().uri())),
        ..Default::default()
    };
    o.set_pool_max_size(2).unwrap();
    Session::open("x", &o).unwrap()
}

#[test]
fn sixty_five_thousand_parameters_and_one_more() {
    let s = session();
    let n = 65_535usize;
    let placeholders: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT array_length(ARRAY[{}]::int[], 1), (ARRAY[{}]::int[])[{n}]",
        placeholders.join(","),
        placeholders.join(",")
    );
    let values: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let params: Vec<Option<&[u8]>> = values.iter().map(|v| Some(v.as_bytes())).collect();
    let r = s.query(&sql, &params).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"65535"[..]));
    assert_eq!(r.set.value(0, 1), Some(&b"65535"[..]));
    drop(r);
    let mut too_many = params.clone();
    too_many.push(Some(b"1"));
    let e = s.query(&sql, &too_many).unwrap_err();
    assert_eq!(e.code, Code::PGSESS_INTERFACE_ERROR, "{e}");
    assert!(e.message.contains("too many parameters"), "{e}");
}

#[test]
fn a_hundred_megabyte_parameter() {
    let s = session();
    let big = vec![b'x'; 100 * 1024 * 1024];
    let r = s.query("SELECT length($1), md5($1) = md5(repeat('x', 104857600))", &[Some(&big)]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"104857600"[..]));
    assert_eq!(r.set.value(0, 1), Some(&b"t"[..]));
    drop(r);
    // And back: a 100 MB value in a result.
    let r = s.query("SELECT repeat('y', 104857600)", &[]).unwrap();
    assert_eq!(r.set.value(0, 0).map(<[u8]>::len), Some(104_857_600));
}

#[test]
fn a_thousand_columns_and_too_many() {
    let s = session();
    let cols: Vec<String> = (0..1000).map(|i| format!("{i} AS c{i}")).collect();
    let r = s.query(&format!("SELECT {}", cols.join(", ")), &[]).unwrap();
    assert_eq!(r.set.ncols(), 1000);
    assert_eq!(r.set.value(0, 999), Some(&b"999"[..]));
    assert_eq!(r.set.column_index(b"c500"), Some(500));
    drop(r);
    let cols: Vec<String> = (0..1700).map(|i| format!("{i} AS c{i}")).collect();
    let e = s.query(&format!("SELECT {}", cols.join(", ")), &[]).unwrap_err();
    assert_eq!(e.sqlstate(), Some("54011"), "{e}");
    assert_eq!(s.query("SELECT 1", &[]).unwrap().set.value(0, 0), Some(&b"1"[..]));
}

#[test]
fn names_and_text_that_try_to_escape() {
    let s = session();
    // callproc never splices: a name carrying SQL is just a (missing) function.
    let e = s.callproc("now(); DROP TABLE x; --", &[]).unwrap_err();
    assert_eq!(e.sqlstate(), Some("42883"), "{e}");
    // Parameters are values, never SQL.
    let r = s.query("SELECT $1::text", &[Some(b"'); DROP TABLE x; --")]).unwrap();
    assert_eq!(r.set.value(0, 0), Some(&b"'); DROP TABLE x; --"[..]));
}
