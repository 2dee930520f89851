//! The command tag of a statement (`SELECT 3`, `INSERT 0 1`, `CREATE TABLE`), kept NUL-terminated
//! so C reads it in place. Nearly every tag fits in 22 bytes and is stored inline, so that a
//! statement's tag costs no allocation. Longer tags (`CREATE TEXT SEARCH CONFIGURATION`) go on
//! the heap.

use std::ffi::{CStr, CString};
use std::fmt;

/// Bytes kept inline, the NUL included.
const INLINE: usize = 23;

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]` is the tag and `bytes[len]` a NUL.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<CStr>),
}

/// A command tag: UTF-8 text without NUL bytes.
#[derive(Clone)]
pub struct CommandTag(Repr);

impl Default for CommandTag {
    fn default() -> CommandTag {
        CommandTag(Repr::Inline { len: 0, bytes: [0; INLINE] })
    }
}

impl CommandTag {
    /// The tag in `text` up to its first NUL, if any (C would read no further).
    pub fn new(text: &str) -> CommandTag {
        match text.bytes().position(|b| b == 0) {
            Some(nul) => CommandTag::without_nul(&text[..nul]),
            None => CommandTag::without_nul(text),
        }
    }

    fn without_nul(text: &str) -> CommandTag {
        debug_assert!(!text.contains('\0'));
        if text.len() < INLINE {
            let mut bytes = [0; INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            CommandTag(Repr::Inline { len: text.len() as u8, bytes })
        } else {
            CommandTag(Repr::Heap(CString::new(text).expect("cut at the first NUL").into_boxed_c_str()))
        }
    }

    /// The tag in a CommandComplete body (the tag and its NUL); `None` unless that is UTF-8 text
    /// ending at its only NUL.
    pub fn from_message_body(body: &[u8]) -> Option<CommandTag> {
        let (&0, text) = body.split_last()? else { return None };
        // Tags are short ASCII: one pass checks for both (a NUL is ASCII).
        if text.iter().all(|&b| b != 0 && b.is_ascii()) {
            // SAFETY: ASCII is UTF-8.
            return Some(CommandTag::without_nul(unsafe { std::str::from_utf8_unchecked(text) }));
        }
        if text.contains(&0) {
            return None;
        }
        Some(CommandTag::without_nul(std::str::from_utf8(text).ok()?))
    }

    pub fn as_str(&self) -> &str {
        let bytes = match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(c) => c.to_bytes(),
        };
        // SAFETY: only `new` stores bytes, and they come from a `&str`.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The tag with its NUL, for C.
    pub fn as_c_str(&self) -> &CStr {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                // SAFETY: `new` writes no NUL before `len` and a NUL at `len`.
                unsafe { CStr::from_bytes_with_nul_unchecked(&bytes[..=usize::from(*len)]) }
            }
            Repr::Heap(c) => c,
        }
    }

    pub fn clear(&mut self) {
        *self = CommandTag::default();
    }

    /// Whether the tag ends in a row count: the commands libpq's `PQcmdTuples` reads (INSERT,
    /// UPDATE, DELETE, MERGE, SELECT, MOVE, FETCH, COPY).
    pub fn has_row_count(&self) -> bool {
        matches!(
            self.as_str().split(' ').next(),
            Some("INSERT" | "UPDATE" | "DELETE" | "MERGE" | "SELECT" | "MOVE" | "FETCH" | "COPY")
        )
    }

    /// The row count's digits, NUL-terminated (the end of the tag), as libpq's `PQcmdTuples`
    /// gives them: whatever their number, so a count that does not fit 64 bits is still told
    /// exactly. Empty for a command without a count, and for a tag whose count is not digits
    /// (no real server sends one).
    pub fn row_count_digits(&self) -> &CStr {
        let c = self.as_c_str();
        let bytes = c.to_bytes();
        let start = bytes.iter().rposition(|&b| b == b' ').map_or(bytes.len(), |i| i + 1);
        let digits = &bytes[start..];
        if !self.has_row_count() || digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return c"";
        }
        CStr::from_bytes_with_nul(&c.to_bytes_with_nul()[start..]).unwrap_or_default()
    }

    /// The row count, as `row_count_digits` reads it: 0 without one, `u64::MAX` for a count
    /// that does not fit 64 bits (`row_count_digits` then has it exactly).
    pub fn row_count(&self) -> u64 {
        let digits = self.row_count_digits().to_bytes();
        digits.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0'))).unwrap_or(u64::MAX)
    }
}

impl fmt::Debug for CommandTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for CommandTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for CommandTag {
    fn eq(&self, other: &CommandTag) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<str> for CommandTag {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CommandTag {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&str> for CommandTag {
    fn from(text: &str) -> CommandTag {
        CommandTag::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_tags_read_back_with_their_nul() {
        for text in [
            "",
            "SELECT 1",
            "INSERT 0 1234567890123",
            "INSERT 0 18446744073709551615",
            "CREATE TEXT SEARCH CONFIGURATION",
        ] {
            let tag = CommandTag::new(text);
            assert_eq!((tag.as_str(), tag.as_c_str().to_bytes()), (text, text.as_bytes()));
            assert_eq!(tag.clone(), text);
        }
        assert_eq!(CommandTag::new("SELECT\0 1"), "SELECT");
        assert_eq!(CommandTag::default(), "");
    }

    #[test]
    fn row_counts_are_read_as_pqcmdtuples_reads_them_and_kept_whole_when_huge() {
        for (tag, digits, n) in [
            ("INSERT 0 5", "5", 5),
            ("UPDATE 3", "3", 3),
            ("SELECT 0", "0", 0),
            ("COPY 18446744073709551615", "18446744073709551615", u64::MAX),
            ("DELETE 18446744073709551616", "18446744073709551616", u64::MAX),
            ("SELECT 123456789012345678901234567890", "123456789012345678901234567890", u64::MAX),
            ("CREATE TABLE", "", 0),
            ("SELECT", "", 0),
            ("SELECT +5", "", 0),
            ("SELECT 1x", "", 0),
            ("BEGIN 5", "", 0),
            ("", "", 0),
        ] {
            let t = CommandTag::new(tag);
            assert_eq!(t.row_count_digits().to_str().unwrap(), digits, "{tag}");
            assert_eq!(t.row_count(), n, "{tag}");
        }
    }

    #[test]
    fn a_message_body_must_be_text_ending_at_its_only_nul() {
        assert_eq!(CommandTag::from_message_body(b"UPDATE 3\0"), Some(CommandTag::new("UPDATE 3")));
        assert_eq!(CommandTag::from_message_body(b"\0"), Some(CommandTag::default()));
        for bad in [&b""[..], b"UPDATE 3", b"UP\0DATE\0", b"\xff\0"] {
            assert_eq!(CommandTag::from_message_body(bad), None, "{bad:?}");
        }
    }
}
