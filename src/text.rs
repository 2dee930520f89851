//! Text checks on the per-statement path.

/// `bytes` as UTF-8 text. The SQL, parameters and command tags of a statement are nearly always
/// short ASCII, which `is_ascii` confirms in a few word-sized steps; `std::str::from_utf8` spends
/// several times that on a short string before its own ASCII path starts.
#[inline]
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ascii_and_other_utf8_pass_and_invalid_bytes_do_not() {
        assert_eq!(super::utf8(b"SELECT $1::int + 1"), Some("SELECT $1::int + 1"));
        assert_eq!(super::utf8("SELECT 'é'".as_bytes()), Some("SELECT 'é'"));
        assert_eq!(super::utf8(b""), Some(""));
        assert_eq!(super::utf8(b"\xff\xfe"), None);
        assert_eq!(super::utf8(b"ok \xc3"), None);
    }
}
