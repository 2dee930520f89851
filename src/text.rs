//! Text checks: UTF-8 on the per-statement path, and the names PostgreSQL gives UTF8.

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

/// Whether `name` is one of PostgreSQL's spellings of UTF8 (case and punctuation are ignored, as
/// the server's `clean_encoding_name` does: `utf-8`, `UTF_8`, `unicode`).
pub fn is_utf8_alias(name: &str) -> bool {
    let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
    clean == "utf8" || clean == "unicode"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_aliases() {
        for ok in ["UTF8", "utf-8", "Utf_8", "unicode"] {
            assert!(is_utf8_alias(ok), "{ok}");
        }
        for bad in ["LATIN1", "SQL_ASCII", "utf16", ""] {
            assert!(!is_utf8_alias(bad), "{bad}");
        }
    }

    #[test]
    fn ascii_and_other_utf8_pass_and_invalid_bytes_do_not() {
        assert_eq!(super::utf8(b"SELECT $1::int + 1"), Some("SELECT $1::int + 1"));
        assert_eq!(super::utf8("SELECT 'é'".as_bytes()), Some("SELECT 'é'"));
        assert_eq!(super::utf8(b""), Some(""));
        assert_eq!(super::utf8(b"\xff\xfe"), None);
        assert_eq!(super::utf8(b"ok \xc3"), None);
    }
}
