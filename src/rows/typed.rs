//! Typed access to values, by column type OID and format: integers, floating point, booleans,
//! uuid, and date/time as microseconds since the Unix epoch, from the server's text or (a column
//! of `pgsess_query_binary`) its binary form. Both forms of one value give the same result.

use super::{binary, Column, ResultSet};

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
    /// The value's text form cannot be read under the session's settings (a DateStyle other than
    /// ISO), or (`get_text`) a binary value's text cannot be rendered.
    Unsupported,
}

pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const XID: u32 = 28;
    pub const CID: u32 = 29;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const JSONPATH: u32 = 4072;
    pub const XID8: u32 = 5069;
}

/// A typed getter's conversion of one column's non-NULL values. It is chosen once from the
/// column's type, its format and the session settings its text depends on
/// (`ResultSet::int64_form` and the others), then applied to each value (`decode`): the
/// per-value getters and the column getters share it, and a column read in a block pays for
/// the choice once.
pub trait Form: Copy {
    type Value: Copy + Default;
    /// One non-NULL value's bytes, converted.
    fn decode(self, bytes: &[u8]) -> Result<Self::Value, GetError>;
}

/// The choice of a `Form` for a column of a result (`ResultSet::int64_form` and the others).
pub type FormOf<F> = fn(&ResultSet, &Column) -> F;

impl ResultSet {
    /// The value's bytes and its column, or why there is none.
    #[inline]
    fn typed_value(&self, row: usize, col: usize) -> Result<(&[u8], &Column), GetError> {
        let column = self.columns.get(col).ok_or(GetError::OutOfRange)?;
        if row >= self.nrows {
            return Err(GetError::OutOfRange);
        }
        let with_nul = self.value_with_nul(row, col).ok_or(GetError::Null)?;
        Ok((&with_nul[..with_nul.len() - 1], column))
    }

    /// One value read in the form `form` chooses for its column.
    #[inline]
    pub fn get_with<F: Form>(&self, row: usize, col: usize, form: FormOf<F>) -> Result<F::Value, GetError> {
        let (bytes, column) = self.typed_value(row, col)?;
        form(self, column).decode(bytes)
    }

    /// Whether column `col` exists and rows `first..first + count` are all there.
    pub fn holds_block(&self, col: usize, first: usize, count: usize) -> bool {
        col < self.columns.len() && first.checked_add(count).is_some_and(|end| end <= self.nrows())
    }

    /// Column `col` of the rows from `first` on, one per element of `out`, each read as the
    /// per-value getter of `form` reads it (the form chosen once for the column): what the
    /// `pgsess_results_get_*_column` calls give. A NULL sets its `nulls` element (when given;
    /// without them it is `GetError::Null`) and leaves the value `Default`. Returns the rows
    /// read and, when it stopped before the last, why; rows past the end are `OutOfRange`
    /// before any is read.
    pub fn get_column<F: Form>(
        &self,
        col: usize,
        first: usize,
        out: &mut [F::Value],
        mut nulls: Option<&mut [bool]>,
        form: FormOf<F>,
    ) -> (usize, Result<(), GetError>) {
        if !self.holds_block(col, first, out.len()) || nulls.as_ref().is_some_and(|n| n.len() != out.len()) {
            return (0, Err(GetError::OutOfRange));
        }
        let form = form(self, &self.columns[col]);
        let mut failed = Ok(());
        let read = self.for_each_in_column(col, first, out.len(), |i, value| {
            let value = match value {
                None if nulls.is_some() => None,
                None => {
                    failed = Err(GetError::Null);
                    return None;
                }
                Some(with_nul) => match form.decode(&with_nul[..with_nul.len() - 1]) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        failed = Err(e);
                        return None;
                    }
                },
            };
            if let Some(n) = nulls.as_deref_mut() {
                n[i] = value.is_none();
            }
            out[i] = value.unwrap_or_default();
            Some(())
        });
        (read, failed)
    }

    /// int2, int4, int8 and oid columns.
    #[inline]
    pub fn get_int64(&self, row: usize, col: usize) -> Result<i64, GetError> {
        self.get_with(row, col, Self::int64_form)
    }

    /// `get_int64`'s form for `column`.
    #[inline]
    pub fn int64_form(&self, column: &Column) -> Int64Form {
        match (column.type_oid, column.is_binary()) {
            (oid::INT2, true) => Int64Form::Int2,
            (oid::INT4, true) => Int64Form::Int4,
            (oid::INT8, true) => Int64Form::Int8,
            (oid::OID, true) => Int64Form::Oid,
            (oid::INT2 | oid::INT4 | oid::INT8 | oid::OID, false) => Int64Form::Text,
            _ => Int64Form::Mismatch,
        }
    }

    /// int2 and int4 columns, and int8 and oid values that fit in 32 bits (others are an
    /// overflow).
    #[inline]
    pub fn get_int32(&self, row: usize, col: usize) -> Result<i32, GetError> {
        i32::try_from(self.get_int64(row, col)?).map_err(|_| GetError::Overflow)
    }

    /// float4, float8 and numeric columns (numeric is rounded to the nearest double; NaN and
    /// ±Infinity come through as such). A numeric beyond the double range is an overflow. A
    /// float4 is the double nearest its shortest decimal (the text the server prints), in
    /// either format.
    #[inline]
    pub fn get_double(&self, row: usize, col: usize) -> Result<f64, GetError> {
        self.get_with(row, col, Self::double_form)
    }

    /// `get_double`'s form for `column`.
    #[inline]
    pub fn double_form(&self, column: &Column) -> DoubleForm {
        match (column.type_oid, column.is_binary()) {
            (oid::FLOAT4, true) => DoubleForm::Float4,
            (oid::FLOAT8, true) => DoubleForm::Float8,
            (oid::NUMERIC, true) => DoubleForm::Numeric,
            (oid::FLOAT4 | oid::FLOAT8 | oid::NUMERIC, false) => DoubleForm::Text,
            _ => DoubleForm::Mismatch,
        }
    }

    #[inline]
    pub fn get_bool(&self, row: usize, col: usize) -> Result<bool, GetError> {
        self.get_with(row, col, Self::bool_form)
    }

    /// `get_bool`'s form for `column`.
    #[inline]
    pub fn bool_form(&self, column: &Column) -> BoolForm {
        match (column.type_oid, column.is_binary()) {
            (oid::BOOL, true) => BoolForm::Binary,
            (oid::BOOL, false) => BoolForm::Text,
            _ => BoolForm::Mismatch,
        }
    }

    /// A uuid column's 16 bytes.
    #[inline]
    pub fn get_uuid(&self, row: usize, col: usize) -> Result<[u8; 16], GetError> {
        self.get_with(row, col, Self::uuid_form)
    }

    /// `get_uuid`'s form for `column`.
    #[inline]
    pub fn uuid_form(&self, column: &Column) -> UuidForm {
        match (column.type_oid, column.is_binary()) {
            (oid::UUID, true) => UuidForm::Binary,
            (oid::UUID, false) => UuidForm::Text,
            _ => UuidForm::Mismatch,
        }
    }

    /// Microseconds since 1970-01-01 00:00:00 UTC for timestamptz; since that wall-clock time for
    /// timestamp and date (midnight); since midnight for time. `infinity`/`-infinity` are
    /// `i64::MAX`/`i64::MIN`, as in PostgreSQL's own representation; a finite value beyond the
    /// i64 range (dates past the year 294246) is an overflow. Text is read in its ISO form
    /// (DateStyle ISO, the default); binary values under any DateStyle.
    #[inline]
    pub fn get_epoch_micros(&self, row: usize, col: usize) -> Result<i64, GetError> {
        self.get_with(row, col, Self::epoch_micros_form)
    }

    /// `get_epoch_micros`'s form for `column`.
    #[inline]
    pub fn epoch_micros_form(&self, column: &Column) -> MicrosForm {
        match (column.type_oid, column.is_binary()) {
            (oid::DATE, true) => MicrosForm::Date,
            (oid::TIME, true) => MicrosForm::Time,
            (oid::TIMESTAMP | oid::TIMESTAMPTZ, true) => MicrosForm::Timestamp,
            (oid::TIME, false) => MicrosForm::TimeText,
            (oid::DATE | oid::TIMESTAMP | oid::TIMESTAMPTZ, false) if self.non_iso_dates => MicrosForm::NonIsoText,
            (oid::DATE | oid::TIMESTAMP, false) => MicrosForm::IsoText,
            (oid::TIMESTAMPTZ, false) => MicrosForm::IsoTextWithZone,
            _ => MicrosForm::Mismatch,
        }
    }
}

/// `get_int64`'s forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int64Form {
    Int2,
    Int4,
    Int8,
    Oid,
    /// The text of any of those.
    Text,
    Mismatch,
}

impl Form for Int64Form {
    type Value = i64;
    #[inline(always)]
    fn decode(self, b: &[u8]) -> Result<i64, GetError> {
        match self {
            Int64Form::Int2 => binary::int2(b).map(i64::from).ok_or(GetError::TypeMismatch),
            Int64Form::Int4 => binary::int4(b).map(i64::from).ok_or(GetError::TypeMismatch),
            Int64Form::Int8 => binary::int8(b).ok_or(GetError::TypeMismatch),
            Int64Form::Oid => binary::uint4(b).map(i64::from).ok_or(GetError::TypeMismatch),
            Int64Form::Text => text(b)?.parse().map_err(|_| GetError::Overflow),
            Int64Form::Mismatch => Err(GetError::TypeMismatch),
        }
    }
}

/// `get_double`'s forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoubleForm {
    Float4,
    Float8,
    Numeric,
    /// The text of any of those.
    Text,
    Mismatch,
}

impl Form for DoubleForm {
    type Value = f64;
    #[inline(always)]
    fn decode(self, b: &[u8]) -> Result<f64, GetError> {
        match self {
            DoubleForm::Float4 => binary::float4(b).map(binary::float4_as_double).ok_or(GetError::TypeMismatch),
            DoubleForm::Float8 => binary::float8(b).ok_or(GetError::TypeMismatch),
            DoubleForm::Numeric => binary::numeric(b).ok_or(GetError::TypeMismatch)?.to_f64(),
            DoubleForm::Text => {
                let text = text(b)?;
                let v: f64 = text.parse().map_err(|_| GetError::TypeMismatch)?;
                if v.is_infinite() && !text.contains("nfinity") {
                    return Err(GetError::Overflow);
                }
                Ok(v)
            }
            DoubleForm::Mismatch => Err(GetError::TypeMismatch),
        }
    }
}

/// `get_bool`'s forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolForm {
    Binary,
    Text,
    Mismatch,
}

impl Form for BoolForm {
    type Value = bool;
    #[inline(always)]
    fn decode(self, b: &[u8]) -> Result<bool, GetError> {
        match (self, b) {
            (BoolForm::Binary, b) => binary::bool(b).ok_or(GetError::TypeMismatch),
            (BoolForm::Text, b"t") => Ok(true),
            (BoolForm::Text, b"f") => Ok(false),
            _ => Err(GetError::TypeMismatch),
        }
    }
}

/// `get_uuid`'s forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UuidForm {
    Binary,
    Text,
    Mismatch,
}

impl Form for UuidForm {
    type Value = [u8; 16];
    #[inline(always)]
    fn decode(self, b: &[u8]) -> Result<[u8; 16], GetError> {
        match self {
            UuidForm::Binary => binary::uuid(b).ok_or(GetError::TypeMismatch),
            UuidForm::Text => binary::parse_uuid_text(b).ok_or(GetError::TypeMismatch),
            UuidForm::Mismatch => Err(GetError::TypeMismatch),
        }
    }
}

/// `get_epoch_micros`'s forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MicrosForm {
    Date,
    Time,
    /// timestamp or timestamptz.
    Timestamp,
    /// A time's text, the same under every DateStyle.
    TimeText,
    /// A date's or timestamp's text under a DateStyle other than ISO: only ±infinity is read.
    NonIsoText,
    /// A date's or timestamp's ISO text.
    IsoText,
    /// A timestamptz's ISO text.
    IsoTextWithZone,
    Mismatch,
}

impl Form for MicrosForm {
    type Value = i64;
    #[inline(always)]
    fn decode(self, b: &[u8]) -> Result<i64, GetError> {
        match self {
            MicrosForm::Date => binary::date_epoch_micros(binary::date(b).ok_or(GetError::TypeMismatch)?),
            MicrosForm::Time => binary::time(b).ok_or(GetError::TypeMismatch),
            MicrosForm::Timestamp => {
                binary::timestamp_epoch_micros(binary::timestamp(b).ok_or(GetError::TypeMismatch)?)
            }
            MicrosForm::TimeText => parse_clock(text(b)?).ok_or(GetError::Unsupported),
            MicrosForm::NonIsoText => infinity(text(b)?).ok_or(GetError::Unsupported),
            MicrosForm::IsoText | MicrosForm::IsoTextWithZone => {
                let text = text(b)?;
                infinity(text).map_or_else(|| parse_iso_datetime(text, self == MicrosForm::IsoTextWithZone), Ok)
            }
            MicrosForm::Mismatch => Err(GetError::TypeMismatch),
        }
    }
}

/// `infinity` and `-infinity`, a date's or timestamp's text under every DateStyle, as
/// `i64::MAX`/`i64::MIN`.
fn infinity(text: &str) -> Option<i64> {
    match text {
        "infinity" => Some(i64::MAX),
        "-infinity" => Some(i64::MIN),
        _ => None,
    }
}

/// A text value as `str` (the server sends UTF-8).
#[inline]
fn text(bytes: &[u8]) -> Result<&str, GetError> {
    std::str::from_utf8(bytes).map_err(|_| GetError::TypeMismatch)
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

/// A field of 1 to `max_len` digits whose value is at most `max`.
fn field(s: &str, max_len: usize, max: i64) -> Option<i64> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|v| *v <= max)
}

/// `HH:MM:SS[.ffffff]` (a time's text under every DateStyle, at most 24:00:00) as microseconds
/// since midnight.
fn parse_clock(clock: &str) -> Option<i64> {
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
    Some(((h * 60 + mi) * 60 + s) * 1_000_000 + frac_us)
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]][±HH[:MM[:SS]]][ BC]` as printed under DateStyle ISO. Every
/// field is range-checked and the arithmetic is checked: text that is not a real date/time (the
/// server never sends one, but the getter must hold for any input) is `Unsupported`, and a
/// date/time beyond the i64 range of microseconds is `Overflow`, never a wrong value.
fn parse_iso_datetime(text: &str, with_zone: bool) -> Result<i64, GetError> {
    match iso_fast(text.as_bytes(), with_zone) {
        Some(micros) => Ok(micros),
        None => parse_iso_general(text, with_zone),
    }
}

/// The value of `N` ASCII digits at `b[at..]`, or None.
#[inline]
fn digits<const N: usize>(b: &[u8], at: usize) -> Option<i64> {
    let d = b.get(at..at + N)?;
    let mut v = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// `parse_iso_datetime` for the shape nearly every value has, the server's own for years 1000
/// to 9999 AD: `YYYY-MM-DD` (a date, without zone) or `YYYY-MM-DD HH:MM:SS[.f{1,6}]` then,
/// with zone, `±HH[:MM[:SS]]`. Read byte by byte with the same range checks as
/// `parse_iso_general` (no overflow is possible for such years); None for anything else, which
/// that then reads. A bulk fetch of timestamps spent most of its library time splitting them.
#[inline]
fn iso_fast(b: &[u8], with_zone: bool) -> Option<i64> {
    let y = digits::<4>(b, 0)?;
    let m = digits::<2>(b, 5)?;
    let d = digits::<2>(b, 8)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m, d) * 86_400_000_000;
    if b.len() == 10 {
        return (!with_zone).then_some(day);
    }
    let h = digits::<2>(b, 11)?;
    let mi = digits::<2>(b, 14)?;
    let sec = digits::<2>(b, 17)?;
    if b.get(10) != Some(&b' ') || b.get(13) != Some(&b':') || b.get(16) != Some(&b':') || h > 24 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut at = 19;
    let mut frac = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            frac = frac * 10 + i64::from(b[at] - b'0');
            at += 1;
        }
        let n = at - start;
        if n == 0 || n > 6 {
            return None;
        }
        for _ in n..6 {
            frac *= 10;
        }
    }
    let mut micros = day + ((h * 60 + mi) * 60 + sec) * 1_000_000 + frac;
    if with_zone {
        let sign = match b.get(at)? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let zh = digits::<2>(b, at + 1)?;
        at += 3;
        let (mut zm, mut zs) = (0, 0);
        if b.get(at) == Some(&b':') {
            zm = digits::<2>(b, at + 1)?;
            at += 3;
            if b.get(at) == Some(&b':') {
                zs = digits::<2>(b, at + 1)?;
                at += 3;
            }
        }
        if zh > 16 || zm > 59 || zs > 59 {
            return None;
        }
        micros -= sign * ((zh * 60 + zm) * 60 + zs) * 1_000_000;
    }
    (at == b.len()).then_some(micros)
}

/// `parse_iso_datetime` for every form (any year, BC, fields of any width the grammar allows).
fn parse_iso_general(text: &str, with_zone: bool) -> Result<i64, GetError> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let bad = GetError::Unsupported;
    let (date, rest) = text.split_once(' ').map_or((text, None), |(d, r)| (d, Some(r)));
    let mut dp = date.splitn(3, '-');
    let mut next = || dp.next().ok_or(bad);
    // PostgreSQL's dates span 4713 BC to 5874897 AD.
    let y = field(next()?, 7, 5_874_897).ok_or(bad)?;
    let m = field(next()?, 2, 12).filter(|m| *m >= 1).ok_or(bad)?;
    let d = field(next()?, 2, 31).filter(|d| *d >= 1).ok_or(bad)?;
    let year = if bc { 1 - y } else { y };
    let overflow = GetError::Overflow;
    let mut micros = days_from_civil(year, m, d).checked_mul(86_400_000_000).ok_or(overflow);
    if let Some(rest) = rest {
        let split = rest.find(['+', '-']).unwrap_or(rest.len());
        let (clock, zone) = rest.split_at(split);
        if with_zone == zone.is_empty() {
            return Err(bad);
        }
        let clock = parse_clock(clock).ok_or(bad)?;
        micros = micros.and_then(|m| m.checked_add(clock).ok_or(overflow));
        if !zone.is_empty() {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let mut zp = zone[1..].split(':');
            let zh = zp.next().and_then(|v| field(v, 2, 16)).ok_or(bad)?;
            let zm = zp.next().map_or(Some(0), |v| field(v, 2, 59)).ok_or(bad)?;
            let zs = zp.next().map_or(Some(0), |v| field(v, 2, 59)).ok_or(bad)?;
            if zp.next().is_some() {
                return Err(bad);
            }
            micros = micros.and_then(|m| m.checked_sub(sign * ((zh * 60 + zm) * 60 + zs) * 1_000_000).ok_or(overflow));
        }
    }
    micros
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_datetimes() {
        let p = |t: &str, z: bool| parse_iso_datetime(t, z).ok();
        assert_eq!(p("1970-01-01", false), Some(0));
        assert_eq!(p("2000-01-01 00:00:00", false), Some(946_684_800_000_000));
        assert_eq!(p("2000-01-01 02:00:00.5+02", true), Some(946_684_800_500_000));
        assert_eq!(p("1969-12-31 23:59:59.999999", false), Some(-1));
        assert_eq!(p("2024-07-01 05:30:00+05:30", true), Some(1_719_792_000_000_000));
        assert_eq!(p("0001-01-01 BC", false), p("0000-01-01", false));
        assert_eq!(p("2000-01-01 00:00:00", true), None);
        assert_eq!(p("01.01.2000", false), None);
        // Out of range or overflowing fields are refused, not wrapped.
        for bad in [
            "99999999999999-01-01",
            "2000-13-01",
            "2000-01-00",
            "2000-01-01 99999999999:00:00",
            "2000-01-01 00:00:00.1234567",
        ] {
            assert_eq!(parse_iso_datetime(bad, false), Err(GetError::Unsupported), "{bad}");
        }
        assert_eq!(p("2000-01-01 00:00:00+99999999999", true), None);
        // Real dates past the i64 range of microseconds: an overflow.
        assert_eq!(parse_iso_datetime("5874897-12-31", false), Err(GetError::Overflow));
        assert_eq!(parse_iso_datetime("294276-12-31 23:59:59+00", true), Err(GetError::Overflow));
        assert_eq!(parse_clock("24:00:00"), Some(86_400_000_000));
        assert_eq!(parse_clock("00:00:00.000001"), Some(1));
        assert_eq!(parse_clock("12:60:00"), None);
    }

    /// The fast path gives what the general one gives, for every input it takes: the server's
    /// shapes over a range of values, and each of them with every byte changed in turn.
    #[test]
    fn iso_fast_agrees_with_general() {
        let mut taken = 0;
        let mut check = |t: &str, z: bool| {
            if let Some(v) = iso_fast(t.as_bytes(), z) {
                taken += 1;
                assert_eq!(Ok(v), parse_iso_general(t, z), "{t:?} with_zone={z}");
            }
        };
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut cases = vec![
            "2024-02-29".to_string(),
            "1000-01-01 00:00:00".into(),
            "9999-12-31 24:00:00+16:59:59".into(),
            "2000-01-01 00:00:60.5-00:30".into(),
        ];
        for _ in 0..3000 {
            let frac = match next(4) {
                0 => String::new(),
                1 => format!(".{}", next(10)),
                2 => format!(".{:06}", next(1_000_000)),
                _ => format!(".{:03}", next(1000)),
            };
            let zone = match next(4) {
                0 => format!("+{:02}", next(17)),
                1 => format!("-{:02}:{:02}", next(17), next(60)),
                2 => format!("+{:02}:{:02}:{:02}", next(17), next(60), next(60)),
                _ => String::new(),
            };
            cases.push(format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{frac}{zone}",
                1000 + next(9000),
                1 + next(12),
                1 + next(31),
                next(25),
                next(60),
                next(61)
            ));
        }
        let mutations = b"0123456789-+:. Bx";
        for case in &cases {
            for z in [false, true] {
                check(case, z);
                let bytes = case.as_bytes();
                for i in 0..bytes.len() {
                    for &m in mutations {
                        let mut b = bytes.to_vec();
                        b[i] = m;
                        check(std::str::from_utf8(&b).unwrap(), z);
                    }
                    check(&format!("{}{}", &case[..i], &case[i + 1..]), z);
                }
            }
        }
        assert!(taken > 100_000, "the fast path took {taken} inputs");
    }

    #[test]
    fn a_column_is_read_as_its_getter_reads_each_value() {
        let mut set = ResultSet::default();
        let col = |type_oid| Column { type_oid, ..Column::default() };
        set.begin_rows(vec![col(oid::INT8), col(oid::TEXT)].into());
        for v in [Some(&b"1"[..]), None, Some(b"-3"), Some(b"x")] {
            assert!(set.push_row([v, Some(&b"t"[..])].into_iter()));
        }
        let mut out = [9i64; 3];
        let mut nulls = [true; 3];
        assert_eq!(set.get_column(0, 0, &mut out, Some(&mut nulls), ResultSet::int64_form), (3, Ok(())));
        assert_eq!((out, nulls), ([1, 0, -3], [false, true, false]));
        // Without nulls a NULL stops it; a value that does not convert stops it too.
        assert_eq!(set.get_column(0, 0, &mut out, None, ResultSet::int64_form), (1, Err(GetError::Null)));
        let mut two = [0i64; 2];
        let per_value = set.get_int64(3, 0).unwrap_err();
        assert_eq!(set.get_column(0, 2, &mut two, None, ResultSet::int64_form), (1, Err(per_value)));
        assert_eq!(set.get_column(1, 0, &mut two, None, ResultSet::int64_form), (0, Err(GetError::TypeMismatch)));
        // Out of range before anything is read.
        let mut out = [7i64; 2];
        assert_eq!(set.get_column(0, 3, &mut out, None, ResultSet::int64_form), (0, Err(GetError::OutOfRange)));
        assert_eq!(set.get_column(2, 0, &mut out, None, ResultSet::int64_form), (0, Err(GetError::OutOfRange)));
        assert_eq!(
            set.get_column(0, usize::MAX, &mut out, None, ResultSet::int64_form),
            (0, Err(GetError::OutOfRange))
        );
        assert_eq!(out, [7, 7]);
        assert_eq!(set.get_column(0, 4, &mut [0i64; 0], None, ResultSet::int64_form), (0, Ok(())));
    }

    #[test]
    fn bytea_forms() {
        assert_eq!(decode_bytea(b"\\x00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_bytea(b"a\\000b\\\\c\\377"), Some(b"a\0b\\c\xff".to_vec()));
        assert_eq!(decode_bytea(b"\\x0"), None);
        assert_eq!(decode_bytea(b"\\777"), None, "octal escapes stop at \\377");
    }
}
