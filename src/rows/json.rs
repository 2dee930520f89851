//! Results as JSON, the rows of sprockets.clients.postgresql (psycopg2's `RealDictCursor`): an
//! object per row keyed by column name.
//! Numbers as numbers, bool as true/false, json/jsonb embedded, NULL as null, anything else as a
//! string. A duplicated column name keeps its first position and the last value, as a Python
//! dict built from the row does.

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

    /// For each distinct column name in order of first appearance, the last column bearing it.
    fn json_layout(&self) -> Vec<(usize, usize)> {
        let mut layout: Vec<(usize, usize)> = Vec::with_capacity(self.ncols());
        for (i, c) in self.columns.iter().enumerate() {
            match layout.iter_mut().find(|(first, _)| self.columns[*first].name == c.name) {
                Some(entry) => entry.1 = i,
                None => layout.push((i, i)),
            }
        }
        layout
    }

    fn write_row_json(&self, row: usize, layout: &[(usize, usize)], out: &mut String) {
        out.push('{');
        for (n, &(name_col, value_col)) in layout.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            write_string(out, &self.columns[name_col].name.to_string_lossy());
            out.push(':');
            let ty = self.columns[value_col].type_oid;
            match self.text_for_json(row, value_col) {
                None => out.push_str("null"),
                Some(v) => match ty {
                    oid::BOOL => out.push_str(if v == "t" { "true" } else { "false" }),
                    oid::JSON | oid::JSONB => out.push_str(&v),
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
    let b = s.as_bytes();
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    let mut i = usize::from(b.first() == Some(&b'-'));
    if !digits(&mut i) || (b[usize::from(b[0] == b'-')] == b'0' && i - usize::from(b[0] == b'-') > 1) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
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
    fn rows_as_objects_with_last_duplicate_winning() {
        let col = |n: &str, t: u32| Column { name: CString::new(n).unwrap(), type_oid: t, format: 0 };
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
