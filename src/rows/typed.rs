//! Typed access to text values, by column type OID: integers, floating point, booleans, bytea,
//! and date/time as microseconds since the Unix epoch.

use super::ResultSet;

/// Why a typed getter could not produce a value. Each maps to its own C code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetError {
    /// The value is SQL NULL.
    Null,
    /// The column's type does not convert to the requested one.
    TypeMismatch,
    /// The row or column index is out of range.
    OutOfRange,
    /// The value does not fit the requested type.
    Overflow,
    /// The value's text form cannot be read under the session's settings (a DateStyle other than ISO).
    Unsupported,
}

pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const DATE: u32 = 1082;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const JSONB: u32 = 3802;
}

impl ResultSet {
    /// The value's text and its column type, or why there is none.
    fn typed_cell(&self, row: usize, col: usize) -> Result<(&str, u32), GetError> {
        let column = self.columns.get(col).ok_or(GetError::OutOfRange)?;
        if row >= self.nrows() {
            return Err(GetError::OutOfRange);
        }
        let bytes = self.value(row, col).ok_or(GetError::Null)?;
        let text = std::str::from_utf8(bytes).map_err(|_| GetError::TypeMismatch)?;
        Ok((text, column.type_oid))
    }

    /// int2, int4, int8 and oid columns.
    pub fn get_int64(&self, row: usize, col: usize) -> Result<i64, GetError> {
        let (text, ty) = self.typed_cell(row, col)?;
        if !matches!(ty, oid::INT2 | oid::INT4 | oid::INT8 | oid::OID) {
            return Err(GetError::TypeMismatch);
        }
        text.parse().map_err(|_| GetError::Overflow)
    }

    /// float4, float8 and numeric columns (numeric is rounded to the nearest double; NaN and
    /// ±Infinity come through as such). A numeric beyond the double range is an overflow.
    pub fn get_double(&self, row: usize, col: usize) -> Result<f64, GetError> {
        let (text, ty) = self.typed_cell(row, col)?;
        if !matches!(ty, oid::FLOAT4 | oid::FLOAT8 | oid::NUMERIC) {
            return Err(GetError::TypeMismatch);
        }
        let v: f64 = text.parse().map_err(|_| GetError::TypeMismatch)?;
        if v.is_infinite() && !text.contains("nfinity") {
            return Err(GetError::Overflow);
        }
        Ok(v)
    }

    pub fn get_bool(&self, row: usize, col: usize) -> Result<bool, GetError> {
        let (text, ty) = self.typed_cell(row, col)?;
        match (ty, text) {
            (oid::BOOL, "t") => Ok(true),
            (oid::BOOL, "f") => Ok(false),
            _ => Err(GetError::TypeMismatch),
        }
    }

    /// Microseconds since 1970-01-01 00:00:00 UTC for timestamptz; since that wall-clock time for
    /// timestamp and date (midnight). `infinity`/`-infinity` are `i64::MAX`/`i64::MIN`, as in
    /// PostgreSQL's own representation. Reads the ISO text form (DateStyle ISO, the default).
    pub fn get_epoch_micros(&self, row: usize, col: usize) -> Result<i64, GetError> {
        let (text, ty) = self.typed_cell(row, col)?;
        if !matches!(ty, oid::DATE | oid::TIMESTAMP | oid::TIMESTAMPTZ) {
            return Err(GetError::TypeMismatch);
        }
        match text {
            "infinity" => return Ok(i64::MAX),
            "-infinity" => return Ok(i64::MIN),
            _ => {}
        }
        if self.non_iso_dates {
            return Err(GetError::Unsupported);
        }
        parse_iso_datetime(text, ty == oid::TIMESTAMPTZ).ok_or(GetError::Unsupported)
    }
}

/// Decode a bytea value's text form (`\x` hex, or the escape format) into bytes.
pub fn decode_bytea(text: &[u8]) -> Option<Vec<u8>> {
    if let Some(hex) = text.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return None;
        }
        let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        return hex.chunks(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
        } else if text.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = text.get(i + 1..i + 4)?;
            // \000 to \377, as PostgreSQL accepts.
            if !oct.iter().all(|c| (b'0'..=b'7').contains(c)) || oct[0] > b'3' {
                return None;
            }
            out.push((oct[0] - b'0') << 6 | (oct[1] - b'0') << 3 | (oct[2] - b'0'));
            i += 4;
        }
    }
    Some(out)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (astronomical year numbering).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]][±HH[:MM[:SS]]][ BC]` as printed under DateStyle ISO. Every
/// field is range-checked and the arithmetic is checked: text that is not a real date/time (the
/// server never sends one, but the getter must hold for any input) gives `None`, never a wrong
/// value.
fn parse_iso_datetime(text: &str, with_zone: bool) -> Option<i64> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    // A field of 1 to `max_len` digits whose value is at most `max`.
    let field = |s: &str, max_len: usize, max: i64| -> Option<i64> {
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<i64>().ok().filter(|v| *v <= max)
    };
    let (date, rest) = text.split_once(' ').map_or((text, None), |(d, r)| (d, Some(r)));
    let mut dp = date.splitn(3, '-');
    // PostgreSQL's dates span 4713 BC to 5874897 AD.
    let y = field(dp.next()?, 7, 5_874_897)?;
    let m = field(dp.next()?, 2, 12).filter(|m| *m >= 1)?;
    let d = field(dp.next()?, 2, 31).filter(|d| *d >= 1)?;
    let year = if bc { 1 - y } else { y };
    let mut micros = days_from_civil(year, m, d).checked_mul(86_400_000_000)?;
    if let Some(rest) = rest {
        let split = rest.find(['+', '-']).unwrap_or(rest.len());
        let (clock, zone) = rest.split_at(split);
        if with_zone == zone.is_empty() {
            return None;
        }
        let mut cp = clock.splitn(3, ':');
        let h = field(cp.next()?, 2, 24)?;
        let mi = field(cp.next()?, 2, 59)?;
        let sec = cp.next()?;
        let (s, frac) = sec.split_once('.').map_or((sec, ""), |(s, f)| (s, f));
        let s = field(s, 2, 60)?;
        let mut frac_us = if frac.is_empty() { 0 } else { field(frac, 6, 999_999)? };
        for _ in frac.len()..6 {
            frac_us *= 10;
        }
        micros = micros.checked_add(((h * 60 + mi) * 60 + s) * 1_000_000 + frac_us)?;
        if !zone.is_empty() {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let mut zp = zone[1..].split(':');
            let zh = field(zp.next()?, 2, 16)?;
            let zm = zp.next().map_or(Some(0), |v| field(v, 2, 59))?;
            let zs = zp.next().map_or(Some(0), |v| field(v, 2, 59))?;
            if zp.next().is_some() {
                return None;
            }
            micros = micros.checked_sub(sign * ((zh * 60 + zm) * 60 + zs) * 1_000_000)?;
        }
    }
    Some(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_datetimes() {
        assert_eq!(parse_iso_datetime("1970-01-01", false), Some(0));
        assert_eq!(parse_iso_datetime("2000-01-01 00:00:00", false), Some(946_684_800_000_000));
        assert_eq!(parse_iso_datetime("2000-01-01 02:00:00.5+02", true), Some(946_684_800_500_000));
        assert_eq!(parse_iso_datetime("1969-12-31 23:59:59.999999", false), Some(-1));
        assert_eq!(parse_iso_datetime("2024-07-01 05:30:00+05:30", true), Some(1_719_792_000_000_000));
        assert_eq!(parse_iso_datetime("0001-01-01 BC", false), parse_iso_datetime("0000-01-01", false));
        assert_eq!(parse_iso_datetime("2000-01-01 00:00:00", true), None);
        assert_eq!(parse_iso_datetime("01.01.2000", false), None);
        // Out of range or overflowing fields are refused, not wrapped.
        for bad in [
            "99999999999999-01-01",
            "2000-13-01",
            "2000-01-00",
            "2000-01-01 99999999999:00:00",
            "2000-01-01 00:00:00.1234567",
        ] {
            assert_eq!(parse_iso_datetime(bad, false), None, "{bad}");
        }
        assert_eq!(parse_iso_datetime("2000-01-01 00:00:00+99999999999", true), None);
    }

    #[test]
    fn bytea_forms() {
        assert_eq!(decode_bytea(b"\\x00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_bytea(b"a\\000b\\\\c\\377"), Some(b"a\0b\\c\xff".to_vec()));
        assert_eq!(decode_bytea(b"\\x0"), None);
        assert_eq!(decode_bytea(b"\\777"), None, "octal escapes stop at \\377");
    }
}
