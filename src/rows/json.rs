//! Results as JSON, the rows of sprockets.clients.postgresql (psycopg2's `RealDictCursor`): an
//! object per row keyed by column name.
//! Numbers as numbers, bool as true/false, json/jsonb embedded, NULL as null, anything else as a
//! string. A duplicated column name keeps its first position and the last value, as a Python
//! dict built from the row does.
//!
//! The output is always one valid JSON text (RFC 8259), whatever the server sent, because none
//! of its bytes is trusted:
//! - a json or jsonb value is embedded only when it is itself exactly one JSON value; anything
//!   else (`1,"admin":true`, which would add a key; a truncated or deeply broken document) is
//!   embedded as a JSON string of its text instead, so no value can change the row's shape;
//! - a bool is `true` or `false` only for the server's `t` and `f`, a number a number only when
//!   its text is a JSON number (not NaN or Infinity); anything else is a string;
//! - invalid UTF-8 in a value or a column name (a SQL_ASCII database, a hostile server) is
//!   replaced by U+FFFD, and control characters are escaped.
//!
//! The work is linear in the size of the result: the column layout is built once per call with
//! a hash map (a result may have 65,535 columns), each key is escaped once, and the json
//! validator is a single pass that keeps its nesting on the heap (one byte per level), so a
//! value nested a million levels deep is checked without recursion.

use std::borrow::Cow;
use std::collections::HashMap;

use super::typed::oid;
use super::ResultSet;

impl ResultSet {
    /// `[{...}, ...]` for every row.
    pub fn to_json(&self) -> String {
        let mut out = String::from("[");
        let layout = self.json_layout();
        for row in 0..self.nrows() {
            if row > 0 {
                out.push(',');
            }
            self.write_row_json(row, &layout, &mut out);
        }
        out.push(']');
        out
    }

    /// `{...}` for one row, `None` when out of range.
    pub fn row_json(&self, row: usize) -> Option<String> {
        if row >= self.nrows() {
            return None;
        }
        let mut out = String::new();
        self.write_row_json(row, &self.json_layout(), &mut out);
        Some(out)
    }

    /// For each distinct column name in order of first appearance: its key, escaped once
    /// (`"name":`), and the last column bearing that name, whose value the row gives. Names are
    /// compared as they read in the output (invalid UTF-8 replaced), so no key repeats.
    fn json_layout(&self) -> Vec<(String, usize)> {
        let mut layout: Vec<(String, usize)> = Vec::with_capacity(self.ncols());
        let mut position: HashMap<Cow<'_, str>, usize> = HashMap::with_capacity(self.ncols());
        for (i, c) in self.columns.iter().enumerate() {
            let name = c.name.to_string_lossy();
            match position.get(&name) {
                Some(&at) => layout[at].1 = i,
                None => {
                    let mut key = String::with_capacity(name.len() + 3);
                    write_string(&mut key, &name);
                    key.push(':');
                    position.insert(name, layout.len());
                    layout.push((key, i));
                }
            }
        }
        layout
    }

    fn write_row_json(&self, row: usize, layout: &[(String, usize)], out: &mut String) {
        out.push('{');
        for (n, (key, value_col)) in layout.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(key);
            let ty = self.columns[*value_col].type_oid;
            match self.text_for_json(row, *value_col) {
                None => out.push_str("null"),
                Some(v) => match ty {
                    oid::BOOL if v == "t" => out.push_str("true"),
                    oid::BOOL if v == "f" => out.push_str("false"),
                    oid::JSON | oid::JSONB if is_json(&v) => out.push_str(&v),
                    oid::INT2 | oid::INT4 | oid::INT8 | oid::OID | oid::FLOAT4 | oid::FLOAT8 | oid::NUMERIC
                        if is_json_number(&v) =>
                    {
                        out.push_str(&v)
                    }
                    _ => write_string(out, &v),
                },
            }
        }
        out.push('}');
    }
}

/// Whether PostgreSQL's text for a number is also a JSON number (NaN and Infinity are not).
fn is_json_number(s: &str) -> bool {
    scan_number(s.as_bytes(), 0) == Some(s.len())
}

/// The end of the JSON number starting at `b[i]` (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`),
/// `None` when none starts there.
fn scan_number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    Some(i)
}

/// The end of the JSON string whose opening quote is `b[i]`, `None` when it is not one: an
/// unescaped control character, an unknown escape, a `\u` escape that is not four hex digits,
/// or a UTF-16 surrogate escape that is not one half of a pair (strict parsers refuse a lone
/// one, so embedding it could make the output unreadable for them).
fn scan_string(b: &[u8], mut i: usize) -> Option<usize> {
    debug_assert_eq!(b.get(i), Some(&b'"'));
    i += 1;
    loop {
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            0..=0x1f => return None,
            b'\\' => {
                i += 1;
                match *b.get(i)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 1,
                    b'u' => {
                        let unit = hex4(b, i + 1)?;
                        i += 5;
                        match unit {
                            0xD800..=0xDBFF => {
                                // A high surrogate: a low one must follow as `\uXXXX`.
                                if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
                                    return None;
                                }
                                if !(0xDC00..=0xDFFF).contains(&hex4(b, i + 2)?) {
                                    return None;
                                }
                                i += 6;
                            }
                            0xDC00..=0xDFFF => return None,
                            _ => {}
                        }
                    }
                    _ => return None,
                }
            }
            // Any other byte of the (already valid UTF-8) text stands for itself.
            _ => i += 1,
        }
    }
}

/// The four hex digits at `b[i..i + 4]` as a number.
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    digits.iter().try_fold(0u32, |n, &d| Some(n * 16 + char::from(d).to_digit(16)?))
}

/// Whether `s` is exactly one JSON value (RFC 8259), with optional whitespace around it: what
/// may be embedded in the output as it is. One pass, no recursion: the open arrays and objects
/// are a stack of bytes on the heap, so the work and memory are linear in `s` however deep it
/// nests.
pub(crate) fn is_json(s: &str) -> bool {
    let b = s.as_bytes();
    let ws = |i: &mut usize| {
        while matches!(b.get(*i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            *i += 1;
        }
    };
    // After `{` or `,` in an object: a key, then `:` (and whitespace around them).
    let key = |i: &mut usize| -> bool {
        ws(i);
        if b.get(*i) != Some(&b'"') {
            return false;
        }
        match scan_string(b, *i) {
            Some(end) => *i = end,
            None => return false,
        }
        ws(i);
        if b.get(*i) != Some(&b':') {
            return false;
        }
        *i += 1;
        true
    };
    let mut open: Vec<u8> = Vec::new();
    let mut i = 0;
    loop {
        // A value starts here.
        ws(&mut i);
        let end = match b.get(i) {
            Some(b'{') => {
                i += 1;
                ws(&mut i);
                if b.get(i) == Some(&b'}') {
                    Some(i + 1)
                } else {
                    if !key(&mut i) {
                        return false;
                    }
                    open.push(b'{');
                    continue;
                }
            }
            Some(b'[') => {
                i += 1;
                ws(&mut i);
                if b.get(i) == Some(&b']') {
                    Some(i + 1)
                } else {
                    open.push(b'[');
                    continue;
                }
            }
            Some(b'"') => scan_string(b, i),
            Some(b'-' | b'0'..=b'9') => scan_number(b, i),
            Some(b't') => b[i..].starts_with(b"true").then_some(i + 4),
            Some(b'f') => b[i..].starts_with(b"false").then_some(i + 5),
            Some(b'n') => b[i..].starts_with(b"null").then_some(i + 4),
            _ => None,
        };
        let Some(end) = end else { return false };
        i = end;
        // A value ended: close what it ends, until a `,` asks for the next value.
        loop {
            ws(&mut i);
            match (open.last(), b.get(i)) {
                (None, _) => return i == b.len(),
                (Some(b'['), Some(b']')) | (Some(b'{'), Some(b'}')) => {
                    open.pop();
                    i += 1;
                }
                (Some(b'['), Some(b',')) => {
                    i += 1;
                    break;
                }
                (Some(b'{'), Some(b',')) => {
                    i += 1;
                    if !key(&mut i) {
                        return false;
                    }
                    break;
                }
                _ => return false,
            }
        }
    }
}

/// `s` as a JSON string: quotes, backslashes and control characters escaped, the rest (valid
/// UTF-8 already) copied in runs.
fn write_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut run = 0;
    for (i, c) in s.bytes().enumerate() {
        let escape = match c {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 0xf)]));
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::Column;
    use std::ffi::CString;

    #[test]
    fn numbers_and_strings() {
        for ok in ["0", "-1", "1.50", "1e+300", "-0", "3.4e-38"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in ["NaN", "Infinity", "-Infinity", "01", "1.", ".5", ""] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn json_values_are_checked() {
        for ok in [
            "0",
            "-0.5e+3",
            "\"\"",
            "\"a\\u00e9\\ud83d\\ude00\\n\"",
            "true",
            "false",
            "null",
            " [ ] ",
            "{}",
            "[1, [2, {\"a\": [null, {}]}], \"x\"]",
            "{\"k\": 1, \"l\": {\"m\": []}}\n",
            "\"\u{e9}\"",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "",
            " ",
            "1,\"admin\":true",
            "1 2",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{1:2}",
            "[1}",
            "{\"a\":1]",
            "[",
            "]",
            "{",
            "}",
            "\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\\ud800\"",
            "\"\\ud800\\u0041\"",
            "\"a\u{1}\"",
            "tru",
            "nul",
            "01",
            "1.",
            "-",
            "+1",
            "NaN",
            "[1] x",
            "{\"a\":1}}",
            "\u{feff}1",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_checked_without_recursion() {
        let n = 1_000_000;
        let open = "[".repeat(n);
        assert!(!is_json(&open));
        let nested = format!("{open}{}", "]".repeat(n));
        assert!(is_json(&nested));
        let objects = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert!(is_json(&objects));
        assert!(!is_json(&format!("{open}{}", "]".repeat(n - 1))));
        assert!(!is_json(&format!("{open}{}", "]".repeat(n + 1))));
    }

    #[test]
    fn values_cannot_change_the_shape_of_a_row() {
        let col =
            |n: &[u8], t: u32| Column { name: CString::new(n).unwrap(), type_oid: t, format: 0, ..Default::default() };
        let mut r = ResultSet::default();
        r.begin_rows(vec![col(b"j", 114), col(b"b", 16), col(b"n\xff\"", 25), col(b"c", 3802), col(b"i", 23)].into());
        assert!(r.push_row(
            [
                Some(&b"1,\"admin\":true"[..]),
                Some(&b"yes"[..]),
                Some(&b"a\xc3(\x01\x1f"[..]),
                Some(&b"[[["[..]),
                Some(&b"1e"[..])
            ]
            .into_iter(),
        ));
        assert_eq!(
            r.to_json(),
            concat!(
                "[{\"j\":\"1,\\\"admin\\\":true\",\"b\":\"yes\",",
                "\"n\u{fffd}\\\"\":\"a\u{fffd}(\\u0001\\u001f\",\"c\":\"[[[\",\"i\":\"1e\"}]"
            )
        );
    }

    #[test]
    fn names_that_read_the_same_are_one_key() {
        let col = |n: &[u8]| Column { name: CString::new(n).unwrap(), type_oid: 25, format: 0, ..Default::default() };
        let mut r = ResultSet::default();
        r.begin_rows(vec![col(b"a\xff"), col(b"b"), col(b"a\xfe")].into());
        assert!(r.push_row([Some(&b"1"[..]), Some(&b"2"[..]), Some(&b"3"[..])].into_iter()));
        assert_eq!(r.to_json(), "[{\"a\u{fffd}\":\"3\",\"b\":\"2\"}]");
    }

    #[test]
    fn many_columns_in_linear_time() {
        let ncols = 65_535;
        let col = |i: usize| Column {
            name: CString::new(format!("c{}", i % 40_000)).unwrap(),
            type_oid: 23,
            format: 0,
            ..Default::default()
        };
        let mut r = ResultSet::default();
        r.begin_rows((0..ncols).map(col).collect::<Vec<_>>().into());
        let values: Vec<String> = (0..ncols).map(|i| i.to_string()).collect();
        assert!(r.push_row(values.iter().map(|v| Some(v.as_bytes()))));
        let t = std::time::Instant::now();
        let json = r.row_json(0).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "{:?}", t.elapsed());
        // 40,000 distinct names; the duplicates (c0..c25534) take the value of their last column.
        assert!(json.starts_with("{\"c0\":40000,\"c1\":40001,"), "{}", &json[..40]);
        assert!(json.ends_with(",\"c39999\":39999}"));
        assert_eq!(json.matches(':').count(), 40_000);
    }

    #[test]
    fn rows_as_objects_with_last_duplicate_winning() {
        let col =
            |n: &str, t: u32| Column { name: CString::new(n).unwrap(), type_oid: t, format: 0, ..Default::default() };
        let mut r = ResultSet::default();
        r.begin_rows(vec![col("a", 23), col("b", 25), col("a", 16), col("j", 3802), col("n", 1700)].into());
        assert!(r.push_row(
            [Some(&b"1"[..]), Some(&b"x\"\n"[..]), Some(&b"t"[..]), Some(&b"{\"k\": 1}"[..]), Some(&b"NaN"[..])]
                .into_iter(),
        ));
        assert!(r.push_row([None, None, None, None, None].into_iter()));
        assert_eq!(
            r.to_json(),
            r#"[{"a":true,"b":"x\"\n","j":{"k": 1},"n":"NaN"},{"a":null,"b":null,"j":null,"n":null}]"#
        );
        assert_eq!(r.row_json(2), None);
    }
}
