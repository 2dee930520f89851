//! A `pgsess::ResultSet` built from fuzz data through its public methods (`begin_rows`, `push_row`,
//! `push_raw_row`, `command_tag`), then read every way the C API reads it: `to_json`, `row_json`,
//! `count`, `rows_affected`, the typed getters, `Results::bytes` and `decode_bytea`.
//!
//! Properties:
//! - nothing panics;
//! - the arena gives back exactly the values pushed (a model is kept alongside), NULL as NULL,
//!   each value followed by its NUL, and `push_raw_row` accepts exactly the well-formed rows and
//!   appends nothing otherwise;
//! - getters report `OutOfRange` exactly for indexes out of range and `Null` exactly for NULL;
//! - the JSON is always valid JSON, whatever the cells and column names hold (invalid UTF-8,
//!   json cells that are not JSON or that would add keys, nesting of any depth: a json cell is
//!   embedded only when it is one JSON value, else as a string), and each row is an object with
//!   exactly one key per distinct column name;
//! - bytea text produced from bytes (hex and escape forms) decodes back to those bytes.
#![no_main]

use std::ffi::CString;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use pgsess::results::{Hold, Results};
use pgsess::rows::typed::{decode_bytea, oid, GetError};
use pgsess::rows::{Column, CommandTag, ResultSet};
use serde::de::IgnoredAny;
use serde::Deserialize;

const TEXT: u32 = 25;
const VARCHAR: u32 = 1043;
const OIDS: [u32; 16] = [
    oid::BOOL,
    oid::BYTEA,
    oid::INT8,
    oid::INT2,
    oid::INT4,
    oid::OID,
    oid::JSON,
    oid::FLOAT4,
    oid::FLOAT8,
    oid::DATE,
    oid::TIMESTAMP,
    oid::TIMESTAMPTZ,
    oid::NUMERIC,
    oid::JSONB,
    TEXT,
    VARCHAR,
];

const TAGS: [&str; 12] = [
    "",
    "SELECT 3",
    "INSERT 0 2",
    "UPDATE 18446744073709551615",
    "DELETE 99999999999999999999",
    "CREATE TABLE",
    "MERGE 1",
    "COPY 7",
    "FETCH -1",
    "SELECT",
    "SET",
    "MOVE 0x10",
];

type Row = Vec<Option<Vec<u8>>>;

fn digits(u: &mut Unstructured, max: usize) -> Result<String> {
    let n = u.int_in_range(0..=max)?;
    (0..n).map(|_| Ok(char::from(b'0' + u.int_in_range(0..=9)?))).collect()
}

/// Text shaped like what the server sends for a column of this type (or near misses of it).
fn shaped(u: &mut Unstructured, ty: u32, bytea_check: &mut Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<u8>> {
    let sign = |u: &mut Unstructured| -> Result<&'static str> { Ok(if u.arbitrary()? { "-" } else { "" }) };
    Ok(match ty {
        oid::BOOL => u.choose(&["t", "f", "true", ""])?.as_bytes().to_vec(),
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => format!("{}{}", sign(u)?, digits(u, 21)?).into_bytes(),
        oid::FLOAT4 | oid::FLOAT8 | oid::NUMERIC => {
            if u.ratio(1, 4)? {
                u.choose(&["NaN", "Infinity", "-Infinity", "inf", "1e400", "-0"])?.as_bytes().to_vec()
            } else {
                let mut s = format!("{}{}", sign(u)?, digits(u, 20)?);
                if u.arbitrary()? {
                    s += &format!(".{}", digits(u, 20)?);
                }
                if u.arbitrary()? {
                    s += &format!("e{}{}", u.choose(&["", "+", "-"])?, digits(u, 4)?);
                }
                s.into_bytes()
            }
        }
        oid::DATE | oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            if u.ratio(1, 8)? {
                u.choose(&["infinity", "-infinity"])?.as_bytes().to_vec()
            } else {
                let mut s = format!("{}-{}-{}", digits(u, 20)?, digits(u, 3)?, digits(u, 3)?);
                if u.arbitrary()? {
                    s += &format!(" {}:{}:{}", digits(u, 20)?, digits(u, 20)?, digits(u, 20)?);
                    if u.arbitrary()? {
                        s += &format!(".{}", digits(u, 20)?);
                    }
                    if u.arbitrary()? {
                        s += &format!("{}{}", u.choose(&["+", "-"])?, digits(u, 20)?);
                        for _ in 0..u.int_in_range(0..=2)? {
                            s += &format!(":{}", digits(u, 20)?);
                        }
                    }
                }
                if u.ratio(1, 8)? {
                    s += " BC";
                }
                s.into_bytes()
            }
        }
        oid::BYTEA => {
            let bytes: Vec<u8> = u.arbitrary()?;
            let text = if u.arbitrary()? {
                let mut t = b"\\x".to_vec();
                for b in &bytes {
                    t.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                t
            } else {
                // The escape format: printable ASCII but backslash as is, the rest as \ooo.
                let mut t = Vec::new();
                for &b in &bytes {
                    match b {
                        b'\\' => t.extend_from_slice(b"\\\\"),
                        0x20..=0x7e => t.push(b),
                        _ => t.extend_from_slice(format!("\\{b:03o}").as_bytes()),
                    }
                }
                t
            };
            bytea_check.push((text.clone(), bytes));
            text
        }
        oid::JSON | oid::JSONB => {
            let s: String = u.arbitrary()?;
            match u.int_in_range(0..=6)? {
                0 => serde_json::to_string(&s).unwrap().into_bytes(),
                1 => format!("{{\"k\": [1, null, true, {}]}}", serde_json::to_string(&s).unwrap()).into_bytes(),
                2 => format!("{}{}", sign(u)?, digits(u, 30)?).into_bytes(),
                // A value that would add a key if it were embedded as sent.
                3 => format!("1,{}:true", serde_json::to_string(&s).unwrap()).into_bytes(),
                // Nesting deeper than serde_json's default limit, closed or not.
                4 => {
                    let depth = u.int_in_range(0..=3000)?;
                    let close = if u.arbitrary()? { depth } else { u.int_in_range(0..=depth + 1)? };
                    format!("{}{s:?}{}", "[".repeat(depth), "]".repeat(close)).into_bytes()
                }
                // Escapes near the edges: lone and paired surrogates, controls, unknown ones.
                5 => u
                    .choose(&[
                        &b"\"\\ud800\""[..],
                        b"\"\\ud83d\\ude00\"",
                        b"\"\\udc00\"",
                        b"\"\x01\"",
                        b"\"\\x\"",
                        b"\"\xff\"",
                    ])?
                    .to_vec(),
                _ => s.into_bytes(),
            }
        }
        _ => {
            let s: String = u.arbitrary()?;
            s.into_bytes()
        }
    })
}

fn value(u: &mut Unstructured, ty: u32, bytea_check: &mut Vec<(Vec<u8>, Vec<u8>)>) -> Result<Option<Vec<u8>>> {
    Ok(match u.int_in_range(0..=7)? {
        0 => None,
        1 => Some(u.arbitrary::<Vec<u8>>()?),
        _ => Some(shaped(u, ty, bytea_check)?),
    })
}

/// A DataRow message's values: each an i32 length (-1 for NULL) and the bytes.
fn encode_raw(row: &Row) -> Vec<u8> {
    let mut out = Vec::new();
    for v in row {
        match v {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    out
}

/// The reference reading of a DataRow's values: `Some(row)` when they are exactly `ncols` values.
fn decode_raw(mut raw: &[u8], ncols: usize) -> Option<Row> {
    let mut row = Vec::with_capacity(ncols);
    for _ in 0..ncols {
        if raw.len() < 4 {
            return None;
        }
        let len = i32::from_be_bytes(raw[..4].try_into().unwrap());
        raw = &raw[4..];
        if len < 0 {
            row.push(None);
        } else {
            let len = len as usize;
            if raw.len() < len {
                return None;
            }
            row.push(Some(raw[..len].to_vec()));
            raw = &raw[len..];
        }
    }
    raw.is_empty().then_some(row)
}

/// `text` read by serde_json as `T` (values as `IgnoredAny`: syntax only, numbers of any size),
/// or why not. Nesting of any depth: a text serde_json's default limit (128) refuses is read
/// again without the limit, on a thread with a stack big enough for it.
fn parse_json<T: for<'de> Deserialize<'de> + Send + 'static>(text: &str) -> std::result::Result<T, String> {
    match serde_json::from_str::<T>(text) {
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => {
            let text = text.to_owned();
            std::thread::Builder::new()
                .stack_size(1 << 30)
                .spawn(move || {
                    let mut de = serde_json::Deserializer::from_str(&text);
                    de.disable_recursion_limit();
                    T::deserialize(&mut de).and_then(|v| de.end().map(|()| v)).map_err(|e| e.to_string())
                })
                .expect("spawn a parser thread")
                .join()
                .expect("the parser thread")
        }
        r => r.map_err(|e| e.to_string()),
    }
}

/// A row as serde_json reads it: its keys (a repeated key would collapse), values unread.
type JsonRow = std::collections::HashMap<String, IgnoredAny>;

fn run(u: &mut Unstructured) -> Result<()> {
    let mut set = ResultSet::default();
    let mut types: Vec<u32> = Vec::new();
    let mut model: Vec<Row> = Vec::new();
    let mut bytea_check = Vec::new();

    for _ in 0..u.int_in_range(1..=3)? {
        let ncols = u.int_in_range(0..=6)?;
        let mut columns = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            let mut name: Vec<u8> = u.arbitrary()?;
            name.retain(|&b| b != 0);
            if name.is_empty() || u.ratio(1, 4)? {
                name = u.choose(&[&b"a"[..], b"b", b"?column?"])?.to_vec();
            }
            let type_oid = if u.ratio(1, 16)? { u.arbitrary()? } else { *u.choose(&OIDS)? };
            columns.push(Column { name: CString::new(name).unwrap(), type_oid, format: 0, ..Default::default() });
        }
        types = columns.iter().map(|c| c.type_oid).collect();
        if u.ratio(1, 3)? {
            // A connection hands a dropped small result's storage to its next statement.
            if let Some(storage) = set.take_storage() {
                assert_eq!(set.nrows(), 0, "take_storage left rows behind");
                set = ResultSet::default();
                set.reuse_storage(storage);
            }
        }
        set.begin_rows(columns.into());
        model.clear();
        for _ in 0..u.int_in_range(0..=8)? {
            let row: Row = types.iter().map(|&ty| value(u, ty, &mut bytea_check)).collect::<Result<_>>()?;
            match u.int_in_range(0..=2)? {
                0 => {
                    if !row.is_empty() {
                        // One value short, or one too many: refused, nothing appended.
                        assert!(!set.push_row(row[1..].iter().map(|v| v.as_deref())), "a short row was taken");
                        assert!(
                            !set.push_row(row.iter().chain(&row[..1]).map(|v| v.as_deref())),
                            "a long row was taken"
                        );
                    }
                    assert!(set.push_row(row.iter().map(|v| v.as_deref())), "a whole row was refused: {row:?}");
                    model.push(row);
                }
                1 => {
                    assert!(set.push_raw_row(&encode_raw(&row), ncols), "a well-formed row was refused: {row:?}");
                    model.push(row);
                }
                _ => {
                    // A DataRow body that may be malformed: truncated, extended or arbitrary.
                    let mut raw = if u.arbitrary()? { encode_raw(&row) } else { u.arbitrary::<Vec<u8>>()? };
                    match u.int_in_range(0..=2)? {
                        0 => raw.truncate(u.int_in_range(0..=raw.len())?),
                        1 => raw.extend_from_slice(u.arbitrary::<&[u8]>()?),
                        _ => {}
                    }
                    let before = set.nrows();
                    let expected = decode_raw(&raw, ncols);
                    let ok = set.push_raw_row(&raw, ncols);
                    assert_eq!(ok, expected.is_some(), "push_raw_row({raw:?}, {ncols})");
                    assert_eq!(set.nrows(), before + usize::from(ok));
                    model.extend(expected);
                }
            }
        }
        let tag: &str = if u.ratio(1, 4)? { u.arbitrary()? } else { u.choose(&TAGS)? };
        set.command_tag = CommandTag::new(tag);
        let upto_nul = tag.split('\0').next().unwrap_or_default();
        assert_eq!((set.command_tag.as_str(), set.command_tag.as_c_str().to_bytes()), (upto_nul, upto_nul.as_bytes()));
        let mut body = tag.as_bytes().to_vec();
        body.push(0);
        let parsed = CommandTag::from_message_body(&body);
        assert_eq!(parsed.is_some(), !tag.contains('\0'), "tag body {body:?}");
        assert!(parsed.map_or(true, |t| t == tag));
    }
    set.non_iso_dates = u.ratio(1, 8)?;
    check(&set, &types, &model);

    for (text, bytes) in &bytea_check {
        assert_eq!(decode_bytea(text).as_deref(), Some(&bytes[..]), "bytea text {:?}", String::from_utf8_lossy(text));
    }
    let stray: &[u8] = u.arbitrary()?;
    let _ = decode_bytea(stray);

    // Results::bytes decodes bytea once and hands out the cached copy.
    let sql: &str = u.arbitrary()?;
    let results = Results::new(set, sql, Hold::Nothing);
    assert_eq!(results.sql(), sql);
    assert_eq!(results.sql_c().to_bytes(), sql.split('\0').next().unwrap_or_default().as_bytes());
    for row in 0..=model.len() {
        for col in 0..=types.len() {
            let first = results.bytes(row, col);
            match model.get(row).and_then(|r| r.get(col)) {
                None => assert_eq!(first, Err(GetError::OutOfRange)),
                Some(None) => assert_eq!(first, Err(GetError::Null)),
                Some(Some(text)) if types[col] == oid::BYTEA => {
                    assert_eq!(first.ok().map(<[u8]>::to_vec), decode_bytea(text));
                    let (a, b) = (results.bytes(row, col), results.bytes(row, col));
                    if let (Ok(a), Ok(b)) = (a, b) {
                        assert_eq!(a.as_ptr(), b.as_ptr(), "a decoded bytea value moved");
                    }
                }
                Some(Some(text)) => assert_eq!(first, Ok(&text[..])),
            }
        }
    }
    Ok(())
}

fn check(set: &ResultSet, types: &[u32], model: &[Row]) {
    assert_eq!(set.nrows(), model.len());
    assert_eq!(set.ncols(), types.len());
    for row in 0..=model.len() {
        for col in 0..=types.len() {
            let expected = model.get(row).and_then(|r| r.get(col));
            let in_range = expected.is_some();
            let null = matches!(expected, Some(None));
            assert_eq!(set.value(row, col), expected.and_then(|v| v.as_deref()), "value({row}, {col})");
            assert_eq!(set.is_null(row, col), null, "is_null({row}, {col})");
            if let Some(v) = set.value_with_nul(row, col) {
                assert_eq!(v.last(), Some(&0), "value_with_nul({row}, {col}) has no NUL");
            }
            let ints = set.get_int64(row, col).map(drop);
            let doubles = set.get_double(row, col).map(drop);
            let bools = set.get_bool(row, col).map(drop);
            let times = set.get_epoch_micros(row, col).map(drop);
            for got in [ints, doubles, bools, times] {
                match got {
                    Err(GetError::OutOfRange) => assert!(!in_range, "OutOfRange at ({row}, {col}) in range"),
                    Err(GetError::Null) => assert!(null, "Null at ({row}, {col}) for a value"),
                    _ => assert!(in_range && !null, "a value at ({row}, {col}), which is out of range or NULL"),
                }
            }
        }
    }
    let _ = (set.count(), set.rows_affected(), set.heap_bytes());

    let json = set.to_json();
    // One key per distinct name as it reads in UTF-8 (invalid bytes replaced).
    let keys = set.columns().iter().map(|c| c.name.to_string_lossy()).collect::<std::collections::HashSet<_>>().len();
    match parse_json::<Vec<JsonRow>>(&json) {
        Ok(rows) => {
            assert_eq!(rows.len(), model.len(), "to_json has {} rows: {json}", rows.len());
            for r in &rows {
                assert_eq!(r.len(), keys, "a row has other keys than the column names: {json}");
            }
        }
        Err(e) => panic!("to_json is not a JSON array of objects ({e}): {json}"),
    }
    for row in 0..=model.len() {
        let one = set.row_json(row);
        assert_eq!(one.is_some(), row < model.len());
        if let Some(one) = one {
            match parse_json::<JsonRow>(&one) {
                Ok(r) => assert_eq!(r.len(), keys, "row_json({row}) has other keys than the column names: {one}"),
                Err(e) => panic!("row_json({row}) is not a JSON object ({e}): {one}"),
            }
            assert!(json.contains(&one), "row_json({row}) differs from the row in to_json");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
