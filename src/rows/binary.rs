//! Values in the server's binary form (each type's `send` function: what `pgsess_query_binary`
//! asks for), decoded for the typed getters and rendered back as the text the server prints, for
//! the types whose text does not depend on session settings.
//!
//! Every decoder checks the exact length and the ranges its type allows and gives `None` for
//! anything else: a short, long or malformed value is refused, never misread.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::typed::{oid, GetError};
use super::ResultSet;

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for dates and timestamps.
const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 00:00 to 2000-01-01 00:00.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * MICROS_PER_DAY;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Numeric sign words (`numeric.c`): positive, negative, NaN, and (PostgreSQL 14+) ±Infinity.
const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// The largest display scale a numeric carries (`NUMERIC_DSCALE_MASK`).
const NUMERIC_MAX_DSCALE: u16 = 0x3FFF;

/// A zone offset's limit (`TZDISP_LIMIT`): under 16 hours either way.
const TZ_LIMIT_SECS: i32 = 16 * 3600;

/// Whether a column of this type is better read in binary: the types whose binary form every
/// typed getter and binding decodes exactly, in fewer steps than their text, and with no session
/// setting involved (a typed statement, `pgsess_query_typed`, binds these in binary and the rest
/// in text). Not float4 (its binary must be re-rounded to read as its text does), numeric (read
/// exactly from its text), timestamp (a zone-less value some bindings read through its text),
/// nor the text types (the same bytes either way).
pub fn prefers_binary(ty: u32) -> bool {
    matches!(
        ty,
        oid::BOOL
            | oid::BYTEA
            | oid::INT2
            | oid::INT4
            | oid::INT8
            | oid::OID
            | oid::FLOAT8
            | oid::DATE
            | oid::TIMESTAMPTZ
            | oid::UUID
    )
}

fn be<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

pub fn int2(bytes: &[u8]) -> Option<i16> {
    be(bytes).map(i16::from_be_bytes)
}

pub fn int4(bytes: &[u8]) -> Option<i32> {
    be(bytes).map(i32::from_be_bytes)
}

pub fn int8(bytes: &[u8]) -> Option<i64> {
    be(bytes).map(i64::from_be_bytes)
}

/// oid, xid, cid: unsigned 32 bits.
pub fn uint4(bytes: &[u8]) -> Option<u32> {
    be(bytes).map(u32::from_be_bytes)
}

/// An int2, int4, int8 or oid column's value.
pub fn integer(ty: u32, bytes: &[u8]) -> Option<i64> {
    match ty {
        oid::INT2 => int2(bytes).map(i64::from),
        oid::INT4 => int4(bytes).map(i64::from),
        oid::INT8 => int8(bytes),
        oid::OID => uint4(bytes).map(i64::from),
        _ => None,
    }
}

pub fn float4(bytes: &[u8]) -> Option<f32> {
    be(bytes).map(f32::from_be_bytes)
}

pub fn float8(bytes: &[u8]) -> Option<f64> {
    be(bytes).map(f64::from_be_bytes)
}

/// `boolsend` writes one byte, 1 or 0.
pub fn bool(bytes: &[u8]) -> Option<bool> {
    match bytes {
        [0] => Some(false),
        [1] => Some(true),
        _ => None,
    }
}

/// Days since 2000-01-01 (`i32::MAX`/`i32::MIN` are ±infinity).
pub fn date(bytes: &[u8]) -> Option<i32> {
    int4(bytes)
}

/// Microseconds since 2000-01-01 00:00 (UTC for timestamptz; `i64::MAX`/`MIN` are ±infinity).
pub fn timestamp(bytes: &[u8]) -> Option<i64> {
    int8(bytes)
}

/// Microseconds since midnight, 00:00:00 to 24:00:00.
pub fn time(bytes: &[u8]) -> Option<i64> {
    int8(bytes).filter(|t| (0..=MICROS_PER_DAY).contains(t))
}

/// A timetz: microseconds since midnight and the zone in seconds west of UTC.
pub fn timetz(bytes: &[u8]) -> Option<(i64, i32)> {
    let (t, z) = (bytes.get(..8)?, bytes.get(8..)?);
    let zone = int4(z).filter(|z| z.abs() < TZ_LIMIT_SECS)?;
    Some((time(t)?, zone))
}

pub fn uuid(bytes: &[u8]) -> Option<[u8; 16]> {
    be(bytes)
}

/// The text form of a uuid (`8-4-4-4-12` hex digits, either case, as `uuid_out` prints it and
/// `uuid_in`'s canonical form) as its 16 bytes.
pub fn parse_uuid_text(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibbles = text.iter().enumerate().filter(|(i, _)| !matches!(i, 8 | 13 | 18 | 23));
    if [8, 13, 18, 23].iter().any(|&i| text[i] != b'-') {
        return None;
    }
    for byte in &mut out {
        let mut next = || nibbles.next().and_then(|(_, &c)| (c as char).to_digit(16));
        *byte = ((next()? << 4) | next()?) as u8;
    }
    Some(out)
}

/// Microseconds since 1970-01-01 for a date's midnight; ±infinity as `i64::MAX`/`MIN`.
pub fn date_epoch_micros(days: i32) -> Result<i64, GetError> {
    match days {
        i32::MAX => Ok(i64::MAX),
        i32::MIN => Ok(i64::MIN),
        d => (i64::from(d) + PG_EPOCH_DAYS).checked_mul(MICROS_PER_DAY).ok_or(GetError::Overflow),
    }
}

/// Microseconds since 1970-01-01 for a timestamp; ±infinity as `i64::MAX`/`MIN`.
pub fn timestamp_epoch_micros(t: i64) -> Result<i64, GetError> {
    match t {
        i64::MAX | i64::MIN => Ok(t),
        t => t.checked_add(PG_EPOCH_MICROS).ok_or(GetError::Overflow),
    }
}

/// A binary numeric: `ndigits`, `weight`, `sign` and `dscale` (16 bits each), then `ndigits`
/// base-10000 digits, the first of weight `weight`.
#[derive(Clone, Copy, Debug)]
pub struct Numeric<'a> {
    sign: u16,
    weight: i16,
    dscale: u16,
    /// The digits, big-endian 16-bit words, each below 10000.
    digits: &'a [u8],
}

pub fn numeric(bytes: &[u8]) -> Option<Numeric<'_>> {
    let word = |i: usize| bytes.get(i..i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let ndigits = word(0)? as usize;
    let (weight, sign, dscale) = (word(2)? as i16, word(4)?, word(6)?);
    let digits = bytes.get(8..)?;
    if digits.len() != ndigits * 2 {
        return None;
    }
    match sign {
        NUMERIC_POS | NUMERIC_NEG if dscale <= NUMERIC_MAX_DSCALE => {}
        // The server sends ±Infinity with a dscale of 0x20 (header bits, meaning nothing).
        NUMERIC_NAN | NUMERIC_PINF | NUMERIC_NINF if ndigits == 0 => {}
        _ => return None,
    }
    let n = Numeric { sign, weight, dscale, digits };
    (0..ndigits).all(|i| n.digit(i as i64) < 10_000).then_some(n)
}

impl Numeric<'_> {
    fn ndigits(&self) -> i64 {
        (self.digits.len() / 2) as i64
    }

    /// Digit `i` (0 is the first, of weight `weight`); 0 outside the digits.
    fn digit(&self, i: i64) -> u16 {
        if i < 0 || i >= self.ndigits() {
            return 0;
        }
        let i = i as usize * 2;
        u16::from_be_bytes([self.digits[i], self.digits[i + 1]])
    }

    /// The nearest double, as the text path reads the server's text (the exact decimal, cut at
    /// the display scale) with `str::parse`: the same value for the same number. Beyond the
    /// double range is `Overflow`; NaN and ±Infinity come through as such.
    pub fn to_f64(&self) -> Result<f64, GetError> {
        match self.sign {
            NUMERIC_NAN => return Ok(f64::NAN),
            NUMERIC_PINF => return Ok(f64::INFINITY),
            NUMERIC_NINF => return Ok(f64::NEG_INFINITY),
            _ => {}
        }
        let neg = self.sign == NUMERIC_NEG;
        let v = match self.fast_f64() {
            Some(v) => v,
            None => {
                let mut text = String::new();
                self.write_text(&mut text);
                text.parse::<f64>().map_err(|_| GetError::TypeMismatch)?.abs()
            }
        };
        if v.is_infinite() {
            return Err(GetError::Overflow);
        }
        Ok(if neg { -v } else { v })
    }

    /// |value| when it is a small integer times a small power of ten (the digits up to 2^53,
    /// the power within 10^±22): both exact as doubles, so one multiplication or division is
    /// correctly rounded (Clinger's fast path). `None` otherwise, or when digits past the
    /// display scale are not zero (the text cuts them off).
    fn fast_f64(&self) -> Option<f64> {
        const POW10: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
            1e19, 1e20, 1e21, 1e22,
        ];
        let n = self.ndigits();
        if n == 0 {
            return Some(0.0);
        }
        if n > 4 {
            return None;
        }
        let mut m: u64 = 0;
        for k in 0..n {
            let d = self.digit(k);
            // Decimal places through the end of digit k.
            let places = (k - i64::from(self.weight)) * 4;
            let cut = places - i64::from(self.dscale);
            if cut > 0 && (cut >= 4 || d % 10u16.pow(cut as u32) != 0) {
                return None;
            }
            m = m * 10_000 + u64::from(d);
        }
        if m > 1 << 53 {
            return None;
        }
        let e = (i64::from(self.weight) - (n - 1)) * 4;
        match e {
            0..=22 => Some(m as f64 * POW10[e as usize]),
            -22..=-1 => Some(m as f64 / POW10[(-e) as usize]),
            _ => None,
        }
    }

    /// The server's text (`numeric_out`): every digit, the fraction to the display scale.
    pub fn write_text(&self, out: &mut String) {
        match self.sign {
            NUMERIC_NAN => return out.push_str("NaN"),
            NUMERIC_PINF => return out.push_str("Infinity"),
            NUMERIC_NINF => return out.push_str("-Infinity"),
            NUMERIC_NEG => out.push('-'),
            _ => {}
        }
        let weight = i64::from(self.weight);
        let mut d: i64;
        if weight < 0 {
            out.push('0');
            d = weight + 1;
        } else {
            d = 0;
            while d <= weight {
                let dig = self.digit(d);
                if d == 0 {
                    // The first digit without its leading zeros.
                    let _ = write!(out, "{dig}");
                } else {
                    let _ = write!(out, "{dig:04}");
                }
                d += 1;
            }
        }
        let scale = usize::from(self.dscale);
        if scale > 0 {
            out.push('.');
            let start = out.len();
            while out.len() - start < scale {
                let _ = write!(out, "{:04}", self.digit(d));
                d += 1;
            }
            out.truncate(start + scale);
        }
    }
}

/// `{:e}` of a float written into a buffer on the stack: its shortest round-trip digits and
/// exponent, without allocating.
struct Sci {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for Sci {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Sci {
    /// The shortest digits that read back as `v` (Rust's float formatting).
    fn of(v: impl std::fmt::LowerExp) -> Sci {
        let mut s = Sci { buf: [0; 40], len: 0 };
        let _ = write!(s, "{v:e}");
        s
    }

    /// `v` correctly rounded to `digits` significant digits.
    fn rounded(v: impl std::fmt::LowerExp, digits: usize) -> Sci {
        let mut s = Sci { buf: [0; 40], len: 0 };
        let _ = write!(s, "{v:.*e}", digits.saturating_sub(1));
        s
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// The significant digits (without trailing zeros, at least one) and the decimal exponent
    /// of the first.
    fn parts(&self) -> (String, i32) {
        let text = self.as_str();
        let (mantissa, exp) = text.split_once('e').unwrap_or((text, "0"));
        let mut digits = mantissa.replace('.', "");
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
        }
        (digits, exp.parse().unwrap_or(0))
    }
}

/// A float type as PostgreSQL's Ryu prints it.
trait PgFloat: std::fmt::LowerExp + std::str::FromStr + Copy + PartialEq {
    /// Significant digits that always suffice to read back as the value.
    const MAX_DIGITS: usize;
    /// The two midpoints between this (finite, non-zero, positive) value and its neighbours,
    /// each exactly `m × 2^e` with `m` odd.
    fn midpoints(self) -> [(u64, i32); 2];
}

/// `(ieee mantissa, ieee exponent)` of a float with `mantissa_bits` and `bias` as the two
/// midpoints of `PgFloat::midpoints`.
fn midpoints(mantissa: u64, exponent: i32, mantissa_bits: u32, bias: i32) -> [(u64, i32); 2] {
    let (m2, e2) = if exponent == 0 {
        (mantissa, 1 - bias - mantissa_bits as i32)
    } else {
        (mantissa | 1 << mantissa_bits, exponent - bias - mantissa_bits as i32)
    };
    let upper = (2 * m2 + 1, e2 - 1);
    // Just above a power of two the gap below is half the gap above.
    let lower = if mantissa == 0 && exponent > 1 { (4 * m2 - 1, e2 - 2) } else { (2 * m2 - 1, e2 - 1) };
    [lower, upper]
}

impl PgFloat for f64 {
    const MAX_DIGITS: usize = 17;
    fn midpoints(self) -> [(u64, i32); 2] {
        let bits = self.to_bits();
        midpoints(bits & ((1 << 52) - 1), ((bits >> 52) & 0x7ff) as i32, 52, 1023)
    }
}

impl PgFloat for f32 {
    const MAX_DIGITS: usize = 9;
    fn midpoints(self) -> [(u64, i32); 2] {
        let bits = self.to_bits();
        midpoints(u64::from(bits & ((1 << 23) - 1)), ((bits >> 23) & 0xff) as i32, 23, 127)
    }
}

/// Whether `d × 10^k` is exactly `m × 2^e` (`m` odd, `d` > 0).
fn decimal_is(d: u64, k: i32, (m, e): (u64, i32)) -> bool {
    let twos = d.trailing_zeros() as i32;
    let odd = u128::from(d >> twos);
    // d × 10^k = odd × 5^k × 2^(twos + k): the powers of two and the odd parts must match.
    if twos + k != e || k.unsigned_abs() > 40 {
        return false;
    }
    let five = 5u128.checked_pow(k.unsigned_abs());
    match five {
        Some(f) if k >= 0 => odd.checked_mul(f) == Some(u128::from(m)),
        Some(f) => u128::from(m).checked_mul(f) == Some(odd),
        None => false,
    }
}

/// The digits and decimal exponent PostgreSQL 12+ prints for a finite positive `v`: the
/// shortest decimal strictly between its two midpoints, the nearest such, a tie to the even
/// digit (Ryu without the upstream acceptance of a midpoint: PostgreSQL never prints one, since
/// reading it back relies on round-half-even). Rust's shortest digits give the length, but
/// they may be a midpoint, and of two nearest they may take the odd one; the correctly rounded
/// (half to even) form of that length, or if it is a midpoint the first longer one strictly
/// inside, is PostgreSQL's.
fn pg_shortest<F: PgFloat>(v: F) -> (String, i32) {
    let mids = v.midpoints();
    let on_midpoint = |digits: &str, exp: i32| {
        let d: u64 = digits.parse().unwrap_or(0);
        d != 0 && mids.iter().any(|&mid| decimal_is(d, exp - (digits.len() as i32 - 1), mid))
    };
    let shortest = Sci::of(v).parts().0.len();
    for n in shortest..=F::MAX_DIGITS {
        let sci = Sci::rounded(v, n);
        let (d, e) = sci.parts();
        if sci.as_str().parse::<F>().ok() == Some(v) && !on_midpoint(&d, e) {
            return (d, e);
        }
    }
    Sci::rounded(v, F::MAX_DIGITS).parts()
}

/// A float4 as a double the way the text path gets it: the decimal the server prints for it
/// (with `extra_float_digits` > 0) read as a double. So `0.1::float4` is 0.1, not
/// 0.100000001490116, whatever the format.
pub fn float4_as_double(v: f32) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return f64::from(v);
    }
    let (digits, exp) = pg_shortest(v.abs());
    let mut text = Sci { buf: [0; 40], len: 0 };
    let _ = write!(text, "{}{digits}e{}", if v < 0.0 { "-" } else { "" }, exp - (digits.len() as i32 - 1));
    text.as_str().parse().unwrap_or(f64::from(v))
}

/// PostgreSQL 12+'s `float8out`/`float4out` with `extra_float_digits` > 0 (the default is 1):
/// the shortest digits that read back as the value (`pg_shortest`), in fixed notation for
/// decimal exponents from -4 to below `fixed_below` (15 for float8, 6 for float4), else as
/// `d.ddde±XX`; NaN, Infinity, -Infinity, and -0.
fn write_float<F: PgFloat>(out: &mut String, neg: bool, nan: bool, inf: bool, abs: F, zero: bool, fixed_below: i32) {
    if nan {
        return out.push_str("NaN");
    }
    if neg {
        out.push('-');
    }
    if inf {
        return out.push_str("Infinity");
    }
    if zero {
        return out.push('0');
    }
    let (digits, exp) = pg_shortest(abs);
    if (-4..fixed_below).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let n = digits.len() as i32;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat('0').take((-point) as usize));
            out.push_str(&digits);
        } else if point >= n {
            out.push_str(&digits);
            out.extend(std::iter::repeat('0').take((point - n) as usize));
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs());
    }
}

pub fn write_float8(out: &mut String, v: f64) {
    write_float(out, v.is_sign_negative(), v.is_nan(), v.is_infinite(), v.abs(), v == 0.0, 15);
}

pub fn write_float4(out: &mut String, v: f32) {
    write_float(out, v.is_sign_negative(), v.is_nan(), v.is_infinite(), v.abs(), v == 0.0, 6);
}

/// (year, month, day) of a day counted from 1970-01-01, proleptic Gregorian, astronomical
/// years (0 is 1 BC).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD` as DateStyle ISO prints it; the BC suffix is the caller's (after the time).
fn write_iso_date(out: &mut String, days_since_1970: i64) -> bool {
    let (y, m, d) = civil_from_days(days_since_1970);
    let bc = y <= 0;
    let _ = write!(out, "{:04}-{m:02}-{d:02}", if bc { 1 - y } else { y });
    bc
}

/// `HH:MM:SS[.ffffff]`, the fraction without trailing zeros (`AppendSeconds`).
fn write_clock(out: &mut String, micros: i64) {
    let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);
    let _ = write!(out, "{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let f = format!("{frac:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
}

/// A zone offset as `EncodeTimezone` prints it: `+HH`, `+HH:MM` or `+HH:MM:SS`, from seconds
/// west of UTC (so the sign is the other way round).
fn write_zone(out: &mut String, west: i32) {
    let s = west.unsigned_abs();
    out.push(if west <= 0 { '+' } else { '-' });
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let _ = match (m, s) {
        (_, 1..) => write!(out, "{h:02}:{m:02}:{s:02}"),
        (1.., 0) => write!(out, "{h:02}:{m:02}"),
        _ => write!(out, "{h:02}"),
    };
}

/// A timestamp (µs since 2000-01-01) as ISO text, with `+00` when `utc`.
fn write_iso_timestamp(out: &mut String, t: i64, utc: bool) {
    let days = t.div_euclid(MICROS_PER_DAY);
    let bc = write_iso_date(out, days + PG_EPOCH_DAYS);
    out.push(' ');
    write_clock(out, t.rem_euclid(MICROS_PER_DAY));
    if utc {
        out.push_str("+00");
    }
    if bc {
        out.push_str(" BC");
    }
}

/// Why a binary value has no text: the getter's error and what to tell the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextError {
    pub error: GetError,
    pub message: Cow<'static, str>,
}

impl TextError {
    fn new(error: GetError, message: impl Into<Cow<'static, str>>) -> TextError {
        TextError { error, message: message.into() }
    }
}

impl From<GetError> for TextError {
    fn from(error: GetError) -> TextError {
        let message = match error {
            GetError::Null => "the value is SQL NULL",
            GetError::OutOfRange => "the row or column index is out of range",
            GetError::TypeMismatch => "the value is not valid for its type",
            GetError::Overflow => "the value does not fit",
            GetError::Unsupported => "the value cannot be rendered as text",
        };
        TextError::new(error, message)
    }
}

/// What the text of some types depends on: the session settings a statement ran under.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextSettings {
    /// DateStyle is ISO: date and timestamp text is `YYYY-MM-DD[ HH:MM:SS]`.
    pub iso_dates: bool,
    /// TimeZone is at offset zero at every instant: timestamptz text ends in `+00`.
    pub utc_zone: bool,
}

/// Whether a TimeZone setting (as the server reports it) names a zone at offset zero at every
/// instant, so a timestamptz's text is its UTC time with `+00`.
pub fn is_utc_zone_name(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "UTC",
        "UCT",
        "GMT",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "Greenwich",
        "Universal",
        "Zulu",
        "Etc/UTC",
        "Etc/UCT",
        "Etc/GMT",
        "Etc/GMT0",
        "Etc/GMT+0",
        "Etc/GMT-0",
        "Etc/Greenwich",
        "Etc/Universal",
        "Etc/Zulu",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The text the server prints for binary value `bytes` of type `ty`, for the types whose text
/// does not depend on settings (or only on those `settings` report): integers, oid, xid, cid,
/// bool, the text types (their bytes), json, jsonb and jsonpath (after their version byte),
/// uuid, numeric, float4/float8 (as with the default `extra_float_digits`), bytea (hex, as
/// with the default `bytea_output`), "char", time, timetz, and date/timestamp under DateStyle
/// ISO, timestamptz under ISO and a UTC TimeZone. Anything else is refused with the reason.
pub fn render_text(ty: u32, bytes: &[u8], settings: TextSettings) -> Result<String, TextError> {
    let malformed =
        || TextError::new(GetError::TypeMismatch, format!("the binary value is malformed for its type (OID {ty})"));
    let mut out = String::new();
    match ty {
        oid::INT2 => write!(out, "{}", int2(bytes).ok_or_else(malformed)?).ok(),
        oid::INT4 => write!(out, "{}", int4(bytes).ok_or_else(malformed)?).ok(),
        oid::INT8 => write!(out, "{}", int8(bytes).ok_or_else(malformed)?).ok(),
        oid::OID | oid::XID | oid::CID => write!(out, "{}", uint4(bytes).ok_or_else(malformed)?).ok(),
        oid::XID8 => write!(out, "{}", be::<8>(bytes).map(u64::from_be_bytes).ok_or_else(malformed)?).ok(),
        oid::BOOL => {
            out.push(if bool(bytes).ok_or_else(malformed)? { 't' } else { 'f' });
            None
        }
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::JSON | oid::UNKNOWN => {
            out.push_str(std::str::from_utf8(bytes).map_err(|_| malformed())?);
            None
        }
        oid::JSONB | oid::JSONPATH => match bytes.split_first() {
            Some((1, text)) => {
                out.push_str(std::str::from_utf8(text).map_err(|_| malformed())?);
                None
            }
            _ => return Err(malformed()),
        },
        oid::CHAR => {
            match bytes {
                [] | [0] => {}
                [c] if c.is_ascii() => out.push(*c as char),
                // PostgreSQL 15+ prints a byte with the high bit set in octal.
                [c] => {
                    let _ = write!(out, "\\{c:03o}");
                }
                _ => return Err(malformed()),
            }
            None
        }
        oid::UUID => {
            let u = uuid(bytes).ok_or_else(malformed)?;
            for (i, b) in u.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                let _ = write!(out, "{b:02x}");
            }
            None
        }
        oid::NUMERIC => {
            numeric(bytes).ok_or_else(malformed)?.write_text(&mut out);
            None
        }
        oid::FLOAT4 => {
            write_float4(&mut out, float4(bytes).ok_or_else(malformed)?);
            None
        }
        oid::FLOAT8 => {
            write_float8(&mut out, float8(bytes).ok_or_else(malformed)?);
            None
        }
        oid::BYTEA => {
            out.reserve(2 + bytes.len() * 2);
            out.push_str("\\x");
            for b in bytes {
                let _ = write!(out, "{b:02x}");
            }
            None
        }
        oid::TIME => {
            write_clock(&mut out, time(bytes).ok_or_else(malformed)?);
            None
        }
        oid::TIMETZ => {
            let (t, zone) = timetz(bytes).ok_or_else(malformed)?;
            write_clock(&mut out, t);
            write_zone(&mut out, zone);
            None
        }
        oid::DATE => match date(bytes).ok_or_else(malformed)? {
            i32::MAX => return Ok("infinity".into()),
            i32::MIN => return Ok("-infinity".into()),
            _ if !settings.iso_dates => return Err(not_iso()),
            d => {
                if write_iso_date(&mut out, i64::from(d) + PG_EPOCH_DAYS) {
                    out.push_str(" BC");
                }
                None
            }
        },
        oid::TIMESTAMP | oid::TIMESTAMPTZ => match timestamp(bytes).ok_or_else(malformed)? {
            i64::MAX => return Ok("infinity".into()),
            i64::MIN => return Ok("-infinity".into()),
            _ if !settings.iso_dates => return Err(not_iso()),
            _ if ty == oid::TIMESTAMPTZ && !settings.utc_zone => {
                return Err(TextError::new(
                    GetError::Unsupported,
                    "a binary timestamptz is rendered as text only when the session's TimeZone is UTC: its text \
                     is in the session's zone, whose offsets pgsess does not know; use pgsess_query_params for \
                     the server's text, or pgsess_results_get_epoch_micros",
                ))
            }
            t => {
                write_iso_timestamp(&mut out, t, ty == oid::TIMESTAMPTZ);
                None
            }
        },
        _ => {
            return Err(TextError::new(
                GetError::Unsupported,
                format!(
                    "the binary form of type OID {ty} cannot be rendered as text (its text comes from the type's \
                     own output function or depends on session settings): run the statement with \
                     pgsess_query_params to get the server's text"
                ),
            ))
        }
    };
    Ok(out)
}

fn not_iso() -> TextError {
    TextError::new(
        GetError::Unsupported,
        "a binary date or timestamp is rendered as text only under DateStyle ISO (the session's is another): \
         use pgsess_query_params for the server's text, or pgsess_results_get_epoch_micros",
    )
}

impl ResultSet {
    /// The settings a binary value's text may depend on, as they were when the statement ran.
    pub fn text_settings(&self) -> TextSettings {
        TextSettings { iso_dates: !self.non_iso_dates, utc_zone: self.utc_time_zone }
    }

    /// The value as the server's text: a text column's value as it is; a binary one rendered
    /// (`render_text`) or refused with the reason.
    pub fn get_text(&self, row: usize, col: usize) -> Result<Cow<'_, str>, TextError> {
        let column = self.columns.get(col).ok_or(GetError::OutOfRange)?;
        if row >= self.nrows() {
            return Err(GetError::OutOfRange.into());
        }
        let bytes = self.value(row, col).ok_or(GetError::Null)?;
        if column.is_binary() {
            return render_text(column.type_oid, bytes, self.text_settings()).map(Cow::Owned);
        }
        std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|_| GetError::TypeMismatch.into())
    }

    /// A value's text for the JSON rows: a text column's value; a binary one rendered, or, for a
    /// type whose text cannot be rendered, its bytes in hex (`\x...`) as a bytea's text is.
    pub(super) fn text_for_json(&self, row: usize, col: usize) -> Option<Cow<'_, str>> {
        let bytes = self.value(row, col)?;
        let column = &self.columns[col];
        if !column.is_binary() {
            return Some(String::from_utf8_lossy(bytes));
        }
        Some(Cow::Owned(
            render_text(column.type_oid, bytes, self.text_settings())
                .unwrap_or_else(|_| render_text(oid::BYTEA, bytes, TextSettings::default()).unwrap_or_default()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary numeric from its header words and digits.
    fn num(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale].iter().chain(digits) {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b
    }

    fn numeric_text(b: &[u8]) -> String {
        let mut s = String::new();
        numeric(b).expect("valid").write_text(&mut s);
        s
    }

    #[test]
    fn numerics_render_as_numeric_out_and_convert_like_their_text() {
        let cases: &[(Vec<u8>, &str)] = &[
            (num(0, NUMERIC_POS, 0, &[]), "0"),
            (num(0, NUMERIC_POS, 2, &[]), "0.00"),
            (num(0, NUMERIC_NEG, 2, &[]), "-0.00"),
            (num(0, NUMERIC_POS, 0, &[1]), "1"),
            (num(0, NUMERIC_POS, 2, &[12, 3400]), "12.34"),
            (num(0, NUMERIC_NEG, 3, &[1234, 5670]), "-1234.567"),
            (num(1, NUMERIC_POS, 0, &[1]), "10000"),
            (num(2, NUMERIC_POS, 0, &[12, 3456]), "1234560000"),
            (num(-1, NUMERIC_POS, 4, &[1]), "0.0001"),
            (num(-2, NUMERIC_POS, 8, &[1]), "0.00000001"),
            (num(-5, NUMERIC_POS, 20, &[1]), "0.00000000000000000001"),
            (num(-1, NUMERIC_POS, 2, &[1200]), "0.12"),
            (num(0, NUMERIC_POS, 20, &[1, 3333, 3333, 3333, 3333, 3333]), "1.33333333333333333333"),
            (
                num(7, NUMERIC_POS, 12, &[12, 3456, 7890, 1234, 5678, 9012, 3456, 7890, 0, 0, 1]),
                "123456789012345678901234567890.000000000001",
            ),
            (num(0, NUMERIC_NAN, 0, &[]), "NaN"),
            (num(0, NUMERIC_PINF, 0x20, &[]), "Infinity"),
            (num(0, NUMERIC_NINF, 0x20, &[]), "-Infinity"),
        ];
        for (b, text) in cases {
            assert_eq!(numeric_text(b), *text);
            let want: f64 = text.parse().unwrap();
            let got = numeric(b).unwrap().to_f64().unwrap();
            assert!(got == want || (got.is_nan() && want.is_nan()), "{text}: {got} vs {want}");
            assert_eq!(got.is_sign_negative(), want.is_sign_negative(), "{text}");
        }
        // Beyond the double range: an overflow, not infinity.
        assert_eq!(numeric(&num(100, NUMERIC_POS, 0, &[1])).unwrap().to_f64(), Err(GetError::Overflow));
        // Tiny values round to zero as their text does.
        assert_eq!(numeric(&num(-200, NUMERIC_POS, 16383, &[1])).unwrap().to_f64(), Ok(0.0));
    }

    #[test]
    fn the_fast_numeric_path_agrees_with_parsing_the_text() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let n = (next() % 5) as usize;
            let digits: Vec<u16> = (0..n).map(|_| (next() % 10_000) as u16).collect();
            let weight = (next() % 14) as i16 - 7;
            let dscale = (next() % 30) as u16;
            let b = num(weight, if next() % 2 == 0 { NUMERIC_POS } else { NUMERIC_NEG }, dscale, &digits);
            let text = numeric_text(&b);
            let want: f64 = text.parse().unwrap();
            assert_eq!(numeric(&b).unwrap().to_f64().map(f64::to_bits), Ok(want.to_bits()), "{text}");
        }
    }

    #[test]
    fn malformed_numerics_are_refused() {
        let good = num(0, NUMERIC_POS, 2, &[12, 3400]);
        for bad in [
            &good[..good.len() - 1],             // short
            &[&good[..], &[0][..]].concat()[..], // long
            &good[..6],                          // no header
            &[][..],
            &num(0, 0x1234, 0, &[1])[..],           // unknown sign
            &num(0, NUMERIC_NAN, 0, &[1])[..],      // NaN with digits
            &num(0, NUMERIC_POS, 0, &[10_000])[..], // a digit out of range
            &num(0, NUMERIC_POS, NUMERIC_MAX_DSCALE + 1, &[1])[..],
        ] {
            assert!(numeric(bad).is_none(), "{bad:?}");
            assert!(render_text(oid::NUMERIC, bad, TextSettings::default()).is_err());
        }
    }

    #[test]
    fn floats_print_as_postgresql_12_does() {
        let f8 = |v: f64| {
            let mut s = String::new();
            write_float8(&mut s, v);
            s
        };
        let f4 = |v: f32| {
            let mut s = String::new();
            write_float4(&mut s, v);
            s
        };
        for (v, text) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (0.00012345, "0.00012345"),
            (123_456_789.123_456_79, "123456789.12345679"),
            (1e14, "100000000000000"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1e+15"),
            (1.5e15, "1.5e+15"),
            (1e100, "1e+100"),
            (-2.5, "-2.5"),
            (f64::MAX, "1.7976931348623157e+308"),
            // Rust's shortest, 1.791228469642692e+17, is the midpoint to the next double up.
            (1.791_228_469_642_692e17, "1.7912284696426918e+17"),
            // 1747326353620666.25: of ...666.2 and ...666.3, the even one.
            (-1_747_326_353_620_666.2, "-1.7473263536206662e+15"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(f8(v), text, "{v:e}");
        }
        for (v, text) in [
            (1.5f32, "1.5"),
            (0.1, "0.1"),
            (3.402_823_5e38, "3.4028235e+38"),
            (1e-45, "1e-45"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (-0.0, "-0"),
            (f32::NAN, "NaN"),
            (f32::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(f4(v), text, "{v:e}");
        }
        assert_eq!(float4_as_double(0.1), 0.1);
        assert_eq!(float4_as_double(2.5), 2.5);
        assert!(float4_as_double(f32::NAN).is_nan());
    }

    #[test]
    fn dates_and_times_print_as_iso() {
        let iso = TextSettings { iso_dates: true, utc_zone: true };
        let r = |ty: u32, b: &[u8]| render_text(ty, b, iso);
        let day = |d: i32| d.to_be_bytes();
        assert_eq!(r(oid::DATE, &day(0)).unwrap(), "2000-01-01");
        assert_eq!(r(oid::DATE, &day(8825)).unwrap(), "2024-02-29");
        assert_eq!(r(oid::DATE, &day(-2_451_507)).unwrap(), "4713-01-01 BC");
        assert_eq!(r(oid::DATE, &day(2_145_031_948)).unwrap(), "5874897-12-31");
        assert_eq!(r(oid::DATE, &day(i32::MAX)).unwrap(), "infinity");
        assert_eq!(r(oid::DATE, &day(i32::MIN)).unwrap(), "-infinity");
        let ts = |t: i64| t.to_be_bytes();
        assert_eq!(r(oid::TIMESTAMP, &ts(0)).unwrap(), "2000-01-01 00:00:00");
        assert_eq!(r(oid::TIMESTAMP, &ts(-1)).unwrap(), "1999-12-31 23:59:59.999999");
        assert_eq!(r(oid::TIMESTAMPTZ, &ts(1_500_000)).unwrap(), "2000-01-01 00:00:01.5+00");
        assert_eq!(r(oid::TIMESTAMP, &ts(i64::MAX)).unwrap(), "infinity");
        let micros = |h: i64, m: i64, s: i64, f: i64| ((h * 60 + m) * 60 + s) * 1_000_000 + f;
        assert_eq!(r(oid::TIME, &ts(micros(23, 59, 59, 999_999))).unwrap(), "23:59:59.999999");
        assert_eq!(r(oid::TIME, &ts(micros(24, 0, 0, 0))).unwrap(), "24:00:00");
        assert_eq!(r(oid::TIME, &ts(micros(1, 2, 3, 400_000))).unwrap(), "01:02:03.4");
        let tz = |t: i64, z: i32| [&t.to_be_bytes()[..], &z.to_be_bytes()[..]].concat();
        assert_eq!(r(oid::TIMETZ, &tz(micros(12, 34, 56, 789_000), -19_800)).unwrap(), "12:34:56.789+05:30");
        assert_eq!(r(oid::TIMETZ, &tz(micros(1, 2, 3, 0), 28_800)).unwrap(), "01:02:03-08");
        assert_eq!(r(oid::TIMETZ, &tz(0, 3_661)).unwrap(), "00:00:00-01:01:01");
        // Out of range, short or long: refused.
        for (ty, b) in [
            (oid::TIME, ts(MICROS_PER_DAY + 1).to_vec()),
            (oid::TIME, ts(-1).to_vec()),
            (oid::TIMETZ, tz(0, TZ_LIMIT_SECS)),
            (oid::TIMETZ, tz(0, 0)[..11].to_vec()),
            (oid::DATE, vec![0, 0, 0]),
            (oid::TIMESTAMP, vec![0; 9]),
        ] {
            assert_eq!(r(ty, &b).unwrap_err().error, GetError::TypeMismatch, "{ty} {b:?}");
        }
        // Settings that change the text: refused, saying which.
        let not_iso = TextSettings { iso_dates: false, utc_zone: true };
        assert!(render_text(oid::DATE, &day(0), not_iso).unwrap_err().message.contains("DateStyle"));
        assert_eq!(render_text(oid::DATE, &day(i32::MAX), not_iso).unwrap(), "infinity");
        let other_zone = TextSettings { iso_dates: true, utc_zone: false };
        assert!(render_text(oid::TIMESTAMPTZ, &ts(0), other_zone).unwrap_err().message.contains("TimeZone"));
        assert_eq!(render_text(oid::TIMESTAMP, &ts(0), other_zone).unwrap(), "2000-01-01 00:00:00");
    }

    #[test]
    fn epoch_micros_keep_infinities_and_refuse_overflow() {
        assert_eq!(date_epoch_micros(0), Ok(PG_EPOCH_MICROS));
        assert_eq!(date_epoch_micros(-PG_EPOCH_DAYS as i32), Ok(0));
        assert_eq!(date_epoch_micros(i32::MAX), Ok(i64::MAX));
        assert_eq!(date_epoch_micros(i32::MIN), Ok(i64::MIN));
        assert_eq!(date_epoch_micros(2_145_031_948), Err(GetError::Overflow));
        assert_eq!(timestamp_epoch_micros(0), Ok(PG_EPOCH_MICROS));
        assert_eq!(timestamp_epoch_micros(i64::MAX), Ok(i64::MAX));
        assert_eq!(timestamp_epoch_micros(i64::MAX - 1), Err(GetError::Overflow));
    }

    #[test]
    fn short_and_odd_inputs_are_refused_never_misread() {
        assert_eq!(integer(oid::INT4, &[0, 0, 1]), None);
        assert_eq!(integer(oid::INT2, &[0, 0, 0, 1]), None);
        assert_eq!(integer(oid::INT8, &[0; 4]), None);
        assert_eq!(integer(oid::OID, &[0xff; 4]), Some(4_294_967_295));
        assert_eq!(integer(oid::INT2, &[0xff, 0xfe]), Some(-2));
        assert_eq!(bool(&[2]), None);
        assert_eq!(bool(&[]), None);
        assert_eq!(float8(&[0; 4]), None);
        assert_eq!(uuid(&[0; 15]), None);
        assert_eq!(
            render_text(oid::JSONB, b"\x02{}", TextSettings::default()).unwrap_err().error,
            GetError::TypeMismatch
        );
        assert_eq!(render_text(oid::JSONB, b"", TextSettings::default()).unwrap_err().error, GetError::TypeMismatch);
        assert_eq!(render_text(oid::JSONB, b"\x01{\"a\": 1}", TextSettings::default()).unwrap(), "{\"a\": 1}");
        assert_eq!(render_text(oid::TEXT, b"\xff", TextSettings::default()).unwrap_err().error, GetError::TypeMismatch);
        let e = render_text(1186, &[0; 16], TextSettings::default()).unwrap_err();
        assert_eq!(e.error, GetError::Unsupported);
        assert!(e.message.contains("OID 1186") && e.message.contains("pgsess_query_params"), "{}", e.message);
    }

    #[test]
    fn uuids_bytea_char_and_bool() {
        let u = [0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11];
        let text = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(render_text(oid::UUID, &u, TextSettings::default()).unwrap(), text);
        assert_eq!(parse_uuid_text(text.as_bytes()), Some(u));
        assert_eq!(parse_uuid_text(text.to_uppercase().as_bytes()), Some(u));
        for bad in [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc999c0b-4ef8-bb6d-6bb9bd380a11-",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ] {
            assert_eq!(parse_uuid_text(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(render_text(oid::BYTEA, &[0, 0xff, 0x10], TextSettings::default()).unwrap(), "\\x00ff10");
        assert_eq!(render_text(oid::BYTEA, &[], TextSettings::default()).unwrap(), "\\x");
        assert_eq!(render_text(oid::CHAR, b"a", TextSettings::default()).unwrap(), "a");
        assert_eq!(render_text(oid::CHAR, b"\xe9", TextSettings::default()).unwrap(), "\\351");
        assert_eq!(render_text(oid::CHAR, b"", TextSettings::default()).unwrap(), "");
        assert_eq!(render_text(oid::BOOL, &[1], TextSettings::default()).unwrap(), "t");
        assert_eq!(render_text(oid::BOOL, &[0], TextSettings::default()).unwrap(), "f");
        assert!(is_utc_zone_name("utc") && is_utc_zone_name("Etc/UTC") && !is_utc_zone_name("Europe/London"));
    }
}
